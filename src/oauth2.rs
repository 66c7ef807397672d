//! OAuth2 and OpenID Connect, the protocol side: discovery, token requests,
//! PKCE, the loopback redirect listener (RFC 8252 §7.3) and device
//! authorization (RFC 8628). No state of a client lives here; see
//! `client/oauth.rs` for flows, the refresh in `login()` and storage.
//!
//! Every token, code, verifier and secret is held in [`Zeroizing`] memory
//! and never put in an error message: errors name the provider's error
//! code (`invalid_grant`, `access_denied`, ...) and the endpoint's host.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

use crate::error::{Code, Error, Result};
use crate::http::{self, Http};

/// The endpoints of an issuer, from its discovery document.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub issuer: String,
    pub authorization: Option<String>,
    pub token: String,
    pub device_authorization: Option<String>,
}

/// Reads `{issuer}/.well-known/openid-configuration`.
///
/// Errors: CONNECT (unreachable, not JSON, no token endpoint), TLS, CONFIG
/// (an endpoint that is not https:// outside loopback).
pub fn discover(http: &Http, issuer: &str) -> Result<Endpoints> {
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    crate::url::check_url(&url, "SMTPOAuth2Issuer")?;
    let response = http.get_json(&url, "OpenID discovery", &[])?;
    if !response.is_success() {
        return Err(Error::new(
            Code::Connect,
            format!("OpenID discovery at {} answered HTTP {}", crate::url::url_host(&url), response.status),
        ));
    }
    let doc = response.json("OpenID discovery")?;
    let endpoint = |name: &str| -> Result<Option<String>> {
        match doc.get(name).and_then(Value::as_str) {
            None => Ok(None),
            Some(u) => {
                crate::url::check_url(u, &format!("the issuer's {name}"))?;
                Ok(Some(u.to_string()))
            }
        }
    };
    let token = endpoint("token_endpoint")?.ok_or_else(|| {
        Error::new(Code::Connect, format!("OpenID discovery at {} has no token_endpoint", crate::url::url_host(&url)))
    })?;
    Ok(Endpoints {
        issuer: issuer.to_string(),
        authorization: endpoint("authorization_endpoint")?,
        token,
        device_authorization: endpoint("device_authorization_endpoint")?,
    })
}

/// What a token endpoint gave.
pub struct Tokens {
    pub access: Zeroizing<String>,
    pub refresh: Option<Zeroizing<String>>,
    /// Seconds the access token lives, as the provider said (`expires_in`).
    pub expires_in: Option<i64>,
    /// `preferred_username`, else `email`, from the ID token.
    pub username: Option<String>,
}

/// Why a token request gave no tokens.
#[derive(Debug)]
pub enum TokenError {
    /// The provider answered with an OAuth2 error (`invalid_grant`, ...).
    Refused { error: String, description: Option<String> },
    /// The endpoint could not be reached, or answered something that is
    /// not an OAuth2 answer (CONNECT, TLS).
    Failed(Error),
}

impl TokenError {
    /// The error for a host: the provider's error code and description
    /// (never a token), prefixed with `what`.
    pub fn to_error(&self, what: &str) -> Error {
        match self {
            TokenError::Refused { error, description } => {
                let detail = description.as_deref().map(|d| format!(": {}", printable(d))).unwrap_or_default();
                let code = match error.as_str() {
                    "temporarily_unavailable" | "server_error" => Code::Connect,
                    _ => Code::Auth,
                };
                Error::new(code, format!("{what}: the provider refused ({error}{detail})"))
            }
            TokenError::Failed(e) => e.clone().context(what),
        }
    }
}

fn printable(text: &str) -> String {
    let t: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    t
}

/// POSTs `form` to `token_url` and reads the answer.
pub fn token_request(http: &Http, token_url: &str, form: &[(&str, &str)]) -> std::result::Result<Tokens, TokenError> {
    let response = http.post_form(token_url, "token endpoint", form).map_err(TokenError::Failed)?;
    let host = crate::url::url_host(token_url);
    let doc = response.json("token endpoint").map_err(|_| {
        TokenError::Failed(Error::new(
            Code::Connect,
            format!("the token endpoint at {host} answered HTTP {} without JSON", response.status),
        ))
    })?;
    if let Some(error) = doc.get("error").and_then(Value::as_str) {
        return Err(TokenError::Refused {
            error: printable(error),
            description: doc.get("error_description").and_then(Value::as_str).map(printable),
        });
    }
    if !response.is_success() {
        return Err(TokenError::Failed(Error::new(
            Code::Connect,
            format!("the token endpoint at {host} answered HTTP {}", response.status),
        )));
    }
    let access = doc.get("access_token").and_then(Value::as_str).ok_or_else(|| {
        TokenError::Failed(Error::new(Code::Connect, format!("the token endpoint at {host} gave no access_token")))
    })?;
    let expires_in = doc.get("expires_in").and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()));
    Ok(Tokens {
        access: Zeroizing::new(access.to_string()),
        refresh: doc.get("refresh_token").and_then(Value::as_str).map(|r| Zeroizing::new(r.to_string())),
        expires_in,
        username: doc.get("id_token").and_then(Value::as_str).and_then(id_token_username),
    })
    // `doc` (holding the tokens) is dropped here; the body it came from
    // is zeroized with the response.
}

impl Tokens {
    /// When the access token expires (Unix seconds) if it came at `now`;
    /// 0 when the provider gave no `expires_in`.
    pub fn expires_at(&self, now: i64) -> i64 {
        // Saturated: an endpoint's `expires_in` of i64::MAX means "never".
        self.expires_in.map(|s| now.saturating_add(s.max(0))).unwrap_or(0)
    }
}

/// `preferred_username`, else `email`, from an ID token's claims. The
/// token came straight from the token endpoint over TLS, so its
/// signature need not be checked (OpenID Connect Core §3.1.3.7).
pub fn id_token_username(id_token: &str) -> Option<String> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = B64URL.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    ["preferred_username", "email"]
        .iter()
        .filter_map(|k| claims.get(*k).and_then(Value::as_str))
        .find(|v| !v.is_empty() && crate::text::check_text(v).is_ok())
        .map(str::to_string)
}

/// `n` random bytes as base64url (for state and PKCE verifiers).
pub fn random_string(n: usize) -> Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no random numbers from the OS: {e}")))?;
    Ok(Zeroizing::new(B64URL.encode(&*bytes)))
}

/// A PKCE pair (RFC 7636, S256).
pub struct Pkce {
    pub verifier: Zeroizing<String>,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Result<Pkce> {
        let verifier = random_string(32)?; // 43 characters
        let challenge = B64URL.encode(Sha256::digest(verifier.as_bytes()));
        Ok(Pkce { verifier, challenge })
    }
}

/// The scopes to ask for: the configured ones plus `openid`, `profile`
/// and `email` (for the username in the ID token).
pub fn scopes_with_openid(scopes: &str) -> String {
    let mut list: Vec<&str> = scopes.split_whitespace().collect();
    for s in ["openid", "profile", "email"] {
        if !list.contains(&s) {
            list.push(s);
        }
    }
    list.join(" ")
}

/// Builds `base?k=v&...` (or `&` when base has a query already).
pub fn url_with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = String::from(base);
    url.push(if base.contains('?') { '&' } else { '?' });
    url.push_str(&http::form_encode(pairs));
    url
}

/// The page the loopback listener answers a browser with.
fn page(status: &str, title: &str, text: &str) -> Vec<u8> {
    let body = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>{title}</h1><p>{text}</p></body></html>"
    );
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What the browser brought back to the redirect URI.
pub enum Redirect {
    Code(Zeroizing<String>),
    /// The provider's `error` (access_denied, ...).
    Refused(String),
}

/// Waits on `listener` for the one redirect of a sign-in with `state`,
/// until `deadline` or `cancelled`. Requests for other paths get 404 and
/// a redirect with another state gets 400; both are ignored. The first
/// redirect with the right state is answered with "you may close this
/// window" and ends the wait; the listener is then dropped by the caller,
/// so a second redirect finds nothing listening.
pub fn await_redirect(
    listener: &TcpListener,
    state: &str,
    deadline: Instant,
    cancelled: &AtomicBool,
) -> std::result::Result<Redirect, Error> {
    listener.set_nonblocking(true).map_err(|e| Error::internal(format!("loopback listener: {e}")))?;
    loop {
        if cancelled.load(Ordering::Acquire) {
            return Err(Error::new(Code::Auth, "the sign-in was cancelled"));
        }
        if Instant::now() >= deadline {
            return Err(Error::new(Code::Auth, "the sign-in expired before the browser came back (expired_token)"));
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if let Some(redirect) = handle_redirect(stream, state) {
                    return Ok(redirect);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn handle_redirect(mut stream: TcpStream, state: &str) -> Option<Redirect> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = Zeroizing::new(Vec::with_capacity(2048));
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    chunk.iter_mut().for_each(|b| *b = 0);
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if method != "GET" || path != "/" {
        let _ = stream.write_all(&page("404 Not Found", "Not found", "Nothing here."));
        return None;
    }
    let mut code = None;
    let mut got_state = None;
    let mut error = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = Zeroizing::new(percent_decode(v));
        match k {
            "code" => code = Some(v),
            "state" => got_state = Some(v),
            "error" => error = Some(printable(&v)),
            _ => {}
        }
    }
    if got_state.as_deref().map(|s| s.as_str()) != Some(state) {
        let _ = stream.write_all(&page(
            "400 Bad Request",
            "Sign-in not accepted",
            "This answer does not belong to the sign-in the program started (state mismatch).",
        ));
        return None;
    }
    match (code, error) {
        (_, Some(error)) => {
            let _ = stream.write_all(&page(
                "200 OK",
                "Sign-in refused",
                "The sign-in was not completed. You may close this window.",
            ));
            Some(Redirect::Refused(error))
        }
        (Some(code), None) => {
            let _ = stream.write_all(&page(
                "200 OK",
                "Signed in",
                "You are signed in. You may close this window and return to the program.",
            ));
            Some(Redirect::Code(code))
        }
        (None, None) => {
            let _ = stream.write_all(&page("400 Bad Request", "Sign-in not accepted", "No authorization code."));
            None
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b))) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_and_id_token() {
        let p = Pkce::new().unwrap();
        assert_eq!(p.verifier.len(), 43);
        assert_eq!(p.challenge, B64URL.encode(Sha256::digest(p.verifier.as_bytes())));
        let claims = B64URL.encode(br#"{"sub":"x","email":"a@b.example","preferred_username":"anna@b.example"}"#);
        assert_eq!(id_token_username(&format!("h.{claims}.s")).as_deref(), Some("anna@b.example"));
        let claims = B64URL.encode(br#"{"sub":"x","email":"a@b.example"}"#);
        assert_eq!(id_token_username(&format!("h.{claims}.s")).as_deref(), Some("a@b.example"));
        assert_eq!(percent_decode("a%20b+c%2"), "a b c%2");
        assert_eq!(scopes_with_openid("x offline_access"), "x offline_access openid profile email");
    }
}
