//! What the spool keeps about each message. The spool itself is the
//! [`super::store`] (SQLite, format 2); [`super::journal`] reads the
//! format-1 journal of library 1.0 to migrate it.
//!
//! A status is kept in a form of its own ([`StoredStatus`]), not in the
//! status JSON of the ABI: the form stores of 1.0 and 1.1 wrote, which
//! both read, so that a change to the ABI's shape or to the SMTP code
//! cannot change what is on disk.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::SystemTime;

use crate::advice::Advice;
use crate::error::Code;
use crate::status::{ArchivePaths, Refusal, ServerReply, State, Status, TestMode};

/// Everything the library keeps about a message besides its bytes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    #[serde(serialize_with = "store_status", deserialize_with = "read_status")]
    pub status: Status,
    pub user: Option<String>,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    pub idempotency_key: Option<String>,
    /// The host asked for an archived copy.
    pub archive: bool,
    /// Set once the spool no longer holds the message's bytes.
    #[serde(default)]
    pub body_dropped: bool,
    /// On a shared data_dir: the client that queued the message (its
    /// events go there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// On a shared data_dir: the client that wrote this record last; of a
    /// `sending` message, the client sending it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
}

#[cfg(test)]
impl Record {
    /// A message of the tests: a new id in `state`, profile Default, from
    /// anna@firm.example to client@example.com.
    pub(crate) fn for_test(state: State) -> Record {
        Record {
            status: Status::new(crate::status::new_id(), "Default".into(), state),
            user: None,
            envelope_from: "anna@firm.example".into(),
            envelope_to: vec!["client@example.com".into()],
            idempotency_key: None,
            archive: false,
            body_dropped: false,
            origin: None,
            writer: None,
        }
    }
}

/// A server reply as the store keeps it. `lines` is written empty: the
/// status does not keep them, and a store read by 1.1 needs the field.
#[derive(Serialize, Deserialize)]
struct StoredReply {
    code: u16,
    enhanced: Option<String>,
    text: String,
    #[serde(default)]
    lines: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredRefusal {
    address: String,
    reply: Option<StoredReply>,
    #[serde(default)]
    error: Option<String>,
}

/// A status as the store keeps it (field names and order of 1.1).
#[derive(Serialize, Deserialize)]
struct StoredStatus {
    id: String,
    reference: Option<String>,
    batch_id: Option<String>,
    profile: String,
    state: State,
    attempts: u32,
    message_id: String,
    reply: Option<StoredReply>,
    error_code: Code,
    error: Option<String>,
    needs: Option<String>,
    recipients: Vec<String>,
    blocked: Vec<String>,
    rejected: Vec<StoredRefusal>,
    possible_duplicate: bool,
    created_at: SystemTime,
    sent_at: Option<SystemTime>,
    next_attempt_at: Option<SystemTime>,
    archive: Option<ArchivePaths>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    advice: Option<Advice>,
    #[serde(default)]
    transport: Option<String>,
    #[serde(default)]
    http_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    test_mode: Option<TestMode>,
}

fn stored_reply(r: &ServerReply) -> StoredReply {
    StoredReply { code: r.code, enhanced: r.enhanced.clone(), text: r.text.clone(), lines: Vec::new() }
}

fn server_reply(r: StoredReply) -> ServerReply {
    ServerReply { code: r.code, enhanced: r.enhanced, text: r.text }
}

fn store_status<S: Serializer>(s: &Status, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    StoredStatus {
        id: s.id.clone(),
        reference: s.reference.clone(),
        batch_id: s.batch_id.clone(),
        profile: s.profile.clone(),
        state: s.state,
        attempts: s.attempts,
        message_id: s.message_id.clone(),
        reply: s.reply.as_ref().map(stored_reply),
        error_code: s.error_code,
        error: s.error.clone(),
        needs: s.needs.clone(),
        recipients: s.recipients.clone(),
        blocked: s.blocked.clone(),
        rejected: s
            .rejected
            .iter()
            .map(|r| StoredRefusal {
                address: r.address.clone(),
                reply: r.reply.as_ref().map(stored_reply),
                error: r.error.clone(),
            })
            .collect(),
        possible_duplicate: s.possible_duplicate,
        created_at: s.created_at,
        sent_at: s.sent_at,
        next_attempt_at: s.next_attempt_at,
        archive: s.archive.clone(),
        advice: s.advice.clone(),
        transport: s.transport.clone(),
        http_status: s.http_status,
        test_mode: s.test_mode.clone(),
    }
    .serialize(serializer)
}

fn read_status<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Status, D::Error> {
    let s = StoredStatus::deserialize(deserializer)?;
    Ok(Status {
        id: s.id,
        reference: s.reference,
        batch_id: s.batch_id,
        profile: s.profile,
        state: s.state,
        attempts: s.attempts,
        message_id: s.message_id,
        reply: s.reply.map(server_reply),
        error_code: s.error_code,
        error: s.error,
        needs: s.needs,
        recipients: s.recipients,
        blocked: s.blocked,
        rejected: s
            .rejected
            .into_iter()
            .map(|r| Refusal { address: r.address, reply: r.reply.map(server_reply), error: r.error })
            .collect(),
        possible_duplicate: s.possible_duplicate,
        created_at: s.created_at,
        sent_at: s.sent_at,
        next_attempt_at: s.next_attempt_at,
        archive: s.archive,
        advice: s.advice,
        transport: s.transport,
        http_status: s.http_status,
        test_mode: s.test_mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as library 1.1 wrote it (a sent message with a refused
    /// recipient, archived, in test mode).
    const STORED_BY_1_1: &str = r#"{"status":{"id":"01JD0000000000000000000000","reference":"CL-1001","batch_id":null,"profile":"Default","state":"sent","attempts":1,"message_id":"<01JD@firm.example>","reply":{"code":250,"enhanced":"2.0.0","text":"Ok: queued","lines":["2.0.0 Ok: queued"]},"error_code":0,"error":null,"needs":null,"recipients":["client@example.com","gone@example.com"],"blocked":[],"rejected":[{"address":"gone@example.com","reply":{"code":550,"enhanced":"5.1.1","text":"No such user","lines":["5.1.1 No such user"]},"error":null}],"possible_duplicate":false,"created_at":{"secs_since_epoch":1795860000,"nanos_since_epoch":5000000},"sent_at":{"secs_since_epoch":1795860001,"nanos_since_epoch":0},"next_attempt_at":null,"archive":{"dir":"/a/01JD","html":"/a/01JD/message.html","eml":"/a/01JD/message.eml","meta":"/a/01JD/meta.json","attachments":[]},"transport":"smtp","http_status":null,"test_mode":{"redirected_to":["test@firm.example"],"original":["client@example.com"]}},"user":null,"envelope_from":"anna@firm.example","envelope_to":["test@firm.example"],"idempotency_key":null,"archive":true,"body_dropped":true}"#;

    #[test]
    fn a_record_written_by_1_1_reads_and_keeps_its_fields() {
        let record: Record = serde_json::from_str(STORED_BY_1_1).unwrap();
        let s = &record.status;
        assert_eq!(s.reply, Some(ServerReply { code: 250, enhanced: Some("2.0.0".into()), text: "Ok: queued".into() }));
        assert_eq!(s.rejected[0].reply.as_ref().map(|r| r.code), Some(550));
        assert_eq!(s.archive.as_ref().map(|a| a.eml.as_str()), Some("/a/01JD/message.eml"));
        assert_eq!(s.test_mode.as_ref().map(|t| t.redirected_to.clone()), Some(vec!["test@firm.example".into()]));
        assert_eq!(s.created_at, std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_860_000_005));
        // Written again, it is the same record but for the reply lines
        // (not kept), and 1.1's form still reads it.
        let again: serde_json::Value = serde_json::to_value(&record).unwrap();
        let mut old: serde_json::Value = serde_json::from_str(STORED_BY_1_1).unwrap();
        old["status"]["reply"]["lines"] = serde_json::json!([]);
        old["status"]["rejected"][0]["reply"]["lines"] = serde_json::json!([]);
        assert_eq!(again, old);
    }
}
