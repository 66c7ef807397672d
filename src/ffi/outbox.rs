//! The outbox: background delivery, statuses, control, events.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use super::{clear_out, opt_str_arg, required_out, smtpb_client, smtpb_result, str_arg, wire, with_client, write_out};

/// Validates a message (as `smtpb_send` does), reads every attachment file
/// into the spool (the host may delete its files once this returns), makes
/// the message durable and returns its id; library threads deliver it,
/// retrying transient failures with backoff (SMTPRetryInitialMs,
/// SMTPRetryMaxMs) until SMTPRetryMaxAgeMs. A message whose
/// `idempotency_key` was used before returns the first message's id and
/// sends nothing new.
///
/// Ownership: `message_json` is borrowed for the call; on success a
/// non-NULL `*out_id` (a 26-character ULID) is the caller's to free with
/// `smtpb_string_free`. NULL `out_id` allowed.
///
/// The bounds of `smtpb_send` apply: attachment paths name regular files
/// (a FIFO never blocks the call), read to what SMTPMaxMessageBytes
/// leaves; header lines within 998 octets; at most 100,000 recipients.
///
/// Errors: as `smtpb_send` up to SMTP: `SMTPB_ERR_INVALID_ARGUMENT`,
/// `SMTPB_ERR_MESSAGE`, `SMTPB_ERR_CONFIG`, `SMTPB_ERR_NOT_FOUND`,
/// `SMTPB_ERR_BLOCKED` (every recipient blacklisted; nothing recorded);
/// `SMTPB_ERR_IO` (the spool could not be written: the message is not
/// queued); `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `message_json` is NULL or
/// NUL-terminated; `out_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_enqueue(
    c: *mut smtpb_client,
    message_json: *const c_char,
    out_id: *mut *mut c_char,
) -> smtpb_result {
    clear_out(out_id);
    with_client("smtpb_enqueue", c, |client| {
        let id = client.enqueue(str_arg(message_json, "message_json")?)?;
        write_out(out_id, id);
        Ok(())
    })
}

/// Counts of a batch's messages per state: `{"batch_id", "total",
/// "queued", "sending", "sent", "deferred", "failed", "cancelled"}`.
///
/// Ownership: on success `*out_json` is the caller's to free with
/// `smtpb_string_free`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_NOT_FOUND` (unknown
/// batch); `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `batch_id` is NULL or NUL-terminated;
/// `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_batch_status(
    c: *mut smtpb_client,
    batch_id: *const c_char,
    out_json: *mut *mut c_char,
) -> smtpb_result {
    clear_out(out_json);
    with_client("smtpb_batch_status", c, |client| {
        required_out(out_json, "out_json")?;
        write_out(out_json, wire::to_json(&client.batch_status(str_arg(batch_id, "batch_id")?)?));
        Ok(())
    })
}

/// The statuses of the messages in `state` (`queued`, `sending`, `sent`,
/// `deferred`, `failed`, `cancelled`; NULL = all), oldest first, as a JSON
/// array of status objects. For small outboxes: the whole history is one
/// string. With a long history (statuses are kept SMTPKeepSentDays /
/// SMTPKeepFailedDays), page through it with `smtpb_outbox_query`.
///
/// Ownership: on success `*out_json` is the caller's to free with
/// `smtpb_string_free`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (also: an unknown state);
/// `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `state` is NULL or NUL-terminated;
/// `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_outbox_list(
    c: *mut smtpb_client,
    state: *const c_char,
    out_json: *mut *mut c_char,
) -> smtpb_result {
    clear_out(out_json);
    with_client("smtpb_outbox_list", c, |client| {
        required_out(out_json, "out_json")?;
        let state = opt_str_arg(state, "state")?;
        client.check_open()?;
        let state = state.map(|s| wire::parse_state(s, "state")).transpose()?;
        write_out(out_json, wire::to_json(&client.outbox_list(state)?));
        Ok(())
    })
}

/// Outbox statistics: `{"queued", "sending", "sent", "deferred", "failed",
/// "cancelled", "paused": [profiles, "*" for all], "profiles": {"Default":
/// {"sent_in_period", "limit", "period", "resets_at"}}, "damaged_records"}`.
/// `damaged_records`: records of the spool lost to damage so far (see
/// `smtpb_client_open`: transactions a damaged WAL lost, 1 for a store
/// found missing, records a 1.0 journal lost) plus the rows found
/// unreadable so far (each counted once: a row of a message not final at
/// the open, a final one when a query, list or status first reads it);
/// 0 for a sound spool. Counts are kept by the store, so this does not
/// scan the history.
/// `"delivery": {"holder": {"pid", "host", "user", "since"} | null}`: the
/// process that delivers the outbox (this one, for a client that holds its
/// data_dir exclusively; the delivery lease's holder on a shared data_dir;
/// null when no sharing client that may deliver is open).
///
/// Ownership: on success `*out_json` is the caller's to free with
/// `smtpb_string_free`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_outbox_stats(c: *mut smtpb_client, out_json: *mut *mut c_char) -> smtpb_result {
    clear_out(out_json);
    with_client("smtpb_outbox_stats", c, |client| {
        required_out(out_json, "out_json")?;
        write_out(out_json, wire::to_json(&client.outbox_stats()?));
        Ok(())
    })
}

/// Waits until message `id` reaches a final state (`sent`, `failed`,
/// `cancelled`) and writes its status. `timeout_ms`: 0 = do not wait,
/// `UINT32_MAX` = no limit.
///
/// Ownership: on success `*out_status_json` is the caller's to free with
/// `smtpb_string_free`; NULL `out_status_json` allowed.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_NOT_FOUND`;
/// `SMTPB_ERR_TIMEOUT` (not final in time; nothing written);
/// `SMTPB_ERR_STATE` (the client was shut down, also while waiting).
///
/// # Safety
/// `c` is NULL or an open client; `id` is NULL or NUL-terminated;
/// `out_status_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_wait(
    c: *mut smtpb_client,
    id: *const c_char,
    timeout_ms: u32,
    out_status_json: *mut *mut c_char,
) -> smtpb_result {
    clear_out(out_status_json);
    with_client("smtpb_wait", c, |client| {
        write_out(out_status_json, wire::to_json(&client.wait(str_arg(id, "id")?, timeout_ms)?));
        Ok(())
    })
}

/// Waits until nothing is `queued` (in a profile not paused) or `sending`;
/// deferred mail does not hold it. `timeout_ms`: 0 = do not wait,
/// `UINT32_MAX` = no limit.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_TIMEOUT`;
/// `SMTPB_ERR_STATE` (the client was shut down, also while waiting).
///
/// # Safety
/// `c` is NULL or an open client.
#[no_mangle]
pub unsafe extern "C" fn smtpb_flush(c: *mut smtpb_client, timeout_ms: u32) -> smtpb_result {
    with_client("smtpb_flush", c, |client| client.flush(timeout_ms))
}

/// Cancels a `queued` or `deferred` message.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_NOT_FOUND`;
/// `SMTPB_ERR_STATE` (sending, sent, failed or cancelled already).
///
/// # Safety
/// `c` is NULL or an open client; `id` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_cancel(c: *mut smtpb_client, id: *const c_char) -> smtpb_result {
    with_client("smtpb_cancel", c, |client| client.cancel(str_arg(id, "id")?))
}

/// Cancels what it can of a batch and writes `{"cancelled", "sending",
/// "sent"}` counts.
///
/// Ownership: on success `*out_json` is the caller's to free with
/// `smtpb_string_free`; NULL `out_json` allowed.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_NOT_FOUND`;
/// `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `batch_id` is NULL or NUL-terminated;
/// `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_batch_cancel(
    c: *mut smtpb_client,
    batch_id: *const c_char,
    out_json: *mut *mut c_char,
) -> smtpb_result {
    clear_out(out_json);
    with_client("smtpb_batch_cancel", c, |client| {
        write_out(out_json, wire::to_json(&client.batch_cancel(str_arg(batch_id, "batch_id")?)?));
        Ok(())
    })
}

/// Hands a `failed` message back to the outbox (`queued`, same Message-ID)
/// or makes a `deferred` one due now; `attempts` keeps counting. A message
/// held by a send limit is still held by it.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_NOT_FOUND`;
/// `SMTPB_ERR_STATE` (queued, sending, sent or cancelled).
///
/// # Safety
/// `c` is NULL or an open client; `id` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_retry(c: *mut smtpb_client, id: *const c_char) -> smtpb_result {
    with_client("smtpb_retry", c, |client| client.retry(str_arg(id, "id")?))
}

/// Pauses delivery of `profile` (NULL = all): its messages stay `queued`.
/// Persisted. Never holds `smtpb_send`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_NOT_FOUND` (unknown
/// profile); `SMTPB_ERR_IO`; `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `profile` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_outbox_pause(c: *mut smtpb_client, profile: *const c_char) -> smtpb_result {
    with_client("smtpb_outbox_pause", c, |client| client.outbox_pause(opt_str_arg(profile, "profile")?))
}

/// Resumes delivery of `profile`; NULL resumes all, including the pause of
/// `SMTPB_OPEN_PAUSED`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_NOT_FOUND`;
/// `SMTPB_ERR_IO`; `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `profile` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_outbox_resume(c: *mut smtpb_client, profile: *const c_char) -> smtpb_result {
    with_client("smtpb_outbox_resume", c, |client| client.outbox_resume(opt_str_arg(profile, "profile")?))
}

/// The event callback: `event_json` is borrowed for the call; `user_data`
/// is what was passed to `smtpb_set_event_callback`.
pub type smtpb_event_fn = Option<unsafe extern "C" fn(event_json: *const c_char, user_data: *mut c_void)>;

/// Sets the function that receives events (NULL `callback` clears it). One event
/// thread per client calls it, one event at a time, in order for each
/// message; never on a thread inside a host's `smtpb_` call and never on a
/// delivery thread. An event is `{"type": "state", "seq", "time", "id",
/// "batch_id", "reference", "state", "attempts", "error_code", "error",
/// "possible_duplicate", "rejected_count"}` or `{"type":
/// "credentials_needed", "seq", "time", "user_id", "profile"}`; past 10,000
/// undelivered events new ones are dropped and the next carries
/// `"dropped": n`. The status is the truth; events are the news.
///
/// When this returns, the old function is not running and never runs
/// again (called from inside the callback: the running call finishes
/// normally). Inside the callback any `smtpb_` call is allowed (close is
/// deferred until the callback returns). The callback must return normally
/// (no C++/.NET exception, no longjmp) and must not wait on a thread that
/// may be in close or flush.
///
/// On a shared data_dir (`SMTPB_OPEN_SHARED`) the events of the messages
/// this client queued reach it whichever process delivers them: a change
/// another process makes is noticed within 200 ms (the change log the
/// store keeps is read every 200 ms); several changes in between may come
/// as the last state only.
///
/// Ownership: `user_data` stays the host's; the library only passes it
/// back.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL client); `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `callback` is NULL or a function safe to call
/// from another thread with `user_data` until it is replaced.
#[no_mangle]
pub unsafe extern "C" fn smtpb_set_event_callback(
    c: *mut smtpb_client,
    callback: smtpb_event_fn,
    user_data: *mut c_void,
) -> smtpb_result {
    with_client("smtpb_set_event_callback", c, |client| client.set_event_callback(event_callback(callback, user_data)))
}

/// Like `smtpb_set_event_callback`, but for every message of the data_dir,
/// including those other clients and processes queued (a monitor of a
/// shared data_dir). It replaces the callback set by either function; for
/// a client that does not share its data_dir it is the same as
/// `smtpb_set_event_callback`.
///
/// Ownership: `user_data` stays the host's; the library only passes it
/// back.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL client); `SMTPB_ERR_STATE`.
///
/// # Safety
/// As `smtpb_set_event_callback`.
#[no_mangle]
pub unsafe extern "C" fn smtpb_set_event_callback_all(
    c: *mut smtpb_client,
    callback: smtpb_event_fn,
    user_data: *mut c_void,
) -> smtpb_result {
    with_client("smtpb_set_event_callback_all", c, |client| {
        client.set_event_callback_all(event_callback(callback, user_data))
    })
}

/// The host's callback and its `user_data` as the core's callback.
fn event_callback(callback: smtpb_event_fn, user_data: *mut c_void) -> Option<crate::outbox::events::Callback> {
    callback.map(|f| {
        let data = user_data as usize;
        Arc::new(move |event: &str| {
            let text = CString::new(event).unwrap_or_default();
            // SAFETY: the host promised `f` may be called with its
            // user_data until it is replaced.
            unsafe { f(text.as_ptr(), data as *mut c_void) }
        }) as crate::outbox::events::Callback
    })
}
