//! The encrypted credential store.

use std::ffi::c_char;

use super::{ffi_export, opt_str_arg, smtpb_client, smtpb_result, str_arg, wire};

/// Stores a username and password for `user_id` (the host's user or
/// employee id; NULL = the shared credential, the same one SMTPUsername and
/// SMTPPassword set), replacing what was there. Stored encrypted
/// (AES-256-GCM, key from PBKDF2-HMAC-SHA256 over the master secret); the
/// password never appears in a file, an error or an export in plaintext.
/// `password` may be "" (SMTPAuthentication=Optional) but not NULL.
///
/// Per profile: a `user_id` of the form `"profile:user_id"` (the part
/// before the first `:` a profile name, in any letter case; the profile
/// need not exist yet) is that user's credential for that profile alone,
/// and `"profile:"` is the profile's own shared credential (the one
/// `profile.SMTPUsername`/`profile.SMTPPassword` set). A message of
/// profile P and user U logs in with `"P:U"` when it is stored, else with
/// U's credential; with no user (or SMTPCredentials=Shared) with `"P:"`
/// when stored, else the global shared credential. The same ids work in
/// `smtpb_credentials_set_oauth2`, `smtpb_credentials_set_oauth2_refresh`,
/// `smtpb_credentials_remove` and `smtpb_credentials_masked`, and
/// `credentials_needed` events name the id the login used. A user id
/// whose part before the first `:` is no profile name (`"a b:c"`) is a
/// plain user id, as is any id stored by a 1.1 library: such an id keeps
/// matching a message whose `user` is that same text.
///
/// Ownership: every string is borrowed for the call.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL client, username or password;
/// bad UTF-8; an empty user_id); `SMTPB_ERR_IO`; `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_credentials_set(
    c: *mut smtpb_client,
    user_id: *const c_char,
    username: *const c_char,
    password: *const c_char,
) -> smtpb_result {
    ffi_export!(client c => |client| {
        client.credentials_set(
            opt_str_arg(user_id, "user_id")?,
            str_arg(username, "username")?,
            str_arg(password, "password")?,
        )
    })
}

/// Stores an OAuth2 access token (for XOAUTH2, SMTPAuthModel=OAuth2) for
/// `user_id` (NULL = shared), encrypted like a password. `expires_at`:
/// Unix seconds, 0 = unknown; an expired token is not sent.
///
/// Ownership: every string is borrowed for the call.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL or empty username, NULL
/// token, bad UTF-8); `SMTPB_ERR_IO`; `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_credentials_set_oauth2(
    c: *mut smtpb_client,
    user_id: *const c_char,
    username: *const c_char,
    access_token: *const c_char,
    expires_at: i64,
) -> smtpb_result {
    ffi_export!(client c => |client| {
        client.credentials_set_oauth2(
            opt_str_arg(user_id, "user_id")?,
            str_arg(username, "username")?,
            str_arg(access_token, "access_token")?,
            expires_at,
        )
    })
}

/// Removes the credential of `user_id` (NULL = shared).
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_NOT_FOUND` (no
/// credential for that user); `SMTPB_ERR_IO`; `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `user_id` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_credentials_remove(c: *mut smtpb_client, user_id: *const c_char) -> smtpb_result {
    ffi_export!(client c => |client| client.credentials_remove(opt_str_arg(user_id, "user_id")?))
}

/// Describes the credential of `user_id` (NULL = shared) without its
/// secret: `{"user_id", "username", "kind": "password" | "oauth2",
/// "has_secret", "password": "********", "expires_at", "updated_at",
/// "refreshable", "provider"}` (times RFC 3339 UTC or null; `refreshable`:
/// the library holds a refresh token and renews the access token itself;
/// `provider`: the SMTPOAuth2Provider that issued it, or null).
///
/// Ownership: on success `*out_json` is a string the caller frees with
/// `smtpb_string_free`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_NOT_FOUND`;
/// `SMTPB_ERR_CREDENTIALS` (the entry does not decrypt: the store was
/// changed); `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `user_id` is NULL or NUL-terminated;
/// `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_credentials_masked(
    c: *mut smtpb_client,
    user_id: *const c_char,
    out_json: *mut *mut c_char,
) -> smtpb_result {
    ffi_export!(client c, out out_json => |client| wire::to_json(&client.credentials_masked(opt_str_arg(user_id, "user_id")?)?))
}
