//! Why a session or transaction did not succeed.

use super::io::IoFail;
use super::reply::Reply;
use crate::error::Code;

/// Why a session or transaction did not succeed.
#[derive(Clone, Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    /// The server's reply behind the failure, if there was one.
    pub reply: Option<Reply>,
    /// The connection broke or stalled after the final dot: the server may
    /// have accepted the message.
    pub possible_duplicate: bool,
    /// A reused connection turned out closed before the first command of
    /// this transaction was answered: nothing was committed, so the caller
    /// may open a new session and try once more.
    pub stale: bool,
    /// The stage the failure happened in (`connect`, `greeting`, `ehlo`,
    /// `tls`, `auth`, `mail`, `rcpt`, `data`).
    pub stage: &'static str,
    /// An OAuth2 token that the server refused.
    pub oauth_refused: bool,
    /// Recipients the server refused with a 5xx.
    pub rejected: Vec<(String, Reply)>,
    /// What to change, when the cause was recognised where it was seen
    /// (TLS errors, a missing greeting, connect errors); otherwise
    /// [`crate::advice::for_failure`] reads the reply.
    pub advice: Option<crate::advice::Advice>,
    /// The library refused on its own (no server reply behind it): the
    /// session is still in step with the server and can carry QUIT or
    /// another transaction.
    pub local: bool,
}

impl Failure {
    pub fn new(code: Code, stage: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            reply: None,
            possible_duplicate: false,
            stale: false,
            stage,
            oauth_refused: false,
            rejected: Vec::new(),
            advice: None,
            local: false,
        }
    }

    pub(super) fn with_advice(mut self, advice: Option<crate::advice::Advice>) -> Failure {
        self.advice = advice;
        self
    }

    /// A refusal the library makes itself, with the session in step.
    pub(super) fn local(code: Code, stage: &'static str, message: impl Into<String>) -> Failure {
        Failure { local: true, ..Failure::new(code, stage, message) }
    }

    /// Whether the session is still in step with the server after this
    /// failure: the server's last reply came whole, or nothing was sent.
    pub(super) fn in_step(&self) -> bool {
        self.local || self.reply.is_some()
    }

    pub(super) fn with_reply(mut self, reply: Reply) -> Failure {
        self.reply = Some(reply);
        self
    }
}

/// A failure before the session is ready for MAIL: CONNECT, or TLS when
/// the TLS layer failed.
pub(super) fn connect_failure(stage: &'static str, when: &str, e: IoFail) -> Failure {
    let code = if matches!(e, IoFail::Tls(_)) { Code::Tls } else { Code::Connect };
    Failure::new(code, stage, format!("{when}: {e}"))
}

/// A failure from MAIL on: the session broke or stalled.
pub(super) fn transient(stage: &'static str, when: &str, e: IoFail) -> Failure {
    Failure::new(Code::Transient, stage, format!("the session broke {when}: {e}"))
}
