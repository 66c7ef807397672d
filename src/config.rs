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

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::json::{self, OrderedMap};

/// Where a key lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Global,
    Profile,
    /// Global without a prefix; `Name.Key` sets profile Name's own value,
    /// which a profile without one does without (SMTPUsername,
    /// SMTPPassword: the shared credential).
    Both,
}

/// What a key accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Free text without control characters (TAB allowed).
    Text,
    /// A host name or an IP address.
    Host,
    /// One of these spellings (any letter case); the first of each group
    /// in [`Kind::Enum`] is what it is stored and shown as.
    Enum(&'static [(&'static str, &'static [&'static str])]),
    Bool,
    /// A whole number in a closed range.
    Number(u64, u64),
    /// An absolute path.
    Path,
    /// An absolute path to an existing PEM file of certificates.
    CaFile,
    /// An absolute path to an existing PEM DKIM private key.
    DkimKeyFile,
    /// One mail address.
    Email,
    /// Mail addresses separated by `;` or `,` (display names allowed).
    Emails,
    /// A sender domain, `@domain` or a full sender address.
    Filter,
    /// The base URL of Microsoft Graph: `https://`, or `http://` for a
    /// loopback address only.
    GraphUrl,
    /// A secret that is kept in the credential store, never in the
    /// configuration, and cannot be read back.
    Secret,
    /// An `https://` URL, or `http://` to a loopback address.
    Url,
}

/// One configuration key.
#[derive(Debug)]
pub struct KeyDef {
    pub name: &'static str,
    pub scope: Scope,
    pub kind: Kind,
    /// The default as `smtpb_config_get` shows it; `None` = no value.
    pub default: Option<&'static str>,
}

const ENCRYPTION: &[(&str, &[&str])] = &[("None", &["", "none"]), ("SSL", &["ssl"]), ("TLS", &["tls", "starttls"])];
const AUTHENTICATION: &[(&str, &[&str])] =
    &[("None", &["none"]), ("Required", &["required"]), ("Optional", &["optional"])];
const AUTH_MODEL: &[(&str, &[&str])] = &[("Basic", &["basic"]), ("OAuth2", &["oauth2"])];
const CREDENTIALS: &[(&str, &[&str])] = &[("PerUser", &["peruser"]), ("Shared", &["shared"])];
const PERIOD: &[(&str, &[&str])] =
    &[("None", &["none", ""]), ("Hour", &["hour"]), ("Day", &["day"]), ("Week", &["week"])];
const TLS_VERSION: &[(&str, &[&str])] = &[("1.2", &["1.2"]), ("1.3", &["1.3"])];
const LOG_LEVEL: &[(&str, &[&str])] =
    &[("Error", &["error"]), ("Warn", &["warn"]), ("Info", &["info"]), ("Debug", &["debug"]), ("Trace", &["trace"])];
const TRANSCRIPT: &[(&str, &[&str])] = &[("Off", &["off"]), ("Failures", &["failures"]), ("All", &["all"])];
const OAUTH2_PROVIDER: &[(&str, &[&str])] =
    &[("None", &["none", ""]), ("Microsoft", &["microsoft"]), ("Google", &["google"]), ("OpenID", &["openid"])];
const OAUTH2_FLOW: &[(&str, &[&str])] =
    &[("Interactive", &["interactive"]), ("ClientCredentials", &["clientcredentials"])];
const TRANSPORT: &[(&str, &[&str])] = &[("SMTP", &["smtp"]), ("Graph", &["graph"])];
const KEY_SCOPE: &[(&str, &[&str])] = &[("User", &["user"]), ("Machine", &["machine"])];

const MS_MAX: u64 = u32::MAX as u64;

macro_rules! key {
    ($name:literal, $scope:ident, $kind:expr, $default:expr) => {
        KeyDef { name: $name, scope: Scope::$scope, kind: $kind, default: $default }
    };
}

/// Every configuration key, in the order `export_json` writes them.
pub static KEYS: &[KeyDef] = &[
    key!("SMTPServer", Profile, Kind::Host, None),
    key!("SMTPServerPort", Profile, Kind::Number(1, 65535), None),
    key!("SMTPServerEncryption", Profile, Kind::Enum(ENCRYPTION), Some("None")),
    key!("SMTPAuthentication", Profile, Kind::Enum(AUTHENTICATION), Some("Required")),
    key!("SMTPAuthModel", Profile, Kind::Enum(AUTH_MODEL), Some("Basic")),
    key!("SMTPCredentials", Profile, Kind::Enum(CREDENTIALS), Some("PerUser")),
    key!("SMTPTransport", Profile, Kind::Enum(TRANSPORT), Some("SMTP")),
    key!("SMTPGraphUrl", Profile, Kind::GraphUrl, Some(crate::graph::DEFAULT_URL)),
    key!("SMTPGraphSaveToSentItems", Profile, Kind::Bool, Some("true")),
    key!("SMTPGraphMailbox", Profile, Kind::Email, None),
    key!("SMTPSenderName", Profile, Kind::Text, None),
    key!("SMTPSenderEmail", Profile, Kind::Email, None),
    key!("SMTPReplyTo", Profile, Kind::Email, None),
    key!("SMTPConnectionTimeout", Profile, Kind::Number(1, MS_MAX), Some("30000")),
    key!("SMTPBatchPerMinute", Profile, Kind::Number(0, 1_000_000), Some("0")),
    key!("SMTPSendLimit", Profile, Kind::Number(0, MS_MAX), Some("0")),
    key!("SMTPSendLimitPeriod", Profile, Kind::Enum(PERIOD), Some("None")),
    key!("SMTPEnabled", Profile, Kind::Bool, Some("true")),
    key!("SMTPDefault", Profile, Kind::Bool, None),
    key!("SMTPFilter", Profile, Kind::Filter, None),
    key!("SMTPMinTlsVersion", Profile, Kind::Enum(TLS_VERSION), Some("1.2")),
    key!("SMTPCaFile", Profile, Kind::CaFile, None),
    key!("SMTPTlsServerName", Profile, Kind::Host, None),
    key!("SMTPAcceptInvalidCertificates", Profile, Kind::Bool, Some("false")),
    key!("SMTPAllowPlaintextAuth", Profile, Kind::Bool, Some("false")),
    key!("SMTPHeloName", Profile, Kind::Host, None),
    key!("SMTPDkimDomain", Profile, Kind::Host, None),
    key!("SMTPDkimSelector", Profile, Kind::Host, None),
    key!("SMTPDkimKeyFile", Profile, Kind::DkimKeyFile, None),
    key!("SMTPArchiveDir", Profile, Kind::Path, None),
    key!("SMTPMaxMessageBytes", Profile, Kind::Number(1, MS_MAX), Some("36700160")),
    key!("SMTPTestSubjectPrefix", Profile, Kind::Text, None),
    key!("SMTPOAuth2Provider", Profile, Kind::Enum(OAUTH2_PROVIDER), Some("None")),
    key!("SMTPOAuth2Issuer", Profile, Kind::Url, None),
    key!("SMTPOAuth2Tenant", Profile, Kind::Host, Some("organizations")),
    key!("SMTPOAuth2ClientId", Profile, Kind::Text, None),
    key!("SMTPOAuth2ClientSecret", Profile, Kind::Secret, None),
    key!("SMTPOAuth2Scopes", Profile, Kind::Text, None),
    key!("SMTPOAuth2Flow", Profile, Kind::Enum(OAUTH2_FLOW), Some("Interactive")),
    key!("SMTPUsername", Both, Kind::Text, None),
    key!("SMTPPassword", Both, Kind::Secret, None),
    key!("SMTPTestMode", Global, Kind::Bool, Some("false")),
    key!("SMTPTestAddresses", Global, Kind::Emails, None),
    key!("SMTPRetryInitialMs", Global, Kind::Number(1, MS_MAX), Some("60000")),
    key!("SMTPRetryMaxMs", Global, Kind::Number(1, MS_MAX), Some("3600000")),
    key!("SMTPRetryMaxAgeMs", Global, Kind::Number(1, MS_MAX), Some("172800000")),
    key!("SMTPDeliveryThreads", Global, Kind::Number(1, 64), Some("2")),
    key!("SMTPShutdownGraceMs", Global, Kind::Number(0, MS_MAX), Some("3000")),
    key!("SMTPKeepSentDays", Global, Kind::Number(0, 36500), Some("30")),
    key!("SMTPKeepFailedDays", Global, Kind::Number(0, 36500), Some("90")),
    key!("SMTPLogFile", Global, Kind::Path, None),
    key!("SMTPLogLevel", Global, Kind::Enum(LOG_LEVEL), Some("Info")),
    key!("SMTPLogMaxBytes", Global, Kind::Number(4096, 1 << 40), Some("10485760")),
    key!("SMTPTranscript", Global, Kind::Enum(TRANSCRIPT), Some("Failures")),
    key!("SMTPProbePorts", Global, Kind::Text, None),
    key!("SMTPMasterKeyScope", Global, Kind::Enum(KEY_SCOPE), Some("User")),
];

/// Parses SMTPProbePorts (`465=10465,587=10587,25=10025`): each standard
/// port to the port used instead.
pub fn probe_port_map(text: &str) -> Result<HashMap<u16, u16>> {
    let mut map = HashMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = pair.split_once('=').and_then(|(from, to)| {
            let from: u16 = from.trim().parse().ok()?;
            let to: u16 = to.trim().parse().ok().filter(|p| *p > 0)?;
            [465, 587, 25].contains(&from).then_some((from, to))
        });
        let (from, to) = parsed.ok_or_else(|| {
            Error::config(format!(
                "SMTPProbePorts: \"{}\" is not a mapping like 465=10465 (465, 587 or 25 to a port)",
                printable(pair)
            ))
        })?;
        map.insert(from, to);
    }
    Ok(map)
}

/// The key definition for `name`, in any letter case.
pub fn key_def(name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.name.eq_ignore_ascii_case(name))
}

/// The name of the profile a key without a prefix applies to.
pub const DEFAULT_PROFILE: &str = "Default";

/// Checks a profile name: 1–64 of `A–Z a–z 0–9 _ -`.
pub fn check_profile_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!("bad profile name \"{}\": 1 to 64 of A-Z a-z 0-9 _ - expected", printable(name))))
    }
}

/// `name` with control characters escaped, for error messages.
pub fn printable(text: &str) -> String {
    text.chars().flat_map(char::escape_debug).collect::<String>().replace("\\\"", "\"")
}

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
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
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

/// The typed settings of a configuration, read once: every message asks
/// for them several times. Emptied by every change; a clone starts empty;
/// never part of a comparison.
#[derive(Default)]
struct Derived {
    global: std::sync::OnceLock<GlobalSettings>,
    /// By profile name in lower case.
    profiles: Mutex<HashMap<String, ProfileSettings>>,
}

impl Clone for Derived {
    fn clone(&self) -> Self {
        Derived::default()
    }
}

impl PartialEq for Derived {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
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

    fn global_value(&self, key: &str) -> Option<&str> {
        self.global.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
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
            Kind::Secret if def.name == "SMTPPassword" => {
                return Ok(SecretChange::Password { profile: own, password: normalized })
            }
            Kind::Secret => {
                let profile = prefix.unwrap_or(DEFAULT_PROFILE);
                // The profile exists from now on, as with any profile key.
                let name = self.profile_mut(profile).name.clone();
                return Ok(SecretChange::ClientSecret { profile: name, secret: normalized });
            }
            _ if def.name == "SMTPUsername" => {
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
        if def.name == "SMTPDefault" && normalized.as_deref() == Some("true") {
            for p in &mut self.profiles {
                p.set("SMTPDefault", None);
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
            return Ok(self.global_value(def.name).or(def.default).map(str::to_string));
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
        if let Some(v) = p.get(def.name) {
            return Some(v.to_string());
        }
        match def.name {
            "SMTPServerPort" => Some(
                match p.get("SMTPServerEncryption").unwrap_or("None") {
                    "SSL" => "465",
                    "TLS" => "587",
                    _ => "25",
                }
                .to_string(),
            ),
            "SMTPDefault" => Some(self.is_default(p).to_string()),
            "SMTPTlsServerName" => p.get("SMTPServer").map(str::to_string),
            "SMTPHeloName" => Some(local_host_name()),
            "SMTPOAuth2Issuer" => match p.get("SMTPOAuth2Provider") {
                Some("Microsoft") => Some(format!(
                    "https://login.microsoftonline.com/{}/v2.0",
                    p.get("SMTPOAuth2Tenant").unwrap_or("organizations")
                )),
                Some("Google") => Some("https://accounts.google.com".to_string()),
                _ => None,
            },
            "SMTPOAuth2Scopes" => match p.get("SMTPOAuth2Provider") {
                Some("Microsoft") if p.get("SMTPTransport") == Some("Graph") => {
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
        match self.profiles.iter().find(|q| q.get("SMTPDefault") == Some("true")) {
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
            crate::delivery::check_configured(&ProfileSettings::read(self, p)?)?;
        }
        Ok(())
    }

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

    /// The JSON shape of `smtpb_config_export_json`: natural types, no
    /// secret, loadable by [`Config::from_json`]. `username` gives the
    /// shared credential's username of a profile (its own, not the global
    /// one) or, for `None`, the global one: they are kept in the
    /// credential store.
    pub fn to_json(&self, username: impl Fn(Option<&str>) -> Option<String>) -> Value {
        let mut global = Map::new();
        for def in KEYS.iter().filter(|d| d.scope != Scope::Profile) {
            let value = match def.name {
                "SMTPUsername" => username(None),
                "SMTPPassword" => None,
                _ => self.global_value(def.name).map(str::to_string),
            };
            if let Some(v) = value {
                global.insert(def.name.to_string(), natural(def, &v));
            }
        }
        let profiles: Vec<Value> = self
            .profiles
            .iter()
            .map(|p| {
                let mut m = Map::new();
                m.insert("name".into(), Value::String(p.name.clone()));
                for (k, v) in &p.values {
                    let def = key_def(k).expect("stored keys come from the table");
                    m.insert(k.to_string(), natural(def, v));
                }
                if let Some(own) = username(Some(&p.name)) {
                    m.insert("SMTPUsername".into(), Value::String(own));
                }
                Value::Object(m)
            })
            .collect();
        json!({"global": global, "profiles": profiles, "blacklist": self.blacklist})
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
        let address = address.to_ascii_lowercase();
        let domain = address.rsplit_once('@').map(|(_, d)| format!("@{d}"));
        self.blacklist.iter().any(|e| *e == address || Some(e) == domain.as_ref())
    }

    /// The typed settings of the profile named `name`.
    pub fn settings(&self, name: &str) -> Result<ProfileSettings> {
        let key = name.to_ascii_lowercase();
        if let Some(s) = self.derived.profiles.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(s.clone());
        }
        let p =
            self.profile(name).ok_or_else(|| Error::not_found(format!("no profile named \"{}\"", printable(name))))?;
        let settings = ProfileSettings::read(self, p)?;
        self.derived.profiles.lock().unwrap_or_else(|e| e.into_inner()).insert(key, settings.clone());
        Ok(settings)
    }

    /// Global settings.
    pub fn global_settings(&self) -> GlobalSettings {
        self.derived.global.get_or_init(|| self.read_global_settings()).clone()
    }

    fn read_global_settings(&self) -> GlobalSettings {
        let num = |k: &str| self.get(k).ok().flatten().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        GlobalSettings {
            test_mode: self.get("SMTPTestMode").ok().flatten().as_deref() == Some("true"),
            test_addresses: self
                .global_value("SMTPTestAddresses")
                .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
            retry_initial_ms: num("SMTPRetryInitialMs"),
            retry_max_ms: num("SMTPRetryMaxMs"),
            retry_max_age_ms: num("SMTPRetryMaxAgeMs"),
            delivery_threads: num("SMTPDeliveryThreads") as u32,
            shutdown_grace_ms: num("SMTPShutdownGraceMs") as u32,
            log_file: self.global_value("SMTPLogFile").filter(|v| !v.is_empty()).map(PathBuf::from),
            log_level: crate::logging::parse_level(&self.get("SMTPLogLevel").ok().flatten().unwrap_or_default()),
            log_max_bytes: num("SMTPLogMaxBytes"),
            transcript: crate::transcript::Mode::parse(&self.get("SMTPTranscript").ok().flatten().unwrap_or_default()),
            probe_ports: self.global_value("SMTPProbePorts").unwrap_or_default().to_string(),
        }
    }
}

fn normalize_blacklist_entry(entry: &str) -> Result<String> {
    let lower = entry.trim().to_ascii_lowercase();
    let valid = match lower.strip_prefix('@') {
        Some(domain) => is_host_name(domain),
        None => crate::message::parse_address(&lower).is_ok(),
    };
    if valid {
        Ok(lower)
    } else {
        Err(Error::invalid_argument(format!(
            "blacklist entry \"{}\": an address or @domain expected",
            printable(entry)
        )))
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

/// A stored value in its natural JSON type.
fn natural(def: &KeyDef, value: &str) -> Value {
    match def.kind {
        Kind::Bool => Value::Bool(value == "true"),
        Kind::Number(..) => value.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::String(value.into())),
        _ => Value::String(value.to_string()),
    }
}

/// Validates and normalises a value for `def`. `Ok(None)` means "unset"
/// (an empty value for a key where blank is not a value of its own).
fn normalize(def: &KeyDef, raw: &str) -> Result<Option<String>> {
    let value = raw.trim();
    let bad = |accepted: &str| Error::config(format!("{}: bad value \"{}\"; {accepted}", def.name, printable(raw)));
    if let Kind::Enum(options) = def.kind {
        let lower = value.to_ascii_lowercase();
        return match options.iter().find(|(_, spellings)| spellings.contains(&lower.as_str())) {
            Some((canonical, _)) => Ok(Some(canonical.to_string())),
            None => {
                let names: Vec<&str> = options.iter().map(|(c, _)| *c).collect();
                let extra = if def.name == "SMTPServerEncryption" { " (blank = None; STARTTLS = TLS)" } else { "" };
                Err(bad(&format!("accepted values: {}{extra}", names.join(", "))))
            }
        };
    }
    if value.is_empty() && def.kind != Kind::Secret && def.kind != Kind::Text {
        return Ok(None);
    }
    match def.kind {
        Kind::Enum(_) => unreachable!("handled above"),
        Kind::Text => {
            check_text(raw).map_err(|_| bad("text without control characters expected"))?;
            Ok(if raw.is_empty() { None } else { Some(raw.to_string()) })
        }
        Kind::Secret => Ok(Some(raw.to_string())),
        Kind::Url => {
            crate::http::check_url(value, def.name)?;
            Ok(Some(value.trim_end_matches('/').to_string()))
        }
        Kind::Host => {
            if is_host_name(value) || is_ip_literal(value) {
                Ok(Some(value.to_string()))
            } else {
                Err(bad("a host name or an IP address expected"))
            }
        }
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "true" => Ok(Some("true".into())),
            "false" => Ok(Some("false".into())),
            _ => Err(bad("accepted values: true, false")),
        },
        Kind::Number(min, max) => match value.parse::<u64>() {
            Ok(n) if n >= min && n <= max => Ok(Some(n.to_string())),
            _ => Err(bad(&format!("a whole number from {min} to {max} expected"))),
        },
        Kind::Path => absolute_path(def, value).map(|p| Some(p.display().to_string())),
        Kind::CaFile => {
            let path = absolute_path(def, value)?;
            crate::tls::read_ca_file(&path).map_err(|e| e.context(def.name))?;
            Ok(Some(path.display().to_string()))
        }
        Kind::GraphUrl => crate::graph::normalize_url(value).map(Some).map_err(|why| bad(&why)),
        Kind::DkimKeyFile => {
            let path = absolute_path(def, value)?;
            crate::message::read_dkim_key(&path).map_err(|e| e.context(def.name))?;
            Ok(Some(path.display().to_string()))
        }
        Kind::Email => crate::message::parse_address(value)
            .map(|_| Some(value.to_string()))
            .map_err(|_| bad("a mail address expected")),
        Kind::Emails => {
            // Separated by `;` or `,`, display names allowed; kept as bare
            // addresses separated by `,`.
            let list: Vec<String> = crate::address::parse_list(value).into_iter().map(|a| a.email).collect();
            for a in &list {
                crate::message::parse_address(a)
                    .map_err(|_| Error::config(format!("{}: \"{}\" is not a mail address", def.name, printable(a))))?;
            }
            Ok(if list.is_empty() { None } else { Some(list.join(",")) })
        }
        Kind::Filter => {
            let ok = match value.rsplit_once('@') {
                Some((local, domain)) => {
                    is_host_name(domain) && (local.is_empty() || crate::message::parse_address(value).is_ok())
                }
                None => is_host_name(value),
            };
            if ok {
                Ok(Some(value.to_ascii_lowercase()))
            } else {
                Err(bad("a sender domain, @domain or a sender address expected"))
            }
        }
    }
}

fn absolute_path(def: &KeyDef, value: &str) -> Result<PathBuf> {
    let path = PathBuf::from(value);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(Error::config(format!("{}: path \"{}\" must be absolute", def.name, printable(value))))
    }
}

/// Text without control characters other than TAB.
pub fn check_text(text: &str) -> std::result::Result<(), char> {
    match text.chars().find(|c| c.is_control() && *c != '\t') {
        Some(c) => Err(c),
        None => Ok(()),
    }
}

/// A DNS host name (letters, digits, hyphens, dots; labels of 1–63).
pub fn is_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// An IPv4 or IPv6 address, bare or as an SMTP address literal `[…]`.
pub fn is_ip_literal(text: &str) -> bool {
    let inner = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    let inner = inner.strip_prefix("IPv6:").unwrap_or(inner);
    inner.parse::<std::net::IpAddr>().is_ok()
}

/// The name this machine goes by, for EHLO: its host name when that is a
/// valid domain name, else its address literal.
pub fn local_host_name() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    if is_host_name(&name) && name.contains('.') {
        name
    } else if is_host_name(&name) {
        // A bare name ("desktop-42") is rejected by some relays; RFC 5321
        // asks for a fully qualified name or an address literal.
        format!("{name}.localdomain")
    } else {
        "[127.0.0.1]".to_string()
    }
}

/// Implicit TLS, STARTTLS, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encryption {
    None,
    /// Implicit TLS from the first byte (SMTPS, usually port 465).
    Ssl,
    /// STARTTLS, required: never falls back to plaintext.
    StartTls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Authentication {
    None,
    Required,
    Optional,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthModel {
    Basic,
    OAuth2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    None,
    Hour,
    Day,
    Week,
}

impl Period {
    pub fn seconds(self) -> u64 {
        match self {
            Period::None => 0,
            Period::Hour => 3600,
            Period::Day => 86_400,
            Period::Week => 604_800,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Period::None => "None",
            Period::Hour => "Hour",
            Period::Day => "Day",
            Period::Week => "Week",
        }
    }
}

/// The settings of one profile, typed, defaults applied.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProfileSettings {
    pub name: String,
    pub server: Option<String>,
    pub port: u16,
    /// The port whose server waits for a TLS ClientHello: 465, or the
    /// port SMTPProbePorts maps 465 to (465 when the map is invalid).
    pub implicit_tls_port: u16,
    pub encryption: Encryption,
    pub authentication: Authentication,
    pub auth_model: AuthModel,
    pub shared_credentials: bool,
    /// How this profile delivers (SMTPTransport).
    pub transport: Transport,
    /// SMTPGraphUrl, without a trailing `/`.
    pub graph_url: String,
    pub graph_save_to_sent_items: bool,
    pub graph_mailbox: Option<String>,
    /// SMTPOAuth2Provider and SMTPOAuth2Flow as the Graph transport reads
    /// them (`None` in a build without those keys).
    pub graph_oauth2_provider: Option<String>,
    pub graph_oauth2_flow: Option<String>,
    pub sender_name: Option<String>,
    pub sender_email: Option<String>,
    pub reply_to: Option<String>,
    pub timeout_ms: u32,
    pub batch_per_minute: u32,
    pub send_limit: u32,
    pub send_limit_period: Period,
    pub enabled: bool,
    pub filter: Option<String>,
    pub min_tls13: bool,
    pub ca_file: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub accept_invalid_certificates: bool,
    pub allow_plaintext_auth: bool,
    pub helo_name: String,
    pub dkim_domain: Option<String>,
    pub dkim_selector: Option<String>,
    pub dkim_key_file: Option<PathBuf>,
    pub archive_dir: Option<PathBuf>,
    pub max_message_bytes: u64,
    /// SMTPTestSubjectPrefix: put before the subject of redirected mail.
    pub test_subject_prefix: String,
    /// SMTPOAuth2Provider; `None` = the host supplies tokens.
    pub oauth2_provider: OAuth2Provider,
    /// SMTPOAuth2Issuer, defaults applied (no trailing slash).
    pub oauth2_issuer: Option<String>,
    pub oauth2_client_id: Option<String>,
    /// SMTPOAuth2Scopes, defaults applied (space-separated).
    pub oauth2_scopes: Option<String>,
    /// SMTPOAuth2Flow=ClientCredentials.
    pub oauth2_client_credentials: bool,
}

/// SMTPOAuth2Provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OAuth2Provider {
    None,
    Microsoft,
    Google,
    OpenId,
}

impl OAuth2Provider {
    pub fn name(self) -> &'static str {
        match self {
            OAuth2Provider::None => "None",
            OAuth2Provider::Microsoft => "Microsoft",
            OAuth2Provider::Google => "Google",
            OAuth2Provider::OpenId => "OpenID",
        }
    }
}

/// How a profile delivers its mail (SMTPTransport).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Smtp,
    /// Microsoft Graph sendMail (ABI §14).
    Graph,
}

impl ProfileSettings {
    fn read(config: &Config, p: &Profile) -> Result<ProfileSettings> {
        let get = |k: &str| config.effective(p, key_def(k).expect("known key"));
        let text = |k: &str| get(k).filter(|v| !v.is_empty());
        let num = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let flag = |k: &str| get(k).as_deref() == Some("true");
        Ok(ProfileSettings {
            name: p.name.clone(),
            server: text("SMTPServer"),
            port: num("SMTPServerPort") as u16,
            implicit_tls_port: config
                .global_value("SMTPProbePorts")
                .and_then(|text| probe_port_map(text).ok()?.get(&465).copied())
                .unwrap_or(465),
            encryption: match get("SMTPServerEncryption").as_deref() {
                Some("SSL") => Encryption::Ssl,
                Some("TLS") => Encryption::StartTls,
                _ => Encryption::None,
            },
            authentication: match get("SMTPAuthentication").as_deref() {
                Some("None") => Authentication::None,
                Some("Optional") => Authentication::Optional,
                _ => Authentication::Required,
            },
            auth_model: if get("SMTPAuthModel").as_deref() == Some("OAuth2") {
                AuthModel::OAuth2
            } else {
                AuthModel::Basic
            },
            shared_credentials: get("SMTPCredentials").as_deref() == Some("Shared"),
            transport: if get("SMTPTransport").as_deref() == Some("Graph") {
                Transport::Graph
            } else {
                Transport::Smtp
            },
            graph_url: get("SMTPGraphUrl").unwrap_or_else(|| crate::graph::DEFAULT_URL.to_string()),
            graph_save_to_sent_items: flag("SMTPGraphSaveToSentItems"),
            graph_mailbox: text("SMTPGraphMailbox"),
            graph_oauth2_provider: key_def("SMTPOAuth2Provider").and_then(|d| config.effective(p, d)),
            graph_oauth2_flow: key_def("SMTPOAuth2Flow").and_then(|d| config.effective(p, d)),
            sender_name: text("SMTPSenderName"),
            sender_email: text("SMTPSenderEmail"),
            reply_to: text("SMTPReplyTo"),
            timeout_ms: num("SMTPConnectionTimeout") as u32,
            batch_per_minute: num("SMTPBatchPerMinute") as u32,
            send_limit: num("SMTPSendLimit") as u32,
            send_limit_period: match get("SMTPSendLimitPeriod").as_deref() {
                Some("Hour") => Period::Hour,
                Some("Day") => Period::Day,
                Some("Week") => Period::Week,
                _ => Period::None,
            },
            enabled: flag("SMTPEnabled"),
            filter: text("SMTPFilter"),
            min_tls13: get("SMTPMinTlsVersion").as_deref() == Some("1.3"),
            ca_file: text("SMTPCaFile").map(PathBuf::from),
            tls_server_name: text("SMTPTlsServerName"),
            accept_invalid_certificates: flag("SMTPAcceptInvalidCertificates"),
            allow_plaintext_auth: flag("SMTPAllowPlaintextAuth"),
            helo_name: get("SMTPHeloName").unwrap_or_else(local_host_name),
            dkim_domain: text("SMTPDkimDomain"),
            dkim_selector: text("SMTPDkimSelector"),
            dkim_key_file: text("SMTPDkimKeyFile").map(PathBuf::from),
            archive_dir: text("SMTPArchiveDir").map(PathBuf::from),
            max_message_bytes: num("SMTPMaxMessageBytes"),
            test_subject_prefix: get("SMTPTestSubjectPrefix").unwrap_or_default(),
            oauth2_provider: match get("SMTPOAuth2Provider").as_deref() {
                Some("Microsoft") => OAuth2Provider::Microsoft,
                Some("Google") => OAuth2Provider::Google,
                Some("OpenID") => OAuth2Provider::OpenId,
                _ => OAuth2Provider::None,
            },
            oauth2_issuer: text("SMTPOAuth2Issuer"),
            oauth2_client_id: text("SMTPOAuth2ClientId"),
            oauth2_scopes: text("SMTPOAuth2Scopes"),
            oauth2_client_credentials: get("SMTPOAuth2Flow").as_deref() == Some("ClientCredentials"),
        })
    }

    /// Whether this profile's filter matches the sender `address`.
    pub fn filter_matches(&self, address: &str) -> bool {
        let Some(filter) = &self.filter else { return false };
        let address = address.to_ascii_lowercase();
        let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        match filter.strip_prefix('@') {
            Some(d) => d == domain,
            None if filter.contains('@') => *filter == address,
            None => filter == domain,
        }
    }
}

/// Settings that apply to every profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalSettings {
    pub test_mode: bool,
    pub test_addresses: Vec<String>,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    pub retry_max_age_ms: u64,
    pub delivery_threads: u32,
    pub shutdown_grace_ms: u32,
    /// SMTPLogFile, SMTPLogLevel (1 error … 5 trace), SMTPLogMaxBytes.
    pub log_file: Option<PathBuf>,
    pub log_level: u8,
    pub log_max_bytes: u64,
    pub transcript: crate::transcript::Mode,
    /// SMTPProbePorts: `465=10465,587=10587,25=10025` (testing, or a
    /// server on unusual ports).
    pub probe_ports: String,
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
        let v = c.to_json(|p| p.map(|p| format!("own-{p}")));
        assert_eq!(v["profiles"][0]["SMTPUsername"], "own-backup");
        assert!(v["global"].get("SMTPUsername").is_none());
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
        let v = c.to_json(|p| p.is_none().then(|| "anna".to_string()));
        assert_eq!(v["profiles"][0]["SMTPServerPort"], 2525);
        assert_eq!(v["global"]["SMTPUsername"], "anna");
        assert!(v["global"].get("SMTPPassword").is_none());
        let (back, _) = Config::from_json(&v.to_string()).unwrap();
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
