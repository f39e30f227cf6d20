//! What the mount holds right now, for `s3rolefs status`: the block cache and its disk tier,
//! the prefetch memory in use, open files, and the uploads of files still open for writing.
//!
//! [`S3Filesystem::status`] is a snapshot, cheap enough to answer any number of status
//! queries while the mount is busy: it takes each of the filesystem's std mutexes once, for
//! the time of a copy of a few counters, never two at once, and never waits on anything
//! async (a writer's own state lock, the network). Sizes are what the counters say at that
//! instant; nothing here is exact across fields, and nothing needs to be.

use serde::{Deserialize, Serialize};

use super::S3Filesystem;
use crate::s3::ObjectClient;

/// The filesystem's part of a mount's status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsStatus {
    /// Blocks of files read, in memory.
    pub cache: BlockCacheStatus,
    /// The disk tier of the block cache (`--cache-dir-size`), when configured.
    pub disk: Option<DiskCacheStatus>,
    /// Blocks fetched ahead of readers, all files together (`--max-prefetch-memory`).
    pub prefetch: PrefetchStatus,
    /// Files open now (directories not counted).
    pub open_files: usize,
    /// One entry per file open for writing, by path.
    pub uploads: Vec<UploadStatus>,
    /// Files the journal holds that are not in S3 yet (a close that failed, or left by a
    /// mount that died), retried in the background.
    #[serde(default)]
    pub pending: Vec<crate::upload::pending::PendingFile>,
    /// Files the background uploads put in S3 lately (recovered after a crash or a failed
    /// close), and where.
    #[serde(default)]
    pub recovered: Vec<crate::upload::pending::RecoveredFile>,
    /// Upload memory in use and the budget (`--max-upload-memory`).
    #[serde(default)]
    pub upload_memory: PrefetchStatus,
    /// The journal directory (local copies of files not in S3 yet).
    #[serde(default)]
    pub journal: String,
    /// The files closed and not uploaded yet, with `--write-back` (`None` without).
    #[serde(default)]
    pub write_back: Option<super::writeback::WriteBackStatus>,
    /// Since when S3 has not answered (seconds since the epoch), while it has not: a
    /// write-back mount then works offline.
    #[serde(default)]
    pub unreachable_since: Option<u64>,
}

/// The in-memory block cache.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockCacheStatus {
    pub bytes: u64,
    /// `--cache-size`.
    pub capacity: u64,
    pub blocks: usize,
    pub hits: u64,
    pub misses: u64,
}

/// The disk tier of the block cache.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskCacheStatus {
    pub bytes: u64,
    /// `--cache-dir-size`.
    pub capacity: u64,
}

/// The prefetch memory budget.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefetchStatus {
    /// Bytes of blocks in flight or fetched ahead and not yet read.
    pub in_use: u64,
    pub capacity: u64,
}

/// A file open for writing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatus {
    /// The file's path inside the mount (its key without the mount's prefix).
    pub path: String,
    /// Its size so far, written bytes included.
    pub size: u64,
    /// True while it has changes S3 has not acknowledged (they are lost to readers of the
    /// bucket until a flush, `close` or `fsync` uploads them).
    pub dirty: bool,
}

impl<C: ObjectClient> S3Filesystem<C> {
    /// A snapshot of the caches, open files and uploads (see the module doc).
    pub fn status(&self) -> FsStatus {
        let stats = self.reads.cache.stats();
        let cache = BlockCacheStatus {
            bytes: stats.bytes,
            capacity: self.config.cache_size,
            blocks: stats.blocks,
            hits: stats.hits,
            misses: stats.misses,
        };
        let disk = self.reads.disk.as_ref().map(|d| DiskCacheStatus {
            bytes: d.bytes(),
            capacity: self.config.disk_cache_size,
        });
        let prefetch = PrefetchStatus {
            in_use: self
                .prefetch_capacity
                .saturating_sub(self.reads.budget_available()),
            capacity: self.prefetch_capacity,
        };
        let open_files = self.handles().open_files();
        // Copies of the writers' handles only: their sizes and flags are atomics, read after
        // the lock is gone.
        let writers: Vec<_> = self
            .writers()
            .values()
            // A file closed and waiting in the write-back queue is shown there instead.
            .filter(|slot| slot.handles > 0)
            .map(|slot| std::sync::Arc::clone(&slot.writer))
            .collect();
        let mut uploads: Vec<UploadStatus> = writers
            .iter()
            .map(|w| UploadStatus {
                path: relative_path(&self.config.prefix, &w.key()),
                size: w.size(),
                dirty: w.is_dirty(),
            })
            .collect();
        uploads.sort_by(|a, b| a.path.cmp(&b.path));
        let (pending, recovered) = self.pending.snapshot();
        let budget = &self.config.writer.budget;
        FsStatus {
            cache,
            disk,
            prefetch,
            open_files,
            uploads,
            pending,
            recovered,
            upload_memory: PrefetchStatus {
                in_use: budget.in_use(),
                capacity: budget.total(),
            },
            journal: self
                .config
                .writer
                .journal
                .dir()
                .to_string_lossy()
                .into_owned(),
            write_back: self.write_back.as_ref().map(|q| q.status()),
            unreachable_since: self.client.unreachable_since().map(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            }),
        }
    }
}

/// `key` as a path inside a mount of `prefix`.
fn relative_path(prefix: &str, key: &str) -> String {
    key.strip_prefix(prefix).unwrap_or(key).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{FsConfig, OpenMode};
    use crate::s3::memory::MemoryClient;
    use std::sync::Arc;
    use std::time::Duration;

    fn fs(prefix: &str) -> S3Filesystem<MemoryClient> {
        let client = Arc::new(MemoryClient::new());
        client.insert(&format!("{prefix}old.txt"), b"old".to_vec());
        S3Filesystem::new(
            client,
            FsConfig {
                prefix: prefix.to_string(),
                uid: 0,
                gid: 0,
                file_mode: 0o644,
                dir_mode: 0o755,
                metadata_ttl: Duration::from_secs(1),
                read_only: false,
                writer: Arc::new(crate::upload::test_config()),
                cache_size: 16 << 20,
                max_prefetch_memory: 32 << 20,
                disk_cache: None,
                disk_cache_size: 0,
                posix_metadata: true,
                content_type_default: "application/octet-stream".into(),
                meta_cache: None,
                write_back: None,
                exclude: Default::default(),
                listing_store: None,
            },
        )
    }

    /// An idle mount reports its capacities, nothing in use, nothing open.
    #[test]
    fn idle_mount_reports_capacities_and_nothing_in_use() {
        let status = fs("").status();
        assert_eq!(status.cache.capacity, 16 << 20);
        assert_eq!(status.cache.bytes, 0);
        assert_eq!(status.prefetch.capacity, 32 << 20);
        assert_eq!(status.prefetch.in_use, 0);
        assert_eq!(status.disk, None);
        assert_eq!(status.open_files, 0);
        assert!(status.uploads.is_empty());
    }

    /// A file open for writing is listed by its path inside the mount (the mount's prefix
    /// taken off), with its size and whether S3 has it yet; it is gone once closed.
    #[tokio::test]
    async fn open_writer_is_listed_by_path_until_closed() {
        let fs = fs("logs/");
        let (_, opened) = fs
            .create(
                fs.root(),
                "new.bin",
                false,
                false,
                crate::fs::attrs::Creator {
                    uid: 0,
                    gid: 0,
                    mode: 0o644,
                },
            )
            .await
            .unwrap();
        let fh = opened.fh;
        fs.write(fh, 0, bytes::Bytes::from(vec![7u8; 1000]))
            .await
            .unwrap();
        let status = fs.status();
        assert_eq!(status.open_files, 1);
        assert_eq!(
            status.uploads,
            vec![UploadStatus {
                path: "new.bin".into(),
                size: 1000,
                dirty: true,
            }]
        );
        let ino = fs.handle_inode(fh).unwrap();
        fs.flush(ino).await.unwrap();
        assert!(!fs.status().uploads[0].dirty, "uploaded by the flush");
        fs.release(fh).await;
        let status = fs.status();
        assert_eq!(status.open_files, 0);
        assert!(status.uploads.is_empty());
    }

    /// A file opened for reading counts as open, and is no upload.
    #[tokio::test]
    async fn reader_is_open_but_no_upload() {
        let fs = fs("");
        let attr = fs.lookup(fs.root(), "old.txt").await.unwrap();
        let fh = fs.open(attr.ino, OpenMode::default()).await.unwrap().fh;
        let status = fs.status();
        assert_eq!(status.open_files, 1);
        assert!(status.uploads.is_empty());
        fs.release(fh).await;
    }

    /// Keys outside the prefix (never expected) are shown whole rather than cut wrong.
    #[test]
    fn relative_path_takes_off_the_prefix_only() {
        assert_eq!(relative_path("logs/", "logs/a/b.txt"), "a/b.txt");
        assert_eq!(relative_path("", "a.txt"), "a.txt");
        assert_eq!(relative_path("logs/", "other/a.txt"), "other/a.txt");
    }
}
