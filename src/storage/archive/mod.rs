//! The cold tier: old time windows of spans, logs and metric points move
//! out of the database file into Parquet files any engine can read.
//!
//! Why: DuckDB keeps the space deleted rows leave inside its file, so a
//! database that deletes old rows one by one stays at its high-water mark
//! (1.1–2.5× the size limit, BENCHMARKS.md). Here the file holds only the
//! recent windows, and what is older lives in whole files per window,
//! which retention deletes whole: disk use follows the limit. The files are
//! plain Parquet (zstd) in a hive layout,
//! `signal=spans/date=2026-12-04/hour=19/node=a/part-<window>-<seqs>.parquet`,
//! with the public views' columns, so DuckDB, ClickHouse or Spark read
//! them without qyl; qyl's own reads see both tiers through the `_all`
//! views ([`views`]).
//!
//! A window moves in one transaction on the retention connection: the rows
//! are copied to a hidden file beside their final name, the file is synced
//! and read back, renamed into place, and then, still in the same
//! transaction, the rows are deleted, the file recorded in the catalog
//! (`archive_parts`) and the `_all` view replaced to name it. So a reader
//! sees each row once, and a crash at any step leaves the rows in the
//! database: a hidden file, or a named one the catalog does not list, is
//! what such a crash leaves, and [`open`] deletes both at the next start.
//! File names follow from the rows (the window and the first and last
//! ingest sequence number), so archiving the same rows again after a crash
//! writes the same file.

pub mod bucket;
pub mod views;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::retention::in_transaction;
use super::writer::derived::genai_rollup::MINUTE_NS;
use super::{Conn, StorageError};

const HOUR_NS: u64 = 60 * MINUTE_NS;

/// A kind of telemetry with a table the archive moves windows out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    Spans,
    Logs,
    Metrics,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Spans, Signal::Logs, Signal::Metrics];

    /// The public view's name, and the `signal=` of the archive's paths.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Spans => "spans",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }

    /// The table the writer appends to.
    pub fn table(self) -> &'static str {
        match self {
            Signal::Spans => "span_rows",
            Signal::Logs => "log_rows",
            Signal::Metrics => "metric_rows",
        }
    }

    /// The view over the table and the archived files.
    pub fn rows_all(self) -> &'static str {
        match self {
            Signal::Spans => "span_rows_all",
            Signal::Logs => "log_rows_all",
            Signal::Metrics => "metric_rows_all",
        }
    }

    /// The column a row's window is decided by.
    pub fn time_column(self) -> &'static str {
        match self {
            Signal::Spans => "start_time_unix_nano",
            Signal::Logs | Signal::Metrics => "time_unix_nano",
        }
    }

    fn from_name(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The archived windows the `_all` views name, per signal, as `[start,
/// end)` in Unix ns: what an answer reports as the archive it read
/// (`model::query::TiersRead`). Replaced with each view.
#[derive(Debug, Default)]
pub struct NamedWindows {
    by_signal: std::sync::RwLock<[Vec<(u64, u64)>; 3]>,
}

impl NamedWindows {
    fn set(&self, signal: Signal, windows: Vec<(u64, u64)>) {
        let mut all = self.by_signal.write().unwrap_or_else(|p| p.into_inner());
        all[signal.index()] = windows;
    }

    /// How many of `signal`'s archived files hold times in `[since,
    /// until)` (None: unbounded on that side).
    pub fn overlapping(&self, signal: Signal, since: Option<u64>, until: Option<u64>) -> u64 {
        let all = self.by_signal.read().unwrap_or_else(|p| p.into_inner());
        let (since, until) = (since.unwrap_or(0), until.unwrap_or(u64::MAX));
        all[signal.index()]
            .iter()
            .filter(|(start, end)| *start < until && *end > since)
            .count() as u64
    }
}

/// Where and when windows move (`[archive]` in qyl.toml).
#[derive(Debug, Clone)]
pub struct ArchiveSettings {
    /// The archive's root directory, absolute.
    pub root: PathBuf,
    /// A window's length in ns; it divides an hour.
    pub window_ns: u64,
    /// A window moves once its end is this many ns in the past.
    pub after_ns: u64,
    /// This node's name in the paths (`node=`).
    pub node: String,
    /// The S3-compatible bucket every file is also uploaded to (`[archive]
    /// url`), and other nodes' files come from.
    pub bucket: Option<std::sync::Arc<bucket::Bucket>>,
    /// What the views name, for the read side (shared by every clone).
    pub named: std::sync::Arc<NamedWindows>,
    /// Held while this process uses the node name in this archive: a
    /// second qyl under the same name would take the first one's new files
    /// for a crash's leftovers and delete them.
    _node_lock: std::sync::Arc<std::fs::File>,
}

impl ArchiveSettings {
    /// Creates the root if needed. `node` empty means the host's name.
    pub fn new(
        root: &Path,
        window_minutes: u64,
        after_minutes: u64,
        node: &str,
    ) -> Result<ArchiveSettings, StorageError> {
        std::fs::create_dir_all(root).map_err(io_err(root))?;
        let root = root.canonicalize().map_err(io_err(root))?;
        let node = if node.is_empty() {
            host_name()
        } else {
            node.to_string()
        };
        let lock_path = root.join(format!(".node={node}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        if !try_lock(&lock) {
            return Err(StorageError::Archive(format!(
                "another qyl uses the node name {node:?} in {} (give each its own [archive] node)",
                root.display()
            )));
        }
        Ok(ArchiveSettings {
            root,
            window_ns: window_minutes.max(1) * MINUTE_NS,
            after_ns: after_minutes * MINUTE_NS,
            node,
            bucket: None,
            named: Default::default(),
            _node_lock: std::sync::Arc::new(lock),
        })
    }

    /// Uploads every file to `bucket` too, and reads other nodes' files
    /// from it.
    pub fn with_bucket(mut self, bucket: bucket::Bucket) -> ArchiveSettings {
        self.bucket = Some(std::sync::Arc::new(bucket));
        self
    }

    /// `path` (a file's path) relative to the root.
    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Windows that ended before this (Unix ns) are due at `now`.
    fn due_before(&self, now: u64) -> u64 {
        let edge = now.saturating_sub(self.after_ns);
        edge - edge % self.window_ns
    }

    /// Where every node's files of `signal` are.
    fn signal_dir(&self, signal: Signal) -> PathBuf {
        self.root.join(format!("signal={}", signal.name()))
    }

    /// The directory of `signal`'s files for the window starting at
    /// `window` (hive style, relative to the root).
    fn part_dir(&self, signal: Signal, window: u64) -> PathBuf {
        let stamp = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(window),
        )
        .to_string();
        // "2026-12-04T19:00:00Z"
        let (date, hour) = (&stamp[..10], &stamp[11..13]);
        PathBuf::from(format!(
            "signal={}/date={date}/hour={hour}/node={}",
            signal.name(),
            self.node
        ))
    }
}

/// Takes `file`'s exclusive lock without waiting; false when another
/// process holds it. (`File::try_lock` needs a newer Rust than qyl's
/// minimum.)
#[cfg(unix)]
fn try_lock(file: &std::fs::File) -> bool {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
}

#[cfg(not(unix))]
fn try_lock(_file: &std::fs::File) -> bool {
    true
}

/// The host's name, for the archive's paths; "qyl" when it has none usable.
fn host_name() -> String {
    let name = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .unwrap_or_default();
    let name = name.trim();
    if is_node_name(name) {
        name.to_string()
    } else {
        "qyl".to_string()
    }
}

/// A node name fits a path segment: letters, digits, `.`, `_` and `-`.
pub fn is_node_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What a pass moved or dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    pub parts: u64,
    pub rows: u64,
    pub bytes: u64,
}

impl ArchiveReport {
    fn add(&mut self, other: ArchiveReport) {
        self.parts += other.parts;
        self.rows += other.rows;
        self.bytes += other.bytes;
    }
}

/// What the catalog holds, for `/health`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColdTier {
    pub parts: u64,
    pub rows: u64,
    pub bytes: u64,
    /// The start of the oldest window archived (Unix ns).
    pub oldest: Option<u64>,
}

fn sql_err(context: &str) -> impl FnOnce(duckdb::Error) -> StorageError + '_ {
    move |e| StorageError::sql(context, e)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Dir {
        path: path.to_path_buf(),
        source,
    }
}

/// The catalog's files of `signal` (relative to the root) and their
/// windows' starts and ends, oldest first.
fn cataloged(conn: &Conn, signal: Signal) -> Result<Vec<(String, u64, u64)>, StorageError> {
    let mut stmt = conn
        .prepare(
            "SELECT path, window_start_unix_nano, window_end_unix_nano FROM archive_parts
             WHERE signal = ? ORDER BY window_start_unix_nano, first_seq",
        )
        .map_err(sql_err("listing archived files"))?;
    let rows = stmt
        .query_map([signal.name()], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(sql_err("listing archived files"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err("listing archived files"))?;
    Ok(rows)
}

/// A path as a SQL string literal.
pub(crate) fn sql_path(path: &Path) -> String {
    super::duck::sql_text(&path.to_string_lossy())
}

/// Points `signal`'s `_all` view at the catalog's files and the other
/// nodes' (none without `settings`: the archive is off).
fn install_view(
    conn: &Conn,
    settings: Option<&ArchiveSettings>,
    signal: Signal,
) -> Result<(), StorageError> {
    let mut parts = Vec::new();
    if let Some(s) = settings {
        for (rel, window_start, window_end) in cataloged(conn, signal)? {
            parts.push(views::ColdFile {
                path: s.root.join(rel),
                window_start,
                window_end,
            });
        }
        parts.extend(other_nodes_files(s, signal)?);
    }
    views::install_rows_all(conn, signal, &parts).map_err(sql_err("replacing a view"))?;
    if let Some(s) = settings {
        s.named.set(
            signal,
            parts
                .iter()
                .map(|p| (p.window_start, p.window_end))
                .collect(),
        );
    }
    Ok(())
}

/// The files other nodes sharing the archive wrote for `signal`, but for
/// each node's oldest window: that is the one its retention drops next,
/// and a view naming a file that is gone fails every read until it is
/// replaced (at this node's next pass). A node's files appear only once
/// complete (renamed from a hidden name).
fn other_nodes_files(
    settings: &ArchiveSettings,
    signal: Signal,
) -> Result<Vec<views::ColdFile>, StorageError> {
    let mut by_node: std::collections::BTreeMap<String, Vec<views::ColdFile>> = Default::default();
    for (node, path) in files_of_nodes(settings, signal, |n| n != settings.node)? {
        // With a bucket, a local copy of a file its node has dropped from
        // the bucket waits for deletion; no view names it.
        if let Some(bucket) = &settings.bucket {
            if !bucket.was_listed(&settings.rel(&path)) {
                continue;
            }
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Some(window_start) = name.as_deref().and_then(part_window) {
            by_node.entry(node).or_default().push(views::ColdFile {
                path,
                window_start,
                // Another node's window length is not in the name; a
                // window never crosses an hour, so this bounds it.
                window_end: (window_start / HOUR_NS + 1) * HOUR_NS,
            });
        }
    }
    let mut out = Vec::new();
    for (_, files) in by_node {
        let oldest = files.iter().map(|f| f.window_start).min().unwrap_or(0);
        out.extend(files.into_iter().filter(|f| f.window_start != oldest));
    }
    Ok(out)
}

/// The window start in a finished file's name, `part-<window>-<first>-<last>.parquet`.
fn part_window(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let mut fields = rest.split('-');
    let window = fields.next()?.parse().ok()?;
    (fields.count() == 2).then_some(window)
}

/// Replaces the views so they name the files other nodes added or
/// dropped since the last time; each pass starts with it. With a bucket,
/// first brings the local copies of other nodes' files in line with it.
pub fn refresh_views(conn: &Conn, settings: &ArchiveSettings) -> Result<(), StorageError> {
    let listing = settings.bucket.as_ref().map(|b| b.list());
    refresh_views_from(conn, settings, listing)
}

/// [`refresh_views`] with the bucket's listing already taken (`None`
/// without a bucket).
fn refresh_views_from(
    conn: &Conn,
    settings: &ArchiveSettings,
    listing: Option<Result<Vec<(String, u64)>, StorageError>>,
) -> Result<(), StorageError> {
    // A bucket out of reach must not stop reads (or a start): the views
    // then name the copies already here, as the last listing left them.
    let mirrored = match (&settings.bucket, listing) {
        (Some(bucket), Some(listing)) => listing.and_then(|l| bucket.mirror(settings, &l)),
        _ => Ok(Vec::new()),
    };
    let stale = mirrored.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not mirror the archive's bucket; reading the copies here");
        Vec::new()
    });
    in_transaction(conn, || {
        Signal::ALL
            .into_iter()
            .try_for_each(|signal| install_view(conn, Some(settings), signal))
    })?;
    for file in stale {
        remove_local(&settings.root, &file);
    }
    Ok(())
}

/// Brings the archive and the catalog into agreement after a start (or a
/// crash) and installs the views. Deletes this node's files the catalog
/// does not list (a crash came between writing one and committing it:
/// its rows are still in the database) and hidden files a write left;
/// forgets cataloged files that are gone (someone deleted them), saying
/// so, so reads do not fail on them.
pub fn open(conn: &Conn, settings: Option<&ArchiveSettings>) -> Result<(), StorageError> {
    let Some(settings) = settings else {
        let parts: u64 = conn
            .query_row("SELECT count(*) FROM archive_parts", [], |r| r.get(0))
            .map_err(sql_err("counting archived files"))?;
        if parts > 0 {
            tracing::warn!(
                parts,
                "the database lists archived Parquet files but [archive] path is not set: \
                 queries read the database file only"
            );
        }
        for signal in Signal::ALL {
            install_view(conn, None, signal)?;
        }
        return Ok(());
    };
    let mut known = HashSet::new();
    let restore = |rel: &str| match &settings.bucket {
        Some(bucket) => match bucket.download(rel, &settings.root.join(rel)) {
            Ok(()) => {
                tracing::info!(
                    file = rel,
                    bucket = bucket.url(),
                    "restored an archived file from the bucket"
                );
                true
            }
            Err(e) => {
                tracing::warn!(file = rel, error = %e, "could not restore an archived file from the bucket");
                false
            }
        },
        None => false,
    };
    for signal in Signal::ALL {
        for (rel, _, _) in cataloged(conn, signal)? {
            if settings.root.join(&rel).is_file() || restore(&rel) {
                known.insert(rel);
            } else {
                tracing::error!(
                    file = %settings.root.join(&rel).display(),
                    "an archived file is missing; its rows are no longer readable"
                );
                conn.execute("DELETE FROM archive_parts WHERE path = ?", [&rel])
                    .map_err(sql_err("forgetting a missing archived file"))?;
            }
        }
    }
    for signal in Signal::ALL {
        for (_, file) in files_of_nodes(settings, signal, |n| n == settings.node)? {
            let rel = settings.rel(&file);
            let hidden = file
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden || !known.contains(&rel) {
                tracing::info!(file = %file.display(), "removing an archive file no commit recorded");
                std::fs::remove_file(&file).map_err(io_err(&file))?;
            }
        }
    }
    // One listing of the bucket serves the cleanup and the mirror.
    let listing = settings.bucket.as_ref().map(|b| b.list());
    if let (Some(bucket), Some(Ok(listed))) = (&settings.bucket, &listing) {
        if let Err(e) = bucket.remove_unrecorded(&settings.node, listed, &known) {
            // Left for the next start: such an object is in no view.
            tracing::warn!(error = %e, "could not delete uploads no commit recorded");
        }
    }
    refresh_views_from(conn, settings, listing)
}

/// Every `date=*/hour=*/node=*/` directory under `signal_dir`, with its
/// node's name.
fn node_dirs(signal_dir: &Path) -> Result<Vec<(String, PathBuf)>, StorageError> {
    let mut out = Vec::new();
    for date in entries(signal_dir, true)? {
        for hour in entries(&date, true)? {
            for dir in entries(&hour, true)? {
                let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
                if let Some(node) = name.as_deref().and_then(|n| n.strip_prefix("node=")) {
                    out.push((node.to_string(), dir));
                }
            }
        }
    }
    Ok(out)
}

/// Every file of `signal` in the archive directory whose node `node`
/// accepts, with its node's name: this node's (at start-up) or the
/// others' (for the views and the bucket's mirror).
fn files_of_nodes(
    settings: &ArchiveSettings,
    signal: Signal,
    node: impl Fn(&str) -> bool,
) -> Result<Vec<(String, PathBuf)>, StorageError> {
    let mut out = Vec::new();
    for (name, dir) in node_dirs(&settings.signal_dir(signal))? {
        if node(&name) {
            for file in entries(&dir, false)? {
                out.push((name.clone(), file));
            }
        }
    }
    Ok(out)
}

/// The subdirectories (`dirs`) or the files in `dir`; none when `dir` is
/// not a directory.
fn entries(dir: &Path, dirs: bool) -> Result<Vec<PathBuf>, StorageError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if if dirs { path.is_dir() } else { path.is_file() } {
            out.push(path);
        }
    }
    Ok(out)
}

/// A long pass (the first one over a database with days of data) checkpoints
/// this often, so a crash does not undo more than this much of its work:
/// the database runs without DuckDB's WAL, so a commit is in the file only
/// once checkpointed (before that, a crash brings the rows back and the
/// next start deletes their file).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Moves every window that is due at `now` (Unix ns) to the archive,
/// oldest first, one transaction per signal and window. Stops between
/// windows when `stop` says so.
pub fn archive_due(
    conn: &Conn,
    settings: &ArchiveSettings,
    now: u64,
    stop: &dyn Fn() -> bool,
) -> Result<ArchiveReport, StorageError> {
    refresh_views(conn, settings)?;
    let before = settings.due_before(now);
    let mut report = ArchiveReport::default();
    let mut checkpointed = std::time::Instant::now();
    for signal in Signal::ALL {
        let time = signal.time_column();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT DISTINCT {time} // ? * ? AS w FROM {} WHERE {time} < ? ORDER BY w",
                signal.table()
            ))
            .map_err(sql_err("finding windows to archive"))?;
        let windows = stmt
            .query_map(
                duckdb::params![settings.window_ns, settings.window_ns, before],
                |r| r.get::<_, u64>(0),
            )
            .map_err(sql_err("finding windows to archive"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_err("finding windows to archive"))?;
        for window in windows {
            if stop() {
                return Ok(report);
            }
            report.add(archive_window(conn, settings, signal, window)?);
            if checkpointed.elapsed() >= CHECKPOINT_EVERY {
                super::retention::checkpoint(conn)?;
                checkpointed = std::time::Instant::now();
            }
        }
    }
    Ok(report)
}

/// The rows of one window, as counted inside the moving transaction.
struct WindowRows {
    rows: u64,
    first_seq: u64,
    last_seq: u64,
    first_time: u64,
    last_time: u64,
}

/// Moves `signal`'s rows in the window starting at `window` (see the
/// module's comment for the order of steps and why).
fn archive_window(
    conn: &Conn,
    settings: &ArchiveSettings,
    signal: Signal,
    window: u64,
) -> Result<ArchiveReport, StorageError> {
    let (table, time) = (signal.table(), signal.time_column());
    let end = window.saturating_add(settings.window_ns);
    let in_window = |q: &str| format!("{q}{time} >= {window} AND {q}{time} < {end}");
    let mut written: Option<PathBuf> = None;
    let mut uploaded = false;
    let mut rel = PathBuf::new();
    let outcome = in_transaction(conn, || {
        let counted: WindowRows = conn
            .query_row(
                &format!(
                    "SELECT count(*), min(ingest_seq), max(ingest_seq), min({time}), max({time})
                     FROM {table} WHERE {}",
                    in_window("")
                ),
                [],
                |r| {
                    Ok(WindowRows {
                        rows: r.get(0)?,
                        first_seq: r.get::<_, Option<u64>>(1)?.unwrap_or(0),
                        last_seq: r.get::<_, Option<u64>>(2)?.unwrap_or(0),
                        first_time: r.get::<_, Option<u64>>(3)?.unwrap_or(0),
                        last_time: r.get::<_, Option<u64>>(4)?.unwrap_or(0),
                    })
                },
            )
            .map_err(sql_err("counting a window's rows"))?;
        if counted.rows == 0 {
            return Ok(ArchiveReport::default());
        }
        let dir = settings.part_dir(signal, window);
        let name = format!(
            "part-{window}-{}-{}.parquet",
            counted.first_seq, counted.last_seq
        );
        rel = dir.join(&name);
        let abs_dir = settings.root.join(&dir);
        std::fs::create_dir_all(&abs_dir).map_err(io_err(&abs_dir))?;
        let hidden = abs_dir.join(format!(".{name}.tmp"));
        let target = abs_dir.join(&name);
        written = Some(hidden.clone());
        // Sorted by time: a window's readers (a trace's time range, a
        // dashboard's last hour) skip the row groups outside it.
        let copied = conn
            .execute(
                &format!(
                    "COPY ({} WHERE {} ORDER BY s.{time}, s.ingest_seq) TO {} \
                     (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 32768)",
                    views::public_select(signal, table),
                    in_window("s."),
                    sql_path(&hidden)
                ),
                [],
            )
            .map_err(sql_err("writing an archive file"))? as u64;
        sync_file(&hidden)?;
        let read_back: u64 = conn
            .query_row(
                &format!("SELECT count(*) FROM read_parquet({})", sql_path(&hidden)),
                [],
                |r| r.get(0),
            )
            .map_err(sql_err("reading an archive file back"))?;
        if copied != counted.rows || read_back != counted.rows {
            return Err(StorageError::Archive(format!(
                "{}: wrote {copied} and read back {read_back} rows of {}",
                target.display(),
                counted.rows
            )));
        }
        // In the bucket and checked there before it has a final name here:
        // a local file under its final name is always in the bucket too.
        if let Some(bucket) = &settings.bucket {
            bucket.upload(&hidden, &rel.to_string_lossy())?;
            uploaded = true;
        }
        std::fs::rename(&hidden, &target).map_err(io_err(&target))?;
        written = Some(target.clone());
        sync_dir(&abs_dir)?;
        let deleted = conn
            .execute(&format!("DELETE FROM {table} WHERE {}", in_window("")), [])
            .map_err(sql_err("deleting archived rows"))? as u64;
        if deleted != counted.rows {
            return Err(StorageError::Archive(format!(
                "{}: deleting {} rows deleted {deleted}",
                target.display(),
                counted.rows
            )));
        }
        let bytes = std::fs::metadata(&target).map_err(io_err(&target))?.len();
        conn.execute(
            "INSERT INTO archive_parts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            duckdb::params![
                signal.name(),
                rel.to_string_lossy(),
                window,
                end,
                counted.first_time,
                counted.last_time,
                counted.rows,
                bytes,
                counted.first_seq,
                counted.last_seq,
                crate::model::now_unix_nano(),
            ],
        )
        .map_err(sql_err("recording an archive file"))?;
        install_view(conn, Some(settings), signal)?;
        Ok(ArchiveReport {
            parts: 1,
            rows: counted.rows,
            bytes,
        })
    });
    if outcome.is_err() {
        // Rolled back: the rows stay in the database, so the file goes.
        if let Some(file) = written {
            let _ = std::fs::remove_file(file);
        }
        if let (true, Some(bucket)) = (uploaded, &settings.bucket) {
            if let Err(e) = bucket.delete(&rel.to_string_lossy()) {
                // The next start removes it, as a file no commit lists.
                tracing::warn!(error = %e, "could not delete an uploaded file whose move failed");
            }
        }
    }
    outcome
}

fn sync_file(path: &Path) -> Result<(), StorageError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err(path))
}

fn sync_dir(path: &Path) -> Result<(), StorageError> {
    #[cfg(unix)]
    {
        sync_file(path)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Archived windows dropped from the catalog; [`Dropped::remove_files`]
/// deletes their files once the drop is checkpointed.
#[derive(Debug, Default)]
pub struct Dropped {
    pub report: ArchiveReport,
    /// The end of the newest window dropped (Unix ns).
    pub until: Option<u64>,
    files: Vec<PathBuf>,
}

impl Dropped {
    pub fn add(&mut self, other: Dropped) {
        self.report.add(other.report);
        self.until = self.until.max(other.until);
        self.files.extend(other.files);
    }

    /// Deletes the dropped files, in the bucket and here, and directories
    /// left empty (a directory still holding another node's files stays).
    /// Call after the drop is checkpointed: before it, a crash would bring
    /// the catalog's rows back without their files. If the process dies
    /// first, [`open`] deletes them, as files no commit lists.
    pub fn remove_files(self, settings: &ArchiveSettings) {
        for file in self.files {
            if let Some(bucket) = &settings.bucket {
                if let Err(e) = bucket.delete(&settings.rel(&file)) {
                    tracing::warn!(error = %e, "could not delete a dropped archive file from the bucket");
                }
            }
            remove_local(&settings.root, &file);
        }
    }
}

/// Deletes an archive file under `root` (one already gone is no error) and
/// the directories it leaves empty.
fn remove_local(root: &Path, file: &Path) {
    if let Err(e) = std::fs::remove_file(file) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(file = %file.display(), error = %e, "could not delete an archive file");
        }
    }
    let mut dir = file.parent();
    while let Some(d) = dir.filter(|d| *d != root && d.starts_with(root)) {
        if std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Drops every archived window that ended at or before `cutoff` (Unix ns).
pub fn drop_before(
    conn: &Conn,
    settings: &ArchiveSettings,
    cutoff: u64,
) -> Result<Dropped, StorageError> {
    drop_where(conn, settings, "window_end_unix_nano <= ?", cutoff)
}

/// Drops the oldest archived windows, whole, until at least `bytes` are
/// freed (or nothing is left).
pub fn drop_oldest(
    conn: &Conn,
    settings: &ArchiveSettings,
    bytes: u64,
) -> Result<Dropped, StorageError> {
    // The oldest window that frees enough together with every older one;
    // the newest window when all of them together free less.
    let last: Option<u64> = conn
        .query_row(
            "SELECT coalesce(min(window_start_unix_nano) FILTER (WHERE freed >= ?),
                             max(window_start_unix_nano))
             FROM (SELECT window_start_unix_nano,
                          sum(sum(bytes)) OVER (ORDER BY window_start_unix_nano) AS freed
                   FROM archive_parts GROUP BY window_start_unix_nano)",
            [bytes],
            |r| r.get(0),
        )
        .map_err(sql_err("choosing archived windows to drop"))?;
    match last {
        Some(last) => drop_where(conn, settings, "window_start_unix_nano <= ?", last),
        None => Ok(Dropped::default()),
    }
}

/// Forgets the catalog's files matching `condition` (one parameter) and
/// replaces the views that named them, in one transaction.
fn drop_where(
    conn: &Conn,
    settings: &ArchiveSettings,
    condition: &str,
    param: u64,
) -> Result<Dropped, StorageError> {
    in_transaction(conn, || {
        let mut stmt = conn
            .prepare(&format!(
                "DELETE FROM archive_parts WHERE {condition}
                 RETURNING signal, path, rows, bytes, window_end_unix_nano"
            ))
            .map_err(sql_err("dropping archived windows"))?;
        let rows = stmt
            .query_map([param], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u64>(2)?,
                    r.get::<_, u64>(3)?,
                    r.get::<_, u64>(4)?,
                ))
            })
            .map_err(sql_err("dropping archived windows"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_err("dropping archived windows"))?;
        let mut dropped = Dropped::default();
        let mut signals = HashSet::new();
        for (signal, path, rows, bytes, window_end) in rows {
            dropped.report.add(ArchiveReport {
                parts: 1,
                rows,
                bytes,
            });
            dropped.until = dropped.until.max(Some(window_end));
            signals.extend(Signal::from_name(&signal));
            dropped.files.push(settings.root.join(path));
        }
        for signal in signals {
            install_view(conn, Some(settings), signal)?;
        }
        Ok(dropped)
    })
}

/// The catalog's totals.
pub fn cold_tier(conn: &Conn) -> Result<ColdTier, StorageError> {
    conn.query_row(
        "SELECT count(*), coalesce(sum(rows), 0)::UBIGINT, coalesce(sum(bytes), 0)::UBIGINT,
                min(window_start_unix_nano)
         FROM archive_parts",
        [],
        |r| {
            Ok(ColdTier {
                parts: r.get(0)?,
                rows: r.get(1)?,
                bytes: r.get(2)?,
                oldest: r.get(3)?,
            })
        },
    )
    .map_err(sql_err("measuring the archive"))
}

/// Migration 21: the catalog, and the views reads go through.
pub const MIGRATION_SQL: &str = r#"
-- The Parquet files of the cold tier (storage::archive) this database's
-- node wrote and has not dropped; reads name exactly these.
CREATE TABLE archive_parts (
    signal                 VARCHAR NOT NULL,
    path                   VARCHAR NOT NULL,
    window_start_unix_nano UBIGINT NOT NULL,
    window_end_unix_nano   UBIGINT NOT NULL,
    first_time_unix_nano   UBIGINT NOT NULL,
    last_time_unix_nano    UBIGINT NOT NULL,
    rows                   UBIGINT NOT NULL,
    bytes                  UBIGINT NOT NULL,
    first_seq              UBIGINT NOT NULL,
    last_seq               UBIGINT NOT NULL,
    archived_unix_nano     UBIGINT NOT NULL
);
CREATE VIEW span_rows_all AS SELECT * FROM span_rows;
CREATE VIEW log_rows_all AS SELECT * FROM log_rows;
CREATE VIEW metric_rows_all AS SELECT * FROM metric_rows;
"#;

#[cfg(test)]
mod tests;
