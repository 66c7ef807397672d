//! SMTP replies as a session reads them from its socket, the stream in fuzzer-chosen pieces; must match the whole-buffer parse.
//! See smtpbridge::fuzzing::smtp_reply for the input's layout and what is checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smtpbridge::fuzzing::smtp_reply(data);
});
