//! The machine this process runs on: who runs it, whether another process
//! is alive, and whether a folder is on a network file system. What a
//! shared data_dir (ABI §17) needs to know about the other processes on it.
//! Each function is one OS call sequence; the policy lives with the callers.

use std::path::Path;

/// The name of the account this process runs as; never empty ("uid N"
/// when the account has no name).
pub fn user_name() -> String {
    os::user_name()
}

/// This machine's name.
pub fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Whether process `pid` of this machine is alive (a process we may not
/// signal is alive).
pub fn pid_alive(pid: u32) -> bool {
    pid == std::process::id() || os::pid_alive(pid)
}

/// Why `dir` is on a network file system (e.g. "it is on NFS"), or `None`
/// when it is local or cannot be told.
pub fn network_file_system(dir: &Path) -> Option<String> {
    os::network_file_system(dir)
}

/// The network file systems by `statfs` f_type (Linux magic numbers).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn network_fs_type(f_type: i64) -> Option<&'static str> {
    match f_type {
        0x6969 => Some("NFS"),
        0x517B => Some("SMB"),
        0xFF53_4D42 => Some("CIFS"),
        0xFE53_4D42 => Some("SMB2"),
        0x0102_1997 => Some("9P"),
        0x6B41_4653 => Some("AFS"),
        0x0BD0_0BD0 => Some("Lustre"),
        0x0027_E0EB => Some("CephFS"),
        _ => None,
    }
}

/// Whether a path names a network share by its form: `\\server\share`
/// (UNC) or `\\?\UNC\server\share`; `\\?\C:\` and `\\.\` device paths are
/// local.
#[cfg_attr(not(windows), allow(dead_code))]
fn is_unc(path: &str) -> bool {
    let p = path.replace('/', "\\");
    if let Some(rest) = p.strip_prefix("\\\\?\\") {
        return rest.len() >= 4 && rest[..4].eq_ignore_ascii_case("UNC\\");
    }
    p.starts_with("\\\\") && !p.starts_with("\\\\.\\")
}

#[cfg(unix)]
#[allow(unsafe_code)]
mod os {
    use std::ffi::CStr;
    use std::path::Path;

    pub fn user_name() -> String {
        // SAFETY: geteuid cannot fail; getpwuid_r writes only into `pwd`
        // and `buf`, both ours and sized as passed.
        let uid = unsafe { libc::geteuid() };
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
        if rc == 0 && !found.is_null() && !pwd.pw_name.is_null() {
            // SAFETY: pw_name points into `buf`, NUL-terminated by getpwuid_r.
            let name = unsafe { CStr::from_ptr(pwd.pw_name) }.to_string_lossy().into_owned();
            if !name.is_empty() {
                return name;
            }
        }
        std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| format!("uid {uid}"))
    }

    pub fn pid_alive(pid: u32) -> bool {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        if pid <= 0 {
            return false;
        }
        // SAFETY: signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }

    #[cfg(target_os = "linux")]
    pub fn network_file_system(dir: &Path) -> Option<String> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is NUL-terminated; statfs writes only `st`.
        if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
            return None;
        }
        #[allow(clippy::unnecessary_cast)] // f_type's width differs by target
        super::network_fs_type(st.f_type as i64).map(|name| format!("it is on a network file system ({name})"))
    }

    #[cfg(not(target_os = "linux"))]
    pub fn network_file_system(_dir: &Path) -> Option<String> {
        None
    }
}

#[cfg(windows)]
#[allow(unsafe_code)]
mod os {
    use std::os::windows::ffi::OsStrExt;
    use std::path::{Component, Path, Prefix};
    use windows_sys::Win32::Foundation::{CloseHandle, STILL_ACTIVE};
    use windows_sys::Win32::Storage::FileSystem::GetDriveTypeW;
    use windows_sys::Win32::System::Threading::{GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION};
    use windows_sys::Win32::System::WindowsProgramming::{GetUserNameW, DRIVE_REMOTE};

    pub fn user_name() -> String {
        let mut buf = [0u16; 257];
        let mut len = buf.len() as u32;
        // SAFETY: `buf` holds `len` UTF-16 units; GetUserNameW writes at most that.
        if unsafe { GetUserNameW(buf.as_mut_ptr(), &mut len) } != 0 && len > 1 {
            return String::from_utf16_lossy(&buf[..len as usize - 1]);
        }
        std::env::var("USERNAME").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "(no account name)".into())
    }

    pub fn pid_alive(pid: u32) -> bool {
        // SAFETY: a handle opened here is closed here; GetExitCodeProcess writes `code`.
        unsafe {
            let handle = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
            if handle.is_null() {
                // Access denied: it exists; anything else: gone.
                return std::io::Error::last_os_error().raw_os_error() == Some(5);
            }
            let mut code = 0u32;
            let ok = GetExitCodeProcess(handle, &mut code);
            CloseHandle(handle);
            ok != 0 && code == STILL_ACTIVE as u32
        }
    }

    pub fn network_file_system(dir: &Path) -> Option<String> {
        if super::is_unc(&dir.to_string_lossy()) {
            return Some("it is a network share (UNC path)".into());
        }
        let root = match dir.components().next() {
            Some(Component::Prefix(p)) => match p.kind() {
                Prefix::Disk(letter) | Prefix::VerbatimDisk(letter) => format!("{}:\\", letter as char),
                Prefix::UNC(..) | Prefix::VerbatimUNC(..) => {
                    return Some("it is a network share (UNC path)".into());
                }
                _ => return None,
            },
            _ => return None,
        };
        let wide: Vec<u16> = std::ffi::OsStr::new(&root).encode_wide().chain(Some(0)).collect();
        // SAFETY: `wide` is NUL-terminated.
        (unsafe { GetDriveTypeW(wide.as_ptr()) } == DRIVE_REMOTE)
            .then(|| format!("its drive {root} is a network drive"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_is_named() {
        let name = user_name();
        assert!(!name.is_empty() && !name.contains("unknown"), "{name}");
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(pid_alive(std::process::id()));
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--list")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!pid_alive(pid));
    }

    #[test]
    fn network_file_systems_are_told_by_their_statfs_type() {
        assert_eq!(network_fs_type(0x6969), Some("NFS"));
        assert_eq!(network_fs_type(0xFF53_4D42), Some("CIFS"));
        assert_eq!(network_fs_type(0xFE53_4D42), Some("SMB2"));
        assert_eq!(network_fs_type(0x517B), Some("SMB"));
        // ext4, tmpfs, overlayfs, btrfs, xfs.
        for local in [0xEF53, 0x0102_1994, 0x794C_7630, 0x9123_683E, 0x5846_5342] {
            assert_eq!(network_fs_type(local), None, "{local:#x}");
        }
        assert_eq!(network_file_system(&std::env::temp_dir()), None, "the temp folder is local");
    }

    #[test]
    fn unc_paths_are_network_shares_and_device_paths_are_not() {
        assert!(is_unc(r"\\server\share\smtpbridge"));
        assert!(is_unc("//server/share"));
        assert!(is_unc(r"\\?\UNC\server\share"));
        assert!(!is_unc(r"\\?\C:\ProgramData\smtpbridge"));
        assert!(!is_unc(r"\\.\pipe\x"));
        assert!(!is_unc(r"C:\ProgramData\smtpbridge"));
    }
}
