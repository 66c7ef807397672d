//! The generated parts of `docs/REFERENCE.md`: the configuration keys
//! (from [`crate::config::KEYS`] and the one-line docs here), the result
//! codes (from [`crate::error::Code`]) and the advice keys ([`ADVICE_DOCS`]).
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
        "SMTPTestSubjectPrefix",
        "Put before the subject of mail that test mode redirects (e.g. `[TEST] `); empty: the subject is kept.",
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
    (
        "SMTPOAuth2Scopes",
        "Space-separated scopes; the default fits the provider and the transport (OpenID: `openid offline_access`).",
    ),
    (
        "SMTPOAuth2Flow",
        "`Interactive` (each user signs in) or `ClientCredentials` (an app token for the shared credential).",
    ),
    (
        "SMTPUsername",
        "Username of the shared credential (the same store as a NULL user); `Name.SMTPUsername` is profile Name's own.",
    ),
    (
        "SMTPPassword",
        "Password of the shared credential, stored encrypted, never read back or exported; `Name.SMTPPassword` is \
         profile Name's own (a profile without its own uses the global one).",
    ),
    ("SMTPTestMode", "Redirect every message to SMTPTestAddresses."),
    ("SMTPTestAddresses", "Addresses, separated by `;` or `,`, that receive every message in test mode."),
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
    (
        "SMTPMasterKeyScope",
        "Windows only (ignored elsewhere): DPAPI scope of `master.key` with a NULL secret, `User` or `Machine` \
         (any account of the machine; a service account always gets `Machine`); applied at the next open.",
    ),
    (
        "SMTPAllowNetworkDataDir",
        "`true` lets an exclusive client open a data_dir on a network file system (SMB/CIFS, NFS, a UNC path), \
         which is otherwise refused with IO; never with `SMTPB_OPEN_SHARED` (read at open).",
    ),
];

/// Every advice key (`"advice": {"key", "text"}`) and what it is
/// recognised from. Keys are stable: hosts may translate them.
pub static ADVICE_DOCS: &[(&str, &str)] = &[
    ("basic_auth_disabled", "535 5.7.139, 550 5.7.30 (to a password), 534 5.7.9 / 5.7.14 (Google): use OAuth2"),
    (
        "smtp_auth_disabled",
        "535 5.7.139, 550 5.7.30 or \"SmtpClientAuthentication is disabled\" answered to XOAUTH2/OAUTHBEARER: \
         SMTP AUTH is off for the mailbox; enable it or use SMTPTransport=Graph (no `needs`)",
    ),
    ("auth_failed", "other 535, 5.7.8"),
    ("auth_mechanism_unsupported", "no common AUTH mechanism, 504 5.7.4"),
    (
        "encryption_mismatch",
        "SSL on a STARTTLS port, None/TLS on port 465, or AUTH refused by the library on a plain connection to a \
         server that offers STARTTLS (names SMTPServerEncryption=TLS)",
    ),
    ("starttls_unavailable", "SMTPServerEncryption=TLS, but the server offers no STARTTLS"),
    ("certificate_untrusted", "a certificate not signed by a trusted authority (names its subject)"),
    ("certificate_name_mismatch", "a certificate not valid for the name checked"),
    ("certificate_expired", "a certificate expired or not valid yet"),
    ("tls_version_too_old", "the server offers only TLS below SMTPMinTlsVersion"),
    ("host_not_found", "DNS found no address for SMTPServer"),
    ("connection_refused", "nothing listens on the port"),
    ("connection_timed_out", "no answer to the connection in time"),
    ("relay_denied", "5.7.1 relaying denied, 550 5.7.57"),
    ("sender_not_allowed", "5.7.60, 5.7.1 \"send as\", Graph ErrorSendAsDenied"),
    ("recipient_unknown", "5.1.1, 5.1.10"),
    ("mailbox_full", "5.2.2, 4.2.2"),
    ("message_too_large", "5.3.4, 552, and the library's own refusal of a message over the server's SIZE"),
    ("throttled", "4.7.x, 452 4.3.x, Graph 429"),
    ("too_many_recipients", "452 4.5.3 (the rest go in further transactions)"),
    ("oauth2_refresh_failed", "the provider refused a refresh (`invalid_grant`): sign the user in again"),
    (
        "not_refreshable",
        "a sign-in that gave no refresh token (in `smtpb_oauth2_complete`'s result): add offline_access to \
         SMTPOAuth2Scopes",
    ),
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
        Kind::Emails => "addresses separated by `;` or `,`".into(),
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
            Scope::Both => "global or profile",
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
    for code in Code::ALL {
        out.push_str(&format!("| {} | `{}` | {} |\n", code as i32, code.name(), code.doc()));
    }
    out
}

/// The advice table of docs/REFERENCE.md.
pub fn advice_markdown() -> String {
    let mut out = String::from("| key | recognised from |\n|---|---|\n");
    for (key, doc) in ADVICE_DOCS {
        out.push_str(&format!("| `{key}` | {doc} |\n"));
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
        let advice = include_str!("advice.rs");
        for (key, _) in ADVICE_DOCS {
            assert!(advice.contains(&format!("\"{key}\"")), "ADVICE_DOCS names {key}, which advice.rs never gives");
        }
        for key in advice.split("Advice::new(\"").skip(1).chain(advice.split("text_for(\"").skip(1)) {
            let key = key.split('"').next().unwrap_or("");
            assert!(ADVICE_DOCS.iter().any(|(k, _)| *k == key), "advice key {key} has no line in ADVICE_DOCS");
        }
    }

    #[test]
    fn reference_md_matches_the_key_table_and_the_codes() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/REFERENCE.md");
        let text = std::fs::read_to_string(&path).expect("docs/REFERENCE.md");
        let fresh = replace_section(&text, "keys", &keys_markdown()).expect("keys markers in docs/REFERENCE.md");
        let fresh = replace_section(&fresh, "codes", &codes_markdown()).expect("codes markers in docs/REFERENCE.md");
        let fresh = replace_section(&fresh, "advice", &advice_markdown()).expect("advice markers in docs/REFERENCE.md");
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
