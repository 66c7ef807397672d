//! `smtpb_config_import_keys` lines and `smtpb_config_load_json` text:
//! an error naming the key, or a configuration that round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smtpbridge::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok((config, _)) = Config::new().import_keys(text) {
        let json = config.to_json(|_| None).to_string();
        Config::from_json(&json).expect("exported configuration loads again");
    }
    if let Ok((config, _)) = Config::from_json(text) {
        let json = config.to_json(|_| None).to_string();
        Config::from_json(&json).expect("exported configuration loads again");
    }
});
