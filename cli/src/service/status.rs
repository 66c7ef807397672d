//! `service status`: who delivers the outbox (the lease holder), the queue
//! by state, the last failure and, on Windows, the service's state.

use serde_json::{json, Value};
use smtpbridge::client::{OPEN_SHARED, OPEN_SUBMIT_ONLY};
use smtpbridge::outbox::Query;
use smtpbridge::status::State;
use std::path::Path;

use crate::outcome::Outcome;

/// The states a message waits or ends in when its delivery failed.
const FAILURES: [State; 2] = [State::Failed, State::Deferred];

pub fn status(dir: &Path, json: bool) -> Outcome {
    // Beside a running service and hosts; never delivers itself.
    let session = crate::outcome::open_dir(dir, OPEN_SHARED | OPEN_SUBMIT_ONLY)?;
    let client = &session.client;
    let stats = client.outbox_stats()?;
    let holder = stats.delivery.holder;
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
        Some(h) => println!("delivering: {}", super::holder_text(h)),
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
