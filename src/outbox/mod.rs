//! The outbox: durable background delivery that keeps trying.
//!
//! Every message a client records, whether handed to `smtpb_enqueue` or
//! sent at once with `smtpb_send`, lives here: its status, its envelope and
//! (until it is final) its bytes, all in the [`spool`]. Delivery threads
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

pub mod events;
pub mod spool;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::printable;
use crate::error::{Code, Error, Result};
use crate::fsutil;
use crate::status::State;
use events::Events;
use spool::{Body, Record, Spool};

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
        RetryPolicy { initial_ms: 60_000, max_ms: 3_600_000, max_age_ms: 172_800_000 }
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

struct Entry {
    record: Record,
    body: Body,
}

#[derive(Default)]
struct Ledger {
    entries: BTreeMap<String, Entry>,
    /// Queued and deferred messages by (next attempt in Unix ms, id).
    ready: BTreeSet<(i64, String)>,
    idempotency: HashMap<String, String>,
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
    counts: [usize; 6],
    stopping: bool,
}

fn state_index(state: State) -> usize {
    match state {
        State::Queued => 0,
        State::Sending => 1,
        State::Sent => 2,
        State::Deferred => 3,
        State::Failed => 4,
        State::Cancelled => 5,
    }
}

impl Ledger {
    fn is_paused(&self, profile: &str) -> bool {
        self.open_paused || self.paused.contains("*") || self.paused.contains(&profile.to_ascii_lowercase())
    }

    /// The key of a message in `ready`: when it is due. Queued mail is due
    /// at once (0, so queued messages go in id order: oldest first).
    fn next_attempt_ms(record: &Record) -> i64 {
        record.status.next_attempt_at.map(time_to_ms).unwrap_or(0)
    }

    /// Moves an entry to `state`, keeping counts and the ready set right.
    /// `deferred_until` (Unix ms) is when a deferred message is due; now
    /// when not given.
    fn set_state(&mut self, id: &str, state: State, deferred_until: Option<i64>) {
        let Some(entry) = self.entries.get_mut(id) else { return };
        let old = entry.record.status.state;
        self.ready.remove(&(Ledger::next_attempt_ms(&entry.record), id.to_string()));
        self.counts[state_index(old)] -= 1;
        self.counts[state_index(state)] += 1;
        entry.record.status.state = state;
        entry.record.status.next_attempt_at =
            (state == State::Deferred).then(|| ms_to_time(deferred_until.unwrap_or_else(now_ms)));
        if matches!(state, State::Queued | State::Deferred) {
            self.ready.insert((Ledger::next_attempt_ms(&entry.record), id.to_string()));
        }
    }

    fn insert(&mut self, record: Record, body: Body) {
        let id = record.status.id.clone();
        let state = record.status.state;
        self.counts[state_index(state)] += 1;
        if matches!(state, State::Queued | State::Deferred) {
            self.ready.insert((Ledger::next_attempt_ms(&record), id.clone()));
        }
        if let Some(key) = &record.idempotency_key {
            self.idempotency.insert(key.clone(), id.clone());
        }
        self.entries.insert(id, Entry { record, body });
    }
}

/// The outbox of one client.
pub struct Outbox {
    state: Mutex<Ledger>,
    changed: Condvar,
    spool: Mutex<Spool>,
    pub events: Events,
    workers: Mutex<Vec<JoinHandle<()>>>,
    paused_path: Option<PathBuf>,
    staging_path: Option<PathBuf>,
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

impl Outbox {
    /// Opens the outbox of `data_dir` (`None` = in memory): replays the
    /// spool and queues again what was `sending` when the last process
    /// ended.
    pub fn open(data_dir: Option<&Path>, open_paused: bool) -> Result<Outbox> {
        let (mut spool, records) = Spool::open(data_dir)?;
        let paused_path = data_dir.map(|d| d.join("spool").join("paused.json"));
        let staging_path = data_dir.map(|d| d.join("spool").join("staging.json"));
        let paused: BTreeSet<String> = read_set(paused_path.as_deref())?;
        // Merges that never finished (the process ended during the call):
        // the host never got their ids, so none of their mail may go out.
        let unfinished: BTreeSet<String> = read_set(staging_path.as_deref())?;
        let mut state = Ledger { paused, open_paused, ..Ledger::default() };
        for (mut record, body) in records {
            let in_unfinished_merge = record.status.batch_id.as_ref().is_some_and(|b| unfinished.contains(b));
            if in_unfinished_merge && !record.status.state.is_final() {
                record.status.state = State::Cancelled;
                record.status.error = Some("the merge that made this message did not finish".into());
                record.idempotency_key = None;
                spool.update(&record)?;
            }
            if record.status.state == State::Sending {
                // The process ended during this attempt: the server may
                // have the message. Send it again with the same Message-ID.
                record.status.state = State::Queued;
                record.status.possible_duplicate = true;
                spool.update(&record)?;
            }
            state.insert(record, body);
        }
        Ok(Outbox {
            state: Mutex::new(state),
            changed: Condvar::new(),
            spool: Mutex::new(spool),
            events: Events::new(),
            workers: Mutex::new(Vec::new()),
            paused_path,
            staging_path,
        })
        .and_then(|outbox| {
            if !unfinished.is_empty() {
                outbox.save_staging(&outbox.lock())?;
            }
            Ok(outbox)
        })
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spool(&self) -> MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `threads` delivery threads running `attempt`, and the event
    /// thread.
    pub fn start<F>(self: &Arc<Self>, threads: u32, attempt: F) -> Result<()>
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
        Ok(())
    }

    /// Writes a new message (durable when it returns) in `record`'s state.
    /// Returns its id and bytes; or the id of the message with the same
    /// idempotency key instead, when there is one.
    pub fn add(&self, record: Record, bytes: Vec<u8>) -> Result<(String, Arc<Vec<u8>>)> {
        let mut state = self.lock();
        if state.stopping {
            return Err(Error::state("the client is shut down"));
        }
        if let Some(key) = &record.idempotency_key {
            if let Some(id) = state.idempotency.get(key) {
                return Ok((id.clone(), Arc::new(Vec::new())));
            }
        }
        let (body, bytes) = self.spool().put(&record, bytes)?;
        let id = record.status.id.clone();
        let event = state_event(&record);
        let staged = record.status.batch_id.as_ref().is_some_and(|b| state.staging.contains(b));
        state.insert(record, body);
        // Emitted under the lock, so no delivery thread can report this
        // message's next state first.
        self.events.emit(event);
        drop(state);
        if !staged {
            self.changed.notify_all();
        }
        Ok((id, bytes))
    }

    /// Applies the outcome of an attempt made outside the delivery threads
    /// (`smtpb_send`): the message goes `sent` or `failed`, never deferred.
    pub fn finish_now(&self, id: &str, outcome: Attempt) -> Result<Value> {
        let mut state = self.lock();
        let policy = RetryPolicy { initial_ms: 0, max_ms: 0, max_age_ms: 0 };
        self.apply(&mut state, id, outcome, &policy, false)?;
        let json = state.entries.get(id).map(|e| e.record.status.to_json()).unwrap_or(Value::Null);
        drop(state);
        self.changed.notify_all();
        Ok(json)
    }

    /// Records the outcome of an attempt; `retry` allows deferral.
    fn apply(&self, state: &mut Ledger, id: &str, outcome: Attempt, policy: &RetryPolicy, retry: bool) -> Result<()> {
        let Some(entry) = state.entries.get_mut(id) else { return Ok(()) };
        let s = &mut entry.record.status;
        let profile = s.profile.clone();
        let mut credential_user = entry.record.user.clone();
        let (next_state, due) = match outcome {
            Attempt::Sent { delivery, archive } => {
                s.sent_at = Some(SystemTime::now());
                s.reply = delivery.reply;
                s.transport = Some(delivery.transport.to_string());
                s.http_status = delivery.http_status;
                s.rejected = delivery
                    .rejected
                    .into_iter()
                    .map(|(address, reply)| crate::status::Refusal { address, reply })
                    .collect();
                s.error_code = Code::Ok;
                s.error = None;
                s.needs = None;
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
                s.error_code = Code::Limit;
                s.error = Some(reason.clone());
                state.holds.insert(profile.to_ascii_lowercase(), (until_ms, reason));
                (State::Deferred, Some(until_ms))
            }
            Attempt::Failed { error, failure, oauth_user } => {
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
                        .map(|(address, reply)| crate::status::Refusal {
                            address: address.clone(),
                            reply: reply.clone(),
                        })
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
                    let due = (now_ms() + policy.delay_ms(s.attempts)).max(not_before.unwrap_or(0));
                    (State::Deferred, Some(due))
                } else {
                    (State::Failed, None)
                }
            }
        };
        let oauth_needed = entry.record.status.needs.is_some();
        self.change(state, id, next_state, due)?;
        if oauth_needed && state.credentials_noticed.insert(credential_user.clone()) {
            self.events.emit(json!({"type": "credentials_needed", "user_id": credential_user, "profile": profile}));
        }
        Ok(())
    }

    /// The loop of one delivery thread.
    fn deliver_loop(&self, attempt: &AttemptFn) {
        loop {
            let Some((record, body)) = self.take_next() else { return };
            let id = record.status.id.clone();
            let read = self.spool().read_body(&body);
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
            if let Err(e) = self.apply(&mut state, &id, outcome, &policy, true) {
                // The spool could not be written: keep the message where a
                // restart will find it (still `sending` on disk, so it is
                // sent again).
                if let Some(entry) = state.entries.get_mut(&id) {
                    entry.record.status.error = Some(e.message().to_string());
                }
            }
            drop(state);
            self.changed.notify_all();
        }
    }

    /// Waits for the next message due for delivery and marks it `sending`;
    /// `None` when the outbox stops.
    fn take_next(&self) -> Option<(Record, Body)> {
        let mut state = self.lock();
        loop {
            if state.stopping {
                return None;
            }
            let now = now_ms();
            let mut chosen = None;
            let mut wake_at = now + 1000;
            let mut to_hold = Vec::new();
            for (due, id) in state.ready.iter() {
                if *due > now {
                    wake_at = wake_at.min(*due);
                    break;
                }
                let entry = &state.entries[id];
                let profile = entry.record.status.profile.to_ascii_lowercase();
                if state.is_paused(&profile) {
                    continue;
                }
                if entry.record.status.batch_id.as_ref().is_some_and(|b| state.staging.contains(b)) {
                    continue;
                }
                if let Some((until, reason)) = state.holds.get(&profile) {
                    if *until > now {
                        wake_at = wake_at.min(*until);
                        if entry.record.status.state == State::Queued
                            || entry.record.status.error.as_ref() != Some(reason)
                        {
                            to_hold.push((id.clone(), *until, reason.clone()));
                        }
                        continue;
                    }
                }
                chosen = Some(id.clone());
                break;
            }
            for (id, until, reason) in to_hold {
                // Held by a send limit: deferred with the reason, once.
                state.set_state(&id, State::Deferred, Some(until));
                let entry = state.entries.get_mut(&id).expect("present");
                entry.record.status.error_code = Code::Limit;
                entry.record.status.error = Some(reason);
                let _ = self.spool().update(&entry.record);
                self.events.emit(state_event(&entry.record));
            }
            if let Some(id) = chosen {
                state.set_state(&id, State::Sending, None);
                let entry = state.entries.get_mut(&id).expect("present");
                entry.record.status.attempts += 1;
                if let Err(e) = self.spool().update(&entry.record) {
                    // Not durable: do not send what a restart cannot account for.
                    entry.record.status.attempts -= 1;
                    entry.record.status.error = Some(e.message().to_string());
                    state.set_state(&id, State::Deferred, Some(now + 1000));
                    continue;
                }
                self.events.emit(state_event(&entry.record));
                return Some((entry.record.clone(), entry.body.clone()));
            }
            let wait = Duration::from_millis((wake_at - now).clamp(1, 1000) as u64);
            state = self.changed.wait_timeout(state, wait).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    fn entry<'a>(state: &'a Ledger, id: &str) -> Result<&'a Entry> {
        state.entries.get(id).ok_or_else(|| Error::not_found(format!("no message with id \"{}\"", printable(id))))
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
        Ok(Self::entry(&state, id)?.record.status.to_json())
    }

    /// The statuses of every message, or of those in `state_name`.
    pub fn list(&self, state_name: Option<&str>) -> Result<Value> {
        let wanted = match state_name {
            None => None,
            Some(name) => Some(State::ALL.iter().copied().find(|s| s.name() == name).ok_or_else(|| {
                Error::invalid_argument(format!(
                    "state \"{}\": one of queued, sending, sent, deferred, failed, cancelled expected",
                    printable(name)
                ))
            })?),
        };
        let state = self.lock();
        let list: Vec<Value> = state
            .entries
            .values()
            .filter(|e| wanted.is_none_or(|w| e.record.status.state == w))
            .map(|e| e.record.status.to_json())
            .collect();
        Ok(Value::Array(list))
    }

    /// Counts per state, and the paused profiles.
    pub fn counts(&self) -> (Value, Vec<String>) {
        let state = self.lock();
        let mut counts = serde_json::Map::new();
        for s in State::ALL {
            counts.insert(s.name().into(), state.counts[state_index(s)].into());
        }
        let mut paused: Vec<String> = state.paused.iter().cloned().collect();
        if state.open_paused && !paused.iter().any(|p| p == "*") {
            paused.insert(0, "*".into());
        }
        (Value::Object(counts), paused)
    }

    /// Counts per state of a batch, plus `batch_id` and `total`.
    pub fn batch_status(&self, batch_id: &str) -> Result<Value> {
        let state = self.lock();
        let mut counts = [0usize; 6];
        for e in state.entries.values().filter(|e| e.record.status.batch_id.as_deref() == Some(batch_id)) {
            counts[state_index(e.record.status.state)] += 1;
        }
        let total: usize = counts.iter().sum();
        if total == 0 {
            return Err(Error::not_found(format!("no batch with id \"{}\"", printable(batch_id))));
        }
        let mut out = serde_json::Map::new();
        out.insert("batch_id".into(), batch_id.into());
        out.insert("total".into(), total.into());
        for s in State::ALL {
            out.insert(s.name().into(), counts[state_index(s)].into());
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
            let entry = Self::entry(&state, id)?;
            if entry.record.status.state.is_final() {
                return Ok(entry.record.status.to_json());
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
            let busy = state.counts[state_index(State::Sending)]
                + state
                    .entries
                    .values()
                    .filter(|e| e.record.status.state == State::Queued && !state.is_paused(&e.record.status.profile))
                    .count();
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
        let current = Self::entry(&state, id)?.record.status.state;
        if !matches!(current, State::Queued | State::Deferred) {
            return Err(Error::state(format!(
                "message {id} is {}; only queued or deferred mail can be cancelled",
                current.name()
            )));
        }
        self.change(&mut state, id, State::Cancelled, None)?;
        drop(state);
        self.changed.notify_all();
        Ok(())
    }

    /// Cancels what it can of a batch: `{"cancelled", "sending", "sent"}`.
    pub fn batch_cancel(&self, batch_id: &str) -> Result<Value> {
        let mut state = self.lock();
        Self::check_running(&state)?;
        let members: Vec<(String, State)> = state
            .entries
            .values()
            .filter(|e| e.record.status.batch_id.as_deref() == Some(batch_id))
            .map(|e| (e.record.status.id.clone(), e.record.status.state))
            .collect();
        if members.is_empty() {
            return Err(Error::not_found(format!("no batch with id \"{}\"", printable(batch_id))));
        }
        let (mut cancelled, mut sending, mut sent) = (0, 0, 0);
        for (id, s) in members {
            match s {
                State::Queued | State::Deferred => {
                    self.change(&mut state, &id, State::Cancelled, None)?;
                    cancelled += 1;
                }
                State::Sending => sending += 1,
                State::Sent => sent += 1,
                _ => {}
            }
        }
        drop(state);
        self.changed.notify_all();
        Ok(json!({"cancelled": cancelled, "sending": sending, "sent": sent}))
    }

    /// `failed` → `queued`; `deferred` → due now.
    pub fn retry(&self, id: &str) -> Result<()> {
        let mut state = self.lock();
        Self::check_running(&state)?;
        let entry = Self::entry(&state, id)?;
        match entry.record.status.state {
            State::Failed if entry.record.body_dropped || matches!(entry.body, Body::None) => {
                Err(Error::state(format!("message {id} can no longer be retried: its bytes are not kept")))
            }
            State::Failed => {
                self.change(&mut state, id, State::Queued, None)?;
                drop(state);
                self.changed.notify_all();
                Ok(())
            }
            State::Deferred => {
                self.change(&mut state, id, State::Deferred, Some(now_ms()))?;
                drop(state);
                self.changed.notify_all();
                Ok(())
            }
            other => Err(Error::state(format!(
                "message {id} is {}; only failed or deferred mail can be retried",
                other.name()
            ))),
        }
    }

    /// Moves a message to `state` (durably) and tells the host.
    fn change(&self, state: &mut Ledger, id: &str, to: State, due: Option<i64>) -> Result<()> {
        state.set_state(id, to, due);
        let entry = state.entries.get_mut(id).expect("present");
        if !to.keeps_body() {
            entry.body = Body::None;
            entry.record.body_dropped = true;
        }
        self.spool().update(&entry.record)?;
        self.events.emit(state_event(&entry.record));
        Ok(())
    }

    /// Holds the messages of `batch_id` back until [`Outbox::release_batch`]
    /// (a merge being queued). Persisted, so that a merge cut short by the
    /// end of the process is cancelled at the next open.
    pub fn stage_batch(&self, batch_id: &str) -> Result<()> {
        let mut state = self.lock();
        state.staging.insert(batch_id.to_string());
        self.save_staging(&state).inspect_err(|_| {
            state.staging.remove(batch_id);
        })
    }

    /// Lets the messages of a staged batch go.
    pub fn release_batch(&self, batch_id: &str) -> Result<()> {
        let mut state = self.lock();
        state.staging.remove(batch_id);
        let saved = self.save_staging(&state);
        if saved.is_err() {
            // Still staged on disk: keep it staged here too, or a restart
            // would cancel mail this run had sent.
            state.staging.insert(batch_id.to_string());
        }
        drop(state);
        self.changed.notify_all();
        saved
    }

    /// Cancels every message of a staged batch that failed to merge and
    /// forgets their idempotency keys; the batch stays staged (on disk
    /// too, if a cancellation could not be written).
    pub fn abandon_batch(&self, batch_id: &str) {
        let mut state = self.lock();
        let members: Vec<String> = state
            .entries
            .values()
            .filter(|e| e.record.status.batch_id.as_deref() == Some(batch_id) && !e.record.status.state.is_final())
            .map(|e| e.record.status.id.clone())
            .collect();
        let mut all_written = true;
        for id in members {
            if let Some(key) = state.entries.get_mut(&id).and_then(|e| e.record.idempotency_key.take()) {
                state.idempotency.remove(&key);
            }
            all_written &= self.change(&mut state, &id, State::Cancelled, None).is_ok();
        }
        if all_written {
            state.staging.remove(batch_id);
            if self.save_staging(&state).is_err() {
                state.staging.insert(batch_id.to_string());
            }
        }
    }

    fn save_staging(&self, state: &Ledger) -> Result<()> {
        match &self.staging_path {
            Some(p) => fsutil::atomic_write(p, &serde_json::to_vec(&state.staging).expect("strings"), false),
            None => Ok(()),
        }
    }

    /// Pauses delivery of a profile (`None` = all); persisted.
    pub fn pause(&self, profile: Option<&str>) -> Result<()> {
        let mut state = self.lock();
        Self::check_running(&state)?;
        state.paused.insert(profile.map(str::to_ascii_lowercase).unwrap_or_else(|| "*".into()));
        self.save_paused(&state)
    }

    /// Resumes a profile (`None` = all, and the SMTPB_OPEN_PAUSED pause).
    pub fn resume(&self, profile: Option<&str>) -> Result<()> {
        let mut state = self.lock();
        Self::check_running(&state)?;
        match profile {
            Some(p) => {
                state.paused.remove(&p.to_ascii_lowercase());
            }
            None => {
                state.paused.clear();
                state.open_paused = false;
            }
        }
        self.save_paused(&state)?;
        drop(state);
        self.changed.notify_all();
        Ok(())
    }

    fn save_paused(&self, state: &Ledger) -> Result<()> {
        match &self.paused_path {
            Some(p) => fsutil::atomic_write(p, &serde_json::to_vec(&state.paused).expect("strings"), false),
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
            .filter(|e| e.record.status.state == State::Deferred && e.record.status.needs.is_some())
            .map(|e| e.record.status.id.clone())
            .collect();
        for id in waiting {
            state.set_state(&id, State::Deferred, Some(now_ms()));
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Limits were reset: messages held by them are due now.
    pub fn release_limits(&self, profile: Option<&str>) {
        let mut state = self.lock();
        let profile = profile.map(str::to_ascii_lowercase);
        state.holds.retain(|p, _| profile.as_ref().is_some_and(|q| q != p));
        let held: Vec<String> = state
            .entries
            .values()
            .filter(|e| {
                e.record.status.state == State::Deferred
                    && e.record.status.error_code == Code::Limit
                    && profile.as_ref().is_none_or(|p| *p == e.record.status.profile.to_ascii_lowercase())
            })
            .map(|e| e.record.status.id.clone())
            .collect();
        for id in held {
            state.set_state(&id, State::Deferred, Some(now_ms()));
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Tells the delivery threads to stop after their current attempt,
    /// without waiting for them.
    pub fn stop_soon(&self) {
        self.lock().stopping = true;
        self.changed.notify_all();
    }

    /// Stops delivery: no new attempt starts; attempts under way may finish
    /// until `deadline`, then `abort` ends their sessions; every delivery
    /// thread and the event thread are joined. False when the grace ran out
    /// with work in flight.
    pub fn shutdown(&self, deadline: Instant, abort: impl Fn()) -> bool {
        self.stop_soon();
        let mut in_time = true;
        {
            let mut state = self.lock();
            while state.counts[state_index(State::Sending)] > 0 {
                let now = Instant::now();
                if now >= deadline {
                    in_time = false;
                    break;
                }
                state = self.changed.wait_timeout(state, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
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
