//! An SMTP session: connect, greeting, EHLO (HELO fallback), STARTTLS,
//! the login, and the line I/O every command goes through.

use rustls::ClientConfig;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::capabilities::Capabilities;
use super::failure::{connect_failure, failure, local, Failure};
use super::io::{read_line_from, tls_flush, tls_handshake, tls_version_name, IoFail, IoResult, Socket, Stream};
use super::net::{connect, tls_established, tls_failure};
use super::sockets::{Registration, Sockets};
use super::{Login, Probe};
use crate::config::{Encryption, ProfileSettings};
use crate::error::Code;
use crate::failure::Cause;
use crate::reply::{Reply, ReplyBuilder};
use crate::transcript;

/// How long a greeting may take on the implicit-TLS port (465, or the port
/// SMTPProbePorts maps 465 to) when the profile does not use implicit TLS:
/// a server there waits for a TLS ClientHello and says nothing, so silence
/// this long means the encryption setting is wrong.
pub(super) const IMPLICIT_TLS_PORT_GREETING: Duration = Duration::from_secs(2);

/// An open SMTP session, ready for MAIL.
pub struct Session {
    pub(super) stream: Stream,
    /// Set while a transaction (MAIL to the final reply) is under way.
    pub(super) in_transaction: Arc<AtomicBool>,
    pub(super) _registration: Option<Registration>,
    pub(super) buf: Vec<u8>,
    pub(super) start: usize,
    pub banner: String,
    pub caps: Capabilities,
    pub(super) timeout: Duration,
    /// When the session last finished a transaction.
    pub idle_since: Instant,
    /// Transactions completed on this session.
    pub transactions: u64,
    /// The server answered DATA with 354 and waits for the message.
    pub(super) data_mode: bool,
    /// What DATA had to change in a message (doubled dots, line ends),
    /// kept for the next message.
    pub(super) data: Vec<u8>,
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
            settings.server.as_deref().ok_or_else(|| failure(Code::Config, "connect", "SMTPServer is not set"))?;
        let server_name =
            crate::tls::server_name(settings, host).map_err(|e| failure(Code::Config, "connect", e.message()))?;

        probe.stage = "connect";
        transcript::set_server(&format!("{host}:{}", settings.port));
        let tcp = connect(host, settings.port, deadline)?;
        let _ = tcp.set_nodelay(true);
        let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        log::debug!("connected to {host}:{} ({peer})", settings.port);
        transcript::note(|| format!("connected to {host}:{} ({peer})", settings.port));
        let in_transaction = Arc::new(AtomicBool::new(false));
        let registration = sockets
            .register(&tcp, &in_transaction)
            .ok_or_else(|| failure(Code::Connect, "connect", "the client is shutting down"))?;
        let stream = if settings.encryption == Encryption::Ssl {
            probe.stage = "tls";
            tls_handshake(tls.clone(), server_name.clone(), tcp, deadline).map_err(|e| {
                tls_failure(settings, &server_name, format!("TLS handshake with {host}:{} failed", settings.port), e)
            })?
        } else {
            Stream::Plain(Socket::new(tcp))
        };
        let session = Session::new(stream, timeout, in_transaction, Some(registration));
        if let Stream::Tls(conn, _) = &session.stream {
            probe.tls = tls_version_name(conn);
            tls_established(conn, host, settings.port);
        }
        session.start(settings, tls, server_name, login, probe, deadline)
    }

    /// A session over a connected `stream`, before its greeting.
    pub(super) fn new(
        stream: Stream,
        timeout: Duration,
        in_transaction: Arc<AtomicBool>,
        registration: Option<Registration>,
    ) -> Session {
        Session {
            stream,
            in_transaction,
            _registration: registration,
            buf: Vec::with_capacity(4096),
            start: 0,
            banner: String::new(),
            caps: Capabilities::default(),
            timeout,
            idle_since: Instant::now(),
            transactions: 0,
            data_mode: false,
            data: Vec::new(),
        }
    }

    /// Greeting, EHLO, STARTTLS and AUTH by `deadline`: the session ready
    /// for MAIL. A session the library gives up on ends with QUIT when it
    /// can still carry one (a refusal, not a broken stream), within what is
    /// left of the deadline.
    pub(super) fn start(
        mut self,
        settings: &ProfileSettings,
        tls: &Arc<ClientConfig>,
        server_name: rustls::pki_types::ServerName<'static>,
        login: Option<&Login>,
        probe: &mut Probe,
        deadline: Instant,
    ) -> Result<Session, Failure> {
        match self.handshake(settings, tls, server_name, login, probe, deadline) {
            Ok(()) => Ok(self),
            Err(f) => {
                if f.in_step() {
                    self.quit_by(deadline);
                }
                Err(f)
            }
        }
    }

    /// Greeting, EHLO, STARTTLS and AUTH, by `deadline`.
    pub(super) fn handshake(
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
                failure(
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
                f.cause = Some(Cause::PlainOnTlsPort);
            }
            transcript::note(|| f.message.clone());
            f
        })?;
        self.banner = greeting.text.clone();
        probe.banner = Some(greeting.text.clone());
        if greeting.code != 220 {
            return Err(failure(
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

    pub(super) fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(..))
    }

    /// The negotiated TLS version, if the session is encrypted.
    pub fn tls_version(&self) -> Option<&'static str> {
        match &self.stream {
            Stream::Tls(conn, _) => tls_version_name(conn),
            _ => None,
        }
    }

    pub(super) fn hello(&mut self, name: &str, deadline: Instant) -> Result<(), Failure> {
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
            return Err(failure(
                Code::Connect,
                "ehlo",
                format!("the server refused EHLO and HELO: {}", helo.summary()),
            )
            .with_reply(helo));
        }
        Err(failure(Code::Connect, "ehlo", format!("the server refused EHLO: {}", reply.summary())).with_reply(reply))
    }

    pub(super) fn starttls(
        &mut self,
        settings: &ProfileSettings,
        config: Arc<ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let fail = |e: IoFail| failure(Code::Tls, "tls", format!("STARTTLS failed: {e}"));
        if !self.caps.starttls {
            return Err(local(
                Code::Tls,
                "tls",
                "the server does not offer STARTTLS, and SMTPServerEncryption=TLS requires it (no fallback to plaintext)",
            )
            .with_cause(Some(Cause::Key("starttls_unavailable"))));
        }
        self.write(b"STARTTLS\r\n", deadline).map_err(fail)?;
        let reply = self.read_reply(deadline).map_err(fail)?;
        if reply.code != 220 {
            return Err(failure(Code::Tls, "tls", format!("the server refused STARTTLS: {}", reply.summary()))
                .with_reply(reply));
        }
        if self.start < self.buf.len() {
            return Err(failure(
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
        let tcp = self.stream.plain_tcp().map_err(fail)?;
        self.stream = tls_handshake(config, name.clone(), tcp, deadline)
            .map_err(|e| tls_failure(settings, &name, "TLS handshake failed".to_string(), e))?;
        // RFC 3207 §4.2: forget what was learned before TLS.
        self.caps = Capabilities::default();
        Ok(())
    }

    /// Whether the session looks usable for another transaction: the
    /// server has not closed it or sent anything (a `421` before closing)
    /// while it was idle. Costs no round trip.
    pub fn looks_alive(&self) -> bool {
        if self.start < self.buf.len() {
            return false;
        }
        self.stream.is_quiet()
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
    pub(super) fn quit_by(mut self, deadline: Instant) {
        if self.write(b"QUIT\r\n", deadline).is_ok() {
            let _ = self.read_reply(deadline);
        }
        if let Stream::Tls(conn, socket) = &mut self.stream {
            conn.send_close_notify();
            let _ = tls_flush(conn, socket, deadline);
        }
        self.stream.shutdown();
    }

    /// Writes protocol lines, recording each in the transcript.
    pub(super) fn write(&mut self, bytes: &[u8], deadline: Instant) -> IoResult<()> {
        if transcript::recording() {
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                transcript::client(&String::from_utf8_lossy(line));
            }
        }
        self.stream.write_all(bytes, deadline)
    }

    /// Writes a line that carries a secret; the transcript shows `shown`.
    pub(super) fn write_secret(&mut self, bytes: &[u8], shown: &str, deadline: Instant) -> IoResult<()> {
        transcript::client(shown);
        self.stream.write_all(bytes, deadline)
    }

    /// Reads one complete reply, single or multi-line, by `deadline`.
    pub(super) fn read_reply(&mut self, deadline: Instant) -> IoResult<Reply> {
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
    pub(super) fn read_line(&mut self, deadline: Instant) -> IoResult<Vec<u8>> {
        let stream = &mut self.stream;
        read_line_from(&mut self.buf, &mut self.start, |chunk| stream.read(chunk, deadline))
    }
}
