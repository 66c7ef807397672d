//! smtpb_merge's template and recipients JSON (split at NUL).
//! See smtpbridge::fuzzing::merge for the input's layout and what is checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smtpbridge::fuzzing::merge(data);
});
