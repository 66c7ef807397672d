//! What happened to a message: the status a host reads back.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::SystemTime;

use crate::error::Code;
use crate::fsutil::rfc3339;
use crate::reply::Reply;

/// A new message or batch id: a ULID, strictly increasing within the
/// process, so ids sort by creation even within one millisecond.
pub fn new_id() -> String {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut generator = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    generator.get_or_insert_with(ulid::Generator::new).generate().unwrap_or_else(|_| ulid::Ulid::new()).to_string()
}

/// The states of a message, as the status JSON names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Sending,
    Sent,
    Deferred,
    Failed,
    Cancelled,
}

impl State {
    /// Every state, in the order statistics list them.
    pub const ALL: [State; 6] =
        [State::Queued, State::Sending, State::Sent, State::Deferred, State::Failed, State::Cancelled];

    pub fn name(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Deferred => "deferred",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }

    /// Whether the message's bytes must still be kept: everything but sent
    /// and cancelled mail (a failed message can be retried).
    pub fn keeps_body(self) -> bool {
        !matches!(self, State::Sent | State::Cancelled)
    }

    /// Sent, failed and cancelled are final.
    pub fn is_final(self) -> bool {
        matches!(self, State::Sent | State::Failed | State::Cancelled)
    }
}

/// A recipient that did not get a message others got: refused by the
/// server, or left over when a later transaction of the message failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub address: String,
    /// The server's reply for this recipient (none when the session broke).
    pub reply: Option<Reply>,
    /// The library's account, when a later transaction failed.
    #[serde(default)]
    pub error: Option<String>,
}

impl Refusal {
    /// A recipient the server refused with `reply`.
    pub fn reply(address: String, reply: Reply) -> Refusal {
        Refusal { address, reply: Some(reply), error: None }
    }
}

/// Where test mode (SMTPTestMode) sent a message instead of its own
/// recipients: the status's `test_mode`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestMode {
    /// The test addresses that got it (the envelope).
    pub redirected_to: Vec<String>,
    /// The recipients it had (to, cc and bcc, blacklisted ones left out).
    pub original: Vec<String>,
}

/// The status of one message.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub id: String,
    pub reference: Option<String>,
    pub batch_id: Option<String>,
    pub profile: String,
    pub state: State,
    pub attempts: u32,
    pub message_id: String,
    /// The last reply that decided the outcome.
    pub reply: Option<Reply>,
    pub error_code: Code,
    pub error: Option<String>,
    pub needs: Option<String>,
    pub recipients: Vec<String>,
    pub blocked: Vec<String>,
    pub rejected: Vec<Refusal>,
    pub possible_duplicate: bool,
    pub created_at: SystemTime,
    pub sent_at: Option<SystemTime>,
    pub next_attempt_at: Option<SystemTime>,
    pub archive: Option<Value>,
    /// What to change, for a failed or deferred message whose cause the
    /// library recognised (ABI §15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<crate::advice::Advice>,
    /// How the last attempt delivered: `smtp` or `graph` (ABI §14).
    #[serde(default)]
    pub transport: Option<String>,
    /// The HTTP status of the last Graph attempt.
    #[serde(default)]
    pub http_status: Option<u16>,
    /// Test mode's redirection; `None` when test mode was off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_mode: Option<TestMode>,
}

impl Status {
    /// A new message's status: created now, nothing tried yet.
    pub fn new(id: String, profile: String, state: State) -> Status {
        Status {
            id,
            reference: None,
            batch_id: None,
            profile,
            state,
            attempts: 0,
            message_id: String::new(),
            reply: None,
            error_code: Code::Ok,
            error: None,
            needs: None,
            recipients: Vec::new(),
            blocked: Vec::new(),
            rejected: Vec::new(),
            possible_duplicate: false,
            created_at: SystemTime::now(),
            sent_at: None,
            next_attempt_at: None,
            archive: None,
            advice: None,
            transport: None,
            http_status: None,
            test_mode: None,
        }
    }

    /// The status JSON of ABI §7.
    pub fn to_json(&self) -> Value {
        let rejected: Vec<Value> = self
            .rejected
            .iter()
            .map(|r| {
                let mut v = json!({
                    "address": r.address,
                    "smtp_code": r.reply.as_ref().map(|r| r.code),
                    "enhanced_code": r.reply.as_ref().and_then(|r| r.enhanced.clone()),
                    "smtp_response": r.reply.as_ref().map(|r| r.text.clone()),
                });
                if let Some(error) = &r.error {
                    v["error"] = json!(error);
                }
                v
            })
            .collect();
        json!({
            "id": self.id,
            "reference": self.reference,
            "batch_id": self.batch_id,
            "profile": self.profile,
            "state": self.state.name(),
            "attempts": self.attempts,
            "message_id": self.message_id,
            "smtp_code": self.reply.as_ref().map(|r| r.code),
            "enhanced_code": self.reply.as_ref().and_then(|r| r.enhanced.clone()),
            "smtp_response": self.reply.as_ref().map(|r| r.text.clone()),
            "error_code": self.error_code as i32,
            "error": self.error,
            "needs": self.needs,
            "recipients": self.recipients,
            "blocked": self.blocked,
            "rejected": rejected,
            "partial": self.state == State::Sent && !self.rejected.is_empty(),
            "possible_duplicate": self.possible_duplicate,
            "created_at": rfc3339(self.created_at),
            "sent_at": self.sent_at.map(rfc3339),
            "next_attempt_at": self.next_attempt_at.map(rfc3339),
            "archive": self.archive,
            "advice": self.advice.as_ref().filter(|_| matches!(self.state, State::Failed | State::Deferred)),
            "transport": self.transport,
            "http_status": self.http_status,
            "test_mode": self.test_mode,
        })
    }
}
