//! The store's reads by filter: counts, batches, lists and query pages.

use rusqlite::params;

use super::{state_code, time_ms, ulid_floor, Store};
use crate::error::Result;
use crate::outbox::query::Cursor;
use crate::outbox::spool::Record;
use crate::status::State;

/// The filters of `smtpb_outbox_query`, checked.
#[derive(Clone, Debug)]
pub struct Query {
    pub states: Vec<State>,
    pub batch_id: Option<String>,
    pub reference: Option<String>,
    pub reference_prefix: Option<String>,
    /// Lower case.
    pub profile: Option<String>,
    /// Unix ms, inclusive.
    pub since_ms: Option<i64>,
    /// Unix ms, exclusive.
    pub until_ms: Option<i64>,
    pub limit: usize,
    /// Only messages after this (older than the page before).
    pub cursor: Option<Cursor>,
}

/// The largest page of a query.
pub(crate) const MAX_LIMIT: usize = 1000;

impl Default for Query {
    /// Every message, in pages of 100.
    fn default() -> Query {
        Query {
            states: Vec::new(),
            batch_id: None,
            reference: None,
            reference_prefix: None,
            profile: None,
            since_ms: None,
            until_ms: None,
            limit: 100,
            cursor: None,
        }
    }
}

impl Query {
    /// Whether `record` passes these filters, the cursor included (the
    /// limit aside), as [`Store::query`] decides them: for a message not
    /// in the store yet.
    pub fn matches(&self, record: &Record) -> bool {
        let s = &record.status;
        let created = time_ms(s.created_at);
        (self.states.is_empty() || self.states.contains(&s.state))
            && self.batch_id.as_ref().is_none_or(|b| s.batch_id.as_ref() == Some(b))
            && self.reference.as_ref().is_none_or(|r| s.reference.as_ref() == Some(r))
            && self
                .reference_prefix
                .as_ref()
                .is_none_or(|p| s.reference.as_ref().is_some_and(|r| r.starts_with(p.as_str())))
            && self.profile.as_ref().is_none_or(|p| s.profile.to_ascii_lowercase() == *p)
            && self.since_ms.is_none_or(|t| created >= t)
            && self.until_ms.is_none_or(|t| created < t)
            && self.cursor.as_ref().is_none_or(|c| s.id < c.id)
    }
}

impl Store {
    /// Messages per state (by [`state_code`]).
    pub fn counts(&self) -> Result<[i64; 6]> {
        self.flush()?;
        let mut out = [0i64; 6];
        let mut stmt =
            self.conn.prepare_cached("SELECT state, n FROM counts").map_err(|e| self.error("cannot read", e))?;
        let rows = stmt
            .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))
            .map_err(|e| self.error("cannot read", e))?;
        for row in rows {
            let (s, n) = row.map_err(|e| self.error("cannot read", e))?;
            if (0..6).contains(&s) {
                out[s as usize] = n;
            }
        }
        Ok(out)
    }

    /// The ids and states of a batch's messages.
    pub fn batch_members(&self, batch_id: &str) -> Result<Vec<(String, i64)>> {
        self.flush()?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, state FROM messages WHERE batch_id = ?1 ORDER BY id")
            .map_err(|e| self.error("cannot read", e))?;
        let rows = stmt
            .query_map(params![batch_id], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| self.error("cannot read", e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.error("cannot read", e))
    }

    /// Every record, or those in `state`, oldest first.
    pub fn list(&self, state: Option<State>) -> Result<Vec<Record>> {
        self.flush()?;
        let (sql, code) = match state {
            Some(s) => (
                "SELECT rowid, record FROM messages INDEXED BY messages_state WHERE state = ?1 ORDER BY id",
                state_code(s),
            ),
            None => ("SELECT rowid, record FROM messages WHERE ?1 = ?1 ORDER BY id", 0),
        };
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.error("cannot read", e))?;
        let rows = stmt
            .query_map(params![code], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| self.error("cannot read", e))?;
        let mut out = Vec::new();
        for row in rows {
            let (rowid, text) = row.map_err(|e| self.error("cannot read", e))?;
            out.extend(self.parse_row(rowid, &text));
        }
        Ok(out)
    }

    /// One page of `query`, newest first: up to `limit` records, and
    /// whether there are more.
    pub fn query(&self, q: &Query) -> Result<(Vec<Record>, bool)> {
        self.flush()?;
        // One statement per state (each uses the (state, id) index in
        // order), merged: newest first across them.
        let states: Vec<Option<State>> =
            if q.states.is_empty() { vec![None] } else { q.states.iter().copied().map(Some).collect() };
        let mut rows: Vec<(String, Record)> = Vec::new();
        for state in states {
            rows.extend(self.query_one(q, state)?);
        }
        rows.sort_by(|a, b| b.0.cmp(&a.0));
        rows.dedup_by(|a, b| a.0 == b.0);
        let more = rows.len() > q.limit;
        rows.truncate(q.limit);
        Ok((rows.into_iter().map(|(_, r)| r).collect(), more))
    }

    /// Up to `limit + 1` readable records of `q` in `state`, newest first,
    /// by id. An unreadable row is skipped and the page read on past it.
    fn query_one(&self, q: &Query, state: Option<State>) -> Result<Vec<(String, Record)>> {
        let mut clauses: Vec<String> = Vec::new();
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        let mut bind = |clause: &str, value: rusqlite::types::Value, values: &mut Vec<rusqlite::types::Value>| {
            values.push(value);
            clauses.push(clause.replace('?', &format!("?{}", values.len())));
        };
        use rusqlite::types::Value as V;
        if let Some(s) = state {
            bind("state = ?", V::Integer(state_code(s)), &mut values);
        }
        if let Some(b) = &q.batch_id {
            bind("batch_id = ?", V::Text(b.clone()), &mut values);
        }
        if let Some(r) = &q.reference {
            bind("reference = ?", V::Text(r.clone()), &mut values);
        }
        if let Some(p) = &q.reference_prefix {
            bind("reference >= ?", V::Text(p.clone()), &mut values);
            bind("reference < ?", V::Text(format!("{p}\u{10FFFF}")), &mut values);
        }
        if let Some(p) = &q.profile {
            bind("profile = ?", V::Text(p.clone()), &mut values);
        }
        // Ids are ULIDs: their first 48 bits are the creation time, within
        // moments of created_at. A minute's slack either side bounds the
        // index range; created_ms decides exactly.
        if let Some(since) = q.since_ms {
            bind("id >= ?", V::Text(ulid_floor(since - 60_000)), &mut values);
            bind("created_ms >= ?", V::Integer(since), &mut values);
        }
        if let Some(until) = q.until_ms {
            bind("id < ?", V::Text(ulid_floor(until + 60_000)), &mut values);
            bind("created_ms < ?", V::Integer(until), &mut values);
        }
        if let Some(cursor) = &q.cursor {
            bind("id < ?", V::Text(cursor.id.clone()), &mut values);
        }
        let filter = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        // Known unreadable rows are read past; when more are found on the
        // way the page is read again, longer.
        let sql = format!("SELECT rowid, record FROM messages {filter} ORDER BY id DESC LIMIT ?{}", values.len() + 1);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.error("cannot read", e))?;
        loop {
            let known_bad = self.bad_rows.borrow().len();
            let limit = q.limit + 1 + known_bad;
            let mut bound = values.clone();
            bound.push(V::Integer(limit as i64));
            let rows = stmt
                .query_map(rusqlite::params_from_iter(bound), |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(|e| self.error("cannot read", e))?;
            let mut read = 0;
            let mut out: Vec<(String, Record)> = Vec::new();
            for row in rows {
                read += 1;
                let (rowid, text): (i64, rusqlite::types::Value) = row.map_err(|e| self.error("cannot read", e))?;
                let Some(record) = self.parse_row(rowid, &text) else { continue };
                // The range above also holds a reference continuing with
                // U+10FFFF itself; exactness is checked on the record.
                if let Some(p) = &q.reference_prefix {
                    if !record.status.reference.as_ref().is_some_and(|r| r.starts_with(p.as_str())) {
                        continue;
                    }
                }
                out.push((record.status.id.clone(), record));
            }
            let found_more_bad = self.bad_rows.borrow().len() > known_bad;
            if out.len() > q.limit || read < limit || !found_more_bad {
                out.truncate(q.limit + 1);
                return Ok(out);
            }
        }
    }
}
