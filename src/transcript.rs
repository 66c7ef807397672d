//! Transcripts: the redacted dialogue of each delivery attempt.
//!
//! Recording is per thread: [`begin`] starts a buffer on the calling thread,
//! the SMTP code adds lines as they happen ([`client`], [`server`],
//! [`note`]; each is a no-op costing one thread-local check when nothing is
//! being recorded), and [`Recording::finish`] takes the attempt. Whether the
//! attempt is kept is decided afterwards (SMTPTranscript: `Failures` keeps
//! only attempts that did not end in `sent`), so the fast path only fills
//! a vector in memory.
//!
//! Redaction happens where lines are made, not here: AUTH payloads are
//! recorded as `********`, the message as one note `DATA: N bytes`.
//!
//! [`TranscriptStore`] keeps at most the last [`MAX_ATTEMPTS`] attempts per
//! message: one JSON file per message under `data_dir/transcripts/`, or in
//! memory for an in-memory client. Its interface is `append`, `get`,
//! `remove`; the status store's purge calls `remove` for the ids it purges.

use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use crate::error::{Error, Result};

/// Attempts kept per message.
pub(crate) const MAX_ATTEMPTS: usize = 5;

/// SMTPTranscript.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Off,
    /// Kept for attempts that ended deferred or failed (the default).
    Failures,
    All,
}

impl Mode {
    /// The key's stored value (`Off`, `Failures`, `All`).
    pub fn parse(value: &str) -> Mode {
        match value.to_ascii_lowercase().as_str() {
            "off" => Mode::Off,
            "all" => Mode::All,
            _ => Mode::Failures,
        }
    }
}

/// One line of a transcript.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Line {
    /// Milliseconds since the attempt started.
    pub ms: u64,
    /// `C` (client), `S` (server) or `*` (the library's note).
    pub dir: String,
    pub text: String,
}

/// One attempt's dialogue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Attempt {
    pub attempt: u32,
    pub started_at: String,
    /// `smtp` (the only transport this module records today).
    pub transport: String,
    /// `host:port` of the server, when a connection was tried.
    pub server: Option<String>,
    pub lines: Vec<Line>,
}

struct Buffer {
    started: Instant,
    started_at: SystemTime,
    transport: &'static str,
    server: Option<String>,
    /// (ms, dir, text): made into [`Line`]s only for an attempt kept.
    lines: Vec<(u64, &'static str, String)>,
}

thread_local! {
    static BUFFER: RefCell<Option<Buffer>> = const { RefCell::new(None) };
}

/// An attempt being recorded on this thread; dropping it discards it.
pub struct Recording {
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Starts recording this thread's dialogue (replacing one under way).
pub fn begin(transport: &'static str) -> Recording {
    BUFFER.with(|b| {
        *b.borrow_mut() = Some(Buffer {
            started: Instant::now(),
            started_at: SystemTime::now(),
            transport,
            server: None,
            lines: Vec::with_capacity(24),
        })
    });
    Recording { _not_send: std::marker::PhantomData }
}

impl Recording {
    /// Ends the recording and returns it as attempt number `attempt`.
    pub fn finish(self, attempt: u32) -> Option<Attempt> {
        let buffer = BUFFER.with(|b| b.borrow_mut().take())?;
        std::mem::forget(self);
        Some(Attempt {
            attempt,
            started_at: crate::fsutil::rfc3339(buffer.started_at),
            transport: buffer.transport.to_string(),
            server: buffer.server,
            lines: buffer.lines.into_iter().map(|(ms, dir, text)| Line { ms, dir: dir.to_string(), text }).collect(),
        })
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = BUFFER.try_with(|b| b.borrow_mut().take());
    }
}

fn push(dir: &'static str, text: impl FnOnce() -> String) {
    let _ = BUFFER.try_with(|b| {
        if let Some(buffer) = b.borrow_mut().as_mut() {
            let ms = buffer.started.elapsed().as_millis() as u64;
            buffer.lines.push((ms, dir, text()));
        }
    });
}

/// Whether this thread is recording.
pub fn recording() -> bool {
    BUFFER.try_with(|b| b.borrow().is_some()).unwrap_or(false)
}

/// A line the client sent (already redacted by the caller).
pub fn client(text: &str) {
    push("C", || text.to_string());
}

/// A line of the server's reply.
pub fn server(text: &str) {
    push("S", || text.to_string());
}

/// A note of the library (made only when recording).
pub fn note(text: impl FnOnce() -> String) {
    push("*", text);
}

/// The server the recording talks to (`host:port`).
pub fn set_server(server: &str) {
    let _ = BUFFER.try_with(|b| {
        if let Some(buffer) = b.borrow_mut().as_mut() {
            buffer.server = Some(server.to_string());
        }
    });
}

/// The kept transcripts of a client.
pub struct TranscriptStore {
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<String, Vec<Attempt>>>,
    /// Serialises read-modify-write of one file.
    files: Mutex<()>,
}

/// A message id as a file name: a ULID, nothing else (no path tricks).
fn is_id(id: &str) -> bool {
    id.len() == 26 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl TranscriptStore {
    /// The store of `data_dir` (`None`: in memory). The folder is made when
    /// the first transcript is kept.
    pub fn open(data_dir: Option<&Path>) -> TranscriptStore {
        TranscriptStore {
            dir: data_dir.map(|d| d.join("transcripts")),
            memory: Mutex::new(HashMap::new()),
            files: Mutex::new(()),
        }
    }

    fn path(&self, id: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{id}.json")))
    }

    /// Adds an attempt to message `id`'s transcript, keeping the last
    /// [`MAX_ATTEMPTS`].
    pub fn append(&self, id: &str, attempt: Attempt) -> Result<()> {
        if !is_id(id) {
            return Err(Error::invalid_argument(format!("\"{}\" is not a message id", crate::text::printable(id))));
        }
        let trim = |list: &mut Vec<Attempt>| {
            let extra = list.len().saturating_sub(MAX_ATTEMPTS);
            list.drain(..extra);
        };
        let Some(path) = self.path(id) else {
            let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            let list = memory.entry(id.to_string()).or_default();
            list.push(attempt);
            trim(list);
            return Ok(());
        };
        let _one_writer = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let mut list = read_file(&path)?;
        list.push(attempt);
        trim(&mut list);
        let dir = path.parent().expect("a folder");
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, &e))?;
        let bytes = serde_json::to_vec(&list).map_err(|e| Error::internal(e.to_string()))?;
        // Temporary file and rename, without fsync: a transcript is
        // diagnostics, not a promise, and must not slow delivery.
        let tmp = dir.join(format!(".{id}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, &bytes)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::io("cannot write", &path, &e))
    }

    /// The attempts of message `id`, oldest first (empty when none kept).
    pub fn get(&self, id: &str) -> Result<Vec<Attempt>> {
        if !is_id(id) {
            return Ok(Vec::new());
        }
        match self.path(id) {
            Some(path) => {
                let _one_writer = self.files.lock().unwrap_or_else(|e| e.into_inner());
                read_file(&path)
            }
            None => Ok(self.memory.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned().unwrap_or_default()),
        }
    }

    /// Forgets the transcripts of `ids` (those purged with their statuses).
    pub fn remove(&self, ids: &[&str]) -> Result<()> {
        if self.dir.is_none() {
            let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                memory.remove(*id);
            }
            return Ok(());
        }
        let _one_writer = self.files.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids.iter().filter(|id| is_id(id)) {
            let path = self.path(id).expect("a folder");
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("cannot remove", &path, &e)),
            }
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<Vec<Attempt>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::new(crate::error::Code::Io, format!("{} is damaged: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("cannot read", path, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "01JD0000000000000000000000";

    #[test]
    fn lines_are_recorded_only_while_recording() {
        client("EHLO before");
        let recording = begin("smtp");
        set_server("mail.example:587");
        client("EHLO me");
        server("250 hi");
        note(|| "TLS".into());
        let attempt = recording.finish(1).unwrap();
        assert_eq!(attempt.server.as_deref(), Some("mail.example:587"));
        let dirs: Vec<&str> = attempt.lines.iter().map(|l| l.dir.as_str()).collect();
        assert_eq!(dirs, ["C", "S", "*"]);
        assert!(!recording_now());
    }

    fn recording_now() -> bool {
        recording()
    }

    #[test]
    fn the_store_keeps_the_last_five_attempts() {
        for dir in [None, Some(std::env::temp_dir().join(format!("smtpb-tr-{}", std::process::id())))] {
            let store = TranscriptStore::open(dir.as_deref());
            for n in 1..=7 {
                let recording = begin("smtp");
                client(&format!("line {n}"));
                store.append(ID, recording.finish(n).unwrap()).unwrap();
            }
            let kept = store.get(ID).unwrap();
            assert_eq!(kept.iter().map(|a| a.attempt).collect::<Vec<_>>(), [3, 4, 5, 6, 7]);
            store.remove(&[ID]).unwrap();
            assert!(store.get(ID).unwrap().is_empty());
            if let Some(d) = dir {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
}
