//! Opening, shutting down and closing a client.

use std::ffi::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use super::{boundary, enter, opt_path_arg, opt_str_arg, smtpb_client, smtpb_result};
use crate::error::Error;
use crate::Client;

/// Opens a client.
///
/// `data_dir`: absolute UTF-8 path of the folder for configuration,
/// credential store, outbox spool and archive; created if missing; held
/// with an exclusive lock for the client's life (shared with other
/// sharing clients under `SMTPB_OPEN_SHARED`). NULL = an in-memory client
/// (nothing survives the process). `secret`: the master secret of the
/// credential store; NULL = a random 256-bit key file created once in
/// data_dir, readable by its owner only (for an in-memory client: a random
/// key for this client's life). On Windows that file (`master.key`) holds
/// the key protected with DPAPI: for this Windows account, or for every
/// account of this machine when the process runs as a service account or
/// `SMTPMasterKeyScope=Machine` is set; a raw key file of 1.0/1.1 is
/// migrated at open (same key, no plaintext copy kept), and one DPAPI
/// cannot open (another account or machine, or changed) is
/// `SMTPB_ERR_CREDENTIALS` naming it. There a data_dir inside the user's
/// profile also gets an owner-only ACL (the user and SYSTEM). `flags`: `SMTPB_OPEN_DEFAULT` (0), or
/// any of `SMTPB_OPEN_PAUSED` (1), `SMTPB_OPEN_SHARED` (2), `SMTPB_OPEN_SUBMIT_ONLY` (4, only with
/// `SMTPB_OPEN_SHARED`).
///
/// **Several processes, one outbox** (`SMTPB_OPEN_SHARED`): any number of
/// clients in any number of processes of this machine open the same
/// data_dir; every call works from each. One of them at a time delivers
/// the outbox: the holder of the delivery lease kept in the store (never a
/// submit-only client). When it closes, another takes over at once; when
/// its process dies, within 5 s (its heartbeat is 3 s old, or its pid is
/// gone), and messages it was sending are queued again as
/// `possible_duplicate`. A status another process writes is seen by
/// `smtpb_status`/`smtpb_wait` within 200 ms; configuration and
/// credential changes at the next call; send limits and
/// SMTPBatchPerMinute are counted across the processes. A submit-only
/// client queues, reads and manages; its `smtpb_send` is
/// `SMTPB_ERR_STATE`. An exclusive and a shared open exclude each other
/// (`SMTPB_ERR_BUSY` naming the holder's pid, host and user).
///
/// A data_dir on a network file system (NFS, SMB/CIFS, a UNC path or a
/// network drive) is refused with `SMTPB_ERR_IO` naming the path and why,
/// unless the open is exclusive and config.json sets
/// `SMTPAllowNetworkDataDir=true`.
///
/// Ownership: `data_dir` and `secret` are borrowed for the call. On success
/// `*out` is a new client the caller ends with `smtpb_client_close`; on
/// failure `*out` is NULL.
///
/// Damage in the outbox spool does not stop the open: every intact record
/// is recovered, the damage is logged (file, offset, records lost) and
/// counted in `smtpb_outbox_stats`'s `"damaged_records"`, and the open
/// returns `SMTPB_OK` with a **warning** left in `smtpb_last_error()`:
/// text beginning `"warning: "`, naming the file, the offset and the
/// number of records lost. This is the one call that may leave
/// `smtpb_last_error()` non-empty on success; a host that does not look
/// loses nothing.
///
/// The store is checked before it is opened (several warnings are joined
/// by `"; "`): a WAL (`spool/outbox.db-wal`) that lost committed
/// transactions — a damaged frame or header, a WAL cut short or deleted
/// after a crash — is reported with their number ("up to" when the frames
/// are gone) and kept as `outbox.db-wal.damaged-<seconds>`; a missing or
/// empty `spool/outbox.db` beside a used data_dir (it holds `store.json`,
/// or a spool folder beside `config.json`/`credentials.json`) is reported
/// and counted as 1 (the number lost is unknown), and a new store made;
/// file format bytes of the store's header that would leave it read-only
/// are reported and set back; a store that can only be read is reported;
/// rows of messages not final that cannot be read are reported, skipped
/// and counted. A fresh data_dir with a config.json copied in is not
/// damage. Every damage is reported once.
///
/// On a full disk the open succeeds (`lock.owner`, which names the
/// holder, is then not written: the lock still excludes, and a BUSY
/// names the holder as unknown); messages are read and delivered, and
/// calls that write fail with `SMTPB_ERR_IO` naming the file.
///
/// An outbox spool of library 1.0 (the journal, format 1)
/// is migrated into the store (format 2) at the first open; the journal is
/// kept beside it as `journal.log.v1-migrated-<seconds>`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL `out`, bad UTF-8, relative
/// data_dir, unknown flag, `SMTPB_OPEN_SHARED` without data_dir,
/// `SMTPB_OPEN_SUBMIT_ONLY` without `SMTPB_OPEN_SHARED`); `SMTPB_ERR_BUSY`
/// (data_dir is held by another client, exclusively or in the other mode;
/// the message names its pid, host and user); `SMTPB_ERR_CREDENTIALS`
/// (wrong master secret or tampered store; at once, naming the file and
/// the field, for a store whose key derivation is out of range: a kdf
/// other than pbkdf2-hmac-sha256, PBKDF2 iterations outside 1 to
/// 10,000,000, a salt outside 8 to 64 bytes); `SMTPB_ERR_IO` (data_dir cannot
/// be created or read, is on a network file system, or holds a store or
/// spool of a newer format: the message names both versions and nothing
/// is written).
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_client_open(
    data_dir: *const c_char,
    secret: *const c_char,
    flags: u32,
    out: *mut *mut smtpb_client,
) -> smtpb_result {
    if !out.is_null() {
        *out = std::ptr::null_mut();
    }
    let mut warnings = Vec::new();
    let result = boundary("smtpb_client_open", || {
        if out.is_null() {
            return Err(Error::invalid_argument("out is NULL"));
        }
        let dir = opt_path_arg(data_dir, "data_dir")?;
        let secret = opt_str_arg(secret, "secret")?;
        let client = Client::open(dir.as_deref(), secret, flags)?;
        warnings = client.open_warnings();
        let handle = Box::new(smtpb_client {
            client,
            calls: Mutex::new(0),
            calls_done: Condvar::new(),
            closing: AtomicBool::new(false),
        });
        *out = Box::into_raw(handle);
        Ok(())
    });
    if result == super::SMTPB_OK && !warnings.is_empty() {
        super::set_last_warning(&warnings.join("; "));
    }
    result
}

/// Shuts the client down: new calls on it, and calls blocked in a wait,
/// return `SMTPB_ERR_STATE`; pooled connections are closed with QUIT. A
/// transaction already past MAIL may finish within `grace_ms`. Idempotent:
/// a second shutdown returns `SMTPB_OK`. The handle stays valid until
/// `smtpb_client_close`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL client); `SMTPB_ERR_TIMEOUT`
/// (the grace ran out with work still in flight).
///
/// # Safety
/// `c` is NULL or a client not yet closed.
#[no_mangle]
pub unsafe extern "C" fn smtpb_client_shutdown(c: *mut smtpb_client, grace_ms: u32) -> smtpb_result {
    boundary("smtpb_client_shutdown", || match enter(c) {
        Ok((_call, client)) => client.shutdown(grace_ms),
        // Being closed: the close shuts it down.
        Err(e) if e.code() == crate::error::Code::State => Ok(()),
        Err(e) => Err(e),
    })
}

/// Shuts the client down with SMTPShutdownGraceMs (default 3000), waits for
/// calls still inside the library on other threads, and frees it. NULL
/// does nothing. Queued mail stays in the spool. Called from inside the
/// client's own event callback, close returns at once and completes when
/// the callback returns. After close returns (or, from a callback, once
/// the callback returns) no callback of this client runs.
///
/// Ownership: takes `c`; the handle must not be used after this call.
/// Thread safety: may be called while other threads are inside calls on
/// `c`; they finish (or fail with `SMTPB_ERR_STATE`) before it is freed. A
/// call that starts on another thread after close began is undefined: the
/// host must stop using the handle before closing it.
///
/// # Safety
/// `c` is NULL or a client not yet closed, and close is called once.
#[no_mangle]
pub unsafe extern "C" fn smtpb_client_close(c: *mut smtpb_client) {
    if c.is_null() {
        return;
    }
    let _ = boundary("smtpb_client_close", || {
        let handle = &*c;
        {
            let _calls = handle.calls.lock().unwrap_or_else(|e| e.into_inner());
            handle.closing.store(true, Ordering::Release);
        }
        if handle.client.on_event_thread() {
            let address = c as usize;
            handle.client.after_callback(Box::new(move || {
                // SAFETY: the handle stays allocated until this runs: close
                // was deferred to here, and nothing else frees it.
                unsafe { close_now(address as *mut smtpb_client) }
            }));
            return Ok(());
        }
        close_now(c);
        Ok(())
    });
}

/// Shuts down, waits for calls still inside, frees the handle.
///
/// # Safety
/// `c` is a live handle that nothing else frees.
unsafe fn close_now(c: *mut smtpb_client) {
    let handle = &*c;
    let grace = handle.client.shutdown_grace_ms();
    let _ = handle.client.shutdown(grace);
    let mut calls = handle.calls.lock().unwrap_or_else(|e| e.into_inner());
    while *calls > 0 {
        calls = handle.calls_done.wait(calls).unwrap_or_else(|e| e.into_inner());
    }
    drop(calls);
    drop(Box::from_raw(c));
}
