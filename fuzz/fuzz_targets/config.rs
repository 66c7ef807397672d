//! `smtpb_config_import_keys` lines and `smtpb_config_load_json` text:
//! an error naming the key, or a configuration that round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smtpbridge::config::Config;

/// Exports `config`, loads the export, and checks that it exports the same.
fn round_trip(config: &Config) {
    let exported = config.export(|_| None);
    let json = serde_json::to_string(&exported).expect("an export serialises");
    let (loaded, _) = Config::from_json(&json).expect("exported configuration loads again");
    assert_eq!(loaded.export(|_| None), exported, "the export of the loaded configuration differs");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok((config, _)) = Config::new().import_keys(text) {
        round_trip(&config);
    }
    if let Ok((config, _)) = Config::from_json(text) {
        round_trip(&config);
    }
});
