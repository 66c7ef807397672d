//! Pooled SMTP sessions per profile.
//!
//! Consecutive messages through one profile reuse an open session: no new
//! TCP connect, TLS handshake, EHLO or AUTH. A session is keyed by every
//! setting of its profile and by the credential it logged in with, so a
//! change to either makes the next message open a fresh one. Before reuse
//! a session is checked without a round trip (did the server close it or
//! say anything while it sat idle?); if the server closed it so recently
//! that the check could not see it, the first command fails as "stale",
//! and the message goes out once more on a new session — nothing was
//! committed on the old one.

use rustls::ClientConfig;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::ProfileSettings;
use crate::error::Result;
use crate::smtp::{Delivery, Failure, Login, Mail, Probe, Session, Sockets};

/// Sessions idle longer than this are closed rather than reused; most
/// servers drop idle clients after a few minutes anyway.
const MAX_IDLE: Duration = Duration::from_secs(120);
/// Idle sessions kept per key.
const MAX_IDLE_PER_KEY: usize = 8;
/// How long a polite QUIT may take when a session is retired.
const QUIT_WAIT: Duration = Duration::from_millis(200);

/// Identifies sessions that can stand in for each other.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolKey {
    settings: u64,
    user: Option<String>,
    credential_revision: u64,
}

impl PoolKey {
    pub fn new(settings: &ProfileSettings, user: Option<&str>, credential_revision: u64) -> PoolKey {
        let mut h = DefaultHasher::new();
        settings.hash(&mut h);
        PoolKey { settings: h.finish(), user: user.map(str::to_string), credential_revision }
    }
}

/// The pool of one client.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<(PoolKey, Session)>>,
    /// Every open session's socket, so shutdown can end them.
    pub sockets: Arc<Sockets>,
    tls: Mutex<HashMap<u64, Arc<ClientConfig>>>,
}

impl Pool {
    /// The TLS configuration for `settings`, built once per settings.
    pub fn tls_config(&self, settings: &ProfileSettings) -> Result<Arc<ClientConfig>> {
        let mut h = DefaultHasher::new();
        settings.hash(&mut h);
        let key = h.finish();
        let mut cache = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let config = crate::tls::client_config(settings)?;
        cache.insert(key, config.clone());
        Ok(config)
    }

    fn take_idle(&self, key: &PoolKey) -> Option<Session> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(index) = idle.iter().rposition(|(k, _)| k == key) {
            let (_, session) = idle.swap_remove(index);
            if session.idle_since.elapsed() < MAX_IDLE && session.looks_alive() {
                return Some(session);
            }
            drop(idle);
            session.quit(QUIT_WAIT);
            idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        }
        None
    }

    fn give_back(&self, key: PoolKey, session: Session) {
        if !session.reusable() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.iter().filter(|(k, _)| *k == key).count() < MAX_IDLE_PER_KEY {
            idle.push((key, session));
            return;
        }
        drop(idle);
        // Not kept: end it politely rather than just close the socket.
        session.quit(QUIT_WAIT);
    }

    /// Sends one message on a pooled or new session.
    #[allow(clippy::result_large_err)] // see smtp/mod.rs
    pub fn send(
        &self,
        settings: &ProfileSettings,
        key: &PoolKey,
        login: Option<&Login>,
        mail: &Mail,
    ) -> std::result::Result<Delivery, Failure> {
        if let Some(mut session) = self.take_idle(key) {
            log::debug!("reusing a session to {} (transaction {})", settings.name, session.transactions + 1);
            // Every attempt names its server, a reused session's too.
            crate::transcript::set_server(&format!("{}:{}", settings.server.as_deref().unwrap_or(""), settings.port));
            crate::transcript::note(|| {
                format!(
                    "reusing the session to {}:{} ({})",
                    settings.server.as_deref().unwrap_or(""),
                    settings.port,
                    session.banner
                )
            });
            match session.send(mail) {
                Err(f) if f.is_stale() => {} // open a new session below
                result => {
                    self.give_back(key.clone(), session);
                    return result;
                }
            }
        }
        // Needed only to open one (a pooled session has its own).
        let tls = self.tls_config(settings).map_err(|e| failure_from(e, "connect"))?;
        let mut session = Session::open(settings, &tls, login, &mut Probe::default(), &self.sockets)?;
        log::info!(
            "session opened to {}:{} for profile {} ({})",
            settings.server.as_deref().unwrap_or(""),
            settings.port,
            settings.name,
            session.tls_version().unwrap_or("no TLS")
        );
        let result = session.send(mail);
        self.give_back(key.clone(), session);
        result
    }

    /// Closes every idle session (QUIT), e.g. at shutdown.
    pub fn close_all(&self) {
        let sessions: Vec<Session> = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.drain(..).map(|(_, s)| s).collect()
        };
        for s in sessions {
            s.quit(QUIT_WAIT);
        }
    }
}

fn failure_from(e: crate::error::Error, stage: &'static str) -> Failure {
    Failure::new("smtp", e.code(), e.message()).at(stage)
}

/// SMTP as the pipeline's delivery step.
impl crate::delivery::Transport for Pool {
    fn check(&self, settings: &ProfileSettings) -> Result<()> {
        match settings.server {
            Some(_) => Ok(()),
            None => Err(crate::error::Error::config(format!("profile {}: SMTPServer is not set", settings.name))),
        }
    }

    fn name(&self) -> &'static str {
        "smtp"
    }

    fn signs_dkim(&self) -> bool {
        true
    }

    fn send(
        &self,
        settings: &ProfileSettings,
        identity: &crate::delivery::Identity,
        login: Option<&Login>,
        mail: &Mail,
    ) -> std::result::Result<crate::delivery::Delivery, crate::delivery::Failure> {
        let key = PoolKey::new(settings, identity.user.as_deref(), identity.revision);
        let delivery = Pool::send(self, settings, &key, login, mail).map_err(|mut f| {
            f.advice = crate::advice::for_failure(&f, settings);
            f
        })?;
        Ok(crate::delivery::Delivery {
            transport: "smtp",
            reply: Some(delivery.reply),
            http_status: None,
            rejected: delivery.rejected,
        })
    }

    fn test(
        &self,
        settings: &ProfileSettings,
        login: Option<&Login>,
        _refresh: crate::delivery::Refresh,
    ) -> crate::delivery::TestReport {
        let mut probe = Probe { stage: "connect", ..Probe::default() };
        let mut advice = None;
        let result = self.tls_config(settings).and_then(|tls| {
            Session::open(settings, &tls, login, &mut probe, &self.sockets)
                .map(|s| s.quit(Duration::from_millis(settings.timeout_ms as u64)))
                .map_err(|f: Failure| {
                    advice = crate::advice::for_failure(&f, settings);
                    let suffix = advice.as_ref().map(|a| a.suffix()).unwrap_or_default();
                    crate::error::Error::new(f.code, format!("{}{suffix}", f.message))
                })
        });
        let check = crate::delivery::Check {
            advice,
            auth_mechanisms: probe.auth_mechanisms,
            banner: probe.banner,
            capabilities: probe.capabilities,
            stage: probe.stage,
            tls: probe.tls,
            graph: None,
        };
        crate::delivery::TestReport { result, check }
    }

    fn close_all(&self) {
        Pool::close_all(self);
    }
}
