//! What the store keeps for a data_dir shared by several processes
//! (ABI §17; format 3): the clients open on it, the delivery lease, and
//! a log of changes to messages.
//!
//! - `clients`: one row per sharing client (its id, pid, host, user and
//!   heartbeat), written at open and every second, deleted at close.
//! - `lease`: at most one row, the client that delivers the outbox. It is
//!   renewed with the heartbeat; a holder whose heartbeat is
//!   [`STALE_MS`] old, or whose process is gone from this machine, is
//!   replaced by the next sharing client that may deliver.
//! - `changes`: one row per message written while any sharing client is
//!   open (triggers, so every write path logs in its own transaction):
//!   the message id, its state, the client that queued it (`origin`) and
//!   the client that wrote it (`writer`). Sharing clients read the rows
//!   after the last one they saw, to bring their view up to date and to
//!   tell their host; rows older than [`CHANGES_KEPT_MS`] are pruned.
//!   With no sharing client open the triggers log nothing.
//!
//! - `staged`: one row per merge under way on a sharing client (its
//!   batch id, the client, its pid and host), inserted before the first
//!   message of the batch is written and deleted when the whole merge is
//!   queued. No client takes a message of a staged batch (the claim
//!   checks it), and the lease holder cancels the batches of clients
//!   whose process is gone.
//!
//! The writer of a `sending` message is the client sending it: a
//! `sending` message whose writer is not a live client (or that names
//! none) is an orphan of a process that died during its attempt.

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::collections::HashSet;
use std::path::Path;

use super::{state_code, Store};
use crate::error::{Code, Error, Result};
use crate::outbox::spool::Record;
use crate::status::State;

/// A heartbeat this old (ms) marks its client as gone.
pub(crate) const STALE_MS: i64 = 3_000;

/// How long (ms) rows of the change log are kept: a sharing client that
/// did not look for longer reads the whole outbox again.
pub(crate) const CHANGES_KEPT_MS: i64 = 60_000;

/// The tables of format 3, added to a format-2 store by the migration.
pub(super) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS clients (
  id TEXT PRIMARY KEY NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  user TEXT NOT NULL,
  opened_ms INTEGER NOT NULL,
  heartbeat_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS lease (
  one INTEGER PRIMARY KEY CHECK (one = 1),
  client TEXT NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  user TEXT NOT NULL,
  since_ms INTEGER NOT NULL,
  heartbeat_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL,
  state INTEGER NOT NULL,
  origin TEXT,
  writer TEXT,
  ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS staged (
  batch_id TEXT PRIMARY KEY NOT NULL,
  client TEXT NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL
);
";

/// The triggers of format 3 that log every change for the other clients
/// on the data_dir. A store in memory is never shared and goes without
/// them: each costs every insert or update its trigger program, even when
/// its WHEN finds no other client.
pub(super) const TRIGGERS: &str = "
CREATE TRIGGER IF NOT EXISTS messages_shared_insert AFTER INSERT ON messages
WHEN EXISTS (SELECT 1 FROM clients) BEGIN
  INSERT INTO changes (id, state, origin, writer, ms) VALUES (new.id, new.state,
    json_extract(new.record, '$.origin'), json_extract(new.record, '$.writer'),
    CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
CREATE TRIGGER IF NOT EXISTS messages_shared_update AFTER UPDATE OF record ON messages
WHEN EXISTS (SELECT 1 FROM clients) BEGIN
  INSERT INTO changes (id, state, origin, writer, ms) VALUES (new.id, new.state,
    json_extract(new.record, '$.origin'), json_extract(new.record, '$.writer'),
    CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
";

/// A client open on a shared data_dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub pid: u32,
    pub host: String,
    pub user: String,
}

/// The holder of the delivery lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub member: Member,
    /// Unix ms it took the lease.
    pub since_ms: i64,
}

/// One row of the change log.
#[derive(Clone, Debug)]
pub struct Change {
    pub seq: i64,
    pub id: String,
    pub state: i64,
    pub origin: Option<String>,
    pub writer: Option<String>,
}

/// A merge under way on a sharing client: its batch is held back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staged {
    pub batch_id: String,
    /// The client merging, its pid and host.
    pub client: String,
    pub pid: u32,
    pub host: String,
}

impl Staged {
    /// Whether the merge may still finish: on this machine, while its
    /// process runs (a merging process that stalls past its heartbeat
    /// still finishes its merge); elsewhere, while its client is live.
    pub fn may_finish(&self, live: &HashSet<String>) -> bool {
        if self.host == crate::host::host_name() {
            crate::host::pid_alive(self.pid)
        } else {
            live.contains(&self.client)
        }
    }
}

/// Whether a client whose last heartbeat was at `heartbeat_ms` is alive:
/// its heartbeat is fresh and, on this machine, its process runs.
fn alive(pid: u32, host: &str, heartbeat_ms: i64, now_ms: i64) -> bool {
    now_ms - heartbeat_ms < STALE_MS && (host != crate::host::host_name() || crate::host::pid_alive(pid))
}

/// The lease's row: its holder and the holder's last heartbeat (Unix ms).
fn lease_row(conn: &Connection) -> rusqlite::Result<Option<(Holder, i64)>> {
    conn.prepare_cached("SELECT client, pid, host, user, since_ms, heartbeat_ms FROM lease WHERE one = 1")?
        .query_row([], |r| Ok((Holder { member: member(r, 0)?, since_ms: r.get(4)? }, r.get(5)?)))
        .optional()
}

/// The live holder of the delivery lease of the store at `path`, read
/// without opening the outbox: no migration, no damage check, nothing
/// written. `None` when there is no store, no lease table (a store no
/// sharing client has opened) or no live holder.
pub fn peek_lease_holder(path: &Path, now_ms: i64) -> Result<Option<Holder>> {
    if !path.is_file() {
        return Ok(None);
    }
    let read = || -> rusqlite::Result<Option<(Holder, i64)>> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let has_lease: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lease')",
            [],
            |r| r.get(0),
        )?;
        if has_lease {
            lease_row(&conn)
        } else {
            Ok(None)
        }
    };
    let row = read().map_err(|e| super::sql_error(Some(path), "cannot read", e))?;
    Ok(row.filter(|(h, beat)| alive(h.member.pid, &h.member.host, *beat, now_ms)).map(|(h, _)| h))
}

fn member(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Member> {
    Ok(Member { id: row.get(at)?, pid: row.get(at + 1)?, host: row.get(at + 2)?, user: row.get(at + 3)? })
}

impl Store {
    /// Adds `me` to the clients of the data_dir (or renews its row) and
    /// deletes the rows of clients that are gone.
    pub fn heartbeat(&self, me: &Member, now_ms: i64) -> Result<()> {
        let gone = self.gone_clients(now_ms)?;
        self.write(|conn| {
            for id in &gone {
                conn.prepare_cached("DELETE FROM clients WHERE id = ?1")?.execute(params![id])?;
            }
            conn.prepare_cached(
                "INSERT INTO clients (id, pid, host, user, opened_ms, heartbeat_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
                 ON CONFLICT(id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms",
            )?
            .execute(params![me.id, me.pid, me.host, me.user, now_ms])?;
            conn.prepare_cached("DELETE FROM changes WHERE ms < ?1")?.execute(params![now_ms - CHANGES_KEPT_MS])?;
            Ok(())
        })
    }

    /// The ids of clients whose rows remain but who are gone.
    fn gone_clients(&self, now_ms: i64) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, pid, host, heartbeat_ms FROM clients")
            .map_err(|e| self.error("cannot read", e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, r.get::<_, String>(2)?, r.get(3)?)))
            .map_err(|e| self.error("cannot read", e))?;
        let mut gone = Vec::new();
        for row in rows {
            let (id, pid, host, beat) = row.map_err(|e| self.error("cannot read", e))?;
            if !alive(pid, &host, beat, now_ms) {
                gone.push(id);
            }
        }
        Ok(gone)
    }

    /// The ids of the clients alive now.
    pub fn live_clients(&self, now_ms: i64) -> Result<HashSet<String>> {
        let gone: HashSet<String> = self.gone_clients(now_ms)?.into_iter().collect();
        let mut stmt = self.conn.prepare_cached("SELECT id FROM clients").map_err(|e| self.error("cannot read", e))?;
        let ids = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(|e| self.error("cannot read", e))?;
        let mut live = HashSet::new();
        for id in ids {
            let id = id.map_err(|e| self.error("cannot read", e))?;
            if !gone.contains(&id) {
                live.insert(id);
            }
        }
        Ok(live)
    }

    /// Takes or renews the delivery lease for `me`: renewed when `me`
    /// holds it, taken when nobody does or its holder is gone. Returns
    /// whether `me` holds it now and, when it was just taken from a client
    /// that is gone, that client. One transaction.
    pub fn lease(&self, me: &Member, now_ms: i64) -> Result<(bool, Option<Holder>)> {
        let holder = self.lease_row()?;
        match &holder {
            Some((h, _)) if h.member.id == me.id => {
                self.write(|conn| {
                    conn.prepare_cached("UPDATE lease SET heartbeat_ms = ?2 WHERE one = 1 AND client = ?1")?
                        .execute(params![me.id, now_ms])
                })?;
                return Ok((true, None));
            }
            Some((h, beat)) if alive(h.member.pid, &h.member.host, *beat, now_ms) => return Ok((false, None)),
            _ => {}
        }
        // Taken only if the row is still the one judged above: two clients
        // taking over at once cannot both win.
        let previous = holder.as_ref().map(|(h, beat)| (h.member.id.clone(), *beat));
        let taken = self.write(|conn| {
            let current: Option<(String, i64)> = conn
                .prepare_cached("SELECT client, heartbeat_ms FROM lease WHERE one = 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if current != previous {
                return Ok(false);
            }
            conn.prepare_cached(
                "INSERT OR REPLACE INTO lease (one, client, pid, host, user, since_ms, heartbeat_ms) \
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?5)",
            )?
            .execute(params![me.id, me.pid, me.host, me.user, now_ms])?;
            Ok(true)
        })?;
        Ok((taken, if taken { holder.map(|(h, _)| h) } else { None }))
    }

    /// Gives the lease up, if `me` holds it, and leaves the clients.
    pub fn leave(&self, me: &Member) -> Result<()> {
        self.write(|conn| {
            conn.prepare_cached("DELETE FROM lease WHERE client = ?1")?.execute(params![me.id])?;
            conn.prepare_cached("DELETE FROM clients WHERE id = ?1")?.execute(params![me.id])?;
            Ok(())
        })
    }

    /// Forgets every sharing client, the lease and the change log: an
    /// exclusive open, which no sharing client can be beside.
    pub fn forget_sharing(&self) -> Result<()> {
        let left: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM clients) OR EXISTS (SELECT 1 FROM lease) OR EXISTS (SELECT 1 FROM changes)",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.error("cannot read", e))?;
        if !left {
            return Ok(());
        }
        self.write(|conn| conn.execute_batch("DELETE FROM clients; DELETE FROM lease; DELETE FROM changes;"))
    }

    fn lease_row(&self) -> Result<Option<(Holder, i64)>> {
        lease_row(&self.conn).map_err(|e| self.error("cannot read", e))
    }

    /// The holder of the delivery lease, if it is alive.
    pub fn lease_holder(&self, now_ms: i64) -> Result<Option<Holder>> {
        Ok(self.lease_row()?.filter(|(h, beat)| alive(h.member.pid, &h.member.host, *beat, now_ms)).map(|(h, _)| h))
    }

    /// Writes `record` only if the message is in state `expected` now (and,
    /// with `lease_of`, only while that client holds the lease); whether
    /// it was written. Its bytes go as [`Store::update_with_body`] says.
    pub fn update_if(
        &mut self,
        record: &Record,
        body: Option<&[u8]>,
        expected: State,
        lease_of: Option<&str>,
    ) -> Result<bool> {
        let text = serde_json::to_string(record).map_err(|e| Error::internal(format!("store record: {e}")))?;
        let s = &record.status;
        self.write(|conn| {
            // A lease holder never takes a message of a merge under way,
            // whatever its view says.
            let changed = conn
                .prepare_cached(
                    "UPDATE messages SET state = ?2, record = ?3, idem = ?4 WHERE id = ?1 AND state = ?5 \
                     AND (?6 IS NULL OR (EXISTS (SELECT 1 FROM lease WHERE one = 1 AND client = ?6) \
                     AND (batch_id IS NULL OR batch_id NOT IN (SELECT batch_id FROM staged))))",
                )?
                .execute(params![
                    s.id,
                    state_code(s.state),
                    text,
                    record.idempotency_key,
                    state_code(expected),
                    lease_of
                ])?;
            if changed == 1 {
                if record.body_dropped {
                    conn.prepare_cached("DELETE FROM bodies WHERE id = ?1")?.execute(params![s.id])?;
                } else if let Some(bytes) = body.filter(|b| !b.is_empty()) {
                    conn.prepare_cached("INSERT OR REPLACE INTO bodies (id, bytes) VALUES (?1, ?2)")?
                        .execute(params![s.id, bytes])?;
                }
            }
            Ok(changed == 1)
        })
    }

    /// The changes after `seq`, oldest first, and whether rows after `seq`
    /// were pruned before they were read (the reader must then read the
    /// whole outbox again).
    pub fn changes_since(&self, seq: i64) -> Result<(Vec<Change>, bool)> {
        let e = |e| self.error("cannot read", e);
        let first: Option<i64> = self.conn.query_row("SELECT min(seq) FROM changes", [], |r| r.get(0)).map_err(e)?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, id, state, origin, writer FROM changes WHERE seq > ?1 ORDER BY seq")
            .map_err(e)?;
        let rows = stmt
            .query_map(params![seq], |r| {
                Ok(Change { seq: r.get(0)?, id: r.get(1)?, state: r.get(2)?, origin: r.get(3)?, writer: r.get(4)? })
            })
            .map_err(e)?;
        let changes = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(e)?;
        // The rows after `seq` start later: the ones between were pruned unseen.
        let missed = first.is_some_and(|f| f > seq + 1);
        Ok((changes, missed))
    }

    /// The last row of the change log (0 when it is empty).
    pub fn last_change(&self) -> Result<i64> {
        self.conn
            .query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| r.get(0))
            .map_err(|e| self.error("cannot read", e))
    }

    /// Every message `sending` now.
    pub fn sending(&self) -> Result<Vec<Record>> {
        self.records(
            "SELECT rowid, record FROM messages INDEXED BY messages_state WHERE state = ?1",
            params![state_code(State::Sending)],
        )
    }

    /// Notes the merge of `batch_id` under way on client `me` (before any
    /// of its messages is written).
    pub fn stage(&self, batch_id: &str, me: &Member) -> Result<()> {
        self.write(|conn| {
            conn.prepare_cached("INSERT INTO staged (batch_id, client, pid, host) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![batch_id, me.id, me.pid, me.host])
        })
        .map(drop)
    }

    /// The merge of `batch_id` is over (queued whole, or abandoned).
    pub fn unstage(&self, batch_id: &str) -> Result<()> {
        self.write(|conn| conn.prepare_cached("DELETE FROM staged WHERE batch_id = ?1")?.execute(params![batch_id]))
            .map(drop)
    }

    /// The merges under way (none in a store without the table: a format-2
    /// store that could not be migrated yet).
    pub fn staged(&self) -> Result<Vec<Staged>> {
        let e = |e| self.error("cannot read", e);
        if !self.has_staged()? {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare_cached("SELECT batch_id, client, pid, host FROM staged").map_err(e)?;
        let rows = stmt
            .query_map([], |r| Ok(Staged { batch_id: r.get(0)?, client: r.get(1)?, pid: r.get(2)?, host: r.get(3)? }))
            .map_err(e)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(e)
    }

    /// Whether the store has the table of merges under way.
    pub(super) fn has_staged(&self) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'staged')")
            .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
            .map_err(|e| self.error("cannot read", e))
    }

    /// Whether the merge of `batch_id` is under way.
    pub fn is_staged(&self, batch_id: &str) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM staged WHERE batch_id = ?1)")
            .and_then(|mut stmt| stmt.query_row(params![batch_id], |r| r.get(0)))
            .map_err(|e| self.error("cannot read", e))
    }

    /// The messages of `batch_id` that are queued or deferred.
    pub fn batch_waiting(&self, batch_id: &str) -> Result<Vec<Record>> {
        self.records(
            "SELECT rowid, record FROM messages WHERE batch_id = ?1 AND state IN (?2, ?3)",
            params![batch_id, state_code(State::Queued), state_code(State::Deferred)],
        )
    }

    /// The records `sql` selects (rowid, record), past unreadable ones.
    fn records(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Record>> {
        let e = |e| self.error("cannot read", e);
        let mut stmt = self.conn.prepare_cached(sql).map_err(e)?;
        let rows = stmt.query_map(args, |row| Ok((row.get(0)?, row.get(1)?))).map_err(e)?;
        let mut out = Vec::new();
        for row in rows {
            let (rowid, text) = row.map_err(e)?;
            out.extend(self.parse_row(rowid, &text));
        }
        Ok(out)
    }

    /// Every message not final now, oldest first.
    pub fn reload_active(&self) -> Result<Vec<Record>> {
        self.active()
    }
}

/// The error of a write refused because another client changed the
/// message first.
pub(crate) fn changed_elsewhere(id: &str, now: State) -> Error {
    Error::new(Code::State, format!("message {id} was changed by another client meanwhile: it is {} now", now.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> Member {
        Member { id: id.into(), pid: std::process::id(), host: crate::host::host_name(), user: "anna".into() }
    }

    #[test]
    fn the_lease_holder_is_read_from_the_store_without_opening_the_outbox() {
        let dir = std::env::temp_dir().join(format!("smtpb-peek-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("spool").join("outbox.db");
        assert_eq!(peek_lease_holder(&path, 1_000).unwrap(), None, "no store yet");
        {
            let store = Store::open(Some(&dir)).unwrap().store;
            assert_eq!(peek_lease_holder(&path, 1_000).unwrap(), None, "nobody holds the lease");
            let holder = member("service");
            assert_eq!(store.lease(&holder, 1_000).unwrap(), (true, None));
            let seen = peek_lease_holder(&path, 1_500).unwrap().expect("the holder");
            assert_eq!((seen.member, seen.since_ms), (holder, 1_000));
            // Its heartbeat gone stale: nobody delivers.
            assert_eq!(peek_lease_holder(&path, 1_000 + STALE_MS).unwrap(), None);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_client_holds_the_lease_until_its_heartbeat_is_stale_then_another_takes_it() {
        let store = Store::open(None).unwrap().store;
        let (a, b) = (member("a"), member("b"));
        let now = 1_000_000;
        assert_eq!(store.lease(&a, now).unwrap(), (true, None));
        assert_eq!(store.lease(&b, now + 100).unwrap(), (false, None), "a lives: b waits");
        assert_eq!(store.lease(&a, now + 1_000).unwrap(), (true, None), "renewed");
        assert_eq!(store.lease_holder(now + 1_000 + STALE_MS - 1).unwrap().unwrap().member, a);
        // a's heartbeat is STALE_MS old: b takes over, told whom from.
        let (held, from) = store.lease(&b, now + 1_000 + STALE_MS).unwrap();
        assert!(held);
        assert_eq!(from.unwrap().member, a);
        assert_eq!(store.lease(&a, now + 1_000 + STALE_MS + 1).unwrap(), (false, None), "a lost it");
        store.leave(&b).unwrap();
        assert_eq!(store.lease_holder(now + 1_000 + STALE_MS + 2).unwrap(), None, "a close gives it up");
    }

    #[test]
    fn a_holder_whose_process_is_gone_is_replaced_at_once() {
        let store = Store::open(None).unwrap().store;
        let mut gone = member("gone");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--list")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        gone.pid = child.id();
        child.wait().unwrap();
        assert_eq!(store.lease(&gone, 1_000).unwrap(), (true, None));
        let (held, from) = store.lease(&member("next"), 1_001).unwrap();
        assert!(held, "a fresh heartbeat of a dead pid does not keep the lease");
        assert_eq!(from.unwrap().member.id, "gone");
    }

    #[test]
    fn the_lease_holder_cannot_claim_a_message_of_a_staged_batch() {
        let mut store = Store::open(None).unwrap().store;
        let holder = member("holder");
        assert_eq!(store.lease(&holder, 1_000).unwrap(), (true, None));
        let mut record = Record::for_test(State::Queued);
        record.status.batch_id = Some("merging".into());
        store.stage("merging", &member("merger")).unwrap();
        store.insert(&record, b"bytes").unwrap();
        let mut claimed = record.clone();
        claimed.status.state = State::Sending;
        assert!(!store.update_if(&claimed, None, State::Queued, Some("holder")).unwrap(), "staged: not taken");
        assert!(store.is_staged("merging").unwrap());
        store.unstage("merging").unwrap();
        assert!(store.update_if(&claimed, None, State::Queued, Some("holder")).unwrap(), "released: taken");
    }
}
