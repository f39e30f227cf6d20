//! `OpenWriter`: the write state machine of one open file.
//!
//! Two states, each its own type, so the "no byte lost" invariant reads in one place per
//! state:
//!
//! - [`Mode::Streaming`] ([`Stream`]: a new file, written at its end): the bytes fill a
//!   part buffer; each full part goes to the [`Mirror`] and up as the next part of a
//!   [`MultipartUpload`] while the program keeps writing. Every byte is in the part buffer,
//!   in the mirror, or (mirror given up: [`Unkept`](super::mirror::Unkept)) in S3's upload.
//!   A write inside the part being filled changes it in memory and the file keeps
//!   streaming; writes that only add to the part buffer are taken without waiting
//!   ([`OpenWriter::write_now`]).
//! - [`Mode::Staged`] ([`Staged`]: everything else): a sparse local copy takes the writes;
//!   flush uploads what changed (see `staged`).
//!
//! Transitions, each a method that consumes one state and makes the next:
//!
//! - streaming → staged (`switch_to_staged`): a write away from the end, a truncate, a
//!   failed upload, an unlink. The part buffer is spilled to the mirror first (so every
//!   byte is local), then the upload is aborted — or, after a failure, kept for the next
//!   flush to resume. If the disk refuses the spill, nothing changes and the disk's error is
//!   returned: the data stays in memory while the writer lives.
//! - streaming → staged after a successful flush: a completed upload cannot be appended
//!   to; the mirror becomes a clean copy based on the new object.
//!
//! The journal (DESIGN invariant 5): once a file's bytes touch the disk, a record names
//! them (`journal`). A flush first makes the local copy durable and marks the record
//! *complete* (`fsync`, then the record), then uploads; success removes the record, failure
//! leaves it for the background retry and for the next mount. A file smaller than one part
//! goes up from memory and touches the disk only if its upload fails (then before `close()`
//! returns the error).
//!
//! Concurrency: one tokio mutex over the state, held across S3 calls, because every
//! operation must see the mode and the size the previous one left; handles of one inode
//! share the writer (read-your-writes). `size` and `is_dirty` are mirrored in atomics so
//! `stat` never waits for an upload.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use log::{debug, warn};
use tokio::sync::Mutex;

use super::budget::Reservation;
use super::close_log::INLINE_MAX;
use super::journal::Record;
use super::mirror::{not_kept, Mirror};
use super::part::{PartBuf, WHOLE_PART_FROM};
use super::staged::{too_large, Base, Ctx, Staged};
use super::staging::{Snapshot, StagingFile};
use super::{stamp_times, MultipartUpload, Origin, UploadError, WriterConfig};
use crate::s3::{Metadata, ObjectClient, ObjectMeta, PutObjectParams, S3Error};

/// The write side of one open file (shared by the handles of one inode).
pub struct OpenWriter<C: ObjectClient> {
    client: Arc<C>,
    /// The ETag of the object this file's content replaces (`None`: there was none): the
    /// version it was opened on, the one it truncated or was renamed over, then each
    /// version it uploaded. A write-back upload finds another one there: a conflict.
    replaces: std::sync::Mutex<Option<String>>,
    /// The object key the file uploads to; changes when the file is renamed while open.
    key: std::sync::Mutex<String>,
    /// Set when the file was unlinked while open: its handles keep it, S3 never sees it
    /// again (POSIX: the data lives until the last handle closes, under no name).
    unlinked: AtomicBool,
    config: Arc<WriterConfig>,
    state: Mutex<State<C>>,
    size: AtomicU64,
    dirty: AtomicBool,
    /// What the object is to carry besides its bytes (see [`OpenWriter::set_metadata`]).
    meta: std::sync::Mutex<WriteMeta>,
    /// A closed file's local copy, whole, and its size (write-back, from
    /// [`OpenWriter::persist`] until the next change): reads are served from it without
    /// waiting for the writer, which an upload holds for as long as it takes.
    view: std::sync::Mutex<Option<LocalView>>,
}

/// A closed file's whole local copy, readable without the writer (see `OpenWriter::view`).
#[derive(Clone, Debug)]
struct LocalView {
    copy: Snapshot,
    path: PathBuf,
    size: u64,
}

/// The metadata an upload sends, as the filesystem set it.
#[derive(Clone, Debug, Default)]
struct WriteMeta {
    metadata: Metadata,
    /// No write came since the file times in `metadata` were set (at open, by `utimes`):
    /// they are stored as they are. After a write, an upload moves them to the time of
    /// the last change, `written_at` ([`stamp_times`]).
    times_set: bool,
    /// When the content last changed through this writer (a write, a truncate): the
    /// file's mtime, shown and stored, unless times were set after it.
    written_at: Option<SystemTime>,
    /// What the object S3 holds of this file carries (as opened, uploaded or copied):
    /// an append (`--incremental-upload`) cannot change it, so one is made only when the
    /// upload would send exactly this.
    stored: Metadata,
}

impl WriteMeta {
    /// What an upload starting now sends: the file times as set, or those of the last
    /// change (however long the upload waited: write-back, an outage).
    fn to_send(&self) -> Metadata {
        let mut metadata = self.metadata.clone();
        if !self.times_set {
            stamp_times(
                &mut metadata,
                self.written_at.unwrap_or_else(SystemTime::now),
            );
        }
        metadata
    }
}

/// A new file written at its end, going up while it is written.
struct Stream<C: ObjectClient> {
    upload: MultipartUpload<C>,
    /// The part being filled: the file's last bytes, at most one part.
    part: PartBuf,
    /// The part buffer's share of the mount's upload memory, once it grew to a whole part.
    hold: Option<Reservation>,
    mirror: Mirror,
}

impl<C: ObjectClient> Stream<C> {
    /// Where the part buffer starts in a file of `size` bytes: everything before it was sent.
    fn tail_start(&self, size: u64) -> u64 {
        size - self.part.len() as u64
    }

    /// Puts the part buffer's bytes the mirror lacks on disk: then every byte of the file
    /// (`size` bytes) is in the mirror.
    async fn spill(
        &mut self,
        journal: &Arc<super::journal::Journal>,
        key: &str,
        size: u64,
    ) -> Result<(), UploadError> {
        let tail_start = self.tail_start(size);
        self.mirror
            .spill(journal, key, tail_start, self.part.as_slice())
            .await
    }
}

enum Mode<C: ObjectClient> {
    Streaming(Stream<C>),
    Staged(Staged),
}

struct State<C: ObjectClient> {
    mode: Mode<C>,
    /// What the journal says of this file, while it says something (`recorded`).
    record: Record,
    recorded: bool,
    /// The last record written was synced: a power loss keeps what `record` says.
    synced: bool,
}

impl<C: ObjectClient> OpenWriter<C> {
    /// The writer of `key`, opened as `origin` says. Nothing happens in S3 or on disk yet.
    /// `metadata`: what the object is to carry besides its bytes (the file times in it
    /// are moved to each upload's time, see [`OpenWriter::set_metadata`]).
    pub fn new(
        client: Arc<C>,
        key: String,
        origin: Origin,
        metadata: Metadata,
        config: Arc<WriterConfig>,
    ) -> Self {
        let origin_bucket = config.journal.origin().clone();
        let replaces = match &origin {
            Origin::Existing { etag, .. } => Some(etag.clone()),
            Origin::New => None,
        };
        let (mode, record, size, dirty) = match origin {
            Origin::New if config.local_only => {
                // Kept off S3: the file is a local copy from its first byte.
                let record = Record::new(origin_bucket, key.clone(), None, 0);
                let staged = Staged::local(None, 0, config.part_size);
                (Mode::Staged(staged), record, 0, true)
            }
            Origin::New => {
                let mut upload = MultipartUpload::new(
                    client.clone(),
                    key.clone(),
                    config.part_size,
                    config.concurrency,
                )
                .with_journal(Arc::clone(&config.journal));
                upload.set_metadata(metadata.clone(), false);
                let stream = Stream {
                    upload,
                    part: PartBuf::new(),
                    hold: None,
                    mirror: Mirror::default(),
                };
                let mut record = Record::new(origin_bucket, key.clone(), None, 0);
                record.stream = true;
                record.chunk = config.part_size;
                // A created (or O_TRUNC) file must exist in S3 after close, even if empty.
                (Mode::Streaming(stream), record, 0, true)
            }
            Origin::Existing { etag, size } => {
                let base = Base {
                    key: key.clone(),
                    etag: etag.clone(),
                };
                let staged = Staged::existing(base, size, config.part_size);
                let record = Record::new(origin_bucket, key.clone(), Some(etag), size);
                (Mode::Staged(staged), record, size, false)
            }
        };
        OpenWriter {
            client,
            replaces: std::sync::Mutex::new(replaces),
            key: std::sync::Mutex::new(key),
            unlinked: AtomicBool::new(false),
            config,
            state: Mutex::new(State {
                mode,
                record,
                recorded: false,
                synced: false,
            }),
            size: AtomicU64::new(size),
            dirty: AtomicBool::new(dirty),
            meta: std::sync::Mutex::new(WriteMeta {
                stored: metadata.clone(),
                metadata,
                times_set: true,
                written_at: None,
            }),
            view: std::sync::Mutex::new(None),
        }
    }

    /// `chmod`, `chown`, `utimes`, `setxattr` on the open file: the object is to carry
    /// `metadata` (all of it: what it lacks is gone). `times_set`: `Some(true)` when its
    /// file times were set explicitly (stored as they are, until a write moves them to the
    /// upload's time); `None` leaves that as it was. A file with changes not uploaded
    /// yet carries it with its next upload (if that upload had already started, its
    /// metadata went with CreateMultipartUpload, and the completed object is copied onto
    /// itself with the new metadata, see `fix_metadata`). A file S3 holds as it is gets it
    /// now, with a copy onto itself: then the object's new ETag and size are returned.
    pub async fn set_metadata(
        &self,
        metadata: Metadata,
        times_set: Option<bool>,
    ) -> Result<Option<(String, u64)>, UploadError> {
        let mut state = self.state.lock().await;
        self.apply_metadata(&mut state, metadata, times_set);
        if self.holds_changes() {
            return Ok(None);
        }
        let key = self.key();
        let size = self.size();
        let wanted = self.metadata_as_set();
        let copied = self
            .copy_onto_itself(&mut state, &key, size, &wanted)
            .await?;
        Ok(Some((copied, size)))
    }

    /// [`OpenWriter::set_metadata`] without waiting, for the request loop: `false` when it
    /// cannot be done at once (the writer is busy, or the file is as S3 holds it, so the
    /// change is a copy in S3), and nothing changed.
    pub fn set_metadata_now(&self, metadata: Metadata, times_set: Option<bool>) -> bool {
        if !self.holds_changes() {
            return false;
        }
        let Ok(mut state) = self.state.try_lock() else {
            return false;
        };
        if !self.holds_changes() {
            return false; // uploaded meanwhile
        }
        self.apply_metadata(&mut state, metadata, times_set);
        true
    }

    /// True when a change of the metadata goes with the file's next upload (or nowhere),
    /// not to S3 at once.
    fn holds_changes(&self) -> bool {
        self.is_dirty() || self.is_unlinked() || self.config.local_only
    }

    /// The metadata of [`OpenWriter::set_metadata`] taken: for the next upload, and into
    /// the journal's record of a closed file.
    fn apply_metadata(&self, state: &mut State<C>, metadata: Metadata, times_set: Option<bool>) {
        let (times_set, written_at, stored) = {
            let old = self.meta_slot();
            (
                times_set.unwrap_or(old.times_set),
                old.written_at,
                old.stored.clone(),
            )
        };
        let meta = WriteMeta {
            metadata,
            times_set,
            written_at,
            stored,
        };
        if let Mode::Streaming(stream) = &mut state.mode {
            stream
                .upload
                .set_metadata(meta.metadata.clone(), !meta.times_set);
        }
        *self.meta_slot() = meta;
        if self.is_dirty() && state.recorded && state.record.complete {
            // Closed and waiting for its upload (write-back, or a close that failed): the
            // journal's record carries the change too, so a crash of the daemon does not
            // lose it. Not synced: `tar x` sets times and modes on every file it closes,
            // and a power loss costs only this change, never the data its close made
            // durable.
            state.record.metadata = self.metadata();
            self.save_record(state, false);
        }
    }

    /// The metadata the next upload sends (its file times as they would be now).
    pub fn metadata(&self) -> Metadata {
        self.meta_slot().to_send()
    }

    /// The metadata as the filesystem set it, times unstamped.
    pub fn metadata_as_set(&self) -> Metadata {
        self.meta_slot().metadata.clone()
    }

    fn meta_slot(&self) -> std::sync::MutexGuard<'_, WriteMeta> {
        // Holds a plain value; a panic elsewhere cannot leave it inconsistent.
        self.meta.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A write came: the file times are the write's again. Returns whether they were
    /// not yet (a streaming upload must be told).
    fn written(&self) -> bool {
        let mut meta = self.meta_slot();
        meta.written_at = Some(SystemTime::now());
        std::mem::replace(&mut meta.times_set, false)
    }

    /// The file's mtime as its content makes it: when it last changed through this
    /// writer, unless times were set since (`utimes`: then the inode's are right).
    pub fn modified_at(&self) -> Option<SystemTime> {
        let meta = self.meta_slot();
        meta.written_at.filter(|_| !meta.times_set)
    }

    /// The content changed without a write (`O_TRUNC` of an existing file): the upload
    /// stores the time of that change as the file's.
    pub async fn touch(&self) {
        let mut state = self.state.lock().await;
        if self.written() {
            if let Mode::Streaming(stream) = &mut state.mode {
                stream.upload.stamp_times();
            }
        }
    }

    /// The object key this writer uploads to.
    pub fn key(&self) -> String {
        self.key_slot().clone()
    }

    fn key_slot(&self) -> std::sync::MutexGuard<'_, String> {
        // Holds a plain value; a panic elsewhere cannot leave it inconsistent.
        self.key.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once the file was unlinked while open (see [`OpenWriter::unlink`]).
    pub fn is_unlinked(&self) -> bool {
        self.unlinked.load(Ordering::Acquire)
    }

    /// The file's current size, written bytes included (for `stat` before the upload).
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// True when the file has changes S3 has not acknowledged yet.
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// True while the file streams as a multipart upload (not staged).
    pub async fn is_streaming(&self) -> bool {
        matches!(self.state.lock().await.mode, Mode::Streaming(_))
    }

    /// The local copy's path, once there is one.
    pub async fn staging_path(&self) -> Option<PathBuf> {
        let state = self.state.lock().await;
        local_file(&state.mode).map(|f| f.path().to_path_buf())
    }

    fn ctx<'a>(&'a self, key: &'a str) -> Ctx<'a, C> {
        Ctx {
            client: &self.client,
            config: &self.config,
            key,
        }
    }

    /// Writes `data` at `offset` at once if that needs neither S3 nor the disk nor a wait:
    /// the file streams, `data` goes at its end, the part being filled has room for all of
    /// it (and, past its first MiB, its share of the upload memory), and no other call
    /// holds the writer. `None` otherwise: then [`OpenWriter::write`] does it. For the
    /// filesystem's request loop, which can copy the kernel's buffer straight into the part
    /// this way: one copy of each byte instead of two, and no task for seven of the eight
    /// 1 MiB writes that fill an 8 MiB part.
    pub fn write_now(&self, offset: u64, data: &[u8]) -> Option<usize> {
        let mut state = self.state.try_lock().ok()?;
        let Mode::Streaming(stream) = &mut state.mode else {
            return None;
        };
        let limit = stream.upload.next_part_size() as usize;
        if data.is_empty()
            || stream.upload.has_ended()
            || offset != self.size()
            || stream.part.len() + data.len() >= limit
        {
            return None;
        }
        if stream.hold.is_none() && stream.part.len() + data.len() >= WHOLE_PART_FROM {
            stream.hold = Some(self.config.budget.try_reserve(limit as u64)?);
        }
        if self.written() {
            stream.upload.stamp_times();
        }
        let took = stream.part.fill(data, limit);
        self.size.fetch_add(took as u64, Ordering::AcqRel);
        self.dirty.store(true, Ordering::Release);
        Some(took)
    }

    /// Writes `data` at `offset`; returns how many bytes were written (all of them, but
    /// for a short write when the disk refuses the mirror, see `write_more`).
    pub async fn write(&self, offset: u64, data: Bytes) -> Result<usize, UploadError> {
        if data.is_empty() {
            return Ok(0);
        }
        let key = self.key();
        too_large(&key, offset + data.len() as u64)?;
        let mut state = self.state.lock().await;
        self.view_slot().take();
        self.settle(&mut state).await?;
        if self.written() {
            if let Mode::Streaming(stream) = &mut state.mode {
                stream.upload.stamp_times();
            }
        }
        if offset != self.size() {
            if self.patch_part(&mut state, offset, &data) {
                return Ok(data.len());
            }
            self.switch_to_staged(&mut state, "a write away from the end", false)
                .await?;
        }
        match &mut state.mode {
            Mode::Staged(_) => self.write_staged(&mut state, offset, data).await,
            Mode::Streaming(stream) => {
                if stream.part.len() as u64 >= stream.upload.next_part_size() {
                    // The last part could not go to the mirror: no more bytes until it can.
                    self.send_full_parts(&mut state).await?;
                }
                self.write_more(&mut state, data).await
            }
        }
    }

    /// Writes `data` at `offset` into the staged copy.
    async fn write_staged(
        &self,
        state: &mut State<C>,
        offset: u64,
        data: Bytes,
    ) -> Result<usize, UploadError> {
        let key = self.key();
        let len = data.len();
        let Mode::Staged(staged) = &mut state.mode else {
            return Ok(0);
        };
        let changed = staged.write(&self.ctx(&key), offset, data).await?;
        self.size.store(staged.size(), Ordering::Release);
        self.dirty.store(true, Ordering::Release);
        if changed || state.record.complete || !state.recorded {
            state.record.complete = false;
            self.save_record(state, false);
        }
        Ok(len)
    }

    /// A write that falls wholly inside the part being filled (a header patched while the
    /// file is still small, say) changes it in memory, and the file keeps streaming.
    fn patch_part(&self, state: &mut State<C>, offset: u64, data: &[u8]) -> bool {
        let Mode::Streaming(stream) = &mut state.mode else {
            return false;
        };
        let start = self.size() - stream.part.len() as u64;
        if offset < start || !stream.part.overwrite((offset - start) as usize, data) {
            return false;
        }
        // What the mirror holds of these bytes (spilled before) is stale now.
        stream.mirror.invalidate_from(offset);
        self.dirty.store(true, Ordering::Release);
        true
    }

    /// Appends `data` at the end of the file, sending each part that fills. Returns fewer
    /// bytes than given (a short write, which the program repeats) when a full part cannot
    /// go to the mirror: the part stays in memory and the next write reports the disk.
    async fn write_more(&self, state: &mut State<C>, data: Bytes) -> Result<usize, UploadError> {
        let mut done = 0;
        while done < data.len() {
            let Mode::Streaming(stream) = &mut state.mode else {
                // A failed push moved the writer to staging: the rest goes there.
                let at = self.size();
                let rest = self.write_staged(state, at, data.slice(done..)).await?;
                return Ok(done + rest);
            };
            let limit = stream.upload.next_part_size() as usize;
            if stream.hold.is_none() && stream.part.len() + (data.len() - done) >= WHOLE_PART_FROM {
                stream.hold = Some(self.config.budget.reserve(limit as u64).await);
            }
            let took = stream.part.fill(&data[done..], limit);
            done += took;
            self.size.fetch_add(took as u64, Ordering::AcqRel);
            self.dirty.store(true, Ordering::Release);
            if stream.part.len() >= limit {
                if let Err(e) = self.send_full_parts(state).await {
                    debug!("{:?}: {e}; the part stays in memory", self.key());
                    return Ok(done);
                }
            }
        }
        Ok(done)
    }

    /// Sends the part buffer if it is full: it goes to the mirror (in the background) and
    /// is pushed. A push that fails ends streaming (the part buffer is spilled and the
    /// writer goes on staged, the upload kept to resume); a mirror that cannot be written
    /// is given up and the part goes up all the same.
    async fn send_full_parts(&self, state: &mut State<C>) -> Result<(), UploadError> {
        let key = self.key();
        loop {
            let Mode::Streaming(stream) = &mut state.mode else {
                return Ok(());
            };
            if (stream.part.len() as u64) < stream.upload.next_part_size() {
                return Ok(());
            }
            if self.config.write_back {
                // Nothing goes to S3 while the program writes: a file past one part is a
                // local copy from here on (a smaller one reaches the disk at its close).
                return self
                    .switch_to_staged(state, "write-back keeps it on disk", false)
                    .await;
            }
            let start = self.size() - stream.part.len() as u64;
            let body = stream.part.freeze();
            let hold = stream.hold.take();
            let had_file = stream.mirror.file().is_some();
            if let Err(e) = stream
                .mirror
                .push(&self.config.journal, &key, start, &body)
                .await
            {
                stream.mirror.give_up_for(&key, &e);
            }
            let was_started = stream.upload.is_started();
            let pushed = stream.upload.push_part(body, hold).await;
            let new_file = !had_file && stream.mirror.file().is_some();
            let started = !was_started && stream.upload.is_started();
            if let (true, Some(id)) = (started, stream.upload.upload_id()) {
                state.record.upload_ids = vec![id.to_string()];
            }
            if new_file || (started && state.recorded) {
                self.save_record(state, false);
            }
            if let Err(e) = pushed {
                warn!(
                    "streaming {key:?} failed: {e}; switching to its local copy, \
                     uploaded on the next flush"
                );
                return self.switch_to_staged(state, "a failed upload", true).await;
            }
        }
    }

    /// A streaming upload that failed earlier, whose part buffer the disk could not take
    /// then, moves to staging now; the disk's error again if it still cannot.
    async fn settle(&self, state: &mut State<C>) -> Result<(), UploadError> {
        match &state.mode {
            Mode::Streaming(stream) if stream.upload.has_ended() => {
                self.switch_to_staged(state, "an upload that failed", true)
                    .await
            }
            _ => Ok(()),
        }
    }

    /// Leaves streaming: the part buffer goes to the mirror (so every byte is local), then
    /// the multipart upload is aborted — or kept for the next flush to resume (`resume`,
    /// after a failure). If the disk refuses the part buffer, the writer stays streaming
    /// (its upload untouched) and the disk's error is returned.
    async fn switch_to_staged(
        &self,
        state: &mut State<C>,
        why: &str,
        resume: bool,
    ) -> Result<(), UploadError> {
        if self.leave_streaming(state, why, resume).await? {
            self.save_record(state, false);
        }
        Ok(())
    }

    /// [`OpenWriter::switch_to_staged`] without the record of the new state (for a caller
    /// that writes it next): returns true when the writer was streaming.
    async fn leave_streaming(
        &self,
        state: &mut State<C>,
        why: &str,
        resume: bool,
    ) -> Result<bool, UploadError> {
        let key = self.key();
        let size = self.size();
        let Mode::Streaming(stream) = &mut state.mode else {
            return Ok(false);
        };
        debug!("{key:?}: {why}; switching from streaming to staging");
        stream.spill(&self.config.journal, &key, size).await?;
        let placeholder = Mode::Staged(Staged::local(None, 0, self.config.part_size));
        let Mode::Streaming(stream) = std::mem::replace(&mut state.mode, placeholder) else {
            return Ok(false);
        };
        let Stream {
            mut upload, mirror, ..
        } = stream;
        let (file, _) = mirror.into_file();
        let mut staged = Staged::local(file, size, self.config.part_size);
        match upload.is_started() && resume {
            true => {
                if let Some(id) = upload.into_resumable().await {
                    staged.keep_resumable(key, id);
                }
            }
            false => upload.abort().await,
        }
        state.mode = Mode::Staged(staged);
        Ok(true)
    }

    /// Write-back's `close` of a small new file whose bytes are all still in the part
    /// buffer (no part sent, nothing mirrored): a staged copy that keeps them in memory
    /// ([`StagingFile::in_memory`]), for [`OpenWriter::persist`] to close inline. No data
    /// file is made, written or read back: the close log line is the copy on disk.
    /// `false`, changing nothing, for any other file, or when the journal's room for such
    /// copies is full.
    async fn stage_in_memory(&self, state: &mut State<C>) -> bool {
        let size = self.size();
        let Mode::Streaming(stream) = &state.mode else {
            return false;
        };
        let all_in_buffer = stream.tail_start(size) == 0
            && !stream.upload.is_started()
            && stream.mirror.file().is_none()
            && stream.mirror.unkept().is_none();
        if !all_in_buffer || size > INLINE_MAX || self.is_unlinked() || self.config.local_only {
            return false;
        }
        let bytes = Bytes::copy_from_slice(stream.part.as_slice());
        let Some(file) = StagingFile::in_memory(&self.config.journal, bytes) else {
            return false;
        };
        let staged = Mode::Staged(Staged::local(Some(file), size, self.config.part_size));
        if let Mode::Streaming(mut stream) = std::mem::replace(&mut state.mode, staged) {
            // Never started: no request is made.
            stream.upload.abort().await;
        }
        true
    }

    /// Up to `len` bytes at `offset`, as written so far (read-your-writes).
    pub async fn read(&self, offset: u64, len: u32) -> Result<Bytes, UploadError> {
        let view = self.view_slot().clone();
        if let Some(view) = view {
            return view.read(offset, len).await;
        }
        let key = self.key();
        let mut state = self.state.lock().await;
        let size = self.size();
        if offset >= size || len == 0 {
            return Ok(Bytes::new());
        }
        let len = (size - offset).min(u64::from(len)) as usize;
        match &mut state.mode {
            Mode::Staged(staged) => staged.read(&self.ctx(&key), offset, len).await,
            Mode::Streaming(stream) => {
                let tail_start = stream.tail_start(size);
                if offset >= tail_start {
                    // All in the part being filled: no disk needed.
                    let at = (offset - tail_start) as usize;
                    return Ok(Bytes::copy_from_slice(
                        &stream.part.as_slice()[at..at + len],
                    ));
                }
                if let Some(unkept) = stream.mirror.unkept() {
                    return Err(not_kept(&key, tail_start, unkept));
                }
                stream.mirror.finish().await?;
                let had_file = stream.mirror.file().is_some();
                if offset + len as u64 > stream.mirror.mirrored() {
                    stream.spill(&self.config.journal, &key, size).await?;
                }
                let file = match stream.mirror.file() {
                    Some(file) => file,
                    None => return Ok(Bytes::new()),
                };
                let bytes = file.read_at(offset, len).await?;
                if !had_file {
                    self.save_record(&mut state, false);
                }
                Ok(bytes)
            }
        }
    }

    /// Sets the file's size to `size` (cutting, or extending with zeros).
    pub async fn truncate(&self, size: u64) -> Result<(), UploadError> {
        let key = self.key();
        too_large(&key, size)?;
        let mut state = self.state.lock().await;
        if size == self.size() {
            return Ok(());
        }
        self.view_slot().take();
        self.switch_to_staged(&mut state, "a truncate", false)
            .await?;
        if let Mode::Staged(staged) = &mut state.mode {
            staged.truncate(&self.ctx(&key), size).await?;
        }
        self.written();
        self.size.store(size, Ordering::Release);
        self.dirty.store(true, Ordering::Release);
        state.record.complete = false;
        self.save_record(&mut state, false);
        Ok(())
    }

    /// Uploads the file if it changed, and returns once S3 acknowledged it (`None`: nothing
    /// to upload). On failure the data stays in the local copy under a complete journal
    /// record, named in the error, and the next flush tries again (resuming a multipart
    /// upload where it stopped). The writer keeps working after a flush either way.
    pub async fn flush(&self) -> Result<Option<ObjectMeta>, UploadError> {
        let mut state = self.state.lock().await;
        self.flush_locked(&mut state).await
    }

    /// The file was renamed to `new_key` while open: what it holds goes up first (to the
    /// old key, so `copy` moves the current content), then `copy` moves the object and
    /// answers its new ETag and size, and the file's later uploads go to `new_key`. No write
    /// gets in between: the writer is held throughout.
    pub async fn rename<E, Fut>(
        &self,
        new_key: String,
        copy: impl FnOnce(Option<ObjectMeta>) -> Fut,
    ) -> Result<(String, u64), E>
    where
        Fut: std::future::Future<Output = Result<(String, u64), E>>,
        E: From<UploadError>,
    {
        let mut state = self.state.lock().await;
        let flushed = self.flush_locked(&mut state).await?;
        let moved = copy(flushed).await?;
        match &mut state.mode {
            // Only an upload not started yet can be here: a started one was just completed.
            Mode::Streaming(stream) => stream.upload.retarget(new_key.clone()),
            // The bytes the copy is missing are the moved object's now.
            Mode::Staged(staged) if staged.base().is_some() => staged.rebase(Some(Base {
                key: new_key.clone(),
                etag: moved.0.clone(),
            })),
            Mode::Staged(_) => {}
        }
        *self.key_slot() = new_key.clone();
        state.record.key = new_key;
        if state.recorded {
            self.save_record(&mut state, false);
        }
        Ok(moved)
    }

    /// The file is about to lose its name (unlinked, or renamed over) while open: it must
    /// stay readable and writable through its open handles, and nothing of it goes to S3
    /// any more (a multipart upload under way is aborted). What of it only S3 holds (an
    /// existing object not fetched yet) is fetched first, since the object is about to go;
    /// if that fails, nothing changed and the error says why. Its local copy goes when the
    /// writer does, and its journal record now.
    pub async fn unlink(&self) -> Result<(), UploadError> {
        let key = self.key();
        let mut state = self.state.lock().await;
        if self.is_unlinked() {
            return Ok(());
        }
        if let Mode::Staged(staged) = &mut state.mode {
            staged.fetch_all(&self.ctx(&key)).await?;
            staged.drop_resumable(&self.client, &self.config).await;
        }
        self.unlinked.store(true, Ordering::Release);
        if let Err(e) = self
            .switch_to_staged(&mut state, "it was unlinked", false)
            .await
        {
            // Nobody can name the file any more: what only memory held stays there.
            debug!("{key:?}: {e}");
            if let Mode::Streaming(stream) = &mut state.mode {
                stream.upload.abort().await;
            }
        }
        // Nothing of it may go to S3 again, so nothing is owed to S3.
        self.dirty.store(false, Ordering::Release);
        if let Some(file) = local_file(&state.mode) {
            file.forget();
        }
        state.recorded = false;
        Ok(())
    }

    async fn flush_locked(&self, state: &mut State<C>) -> Result<Option<ObjectMeta>, UploadError> {
        if !self.is_dirty() || self.is_unlinked() {
            return Ok(None);
        }
        self.settle(state).await?;
        let key = self.key();
        let size = self.size();
        // What the object is stored with; a streaming upload already started sent its own.
        let mut sent = self.metadata();
        let uploaded = match &mut state.mode {
            Mode::Streaming(stream) if !stream.upload.is_started() && size == 0 => {
                // Nothing written yet: a close of a duplicate descriptor (`cmd > file` and
                // `dd` open, dup2 and close before writing). The empty object goes up, and
                // the writer keeps streaming, so the writes that follow do not fall back to
                // staging and an upload at close.
                self.put(&key, Bytes::new(), sent.clone())
                    .await
                    .map_err(|source| self.upload_failed(&key, None, source))
            }
            Mode::Streaming(stream) => {
                if stream.upload.is_started() {
                    sent = stream.upload.metadata().clone();
                }
                self.flush_stream(state, &key, size, sent.clone()).await
            }
            Mode::Staged(_) => self.flush_staged(state, &key, sent.clone()).await,
        };
        // An append may have gone after another client's bytes: the file is the object.
        let size = match &state.mode {
            Mode::Staged(staged) if uploaded.is_ok() => staged.size(),
            _ => size,
        };
        if self.size.swap(size, Ordering::AcqRel) != size {
            // The local copy grew by another client's bytes: no view of it holds.
            self.view_slot().take();
        }
        let uploaded = match uploaded {
            Ok(etag) => self.fix_metadata(state, &key, size, etag, &mut sent).await,
            Err(e) => Err(e),
        };
        match uploaded {
            Ok(etag) => {
                debug!("uploaded {key:?} ({size} bytes)");
                self.dirty.store(false, Ordering::Release);
                *self.replaces_slot() = Some(etag.clone());
                // What S3 holds now, stamped times included, is what later changes start
                // from.
                {
                    let mut meta = self.meta_slot();
                    meta.metadata = sent.clone();
                    meta.stored = sent.clone();
                }
                if state.recorded {
                    if let Some(file) = local_file(&state.mode) {
                        file.forget();
                    }
                    state.recorded = false;
                }
                state.record.complete = false;
                state.record.upload_ids.clear();
                Ok(Some(ObjectMeta {
                    key,
                    size,
                    etag,
                    // S3 answers a PUT without Last-Modified; ours is within the request's time.
                    last_modified: SystemTime::now(),
                    metadata: Some(sent),
                    version_id: None,
                }))
            }
            Err(err) => {
                warn!("{err}");
                Err(err)
            }
        }
    }

    /// Flush of a streaming file: the rest goes up (one PutObject when no part went yet),
    /// the upload completes, and the file goes on staged on the new object. A large file is
    /// made durable first (the part buffer spilled to its mirror, synced, recorded
    /// complete). On failure every byte is kept local: the writer goes on staged with the
    /// upload kept to resume, under a complete record.
    async fn flush_stream(
        &self,
        state: &mut State<C>,
        key: &str,
        size: u64,
        metadata: Metadata,
    ) -> Result<String, UploadError> {
        let Mode::Streaming(stream) = &mut state.mode else {
            return Err(UploadError::LocalIo {
                path: self.config.journal.dir().to_path_buf(),
                source: std::io::Error::other("flush_stream on a staged file"),
            });
        };
        // A mirror write that failed matters only if the upload fails too (then it is
        // written again with the rest); the upload does not wait for it.
        if let Err(e) = stream.mirror.finish().await {
            debug!("{key:?}: {e}");
        }
        if stream.upload.is_started() && stream.mirror.unkept().is_none() {
            // Close was called on this content: on disk and recorded before S3 is asked.
            let durable = stream.spill(&self.config.journal, key, size).await;
            match (durable, stream.mirror.file()) {
                (Ok(()), Some(file)) => match file.sync_data().await {
                    Ok(()) => {
                        state.record.complete = true;
                        state.record.size = size;
                        self.save_record(state, true);
                    }
                    Err(e) => debug!("{key:?}: {e}; uploading without a durable copy"),
                },
                (Err(e), _) => debug!("{key:?}: {e}; uploading without a durable copy"),
                (Ok(()), None) => {}
            }
        }
        let Mode::Streaming(stream) = &mut state.mode else {
            return Err(UploadError::LocalIo {
                path: self.config.journal.dir().to_path_buf(),
                source: std::io::Error::other("flush_stream on a staged file"),
            });
        };
        let tail = stream.part.freeze();
        let hold = stream.hold.take();
        let sent = if stream.upload.is_started() {
            let last = if tail.is_empty() {
                Ok(())
            } else {
                stream.upload.push_part(tail.clone(), hold).await
            };
            match last {
                Ok(()) => stream.upload.complete().await,
                Err(e) => Err(e),
            }
        } else {
            drop(hold);
            self.put(key, tail.clone(), metadata).await
        };
        match sent {
            Ok(etag) => {
                // Writes after this continue staged; the bytes the mirror lacks are
                // fetched back from the new object if needed.
                let placeholder = Mode::Staged(Staged::local(None, 0, self.config.part_size));
                if let Mode::Streaming(stream) = std::mem::replace(&mut state.mode, placeholder) {
                    let unkept = stream.mirror.unkept().is_some();
                    let (file, mirrored) = stream.mirror.into_file();
                    let base = Base {
                        key: key.to_string(),
                        etag: etag.clone(),
                    };
                    let local = if unkept { 0 } else { mirrored.min(size) };
                    state.mode = Mode::Staged(Staged::uploaded(
                        file,
                        base,
                        size,
                        local,
                        self.config.part_size,
                    ));
                }
                Ok(etag)
            }
            Err(source) => {
                // Every byte must stay: the part buffer goes back, then to the mirror, and
                // the writer on staged (the upload kept to resume); if the disk refuses,
                // it stays in memory.
                if let Mode::Streaming(stream) = &mut state.mode {
                    let limit = stream.upload.next_part_size() as usize;
                    stream.part = PartBuf::from_slice(&tail, limit);
                }
                let staged = self.switch_to_staged(state, "a failed upload", true).await;
                let failed = self.upload_failed(key, local_file(&state.mode), source);
                if let Err(local) = staged {
                    warn!("{failed}");
                    if let Mode::Streaming(stream) = &mut state.mode {
                        if stream.mirror.unkept().is_some() {
                            // The data is gone with the mirror; the upload is of no use.
                            stream.upload.abort().await;
                        }
                    }
                    return Err(local);
                }
                self.keep_complete(state).await;
                Err(failed)
            }
        }
    }

    /// Flush of a staged file: durable and recorded complete first, then uploaded.
    async fn flush_staged(
        &self,
        state: &mut State<C>,
        key: &str,
        metadata: Metadata,
    ) -> Result<String, UploadError> {
        self.keep_complete(state).await;
        // An append leaves the object's metadata as it is: only when nothing is to change.
        let may_append = self.config.incremental_upload && metadata == self.meta_slot().stored;
        let Mode::Staged(staged) = &mut state.mode else {
            return Ok(String::new());
        };
        let appended = match may_append {
            true => staged.append(&self.ctx(key)).await,
            false => Ok(None),
        };
        let uploaded = match appended {
            Ok(Some(etag)) => Ok(etag),
            Ok(None) => staged.upload(&self.ctx(key), &metadata).await,
            Err(e) => Err(e),
        };
        if uploaded.is_err() {
            // The resumable upload, if one was kept, is named in the record now.
            state.record.metadata = metadata;
            self.save_record(state, true);
        }
        uploaded
    }

    /// After an upload that sent `sent`: if the metadata set since differs (it changed
    /// after a streaming upload had sent its own with CreateMultipartUpload), the object is
    /// copied onto itself with it, and the file goes on from the copy. Returns the
    /// object's ETag; `sent` becomes what the object carries.
    async fn fix_metadata(
        &self,
        state: &mut State<C>,
        key: &str,
        size: u64,
        etag: String,
        sent: &mut Metadata,
    ) -> Result<String, UploadError> {
        let wanted = {
            let meta = self.meta_slot();
            let mut wanted = meta.metadata.clone();
            if !meta.times_set {
                // Times the upload stamped stay as it stamped them.
                for name in ["mtime", "ctime"] {
                    if let (true, Some(t)) = (wanted.user.contains_key(name), sent.user.get(name)) {
                        wanted.user.insert(name.to_string(), t.clone());
                    }
                }
            }
            wanted
        };
        if wanted == *sent {
            return Ok(etag);
        }
        debug!("{key:?}: its metadata changed during the upload; storing it with a copy");
        let copied = self.copy_onto_itself(state, key, size, &wanted).await?;
        *sent = wanted;
        Ok(copied)
    }

    /// Stores `metadata` with the object S3 holds of this file (as it is: a copy onto
    /// itself), and bases the local copy on the result. Returns the new ETag.
    async fn copy_onto_itself(
        &self,
        state: &mut State<C>,
        key: &str,
        size: u64,
        metadata: &Metadata,
    ) -> Result<String, UploadError> {
        let copied = self
            .client
            .copy_object_sized(key, key, size, Some(metadata))
            .await
            .map_err(|source| self.upload_failed(key, local_file(&state.mode), source))?;
        self.meta_slot().stored = metadata.clone();
        if let Mode::Staged(staged) = &mut state.mode {
            if staged.base().is_some() {
                staged.rebase(Some(Base {
                    key: key.to_string(),
                    etag: copied.clone(),
                }));
            }
        }
        Ok(copied)
    }

    /// `close`/`fsync` was called on what the local copy holds: make it durable and record
    /// it complete (it may now replace the object it was based on, even after a crash).
    async fn keep_complete(&self, state: &mut State<C>) {
        let Some(file) = local_file(&state.mode) else {
            return;
        };
        if state.recorded && state.record.complete {
            // Nothing written since it was made durable and recorded complete (write-back's
            // close): its record already says what a crash needs.
            return;
        }
        // A small file's bytes go into its record instead (see `close_log`).
        if !self.closes_inline(state) {
            if let Err(e) = file.sync_data().await {
                warn!(
                    "{}: {e}; its data may not survive a power loss",
                    file.path().display()
                );
            }
        }
        state.record.complete = true;
        state.record.metadata = self.metadata();
        self.save_record(state, true);
    }

    /// True when a complete record of the file carries its bytes, so its data file needs
    /// no sync of its own: a small local copy whose records live in the close log, or have
    /// no place yet (see `close_log`).
    fn closes_inline(&self, state: &State<C>) -> bool {
        let Mode::Staged(staged) = &state.mode else {
            return false;
        };
        let Some(file) = staged.file() else {
            return false;
        };
        staged.size() <= INLINE_MAX
            && staged.is_all_local()
            && !self.is_unlinked()
            && !self.config.local_only
            && (!state.recorded || file.is_logged())
    }

    /// Writes the journal record of the file as the state describes it (when the file has
    /// a local copy). A record that cannot be written is logged: the data is still kept
    /// while the mount lives, only a crash would lose track of it.
    fn save_record(&self, state: &mut State<C>, durable: bool) {
        if let Err(e) = self.try_save_record(state, durable) {
            warn!(
                "{:?}: cannot write its journal record ({e}); its data is kept while the \
                 mount lives, but a crash would not recover it",
                state.record.key
            );
        }
    }

    /// [`OpenWriter::save_record`], the failure returned.
    fn try_save_record(&self, state: &mut State<C>, durable: bool) -> Result<(), UploadError> {
        if self.is_unlinked() || self.config.local_only {
            return Ok(());
        }
        let inline = durable && state.record.complete && self.closes_inline(state);
        let State {
            mode,
            record,
            recorded,
            synced,
        } = state;
        record.key = self.key();
        let file = match mode {
            Mode::Staged(staged) => {
                staged.describe(record);
                staged.file()
            }
            Mode::Streaming(stream) => {
                record.stream = true;
                record.size = self.size();
                record.chunk = self.config.part_size;
                stream.mirror.file()
            }
        };
        if record.base_etag.is_none() && record.base_limit == 0 {
            // A file that replaces an object without using its bytes (truncated, renamed
            // over it): recovery checks that this version is still the one there.
            record.base_etag = self.replaces_slot().clone();
        }
        let Some(file) = file else {
            return Ok(());
        };
        match inline {
            true => {
                let data = file.read_whole(record.size)?;
                file.save_closed(record, &data)?;
            }
            false => file.save(record, durable)?,
        }
        *recorded = true;
        *synced = durable;
        Ok(())
    }

    fn upload_failed(
        &self,
        key: &str,
        file: Option<&super::staging::StagingFile>,
        source: S3Error,
    ) -> UploadError {
        UploadError::S3 {
            key: key.to_string(),
            staging: file.map(|f| f.path().to_path_buf()),
            source,
        }
    }

    /// Write-back's `close`/`fsync`: makes what the file holds durable on the local disk
    /// under a complete journal record (data synced, then the record), without asking S3.
    /// From here the data reaches S3 whatever happens: [`OpenWriter::upload_queued`] while
    /// the mount lives, the journal's recovery after a crash. Fails only when the disk does
    /// (then nothing is promised and the error says why).
    pub async fn persist(&self) -> Result<(), UploadError> {
        let key = self.key();
        let mut state = self.state.lock().await;
        if !self.is_dirty() || self.is_unlinked() {
            return Ok(());
        }
        if state.recorded && state.record.complete {
            // Durable since the last close, nothing written since: only a change of its
            // metadata (a chmod after that close) may wait to be synced.
            return match state.synced {
                true => Ok(()),
                false => self.try_save_record(&mut state, true),
            };
        }
        // No record of the state between: the durable one comes next.
        if !self.stage_in_memory(&mut state).await {
            self.leave_streaming(&mut state, "write-back keeps it on disk", false)
                .await?;
        }
        let Mode::Staged(staged) = &mut state.mode else {
            return Ok(());
        };
        staged.ensure_local(&self.ctx(&key)).await?;
        if !self.closes_inline(&state) {
            if let Some(file) = local_file(&state.mode) {
                file.sync_data().await?;
            }
        }
        state.record.complete = true;
        state.record.metadata = self.metadata();
        self.try_save_record(&mut state, true)?;
        if let Mode::Staged(staged) = &state.mode {
            if let (true, Some(file)) = (staged.is_all_local(), staged.file()) {
                *self.view_slot() = Some(LocalView {
                    copy: file.snapshot()?,
                    path: file.path().to_path_buf(),
                    size: self.size(),
                });
            }
        }
        Ok(())
    }

    fn view_slot(&self) -> std::sync::MutexGuard<'_, Option<LocalView>> {
        // Holds a plain value; a panic elsewhere cannot leave it inconsistent.
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write-back's rename of a file S3 never held (see [`OpenWriter::replaces`]): only its
    /// name changes — the key it goes to and its journal record (durably: a crash must not
    /// bring it back under the old name). It now replaces `replaces`, the version at its
    /// new name.
    /// Returns `false`, changing nothing, for a file that has sent parts already.
    pub async fn rekey(
        &self,
        new_key: String,
        replaces: Option<String>,
    ) -> Result<bool, UploadError> {
        let mut state = self.state.lock().await;
        if self.replaces_slot().is_some() {
            return Ok(false);
        }
        if let Mode::Streaming(stream) = &mut state.mode {
            if stream.upload.is_started() {
                return Ok(false);
            }
            stream.upload.retarget(new_key.clone());
        }
        *self.key_slot() = new_key;
        *self.replaces_slot() = replaces;
        if state.recorded {
            state.record.base_etag = None;
            let durable = state.record.complete;
            self.try_save_record(&mut state, durable)?;
        }
        Ok(true)
    }

    /// A file kept local only (`--exclude`, see [`WriterConfig::local_only`]).
    pub fn is_local_only(&self) -> bool {
        self.config.local_only
    }

    /// The version of the key this file replaces: `None` when the key held no object as
    /// far as this writer knows, and it never uploaded one.
    pub fn replaces(&self) -> Option<String> {
        self.replaces_slot().clone()
    }

    /// Write-back's upload of what [`OpenWriter::persist`] kept: to the file's key if the
    /// object there is still the version the file replaces; else, another client having
    /// written the key meanwhile, beside it as a conflict copy (`conflict_name`), and the
    /// file's key keeps the other client's version. A failure leaves everything as it
    /// was, to try again.
    pub async fn upload_queued(
        &self,
        conflict_name: impl FnOnce(&str) -> String,
    ) -> Result<Queued, UploadError> {
        if !self.is_dirty() || self.is_unlinked() {
            return Ok(Queued::Nothing);
        }
        // What the key holds is asked before the writer is locked: through an outage that
        // question waits out the retry budget, and reads of the file (served by the writer)
        // must not wait with it.
        let key = self.key();
        let there = match self.client.head_object(&key).await {
            Ok(meta) => Some(meta),
            Err(S3Error::NoSuchKey { .. }) => None,
            Err(source) => return Err(self.upload_failed(&key, None, source)),
        };
        let mut state = self.state.lock().await;
        if !self.is_dirty() || self.is_unlinked() {
            return Ok(Queued::Nothing);
        }
        if self.key() != key {
            // Renamed while S3 was asked: asked again, for the new name.
            return Ok(Queued::Renamed);
        }
        let expected = self.replaces_slot().clone();
        // An earlier attempt whose answer was lost may have put exactly this content
        // there: that is no other client's version (it goes again, harmlessly).
        let ours = match (&there, &state.mode) {
            (Some(meta), Mode::Staged(staged)) if Some(&meta.etag) != expected.as_ref() => {
                staged
                    .holds_exactly(&*self.client, meta, self.config.part_size)
                    .await
            }
            _ => false,
        };
        // Gone meanwhile (another client deleted it): nothing is overwritten, the file
        // goes to its name.
        let there = there.map(|meta| meta.etag);
        if there.is_none() || there == expected || ours {
            return match self.flush_locked(&mut state).await? {
                Some(meta) => Ok(Queued::Uploaded(meta)),
                None => Ok(Queued::Nothing),
            };
        }
        let beside = conflict_name(&key);
        warn!(
            "{key:?} changed in S3 while this mount's version waited to be uploaded; that \
             version goes beside it as {beside:?}"
        );
        *self.key_slot() = beside;
        match self.flush_locked(&mut state).await {
            // The writer stays on the copy's name: a handle opened meanwhile edits this
            // mount's version, never the other client's.
            Ok(Some(meta)) => Ok(Queued::Conflict(meta)),
            Ok(None) => Ok(Queued::Nothing),
            Err(e) => {
                *self.key_slot() = key;
                Err(e)
            }
        }
    }

    /// The file's content replaces `etag`'s version of the key from now on (`O_TRUNC` of
    /// an existing object, a rename over one).
    pub fn set_replaces(&self, etag: Option<String>) {
        *self.replaces_slot() = etag;
    }

    fn replaces_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // Holds a plain value; a panic elsewhere cannot leave it inconsistent.
        self.replaces.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives up on the file (its last handle closed without a successful flush). What it
    /// holds stays in the journal, complete: the background retry (and, after a restart,
    /// the next mount) uploads it. Only what the disk could not take is lost, and said so.
    pub async fn abandon(&self) {
        let key = self.key();
        let mut state = self.state.lock().await;
        if !self.is_dirty() {
            return;
        }
        // The background upload starts afresh from the local copy: a kept upload is of no
        // use to it.
        if let Err(e) = self
            .switch_to_staged(&mut state, "its last handle closed", false)
            .await
        {
            if let Mode::Streaming(stream) = &mut state.mode {
                stream.upload.abort().await;
                match stream.mirror.unkept() {
                    Some(unkept) => warn!(
                        "{key:?} was not uploaded and its data is lost: it had been streamed to \
                         S3 without a local copy ({})",
                        unkept.why
                    ),
                    None => warn!(
                        "{key:?}: its last bytes could not be kept on disk ({e}); they are lost"
                    ),
                }
            }
            return;
        }
        self.keep_complete(&mut state).await;
        if let Some(file) = local_file(&state.mode).filter(|f| f.is_logged()) {
            // Its data file is about to be let go: an entry of its own from here, so the
            // background uploads (and a scan) find it.
            let moved = match file.sync_data().await {
                Ok(()) => file.unlog(&state.record),
                Err(e) => Err(e),
            };
            if let Err(e) = moved {
                warn!("{key:?}: {e}; its data stays in the close log for the next mount");
            }
        }
        match local_file(&state.mode) {
            Some(file) => warn!(
                "{key:?} was not uploaded; its data is kept in {} and will be uploaded in the \
                 background (and by the next mount)",
                file.path().display()
            ),
            None => warn!("{key:?} was not uploaded (it was empty)"),
        }
    }

    async fn put(&self, key: &str, body: Bytes, metadata: Metadata) -> Result<String, S3Error> {
        self.client
            .put_object(PutObjectParams {
                key: key.to_string(),
                body,
                metadata,
            })
            .await
    }
}

/// What [`OpenWriter::upload_queued`] did.
#[derive(Debug)]
pub enum Queued {
    /// Nothing was left to upload.
    Nothing,
    /// The file was renamed while S3 was asked about its old name: nothing was done, and
    /// it is to be tried again.
    Renamed,
    /// The file is in S3 under its key.
    Uploaded(ObjectMeta),
    /// The key held another client's newer version: the file went beside it (this
    /// object), and the writer now names that copy.
    Conflict(ObjectMeta),
}

/// The local copy of the file in `mode`, if it has one.
fn local_file<C: ObjectClient>(mode: &Mode<C>) -> Option<&super::staging::StagingFile> {
    match mode {
        Mode::Staged(staged) => staged.file(),
        Mode::Streaming(stream) => stream.mirror.file(),
    }
}

impl LocalView {
    /// Up to `len` bytes at `offset`.
    async fn read(self, offset: u64, len: u32) -> Result<Bytes, UploadError> {
        if offset >= self.size || len == 0 {
            return Ok(Bytes::new());
        }
        let len = (self.size - offset).min(u64::from(len)) as usize;
        let file = match self.copy {
            Snapshot::Memory(bytes) => {
                let start = (offset as usize).min(bytes.len());
                return Ok(bytes.slice(start..(start + len).min(bytes.len())));
            }
            Snapshot::File(file) => file,
        };
        let read = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0; len];
            file.read_exact_at(&mut buf, offset)
                .map(|()| Bytes::from(buf))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        read.map_err(|source| UploadError::LocalIo {
            path: self.path,
            source,
        })
    }
}

impl<C: ObjectClient> Drop for OpenWriter<C> {
    /// A clean copy goes away with its writer (so does an unlinked file's); a changed one
    /// stays in the journal for the background retry and the next mount.
    fn drop(&mut self) {
        // Its descriptor goes first: a data file no one else holds may serve again.
        self.view_slot().take();
        let dirty = self.is_dirty() && !self.is_unlinked() && !self.config.local_only;
        let key = self.key();
        let size = self.size();
        let state = self.state.get_mut();
        let file = match &mut state.mode {
            Mode::Staged(staged) => staged.take_file(),
            Mode::Streaming(stream) => {
                let mirror = std::mem::take(&mut stream.mirror);
                let unkept = size.saturating_sub(mirror.mirrored());
                if dirty && unkept > 0 {
                    warn!("{key:?} was not uploaded; its last {unkept} bytes are lost");
                }
                mirror.into_file().0
            }
        };
        match file {
            Some(file) if dirty => {
                if file.is_logged() {
                    // Let go of without `abandon` (which does this): an entry of its own, so
                    // this mount's background uploads find it, not only the next mount.
                    let moved = file
                        .sync_data_now()
                        .and_then(|()| file.unlog(&state.record));
                    if let Err(e) = moved {
                        warn!("{key:?}: {e}; its data stays in the close log for the next mount");
                    }
                }
                debug!("{key:?}: left in the journal as {}", file.path().display())
            }
            Some(file) => file.remove(),
            None => {}
        }
    }
}
