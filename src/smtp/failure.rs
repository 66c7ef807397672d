//! SMTP's failures: the crate's [`Failure`] at a stage of the dialogue.

use super::io::IoFail;
use crate::error::Code;
pub use crate::failure::Failure;

/// A failure of the SMTP transport at `stage`.
pub(super) fn failure(code: Code, stage: &'static str, message: impl Into<String>) -> Failure {
    Failure::new("smtp", code, message).at(stage)
}

/// A refusal the library makes itself, with the session in step.
pub(super) fn local(code: Code, stage: &'static str, message: impl Into<String>) -> Failure {
    Failure { local: true, ..failure(code, stage, message) }
}

/// A failure before the session is ready for MAIL: CONNECT, or TLS when
/// the TLS layer failed.
pub(super) fn connect_failure(stage: &'static str, when: &str, e: IoFail) -> Failure {
    let code = if matches!(e, IoFail::Tls(_)) { Code::Tls } else { Code::Connect };
    failure(code, stage, format!("{when}: {e}"))
}

/// A failure from MAIL on: the session broke or stalled.
pub(super) fn transient(stage: &'static str, when: &str, e: IoFail) -> Failure {
    failure(Code::Transient, stage, format!("the session broke {when}: {e}"))
}
