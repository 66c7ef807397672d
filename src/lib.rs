//! smtpbridge: send mail by SMTP from desktop hosts, through a C ABI.
//!
//! Programs that used to hand their mail to Outlook (MAPI/COM) load this
//! library instead: they set configuration keys (`SMTPServer`,
//! `SMTPServerEncryption`, …), keep each user's credentials in an
//! encrypted store, send messages given as JSON, and read back what
//! happened to them.
//!
//! The C ABI (`include/smtpbridge.h`, module `ffi`) is the product; it is a
//! thin boundary over the safe Rust API in this crate, which Rust programs
//! may use directly through [`Client`]:
//!
//! - [`config`]: the table of configuration keys, profiles, blacklist;
//! - [`credentials`]: the encrypted credential store;
//! - [`message`]: message JSON to a validated, lettre-built MIME message;
//! - [`smtp`]: the SMTP dialogue (deadlines, STARTTLS, AUTH, PIPELINING);
//! - [`transport`]: pooled sessions per profile;
//! - [`delivery`]: the delivery step, SMTP or [`graph`] (Microsoft Graph sendMail);
//! - [`client`]: the client that ties them together; it takes and returns
//!   types ([`status::Status`], [`outbox::Page`], [`client::Stats`], …)
//!   whose `Serialize` is the JSON the C ABI gives ([`ffi::wire`] reads and
//!   writes that JSON);
//! - [`logging`], [`transcript`], [`advice`]: diagnostics (log lines,
//!   redacted dialogues, what to change).
//!
//! lettre builds, encodes and DKIM-signs messages; the SMTP dialogue is this
//! crate's own (see `docs/DESIGN.md` for why).

#![deny(unsafe_code)]

pub mod address;
pub mod advice;
pub mod archive;
pub mod bounded;
pub mod client;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod delivery;
pub mod error;
pub mod failure;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
pub mod graph;
pub mod host;
pub mod http;
pub mod json;
pub mod limits;
pub mod logging;
pub mod message;
pub mod message_bounds;
pub mod oauth2;
pub mod outbox;
pub mod pem;
pub mod reference;
pub mod reply;
pub mod smtp;
pub mod status;
pub mod text;
pub mod tls;
pub mod transcript;
pub mod transport;
pub mod url;
#[cfg(windows)]
#[allow(unsafe_code)]
mod winsec;

#[allow(unsafe_code)]
pub mod ffi;

pub use client::Client;
pub use error::{Code, Error, Result};

/// The library's version (`smtpb_version()`, `SMTPB_VERSION`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The ABI version this library implements.
pub const ABI_VERSION: u32 = 1;
/// The minor ABI version: the additions of version 1.1 are present.
pub const ABI_MINOR: u32 = 2;
