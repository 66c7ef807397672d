//! What happened to a message: the status a host reads back.

use serde::{Deserialize, Serialize, Serializer};
use std::time::SystemTime;

use crate::advice::Advice;
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
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
    /// The final states, whose statuses can be purged.
    pub const FINAL: [State; 3] = [State::Sent, State::Cancelled, State::Failed];

    /// Every state, in the order statistics list them.
    pub const ALL: [State; 6] =
        [State::Queued, State::Sending, State::Sent, State::Deferred, State::Failed, State::Cancelled];

    /// The state named `name` (lower case, as the status JSON names it).
    pub fn from_name(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.name() == name)
    }

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

/// A server's reply as a status keeps it: the code, the RFC 3463 enhanced
/// code when there was one, and the text (lines joined by a space).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    pub enhanced: Option<String>,
    pub text: String,
}

/// What a status keeps of a reply.
impl From<Reply> for ServerReply {
    fn from(r: Reply) -> Self {
        ServerReply { code: r.code, enhanced: r.enhanced, text: r.text }
    }
}

impl From<&Reply> for ServerReply {
    fn from(r: &Reply) -> Self {
        ServerReply { code: r.code, enhanced: r.enhanced.clone(), text: r.text.clone() }
    }
}

/// Messages per state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct StateCounts {
    pub cancelled: u64,
    pub deferred: u64,
    pub failed: u64,
    pub queued: u64,
    pub sending: u64,
    pub sent: u64,
}

impl StateCounts {
    fn slot(&mut self, state: State) -> &mut u64 {
        match state {
            State::Queued => &mut self.queued,
            State::Sending => &mut self.sending,
            State::Sent => &mut self.sent,
            State::Deferred => &mut self.deferred,
            State::Failed => &mut self.failed,
            State::Cancelled => &mut self.cancelled,
        }
    }

    /// Counts `n` more messages in `state`.
    pub fn add(&mut self, state: State, n: u64) {
        *self.slot(state) += n;
    }

    /// The messages in `state`.
    pub fn get(&self, state: State) -> u64 {
        let mut copy = *self;
        *copy.slot(state)
    }
}

/// A recipient that did not get a message others got: refused by the
/// server, or left over when a later transaction of the message failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub address: String,
    /// The server's reply for this recipient (none when the session broke).
    pub reply: Option<ServerReply>,
    /// The library's account, when a later transaction failed.
    pub error: Option<String>,
}

impl Refusal {
    /// A recipient the server refused with `reply`.
    pub fn reply(address: String, reply: ServerReply) -> Refusal {
        Refusal { address, reply: Some(reply), error: None }
    }
}

/// Where test mode (SMTPTestMode) sent a message instead of its own
/// recipients: the status's `test_mode`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct TestMode {
    /// The recipients it had (to, cc and bcc, blacklisted ones left out).
    pub original: Vec<String>,
    /// The test addresses that got it (the envelope).
    pub redirected_to: Vec<String>,
}

/// The status of one message.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub id: String,
    pub reference: Option<String>,
    pub batch_id: Option<String>,
    pub profile: String,
    pub state: State,
    pub attempts: u32,
    pub message_id: String,
    /// The last reply that decided the outcome.
    pub reply: Option<ServerReply>,
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
    /// Where the sent copy was filed.
    pub archive: Option<ArchivePaths>,
    /// What to change, for a failed or deferred message whose cause the
    /// library recognised (ABI §15).
    pub advice: Option<Advice>,
    /// How the last attempt delivered: `smtp` or `graph` (ABI §14).
    pub transport: Option<String>,
    /// The HTTP status of the last Graph attempt.
    pub http_status: Option<u16>,
    /// Test mode's redirection; `None` when test mode was off.
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
}

/// Where the archive filed a sent message (absolute paths): the status's
/// `archive`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(default)]
pub struct ArchivePaths {
    pub attachments: Vec<String>,
    pub dir: String,
    pub eml: String,
    pub html: String,
    pub meta: String,
}

/// A refused recipient as the status JSON shows it: `{"address",
/// "smtp_code", "enhanced_code", "smtp_response"}`, and `error` when the
/// library has an account of its own.
#[derive(Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
struct RefusalJson<'a> {
    address: &'a str,
    enhanced_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(with = "String"))]
    error: Option<&'a str>,
    smtp_code: Option<u16>,
    smtp_response: Option<&'a str>,
}

impl Serialize for Refusal {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let reply = self.reply.as_ref();
        RefusalJson {
            address: &self.address,
            enhanced_code: reply.and_then(|r| r.enhanced.as_deref()),
            error: self.error.as_deref(),
            smtp_code: reply.map(|r| r.code),
            smtp_response: reply.map(|r| r.text.as_str()),
        }
        .serialize(serializer)
    }
}

/// The schema of a type whose JSON is written by a `…Json` struct.
macro_rules! schema_as {
    ($type:ty => $json:ident) => {
        #[cfg(test)]
        impl schemars::JsonSchema for $type {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($type).into()
            }
            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                $json::json_schema(generator)
            }
        }
    };
}
schema_as!(Refusal => RefusalJson);
schema_as!(Status => StatusJson);

fn rfc3339_opt<S: Serializer>(time: &Option<SystemTime>, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    time.map(rfc3339).serialize(serializer)
}

fn rfc3339_of<S: Serializer>(time: &SystemTime, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    rfc3339(*time).serialize(serializer)
}

/// The status JSON of ABI §7 (the store keeps its own form, see
/// `outbox::spool`). `partial`: sent with some recipients refused;
/// `advice` only while the message is failed or deferred. Fields in the
/// order of their names, as the JSON has always been.
#[derive(Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
struct StatusJson<'a> {
    advice: Option<&'a Advice>,
    archive: &'a Option<ArchivePaths>,
    attempts: u32,
    batch_id: &'a Option<String>,
    blocked: &'a [String],
    #[serde(serialize_with = "rfc3339_of")]
    #[cfg_attr(test, schemars(with = "String"))]
    created_at: &'a SystemTime,
    enhanced_code: Option<&'a str>,
    error: &'a Option<String>,
    error_code: Code,
    http_status: Option<u16>,
    id: &'a str,
    message_id: &'a str,
    needs: &'a Option<String>,
    #[serde(serialize_with = "rfc3339_opt")]
    #[cfg_attr(test, schemars(with = "Option<String>"))]
    next_attempt_at: &'a Option<SystemTime>,
    partial: bool,
    possible_duplicate: bool,
    profile: &'a str,
    recipients: &'a [String],
    reference: &'a Option<String>,
    rejected: &'a [Refusal],
    #[serde(serialize_with = "rfc3339_opt")]
    #[cfg_attr(test, schemars(with = "Option<String>"))]
    sent_at: &'a Option<SystemTime>,
    smtp_code: Option<u16>,
    smtp_response: Option<&'a str>,
    state: State,
    test_mode: &'a Option<TestMode>,
    transport: &'a Option<String>,
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let reply = self.reply.as_ref();
        StatusJson {
            advice: self.advice.as_ref().filter(|_| matches!(self.state, State::Failed | State::Deferred)),
            archive: &self.archive,
            attempts: self.attempts,
            batch_id: &self.batch_id,
            blocked: &self.blocked,
            created_at: &self.created_at,
            enhanced_code: reply.and_then(|r| r.enhanced.as_deref()),
            error: &self.error,
            error_code: self.error_code,
            http_status: self.http_status,
            id: &self.id,
            message_id: &self.message_id,
            needs: &self.needs,
            next_attempt_at: &self.next_attempt_at,
            partial: self.state == State::Sent && !self.rejected.is_empty(),
            possible_duplicate: self.possible_duplicate,
            profile: &self.profile,
            recipients: &self.recipients,
            reference: &self.reference,
            rejected: &self.rejected,
            sent_at: &self.sent_at,
            smtp_code: reply.map(|r| r.code),
            smtp_response: reply.map(|r| r.text.as_str()),
            state: self.state,
            test_mode: &self.test_mode,
            transport: &self.transport,
        }
        .serialize(serializer)
    }
}
