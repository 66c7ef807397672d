//! `smtpbridge_mapi.dll`: a Simple MAPI provider (ABI.md §19). Registered
//! as the default mail client (`smtpbridge register-mapi --default`), it
//! receives the `MAPISendMail` calls of every program through the
//! system's MAPI stub (`mapi32.dll`) and hands the mail to smtpbridge's
//! outbox through the drop-ins' shared code (`smtpbridge-dropin`), so it is
//! sent with the host's settings and credentials and the same MIME as
//! through the C ABI.
//!
//! The structures and their conversion build everywhere (and are unit
//! tested on Linux); the exports exist on Windows only.

// Only the exports use these; the unit tests run them on any platform
// (where the exports, their users, are absent).
#[cfg(any(windows, test))]
#[cfg_attr(not(windows), allow(dead_code))]
mod ansi;
#[cfg(any(windows, test))]
#[cfg_attr(not(windows), allow(dead_code))]
mod convert;
#[cfg(any(windows, test))]
#[cfg_attr(not(windows), allow(dead_code))]
mod types;

#[cfg(windows)]
mod exports;
