//! Strict JSON reading shared by every JSON input of the library.
//!
//! serde's derived structs already reject unknown fields (with
//! `deny_unknown_fields`) and duplicate fields, and `serde_json` reports
//! syntax and type errors with line and column. What they do not reject is
//! a duplicate key in a free-form object; [`OrderedMap`] does, and keeps the
//! keys in the order the document gives them.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;
use std::marker::PhantomData;

use crate::error::{Error, Result};

/// A JSON object read in document order, with duplicate keys refused.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrderedMap(pub Vec<(String, Value)>);

impl<'de> Deserialize<'de> for OrderedMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = OrderedMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<OrderedMap, A::Error> {
                let mut entries: Vec<(String, Value)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
                    }
                    let value = map.next_value::<Value>()?;
                    entries.push((key, value));
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

/// A value that must be a JSON object. serde's derived structs also take
/// a JSON array (fields by position), which would let `[...]` stand for a
/// message; reading through `deserialize_map` refuses it.
#[derive(Debug)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Object<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        deserializer.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

/// `deserialize_with` for a list of objects.
pub fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<T>, D::Error> {
    Vec::<Object<T>>::deserialize(deserializer).map(|list| list.into_iter().map(|o| o.0).collect())
}

/// Parses `text`, which must hold a JSON object, as `what`.
pub fn parse_object<T: for<'de> Deserialize<'de>>(text: &str, what: &str) -> Result<T> {
    parse::<Object<T>>(text, what).map(|o| o.0)
}

/// Parses `text` as `what` (named in the error), mapping every failure to
/// `SMTPB_ERR_INVALID_ARGUMENT` with serde's description, line and column
/// (control characters of the text it quotes escaped, as `\n`).
pub fn parse<T: for<'de> Deserialize<'de>>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::invalid_argument(format!("{what}: {}", crate::text::printable(&e.to_string()))))
}

/// A JSON array every element of which reads as `T`, read one element at
/// a time and dropped: the check of a long list holds one element parsed,
/// and fails as reading a `Vec<T>` would, with the same message.
struct EachReads<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for EachReads<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct SeqVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqVisitor<T> {
            type Value = EachReads<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<EachReads<T>, A::Error> {
                while seq.next_element::<T>()?.is_some() {}
                Ok(EachReads(PhantomData))
            }
        }
        deserializer.deserialize_seq(SeqVisitor(PhantomData))
    }
}

/// Parses `text`, a JSON array every element of which must read as `T`,
/// into its elements' JSON text (borrowed from `text`), to be read as `T`
/// one at a time where each is used. Errors are those of
/// `parse::<Vec<T>>(text, what)`.
pub fn parse_raw_list<'a, T: for<'de> Deserialize<'de>>(text: &'a str, what: &str) -> Result<Vec<&'a RawValue>> {
    parse::<EachReads<T>>(text, what)?;
    serde_json::from_str(text).map_err(|e| Error::internal(format!("{what}: read again: {e}")))
}

/// The natural JSON value of a scalar for error messages and string keys:
/// strings as they are, numbers and booleans as JSON prints them.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => None,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_with_position() {
        let err = parse::<OrderedMap>("{\"a\": 1,\n \"a\": 2}", "headers").unwrap_err();
        assert!(err.message().contains("duplicate key `a`"), "{}", err.message());
        assert!(err.message().contains("line 2"), "{}", err.message());
    }

    #[test]
    fn errors_quote_no_raw_control_character() {
        let err = parse::<OrderedMap>("{\"a\\nb\": 1, \"a\\nb\": 2}", "template JSON").unwrap_err();
        assert!(err.message().contains("duplicate key `a\\nb`"), "{}", err.message());
        assert!(!err.message().contains('\n'), "{}", err.message());
    }

    #[test]
    fn a_raw_list_fails_as_the_parsed_list() {
        for text in ["[{\"a\": 1},\n {\"a\": 1, \"a\": 2}]", "{}", "[1, {}]", "[{}] x", "[{},]", ""] {
            let raw = parse_raw_list::<Object<OrderedMap>>(text, "list").unwrap_err();
            let parsed = parse::<Vec<Object<OrderedMap>>>(text, "list").unwrap_err();
            assert_eq!((raw.code(), raw.message()), (parsed.code(), parsed.message()), "{text}");
        }
        let raw = parse_raw_list::<Object<OrderedMap>>(" [ {\"a\": [1, 2]} , {} ] ", "list").unwrap();
        assert_eq!(raw.iter().map(|r| r.get()).collect::<Vec<_>>(), ["{\"a\": [1, 2]}", "{}"]);
    }

    #[test]
    fn order_is_kept() {
        let m = parse::<OrderedMap>(r#"{"b": 1, "a": "x"}"#, "m").unwrap();
        assert_eq!(m.0[0].0, "b");
        assert_eq!(m.0[1].0, "a");
    }
}
