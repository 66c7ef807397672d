//! Microsoft Graph sendMail as a transport (ABI §14).
//!
//! The message is the same MIME the pipeline built for SMTP (no DKIM
//! signature: Exchange signs what it sends itself). It goes base64-encoded
//! as `text/plain` to `POST {SMTPGraphUrl}/me/sendMail` (the signed-in
//! user) or `/users/{mailbox}/sendMail` (ClientCredentials: SMTPGraphMailbox,
//! else the sender), which files the copy in Sent Items.
//!
//! A MIME of more than 3 MB does not fit Graph's 4 MB request limit once
//! base64-encoded. It goes as a draft instead: the MIME without its
//! largest attachments (`POST /messages`), each of those attached by an
//! upload session (`createUploadSession`, then `PUT`s of 10 × 320 KiB to
//! the session's pre-authenticated URL) or, under 3 MB, by a plain
//! `POST /attachments`, then `POST /messages/{id}/send`. The draft path
//! is also taken when SMTPGraphSaveToSentItems is false: MIME sendMail has
//! no `saveToSentItems`, so the draft gets PidTagDeleteAfterSubmit
//! (`Boolean 0x0E01`), which tells Exchange to keep no copy.
//!
//! Graph takes a MIME message's recipients from its To, Cc and Bcc headers,
//! not from an envelope; so before it is posted, the headers are made to
//! name exactly the pipeline's envelope (after blacklist and test mode):
//! To and Cc keep the addresses that are in it, the rest of the envelope
//! goes in Bcc, which Exchange never shows to recipients.
//!
//! Outcomes: 2xx sent (`http_status`); 401 refreshes the token once and
//! tries again, then AUTH with the token refused; 400, 403, 404, 413 and
//! other 4xx REJECTED with Graph's `error.code` and `error.message`; 408,
//! 429 and 5xx TRANSIENT, never retried before `Retry-After`; a connection
//! that broke after a sending request was written: TRANSIENT with
//! `possible_duplicate`. Every request is bounded by SMTPConnectionTimeout
//! and goes over one pooled keep-alive connection per profile.

// A failure carries replies and recipients; it is the rare path, and
// boxing it would buy nothing (as in smtp.rs).
#![allow(clippy::result_large_err)]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use crate::config::{AuthModel, Authentication, ProfileSettings};
use crate::delivery::{Delivery, Failure, Identity, Refresh, TestReport, Transport};
use crate::error::{Code, Error, Result};
use crate::smtp::{Login, Mail};

/// SMTPGraphUrl's default.
pub(crate) const DEFAULT_URL: &str = "https://graph.microsoft.com/v1.0";
/// The most MIME that goes in one sendMail: 3 MB, so that its base64 stays
/// under Graph's 4 MB request limit.
pub(crate) const SIMPLE_LIMIT: usize = 3_000_000;
/// An attachment this large goes by an upload session (Graph: "between
/// 3 MB and 150 MB"); a smaller one by `POST /attachments`.
const UPLOAD_SESSION_MIN: usize = 3 * 1024 * 1024;
/// The bytes of one upload `PUT`: a multiple of 320 KiB, under 4 MB.
pub(crate) const UPLOAD_CHUNK: usize = 10 * 320 * 1024;
/// The most of an error body that is read.
const MAX_ERROR_BODY: u64 = 64 * 1024;
/// Named "transport" in statuses and failures.
const NAME: &str = "graph";

/// Checks and normalises SMTPGraphUrl: `https://host[:port][/path]`, or
/// `http://` for a loopback host; no query, fragment or user info. The
/// result has no trailing `/`. The error says what is wrong.
pub fn normalize_url(value: &str) -> std::result::Result<String, String> {
    let (scheme, rest) = value.split_once("://").ok_or("an https:// URL expected")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err("an https:// URL expected".into());
    }
    if rest.contains(['?', '#', '@']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a URL without query, fragment, user info or spaces expected".into());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, _)| h).ok_or("a bad IPv6 address in the URL")?,
        None => authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority),
    };
    if let Some((_, port)) = authority.rsplit_once(':').filter(|_| !authority.ends_with(']')) {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("a bad port \"{port}\" in the URL"));
        }
    }
    let ip = host.parse::<std::net::IpAddr>().ok();
    if ip.is_none() && !crate::config::is_host_name(host) {
        return Err(format!("a bad host \"{host}\" in the URL"));
    }
    let loopback = crate::http::is_loopback_host(host);
    if scheme == "http" && !loopback {
        return Err("http:// is allowed only for a loopback address (127.0.0.1, ::1, localhost); use https://".into());
    }
    Ok(format!("{scheme}://{authority}{}", path.trim_end_matches('/')))
}

/// What a Graph profile needs beyond single keys; the error names the key.
pub fn check_profile(settings: &ProfileSettings) -> Result<()> {
    let name = &settings.name;
    if settings.auth_model != AuthModel::OAuth2 {
        return Err(Error::config(format!(
            "profile {name}: SMTPTransport=Graph needs SMTPAuthModel=OAuth2 (Graph accepts only OAuth2 tokens)"
        )));
    }
    if settings.authentication == Authentication::None {
        return Err(Error::config(format!(
            "profile {name}: SMTPTransport=Graph needs SMTPAuthentication=Required (Graph always authenticates)"
        )));
    }
    check_provider(settings)
}

/// SMTPOAuth2Provider must be Microsoft, or OpenID for a test issuer.
/// Read by the key's name: a build without the OAuth2 keys has no
/// provider to check (host-supplied tokens only).
fn check_provider(settings: &ProfileSettings) -> Result<()> {
    match settings.graph_oauth2_provider.as_deref() {
        None | Some("Microsoft") | Some("OpenID") => Ok(()),
        Some(other) => Err(Error::config(format!(
            "profile {}: SMTPTransport=Graph needs SMTPOAuth2Provider=Microsoft (or OpenID for a test issuer), not {other}",
            settings.name
        ))),
    }
}

/// Whether the app signs in for itself (SMTPOAuth2Flow=ClientCredentials):
/// then there is no `/me`.
fn app_only(settings: &ProfileSettings) -> bool {
    settings.graph_oauth2_flow.as_deref() == Some("ClientCredentials")
}

/// The HTTPS agent of a profile: its trust settings (the system's roots
/// plus SMTPCaFile, SMTPAcceptInvalidCertificates, SMTPMinTlsVersion), no
/// redirects, HTTP errors returned as replies, every request bounded by
/// SMTPConnectionTimeout ([`crate::http`]).
fn agent(settings: &ProfileSettings) -> Result<ureq::Agent> {
    Ok(crate::http::Http::for_profile(settings)?.agent().clone())
}

/// The Graph transport of one client: an HTTP agent (connection pool) per
/// profile settings.
#[derive(Default)]
pub struct Graph {
    agents: Mutex<HashMap<u64, Arc<Link>>>,
}

/// The connection of one profile: its agent, and a lock that lets one
/// message at a time use it, so that the profile's mail goes over one
/// keep-alive connection (Graph also limits concurrent requests per
/// mailbox).
struct Link {
    agent: ureq::Agent,
    turn: Mutex<()>,
}

/// A failure of Graph's, before it is turned into the outcome.
fn failure(code: Code, message: impl Into<String>) -> Failure {
    Failure::new(NAME, code, message)
}

/// The reply to one request.
struct Reply {
    status: u16,
    retry_after_ms: Option<u64>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Graph's `error.code: error.message`, or the HTTP status alone.
    fn graph_error(&self) -> String {
        let v = self.json();
        let code = v["error"]["code"].as_str().unwrap_or("");
        let message = v["error"]["message"].as_str().unwrap_or("");
        let text = match (code.is_empty(), message.is_empty()) {
            (true, true) => String::new(),
            (false, true) => format!(" {code}"),
            (true, false) => format!(": {message}"),
            (false, false) => format!(" {code}: {message}"),
        };
        format!("HTTP {}{}", self.status, crate::config::printable(&text))
    }
}

/// One request: the method, the URL, the bearer token (none for upload
/// URLs, which carry their own), the body and its type. `sending`: the
/// request hands the message over, so a break after it went out may have
/// sent it.
struct Request<'a> {
    method: &'static str,
    url: &'a str,
    token: Option<&'a str>,
    content_type: Option<&'a str>,
    content_range: Option<String>,
    body: &'a [u8],
    sending: bool,
}

impl Graph {
    /// The agent for `settings`, made once per settings: its pool keeps one
    /// idle keep-alive connection, and each request is bounded by
    /// SMTPConnectionTimeout.
    fn link(&self, settings: &ProfileSettings) -> std::result::Result<Arc<Link>, Failure> {
        let mut h = DefaultHasher::new();
        settings.hash(&mut h);
        let key = h.finish();
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = agents.get(&key) {
            return Ok(a.clone());
        }
        let agent = agent(settings).map_err(|e| failure(e.code(), e.message()))?;
        let link = Arc::new(Link { agent, turn: Mutex::new(()) });
        agents.insert(key, link.clone());
        Ok(link)
    }

    fn call(&self, agent: &ureq::Agent, request: Request) -> std::result::Result<Reply, Failure> {
        let what = format!("{} {}", request.method, redact_url(request.url));
        let mut builder = ureq::http::Request::builder().method(request.method).uri(request.url);
        if let Some(token) = request.token {
            builder = builder.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(ct) = request.content_type {
            builder = builder.header("Content-Type", ct);
        }
        if let Some(range) = &request.content_range {
            builder = builder.header("Content-Range", range.as_str());
        }
        let http_request = builder
            .body(request.body)
            .map_err(|e| failure(Code::Config, format!("{what}: cannot make the request: {e}")))?;
        match agent.run(http_request) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after_ms = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| s.saturating_mul(1000));
                let limit = if (200..300).contains(&status) { 16 * 1024 * 1024 } else { MAX_ERROR_BODY };
                let body = response.body_mut().with_config().limit(limit).read_to_vec().map_err(|e| {
                    transport_failure(request.url, &what, e, request.sending && (200..300).contains(&status))
                })?;
                Ok(Reply { status, retry_after_ms, body })
            }
            Err(e) => Err(transport_failure(request.url, &what, e, request.sending)),
        }
    }

    /// `POST {mailbox}/sendMail` with the MIME.
    fn send_mime(
        &self,
        agent: &ureq::Agent,
        base: &str,
        token: &str,
        mime: &[u8],
    ) -> std::result::Result<u16, Failure> {
        let url = format!("{base}/sendMail");
        let body = B64.encode(mime);
        let reply = self.call(
            agent,
            Request {
                method: "POST",
                url: &url,
                token: Some(token),
                content_type: Some("text/plain"),
                content_range: None,
                body: body.as_bytes(),
                sending: true,
            },
        )?;
        expect(&reply, &[202, 200], "sendMail")
    }

    /// The draft path: a draft from the MIME without its largest
    /// attachments, those attached again, then `/send`.
    fn send_draft(
        &self,
        agent: &ureq::Agent,
        base: &str,
        token: &str,
        mime: &[u8],
        save_to_sent_items: bool,
    ) -> std::result::Result<u16, Failure> {
        let (draft_mime, extracted) = split_attachments(mime, SIMPLE_LIMIT);
        let url = format!("{base}/messages");
        let body = B64.encode(&draft_mime);
        let reply = self.call(
            agent,
            Request {
                method: "POST",
                url: &url,
                token: Some(token),
                content_type: Some("text/plain"),
                content_range: None,
                body: body.as_bytes(),
                sending: false,
            },
        )?;
        expect(&reply, &[201, 200], "creating the draft")?;
        drop(body);
        let id = reply.json()["id"].as_str().map(str::to_string).ok_or_else(|| {
            failure(Code::Transient, "Graph created the draft but did not say its id (no \"id\" in the reply)")
        })?;
        let message_url = format!("{base}/messages/{}", percent_encode(&id));
        let result = self.complete_draft(agent, &message_url, token, &extracted, save_to_sent_items);
        if let Err(f) = &result {
            if !f.possible_duplicate {
                // Best effort: leave no half-made draft behind.
                let _ = self.call(
                    agent,
                    Request {
                        method: "DELETE",
                        url: &message_url,
                        token: Some(token),
                        content_type: None,
                        content_range: None,
                        body: b"",
                        sending: false,
                    },
                );
            }
        }
        result
    }

    fn complete_draft(
        &self,
        agent: &ureq::Agent,
        message_url: &str,
        token: &str,
        attachments: &[Extracted],
        save_to_sent_items: bool,
    ) -> std::result::Result<u16, Failure> {
        let json = |v: serde_json::Value| v.to_string().into_bytes();
        let post = |url: &str, body: &[u8], sending: bool| {
            self.call(
                agent,
                Request {
                    method: "POST",
                    url,
                    token: Some(token),
                    content_type: Some("application/json"),
                    content_range: None,
                    body,
                    sending,
                },
            )
        };
        for a in attachments {
            if a.data.len() < UPLOAD_SESSION_MIN {
                let body = json(serde_json::json!({
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "name": a.name,
                    "contentType": a.content_type,
                    "contentBytes": B64.encode(&a.data),
                    "isInline": a.inline,
                    "contentId": a.content_id,
                }));
                let reply = post(&format!("{message_url}/attachments"), &body, false)?;
                expect(&reply, &[201, 200], "attaching a file")?;
                continue;
            }
            let body = json(serde_json::json!({"AttachmentItem": {
                "attachmentType": "file",
                "name": a.name,
                "size": a.data.len(),
                "contentType": a.content_type,
                "isInline": a.inline,
                "contentId": a.content_id,
            }}));
            let reply = post(&format!("{message_url}/attachments/createUploadSession"), &body, false)?;
            expect(&reply, &[201, 200], "createUploadSession")?;
            let upload_url = reply.json()["uploadUrl"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| failure(Code::Transient, "Graph made an upload session but gave no uploadUrl"))?;
            let total = a.data.len();
            for (i, chunk) in a.data.chunks(UPLOAD_CHUNK).enumerate() {
                let start = i * UPLOAD_CHUNK;
                let end = start + chunk.len() - 1;
                let reply = self.call(
                    agent,
                    Request {
                        method: "PUT",
                        url: &upload_url,
                        token: None, // the URL carries its own authorization
                        content_type: Some("application/octet-stream"),
                        content_range: Some(format!("bytes {start}-{end}/{total}")),
                        body: chunk,
                        sending: false,
                    },
                )?;
                let last = end + 1 == total;
                expect(&reply, if last { &[201, 200] } else { &[200, 201] }, "uploading an attachment")?;
            }
        }
        if !save_to_sent_items {
            let body = json(serde_json::json!({"singleValueExtendedProperties": [
                {"id": "Boolean 0x0E01", "value": "true"}
            ]}));
            let reply = self.call(
                agent,
                Request {
                    method: "PATCH",
                    url: message_url,
                    token: Some(token),
                    content_type: Some("application/json"),
                    content_range: None,
                    body: &body,
                    sending: false,
                },
            )?;
            expect(&reply, &[200, 204], "setting SMTPGraphSaveToSentItems=false on the draft")?;
        }
        let reply = post(&format!("{message_url}/send"), b"", true)?;
        expect(&reply, &[202, 200], "sending the draft")
    }

    /// One try of the whole message with `token`.
    pub(crate) fn deliver(
        &self,
        agent: &ureq::Agent,
        base: &str,
        token: &str,
        mime: &[u8],
        settings: &ProfileSettings,
    ) -> std::result::Result<u16, Failure> {
        if mime.len() <= SIMPLE_LIMIT && settings.graph_save_to_sent_items {
            self.send_mime(agent, base, token, mime)
        } else {
            self.send_draft(agent, base, token, mime, settings.graph_save_to_sent_items)
        }
    }
}

/// The URL of the mailbox a message goes from: `{SMTPGraphUrl}/me`, or
/// `/users/{mailbox}` when the app signs in for itself.
fn mailbox_url(settings: &ProfileSettings, sender: Option<&str>) -> Result<String> {
    if !app_only(settings) {
        return Ok(format!("{}/me", settings.graph_url));
    }
    let mailbox = settings.graph_mailbox.as_deref().or(sender).ok_or_else(|| {
        Error::config(format!(
            "profile {}: with SMTPOAuth2Flow=ClientCredentials, Graph needs SMTPGraphMailbox (or SMTPSenderEmail)",
            settings.name
        ))
    })?;
    Ok(format!("{}/users/{}", settings.graph_url, percent_encode(mailbox)))
}

/// Accepts one of `ok` statuses, else classifies the reply.
fn expect(reply: &Reply, ok: &[u16], what: &str) -> std::result::Result<u16, Failure> {
    if ok.contains(&reply.status) {
        return Ok(reply.status);
    }
    let detail = reply.graph_error();
    let mut f = match reply.status {
        401 => {
            let mut f = failure(Code::Auth, format!("Graph refused the OAuth2 token ({what}: {detail})"));
            f.token_refused = true;
            f
        }
        408 | 429 | 500..=599 => failure(Code::Transient, format!("Graph is busy or unavailable ({what}: {detail})")),
        400..=499 => failure(Code::Rejected, format!("Graph refused the message ({what}: {detail})")),
        _ => failure(Code::Transient, format!("Graph answered {what} unexpectedly: {detail}")),
    };
    f.http_status = Some(reply.status);
    f.retry_after_ms = reply.retry_after_ms;
    f.server_code = reply.json()["error"]["code"].as_str().map(str::to_string);
    Err(f)
}

/// A failure below HTTP: DNS, connect and TLS are CONNECT/TLS (nothing
/// was sent); a break or stall once a sending request may have reached
/// the server is TRANSIENT with `possible_duplicate`.
fn transport_failure(url: &str, what: &str, e: ureq::Error, sending: bool) -> Failure {
    use ureq::Error as E;
    use ureq::Timeout as T;
    let before_connected = match &e {
        E::HostNotFound | E::ConnectionFailed | E::Timeout(T::Resolve) | E::Timeout(T::Connect) => true,
        E::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::AddrNotAvailable
                | std::io::ErrorKind::NetworkUnreachable
                | std::io::ErrorKind::HostUnreachable
        ),
        _ => false,
    };
    // Not all of the request went out: the server cannot have acted on it.
    let unsent = matches!(&e, E::Timeout(T::SendRequest) | E::Timeout(T::SendBody))
        || matches!(&e, E::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe);
    let detail = e.to_string();
    let mapped = crate::http::map_error(url, e);
    if mapped.code() == Code::Tls {
        return failure(Code::Tls, format!("{what}: {}", mapped.message()));
    }
    if before_connected {
        return failure(Code::Connect, format!("{what}: {}", mapped.message()));
    }
    let mut f = failure(Code::Transient, format!("{what}: the connection broke or stalled: {detail}"));
    f.possible_duplicate = sending && !unsent;
    f
}

/// The URL without its query (upload URLs carry their authorization there).
fn redact_url(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Percent-encodes a path segment.
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@!$&'()*+,;=:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Transport for Graph {
    fn check(&self, settings: &ProfileSettings) -> Result<()> {
        check_profile(settings)
    }

    fn name(&self) -> &'static str {
        "graph"
    }

    fn signs_dkim(&self) -> bool {
        false
    }

    fn send(
        &self,
        settings: &ProfileSettings,
        _identity: &Identity,
        login: Option<&Login>,
        refresh: Refresh,
        mail: &Mail,
    ) -> std::result::Result<Delivery, Failure> {
        self.send_message(settings, login, refresh, mail).map_err(|mut f| {
            if f.advice.is_none() {
                let code = f.server_code.as_deref().unwrap_or("");
                f.advice = f.http_status.and_then(|status| crate::advice::from_graph(status, code, settings));
            }
            f
        })
    }

    fn test(&self, settings: &ProfileSettings, login: Option<&Login>, refresh: Refresh) -> TestReport {
        let mut stage = "connect";
        let mut http_status = None;
        let mut mailbox = None;
        let result = (|| -> Result<()> {
            check_profile(settings)?;
            let url = mailbox_url(settings, settings.sender_email.as_deref())?;
            let link = self.link(settings).map_err(|f| f.error())?;
            let agent = &link.agent;
            let mut token = login
                .map(|l| l.secret.clone())
                .ok_or_else(|| Error::credentials(format!("profile {}: Graph needs an OAuth2 token", settings.name)))?;
            let mut refreshed = false;
            loop {
                stage = if settings.graph_url.starts_with("https:") { "tls" } else { "connect" };
                let request = Request {
                    method: "GET",
                    url: &url,
                    token: Some(&token),
                    content_type: None,
                    content_range: None,
                    body: b"",
                    sending: false,
                };
                let reply = match self.call(agent, request) {
                    Ok(r) => r,
                    Err(f) => {
                        stage = if f.code == Code::Connect { "connect" } else { stage };
                        return Err(f.error());
                    }
                };
                stage = "auth";
                http_status = Some(reply.status);
                match expect(&reply, &[200], "reading the mailbox") {
                    Ok(_) => {
                        let v = reply.json();
                        mailbox = v["mail"].as_str().or(v["userPrincipalName"].as_str()).map(str::to_string);
                        stage = "done";
                        return Ok(());
                    }
                    Err(f) if f.token_refused && !refreshed => {
                        refreshed = true;
                        match refresh() {
                            Ok(Some(fresh)) if fresh.secret != token => token = fresh.secret,
                            Err(r) if !r.token_refused && r.code != Code::Credentials => return Err(r.error()),
                            _ => return Err(f.error()),
                        }
                    }
                    // A refusal to read the mailbox is an authorisation problem here.
                    Err(f) if f.code == Code::Rejected => return Err(Error::new(Code::Auth, f.message)),
                    Err(f) => return Err(f.error()),
                }
            }
        })();
        let check = crate::delivery::Check {
            auth_mechanisms: vec!["Bearer".into()],
            stage,
            graph: Some(crate::delivery::GraphCheck { http_status, mailbox, transport: NAME }),
            ..crate::delivery::Check::default()
        };
        TestReport { result, check }
    }

    fn close_all(&self) {
        self.agents.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// An attachment taken out of the MIME for the draft path.
#[derive(Debug)]
pub struct Extracted {
    pub name: String,
    pub content_type: String,
    pub content_id: Option<String>,
    pub inline: bool,
    pub data: Vec<u8>,
}

/// Splits `mime` for the draft path: takes out binary attachment parts,
/// largest first, until what is left is at most `limit` bytes. Returns the
/// MIME without them and the attachments (decoded).
pub fn split_attachments(mime: &[u8], limit: usize) -> (Vec<u8>, Vec<Extracted>) {
    let Some(message) = MessageParser::default().parse(mime) else {
        return (mime.to_vec(), Vec::new());
    };
    // (start, end) of each removable part in the raw bytes, with its index.
    let mut candidates: Vec<(usize, usize, usize)> = Vec::new();
    for part in &message.parts {
        let PartType::Multipart(children) = &part.body else { continue };
        let Some(boundary) = part.content_type().and_then(|ct| ct.attribute("boundary")) else { continue };
        let delimiter = format!("\r\n--{boundary}");
        let body = (part.offset_body as usize, part.offset_end as usize);
        // Every delimiter of this multipart, in order.
        let mut delimiters = Vec::new();
        let mut from = body.0.saturating_sub(2);
        while let Some(i) = memchr::memmem::find(&mime[from..body.1.min(mime.len())], delimiter.as_bytes()) {
            delimiters.push(from + i);
            from += i + delimiter.len();
        }
        for &child in children {
            let c = &message.parts[child as usize];
            if !matches!(c.body, PartType::Binary(_) | PartType::InlineBinary(_)) {
                continue;
            }
            let start = c.offset_header as usize;
            // The part runs from the delimiter before it to the next one.
            let Some(&before) = delimiters.iter().rev().find(|&&d| d < start) else { continue };
            let Some(&after) = delimiters.iter().find(|&&d| d > start) else { continue };
            candidates.push((before, after, child as usize));
        }
    }
    candidates.sort_by_key(|(s, e, _)| std::cmp::Reverse(e - s));
    let mut size = mime.len();
    let mut chosen = Vec::new();
    for c in candidates {
        if size <= limit {
            break;
        }
        size -= c.1 - c.0;
        chosen.push(c);
    }
    if chosen.is_empty() {
        return (mime.to_vec(), Vec::new());
    }
    chosen.sort_by_key(|c| c.0);
    let mut out = Vec::with_capacity(size);
    let mut at = 0;
    let mut extracted = Vec::new();
    for (start, end, index) in chosen {
        out.extend_from_slice(&mime[at..start]);
        at = end;
        let p = &message.parts[index];
        let content_type = p
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into());
        extracted.push(Extracted {
            name: p.attachment_name().unwrap_or("attachment").to_string(),
            content_type,
            content_id: p.content_id().map(|id| id.trim_start_matches('<').trim_end_matches('>').to_string()),
            inline: p.content_disposition().is_some_and(|d| d.is_inline()),
            data: p.contents().to_vec(),
        });
    }
    out.extend_from_slice(&mime[at..]);
    (out, extracted)
}

/// Makes the MIME's To, Cc and Bcc headers name exactly `envelope` (Graph
/// sends to the headers' addresses): To and Cc keep the addresses in the
/// envelope, the rest of the envelope goes in Bcc. Unchanged (borrowed)
/// when they already match.
pub fn recipients_in_headers<'a>(mime: &'a [u8], envelope: &[String]) -> Cow<'a, [u8]> {
    let header_end = match memchr::memmem::find(mime, b"\r\n\r\n") {
        Some(i) => i + 2,
        None => return Cow::Borrowed(mime),
    };
    let Some(parsed) = MessageParser::default().parse_headers(&mime[..header_end + 2]) else {
        return Cow::Borrowed(mime);
    };
    let in_envelope = |a: &str| envelope.iter().any(|e| e.eq_ignore_ascii_case(a));
    let list = |addr: Option<&mail_parser::Address>| -> Vec<(Option<String>, String)> {
        addr.map(|a| {
            a.iter().filter_map(|x| x.address().map(|e| (x.name().map(str::to_string), e.to_string()))).collect()
        })
        .unwrap_or_default()
    };
    let (to, cc) = (list(parsed.to()), list(parsed.cc()));
    let keep = |l: &[(Option<String>, String)]| -> Vec<(Option<String>, String)> {
        l.iter().filter(|(_, e)| in_envelope(e)).cloned().collect()
    };
    let (to_keep, cc_keep) = (keep(&to), keep(&cc));
    let shown = |e: &str| to_keep.iter().chain(&cc_keep).any(|(_, a)| a.eq_ignore_ascii_case(e));
    let mut bcc: Vec<(Option<String>, String)> = Vec::new();
    for e in envelope {
        if !shown(e) && !bcc.iter().any(|(_, b)| b.eq_ignore_ascii_case(e)) {
            bcc.push((None, e.clone()));
        }
    }
    if to_keep.len() == to.len() && cc_keep.len() == cc.len() && bcc.is_empty() && parsed.bcc().is_none() {
        return Cow::Borrowed(mime);
    }
    // Drop the old To, Cc and Bcc fields (with their folded lines).
    let mut out = Vec::with_capacity(mime.len() + 256);
    let mut skipping = false;
    for line in mime[..header_end].split_inclusive(|&b| b == b'\n') {
        let folded = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !folded {
            let name = line.split(|&b| b == b':').next().unwrap_or(b"");
            skipping = [&b"to"[..], b"cc", b"bcc"].iter().any(|n| name.eq_ignore_ascii_case(n));
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    let mut headers = lettre::message::header::Headers::new();
    let mailboxes = |l: &[(Option<String>, String)]| -> lettre::message::Mailboxes {
        l.iter()
            .filter_map(|(name, email)| email.parse().ok().map(|a| lettre::message::Mailbox::new(name.clone(), a)))
            .collect()
    };
    if !to_keep.is_empty() {
        headers.set(lettre::message::header::To::from(mailboxes(&to_keep)));
    }
    if !cc_keep.is_empty() {
        headers.set(lettre::message::header::Cc::from(mailboxes(&cc_keep)));
    }
    if !bcc.is_empty() {
        headers.set(lettre::message::header::Bcc::from(mailboxes(&bcc)));
    }
    out.extend_from_slice(headers.to_string().as_bytes());
    out.extend_from_slice(&mime[header_end..]);
    Cow::Owned(out)
}

impl Graph {
    /// [`Transport::send`], before advice is attached to a failure.
    #[allow(clippy::result_large_err)] // see delivery.rs
    fn send_message(
        &self,
        settings: &ProfileSettings,
        login: Option<&Login>,
        refresh: Refresh,
        mail: &Mail,
    ) -> std::result::Result<Delivery, Failure> {
        let config = |e: Error| failure(e.code(), e.message());
        check_profile(settings).map_err(config)?;
        let base = mailbox_url(settings, Some(mail.from)).map_err(config)?;
        crate::transcript::set_server(&crate::http::url_host(&settings.graph_url));
        let link = self.link(settings)?;
        let mime = recipients_in_headers(mail.body, mail.to);
        let mut token = match login {
            Some(l) => l.secret.clone(),
            None => {
                return Err(failure(
                    Code::Credentials,
                    format!("profile {}: Graph needs an OAuth2 token", settings.name),
                ))
            }
        };
        let mut refreshed = false;
        let _turn = link.turn.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match self.deliver(&link.agent, &base, &token, &mime, settings) {
                Ok(status) => {
                    return Ok(Delivery {
                        transport: NAME,
                        reply: None,
                        http_status: Some(status),
                        rejected: Vec::new(),
                    })
                }
                Err(f) if f.token_refused && !refreshed => {
                    refreshed = true;
                    match refresh() {
                        Ok(Some(fresh)) if fresh.secret != token => token = fresh.secret,
                        Ok(_) => return Err(f),
                        // The token endpoint could not be reached: that is
                        // the outcome (CONNECT, retried).
                        Err(r) if !r.token_refused && r.code != Code::Credentials => {
                            return Err(Failure { transport: NAME, ..r });
                        }
                        // Refused too: AUTH, new credentials needed.
                        Err(r) => {
                            let mut f = f;
                            f.message = format!("{}; the refresh failed too: {}", f.message, r.message);
                            return Err(f);
                        }
                    }
                }
                Err(f) => return Err(f),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_loopback_http() {
        assert_eq!(normalize_url("https://graph.microsoft.com/v1.0/").unwrap(), "https://graph.microsoft.com/v1.0");
        assert_eq!(normalize_url("http://127.0.0.1:8080/v1.0").unwrap(), "http://127.0.0.1:8080/v1.0");
        assert_eq!(normalize_url("http://[::1]:80").unwrap(), "http://[::1]:80");
        assert!(normalize_url("http://graph.microsoft.com/v1.0").unwrap_err().contains("loopback"));
        assert!(normalize_url("ftp://x").is_err());
        assert!(normalize_url("https://u:p@host/").is_err());
        assert!(normalize_url("https://host:0/").is_err());
        assert!(normalize_url("graph.microsoft.com").is_err());
    }

    #[test]
    fn app_only_sends_from_the_mailbox_or_the_sender() {
        let mut c = crate::config::Config::new();
        c.set("SMTPTransport", Some("Graph")).unwrap();
        c.set("SMTPGraphUrl", Some("https://graph.example/v1.0/")).unwrap();
        let mut s = c.settings("Default").unwrap();
        assert_eq!(mailbox_url(&s, Some("anna@firm.example")).unwrap(), "https://graph.example/v1.0/me");
        s.graph_oauth2_flow = Some("ClientCredentials".into());
        assert_eq!(
            mailbox_url(&s, Some("anna@firm.example")).unwrap(),
            "https://graph.example/v1.0/users/anna@firm.example"
        );
        s.graph_mailbox = Some("office/x@firm.example".into());
        assert_eq!(mailbox_url(&s, None).unwrap(), "https://graph.example/v1.0/users/office%2Fx@firm.example");
        s.graph_mailbox = None;
        assert!(mailbox_url(&s, None).unwrap_err().message().contains("SMTPGraphMailbox"));
        s.graph_oauth2_provider = Some("Google".into());
        assert!(check_profile(&s).unwrap_err().message().contains("SMTPAuthModel"));
        s.auth_model = AuthModel::OAuth2;
        assert!(check_profile(&s).unwrap_err().message().contains("SMTPOAuth2Provider"));
    }

    fn mime(headers: &str) -> Vec<u8> {
        format!("{headers}\r\nSubject: s\r\n\r\nbody\r\n").into_bytes()
    }

    #[test]
    fn headers_name_the_envelope() {
        let m = mime("From: a@x.example\r\nTo: \"B\" <b@x.example>,\r\n c@x.example\r\nCc: d@x.example");
        let env = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches!(
            recipients_in_headers(&m, &env(&["b@x.example", "c@x.example", "d@x.example"])),
            Cow::Borrowed(_)
        ));
        let out = recipients_in_headers(&m, &env(&["c@x.example", "e@x.example"]));
        let text = String::from_utf8(out.into_owned()).unwrap();
        assert!(text.contains("To: c@x.example\r\n"), "{text}");
        assert!(text.contains("Bcc: e@x.example\r\n"), "{text}");
        assert!(!text.contains("b@x.example") && !text.contains("Cc:"), "{text}");
        assert!(text.contains("\r\nSubject: s\r\n") && text.ends_with("\r\n\r\nbody\r\n"), "{text}");
    }

    #[test]
    fn large_attachments_come_out_of_the_draft() {
        let big = vec![7u8; 200_000];
        let b64 = B64.encode(&big);
        let wrapped: Vec<String> = b64.as_bytes().chunks(76).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        let m = format!(
            "From: a@x.example\r\nTo: b@x.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\nhello\r\n--BB\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--BB--\r\n",
            wrapped.join("\r\n")
        );
        let (draft, out) = split_attachments(m.as_bytes(), 10_000);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "a.pdf");
        assert_eq!(out[0].content_type, "application/pdf");
        assert_eq!(out[0].data, big);
        let draft = String::from_utf8(draft).unwrap();
        assert!(draft.ends_with("--BB\r\nContent-Type: text/plain\r\n\r\nhello\r\n--BB--\r\n"), "{draft}");
        let (same, none) = split_attachments(m.as_bytes(), 1_000_000);
        assert!(none.is_empty());
        assert_eq!(same, m.as_bytes());
    }
}
