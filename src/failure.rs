//! The one failure type of a delivery: what SMTP, Graph and a login say
//! when a message does not go out, and what the outbox, advice and the
//! result codes read (after lettre's `Error` with `is_transient()` /
//! `is_permanent()`).
//!
//! A failure has a result code and a message, the server's answer where
//! there was one (an SMTP reply, an HTTP status and error code), the
//! recipients refused on the way, and the few facts that decide what
//! happens next: whether a token was refused (new credentials, or one
//! refresh), whether the server may have the message (a duplicate is
//! possible), whether a reused session turned out closed (try a new one).

use crate::error::{Code, Error};
use crate::reply::Reply;

/// What to change, for a host to show.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Advice {
    pub key: String,
    pub text: String,
}

impl Advice {
    pub fn new(key: &str, text: impl Into<String>) -> Advice {
        Advice { key: key.to_string(), text: text.into() }
    }

    /// The advice as it ends an error message: ` Advice (key): text`.
    pub fn suffix(&self) -> String {
        format!(" Advice ({}): {}", self.key, self.text)
    }
}

/// A cause recognised where it was seen (below the reply a server gives),
/// which the advice table turns into what to change.
#[derive(Clone, Debug)]
pub enum Cause {
    /// An advice of the table by its key (`host_not_found`,
    /// `starttls_unavailable`, `auth_mechanism_unsupported`, ...).
    Key(&'static str),
    /// A TLS handshake error: the certificate subject the server sent,
    /// and the name checked.
    Tls { error: rustls::Error, subject: Option<String>, checked: String },
    /// SMTPServerEncryption=SSL on a port that speaks plain SMTP.
    SslOnPlainPort,
    /// Plain SMTP on the implicit-TLS port (the server waits for TLS).
    PlainOnTlsPort,
    /// AUTH would go out in plaintext though the server offers STARTTLS.
    PlaintextAuthWithStarttls,
    /// The message is larger than the SIZE the server announced.
    MessageTooLarge(u64),
}

/// Why a delivery, or a step of it, did not succeed.
#[derive(Clone, Debug)]
pub struct Failure {
    /// `"smtp"`, `"graph"`, or `"oauth2"` for a login that failed; empty
    /// for a refusal of the library's own before any transport.
    pub transport: &'static str,
    pub code: Code,
    pub message: String,
    /// The stage it happened in (SMTP: `connect`, `greeting`, `ehlo`,
    /// `tls`, `auth`, `mail`, `rcpt`, `data`; empty elsewhere).
    pub stage: &'static str,
    /// The SMTP reply behind the failure, if there was one.
    pub reply: Option<Reply>,
    /// The HTTP status behind the failure, if there was one.
    pub http_status: Option<u16>,
    /// The server's own error code beside its status (Graph's `error.code`).
    pub server_code: Option<String>,
    /// The server asked not to be tried again before this many ms from now
    /// (HTTP `Retry-After`).
    pub retry_after_ms: Option<u64>,
    /// Recipients the server refused with a 5xx.
    pub rejected: Vec<(String, Reply)>,
    /// The connection broke or stalled once the message had been handed
    /// over: the server may have it.
    pub possible_duplicate: bool,
    /// The server refused the OAuth2 token, or it expired: one refresh may
    /// help, else new credentials are needed.
    pub token_refused: bool,
    /// What to change, when the transport named it (Graph).
    pub advice: Option<Advice>,
    /// A cause the transport recognised where it saw it, for
    /// [`crate::advice::for_failure`] to name what to change.
    pub cause: Option<Cause>,
    /// A reused session turned out closed before the first command of the
    /// transaction was answered: nothing was committed, so a new session
    /// may try once more.
    pub(crate) stale: bool,
    /// The library refused on its own with the session in step with the
    /// server (no reply behind it, nothing half-sent).
    pub(crate) local: bool,
}

impl Failure {
    pub fn new(transport: &'static str, code: Code, message: impl Into<String>) -> Failure {
        Failure {
            transport,
            code,
            message: message.into(),
            stage: "",
            reply: None,
            http_status: None,
            server_code: None,
            retry_after_ms: None,
            rejected: Vec::new(),
            possible_duplicate: false,
            token_refused: false,
            advice: None,
            cause: None,
            stale: false,
            local: false,
        }
    }

    /// The library's own refusal, before any transport was asked.
    pub fn local(error: Error) -> Failure {
        Failure::new("", error.code(), error.message())
    }

    /// The failure as the library's error (code and message).
    pub fn error(&self) -> Error {
        Error::new(self.code, self.message.clone())
    }

    /// Whether trying again later may succeed: a connection that broke or
    /// could not be made, a 4xx, a refused token (a refresh or new
    /// credentials release it).
    pub fn is_transient(&self) -> bool {
        self.token_refused || matches!(self.code, Code::Connect | Code::Transient)
    }

    /// Whether the server refused for good (a 5xx to the message or every
    /// recipient).
    pub fn is_permanent(&self) -> bool {
        self.code == Code::Rejected
    }

    /// Whether the OAuth2 token was refused or expired.
    pub fn token_refused(&self) -> bool {
        self.token_refused
    }

    /// Whether a reused session turned out closed before anything was
    /// committed (see [`Failure::stale`]).
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// At `stage`.
    pub(crate) fn at(mut self, stage: &'static str) -> Failure {
        self.stage = stage;
        self
    }

    pub(crate) fn with_cause(mut self, cause: Option<Cause>) -> Failure {
        self.cause = cause;
        self
    }

    pub(crate) fn with_reply(mut self, reply: Reply) -> Failure {
        self.reply = Some(reply);
        self
    }

    /// Whether a session is still in step with the server after this
    /// failure: the server's last reply came whole, or nothing was sent.
    pub(crate) fn in_step(&self) -> bool {
        self.local || self.reply.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_follows_the_code_and_a_refused_token() {
        let f = |code| Failure::new("smtp", code, "x");
        assert!(f(Code::Transient).is_transient() && !f(Code::Transient).is_permanent());
        assert!(f(Code::Connect).is_transient());
        assert!(f(Code::Rejected).is_permanent() && !f(Code::Rejected).is_transient());
        assert!(!f(Code::Auth).is_transient() && !f(Code::Auth).is_permanent());
        let refused = Failure { token_refused: true, ..f(Code::Auth) };
        assert!(refused.is_transient() && refused.token_refused());
        assert_eq!(Failure::local(Error::config("bad")).error().code(), Code::Config);
    }
}
