//! A scripted SMTP server in memory (as lettre's `MockStream`): the
//! dialogue's unit tests run a session over it, without sockets or time.
//!
//! A script is a list of steps: a line the client must send, bytes the
//! server sends, or the server closing. Every line the client writes is
//! checked against the next step when it is written; a client that writes
//! while the script expects it to wait for a reply, or waits for a reply
//! while the script expects another line first, fails the test at once, so
//! a script states exactly which commands go out together (PIPELINING).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use super::io::{IoFail, IoResult};

/// One step of a dialogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// A line the client sends (without CRLF).
    Client(Vec<u8>),
    /// Bytes the server sends.
    Server(Vec<u8>),
    /// The server closes the connection.
    Close,
}

/// A line the client sends.
pub(super) fn client(line: impl AsRef<[u8]>) -> Step {
    Step::Client(line.as_ref().to_vec())
}

/// A reply the server sends: each of `lines` ended by CRLF.
pub(super) fn server(lines: &str) -> Step {
    Step::Server(lines.lines().flat_map(|l| [l.as_bytes(), b"\r\n"].concat()).collect())
}

#[derive(Default)]
struct Script {
    steps: VecDeque<Step>,
    /// Bytes the client wrote that do not yet end a line.
    partial: Vec<u8>,
    /// The client shut the connection down.
    shut: bool,
}

/// The client's end of a scripted server; clones share the script.
#[derive(Clone, Default)]
pub(super) struct MockStream {
    script: Arc<Mutex<Script>>,
}

impl MockStream {
    pub(super) fn new(steps: impl IntoIterator<Item = Step>) -> MockStream {
        let script = Script { steps: steps.into_iter().collect(), ..Script::default() };
        MockStream { script: Arc::new(Mutex::new(script)) }
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The steps not yet taken (empty when the dialogue went as scripted).
    pub(super) fn left(&self) -> Vec<Step> {
        self.script().steps.iter().cloned().collect()
    }

    /// Whether the client shut the connection down (rather than leave it
    /// open for another transaction).
    pub(super) fn is_shut(&self) -> bool {
        self.script().shut
    }

    pub(super) fn shutdown(&self) {
        self.script().shut = true;
    }

    pub(super) fn is_quiet(&self) -> bool {
        let script = self.script();
        !script.shut && !matches!(script.steps.front(), Some(Step::Server(_) | Step::Close))
    }

    pub(super) fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let mut script = self.script();
        if script.shut {
            return Err(IoFail::Closed);
        }
        match script.steps.front_mut() {
            Some(Step::Server(bytes)) => {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                bytes.drain(..n);
                if bytes.is_empty() {
                    script.steps.pop_front();
                }
                Ok(n)
            }
            Some(Step::Client(line)) => {
                panic!("the client waits for a reply, but has not yet sent {:?}", String::from_utf8_lossy(line))
            }
            Some(Step::Close) | None => Err(IoFail::Closed),
        }
    }

    pub(super) fn write(&mut self, bytes: &[u8]) -> IoResult<()> {
        let mut script = self.script();
        if script.shut || matches!(script.steps.front(), Some(Step::Close)) {
            return Err(IoFail::Closed);
        }
        script.partial.extend_from_slice(bytes);
        while let Some(end) = script.partial.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = script.partial.drain(..end + 2).take(end).collect();
            let shown = String::from_utf8_lossy(&line).into_owned();
            match script.steps.pop_front() {
                Some(Step::Client(expected)) => assert_eq!(
                    shown,
                    String::from_utf8_lossy(&expected),
                    "the client sent another line than the script's"
                ),
                Some(other) => panic!("the client sent {shown:?} where the script has {other:?}"),
                None => panic!("the client sent {shown:?} after the script's end"),
            }
        }
        Ok(())
    }
}
