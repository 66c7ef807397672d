//! Result codes and the library's error type.
//!
//! Every fallible operation of the core returns [`Result<T>`]. An [`Error`]
//! carries the [`Code`] a host sees as `smtpb_result` and a message for
//! `smtpb_last_error`. Messages name the key, field, argument, address, file
//! or line at fault and never contain a password, token or credential: code
//! that builds an error from something secret must not put the secret in it.

use std::fmt;

/// The result codes of the C ABI. The values are fixed by the contract and
/// are never reused or renumbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Code {
    Ok = 0,
    InvalidArgument = 1,
    Config = 2,
    Credentials = 3,
    Connect = 4,
    Tls = 5,
    Auth = 6,
    Rejected = 7,
    Transient = 8,
    Message = 9,
    NotFound = 10,
    Limit = 11,
    Blocked = 12,
    Io = 13,
    Timeout = 14,
    State = 15,
    Busy = 16,
    Internal = 99,
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_i32(*self as i32)
    }
}

impl<'de> serde::Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Code, D::Error> {
        let value = i32::deserialize(deserializer)?;
        Code::from_i32(value).ok_or_else(|| serde::de::Error::custom(format!("unknown result code {value}")))
    }
}

impl Code {
    /// Every code, in numeric order.
    pub const ALL: [Code; 18] = [
        Code::Ok,
        Code::InvalidArgument,
        Code::Config,
        Code::Credentials,
        Code::Connect,
        Code::Tls,
        Code::Auth,
        Code::Rejected,
        Code::Transient,
        Code::Message,
        Code::NotFound,
        Code::Limit,
        Code::Blocked,
        Code::Io,
        Code::Timeout,
        Code::State,
        Code::Busy,
        Code::Internal,
    ];

    /// The static name of the code as the header spells it.
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "SMTPB_OK",
            Code::InvalidArgument => "SMTPB_ERR_INVALID_ARGUMENT",
            Code::Config => "SMTPB_ERR_CONFIG",
            Code::Credentials => "SMTPB_ERR_CREDENTIALS",
            Code::Connect => "SMTPB_ERR_CONNECT",
            Code::Tls => "SMTPB_ERR_TLS",
            Code::Auth => "SMTPB_ERR_AUTH",
            Code::Rejected => "SMTPB_ERR_REJECTED",
            Code::Transient => "SMTPB_ERR_TRANSIENT",
            Code::Message => "SMTPB_ERR_MESSAGE",
            Code::NotFound => "SMTPB_ERR_NOT_FOUND",
            Code::Limit => "SMTPB_ERR_LIMIT",
            Code::Blocked => "SMTPB_ERR_BLOCKED",
            Code::Io => "SMTPB_ERR_IO",
            Code::Timeout => "SMTPB_ERR_TIMEOUT",
            Code::State => "SMTPB_ERR_STATE",
            Code::Busy => "SMTPB_ERR_BUSY",
            Code::Internal => "SMTPB_ERR_INTERNAL",
        }
    }

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
