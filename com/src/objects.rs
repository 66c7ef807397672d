//! `Application` and `NameSpace` (ABI.md §19): the objects a host's
//! sign-in lines and `CreateItem(0)` reach, and the additions `Status`,
//! `Configure` and `DataDir`.

use smtpbridge_dropin::Session;
use std::sync::{Arc, Mutex};

use crate::automation::{Args, Automation, Call, Class, Fault, Member, Value};
use crate::mailitem::{MailItem, RecipientItem};

/// What an `Application` and everything made from it share: the process's
/// client, joined when first needed (so `CreateObject` works before the
/// data_dir is set up, and a script that only builds a mail never opens
/// it) and let go by `Quit` or when the last object is released.
#[derive(Default)]
pub struct Host {
    session: Mutex<Option<Arc<Session>>>,
}

impl Host {
    pub fn session(&self) -> Result<Arc<Session>, Fault> {
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = session.as_ref() {
            return Ok(session.clone());
        }
        let opened = Arc::new(Session::open().map_err(|e| Fault::library(&e))?);
        *session = Some(opened.clone());
        Ok(opened)
    }

    fn quit(&self) {
        let session = self.session.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(session);
    }
}

/// Outlook's `olMailItem`, the one item type there is.
const OL_MAIL_ITEM: i32 = 0;

static APPLICATION: Class = Class {
    name: "Application",
    members: &[
        Member { name: "CreateItem", params: &["ItemType"] },
        Member { name: "GetNamespace", params: &["Type"] },
        Member { name: "Session", params: &[] },
        Member { name: "Status", params: &["EntryID"] },
        Member { name: "Configure", params: &["Keys"] },
        Member { name: "DataDir", params: &[] },
        Member { name: "Quit", params: &[] },
        Member { name: "Name", params: &[] },
        Member { name: "Version", params: &[] },
    ],
};

/// `SmtpBridge.Application`, the object `CreateObject` makes.
#[derive(Default)]
pub struct Application {
    host: Arc<Host>,
}

impl Automation for Application {
    fn class(&self) -> &'static Class {
        &APPLICATION
    }

    fn call(&self, name: &'static str, call: Call, args: &Args) -> Result<Value, Fault> {
        if let Call::Put(_) = call {
            return Err(args.fault("cannot be set"));
        }
        match name {
            "CreateItem" => match args.int(0)? {
                OL_MAIL_ITEM => Ok(Value::Object(Arc::new(MailItem::new(self.host.clone())))),
                other => Err(args.unsupported(format_args!("for item type {other} (only 0, olMailItem)"))),
            },
            "GetNamespace" => match args.text(0)? {
                kind if kind.eq_ignore_ascii_case("MAPI") => Ok(self.namespace()),
                other => Err(args.unsupported(format_args!("for {other:?} (only \"MAPI\")"))),
            },
            "Session" => Ok(self.namespace()),
            "Status" => {
                let status = self.host.session()?.status(&args.text(0)?).map_err(|e| Fault::library(&e))?;
                Ok(Value::Text(serde_json::to_string(&status).map_err(|e| args.fault(e))?))
            }
            "Configure" => {
                self.host.session()?.configure(&args.text(0)?).map_err(|e| Fault::library(&e))?;
                Ok(Value::Empty)
            }
            "DataDir" => {
                let dir = smtpbridge_dropin::datadir::lookup().map_err(|e| Fault::library(&e))?;
                Ok(Value::Text(dir.to_string_lossy().into_owned()))
            }
            "Quit" => {
                self.host.quit();
                Ok(Value::Empty)
            }
            "Name" => Ok(Value::Text("SmtpBridge".into())),
            "Version" => Ok(Value::Text(smtpbridge::VERSION.into())),
            _ => unreachable!("Application has no member {name}"),
        }
    }
}

impl Application {
    fn namespace(&self) -> Value {
        Value::Object(Arc::new(NameSpace { host: self.host.clone() }))
    }
}

static NAMESPACE: Class = Class {
    name: "NameSpace",
    members: &[
        Member { name: "CurrentUser", params: &[] },
        Member { name: "Logon", params: &["Profile", "Password", "ShowDialog", "NewSession"] },
        Member { name: "Logoff", params: &[] },
        Member { name: "Type", params: &[] },
    ],
};

/// `Application.Session` / `GetNamespace("MAPI")`: enough for the usual
/// sign-in lines. `Logon` and `Logoff` do nothing (the data_dir's settings
/// and credentials are used); `CurrentUser` is the default sender.
pub struct NameSpace {
    host: Arc<Host>,
}

impl Automation for NameSpace {
    fn class(&self) -> &'static Class {
        &NAMESPACE
    }

    fn call(&self, name: &'static str, call: Call, args: &Args) -> Result<Value, Fault> {
        if let Call::Put(_) = call {
            return Err(args.fault("cannot be set"));
        }
        match name {
            "CurrentUser" => {
                let session = self.host.session()?;
                let setting = |key| session.config(key).map_err(|e| Fault::library(&e));
                let (email, display) = (setting("SMTPSenderEmail")?, setting("SMTPSenderName")?);
                let text = if display.is_empty() { email } else { format!("{display} <{email}>") };
                Ok(Value::Object(Arc::new(RecipientItem::new(text, 1))))
            }
            "Logon" | "Logoff" => Ok(Value::Empty),
            "Type" => Ok(Value::Text("MAPI".into())),
            _ => unreachable!("NameSpace has no member {name}"),
        }
    }
}
