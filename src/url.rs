//! URLs the library may request: `https://`, or `http://` to a loopback
//! host (test servers). Checks only; requests are made by [`crate::http`].

use std::net::IpAddr;
use ureq::http::Uri;

use crate::error::{Error, Result};
use crate::text::{is_host_name, printable};

/// Whether `host` (as a URL spells it, brackets allowed) is loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

/// The host of `url` for messages ("login.microsoftonline.com"), or
/// "(bad URL)".
pub fn url_host(url: &str) -> String {
    url.parse::<Uri>().ok().and_then(|u| u.host().map(str::to_string)).unwrap_or_else(|| "(bad URL)".into())
}

/// Checks that `url` may be requested: `https://`, or `http://` to a
/// loopback host. `what` names the setting or document in the error.
pub fn check_url(url: &str, what: &str) -> Result<()> {
    let uri: Uri =
        url.parse().map_err(|_| Error::config(format!("{what}: \"{}\" is not a URL", printable_url(url))))?;
    let host = uri.host().ok_or_else(|| Error::config(format!("{what}: the URL has no host")))?;
    match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("https") => Ok(()),
        Some("http") if is_loopback_host(host) => Ok(()),
        Some("http") => Err(Error::config(format!(
            "{what}: http:// is allowed only for a loopback address (127.0.0.1, ::1, localhost), not {host}; use https://"
        ))),
        _ => Err(Error::config(format!("{what}: an https:// URL expected"))),
    }
}

/// The scheme, host and path of a URL, without query or fragment (which
/// may carry codes), for error messages.
fn printable_url(url: &str) -> String {
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    printable(&url[..cut])
}

/// Checks and normalises a base URL (SMTPGraphUrl): `https://host[:port][/path]`, or
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
    if ip.is_none() && !is_host_name(host) {
        return Err(format!("a bad host \"{host}\" in the URL"));
    }
    let loopback = is_loopback_host(host);
    if scheme == "http" && !loopback {
        return Err("http:// is allowed only for a loopback address (127.0.0.1, ::1, localhost); use https://".into());
    }
    Ok(format!("{scheme}://{authority}{}", path.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    #[test]
    fn only_https_or_loopback_http() {
        assert!(check_url("https://login.example.com/x", "t").is_ok());
        assert!(check_url("http://127.0.0.1:8080/x", "t").is_ok());
        assert!(check_url("http://127.9.9.9/x", "t").is_ok());
        assert!(check_url("http://[::1]:80/x", "t").is_ok());
        assert!(check_url("http://localhost/x", "t").is_ok());
        let e = check_url("http://login.example.com/x?code=secret", "SMTPOAuth2Issuer").unwrap_err();
        assert_eq!(e.code(), Code::Config);
        assert!(e.message().contains("SMTPOAuth2Issuer") && e.message().contains("login.example.com"));
        assert!(!e.message().contains("secret"));
        assert!(check_url("ftp://x.example/", "t").is_err());
        assert!(check_url("not a url", "t").is_err());
    }

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
}
