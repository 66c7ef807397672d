//! Microsoft Graph's answers to one delivery (sendMail, or the draft path), classified into a result.
//! See smtpbridge::fuzzing::graph for the input's layout and what is checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smtpbridge::fuzzing::graph(data);
});
