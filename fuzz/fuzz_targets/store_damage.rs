//! The store's reading path on damaged files: what `smtpb_client_open`
//! checks and reads when the WAL, its index or the database itself is
//! damaged must be read, skipped or refused, never panic or loop. The
//! first input byte chooses: WAL and wal-index bytes for the WAL check
//! (even), or a real store (a few queued messages, made once) whose bytes
//! are XORed at the offsets the input names, then opened and read (odd).
#![no_main]
use libfuzzer_sys::fuzz_target;
use smtpbridge::outbox::store::{Query, Store};
use smtpbridge::outbox::wal;
use std::path::PathBuf;
use std::sync::OnceLock;

static TEMPLATE: OnceLock<Vec<u8>> = OnceLock::new();

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("smtpbridge-fuzz-store-{name}-{}", std::process::id()))
}

/// The database of a data_dir with queued messages, closed cleanly.
fn template() -> Vec<u8> {
    let dir = scratch("template");
    let _ = std::fs::remove_dir_all(&dir);
    {
        let client = smtpbridge::Client::open(Some(&dir), Some("fuzz"), 1).expect("client");
        for (key, value) in [("SMTPServer", "127.0.0.1"), ("SMTPServerPort", "9"), ("SMTPServerEncryption", "None")] {
            client.config_set(key, Some(value)).expect("config");
        }
        for n in 0..8 {
            let message = format!(
                r#"{{"from": "a@example.com", "to": ["b{n}@example.com"], "subject": "s{n}", "text": "t{n}", "reference": "r{n}"}}"#
            );
            client.enqueue(&message).expect("enqueue");
        }
    }
    let db = std::fs::read(dir.join("spool").join("outbox.db")).expect("store");
    let _ = std::fs::remove_dir_all(&dir);
    db
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        let (wal_bytes, shm) = rest.split_at(rest.len() / 2);
        let page_size = 512usize << (mode >> 5);
        for c in [wal::check(wal_bytes, Some(shm), Some(page_size)), wal::check(rest, None, None)] {
            assert!(c.lost == 0 || !c.reason.is_empty(), "a loss is reported with its reason");
        }
        return;
    }
    let mut db = TEMPLATE.get_or_init(template).clone();
    for change in rest.chunks_exact(4) {
        let at = u32::from_le_bytes([change[0], change[1], change[2], 0]) as usize % db.len();
        db[at] ^= change[3];
    }
    let dir = scratch("case");
    let spool = dir.join("spool");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&spool).expect("spool");
    std::fs::write(spool.join("outbox.db"), &db).expect("store written");
    if let Ok(opened) = Store::open(Some(&dir)) {
        let store = opened.store;
        let listed = store.list(None).map(|l| l.len());
        let _ = store.query(&Query { limit: 3, ..Query::default() });
        let _ = store.counts();
        if let (Ok(n), Ok(active)) = (listed, store.list(Some(smtpbridge::status::State::Queued))) {
            assert!(active.len() <= n, "a state's list is part of the whole");
        }
        assert!(store.damaged_records() >= 0);
    }
    let _ = std::fs::remove_dir_all(&dir);
});
