//! A client of a shared data_dir (ABI §17): what it checks at open, and
//! the configuration and credentials other processes change.
//!
//! `config.json` and `credentials.json` are replaced whole by the client
//! that changes them (atomic writes). A sharing client keeps the stamp
//! (modification time and length) of the version it read and, at every
//! call that reads them, looks at the file's stamp again: a new stamp is
//! read again before the call goes on. A change is thus seen at the next
//! call of every other client.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use zeroize::Zeroizing;

use super::{Client, DeliveryHolder};
use crate::clock::SharedClock;
use crate::config::{self, Config};
use crate::credentials::CredentialStore;
use crate::error::{Code, Error, Result};
use crate::fsutil;

type Stamp = Option<(SystemTime, u64)>;

/// The stamps of the files a sharing client reads, before it reads them.
pub(super) struct Stamps {
    config_path: PathBuf,
    config: Stamp,
    credentials_path: PathBuf,
    credentials: Stamp,
}

impl Stamps {
    pub(super) fn of(dir: &Path) -> Stamps {
        let config_path = config::config_path(dir);
        let credentials_path = dir.join("credentials.json");
        Stamps {
            config: fsutil::stamp(&config_path),
            credentials: fsutil::stamp(&credentials_path),
            config_path,
            credentials_path,
        }
    }
}

/// The files of a shared data_dir other processes change, and the master
/// secret to read the credential store again.
pub(super) struct Watched {
    stamps: Mutex<Stamps>,
    secret: Zeroizing<Vec<u8>>,
    clock: SharedClock,
}

impl Watched {
    pub(super) fn new(stamps: Stamps, secret: Zeroizing<Vec<u8>>, clock: SharedClock) -> Watched {
        Watched { stamps: Mutex::new(stamps), secret, clock }
    }

    fn stamps(&self) -> std::sync::MutexGuard<'_, Stamps> {
        self.stamps.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The configuration of `dir` (the defaults when it has none).
pub(super) fn read_config(dir: &Path) -> Result<Config> {
    let path = config::config_path(dir);
    if !path.exists() {
        return Ok(Config::new());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("cannot read", &path, &e))?;
    Ok(Config::from_json(&text)
        .map_err(|e| Error::new(Code::Io, format!("{} is damaged: {}", path.display(), e.message())))?
        .0)
}

/// Refuses a data_dir on a network file system: the store needs one
/// machine's shared memory and file locks. An exclusive client may use
/// one when SMTPAllowNetworkDataDir=true.
pub(super) fn check_local(dir: &Path, shared: bool, config: &Config) -> Result<()> {
    let Some(why) = crate::host::network_file_system(dir) else { return Ok(()) };
    let allowed = config.get("SMTPAllowNetworkDataDir").ok().flatten().as_deref() == Some("true");
    if allowed && !shared {
        log::warn!("the data directory {} is used although {why} (SMTPAllowNetworkDataDir=true)", dir.display());
        return Ok(());
    }
    let remedy = if shared {
        "a shared data_dir must be on a local disk of this machine"
    } else {
        "use a local folder, or set SMTPAllowNetworkDataDir=true for an exclusive client"
    };
    Err(Error::new(
        Code::Io,
        format!(
            "the data directory {} cannot be used: {why}, and the outbox store needs one machine's shared \
             memory and file locks; {remedy}",
            dir.display()
        ),
    ))
}

impl Client {
    /// Reads the configuration again if another process changed it.
    pub(super) fn reload_config_if_changed(&self) {
        let Some(watched) = &self.inner.shared else { return };
        let mut stamps = watched.stamps();
        let now = fsutil::stamp(&stamps.config_path);
        if now == stamps.config {
            return;
        }
        let Some(dir) = &self.inner.data_dir else { return };
        match read_config(dir) {
            Ok(config) => {
                stamps.config = now;
                drop(stamps);
                let global = config.global_settings();
                *self.inner.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
                self.inner.log.set_file(global.log_file.as_deref(), global.log_level, global.log_max_bytes);
                log::info!("configuration changed by another client; read again");
                self.close_idle();
            }
            // Caught mid-change or damaged: the last good one stays.
            Err(e) => log::warn!("{}", e.message()),
        }
    }

    /// Notes the configuration this client wrote itself.
    pub(super) fn config_written(&self) {
        if let Some(watched) = &self.inner.shared {
            let mut stamps = watched.stamps();
            stamps.config = fsutil::stamp(&stamps.config_path);
        }
    }

    /// Reads the credential store again, into `store`, if another process
    /// changed it; whether it did.
    pub(super) fn reload_credentials_if_changed(&self, store: &mut CredentialStore) -> bool {
        let Some(watched) = &self.inner.shared else { return false };
        let mut stamps = watched.stamps();
        let now = fsutil::stamp(&stamps.credentials_path);
        if now == stamps.credentials {
            return false;
        }
        match CredentialStore::open(Some(stamps.credentials_path.clone()), &watched.secret) {
            Ok(fresh) => {
                *store = fresh.with_clock(watched.clock.clone());
                stamps.credentials = now;
                self.inner.credential_revision.fetch_add(1, Ordering::AcqRel);
                log::info!("credentials changed by another client; read again");
                true
            }
            Err(e) => {
                log::warn!("{}", e.message());
                false
            }
        }
    }

    /// Notes the credential store this client wrote itself.
    pub(super) fn credentials_written(&self) {
        if let Some(watched) = &self.inner.shared {
            let mut stamps = watched.stamps();
            stamps.credentials = fsutil::stamp(&stamps.credentials_path);
        }
    }

    /// `SMTPB_ERR_STATE` for a client opened submit-only.
    pub(super) fn check_may_send(&self) -> Result<()> {
        if self.inner.submit_only {
            return Err(Error::state(
                "this client was opened with SMTPB_OPEN_SUBMIT_ONLY: it queues (smtpb_enqueue) and never sends",
            ));
        }
        Ok(())
    }

    /// Who delivers the outbox: this client when it holds the data_dir
    /// exclusively, else the holder of the delivery lease.
    pub(super) fn delivery_holder(&self) -> Result<Option<DeliveryHolder>> {
        if self.inner.shared.is_none() {
            return Ok(Some(DeliveryHolder {
                pid: std::process::id(),
                host: crate::host::host_name(),
                user: crate::host::user_name(),
                since: fsutil::rfc3339(self.inner.opened_at),
            }));
        }
        Ok(self.inner.outbox.lease_holder()?.map(DeliveryHolder::from))
    }

    /// Who delivers the outbox of `data_dir` now: the live holder of its
    /// delivery lease, read without opening a client (no master secret,
    /// no key derivation, nothing written); `None` when no sharing client
    /// delivers it. For choosing how to open it, e.g. `OPEN_SUBMIT_ONLY`
    /// beside a service that delivers (ABI §19).
    pub fn delivery_holder_of(data_dir: &Path) -> Result<Option<DeliveryHolder>> {
        Ok(crate::outbox::Outbox::peek_lease_holder(data_dir)?.map(DeliveryHolder::from))
    }
}

impl From<crate::outbox::store::Holder> for DeliveryHolder {
    fn from(h: crate::outbox::store::Holder) -> DeliveryHolder {
        DeliveryHolder {
            pid: h.member.pid,
            host: h.member.host,
            user: h.member.user,
            since: fsutil::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(h.since_ms.max(0) as u64)),
        }
    }
}
