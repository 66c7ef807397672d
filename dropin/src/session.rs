//! The process's one client, shared by every drop-in object and call.
//!
//! The client opens the data_dir (see [`crate::datadir`]) when the first
//! user needs it: a MAPI session from `MAPILogon` to `MAPILogoff`, a COM
//! `Application` while it lives, or a single call without either. When the
//! last user lets go, the client stays open for [`IDLE_CLOSE_MS`] more, so
//! that a host sending one mail after another (each `MAPISendMail` without
//! a session, each mail from a new `Application`) pays the open (the
//! credential store's key derivation, a good part of a second) once; a
//! thread of its own closes it then. The DLL is pinned in the process
//! while that thread exists, so it is not unloaded under it; when the
//! process ends, the open client ends with it, as with any process that
//! exits without closing (ABI.md §17: its lock goes with it, another
//! process takes the delivery lease within 5 s, and every mail was made
//! durable before its call returned). The data_dir is opened shared
//! (ABI.md §17, §19): submit-only when another process (the background
//! service, say) holds its delivery lease, so the mail waits for that
//! process; else as a client that may deliver. A host that holds the
//! data_dir exclusively makes the call fail with BUSY naming the holder.
//!
//! Delivery before the host moves on: a mail is made durable in the
//! outbox, then the call waits up to [`DELIVERY_WAIT_MS`] for it to be sent
//! or to fail for good. What is still queued then (a server that answered
//! "try later", say) stays in the outbox and goes out with the next client
//! of the data_dir: the next drop-in call, the command line, a host.

use smtpbridge::client::{OPEN_SHARED, OPEN_SUBMIT_ONLY};
use smtpbridge::status::{State, Status};
use smtpbridge::{Client, Code, Error, Result};
use std::path::Path;
#[cfg(windows)]
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::mail::Mail;

/// How long a queued mail is waited for before the call returns.
pub const DELIVERY_WAIT_MS: u32 = 20_000;

/// How long the process's client stays open after its last user let go.
pub const IDLE_CLOSE_MS: u64 = 60_000;

struct Shared {
    client: Option<Client>,
    users: usize,
    /// When the client, with no users, is to be closed.
    close_at: Option<Instant>,
    /// Whether the thread that closes an idle client runs.
    closer: bool,
}

static SHARED: Mutex<Shared> = Mutex::new(Shared { client: None, users: 0, close_at: None, closer: false });
/// Wakes the closer: a new `close_at`.
static IDLE: Condvar = Condvar::new();

fn shared() -> MutexGuard<'static, Shared> {
    SHARED.lock().unwrap_or_else(|e| e.into_inner())
}

/// One user of the process's client; the client closes when the last
/// session is dropped.
pub struct Session {
    client: Option<Client>,
}

/// A mail handed to the outbox: its id and its status after the wait.
pub struct Queued {
    pub id: String,
    pub status: Status,
}

impl Session {
    /// Joins the process's client, opening it on the data_dir if no one
    /// holds it.
    pub fn open() -> Result<Session> {
        let mut shared = shared();
        let client = match &shared.client {
            Some(client) => client.clone(),
            None => {
                let dir = crate::datadir::lookup()?;
                let client = open_shared(&dir)?;
                shared.client = Some(client.clone());
                client
            }
        };
        shared.users += 1;
        shared.close_at = None;
        Ok(Session { client: Some(client) })
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("a session holds its client until dropped")
    }

    /// Queues the mail and waits for it (see the module's comment). A mail
    /// that failed for good is the error of its status, with its advice.
    pub fn queue(&self, mail: &Mail) -> Result<Queued> {
        mail.check()?;
        let client = self.client();
        let id = client.enqueue(&mail.to_json())?;
        let status = match client.wait(&id, DELIVERY_WAIT_MS) {
            Ok(status) => status,
            Err(e) if e.code() == Code::Timeout => client.status(&id)?,
            Err(e) => return Err(e),
        };
        if status.state == State::Failed {
            // As smtpb_send's error text: the failure, then its advice.
            let text = status.error.as_deref().unwrap_or("the message failed");
            let advice = status.advice.as_ref().map(|a| a.suffix()).unwrap_or_default();
            return Err(Error::new(status.error_code, format!("message {id}: {text}{advice}")));
        }
        Ok(Queued { id, status })
    }

    /// Writes the MIME the mail would be sent as to `path` (an `.eml`).
    pub fn write_eml(&self, mail: &Mail, path: &Path) -> Result<()> {
        mail.check()?;
        let mime = self.client().render(&mail.to_json())?;
        std::fs::write(path, mime).map_err(|e| Error::io("cannot write", path, &e))
    }

    /// Writes the mail as an `.eml` in the temporary folder and opens it
    /// with the program Windows associates with `.eml`, for the user to
    /// look at before sending. Nothing is queued. Returns the file.
    #[cfg(windows)]
    pub fn display(&self, mail: &Mail) -> Result<PathBuf> {
        let path = display_path();
        self.write_eml(mail, &path)?;
        crate::shell::open(&path)?;
        Ok(path)
    }

    /// The status of a message (ABI.md §7).
    pub fn status(&self, id: &str) -> Result<Status> {
        self.client().status(id)
    }

    /// A configuration key's value (ABI.md §5).
    pub fn config(&self, key: &str) -> Result<String> {
        self.client().config_get(key)
    }

    /// Sets configuration keys from `Key=Value` lines.
    pub fn configure(&self, lines: &str) -> Result<()> {
        self.client().config_import_keys(lines)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.client.take());
        let mut shared = shared();
        shared.users -= 1;
        if shared.users > 0 || shared.client.is_none() {
            return;
        }
        if start_closer(&mut shared) {
            shared.close_at = Some(Instant::now() + Duration::from_millis(IDLE_CLOSE_MS));
            IDLE.notify_all();
        } else {
            close(&mut shared);
        }
    }
}

/// Shuts the client down. Under the lock: a session opened meanwhile waits
/// until the data_dir is free again.
fn close(shared: &mut Shared) {
    shared.close_at = None;
    if let Some(client) = shared.client.take() {
        let _ = client.shutdown(client.shutdown_grace_ms());
    }
}

/// Starts the thread that closes an idle client, once per process; false
/// when it cannot run (the client is then closed at once).
fn start_closer(shared: &mut Shared) -> bool {
    if !shared.closer {
        shared.closer =
            pin_module() && std::thread::Builder::new().name("smtpbridge-dropin-idle".into()).spawn(closer).is_ok();
    }
    shared.closer
}

/// Closes the client when it has been idle for [`IDLE_CLOSE_MS`].
fn closer() {
    let mut shared = shared();
    loop {
        shared = match shared.close_at {
            None => IDLE.wait(shared).unwrap_or_else(|e| e.into_inner()),
            Some(at) if Instant::now() >= at => {
                close(&mut shared);
                shared
            }
            Some(at) => {
                IDLE.wait_timeout(shared, at.saturating_duration_since(Instant::now()))
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}

/// Keeps this DLL loaded until the process ends: the closer thread (and
/// the open client's threads) run its code.
#[cfg(windows)]
fn pin_module() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{
        GetModuleHandleExW, GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS, GET_MODULE_HANDLE_EX_FLAG_PIN,
    };
    let mut module = std::ptr::null_mut();
    // SAFETY: the address is a function of this DLL; `module` is writable.
    unsafe {
        GetModuleHandleExW(
            GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN,
            closer as *const () as *const u16,
            &mut module,
        ) != 0
    }
}

/// Elsewhere (the unit tests) nothing unloads the code.
#[cfg(not(windows))]
fn pin_module() -> bool {
    true
}

/// Opens the data_dir shared: submit-only when another process delivers
/// its outbox (read from its store first, without a client: one open, one
/// key derivation), else as a client that may take the delivery lease.
fn open_shared(dir: &Path) -> Result<Client> {
    let delivered_elsewhere = Client::delivery_holder_of(dir)?.is_some();
    let flags = if delivered_elsewhere { OPEN_SHARED | OPEN_SUBMIT_ONLY } else { OPEN_SHARED };
    Client::open(Some(dir), None, flags)
}

/// A new file name for a displayed mail: `%TEMP%\smtpbridge\mail-<time>-<pid>.eml`.
#[cfg(windows)]
fn display_path() -> PathBuf {
    let folder = std::env::temp_dir().join("smtpbridge");
    let _ = std::fs::create_dir_all(&folder);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    folder.join(format!("mail-{nanos}-{}.eml", std::process::id()))
}

/// An error as a host shows it: the result name, then the library's text
/// (with its advice, where there is one).
pub fn describe(error: &Error) -> String {
    format!("{}: {}", error.code().name(), error.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether an exclusive client can open `dir` now (it cannot while the
    /// drop-in's client holds it shared).
    fn free(dir: &Path) -> bool {
        match Client::open(Some(dir), None, 0) {
            Ok(client) => client.shutdown(0).is_ok(),
            Err(e) if e.code() == Code::Busy => false,
            Err(e) => panic!("{}", describe(&e)),
        }
    }

    #[test]
    fn the_client_stays_open_while_idle_and_the_closer_closes_it() {
        let local = std::env::temp_dir().join(format!("smtpbridge-dropin-idle-{}", std::process::id()));
        std::env::set_var("LOCALAPPDATA", &local);
        let dir = local.join("smtpbridge");
        let first = Session::open().unwrap();
        let second = Session::open().unwrap();
        drop(first);
        assert!(shared().close_at.is_none(), "a user remains");
        drop(second);
        let at = shared().close_at.expect("idle: a time to close");
        let wait = at - Instant::now();
        assert!(wait > Duration::from_millis(IDLE_CLOSE_MS - 5_000), "closes in {wait:?}");
        assert!(!free(&dir), "the idle client still holds the data_dir");
        // A new user takes the idle client as it is.
        let third = Session::open().unwrap();
        assert!(shared().close_at.is_none());
        drop(third);
        // At the time to close, the closer thread closes it.
        shared().close_at = Some(Instant::now());
        IDLE.notify_all();
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared().client.is_some() {
            assert!(Instant::now() < deadline, "the closer did not close the idle client within 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(free(&dir), "closed: the data_dir is free");
        let _ = std::fs::remove_dir_all(&local);
    }

    #[test]
    fn submit_only_beside_a_process_that_delivers_else_a_client_that_may() {
        let dir = std::env::temp_dir().join(format!("smtpbridge-dropin-lease-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mail = r#"{"from": "anna@firm.example", "to": ["client@example.com"], "subject": "s", "text": "t"}"#;
        // Nobody delivers: the drop-in's client may (a send needs a server).
        let alone = open_shared(&dir).unwrap();
        let refused = alone.send(mail).result.unwrap_err();
        assert_eq!(refused.code(), Code::Config, "{}", describe(&refused));
        alone.shutdown(0).unwrap();
        // A service holds the delivery lease: the drop-in only queues.
        let service = Client::open(Some(&dir), None, OPEN_SHARED).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Client::delivery_holder_of(&dir).unwrap().is_none() {
            assert!(Instant::now() < deadline, "the service did not take the delivery lease within 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        let beside = open_shared(&dir).unwrap();
        let refused = beside.send(mail).result.unwrap_err();
        assert_eq!(refused.code(), Code::State, "{}", describe(&refused));
        assert!(refused.message().contains("SMTPB_OPEN_SUBMIT_ONLY"), "{}", describe(&refused));
        beside.shutdown(0).unwrap();
        service.shutdown(0).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
