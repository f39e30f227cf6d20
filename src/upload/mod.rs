//! The write path of one open file: how bytes written through the mount become one whole
//! object in S3, and never get lost on the way — not by a failed upload, an outage, or a
//! crash of the daemon.
//!
//! - `writer`: [`OpenWriter`], the state machine of one open file: a new file written
//!   sequentially *streams* (parts go up while the program writes); anything else works on
//!   a *staged* local copy uploaded on flush.
//! - `mirror`: the local copy a streaming file keeps of the parts it sends.
//! - `staged`: the sparse local copy of a staged file, and its upload (parts copied inside
//!   S3 where nothing changed, sent from the copy elsewhere, resumed after a failure).
//! - `chunks`: which chunks of a staged copy are local, changed, or only in S3.
//! - `multipart`: [`MultipartUpload`], parallel parts with bounded memory, kept for a
//!   resume when a part fails, and the part size schedule that lets 10,000 parts reach
//!   5 TiB.
//! - `budget`: [`MemoryBudget`], one bound on every upload buffer of a mount.
//! - `part`: [`PartBuf`](part::PartBuf), the aligned buffer a streaming file's next part
//!   fills in.
//! - `journal`: the crash-safe record of every local copy not yet in S3; `staging`:
//!   [`StagingFile`], such a copy's data file; `close_log`: the one file where small
//!   files' closes are made durable, each with its bytes, in a single sync.
//! - `pending`: the background uploads of what the journal holds (a close that failed,
//!   files left by a mount that died), and recovery at mount.
//!
//! Invariants this module keeps (DESIGN.md 5, 7, 9): an object appears in S3 only whole
//! (PutObject or CompleteMultipartUpload); `flush` returns `Ok` only after S3 acknowledged
//! the data; before it asks S3, what `close` was called on is on the local disk under a
//! complete journal record (a file smaller than a part: only once its upload failed);
//! another client's newer object is never overwritten by a recovery; upload memory is
//! bounded per file (`concurrency + 1` parts) and per mount (the budget).
//!
//! This module knows nothing of the filesystem (`fs`) or fuser: the filesystem maps
//! [`UploadError`] to an errno and decides when to call `flush`.

mod budget;
mod chunks;
mod close_log;
pub mod journal;
mod mirror;
mod multipart;
mod part;
pub mod pending;
mod staged;
mod staging;
mod writer;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::s3::{Metadata, S3Error};

pub use budget::{default_budget, MemoryBudget};
pub use journal::Journal;
pub use multipart::{part_size, MultipartUpload};
pub use staging::StagingFile;
pub use writer::{OpenWriter, Queued};

/// The first part's size: above S3's 5 MiB minimum, large enough that a part's round trip
/// is amortized over its transfer, small enough that `concurrency + 1` buffers (40 MiB at
/// the defaults) stay modest per writing file.
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;

/// Parts in flight per writing file. One part travels on one TCP connection, whose
/// throughput to S3 is typically 50–100 MB/s; eight in parallel fill a 4–8 Gbit/s link
/// (measured against the benchmark server: 8 gave 15 % more than 4, 16 nothing more)
/// while bounding memory at 9 part buffers (72 MiB) per writing file.
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 8;

/// The part size doubles every this many parts, so that even S3's 5 MiB minimum part size
/// reaches S3's 5 TiB object limit within 10,000 parts (5 MiB × 900 × (1 + 2 + … + 1024)
/// + 100 × 5 GiB ≈ 9.3 TiB), while files below 4.4 GiB (at 5 MiB) keep the configured size.
pub const PARTS_PER_DOUBLING: u32 = 900;

/// S3's limit on part numbers of one multipart upload.
pub const S3_MAX_PARTS: u32 = 10_000;

/// S3's largest part.
pub const S3_MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// S3's largest object.
pub const S3_MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;

/// How one open file uploads; one value shared by every writer of a mount.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// The first part's size (it grows, see [`part_size`]), and the chunk size of staged
    /// copies. Objects smaller than this go up as one PutObject: multipart would cost three
    /// requests for one part's worth.
    pub part_size: u64,
    /// Parts uploading at once per file (at least 1).
    pub concurrency: usize,
    /// Where local copies and their records live.
    pub journal: Arc<Journal>,
    /// The mount's bound on upload buffers.
    pub budget: Arc<MemoryBudget>,
    /// Write-back (`--write-back`): nothing goes to S3 while a file is written (a new file
    /// gathers its first part in memory, as a streaming one does, and becomes a local copy
    /// past it or at its close), and `close` only makes it durable ([`OpenWriter::persist`]); the filesystem uploads
    /// them later ([`OpenWriter::upload_queued`]).
    pub write_back: bool,
    /// `--incremental-upload` (directory buckets): a staged file whose only change since
    /// its base is bytes added at its end uploads just those, appended in S3 (see
    /// `Staged::append`).
    pub incremental_upload: bool,
    /// A file kept local only (`--exclude`): staged from its first byte like write-back's,
    /// never recorded in the journal (nothing of it is owed to S3), and removed with its
    /// writer. The filesystem never uploads it.
    pub local_only: bool,
}

impl WriterConfig {
    /// The defaults, with local copies in `journal` and a budget of `budget` bytes.
    pub fn new(journal: Arc<Journal>, budget: u64) -> Self {
        WriterConfig {
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_UPLOAD_CONCURRENCY,
            journal,
            budget: MemoryBudget::new(budget),
            write_back: false,
            incremental_upload: false,
            local_only: false,
        }
    }
}

/// What the file was when it was opened for writing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `create`, or `open` with `O_TRUNC`: the file starts empty, and sequential writes stream.
    New,
    /// An existing object opened for writing without `O_TRUNC` (including `O_APPEND`):
    /// edits work on a staging copy filled from this version of the object.
    Existing {
        /// With its quotes, as S3 sent it: every fill GET carries it in `If-Match`.
        etag: String,
        size: u64,
    },
}

/// Why a write, read, truncate or flush of an open file failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// S3 did not take the upload (after the client's retries). The data is kept in the
    /// local copy under a complete journal record; the next flush retries (resuming the
    /// multipart upload, if any), and so do the background retry and the next mount.
    #[error("uploading {key:?} failed: {source}; {}", kept(staging.as_deref()))]
    S3 {
        key: String,
        staging: Option<PathBuf>,
        #[source]
        source: S3Error,
    },
    /// Copying the original object into the staging copy failed (the object may have
    /// changed since it was opened: [`S3Error::PreconditionFailed`]).
    #[error(
        "reading {key:?} from S3 to edit it locally failed: {source}; retry, or reopen the file if the object changed"
    )]
    Fetch {
        key: String,
        #[source]
        source: S3Error,
    },
    /// The file streamed on without its local copy (the disk could not hold it), and what
    /// was asked needs bytes already sent: they are only in S3's unfinished multipart
    /// upload, which cannot be read back.
    #[error(
        "{key:?}: this needs its first {sent} bytes, which went to S3 without a local copy \
         ({why}); an unfinished upload cannot be read back, so only writes at the end of the \
         file can go on (free space in the cache directory to keep the next file whole)"
    )]
    NotKept {
        key: String,
        sent: u64,
        why: String,
        no_space: bool,
    },
    /// The file would be larger than S3's largest object (5 TiB).
    #[error(
        "{key:?}: {size} bytes is more than S3's largest object (5 TiB); the write or truncate that would make it so is refused"
    )]
    TooLarge { key: String, size: u64 },
    /// The staging file could not be created, written or read.
    #[error(
        "staging file {}: {source}; check free space and permissions of the cache directory",
        path.display()
    )]
    LocalIo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What a write does to the file times an object keeps: `mtime` and `ctime`, where the
/// metadata has them (the filesystem decides which it keeps), become `now`.
pub fn stamp_times(metadata: &mut Metadata, now: SystemTime) {
    for name in ["mtime", "ctime"] {
        if metadata.user.contains_key(name) {
            metadata.set_time(name, now);
        }
    }
}

fn kept(staging: Option<&Path>) -> String {
    match staging {
        Some(p) => format!(
            "the data is kept in {} and is retried by the next flush or fsync, in the background, and by the next mount",
            p.display()
        ),
        None => "the file is empty, nothing was lost; the next flush retries".to_string(),
    }
}

/// See [`UploadError::passing`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Passing {
    Unreachable,
    Transient,
    Never,
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl UploadError {
    /// True when the local disk is full (ENOSPC or EDQUOT): the filesystem answers ENOSPC.
    pub fn is_no_space(&self) -> bool {
        match self {
            UploadError::LocalIo { source, .. } => {
                matches!(
                    source.raw_os_error(),
                    Some(libc::ENOSPC) | Some(libc::EDQUOT)
                ) || source.kind() == io::ErrorKind::StorageFull
            }
            UploadError::NotKept { no_space, .. } => *no_space,
            UploadError::S3 { .. } | UploadError::Fetch { .. } | UploadError::TooLarge { .. } => {
                false
            }
        }
    }

    /// Whether trying again later may succeed, for the uploads that go on in the
    /// background (the journal's, write-back's): a network that gave no answer, a passing
    /// failure (5xx, throttling, credentials being renewed, the local disk full), or one
    /// that will not pass by itself (access denied, a base version gone…).
    pub fn passing(&self) -> Passing {
        match self.s3_error() {
            Some(S3Error::Network { .. }) => Passing::Unreachable,
            Some(s3) if s3.is_retryable() => Passing::Transient,
            Some(S3Error::CredentialsRejected { .. }) => Passing::Transient,
            Some(_) => Passing::Never,
            None if self.is_no_space() => Passing::Transient,
            None => Passing::Never,
        }
    }

    /// The S3 error behind this one, if S3 caused it (AccessDenied → EACCES, …).
    pub fn s3_error(&self) -> Option<&S3Error> {
        match self {
            UploadError::S3 { source, .. } | UploadError::Fetch { source, .. } => Some(source),
            UploadError::LocalIo { .. }
            | UploadError::NotKept { .. }
            | UploadError::TooLarge { .. } => None,
        }
    }

    /// Where the data that could not be uploaded is kept.
    pub fn staging_path(&self) -> Option<&Path> {
        match self {
            UploadError::S3 { staging, .. } => staging.as_deref(),
            UploadError::LocalIo { path, .. } => Some(path),
            UploadError::Fetch { .. }
            | UploadError::NotKept { .. }
            | UploadError::TooLarge { .. } => None,
        }
    }
}

/// A writer configuration for unit tests elsewhere in the crate: a journal in a fresh
/// temporary directory (left behind: tests are short-lived), a 1 GiB budget.
#[cfg(test)]
pub fn test_config() -> WriterConfig {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "s3rolefs-unit-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let journal = Journal::new(
        crate::private_dir::PrivateDir::create(&dir).expect("a temporary directory"),
        journal::BucketId {
            endpoint: None,
            bucket: "test".into(),
        },
    );
    WriterConfig::new(journal, 1 << 30)
}

#[cfg(test)]
mod tests;
