//! Mail merge: one message per recipient from a template with `{{Field}}`
//! placeholders, all under one batch.
//!
//! The merge is checked whole before anything is queued: every recipient's
//! address, every attachment path, and a value for every placeholder. Then
//! each recipient's message is rendered and built, and the messages are
//! made durable [`MERGE_CHUNK`] to a transaction (or 8 MiB of them), so a
//! merge of thousands never holds their bodies at once. The recipients
//! come as [`Recipients`], read one at a time where they are used (from
//! JSON text, by the ABI), so neither are they all held parsed. Values
//! are HTML-escaped in `html`, inserted as they are in `subject` and
//! `text` (where a line break in the subject is still refused).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use super::Client;
use crate::address::AddressSpec;
use crate::error::{Code, Error, Result};
use crate::json::{self, OrderedMap};
use crate::message::{self, MessageJson, MessageSpec, PartSpec};
use crate::outbox::spool::Record;
use crate::outbox::New;
use crate::status::{State, Status};
use crate::text::printable;

/// Messages of a merge written in one transaction, at most.
const MERGE_CHUNK: usize = 512;

/// The bytes of the messages of a merge gathered before they are written,
/// whatever their number.
const MERGE_CHUNK_BYTES: usize = 8 << 20;

/// One recipient of a merge (an element of `recipients_json`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeRecipient {
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Placeholder values: strings, numbers or booleans.
    #[serde(default)]
    pub fields: Option<OrderedMap>,
    #[serde(default, deserialize_with = "json::objects")]
    pub attachments: Vec<PartSpec>,
    #[serde(default)]
    pub cc: crate::address::AddressList,
    #[serde(default)]
    pub reference: Option<String>,
}

/// The recipients of a merge: how many, and each one, read where it is
/// used, so that a list kept as text need not be held parsed whole.
pub trait Recipients {
    fn len(&self) -> usize;
    /// Recipient `i` (below [`Recipients::len`]).
    fn get(&self, i: usize) -> Result<Cow<'_, MergeRecipient>>;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Recipients for [MergeRecipient] {
    fn len(&self) -> usize {
        <[MergeRecipient]>::len(self)
    }
    fn get(&self, i: usize) -> Result<Cow<'_, MergeRecipient>> {
        Ok(Cow::Borrowed(&self[i]))
    }
}

/// What a merge queued: the batch, and one message id per recipient, in
/// the recipients' order (`smtpb_merge`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Merged {
    pub batch_id: String,
    /// Every message made, failed ones (blacklisted recipients) included.
    pub count: usize,
    pub ids: Vec<String>,
}

/// The names of the `{{Field}}` placeholders in `text`, in order.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
        rest = &after[end + 2..];
    }
    names
}

/// `text` with every placeholder replaced by its value.
pub fn render(text: &str, values: &HashMap<String, String>, html: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push_str(&rest[..start]);
        let name = after[..end].trim();
        match values.get(name) {
            Some(v) if html => out.push_str(&message::html_escape(v)),
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A recipient's field values as text; numbers and booleans as JSON
/// writes them.
fn field_values(index: usize, r: &MergeRecipient) -> Result<HashMap<String, String>> {
    let mut values = HashMap::new();
    for (name, value) in r.fields.as_ref().map(|f| f.0.as_slice()).unwrap_or(&[]) {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(Error::invalid_argument(format!(
                    "recipients[{index}].fields.{name}: a string, number or boolean expected, got {other}"
                )))
            }
        };
        values.insert(name.clone(), text);
    }
    Ok(values)
}

impl Client {
    /// Merges the template `raw` (a message) with `recipients` and queues
    /// one message per recipient under a new batch; `ids` aligned with the
    /// recipients.
    pub fn merge<R: Recipients + ?Sized>(&self, raw: MessageJson, recipients: &R) -> Result<Merged> {
        self.check_open()?;
        if !raw.to.is_empty() {
            return Err(Error::message_error(
                "template: \"to\" comes from each recipient; leave it out of the template",
            ));
        }
        if raw.mime_base64.is_some() {
            return Err(Error::message_error(
                "template: mime_base64 cannot be merged (placeholders live in subject, html and text)",
            ));
        }
        if recipients.is_empty() {
            return Err(Error::message_error("recipients: the merge has no recipient"));
        }
        let config = self.read_config().clone();
        let budget = super::pipeline::part_budget(&config, raw.profile.as_deref());
        let template = MessageSpec::validate_template(raw, budget)?;
        let mut names = Vec::new();
        for text in [Some(&template.subject), template.html.as_ref(), template.text.as_ref()].into_iter().flatten() {
            for name in placeholders(text) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }

        // Check everything first: nothing is queued unless all is well.
        for i in 0..recipients.len() {
            let r = recipients.get(i)?;
            let who = format!("recipients[{i}] ({})", printable(&r.email));
            let spec = AddressSpec { email: r.email.clone(), name: r.name.clone() };
            message::recipients(&format!("recipients[{i}]"), std::slice::from_ref(&spec))?;
            message::recipients(&format!("recipients[{i}].cc"), &r.cc)?;
            let values = field_values(i, &r)?;
            if let Some(missing) = names.iter().find(|n| !values.contains_key(*n)) {
                let missing = printable(missing);
                return Err(Error::message_error(format!("{who}: no value for the field {{{{{missing}}}}}")));
            }
            crate::text::check_text(&render(&template.subject, &values, false)).map_err(|c| {
                Error::message_error(format!("{who}: the merged subject has the control character {c:?}"))
            })?;
            for (j, part) in r.attachments.iter().enumerate() {
                if let Some(path) = &part.path {
                    let p = Path::new(path);
                    if !p.is_absolute() || !p.is_file() {
                        return Err(Error::message_error(format!(
                            "{who}: attachments[{j}]: \"{}\" is not an absolute path to a file",
                            printable(path)
                        )));
                    }
                }
            }
        }

        let batch_id = crate::status::new_id();
        let mut ids = Vec::with_capacity(recipients.len());
        // Held back until every message is queued: nothing of a merge that
        // fails half-way goes out.
        let outbox = &self.inner.outbox;
        outbox.stage_batch(&batch_id)?;
        // Written MERGE_CHUNK messages (or MERGE_CHUNK_BYTES) a transaction.
        let mut chunk: Vec<New> = Vec::new();
        let mut chunk_bytes = 0;
        let mut first = 0;
        let written = (|| {
            for i in 0..recipients.len() {
                let r = recipients.get(i)?;
                let new = self
                    .merge_one(&config, &template, i, &r, &batch_id)
                    .map_err(|e| e.context(format!("recipients[{i}]")))?;
                chunk_bytes += new.1.len();
                chunk.push(new);
                if chunk.len() >= MERGE_CHUNK || chunk_bytes >= MERGE_CHUNK_BYTES || i + 1 == recipients.len() {
                    let added = outbox
                        .add_all(std::mem::take(&mut chunk))
                        .map_err(|e| e.context(format!("recipients[{first}..={i}]")))?;
                    ids.extend(added.into_iter().map(|(id, _)| id));
                    chunk_bytes = 0;
                    first = i + 1;
                }
            }
            outbox.release_batch(&batch_id)
        })();
        if let Err(e) = written {
            outbox.abandon_batch(&batch_id);
            return Err(e);
        }
        Ok(Merged { batch_id, count: ids.len(), ids })
    }

    /// The message of recipient `i`, rendered and built (not yet written).
    fn merge_one(
        &self,
        config: &crate::config::Config,
        template: &MessageSpec,
        i: usize,
        r: &MergeRecipient,
        batch_id: &str,
    ) -> Result<New> {
        let values = field_values(i, r)?;
        let mut spec = template.clone();
        spec.subject = render(&template.subject, &values, false);
        spec.html = template.html.as_ref().map(|h| render(h, &values, true));
        spec.text = template.text.as_ref().map(|t| render(t, &values, false));
        spec.to = message::recipients("to", &[AddressSpec { email: r.email.clone(), name: r.name.clone() }])?;
        spec.cc.extend(message::recipients("cc", &r.cc)?);
        for (j, part) in r.attachments.iter().enumerate() {
            spec.attachments.push(message::read_part(&format!("attachments[{j}]"), part, false, &mut spec.budget)?);
        }
        if r.reference.is_some() {
            spec.reference = r.reference.clone();
        }
        spec.idempotency_key = template.idempotency_key.as_ref().map(|k| format!("{k}#{i}"));
        match self.prepare(config, &mut spec, State::Queued) {
            Ok((mut record, bytes)) => {
                record.status.batch_id = Some(batch_id.to_string());
                Ok((record, bytes))
            }
            // Recorded as failed so that ids stay aligned.
            Err(e) if e.code() == Code::Blocked => Ok((blocked_record(&spec, r, batch_id, &e), Vec::new())),
            Err(e) => Err(e),
        }
    }
}

fn blocked_record(spec: &MessageSpec, r: &MergeRecipient, batch_id: &str, e: &Error) -> Record {
    Record {
        status: Status {
            reference: spec.reference.clone(),
            batch_id: Some(batch_id.to_string()),
            error_code: Code::Blocked,
            error: Some(e.message().to_string()),
            blocked: std::iter::once(r.email.clone()).chain(r.cc.iter().map(|c| c.email.clone())).collect(),
            ..Status::new(crate::status::new_id(), spec.profile.clone().unwrap_or_default(), State::Failed)
        },
        user: spec.user.clone(),
        envelope_from: String::new(),
        envelope_to: Vec::new(),
        idempotency_key: None,
        archive: false,
        body_dropped: true,
        origin: None,
        writer: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_and_rendered() {
        assert_eq!(placeholders("Dear {{Name}}, {{ Amount }} {{Name}} {{"), vec!["Name", "Amount"]);
        let values: HashMap<String, String> =
            [("Name".to_string(), "Tom & <Jerry>".to_string()), ("Amount".to_string(), String::new())].into();
        assert_eq!(render("Dear {{Name}}: {{Amount}}!", &values, true), "Dear Tom &amp; &lt;Jerry&gt;: !");
        assert_eq!(render("Dear {{Name}}", &values, false), "Dear Tom & <Jerry>");
        assert_eq!(render("{{Other}}", &values, false), "{{Other}}");
    }
}
