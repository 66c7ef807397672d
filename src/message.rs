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
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::Address;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::address::AddressList;
use crate::config::{check_text, printable};
use crate::error::{Error, Result};
use crate::json::{self, OrderedMap};
use crate::message_bounds::{self, PartBudget};

/// An address as the host gives it: `"a@b"`, `"Name <a@b>"` (see
/// [`crate::address`]) or `{"email", "name"}`.
#[derive(Clone, Debug, PartialEq)]
pub struct AddressSpec {
    pub email: String,
    pub name: Option<String>,
}

impl<'de> Deserialize<'de> for AddressSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct AddressVisitor;
        impl<'de> Visitor<'de> for AddressVisitor {
            type Value = AddressSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an address string or {\"email\", \"name\"}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<AddressSpec, E> {
                Ok(crate::address::parse_entry(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<AddressSpec, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Object {
                    email: String,
                    #[serde(default)]
                    name: Option<String>,
                }
                let o = Object::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(AddressSpec { email: o.email, name: o.name })
            }
        }
        deserializer.deserialize_any(AddressVisitor)
    }
}

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

/// Parses a mail address, refusing control characters and anything lettre
/// would not put in a header.
pub fn parse_address(text: &str) -> Result<Address> {
    if text.chars().any(char::is_control) || text.trim() != text || text.is_empty() {
        return Err(Error::message_error(format!("\"{}\" is not a valid mail address", printable(text))));
    }
    text.parse::<Address>()
        .map_err(|e| Error::message_error(format!("\"{}\" is not a valid mail address: {e}", printable(text))))
}

/// `address` with its domain as A-labels (UTS #46, as IDNA 2008 mail
/// expects): `user@bücher.example` becomes `user@xn--bcher-kva.example`.
/// An ASCII domain is returned as it is; a domain that is no valid IDN is
/// `SMTPB_ERR_MESSAGE` naming the address. The local part is kept: a
/// non-ASCII one needs a server that offers SMTPUTF8.
pub fn ascii_domain(address: &Address) -> Result<Address> {
    let domain = address.domain();
    if domain.is_ascii() {
        return Ok(address.clone());
    }
    let ascii = idna::domain_to_ascii(domain).map_err(|_| {
        Error::message_error(format!(
            "\"{}\": the domain is not a valid international domain name",
            printable(address.as_ref())
        ))
    })?;
    Address::new(address.user(), ascii).map_err(|e| {
        Error::message_error(format!("\"{}\" is not a valid mail address: {e}", printable(address.as_ref())))
    })
}

/// `mailbox` with its domain as A-labels (see [`ascii_domain`]).
pub fn ascii_mailbox(mailbox: &Mailbox) -> Result<Mailbox> {
    Ok(Mailbox::new(mailbox.name.clone(), ascii_domain(&mailbox.email)?))
}

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
            if body.as_deref().is_some_and(|b| b.contains('\0')) {
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

/// The addresses of a raw message's own headers.
#[derive(Default)]
struct RawHeaders {
    from: Vec<AddressSpec>,
    to: Vec<AddressSpec>,
    cc: Vec<AddressSpec>,
    bcc: Vec<AddressSpec>,
}

impl RawMime {
    /// Checks a host's message and takes its addresses; the bytes are kept
    /// without their Bcc headers.
    fn read(bytes: Vec<u8>) -> Result<(RawMime, RawHeaders)> {
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
fn header_end(bytes: &[u8]) -> Option<usize> {
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
fn without_header(bytes: Vec<u8>, end: usize, lower_name: &[u8]) -> Vec<u8> {
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

/// Where a part's bytes come from: a file not read yet, or the host's
/// base64, decoded.
enum PartSource {
    File { path: String, file: crate::bounded::RegularFile },
    Bytes(Vec<u8>),
}

/// Validates a part and reads its bytes within `budget`. A path must name
/// a regular file (a FIFO, device or folder is refused unread) whose
/// base64 can fit what is left of SMTPMaxMessageBytes: a larger one is
/// refused by its size, unread, and no more than that bound + 1 byte is
/// ever read.
pub fn read_part(field: &str, spec: &PartSpec, inline: bool, budget: &mut PartBudget) -> Result<Part> {
    let (source, default_name) = match (&spec.path, &spec.content_base64) {
        (Some(_), Some(_)) => {
            return Err(Error::message_error(format!("{field}: give path or content_base64, not both")))
        }
        (None, None) => return Err(Error::message_error(format!("{field}: path or content_base64 is required"))),
        (Some(path), None) => {
            let p = PathBuf::from(path);
            if !p.is_absolute() {
                return Err(Error::message_error(format!("{field}: path \"{}\" must be absolute", printable(path))));
            }
            let file = crate::bounded::RegularFile::open(&p)
                .map_err(|e| Error::message_error(format!("{field}: cannot read {path}: {e}")))?;
            (PartSource::File { path: path.clone(), file }, p.file_name().map(|n| n.to_string_lossy().into_owned()))
        }
        (None, Some(data)) => {
            let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let bytes = B64
                .decode(compact)
                .map_err(|e| Error::message_error(format!("{field}: content_base64 is not valid base64: {e}")))?;
            (PartSource::Bytes(bytes), None)
        }
    };
    let cid = match (&spec.cid, inline) {
        (Some(cid), true) => {
            let ok = !cid.is_empty() && cid.bytes().all(|b| b.is_ascii_graphic() && !b"<>\"()[]\\,;:".contains(&b));
            if !ok {
                return Err(Error::message_error(format!(
                    "{field}: cid \"{}\" is not a valid content id",
                    printable(cid)
                )));
            }
            Some(cid.clone())
        }
        (None, true) => return Err(Error::message_error(format!("{field}: cid is required for an inline part"))),
        (Some(_), false) => return Err(Error::message_error(format!("{field}: cid belongs to inline parts"))),
        (None, false) => None,
    };
    let name = spec.name.clone().or(default_name).or_else(|| cid.clone()).unwrap_or_else(|| "attachment".into());
    check_text(&name)
        .map_err(|c| Error::message_error(format!("{field}: the name has the control character {c:?}")))?;
    let content_type_text = match &spec.content_type {
        Some(t) => t.clone(),
        None => mime_guess::from_path(&name).first_or_octet_stream().essence_str().to_string(),
    };
    // Old mail clients read the name from Content-Type rather than the
    // RFC 2231 filename* lettre writes in Content-Disposition: give both.
    let content_type_text = if content_type_text.to_ascii_lowercase().contains("name=") {
        content_type_text
    } else {
        format!("{content_type_text}; name={}", name_parameter(&name))
    };
    let content_type = ContentType::parse(&content_type_text).map_err(|_| {
        Error::message_error(format!("{field}: \"{}\" is not a valid content_type", printable(&content_type_text)))
    })?;
    // A message/rfc822 part is a message, which ends with a line break;
    // without one its last line runs into the MIME boundary for some readers.
    let is_message = content_type_text.to_ascii_lowercase().starts_with("message/");
    check_part_header_lines(field, &name, cid.as_deref(), &content_type)?;
    let mut bytes = match source {
        PartSource::File { path, file } => {
            budget.fits(field, &path, file.size, is_message)?; // else refused unread
            let bytes = file.read_at_most(budget.left).map_err(|e| {
                Error::message_error(format!(
                    "{field}: cannot read {path}: {e} (what SMTPMaxMessageBytes of profile {} leaves)",
                    budget.profile
                ))
            })?;
            // The file may have changed since its size was taken.
            budget.take(field, &path, bytes.len() as u64, is_message)?;
            bytes
        }
        PartSource::Bytes(bytes) => {
            budget.take(field, "content_base64", bytes.len() as u64, is_message)?;
            bytes
        }
    };
    if is_message && !bytes.is_empty() && !bytes.ends_with(b"\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    Ok(Part { name, content_type, is_message, bytes, cid })
}

/// The part's own header lines, as lettre writes them, within 998 octets:
/// else `SMTPB_ERR_MESSAGE` naming `field` (a name, cid or content type
/// with a word too long to fold).
fn check_part_header_lines(field: &str, name: &str, cid: Option<&str>, content_type: &ContentType) -> Result<()> {
    let attachment = match cid {
        Some(cid) => Attachment::new_inline_with_name(cid.to_string(), name.to_string()),
        None => Attachment::new(name.to_string()),
    };
    let headers = attachment.body(lettre::message::Body::new(Vec::new()), content_type.clone()).formatted();
    match message_bounds::long_header_line(&headers) {
        Some((header, len)) => Err(Error::message_error(format!(
            "{field}: the part's {header} header would have a line of {len} octets (its name, cid or content_type \
             has a word too long to fold); at most {} are allowed (RFC 5322)",
            message_bounds::MAX_LINE_OCTETS
        ))),
        None => Ok(()),
    }
}

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
fn name_parameter(name: &str) -> String {
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

/// Line ends as LF only: lettre turns every LF into CRLF, so a lone CR
/// must not survive (SMTP smuggling).
fn normalize_newlines(text: &str) -> String {
    if !text.contains('\r') {
        return text.to_string();
    }
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Builds the exact bytes to send. The attachments' and inline parts'
/// bytes move into the message (the spec keeps their names and types), so
/// that a large attachment is not held twice while it is encoded.
pub fn build(spec: &mut MessageSpec, ctx: &BuildContext) -> Result<Vec<u8>> {
    if let Some(raw) = spec.raw.take() {
        return build_raw(raw, ctx);
    }
    let mut large: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
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

    let text = spec.text.as_deref().map(normalize_newlines);
    let html = spec.html.as_deref().map(normalize_newlines);
    let body = match (text, html) {
        (Some(text), None) => Body::Single(SinglePart::plain(text)),
        (text, Some(html)) => {
            let text = text.unwrap_or_else(|| normalize_newlines(&nanohtml2text::html2text(&html)));
            let html_part = SinglePart::html(html);
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
            let alternative = MultiPart::alternative().singlepart(SinglePart::plain(text));
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
            let bytes = std::mem::take(&mut part.bytes);
            let content_type = part.content_type.clone();
            let attachment = Attachment::new(part.name.clone());
            // Large parts are encoded once, straight into the final bytes
            // (see `splice`); not under DKIM, whose body hash lettre
            // computes over the message it holds, nor for message/* parts,
            // which must not be base64 (RFC 2046 §5.2.1).
            mixed = if ctx.dkim.is_none() && bytes.len() >= SPLICE_MIN_BYTES && !part.is_message {
                let token = splice_token()?;
                let placeholder =
                    lettre::message::Body::dangerous_pre_encoded(token.clone(), ContentTransferEncoding::Base64);
                large.push((token, bytes));
                mixed.singlepart(attachment.body(placeholder, content_type))
            } else {
                mixed.singlepart(attachment.body(part_body(bytes, part.is_message), content_type))
            };
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
    splice(formatted, large)
}

/// `SMTPB_ERR_MESSAGE` for a header whose line would be `len` octets after
/// folding, naming the message JSON's field it comes from.
fn long_header_error(spec: &MessageSpec, header: &str, len: usize) -> Error {
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

/// The body of an attachment or inline part. A file's bytes are base64,
/// always: lettre would send bytes that happen to be ASCII as 7bit with
/// their line ends as they are, so the file would not arrive as it was
/// (the DATA writer makes every line end CRLF) and Graph would be given
/// bare line ends. A message/* part may not be base64 (RFC 2046 §5.2.1):
/// as text its line ends become CRLF, as the text bodies' do; bytes that
/// are not UTF-8 lettre sends as base64.
fn part_body(bytes: Vec<u8>, is_message: bool) -> lettre::message::Body {
    if !is_message {
        return lettre::message::Body::new_with_encoding(bytes, ContentTransferEncoding::Base64)
            .unwrap_or_else(lettre::message::Body::new);
    }
    match String::from_utf8(bytes) {
        Ok(text) => lettre::message::Body::new(normalize_newlines(&text)),
        Err(e) => lettre::message::Body::new(e.into_bytes()),
    }
}

/// The bytes of a host's own message: the headers it lacks in front
/// (From, Date, Message-ID, and X-Original-To in test mode), then its own.
fn build_raw(raw: RawMime, ctx: &BuildContext) -> Result<Vec<u8>> {
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

enum Body {
    Single(SinglePart),
    Multi(MultiPart),
}

/// Attachments from this size on are encoded by [`splice`].
const SPLICE_MIN_BYTES: usize = 64 * 1024;
/// Base64 line length, as lettre writes it.
const B64_LINE: usize = 76;

/// A placeholder no message text can contain by chance (128 random bits).
fn splice_token() -> Result<Vec<u8>> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| Error::internal(format!("no random numbers from the OS: {e}")))?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("SMTPBRIDGEPART{hex}").into_bytes())
}

/// The formatted message with each placeholder replaced by its part's
/// base64 (76-character lines, as lettre writes them). Building a large
/// attachment this way holds its bytes and the final message, once each,
/// instead of lettre's encoded copy beside a formatted copy.
fn splice(formatted: Vec<u8>, large: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<u8>> {
    if large.is_empty() {
        return Ok(formatted);
    }
    let encoded_len = |n: usize| {
        let chars = n.div_ceil(3) * 4;
        chars + chars.div_ceil(B64_LINE).saturating_sub(1) * 2
    };
    let total = large.iter().fold(formatted.len(), |t, (token, raw)| t - token.len() + encoded_len(raw.len()));
    let mut out = Vec::with_capacity(total);
    let mut rest = &formatted[..];
    for (token, raw) in large {
        let at =
            memchr::memmem::find(rest, &token).ok_or_else(|| Error::internal("a part placeholder went missing"))?;
        out.extend_from_slice(&rest[..at]);
        let mut line = [0u8; B64_LINE];
        for (i, chunk) in raw.chunks(B64_LINE / 4 * 3).enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n");
            }
            let n = B64.encode_slice(chunk, &mut line).expect("a 76-byte buffer holds 57 bytes of base64");
            out.extend_from_slice(&line[..n]);
        }
        rest = &rest[at + token.len()..];
    }
    out.extend_from_slice(rest);
    debug_assert_eq!(out.len(), total);
    Ok(out)
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

/// The largest DKIM key file read (an 8192-bit RSA key is about 6.5 KiB).
pub(crate) const MAX_DKIM_KEY_BYTES: u64 = 1024 * 1024;

/// Reads a DKIM private key: RSA as PKCS#1 or PKCS#8 PEM, Ed25519 as
/// PKCS#8 PEM. An unusable file (not a regular file, over
/// [`MAX_DKIM_KEY_BYTES`], no key) is `SMTPB_ERR_CONFIG` naming it.
pub fn read_dkim_key(path: &Path) -> Result<lettre::message::dkim::DkimSigningKey> {
    use lettre::message::dkim::{DkimSigningAlgorithm, DkimSigningKey};
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let bad = |why: &str| Error::config(format!("{} is not a usable DKIM key: {why}", path.display()));
    let bytes = zeroize::Zeroizing::new(
        crate::bounded::read(path, MAX_DKIM_KEY_BYTES)
            .map_err(|e| Error::config(format!("cannot read {}: {e}", path.display())))?,
    );
    let pem =
        zeroize::Zeroizing::new(String::from_utf8(bytes.to_vec()).map_err(|_| bad("the file is not text (UTF-8)"))?);
    if pem.contains("BEGIN RSA PRIVATE KEY") {
        return DkimSigningKey::new(&pem, DkimSigningAlgorithm::Rsa).map_err(|_| bad("the RSA key does not parse"));
    }
    if !pem.contains("BEGIN PRIVATE KEY") {
        return Err(bad("a PEM RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8) private key expected"));
    }
    if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_pem(&pem) {
        let pkcs1 =
            key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).map_err(|_| bad("the RSA key cannot be re-encoded"))?;
        return DkimSigningKey::new(&pkcs1, DkimSigningAlgorithm::Rsa).map_err(|_| bad("the RSA key does not parse"));
    }
    // PKCS#8 Ed25519 (RFC 8410): a fixed 16-byte prefix, then the seed.
    const ED25519_PREFIX: [u8; 16] =
        [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = zeroize::Zeroizing::new(B64.decode(body.trim()).map_err(|_| bad("the PEM body is not base64"))?);
    if der.len() == 48 && der[..16] == ED25519_PREFIX {
        let seed = zeroize::Zeroizing::new(B64.encode(&der[16..]));
        return DkimSigningKey::new(&seed, DkimSigningAlgorithm::Ed25519)
            .map_err(|_| bad("the Ed25519 key does not parse"));
    }
    Err(bad("neither an RSA nor an Ed25519 private key"))
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
    fn international_domains_become_a_labels() {
        let a: Address = "user@bücher.example".parse().unwrap();
        assert_eq!(ascii_domain(&a).unwrap().to_string(), "user@xn--bcher-kva.example");
        let a: Address = "user@MÜNCHEN.example".parse().unwrap();
        assert_eq!(ascii_domain(&a).unwrap().to_string(), "user@xn--mnchen-3ya.example");
        let a: Address = "plain@example.com".parse().unwrap();
        assert_eq!(ascii_domain(&a).unwrap(), a);
        let a: Address = "jörg@bücher.example".parse().unwrap();
        assert_eq!(ascii_domain(&a).unwrap().to_string(), "jörg@xn--bcher-kva.example");
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
