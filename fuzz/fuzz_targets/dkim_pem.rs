//! A DKIM key file (SMTPDkimKeyFile); a key that loads signs a message.
//! See smtpbridge::fuzzing::dkim_pem for the input's layout and what is checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smtpbridge::fuzzing::dkim_pem(data);
});
