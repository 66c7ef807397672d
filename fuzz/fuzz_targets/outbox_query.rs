//! smtpb_outbox_query's query JSON.
//! See smtpbridge::fuzzing::outbox_query for the input's layout and what is checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smtpbridge::fuzzing::outbox_query(data);
});
