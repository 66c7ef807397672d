//! `mapi.h`'s Simple MAPI structures, codes and flags. The ANSI and the
//! wide (`…W`) structures differ only in their string pointers, so each
//! is one generic `#[repr(C)]` struct over the string type.

use std::ffi::c_void;

/// `ULONG` in `mapi.h`: 32 bits on both Windows architectures.
pub type Ulong = u32;

pub const SUCCESS_SUCCESS: Ulong = 0;
pub const MAPI_E_FAILURE: Ulong = 2;
pub const MAPI_E_LOGON_FAILURE: Ulong = 3;
pub const MAPI_E_ATTACHMENT_NOT_FOUND: Ulong = 11;
pub const MAPI_E_ATTACHMENT_OPEN_FAILURE: Ulong = 12;
pub const MAPI_E_UNKNOWN_RECIPIENT: Ulong = 14;
pub const MAPI_E_BAD_RECIPTYPE: Ulong = 15;
pub const MAPI_E_INVALID_SESSION: Ulong = 19;
pub const MAPI_E_INVALID_RECIPS: Ulong = 25;

pub const MAPI_TO: Ulong = 1;
pub const MAPI_CC: Ulong = 2;
pub const MAPI_BCC: Ulong = 3;
/// `MAPISendMail` flag: let the user look at the mail (here: the `.eml`).
pub const MAPI_DIALOG: Ulong = 0x8;

/// `MapiRecipDesc` / `MapiRecipDescW`.
#[repr(C)]
pub struct RecipDesc<S> {
    pub reserved: Ulong,
    pub recip_class: Ulong,
    pub name: S,
    pub address: S,
    pub eid_size: Ulong,
    pub entry_id: *mut c_void,
}

/// `MapiFileDesc` / `MapiFileDescW`.
#[repr(C)]
pub struct FileDesc<S> {
    pub reserved: Ulong,
    pub flags: Ulong,
    pub position: Ulong,
    pub path_name: S,
    pub file_name: S,
    pub file_type: *mut c_void,
}

/// `MapiMessage` / `MapiMessageW`.
#[repr(C)]
pub struct Message<S> {
    pub reserved: Ulong,
    pub subject: S,
    pub note_text: S,
    pub message_type: S,
    pub date_received: S,
    pub conversation_id: S,
    pub flags: Ulong,
    pub originator: *mut RecipDesc<S>,
    pub recip_count: Ulong,
    pub recips: *mut RecipDesc<S>,
    pub file_count: Ulong,
    pub files: *mut FileDesc<S>,
}

/// `LPSTR`: a NUL-terminated string in the system's ANSI code page.
pub type Ansi = *const u8;
/// `LPWSTR`: a NUL-terminated UTF-16 string.
pub type Wide = *const u16;

/// A string pointer of a MAPI structure.
pub trait MapiString: Copy {
    /// The text, or None for NULL.
    ///
    /// # Safety
    /// The pointer is NULL or points to a NUL-terminated string.
    unsafe fn to_text(self) -> Option<String>;
}

impl MapiString for Wide {
    unsafe fn to_text(self) -> Option<String> {
        if self.is_null() {
            return None;
        }
        let mut len = 0;
        // SAFETY: NUL-terminated, as the caller promises.
        while unsafe { *self.add(len) } != 0 {
            len += 1;
        }
        // SAFETY: `len` units before the NUL are readable.
        Some(String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(self, len) }))
    }
}

impl MapiString for Ansi {
    unsafe fn to_text(self) -> Option<String> {
        if self.is_null() {
            return None;
        }
        // SAFETY: NUL-terminated, as the caller promises.
        let bytes = unsafe { std::ffi::CStr::from_ptr(self.cast()) }.to_bytes();
        Some(crate::ansi::decode(bytes))
    }
}

/// The `count` items at `items` (none when NULL or 0).
///
/// # Safety
/// `items` is NULL or points to `count` initialised items that outlive `'a`.
pub unsafe fn slice<'a, T>(items: *const T, count: Ulong) -> &'a [T] {
    if items.is_null() || count == 0 {
        &[]
    } else {
        // SAFETY: as the caller promises.
        unsafe { std::slice::from_raw_parts(items, count as usize) }
    }
}
