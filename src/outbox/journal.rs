//! The version-1 spool journal, read once to migrate it into the store.
//!
//! Format 1 was one append-only file, `data_dir/spool/journal.log`:
//!
//! ```text
//! "SMTPBSPL" | u32 format | u32 0 | record*
//! record = u32 header_len | u32 body_len | u32 header_crc | u32 body_crc | header (JSON) | body
//! ```
//!
//! (little-endian; `header_crc` covers both lengths and the header; the
//! header is a [`Record`]; the last record of a message wins). Library 1.1
//! no longer writes it: [`read`] replays it for the migration.
//!
//! Damage is recovered past, not cut at: when a record does not check out,
//! the reader looks for the next position where a whole record does (its
//! lengths fit the file, its header starts with `{`, its CRC matches and
//! its JSON parses) and goes on from there, so one damaged byte costs at
//! most the record it is in. Each damaged region is reported with its
//! offset and the number of records it held (walked by the damaged
//! record's own lengths when they still lead to the next good record; at
//! least one). A body whose CRC fails is reported the same way; its
//! message is kept, `failed` with `SMTPB_ERR_IO`, since its bytes are gone.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use crate::error::{Code, Error, Result};
use crate::outbox::spool::Record;

pub(crate) const MAGIC: &[u8; 8] = b"SMTPBSPL";
/// The last journal format; this library reads it and older, never writes it.
pub(crate) const FORMAT: u32 = 1;
const FILE_HEADER: u64 = 16;
const RECORD_HEADER: u64 = 16;
/// The largest header accepted (a damaged length is not trusted with an
/// allocation).
const MAX_HEADER: u32 = 16 * 1024 * 1024;

/// A damaged region of the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Where the damage starts, in bytes from the start of the file.
    pub offset: u64,
    /// Records lost there (at least one).
    pub records: u64,
    /// Whether it is the end of the file (a torn last write).
    pub tail: bool,
}

/// What the journal holds: each message's last record and its bytes
/// (`None` when the journal no longer has them), in the order the messages
/// were first written, and the damage found.
pub struct Replayed {
    pub messages: Vec<(Record, Option<Vec<u8>>)>,
    pub damage: Vec<Damage>,
}

fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// Encodes one record as format 1 wrote it (for tests and fixtures).
pub fn encode(record: &Record, body: &[u8]) -> Vec<u8> {
    let header = serde_json::to_vec(record).expect("a record serialises");
    let hl = (header.len() as u32).to_le_bytes();
    let bl = (body.len() as u32).to_le_bytes();
    let mut out = Vec::with_capacity(16 + header.len() + body.len());
    out.extend_from_slice(&hl);
    out.extend_from_slice(&bl);
    out.extend_from_slice(&crc(&[&hl, &bl, &header]).to_le_bytes());
    out.extend_from_slice(&crc(&[body]).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    out
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// Where a message's bytes are: offset, length, CRC, and the offset of
/// the record holding them.
type BodyAt = (u64, u32, u32, u64);

/// A record header that checks out.
struct Good {
    record: Record,
    body_offset: u64,
    body_len: u32,
    body_crc: u32,
    end: u64,
}

/// The lengths at `offset`, if they fit the file.
fn lengths(file: &File, offset: u64, total: u64) -> Option<[u32; 4]> {
    if offset + RECORD_HEADER > total {
        return None;
    }
    let mut rh = [0u8; 16];
    read_at(file, &mut rh, offset).ok()?;
    let word = |i: usize| u32::from_le_bytes(rh[i..i + 4].try_into().expect("4 bytes"));
    let w = [word(0), word(4), word(8), word(12)];
    let end = offset + RECORD_HEADER + w[0] as u64 + w[1] as u64;
    (w[0] >= 2 && w[0] <= MAX_HEADER && end <= total).then_some(w)
}

/// The record at `offset`, if it is whole and its header checks out.
fn record_at(file: &File, offset: u64, total: u64) -> Option<Good> {
    let [hl, bl, hcrc, bcrc] = lengths(file, offset, total)?;
    let mut header = vec![0u8; hl as usize];
    read_at(file, &mut header, offset + RECORD_HEADER).ok()?;
    if header[0] != b'{' || crc(&[&hl.to_le_bytes(), &bl.to_le_bytes(), &header]) != hcrc {
        return None;
    }
    let record = serde_json::from_slice::<Record>(&header).ok()?;
    let body_offset = offset + RECORD_HEADER + hl as u64;
    Some(Good { record, body_offset, body_len: bl, body_crc: bcrc, end: body_offset + bl as u64 })
}

/// The next offset after `from` where a good record starts, if any.
fn resync(file: &File, from: u64, total: u64) -> Option<(u64, Good)> {
    const WINDOW: usize = 64 * 1024;
    let mut start = from;
    while start + RECORD_HEADER < total {
        let len = (WINDOW as u64).min(total - start) as usize;
        let mut buf = vec![0u8; len];
        read_at(file, &mut buf, start).ok()?;
        // A header starts with `{` 16 bytes after the record start.
        for i in 0..len.saturating_sub(RECORD_HEADER as usize) {
            if buf[i + RECORD_HEADER as usize] != b'{' {
                continue;
            }
            let at = start + i as u64;
            if let Some(good) = record_at(file, at, total) {
                return Some((at, good));
            }
        }
        start += len.saturating_sub(RECORD_HEADER as usize).max(1) as u64;
    }
    None
}

/// How many records the damaged region `[from, to)` held: the number of
/// records its lengths walk, when they lead exactly to the next good
/// record; else one.
fn records_in(file: &File, from: u64, to: u64) -> u64 {
    let mut count = 0;
    let mut at = from;
    while let Some([hl, bl, _, _]) = lengths(file, at, to) {
        at += RECORD_HEADER + hl as u64 + bl as u64;
        count += 1;
        if at == to {
            return count;
        }
    }
    1
}

/// Reads the format number of the journal at `path` (checking its magic).
pub fn format_of(path: &Path) -> Result<u32> {
    let file = File::open(path).map_err(|e| Error::io("cannot open", path, &e))?;
    let mut head = [0u8; FILE_HEADER as usize];
    read_at(&file, &mut head, 0)
        .map_err(|_| Error::new(Code::Io, format!("{} is not a smtpbridge spool (too short)", path.display())))?;
    if &head[..8] != MAGIC {
        return Err(Error::new(Code::Io, format!("{} is not a smtpbridge spool", path.display())));
    }
    Ok(u32::from_le_bytes(head[8..12].try_into().expect("4 bytes")))
}

/// Replays the journal at `path`, recovering past damage, and reads the
/// bytes of every message that still needs them (checking their CRC).
pub fn read(path: &Path) -> Result<Replayed> {
    let format = format_of(path)?;
    if format > FORMAT {
        return Err(Error::new(
            Code::Io,
            format!("the spool {} has format {format}; this library reads format {FORMAT} and older", path.display()),
        ));
    }
    let file = File::open(path).map_err(|e| Error::io("cannot open", path, &e))?;
    let total = file.metadata().map_err(|e| Error::io("cannot read", path, &e))?.len();
    let mut order: Vec<String> = Vec::new();
    // id -> (last record, where its bytes are)
    let mut latest: HashMap<String, (Record, Option<BodyAt>)> = HashMap::new();
    let mut damage = Vec::new();
    let mut offset = FILE_HEADER;
    while offset < total {
        let (at, good) = match record_at(&file, offset, total) {
            Some(good) => (offset, good),
            None => match resync(&file, offset + 1, total) {
                Some((at, good)) => {
                    damage.push(Damage { offset, records: records_in(&file, offset, at), tail: false });
                    (at, good)
                }
                None => {
                    damage.push(Damage { offset, records: 1, tail: true });
                    break;
                }
            },
        };
        let body = (good.body_len > 0).then_some((good.body_offset, good.body_len, good.body_crc, at));
        let id = good.record.status.id.clone();
        match latest.get_mut(&id) {
            Some((old, old_body)) => {
                *old = good.record;
                if body.is_some() {
                    *old_body = body;
                }
            }
            None => {
                order.push(id.clone());
                latest.insert(id, (good.record, body));
            }
        }
        offset = good.end;
    }
    let mut messages = Vec::with_capacity(order.len());
    for id in order {
        let (mut record, body) = latest.remove(&id).expect("ordered ids are in the map");
        let mut bytes = None;
        if let (Some((at, len, expected, record_offset)), true) = (body, record.status.state.keeps_body()) {
            let mut buf = vec![0u8; len as usize];
            let ok = read_at(&file, &mut buf, at).is_ok() && crc(&[&buf]) == expected;
            if ok {
                bytes = Some(buf);
            } else {
                damage.push(Damage { offset: record_offset, records: 1, tail: false });
                record.status.state = crate::status::State::Failed;
                record.status.error_code = Code::Io;
                record.status.next_attempt_at = None;
                record.status.error = Some(format!(
                    "the message's bytes in the spool {} were damaged (record at offset {record_offset})",
                    path.display()
                ));
                record.body_dropped = true;
            }
        }
        if bytes.is_none() {
            record.body_dropped = true;
            if record.status.state.keeps_body() && record.status.state != crate::status::State::Failed {
                // Its first record (with the bytes) was in a damaged region.
                record.status.state = crate::status::State::Failed;
                record.status.error_code = Code::Io;
                record.status.next_attempt_at = None;
                record.status.error = Some(format!("the message's bytes in the spool {} were damaged", path.display()));
            }
        }
        messages.push((record, bytes));
    }
    damage.sort_by_key(|d| d.offset);
    Ok(Replayed { messages, damage })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 50 queued messages written by library 1.0 (tests/data).
    const FIFTY: &[u8] = include_bytes!("../../tests/data/journal-v1-50.log");

    /// The offsets where each record starts, and the end.
    fn record_starts(bytes: &[u8]) -> Vec<usize> {
        let mut at = FILE_HEADER as usize;
        let mut starts = Vec::new();
        while at + 16 <= bytes.len() {
            starts.push(at);
            let hl = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let bl = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            at += 16 + hl + bl;
        }
        starts.push(at);
        starts
    }

    fn replay(bytes: &[u8], dir: &Path) -> Replayed {
        let path = dir.join("journal.log");
        std::fs::write(&path, bytes).unwrap();
        read(&path).unwrap()
    }

    #[test]
    fn the_sound_fixture_replays_whole() {
        let dir = tempdir();
        let r = replay(FIFTY, &dir);
        assert_eq!(r.messages.len(), 50);
        assert!(r.damage.is_empty());
        assert!(r
            .messages
            .iter()
            .all(|(rec, body)| rec.status.state == crate::status::State::Queued && body.is_some()));
    }

    /// Flips each byte of the first three records in turn: every other
    /// record is recovered intact, and exactly one record is reported lost
    /// at the offset of the damaged one.
    #[test]
    fn one_flipped_byte_costs_only_the_record_it_is_in() {
        let dir = tempdir();
        let sound = replay(FIFTY, &dir);
        let starts = record_starts(FIFTY);
        assert_eq!(starts.len(), 51);
        let ids: Vec<String> = sound.messages.iter().map(|(r, _)| r.status.id.clone()).collect();
        for byte in starts[0]..starts[3] {
            let record = starts.iter().rposition(|s| *s <= byte).unwrap();
            let mut damaged = FIFTY.to_vec();
            damaged[byte] ^= 0x5a;
            let r = replay(&damaged, &dir);
            let lost: u64 = r.damage.iter().map(|d| d.records).sum();
            assert_eq!(lost, 1, "byte {byte} (record {record}): {:?}", r.damage);
            assert_eq!(r.damage[0].offset, starts[record] as u64, "byte {byte}");
            assert!(!r.damage[0].tail, "byte {byte}");
            // Every other message is there, queued, with its bytes intact.
            for (n, id) in ids.iter().enumerate() {
                let found = r.messages.iter().find(|(rec, _)| &rec.status.id == id);
                if n == record {
                    // Gone, or kept as failed when only its bytes were hit.
                    if let Some((rec, body)) = found {
                        assert_eq!(rec.status.state, crate::status::State::Failed, "byte {byte}");
                        assert!(body.is_none());
                    }
                    continue;
                }
                let (rec, body) = found.unwrap_or_else(|| panic!("byte {byte}: message {n} lost"));
                assert_eq!(rec.status.state, crate::status::State::Queued);
                assert_eq!(body.as_ref(), sound.messages[n].1.as_ref(), "byte {byte}: message {n}'s bytes");
            }
        }
    }

    #[test]
    fn a_torn_tail_is_reported_as_one_record() {
        let dir = tempdir();
        let starts = record_starts(FIFTY);
        let cut = (starts[49] + starts[50]) / 2;
        let r = replay(&FIFTY[..cut], &dir);
        assert_eq!(r.messages.len(), 49);
        assert_eq!(r.damage, vec![Damage { offset: starts[49] as u64, records: 1, tail: true }]);
    }

    #[test]
    fn a_wiped_region_counts_the_records_it_held() {
        let dir = tempdir();
        let starts = record_starts(FIFTY);
        let mut damaged = FIFTY.to_vec();
        // Damage the header CRCs of records 5, 6 and 7: their lengths still
        // walk from one to the next.
        for r in 5..8 {
            damaged[starts[r] + 8] ^= 0xff;
        }
        let r = replay(&damaged, &dir);
        assert_eq!(r.messages.len(), 47);
        assert_eq!(r.damage, vec![Damage { offset: starts[5] as u64, records: 3, tail: false }]);
    }

    fn tempdir() -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("smtpb-journal-{}-{}", std::process::id(), crate::status::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
