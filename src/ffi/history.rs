//! The outbox over months: paged queries and purges of the history.

use std::ffi::c_char;

use super::{ffi_export, opt_str_arg, smtpb_client, smtpb_result, str_arg, wire, write_out};

/// One page of statuses, newest first (by id, which sorts by creation
/// time). `query_json`: an object whose fields are all optional:
/// `"state"` (array of state names), `"batch_id"`, `"reference"` (exact),
/// `"reference_prefix"`, `"profile"` (any letter case), `"since"` and
/// `"until"` (RFC 3339 UTC such as `2026-11-22T10:00:00Z`, by
/// `created_at`: since inclusive, until exclusive), `"limit"` (1–1000,
/// default 100) and `"cursor"` (the `next_cursor` of the page before; NULL
/// or absent = the first page). A field set to `null` is as if absent.
/// `*out_json`: `{"items": [status...], "next_cursor": "..." | null}`;
/// `null` when there is no further page. Pages are stable while delivery
/// goes on: a cursor names a position in the history, so messages created
/// after the first page never shift later pages, and a message appears in
/// at most one page (with its state when that page was read). Status
/// lookups, pages and open do not scan the history: a page costs the same
/// with a million statuses as with a hundred.
///
/// Ownership: `query_json` is borrowed for the call; on success `*out_json`
/// is the caller's to free with `smtpb_string_free`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL, malformed JSON, an unknown
/// field, a value of the wrong type or out of range, an unknown state, a
/// time that is not RFC 3339, a cursor this library did not make — each
/// named); `SMTPB_ERR_IO` (the outbox store cannot be read);
/// `SMTPB_ERR_STATE`.
///
/// Thread safety: safe from any thread, also while messages are delivered.
///
/// # Safety
/// `c` is NULL or an open client; `query_json` is NULL or NUL-terminated;
/// `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_outbox_query(
    c: *mut smtpb_client,
    query_json: *const c_char,
    out_json: *mut *mut c_char,
) -> smtpb_result {
    ffi_export!(client c, out out_json => |client| {
        let text = str_arg(query_json, "query_json")?;
        client.check_open()?;
        wire::to_json(&client.outbox_query(&wire::parse_query(text)?)?)
    })
}

/// Purges the final statuses created before `before` (RFC 3339 UTC) in the
/// states `states_json` lists (a JSON array of `"sent"`, `"cancelled"`,
/// `"failed"`; NULL = all three), with what the outbox keeps of them; the
/// space is given back to the file system. Queued, sending and deferred
/// mail is never purged. A purged id is `SMTPB_ERR_NOT_FOUND` afterwards
/// and its idempotency key is free again; archive folders are the host's
/// and are never touched. The library also purges by itself, at open and
/// hourly: `sent` and `cancelled` after SMTPKeepSentDays (30), `failed`
/// after SMTPKeepFailedDays (90); 0 = kept for ever. A purge works in small
/// transactions, so delivery goes on meanwhile, and a crash at any point
/// of it loses nothing but statuses it was asked to purge.
/// `*out_json`: `{"purged": n}`.
///
/// Ownership: `before` and `states_json` are borrowed for the call; on
/// success a non-NULL `*out_json` is the caller's to free with
/// `smtpb_string_free`. NULL `out_json` allowed.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL or bad `before`, malformed
/// `states_json`, an unknown or not final state — named);
/// `SMTPB_ERR_IO` (the outbox store cannot be written: the statuses purged
/// before the failure stay purged, the rest are kept); `SMTPB_ERR_STATE`.
///
/// Thread safety: safe from any thread; one purge at a time per client is
/// not required (they simply share the work).
///
/// # Safety
/// `c` is NULL or an open client; `before` and `states_json` are NULL or
/// NUL-terminated; `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_outbox_purge(
    c: *mut smtpb_client,
    before: *const c_char,
    states_json: *const c_char,
    out_json: *mut *mut c_char,
) -> smtpb_result {
    ffi_export!(client c, fills out_json => |client| {
        let (before, states_json) = (str_arg(before, "before")?, opt_str_arg(states_json, "states_json")?);
        client.check_open()?;
        let before = wire::parse_time(before, "before")?;
        let purged = client.outbox_purge(before, &wire::parse_purge_states(states_json)?)?;
        write_out(out_json, wire::to_json(&wire::Purged { purged }));
        Ok(())
    })
}
