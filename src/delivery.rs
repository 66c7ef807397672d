//! The delivery step of the pipeline, and the transports that do it.
//!
//! Everything before it (profile choice, blacklist, test mode, limits, the
//! MIME bytes) and after it (archive, status, events, retries) is the same
//! for every message. Only the hand-over differs: SMTP ([`crate::transport`]
//! over [`crate::smtp`]) or Microsoft Graph sendMail ([`crate::graph`]).
//! Both implement [`Transport`]; the pipeline picks one by the profile's
//! SMTPTransport and never looks inside.

// A failure carries replies and recipients; it is the rare path, and
// boxing it would buy nothing (as in smtp/mod.rs).
#![allow(clippy::result_large_err)]

use serde::Serialize;

use crate::config::ProfileSettings;
use crate::error::Result;
use crate::smtp::{Login, Mail, Reply};

/// A message the server accepted.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// `"smtp"` or `"graph"`: the status's `transport`.
    pub transport: &'static str,
    /// The SMTP reply that accepted it (`None` for Graph: `smtp_code` null).
    pub reply: Option<Reply>,
    /// The HTTP status that accepted it (Graph: 202).
    pub http_status: Option<u16>,
    /// Recipients not reached while the others were (a 5xx, or a later
    /// transaction that failed).
    pub rejected: Vec<crate::status::Refusal>,
}

pub use crate::failure::Failure;

/// Whom a delivery logs in as, for a transport that keeps connections per
/// login: the credential's user (`None`: the shared one, or none) and the
/// credentials' revision when the login was read, so that a changed
/// credential never reuses a connection made with the old one. SMTP pools
/// its sessions by it; Graph holds no connection per login.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub user: Option<String>,
    pub revision: u64,
}

/// Gets a fresh login when the server refused the current OAuth2 token:
/// `Ok(None)` when there is nothing to refresh with.
pub type Refresh<'a> = &'a dyn Fn() -> std::result::Result<Option<Login>, Failure>;

/// What `smtpb_test_connection` found: the result, and what the transport
/// saw on the way.
pub struct TestReport {
    pub result: Result<()>,
    pub check: Check,
}

/// What a transport saw in a connection test: the report's own fields.
/// `stage` is the last stage passed, or on failure the one attempted
/// (`connect`, `greeting`, `ehlo`, `tls`, `auth`, `done`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Check {
    pub advice: Option<crate::advice::Advice>,
    pub auth_mechanisms: Vec<String>,
    pub banner: Option<String>,
    pub capabilities: Vec<String>,
    pub stage: &'static str,
    pub tls: Option<&'static str>,
    /// Graph only.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphCheck>,
}

/// What a Graph connection test found besides a [`Check`]'s fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct GraphCheck {
    /// The HTTP status of the last request.
    pub http_status: Option<u16>,
    /// The mailbox's address, once it was read.
    pub mailbox: Option<String>,
    /// Always `graph`.
    pub transport: &'static str,
}

/// One way of handing a built message to a server.
pub trait Transport: Send + Sync {
    /// Checks that `settings` have what this transport needs to send; the
    /// error names the missing key (`SMTPB_ERR_CONFIG`).
    fn check(&self, settings: &ProfileSettings) -> Result<()>;

    /// `"smtp"` or `"graph"`: the status's `transport`.
    fn name(&self) -> &'static str;

    /// Whether the message is DKIM-signed before it is handed over.
    fn signs_dkim(&self) -> bool;

    /// Delivers one message. `login` is the profile's login for the
    /// message's user (`None`: no authentication), `identity` whom it
    /// names. A refused OAuth2 token is the failure's `token_refused`: the
    /// send pipeline refreshes the login once and calls again, the same way
    /// for every transport.
    fn send(
        &self,
        settings: &ProfileSettings,
        identity: &Identity,
        login: Option<&Login>,
        mail: &Mail,
    ) -> std::result::Result<Delivery, Failure>;

    /// Connects and authenticates without sending (`smtpb_test_connection`);
    /// `refresh` gets a new login when the server refuses an OAuth2 token.
    fn test(&self, settings: &ProfileSettings, login: Option<&Login>, refresh: Refresh) -> TestReport;

    /// Ends every idle connection (configuration or credentials changed,
    /// shutdown).
    fn close_all(&self);
}
