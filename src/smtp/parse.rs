//! Replies read off a byte stream as a session reads them: entry points
//! for tests and fuzzing.

use std::io::{self, Read};
use std::time::Instant;

use super::capabilities::Capabilities;
use super::io::{io_fail, is_timeout, read_line_from, remaining, IoFail};
#[cfg(test)]
use crate::reply::MAX_REPLY_LINES;
use crate::reply::{Reply, ReplyBuilder, MAX_LINE};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
