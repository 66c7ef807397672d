//! The SMTP reply parser, on bytes as a server might send them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = smtpbridge::smtp::parse_replies(data);
});
