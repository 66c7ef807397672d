//! The MIME bytes sent: lettre builds the headers and the MIME tree and
//! DKIM-signs; the bodies are encoded straight into the final bytes.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::Address;
use std::borrow::Cow;

use super::splice::{part_body, Splices};
use super::*;
use crate::error::{Error, Result};
use crate::message_bounds;

/// `text` safe inside HTML text and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A `name=` parameter value: quoted printable ASCII, or RFC 2047 encoded
/// words for anything else (what Outlook and Thunderbird read). Each word
/// stays within RFC 2047's 75 characters, with a space between words where
/// the header can be folded, so a long name never makes a long line.
pub(super) fn name_parameter(name: &str) -> String {
    let plain = name.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
    if plain {
        return format!("\"{name}\"");
    }
    // 45 bytes of UTF-8 are 60 characters of base64: a 72-character word.
    const WORD_BYTES: usize = 45;
    let mut words = Vec::new();
    let mut start = 0;
    for (at, c) in name.char_indices() {
        if at + c.len_utf8() - start > WORD_BYTES {
            words.push(format!("=?utf-8?b?{}?=", B64.encode(&name.as_bytes()[start..at])));
            start = at;
        }
    }
    words.push(format!("=?utf-8?b?{}?=", B64.encode(&name.as_bytes()[start..])));
    format!("\"{}\"", words.join(" "))
}

/// What [`build`] needs beyond the spec: decisions of the pipeline.
pub struct BuildContext<'a> {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    pub message_id: String,
    /// In test mode: the original To and Cc, for `X-Original-To`.
    pub original_to: Option<String>,
    pub dkim: Option<&'a lettre::message::dkim::DkimConfig>,
}

/// Line ends as LF only (what an HTML-to-text conversion and the tests
/// compare with).
pub(super) fn normalize_newlines(text: &str) -> String {
    if !text.contains('\r') {
        return text.to_string();
    }
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Builds the exact bytes to send. The attachments' and inline parts'
/// bytes move into the message (the spec keeps their names and types), so
/// that a large attachment is not held twice while it is encoded; text
/// bodies are encoded once, into the final bytes.
pub fn build(spec: &mut MessageSpec, ctx: &BuildContext) -> Result<Vec<u8>> {
    if let Some(raw) = spec.raw.take() {
        return build_raw(raw, ctx);
    }
    // The SMTP envelope is the pipeline's; lettre only needs one that is
    // valid (a message with Bcc alone has no To or Cc to derive it from).
    let recipients: Vec<Address> = spec.all_recipients().map(|r| r.mailbox.email.clone()).collect();
    let envelope = lettre::address::Envelope::new(Some(ctx.from.email.clone()), recipients)
        .map_err(|e| Error::message_error(format!("cannot build the envelope: {e}")))?;
    let mut builder = lettre::Message::builder()
        .envelope(envelope)
        .from(ctx.from.clone())
        .subject(spec.subject.clone())
        .message_id(Some(ctx.message_id.clone()))
        .date_now();
    if let Some(r) = &ctx.reply_to {
        builder = builder.reply_to(r.clone());
    }
    // Each header made once (lettre's `to`/`cc` add one mailbox at a time
    // by parsing the header back: quadratic in the recipients), folded.
    for (name, list) in [("To", &spec.to), ("Cc", &spec.cc)] {
        if !list.is_empty() {
            let mailboxes: Vec<Mailbox> = list.iter().map(|r| r.mailbox.clone()).collect();
            builder = builder.raw_header(message_bounds::address_header(name, &mailboxes));
        }
    }
    for (name, value) in &spec.headers {
        builder = builder.raw_header(HeaderValue::new(name.clone(), value.clone()));
    }
    if let Some(original) = &ctx.original_to {
        builder =
            builder.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("X-Original-To"), original.clone()));
    }

    // The bodies are encoded after lettre formats the rest (see splice.rs).
    let mut splices = Splices::new(ctx.dkim.is_some())?;
    let body = match (spec.text.as_deref(), spec.html.as_deref()) {
        (Some(text), None) => Body::Single(SinglePart::plain(splices.text(Cow::Borrowed(text)))),
        (text, Some(html)) => {
            let text = match text {
                Some(text) => Cow::Borrowed(text),
                None => Cow::Owned(nanohtml2text::html2text(&normalize_newlines(html))),
            };
            let text_part = SinglePart::plain(splices.text(text));
            let html_part = SinglePart::html(splices.text(Cow::Borrowed(html)));
            let rich = if spec.inline.is_empty() {
                Body::Single(html_part)
            } else {
                let mut related = MultiPart::related().singlepart(html_part);
                for part in &mut spec.inline {
                    let cid = part.cid.clone().expect("inline parts have a cid");
                    related =
                        related.singlepart(Attachment::new_inline_with_name(cid, part.name.clone()).body(
                            part_body(std::mem::take(&mut part.bytes), part.is_message),
                            part.content_type.clone(),
                        ));
                }
                Body::Multi(related)
            };
            let alternative = MultiPart::alternative().singlepart(text_part);
            Body::Multi(match rich {
                Body::Single(p) => alternative.singlepart(p),
                Body::Multi(m) => alternative.multipart(m),
            })
        }
        (None, None) => return Err(Error::message_error("the message has no body (html or text)")),
    };
    let body = if spec.attachments.is_empty() {
        body
    } else {
        let mut mixed = match body {
            Body::Single(p) => MultiPart::mixed().singlepart(p),
            Body::Multi(m) => MultiPart::mixed().multipart(m),
        };
        for part in &mut spec.attachments {
            let body = splices.attachment(std::mem::take(&mut part.bytes), part.is_message);
            mixed = mixed.singlepart(Attachment::new(part.name.clone()).body(body, part.content_type.clone()));
        }
        Body::Multi(mixed)
    };
    let mut message = match body {
        Body::Single(p) => builder.singlepart(p),
        Body::Multi(m) => builder.multipart(m),
    }
    .map_err(|e| Error::message_error(format!("cannot build the message: {e}")))?;
    if let Some(dkim) = ctx.dkim {
        message.sign(dkim);
    }
    let formatted = message.formatted();
    if let Some((name, len)) = message_bounds::long_header_line(&formatted) {
        return Err(long_header_error(spec, &name, len));
    }
    splices.into_bytes(formatted)
}

/// `SMTPB_ERR_MESSAGE` for a header whose line would be `len` octets after
/// folding, naming the message JSON's field it comes from.
pub(super) fn long_header_error(spec: &MessageSpec, header: &str, len: usize) -> Error {
    let lower = header.to_ascii_lowercase();
    let field = match lower.as_str() {
        "subject" => "subject".to_string(),
        "to" | "cc" => {
            // The recipient whose own mailbox does not fit, if one does not.
            let list = if lower == "to" { &spec.to } else { &spec.cc };
            let alone = |m: &Mailbox| {
                let mut h = lettre::message::header::Headers::new();
                h.set(lettre::message::header::To::from(Mailboxes::from(m.clone())));
                message_bounds::long_header_line(h.to_string().as_bytes()).is_some()
            };
            match list.iter().position(|r| alone(&r.mailbox)) {
                Some(i) => format!("{lower}[{i}]"),
                None => lower.clone(),
            }
        }
        "from" => "from".to_string(),
        "reply-to" => "reply_to".to_string(),
        "x-original-to" => "to/cc (X-Original-To of test mode)".to_string(),
        _ => match spec.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(header)) {
            Some((n, _)) => format!("headers.{n}"),
            None => header.to_string(),
        },
    };
    Error::message_error(format!(
        "{field}: the {header} header would have a line of {len} octets after folding (a word too long to \
         fold); at most {} are allowed (RFC 5322)",
        message_bounds::MAX_LINE_OCTETS
    ))
}

/// The bytes of a host's own message: the headers it lacks in front
/// (From, Date, Message-ID, and X-Original-To in test mode), then its own.
pub(super) fn build_raw(raw: RawMime, ctx: &BuildContext) -> Result<Vec<u8>> {
    if ctx.dkim.is_some() {
        return Err(Error::config(
            "mime_base64: this profile signs with DKIM (SMTPDkimDomain), which needs a message the library builds",
        ));
    }
    let mut front = lettre::message::header::Headers::new();
    if !raw.has_from {
        front.set(lettre::message::header::From::from(lettre::message::Mailboxes::from(ctx.from.clone())));
    }
    if !raw.has_date {
        front.set(lettre::message::header::Date::now());
    }
    if raw.message_id.is_none() {
        front.set(lettre::message::header::MessageId::from(ctx.message_id.clone()));
    }
    if let Some(original) = &ctx.original_to {
        front.insert_raw(HeaderValue::new(HeaderName::new_from_ascii_str("X-Original-To"), original.clone()));
    }
    let front = front.to_string();
    let mut bytes = Vec::with_capacity(front.len() + raw.bytes.len());
    bytes.extend_from_slice(front.as_bytes());
    bytes.extend_from_slice(&raw.bytes);
    Ok(bytes)
}

pub(super) enum Body {
    Single(SinglePart),
    Multi(MultiPart),
}

/// The DKIM settings every signed message uses: relaxed/relaxed
/// canonicalisation (it survives header refolding by relays, and by
/// lettre itself, which folds the signature header after signing) over
/// the headers a receiver shows or threads by. Headers a message lacks are
/// listed too, so that none can be added after signing.
pub fn dkim_config(
    domain: &str,
    selector: &str,
    key: lettre::message::dkim::DkimSigningKey,
) -> lettre::message::dkim::DkimConfig {
    use lettre::message::dkim::{DkimCanonicalization, DkimCanonicalizationType, DkimConfig};
    // Not Content-Type: lettre keeps it with the body part, where its
    // signer does not look, so a receiver would hash a header lettre did not.
    let headers = ["From", "Sender", "Reply-To", "Subject", "Date", "Message-ID", "To", "Cc", "MIME-Version"]
        .into_iter()
        .map(HeaderName::new_from_ascii_str)
        .collect();
    let canonicalization =
        DkimCanonicalization { header: DkimCanonicalizationType::Relaxed, body: DkimCanonicalizationType::Relaxed };
    DkimConfig::new(selector.to_string(), domain.to_string(), key, headers, canonicalization)
}
