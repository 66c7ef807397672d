//! Reading statuses: one, a list, a page of a query, counts, batches.

use serde::Serialize;
use std::collections::HashSet;

use super::ledger::Ledger;
use super::store::{state_code, Query};
use super::{Outbox, Record};
use crate::error::{Error, Result};
use crate::status::{State, StateCounts, Status};
use crate::text::printable;

/// Where a page of [`Outbox::query`] ended: the next page starts after
/// it. Opaque to the host (`next_cursor`, `cursor`): base64 of a version
/// prefix and the last id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The last id of the page before.
    pub(crate) id: String,
}

const CURSOR_PREFIX: &str = "q1.";

impl Cursor {
    /// The cursor as the host sees it.
    pub fn encode(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{}", self.id))
    }

    /// A cursor this library made; `None` for any other text.
    pub fn decode(text: &str) -> Option<Cursor> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let id = text.strip_prefix(CURSOR_PREFIX)?;
        ulid::Ulid::from_string(id).ok()?;
        Some(Cursor { id: id.to_string() })
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.encode().serialize(serializer)
    }
}

/// A cursor in JSON: the opaque text.
#[cfg(test)]
impl schemars::JsonSchema for Cursor {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Cursor".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// One page of a query, newest first, and the cursor of the next page
/// (`None` on the last).
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<Cursor>,
}

/// A batch's messages per state (`smtpb_batch_status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct BatchCounts {
    pub batch_id: String,
    #[serde(flatten)]
    pub counts: StateCounts,
    pub total: u64,
}

/// What `smtpb_batch_cancel` did to a batch's messages: how many it
/// cancelled, and how many it could not because they were sending or sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct BatchCancel {
    pub cancelled: u64,
    pub sending: u64,
    pub sent: u64,
}

/// The outbox's counts per state, its paused profiles (`*` = all) and the
/// records lost to damage in the spool.
#[derive(Clone, Debug)]
pub struct Counts {
    pub states: StateCounts,
    pub paused: Vec<String>,
    pub damaged_records: i64,
}

/// The state of a store code.
pub(super) fn code_index(code: i64) -> usize {
    // State::ALL is in the order of state_code.
    (code.clamp(0, 5)) as usize
}

impl Outbox {
    pub(super) fn not_found(id: &str) -> Error {
        Error::not_found(format!("no message with id \"{}\"", printable(id)))
    }

    /// A message's record: from memory while it is not final, else from
    /// the store.
    pub(super) fn record(&self, state: &Ledger, id: &str) -> Result<Record> {
        if let Some(r) = state.held(id) {
            return Ok(r.clone());
        }
        Ok(state.overlay(self.store().get(id)?.ok_or_else(|| Self::not_found(id))?))
    }

    /// The record of a message that is not final (`None`: it is final, or
    /// gone), as [`Outbox::record`] reads it.
    pub(super) fn active_record(&self, state: &Ledger, id: &str) -> Result<Option<Record>> {
        match state.entry(id) {
            Some(_) => self.record(state, id).map(Some),
            None => Ok(None),
        }
    }

    /// The status of a message.
    pub fn status(&self, id: &str) -> Result<Status> {
        self.catch_up();
        let state = self.lock();
        if let Some(r) = state.held(id) {
            return Ok(r.status.clone());
        }
        // The store is read without holding the ledger: delivery threads
        // need it more than a host polling statuses does.
        drop(state);
        let record = self.store().get(id)?.ok_or_else(|| Self::not_found(id))?;
        Ok(self.lock().overlay(record).status)
    }

    /// Statuses read from the store, with the ones not final taken from
    /// memory (which is ahead of the store only while an outcome waits to
    /// be recorded).
    pub(super) fn overlay(&self, records: Vec<Record>) -> Vec<Status> {
        let state = self.lock();
        records
            .into_iter()
            .map(|r| match state.held(&r.status.id) {
                Some(live) => live.status.clone(),
                None => state.overlay(r).status,
            })
            .collect()
    }

    /// The statuses of every message, or of those in `wanted`, oldest
    /// first. For small outboxes: [`Outbox::query`] pages.
    pub fn list(&self, wanted: Option<State>) -> Result<Vec<Status>> {
        self.catch_up();
        let query = Query { states: wanted.into_iter().collect(), ..Query::default() };
        let (items, _) = self.overlay_page(&query, || Ok((self.store().list(wanted)?, false)), None, false)?;
        Ok(items)
    }

    /// The statuses `fetch` reads from the store (see [`Outbox::overlay`])
    /// together with those of the messages not in the store yet that pass
    /// `query`, in id order (`newest_first`, or oldest first), cut to
    /// `limit`; and whether there are more (the store said so, or the cut
    /// dropped some). The messages not stored are taken first: one stored
    /// in between is then in what the store returns, and counted once.
    pub(super) fn overlay_page(
        &self,
        query: &Query,
        fetch: impl FnOnce() -> Result<(Vec<Record>, bool)>,
        limit: Option<usize>,
        newest_first: bool,
    ) -> Result<(Vec<Status>, bool)> {
        let unstored: Vec<Status> = {
            let state = self.lock();
            state.unstored_records().filter(|r| query.matches(r)).map(|r| r.status.clone()).collect()
        };
        let (records, more) = fetch()?;
        let mut items = self.overlay(records);
        if unstored.is_empty() {
            return Ok((items, more));
        }
        let seen: HashSet<String> = items.iter().map(|s| s.id.clone()).collect();
        items.extend(unstored.into_iter().filter(|s| !seen.contains(&s.id)));
        if newest_first {
            items.sort_by(|a, b| b.id.cmp(&a.id));
        } else {
            items.sort_by(|a, b| a.id.cmp(&b.id));
        }
        let cut = limit.is_some_and(|n| items.len() > n);
        if let Some(n) = limit {
            items.truncate(n);
        }
        Ok((items, more || cut))
    }

    /// `smtpb_outbox_query`: one page, newest first, and the cursor of the
    /// next.
    pub fn query(&self, q: &Query) -> Result<Page<Status>> {
        self.catch_up();
        let (items, more) = self.overlay_page(q, || self.store().query(q), Some(q.limit), true)?;
        let next_cursor = more.then(|| items.last().map(|s| Cursor { id: s.id.clone() })).flatten();
        Ok(Page { items, next_cursor })
    }

    /// Counts per state, the paused profiles, and the records lost to
    /// damage in the spool.
    pub fn counts(&self) -> Result<Counts> {
        // The store is read under the ledger's lock: a message stored in
        // between would otherwise be counted twice or not at all.
        self.catch_up();
        let state = self.lock();
        let (mut stored, damaged) = {
            let store = self.store();
            (store.counts()?, store.damaged_records())
        };
        for r in state.unstored_records() {
            stored[state_code(r.status.state) as usize] += 1;
        }
        let mut states = StateCounts::default();
        for s in State::ALL {
            states.add(s, stored[state_code(s) as usize].max(0) as u64);
        }
        let mut paused: Vec<String> = state.paused.iter().cloned().collect();
        if state.open_paused && !paused.iter().any(|p| p == "*") {
            paused.insert(0, "*".into());
        }
        Ok(Counts { states, paused, damaged_records: damaged })
    }

    /// The ids and current states of a batch's messages.
    pub(super) fn members(&self, batch_id: &str) -> Result<Vec<(String, State)>> {
        self.catch_up();
        let stored = self.store().batch_members(batch_id)?;
        let state = self.lock();
        Ok(stored
            .into_iter()
            .map(|(id, code)| {
                let s = state.entry(&id).map(|e| e.state).unwrap_or(State::ALL[code_index(code)]);
                (id, s)
            })
            .collect())
    }

    /// Counts per state of a batch, plus `batch_id` and `total`.
    pub fn batch_status(&self, batch_id: &str) -> Result<BatchCounts> {
        let members = self.members(batch_id)?;
        if members.is_empty() {
            return Err(Error::not_found(format!("no batch with id \"{}\"", printable(batch_id))));
        }
        let mut counts = StateCounts::default();
        for (_, s) in &members {
            counts.add(*s, 1);
        }
        Ok(BatchCounts { batch_id: batch_id.to_string(), counts, total: members.len() as u64 })
    }
}
