//! The byte stream under the protocol (TCP, or TLS over it), every read
//! and write bounded by a deadline, and the bounded line reader.

use rustls::{ClientConfig, ClientConnection};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::reply::MAX_LINE;

/// A failure of the transport below the protocol.
#[derive(Debug)]
pub(super) enum IoFail {
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

pub(super) type IoResult<T> = std::result::Result<T, IoFail>;

pub(super) fn remaining(deadline: Instant) -> IoResult<Duration> {
    let now = Instant::now();
    if now >= deadline {
        Err(IoFail::Timeout)
    } else {
        // A zero timeout means "block for ever" to the socket API.
        Ok((deadline - now).max(Duration::from_millis(1)))
    }
}

pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

pub(super) fn io_fail(e: io::Error) -> IoFail {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => IoFail::Timeout,
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => IoFail::Closed,
        _ => IoFail::Io(e),
    }
}

/// How far the timeout already set on a socket may be from the time left
/// before a deadline and still serve as it is: 1/32 of the time left. A
/// longer one lets a read or write end up to that much after the deadline
/// (under 1 s of a 30 s SMTPConnectionTimeout); a shorter one times out
/// early, and the loop around the call sets what is left anew. The time
/// left before each command is nearly the same (the deadline is now plus
/// SMTPConnectionTimeout, DATA's a fraction of a second more for the
/// body), so one `setsockopt` a connection serves a whole series of
/// messages, where setting it before every read and write cost a system
/// call each.
const TIMEOUT_SLACK_DIVISOR: u32 = 32;

/// A TCP connection and the read and write timeouts last set on it.
pub(super) struct Socket {
    tcp: TcpStream,
    read: Option<Duration>,
    write: Option<Duration>,
}

impl Socket {
    pub(super) fn new(tcp: TcpStream) -> Socket {
        Socket { tcp, read: None, write: None }
    }

    /// Bounds the next read by `deadline` (see [`TIMEOUT_SLACK_DIVISOR`]).
    fn read_by(&mut self, deadline: Instant) -> IoResult<()> {
        let tcp = &self.tcp;
        bound(&mut self.read, deadline, |t| tcp.set_read_timeout(Some(t)))
    }

    /// Bounds the next write by `deadline` (see [`TIMEOUT_SLACK_DIVISOR`]).
    fn write_by(&mut self, deadline: Instant) -> IoResult<()> {
        let tcp = &self.tcp;
        bound(&mut self.write, deadline, |t| tcp.set_write_timeout(Some(t)))
    }
}

/// Sets a timeout (`set`) for the time left before `deadline`, unless the
/// one last set (`current`) is within the slack of it.
fn bound(
    current: &mut Option<Duration>,
    deadline: Instant,
    set: impl FnOnce(Duration) -> io::Result<()>,
) -> IoResult<()> {
    let left = remaining(deadline)?;
    if current.is_some_and(|c| c.abs_diff(left) <= left / TIMEOUT_SLACK_DIVISOR) {
        return Ok(());
    }
    // Unknown until set again if setting fails.
    *current = None;
    set(left).map_err(IoFail::Io)?;
    *current = Some(left);
    Ok(())
}

/// The byte stream under the protocol: plain TCP, or TLS over it. TLS is
/// driven by hand (no `rustls::StreamOwned`) so that every socket read and
/// write gets only the time left before the deadline.
pub(super) enum Stream {
    Plain(Socket),
    Tls(Box<ClientConnection>, Socket),
    /// A scripted server in memory: the dialogue's unit tests.
    #[cfg(test)]
    Memory(super::mock::MockStream),
}

/// Whether a read of `tcp` would block now: nothing received, not
/// closed. One `recv(MSG_PEEK | MSG_DONTWAIT)` on Unix, so a pooled
/// session's check before each message costs a single system call (the
/// standard library needs three: non-blocking on, peek, off).
#[cfg(unix)]
#[allow(unsafe_code)]
fn peek_would_block(tcp: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut probe = [0u8; 1];
    loop {
        // SAFETY: the descriptor is the open socket `tcp` owns for the
        // whole call, and `probe` is a writable buffer of the length passed.
        let n = unsafe {
            libc::recv(tcp.as_raw_fd(), probe.as_mut_ptr().cast(), probe.len(), libc::MSG_PEEK | libc::MSG_DONTWAIT)
        };
        if n >= 0 {
            return false; // data waiting, or closed (0)
        }
        match io::Error::last_os_error().kind() {
            io::ErrorKind::Interrupted => continue,
            kind => return kind == io::ErrorKind::WouldBlock,
        }
    }
}

/// Whether a read of `tcp` would block now: nothing received, not
/// closed. Windows has no per-call non-blocking flag: the socket is made
/// non-blocking for the peek.
#[cfg(not(unix))]
fn peek_would_block(tcp: &TcpStream) -> bool {
    if tcp.set_nonblocking(true).is_err() {
        return false;
    }
    let mut probe = [0u8; 1];
    let quiet = matches!(tcp.peek(&mut probe), Err(ref e) if e.kind() == io::ErrorKind::WouldBlock);
    tcp.set_nonblocking(false).is_ok() && quiet
}

impl Stream {
    /// Ends the connection at once (no QUIT), both ways.
    pub(super) fn shutdown(&self) {
        match self {
            Stream::Plain(socket) | Stream::Tls(_, socket) => {
                let _ = socket.tcp.shutdown(Shutdown::Both);
            }
            #[cfg(test)]
            Stream::Memory(mock) => mock.shutdown(),
        }
    }

    /// Whether the server has neither closed the connection nor sent
    /// anything: a check without a round trip.
    pub(super) fn is_quiet(&self) -> bool {
        match self {
            Stream::Plain(Socket { tcp, .. }) | Stream::Tls(_, Socket { tcp, .. }) => peek_would_block(tcp),
            #[cfg(test)]
            Stream::Memory(mock) => mock.is_quiet(),
        }
    }

    /// The plain TCP connection, for STARTTLS to put TLS over.
    pub(super) fn plain_tcp(&self) -> IoResult<TcpStream> {
        match self {
            Stream::Plain(socket) => socket.tcp.try_clone().map_err(IoFail::Io),
            Stream::Tls(..) => Err(IoFail::Protocol("the session is already encrypted".into())),
            #[cfg(test)]
            Stream::Memory(_) => Err(IoFail::Protocol("an in-memory stream carries no TLS".into())),
        }
    }

    pub(super) fn read(&mut self, buf: &mut [u8], deadline: Instant) -> IoResult<usize> {
        loop {
            match self {
                Stream::Plain(socket) => {
                    socket.read_by(deadline)?;
                    match socket.tcp.read(buf) {
                        Ok(0) => return Err(IoFail::Closed),
                        Ok(n) => return Ok(n),
                        Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(io_fail(e)),
                    }
                }
                Stream::Tls(conn, socket) => {
                    match conn.reader().read(buf) {
                        Ok(0) => return Err(IoFail::Closed),
                        Ok(n) => return Ok(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(io_fail(e)),
                    }
                    tls_read_once(conn, socket, deadline)?;
                }
                #[cfg(test)]
                Stream::Memory(mock) => return mock.read(buf),
            }
        }
    }

    pub(super) fn write_all(&mut self, bytes: &[u8], deadline: Instant) -> IoResult<()> {
        match self {
            Stream::Plain(socket) => write_all_tcp(socket, bytes, deadline),
            Stream::Tls(conn, socket) => {
                // rustls takes only as much plaintext as fits its buffer of
                // unsent records: hand it a piece, send that, repeat.
                let mut rest = bytes;
                while !rest.is_empty() {
                    let taken = conn.writer().write(rest).map_err(IoFail::Io)?;
                    rest = &rest[taken..];
                    tls_flush(conn, socket, deadline)?;
                }
                Ok(())
            }
            #[cfg(test)]
            Stream::Memory(mock) => mock.write(bytes),
        }
    }
}

pub(super) fn write_all_tcp(socket: &mut Socket, mut bytes: &[u8], deadline: Instant) -> IoResult<()> {
    while !bytes.is_empty() {
        socket.write_by(deadline)?;
        match socket.tcp.write(bytes) {
            Ok(0) => return Err(IoFail::Closed),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_fail(e)),
        }
    }
    Ok(())
}

pub(super) fn tls_flush(conn: &mut ClientConnection, socket: &mut Socket, deadline: Instant) -> IoResult<()> {
    while conn.wants_write() {
        socket.write_by(deadline)?;
        match conn.write_tls(&mut socket.tcp) {
            Ok(_) => {}
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_fail(e)),
        }
    }
    Ok(())
}

/// Reads one batch of TLS records from the socket and processes them.
pub(super) fn tls_read_once(conn: &mut ClientConnection, socket: &mut Socket, deadline: Instant) -> IoResult<()> {
    loop {
        socket.read_by(deadline)?;
        match conn.read_tls(&mut socket.tcp) {
            Ok(0) => return Err(IoFail::Closed),
            Ok(_) => break,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_fail(e)),
        }
    }
    if let Err(e) = conn.process_new_packets() {
        // Tell the server why, if it still listens.
        let _ = tls_flush(conn, socket, deadline);
        return Err(IoFail::Tls(e));
    }
    Ok(())
}

pub(super) fn tls_handshake(
    config: Arc<ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
    tcp: TcpStream,
    deadline: Instant,
) -> IoResult<Stream> {
    let mut socket = Socket::new(tcp);
    // A subject noted by an earlier handshake on this thread is not this one's.
    let _ = crate::tls::take_peer_subject();
    let mut conn = ClientConnection::new(config, name).map_err(IoFail::Tls)?;
    while conn.is_handshaking() {
        if conn.wants_write() {
            tls_flush(&mut conn, &mut socket, deadline)?;
        } else {
            tls_read_once(&mut conn, &mut socket, deadline)?;
        }
    }
    tls_flush(&mut conn, &mut socket, deadline)?;
    Ok(Stream::Tls(Box::new(conn), socket))
}

/// One line without its line end, from `buf[*start..]` and what `read`
/// gives (each call at most a chunk, `Err` for a timeout or a close).
/// CRLF ends a line; a bare LF is taken too, as most clients do. A line
/// over [`MAX_LINE`] bytes is a protocol error.
pub(super) fn read_line_from(
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

pub(super) fn tls_version_name(conn: &ClientConnection) -> Option<&'static str> {
    match conn.protocol_version()? {
        rustls::ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
        rustls::ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
        _ => Some("TLS"),
    }
}
