//! Text and name checks every layer uses: printable error text, text
//! without control characters, host names and address literals. Depends
//! on nothing else in the crate.

/// `text` with control characters escaped, for error messages.
pub fn printable(text: &str) -> String {
    text.chars().flat_map(char::escape_debug).collect::<String>().replace("\\\"", "\"")
}

/// Text without control characters other than TAB.
pub fn check_text(text: &str) -> std::result::Result<(), char> {
    match text.chars().find(|c| c.is_control() && *c != '\t') {
        Some(c) => Err(c),
        None => Ok(()),
    }
}

/// A DNS host name (letters, digits, hyphens, dots; labels of 1–63).
pub fn is_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// An IPv4 or IPv6 address, bare or as an SMTP address literal `[…]`.
pub fn is_ip_literal(text: &str) -> bool {
    let inner = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    let inner = inner.strip_prefix("IPv6:").unwrap_or(inner);
    inner.parse::<std::net::IpAddr>().is_ok()
}

/// The name this machine goes by, for EHLO: its host name when that is a
/// valid domain name, else its address literal.
pub fn local_host_name() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    if is_host_name(&name) && name.contains('.') {
        name
    } else if is_host_name(&name) {
        // A bare name ("desktop-42") is rejected by some relays; RFC 5321
        // asks for a fully qualified name or an address literal.
        format!("{name}.localdomain")
    } else {
        "[127.0.0.1]".to_string()
    }
}
