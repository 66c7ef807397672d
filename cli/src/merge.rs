//! `smtpbridge merge`: CSV rows to merge recipients, and a progress bar
//! driven by the batch's events.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use smtpbridge::address::{parse_entry, AddressList};
use smtpbridge::client::MergeRecipient;
use smtpbridge::json::OrderedMap;
use smtpbridge::message::{MessageJson, PartSpec};
use smtpbridge::status::State;
use smtpbridge::Code;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::outcome::{failed_message, io_failure, Failure, Outcome, Session};
use crate::output;

/// Reads the recipients CSV (header row first) into merge recipients.
/// Columns `email`, `name`, `cc`, `reference` and `attachments` (any letter
/// case) are the recipient's; every other column is a field. `cc` and
/// `attachments` hold several values separated by `;`; attachment paths are
/// made absolute. Errors name the file, row and column.
pub fn recipients_from_csv(path: &Path) -> Outcome<Vec<MergeRecipient>> {
    let mut reader =
        csv::ReaderBuilder::new().trim(csv::Trim::Headers).from_path(path).map_err(|e| csv_failure(path, &e))?;
    let headers = reader.headers().map_err(|e| csv_failure(path, &e))?.clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let Some(email_column) = column("email") else {
        return Err(Failure::new(
            Code::InvalidArgument,
            format!(
                "{}: no \"email\" column in the header row ({})",
                path.display(),
                headers.iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    let mut recipients = Vec::new();
    for (index, row) in reader.records().enumerate() {
        let row = row.map_err(|e| csv_failure(path, &e))?;
        let line = row.position().map(|p| p.line()).unwrap_or(index as u64 + 2);
        let mut recipient = MergeRecipient::default();
        let mut fields = Vec::new();
        for (name, value) in headers.iter().zip(row.iter()) {
            let list = || value.split(';').map(str::trim).filter(|v| !v.is_empty());
            let given = (!value.is_empty()).then(|| value.to_string());
            match name.to_ascii_lowercase().as_str() {
                "email" => recipient.email = value.to_string(),
                "name" => recipient.name = given,
                "reference" => recipient.reference = given,
                "cc" => recipient.cc = AddressList(list().map(parse_entry).collect()),
                "attachments" => {
                    recipient.attachments = list()
                        .map(|p| {
                            let absolute =
                                std::path::absolute(p).map_err(|e| io_failure("cannot resolve", Path::new(p), &e))?;
                            let path = Some(absolute.to_string_lossy().into_owned());
                            Ok(PartSpec { path, content_base64: None, name: None, content_type: None, cid: None })
                        })
                        .collect::<Outcome<Vec<_>>>()?;
                }
                _ => fields.push((name.to_string(), Value::String(value.to_string()))),
            }
        }
        if row.get(email_column).unwrap_or("").is_empty() {
            return Err(Failure::new(
                Code::InvalidArgument,
                format!("{} line {line}: the email column is empty", path.display()),
            ));
        }
        recipient.fields = Some(OrderedMap(fields));
        recipients.push(recipient);
    }
    Ok(recipients)
}

fn csv_failure(path: &Path, e: &csv::Error) -> Failure {
    match e.kind() {
        csv::ErrorKind::Io(io) => io_failure("cannot read", path, io),
        _ => Failure::new(Code::InvalidArgument, format!("{}: {e}", path.display())),
    }
}

/// Merges, then follows the batch until nothing of it is queued or sending
/// (or `timeout` seconds pass): each event of the client wakes the loop,
/// and the batch status (the truth) moves the bar.
pub fn merge(
    session: Session,
    template: MessageJson,
    recipients: &[MergeRecipient],
    timeout: u32,
    json: bool,
) -> Outcome {
    let client = &session.client;
    let (news, events) = mpsc::channel::<()>();
    client.set_event_callback(Some(Arc::new(move |_event: &str| {
        let _ = news.send(());
    })))?;
    let merged = client.merge(template, recipients)?;
    let batch_id = merged.batch_id.clone();
    let total = merged.count as u64;
    if timeout == 0 {
        output::merged(&merged, None, json);
        return Ok(());
    }
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if json { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() },
    );
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} done {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let deadline = Instant::now() + Duration::from_secs(timeout as u64);
    let counts = loop {
        let counts = client.batch_status(&batch_id)?;
        let c = &counts.counts;
        bar.set_position(c.sent + c.failed + c.cancelled);
        bar.set_message(format!("({} sent, {} failed, {} deferred)", c.sent, c.failed, c.deferred));
        if c.queued + c.sending == 0 || Instant::now() >= deadline {
            break counts;
        }
        // Woken by the next event, at the latest after a second.
        let _ = events.recv_timeout(Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now())));
        while events.try_recv().is_ok() {}
    };
    bar.finish();
    client.set_event_callback(None)?;
    output::merged(&merged, Some(&counts), json);
    let c = &counts.counts;
    if c.failed > 0 {
        for id in &merged.ids {
            let status = client.status(id)?;
            if status.state == State::Failed {
                return Err(failed_message(status));
            }
        }
    }
    if c.queued + c.sending > 0 {
        return Err(Failure::new(
            Code::Timeout,
            format!("batch {batch_id}: not all delivered after {timeout} s; the rest stays in the outbox"),
        ));
    }
    if c.deferred > 0 {
        return Err(Failure::new(
            Code::Transient,
            format!("batch {batch_id}: {} messages deferred; they stay in the outbox and are retried", c.deferred),
        ));
    }
    Ok(())
}
