//! Sent copies for the host's records: a folder per message with
//! `message.html`, each attachment as a file of its own, `message.eml`
//! (the exact bytes sent, DKIM signature included) and `meta.json`.
//!
//! The folder is made from the bytes that went out, read back with a real
//! MIME parser (mail-parser), so what is filed is what was sent. File names
//! are made safe for every file system a host may run on: no path
//! separators or control characters, none of `:*?"<>|`, no trailing dots or
//! spaces, no reserved Windows names; duplicates get ` (2)`, ` (3)`…; full
//! paths stay under 260 UTF-16 units.

use mail_parser::{MessageParser, MimeHeaders};
use serde::Serialize;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::status::ArchivePaths;

/// The longest path Windows handles without long-path support, in UTF-16
/// units, less one for the terminating NUL.
const MAX_PATH_UNITS: usize = 259;

const RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1", "LPT2",
    "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// A file name safe on Windows, macOS and Linux, made from `name`.
pub fn safe_file_name(name: &str) -> String {
    let mut out: String =
        name.chars().map(|c| if c.is_control() || "/\\:*?\"<>|".contains(c) { '_' } else { c }).collect();
    while out.ends_with(['.', ' ']) {
        out.pop();
    }
    let out = out.trim_start().to_string();
    let stem = out.split('.').next().unwrap_or("").trim_end().to_ascii_uppercase();
    if out.is_empty() || out == "." || out == ".." {
        return "attachment".into();
    }
    if RESERVED.contains(&stem.as_str()) {
        return format!("_{out}");
    }
    out
}

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// `name` shortened (keeping its extension) so that `dir/name` fits the
/// path limit.
fn fit(dir: &Path, name: &str) -> String {
    let room = MAX_PATH_UNITS.saturating_sub(utf16_len(&dir.display().to_string()) + 1);
    if utf16_len(name) <= room {
        return name.to_string();
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 16 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let mut stem: String = stem.to_string();
    while !stem.is_empty() && utf16_len(&stem) + utf16_len(ext) > room {
        stem.pop();
    }
    let stem = stem.trim_end_matches(['.', ' ']);
    if stem.is_empty() {
        "a".to_string() + ext
    } else {
        format!("{stem}{ext}")
    }
}

/// A name in `dir` not used yet: `name`, then `name (2)`, `name (3)`…,
/// each shortened to fit the path limit with its number.
fn unique(dir: &Path, name: &str, used: &mut Vec<String>) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let room = MAX_PATH_UNITS.saturating_sub(utf16_len(&dir.display().to_string()) + 1);
    for n in 1..=10_000u32 {
        let suffix = if n == 1 { String::new() } else { format!(" ({n})") };
        let mut short = stem.to_string();
        while !short.is_empty() && utf16_len(&short) + utf16_len(&suffix) + utf16_len(ext) > room {
            short.pop();
        }
        let candidate = format!("{}{suffix}{ext}", short.trim_end_matches(['.', ' ']));
        let lower = candidate.to_lowercase();
        let clash = used.contains(&lower) || ["message.html", "message.eml", "meta.json"].contains(&lower.as_str());
        if !clash {
            used.push(lower);
            return candidate;
        }
    }
    // Ten thousand attachments of one name: number them plainly.
    let candidate = format!("attachment-{}{ext}", used.len() + 1);
    used.push(candidate.to_lowercase());
    candidate
}

/// `meta.json` of a sent copy: what the message's status said when it was
/// sent, the envelope, and what the archive holds. Fields in byte order, as
/// every version wrote them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ArchiveMeta {
    /// The attachments' file names in the folder (filled by [`write`]).
    pub attachments: Vec<String>,
    pub batch_id: Option<String>,
    pub envelope_to: Vec<String>,
    pub from: String,
    /// Graph's HTTP status; null over SMTP.
    pub http_status: Option<u16>,
    pub id: String,
    pub message_id: String,
    pub profile: String,
    pub recipients: Vec<String>,
    pub reference: Option<String>,
    /// RFC 3339 UTC.
    pub sent_at: String,
    pub smtp_response: Option<String>,
    /// The message's Subject as sent (filled by [`write`]).
    pub subject: Option<String>,
    /// `"smtp"` or `"graph"`.
    pub transport: &'static str,
}

/// Files the sent message `bytes` in `root/<id>/`. `meta` is written to
/// `meta.json` with the subject and attachment names added. Returns where
/// the files are (absolute paths), the status's `archive`.
pub fn write(root: &Path, id: &str, bytes: &[u8], mut meta: ArchiveMeta) -> Result<ArchivePaths> {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, &e))?;
    let dir = dir.canonicalize().map_err(|e| Error::io("cannot open", &dir, &e))?;
    let message = MessageParser::default()
        .parse(bytes)
        .ok_or_else(|| Error::internal("the sent message does not parse as MIME"))?;

    // body_html() turns a text body into HTML of its own when there is no
    // HTML part; the text is escaped here instead, every character of it.
    let html_part = message.html_part(0).filter(|p| p.is_text_html());
    let html = match html_part.and_then(|p| p.text_contents()) {
        Some(h) => h.to_string(),
        None => {
            let text = message.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
            let title = crate::message::html_escape(message.subject().unwrap_or(""));
            format!(
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body><pre>{}</pre></body></html>\n",
                crate::message::html_escape(&text)
            )
        }
    };
    let write =
        |path: &PathBuf, data: &[u8]| std::fs::write(path, data).map_err(|e| Error::io("cannot write", path, &e));
    let html_path = dir.join("message.html");
    write(&html_path, html.as_bytes())?;

    let mut used = Vec::new();
    let mut files = Vec::new();
    for part in message.attachments() {
        let name = part.attachment_name().map(str::to_string).unwrap_or_else(|| "attachment".into());
        let name = unique(&dir, &fit(&dir, &safe_file_name(&name)), &mut used);
        let path = dir.join(&name);
        write(&path, part.contents())?;
        files.push(path);
    }
    let eml_path = dir.join("message.eml");
    write(&eml_path, bytes)?;

    meta.attachments = files.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
    meta.subject = message.subject().map(str::to_string);
    let meta_path = dir.join("meta.json");
    write(&meta_path, serde_json::to_string_pretty(&meta).expect("JSON").as_bytes())?;
    Ok(ArchivePaths {
        attachments: files.iter().map(|p| p.display().to_string()).collect(),
        dir: dir.display().to_string(),
        eml: eml_path.display().to_string(),
        html: html_path.display().to_string(),
        meta: meta_path.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_safe() {
        assert_eq!(safe_file_name("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(safe_file_name("a:b*c?.pdf"), "a_b_c_.pdf");
        assert_eq!(safe_file_name("CON.txt"), "_CON.txt");
        assert_eq!(safe_file_name("report. . "), "report");
        assert_eq!(safe_file_name(""), "attachment");
        assert_eq!(safe_file_name("Rechnung Müller.pdf"), "Rechnung Müller.pdf");
    }

    #[test]
    fn long_names_fit_and_duplicates_are_numbered() {
        let dir = Path::new("/tmp/archive/01JD");
        let long = format!("{}.pdf", "x".repeat(400));
        let fitted = fit(dir, &long);
        assert!(fitted.ends_with(".pdf"));
        assert!(utf16_len(&format!("{}/{fitted}", dir.display())) <= MAX_PATH_UNITS);
        let mut used = Vec::new();
        let first = unique(dir, &fit(dir, &long), &mut used);
        let second = unique(dir, &fit(dir, &long), &mut used);
        assert_ne!(first, second);
        assert!(second.ends_with(" (2).pdf") && utf16_len(&format!("{}/{second}", dir.display())) <= MAX_PATH_UNITS);
        assert_eq!(unique(dir, "a.pdf", &mut used), "a.pdf");
        assert_eq!(unique(dir, "A.pdf", &mut used), "A (2).pdf");
        assert_eq!(unique(dir, "meta.json", &mut used), "meta (2).json");
    }
}
