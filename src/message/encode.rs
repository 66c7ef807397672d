//! Bodies as they are sent. A text body's transfer encoding is chosen by
//! one vectorised scan (the rules lettre's `Body::new` applies to a
//! `String`, so a message's MIME is what it was), then one pass encodes it
//! straight into the message's buffer, every line end (CRLF, CR alone, LF
//! alone) written as CRLF: no normalised copy, no encoded copy.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use lettre::message::header::ContentTransferEncoding;

/// The longest quoted-printable line, `=` of a soft break included
/// (RFC 2045 §6.7), and the length of a base64 line as lettre writes it.
pub(super) const LINE: usize = 76;
/// The input bytes of one base64 line.
const B64_CHUNK: usize = LINE / 4 * 3;

/// The lines of `text`, each without its end, and whether one followed
/// (CRLF, a CR alone and an LF alone each end a line).
pub(super) fn lines(text: &[u8]) -> impl Iterator<Item = (&[u8], bool)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, ended, skip) = match memchr::memchr2(b'\r', b'\n', rest) {
            None => (rest, false, rest.len()),
            Some(end) => {
                let crlf = rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n');
                (&rest[..end], true, end + 1 + usize::from(crlf))
            }
        };
        rest = &rest[skip..];
        Some((line, ended))
    })
}

/// The transfer encoding lettre (email-encoding 0.4) gives a text body
/// whose line ends are LF: 7bit for ASCII whose lines are short; else
/// quoted-printable when at most a third of the bytes need escaping; else
/// base64. Measured on `text` as if its line ends were LF already.
pub(super) fn choose(text: &str) -> ContentTransferEncoding {
    let bytes = text.as_bytes();
    // email-encoding counts a later line's length with the LF before it.
    let too_long = lines(bytes).enumerate().any(|(i, (line, _))| line.len() + usize::from(i > 0) >= LINE);
    if bytes.is_ascii() && !too_long {
        return ContentTransferEncoding::SevenBit;
    }
    // A CRLF is one LF of the text lettre measures: one byte to escape, not two.
    let crlf = memchr::memmem::find_iter(bytes, b"\r\n").count();
    // Counted 255 bytes at a time in a u8, which the compiler vectorises.
    let escaped = bytes
        .chunks(255)
        .map(|chunk| {
            chunk.iter().fold(0u8, |n, &b| n + (u8::from(b != b'\t') & u8::from(b.wrapping_sub(b' ') > b'~' - b' ')))
                as usize
        })
        .sum::<usize>()
        - crlf;
    if escaped <= (bytes.len() - crlf) / 3 {
        ContentTransferEncoding::QuotedPrintable
    } else {
        ContentTransferEncoding::Base64
    }
}

/// About how many bytes `text` takes encoded (for reserving the buffer).
pub(super) fn estimated_len(text: &str, encoding: ContentTransferEncoding) -> usize {
    match encoding {
        ContentTransferEncoding::Base64 => text.len().div_ceil(3) * 4 * (LINE + 2) / LINE + 4,
        _ => text.len() + text.len() / 16 + 8,
    }
}

/// Appends `text` to `out` in `encoding` (one [`choose`] gave), its line
/// ends CRLF: what lettre's `Body::new` makes of it, byte for byte.
pub(super) fn encode_text(text: &str, encoding: ContentTransferEncoding, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    match encoding {
        ContentTransferEncoding::QuotedPrintable => quoted_printable(bytes, out),
        ContentTransferEncoding::Base64 => {
            let mut b64 = Base64Lines::new(out);
            for (line, ended) in lines(bytes) {
                b64.push(line);
                if ended {
                    b64.push(b"\r\n");
                }
            }
            b64.finish();
        }
        _ => {
            for (line, ended) in lines(bytes) {
                out.extend_from_slice(line);
                if ended {
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
    }
}

/// Base64 in lines of 76 characters joined by CRLF (no CRLF after the
/// last), written as its input comes in pieces.
pub(super) struct Base64Lines<'a> {
    out: &'a mut Vec<u8>,
    pending: [u8; B64_CHUNK],
    held: usize,
    first: bool,
}

impl<'a> Base64Lines<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        Base64Lines { out, pending: [0; B64_CHUNK], held: 0, first: true }
    }

    fn line(&mut self, chunk: &[u8]) {
        if !self.first {
            self.out.extend_from_slice(b"\r\n");
        }
        self.first = false;
        let mut line = [0u8; LINE];
        let n = B64.encode_slice(chunk, &mut line).expect("76 characters hold 57 bytes of base64");
        self.out.extend_from_slice(&line[..n]);
    }

    pub(super) fn push(&mut self, mut bytes: &[u8]) {
        if self.held > 0 {
            let take = (B64_CHUNK - self.held).min(bytes.len());
            self.pending[self.held..self.held + take].copy_from_slice(&bytes[..take]);
            self.held += take;
            bytes = &bytes[take..];
            if self.held < B64_CHUNK {
                return;
            }
            let chunk = self.pending;
            self.line(&chunk);
            self.held = 0;
        }
        let whole = bytes.len() / B64_CHUNK * B64_CHUNK;
        for chunk in bytes[..whole].chunks_exact(B64_CHUNK) {
            self.line(chunk);
        }
        let rest = &bytes[whole..];
        self.pending[..rest.len()].copy_from_slice(rest);
        self.held = rest.len();
    }

    pub(super) fn finish(mut self) {
        if self.held > 0 {
            let chunk = self.pending;
            self.line(&chunk[..self.held]);
        }
    }
}

/// Whether a byte stands for itself in quoted-printable.
fn literal(b: u8) -> bool {
    b == b'\t' || ((b' '..=b'~').contains(&b) && b != b'=')
}

/// How many bytes at the start of `bytes` are literal: sixteen at a time
/// while all are printable ASCII other than `=` (a test the compiler
/// vectorises), then one at a time.
fn literal_run(bytes: &[u8]) -> usize {
    let plain = |b: u8| u8::from(b.wrapping_sub(b' ') < 0x7f - b' ') & u8::from(b != b'=');
    let all_plain = |block: &[u8]| block.iter().fold(1u8, |all, &b| all & plain(b)) == 1;
    let mut run = 0;
    for block in bytes.chunks_exact(16) {
        if !all_plain(block) {
            break;
        }
        run += 16;
    }
    // The last sixteen bytes, overlapping the blocks: the whole of a line
    // of printable ASCII without a byte at a time.
    if run < bytes.len() && run + 16 >= bytes.len() && bytes.len() >= 16 && all_plain(&bytes[bytes.len() - 16..]) {
        return bytes.len();
    }
    run + bytes[run..].iter().position(|&b| !literal(b)).unwrap_or(bytes.len() - run)
}

/// Quoted-printable of text (RFC 2045 §6.7) as the quoted_printable crate
/// writes it for lettre, so that a message's bytes are what they were: runs
/// of literal bytes copied whole, a soft break (`=` CRLF) before a line
/// would pass 76 characters, a space or tab before a line end escaped.
fn quoted_printable(text: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let mut qp = Qp { out, start, on_line: 0, last: start };
    for (line, ended) in lines(text) {
        qp.line(line);
        if ended {
            qp.escape_trailing_blank();
            qp.out.extend_from_slice(b"\r\n");
            qp.on_line = 0;
        }
    }
    qp.escape_trailing_blank();
}

struct Qp<'a> {
    out: &'a mut Vec<u8>,
    /// Where this body's bytes begin in `out`.
    start: usize,
    /// Characters on the current output line.
    on_line: usize,
    /// Where the last piece appended one at a time begins (a soft break
    /// goes before it when the line is full).
    last: usize,
}

impl Qp<'_> {
    fn line(&mut self, mut line: &[u8]) {
        while let Some(&b) = line.first() {
            if literal(b) && self.on_line < LINE {
                // A run of literal bytes that passes the line's last place
                // breaks after place 75, `=` in the 76th: what appending
                // them one at a time below comes to (the 77th moves the
                // 76th to the next line), in two copies.
                let run = literal_run(&line[..line.len().min(LINE + 1 - self.on_line)]);
                if self.on_line + run > LINE {
                    let take = LINE - 1 - self.on_line;
                    self.out.extend_from_slice(&line[..take]);
                    self.out.extend_from_slice(b"=\r\n");
                    self.on_line = 0;
                    self.last = self.out.len();
                    line = &line[take..];
                    continue;
                }
                if LINE - self.on_line >= 3 {
                    // The run, short of the line's last two places.
                    let run = run.min(LINE - self.on_line - 2);
                    self.out.extend_from_slice(&line[..run]);
                    self.on_line += run;
                    self.last = self.out.len();
                    line = &line[run..];
                    continue;
                }
            }
            if literal(b) {
                self.append(&[b]);
            } else {
                self.append(&hex(b));
            }
            line = &line[1..];
        }
    }

    fn append(&mut self, piece: &[u8]) {
        if self.on_line + piece.len() > LINE {
            if self.on_line == LINE {
                // No room for the `=`: the last piece moves to the next line.
                let end = self.out.len();
                self.on_line = end - self.last;
                self.out.extend_from_slice(b"=\r\n");
                self.out.copy_within(self.last..end, self.last + 3);
                self.out[self.last..self.last + 3].copy_from_slice(b"=\r\n");
            } else {
                self.out.extend_from_slice(b"=\r\n");
                self.on_line = 0;
            }
        }
        self.out.extend_from_slice(piece);
        self.on_line += piece.len();
        self.last = self.out.len() - piece.len();
    }

    /// A space or tab may not end a line (RFC 2045 §6.7 rule 3).
    fn escape_trailing_blank(&mut self) {
        let blank = match self.out[self.start..].last() {
            Some(&b) if b == b' ' || b == b'\t' => b,
            _ => return,
        };
        self.out.pop();
        self.on_line -= 1;
        self.append(&hex(blank));
    }
}

fn hex(b: u8) -> [u8; 3] {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    [b'=', DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]]
}

/// The encoder beside lettre's for one text body (the fuzz target
/// `text_body`): the same transfer encoding and the same bytes, CRLF line
/// ends only, no line longer than the encoding allows.
pub(crate) fn check_against_lettre(text: &str) {
    let encoding = choose(text);
    let mut ours = Vec::with_capacity(estimated_len(text, encoding));
    encode_text(text, encoding, &mut ours);
    let lettre = lettre::message::Body::new(super::build::normalize_newlines(text));
    assert_eq!(encoding, lettre.encoding(), "the encoding chosen");
    assert!(ours == lettre.into_vec(), "the encoded bytes differ from lettre's");
    let most = if encoding == ContentTransferEncoding::SevenBit { 998 } else { LINE };
    let mut lines = ours.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = match lines.peek() {
            Some(_) => line.strip_suffix(b"\r").expect("no bare LF"),
            None => line,
        };
        assert!(line.len() <= most, "a line of {} bytes", line.len());
        assert!(!line.contains(&b'\r'), "no bare CR");
    }
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
