//! Requests to Graph: the pooled agent of a profile, one call with its
//! deadline, replies and Graph's errors, the URLs of a mailbox.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use super::*;
use crate::config::ProfileSettings;
use crate::delivery::Failure;
use crate::error::{Code, Error, Result};

/// Whether the app signs in for itself (SMTPOAuth2Flow=ClientCredentials):
/// then there is no `/me`.
pub(super) fn app_only(settings: &ProfileSettings) -> bool {
    settings.graph_oauth2_flow.as_deref() == Some("ClientCredentials")
}

/// The HTTPS agent of a profile: its trust settings (the system's roots
/// plus SMTPCaFile, SMTPAcceptInvalidCertificates, SMTPMinTlsVersion), no
/// redirects, HTTP errors returned as replies, every request bounded by
/// SMTPConnectionTimeout ([`crate::http`]).
pub(super) fn agent(settings: &ProfileSettings) -> Result<ureq::Agent> {
    Ok(crate::http::Http::for_profile(settings)?.agent().clone())
}

/// A failure of Graph's, before it is turned into the outcome.
pub(super) fn failure(code: Code, message: impl Into<String>) -> Failure {
    Failure::new(NAME, code, message)
}

/// The reply to one request.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) retry_after_ms: Option<u64>,
    pub(super) body: Vec<u8>,
}

impl Reply {
    pub(super) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Graph's `error.code: error.message`, or the HTTP status alone.
    pub(super) fn graph_error(&self) -> String {
        let v = self.json();
        let code = v["error"]["code"].as_str().unwrap_or("");
        let message = v["error"]["message"].as_str().unwrap_or("");
        let text = match (code.is_empty(), message.is_empty()) {
            (true, true) => String::new(),
            (false, true) => format!(" {code}"),
            (true, false) => format!(": {message}"),
            (false, false) => format!(" {code}: {message}"),
        };
        format!("HTTP {}{}", self.status, crate::text::printable(&text))
    }
}

/// One request: the method, the URL, the bearer token (none for upload
/// URLs, which carry their own), the body and its type. `sending`: the
/// request hands the message over, so a break after it went out may have
/// sent it.
pub(super) struct Request<'a> {
    pub(super) method: &'static str,
    pub(super) url: &'a str,
    pub(super) token: Option<&'a str>,
    pub(super) content_type: Option<&'a str>,
    pub(super) content_range: Option<String>,
    pub(super) body: &'a [u8],
    pub(super) sending: bool,
}

impl Graph {
    /// The agent for `settings`, made once per settings: its pool keeps one
    /// idle keep-alive connection, and each request is bounded by
    /// SMTPConnectionTimeout.
    pub(super) fn link(&self, settings: &ProfileSettings) -> std::result::Result<Arc<Link>, Failure> {
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

    pub(super) fn call(&self, agent: &ureq::Agent, request: Request) -> std::result::Result<Reply, Failure> {
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
}

/// The URL of the mailbox a message goes from: `{SMTPGraphUrl}/me`, or
/// `/users/{mailbox}` when the app signs in for itself.
pub(super) fn mailbox_url(settings: &ProfileSettings, sender: Option<&str>) -> Result<String> {
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
pub(super) fn expect(reply: &Reply, ok: &[u16], what: &str) -> std::result::Result<u16, Failure> {
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
pub(super) fn transport_failure(url: &str, what: &str, e: ureq::Error, sending: bool) -> Failure {
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
pub(super) fn redact_url(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Percent-encodes a path segment.
pub(super) fn percent_encode(segment: &str) -> String {
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
