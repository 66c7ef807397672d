//! Events: news of every state change, delivered to the host on a thread
//! of their own.
//!
//! One event thread per client calls the host's callback, one event at a
//! time, in order; never on a thread inside a host's call and never on a
//! delivery thread, so delivery never waits on the host. Past
//! [`MAX_PENDING`] undelivered events, new ones are dropped and the next
//! one delivered carries `"dropped": n`. When [`Events::set_callback`]
//! returns, the old callback is not running and never runs again (unless
//! it is called from inside that callback, which then finishes normally).

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{JoinHandle, ThreadId};

use crate::error::Code;
use crate::logging::LogLine;
use crate::status::State;

/// Events kept for a slow host before new ones are dropped.
pub(crate) const MAX_PENDING: usize = 10_000;

/// A host callback: receives each event as JSON text.
pub type Callback = Arc<dyn Fn(&str) + Send + Sync>;

/// Work to run on the event thread once the running callback returns (a
/// close requested from inside the callback).
pub type AfterCallback = Box<dyn FnOnce() + Send>;

/// An event for the host (the JSON of ABI §6 events, without the fields
/// the queue adds: `seq`, `time`, `dropped`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A message changed state.
    State {
        attempts: u32,
        batch_id: Option<String>,
        error: Option<String>,
        error_code: Code,
        id: String,
        possible_duplicate: bool,
        reference: Option<String>,
        rejected_count: usize,
        state: State,
    },
    /// Mail of `user_id` (`None`: the shared credential) waits for new
    /// OAuth2 credentials; told once per user until they are set.
    CredentialsNeeded { profile: String, user_id: Option<String> },
}

/// An event as the host receives it.
#[derive(Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub(crate) struct Numbered {
    #[serde(flatten)]
    event: Event,
    /// Events dropped (the host was slow) since the one before.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(with = "u64"))]
    dropped: Option<u64>,
    seq: u64,
    time: String,
}

/// A log line as the host receives it.
#[derive(Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub(crate) struct Counted {
    #[serde(flatten)]
    line: LogLine,
    /// Lines dropped (the host was slow) since the one before.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(with = "u64"))]
    dropped: Option<u64>,
}

/// What the event thread delivers: an event, or a log line (to the log
/// callback of `logging`, under the same rules).
enum Item {
    Event(Numbered),
    Log(Counted),
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<Item>,
    /// Events and log lines in `pending`, counted apart: each has its own
    /// bound, so a flood of log lines never drops an event.
    events: usize,
    lines: usize,
    dropped: u64,
    dropped_lines: u64,
    seq: u64,
    stop: bool,
}

#[derive(Default)]
struct Slot {
    callback: Option<Callback>,
    log_callback: Option<Callback>,
    /// A callback call is in progress.
    running: bool,
    after: Option<AfterCallback>,
}

struct Shared {
    /// The event thread is finishing a close requested from inside the
    /// callback: it frees the client itself, and must not be joined.
    closing_client: std::sync::atomic::AtomicBool,
    /// An event callback is set: without one, events are only counted
    /// (their `seq` is taken) and the event thread is not woken.
    listening: std::sync::atomic::AtomicBool,
    queue: Mutex<Queue>,
    queued: Condvar,
    slot: Mutex<Slot>,
    idle: Condvar,
}

/// The event channel and thread of one client.
pub struct Events {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: Mutex<Option<ThreadId>>,
}

impl Default for Events {
    fn default() -> Self {
        Events::new()
    }
}

impl Events {
    pub fn new() -> Events {
        Events {
            shared: Arc::new(Shared {
                closing_client: std::sync::atomic::AtomicBool::new(false),
                listening: std::sync::atomic::AtomicBool::new(false),
                queue: Mutex::new(Queue::default()),
                queued: Condvar::new(),
                slot: Mutex::new(Slot::default()),
                idle: Condvar::new(),
            }),
            thread: Mutex::new(None),
            thread_id: Mutex::new(None),
        }
    }

    /// Starts the event thread.
    pub fn start(&self) -> std::io::Result<()> {
        let shared = self.shared.clone();
        let handle = std::thread::Builder::new().name("smtpbridge-events".into()).spawn(move || run(shared))?;
        *self.thread_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle.thread().id());
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(())
    }

    /// Whether the calling thread is this client's event thread.
    pub fn is_event_thread(&self) -> bool {
        *self.thread_id.lock().unwrap_or_else(|e| e.into_inner()) == Some(std::thread::current().id())
    }

    /// Queues an event (`seq` and `time` are added). With no callback set
    /// it is not queued: nobody would receive it.
    pub fn emit(&self, event: Event) {
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.stop {
            return;
        }
        if !self.shared.listening.load(std::sync::atomic::Ordering::Acquire) {
            queue.seq += 1;
            return;
        }
        if queue.events >= MAX_PENDING {
            queue.dropped += 1;
            return;
        }
        queue.seq += 1;
        let dropped = (queue.dropped > 0).then_some(queue.dropped);
        queue.dropped = 0;
        let time = crate::fsutil::rfc3339(std::time::SystemTime::now());
        queue.events += 1;
        let seq = queue.seq;
        queue.pending.push_back(Item::Event(Numbered { event, dropped, seq, time }));
        self.shared.queued.notify_one();
    }

    /// Queues a log line for the log callback; past [`MAX_PENDING`]
    /// pending lines new ones are dropped and the next one carries
    /// `"dropped": n`. Never blocks.
    pub fn emit_log(&self, line: LogLine) {
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.stop {
            return;
        }
        if queue.lines >= MAX_PENDING {
            queue.dropped_lines += 1;
            return;
        }
        let dropped = (queue.dropped_lines > 0).then_some(queue.dropped_lines);
        queue.dropped_lines = 0;
        queue.lines += 1;
        queue.pending.push_back(Item::Log(Counted { line, dropped }));
        self.shared.queued.notify_one();
    }

    /// Replaces the log callback, with the guarantees of
    /// [`Events::set_callback`].
    pub fn set_log_callback(&self, callback: Option<Callback>) {
        let mut slot = self.shared.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.log_callback = callback;
        if !self.is_event_thread() {
            while slot.running {
                slot = self.shared.idle.wait(slot).unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    /// Replaces the callback (`None` clears it). When this returns, the old
    /// callback is not running and will not run again, except when called
    /// from inside the callback itself.
    pub fn set_callback(&self, callback: Option<Callback>) {
        let mut slot = self.shared.slot.lock().unwrap_or_else(|e| e.into_inner());
        self.shared.listening.store(callback.is_some(), std::sync::atomic::Ordering::Release);
        slot.callback = callback;
        if !self.is_event_thread() {
            while slot.running {
                slot = self.shared.idle.wait(slot).unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    /// Runs `work` on the event thread once the callback now running
    /// returns; the event thread then stops.
    pub fn after_callback(&self, work: AfterCallback) {
        self.shared.slot.lock().unwrap_or_else(|e| e.into_inner()).after = Some(work);
    }

    /// Stops the event thread: the callback now running finishes, queued
    /// events are dropped, no callback runs afterwards. Joins the thread
    /// unless called on it.
    pub fn stop(&self) {
        {
            let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.stop = true;
            queue.pending.clear();
            queue.events = 0;
            queue.lines = 0;
        }
        self.shared.queued.notify_all();
        if self.is_event_thread() {
            let mut slot = self.shared.slot.lock().unwrap_or_else(|e| e.into_inner());
            slot.callback = None;
            slot.log_callback = None;
            return;
        }
        // Wait for a callback now running to return; the event thread then
        // either stops, or (a close asked for inside the callback) goes on to
        // free the client itself and must not be waited for.
        let closing_client = {
            let mut slot = self.shared.slot.lock().unwrap_or_else(|e| e.into_inner());
            slot.callback = None;
            slot.log_callback = None;
            while slot.running {
                slot = self.shared.idle.wait(slot).unwrap_or_else(|e| e.into_inner());
            }
            self.shared.closing_client.load(std::sync::atomic::Ordering::Acquire)
        };
        if !closing_client {
            if let Some(handle) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = handle.join();
            }
        }
    }
}

fn run(shared: Arc<Shared>) {
    loop {
        let item = {
            let mut queue = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if queue.stop {
                    return;
                }
                if let Some(item) = queue.pending.pop_front() {
                    match item {
                        Item::Event(_) => queue.events -= 1,
                        Item::Log(_) => queue.lines -= 1,
                    }
                    break item;
                }
                queue = shared.queued.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
        };
        let callback = {
            let mut slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
            let callback = match &item {
                Item::Event(_) => slot.callback.clone(),
                Item::Log(_) => slot.log_callback.clone(),
            };
            slot.running = callback.is_some();
            callback
        };
        if let Some(callback) = callback {
            let text = match &item {
                Item::Event(event) => serde_json::to_string(event).expect("events serialise"),
                Item::Log(line) => serde_json::to_string(line).expect("log lines serialise"),
            };
            // A panic in a Rust callback must not end the thread.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(&text)));
        }
        let after = {
            let mut slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
            let after = slot.after.take();
            // Set before `running` clears, under the same lock: whoever
            // waits for the callback to end sees it.
            if after.is_some() {
                shared.closing_client.store(true, std::sync::atomic::Ordering::Release);
            }
            slot.running = false;
            shared.idle.notify_all();
            after
        };
        if let Some(work) = after {
            work();
            return;
        }
    }
}
