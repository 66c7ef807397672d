//! The service log: one timestamped line per step (start, lease, each
//! delivery result, stop), appended to a file the administrator reads, or
//! written to stderr (`--log -`, for a journal that stamps lines itself).

use serde::Deserialize;
use smtpbridge::Code;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::outcome::{io_failure, Outcome};

/// The file in the data directory the log goes to by default.
pub const DEFAULT_FILE: &str = "service.log";

/// Shared by the service loop and the event callback.
#[derive(Clone)]
pub struct ServiceLog {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

/// The fields of an event the log shows (ABI.md §6).
#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    state: Option<String>,
    attempts: Option<u32>,
    error: Option<String>,
    error_code: Option<Code>,
    possible_duplicate: Option<bool>,
    profile: Option<String>,
    user_id: Option<String>,
}

impl ServiceLog {
    /// `--log FILE` (appended to), `-` for stderr, or service.log in `dir`.
    pub fn open(dir: &Path, given: Option<&Path>) -> Outcome<ServiceLog> {
        let out: Box<dyn Write + Send> = match given {
            Some(path) if path == Path::new("-") => Box::new(std::io::stderr()),
            _ => {
                let path = given.map(Path::to_path_buf).unwrap_or_else(|| dir.join(DEFAULT_FILE));
                if given.is_none() {
                    std::fs::create_dir_all(dir).map_err(|e| io_failure("cannot create", dir, &e))?;
                }
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| io_failure("cannot open the service log", &path, &e))?;
                Box::new(file)
            }
        };
        Ok(ServiceLog { out: Arc::new(Mutex::new(out)) })
    }

    /// Writes `text` as one line, stamped with the UTC time. A log that
    /// cannot be written does not stop delivery.
    pub fn line(&self, text: &str) {
        let stamp = humantime::format_rfc3339_millis(SystemTime::now());
        let line = format!("{stamp} {}\n", smtpbridge::text::printable(text));
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(line.as_bytes()).and_then(|_| out.flush());
    }

    /// Logs an event of the library (its JSON): a message's new state with
    /// its attempts and error, or credentials that are needed.
    pub fn event(&self, json: &str) {
        let Ok(event) = serde_json::from_str::<Event>(json) else {
            return self.line(&format!("event {json}"));
        };
        let text = match event.kind.as_str() {
            "state" => {
                let mut text = format!(
                    "message {} {} (attempts {})",
                    event.id.as_deref().unwrap_or("?"),
                    event.state.as_deref().unwrap_or("?"),
                    event.attempts.unwrap_or(0)
                );
                if let Some(error) = &event.error {
                    let code = event.error_code.map(|c| c.name()).unwrap_or("?");
                    text.push_str(&format!(": {code}: {error}"));
                }
                if event.possible_duplicate == Some(true) {
                    text.push_str(" (possible duplicate)");
                }
                text
            }
            "credentials_needed" => format!(
                "credentials needed: profile {}, user {} (smtpbridge login)",
                event.profile.as_deref().unwrap_or("?"),
                event.user_id.as_deref().unwrap_or("(shared)")
            ),
            _ => format!("event {json}"),
        };
        self.line(&text);
    }
}
