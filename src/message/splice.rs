//! The message's bodies written straight into its final bytes: lettre
//! formats the headers and the MIME tree around placeholders, then each
//! body is encoded once, into one buffer sized beforehand, in place of its
//! placeholder. Under DKIM lettre must hold the bodies (it hashes the
//! message it formats), so they are encoded into its parts instead: the
//! bytes signed are the bytes sent either way.

use lettre::message::header::ContentTransferEncoding;
use lettre::message::Body;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::encode::{self, Base64Lines};
use crate::error::{Error, Result};

/// Attachments from this size on are encoded into the final bytes (a
/// smaller one is encoded by lettre: its copy costs little).
pub(super) const SPLICE_MIN_BYTES: usize = 64 * 1024;

/// What goes in place of a placeholder.
enum Content<'a> {
    Text(Cow<'a, str>, ContentTransferEncoding),
    Base64(Vec<u8>),
}

/// The bodies of one message, waiting for lettre's formatted bytes.
pub(super) struct Splices<'a> {
    /// The placeholders' common start; `None` under DKIM.
    prefix: Option<String>,
    parts: Vec<(Vec<u8>, Content<'a>)>,
}

impl<'a> Splices<'a> {
    /// Bodies spliced in after formatting, or (`signed`: DKIM) encoded
    /// into lettre's parts.
    pub(super) fn new(signed: bool) -> Result<Self> {
        let prefix = if signed { None } else { Some(placeholder_prefix()?) };
        Ok(Splices { prefix, parts: Vec::new() })
    }

    /// A placeholder no message text can contain by chance (see
    /// [`placeholder_prefix`]), and none a prefix of another.
    fn placeholder(&mut self, content: Content<'a>, encoding: ContentTransferEncoding) -> Option<Body> {
        let prefix = self.prefix.as_ref()?;
        let token = format!("{prefix}-{:08}-", self.parts.len()).into_bytes();
        self.parts.push((token.clone(), content));
        Some(Body::dangerous_pre_encoded(token, encoding))
    }

    /// A text body (html or plain), its encoding chosen as lettre would.
    pub(super) fn text(&mut self, text: Cow<'a, str>) -> Body {
        let encoding = encode::choose(&text);
        if self.prefix.is_none() {
            return encoded_text(&text, encoding);
        }
        self.placeholder(Content::Text(text, encoding), encoding).expect("a placeholder without DKIM")
    }

    /// An attachment's body: base64, spliced when large (message/* parts
    /// may not be base64, RFC 2046 §5.2.1, and go through [`part_body`]).
    pub(super) fn attachment(&mut self, bytes: Vec<u8>, is_message: bool) -> Body {
        if is_message || bytes.len() < SPLICE_MIN_BYTES || self.prefix.is_none() {
            return part_body(bytes, is_message);
        }
        self.placeholder(Content::Base64(bytes), ContentTransferEncoding::Base64).expect("a placeholder without DKIM")
    }

    /// The formatted message with each placeholder replaced by its body.
    pub(super) fn into_bytes(self, formatted: Vec<u8>) -> Result<Vec<u8>> {
        if self.parts.is_empty() {
            return Ok(formatted);
        }
        let mut at = Vec::with_capacity(self.parts.len());
        let mut total = formatted.len();
        for (token, content) in self.parts {
            let found =
                find_token(&formatted, &token).ok_or_else(|| Error::internal("a part placeholder went missing"))?;
            total += match &content {
                Content::Text(text, encoding) => encode::estimated_len(text, *encoding),
                Content::Base64(raw) => base64_len(raw.len()),
            };
            at.push((found, token.len(), content));
        }
        at.sort_by_key(|(found, ..)| *found);
        let mut out = Vec::with_capacity(total);
        let mut done = 0;
        for (found, len, content) in at {
            out.extend_from_slice(&formatted[done..found]);
            match content {
                Content::Text(text, encoding) => encode::encode_text(&text, encoding, &mut out),
                Content::Base64(raw) => {
                    let mut b64 = Base64Lines::new(&mut out);
                    b64.push(&raw);
                    drop(raw); // the encoded copy and the raw one are not held together past here
                    b64.finish();
                }
            }
            done = found + len;
        }
        out.extend_from_slice(&formatted[done..]);
        Ok(out)
    }
}

/// Where `token` first occurs in `haystack`: the candidates its first byte
/// finds, compared in full. The headers a placeholder sits in are short,
/// so this beats building a substring searcher for every message.
fn find_token(haystack: &[u8], token: &[u8]) -> Option<usize> {
    let (&first, _) = token.split_first()?;
    memchr::memchr_iter(first, haystack).find(|&i| haystack[i..].starts_with(token))
}

/// The start of every placeholder: 128 random bits, drawn once per
/// process (the host never sees them), and a count, so that no message
/// costs a call for random numbers.
fn placeholder_prefix() -> Result<String> {
    static RANDOM: OnceLock<String> = OnceLock::new();
    static MESSAGES: AtomicU64 = AtomicU64::new(0);
    let random = match RANDOM.get() {
        Some(r) => r,
        None => {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no random numbers from the OS: {e}")))?;
            RANDOM.get_or_init(|| bytes.iter().map(|b| format!("{b:02x}")).collect())
        }
    };
    Ok(format!("SMTPBRIDGEPART{random}-{:016x}", MESSAGES.fetch_add(1, Ordering::Relaxed)))
}

/// The length of base64 in 76-character lines joined by CRLF.
fn base64_len(n: usize) -> usize {
    let chars = n.div_ceil(3) * 4;
    chars + chars.div_ceil(encode::LINE).saturating_sub(1) * 2
}

/// A text body encoded now, for lettre to hold.
fn encoded_text(text: &str, encoding: ContentTransferEncoding) -> Body {
    let mut out = Vec::with_capacity(encode::estimated_len(text, encoding));
    encode::encode_text(text, encoding, &mut out);
    Body::dangerous_pre_encoded(out, encoding)
}

/// The body of an attachment or inline part. A file's bytes are base64,
/// always: lettre would send bytes that happen to be ASCII as 7bit with
/// their line ends as they are, so the file would not arrive as it was
/// (the DATA writer makes every line end CRLF) and Graph would be given
/// bare line ends. A message/* part may not be base64 (RFC 2046 §5.2.1):
/// as text its line ends become CRLF, as the text bodies' do; bytes that
/// are not UTF-8 lettre sends as base64.
pub(super) fn part_body(bytes: Vec<u8>, is_message: bool) -> Body {
    if !is_message {
        return Body::new_with_encoding(bytes, ContentTransferEncoding::Base64).unwrap_or_else(Body::new);
    }
    match String::from_utf8(bytes) {
        Ok(text) => encoded_text(&text, encode::choose(&text)),
        Err(e) => Body::new(e.into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::find_token;

    #[test]
    fn a_token_is_found_where_it_first_starts_whatever_precedes_it() {
        let token = b"SMTPBRIDGEPARTab-00000000-";
        let mut haystack = b"Subject: SMTPBRIDGEPARTab-0000000 SSS\r\n\r\n".to_vec();
        let at = haystack.len();
        haystack.extend_from_slice(token);
        haystack.extend_from_slice(b"\r\nSMTPBRIDGEPARTab-00000000-");
        assert_eq!(find_token(&haystack, token), Some(at));
        assert_eq!(find_token(b"Subject: SMTPBRIDGEPARTab-0000000", token), None);
        assert_eq!(find_token(b"", token), None);
    }
}
