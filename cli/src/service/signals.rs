//! The Unix stop: SIGTERM (systemd's stop, `kill`) and SIGINT (Ctrl+C).
//! Both are blocked in the main thread before any other thread exists, so
//! every thread inherits the mask and none is interrupted; one thread then
//! sleeps in `sigwait` until one arrives and sends its name on a channel.
//! No handler, no polling.
#![allow(unsafe_code)]

use smtpbridge::Code;
use std::sync::mpsc::{channel, Receiver};

use crate::outcome::{Failure, Outcome};

/// The stop signals, blocked for the process from [`StopSignals::block`] on.
pub struct StopSignals {
    set: libc::sigset_t,
}

impl StopSignals {
    /// Blocks SIGTERM and SIGINT in the calling thread (and so in every
    /// thread it starts afterwards).
    pub fn block() -> Outcome<StopSignals> {
        // SAFETY: sigemptyset/sigaddset initialise the set we own;
        // pthread_sigmask reads it and changes only this thread's mask.
        let set = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(Failure::new(
                    Code::Internal,
                    format!("cannot block SIGTERM and SIGINT: {}", std::io::Error::from_raw_os_error(rc)),
                ));
            }
            set
        };
        Ok(StopSignals { set })
    }

    /// A thread that waits for the signals; the channel gets the first.
    pub fn watch(self) -> Receiver<Outcome<String>> {
        let (stop, stops) = channel();
        std::thread::Builder::new()
            .name("stop signals".into())
            .spawn(move || {
                let _ = stop.send(self.wait());
            })
            .expect("a thread for the stop signals");
        stops
    }

    /// Sleeps until SIGTERM or SIGINT arrives; returns its name.
    fn wait(&self) -> Outcome<String> {
        let mut signal: libc::c_int = 0;
        // SAFETY: the set was initialised in `block`; sigwait writes the
        // signal number into a local.
        let rc = unsafe { libc::sigwait(&self.set, &mut signal) };
        if rc != 0 {
            return Err(Failure::new(
                Code::Internal,
                format!("waiting for SIGTERM failed: {}", std::io::Error::from_raw_os_error(rc)),
            ));
        }
        Ok(if signal == libc::SIGINT { "SIGINT" } else { "SIGTERM" }.to_string())
    }
}
