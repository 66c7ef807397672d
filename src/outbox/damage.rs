//! Damage to the store that SQLite would pass over in silence, looked for
//! at open before SQLite touches the files (ABI §20 "Damage is never
//! silent"):
//!
//! - a WAL that lost committed transactions (see [`super::wal`]);
//! - a missing or empty `outbox.db` beside a used data_dir: the marker
//!   [`MARKER`] (written once the data_dir has a store), or a spool
//!   folder the library made earlier beside `config.json` or
//!   `credentials.json`. A data_dir whose spool never existed is new
//!   (a configuration copied in before the first open is not damage);
//! - a database header whose file format bytes (18 and 19) are out of
//!   range, which makes SQLite open the store read-only or not at all:
//!   they are set back to 2 (WAL), the only value this store has.
//!
//! Each is a warning for the host (see `smtpb_client_open`) and the
//! records lost are counted in `damaged_records`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{store::unique_copy_name, wal};
use crate::error::{Error, Result};
use crate::fsutil;

/// The marker of a data_dir that has a store (beside config.json).
pub const MARKER: &str = "store.json";

/// What the checks found.
#[derive(Debug, Default)]
pub struct Found {
    pub warnings: Vec<String>,
    /// Records (transactions) lost; at least 1 per loss of unknown size.
    pub lost: u64,
    /// Whether a WAL or wal-index was there (and is to be folded in).
    pub wal_checked: bool,
}

impl Found {
    fn warn(&mut self, text: String) {
        log::warn!("{text}");
        self.warnings.push(text);
    }
}

/// The checks, before SQLite opens `db` (`data_dir/spool/outbox.db`).
/// `spool_existed`: the spool folder was there before this open;
/// `migrating`: a 1.0 journal is there to be migrated (no store yet is
/// then expected).
pub fn before_open(data_dir: &Path, db: &Path, spool_existed: bool, migrating: bool) -> Result<Found> {
    let mut found = Found::default();
    let db_len = db.metadata().map(|m| m.len()).unwrap_or(0);
    if db_len == 0 {
        let used = data_dir.join(MARKER).exists()
            || (spool_existed && ["config.json", "credentials.json"].iter().any(|f| data_dir.join(f).exists()));
        if used && !migrating {
            let what = if db.exists() { "is empty" } else { "is missing" };
            let mut text = format!(
                "warning: the outbox store {} {what} although this data directory had one: its records are lost \
                 (an unknown number, counted as 1 in damaged_records); a new, empty store was made",
                db.display()
            );
            // A WAL left by the lost database belongs to it, not to the new one.
            for suffix in ["-wal", "-shm"] {
                let orphan = sibling(db, suffix);
                if orphan.exists() {
                    let dir = db.parent().unwrap_or(Path::new("."));
                    let stem = format!("outbox.db{suffix}.orphaned");
                    let copy = unique_copy_name(dir, &stem);
                    std::fs::rename(&orphan, &copy).map_err(|e| Error::io("cannot rename", &orphan, &e))?;
                    if suffix == "-wal" {
                        text.push_str(&format!("; its WAL is kept as {}", copy.display()));
                    }
                }
            }
            found.warn(text);
            found.lost += 1;
        }
        return Ok(found);
    }
    repair_header(db, &mut found)?;
    let checked = wal::check_files(db).map_err(|e| Error::io("cannot read", &sibling(db, "-wal"), &e))?;
    if let Some(c) = checked {
        found.wal_checked = true;
        if c.lost > 0 {
            let wal_path = sibling(db, "-wal");
            let mut text = format!(
                "warning: the WAL {} of the outbox store is damaged ({}): {}{} committed transaction(s) (new \
                 messages or changes of state) were lost; everything before the damage was recovered",
                wal_path.display(),
                c.reason,
                if c.upper_bound { "up to " } else { "" },
                c.lost
            );
            if wal_path.exists() {
                let dir = db.parent().unwrap_or(Path::new("."));
                let copy = unique_copy_name(dir, "outbox.db-wal.damaged");
                match std::fs::copy(&wal_path, &copy) {
                    Ok(_) => text.push_str(&format!("; the damaged WAL is kept as {}", copy.display())),
                    Err(e) => {
                        let _ = std::fs::remove_file(&copy);
                        log::warn!("no copy of the damaged WAL {} was kept: {e}", wal_path.display());
                    }
                }
            }
            found.warn(text);
            found.lost += c.lost;
        }
    }
    Ok(found)
}

/// Sets the file format bytes (18, 19) of the database header back to 2
/// when they are out of range (a value above 2 makes SQLite open the
/// database read-only, or refuse it).
fn repair_header(db: &Path, found: &mut Found) -> Result<()> {
    let mut head = [0u8; 20];
    let mut file = match std::fs::OpenOptions::new().read(true).write(true).open(db) {
        Ok(f) => f,
        // Read-only file: SQLite opens it read-only and after_open says so.
        Err(_) => return Ok(()),
    };
    if file.read_exact(&mut head).is_err() || &head[..16] != b"SQLite format 3\0" {
        return Ok(());
    }
    let (write, read) = (head[18], head[19]);
    if (1..=2).contains(&write) && (1..=2).contains(&read) {
        return Ok(());
    }
    file.seek(SeekFrom::Start(18))
        .and_then(|_| file.write_all(&[2, 2]))
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io("cannot repair", db, &e))?;
    found.warn(format!(
        "warning: the header of the outbox store {} was damaged: its file format bytes (18 and 19) were {write} and \
         {read}, which would leave the store read-only or unreadable; they were set back to 2 (no record was lost)",
        db.display()
    ));
    Ok(())
}

/// `<db><suffix>`, e.g. `outbox.db-wal`.
pub fn sibling(db: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    std::path::PathBuf::from(name)
}

/// Writes the marker of a data_dir with a store, once (`db` is
/// `data_dir/spool/outbox.db`). Not written on a full disk: the next open
/// writes it.
pub fn mark_store(db: &Path) {
    let Some(data_dir) = db.parent().and_then(Path::parent) else { return };
    let marker = data_dir.join(MARKER);
    if marker.exists() {
        return;
    }
    let text = b"{\"store\": \"spool/outbox.db\", \"note\": \"this data directory has an outbox store: a missing store is damage\"}\n";
    if let Err(e) = fsutil::atomic_write(&marker, text, false) {
        log::warn!("{}", e.message());
    }
}
