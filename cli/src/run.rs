//! One function per command, over [`smtpbridge::Client`].

use serde_json::{json, Value};
use smtpbridge::client::{OPEN_PAUSED, OPEN_SHARED, OPEN_SUBMIT_ONLY};
use smtpbridge::outbox::{purgeable, Cursor, Page, Query};
use smtpbridge::status::State;
use smtpbridge::{Client, Code, Error};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use zeroize::Zeroizing;

use crate::args::{Cli, Command, ConfigCommand, CredentialsCommand, MessageArgs, OutboxCommand, RenderArgs, SendArgs};
use crate::outcome::{data_dir, failed_message, io_failure, open_dir, read_text, Detail, Failure, Outcome, Session};
use crate::output;

/// Keys whose value is a secret: never taken from the command line (it
/// would stay in the shell history and the process list).
const SECRET_KEYS: [&str; 2] = ["SMTPPassword", "SMTPOAuth2ClientSecret"];

/// Whether the opened client delivers what the outbox holds. Every command
/// opens the data directory shared (ABI.md §17), so it works beside a host
/// or `smtpbridge service run` that has it open shared. Commands that only
/// look or change settings open it submit-only and paused, so that a short
/// run never takes the delivery lease nor starts a delivery it would cut
/// off at exit; `send` (one attempt now) may send but holds the outbox;
/// commands that wait for delivery deliver, or leave it to the lease holder.
#[derive(Clone, Copy, PartialEq)]
enum Delivery {
    Held,
    SendNow,
    Run,
}

impl Delivery {
    fn flags(self) -> u32 {
        match self {
            Delivery::Held => OPEN_SHARED | OPEN_SUBMIT_ONLY | OPEN_PAUSED,
            Delivery::SendNow => OPEN_SHARED | OPEN_PAUSED,
            Delivery::Run => OPEN_SHARED,
        }
    }
}

fn open(cli_dir: Option<PathBuf>, delivery: Delivery) -> Outcome<Session> {
    open_dir(&data_dir(cli_dir)?, delivery.flags())
}

/// Reads a secret: from a prompt on the terminal, or from the first line
/// of stdin when stdin is not a terminal (for scripts).
fn read_secret(prompt: &str) -> Outcome<Zeroizing<String>> {
    let mut secret = if std::io::stdin().is_terminal() {
        Zeroizing::new(
            rpassword::prompt_password(prompt)
                .map_err(|e| Failure::new(Code::Io, format!("cannot read the password from the terminal: {e}")))?,
        )
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Failure::new(Code::Io, format!("cannot read the password from stdin: {e}")))?;
        line
    };
    while secret.ends_with(['\n', '\r']) {
        secret.pop();
    }
    Ok(secret)
}

pub fn run(cli: Cli) -> Outcome {
    let json = cli.json;
    let dir = cli.data_dir;
    match cli.command {
        Command::RegisterMapi(args) => crate::register::register_mapi(args, json),
        Command::Service(command) => crate::service::service(dir, command, json),
        Command::Config(command) => config(open(dir, Delivery::Held)?, command, json),
        Command::Test { profile, user } => test(open(dir, Delivery::Held)?, profile, user, json),
        Command::Send(args) => {
            let delivery = if args.queue { Delivery::Run } else { Delivery::SendNow };
            send(open(dir, delivery)?, *args, json)
        }
        Command::Render(args) => render(open(dir, Delivery::Held)?, *args),
        Command::Merge(args) => {
            // Read and check the input before the data directory is opened.
            let template = read_text(&args.template)?;
            let recipients = crate::merge::recipients_from_csv(&args.recipients)?;
            let template = smtpbridge::json::parse_object(&template, "template JSON")?;
            crate::merge::merge(open(dir, Delivery::Run)?, template, &recipients, args.timeout, json)
        }
        Command::Outbox(command) => {
            let delivery = match command {
                OutboxCommand::Flush { .. } => Delivery::Run,
                OutboxCommand::Retry { wait, .. } if wait > 0 => Delivery::Run,
                OutboxCommand::Resume { profile: None, .. } => Delivery::Run,
                _ => Delivery::Held,
            };
            outbox(open(dir, delivery)?, command, json)
        }
        Command::Status { id } => {
            let session = open(dir, Delivery::Held)?;
            output::status(&session.client.status(&id)?, json);
            Ok(())
        }
        Command::Credentials(command) => credentials(open(dir, Delivery::Held)?, command, json),
        Command::Transcript { id } => {
            let session = open(dir, Delivery::Held)?;
            output::transcript(&session.client.transcript(&id)?, json);
            Ok(())
        }
        Command::Login { user, browser: _, device, profile, timeout } => {
            let session = open(dir, Delivery::Held)?;
            login(
                &session.client,
                profile.as_deref(),
                user.as_deref(),
                if device { "device" } else { "browser" },
                timeout,
                json,
            )
        }
        Command::Probe { host } => {
            let session = open(dir, Delivery::Held)?;
            let outcome = session.client.probe(&host);
            if let Some(report) = &outcome.report {
                output::probe_report(report, json);
            }
            outcome.result.map_err(|e| Failure::with_detail(e, outcome.report.map(|r| Detail::Probe(Box::new(r)))))
        }
    }
}

fn config(session: Session, command: ConfigCommand, json: bool) -> Outcome {
    let client = &session.client;
    match command {
        ConfigCommand::Import { file } => {
            let text = read_text(&file)?;
            if text.trim_start().starts_with('{') {
                client.config_load_json(&text)?;
            } else {
                client.config_import_keys(&text)?;
            }
            output::done(&format!("imported {}", file.display()), json);
        }
        ConfigCommand::Export => output::json_value(&client.config_export()?),
        ConfigCommand::Set { key, value, default } => {
            let name = key.rsplit('.').next().unwrap_or(&key);
            let secret = SECRET_KEYS.iter().any(|s| s.eq_ignore_ascii_case(name));
            if secret && value.is_some() {
                return Err(Failure::new(
                    Code::InvalidArgument,
                    format!("{key} is a secret and is never given on the command line: leave the value out to be prompted for it (or pipe it on stdin)"),
                ));
            }
            let value = match (value, default) {
                (_, true) => None,
                (Some(v), false) => Some(Zeroizing::new(v)),
                (None, false) if secret => Some(read_secret(&format!("{key}: "))?),
                (None, false) => {
                    return Err(Failure::new(Code::InvalidArgument, format!("{key}: give a value or --default")))
                }
            };
            client.config_set(&key, value.as_deref().map(String::as_str))?;
            let shown = if secret { "********".to_string() } else { client.config_get(&key)? };
            if json {
                output::json_value(&json!({"key": key, "value": shown}));
            } else {
                println!("{key}={shown}");
            }
        }
        ConfigCommand::Get { key } => {
            let value = client.config_get(&key)?;
            if json {
                output::json_value(&json!({"key": key, "value": value}));
            } else {
                println!("{value}");
            }
        }
    }
    Ok(())
}

fn test(session: Session, profile: Option<String>, user: Option<String>, json: bool) -> Outcome {
    let outcome = session.client.test_connection(profile.as_deref(), user.as_deref());
    if let Some(report) = &outcome.report {
        output::test_report(report, json);
    }
    outcome.result.map_err(|e| Failure::with_detail(e, outcome.report.map(|r| Detail::Test(Box::new(r)))))
}

fn absolute(path: &Path) -> Outcome<String> {
    let path = std::path::absolute(path).map_err(|e| io_failure("cannot resolve", path, &e))?;
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| Failure::new(Code::InvalidArgument, format!("{}: the path is not UTF-8", path.display())))
}

/// The message JSON of the command line's message arguments.
fn message_json(args: MessageArgs) -> Outcome<String> {
    let mut message = json!({"to": args.to, "cc": args.cc, "bcc": args.bcc, "subject": args.subject});
    let fields = [("from", args.from), ("profile", args.profile), ("user", args.user), ("reference", args.reference)];
    for (field, value) in fields {
        if let Some(value) = value {
            message[field] = json!(value);
        }
    }
    if let Some(file) = &args.text {
        message["text"] = json!(read_text(file)?);
    }
    if let Some(file) = &args.html {
        message["html"] = json!(read_text(file)?);
    }
    let attachments: Vec<Value> =
        args.attach.iter().map(|p| Ok(json!({"path": absolute(p)?}))).collect::<Outcome<_>>()?;
    message["attachments"] = json!(attachments);
    Ok(message.to_string())
}

/// Prints (or writes) the MIME a message would be sent as.
fn render(session: Session, args: RenderArgs) -> Outcome {
    let client = &session.client;
    let message = message_json(args.message)?;
    let eml = client.render(&message)?;
    match &args.out {
        Some(path) => {
            let path = std::path::absolute(path).map_err(|e| io_failure("cannot resolve", path, &e))?;
            std::fs::write(&path, eml.as_bytes()).map_err(|e| io_failure("cannot write", &path, &e))?;
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(eml.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|e| io_failure("cannot write", Path::new("-"), &e))?;
        }
    }
    Ok(())
}

fn send(session: Session, args: SendArgs, json: bool) -> Outcome {
    let client = &session.client;
    let message = message_json(args.message)?;
    if !args.queue {
        let outcome = client.send(&message);
        return match outcome.result {
            Ok(()) => {
                if let Some(status) = &outcome.status {
                    output::status(status, json);
                }
                Ok(())
            }
            Err(e) => Err(Failure::with_detail(e, outcome.status.map(Detail::from))),
        };
    }
    let id = client.enqueue(&message)?;
    if args.timeout == 0 {
        output::status(&client.status(&id)?, json);
        return Ok(());
    }
    wait_for(client, &id, args.timeout, json)
}

/// Waits for a message's final state and prints its status; a failed
/// message fails the command with its code.
fn wait_for(client: &Client, id: &str, seconds: u32, json: bool) -> Outcome {
    match client.wait(id, seconds.saturating_mul(1000)) {
        Ok(status) => {
            if status.state == State::Failed {
                return Err(failed_message(status));
            }
            output::status(&status, json);
            Ok(())
        }
        Err(e) if e.code() == Code::Timeout => {
            let status = client.status(id).ok().map(Detail::from);
            Err(Failure::with_detail(
                Error::new(
                    Code::Timeout,
                    format!("message {id} is not delivered after {seconds} s; it stays in the outbox"),
                ),
                status,
            ))
        }
        Err(e) => Err(e.into()),
    }
}

fn outbox(session: Session, command: OutboxCommand, json: bool) -> Outcome {
    let client = &session.client;
    match command {
        OutboxCommand::List { state } => {
            let state = state.as_deref().map(|s| state_arg(s, "state")).transpose()?;
            output::status_list(&client.outbox_list(state)?, json)
        }
        OutboxCommand::Stats => output::stats(&client.outbox_stats()?, json),
        OutboxCommand::Query {
            state,
            batch_id,
            reference,
            reference_prefix,
            profile,
            since,
            until,
            limit,
            all,
            cursor,
        } => {
            let mut states = Vec::new();
            for name in &state {
                let s = state_arg(name, "state")?;
                if !states.contains(&s) {
                    states.push(s);
                }
            }
            if !(1..=1000).contains(&limit) {
                return Err(Failure::new(
                    Code::InvalidArgument,
                    format!("--limit must be an integer from 1 to 1000, not {limit}"),
                ));
            }
            let mut query = Query {
                states,
                batch_id,
                reference,
                reference_prefix,
                profile: profile.map(|p| p.to_ascii_lowercase()),
                since_ms: since.as_deref().map(|t| time_arg(t, "since")).transpose()?,
                until_ms: until.as_deref().map(|t| time_arg(t, "until")).transpose()?,
                limit: limit as usize,
                cursor: cursor.as_deref().map(cursor_arg).transpose()?,
            };
            let mut items = Vec::new();
            loop {
                let page = client.outbox_query(&query)?;
                items.extend(page.items);
                if !all || page.next_cursor.is_none() {
                    output::query_page(&Page { items, next_cursor: page.next_cursor }, json);
                    break;
                }
                query.cursor = page.next_cursor;
            }
        }
        OutboxCommand::Purge { before, state } => {
            let mut states = state.iter().map(|s| state_arg(s, "state")).collect::<Outcome<Vec<_>>>()?;
            if states.is_empty() {
                states = State::FINAL.to_vec();
            }
            purgeable(&states).map_err(|e| e.context("--state"))?;
            let purged = client.outbox_purge(time_arg_at(&before, "before")?, &states)?;
            if json {
                output::json_value(&smtpbridge::ffi::wire::Purged { purged });
            } else {
                println!("{purged} statuses purged");
            }
        }
        OutboxCommand::Retry { id, wait } => {
            client.retry(&id)?;
            if wait > 0 {
                return wait_for(client, &id, wait, json);
            }
            output::done(&format!("{id} queued again; the next client that delivers sends it"), json);
        }
        OutboxCommand::Cancel { id } => {
            client.cancel(&id)?;
            output::done(&format!("{id} cancelled"), json);
        }
        OutboxCommand::Flush { timeout } => {
            client.flush(timeout.saturating_mul(1000))?;
            output::stats(&client.outbox_stats()?, json);
        }
        OutboxCommand::Pause { profile } => {
            client.outbox_pause(profile.as_deref())?;
            output::done(&format!("paused {}", profile.as_deref().unwrap_or("every profile")), json);
        }
        OutboxCommand::Resume { profile: Some(profile), .. } => {
            client.outbox_resume(Some(&profile))?;
            output::done(&format!("resumed {profile}"), json);
        }
        OutboxCommand::Resume { profile: None, timeout } => {
            // Deliver what is due now (or let the lease holder deliver it),
            // rather than leave at once.
            client.outbox_resume(None)?;
            client.flush(timeout.saturating_mul(1000))?;
            output::stats(&client.outbox_stats()?, json);
        }
    }
    Ok(())
}

/// A state named on the command line.
fn state_arg(name: &str, option: &str) -> Outcome<State> {
    State::from_name(name).ok_or_else(|| {
        Failure::new(
            Code::InvalidArgument,
            format!("--{option} {name}: one of queued, sending, sent, deferred, failed, cancelled expected"),
        )
    })
}

/// An RFC 3339 UTC time given on the command line.
fn time_arg_at(text: &str, option: &str) -> Outcome<SystemTime> {
    humantime::parse_rfc3339_weak(text).map_err(|_| {
        Failure::new(
            Code::InvalidArgument,
            format!("--{option} {text}: not an RFC 3339 UTC time such as 2026-11-22T10:00:00Z"),
        )
    })
}

/// [`time_arg_at`] in Unix ms.
fn time_arg(text: &str, option: &str) -> Outcome<i64> {
    let time = time_arg_at(text, option)?;
    Ok(time.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0))
}

fn cursor_arg(text: &str) -> Outcome<Cursor> {
    Cursor::decode(text)
        .ok_or_else(|| Failure::new(Code::InvalidArgument, format!("--cursor {text}: not a cursor this library made")))
}

fn credentials(session: Session, command: CredentialsCommand, json: bool) -> Outcome {
    let client = &session.client;
    match command {
        CredentialsCommand::Set { user, username } => {
            let username = match (username, &user) {
                (Some(name), _) => name,
                (None, Some(user)) => user.clone(),
                (None, None) => {
                    return Err(Failure::new(Code::InvalidArgument, "--username is required for the shared credential"))
                }
            };
            let password = read_secret(&format!("Password for {username}: "))?;
            client.credentials_set(user.as_deref(), &username, &password)?;
            output::credential(&client.credentials_masked(user.as_deref())?, json);
        }
        CredentialsCommand::Remove { user } => {
            client.credentials_remove(user.as_deref())?;
            output::done(&format!("removed the credential of {}", user.as_deref().unwrap_or("the shared user")), json);
        }
        CredentialsCommand::Show { user } => output::credential(&client.credentials_masked(user.as_deref())?, json),
    }
    Ok(())
}

/// `login`: begins the sign-in, tells the person what to do (on stderr,
/// so `--json` output stays one object), and waits for it to finish.
fn login(
    client: &Client,
    profile: Option<&str>,
    user: Option<&str>,
    kind: &str,
    timeout_s: u32,
    json: bool,
) -> Outcome {
    let flow = client.oauth2_begin(profile, user, kind)?;
    let flow_id = flow.flow_id;
    match &flow.authorize_url {
        Some(url) => eprintln!("Open this address in a browser on this computer and sign in:\n  {url}"),
        None => eprintln!(
            "On any device, open {} and enter the code {}",
            flow.verification_uri.as_deref().unwrap_or("?"),
            flow.user_code.as_deref().unwrap_or("?")
        ),
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(u64::from(timeout_s));
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // Waits in slices, so the deadline of the command holds.
        let slice = left.min(std::time::Duration::from_secs(5)).as_millis() as u32;
        match client.oauth2_complete(&flow_id, slice) {
            Ok(signed_in) => {
                output::signed_in(&signed_in, json);
                return Ok(());
            }
            Err(e) if e.code() == Code::Timeout && !left.is_zero() => continue,
            Err(e) => {
                let _ = client.oauth2_cancel(&flow_id);
                return Err(e.into());
            }
        }
    }
}
