//! Message JSON → validation → MIME bytes: any input is an error or a
//! message, never a panic; a built message parses as MIME again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smtpbridge::message::{build, BuildContext, MessageSpec};
use smtpbridge::message_bounds::PartBudget;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // SMTPMaxMessageBytes' default: what parts may take before they are read.
    let Ok(mut spec) = MessageSpec::parse(text, &|_| PartBudget::new(36_700_160, "Default")) else { return };
    let ctx = BuildContext {
        from: "fuzz@example.test".parse().expect("a valid sender"),
        reply_to: None,
        message_id: "<fuzz@example.test>".into(),
        original_to: None,
        dkim: None,
    };
    if let Ok(bytes) = build(&mut spec, &ctx) {
        assert!(crlf_only(&bytes));
        // No header line past 998 octets (RFC 5322): build refuses instead.
        assert!(smtpbridge::message_bounds::long_header_line(&bytes).is_none());
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
