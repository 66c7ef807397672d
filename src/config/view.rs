//! The typed settings the library reads: one [`ProfileSettings`] per
//! profile and one [`GlobalSettings`], read once from the stored values
//! with defaults applied.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{probe_port_map, Config, Key, Profile};
use crate::error::{Error, Result};
use crate::text::{local_host_name, printable};

/// The typed settings of a configuration, read once: every message asks
/// for them several times. Emptied by every change; a clone starts empty;
/// never part of a comparison.
#[derive(Default)]
pub(super) struct Derived {
    global: std::sync::OnceLock<GlobalSettings>,
    /// By profile name in lower case.
    profiles: Mutex<HashMap<String, Arc<ProfileSettings>>>,
    /// The enabled profiles, indexed for profile choice.
    pub(super) choice: std::sync::OnceLock<Result<super::choice::Choice>>,
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

impl Config {
    /// The typed settings of the profile named `name`, shared: read once
    /// per configuration, never copied per message.
    pub fn settings(&self, name: &str) -> Result<Arc<ProfileSettings>> {
        let key = name.to_ascii_lowercase();
        if let Some(s) = self.derived.profiles.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(s.clone());
        }
        let p =
            self.profile(name).ok_or_else(|| Error::not_found(format!("no profile named \"{}\"", printable(name))))?;
        let settings = Arc::new(ProfileSettings::read(self, p)?);
        self.derived.profiles.lock().unwrap_or_else(|e| e.into_inner()).insert(key, settings.clone());
        Ok(settings)
    }

    /// Global settings.
    pub fn global_settings(&self) -> GlobalSettings {
        self.derived.global.get_or_init(|| self.read_global_settings()).clone()
    }

    fn read_global_settings(&self) -> GlobalSettings {
        let value = |k: Key| self.global_value(k).or(k.def().default).unwrap_or_default();
        let num = |k: Key| value(k).parse::<u64>().unwrap_or(0);
        GlobalSettings {
            test_mode: value(Key::SMTPTestMode) == "true",
            test_addresses: self
                .global_value(Key::SMTPTestAddresses)
                .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
            retry_initial_ms: num(Key::SMTPRetryInitialMs),
            retry_max_ms: num(Key::SMTPRetryMaxMs),
            retry_max_age_ms: num(Key::SMTPRetryMaxAgeMs),
            delivery_threads: num(Key::SMTPDeliveryThreads) as u32,
            shutdown_grace_ms: num(Key::SMTPShutdownGraceMs) as u32,
            keep_sent_days: num(Key::SMTPKeepSentDays),
            keep_failed_days: num(Key::SMTPKeepFailedDays),
            log_file: self.global_value(Key::SMTPLogFile).filter(|v| !v.is_empty()).map(PathBuf::from),
            log_level: crate::logging::parse_level(value(Key::SMTPLogLevel)),
            log_max_bytes: num(Key::SMTPLogMaxBytes),
            transcript: crate::transcript::Mode::parse(value(Key::SMTPTranscript)),
            probe_ports: self.global_value(Key::SMTPProbePorts).unwrap_or_default().to_string(),
        }
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
    pub(super) fn read(config: &Config, p: &Profile) -> Result<ProfileSettings> {
        let get = |k: Key| config.effective(p, k.def());
        let text = |k: Key| get(k).filter(|v| !v.is_empty());
        let num = |k: Key| get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let flag = |k: Key| get(k).as_deref() == Some("true");
        Ok(ProfileSettings {
            name: p.name.clone(),
            server: text(Key::SMTPServer),
            port: num(Key::SMTPServerPort) as u16,
            implicit_tls_port: config
                .global_value(Key::SMTPProbePorts)
                .and_then(|text| probe_port_map(text).ok()?.get(&465).copied())
                .unwrap_or(465),
            encryption: match get(Key::SMTPServerEncryption).as_deref() {
                Some("SSL") => Encryption::Ssl,
                Some("TLS") => Encryption::StartTls,
                _ => Encryption::None,
            },
            authentication: match get(Key::SMTPAuthentication).as_deref() {
                Some("None") => Authentication::None,
                Some("Optional") => Authentication::Optional,
                _ => Authentication::Required,
            },
            auth_model: if get(Key::SMTPAuthModel).as_deref() == Some("OAuth2") {
                AuthModel::OAuth2
            } else {
                AuthModel::Basic
            },
            shared_credentials: get(Key::SMTPCredentials).as_deref() == Some("Shared"),
            transport: if get(Key::SMTPTransport).as_deref() == Some("Graph") {
                Transport::Graph
            } else {
                Transport::Smtp
            },
            graph_url: get(Key::SMTPGraphUrl).unwrap_or_default(),
            graph_save_to_sent_items: flag(Key::SMTPGraphSaveToSentItems),
            graph_mailbox: text(Key::SMTPGraphMailbox),
            graph_oauth2_provider: get(Key::SMTPOAuth2Provider),
            graph_oauth2_flow: get(Key::SMTPOAuth2Flow),
            sender_name: text(Key::SMTPSenderName),
            sender_email: text(Key::SMTPSenderEmail),
            reply_to: text(Key::SMTPReplyTo),
            timeout_ms: num(Key::SMTPConnectionTimeout) as u32,
            batch_per_minute: num(Key::SMTPBatchPerMinute) as u32,
            send_limit: num(Key::SMTPSendLimit) as u32,
            send_limit_period: match get(Key::SMTPSendLimitPeriod).as_deref() {
                Some("Hour") => Period::Hour,
                Some("Day") => Period::Day,
                Some("Week") => Period::Week,
                _ => Period::None,
            },
            enabled: flag(Key::SMTPEnabled),
            filter: text(Key::SMTPFilter),
            min_tls13: get(Key::SMTPMinTlsVersion).as_deref() == Some("1.3"),
            ca_file: text(Key::SMTPCaFile).map(PathBuf::from),
            tls_server_name: text(Key::SMTPTlsServerName),
            accept_invalid_certificates: flag(Key::SMTPAcceptInvalidCertificates),
            allow_plaintext_auth: flag(Key::SMTPAllowPlaintextAuth),
            helo_name: get(Key::SMTPHeloName).unwrap_or_else(local_host_name),
            dkim_domain: text(Key::SMTPDkimDomain),
            dkim_selector: text(Key::SMTPDkimSelector),
            dkim_key_file: text(Key::SMTPDkimKeyFile).map(PathBuf::from),
            archive_dir: text(Key::SMTPArchiveDir).map(PathBuf::from),
            max_message_bytes: num(Key::SMTPMaxMessageBytes),
            test_subject_prefix: get(Key::SMTPTestSubjectPrefix).unwrap_or_default(),
            oauth2_provider: match get(Key::SMTPOAuth2Provider).as_deref() {
                Some("Microsoft") => OAuth2Provider::Microsoft,
                Some("Google") => OAuth2Provider::Google,
                Some("OpenID") => OAuth2Provider::OpenId,
                _ => OAuth2Provider::None,
            },
            oauth2_issuer: text(Key::SMTPOAuth2Issuer),
            oauth2_client_id: text(Key::SMTPOAuth2ClientId),
            oauth2_scopes: text(Key::SMTPOAuth2Scopes),
            oauth2_client_credentials: get(Key::SMTPOAuth2Flow).as_deref() == Some("ClientCredentials"),
        })
    }

    /// What this profile's transport needs beyond single keys, checked
    /// when a whole configuration is given at once
    /// (`smtpb_config_load_json`, `smtpb_config_import_keys`) and before
    /// Graph sends: SMTPTransport=Graph needs OAuth2 with authentication
    /// required and a Microsoft (or, for a test issuer, OpenID) provider.
    /// The error names the key.
    pub fn check_transport(&self) -> Result<()> {
        if self.transport == Transport::Smtp {
            return Ok(());
        }
        let name = &self.name;
        if self.auth_model != AuthModel::OAuth2 {
            return Err(Error::config(format!(
                "profile {name}: SMTPTransport=Graph needs SMTPAuthModel=OAuth2 (Graph accepts only OAuth2 tokens)"
            )));
        }
        if self.authentication == Authentication::None {
            return Err(Error::config(format!(
                "profile {name}: SMTPTransport=Graph needs SMTPAuthentication=Required (Graph always authenticates)"
            )));
        }
        // Read by the key's name: a build without the OAuth2 keys has no
        // provider to check (host-supplied tokens only).
        match self.graph_oauth2_provider.as_deref() {
            None | Some("Microsoft") | Some("OpenID") => Ok(()),
            Some(other) => Err(Error::config(format!(
                "profile {name}: SMTPTransport=Graph needs SMTPOAuth2Provider=Microsoft (or OpenID for a test issuer), not {other}"
            ))),
        }
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
    /// SMTPKeepSentDays and SMTPKeepFailedDays (0 = for ever).
    pub keep_sent_days: u64,
    pub keep_failed_days: u64,
    /// SMTPLogFile, SMTPLogLevel (1 error … 5 trace), SMTPLogMaxBytes.
    pub log_file: Option<PathBuf>,
    pub log_level: u8,
    pub log_max_bytes: u64,
    pub transcript: crate::transcript::Mode,
    /// SMTPProbePorts: `465=10465,587=10587,25=10025` (testing, or a
    /// server on unusual ports).
    pub probe_ports: String,
}
