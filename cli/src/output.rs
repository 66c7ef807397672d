//! Printing: the library's JSON as is with `--json` (stdout; errors as a
//! JSON object on stderr), short human lines otherwise.

use serde::Serialize;
use serde_json::json;
use smtpbridge::client::{Merged, ProbeReport, SignedIn, Stats, TestReport};
use smtpbridge::credentials::Masked;
use smtpbridge::outbox::{BatchCounts, Cursor};
use smtpbridge::status::{State, Status};
use smtpbridge::transcript::Attempt;

use crate::outcome::{Detail, Failure};

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

fn list(items: &[String]) -> String {
    items.join(", ")
}

pub fn test_report(report: &TestReport, json: bool) {
    if json {
        return json_value(report);
    }
    let verdict = if report.ok { "ok" } else { "FAILED at" };
    let check = &report.check;
    println!("{verdict} {} (profile {})", check.stage, report.profile);
    println!("  banner: {}", or_dash(check.banner.as_ref()));
    println!("  tls: {}", or_dash(check.tls));
    println!("  auth_mechanisms: {}", list(&check.auth_mechanisms));
    println!("  capabilities: {}", list(&check.capabilities));
}

pub fn credential(masked: &Masked, json: bool) {
    if json {
        return json_value(masked);
    }
    let fields = [
        ("expires_at", or_dash(masked.expires_at.as_ref())),
        ("has_secret", masked.has_secret.to_string()),
        ("kind", masked.kind.to_string()),
        ("password", masked.password.to_string()),
        ("provider", or_dash(masked.provider.as_ref())),
        ("refreshable", masked.refreshable.to_string()),
        ("updated_at", or_dash(masked.updated_at.as_ref())),
        ("user_id", or_dash(masked.user_id.as_ref())),
        ("username", masked.username.clone()),
    ];
    for (field, value) in fields {
        println!("{field}: {value}");
    }
}

/// A finished sign-in: the credential, and what to change when it cannot
/// be refreshed.
pub fn signed_in(signed_in: &SignedIn, json: bool) {
    if json {
        return json_value(signed_in);
    }
    credential(&signed_in.credential, false);
    if let Some(advice) = &signed_in.advice {
        println!("advice: {}", advice.text);
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
            Some(Detail::Test(report)) => out["report"] = serde_json::to_value(report).expect("a report"),
            Some(Detail::Probe(report)) => out["report"] = serde_json::to_value(report).expect("a report"),
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
        Some(Detail::Test(report)) => {
            if let Some(advice) = &report.check.advice {
                eprintln!("advice: {}", advice.text);
            }
        }
        Some(Detail::Probe(_)) | None => {}
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
pub fn transcript(attempts: &[Attempt], json: bool) {
    if json {
        return json_value(attempts);
    }
    for attempt in attempts {
        println!(
            "attempt {} at {} ({} {})",
            attempt.attempt,
            attempt.started_at,
            attempt.transport,
            or_dash(attempt.server.as_ref())
        );
        for line in &attempt.lines {
            println!("{:>7} ms {} {}", line.ms, line.dir, line.text);
        }
    }
}

/// The probe of a host: a line per port, then the keys to set.
pub fn probe_report(report: &ProbeReport, json: bool) {
    if json {
        return json_value(report);
    }
    for r in &report.results {
        let verdict = if r.ok { "works".to_string() } else { format!("no: {}", or_dash(r.error.as_ref())) };
        println!("{:>5} {:<5} {verdict}", r.port, r.encryption);
        if let Some(advice) = &r.advice {
            println!("      advice: {}", advice.text);
        }
    }
    match &report.suggested {
        Some(keys) => {
            println!("suggested:");
            println!("  SMTPServer={}", keys.server);
            println!("  SMTPServerEncryption={}", keys.encryption);
            println!("  SMTPServerPort={}", keys.port);
        }
        None => println!("suggested: nothing works"),
    }
}
