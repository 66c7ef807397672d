//! The table of configuration keys: each key's name as hosts spell it,
//! where it lives, what it accepts and its default.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::text::printable;

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
    /// The key as code names it; `Key::X.def()` is this line.
    pub key: Key,
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

/// Defines the key table and [`Key`] together from one list, so that code
/// names a key as `Key::SMTPServer` (a typo does not compile) and reads
/// its line of [`KEYS`] with [`Key::def`].
macro_rules! keys {
    ($($name:ident: $scope:ident, $kind:expr, $default:expr;)*) => {
        /// Every configuration key, by the name hosts spell it with.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Key {
            $($name,)*
        }

        /// Every configuration key, in the order `export_json` writes them.
        pub static KEYS: &[KeyDef] = &[
            $(KeyDef { key: Key::$name, name: stringify!($name), scope: Scope::$scope, kind: $kind, default: $default },)*
        ];
    };
}

keys! {
    SMTPServer: Profile, Kind::Host, None;
    SMTPServerPort: Profile, Kind::Number(1, 65535), None;
    SMTPServerEncryption: Profile, Kind::Enum(ENCRYPTION), Some("None");
    SMTPAuthentication: Profile, Kind::Enum(AUTHENTICATION), Some("Required");
    SMTPAuthModel: Profile, Kind::Enum(AUTH_MODEL), Some("Basic");
    SMTPCredentials: Profile, Kind::Enum(CREDENTIALS), Some("PerUser");
    SMTPTransport: Profile, Kind::Enum(TRANSPORT), Some("SMTP");
    SMTPGraphUrl: Profile, Kind::GraphUrl, Some("https://graph.microsoft.com/v1.0");
    SMTPGraphSaveToSentItems: Profile, Kind::Bool, Some("true");
    SMTPGraphMailbox: Profile, Kind::Email, None;
    SMTPSenderName: Profile, Kind::Text, None;
    SMTPSenderEmail: Profile, Kind::Email, None;
    SMTPReplyTo: Profile, Kind::Email, None;
    SMTPConnectionTimeout: Profile, Kind::Number(1, MS_MAX), Some("30000");
    SMTPBatchPerMinute: Profile, Kind::Number(0, 1_000_000), Some("0");
    SMTPSendLimit: Profile, Kind::Number(0, MS_MAX), Some("0");
    SMTPSendLimitPeriod: Profile, Kind::Enum(PERIOD), Some("None");
    SMTPEnabled: Profile, Kind::Bool, Some("true");
    SMTPDefault: Profile, Kind::Bool, None;
    SMTPFilter: Profile, Kind::Filter, None;
    SMTPMinTlsVersion: Profile, Kind::Enum(TLS_VERSION), Some("1.2");
    SMTPCaFile: Profile, Kind::CaFile, None;
    SMTPTlsServerName: Profile, Kind::Host, None;
    SMTPAcceptInvalidCertificates: Profile, Kind::Bool, Some("false");
    SMTPAllowPlaintextAuth: Profile, Kind::Bool, Some("false");
    SMTPHeloName: Profile, Kind::Host, None;
    SMTPDkimDomain: Profile, Kind::Host, None;
    SMTPDkimSelector: Profile, Kind::Host, None;
    SMTPDkimKeyFile: Profile, Kind::DkimKeyFile, None;
    SMTPArchiveDir: Profile, Kind::Path, None;
    SMTPMaxMessageBytes: Profile, Kind::Number(1, MS_MAX), Some("36700160");
    SMTPTestSubjectPrefix: Profile, Kind::Text, None;
    SMTPOAuth2Provider: Profile, Kind::Enum(OAUTH2_PROVIDER), Some("None");
    SMTPOAuth2Issuer: Profile, Kind::Url, None;
    SMTPOAuth2Tenant: Profile, Kind::Host, Some("organizations");
    SMTPOAuth2ClientId: Profile, Kind::Text, None;
    SMTPOAuth2ClientSecret: Profile, Kind::Secret, None;
    SMTPOAuth2Scopes: Profile, Kind::Text, None;
    SMTPOAuth2Flow: Profile, Kind::Enum(OAUTH2_FLOW), Some("Interactive");
    SMTPUsername: Both, Kind::Text, None;
    SMTPPassword: Both, Kind::Secret, None;
    SMTPTestMode: Global, Kind::Bool, Some("false");
    SMTPTestAddresses: Global, Kind::Emails, None;
    SMTPRetryInitialMs: Global, Kind::Number(1, MS_MAX), Some("60000");
    SMTPRetryMaxMs: Global, Kind::Number(1, MS_MAX), Some("3600000");
    SMTPRetryMaxAgeMs: Global, Kind::Number(1, MS_MAX), Some("172800000");
    SMTPDeliveryThreads: Global, Kind::Number(1, 64), Some("2");
    SMTPShutdownGraceMs: Global, Kind::Number(0, MS_MAX), Some("3000");
    SMTPKeepSentDays: Global, Kind::Number(0, 36500), Some("30");
    SMTPKeepFailedDays: Global, Kind::Number(0, 36500), Some("90");
    SMTPLogFile: Global, Kind::Path, None;
    SMTPLogLevel: Global, Kind::Enum(LOG_LEVEL), Some("Info");
    SMTPLogMaxBytes: Global, Kind::Number(4096, 1 << 40), Some("10485760");
    SMTPTranscript: Global, Kind::Enum(TRANSCRIPT), Some("Failures");
    SMTPProbePorts: Global, Kind::Text, None;
    SMTPMasterKeyScope: Global, Kind::Enum(KEY_SCOPE), Some("User");
    SMTPAllowNetworkDataDir: Global, Kind::Bool, Some("false");
}

impl Key {
    /// The key's line of [`KEYS`].
    pub fn def(self) -> &'static KeyDef {
        &KEYS[self as usize]
    }

    /// The key's name as hosts spell it.
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The key's default as a number (0 when it has none).
    pub fn default_number(self) -> u64 {
        self.def().default.and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

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
