//! qyl's own write-ahead journal, so DuckDB can run without one.
//!
//! Measured (BENCHMARKS.md, issue 15): DuckDB's WAL was the largest per-row
//! cost a commit could shed, and every commit waits while a checkpoint runs
//! (1–2 s per 10 s of data under load), which set the tail of export
//! latency. So a database file is attached with DuckDB's WAL off
//! (`Database::open_without_wal`) and the writer keeps this journal
//! instead: each job's batch is appended here and fsynced, in groups, by the
//! journal thread, which then answers the exports (they are durable) and
//! hands the jobs on to the writer thread. Each commit records the last
//! journal number it holds (`journal_watermark`); after a checkpoint the
//! segments holding only older entries are deleted; at start the entries
//! after the watermark (what a crash left out of the file) are committed
//! again before anything else.
//!
//! Layout: `<database>.journal/<first number>.seg`, files of entries
//! `[payload length u32][crc32 u32][journal number u64][payload]` (little
//! endian; the checksum covers number and payload), the payload a batch in
//! `codec`'s format. A torn or corrupt entry ends its segment: it was never
//! answered, as its fsync did not complete.

pub(crate) mod codec;
pub(super) mod thread;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::model::Batch;

/// A segment is closed and a new one started past this size, so old
/// entries can be deleted a file at a time.
const SEGMENT_BYTES: u64 = 64 << 20;
const HEADER: usize = 16;
/// No batch the queue admits comes near this; a larger length is corruption.
const MAX_ENTRY: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The journal's directory for a database file.
pub fn dir_for(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// The open journal: the segment being appended to and the entries
/// gathered for the next [`Journal::sync`].
pub struct Journal {
    dir: PathBuf,
    file: File,
    written: u64,
    /// [`SEGMENT_BYTES`], smaller in tests.
    segment_bytes: u64,
    next: u64,
    pending: Vec<u8>,
}

impl Journal {
    /// Opens `dir` for appending entries numbered from `next` (past every
    /// entry already there; see [`replay`]), in a new segment.
    pub fn open(dir: &Path, next: u64) -> Result<Journal, JournalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let file = create_segment(dir, next)?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            file,
            written: 0,
            segment_bytes: SEGMENT_BYTES,
            next,
            pending: Vec::with_capacity(1 << 20),
        })
    }

    /// Adds `batch` to the next sync; returns its journal number.
    pub fn append(&mut self, batch: &Batch) -> u64 {
        let number = self.next;
        self.next += 1;
        encode_entry(number, batch, &mut self.pending);
        number
    }

    /// Writes what was appended since the last sync and waits until it is
    /// on disk. After a failure the segment may end in a torn entry, so the
    /// next entries go to a new one; the failed entries' numbers are not
    /// reused.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self
            .file
            .write_all(&self.pending)
            .and_then(|()| self.file.sync_data());
        let len = self.pending.len() as u64;
        self.pending.clear();
        if let Err(e) = result {
            // The failed entries were refused: cut them off so a replay
            // cannot bring them back (best effort; the segment is left).
            let _ = self.file.set_len(self.written);
            self.file = create_segment(&self.dir, self.next)?;
            self.written = 0;
            return Err(io_err(&self.dir)(e));
        }
        self.written += len;
        if self.written >= self.segment_bytes {
            self.file = create_segment(&self.dir, self.next)?;
            self.written = 0;
        }
        Ok(())
    }
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.seg")
}

fn create_segment(dir: &Path, first: u64) -> Result<File, JournalError> {
    let path = dir.join(segment_name(first));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    // The new name must survive a crash too, or its entries would be lost
    // with it.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(file)
}

/// The segments in `dir` by first entry number, oldest first.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((first, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// The file in a journal's folder naming the database it belongs to.
const OWNER: &str = "database-id";

/// Makes `dir` the journal of the database with id `database_id`. A journal
/// that belongs to another database (a crash left it, then the database
/// file was deleted and created anew) would replay that database's batches
/// into this one: it is renamed aside (returned) instead, kept for whoever
/// wants it.
pub fn claim(dir: &Path, database_id: &str) -> Result<Option<PathBuf>, JournalError> {
    let owner = dir.join(OWNER);
    let mut aside = None;
    match fs::read_to_string(&owner) {
        Ok(found) if found.trim() == database_id => return Ok(None),
        Ok(_) => {
            let mut name = dir.as_os_str().to_owned();
            name.push(format!(".orphaned-{}", crate::model::now_unix_nano()));
            let to = PathBuf::from(name);
            fs::rename(dir, &to).map_err(io_err(dir))?;
            aside = Some(to);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&owner)(e)),
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut file = File::create(&owner).map_err(io_err(&owner))?;
    file.write_all(database_id.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err(&owner))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(aside)
}

/// The size of every segment in `dir` and of the batches held there (0
/// when there is none).
pub fn bytes_on_disk(dir: &Path) -> u64 {
    [segments(dir), held(dir)]
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|(_, p)| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// What [`replay`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Entries after the watermark, handed to the callback.
    pub entries: u64,
    /// Entries that could not be decoded (a newer format, a bug): skipped.
    pub undecodable: u64,
    /// Segments that ended in a torn or corrupt entry.
    pub torn: u64,
    /// One past the highest entry number seen: where numbering continues.
    pub next: u64,
}

/// Hands every entry numbered after `watermark` to `apply`, oldest first.
pub fn replay(
    dir: &Path,
    watermark: u64,
    mut apply: impl FnMut(u64, Batch) -> Result<(), JournalError>,
) -> Result<Replayed, JournalError> {
    let mut out = Replayed {
        next: watermark.saturating_add(1),
        ..Replayed::default()
    };
    for (_, path) in segments(dir)? {
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_err(&path))?;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let Some((number, payload, after)) = entry(rest) else {
                out.torn += 1;
                tracing::warn!(segment = %path.display(), "journal segment ends in a torn entry (never answered); ignored");
                break;
            };
            rest = after;
            out.next = out.next.max(number.saturating_add(1));
            if number <= watermark {
                continue;
            }
            match codec::decode_batch(payload) {
                Ok(batch) => {
                    out.entries += 1;
                    apply(number, batch)?;
                }
                Err(e) => {
                    out.undecodable += 1;
                    tracing::error!(entry = number, error = %e, "journal entry cannot be decoded; skipped");
                }
            }
        }
    }
    Ok(out)
}

/// Appends entry `number` holding `batch` to `out`.
fn encode_entry(number: u64, batch: &Batch, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&number.to_le_bytes());
    codec::encode_batch(batch, out);
    let payload = out.len() - start - HEADER;
    let crc = crc32fast::hash(&out[start + 8..]);
    let header = &mut out[start..start + 8];
    header[..4].copy_from_slice(&(payload as u32).to_le_bytes());
    header[4..].copy_from_slice(&crc.to_le_bytes());
}

/// The folder of a journal where batches the writer could not commit wait
/// (see [`hold`]).
const HELD: &str = "held";

/// Keeps entry `number`, a batch that was answered (it is in the journal)
/// but whose commit failed, in a file of its own under `held/`: the
/// segment it came from is deleted once a checkpoint covers the entries
/// after it, and a replay starts after the database's watermark, which
/// later commits move past it. The writer commits held batches again
/// after a later commit succeeds and at start, and deletes each file once
/// its batch is stored ([`release`]). Nothing else deletes them, so an
/// export that was answered is never dropped by qyl itself. Returns the
/// file, and whether it is new (not a retry that failed again).
pub fn hold(dir: &Path, number: u64, batch: &Batch) -> Result<(PathBuf, bool), JournalError> {
    let held = dir.join(HELD);
    fs::create_dir_all(&held).map_err(io_err(&held))?;
    let path = held.join(segment_name(number));
    if path.exists() {
        // Held already (a retry failed again): the same bytes.
        return Ok((path, false));
    }
    let mut bytes = Vec::new();
    encode_entry(number, batch, &mut bytes);
    let partial = held.join(format!("{number}.partial"));
    File::create(&partial)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
        .map_err(io_err(&partial))?;
    fs::rename(&partial, &path).map_err(io_err(&path))?;
    File::open(&held)
        .and_then(|d| d.sync_all())
        .map_err(io_err(&held))?;
    Ok((path, true))
}

/// The held batches ([`hold`]) by entry number, oldest first.
pub fn held(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    segments(&dir.join(HELD))
}

/// Reads a held batch back; `None` when its file is corrupt or cannot be
/// decoded (reported by the caller, and left where it is).
pub fn read_held(path: &Path) -> Result<Option<Batch>, JournalError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    Ok(entry(&bytes).and_then(|(_, payload, _)| codec::decode_batch(payload).ok()))
}

/// Deletes a held batch's file once the batch is stored.
pub fn release(path: &Path) -> Result<(), JournalError> {
    fs::remove_file(path).map_err(io_err(path))
}

/// Splits one entry off `bytes`: its number, its payload and what follows;
/// `None` when it is torn or its checksum does not match.
fn entry(bytes: &[u8]) -> Option<(u64, &[u8], &[u8])> {
    let header = bytes.get(..HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    if len > MAX_ENTRY {
        return None;
    }
    let body = bytes.get(8..HEADER + len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    let number = u64::from_le_bytes(body[..8].try_into().ok()?);
    Some((number, &body[8..], &bytes[HEADER + len..]))
}

/// Deletes the segments whose every entry is numbered at or below
/// `through` (held by the database file after a checkpoint). The newest
/// segment, the one being appended to, always stays.
pub fn forget_through(dir: &Path, through: u64) -> Result<usize, JournalError> {
    let segments = segments(dir)?;
    let mut removed = 0;
    for pair in segments.windows(2) {
        let (_, path) = &pair[0];
        let (next_first, _) = pair[1];
        if next_first <= through.saturating_add(1) {
            fs::remove_file(path).map_err(io_err(path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Deletes every segment: the database holds every entry (after the final
/// checkpoint of a clean stop, or after a replay and its checkpoint).
pub fn forget_all(dir: &Path) -> Result<(), JournalError> {
    for (_, path) in segments(dir)? {
        fs::remove_file(&path).map_err(io_err(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
