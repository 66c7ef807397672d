//! The JSON of the ABI: the inputs the exports take as JSON text, parsed
//! into the core's types, and the outputs, written from them. The core
//! speaks types; this is the only place that reads or writes the ABI's
//! JSON (the message JSON aside, which the message module reads into its
//! typed form).

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::time::SystemTime;

use crate::client::{MergeRecipient, Recipients};
use crate::error::{Error, Result};
use crate::json::{self, OrderedMap};
use crate::message::MessageJson;
use crate::outbox::store::MAX_LIMIT;
use crate::outbox::{purgeable, Cursor, Query};
use crate::status::State;
use crate::text::printable;

/// The JSON text of an output.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("output types serialise")
}

/// `smtpb_outbox_purge`'s result.
#[derive(Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Purged {
    pub purged: u64,
}

/// A state by the name the status JSON gives it; `what` names the input.
pub fn parse_state(name: &str, what: &str) -> Result<State> {
    State::from_name(name).ok_or_else(|| {
        Error::invalid_argument(format!(
            "{what}: state \"{}\": one of queued, sending, sent, deferred, failed, cancelled expected",
            printable(name)
        ))
    })
}

/// An RFC 3339 UTC time (`2026-11-22T10:00:00Z`); `what` names the input.
pub fn parse_time(text: &str, what: &str) -> Result<SystemTime> {
    humantime::parse_rfc3339_weak(text).map_err(|_| {
        Error::invalid_argument(format!(
            "{what}: \"{}\" is not an RFC 3339 UTC time such as 2026-11-22T10:00:00Z",
            printable(text)
        ))
    })
}

fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `smtpb_outbox_query`'s JSON, naming what is wrong.
pub fn parse_query(text: &str) -> Result<Query> {
    const FIELDS: &str = "state, batch_id, reference, reference_prefix, profile, since, until, limit, cursor";
    let map: OrderedMap = json::parse_object(text, "query_json")?;
    let mut q = Query::default();
    let text_of = |key: &str, v: &Value| -> Result<String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::invalid_argument(format!("query_json: \"{key}\" must be a string")))
    };
    for (key, value) in map.0 {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "state" => {
                let not_names = || Error::invalid_argument("query_json: \"state\" must be an array of state names");
                for v in value.as_array().ok_or_else(not_names)? {
                    let s = parse_state(v.as_str().ok_or_else(not_names)?, "query_json: \"state\"")?;
                    if !q.states.contains(&s) {
                        q.states.push(s);
                    }
                }
            }
            "batch_id" => q.batch_id = Some(text_of(&key, &value)?),
            "reference" => q.reference = Some(text_of(&key, &value)?),
            "reference_prefix" => q.reference_prefix = Some(text_of(&key, &value)?),
            "profile" => q.profile = Some(text_of(&key, &value)?.to_ascii_lowercase()),
            "since" => q.since_ms = Some(unix_ms(parse_time(&text_of(&key, &value)?, "query_json: \"since\"")?)),
            "until" => q.until_ms = Some(unix_ms(parse_time(&text_of(&key, &value)?, "query_json: \"until\"")?)),
            "limit" => {
                q.limit = value.as_u64().filter(|n| (1..=MAX_LIMIT as u64).contains(n)).ok_or_else(|| {
                    Error::invalid_argument(format!(
                        "query_json: \"limit\" must be an integer from 1 to 1000, not {value}"
                    ))
                })? as usize
            }
            "cursor" => {
                let text = text_of(&key, &value)?;
                q.cursor = Some(Cursor::decode(&text).ok_or_else(|| {
                    Error::invalid_argument(format!(
                        "query_json: cursor \"{}\" is not one this library made",
                        printable(&text)
                    ))
                })?)
            }
            other => {
                return Err(Error::invalid_argument(format!(
                    "query_json: unknown field \"{}\"; expected one of {FIELDS}",
                    printable(other)
                )))
            }
        }
    }
    Ok(q)
}

/// `smtpb_outbox_purge`'s `states_json`: an array of final state names
/// (NULL: every final state).
pub fn parse_purge_states(states_json: Option<&str>) -> Result<Vec<State>> {
    let Some(text) = states_json else { return Ok(State::FINAL.to_vec()) };
    let names: Vec<String> = json::parse(text, "states_json")?;
    let states = names.iter().map(|n| parse_state(n, "states_json")).collect::<Result<Vec<_>>>()?;
    purgeable(&states).map_err(|e| e.context("states_json"))?;
    Ok(states)
}

/// `smtpb_merge`'s recipients: the elements of `recipients_json`, each
/// checked and kept as its JSON text, read again where the merge uses it.
pub struct RawRecipients<'a>(Vec<&'a RawValue>);

impl Recipients for RawRecipients<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn get(&self, i: usize) -> Result<Cow<'_, MergeRecipient>> {
        // Checked whole by parse_merge: reading one again does not fail.
        serde_json::from_str::<json::Object<MergeRecipient>>(self.0[i].get())
            .map(|o| Cow::Owned(o.0))
            .map_err(|e| Error::internal(format!("recipients[{i}]: read again: {e}")))
    }
}

/// `smtpb_merge`'s template (a message) and recipients JSON.
pub fn parse_merge<'a>(template_json: &str, recipients_json: &'a str) -> Result<(MessageJson, RawRecipients<'a>)> {
    let template: MessageJson = json::parse_object(template_json, "template JSON")?;
    let recipients = json::parse_raw_list::<json::Object<MergeRecipient>>(recipients_json, "recipients JSON")?;
    Ok((template, RawRecipients(recipients)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_names_what_is_wrong() {
        let e = parse_query(r#"{"state": ["sent", "lost"]}"#).unwrap_err();
        assert!(e.message().contains("query_json: \"state\": state \"lost\""), "{}", e.message());
        let e = parse_query(r#"{"limit": 1001}"#).unwrap_err();
        assert!(e.message().contains("from 1 to 1000, not 1001"), "{}", e.message());
        let e = parse_query(r#"{"cursor": "abc"}"#).unwrap_err();
        assert!(e.message().contains("cursor \"abc\" is not one this library made"), "{}", e.message());
        let e = parse_query(r#"{"colour": "red"}"#).unwrap_err();
        assert!(e.message().contains("unknown field \"colour\""), "{}", e.message());
        let q =
            parse_query(r#"{"state": ["sent", "sent"], "profile": "Work", "since": "2026-11-22T10:00:00Z"}"#).unwrap();
        assert_eq!((q.states, q.profile, q.limit), (vec![State::Sent], Some("work".into()), 100));
        assert_eq!(q.since_ms, Some(1_795_341_600_000));
    }

    #[test]
    fn purge_states_must_be_final() {
        assert_eq!(parse_purge_states(None).unwrap(), State::FINAL.to_vec());
        assert_eq!(parse_purge_states(Some("[]")).unwrap(), Vec::new());
        assert_eq!(parse_purge_states(Some(r#"["failed"]"#)).unwrap(), vec![State::Failed]);
        let e = parse_purge_states(Some(r#"["sent", "queued"]"#)).unwrap_err();
        assert_eq!(
            e.message(),
            "states_json: \"queued\" is not final; only sent, cancelled and failed statuses can be purged"
        );
    }
}
