//! One message on an open session: MAIL, RCPT, DATA, pipelining, 452
//! splitting across transactions, refusals and RSET, dot-stuffing.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::failure::{failure, local, transient, Failure};
use super::io::{IoFail, IoResult};
use super::session::Session;
use super::{Delivery, Mail};
use crate::error::Code;
use crate::failure::Cause;
use crate::reply::Reply;
use crate::status::Refusal;
use crate::transcript;

/// How much of a message is written per socket write.
pub(super) const CHUNK: usize = 64 * 1024;
/// The slowest transfer rate a DATA deadline allows for: the deadline for
/// the body and its reply is SMTPConnectionTimeout plus this per byte.
pub(super) const MIN_BYTES_PER_SECOND: u64 = 64 * 1024;

impl Session {
    /// Sends one message: MAIL, RCPT for each recipient, DATA, the body.
    /// On success returns the final reply and the recipients refused with
    /// a 5xx; otherwise a failure classified by phase.
    pub fn send(&mut self, mail: &Mail) -> Result<Delivery, Failure> {
        self.in_transaction.store(true, Ordering::Release);
        let result = self.transaction(mail.from, mail.to, mail.body, mail.utf8);
        self.in_transaction.store(false, Ordering::Release);
        match &result {
            Ok(_) => self.transactions = self.transactions.saturating_add(1),
            // Broke or stalled mid-transaction: a late reply may still be on
            // its way, and would be read as the answer to the next command.
            Err(f) if !f.in_step() => self.transactions = u64::MAX,
            Err(_) => {}
        }
        self.idle_since = Instant::now();
        result
    }

    pub(super) fn transaction(
        &mut self,
        from: &str,
        recipients: &[String],
        body: &[u8],
        utf8: bool,
    ) -> Result<Delivery, Failure> {
        if let Some(limit) = self.caps.size.filter(|s| *s > 0) {
            if body.len() as u64 > limit {
                // The library's own refusal: no server reply is invented
                // for it, and nothing was sent (the session stays usable).
                return Err(local(
                    Code::Rejected,
                    "mail",
                    format!(
                        "the message is {} bytes; the server announced SIZE {limit}, so it was not sent",
                        body.len()
                    ),
                )
                .with_cause(Some(Cause::MessageTooLarge(limit))));
            }
        }
        if utf8 && !self.caps.smtputf8 {
            let address = std::iter::once(from)
                .chain(recipients.iter().map(String::as_str))
                .find(|a| !a.is_ascii())
                .unwrap_or(from);
            return Err(local(
                Code::Message,
                "mail",
                format!(
                    "the address {} has a non-ASCII local part, and the server does not offer SMTPUTF8",
                    crate::text::printable(address)
                ),
            ));
        }
        // RFC 5321 §4.5.3.1.10: a server may take fewer recipients per
        // transaction than a message has (452, e.g. Postfix's 4.5.3 "too
        // many recipients"). The accepted ones get the message, the rest go
        // in further transactions on this session: one status in the end.
        let mut remaining: Vec<String> = recipients.to_vec();
        let mut rejected: Vec<Refusal> = Vec::new();
        let mut delivered: Option<Reply> = None;
        loop {
            match self.round(from, &remaining, body, utf8, delivered.is_none()) {
                Ok(round) => {
                    rejected.extend(
                        round.rejected.into_iter().map(|(address, reply)| Refusal::reply(address, reply.into())),
                    );
                    delivered = Some(round.reply);
                    if round.carried.is_empty() {
                        break;
                    }
                    remaining = round.carried;
                }
                Err(f) if delivered.is_none() => return Err(f),
                Err(f) => {
                    // Some recipients have the message already: a later
                    // transaction's failure is each remaining recipient's.
                    if !f.in_step() {
                        self.transactions = u64::MAX; // broken: not pooled
                    }
                    for address in remaining {
                        let reply = f.rejected.iter().find(|(a, _)| *a == address).map(|(_, r)| r.clone());
                        let error = f.message.clone();
                        rejected.push(Refusal {
                            address,
                            reply: reply.or_else(|| f.reply.clone()).map(Into::into),
                            error: Some(error),
                        });
                    }
                    break;
                }
            }
        }
        Ok(Delivery { reply: delivered.expect("at least one transaction delivered"), rejected })
    }

    /// One transaction: MAIL, RCPT for each of `recipients`, DATA, the
    /// body. Recipients answered 452 after one was accepted are `carried`
    /// for the next transaction instead of deferring the message.
    pub(super) fn round(
        &mut self,
        from: &str,
        recipients: &[String],
        body: &[u8],
        utf8: bool,
        first_round: bool,
    ) -> Result<Round, Failure> {
        let first = first_round && self.transactions > 0;
        let mut mail = format!("MAIL FROM:<{from}>");
        if self.caps.size.is_some() {
            mail.push_str(&format!(" SIZE={}", body.len()));
        }
        if utf8 {
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");
        let rcpts: Vec<String> = recipients.iter().map(|r| format!("RCPT TO:<{r}>\r\n")).collect();

        // With PIPELINING, MAIL, every RCPT and DATA go out in one write
        // (RFC 2920: DATA may end a group): two round trips a message.
        let pipelined = self.caps.pipelining;
        let deadline = Instant::now() + self.timeout;
        let stale_fail = |e: IoFail| {
            let mut f = failure(Code::Transient, "mail", format!("the connection broke at MAIL: {e}"));
            f.stale = first && matches!(e, IoFail::Closed | IoFail::Io(_));
            f
        };
        let mail_reply = if pipelined {
            let mut batch = mail.clone().into_bytes();
            for r in &rcpts {
                batch.extend_from_slice(r.as_bytes());
            }
            batch.extend_from_slice(b"DATA\r\n");
            self.write(&batch, deadline).map_err(stale_fail)?;
            self.read_reply(deadline).map_err(stale_fail)?
        } else {
            self.write(mail.as_bytes(), deadline).map_err(stale_fail)?;
            self.read_reply(deadline).map_err(stale_fail)?
        };
        let mail_ok = mail_reply.is_class(2);
        if !mail_ok && !pipelined {
            return Err(self.after_refusal(
                mail_reply,
                "mail",
                "MAIL",
                format!("the server refused the sender {from}"),
            ));
        }

        let mut data_reply = None;
        let mut accepted = 0usize;
        let mut rejected = Vec::new();
        let mut deferred = Vec::new();
        let mut carried = Vec::new();
        let mut out_of_step = None;
        for (index, line) in rcpts.iter().enumerate() {
            let deadline = Instant::now() + self.timeout;
            let io = |e| transient("rcpt", "at RCPT", e);
            if !pipelined {
                self.write(line.as_bytes(), deadline).map_err(io)?;
            }
            let reply = self.read_reply(deadline).map_err(io)?;
            let address = recipients[index].clone();
            if reply.is_class(2) {
                accepted += 1;
            } else if reply.code == 452 && accepted > 0 {
                // Past the server's recipient limit (RFC 5321 §4.5.3.1.10).
                carried.push(address);
            } else if reply.is_transient() {
                deferred.push((address, reply));
            } else if reply.is_permanent() {
                rejected.push((address, reply));
            } else if out_of_step.is_none() {
                out_of_step = Some((address, reply));
            }
        }
        if pipelined {
            // DATA's reply. A 354 puts the server in data mode: from here a
            // refusal below ends the session instead of RSET (no final dot
            // ever goes out, so nothing is delivered).
            let deadline = Instant::now() + self.timeout;
            let reply = self.read_reply(deadline).map_err(|e| transient("data", "at DATA", e))?;
            self.data_mode = reply.code == 354;
            data_reply = Some(reply);
        }
        if !mail_ok {
            return Err(self.after_refusal(
                mail_reply,
                "mail",
                "MAIL",
                format!("the server refused the sender {from}"),
            ));
        }
        if let Some((address, reply)) = out_of_step {
            let command = format!("RCPT TO:<{address}>");
            let mut f = self.after_refusal(reply, "rcpt", &command, String::new());
            f.rejected = rejected;
            return Err(f);
        }
        if let Some((address, reply)) = deferred.first().cloned() {
            let mut f = self.after_refusal(reply, "rcpt", "RCPT", format!("the server deferred recipient {address}"));
            f.code = Code::Transient;
            f.rejected = rejected;
            return Err(f);
        }
        if accepted == 0 {
            let (address, reply) = rejected.last().cloned().expect("at least one recipient");
            let mut f = self.after_refusal(
                reply,
                "rcpt",
                "RCPT",
                format!("the server refused every recipient (last: {address})"),
            );
            f.code = Code::Rejected;
            f.rejected = rejected;
            return Err(f);
        }

        let reply = match data_reply {
            Some(reply) => reply,
            None => {
                let deadline = Instant::now() + self.timeout;
                let io = |e| transient("data", "at DATA", e);
                self.write(b"DATA\r\n", deadline).map_err(io)?;
                self.read_reply(deadline).map_err(io)?
            }
        };
        if reply.code != 354 {
            let mut f = self.after_refusal(reply, "data", "DATA", "the server refused DATA".to_string());
            f.rejected = rejected;
            return Err(f);
        }

        self.data_mode = false;
        let allowance = Duration::from_millis(body.len() as u64 * 1000 / MIN_BYTES_PER_SECOND);
        let deadline = Instant::now() + self.timeout + allowance;
        self.write_data(body, deadline).map_err(|e| transient("data", "while sending the message", e))?;
        let reply = self.read_reply(deadline).map_err(|e| {
            let mut f = transient("data", "after the final dot, before the server's reply", e);
            f.possible_duplicate = true;
            f
        })?;
        if !reply.is_class(2) {
            // Past the dot, a reply of no refusing class leaves unknown
            // whether the server took the message.
            let unknown = !reply.is_transient() && !reply.is_permanent();
            let mut f =
                self.after_refusal(reply, "data", "the final dot", "the server refused the message".to_string());
            f.possible_duplicate = unknown;
            f.rejected = rejected;
            return Err(f);
        }
        Ok(Round { reply, rejected, carried })
    }

    /// A refusal in the transaction: classify it and leave the session
    /// ready for the next transaction (RSET). Only a 5xx refuses for good
    /// (`SMTPB_ERR_REJECTED`); a 4xx is TRANSIENT. A reply of a class the
    /// command never gets (`250` to DATA, `354` to RCPT: a server sending
    /// replies nobody asked for) is TRANSIENT too, quoted, and the session,
    /// out of step with the server, is closed instead of reused.
    pub(super) fn after_refusal(&mut self, reply: Reply, stage: &'static str, command: &str, what: String) -> Failure {
        if !reply.is_transient() && !reply.is_permanent() {
            self.data_mode = false;
            self.transactions = u64::MAX;
            self.stream.shutdown();
            let expected = if command == "DATA" { "354" } else { "2xx" };
            return failure(
                Code::Transient,
                stage,
                format!(
                    "the server answered {command} with \"{}\" where {expected} was expected; the session is out of \
                     step with the server and was closed",
                    reply.summary()
                ),
            )
            .with_reply(reply);
        }
        let code = if reply.is_transient() { Code::Transient } else { Code::Rejected };
        let deadline = Instant::now() + self.timeout;
        if self.data_mode {
            // The server waits for message text: end the session without
            // the final dot, so that it delivers nothing.
            self.data_mode = false;
            self.transactions = u64::MAX;
            self.stream.shutdown();
        } else if self.write(b"RSET\r\n", deadline).is_err() || !self.read_reply(deadline).is_ok_and(|r| r.code == 250)
        {
            // The session is unusable; the pool will drop it.
            self.transactions = u64::MAX;
        }
        failure(code, stage, format!("{what}: {}", reply.summary())).with_reply(reply)
    }

    /// Writes the message dot-stuffed, with CRLF line ends only, followed
    /// by `.` on a line of its own. One pass over the message finds the
    /// line ends that need a change (a vectorised check that all are CRLF,
    /// then a search for the dots after them; else memchr at every line
    /// end): runs of lines that need nothing (CRLF, no dot in front) go out
    /// as they are, at least [`CHUNK`] at a time; only a doubled dot or a
    /// lone CR or LF made CRLF is copied, into the session's buffer, which
    /// the next message reuses.
    pub(super) fn write_data(&mut self, body: &[u8], deadline: Instant) -> IoResult<()> {
        let mut out = std::mem::take(&mut self.data);
        out.clear();
        let result = dot_stuffed(body, &mut out, &mut |bytes| self.stream.write_all(bytes, deadline));
        if out.capacity() <= 2 * CHUNK {
            self.data = out;
        }
        // The content never enters a transcript: only its size.
        transcript::note(|| format!("DATA: {} bytes", body.len()));
        result
    }
}

/// `body` as DATA sends it (see [`Session::write_data`]), handed to `write`
/// in pieces; `out` holds what had to be changed.
pub(super) fn dot_stuffed(
    body: &[u8],
    out: &mut Vec<u8>,
    write: &mut dyn FnMut(&[u8]) -> IoResult<()>,
) -> IoResult<()> {
    if crlf_only(body) {
        // Every line end is CRLF already (a message the library built): only
        // a line that starts with a dot needs anything, and one search for
        // LF dot finds those, instead of a stop at every line end. Each is
        // given as the position of its CR.
        static LF_DOT: OnceLock<memchr::memmem::Finder<'static>> = OnceLock::new();
        let finder = LF_DOT.get_or_init(|| memchr::memmem::Finder::new(b"\n."));
        stuff_at(body, finder.find_iter(body).map(|lf| lf - 1), out, write)
    } else {
        stuff_at(body, memchr::memchr2_iter(b'\r', b'\n', body), out, write)
    }
}

/// [`dot_stuffed`] stopping at `ends`: the line ends (CR, LF, or the CR of a
/// CRLF) that may need a change, in order; every other line end is a CRLF
/// followed by no dot. The LF of a CRLF given as well is passed over.
fn stuff_at(
    body: &[u8],
    ends: impl Iterator<Item = usize>,
    out: &mut Vec<u8>,
    write: &mut dyn FnMut(&[u8]) -> IoResult<()>,
) -> IoResult<()> {
    // body[..done] is written or in `out`; body[done..at] goes as it is.
    let mut done = 0;
    let mut at = 0;
    if body.first() == Some(&b'.') {
        out.push(b'.');
    }
    for end in ends {
        if end < at {
            continue;
        }
        let crlf = body[end] == b'\r' && body.get(end + 1) == Some(&b'\n');
        at = end + if crlf { 2 } else { 1 };
        if !crlf {
            out.extend_from_slice(&body[done..end]);
            out.extend_from_slice(b"\r\n");
            done = at;
        }
        if body.get(at) == Some(&b'.') {
            out.extend_from_slice(&body[done..at]);
            out.push(b'.');
            done = at;
        }
        if out.len() + (at - done) >= CHUNK {
            if !out.is_empty() {
                write(out)?;
                out.clear();
            }
            write(&body[done..at])?;
            done = at;
        }
    }
    out.extend_from_slice(&body[done..]);
    if !matches!(body.last(), None | Some(b'\n') | Some(b'\r')) {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    write(out)
}

/// Whether every CR in `bytes` is followed by an LF and every LF follows a
/// CR: each byte's being a CR compared with the next one's being an LF, a
/// pass the compiler vectorises (4 KiB at a time, to stop early).
pub(super) fn crlf_only(bytes: &[u8]) -> bool {
    if bytes.first() == Some(&b'\n') || bytes.last() == Some(&b'\r') {
        return false;
    }
    let next = bytes.get(1..).unwrap_or_default();
    bytes.chunks(4096).zip(next.chunks(4096)).all(|(this, next)| {
        this.iter().zip(next).fold(0u8, |odd, (&a, &b)| odd | (u8::from(a == b'\r') ^ u8::from(b == b'\n'))) == 0
    })
}

/// What one transaction of a message did.
pub(super) struct Round {
    pub(super) reply: Reply,
    /// Recipients refused with a 5xx.
    pub(super) rejected: Vec<(String, Reply)>,
    /// Recipients answered 452 while others were accepted: for the next
    /// transaction.
    pub(super) carried: Vec<String>,
}
