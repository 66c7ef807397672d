//! A message the host gives as MIME (`mime_base64`): its headers read
//! for the envelope, reserved headers dropped.

use super::*;
use crate::address::AddressSpec;
use crate::error::{Error, Result};
use crate::message_bounds;
use crate::text::printable;

/// The addresses of a raw message's own headers.
#[derive(Default)]
pub(super) struct RawHeaders {
    pub(super) from: Vec<AddressSpec>,
    pub(super) to: Vec<AddressSpec>,
    pub(super) cc: Vec<AddressSpec>,
    pub(super) bcc: Vec<AddressSpec>,
}

impl RawMime {
    /// Checks a host's message and takes its addresses; the bytes are kept
    /// without their Bcc headers.
    pub(super) fn read(bytes: Vec<u8>) -> Result<(RawMime, RawHeaders)> {
        let end = header_end(&bytes).ok_or_else(|| {
            Error::message_error("mime_base64: no header section (a blank line must end the headers)")
        })?;
        if let Some((name, len)) = message_bounds::long_header_line(&bytes[..end]) {
            return Err(Error::message_error(format!(
                "mime_base64: the {} header has a line of {len} octets; at most {} are allowed (RFC 5322)",
                printable(&name),
                message_bounds::MAX_LINE_OCTETS
            )));
        }
        let parsed = mail_parser::MessageParser::default()
            .parse_headers(&bytes[..end])
            .ok_or_else(|| Error::message_error("mime_base64: the message's headers do not parse"))?;
        let list = |address: Option<&mail_parser::Address>| -> Vec<AddressSpec> {
            address
                .map(|a| {
                    a.iter()
                        .filter_map(|m| {
                            let email = m.address.as_deref()?.to_string();
                            Some(AddressSpec { email, name: m.name.as_deref().map(str::to_string) })
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let headers = RawHeaders {
            from: list(parsed.from()),
            to: list(parsed.to()),
            cc: list(parsed.cc()),
            bcc: list(parsed.bcc()),
        };
        let message_id = parsed.message_id().map(|id| format!("<{id}>"));
        let (has_from, has_date) = (parsed.from().is_some(), parsed.date().is_some());
        let raw = RawMime { bytes: without_header(bytes, end, b"bcc"), message_id, has_from, has_date };
        Ok((raw, headers))
    }
}

/// Where a message's header section ends: the offset of the blank line
/// (LF or CRLF) that closes it.
pub(super) fn header_end(bytes: &[u8]) -> Option<usize> {
    let mut start = 0;
    while start < bytes.len() {
        let line_end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i + 1);
        let line = &bytes[start..line_end];
        if line == b"\n" || line == b"\r\n" {
            return Some(start);
        }
        start = line_end;
    }
    None
}

/// `bytes` without every header named `lower_name` (with its folded
/// continuation lines) in the header section that ends at `end`.
pub(super) fn without_header(bytes: Vec<u8>, end: usize, lower_name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut dropping = false;
    let mut start = 0;
    while start < end {
        let line_end = memchr::memchr(b'\n', &bytes[start..end]).map_or(end, |i| start + i + 1);
        let line = &bytes[start..line_end];
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            dropping = line.len() > lower_name.len()
                && line[..lower_name.len()].eq_ignore_ascii_case(lower_name)
                && line[lower_name.len()] == b':';
        }
        if !dropping {
            out.extend_from_slice(line);
        }
        start = line_end;
    }
    out.extend_from_slice(&bytes[end..]);
    out
}
