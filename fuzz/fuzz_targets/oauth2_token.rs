//! An OAuth2 token endpoint's answer (tokens, an OAuth2 error, an ID token inside).
//! See smtpbridge::fuzzing::oauth2_token for the input's layout and what is checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smtpbridge::fuzzing::oauth2_token(data);
});
