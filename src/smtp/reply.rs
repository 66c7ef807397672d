//! Server replies: parsing lines into replies (codes, enhanced codes,
//! multi-line replies) within bounds.

use std::io::{self, Read};
use std::time::Instant;

use super::capabilities::Capabilities;
use super::io::{io_fail, is_timeout, read_line_from, remaining, IoFail};

/// The longest reply line accepted (RFC 5321 allows 512; servers send more
/// in EHLO lists, so allow a generous bound that still caps memory).
pub(super) const MAX_LINE: usize = 8192;
/// The most lines in one reply.
pub(super) const MAX_REPLY_LINES: usize = 256;

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
    pub(super) fn is_class(&self, expected: u16) -> bool {
        self.code / 100 == expected
    }
    /// Microsoft's "SMTP AUTH is off" replies: 535 5.7.139, 550 5.7.30, or
    /// "SmtpClientAuthentication is disabled" in the text. Answered to a
    /// token, no refresh or new sign-in can help.
    pub fn smtp_auth_disabled(&self) -> bool {
        let e = self.enhanced.as_deref().unwrap_or("");
        e == "5.7.139"
            || (self.code == 550 && e == "5.7.30")
            || self.text.to_ascii_lowercase().contains("smtpclientauthentication is disabled")
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

/// Assembles a reply from its lines (without line ends), as they come.
#[derive(Default)]
pub(super) struct ReplyBuilder {
    pub(super) lines: Vec<String>,
    pub(super) code: u16,
}

impl ReplyBuilder {
    /// Takes one line; the reply once its last line came.
    pub(super) fn push(&mut self, line: &[u8]) -> std::result::Result<Option<Reply>, String> {
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

pub(super) fn enhanced_code(code: u16, first_line: &str) -> Option<String> {
    let word = first_line.split_ascii_whitespace().next()?;
    let parts: Vec<&str> = word.split('.').collect();
    let valid = parts.len() == 3
        && parts[0].len() == 1
        && parts[0].as_bytes()[0] == b'0' + (code / 100) as u8
        && parts[1..].iter().all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    valid.then(|| word.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
