//! A reply of an SMTP server, and the bounds and rules it is parsed by
//! (codes, enhanced codes, multi-line replies). A value the status, the
//! failure type and advice read; the dialogue that reads replies off a
//! connection is [`crate::smtp`].

/// The longest reply line accepted (RFC 5321 allows 512; servers send more
/// in EHLO lists, so allow a generous bound that still caps memory).
pub(crate) const MAX_LINE: usize = 8192;
/// The most lines in one reply.
pub(crate) const MAX_REPLY_LINES: usize = 256;

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
    pub(crate) fn is_class(&self, expected: u16) -> bool {
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
pub(crate) struct ReplyBuilder {
    pub(crate) lines: Vec<String>,
    pub(crate) code: u16,
}

impl ReplyBuilder {
    /// Takes one line; the reply once its last line came.
    pub(crate) fn push(&mut self, line: &[u8]) -> std::result::Result<Option<Reply>, String> {
        let text = String::from_utf8_lossy(line);
        let bytes = text.as_bytes();
        let malformed = || format!("malformed reply line \"{}\"", crate::text::printable(&text));
        // RFC 5321 §4.2: three digits, the first 2 to 5 (1yz is unused in
        // SMTP). A code outside is a protocol error, not a refusal.
        if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&bytes[0]) {
            return Err(malformed());
        }
        let this = bytes[..3].iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
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
        let strip = |l: &'_ str| -> String {
            match enhanced.as_deref().and_then(|e| l.strip_prefix(e)) {
                Some(rest) => rest.trim_start().to_string(),
                None => l.to_string(),
            }
        };
        let text = match lines.as_slice() {
            [one] => strip(one),
            many => many.iter().map(|l| strip(l)).collect::<Vec<_>>().join(" "),
        };
        Ok(Some(Reply { code, enhanced, text, lines }))
    }
}

/// The RFC 3463 enhanced code that starts `first_line` (`class.subject.detail`:
/// the class that of `code`, subject and detail 1 to 3 digits), if any.
fn enhanced_code(code: u16, first_line: &str) -> Option<String> {
    let word = first_line.split_ascii_whitespace().next()?;
    let mut parts = word.split('.');
    let class = parts.next()?;
    let number =
        |p: Option<&str>| p.is_some_and(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    let valid = class.len() == 1
        && class.as_bytes()[0] == b'0' + (code / 100) as u8
        && number(parts.next())
        && number(parts.next())
        && parts.next().is_none();
    valid.then(|| word.to_string())
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
        assert_eq!(enhanced_code(550, "5.1.1.1 four parts"), None);
        assert_eq!(enhanced_code(550, "5.1 two parts"), None);
        assert_eq!(enhanced_code(550, "5.1234.1 too long"), None);
        assert_eq!(enhanced_code(550, "5..1 empty"), None);
        assert_eq!(enhanced_code(550, "5.7.139").as_deref(), Some("5.7.139"));
    }

    #[test]
    fn a_reply_joins_its_lines_without_their_enhanced_codes() {
        let mut b = ReplyBuilder::default();
        assert_eq!(b.push(b"550-5.1.1 No such user").unwrap(), None);
        let reply = b.push(b"550 5.1.1 here").unwrap().expect("the last line");
        assert_eq!((reply.code, reply.enhanced.as_deref()), (550, Some("5.1.1")));
        assert_eq!(reply.text, "No such user here");
        assert_eq!(reply.lines, ["5.1.1 No such user", "5.1.1 here"]);
        let reply = ReplyBuilder::default().push(b"250 Ok").unwrap().expect("one line");
        assert_eq!((reply.code, reply.enhanced, reply.text.as_str()), (250, None, "Ok"));
        assert!(ReplyBuilder::default().push(b"199 no").is_err());
        assert!(ReplyBuilder::default().push(b"25").is_err());
    }
}
