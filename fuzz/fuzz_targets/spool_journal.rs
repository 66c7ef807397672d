//! The spool journal reader: a journal from random bytes must open or be
//! refused, never panic or loop. The first input byte chooses raw bytes
//! after the file header, or records framed with valid lengths and
//! checksums (so the JSON inside is reached).
#![no_main]
use libfuzzer_sys::fuzz_target;
use smtpbridge::outbox::spool::Spool;

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
    let dir = std::env::temp_dir().join(format!("smtpbridge-fuzz-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("spool")).expect("temp dir");
    std::fs::write(dir.join("spool").join("journal.log"), &journal).expect("journal written");
    if let Ok((spool, records)) = Spool::open(Some(&dir)) {
        for (_, body) in &records {
            let _ = spool.read_body(body);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
});
