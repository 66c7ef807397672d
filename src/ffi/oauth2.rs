//! OAuth2 done by the library (ABI §13): sign-in flows and refresh tokens.

use std::ffi::c_char;

use super::{ffi_export, opt_str_arg, smtpb_client, smtpb_result, str_arg, wire};

/// Starts a sign-in of `user_id` (NULL: the shared credential; with
/// SMTPCredentials=Shared always the shared one) with the OAuth2 settings
/// of `profile` (NULL: the profile a message without `from` would use,
/// as in `smtpb_test_connection`). `kind`: `"browser"` = authorization
/// code with PKCE S256 (RFC 7636); the library listens on 127.0.0.1 on an
/// ephemeral port for the one redirect (RFC 8252 §7.3), checks `state`,
/// and answers the browser with a "you may close this window" page;
/// `"device"` = device authorization grant (RFC 8628), polled at the
/// provider's `interval` (5 s more after each `slow_down`) until
/// `expires_in`. The library asks for the profile's SMTPOAuth2Scopes plus
/// `openid profile email` (for the username in the ID token).
/// SMTPOAuth2Scopes defaults to the provider's mail scope plus
/// `offline_access` (Microsoft, Google), and to `openid offline_access`
/// for `OpenID` (add the provider's own mail scope to it). The browser
/// sign-in sends `prompt=select_account`, never `prompt=consent`: in
/// tenants where the administrator turned user consent off a forced
/// consent page blocks every user.
///
/// `*out_json` is `{"flow_id", "kind", "authorize_url"` (browser: the host
/// opens it in the user's browser)`, "verification_uri", "user_code"`
/// (device: the host shows them)`, "verification_uri_complete",
/// "expires_at", "interval"}`; fields that do not apply are null. Nothing
/// is stored until `smtpb_oauth2_complete`.
///
/// Ownership: strings are borrowed for the call; on success `*out_json`
/// is the caller's, freed with `smtpb_string_free`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL client, kind or out_json; an
/// unknown kind; bad UTF-8); `SMTPB_ERR_NOT_FOUND` (unknown profile);
/// `SMTPB_ERR_CONFIG` (SMTPAuthModel is not OAuth2, SMTPOAuth2Provider is
/// None, no SMTPOAuth2ClientId, SMTPOAuth2Flow=ClientCredentials, an
/// issuer without that flow); `SMTPB_ERR_CONNECT` / `SMTPB_ERR_TLS` (the
/// issuer's discovery document or device endpoint cannot be had);
/// `SMTPB_ERR_AUTH` (the provider refused the device request);
/// `SMTPB_ERR_STATE`.
///
/// Thread safety: any thread; the waiting runs on a library thread.
///
/// # Safety
/// `c` is NULL or an open client; strings are NULL or NUL-terminated;
/// `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_oauth2_begin(
    c: *mut smtpb_client,
    profile: *const c_char,
    user_id: *const c_char,
    kind: *const c_char,
    out_json: *mut *mut c_char,
) -> smtpb_result {
    ffi_export!(client c, out out_json => |client| {
        let sign_in = client.oauth2_begin(
            opt_str_arg(profile, "profile")?,
            opt_str_arg(user_id, "user_id")?,
            str_arg(kind, "kind")?,
        )?;
        wire::to_json(&sign_in)
    })
}

/// Waits up to `timeout_ms` (0 = do not wait, `UINT32_MAX` = no limit) for
/// the sign-in `flow_id`. On success the refresh token, the access token
/// and its expiry are stored encrypted for the user (replacing what was
/// there), the username is taken from the ID token (`preferred_username`,
/// else `email`) when the credential had none, the user's messages
/// waiting for credentials are released at once, the flow is finished,
/// and `*out_json` is the masked credential (as `smtpb_credentials_masked`)
/// plus `"advice"`: null, or, when the provider gave no refresh token
/// (`"refreshable": false`: the sign-in lasts until the access token
/// expires), `{"key": "not_refreshable", "text"}`, which says to add
/// `offline_access` to SMTPOAuth2Scopes. Such a sign-in still succeeds.
///
/// Refresh (every credential with a refresh token, from a sign-in or
/// `smtpb_credentials_set_oauth2_refresh`): before a session logs in, an
/// access token that expires within min(5 minutes, half its lifetime) is
/// refreshed (the lifetime is counted from when the token was stored; a
/// token of unknown expiry is refreshed only when the server refuses it).
/// So a provider's 2-minute tokens are renewed in their last minute, not
/// for every session. A refresh asks for the scopes of the original
/// grant: no `scope` parameter (RFC 6749 §6), except for
/// SMTPOAuth2Provider=Microsoft, whose token endpoint is sent exactly the
/// profile's SMTPOAuth2Scopes; a refresh token obtained with fewer scopes
/// than the profile's stays usable.
///
/// Ownership: `flow_id` is borrowed; on success `*out_json` is the
/// caller's, freed with `smtpb_string_free`.
///
/// Errors: `SMTPB_ERR_TIMEOUT` (not finished yet: call again);
/// `SMTPB_ERR_AUTH` (refused, cancelled or expired; the message names the
/// provider's error: access_denied, expired_token, invalid_client, ...;
/// the flow is finished); `SMTPB_ERR_CONNECT` / `SMTPB_ERR_TLS` (the token
/// endpoint could not be reached; finished); `SMTPB_ERR_NOT_FOUND`
/// (unknown or finished flow); `SMTPB_ERR_INVALID_ARGUMENT`;
/// `SMTPB_ERR_IO`; `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `flow_id` is NULL or NUL-terminated;
/// `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_oauth2_complete(
    c: *mut smtpb_client,
    flow_id: *const c_char,
    timeout_ms: u32,
    out_json: *mut *mut c_char,
) -> smtpb_result {
    ffi_export!(client c, out out_json => |client| {
        let signed_in = client.oauth2_complete(str_arg(flow_id, "flow_id")?, timeout_ms)?;
        wire::to_json(&signed_in)
    })
}

/// Cancels the sign-in `flow_id`: the loopback listener is closed (or the
/// device polling stops) before this returns; nothing is stored.
///
/// Errors: `SMTPB_ERR_NOT_FOUND` (unknown or finished flow);
/// `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `flow_id` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_oauth2_cancel(c: *mut smtpb_client, flow_id: *const c_char) -> smtpb_result {
    ffi_export!(client c => |client| client.oauth2_cancel(str_arg(flow_id, "flow_id")?))
}

/// Stores a refresh token the host obtained itself (for example with
/// MSAL) for `user_id` (NULL = shared), encrypted; the library gets access
/// tokens from it with the OAuth2 settings of the profile a message uses,
/// before the first AUTH. `username` may be "" to take it from the ID
/// token at the first refresh. New credentials release the user's
/// messages waiting for credentials. Its refreshes follow the rules of
/// `smtpb_oauth2_complete` (no `scope` parameter except for Microsoft).
///
/// Ownership: every string is borrowed for the call.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL client, username or
/// refresh_token; an empty refresh_token; bad UTF-8); `SMTPB_ERR_IO`;
/// `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_credentials_set_oauth2_refresh(
    c: *mut smtpb_client,
    user_id: *const c_char,
    username: *const c_char,
    refresh_token: *const c_char,
) -> smtpb_result {
    ffi_export!(client c => |client| {
        client.credentials_set_oauth2_refresh(
            opt_str_arg(user_id, "user_id")?,
            str_arg(username, "username")?,
            str_arg(refresh_token, "refresh_token")?,
        )
    })
}
