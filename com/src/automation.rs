//! Late binding as VBA, VB6 and VBScript use it, without COM types: each
//! class is a table of member names (looked up without regard to case, as
//! those languages do), and a call is a member, a kind (get, put, method)
//! and its arguments as [`Value`]s. `dispatch.rs` turns `IDispatch` calls
//! into these on Windows; the object model (`objects.rs`) answers them on
//! every platform, so it is unit tested on Linux.

use smtpbridge::Error;
use std::sync::{Arc, Mutex};

/// A member of a class: its name as Outlook spells it and the names of
/// its parameters (for VBA's named arguments, `Add Source:=…`).
pub struct Member {
    pub name: &'static str,
    pub params: &'static [&'static str],
}

/// A class as scripts see it: its name (for error texts) and its members.
/// A member's DISPID is its index + 1.
pub struct Class {
    pub name: &'static str,
    pub members: &'static [Member],
}

/// The default member's DISPID (`oleauto.h`).
const DISPID_VALUE: i32 = 0;
/// The DISPID of `_NewEnum`, the enumerator `For Each` asks for (`oleauto.h`).
pub const DISPID_NEWENUM: i32 = -4;
/// DISPIDs from here on name members no class has (see [`dispid`]).
const UNKNOWN_BASE: i32 = 0x4000_0000;
/// How many unknown names a process remembers; beyond, they are unknown
/// to `GetIDsOfNames` (DISP_E_UNKNOWNNAME).
const UNKNOWN_LIMIT: usize = 4096;
static UNKNOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl Class {
    /// The DISPID of `name`. A name the class does not have gets one too,
    /// so that calling it raises an error that names it ("… is not
    /// supported by smtpbridge") instead of the script host's generic
    /// "Object doesn't support this property or method".
    pub fn dispid(&self, name: &str) -> Option<i32> {
        if name.eq_ignore_ascii_case("_NewEnum") {
            return Some(DISPID_NEWENUM);
        }
        if let Some(index) = self.members.iter().position(|m| m.name.eq_ignore_ascii_case(name)) {
            return Some(index as i32 + 1);
        }
        let mut unknown = UNKNOWN.lock().unwrap_or_else(|e| e.into_inner());
        let index = match unknown.iter().position(|n| n.eq_ignore_ascii_case(name)) {
            Some(index) => index,
            None if unknown.len() < UNKNOWN_LIMIT => {
                unknown.push(name.to_string());
                unknown.len() - 1
            }
            None => return None,
        };
        Some(UNKNOWN_BASE + index as i32)
    }

    /// The member of a DISPID, or the name of an unknown member. DISPID 0
    /// (DISPID_VALUE, the default member: `mail.Attachments(1)`) is a
    /// collection's `Item`.
    pub fn member(&self, dispid: i32) -> Result<&'static Member, String> {
        if dispid >= 1 && (dispid as usize) <= self.members.len() {
            return Ok(&self.members[dispid as usize - 1]);
        }
        if dispid == DISPID_VALUE {
            return self.members.iter().find(|m| m.name == "Item").ok_or_else(|| "(default member)".to_string());
        }
        let unknown = UNKNOWN.lock().unwrap_or_else(|e| e.into_inner());
        let name = dispid
            .checked_sub(UNKNOWN_BASE)
            .and_then(|i| unknown.get(usize::try_from(i).ok()?).cloned())
            .unwrap_or_else(|| format!("member #{dispid}"));
        Err(name)
    }

    /// The position of a named argument of `member`.
    pub fn param(&self, member: i32, name: &str) -> Option<i32> {
        let member = self.member(member).ok()?;
        member.params.iter().position(|p| p.eq_ignore_ascii_case(name)).map(|i| i as i32)
    }
}

/// A value in or out of a call.
#[derive(Clone)]
pub enum Value {
    /// Nothing: a missing optional argument, or no result.
    Empty,
    Bool(bool),
    Int(i32),
    Text(String),
    Object(Arc<dyn Automation>),
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Empty => write!(f, "Empty"),
            Value::Bool(b) => write!(f, "Bool({b})"),
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Text(t) => write!(f, "Text({t:?})"),
            Value::Object(o) => write!(f, "Object({})", o.class().name),
        }
    }
}

/// What a call does with its member.
#[derive(Debug)]
pub enum Call {
    /// A property read or a method call (scripts often cannot tell).
    Get,
    /// A property assignment, with the value assigned.
    Put(Value),
}

/// Why a call failed: the text of the COM exception (`Err.Description`).
#[derive(Debug, PartialEq, Eq)]
pub struct Fault(pub String);

impl Fault {
    /// A library error as §19 asks: the result name and the library's text
    /// with its advice.
    pub fn library(error: &Error) -> Fault {
        Fault(smtpbridge_dropin::describe(error))
    }

    /// The fault with what to do instead.
    pub fn hint(self, hint: &str) -> Fault {
        Fault(format!("{}: {hint}", self.0))
    }
}

/// An object scripts can call.
pub trait Automation: Send + Sync {
    fn class(&self) -> &'static Class;
    /// Answers a call of the member `name` (as the class spells it).
    fn call(&self, name: &'static str, call: Call, args: &Args) -> Result<Value, Fault>;

    /// A collection's items, for `For Each`; None for other objects.
    fn items(&self) -> Option<Vec<Value>> {
        None
    }
}

/// Answers a call of a DISPID: a member the class does not have is an
/// error naming it; a panic in the object model is caught by the caller.
pub fn invoke(object: &dyn Automation, dispid: i32, call: Call, args: Vec<Value>) -> Result<Value, Fault> {
    let class = object.class();
    let member =
        class.member(dispid).map_err(|name| Fault(format!("{}.{name} is not supported by smtpbridge", class.name)))?;
    let args_of = |values| Args { class: class.name, member: member.name, params: member.params, values };
    // `mail.Attachments(1)`: arguments to a property that takes none go to
    // the default member of what it gives (as OLE Automation does).
    if member.params.is_empty() && !args.is_empty() && matches!(call, Call::Get) {
        return match object.call(member.name, call, &args_of(Vec::new()))? {
            Value::Object(inner) => invoke(&*inner, DISPID_VALUE, Call::Get, args),
            _ => Err(args_of(args).fault("takes no arguments")),
        };
    }
    object.call(member.name, call, &args_of(args))
}

/// The arguments of a call, by position (named ones already placed).
pub struct Args {
    class: &'static str,
    member: &'static str,
    params: &'static [&'static str],
    values: Vec<Value>,
}

impl Args {
    fn param_name(&self, index: usize) -> String {
        self.params.get(index).map(|p| p.to_string()).unwrap_or_else(|| format!("argument {}", index + 1))
    }

    /// An error about this call: `Class.Member: text`.
    pub fn fault(&self, text: impl std::fmt::Display) -> Fault {
        Fault(format!("{}.{}: {text}", self.class, self.member))
    }

    /// The member as a script wrote it: `Class.Member`.
    pub fn unsupported(&self, what: impl std::fmt::Display) -> Fault {
        Fault(format!("{}.{} {what} is not supported by smtpbridge", self.class, self.member))
    }

    /// Argument `index`, or None when it is missing.
    pub fn optional(&self, index: usize) -> Option<&Value> {
        self.values.get(index).filter(|v| !matches!(v, Value::Empty))
    }

    /// Argument `index` as text; a missing one is an error naming it.
    pub fn text(&self, index: usize) -> Result<String, Fault> {
        match self.optional(index) {
            Some(value) => text(value).ok_or_else(|| self.fault(format!("{} must be text", self.param_name(index)))),
            None => Err(self.fault(format!("{} is missing", self.param_name(index)))),
        }
    }

    /// Argument `index` as text, if given.
    pub fn optional_text(&self, index: usize) -> Result<Option<String>, Fault> {
        self.optional(index).map(|_| self.text(index)).transpose()
    }

    /// Argument `index` as a number, if given.
    pub fn optional_int(&self, index: usize) -> Result<Option<i32>, Fault> {
        self.optional(index)
            .map(|v| int(v).ok_or_else(|| self.fault(format!("{} must be a number", self.param_name(index)))))
            .transpose()
    }

    /// Argument `index` as a number; a missing one is an error naming it.
    pub fn int(&self, index: usize) -> Result<i32, Fault> {
        self.optional_int(index)?.ok_or_else(|| self.fault(format!("{} is missing", self.param_name(index))))
    }
}

/// A value as text, as VBA converts it.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::Empty => Some(String::new()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Text(t) => Some(t.clone()),
        Value::Object(_) => None,
    }
}

/// A value as a number, as VBA converts it.
pub fn int(value: &Value) -> Option<i32> {
    match value {
        Value::Empty => Some(0),
        Value::Bool(b) => Some(if *b { -1 } else { 0 }),
        Value::Int(i) => Some(*i),
        Value::Text(t) => t.trim().parse().ok(),
        Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static MEMBERS: [Member; 3] = [
        Member { name: "Subject", params: &[] },
        Member { name: "Add", params: &["Source", "DisplayName"] },
        Member { name: "Item", params: &["Index"] },
    ];
    static CLASS: Class = Class { name: "Thing", members: &MEMBERS };

    #[test]
    fn names_are_found_without_regard_to_case_and_unknown_names_remembered() {
        assert_eq!(CLASS.dispid("subject"), Some(1));
        assert_eq!(CLASS.dispid("ADD"), Some(2));
        assert_eq!(CLASS.param(2, "displayname"), Some(1));
        assert_eq!(CLASS.param(2, "Position"), None);
        let unknown = CLASS.dispid("SaveSentMessageFolder").unwrap();
        assert_eq!(CLASS.dispid("savesentmessagefolder"), Some(unknown));
        assert_eq!(CLASS.member(unknown).err().as_deref(), Some("SaveSentMessageFolder"));
        assert_eq!(CLASS.member(1).unwrap().name, "Subject");
        assert_eq!(CLASS.member(0).unwrap().name, "Item");
        assert_eq!(CLASS.member(DISPID_VALUE).unwrap().name, "Item");
    }

    #[test]
    fn arguments_convert_as_vba_does_and_name_what_is_missing() {
        let args = Args {
            class: "Thing",
            member: "Add",
            params: MEMBERS[1].params,
            values: vec![Value::Int(3), Value::Empty, Value::Text(" 7 ".into())],
        };
        assert_eq!(args.text(0).unwrap(), "3");
        assert_eq!(args.optional_text(1).unwrap(), None);
        assert_eq!(args.text(1).unwrap_err(), Fault("Thing.Add: DisplayName is missing".into()));
        assert_eq!(args.int(2).unwrap(), 7);
        assert_eq!(args.int(5).unwrap_err(), Fault("Thing.Add: argument 6 is missing".into()));
    }
}
