//! What the client reports: outbox statistics, connection tests and
//! probes. Each type's `Serialize` is the JSON the ABI gives for it.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::advice::Advice;
use crate::delivery::Check;
use crate::error::Code;
use crate::status::StateCounts;

/// `smtpb_outbox_stats`: counts per state, the paused profiles (`*` =
/// all), each profile's send limit, and the records lost to damage.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Stats {
    #[serde(flatten)]
    pub counts: StateCounts,
    pub damaged_records: i64,
    pub paused: Vec<String>,
    pub profiles: BTreeMap<String, ProfileUsage>,
    pub delivery: Delivery,
}

/// `"delivery"` of the outbox statistics: who delivers the outbox.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Delivery {
    /// The client that delivers (an exclusive client: itself; a shared
    /// data_dir: the holder of the delivery lease), `None` when none does.
    pub holder: Option<DeliveryHolder>,
}

/// The process that delivers the outbox.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct DeliveryHolder {
    pub pid: u32,
    pub host: String,
    pub user: String,
    /// Since when it delivers (RFC 3339).
    pub since: String,
}

/// A profile's send limit and what it has used of it.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ProfileUsage {
    /// SMTPSendLimit (0 = none).
    pub limit: u32,
    /// SMTPSendLimitPeriod.
    pub period: &'static str,
    /// When the oldest counted message leaves the window (RFC 3339).
    pub resets_at: Option<String>,
    pub sent_in_period: u64,
}

/// `smtpb_test_connection`'s report: what the transport saw, the
/// result, and for an OAuth2 profile the token used.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct TestReport {
    #[serde(flatten)]
    pub check: Check,
    pub error: Option<String>,
    pub error_code: Code,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(with = "OAuth2Check"))]
    pub oauth2: Option<OAuth2Check>,
    pub ok: bool,
    pub profile: String,
}

/// The token a connection test of an OAuth2 profile used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct OAuth2Check {
    pub expires_at: Option<String>,
    /// The test refreshed it first.
    pub refreshed: bool,
}

/// `smtpb_probe`'s report: each port and encryption tried, and the keys
/// to set (`None` when nothing worked).
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ProbeReport {
    pub host: String,
    pub results: Vec<ProbeResult>,
    pub suggested: Option<Suggested>,
}

/// One port and encryption a probe tried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ProbeResult {
    pub advice: Option<Advice>,
    pub auth_mechanisms: Vec<String>,
    pub banner: Option<String>,
    /// `SSL`, `TLS` or `None`, as SMTPServerEncryption names it.
    pub encryption: &'static str,
    pub error: Option<String>,
    pub ok: bool,
    pub port: u16,
    pub stage: &'static str,
    pub tls: Option<&'static str>,
}

/// The keys a probe suggests, by their configuration names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Suggested {
    #[serde(rename = "SMTPServer")]
    pub server: String,
    #[serde(rename = "SMTPServerEncryption")]
    pub encryption: &'static str,
    #[serde(rename = "SMTPServerPort")]
    pub port: u16,
}
