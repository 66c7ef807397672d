//! The master key file, `data_dir/master.key`, of a client opened with a
//! NULL secret: a random 256-bit key made once, whose 64 hex digits are
//! the credential store's master secret.
//!
//! Two forms, told apart by the first line:
//!
//! - **raw**: the 64 hex digits and nothing else (owner-only, mode 0600
//!   on Unix). Every store of 1.0 and 1.1, and every store on systems
//!   other than Windows.
//! - **protected** (Windows, from 1.2): the line
//!   `smtpbridge-master-key 2 dpapi-user` (or `dpapi-machine`), then on a
//!   second line, in base64, the DPAPI blob (`CryptProtectData`, with the
//!   entropy `smtpbridge master.key`) of the same 64 hex digits. DPAPI
//!   opens it only for the Windows account that made it (`dpapi-user`) or
//!   on the machine that made it (`dpapi-machine`), so a copy taken off
//!   the machine, or read by another user, is useless.
//!
//! On Windows the scope is `dpapi-machine` when the process runs as a
//! service account (LocalSystem, LocalService, NetworkService or a
//! virtual `NT SERVICE\…` account) or the host set
//! `SMTPMasterKeyScope=Machine`, else `dpapi-user`. A raw key file found
//! there is migrated: the same key is protected and the file replaced
//! atomically, after checking that the new file opens to the same key.
//! The key does not change, so the credential store is not re-sealed and
//! stays as it was; no plaintext copy of the key is kept (one would undo
//! the protection). A user-scope file is re-protected in machine scope
//! when machine scope is asked for; a machine-scope file is never narrowed
//! to one account, since a service and its users may share it.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::path::Path;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::fsutil;

/// The first word of a protected key file.
const MAGIC: &str = "smtpbridge-master-key";
/// The protected format this library writes and reads.
const FORMAT: &str = "2";

/// Whom DPAPI opens a protected key file for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyScope {
    /// The Windows account that made it.
    User,
    /// Any account of the machine that made it.
    Machine,
}

impl KeyScope {
    fn word(self) -> &'static str {
        match self {
            KeyScope::User => "dpapi-user",
            KeyScope::Machine => "dpapi-machine",
        }
    }
}

/// What `master.key` holds.
#[derive(Debug, PartialEq, Eq)]
enum KeyFile {
    /// The 64 hex digits, as 1.0 and 1.1 wrote them.
    Raw(Zeroizing<Vec<u8>>),
    /// A DPAPI blob of them.
    Protected { scope: KeyScope, blob: Vec<u8> },
}

fn damaged(path: &Path, why: &str) -> Error {
    Error::credentials(format!("the key file {} is damaged: {why}", path.display()))
}

fn parse(path: &Path, bytes: &[u8]) -> Result<KeyFile> {
    if bytes.len() == 64 && !bytes.starts_with(MAGIC.as_bytes()) {
        return Ok(KeyFile::Raw(Zeroizing::new(bytes.to_vec())));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| damaged(path, "neither a raw nor a protected key"))?;
    let (head, body) = text.split_once('\n').unwrap_or((text, ""));
    let words: Vec<&str> = head.trim_end_matches('\r').split(' ').collect();
    match words.as_slice() {
        [MAGIC, FORMAT, scope] => {
            let scope = [KeyScope::User, KeyScope::Machine]
                .into_iter()
                .find(|s| s.word() == *scope)
                .ok_or_else(|| damaged(path, "unknown protection (dpapi-user or dpapi-machine expected)"))?;
            let blob = B64.decode(body.trim()).map_err(|_| damaged(path, "the protected key is not base64"))?;
            Ok(KeyFile::Protected { scope, blob })
        }
        [MAGIC, format, ..] => Err(Error::credentials(format!(
            "the key file {} has format {}; this library reads format {FORMAT}",
            path.display(),
            crate::text::printable(format)
        ))),
        _ => Err(damaged(path, "neither a raw nor a protected key")),
    }
}

#[cfg(any(windows, test))]
fn protected_text(scope: KeyScope, blob: &[u8]) -> String {
    format!("{MAGIC} {FORMAT} {}\n{}\n", scope.word(), B64.encode(blob))
}

/// Whether a Windows account SID is a service's: LocalSystem,
/// LocalService, NetworkService, or a per-service (`NT SERVICE\…`,
/// virtual) account.
#[cfg(any(windows, test))]
fn is_service_sid(sid: &str) -> bool {
    matches!(sid, "S-1-5-18" | "S-1-5-19" | "S-1-5-20") || sid.starts_with("S-1-5-80-")
}

fn new_key() -> Result<Zeroizing<Vec<u8>>> {
    let key = Zeroizing::new(super::random_bytes::<32>()?);
    Ok(Zeroizing::new(key.iter().flat_map(|b| format!("{b:02x}").into_bytes()).collect()))
}

/// The master secret for a client opened without one: the key of
/// `data_dir/master.key`, made on first use (see the module doc for its
/// forms); a random key for an in-memory client. `machine_scope_asked`
/// is SMTPMasterKeyScope=Machine (Windows only).
pub fn key_file_secret(data_dir: Option<&Path>, machine_scope_asked: bool) -> Result<Zeroizing<Vec<u8>>> {
    let Some(dir) = data_dir else {
        return Ok(Zeroizing::new(super::random_bytes::<32>()?.to_vec()));
    };
    let path = dir.join("master.key");
    let existing = match std::fs::read(&path) {
        Ok(bytes) => Some(parse(&path, &bytes)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("cannot read", &path, &e)),
    };
    open_or_make(&path, existing, machine_scope_asked)
}

#[cfg(not(windows))]
fn open_or_make(path: &Path, existing: Option<KeyFile>, _machine_scope_asked: bool) -> Result<Zeroizing<Vec<u8>>> {
    match existing {
        Some(KeyFile::Raw(key)) => Ok(key),
        Some(KeyFile::Protected { .. }) => Err(Error::credentials(format!(
            "the key file {} is protected with Windows DPAPI: only the Windows machine and account that made it \
             can open it",
            path.display()
        ))),
        None => {
            let key = new_key()?;
            fsutil::atomic_write(path, &key, true)?;
            Ok(key)
        }
    }
}

#[cfg(windows)]
fn open_or_make(path: &Path, existing: Option<KeyFile>, machine_scope_asked: bool) -> Result<Zeroizing<Vec<u8>>> {
    let service = crate::winsec::process_user_sid().is_ok_and(|sid| is_service_sid(&sid));
    let wanted = if machine_scope_asked || service { KeyScope::Machine } else { KeyScope::User };
    match existing {
        None => {
            let key = new_key()?;
            write_protected(path, &key, wanted)?;
            Ok(key)
        }
        // 1.0 and 1.1 stores: the same key, protected from now on.
        Some(KeyFile::Raw(key)) => {
            write_protected(path, &key, wanted)?;
            Ok(key)
        }
        Some(KeyFile::Protected { scope, blob }) => {
            let key = unprotect(path, &blob)?;
            if scope == KeyScope::User && wanted == KeyScope::Machine {
                write_protected(path, &key, wanted)?;
            }
            Ok(key)
        }
    }
}

#[cfg(windows)]
fn unprotect(path: &Path, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let key = crate::winsec::unprotect(blob).map_err(|e| {
        Error::credentials(format!(
            "the key file {} cannot be opened with Windows DPAPI ({e}): it was protected for another Windows \
             account or on another machine (a data_dir copied here or opened by another user), or it was changed; \
             the credentials stored under it cannot be read",
            path.display()
        ))
    })?;
    if key.len() != 64 {
        return Err(damaged(path, "the protected key has the wrong length"));
    }
    Ok(key)
}

/// Replaces `path` with `key` protected in `scope`, after checking that
/// the new file opens to the same key: a key file is never replaced by
/// one that cannot be read.
#[cfg(windows)]
fn write_protected(path: &Path, key: &[u8], scope: KeyScope) -> Result<()> {
    let failed = |e: std::io::Error| {
        Error::credentials(format!("cannot protect the key file {} with Windows DPAPI: {e}", path.display()))
    };
    let blob = crate::winsec::protect(key, scope == KeyScope::Machine).map_err(failed)?;
    if crate::winsec::unprotect(&blob).map_err(failed)?.as_slice() != key {
        return Err(failed(std::io::Error::other("the protected key does not open to the same key")));
    }
    fsutil::atomic_write(path, protected_text(scope, &blob).as_bytes(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_protected_forms_are_told_apart() {
        let path = Path::new("/data/master.key");
        let raw = [b'a'; 64];
        assert_eq!(parse(path, &raw).unwrap(), KeyFile::Raw(Zeroizing::new(raw.to_vec())));
        let text = protected_text(KeyScope::Machine, b"\x01\x00\x00\x00blob");
        assert!(text.starts_with("smtpbridge-master-key 2 dpapi-machine\n"));
        assert_eq!(
            parse(path, text.as_bytes()).unwrap(),
            KeyFile::Protected { scope: KeyScope::Machine, blob: b"\x01\x00\x00\x00blob".to_vec() }
        );
        let crlf = protected_text(KeyScope::User, b"xyz").replace('\n', "\r\n");
        assert_eq!(
            parse(path, crlf.as_bytes()).unwrap(),
            KeyFile::Protected { scope: KeyScope::User, blob: b"xyz".to_vec() }
        );
        for (bad, says) in [
            (&b"short"[..], "is damaged"),
            (b"smtpbridge-master-key 3 dpapi-user\nAAAA\n", "has format 3"),
            (b"smtpbridge-master-key 2 plain\nAAAA\n", "unknown protection"),
            (b"smtpbridge-master-key 2 dpapi-user\n!!!\n", "not base64"),
        ] {
            let err = parse(path, bad).unwrap_err();
            assert_eq!(err.code(), crate::error::Code::Credentials);
            assert!(err.message().contains("/data/master.key") && err.message().contains(says), "{}", err.message());
        }
    }

    #[test]
    fn service_accounts_are_recognised_by_their_sid() {
        for sid in
            ["S-1-5-18", "S-1-5-19", "S-1-5-20", "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"]
        {
            assert!(is_service_sid(sid), "{sid}");
        }
        for sid in ["S-1-5-21-3623811015-3361044348-30300820-1013", "S-1-5-180", "S-1-5-8"] {
            assert!(!is_service_sid(sid), "{sid}");
        }
    }

    #[cfg(not(windows))]
    #[test]
    fn elsewhere_a_raw_key_is_kept_and_a_protected_one_refused() {
        let dir = std::env::temp_dir().join(format!("smtpb-keyfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = key_file_secret(Some(&dir), true).unwrap();
        assert_eq!(key.len(), 64);
        assert_eq!(std::fs::read(dir.join("master.key")).unwrap(), key.to_vec());
        assert_eq!(key_file_secret(Some(&dir), true).unwrap(), key);
        std::fs::write(dir.join("master.key"), protected_text(KeyScope::User, b"blob")).unwrap();
        let err = key_file_secret(Some(&dir), false).unwrap_err();
        assert!(err.message().contains("master.key") && err.message().contains("DPAPI"), "{}", err.message());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
