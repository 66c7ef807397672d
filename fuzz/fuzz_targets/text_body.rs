//! A text body through the one-pass encoder: the transfer encoding and the
//! bytes lettre makes of it (the path it replaces), CRLF line ends only,
//! no line longer than the encoding allows.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| smtpbridge::fuzzing::text_body(data));
