//! The exports, with `mapi.h`'s calling convention (stdcall on x86; the
//! build undecorates their names). No unwind leaves an export: a panic is
//! `MAPI_E_FAILURE`. What went wrong is written with OutputDebugString
//! (DebugView shows it), since Simple MAPI has no error text.

use smtpbridge::Error;
use smtpbridge_dropin::{describe, Session};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use windows_sys::Win32::System::Diagnostics::Debug::OutputDebugStringW;

use crate::convert::{self, check_code, open_code, queue_code};
use crate::types::*;

/// Sessions of `MAPILogon`, by handle; each holds the process's client.
static SESSIONS: Mutex<Vec<(usize, Arc<Session>)>> = Mutex::new(Vec::new());
static NEXT_SESSION: AtomicUsize = AtomicUsize::new(1);

/// What `MAPIResolveName` handed out, until `MAPIFreeBuffer`.
static RESOLVED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn boundary(call: impl FnOnce() -> Ulong) -> Ulong {
    catch_unwind(AssertUnwindSafe(call))
        .unwrap_or_else(|_| report(MAPI_E_FAILURE, "internal error (a panic was caught)"))
}

fn report(code: Ulong, text: &str) -> Ulong {
    let line = smtpbridge_dropin::wide(&format!("smtpbridge_mapi: MAPI code {code}: {text}\n"));
    // SAFETY: a NUL-terminated UTF-16 string that outlives the call.
    unsafe { OutputDebugStringW(line.as_ptr()) };
    code
}

fn report_error(code: Ulong, error: &Error) -> Ulong {
    report(code, &describe(error))
}

/// Runs `work` with the session `handle` (0: a session for this call alone).
fn with_session(handle: usize, work: impl FnOnce(&Session) -> Ulong) -> Ulong {
    if handle == 0 {
        return match Session::open() {
            Ok(session) => work(&session),
            Err(e) => report_error(open_code(&e), &e),
        };
    }
    let session =
        SESSIONS.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|(h, _)| *h == handle).map(|(_, s)| s.clone());
    match session {
        Some(session) => work(&session),
        None => report(MAPI_E_INVALID_SESSION, &format!("no session {handle:#x}")),
    }
}

/// `MAPISendMail` and `MAPISendMailW`: with MAPI_DIALOG the mail is written
/// as an `.eml` and opened; else it is queued (and waited for; see
/// `smtpbridge_dropin::session`).
fn send_mail<S: MapiString>(session: usize, message: *const Message<S>, flags: Ulong) -> Ulong {
    // SAFETY: the host passes NULL or a valid MapiMessage for the call.
    let Some(message) = (unsafe { message.as_ref() }) else {
        return report(MAPI_E_FAILURE, "lpMessage is NULL");
    };
    // SAFETY: as above, for everything the message points to.
    let mail = match unsafe { convert::to_mail(message) } {
        Ok(mail) => mail,
        Err(refused) => return report(refused.code, &refused.why),
    };
    if let Err(e) = mail.check() {
        return report_error(check_code(&e), &e);
    }
    with_session(session, |session| {
        let done = if flags & MAPI_DIALOG != 0 {
            session.display(&mail).map(|_| ()).map_err(|e| (MAPI_E_FAILURE, e))
        } else {
            session.queue(&mail).map(|_| ()).map_err(|e| (queue_code(&e), e))
        };
        match done {
            Ok(()) => SUCCESS_SUCCESS,
            Err((code, e)) => report_error(code, &e),
        }
    })
}

#[no_mangle]
pub extern "system" fn MAPISendMail(
    session: usize,
    _ui_param: usize,
    message: *const Message<Ansi>,
    flags: Ulong,
    _reserved: Ulong,
) -> Ulong {
    boundary(|| send_mail(session, message, flags))
}

#[no_mangle]
pub extern "system" fn MAPISendMailW(
    session: usize,
    _ui_param: usize,
    message: *const Message<Wide>,
    flags: Ulong,
    _reserved: Ulong,
) -> Ulong {
    boundary(|| send_mail(session, message, flags))
}

/// Opens a session: the process's client stays open until `MAPILogoff`.
/// The profile name and password are not used (the data_dir's settings
/// and credentials are).
#[no_mangle]
pub extern "system" fn MAPILogon(
    _ui_param: usize,
    _profile: Ansi,
    _password: Ansi,
    _flags: Ulong,
    _reserved: Ulong,
    session: *mut usize,
) -> Ulong {
    boundary(|| {
        if session.is_null() {
            return report(MAPI_E_FAILURE, "lplhSession is NULL");
        }
        match Session::open() {
            Ok(opened) => {
                let handle = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
                SESSIONS.lock().unwrap_or_else(|e| e.into_inner()).push((handle, Arc::new(opened)));
                // SAFETY: checked non-NULL; the host passes a writable LHANDLE.
                unsafe { *session = handle };
                SUCCESS_SUCCESS
            }
            Err(e) => report_error(open_code(&e), &e),
        }
    })
}

#[no_mangle]
pub extern "system" fn MAPILogoff(session: usize, _ui_param: usize, _flags: Ulong, _reserved: Ulong) -> Ulong {
    boundary(|| {
        let removed = {
            let mut sessions = SESSIONS.lock().unwrap_or_else(|e| e.into_inner());
            sessions.iter().position(|(h, _)| *h == session).map(|i| sessions.remove(i))
        };
        // Dropped outside the lock: the last session closes the client.
        match removed {
            Some(_) => SUCCESS_SUCCESS,
            None => report(MAPI_E_INVALID_SESSION, &format!("no session {session:#x}")),
        }
    })
}

/// A resolved recipient and the strings it points to, freed together.
#[repr(C)]
struct Resolved {
    desc: RecipDesc<Ansi>,
    name: Vec<u8>,
    address: Vec<u8>,
}

/// Reads `name` as an address (`a@x`, `Name <a@x>`); anything else is
/// MAPI_E_UNKNOWN_RECIPIENT (there is no address book). The recipient,
/// class MAPI_TO with an `SMTP:` address, is freed with `MAPIFreeBuffer`.
#[no_mangle]
pub extern "system" fn MAPIResolveName(
    _session: usize,
    _ui_param: usize,
    name: Ansi,
    _flags: Ulong,
    _reserved: Ulong,
    recip: *mut *mut RecipDesc<Ansi>,
) -> Ulong {
    boundary(|| {
        if recip.is_null() {
            return report(MAPI_E_FAILURE, "lppRecip is NULL");
        }
        // SAFETY: the host passes NULL or a NUL-terminated string.
        let Some(text) = (unsafe { name.to_text() }) else {
            return report(MAPI_E_UNKNOWN_RECIPIENT, "lpszName is NULL");
        };
        let spec = smtpbridge::address::parse_entry(&text);
        if let Err(e) = smtpbridge::address::parse_address(&spec.email) {
            return report_error(MAPI_E_UNKNOWN_RECIPIENT, &e);
        }
        let display = spec.name.unwrap_or_else(|| spec.email.clone());
        let mut resolved = Box::new(Resolved {
            desc: RecipDesc {
                reserved: 0,
                recip_class: MAPI_TO,
                name: std::ptr::null(),
                address: std::ptr::null(),
                eid_size: 0,
                entry_id: std::ptr::null_mut(),
            },
            name: crate::ansi::encode(&display),
            address: crate::ansi::encode(&format!("SMTP:{}", spec.email)),
        });
        resolved.desc.name = resolved.name.as_ptr();
        resolved.desc.address = resolved.address.as_ptr();
        let pointer = Box::into_raw(resolved);
        RESOLVED.lock().unwrap_or_else(|e| e.into_inner()).push(pointer as usize);
        // SAFETY: checked non-NULL. `desc` is Resolved's first field.
        unsafe { *recip = pointer.cast() };
        SUCCESS_SUCCESS
    })
}

/// Frees what `MAPIResolveName` returned; NULL is fine; anything else is
/// MAPI_E_FAILURE and left alone.
#[no_mangle]
pub extern "system" fn MAPIFreeBuffer(buffer: *mut c_void) -> Ulong {
    boundary(|| {
        if buffer.is_null() {
            return SUCCESS_SUCCESS;
        }
        let known = {
            let mut resolved = RESOLVED.lock().unwrap_or_else(|e| e.into_inner());
            resolved.iter().position(|p| *p == buffer as usize).map(|i| resolved.swap_remove(i))
        };
        match known {
            // SAFETY: made by Box::into_raw in MAPIResolveName, freed once.
            Some(_) => drop(unsafe { Box::from_raw(buffer.cast::<Resolved>()) }),
            None => return report(MAPI_E_FAILURE, &format!("MAPIFreeBuffer: {buffer:p} was not allocated here")),
        }
        SUCCESS_SUCCESS
    })
}
