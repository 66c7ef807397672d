//! Sending, status and connection tests.

use std::ffi::c_char;

use super::{ffi_export, opt_str_arg, smtpb_client, smtpb_result, str_arg, wire, write_out};

/// Sends a message now and waits for the outcome. `message_json` is the
/// message JSON of docs/REFERENCE.md (`to`/`cc`/`bcc`, `subject`, `html`
/// and/or `text`, `attachments`, `inline`, `headers`, `user`, `profile`,
/// `reference`, …); unknown fields are refused by name. Attachment files
/// are read during the call. The pipeline: profile choice, blacklist, test
/// mode, DKIM, SMTP. No automatic retry: a failed message is `failed`.
///
/// A message the host built itself goes as `"mime_base64"`: the base64 of
/// a complete RFC 5322 message, sent as its bytes (Bcc headers removed; a
/// missing From, Date or Message-ID added in front; its own Message-ID is
/// kept). `from`/`to`/`cc`/`bcc` then set the envelope and may be left
/// out, in which case the message's own From, To, Cc and Bcc headers give
/// it; `subject`, `html`, `text`, `attachments`, `inline` and `headers`
/// beside it are `SMTPB_ERR_MESSAGE`; a profile that signs with DKIM is
/// `SMTPB_ERR_CONFIG` for it (signing needs a message the library builds).
///
/// Once the message passes validation it gets an id and is recorded, and
/// `*out_status_json` is written whatever the result (the status JSON of
/// docs/REFERENCE.md; NULL `out_status_json` allowed). It is not written
/// for `SMTPB_ERR_INVALID_ARGUMENT`, `MESSAGE`, `CONFIG`, `NOT_FOUND`,
/// `BLOCKED` and `STATE` found at the call. One refusal can only be made
/// after the server's EHLO: an address with a non-ASCII local part
/// (`jörg@example.com`) to a server that does not offer SMTPUTF8 is
/// `SMTPB_ERR_MESSAGE` naming the address, and since the message was
/// recorded by then, its status is written (`failed`, `error_code` 9), as
/// for every refusal made after EHLO (SIZE, STARTTLS, AUTH mechanism).
///
/// Addresses may be written as Outlook users type them: `"Müller, Hans
/// <h@example.com>"`, `"<h@example.com>"` or `"\"Doe; Jane\" <j@example.com>"`
/// wherever an address string is taken (`from`, `reply_to`, `to`, `cc`,
/// `bcc`); and `to`, `cc` and `bcc` may each be one string, or hold
/// strings, of several addresses separated by `;` or `,`
/// (`"a@x.example; b@y.example"`). `;` always separates; `,` separates
/// once an address (an `@`), or nothing, came since the last separator
/// (empty entries are dropped), so the comma of
/// an unquoted display name before its `<address>` does not split it.
/// Separators inside `"…"` or `<…>` never split. Each address is then
/// checked as any other (an entry without one is `SMTPB_ERR_MESSAGE`
/// naming it); `recipients` in the status lists the bare addresses.
///
/// Sender: a message without `from` is sent from the chosen profile's
/// SMTPSenderEmail, with SMTPSenderName as its display name; a profile
/// without SMTPSenderEmail makes such a message `SMTPB_ERR_MESSAGE` naming
/// both keys.
///
/// Test mode (SMTPTestMode): the envelope holds exactly SMTPTestAddresses;
/// `X-Original-To` lists the original To and Cc; the profile's
/// SMTPTestSubjectPrefix (default empty) is put before the subject, with a
/// space between unless it ends in one (a host's own `mime_base64`
/// message keeps its Subject). The status shows it as `"test_mode":
/// {"redirected_to": [...], "original": [...]}` (`original`: the
/// recipients after the blacklist, to, cc and bcc), and `null` when test
/// mode was off for the message.
///
/// Bounds (each `SMTPB_ERR_MESSAGE` at the call, naming the field, with
/// nothing recorded or sent):
/// - An attachment or inline `path` must name a regular file: a FIFO, a
///   device (`/dev/zero`) or a folder is refused without being read (and a
///   FIFO is never opened for reading, so the call cannot block on it).
/// - Parts count against SMTPMaxMessageBytes (of the message's `profile`,
///   else the largest of the enabled profiles'): a file whose base64 cannot
///   fit what the parts before it leave is refused by its size, unread,
///   naming the file; no file is read past that bound + 1 byte. The whole
///   message is checked against the chosen profile's SMTPMaxMessageBytes
///   once it is built.
/// - No header line may pass 998 octets (RFC 5322) once folded: values
///   with spaces and non-ASCII text (encoded words) are folded and go
///   whatever their length; a single word too long to fold (a subject,
///   `headers` value, display name or attachment name of 990 ASCII
///   characters without a space) is refused naming `subject`,
///   `headers.<Name>`, `to[i]`/`cc[i]` or `attachments[i]`; a
///   `mime_base64` message with such a header line is refused too.
/// - At most 100,000 recipients per message (`to`, `cc` and `bcc`
///   together), the error naming the field that passes the bound.
///   Building a message is linear in its recipients; To and Cc are folded
///   between addresses.
///
/// Addresses: an international domain (`user@bücher.example`) goes out as
/// its A-labels (`user@xn--bcher-kva.example`, UTS #46) in the envelope
/// and in the headers, which every server accepts; `recipients` in the
/// status keeps the address as given.
///
/// OAuth2 app tokens (SMTPOAuth2Flow=ClientCredentials): the XOAUTH2 or
/// OAUTHBEARER user is SMTPUsername, else the message's sender address
/// (each sender gets sessions of its own); over Graph the mailbox is
/// SMTPGraphMailbox, else the sender, and SMTPUsername is not needed.
///
/// Advice (`"advice": {"key", "text"}` in the status, ` Advice (key):
/// text` at the end of the error): among others `smtp_auth_disabled` when
/// 535 5.7.139, 550 5.7.30 or "SmtpClientAuthentication is disabled" is
/// the answer to a token (XOAUTH2, OAUTHBEARER) — SMTP AUTH is off for the
/// mailbox: no refresh is tried and `needs` stays null (to a password the
/// same replies are `basic_auth_disabled`); `encryption_mismatch` when the
/// library refuses AUTH on a plain connection to a server that offers
/// STARTTLS (it names SMTPServerEncryption=TLS); `message_too_large` on
/// the library's own SIZE refusal. docs/REFERENCE.md lists every key.
///
/// Server replies: `smtp_code`, `enhanced_code` and `smtp_response` hold
/// only what a server said. A refusal the library makes itself (the
/// message is over the server's SIZE: `SMTPB_ERR_REJECTED`, nothing sent;
/// STARTTLS not offered; no AUTH mechanism in common) leaves them null and
/// gives its reason in `error`. A session the library gives up on ends
/// with QUIT when it can still carry one, within SMTPConnectionTimeout.
///
/// Recipient limits: when a server answers 452 to a RCPT after accepting
/// others (`452 4.5.3 too many recipients`, RFC 5321 §4.5.3.1.10), the
/// accepted recipients get the message and the rest go in further
/// transactions on the same session: one status, every recipient one
/// copy. If a later transaction fails, the message is still `sent` (others
/// have it) and each recipient it did not reach is in `rejected`, with the
/// server's reply if there was one and an `error`.
///
/// Ownership: `message_json` is borrowed for the call; a non-NULL
/// `*out_status_json` after the call, whatever the result, is the caller's
/// to free with `smtpb_string_free`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL, bad UTF-8, malformed JSON,
/// unknown field, wrong type); `SMTPB_ERR_MESSAGE` (bad address, control
/// character in a header, missing/relative attachment, no body, no
/// recipient, too large, no `from` and no SMTPSenderEmail);
/// `SMTPB_ERR_CONFIG` (no usable profile); `SMTPB_ERR_NOT_FOUND` (unknown `profile`); `SMTPB_ERR_BLOCKED`
/// (every recipient blacklisted); `SMTPB_ERR_CREDENTIALS`,
/// `SMTPB_ERR_CONNECT`, `SMTPB_ERR_TLS`, `SMTPB_ERR_AUTH` (before MAIL;
/// AUTH also when the server offers no mechanism the profile can use:
/// PLAIN or LOGIN for a password, XOAUTH2 or OAUTHBEARER for an OAuth2
/// token, as offered after TLS — the message names what it offers);
/// `SMTPB_ERR_REJECTED` (5xx), `SMTPB_ERR_TRANSIENT` (4xx, broken or stalled
/// session; `possible_duplicate` in the status when it broke after the
/// final dot; a reply of a class its command never gets — `250` to DATA,
/// `354` to RCPT — quoted in the message, the session closed, and
/// `possible_duplicate` when it answered the final dot);
/// `SMTPB_ERR_STATE` (after shutdown).
///
/// Thread safety: any number of threads may send at once; each send uses
/// its own connection (pooled per profile).
///
/// # Safety
/// `c` is NULL or an open client; `message_json` is NULL or
/// NUL-terminated; `out_status_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_send(
    c: *mut smtpb_client,
    message_json: *const c_char,
    out_status_json: *mut *mut c_char,
) -> smtpb_result {
    ffi_export!(client c, fills out_status_json => |client| {
        let outcome = client.send(str_arg(message_json, "message_json")?);
        // No JSON made for a caller that asked for none.
        if let Some(status) = outcome.status.filter(|_| !out_status_json.is_null()) {
            write_out(out_status_json, wire::to_json(&status));
        }
        outcome.result
    })
}

/// The status of a message by id (the status JSON of docs/REFERENCE.md).
///
/// Ownership: on success `*out_status_json` is a string the caller frees
/// with `smtpb_string_free`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT`; `SMTPB_ERR_NOT_FOUND` (unknown
/// id); `SMTPB_ERR_STATE`.
///
/// # Safety
/// `c` is NULL or an open client; `id` is NULL or NUL-terminated;
/// `out_status_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_status(
    c: *mut smtpb_client,
    id: *const c_char,
    out_status_json: *mut *mut c_char,
) -> smtpb_result {
    ffi_export!(client c, out out_status_json => |client| wire::to_json(&client.status(str_arg(id, "id")?)?))
}

/// Tests a profile's settings the way a settings screen's "test" button
/// does: connects, runs EHLO, STARTTLS or TLS, and AUTH with the
/// credentials of `user_id` (NULL: the shared credential, or none), then
/// QUIT; sends no mail. `profile` NULL: the profile a message without
/// `from` would use (the default, else the first enabled).
///
/// The report `{"ok", "stage", "banner", "capabilities": [...], "tls":
/// "TLSv1.3" | null, "auth_mechanisms": [...], "error_code", "error"}` is
/// written whatever the result once the server was contacted (`stage`: the
/// last stage passed, or on failure the stage attempted: connect, greeting,
/// ehlo, tls, auth, done). NULL `out_report_json` allowed. With
/// SMTPOAuth2Flow=ClientCredentials and no SMTPUsername, the SMTP login
/// is made as SMTPSenderEmail (neither set: `SMTPB_ERR_CREDENTIALS`
/// naming both, stage `auth`).
///
/// On port 465 (or the port SMTPProbePorts maps 465 to) with
/// SMTPServerEncryption other than SSL, a server silent for 2 s is waiting
/// for a TLS handshake: `SMTPB_ERR_CONNECT` with advice
/// `encryption_mismatch`, at once rather than at SMTPConnectionTimeout (a
/// send fails the same way).
///
/// Ownership: strings are borrowed for the call; a non-NULL
/// `*out_report_json` after the call is the caller's to free with
/// `smtpb_string_free`.
///
/// Errors: `SMTPB_OK` only when `ok` is true. `SMTPB_ERR_INVALID_ARGUMENT`,
/// `SMTPB_ERR_NOT_FOUND` (unknown profile), `SMTPB_ERR_CONFIG` (no server
/// set) write no report; `SMTPB_ERR_CREDENTIALS`, `SMTPB_ERR_CONNECT`,
/// `SMTPB_ERR_TLS`, `SMTPB_ERR_AUTH` do.
///
/// # Safety
/// `c` is NULL or an open client; strings are NULL or NUL-terminated;
/// `out_report_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_test_connection(
    c: *mut smtpb_client,
    profile: *const c_char,
    user_id: *const c_char,
    out_report_json: *mut *mut c_char,
) -> smtpb_result {
    ffi_export!(client c, fills out_report_json => |client| {
        let outcome = client.test_connection(opt_str_arg(profile, "profile")?, opt_str_arg(user_id, "user_id")?);
        if let Some(report) = outcome.report {
            write_out(out_report_json, wire::to_json(&report));
        }
        outcome.result
    })
}

/// Mail merge: `template_json` is a message whose `subject`, `html` and
/// `text` may hold `{{Field}}` placeholders (no `to`); `recipients_json` is
/// an array of `{"email", "name", "fields": {...}, "attachments": [...],
/// "cc": [...], "reference"}`. Each recipient gets a message of its own,
/// queued in the outbox under one batch; values are HTML-escaped in `html`
/// and inserted as they are in `subject` and `text`; an empty string is a
/// value. A placeholder without a value for some recipient fails the whole
/// merge before anything is queued. A blacklisted recipient becomes a
/// `failed` message with `error_code` 12, so `ids` stays aligned with
/// `recipients_json`. Writes `{"batch_id", "ids": [...], "count"}` (`count`
/// counts every message created, failed ones included); follow the batch
/// with `smtpb_batch_status` and the events' `batch_id`.
///
/// Ownership: the JSON texts are borrowed for the call; on success
/// `*out_batch_json` is the caller's to free with `smtpb_string_free`; NULL
/// `out_batch_json` allowed.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL, bad UTF-8, malformed JSON,
/// unknown field); `SMTPB_ERR_MESSAGE` (a missing field value, naming field
/// and recipient; a bad address or attachment); `SMTPB_ERR_CONFIG`;
/// `SMTPB_ERR_IO`; `SMTPB_ERR_STATE`. On an error nothing of the merge is
/// sent.
///
/// # Safety
/// `c` is NULL or an open client; strings are NULL or NUL-terminated;
/// `out_batch_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_merge(
    c: *mut smtpb_client,
    template_json: *const c_char,
    recipients_json: *const c_char,
    out_batch_json: *mut *mut c_char,
) -> smtpb_result {
    ffi_export!(client c, fills out_batch_json => |client| {
        let (template_json, recipients_json) =
            (str_arg(template_json, "template_json")?, str_arg(recipients_json, "recipients_json")?);
        client.check_open()?;
        let (template, recipients) = wire::parse_merge(template_json, recipients_json)?;
        write_out(out_batch_json, wire::to_json(&client.merge(template, &recipients)?));
        Ok(())
    })
}

/// Renders a message without sending it: writes the MIME (an `.eml`) the
/// library would send for `message_json`, after profile choice, the
/// blacklist, test mode (envelope, `X-Original-To`, SMTPTestSubjectPrefix)
/// and DKIM signing, exactly as `smtpb_send` would build it. Nothing is
/// sent, recorded or counted against a send limit; attachment files are
/// read during the call. The Message-ID and Date are this rendering's: a
/// message sent later gets its own. The rules of `smtpb_send` (message
/// JSON, addresses, sender, test mode) apply.
///
/// Ownership: `message_json` is borrowed for the call; on success
/// `*out_eml` is a string (CRLF line ends) the caller frees with
/// `smtpb_string_free`.
///
/// Errors: `SMTPB_ERR_INVALID_ARGUMENT` (NULL, bad UTF-8, malformed JSON,
/// unknown field, NULL `out_eml`); `SMTPB_ERR_MESSAGE` (as for
/// `smtpb_send`; also a host's own 8-bit `mime_base64` message, which is
/// not UTF-8 text); `SMTPB_ERR_CONFIG`; `SMTPB_ERR_NOT_FOUND` (unknown
/// `profile`); `SMTPB_ERR_BLOCKED` (every recipient blacklisted);
/// `SMTPB_ERR_STATE` (after shutdown).
///
/// # Safety
/// `c` is NULL or an open client; `message_json` is NULL or
/// NUL-terminated; `out_eml` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smtpb_render(
    c: *mut smtpb_client,
    message_json: *const c_char,
    out_eml: *mut *mut c_char,
) -> smtpb_result {
    ffi_export!(client c, out out_eml => |client| client.render(str_arg(message_json, "message_json")?)?)
}

/// Checks a message and the settings it would use, without sending or
/// recording anything: `SMTPB_OK` when `smtpb_send` would get as far as
/// talking to the server. Checked: the message JSON and its addresses,
/// body and attachments (files are read), the profile choice, the sender,
/// the blacklist, test mode's addresses, the size limit, the transport's
/// settings (SMTPServer, or Graph's OAuth2), the DKIM key, and a
/// credential to log in with for the message's `user` (SMTPAuthentication
/// Required: a stored credential of the right kind with a username, and
/// for a password a non-empty one; an OAuth2 token or sign-in for the
/// user, or with ClientCredentials the client secret). No network: an
/// OAuth2 token is neither fetched nor refreshed, and the server is not
/// asked (use `smtpb_test_connection` for that).
///
/// Ownership: `message_json` is borrowed for the call.
///
/// Errors: those of `smtpb_send` found at the call
/// (`SMTPB_ERR_INVALID_ARGUMENT`, `SMTPB_ERR_MESSAGE`, `SMTPB_ERR_CONFIG`,
/// `SMTPB_ERR_NOT_FOUND`, `SMTPB_ERR_BLOCKED`, `SMTPB_ERR_STATE`), and
/// `SMTPB_ERR_CREDENTIALS` (no usable credential for the user, naming the
/// user and the profile; a store entry that does not decrypt).
///
/// # Safety
/// `c` is NULL or an open client; `message_json` is NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smtpb_validate(c: *mut smtpb_client, message_json: *const c_char) -> smtpb_result {
    ffi_export!(client c => |client| client.validate(str_arg(message_json, "message_json")?))
}
