//! Attachments and inline parts: read from a file or base64 within the
//! message's budget, their names and header lines checked.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use lettre::message::header::ContentType;
use lettre::message::Attachment;
use std::path::PathBuf;

use super::*;
use crate::error::{Error, Result};
use crate::message_bounds::{self, PartBudget};
use crate::text::{check_text, printable};

/// Where a part's bytes come from: a file not read yet, or the host's
/// base64, decoded.
pub(super) enum PartSource {
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
pub(super) fn check_part_header_lines(
    field: &str,
    name: &str,
    cid: Option<&str>,
    content_type: &ContentType,
) -> Result<()> {
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
