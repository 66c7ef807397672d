//! An HTTP response (status line, headers, chunked or sized body, body limit) as the library's HTTP client reads it.
//! See smtpbridge::fuzzing::http_response for the input's layout and what is checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smtpbridge::fuzzing::http_response(data);
});
