//! The archive's copy in an S3-compatible bucket (`[archive] url`).
//!
//! Why a copy and not the only place: DuckDB reads S3 only through its
//! `httpfs` extension, which it downloads at run time, and a self-hosted
//! qyl must not depend on that. So every file is written to the local
//! archive directory as without a bucket, uploaded under the same relative
//! key, and checked there (its size, by a HEAD) before the rows leave the
//! database. The bucket is then what outlives the machine, what other
//! nodes read (each keeps a local mirror of the others' files, refreshed
//! every pass) and what ClickHouse, Spark or DuckDB with `httpfs` read at
//! scale. An upload cut short is never visible: a file up to
//! [`SINGLE_PUT_BYTES`] is one PUT, a bigger one a multipart upload that
//! only its completion makes an object.
//!
//! The client is Apache Arrow's `object_store` (credentials, region and
//! endpoint from the usual `AWS_*` environment variables). Its calls are
//! async; the archive runs on the retention thread, so each call runs on
//! a small runtime of its own.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use super::{io_err, sync_dir, StorageError};

/// Files up to this size go up in one PUT; bigger ones in parts of this
/// size (S3 wants parts of at least 5 MiB).
const SINGLE_PUT_BYTES: usize = 16 << 20;

/// How many parts of one file are in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// An S3-compatible bucket (and a key prefix in it) holding the archive.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    /// Keys are `<prefix>/<the file's path relative to the archive root>`.
    prefix: String,
    /// For messages: `s3://bucket/prefix`.
    url: String,
    runtime: tokio::runtime::Runtime,
    /// The other nodes' files the last [`Bucket::mirror`] found in the
    /// bucket (relative paths): the views name only these, so a file its
    /// node dropped leaves the views before its local copy is deleted.
    listed: Mutex<Option<HashSet<String>>>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").field("url", &self.url).finish()
    }
}

fn bucket_err(what: &str, key: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Archive(format!("{what} {key}: {e}"))
}

impl Bucket {
    /// A bucket from `s3://bucket/optional/prefix`, with credentials, region
    /// and endpoint from the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, ...). An
    /// `http://` endpoint (MinIO or another server on the same network) is
    /// allowed without `AWS_ALLOW_HTTP`: naming it is the consent.
    pub fn from_url(url: &str) -> Result<Bucket, StorageError> {
        let (name, prefix) = parse_url(url)?;
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(name)
            .with_retry(object_store::RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..Default::default()
            });
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .or_else(|_| std::env::var("AWS_ENDPOINT"))
            .unwrap_or_default();
        if endpoint.starts_with("http://") {
            builder = builder.with_allow_http(true);
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            // object_store's default; said here so a missing region is
            // not a surprise on other servers.
            builder = builder.with_region("us-east-1");
        }
        let store = builder
            .build()
            .map_err(|e| StorageError::Archive(format!("the bucket {url}: {e}")))?;
        Bucket::new(Arc::new(store), prefix, url.to_string())
    }

    /// A bucket over any object store (tests use an in-memory one).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        url: String,
    ) -> Result<Bucket, StorageError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("qyl-bucket")
            .enable_all()
            .build()
            .map_err(|e| StorageError::Archive(format!("starting the bucket's client: {e}")))?;
        Ok(Bucket {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            url,
            runtime,
            listed: Mutex::new(None),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `make()`'s future to its end on the bucket's runtime, from a
    /// thread of its own so that a caller inside another runtime (start-up
    /// runs in one) does not block it.
    fn run<T: Send, F>(&self, make: impl FnOnce() -> F + Send) -> T
    where
        F: std::future::Future<Output = T>,
    {
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| self.runtime.block_on(make()));
            match worker.join() {
                Ok(out) => out,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    fn key(&self, rel: &str) -> Result<Key, StorageError> {
        let full = if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        };
        Key::parse(&full).map_err(|e| bucket_err("naming", &full, e))
    }

    /// The path relative to the archive root of a key under the prefix.
    fn rel_of(&self, key: &Key) -> Option<String> {
        let key = key.as_ref();
        if self.prefix.is_empty() {
            return Some(key.to_string());
        }
        key.strip_prefix(&self.prefix)?
            .strip_prefix('/')
            .map(str::to_string)
    }

    /// Uploads the local file `local` as `rel` and checks the object's
    /// size. On error nothing is visible under `rel` that was not before.
    pub fn upload(&self, local: &Path, rel: &str) -> Result<(), StorageError> {
        use std::io::Read;
        let key = self.key(rel)?;
        let mut file = std::fs::File::open(local).map_err(io_err(local))?;
        let size = file.metadata().map_err(io_err(local))?.len();
        self.run(|| async {
            if size <= SINGLE_PUT_BYTES as u64 {
                let mut bytes = Vec::with_capacity(size as usize);
                file.read_to_end(&mut bytes).map_err(io_err(local))?;
                self.store
                    .put(&key, PutPayload::from(bytes))
                    .await
                    .map_err(|e| bucket_err("uploading", key.as_ref(), e))?;
            } else {
                // Part by part: a file of a busy hour is hundreds of MB,
                // and at most PARTS_IN_FLIGHT + 1 parts are in memory.
                let upload = self
                    .store
                    .put_multipart(&key)
                    .await
                    .map_err(|e| bucket_err("starting the upload of", key.as_ref(), e))?;
                let mut parts = WriteMultipart::new_with_chunk_size(upload, SINGLE_PUT_BYTES);
                let mut chunk = vec![0u8; SINGLE_PUT_BYTES];
                let sent: Result<(), StorageError> = async {
                    loop {
                        let n = read_full(&mut file, &mut chunk).map_err(io_err(local))?;
                        if n == 0 {
                            return Ok(());
                        }
                        parts
                            .wait_for_capacity(PARTS_IN_FLIGHT)
                            .await
                            .map_err(|e| bucket_err("uploading", key.as_ref(), e))?;
                        parts.write(&chunk[..n]);
                    }
                }
                .await;
                match sent {
                    Ok(()) => {
                        parts
                            .finish()
                            .await
                            .map_err(|e| bucket_err("uploading", key.as_ref(), e))?;
                    }
                    Err(e) => {
                        // Never completed, so never an object; abort frees
                        // the parts the server holds.
                        let _ = parts.abort().await;
                        return Err(e);
                    }
                }
            }
            let meta = self
                .store
                .head(&key)
                .await
                .map_err(|e| bucket_err("checking the upload of", key.as_ref(), e))?;
            if meta.size != size {
                return Err(StorageError::Archive(format!(
                    "{}/{key}: the bucket holds {} bytes of {size}",
                    self.url, meta.size
                )));
            }
            Ok(())
        })
    }

    /// Deletes `rel`; one already gone is not an error.
    pub fn delete(&self, rel: &str) -> Result<(), StorageError> {
        let key = self.key(rel)?;
        self.run(|| async {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(bucket_err("deleting", key.as_ref(), e)),
            }
        })
    }

    /// Downloads `rel` to `local` through a hidden file beside it, so the
    /// local archive never holds half a file under a final name.
    pub fn download(&self, rel: &str, local: &Path) -> Result<(), StorageError> {
        let key = self.key(rel)?;
        let dir = local.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let hidden = dir.join(format!(".{name}.download"));
        let fetched = self.run(|| async {
            use std::io::Write;
            let got = self
                .store
                .get(&key)
                .await
                .map_err(|e| bucket_err("downloading", key.as_ref(), e))?;
            let mut file = std::fs::File::create(&hidden).map_err(io_err(&hidden))?;
            let mut stream = got.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| bucket_err("downloading", key.as_ref(), e))?;
                file.write_all(&chunk).map_err(io_err(&hidden))?;
            }
            file.sync_all().map_err(io_err(&hidden))
        });
        let placed = fetched
            .and_then(|()| std::fs::rename(&hidden, local).map_err(io_err(local)))
            .and_then(|()| sync_dir(dir));
        if placed.is_err() {
            let _ = std::fs::remove_file(&hidden);
        }
        placed
    }

    /// Every archive file in the bucket (relative paths, with sizes).
    pub fn list(&self) -> Result<Vec<(String, u64)>, StorageError> {
        let prefix = if self.prefix.is_empty() {
            None
        } else {
            Some(self.key("")?)
        };
        let listed = self.run(|| async {
            self.store
                .list(prefix.as_ref())
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| bucket_err("listing", &self.url, e))
        })?;
        Ok(listed
            .into_iter()
            .filter_map(|meta| Some((self.rel_of(&meta.location)?, meta.size)))
            .collect())
    }

    /// Brings the local copies of other nodes' files in line with the
    /// bucket as `listed` ([`Bucket::list`]) shows it: downloads the ones
    /// missing, remembers what the bucket holds (for
    /// [`Bucket::was_listed`]) and returns the local copies of files no
    /// longer there, to delete once the views stop naming them.
    pub fn mirror(
        &self,
        settings: &super::ArchiveSettings,
        listed: &[(String, u64)],
    ) -> Result<Vec<PathBuf>, StorageError> {
        let mut in_bucket = HashSet::new();
        for (rel, _) in listed {
            if part_node(rel).is_none_or(|node| node == settings.node) {
                continue;
            }
            let local = settings.root.join(rel);
            if !local.is_file() {
                self.download(rel, &local)?;
            }
            in_bucket.insert(rel.clone());
        }
        let mut stale = Vec::new();
        for signal in super::Signal::ALL {
            for (_, file) in super::files_of_nodes(settings, signal, |n| n != settings.node)? {
                let rel = settings.rel(&file);
                if part_node(&rel).is_some() && !in_bucket.contains(&rel) {
                    stale.push(file);
                }
            }
        }
        if let Ok(mut listed) = self.listed.lock() {
            *listed = Some(in_bucket);
        }
        Ok(stale)
    }

    /// Whether the last [`Bucket::mirror`] found `rel` in the bucket; true
    /// before the first one.
    pub fn was_listed(&self, rel: &str) -> bool {
        match self.listed.lock() {
            Ok(listed) => listed.as_ref().is_none_or(|l| l.contains(rel)),
            Err(_) => true,
        }
    }

    /// This node's files in the bucket (as `listed` shows it) that `keep`
    /// does not hold: what a crash between an upload and its commit
    /// leaves. Deletes them.
    pub fn remove_unrecorded(
        &self,
        own_node: &str,
        listed: &[(String, u64)],
        keep: &HashSet<String>,
    ) -> Result<u64, StorageError> {
        let mut removed = 0;
        for (rel, _) in listed {
            if part_node(rel) == Some(own_node) && !keep.contains(rel) {
                tracing::info!(file = %rel, bucket = %self.url, "removing an uploaded archive file no commit recorded");
                self.delete(rel)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Reads until `buf` is full or the file ends; the bytes read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The node of an archive file's relative path,
/// `signal=…/date=…/hour=…/node=N/part-….parquet`; None for anything else.
fn part_node(rel: &str) -> Option<&str> {
    let mut segments = rel.split('/');
    let signal = segments.next()?.strip_prefix("signal=")?;
    super::Signal::from_name(signal)?;
    segments.next()?.strip_prefix("date=")?;
    segments.next()?.strip_prefix("hour=")?;
    let node = segments.next()?.strip_prefix("node=")?;
    let file = segments.next()?;
    (segments.next().is_none() && super::part_window(file).is_some()).then_some(node)
}

/// `s3://bucket/prefix` → ("bucket", "prefix").
fn parse_url(url: &str) -> Result<(&str, &str), StorageError> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| {
        StorageError::Archive(format!("the bucket {url:?}: expected s3://bucket/prefix"))
    })?;
    let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if name.is_empty() {
        return Err(StorageError::Archive(format!(
            "the bucket {url:?}: no bucket name"
        )));
    }
    Ok((name, prefix))
}

/// Whether `url` names a bucket the archive can use (for configuration).
pub fn is_bucket_url(url: &str) -> bool {
    parse_url(url).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_keys() {
        assert_eq!(parse_url("s3://b/p/q").unwrap(), ("b", "p/q"));
        assert_eq!(parse_url("s3://b").unwrap(), ("b", ""));
        assert!(parse_url("s3:///x").is_err());
        assert!(parse_url("https://b/x").is_err());
        let rel = "signal=spans/date=2026-12-04/hour=19/node=n1/part-1-2-3.parquet";
        assert_eq!(part_node(rel), Some("n1"));
        assert_eq!(
            part_node("signal=spans/date=x/hour=y/node=n1/.part-1-2-3.parquet.tmp"),
            None
        );
        assert_eq!(
            part_node("signal=other/date=x/hour=y/node=n1/part-1-2-3.parquet"),
            None
        );
        let store = Arc::new(object_store::memory::InMemory::new());
        let bucket = Bucket::new(store, "/qyl/a/", "s3://b/qyl/a".into()).unwrap();
        let key = bucket.key(rel).unwrap();
        assert_eq!(key.as_ref(), format!("qyl/a/{rel}"));
        assert_eq!(bucket.rel_of(&key).as_deref(), Some(rel));
    }
}
