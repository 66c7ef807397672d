//! Self-registration: `regsvr32 smtpbridge_com.dll` (per machine, or per
//! user under `HKCU\Software\Classes` when the machine's keys are not
//! writable), `regsvr32 /u`, and `regsvr32 /n /i:user` (`DllInstall`, per
//! user). The keys are those of any in-process server: the CLSID with
//! `InprocServer32` (this DLL's path, ThreadingModel=Both: the objects
//! lock their own state and have no thread affinity, so COM creates them
//! in the caller's apartment, STA or MTA, without a proxy), the ProgID
//! `SmtpBridge.Application.1` and the version-independent
//! `SmtpBridge.Application`.

use windows_sys::core::{HRESULT, PCWSTR};
use windows_sys::Win32::Foundation::{ERROR_ACCESS_DENIED, ERROR_FILE_NOT_FOUND, HMODULE, S_OK};
use windows_sys::Win32::System::LibraryLoader::{
    GetModuleFileNameW, GetModuleHandleExW, GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS,
    GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
};
use windows_sys::Win32::System::Ole::SELFREG_E_CLASS;
use windows_sys::Win32::System::Registry::{
    RegCloseKey, RegCreateKeyExW, RegDeleteTreeW, RegSetValueExW, HKEY, HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE,
    KEY_WRITE, REG_OPTION_NON_VOLATILE, REG_SZ,
};

use crate::dispatch::boundary;
use smtpbridge_dropin::wide;

pub const PROGID: &str = "SmtpBridge.Application";
pub const PROGID_VERSIONED: &str = "SmtpBridge.Application.1";
pub const CLSID_TEXT: &str = "{B45463DD-655F-4D18-9AD5-55B0E786CABE}";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Machine,
    User,
}

impl Scope {
    fn root(self) -> HKEY {
        match self {
            Scope::Machine => HKEY_LOCAL_MACHINE,
            Scope::User => HKEY_CURRENT_USER,
        }
    }
}

/// The values to write: (key under Software\Classes, value name, data).
fn entries(dll: &str) -> Vec<(String, &'static str, String)> {
    let clsid = format!(r"CLSID\{CLSID_TEXT}");
    let title = "SmtpBridge.Application (smtpbridge: Outlook's object model for sending)".to_string();
    vec![
        (clsid.clone(), "", title.clone()),
        (format!(r"{clsid}\InprocServer32"), "", dll.to_string()),
        (format!(r"{clsid}\InprocServer32"), "ThreadingModel", "Both".into()),
        (format!(r"{clsid}\ProgID"), "", PROGID_VERSIONED.into()),
        (format!(r"{clsid}\VersionIndependentProgID"), "", PROGID.into()),
        (PROGID.into(), "", title.clone()),
        (format!(r"{PROGID}\CLSID"), "", CLSID_TEXT.into()),
        (format!(r"{PROGID}\CurVer"), "", PROGID_VERSIONED.into()),
        (PROGID_VERSIONED.into(), "", title),
        (format!(r"{PROGID_VERSIONED}\CLSID"), "", CLSID_TEXT.into()),
    ]
}

/// This DLL's full path.
fn dll_path() -> Option<String> {
    let mut module: HMODULE = std::ptr::null_mut();
    // SAFETY: the address is a function of this DLL; `module` is writable.
    let found = unsafe {
        GetModuleHandleExW(
            GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
            dll_path as *const () as PCWSTR,
            &mut module,
        )
    };
    if found == 0 {
        return None;
    }
    let mut buffer = vec![0u16; 32768];
    // SAFETY: the buffer holds `len` units.
    let len = unsafe { GetModuleFileNameW(module, buffer.as_mut_ptr(), buffer.len() as u32) } as usize;
    (len > 0 && len < buffer.len()).then(|| String::from_utf16_lossy(&buffer[..len]))
}

/// Writes the entries under the scope's Software\Classes; the first
/// failing call's Win32 error.
fn register(scope: Scope) -> Result<(), u32> {
    let dll = dll_path().ok_or(ERROR_FILE_NOT_FOUND)?;
    for (key, name, data) in entries(&dll) {
        let key = wide(&format!(r"Software\Classes\{key}"));
        let mut handle: HKEY = std::ptr::null_mut();
        // SAFETY: NUL-terminated strings; `handle` is writable and closed below.
        let status = unsafe {
            RegCreateKeyExW(
                scope.root(),
                key.as_ptr(),
                0,
                std::ptr::null(),
                REG_OPTION_NON_VOLATILE,
                KEY_WRITE,
                std::ptr::null(),
                &mut handle,
                std::ptr::null_mut(),
            )
        };
        if status != 0 {
            return Err(status);
        }
        let (name, data) = (wide(name), wide(&data));
        // SAFETY: the data is `data.len() * 2` bytes of NUL-terminated UTF-16.
        let status =
            unsafe { RegSetValueExW(handle, name.as_ptr(), 0, REG_SZ, data.as_ptr().cast(), (data.len() * 2) as u32) };
        // SAFETY: opened above.
        unsafe { RegCloseKey(handle) };
        if status != 0 {
            return Err(status);
        }
    }
    Ok(())
}

/// Removes the keys from the scope (absent keys are fine).
fn unregister(scope: Scope) -> Result<(), u32> {
    for key in [format!(r"CLSID\{CLSID_TEXT}"), PROGID.into(), PROGID_VERSIONED.into()] {
        let key = wide(&format!(r"Software\Classes\{key}"));
        // SAFETY: a NUL-terminated string.
        let status = unsafe { RegDeleteTreeW(scope.root(), key.as_ptr()) };
        if status != 0 && status != ERROR_FILE_NOT_FOUND {
            return Err(status);
        }
    }
    Ok(())
}

fn answer(done: Result<(), u32>) -> HRESULT {
    if done.is_ok() {
        S_OK
    } else {
        SELFREG_E_CLASS
    }
}

/// Per machine; per user when the machine's keys are not writable (a
/// `regsvr32` run without elevation).
#[no_mangle]
pub extern "system" fn DllRegisterServer() -> HRESULT {
    boundary(|| {
        answer(match register(Scope::Machine) {
            Err(ERROR_ACCESS_DENIED) => register(Scope::User),
            other => other,
        })
    })
}

/// Removes the registration of the machine (where allowed) and the user.
#[no_mangle]
pub extern "system" fn DllUnregisterServer() -> HRESULT {
    boundary(|| {
        let machine = match unregister(Scope::Machine) {
            Err(ERROR_ACCESS_DENIED) => Ok(()),
            other => other,
        };
        answer(machine.and(unregister(Scope::User)))
    })
}

/// `regsvr32 /n /i:user` (per user) or `/i:machine`; with `/u`, removes
/// that scope's registration.
///
/// # Safety
/// `command_line` is NULL or a NUL-terminated UTF-16 string.
#[no_mangle]
pub unsafe extern "system" fn DllInstall(install: i32, command_line: PCWSTR) -> HRESULT {
    boundary(|| {
        let mut len = 0;
        if !command_line.is_null() {
            // SAFETY: NUL-terminated, as the caller promises.
            while unsafe { *command_line.add(len) } != 0 {
                len += 1;
            }
        }
        let text = if len == 0 {
            String::new()
        } else {
            // SAFETY: `len` units before the NUL are readable.
            String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(command_line, len) })
        };
        let scope = if text.trim().eq_ignore_ascii_case("user") { Scope::User } else { Scope::Machine };
        answer(if install != 0 { register(scope) } else { unregister(scope) })
    })
}
