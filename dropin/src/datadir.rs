//! Where the drop-ins find their data_dir (ABI.md §19): the string value
//! `DataDir` of `HKCU\Software\smtpbridge`, else of
//! `HKLM\Software\smtpbridge`, else `%LOCALAPPDATA%\smtpbridge`.

use smtpbridge::{Error, Result};
use std::path::PathBuf;

/// The registry key (under HKCU, then HKLM) that may name the data_dir.
pub const REGISTRY_KEY: &str = r"Software\smtpbridge";
/// Its value.
pub const REGISTRY_VALUE: &str = "DataDir";

/// The first of: the user's setting, the machine's setting, the per-user
/// default folder (`local_app_data`\smtpbridge). An empty setting counts
/// as none.
pub fn choose(user: Option<String>, machine: Option<String>, local_app_data: Option<PathBuf>) -> Result<PathBuf> {
    let set = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).map(PathBuf::from);
    set(user).or_else(|| set(machine)).or_else(|| local_app_data.map(|d| d.join("smtpbridge"))).ok_or_else(|| {
        Error::config(format!(
            "no data directory: set {REGISTRY_VALUE} under HKCU\\{REGISTRY_KEY} or HKLM\\{REGISTRY_KEY}, \
             or LOCALAPPDATA"
        ))
    })
}

/// The data_dir of this process's drop-in.
pub fn lookup() -> Result<PathBuf> {
    choose(
        registry::read(registry::Hive::User),
        registry::read(registry::Hive::Machine),
        std::env::var_os("LOCALAPPDATA").map(PathBuf::from),
    )
}

#[cfg(windows)]
mod registry {
    use super::{REGISTRY_KEY, REGISTRY_VALUE};
    use crate::wide;
    use windows_sys::Win32::System::Registry::{RegGetValueW, HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE, RRF_RT_REG_SZ};

    pub enum Hive {
        User,
        Machine,
    }

    /// The string value, or None when the key or value is missing or is
    /// not a string.
    pub fn read(hive: Hive) -> Option<String> {
        let root = match hive {
            Hive::User => HKEY_CURRENT_USER,
            Hive::Machine => HKEY_LOCAL_MACHINE,
        };
        let (key, value) = (wide(REGISTRY_KEY), wide(REGISTRY_VALUE));
        let mut buffer = vec![0u16; 1024];
        let mut bytes = (buffer.len() * 2) as u32;
        // SAFETY: the key and value names are NUL-terminated UTF-16; the
        // buffer holds `bytes` bytes, which RegGetValueW does not exceed.
        let status = unsafe {
            RegGetValueW(
                root,
                key.as_ptr(),
                value.as_ptr(),
                RRF_RT_REG_SZ,
                std::ptr::null_mut(),
                buffer.as_mut_ptr().cast(),
                &mut bytes,
            )
        };
        if status != 0 {
            return None;
        }
        let chars = (bytes as usize / 2).min(buffer.len());
        let text = &buffer[..chars];
        let end = text.iter().position(|&c| c == 0).unwrap_or(text.len());
        Some(String::from_utf16_lossy(&text[..end]))
    }
}

#[cfg(not(windows))]
mod registry {
    pub enum Hive {
        User,
        Machine,
    }

    /// No registry: the default folder decides.
    pub fn read(_hive: Hive) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_then_machine_then_local_app_data() {
        let local = Some(PathBuf::from("/home/anna/local"));
        assert_eq!(choose(Some("U".into()), Some("M".into()), local.clone()).unwrap(), PathBuf::from("U"));
        assert_eq!(choose(Some(" ".into()), Some("M".into()), local.clone()).unwrap(), PathBuf::from("M"));
        assert_eq!(choose(None, None, local).unwrap(), PathBuf::from("/home/anna/local/smtpbridge"));
        let error = choose(None, Some(String::new()), None).unwrap_err();
        assert!(error.message().contains("DataDir"), "{}", error.message());
    }
}
