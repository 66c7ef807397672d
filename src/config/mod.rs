//! Configuration: one table of keys, server profiles, and the blacklist.
//!
//! A host configures the library the way its settings screens do, with
//! `Key = Value` pairs. [`KEYS`] is the single table of every key: its name
//! as hosts spell it, whether it is global or per profile, the values it
//! accepts and its default. Values are validated and normalised when they
//! are set, so the rest of the library reads typed [`ProfileSettings`] and
//! never sees a bad value.
//!
//! A key without a prefix applies to the profile `Default`; `Name.Key`
//! applies to profile `Name`. Both are created on first use.
//!
//! - `keys.rs`: the table ([`KEYS`], [`Key`]) and profile names;
//! - `values.rs`: each value checked and normalised when it is set;
//! - `view.rs`: the typed settings the library reads;
//! - `choice.rs`: profile choice, indexed once per configuration;
//! - `json.rs`: the JSON shape of `smtpb_config_load_json` and
//!   `smtpb_config_export_json`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::text::local_host_name;

mod choice;
mod json;
mod keys;
mod values;
mod view;

pub use json::{ConfigExport, ProfileExport, Setting};
pub use keys::*;
pub use view::*;

use crate::text::printable;
use values::{normalize, normalize_blacklist_entry};
use view::Derived;

/// A server profile: its name (as first given) and its set values.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub name: String,
    values: Vec<(&'static str, String)>,
}

impl Profile {
    fn new(name: &str) -> Profile {
        Profile { name: name.to_string(), values: Vec::new() }
    }

    /// The value set for `key` (not its default).
    pub fn get(&self, key: Key) -> Option<&str> {
        self.values.iter().find(|(k, _)| *k == key.name()).map(|(_, v)| v.as_str())
    }

    fn set(&mut self, key: &'static str, value: Option<String>) {
        self.values.retain(|(k, _)| *k != key);
        if let Some(v) = value {
            self.values.push((key, v));
            // Keep the table's order so exports are stable.
            self.values.sort_by_key(|(k, _)| KEYS.iter().position(|d| d.name == *k));
        }
    }
}

/// The whole configuration of a client. Secrets are not part of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    global: Vec<(&'static str, String)>,
    profiles: Vec<Profile>,
    blacklist: Vec<String>,
    derived: Derived,
}

/// A change a configuration call asks for that does not live in the
/// configuration itself: the shared credential's username or password
/// (`profile`: that profile's own shared credential; `None`: the global one).
#[derive(Debug, PartialEq, Eq)]
pub enum SecretChange {
    None,
    Username {
        profile: Option<String>,
        username: Option<String>,
    },
    Password {
        profile: Option<String>,
        password: Option<String>,
    },
    /// SMTPOAuth2ClientSecret of a profile.
    ClientSecret {
        profile: String,
        secret: Option<String>,
    },
}

/// Splits `Name.Key` into (profile, key definition).
fn split_key(full: &str) -> Result<(Option<&str>, &'static KeyDef)> {
    let (prefix, name) = match full.split_once('.') {
        Some((p, k)) => (Some(p), k),
        None => (None, full),
    };
    let def =
        key_def(name).ok_or_else(|| Error::config(format!("unknown configuration key \"{}\"", printable(full))))?;
    if let Some(p) = prefix {
        check_profile_name(p)?;
        if def.scope == Scope::Global {
            return Err(Error::config(format!(
                "{} is a global key and takes no profile prefix (got \"{}\")",
                def.name,
                printable(full)
            )));
        }
    }
    Ok((prefix, def))
}

impl Config {
    /// An empty configuration (every key at its default).
    pub fn new() -> Config {
        Config::default()
    }

    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    pub fn blacklist(&self) -> &[String] {
        &self.blacklist
    }

    /// The profile named `name`, in any letter case.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    fn profile_mut(&mut self, name: &str) -> &mut Profile {
        self.derived = Derived::default();
        match self.profiles.iter().position(|p| p.name.eq_ignore_ascii_case(name)) {
            Some(i) => &mut self.profiles[i],
            None => {
                self.profiles.push(Profile::new(name));
                self.profiles.last_mut().expect("just pushed")
            }
        }
    }

    fn global_value(&self, key: Key) -> Option<&str> {
        self.global.iter().find(|(k, _)| *k == key.name()).map(|(_, v)| v.as_str())
    }

    /// Sets `key` (with an optional `Profile.` prefix) to `value`; `None`
    /// restores the default. Returns what must change in the credential
    /// store, for the keys that live there.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<SecretChange> {
        self.derived = Derived::default();
        let (prefix, def) = split_key(key)?;
        let normalized = match value {
            None => None,
            Some(v) => normalize(def, v)?,
        };
        // The profile a prefixed SMTPUsername/SMTPPassword belongs to
        // exists from now on, as with any profile key.
        let own = match (def.scope, prefix) {
            (Scope::Both, Some(p)) => Some(self.profile_mut(p).name.clone()),
            _ => None,
        };
        match def.kind {
            Kind::Secret if def.key == Key::SMTPPassword => {
                return Ok(SecretChange::Password { profile: own, password: normalized })
            }
            Kind::Secret => {
                let profile = prefix.unwrap_or(DEFAULT_PROFILE);
                // The profile exists from now on, as with any profile key.
                let name = self.profile_mut(profile).name.clone();
                return Ok(SecretChange::ClientSecret { profile: name, secret: normalized });
            }
            _ if def.key == Key::SMTPUsername => {
                return Ok(SecretChange::Username { profile: own, username: normalized })
            }
            _ => {}
        }
        if def.scope == Scope::Global {
            self.global.retain(|(k, _)| *k != def.name);
            if let Some(v) = normalized {
                self.global.push((def.name, v));
                self.global.sort_by_key(|(k, _)| KEYS.iter().position(|d| d.name == *k));
            }
            return Ok(SecretChange::None);
        }
        let profile_name = prefix.unwrap_or(DEFAULT_PROFILE);
        if def.key == Key::SMTPDefault && normalized.as_deref() == Some("true") {
            for p in &mut self.profiles {
                p.set(Key::SMTPDefault.name(), None);
            }
        }
        self.profile_mut(profile_name).set(def.name, normalized);
        Ok(SecretChange::None)
    }

    /// The effective value of `key`, defaults included. `None` when the
    /// key has no value. The shared username is not kept here; the caller
    /// answers `SMTPUsername` from the credential store.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        let (prefix, def) = split_key(key)?;
        if def.kind == Kind::Secret {
            return Err(Error::config(format!("{} cannot be read back", def.name)));
        }
        if def.scope != Scope::Profile {
            return Ok(self.global_value(def.key).or(def.default).map(str::to_string));
        }
        let name = prefix.unwrap_or(DEFAULT_PROFILE);
        match self.profile(name) {
            Some(p) => Ok(self.effective(p, def)),
            None => Ok(self.effective(&Profile::new(name), def)),
        }
    }

    /// The effective value of a profile key: what is set, else the default,
    /// where some defaults depend on other keys.
    fn effective(&self, p: &Profile, def: &KeyDef) -> Option<String> {
        if let Some(v) = p.get(def.key) {
            return Some(v.to_string());
        }
        match def.key {
            Key::SMTPServerPort => Some(
                match p.get(Key::SMTPServerEncryption).unwrap_or("None") {
                    "SSL" => "465",
                    "TLS" => "587",
                    _ => "25",
                }
                .to_string(),
            ),
            Key::SMTPDefault => Some(self.is_default(p).to_string()),
            Key::SMTPTlsServerName => p.get(Key::SMTPServer).map(str::to_string),
            Key::SMTPHeloName => Some(local_host_name()),
            Key::SMTPOAuth2Issuer => match p.get(Key::SMTPOAuth2Provider) {
                Some("Microsoft") => Some(format!(
                    "https://login.microsoftonline.com/{}/v2.0",
                    p.get(Key::SMTPOAuth2Tenant).unwrap_or("organizations")
                )),
                Some("Google") => Some("https://accounts.google.com".to_string()),
                _ => None,
            },
            Key::SMTPOAuth2Scopes => match p.get(Key::SMTPOAuth2Provider) {
                Some("Microsoft") if p.get(Key::SMTPTransport) == Some("Graph") => {
                    Some("https://graph.microsoft.com/Mail.Send offline_access".to_string())
                }
                Some("Microsoft") => Some("https://outlook.office.com/SMTP.Send offline_access".to_string()),
                Some("Google") => Some("https://mail.google.com/".to_string()),
                // A refresh token (offline_access) and an ID token naming
                // the user; the provider's own scope for mail is added by
                // setting SMTPOAuth2Scopes.
                Some("OpenID") => Some("openid offline_access".to_string()),
                _ => None,
            },
            _ => def.default.map(str::to_string),
        }
    }

    /// Whether `p` is the default profile: the one marked SMTPDefault, or
    /// the first profile when none is marked.
    pub fn is_default(&self, p: &Profile) -> bool {
        match self.profiles.iter().find(|q| q.get(Key::SMTPDefault) == Some("true")) {
            Some(d) => d.name.eq_ignore_ascii_case(&p.name),
            None => self.profiles.first().is_some_and(|f| f.name.eq_ignore_ascii_case(&p.name)),
        }
    }

    /// Applies `Key=Value` lines all or nothing. Returns the secret changes
    /// to apply once the caller has accepted the new configuration.
    pub fn import_keys(&self, lines: &str) -> Result<(Config, Vec<SecretChange>)> {
        let mut next = self.clone();
        let mut changes = Vec::new();
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (index, raw) in lines.split('\n').enumerate() {
            let number = index + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw).trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let (key, value) = line.split_once('=').ok_or_else(|| {
                // Name only the key-like start: the rest may be a password.
                let start: String =
                    line.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_').collect();
                Error::config(format!("line {number}: Key=Value expected, got a line starting \"{start}\""))
            })?;
            let key = key.trim();
            let canonical = key.to_ascii_lowercase();
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == canonical) {
                return Err(Error::config(format!(
                    "line {number}: {key} is given twice (first on line {first}); only enter it once"
                )));
            }
            seen.push((canonical, number));
            let change = next.set(key, Some(value.trim())).map_err(|e| e.context(format!("line {number}")))?;
            if change != SecretChange::None {
                changes.push(change);
            }
        }
        next.check_transports()?;
        Ok((next, changes))
    }

    /// Checks, for a configuration given at once, that each profile has
    /// what its transport needs (SMTPTransport=Graph: OAuth2). Single
    /// `set` calls cannot be checked this way: keys arrive one at a time.
    fn check_transports(&self) -> Result<()> {
        for p in &self.profiles {
            ProfileSettings::read(self, p)?.check_transport()?;
        }
        Ok(())
    }

    /// Adds a blacklist entry: an address, or a whole domain as `@domain`.
    /// Returns false when it was already there.
    pub fn blacklist_add(&mut self, entry: &str) -> Result<bool> {
        let entry = normalize_blacklist_entry(entry)?;
        if self.blacklist.contains(&entry) {
            return Ok(false);
        }
        self.blacklist.push(entry);
        Ok(true)
    }

    /// Removes a blacklist entry; false when it was not there.
    pub fn blacklist_remove(&mut self, entry: &str) -> Result<bool> {
        let entry = normalize_blacklist_entry(entry)?;
        let before = self.blacklist.len();
        self.blacklist.retain(|e| *e != entry);
        Ok(self.blacklist.len() != before)
    }

    /// Whether `address` is blacklisted, by itself or by its domain.
    pub fn is_blacklisted(&self, address: &str) -> bool {
        if self.blacklist.is_empty() {
            return false;
        }
        let address = address.to_ascii_lowercase();
        let domain = address.rsplit_once('@').map(|(_, d)| format!("@{d}"));
        self.blacklist.iter().any(|e| *e == address || Some(e) == domain.as_ref())
    }
}

/// The file the configuration is kept in, inside data_dir.
pub fn config_path(data_dir: &Path) -> PathBuf {
    data_dir.join("config.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_in_any_case_and_default_profile_is_created() {
        let mut c = Config::new();
        c.set("smtpserver", Some("mail.example.com")).unwrap();
        c.set("SMTPSERVERENCRYPTION", Some("ssl")).unwrap();
        assert_eq!(c.get("SMTPServer").unwrap().as_deref(), Some("mail.example.com"));
        assert_eq!(c.get("SMTPServerEncryption").unwrap().as_deref(), Some("SSL"));
        assert_eq!(c.get("SMTPServerPort").unwrap().as_deref(), Some("465"));
        assert_eq!(c.profiles()[0].name, "Default");
    }

    #[test]
    fn starttls_is_an_alias_of_tls_and_blank_is_none() {
        let mut c = Config::new();
        c.set("SMTPServerEncryption", Some("STARTTLS")).unwrap();
        assert_eq!(c.get("SMTPServerPort").unwrap().as_deref(), Some("587"));
        c.set("SMTPServerEncryption", Some("")).unwrap();
        assert_eq!(c.get("SMTPServerEncryption").unwrap().as_deref(), Some("None"));
        assert_eq!(c.get("SMTPServerPort").unwrap().as_deref(), Some("25"));
    }

    #[test]
    fn errors_name_key_and_accepted_values() {
        let mut c = Config::new();
        let e = c.set("SMTPServerEncryption", Some("SSLv3")).unwrap_err();
        assert!(e.message().contains("SMTPServerEncryption"));
        assert!(e.message().contains("None, SSL, TLS"), "{}", e.message());
        let e = c.set("SMTPServerPort", Some("70000")).unwrap_err();
        assert!(e.message().contains("1 to 65535"));
        let e = c.set("SMTPSrever", Some("x")).unwrap_err();
        assert!(e.message().contains("SMTPSrever"));
        let e = c.set("Backup.SMTPTestMode", Some("true")).unwrap_err();
        assert!(e.message().contains("global"));
        let e = c.set("SMTPCaFile", Some("relative.pem")).unwrap_err();
        assert!(e.message().contains("absolute"));
    }

    #[test]
    fn one_default_profile_at_most() {
        let mut c = Config::new();
        c.set("A.SMTPServer", Some("a.example")).unwrap();
        c.set("B.SMTPServer", Some("b.example")).unwrap();
        assert_eq!(c.get("A.SMTPDefault").unwrap().as_deref(), Some("true"));
        c.set("B.SMTPDefault", Some("true")).unwrap();
        c.set("A.SMTPDefault", Some("TRUE")).unwrap();
        assert_eq!(c.get("A.SMTPDefault").unwrap().as_deref(), Some("true"));
        assert_eq!(c.get("B.SMTPDefault").unwrap().as_deref(), Some("false"));
    }

    #[test]
    fn import_is_all_or_nothing_and_names_the_line() {
        let c = Config::new();
        let e = c
            .import_keys("SMTPServer=a.example\r\n# note\nSMTPServerEncryption=SSL\nsmtpserverencryption=TLS\n")
            .unwrap_err();
        assert!(e.message().contains("line 4"), "{}", e.message());
        let e = c.import_keys("SMTPServer=a.example\nSMTPServerPort=x\n").unwrap_err();
        assert!(e.message().contains("line 2"));
        let (next, changes) = c.import_keys("; host table\n\nSMTPServer = a.example\nSMTPPassword=pw\n").unwrap();
        assert_eq!(next.get("SMTPServer").unwrap().as_deref(), Some("a.example"));
        assert_eq!(changes, vec![SecretChange::Password { profile: None, password: Some("pw".into()) }]);
    }

    #[test]
    fn the_shared_credential_may_be_set_per_profile() {
        let mut c = Config::new();
        let change = c.set("backup.smtppassword", Some("pw-b")).unwrap();
        assert_eq!(change, SecretChange::Password { profile: Some("backup".into()), password: Some("pw-b".into()) });
        assert!(c.profile("Backup").is_some(), "the prefix creates the profile");
        let change = c.set("SMTPUsername", Some("anna")).unwrap();
        assert_eq!(change, SecretChange::Username { profile: None, username: Some("anna".into()) });
        let (_, changes) = Config::from_json(r#"{"profiles":[{"name":"B","SMTPUsername":"bob"}]}"#).unwrap();
        assert_eq!(changes, vec![SecretChange::Username { profile: Some("B".into()), username: Some("bob".into()) }]);
        let v = c.export(|p| p.map(|p| format!("own-{p}")));
        assert_eq!(v.profiles[0].values["SMTPUsername"], Setting::Text("own-backup".into()));
        assert!(!v.global.contains_key("SMTPUsername"));
        assert!(c.set("Backup.SMTPTestMode", Some("true")).is_err());
    }

    #[test]
    fn json_round_trips_without_secrets() {
        let mut c = Config::new();
        c.set("SMTPServer", Some("a.example")).unwrap();
        c.set("SMTPServerPort", Some("2525")).unwrap();
        c.set("Backup.SMTPEnabled", Some("false")).unwrap();
        c.set("SMTPTestMode", Some("true")).unwrap();
        c.blacklist_add("@Spam.example").unwrap();
        let v = c.export(|p| p.is_none().then(|| "anna".to_string()));
        assert_eq!(v.profiles[0].values["SMTPServerPort"], Setting::Number(2525));
        assert_eq!(v.global["SMTPUsername"], Setting::Text("anna".into()));
        assert!(!v.global.contains_key("SMTPPassword"));
        let text = serde_json::to_string(&v).unwrap();
        // Each object's keys in byte order, as every version wrote them.
        let expected = r#"{"blacklist":["@spam.example"],"global":{"SMTPTestMode":true,"SMTPUsername":"anna"},"#
            .to_string()
            + r#""profiles":[{"SMTPServer":"a.example","SMTPServerPort":2525,"name":"Default"},"#
            + r#"{"SMTPEnabled":false,"name":"Backup"}]}"#;
        assert_eq!(text, expected);
        let (back, _) = Config::from_json(&text).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn json_rejects_misplaced_and_unknown_keys() {
        let e = Config::from_json(r#"{"profiles":[{"name":"A","SMTPTestMode":true}]}"#).unwrap_err();
        assert!(e.message().contains("SMTPTestMode"));
        let e = Config::from_json(r#"{"global":{"SMTPServer":"x"}}"#).unwrap_err();
        assert!(e.message().contains("SMTPServer"));
        let e = Config::from_json(r#"{"global":{"SMTPTestMod":true}}"#).unwrap_err();
        assert!(e.message().contains("SMTPTestMod"));
        let e = Config::from_json(r#"{"profiles":[{"name":"bad name"}]}"#).unwrap_err();
        assert!(e.message().contains("bad name"));
    }

    #[test]
    fn filters_and_blacklist_match() {
        let mut c = Config::new();
        c.set("SMTPFilter", Some("Firm.Example")).unwrap();
        let s = c.settings("default").unwrap();
        assert!(s.filter_matches("anna@firm.example"));
        assert!(!s.filter_matches("anna@other.example"));
        c.blacklist_add("Gone@Example.com").unwrap();
        c.blacklist_add("@spam.example").unwrap();
        assert!(c.is_blacklisted("gone@example.COM"));
        assert!(c.is_blacklisted("x@spam.example"));
        assert!(!c.is_blacklisted("x@example.com"));
    }
}
