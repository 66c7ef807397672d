//! Printing: the library's JSON as is with `--json` (stdout; errors as a
//! JSON object on stderr), short human lines otherwise.

use serde::Serialize;
use serde_json::{json, Value};
use smtpbridge::client::{Merged, Stats};
use smtpbridge::outbox::{BatchCounts, Cursor};
use smtpbridge::status::{State, Status};

use crate::run::{Detail, Failure};

/// Prints a value as the library's JSON (pretty).
pub fn json_value<T: Serialize + ?Sized>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).expect("output types serialise"));
}

/// A command that has nothing to show but that it worked.
pub fn done(line: &str, json: bool) {
    if json {
        json_value(&json!({"ok": true}));
    } else {
        println!("{line}");
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// The advice of a report (diagnostics: `{"key", "text"}`).
fn advice(detail: &Value) -> Option<&str> {
    detail.get("advice").and_then(|a| a.get("text")).and_then(Value::as_str)
}

/// The advice a status shows: while the message is failed or deferred.
fn status_advice(status: &Status) -> Option<&str> {
    status.advice.as_ref().filter(|_| matches!(status.state, State::Failed | State::Deferred)).map(|a| a.text.as_str())
}

fn or_dash(value: Option<impl ToString>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

pub fn status(status: &Status, json: bool) {
    if json {
        return json_value(status);
    }
    println!("{} {}", status.id, status.state.name());
    let reply = status.reply.as_ref();
    let lines = [
        ("reference", status.reference.clone()),
        ("profile", Some(status.profile.clone())),
        ("recipients", (!status.recipients.is_empty()).then(|| status.recipients.join(", "))),
        ("attempts", Some(status.attempts.to_string())),
        ("smtp_code", reply.map(|r| r.code.to_string())),
        ("smtp_response", reply.map(|r| r.text.clone())),
        ("error", status.error.clone()),
        ("needs", status.needs.clone()),
    ];
    for (field, value) in lines {
        if let Some(value) = value {
            println!("  {field}: {value}");
        }
    }
    for rejected in &status.rejected {
        let reply = rejected.reply.as_ref();
        println!(
            "  rejected: {} ({} {})",
            rejected.address,
            or_dash(reply.map(|r| r.code)),
            or_dash(reply.map(|r| r.text.as_str()))
        );
    }
    if status.possible_duplicate {
        println!("  possible_duplicate: true");
    }
    if let Some(advice) = status_advice(status) {
        println!("  advice: {advice}");
    }
}

pub fn status_list(list: &[Status], json: bool) {
    if json {
        return json_value(list);
    }
    println!("{:<26}  {:<9}  {:>3}  {:<30}  REFERENCE / ERROR", "ID", "STATE", "TRY", "RECIPIENTS");
    for s in list {
        let last = or_dash(s.error.as_ref().or(s.reference.as_ref()));
        println!("{:<26}  {:<9}  {:>3}  {:<30}  {last}", s.id, s.state.name(), s.attempts, s.recipients.join(", "));
    }
}

pub fn stats(stats: &Stats, json: bool) {
    if json {
        return json_value(stats);
    }
    let counts: Vec<String> =
        [State::Queued, State::Sending, State::Sent, State::Deferred, State::Failed, State::Cancelled]
            .iter()
            .map(|s| format!("{} {}", s.name(), stats.counts.get(*s)))
            .collect();
    println!("{}", counts.join(", "));
    if !stats.paused.is_empty() {
        println!("paused: {}", stats.paused.join(", "));
    }
    for (name, limit) in &stats.profiles {
        if limit.limit > 0 {
            println!(
                "{name}: {} of {} per {} (resets {})",
                limit.sent_in_period,
                limit.limit,
                limit.period,
                or_dash(limit.resets_at.as_ref())
            );
        }
    }
}

pub fn test_report(report: &Value, json: bool) {
    if json {
        return json_value(report);
    }
    let verdict = if report["ok"] == true { "ok" } else { "FAILED at" };
    println!("{verdict} {} (profile {})", text(&report["stage"]), text(&report["profile"]));
    for field in ["banner", "tls", "auth_mechanisms", "capabilities"] {
        println!("  {field}: {}", text(&report[field]));
    }
}

pub fn credential(masked: &Value, json: bool) {
    if json {
        return json_value(masked);
    }
    for (field, value) in masked.as_object().into_iter().flatten() {
        println!("{field}: {}", text(value));
    }
}

pub fn merged(merged: &Merged, outcome: Option<&BatchCounts>, json: bool) {
    if json {
        /// The merge and, when the command followed it, the batch's counts.
        #[derive(Serialize)]
        struct Followed<'a> {
            #[serde(flatten)]
            merged: &'a Merged,
            #[serde(skip_serializing_if = "Option::is_none")]
            outcome: Option<&'a BatchCounts>,
        }
        return json_value(&Followed { merged, outcome });
    }
    println!("batch {}: {} messages", merged.batch_id, merged.count);
    if let Some(c) = outcome {
        let c = &c.counts;
        println!(
            "sent {}, failed {}, deferred {}, queued {}, cancelled {}",
            c.sent, c.failed, c.deferred, c.queued, c.cancelled
        );
    }
}

/// The error of a failed command, on stderr: the library's message (its
/// last error), the advice when the library gave one, and what to do next.
pub fn failure(failure: &Failure, json: bool) {
    let name = failure.code.name();
    if json {
        let mut out = json!({"error_code": failure.code as i32, "error_name": name, "error": failure.message});
        match &failure.detail {
            Some(Detail::Status(status)) => out["status"] = serde_json::to_value(status).expect("a status"),
            Some(Detail::Report(report)) => out["report"] = report.clone(),
            None => {}
        }
        eprintln!("{out}");
        return;
    }
    eprintln!("error: {name}: {}", failure.message);
    match &failure.detail {
        Some(Detail::Status(status)) => {
            if let Some(advice) = status_advice(status) {
                eprintln!("advice: {advice}");
            }
            if status.state == State::Failed {
                let id = &status.id;
                eprintln!("message {id} is recorded as failed; `smtpbridge outbox retry {id}` queues it again");
            }
        }
        Some(Detail::Report(report)) => {
            if let Some(advice) = advice(report) {
                eprintln!("advice: {advice}");
            }
        }
        None => {}
    }
}

/// One page (or, with --all, every page) of `outbox query`.
pub fn query_page(page: &smtpbridge::outbox::Page<Status>, json: bool) {
    if json {
        return json_value(page);
    }
    status_list(&page.items, false);
    if let Some(cursor) = &page.next_cursor {
        println!("more: --cursor {}", Cursor::encode(cursor));
    }
}

/// A transcript: each attempt, then its lines (C client, S server, * notes).
pub fn transcript(attempts: &Value, json: bool) {
    if json {
        return json_value(attempts);
    }
    for attempt in attempts.as_array().into_iter().flatten() {
        println!(
            "attempt {} at {} ({} {})",
            text(&attempt["attempt"]),
            text(&attempt["started_at"]),
            text(&attempt["transport"]),
            text(&attempt["server"])
        );
        for line in attempt["lines"].as_array().into_iter().flatten() {
            println!("{:>7} ms {} {}", text(&line["ms"]), text(&line["dir"]), text(&line["text"]));
        }
    }
}

/// The probe of a host: a line per port, then the keys to set.
pub fn probe_report(report: &Value, json: bool) {
    if json {
        return json_value(report);
    }
    for r in report["results"].as_array().into_iter().flatten() {
        let verdict = if r["ok"] == true { "works".to_string() } else { format!("no: {}", text(&r["error"])) };
        println!("{:>5} {:<5} {verdict}", text(&r["port"]), text(&r["encryption"]));
        if let Some(advice) = advice(r) {
            println!("      advice: {advice}");
        }
    }
    match report["suggested"].as_object() {
        Some(keys) => {
            println!("suggested:");
            for (key, value) in keys {
                println!("  {key}={}", text(value));
            }
        }
        None => println!("suggested: nothing works"),
    }
}
