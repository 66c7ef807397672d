//! `smtpbridge_com.dll`: the COM automation server `SmtpBridge.Application`
//! (ABI.md §19). Hosts that send mail by automating Outlook
//! (`CreateObject("Outlook.Application")` … `CreateItem(0)` … `.Send` from
//! VBA, VB6, VBScript, FoxPro, Delphi, PowerBuilder) change one line to
//! `CreateObject("SmtpBridge.Application")`; the mail goes to smtpbridge's
//! outbox through the drop-ins' shared code (`smtpbridge-dropin`), with the
//! same MIME as through the C ABI and the Simple MAPI provider.
//!
//! The object model (`automation`, `objects`, `mailitem`) builds and is
//! unit tested everywhere; the COM glue (`dispatch`, `server`, `register`)
//! exists on Windows only.

// Only the COM glue uses these; the unit tests run them on any platform
// (where the glue, their user, is absent).
#[cfg_attr(not(windows), allow(dead_code))]
mod automation;
#[cfg_attr(not(windows), allow(dead_code))]
mod mailitem;
#[cfg_attr(not(windows), allow(dead_code))]
mod objects;

#[cfg(windows)]
mod dispatch;
#[cfg(windows)]
mod enumerator;
#[cfg(windows)]
mod register;
#[cfg(windows)]
mod server;
