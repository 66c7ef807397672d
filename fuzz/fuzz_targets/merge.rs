//! smtpb_merge's template and recipients JSON (split at NUL).
//! See smtpbridge::fuzzing::merge for the input's layout and what is checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: smtpbridge::fuzzing::warm_up(), |data: &[u8]| {
    smtpbridge::fuzzing::merge(data);
});
