//! The JSON shape of `smtpb_config_load_json` and
//! `smtpb_config_export_json`: natural types, no secret.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{check_profile_name, key_def, Config, Key, KeyDef, Kind, Profile, Scope, SecretChange, KEYS};
use crate::error::{Error, Result};
use crate::json::{self, OrderedMap};
use crate::text::printable;

impl Config {
    /// Reads the JSON shape of `smtpb_config_load_json`. The result
    /// replaces the whole configuration.
    pub fn from_json(text: &str) -> Result<(Config, Vec<SecretChange>)> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Shape {
            #[serde(default)]
            global: OrderedMap,
            #[serde(default)]
            profiles: Vec<OrderedMap>,
            #[serde(default)]
            blacklist: Vec<String>,
        }
        let shape: Shape = json::parse_object(text, "configuration JSON")?;
        let mut config = Config::new();
        let mut changes = Vec::new();
        for (key, value) in &shape.global.0 {
            let def = key_def(key)
                .ok_or_else(|| Error::config(format!("global: unknown configuration key \"{}\"", printable(key))))?;
            if def.scope == Scope::Profile {
                return Err(Error::config(format!("global: {} is a profile key, not a global one", def.name)));
            }
            let change = config.set(def.name, json_value(def, value)?.as_deref())?;
            if change != SecretChange::None {
                changes.push(change);
            }
        }
        for (index, entries) in shape.profiles.iter().enumerate() {
            let name = match entries.0.iter().find(|(k, _)| k == "name") {
                Some((_, Value::String(n))) => n.clone(),
                _ => return Err(Error::config(format!("profiles[{index}]: \"name\" (a string) is required"))),
            };
            check_profile_name(&name).map_err(|e| e.context(format!("profiles[{index}]")))?;
            if config.profile(&name).is_some() {
                return Err(Error::config(format!("profiles[{index}]: profile \"{name}\" is given twice")));
            }
            config.profiles.push(Profile::new(&name));
            for (key, value) in entries.0.iter().filter(|(k, _)| k != "name") {
                let def = key_def(key).ok_or_else(|| {
                    Error::config(format!("profile {name}: unknown configuration key \"{}\"", printable(key)))
                })?;
                if def.scope == Scope::Global {
                    return Err(Error::config(format!(
                        "profile {name}: {} is a global key, not a profile one",
                        def.name
                    )));
                }
                let change = config
                    .set(&format!("{name}.{}", def.name), json_value(def, value)?.as_deref())
                    .map_err(|e| e.context(format!("profile {name}")))?;
                if change != SecretChange::None {
                    changes.push(change);
                }
            }
        }
        for entry in &shape.blacklist {
            config.blacklist_add(entry)?;
        }
        config.check_transports()?;
        Ok((config, changes))
    }

    /// The shape of `smtpb_config_export_json` (and of `config.json` in
    /// data_dir): natural types, no secret, loadable by
    /// [`Config::from_json`]. `username` gives the shared credential's
    /// username of a profile (its own, not the global one) or, for `None`,
    /// the global one: they are kept in the credential store.
    pub fn export(&self, username: impl Fn(Option<&str>) -> Option<String>) -> ConfigExport {
        let global = KEYS
            .iter()
            .filter(|d| d.scope != Scope::Profile)
            .filter_map(|def| {
                let value = match def.key {
                    Key::SMTPUsername => username(None),
                    Key::SMTPPassword => None,
                    _ => self.global_value(def.key).map(str::to_string),
                };
                value.map(|v| (def.name, Setting::natural(def, &v)))
            })
            .collect();
        let profiles = self
            .profiles
            .iter()
            .map(|p| {
                let mut values: BTreeMap<&'static str, Setting> = p
                    .values
                    .iter()
                    .map(|(k, v)| {
                        let def = key_def(k).expect("stored keys come from the table");
                        (def.name, Setting::natural(def, v))
                    })
                    .collect();
                if let Some(own) = username(Some(&p.name)) {
                    values.insert(Key::SMTPUsername.name(), Setting::Text(own));
                }
                ProfileExport { values, name: p.name.clone() }
            })
            .collect();
        ConfigExport { blacklist: self.blacklist.clone(), global, profiles }
    }
}

/// The configuration as `smtpb_config_export_json` writes it:
/// `{"blacklist": [...], "global": {...}, "profiles": [{..., "name"}]}`,
/// each object's keys in byte order (as every version wrote them).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ConfigExport {
    /// Addresses in lower case and `@domain` entries.
    pub blacklist: Vec<String>,
    /// The global keys that have a value.
    pub global: BTreeMap<&'static str, Setting>,
    /// Each profile's own values, and its name.
    pub profiles: Vec<ProfileExport>,
}

/// A profile of [`ConfigExport`]: its keys (all start with `SMTP`, so they
/// come before `name`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ProfileExport {
    #[serde(flatten)]
    pub values: BTreeMap<&'static str, Setting>,
    pub name: String,
}

/// A key's value in its natural JSON type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum Setting {
    Bool(bool),
    Number(u64),
    Text(String),
}

impl Setting {
    /// A stored value in its key's natural type.
    fn natural(def: &KeyDef, value: &str) -> Setting {
        match def.kind {
            Kind::Bool => Setting::Bool(value == "true"),
            Kind::Number(..) => {
                value.parse::<u64>().map(Setting::Number).unwrap_or_else(|_| Setting::Text(value.into()))
            }
            _ => Setting::Text(value.to_string()),
        }
    }
}

/// A JSON value of a configuration key as the text `set` takes.
fn json_value(def: &KeyDef, value: &Value) -> Result<Option<String>> {
    match (def.kind, value) {
        (_, Value::Null) => Ok(None),
        (Kind::Bool, Value::Bool(_)) | (Kind::Number(..), Value::Number(_)) | (_, Value::String(_)) => {
            Ok(json::scalar_text(value))
        }
        // The value is not echoed: it may be a password.
        _ => Err(Error::config(format!("{}: a {} expected, got {}", def.name, kind_word(def.kind), json_type(value)))),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "boolean (or string)",
        Kind::Number(..) => "number (or string)",
        _ => "string",
    }
}
