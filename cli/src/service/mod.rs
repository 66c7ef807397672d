//! `smtpbridge service`: delivers a data directory's outbox in the
//! background (ABI.md §17) — `run` until stopped, `install`/`uninstall` as
//! a systemd unit (`systemd`) or a Windows service (`windows`), and
//! `status`.
//!
//! `run` is one loop on every platform ([`deliver`]): open the data
//! directory shared (hosts open it `SMTPB_OPEN_SHARED |
//! SMTPB_OPEN_SUBMIT_ONLY` beside it), write each delivery result of every
//! message to the service log (`log`), and the delivery lease as it is
//! taken, lost or held by another; wait for the platform's stop
//! (SIGTERM/SIGINT in `signals`; the service control manager or Ctrl+C in
//! `windows`), then close the client, which ends the deliveries under way
//! within SMTPShutdownGraceMs and releases the lease.

mod log;
#[cfg(unix)]
mod signals;
mod status;
#[cfg(not(windows))]
mod systemd;
#[cfg(windows)]
mod windows;

use smtpbridge::client::{DeliveryHolder, OPEN_SHARED};
use smtpbridge::Client;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::args::ServiceCommand;
use crate::outcome::{Failure, Outcome};
use log::ServiceLog;

/// The service's name: the systemd unit `smtpbridge.service`, the Windows
/// service `smtpbridge`.
pub const NAME: &str = "smtpbridge";

pub fn service(dir: Option<PathBuf>, command: ServiceCommand, json: bool) -> Outcome {
    let dir = crate::outcome::data_dir(dir)?;
    match command {
        ServiceCommand::Run { log } => run(&dir, log),
        ServiceCommand::Install { user, unit_dir } => install(&dir, user, unit_dir, json),
        ServiceCommand::Uninstall { user, unit_dir } => uninstall(user, unit_dir, json),
        ServiceCommand::Status => status::status(&dir, json),
    }
}

#[cfg(unix)]
fn run(dir: &Path, log: Option<PathBuf>) -> Outcome {
    // Before any thread starts, so that every thread of the process leaves
    // the stop signals to the one that waits for them.
    let signals = signals::StopSignals::block()?;
    deliver(dir, log, &signals.watch())
}

#[cfg(windows)]
fn run(dir: &Path, log: Option<PathBuf>) -> Outcome {
    windows::run(dir, log)
}

#[cfg(not(windows))]
fn install(dir: &Path, user: bool, unit_dir: Option<PathBuf>, json: bool) -> Outcome {
    systemd::install(dir, user, unit_dir, json)
}

#[cfg(not(windows))]
fn uninstall(user: bool, unit_dir: Option<PathBuf>, json: bool) -> Outcome {
    systemd::uninstall(user, unit_dir, json)
}

#[cfg(windows)]
fn install(dir: &Path, user: bool, unit_dir: Option<PathBuf>, json: bool) -> Outcome {
    windows::refuse_unit_options(user, unit_dir.as_deref())?;
    windows::install(dir, json)
}

#[cfg(windows)]
fn uninstall(user: bool, unit_dir: Option<PathBuf>, json: bool) -> Outcome {
    windows::refuse_unit_options(user, unit_dir.as_deref())?;
    windows::uninstall(json)
}

/// How often the service looks who holds the delivery lease, for the log.
const LEASE_CHECK: Duration = Duration::from_secs(1);

/// Delivers the outbox of `dir` until a stop arrives on `stops` (the reason,
/// for the log), then closes the client. Every step is in the log; a
/// failure to open is logged and returned (the service manager restarts
/// the service on failure).
pub fn deliver(dir: &Path, log: Option<PathBuf>, stops: &Receiver<Outcome<String>>) -> Outcome {
    let log = ServiceLog::open(dir, log.as_deref())?;
    log.line(&format!(
        "start: smtpbridge {} service, pid {}, data directory {}",
        smtpbridge::VERSION,
        std::process::id(),
        dir.display()
    ));
    let outcome = deliver_logged(dir, &log, stops);
    match &outcome {
        Ok(()) => log.line("stopped"),
        Err(failure) => log.line(&format!("stopped on an error: {}", failure.message)),
    }
    outcome
}

fn deliver_logged(dir: &Path, log: &ServiceLog, stops: &Receiver<Outcome<String>>) -> Outcome {
    let session = crate::outcome::open_dir(dir, OPEN_SHARED)?;
    let client = &session.client;
    let events = log.clone();
    // Every message of the data directory, whichever process queued it.
    client.set_event_callback_all(Some(std::sync::Arc::new(move |event: &str| events.event(event))))?;
    let stats = client.outbox_stats()?;
    log.line(&format!(
        "outbox: {} queued, {} deferred, {} sending",
        stats.counts.get(smtpbridge::status::State::Queued),
        stats.counts.get(smtpbridge::status::State::Deferred),
        stats.counts.get(smtpbridge::status::State::Sending)
    ));
    let mut lease = Lease::Unknown;
    let reason = loop {
        lease = lease.check(client, log);
        match stops.recv_timeout(LEASE_CHECK) {
            Ok(reason) => break reason?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Failure::new(smtpbridge::Code::Internal, "the stop channel closed"))
            }
        }
    };
    log.line(&format!("stop requested ({reason}): closing the client"));
    let grace = client.shutdown_grace_ms();
    let closed = client.shutdown(grace);
    drop(session);
    let held = if lease == Lease::Held { "lease released: " } else { "" };
    match closed {
        Ok(()) => log.line(&format!("{held}deliveries ended, the data directory is closed")),
        // Only a transaction cut off at the grace: its message is deferred.
        Err(e) => log.line(&format!("{held}{}", e.message())),
    }
    Ok(())
}

/// What the service last logged of the delivery lease.
#[derive(Clone, PartialEq)]
enum Lease {
    Unknown,
    Held,
    /// Another client holds it (its pid), or nobody (`None`).
    Elsewhere(Option<u32>),
}

impl Lease {
    /// Looks who holds the lease and logs a change.
    fn check(self, client: &Client, log: &ServiceLog) -> Lease {
        let holder = match client.outbox_stats() {
            Ok(stats) => stats.delivery.holder,
            Err(e) => {
                log.line(&format!("cannot read who delivers: {}", e.message()));
                return self;
            }
        };
        let now = match &holder {
            Some(h) if h.pid == std::process::id() => Lease::Held,
            other => Lease::Elsewhere(other.as_ref().map(|h| h.pid)),
        };
        if now != self {
            log.line(&match (&now, &holder) {
                (Lease::Held, _) => "lease taken: this process delivers the outbox".to_string(),
                (_, Some(h)) => format!("{}: {}", lost_or_waiting(&self), holder_text(h)),
                (_, None) => format!("{}: nobody holds it", lost_or_waiting(&self)),
            });
        }
        now
    }
}

fn lost_or_waiting(before: &Lease) -> &'static str {
    if *before == Lease::Held {
        "lease lost, waiting to take it again"
    } else {
        "waiting for the lease"
    }
}

/// A lease holder as the log and `status` name it.
pub fn holder_text(h: &DeliveryHolder) -> String {
    format!("pid {}, host {}, user {}, since {}", h.pid, h.host, h.user, h.since)
}

/// A path for a unit file or a service command line: UTF-8.
fn utf8(path: &Path) -> Outcome<&str> {
    path.to_str().ok_or_else(|| {
        Failure::new(smtpbridge::Code::InvalidArgument, format!("{}: the path is not UTF-8", path.display()))
    })
}

/// This program, absolute, for the service manager to start.
fn this_program() -> Outcome<PathBuf> {
    std::env::current_exe()
        .map_err(|e| Failure::new(smtpbridge::Code::Io, format!("cannot find the path of this program: {e}")))
}
