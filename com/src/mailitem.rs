//! `MailItem` and its collections (ABI.md §19): what a host sets on the
//! item becomes the drop-ins' [`Mail`], sent, shown or saved through the
//! process's client exactly as the Simple MAPI provider does.

use smtpbridge::address::{parse_address, parse_entry};
use smtpbridge_dropin::{Attachment, Body, Class as RecipientClass, Mail, Recipient};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::automation::{self, Args, Automation, Call, Class, Fault, Member, Value};
use crate::objects::Host;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Outlook's `olRFC822`, the one `SaveAs` type there is (an `.eml`).
const OL_RFC822: i32 = 3;
/// Outlook's `olMSG`, named in its refusal.
const OL_MSG: i32 = 0;

static MAIL_ITEM: Class = Class {
    name: "MailItem",
    members: &[
        Member { name: "To", params: &[] },
        Member { name: "CC", params: &[] },
        Member { name: "BCC", params: &[] },
        Member { name: "Subject", params: &[] },
        Member { name: "Body", params: &[] },
        Member { name: "HTMLBody", params: &[] },
        Member { name: "SentOnBehalfOfName", params: &[] },
        Member { name: "ReplyRecipients", params: &[] },
        Member { name: "Recipients", params: &[] },
        Member { name: "Attachments", params: &[] },
        Member { name: "Send", params: &[] },
        Member { name: "SaveAs", params: &["Path", "Type"] },
        Member { name: "Display", params: &["Modal"] },
        Member { name: "EntryID", params: &[] },
        Member { name: "Sent", params: &[] },
        Member { name: "Importance", params: &[] },
    ],
};

#[derive(Default)]
struct Fields {
    to: String,
    cc: String,
    bcc: String,
    subject: String,
    body: String,
    html_body: String,
    sent_on_behalf_of: String,
    entry_id: Option<String>,
    importance: Importance,
}

/// Outlook's `olImportanceLow` (0), `olImportanceNormal` (1) and
/// `olImportanceHigh` (2); other than normal, it is sent as the
/// `Importance` and `X-Priority` headers, as Outlook does.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Importance {
    Low,
    #[default]
    Normal,
    High,
}

impl Importance {
    fn from_int(value: i32) -> Option<Importance> {
        [Importance::Low, Importance::Normal, Importance::High].get(usize::try_from(value).ok()?).copied()
    }

    fn headers(self) -> Vec<(String, String)> {
        let (importance, priority) = match self {
            Importance::Low => ("Low", "5"),
            Importance::Normal => return Vec::new(),
            Importance::High => ("High", "1"),
        };
        vec![("Importance".into(), importance.into()), ("X-Priority".into(), priority.into())]
    }
}

/// A mail being written: `Application.CreateItem(0)`.
pub struct MailItem {
    host: Arc<Host>,
    fields: Mutex<Fields>,
    recipients: Arc<Mutex<Vec<Arc<RecipientItem>>>>,
    reply_recipients: Arc<Mutex<Vec<Arc<RecipientItem>>>>,
    attachments: Arc<Mutex<Vec<Arc<AttachmentItem>>>>,
}

impl MailItem {
    pub fn new(host: Arc<Host>) -> MailItem {
        MailItem {
            host,
            fields: Mutex::default(),
            recipients: Arc::default(),
            reply_recipients: Arc::default(),
            attachments: Arc::default(),
        }
    }

    /// The mail as it stands: the typed To/CC/BCC lines, then the
    /// recipients added one by one; HTMLBody over Body.
    pub fn mail(&self) -> Mail {
        let fields = lock(&self.fields);
        let typed =
            [(RecipientClass::To, &fields.to), (RecipientClass::Cc, &fields.cc), (RecipientClass::Bcc, &fields.bcc)];
        let mut recipients: Vec<_> = typed
            .into_iter()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(class, line)| (class, Recipient::Typed(line.clone())))
            .collect();
        recipients.extend(lock(&self.recipients).iter().map(|r| r.recipient()));
        let reply: Vec<String> = lock(&self.reply_recipients).iter().map(|r| r.text()).collect();
        let body = if !fields.html_body.is_empty() {
            Some(Body::Html(fields.html_body.clone()))
        } else if !fields.body.is_empty() {
            Some(Body::Text(fields.body.clone()))
        } else {
            None
        };
        Mail {
            from: Some(fields.sent_on_behalf_of.clone()).filter(|s| !s.trim().is_empty()).map(Recipient::Typed),
            recipients,
            reply_to: Some(reply.join("; ")).filter(|r| !r.is_empty()),
            subject: fields.subject.clone(),
            body,
            attachments: lock(&self.attachments).iter().map(|a| a.attachment.clone()).collect(),
            headers: fields.importance.headers(),
        }
    }

    /// `To`, `CC` or `BCC` as Outlook reads it: the typed line and the
    /// recipients of that type, `; `-separated.
    fn line(&self, typed: &str, class: RecipientClass) -> String {
        let mut parts: Vec<String> = Some(typed.trim().to_string()).filter(|t| !t.is_empty()).into_iter().collect();
        parts.extend(lock(&self.recipients).iter().filter(|r| r.recipient().0 == class).map(|r| r.text()));
        parts.join("; ")
    }

    fn send(&self, args: &Args) -> Result<Value, Fault> {
        if lock(&self.fields).entry_id.is_some() {
            return Err(args.fault("the item was sent already"));
        }
        let queued = self.host.session()?.queue(&self.mail()).map_err(|e| Fault::library(&e))?;
        lock(&self.fields).entry_id = Some(queued.id);
        Ok(Value::Empty)
    }

    fn save_as(&self, args: &Args) -> Result<Value, Fault> {
        let path = args.text(0)?;
        match args.optional_int(1)? {
            Some(OL_RFC822) => {}
            None if path.to_ascii_lowercase().ends_with(".eml") => {}
            Some(OL_MSG) | None => return Err(args.unsupported("as olMSG (0)").hint("use olRFC822 (3), an .eml")),
            Some(other) => {
                return Err(args.unsupported(format_args!("as type {other}")).hint("use olRFC822 (3), an .eml"))
            }
        }
        self.host.session()?.write_eml(&self.mail(), Path::new(&path)).map_err(|e| Fault::library(&e))?;
        Ok(Value::Empty)
    }

    #[cfg(windows)]
    fn display(&self) -> Result<Value, Fault> {
        self.host.session()?.display(&self.mail()).map_err(|e| Fault::library(&e))?;
        Ok(Value::Empty)
    }

    #[cfg(not(windows))]
    fn display(&self) -> Result<Value, Fault> {
        Err(Fault("MailItem.Display needs Windows (the shell opens the .eml)".into()))
    }
}

impl Automation for MailItem {
    fn class(&self) -> &'static Class {
        &MAIL_ITEM
    }

    fn call(&self, name: &'static str, call: Call, args: &Args) -> Result<Value, Fault> {
        if let (Call::Put(value), "Importance") = (&call, name) {
            let importance = automation::int(value).and_then(Importance::from_int);
            lock(&self.fields).importance =
                importance.ok_or_else(|| args.fault(format_args!("{value:?} is not 0, 1 or 2")))?;
            return Ok(Value::Empty);
        }
        if let Call::Put(value) = &call {
            let mut fields = lock(&self.fields);
            let field = text_field(&mut fields, name).ok_or_else(|| args.fault("cannot be set"))?;
            *field = automation::text(value).ok_or_else(|| args.fault("must be text"))?;
            return Ok(Value::Empty);
        }
        let fields = lock(&self.fields);
        let (to, cc, bcc, entry_id) =
            (fields.to.clone(), fields.cc.clone(), fields.bcc.clone(), fields.entry_id.clone());
        let importance = fields.importance as i32;
        drop(fields);
        match name {
            "To" => Ok(Value::Text(self.line(&to, RecipientClass::To))),
            "CC" => Ok(Value::Text(self.line(&cc, RecipientClass::Cc))),
            "BCC" => Ok(Value::Text(self.line(&bcc, RecipientClass::Bcc))),
            "ReplyRecipients" => Ok(Value::Object(Arc::new(Recipients { list: self.reply_recipients.clone() }))),
            "Recipients" => Ok(Value::Object(Arc::new(Recipients { list: self.recipients.clone() }))),
            "Attachments" => Ok(Value::Object(Arc::new(Attachments { list: self.attachments.clone() }))),
            "Send" => self.send(args),
            "SaveAs" => self.save_as(args),
            "Display" => self.display(),
            "EntryID" => Ok(Value::Text(entry_id.unwrap_or_default())),
            "Sent" => Ok(Value::Bool(entry_id.is_some())),
            "Importance" => Ok(Value::Int(importance)),
            _ => Ok(Value::Text(text_field(&mut lock(&self.fields), name).map(|f| f.clone()).unwrap_or_default())),
        }
    }
}

/// The text property `name` of the item.
fn text_field<'a>(fields: &'a mut Fields, name: &str) -> Option<&'a mut String> {
    Some(match name {
        "To" => &mut fields.to,
        "CC" => &mut fields.cc,
        "BCC" => &mut fields.bcc,
        "Subject" => &mut fields.subject,
        "Body" => &mut fields.body,
        "HTMLBody" => &mut fields.html_body,
        "SentOnBehalfOfName" => &mut fields.sent_on_behalf_of,
        _ => return None,
    })
}

/// The 1-based `Item(index)` of a collection.
fn item<T: Automation + 'static>(list: &[Arc<T>], args: &Args) -> Result<Value, Fault> {
    let index = args.int(0)?;
    usize::try_from(index)
        .ok()
        .and_then(|i| list.get(i.checked_sub(1)?))
        .map(|found| Value::Object(found.clone()))
        .ok_or_else(|| args.fault(format_args!("no item {index} (there are {})", list.len())))
}

/// The members every collection has: `Count`, `Item(index)` and
/// `Remove(index)`; `None` for a member of its own.
fn collection_member<T: Automation + 'static>(
    list: &mut Vec<Arc<T>>,
    name: &str,
    args: &Args,
) -> Option<Result<Value, Fault>> {
    Some(match name {
        "Count" => Ok(Value::Int(list.len() as i32)),
        "Item" => item(list, args),
        "Remove" => item(list, args).and_then(|_| {
            list.remove(args.int(0)? as usize - 1);
            Ok(Value::Empty)
        }),
        _ => return None,
    })
}

/// A collection's items, for `For Each`.
fn collection_items<T: Automation + 'static>(list: &Mutex<Vec<Arc<T>>>) -> Option<Vec<Value>> {
    Some(lock(list).iter().map(|each| Value::Object(each.clone())).collect())
}

static RECIPIENTS: Class = Class {
    name: "Recipients",
    members: &[
        Member { name: "Add", params: &["Name"] },
        Member { name: "Count", params: &[] },
        Member { name: "Item", params: &["Index"] },
        Member { name: "Remove", params: &["Index"] },
        Member { name: "ResolveAll", params: &[] },
    ],
};

/// `MailItem.Recipients` and `MailItem.ReplyRecipients`.
pub struct Recipients {
    list: Arc<Mutex<Vec<Arc<RecipientItem>>>>,
}

impl Automation for Recipients {
    fn class(&self) -> &'static Class {
        &RECIPIENTS
    }

    fn call(&self, name: &'static str, call: Call, args: &Args) -> Result<Value, Fault> {
        if let Call::Put(_) = call {
            return Err(args.fault("cannot be set"));
        }
        let mut list = lock(&self.list);
        if let Some(common) = collection_member(&mut list, name, args) {
            return common;
        }
        match name {
            "Add" => {
                let added = Arc::new(RecipientItem::new(args.text(0)?, 1));
                list.push(added.clone());
                Ok(Value::Object(added))
            }
            "ResolveAll" => Ok(Value::Bool(list.iter().all(|r| r.resolves()))),
            _ => unreachable!("Recipients has no member {name}"),
        }
    }
    fn items(&self) -> Option<Vec<Value>> {
        collection_items(&self.list)
    }
}

static RECIPIENT: Class = Class {
    name: "Recipient",
    members: &[
        Member { name: "Address", params: &[] },
        Member { name: "Name", params: &[] },
        Member { name: "Type", params: &[] },
        Member { name: "Resolve", params: &[] },
        Member { name: "Resolved", params: &[] },
    ],
};

/// A recipient: the text as added (`a@x`, `Name <a@x>`) and its type
/// (1 To, 2 CC, 3 BCC).
pub struct RecipientItem {
    state: Mutex<(String, i32)>,
}

impl RecipientItem {
    pub fn new(text: String, kind: i32) -> RecipientItem {
        RecipientItem { state: Mutex::new((text, kind)) }
    }

    fn text(&self) -> String {
        lock(&self.state).0.clone()
    }

    fn recipient(&self) -> (RecipientClass, Recipient) {
        let (text, kind) = lock(&self.state).clone();
        let class = match kind {
            2 => RecipientClass::Cc,
            3 => RecipientClass::Bcc,
            _ => RecipientClass::To,
        };
        (class, Recipient::Typed(text))
    }

    fn resolves(&self) -> bool {
        parse_address(&parse_entry(&self.text()).email).is_ok()
    }
}

impl Automation for RecipientItem {
    fn class(&self) -> &'static Class {
        &RECIPIENT
    }

    fn call(&self, name: &'static str, call: Call, args: &Args) -> Result<Value, Fault> {
        let mut state = lock(&self.state);
        let spec = parse_entry(&state.0);
        match (name, call) {
            ("Type", Call::Put(value)) => match automation::int(&value) {
                Some(kind @ 1..=3) => {
                    state.1 = kind;
                    Ok(Value::Empty)
                }
                _ => Err(args.fault(format_args!("{value:?} is not 1 (To), 2 (CC) or 3 (BCC)"))),
            },
            (_, Call::Put(_)) => Err(args.fault("cannot be set")),
            ("Type", Call::Get) => Ok(Value::Int(state.1)),
            ("Address", Call::Get) => Ok(Value::Text(spec.email)),
            ("Name", Call::Get) => Ok(Value::Text(spec.name.unwrap_or(spec.email))),
            ("Resolve" | "Resolved", Call::Get) => {
                drop(state);
                Ok(Value::Bool(self.resolves()))
            }
            _ => unreachable!("Recipient has no member {name}"),
        }
    }
}

static ATTACHMENTS: Class = Class {
    name: "Attachments",
    members: &[
        Member { name: "Add", params: &["Source", "Type", "Position", "DisplayName"] },
        Member { name: "Count", params: &[] },
        Member { name: "Item", params: &["Index"] },
        Member { name: "Remove", params: &["Index"] },
    ],
};

/// `MailItem.Attachments`: files, read when the mail is sent.
pub struct Attachments {
    list: Arc<Mutex<Vec<Arc<AttachmentItem>>>>,
}

/// Outlook's `olByValue` (a copy of the file), the one attachment type.
const OL_BY_VALUE: i32 = 1;

impl Automation for Attachments {
    fn class(&self) -> &'static Class {
        &ATTACHMENTS
    }

    fn call(&self, name: &'static str, call: Call, args: &Args) -> Result<Value, Fault> {
        if let Call::Put(_) = call {
            return Err(args.fault("cannot be set"));
        }
        let mut list = lock(&self.list);
        if let Some(common) = collection_member(&mut list, name, args) {
            return common;
        }
        match name {
            "Add" => {
                let path = args.text(0)?;
                match args.optional_int(1)? {
                    None | Some(OL_BY_VALUE) => {}
                    Some(other) => return Err(args.unsupported(format_args!("of type {other} (only 1, olByValue)"))),
                }
                let name = args.optional_text(3)?.filter(|n| !n.is_empty());
                let added = Arc::new(AttachmentItem { attachment: Attachment { path, name } });
                list.push(added.clone());
                Ok(Value::Object(added))
            }
            _ => unreachable!("Attachments has no member {name}"),
        }
    }
    fn items(&self) -> Option<Vec<Value>> {
        collection_items(&self.list)
    }
}

static ATTACHMENT: Class = Class {
    name: "Attachment",
    members: &[
        Member { name: "FileName", params: &[] },
        Member { name: "DisplayName", params: &[] },
        Member { name: "PathName", params: &[] },
        Member { name: "Type", params: &[] },
    ],
};

/// An attached file.
pub struct AttachmentItem {
    attachment: Attachment,
}

impl Automation for AttachmentItem {
    fn class(&self) -> &'static Class {
        &ATTACHMENT
    }

    fn call(&self, name: &'static str, call: Call, args: &Args) -> Result<Value, Fault> {
        if let Call::Put(_) = call {
            return Err(args.fault("cannot be set"));
        }
        let path = &self.attachment.path;
        let file_name = path.rsplit(['\\', '/']).next().unwrap_or(path).to_string();
        match name {
            "FileName" => Ok(Value::Text(file_name)),
            "DisplayName" => Ok(Value::Text(self.attachment.name.clone().unwrap_or(file_name))),
            "PathName" => Ok(Value::Text(path.clone())),
            "Type" => Ok(Value::Int(OL_BY_VALUE)),
            _ => unreachable!("Attachment has no member {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automation::invoke;
    use crate::objects::Application;

    /// Calls `name` on `object` as a script does (by DISPID).
    fn call(object: &dyn Automation, name: &str, call: Call, args: Vec<Value>) -> Result<Value, Fault> {
        invoke(object, object.class().dispid(name).unwrap(), call, args)
    }

    fn get(object: &dyn Automation, name: &str, args: Vec<Value>) -> Value {
        call(object, name, Call::Get, args).unwrap()
    }

    fn put(object: &dyn Automation, name: &str, value: &str) {
        call(object, name, Call::Put(Value::Text(value.into())), vec![]).unwrap();
    }

    fn object(value: Value) -> Arc<dyn Automation> {
        match value {
            Value::Object(object) => object,
            other => panic!("not an object: {other:?}"),
        }
    }

    fn text(value: Value) -> String {
        automation::text(&value).unwrap()
    }

    #[test]
    fn a_scripted_mail_becomes_the_drop_ins_mail() {
        let item = MailItem::new(Arc::default());
        put(&item, "to", "Müller, Hans <hans@example.com>; b@example.com");
        put(&item, "CC", "cc@example.com");
        put(&item, "Subject", "Invoice 117");
        put(&item, "Body", "plain");
        put(&item, "HTMLBody", "<p>Dear client</p>");
        put(&item, "SentOnBehalfOfName", "Office <office@firm.example>");
        call(&item, "Importance", Call::Put(Value::Int(2)), vec![]).unwrap();
        assert!(matches!(get(&item, "Importance", vec![]), Value::Int(2)));
        let bad = call(&item, "Importance", Call::Put(Value::Int(7)), vec![]).unwrap_err();
        assert_eq!(bad.0, "MailItem.Importance: Int(7) is not 0, 1 or 2");
        assert_eq!(text(get(&item, "subject", vec![])), "Invoice 117");
        let recipients = object(get(&item, "Recipients", vec![]));
        let added = object(get(&*recipients, "Add", vec![Value::Text("Boss <boss@firm.example>".into())]));
        call(&*added, "Type", Call::Put(Value::Int(3)), vec![]).unwrap();
        assert_eq!(text(get(&*added, "Name", vec![])), "Boss");
        assert_eq!(text(get(&*added, "Address", vec![])), "boss@firm.example");
        assert!(matches!(get(&*added, "Resolve", vec![]), Value::Bool(true)));
        let bad = call(&*added, "Type", Call::Put(Value::Int(4)), vec![]).unwrap_err();
        assert!(bad.0.starts_with("Recipient.Type: "), "{}", bad.0);
        assert_eq!(text(get(&item, "BCC", vec![])), "Boss <boss@firm.example>");
        let reply = object(get(&item, "ReplyRecipients", vec![]));
        get(&*reply, "Add", vec![Value::Text("replies@firm.example".into())]);
        let attachments = object(get(&item, "Attachments", vec![]));
        let file = r"C:\docs\Rechnung 117.pdf";
        let named = vec![Value::Text(file.into()), Value::Int(1), Value::Empty, Value::Text("Invoice.pdf".into())];
        get(&*attachments, "Add", named);
        get(&*attachments, "Add", vec![Value::Text(r"C:\docs\Übersicht.txt".into())]);
        assert!(matches!(get(&*attachments, "Count", vec![]), Value::Int(2)));
        assert_eq!(attachments.items().map(|items| items.len()), Some(2));
        assert!(item.items().is_none());
        let first = object(get(&*attachments, "Item", vec![Value::Int(1)]));
        let second = object(get(&item, "Attachments", vec![Value::Int(2)]));
        assert_eq!(text(get(&*second, "FileName", vec![])), "Übersicht.txt");
        let subject = call(&item, "Subject", Call::Get, vec![Value::Int(2)]).unwrap_err();
        assert_eq!(subject.0, "MailItem.Subject: takes no arguments");
        assert_eq!(text(get(&*first, "FileName", vec![])), "Rechnung 117.pdf");
        assert_eq!(text(get(&*first, "DisplayName", vec![])), "Invoice.pdf");
        let missing = call(&*attachments, "Item", Call::Get, vec![Value::Int(3)]).unwrap_err();
        assert_eq!(missing.0, "Attachments.Item: no item 3 (there are 2)");

        let mail = item.mail();
        assert_eq!(
            mail.recipients,
            vec![
                (RecipientClass::To, Recipient::Typed("Müller, Hans <hans@example.com>; b@example.com".into())),
                (RecipientClass::Cc, Recipient::Typed("cc@example.com".into())),
                (RecipientClass::Bcc, Recipient::Typed("Boss <boss@firm.example>".into())),
            ]
        );
        assert_eq!(mail.from, Some(Recipient::Typed("Office <office@firm.example>".into())));
        assert_eq!(mail.reply_to.as_deref(), Some("replies@firm.example"));
        assert_eq!(mail.body, Some(Body::Html("<p>Dear client</p>".into())));
        assert_eq!(
            mail.headers,
            vec![("Importance".to_string(), "High".to_string()), ("X-Priority".to_string(), "1".to_string())]
        );
        assert_eq!(
            mail.attachments,
            vec![
                Attachment { path: file.into(), name: Some("Invoice.pdf".into()) },
                Attachment { path: r"C:\docs\Übersicht.txt".into(), name: None },
            ]
        );
    }

    #[test]
    fn unsupported_members_and_types_are_errors_naming_them() {
        let app = Application::default();
        let item = object(get(&app, "CreateItem", vec![Value::Int(0)]));
        let unknown = call(&*item, "SaveSentMessageFolder", Call::Get, vec![]).unwrap_err();
        assert_eq!(unknown.0, "MailItem.SaveSentMessageFolder is not supported by smtpbridge");
        let msg = call(&*item, "SaveAs", Call::Get, vec![Value::Text(r"C:\x.msg".into()), Value::Int(0)]).unwrap_err();
        assert_eq!(msg.0, "MailItem.SaveAs as olMSG (0) is not supported by smtpbridge: use olRFC822 (3), an .eml");
        let untyped = call(&*item, "SaveAs", Call::Get, vec![Value::Text(r"C:\x.msg".into())]).unwrap_err();
        assert_eq!(untyped.0, msg.0);
        let appointment = call(&app, "CreateItem", Call::Get, vec![Value::Int(1)]).unwrap_err();
        assert_eq!(
            appointment.0,
            "Application.CreateItem for item type 1 (only 0, olMailItem) is not supported by smtpbridge"
        );
        let set = call(&*item, "EntryID", Call::Put(Value::Text("x".into())), vec![]).unwrap_err();
        assert_eq!(set.0, "MailItem.EntryID: cannot be set");
        let missing = call(&app, "GetNamespace", Call::Get, vec![]).unwrap_err();
        assert_eq!(missing.0, "Application.GetNamespace: Type is missing");
        let namespace = object(get(&app, "GetNamespace", vec![Value::Text("mapi".into())]));
        assert!(matches!(get(&*namespace, "Logon", vec![]), Value::Empty));
        assert_eq!(text(get(&*item, "EntryID", vec![])), "");
        assert!(matches!(get(&*item, "Sent", vec![]), Value::Bool(false)));
    }
}
