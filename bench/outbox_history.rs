//! The outbox over months: open, memory, query, status and enqueue with a
//! long history (docs/PERFORMANCE.md, "The outbox over months").
//!
//!     cargo run --release --example outbox_history -- [HISTORY] [QUEUED] [BACKLOG]
//!
//! defaults 1,000,000 / 10,000 / 100,000. The history (final statuses
//! spread over the last 120 days, 30 % of them made within the retention
//! of 30 days) and the queued messages are written straight through the
//! store (`Store::insert_many`, one transaction), which is how a million
//! statuses are made in seconds instead of days; everything measured after
//! that goes through the client, as a host's calls do. Run once, on a quiet
//! machine: these are benchmarks, not assertions.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smtpbridge::ffi::wire;
use smtpbridge::outbox::spool::Record;
use smtpbridge::outbox::store::Store;
use smtpbridge::status::{State, Status};
use smtpbridge::Client;

const DAY_MS: u64 = 86_400_000;

fn rss_mib() -> f64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn dir_mib(dir: &Path) -> f64 {
    let mut total = 0u64;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() { (dir_mib(&entry.path()) * 1048576.0) as u64 } else { meta.len() };
    }
    total as f64 / 1048576.0
}

fn record(created_ms: u64, state: State, n: usize) -> Record {
    let id = ulid::Ulid::from_parts(created_ms, rand_u128(n)).to_string();
    let mut status = Status::new(id.clone(), "Default".into(), state);
    status.created_at = UNIX_EPOCH + Duration::from_millis(created_ms);
    status.message_id = format!("<{id}@firm.example>");
    status.reference = Some(format!("CL-{}/DOC-{n}", n % 1000));
    status.recipients = vec![format!("client{n}@example.com")];
    status.attempts = u32::from(state != State::Queued);
    if state == State::Sent {
        status.sent_at = Some(status.created_at + Duration::from_secs(1));
    }
    Record {
        status,
        user: None,
        envelope_from: "anna@firm.example".into(),
        envelope_to: vec![format!("client{n}@example.com")],
        idempotency_key: n.is_multiple_of(4).then(|| format!("K-{n}")),
        archive: false,
        body_dropped: state != State::Queued,
        origin: None,
        writer: None,
    }
}

fn rand_u128(n: usize) -> u128 {
    // Distinct, spread bits; not security relevant.
    (n as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) & ((1u128 << 80) - 1)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn fill(dir: &Path, history: usize, queued: usize) -> Vec<String> {
    let t = Instant::now();
    let opened = Store::open(Some(dir)).expect("store");
    let mut store = opened.store;
    let now = now_ms();
    let mut ids = Vec::with_capacity(history);
    let mut chunk = Vec::with_capacity(50_000);
    for n in 0..history {
        // 30 % within the last 30 days, the rest 30-120 days old; oldest first.
        let age = if n < history * 7 / 10 {
            120 * DAY_MS - (n as u64 * 90 * DAY_MS / (history as u64 * 7 / 10).max(1))
        } else {
            30 * DAY_MS - ((n - history * 7 / 10) as u64 * 30 * DAY_MS / (history as u64 * 3 / 10).max(1))
        };
        let state = match n % 50 {
            0 => State::Failed,
            1 => State::Cancelled,
            _ => State::Sent,
        };
        let r = record(now - age, state, n);
        ids.push(r.status.id.clone());
        chunk.push((r, None));
        if chunk.len() == chunk.capacity() {
            store.insert_many(&chunk).expect("insert");
            chunk.clear();
        }
    }
    let body = vec![b'x'; 2048];
    for n in 0..queued {
        chunk.push((record(now - 1000 + n as u64 / 100, State::Queued, history + n), Some(body.clone())));
    }
    store.insert_many(&chunk).expect("insert");
    drop(store);
    println!("made {history} statuses and {queued} queued in {:.1} s", t.elapsed().as_secs_f64());
    ids
}

fn message(n: usize) -> String {
    format!(
        r#"{{"from": "anna@firm.example", "to": ["client{n}@example.com"], "subject": "bench {n}", "text": "message number {n}"}}"#
    )
}

fn configure(client: &Client) {
    for (k, v) in [
        ("SMTPServer", "127.0.0.1"),
        ("SMTPServerPort", "9"),
        ("SMTPServerEncryption", "None"),
        ("SMTPAuthentication", "None"),
    ] {
        client.config_set(k, Some(v)).expect("config");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("measure") {
        return measure(Path::new(&args[1]), args[2].parse().unwrap());
    }
    let nums: Vec<usize> = args.iter().map(|a| a.parse().expect("a number")).collect();
    let history = nums.first().copied().unwrap_or(1_000_000);
    let queued = nums.get(1).copied().unwrap_or(10_000);
    let backlog = nums.get(2).copied().unwrap_or(100_000);
    let root: PathBuf = std::env::temp_dir().join(format!("smtpb-bench-{}", std::process::id()));
    let dir = root.join("history");
    std::fs::create_dir_all(&dir).unwrap();
    // Keep everything while measuring (the purge at open would otherwise
    // start on the 70 % older than 30 days): a configuration made aside.
    {
        let other = root.join("config");
        let client = Client::open(Some(&other), Some("bench"), 1).expect("open");
        client.config_set("SMTPKeepSentDays", Some("0")).unwrap();
        client.config_set("SMTPKeepFailedDays", Some("0")).unwrap();
        client.shutdown(1000).ok();
        drop(client);
        std::fs::copy(other.join("config.json"), dir.join("config.json")).unwrap();
    }
    let ids = fill(&dir, history, queued);
    let sample: Vec<&str> = ids.iter().step_by(97).map(String::as_str).collect();
    std::fs::write(root.join("ids.txt"), sample.join("\n")).unwrap();
    drop(ids);
    println!("data_dir with the history: {:.1} MiB", dir_mib(&dir));
    // Measured in a new process, so its memory is the client's alone.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["measure", root.to_str().unwrap(), &backlog.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&root);
}

fn measure(root: &Path, backlog: usize) {
    let dir = root.join("history");
    let ids: Vec<String> = std::fs::read_to_string(root.join("ids.txt")).unwrap().lines().map(String::from).collect();
    // Open: the median of 5.
    let rss_before = rss_mib();
    let mut opens = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let client = Client::open(Some(&dir), Some("bench"), 1).expect("open");
        opens.push(t.elapsed().as_secs_f64() * 1000.0);
        client.shutdown(1000).ok();
        drop(client);
    }
    println!("open: median {:.1} ms of 5 (first {:.1} ms)", median(opens.clone()), opens[0]);
    let t = Instant::now();
    let store = Store::open(Some(&dir)).expect("store");
    println!(
        "  of which the store (counts, {} messages not final): {:.1} ms",
        store.active.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    drop(store);
    let client = Client::open(Some(&dir), Some("bench"), 1).expect("open");
    configure(&client);
    std::thread::sleep(Duration::from_millis(500));
    println!("RSS: {rss_before:.1} MiB before the open, {:.1} MiB idle with the client open", rss_mib());
    // Status of random ids in the history.
    let t = Instant::now();
    let rounds = 2000;
    for n in 0..rounds {
        let id = &ids[(n * 7919 + 13) % ids.len()];
        client.status(id).expect("status");
    }
    println!("smtpb_status: {:.3} ms each ({rounds} random ids)", t.elapsed().as_secs_f64() * 1000.0 / rounds as f64);

    // Query pages of 100, JSON in and out as smtpb_outbox_query has them.
    let page = |q: &str| {
        let t = Instant::now();
        let rounds = 50;
        let mut out = String::new();
        for _ in 0..rounds {
            let query = wire::parse_query(q).expect("a query");
            out = wire::to_json(&client.outbox_query(&query).expect("query"));
        }
        (t.elapsed().as_secs_f64() * 1000.0 / rounds as f64, out)
    };
    let (ms, first) = page("{}");
    println!("query, first page of 100: {ms:.2} ms");
    let cursor: serde_json::Value = serde_json::from_str(&first).unwrap();
    let deep = format!(r#"{{"cursor": {}}}"#, cursor["next_cursor"]);
    println!("query, next page: {:.2} ms", page(&deep).0);
    println!("query, state failed: {:.2} ms", page(r#"{"state": ["failed"]}"#).0);
    println!("query, state failed+cancelled: {:.2} ms", page(r#"{"state": ["failed", "cancelled"]}"#).0);
    println!("query, reference_prefix CL-7: {:.2} ms", page(r#"{"reference_prefix": "CL-7"}"#).0);
    let since = smtpbridge::fsutil::rfc3339(SystemTime::now() - Duration::from_secs(60 * 86400));
    let until = smtpbridge::fsutil::rfc3339(SystemTime::now() - Duration::from_secs(59 * 86400));
    println!("query, one day 60 days ago: {:.2} ms", page(&format!(r#"{{"since": "{since}", "until": "{until}"}}"#)).0);

    // Durable enqueue with the history behind it.
    let t = Instant::now();
    for n in 0..1000 {
        client.enqueue(&message(n)).expect("enqueue");
    }
    println!("durable enqueue with the history: {:.0}/s", 1000.0 / t.elapsed().as_secs_f64());

    // Purge back to 30 days.
    client.config_set("SMTPKeepSentDays", Some("30")).unwrap();
    client.config_set("SMTPKeepFailedDays", Some("30")).unwrap();
    let size = dir_mib(&dir);
    let t = Instant::now();
    let purged =
        client.outbox_purge(SystemTime::now() - Duration::from_secs(30 * 86400), &State::FINAL).expect("purge");
    println!(
        "purge to 30 days: {purged} in {:.1} s; data_dir {size:.1} MiB -> {:.1} MiB",
        t.elapsed().as_secs_f64(),
        dir_mib(&dir)
    );
    client.shutdown(1000).ok();
    drop(client);

    // Enqueue rate against the backlog (paused).
    let dir = root.join("backlog");
    let client = Client::open(Some(&dir), Some("bench"), 1).expect("open");
    configure(&client);
    let mut windows = Vec::new();
    let mut t = Instant::now();
    for n in 0..backlog {
        client.enqueue(&message(n)).expect("enqueue");
        if (n + 1).is_multiple_of(1000) {
            windows.push(1000.0 / t.elapsed().as_secs_f64());
            t = Instant::now();
        }
    }
    let first = windows[0];
    let last = *windows.last().unwrap();
    let mid = windows[windows.len() / 2];
    println!(
        "enqueue rate, paused: first 1,000 {first:.0}/s; at {} queued {mid:.0}/s; at {backlog} queued {last:.0}/s ({:.2}x)",
        backlog / 2,
        last / first
    );
    let t = Instant::now();
    let stats = client.outbox_stats().expect("stats");
    println!("smtpb_outbox_stats with {backlog} queued: {:.2} ms", t.elapsed().as_secs_f64() * 1000.0);
    let _ = stats;
    client.shutdown(1000).ok();
    drop(client);
    let t = Instant::now();
    let client = Client::open(Some(&dir), Some("bench"), 1).expect("open");
    println!("open with {backlog} queued: {:.0} ms; RSS {:.1} MiB", t.elapsed().as_secs_f64() * 1000.0, rss_mib());
    client.shutdown(1000).ok();
    drop(client);
}
