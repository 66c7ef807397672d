//! Each value checked and normalised when it is set, so that the typed
//! view never sees a bad one. Files named by a key (SMTPCaFile,
//! SMTPDkimKeyFile) are read here to check that they parse.

use std::path::PathBuf;

use super::{Key, KeyDef, Kind};
use crate::error::{Error, Result};
use crate::text::{check_text, is_host_name, is_ip_literal, printable};

pub(super) fn normalize_blacklist_entry(entry: &str) -> Result<String> {
    let lower = entry.trim().to_ascii_lowercase();
    let valid = match lower.strip_prefix('@') {
        Some(domain) => is_host_name(domain),
        None => crate::address::parse_address(&lower).is_ok(),
    };
    if valid {
        Ok(lower)
    } else {
        Err(Error::invalid_argument(format!(
            "blacklist entry \"{}\": an address or @domain expected",
            printable(entry)
        )))
    }
}

/// Validates and normalises a value for `def`. `Ok(None)` means "unset"
/// (an empty value for a key where blank is not a value of its own).
pub(super) fn normalize(def: &KeyDef, raw: &str) -> Result<Option<String>> {
    let value = raw.trim();
    let bad = |accepted: &str| Error::config(format!("{}: bad value \"{}\"; {accepted}", def.name, printable(raw)));
    if let Kind::Enum(options) = def.kind {
        let lower = value.to_ascii_lowercase();
        return match options.iter().find(|(_, spellings)| spellings.contains(&lower.as_str())) {
            Some((canonical, _)) => Ok(Some(canonical.to_string())),
            None => {
                let names: Vec<&str> = options.iter().map(|(c, _)| *c).collect();
                let extra = if def.key == Key::SMTPServerEncryption { " (blank = None; STARTTLS = TLS)" } else { "" };
                Err(bad(&format!("accepted values: {}{extra}", names.join(", "))))
            }
        };
    }
    if value.is_empty() && def.kind != Kind::Secret && def.kind != Kind::Text {
        return Ok(None);
    }
    match def.kind {
        Kind::Enum(_) => unreachable!("handled above"),
        Kind::Text => {
            check_text(raw).map_err(|_| bad("text without control characters expected"))?;
            Ok(if raw.is_empty() { None } else { Some(raw.to_string()) })
        }
        Kind::Secret => Ok(Some(raw.to_string())),
        Kind::Url => {
            crate::url::check_url(value, def.name)?;
            Ok(Some(value.trim_end_matches('/').to_string()))
        }
        Kind::Host => {
            if is_host_name(value) || is_ip_literal(value) {
                Ok(Some(value.to_string()))
            } else {
                Err(bad("a host name or an IP address expected"))
            }
        }
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "true" => Ok(Some("true".into())),
            "false" => Ok(Some("false".into())),
            _ => Err(bad("accepted values: true, false")),
        },
        Kind::Number(min, max) => match value.parse::<u64>() {
            Ok(n) if n >= min && n <= max => Ok(Some(n.to_string())),
            _ => Err(bad(&format!("a whole number from {min} to {max} expected"))),
        },
        Kind::Path => absolute_path(def, value).map(|p| Some(p.display().to_string())),
        Kind::CaFile => {
            let path = absolute_path(def, value)?;
            crate::pem::read_ca_file(&path).map_err(|e| e.context(def.name))?;
            Ok(Some(path.display().to_string()))
        }
        Kind::GraphUrl => crate::url::normalize_url(value).map(Some).map_err(|why| bad(&why)),
        Kind::DkimKeyFile => {
            let path = absolute_path(def, value)?;
            crate::pem::read_dkim_key(&path).map_err(|e| e.context(def.name))?;
            Ok(Some(path.display().to_string()))
        }
        Kind::Email => crate::address::parse_address(value)
            .map(|_| Some(value.to_string()))
            .map_err(|_| bad("a mail address expected")),
        Kind::Emails => {
            // Separated by `;` or `,`, display names allowed; kept as bare
            // addresses separated by `,`.
            let list: Vec<String> = crate::address::parse_list(value).into_iter().map(|a| a.email).collect();
            for a in &list {
                crate::address::parse_address(a)
                    .map_err(|_| Error::config(format!("{}: \"{}\" is not a mail address", def.name, printable(a))))?;
            }
            Ok(if list.is_empty() { None } else { Some(list.join(",")) })
        }
        Kind::Filter => {
            let ok = match value.rsplit_once('@') {
                Some((local, domain)) => {
                    is_host_name(domain) && (local.is_empty() || crate::address::parse_address(value).is_ok())
                }
                None => is_host_name(value),
            };
            if ok {
                Ok(Some(value.to_ascii_lowercase()))
            } else {
                Err(bad("a sender domain, @domain or a sender address expected"))
            }
        }
    }
}

fn absolute_path(def: &KeyDef, value: &str) -> Result<PathBuf> {
    let path = PathBuf::from(value);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(Error::config(format!("{}: path \"{}\" must be absolute", def.name, printable(value))))
    }
}
