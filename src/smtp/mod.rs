//! The SMTP dialogue, written for this library over std sockets and rustls.
//!
//! Why not lettre's `SmtpTransport`: as released (0.11.23) it reads bytes a
//! server sent with its STARTTLS `220` as if they had come over TLS (a
//! refused mail can be reported sent), bounds each socket read rather than
//! each reply (a server that drips bytes holds a send for ever), stops a
//! transaction at the first refused recipient, sends AUTH over plaintext
//! without a guard, and stalls ~44 ms per mail on a reused connection
//! (Nagle). lettre still builds, encodes and signs every message; this
//! module only speaks the protocol.
//!
//! Guarantees:
//! - One deadline (SMTPConnectionTimeout) bounds connect, TLS, greeting,
//!   EHLO, STARTTLS and AUTH together; after that every command's complete
//!   reply has a deadline of its own. Every socket read and write is given
//!   only the time left, so dripping bytes cannot stretch a deadline.
//! - After the STARTTLS `220`, any byte already received is a protocol
//!   error: nothing that came in plaintext is read as if it came over TLS.
//! - AUTH never goes out unencrypted unless SMTPAllowPlaintextAuth.
//! - DATA goes out with CRLF line ends only (a lone CR or LF becomes CRLF)
//!   and dot-stuffed; TCP_NODELAY is set so small writes are not delayed.
//! - Refused recipients do not stop the others; a 4xx for any recipient
//!   defers the whole message (RSET), so no recipient gets it twice.

// A failure carries the server's reply and the refused recipients; it is
// the rare path, and boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod auth;
mod capabilities;
#[cfg(test)]
mod dialogue_tests;
mod failure;
mod io;
#[cfg(test)]
mod mock;
mod net;
mod parse;
mod session;
mod sockets;
mod transaction;

pub use crate::reply::Reply;
pub use auth::choose_mechanism;
pub use capabilities::Capabilities;
pub use failure::Failure;
pub use parse::{parse_replies, read_replies_from};
pub use session::Session;
pub use sockets::Sockets;

use zeroize::Zeroizing;

use crate::status::Refusal;

/// The login a session uses.
pub struct Login {
    pub username: String,
    pub secret: Zeroizing<String>,
}

/// Where a test of a connection got to.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    pub stage: &'static str,
    pub banner: Option<String>,
    pub capabilities: Vec<String>,
    pub tls: Option<&'static str>,
    pub auth_mechanisms: Vec<String>,
}

/// One message to send: envelope and bytes.
pub struct Mail<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub body: &'a [u8],
    /// An address has non-ASCII characters (needs SMTPUTF8).
    pub utf8: bool,
}

/// A message the server accepted.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The server's reply to the last transaction that delivered it.
    pub reply: Reply,
    /// Recipients that did not get it while others did: refused with a
    /// 5xx, or left over when a later transaction failed.
    pub rejected: Vec<Refusal>,
}
