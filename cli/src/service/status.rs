//! `service status`: who delivers the outbox (the lease holder), the queue
//! by state, the last failure and, on Windows, the service's state.

use serde_json::{json, Value};
use smtpbridge::client::OPEN_PAUSED;
use smtpbridge::outbox::Query;
use smtpbridge::status::State;
use std::path::Path;

use crate::outcome::Outcome;

/// The states a message waits or ends in when its delivery failed.
const FAILURES: [State; 2] = [State::Failed, State::Deferred];

pub fn status(dir: &Path, json: bool) -> Outcome {
    let session = crate::run::open_dir(dir, OPEN_PAUSED)?;
    let client = &session.client;
    let stats = client.outbox_stats()?;
    // The lease holder as the library's stats name it (`delivery.holder`).
    let holder = serde_json::to_value(&stats).ok().and_then(|s| s.pointer("/delivery/holder").cloned());
    let holder = holder.filter(|h| !h.is_null());
    let counts: serde_json::Map<String, Value> =
        State::ALL.iter().map(|s| (s.name().to_string(), json!(stats.counts.get(*s)))).collect();
    let query = Query { states: FAILURES.to_vec(), limit: 1, ..Query::default() };
    let last_failure = client.outbox_query(&query)?.items.into_iter().next();
    let service = service_state();
    if json {
        let mut out = json!({"holder": holder, "counts": counts, "last_failure": last_failure});
        if let Some(state) = service {
            out["service"] = json!(state);
        }
        crate::output::json_value(&out);
        return Ok(());
    }
    match &holder {
        Some(h) => println!(
            "delivering: pid {}, host {}, user {}, since {}",
            h["pid"],
            h["host"].as_str().unwrap_or("?"),
            h["user"].as_str().unwrap_or("?"),
            h["since"].as_str().unwrap_or("?")
        ),
        None => println!("delivering: nobody (no client holds the delivery lease)"),
    }
    let counts: Vec<String> = State::ALL.iter().map(|s| format!("{} {}", s.name(), stats.counts.get(*s))).collect();
    println!("outbox: {}", counts.join(", "));
    match &last_failure {
        Some(status) => println!(
            "last failure: {} {} (queued {}): {}",
            status.id,
            status.state.name(),
            humantime::format_rfc3339_seconds(status.created_at),
            status.error.as_deref().unwrap_or("-")
        ),
        None => println!("last failure: none"),
    }
    if let Some(state) = service {
        println!("service: {state}");
    }
    Ok(())
}

/// The Windows service's state under the service control manager.
#[cfg(windows)]
fn service_state() -> Option<String> {
    Some(super::windows::state())
}

#[cfg(not(windows))]
fn service_state() -> Option<String> {
    None
}
