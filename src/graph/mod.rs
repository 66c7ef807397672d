//! Microsoft Graph sendMail as a transport (ABI §14).
//!
//! The message is the same MIME the pipeline built for SMTP (no DKIM
//! signature: Exchange signs what it sends itself). It goes base64-encoded
//! as `text/plain` to `POST {SMTPGraphUrl}/me/sendMail` (the signed-in
//! user) or `/users/{mailbox}/sendMail` (ClientCredentials: SMTPGraphMailbox,
//! else the sender), which files the copy in Sent Items.
//!
//! A MIME of more than 3 MB does not fit Graph's 4 MB request limit once
//! base64-encoded. It goes as a draft instead: the MIME without its
//! largest attachments (`POST /messages`), each of those attached by an
//! upload session (`createUploadSession`, then `PUT`s of 10 × 320 KiB to
//! the session's pre-authenticated URL) or, under 3 MB, by a plain
//! `POST /attachments`, then `POST /messages/{id}/send`. The draft path
//! is also taken when SMTPGraphSaveToSentItems is false: MIME sendMail has
//! no `saveToSentItems`, so the draft gets PidTagDeleteAfterSubmit
//! (`Boolean 0x0E01`), which tells Exchange to keep no copy.
//!
//! Graph takes a MIME message's recipients from its To, Cc and Bcc headers,
//! not from an envelope; so before it is posted, the headers are made to
//! name exactly the pipeline's envelope (after blacklist and test mode):
//! To and Cc keep the addresses that are in it, the rest of the envelope
//! goes in Bcc, which Exchange never shows to recipients.
//!
//! Outcomes: 2xx sent (`http_status`); 401 refreshes the token once and
//! tries again, then AUTH with the token refused; 400, 403, 404, 413 and
//! other 4xx REJECTED with Graph's `error.code` and `error.message`; 408,
//! 429 and 5xx TRANSIENT, never retried before `Retry-After`; a connection
//! that broke after a sending request was written: TRANSIENT with
//! `possible_duplicate`. Every request is bounded by SMTPConnectionTimeout
//! and goes over one pooled keep-alive connection per profile.

// A failure carries replies and recipients; it is the rare path, and
// boxing it would buy nothing (as in smtp.rs).
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::ProfileSettings;
use crate::delivery::{Delivery, Failure, Identity, Refresh, TestReport, Transport};
use crate::error::{Code, Error, Result};
use crate::smtp::{Login, Mail};

mod api;
mod mime;
mod send;

use api::*;
pub use mime::{recipients_in_headers, split_attachments, Extracted};

/// The most MIME that goes in one sendMail: 3 MB, so that its base64 stays
/// under Graph's 4 MB request limit.
pub(crate) const SIMPLE_LIMIT: usize = 3_000_000;
/// An attachment this large goes by an upload session (Graph: "between
/// 3 MB and 150 MB"); a smaller one by `POST /attachments`.
const UPLOAD_SESSION_MIN: usize = 3 * 1024 * 1024;
/// The bytes of one upload `PUT`: a multiple of 320 KiB, under 4 MB.
pub(crate) const UPLOAD_CHUNK: usize = 10 * 320 * 1024;
/// The most of an error body that is read.
const MAX_ERROR_BODY: u64 = 64 * 1024;
/// Named "transport" in statuses and failures.
const NAME: &str = "graph";

/// The Graph transport of one client: an HTTP agent (connection pool) per
/// profile settings.
#[derive(Default)]
pub struct Graph {
    agents: Mutex<HashMap<u64, Arc<Link>>>,
}

/// The connection of one profile: its agent, and a lock that lets one
/// message at a time use it, so that the profile's mail goes over one
/// keep-alive connection (Graph also limits concurrent requests per
/// mailbox).
struct Link {
    agent: ureq::Agent,
    turn: Mutex<()>,
}

impl Transport for Graph {
    fn check(&self, settings: &ProfileSettings) -> Result<()> {
        settings.check_transport()
    }

    fn name(&self) -> &'static str {
        "graph"
    }

    fn signs_dkim(&self) -> bool {
        false
    }

    fn send(
        &self,
        settings: &ProfileSettings,
        _identity: &Identity,
        login: Option<&Login>,
        mail: &Mail,
    ) -> std::result::Result<Delivery, Failure> {
        self.send_message(settings, login, mail).map_err(|mut f| {
            if f.advice.is_none() {
                let code = f.server_code.as_deref().unwrap_or("");
                f.advice = f.http_status.and_then(|status| crate::advice::from_graph(status, code, settings));
            }
            f
        })
    }

    fn test(&self, settings: &ProfileSettings, login: Option<&Login>, refresh: Refresh) -> TestReport {
        let mut stage = "connect";
        let mut http_status = None;
        let mut mailbox = None;
        let result = (|| -> Result<()> {
            settings.check_transport()?;
            let url = mailbox_url(settings, settings.sender_email.as_deref())?;
            let link = self.link(settings).map_err(|f| f.error())?;
            let agent = &link.agent;
            let mut token = login
                .map(|l| l.secret.clone())
                .ok_or_else(|| Error::credentials(format!("profile {}: Graph needs an OAuth2 token", settings.name)))?;
            let mut refreshed = false;
            loop {
                stage = if settings.graph_url.starts_with("https:") { "tls" } else { "connect" };
                let request = Request {
                    method: "GET",
                    url: &url,
                    token: Some(&token),
                    content_type: None,
                    content_range: None,
                    body: b"",
                    sending: false,
                };
                let reply = match self.call(agent, request) {
                    Ok(r) => r,
                    Err(f) => {
                        stage = if f.code == Code::Connect { "connect" } else { stage };
                        return Err(f.error());
                    }
                };
                stage = "auth";
                http_status = Some(reply.status);
                match expect(&reply, &[200], "reading the mailbox") {
                    Ok(_) => {
                        let v = reply.json();
                        mailbox = v["mail"].as_str().or(v["userPrincipalName"].as_str()).map(str::to_string);
                        stage = "done";
                        return Ok(());
                    }
                    Err(f) if f.token_refused && !refreshed => {
                        refreshed = true;
                        match refresh() {
                            Ok(Some(fresh)) if fresh.secret != token => token = fresh.secret,
                            Err(r) if !r.token_refused && r.code != Code::Credentials => return Err(r.error()),
                            _ => return Err(f.error()),
                        }
                    }
                    // A refusal to read the mailbox is an authorisation problem here.
                    Err(f) if f.code == Code::Rejected => return Err(Error::new(Code::Auth, f.message)),
                    Err(f) => return Err(f.error()),
                }
            }
        })();
        let check = crate::delivery::Check {
            auth_mechanisms: vec!["Bearer".into()],
            stage,
            graph: Some(crate::delivery::GraphCheck { http_status, mailbox, transport: NAME }),
            ..crate::delivery::Check::default()
        };
        TestReport { result, check }
    }

    fn close_all(&self) {
        self.agents.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    use std::borrow::Cow;

    #[test]
    fn app_only_sends_from_the_mailbox_or_the_sender() {
        let mut c = crate::config::Config::new();
        c.set("SMTPTransport", Some("Graph")).unwrap();
        c.set("SMTPGraphUrl", Some("https://graph.example/v1.0/")).unwrap();
        let mut s = crate::config::ProfileSettings::clone(&c.settings("Default").unwrap());
        assert_eq!(mailbox_url(&s, Some("anna@firm.example")).unwrap(), "https://graph.example/v1.0/me");
        s.graph_oauth2_flow = Some("ClientCredentials".into());
        assert_eq!(
            mailbox_url(&s, Some("anna@firm.example")).unwrap(),
            "https://graph.example/v1.0/users/anna@firm.example"
        );
        s.graph_mailbox = Some("office/x@firm.example".into());
        assert_eq!(mailbox_url(&s, None).unwrap(), "https://graph.example/v1.0/users/office%2Fx@firm.example");
        s.graph_mailbox = None;
        assert!(mailbox_url(&s, None).unwrap_err().message().contains("SMTPGraphMailbox"));
        s.graph_oauth2_provider = Some("Google".into());
        assert!(s.check_transport().unwrap_err().message().contains("SMTPAuthModel"));
        s.auth_model = crate::config::AuthModel::OAuth2;
        assert!(s.check_transport().unwrap_err().message().contains("SMTPOAuth2Provider"));
    }

    fn mime(headers: &str) -> Vec<u8> {
        format!("{headers}\r\nSubject: s\r\n\r\nbody\r\n").into_bytes()
    }

    #[test]
    fn headers_name_the_envelope() {
        let m = mime("From: a@x.example\r\nTo: \"B\" <b@x.example>,\r\n c@x.example\r\nCc: d@x.example");
        let env = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches!(
            recipients_in_headers(&m, &env(&["b@x.example", "c@x.example", "d@x.example"])),
            Cow::Borrowed(_)
        ));
        let out = recipients_in_headers(&m, &env(&["c@x.example", "e@x.example"]));
        let text = String::from_utf8(out.into_owned()).unwrap();
        assert!(text.contains("To: c@x.example\r\n"), "{text}");
        assert!(text.contains("Bcc: e@x.example\r\n"), "{text}");
        assert!(!text.contains("b@x.example") && !text.contains("Cc:"), "{text}");
        assert!(text.contains("\r\nSubject: s\r\n") && text.ends_with("\r\n\r\nbody\r\n"), "{text}");
    }

    #[test]
    fn large_attachments_come_out_of_the_draft() {
        let big = vec![7u8; 200_000];
        let b64 = B64.encode(&big);
        let wrapped: Vec<String> = b64.as_bytes().chunks(76).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        let m = format!(
            "From: a@x.example\r\nTo: b@x.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\nhello\r\n--BB\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--BB--\r\n",
            wrapped.join("\r\n")
        );
        let (draft, out) = split_attachments(m.as_bytes(), 10_000);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "a.pdf");
        assert_eq!(out[0].content_type, "application/pdf");
        assert_eq!(out[0].data, big);
        let draft = String::from_utf8(draft).unwrap();
        assert!(draft.ends_with("--BB\r\nContent-Type: text/plain\r\n\r\nhello\r\n--BB--\r\n"), "{draft}");
        let (same, none) = split_attachments(m.as_bytes(), 1_000_000);
        assert!(none.is_empty());
        assert_eq!(same, m.as_bytes());
    }
}
