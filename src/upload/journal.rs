//! The journal of files not yet in S3: what survives a crash (DESIGN invariant 5).
//!
//! Every local copy of a file being written (a staged copy, a streaming file's mirror)
//! lives in the journal directory as `<id>.data`, beside a small record `<id>.json` that
//! names what it is: endpoint, bucket and exact key, the version it was based on (ETag), its
//! size and which chunks are local or changed, whether its program had finished it
//! (`close`/`fsync` called: *complete*) or not, and the multipart uploads it started. So a
//! mount that dies (`kill -9`, OOM, reboot) leaves enough for the next one to finish the
//! job — or to put what it has beside the object, never over another client's newer data.
//!
//! - A record file is a log: each save appends the whole record as one JSON line (framed by
//!   newlines on both sides), and a reader takes the last line that parses. A save that a
//!   crash cut short is a line that does not parse, so the one before it stands; a save
//!   that must survive a power loss (the complete ones) is `fdatasync`'d, and the first
//!   such save of an entry also syncs the directory (its names). Appending instead of
//!   writing a new file and renaming it: `tar x` with write-back saves a record four or
//!   five times per file, and a new inode each time was most of its cost (measured: ext4's
//!   inode allocator took 12 s of the daemon's 16.5 s CPU for 5,000 files). A log past
//!   [`RECORD_LOG_MAX`] is rewritten as one line (a temporary file, then `rename`).
//! - A data file is held with `flock` by the process writing it, for its whole life: a
//!   record whose data file is locked belongs to a live mount and is left alone; the lock
//!   goes with the process however it dies.
//! - Names are ids (`<ms>-<pid>-<n>`), not keys: the record holds the key, exactly.
//! - The directory is a [`PrivateDir`]: the user's own, 0700, checked without following
//!   symlinks, every file opened relative to it, 0600, created `O_EXCL|O_NOFOLLOW`.
//!
//! - Files of entries that are done are kept as spares (`spare-<pid>-<n>`, emptied) and
//!   renamed into place for the next entries instead of new files: a file created and
//!   deleted per entry made ext4 scan its recently deleted inodes on every allocation
//!   (measured: 29 % of the daemon's CPU in `tar x` with write-back). A spare is taken
//!   with a rename that never replaces, so mounts sharing the directory never take the
//!   same one; a scan adopts the spares a dead mount left.
//!
//! - The complete record of a small file, with its bytes, goes to the close log shared by
//!   many entries instead (`close_log`): one sync per `close`.
//!
//! - An entry whose complete record and bytes are in the close log needs no data file
//!   until something changes it: a small file closed with write-back keeps its bytes in
//!   memory (`StagingFile::in_memory`) and its data file is made only when needed. The
//!   journal counts those bytes ([`Journal::hold_memory`], at most [`MEMORY_MAX`]).
//!
//! What the journal never does: decide what a record means for S3 (`pending` does), or
//! hold data in memory.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::chunks::Chunk;
use super::close_log::{self, CloseLog};
use super::UploadError;
use crate::private_dir::PrivateDir;
use crate::s3::Metadata;

/// The format of a record; a record of another version is left alone (and logged).
const RECORD_VERSION: u32 = 1;

/// How a spare's name begins.
const SPARE_PREFIX: &str = "spare-";

/// True when `name`, in a journal directory, is a spare (an emptied file kept for reuse),
/// not part of an entry.
pub fn is_spare(name: &str) -> bool {
    name.starts_with(SPARE_PREFIX)
}

/// Spares kept at most, per journal.
const SPARES_MAX: usize = 256;

/// The most bytes of entries' contents kept in memory instead of in data files, per
/// journal: small files closed with write-back, whose close log line holds their bytes
/// durably (see `StagingFile::in_memory`). 5,000 source files of 8.5 KiB take 43 MiB.
pub const MEMORY_MAX: u64 = 64 << 20;

/// A record log longer than this is rewritten as its last record alone on its next save.
const RECORD_LOG_MAX: u64 = 16 * 1024;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Which bucket (and where) the records of one mount are about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketId {
    /// The endpoint as configured (`None`: AWS).
    pub endpoint: Option<String>,
    pub bucket: String,
}

/// What one journal entry says about its data file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub origin: BucketId,
    /// The exact object key.
    pub key: String,
    /// The version the local copy was based on (`None`: a new file, no object before).
    pub base_etag: Option<String>,
    /// Bytes of the base still part of the file (see `ChunkMap`).
    pub base_limit: u64,
    pub size: u64,
    /// The chunk size and the chunks' states, run-length encoded (`ChunkMap::runs`). For
    /// a streaming file: the data file holds its bytes from 0 to the data file's length.
    pub chunk: u64,
    pub chunks: Vec<(Chunk, u64)>,
    /// A streaming file's mirror: the data file holds a prefix of the file.
    pub stream: bool,
    /// The program had called `close` or `fsync` on exactly this content: it may replace
    /// the object it was based on. An incomplete file only ever goes beside it.
    pub complete: bool,
    /// Multipart uploads started for this content (to resume or abort).
    pub upload_ids: Vec<String>,
    /// Records of an older version: the file time to store, in seconds since the epoch
    /// (now part of `metadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<f64>,
    /// What the object is to carry besides its bytes (content type, user metadata: modes,
    /// owners, times, xattrs).
    #[serde(default)]
    pub metadata: Metadata,
    /// When the record was last written, in seconds since the epoch.
    pub updated: u64,
}

impl Record {
    /// A record of a file not changed yet.
    pub fn new(origin: BucketId, key: String, base_etag: Option<String>, base_size: u64) -> Self {
        Record {
            version: RECORD_VERSION,
            origin,
            key,
            base_etag,
            base_limit: base_size,
            size: base_size,
            chunk: 0,
            chunks: Vec::new(),
            stream: false,
            complete: false,
            upload_ids: Vec::new(),
            mtime: None,
            metadata: Metadata::default(),
            updated: 0,
        }
    }

    /// What the object is to carry; a record of an older version kept only a time.
    pub fn metadata(&self) -> Metadata {
        let mut metadata = self.metadata.clone();
        let legacy = self
            .mtime
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| UNIX_EPOCH + std::time::Duration::from_secs_f64(s));
        if let (Some(t), None) = (legacy, metadata.mtime()) {
            metadata.set_time("mtime", t);
        }
        metadata
    }
}

/// A multipart upload to abort that the server could not be told about yet (an outage):
/// kept as `<sha256 of the id>.abort` until the abort goes through, so an unmount or a
/// crash in between does not leave the upload (and its parts' storage) behind for good.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortNote {
    pub origin: BucketId,
    pub key: String,
    pub upload_id: String,
}

/// The journal directory of one mount's bucket.
#[derive(Debug)]
pub struct Journal {
    dir: PrivateDir,
    origin: BucketId,
    /// Entries whose names (data and record) a directory sync made durable.
    named: Mutex<HashSet<String>>,
    /// Names of emptied files to use again (see the module doc).
    spares: Mutex<Vec<String>>,
    close_log: Mutex<CloseLog>,
    /// Bytes of entries' contents kept in memory, not in data files (see
    /// [`Journal::hold_memory`]).
    memory: AtomicU64,
}

/// Why [`Journal::create_data`] made no file.
enum CreateData {
    /// The name is someone else's (a file of that name exists, or the spare is held).
    Taken,
    Failed(UploadError),
}

/// A journal entry's data file, held (locked) by this process.
#[derive(Debug)]
pub struct EntryFile {
    pub id: String,
    pub file: File,
    pub path: PathBuf,
}

/// An entry found by [`Journal::scan`]: its record and its data file, now held by us.
#[derive(Debug)]
pub struct Found {
    pub record: Record,
    pub data: EntryFile,
}

impl Journal {
    /// The journal in `dir` for `origin`'s records.
    pub fn new(dir: PrivateDir, origin: BucketId) -> Arc<Journal> {
        Arc::new(Journal {
            dir,
            origin,
            named: Mutex::new(HashSet::new()),
            spares: Mutex::new(Vec::new()),
            close_log: Mutex::new(CloseLog::default()),
            memory: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn local_io(&self, name: &str) -> impl FnOnce(io::Error) -> UploadError {
        let path = self.dir.path().join(name);
        move |source| UploadError::LocalIo { path, source }
    }

    pub fn origin(&self) -> &BucketId {
        &self.origin
    }

    /// A new, empty, locked data file.
    pub fn create(&self) -> Result<EntryFile, UploadError> {
        for _ in 0..100 {
            let id = self.new_id();
            match self.create_data(&id) {
                Ok(file) => {
                    let path = self.dir.path().join(format!("{id}.data"));
                    return Ok(EntryFile { id, file, path });
                }
                Err(CreateData::Taken) => continue,
                Err(CreateData::Failed(e)) => return Err(e),
            }
        }
        Err(UploadError::LocalIo {
            path: self.dir.path().to_path_buf(),
            source: io::Error::other("no free journal entry name"),
        })
    }

    /// A name for a new entry (`<ms>-<pid>-<n>`), with no file yet.
    pub fn new_id(&self) -> String {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!(
            "{now_ms}-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The empty, locked data file of entry `id`, made now (a spare renamed into place,
    /// or a new file): for [`Journal::create`], and for an entry kept in memory until it
    /// needs one (see [`Journal::hold_memory`]).
    pub fn create_data_file(&self, id: &str) -> Result<File, UploadError> {
        // A spare another mount still held was removed on the way: try again.
        for _ in 0..3 {
            match self.create_data(id) {
                Ok(file) => return Ok(file),
                Err(CreateData::Taken) => continue,
                Err(CreateData::Failed(e)) => return Err(e),
            }
        }
        Err(self.local_io(&format!("{id}.data"))(io::Error::from(
            io::ErrorKind::AlreadyExists,
        )))
    }

    fn create_data(&self, id: &str) -> Result<File, CreateData> {
        let name = format!("{id}.data");
        if let Some(file) = self.take_spare(&name) {
            if lock(&file, true).is_ok() {
                return Ok(file);
            }
            // Still held by the process that gave it up: of no use.
            self.remove_name(&name);
            return Err(CreateData::Taken);
        }
        match self.dir.create_new(&name) {
            Ok(file) => {
                lock(&file, false).map_err(|e| CreateData::Failed(self.local_io(&name)(e)))?;
                Ok(file)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(CreateData::Taken),
            Err(e) => Err(CreateData::Failed(self.local_io(&name)(e))),
        }
    }

    /// Takes `len` bytes of the room for entries' contents kept in memory instead of a
    /// data file ([`MEMORY_MAX`]); `false`, taking nothing, when they do not fit.
    pub fn hold_memory(&self, len: u64) -> bool {
        self.memory
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(len).filter(|&n| n <= MEMORY_MAX)
            })
            .is_ok()
    }

    /// Gives back what [`Journal::hold_memory`] took.
    pub fn release_memory(&self, len: u64) {
        let _ = self
            .memory
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(len))
            });
    }

    /// The entry's data file opened again (for `O_DIRECT` writes, say); `flags` are
    /// `libc::O_*`, never following a symlink.
    pub fn reopen(&self, id: &str, flags: libc::c_int) -> io::Result<File> {
        self.dir.open(format!("{id}.data"), flags | libc::O_CLOEXEC)
    }

    /// Writes `record` for entry `id` (appended to its log, see the module doc); `durable`
    /// also survives a power loss.
    pub fn save(&self, id: &str, record: &Record, durable: bool) -> Result<(), UploadError> {
        let record = stamped(record);
        if self.is_logged(id) {
            return self.log(id, &record, durable, None);
        }
        self.save_own(id, &record, durable)
    }

    /// [`Journal::save`] to the entry's own record file.
    fn save_own(&self, id: &str, record: &Record, durable: bool) -> Result<(), UploadError> {
        let name = format!("{id}.json");
        let mut line = vec![b'\n'];
        serde_json::to_writer(&mut line, record)
            .map_err(|e| self.local_io(&name)(io::Error::other(e)))?;
        line.push(b'\n');
        let file = match self
            .dir
            .open(&name, libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC)
        {
            Ok(file) => {
                let len = file.metadata().map_err(self.local_io(&name))?.len();
                if len + line.len() as u64 > RECORD_LOG_MAX {
                    drop(file);
                    return self.rewrite(id, &line[1..], durable);
                }
                file
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.take_spare(&name) {
                Some(file) => file,
                None => self.dir.create_new(&name).map_err(self.local_io(&name))?,
            },
            Err(e) => return Err(self.local_io(&name)(e)),
        };
        (&file).write_all(&line).map_err(self.local_io(&name))?;
        if durable {
            file.sync_data().map_err(self.local_io(&name))?;
            self.sync_names(id)?;
        }
        Ok(())
    }

    /// Makes a small file's close durable in one sync: its complete `record` with `data`,
    /// the file's whole content, in the close log (see `close_log`). From here on the
    /// entry's records live there.
    pub fn save_closed(&self, id: &str, record: &Record, data: &[u8]) -> Result<(), UploadError> {
        self.log(id, &stamped(record), true, Some(data))
    }

    /// Moves entry `id`'s records out of the close log into its own record file, durably
    /// (`record` first, then a tombstone): an entry whose process lets go of its data file
    /// (a writer given up, the unmount) is then found by a scan like any other. The caller
    /// has synced the data file.
    pub fn unlog(&self, id: &str, record: &Record) -> Result<(), UploadError> {
        if !self.is_logged(id) {
            return Ok(());
        }
        self.save_own(id, &stamped(record), true)?;
        self.close_log().forget(&self.dir, id);
        Ok(())
    }

    /// True when entry `id`'s records live in the close log.
    pub fn is_logged(&self, id: &str) -> bool {
        self.close_log().holds(id)
    }

    fn log(
        &self,
        id: &str,
        record: &Record,
        durable: bool,
        data: Option<&[u8]>,
    ) -> Result<(), UploadError> {
        let mut log = self.close_log();
        let appended = log
            .append(&self.dir, id, record, data)
            .map_err(self.local_io("closes.log"))?;
        if durable {
            // A new segment's name must survive with the line; so must the data file's
            // when the line does not carry the bytes (recovery writes a data file it finds
            // missing from the line's bytes).
            let unnamed = data.is_none() && !self.named_set().contains(id);
            if appended.new_name || unnamed {
                self.dir.sync().map_err(self.local_io(&appended.name))?;
                if unnamed {
                    self.named_set().insert(id.to_string());
                }
            }
            appended
                .file
                .sync_data()
                .map_err(self.local_io(&appended.name))?;
        }
        Ok(())
    }

    fn close_log(&self) -> std::sync::MutexGuard<'_, CloseLog> {
        self.close_log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record log of `id` replaced by `line` alone, atomically.
    fn rewrite(&self, id: &str, line: &[u8], durable: bool) -> Result<(), UploadError> {
        let tmp = format!("{id}.json.tmp");
        let name = format!("{id}.json");
        let mut file = self
            .dir
            .open(
                &tmp,
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            )
            .map_err(self.local_io(&tmp))?;
        file.write_all(line).map_err(self.local_io(&tmp))?;
        if durable {
            file.sync_data().map_err(self.local_io(&tmp))?;
        }
        drop(file);
        // The name now means another file: durable again only after a directory sync.
        self.named_set().remove(id);
        self.dir.rename(&tmp, &name).map_err(self.local_io(&name))?;
        if durable {
            self.sync_names(id)?;
        }
        Ok(())
    }

    /// Makes the names of entry `id` durable, once: a directory sync the first time.
    fn sync_names(&self, id: &str) -> Result<(), UploadError> {
        if self.named_set().contains(id) {
            return Ok(());
        }
        self.dir
            .sync()
            .map_err(self.local_io(&format!("{id}.json")))?;
        self.named_set().insert(id.to_string());
        Ok(())
    }

    fn named_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.named.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes that `upload_id` of `key` is to be aborted (see [`AbortNote`]). A note that
    /// cannot be written is logged: the upload would then stay until a lifecycle rule.
    pub fn note_abort(&self, key: &str, upload_id: &str) {
        let note = AbortNote {
            origin: self.origin.clone(),
            key: key.to_string(),
            upload_id: upload_id.to_string(),
        };
        let name = abort_name(upload_id);
        let tmp = format!("{name}.tmp");
        let written = serde_json::to_vec(&note)
            .map_err(io::Error::other)
            .and_then(|text| {
                let mut file = self.dir.open(
                    &tmp,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                )?;
                file.write_all(&text)?;
                file.sync_all()?;
                self.dir.rename(&tmp, &name)?;
                self.dir.sync()
            });
        if let Err(e) = written {
            log::warn!(
                "cannot note the abort of multipart upload {upload_id} of {key:?} in {}: {e}",
                self.dir.path().display()
            );
        }
    }

    /// The abort of `upload_id` went through (or is of no use any more).
    pub fn forget_abort(&self, upload_id: &str) {
        self.remove_name(&abort_name(upload_id));
    }

    /// The aborts noted for this journal's origin.
    pub fn aborts(&self) -> Vec<AbortNote> {
        let names = self.dir.list().unwrap_or_default();
        names
            .into_iter()
            .filter_map(|n| n.into_string().ok())
            .filter(|n| n.ends_with(".abort"))
            .filter_map(|n| {
                let mut text = Vec::new();
                use std::io::Read;
                self.dir
                    .open(&n, libc::O_RDONLY | libc::O_CLOEXEC)
                    .ok()?
                    .read_to_end(&mut text)
                    .ok()?;
                serde_json::from_slice::<AbortNote>(&text).ok()
            })
            .filter(|note| note.origin == self.origin)
            .collect()
    }

    /// Removes the record of entry `id` (its data stays, clean).
    pub fn forget(&self, id: &str) {
        self.named_set().remove(id);
        if self.is_logged(id) {
            self.close_log().forget(&self.dir, id);
            return;
        }
        self.retire(&format!("{id}.json"));
    }

    /// Removes entry `id` whole: record, then data. `reusable`: no descriptor of the data
    /// file is open any more, so it may become a spare.
    pub fn remove(&self, id: &str, reusable: bool) {
        self.forget(id);
        let data = format!("{id}.data");
        match reusable {
            true => self.retire(&data),
            false => self.remove_name(&data),
        }
    }

    /// Removes entry `id`'s data file only (one made half way), not its record.
    pub fn remove_data(&self, id: &str) {
        self.remove_name(&format!("{id}.data"));
    }

    /// The file `name` is done with: emptied and kept as a spare, or removed.
    fn retire(&self, name: &str) {
        let spare = {
            let spares = self.spares_list();
            (spares.len() < SPARES_MAX).then(|| {
                format!(
                    "{SPARE_PREFIX}{}-{}",
                    std::process::id(),
                    NEXT_ID.fetch_add(1, Ordering::Relaxed)
                )
            })
        };
        let Some(spare) = spare else {
            return self.remove_name(name);
        };
        match self.dir.rename_noreplace(name, &spare) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(_) => return self.remove_name(name),
        }
        // The name is gone (as a removal would have it); the bytes go now.
        let emptied = self
            .dir
            .open(&spare, libc::O_WRONLY | libc::O_CLOEXEC)
            .and_then(|file| file.set_len(0));
        match emptied {
            Ok(()) => self.spares_list().push(spare),
            Err(_) => self.remove_name(&spare),
        }
    }

    /// A spare renamed to `name` (never over an existing `name`) and opened, if there is
    /// one.
    fn take_spare(&self, name: &str) -> Option<File> {
        loop {
            let spare = self.spares_list().pop()?;
            match self.dir.rename_noreplace(&spare, name) {
                Ok(()) => {
                    let opened = self
                        .dir
                        .open(name, libc::O_RDWR | libc::O_CLOEXEC)
                        .and_then(|file| {
                            // A spare a dead mount left before emptying it.
                            if file.metadata()?.len() != 0 {
                                file.set_len(0)?;
                            }
                            Ok(file)
                        });
                    return match opened {
                        Ok(file) => Some(file),
                        Err(_) => {
                            self.remove_name(name);
                            None
                        }
                    };
                }
                // Taken by another mount sharing the directory (or removed): the next.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(_) => {
                    self.spares_list().push(spare);
                    return None;
                }
            }
        }
    }

    fn spares_list(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.spares.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remove_name(&self, name: &str) {
        match self.dir.remove(name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::warn!(
                "removing {}: {e}; remove it by hand",
                self.dir.path().join(name).display()
            ),
        }
    }

    /// Every entry of this journal's origin that no live process holds, taken over (its
    /// data file locked by us). Leftovers of no use are removed on the way: data files
    /// without a record (a clean copy of a dead mount), temporary records.
    pub fn scan(&self) -> Vec<Found> {
        // Before the listing: what it converts has record files now. The data files of
        // this process's own logged entries are not leftovers either.
        let mut unconverted = self.convert_close_logs();
        unconverted.extend(self.close_log().ids());
        let mut names: Vec<String> = match self.dir.list() {
            Ok(names) => names
                .into_iter()
                .filter_map(|n| n.into_string().ok())
                .collect(),
            Err(e) => {
                log::warn!("cannot read the journal {}: {e}", self.dir.path().display());
                return Vec::new();
            }
        };
        names.sort();
        let mut found = Vec::new();
        for name in &names {
            if let Some(id) = name.strip_suffix(".json") {
                if let Some(entry) = self.take_over(id) {
                    found.push(entry);
                }
            } else if let Some(id) = name.strip_suffix(".data") {
                if !names.contains(&format!("{id}.json")) && !unconverted.contains(id) {
                    self.remove_unheld_data(id);
                }
            } else if name.ends_with(".json.tmp") || name.ends_with(".abort.tmp") {
                self.remove_name(name);
            } else if is_spare(name) {
                // Left by a mount that ended (or shared by a live one: a rename decides).
                let mut spares = self.spares_list();
                match spares.len() < SPARES_MAX {
                    true => spares.push(name.clone()),
                    false => {
                        drop(spares);
                        self.remove_name(name);
                    }
                }
            }
        }
        found
    }

    /// Turns the live entries of close-log segments that no live process holds into
    /// ordinary entries (data file from the line's bytes, synced; record file, durable),
    /// then deletes the segments. A segment whose entries cannot all be written (a full
    /// disk) stays for the next scan: returns the ids it still holds, whose data files
    /// must stay.
    fn convert_close_logs(&self) -> HashSet<String> {
        let mut unconverted = HashSet::new();
        let names: Vec<String> = match self.dir.list() {
            Ok(names) => names
                .into_iter()
                .filter_map(|n| n.into_string().ok())
                .collect(),
            Err(_) => return unconverted,
        };
        let dead = close_log::dead_segments(&self.dir, &names, true);
        for (id, logged) in &dead.entries {
            if let Err(e) = self.convert(id, logged, &names) {
                log::warn!("journal entry {id} of a close log: {e}; tried again later");
                unconverted.insert(id.clone());
            }
        }
        if unconverted.is_empty() && !dead.segments.is_empty() {
            for (name, _) in &dead.segments {
                self.remove_name(name);
            }
            if let Err(e) = self.dir.sync() {
                log::debug!("journal {}: {e}", self.dir.path().display());
            }
        } else {
            // Every entry of a kept segment stays protected, converted or not.
            unconverted.extend(dead.entries.into_keys());
        }
        unconverted
    }

    /// One entry of a dead close log made an ordinary entry (see `convert_close_logs`).
    fn convert(
        &self,
        id: &str,
        logged: &close_log::Logged,
        names: &[String],
    ) -> Result<(), UploadError> {
        let name = format!("{id}.data");
        if names.iter().any(|n| *n == format!("{id}.json")) {
            return Ok(()); // converted by an earlier scan that stopped half way
        }
        let file = match self.dir.open(&name, libc::O_RDWR | libc::O_CLOEXEC) {
            Ok(file) => file,
            // Its name did not survive (a power loss): the line has the bytes. Or, with no
            // bytes in the line, it was removed (uploaded) after it.
            Err(e) if e.kind() == io::ErrorKind::NotFound && logged.data.is_some() => {
                self.dir.create_new(&name).map_err(self.local_io(&name))?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.local_io(&name)(e)),
        };
        if let Some(data) = &logged.data {
            use std::os::unix::fs::FileExt;
            file.write_all_at(data, 0)
                .and_then(|()| file.set_len(data.len() as u64))
                .and_then(|()| file.sync_data())
                .map_err(self.local_io(&name))?;
        }
        drop(file);
        self.save(id, &logged.record, true)
    }

    /// Every record in the journal directory `dir`, whatever its origin, without taking
    /// any over (for `s3rolefs recover --dry-run`): id, record, and whether a live process
    /// holds it.
    pub fn list_all(dir: &PrivateDir) -> io::Result<Vec<(String, Record, bool)>> {
        let mut out = Vec::new();
        let mut names: Vec<String> = dir
            .list()?
            .into_iter()
            .filter_map(|n| n.into_string().ok())
            .collect();
        names.sort();
        let logged = close_log::dead_segments(dir, &names, false);
        for (id, entry) in logged.entries {
            let json = format!("{id}.json");
            // Uploaded (its data file gone, no bytes in the line), or converted.
            let no_data = !names.contains(&format!("{id}.data")) && entry.data.is_none();
            if names.contains(&json) || no_data {
                continue;
            }
            out.push((id, entry.record, entry.held));
        }
        for name in names {
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            let Ok(record) = read_record(dir, &name) else {
                continue;
            };
            let held = match dir.open(format!("{id}.data"), libc::O_RDWR | libc::O_CLOEXEC) {
                Ok(file) => lock(&file, true).is_err(),
                Err(_) => false,
            };
            out.push((id.to_string(), record, held));
        }
        Ok(out)
    }

    fn take_over(&self, id: &str) -> Option<Found> {
        let name = format!("{id}.json");
        let record = match read_record(&self.dir, &name) {
            Ok(r) => r,
            Err(e) => {
                log::warn!(
                    "journal record {} cannot be read ({e}); it is left as it is",
                    self.dir.path().join(&name).display()
                );
                return None;
            }
        };
        if record.version != RECORD_VERSION || record.origin != self.origin {
            return None;
        }
        let data = format!("{id}.data");
        let file = match self.dir.open(&data, libc::O_RDWR | libc::O_CLOEXEC) {
            Ok(file) => file,
            // A record whose data never reached the disk (a mirror given up, say): its
            // uploads still need aborting, so it is handed on with an empty file.
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.dir.create_new(&data).ok()?,
            Err(e) => {
                log::warn!(
                    "journal data {}: {e}; left as it is",
                    self.dir.path().join(&data).display()
                );
                return None;
            }
        };
        // Held by a live mount (another process, or this one): not ours.
        lock(&file, true).ok()?;
        Some(Found {
            record,
            data: EntryFile {
                id: id.to_string(),
                file,
                path: self.dir.path().join(&data),
            },
        })
    }

    fn remove_unheld_data(&self, id: &str) {
        let name = format!("{id}.data");
        let Ok(file) = self.dir.open(&name, libc::O_RDWR | libc::O_CLOEXEC) else {
            return;
        };
        if lock(&file, true).is_ok() {
            self.remove_name(&name);
        }
    }
}

/// `record` as this version writes it, stamped with the time.
fn stamped(record: &Record) -> Record {
    let mut record = record.clone();
    record.version = RECORD_VERSION;
    record.updated = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    record
}

/// The file name of the abort note of `upload_id` (ids hold characters no file name
/// should).
fn abort_name(upload_id: &str) -> String {
    use sha2::Digest as _;
    format!(
        "{}.abort",
        hex::encode(sha2::Sha256::digest(upload_id.as_bytes()))
    )
}

fn read_record(dir: &PrivateDir, name: &str) -> io::Result<Record> {
    use std::io::Read;
    let mut text = Vec::new();
    dir.open(name, libc::O_RDONLY | libc::O_CLOEXEC)?
        .read_to_end(&mut text)?;
    last_record(&text)
}

/// The last record of a record log that parses (a record of an older version is the log's
/// one line, without newlines around it).
pub(crate) fn last_record(log: &[u8]) -> io::Result<Record> {
    let mut last_error = None;
    for line in log.rsplit(|b| *b == b'\n') {
        if line.iter().all(|b| b.is_ascii_whitespace() || *b == 0) {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(record) => return Ok(record),
            Err(e) => last_error = last_error.or(Some(e)),
        }
    }
    Err(match last_error {
        Some(e) => io::Error::other(e),
        None => io::Error::new(io::ErrorKind::InvalidData, "an empty record"),
    })
}

/// `flock(LOCK_EX)`: held until the file is closed (or the process dies). `try_only`: fail
/// at once when another holds it.
pub(super) fn lock(file: &File, try_only: bool) -> io::Result<()> {
    let mut op = libc::LOCK_EX;
    if try_only {
        op |= libc::LOCK_NB;
    }
    // SAFETY: flock on a descriptor this function borrows; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private(dir: &tempfile::TempDir) -> PrivateDir {
        PrivateDir::create(dir.path()).unwrap()
    }

    fn origin(bucket: &str) -> BucketId {
        BucketId {
            endpoint: Some("http://127.0.0.1:9000".into()),
            bucket: bucket.into(),
        }
    }

    /// A record written is read back whole by a later scan, which takes its data over;
    /// records of another bucket are left alone.
    #[test]
    fn records_survive_and_belong_to_their_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(private(&dir), origin("bkt"));
        let entry = journal.create().unwrap();
        std::io::Write::write_all(&mut &entry.file, b"data").unwrap();
        let mut record = Record::new(origin("bkt"), "a/b c".into(), Some("\"e\"".into()), 4);
        record.complete = true;
        journal.save(&entry.id, &record, true).unwrap();
        let other = Journal::new(private(&dir), origin("other"));
        let e2 = other.create().unwrap();
        other
            .save(
                &e2.id,
                &Record::new(origin("other"), "x".into(), None, 0),
                false,
            )
            .unwrap();
        drop((entry, e2));

        let found = journal.scan();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].record.key, "a/b c");
        assert!(found[0].record.complete);
        assert_eq!(std::fs::read(&found[0].data.path).unwrap(), b"data");
    }

    /// An entry whose data file a live writer holds is not taken over.
    #[test]
    fn a_held_entry_is_left_to_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(private(&dir), origin("bkt"));
        let entry = journal.create().unwrap();
        journal
            .save(
                &entry.id,
                &Record::new(origin("bkt"), "k".into(), None, 0),
                false,
            )
            .unwrap();
        assert!(journal.scan().is_empty(), "held by `entry`");
        drop(entry);
        assert_eq!(journal.scan().len(), 1);
    }

    /// Each save appends to the record's log and the last whole record wins: a save a
    /// crash cut short (half a line, or zeros where the disk had not written yet) leaves
    /// the one before it, later saves still count, and a long log is rewritten whole.
    #[test]
    fn the_last_whole_record_of_the_log_wins() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(private(&dir), origin("bkt"));
        let entry = journal.create().unwrap();
        let mut record = Record::new(origin("bkt"), "k".into(), None, 0);
        journal.save(&entry.id, &record, false).unwrap();
        record.size = 7;
        record.complete = true;
        journal.save(&entry.id, &record, true).unwrap();
        let log = dir.path().join(format!("{}.json", entry.id));
        let whole = std::fs::read(&log).unwrap();
        let line = whole
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap()
            .to_vec();
        let mut torn = whole.clone();
        torn.extend_from_slice(&line[..line.len() / 2]);
        torn.extend_from_slice(&[0; 300]);
        std::fs::write(&log, &torn).unwrap();
        let read = |dir: &tempfile::TempDir| {
            read_record(&private(dir), &format!("{}.json", entry.id)).unwrap()
        };
        assert_eq!((read(&dir).size, read(&dir).complete), (7, true));

        record.size = 9;
        journal.save(&entry.id, &record, false).unwrap();
        assert_eq!(read(&dir).size, 9, "a save after a torn one counts");

        for size in 10..400 {
            record.size = size;
            journal.save(&entry.id, &record, size % 50 == 0).unwrap();
        }
        assert!(std::fs::metadata(&log).unwrap().len() <= RECORD_LOG_MAX);
        assert_eq!(read(&dir).size, 399);

        let legacy = serde_json::to_vec(&record).unwrap();
        std::fs::write(&log, legacy).unwrap();
        assert_eq!(
            read(&dir).size,
            399,
            "a record of an older version is one line"
        );
        std::fs::write(&log, b"{\"version\":1,").unwrap();
        assert!(read_record(&private(&dir), &format!("{}.json", entry.id)).is_err());
    }

    /// A small file's close goes to the close log with its bytes; after its process dies
    /// a scan makes it an ordinary entry again — its data file rewritten from the line
    /// (torn here), or made (gone here) — while an entry removed after its line stays gone
    /// and the dead segment is deleted. A live process's entries are left alone.
    #[test]
    fn a_dead_close_log_becomes_ordinary_entries() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(private(&dir), origin("bkt"));
        let mut ids = Vec::new();
        let mut held = Vec::new();
        for (i, key) in ["torn", "gone", "done"].iter().enumerate() {
            let entry = journal.create().unwrap();
            std::io::Write::write_all(&mut &entry.file, key.as_bytes()).unwrap();
            let mut record = Record::new(origin("bkt"), (*key).into(), None, key.len() as u64);
            record.complete = true;
            journal
                .save_closed(&entry.id, &record, key.as_bytes())
                .unwrap();
            assert!(journal.is_logged(&entry.id));
            // A later save of a logged entry (a chmod after the close) stays in the log.
            journal.save(&entry.id, &record, i == 0).unwrap();
            ids.push(entry.id.clone());
            held.push(entry);
        }
        assert!(!dir.path().join(format!("{}.json", ids[0])).exists());
        journal.remove(&ids[2], false);
        let other = Journal::new(private(&dir), origin("bkt"));
        assert!(other.scan().is_empty(), "the log's process lives");

        drop((journal, held)); // the process dies: its locks go
        std::fs::write(dir.path().join(format!("{}.data", ids[0])), b"xx").unwrap();
        std::fs::remove_file(dir.path().join(format!("{}.data", ids[1]))).unwrap();
        let mut found = other.scan();
        found.sort_by(|a, b| a.record.key.cmp(&b.record.key));
        let keys: Vec<&str> = found.iter().map(|f| f.record.key.as_str()).collect();
        assert_eq!(keys, ["gone", "torn"]);
        for f in &found {
            assert!(f.record.complete);
            assert_eq!(
                std::fs::read(&f.data.path).unwrap(),
                f.record.key.as_bytes()
            );
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            !names.iter().any(|n| close_log::is_segment(n)),
            "the dead segment is deleted: {names:?}"
        );
        for f in found {
            let id = f.data.id.clone();
            drop(f);
            other.remove(&id, true);
        }
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !is_spare(n))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// A finished entry's files become spares, emptied, and the next entries are made of
    /// them (no new inodes); a spare a dead mount left with bytes in it is adopted by a
    /// scan and emptied before use.
    #[test]
    fn finished_entries_files_are_used_again() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(private(&dir), origin("bkt"));
        let entry = journal.create().unwrap();
        std::io::Write::write_all(&mut &entry.file, b"data").unwrap();
        journal
            .save(
                &entry.id,
                &Record::new(origin("bkt"), "k".into(), None, 4),
                true,
            )
            .unwrap();
        let inodes = |names: &[String]| -> Vec<u64> {
            let mut v: Vec<u64> = names
                .iter()
                .map(|n| std::fs::metadata(dir.path().join(n)).unwrap().ino())
                .collect();
            v.sort();
            v
        };
        let before = inodes(&[format!("{}.data", entry.id), format!("{}.json", entry.id)]);
        let id = entry.id.clone();
        drop(entry);
        journal.remove(&id, true);
        let names = |dir: &tempfile::TempDir| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        let spares = names(&dir);
        assert_eq!(spares.len(), 2);
        assert!(spares.iter().all(|n| n.starts_with("spare-")), "{spares:?}");
        assert_eq!(inodes(&spares), before);
        for n in &spares {
            assert_eq!(std::fs::metadata(dir.path().join(n)).unwrap().len(), 0);
        }

        let next = journal.create().unwrap();
        journal
            .save(
                &next.id,
                &Record::new(origin("bkt"), "k2".into(), None, 0),
                false,
            )
            .unwrap();
        let after = inodes(&[format!("{}.data", next.id), format!("{}.json", next.id)]);
        assert_eq!(after, before, "the spares became the new entry");
        drop(next);

        // A dead mount's spare with bytes still in it: adopted, and emptied when used.
        std::fs::write(dir.path().join("spare-1-1"), b"stale").unwrap();
        let other = Journal::new(private(&dir), origin("bkt"));
        assert_eq!(other.scan().len(), 1, "the entry made of spares");
        let fresh = other.create().unwrap();
        assert_eq!(fresh.file.metadata().unwrap().len(), 0);
    }

    /// An abort noted for later is listed for its bucket only, until it is forgotten.
    #[test]
    fn abort_notes_last_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(private(&dir), origin("bkt"));
        let other = Journal::new(private(&dir), origin("other"));
        journal.note_abort("a/b", "2~upload/id+with=odd chars");
        assert!(other.aborts().is_empty());
        let notes = journal.aborts();
        assert_eq!(notes.len(), 1);
        assert_eq!(
            (notes[0].key.as_str(), notes[0].upload_id.as_str()),
            ("a/b", "2~upload/id+with=odd chars")
        );
        assert!(journal.scan().is_empty(), "a note is not a file to upload");
        journal.forget_abort("2~upload/id+with=odd chars");
        assert!(journal.aborts().is_empty());
    }

    /// Data without a record (a clean copy left by a dead mount) and temporary records are
    /// cleaned up; files are private.
    #[test]
    fn leftovers_are_cleaned_and_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(private(&dir), origin("bkt"));
        let entry = journal.create().unwrap();
        let mode = std::fs::metadata(&entry.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join("1-2-3.json.tmp"), b"{").unwrap();
        let path = entry.path.clone();
        drop(entry);
        assert!(journal.scan().is_empty());
        assert!(!path.exists());
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
