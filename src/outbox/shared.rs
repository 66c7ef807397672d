//! One outbox for several processes (ABI §17): the part of a sharing
//! client that keeps up with the others.
//!
//! A sharing client runs one more thread, which every [`SYNC_MS`] reads the
//! store's change log (see [`super::store`]'s `shared`) past the last row
//! it saw: the records other clients wrote replace this client's view of
//! them (so `smtpb_status`, `smtpb_wait`, flush and the delivery threads
//! see them within that time), and their state changes become events for
//! the client that queued the message (or for every message, with
//! `smtpb_set_event_callback_all`). Calls that read or change a message
//! catch up first, so they see every change committed before they began.
//!
//! Every [`HEARTBEAT_MS`] the thread renews the client's row and, unless
//! the client is submit-only, takes or renews the delivery lease. Only the
//! lease holder's delivery threads take queued mail, and each claim
//! (queued/deferred → sending) is one conditional write that checks the
//! lease and the state, so no message is claimed twice. A holder gone
//! (its process ended: its heartbeat is 3 s old, or
//! its pid is not alive) is replaced at the next heartbeat of a client
//! that may deliver: within 5 s. The new holder queues again, as
//! `possible_duplicate`, the messages left `sending` by clients that are
//! gone (the documented rule after a crash past the final dot); a message
//! a live client is sending is left to it.
//!
//! Every write of a sharing client is conditional on the state its view
//! holds: a write that finds the message changed by another client
//! changes nothing and is `SMTPB_ERR_STATE` naming the state it is in.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::ledger::{moved, now_ms, Id, Ledger};
use super::store::{changed_elsewhere, Holder, Member, Store};
use super::workers::state_event;
use super::{Outbox, Record};
use crate::error::{Code, Error, Result};
use crate::status::State;

/// How often (ms) a sharing client reads the change log.
pub(crate) const SYNC_MS: u64 = 200;

/// How often (ms) a sharing client renews its heartbeat and the lease.
pub(crate) const HEARTBEAT_MS: u64 = 1000;

/// What a sharing client is, for its outbox.
pub struct Sharing {
    pub me: Member,
    /// Not submit-only: it may take the delivery lease.
    pub may_deliver: bool,
    holds_lease: AtomicBool,
    /// `smtpb_set_event_callback_all`: events of every message.
    all_events: AtomicBool,
    /// The last row of the change log this client has applied.
    seen: std::sync::Mutex<i64>,
    /// The stamp of `paused.json` this client read last.
    paused_stamp: std::sync::Mutex<Option<(SystemTime, u64)>>,
}

impl Sharing {
    /// A new sharing client of this process.
    pub fn new(may_deliver: bool) -> Sharing {
        Sharing {
            me: Member {
                id: crate::status::new_id(),
                pid: std::process::id(),
                host: crate::host::host_name(),
                user: crate::host::user_name(),
            },
            may_deliver,
            holds_lease: AtomicBool::new(false),
            all_events: AtomicBool::new(false),
            seen: std::sync::Mutex::new(0),
            paused_stamp: std::sync::Mutex::new(None),
        }
    }

    pub fn holds_lease(&self) -> bool {
        self.holds_lease.load(Ordering::Acquire)
    }
}

/// Whether `record` belongs to a batch whose merge is under way.
fn staged_batch(store: &Store, record: &Record) -> Result<bool> {
    record.status.batch_id.as_deref().map_or(Ok(false), |b| store.is_staged(b))
}

impl Outbox {
    /// Whether this client's delivery threads may take queued mail now.
    pub(super) fn may_deliver_now(&self) -> bool {
        self.sharing.as_ref().is_none_or(|s| s.holds_lease())
    }

    /// `smtpb_set_event_callback_all` (true) or `smtpb_set_event_callback`.
    pub fn set_all_events(&self, all: bool) {
        if let Some(s) = &self.sharing {
            s.all_events.store(all, Ordering::Release);
        }
    }

    /// Whether this client's host hears of `record`'s changes.
    fn wants_events_of(&self, record: &Record) -> bool {
        match &self.sharing {
            None => true,
            Some(s) => {
                record.origin.is_none()
                    || record.origin.as_deref() == Some(&s.me.id)
                    || s.all_events.load(Ordering::Acquire)
            }
        }
    }

    /// Tells the host of a change this client made to `record`.
    pub(super) fn emit_state(&self, record: &Record) {
        if self.wants_events_of(record) {
            self.events.emit(state_event(record));
        }
    }

    /// The live holder of the delivery lease of `data_dir`'s outbox, read
    /// without opening the outbox (see [`super::store::peek_lease_holder`]).
    pub fn peek_lease_holder(data_dir: &std::path::Path) -> Result<Option<Holder>> {
        super::store::peek_lease_holder(&data_dir.join("spool").join("outbox.db"), now_ms())
    }

    /// The holder of the delivery lease (`None` when nobody delivers, or
    /// the client is not sharing: then this client delivers).
    pub fn lease_holder(&self) -> Result<Option<Holder>> {
        match &self.sharing {
            None => Ok(None),
            Some(_) => self.store().lease_holder(now_ms()),
        }
    }

    /// Writes `record`, which was in state `prior` (`None`: written
    /// whatever its state) in this client's view. A sharing client marks
    /// itself the writer and writes only if the store still has `prior`
    /// (with `lease`, only while it holds the lease); otherwise nothing
    /// is written and the error names the state the message is in.
    pub(super) fn write_record(
        &self,
        store: &mut Store,
        record: &mut Record,
        body: Option<&[u8]>,
        prior: Option<State>,
        lease: bool,
    ) -> Result<()> {
        let Some(s) = &self.sharing else { return store.update_with_body(record, body) };
        record.writer = Some(s.me.id.clone());
        let Some(prior) = prior else { return store.update_with_body(record, body) };
        let lease_of = lease.then_some(s.me.id.as_str());
        if store.update_if(record, body, prior, lease_of)? {
            return Ok(());
        }
        let id = &record.status.id;
        match store.get(id)? {
            Some(now) if now.status.state == prior && lease && staged_batch(store, &now)? => {
                Err(Error::state(format!("message {id} belongs to a merge that has not finished yet")))
            }
            Some(now) if now.status.state == prior && lease => {
                s.holds_lease.store(false, Ordering::Release);
                Err(Error::state("this client no longer holds the delivery lease"))
            }
            Some(now) => Err(changed_elsewhere(id, now.status.state)),
            None => Err(Outbox::not_found(id)),
        }
    }

    /// Marks a new record as queued by this client.
    pub(super) fn stamp_new(&self, record: &mut Record) {
        if let Some(s) = &self.sharing {
            record.origin = Some(s.me.id.clone());
            record.writer = Some(s.me.id.clone());
        }
    }

    /// Puts the store's record of `id` in this client's view (another
    /// client changed it).
    pub(super) fn refresh(&self, state: &mut Ledger, id: &str) {
        if state.unrecorded.contains_key(id) {
            return;
        }
        match self.store().get(id) {
            Ok(Some(record)) => state.replace(record),
            Ok(None) => state.forget(id),
            Err(e) => log::warn!("{}", e.message()),
        }
    }

    /// Brings this client's view up to date with the changes other
    /// clients made (a no-op for a client that does not share).
    pub fn catch_up(&self) {
        let Some(s) = &self.sharing else { return };
        let mut state = self.lock();
        let mut seen = s.seen.lock().unwrap_or_else(|e| e.into_inner());
        let read = self.store().changes_since(*seen);
        let (changes, missed) = match read {
            Ok(read) => read,
            Err(e) => {
                log::warn!("{}", e.message());
                return;
            }
        };
        let mut changed = false;
        if missed {
            // Rows were pruned before this client read them: read all.
            self.reload(&mut state);
            changed = true;
        }
        for change in &changes {
            *seen = change.seq;
            let record = match self.store().get(&change.id) {
                Ok(Some(record)) => record,
                Ok(None) => {
                    // Purged since: gone from the view too.
                    if !state.unrecorded.contains_key(&change.id) && !state.unstored.contains(&change.id) {
                        state.forget(&change.id);
                    }
                    changed = true;
                    continue;
                }
                Err(e) => {
                    log::warn!("{}", e.message());
                    continue;
                }
            };
            if change.writer.as_deref() == Some(&s.me.id) {
                continue;
            }
            changed = true;
            if !state.unrecorded.contains_key(&change.id) && !state.unstored.contains(&change.id) {
                state.replace(record.clone());
            }
            let ours = change.origin.as_deref() == Some(&s.me.id);
            if ours || s.all_events.load(Ordering::Acquire) {
                let mut event_of = record;
                event_of.status.state = super::store::state_of(change.state).unwrap_or(event_of.status.state);
                self.events.emit(state_event(&event_of));
            }
        }
        drop(seen);
        // Read after the log: every batch a message read above was staged
        // in is still staged now, unless it was released meanwhile.
        changed |= self.sync_staging(&mut state);
        self.reload_paused(&mut state, s);
        drop(state);
        if changed {
            self.notify();
        }
    }

    /// Reads every message not final again (after a gap in the log).
    fn reload(&self, state: &mut Ledger) {
        match self.store().reload_active() {
            Ok(active) => {
                let live: BTreeSet<String> = active.iter().map(|r| r.status.id.clone()).collect();
                let stale: Vec<Id> =
                    state.entries().map(|(id, _)| id).filter(|id| !live.contains(&***id)).cloned().collect();
                for id in stale {
                    self.refresh(state, &id);
                }
                for record in active {
                    if !state.unrecorded.contains_key(&record.status.id) {
                        state.replace(record);
                    }
                }
            }
            Err(e) => log::warn!("{}", e.message()),
        }
    }

    /// Reads `paused.json` again when another client changed it.
    fn reload_paused(&self, state: &mut Ledger, s: &Sharing) {
        let Some(path) = &self.paused_path else { return };
        let stamp = crate::fsutil::stamp(path);
        let mut last = s.paused_stamp.lock().unwrap_or_else(|e| e.into_inner());
        if *last == stamp {
            return;
        }
        match super::read_set(Some(path)) {
            Ok(paused) => {
                state.paused = paused;
                *last = stamp;
            }
            Err(e) => log::warn!("{}", e.message()),
        }
    }

    /// Notes the pause file this client wrote itself.
    pub(super) fn paused_written(&self) {
        if let (Some(s), Some(path)) = (&self.sharing, &self.paused_path) {
            *s.paused_stamp.lock().unwrap_or_else(|e| e.into_inner()) = crate::fsutil::stamp(path);
        }
    }

    /// Joins the clients of the data_dir and reads the outbox as it is
    /// now (at open).
    pub(super) fn join(&self) -> Result<()> {
        let Some(s) = &self.sharing else {
            return self.store().forget_sharing();
        };
        let mut state = self.lock();
        {
            let store = self.store();
            store.heartbeat(&s.me, now_ms())?;
            *s.seen.lock().unwrap_or_else(|e| e.into_inner()) = store.last_change()?;
        }
        self.reload(&mut state);
        self.sync_staging(&mut state);
        self.reload_paused(&mut state, s);
        Ok(())
    }

    /// Starts the thread that keeps a sharing client up to date and
    /// holds the lease.
    pub(super) fn start_sharing(self: &Arc<Self>) -> Result<Option<std::thread::JoinHandle<()>>> {
        if self.sharing.is_none() {
            return Ok(None);
        }
        let outbox = self.clone();
        std::thread::Builder::new()
            .name("smtpbridge-shared".into())
            .spawn(move || outbox.share_loop())
            .map(Some)
            .map_err(|e| Error::internal(format!("cannot start the thread of the shared outbox: {e}")))
    }

    fn share_loop(&self) {
        let Some(s) = &self.sharing else { return };
        let mut next_beat = Instant::now();
        loop {
            if self.lock().stopping {
                break;
            }
            self.catch_up();
            if Instant::now() >= next_beat {
                next_beat = Instant::now() + Duration::from_millis(HEARTBEAT_MS);
                self.beat(s);
            }
            let (lock, wake) = &self.purge_wake;
            let stop = lock.lock().unwrap_or_else(|e| e.into_inner());
            if *stop {
                break;
            }
            let _ = wake.wait_timeout(stop, Duration::from_millis(SYNC_MS));
        }
        s.holds_lease.store(false, Ordering::Release);
    }

    /// The heartbeat: the client's row, then the lease.
    fn beat(&self, s: &Sharing) {
        let now = now_ms();
        if let Err(e) = self.store().heartbeat(&s.me, now) {
            log::warn!("{}", e.message());
        }
        if !s.may_deliver {
            return;
        }
        let leased = self.store().lease(&s.me, now);
        match leased {
            Ok((held, took_from)) => {
                let was = s.holds_lease.swap(held, Ordering::AcqRel);
                if held && !was {
                    match took_from {
                        Some(h) => log::info!(
                            "this client delivers the outbox now (the delivery lease of pid {}, host {}, user {} \
                             was taken over: that client is gone)",
                            h.member.pid,
                            h.member.host,
                            h.member.user
                        ),
                        None => log::info!("this client delivers the outbox now (it holds the delivery lease)"),
                    }
                } else if was && !held {
                    log::warn!("this client lost the delivery lease (its heartbeat was late); another delivers");
                }
                if held {
                    self.requeue_orphans(now);
                    self.cancel_dead_merges(now);
                    if !was {
                        self.notify();
                    }
                }
            }
            Err(e) => {
                s.holds_lease.store(false, Ordering::Release);
                log::warn!("{}", e.message());
            }
        }
    }

    /// Queues again, as possible duplicates, the messages left `sending`
    /// by clients that are gone.
    fn requeue_orphans(&self, now: i64) {
        let found = {
            let store = self.store();
            store.sending().and_then(|sending| Ok((sending, store.live_clients(now)?)))
        };
        let (sending, live) = match found {
            Ok(found) => found,
            Err(e) => {
                log::warn!("{}", e.message());
                return;
            }
        };
        let orphans: Vec<Record> =
            sending.into_iter().filter(|r| r.writer.as_ref().is_none_or(|w| !live.contains(w))).collect();
        if orphans.is_empty() {
            return;
        }
        let mut state = self.lock();
        for record in orphans {
            let id = record.status.id.clone();
            let mut next = moved(record, State::Queued, None);
            next.status.possible_duplicate = true;
            log::warn!("message {id} was being sent by a client that is gone: it is queued again (possible duplicate)");
            let mut store = self.store();
            let written = self.write_record(&mut store, &mut next, None, Some(State::Sending), true);
            drop(store);
            match written {
                Ok(()) => {
                    self.emit_state(&next);
                    state.replace(next);
                }
                Err(e) if e.code() == Code::State || e.code() == Code::NotFound => self.refresh(&mut state, &id),
                Err(e) => log::warn!("{}", e.message()),
            }
        }
        drop(state);
        self.notify();
    }

    /// Leaves the clients of the data_dir (at shutdown): the lease goes
    /// at once, for another client to take.
    pub(super) fn leave(&self) {
        if let Some(s) = &self.sharing {
            s.holds_lease.store(false, Ordering::Release);
            if let Err(e) = self.store().leave(&s.me) {
                log::warn!("{}", e.message());
            }
        }
    }
}
