//! The client: one data directory, its configuration, credentials, pooled
//! sessions and message statuses. Safe to share between threads.

use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;
use zeroize::Zeroizing;

use crate::config::{self, Authentication, Config, ProfileSettings, SecretChange};
use crate::credentials::{self, CredentialStore, SecretKind};
use crate::error::{Code, Error, Result};
use crate::fsutil;
use crate::limits::Limits;
use crate::message::{self, BuildContext, MessageSpec};
use crate::smtp::{Failure, Login, Probe, Session};
use crate::status::{Refusal, State, Status};
use crate::transport::{Pool, PoolKey};

/// `smtpb_client_open` flag: resume delivery of what the spool holds.
pub const OPEN_DEFAULT: u32 = 0;
/// `smtpb_client_open` flag: open with the outbox paused.
pub const OPEN_PAUSED: u32 = 1;

/// A client of the library. Cloning shares it.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: Option<PathBuf>,
    /// Held for the client's life: the exclusive lock on data_dir.
    _lock: Option<File>,
    config: RwLock<Config>,
    credentials: Mutex<CredentialStore>,
    /// Bumped on every credential change, so pooled sessions that logged
    /// in with an old credential are not reused.
    credential_revision: AtomicU64,
    pool: Pool,
    limits: Limits,
    statuses: Mutex<HashMap<String, Status>>,
    shut_down: AtomicBool,
    paused: AtomicBool,
}

/// The outcome of a send: the result, and the status when the message got
/// far enough to be recorded.
pub struct SendOutcome {
    pub result: Result<()>,
    pub status: Option<Value>,
}

/// The outcome of a connection test: the result and the report.
pub struct TestOutcome {
    pub result: Result<()>,
    pub report: Option<Value>,
}

fn lock_data_dir(dir: &Path) -> Result<File> {
    let path = dir.join("lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("cannot open", &path, &e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(Error::new(
                Code::Busy,
                format!(
                    "the data directory {} is in use by another client ({})",
                    dir.display(),
                    if holder.is_empty() { "holder unknown" } else { holder }
                ),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("cannot lock", &path, &e)),
    }
    let who = format!(
        "pid {}, host {}, user {}",
        std::process::id(),
        gethostname::gethostname().to_string_lossy(),
        std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into())
    );
    let _ = file.set_len(0);
    let _ = file.write_all(who.as_bytes());
    let _ = file.sync_all();
    Ok(file)
}

impl Client {
    /// Opens a client on `data_dir` (created if missing; `None` = in
    /// memory) with the credential store's master `secret` (`None` = a
    /// random key file in data_dir).
    pub fn open(data_dir: Option<&Path>, secret: Option<&str>, flags: u32) -> Result<Client> {
        if flags & !OPEN_PAUSED != 0 {
            return Err(Error::invalid_argument(format!("flags: unknown open flags {:#x}", flags & !OPEN_PAUSED)));
        }
        if let Some(dir) = data_dir {
            if !dir.is_absolute() {
                return Err(Error::invalid_argument(format!("data_dir \"{}\" must be an absolute path", dir.display())));
            }
            std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, &e))?;
        }
        let lock = data_dir.map(lock_data_dir).transpose()?;
        let config = match data_dir.map(config::config_path) {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(&path).map_err(|e| Error::io("cannot read", &path, &e))?;
                Config::from_json(&text)
                    .map_err(|e| Error::new(Code::Io, format!("{} is damaged: {}", path.display(), e.message())))?
                    .0
            }
            _ => Config::new(),
        };
        let secret: Zeroizing<Vec<u8>> = match secret {
            Some(s) => Zeroizing::new(s.as_bytes().to_vec()),
            None => credentials::key_file_secret(data_dir)?,
        };
        let store = CredentialStore::open(data_dir.map(|d| d.join("credentials.json")), &secret)?;
        let limits = Limits::open(data_dir.map(|d| d.join("limits.json")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                data_dir: data_dir.map(Path::to_path_buf),
                _lock: lock,
                config: RwLock::new(config),
                credentials: Mutex::new(store),
                credential_revision: AtomicU64::new(0),
                pool: Pool::default(),
                limits,
                statuses: Mutex::new(HashMap::new()),
                shut_down: AtomicBool::new(false),
                paused: AtomicBool::new(flags & OPEN_PAUSED != 0),
            }),
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.shut_down.load(Ordering::Acquire) {
            Err(Error::state("the client is shut down"))
        } else {
            Ok(())
        }
    }

    /// Shuts the client down: later calls fail with `SMTPB_ERR_STATE`;
    /// idle sessions are closed. Idempotent.
    pub fn shutdown(&self, _grace_ms: u32) -> Result<()> {
        if self.inner.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.pool.close_all();
        Ok(())
    }

    /// SMTPShutdownGraceMs, for close.
    pub fn shutdown_grace_ms(&self) -> u32 {
        self.read_config().global_settings().shutdown_grace_ms
    }

    /// Whether the client was opened paused and not resumed yet.
    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(Ordering::Acquire)
    }

    fn read_config(&self) -> std::sync::RwLockReadGuard<'_, Config> {
        self.inner.config.read().unwrap_or_else(|e| e.into_inner())
    }

    fn credentials(&self) -> std::sync::MutexGuard<'_, CredentialStore> {
        self.inner.credentials.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the configuration with `next` (persisted first), then
    /// applies the secret changes that came with it.
    fn commit_config(&self, next: Config, changes: Vec<SecretChange>) -> Result<()> {
        let mut config = self.inner.config.write().unwrap_or_else(|e| e.into_inner());
        if *config != next {
            if let Some(dir) = &self.inner.data_dir {
                let text = serde_json::to_vec_pretty(&next.to_json(None)).map_err(|e| Error::internal(e.to_string()))?;
                fsutil::atomic_write(&config::config_path(dir), &text, false)?;
            }
            *config = next;
            self.inner.pool.close_all();
        }
        drop(config);
        for change in changes {
            self.apply_secret_change(change)?;
        }
        Ok(())
    }

    fn apply_secret_change(&self, change: SecretChange) -> Result<()> {
        let mut store = self.credentials();
        match change {
            SecretChange::None => return Ok(()),
            SecretChange::Username(u) => store.set_shared_username(u.as_deref())?,
            SecretChange::Password(p) => store.set_shared_password(p.as_deref())?,
        }
        drop(store);
        self.credentials_changed();
        Ok(())
    }

    fn credentials_changed(&self) {
        self.inner.credential_revision.fetch_add(1, Ordering::AcqRel);
        self.inner.pool.close_all();
    }

    /// Sets one configuration key; `None` restores its default.
    pub fn config_set(&self, key: &str, value: Option<&str>) -> Result<()> {
        self.check_open()?;
        let mut next = self.read_config().clone();
        let change = next.set(key, value)?;
        self.commit_config(next, vec![change])
    }

    /// The effective value of a key ("" when it has none).
    pub fn config_get(&self, key: &str) -> Result<String> {
        self.check_open()?;
        if config::key_def(key.rsplit('.').next().unwrap_or(key)).is_some_and(|d| d.name == "SMTPUsername") {
            // Validate the key (prefix rules) before answering from the store.
            self.read_config().get(key)?;
            return Ok(self.credentials().shared_username().unwrap_or_default());
        }
        Ok(self.read_config().get(key)?.unwrap_or_default())
    }

    /// Applies `Key=Value` lines, all or nothing.
    pub fn config_import_keys(&self, lines: &str) -> Result<()> {
        self.check_open()?;
        let (next, changes) = self.read_config().import_keys(lines)?;
        self.commit_config(next, changes)
    }

    /// Replaces the whole configuration with the JSON shape.
    pub fn config_load_json(&self, json: &str) -> Result<()> {
        self.check_open()?;
        let (next, changes) = Config::from_json(json)?;
        self.commit_config(next, changes)
    }

    /// The configuration as JSON, without secrets.
    pub fn config_export_json(&self) -> Result<String> {
        self.check_open()?;
        let username = self.credentials().shared_username();
        Ok(self.read_config().to_json(username.as_deref()).to_string())
    }

    /// Stores a password credential for `user_id` (`None` = shared).
    pub fn credentials_set(&self, user_id: Option<&str>, username: &str, password: &str) -> Result<()> {
        self.check_open()?;
        check_user_id(user_id)?;
        self.credentials().set(user_id, username, password, SecretKind::Password, 0)?;
        self.credentials_changed();
        Ok(())
    }

    /// Stores an OAuth2 access token for `user_id` (`None` = shared).
    pub fn credentials_set_oauth2(&self, user_id: Option<&str>, username: &str, token: &str, expires_at: i64) -> Result<()> {
        self.check_open()?;
        check_user_id(user_id)?;
        if username.is_empty() {
            return Err(Error::invalid_argument("username: OAuth2 needs the mailbox's username"));
        }
        self.credentials().set(user_id, username, token, SecretKind::Oauth2, expires_at)?;
        self.credentials_changed();
        Ok(())
    }

    /// Removes the credential of `user_id`.
    pub fn credentials_remove(&self, user_id: Option<&str>) -> Result<()> {
        self.check_open()?;
        if !self.credentials().remove(user_id)? {
            return Err(Error::not_found(match user_id {
                Some(u) => format!("no credentials for user \"{}\"", config::printable(u)),
                None => "no shared credential".into(),
            }));
        }
        self.credentials_changed();
        Ok(())
    }

    /// The masked credential of `user_id`.
    pub fn credentials_masked(&self, user_id: Option<&str>) -> Result<String> {
        self.check_open()?;
        Ok(self.credentials().masked(user_id)?.to_string())
    }

    /// Adds a blacklist entry (an address or `@domain`).
    pub fn blacklist_add(&self, entry: &str) -> Result<()> {
        self.check_open()?;
        let mut next = self.read_config().clone();
        next.blacklist_add(entry)?;
        self.commit_config(next, Vec::new())
    }

    /// Removes a blacklist entry; `SMTPB_ERR_NOT_FOUND` if it is not there.
    pub fn blacklist_remove(&self, entry: &str) -> Result<()> {
        self.check_open()?;
        let mut next = self.read_config().clone();
        if !next.blacklist_remove(entry)? {
            return Err(Error::not_found(format!("\"{}\" is not on the blacklist", config::printable(entry))));
        }
        self.commit_config(next, Vec::new())
    }

    /// The blacklist as a JSON array.
    pub fn blacklist_list(&self) -> Result<String> {
        self.check_open()?;
        Ok(serde_json::to_string(self.read_config().blacklist()).expect("strings serialise"))
    }

    /// The status of a message.
    pub fn status(&self, id: &str) -> Result<String> {
        self.check_open()?;
        let statuses = self.inner.statuses.lock().unwrap_or_else(|e| e.into_inner());
        statuses
            .get(id)
            .map(|s| s.to_json().to_string())
            .ok_or_else(|| Error::not_found(format!("no message with id \"{}\"", config::printable(id))))
    }

    /// Chooses the profile for a message (ABI §4 "Profile choice").
    fn choose_profile(config: &Config, explicit: Option<&str>, sender: Option<&str>) -> Result<ProfileSettings> {
        if let Some(name) = explicit {
            let settings = config.settings(name)?;
            if !settings.enabled {
                return Err(Error::config(format!("profile {} is disabled (SMTPEnabled=false)", settings.name)));
            }
            return Ok(settings);
        }
        let enabled: Vec<ProfileSettings> = config
            .profiles()
            .iter()
            .map(|p| config.settings(&p.name))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .filter(|s| s.enabled)
            .collect();
        if let Some(sender) = sender {
            if let Some(s) = enabled.iter().find(|s| s.filter_matches(sender)) {
                return Ok(s.clone());
            }
        }
        if let Some(s) = enabled.iter().find(|s| config.profile(&s.name).is_some_and(|p| config.is_default(p))) {
            return Ok(s.clone());
        }
        enabled.into_iter().next().ok_or_else(|| {
            Error::config("no enabled profile: set SMTPServer (and SMTPEnabled) for at least one profile")
        })
    }

    /// The login for a profile and message user, when the profile
    /// authenticates. `None` when it does not, or (Optional) when there is
    /// no credential.
    fn login(&self, settings: &ProfileSettings, user: Option<&str>) -> Result<(Option<String>, Option<Login>)> {
        if settings.authentication == Authentication::None {
            return Ok((None, None));
        }
        let user = if settings.shared_credentials { None } else { user };
        let store = self.credentials();
        let credential = match store.get(user)? {
            Some(c) => Some(c),
            // A message without a user falls back to the shared credential.
            None if user.is_some() => None,
            None => None,
        };
        let who = || match user {
            Some(u) => format!("user \"{}\"", config::printable(u)),
            None => "the shared credential (SMTPUsername/SMTPPassword)".to_string(),
        };
        let Some(credential) = credential else {
            if settings.authentication == Authentication::Optional {
                return Ok((user.map(str::to_string), None));
            }
            return Err(Error::credentials(format!("no credentials for {} (profile {})", who(), settings.name)));
        };
        if credential.username.is_empty() {
            return Err(Error::credentials(format!("the credential of {} has no username", who())));
        }
        let wants_oauth = settings.auth_model == config::AuthModel::OAuth2;
        if wants_oauth != (credential.kind == SecretKind::Oauth2) {
            return Err(Error::credentials(format!(
                "profile {} uses SMTPAuthModel={}, but {} is {}",
                settings.name,
                if wants_oauth { "OAuth2" } else { "Basic" },
                who(),
                if wants_oauth { "a password" } else { "an OAuth2 token" }
            )));
        }
        if settings.authentication == Authentication::Required && credential.secret.is_empty() {
            return Err(Error::credentials(format!("the credential of {} has an empty password", who())));
        }
        if wants_oauth && credential.expires_at > 0 && credential.expires_at <= fsutil::unix_now() {
            return Err(Error::credentials(format!("the OAuth2 token of {} expired", who())));
        }
        Ok((user.map(str::to_string), Some(Login { username: credential.username, secret: credential.secret })))
    }

    /// Sends a message now and waits for the outcome (`smtpb_send`).
    pub fn send(&self, message_json: &str) -> SendOutcome {
        let unrecorded = |e: Error| SendOutcome { result: Err(e), status: None };
        if let Err(e) = self.check_open() {
            return unrecorded(e);
        }
        let spec = match MessageSpec::parse(message_json) {
            Ok(s) => s,
            Err(e) => return unrecorded(e),
        };
        let config = self.read_config().clone();
        let (prepared, mut status) = match self.prepare(&config, &spec) {
            Ok(p) => p,
            Err(e) => return unrecorded(e),
        };
        let result = self.deliver_within_limits(&prepared, spec.user.as_deref(), &mut status);
        let json = status.to_json();
        self.inner.statuses.lock().unwrap_or_else(|e| e.into_inner()).insert(status.id.clone(), status);
        SendOutcome { result, status: Some(json) }
    }

    /// Runs the pipeline up to SMTP: profile, blacklist, test mode, the
    /// message bytes. Errors here are not recorded.
    fn prepare(&self, config: &Config, spec: &MessageSpec) -> Result<(Prepared, Status)> {
        let sender = spec.from.as_ref().map(|m| m.email.to_string());
        let settings = Self::choose_profile(config, spec.profile.as_deref(), sender.as_deref())?;
        if settings.server.is_none() {
            return Err(Error::config(format!("profile {}: SMTPServer is not set", settings.name)));
        }
        let from = match (&spec.from, &settings.sender_email) {
            (Some(f), _) => f.clone(),
            (None, Some(email)) => lettre::message::Mailbox::new(
                settings.sender_name.clone(),
                message::parse_address(email).map_err(|e| e.context("SMTPSenderEmail"))?,
            ),
            (None, None) => {
                return Err(Error::config(format!(
                    "the message has no from, and profile {} has no SMTPSenderEmail",
                    settings.name
                )))
            }
        };
        let reply_to = match (&spec.reply_to, &settings.reply_to) {
            (Some(r), _) => Some(r.clone()),
            (None, Some(r)) => Some(lettre::message::Mailbox::new(None, message::parse_address(r)?)),
            (None, None) => None,
        };

        let (allowed, blocked): (Vec<_>, Vec<_>) =
            spec.all_recipients().partition(|r| !config.is_blacklisted(&r.mailbox.email.to_string()));
        if allowed.is_empty() {
            return Err(Error::new(Code::Blocked, "every recipient is on the blacklist"));
        }
        let global = config.global_settings();
        let (envelope, original_to) = if global.test_mode {
            if global.test_addresses.is_empty() {
                return Err(Error::config("SMTPTestMode is on, but SMTPTestAddresses is empty"));
            }
            let original: Vec<String> = spec.to.iter().chain(&spec.cc).map(|r| r.mailbox.email.to_string()).collect();
            (global.test_addresses.clone(), Some(original.join(", ")))
        } else {
            (allowed.iter().map(|r| r.mailbox.email.to_string()).collect(), None)
        };

        let id = ulid::Ulid::new().to_string();
        let message_id = format!("<{id}@{}>", from.email.domain());
        let dkim = match (&settings.dkim_domain, &settings.dkim_selector, &settings.dkim_key_file) {
            (Some(domain), Some(selector), Some(key)) => Some(lettre::message::dkim::DkimConfig::default_config(
                selector.clone(),
                domain.clone(),
                message::read_dkim_key(key).map_err(|e| e.context("SMTPDkimKeyFile"))?,
            )),
            _ => None,
        };
        let ctx = BuildContext { from: from.clone(), reply_to, message_id: message_id.clone(), original_to, dkim: dkim.as_ref() };
        let bytes = message::build(spec, &ctx)?;
        if bytes.len() as u64 > settings.max_message_bytes {
            return Err(Error::message_error(format!(
                "the message is {} bytes of MIME; SMTPMaxMessageBytes of profile {} allows {}",
                bytes.len(),
                settings.name,
                settings.max_message_bytes
            )));
        }
        let status = Status {
            id,
            reference: spec.reference.clone(),
            batch_id: None,
            profile: settings.name.clone(),
            state: State::Sending,
            attempts: 0,
            message_id,
            reply: None,
            error_code: Code::Ok,
            error: None,
            needs: None,
            recipients: allowed.iter().map(|r| r.given.clone()).collect(),
            blocked: blocked.iter().map(|r| r.given.clone()).collect(),
            rejected: Vec::new(),
            possible_duplicate: false,
            created_at: SystemTime::now(),
            sent_at: None,
            next_attempt_at: None,
            archive: None,
        };
        let envelope = Envelope { from: from.email.to_string(), to: envelope };
        Ok((Prepared { settings, envelope, bytes }, status))
    }

    /// Waits for the per-minute throttle, counts the recipients against the
    /// period limit, and delivers; a message the server does not take gives
    /// its recipients back.
    fn deliver_within_limits(&self, prepared: &Prepared, user: Option<&str>, status: &mut Status) -> Result<()> {
        let settings = &prepared.settings;
        let limits = &self.inner.limits;
        let wait = std::time::Duration::from_millis(settings.timeout_ms as u64);
        let reservation = limits
            .throttle(settings, wait)
            .and_then(|()| limits.reserve(settings, prepared.envelope.to.len() as u32));
        let reservation = match reservation {
            Ok(r) => r,
            Err(e) => {
                status.state = State::Failed;
                status.error_code = e.code();
                status.error = Some(e.message().to_string());
                return Err(e);
            }
        };
        let result = self.deliver(settings, user, &prepared.envelope, &prepared.bytes, status);
        if let (Err(_), Some(r)) = (&result, reservation) {
            limits.release(r)?;
        }
        result
    }

    /// Clears the send-limit counters of a profile, or of all (`None`).
    pub fn limits_reset(&self, profile: Option<&str>) -> Result<()> {
        self.check_open()?;
        if let Some(p) = profile {
            if self.read_config().profile(p).is_none() {
                return Err(Error::not_found(format!("no profile named \"{}\"", config::printable(p))));
            }
        }
        self.inner.limits.reset(profile)
    }

    /// One delivery attempt; records the outcome in `status`.
    fn deliver(
        &self,
        settings: &ProfileSettings,
        user: Option<&str>,
        envelope: &Envelope,
        bytes: &[u8],
        status: &mut Status,
    ) -> Result<()> {
        status.attempts += 1;
        let outcome = self.login(settings, user).and_then(|(user, login)| {
            let key = PoolKey::new(settings, user.as_deref(), self.inner.credential_revision.load(Ordering::Acquire));
            let utf8 = !envelope.from.is_ascii() || envelope.to.iter().any(|a| !a.is_ascii());
            self.inner
                .pool
                .send(settings, &key, login.as_ref(), &envelope.from, &envelope.to, bytes, utf8)
                .map_err(|f| {
                    apply_failure(status, &f);
                    Error::new(f.code, f.message)
                })
        });
        match outcome {
            Ok(delivery) => {
                status.state = State::Sent;
                status.sent_at = Some(SystemTime::now());
                status.reply = Some(delivery.reply);
                status.rejected =
                    delivery.rejected.into_iter().map(|(address, reply)| Refusal { address, reply }).collect();
                status.error_code = Code::Ok;
                status.error = None;
                Ok(())
            }
            Err(e) => {
                status.state = State::Failed;
                status.error_code = e.code();
                status.error = Some(e.message().to_string());
                Err(e)
            }
        }
    }

    /// Tests a profile's connection (`smtpb_test_connection`).
    pub fn test_connection(&self, profile: Option<&str>, user_id: Option<&str>) -> TestOutcome {
        let unreported = |e: Error| TestOutcome { result: Err(e), report: None };
        if let Err(e) = self.check_open() {
            return unreported(e);
        }
        let config = self.read_config().clone();
        let settings = match Self::choose_profile(&config, profile, None) {
            Ok(s) if s.server.is_some() => s,
            Ok(s) => return unreported(Error::config(format!("profile {}: SMTPServer is not set", s.name))),
            Err(e) => return unreported(e),
        };
        let tls = match self.inner.pool.tls_config(&settings) {
            Ok(t) => t,
            Err(e) => return unreported(e),
        };
        let mut probe = Probe { stage: "connect", ..Probe::default() };
        let result = self.login(&settings, user_id).map_err(|e| {
            probe.stage = "auth";
            e
        });
        let result = result.and_then(|(_, login)| {
            Session::open(&settings, &tls, login.as_ref(), &mut probe)
                .map(|s| s.quit(std::time::Duration::from_millis(settings.timeout_ms as u64)))
                .map_err(|f: Failure| Error::new(f.code, f.message))
        });
        let (error_code, error) = match &result {
            Ok(()) => (0, None),
            Err(e) => (e.code() as i32, Some(e.message().to_string())),
        };
        let report = serde_json::json!({
            "ok": result.is_ok(),
            "profile": settings.name,
            "stage": probe.stage,
            "banner": probe.banner,
            "capabilities": probe.capabilities,
            "tls": probe.tls,
            "auth_mechanisms": probe.auth_mechanisms,
            "error_code": error_code,
            "error": error,
        });
        TestOutcome { result, report: Some(report) }
    }
}

fn check_user_id(user_id: Option<&str>) -> Result<()> {
    match user_id {
        Some(u) if u.is_empty() || config::check_text(u).is_err() => Err(Error::invalid_argument(format!(
            "user_id \"{}\": a non-empty id without control characters expected",
            config::printable(u)
        ))),
        _ => Ok(()),
    }
}

/// Copies what a failure tells into the status.
fn apply_failure(status: &mut Status, f: &Failure) {
    status.reply = f.reply.clone();
    status.possible_duplicate |= f.possible_duplicate;
    status.rejected = f.rejected.iter().map(|(address, reply)| Refusal { address: address.clone(), reply: reply.clone() }).collect();
    if f.oauth_refused {
        status.needs = Some("credentials");
    }
}

/// The SMTP envelope of a message.
pub struct Envelope {
    pub from: String,
    pub to: Vec<String>,
}

/// A message ready for SMTP.
struct Prepared {
    settings: ProfileSettings,
    envelope: Envelope,
    bytes: Vec<u8>,
}
