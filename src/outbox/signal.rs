//! A condition variable that wakes only when someone waits.
//!
//! The standard library's `Condvar::notify_all` makes a system call
//! whether or not a thread waits; `smtpb_send` tells the waiters of the
//! outbox once per message, and nearly always nobody waits. [`Signal`]
//! counts its waiters and notifies only when there are some.
//!
//! No wake-up is lost: a waiter counts itself while it holds the mutex,
//! before `wait` releases it, and a notifier changes the guarded state
//! under the same mutex before it reads the count. Either the change comes
//! first (the waiter sees it and does not wait) or the waiter has counted
//! itself by the time the notifier looks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, MutexGuard};
use std::time::Duration;

#[derive(Default)]
pub(super) struct Signal {
    condvar: Condvar,
    waiting: AtomicUsize,
}

impl Signal {
    /// `Condvar::wait`, poison taken as the guard.
    pub(super) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let guard = self.condvar.wait(guard).unwrap_or_else(|e| e.into_inner());
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        guard
    }

    /// `Condvar::wait_timeout`, poison taken as the guard; and whether the
    /// time ran out.
    pub(super) fn wait_timeout<'a, T>(&self, guard: MutexGuard<'a, T>, timeout: Duration) -> (MutexGuard<'a, T>, bool) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let (guard, ended) = self.condvar.wait_timeout(guard, timeout).unwrap_or_else(|e| e.into_inner());
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        (guard, ended.timed_out())
    }

    /// Wakes every waiter; nothing (no system call) when none waits. Call
    /// it after changing the guarded state under the mutex.
    pub(super) fn notify_all(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.condvar.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_waiter_is_woken_by_a_change_made_under_the_mutex() {
        let shared = Arc::new((Mutex::new(false), Signal::default()));
        let waiter = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let (lock, signal) = &*shared;
                let mut done = lock.lock().unwrap();
                while !*done {
                    let (guard, timed_out) = signal.wait_timeout(done, Duration::from_secs(30));
                    if timed_out {
                        return false;
                    }
                    done = guard;
                }
                true
            })
        };
        let (lock, signal) = &*shared;
        while signal.waiting.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        *lock.lock().unwrap() = true;
        signal.notify_all();
        assert!(waiter.join().unwrap(), "the waiter was woken, not left to time out");
        assert_eq!(signal.waiting.load(Ordering::SeqCst), 0);
    }
}
