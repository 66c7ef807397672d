//! Purging final statuses: on request and, as retention says, hourly.

use std::time::{Duration, SystemTime};

use super::ledger::time_to_ms;
use super::Outbox;
use crate::error::{Error, Result};
use crate::status::State;

/// A function told the ids of purged messages (e.g. to remove their
/// transcripts).
pub type PurgeHook = dyn Fn(&[String]) + Send + Sync;

/// Retention in days (SMTPKeepSentDays, SMTPKeepFailedDays; 0 = for ever),
/// read before each background purge.
pub type RetentionFn = dyn Fn() -> (u64, u64) + Send + Sync;

/// How often expired statuses are purged in the background.
pub(super) const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Statuses deleted per transaction of a purge: delivery waits at most for
/// one chunk.
pub(super) const PURGE_CHUNK: usize = 500;

/// Checks that every state in `states` is final: only final statuses can
/// be purged.
pub fn purgeable(states: &[State]) -> Result<()> {
    match states.iter().find(|s| !s.is_final()) {
        Some(s) => Err(Error::invalid_argument(format!(
            "\"{}\" is not final; only sent, cancelled and failed statuses can be purged",
            s.name()
        ))),
        None => Ok(()),
    }
}

impl Outbox {
    /// The purge thread: expired statuses at start and every hour.
    pub(super) fn purge_loop(&self, retention: &RetentionFn) {
        loop {
            if self.lock().stopping {
                return;
            }
            self.purge_expired(retention());
            if let Err(e) = self.reclaim() {
                log::warn!("compacting the outbox store: {}", e.message());
            }
            let (lock, wake) = &self.purge_wake;
            let stop = lock.lock().unwrap_or_else(|e| e.into_inner());
            if *stop {
                return;
            }
            let (stop, _) = wake.wait_timeout(stop, PURGE_EVERY).unwrap_or_else(|e| e.into_inner());
            if *stop {
                return;
            }
        }
    }

    /// Purges the final statuses older than their retention in days by the
    /// clock: `(sent and cancelled, failed)`, 0 = kept for ever.
    pub(super) fn purge_expired(&self, (sent_days, failed_days): (u64, u64)) {
        const DAY_MS: i64 = 86_400_000;
        let now = self.clock.unix_ms();
        for (days, states) in [(sent_days, &[State::Sent, State::Cancelled][..]), (failed_days, &[State::Failed][..])] {
            if days == 0 {
                continue;
            }
            let before = now.saturating_sub((days as i64).saturating_mul(DAY_MS));
            if let Err(e) = self.purge(before, states) {
                log::warn!("purging expired statuses: {}", e.message());
            }
        }
    }

    /// Deletes the final statuses in `states` created before `before_ms`
    /// (Unix ms), with their bytes, in transactions of [`PURGE_CHUNK`]
    /// (delivery goes on between them), tells the purge hook their ids,
    /// then gives the freed space back to the file system. Their ids are
    /// NOT_FOUND afterwards and their idempotency keys free. Returns how
    /// many were purged.
    pub fn purge(&self, before_ms: i64, states: &[State]) -> Result<u64> {
        let mut purged = 0u64;
        let hook = self.purge_hook.lock().unwrap_or_else(|e| e.into_inner()).clone();
        loop {
            let ids = self.store().purge_chunk(before_ms, states, PURGE_CHUNK)?;
            purged += ids.len() as u64;
            if let (Some(hook), false) = (&hook, ids.is_empty()) {
                hook(&ids);
            }
            if ids.len() < PURGE_CHUNK || self.lock().stopping {
                break;
            }
        }
        if purged > 0 {
            log::info!("purged {purged} statuses");
            self.reclaim()?;
        }
        Ok(purged)
    }

    /// Gives the store's free pages (of purged statuses and of the bytes of
    /// final messages) back to the file system, a step at a time, and
    /// truncates the WAL. Each step is a transaction: a crash loses
    /// nothing.
    pub(super) fn reclaim(&self) -> Result<()> {
        while self.store().reclaim_step(1024)? {
            if self.lock().stopping {
                return Ok(());
            }
        }
        self.store().checkpoint()
    }

    /// `smtpb_outbox_purge`: the final statuses in `states` (see
    /// [`State::FINAL`]) created before `before`. Returns how many were
    /// purged.
    pub fn purge_request(&self, before: SystemTime, states: &[State]) -> Result<u64> {
        purgeable(states)?;
        Self::check_running(&self.lock())?;
        self.purge(time_to_ms(before), states)
    }
}
