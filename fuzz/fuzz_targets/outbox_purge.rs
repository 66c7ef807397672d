//! smtpb_outbox_purge's before time and states JSON (split at NUL).
//! See smtpbridge::fuzzing::outbox_purge for the input's layout and what is checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: smtpbridge::fuzzing::warm_up(), |data: &[u8]| {
    smtpbridge::fuzzing::outbox_purge(data);
});
