//! Addresses as Outlook users type them.
//!
//! A host copies its "To" field into the message JSON as the user typed
//! it: `Müller, Hans <h@example.com>; b@example.com`. This module reads
//! such text without ever failing: it only splits it into addresses and
//! display names, and the message's validation then checks each address
//! and names the one at fault.
//!
//! - A list is split at `;`, and at `,` once the text since the last split
//!   holds an `@` (or nothing): the comma in an unquoted display name (`Müller, Hans
//!   <h@…>`) comes before the address and does not split it. Separators
//!   inside `"…"` or `<…>` never split.
//! - One entry is `addr`, `<addr>`, `Name <addr>` or `"Name" <addr>`
//!   (quotes removed, `\"` and `\\` unescaped).
//! - Spaces and TABs around entries are dropped; CR, LF and other control
//!   characters are kept, so validation refuses them.

use lettre::message::Mailbox;
use lettre::Address;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

use crate::error::{Error, Result};
use crate::text::printable;

/// An address as the host gives it: `"a@b"`, `"Name <a@b>"` (see
/// [`split_list`]) or `{"email", "name"}`.
#[derive(Clone, Debug, PartialEq)]
pub struct AddressSpec {
    pub email: String,
    pub name: Option<String>,
}

impl<'de> Deserialize<'de> for AddressSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct AddressVisitor;
        impl<'de> Visitor<'de> for AddressVisitor {
            type Value = AddressSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an address string or {\"email\", \"name\"}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<AddressSpec, E> {
                Ok(parse_entry(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<AddressSpec, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Object {
                    email: String,
                    #[serde(default)]
                    name: Option<String>,
                }
                let o = Object::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(AddressSpec { email: o.email, name: o.name })
            }
        }
        deserializer.deserialize_any(AddressVisitor)
    }
}

/// Parses a mail address, refusing control characters and anything lettre
/// would not put in a header.
pub fn parse_address(text: &str) -> Result<Address> {
    if text.chars().any(char::is_control) || text.trim() != text || text.is_empty() {
        return Err(Error::message_error(format!("\"{}\" is not a valid mail address", printable(text))));
    }
    text.parse::<Address>()
        .map_err(|e| Error::message_error(format!("\"{}\" is not a valid mail address: {e}", printable(text))))
}

/// `address` with its domain as A-labels (UTS #46, as IDNA 2008 mail
/// expects): `user@bücher.example` becomes `user@xn--bcher-kva.example`.
/// An ASCII domain is returned as it is; a domain that is no valid IDN is
/// `SMTPB_ERR_MESSAGE` naming the address. The local part is kept: a
/// non-ASCII one needs a server that offers SMTPUTF8.
pub fn ascii_domain(address: &Address) -> Result<Address> {
    let domain = address.domain();
    if domain.is_ascii() {
        return Ok(address.clone());
    }
    let ascii = idna::domain_to_ascii(domain).map_err(|_| {
        Error::message_error(format!(
            "\"{}\": the domain is not a valid international domain name",
            printable(address.as_ref())
        ))
    })?;
    Address::new(address.user(), ascii).map_err(|e| {
        Error::message_error(format!("\"{}\" is not a valid mail address: {e}", printable(address.as_ref())))
    })
}

/// `mailbox` with its domain as A-labels (see [`ascii_domain`]).
pub fn ascii_mailbox(mailbox: &Mailbox) -> Result<Mailbox> {
    Ok(Mailbox::new(mailbox.name.clone(), ascii_domain(&mailbox.email)?))
}

/// Splits a list of addresses at `;` and, after an address, at `,`.
/// Returns the entries, trimmed, without empty ones.
pub fn split_list(text: &str) -> Vec<&str> {
    let mut entries = Vec::new();
    let (mut start, mut in_quote, mut escaped, mut in_angle, mut seen_at) = (0, false, false, false, false);
    for (i, c) in text.char_indices() {
        if in_quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_quote = false,
                _ => {}
            }
            continue;
        }
        let split = match c {
            '"' => {
                in_quote = true;
                false
            }
            '<' => {
                in_angle = true;
                false
            }
            '>' => {
                in_angle = false;
                false
            }
            '@' => {
                seen_at = true;
                false
            }
            ';' => !in_angle,
            ',' => !in_angle && (seen_at || trim(&text[start..i]).is_empty()),
            _ => false,
        };
        if split {
            entries.push(&text[start..i]);
            start = i + 1;
            seen_at = false;
        }
    }
    entries.push(&text[start..]);
    entries.into_iter().map(trim).filter(|e| !e.is_empty()).collect()
}

fn trim(text: &str) -> &str {
    text.trim_matches(|c| c == ' ' || c == '\t')
}

/// Reads one entry: `addr`, `<addr>`, `Name <addr>` or `"Name" <addr>`.
/// Text that is none of these is taken as the address, for validation to
/// refuse by name.
pub fn parse_entry(text: &str) -> AddressSpec {
    let text = trim(text);
    let bracketed = text.strip_suffix('>').and_then(|t| t.rfind('<').map(|open| (&t[..open], &t[open + 1..])));
    let Some((name, email)) = bracketed else {
        return AddressSpec { email: text.to_string(), name: None };
    };
    let name = trim(name);
    let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(quoted) => unescape(quoted),
        None => name.to_string(),
    };
    AddressSpec { email: trim(email).to_string(), name: Some(name).filter(|n| !n.is_empty()) }
}

fn unescape(quoted: &str) -> String {
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            _ => out.push(c),
        }
    }
    out
}

/// Every entry of a list as typed (see [`split_list`]).
pub fn parse_list(text: &str) -> Vec<AddressSpec> {
    split_list(text).into_iter().map(parse_entry).collect()
}

/// A list field of message JSON (`to`, `cc`, `bcc`): an array of
/// addresses (strings or `{"email", "name"}`), or one string; every string
/// may hold several addresses (see [`split_list`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AddressList(pub Vec<AddressSpec>);

impl std::ops::Deref for AddressList {
    type Target = [AddressSpec];
    fn deref(&self) -> &[AddressSpec] {
        &self.0
    }
}

impl From<Vec<AddressSpec>> for AddressList {
    fn from(list: Vec<AddressSpec>) -> Self {
        AddressList(list)
    }
}

/// One element of a list array: an object is one address, a string may be
/// several.
enum Element {
    One(AddressSpec),
    Text(String),
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct ElementVisitor;
        impl<'de> Visitor<'de> for ElementVisitor {
            type Value = Element;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an address string or {\"email\", \"name\"}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Element, E> {
                Ok(Element::Text(v.to_string()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> std::result::Result<Element, A::Error> {
                AddressSpec::deserialize(de::value::MapAccessDeserializer::new(map)).map(Element::One)
            }
        }
        deserializer.deserialize_any(ElementVisitor)
    }
}

impl<'de> Deserialize<'de> for AddressList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = AddressList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of addresses, or one string of addresses separated by ; or ,")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<AddressList, E> {
                Ok(AddressList(parse_list(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<AddressList, A::Error> {
                let mut list = Vec::new();
                while let Some(element) = seq.next_element::<Element>()? {
                    match element {
                        Element::One(spec) => list.push(spec),
                        Element::Text(text) => list.extend(parse_list(&text)),
                    }
                }
                Ok(AddressList(list))
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn international_domains_become_a_labels() {
        let a: Address = "user@bücher.example".parse().unwrap();
        assert_eq!(ascii_domain(&a).unwrap().to_string(), "user@xn--bcher-kva.example");
        let a: Address = "user@MÜNCHEN.example".parse().unwrap();
        assert_eq!(ascii_domain(&a).unwrap().to_string(), "user@xn--mnchen-3ya.example");
        let a: Address = "plain@example.com".parse().unwrap();
        assert_eq!(ascii_domain(&a).unwrap(), a);
        let a: Address = "jörg@bücher.example".parse().unwrap();
        assert_eq!(ascii_domain(&a).unwrap().to_string(), "jörg@xn--bcher-kva.example");
    }

    fn spec(email: &str, name: Option<&str>) -> AddressSpec {
        AddressSpec { email: email.into(), name: name.map(str::to_string) }
    }

    #[test]
    fn a_comma_in_an_unquoted_display_name_does_not_split_it() {
        assert_eq!(
            parse_list("Müller, Hans <h@example.com>, b@y.example; \"Doe; Jane\" <j@z.example>"),
            vec![
                spec("h@example.com", Some("Müller, Hans")),
                spec("b@y.example", None),
                spec("j@z.example", Some("Doe; Jane")),
            ]
        );
        assert_eq!(split_list(" a@x.example ;; b@y.example , "), vec!["a@x.example", "b@y.example"]);
        assert!(split_list(" ; , ;").is_empty());
        assert_eq!(split_list("<a,b@x.example>"), vec!["<a,b@x.example>"]);
    }

    #[test]
    fn entries_keep_what_validation_must_refuse() {
        assert_eq!(parse_entry("<a@x.example>"), spec("a@x.example", None));
        assert_eq!(parse_entry("\"A \\\"B\\\"\" <a@x.example>"), spec("a@x.example", Some("A \"B\"")));
        assert_eq!(parse_entry("Hans <a@x.example"), spec("Hans <a@x.example", None));
        assert_eq!(parse_entry("a@x.example\r\n"), spec("a@x.example\r\n", None));
        assert_eq!(split_list("Hans Müller"), vec!["Hans Müller"]);
    }

    #[test]
    fn lists_read_from_a_string_or_an_array() {
        let list: AddressList = serde_json::from_str(r#""a@x.example; Müller, Hans <h@example.com>""#).unwrap();
        assert_eq!(list.0, vec![spec("a@x.example", None), spec("h@example.com", Some("Müller, Hans"))]);
        let list: AddressList =
            serde_json::from_str(r#"["a@x.example, b@y.example", {"email": "c@z.example", "name": "C, D"}]"#).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[2], spec("c@z.example", Some("C, D")));
        assert!(serde_json::from_str::<AddressList>("42").is_err());
    }
}
