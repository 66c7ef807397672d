//! Printing: the library's JSON as is with `--json` (stdout; errors as a
//! JSON object on stderr), short human lines otherwise.

use serde_json::{json, Value};

use crate::run::Failure;

pub fn json_value(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
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

/// The advice of a status or report (diagnostics: `{"key", "text"}`).
fn advice(detail: &Value) -> Option<&str> {
    detail.get("advice").and_then(|a| a.get("text")).and_then(Value::as_str)
}

pub fn status(status: &Value, json: bool) {
    if json {
        return json_value(status);
    }
    println!("{} {}", status["id"].as_str().unwrap_or("?"), status["state"].as_str().unwrap_or("?"));
    for field in ["reference", "profile", "recipients", "attempts", "smtp_code", "smtp_response", "error", "needs"] {
        if !status[field].is_null() && status[field] != json!([]) {
            println!("  {field}: {}", text(&status[field]));
        }
    }
    for rejected in status["rejected"].as_array().into_iter().flatten() {
        println!(
            "  rejected: {} ({} {})",
            text(&rejected["address"]),
            text(&rejected["smtp_code"]),
            text(&rejected["smtp_response"])
        );
    }
    if status["possible_duplicate"] == true {
        println!("  possible_duplicate: true");
    }
    if let Some(advice) = advice(status) {
        println!("  advice: {advice}");
    }
}

pub fn status_list(list: &Value, json: bool) {
    if json {
        return json_value(list);
    }
    println!("{:<26}  {:<9}  {:>3}  {:<30}  REFERENCE / ERROR", "ID", "STATE", "TRY", "RECIPIENTS");
    for s in list.as_array().into_iter().flatten() {
        let last = if s["error"].is_null() { text(&s["reference"]) } else { text(&s["error"]) };
        println!(
            "{:<26}  {:<9}  {:>3}  {:<30}  {last}",
            text(&s["id"]),
            text(&s["state"]),
            text(&s["attempts"]),
            text(&s["recipients"])
        );
    }
}

pub fn stats(stats: &Value, json: bool) {
    if json {
        return json_value(stats);
    }
    let counts: Vec<String> = ["queued", "sending", "sent", "deferred", "failed", "cancelled"]
        .iter()
        .map(|s| format!("{s} {}", text(&stats[*s])))
        .collect();
    println!("{}", counts.join(", "));
    if stats["paused"].as_array().is_some_and(|p| !p.is_empty()) {
        println!("paused: {}", text(&stats["paused"]));
    }
    for (name, limit) in stats["profiles"].as_object().into_iter().flatten() {
        if limit["limit"].as_u64().unwrap_or(0) > 0 {
            println!(
                "{name}: {} of {} per {} (resets {})",
                text(&limit["sent_in_period"]),
                text(&limit["limit"]),
                text(&limit["period"]),
                text(&limit["resets_at"])
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

pub fn merged(merged: &Value, counts: Option<&Value>, json: bool) {
    if json {
        let mut out = merged.clone();
        if let Some(counts) = counts {
            out["outcome"] = counts.clone();
        }
        return json_value(&out);
    }
    println!("batch {}: {} messages", text(&merged["batch_id"]), text(&merged["count"]));
    if let Some(c) = counts {
        println!(
            "sent {}, failed {}, deferred {}, queued {}, cancelled {}",
            text(&c["sent"]),
            text(&c["failed"]),
            text(&c["deferred"]),
            text(&c["queued"]),
            text(&c["cancelled"])
        );
    }
}

/// The error of a failed command, on stderr: the library's message (its
/// last error), the advice when the library gave one, and what to do next.
pub fn failure(failure: &Failure, json: bool) {
    let name = failure.code.name();
    if json {
        let mut out = json!({"error_code": failure.code as i32, "error_name": name, "error": failure.message});
        if let Some(detail) = &failure.detail {
            let field = if detail.get("stage").is_some() { "report" } else { "status" };
            out[field] = detail.clone();
        }
        eprintln!("{out}");
        return;
    }
    eprintln!("error: {name}: {}", failure.message);
    if let Some(detail) = &failure.detail {
        if let Some(advice) = advice(detail) {
            eprintln!("advice: {advice}");
        }
        if detail["state"] == "failed" {
            if let Some(id) = detail["id"].as_str() {
                eprintln!("message {id} is recorded as failed; `smtpbridge outbox retry {id}` queues it again");
            }
        }
    }
}

/// One page (or, with --all, every page) of `outbox query`.
pub fn query_page(items: &Value, next_cursor: &Value, json: bool) {
    if json {
        return json_value(&json!({"items": items, "next_cursor": next_cursor}));
    }
    status_list(items, false);
    if let Some(cursor) = next_cursor.as_str() {
        println!("more: --cursor {cursor}");
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
