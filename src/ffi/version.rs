//! Versions, result names, the last error and freeing strings.

use std::ffi::{c_char, CString};

use super::{last_error_ptr, smtpb_result};
use crate::error::Code;

/// The ABI version of the loaded library (1). A host compares it with
/// `SMTPB_ABI_VERSION` from the header it was built with.
///
/// Thread safety: any thread, any time; never changes the last error.
#[no_mangle]
pub extern "C" fn smtpb_abi_version() -> u32 {
    crate::ABI_VERSION
}

/// The minor ABI version of the loaded library: 1 for a library with the
/// version 1.1 functions (OAuth2 sign-in, diagnostics, outbox queries,
/// ...), 2 with the version 1.2 ones (`SMTPB_OPEN_SHARED`,
/// `smtpb_set_event_callback_all`, `smtpb_render`, `smtpb_validate`).
/// Within ABI version 1 functions are only added, so a host built with a
/// newer header calls a 1.1 function only when `smtpb_abi_minor() >= 1`,
/// a 1.2 one only when it is `>= 2`; a library without this function is
/// 1.0.
///
/// Thread safety: any thread, any time; never changes the last error.
#[no_mangle]
pub extern "C" fn smtpb_abi_minor() -> u32 {
    crate::ABI_MINOR
}

/// The library's version, e.g. "1.2.0" (as `SMTPB_VERSION` in the header).
///
/// Ownership: static; never freed by the caller.
/// Thread safety: any thread, any time; never changes the last error.
#[no_mangle]
pub extern "C" fn smtpb_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The name of a result code, e.g. "SMTPB_ERR_TLS"; "SMTPB_ERR_UNKNOWN"
/// for a code this library does not know.
///
/// Ownership: static; never freed by the caller.
/// Thread safety: any thread, any time; never changes the last error.
#[no_mangle]
pub extern "C" fn smtpb_result_name(code: smtpb_result) -> *const c_char {
    static NAMES: once_cell::sync::Lazy<Vec<(i32, CString)>> = once_cell::sync::Lazy::new(|| {
        Code::ALL.iter().map(|c| (*c as i32, CString::new(c.name()).expect("no NUL"))).collect()
    });
    match NAMES.iter().find(|(value, _)| *value == code) {
        Some((_, name)) => name.as_ptr(),
        None => c"SMTPB_ERR_UNKNOWN".as_ptr(),
    }
}

/// The message of the most recent failed call on the calling thread: it
/// names the key, field, argument, address, file or line at fault, and
/// never holds a password, token or credential. "" after a success; never
/// NULL.
///
/// Ownership: owned by the library; never freed by the caller. Valid until
/// the next call on this thread other than smtpb_last_error,
/// smtpb_string_free, smtpb_result_name, smtpb_version and
/// smtpb_abi_version and smtpb_abi_minor (which never change it).
#[no_mangle]
pub extern "C" fn smtpb_last_error() -> *const c_char {
    last_error_ptr()
}

/// Frees a string the library handed out through an out-pointer. NULL is
/// allowed and does nothing.
///
/// Ownership: takes back `s`, which must come from this library and must
/// not be freed twice or with another allocator's free.
/// Thread safety: any thread; never changes the last error.
///
/// # Safety
/// `s` is NULL or a string returned through an out-pointer of this
/// library and not freed yet.
#[no_mangle]
pub unsafe extern "C" fn smtpb_string_free(s: *mut c_char) {
    if !s.is_null() {
        drop(CString::from_raw(s));
    }
}
