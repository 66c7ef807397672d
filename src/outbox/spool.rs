//! The spool: every message and every change of its state, durable.
//!
//! One append-only journal, `data_dir/spool/journal.log`. A record is
//!
//! ```text
//! u32 header_len | u32 body_len | u32 header_crc | u32 body_crc | header (JSON) | body
//! ```
//!
//! (little-endian; `header_crc` covers both lengths and the header). A new
//! message is one record carrying its MIME bytes; a state change is a record
//! with the message's whole metadata and no body; the last record of a
//! message wins. Each append is written in one `write` and made durable
//! with `fdatasync` before the call returns, so a crash leaves at most a
//! torn record at the end, which the next open cuts off (keeping a copy of
//! the file first). Opening reads only the headers and skips the bodies; a
//! body's checksum is verified when the body is read for delivery.
//!
//! When more than half of a large journal is dead (bodies of messages sent
//! or cancelled, superseded metadata), open rewrites it with only what is
//! live: a new file, fsync, rename over the old, fsync of the folder.
//!
//! The journal starts with `SMTPBSPL` and a format number; a journal of a
//! newer format is refused and never rewritten.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Code, Error, Result};
use crate::fsutil;
use crate::status::Status;

const MAGIC: &[u8; 8] = b"SMTPBSPL";
/// The journal format this library writes.
pub(crate) const FORMAT: u32 = 1;
const FILE_HEADER: u64 = 16;
const RECORD_HEADER: usize = 16;
/// Journals smaller than this are never compacted.
const COMPACT_MIN_BYTES: u64 = 4 * 1024 * 1024;
/// The largest header accepted on reading (a damaged length is not trusted
/// with an allocation).
const MAX_HEADER: u32 = 16 * 1024 * 1024;

/// Everything the library keeps about a message besides its bytes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub status: Status,
    pub user: Option<String>,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    pub idempotency_key: Option<String>,
    /// The host asked for an archived copy.
    pub archive: bool,
    /// Set once the spool no longer holds the message's bytes.
    #[serde(default)]
    pub body_dropped: bool,
}

/// Where a message's bytes are.
#[derive(Clone, Debug)]
pub enum Body {
    /// In the journal at `offset`, `len` bytes with checksum `crc`.
    Journal { offset: u64, len: u64, crc: u32 },
    /// In memory (a client without data_dir).
    Memory(Arc<Vec<u8>>),
    /// Not kept: the message is final.
    None,
}

/// The journal of one client; `None` file for an in-memory client.
pub struct Spool {
    path: Option<PathBuf>,
    file: Option<File>,
    len: u64,
}

fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

fn encode(record: &Record, body: &[u8]) -> Result<Vec<u8>> {
    let header = serde_json::to_vec(record).map_err(|e| Error::internal(format!("spool record: {e}")))?;
    let hl = (header.len() as u32).to_le_bytes();
    let bl =
        u32::try_from(body.len()).map_err(|_| Error::message_error("the message is larger than 4 GiB"))?.to_le_bytes();
    let mut out = Vec::with_capacity(RECORD_HEADER + header.len() + body.len());
    out.extend_from_slice(&hl);
    out.extend_from_slice(&bl);
    out.extend_from_slice(&crc(&[&hl, &bl, &header]).to_le_bytes());
    out.extend_from_slice(&crc(&[body]).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    Ok(out)
}

impl Spool {
    /// Opens (or creates) the spool of `data_dir` and replays it: the last
    /// record of each message, with where its bytes are, in the order the
    /// messages were first written. `None` = an in-memory spool.
    pub fn open(data_dir: Option<&Path>) -> Result<(Spool, Vec<(Record, Body)>)> {
        let Some(dir) = data_dir else {
            return Ok((Spool { path: None, file: None, len: 0 }, Vec::new()));
        };
        let dir = dir.join("spool");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, &e))?;
        let path = dir.join("journal.log");
        if !path.exists() {
            let mut header = MAGIC.to_vec();
            header.extend_from_slice(&FORMAT.to_le_bytes());
            header.extend_from_slice(&0u32.to_le_bytes());
            fsutil::atomic_write(&path, &header, true)?;
        }
        let mut file =
            OpenOptions::new().read(true).write(true).open(&path).map_err(|e| Error::io("cannot open", &path, &e))?;
        let (records, good_len, dead) = replay(&mut file, &path)?;
        let actual = file.metadata().map_err(|e| Error::io("cannot read", &path, &e))?.len();
        if good_len < actual {
            // A torn or damaged tail: keep a copy, then cut it off.
            let copy = dir.join(format!("journal.log.damaged-{}", fsutil::unix_now()));
            std::fs::copy(&path, &copy).map_err(|e| Error::io("cannot copy", &path, &e))?;
            file.set_len(good_len).map_err(|e| Error::io("cannot truncate", &path, &e))?;
            file.sync_all().map_err(|e| Error::io("cannot sync", &path, &e))?;
        }
        let mut spool = Spool { path: Some(path), file: Some(file), len: good_len };
        let records =
            if spool.len > COMPACT_MIN_BYTES && dead * 2 > spool.len { spool.compact(records)? } else { records };
        Ok((spool, records))
    }

    fn append(&mut self, bytes: &[u8]) -> Result<u64> {
        let (Some(file), Some(path)) = (self.file.as_mut(), self.path.as_ref()) else {
            return Ok(0);
        };
        let offset = self.len;
        let result =
            file.seek(SeekFrom::Start(offset)).and_then(|_| file.write_all(bytes)).and_then(|_| file.sync_data());
        if let Err(e) = result {
            // Leave no half record behind for the next append to follow.
            let _ = file.set_len(offset);
            return Err(Error::io("cannot write the spool", path, &e));
        }
        self.len += bytes.len() as u64;
        Ok(offset)
    }

    /// Writes a new message with its bytes; durable when it returns.
    /// Returns where the bytes are kept, and the bytes themselves (not
    /// copied) for an attempt made at once.
    pub fn put(&mut self, record: &Record, body: Vec<u8>) -> Result<(Body, Arc<Vec<u8>>)> {
        let body = Arc::new(body);
        if self.file.is_none() {
            return Ok((Body::Memory(body.clone()), body));
        }
        let bytes = encode(record, &body)?;
        let offset = self.append(&bytes)?;
        let body_offset = offset + (bytes.len() - body.len()) as u64;
        Ok((Body::Journal { offset: body_offset, len: body.len() as u64, crc: crc(&[&body]) }, body))
    }

    /// Writes a message's new state; durable when it returns.
    pub fn update(&mut self, record: &Record) -> Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
        let bytes = encode(record, &[])?;
        self.append(&bytes).map(|_| ())
    }

    /// Reads a message's bytes, checking them against their checksum.
    pub fn read_body(&self, body: &Body) -> Result<Arc<Vec<u8>>> {
        match body {
            Body::Memory(bytes) => Ok(bytes.clone()),
            Body::None => Err(Error::internal("the message's bytes are no longer kept")),
            Body::Journal { offset, len, crc: expected } => {
                let (Some(file), Some(path)) = (self.file.as_ref(), self.path.as_ref()) else {
                    return Err(Error::internal("no spool file"));
                };
                let mut bytes = vec![0u8; *len as usize];
                read_exact_at(file, &mut bytes, *offset).map_err(|e| Error::io("cannot read the spool", path, &e))?;
                if crc(&[&bytes]) != *expected {
                    return Err(Error::new(Code::Io, format!("a message in the spool {} is damaged", path.display())));
                }
                Ok(Arc::new(bytes))
            }
        }
    }

    /// Rewrites the journal with only what is live.
    fn compact(&mut self, records: Vec<(Record, Body)>) -> Result<Vec<(Record, Body)>> {
        let path = self.path.clone().expect("compaction needs a file");
        let tmp = path.with_extension("compact");
        let mut out = fsutil::create_file(&tmp, true).map_err(|e| Error::io("cannot create", &tmp, &e))?;
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&FORMAT.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        let mut len = FILE_HEADER;
        let mut kept = Vec::with_capacity(records.len());
        let mut buffer = header;
        for (mut record, body) in records {
            let keep = record.status.state.keeps_body() && !matches!(body, Body::None);
            let bytes = match keep.then(|| self.read_body(&body)) {
                Some(Ok(bytes)) => bytes.to_vec(),
                Some(Err(e)) => {
                    // A damaged message must not keep the others from
                    // opening: it fails, saying why.
                    record.status.state = crate::status::State::Failed;
                    record.status.error_code = Code::Io;
                    record.status.error = Some(e.message().to_string());
                    Vec::new()
                }
                None => Vec::new(),
            };
            record.body_dropped = bytes.is_empty();
            let encoded = encode(&record, &bytes)?;
            let body_ref = if bytes.is_empty() {
                Body::None
            } else {
                let offset = len + (encoded.len() - bytes.len()) as u64;
                Body::Journal { offset, len: bytes.len() as u64, crc: crc(&[&bytes]) }
            };
            len += encoded.len() as u64;
            buffer.extend_from_slice(&encoded);
            if buffer.len() > 1 << 20 {
                out.write_all(&buffer).map_err(|e| Error::io("cannot write", &tmp, &e))?;
                buffer.clear();
            }
            kept.push((record, body_ref));
        }
        out.write_all(&buffer).and_then(|_| out.sync_all()).map_err(|e| Error::io("cannot write", &tmp, &e))?;
        drop(out);
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("cannot replace", &path, &e))?;
        fsutil::sync_dir(path.parent().expect("in spool/")).map_err(|e| Error::io("cannot sync", &path, &e))?;
        self.file = Some(
            OpenOptions::new().read(true).write(true).open(&path).map_err(|e| Error::io("cannot open", &path, &e))?,
        );
        self.len = len;
        Ok(kept)
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
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

/// Reads every record: the last state of each message, the length of the
/// good part of the file, and the bytes of superseded records.
/// What replay finds: the messages, the good length, the dead bytes.
type Replayed = (Vec<(Record, Body)>, u64, u64);

fn replay(file: &mut File, path: &Path) -> Result<Replayed> {
    let total = file.metadata().map_err(|e| Error::io("cannot read", path, &e))?.len();
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, &mut *file);
    let mut head = [0u8; FILE_HEADER as usize];
    reader.read_exact(&mut head).map_err(|e| Error::io("cannot read", path, &e))?;
    if &head[..8] != MAGIC {
        return Err(Error::new(Code::Io, format!("{} is not a smtpbridge spool", path.display())));
    }
    let format = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
    if format > FORMAT {
        return Err(Error::new(
            Code::Io,
            format!("the spool {} has format {format}; this library reads format {FORMAT} and older", path.display()),
        ));
    }
    let mut order: Vec<String> = Vec::new();
    let mut latest: std::collections::HashMap<String, (Record, Body, u64)> = std::collections::HashMap::new();
    let mut offset = FILE_HEADER;
    loop {
        if offset + RECORD_HEADER as u64 > total {
            break;
        }
        let mut rh = [0u8; RECORD_HEADER];
        if reader.read_exact(&mut rh).is_err() {
            break;
        }
        let word = |i: usize| u32::from_le_bytes(rh[i..i + 4].try_into().expect("4 bytes"));
        let (hl, bl, hcrc, bcrc) = (word(0), word(4), word(8), word(12));
        let end = offset + RECORD_HEADER as u64 + hl as u64 + bl as u64;
        if hl > MAX_HEADER || end > total {
            break;
        }
        let mut header = vec![0u8; hl as usize];
        if reader.read_exact(&mut header).is_err() || crc(&[&rh[0..4], &rh[4..8], &header]) != hcrc {
            break;
        }
        let Ok(record) = serde_json::from_slice::<Record>(&header) else { break };
        let body_offset = offset + RECORD_HEADER as u64 + hl as u64;
        if bl > 0 && reader.seek_relative(bl as i64).is_err() {
            break;
        }
        let header_size = RECORD_HEADER as u64 + hl as u64;
        let id = record.status.id.clone();
        match latest.get_mut(&id) {
            Some((old, body, old_header)) => {
                if bl > 0 {
                    *body = Body::Journal { offset: body_offset, len: bl as u64, crc: bcrc };
                }
                *old = record;
                *old_header = header_size;
            }
            None => {
                let body =
                    if bl > 0 { Body::Journal { offset: body_offset, len: bl as u64, crc: bcrc } } else { Body::None };
                order.push(id.clone());
                latest.insert(id, (record, body, header_size));
            }
        }
        offset = end;
    }
    let mut records = Vec::with_capacity(order.len());
    let mut live = 0u64;
    for id in order {
        let (record, body, header_size) = latest.remove(&id).expect("ordered ids are in the map");
        live += header_size;
        if let (Body::Journal { len, .. }, true) = (&body, record.status.state.keeps_body()) {
            live += len;
        }
        records.push((record, body));
    }
    let dead = (offset - FILE_HEADER).saturating_sub(live);
    Ok((records, offset, dead))
}
