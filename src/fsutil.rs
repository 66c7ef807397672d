//! Crash-safe file writes and the time formats the library shows.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Replaces `path` with `bytes` so that a crash leaves either the old or
/// the new file, never a torn one: write a temporary file beside it, fsync
/// it, rename it over `path`, then fsync the folder so the rename is
/// durable. `private` makes the file readable by its owner only.
pub fn atomic_write(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let dir = path.parent().ok_or_else(|| Error::internal(format!("{} has no folder", path.display())))?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = create_file(&tmp, private)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        replace(&tmp, path)?;
        sync_dir(dir)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("cannot write", path, &e)
    })
}

/// Renames `from` over `to`. On Windows a rename fails with access denied
/// while another handle has `to` open (a sharing client of another
/// process reading the configuration, where the file system lacks POSIX
/// rename semantics, as Wine's does): such a reader closes within
/// moments, so the rename is tried again for up to about 2 s.
fn replace(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut delay = Duration::from_millis(1);
    let mut waited = Duration::ZERO;
    loop {
        match fs::rename(from, to) {
            Err(e) if cfg!(windows) && e.kind() == std::io::ErrorKind::PermissionDenied && waited < RENAME_PATIENCE => {
                std::thread::sleep(delay);
                waited += delay;
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// How long [`replace`] waits for a reader of the target to let go.
const RENAME_PATIENCE: Duration = Duration::from_secs(2);

/// Creates (truncating) a file, owner-only when `private`.
pub fn create_file(path: &Path, private: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    options.open(path)
}

/// Makes a rename inside `dir` durable. Windows has no folder fsync; its
/// rename is already journaled by NTFS.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// RFC 3339 UTC with seconds, e.g. `2026-11-22T10:00:01Z`.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The last second RFC 3339 can write (9999-12-31T23:59:59Z).
pub(crate) const MAX_RFC3339_UNIX: i64 = 253_402_300_799;

/// RFC 3339 for Unix seconds; `None` for 0 (unknown) and for times RFC 3339
/// cannot write.
pub fn rfc3339_unix(seconds: i64) -> Option<String> {
    (seconds > 0 && seconds <= MAX_RFC3339_UNIX).then(|| rfc3339(UNIX_EPOCH + Duration::from_secs(seconds as u64)))
}

/// What tells a file's versions apart cheaply: its modification time and
/// length (`None` when it does not exist). A file another process
/// replaced has a new stamp.
pub fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}
