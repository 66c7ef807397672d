//! Result codes and the library's error type.
//!
//! Every fallible operation of the core returns [`Result<T>`]. An [`Error`]
//! carries the [`Code`] a host sees as `smtpb_result` and a message for
//! `smtpb_last_error`. Messages name the key, field, argument, address, file
//! or line at fault and never contain a password, token or credential: code
//! that builds an error from something secret must not put the secret in it.

use std::fmt;

/// Defines [`Code`] from one list: each code's variant, value (fixed by
/// the contract, never reused or renumbered), name as the header spells it
/// and meaning (docs/REFERENCE.md). The header's `SMTPB_*` constants are
/// tied to this list by const assertions in `src/ffi/mod.rs`.
macro_rules! result_codes {
    ($($variant:ident = $value:literal, $name:literal, $doc:literal;)*) => {
        /// The result codes of the C ABI.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(i32)]
        pub enum Code {
            $(#[doc = $doc] $variant = $value,)*
        }

        impl Code {
            /// Every code, in numeric order.
            pub const ALL: [Code; [$($value),*].len()] = [$(Code::$variant),*];

            /// The static name of the code as the header spells it.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }

            /// What the code means, as docs/REFERENCE.md says it.
            pub const fn doc(self) -> &'static str {
                match self {
                    $(Code::$variant => $doc,)*
                }
            }
        }
    };
}

result_codes! {
    Ok = 0, "SMTPB_OK", "success";
    InvalidArgument = 1, "SMTPB_ERR_INVALID_ARGUMENT", "NULL, invalid UTF-8, malformed JSON, unknown field, wrong JSON type";
    Config = 2, "SMTPB_ERR_CONFIG", "unknown key, bad value, conflicting or incomplete configuration, no profile fits";
    Credentials = 3, "SMTPB_ERR_CREDENTIALS", "no credentials for the user, wrong master secret, tampered store";
    Connect = 4, "SMTPB_ERR_CONNECT", "no session: DNS, TCP connect, no/slow/garbled greeting or EHLO, within the deadline";
    Tls = 5, "SMTPB_ERR_TLS", "handshake or certificate failure; STARTTLS required but not offered or refused; bytes injected";
    Auth = 6, "SMTPB_ERR_AUTH", "the server refused authentication, or AUTH would go over plaintext";
    Rejected = 7, "SMTPB_ERR_REJECTED", "a permanent 5xx for the message (or for every recipient)";
    Transient = 8, "SMTPB_ERR_TRANSIENT", "a 4xx, or an established session that broke or stalled";
    Message = 9, "SMTPB_ERR_MESSAGE", "invalid message: bad address, control character in a header, bad attachment, no body, too large";
    NotFound = 10, "SMTPB_ERR_NOT_FOUND", "unknown message id, batch, profile or user";
    Limit = 11, "SMTPB_ERR_LIMIT", "a send limit is reached";
    Blocked = 12, "SMTPB_ERR_BLOCKED", "every recipient is on the blacklist";
    Io = 13, "SMTPB_ERR_IO", "data directory, spool, archive or file I/O failed; a store of a newer format";
    Timeout = 14, "SMTPB_ERR_TIMEOUT", "a wait, flush or shutdown ran out of time (the work itself goes on)";
    State = 15, "SMTPB_ERR_STATE", "not possible in the current state (cancel a sent message, a call after shutdown)";
    Busy = 16, "SMTPB_ERR_BUSY", "the data directory is held by another client (the message names pid, host, user)";
    Internal = 99, "SMTPB_ERR_INTERNAL", "a bug: a caught panic or broken invariant";
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_i32(*self as i32)
    }
}

/// A result code in JSON: its number.
#[cfg(test)]
impl schemars::JsonSchema for Code {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Code".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "integer", "description": "a result code (0: none)"})
    }
}

impl<'de> serde::Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Code, D::Error> {
        let value = i32::deserialize(deserializer)?;
        Code::from_i32(value).ok_or_else(|| serde::de::Error::custom(format!("unknown result code {value}")))
    }
}

impl Code {
    /// The code for a raw value, if it is one of ours.
    pub fn from_i32(value: i32) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| *c as i32 == value)
    }
}

/// An error of the library: a result code and a message safe to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: Code,
    message: String,
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with the given code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Error {
        Error { code, message: message.into() }
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `context: ` put before its message.
    pub fn context(mut self, context: impl fmt::Display) -> Error {
        self.message = format!("{context}: {}", self.message);
        self
    }

    pub fn invalid_argument(message: impl Into<String>) -> Error {
        Error::new(Code::InvalidArgument, message)
    }
    pub fn config(message: impl Into<String>) -> Error {
        Error::new(Code::Config, message)
    }
    pub fn credentials(message: impl Into<String>) -> Error {
        Error::new(Code::Credentials, message)
    }
    pub fn message_error(message: impl Into<String>) -> Error {
        Error::new(Code::Message, message)
    }
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(Code::NotFound, message)
    }
    pub fn state(message: impl Into<String>) -> Error {
        Error::new(Code::State, message)
    }
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(Code::Internal, message)
    }

    /// An I/O failure on `path` while doing `what`.
    pub fn io(what: &str, path: &std::path::Path, err: &std::io::Error) -> Error {
        Error::new(Code::Io, format!("{what} {}: {err}", path.display()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_round_trip() {
        for code in Code::ALL {
            assert_eq!(Code::from_i32(code as i32), Some(code));
            assert!(code.name().starts_with("SMTPB_"));
        }
        assert_eq!(Code::from_i32(17), None);
        assert_eq!(Code::Internal as i32, 99);
    }
}
