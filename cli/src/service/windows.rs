//! The Windows service: `run` under the service control manager
//! (`StartServiceCtrlDispatcherW`; stopped by SERVICE_CONTROL_STOP or
//! SHUTDOWN) or, started from a console, until Ctrl+C; `install` and
//! `uninstall` through the SCM (`CreateServiceW`, `DeleteService`); the
//! service's state for `status`.
#![allow(unsafe_code)]

use smtpbridge::Code;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{
    GetLastError, ERROR_ACCESS_DENIED, ERROR_CALL_NOT_IMPLEMENTED, ERROR_FAILED_SERVICE_CONTROLLER_CONNECT,
    ERROR_SERVICE_DOES_NOT_EXIST, ERROR_SERVICE_EXISTS, ERROR_SERVICE_NOT_ACTIVE, ERROR_SERVICE_SPECIFIC_ERROR,
    NO_ERROR,
};
use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;
use windows_sys::Win32::System::Services::{
    ChangeServiceConfig2W, CloseServiceHandle, ControlService, CreateServiceW, DeleteService, OpenSCManagerW,
    OpenServiceW, QueryServiceStatus, RegisterServiceCtrlHandlerExW, SetServiceStatus, StartServiceCtrlDispatcherW,
    SC_HANDLE, SC_MANAGER_CONNECT, SC_MANAGER_CREATE_SERVICE, SERVICE_ACCEPT_SHUTDOWN, SERVICE_ACCEPT_STOP,
    SERVICE_ALL_ACCESS, SERVICE_AUTO_START, SERVICE_CONFIG_DESCRIPTION, SERVICE_CONTINUE_PENDING,
    SERVICE_CONTROL_INTERROGATE, SERVICE_CONTROL_SHUTDOWN, SERVICE_CONTROL_STOP, SERVICE_DESCRIPTIONW,
    SERVICE_ERROR_NORMAL, SERVICE_PAUSED, SERVICE_PAUSE_PENDING, SERVICE_QUERY_STATUS, SERVICE_RUNNING,
    SERVICE_START_PENDING, SERVICE_STATUS, SERVICE_STATUS_CURRENT_STATE, SERVICE_STATUS_HANDLE, SERVICE_STOP,
    SERVICE_STOPPED, SERVICE_STOP_PENDING, SERVICE_TABLE_ENTRYW, SERVICE_WIN32_OWN_PROCESS,
};

use super::{this_program, utf8, NAME};
use crate::outcome::{Failure, Outcome};

const DISPLAY_NAME: &str = "smtpbridge mail delivery";
const DESCRIPTION: &str = "Delivers the mail that programs queue in the smtpbridge outbox of one data directory.";
/// The longest `uninstall` waits for a running service to stop.
const STOP_WAIT: Duration = Duration::from_secs(90);
/// The standard access right to delete an object (winnt.h DELETE).
const DELETE: u32 = 0x0001_0000;
/// The service's `wait hint` while it starts or stops.
const WAIT_HINT_MS: u32 = 30_000;

fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(std::iter::once(0)).collect()
}

fn last_error(what: &str) -> Failure {
    // SAFETY: reads the thread's last-error value.
    let code = unsafe { GetLastError() };
    let hint = match code {
        ERROR_ACCESS_DENIED => " (run as administrator)",
        _ => "",
    };
    Failure::new(Code::Io, format!("{what}: {}{hint}", std::io::Error::from_raw_os_error(code as i32)))
}

/// A handle of the service control manager, closed when dropped.
struct Handle(SC_HANDLE);

impl Handle {
    fn manager(access: u32) -> Outcome<Handle> {
        // SAFETY: NULL machine and database name: the local active database.
        let handle = unsafe { OpenSCManagerW(std::ptr::null(), std::ptr::null(), access) };
        if handle.is_null() {
            return Err(last_error("cannot open the service control manager"));
        }
        Ok(Handle(handle))
    }

    /// The smtpbridge service; `None` when it is not installed.
    fn service(&self, access: u32) -> Outcome<Option<Handle>> {
        let name = wide(NAME);
        // SAFETY: a live manager handle and a NUL-terminated name.
        let handle = unsafe { OpenServiceW(self.0, name.as_ptr(), access) };
        if handle.is_null() {
            // SAFETY: reads the thread's last-error value.
            if unsafe { GetLastError() } == ERROR_SERVICE_DOES_NOT_EXIST {
                return Ok(None);
            }
            return Err(last_error(&format!("cannot open the service {NAME}")));
        }
        Ok(Some(Handle(handle)))
    }

    fn current_state(&self) -> Outcome<SERVICE_STATUS_CURRENT_STATE> {
        // SAFETY: SERVICE_STATUS is plain data; the handle is live.
        let mut status: SERVICE_STATUS = unsafe { std::mem::zeroed() };
        if unsafe { QueryServiceStatus(self.0, &mut status) } == 0 {
            return Err(last_error(&format!("cannot query the service {NAME}")));
        }
        Ok(status.dwCurrentState)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from OpenSCManagerW/OpenServiceW/CreateServiceW.
        unsafe { CloseServiceHandle(self.0) };
    }
}

pub fn refuse_unit_options(user: bool, unit_dir: Option<&Path>) -> Outcome {
    if user || unit_dir.is_some() {
        return Err(Failure::new(
            Code::InvalidArgument,
            "--user and --unit-dir are for systemd units (Linux); a Windows service is installed for the machine",
        ));
    }
    Ok(())
}

/// One argument of the service's command line, quoted as
/// `CommandLineToArgvW` reads it back.
fn quoted(text: &str) -> String {
    // Backslashes before the closing quote are doubled so they stay backslashes.
    let trailing = text.len() - text.trim_end_matches('\\').len();
    format!("\"{text}{}\"", "\\".repeat(trailing))
}

pub fn install(dir: &Path, json: bool) -> Outcome {
    let command_line = format!("{} service run --data-dir {}", quoted(utf8(&this_program()?)?), quoted(utf8(dir)?));
    std::fs::create_dir_all(dir).map_err(|e| crate::outcome::io_failure("cannot create", dir, &e))?;
    let manager = Handle::manager(SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE)?;
    let (name, display, binary) = (wide(NAME), wide(DISPLAY_NAME), wide(&command_line));
    // SAFETY: NUL-terminated strings that outlive the call; NULL group,
    // tag, dependencies, account (LocalSystem) and password.
    let service = unsafe {
        CreateServiceW(
            manager.0,
            name.as_ptr(),
            display.as_ptr(),
            SERVICE_ALL_ACCESS,
            SERVICE_WIN32_OWN_PROCESS,
            SERVICE_AUTO_START,
            SERVICE_ERROR_NORMAL,
            binary.as_ptr(),
            std::ptr::null(),
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if service.is_null() {
        // SAFETY: reads the thread's last-error value.
        if unsafe { GetLastError() } == ERROR_SERVICE_EXISTS {
            return Err(Failure::new(
                Code::State,
                format!("the service {NAME} is installed already: `smtpbridge service uninstall` first"),
            ));
        }
        return Err(last_error(&format!("cannot create the service {NAME}")));
    }
    let service = Handle(service);
    let mut description = wide(DESCRIPTION);
    let info = SERVICE_DESCRIPTIONW { lpDescription: description.as_mut_ptr() };
    // SAFETY: the struct and its string live through the call. A missing
    // description is cosmetic: the service is installed all the same.
    unsafe {
        ChangeServiceConfig2W(service.0, SERVICE_CONFIG_DESCRIPTION, (&info as *const SERVICE_DESCRIPTIONW).cast())
    };
    if json {
        crate::output::json_value(&serde_json::json!({"service": NAME, "command_line": command_line}));
    } else {
        println!(
            "installed the service {NAME} ({command_line}), started with Windows; start it now with: sc start {NAME}"
        );
    }
    Ok(())
}

pub fn uninstall(json: bool) -> Outcome {
    let manager = Handle::manager(SC_MANAGER_CONNECT)?;
    let service = manager
        .service(SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE)?
        .ok_or_else(|| Failure::new(Code::NotFound, format!("the service {NAME} is not installed")))?;
    // SAFETY: SERVICE_STATUS is plain data; the handle is live.
    let mut status: SERVICE_STATUS = unsafe { std::mem::zeroed() };
    if unsafe { ControlService(service.0, SERVICE_CONTROL_STOP, &mut status) } == 0
        && unsafe { GetLastError() } != ERROR_SERVICE_NOT_ACTIVE
    {
        return Err(last_error(&format!("cannot stop the service {NAME}")));
    }
    let deadline = Instant::now() + STOP_WAIT;
    while service.current_state()? != SERVICE_STOPPED {
        if Instant::now() > deadline {
            return Err(Failure::new(
                Code::Timeout,
                format!("the service {NAME} did not stop within {} s; it stays installed", STOP_WAIT.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: a live service handle opened with DELETE access.
    if unsafe { DeleteService(service.0) } == 0 {
        return Err(last_error(&format!("cannot delete the service {NAME}")));
    }
    crate::output::done(&format!("stopped and removed the service {NAME}"), json);
    Ok(())
}

/// The service's state, for `status`.
pub fn state() -> String {
    let state = Handle::manager(SC_MANAGER_CONNECT)
        .and_then(|m| m.service(SERVICE_QUERY_STATUS))
        .and_then(|s| s.map(|s| s.current_state()).transpose());
    match state {
        Ok(None) => "not installed".into(),
        Ok(Some(state)) => match state {
            SERVICE_RUNNING => "running",
            SERVICE_STOPPED => "stopped",
            SERVICE_START_PENDING => "starting",
            SERVICE_STOP_PENDING => "stopping",
            SERVICE_PAUSED => "paused",
            SERVICE_PAUSE_PENDING => "pausing",
            SERVICE_CONTINUE_PENDING => "continuing",
            _ => "unknown",
        }
        .into(),
        Err(failure) => format!("unknown ({})", failure.message),
    }
}

// --- run ---------------------------------------------------------------------

/// What the service main needs of the command line, and what it comes to.
struct Launch {
    dir: PathBuf,
    log: Option<PathBuf>,
}
static LAUNCH: Mutex<Option<Launch>> = Mutex::new(None);
static OUTCOME: Mutex<Option<Outcome>> = Mutex::new(None);
/// Where a stop (from the SCM or Ctrl+C) is sent.
static STOP: Mutex<Option<Sender<Outcome<String>>>> = Mutex::new(None);
/// The status handle of the running service (a pointer kept as an integer).
static STATUS: Mutex<usize> = Mutex::new(0);

fn request_stop(reason: &str) {
    if let Some(stop) = STOP.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        let _ = stop.send(Ok(reason.to_string()));
    }
}

/// Delivers until a stop arrives on the channel that [`request_stop`] feeds.
fn deliver_until_stopped(dir: &Path, log: Option<PathBuf>) -> Outcome {
    let (stop, stopped) = channel();
    *STOP.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop);
    super::deliver(dir, log, &stopped)
}

pub fn run(dir: &Path, log: Option<PathBuf>) -> Outcome {
    *LAUNCH.lock().unwrap_or_else(|e| e.into_inner()) = Some(Launch { dir: dir.to_path_buf(), log: log.clone() });
    let mut name = wide(NAME);
    let table = [
        SERVICE_TABLE_ENTRYW { lpServiceName: name.as_mut_ptr(), lpServiceProc: Some(service_main) },
        SERVICE_TABLE_ENTRYW { lpServiceName: std::ptr::null_mut(), lpServiceProc: None },
    ];
    // SAFETY: a NULL-terminated table whose strings outlive the call, which
    // returns when the service has stopped.
    if unsafe { StartServiceCtrlDispatcherW(table.as_ptr()) } != 0 {
        return OUTCOME.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or(Ok(()));
    }
    // SAFETY: reads the thread's last-error value.
    if unsafe { GetLastError() } != ERROR_FAILED_SERVICE_CONTROLLER_CONNECT {
        return Err(last_error("cannot connect to the service control manager"));
    }
    // Started from a console, not by the SCM: run until Ctrl+C.
    // SAFETY: registers a handler that only sends on a channel.
    if unsafe { SetConsoleCtrlHandler(Some(console_stop), 1) } == 0 {
        return Err(last_error("cannot watch for Ctrl+C"));
    }
    deliver_until_stopped(dir, log)
}

unsafe extern "system" fn console_stop(_event: u32) -> windows_sys::core::BOOL {
    request_stop("Ctrl+C");
    1
}

fn set_status(state: SERVICE_STATUS_CURRENT_STATE, exit: Option<&Failure>) {
    let handle = *STATUS.lock().unwrap_or_else(|e| e.into_inner()) as SERVICE_STATUS_HANDLE;
    if handle.is_null() {
        return;
    }
    let accepts = if state == SERVICE_RUNNING { SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN } else { 0 };
    let pending = state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING;
    let status = SERVICE_STATUS {
        dwServiceType: SERVICE_WIN32_OWN_PROCESS,
        dwCurrentState: state,
        dwControlsAccepted: accepts,
        dwWin32ExitCode: if exit.is_some() { ERROR_SERVICE_SPECIFIC_ERROR } else { NO_ERROR },
        dwServiceSpecificExitCode: exit.map(|f| u32::from(f.exit_code())).unwrap_or(0),
        dwCheckPoint: 0,
        dwWaitHint: if pending { WAIT_HINT_MS } else { 0 },
    };
    // SAFETY: the handle came from RegisterServiceCtrlHandlerExW; the status is read during the call.
    unsafe { SetServiceStatus(handle, &status) };
}

unsafe extern "system" fn control_handler(
    control: u32,
    _event_type: u32,
    _event_data: *mut core::ffi::c_void,
    _context: *mut core::ffi::c_void,
) -> u32 {
    match control {
        SERVICE_CONTROL_STOP | SERVICE_CONTROL_SHUTDOWN => {
            set_status(SERVICE_STOP_PENDING, None);
            request_stop(if control == SERVICE_CONTROL_STOP { "service stop" } else { "system shutdown" });
            NO_ERROR
        }
        SERVICE_CONTROL_INTERROGATE => NO_ERROR,
        _ => ERROR_CALL_NOT_IMPLEMENTED,
    }
}

unsafe extern "system" fn service_main(_argc: u32, _argv: *mut windows_sys::core::PWSTR) {
    let name = wide(NAME);
    // SAFETY: a NUL-terminated name; the handler is a plain function.
    let handle = unsafe { RegisterServiceCtrlHandlerExW(name.as_ptr(), Some(control_handler), std::ptr::null()) };
    if handle.is_null() {
        *OUTCOME.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Err(last_error("cannot register the service handler")));
        return;
    }
    *STATUS.lock().unwrap_or_else(|e| e.into_inner()) = handle as usize;
    set_status(SERVICE_START_PENDING, None);
    let launch = LAUNCH.lock().unwrap_or_else(|e| e.into_inner()).take();
    let outcome = match launch {
        Some(Launch { dir, log }) => {
            set_status(SERVICE_RUNNING, None);
            deliver_until_stopped(&dir, log)
        }
        None => Err(Failure::new(Code::Internal, "the service started without its command line")),
    };
    set_status(SERVICE_STOPPED, outcome.as_ref().err());
    *OUTCOME.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
}
