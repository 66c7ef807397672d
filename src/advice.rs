//! Advice: what to change, recognised from a failure's cause.
//!
//! A failed or deferred status, a connection test's report and
//! `smtpb_send`'s error text carry `{"key", "text"}` when the library
//! recognises the cause. The key is stable (hosts may translate it); the
//! text is English and names the setting to change.
//!
//! Causes are recognised where they are seen: the SMTP code sets a
//! failure's advice for what only it knows (a TLS error, a greeting that
//! never came on an implicit-TLS port, a connect error), and
//! [`for_failure`] falls back to the server's reply
//! ([`from_reply`]: enhanced status codes first, then the reply code).

use crate::config::{AuthModel, Encryption, ProfileSettings};
use crate::failure::{Cause, Failure};
use crate::reply::Reply;

pub use crate::failure::Advice;

/// The advice for a failure: its own, else its recognised cause's, else
/// the one its reply gives.
pub fn for_failure(failure: &Failure, settings: &ProfileSettings) -> Option<Advice> {
    failure
        .advice
        .clone()
        .or_else(|| from_cause(failure.cause.as_ref()?, settings))
        .or_else(|| from_reply(failure.reply.as_ref()?, failure.stage, settings))
}

/// The advice for a cause a transport recognised.
fn from_cause(cause: &Cause, settings: &ProfileSettings) -> Option<Advice> {
    match cause {
        Cause::Key(key) => Some(text_for(key, settings)),
        Cause::Tls { error, subject, checked } => from_tls_error(error, settings, subject.as_deref(), checked),
        Cause::SslOnPlainPort => Some(ssl_on_plain_port(settings)),
        Cause::PlainOnTlsPort => Some(plain_on_tls_port(settings)),
        Cause::PlaintextAuthWithStarttls => Some(plaintext_auth_with_starttls(settings)),
        Cause::MessageTooLarge(limit) => Some(message_too_large(Some(*limit))),
    }
}

/// Recognises a server's reply.
pub fn from_reply(reply: &Reply, stage: &str, settings: &ProfileSettings) -> Option<Advice> {
    let e = reply.enhanced.as_deref().unwrap_or("");
    let code = reply.code;
    let text = reply.text.to_ascii_lowercase();
    let key = if reply.smtp_auth_disabled() && settings.auth_model == AuthModel::OAuth2 {
        // Answered to a token (XOAUTH2, OAUTHBEARER): SMTP AUTH itself is
        // off for the tenant or mailbox; no sign-in can change that.
        "smtp_auth_disabled"
    } else if reply.smtp_auth_disabled() || (code == 534 && matches!(e, "5.7.9" | "5.7.14")) {
        "basic_auth_disabled"
    } else if e == "5.7.4" || (code == 504 && stage == "auth") {
        "auth_mechanism_unsupported"
    } else if code == 535 || e == "5.7.8" {
        "auth_failed"
    } else if e == "5.7.57" || (e == "5.7.1" && text.contains("relay")) {
        "relay_denied"
    } else if e == "5.7.60" || (e == "5.7.1" && text.contains("send as")) {
        "sender_not_allowed"
    } else if e == "4.5.3" {
        "too_many_recipients"
    } else if matches!(e, "5.1.1" | "5.1.10") {
        "recipient_unknown"
    } else if matches!(e, "5.2.2" | "4.2.2") {
        "mailbox_full"
    } else if e == "5.3.4" || code == 552 {
        "message_too_large"
    } else if e.starts_with("4.7.") || (code == 452 && e.starts_with("4.3.")) {
        "throttled"
    } else {
        return None;
    };
    Some(text_for(key, settings))
}

fn host_port(settings: &ProfileSettings) -> String {
    format!("{}:{}", settings.server.as_deref().unwrap_or("the server"), settings.port)
}

fn encryption_name(e: Encryption) -> &'static str {
    match e {
        Encryption::None => "None",
        Encryption::Ssl => "SSL",
        Encryption::StartTls => "TLS",
    }
}

/// A message larger than the server takes; `limit` is the SIZE the
/// server announced, when the library refused the message itself.
pub fn message_too_large(limit: Option<u64>) -> Advice {
    Advice::new(
        "message_too_large",
        format!(
            "The message is larger than the server accepts{}. Send smaller attachments (or a link instead), or \
             lower SMTPMaxMessageBytes to catch this before sending.",
            limit.map(|l| format!(" (SIZE {l} bytes)")).unwrap_or_default()
        ),
    )
}

/// The advice of a key whose text needs only the profile.
pub fn text_for(key: &str, settings: &ProfileSettings) -> Advice {
    let server = host_port(settings);
    let text = match key {
        "basic_auth_disabled" => "The server no longer accepts a password for SMTP (basic authentication is turned \
             off for this mailbox or organisation). Set SMTPAuthModel=OAuth2 and sign the user in, or have the \
             administrator turn SMTP AUTH on for the mailbox."
            .to_string(),
        "smtp_auth_disabled" => "The server refused the OAuth2 token because SMTP AUTH is turned off for this \
             mailbox or organisation (signing in again cannot help). Have the administrator enable \
             authenticated SMTP for the mailbox (Set-CASMailbox -SmtpClientAuthenticationDisabled $false), or set \
             SMTPTransport=Graph to send through Microsoft Graph."
            .to_string(),
        "not_refreshable" => "The provider gave no refresh token, so the sign-in lasts only until the access \
             token expires. Add offline_access to SMTPOAuth2Scopes and sign the user in again."
            .to_string(),
        "auth_failed" => "The server refused the username or password. Check the user's credentials (or \
             SMTPUsername/SMTPPassword); where two-step sign-in is on, use an app password or SMTPAuthModel=OAuth2."
            .to_string(),
        "auth_mechanism_unsupported" => format!(
            "The server offers no authentication method that SMTPAuthModel={} uses. Set SMTPAuthModel to the \
             other value (Basic for PLAIN/LOGIN, OAuth2 for XOAUTH2), or SMTPAuthentication=None if the server \
             needs no login.",
            match settings.auth_model {
                AuthModel::Basic => "Basic",
                AuthModel::OAuth2 => "OAuth2",
            }
        ),
        "relay_denied" => "The server will not pass this mail on for an unauthenticated client. Set \
             SMTPAuthentication=Required with the mailbox's credentials, and send from an address of that mailbox."
            .to_string(),
        "sender_not_allowed" => "The account may not send as this From address. Send from the mailbox's own \
             address (SMTPSenderEmail), or have the administrator grant it Send As permission."
            .to_string(),
        "recipient_unknown" => "The recipient's server says the address does not exist. Check the address for \
             typing errors."
            .to_string(),
        "mailbox_full" => {
            "The recipient's mailbox is full. Try again later, or reach the recipient another way.".to_string()
        }
        "message_too_large" => return message_too_large(None),
        "throttled" => "The server is limiting how fast this account sends; the outbox tries again later. Lower \
             SMTPBatchPerMinute, or set SMTPSendLimit/SMTPSendLimitPeriod to stay under the provider's limit."
            .to_string(),
        "too_many_recipients" => "The server takes fewer recipients per message than this one has; the library \
             sends the accepted recipients and the rest in further transactions. Send to fewer recipients per \
             message if this persists."
            .to_string(),
        "starttls_unavailable" => format!(
            "{server} does not offer STARTTLS, which SMTPServerEncryption=TLS requires. Use port 465 with \
             SMTPServerEncryption=SSL if the server has it; set SMTPServerEncryption=None only on a network \
             you trust."
        ),
        "host_not_found" => format!(
            "The name {} could not be found. Check SMTPServer for typing errors, and the computer's network and \
             DNS.",
            settings.server.as_deref().unwrap_or("of the server")
        ),
        "connection_refused" => format!(
            "{server} refused the connection: nothing listens on that port. Check SMTPServerPort (465 for \
             SMTPServerEncryption=SSL, 587 for TLS, 25), and any firewall."
        ),
        "connection_timed_out" => format!(
            "No answer from {server} in time. A firewall or the internet provider may block that port (port 25 \
             often is): try port 587 with SMTPServerEncryption=TLS, or raise SMTPConnectionTimeout."
        ),
        "oauth2_refresh_failed" => "The user's sign-in is no longer valid (revoked, expired after inactivity, or \
             the password changed). Sign the user in again."
            .to_string(),
        other => format!("See the error for details ({other})."),
    };
    Advice::new(key, text)
}

/// SSL against a port that speaks plain SMTP first (a STARTTLS or plain
/// port): the handshake was answered by SMTP text.
pub fn ssl_on_plain_port(settings: &ProfileSettings) -> Advice {
    let suggestion = if settings.port == 25 {
        "SMTPServerEncryption=TLS (STARTTLS), or port 465 with SSL"
    } else {
        "SMTPServerEncryption=TLS (STARTTLS) for this port, or port 465 with SMTPServerEncryption=SSL"
    };
    Advice::new(
        "encryption_mismatch",
        format!(
            "{} answered the TLS handshake with plain SMTP: the port expects STARTTLS, not implicit TLS. Set {suggestion}.",
            host_port(settings)
        ),
    )
}

/// AUTH refused by the library on a plain connection to a server that
/// offers STARTTLS: encryption is to be had, so that is the advice, not
/// SMTPAllowPlaintextAuth.
pub fn plaintext_auth_with_starttls(settings: &ProfileSettings) -> Advice {
    Advice::new(
        "encryption_mismatch",
        format!(
            "{} offers STARTTLS, but SMTPServerEncryption={} sends the login unencrypted. Set \
             SMTPServerEncryption=TLS (STARTTLS).",
            host_port(settings),
            encryption_name(settings.encryption)
        ),
    )
}

/// TLS/None against a port that waits for a TLS ClientHello (465, or the
/// port SMTPProbePorts maps 465 to).
pub fn plain_on_tls_port(settings: &ProfileSettings) -> Advice {
    Advice::new(
        "encryption_mismatch",
        format!(
            "{} sent no SMTP greeting with SMTPServerEncryption={}: the port expects implicit TLS. Set \
             SMTPServerEncryption=SSL (or use port 587 with SMTPServerEncryption=TLS).",
            host_port(settings),
            encryption_name(settings.encryption)
        ),
    )
}

/// A TLS handshake error; `subject` is the certificate's subject when the
/// server sent one, `name` the name checked.
pub fn from_tls_error(
    error: &rustls::Error,
    settings: &ProfileSettings,
    subject: Option<&str>,
    name: &str,
) -> Option<Advice> {
    use rustls::CertificateError as C;
    let server = host_port(settings);
    let subject = subject.map(|s| format!(" (subject {s})")).unwrap_or_default();
    let advice = match error {
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => Advice::new(
            "certificate_untrusted",
            format!(
                "The certificate of {server}{subject} is not signed by an authority this computer trusts. If the \
                 server uses a private CA, set SMTPCaFile to that CA's PEM file; otherwise the server's \
                 administrator must install a certificate from a public CA."
            ),
        ),
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => Advice::new(
            "certificate_name_mismatch",
            format!(
                "The certificate of {server}{subject} is not valid for the name \"{name}\" that was checked. Set \
                 SMTPServer to a name the certificate carries, or SMTPTlsServerName when SMTPServer is an IP \
                 address."
            ),
        ),
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => Advice::new(
            "certificate_expired",
            format!(
                "The certificate of {server}{subject} (checked for \"{name}\") has expired or is not valid yet. \
                 The server's administrator must renew it; check this computer's date and time too."
            ),
        ),
        rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion)
        | rustls::Error::PeerIncompatible(_) => Advice::new(
            "tls_version_too_old",
            format!(
                "{server} offers only TLS versions below the library's minimum (SMTPMinTlsVersion={}; the library \
                 never uses TLS below 1.2). Set SMTPMinTlsVersion=1.2 if it is 1.3; otherwise the server must be \
                 updated.",
                if settings.min_tls13 { "1.3" } else { "1.2" }
            ),
        ),
        rustls::Error::InvalidMessage(_) if settings.encryption == Encryption::Ssl => ssl_on_plain_port(settings),
        _ => return None,
    };
    Some(advice)
}

/// An OAuth2 token endpoint's error (`invalid_grant`, …).
pub fn from_oauth_error(error: &str, settings: &ProfileSettings) -> Option<Advice> {
    (error == "invalid_grant").then(|| text_for("oauth2_refresh_failed", settings))
}

/// A Microsoft Graph refusal: HTTP status and Graph's error code.
pub fn from_graph(http_status: u16, code: &str, settings: &ProfileSettings) -> Option<Advice> {
    match (http_status, code) {
        (_, "ErrorSendAsDenied") => Some(text_for("sender_not_allowed", settings)),
        (429, _) => Some(text_for("throttled", settings)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, enhanced: &str, text: &str) -> Reply {
        Reply { code, enhanced: (!enhanced.is_empty()).then(|| enhanced.to_string()), text: text.into(), lines: vec![] }
    }

    fn settings() -> ProfileSettings {
        let mut c = crate::config::Config::new();
        c.set("SMTPServer", Some("mail.example.com")).unwrap();
        ProfileSettings::clone(&c.settings("Default").unwrap())
    }

    #[test]
    fn replies_are_recognised() {
        let s = settings();
        let cases = [
            (535, "5.7.139", "basic_auth_disabled"),
            (550, "5.7.30", "basic_auth_disabled"),
            (534, "5.7.9", "basic_auth_disabled"),
            (534, "5.7.14", "basic_auth_disabled"),
            (535, "5.7.8", "auth_failed"),
            (535, "", "auth_failed"),
            (504, "5.7.4", "auth_mechanism_unsupported"),
            (550, "5.7.57", "relay_denied"),
            (550, "5.7.60", "sender_not_allowed"),
            (550, "5.1.1", "recipient_unknown"),
            (550, "5.1.10", "recipient_unknown"),
            (552, "5.2.2", "mailbox_full"),
            (452, "4.2.2", "mailbox_full"),
            (552, "5.3.4", "message_too_large"),
            (552, "", "message_too_large"),
            (421, "4.7.0", "throttled"),
            (451, "4.7.500", "throttled"),
            (452, "4.3.1", "throttled"),
            (452, "4.5.3", "too_many_recipients"),
        ];
        for (code, e, key) in cases {
            let a = from_reply(&reply(code, e, "x"), "rcpt", &s).unwrap_or_else(|| panic!("{code} {e}"));
            assert_eq!(a.key, key, "{code} {e}");
        }
        assert_eq!(from_reply(&reply(550, "5.7.1", "Relaying denied"), "rcpt", &s).unwrap().key, "relay_denied");
        let disabled = reply(535, "", "SmtpClientAuthentication is disabled for the Tenant.");
        assert_eq!(from_reply(&disabled, "auth", &s).unwrap().key, "basic_auth_disabled");
        let mut oauth = s.clone();
        oauth.auth_model = AuthModel::OAuth2;
        for r in [reply(535, "5.7.139", "Authentication unsuccessful"), reply(550, "5.7.30", "x"), disabled] {
            let a = from_reply(&r, "auth", &oauth).unwrap();
            assert_eq!(a.key, "smtp_auth_disabled");
            assert!(a.text.contains("SMTPTransport=Graph"), "{}", a.text);
        }
        assert_eq!(from_reply(&reply(535, "5.7.3", "x"), "auth", &oauth).unwrap().key, "auth_failed");
        assert!(message_too_large(Some(1000)).text.contains("SIZE 1000"));
        assert!(from_reply(&reply(451, "4.4.1", "x"), "rcpt", &s).is_none());
        assert_eq!(from_oauth_error("invalid_grant", &s).unwrap().key, "oauth2_refresh_failed");
        assert_eq!(from_graph(403, "ErrorSendAsDenied", &s).unwrap().key, "sender_not_allowed");
        assert_eq!(from_graph(429, "", &s).unwrap().key, "throttled");
    }

    #[test]
    fn mismatch_texts_name_the_setting() {
        let s = settings();
        assert!(ssl_on_plain_port(&s).text.contains("SMTPServerEncryption=TLS"));
        assert!(plain_on_tls_port(&s).text.contains("SMTPServerEncryption=SSL"));
        assert!(plain_on_tls_port(&s).text.contains("mail.example.com:25"));
        let a = plaintext_auth_with_starttls(&s);
        assert_eq!(a.key, "encryption_mismatch");
        assert!(a.text.contains("SMTPServerEncryption=TLS") && !a.text.contains("SMTPAllowPlaintextAuth"));
    }
}
