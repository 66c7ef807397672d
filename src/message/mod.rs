//! Message JSON: reading, validation, and building the MIME message with
//! lettre.
//!
//! [`MessageSpec::parse`] reads the host's JSON strictly (unknown fields,
//! duplicate keys and wrong types are refused by name) and validates every
//! address, header and attachment, reading attachment files during the
//! call. [`build`] turns a validated spec into the exact bytes sent, DKIM
//! signature included.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use lettre::message::header::{ContentType, HeaderName};
use lettre::message::Mailbox;
use serde::Deserialize;

use crate::address::{parse_address, AddressList, AddressSpec};
use crate::error::{Error, Result};
use crate::json::{self, OrderedMap};
use crate::message_bounds::{self, PartBudget};
use crate::text::{check_text, printable};

mod attachments;
mod build;
mod encode;
pub(crate) use encode::check_against_lettre;
mod raw;
mod splice;

pub use attachments::read_part;
use build::*;
pub use build::{build, dkim_config, html_escape, BuildContext};

/// An attachment or inline part as the host gives it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartSpec {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub content_base64: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub cid: Option<String>,
}

/// The message JSON of `smtpb_send` and `smtpb_enqueue`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageJson {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub from: Option<AddressSpec>,
    #[serde(default)]
    pub reply_to: Option<AddressSpec>,
    #[serde(default)]
    pub to: AddressList,
    #[serde(default)]
    pub cc: AddressList,
    #[serde(default)]
    pub bcc: AddressList,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "json::objects")]
    pub attachments: Vec<PartSpec>,
    #[serde(default, deserialize_with = "json::objects")]
    pub inline: Vec<PartSpec>,
    #[serde(default)]
    pub headers: Option<OrderedMap>,
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub archive: Option<bool>,
    /// A complete RFC 5322 message, base64: sent as it is (see [`RawMime`]).
    #[serde(default)]
    pub mime_base64: Option<String>,
}

/// A message the host built itself (`mime_base64`), sent as its bytes.
///
/// The envelope comes from the JSON's `from`/`to`/`cc`/`bcc` where given,
/// else from the message's own From, To, Cc and Bcc headers. The bytes go
/// out as they are, except that Bcc headers are removed and a missing
/// From, Date or Message-ID header is added in front.
#[derive(Clone, Debug)]
pub struct RawMime {
    /// The bytes without Bcc headers.
    pub bytes: Vec<u8>,
    /// The message's own Message-ID (with angle brackets), if it has one.
    pub message_id: Option<String>,
    pub has_from: bool,
    pub has_date: bool,
}

/// A validated recipient.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipient {
    /// The address as the host gave it (for the status).
    pub given: String,
    pub mailbox: Mailbox,
}

/// A validated file or in-memory part, its bytes read.
#[derive(Clone, Debug)]
pub struct Part {
    pub name: String,
    pub content_type: ContentType,
    /// A message/* part (a forwarded message, …).
    pub is_message: bool,
    pub bytes: Vec<u8>,
    pub cid: Option<String>,
}

/// A message that passed validation.
#[derive(Clone, Debug)]
pub struct MessageSpec {
    pub user: Option<String>,
    pub profile: Option<String>,
    pub from: Option<Mailbox>,
    pub reply_to: Option<Mailbox>,
    pub to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
    pub bcc: Vec<Recipient>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub attachments: Vec<Part>,
    pub inline: Vec<Part>,
    pub headers: Vec<(HeaderName, String)>,
    pub reference: Option<String>,
    pub idempotency_key: Option<String>,
    pub archive: bool,
    /// The host's own MIME message, when it gave `mime_base64`.
    pub raw: Option<RawMime>,
    /// What the parts read so far leave of SMTPMaxMessageBytes (a merge
    /// reads each recipient's own attachments into it).
    pub budget: PartBudget,
}

/// Headers the library writes itself; a host may not set them.
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "content-id",
    "x-original-to",
    "dkim-signature",
    "received",
    "return-path",
];

fn mailbox(field: &str, spec: &AddressSpec) -> Result<Mailbox> {
    let address = parse_address(&spec.email).map_err(|e| e.context(field))?;
    if let Some(name) = &spec.name {
        check_text(name).map_err(|c| {
            Error::message_error(format!("{field}: the name \"{}\" has the control character {c:?}", printable(name)))
        })?;
    }
    Ok(Mailbox::new(spec.name.clone().filter(|n| !n.is_empty()), address))
}

/// Validates a list of addresses named `field` in errors.
pub fn recipients(field: &str, list: &[AddressSpec]) -> Result<Vec<Recipient>> {
    list.iter()
        .enumerate()
        .map(|(i, spec)| Ok(Recipient { given: spec.email.clone(), mailbox: mailbox(&format!("{field}[{i}]"), spec)? }))
        .collect()
}

impl MessageSpec {
    /// Reads and validates message JSON. Attachment files are read now,
    /// within the budget `budget_for` gives for the message's `profile`.
    pub fn parse(text: &str, budget_for: &dyn Fn(Option<&str>) -> PartBudget) -> Result<MessageSpec> {
        let raw: MessageJson = json::parse_object(text, "message JSON")?;
        let budget = budget_for(raw.profile.as_deref());
        MessageSpec::validate(raw, budget)
    }

    /// Validates a message already read from JSON.
    pub fn validate(raw: MessageJson, budget: PartBudget) -> Result<MessageSpec> {
        let spec = MessageSpec::validate_template(raw, budget)?;
        if spec.all_recipients().next().is_none() {
            return Err(Error::message_error("the message has no recipient (to, cc or bcc)"));
        }
        Ok(spec)
    }

    /// Validates a merge template: a message that may have no recipient
    /// yet. Its parts are read within `budget`.
    pub fn validate_template(mut raw: MessageJson, mut budget: PartBudget) -> Result<MessageSpec> {
        message_bounds::check_recipient_count(&[("to", raw.to.len()), ("cc", raw.cc.len()), ("bcc", raw.bcc.len())])?;
        if let Some(mime) = raw.mime_base64.take() {
            return MessageSpec::validate_raw(raw, &mime, budget);
        }
        check_host_fields(&raw)?;
        let to = recipients("to", &raw.to)?;
        let cc = recipients("cc", &raw.cc)?;
        let bcc = recipients("bcc", &raw.bcc)?;
        if raw.html.is_none() && raw.text.is_none() {
            return Err(Error::message_error("the message has no body (html or text)"));
        }
        let subject = raw.subject.unwrap_or_default();
        check_text(&subject).map_err(|c| {
            Error::message_error(format!("subject: control character {c:?} is not allowed in a header"))
        })?;
        for (field, body) in [("html", &raw.html), ("text", &raw.text)] {
            if body.as_deref().is_some_and(|b| memchr::memchr(0, b.as_bytes()).is_some()) {
                return Err(Error::message_error(format!("{field}: NUL is not allowed in a body")));
            }
        }
        let mut headers = Vec::new();
        for (name, value) in raw.headers.map(|h| h.0).unwrap_or_default() {
            headers.push(custom_header(&name, &value)?);
        }
        let attachments = raw
            .attachments
            .iter()
            .enumerate()
            .map(|(i, p)| read_part(&format!("attachments[{i}]"), p, false, &mut budget))
            .collect::<Result<Vec<_>>>()?;
        let inline = raw
            .inline
            .iter()
            .enumerate()
            .map(|(i, p)| read_part(&format!("inline[{i}]"), p, true, &mut budget))
            .collect::<Result<Vec<_>>>()?;
        if !inline.is_empty() && raw.html.is_none() {
            return Err(Error::message_error("inline: inline parts need an html body to refer to them"));
        }
        Ok(MessageSpec {
            user: raw.user,
            profile: raw.profile,
            from: raw.from.as_ref().map(|f| mailbox("from", f)).transpose()?,
            reply_to: raw.reply_to.as_ref().map(|r| mailbox("reply_to", r)).transpose()?,
            to,
            cc,
            bcc,
            subject,
            html: raw.html,
            text: raw.text,
            attachments,
            inline,
            headers,
            reference: raw.reference,
            idempotency_key: raw.idempotency_key,
            archive: raw.archive.unwrap_or(false),
            raw: None,
            budget,
        })
    }

    /// Validates a message given as `mime_base64`: its envelope from the
    /// JSON where given, else from the message's headers.
    fn validate_raw(raw: MessageJson, mime: &str, mut budget: PartBudget) -> Result<MessageSpec> {
        let beside = [
            ("subject", raw.subject.is_some()),
            ("html", raw.html.is_some()),
            ("text", raw.text.is_some()),
            ("attachments", !raw.attachments.is_empty()),
            ("inline", !raw.inline.is_empty()),
            ("headers", raw.headers.is_some()),
        ];
        if let Some((field, _)) = beside.iter().find(|(_, given)| *given) {
            return Err(Error::message_error(format!(
                "{field}: not allowed beside mime_base64 (the message is sent as its bytes)"
            )));
        }
        let compact: String = mime.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes =
            B64.decode(compact).map_err(|e| Error::message_error(format!("mime_base64: not valid base64: {e}")))?;
        budget.take("mime_base64", "the message", bytes.len() as u64, true)?;
        let (raw_mime, headers) = RawMime::read(bytes)?;
        let from_header = |field: &str, list: &[AddressSpec]| -> Result<Vec<Recipient>> {
            recipients(&format!("mime_base64: {field}"), list)
        };
        let given_envelope = !(raw.to.is_empty() && raw.cc.is_empty() && raw.bcc.is_empty());
        let (to, cc, bcc) = if given_envelope {
            (recipients("to", &raw.to)?, recipients("cc", &raw.cc)?, recipients("bcc", &raw.bcc)?)
        } else {
            message_bounds::check_recipient_count(&[
                ("mime_base64: To", headers.to.len()),
                ("mime_base64: Cc", headers.cc.len()),
                ("mime_base64: Bcc", headers.bcc.len()),
            ])?;
            (from_header("To", &headers.to)?, from_header("Cc", &headers.cc)?, from_header("Bcc", &headers.bcc)?)
        };
        let from = match (&raw.from, headers.from.first()) {
            (Some(f), _) => Some(mailbox("from", f)?),
            (None, Some(f)) => Some(mailbox("mime_base64: From", f)?),
            (None, None) => None,
        };
        check_host_fields(&raw)?;
        Ok(MessageSpec {
            user: raw.user,
            profile: raw.profile,
            from,
            reply_to: raw.reply_to.as_ref().map(|r| mailbox("reply_to", r)).transpose()?,
            to,
            cc,
            bcc,
            subject: String::new(),
            html: None,
            text: None,
            attachments: Vec::new(),
            inline: Vec::new(),
            headers: Vec::new(),
            reference: raw.reference,
            idempotency_key: raw.idempotency_key,
            archive: raw.archive.unwrap_or(false),
            raw: Some(raw_mime),
            budget,
        })
    }

    /// Every recipient: to, cc, bcc, in that order.
    pub fn all_recipients(&self) -> impl Iterator<Item = &Recipient> {
        self.to.iter().chain(&self.cc).chain(&self.bcc)
    }
}

/// The host's own fields (`reference`, `idempotency_key`, `user`) hold no
/// control character.
fn check_host_fields(raw: &MessageJson) -> Result<()> {
    for (field, value) in
        [("reference", &raw.reference), ("idempotency_key", &raw.idempotency_key), ("user", &raw.user)]
    {
        if let Some(v) = value {
            check_text(v)
                .map_err(|c| Error::message_error(format!("{field}: control character {c:?} is not allowed")))?;
        }
    }
    Ok(())
}

fn custom_header(name: &str, value: &serde_json::Value) -> Result<(HeaderName, String)> {
    let value = match value {
        serde_json::Value::String(s) => s.clone(),
        other => return Err(Error::invalid_argument(format!("headers.{name}: a string expected, got {other}"))),
    };
    let valid_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if !valid_name {
        return Err(Error::message_error(format!("headers: \"{}\" is not a valid header name", printable(name))));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(Error::message_error(format!("headers: {name} is written by the library and cannot be set")));
    }
    check_text(&value).map_err(|c| {
        Error::message_error(format!("headers.{name}: control character {c:?} is not allowed in a header"))
    })?;
    let header = HeaderName::new_from_ascii(name.to_string())
        .map_err(|_| Error::message_error(format!("headers: \"{}\" is not a valid header name", printable(name))))?;
    Ok((header, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare_line_ends(bytes: &[u8]) -> Vec<usize> {
        (0..bytes.len())
            .filter(|&i| match bytes[i] {
                b'\r' => bytes.get(i + 1) != Some(&b'\n'),
                b'\n' => i == 0 || bytes[i - 1] != b'\r',
                _ => false,
            })
            .collect()
    }

    #[test]
    fn parts_whose_bytes_are_ascii_keep_no_bare_line_end_and_arrive_as_they_were() {
        // Found by the message_json fuzz target: a PNG's first bytes are
        // ASCII with a bare LF, which lettre sent as 7bit untouched.
        let png = B64.encode(b"\x89PNG\r\n\x1a\n");
        let ascii = B64.encode(b"iPNG\r\n\x1a\nline\rend\n");
        let eml = B64.encode(b"Subject: x\n\nbody\rmore");
        let json = format!(
            r#"{{"to":["a@example.com"],"subject":"s","html":"<img src=\"cid:logo\">",
               "attachments":[{{"content_base64":"{ascii}","name":"a.bin"}},
                              {{"content_base64":"{eml}","name":"fwd.eml","content_type":"message/rfc822"}}],
               "inline":[{{"content_base64":"{ascii}","cid":"logo","name":"logo.png"}},
                         {{"content_base64":"{png}","cid":"logo2","name":"logo2.png"}}]}}"#
        );
        let bytes = build_plain(&mut parse(&json).unwrap());
        assert_eq!(bare_line_ends(&bytes), Vec::<usize>::new());
        let text = String::from_utf8_lossy(&bytes);
        // The file parts are base64: their bytes come back exactly.
        assert!(text.contains(&ascii), "{text}");
        assert!(text.contains("Subject: x\r\n\r\nbody\r\nmore"), "{text}");
    }

    fn parse(json: &str) -> Result<MessageSpec> {
        MessageSpec::parse(json, &|_| PartBudget::new(36_700_160, "Default"))
    }

    #[test]
    fn unknown_fields_and_duplicates_are_named() {
        let e = parse(r#"{"to":["a@b.example"],"text":"x","atachments":[]}"#).unwrap_err();
        assert!(e.message().contains("atachments"), "{}", e.message());
        let e = parse(r#"{"to":["a@b.example"],"text":"x","text":"y"}"#).unwrap_err();
        assert!(e.message().contains("duplicate field `text`"), "{}", e.message());
        let e = parse(r#"{"to":["a@b.example"],"text":"x","headers":{"X-A":"1","X-A":"2"}}"#).unwrap_err();
        assert!(e.message().contains("duplicate key"), "{}", e.message());
        let e = parse(r#"{"to":[{"email":"a@b.example","nmae":"x"}],"text":"x"}"#).unwrap_err();
        assert!(e.message().contains("nmae"), "{}", e.message());
    }

    #[test]
    fn header_injection_is_refused() {
        let e = parse(r#"{"to":["a@b.example"],"text":"x","subject":"Hi\r\nBcc: evil@x.example"}"#).unwrap_err();
        assert_eq!(e.code(), crate::error::Code::Message);
        let e = parse(r#"{"to":["a@b.example\r\nRCPT TO:<evil@x.example>"],"text":"x"}"#).unwrap_err();
        assert_eq!(e.code(), crate::error::Code::Message);
        assert!(e.message().contains("to[0]"));
        let e = parse(r#"{"to":["a@b.example"],"text":"x","headers":{"X-A":"1\nBcc: e@x.example"}}"#).unwrap_err();
        assert!(e.message().contains("headers.X-A"));
        let e = parse(r#"{"to":["a@b.example"],"text":"x","headers":{"Bcc":"e@x.example"}}"#).unwrap_err();
        assert!(e.message().contains("Bcc"));
        assert!(parse(r#"{"to":[{"email":"a@b.example","name":"A\tB"}],"text":"x","subject":"a\tb"}"#).is_ok());
    }

    #[test]
    fn missing_parts_are_refused() {
        assert!(parse(r#"{"text":"x"}"#).unwrap_err().message().contains("no recipient"));
        assert!(parse(r#"{"to":["a@b.example"]}"#).unwrap_err().message().contains("no body"));
        let e = parse(r#"{"to":["a@b.example"],"text":"x","attachments":[{"path":"rel/file.pdf"}]}"#).unwrap_err();
        assert!(e.message().contains("rel/file.pdf") && e.message().contains("absolute"));
        let e =
            parse(r#"{"to":["a@b.example"],"text":"x","attachments":[{"path":"/nonexistent/x.pdf"}]}"#).unwrap_err();
        assert!(e.message().contains("/nonexistent/x.pdf"));
    }

    /// The bytes of `spec` from a fixed sender, without DKIM.
    fn build_plain(spec: &mut MessageSpec) -> Vec<u8> {
        let ctx = BuildContext {
            from: "s@b.example".parse().unwrap(),
            reply_to: None,
            message_id: "<1@b.example>".into(),
            original_to: None,
            dkim: None,
        };
        build(spec, &ctx).unwrap()
    }

    #[test]
    fn a_large_attachment_is_spliced_in_as_lettre_would_encode_it() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let json = format!(
            r#"{{"to":["a@b.example"],"text":"see attached","attachments":[{{"content_base64":"{}","name":"big.bin"}},{{"content_base64":"{}","name":"small.txt"}}]}}"#,
            B64.encode(&data),
            B64.encode(b"small")
        );
        let mut spec = parse(&json).unwrap();
        let bytes = build_plain(&mut spec);
        assert!(memchr::memmem::find(&bytes, b"SMTPBRIDGEPART").is_none());
        assert!(bytes.split(|b| *b == b'\n').all(|line| line.len() <= 78));
        let parsed = mail_parser::MessageParser::default().parse(&bytes).unwrap();
        let parts: Vec<&[u8]> = parsed.attachments().map(|p| p.contents()).collect();
        assert_eq!(parts, vec![&data[..], &b"small"[..]]);
    }

    #[test]
    fn lone_cr_never_reaches_the_bytes() {
        let mut spec = parse(r#"{"to":["a@b.example"],"text":"one\rtwo\nthree\r\n.four"}"#).unwrap();
        let bytes = build_plain(&mut spec);
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\r' {
                assert_eq!(bytes.get(i + 1), Some(&b'\n'));
            }
            if *b == b'\n' {
                assert_eq!(bytes[i - 1], b'\r');
            }
        }
    }
}
