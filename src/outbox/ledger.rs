//! The ledger: the messages that are not final, indexed for delivery.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Record;
use crate::status::State;

/// Unix milliseconds.
pub(super) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub(super) fn ms_to_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

pub(super) fn time_to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A message's bytes, shared with the attempt that sends them.
pub(super) type Bytes = Arc<Vec<u8>>;

/// The messages that are not final, and what delivery needs to choose the
/// next one without scanning: the statuses of final messages are only in
/// the store.
#[derive(Default)]
pub(super) struct Ledger {
    /// Every message `queued`, `sending` or `deferred`.
    pub(super) entries: HashMap<String, Record>,
    /// Queued and deferred messages per profile (lower case), by (next
    /// attempt in Unix ms, id); queued mail is due at 0, so it goes in id
    /// order: oldest first.
    pub(super) ready: HashMap<String, BTreeSet<(i64, String)>>,
    /// Queued and deferred messages of batches still being merged, kept
    /// out of `ready` until the merge is released.
    pub(super) staged: HashMap<String, BTreeSet<String>>,
    /// Queued messages per profile (lower case), for flush.
    pub(super) queued: HashMap<String, usize>,
    pub(super) sending: usize,
    /// Paused profiles (lower case), `*` for all; persisted.
    pub(super) paused: BTreeSet<String>,
    /// SMTPB_OPEN_PAUSED: all paused until resume, not persisted.
    pub(super) open_paused: bool,
    /// Profiles (lower case) held by a send limit: until (Unix ms), reason.
    pub(super) holds: HashMap<String, (i64, String)>,
    /// Users told about with a `credentials_needed` event (once per user).
    pub(super) credentials_noticed: HashSet<Option<String>>,
    /// Batches still being merged: their messages wait until the whole
    /// merge is queued.
    pub(super) staging: HashSet<String>,
    /// Outcomes of attempts the store could not record (the disk is full):
    /// the message stays `sending` (as the store says) until they are.
    pub(super) unrecorded: HashMap<String, (Record, Option<Bytes>)>,
    /// Messages in `entries` that are not in the store yet: `smtpb_send`
    /// on an in-memory client, written once, when final (see
    /// [`Outbox::add`]). Queries, counts and idempotency keys take them
    /// from here meanwhile.
    pub(super) unstored: HashSet<String>,
    pub(super) stopping: bool,
}

pub(super) fn is_active(state: State) -> bool {
    matches!(state, State::Queued | State::Sending | State::Deferred)
}

/// The key of a message in `ready`: when it is due.
pub(super) fn due_ms(record: &Record) -> i64 {
    record.status.next_attempt_at.map(time_to_ms).unwrap_or(0)
}

impl Ledger {
    pub(super) fn is_paused(&self, profile: &str) -> bool {
        self.open_paused || self.paused.contains("*") || self.paused.contains(&profile.to_ascii_lowercase())
    }

    pub(super) fn staged_batch<'a>(&self, record: &'a Record) -> Option<&'a String> {
        record.status.batch_id.as_ref().filter(|b| self.staging.contains(*b))
    }

    /// Adds a message to the indexes of its state.
    pub(super) fn track(&mut self, record: &Record) {
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
    pub(super) fn untrack(&mut self, record: &Record) {
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
    pub(super) fn replace(&mut self, record: Record) {
        if let Some(old) = self.entries.remove(&record.status.id) {
            self.untrack(&old);
        }
        if is_active(record.status.state) {
            self.track(&record);
            self.entries.insert(record.status.id.clone(), record);
        }
    }

    /// Drops a message from the view (it is gone from the store).
    pub(super) fn forget(&mut self, id: &str) {
        if let Some(old) = self.entries.remove(id) {
            self.untrack(&old);
        }
    }

    /// Changes when a queued or deferred message is due (in memory only).
    pub(super) fn reschedule(&mut self, id: &str, due: i64) {
        let Some(mut record) = self.entries.get(id).cloned() else { return };
        record.status.next_attempt_at = Some(ms_to_time(due));
        self.replace(record);
    }
}

/// `record` moved to `state`; `due` (Unix ms) is when a deferred message
/// is next tried (now when not given). Bytes go with the final states that
/// no longer need them.
pub(super) fn moved(mut record: Record, state: State, due: Option<i64>) -> Record {
    record.status.state = state;
    record.status.next_attempt_at = (state == State::Deferred).then(|| ms_to_time(due.unwrap_or_else(now_ms)));
    if !state.keeps_body() {
        record.body_dropped = true;
    }
    record
}
