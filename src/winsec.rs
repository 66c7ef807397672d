//! Windows security calls (Windows only): DPAPI for the master key file,
//! the process's account, and owner-only ACLs for a data_dir that is
//! private to the user. The only `unsafe` outside `ffi`: each function is
//! one Windows call sequence with its buffers freed on every path.
//!
//! The policy (which scope, which folder is private, the key file's
//! format) lives in [`crate::credentials::key_file`] and
//! [`make_private_if_in_profile`]'s doc; this module only talks to Windows.

use std::ffi::c_void;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use std::ptr::{null, null_mut};

use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, ERROR_SUCCESS, HANDLE};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, GetNamedSecurityInfoW,
    SetNamedSecurityInfoW, SDDL_REVISION_1, SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::Cryptography::{
    CryptProtectData, CryptUnprotectData, CRYPTPROTECT_LOCAL_MACHINE, CRYPTPROTECT_UI_FORBIDDEN, CRYPT_INTEGER_BLOB,
};
use windows_sys::Win32::Security::{
    GetSecurityDescriptorControl, GetSecurityDescriptorDacl, GetTokenInformation, TokenUser, ACL,
    DACL_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, SE_DACL_PROTECTED,
    TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};
use zeroize::Zeroizing;

/// Mixed into every blob, so that a program of the same account that
/// unprotects blobs without it cannot read the key by accident.
pub const ENTROPY: &[u8] = b"smtpbridge master.key";

/// Memory Windows allocated with LocalAlloc, freed when dropped.
struct Local(*mut c_void);

impl Drop for Local {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from a Windows call that documents
            // LocalFree as its release, and is freed once.
            unsafe { LocalFree(self.0) };
        }
    }
}

fn wide(path: &Path) -> Vec<u16> {
    path.as_os_str().encode_wide().chain(Some(0)).collect()
}

fn blob(bytes: &[u8]) -> CRYPT_INTEGER_BLOB {
    CRYPT_INTEGER_BLOB { cbData: bytes.len() as u32, pbData: bytes.as_ptr().cast_mut() }
}

/// `CryptProtectData` of `plain` for the current user, or for any account
/// of this machine (`machine`), never showing a prompt.
pub fn protect(plain: &[u8], machine: bool) -> io::Result<Vec<u8>> {
    let flags = CRYPTPROTECT_UI_FORBIDDEN | if machine { CRYPTPROTECT_LOCAL_MACHINE } else { 0 };
    let description: Vec<u16> = "smtpbridge master key".encode_utf16().chain(Some(0)).collect();
    let mut out = CRYPT_INTEGER_BLOB { cbData: 0, pbData: null_mut() };
    // SAFETY: the input blobs borrow live slices for the call; `out` is
    // written by Windows and freed by `Local`.
    let ok = unsafe {
        CryptProtectData(&blob(plain), description.as_ptr(), &blob(ENTROPY), null(), null(), flags, &mut out)
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    let owned = Local(out.pbData.cast());
    // SAFETY: Windows wrote cbData bytes at pbData.
    let bytes = unsafe { std::slice::from_raw_parts(out.pbData, out.cbData as usize) }.to_vec();
    drop(owned);
    Ok(bytes)
}

/// `CryptUnprotectData` of a blob made by [`protect`]; fails for a blob
/// of another account or machine, and for a changed one.
pub fn unprotect(protected: &[u8]) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut out = CRYPT_INTEGER_BLOB { cbData: 0, pbData: null_mut() };
    // SAFETY: as in `protect`.
    let ok = unsafe {
        CryptUnprotectData(
            &blob(protected),
            null_mut(),
            &blob(ENTROPY),
            null(),
            null(),
            CRYPTPROTECT_UI_FORBIDDEN,
            &mut out,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    let owned = Local(out.pbData.cast());
    // SAFETY: Windows wrote cbData bytes at pbData; they are wiped before
    // being freed, as the plaintext key must not linger on the heap.
    let plain = unsafe {
        let slice = std::slice::from_raw_parts_mut(out.pbData, out.cbData as usize);
        let copy = Zeroizing::new(slice.to_vec());
        zeroize::Zeroize::zeroize(slice);
        copy
    };
    drop(owned);
    Ok(plain)
}

/// The SID of the account this process runs as, e.g. `S-1-5-21-…-1001`
/// or `S-1-5-18` (LocalSystem).
pub fn process_user_sid() -> io::Result<String> {
    let mut token: HANDLE = null_mut();
    // SAFETY: GetCurrentProcess is a pseudo handle; `token` is closed below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let result = token_user_sid(token);
    // SAFETY: opened above, closed once.
    unsafe { CloseHandle(token) };
    result
}

fn token_user_sid(token: HANDLE) -> io::Result<String> {
    let mut size = 0u32;
    // SAFETY: a size query with no buffer.
    unsafe { GetTokenInformation(token, TokenUser, null_mut(), 0, &mut size) };
    // u64s keep TOKEN_USER's pointer aligned.
    let mut buffer = vec![0u64; (size as usize).div_ceil(8).max(1)];
    // SAFETY: the buffer holds `size` bytes.
    if unsafe { GetTokenInformation(token, TokenUser, buffer.as_mut_ptr().cast(), size, &mut size) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: GetTokenInformation(TokenUser) filled a TOKEN_USER whose SID
    // points into the same buffer, alive for this block.
    unsafe {
        let user = &*(buffer.as_ptr() as *const TOKEN_USER);
        let mut text = null_mut();
        if ConvertSidToStringSidW(user.User.Sid, &mut text) == 0 {
            return Err(io::Error::last_os_error());
        }
        let owned = Local(text.cast());
        let len = (0..).take_while(|&i| *text.add(i) != 0).count();
        let sid = String::from_utf16_lossy(std::slice::from_raw_parts(text, len));
        drop(owned);
        Ok(sid)
    }
}

/// Whether `dir`'s DACL is protected (set explicitly, not inherited).
fn dacl_is_protected(dir: &Path) -> io::Result<bool> {
    let name = wide(dir);
    let mut dacl: *mut ACL = null_mut();
    let mut descriptor: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: `name` is NUL-terminated; the descriptor is freed by `Local`.
    let error = unsafe {
        GetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            null_mut(),
            null_mut(),
            &mut dacl,
            null_mut(),
            &mut descriptor,
        )
    };
    if error != ERROR_SUCCESS {
        return Err(io::Error::from_raw_os_error(error as i32));
    }
    let owned = Local(descriptor);
    let (mut control, mut revision) = (0u16, 0u32);
    // SAFETY: a valid descriptor from GetNamedSecurityInfoW.
    let ok = unsafe { GetSecurityDescriptorControl(descriptor, &mut control, &mut revision) };
    drop(owned);
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(control & SE_DACL_PROTECTED != 0)
}

/// Replaces `dir`'s DACL with a protected one (no inherited entries)
/// granting full control to the account `sid` and to SYSTEM only,
/// inherited by every file and folder in it.
fn set_owner_only(dir: &Path, sid: &str) -> io::Result<()> {
    let sddl: Vec<u16> = format!("D:P(A;OICI;FA;;;{sid})(A;OICI;FA;;;SY)").encode_utf16().chain(Some(0)).collect();
    let mut descriptor: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: `sddl` is NUL-terminated; the descriptor is freed by `Local`.
    if unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            null_mut(),
        )
    } == 0
    {
        return Err(io::Error::last_os_error());
    }
    let owned = Local(descriptor);
    let (mut present, mut defaulted) = (0, 0);
    let mut dacl: *mut ACL = null_mut();
    // SAFETY: a valid descriptor; the DACL points into it, alive until `owned` drops.
    let error = unsafe {
        if GetSecurityDescriptorDacl(descriptor, &mut present, &mut dacl, &mut defaulted) == 0 {
            return Err(io::Error::last_os_error());
        }
        let name = wide(dir);
        SetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            null_mut(),
            null_mut(),
            dacl,
            null(),
        )
    };
    drop(owned);
    if error != ERROR_SUCCESS {
        return Err(io::Error::from_raw_os_error(error as i32));
    }
    Ok(())
}

/// Gives `dir` an owner-only ACL when it is private to the user: inside
/// the user's profile folder (`%USERPROFILE%`, which holds `%APPDATA%` and
/// `%LOCALAPPDATA%`) and still with the permissions it inherited. A
/// folder elsewhere (`C:\ProgramData\…`, a shared or network folder) may
/// be shared by several accounts (a service and its users) and is left
/// as it is, as is one whose DACL someone set explicitly. Done at open,
/// before the library creates its files, so they inherit it; Windows also
/// applies it to the files already there.
pub fn make_private_if_in_profile(dir: &Path) -> io::Result<()> {
    let Some(profile) = std::env::home_dir() else { return Ok(()) };
    let folded = |p: &Path| -> io::Result<std::path::PathBuf> {
        Ok(std::path::PathBuf::from(std::fs::canonicalize(p)?.to_string_lossy().to_lowercase()))
    };
    let inside = match (folded(dir), folded(&profile)) {
        (Ok(dir), Ok(profile)) => dir.starts_with(&profile) && dir != profile,
        _ => false,
    };
    if !inside || dacl_is_protected(dir)? {
        return Ok(());
    }
    set_owner_only(dir, &process_user_sid()?)
}
