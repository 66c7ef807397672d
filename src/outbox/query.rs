//! Reading statuses: one, a list, a page of a query, counts, batches.

use serde_json::{json, Value};
use std::collections::HashSet;

use super::ledger::{time_to_ms, Ledger};
use super::store::{state_code, Query};
use super::{Outbox, Record};
use crate::config::printable;
use crate::error::{Error, Result};
use crate::status::State;

pub(super) fn parse_state(name: &str, what: &str) -> Result<State> {
    State::ALL.iter().copied().find(|s| s.name() == name).ok_or_else(|| {
        Error::invalid_argument(format!(
            "{what}: state \"{}\": one of queued, sending, sent, deferred, failed, cancelled expected",
            printable(name)
        ))
    })
}

/// Parses an RFC 3339 UTC time (`2026-11-22T10:00:00Z`) to Unix ms.
pub(super) fn parse_time(text: &str, what: &str) -> Result<i64> {
    humantime::parse_rfc3339_weak(text).map(time_to_ms).map_err(|_| {
        Error::invalid_argument(format!(
            "{what}: \"{}\" is not an RFC 3339 UTC time such as 2026-11-22T10:00:00Z",
            printable(text)
        ))
    })
}

pub(super) const CURSOR_PREFIX: &str = "q1.";

pub(super) fn encode_cursor(id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{id}"))
}

pub(super) fn decode_cursor(cursor: &str) -> Result<String> {
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
pub(super) fn parse_query(text: &str) -> Result<Query> {
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
        if let Some(r) = state.entries.get(id) {
            return Ok(r.clone());
        }
        self.store().get(id)?.ok_or_else(|| Self::not_found(id))
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
    pub(super) fn overlay(&self, records: Vec<Record>) -> Vec<Value> {
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
    pub(super) fn overlay_page(
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
    pub(super) fn members(&self, batch_id: &str) -> Result<Vec<(String, State)>> {
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
}
