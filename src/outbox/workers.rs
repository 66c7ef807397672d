//! The delivery threads: take the next due message, run its attempt,
//! record the outcome.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::events::Event;
use super::ledger::{moved, now_ms, time_to_ms, Bytes, Id, Ledger};
use super::{Attempt, AttemptFn, Outbox, Record, RetentionFn, RetryPolicy};
use crate::error::{Code, Error, Result};
use crate::status::{Refusal, ServerReply, State, Status};

/// The event of a state change.
pub(super) fn state_event(record: &Record) -> Event {
    let s = &record.status;
    Event::State {
        attempts: s.attempts,
        batch_id: s.batch_id.clone(),
        error: s.error.clone(),
        error_code: s.error_code,
        id: s.id.clone(),
        possible_duplicate: s.possible_duplicate,
        reference: s.reference.clone(),
        rejected_count: s.rejected.len(),
        state: s.state,
    }
}

impl Outbox {
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
        workers.extend(self.start_sharing()?);
        let outbox = self.clone();
        let handle = std::thread::Builder::new()
            .name("smtpbridge-purge".into())
            .spawn(move || outbox.purge_loop(retention.as_ref()))
            .map_err(|e| Error::internal(format!("cannot start the purge thread: {e}")))?;
        workers.push(handle);
        Ok(())
    }

    /// Applies the outcome of an attempt made outside the delivery threads
    /// (`smtpb_send`): the message goes `sent` or `failed`, never deferred.
    /// `bytes` are the message's, written with a failure when
    /// [`Outbox::add`] did not write them. Returns the message's status.
    pub fn finish_now(&self, id: &str, outcome: Attempt, bytes: Arc<Vec<u8>>) -> Result<Status> {
        let mut state = self.lock();
        let policy = RetryPolicy { initial_ms: 0, max_ms: 0, max_age_ms: 0 };
        let body = self.store().in_memory().then_some(bytes);
        let applied = self.apply(&mut state, id, outcome, &policy, false, body);
        // The message is no longer `sending`: flush and shutdown may be
        // waiting for that. The delivery threads have nothing new to do.
        self.changed.notify_all();
        match applied? {
            Some(record) => Ok(record.status),
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
    pub(super) fn apply(
        &self,
        state: &mut Ledger,
        id: &str,
        outcome: Attempt,
        policy: &RetryPolicy,
        retry: bool,
        body: Option<Arc<Vec<u8>>>,
    ) -> Result<Option<Record>> {
        let Some(mut record) = self.active_record(state, id)? else { return Ok(None) };
        let s = &mut record.status;
        let profile = s.profile.clone();
        let mut credential_user = record.user.clone();
        let (next_state, due) = match outcome {
            Attempt::Sent { delivery, archive } => {
                s.sent_at = Some(SystemTime::now());
                s.reply = delivery.reply.as_ref().map(ServerReply::from);
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
            Attempt::Failed { failure: f, credential } => {
                s.advice = f.advice.clone();
                // A refusal of the library's own names no transport.
                if !f.transport.is_empty() {
                    s.reply = f.reply.as_ref().map(ServerReply::from);
                    s.transport = Some(f.transport.to_string());
                    s.http_status = f.http_status;
                    s.possible_duplicate |= f.possible_duplicate;
                    s.rejected = f
                        .rejected
                        .iter()
                        .map(|(address, reply)| Refusal::reply(address.clone(), reply.into()))
                        .collect();
                }
                let not_before = f.retry_after_ms.map(|ms| now_ms().saturating_add(ms.min(i64::MAX as u64) as i64));
                s.error_code = f.code;
                s.error = Some(f.message.clone());
                s.needs = f.token_refused().then(|| "credentials".to_string());
                if f.token_refused() {
                    credential_user = credential;
                }
                let transient = f.is_transient();
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
            // Changed by another client (queued again by a new lease
            // holder that took this client for gone): its record stands.
            if !matches!(e.code(), Code::State | Code::NotFound) {
                self.hold_unrecorded(state, record, body, &e);
            }
            return Err(e);
        }
        if oauth_needed && state.credentials_noticed.insert(credential_user.clone()) {
            self.events.emit(Event::CredentialsNeeded { profile, user_id: credential_user });
        }
        Ok(Some(record))
    }

    /// Keeps an outcome the store could not record, to write it later; the
    /// message's status says what happened.
    pub(super) fn hold_unrecorded(&self, state: &mut Ledger, record: Record, body: Option<Arc<Vec<u8>>>, e: &Error) {
        let id = record.status.id.clone();
        if let Some(mut live) = state.held(&id).cloned() {
            live.status.possible_duplicate = true;
            live.status.error = Some(format!(
                "the attempt ended ({}), but the outbox could not record it: {}; until it can, the message \
                 stays sending and, should the process end first, is sent again as a possible duplicate",
                record.status.state.name(),
                e.message()
            ));
            state.replace_ahead(live);
            state.unrecorded.insert(id, (record, body));
        }
    }

    /// Tries again to write the outcomes the store could not take.
    pub(super) fn record_unrecorded(&self, state: &mut Ledger) {
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
    pub(super) fn commit(&self, state: &mut Ledger, record: Record) -> Result<()> {
        self.commit_with_body(state, record, None)
    }

    /// [`Outbox::commit`], writing the message's bytes too when given.
    pub(super) fn commit_with_body(&self, state: &mut Ledger, mut record: Record, body: Option<&[u8]>) -> Result<()> {
        let id = record.status.id.clone();
        if state.unstored.contains(&id) {
            let bytes = if record.body_dropped { &[][..] } else { body.unwrap_or(&[]) };
            self.store().insert(&record, bytes)?;
            state.unstored.remove(&id);
        } else {
            let prior = state.entry(&id).map(|e| e.state);
            let written = self.write_record(&mut self.store(), &mut record, body, prior, false);
            if let Err(e) = written {
                if matches!(e.code(), Code::State | Code::NotFound) {
                    self.refresh(state, &id);
                }
                return Err(e);
            }
        }
        self.emit_state(&record);
        state.replace(record);
        if self.in_memory {
            self.tell_forgotten();
        }
        Ok(())
    }

    /// Tells the purge hook the final statuses an in-memory store forgot
    /// (see [`super::store::MEMORY_KEPT`]): their transcripts go with them.
    fn tell_forgotten(&self) {
        let forgotten = self.store().take_forgotten();
        if forgotten.is_empty() {
            return;
        }
        if let Some(hook) = self.purge_hook.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            hook(&forgotten);
        }
    }

    /// The loop of one delivery thread.
    pub(super) fn deliver_loop(&self, attempt: &AttemptFn) {
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
                            Attempt::failed(Error::internal("internal error while delivering this message")),
                            RetryPolicy::default(),
                        )
                    }),
                Err(error) => (Attempt::failed(error), RetryPolicy::default()),
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
    pub(super) fn take_next(&self) -> Option<Record> {
        let mut state = self.lock();
        loop {
            if state.stopping {
                return None;
            }
            if !self.may_deliver_now() {
                // A sharing client that does not hold the delivery lease.
                state = self.work.wait_timeout(state, Duration::from_secs(1)).unwrap_or_else(|e| e.into_inner()).0;
                continue;
            }
            if !state.unrecorded.is_empty() {
                let before = state.unrecorded.len();
                self.record_unrecorded(&mut state);
                if state.unrecorded.len() < before {
                    self.notify();
                }
            }
            let now = now_ms();
            let mut chosen: Option<(i64, Id)> = None;
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
                        let entry = state.entry(id);
                        if entry
                            .is_some_and(|e| e.state == State::Queued || e.limit.as_deref() != Some(reason.as_str()))
                        {
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
                let record = match self.active_record(&state, &id) {
                    Ok(Some(record)) => record,
                    Ok(None) => continue,
                    Err(e) => {
                        log::warn!("{}", e.message());
                        state.reschedule(&id, until);
                        continue;
                    }
                };
                let mut record = moved(record, State::Deferred, Some(until));
                record.status.error_code = Code::Limit;
                record.status.error = Some(reason);
                if self.commit(&mut state, record).is_err() {
                    // Not written: hold it in memory only; tried again later.
                    state.reschedule(&id, until);
                }
            }
            if let Some((_, id)) = chosen {
                let taken = match self.active_record(&state, &id) {
                    Ok(Some(record)) => record,
                    Ok(None) => continue,
                    Err(e) if e.code() == Code::NotFound => {
                        // Purged by another client meanwhile.
                        self.refresh(&mut state, &id);
                        continue;
                    }
                    Err(e) => {
                        // Not readable now: tried again later.
                        log::warn!("{}", e.message());
                        state.reschedule(&id, now + 1000);
                        continue;
                    }
                };
                let prior = taken.status.state;
                let mut record = moved(taken.clone(), State::Sending, None);
                record.status.attempts += 1;
                let (written, full) = {
                    let mut store = self.store();
                    let written = self.write_record(&mut store, &mut record, None, Some(prior), true);
                    let full = written.is_err() && store.disk_full();
                    (written, full)
                };
                if matches!(&written, Err(e) if matches!(e.code(), Code::State | Code::NotFound)) {
                    // Cancelled or changed by another client meanwhile, its
                    // merge not finished, or the lease gone: this client's
                    // view catches up.
                    if self.sharing.is_some() {
                        self.sync_staging(&mut state);
                    }
                    self.refresh(&mut state, &id);
                    continue;
                }
                if let (Err(e), false) = (&written, full) {
                    // Not durable: do not send what a restart cannot account for.
                    let mut noted = taken;
                    noted.status.error = Some(e.message().to_string());
                    state.replace_ahead(noted);
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
                self.emit_state(&record);
                state.replace(record.clone());
                return Some(record);
            }
            let wait = Duration::from_millis((wake_at - now).clamp(1, 1000) as u64);
            state = self.work.wait_timeout(state, wait).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}
