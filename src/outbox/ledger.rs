//! The ledger: the messages that are not final, indexed for delivery.
//!
//! It keeps of each such message only what delivery chooses by (state,
//! due time, profile, batch; about 200 bytes with the indexes), so its
//! size does not grow with what the messages say: a merge of 100,000
//! recipients waits in a few MiB. A message's whole record is read from
//! the store when it is taken for delivery; memory holds it only while
//! the message is `sending`, not in the store yet, or ahead of the store.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Record;
use crate::error::Code;
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

/// A message id, shared by the ledger's map and its indexes.
pub(super) type Id = Arc<str>;

/// What the ledger keeps of a message that is not final.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) state: State,
    /// When it is due, in Unix ms (0: now); its key in `ready`.
    pub(super) due: i64,
    /// Its profile, lower case (shared by every entry that names it).
    pub(super) profile: Arc<str>,
    pub(super) batch: Option<Arc<str>>,
    /// Deferred by a send limit: the reason its status gives.
    pub(super) limit: Option<Box<str>>,
    /// Deferred until its user signs in again.
    pub(super) needs_credentials: bool,
}

/// The messages that are not final, and what delivery needs to choose the
/// next one without scanning: the statuses of final messages are only in
/// the store.
#[derive(Default)]
pub(super) struct Ledger {
    /// Every message `queued`, `sending` or `deferred`.
    entries: HashMap<Id, Entry>,
    /// The whole records memory holds (see the module's documentation).
    records: HashMap<Id, Record>,
    /// The profile and batch names the entries share.
    names: HashSet<Arc<str>>,
    /// Queued and deferred messages per profile (lower case), by (next
    /// attempt in Unix ms, id); queued mail is due at 0, so it goes in id
    /// order: oldest first.
    pub(super) ready: HashMap<String, BTreeSet<(i64, Id)>>,
    /// Queued and deferred messages of batches still being merged, kept
    /// out of `ready` until the merge is released.
    pub(super) staged: HashMap<String, BTreeSet<Id>>,
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
    /// Messages not in the store yet: `smtpb_send` on an in-memory
    /// client, written once, when final (see [`super::Outbox::add`]).
    /// Queries, counts and idempotency keys take them from `records`
    /// meanwhile.
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

    /// Whether `batch` is still being merged.
    pub(super) fn is_staged(&self, batch: Option<&str>) -> bool {
        batch.is_some_and(|b| self.staging.contains(b))
    }

    /// What the ledger keeps of a message that is not final.
    pub(super) fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// The ids and entries of every message that is not final.
    pub(super) fn entries(&self) -> impl Iterator<Item = (&Id, &Entry)> {
        self.entries.iter()
    }

    /// The whole record of a message, when memory holds it.
    pub(super) fn held(&self, id: &str) -> Option<&Record> {
        self.records.get(id)
    }

    /// The records of the messages not in the store yet.
    pub(super) fn unstored_records(&self) -> impl Iterator<Item = &Record> {
        self.unstored.iter().filter_map(|id| self.records.get(id.as_str()))
    }

    /// `name`, shared with the entries that already name it.
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return shared.clone();
        }
        let shared: Arc<str> = name.into();
        self.names.insert(shared.clone());
        shared
    }

    /// Lets a name go once no entry names it.
    fn release(&mut self, name: Arc<str>) {
        // This reference and the set's: nobody else.
        if Arc::strong_count(&name) == 2 {
            self.names.remove(&name);
        }
    }

    fn entry_of(&mut self, record: &Record) -> Entry {
        let s = &record.status;
        let deferred = s.state == State::Deferred;
        Entry {
            state: s.state,
            due: due_ms(record),
            profile: self.intern(&s.profile.to_ascii_lowercase()),
            batch: s.batch_id.as_deref().map(|b| self.intern(b)),
            limit: (deferred && s.error_code == Code::Limit).then(|| s.error.as_deref().unwrap_or_default().into()),
            needs_credentials: deferred && s.needs.is_some(),
        }
    }

    /// Adds a message to the indexes of its state.
    fn track(&mut self, id: &Id, entry: &Entry) {
        match entry.state {
            State::Queued | State::Deferred => {
                let profile = &*entry.profile;
                if entry.state == State::Queued {
                    *self.queued.entry(profile.to_string()).or_default() += 1;
                }
                match entry.batch.as_deref().filter(|b| self.staging.contains(*b)) {
                    Some(batch) => {
                        self.staged.entry(batch.to_string()).or_default().insert(id.clone());
                    }
                    None => {
                        self.ready.entry(profile.to_string()).or_default().insert((entry.due, id.clone()));
                    }
                }
            }
            State::Sending => self.sending += 1,
            _ => {}
        }
    }

    /// Takes a message out of the indexes of its state.
    fn untrack(&mut self, id: &Id, entry: &Entry) {
        match entry.state {
            State::Queued | State::Deferred => {
                let profile = &*entry.profile;
                if entry.state == State::Queued {
                    if let Some(n) = self.queued.get_mut(profile) {
                        *n = n.saturating_sub(1);
                    }
                }
                let was_ready = self.ready.get_mut(profile).is_some_and(|set| set.remove(&(entry.due, id.clone())));
                if !was_ready {
                    if let Some(ids) = entry.batch.as_deref().and_then(|b| self.staged.get_mut(b)) {
                        ids.remove(id);
                    }
                }
            }
            State::Sending => self.sending = self.sending.saturating_sub(1),
            _ => {}
        }
    }

    /// Removes a message's entry from the ledger and its indexes.
    fn remove(&mut self, id: &str) -> Option<(Id, Entry)> {
        let (id, entry) = self.entries.remove_entry(id)?;
        self.untrack(&id, &entry);
        Some((id, entry))
    }

    /// Puts a message's new record in place, as the store has it: kept
    /// while it is not final, whole while it is `sending` or not stored.
    pub(super) fn replace(&mut self, record: Record) {
        self.put(record, false);
    }

    /// [`Ledger::replace`] with a record that is ahead of the store (the
    /// store could not take it yet): memory keeps it whole.
    pub(super) fn replace_ahead(&mut self, record: Record) {
        self.put(record, true);
    }

    fn put(&mut self, record: Record, ahead: bool) {
        let old = self.remove(&record.status.id);
        if !is_active(record.status.state) {
            self.records.remove(record.status.id.as_str());
            if let Some((_, entry)) = old {
                self.release_names(entry);
            }
            return;
        }
        let id: Id = match &old {
            Some((id, _)) => id.clone(),
            None => record.status.id.as_str().into(),
        };
        let entry = self.entry_of(&record);
        if let Some((_, old)) = old {
            self.release_names(old);
        }
        self.track(&id, &entry);
        self.entries.insert(id.clone(), entry);
        if ahead || record.status.state == State::Sending || self.unstored.contains(&*record.status.id) {
            self.records.insert(id, record);
        } else {
            self.records.remove(&*id);
        }
    }

    fn release_names(&mut self, entry: Entry) {
        let Entry { profile, batch, .. } = entry;
        self.release(profile);
        if let Some(batch) = batch {
            self.release(batch);
        }
    }

    /// Drops a message from the view (it is gone from the store).
    pub(super) fn forget(&mut self, id: &str) {
        self.records.remove(id);
        if let Some((_, entry)) = self.remove(id) {
            self.release_names(entry);
        }
    }

    /// Changes when a queued or deferred message is due (in memory only).
    pub(super) fn reschedule(&mut self, id: &str, due: i64) {
        let Some((id, mut entry)) = self.remove(id) else { return };
        entry.due = due;
        self.track(&id, &entry);
        if let Some(record) = self.records.get_mut(&*id) {
            record.status.next_attempt_at = Some(ms_to_time(due));
        }
        self.entries.insert(id, entry);
    }

    /// Files a message again after its batch's staging changed.
    pub(super) fn retrack(&mut self, id: &str) {
        if let Some((id, entry)) = self.remove(id) {
            self.track(&id, &entry);
            self.entries.insert(id, entry);
        }
    }

    /// `record` as memory knows it: when it was rescheduled in memory,
    /// with that due time.
    pub(super) fn overlay(&self, mut record: Record) -> Record {
        if let Some(entry) = self.entries.get(record.status.id.as_str()) {
            if entry.due != due_ms(&record) && entry.state == record.status.state {
                record.status.next_attempt_at = (entry.due > 0).then(|| ms_to_time(entry.due));
            }
        }
        record
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
