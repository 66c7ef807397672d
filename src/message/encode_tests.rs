//! The encoder beside lettre's: the same encoding and the same bytes for
//! random bodies, which decode back to the text with LF line ends.

use super::*;
use crate::message::build::normalize_newlines;

/// What lettre makes of a text body (the path this encoder replaces).
fn lettre_body(text: &str) -> (ContentTransferEncoding, Vec<u8>) {
    let body = lettre::message::Body::new(normalize_newlines(text));
    (body.encoding(), body.into_vec())
}

fn ours(text: &str) -> (ContentTransferEncoding, Vec<u8>) {
    let encoding = choose(text);
    let mut out = b"prefix ".to_vec(); // bytes before the body stay as they are
    encode_text(text, encoding, &mut out);
    assert_eq!(&out[..7], b"prefix ");
    (encoding, out[7..].to_vec())
}

/// The body decoded by a MIME parser, as a receiver reads it.
fn decoded(encoding: ContentTransferEncoding, body: &[u8]) -> String {
    let mut mime = format!("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n")
        .into_bytes();
    mime.extend_from_slice(body);
    let message = mail_parser::MessageParser::default().parse(&mime).expect("parses");
    message.body_text(0).map(|t| t.into_owned()).unwrap_or_default()
}

/// Checks one body: lettre's bytes, line lengths, CRLF only, round trip.
fn check(text: &str) {
    let (encoding, bytes) = ours(text);
    let (lettre_encoding, lettre_bytes) = lettre_body(text);
    assert_eq!(encoding, lettre_encoding, "encoding of {text:?}");
    assert!(
        bytes == lettre_bytes,
        "bytes of {text:?}:\n{}\n{}",
        String::from_utf8_lossy(&bytes),
        String::from_utf8_lossy(&lettre_bytes)
    );
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(bytes.get(i + 1), Some(&b'\n'), "bare CR in {text:?}"),
            b'\n' => assert!(i > 0 && bytes[i - 1] == b'\r', "bare LF in {text:?}"),
            _ => {}
        }
    }
    let most = if encoding == ContentTransferEncoding::SevenBit { 998 } else { LINE };
    for line in bytes.split(|&b| b == b'\n') {
        assert!(line.len() <= most + 1, "a line of {} in {text:?}", line.len());
    }
    let lf = normalize_newlines(text);
    let back = decoded(encoding, &bytes);
    // A receiver gives line ends as LF; trailing blanks of a 7bit line are kept.
    assert_eq!(back.replace("\r\n", "\n"), lf, "round trip of {text:?} ({encoding})");
}

/// A small deterministic generator (xorshift), so a failure can be rerun.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A body from the pieces that trip encoders: line ends of every kind,
/// blanks before them, dots and "From " at line starts, `=`, 8-bit text,
/// lines around 75, 76, 77 and 998.
fn random_body(r: &mut Random) -> String {
    const PIECES: &[&str] = &[
        "\r\n", "\n", "\r", " ", "\t", ".", "From ", "=", "==", "é", "€", "日本", "😀", "a", "word ", "\u{7f}",
        "\u{1}", "x=3D", "..", " \r\n", "\t\n",
    ];
    let mut text = String::new();
    for _ in 0..r.below(60) {
        match r.below(10) {
            0 => {
                let n = [74, 75, 76, 77, 78, 150, 997, 998, 999, 1200][r.below(10)];
                text.extend(std::iter::repeat_n('q', n));
            }
            1 => text.extend(std::iter::repeat_n('é', r.below(80))),
            _ => text.push_str(PIECES[r.below(PIECES.len())]),
        }
    }
    text
}

#[test]
fn random_bodies_encode_as_lettre_does_and_decode_to_their_text() {
    let mut r = Random(0x5eed_2545_f491_4f6d);
    for _ in 0..3000 {
        check(&random_body(&mut r));
    }
}

#[test]
fn each_encoding_is_chosen_where_lettre_chooses_it() {
    let cases: &[(&str, ContentTransferEncoding)] = &[
        ("", ContentTransferEncoding::SevenBit),
        ("Hello\r\n.\r\nFrom me\r\n", ContentTransferEncoding::SevenBit),
        (&"x".repeat(75), ContentTransferEncoding::SevenBit),
        (&"x".repeat(76), ContentTransferEncoding::QuotedPrintable),
        (&format!("a\n{}", "x".repeat(74)), ContentTransferEncoding::SevenBit),
        (&format!("a\n{}", "x".repeat(75)), ContentTransferEncoding::QuotedPrintable),
        (&format!("a\r\n{}\r\n", "x".repeat(75)), ContentTransferEncoding::QuotedPrintable),
        ("Grüße aus dem schönen Köln", ContentTransferEncoding::QuotedPrintable),
        ("Grüße", ContentTransferEncoding::Base64),
        ("Привет, мир", ContentTransferEncoding::Base64),
    ];
    for (text, encoding) in cases {
        assert_eq!(choose(text), *encoding, "{text:?}");
        check(text);
    }
}

#[test]
fn soft_breaks_and_trailing_blanks_match_lettre_at_every_line_position() {
    // Every position of an escape and of a blank around the 76th column.
    for n in 60..80 {
        for tail in ["=", "é", " ", "\t", " \n", "\t\r\nnext", "= ", "é ", "€x"] {
            check(&format!("{}{tail}{}", "a".repeat(n), "b".repeat(n)));
            check(&format!("{}{tail}", "a".repeat(n)));
        }
    }
}

#[test]
fn long_literal_runs_break_as_lettre_breaks_them_from_any_start() {
    // A run over several lines, begun after escapes that leave the first
    // line at every offset, ended by each kind of tail at every place of
    // the second and third lines.
    for lead in ["", "é", "==", "=\t", "a=", "ééé"] {
        for n in (140..160).chain(215..235) {
            for tail in ["", "=", "é", " ", "\t", " \n", "= ", "\nnext"] {
                check(&format!("{lead}{}{tail}{}", "a".repeat(n), "b".repeat(n % 7)));
            }
        }
    }
}

#[test]
fn base64_lines_are_the_same_in_pieces_as_whole() {
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 3) as u8).collect();
    let mut whole = Vec::new();
    let mut w = Base64Lines::new(&mut whole);
    w.push(&data);
    w.finish();
    let mut pieces = Vec::new();
    let mut w = Base64Lines::new(&mut pieces);
    for chunk in data.chunks(13) {
        w.push(chunk);
    }
    w.finish();
    assert_eq!(whole, pieces);
    let mut lettre = String::new();
    lettre_encode_base64(&data, &mut lettre);
    assert_eq!(whole, lettre.into_bytes());
}

fn lettre_encode_base64(data: &[u8], out: &mut String) {
    let body = lettre::message::Body::new_with_encoding(data.to_vec(), ContentTransferEncoding::Base64).unwrap();
    out.push_str(std::str::from_utf8(body.as_ref()).unwrap());
}

#[test]
fn literal_runs_stop_at_the_first_byte_to_escape_wherever_it_is() {
    for len in 0..40 {
        for at in 0..len {
            for b in [b'=', b'\r', b'\n', 0x7f, 0x80, 0xff, 0x1f, 0] {
                let mut bytes = vec![b'a'; len];
                bytes[at] = b;
                assert_eq!(literal_run(&bytes), at, "{b:#x} at {at} of {len}");
            }
            let mut tabs = vec![b'~'; len];
            tabs[at] = b'\t';
            assert_eq!(literal_run(&tabs), len);
        }
    }
}
