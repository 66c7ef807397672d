//! Opening a file with the program Windows associates with its type.

use smtpbridge::{Error, Result};
use std::path::Path;
use windows_sys::Win32::UI::Shell::ShellExecuteW;
use windows_sys::Win32::UI::WindowsAndMessaging::SW_SHOWNORMAL;

/// Opens `path` ("open" verb). An error names the file and the shell's
/// answer (no program for `.eml`, say).
pub fn open(path: &Path) -> Result<()> {
    let file = crate::wide(&path.to_string_lossy());
    let verb = crate::wide("open");
    // SAFETY: both strings are NUL-terminated UTF-16 that outlive the call;
    // the other pointers may be NULL.
    let answer = unsafe {
        ShellExecuteW(
            std::ptr::null_mut(),
            verb.as_ptr(),
            file.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            SW_SHOWNORMAL,
        )
    };
    // Values above 32 are success (the documented HINSTANCE convention).
    let code = answer as isize;
    if code > 32 {
        Ok(())
    } else {
        Err(Error::new(
            smtpbridge::Code::Io,
            format!(
                "{} was written but could not be opened (ShellExecute error {code}: is a program set for .eml?)",
                path.display()
            ),
        ))
    }
}
