//! `smtpbridge register-mapi`: makes smtpbridge_mapi.dll a Simple MAPI
//! mail client (ABI.md §19). The system's MAPI stub (`mapi32.dll`) reads
//! the default value of `Software\Clients\Mail` (the chosen client's key
//! name) and loads that key's `DLLPath`; `DLLPathEx` names the same DLL.
//! The registry view is this program's: run the x86 smtpbridge.exe for
//! 32-bit programs and the x64 one for 64-bit programs.

use smtpbridge::Code;

use crate::args::RegisterMapiArgs;
use crate::outcome::{Failure, Outcome};

/// The client's key under `Software\Clients\Mail`, and its display name.
const CLIENT: &str = "smtpbridge";
const MAIL_KEY: &str = r"Software\Clients\Mail";

#[cfg(not(windows))]
pub fn register_mapi(_args: RegisterMapiArgs, _json: bool) -> Outcome {
    Err(Failure::new(
        Code::State,
        format!("register-mapi writes the Windows registry ({MAIL_KEY}\\{CLIENT}): run the Windows smtpbridge.exe"),
    ))
}

#[cfg(windows)]
pub fn register_mapi(args: RegisterMapiArgs, json: bool) -> Outcome {
    use registry::Root;
    let root = if args.user { Root::User } else { Root::Machine };
    let client_key = format!(r"{MAIL_KEY}\{CLIENT}");
    if args.unregister {
        registry::delete_tree(root, &client_key)?;
        if registry::get(root, MAIL_KEY, None).as_deref() == Some(CLIENT) {
            registry::delete_value(root, MAIL_KEY, None)?;
        }
        crate::output::done(&format!("removed {}\\{client_key}", root.name()), json);
        return Ok(());
    }
    let dll = match args.dll {
        Some(dll) => {
            std::path::absolute(&dll).map_err(|e| Failure::new(Code::Io, format!("--dll {}: {e}", dll.display())))?
        }
        None => std::env::current_exe()
            .map_err(|e| Failure::new(Code::Io, format!("cannot find this program's folder: {e}")))?
            .with_file_name("smtpbridge_mapi.dll"),
    };
    if !dll.is_file() {
        return Err(Failure::new(Code::NotFound, format!("{}: no such file (give the DLL with --dll)", dll.display())));
    }
    let dll = dll.to_string_lossy().into_owned();
    registry::set(root, &client_key, None, CLIENT)?;
    registry::set(root, &client_key, Some("DLLPath"), &dll)?;
    registry::set(root, &client_key, Some("DLLPathEx"), &dll)?;
    if args.default {
        registry::set(root, MAIL_KEY, None, CLIENT)?;
    }
    let default = if args.default { ", the default mail client" } else { "" };
    crate::output::done(&format!("registered {dll} as {}\\{client_key}{default}", root.name()), json);
    Ok(())
}

#[cfg(windows)]
mod registry {
    use smtpbridge::Code;
    use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS};
    use windows_sys::Win32::System::Registry::{
        RegCloseKey, RegCreateKeyExW, RegDeleteKeyValueW, RegDeleteTreeW, RegGetValueW, RegSetKeyValueW, HKEY,
        HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE, KEY_WRITE, REG_OPTION_NON_VOLATILE, REG_SZ, RRF_RT_REG_SZ,
    };

    use crate::outcome::{Failure, Outcome};

    #[derive(Clone, Copy)]
    pub enum Root {
        User,
        Machine,
    }

    impl Root {
        pub fn name(self) -> &'static str {
            match self {
                Root::User => "HKEY_CURRENT_USER",
                Root::Machine => "HKEY_LOCAL_MACHINE",
            }
        }

        fn hkey(self) -> HKEY {
            match self {
                Root::User => HKEY_CURRENT_USER,
                Root::Machine => HKEY_LOCAL_MACHINE,
            }
        }
    }

    fn wide(text: &str) -> Vec<u16> {
        text.encode_utf16().chain(std::iter::once(0)).collect()
    }

    fn value_ptr(name: &Option<Vec<u16>>) -> *const u16 {
        name.as_ref().map_or(std::ptr::null(), |n| n.as_ptr())
    }

    fn failed(what: &str, root: Root, key: &str, status: u32) -> Failure {
        let hint = if status == 5 { " (access denied: run as administrator, or use --user)" } else { "" };
        Failure::new(
            Code::Io,
            format!("cannot {what} {}\\{key}: {}{hint}", root.name(), std::io::Error::from_raw_os_error(status as i32)),
        )
    }

    /// Sets a string value (`None` = the key's default value), creating the key.
    pub fn set(root: Root, key: &str, value: Option<&str>, data: &str) -> Outcome {
        let (key_w, value_w, data_w) = (wide(key), value.map(wide), wide(data));
        let mut created: HKEY = std::ptr::null_mut();
        // SAFETY: NUL-terminated strings; `created` receives the key.
        let status = unsafe {
            RegCreateKeyExW(
                root.hkey(),
                key_w.as_ptr(),
                0,
                std::ptr::null(),
                REG_OPTION_NON_VOLATILE,
                KEY_WRITE,
                std::ptr::null(),
                &mut created,
                std::ptr::null_mut(),
            )
        };
        if status != ERROR_SUCCESS {
            return Err(failed("create", root, key, status));
        }
        // SAFETY: `created` is open; the data is `data_w.len() * 2` bytes.
        let status = unsafe {
            let status = RegSetKeyValueW(
                created,
                std::ptr::null(),
                value_ptr(&value_w),
                REG_SZ,
                data_w.as_ptr().cast(),
                (data_w.len() * 2) as u32,
            );
            RegCloseKey(created);
            status
        };
        if status != ERROR_SUCCESS {
            return Err(failed("write", root, key, status));
        }
        Ok(())
    }

    /// A string value, or None.
    pub fn get(root: Root, key: &str, value: Option<&str>) -> Option<String> {
        let (key_w, value_w) = (wide(key), value.map(wide));
        let mut buffer = vec![0u16; 512];
        let mut bytes = (buffer.len() * 2) as u32;
        // SAFETY: NUL-terminated names; the buffer holds `bytes` bytes.
        let status = unsafe {
            RegGetValueW(
                root.hkey(),
                key_w.as_ptr(),
                value_ptr(&value_w),
                RRF_RT_REG_SZ,
                std::ptr::null_mut(),
                buffer.as_mut_ptr().cast(),
                &mut bytes,
            )
        };
        if status != ERROR_SUCCESS {
            return None;
        }
        buffer.truncate(bytes as usize / 2);
        let end = buffer.iter().position(|&c| c == 0).unwrap_or(buffer.len());
        Some(String::from_utf16_lossy(&buffer[..end]))
    }

    /// Deletes a key and everything under it; a missing key is fine.
    pub fn delete_tree(root: Root, key: &str) -> Outcome {
        let key_w = wide(key);
        // SAFETY: a NUL-terminated key name.
        let status = unsafe { RegDeleteTreeW(root.hkey(), key_w.as_ptr()) };
        if status != ERROR_SUCCESS && status != ERROR_FILE_NOT_FOUND {
            return Err(failed("delete", root, key, status));
        }
        Ok(())
    }

    /// Deletes a value (`None` = the default value); a missing one is fine.
    pub fn delete_value(root: Root, key: &str, value: Option<&str>) -> Outcome {
        let (key_w, value_w) = (wide(key), value.map(wide));
        // SAFETY: NUL-terminated names.
        let status = unsafe { RegDeleteKeyValueW(root.hkey(), key_w.as_ptr(), value_ptr(&value_w)) };
        if status != ERROR_SUCCESS && status != ERROR_FILE_NOT_FOUND {
            return Err(failed("delete a value of", root, key, status));
        }
        Ok(())
    }
}
