//! smtpb_outbox_query's query JSON.
//! See smtpbridge::fuzzing::outbox_query for the input's layout and what is checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: smtpbridge::fuzzing::warm_up(), |data: &[u8]| {
    smtpbridge::fuzzing::outbox_query(data);
});
