//! `smtpb_probe`: the settings screen's "detect" button.
//!
//! Tries a host the three usual ways at once, each within
//! SMTPConnectionTimeout: 465 with implicit TLS, 587 with STARTTLS, and 25
//! with STARTTLS, then (when STARTTLS is not to be had there) plain. Each
//! try runs up to EHLO (and TLS), notes the AUTH mechanisms offered, and
//! ends with QUIT: no login, no mail. SMTPProbePorts maps the standard
//! ports to others (`465=10465,587=10587,25=10025`), for tests and for
//! servers on unusual ports.

use std::time::Duration;

use super::{Client, ProbeReport, ProbeResult, Suggested, TestOutcome};
use crate::config::{self, Authentication, Config, Encryption, ProfileSettings};
use crate::error::{Code, Error};
use crate::smtp::{Probe, Session};

/// The standard ports, and what each is tried with, in the order of
/// preference for `suggested`.
const TRIES: [(u16, Encryption); 3] = [(465, Encryption::Ssl), (587, Encryption::StartTls), (25, Encryption::StartTls)];

fn encryption_name(e: Encryption) -> &'static str {
    match e {
        Encryption::None => "None",
        Encryption::Ssl => "SSL",
        Encryption::StartTls => "TLS",
    }
}

impl Client {
    /// Probes `host` (`smtpb_probe`). The report is written whatever the
    /// result, once the host name and settings were valid; the result is
    /// `SMTPB_OK` when some way works.
    pub fn probe(&self, host: &str) -> TestOutcome<ProbeReport> {
        let unreported = |e: Error| TestOutcome { result: Err(e), report: None };
        if let Err(e) = self.check_open() {
            return unreported(e);
        }
        if host.trim().is_empty() {
            return unreported(Error::invalid_argument("host is empty: a host name or IP address expected"));
        }
        let mut scratch = Config::new();
        if let Err(e) = scratch.set("SMTPServer", Some(host)) {
            return unreported(Error::invalid_argument(format!("host: {}", e.message())));
        }
        let config = self.read_config().clone();
        let map = match config::probe_port_map(&config.global_settings().probe_ports) {
            Ok(m) => m,
            Err(e) => return unreported(e),
        };
        // Trust settings, timeout and EHLO name of the profile a message
        // would use, or the defaults.
        let base = match config.choose_profile(None, None) {
            Ok(s) => s,
            Err(_) => match scratch.settings(config::DEFAULT_PROFILE) {
                Ok(s) => s,
                Err(e) => return unreported(e),
            },
        };
        log::info!("probing {host} on ports 465, 587 and 25");
        let results: Vec<Vec<ProbeResult>> = std::thread::scope(|scope| {
            let handles: Vec<_> = TRIES
                .iter()
                .map(|(port, encryption)| {
                    let (base, map) = (&base, &map);
                    scope.spawn(move || {
                        let _scope = self.log_scope();
                        let standard = *port;
                        let port = map.get(&standard).copied().unwrap_or(standard);
                        let mut settings = ProfileSettings::clone(base);
                        settings.server = Some(host.to_string());
                        settings.port = port;
                        settings.encryption = *encryption;
                        settings.authentication = Authentication::None;
                        let first = self.probe_one(&settings);
                        let mut out = vec![first.0];
                        if standard == 25 {
                            // Port 25 without STARTTLS: does it take plain SMTP?
                            if first.1 == Some(Code::Tls) {
                                settings.encryption = Encryption::None;
                                out.push(self.probe_one(&settings).0);
                            }
                        }
                        out
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
        });
        let results: Vec<ProbeResult> = results.into_iter().flatten().collect();
        let with_tls = results.iter().find(|r| r.ok && r.encryption != "None");
        let chosen = with_tls.or_else(|| results.iter().find(|r| r.ok));
        let suggested = chosen.map(|r| Suggested { server: host.to_string(), encryption: r.encryption, port: r.port });
        let result = match &suggested {
            Some(_) => Ok(()),
            None => Err(Error::new(
                Code::Connect,
                format!("no way of sending through {host} worked (465 SSL, 587 TLS, 25 TLS or plain): see the report"),
            )),
        };
        TestOutcome { result, report: Some(ProbeReport { host: host.to_string(), results, suggested }) }
    }

    /// One try: its report entry, and the code it failed with.
    fn probe_one(&self, settings: &crate::config::ProfileSettings) -> (ProbeResult, Option<Code>) {
        let mut probe = Probe { stage: "connect", ..Probe::default() };
        let outcome =
            self.inner.pool.tls_config(settings).map_err(|e| (e.code(), e.message().to_string(), None)).and_then(
                |tls| {
                    Session::open(settings, &tls, None, &mut probe, &self.inner.pool.sockets)
                        .map(|s| s.quit(Duration::from_millis(settings.timeout_ms.min(2000) as u64)))
                        .map_err(|f| (f.code, f.message.clone(), crate::advice::for_failure(&f, settings)))
                },
            );
        let (ok, code, error, advice) = match outcome {
            Ok(()) => (true, None, None, None),
            Err((code, message, advice)) => (false, Some(code), Some(message), advice),
        };
        log::info!(
            "probe {}:{} {}: {}",
            settings.server.as_deref().unwrap_or(""),
            settings.port,
            encryption_name(settings.encryption),
            error.as_deref().unwrap_or("works")
        );
        let entry = ProbeResult {
            advice,
            auth_mechanisms: probe.auth_mechanisms,
            banner: probe.banner,
            encryption: encryption_name(settings.encryption),
            error,
            ok,
            port: settings.port,
            stage: probe.stage,
            tls: probe.tls,
        };
        (entry, code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_maps_are_parsed_and_checked() {
        let map = config::probe_port_map("465=10465, 587=10587,25=10025").unwrap();
        assert_eq!(map[&465], 10465);
        assert_eq!(map[&25], 10025);
        assert!(config::probe_port_map("").unwrap().is_empty());
        let e = config::probe_port_map("466=1").unwrap_err();
        assert!(e.message().contains("SMTPProbePorts") && e.message().contains("466=1"));
        assert!(config::probe_port_map("465=0").is_err());
    }
}
