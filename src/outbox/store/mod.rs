//! The store: every message's status and, until it is final, its bytes,
//! in SQLite (`data_dir/spool/outbox.db`, WAL mode, `synchronous=FULL`).
//!
//! One row per message in `messages` (the status and envelope as JSON,
//! plus the columns the indexes need: state, created_ms, profile in lower
//! case, batch_id, reference, idempotency key); the MIME bytes in `bodies`
//! until the message is sent or cancelled (a failed message keeps them for
//! `smtpb_retry`). `counts` holds the number of messages per state, kept
//! by triggers in the same transactions, so statistics and open never
//! count the history. Every write is one transaction and, with WAL and
//! `synchronous=FULL`, one fsync of the WAL before it returns (new
//! messages of concurrent callers share one: [`Store::insert_group`]):
//! durable when the call returns, and a crash at any point leaves the last committed
//! transaction (SQLite's WAL frames carry checksums; a torn frame is
//! ignored at the next open).
//!
//! An in-memory client's store is SQLite in memory (nothing of it
//! outlives the process): final records are gathered and written
//! [`WRITE_BEHIND`] to a transaction, or before the next read or other
//! write (see [`Store::insert`]); it keeps the newest [`MEMORY_KEPT`]
//! final statuses and forgets older ones.
//!
//! `PRAGMA user_version` is the format: 3 (format 1 was the journal, see
//! [`super::journal`]; format 3 added the tables of a shared data_dir, see
//! [`shared`], and a format-2 store gains them at open). A store of a newer format is refused, naming both
//! versions, before anything is written. A journal found at open is
//! migrated in one transaction, then renamed to
//! `journal.log.v1-migrated-<unix seconds>` (the copy kept); a crash
//! between the two leaves a migrated store and the journal, and the next
//! open only renames it.

use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

mod query;
mod shared;

use super::damage;
use super::journal;
use super::spool::Record;
use crate::error::{Code, Error, Result};
use crate::fsutil;
use crate::status::State;
pub use query::Query;
pub(crate) use query::MAX_LIMIT;
pub(crate) use shared::changed_elsewhere;
pub use shared::{peek_lease_holder, Change, Holder, Member, Staged};

/// WAL pages after which a commit folds the WAL into the database
/// (a PASSIVE checkpoint): what damage to the WAL can cost is bounded by it.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 256;

/// The store format this library writes.
pub(crate) const FORMAT: u32 = 3;

/// Prepared statements kept: the dozen of the send path, and the
/// query variants of `smtpb_outbox_query` beside them.
const STATEMENTS_CACHED: usize = 64;

/// Recovery copies (damaged journals and stores) kept per folder.
const COPIES_KEPT: usize = 3;

const SCHEMA: &str = "
CREATE TABLE messages (
  id TEXT NOT NULL UNIQUE,
  state INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  profile TEXT NOT NULL,
  batch_id TEXT,
  reference TEXT,
  idem TEXT,
  record TEXT NOT NULL
);
CREATE INDEX messages_state ON messages(state, id);
CREATE INDEX messages_batch ON messages(batch_id, id) WHERE batch_id IS NOT NULL;
CREATE INDEX messages_reference ON messages(reference, id) WHERE reference IS NOT NULL;
CREATE INDEX messages_profile ON messages(profile, id);
CREATE UNIQUE INDEX messages_idem ON messages(idem) WHERE idem IS NOT NULL;
CREATE TABLE bodies (id TEXT PRIMARY KEY NOT NULL, bytes BLOB NOT NULL);
CREATE TABLE counts (state INTEGER PRIMARY KEY, n INTEGER NOT NULL);
INSERT INTO counts VALUES (0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0);
CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value);
CREATE TRIGGER messages_insert AFTER INSERT ON messages BEGIN
  UPDATE counts SET n = n + 1 WHERE state = new.state;
END;
CREATE TRIGGER messages_delete AFTER DELETE ON messages BEGIN
  UPDATE counts SET n = n - 1 WHERE state = old.state;
  DELETE FROM bodies WHERE id = old.id;
END;
CREATE TRIGGER messages_state AFTER UPDATE OF state ON messages WHEN old.state <> new.state BEGIN
  UPDATE counts SET n = n - 1 WHERE state = old.state;
  UPDATE counts SET n = n + 1 WHERE state = new.state;
END;
";

/// The number of a state in the store.
pub(crate) fn state_code(state: State) -> i64 {
    match state {
        State::Queued => 0,
        State::Sending => 1,
        State::Sent => 2,
        State::Deferred => 3,
        State::Failed => 4,
        State::Cancelled => 5,
    }
}

/// The state of a number in the store.
pub(crate) fn state_of(code: i64) -> Option<State> {
    [State::Queued, State::Sending, State::Sent, State::Deferred, State::Failed, State::Cancelled]
        .into_iter()
        .find(|s| state_code(*s) == code)
}

fn time_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The store of one client.
pub struct Store {
    conn: Connection,
    path: Option<PathBuf>,
    /// In memory only: final records not written yet, with their bytes
    /// (see [`Store::insert`]).
    pending: RefCell<Vec<(Record, Vec<u8>)>>,
    /// Rows whose record cannot be read (by rowid): skipped by every read
    /// and counted in [`Store::damaged_records`].
    bad_rows: RefCell<BTreeSet<i64>>,
    /// Records lost to damage found at this open and not yet written to
    /// `meta` (the disk was full).
    damaged_unsaved: Cell<i64>,
    /// Whether the last write failed because the disk is full.
    disk_full: Cell<bool>,
    /// In memory only: final statuses forgotten beyond [`MEMORY_KEPT`],
    /// not yet told to the purge hook.
    forgotten: RefCell<Vec<String>>,
}

/// Final records an in-memory store gathers before writing them in one
/// transaction.
pub(crate) const WRITE_BEHIND: usize = 64;

/// The final statuses an in-memory store keeps, the newest: an older one
/// is forgotten (as a purge would) when newer ones are written, so that a
/// client open for months holds no more than these. SMTPKeepSentDays and
/// SMTPKeepFailedDays purge sooner, as in a durable store.
pub(crate) const MEMORY_KEPT: usize = 10_000;

/// The bytes of failed messages an in-memory store gathers before writing
/// them, whatever their number: gathered bytes are a second copy in memory.
const WRITE_BEHIND_BYTES: usize = 4 << 20;

/// What opening found.
pub struct Opened {
    pub store: Store,
    /// Every message not final, oldest first.
    pub active: Vec<Record>,
    /// Warnings for the host (damage recovered past), each already logged.
    pub warnings: Vec<String>,
}

impl Store {
    fn error(&self, what: &str, e: rusqlite::Error) -> Error {
        sql_error(self.path.as_deref(), what, e)
    }

    /// Opens (or creates) the store of `data_dir`, migrating a journal if
    /// there is one; `None` = a store in memory.
    pub fn open(data_dir: Option<&Path>) -> Result<Opened> {
        let Some(data_dir) = data_dir else {
            let conn = Connection::open_in_memory().map_err(|e| sql_error(None, "cannot open", e))?;
            conn.set_prepared_statement_cache_capacity(STATEMENTS_CACHED);
            conn.execute_batch(SCHEMA).map_err(|e| sql_error(None, "cannot create", e))?;
            conn.execute_batch(shared::TABLES).map_err(|e| sql_error(None, "cannot create", e))?;
            return Ok(Opened { store: Store::new(conn, None), active: Vec::new(), warnings: Vec::new() });
        };
        let dir = data_dir.join("spool");
        let spool_existed = dir.is_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, &e))?;
        let path = dir.join("outbox.db");
        let journal_path = dir.join("journal.log");
        // Damage SQLite would pass over in silence, found before it opens.
        let mut found = damage::before_open(data_dir, &path, spool_existed, journal_path.exists())?;
        let mut warnings = std::mem::take(&mut found.warnings);
        // Refuse what this library cannot read before anything is written.
        let format = if path.exists() { Some(read_format(&path)?) } else { None };
        if let Some(v) = format {
            if v > FORMAT {
                return Err(Error::new(
                    Code::Io,
                    format!(
                        "the outbox store {} has format {v}; this library reads format {FORMAT} and older",
                        path.display()
                    ),
                ));
            }
        }
        let needs_setup = format.is_none_or(|v| v == 0);
        let journal = if needs_setup && journal_path.exists() {
            let v = journal::format_of(&journal_path)?;
            if v > journal::FORMAT {
                return Err(Error::new(
                    Code::Io,
                    format!(
                        "the spool {} has format {v}; this library reads format {} (journal) and {FORMAT} (store) and older",
                        journal_path.display(),
                        journal::FORMAT
                    ),
                ));
            }
            Some(journal::read(&journal_path)?)
        } else {
            None
        };
        let mut store = Store::open_file(&path, needs_setup, false).or_else(|first| {
            // SQLite makes its WAL index (outbox.db-shm) by writing a byte
            // per page of it, which fails on a full disk. In exclusive
            // locking mode the index lives in memory: the data_dir is
            // this client's alone anyway, so the outbox can drain.
            let store = Store::open_file(&path, needs_setup, true).map_err(|_| first.clone())?;
            log::warn!("{}; the store was opened with its WAL index in memory", first.message());
            Ok::<_, Error>(store)
        })?;
        if needs_setup {
            let tx = store.conn.transaction().map_err(|e| sql_error(Some(&path), "cannot write", e))?;
            tx.execute_batch(SCHEMA).map_err(|e| sql_error(Some(&path), "cannot create", e))?;
            tx.execute_batch(shared::TABLES).map_err(|e| sql_error(Some(&path), "cannot create", e))?;
            tx.execute_batch(shared::TRIGGERS).map_err(|e| sql_error(Some(&path), "cannot create", e))?;
            if let Some(replayed) = &journal {
                let lost: u64 = replayed.damage.iter().map(|d| d.records).sum();
                for (record, body) in &replayed.messages {
                    insert_row(&tx, record, body.as_deref()).map_err(|e| sql_error(Some(&path), "cannot write", e))?;
                }
                tx.execute("INSERT OR REPLACE INTO meta VALUES ('damaged_records', ?1)", params![lost as i64])
                    .map_err(|e| sql_error(Some(&path), "cannot write", e))?;
                tx.execute("INSERT OR REPLACE INTO meta VALUES ('migrated_from', 'journal format 1')", [])
                    .map_err(|e| sql_error(Some(&path), "cannot write", e))?;
            }
            tx.pragma_update(None, "user_version", FORMAT).map_err(|e| sql_error(Some(&path), "cannot write", e))?;
            tx.commit().map_err(|e| sql_error(Some(&path), "cannot write", e))?;
        }
        // A format-3 store made before merges were staged in it gains
        // that table too.
        if format.is_some_and(|v| (1..FORMAT).contains(&v)) || (format == Some(FORMAT) && !store.has_staged()?) {
            store.migrate_to_shared();
        }
        if let Some(replayed) = &journal {
            for d in &replayed.damage {
                let text = if d.tail {
                    format!(
                        "warning: the spool {} ends in a torn or unreadable record at offset {} (1 record lost, \
                         the write a crash cut short); the rest was recovered",
                        journal_path.display(),
                        d.offset
                    )
                } else {
                    format!(
                        "warning: the spool {} is damaged at offset {}: {} record(s) lost; every intact record \
                         after it was recovered",
                        journal_path.display(),
                        d.offset,
                        d.records
                    )
                };
                log::warn!("{text}");
                warnings.push(text);
            }
        }
        if journal_path.exists() {
            // Migrated (now, or by an open that ended before this rename).
            let copy = unique_copy_name(&dir, "journal.log.v1-migrated");
            std::fs::rename(&journal_path, &copy).map_err(|e| Error::io("cannot rename", &journal_path, &e))?;
            fsutil::sync_dir(&dir).map_err(|e| Error::io("cannot sync", &dir, &e))?;
            log::info!(
                "the spool {} was migrated to {}; the journal is kept as {}",
                journal_path.display(),
                path.display(),
                copy.display()
            );
        }
        store.after_open(&found, &mut warnings);
        let active = store.active()?;
        store.report_unreadable(&mut warnings);
        Ok(Opened { store, active, warnings })
    }

    /// A connection to the store at `path`, configured; `exclusive`: in
    /// exclusive locking mode (the WAL index in memory, no `-shm` file).
    fn open_file(path: &Path, fresh: bool, exclusive: bool) -> Result<Store> {
        let conn = Connection::open(path).map_err(|e| sql_error(Some(path), "cannot open", e))?;
        conn.set_prepared_statement_cache_capacity(STATEMENTS_CACHED);
        if exclusive {
            conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
                .map_err(|e| sql_error(Some(path), "cannot open", e))?;
        }
        let mut store = Store::new(conn, Some(path.to_path_buf()));
        store.configure(fresh)?;
        Ok(store)
    }

    fn new(conn: Connection, path: Option<PathBuf>) -> Store {
        Store {
            conn,
            path,
            pending: RefCell::default(),
            bad_rows: RefCell::default(),
            damaged_unsaved: Cell::new(0),
            disk_full: Cell::new(false),
            forgotten: RefCell::default(),
        }
    }

    /// What follows the checks of [`damage::before_open`] once SQLite has
    /// the store: the records lost are counted (in `meta`, or in memory
    /// while the disk is full), the WAL with the damage is folded into the
    /// database and truncated (so the damage is reported once), the store
    /// is checked for being writable.
    fn after_open(&mut self, found: &damage::Found, warnings: &mut Vec<String>) {
        let path = self.path.clone().unwrap_or_default();
        if found.lost > 0 {
            self.damaged_unsaved.set(found.lost as i64);
            self.save_damaged();
        }
        if found.wal_checked {
            if let Err(e) = self.checkpoint() {
                log::warn!("{}", e.message());
            }
        }
        if self.conn.is_readonly("main").unwrap_or(false) {
            let text = format!(
                "warning: the outbox store {} can only be read (its header or its file permissions forbid \
                 writing): mail is delivered, but no new message or change of state can be recorded",
                path.display()
            );
            log::warn!("{text}");
            warnings.push(text);
        }
        damage::mark_store(&path);
    }

    /// Says, at open, which rows of the messages not final (the rows an
    /// open reads) cannot be read. The history is not read at open (that
    /// would make the open as slow as the history is long): a damaged
    /// final record is found, logged, skipped and counted when a query,
    /// list or status reads it.
    fn report_unreadable(&self, warnings: &mut Vec<String>) {
        let n = self.bad_rows.borrow().len();
        if n > 0 {
            let text = format!(
                "warning: {n} record(s) of the outbox store {} cannot be read (damaged): they are skipped \
                 and counted in damaged_records; every other record stays readable",
                self.path.as_deref().unwrap_or(Path::new(":memory:")).display()
            );
            log::warn!("{text}");
            warnings.push(text);
        }
    }

    /// Writes the records lost to damage found at this open to `meta`;
    /// they stay counted in memory when it fails.
    fn save_damaged(&self) {
        let n = self.damaged_unsaved.get();
        if n == 0 {
            return;
        }
        let saved = self.write(|conn| {
            conn.execute(
                "INSERT INTO meta VALUES ('damaged_records', ?1) \
                 ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
                params![n],
            )
        });
        match saved {
            Ok(_) => self.damaged_unsaved.set(0),
            Err(e) => log::warn!("records lost to damage, counted in memory only: {}", e.message()),
        }
    }

    /// Format 2 → 3: adds the tables of a shared data_dir, in one
    /// transaction. A store that cannot take them (read-only, a full disk)
    /// stays format 2 and serves an exclusive client; a shared open of it
    /// fails at its first write to them.
    fn migrate_to_shared(&mut self) {
        let migrated = self.write(|conn| {
            conn.execute_batch(shared::TABLES)?;
            conn.execute_batch(shared::TRIGGERS)?;
            conn.pragma_update(None, "user_version", FORMAT)
        });
        if let Err(e) = migrated {
            log::warn!("{}; the store keeps format 2 until it can", e.message());
        }
    }

    fn configure(&mut self, fresh: bool) -> Result<()> {
        let e = |e| sql_error(self.path.as_deref(), "cannot open", e);
        if fresh {
            // Only takes effect before the first table is created.
            self.conn.pragma_update(None, "auto_vacuum", "INCREMENTAL").map_err(e)?;
        }
        self.conn.pragma_update(None, "journal_mode", "WAL").map_err(e)?;
        self.conn.pragma_update(None, "synchronous", "FULL").map_err(e)?;
        // Committed changes reach the database (out of reach of damage to
        // the WAL) after at most this many pages, not SQLite's 1000.
        self.conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES).map_err(e)?;
        self.conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(e)?;
        Ok(())
    }

    /// Every message not final, oldest first.
    fn active(&self) -> Result<Vec<Record>> {
        // One indexed range per state (an ORDER BY over the three could
        // make the planner walk the whole id index instead).
        let mut out = Vec::new();
        for state in [State::Queued, State::Sending, State::Deferred] {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT rowid, record FROM messages INDEXED BY messages_state WHERE state = ?1")
                .map_err(|e| self.error("cannot read", e))?;
            let rows = stmt
                .query_map(params![state_code(state)], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(|e| self.error("cannot read", e))?;
            for row in rows {
                let (rowid, text) = row.map_err(|e| self.error("cannot read", e))?;
                out.extend(self.parse_row(rowid, &text));
            }
        }
        out.sort_by(|a, b| a.status.id.cmp(&b.status.id));
        Ok(out)
    }

    /// A row's record, or `None` when it cannot be read: the row is then
    /// remembered as damaged (logged once, counted in
    /// [`Store::damaged_records`]) and skipped by every read.
    fn parse_row(&self, rowid: i64, text: &rusqlite::types::Value) -> Option<Record> {
        if self.bad_rows.borrow().contains(&rowid) {
            return None;
        }
        let parsed = match text {
            rusqlite::types::Value::Text(t) => self.parse(t),
            _ => Err(Error::new(Code::Io, "a record is not text".to_string())),
        };
        match parsed {
            Ok(record) => Some(record),
            Err(e) => {
                log::warn!("{} (row {rowid}); it is skipped", e.message());
                self.bad_rows.borrow_mut().insert(rowid);
                None
            }
        }
    }

    fn parse(&self, text: &str) -> Result<Record> {
        serde_json::from_str(text).map_err(|e| {
            Error::new(
                Code::Io,
                format!(
                    "a status in the outbox store {} is damaged: {e}",
                    self.path.as_deref().unwrap_or(Path::new(":memory:")).display()
                ),
            )
        })
    }

    /// Runs `f` as one transaction, committed when it succeeds and rolled
    /// back when it or the commit fails. BEGIN and COMMIT are cached
    /// statements: a message's every change of state is one of these.
    fn write<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let run = |conn: &Connection| -> rusqlite::Result<T> {
            conn.prepare_cached("BEGIN")?.execute([])?;
            let value = f(conn)?;
            conn.prepare_cached("COMMIT")?.execute([])?;
            Ok(value)
        };
        let result = run(&self.conn);
        self.disk_full.set(matches!(&result, Err(e) if e.sqlite_error_code() == Some(ErrorCode::DiskFull)));
        result.map_err(|e| {
            if !self.conn.is_autocommit() {
                let _ = self.conn.prepare_cached("ROLLBACK").and_then(|mut stmt| stmt.execute([]));
            }
            self.error("cannot write", e)
        })
    }

    /// Writes a new message and its bytes; durable when it returns.
    ///
    /// In memory, a final record (the one write of an in-memory client's
    /// `smtpb_send`) is gathered with the next ones and written with them
    /// in one transaction, once there are [`WRITE_BEHIND`] or 4 MiB of
    /// bytes, or before anything else reads or writes the store: every call
    /// sees it as if it were written at once, and nothing in memory
    /// outlives the process anyway.
    pub fn insert(&mut self, record: &Record, body: &[u8]) -> Result<()> {
        if self.path.is_none() && record.status.state.is_final() {
            let full = {
                let mut pending = self.pending.borrow_mut();
                pending.push((record.clone(), body.to_vec()));
                pending.len() >= WRITE_BEHIND
                    || pending.iter().map(|(_, bytes)| bytes.len()).sum::<usize>() >= WRITE_BEHIND_BYTES
            };
            return if full { self.flush() } else { Ok(()) };
        }
        self.flush()?;
        self.write(|conn| insert_row(conn, record, Some(body).filter(|b| !b.is_empty())))
    }

    /// Writes new messages with their bytes in one transaction (a group
    /// commit, see [`super::group`]); for each, whether it was written:
    /// false when its idempotency key is already taken (by an earlier
    /// message, or one before it in `rows`). Durable when it returns if
    /// `synced`; else written without waiting for the disk (the WAL is
    /// fsynced by the next synced commit, and a process that dies keeps
    /// what it wrote: only a crash of the machine can lose it).
    pub fn insert_group(&mut self, rows: &[(&Record, &[u8])], synced: bool) -> Result<Vec<bool>> {
        self.flush()?;
        let relaxed = !synced && self.path.is_some();
        if relaxed {
            self.set_synchronous("NORMAL")?;
        }
        let result = self.write(|conn| {
            let mut written = Vec::with_capacity(rows.len());
            for (record, body) in rows {
                let body = Some(*body).filter(|b| !b.is_empty());
                if record.idempotency_key.is_none() {
                    insert_row(conn, record, body)?;
                    written.push(true);
                    continue;
                }
                // A taken key undoes this row only.
                conn.prepare_cached("SAVEPOINT row")?.execute([])?;
                match insert_row(conn, record, body) {
                    Ok(()) => written.push(true),
                    Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                        conn.prepare_cached("ROLLBACK TO row")?.execute([])?;
                        written.push(false);
                    }
                    Err(e) => return Err(e),
                }
                conn.prepare_cached("RELEASE row")?.execute([])?;
            }
            Ok(written)
        });
        if relaxed {
            self.set_synchronous("FULL")?;
        }
        result
    }

    fn set_synchronous(&self, level: &str) -> Result<()> {
        self.conn
            .prepare_cached(&format!("PRAGMA synchronous = {level}"))
            .and_then(|mut stmt| stmt.execute([]))
            .map(drop)
            .map_err(|e| self.error("cannot write", e))
    }

    /// How many final records are gathered and not written yet.
    #[cfg(test)]
    pub(crate) fn gathered(&self) -> usize {
        self.pending.borrow().len()
    }

    /// Writes the gathered final records of an in-memory store, in one
    /// transaction; they stay gathered if it fails. The oldest final
    /// statuses beyond [`MEMORY_KEPT`] go in the same transaction (see
    /// [`Store::take_forgotten`]).
    fn flush(&self) -> Result<()> {
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() {
            return Ok(());
        }
        let forgotten = self.write(|conn| {
            for (record, body) in pending.iter() {
                insert_row(conn, record, Some(body.as_slice()).filter(|b| !b.is_empty()))?;
            }
            forget_beyond_kept(conn)
        })?;
        pending.clear();
        self.forgotten.borrow_mut().extend(forgotten);
        Ok(())
    }

    /// The ids of the final statuses an in-memory store forgot (beyond
    /// [`MEMORY_KEPT`]) since the last call: their transcripts go too.
    pub fn take_forgotten(&self) -> Vec<String> {
        std::mem::take(&mut *self.forgotten.borrow_mut())
    }

    /// Writes a message's new state; its bytes go when it no longer needs
    /// them. Durable when it returns; nothing changes when it fails.
    pub fn update(&mut self, record: &Record) -> Result<()> {
        self.update_with_body(record, None)
    }

    /// [`Store::update`], also writing the message's bytes when `body` is
    /// given (a message recorded without them: `smtpb_send` on an
    /// in-memory client, which keeps them only once the message fails).
    pub fn update_with_body(&mut self, record: &Record, body: Option<&[u8]>) -> Result<()> {
        self.flush()?;
        let text = serde_json::to_string(record).map_err(|e| Error::internal(format!("store record: {e}")))?;
        let s = &record.status;
        let in_memory = self.path.is_none();
        self.write(|conn| {
            conn.prepare_cached("UPDATE messages SET state = ?2, record = ?3, idem = ?4 WHERE id = ?1")?
                .execute(params![s.id, state_code(s.state), text, record.idempotency_key])?;
            if record.body_dropped {
                conn.prepare_cached("DELETE FROM bodies WHERE id = ?1")?.execute(params![s.id])?;
            } else if let Some(bytes) = body.filter(|b| !b.is_empty()) {
                conn.prepare_cached("INSERT OR REPLACE INTO bodies (id, bytes) VALUES (?1, ?2)")?
                    .execute(params![s.id, bytes])?;
            }
            if in_memory && s.state.is_final() {
                self.forgotten.borrow_mut().extend(forget_beyond_kept(conn)?);
            }
            Ok(())
        })
    }

    /// Whether the last write failed because the disk is full.
    pub fn disk_full(&self) -> bool {
        self.disk_full.get()
    }

    /// Whether the store lives in memory (an in-memory client): nothing in
    /// it survives the process.
    pub fn in_memory(&self) -> bool {
        self.path.is_none()
    }

    /// A message's bytes, if still kept.
    pub fn body(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.flush()?;
        self.conn
            .prepare_cached("SELECT bytes FROM bodies WHERE id = ?1")
            .and_then(|mut stmt| stmt.query_row(params![id], |row| row.get(0)).optional())
            .map_err(|e| self.error("cannot read", e))
    }

    /// A message's record.
    pub fn get(&self, id: &str) -> Result<Option<Record>> {
        self.flush()?;
        let row: Option<(i64, rusqlite::types::Value)> = self
            .conn
            .prepare_cached("SELECT rowid, record FROM messages WHERE id = ?1")
            .and_then(|mut stmt| stmt.query_row(params![id], |row| Ok((row.get(0)?, row.get(1)?))).optional())
            .map_err(|e| self.error("cannot read", e))?;
        match row {
            None => Ok(None),
            Some((rowid, text)) => self.parse_row(rowid, &text).map(Some).ok_or_else(|| {
                Error::new(
                    Code::Io,
                    format!(
                        "the record of {id} in the outbox store {} is damaged and cannot be read",
                        self.path.as_deref().unwrap_or(Path::new(":memory:")).display()
                    ),
                )
            }),
        }
    }

    /// The message that holds an idempotency key.
    pub fn idempotent(&self, key: &str) -> Result<Option<String>> {
        self.flush()?;
        self.conn
            .prepare_cached("SELECT id FROM messages WHERE idem = ?1")
            .and_then(|mut stmt| stmt.query_row(params![key], |row| row.get(0)).optional())
            .map_err(|e| self.error("cannot read", e))
    }

    /// Records damaged beyond recovery so far: lost from the journal's
    /// migration and to damage found at an open (a damaged, truncated or
    /// deleted WAL, a deleted database), plus the rows found unreadable.
    pub fn damaged_records(&self) -> i64 {
        let saved = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'damaged_records'", [], |row| row.get::<_, i64>(0))
            .optional()
            .ok()
            .flatten()
            .unwrap_or(0);
        saved + self.damaged_unsaved.get() + self.bad_rows.borrow().len() as i64
    }

    /// Deletes up to `limit` final messages created before `before_ms` in
    /// `states` (with their bytes); their ids. One transaction.
    pub fn purge_chunk(&mut self, before_ms: i64, states: &[State], limit: usize) -> Result<Vec<String>> {
        self.flush()?;
        let path = self.path.clone();
        let e = |e| sql_error(path.as_deref(), "cannot purge", e);
        let tx = self.conn.transaction().map_err(e)?;
        let mut ids = Vec::new();
        for s in states.iter().filter(|s| s.is_final()) {
            if ids.len() >= limit {
                break;
            }
            let mut stmt = tx
                .prepare_cached(
                    "DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages WHERE state = ?1 AND id < ?2 \
                     AND created_ms < ?3 LIMIT ?4) RETURNING id",
                )
                .map_err(e)?;
            let rows = stmt
                .query_map(
                    params![state_code(*s), ulid_floor(before_ms + 60_000), before_ms, (limit - ids.len()) as i64],
                    |row| row.get::<_, String>(0),
                )
                .map_err(e)?;
            for row in rows {
                ids.push(row.map_err(e)?);
            }
        }
        tx.commit().map_err(e)?;
        Ok(ids)
    }

    /// Gives up to `pages` free pages back to the file system; false when
    /// none are left.
    pub fn reclaim_step(&mut self, pages: u32) -> Result<bool> {
        self.flush()?;
        let read = |sql: &str| -> Result<i64> {
            self.conn.query_row(sql, [], |r| r.get(0)).map_err(|e| self.error("cannot read", e))
        };
        // 2 = INCREMENTAL (a store in memory has none).
        if read("PRAGMA auto_vacuum")? != 2 {
            return Ok(false);
        }
        let free = read("PRAGMA freelist_count")?;
        if free == 0 {
            return Ok(false);
        }
        // The pragma frees one page per step of its statement: step it to
        // the end, so that one transaction frees up to `pages`.
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA incremental_vacuum({pages})"))
            .map_err(|e| self.error("cannot compact", e))?;
        let mut rows = stmt.query([]).map_err(|e| self.error("cannot compact", e))?;
        while rows.next().map_err(|e| self.error("cannot compact", e))?.is_some() {}
        drop(rows);
        drop(stmt);
        Ok(read("PRAGMA freelist_count")? < free)
    }

    /// Moves the WAL into the database and truncates it (after a purge).
    pub fn checkpoint(&mut self) -> Result<()> {
        self.flush()?;
        if self.path.is_some() {
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(|e| self.error("cannot checkpoint", e))?;
        }
        Ok(())
    }

    /// Writes many records (with their bytes, if given) in one transaction.
    /// Benchmarks make a history this way; not a path the library itself
    /// takes.
    pub fn insert_many(&mut self, records: &[(Record, Option<Vec<u8>>)]) -> Result<()> {
        self.flush()?;
        let path = self.path.clone();
        let e = |e| sql_error(path.as_deref(), "cannot write", e);
        let tx = self.conn.transaction().map_err(e)?;
        for (r, body) in records {
            insert_row(&tx, r, body.as_deref()).map_err(e)?;
        }
        tx.commit().map_err(e)
    }
}

fn insert_row(conn: &Connection, record: &Record, body: Option<&[u8]>) -> rusqlite::Result<()> {
    let s = &record.status;
    let text = serde_json::to_string(record).expect("a record serialises");
    // Every caller undoes the whole transaction when a row without an
    // idempotency key fails, so such a row is inserted OR ROLLBACK: SQLite
    // then needs no statement journal (a copy of every page the insert and
    // its count trigger touch), which took 40 % of an insert. A row with a
    // key keeps statement-level undo: a taken key undoes that row alone
    // (see `Store::insert_group`).
    let insert = if record.idempotency_key.is_none() {
        "INSERT OR ROLLBACK INTO messages (id, state, created_ms, profile, batch_id, reference, idem, record) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    } else {
        "INSERT INTO messages (id, state, created_ms, profile, batch_id, reference, idem, record) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    };
    conn.prepare_cached(insert)?.execute(params![
        s.id,
        state_code(s.state),
        time_ms(s.created_at),
        s.profile.to_ascii_lowercase(),
        s.batch_id,
        s.reference,
        record.idempotency_key,
        text
    ])?;
    if let Some(bytes) = body {
        conn.prepare_cached("INSERT INTO bodies (id, bytes) VALUES (?1, ?2)")?.execute(params![s.id, bytes])?;
    }
    Ok(())
}

/// Deletes the oldest final statuses beyond [`MEMORY_KEPT`] (of an
/// in-memory store); their ids.
fn forget_beyond_kept(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let finals: i64 =
        conn.prepare_cached("SELECT sum(n) FROM counts WHERE state IN (2, 4, 5)")?.query_row([], |row| row.get(0))?;
    let excess = finals - MEMORY_KEPT as i64;
    if excess <= 0 {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(
        "DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages WHERE state IN (2, 4, 5) \
         ORDER BY id LIMIT ?1) RETURNING id",
    )?;
    let ids = stmt.query_map(params![excess], |row| row.get::<_, String>(0))?.collect();
    ids
}

/// The smallest ULID (text) of Unix ms `ms`.
pub(crate) fn ulid_floor(ms: i64) -> String {
    ulid::Ulid::from_parts(ms.clamp(0, (1i64 << 48) - 1) as u64, 0).to_string()
}

/// `PRAGMA user_version` of the store at `path`, read without writing:
/// from the file's header (bytes 60..64, big-endian), or through SQLite
/// when a WAL may hold a newer header.
fn read_format(path: &Path) -> Result<u32> {
    let wal = path.with_file_name(format!("{}-wal", path.file_name().and_then(|n| n.to_str()).unwrap_or("outbox.db")));
    if !wal.metadata().is_ok_and(|m| m.len() > 0) {
        let mut head = [0u8; 64];
        let mut file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, &e))?;
        use std::io::Read;
        match file.read_exact(&mut head) {
            Ok(()) if &head[..16] == b"SQLite format 3\0" => {
                return Ok(u32::from_be_bytes(head[60..64].try_into().expect("4 bytes")));
            }
            // Empty: created by an open that ended before its first write.
            Err(_) if file.metadata().is_ok_and(|m| m.len() == 0) => return Ok(0),
            _ => {
                return Err(Error::new(Code::Io, format!("{} is not a smtpbridge outbox store", path.display())));
            }
        }
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| sql_error(Some(path), "cannot open", e))?;
    conn.query_row("PRAGMA user_version", [], |row| row.get::<_, u32>(0))
        .map_err(|e| sql_error(Some(path), "cannot read", e))
}

fn sql_error(path: Option<&Path>, what: &str, e: rusqlite::Error) -> Error {
    let where_ = path.map(|p| p.display().to_string()).unwrap_or_else(|| "in memory".into());
    let detail = match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => "the disk is full".to_string(),
        Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => format!("the store is damaged ({e})"),
        _ => e.to_string(),
    };
    Error::new(Code::Io, format!("{what} the outbox store {where_}: {detail}"))
}

/// A name `dir/<stem>-<unix seconds>[-n]` not yet taken; older copies with
/// the same stem beyond the last few are removed.
pub(crate) fn unique_copy_name(dir: &Path, stem: &str) -> PathBuf {
    let now = fsutil::unix_now();
    let mut n = 0;
    let path = loop {
        let name = if n == 0 { format!("{stem}-{now}") } else { format!("{stem}-{now}-{n}") };
        let p = dir.join(name);
        if !p.exists() {
            break p;
        }
        n += 1;
    };
    let mut old: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{stem}-")))
                .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), e.path()))
                .collect()
        })
        .unwrap_or_default();
    old.sort();
    // Room for the new copy.
    while old.len() >= COPIES_KEPT {
        let (_, p) = old.remove(0);
        let _ = std::fs::remove_file(p);
    }
    path
}
