//! credentials.json as the library opens it, every credential read back (stores of over 1000 PBKDF2 iterations skipped).
//! See smtpbridge::fuzzing::credentials for the input's layout and what is checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smtpbridge::fuzzing::credentials(data);
});
