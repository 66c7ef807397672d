//! Send limits.

use std::ffi::c_char;

use super::{ffi_export, opt_str_arg, smtpb_client, smtpb_result};

/// Resets the send-limit counters (SMTPSendLimit per SMTPSendLimitPeriod,
/// and the SMTPBatchPerMinute window) of `profile` (any letter case), or of
/// every profile when `profile` is NULL: the manual reset of the host's
/// settings screen. Counters are otherwise kept across restarts.
///
/// Ownership: `profile` is borrowed for the call.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_NOT_FOUND` (no such
/// profile); `SMTPB_ERR_IO`; `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `profile` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_limits_reset(c: *mut smtpb_client, profile: *const c_char) -> smtpb_result {
    ffi_export!(client c => |client| client.limits_reset(opt_str_arg(profile, "profile")?))
}
