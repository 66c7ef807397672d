//! What an attempt came to, and when a deferred message is tried again.

use super::Record;
use crate::error::Error;
use crate::status::ArchivePaths;

/// What one delivery attempt came to.
// One value per attempt, moved once into the ledger: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Attempt {
    /// The server took it. `archive` is the archive's paths, or why the
    /// copy could not be filed (the message is sent all the same).
    Sent { delivery: crate::delivery::Delivery, archive: Option<std::result::Result<ArchivePaths, Error>> },
    /// It did not go out: why, and the credential the attempt logged in
    /// with (`None` = the shared one), which needs renewing when the
    /// failure is a refused or expired OAuth2 token.
    Failed { failure: Box<crate::failure::Failure>, credential: Option<String> },
    /// A send limit holds it until `until_ms` (Unix ms).
    Held { until_ms: i64, reason: String },
}

impl Attempt {
    /// A failure of the library's own, before any transport was asked.
    pub fn failed(error: Error) -> Attempt {
        Attempt::Failed { failure: Box::new(crate::failure::Failure::local(error)), credential: None }
    }
}

/// The function a delivery thread runs for each attempt.
pub type AttemptFn = dyn Fn(&Record, &[u8]) -> (Attempt, RetryPolicy) + Send + Sync;

/// Retry settings (global keys), read when a message is deferred.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub initial_ms: u64,
    pub max_ms: u64,
    pub max_age_ms: u64,
}

impl Default for RetryPolicy {
    /// The defaults of SMTPRetryInitialMs, SMTPRetryMaxMs, SMTPRetryMaxAgeMs.
    fn default() -> Self {
        use crate::config::Key;
        RetryPolicy {
            initial_ms: Key::SMTPRetryInitialMs.default_number(),
            max_ms: Key::SMTPRetryMaxMs.default_number(),
            max_age_ms: Key::SMTPRetryMaxAgeMs.default_number(),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempts + 1`: exponential, capped, with
    /// ±20 % jitter so that many deferred messages do not retry in step.
    pub(super) fn delay_ms(&self, attempts: u32) -> i64 {
        let exp = self.initial_ms.saturating_mul(1u64 << attempts.saturating_sub(1).min(30));
        let base = exp.min(self.max_ms).max(1);
        let mut r = [0u8; 2];
        let _ = getrandom::fill(&mut r);
        let jitter = (u16::from_le_bytes(r) as f64 / u16::MAX as f64) * 0.4 + 0.8;
        (base as f64 * jitter) as i64
    }
}
