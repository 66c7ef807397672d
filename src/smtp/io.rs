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

/// The byte stream under the protocol: plain TCP, or TLS over it. TLS is
/// driven by hand (no `rustls::StreamOwned`) so that every socket read and
/// write gets only the time left before the deadline.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<ClientConnection>, TcpStream),
    /// A scripted server in memory: the dialogue's unit tests.
    #[cfg(test)]
    Memory(super::mock::MockStream),
}

impl Stream {
    /// Ends the connection at once (no QUIT), both ways.
    pub(super) fn shutdown(&self) {
        match self {
            Stream::Plain(tcp) | Stream::Tls(_, tcp) => {
                let _ = tcp.shutdown(Shutdown::Both);
            }
            #[cfg(test)]
            Stream::Memory(mock) => mock.shutdown(),
        }
    }

    /// Whether the server has neither closed the connection nor sent
    /// anything: a check without a round trip.
    pub(super) fn is_quiet(&self) -> bool {
        match self {
            Stream::Plain(tcp) | Stream::Tls(_, tcp) => {
                if tcp.set_nonblocking(true).is_err() {
                    return false;
                }
                let mut probe = [0u8; 1];
                let quiet = matches!(tcp.peek(&mut probe), Err(ref e) if e.kind() == io::ErrorKind::WouldBlock);
                tcp.set_nonblocking(false).is_ok() && quiet
            }
            #[cfg(test)]
            Stream::Memory(mock) => mock.is_quiet(),
        }
    }

    /// The plain TCP connection, for STARTTLS to put TLS over.
    pub(super) fn plain_tcp(&self) -> IoResult<TcpStream> {
        match self {
            Stream::Plain(tcp) => tcp.try_clone().map_err(IoFail::Io),
            Stream::Tls(..) => Err(IoFail::Protocol("the session is already encrypted".into())),
            #[cfg(test)]
            Stream::Memory(_) => Err(IoFail::Protocol("an in-memory stream carries no TLS".into())),
        }
    }

    pub(super) fn read(&mut self, buf: &mut [u8], deadline: Instant) -> IoResult<usize> {
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
                #[cfg(test)]
                Stream::Memory(mock) => return mock.read(buf),
            }
        }
    }

    pub(super) fn write_all(&mut self, bytes: &[u8], deadline: Instant) -> IoResult<()> {
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
            #[cfg(test)]
            Stream::Memory(mock) => mock.write(bytes),
        }
    }
}

pub(super) fn write_all_tcp(tcp: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> IoResult<()> {
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

pub(super) fn tls_flush(conn: &mut ClientConnection, tcp: &mut TcpStream, deadline: Instant) -> IoResult<()> {
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
pub(super) fn tls_read_once(conn: &mut ClientConnection, tcp: &mut TcpStream, deadline: Instant) -> IoResult<()> {
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

pub(super) fn tls_handshake(
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
