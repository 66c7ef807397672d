//! The bounds of a message the library builds: its recipients, the bytes
//! its parts may take before they are read, and the length of its header
//! lines on the wire.

use lettre::message::header::{HeaderName, HeaderValue, Headers};
use lettre::message::{Mailbox, Mailboxes};

use crate::error::{Error, Result};

/// The most recipients (to, cc and bcc together) one message may have.
/// Building a message is linear in its recipients; this keeps one call's
/// time and memory in proportion to what a host can mean to send.
pub(crate) const MAX_RECIPIENTS: usize = 100_000;

/// The longest header line RFC 5322 §2.1.1 allows, without its CRLF.
pub(crate) const MAX_LINE_OCTETS: usize = 998;

/// `SMTPB_ERR_MESSAGE` naming the field where the recipients of `lists`
/// (field name, count) pass [`MAX_RECIPIENTS`].
pub fn check_recipient_count(lists: &[(&str, usize)]) -> Result<()> {
    let mut total = 0usize;
    for (field, count) in lists {
        total = total.saturating_add(*count);
        if total > MAX_RECIPIENTS {
            return Err(Error::message_error(format!(
                "{field}: the message has {} recipients in {}; at most {MAX_RECIPIENTS} are allowed per message",
                lists.iter().map(|(_, n)| n).sum::<usize>(),
                lists.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(())
}

/// How many bytes of MIME a message may still take, for reading its parts:
/// SMTPMaxMessageBytes of the profile that can send it, less the parts
/// read so far. A file that cannot fit is refused by its size, unread.
#[derive(Clone, Debug)]
pub struct PartBudget {
    /// SMTPMaxMessageBytes.
    pub limit: u64,
    /// What the parts read so far leave of it.
    pub left: u64,
    /// The profile the limit is from, for messages.
    pub profile: String,
}

impl PartBudget {
    pub fn new(limit: u64, profile: impl Into<String>) -> PartBudget {
        PartBudget { limit, left: limit, profile: profile.into() }
    }

    /// Whether a part of `raw_len` bytes can fit what is left; if not,
    /// `SMTPB_ERR_MESSAGE` naming `field` and `what` (the file).
    pub fn fits(&self, field: &str, what: &str, raw_len: u64, is_message: bool) -> Result<()> {
        let needs = wire_len(raw_len, is_message);
        if needs <= self.left {
            return Ok(());
        }
        let others = self.limit - self.left;
        let beside = if others > 0 { format!(" beside {others} bytes of the parts before it") } else { String::new() };
        Err(Error::message_error(format!(
            "{field}: {what} is {raw_len} bytes, at least {needs} bytes of MIME{beside}; \
             SMTPMaxMessageBytes of profile {} allows {}",
            self.profile, self.limit
        )))
    }

    /// Takes what a part of `raw_len` bytes needs at the least (see
    /// [`PartBudget::fits`]).
    pub fn take(&mut self, field: &str, what: &str, raw_len: u64, is_message: bool) -> Result<()> {
        self.fits(field, what, raw_len, is_message)?;
        self.left -= wire_len(raw_len, is_message);
        Ok(())
    }
}

/// The least a part of `raw_len` bytes takes in the message: base64 in
/// 76-character lines, or (a message/* part, sent as text) its length.
pub fn wire_len(raw_len: u64, is_message: bool) -> u64 {
    if is_message {
        return raw_len;
    }
    let chars = raw_len.div_ceil(3).saturating_mul(4);
    chars.saturating_add(chars.div_ceil(76).saturating_sub(1).saturating_mul(2))
}

/// The first line of the header section of `message` (up to its first
/// blank line) longer than [`MAX_LINE_OCTETS`]: the name of the header it
/// belongs to and the line's length without its line end.
pub fn long_header_line(message: &[u8]) -> Option<(String, usize)> {
    let mut name: &[u8] = b"";
    let mut start = 0;
    while start < message.len() {
        let end = memchr::memchr(b'\n', &message[start..]).map_or(message.len(), |i| start + i);
        let mut line = &message[start..end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if line.is_empty() {
            return None;
        }
        if !matches!(line[0], b' ' | b'\t') {
            name = line.split(|b| *b == b':').next().unwrap_or(line);
        }
        if line.len() > MAX_LINE_OCTETS {
            let shown = String::from_utf8_lossy(&name[..name.len().min(80)]).into_owned();
            return Some((shown, line.len()));
        }
        start = end + 1;
    }
    None
}

/// A To or Cc header of `mailboxes`, folded between them. lettre folds
/// only inside a display name: its header of many bare addresses would be
/// one line past 998 octets. Each mailbox is encoded by lettre, alone.
pub fn address_header(name: &'static str, mailboxes: &[Mailbox]) -> HeaderValue {
    // RFC 5322 §2.1.1: lines of 78 characters where they can be.
    const FOLD_AT: usize = 78;
    let prefix = format!("{name}: ");
    let mut encoded = String::new();
    let mut line_len = prefix.len();
    for (i, mailbox) in mailboxes.iter().enumerate() {
        let mut alone = Headers::new();
        alone.set(lettre::message::header::To::from(Mailboxes::from(mailbox.clone())));
        let text = alone.to_string();
        let one = text.strip_prefix("To: ").and_then(|t| t.strip_suffix("\r\n")).unwrap_or(&text);
        if i > 0 {
            let first_line = one.find("\r\n").unwrap_or(one.len());
            if line_len + 2 + first_line > FOLD_AT {
                encoded.push_str(",\r\n ");
                line_len = 1;
            } else {
                encoded.push_str(", ");
                line_len += 2;
            }
        }
        encoded.push_str(one);
        line_len = match one.rfind("\r\n") {
            Some(at) => one.len() - at - 2,
            None => line_len + one.len(),
        };
    }
    let raw = Mailboxes::from(mailboxes.to_vec()).to_string();
    HeaderValue::dangerous_new_pre_encoded(HeaderName::new_from_ascii_str(name), raw, encoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_len_is_lettres_base64() {
        use base64::Engine;
        for n in [0usize, 1, 2, 3, 56, 57, 58, 114, 1000, 4096] {
            let data = vec![7u8; n];
            let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
            let lines: Vec<&str> = encoded.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect();
            assert_eq!(wire_len(n as u64, false), lines.join("\r\n").len() as u64, "{n}");
        }
        assert_eq!(wire_len(u64::MAX, false), u64::MAX);
    }

    #[test]
    fn long_lines_are_found_in_the_header_section_only() {
        let long = "x".repeat(999);
        let ok = format!("Subject: a\r\n b\r\nX-A: {}\r\n\r\n{long}\r\n", "y".repeat(993));
        assert_eq!(long_header_line(ok.as_bytes()), None);
        let folded = format!("Subject: a\r\n {long}\r\nTo: b\r\n\r\nbody");
        assert_eq!(long_header_line(folded.as_bytes()), Some(("Subject".to_string(), 1000)));
        let lf = format!("X-Long: {long}\n\nbody");
        assert_eq!(long_header_line(lf.as_bytes()), Some(("X-Long".to_string(), 1007)));
    }

    #[test]
    fn the_recipient_bound_names_the_field_that_passes_it() {
        assert!(check_recipient_count(&[("to", MAX_RECIPIENTS), ("cc", 0), ("bcc", 0)]).is_ok());
        let e = check_recipient_count(&[("to", 10), ("cc", MAX_RECIPIENTS - 10), ("bcc", 1)]).unwrap_err();
        assert!(e.message().starts_with("bcc: the message has 100001 recipients"), "{}", e.message());
    }
}
