//! Merges under way (ABI §8): the messages of a batch are held back until
//! the whole merge is queued, and a merge that never finished (its
//! process ended during the call: the host never got the ids) has its
//! messages cancelled, never sent.
//!
//! An exclusive client names its merges under way in
//! `spool/staging.json`; the next open cancels the batches it finds there.
//!
//! A sharing client names them in the store's `staged` table (see
//! [`super::store`]'s `shared`), inserted before the first message of the
//! batch is written. Every client reads the table at each catch-up, after
//! the change log, so a message seen in the log whose batch is staged is
//! seen staged (its row was inserted before the message, and is deleted
//! only at release): it stays out of `ready` until the row is gone. The
//! claim of the lease holder checks the table itself, so even a stale view
//! cannot send such a message. A merge whose process is gone is ended by
//! the lease holder at its heartbeat: the batch's waiting messages are
//! cancelled (their idempotency keys forgotten) and the row deleted. An
//! exclusive open, which no sharing client can be beside, cancels every
//! batch the table names.

use std::collections::HashSet;

use super::ledger::{moved, Id, Ledger};
use super::{Outbox, Record};
use crate::error::{Code, Result};
use crate::fsutil;
use crate::status::State;

/// `record` cancelled because the merge that made it did not finish.
pub(super) fn cancelled_unfinished(record: Record) -> Record {
    let mut record = moved(record, State::Cancelled, None);
    record.status.error = Some("the merge that made this message did not finish".into());
    record.idempotency_key = None;
    record
}

impl Outbox {
    /// Holds the messages of `batch_id` back until [`Outbox::release_batch`]
    /// (a merge being queued). Persisted, so that a merge cut short by the
    /// end of the process is cancelled (at the next open, or by the lease
    /// holder of a shared data_dir).
    pub fn stage_batch(&self, batch_id: &str) -> Result<()> {
        let mut state = self.lock();
        match &self.sharing {
            Some(s) => self.store().stage(batch_id, &s.me)?,
            None => {
                let mut staging = state.staging.clone();
                staging.insert(batch_id.to_string());
                self.save_staging(&staging)?;
            }
        }
        state.staging.insert(batch_id.to_string());
        Ok(())
    }

    /// Lets the messages of a staged batch go.
    pub fn release_batch(&self, batch_id: &str) -> Result<()> {
        let mut state = self.lock();
        // Still staged on disk when this fails: kept staged here too, or a
        // restart would cancel mail this run had sent.
        self.unstage(&state, batch_id)?;
        state.staging.remove(batch_id);
        let ids = state.staged.remove(batch_id).unwrap_or_default();
        for id in ids {
            state.retrack(&id);
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
        let members: Vec<Id> =
            state.entries().filter(|(_, e)| e.batch.as_deref() == Some(batch_id)).map(|(id, _)| id.clone()).collect();
        let mut all_written = true;
        for id in members {
            let record = match self.active_record(&state, &id) {
                Ok(Some(record)) => record,
                Ok(None) => continue,
                Err(_) => {
                    all_written = false;
                    continue;
                }
            };
            let mut record = moved(record, State::Cancelled, None);
            record.idempotency_key = None;
            all_written &= self.commit(&mut state, record).is_ok();
        }
        if all_written && self.unstage(&state, batch_id).is_ok() {
            state.staging.remove(batch_id);
            state.staged.remove(batch_id);
        }
    }

    /// Ends the staging of `batch_id` where it is persisted.
    fn unstage(&self, state: &Ledger, batch_id: &str) -> Result<()> {
        if self.sharing.is_some() {
            return self.store().unstage(batch_id);
        }
        let mut staging = state.staging.clone();
        staging.remove(batch_id);
        self.save_staging(&staging)
    }

    pub(super) fn save_staging(&self, staging: &HashSet<String>) -> Result<()> {
        match &self.staging_path {
            Some(p) => fsutil::atomic_write(p, &serde_json::to_vec(staging).expect("strings"), false),
            None => Ok(()),
        }
    }

    /// A sharing client: takes the batches staged in the store as this
    /// view's (messages of a batch staged now leave `ready`, those of a
    /// batch released enter it). Whether a batch was released.
    pub(super) fn sync_staging(&self, state: &mut Ledger) -> bool {
        let read = self.store().staged();
        let staged: HashSet<String> = match read {
            Ok(rows) => rows.into_iter().map(|r| r.batch_id).collect(),
            Err(e) => {
                log::warn!("{}", e.message());
                return false;
            }
        };
        if staged == state.staging {
            return false;
        }
        let released = state.staging.difference(&staged).next().is_some();
        let changed: HashSet<String> = staged.symmetric_difference(&state.staging).cloned().collect();
        let affected: Vec<Id> = state
            .entries()
            .filter(|(_, e)| e.batch.as_deref().is_some_and(|b| changed.contains(b)))
            .map(|(id, _)| id.clone())
            .collect();
        state.staging = staged;
        for id in affected {
            state.retrack(&id);
        }
        state.staged.retain(|_, ids| !ids.is_empty());
        released
    }

    /// The lease holder of a shared data_dir: cancels the waiting messages
    /// of merges whose process is gone, and ends their staging.
    pub(super) fn cancel_dead_merges(&self, now: i64) {
        let found = {
            let store = self.store();
            store.staged().and_then(|staged| Ok((staged, store.live_clients(now)?)))
        };
        let (staged, live) = match found {
            Ok(found) => found,
            Err(e) => {
                log::warn!("{}", e.message());
                return;
            }
        };
        for dead in staged.into_iter().filter(|m| !m.may_finish(&live)) {
            let waiting = self.store().batch_waiting(&dead.batch_id);
            let waiting = match waiting {
                Ok(waiting) => waiting,
                Err(e) => {
                    log::warn!("{}", e.message());
                    continue;
                }
            };
            let mut state = self.lock();
            let mut all_written = true;
            for record in waiting {
                let (id, prior) = (record.status.id.clone(), record.status.state);
                let mut next = cancelled_unfinished(record);
                let written = self.write_record(&mut self.store(), &mut next, None, Some(prior), false);
                match written {
                    Ok(()) => {
                        self.emit_state(&next);
                        state.replace(next);
                    }
                    // Changed meanwhile (cancelled by a host): as it is now.
                    Err(e) if matches!(e.code(), Code::State | Code::NotFound) => self.refresh(&mut state, &id),
                    Err(e) => {
                        log::warn!("{}", e.message());
                        all_written = false;
                    }
                }
            }
            if all_written {
                log::warn!(
                    "the merge of batch {} ended with its process (pid {}, host {}) before it finished: its messages \
                     are cancelled",
                    dead.batch_id,
                    dead.pid,
                    dead.host
                );
                match self.store().unstage(&dead.batch_id) {
                    Ok(()) => {
                        state.staging.remove(&dead.batch_id);
                        state.staged.remove(&dead.batch_id);
                    }
                    Err(e) => log::warn!("{}", e.message()),
                }
            }
            drop(state);
            self.notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::store::Member;
    use crate::outbox::Sharing;
    use std::path::PathBuf;

    fn merged(batch: &str, key: &str) -> (Record, Vec<u8>) {
        let mut record = Record::for_test(State::Queued);
        record.status.batch_id = Some(batch.into());
        record.idempotency_key = Some(key.into());
        (record, b"the bytes".to_vec())
    }

    fn data_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("smtpb-staging-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn ready(outbox: &Outbox) -> Vec<String> {
        outbox.lock().ready.values().flatten().map(|(_, id)| id.to_string()).collect()
    }

    #[test]
    fn another_clients_staged_batch_is_held_back_until_it_is_released() {
        let dir = data_dir("held");
        let deliverer = Outbox::open_shared(Some(&dir), false, Some(Sharing::new(true))).unwrap();
        let merger = Outbox::open_shared(Some(&dir), false, Some(Sharing::new(false))).unwrap();
        merger.stage_batch("batch-1").unwrap();
        let ids: Vec<String> = merger
            .add_all(vec![merged("batch-1", "k#0"), merged("batch-1", "k#1")])
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        deliverer.catch_up();
        assert!(ready(&deliverer).is_empty(), "a batch staged elsewhere is not ready");
        assert_eq!(deliverer.lock().staged["batch-1"].len(), 2);
        merger.release_batch("batch-1").unwrap();
        deliverer.catch_up();
        let mut got = ready(&deliverer);
        got.sort();
        assert_eq!(got, ids, "released: ready at the next catch-up");
        assert!(deliverer.lock().staging.is_empty());

        // A merge that fails midway: cancelled, and staged no more.
        merger.stage_batch("batch-2").unwrap();
        let (failed, _) = merger.add(merged("batch-2", "k#2").0, b"x".to_vec()).unwrap();
        merger.abandon_batch("batch-2");
        assert!(merger.store().staged().unwrap().is_empty());
        deliverer.catch_up();
        assert_eq!(deliverer.status(&failed).unwrap().state, State::Cancelled);
        let view = deliverer.lock();
        assert!(view.staging.is_empty() && view.staged.is_empty());
        drop(view);
        drop((deliverer, merger));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_merge_of_a_process_that_is_gone_is_cancelled_and_forgotten() {
        let dir = data_dir("gone");
        let deliverer = Outbox::open_shared(Some(&dir), false, Some(Sharing::new(true))).unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--list")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let gone = Member { id: "gone".into(), pid: child.id(), host: crate::host::host_name(), user: "anna".into() };
        child.wait().unwrap();
        let live = Member { id: "live".into(), pid: std::process::id(), ..gone.clone() };
        deliverer.store().stage("dead-merge", &gone).unwrap();
        deliverer.store().stage("live-merge", &live).unwrap();
        let (dead_id, _) = deliverer.add(merged("dead-merge", "dead#0").0, b"x".to_vec()).unwrap();
        let (live_id, _) = deliverer.add(merged("live-merge", "live#0").0, b"x".to_vec()).unwrap();
        deliverer.catch_up();
        assert!(ready(&deliverer).is_empty());

        deliverer.cancel_dead_merges(crate::outbox::ledger::now_ms());
        let status = deliverer.status(&dead_id).unwrap();
        assert_eq!(status.state, State::Cancelled);
        assert_eq!(status.error.as_deref(), Some("the merge that made this message did not finish"));
        assert_eq!(deliverer.store().idempotent("dead#0").unwrap(), None, "its idempotency key is forgotten");
        let staged: Vec<String> = deliverer.store().staged().unwrap().into_iter().map(|m| m.batch_id).collect();
        assert_eq!(staged, vec!["live-merge".to_string()], "a merge whose process runs is left to it");
        assert_eq!(deliverer.status(&live_id).unwrap().state, State::Queued);
        assert!(ready(&deliverer).is_empty());
        drop(deliverer);

        // An exclusive open has no sharing client beside it: what is still
        // staged ended with its process.
        let exclusive = Outbox::open(Some(&dir), true).unwrap();
        assert_eq!(exclusive.status(&live_id).unwrap().state, State::Cancelled);
        assert!(exclusive.store().staged().unwrap().is_empty());
        drop(exclusive);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
