//! The open sockets of a client, so that shutdown can end them.

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The open sockets of a client, so that shutdown can end sessions from
/// another thread: at once for those not in a transaction, after the grace
/// for the others.
#[derive(Default)]
pub struct Sockets {
    inner: Mutex<SocketsInner>,
}

#[derive(Default)]
struct SocketsInner {
    next: u64,
    open: HashMap<u64, (TcpStream, Arc<AtomicBool>)>,
    closed: bool,
}

/// A session's entry in [`Sockets`]; removed when the session ends.
pub(super) struct Registration {
    sockets: Arc<Sockets>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.sockets.inner.lock().unwrap_or_else(|e| e.into_inner()).open.remove(&self.id);
    }
}

impl Sockets {
    pub(super) fn register(
        self: &Arc<Self>,
        tcp: &TcpStream,
        in_transaction: &Arc<AtomicBool>,
    ) -> Option<Registration> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.closed {
            return None;
        }
        let clone = tcp.try_clone().ok()?;
        inner.next += 1;
        let id = inner.next;
        inner.open.insert(id, (clone, in_transaction.clone()));
        Some(Registration { sockets: self.clone(), id })
    }

    /// Refuses new sessions and ends the open ones: all of them, or
    /// (`in_transaction_too` false) those not inside a transaction.
    pub fn abort(&self, in_transaction_too: bool) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.closed = true;
        for (tcp, busy) in inner.open.values() {
            if in_transaction_too || !busy.load(Ordering::Acquire) {
                let _ = tcp.shutdown(Shutdown::Both);
            }
        }
    }
}
