//! The C ABI: the only module with `unsafe` and `extern "C"`.
//!
//! Every export's body is one [`ffi_export!`]: a panic is caught and
//! becomes `SMTPB_ERR_INTERNAL` naming the export, a failure sets the
//! thread's last error, a success clears it; the client and out-pointers
//! are checked there. Pointer arguments are checked and converted here and
//! nowhere else; the core never sees a raw pointer. No business logic
//! lives in this module: each export checks, converts, calls the core and
//! maps the result.

#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::Client;

pub mod client;
pub mod config;
pub mod credentials;
pub mod diag;
pub mod history;
pub mod limits;
pub mod oauth2;
pub mod outbox;
#[cfg(test)]
mod schema;
pub mod send;
pub mod version;
pub mod wire;

/// A result code: 0 (`SMTPB_OK`) or one of the `SMTPB_ERR_*` codes.
/// Codes are never renumbered or reused; a host treats an unknown code as
/// a failure.
pub type smtpb_result = i32;

/// Success.
pub const SMTPB_OK: smtpb_result = 0;
/// NULL, invalid UTF-8, malformed JSON, unknown field, wrong JSON type.
pub const SMTPB_ERR_INVALID_ARGUMENT: smtpb_result = 1;
/// Unknown key, bad value, conflicting or incomplete configuration, no
/// profile fits.
pub const SMTPB_ERR_CONFIG: smtpb_result = 2;
/// No credentials for the user, wrong master secret, tampered store.
pub const SMTPB_ERR_CREDENTIALS: smtpb_result = 3;
/// No session: DNS, TCP connect, no/slow/garbled greeting or EHLO.
pub const SMTPB_ERR_CONNECT: smtpb_result = 4;
/// Handshake or certificate failure; STARTTLS required but not offered or
/// refused; bytes injected before TLS.
pub const SMTPB_ERR_TLS: smtpb_result = 5;
/// The server refused authentication, or AUTH would go over plaintext.
pub const SMTPB_ERR_AUTH: smtpb_result = 6;
/// A permanent 5xx for the message (or for every recipient).
pub const SMTPB_ERR_REJECTED: smtpb_result = 7;
/// A 4xx, or an established session that broke or stalled.
pub const SMTPB_ERR_TRANSIENT: smtpb_result = 8;
/// Invalid message: bad address, control character in a header, missing or
/// relative attachment path, no body, no recipient, too large.
pub const SMTPB_ERR_MESSAGE: smtpb_result = 9;
/// Unknown message id, batch, profile or user.
pub const SMTPB_ERR_NOT_FOUND: smtpb_result = 10;
/// A send limit is reached.
pub const SMTPB_ERR_LIMIT: smtpb_result = 11;
/// Every recipient is on the blacklist.
pub const SMTPB_ERR_BLOCKED: smtpb_result = 12;
/// Data directory, spool, archive or file I/O failed; a store of a newer
/// format.
pub const SMTPB_ERR_IO: smtpb_result = 13;
/// A wait, flush or shutdown ran out of time (the work itself goes on).
pub const SMTPB_ERR_TIMEOUT: smtpb_result = 14;
/// Not possible in the current state (a call after shutdown, …).
pub const SMTPB_ERR_STATE: smtpb_result = 15;
/// The data directory is held by another client.
pub const SMTPB_ERR_BUSY: smtpb_result = 16;
/// A bug: a caught panic or a broken invariant.
pub const SMTPB_ERR_INTERNAL: smtpb_result = 99;

/// Ties each header constant to the code of the same name in the one list
/// ([`crate::error::Code`]): same value, same name, every code once. The
/// constants stay literal for cbindgen; a mismatch does not compile.
macro_rules! tie_result_codes {
    ($($constant:ident = $code:ident),* $(,)?) => {
        $(const _: () = assert!(
            $constant == crate::error::Code::$code as i32
                && same_text(stringify!($constant), crate::error::Code::$code.name())
        );)*
        const _: () = assert!([$(stringify!($constant)),*].len() == crate::error::Code::ALL.len());
    };
}

/// Whether two texts are equal, at compile time.
const fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

tie_result_codes!(
    SMTPB_OK = Ok,
    SMTPB_ERR_INVALID_ARGUMENT = InvalidArgument,
    SMTPB_ERR_CONFIG = Config,
    SMTPB_ERR_CREDENTIALS = Credentials,
    SMTPB_ERR_CONNECT = Connect,
    SMTPB_ERR_TLS = Tls,
    SMTPB_ERR_AUTH = Auth,
    SMTPB_ERR_REJECTED = Rejected,
    SMTPB_ERR_TRANSIENT = Transient,
    SMTPB_ERR_MESSAGE = Message,
    SMTPB_ERR_NOT_FOUND = NotFound,
    SMTPB_ERR_LIMIT = Limit,
    SMTPB_ERR_BLOCKED = Blocked,
    SMTPB_ERR_IO = Io,
    SMTPB_ERR_TIMEOUT = Timeout,
    SMTPB_ERR_STATE = State,
    SMTPB_ERR_BUSY = Busy,
    SMTPB_ERR_INTERNAL = Internal,
);

/// The ABI version of this header; `smtpb_abi_version()` returns the
/// library's.
pub const SMTPB_ABI_VERSION: u32 = 1;

/// The minor ABI version of this header (1: the version 1.1 additions; 2:
/// the version 1.2 additions); `smtpb_abi_minor()` returns the library's.
pub const SMTPB_ABI_MINOR: u32 = 2;

/// `smtpb_client_open` flag: resume delivery of what the spool holds.
pub const SMTPB_OPEN_DEFAULT: u32 = 0;
/// `smtpb_client_open` flag: open with the outbox paused until
/// `smtpb_outbox_resume`.
pub const SMTPB_OPEN_PAUSED: u32 = 1;
/// `smtpb_client_open` flag: other clients, in this and other processes
/// of this machine, may open the same data_dir with this flag too (ABI
/// §17). Exclusive and shared opens exclude each other (BUSY naming the
/// holder). One sharing client at a time delivers the outbox (the holder
/// of the delivery lease); every client can queue, send, read and manage.
pub const SMTPB_OPEN_SHARED: u32 = 2;
/// `smtpb_client_open` flag: this client never delivers queued mail and
/// cannot `smtpb_send`: it queues, reads and manages; a sharing client that
/// delivers sends what it queues.
pub const SMTPB_OPEN_SUBMIT_ONLY: u32 = 4;

// The header's values are literals (cbindgen evaluates no paths); they
// must be the core's.
const _: () = assert!(SMTPB_ABI_VERSION == crate::ABI_VERSION);
const _: () = assert!(SMTPB_ABI_MINOR == crate::ABI_MINOR);
const _: () = assert!(SMTPB_OPEN_DEFAULT == crate::client::OPEN_DEFAULT);
const _: () = assert!(SMTPB_OPEN_PAUSED == crate::client::OPEN_PAUSED);
const _: () = assert!(SMTPB_OPEN_SHARED == crate::client::OPEN_SHARED);
const _: () = assert!(SMTPB_OPEN_SUBMIT_ONLY == crate::client::OPEN_SUBMIT_ONLY);

/// A client: one data directory with its configuration, credential store,
/// pooled connections and message statuses.
///
/// Made by `smtpb_client_open`; ended by `smtpb_client_close`, which also
/// frees it. Safe to use from many threads at once.
///
/// Methods: smtpb_client_open, smtpb_client_shutdown, smtpb_client_close,
/// smtpb_config_set, smtpb_config_get, smtpb_config_import_keys,
/// smtpb_config_load_json, smtpb_config_export_json, smtpb_credentials_set,
/// smtpb_credentials_set_oauth2, smtpb_credentials_remove,
/// smtpb_credentials_masked, smtpb_send, smtpb_enqueue, smtpb_merge,
/// smtpb_test_connection, smtpb_status, smtpb_batch_status,
/// smtpb_outbox_list, smtpb_outbox_query, smtpb_outbox_purge,
/// smtpb_outbox_stats, smtpb_wait, smtpb_flush,
/// smtpb_cancel, smtpb_batch_cancel, smtpb_retry, smtpb_outbox_pause,
/// smtpb_outbox_resume, smtpb_limits_reset, smtpb_blacklist_add,
/// smtpb_blacklist_remove, smtpb_blacklist_list, smtpb_set_event_callback,
/// smtpb_set_event_callback_all,
/// smtpb_set_log_callback, smtpb_transcript, smtpb_probe,
/// smtpb_oauth2_begin, smtpb_oauth2_complete, smtpb_oauth2_cancel,
/// smtpb_credentials_set_oauth2_refresh.
pub struct smtpb_client {
    client: Client,
    /// Calls inside the library on this handle; close waits for them.
    calls: Mutex<usize>,
    calls_done: Condvar,
    closing: AtomicBool,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', "\\0")).expect("NULs replaced");
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

fn clear_last_error() {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        if !e.as_bytes().is_empty() {
            *e = CString::default();
        }
    });
}

/// Leaves a warning in the calling thread's last error after a call that
/// succeeded (`smtpb_client_open` recovering past damage).
fn set_last_warning(message: &str) {
    set_last_error(message);
}

/// A pointer to the calling thread's last error, valid until the next call
/// that changes it.
fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// The export that `path` names: the last segment of the path of the
/// function [`ffi_export!`] declares inside it
/// (`smtpbridge::ffi::send::smtpb_send::here` → `smtpb_send`).
fn export_name(path: &str) -> &str {
    let path = path.strip_suffix("::here").unwrap_or(path);
    path.rsplit("::").next().unwrap_or(path)
}

/// Runs an export's body: catches panics, maps the result to a code and
/// sets or clears the thread's last error. `function` is the export's
/// path; its name is read from it only when a panic is reported.
fn boundary(function: &str, body: impl FnOnce() -> Result<()>) -> smtpb_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            clear_last_error();
            SMTPB_OK
        }
        Ok(Err(e)) => {
            set_last_error(e.message());
            e.code() as smtpb_result
        }
        Err(payload) => {
            set_last_error(&format!(
                "internal error in {}: {}",
                export_name(function),
                panic_message(payload.as_ref())
            ));
            SMTPB_ERR_INTERNAL
        }
    }
}

/// The body of an export, which names itself once: by its `fn` item.
///
/// The `pub unsafe extern "C" fn` stays a plain item (cbindgen reads it
/// without expanding macros); its body is one `ffi_export!` that gives it
/// the panic boundary, the mapping of the result to a code and the last
/// error, the NULL checks of the client and of out-pointers, and the
/// clearing of out-pointers on entry:
///
/// - `ffi_export!(client c => |client| body)`: `c` is entered as a call on
///   the client (NULL is `SMTPB_ERR_INVALID_ARGUMENT`, a client being
///   closed `SMTPB_ERR_STATE`), its log lines go to it; `body` is a
///   `Result<()>`.
/// - `client c, out o => |client| text`: `*o` is set to NULL on entry and
///   is required (NULL names `o`); `text` (a `String`, `?` allowed) is
///   written to it when the body succeeds.
/// - `client c, fills o => |client| body`: `*o` is set to NULL on entry and
///   may be NULL; `body` writes it itself (with [`write_out`], which skips a
///   NULL `o`), also on failure where the contract says so.
/// - `out o => body` and `=> body`: no client; `*o` (a pointer of any
///   type) set to NULL on entry and required.
macro_rules! ffi_export {
    (@path) => {{
        fn here() {}
        ::std::any::type_name_of_val(&here)
    }};
    (client $c:ident => |$client:ident| $body:expr) => {
        $crate::ffi::with_client(ffi_export!(@path), $c, |$client| $body)
    };
    (client $c:ident, out $out:ident => |$client:ident| $text:expr) => {{
        $crate::ffi::clear_out($out);
        $crate::ffi::with_client(ffi_export!(@path), $c, |$client| {
            $crate::ffi::required_out($out, stringify!($out))?;
            let text: String = $text;
            $crate::ffi::write_out($out, text);
            Ok(())
        })
    }};
    (client $c:ident, fills $out:ident => |$client:ident| $body:expr) => {{
        $crate::ffi::clear_out($out);
        $crate::ffi::with_client(ffi_export!(@path), $c, |$client| $body)
    }};
    (out $out:ident => $body:expr) => {{
        $crate::ffi::clear_out($out);
        $crate::ffi::boundary(ffi_export!(@path), || {
            $crate::ffi::required_out($out, stringify!($out))?;
            $body
        })
    }};
    (=> $body:expr) => {
        $crate::ffi::boundary(ffi_export!(@path), || $body)
    };
}
use ffi_export;

/// Borrows a required string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for the call.
unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(Error::invalid_argument(format!("{name} is NULL")));
    }
    let bytes = CStr::from_ptr(ptr).to_bytes();
    std::str::from_utf8(bytes).map_err(|e| {
        Error::invalid_argument(format!(
            "{name}: invalid UTF-8 at byte {}: UTF-8 expected — ANSI or UTF-16 text?",
            e.valid_up_to()
        ))
    })
}

/// Borrows an optional string argument (NULL = `None`).
///
/// # Safety
/// As [`str_arg`].
unsafe fn opt_str_arg<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        str_arg(ptr, name).map(Some)
    }
}

/// Borrows an optional absolute path argument.
///
/// # Safety
/// As [`str_arg`].
unsafe fn opt_path_arg(ptr: *const c_char, name: &str) -> Result<Option<PathBuf>> {
    Ok(opt_str_arg(ptr, name)?.map(PathBuf::from))
}

/// Clears an out-pointer on entry (when it is not NULL).
///
/// # Safety
/// `out` is NULL or valid for a write.
unsafe fn clear_out<T>(out: *mut *mut T) {
    if !out.is_null() {
        *out = ptr::null_mut();
    }
}

/// Hands `value` to the caller through `out` (ignored when `out` is NULL).
///
/// # Safety
/// `out` is NULL or valid for a write.
unsafe fn write_out(out: *mut *mut c_char, value: String) {
    if out.is_null() {
        return;
    }
    let text = CString::new(value.replace('\0', "\\u0000")).expect("NULs replaced");
    *out = text.into_raw();
}

/// Checks that a required out-pointer is not NULL.
fn required_out<T>(out: *mut *mut T, name: &str) -> Result<()> {
    if out.is_null() {
        Err(Error::invalid_argument(format!("{name} is NULL")))
    } else {
        Ok(())
    }
}

/// A call in progress on a client handle; close waits until none is left.
struct Call<'a> {
    handle: &'a smtpb_client,
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        let mut calls = self.handle.calls.lock().unwrap_or_else(|e| e.into_inner());
        *calls -= 1;
        // Only close waits on `calls_done`, and it sets `closing` under this
        // lock before it looks at the count: without it, nobody to wake
        // (and no futex call on every export's way out).
        if *calls == 0 && self.handle.closing.load(Ordering::Acquire) {
            self.handle.calls_done.notify_all();
        }
    }
}

/// Enters a call on a client handle.
///
/// # Safety
/// `ptr` is NULL or a handle from `smtpb_client_open` not yet closed.
unsafe fn enter<'a>(ptr: *mut smtpb_client) -> Result<(Call<'a>, &'a Client)> {
    let handle: &'a smtpb_client = match ptr.as_ref() {
        Some(h) => h,
        None => return Err(Error::invalid_argument("client is NULL")),
    };
    // Checked and counted under one lock, which close also takes to set
    // `closing`: a call either sees the close or is waited for by it.
    let mut calls = handle.calls.lock().unwrap_or_else(|e| e.into_inner());
    if handle.closing.load(Ordering::Acquire) {
        return Err(Error::state("the client is being closed"));
    }
    *calls += 1;
    Ok((Call { handle }, &handle.client))
}

/// Runs an export's body with the client behind `c`, inside the panic
/// boundary and counted as a call in progress.
///
/// # Safety
/// `c` is NULL or a handle from `smtpb_client_open` not yet closed.
unsafe fn with_client(function: &str, c: *mut smtpb_client, body: impl FnOnce(&Client) -> Result<()>) -> smtpb_result {
    boundary(function, || {
        let (_call, client) = enter(c)?;
        // Log lines of this call go to this client.
        let _log = client.log_scope();
        body(client)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An export as the ABI's are written, which panics.
    unsafe extern "C" fn smtpb_test_panics(out: *mut *mut c_char) -> smtpb_result {
        ffi_export!(out out => panic!("boom"))
    }

    fn last_error() -> String {
        unsafe { CStr::from_ptr(last_error_ptr()) }.to_str().unwrap().to_string()
    }

    #[test]
    fn a_panic_becomes_internal_naming_the_export() {
        let mut out: *mut c_char = std::ptr::dangling_mut::<c_char>();
        assert_eq!(unsafe { smtpb_test_panics(&mut out) }, SMTPB_ERR_INTERNAL);
        assert!(out.is_null(), "the out-pointer is cleared on entry");
        assert_eq!(last_error(), "internal error in smtpb_test_panics: boom");
        assert_eq!(boundary("smtpb_test", || Ok(())), SMTPB_OK);
        assert_eq!(last_error(), "");
    }

    #[test]
    fn a_null_out_pointer_is_named() {
        assert_eq!(unsafe { smtpb_test_panics(ptr::null_mut()) }, SMTPB_ERR_INVALID_ARGUMENT);
        assert_eq!(last_error(), "out is NULL");
    }

    #[test]
    fn an_export_is_named_by_its_path() {
        assert_eq!(export_name("smtpbridge::ffi::send::smtpb_send::here"), "smtpb_send");
        assert_eq!(export_name("smtpb_send"), "smtpb_send");
    }

    #[test]
    fn bad_utf8_names_the_argument_and_offset() {
        let bytes = b"ab\xe4cd\0";
        let err = unsafe { str_arg(bytes.as_ptr().cast(), "key") }.unwrap_err();
        assert!(err.message().contains("key") && err.message().contains("byte 2"), "{}", err.message());
        let err = unsafe { str_arg(ptr::null(), "value") }.unwrap_err();
        assert!(err.message().contains("value is NULL"));
    }
}
