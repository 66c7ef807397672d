//! A mail as a drop-in receives it (Simple MAPI's `MapiMessage`, COM's
//! `MailItem`), made into the library's message JSON (ABI.md §6), so that
//! both drop-ins hand the core exactly what a C ABI host would.

use serde_json::{json, Map, Value};
use smtpbridge::address::parse_address;
use smtpbridge::{Code, Error, Result};

/// Where a recipient goes (MAPI's `ulRecipClass`, Outlook's `Recipient.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    To,
    Cc,
    Bcc,
}

impl Class {
    fn field(self) -> &'static str {
        match self {
            Class::To => "to",
            Class::Cc => "cc",
            Class::Bcc => "bcc",
        }
    }
}

/// A recipient: an address as typed (`a@x`, `Name <a@x>`, several with
/// `;`) or an address with a separate display name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// Text as an Outlook user types it; the core splits and reads it.
    Typed(String),
    /// One address and its display name (empty = none).
    Named { email: String, name: String },
}

/// The body: text or HTML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Text(String),
    Html(String),
}

impl Body {
    /// MAPI's `lpszNoteText` has no type: HTML when it looks like HTML.
    pub fn guess(text: String) -> Body {
        if looks_like_html(&text) {
            Body::Html(text)
        } else {
            Body::Text(text)
        }
    }
}

/// A file to attach: its path (read when the mail is queued) and the name
/// the recipient sees (default: the file's name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub path: String,
    pub name: Option<String>,
}

/// A mail from a drop-in. The sender is optional: the profile's
/// SMTPSenderEmail / SMTPSenderName stand in for it (ABI.md §20).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mail {
    pub from: Option<Recipient>,
    pub recipients: Vec<(Class, Recipient)>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub body: Option<Body>,
    pub attachments: Vec<Attachment>,
    /// Headers of the host's own (`Importance` from COM).
    pub headers: Vec<(String, String)>,
}

/// Whether a note's text is HTML: it names one of the elements every HTML
/// mail body uses. Plain text that merely mentions `<` does not.
pub fn looks_like_html(text: &str) -> bool {
    const MARKERS: [&str; 12] = [
        "<!doctype html",
        "<html",
        "<body",
        "<p>",
        "<p ",
        "<br>",
        "<br/>",
        "<br />",
        "<div",
        "<table",
        "<span",
        "</a>",
    ];
    let lower = text.to_ascii_lowercase();
    MARKERS.iter().any(|m| lower.contains(m))
}

/// Takes off the address type a MAPI client may put before an address
/// (`SMTP:a@x`, `smtp:a@x`).
pub fn strip_address_type(address: &str) -> &str {
    match address.split_once(':') {
        Some((kind, rest)) if kind.eq_ignore_ascii_case("smtp") => rest,
        _ => address,
    }
}

impl Mail {
    /// Checks the things a drop-in reports with its own codes, before the
    /// core sees the mail: every recipient address is valid (MESSAGE
    /// naming it) and every attachment is an existing file (NOT_FOUND
    /// naming it; nothing is queued then).
    pub fn check(&self) -> Result<()> {
        for (_, recipient) in &self.recipients {
            if let Recipient::Named { email, .. } = recipient {
                parse_address(email)?;
            }
        }
        for attachment in &self.attachments {
            let path = std::path::Path::new(&attachment.path);
            if !path.is_file() {
                return Err(Error::new(Code::NotFound, format!("attachment {}: no such file", attachment.path)));
            }
        }
        Ok(())
    }

    /// The message JSON of ABI.md §6.
    pub fn to_json(&self) -> String {
        let mut message = Map::new();
        if let Some(from) = &self.from {
            message.insert("from".into(), recipient_json(from));
        }
        for class in [Class::To, Class::Cc, Class::Bcc] {
            let list: Vec<Value> =
                self.recipients.iter().filter(|(c, _)| *c == class).map(|(_, r)| recipient_json(r)).collect();
            if !list.is_empty() {
                message.insert(class.field().into(), Value::Array(list));
            }
        }
        if let Some(reply_to) = self.reply_to.as_deref().filter(|r| !r.trim().is_empty()) {
            message.insert("reply_to".into(), json!(reply_to));
        }
        message.insert("subject".into(), json!(self.subject));
        match &self.body {
            Some(Body::Html(html)) => message.insert("html".into(), json!(html)),
            Some(Body::Text(text)) => message.insert("text".into(), json!(text)),
            // The core requires a body: an empty note is an empty text.
            None => message.insert("text".into(), json!("")),
        };
        if !self.attachments.is_empty() {
            let files = self
                .attachments
                .iter()
                .map(|a| match a.name.as_deref().filter(|n| !n.is_empty()) {
                    Some(name) => json!({"path": a.path, "name": name}),
                    None => json!({"path": a.path}),
                })
                .collect();
            message.insert("attachments".into(), Value::Array(files));
        }
        if !self.headers.is_empty() {
            let headers = self.headers.iter().map(|(name, value)| (name.clone(), json!(value))).collect();
            message.insert("headers".into(), Value::Object(headers));
        }
        Value::Object(message).to_string()
    }
}

fn recipient_json(recipient: &Recipient) -> Value {
    match recipient {
        Recipient::Typed(text) => json!(text),
        Recipient::Named { email, name } if name.is_empty() || name == email => json!(email),
        Recipient::Named { email, name } => json!({"email": email, "name": name}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_recognised_by_its_elements() {
        assert!(looks_like_html("<html><body>Hi</body></html>"));
        assert!(looks_like_html("Dear client,<BR>your invoice"));
        assert!(looks_like_html("<p>Hello</p>"));
        assert!(!looks_like_html("Amount < 100 and > 50"));
        assert!(!looks_like_html("Dear client,\r\nyour invoice."));
    }

    #[test]
    fn address_type_is_taken_off() {
        assert_eq!(strip_address_type("SMTP:a@example.com"), "a@example.com");
        assert_eq!(strip_address_type("smtp:a@example.com"), "a@example.com");
        assert_eq!(strip_address_type("a@example.com"), "a@example.com");
    }

    #[test]
    fn json_has_recipients_by_class_names_and_files() {
        let mail = Mail {
            from: None,
            recipients: vec![
                (Class::Bcc, Recipient::Named { email: "c@example.com".into(), name: "".into() }),
                (Class::To, Recipient::Named { email: "a@example.com".into(), name: "Müller, Hans".into() }),
                (Class::Cc, Recipient::Typed("B <b@example.com>; d@example.com".into())),
            ],
            reply_to: None,
            subject: "Invoice".into(),
            body: Some(Body::guess("<p>Hi</p>".into())),
            attachments: vec![
                Attachment { path: "/tmp/a.pdf".into(), name: Some("Rechnung.pdf".into()) },
                Attachment { path: "/tmp/b.txt".into(), name: None },
            ],
            headers: vec![("Importance".into(), "High".into())],
        };
        let value: Value = serde_json::from_str(&mail.to_json()).unwrap();
        assert_eq!(
            value,
            json!({
                "to": [{"email": "a@example.com", "name": "Müller, Hans"}],
                "cc": ["B <b@example.com>; d@example.com"],
                "bcc": ["c@example.com"],
                "subject": "Invoice",
                "html": "<p>Hi</p>",
                "attachments": [{"path": "/tmp/a.pdf", "name": "Rechnung.pdf"}, {"path": "/tmp/b.txt"}],
                "headers": {"Importance": "High"}
            })
        );
    }

    #[test]
    fn check_names_a_missing_file_and_a_bad_address() {
        let mut mail = Mail {
            recipients: vec![(Class::To, Recipient::Named { email: "a@example.com".into(), name: "A".into() })],
            attachments: vec![Attachment { path: "/nonexistent/smtpbridge/x.pdf".into(), name: None }],
            ..Mail::default()
        };
        let error = mail.check().unwrap_err();
        assert_eq!(error.code(), Code::NotFound);
        assert!(error.message().contains("/nonexistent/smtpbridge/x.pdf"), "{}", error.message());
        mail.attachments.clear();
        mail.recipients.push((Class::Cc, Recipient::Named { email: "not an address".into(), name: "".into() }));
        let error = mail.check().unwrap_err();
        assert_eq!(error.code(), Code::Message);
        assert!(error.message().contains("not an address"), "{}", error.message());
    }
}
