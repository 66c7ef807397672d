//! The client: one data directory, its configuration, credentials, pooled
//! sessions and message statuses. Safe to share between threads.

mod merge;
pub use merge::{MergeRecipient, Merged, Recipients};
mod oauth;
mod pipeline;
mod render;
pub(crate) use oauth::OAuthInfo;
pub use oauth::{SignIn, SignedIn};
#[allow(unused_imports)] // for the Graph transport
pub(crate) use pipeline::LoginError;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;
use zeroize::Zeroizing;

use crate::clock::SharedClock;
use crate::config::{self, Config, ConfigExport, SecretChange};
use crate::credentials::{self, CredentialStore, SecretKind};
use crate::delivery::Check;
use crate::error::{Code, Error, Result};
use crate::fsutil;
use crate::limits::Limits;
use crate::logging::ClientLog;
use crate::outbox::events::Callback;
use crate::outbox::{BatchCancel, BatchCounts, Outbox, Page, Query};
use crate::status::{State, Status};
use crate::transcript::TranscriptStore;
use crate::transport::Pool;

mod probe;
mod reports;
mod shared;
pub use reports::{
    Delivery, DeliveryHolder, OAuth2Check, ProbeReport, ProbeResult, ProfileUsage, Stats, Suggested, TestReport,
};

/// `smtpb_client_open` flag: resume delivery of what the spool holds.
pub const OPEN_DEFAULT: u32 = 0;
/// `smtpb_client_open` flag: open with the outbox paused.
pub const OPEN_PAUSED: u32 = 1;
/// `smtpb_client_open` flag: share the data_dir with other clients and
/// processes of this machine (ABI §17).
pub const OPEN_SHARED: u32 = 2;
/// `smtpb_client_open` flag: never deliver (queue, read and manage only).
pub const OPEN_SUBMIT_ONLY: u32 = 4;
const OPEN_FLAGS: u32 = OPEN_PAUSED | OPEN_SHARED | OPEN_SUBMIT_ONLY;

/// A client of the library. Cloning shares it.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: Option<PathBuf>,
    /// Held for the client's life: the lock on data_dir (exclusive, or
    /// shared with the other sharing clients).
    _lock: Option<File>,
    /// A shared data_dir: the files other processes change (see [`shared`]).
    shared: Option<shared::Watched>,
    /// `SMTPB_OPEN_SUBMIT_ONLY`.
    submit_only: bool,
    /// When the client was opened.
    opened_at: SystemTime,
    /// Replaced whole on every change: a reader holds its snapshot.
    config: RwLock<Arc<Config>>,
    credentials: Mutex<CredentialStore>,
    /// Bumped on every credential change, so pooled sessions that logged
    /// in with an old credential are not reused.
    credential_revision: AtomicU64,
    pool: Pool,
    /// Microsoft Graph connections, per profile.
    graph: crate::graph::Graph,
    limits: Limits,
    outbox: Arc<Outbox>,
    shut_down: AtomicBool,
    shutdown_lock: Mutex<()>,
    /// Where this client's log lines go (callback, SMTPLogFile).
    log: Arc<ClientLog>,
    transcripts: TranscriptStore,
    /// Sign-ins under way, discovery cache, refresh locks, app tokens.
    oauth: oauth::OAuthState,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A client dropped without shutdown: let its threads end.
        self.outbox.stop_soon();
    }
}

/// The outcome of a send: the result, and the status when the message got
/// far enough to be recorded.
pub struct SendOutcome {
    pub result: Result<()>,
    pub status: Option<Status>,
}

/// The outcome of a connection test or a probe: the result and the
/// report (none when the call failed before it reached a server).
pub struct TestOutcome<R> {
    pub result: Result<()>,
    pub report: Option<R>,
}

/// Takes the lock on `data_dir` (the file `lock`): exclusive, or with
/// `shared` one that other sharing clients hold too; and names the holder
/// in `lock.owner`: a separate file, because on Windows a locked file
/// cannot be read by another process. The lock alone excludes: when
/// `lock.owner` cannot be written (a full disk) the open goes on, and a
/// client refused BUSY names the holder as unknown.
fn lock_data_dir(dir: &Path, shared: bool) -> Result<File> {
    let path = dir.join("lock");
    let owner_path = dir.join("lock.owner");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("cannot open", &path, &e))?;
    let locked = if shared { file.try_lock_shared() } else { file.try_lock() };
    match locked {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&owner_path).unwrap_or_default();
            let holder = holder.trim();
            let how = if shared {
                "it is held exclusively; to share it, every client opens it with SMTPB_OPEN_SHARED"
            } else {
                "to share it, every client opens it with SMTPB_OPEN_SHARED"
            };
            return Err(Error::new(
                Code::Busy,
                format!(
                    "the data directory {} is in use by another client ({}); {how}",
                    dir.display(),
                    if holder.is_empty() { "holder unknown" } else { holder }
                ),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("cannot lock", &path, &e)),
    }
    let who = format!(
        "pid {}, host {}, user {}{}",
        std::process::id(),
        crate::host::host_name(),
        crate::host::user_name(),
        if shared { ", shared" } else { "" }
    );
    if let Err(e) = fsutil::atomic_write(&owner_path, who.as_bytes(), false) {
        // A stale owner would name the wrong holder.
        let _ = std::fs::remove_file(&owner_path);
        log::warn!("{}; the data directory is locked all the same", e.message());
    }
    Ok(file)
}

impl Client {
    /// Opens a client on `data_dir` (created if missing; `None` = in
    /// memory) with the credential store's master `secret` (`None` = a
    /// random key file in data_dir).
    pub fn open(data_dir: Option<&Path>, secret: Option<&str>, flags: u32) -> Result<Client> {
        Client::open_with_clock(data_dir, secret, flags, crate::clock::system())
    }

    /// [`Client::open`] with the clock its rules read (refresh margins,
    /// limit windows, retention): the system's, or a test's.
    pub(crate) fn open_with_clock(
        data_dir: Option<&Path>,
        secret: Option<&str>,
        flags: u32,
        clock: SharedClock,
    ) -> Result<Client> {
        if flags & !OPEN_FLAGS != 0 {
            return Err(Error::invalid_argument(format!("flags: unknown open flags {:#x}", flags & !OPEN_FLAGS)));
        }
        let shared = flags & OPEN_SHARED != 0;
        if shared && data_dir.is_none() {
            return Err(Error::invalid_argument(
                "flags: SMTPB_OPEN_SHARED needs a data_dir (an in-memory client has nothing to share)",
            ));
        }
        if flags & OPEN_SUBMIT_ONLY != 0 && !shared {
            return Err(Error::invalid_argument(
                "flags: SMTPB_OPEN_SUBMIT_ONLY needs SMTPB_OPEN_SHARED (a client that holds the data_dir alone and \
                 never delivers would leave its mail queued)",
            ));
        }
        if let Some(dir) = data_dir {
            if !dir.is_absolute() {
                return Err(Error::invalid_argument(format!(
                    "data_dir \"{}\" must be an absolute path",
                    dir.display()
                )));
            }
            std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, &e))?;
        }
        // Before any file is made in it, so that they all inherit it.
        #[cfg(windows)]
        let private = data_dir.map(crate::winsec::make_private_if_in_profile);
        // Stamped before they are read: a change made meanwhile is read
        // again at the first call.
        let stamps = data_dir.filter(|_| shared).map(shared::Stamps::of);
        let config = match data_dir {
            Some(dir) => shared::read_config(dir)?,
            None => Config::new(),
        };
        if let Some(dir) = data_dir {
            shared::check_local(dir, shared, &config)?;
        }
        let lock = data_dir.map(|d| lock_data_dir(d, shared)).transpose()?;
        let secret: Zeroizing<Vec<u8>> = match secret {
            Some(s) => Zeroizing::new(s.as_bytes().to_vec()),
            None => {
                let machine = config.get("SMTPMasterKeyScope").ok().flatten().as_deref() == Some("Machine");
                credentials::key_file_secret(data_dir, machine)?
            }
        };
        let store =
            CredentialStore::open(data_dir.map(|d| d.join("credentials.json")), &secret)?.with_clock(clock.clone());
        let mut limits = Limits::open(data_dir.map(|d| d.join("limits.json")), clock.clone())?;
        let submit_only = flags & OPEN_SUBMIT_ONLY != 0;
        let sharing = shared.then(|| crate::outbox::Sharing::new(!submit_only));
        if shared {
            limits = limits.shared();
        }
        let outbox =
            Arc::new(Outbox::open_shared(data_dir, flags & OPEN_PAUSED != 0, sharing)?.with_clock(clock.clone()));
        let global = config.global_settings();
        let threads = global.delivery_threads;
        let for_log = Arc::downgrade(&outbox);
        let log = ClientLog::new(Box::new(move |line| {
            if let Some(outbox) = for_log.upgrade() {
                outbox.events.emit_log(line);
            }
        }));
        log.set_file(global.log_file.as_deref(), global.log_level, global.log_max_bytes);
        let client = Client {
            inner: Arc::new(Inner {
                data_dir: data_dir.map(Path::to_path_buf),
                _lock: lock,
                shared: stamps.map(|stamps| shared::Watched::new(stamps, secret.clone(), clock.clone())),
                submit_only,
                opened_at: SystemTime::now(),
                config: RwLock::new(Arc::new(config)),
                credentials: Mutex::new(store),
                credential_revision: AtomicU64::new(0),
                pool: Pool::default(),
                graph: crate::graph::Graph::default(),
                limits,
                outbox: outbox.clone(),
                shut_down: AtomicBool::new(false),
                shutdown_lock: Mutex::new(()),
                log,
                transcripts: TranscriptStore::open(data_dir),
                oauth: oauth::OAuthState::new(clock),
            }),
        };
        {
            let _scope = client.log_scope();
            log::info!(
                "client opened ({}); configuration loaded: {} profiles, {} delivery threads",
                data_dir.map(|d| d.display().to_string()).unwrap_or_else(|| "in memory".into()),
                client.read_config().profiles().len(),
                threads
            );
            // An ACL is a second line of defence: its failure leaves the
            // inherited permissions and does not keep the host from mailing.
            #[cfg(windows)]
            if let (Some(dir), Some(Err(e))) = (data_dir, &private) {
                log::warn!(
                    "cannot give {} an owner-only ACL ({e}); its files keep the permissions they inherit",
                    dir.display()
                );
            }
        }
        // Delivery threads hold the client weakly: dropping the last
        // handle ends them.
        let weak = Arc::downgrade(&client.inner);
        // A purged status takes its transcript with it.
        let transcripts_of = Arc::downgrade(&client.inner);
        outbox.set_purge_hook(Arc::new(move |ids: &[String]| {
            if let Some(inner) = transcripts_of.upgrade() {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                if let Err(e) = inner.transcripts.remove(&ids) {
                    log::warn!("transcripts of purged messages: {}", e.message());
                }
            }
        }));
        let config_of = Arc::downgrade(&client.inner);
        let retention: Arc<crate::outbox::RetentionFn> = Arc::new(move || match config_of.upgrade() {
            Some(inner) => Client { inner }.retention_days(),
            None => (0, 0),
        });
        outbox.start(threads, retention, move |record, bytes| match weak.upgrade() {
            Some(inner) => {
                let client = Client { inner };
                let _scope = client.log_scope();
                client.attempt(record, bytes, std::time::Duration::ZERO)
            }
            None => (
                crate::outbox::Attempt::failed(Error::state("the client is closed")),
                crate::outbox::RetryPolicy::default(),
            ),
        })?;
        Ok(client)
    }

    /// Makes this client the one the calling thread's log lines go to,
    /// until the scope is dropped (see [`crate::logging`]).
    pub fn log_scope(&self) -> crate::logging::Scope {
        self.inner.log.enter()
    }

    /// Sets the log callback and its minimum level (1 error … 5 trace;
    /// `None` = off). When this returns the old callback is not running
    /// and never runs again.
    pub fn set_log_callback(&self, callback: Option<Callback>, min_level: i32) -> Result<()> {
        self.check_open()?;
        if callback.is_some() && !(1..=5).contains(&min_level) {
            return Err(Error::invalid_argument(format!(
                "min_level: {min_level} is not a level (1 error, 2 warn, 3 info, 4 debug, 5 trace)"
            )));
        }
        let level = if callback.is_some() { min_level as u8 } else { 0 };
        self.inner.outbox.events.set_log_callback(callback);
        self.inner.log.set_callback_level(level);
        Ok(())
    }

    /// The redacted transcript of a message's attempts, as JSON.
    pub fn transcript(&self, id: &str) -> Result<Vec<crate::transcript::Attempt>> {
        self.check_open()?;
        self.inner.outbox.status(id)?;
        self.inner.transcripts.get(id)
    }

    /// The transcript store, for the status store's purge (`remove`).
    pub fn transcripts(&self) -> &TranscriptStore {
        &self.inner.transcripts
    }

    /// `SMTPB_ERR_STATE` once the client is shut down.
    pub fn check_open(&self) -> Result<()> {
        if self.inner.shut_down.load(Ordering::Acquire) {
            Err(Error::state("the client is shut down"))
        } else {
            Ok(())
        }
    }

    /// Shuts the client down: later calls fail with `SMTPB_ERR_STATE`;
    /// idle sessions are closed with QUIT, sessions not inside a
    /// transaction are ended at once, transactions under way get `grace_ms`
    /// to finish, then are ended too; every library thread is joined.
    /// Idempotent. `SMTPB_ERR_TIMEOUT` when the grace ran out.
    pub fn shutdown(&self, grace_ms: u32) -> Result<()> {
        // A second shutdown waits for the first to finish; except on the
        // event thread, which the first may be waiting for.
        let on_event_thread = self.on_event_thread();
        let _one_at_a_time = match self.inner.shutdown_lock.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::WouldBlock) if on_event_thread => return Ok(()),
            Err(std::sync::TryLockError::WouldBlock) => {
                self.inner.shutdown_lock.lock().unwrap_or_else(|e| e.into_inner())
            }
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
        };
        if self.inner.shut_down.swap(true, Ordering::AcqRel) {
            // Shut down before, perhaps from inside the callback, which
            // could not wait for its own thread: wait for it now.
            if !on_event_thread {
                self.inner.outbox.events.stop();
            }
            return Ok(());
        }
        log::info!("shutting down (grace {grace_ms} ms)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(grace_ms as u64);
        let pool = &self.inner.pool;
        // Stop the outbox first, so that a wait or flush woken by the
        // sessions ended below sees the shutdown, not an empty outbox.
        self.inner.outbox.stop_soon();
        self.inner.oauth.stop_flows();
        pool.close_all();
        pool.sockets.abort(false);
        let in_time = self.inner.outbox.shutdown(deadline, || pool.sockets.abort(true));
        self.close_idle();
        if in_time {
            Ok(())
        } else {
            Err(Error::new(
                Code::Timeout,
                format!("shutdown: transactions were still under way after {grace_ms} ms and were ended"),
            ))
        }
    }

    /// Whether the calling thread is this client's event thread.
    pub fn on_event_thread(&self) -> bool {
        self.inner.outbox.events.is_event_thread()
    }

    /// Runs `work` on the event thread when the callback now running
    /// returns (a close requested from inside the callback).
    pub fn after_callback(&self, work: Box<dyn FnOnce() + Send>) {
        self.inner.outbox.events.after_callback(work);
    }

    /// SMTPShutdownGraceMs, for close.
    pub fn shutdown_grace_ms(&self) -> u32 {
        self.read_config().global_settings().shutdown_grace_ms
    }

    /// The configuration now: a snapshot that later changes do not touch.
    /// On a shared data_dir, read again first if another process changed it.
    fn read_config(&self) -> Arc<Config> {
        self.reload_config_if_changed();
        self.inner.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The credential store; on a shared data_dir read again first if
    /// another process changed it.
    fn credentials(&self) -> std::sync::MutexGuard<'_, CredentialStore> {
        let mut store = self.inner.credentials.lock().unwrap_or_else(|e| e.into_inner());
        if self.reload_credentials_if_changed(&mut store) {
            self.close_idle();
        }
        store
    }

    /// Changes the configuration: `change` makes the next one from the
    /// current one under the write lock (so concurrent changes do not lose
    /// each other), it is persisted, then swapped in; the secret changes
    /// that came with it go to the credential store.
    fn update_config(&self, change: impl FnOnce(&Config) -> Result<(Config, Vec<SecretChange>)>) -> Result<()> {
        self.reload_config_if_changed();
        let mut config = self.inner.config.write().unwrap_or_else(|e| e.into_inner());
        let (next, changes) = change(&config)?;
        if **config != next {
            let log_file = next.global_settings().log_file;
            if let Some(path) = log_file.as_deref().filter(|p| config.global_settings().log_file.as_deref() != Some(*p))
            {
                // A log file that cannot be written would log nothing, ever.
                crate::logging::open_log_file(path).map_err(|why| Error::config(format!("SMTPLogFile: {why}")))?;
            }
            if let Some(dir) = &self.inner.data_dir {
                let text =
                    serde_json::to_vec_pretty(&next.export(|_| None)).map_err(|e| Error::internal(e.to_string()))?;
                fsutil::atomic_write(&config::config_path(dir), &text, false)?;
                self.config_written();
            }
            *config = Arc::new(next);
            let global = config.global_settings();
            self.inner.log.set_file(global.log_file.as_deref(), global.log_level, global.log_max_bytes);
            log::info!("configuration changed; pooled sessions closed");
            self.close_idle();
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
            SecretChange::Username { profile, username } => {
                store.set_shared_username(profile.as_deref(), username.as_deref())?
            }
            SecretChange::Password { profile, password } => {
                store.set_shared_password(profile.as_deref(), password.as_deref())?
            }
            SecretChange::ClientSecret { profile, secret } => {
                store.set_client_secret(&profile, secret.as_deref())?;
                drop(store);
                // A new client secret invalidates cached app tokens.
                self.inner.oauth.forget_app_tokens();
                return Ok(());
            }
        }
        drop(store);
        self.credentials_changed();
        Ok(())
    }

    fn credentials_changed(&self) {
        self.credentials_written();
        self.inner.credential_revision.fetch_add(1, Ordering::AcqRel);
        self.close_idle();
        self.inner.outbox.release_credentials();
    }

    /// Ends the idle connections of every transport.
    fn close_idle(&self) {
        use crate::delivery::Transport;
        self.inner.pool.close_all();
        self.inner.graph.close_all();
    }

    fn credential_revision(&self) -> u64 {
        self.inner.credential_revision.load(Ordering::Acquire)
    }

    /// Sets one configuration key; `None` restores its default.
    pub fn config_set(&self, key: &str, value: Option<&str>) -> Result<()> {
        self.check_open()?;
        self.update_config(|current| {
            let mut next = current.clone();
            let change = next.set(key, value)?;
            Ok((next, vec![change]))
        })
    }

    /// The effective value of a key ("" when it has none). A profile's
    /// SMTPUsername is its own, else the global one.
    pub fn config_get(&self, key: &str) -> Result<String> {
        self.check_open()?;
        if config::key_def(key.rsplit('.').next().unwrap_or(key)).is_some_and(|d| d.key == config::Key::SMTPUsername) {
            // Validate the key (prefix rules) before answering from the store.
            self.read_config().get(key)?;
            let store = self.credentials();
            let username = match key.split_once('.') {
                Some((profile, _)) => store.shared_username_of(profile),
                None => store.shared_username(),
            };
            return Ok(username.unwrap_or_default());
        }
        Ok(self.read_config().get(key)?.unwrap_or_default())
    }

    /// Applies `Key=Value` lines, all or nothing.
    pub fn config_import_keys(&self, lines: &str) -> Result<()> {
        self.check_open()?;
        self.update_config(|current| current.import_keys(lines))
    }

    /// Replaces the whole configuration with the JSON shape.
    pub fn config_load_json(&self, json: &str) -> Result<()> {
        self.check_open()?;
        let (next, changes) = Config::from_json(json)?;
        self.update_config(|_| Ok((next, changes)))
    }

    /// The configuration without secrets (`smtpb_config_export_json`).
    pub fn config_export(&self) -> Result<ConfigExport> {
        self.check_open()?;
        let store = self.credentials();
        let username = |profile: Option<&str>| match profile {
            Some(p) => store.profile_username(p),
            None => store.shared_username(),
        };
        Ok(self.read_config().export(username))
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
    pub fn credentials_set_oauth2(
        &self,
        user_id: Option<&str>,
        username: &str,
        token: &str,
        expires_at: i64,
    ) -> Result<()> {
        self.check_open()?;
        check_user_id(user_id)?;
        if username.is_empty() {
            return Err(Error::invalid_argument("username: OAuth2 needs the mailbox's username"));
        }
        if !(0..=fsutil::MAX_RFC3339_UNIX).contains(&expires_at) {
            return Err(Error::invalid_argument(format!(
                "expires_at: {expires_at} is not Unix seconds (0 = unknown); milliseconds given?"
            )));
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
                Some(u) => format!("no credentials for user \"{}\"", crate::text::printable(u)),
                None => "no shared credential".into(),
            }));
        }
        self.credentials_changed();
        Ok(())
    }

    /// The masked credential of `user_id`.
    pub fn credentials_masked(&self, user_id: Option<&str>) -> Result<credentials::Masked> {
        self.check_open()?;
        self.credentials().masked(user_id)
    }

    /// Adds a blacklist entry (an address or `@domain`).
    pub fn blacklist_add(&self, entry: &str) -> Result<()> {
        self.check_open()?;
        self.update_config(|current| {
            let mut next = current.clone();
            next.blacklist_add(entry)?;
            Ok((next, Vec::new()))
        })
    }

    /// Removes a blacklist entry; `SMTPB_ERR_NOT_FOUND` if it is not there.
    pub fn blacklist_remove(&self, entry: &str) -> Result<()> {
        self.check_open()?;
        self.update_config(|current| {
            let mut next = current.clone();
            if !next.blacklist_remove(entry)? {
                return Err(Error::not_found(format!("\"{}\" is not on the blacklist", crate::text::printable(entry))));
            }
            Ok((next, Vec::new()))
        })
    }

    /// The blacklist's entries.
    pub fn blacklist_list(&self) -> Result<Vec<String>> {
        self.check_open()?;
        Ok(self.read_config().blacklist().to_vec())
    }

    /// Clears the send-limit counters of a profile, or of all (`None`).
    pub fn limits_reset(&self, profile: Option<&str>) -> Result<()> {
        self.check_open()?;
        if let Some(p) = profile {
            if self.read_config().profile(p).is_none() {
                return Err(Error::not_found(format!("no profile named \"{}\"", crate::text::printable(p))));
            }
        }
        self.inner.limits.reset(profile)?;
        self.inner.outbox.release_limits(profile);
        Ok(())
    }

    /// The status of a message.
    pub fn status(&self, id: &str) -> Result<Status> {
        self.check_open()?;
        self.inner.outbox.status(id)
    }

    /// The statuses of all messages, or of those in one state.
    pub fn outbox_list(&self, state: Option<State>) -> Result<Vec<Status>> {
        self.check_open()?;
        self.inner.outbox.list(state)
    }

    /// One page of statuses, newest first (`smtpb_outbox_query`).
    pub fn outbox_query(&self, query: &Query) -> Result<Page<Status>> {
        self.check_open()?;
        self.inner.outbox.query(query)
    }

    /// Purges the final statuses in `states` (all: [`State::FINAL`])
    /// created before `before` (`smtpb_outbox_purge`); how many.
    pub fn outbox_purge(&self, before: SystemTime, states: &[State]) -> Result<u64> {
        self.check_open()?;
        self.inner.outbox.purge_request(before, states)
    }

    /// Warnings from open (damage in the spool recovered past).
    pub fn open_warnings(&self) -> Vec<String> {
        self.inner.outbox.open_warnings().to_vec()
    }

    /// SMTPKeepSentDays and SMTPKeepFailedDays (0 = for ever).
    fn retention_days(&self) -> (u64, u64) {
        let global = self.read_config().global_settings();
        (global.keep_sent_days, global.keep_failed_days)
    }

    /// Counts per state, paused profiles, and each profile's send limit.
    pub fn outbox_stats(&self) -> Result<Stats> {
        self.check_open()?;
        let counts = self.inner.outbox.counts()?;
        let config = self.read_config().clone();
        let mut profiles = BTreeMap::new();
        for p in config.profiles() {
            let settings = config.settings(&p.name)?;
            let usage = self.inner.limits.usage(&settings);
            profiles.insert(
                p.name.clone(),
                ProfileUsage {
                    limit: settings.send_limit,
                    period: settings.send_limit_period.name(),
                    resets_at: usage.resets_at.and_then(crate::fsutil::rfc3339_unix),
                    sent_in_period: usage.sent_in_period,
                },
            );
        }
        // Paused profiles by the names they were configured with.
        let paused: Vec<String> =
            counts.paused.into_iter().map(|p| config.profile(&p).map(|q| q.name.clone()).unwrap_or(p)).collect();
        let delivery = Delivery { holder: self.delivery_holder()? };
        Ok(Stats { counts: counts.states, damaged_records: counts.damaged_records, paused, profiles, delivery })
    }

    /// Counts per state of a batch.
    pub fn batch_status(&self, batch_id: &str) -> Result<BatchCounts> {
        self.check_open()?;
        self.inner.outbox.batch_status(batch_id)
    }

    /// Waits for a message to be final.
    pub fn wait(&self, id: &str, timeout_ms: u32) -> Result<Status> {
        self.check_open()?;
        self.inner.outbox.wait(id, timeout_ms)
    }

    /// Waits until nothing is queued or sending.
    pub fn flush(&self, timeout_ms: u32) -> Result<()> {
        self.check_open()?;
        self.inner.outbox.flush(timeout_ms)
    }

    /// Cancels a queued or deferred message.
    pub fn cancel(&self, id: &str) -> Result<()> {
        self.check_open()?;
        self.inner.outbox.cancel(id)
    }

    /// Cancels what it can of a batch.
    pub fn batch_cancel(&self, batch_id: &str) -> Result<BatchCancel> {
        self.check_open()?;
        self.inner.outbox.batch_cancel(batch_id)
    }

    /// Failed → queued; deferred → due now.
    pub fn retry(&self, id: &str) -> Result<()> {
        self.check_open()?;
        self.inner.outbox.retry(id)
    }

    fn check_profile(&self, profile: Option<&str>) -> Result<()> {
        match profile {
            Some(p) if self.read_config().profile(p).is_none() => {
                Err(Error::not_found(format!("no profile named \"{}\"", crate::text::printable(p))))
            }
            _ => Ok(()),
        }
    }

    /// Pauses delivery of a profile, or of all (`None`); persisted.
    pub fn outbox_pause(&self, profile: Option<&str>) -> Result<()> {
        self.check_open()?;
        self.check_profile(profile)?;
        self.inner.outbox.pause(profile)
    }

    /// Resumes delivery of a profile, or of all (`None`).
    pub fn outbox_resume(&self, profile: Option<&str>) -> Result<()> {
        self.check_open()?;
        self.check_profile(profile)?;
        self.inner.outbox.resume(profile)
    }

    /// Sets the event callback (`None` clears it). When this returns the
    /// old callback is not running and never runs again.
    pub fn set_event_callback(&self, callback: Option<Callback>) -> Result<()> {
        self.check_open()?;
        self.inner.outbox.set_all_events(false);
        self.inner.outbox.events.set_callback(callback);
        Ok(())
    }

    /// [`Client::set_event_callback`] for the events of every message of
    /// the data_dir, including those other clients queued.
    pub fn set_event_callback_all(&self, callback: Option<Callback>) -> Result<()> {
        self.check_open()?;
        self.inner.outbox.set_all_events(callback.is_some());
        self.inner.outbox.events.set_callback(callback);
        Ok(())
    }

    /// Tests a profile's connection (`smtpb_test_connection`): a session
    /// up to AUTH (SMTP) or a token and the mailbox (Graph), then goodbye.
    #[allow(clippy::result_large_err)] // see delivery.rs
    pub fn test_connection(&self, profile: Option<&str>, user_id: Option<&str>) -> TestOutcome<TestReport> {
        let unreported = |e: Error| TestOutcome { result: Err(e), report: None };
        if let Err(e) = self.check_open() {
            return unreported(e);
        }
        let config = self.read_config().clone();
        let settings = match config.choose_profile(profile, None) {
            Ok(s) => s,
            Err(e) => return unreported(e),
        };
        let transport = self.transport(&settings);
        if let Err(e) = transport.check(&settings) {
            return unreported(e);
        }
        let mut managed = None;
        let auth = || Check { stage: "auth", ..Check::default() };
        let (result, check) = match self.login_with(&settings, user_id, false) {
            Err(e) => (Err(e.error), auth()),
            Ok((_, login, info))
                if login.as_ref().is_some_and(|l| l.username.is_empty())
                    && settings.transport == config::Transport::Smtp
                    && settings.sender_email.is_none() =>
            {
                managed = info;
                let e = Error::credentials(format!(
                    "profile {}: SMTPOAuth2Flow=ClientCredentials logs in as SMTPUsername, else the sender; set \
                     SMTPUsername or SMTPSenderEmail to test the connection",
                    settings.name
                ));
                (Err(e), auth())
            }
            Ok((_, login, info)) => {
                let login = pipeline::with_sender(login, settings.sender_email.as_deref().unwrap_or(""));
                managed = info;
                let refresh = || self.refreshed_login(&settings, user_id);
                let report = transport.test(&settings, login.as_ref(), &refresh);
                (report.result, report.check)
            }
        };
        if let Err(e) = &result {
            if e.code() == Code::Config {
                return unreported(e.clone());
            }
        }
        let oauth2 = (settings.auth_model == config::AuthModel::OAuth2).then(|| OAuth2Check {
            expires_at: managed.and_then(|m| fsutil::rfc3339_unix(m.expires_at)),
            refreshed: managed.is_some_and(|m| m.refreshed),
        });
        let report = TestReport {
            check,
            error: result.as_ref().err().map(|e| e.message().to_string()),
            error_code: result.as_ref().err().map_or(Code::Ok, Error::code),
            oauth2,
            ok: result.is_ok(),
            profile: settings.name.clone(),
        };
        TestOutcome { result, report: Some(report) }
    }
}

fn check_user_id(user_id: Option<&str>) -> Result<()> {
    match user_id {
        Some(u) if u.is_empty() || crate::text::check_text(u).is_err() => Err(Error::invalid_argument(format!(
            "user_id \"{}\": a non-empty id without control characters expected",
            crate::text::printable(u)
        ))),
        _ => Ok(()),
    }
}
