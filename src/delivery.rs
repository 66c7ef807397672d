//! The delivery step of the pipeline, and the transports that do it.
//!
//! Everything before it (profile choice, blacklist, test mode, limits, the
//! MIME bytes) and after it (archive, status, events, retries) is the same
//! for every message. Only the hand-over differs: SMTP ([`crate::transport`]
//! over [`crate::smtp`]) or Microsoft Graph sendMail ([`crate::graph`]).
//! Both implement [`Transport`]; the pipeline picks one by the profile's
//! SMTPTransport and never looks inside.

// A failure carries replies and recipients; it is the rare path, and
// boxing it would buy nothing (as in smtp.rs).
#![allow(clippy::result_large_err)]

use serde_json::{Map, Value};

use crate::config::ProfileSettings;
use crate::error::{Code, Error, Result};
use crate::smtp::{Login, Mail, Reply};
use crate::transport::PoolKey;

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

/// Why a delivery did not succeed.
#[derive(Clone, Debug)]
pub struct Failure {
    pub transport: &'static str,
    pub code: Code,
    pub message: String,
    /// The SMTP reply behind the failure, if there was one.
    pub reply: Option<Reply>,
    /// The HTTP status behind the failure, if there was one.
    pub http_status: Option<u16>,
    /// The connection broke or stalled once the message had been handed
    /// over: the server may have it.
    pub possible_duplicate: bool,
    /// An OAuth2 token the server refused (after one refresh, where the
    /// transport refreshes): new credentials are needed.
    pub oauth_refused: bool,
    /// Recipients the server refused with a 5xx.
    pub rejected: Vec<(String, Reply)>,
    /// The server asked not to be tried again before this many ms from now
    /// (HTTP `Retry-After`).
    pub retry_after_ms: Option<u64>,
    /// What to change, when the cause was recognised.
    pub advice: Option<crate::advice::Advice>,
    /// The server's own error code beside its status (Graph's `error.code`).
    pub server_code: Option<String>,
}

impl Failure {
    pub fn new(transport: &'static str, code: Code, message: impl Into<String>) -> Failure {
        Failure {
            transport,
            code,
            message: message.into(),
            reply: None,
            http_status: None,
            possible_duplicate: false,
            oauth_refused: false,
            rejected: Vec::new(),
            retry_after_ms: None,
            advice: None,
            server_code: None,
        }
    }

    /// The failure as the library's error (code and message).
    pub fn error(&self) -> Error {
        Error::new(self.code, self.message.clone())
    }
}

impl From<crate::smtp::Failure> for Failure {
    fn from(f: crate::smtp::Failure) -> Failure {
        Failure {
            advice: f.advice,
            transport: "smtp",
            code: f.code,
            message: f.message,
            reply: f.reply,
            http_status: None,
            possible_duplicate: f.possible_duplicate,
            oauth_refused: f.oauth_refused,
            rejected: f.rejected,
            retry_after_ms: None,
            server_code: None,
        }
    }
}

/// Gets a fresh login when the server refused the current OAuth2 token:
/// `Ok(None)` when there is nothing to refresh with.
pub type Refresh<'a> = &'a dyn Fn() -> std::result::Result<Option<Login>, Failure>;

/// What `smtpb_test_connection` found: the result, and the report's
/// fields (`stage` and the transport's own).
pub struct TestReport {
    pub result: Result<()>,
    pub fields: Map<String, Value>,
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
    /// message's user (`None`: no authentication); `refresh` gets a new one
    /// when the server refuses an OAuth2 token.
    fn send(
        &self,
        settings: &ProfileSettings,
        key: &PoolKey,
        login: Option<&Login>,
        refresh: Refresh,
        mail: &Mail,
    ) -> std::result::Result<Delivery, Failure>;

    /// Connects and authenticates without sending (`smtpb_test_connection`).
    fn test(&self, settings: &ProfileSettings, login: Option<&Login>, refresh: Refresh) -> TestReport;

    /// Ends every idle connection (configuration or credentials changed,
    /// shutdown).
    fn close_all(&self);
}
