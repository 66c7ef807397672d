//! A small blocking HTTPS client for the library's own requests (OAuth2
//! token endpoints, discovery documents, Microsoft Graph).
//!
//! Built on `ureq` 3 over rustls with the ring provider (no tokio, no
//! OpenSSL). An [`Http`] is made from a profile's trust settings, the same
//! ones SMTP uses (`src/tls.rs`): the operating system's roots plus
//! SMTPCaFile, SMTPAcceptInvalidCertificates, SMTPMinTlsVersion. Every
//! request, from connect to the last byte of the body, is bounded by
//! SMTPConnectionTimeout. `http://` is accepted only for loopback hosts
//! (127.0.0.0/8, ::1, `localhost`), for test servers.
//!
//! Errors: a host that cannot be reached (DNS, TCP, a timeout, a broken
//! connection) is `SMTPB_ERR_CONNECT`; a TLS handshake or certificate
//! failure is `SMTPB_ERR_TLS`; a URL that is not allowed is
//! `SMTPB_ERR_CONFIG`. Messages name the URL's host, never its path or
//! query (which may carry a code) and never a header or body.
//!
//! HTTP status codes are not errors here: every response is returned with
//! its status, headers and body so the caller decides (an OAuth2 error is
//! a 400 with a JSON body; Graph's 429 carries Retry-After). Response
//! bodies are kept in zeroized memory, since they may hold tokens.
//!
//! Thread safety: [`Http`] is `Clone + Send + Sync`; clones share one
//! keep-alive connection pool.

use std::time::Duration;
use ureq::http::{HeaderMap, Method, Request};
use zeroize::Zeroizing;

use crate::config::ProfileSettings;
use crate::error::{Code, Error, Result};
use crate::url::{check_url, url_host};

/// The largest response body read (Graph's and token endpoints' answers
/// are a few kilobytes).
pub(crate) const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;

/// An HTTP(S) client with one profile's trust settings and timeout.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
    timeout: Duration,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").field("timeout", &self.timeout).finish()
    }
}

/// A response: status, headers and the whole body (in zeroized memory).
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse").field("status", &self.status).field("bytes", &self.body.len()).finish()
    }
}

impl HttpResponse {
    /// The value of header `name` as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Retry-After in seconds (the delta-seconds form), if given.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body parsed as JSON. `what` names the document in the error
    /// (the body itself is never quoted: it may hold a token).
    pub fn json(&self, what: &str) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::new(
                Code::Connect,
                format!(
                    "{what}: the answer (HTTP {}) is not JSON (line {}, column {})",
                    self.status,
                    e.line(),
                    e.column()
                ),
            )
        })
    }
}

/// Percent-encodes `pairs` as `application/x-www-form-urlencoded`, into
/// zeroized memory (the values may be secrets).
pub fn form_encode(pairs: &[(&str, &str)]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        url_encode_into(&mut out, k);
        out.push('=');
        url_encode_into(&mut out, v);
    }
    out
}

/// Appends `text` percent-encoded (unreserved characters kept, space as
/// `%20`), as both query strings and forms accept it.
pub fn url_encode_into(out: &mut String, text: &str) {
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
                out.push(char::from(b"0123456789ABCDEF"[(b & 15) as usize]));
            }
        }
    }
}

/// Maps a ureq error for a request to `url` to ours.
pub fn map_error(url: &str, err: ureq::Error) -> Error {
    let host = url_host(url);
    let tls = |detail: String| Error::new(Code::Tls, format!("TLS with {host} failed: {detail}"));
    match err {
        ureq::Error::Rustls(e) => tls(e.to_string()),
        ureq::Error::Tls(e) => tls(e.to_string()),
        ureq::Error::Pem(e) => tls(format!("{e:?}")),
        ureq::Error::Io(e) => {
            let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()).map(|r| r.to_string());
            match inner {
                Some(detail) => tls(detail),
                None => Error::new(Code::Connect, format!("cannot reach {host}: {e}")),
            }
        }
        ureq::Error::Timeout(t) => Error::new(Code::Connect, format!("{host} did not answer in time ({t})")),
        ureq::Error::HostNotFound => Error::new(Code::Connect, format!("cannot reach {host}: host not found")),
        ureq::Error::ConnectionFailed => Error::new(Code::Connect, format!("cannot reach {host}: connection failed")),
        ureq::Error::BodyExceedsLimit(n) => {
            Error::new(Code::Connect, format!("{host} sent an answer over the {n}-byte limit"))
        }
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => Error::config(format!("bad URL for {host}")),
        other => Error::new(Code::Connect, format!("HTTP request to {host} failed: {other}")),
    }
}

/// The roots for `settings`: the system's plus SMTPCaFile; `None` when
/// the system has none rustls can use and no SMTPCaFile is set (the
/// Mozilla roots then stand in, as for SMTP).
fn root_certs(settings: &ProfileSettings) -> Result<ureq::tls::RootCerts> {
    let mut ders: Vec<Vec<u8>> = crate::tls::system_roots().iter().map(|c| c.as_ref().to_vec()).collect();
    if let Some(ca) = &settings.ca_file {
        for cert in crate::pem::read_ca_file(ca).map_err(|e| e.context("SMTPCaFile"))? {
            ders.push(cert.as_ref().to_vec());
        }
    }
    if ders.is_empty() {
        return Ok(ureq::tls::RootCerts::WebPki);
    }
    let certs: Vec<ureq::tls::Certificate<'static>> =
        ders.iter().map(|d| ureq::tls::Certificate::from_der(d).to_owned()).collect();
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

impl Http {
    /// A client with `settings`' trust settings and SMTPConnectionTimeout.
    ///
    /// Errors: CONFIG when SMTPCaFile cannot be read.
    pub fn for_profile(settings: &ProfileSettings) -> Result<Http> {
        let (config, timeout) = Http::config_for(settings)?;
        Ok(Http { agent: ureq::Agent::new_with_config(config), timeout })
    }

    /// The agent configuration of [`Http::for_profile`], and the timeout.
    pub(crate) fn config_for(settings: &ProfileSettings) -> Result<(ureq::config::Config, Duration)> {
        let mut provider = rustls::crypto::ring::default_provider();
        if settings.min_tls13 {
            // ureq offers no protocol floor; a provider with only TLS 1.3
            // suites is one.
            provider.cipher_suites.retain(|s| s.version() == &rustls::version::TLS13);
        }
        let roots =
            if settings.accept_invalid_certificates { ureq::tls::RootCerts::WebPki } else { root_certs(settings)? };
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(std::sync::Arc::new(provider))
            .root_certs(roots)
            .disable_verification(settings.accept_invalid_certificates)
            .build();
        let timeout = Duration::from_millis(settings.timeout_ms.max(1) as u64);
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("smtpbridge/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok((config, timeout))
    }

    /// A client over `agent` (made with [`Http::config_for`]), for fuzzing
    /// the response handling over an in-memory transport.
    pub(crate) fn with_agent(agent: ureq::Agent, timeout: Duration) -> Http {
        Http { agent, timeout }
    }

    /// The underlying agent, for requests the helpers below do not cover.
    /// Its configuration: no redirects followed, HTTP statuses are not
    /// errors, the profile's timeout for each whole request. Map its errors
    /// with [`map_error`] and check URLs with [`check_url`](crate::url::check_url) first.
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// The timeout each request gets (SMTPConnectionTimeout).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends any request: `method` ("GET", "POST", "PUT", ...), extra
    /// `headers`, and an optional body. The URL is checked with
    /// [`check_url`](crate::url::check_url) (`what` names it in errors).
    pub fn request(
        &self,
        method: &str,
        url: &str,
        what: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<HttpResponse> {
        check_url(url, what)?;
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| Error::invalid_argument(format!("bad HTTP method \"{method}\"")))?;
        let mut builder = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let result = match body {
            Some(bytes) => {
                let request =
                    builder.body(bytes.to_vec()).map_err(|_| Error::config(format!("{what}: bad request")))?;
                self.agent.run(request)
            }
            None => {
                let request = builder.body(()).map_err(|_| Error::config(format!("{what}: bad request")))?;
                self.agent.run(request)
            }
        };
        let response = result.map_err(|e| map_error(url, e))?;
        read_response(url, response)
    }

    /// GET `url` with `Accept: application/json`; returns the response
    /// (any status) with its body.
    pub fn get_json(&self, url: &str, what: &str, headers: &[(&str, &str)]) -> Result<HttpResponse> {
        let mut all = vec![("accept", "application/json")];
        all.extend_from_slice(headers);
        self.request("GET", url, what, &all, None)
    }

    /// POST `pairs` as a form (`application/x-www-form-urlencoded`); the
    /// encoded body lives in zeroized memory.
    pub fn post_form(&self, url: &str, what: &str, pairs: &[(&str, &str)]) -> Result<HttpResponse> {
        let body = form_encode(pairs);
        self.request(
            "POST",
            url,
            what,
            &[("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")],
            Some(body.as_bytes()),
        )
    }

    /// POST a JSON document.
    pub fn post_json(
        &self,
        url: &str,
        what: &str,
        headers: &[(&str, &str)],
        json: &serde_json::Value,
    ) -> Result<HttpResponse> {
        let body = Zeroizing::new(serde_json::to_vec(json).map_err(|e| Error::internal(e.to_string()))?);
        let mut all = vec![("content-type", "application/json"), ("accept", "application/json")];
        all.extend_from_slice(headers);
        self.request("POST", url, what, &all, Some(&body))
    }
}

/// Reads a whole response (up to [`MAX_BODY_BYTES`]).
pub fn read_response(url: &str, response: ureq::http::Response<ureq::Body>) -> Result<HttpResponse> {
    let (parts, mut body) = response.into_parts();
    let bytes = body.with_config().limit(MAX_BODY_BYTES).read_to_vec().map_err(|e| map_error(url, e))?;
    Ok(HttpResponse { status: parts.status.as_u16(), headers: parts.headers, body: Zeroizing::new(bytes) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode(&[("a b", "c&d=é"), ("x", "~.-_")]).as_str(), "a%20b=c%26d%3D%C3%A9&x=~.-_");
    }
}
