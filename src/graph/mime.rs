//! The MIME as Graph takes it: recipients named in the headers, large
//! attachments taken out for the draft path.

use mail_parser::{MessageParser, MimeHeaders, PartType};
use std::borrow::Cow;

/// An attachment taken out of the MIME for the draft path.
#[derive(Debug)]
pub struct Extracted {
    pub name: String,
    pub content_type: String,
    pub content_id: Option<String>,
    pub inline: bool,
    pub data: Vec<u8>,
}

/// Splits `mime` for the draft path: takes out binary attachment parts,
/// largest first, until what is left is at most `limit` bytes. Returns the
/// MIME without them and the attachments (decoded).
pub fn split_attachments(mime: &[u8], limit: usize) -> (Vec<u8>, Vec<Extracted>) {
    let Some(message) = MessageParser::default().parse(mime) else {
        return (mime.to_vec(), Vec::new());
    };
    // (start, end) of each removable part in the raw bytes, with its index.
    let mut candidates: Vec<(usize, usize, usize)> = Vec::new();
    for part in &message.parts {
        let PartType::Multipart(children) = &part.body else { continue };
        let Some(boundary) = part.content_type().and_then(|ct| ct.attribute("boundary")) else { continue };
        let delimiter = format!("\r\n--{boundary}");
        let body = (part.offset_body as usize, part.offset_end as usize);
        // Every delimiter of this multipart, in order.
        let mut delimiters = Vec::new();
        let mut from = body.0.saturating_sub(2);
        while let Some(i) = memchr::memmem::find(&mime[from..body.1.min(mime.len())], delimiter.as_bytes()) {
            delimiters.push(from + i);
            from += i + delimiter.len();
        }
        for &child in children {
            let c = &message.parts[child as usize];
            if !matches!(c.body, PartType::Binary(_) | PartType::InlineBinary(_)) {
                continue;
            }
            let start = c.offset_header as usize;
            // The part runs from the delimiter before it to the next one.
            let Some(&before) = delimiters.iter().rev().find(|&&d| d < start) else { continue };
            let Some(&after) = delimiters.iter().find(|&&d| d > start) else { continue };
            candidates.push((before, after, child as usize));
        }
    }
    candidates.sort_by_key(|(s, e, _)| std::cmp::Reverse(e - s));
    let mut size = mime.len();
    let mut chosen = Vec::new();
    for c in candidates {
        if size <= limit {
            break;
        }
        size -= c.1 - c.0;
        chosen.push(c);
    }
    if chosen.is_empty() {
        return (mime.to_vec(), Vec::new());
    }
    chosen.sort_by_key(|c| c.0);
    let mut out = Vec::with_capacity(size);
    let mut at = 0;
    let mut extracted = Vec::new();
    for (start, end, index) in chosen {
        out.extend_from_slice(&mime[at..start]);
        at = end;
        let p = &message.parts[index];
        let content_type = p
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into());
        extracted.push(Extracted {
            name: p.attachment_name().unwrap_or("attachment").to_string(),
            content_type,
            content_id: p.content_id().map(|id| id.trim_start_matches('<').trim_end_matches('>').to_string()),
            inline: p.content_disposition().is_some_and(|d| d.is_inline()),
            data: p.contents().to_vec(),
        });
    }
    out.extend_from_slice(&mime[at..]);
    (out, extracted)
}

/// Makes the MIME's To, Cc and Bcc headers name exactly `envelope` (Graph
/// sends to the headers' addresses): To and Cc keep the addresses in the
/// envelope, the rest of the envelope goes in Bcc. Unchanged (borrowed)
/// when they already match.
pub fn recipients_in_headers<'a>(mime: &'a [u8], envelope: &[String]) -> Cow<'a, [u8]> {
    let header_end = match memchr::memmem::find(mime, b"\r\n\r\n") {
        Some(i) => i + 2,
        None => return Cow::Borrowed(mime),
    };
    let Some(parsed) = MessageParser::default().parse_headers(&mime[..header_end + 2]) else {
        return Cow::Borrowed(mime);
    };
    let in_envelope = |a: &str| envelope.iter().any(|e| e.eq_ignore_ascii_case(a));
    let list = |addr: Option<&mail_parser::Address>| -> Vec<(Option<String>, String)> {
        addr.map(|a| {
            a.iter().filter_map(|x| x.address().map(|e| (x.name().map(str::to_string), e.to_string()))).collect()
        })
        .unwrap_or_default()
    };
    let (to, cc) = (list(parsed.to()), list(parsed.cc()));
    let keep = |l: &[(Option<String>, String)]| -> Vec<(Option<String>, String)> {
        l.iter().filter(|(_, e)| in_envelope(e)).cloned().collect()
    };
    let (to_keep, cc_keep) = (keep(&to), keep(&cc));
    let shown = |e: &str| to_keep.iter().chain(&cc_keep).any(|(_, a)| a.eq_ignore_ascii_case(e));
    let mut bcc: Vec<(Option<String>, String)> = Vec::new();
    for e in envelope {
        if !shown(e) && !bcc.iter().any(|(_, b)| b.eq_ignore_ascii_case(e)) {
            bcc.push((None, e.clone()));
        }
    }
    if to_keep.len() == to.len() && cc_keep.len() == cc.len() && bcc.is_empty() && parsed.bcc().is_none() {
        return Cow::Borrowed(mime);
    }
    // Drop the old To, Cc and Bcc fields (with their folded lines).
    let mut out = Vec::with_capacity(mime.len() + 256);
    let mut skipping = false;
    for line in mime[..header_end].split_inclusive(|&b| b == b'\n') {
        let folded = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !folded {
            let name = line.split(|&b| b == b':').next().unwrap_or(b"");
            skipping = [&b"to"[..], b"cc", b"bcc"].iter().any(|n| name.eq_ignore_ascii_case(n));
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    let mut headers = lettre::message::header::Headers::new();
    let mailboxes = |l: &[(Option<String>, String)]| -> lettre::message::Mailboxes {
        l.iter()
            .filter_map(|(name, email)| email.parse().ok().map(|a| lettre::message::Mailbox::new(name.clone(), a)))
            .collect()
    };
    if !to_keep.is_empty() {
        headers.set(lettre::message::header::To::from(mailboxes(&to_keep)));
    }
    if !cc_keep.is_empty() {
        headers.set(lettre::message::header::Cc::from(mailboxes(&cc_keep)));
    }
    if !bcc.is_empty() {
        headers.set(lettre::message::header::Bcc::from(mailboxes(&bcc)));
    }
    out.extend_from_slice(headers.to_string().as_bytes());
    out.extend_from_slice(&mime[header_end..]);
    Cow::Owned(out)
}
