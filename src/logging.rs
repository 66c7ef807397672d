//! Log lines: the `log` crate facade, routed to each client that asked.
//!
//! The library (and lettre and rustls below it) log through the `log`
//! macros. One process-wide logger, installed the first time a client is
//! opened, hands each line to clients:
//!
//! - A line logged while a thread works for a client (inside a host's
//!   call on that client, or on one of its delivery threads) goes to that
//!   client only, tagged with the message id and profile when the work is
//!   about one message. Other modules tag their lines by holding a
//!   [`Scope`]: [`ClientLog::enter`] around work for a client (the FFI
//!   boundary and the delivery threads do this), [`enter_message`] around
//!   work on one message.
//! - A line logged outside any client's work (a thread of a dependency)
//!   goes to every client whose level takes it.
//!
//! Each client sends its lines to the host's log callback (on its event
//! thread, through [`crate::outbox::events`]) and to its SMTPLogFile (a
//! writer thread of its own, with size rotation), each with its own level.
//! Neither ever blocks the thread that logs: past 10,000 pending lines,
//! lines are dropped and the next one says how many. A log file that cannot
//! be written never fails anything.
//!
//! Lines of other crates (targets not starting with `smtpbridge`) are
//! passed only when the client asked for Debug or Trace: rustls's handshake
//! notes are noise at Info.
//!
//! Never log a secret: the library's own lines carry no password, token,
//! AUTH payload or message text.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};

/// Lines a file writer keeps for a slow disk before dropping new ones.
pub(crate) const MAX_PENDING: usize = 10_000;
/// Old files kept by the rotation (`name.1` … `name.5`).
pub(crate) const KEPT_FILES: u32 = 5;

/// A level as the ABI numbers it: 1 error … 5 trace; 0 = off.
pub fn level_number(level: log::Level) -> u8 {
    level as u8
}

/// The name a line's `level` shows: `error`, `warn`, `info`, `debug`, `trace`.
pub fn level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "error",
        log::Level::Warn => "warn",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
}

/// The SMTPLogLevel value as a number (Info when unknown).
pub fn parse_level(name: &str) -> u8 {
    match name.to_ascii_lowercase().as_str() {
        "error" => 1,
        "warn" => 2,
        "info" => 3,
        "debug" => 4,
        "trace" => 5,
        _ => 3,
    }
}

/// Where a line is delivered to the host's callback (the client's event
/// thread).
pub type LineSink = Box<dyn Fn(LogLine) + Send + Sync>;

/// The log routing of one client.
pub struct ClientLog {
    /// The callback's minimum level (0 = no callback).
    callback_level: AtomicU8,
    sink: LineSink,
    file: Mutex<Option<FileWriter>>,
    file_level: AtomicU8,
}

struct Context {
    client: Option<Arc<ClientLog>>,
    id: Option<String>,
    profile: Option<String>,
}

thread_local! {
    static CONTEXT: RefCell<Context> = const { RefCell::new(Context { client: None, id: None, profile: None }) };
}

/// Restores the thread's previous log context when dropped.
pub struct Scope {
    previous: Option<Context>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            let _ = CONTEXT.try_with(|c| *c.borrow_mut() = previous);
        }
    }
}

fn replace_context(change: impl FnOnce(&Context) -> Context) -> Scope {
    let previous = CONTEXT
        .try_with(|c| {
            let next = change(&c.borrow());
            Some(std::mem::replace(&mut *c.borrow_mut(), next))
        })
        .ok()
        .flatten();
    Scope { previous }
}

/// Tags the lines this thread logs with a message id and profile until the
/// scope is dropped (the client stays the current one).
pub fn enter_message(id: &str, profile: &str) -> Scope {
    replace_context(|c| Context {
        client: c.client.clone(),
        id: Some(id.to_string()),
        profile: Some(profile.to_string()),
    })
}

static CLIENTS: RwLock<Vec<Weak<ClientLog>>> = RwLock::new(Vec::new());
static LOGGER: Router = Router;

/// The process-wide logger that routes lines to clients.
struct Router;

impl log::Log for Router {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = level_number(record.level());
        let own = record.target().starts_with("smtpbridge");
        let wants = |client: &ClientLog| {
            let limit = client.callback_level.load(Ordering::Relaxed).max(client.file_level.load(Ordering::Relaxed));
            level <= limit && (own || limit >= 4)
        };
        let current = CONTEXT.try_with(|c| {
            let c = c.borrow();
            (c.client.clone(), c.id.clone(), c.profile.clone())
        });
        let (client, id, profile) = current.unwrap_or((None, None, None));
        let targets: Vec<Arc<ClientLog>> = match client {
            Some(client) => vec![client],
            None => CLIENTS.read().unwrap_or_else(|e| e.into_inner()).iter().filter_map(Weak::upgrade).collect(),
        };
        let targets: Vec<Arc<ClientLog>> = targets.into_iter().filter(|c| wants(c)).collect();
        if targets.is_empty() {
            return;
        }
        let line = Line {
            time: crate::fsutil::rfc3339(std::time::SystemTime::now()),
            level: record.level(),
            target: record.target().to_string(),
            message: record.args().to_string(),
            id,
            profile,
        };
        for client in targets {
            client.deliver(&line, own);
        }
    }

    fn flush(&self) {}
}

/// One log line.
struct Line {
    time: String,
    level: log::Level,
    target: String,
    message: String,
    id: Option<String>,
    profile: Option<String>,
}

/// A log line as the host's log callback receives it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct LogLine {
    /// The message the line is about.
    pub id: Option<String>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: &'static str,
    pub message: String,
    pub profile: Option<String>,
    pub target: String,
    pub time: String,
}

impl Line {
    fn for_host(&self) -> LogLine {
        LogLine {
            id: self.id.clone(),
            level: level_name(self.level),
            message: self.message.clone(),
            profile: self.profile.clone(),
            target: self.target.clone(),
            time: self.time.clone(),
        }
    }

    /// The line as the log file writes it.
    fn to_text(&self) -> String {
        let mut text = format!("{} {:5} {}", self.time, level_name(self.level).to_ascii_uppercase(), self.target);
        if let Some(id) = &self.id {
            text.push_str(&format!(" [{id}"));
            if let Some(p) = &self.profile {
                text.push_str(&format!(" {p}"));
            }
            text.push(']');
        }
        text.push_str(": ");
        text.push_str(&self.message.replace(['\r', '\n'], " "));
        text.push('\n');
        text
    }
}

/// Installs the router as the process's logger (once; a Rust host that
/// installed its own keeps it) and recomputes the level the macros filter at.
fn update_max_level() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let _ = log::set_logger(&LOGGER);
    });
    // One update at a time, so a stale level is never set last. The clients
    // are upgraded under the locks but let go after them: the last handle
    // of a client dropped here runs its Drop, which comes back here.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let alive: Vec<Arc<ClientLog>> = {
        let mut clients = CLIENTS.write().unwrap_or_else(|e| e.into_inner());
        clients.retain(|w| w.strong_count() > 0);
        clients.iter().filter_map(Weak::upgrade).collect()
    };
    let max = alive
        .iter()
        .map(|c| c.callback_level.load(Ordering::Relaxed).max(c.file_level.load(Ordering::Relaxed)))
        .max()
        .unwrap_or(0);
    log::set_max_level(match max {
        0 => log::LevelFilter::Off,
        1 => log::LevelFilter::Error,
        2 => log::LevelFilter::Warn,
        3 => log::LevelFilter::Info,
        4 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    });
    drop(serial);
    drop(alive);
}

impl ClientLog {
    /// A client's log routing; `sink` delivers a line to the callback.
    pub fn new(sink: LineSink) -> Arc<ClientLog> {
        let log = Arc::new(ClientLog {
            callback_level: AtomicU8::new(0),
            sink,
            file: Mutex::new(None),
            file_level: AtomicU8::new(0),
        });
        CLIENTS.write().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(&log));
        update_max_level();
        log
    }

    /// Makes this client the one the calling thread's lines go to, until
    /// the scope is dropped.
    pub fn enter(self: &Arc<Self>) -> Scope {
        let me = self.clone();
        replace_context(move |_| Context { client: Some(me), id: None, profile: None })
    }

    /// Sets the callback's minimum level (0 = off).
    pub fn set_callback_level(&self, level: u8) {
        self.callback_level.store(level.min(5), Ordering::Relaxed);
        update_max_level();
    }

    /// SMTPLogFile / SMTPLogLevel / SMTPLogMaxBytes: `None` = no file. A
    /// file that is the same as before keeps its writer.
    pub fn set_file(&self, path: Option<&Path>, level: u8, max_bytes: u64) {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let same = match (&*file, path) {
            (Some(w), Some(p)) => w.path == p && w.max_bytes == max_bytes,
            (None, None) => true,
            _ => false,
        };
        if !same {
            *file = path.and_then(|p| FileWriter::start(p.to_path_buf(), max_bytes));
        }
        self.file_level.store(if file.is_some() { level } else { 0 }, Ordering::Relaxed);
        drop(file);
        update_max_level();
    }

    fn deliver(&self, line: &Line, own: bool) {
        let level = level_number(line.level);
        let callback = self.callback_level.load(Ordering::Relaxed);
        if level <= callback && (own || callback >= 4) {
            (self.sink)(line.for_host());
        }
        let file_level = self.file_level.load(Ordering::Relaxed);
        if level <= file_level && (own || file_level >= 4) {
            if let Some(w) = &*self.file.lock().unwrap_or_else(|e| e.into_inner()) {
                w.push(line.to_text());
            }
        }
    }
}

impl Drop for ClientLog {
    fn drop(&mut self) {
        // Let the macros filter again once this client is gone.
        update_max_level();
    }
}

#[derive(Default)]
struct FileQueue {
    lines: VecDeque<String>,
    dropped: u64,
    stop: bool,
}

/// The writer thread of one log file.
struct FileWriter {
    path: PathBuf,
    max_bytes: u64,
    shared: Arc<(Mutex<FileQueue>, Condvar)>,
}

impl FileWriter {
    fn start(path: PathBuf, max_bytes: u64) -> Option<FileWriter> {
        let shared = Arc::new((Mutex::new(FileQueue::default()), Condvar::new()));
        let thread_shared = shared.clone();
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name("smtpbridge-logfile".into())
            .spawn(move || write_loop(&thread_path, max_bytes, &thread_shared))
            .ok()?;
        Some(FileWriter { path, max_bytes, shared })
    }

    fn push(&self, text: String) {
        let (queue, ready) = &*self.shared;
        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.lines.len() >= MAX_PENDING {
            q.dropped += 1;
            return;
        }
        if q.dropped > 0 {
            let note = format!(
                "{} WARN  smtpbridge::logging: {} log lines were dropped (the log file could not keep up)\n",
                crate::fsutil::rfc3339(std::time::SystemTime::now()),
                q.dropped
            );
            q.lines.push_back(note);
            q.dropped = 0;
        }
        q.lines.push_back(text);
        ready.notify_one();
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // The thread writes what is queued, then ends; nobody waits for it.
        let (queue, ready) = &*self.shared;
        queue.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        ready.notify_all();
    }
}

/// Writes queued lines to `path`, rotating at `max_bytes`; any I/O error
/// drops the lines in hand and the file is tried again with the next ones.
fn write_loop(path: &Path, max_bytes: u64, shared: &(Mutex<FileQueue>, Condvar)) {
    let (queue, ready) = shared;
    let mut file: Option<(File, u64)> = None;
    loop {
        let (batch, stop) = {
            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
            while q.lines.is_empty() && !q.stop {
                q = ready.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            (std::mem::take(&mut q.lines), q.stop)
        };
        for text in batch {
            // Rotate before a line that would go past the limit, so the
            // current file always holds the newest lines.
            if file.as_ref().is_some_and(|(_, size)| *size > 0 && size + text.len() as u64 > max_bytes) {
                file = None;
                rotate(path);
            }
            if file.is_none() {
                file = open_log_file(path).ok().map(|f| {
                    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                    (f, size)
                });
            }
            let Some((f, size)) = file.as_mut() else { continue };
            if f.write_all(text.as_bytes()).is_err() {
                file = None;
                continue;
            }
            *size += text.len() as u64;
        }
        if stop {
            return;
        }
    }
}

/// Opens (creating it) a log file for appending. It must be a regular
/// file: a device such as `/dev/full` or a FIFO is refused before it is
/// opened (a FIFO would block the writer), and the OS error names why a
/// file cannot be opened (a missing folder, no permission).
pub fn open_log_file(path: &Path) -> std::result::Result<File, String> {
    let not_regular = |what: &str| format!("{} is not a regular file ({what})", path.display());
    if let Some(what) = std::fs::metadata(path).ok().as_ref().and_then(crate::bounded::kind) {
        return Err(not_regular(what));
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = options.open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.metadata().as_ref().map(crate::bounded::kind) {
        Ok(None) => Ok(file),
        Ok(Some(what)) => Err(not_regular(what)),
        Err(e) => Err(format!("cannot open {}: {e}", path.display())),
    }
}

/// `name.4` → `name.5`, …, `name` → `name.1` (the oldest is replaced).
fn rotate(path: &Path) {
    let numbered = |n: u32| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    for n in (1..KEPT_FILES).rev() {
        let _ = std::fs::rename(numbered(n), numbered(n + 1));
    }
    let _ = std::fs::rename(path, numbered(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_five_old_files() {
        let dir = std::env::temp_dir().join(format!("smtpb-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.log");
        let writer = FileWriter::start(path.clone(), 100).unwrap();
        for i in 0..100 {
            writer.push(format!("line {i:03} {}\n", "x".repeat(40)));
        }
        drop(writer);
        std::thread::sleep(std::time::Duration::from_millis(300));
        for n in 1..=5 {
            assert!(dir.join(format!("x.log.{n}")).exists(), "x.log.{n}");
        }
        assert!(!dir.join("x.log.6").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
