//! Connecting: name resolution and TCP connect within the deadline, and
//! what a failed TLS handshake or an established one tells.

use rustls::ClientConnection;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::failure::{failure, Failure};
use super::io::{is_timeout, remaining, tls_version_name, IoFail};
use crate::config::{Encryption, ProfileSettings};
use crate::error::Code;
use crate::failure::Cause;
use crate::transcript;

pub(super) fn connect(host: &str, port: u16, deadline: Instant) -> Result<TcpStream, Failure> {
    let fail = |m: String| {
        let key = if m.starts_with("timed out") {
            "connection_timed_out"
        } else if m.starts_with("cannot resolve") || m.ends_with("has no address") {
            "host_not_found"
        } else {
            "connection_refused"
        };
        transcript::note(|| m.clone());
        failure(Code::Connect, "connect", m).with_cause(Some(Cause::Key(key)))
    };
    let addresses = resolve(host, port, deadline).map_err(fail)?;
    let mut last = None;
    let count = addresses.len() as u32;
    for (tried, address) in addresses.into_iter().enumerate() {
        let left = remaining(deadline).map_err(|_| fail(format!("timed out connecting to {host}:{port}")))?;
        // An address that does not answer must not take the others' time.
        let share = (left / (count - tried as u32)).max(left.min(Duration::from_secs(1)));
        match TcpStream::connect_timeout(&address, share) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(fail(match last {
        Some(e) if is_timeout(&e) => format!("timed out connecting to {host}:{port}"),
        Some(e) => format!("cannot connect to {host}:{port}: {e}"),
        None => format!("{host} has no address"),
    }))
}

/// The addresses of `host`, looked up by `deadline`. The system resolver
/// has no timeout of its own, so a name is looked up on a helper thread
/// that is left to finish on its own if the deadline passes first.
pub(super) fn resolve(
    host: &str,
    port: u16,
    deadline: Instant,
) -> std::result::Result<Vec<std::net::SocketAddr>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let bare = bare.strip_prefix("IPv6:").unwrap_or(bare);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(vec![std::net::SocketAddr::new(ip, port)]);
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    let name = bare.to_string();
    std::thread::Builder::new()
        .name("smtpbridge-dns".into())
        .spawn(move || {
            let _ = sender.send((name.as_str(), port).to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
        })
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let left = remaining(deadline).map_err(|_| format!("timed out resolving {host}"))?;
    match receiver.recv_timeout(left) {
        Ok(Ok(addresses)) => Ok(addresses),
        Ok(Err(e)) => Err(format!("cannot resolve {host}: {e}")),
        Err(_) => Err(format!("timed out resolving {host}")),
    }
}

/// A TLS handshake that failed: TLS, with advice for the recognised causes
/// (certificate, version, SMTP text where TLS was expected).
pub(super) fn tls_failure(
    settings: &ProfileSettings,
    name: &rustls::pki_types::ServerName<'static>,
    what: String,
    e: IoFail,
) -> Failure {
    let subject = crate::tls::take_peer_subject();
    let checked = name.to_str();
    let message = match &subject {
        Some(s) => format!("{what}: {e} (certificate subject {s}, name checked {checked})"),
        None => format!("{what}: {e}"),
    };
    let cause = match &e {
        IoFail::Tls(error) => Some(Cause::Tls { error: error.clone(), subject, checked: checked.to_string() }),
        // SMTP text instead of a ServerHello: a plain port closed on us.
        IoFail::Closed | IoFail::Protocol(_) if settings.encryption == Encryption::Ssl => Some(Cause::SslOnPlainPort),
        _ => None,
    };
    transcript::note(|| message.clone());
    log::warn!("{message}");
    failure(Code::Tls, "tls", message).with_cause(cause)
}

/// Notes the negotiated TLS version and cipher, and the certificate.
pub(super) fn tls_established(conn: &ClientConnection, host: &str, port: u16) {
    let version = tls_version_name(conn).unwrap_or("TLS");
    let suite = conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
    let subject = crate::tls::take_peer_subject().unwrap_or_else(|| "unknown".into());
    log::info!("{version} {suite} with {host}:{port}, certificate subject {subject}");
    transcript::note(|| format!("{version} {suite}, certificate subject {subject}"));
}
