//! The encrypted credential store.
//!
//! Each user's SMTP secret (password or OAuth2 access token) is sealed with
//! AES-256-GCM under a key derived once per open from the master secret by
//! PBKDF2-HMAC-SHA256 (600,000 iterations, random per-store salt). Every
//! secret gets a fresh random 96-bit nonce, and the user id, username,
//! kind and expiry are bound as associated data, so moving or editing an
//! entry makes it fail to open instead of yielding another user's secret.
//! A sealed known value ("check") tells a wrong master secret apart from a
//! tampered entry. Plaintext secrets live only in [`Zeroizing`] buffers.
//!
//! The store is a JSON file (`credentials.json`) in data_dir, rewritten
//! atomically; a failure never rewrites it, and a store of a newer format
//! is refused and left untouched.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

use crate::clock::SharedClock;
use crate::error::{Code, Error, Result};
use crate::fsutil;

mod key_file;
pub use key_file::key_file_secret;

/// The store format this library writes.
/// Format 2 (1.1) adds the OAuth2 refresh token and provider of an entry
/// and the profiles' client secrets; a format 1 store is migrated on open
/// after a copy is kept as `credentials.v1.json`.
pub(crate) const FORMAT: u32 = 2;
/// PBKDF2 iterations for a new store (OWASP, 2023: 600,000 for SHA-256).
pub(crate) const ITERATIONS: u32 = 600_000;
/// The PBKDF2 iterations a store may name: more would make each open take
/// minutes (4e9 is about 20); none derives no key. A low count is not
/// refused: the store is sealed with the key, so lowering it in the file
/// only makes the store fail to open.
const ITERATIONS_RANGE: std::ops::RangeInclusive<u32> = 1..=10_000_000;
/// Salt lengths a store may have (this library writes 16 bytes).
const SALT_BYTES_RANGE: std::ops::RangeInclusive<usize> = 8..=64;
const CHECK_PLAINTEXT: &[u8] = b"smtpbridge credential store";

/// Whether a credential is a password or an OAuth2 access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretKind {
    Password,
    Oauth2,
}

/// A credential opened for use. The secret is wiped when dropped.
pub struct Credential {
    pub username: String,
    pub secret: Zeroizing<String>,
    pub kind: SecretKind,
    pub expires_at: i64,
    /// The OAuth2 refresh token, when the library can refresh.
    pub refresh: Option<Zeroizing<String>>,
    /// The provider that issued the refresh token (SMTPOAuth2Provider).
    pub provider: Option<String>,
    /// Unix seconds when the entry was written: for an access token the
    /// library fetched, when it was issued, so `expires_at - stored_at` is
    /// its lifetime (the store's `updated_at`; no new field, so stores stay
    /// readable by older libraries).
    pub stored_at: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    nonce: String,
    ciphertext: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    user_id: Option<String>,
    username: String,
    kind: SecretKind,
    expires_at: i64,
    updated_at: i64,
    #[serde(flatten)]
    sealed: Sealed,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh: Option<Sealed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileSecret {
    profile: String,
    #[serde(flatten)]
    sealed: Sealed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    format: u32,
    kdf: String,
    iterations: u32,
    salt: String,
    check: Sealed,
    entries: Vec<Entry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    client_secrets: Vec<ProfileSecret>,
}

/// The credential store of one client.
pub struct CredentialStore {
    path: Option<PathBuf>,
    cipher: Aes256Gcm,
    file: StoreFile,
    /// The time `updated_at` is taken from.
    clock: SharedClock,
}

impl std::fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialStore").field("path", &self.path).field("entries", &self.file.entries.len()).finish()
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no random numbers from the OS: {e}")))?;
    Ok(bytes)
}

fn derive_key(secret: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(secret, salt, iterations, key.as_mut());
    key
}

fn associated_data(user_id: Option<&str>, username: &str, kind: SecretKind, expires_at: i64) -> Vec<u8> {
    let user = match user_id {
        Some(u) => format!("user:{u}"),
        None => "shared".to_string(),
    };
    format!("smtpbridge-credential-v1\0{user}\0{username}\0{kind:?}\0{expires_at}").into_bytes()
}

fn refresh_data(user_id: Option<&str>, provider: Option<&str>) -> Vec<u8> {
    let user = match user_id {
        Some(u) => format!("user:{u}"),
        None => "shared".to_string(),
    };
    format!("smtpbridge-refresh-v1\0{user}\0{}", provider.unwrap_or("")).into_bytes()
}

fn client_secret_data(profile: &str) -> Vec<u8> {
    format!("smtpbridge-client-secret-v1\0{}", profile.to_ascii_lowercase()).into_bytes()
}

fn seal(cipher: &Aes256Gcm, plaintext: &[u8], aad: &[u8]) -> Result<Sealed> {
    let nonce = random_bytes::<12>()?;
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .map_err(|_| Error::internal("encryption failed"))?;
    Ok(Sealed { nonce: B64.encode(nonce), ciphertext: B64.encode(ciphertext) })
}

fn open_sealed(cipher: &Aes256Gcm, sealed: &Sealed, aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let nonce = B64.decode(&sealed.nonce).ok().filter(|n| n.len() == 12)?;
    let ciphertext = B64.decode(&sealed.ciphertext).ok()?;
    cipher.decrypt(Nonce::from_slice(&nonce), Payload { msg: &ciphertext, aad }).ok().map(Zeroizing::new)
}

/// The user id of `user`'s credential for `profile` alone: `profile:user`
/// (`profile:` for the profile's own shared credential, `user` `None`).
pub fn profile_user_id(profile: &str, user: Option<&str>) -> String {
    format!("{profile}:{}", user.unwrap_or(""))
}

/// A `profile:user` id split in two, when what comes before the first `:`
/// is a profile name; the profile matches in any letter case.
pub fn split_profile_id(id: &str) -> Option<(&str, &str)> {
    let (profile, user) = id.split_once(':')?;
    crate::config::check_profile_name(profile).ok()?;
    Some((profile, user))
}

/// Whether a stored user id names the same credential as `asked`.
fn same_user(stored: Option<&str>, asked: Option<&str>) -> bool {
    match (stored, asked) {
        (None, None) => true,
        (Some(a), Some(b)) if a == b => true,
        (Some(a), Some(b)) => match (split_profile_id(a), split_profile_id(b)) {
            (Some((pa, ua)), Some((pb, ub))) => pa.eq_ignore_ascii_case(pb) && ua == ub,
            _ => false,
        },
        _ => false,
    }
}

fn user_label(user_id: Option<&str>) -> String {
    match user_id {
        Some(u) => format!("user \"{}\"", crate::text::printable(u)),
        None => "the shared credential".to_string(),
    }
}

impl CredentialStore {
    /// The store, taking the time a credential is stored from `clock`.
    pub(crate) fn with_clock(mut self, clock: SharedClock) -> CredentialStore {
        self.clock = clock;
        self
    }

    /// Opens the store at `path` (created on first write), or an in-memory
    /// store when `path` is `None`, with the master `secret`.
    pub fn open(path: Option<PathBuf>, secret: &[u8]) -> Result<CredentialStore> {
        let existing = match &path {
            Some(p) if p.exists() => Some(read_store(p)?),
            _ => None,
        };
        match existing {
            Some(file) => {
                let salt = B64.decode(&file.salt).map_err(|_| tampered(path.as_deref()))?;
                check_parameters(path.as_deref(), &file, salt.len())?;
                let key = derive_key(secret, &salt, file.iterations);
                let cipher = Aes256Gcm::new_from_slice(key.as_ref()).expect("32-byte key");
                if open_sealed(&cipher, &file.check, b"check").as_deref().map(Vec::as_slice) != Some(CHECK_PLAINTEXT) {
                    return Err(Error::credentials(format!(
                        "wrong master secret for the credential store {} (or its key check was changed)",
                        path.as_deref().map(|p| p.display().to_string()).unwrap_or_default()
                    )));
                }
                let older = file.format < FORMAT;
                let mut store = CredentialStore { path, cipher, file, clock: crate::clock::system() };
                if older {
                    store.migrate()?;
                }
                Ok(store)
            }
            None => {
                let salt = random_bytes::<16>()?;
                let key = derive_key(secret, &salt, ITERATIONS);
                let cipher = Aes256Gcm::new_from_slice(key.as_ref()).expect("32-byte key");
                let check = seal(&cipher, CHECK_PLAINTEXT, b"check")?;
                let file = StoreFile {
                    format: FORMAT,
                    kdf: "pbkdf2-hmac-sha256".into(),
                    iterations: ITERATIONS,
                    salt: B64.encode(salt),
                    check,
                    entries: Vec::new(),
                    client_secrets: Vec::new(),
                };
                let mut store = CredentialStore { path, cipher, file: file.clone(), clock: crate::clock::system() };
                // Written now, so that a later open with another secret is
                // refused even before any credential is stored.
                store.commit(file)?;
                Ok(store)
            }
        }
    }

    fn find(&self, user_id: Option<&str>) -> Option<&Entry> {
        self.file.entries.iter().find(|e| same_user(e.user_id.as_deref(), user_id))
    }

    /// The user id whose credential a message of `profile` and `user`
    /// (`None`: the shared credential) logs in with: the profile's own
    /// (`profile:user`, `profile:`) when there is one, else `user`.
    pub fn resolve(&self, profile: &str, user: Option<&str>) -> Option<String> {
        let own = profile_user_id(profile, user);
        match self.find(Some(&own)) {
            Some(_) => Some(own),
            None => user.map(str::to_string),
        }
    }

    /// Stores `username` and `secret` for `user_id` (`None` = shared),
    /// replacing what was there.
    pub fn set(
        &mut self,
        user_id: Option<&str>,
        username: &str,
        secret: &str,
        kind: SecretKind,
        expires_at: i64,
    ) -> Result<()> {
        let aad = associated_data(user_id, username, kind, expires_at);
        let entry = Entry {
            user_id: user_id.map(str::to_string),
            username: username.to_string(),
            kind,
            expires_at,
            updated_at: self.clock.unix(),
            sealed: seal(&self.cipher, secret.as_bytes(), &aad)?,
            refresh: None,
            provider: None,
        };
        let mut next = self.file.clone();
        next.entries.retain(|e| !same_user(e.user_id.as_deref(), user_id));
        next.entries.push(entry);
        self.commit(next)
    }

    /// Stores an OAuth2 credential the library refreshes: the access token
    /// (may be empty: not fetched yet), its expiry, the refresh token and
    /// the provider, in one atomic write.
    pub fn set_oauth2_refreshable(
        &mut self,
        user_id: Option<&str>,
        username: &str,
        access_token: &str,
        expires_at: i64,
        refresh_token: &str,
        provider: &str,
    ) -> Result<()> {
        let aad = associated_data(user_id, username, SecretKind::Oauth2, expires_at);
        let entry = Entry {
            user_id: user_id.map(str::to_string),
            username: username.to_string(),
            kind: SecretKind::Oauth2,
            expires_at,
            updated_at: self.clock.unix(),
            sealed: seal(&self.cipher, access_token.as_bytes(), &aad)?,
            refresh: Some(seal(&self.cipher, refresh_token.as_bytes(), &refresh_data(user_id, Some(provider)))?),
            provider: Some(provider.to_string()),
        };
        let mut next = self.file.clone();
        next.entries.retain(|e| !same_user(e.user_id.as_deref(), user_id));
        next.entries.push(entry);
        self.commit(next)
    }

    /// Sets (or with `None` removes) the SMTPOAuth2ClientSecret of `profile`.
    pub fn set_client_secret(&mut self, profile: &str, secret: Option<&str>) -> Result<()> {
        let mut next = self.file.clone();
        next.client_secrets.retain(|s| !s.profile.eq_ignore_ascii_case(profile));
        if let Some(secret) = secret {
            let sealed = seal(&self.cipher, secret.as_bytes(), &client_secret_data(profile))?;
            next.client_secrets.push(ProfileSecret { profile: profile.to_string(), sealed });
        }
        self.commit(next)
    }

    /// The SMTPOAuth2ClientSecret of `profile`, if one is set.
    pub fn client_secret(&self, profile: &str) -> Result<Option<Zeroizing<String>>> {
        let Some(entry) = self.file.client_secrets.iter().find(|s| s.profile.eq_ignore_ascii_case(profile)) else {
            return Ok(None);
        };
        let plaintext = open_sealed(&self.cipher, &entry.sealed, &client_secret_data(profile)).ok_or_else(|| {
            Error::credentials(format!(
                "SMTPOAuth2ClientSecret of profile {profile} does not decrypt: the store was changed"
            ))
        })?;
        let text = String::from_utf8(plaintext.to_vec())
            .map_err(|_| Error::credentials(format!("SMTPOAuth2ClientSecret of profile {profile} is damaged")))?;
        Ok(Some(Zeroizing::new(text)))
    }

    /// Rewrites a store of an older format in this one, after keeping a
    /// copy of the old file next to it.
    fn migrate(&mut self) -> Result<()> {
        if let Some(path) = &self.path {
            let copy = path.with_file_name(format!("credentials.v{}.json", self.file.format));
            if !copy.exists() {
                let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, &e))?;
                fsutil::atomic_write(&copy, &bytes, true)?;
            }
        }
        let mut next = self.file.clone();
        next.format = FORMAT;
        self.commit(next)
    }

    /// Changes the shared credential's username and keeps its password:
    /// `profile`'s own shared credential, or with `None` the global one.
    pub fn set_shared_username(&mut self, profile: Option<&str>, username: Option<&str>) -> Result<()> {
        let id = profile.map(|p| profile_user_id(p, None));
        let id = id.as_deref();
        let current = self.get(id)?;
        match (username, current) {
            (None, None) => Ok(()),
            (u, Some(c)) => match (&c.refresh, &c.provider) {
                (Some(r), Some(p)) => self.set_oauth2_refreshable(id, u.unwrap_or(""), &c.secret, c.expires_at, r, p),
                _ => self.set(id, u.unwrap_or(""), &c.secret, c.kind, c.expires_at),
            },
            (Some(u), None) => self.set(id, u, "", SecretKind::Password, 0),
        }
    }

    /// Changes the shared credential's password and keeps its username
    /// (`profile` as for [`CredentialStore::set_shared_username`]).
    pub fn set_shared_password(&mut self, profile: Option<&str>, password: Option<&str>) -> Result<()> {
        let id = profile.map(|p| profile_user_id(p, None));
        let id = id.as_deref();
        let username = self.find(id).map(|e| e.username.clone()).unwrap_or_default();
        match password {
            Some(p) => self.set(id, &username, p, SecretKind::Password, 0),
            None if username.is_empty() => self.remove(id).map(|_| ()),
            None => self.set(id, &username, "", SecretKind::Password, 0),
        }
    }

    /// Removes the credential of `user_id`; false when there was none.
    pub fn remove(&mut self, user_id: Option<&str>) -> Result<bool> {
        if self.find(user_id).is_none() {
            return Ok(false);
        }
        let mut next = self.file.clone();
        next.entries.retain(|e| !same_user(e.user_id.as_deref(), user_id));
        self.commit(next)?;
        Ok(true)
    }

    /// Opens the credential of `user_id` for use.
    pub fn get(&self, user_id: Option<&str>) -> Result<Option<Credential>> {
        let Some(entry) = self.find(user_id) else { return Ok(None) };
        // Sealed under the id it was stored with (a profile in another case).
        let user_id = entry.user_id.as_deref();
        let aad = associated_data(user_id, &entry.username, entry.kind, entry.expires_at);
        let plaintext = open_sealed(&self.cipher, &entry.sealed, &aad).ok_or_else(|| {
            Error::credentials(format!(
                "the credential of {} does not decrypt: the store was changed",
                user_label(user_id)
            ))
        })?;
        let secret = String::from_utf8(plaintext.to_vec())
            .map_err(|_| Error::credentials(format!("the credential of {} is damaged", user_label(user_id))))?;
        let refresh = match &entry.refresh {
            None => None,
            Some(sealed) => {
                let plain = open_sealed(&self.cipher, sealed, &refresh_data(user_id, entry.provider.as_deref()))
                    .ok_or_else(|| {
                        Error::credentials(format!(
                            "the refresh token of {} does not decrypt: the store was changed",
                            user_label(user_id)
                        ))
                    })?;
                Some(Zeroizing::new(String::from_utf8(plain.to_vec()).map_err(|_| {
                    Error::credentials(format!("the refresh token of {} is damaged", user_label(user_id)))
                })?))
            }
        };
        Ok(Some(Credential {
            username: entry.username.clone(),
            secret: Zeroizing::new(secret),
            kind: entry.kind,
            expires_at: entry.expires_at,
            refresh,
            provider: entry.provider.clone(),
            stored_at: entry.updated_at,
        }))
    }

    /// The shared credential's username, if one is set.
    pub fn shared_username(&self) -> Option<String> {
        self.find(None).map(|e| e.username.clone()).filter(|u| !u.is_empty())
    }

    /// The shared username a message of `profile` uses: the profile's
    /// own, else the global one.
    pub fn shared_username_of(&self, profile: &str) -> Option<String> {
        self.profile_username(profile).or_else(|| self.shared_username())
    }

    /// The username of `profile`'s own shared credential, if it has one.
    pub fn profile_username(&self, profile: &str) -> Option<String> {
        self.find(Some(&profile_user_id(profile, None))).map(|e| e.username.clone()).filter(|u| !u.is_empty())
    }

    /// The masked view of `smtpb_credentials_masked`.
    pub fn masked(&self, user_id: Option<&str>) -> Result<Masked> {
        let entry = self
            .find(user_id)
            .ok_or_else(|| Error::not_found(format!("no credentials for {}", user_label(user_id))))?;
        // Opening it proves the entry is intact before reporting on it.
        let credential = self.get(user_id)?.expect("entry exists");
        Ok(Masked {
            expires_at: fsutil::rfc3339_unix(entry.expires_at),
            has_secret: !credential.secret.is_empty(),
            kind: match entry.kind {
                SecretKind::Password => "password",
                SecretKind::Oauth2 => "oauth2",
            },
            password: "********",
            provider: entry.provider.clone(),
            refreshable: credential.refresh.as_ref().is_some_and(|r| !r.is_empty()),
            updated_at: fsutil::rfc3339_unix(entry.updated_at),
            user_id: user_id.map(str::to_string),
            username: entry.username.clone(),
        })
    }

    fn commit(&mut self, next: StoreFile) -> Result<()> {
        if let Some(path) = &self.path {
            let bytes = serde_json::to_vec_pretty(&next).map_err(|e| Error::internal(e.to_string()))?;
            fsutil::atomic_write(path, &bytes, true)?;
        }
        self.file = next;
        Ok(())
    }
}

/// A stored credential without its secret (`smtpb_credentials_masked`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Masked {
    pub expires_at: Option<String>,
    pub has_secret: bool,
    /// `password` or `oauth2`.
    pub kind: &'static str,
    /// Always `********`.
    pub password: &'static str,
    pub provider: Option<String>,
    pub refreshable: bool,
    pub updated_at: Option<String>,
    pub user_id: Option<String>,
    pub username: String,
}

/// The key derivation a store names must be one this library can run in
/// reasonable time: else `SMTPB_ERR_CREDENTIALS` at once, naming the
/// file and the field, before any key is derived.
fn check_parameters(path: Option<&Path>, file: &StoreFile, salt_len: usize) -> Result<()> {
    let out_of_range = |field: &str, value: String, range: String| {
        Error::credentials(format!(
            "the credential store {} is damaged or was changed: {field} {value} is out of range ({range})",
            path.map(|p| p.display().to_string()).unwrap_or_default()
        ))
    };
    if file.kdf != "pbkdf2-hmac-sha256" {
        return Err(out_of_range(
            "kdf",
            format!("\"{}\"", crate::text::printable(&file.kdf)),
            "pbkdf2-hmac-sha256".into(),
        ));
    }
    if !ITERATIONS_RANGE.contains(&file.iterations) {
        let range = format!("{} to {}", ITERATIONS_RANGE.start(), ITERATIONS_RANGE.end());
        return Err(out_of_range("iterations", file.iterations.to_string(), range));
    }
    if !SALT_BYTES_RANGE.contains(&salt_len) {
        let range = format!("{} to {} bytes", SALT_BYTES_RANGE.start(), SALT_BYTES_RANGE.end());
        return Err(out_of_range("salt", format!("of {salt_len} bytes"), range));
    }
    Ok(())
}

fn tampered(path: Option<&Path>) -> Error {
    Error::credentials(format!(
        "the credential store {} is damaged or was changed",
        path.map(|p| p.display().to_string()).unwrap_or_default()
    ))
}

fn read_store(path: &Path) -> Result<StoreFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, &e))?;
    let head: Value = serde_json::from_slice(&bytes).map_err(|_| tampered(Some(path)))?;
    let format = head.get("format").and_then(Value::as_u64).ok_or_else(|| tampered(Some(path)))?;
    if format > FORMAT as u64 {
        return Err(Error::new(
            Code::Io,
            format!(
                "the credential store {} has format {format}; this library reads format {FORMAT} and older",
                path.display()
            ),
        ));
    }
    serde_json::from_value(head).map_err(|_| tampered(Some(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("smtpb-cred-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn round_trip_wrong_secret_and_tampering() {
        let dir = temp_dir("rt");
        let path = dir.join("credentials.json");
        let mut store = CredentialStore::open(Some(path.clone()), b"master").unwrap();
        store.set(Some("emp-42"), "anna", "s3cret-pw", SecretKind::Password, 0).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("s3cret-pw"));

        let store = CredentialStore::open(Some(path.clone()), b"master").unwrap();
        assert_eq!(store.get(Some("emp-42")).unwrap().unwrap().secret.as_str(), "s3cret-pw");
        assert!(store.get(Some("other")).unwrap().is_none());

        let err = CredentialStore::open(Some(path.clone()), b"wrong").unwrap_err();
        assert_eq!(err.code(), Code::Credentials);

        // Swap the username: the associated data no longer matches.
        std::fs::write(&path, text.replace("\"anna\"", "\"mallory\"")).unwrap();
        let store = CredentialStore::open(Some(path.clone()), b"master").unwrap();
        assert_eq!(store.get(Some("emp-42")).err().unwrap().code(), Code::Credentials);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn format_1_is_migrated_after_a_copy_and_refresh_tokens_stay_sealed() {
        let dir = temp_dir("mig");
        let path = dir.join("credentials.json");
        let mut store = CredentialStore::open(Some(path.clone()), b"master").unwrap();
        store.set(Some("emp-1"), "anna", "pw-1", SecretKind::Password, 0).unwrap();
        drop(store);
        let v1 = std::fs::read_to_string(&path).unwrap().replace("\"format\": 2", "\"format\": 1");
        std::fs::write(&path, &v1).unwrap();
        let mut store = CredentialStore::open(Some(path.clone()), b"master").unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("credentials.v1.json")).unwrap(), v1);
        assert!(std::fs::read_to_string(&path).unwrap().contains("\"format\": 2"));
        assert_eq!(store.get(Some("emp-1")).unwrap().unwrap().secret.as_str(), "pw-1");
        store.set_oauth2_refreshable(Some("emp-2"), "bob", "access-xyz", 99, "refresh-abc", "Microsoft").unwrap();
        store.set_client_secret("Default", Some("client-secret-q")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        for secret in ["access-xyz", "refresh-abc", "client-secret-q"] {
            assert!(!text.contains(secret));
        }
        let store = CredentialStore::open(Some(path.clone()), b"master").unwrap();
        let c = store.get(Some("emp-2")).unwrap().unwrap();
        assert_eq!(c.refresh.as_deref().map(|r| r.as_str()), Some("refresh-abc"));
        assert_eq!(c.provider.as_deref(), Some("Microsoft"));
        assert_eq!(store.client_secret("default").unwrap().as_deref().map(|s| s.as_str()), Some("client-secret-q"));
        // A provider edited in the file no longer opens the refresh token.
        std::fs::write(&path, text.replace("\"Microsoft\"", "\"Google\"")).unwrap();
        let store = CredentialStore::open(Some(path.clone()), b"master").unwrap();
        assert_eq!(store.get(Some("emp-2")).err().unwrap().code(), Code::Credentials);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn profile_credentials_are_found_in_any_letter_case_and_fall_back() {
        let mut store = CredentialStore::open(None, b"m").unwrap();
        store.set(Some("emp-1"), "anna", "pw-all", SecretKind::Password, 0).unwrap();
        store.set(Some("Backup:emp-1"), "anna-b", "pw-b", SecretKind::Password, 0).unwrap();
        store.set_shared_password(Some("Backup"), Some("shared-b")).unwrap();
        assert_eq!(store.resolve("BACKUP", Some("emp-1")).as_deref(), Some("BACKUP:emp-1"));
        assert_eq!(store.get(Some("backup:emp-1")).unwrap().unwrap().secret.as_str(), "pw-b");
        assert_eq!(store.resolve("Default", Some("emp-1")).as_deref(), Some("emp-1"));
        assert_eq!(store.resolve("Default", None), None);
        assert_eq!(store.get(store.resolve("backup", None).as_deref()).unwrap().unwrap().secret.as_str(), "shared-b");
        // One entry per profile and user, whatever the case it is set in.
        store.set(Some("BACKUP:emp-1"), "anna-c", "pw-c", SecretKind::Password, 0).unwrap();
        assert_eq!(store.file.entries.len(), 3);
        assert!(store.remove(Some("backup:emp-1")).unwrap());
        assert_eq!(store.resolve("Backup", Some("emp-1")).as_deref(), Some("emp-1"));
        assert_eq!(split_profile_id("not a profile:x"), None);
    }

    #[test]
    fn newer_format_is_refused_and_kept() {
        let dir = temp_dir("fmt");
        let path = dir.join("credentials.json");
        std::fs::write(&path, r#"{"format": 9}"#).unwrap();
        let err = CredentialStore::open(Some(path.clone()), b"m").unwrap_err();
        assert_eq!(err.code(), Code::Io);
        assert!(err.message().contains("format 9"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), r#"{"format": 9}"#);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
