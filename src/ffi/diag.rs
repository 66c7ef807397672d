//! Diagnostics: log lines, transcripts, the settings probe.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use super::{ffi_export, smtpb_client, smtpb_result, str_arg, wire, write_out};

/// A log callback: `line_json` is borrowed for the call; `user_data` is
/// what was passed to `smtpb_set_log_callback`.
pub type smtpb_log_fn = Option<unsafe extern "C" fn(line_json: *const c_char, user_data: *mut c_void)>;

/// Sends the library's log lines at or above `min_level` (1 error, 2 warn,
/// 3 info, 4 debug, 5 trace) to `callback` (NULL: off). A line is `{"time",
/// "level": "error" | "warn" | "info" | "debug" | "trace", "target",
/// "message", "id", "profile"}`; `id` and `profile` name the message the
/// line is about, or are null. Lines of the libraries below (rustls) are
/// passed only at levels 4 and 5. A line logged while the library works
/// for this client goes to this client only; a line logged outside any
/// client's work goes to every client that asked for it.
///
/// `fn` is called on the client's event thread, one line at a time, in
/// order, with the rules of `smtpb_set_event_callback` (never on a thread
/// inside a host's call or a delivery thread; when this returns the old
/// `fn` is not running and never runs again; `fn` must return normally).
/// A slow `fn` never slows delivery: past 10,000 pending lines new ones
/// are dropped and the next one delivered carries `"dropped": n`. No line
/// carries a password, token, AUTH payload or message text.
///
/// SMTPLogFile (with SMTPLogLevel and SMTPLogMaxBytes) writes the same
/// lines to a file instead, or as well.
///
/// Ownership: `user_data` stays the host's; the library only passes it
/// back.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL client; `min_level` outside
/// 1–5 with a non-NULL `fn`); `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `fn` is NULL or a function safe to call
/// from another thread with `user_data` until it is replaced.
#[no_mangle]
pub unsafe extern "C" fn smtpb_set_log_callback(
    c: *mut smtpb_client,
    callback: smtpb_log_fn,
    min_level: i32,
    user_data: *mut c_void,
) -> smtpb_result {
    ffi_export!(client c => |client| {
        let callback = callback.map(|f| {
            let data = user_data as usize;
            Arc::new(move |line: &str| {
                let text = CString::new(line).unwrap_or_default();
                // SAFETY: the host promised `f` may be called with its
                // user_data until it is replaced.
                unsafe { f(text.as_ptr(), data as *mut c_void) }
            }) as crate::outbox::events::Callback
        });
        client.set_log_callback(callback, min_level)
    })
}

/// The redacted dialogue of message `id`'s attempts, oldest first, at most
/// the last 5: `[{"attempt", "started_at", "transport", "server", "lines":
/// [{"ms", "dir": "C" | "S" | "*", "text"}]}]`. `dir` `C` is a line the
/// library sent, `S` a line of the server's reply, `*` the library's note
/// (connect, TLS version and cipher, certificate subject, timeouts,
/// failures). `server` is set on every attempt that reached for a server,
/// also one that reused a pooled session: `host:port` for SMTP, the
/// Graph host for Graph. AUTH payloads and passwords appear as `********`; the
/// message is one note `DATA: N bytes`. What is kept follows
/// SMTPTranscript: `Failures` (default) keeps the attempts that did not
/// end in `sent`, `All` every attempt, `Off` none. `[]` when none was kept.
/// Transcripts are kept with the status (data_dir/transcripts/) and
/// purged with it.
///
/// Ownership: `id` is borrowed for the call; on success `*out_json` is the
/// caller's to free with `smtpb_string_free`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_NOT_FOUND` (unknown
/// id); `SMTPB_ERR_IO` (a transcript file could not be read);
/// `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `id` is NULL or NUL-terminated;
/// `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_transcript(
    c: *mut smtpb_client,
    id: *const c_char,
    out_json: *mut *mut c_char,
) -> smtpb_result {
    ffi_export!(client c, out out_json => |client| wire::to_json(&client.transcript(str_arg(id, "id")?)?))
}

/// Finds working settings for a host name (a settings screen's "detect"
/// button): tries, at once, port 465 with implicit TLS (SSL), 587 with
/// STARTTLS (TLS) and 25 with STARTTLS, then plain on 25 when STARTTLS is
/// not to be had there; each up to EHLO and TLS within
/// SMTPConnectionTimeout, then QUIT. Sends no mail and does not log in.
/// Trust settings (SMTPCaFile, SMTPTlsServerName, SMTPMinTlsVersion,
/// SMTPAcceptInvalidCertificates), the timeout and the EHLO name are the
/// default profile's.
///
/// The report: `{"host", "results": [{"port", "encryption": "SSL" | "TLS" |
/// "None", "ok", "stage", "banner", "tls", "auth_mechanisms", "error",
/// "advice"}], "suggested": {"SMTPServer", "SMTPServerPort",
/// "SMTPServerEncryption"} | null}`; `suggested` is the first that works
/// with TLS (465, 587, 25), else plain 25. It is written whatever the
/// result once `host` is valid.
///
/// Ports: the global key SMTPProbePorts maps the standard ports to others,
/// e.g. `465=10465,587=10587,25=10025` (a test on ephemeral loopback
/// ports, or a server on unusual ports); `port` in the report is the port
/// tried. Blank: the standard ports. The port 465 maps to is also the
/// implicit-TLS port when sending and testing: as on 465, a profile on it
/// whose SMTPServerEncryption is not SSL gets 2 s for the greeting.
///
/// Ownership: `host` is borrowed for the call; a non-NULL `*out_json`
/// after the call is the caller's to free with `smtpb_string_free`. NULL
/// `out_json` allowed.
///
/// Errors: `SMTPB_OK` when some way works. `SMTPB_ERR_INVALID_ARGUMENT`
/// (NULL, empty or blank, not a host name or IP: no report, nothing tried); `SMTPB_ERR_CONFIG` (a bad
/// SMTPProbePorts: no report); `SMTPB_ERR_CONNECT` (nothing worked; the
/// report says why for each); `SMTPB_ERR_STATE`.
///
/// Thread safety: the tries run on threads of their own; the call returns
/// when all have ended.
///
/// # Safety
/// `c` is NULL or an open client; `host` is NULL or NUL-terminated;
/// `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_probe(
    c: *mut smtpb_client,
    host: *const c_char,
    out_json: *mut *mut c_char,
) -> smtpb_result {
    ffi_export!(client c, fills out_json => |client| {
        let outcome = client.probe(str_arg(host, "host")?);
        if let Some(report) = outcome.report {
            write_out(out_json, wire::to_json(&report));
        }
        outcome.result
    })
}
