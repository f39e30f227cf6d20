//! `StagingFile`: the local copy of a file being written: a [`journal`](super::journal)
//! entry's data file, held (locked) by this process for its whole life.
//!
//! Created with `O_EXCL|O_NOFOLLOW` and mode 0600 (it holds the user's data; another local
//! user must neither read it nor have planted a symlink in its place). Its name is the
//! entry's id; the journal record beside it names the key. Reads and writes are positioned
//! (`pread`/`pwrite`) and run on tokio's blocking pool, so a slow or full disk never
//! stalls the async threads.
//!
//! A small file closed with write-back needs no data file at all: its close put its bytes
//! in the journal's close log, durably, and the copy keeps them in memory
//! ([`StagingFile::in_memory`], within the journal's [`MEMORY_MAX`](super::journal::MEMORY_MAX)).
//! The data file is made the first time something needs one — a write, a truncate, a sync
//! — with those bytes in it. Reads and the upload take them from memory: `tar x` of 5,000
//! small files creates, writes, reads back and deletes no data file at all.
//!
//! The mirror of a streaming file ([`StagingFile::write_through`]) writes whole parts with
//! `O_DIRECT` through a second descriptor when the filesystem allows it (tmpfs does not):
//! the disk reads them from the part buffer itself.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;

use super::journal::{EntryFile, Journal, Record};
use super::part::is_direct_aligned;
use super::UploadError;

/// The share of its filesystem a local copy leaves free: one tenth...
const KEEP_FREE_DIVISOR: u64 = 10;

/// ...but never more than this. A tenth of a large disk is more than the system on it
/// needs: on a 250 GiB disk with 23 GiB free it would refuse every write.
const KEEP_FREE_CAP: u64 = 1 << 30;

/// The bytes a local copy leaves free on a filesystem of `total` bytes.
fn kept_free(total: u64) -> u64 {
    (total / KEEP_FREE_DIVISOR).min(KEEP_FREE_CAP)
}

/// The local copy of one file being written.
#[derive(Debug)]
pub struct StagingFile {
    id: String,
    path: PathBuf,
    journal: Arc<Journal>,
    /// The data file; unset while the content is only in `memory`.
    file: OnceLock<Arc<File>>,
    /// The whole content, while there is no data file (see [`StagingFile::in_memory`]).
    memory: Mutex<Option<Held>>,
    /// The same file opened with `O_DIRECT`, for [`StagingFile::write_through`] (opened
    /// on its first aligned write: most local copies are small files that never have
    /// one); `None` where the filesystem refuses it.
    direct: OnceLock<Option<Arc<File>>>,
}

/// Bytes kept in memory, counted in their journal's room for them while they live.
#[derive(Debug)]
struct Held {
    bytes: Bytes,
    journal: Arc<Journal>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.journal.release_memory(self.bytes.len() as u64);
    }
}

/// What a reader that must not wait for the copy's owner reads (see
/// [`StagingFile::snapshot`]).
#[derive(Clone, Debug)]
pub enum Snapshot {
    File(Arc<File>),
    Memory(Bytes),
}

impl StagingFile {
    /// A new, empty staging file in `journal` (no record yet: see [`StagingFile::save`]).
    pub fn create(journal: &Arc<Journal>) -> Result<StagingFile, UploadError> {
        Ok(StagingFile::from_entry(journal, journal.create()?))
    }

    /// A new entry whose whole content is `bytes`, kept in memory with no data file, when
    /// the journal has room for them (`None` otherwise). For a file about to be closed
    /// inline ([`StagingFile::save_closed`]): the close log is then the only place on disk
    /// that holds them, until something needs the data file.
    pub fn in_memory(journal: &Arc<Journal>, bytes: Bytes) -> Option<StagingFile> {
        if !journal.hold_memory(bytes.len() as u64) {
            return None;
        }
        let id = journal.new_id();
        Some(StagingFile {
            path: journal.dir().join(format!("{id}.data")),
            id,
            journal: Arc::clone(journal),
            file: OnceLock::new(),
            memory: Mutex::new(Some(Held {
                bytes,
                journal: Arc::clone(journal),
            })),
            direct: OnceLock::new(),
        })
    }

    /// The data file of an entry taken over from the journal (recovery).
    pub fn from_entry(journal: &Arc<Journal>, entry: EntryFile) -> StagingFile {
        StagingFile {
            id: entry.id,
            path: entry.path,
            journal: Arc::clone(journal),
            file: OnceLock::from(Arc::new(entry.file)),
            memory: Mutex::new(None),
            direct: OnceLock::new(),
        }
    }

    fn memory(&self) -> MutexGuard<'_, Option<Held>> {
        // Holds a plain value; a panic elsewhere cannot leave it inconsistent.
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The content, when it is in memory.
    fn in_memory_bytes(&self) -> Option<Bytes> {
        self.memory().as_ref().map(|held| held.bytes.clone())
    }

    /// The data file, made now (with the bytes kept in memory, which then go) if there
    /// was none.
    fn file(&self) -> Result<Arc<File>, UploadError> {
        if let Some(file) = self.file.get() {
            return Ok(Arc::clone(file));
        }
        let mut memory = self.memory();
        if let Some(file) = self.file.get() {
            return Ok(Arc::clone(file));
        }
        let file = self.journal.create_data_file(&self.id)?;
        if let Some(held) = memory.as_ref() {
            let written =
                file.write_all_at(&held.bytes, 0)
                    .map_err(|source| UploadError::LocalIo {
                        path: self.path.clone(),
                        source,
                    });
            if let Err(e) = written {
                // The record (in the close log, with the bytes) stays; the file goes, for
                // the next try to make it again.
                drop(file);
                self.journal.remove_data(&self.id);
                return Err(e);
            }
        }
        let file = Arc::clone(self.file.get_or_init(|| Arc::new(file)));
        *memory = None;
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Writes the entry's record; `durable` makes it survive a power loss (the caller
    /// syncs the data first, see [`StagingFile::sync_data`]).
    pub fn save(&self, record: &Record, durable: bool) -> Result<(), UploadError> {
        self.journal.save(&self.id, record, durable)
    }

    /// Makes a small file's close durable with one sync: its complete `record` with its
    /// whole content `data` (read back with [`StagingFile::read_whole`]) in the journal's
    /// close log; the data file itself is not synced.
    pub fn save_closed(&self, record: &Record, data: &[u8]) -> Result<(), UploadError> {
        self.journal.save_closed(&self.id, record, data)
    }

    /// Moves the entry's records out of the close log into its own record file (see
    /// [`Journal::unlog`]); the caller has synced the data.
    pub fn unlog(&self, record: &Record) -> Result<(), UploadError> {
        self.journal.unlog(&self.id, record)
    }

    /// True when the entry's records live in the journal's close log.
    pub fn is_logged(&self) -> bool {
        self.journal.is_logged(&self.id)
    }

    /// The file's first `len` bytes, read at once (a small file just written: from memory
    /// or the page cache).
    pub fn read_whole(&self, len: u64) -> Result<Bytes, UploadError> {
        if let Some(bytes) = self.in_memory_bytes() {
            return Ok(bytes.slice(..(len as usize).min(bytes.len())));
        }
        let mut data = vec![0; len as usize];
        self.file()?
            .read_exact_at(&mut data, 0)
            .map_err(|source| UploadError::LocalIo {
                path: self.path.clone(),
                source,
            })?;
        Ok(Bytes::from(data))
    }

    /// Removes the entry's record: S3 has what the file holds; the file stays as a clean
    /// copy while the writer lives.
    pub fn forget(&self) {
        self.journal.forget(&self.id);
    }

    /// What the copy holds now, for reads that must not wait for its owner (see
    /// `OpenWriter::read`): its bytes while they are in memory, else the file.
    pub fn snapshot(&self) -> Result<Snapshot, UploadError> {
        match self.in_memory_bytes() {
            Some(bytes) => Ok(Snapshot::Memory(bytes)),
            None => self.file().map(Snapshot::File),
        }
    }

    /// Makes the data written so far survive a power loss.
    pub async fn sync_data(&self) -> Result<(), UploadError> {
        let file = self.file()?;
        self.blocking(move || file.sync_data()).await
    }

    /// [`StagingFile::sync_data`] on the calling thread (a writer's `Drop`).
    pub fn sync_data_now(&self) -> Result<(), UploadError> {
        self.file()?
            .sync_data()
            .map_err(|source| UploadError::LocalIo {
                path: self.path.clone(),
                source,
            })
    }

    /// The content's length (the data file's on disk).
    pub fn length(&self) -> Result<u64, UploadError> {
        if let Some(bytes) = self.in_memory_bytes() {
            return Ok(bytes.len() as u64);
        }
        self.file()?
            .metadata()
            .map(|m| m.len())
            .map_err(|source| UploadError::LocalIo {
                path: self.path.clone(),
                source,
            })
    }

    /// Writes all of `data` at `offset`, extending the file as needed.
    pub async fn write_at(&self, offset: u64, data: Bytes) -> Result<(), UploadError> {
        let file = self.file()?;
        self.blocking(move || file.write_all_at(&data, offset))
            .await
    }

    /// Starts writing `data` at `offset`, for data that is also on its way to S3 and will
    /// rarely be read back; [`WriteThrough::finish`] says how it went. It runs on the
    /// blocking pool while the caller goes on. Aligned data (whole parts from a
    /// [`PartBuf`](super::part::PartBuf)) goes with `O_DIRECT`, never through the page
    /// cache; anything else is written through the page cache and handed to the disk at
    /// once (`sync_file_range`), the pages written before dropped from the cache: a large
    /// file being streamed keeps no more than a part or two dirty in memory. Left dirty, a
    /// gigabyte of mirror makes the kernel throttle every writer on the machine (the S3
    /// server's too, when it is local) once the dirty limit nears.
    pub fn write_through(&self, offset: u64, data: Bytes) -> Result<WriteThrough, UploadError> {
        let file = self.file()?;
        let direct = match is_direct_aligned(offset, &data) {
            true => self
                .direct
                .get_or_init(|| open_direct(&self.journal, &self.id, &self.path).map(Arc::new))
                .clone(),
            false => None,
        };
        #[cfg(test)]
        let done_at = tests::slow_disk::queue(&self.path);
        let task = tokio::task::spawn_blocking(move || {
            #[cfg(test)]
            tests::slow_disk::wait(done_at);
            if let Some(direct) = direct {
                match direct.write_all_at(&data, offset) {
                    Ok(()) => return Ok(()),
                    // The filesystem turned this one down after all (alignment it wants
                    // larger): the ordinary way below.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                    Err(e) => return Err(e),
                }
            }
            file.write_all_at(&data, offset)?;
            release_pages(&file, offset, data.len() as u64);
            Ok(())
        });
        Ok(WriteThrough {
            path: self.path.clone(),
            task,
        })
    }

    /// `Ok` when the filesystem can take `len` more bytes and still have a tenth of its
    /// space (at most 1 GiB, [`kept_free`]) free for everyone else; else a [`io::ErrorKind::StorageFull`] error saying so.
    /// A large file's mirror could otherwise fill the disk the system runs on (s3fs keeps
    /// the same margin, its `free_space_ratio`). A filesystem that cannot tell passes.
    pub fn check_room(&self, len: u64) -> Result<(), UploadError> {
        use std::os::fd::AsRawFd;
        let file = self.file()?;
        let mut fs = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: fstatvfs fills the struct on success, and only then is it read.
        let fs = unsafe {
            if libc::fstatvfs(file.as_raw_fd(), fs.as_mut_ptr()) != 0 {
                return Ok(());
            }
            fs.assume_init()
        };
        let unit = fs.f_frsize as u64;
        let free = (fs.f_bavail as u64).saturating_mul(unit);
        let keep = kept_free((fs.f_blocks as u64).saturating_mul(unit));
        if free >= len.saturating_add(keep) {
            return Ok(());
        }
        Err(UploadError::LocalIo {
            path: self.path.clone(),
            source: io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "the disk has {} MiB free, and {} MiB of it stay free",
                    free >> 20,
                    keep >> 20
                ),
            ),
        })
    }

    /// Up to `len` bytes at `offset`; fewer only at the end of the file.
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, UploadError> {
        if let Some(bytes) = self.in_memory_bytes() {
            let start = (offset as usize).min(bytes.len());
            let end = start.saturating_add(len).min(bytes.len());
            return Ok(bytes.slice(start..end));
        }
        let file = self.file()?;
        self.blocking(move || {
            let mut buf = vec![0u8; len];
            let mut filled = 0;
            while filled < len {
                match file.read_at(&mut buf[filled..], offset + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(filled);
            Ok(Bytes::from(buf))
        })
        .await
    }

    /// Truncates or extends (with zeros) the file to `len` bytes.
    pub async fn set_len(&self, len: u64) -> Result<(), UploadError> {
        let file = self.file()?;
        self.blocking(move || file.set_len(len)).await
    }

    /// Deletes the entry, record and data (S3 has it, or it is of no use any more).
    pub fn remove(self) {
        let StagingFile {
            id,
            journal,
            file,
            memory,
            direct,
            ..
        } = self;
        drop(memory);
        let Some(file) = file.into_inner() else {
            // It never had a data file: only its record goes.
            journal.forget(&id);
            return;
        };
        // No I/O of it is still running (a write-through holds a clone): its descriptors
        // close here, its lock with them, and the file may serve the next entry.
        let reusable = Arc::strong_count(&file) == 1
            && direct
                .get()
                .and_then(Option::as_ref)
                .is_none_or(|d| Arc::strong_count(d) == 1);
        drop((file, direct));
        journal.remove(&id, reusable);
    }

    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> Result<T, UploadError> {
        let outcome = match tokio::task::spawn_blocking(op).await {
            Ok(outcome) => outcome,
            Err(e) => Err(io::Error::other(format!("staging I/O task failed: {e}"))),
        };
        outcome.map_err(|source| UploadError::LocalIo {
            path: self.path.clone(),
            source,
        })
    }
}

/// A [`StagingFile::write_through`] in progress.
#[derive(Debug)]
pub struct WriteThrough {
    path: PathBuf,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl WriteThrough {
    /// True once the write ended, well or not.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the write; its error names the staging file.
    pub async fn finish(self) -> Result<(), UploadError> {
        let outcome = match self.task.await {
            Ok(outcome) => outcome,
            Err(e) => Err(io::Error::other(format!("staging I/O task failed: {e}"))),
        };
        outcome.map_err(|source| UploadError::LocalIo {
            path: self.path,
            source,
        })
    }
}

/// The entry's data file opened again for writing with `O_DIRECT`, or `None` where that
/// is refused.
fn open_direct(journal: &Journal, id: &str, path: &Path) -> Option<File> {
    match journal.reopen(id, libc::O_WRONLY | libc::O_DIRECT) {
        Ok(file) => Some(file),
        Err(e) => {
            log::debug!(
                "{}: no O_DIRECT ({e}); the mirror goes through the page cache",
                path.display()
            );
            None
        }
    }
}

/// Starts writeback of `[offset, offset + len)` and drops the clean pages before `offset`
/// from the page cache. Both are hints: a filesystem that ignores them (tmpfs) loses nothing.
fn release_pages(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(start), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return;
    };
    // SAFETY: plain syscalls on a descriptor this function borrows; no memory is passed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), start, len, libc::SYNC_FILE_RANGE_WRITE);
        libc::posix_fadvise(file.as_raw_fd(), 0, start, libc::POSIX_FADV_DONTNEED);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::upload::journal::MEMORY_MAX;

    /// A journal in `dir` for a test bucket.
    pub fn journal(dir: &tempfile::TempDir) -> Arc<Journal> {
        Journal::new(
            crate::private_dir::PrivateDir::create(dir.path()).unwrap(),
            super::super::journal::BucketId {
                endpoint: None,
                bucket: "test".into(),
            },
        )
    }

    /// A slow disk: every mirror write under a slowed directory takes `delay` longer, one
    /// after the other in the order they were issued (as a disk's queue serves them, so
    /// the oldest write is always the first to end). Each slowed directory is its own
    /// disk; other tests' directories are not affected.
    pub mod slow_disk {
        use std::path::{Path, PathBuf};
        use std::sync::Mutex;
        use std::time::{Duration, Instant};

        /// Per slowed directory: the delay of one write, and when its queue drains.
        static SLOW: Mutex<Vec<(PathBuf, Duration, Instant)>> = Mutex::new(Vec::new());

        /// Mirror writes of files in `dir` take `delay` longer from now on.
        pub fn slow_down(dir: &Path, delay: Duration) {
            SLOW.lock()
                .unwrap()
                .push((dir.to_path_buf(), delay, Instant::now()));
        }

        /// Queues a write to `file`: when it will have ended (`None`: not slowed).
        pub(in crate::upload) fn queue(file: &Path) -> Option<Instant> {
            let mut slow = SLOW.lock().unwrap();
            let (_, delay, drained) = slow.iter_mut().find(|(d, ..)| file.starts_with(d))?;
            *drained = (*drained).max(Instant::now()) + *delay;
            Some(*drained)
        }

        /// Holds the write until its turn in the queue has passed.
        pub(in crate::upload) fn wait(done_at: Option<Instant>) {
            if let Some(at) = done_at {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
            }
        }
    }

    /// Whole aligned parts go to the mirror with O_DIRECT where the filesystem allows it,
    /// anything else through the page cache; the file holds both either way, also without
    /// an O_DIRECT descriptor (a filesystem that refuses it).
    /// A small disk keeps a tenth free; a large one 1 GiB, so a 250 GiB disk with 23 GiB
    /// free still takes writes (CI machines are like that).
    #[test]
    fn the_reserve_is_a_tenth_up_to_a_gigabyte() {
        assert_eq!(kept_free(16 << 20), (16 << 20) / 10);
        assert_eq!(kept_free(5 << 30), (5 << 30) / 10);
        assert_eq!(kept_free(250 << 30), 1 << 30);
        assert_eq!(kept_free(0), 0);
    }

    #[tokio::test]
    async fn the_mirror_takes_aligned_and_unaligned_writes() {
        use crate::upload::part::PartBuf;
        let dir = tempfile::tempdir().unwrap();
        let journal = journal(&dir);
        let direct = StagingFile::create(&journal).unwrap();
        let mut buffered = StagingFile::create(&journal).unwrap();
        buffered.direct = std::sync::OnceLock::from(None);
        for (file, takes_direct) in [(direct, true), (buffered, false)] {
            assert!(
                file.direct.get().is_none() || !takes_direct,
                "opened when needed"
            );
            let mut part = PartBuf::new();
            part.fill(&[7u8; 8192], 8192);
            file.write_through(4096, part.freeze())
                .unwrap()
                .finish()
                .await
                .unwrap();
            assert_eq!(
                file.direct.get().is_some_and(|d| d.is_some()),
                takes_direct,
                "the test directory takes O_DIRECT"
            );
            file.write_through(3, Bytes::from_static(b"abc"))
                .unwrap()
                .finish()
                .await
                .unwrap();
            let back = file.read_at(0, 4096 + 8192).await.unwrap();
            assert_eq!(&back[..6], b"\0\0\0abc");
            assert!(back[4096..].iter().all(|&b| b == 7));
            file.remove();
        }
    }

    /// A copy kept in memory has no data file until something changes it: reads, its
    /// length and its snapshot come from memory; a write makes the file (0600) with the
    /// bytes in it first. The journal's room is taken while the bytes are held, and given
    /// back when they go (to the file, or with the copy); past the room, no copy is kept.
    #[tokio::test]
    async fn a_copy_in_memory_makes_its_file_only_when_changed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let journal = journal(&dir);
        let files = || std::fs::read_dir(dir.path()).unwrap().count();
        let kept = StagingFile::in_memory(&journal, Bytes::from_static(b"hello")).unwrap();
        let gone = StagingFile::in_memory(&journal, Bytes::from_static(b"bye")).unwrap();
        assert_eq!(files(), 0, "no data file");
        assert_eq!(&kept.read_at(1, 3).await.unwrap()[..], b"ell");
        assert_eq!(&kept.read_at(4, 10).await.unwrap()[..], b"o");
        assert!(kept.read_at(9, 1).await.unwrap().is_empty());
        assert_eq!(&kept.read_whole(5).unwrap()[..], b"hello");
        assert_eq!(kept.length().unwrap(), 5);
        assert!(matches!(kept.snapshot().unwrap(), Snapshot::Memory(b) if &b[..] == b"hello"));
        assert!(!journal.hold_memory(MEMORY_MAX - 7), "8 bytes are held");
        gone.remove();
        assert_eq!(files(), 0);

        kept.write_at(5, Bytes::from_static(b", world"))
            .await
            .unwrap();
        assert_eq!(std::fs::read(kept.path()).unwrap(), b"hello, world");
        let mode = std::fs::metadata(kept.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(kept.snapshot().unwrap(), Snapshot::File(_)));
        assert!(journal.hold_memory(MEMORY_MAX), "all given back");
        assert!(StagingFile::in_memory(&journal, Bytes::from_static(b"x")).is_none());
        journal.release_memory(MEMORY_MAX);
        let path = kept.path().to_path_buf();
        kept.remove();
        assert!(!path.exists());
    }

    /// The staging file is private to its owner and never reuses an existing path.
    #[tokio::test]
    async fn staging_file_is_private_and_exclusive() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let journal = journal(&dir);
        let a = StagingFile::create(&journal).unwrap();
        let b = StagingFile::create(&journal).unwrap();
        assert_ne!(a.path(), b.path());
        let mode = std::fs::metadata(a.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        a.write_at(3, Bytes::from_static(b"abc")).await.unwrap();
        assert_eq!(&a.read_at(0, 10).await.unwrap()[..], b"\0\0\0abc");
        a.set_len(4).await.unwrap();
        assert_eq!(&a.read_at(2, 10).await.unwrap()[..], b"\0a");
        let path = a.path().to_path_buf();
        a.remove();
        assert!(!path.exists());
    }
}
