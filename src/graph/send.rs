//! Sending: sendMail with the MIME, or a draft whose large attachments
//! go by upload sessions, then send.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::*;
use crate::config::ProfileSettings;
use crate::delivery::{Delivery, Failure};
use crate::error::{Code, Error};
use crate::smtp::{Login, Mail};

impl Graph {
    /// `POST {mailbox}/sendMail` with the MIME.
    pub(super) fn send_mime(
        &self,
        agent: &ureq::Agent,
        base: &str,
        token: &str,
        mime: &[u8],
    ) -> std::result::Result<u16, Failure> {
        let url = format!("{base}/sendMail");
        let body = B64.encode(mime);
        let reply = self.call(
            agent,
            Request {
                method: "POST",
                url: &url,
                token: Some(token),
                content_type: Some("text/plain"),
                content_range: None,
                body: body.as_bytes(),
                sending: true,
            },
        )?;
        expect(&reply, &[202, 200], "sendMail")
    }

    /// The draft path: a draft from the MIME without its largest
    /// attachments, those attached again, then `/send`.
    pub(super) fn send_draft(
        &self,
        agent: &ureq::Agent,
        base: &str,
        token: &str,
        mime: &[u8],
        save_to_sent_items: bool,
    ) -> std::result::Result<u16, Failure> {
        let (draft_mime, extracted) = split_attachments(mime, SIMPLE_LIMIT);
        let url = format!("{base}/messages");
        let body = B64.encode(&draft_mime);
        let reply = self.call(
            agent,
            Request {
                method: "POST",
                url: &url,
                token: Some(token),
                content_type: Some("text/plain"),
                content_range: None,
                body: body.as_bytes(),
                sending: false,
            },
        )?;
        expect(&reply, &[201, 200], "creating the draft")?;
        drop(body);
        let id = reply.json()["id"].as_str().map(str::to_string).ok_or_else(|| {
            failure(Code::Transient, "Graph created the draft but did not say its id (no \"id\" in the reply)")
        })?;
        let message_url = format!("{base}/messages/{}", percent_encode(&id));
        let result = self.complete_draft(agent, &message_url, token, &extracted, save_to_sent_items);
        if let Err(f) = &result {
            if !f.possible_duplicate {
                // Best effort: leave no half-made draft behind.
                let _ = self.call(
                    agent,
                    Request {
                        method: "DELETE",
                        url: &message_url,
                        token: Some(token),
                        content_type: None,
                        content_range: None,
                        body: b"",
                        sending: false,
                    },
                );
            }
        }
        result
    }

    pub(super) fn complete_draft(
        &self,
        agent: &ureq::Agent,
        message_url: &str,
        token: &str,
        attachments: &[Extracted],
        save_to_sent_items: bool,
    ) -> std::result::Result<u16, Failure> {
        let json = |v: serde_json::Value| v.to_string().into_bytes();
        let post = |url: &str, body: &[u8], sending: bool| {
            self.call(
                agent,
                Request {
                    method: "POST",
                    url,
                    token: Some(token),
                    content_type: Some("application/json"),
                    content_range: None,
                    body,
                    sending,
                },
            )
        };
        for a in attachments {
            if a.data.len() < UPLOAD_SESSION_MIN {
                let body = json(serde_json::json!({
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "name": a.name,
                    "contentType": a.content_type,
                    "contentBytes": B64.encode(&a.data),
                    "isInline": a.inline,
                    "contentId": a.content_id,
                }));
                let reply = post(&format!("{message_url}/attachments"), &body, false)?;
                expect(&reply, &[201, 200], "attaching a file")?;
                continue;
            }
            let body = json(serde_json::json!({"AttachmentItem": {
                "attachmentType": "file",
                "name": a.name,
                "size": a.data.len(),
                "contentType": a.content_type,
                "isInline": a.inline,
                "contentId": a.content_id,
            }}));
            let reply = post(&format!("{message_url}/attachments/createUploadSession"), &body, false)?;
            expect(&reply, &[201, 200], "createUploadSession")?;
            let upload_url = reply.json()["uploadUrl"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| failure(Code::Transient, "Graph made an upload session but gave no uploadUrl"))?;
            let total = a.data.len();
            for (i, chunk) in a.data.chunks(UPLOAD_CHUNK).enumerate() {
                let start = i * UPLOAD_CHUNK;
                let end = start + chunk.len() - 1;
                let reply = self.call(
                    agent,
                    Request {
                        method: "PUT",
                        url: &upload_url,
                        token: None, // the URL carries its own authorization
                        content_type: Some("application/octet-stream"),
                        content_range: Some(format!("bytes {start}-{end}/{total}")),
                        body: chunk,
                        sending: false,
                    },
                )?;
                let last = end + 1 == total;
                expect(&reply, if last { &[201, 200] } else { &[200, 201] }, "uploading an attachment")?;
            }
        }
        if !save_to_sent_items {
            let body = json(serde_json::json!({"singleValueExtendedProperties": [
                {"id": "Boolean 0x0E01", "value": "true"}
            ]}));
            let reply = self.call(
                agent,
                Request {
                    method: "PATCH",
                    url: message_url,
                    token: Some(token),
                    content_type: Some("application/json"),
                    content_range: None,
                    body: &body,
                    sending: false,
                },
            )?;
            expect(&reply, &[200, 204], "setting SMTPGraphSaveToSentItems=false on the draft")?;
        }
        let reply = post(&format!("{message_url}/send"), b"", true)?;
        expect(&reply, &[202, 200], "sending the draft")
    }

    /// One try of the whole message with `token`.
    pub(crate) fn deliver(
        &self,
        agent: &ureq::Agent,
        base: &str,
        token: &str,
        mime: &[u8],
        settings: &ProfileSettings,
    ) -> std::result::Result<u16, Failure> {
        if mime.len() <= SIMPLE_LIMIT && settings.graph_save_to_sent_items {
            self.send_mime(agent, base, token, mime)
        } else {
            self.send_draft(agent, base, token, mime, settings.graph_save_to_sent_items)
        }
    }

    /// [`Transport::send`], before advice is attached to a failure.
    #[allow(clippy::result_large_err)] // see delivery.rs
    pub(super) fn send_message(
        &self,
        settings: &ProfileSettings,
        login: Option<&Login>,
        mail: &Mail,
    ) -> std::result::Result<Delivery, Failure> {
        let config = |e: Error| failure(e.code(), e.message());
        settings.check_transport().map_err(config)?;
        let base = mailbox_url(settings, Some(mail.from)).map_err(config)?;
        crate::transcript::set_server(&crate::url::url_host(&settings.graph_url));
        let link = self.link(settings)?;
        let mime = recipients_in_headers(mail.body, mail.to);
        let token = match login {
            Some(l) => &l.secret,
            None => {
                return Err(failure(
                    Code::Credentials,
                    format!("profile {}: Graph needs an OAuth2 token", settings.name),
                ))
            }
        };
        let _turn = link.turn.lock().unwrap_or_else(|e| e.into_inner());
        let status = self.deliver(&link.agent, &base, token, &mime, settings)?;
        Ok(Delivery { transport: NAME, reply: None, http_status: Some(status), rejected: Vec::new() })
    }
}
