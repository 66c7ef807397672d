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
mod group;
pub mod journal;
mod ledger;
mod purge;
mod query;
mod retry;
pub mod shared;
mod signal;
pub mod spool;
mod staging;
pub mod store;
pub mod wal;
mod workers;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::SharedClock;
use crate::error::{Code, Error, Result};
use crate::fsutil;
use crate::status::{State, Status};
use crate::text::printable;
use events::Events;
pub use group::New;
use ledger::{moved, now_ms, Id, Ledger};
pub use purge::{purgeable, PurgeHook, RetentionFn};
pub use query::{BatchCancel, BatchCounts, Counts, Cursor, Page};
pub use retry::{Attempt, AttemptFn, RetryPolicy};
pub use shared::Sharing;
use signal::Signal;
pub use spool::Record;
pub use store::Query;
use store::{Opened, Store};

/// The outbox of one client.
pub struct Outbox {
    state: Mutex<Ledger>,
    /// Wakes whoever waits for a message to change (wait, flush, shutdown).
    changed: Signal,
    /// Wakes the delivery threads: there may be work for them.
    work: Condvar,
    store: Mutex<Store>,
    /// New messages waiting for the next group commit.
    group: Mutex<Vec<group::Entry>>,
    /// Whether the store lives in memory (fixed at open).
    in_memory: bool,
    pub events: Events,
    workers: Mutex<Vec<JoinHandle<()>>>,
    paused_path: Option<PathBuf>,
    staging_path: Option<PathBuf>,
    /// Warnings from open (damage recovered past), for the host.
    warnings: Vec<String>,
    purge_hook: Mutex<Option<Arc<PurgeHook>>>,
    /// Wakes the purge thread at shutdown.
    purge_wake: (Mutex<bool>, Condvar),
    /// The time retention is measured in.
    clock: SharedClock,
    /// A client of a shared data_dir (`SMTPB_OPEN_SHARED`), see [`shared`].
    sharing: Option<Sharing>,
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
/// Whether it was written.
fn keep_or_log(written: Result<()>) -> bool {
    if let Err(e) = &written {
        log::warn!("{}", e.message());
    }
    written.is_ok()
}

impl Outbox {
    /// Opens the outbox of `data_dir` (`None` = in memory): opens the store
    /// (migrating a version-1 journal), loads what is not final, and
    /// queues again what was `sending` when the last process ended.
    pub fn open(data_dir: Option<&Path>, open_paused: bool) -> Result<Outbox> {
        Outbox::open_shared(data_dir, open_paused, None)
    }

    /// [`Outbox::open`] for a client of a shared data_dir when `sharing`
    /// is given: it joins the clients of the data_dir, and leaves messages
    /// `sending` to the delivery lease's holder, which queues again those
    /// whose client is gone.
    pub fn open_shared(data_dir: Option<&Path>, open_paused: bool, sharing: Option<Sharing>) -> Result<Outbox> {
        let Opened { mut store, active, warnings } = Store::open(data_dir)?;
        let exclusive = sharing.is_none();
        let paused_path = data_dir.map(|d| d.join("spool").join("paused.json"));
        // An exclusive client's merges under way are in staging.json; a
        // sharing client's in the store, where the lease holder ends those
        // of processes that are gone (see [`staging`]).
        let staging_file = data_dir.map(|d| d.join("spool").join("staging.json"));
        let staging_path = staging_file.clone().filter(|_| exclusive);
        let paused: BTreeSet<String> = read_set(paused_path.as_deref())?;
        // Merges that never finished (the process ended during the call):
        // the host never got their ids, so none of their mail may go out.
        // An exclusive open has no sharing client beside it: every merge
        // the store names staged ended with its process too. Nor has a
        // sharing open an exclusive client beside it: what staging.json
        // names ended with the exclusive process that wrote it.
        let mut unfinished: BTreeSet<String> = read_set(staging_file.as_deref())?;
        let exclusive_unfinished = !unfinished.is_empty();
        let shared_unfinished: Vec<String> =
            if exclusive { store.staged()?.into_iter().map(|m| m.batch_id).collect() } else { Vec::new() };
        unfinished.extend(shared_unfinished.iter().cloned());
        let mut state = Ledger::default();
        state.paused = paused;
        state.open_paused = open_paused;
        let mut all_cancelled = true;
        for mut record in active {
            let in_unfinished_merge = record.status.batch_id.as_ref().is_some_and(|b| unfinished.contains(b));
            if in_unfinished_merge {
                record = staging::cancelled_unfinished(record);
                all_cancelled &= keep_or_log(store.update(&record));
            }
            if record.status.state == State::Sending && exclusive {
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
            changed: Signal::default(),
            work: Condvar::new(),
            in_memory: store.in_memory(),
            store: Mutex::new(store),
            group: Mutex::default(),
            events: Events::new(),
            workers: Mutex::new(Vec::new()),
            paused_path,
            staging_path,
            warnings,
            purge_hook: Mutex::new(None),
            purge_wake: (Mutex::new(false), Condvar::new()),
            clock: crate::clock::system(),
            sharing,
        };
        if data_dir.is_some() {
            outbox.join()?;
        }
        // Forgotten once cancelled; a cancellation not written (a full
        // disk) is done again by the next open.
        if !unfinished.is_empty() {
            let staging = {
                let mut state = outbox.lock();
                if !all_cancelled {
                    state.staging.extend(unfinished);
                }
                state.staging.clone()
            };
            keep_or_log(outbox.save_staging(&staging));
            if let (false, true, true, Some(file)) = (exclusive, exclusive_unfinished, all_cancelled, &staging_file) {
                keep_or_log(fsutil::atomic_write(file, b"[]", false));
            }
            for batch in shared_unfinished.iter().filter(|_| all_cancelled) {
                keep_or_log(outbox.store().unstage(batch));
            }
        }
        Ok(outbox)
    }

    /// The outbox, measuring retention with `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Outbox {
        self.clock = clock;
        self
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

    fn check_running(state: &Ledger) -> Result<()> {
        if state.stopping {
            Err(Error::state("the client is shut down"))
        } else {
            Ok(())
        }
    }

    /// Waits until message `id` is final; its status, or
    /// `SMTPB_ERR_TIMEOUT`. `timeout_ms` 0 = do not wait, `u32::MAX` = no
    /// limit.
    pub fn wait(&self, id: &str, timeout_ms: u32) -> Result<Status> {
        let deadline = (timeout_ms != u32::MAX).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        self.catch_up();
        let mut state = self.lock();
        loop {
            Self::check_running(&state)?;
            let record = self.record(&state, id)?;
            if record.status.state.is_final() {
                return Ok(record.status);
            }
            state = self.wait_until(state, deadline, || format!("message {id} is not final yet"))?;
        }
    }

    /// Waits until nothing is `queued` (in a profile not paused) or
    /// `sending`.
    pub fn flush(&self, timeout_ms: u32) -> Result<()> {
        let deadline = (timeout_ms != u32::MAX).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        self.catch_up();
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
            None => Ok(self.changed.wait(state)),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(Error::new(Code::Timeout, what()));
                }
                Ok(self.changed.wait_timeout(state, d - now).0)
            }
        }
    }

    /// Cancels a `queued` or `deferred` message.
    pub fn cancel(&self, id: &str) -> Result<()> {
        self.catch_up();
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

    /// Cancels what it can of a batch.
    pub fn batch_cancel(&self, batch_id: &str) -> Result<BatchCancel> {
        self.catch_up();
        Self::check_running(&self.lock())?;
        let members = self.members(batch_id)?;
        if members.is_empty() {
            return Err(Error::not_found(format!("no batch with id \"{}\"", printable(batch_id))));
        }
        let mut state = self.lock();
        let mut done = BatchCancel::default();
        for (id, _) in members {
            let Ok(record) = self.record(&state, &id) else { continue };
            match record.status.state {
                State::Queued | State::Deferred => match self.commit(&mut state, moved(record, State::Cancelled, None))
                {
                    Ok(()) => done.cancelled += 1,
                    // Another client took it meanwhile: counted as it is now.
                    Err(e) if e.code() == Code::State => match self.record(&state, &id).map(|r| r.status.state) {
                        Ok(State::Sending) => done.sending += 1,
                        Ok(State::Sent) => done.sent += 1,
                        _ => {}
                    },
                    Err(e) => return Err(e),
                },
                State::Sending => done.sending += 1,
                State::Sent => done.sent += 1,
                _ => {}
            }
        }
        drop(state);
        self.notify();
        Ok(done)
    }

    /// `failed` → `queued`; `deferred` → due now.
    pub fn retry(&self, id: &str) -> Result<()> {
        self.catch_up();
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

    /// Pauses delivery of a profile (`None` = all); persisted. When the
    /// pause cannot be saved, nothing changes.
    pub fn pause(&self, profile: Option<&str>) -> Result<()> {
        self.catch_up();
        let mut state = self.lock();
        Self::check_running(&state)?;
        let mut paused = state.paused.clone();
        paused.insert(profile.map(str::to_ascii_lowercase).unwrap_or_else(|| "*".into()));
        self.save_paused(&paused)?;
        state.paused = paused;
        drop(state);
        // Another client's delivery sees it at its next catch-up.
        self.paused_written();
        Ok(())
    }

    /// Resumes a profile (`None` = all, and the SMTPB_OPEN_PAUSED pause).
    /// When the change cannot be saved, nothing changes.
    pub fn resume(&self, profile: Option<&str>) -> Result<()> {
        self.catch_up();
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
            self.paused_written();
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
        let waiting: Vec<Id> = state.entries().filter(|(_, e)| e.needs_credentials).map(|(id, _)| id.clone()).collect();
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
        let held: Vec<Id> = state
            .entries()
            .filter(|(_, e)| e.limit.is_some() && profile.as_deref().is_none_or(|p| p == &*e.profile))
            .map(|(id, _)| id.clone())
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
                state = self.changed.wait_timeout(state, deadline - now).0;
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
        self.leave();
        self.events.stop();
        in_time
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: State) -> Record {
        Record::for_test(state)
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

    fn ids(page: &Page<Status>) -> Vec<String> {
        page.items.iter().map(|s| s.id.clone()).collect()
    }

    fn query(states: &[State], limit: usize, cursor: Option<Cursor>) -> Query {
        Query { states: states.to_vec(), limit, cursor, ..Query::default() }
    }

    #[test]
    fn a_send_of_an_in_memory_client_is_seen_everywhere_before_it_is_stored() {
        let outbox = Outbox::open(None, true).unwrap();
        let (older, _) = outbox.add(record(State::Sent), Vec::new()).unwrap();
        let mut sending = record(State::Sending);
        sending.idempotency_key = Some("invoice-7".into());
        let (id, bytes) = outbox.add(sending.clone(), b"the bytes".to_vec()).unwrap();
        assert!(outbox.store().get(&id).unwrap().is_none(), "not written before its outcome");

        let counts = outbox.counts().unwrap().states;
        assert_eq!((counts.sending, counts.sent), (1, 1));
        assert_eq!(outbox.status(&id).unwrap().state, State::Sending);
        assert_eq!(outbox.list(Some(State::Sending)).unwrap().len(), 1);
        assert_eq!(outbox.list(None).unwrap().len(), 2);
        // Newest first, one a page: the unstored one, then the stored one.
        let first = outbox.query(&query(&[], 1, None)).unwrap();
        assert_eq!(ids(&first), vec![id.clone()]);
        let cursor = first.next_cursor.clone().unwrap();
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor.clone()));
        let second = outbox.query(&query(&[], 1, Some(cursor))).unwrap();
        assert_eq!(ids(&second), vec![older.clone()]);
        assert_eq!(second.next_cursor, None);
        assert_eq!(ids(&outbox.query(&query(&[State::Sent], 100, None)).unwrap()), vec![older.clone()]);
        assert_eq!(ids(&outbox.query(&query(&[State::Sending], 100, None)).unwrap()), vec![id.clone()]);
        // Its idempotency key is taken while it is in flight.
        let mut again = record(State::Sending);
        again.idempotency_key = Some("invoice-7".into());
        assert_eq!(outbox.add(again, b"x".to_vec()).unwrap().0, id);

        // Failed: written with its bytes, for smtpb_retry.
        let failed = Attempt::failed(Error::new(Code::Rejected, "550 no"));
        let status = outbox.finish_now(&id, failed, bytes).unwrap();
        assert_eq!(status.state, State::Failed);
        assert_eq!(outbox.store().body(&id).unwrap().as_deref(), Some(&b"the bytes"[..]));
        assert_eq!(outbox.store().get(&id).unwrap().unwrap().status.state, State::Failed);
        let counts = outbox.counts().unwrap().states;
        assert_eq!((counts.sending, counts.failed), (0, 1));
        assert_eq!(ids(&outbox.query(&Query::default()).unwrap()), vec![id.clone(), older]);
        outbox.retry(&id).unwrap();
        assert_eq!(outbox.status(&id).unwrap().state, State::Queued);
    }

    #[test]
    fn final_records_gathered_in_memory_are_seen_by_every_read() {
        let outbox = Outbox::open(None, true).unwrap();
        let mut ids = Vec::new();
        // Past one transaction's worth, and a few gathered still.
        for n in 0..(store::WRITE_BEHIND * 2 + 5) {
            let (id, bytes) = outbox.add(record(State::Sending), format!("message {n}").into_bytes()).unwrap();
            let outcome = if n % 2 == 0 { sent() } else { Attempt::failed(Error::new(Code::Rejected, "550 no")) };
            outbox.finish_now(&id, outcome, bytes).unwrap();
            ids.push(id);
        }
        let counts = outbox.counts().unwrap().states;
        assert_eq!(counts.sent, store::WRITE_BEHIND as u64 + 3);
        assert_eq!(counts.failed, store::WRITE_BEHIND as u64 + 2);
        let last = ids.last().unwrap();
        assert_eq!(outbox.store().body(last).unwrap(), None, "sent: its bytes are not kept");
        let failed = &ids[ids.len() - 2];
        assert_eq!(outbox.store().body(failed).unwrap(), Some(format!("message {}", ids.len() - 2).into_bytes()));
        assert_eq!(outbox.list(None).unwrap().len(), ids.len());
        assert_eq!(outbox.status(last).unwrap().state, State::Sent);
        assert_eq!(outbox.status(failed).unwrap().state, State::Failed);
    }

    #[test]
    fn failed_sends_gathered_in_memory_are_written_once_their_bytes_reach_4_mib() {
        let outbox = Outbox::open(None, true).unwrap();
        let failed = || Attempt::failed(Error::new(Code::Rejected, "550 no"));
        let (first, bytes) = outbox.add(record(State::Sending), vec![b'a'; 3 << 20]).unwrap();
        outbox.finish_now(&first, failed(), bytes).unwrap();
        assert_eq!(outbox.store().gathered(), 1);
        let (second, bytes) = outbox.add(record(State::Sending), vec![b'b'; 1 << 20]).unwrap();
        outbox.finish_now(&second, failed(), bytes).unwrap();
        assert_eq!(outbox.store().gathered(), 0, "4 MiB gathered: written");
        assert_eq!(outbox.store().body(&second).unwrap().map(|b| b.len()), Some(1 << 20));
    }

    #[test]
    fn an_in_memory_client_keeps_the_newest_final_statuses_and_tells_the_hook_the_rest() {
        let outbox = Outbox::open(None, true).unwrap();
        let told = Arc::new(Mutex::new(Vec::new()));
        let sink = told.clone();
        outbox.set_purge_hook(Arc::new(move |ids: &[String]| sink.lock().unwrap().extend_from_slice(ids)));
        let (queued, _) = outbox.add(record(State::Queued), b"bytes".to_vec()).unwrap();
        let ids: Vec<String> = (0..store::MEMORY_KEPT + 100)
            .map(|_| {
                let (id, bytes) = outbox.add(record(State::Sending), b"x".to_vec()).unwrap();
                outbox.finish_now(&id, sent(), bytes).unwrap();
                id
            })
            .collect();
        let counts = outbox.counts().unwrap().states;
        assert_eq!((counts.sent, counts.queued), (store::MEMORY_KEPT as u64, 1));
        let (forgotten, kept) = ids.split_at(100);
        assert!(forgotten.iter().all(|id| outbox.status(id).unwrap_err().code() == Code::NotFound));
        assert!(kept.iter().all(|id| outbox.status(id).is_ok()));
        assert_eq!(outbox.status(&queued).unwrap().state, State::Queued, "what is not final is never forgotten");
        // Told in the same order, up to the last write's gathered records.
        let told = told.lock().unwrap().clone();
        assert!(!told.is_empty() && told.len() <= 100 && told[..] == forgotten[..told.len()], "{}", told.len());
    }

    #[test]
    fn a_sent_send_of_an_in_memory_client_is_stored_once_without_its_bytes() {
        let outbox = Outbox::open(None, true).unwrap();
        let (id, bytes) = outbox.add(record(State::Sending), b"the bytes".to_vec()).unwrap();
        assert_eq!(outbox.finish_now(&id, sent(), bytes).unwrap().state, State::Sent);
        assert!(outbox.store().body(&id).unwrap().is_none());
        assert_eq!(outbox.store().get(&id).unwrap().unwrap().status.state, State::Sent);
        let counts = outbox.counts().unwrap().states;
        assert_eq!((counts.sending, counts.sent), (0, 1));
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
        assert_eq!(outbox.finish_now(&id, sent(), bytes).unwrap().state, State::Sent);
        assert!(outbox.store().body(&id).unwrap().is_none());
        drop(outbox);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn final_statuses_are_kept_for_their_retention_by_the_clock_then_purged() {
        const DAY: Duration = Duration::from_secs(86_400);
        let clock = crate::clock::TestClock::new();
        let outbox = Outbox::open(None, true).unwrap().with_clock(clock.clone());
        let [sent, cancelled, failed, queued] = [State::Sent, State::Cancelled, State::Failed, State::Queued]
            .map(|s| outbox.add(record(s), Vec::new()).unwrap().0);
        let kept = |id: &String| outbox.status(id).is_ok();
        clock.advance(30 * DAY - Duration::from_secs(1));
        outbox.purge_expired((30, 90));
        assert!([&sent, &cancelled, &failed, &queued].into_iter().all(kept), "30 days are not over yet");
        clock.advance(Duration::from_secs(2));
        outbox.purge_expired((30, 90));
        assert!(!kept(&sent) && !kept(&cancelled), "sent and cancelled: 30 days");
        assert!(kept(&failed) && kept(&queued));
        clock.advance(60 * DAY);
        outbox.purge_expired((30, 0));
        assert!(kept(&failed), "0 days: failed statuses are kept for ever");
        outbox.purge_expired((30, 90));
        assert!(!kept(&failed), "failed: 90 days");
        assert!(kept(&queued), "a message that is not final is never purged");
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
        assert_eq!(outbox.status(&queued).unwrap().state, State::Queued);
        assert_eq!(outbox.status(&sent[0]).unwrap_err().code(), Code::NotFound);
    }
}
