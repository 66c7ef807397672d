//! An OpenID discovery document: only endpoints the library may call are taken.
//! See smtpbridge::fuzzing::oauth2_discovery for the input's layout and what is checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smtpbridge::fuzzing::oauth2_discovery(data);
});
