//! The store's write-ahead log, checked before SQLite opens it.
//!
//! SQLite replays `outbox.db-wal` up to the first frame whose salts or
//! cumulative checksum fail and ignores everything after it without a
//! word: one flipped byte, a truncated or a deleted WAL silently drops
//! every later transaction (acknowledged messages included). So the
//! library reads the WAL itself first, as SQLite's recovery would
//! (<https://www.sqlite.org/fileformat2.html#walformat>), and compares
//! what SQLite will keep with what was committed:
//!
//! - Committed frames after the break (a frame that fails while later
//!   frames of the same WAL generation carry commit marks) were lost.
//! - The wal-index (`outbox.db-shm`), which SQLite leaves behind when a
//!   process dies, records how many frames were committed (`mxFrame`),
//!   how many of them are already in the database (`nBackfill`) and the
//!   salts of the WAL: frames in between that SQLite will not replay were
//!   lost, also when the WAL's header is damaged, the WAL is truncated or
//!   deleted. The wal-index is the sidecar: the library keeps no second
//!   copy of it.
//!
//! What is lost is counted in transactions (each is one message's new
//! record or one change of state) when the frames are there to count,
//! else each missing frame counts as one: an upper bound, said as such.
//! A torn last transaction of a crash (never acknowledged: its commit was
//! not synced) is not damage.

use std::path::Path;

/// WAL header and frame header sizes.
const WAL_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;
/// The wal-index header (two copies of 48 bytes) and `nBackfill` after them.
const SHM_HEADER: usize = 48;
const SHM_BACKFILL: usize = 96;
const WAL_VERSION: u32 = 3_007_000;

/// What the check found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WalCheck {
    /// Frames SQLite will replay (up to its last valid commit).
    pub replayed_frames: u64,
    /// Transactions committed but not replayed: lost.
    pub lost: u64,
    /// Whether `lost` is an upper bound (frames missing, not counted).
    pub upper_bound: bool,
    /// What is wrong, for the warning; empty when nothing was lost.
    pub reason: String,
}

/// The wal-index's view: the last committed frame, the frames already
/// copied into the database, the salts of its WAL generation, the page size.
#[derive(Debug, Clone, Copy)]
struct Index {
    max_frame: u64,
    backfilled: u64,
    salts: [u8; 8],
    page_size: usize,
}

fn u32_be(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u32_ne(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing
/// from `s`; words big-endian when `big`, else little-endian.
fn checksum(big: bool, data: &[u8], mut s: (u32, u32)) -> (u32, u32) {
    let word = |c: &[u8]| {
        let b: [u8; 4] = c.try_into().expect("4 bytes");
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    for pair in data.chunks_exact(8) {
        s.0 = s.0.wrapping_add(word(&pair[..4])).wrapping_add(s.1);
        s.1 = s.1.wrapping_add(word(&pair[4..])).wrapping_add(s.0);
    }
    s
}

fn valid_page_size(n: usize) -> bool {
    n.is_power_of_two() && (512..=65536).contains(&n)
}

/// The wal-index header, if it is whole (both copies equal, its checksum
/// right, initialised). Native byte order: it never leaves the machine.
fn read_index(shm: &[u8]) -> Option<Index> {
    if shm.len() < SHM_BACKFILL + 4 || shm[..SHM_HEADER] != shm[SHM_HEADER..2 * SHM_HEADER] {
        return None;
    }
    let h = &shm[..SHM_HEADER];
    if u32_ne(h, 0) != WAL_VERSION || h[12] != 1 {
        return None;
    }
    let native = |c: &[u8]| u32::from_ne_bytes(c.try_into().expect("4 bytes"));
    let mut s = (0u32, 0u32);
    for pair in h[..40].chunks_exact(8) {
        s.0 = s.0.wrapping_add(native(&pair[..4])).wrapping_add(s.1);
        s.1 = s.1.wrapping_add(native(&pair[4..])).wrapping_add(s.0);
    }
    if s != (u32_ne(h, 40), u32_ne(h, 44)) {
        return None;
    }
    let encoded = u16::from_ne_bytes([h[14], h[15]]) as usize;
    // 65536 is stored as 1 (it does not fit in 16 bits).
    let page_size = (encoded & 0xff00) | ((encoded & 1) << 16);
    Some(Index {
        max_frame: u64::from(u32_ne(h, 16)),
        backfilled: u64::from(u32_ne(shm, SHM_BACKFILL)),
        salts: h[32..40].try_into().expect("8 bytes"),
        page_size,
    })
}

/// A frame's header fields: page number, commit mark, salts.
struct Frame<'a> {
    page: u32,
    commit: bool,
    salts: &'a [u8],
    header: &'a [u8],
    body: &'a [u8],
}

fn frame(wal: &[u8], page_size: usize, n: u64) -> Option<Frame<'_>> {
    // Checked: a 32-bit build with a damaged index must not wrap.
    let len = FRAME_HEADER + page_size;
    let at = usize::try_from(n).ok()?.checked_mul(len)?.checked_add(WAL_HEADER)?;
    let bytes = wal.get(at..at.checked_add(len)?)?;
    Some(Frame {
        page: u32_be(bytes, 0),
        commit: u32_be(bytes, 4) != 0,
        salts: &bytes[8..16],
        header: &bytes[..FRAME_HEADER],
        body: &bytes[FRAME_HEADER..],
    })
}

/// Checks `wal` (the bytes of `outbox.db-wal`, empty when there is none)
/// against `shm` (those of `outbox.db-shm`, if any) and the database's
/// page size (`db_page_size`, for a WAL whose header is damaged).
pub fn check(wal: &[u8], shm: Option<&[u8]>, db_page_size: Option<usize>) -> WalCheck {
    let index = shm.and_then(read_index);
    // SQLite's own reading: the header, then frames while valid.
    let header_ok = wal.len() >= WAL_HEADER && {
        let magic = u32_be(wal, 0);
        let page_size = u32_be(wal, 8) as usize;
        (magic & !1) == 0x377f_0682
            && u32_be(wal, 4) == WAL_VERSION
            && valid_page_size(page_size)
            && checksum(magic & 1 == 1, &wal[..24], (0, 0)) == (u32_be(wal, 24), u32_be(wal, 28))
    };
    let mut out = WalCheck::default();
    let (page_size, salts, mut broken_at) = if header_ok {
        let big = u32_be(wal, 0) & 1 == 1;
        let page_size = u32_be(wal, 8) as usize;
        let salts: [u8; 8] = wal[16..24].try_into().expect("8 bytes");
        let mut s = (u32_be(wal, 24), u32_be(wal, 28));
        let mut n = 0u64;
        while let Some(f) = frame(wal, page_size, n) {
            if f.salts != salts || f.page == 0 {
                break;
            }
            let next = checksum(big, f.body, checksum(big, &f.header[..8], s));
            if next != (u32_be(f.header, 16), u32_be(f.header, 20)) {
                break;
            }
            s = next;
            n += 1;
            if f.commit {
                out.replayed_frames = n;
            }
        }
        (page_size, salts, out.replayed_frames)
    } else {
        // Nothing of this WAL is replayed: name its generation by the
        // wal-index, else by what its header still says.
        let page_size = index.map(|i| i.page_size).filter(|p| valid_page_size(*p)).or(db_page_size);
        let Some(page_size) = page_size else {
            if wal.len() > WAL_HEADER {
                out.lost = 1;
                out.upper_bound = true;
                out.reason = "its header is damaged and the page size is unknown".into();
            }
            return out;
        };
        let salts = match (index, wal.get(16..24)) {
            (Some(i), _) => i.salts,
            (None, Some(s)) => s.try_into().expect("8 bytes"),
            (None, None) => [0; 8],
        };
        (page_size, salts, 0)
    };
    // Committed frames past what SQLite replays: by the wal-index when it
    // belongs to this WAL's generation or the header is gone, else by the
    // commit marks still in the file.
    let index = index.filter(|i| i.salts == salts || !header_ok);
    let (from, to) = match index {
        Some(i) => (broken_at.max(i.backfilled), i.max_frame),
        None => (broken_at, u64::MAX),
    };
    let mut counted_to = from;
    let mut missing = 0u64;
    let mut n = from;
    while n < to {
        match frame(wal, page_size, n) {
            Some(f) => {
                if f.commit && f.salts == salts {
                    out.lost += 1;
                    counted_to = n + 1;
                }
            }
            None if index.is_some() => {
                missing = to - n;
                break;
            }
            None => break,
        }
        n += 1;
    }
    if let Some(i) = index {
        // Frames the wal-index counts past the last commit mark found:
        // their marks are damaged or the frames gone.
        if missing == 0 && counted_to < i.max_frame && out.lost == 0 && from < i.max_frame {
            out.lost = 1;
        }
        if missing > 0 {
            out.lost += missing;
            out.upper_bound = true;
        }
    }
    if out.lost > 0 {
        broken_at = broken_at.max(index.map_or(0, |i| i.backfilled));
        out.reason = if !header_ok && wal.len() < WAL_HEADER {
            "it is missing or shorter than its header while it held committed transactions".into()
        } else if !header_ok {
            "its header is damaged".into()
        } else if missing > 0 {
            format!("it ends after frame {} of {} committed", wal_frames(wal, page_size), to)
        } else {
            format!("a frame after frame {broken_at} is damaged")
        };
    }
    out
}

/// Whole frames in `wal`.
fn wal_frames(wal: &[u8], page_size: usize) -> u64 {
    (wal.len().saturating_sub(WAL_HEADER) / (FRAME_HEADER + page_size)) as u64
}

/// [`check`] on the files beside the database `db` (`<db>-wal`,
/// `<db>-shm`); `None` when there is neither.
pub fn check_files(db: &Path) -> std::io::Result<Option<WalCheck>> {
    let sibling = |suffix: &str| super::damage::sibling(db, suffix);
    let read = |p: &Path| match std::fs::read(p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    };
    let wal = read(&sibling("-wal"))?;
    let shm = read(&sibling("-shm"))?;
    if wal.is_none() && shm.is_none() {
        return Ok(None);
    }
    Ok(Some(check(wal.as_deref().unwrap_or(&[]), shm.as_deref(), db_page_size(db))))
}

/// The page size in the database's header (bytes 16..18, 1 = 65536).
pub fn db_page_size(db: &Path) -> Option<usize> {
    use std::io::Read;
    let mut head = [0u8; 18];
    std::fs::File::open(db).and_then(|mut f| f.read_exact(&mut head)).ok()?;
    let n = match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65536,
        n => n as usize,
    };
    valid_page_size(n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    /// A WAL with `commits` transactions and the wal-index SQLite left
    /// (the connection is leaked, as a killed process leaves them).
    fn make(commits: usize) -> (std::path::PathBuf, Vec<u8>, Vec<u8>, usize) {
        let dir = std::env::temp_dir().join(format!("smtpb-wal-{}-{}", std::process::id(), crate::status::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("t.db");
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        for n in 0..commits {
            conn.execute("INSERT INTO t VALUES (?1)", [n as i64]).unwrap();
        }
        let wal = std::fs::read(dir.join("t.db-wal")).unwrap();
        let shm = std::fs::read(dir.join("t.db-shm")).unwrap();
        std::mem::forget(conn);
        let page = db_page_size(&db).unwrap();
        (dir, wal, shm, page)
    }

    #[test]
    fn a_sound_wal_loses_nothing_and_is_replayed_whole() {
        let (_d, wal, shm, page) = make(5);
        let c = check(&wal, Some(&shm), Some(page));
        assert_eq!((c.lost, c.upper_bound), (0, false), "{c:?}");
        assert_eq!(c.replayed_frames, wal_frames(&wal, page));
        assert_eq!(check(&wal, None, Some(page)).lost, 0);
    }

    #[test]
    fn a_flipped_byte_anywhere_in_a_frame_is_found_with_or_without_the_index() {
        let (_d, wal, shm, page) = make(6);
        let frame_len = FRAME_HEADER + page;
        // In the page data, the checksum and the salts of each frame but the last.
        let frames = wal_frames(&wal, page) as usize;
        for n in 0..frames - 1 {
            for offset in [0, 5, 9, 13, 17, 21, FRAME_HEADER + 7, frame_len - 1] {
                let mut damaged = wal.clone();
                damaged[WAL_HEADER + n * frame_len + offset] ^= 0x10;
                let c = check(&damaged, Some(&shm), Some(page));
                assert!(c.lost >= 1, "frame {n} offset {offset}: {c:?}");
                assert!(check(&damaged, None, Some(page)).lost >= 1, "frame {n} offset {offset}, no index");
            }
        }
        // The last frame: only the wal-index knows it was committed.
        let mut damaged = wal.clone();
        damaged[WAL_HEADER + (frames - 1) * frame_len + FRAME_HEADER + 3] ^= 1;
        assert_eq!(check(&damaged, Some(&shm), Some(page)).lost, 1);
    }

    #[test]
    fn a_damaged_header_truncated_or_deleted_wal_is_found_by_the_index() {
        let (_d, wal, shm, page) = make(4);
        for at in [0, 3, 8, 12, 16, 20, 24, 31] {
            let mut damaged = wal.clone();
            damaged[at] ^= 0x04;
            let c = check(&damaged, Some(&shm), Some(page));
            assert_eq!(c.lost, 4 + 1, "header byte {at}: {c:?}"); // the table's creation and 4 rows
            assert!(c.reason.contains("header"), "{c:?}");
        }
        let c = check(&wal[..wal.len() - 100], Some(&shm), Some(page));
        assert!(c.lost >= 1 && c.upper_bound, "{c:?}");
        let c = check(&[], Some(&shm), Some(page));
        assert!(c.lost >= 5 && c.upper_bound, "{c:?}");
        assert!(c.reason.contains("missing"), "{c:?}");
    }

    #[test]
    fn a_torn_uncommitted_tail_is_not_damage() {
        let (_d, wal, shm, page) = make(3);
        let mut torn = wal.clone();
        torn.extend_from_slice(&wal[WAL_HEADER..WAL_HEADER + 100]);
        assert_eq!(check(&torn, Some(&shm), Some(page)).lost, 0);
        assert_eq!(check(&torn, None, Some(page)).lost, 0);
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in [0, 1, 31, 32, 33, 600, 5000] {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = check(&bytes, Some(&bytes), Some(512));
            let _ = check(&bytes, None, None);
        }
    }
}
