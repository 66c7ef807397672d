//! New messages and the group commit.
//!
//! A durable store's commit waits for the disk (one fsync of the WAL), and
//! the disk, not the CPU, sets the rate. So new messages do not each take
//! a commit of their own: a caller puts its messages on the queue, then
//! takes the store. Whoever holds the store writes everything queued by
//! then, its own and the other callers', in one transaction; a caller
//! whose messages an earlier holder wrote finds them written when it gets
//! the store, and returns. While one commit waits for the disk, the next
//! callers queue up, and the next holder writes all of them with one
//! fsync. Each caller returns only after the commit that holds its
//! messages: durable when it returns, as before.
//!
//! The ledger is not held during the commit (a delivery thread or a
//! status call does not wait for the disk); a message enters it once
//! written, so no delivery thread can take a message the store does not
//! have.

use std::sync::{Arc, OnceLock};

use super::{Outbox, Record};
use crate::error::{Error, Result};
use crate::status::State;

/// A message waiting for the next group commit.
pub(super) struct Entry {
    record: Record,
    bytes: Arc<Vec<u8>>,
    /// Set by the commit that wrote it (or failed): whether it was written
    /// (false: its idempotency key was taken meanwhile).
    done: Arc<OnceLock<Result<bool>>>,
}

/// A new message and its bytes.
pub type New = (Record, Vec<u8>);

impl Outbox {
    /// Writes a new message (durable when it returns) in `record`'s state.
    /// Returns its id and bytes; or the id of the message with the same
    /// idempotency key instead, when there is one.
    ///
    /// A message `sending` now (`smtpb_send`) in an in-memory store is
    /// written once, when [`Outbox::finish_now`] has its outcome (its
    /// bytes only if it failed, for `smtpb_retry`): nothing there survives
    /// the process, so no restart can need it written sooner. In a durable
    /// store it is written before the attempt without waiting for the disk:
    /// the commit of its outcome makes both durable with one fsync, before
    /// `smtpb_send` returns (see [`super::store::Store::insert_group`]).
    pub fn add(&self, record: Record, bytes: Vec<u8>) -> Result<(String, Arc<Vec<u8>>)> {
        Ok(self.add_all(vec![(record, bytes)])?.pop().expect("one message in, one out"))
    }

    /// [`Outbox::add`] for several messages, written in one transaction
    /// (with whatever other callers queued meanwhile); in their order.
    pub fn add_all(&self, news: Vec<New>) -> Result<Vec<(String, Arc<Vec<u8>>)>> {
        // What an idempotency key already names, and what is left to write.
        let mut out: Vec<Option<(String, Arc<Vec<u8>>)>> = Vec::with_capacity(news.len());
        let mut to_write = Vec::with_capacity(news.len());
        {
            let state = self.lock();
            Self::check_running(&state)?;
            for (mut record, bytes) in news {
                self.stamp_new(&mut record);
                let taken = match &record.idempotency_key {
                    Some(key) => {
                        let unstored = state.unstored_records().find(|r| r.idempotency_key.as_ref() == Some(key));
                        match unstored {
                            Some(r) => Some(r.status.id.clone()),
                            None => self.store().idempotent(key)?,
                        }
                    }
                    None => None,
                };
                match taken {
                    Some(id) => out.push(Some((id, Arc::new(Vec::new())))),
                    None => {
                        out.push(None);
                        to_write.push((record, Arc::new(bytes)));
                    }
                }
            }
            if self.in_memory {
                // Nothing waits for a disk: written here, under the ledger.
                drop(state);
                return self.add_in_memory(out, to_write);
            }
        }
        let written = self.group_commit(&to_write)?;
        let mut state = self.lock();
        let mut ready = false;
        let mut fresh = to_write.into_iter().zip(written);
        for slot in out.iter_mut().filter(|s| s.is_none()) {
            let ((record, bytes), was_written) = fresh.next().expect("one result per message");
            if !was_written {
                // Its idempotency key was taken by a message written meanwhile.
                let key = record.idempotency_key.as_deref().unwrap_or_default();
                let id = self.store().idempotent(key)?.ok_or_else(|| {
                    Error::internal(format!("the idempotency key of {} was taken, then gone", record.status.id))
                })?;
                *slot = Some((id, Arc::new(Vec::new())));
                continue;
            }
            *slot = Some((record.status.id.clone(), bytes));
            ready |= self.track_new(&mut state, record);
        }
        drop(state);
        if ready {
            self.notify();
        }
        Ok(out.into_iter().map(|s| s.expect("every message answered")).collect())
    }

    /// The in-memory part of [`Outbox::add_all`]: each message written (or
    /// gathered) under the ledger, as it comes.
    fn add_in_memory(
        &self,
        mut out: Vec<Option<(String, Arc<Vec<u8>>)>>,
        to_write: Vec<(Record, Arc<Vec<u8>>)>,
    ) -> Result<Vec<(String, Arc<Vec<u8>>)>> {
        let mut state = self.lock();
        Self::check_running(&state)?;
        let mut ready = false;
        let mut fresh = to_write.into_iter();
        for slot in out.iter_mut().filter(|s| s.is_none()) {
            let (record, bytes) = fresh.next().expect("one message per slot");
            let id = record.status.id.clone();
            if record.status.state == State::Sending {
                state.unstored.insert(id.clone());
            } else {
                self.store().insert(&record, &bytes)?;
            }
            *slot = Some((id, bytes));
            ready |= self.track_new(&mut state, record);
        }
        drop(state);
        if ready {
            self.notify();
        }
        Ok(out.into_iter().map(|s| s.expect("every message answered")).collect())
    }

    /// Puts a written message in the ledger and tells the host; whether
    /// the delivery threads have work (queued or deferred, and not held
    /// back with a merge under way).
    fn track_new(&self, state: &mut super::Ledger, record: Record) -> bool {
        let ready = matches!(record.status.state, State::Queued | State::Deferred)
            && !state.is_staged(record.status.batch_id.as_deref());
        // Emitted under the lock, so no delivery thread can report this
        // message's next state first.
        self.emit_state(&record);
        state.replace(record);
        ready
    }

    /// Writes `rows` with whatever else is queued, in one transaction;
    /// for each, whether it was written (false: its idempotency key was
    /// taken). Durable when it returns, unless every message in the commit
    /// is a `smtpb_send` under way (see [`Outbox::add`]).
    fn group_commit(&self, rows: &[(Record, Arc<Vec<u8>>)]) -> Result<Vec<bool>> {
        let dones: Vec<Arc<OnceLock<Result<bool>>>> = rows.iter().map(|_| Arc::default()).collect();
        {
            let mut queue = self.group.lock().unwrap_or_else(|e| e.into_inner());
            for ((record, bytes), done) in rows.iter().zip(&dones) {
                queue.push(Entry { record: record.clone(), bytes: bytes.clone(), done: done.clone() });
            }
        }
        let mut store = self.store();
        // Unless an earlier holder of the store wrote them, ours are still
        // queued: write the queue. A holder sets every result before it
        // lets the store go.
        if dones.iter().any(|d| d.get().is_none()) {
            let batch = std::mem::take(&mut *self.group.lock().unwrap_or_else(|e| e.into_inner()));
            let synced = batch.iter().any(|e| e.record.status.state != State::Sending);
            let rows: Vec<(&Record, &[u8])> = batch.iter().map(|e| (&e.record, e.bytes.as_slice())).collect();
            match store.insert_group(&rows, synced) {
                Ok(written) => {
                    for (entry, w) in batch.iter().zip(written) {
                        let _ = entry.done.set(Ok(w));
                    }
                }
                Err(e) => {
                    for entry in &batch {
                        let _ = entry.done.set(Err(e.clone()));
                    }
                }
            }
        }
        drop(store);
        dones.iter().map(|d| d.get().cloned().expect("set by the commit that took it")).collect()
    }
}
