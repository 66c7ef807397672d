//! The outbox: durable background delivery that keeps trying.
//!
//! Every message a client records, whether handed to `smtpb_enqueue` or
//! sent at once with `smtpb_send`, lives here: its status, its envelope and
//! (until it is final) its bytes, all in the [`store`]. Delivery threads
//! take `queued` and due `deferred` messages, one at a time each, and run
//! an attempt through the client's pipeline; [`events`] tell the host about
//! every change of state.
//!
//! States: queued → sending → sent | deferred | failed; deferred → sending
//! again when due; queued/deferred → cancelled. Transient outcomes
//! (CONNECT, TRANSIENT, an OAuth2 token refused or expired) defer with
//! exponential backoff and jitter until SMTPRetryMaxAgeMs; messages held by
//! a send limit are deferred until there is room and never age out;
//! everything else fails at once. A message found `sending` at open (the
//! process died during its attempt) is queued again with
//! `possible_duplicate`, keeping its Message-ID.

pub mod damage;
pub mod events;
pub mod journal;
pub mod spool;
pub mod store;
pub mod wal;

use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::printable;
use crate::error::{Code, Error, Result};
use crate::fsutil;
use crate::status::State;
use events::Events;
pub use spool::Record;
use store::{state_code, Opened, Query, Store};

/// Unix milliseconds.
fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn ms_to_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

fn time_to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// What one delivery attempt came to.
pub enum Attempt {
    /// The server took it. `archive` is the archive's paths, or why the
    /// copy could not be filed (the message is sent all the same).
    Sent { delivery: crate::delivery::Delivery, archive: Option<std::result::Result<Value, Error>> },
    /// It did not go out. `oauth_user` is set when the OAuth2 token of that
    /// credential (`None` = the shared one) was refused or expired;
    /// `failure` carries what the server said.
    Failed { error: Error, failure: Option<crate::delivery::Failure>, oauth_user: Option<Option<String>> },
    /// A send limit holds it until `until_ms` (Unix ms).
    Held { until_ms: i64, reason: String },
}

/// The function a delivery thread runs for each attempt.
pub type AttemptFn = dyn Fn(&Record, &[u8]) -> (Attempt, RetryPolicy) + Send + Sync;

/// Retry settings (global keys), read when a message is deferred.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub initial_ms: u64,
    pub max_ms: u64,
    pub max_age_ms: u64,
}

impl Default for RetryPolicy {
    /// The defaults of SMTPRetryInitialMs, SMTPRetryMaxMs, SMTPRetryMaxAgeMs.
    fn default() -> Self {
        use crate::config::Key;
        RetryPolicy {
            initial_ms: Key::SMTPRetryInitialMs.default_number(),
            max_ms: Key::SMTPRetryMaxMs.default_number(),
            max_age_ms: Key::SMTPRetryMaxAgeMs.default_number(),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempts + 1`: exponential, capped, with
    /// ±20 % jitter so that many deferred messages do not retry in step.
    fn delay_ms(&self, attempts: u32) -> i64 {
        let exp = self.initial_ms.saturating_mul(1u64 << attempts.saturating_sub(1).min(30));
        let base = exp.min(self.max_ms).max(1);
        let mut r = [0u8; 2];
        let _ = getrandom::fill(&mut r);
        let jitter = (u16::from_le_bytes(r) as f64 / u16::MAX as f64) * 0.4 + 0.8;
        (base as f64 * jitter) as i64
    }
}

/// A message's bytes, shared with the attempt that sends them.
type Bytes = Arc<Vec<u8>>;

/// The messages that are not final, and what delivery needs to choose the
/// next one without scanning: the statuses of final messages are only in
/// the store.
#[derive(Default)]
struct Ledger {
    /// Every message `queued`, `sending` or `deferred`.
    entries: HashMap<String, Record>,
    /// Queued and deferred messages per profile (lower case), by (next
    /// attempt in Unix ms, id); queued mail is due at 0, so it goes in id
    /// order: oldest first.
    ready: HashMap<String, BTreeSet<(i64, String)>>,
    /// Queued and deferred messages of batches still being merged, kept
    /// out of `ready` until the merge is released.
    staged: HashMap<String, BTreeSet<String>>,
    /// Queued messages per profile (lower case), for flush.
    queued: HashMap<String, usize>,
    sending: usize,
    /// Paused profiles (lower case), `*` for all; persisted.
    paused: BTreeSet<String>,
    /// SMTPB_OPEN_PAUSED: all paused until resume, not persisted.
    open_paused: bool,
    /// Profiles (lower case) held by a send limit: until (Unix ms), reason.
    holds: HashMap<String, (i64, String)>,
    /// Users told about with a `credentials_needed` event (once per user).
    credentials_noticed: HashSet<Option<String>>,
    /// Batches still being merged: their messages wait until the whole
    /// merge is queued.
    staging: HashSet<String>,
    /// Outcomes of attempts the store could not record (the disk is full):
    /// the message stays `sending` (as the store says) until they are.
    unrecorded: HashMap<String, (Record, Option<Bytes>)>,
    /// Messages in `entries` that are not in the store yet: `smtpb_send`
    /// on an in-memory client, written once, when final (see
    /// [`Outbox::add`]). Queries, counts and idempotency keys take them
    /// from here meanwhile.
    unstored: HashSet<String>,
    stopping: bool,
}

fn is_active(state: State) -> bool {
    matches!(state, State::Queued | State::Sending | State::Deferred)
}

/// The key of a message in `ready`: when it is due.
fn due_ms(record: &Record) -> i64 {
    record.status.next_attempt_at.map(time_to_ms).unwrap_or(0)
}

impl Ledger {
    fn is_paused(&self, profile: &str) -> bool {
        self.open_paused || self.paused.contains("*") || self.paused.contains(&profile.to_ascii_lowercase())
    }

    fn staged_batch<'a>(&self, record: &'a Record) -> Option<&'a String> {
        record.status.batch_id.as_ref().filter(|b| self.staging.contains(*b))
    }

    /// Adds a message to the indexes of its state.
    fn track(&mut self, record: &Record) {
        let profile = record.status.profile.to_ascii_lowercase();
        let id = record.status.id.clone();
        match record.status.state {
            State::Queued | State::Deferred => {
                if record.status.state == State::Queued {
                    *self.queued.entry(profile.clone()).or_default() += 1;
                }
                if let Some(batch) = self.staged_batch(record).cloned() {
                    self.staged.entry(batch).or_default().insert(id);
                } else {
                    self.ready.entry(profile).or_default().insert((due_ms(record), id));
                }
            }
            State::Sending => self.sending += 1,
            _ => {}
        }
    }

    /// Takes a message out of the indexes of its state.
    fn untrack(&mut self, record: &Record) {
        let profile = record.status.profile.to_ascii_lowercase();
        match record.status.state {
            State::Queued | State::Deferred => {
                if record.status.state == State::Queued {
                    if let Some(n) = self.queued.get_mut(&profile) {
                        *n = n.saturating_sub(1);
                    }
                }
                if let Some(set) = self.ready.get_mut(&profile) {
                    if !set.remove(&(due_ms(record), record.status.id.clone())) {
                        if let Some(batch) = &record.status.batch_id {
                            if let Some(ids) = self.staged.get_mut(batch) {
                                ids.remove(&record.status.id);
                            }
                        }
                    }
                } else if let Some(ids) = record.status.batch_id.as_ref().and_then(|b| self.staged.get_mut(b)) {
                    ids.remove(&record.status.id);
                }
            }
            State::Sending => self.sending = self.sending.saturating_sub(1),
            _ => {}
        }
    }

    /// Puts a message's new record in place: kept while it is not final.
    fn replace(&mut self, record: Record) {
        if let Some(old) = self.entries.remove(&record.status.id) {
            self.untrack(&old);
        }
        if is_active(record.status.state) {
            self.track(&record);
            self.entries.insert(record.status.id.clone(), record);
        }
    }

    /// Changes when a queued or deferred message is due (in memory only).
    fn reschedule(&mut self, id: &str, due: i64) {
        let Some(mut record) = self.entries.get(id).cloned() else { return };
        record.status.next_attempt_at = Some(ms_to_time(due));
        self.replace(record);
    }
}

/// `record` moved to `state`; `due` (Unix ms) is when a deferred message
/// is next tried (now when not given). Bytes go with the final states that
/// no longer need them.
fn moved(mut record: Record, state: State, due: Option<i64>) -> Record {
    record.status.state = state;
    record.status.next_attempt_at = (state == State::Deferred).then(|| ms_to_time(due.unwrap_or_else(now_ms)));
    if !state.keeps_body() {
        record.body_dropped = true;
    }
    record
}

/// A function told the ids of purged messages (e.g. to remove their
/// transcripts).
pub type PurgeHook = dyn Fn(&[String]) + Send + Sync;

/// Retention in days (SMTPKeepSentDays, SMTPKeepFailedDays; 0 = for ever),
/// read before each background purge.
pub type RetentionFn = dyn Fn() -> (u64, u64) + Send + Sync;

/// How often expired statuses are purged in the background.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Statuses deleted per transaction of a purge: delivery waits at most for
/// one chunk.
const PURGE_CHUNK: usize = 500;

/// The outbox of one client.
pub struct Outbox {
    state: Mutex<Ledger>,
    /// Wakes whoever waits for a message to change (wait, flush, shutdown).
    changed: Condvar,
    /// Wakes the delivery threads: there may be work for them.
    work: Condvar,
    store: Mutex<Store>,
    pub events: Events,
    workers: Mutex<Vec<JoinHandle<()>>>,
    paused_path: Option<PathBuf>,
    staging_path: Option<PathBuf>,
    /// Warnings from open (damage recovered past), for the host.
    warnings: Vec<String>,
    purge_hook: Mutex<Option<Arc<PurgeHook>>>,
    /// Wakes the purge thread at shutdown.
    purge_wake: (Mutex<bool>, Condvar),
}

/// Reads a persisted set of names (`[]` when the file does not exist).
fn read_set(path: Option<&Path>) -> Result<BTreeSet<String>> {
    match path {
        Some(p) if p.exists() => {
            let bytes = std::fs::read(p).map_err(|e| Error::io("cannot read", p, &e))?;
            serde_json::from_slice(&bytes).map_err(|e| Error::new(Code::Io, format!("{} is damaged: {e}", p.display())))
        }
        _ => Ok(BTreeSet::new()),
    }
}

/// A change made at open that cannot be written (a full disk): the
/// ledger holds it and the next write of the message records it; the
/// store keeps the old state, which the next open reads the same way.
fn keep_or_log(written: Result<()>) {
    if let Err(e) = written {
        log::warn!("{}", e.message());
    }
}

/// The event of a state change.
fn state_event(record: &Record) -> Value {
    let s = &record.status;
    json!({
        "type": "state",
        "id": s.id,
        "batch_id": s.batch_id,
        "reference": s.reference,
        "state": s.state.name(),
        "attempts": s.attempts,
        "error_code": s.error_code as i32,
        "error": s.error,
        "possible_duplicate": s.possible_duplicate,
        "rejected_count": s.rejected.len(),
    })
}

fn parse_state(name: &str, what: &str) -> Result<State> {
    State::ALL.iter().copied().find(|s| s.name() == name).ok_or_else(|| {
        Error::invalid_argument(format!(
            "{what}: state \"{}\": one of queued, sending, sent, deferred, failed, cancelled expected",
            printable(name)
        ))
    })
}

/// Parses an RFC 3339 UTC time (`2026-11-22T10:00:00Z`) to Unix ms.
fn parse_time(text: &str, what: &str) -> Result<i64> {
    humantime::parse_rfc3339_weak(text).map(time_to_ms).map_err(|_| {
        Error::invalid_argument(format!(
            "{what}: \"{}\" is not an RFC 3339 UTC time such as 2026-11-22T10:00:00Z",
            printable(text)
        ))
    })
}

const CURSOR_PREFIX: &str = "q1.";

fn encode_cursor(id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{id}"))
}

fn decode_cursor(cursor: &str) -> Result<String> {
    use base64::Engine;
    let bad = || {
        Error::invalid_argument(format!("query_json: cursor \"{}\" is not one this library made", printable(cursor)))
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let id = text.strip_prefix(CURSOR_PREFIX).ok_or_else(bad)?;
    ulid::Ulid::from_string(id).map_err(|_| bad())?;
    Ok(id.to_string())
}

/// Parses `smtpb_outbox_query`'s JSON, naming what is wrong.
fn parse_query(text: &str) -> Result<Query> {
    const FIELDS: &str = "state, batch_id, reference, reference_prefix, profile, since, until, limit, cursor";
    let map: crate::json::OrderedMap = crate::json::parse_object(text, "query_json")?;
    let mut q = Query { limit: 100, ..Query::default() };
    let text_of = |key: &str, v: &Value| -> Result<String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::invalid_argument(format!("query_json: \"{key}\" must be a string")))
    };
    for (key, value) in map.0 {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "state" => {
                let list = value
                    .as_array()
                    .ok_or_else(|| Error::invalid_argument("query_json: \"state\" must be an array of state names"))?;
                for v in list {
                    let name = v.as_str().ok_or_else(|| {
                        Error::invalid_argument("query_json: \"state\" must be an array of state names")
                    })?;
                    let s = parse_state(name, "query_json: \"state\"")?;
                    if !q.states.contains(&s) {
                        q.states.push(s);
                    }
                }
            }
            "batch_id" => q.batch_id = Some(text_of(&key, &value)?),
            "reference" => q.reference = Some(text_of(&key, &value)?),
            "reference_prefix" => q.reference_prefix = Some(text_of(&key, &value)?),
            "profile" => q.profile = Some(text_of(&key, &value)?.to_ascii_lowercase()),
            "since" => q.since_ms = Some(parse_time(&text_of(&key, &value)?, "query_json: \"since\"")?),
            "until" => q.until_ms = Some(parse_time(&text_of(&key, &value)?, "query_json: \"until\"")?),
            "limit" => {
                q.limit = value.as_u64().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                    Error::invalid_argument(format!(
                        "query_json: \"limit\" must be an integer from 1 to 1000, not {value}"
                    ))
                })? as usize
            }
            "cursor" => q.before_id = Some(decode_cursor(&text_of(&key, &value)?)?),
            other => {
                return Err(Error::invalid_argument(format!(
                    "query_json: unknown field \"{}\"; expected one of {FIELDS}",
                    printable(other)
                )))
            }
        }
    }
    Ok(q)
}

impl Outbox {
    /// Opens the outbox of `data_dir` (`None` = in memory): opens the store
    /// (migrating a version-1 journal), loads what is not final, and
    /// queues again what was `sending` when the last process ended.
    pub fn open(data_dir: Option<&Path>, open_paused: bool) -> Result<Outbox> {
        let Opened { mut store, active, warnings } = Store::open(data_dir)?;
        let paused_path = data_dir.map(|d| d.join("spool").join("paused.json"));
        let staging_path = data_dir.map(|d| d.join("spool").join("staging.json"));
        let paused: BTreeSet<String> = read_set(paused_path.as_deref())?;
        // Merges that never finished (the process ended during the call):
        // the host never got their ids, so none of their mail may go out.
        let unfinished: BTreeSet<String> = read_set(staging_path.as_deref())?;
        let mut state = Ledger { paused, open_paused, ..Ledger::default() };
        for mut record in active {
            let in_unfinished_merge = record.status.batch_id.as_ref().is_some_and(|b| unfinished.contains(b));
            if in_unfinished_merge {
                record = moved(record, State::Cancelled, None);
                record.status.error = Some("the merge that made this message did not finish".into());
                record.idempotency_key = None;
                keep_or_log(store.update(&record));
            }
            if record.status.state == State::Sending {
                // The process ended during this attempt: the server may
                // have the message. Send it again with the same Message-ID.
                record.status.state = State::Queued;
                record.status.possible_duplicate = true;
                keep_or_log(store.update(&record));
            }
            state.replace(record);
        }
        let outbox = Outbox {
            state: Mutex::new(state),
            changed: Condvar::new(),
            work: Condvar::new(),
            store: Mutex::new(store),
            events: Events::new(),
            workers: Mutex::new(Vec::new()),
            paused_path,
            staging_path,
            warnings,
            purge_hook: Mutex::new(None),
            purge_wake: (Mutex::new(false), Condvar::new()),
        };
        if !unfinished.is_empty() {
            keep_or_log(outbox.save_staging(&outbox.lock().staging));
        }
        Ok(outbox)
    }

    /// Warnings from open: damage in the spool that was recovered past
    /// (each also logged). Empty when the spool was sound.
    pub fn open_warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Wakes the delivery threads and the waiters.
    fn notify(&self) {
        self.work.notify_all();
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the function told the ids of every purged message (the
    /// transcripts of those messages go with them). Set it before
    /// [`Outbox::start`], which starts the first background purge.
    pub fn set_purge_hook(&self, hook: Arc<PurgeHook>) {
        *self.purge_hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    /// Starts `threads` delivery threads running `attempt`, the event
    /// thread, and the purge thread (expired statuses now and hourly, as
    /// `retention` says).
    pub fn start<F>(self: &Arc<Self>, threads: u32, retention: Arc<RetentionFn>, attempt: F) -> Result<()>
    where
        F: Fn(&Record, &[u8]) -> (Attempt, RetryPolicy) + Send + Sync + 'static,
    {
        self.events.start().map_err(|e| Error::internal(format!("cannot start the event thread: {e}")))?;
        let attempt = Arc::new(attempt);
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for n in 0..threads.max(1) {
            let outbox = self.clone();
            let attempt = attempt.clone();
            let handle = std::thread::Builder::new()
                .name(format!("smtpbridge-delivery-{n}"))
                .spawn(move || outbox.deliver_loop(attempt.as_ref()))
                .map_err(|e| Error::internal(format!("cannot start a delivery thread: {e}")))?;
            workers.push(handle);
        }
        let outbox = self.clone();
        let handle = std::thread::Builder::new()
            .name("smtpbridge-purge".into())
            .spawn(move || outbox.purge_loop(retention.as_ref()))
            .map_err(|e| Error::internal(format!("cannot start the purge thread: {e}")))?;
        workers.push(handle);
        Ok(())
    }

    /// The purge thread: expired statuses at start and every hour.
    fn purge_loop(&self, retention: &RetentionFn) {
        loop {
            if self.lock().stopping {
                return;
            }
            let (sent_days, failed_days) = retention();
            let day = 86_400_000i64;
            let now = now_ms();
            if sent_days > 0 {
                if let Err(e) = self.purge(now - sent_days as i64 * day, &[State::Sent, State::Cancelled]) {
                    log::warn!("purging expired statuses: {}", e.message());
                }
            }
            if failed_days > 0 {
                if let Err(e) = self.purge(now - failed_days as i64 * day, &[State::Failed]) {
                    log::warn!("purging expired statuses: {}", e.message());
                }
            }
            if let Err(e) = self.reclaim() {
                log::warn!("compacting the outbox store: {}", e.message());
            }
            let (lock, wake) = &self.purge_wake;
            let stop = lock.lock().unwrap_or_else(|e| e.into_inner());
            if *stop {
                return;
            }
            let (stop, _) = wake.wait_timeout(stop, PURGE_EVERY).unwrap_or_else(|e| e.into_inner());
            if *stop {
                return;
            }
        }
    }

    /// Deletes the final statuses in `states` created before `before_ms`
    /// (Unix ms), with their bytes, in transactions of [`PURGE_CHUNK`]
    /// (delivery goes on between them), tells the purge hook their ids,
    /// then gives the freed space back to the file system. Their ids are
    /// NOT_FOUND afterwards and their idempotency keys free. Returns how
    /// many were purged.
    pub fn purge(&self, before_ms: i64, states: &[State]) -> Result<u64> {
        let mut purged = 0u64;
        let hook = self.purge_hook.lock().unwrap_or_else(|e| e.into_inner()).clone();
        loop {
            let ids = self.store().purge_chunk(before_ms, states, PURGE_CHUNK)?;
            purged += ids.len() as u64;
            if let (Some(hook), false) = (&hook, ids.is_empty()) {
                hook(&ids);
            }
            if ids.len() < PURGE_CHUNK || self.lock().stopping {
                break;
            }
        }
        if purged > 0 {
            log::info!("purged {purged} statuses");
            self.reclaim()?;
        }
        Ok(purged)
    }

    /// Gives the store's free pages (of purged statuses and of the bytes of
    /// final messages) back to the file system, a step at a time, and
    /// truncates the WAL. Each step is a transaction: a crash loses
    /// nothing.
    fn reclaim(&self) -> Result<()> {
        while self.store().reclaim_step(1024)? {
            if self.lock().stopping {
                return Ok(());
            }
        }
        self.store().checkpoint()
    }

    /// `smtpb_outbox_purge`: `before` RFC 3339; `states_json` a JSON array
    /// of final states (`None`: sent, cancelled, failed).
    pub fn purge_request(&self, before: &str, states_json: Option<&str>) -> Result<Value> {
        let before_ms = parse_time(before, "before")?;
        let states = match states_json {
            None => vec![State::Sent, State::Cancelled, State::Failed],
            Some(text) => {
                let names: Vec<String> = crate::json::parse(text, "states_json")?;
                let mut states = Vec::new();
                for name in &names {
                    let s = parse_state(name, "states_json")?;
                    if !s.is_final() {
                        return Err(Error::invalid_argument(format!(
                            "states_json: \"{name}\" is not final; only sent, cancelled and failed statuses can be purged"
                        )));
                    }
                    states.push(s);
                }
                states
            }
        };
        Self::check_running(&self.lock())?;
        Ok(json!({"purged": self.purge(before_ms, &states)?}))
    }

    /// Writes a new message (durable when it returns) in `record`'s state.
    /// Returns its id and bytes; or the id of the message with the same
    /// idempotency key instead, when there is one.
    ///
    /// A message `sending` now (`smtpb_send`) in an in-memory store is
    /// written once, when [`Outbox::finish_now`] has its outcome (its
    /// bytes only if it failed, for `smtpb_retry`): nothing there survives
    /// the process, so no restart can need it written sooner.
    pub fn add(&self, record: Record, bytes: Vec<u8>) -> Result<(String, Arc<Vec<u8>>)> {
        let mut state = self.lock();
        if state.stopping {
            return Err(Error::state("the client is shut down"));
        }
        if let Some(key) = &record.idempotency_key {
            let unstored = state
                .unstored
                .iter()
                .find(|id| state.entries.get(*id).is_some_and(|r| r.idempotency_key.as_ref() == Some(key)));
            if let Some(id) = unstored {
                return Ok((id.clone(), Arc::new(Vec::new())));
            }
            if let Some(id) = self.store().idempotent(key)? {
                return Ok((id, Arc::new(Vec::new())));
            }
        }
        let unstored = {
            let mut store = self.store();
            let later = record.status.state == State::Sending && store.in_memory();
            if !later {
                store.insert(&record, &bytes)?;
            }
            later
        };
        let id = record.status.id.clone();
        if unstored {
            state.unstored.insert(id.clone());
        }
        let event = state_event(&record);
        // Work for the delivery threads: queued or deferred, and not held
        // back with a merge under way.
        let ready =
            matches!(record.status.state, State::Queued | State::Deferred) && state.staged_batch(&record).is_none();
        state.replace(record);
        // Emitted under the lock, so no delivery thread can report this
        // message's next state first.
        self.events.emit(event);
        drop(state);
        if ready {
            self.notify();
        }
        Ok((id, Arc::new(bytes)))
    }

    /// Applies the outcome of an attempt made outside the delivery threads
    /// (`smtpb_send`): the message goes `sent` or `failed`, never deferred.
    /// `bytes` are the message's, written with a failure when
    /// [`Outbox::add`] did not write them. Returns the message's status.
    pub fn finish_now(&self, id: &str, outcome: Attempt, bytes: Arc<Vec<u8>>) -> Result<Value> {
        let mut state = self.lock();
        let policy = RetryPolicy { initial_ms: 0, max_ms: 0, max_age_ms: 0 };
        let body = self.store().in_memory().then_some(bytes);
        let applied = self.apply(&mut state, id, outcome, &policy, false, body);
        // The message is no longer `sending`: flush and shutdown may be
        // waiting for that. The delivery threads have nothing new to do.
        self.changed.notify_all();
        match applied? {
            Some(record) => Ok(record.status.to_json()),
            None => {
                drop(state);
                self.status(id)
            }
        }
    }

    /// Records the outcome of an attempt; `retry` allows deferral. When the
    /// store cannot record it, the message stays `sending` (as the store
    /// says), marked `possible_duplicate` with the reason in `error`, and
    /// the outcome is written as soon as the store takes it; a restart
    /// before that sends it again as a possible duplicate.
    /// `body` is written with the outcome when the message keeps its bytes
    /// (see [`Outbox::add`]). Returns the message's new record (`None`
    /// when it is not in memory).
    fn apply(
        &self,
        state: &mut Ledger,
        id: &str,
        outcome: Attempt,
        policy: &RetryPolicy,
        retry: bool,
        body: Option<Arc<Vec<u8>>>,
    ) -> Result<Option<Record>> {
        let Some(mut record) = state.entries.get(id).cloned() else { return Ok(None) };
        let s = &mut record.status;
        let profile = s.profile.clone();
        let mut credential_user = record.user.clone();
        let (next_state, due) = match outcome {
            Attempt::Sent { delivery, archive } => {
                s.sent_at = Some(SystemTime::now());
                s.reply = delivery.reply;
                s.transport = Some(delivery.transport.to_string());
                s.http_status = delivery.http_status;
                s.rejected = delivery.rejected;
                s.error_code = Code::Ok;
                s.error = None;
                s.needs = None;
                s.advice = None;
                match archive {
                    Some(Ok(paths)) => s.archive = Some(paths),
                    Some(Err(e)) => {
                        s.error_code = e.code();
                        s.error = Some(format!("sent, but the archive copy failed: {}", e.message()));
                    }
                    None => {}
                }
                (State::Sent, None)
            }
            Attempt::Held { reason, .. } if !retry => {
                s.error_code = Code::Limit;
                s.error = Some(reason);
                (State::Failed, None)
            }
            Attempt::Held { until_ms, reason } => {
                s.advice = None;
                s.error_code = Code::Limit;
                s.error = Some(reason.clone());
                state.holds.insert(profile.to_ascii_lowercase(), (until_ms, reason));
                (State::Deferred, Some(until_ms))
            }
            Attempt::Failed { error, failure, oauth_user } => {
                s.advice = failure.as_ref().and_then(|f| f.advice.clone());
                let mut not_before = None;
                if let Some(f) = &failure {
                    s.reply = f.reply.clone();
                    s.transport = Some(f.transport.to_string());
                    s.http_status = f.http_status;
                    not_before = f.retry_after_ms.map(|ms| now_ms().saturating_add(ms.min(i64::MAX as u64) as i64));
                    s.possible_duplicate |= f.possible_duplicate;
                    s.rejected = f
                        .rejected
                        .iter()
                        .map(|(address, reply)| crate::status::Refusal::reply(address.clone(), reply.clone()))
                        .collect();
                }
                s.error_code = error.code();
                s.error = Some(error.message().to_string());
                s.needs = oauth_user.is_some().then(|| "credentials".to_string());
                if let Some(u) = oauth_user {
                    credential_user = u;
                }
                let transient = s.needs.is_some() || matches!(error.code(), Code::Connect | Code::Transient);
                let age = now_ms() - time_to_ms(s.created_at);
                if retry && transient && (age as u64) < policy.max_age_ms {
                    // Never earlier than the server asked (Retry-After).
                    let delay = policy.delay_ms(s.attempts);
                    let due = (now_ms() + delay).max(not_before.unwrap_or(0));
                    log::info!(
                        "message {id} deferred after attempt {}: retry in {} s",
                        s.attempts,
                        (due - now_ms()) / 1000
                    );
                    (State::Deferred, Some(due))
                } else {
                    (State::Failed, None)
                }
            }
        };
        let oauth_needed = record.status.needs.is_some();
        let record = moved(record, next_state, due);
        if let Err(e) = self.commit_with_body(state, record.clone(), body.as_deref().map(Vec::as_slice)) {
            self.hold_unrecorded(state, record, body, &e);
            return Err(e);
        }
        if oauth_needed && state.credentials_noticed.insert(credential_user.clone()) {
            self.events.emit(json!({"type": "credentials_needed", "user_id": credential_user, "profile": profile}));
        }
        Ok(Some(record))
    }

    /// Keeps an outcome the store could not record, to write it later; the
    /// message's status says what happened.
    fn hold_unrecorded(&self, state: &mut Ledger, record: Record, body: Option<Arc<Vec<u8>>>, e: &Error) {
        let id = record.status.id.clone();
        if let Some(entry) = state.entries.get_mut(&id) {
            entry.status.possible_duplicate = true;
            entry.status.error = Some(format!(
                "the attempt ended ({}), but the outbox could not record it: {}; until it can, the message \
                 stays sending and, should the process end first, is sent again as a possible duplicate",
                record.status.state.name(),
                e.message()
            ));
            state.unrecorded.insert(id, (record, body));
        }
    }

    /// Tries again to write the outcomes the store could not take.
    fn record_unrecorded(&self, state: &mut Ledger) {
        let pending: Vec<(Record, Option<Bytes>)> = state.unrecorded.values().cloned().collect();
        for (record, body) in pending {
            let id = record.status.id.clone();
            if self.commit_with_body(state, record, body.as_deref().map(Vec::as_slice)).is_ok() {
                state.unrecorded.remove(&id);
            } else {
                break;
            }
        }
    }

    /// Writes a message's new record, then (only once it is durable) puts
    /// it in place and tells the host. Nothing changes when it fails.
    fn commit(&self, state: &mut Ledger, record: Record) -> Result<()> {
        self.commit_with_body(state, record, None)
    }

    /// [`Outbox::commit`], writing the message's bytes too when given.
    fn commit_with_body(&self, state: &mut Ledger, record: Record, body: Option<&[u8]>) -> Result<()> {
        let id = &record.status.id;
        if state.unstored.contains(id) {
            let bytes = if record.body_dropped { &[][..] } else { body.unwrap_or(&[]) };
            self.store().insert(&record, bytes)?;
            state.unstored.remove(id);
        } else {
            self.store().update_with_body(&record, body)?;
        }
        let event = state_event(&record);
        state.replace(record);
        self.events.emit(event);
        Ok(())
    }

    /// The loop of one delivery thread.
    fn deliver_loop(&self, attempt: &AttemptFn) {
        loop {
            let Some(record) = self.take_next() else { return };
            let id = record.status.id.clone();
            let read = self.store().body(&id).and_then(|b| {
                b.ok_or_else(|| Error::new(Code::Io, "the message's bytes are no longer in the outbox store"))
            });
            let (outcome, policy) = match read {
                // A panic in an attempt fails only this message.
                Ok(bytes) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| attempt(&record, &bytes)))
                    .unwrap_or_else(|_| {
                        (
                            Attempt::Failed {
                                error: Error::internal("internal error while delivering this message"),
                                failure: None,
                                oauth_user: None,
                            },
                            RetryPolicy::default(),
                        )
                    }),
                Err(error) => (Attempt::Failed { error, failure: None, oauth_user: None }, RetryPolicy::default()),
            };
            let mut state = self.lock();
            // A failure is kept in `unrecorded` and written later.
            let _ = self.apply(&mut state, &id, outcome, &policy, true, None);
            drop(state);
            self.notify();
        }
    }

    /// Waits for the next message due for delivery and marks it `sending`;
    /// `None` when the outbox stops. Looks only at the first due message of
    /// each profile that is not paused: the cost does not grow with the
    /// backlog.
    fn take_next(&self) -> Option<Record> {
        let mut state = self.lock();
        loop {
            if state.stopping {
                return None;
            }
            if !state.unrecorded.is_empty() {
                let before = state.unrecorded.len();
                self.record_unrecorded(&mut state);
                if state.unrecorded.len() < before {
                    self.notify();
                }
            }
            let now = now_ms();
            let mut chosen: Option<(i64, String)> = None;
            let mut wake_at = now + 1000;
            let mut to_hold = Vec::new();
            for (profile, set) in state.ready.iter() {
                if state.is_paused(profile) {
                    continue;
                }
                let hold = state.holds.get(profile).filter(|(until, _)| *until > now);
                for (due, id) in set.iter() {
                    if *due > now {
                        wake_at = wake_at.min(*due);
                        break;
                    }
                    if let Some((until, reason)) = hold {
                        wake_at = wake_at.min(*until);
                        let record = &state.entries[id];
                        if record.status.state == State::Queued || record.status.error.as_ref() != Some(reason) {
                            to_hold.push((id.clone(), *until, reason.clone()));
                        }
                        continue;
                    }
                    if chosen.as_ref().is_none_or(|c| (*due, id) < (c.0, &c.1)) {
                        chosen = Some((*due, id.clone()));
                    }
                    break;
                }
            }
            for (id, until, reason) in to_hold {
                // Held by a send limit: deferred with the reason, once.
                let Some(record) = state.entries.get(&id).cloned() else { continue };
                let mut record = moved(record, State::Deferred, Some(until));
                record.status.error_code = Code::Limit;
                record.status.error = Some(reason);
                if self.commit(&mut state, record).is_err() {
                    // Not written: hold it in memory only; tried again later.
                    state.reschedule(&id, until);
                }
            }
            if let Some((_, id)) = chosen {
                let mut record = moved(state.entries[&id].clone(), State::Sending, None);
                record.status.attempts += 1;
                let (written, full) = {
                    let mut store = self.store();
                    let written = store.update(&record);
                    let full = written.is_err() && store.disk_full();
                    (written, full)
                };
                if let (Err(e), false) = (&written, full) {
                    // Not durable: do not send what a restart cannot account for.
                    if let Some(entry) = state.entries.get_mut(&id) {
                        entry.status.error = Some(e.message().to_string());
                    }
                    state.reschedule(&id, now + 1000);
                    continue;
                }
                if full {
                    // A full disk (ABI §20): the outbox drains all the
                    // same. The store still says queued; the outcome is
                    // written once there is room. Should the process end
                    // before, the message goes again with its Message-ID.
                    log::warn!("{} is sent although the disk is full (its sending state is not recorded)", id);
                }
                let event = state_event(&record);
                state.replace(record.clone());
                self.events.emit(event);
                return Some(record);
            }
            let wait = Duration::from_millis((wake_at - now).clamp(1, 1000) as u64);
            state = self.work.wait_timeout(state, wait).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    fn not_found(id: &str) -> Error {
        Error::not_found(format!("no message with id \"{}\"", printable(id)))
    }

    /// A message's record: from memory while it is not final, else from
    /// the store.
    fn record(&self, state: &Ledger, id: &str) -> Result<Record> {
        if let Some(r) = state.entries.get(id) {
            return Ok(r.clone());
        }
        self.store().get(id)?.ok_or_else(|| Self::not_found(id))
    }

    fn check_running(state: &Ledger) -> Result<()> {
        if state.stopping {
            Err(Error::state("the client is shut down"))
        } else {
            Ok(())
        }
    }

    /// The status JSON of a message.
    pub fn status(&self, id: &str) -> Result<Value> {
        let state = self.lock();
        if let Some(r) = state.entries.get(id) {
            return Ok(r.status.to_json());
        }
        drop(state);
        Ok(self.store().get(id)?.ok_or_else(|| Self::not_found(id))?.status.to_json())
    }

    /// Statuses read from the store, with the ones not final taken from
    /// memory (which is ahead of the store only while an outcome waits to
    /// be recorded).
    fn overlay(&self, records: Vec<Record>) -> Vec<Value> {
        let state = self.lock();
        records
            .into_iter()
            .map(|r| match state.entries.get(&r.status.id) {
                Some(live) => live.status.to_json(),
                None => r.status.to_json(),
            })
            .collect()
    }

    /// The statuses of every message, or of those in `state_name`, oldest
    /// first. For small outboxes: [`Outbox::query`] pages.
    pub fn list(&self, state_name: Option<&str>) -> Result<Value> {
        let wanted = state_name.map(|n| parse_state(n, "state")).transpose()?;
        let query = Query { states: wanted.into_iter().collect(), ..Query::default() };
        let (items, _) = self.overlay_page(&query, || Ok((self.store().list(wanted)?, false)), None, false)?;
        Ok(Value::Array(items.into_iter().map(|(_, v)| v).collect()))
    }

    /// The statuses `fetch` reads from the store (see [`Outbox::overlay`])
    /// together with those of the messages not in the store yet that pass
    /// `query`, in id order (`newest_first`, or oldest first), cut to
    /// `limit`; and whether there are more (the store said so, or the cut
    /// dropped some). The messages not stored are taken first: one stored
    /// in between is then in what the store returns, and counted once.
    fn overlay_page(
        &self,
        query: &Query,
        fetch: impl FnOnce() -> Result<(Vec<Record>, bool)>,
        limit: Option<usize>,
        newest_first: bool,
    ) -> Result<(Vec<(String, Value)>, bool)> {
        let unstored: Vec<(String, Value)> = {
            let state = self.lock();
            state
                .unstored
                .iter()
                .filter_map(|id| state.entries.get(id))
                .filter(|r| query.matches(r))
                .map(|r| (r.status.id.clone(), r.status.to_json()))
                .collect()
        };
        let (records, more) = fetch()?;
        let ids: Vec<String> = records.iter().map(|r| r.status.id.clone()).collect();
        let mut items: Vec<(String, Value)> = ids.into_iter().zip(self.overlay(records)).collect();
        if unstored.is_empty() {
            return Ok((items, more));
        }
        let seen: HashSet<String> = items.iter().map(|(id, _)| id.clone()).collect();
        items.extend(unstored.into_iter().filter(|(id, _)| !seen.contains(id)));
        if newest_first {
            items.sort_by(|a, b| b.0.cmp(&a.0));
        } else {
            items.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let cut = limit.is_some_and(|n| items.len() > n);
        if let Some(n) = limit {
            items.truncate(n);
        }
        Ok((items, more || cut))
    }

    /// `smtpb_outbox_query`: one page, newest first, and the cursor of the
    /// next.
    pub fn query(&self, query_json: &str) -> Result<Value> {
        let q = parse_query(query_json)?;
        let (items, more) = self.overlay_page(&q, || self.store().query(&q), Some(q.limit), true)?;
        let next = more.then(|| items.last().map(|(id, _)| encode_cursor(id))).flatten();
        Ok(json!({"items": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), "next_cursor": next}))
    }

    /// Counts per state, the paused profiles, and the records lost to
    /// damage in the spool.
    pub fn counts(&self) -> Result<(Value, Vec<String>, i64)> {
        // The store is read under the ledger's lock: a message stored in
        // between would otherwise be counted twice or not at all.
        let state = self.lock();
        let (mut stored, damaged) = {
            let store = self.store();
            (store.counts()?, store.damaged_records())
        };
        for r in state.unstored.iter().filter_map(|id| state.entries.get(id)) {
            stored[state_code(r.status.state) as usize] += 1;
        }
        let mut counts = serde_json::Map::new();
        for s in State::ALL {
            counts.insert(s.name().into(), stored[state_code(s) as usize].max(0).into());
        }
        let mut paused: Vec<String> = state.paused.iter().cloned().collect();
        if state.open_paused && !paused.iter().any(|p| p == "*") {
            paused.insert(0, "*".into());
        }
        Ok((Value::Object(counts), paused, damaged))
    }

    /// The ids and current states of a batch's messages.
    fn members(&self, batch_id: &str) -> Result<Vec<(String, State)>> {
        let stored = self.store().batch_members(batch_id)?;
        let state = self.lock();
        Ok(stored
            .into_iter()
            .map(|(id, code)| {
                let s = state.entries.get(&id).map(|r| r.status.state).unwrap_or(State::ALL[code_index(code)]);
                (id, s)
            })
            .collect())
    }

    /// Counts per state of a batch, plus `batch_id` and `total`.
    pub fn batch_status(&self, batch_id: &str) -> Result<Value> {
        let members = self.members(batch_id)?;
        if members.is_empty() {
            return Err(Error::not_found(format!("no batch with id \"{}\"", printable(batch_id))));
        }
        let mut counts = [0usize; 6];
        for (_, s) in &members {
            counts[state_code(*s) as usize] += 1;
        }
        let mut out = serde_json::Map::new();
        out.insert("batch_id".into(), batch_id.into());
        out.insert("total".into(), members.len().into());
        for s in State::ALL {
            out.insert(s.name().into(), counts[state_code(s) as usize].into());
        }
        Ok(Value::Object(out))
    }

    /// Waits until message `id` is final; its status, or
    /// `SMTPB_ERR_TIMEOUT`. `timeout_ms` 0 = do not wait, `u32::MAX` = no
    /// limit.
    pub fn wait(&self, id: &str, timeout_ms: u32) -> Result<Value> {
        let deadline = (timeout_ms != u32::MAX).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        let mut state = self.lock();
        loop {
            Self::check_running(&state)?;
            let record = self.record(&state, id)?;
            if record.status.state.is_final() {
                return Ok(record.status.to_json());
            }
            state = self.wait_until(state, deadline, || format!("message {id} is not final yet"))?;
        }
    }

    /// Waits until nothing is `queued` (in a profile not paused) or
    /// `sending`.
    pub fn flush(&self, timeout_ms: u32) -> Result<()> {
        let deadline = (timeout_ms != u32::MAX).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        let mut state = self.lock();
        loop {
            Self::check_running(&state)?;
            let busy = state.sending
                + state.queued.iter().filter(|(p, _)| !state.is_paused(p)).map(|(_, n)| *n).sum::<usize>();
            if busy == 0 {
                return Ok(());
            }
            state = self.wait_until(state, deadline, || format!("{busy} messages are still queued or sending"))?;
        }
    }

    fn wait_until<'a>(
        &self,
        state: MutexGuard<'a, Ledger>,
        deadline: Option<Instant>,
        what: impl FnOnce() -> String,
    ) -> Result<MutexGuard<'a, Ledger>> {
        match deadline {
            None => Ok(self.changed.wait(state).unwrap_or_else(|e| e.into_inner())),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(Error::new(Code::Timeout, what()));
                }
                Ok(self.changed.wait_timeout(state, d - now).unwrap_or_else(|e| e.into_inner()).0)
            }
        }
    }

    /// Cancels a `queued` or `deferred` message.
    pub fn cancel(&self, id: &str) -> Result<()> {
        let mut state = self.lock();
        Self::check_running(&state)?;
        let record = self.record(&state, id)?;
        let current = record.status.state;
        if !matches!(current, State::Queued | State::Deferred) {
            return Err(Error::state(format!(
                "message {id} is {}; only queued or deferred mail can be cancelled",
                current.name()
            )));
        }
        self.commit(&mut state, moved(record, State::Cancelled, None))?;
        drop(state);
        self.notify();
        Ok(())
    }

    /// Cancels what it can of a batch: `{"cancelled", "sending", "sent"}`.
    pub fn batch_cancel(&self, batch_id: &str) -> Result<Value> {
        Self::check_running(&self.lock())?;
        let members = self.members(batch_id)?;
        if members.is_empty() {
            return Err(Error::not_found(format!("no batch with id \"{}\"", printable(batch_id))));
        }
        let mut state = self.lock();
        let (mut cancelled, mut sending, mut sent) = (0, 0, 0);
        for (id, _) in members {
            let Ok(record) = self.record(&state, &id) else { continue };
            match record.status.state {
                State::Queued | State::Deferred => {
                    self.commit(&mut state, moved(record, State::Cancelled, None))?;
                    cancelled += 1;
                }
                State::Sending => sending += 1,
                State::Sent => sent += 1,
                _ => {}
            }
        }
        drop(state);
        self.notify();
        Ok(json!({"cancelled": cancelled, "sending": sending, "sent": sent}))
    }

    /// `failed` → `queued`; `deferred` → due now.
    pub fn retry(&self, id: &str) -> Result<()> {
        let mut state = self.lock();
        Self::check_running(&state)?;
        let record = self.record(&state, id)?;
        match record.status.state {
            State::Failed if record.body_dropped => {
                Err(Error::state(format!("message {id} can no longer be retried: its bytes are not kept")))
            }
            State::Failed => {
                self.commit(&mut state, moved(record, State::Queued, None))?;
                drop(state);
                self.notify();
                Ok(())
            }
            State::Deferred => {
                self.commit(&mut state, moved(record, State::Deferred, Some(now_ms())))?;
                drop(state);
                self.notify();
                Ok(())
            }
            other => Err(Error::state(format!(
                "message {id} is {}; only failed or deferred mail can be retried",
                other.name()
            ))),
        }
    }

    /// Holds the messages of `batch_id` back until [`Outbox::release_batch`]
    /// (a merge being queued). Persisted, so that a merge cut short by the
    /// end of the process is cancelled at the next open.
    pub fn stage_batch(&self, batch_id: &str) -> Result<()> {
        let mut state = self.lock();
        let mut staging = state.staging.clone();
        staging.insert(batch_id.to_string());
        self.save_staging(&staging)?;
        state.staging = staging;
        Ok(())
    }

    /// Lets the messages of a staged batch go.
    pub fn release_batch(&self, batch_id: &str) -> Result<()> {
        let mut state = self.lock();
        let mut staging = state.staging.clone();
        staging.remove(batch_id);
        // Still staged on disk when this fails: kept staged here too, or a
        // restart would cancel mail this run had sent.
        self.save_staging(&staging)?;
        state.staging = staging;
        let ids = state.staged.remove(batch_id).unwrap_or_default();
        for id in ids {
            if let Some(record) = state.entries.get(&id).cloned() {
                state.replace(record);
            }
        }
        drop(state);
        self.notify();
        Ok(())
    }

    /// Cancels every message of a staged batch that failed to merge and
    /// forgets their idempotency keys; the batch stays staged (on disk
    /// too, if a cancellation could not be written).
    pub fn abandon_batch(&self, batch_id: &str) {
        let mut state = self.lock();
        let members: Vec<Record> =
            state.entries.values().filter(|r| r.status.batch_id.as_deref() == Some(batch_id)).cloned().collect();
        let mut all_written = true;
        for record in members {
            let mut record = moved(record, State::Cancelled, None);
            record.idempotency_key = None;
            all_written &= self.commit(&mut state, record).is_ok();
        }
        if all_written {
            let mut staging = state.staging.clone();
            staging.remove(batch_id);
            if self.save_staging(&staging).is_ok() {
                state.staging = staging;
                state.staged.remove(batch_id);
            }
        }
    }

    fn save_staging(&self, staging: &HashSet<String>) -> Result<()> {
        match &self.staging_path {
            Some(p) => fsutil::atomic_write(p, &serde_json::to_vec(staging).expect("strings"), false),
            None => Ok(()),
        }
    }

    /// Pauses delivery of a profile (`None` = all); persisted. When the
    /// pause cannot be saved, nothing changes.
    pub fn pause(&self, profile: Option<&str>) -> Result<()> {
        let mut state = self.lock();
        Self::check_running(&state)?;
        let mut paused = state.paused.clone();
        paused.insert(profile.map(str::to_ascii_lowercase).unwrap_or_else(|| "*".into()));
        self.save_paused(&paused)?;
        state.paused = paused;
        Ok(())
    }

    /// Resumes a profile (`None` = all, and the SMTPB_OPEN_PAUSED pause).
    /// When the change cannot be saved, nothing changes.
    pub fn resume(&self, profile: Option<&str>) -> Result<()> {
        let mut state = self.lock();
        Self::check_running(&state)?;
        let mut paused = state.paused.clone();
        match profile {
            Some(p) => {
                paused.remove(&p.to_ascii_lowercase());
            }
            None => paused.clear(),
        }
        if paused != state.paused || !self.paused_path.as_ref().is_some_and(|p| p.exists()) {
            self.save_paused(&paused)?;
        }
        state.paused = paused;
        if profile.is_none() {
            state.open_paused = false;
        }
        drop(state);
        self.notify();
        Ok(())
    }

    fn save_paused(&self, paused: &BTreeSet<String>) -> Result<()> {
        match &self.paused_path {
            Some(p) => fsutil::atomic_write(p, &serde_json::to_vec(paused).expect("strings"), false),
            None => Ok(()),
        }
    }

    /// New credentials: messages waiting for them are due now.
    pub fn release_credentials(&self) {
        let mut state = self.lock();
        state.credentials_noticed.clear();
        let waiting: Vec<String> = state
            .entries
            .values()
            .filter(|r| r.status.state == State::Deferred && r.status.needs.is_some())
            .map(|r| r.status.id.clone())
            .collect();
        let now = now_ms();
        for id in waiting {
            state.reschedule(&id, now);
        }
        drop(state);
        self.notify();
    }

    /// Limits were reset: messages held by them are due now.
    pub fn release_limits(&self, profile: Option<&str>) {
        let mut state = self.lock();
        let profile = profile.map(str::to_ascii_lowercase);
        state.holds.retain(|p, _| profile.as_ref().is_some_and(|q| q != p));
        let held: Vec<String> = state
            .entries
            .values()
            .filter(|r| {
                r.status.state == State::Deferred
                    && r.status.error_code == Code::Limit
                    && profile.as_ref().is_none_or(|p| *p == r.status.profile.to_ascii_lowercase())
            })
            .map(|r| r.status.id.clone())
            .collect();
        let now = now_ms();
        for id in held {
            state.reschedule(&id, now);
        }
        drop(state);
        self.notify();
    }

    /// Tells the delivery threads to stop after their current attempt,
    /// without waiting for them.
    pub fn stop_soon(&self) {
        self.lock().stopping = true;
        self.notify();
        let (lock, wake) = &self.purge_wake;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
    }

    /// Stops delivery: no new attempt starts; attempts under way may finish
    /// until `deadline`, then `abort` ends their sessions; every delivery
    /// thread, the purge thread and the event thread are joined. False when
    /// the grace ran out with work in flight.
    pub fn shutdown(&self, deadline: Instant, abort: impl Fn()) -> bool {
        self.stop_soon();
        let mut in_time = true;
        {
            let mut state = self.lock();
            // Messages whose outcome waits to be recorded are not in flight.
            while state.sending > state.unrecorded.len() {
                let now = Instant::now();
                if now >= deadline {
                    in_time = false;
                    break;
                }
                state = self.changed.wait_timeout(state, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
            }
            if !state.unrecorded.is_empty() {
                self.record_unrecorded(&mut state);
            }
        }
        if !in_time {
            abort();
        }
        let workers: Vec<JoinHandle<()>> = self.workers.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
        for w in workers {
            let _ = w.join();
        }
        self.events.stop();
        in_time
    }
}

/// The state of a store code.
fn code_index(code: i64) -> usize {
    // State::ALL is in the order of state_code.
    (code.clamp(0, 5)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Status;

    fn record(state: State) -> Record {
        Record {
            status: Status::new(crate::status::new_id(), "Default".into(), state),
            user: None,
            envelope_from: "anna@firm.example".into(),
            envelope_to: vec!["client@example.com".into()],
            idempotency_key: None,
            archive: false,
            body_dropped: false,
        }
    }

    fn sent() -> Attempt {
        Attempt::Sent {
            delivery: crate::delivery::Delivery {
                transport: "smtp",
                reply: None,
                http_status: None,
                rejected: Vec::new(),
            },
            archive: None,
        }
    }

    fn ids(page: &Value) -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn a_send_of_an_in_memory_client_is_seen_everywhere_before_it_is_stored() {
        let outbox = Outbox::open(None, true).unwrap();
        let (older, _) = outbox.add(record(State::Sent), Vec::new()).unwrap();
        let mut sending = record(State::Sending);
        sending.idempotency_key = Some("invoice-7".into());
        let (id, bytes) = outbox.add(sending.clone(), b"the bytes".to_vec()).unwrap();
        assert!(outbox.store().get(&id).unwrap().is_none(), "not written before its outcome");

        let (counts, _, _) = outbox.counts().unwrap();
        assert_eq!((counts["sending"].as_i64(), counts["sent"].as_i64()), (Some(1), Some(1)));
        assert_eq!(outbox.status(&id).unwrap()["state"], "sending");
        let listed = outbox.list(Some("sending")).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 1);
        assert_eq!(outbox.list(None).unwrap().as_array().unwrap().len(), 2);
        // Newest first, one a page: the unstored one, then the stored one.
        let first = outbox.query(r#"{"limit": 1}"#).unwrap();
        assert_eq!(ids(&first), vec![id.clone()]);
        let cursor = first["next_cursor"].as_str().unwrap().to_string();
        let second = outbox.query(&format!(r#"{{"limit": 1, "cursor": "{cursor}"}}"#)).unwrap();
        assert_eq!(ids(&second), vec![older.clone()]);
        assert!(second["next_cursor"].is_null());
        assert_eq!(ids(&outbox.query(r#"{"state": ["sent"]}"#).unwrap()), vec![older.clone()]);
        assert_eq!(ids(&outbox.query(r#"{"state": ["sending"]}"#).unwrap()), vec![id.clone()]);
        // Its idempotency key is taken while it is in flight.
        let mut again = record(State::Sending);
        again.idempotency_key = Some("invoice-7".into());
        assert_eq!(outbox.add(again, b"x".to_vec()).unwrap().0, id);

        // Failed: written with its bytes, for smtpb_retry.
        let failed = Attempt::Failed { error: Error::new(Code::Rejected, "550 no"), failure: None, oauth_user: None };
        let status = outbox.finish_now(&id, failed, bytes).unwrap();
        assert_eq!(status["state"], "failed");
        assert_eq!(outbox.store().body(&id).unwrap().as_deref(), Some(&b"the bytes"[..]));
        assert_eq!(outbox.store().get(&id).unwrap().unwrap().status.state, State::Failed);
        let (counts, _, _) = outbox.counts().unwrap();
        assert_eq!((counts["sending"].as_i64(), counts["failed"].as_i64()), (Some(0), Some(1)));
        assert_eq!(ids(&outbox.query("{}").unwrap()), vec![id.clone(), older]);
        outbox.retry(&id).unwrap();
        assert_eq!(outbox.status(&id).unwrap()["state"], "queued");
    }

    #[test]
    fn final_records_gathered_in_memory_are_seen_by_every_read() {
        let outbox = Outbox::open(None, true).unwrap();
        let mut ids = Vec::new();
        // Past one transaction's worth, and a few gathered still.
        for n in 0..(store::WRITE_BEHIND * 2 + 5) {
            let (id, bytes) = outbox.add(record(State::Sending), format!("message {n}").into_bytes()).unwrap();
            let outcome = if n % 2 == 0 {
                sent()
            } else {
                Attempt::Failed { error: Error::new(Code::Rejected, "550 no"), failure: None, oauth_user: None }
            };
            outbox.finish_now(&id, outcome, bytes).unwrap();
            ids.push(id);
        }
        let (counts, _, _) = outbox.counts().unwrap();
        assert_eq!(counts["sent"].as_u64(), Some(store::WRITE_BEHIND as u64 + 3));
        assert_eq!(counts["failed"].as_u64(), Some(store::WRITE_BEHIND as u64 + 2));
        let last = ids.last().unwrap();
        assert_eq!(outbox.store().body(last).unwrap(), None, "sent: its bytes are not kept");
        let failed = &ids[ids.len() - 2];
        assert_eq!(outbox.store().body(failed).unwrap(), Some(format!("message {}", ids.len() - 2).into_bytes()));
        assert_eq!(outbox.list(None).unwrap().as_array().unwrap().len(), ids.len());
        assert_eq!(outbox.status(last).unwrap()["state"], "sent");
        assert_eq!(outbox.status(failed).unwrap()["state"], "failed");
    }

    #[test]
    fn failed_sends_gathered_in_memory_are_written_once_their_bytes_reach_4_mib() {
        let outbox = Outbox::open(None, true).unwrap();
        let failed =
            || Attempt::Failed { error: Error::new(Code::Rejected, "550 no"), failure: None, oauth_user: None };
        let (first, bytes) = outbox.add(record(State::Sending), vec![b'a'; 3 << 20]).unwrap();
        outbox.finish_now(&first, failed(), bytes).unwrap();
        assert_eq!(outbox.store().gathered(), 1);
        let (second, bytes) = outbox.add(record(State::Sending), vec![b'b'; 1 << 20]).unwrap();
        outbox.finish_now(&second, failed(), bytes).unwrap();
        assert_eq!(outbox.store().gathered(), 0, "4 MiB gathered: written");
        assert_eq!(outbox.store().body(&second).unwrap().map(|b| b.len()), Some(1 << 20));
    }

    #[test]
    fn a_sent_send_of_an_in_memory_client_is_stored_once_without_its_bytes() {
        let outbox = Outbox::open(None, true).unwrap();
        let (id, bytes) = outbox.add(record(State::Sending), b"the bytes".to_vec()).unwrap();
        assert_eq!(outbox.finish_now(&id, sent(), bytes).unwrap()["state"], "sent");
        assert!(outbox.store().body(&id).unwrap().is_none());
        assert_eq!(outbox.store().get(&id).unwrap().unwrap().status.state, State::Sent);
        let (counts, _, _) = outbox.counts().unwrap();
        assert_eq!((counts["sending"].as_i64(), counts["sent"].as_i64()), (Some(0), Some(1)));
    }

    #[test]
    fn a_send_of_a_durable_client_is_stored_with_its_bytes_before_it_goes_out() {
        let dir = std::env::temp_dir().join(format!("smtpb-outbox-send-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let outbox = Outbox::open(Some(&dir), true).unwrap();
        let (id, bytes) = outbox.add(record(State::Sending), b"the bytes".to_vec()).unwrap();
        // A crash now: the next open queues it again, and needs its bytes.
        assert_eq!(outbox.store().get(&id).unwrap().unwrap().status.state, State::Sending);
        assert_eq!(outbox.store().body(&id).unwrap().as_deref(), Some(&b"the bytes"[..]));
        assert_eq!(outbox.finish_now(&id, sent(), bytes).unwrap()["state"], "sent");
        assert!(outbox.store().body(&id).unwrap().is_none());
        drop(outbox);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn purge_tells_the_hook_every_purged_id_and_keeps_what_is_not_final() {
        let outbox = Outbox::open(None, true).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        outbox.set_purge_hook(Arc::new(move |ids: &[String]| sink.lock().unwrap().extend_from_slice(ids)));
        let mut sent: Vec<String> = (0..1200).map(|_| outbox.add(record(State::Sent), Vec::new()).unwrap().0).collect();
        let (queued, _) = outbox.add(record(State::Queued), b"bytes".to_vec()).unwrap();
        assert_eq!(outbox.purge(now_ms() + 120_000, &[State::Sent, State::Queued]).unwrap(), 1200);
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        sent.sort();
        assert_eq!(got, sent);
        assert_eq!(outbox.status(&queued).unwrap()["state"], "queued");
        assert_eq!(outbox.status(&sent[0]).unwrap_err().code(), Code::NotFound);
    }
}
