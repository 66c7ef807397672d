//! The 1.0 spool journal reader (what a migration reads): a journal from
//! random bytes must be read or refused, never panic or loop. The first input byte chooses raw bytes
//! after the file header, or records framed with valid lengths and
//! checksums (so the JSON inside is reached).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else { return };
    let mut journal = b"SMTPBSPL".to_vec();
    journal.extend_from_slice(&u32::from(*mode >> 4).to_le_bytes());
    journal.extend_from_slice(&0u32.to_le_bytes());
    if mode & 1 == 0 {
        journal.extend_from_slice(rest);
    } else {
        // Records: header JSON and body split at 0xFF bytes, alternately.
        let mut parts = rest.split(|b| *b == 0xFF);
        while let Some(header) = parts.next() {
            let body = parts.next().unwrap_or(&[]);
            let (hl, bl) = ((header.len() as u32).to_le_bytes(), (body.len() as u32).to_le_bytes());
            let mut h = crc32fast::Hasher::new();
            h.update(&hl);
            h.update(&bl);
            h.update(header);
            journal.extend_from_slice(&hl);
            journal.extend_from_slice(&bl);
            journal.extend_from_slice(&h.finalize().to_le_bytes());
            journal.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
            journal.extend_from_slice(header);
            journal.extend_from_slice(body);
        }
    }
    let path = std::env::temp_dir().join(format!("smtpbridge-fuzz-journal-{}.log", std::process::id()));
    std::fs::write(&path, &journal).expect("journal written");
    if let Ok(replayed) = smtpbridge::outbox::journal::read(&path) {
        for damage in &replayed.damage {
            assert!(damage.records >= 1, "damage is reported with the records it cost");
        }
    }
    let _ = std::fs::remove_file(&path);
});
