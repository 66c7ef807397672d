//! Files the host names (attachments, SMTPCaFile, SMTPDkimKeyFile), read
//! with a bound.
//!
//! Only a regular file is read: a FIFO would block the call until some
//! other process writes to it, a device such as `/dev/zero` never ends,
//! and a folder has no bytes. The type is checked before the file is
//! opened (opening a FIFO for reading blocks) and again on the open
//! handle, which is opened non-blocking on Unix so that a FIFO put in its
//! place in between cannot block either. A file is read to at most its
//! bound plus one byte, so one that is larger than it said (or grows while
//! read) is refused without holding more than the bound in memory.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;

/// Why a file was not read.
#[derive(Debug)]
pub enum FileError {
    /// Not a regular file; the words say what it is ("a FIFO").
    NotRegular(&'static str),
    /// Larger than `limit` bytes (`size` when known before reading).
    TooLarge { size: Option<u64>, limit: u64 },
    /// The operating system's error (missing, no permission, …).
    Io(io::Error),
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::NotRegular(what) => write!(f, "not a regular file ({what})"),
            FileError::TooLarge { size: Some(size), limit } => {
                write!(f, "{size} bytes, larger than the {limit} bytes allowed")
            }
            FileError::TooLarge { size: None, limit } => write!(f, "larger than the {limit} bytes allowed"),
            FileError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// What a file that is not regular is, in words; `None` for a regular file.
pub(crate) fn kind(metadata: &Metadata) -> Option<&'static str> {
    let t = metadata.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a folder");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("a FIFO");
        }
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("a device or other special file")
}

/// A regular file, open for reading, and its size when opened.
pub struct RegularFile {
    file: File,
    pub size: u64,
}

impl RegularFile {
    /// Opens `path` if it names a regular file (symbolic links followed).
    pub fn open(path: &Path) -> Result<RegularFile, FileError> {
        let before = std::fs::metadata(path).map_err(FileError::Io)?;
        if let Some(what) = kind(&before) {
            return Err(FileError::NotRegular(what));
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
        }
        let file = options.open(path).map_err(FileError::Io)?;
        let metadata = file.metadata().map_err(FileError::Io)?;
        if let Some(what) = kind(&metadata) {
            return Err(FileError::NotRegular(what));
        }
        Ok(RegularFile { file, size: metadata.len() })
    }

    /// The file's bytes, if there are at most `limit` of them: a file
    /// larger when opened is refused unread, and no more than `limit` + 1
    /// bytes are ever read.
    pub fn read_at_most(self, limit: u64) -> Result<Vec<u8>, FileError> {
        if self.size > limit {
            return Err(FileError::TooLarge { size: Some(self.size), limit });
        }
        // The size is a hint only (a file may change while it is read).
        let mut bytes = Vec::with_capacity(usize::try_from(self.size).unwrap_or(0));
        self.file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(FileError::Io)?;
        if bytes.len() as u64 > limit {
            return Err(FileError::TooLarge { size: None, limit });
        }
        Ok(bytes)
    }
}

/// The bytes of the regular file `path`, at most `limit` of them.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    RegularFile::open(path)?.read_at_most(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("smtpb-bounded-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_file_is_read_up_to_its_bound_and_refused_past_it() {
        let dir = temp("bound");
        let path = dir.join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read(&path, 10).unwrap(), b"0123456789");
        assert!(matches!(read(&path, 9), Err(FileError::TooLarge { size: Some(10), limit: 9 })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn folders_and_devices_are_not_read() {
        let dir = temp("kinds");
        assert!(matches!(read(&dir, 10), Err(FileError::NotRegular("a folder"))));
        #[cfg(unix)]
        assert!(matches!(read(Path::new("/dev/zero"), 10), Err(FileError::NotRegular("a character device"))));
        assert!(matches!(read(&dir.join("missing"), 10), Err(FileError::Io(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
