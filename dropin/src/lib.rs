//! What smtpbridge's Outlook drop-ins share (ABI.md §19): the Simple MAPI
//! provider (`smtpbridge_mapi.dll`) and the COM automation server
//! (`smtpbridge_com.dll`) both turn the mail a host hands them into a
//! [`Mail`], which becomes the library's message JSON, and hand it to the
//! process's one [`Session`] client — so the MIME is the same as through
//! the C ABI, and the outbox, settings and credentials are the host's.

pub mod datadir;
pub mod mail;
pub mod session;
#[cfg(windows)]
mod shell;

pub use mail::{Attachment, Body, Class, Mail, Recipient};
pub use session::{describe, Queued, Session};

/// `text` as a NUL-terminated UTF-16 string for a Windows call.
#[cfg(windows)]
pub fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(std::iter::once(0)).collect()
}
