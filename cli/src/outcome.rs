//! What a command comes to (a failure with its exit code and the status or
//! report that came with it), the data directory and the open client a
//! command works on, and the files the user names.

use smtpbridge::client::{ProbeReport, TestReport};
use smtpbridge::status::Status;
use smtpbridge::{Client, Code, Error};
use std::io::Read;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// What came with a failure: the message's status, or a report.
pub enum Detail {
    Status(Box<Status>),
    Test(Box<TestReport>),
    Probe(Box<ProbeReport>),
}

impl From<Status> for Detail {
    fn from(status: Status) -> Detail {
        Detail::Status(Box::new(status))
    }
}

/// Why a command failed: the result code (the exit status), the message, and
/// the status or report that came with it.
pub struct Failure {
    pub code: Code,
    pub message: String,
    pub detail: Option<Detail>,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into(), detail: None }
    }

    pub fn with_detail(error: Error, detail: Option<Detail>) -> Failure {
        Failure { code: error.code(), message: error.message().to_string(), detail }
    }

    pub fn exit_code(&self) -> u8 {
        self.code as i32 as u8
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure::with_detail(error, None)
    }
}

pub type Outcome<T = ()> = std::result::Result<T, Failure>;

/// An open client, shut down (with SMTPShutdownGraceMs) when dropped.
pub struct Session {
    pub client: Client,
}

impl Drop for Session {
    fn drop(&mut self) {
        // A grace that ran out only means a transaction was cut off; its
        // message is deferred and the host delivers it later.
        let _ = self.client.shutdown(self.client.shutdown_grace_ms());
    }
}

pub fn io_failure(what: &str, path: &Path, e: &std::io::Error) -> Failure {
    Failure::new(Code::Io, format!("{what} {}: {e}", path.display()))
}

/// Reads a file the user named (`-` = stdin) as UTF-8 text.
pub fn read_text(path: &Path) -> Outcome<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| io_failure("cannot read", path, &e))?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|e| io_failure("cannot read", path, &e))
}

/// The failure of a failed message, from its status.
pub fn failed_message(status: Status) -> Failure {
    let message = format!("message {}: {}", status.id, status.error.as_deref().unwrap_or("failed"));
    Failure { code: status.error_code, message, detail: Some(status.into()) }
}

/// The data directory: `--data-dir`, else `$SMTPBRIDGE_DATA_DIR`, else the
/// platform's per-user data folder; made absolute.
pub fn data_dir(given: Option<PathBuf>) -> Outcome<PathBuf> {
    let dir = match given.or_else(|| std::env::var_os("SMTPBRIDGE_DATA_DIR").map(PathBuf::from)) {
        Some(dir) => dir,
        None => directories::ProjectDirs::from("", "", "smtpbridge")
            .map(|p| p.data_dir().to_path_buf())
            .ok_or_else(|| Failure::new(Code::InvalidArgument, "no home folder to keep data in: give --data-dir"))?,
    };
    std::path::absolute(&dir).map_err(|e| io_failure("cannot resolve", &dir, &e))
}

/// Opens `dir` with the library's open `flags`; the master secret is
/// SMTPBRIDGE_SECRET, else the data directory's key file.
pub fn open_dir(dir: &Path, flags: u32) -> Outcome<Session> {
    let secret = std::env::var("SMTPBRIDGE_SECRET").ok().map(Zeroizing::new);
    let client = Client::open(Some(dir), secret.as_deref().map(String::as_str), flags)?;
    Ok(Session { client })
}
