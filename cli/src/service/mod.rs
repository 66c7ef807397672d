//! `smtpbridge service`: delivers a data directory's outbox in the
//! background (ABI.md §17) — `run` until stopped, `install`/`uninstall` as
//! a systemd unit (`systemd`) or a Windows service (`windows`), and
//! `status`.
//!
//! `run` is one loop on every platform ([`deliver`]): open the data
//! directory so that this process delivers, write each delivery result to
//! the service log (`log`), wait for the platform's stop (SIGTERM/SIGINT in
//! `signals`; the service control manager or Ctrl+C in `windows`), then
//! close the client, which ends the deliveries under way within
//! SMTPShutdownGraceMs and lets the data directory go.

mod log;
#[cfg(unix)]
mod signals;
mod status;
#[cfg(not(windows))]
mod systemd;
#[cfg(windows)]
mod windows;

use smtpbridge::client::OPEN_DEFAULT;
use std::path::{Path, PathBuf};

use crate::args::ServiceCommand;
use crate::outcome::{Failure, Outcome};
use log::ServiceLog;

/// The service's name: the systemd unit `smtpbridge.service`, the Windows
/// service `smtpbridge`.
pub const NAME: &str = "smtpbridge";

pub fn service(dir: Option<PathBuf>, command: ServiceCommand, json: bool) -> Outcome {
    let dir = crate::run::data_dir(dir)?;
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
    let stop = signals::StopSignals::block()?;
    deliver(dir, log, || stop.wait())
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

/// Delivers the outbox of `dir` until `wait_for_stop` returns (the reason,
/// for the log), then closes the client. Every step is in the log; a
/// failure to open is logged and returned (the service manager restarts
/// the service on failure).
pub fn deliver(dir: &Path, log: Option<PathBuf>, wait_for_stop: impl FnOnce() -> Outcome<String>) -> Outcome {
    let log = ServiceLog::open(dir, log.as_deref())?;
    log.line(&format!(
        "start: smtpbridge {} service, pid {}, data directory {}",
        smtpbridge::VERSION,
        std::process::id(),
        dir.display()
    ));
    let outcome = deliver_logged(dir, &log, wait_for_stop);
    match &outcome {
        Ok(()) => log.line("stopped"),
        Err(failure) => log.line(&format!("stopped on an error: {}", failure.message)),
    }
    outcome
}

fn deliver_logged(dir: &Path, log: &ServiceLog, wait_for_stop: impl FnOnce() -> Outcome<String>) -> Outcome {
    let session = crate::run::open_dir(dir, OPEN_DEFAULT)?;
    let client = &session.client;
    let events = log.clone();
    client.set_event_callback(Some(std::sync::Arc::new(move |event: &str| events.event(event))))?;
    log.line("lease taken: this process delivers the outbox (the data directory is held exclusively)");
    let stats = client.outbox_stats()?;
    log.line(&format!(
        "outbox: {} queued, {} deferred, {} sending",
        stats.counts.get(smtpbridge::status::State::Queued),
        stats.counts.get(smtpbridge::status::State::Deferred),
        stats.counts.get(smtpbridge::status::State::Sending)
    ));
    let reason = wait_for_stop()?;
    log.line(&format!("stop requested ({reason}): closing the client"));
    let grace = client.shutdown_grace_ms();
    let closed = client.shutdown(grace);
    drop(session);
    match closed {
        Ok(()) => log.line("lease released: deliveries ended, the data directory is free"),
        // Only a transaction cut off at the grace: its message is deferred.
        Err(e) => log.line(&format!("lease released; {}", e.message())),
    }
    Ok(())
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
