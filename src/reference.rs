//! The generated parts of `docs/REFERENCE.md`: the configuration keys
//! (from [`crate::config::KEYS`] and the one-line docs here) and the result
//! codes (from [`crate::error::Code`]).
//!
//! A unit test keeps the document in step with the code: it fails when the
//! tables in docs/REFERENCE.md differ from what [`keys_markdown`] and
//! [`codes_markdown`] make, or when a key or code has no doc line here. Run
//! `SMTPBRIDGE_BLESS=1 cargo test --lib reference` to rewrite them.

use crate::config::{Kind, Scope, KEYS};
use crate::error::Code;

/// What each key is for, by name. Every key of [`KEYS`] has one line.
pub static KEY_DOCS: &[(&str, &str)] = &[
    ("SMTPServer", "Host name or IP address of the SMTP server; required to send over SMTP."),
    ("SMTPServerPort", "TCP port; default 465 for SSL, 587 for TLS, 25 for None."),
    (
        "SMTPServerEncryption",
        "Blank or `None`: plain; `SSL`: implicit TLS; `TLS` or `STARTTLS`: STARTTLS, required, never falls back.",
    ),
    ("SMTPAuthentication", "`Required`, `None`, or `Optional` (username required, password may be empty)."),
    ("SMTPAuthModel", "`Basic` (AUTH PLAIN/LOGIN with a password) or `OAuth2` (XOAUTH2/OAUTHBEARER with a token)."),
    ("SMTPCredentials", "`PerUser`: the message's `user`'s credential; `Shared`: the shared (NULL-user) credential."),
    ("SMTPTransport", "`SMTP`, or `Graph`: Microsoft Graph sendMail (files the copy in Sent Items; needs OAuth2)."),
    ("SMTPGraphUrl", "Graph base URL."),
    ("SMTPGraphSaveToSentItems", "Graph files a copy in the sender's Sent Items."),
    ("SMTPGraphMailbox", "Mailbox to send as with SMTPOAuth2Flow=ClientCredentials; default: the sender's address."),
    ("SMTPSenderName", "Display name of the default sender."),
    ("SMTPSenderEmail", "Default From address, for messages without `from`."),
    ("SMTPReplyTo", "Default Reply-To address."),
    (
        "SMTPConnectionTimeout",
        "Milliseconds: one deadline up to a session ready for MAIL, then one per command's reply.",
    ),
    ("SMTPBatchPerMinute", "Messages per minute through this profile; 0 = unlimited."),
    ("SMTPSendLimit", "Recipients per rolling SMTPSendLimitPeriod; 0 = no limit."),
    ("SMTPSendLimitPeriod", "`None`, `Hour`, `Day` or `Week`: the rolling period of SMTPSendLimit."),
    ("SMTPEnabled", "The profile is used for sending."),
    ("SMTPDefault", "The default profile (setting it clears it on every other profile)."),
    ("SMTPFilter", "Sender domain, `@domain` or full address whose messages this profile sends."),
    ("SMTPMinTlsVersion", "Lowest TLS version accepted: `1.2` or `1.3`."),
    ("SMTPCaFile", "Absolute path of a PEM file (a regular file, at most 16 MiB) of roots trusted besides the operating system's."),
    ("SMTPTlsServerName", "Name to verify in the certificate when SMTPServer is an IP address."),
    ("SMTPAcceptInvalidCertificates", "Testing only: accept any certificate (logged as a warning)."),
    ("SMTPAllowPlaintextAuth", "Permit AUTH over a connection without TLS."),
    ("SMTPHeloName", "Name sent with EHLO; default: the local host name."),
    ("SMTPDkimDomain", "DKIM signing domain (d=); signing is on when domain, selector and key file are set."),
    ("SMTPDkimSelector", "DKIM selector (s=)."),
    (
        "SMTPDkimKeyFile",
        "Absolute path of the DKIM private key (a regular file, at most 1 MiB): RSA (PKCS#1 or PKCS#8 PEM) or Ed25519 (PKCS#8 PEM).",
    ),
    ("SMTPArchiveDir", "Folder for sent copies; when set, every message of the profile is archived."),
    (
        "SMTPMaxMessageBytes",
        "Largest message accepted, in bytes of MIME; an attachment that cannot fit is refused by its size, unread.",
    ),
    (
        "SMTPOAuth2Provider",
        "`None` (the host supplies tokens), `Microsoft`, `Google` or `OpenID`: who signs users in (SMTPAuthModel=OAuth2).",
    ),
    (
        "SMTPOAuth2Issuer",
        "Issuer URL; its `/.well-known/openid-configuration` gives the endpoints. Default: Microsoft's or Google's.",
    ),
    ("SMTPOAuth2Tenant", "Microsoft tenant: `organizations`, `common`, `consumers`, a domain or a GUID."),
    ("SMTPOAuth2ClientId", "The application's client id (required with a provider)."),
    ("SMTPOAuth2ClientSecret", "Client secret of a confidential client; stored encrypted, never read back or exported."),
    ("SMTPOAuth2Scopes", "Space-separated scopes; the default fits the provider and the transport."),
    (
        "SMTPOAuth2Flow",
        "`Interactive` (each user signs in) or `ClientCredentials` (an app token for the shared credential).",
    ),
    ("SMTPUsername", "Username of the shared credential (the same store as a NULL user)."),
    ("SMTPPassword", "Password of the shared credential; stored encrypted, never read back or exported."),
    ("SMTPTestMode", "Redirect every message to SMTPTestAddresses."),
    ("SMTPTestAddresses", "Comma-separated addresses that receive every message in test mode."),
    ("SMTPRetryInitialMs", "First retry delay of the outbox, in ms (doubled per attempt, with jitter)."),
    ("SMTPRetryMaxMs", "Longest retry delay, in ms."),
    ("SMTPRetryMaxAgeMs", "A message still not delivered after this many ms fails with its last error."),
    ("SMTPDeliveryThreads", "Background delivery threads of the outbox (read at open)."),
    ("SMTPShutdownGraceMs", "Grace for transactions under way when a client is closed, in ms."),
    ("SMTPKeepSentDays", "Days a `sent` or `cancelled` status (and its transcript) is kept; 0 = for ever."),
    ("SMTPKeepFailedDays", "Days a `failed` status (and its transcript) is kept; 0 = for ever."),
    (
        "SMTPLogFile",
        "Absolute path of a log file (a regular file, opened when set), rotated at SMTPLogMaxBytes with 5 old files kept.",
    ),
    ("SMTPLogLevel", "Lowest level written to SMTPLogFile."),
    ("SMTPLogMaxBytes", "Size at which SMTPLogFile is rotated."),
    ("SMTPTranscript", "Keep the redacted SMTP dialogue of `Failures` (deferred or failed messages), `All`, or `Off`."),
    (
        "SMTPProbePorts",
        "Ports `smtpb_probe` tries instead of 465, 587 and 25, as `465=10465,587=10587,25=10025` (for tests); \
         the port for 465 is also treated as implicit TLS when sending.",
    ),
];

/// What each result code means.
pub static CODE_DOCS: &[(Code, &str)] = &[
    (Code::Ok, "success"),
    (Code::InvalidArgument, "NULL, invalid UTF-8, malformed JSON, unknown field, wrong JSON type"),
    (Code::Config, "unknown key, bad value, conflicting or incomplete configuration, no profile fits"),
    (Code::Credentials, "no credentials for the user, wrong master secret, tampered store"),
    (Code::Connect, "no session: DNS, TCP connect, no/slow/garbled greeting or EHLO, within the deadline"),
    (Code::Tls, "handshake or certificate failure; STARTTLS required but not offered or refused; bytes injected"),
    (Code::Auth, "the server refused authentication, or AUTH would go over plaintext"),
    (Code::Rejected, "a permanent 5xx for the message (or for every recipient)"),
    (Code::Transient, "a 4xx, or an established session that broke or stalled"),
    (Code::Message, "invalid message: bad address, control character in a header, bad attachment, no body, too large"),
    (Code::NotFound, "unknown message id, batch, profile or user"),
    (Code::Limit, "a send limit is reached"),
    (Code::Blocked, "every recipient is on the blacklist"),
    (Code::Io, "data directory, spool, archive or file I/O failed; a store of a newer format"),
    (Code::Timeout, "a wait, flush or shutdown ran out of time (the work itself goes on)"),
    (Code::State, "not possible in the current state (cancel a sent message, a call after shutdown)"),
    (Code::Busy, "the data directory is held by another client (the message names pid, host, user)"),
    (Code::Internal, "a bug: a caught panic or broken invariant"),
];

/// The values a key accepts, for the reference table.
fn values(kind: &Kind) -> String {
    match kind {
        Kind::Text => "text".into(),
        Kind::Host => "host name or IP".into(),
        Kind::Enum(groups) => groups
            .iter()
            .map(
                |(name, spellings)| {
                    if spellings.contains(&"") {
                        format!("`{name}` (or blank)")
                    } else {
                        format!("`{name}`")
                    }
                },
            )
            .collect::<Vec<_>>()
            .join(", "),
        Kind::Bool => "`true`, `false`".into(),
        Kind::Number(low, high) => format!("{low}–{high}"),
        Kind::Path => "absolute path".into(),
        Kind::Url | Kind::GraphUrl => "URL (`http://` only for loopback)".into(),
        Kind::CaFile => "absolute path (PEM certificates)".into(),
        Kind::DkimKeyFile => "absolute path (PEM private key)".into(),
        Kind::Email => "mail address".into(),
        Kind::Emails => "comma-separated addresses".into(),
        Kind::Filter => "domain, `@domain` or address".into(),
        Kind::Secret => "secret (write-only)".into(),
    }
}

fn key_doc(name: &str) -> Option<&'static str> {
    KEY_DOCS.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}

/// The configuration-key table of docs/REFERENCE.md.
pub fn keys_markdown() -> String {
    let mut out = String::from("| key | scope | values | default | what it is for |\n|---|---|---|---|---|\n");
    for key in KEYS {
        let scope = match key.scope {
            Scope::Global => "global",
            Scope::Profile => "profile",
        };
        let default = match key.default {
            Some("") | None => "—".to_string(),
            Some(d) => format!("`{d}`"),
        };
        let doc = key_doc(key.name).unwrap_or("");
        out.push_str(&format!("| {} | {scope} | {} | {default} | {doc} |\n", key.name, values(&key.kind)));
    }
    out
}

/// The result-code table of docs/REFERENCE.md.
pub fn codes_markdown() -> String {
    let mut out = String::from("| code | name | meaning |\n|---|---|---|\n");
    for (code, doc) in CODE_DOCS {
        out.push_str(&format!("| {} | `{}` | {doc} |\n", *code as i32, code.name()));
    }
    out
}

/// `text` with what stands between `<!-- begin NAME -->` and
/// `<!-- end NAME -->` replaced by `body`; `None` if the markers are missing.
pub fn replace_section(text: &str, name: &str, body: &str) -> Option<String> {
    let begin = format!("<!-- begin {name} (generated by src/reference.rs) -->\n");
    let end = format!("<!-- end {name} -->");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    Some(format!("{}{body}{}", &text[..start], &text[stop..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_and_code_has_a_doc_line() {
        for key in KEYS {
            assert!(key_doc(key.name).is_some(), "{} has no line in reference::KEY_DOCS", key.name);
        }
        for (name, _) in KEY_DOCS {
            assert!(KEYS.iter().any(|k| k.name == *name), "KEY_DOCS names {name}, which is not a key");
        }
        for code in Code::ALL {
            assert!(CODE_DOCS.iter().any(|(c, _)| *c == code), "{} has no line in CODE_DOCS", code.name());
        }
    }

    #[test]
    fn reference_md_matches_the_key_table_and_the_codes() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/REFERENCE.md");
        let text = std::fs::read_to_string(&path).expect("docs/REFERENCE.md");
        let fresh = replace_section(&text, "keys", &keys_markdown()).expect("keys markers in docs/REFERENCE.md");
        let fresh = replace_section(&fresh, "codes", &codes_markdown()).expect("codes markers in docs/REFERENCE.md");
        if fresh != text {
            if std::env::var_os("SMTPBRIDGE_BLESS").is_some() {
                std::fs::write(&path, fresh).expect("write docs/REFERENCE.md");
            } else {
                panic!(
                    "docs/REFERENCE.md is out of date with the key table or the result codes: \
                     run SMTPBRIDGE_BLESS=1 cargo test --lib reference, and commit it"
                );
            }
        }
    }
}
