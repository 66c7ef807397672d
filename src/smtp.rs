//! The SMTP dialogue, written for this library over std sockets and rustls.
//!
//! Why not lettre's `SmtpTransport`: as released (0.11.23) it reads bytes a
//! server sent with its STARTTLS `220` as if they had come over TLS (a
//! refused mail can be reported sent), bounds each socket read rather than
//! each reply (a server that drips bytes holds a send for ever), stops a
//! transaction at the first refused recipient, sends AUTH over plaintext
//! without a guard, and stalls ~44 ms per mail on a reused connection
//! (Nagle). lettre still builds, encodes and signs every message; this
//! module only speaks the protocol.
//!
//! Guarantees:
//! - One deadline (SMTPConnectionTimeout) bounds connect, TLS, greeting,
//!   EHLO, STARTTLS and AUTH together; after that every command's complete
//!   reply has a deadline of its own. Every socket read and write is given
//!   only the time left, so dripping bytes cannot stretch a deadline.
//! - After the STARTTLS `220`, any byte already received is a protocol
//!   error: nothing that came in plaintext is read as if it came over TLS.
//! - AUTH never goes out unencrypted unless SMTPAllowPlaintextAuth.
//! - DATA goes out with CRLF line ends only (a lone CR or LF becomes CRLF)
//!   and dot-stuffed; TCP_NODELAY is set so small writes are not delayed.
//! - Refused recipients do not stop the others; a 4xx for any recipient
//!   defers the whole message (RSET), so no recipient gets it twice.

// A failure carries the server's reply and the refused recipients; it is
// the rare path, and boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rustls::{ClientConfig, ClientConnection};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

use crate::advice;
use crate::config::{AuthModel, Authentication, Encryption, ProfileSettings};
use crate::error::Code;
use crate::status::Refusal;
use crate::transcript;

/// How long a greeting may take on the implicit-TLS port (465, or the port
/// SMTPProbePorts maps 465 to) when the profile does not use implicit TLS:
/// a server there waits for a TLS ClientHello and says nothing, so silence
/// this long means the encryption setting is wrong.
const IMPLICIT_TLS_PORT_GREETING: Duration = Duration::from_secs(2);

/// The longest reply line accepted (RFC 5321 allows 512; servers send more
/// in EHLO lists, so allow a generous bound that still caps memory).
const MAX_LINE: usize = 8192;
/// The most lines in one reply.
const MAX_REPLY_LINES: usize = 256;
/// How much of a message is written per socket write.
const CHUNK: usize = 64 * 1024;
/// The slowest transfer rate a DATA deadline allows for: the deadline for
/// the body and its reply is SMTPConnectionTimeout plus this per byte.
const MIN_BYTES_PER_SECOND: u64 = 64 * 1024;

/// One reply of the server.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reply {
    pub code: u16,
    /// The RFC 3463 enhanced status code, when the reply has one.
    pub enhanced: Option<String>,
    /// The reply text without code and enhanced code, lines joined by
    /// a space.
    pub text: String,
    /// The text of each line after the code (capability lists).
    pub lines: Vec<String>,
}

/// What a status keeps of a reply.
impl From<Reply> for crate::status::ServerReply {
    fn from(r: Reply) -> Self {
        crate::status::ServerReply { code: r.code, enhanced: r.enhanced, text: r.text }
    }
}

impl From<&Reply> for crate::status::ServerReply {
    fn from(r: &Reply) -> Self {
        crate::status::ServerReply { code: r.code, enhanced: r.enhanced.clone(), text: r.text.clone() }
    }
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    /// A 5xx: the only class that refuses for good.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
    /// Of the class `expected` (2 for 2xx, 3 for 354).
    fn is_class(&self, expected: u16) -> bool {
        self.code / 100 == expected
    }
    /// `550 5.1.1 No such user`, for messages.
    pub fn summary(&self) -> String {
        match &self.enhanced {
            Some(e) => format!("{} {} {}", self.code, e, self.text),
            None => format!("{} {}", self.code, self.text),
        }
        .trim_end()
        .to_string()
    }
}

/// Why a session or transaction did not succeed.
#[derive(Clone, Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    /// The server's reply behind the failure, if there was one.
    pub reply: Option<Reply>,
    /// The connection broke or stalled after the final dot: the server may
    /// have accepted the message.
    pub possible_duplicate: bool,
    /// A reused connection turned out closed before the first command of
    /// this transaction was answered: nothing was committed, so the caller
    /// may open a new session and try once more.
    pub stale: bool,
    /// The stage the failure happened in (`connect`, `greeting`, `ehlo`,
    /// `tls`, `auth`, `mail`, `rcpt`, `data`).
    pub stage: &'static str,
    /// An OAuth2 token that the server refused.
    pub oauth_refused: bool,
    /// Recipients the server refused with a 5xx.
    pub rejected: Vec<(String, Reply)>,
    /// What to change, when the cause was recognised where it was seen
    /// (TLS errors, a missing greeting, connect errors); otherwise
    /// [`crate::advice::for_failure`] reads the reply.
    pub advice: Option<crate::advice::Advice>,
    /// The library refused on its own (no server reply behind it): the
    /// session is still in step with the server and can carry QUIT or
    /// another transaction.
    pub local: bool,
}

impl Failure {
    pub fn new(code: Code, stage: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            reply: None,
            possible_duplicate: false,
            stale: false,
            stage,
            oauth_refused: false,
            rejected: Vec::new(),
            advice: None,
            local: false,
        }
    }

    fn with_advice(mut self, advice: Option<crate::advice::Advice>) -> Failure {
        self.advice = advice;
        self
    }

    /// A refusal the library makes itself, with the session in step.
    fn local(code: Code, stage: &'static str, message: impl Into<String>) -> Failure {
        Failure { local: true, ..Failure::new(code, stage, message) }
    }

    /// Whether the session is still in step with the server after this
    /// failure: the server's last reply came whole, or nothing was sent.
    fn in_step(&self) -> bool {
        self.local || self.reply.is_some()
    }

    fn with_reply(mut self, reply: Reply) -> Failure {
        self.reply = Some(reply);
        self
    }
}

/// A failure of the transport below the protocol.
#[derive(Debug)]
enum IoFail {
    Timeout,
    Closed,
    Io(io::Error),
    Protocol(String),
    Tls(rustls::Error),
}

impl std::fmt::Display for IoFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IoFail::Timeout => f.write_str("timed out"),
            IoFail::Closed => f.write_str("connection closed by the server"),
            IoFail::Io(e) => write!(f, "{e}"),
            IoFail::Protocol(m) => f.write_str(m),
            IoFail::Tls(e) => write!(f, "TLS error: {e}"),
        }
    }
}

type IoResult<T> = std::result::Result<T, IoFail>;

fn remaining(deadline: Instant) -> IoResult<Duration> {
    let now = Instant::now();
    if now >= deadline {
        Err(IoFail::Timeout)
    } else {
        // A zero timeout means "block for ever" to the socket API.
        Ok((deadline - now).max(Duration::from_millis(1)))
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn io_fail(e: io::Error) -> IoFail {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => IoFail::Timeout,
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => IoFail::Closed,
        _ => IoFail::Io(e),
    }
}

/// The byte stream under the protocol: plain TCP, or TLS over it. TLS is
/// driven by hand (no `rustls::StreamOwned`) so that every socket read and
/// write gets only the time left before the deadline.
enum Stream {
    Plain(TcpStream),
    Tls(Box<ClientConnection>, TcpStream),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(t) | Stream::Tls(_, t) => t,
        }
    }

    fn read(&mut self, buf: &mut [u8], deadline: Instant) -> IoResult<usize> {
        loop {
            match self {
                Stream::Plain(tcp) => {
                    tcp.set_read_timeout(Some(remaining(deadline)?)).map_err(IoFail::Io)?;
                    match tcp.read(buf) {
                        Ok(0) => return Err(IoFail::Closed),
                        Ok(n) => return Ok(n),
                        Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(io_fail(e)),
                    }
                }
                Stream::Tls(conn, tcp) => {
                    match conn.reader().read(buf) {
                        Ok(0) => return Err(IoFail::Closed),
                        Ok(n) => return Ok(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(io_fail(e)),
                    }
                    tls_read_once(conn, tcp, deadline)?;
                }
            }
        }
    }

    fn write_all(&mut self, bytes: &[u8], deadline: Instant) -> IoResult<()> {
        match self {
            Stream::Plain(tcp) => write_all_tcp(tcp, bytes, deadline),
            Stream::Tls(conn, tcp) => {
                // rustls takes only as much plaintext as fits its buffer of
                // unsent records: hand it a piece, send that, repeat.
                let mut rest = bytes;
                while !rest.is_empty() {
                    let taken = conn.writer().write(rest).map_err(IoFail::Io)?;
                    rest = &rest[taken..];
                    tls_flush(conn, tcp, deadline)?;
                }
                Ok(())
            }
        }
    }
}

fn write_all_tcp(tcp: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> IoResult<()> {
    while !bytes.is_empty() {
        tcp.set_write_timeout(Some(remaining(deadline)?)).map_err(IoFail::Io)?;
        match tcp.write(bytes) {
            Ok(0) => return Err(IoFail::Closed),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_fail(e)),
        }
    }
    Ok(())
}

fn tls_flush(conn: &mut ClientConnection, tcp: &mut TcpStream, deadline: Instant) -> IoResult<()> {
    while conn.wants_write() {
        tcp.set_write_timeout(Some(remaining(deadline)?)).map_err(IoFail::Io)?;
        match conn.write_tls(tcp) {
            Ok(_) => {}
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_fail(e)),
        }
    }
    Ok(())
}

/// Reads one batch of TLS records from the socket and processes them.
fn tls_read_once(conn: &mut ClientConnection, tcp: &mut TcpStream, deadline: Instant) -> IoResult<()> {
    loop {
        tcp.set_read_timeout(Some(remaining(deadline)?)).map_err(IoFail::Io)?;
        match conn.read_tls(tcp) {
            Ok(0) => return Err(IoFail::Closed),
            Ok(_) => break,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_fail(e)),
        }
    }
    if let Err(e) = conn.process_new_packets() {
        // Tell the server why, if it still listens.
        let _ = tls_flush(conn, tcp, deadline);
        return Err(IoFail::Tls(e));
    }
    Ok(())
}

fn tls_handshake(
    config: Arc<ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
    mut tcp: TcpStream,
    deadline: Instant,
) -> IoResult<Stream> {
    // A subject noted by an earlier handshake on this thread is not this one's.
    let _ = crate::tls::take_peer_subject();
    let mut conn = ClientConnection::new(config, name).map_err(IoFail::Tls)?;
    while conn.is_handshaking() {
        if conn.wants_write() {
            tls_flush(&mut conn, &mut tcp, deadline)?;
        } else {
            tls_read_once(&mut conn, &mut tcp, deadline)?;
        }
    }
    tls_flush(&mut conn, &mut tcp, deadline)?;
    Ok(Stream::Tls(Box::new(conn), tcp))
}

/// What the server announced in its EHLO reply.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    /// The keyword lines as the server sent them (without the first line).
    pub lines: Vec<String>,
    pub starttls: bool,
    pub pipelining: bool,
    pub smtputf8: bool,
    /// SIZE, when the server announced a limit (0 = none given).
    pub size: Option<u64>,
    /// AUTH mechanisms, upper case.
    pub auth: Vec<String>,
}

impl Capabilities {
    fn parse(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities { lines: reply.lines.iter().skip(1).cloned().collect(), ..Default::default() };
        for line in &caps.lines {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            match keyword.as_str() {
                "STARTTLS" => caps.starttls = true,
                "PIPELINING" => caps.pipelining = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "SIZE" => caps.size = Some(words.next().and_then(|w| w.parse().ok()).unwrap_or(0)),
                "AUTH" => caps.auth.extend(words.map(|w| w.to_ascii_uppercase())),
                // Some old servers announce "AUTH=LOGIN PLAIN".
                k if k.starts_with("AUTH=") => {
                    caps.auth.extend(line[5..].split_ascii_whitespace().map(|w| w.to_ascii_uppercase()))
                }
                _ => {}
            }
        }
        caps.auth.dedup();
        caps
    }
}

/// The login a session uses.
pub struct Login {
    pub username: String,
    pub secret: Zeroizing<String>,
}

/// Where a test of a connection got to.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    pub stage: &'static str,
    pub banner: Option<String>,
    pub capabilities: Vec<String>,
    pub tls: Option<&'static str>,
    pub auth_mechanisms: Vec<String>,
}

/// The open sockets of a client, so that shutdown can end sessions from
/// another thread: at once for those not in a transaction, after the grace
/// for the others.
#[derive(Default)]
pub struct Sockets {
    inner: Mutex<SocketsInner>,
}

#[derive(Default)]
struct SocketsInner {
    next: u64,
    open: HashMap<u64, (TcpStream, Arc<AtomicBool>)>,
    closed: bool,
}

/// A session's entry in [`Sockets`]; removed when the session ends.
struct Registration {
    sockets: Arc<Sockets>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.sockets.inner.lock().unwrap_or_else(|e| e.into_inner()).open.remove(&self.id);
    }
}

impl Sockets {
    fn register(self: &Arc<Self>, tcp: &TcpStream, in_transaction: &Arc<AtomicBool>) -> Option<Registration> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.closed {
            return None;
        }
        let clone = tcp.try_clone().ok()?;
        inner.next += 1;
        let id = inner.next;
        inner.open.insert(id, (clone, in_transaction.clone()));
        Some(Registration { sockets: self.clone(), id })
    }

    /// Refuses new sessions and ends the open ones: all of them, or
    /// (`in_transaction_too` false) those not inside a transaction.
    pub fn abort(&self, in_transaction_too: bool) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.closed = true;
        for (tcp, busy) in inner.open.values() {
            if in_transaction_too || !busy.load(Ordering::Acquire) {
                let _ = tcp.shutdown(Shutdown::Both);
            }
        }
    }
}

/// An open SMTP session, ready for MAIL.
pub struct Session {
    stream: Stream,
    /// Set while a transaction (MAIL to the final reply) is under way.
    in_transaction: Arc<AtomicBool>,
    _registration: Option<Registration>,
    buf: Vec<u8>,
    start: usize,
    pub banner: String,
    pub caps: Capabilities,
    timeout: Duration,
    /// When the session last finished a transaction.
    pub idle_since: Instant,
    /// Transactions completed on this session.
    pub transactions: u64,
    /// The server answered DATA with 354 and waits for the message.
    data_mode: bool,
}

impl Session {
    /// Connects with `settings` and logs in with `login` (when the profile
    /// authenticates), all within one SMTPConnectionTimeout. `probe` tells
    /// how far it got.
    pub fn open(
        settings: &ProfileSettings,
        tls: &Arc<ClientConfig>,
        login: Option<&Login>,
        probe: &mut Probe,
        sockets: &Arc<Sockets>,
    ) -> Result<Session, Failure> {
        let timeout = Duration::from_millis(settings.timeout_ms as u64);
        let deadline = Instant::now() + timeout;
        let host =
            settings.server.as_deref().ok_or_else(|| Failure::new(Code::Config, "connect", "SMTPServer is not set"))?;
        let server_name =
            crate::tls::server_name(settings, host).map_err(|e| Failure::new(Code::Config, "connect", e.message()))?;

        probe.stage = "connect";
        transcript::set_server(&format!("{host}:{}", settings.port));
        let tcp = connect(settings, host, settings.port, deadline)?;
        let _ = tcp.set_nodelay(true);
        let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        log::debug!("connected to {host}:{} ({peer})", settings.port);
        transcript::note(|| format!("connected to {host}:{} ({peer})", settings.port));
        let in_transaction = Arc::new(AtomicBool::new(false));
        let registration = sockets
            .register(&tcp, &in_transaction)
            .ok_or_else(|| Failure::new(Code::Connect, "connect", "the client is shutting down"))?;
        let stream = if settings.encryption == Encryption::Ssl {
            probe.stage = "tls";
            tls_handshake(tls.clone(), server_name.clone(), tcp, deadline).map_err(|e| {
                tls_failure(settings, &server_name, format!("TLS handshake with {host}:{} failed", settings.port), e)
            })?
        } else {
            Stream::Plain(tcp)
        };
        let mut session = Session {
            stream,
            in_transaction,
            _registration: Some(registration),
            buf: Vec::with_capacity(4096),
            start: 0,
            banner: String::new(),
            caps: Capabilities::default(),
            timeout,
            idle_since: Instant::now(),
            transactions: 0,
            data_mode: false,
        };
        if let Stream::Tls(conn, _) = &session.stream {
            probe.tls = tls_version_name(conn);
            tls_established(conn, host, settings.port);
        }
        match session.handshake(settings, tls, server_name, login, probe, deadline) {
            Ok(()) => Ok(session),
            Err(f) => {
                // A session the library gives up on ends with QUIT when it
                // can still carry one (a refusal, not a broken stream),
                // within what is left of the deadline.
                if f.in_step() {
                    session.quit_by(deadline);
                }
                Err(f)
            }
        }
    }

    /// Greeting, EHLO, STARTTLS and AUTH, by `deadline`.
    fn handshake(
        &mut self,
        settings: &ProfileSettings,
        tls: &Arc<ClientConfig>,
        server_name: rustls::pki_types::ServerName<'static>,
        login: Option<&Login>,
        probe: &mut Probe,
        deadline: Instant,
    ) -> Result<(), Failure> {
        probe.stage = "greeting";
        let host = settings.server.as_deref().unwrap_or("");
        // On the implicit-TLS port without TLS, a silent server is waiting
        // for a ClientHello: say so within seconds, not at the timeout.
        let implicit_port = settings.port == settings.implicit_tls_port && settings.encryption != Encryption::Ssl;
        let greeting_deadline =
            if implicit_port { deadline.min(Instant::now() + IMPLICIT_TLS_PORT_GREETING) } else { deadline };
        let greeting = self.read_reply(greeting_deadline).map_err(|e| {
            let silent = matches!(e, IoFail::Timeout) && self.buf.len() == self.start;
            let tls_record = self.buf.first().is_some_and(|b| matches!(b, 0x15 | 0x16));
            let mut f = if silent && implicit_port {
                Failure::new(
                    Code::Connect,
                    "greeting",
                    format!(
                        "{host}:{} sent no greeting within {} s: the port expects implicit TLS (SMTPServerEncryption=SSL)",
                        settings.port,
                        IMPLICIT_TLS_PORT_GREETING.as_secs()
                    ),
                )
            } else {
                connect_failure("greeting", &format!("waiting for the greeting of {host}:{}", settings.port), e)
            };
            if settings.encryption != Encryption::Ssl && (silent || tls_record) {
                f.advice = Some(advice::plain_on_tls_port(settings));
            }
            transcript::note(|| f.message.clone());
            f
        })?;
        self.banner = greeting.text.clone();
        probe.banner = Some(greeting.text.clone());
        if greeting.code != 220 {
            return Err(Failure::new(
                Code::Connect,
                "greeting",
                format!("the server refused the session: {}", greeting.summary()),
            )
            .with_reply(greeting));
        }

        probe.stage = "ehlo";
        self.hello(&settings.helo_name, deadline)?;
        probe.capabilities = self.caps.lines.clone();

        if settings.encryption == Encryption::StartTls {
            probe.stage = "tls";
            self.starttls(settings, tls.clone(), server_name, deadline)?;
            if let Stream::Tls(conn, _) = &self.stream {
                probe.tls = tls_version_name(conn);
                tls_established(conn, host, settings.port);
            }
            self.hello(&settings.helo_name, deadline)?;
            probe.capabilities = self.caps.lines.clone();
        }
        probe.auth_mechanisms = self.caps.auth.clone();

        probe.stage = "auth";
        self.authenticate(settings, login, deadline)?;
        probe.stage = "done";
        Ok(())
    }

    fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(..))
    }

    /// The negotiated TLS version, if the session is encrypted.
    pub fn tls_version(&self) -> Option<&'static str> {
        match &self.stream {
            Stream::Tls(conn, _) => tls_version_name(conn),
            Stream::Plain(_) => None,
        }
    }

    fn hello(&mut self, name: &str, deadline: Instant) -> Result<(), Failure> {
        let fail = |e| connect_failure("ehlo", "during EHLO", e);
        self.write(format!("EHLO {name}\r\n").as_bytes(), deadline).map_err(fail)?;
        let reply = self.read_reply(deadline).map_err(fail)?;
        if reply.code == 250 {
            self.caps = Capabilities::parse(&reply);
            return Ok(());
        }
        if reply.code >= 500 {
            // An old server without ESMTP: fall back to HELO.
            self.write(format!("HELO {name}\r\n").as_bytes(), deadline).map_err(fail)?;
            let helo = self.read_reply(deadline).map_err(fail)?;
            if helo.code == 250 {
                self.caps = Capabilities::default();
                return Ok(());
            }
            return Err(Failure::new(
                Code::Connect,
                "ehlo",
                format!("the server refused EHLO and HELO: {}", helo.summary()),
            )
            .with_reply(helo));
        }
        Err(Failure::new(Code::Connect, "ehlo", format!("the server refused EHLO: {}", reply.summary()))
            .with_reply(reply))
    }

    fn starttls(
        &mut self,
        settings: &ProfileSettings,
        config: Arc<ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let fail = |e: IoFail| Failure::new(Code::Tls, "tls", format!("STARTTLS failed: {e}"));
        if !self.caps.starttls {
            return Err(Failure::local(
                Code::Tls,
                "tls",
                "the server does not offer STARTTLS, and SMTPServerEncryption=TLS requires it (no fallback to plaintext)",
            )
            .with_advice(Some(advice::text_for("starttls_unavailable", settings))));
        }
        self.write(b"STARTTLS\r\n", deadline).map_err(fail)?;
        let reply = self.read_reply(deadline).map_err(fail)?;
        if reply.code != 220 {
            return Err(Failure::new(Code::Tls, "tls", format!("the server refused STARTTLS: {}", reply.summary()))
                .with_reply(reply));
        }
        if self.start < self.buf.len() {
            return Err(Failure::new(
                Code::Tls,
                "tls",
                format!(
                    "the server sent {} unexpected bytes after its STARTTLS reply (response injection?); the session was dropped",
                    self.buf.len() - self.start
                ),
            ));
        }
        self.buf.clear();
        self.start = 0;
        let tcp = match &self.stream {
            Stream::Plain(tcp) => tcp.try_clone().map_err(|e| fail(IoFail::Io(e)))?,
            Stream::Tls(..) => return Err(fail(IoFail::Protocol("the session is already encrypted".into()))),
        };
        self.stream = tls_handshake(config, name.clone(), tcp, deadline)
            .map_err(|e| tls_failure(settings, &name, "TLS handshake failed".to_string(), e))?;
        // RFC 3207 §4.2: forget what was learned before TLS.
        self.caps = Capabilities::default();
        Ok(())
    }

    fn authenticate(
        &mut self,
        settings: &ProfileSettings,
        login: Option<&Login>,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let login = match (settings.authentication, login) {
            (Authentication::None, _) => return Ok(()),
            (Authentication::Optional, None) => return Ok(()),
            (Authentication::Optional, Some(_)) if self.caps.auth.is_empty() => return Ok(()),
            (Authentication::Required, None) => {
                return Err(Failure::new(
                    Code::Credentials,
                    "auth",
                    "SMTPAuthentication=Required, but no credentials were found",
                ))
            }
            (_, Some(login)) => login,
        };
        if !self.is_tls() && !settings.allow_plaintext_auth {
            if self.caps.starttls {
                // Encryption is to be had: say so, not "allow plaintext".
                return Err(Failure::local(
                    Code::Auth,
                    "auth",
                    "AUTH would go over an unencrypted connection, but the server offers STARTTLS: set \
                     SMTPServerEncryption=TLS",
                )
                .with_advice(Some(advice::plaintext_auth_with_starttls(settings))));
            }
            return Err(Failure::local(
                Code::Auth,
                "auth",
                "AUTH would go over an unencrypted connection; use SSL or TLS, or set SMTPAllowPlaintextAuth=true",
            ));
        }
        let mechanism = choose_mechanism(settings.auth_model, &self.caps.auth).map_err(|m| {
            Failure::local(Code::Auth, "auth", m)
                .with_advice(Some(advice::text_for("auth_mechanism_unsupported", settings)))
        })?;
        log::info!("AUTH {mechanism} as {}", login.username);
        // The session breaking during AUTH is no refusal: CONNECT, retried.
        let io = |e: IoFail| connect_failure("auth", &format!("during AUTH {mechanism}"), e);
        let reply = match mechanism {
            "PLAIN" => {
                let token = Zeroizing::new(format!("\0{}\0{}", login.username, login.secret.as_str()));
                let line = Zeroizing::new(format!("AUTH PLAIN {}\r\n", B64.encode(token.as_bytes())));
                self.write_secret(line.as_bytes(), "AUTH PLAIN ********", deadline).map_err(io)?;
                self.read_reply(deadline).map_err(io)?
            }
            "LOGIN" => {
                self.write(b"AUTH LOGIN\r\n", deadline).map_err(io)?;
                let mut reply = self.read_reply(deadline).map_err(io)?;
                for part in [login.username.as_str(), login.secret.as_str()] {
                    if reply.code != 334 {
                        break;
                    }
                    let line = Zeroizing::new(format!("{}\r\n", B64.encode(part.as_bytes())));
                    self.write_secret(line.as_bytes(), "********", deadline).map_err(io)?;
                    reply = self.read_reply(deadline).map_err(io)?;
                }
                reply
            }
            _ => {
                let (token, dummy): (Zeroizing<String>, &[u8]) = if mechanism == "OAUTHBEARER" {
                    // RFC 7628 §3.1: a GS2 header naming the user, then
                    // key/value pairs; after an error challenge the client
                    // answers with a lone %x01 (§3.2.3).
                    let host = settings.server.as_deref().unwrap_or("");
                    let token = format!(
                        "n,a={},\x01host={host}\x01port={}\x01auth=Bearer {}\x01\x01",
                        gs2_saslname(&login.username),
                        settings.port,
                        login.secret.as_str()
                    );
                    (Zeroizing::new(token), b"AQ==\r\n")
                } else {
                    // XOAUTH2: the error challenge is answered by an empty line.
                    let token = format!("user={}\x01auth=Bearer {}\x01\x01", login.username, login.secret.as_str());
                    (Zeroizing::new(token), b"\r\n")
                };
                let line = Zeroizing::new(format!("AUTH {mechanism} {}\r\n", B64.encode(token.as_bytes())));
                self.write_secret(line.as_bytes(), &format!("AUTH {mechanism} ********"), deadline).map_err(io)?;
                let reply = self.read_reply(deadline).map_err(io)?;
                if reply.code == 334 {
                    // The server explains the refusal in a base64 JSON
                    // challenge and waits for the client's answer.
                    let detail =
                        B64.decode(reply.text.trim()).ok().and_then(|b| String::from_utf8(b).ok()).unwrap_or_default();
                    self.write(dummy, deadline).map_err(io)?;
                    let last = self.read_reply(deadline).map_err(io)?;
                    let mut f = Failure::new(
                        Code::Auth,
                        "auth",
                        format!(
                            "the server refused the OAuth2 token of {} ({mechanism}): {} {}",
                            login.username,
                            last.summary(),
                            crate::config::printable(&detail)
                        ),
                    );
                    // SMTP AUTH switched off is no refused token: no
                    // refresh or new sign-in can help (advice smtp_auth_disabled).
                    f.oauth_refused = !advice::smtp_auth_disabled(&last);
                    return Err(f.with_reply(last));
                }
                reply
            }
        };
        if reply.code == 235 {
            return Ok(());
        }
        let mut f = Failure::new(
            Code::Auth,
            "auth",
            format!("the server refused authentication of {} ({mechanism}): {}", login.username, reply.summary()),
        );
        f.oauth_refused = settings.auth_model == AuthModel::OAuth2 && !advice::smtp_auth_disabled(&reply);
        Err(f.with_reply(reply))
    }

    /// Whether the session looks usable for another transaction: the
    /// server has not closed it or sent anything (a `421` before closing)
    /// while it was idle. Costs no round trip.
    pub fn looks_alive(&self) -> bool {
        if self.start < self.buf.len() {
            return false;
        }
        let tcp = self.stream.tcp();
        if tcp.set_nonblocking(true).is_err() {
            return false;
        }
        let mut probe = [0u8; 1];
        let alive = matches!(tcp.peek(&mut probe), Err(ref e) if e.kind() == io::ErrorKind::WouldBlock);
        tcp.set_nonblocking(false).is_ok() && alive
    }

    /// Sends one message: MAIL, RCPT for each recipient, DATA, the body.
    /// On success returns the final reply and the recipients refused with
    /// a 5xx; otherwise a failure classified by phase.
    pub fn send(&mut self, mail: &Mail) -> Result<Delivery, Failure> {
        self.in_transaction.store(true, Ordering::Release);
        let result = self.transaction(mail.from, mail.to, mail.body, mail.utf8);
        self.in_transaction.store(false, Ordering::Release);
        match &result {
            Ok(_) => self.transactions = self.transactions.saturating_add(1),
            // Broke or stalled mid-transaction: a late reply may still be on
            // its way, and would be read as the answer to the next command.
            Err(f) if !f.in_step() => self.transactions = u64::MAX,
            Err(_) => {}
        }
        self.idle_since = Instant::now();
        result
    }

    fn transaction(&mut self, from: &str, recipients: &[String], body: &[u8], utf8: bool) -> Result<Delivery, Failure> {
        if let Some(limit) = self.caps.size.filter(|s| *s > 0) {
            if body.len() as u64 > limit {
                // The library's own refusal: no server reply is invented
                // for it, and nothing was sent (the session stays usable).
                return Err(Failure::local(
                    Code::Rejected,
                    "mail",
                    format!(
                        "the message is {} bytes; the server announced SIZE {limit}, so it was not sent",
                        body.len()
                    ),
                )
                .with_advice(Some(advice::message_too_large(Some(limit)))));
            }
        }
        if utf8 && !self.caps.smtputf8 {
            let address = std::iter::once(from)
                .chain(recipients.iter().map(String::as_str))
                .find(|a| !a.is_ascii())
                .unwrap_or(from);
            return Err(Failure::local(
                Code::Message,
                "mail",
                format!(
                    "the address {} has a non-ASCII local part, and the server does not offer SMTPUTF8",
                    crate::config::printable(address)
                ),
            ));
        }
        // RFC 5321 §4.5.3.1.10: a server may take fewer recipients per
        // transaction than a message has (452, e.g. Postfix's 4.5.3 "too
        // many recipients"). The accepted ones get the message, the rest go
        // in further transactions on this session: one status in the end.
        let mut remaining: Vec<String> = recipients.to_vec();
        let mut rejected: Vec<Refusal> = Vec::new();
        let mut delivered: Option<Reply> = None;
        loop {
            match self.round(from, &remaining, body, utf8, delivered.is_none()) {
                Ok(round) => {
                    rejected.extend(
                        round.rejected.into_iter().map(|(address, reply)| Refusal::reply(address, reply.into())),
                    );
                    delivered = Some(round.reply);
                    if round.carried.is_empty() {
                        break;
                    }
                    remaining = round.carried;
                }
                Err(f) if delivered.is_none() => return Err(f),
                Err(f) => {
                    // Some recipients have the message already: a later
                    // transaction's failure is each remaining recipient's.
                    if !f.in_step() {
                        self.transactions = u64::MAX; // broken: not pooled
                    }
                    for address in remaining {
                        let reply = f.rejected.iter().find(|(a, _)| *a == address).map(|(_, r)| r.clone());
                        let error = f.message.clone();
                        rejected.push(Refusal {
                            address,
                            reply: reply.or_else(|| f.reply.clone()).map(Into::into),
                            error: Some(error),
                        });
                    }
                    break;
                }
            }
        }
        Ok(Delivery { reply: delivered.expect("at least one transaction delivered"), rejected })
    }

    /// One transaction: MAIL, RCPT for each of `recipients`, DATA, the
    /// body. Recipients answered 452 after one was accepted are `carried`
    /// for the next transaction instead of deferring the message.
    fn round(
        &mut self,
        from: &str,
        recipients: &[String],
        body: &[u8],
        utf8: bool,
        first_round: bool,
    ) -> Result<Round, Failure> {
        let first = first_round && self.transactions > 0;
        let mut mail = format!("MAIL FROM:<{from}>");
        if self.caps.size.is_some() {
            mail.push_str(&format!(" SIZE={}", body.len()));
        }
        if utf8 {
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");
        let rcpts: Vec<String> = recipients.iter().map(|r| format!("RCPT TO:<{r}>\r\n")).collect();

        // With PIPELINING, MAIL, every RCPT and DATA go out in one write
        // (RFC 2920: DATA may end a group): two round trips a message.
        let pipelined = self.caps.pipelining;
        let deadline = Instant::now() + self.timeout;
        let stale_fail = |e: IoFail| {
            let mut f = Failure::new(Code::Transient, "mail", format!("the connection broke at MAIL: {e}"));
            f.stale = first && matches!(e, IoFail::Closed | IoFail::Io(_));
            f
        };
        let mail_reply = if pipelined {
            let mut batch = mail.clone().into_bytes();
            for r in &rcpts {
                batch.extend_from_slice(r.as_bytes());
            }
            batch.extend_from_slice(b"DATA\r\n");
            self.write(&batch, deadline).map_err(stale_fail)?;
            self.read_reply(deadline).map_err(stale_fail)?
        } else {
            self.write(mail.as_bytes(), deadline).map_err(stale_fail)?;
            self.read_reply(deadline).map_err(stale_fail)?
        };
        let mail_ok = mail_reply.is_class(2);
        if !mail_ok && !pipelined {
            return Err(self.after_refusal(
                mail_reply,
                "mail",
                "MAIL",
                format!("the server refused the sender {from}"),
            ));
        }

        let mut data_reply = None;
        let mut accepted = 0usize;
        let mut rejected = Vec::new();
        let mut deferred = Vec::new();
        let mut carried = Vec::new();
        let mut out_of_step = None;
        for (index, line) in rcpts.iter().enumerate() {
            let deadline = Instant::now() + self.timeout;
            let io = |e| transient("rcpt", "at RCPT", e);
            if !pipelined {
                self.write(line.as_bytes(), deadline).map_err(io)?;
            }
            let reply = self.read_reply(deadline).map_err(io)?;
            let address = recipients[index].clone();
            if reply.is_class(2) {
                accepted += 1;
            } else if reply.code == 452 && accepted > 0 {
                // Past the server's recipient limit (RFC 5321 §4.5.3.1.10).
                carried.push(address);
            } else if reply.is_transient() {
                deferred.push((address, reply));
            } else if reply.is_permanent() {
                rejected.push((address, reply));
            } else if out_of_step.is_none() {
                out_of_step = Some((address, reply));
            }
        }
        if pipelined {
            // DATA's reply. A 354 puts the server in data mode: from here a
            // refusal below ends the session instead of RSET (no final dot
            // ever goes out, so nothing is delivered).
            let deadline = Instant::now() + self.timeout;
            let reply = self.read_reply(deadline).map_err(|e| transient("data", "at DATA", e))?;
            self.data_mode = reply.code == 354;
            data_reply = Some(reply);
        }
        if !mail_ok {
            return Err(self.after_refusal(
                mail_reply,
                "mail",
                "MAIL",
                format!("the server refused the sender {from}"),
            ));
        }
        if let Some((address, reply)) = out_of_step {
            let command = format!("RCPT TO:<{address}>");
            let mut f = self.after_refusal(reply, "rcpt", &command, String::new());
            f.rejected = rejected;
            return Err(f);
        }
        if let Some((address, reply)) = deferred.first().cloned() {
            let mut f = self.after_refusal(reply, "rcpt", "RCPT", format!("the server deferred recipient {address}"));
            f.code = Code::Transient;
            f.rejected = rejected;
            return Err(f);
        }
        if accepted == 0 {
            let (address, reply) = rejected.last().cloned().expect("at least one recipient");
            let mut f = self.after_refusal(
                reply,
                "rcpt",
                "RCPT",
                format!("the server refused every recipient (last: {address})"),
            );
            f.code = Code::Rejected;
            f.rejected = rejected;
            return Err(f);
        }

        let reply = match data_reply {
            Some(reply) => reply,
            None => {
                let deadline = Instant::now() + self.timeout;
                let io = |e| transient("data", "at DATA", e);
                self.write(b"DATA\r\n", deadline).map_err(io)?;
                self.read_reply(deadline).map_err(io)?
            }
        };
        if reply.code != 354 {
            let mut f = self.after_refusal(reply, "data", "DATA", "the server refused DATA".to_string());
            f.rejected = rejected;
            return Err(f);
        }

        self.data_mode = false;
        let allowance = Duration::from_millis(body.len() as u64 * 1000 / MIN_BYTES_PER_SECOND);
        let deadline = Instant::now() + self.timeout + allowance;
        self.write_data(body, deadline).map_err(|e| transient("data", "while sending the message", e))?;
        let reply = self.read_reply(deadline).map_err(|e| {
            let mut f = transient("data", "after the final dot, before the server's reply", e);
            f.possible_duplicate = true;
            f
        })?;
        if !reply.is_class(2) {
            // Past the dot, a reply of no refusing class leaves unknown
            // whether the server took the message.
            let unknown = !reply.is_transient() && !reply.is_permanent();
            let mut f =
                self.after_refusal(reply, "data", "the final dot", "the server refused the message".to_string());
            f.possible_duplicate = unknown;
            f.rejected = rejected;
            return Err(f);
        }
        Ok(Round { reply, rejected, carried })
    }

    /// A refusal in the transaction: classify it and leave the session
    /// ready for the next transaction (RSET). Only a 5xx refuses for good
    /// (`SMTPB_ERR_REJECTED`); a 4xx is TRANSIENT. A reply of a class the
    /// command never gets (`250` to DATA, `354` to RCPT: a server sending
    /// replies nobody asked for) is TRANSIENT too, quoted, and the session,
    /// out of step with the server, is closed instead of reused.
    fn after_refusal(&mut self, reply: Reply, stage: &'static str, command: &str, what: String) -> Failure {
        if !reply.is_transient() && !reply.is_permanent() {
            self.data_mode = false;
            self.transactions = u64::MAX;
            let _ = self.stream.tcp().shutdown(Shutdown::Both);
            let expected = if command == "DATA" { "354" } else { "2xx" };
            return Failure::new(
                Code::Transient,
                stage,
                format!(
                    "the server answered {command} with \"{}\" where {expected} was expected; the session is out of \
                     step with the server and was closed",
                    reply.summary()
                ),
            )
            .with_reply(reply);
        }
        let code = if reply.is_transient() { Code::Transient } else { Code::Rejected };
        let deadline = Instant::now() + self.timeout;
        if self.data_mode {
            // The server waits for message text: end the session without
            // the final dot, so that it delivers nothing.
            self.data_mode = false;
            self.transactions = u64::MAX;
            let _ = self.stream.tcp().shutdown(Shutdown::Both);
        } else if self.write(b"RSET\r\n", deadline).is_err() || !self.read_reply(deadline).is_ok_and(|r| r.code == 250)
        {
            // The session is unusable; the pool will drop it.
            self.transactions = u64::MAX;
        }
        Failure::new(code, stage, format!("{what}: {}", reply.summary())).with_reply(reply)
    }

    /// Whether the session can carry another transaction.
    pub fn reusable(&self) -> bool {
        self.transactions != u64::MAX
    }

    /// Ends the session politely: QUIT, and the reply if it comes in time.
    pub fn quit(self, wait: Duration) {
        self.quit_by(Instant::now() + wait);
    }

    /// QUIT, and the reply if it comes by `deadline` (nothing is sent once
    /// the deadline has passed).
    fn quit_by(mut self, deadline: Instant) {
        if self.write(b"QUIT\r\n", deadline).is_ok() {
            let _ = self.read_reply(deadline);
        }
        if let Stream::Tls(conn, tcp) = &mut self.stream {
            conn.send_close_notify();
            let _ = tls_flush(conn, tcp, deadline);
        }
        let _ = self.stream.tcp().shutdown(Shutdown::Both);
    }

    /// Writes protocol lines, recording each in the transcript.
    fn write(&mut self, bytes: &[u8], deadline: Instant) -> IoResult<()> {
        if transcript::recording() {
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                transcript::client(&String::from_utf8_lossy(line));
            }
        }
        self.stream.write_all(bytes, deadline)
    }

    /// Writes a line that carries a secret; the transcript shows `shown`.
    fn write_secret(&mut self, bytes: &[u8], shown: &str, deadline: Instant) -> IoResult<()> {
        transcript::client(shown);
        self.stream.write_all(bytes, deadline)
    }

    /// Writes the message dot-stuffed, with CRLF line ends only, followed
    /// by `.` on a line of its own.
    fn write_data(&mut self, body: &[u8], deadline: Instant) -> IoResult<()> {
        let mut out = Vec::with_capacity(CHUNK + 1024);
        let mut rest = body;
        while !rest.is_empty() {
            // One line at a time: its text is copied whole, its end (CRLF,
            // lone CR or lone LF) written as CRLF, a leading dot doubled.
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
            if out.len() >= CHUNK {
                self.stream.write_all(&out, deadline)?;
                out.clear();
            }
        }
        out.extend_from_slice(b".\r\n");
        // The content never enters a transcript: only its size.
        transcript::note(|| format!("DATA: {} bytes", body.len()));
        self.stream.write_all(&out, deadline)
    }

    /// Reads one complete reply, single or multi-line, by `deadline`.
    fn read_reply(&mut self, deadline: Instant) -> IoResult<Reply> {
        let mut builder = ReplyBuilder::default();
        loop {
            let line = self.read_line(deadline)?;
            transcript::server(&String::from_utf8_lossy(&line));
            if let Some(reply) = builder.push(&line).map_err(IoFail::Protocol)? {
                return Ok(reply);
            }
        }
    }

    /// One line without its line end (see [`read_line_from`]).
    fn read_line(&mut self, deadline: Instant) -> IoResult<Vec<u8>> {
        let stream = &mut self.stream;
        read_line_from(&mut self.buf, &mut self.start, |chunk| stream.read(chunk, deadline))
    }
}

/// One line without its line end, from `buf[*start..]` and what `read`
/// gives (each call at most a chunk, `Err` for a timeout or a close).
/// CRLF ends a line; a bare LF is taken too, as most clients do. A line
/// over [`MAX_LINE`] bytes is a protocol error.
fn read_line_from(
    buf: &mut Vec<u8>,
    start: &mut usize,
    mut read: impl FnMut(&mut [u8]) -> IoResult<usize>,
) -> IoResult<Vec<u8>> {
    loop {
        if let Some(pos) = buf[*start..].iter().position(|b| *b == b'\n') {
            let end = *start + pos;
            let mut line = buf[*start..end].to_vec();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            *start = end + 1;
            if *start == buf.len() {
                buf.clear();
                *start = 0;
            }
            // However the bytes came in pieces: the same bound.
            if line.len() > MAX_LINE {
                return Err(IoFail::Protocol(format!("reply line longer than {MAX_LINE} bytes")));
            }
            return Ok(line);
        }
        // Room for the CR of a line of MAX_LINE bytes.
        if buf.len() - *start > MAX_LINE + 1 {
            return Err(IoFail::Protocol(format!("reply line longer than {MAX_LINE} bytes")));
        }
        if *start > 0 {
            buf.drain(..*start);
            *start = 0;
        }
        let mut chunk = [0u8; 4096];
        let n = read(&mut chunk)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One message to send: envelope and bytes.
pub struct Mail<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub body: &'a [u8],
    /// An address has non-ASCII characters (needs SMTPUTF8).
    pub utf8: bool,
}

/// A message the server accepted.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The server's reply to the last transaction that delivered it.
    pub reply: Reply,
    /// Recipients that did not get it while others did: refused with a
    /// 5xx, or left over when a later transaction failed.
    pub rejected: Vec<Refusal>,
}

/// What one transaction of a message did.
struct Round {
    reply: Reply,
    /// Recipients refused with a 5xx.
    rejected: Vec<(String, Reply)>,
    /// Recipients answered 452 while others were accepted: for the next
    /// transaction.
    carried: Vec<String>,
}

/// The AUTH mechanism for `model` among those the server `offered` (after
/// TLS, upper case): PLAIN, else LOGIN, for a password; XOAUTH2, else
/// OAUTHBEARER, for an OAuth2 token. Never one the server did not offer;
/// the error names what it offers.
pub fn choose_mechanism(model: AuthModel, offered: &[String]) -> Result<&'static str, String> {
    let has = |m: &str| offered.iter().any(|a| a == m);
    let offers = || {
        if offered.is_empty() {
            "the server offers no AUTH mechanism".to_string()
        } else {
            format!("the server offers AUTH {}", offered.join(" "))
        }
    };
    match model {
        AuthModel::Basic if has("PLAIN") => Ok("PLAIN"),
        AuthModel::Basic if has("LOGIN") => Ok("LOGIN"),
        AuthModel::Basic => {
            Err(format!("{}, but not PLAIN or LOGIN, which a password (SMTPAuthModel=Basic) needs", offers()))
        }
        AuthModel::OAuth2 if has("XOAUTH2") => Ok("XOAUTH2"),
        AuthModel::OAuth2 if has("OAUTHBEARER") => Ok("OAUTHBEARER"),
        AuthModel::OAuth2 => {
            Err(format!("{}, but not XOAUTH2 or OAUTHBEARER, which SMTPAuthModel=OAuth2 needs", offers()))
        }
    }
}

/// A user name as a GS2 `saslname` (RFC 5801): `,` and `=` escaped.
fn gs2_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn tls_version_name(conn: &ClientConnection) -> Option<&'static str> {
    match conn.protocol_version()? {
        rustls::ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
        rustls::ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
        _ => Some("TLS"),
    }
}

/// Assembles a reply from its lines (without line ends), as they come.
#[derive(Default)]
struct ReplyBuilder {
    lines: Vec<String>,
    code: u16,
}

impl ReplyBuilder {
    /// Takes one line; the reply once its last line came.
    fn push(&mut self, line: &[u8]) -> std::result::Result<Option<Reply>, String> {
        let text = String::from_utf8_lossy(line).into_owned();
        let bytes = text.as_bytes();
        let malformed = || format!("malformed reply line \"{}\"", crate::config::printable(&text));
        // RFC 5321 §4.2: three digits, the first 2 to 5 (1yz is unused in
        // SMTP). A code outside is a protocol error, not a refusal.
        if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&bytes[0]) {
            return Err(malformed());
        }
        let this: u16 = text[..3].parse().map_err(|_| malformed())?;
        if !self.lines.is_empty() && this != self.code {
            return Err("reply lines with different codes".into());
        }
        self.code = this;
        let sep = bytes.get(3).copied();
        match sep {
            None | Some(b' ') | Some(b'-') => {}
            Some(_) => return Err(malformed()),
        }
        self.lines.push(text.get(4..).unwrap_or("").to_string());
        match sep {
            Some(b'-') if self.lines.len() < MAX_REPLY_LINES => return Ok(None),
            Some(b'-') => return Err("reply has too many lines".into()),
            _ => {}
        }
        let lines = std::mem::take(&mut self.lines);
        let code = self.code;
        let enhanced = enhanced_code(code, &lines[0]);
        let strip = |l: &String| match &enhanced {
            Some(e) => l.strip_prefix(e.as_str()).map(|r| r.trim_start().to_string()).unwrap_or_else(|| l.clone()),
            None => l.clone(),
        };
        let text = lines.iter().map(strip).collect::<Vec<_>>().join(" ");
        Ok(Some(Reply { code, enhanced, text, lines }))
    }
}

/// Parses a server's byte stream into replies as a session reads them
/// (lines end at LF, a CR before it is dropped; lines over the length
/// bound are refused), stopping at the first error, and parses each
/// complete reply's capabilities. For tests and fuzzing: never panics.
pub fn parse_replies(bytes: &[u8]) -> (Vec<Reply>, Option<String>) {
    let mut replies = Vec::new();
    let mut builder = ReplyBuilder::default();
    for raw in bytes.split_inclusive(|b| *b == b'\n') {
        let Some(line) = raw.strip_suffix(b"\n") else { break };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_LINE {
            return (replies, Some(format!("reply line longer than {MAX_LINE} bytes")));
        }
        match builder.push(line) {
            Ok(Some(reply)) => {
                let _ = Capabilities::parse(&reply);
                let _ = reply.summary();
                replies.push(reply);
            }
            Ok(None) => {}
            Err(e) => return (replies, Some(e)),
        }
    }
    (replies, None)
}

/// Reads replies from `source` as a session reads them from its socket
/// (its line reader, bounds and deadline) until `source` ends, a reply is
/// malformed or `deadline` passes: the replies, and why reading stopped.
/// For fuzzing, with a `source` that gives the bytes in pieces of its
/// choosing (a `WouldBlock` or `Interrupted` error is waited past).
#[doc(hidden)]
pub fn read_replies_from(source: &mut dyn Read, deadline: Instant) -> (Vec<Reply>, String) {
    let (mut buf, mut start) = (Vec::new(), 0);
    let mut read = |chunk: &mut [u8]| loop {
        remaining(deadline)?;
        match source.read(chunk) {
            Ok(0) => return Err(IoFail::Closed),
            Ok(n) => return Ok(n),
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_fail(e)),
        }
    };
    let mut replies = Vec::new();
    let mut builder = ReplyBuilder::default();
    loop {
        let line = match read_line_from(&mut buf, &mut start, &mut read) {
            Ok(line) => line,
            Err(e) => return (replies, e.to_string()),
        };
        match builder.push(&line) {
            Ok(Some(reply)) => {
                let _ = Capabilities::parse(&reply);
                replies.push(reply);
            }
            Ok(None) => {}
            Err(e) => return (replies, e),
        }
    }
}

fn enhanced_code(code: u16, first_line: &str) -> Option<String> {
    let word = first_line.split_ascii_whitespace().next()?;
    let parts: Vec<&str> = word.split('.').collect();
    let valid = parts.len() == 3
        && parts[0].len() == 1
        && parts[0].as_bytes()[0] == b'0' + (code / 100) as u8
        && parts[1..].iter().all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    valid.then(|| word.to_string())
}

fn connect(settings: &ProfileSettings, host: &str, port: u16, deadline: Instant) -> Result<TcpStream, Failure> {
    let fail = |m: String| {
        let key = if m.starts_with("timed out") {
            "connection_timed_out"
        } else if m.starts_with("cannot resolve") || m.ends_with("has no address") {
            "host_not_found"
        } else {
            "connection_refused"
        };
        transcript::note(|| m.clone());
        Failure::new(Code::Connect, "connect", m).with_advice(Some(advice::text_for(key, settings)))
    };
    let addresses = resolve(host, port, deadline).map_err(fail)?;
    let mut last = None;
    let count = addresses.len() as u32;
    for (tried, address) in addresses.into_iter().enumerate() {
        let left = remaining(deadline).map_err(|_| fail(format!("timed out connecting to {host}:{port}")))?;
        // An address that does not answer must not take the others' time.
        let share = (left / (count - tried as u32)).max(left.min(Duration::from_secs(1)));
        match TcpStream::connect_timeout(&address, share) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(fail(match last {
        Some(e) if is_timeout(&e) => format!("timed out connecting to {host}:{port}"),
        Some(e) => format!("cannot connect to {host}:{port}: {e}"),
        None => format!("{host} has no address"),
    }))
}

/// The addresses of `host`, looked up by `deadline`. The system resolver
/// has no timeout of its own, so a name is looked up on a helper thread
/// that is left to finish on its own if the deadline passes first.
fn resolve(host: &str, port: u16, deadline: Instant) -> std::result::Result<Vec<std::net::SocketAddr>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let bare = bare.strip_prefix("IPv6:").unwrap_or(bare);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(vec![std::net::SocketAddr::new(ip, port)]);
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    let name = bare.to_string();
    std::thread::Builder::new()
        .name("smtpbridge-dns".into())
        .spawn(move || {
            let _ = sender.send((name.as_str(), port).to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
        })
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let left = remaining(deadline).map_err(|_| format!("timed out resolving {host}"))?;
    match receiver.recv_timeout(left) {
        Ok(Ok(addresses)) => Ok(addresses),
        Ok(Err(e)) => Err(format!("cannot resolve {host}: {e}")),
        Err(_) => Err(format!("timed out resolving {host}")),
    }
}

/// A TLS handshake that failed: TLS, with advice for the recognised causes
/// (certificate, version, SMTP text where TLS was expected).
fn tls_failure(
    settings: &ProfileSettings,
    name: &rustls::pki_types::ServerName<'static>,
    what: String,
    e: IoFail,
) -> Failure {
    let subject = crate::tls::take_peer_subject();
    let checked = name.to_str();
    let message = match &subject {
        Some(s) => format!("{what}: {e} (certificate subject {s}, name checked {checked})"),
        None => format!("{what}: {e}"),
    };
    let advice = match &e {
        IoFail::Tls(error) => advice::from_tls_error(error, settings, subject.as_deref(), &checked),
        // SMTP text instead of a ServerHello: a plain port closed on us.
        IoFail::Closed | IoFail::Protocol(_) if settings.encryption == Encryption::Ssl => {
            Some(advice::ssl_on_plain_port(settings))
        }
        _ => None,
    };
    transcript::note(|| message.clone());
    log::warn!("{message}");
    Failure::new(Code::Tls, "tls", message).with_advice(advice)
}

/// Notes the negotiated TLS version and cipher, and the certificate.
fn tls_established(conn: &ClientConnection, host: &str, port: u16) {
    let version = tls_version_name(conn).unwrap_or("TLS");
    let suite = conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
    let subject = crate::tls::take_peer_subject().unwrap_or_else(|| "unknown".into());
    log::info!("{version} {suite} with {host}:{port}, certificate subject {subject}");
    transcript::note(|| format!("{version} {suite}, certificate subject {subject}"));
}

/// A failure before the session is ready for MAIL: CONNECT, or TLS when
/// the TLS layer failed.
fn connect_failure(stage: &'static str, when: &str, e: IoFail) -> Failure {
    let code = if matches!(e, IoFail::Tls(_)) { Code::Tls } else { Code::Connect };
    Failure::new(code, stage, format!("{when}: {e}"))
}

/// A failure from MAIL on: the session broke or stalled.
fn transient(stage: &'static str, when: &str, e: IoFail) -> Failure {
    Failure::new(Code::Transient, stage, format!("the session broke {when}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_codes_are_recognised() {
        assert_eq!(enhanced_code(550, "5.1.1 No such user").as_deref(), Some("5.1.1"));
        assert_eq!(enhanced_code(250, "2.0.0 Ok: queued").as_deref(), Some("2.0.0"));
        assert_eq!(enhanced_code(550, "4.1.1 mismatch"), None);
        assert_eq!(enhanced_code(250, "Ok"), None);
    }

    #[test]
    fn replies_are_parsed_from_bytes() {
        let (replies, error) = parse_replies(b"250-mail.example\r\n250-SIZE 100\r\n250 AUTH PLAIN\r\n550 5.1.1 gone\n");
        assert_eq!(error, None);
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[0].lines, vec!["mail.example", "SIZE 100", "AUTH PLAIN"]);
        assert_eq!(
            (replies[1].code, replies[1].enhanced.as_deref(), replies[1].text.as_str()),
            (550, Some("5.1.1"), "gone")
        );
        for bad in [
            &b"25\r\n"[..],
            b"abc ok\r\n",
            b"250xok\r\n",
            b"250-a\r\n251 b\r\n",
            b"000 ok\r\n",
            b"199 x\r\n",
            b"650 x\r\n",
        ] {
            assert!(parse_replies(bad).1.is_some(), "{bad:?}");
        }
        let long = [b"250 ".to_vec(), vec![b'a'; MAX_LINE + 1], b"\r\n".to_vec()].concat();
        assert!(parse_replies(&long).1.is_some());
        let many: Vec<u8> = (0..MAX_REPLY_LINES + 1).flat_map(|_| b"250-x\r\n".to_vec()).collect();
        assert_eq!(parse_replies(&many).1.as_deref(), Some("reply has too many lines"));
        // Multi-byte UTF-8 where the code should be: no panic on slicing.
        assert!(parse_replies("2é0 x\r\n".as_bytes()).1.is_some());
    }

    #[test]
    fn the_line_bound_holds_however_the_bytes_arrive() {
        // A line just over the bound, whole in one read or in pieces: refused
        // either way (it used to pass when its LF came with the last piece).
        let deadline = Instant::now() + Duration::from_secs(5);
        let long = [b"250 ".to_vec(), vec![b'a'; MAX_LINE - 3], b"\r\n".to_vec()].concat();
        let at_bound = [b"250 ".to_vec(), vec![b'a'; MAX_LINE - 4], b"\r\n".to_vec()].concat();
        for piece in [1, 7, 4096] {
            let mut pieces = long.chunks(piece).map(<[u8]>::to_vec).collect::<Vec<_>>().into_iter();
            let mut source = std::iter::from_fn(move || pieces.next());
            let mut reader = FnReader(&mut source);
            let (replies, why) = read_replies_from(&mut reader, deadline);
            assert!(replies.is_empty() && why.contains("longer than"), "{piece}: {why}");
            let mut pieces = at_bound.chunks(piece).map(<[u8]>::to_vec).collect::<Vec<_>>().into_iter();
            let mut source = std::iter::from_fn(move || pieces.next());
            let (replies, _) = read_replies_from(&mut FnReader(&mut source), deadline);
            assert_eq!(replies.len(), 1, "{piece}");
        }
        assert!(parse_replies(&long).1.is_some());
        assert_eq!(parse_replies(&at_bound).0.len(), 1);
    }

    /// A reader giving the pieces an iterator yields, then the end.
    struct FnReader<'a>(&'a mut dyn Iterator<Item = Vec<u8>>);

    impl Read for FnReader<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.next() {
                Some(piece) => {
                    let n = piece.len().min(buf.len());
                    buf[..n].copy_from_slice(&piece[..n]);
                    Ok(n)
                }
                None => Ok(0),
            }
        }
    }

    #[test]
    fn mechanisms_are_only_those_offered() {
        let offer = |list: &[&str]| list.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert_eq!(choose_mechanism(AuthModel::Basic, &offer(&["LOGIN", "PLAIN"])), Ok("PLAIN"));
        assert_eq!(choose_mechanism(AuthModel::Basic, &offer(&["LOGIN"])), Ok("LOGIN"));
        assert_eq!(choose_mechanism(AuthModel::OAuth2, &offer(&["OAUTHBEARER", "XOAUTH2"])), Ok("XOAUTH2"));
        assert_eq!(choose_mechanism(AuthModel::OAuth2, &offer(&["OAUTHBEARER"])), Ok("OAUTHBEARER"));
        let e = choose_mechanism(AuthModel::OAuth2, &offer(&["PLAIN", "LOGIN"])).unwrap_err();
        assert!(e.contains("AUTH PLAIN LOGIN") && e.contains("XOAUTH2 or OAUTHBEARER"), "{e}");
        let e = choose_mechanism(AuthModel::Basic, &[]).unwrap_err();
        assert!(e.contains("no AUTH mechanism"), "{e}");
        assert_eq!(gs2_saslname("a,b=c"), "a=2Cb=3Dc");
    }

    #[test]
    fn capabilities_are_parsed() {
        let reply = Reply {
            code: 250,
            enhanced: None,
            text: String::new(),
            lines: vec![
                "mail.example".into(),
                "PIPELINING".into(),
                "SIZE 1000".into(),
                "AUTH PLAIN login".into(),
                "STARTTLS".into(),
            ],
        };
        let caps = Capabilities::parse(&reply);
        assert!(caps.pipelining && caps.starttls && !caps.smtputf8);
        assert_eq!(caps.size, Some(1000));
        assert_eq!(caps.auth, vec!["PLAIN", "LOGIN"]);
    }
}
