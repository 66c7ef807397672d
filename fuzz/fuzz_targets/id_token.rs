//! An OpenID ID token's claims (the username it names).
//! See smtpbridge::fuzzing::id_token for the input's layout and what is checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smtpbridge::fuzzing::id_token(data);
});
