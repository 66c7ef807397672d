//! Configuration keys and the blacklist.

use std::ffi::c_char;

use super::{ffi_export, opt_str_arg, smtpb_client, smtpb_result, str_arg, wire};

/// Sets one configuration key. `key` is a key of the table in the
/// documentation (any letter case), optionally prefixed `Profile.` for a
/// profile other than `Default` (created on first use); `value` NULL
/// restores the key's default, and "" is the default too except for
/// SMTPPassword (an empty password). The change applies to the next
/// message and is persisted in data_dir (atomic write). SMTPUsername and
/// SMTPPassword go to the credential store, encrypted.
///
/// Shared credential per profile: SMTPUsername and SMTPPassword without a
/// prefix are the global shared credential (the NULL user of
/// `smtpb_credentials_set`); `Name.SMTPUsername` and `Name.SMTPPassword`
/// are profile Name's own (the credential `smtpb_credentials_set` calls
/// `"Name:"`). They form one credential: a profile with either of its own
/// logs in with its own username and password, a profile with neither
/// uses the global ones. SMTPOAuth2ClientSecret is per profile as before.
/// SMTPTestAddresses takes addresses separated by `;` or `,` (display
/// names allowed, kept as the bare addresses).
///
/// Files: SMTPCaFile and SMTPDkimKeyFile must name regular files (a FIFO,
/// device or folder is `SMTPB_ERR_CONFIG` naming it, unread) and are read
/// at most to 16 MiB and 1 MiB (+ 1 byte; a larger file is refused by its
/// size). SMTPLogFile is opened (created) when set: a missing folder, no
/// permission, a folder, a device such as `/dev/full` or a FIFO is
/// `SMTPB_ERR_CONFIG` naming the path and why, and the previous value is
/// kept. A log file that stops being writable later loses its lines and
/// never fails anything; one that cannot be opened when a client opens
/// (its folder removed since) is not an error of the open.
///
/// Ownership: `key` and `value` are borrowed for the call.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL client or key, bad UTF-8);
/// `SMTPB_ERR_CONFIG` (unknown key, prefix on a global key, bad profile
/// name, value outside its set: the message names the key and the accepted
/// values; a relative or unusable SMTPCaFile/SMTPDkimKeyFile, naming the
/// file; an SMTPLogFile that cannot be opened for appending, naming the
/// path and the OS error); `SMTPB_ERR_IO` (the configuration could not be saved);
/// `SMTPB_ERR_STATE` (after shutdown).
///
/// # Safety
/// `c` is NULL or an open client; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_config_set(
    c: *mut smtpb_client,
    key: *const c_char,
    value: *const c_char,
) -> smtpb_result {
    ffi_export!(client c => |client| client.config_set(str_arg(key, "key")?, opt_str_arg(value, "value")?))
}

/// Reads the effective value of a key, defaults included ("" when the key
/// has no value). SMTPPassword cannot be read back. `Name.SMTPUsername` is
/// profile Name's own shared username, else the global one (the one its
/// messages would use).
///
/// Ownership: on success `*out_value` is a string the caller frees with
/// `smtpb_string_free`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL client, key or out_value, bad
/// UTF-8); `SMTPB_ERR_CONFIG` (unknown key, SMTPPassword);
/// `SMTPB_ERR_STATE` (after shutdown).
///
/// # Safety
/// `c` is NULL or an open client; `key` is NULL or NUL-terminated;
/// `out_value` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_config_get(
    c: *mut smtpb_client,
    key: *const c_char,
    out_value: *mut *mut c_char,
) -> smtpb_result {
    ffi_export!(client c, out out_value => |client| client.config_get(str_arg(key, "key")?)?)
}

/// Applies a host's configuration table given as `Key=Value` lines (LF or
/// CRLF; blank lines and lines starting with `#` or `;` are ignored), all
/// or nothing: a key given twice in any letter case, an unknown key or a
/// bad value rejects the whole import and changes nothing.
///
/// Ownership: `lines` is borrowed for the call.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL, bad UTF-8);
/// `SMTPB_ERR_CONFIG` (the message names the line and the key);
/// `SMTPB_ERR_IO`; `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `lines` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_config_import_keys(c: *mut smtpb_client, lines: *const c_char) -> smtpb_result {
    ffi_export!(client c => |client| client.config_import_keys(str_arg(lines, "lines")?))
}

/// Replaces the whole configuration, atomically, with the JSON shape
/// `{"global": {...}, "profiles": [{"name": "Default", ...}], "blacklist":
/// [...]}` (key names verbatim; values as strings or their natural JSON
/// type).
///
/// Ownership: `json` is borrowed for the call.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL, bad UTF-8, malformed JSON
/// with line and column, duplicate key); `SMTPB_ERR_CONFIG` (unknown key,
/// a global key in a profile or the reverse, bad profile name, bad value:
/// named); `SMTPB_ERR_IO`; `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `json` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_config_load_json(c: *mut smtpb_client, json: *const c_char) -> smtpb_result {
    ffi_export!(client c => |client| client.config_load_json(str_arg(json, "json")?))
}

/// Writes the configuration in the shape `smtpb_config_load_json` takes,
/// with natural JSON types and no secret; loading it back gives the same
/// configuration.
///
/// Ownership: on success `*out_json` is a string the caller frees with
/// `smtpb_string_free`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL); `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_config_export_json(c: *mut smtpb_client, out_json: *mut *mut c_char) -> smtpb_result {
    ffi_export!(client c, out out_json => |client| wire::to_json(&client.config_export()?))
}

/// Adds a blacklist entry: an address ("gone@example.com", any letter
/// case) or a whole domain ("@example.com"). Blacklisted recipients are
/// dropped from every message and listed in its status's `blocked`.
/// Persisted. Adding an entry twice is not an error.
///
/// Ownership: `entry` is borrowed for the call.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL, bad UTF-8, not an address or
/// @domain); `SMTPB_ERR_IO`; `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `entry` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_blacklist_add(c: *mut smtpb_client, entry: *const c_char) -> smtpb_result {
    ffi_export!(client c => |client| client.blacklist_add(str_arg(entry, "entry")?))
}

/// Removes a blacklist entry.
///
/// Ownership: `entry` is borrowed for the call.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_NOT_FOUND` (not on the
/// blacklist); `SMTPB_ERR_IO`; `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `entry` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_blacklist_remove(c: *mut smtpb_client, entry: *const c_char) -> smtpb_result {
    ffi_export!(client c => |client| client.blacklist_remove(str_arg(entry, "entry")?))
}

/// Lists the blacklist as a JSON array of strings (addresses in lower
/// case, domains as "@domain").
///
/// Ownership: on success `*out_json` is a string the caller frees with
/// `smtpb_string_free`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL); `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_blacklist_list(c: *mut smtpb_client, out_json: *mut *mut c_char) -> smtpb_result {
    ffi_export!(client c, out out_json => |client| wire::to_json(&client.blacklist_list()?))
}
