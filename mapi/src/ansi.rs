//! ANSI strings (`LPSTR`) are in the system's code page (CP_ACP).

/// `bytes` in the ANSI code page, as text.
#[cfg(windows)]
pub fn decode(bytes: &[u8]) -> String {
    use windows_sys::Win32::Globalization::{MultiByteToWideChar, CP_ACP};
    if bytes.is_empty() {
        return String::new();
    }
    let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    // SAFETY: `bytes` holds `len` bytes; a NULL output asks for the size.
    let units = unsafe { MultiByteToWideChar(CP_ACP, 0, bytes.as_ptr(), len, std::ptr::null_mut(), 0) };
    let mut wide = vec![0u16; units.max(0) as usize];
    // SAFETY: `wide` holds `units` units.
    let written = unsafe { MultiByteToWideChar(CP_ACP, 0, bytes.as_ptr(), len, wide.as_mut_ptr(), units) };
    wide.truncate(written.max(0) as usize);
    String::from_utf16_lossy(&wide)
}

/// `text` in the ANSI code page, NUL-terminated (characters it lacks
/// become the code page's default character).
#[cfg(windows)]
pub fn encode(text: &str) -> Vec<u8> {
    use windows_sys::Win32::Globalization::{WideCharToMultiByte, CP_ACP};
    let wide: Vec<u16> = text.encode_utf16().collect();
    let mut out = Vec::new();
    if !wide.is_empty() {
        let len = i32::try_from(wide.len()).unwrap_or(i32::MAX);
        let null = std::ptr::null();
        // SAFETY: `wide` holds `len` units; a NULL output asks for the size.
        let size = unsafe {
            WideCharToMultiByte(CP_ACP, 0, wide.as_ptr(), len, std::ptr::null_mut(), 0, null, std::ptr::null_mut())
        };
        out = vec![0u8; size.max(0) as usize];
        // SAFETY: `out` holds `size` bytes.
        let written = unsafe {
            WideCharToMultiByte(CP_ACP, 0, wide.as_ptr(), len, out.as_mut_ptr(), size, null, std::ptr::null_mut())
        };
        out.truncate(written.max(0) as usize);
    }
    out.push(0);
    out
}

/// Elsewhere (the unit tests): UTF-8.
#[cfg(not(windows))]
pub fn decode(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Elsewhere (the unit tests): UTF-8, NUL-terminated.
#[cfg(not(windows))]
pub fn encode(text: &str) -> Vec<u8> {
    text.bytes().chain(std::iter::once(0)).collect()
}
