//! The SMTP dialogue, tested in-process against a scripted server
//! ([`super::mock`]): each test states every line each side sends.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

use super::io::Stream;
use super::mock::{client, server, MockStream, Step};
use super::{Delivery, Failure, Login, Mail, Probe, Session};
use crate::config::{Config, ProfileSettings};
use crate::error::Code;
use crate::reply::MAX_LINE;

const GREETING: &str = "220 mail.example.com ESMTP";

fn settings(keys: &[(&str, &str)]) -> ProfileSettings {
    let mut config = Config::new();
    config.set("SMTPServer", Some("mail.example.com")).expect("SMTPServer");
    config.set("SMTPHeloName", Some("client.example")).expect("SMTPHeloName");
    config.set("SMTPAuthentication", Some("None")).expect("SMTPAuthentication");
    for (key, value) in keys {
        config.set(key, Some(value)).expect(key);
    }
    ProfileSettings::clone(&config.settings("Default").expect("the default profile"))
}

fn login() -> Login {
    Login { username: "alice".into(), secret: Zeroizing::new("s3cret".into()) }
}

/// Runs greeting, EHLO, STARTTLS and AUTH against `steps`.
fn open(settings: &ProfileSettings, login: Option<&Login>, steps: Vec<Step>) -> (Result<Session, Failure>, MockStream) {
    let mock = MockStream::new(steps);
    let tls = crate::tls::client_config(settings).expect("a TLS configuration");
    let name = crate::tls::server_name(settings, "mail.example.com").expect("a server name");
    let stream = Stream::Memory(mock.clone());
    let session = Session::new(stream, Duration::from_secs(5), Arc::new(AtomicBool::new(false)), None);
    let deadline = Instant::now() + Duration::from_secs(5);
    (session.start(settings, &tls, name, login, &mut Probe::default(), deadline), mock)
}

/// A session through EHLO with `extensions` (one keyword line each),
/// then `steps`; the script's end is checked by the caller.
fn ready(extensions: &[&str], steps: Vec<Step>) -> (Session, MockStream) {
    let mut ehlo = String::from("250-mail.example.com\n");
    for (i, e) in extensions.iter().enumerate() {
        ehlo.push_str(&format!("250{}{e}\n", if i + 1 == extensions.len() { ' ' } else { '-' }));
    }
    if extensions.is_empty() {
        ehlo = "250 mail.example.com\n".into();
    }
    let mut script = vec![server(GREETING), client("EHLO client.example"), server(&ehlo)];
    script.extend(steps);
    let (session, mock) = open(&settings(&[]), None, script);
    (session.expect("the session opens"), mock)
}

fn mail<'a>(to: &'a [String], body: &'a [u8]) -> Mail<'a> {
    Mail { from: "a@example.com", to, body, utf8: false }
}

fn send(session: &mut Session, to: &[&str], body: &[u8]) -> Result<Delivery, Failure> {
    let to: Vec<String> = to.iter().map(|s| s.to_string()).collect();
    session.send(&mail(&to, body))
}

fn assert_done(mock: &MockStream) {
    assert_eq!(mock.left(), Vec::<Step>::new(), "the script was not played to its end");
}

#[test]
fn ehlo_refused_falls_back_to_helo() {
    let (result, mock) = open(
        &settings(&[]),
        None,
        vec![
            server(GREETING),
            client("EHLO client.example"),
            server("502 5.5.2 command not recognised"),
            client("HELO client.example"),
            server("250 mail.example.com"),
        ],
    );
    let session = result.expect("HELO opens the session");
    assert!(session.caps.lines.is_empty() && !session.caps.pipelining);
    assert_done(&mock);
}

#[test]
fn ehlo_and_helo_refused_end_with_quit() {
    let (result, mock) = open(
        &settings(&[]),
        None,
        vec![
            server(GREETING),
            client("EHLO client.example"),
            server("500 no"),
            client("HELO client.example"),
            server("554 go away"),
            client("QUIT"),
            server("221 bye"),
        ],
    );
    let f = result.err().expect("refused");
    assert_eq!((f.code, f.stage, f.reply.map(|r| r.code)), (Code::Connect, "ehlo", Some(554)));
    assert_done(&mock);
}

#[test]
fn a_refused_greeting_ends_with_quit() {
    let (result, mock) =
        open(&settings(&[]), None, vec![server("554 5.7.1 no service"), client("QUIT"), server("221 bye")]);
    let f = result.err().expect("refused");
    assert_eq!((f.code, f.stage), (Code::Connect, "greeting"));
    assert!(f.message.contains("554 5.7.1 no service"), "{}", f.message);
    assert_done(&mock);
}

#[test]
fn starttls_required_but_not_offered_is_refused_without_plaintext() {
    let (result, mock) = open(
        &settings(&[("SMTPServerEncryption", "TLS")]),
        Some(&login()),
        vec![
            server(GREETING),
            client("EHLO client.example"),
            server("250-mail.example.com\n250 AUTH PLAIN"),
            client("QUIT"),
            server("221 bye"),
        ],
    );
    let f = result.err().expect("no STARTTLS");
    assert_eq!((f.code, f.stage), (Code::Tls, "tls"));
    assert!(f.message.contains("does not offer STARTTLS"), "{}", f.message);
    assert_done(&mock);
}

#[test]
fn starttls_refused_by_the_server() {
    let (result, mock) = open(
        &settings(&[("SMTPServerEncryption", "TLS")]),
        None,
        vec![
            server(GREETING),
            client("EHLO client.example"),
            server("250-mail.example.com\n250 STARTTLS"),
            client("STARTTLS"),
            server("454 4.7.0 TLS not available"),
            client("QUIT"),
            server("221 bye"),
        ],
    );
    let f = result.err().expect("refused");
    assert_eq!((f.code, f.reply.map(|r| r.code)), (Code::Tls, Some(454)));
    assert_done(&mock);
}

#[test]
fn bytes_after_the_starttls_reply_drop_the_session() {
    let (result, mock) = open(
        &settings(&[("SMTPServerEncryption", "TLS")]),
        None,
        vec![
            server(GREETING),
            client("EHLO client.example"),
            server("250-mail.example.com\n250 STARTTLS"),
            client("STARTTLS"),
            // The injected reply comes with the 220, in plaintext.
            server("220 go ahead\n250 injected"),
        ],
    );
    let f = result.err().expect("injection");
    assert_eq!(f.code, Code::Tls);
    assert!(f.message.contains("unexpected bytes"), "{}", f.message);
    // Nothing more is said on it: no QUIT in plaintext.
    assert_done(&mock);
}

#[test]
fn auth_uses_only_a_mechanism_the_server_offers() {
    let user = B64.encode("alice");
    let secret = B64.encode("s3cret");
    let (result, mock) = open(
        &settings(&[("SMTPAuthentication", "Required"), ("SMTPAllowPlaintextAuth", "true")]),
        Some(&login()),
        vec![
            server(GREETING),
            client("EHLO client.example"),
            server("250-mail.example.com\n250 AUTH LOGIN CRAM-MD5"),
            client("AUTH LOGIN"),
            server("334 VXNlcm5hbWU6"),
            client(&user),
            server("334 UGFzc3dvcmQ6"),
            client(&secret),
            server("235 2.7.0 ok"),
        ],
    );
    result.expect("logged in with LOGIN");
    assert_done(&mock);

    let plain = B64.encode("\0alice\0s3cret");
    let (result, mock) = open(
        &settings(&[("SMTPAuthentication", "Required"), ("SMTPAllowPlaintextAuth", "true")]),
        Some(&login()),
        vec![
            server(GREETING),
            client("EHLO client.example"),
            server("250-mail.example.com\n250 AUTH LOGIN PLAIN"),
            client(format!("AUTH PLAIN {plain}")),
            server("235 2.7.0 ok"),
        ],
    );
    result.expect("logged in with PLAIN");
    assert_done(&mock);
}

#[test]
fn auth_without_a_usable_mechanism_ends_with_quit() {
    let (result, mock) = open(
        &settings(&[("SMTPAuthentication", "Required"), ("SMTPAllowPlaintextAuth", "true")]),
        Some(&login()),
        vec![
            server(GREETING),
            client("EHLO client.example"),
            server("250-mail.example.com\n250 AUTH CRAM-MD5"),
            client("QUIT"),
            server("221 bye"),
        ],
    );
    let f = result.err().expect("no mechanism");
    assert_eq!((f.code, f.stage), (Code::Auth, "auth"));
    assert!(f.message.contains("AUTH CRAM-MD5"), "{}", f.message);
    assert_done(&mock);
}

#[test]
fn auth_is_not_sent_in_plaintext() {
    let (result, mock) = open(
        &settings(&[("SMTPAuthentication", "Required")]),
        Some(&login()),
        vec![
            server(GREETING),
            client("EHLO client.example"),
            server("250-mail.example.com\n250 AUTH PLAIN"),
            client("QUIT"),
            server("221 bye"),
        ],
    );
    let f = result.err().expect("plaintext AUTH refused");
    assert_eq!(f.code, Code::Auth);
    assert!(f.message.contains("unencrypted"), "{}", f.message);
    assert_done(&mock);
}

#[test]
fn a_refused_oauth2_token_is_told_apart_from_other_refusals() {
    let keys = [("SMTPAuthentication", "Required"), ("SMTPAllowPlaintextAuth", "true"), ("SMTPAuthModel", "OAuth2")];
    let token = B64.encode("user=alice\x01auth=Bearer s3cret\x01\x01");
    let challenge = B64.encode(r#"{"status":"401","schemes":"bearer"}"#);
    let (result, mock) = open(
        &settings(&keys),
        Some(&login()),
        vec![
            server(GREETING),
            client("EHLO client.example"),
            server("250-mail.example.com\n250 AUTH XOAUTH2"),
            client(format!("AUTH XOAUTH2 {token}")),
            server(&format!("334 {challenge}")),
            client(""),
            server("535 5.7.8 token expired"),
            client("QUIT"),
            server("221 bye"),
        ],
    );
    let f = result.err().expect("refused");
    assert_eq!(f.code, Code::Auth);
    assert!(f.token_refused(), "{f:?}");
    assert_done(&mock);

    // SMTP AUTH switched off for the mailbox: no new token helps.
    let (result, mock) = open(
        &settings(&keys),
        Some(&login()),
        vec![
            server(GREETING),
            client("EHLO client.example"),
            server("250-mail.example.com\n250 AUTH XOAUTH2"),
            client(format!("AUTH XOAUTH2 {token}")),
            server("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox"),
            client("QUIT"),
            server("221 bye"),
        ],
    );
    let f = result.err().expect("refused");
    assert!(!f.token_refused(), "{f:?}");
    assert_done(&mock);
}

#[test]
fn without_pipelining_each_command_waits_for_its_reply() {
    let (mut session, mock) = ready(
        &["SIZE 1000"],
        vec![
            client("MAIL FROM:<a@example.com> SIZE=6"),
            server("250 ok"),
            client("RCPT TO:<b@example.com>"),
            server("250 ok"),
            client("DATA"),
            server("354 go"),
            client("hello"),
            client("."),
            server("250 2.0.0 queued as 1"),
        ],
    );
    let delivery = send(&mut session, &["b@example.com"], b"hello\n").expect("sent");
    assert_eq!(delivery.reply.enhanced.as_deref(), Some("2.0.0"));
    assert!(session.reusable());
    assert_done(&mock);
}

#[test]
fn pipelining_sends_mail_rcpt_and_data_in_one_batch() {
    let (mut session, mock) = ready(
        &["PIPELINING"],
        vec![
            client("MAIL FROM:<a@example.com>"),
            client("RCPT TO:<b@example.com>"),
            client("RCPT TO:<c@example.com>"),
            client("DATA"),
            server("250 ok\n250 ok\n550 5.1.1 no such user\n354 go"),
            client("hi"),
            client("."),
            server("250 ok"),
        ],
    );
    let delivery = send(&mut session, &["b@example.com", "c@example.com"], b"hi").expect("sent");
    assert_eq!(delivery.rejected.len(), 1);
    assert_eq!(delivery.rejected[0].address, "c@example.com");
    assert_done(&mock);
}

#[test]
fn recipients_over_the_servers_limit_go_in_another_transaction() {
    let (mut session, mock) = ready(
        &["PIPELINING"],
        vec![
            client("MAIL FROM:<a@example.com>"),
            client("RCPT TO:<b@example.com>"),
            client("RCPT TO:<c@example.com>"),
            client("RCPT TO:<d@example.com>"),
            client("DATA"),
            server("250 ok\n250 ok\n452 4.5.3 too many recipients\n452 4.5.3 too many recipients\n354 go"),
            client("hi"),
            client("."),
            server("250 first"),
            client("MAIL FROM:<a@example.com>"),
            client("RCPT TO:<c@example.com>"),
            client("RCPT TO:<d@example.com>"),
            client("DATA"),
            server("250 ok\n250 ok\n250 ok\n354 go"),
            client("hi"),
            client("."),
            server("250 second"),
        ],
    );
    let delivery = send(&mut session, &["b@example.com", "c@example.com", "d@example.com"], b"hi").expect("sent");
    assert_eq!(delivery.reply.text, "second");
    assert!(delivery.rejected.is_empty(), "{:?}", delivery.rejected);
    assert_eq!(session.transactions, 1, "one message");
    assert_done(&mock);
}

#[test]
fn a_452_for_the_first_recipient_defers_the_message() {
    let (mut session, mock) = ready(
        &[],
        vec![
            client("MAIL FROM:<a@example.com>"),
            server("250 ok"),
            client("RCPT TO:<b@example.com>"),
            server("452 4.5.3 too many recipients"),
            client("RSET"),
            server("250 ok"),
        ],
    );
    let f = send(&mut session, &["b@example.com"], b"hi").expect_err("deferred");
    assert_eq!((f.code, f.stage), (Code::Transient, "rcpt"));
    assert!(f.is_transient() && !f.is_permanent());
    assert!(session.reusable());
    assert_done(&mock);
}

#[test]
fn every_recipient_refused_is_permanent_and_rset() {
    let (mut session, mock) = ready(
        &[],
        vec![
            client("MAIL FROM:<a@example.com>"),
            server("250 ok"),
            client("RCPT TO:<b@example.com>"),
            server("550-5.1.1 no such user\n550 5.1.1 try another"),
            client("RSET"),
            server("250 ok"),
        ],
    );
    let f = send(&mut session, &["b@example.com"], b"hi").expect_err("refused");
    assert_eq!(f.code, Code::Rejected);
    assert!(f.is_permanent() && !f.is_transient());
    // A multi-line reply: its lines joined, the enhanced code once.
    let reply = f.reply.expect("the reply");
    assert_eq!((reply.enhanced.as_deref(), reply.text.as_str()), (Some("5.1.1"), "no such user try another"));
    assert_done(&mock);
}

#[test]
fn a_reply_of_the_wrong_class_is_transient_and_closes_the_session() {
    let (mut session, mock) = ready(
        &[],
        vec![
            client("MAIL FROM:<a@example.com>"),
            server("250 ok"),
            client("RCPT TO:<b@example.com>"),
            server("250 ok"),
            client("DATA"),
            server("250 ok"),
        ],
    );
    let f = send(&mut session, &["b@example.com"], b"hi").expect_err("out of step");
    assert_eq!(f.code, Code::Transient);
    assert!(f.message.contains("where 354 was expected"), "{}", f.message);
    // No RSET on a session out of step: it is closed and not reused.
    assert!(mock.is_shut() && !session.reusable());
    assert_done(&mock);
}

#[test]
fn data_is_dot_stuffed_with_crlf_line_ends_and_the_final_dot() {
    let (mut session, mock) = ready(
        &[],
        vec![
            client("MAIL FROM:<a@example.com>"),
            server("250 ok"),
            client("RCPT TO:<b@example.com>"),
            server("250 ok"),
            client("DATA"),
            server("354 go"),
            client("Subject: x"),
            client(""),
            client("..leading dot"),
            client("lone LF"),
            client("lone CR"),
            client("..."),
            client("last line without an end"),
            client("."),
            server("250 ok"),
        ],
    );
    let body = b"Subject: x\r\n\r\n.leading dot\nlone LF\rlone CR\r\n..\r\nlast line without an end";
    send(&mut session, &["b@example.com"], body).expect("sent");
    assert_done(&mock);
}

#[test]
fn a_reply_line_over_the_bound_breaks_the_session() {
    let long = format!("250-{}\n250 SIZE 10", "a".repeat(MAX_LINE));
    let (result, mock) =
        open(&settings(&[]), None, vec![server(GREETING), client("EHLO client.example"), server(&long)]);
    let f = result.err().expect("too long");
    assert_eq!(f.code, Code::Connect);
    assert!(f.message.contains(&format!("longer than {MAX_LINE} bytes")), "{}", f.message);
    // Out of step with the server: dropped without QUIT.
    assert_done(&mock);
}

#[test]
fn a_session_closed_before_mail_is_stale() {
    let (mut session, mock) = ready(
        &[],
        vec![
            client("MAIL FROM:<a@example.com>"),
            server("250 ok"),
            client("RCPT TO:<b@example.com>"),
            server("250 ok"),
            client("DATA"),
            server("354 go"),
            client("hi"),
            client("."),
            server("250 ok"),
            Step::Close,
        ],
    );
    send(&mut session, &["b@example.com"], b"hi").expect("sent");
    let f = send(&mut session, &["b@example.com"], b"hi").expect_err("closed");
    assert!(f.is_stale(), "a reused session closed before MAIL is tried again: {f:?}");
    assert_eq!(mock.left(), vec![Step::Close]);
}

#[test]
fn quit_is_sent_when_the_session_ends() {
    let (session, mock) = ready(&[], vec![client("QUIT"), server("221 bye")]);
    session.quit(Duration::from_secs(1));
    assert!(mock.is_shut());
    assert_done(&mock);
}

/// DATA's bytes line by line, as the writer made them before it worked in
/// one pass: the reference for the test below.
fn stuffed_line_by_line(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            out.push(b'.');
        }
        let end = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
        out.extend_from_slice(&rest[..end]);
        out.extend_from_slice(b"\r\n");
        let skip = match &rest[end..] {
            [b'\r', b'\n', ..] => 2,
            [] => 0,
            _ => 1,
        };
        rest = &rest[end + skip..];
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[test]
fn one_pass_dot_stuffing_sends_what_line_by_line_did_for_random_bodies() {
    use super::transaction::{dot_stuffed, CHUNK};
    // Any line ends, and CRLF only (the search for dots after them).
    const ANY: &[&[u8]] = &[b"\r\n", b"\r", b"\n", b".", b"..", b"a", b"From ", b"\r\n.", b"\n.\r", b" "];
    const CRLF: &[&[u8]] = &[b"\r\n", b"\r\n", b".", b"..", b"a", b"From ", b"\r\n.", b"\r\n..", b" "];
    let mut seed = 0x2545_f491_4f6d_dd1du64;
    let mut below = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut out = Vec::new();
    for round in 0..4000 {
        let pieces = if round % 2 == 0 { ANY } else { CRLF };
        let mut body = Vec::new();
        for _ in 0..below(40) {
            match below(12) {
                // Runs that cross the write size, so that the pieces are joined right.
                0 if round % 10 == 0 => body.extend(std::iter::repeat_n(b'x', CHUNK / 3 + below(CHUNK))),
                0 | 1 => body.extend(std::iter::repeat_n(b'y', below(100))),
                _ => body.extend_from_slice(pieces[below(pieces.len())]),
            }
        }
        let mut sent = Vec::new();
        out.clear();
        dot_stuffed(&body, &mut out, &mut |bytes| {
            sent.extend_from_slice(bytes);
            Ok(())
        })
        .expect("written");
        assert!(sent == stuffed_line_by_line(&body), "round {round}: {:?}", String::from_utf8_lossy(&body));
        let lone = (0..body.len()).any(|i| match body[i] {
            b'\r' => body.get(i + 1) != Some(&b'\n'),
            b'\n' => i == 0 || body[i - 1] != b'\r',
            _ => false,
        });
        assert_eq!(super::transaction::crlf_only(&body), !lone, "round {round}: {:?}", String::from_utf8_lossy(&body));
    }
}
