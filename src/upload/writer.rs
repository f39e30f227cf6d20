//! `OpenWriter`: the write state machine of one open file.
//!
//! Two modes:
//!
//! - **Streaming** (a new file, written at its end): the bytes fill a part buffer; each full
//!   part goes up as the next part of a [`MultipartUpload`] while the program keeps writing.
//!   Flush sends the rest (or, for a file smaller than one part, everything as one
//!   PutObject) and completes the upload. A write inside the part being filled (a header
//!   patched while the file is small) changes it in memory and the file keeps streaming.
//!   Writes that only add to the part buffer are taken without waiting
//!   ([`OpenWriter::write_now`]), straight from the kernel's buffer.
//! - **Staged** (everything else): a local copy in the cache directory takes the writes;
//!   flush uploads it whole from disk (PutObject below one part, else multipart with parts
//!   read from the file, so memory stays bounded). For an existing object the copy is filled
//!   from S3 with ranged GETs pinned to the ETag seen at open (`If-Match`), the first time a
//!   read, write or flush needs the content; a truncate first limits what is fetched.
//!
//! While streaming, each full part is *also* written to a staging file (the mirror) before
//! it goes up, so every byte is either in the mirror or in the part buffer. This costs one
//! local write per byte of a large file and disk space for its size, and buys the two
//! properties nothing else gives: a stream that turns non-sequential (a seek back, a
//! truncate, a flush followed by more writes — a completed multipart upload cannot be
//! appended to) switches to staging with every byte already local, and an upload that fails
//! keeps the data, since parts already sent cannot be read back from S3. The part being
//! filled is written to the mirror ("spilled") only when something needs it there: a switch
//! to staging, a read of it, a failed upload. So a file smaller than a part never touches
//! the disk unless its upload fails, and a large one is written locally once, a part at a
//! time, straight from the part buffer with `O_DIRECT` where the filesystem allows it: no
//! copy into the page cache, no dirty pages competing with the uploads (see
//! [`StagingFile::write_through`]).
//!
//! The mirror is a safety net, never a limit: when its disk cannot take the next part (full,
//! within a tenth of full, slower than S3, or failing) it is given up and the file streams
//! on, so a file larger than the local disk, or on a disk slower than the network, uploads
//! like any other. What only the mirror allowed (a
//! switch to staging, keeping the data of a failed upload) then fails with
//! [`UploadError::NotKept`], which names the reason.
//!
//! A failed streaming upload is aborted and the writer drops to staged mode: the write that
//! hit the failure still succeeds (its bytes are in the mirror or in memory) and the next
//! flush uploads the staging copy. If the disk cannot take the part buffer then (full), the
//! writer stays in memory, and every later call tries again and reports the disk's error:
//! the data is never dropped while the writer lives, unless the mirror had been given up
//! before the upload failed. `flush` returns `Ok` only once S3
//! acknowledged the whole object.
//!
//! Concurrency: one tokio mutex over the state, held across S3 calls, because every
//! operation must see the mode and the size the previous one left; handles of one inode
//! share the writer (read-your-writes). `size` and `is_dirty` are mirrored in atomics so
//! `stat` never waits for an upload.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use log::{debug, warn};
use tokio::sync::Mutex;

use super::part::PartBuf;
use super::staging::WriteThrough;
use super::{MultipartUpload, Origin, StagingFile, UploadError, WriterConfig};
use crate::s3::{GetObjectParams, ObjectClient, ObjectMeta, PutObjectParams, S3Error};

/// The write side of one open file (shared by the handles of one inode).
pub struct OpenWriter<C: ObjectClient> {
    client: Arc<C>,
    /// The object key the file uploads to; changes when the file is renamed while open.
    key: std::sync::Mutex<String>,
    /// Set when the file was unlinked while open: its handles keep it, S3 never sees it
    /// again (POSIX: the data lives until the last handle closes, under no name).
    unlinked: AtomicBool,
    config: Arc<WriterConfig>,
    state: Mutex<State<C>>,
    size: AtomicU64,
    dirty: AtomicBool,
    /// A time set with `utimes` since the last write; the upload stores it when it still
    /// can (see [`OpenWriter::set_mtime`]).
    user_mtime: std::sync::Mutex<Option<SystemTime>>,
}

enum Mode<C: ObjectClient> {
    Streaming {
        upload: MultipartUpload<C>,
        /// The part being filled: the file's last bytes, at most one part.
        part: PartBuf,
    },
    Staged,
}

/// Why a streaming file has no mirror any more (see `OpenWriter::give_up_mirror`).
struct Unkept {
    why: String,
    /// The disk was full: what the mirror would have allowed fails with ENOSPC.
    no_space: bool,
}

/// Bytes `[offset, offset + data.len())` on their way to the mirror.
struct PendingMirror {
    offset: u64,
    data: Bytes,
    /// `None` once a write of them failed.
    write: Option<WriteThrough>,
}

impl PendingMirror {
    /// The write ended (or failed before): waiting for it takes no time.
    fn is_done(&self) -> bool {
        self.write.as_ref().is_none_or(WriteThrough::is_finished)
    }
}

/// Mirror writes of sent parts that may run at once. The disk usually finishes a part
/// before the next one fills; a few more absorb its hiccups. At most this many more part
/// buffers are held, and only while the disk lags.
const MIRROR_LAG: usize = 4;

/// Parts in a row that may find [`MIRROR_LAG`] mirror writes still running (each waits for
/// the oldest) before the disk counts as slower than S3 and the mirror is given up
/// (`stop_mirroring`) rather than hold the upload to the disk's pace: a gp3 volume writes
/// 125 MB/s where the same instance uploads at 1 GB/s (32 parts of 8 MiB: 2 s at the
/// disk's pace, then S3's). A disk that only stalls now and then keeps its mirror: on the
/// benchmark machine, with both cores busy, eight parts in a row happened about once in
/// three 1 GiB files; 32 did not in a dozen.
const MIRROR_PATIENCE: u32 = 32;

struct State<C: ObjectClient> {
    mode: Mode<C>,
    /// The mirror while streaming, the copy when staged; created on first need.
    staging: Option<StagingFile>,
    /// While streaming: bytes `[0, mirrored)` are known to be in the mirror; with those of
    /// `mirror_pending`, everything before the part buffer.
    mirrored: u64,
    /// The mirror writes of the last parts sent, oldest first, running while the next parts
    /// fill (or, after one failed, its bytes, to be written again); at most [`MIRROR_LAG`].
    mirror_pending: VecDeque<PendingMirror>,
    /// Parts in a row that found [`MIRROR_LAG`] mirror writes still running.
    mirror_behind: u32,
    /// Set when the mirror was given up while streaming (the disk could not hold it; see
    /// `give_up_mirror`), with the reason: every byte before the part buffer is then only
    /// in S3's multipart upload.
    unkept: Option<Unkept>,
    /// The version of the object the staging copy is filled from.
    origin_etag: Option<String>,
    /// Bytes `[filled_to, fill_limit)` of the original object are still to be copied in.
    filled_to: u64,
    /// The original size, lowered by every truncate below it (those bytes are gone).
    fill_limit: u64,
}

impl<C: ObjectClient> OpenWriter<C> {
    /// The writer of `key`, opened as `origin` says. Nothing happens in S3 or on disk yet.
    pub fn new(client: Arc<C>, key: String, origin: Origin, config: Arc<WriterConfig>) -> Self {
        let (mode, etag, size, dirty) = match origin {
            Origin::New => {
                let upload = MultipartUpload::new(
                    client.clone(),
                    key.clone(),
                    config.part_size,
                    config.concurrency,
                );
                let part = PartBuf::new();
                // A created (or O_TRUNC) file must exist in S3 after close, even if empty.
                (Mode::Streaming { upload, part }, None, 0, true)
            }
            Origin::Existing { etag, size } => (Mode::Staged, Some(etag), size, false),
        };
        OpenWriter {
            client,
            key: std::sync::Mutex::new(key),
            unlinked: AtomicBool::new(false),
            config,
            state: Mutex::new(State {
                mode,
                staging: None,
                mirrored: 0,
                mirror_pending: VecDeque::new(),
                mirror_behind: 0,
                unkept: None,
                origin_etag: etag,
                filled_to: 0,
                fill_limit: size,
            }),
            size: AtomicU64::new(size),
            dirty: AtomicBool::new(dirty),
            user_mtime: std::sync::Mutex::new(None),
        }
    }

    /// `utimes` on the open file: the next upload stores `mtime` as `x-amz-meta-mtime`,
    /// unless a write comes after it (a write sets the time to the upload's). A streaming
    /// upload already started has sent its metadata: then the time is not stored, and
    /// [`OpenWriter::mtime`] still reports it for the filesystem to keep in memory.
    pub async fn set_mtime(&self, mtime: SystemTime) {
        let mut state = self.state.lock().await;
        *self.user_mtime_slot() = Some(mtime);
        if let Mode::Streaming { upload, .. } = &mut state.mode {
            upload.set_mtime(Some(mtime));
        }
    }

    /// The time set with `utimes` since the last write, if any.
    pub fn mtime(&self) -> Option<SystemTime> {
        *self.user_mtime_slot()
    }

    fn user_mtime_slot(&self) -> std::sync::MutexGuard<'_, Option<SystemTime>> {
        // Holds a plain value; a panic elsewhere cannot leave it inconsistent.
        self.user_mtime.lock().unwrap_or_else(|p| p.into_inner())
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
        matches!(self.state.lock().await.mode, Mode::Streaming { .. })
    }

    /// The staging file's path, once there is one.
    pub async fn staging_path(&self) -> Option<PathBuf> {
        let state = self.state.lock().await;
        state.staging.as_ref().map(|s| s.path().to_path_buf())
    }

    /// Writes `data` at `offset` at once if that needs neither S3 nor the disk nor a wait:
    /// the file streams, `data` goes at its end, the part being filled has room for all of
    /// it, and no other call holds the writer. `None` otherwise: then [`OpenWriter::write`]
    /// does it. For the filesystem's request loop, which can copy the kernel's buffer
    /// straight into the part this way: one copy of each byte instead of two, and no task
    /// for seven of the eight 1 MiB writes that fill an 8 MiB part.
    pub fn write_now(&self, offset: u64, data: &[u8]) -> Option<usize> {
        let mut state = self.state.try_lock().ok()?;
        let Mode::Streaming { part, upload } = &mut state.mode else {
            return None;
        };
        let limit = upload.next_part_size() as usize;
        if data.is_empty()
            || upload.has_ended()
            || offset != self.size()
            || part.len() + data.len() >= limit
        {
            return None;
        }
        if self.user_mtime_slot().take().is_some() {
            upload.set_mtime(None);
        }
        let took = part.fill(data, limit);
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
        let mut state = self.state.lock().await;
        self.settle(&mut state).await?;
        if self.user_mtime_slot().take().is_some() {
            if let Mode::Streaming { upload, .. } = &mut state.mode {
                upload.set_mtime(None);
            }
        }
        let size = self.size();
        if offset != size {
            if self.patch_part(&mut state, offset, &data) {
                return Ok(data.len());
            }
            self.switch_to_staged(&mut state, "a write away from the end")
                .await?;
        }
        let Mode::Streaming { part, upload } = &mut state.mode else {
            return self.write_staged(&mut state, offset, data).await;
        };
        if part.len() as u64 >= upload.next_part_size() {
            // The last part could not go to the mirror: no more bytes until it can.
            self.send_full_parts(&mut state).await?;
        }
        self.write_more(&mut state, data).await
    }

    /// A write that falls wholly inside the part being filled (a header patched while the
    /// file is still small, say) changes it in memory, and the file keeps streaming.
    fn patch_part(&self, state: &mut State<C>, offset: u64, data: &[u8]) -> bool {
        let Mode::Streaming { part, .. } = &mut state.mode else {
            return false;
        };
        let start = self.size() - part.len() as u64;
        if offset < start || !part.overwrite((offset - start) as usize, data) {
            return false;
        }
        // What the mirror holds of these bytes (spilled before) is stale now.
        state.mirrored = state.mirrored.min(offset);
        self.dirty.store(true, Ordering::Release);
        true
    }

    /// Appends `data` at the end of the file, sending each part that fills. Returns fewer
    /// bytes than given (a short write, which the program repeats) when a full part cannot
    /// go to the mirror: the part stays in memory and the next write reports the disk.
    async fn write_more(&self, state: &mut State<C>, data: Bytes) -> Result<usize, UploadError> {
        let mut done = 0;
        while done < data.len() {
            let Mode::Streaming { part, upload } = &mut state.mode else {
                // A failed push moved the writer to staging: the rest goes there.
                let at = self.size();
                let rest = self.write_staged(state, at, data.slice(done..)).await?;
                return Ok(done + rest);
            };
            let limit = upload.next_part_size() as usize;
            let took = part.fill(&data[done..], limit);
            done += took;
            self.size.fetch_add(took as u64, Ordering::AcqRel);
            self.dirty.store(true, Ordering::Release);
            if part.len() >= limit {
                if let Err(e) = self.send_full_parts(state).await {
                    debug!("{:?}: {e}; the part stays in memory", self.key());
                    return Ok(done);
                }
            }
        }
        Ok(done)
    }

    /// Writes `data` at `offset` into the staging copy (staged mode).
    async fn write_staged(
        &self,
        state: &mut State<C>,
        offset: u64,
        data: Bytes,
    ) -> Result<usize, UploadError> {
        self.fill(state).await?;
        self.staging(state)
            .await?
            .write_at(offset, data.clone())
            .await?;
        let end = offset + data.len() as u64;
        self.size.store(self.size().max(end), Ordering::Release);
        self.dirty.store(true, Ordering::Release);
        Ok(data.len())
    }

    /// Sends the part buffer if it is full: it goes to the mirror (in the background, the
    /// previous one's mirror write finished first) and is pushed. A push that fails ends
    /// streaming (the part buffer is spilled and the writer goes on staged); a mirror that
    /// cannot be written is given up and the part goes up all the same.
    async fn send_full_parts(&self, state: &mut State<C>) -> Result<(), UploadError> {
        loop {
            let (body, start) = match &mut state.mode {
                Mode::Streaming { upload, part }
                    if part.len() as u64 >= upload.next_part_size() =>
                {
                    let start = self.size() - part.len() as u64;
                    (part.freeze(), start)
                }
                _ => return Ok(()),
            };
            if let Err(e) = self.mirror(state, start, &body).await {
                self.give_up_mirror(state, e);
            }
            let Mode::Streaming { upload, .. } = &mut state.mode else {
                return Ok(());
            };
            if let Err(e) = upload.push_part(body).await {
                warn!(
                    "streaming {:?} failed: {e}; switching to its staging copy, \
                     uploaded on the next flush",
                    self.key()
                );
                return self.switch_to_staged(state, "a failed upload").await;
            }
        }
    }

    /// Starts the mirror write of the part `body` at `start`. Fails, for the caller to give
    /// the mirror up, when the disk cannot take it; gives it up itself when [`MIRROR_LAG`]
    /// earlier writes were still running at each of the last [`MIRROR_PATIENCE`] parts:
    /// the disk is slower than S3, and waiting for it would hold the upload to its pace.
    async fn mirror(
        &self,
        state: &mut State<C>,
        start: u64,
        body: &Bytes,
    ) -> Result<(), UploadError> {
        if state.unkept.is_some() {
            return Ok(());
        }
        while state
            .mirror_pending
            .front()
            .is_some_and(PendingMirror::is_done)
        {
            self.finish_oldest_mirror(state).await?;
        }
        if state.mirror_pending.len() < MIRROR_LAG {
            state.mirror_behind = 0;
        } else {
            state.mirror_behind += 1;
            if state.mirror_behind >= MIRROR_PATIENCE {
                let why = format!(
                    "the disk of {} is slower than the upload: {MIRROR_LAG} parts were still \
                     being written to it each time one of the last {MIRROR_PATIENCE} filled",
                    self.config.cache_dir.display()
                );
                self.stop_mirroring(state, why, false);
                return Ok(());
            }
            // A hiccup, maybe: wait for the disk this time.
            self.finish_oldest_mirror(state).await?;
        }
        let queued_to = state
            .mirror_pending
            .back()
            .map_or(state.mirrored, |p| p.offset + p.data.len() as u64);
        let end = start + body.len() as u64;
        if queued_to >= end {
            return Ok(());
        }
        let skip = queued_to.saturating_sub(start);
        let data = body.slice(skip as usize..);
        let file = self.staging(state).await?;
        file.check_room(data.len() as u64)?;
        let write = file.write_through(start + skip, data.clone());
        state.mirror_pending.push_back(PendingMirror {
            offset: start + skip,
            data,
            write: Some(write),
        });
        Ok(())
    }

    /// Waits for every pending mirror write.
    async fn finish_mirror(&self, state: &mut State<C>) -> Result<(), UploadError> {
        while !state.mirror_pending.is_empty() {
            self.finish_oldest_mirror(state).await?;
        }
        Ok(())
    }

    /// Waits for the oldest pending mirror write; one that failed is tried once more,
    /// plainly, and stays pending (its bytes kept) if that fails too.
    async fn finish_oldest_mirror(&self, state: &mut State<C>) -> Result<(), UploadError> {
        let Some(mut pending) = state.mirror_pending.pop_front() else {
            return Ok(());
        };
        let first = match pending.write.take() {
            Some(write) => write.finish().await,
            None => Err(UploadError::LocalIo {
                path: self.config.cache_dir.clone(),
                source: std::io::Error::other("an earlier write failed"),
            }),
        };
        let written = match first {
            Ok(()) => Ok(()),
            Err(e) => {
                debug!("{:?}: mirror write failed ({e}); trying again", self.key());
                match self.staging(state).await {
                    Ok(file) => file.write_at(pending.offset, pending.data.clone()).await,
                    Err(e) => Err(e),
                }
            }
        };
        match written {
            Ok(()) => {
                let end = pending.offset + pending.data.len() as u64;
                state.mirrored = state.mirrored.max(end);
                Ok(())
            }
            Err(e) => {
                state.mirror_pending.push_front(pending);
                Err(e)
            }
        }
    }

    /// The mirror cannot be written (the disk is full, or nearly: see
    /// [`StagingFile::check_room`]; too slow; or failing): the stream goes on without it rather than
    /// refuse the program's writes, and the space it took is given back. What only the
    /// mirror allowed is refused from now on with [`UploadError::NotKept`]: a write, read
    /// or truncate before the part being filled, and keeping the data of an upload that
    /// fails. A file that streams from start to end, the usual case, never notices.
    fn give_up_mirror(&self, state: &mut State<C>, cause: UploadError) {
        let no_space = cause.is_no_space();
        self.stop_mirroring(state, cause.to_string(), no_space);
    }

    fn stop_mirroring(&self, state: &mut State<C>, why: String, no_space: bool) {
        warn!(
            "{:?}: {why}; streaming on without a local copy: the file must now be written \
             to its end, and if its upload fails its data cannot be kept",
            self.key()
        );
        state.unkept = Some(Unkept { why, no_space });
        state.mirror_pending.clear();
        state.mirrored = 0;
        if let Some(staging) = state.staging.take() {
            staging.remove();
        }
    }

    fn not_kept(&self, state: &State<C>, unkept: &Unkept) -> UploadError {
        let sent = match &state.mode {
            Mode::Streaming { part, .. } => self.size() - part.len() as u64,
            Mode::Staged => self.size(),
        };
        UploadError::NotKept {
            key: self.key(),
            sent,
            why: unkept.why.clone(),
            no_space: unkept.no_space,
        }
    }

    /// Writes the part buffer's bytes not yet in the mirror to it; streaming goes on.
    async fn spill(&self, state: &mut State<C>) -> Result<(), UploadError> {
        if let (Mode::Streaming { .. }, Some(unkept)) = (&state.mode, &state.unkept) {
            return Err(self.not_kept(state, unkept));
        }
        self.finish_mirror(state).await?;
        let size = self.size();
        let tail = match &state.mode {
            Mode::Streaming { part, .. } if state.mirrored < size => {
                let start = size - part.len() as u64;
                let skip = state.mirrored.saturating_sub(start) as usize;
                Bytes::copy_from_slice(&part.as_slice()[skip..])
            }
            _ => return Ok(()),
        };
        let at = size - tail.len() as u64;
        self.staging(state).await?.write_at(at, tail).await?;
        state.mirrored = size;
        Ok(())
    }

    /// A streaming upload that failed earlier, whose part buffer the disk could not take
    /// then, moves to staging now; the disk's error again if it still cannot.
    async fn settle(&self, state: &mut State<C>) -> Result<(), UploadError> {
        match &state.mode {
            Mode::Streaming { upload, .. } if upload.has_ended() => {
                self.switch_to_staged(state, "an upload that failed").await
            }
            _ => Ok(()),
        }
    }

    /// Up to `len` bytes at `offset`, as written so far (read-your-writes).
    pub async fn read(&self, offset: u64, len: u32) -> Result<Bytes, UploadError> {
        let mut state = self.state.lock().await;
        let size = self.size();
        if offset >= size || len == 0 {
            return Ok(Bytes::new());
        }
        let len = (size - offset).min(u64::from(len)) as usize;
        match &state.mode {
            Mode::Staged => self.fill(&mut state).await?,
            Mode::Streaming { part, .. } if offset >= size - part.len() as u64 => {
                // All in the part being filled: no disk needed.
                let at = (offset - (size - part.len() as u64)) as usize;
                return Ok(Bytes::copy_from_slice(&part.as_slice()[at..at + len]));
            }
            Mode::Streaming { .. } => {
                if let Some(unkept) = &state.unkept {
                    return Err(self.not_kept(&state, unkept));
                }
                self.finish_mirror(&mut state).await?;
                if offset + len as u64 > state.mirrored {
                    self.spill(&mut state).await?;
                }
            }
        }
        self.staging(&mut state).await?.read_at(offset, len).await
    }

    /// Sets the file's size to `size` (cutting, or extending with zeros).
    pub async fn truncate(&self, size: u64) -> Result<(), UploadError> {
        let mut state = self.state.lock().await;
        if size == self.size() {
            return Ok(());
        }
        self.switch_to_staged(&mut state, "a truncate").await?;
        // Bytes cut off never need fetching, even if the file grows again (they are zeros).
        state.fill_limit = state.fill_limit.min(size);
        state.filled_to = state.filled_to.min(state.fill_limit);
        self.staging(&mut state).await?.set_len(size).await?;
        self.size.store(size, Ordering::Release);
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Uploads the file if it changed, and returns once S3 acknowledged it (`None`: nothing
    /// to upload). On failure the data stays in the staging file, named in the error, and
    /// the next flush tries again. The writer keeps working after a flush either way.
    pub async fn flush(&self) -> Result<Option<ObjectMeta>, UploadError> {
        let mut state = self.state.lock().await;
        self.flush_locked(&mut state).await
    }

    /// The file was renamed to `new_key` while open: what it holds goes up first (to the
    /// old key, so `copy` moves the current content), then `copy` moves the object (it
    /// gets the upload's metadata when there was one), and the file's later uploads go to
    /// `new_key`. No write gets in between: the writer is held throughout.
    pub async fn rename<T, E, Fut>(
        &self,
        new_key: String,
        copy: impl FnOnce(Option<ObjectMeta>) -> Fut,
    ) -> Result<T, E>
    where
        Fut: std::future::Future<Output = Result<T, E>>,
        E: From<UploadError>,
    {
        let mut state = self.state.lock().await;
        let flushed = self.flush_locked(&mut state).await?;
        let moved = copy(flushed).await?;
        if let Mode::Streaming { upload, .. } = &mut state.mode {
            // Only an upload not started yet can be here: a started one was just completed.
            upload.retarget(new_key.clone());
        }
        *self.key_slot() = new_key;
        Ok(moved)
    }

    /// The file is about to lose its name (unlinked, or renamed over) while open: it must
    /// stay readable and writable through its open handles, and nothing of it goes to S3
    /// any more (a multipart upload under way is aborted). What of it only S3 holds (an
    /// existing object not fetched yet) is fetched first, since the object is about to go;
    /// if that fails, nothing changed and the error says why. Its local copy goes when the
    /// writer does.
    pub async fn unlink(&self) -> Result<(), UploadError> {
        let mut state = self.state.lock().await;
        if self.is_unlinked() {
            return Ok(());
        }
        if matches!(state.mode, Mode::Staged) {
            self.fill(&mut state).await?;
        }
        self.unlinked.store(true, Ordering::Release);
        if let Err(e) = self.switch_to_staged(&mut state, "it was unlinked").await {
            // Nobody can name the file any more: what only memory held stays there.
            debug!("{:?}: {e}", self.key());
            if let Mode::Streaming { upload, .. } = &mut state.mode {
                upload.abort().await;
            }
        }
        // Nothing of it may go to S3 again, so nothing is owed to S3.
        self.dirty.store(false, Ordering::Release);
        Ok(())
    }

    async fn flush_locked(&self, state: &mut State<C>) -> Result<Option<ObjectMeta>, UploadError> {
        if !self.is_dirty() || self.is_unlinked() {
            return Ok(None);
        }
        self.settle(state).await?;
        let size = self.size();
        // The time the object is stored with: set by utimes, when the upload can carry it.
        let mut stored_mtime = self.mtime();
        let uploaded = match std::mem::replace(&mut state.mode, Mode::Staged) {
            // Whatever happens, the file continues staged (but for an empty file, below): a
            // completed upload cannot be appended to, and a failed one was aborted.
            Mode::Streaming { upload, .. } if !upload.is_started() && size == 0 => {
                // Nothing written yet: a close of a duplicate descriptor (`cmd > file` and
                // `dd` open, dup2 and close before writing). The empty object goes up, and
                // the writer keeps streaming, so the writes that follow do not fall back to
                // staging and an upload at close.
                let sent = self.put(Bytes::new(), stored_mtime).await;
                state.mode = Mode::Streaming {
                    upload,
                    part: PartBuf::new(),
                };
                sent.map_err(|source| self.upload_failed(state, source))
            }
            Mode::Streaming {
                mut upload,
                mut part,
            } => {
                // A mirror that failed matters only if the upload fails too (then it is
                // written again with the rest); the upload does not wait for it.
                if let Err(e) = self.finish_mirror(state).await {
                    debug!("{:?}: {e}", self.key());
                }
                let tail = part.freeze();
                let sent = if upload.is_started() {
                    stored_mtime = upload.mtime();
                    let last = if tail.is_empty() {
                        Ok(())
                    } else {
                        upload.push_part(tail.clone()).await
                    };
                    match last {
                        Ok(()) => upload.complete().await,
                        Err(e) => Err(e),
                    }
                } else {
                    self.put(tail.clone(), stored_mtime).await
                };
                match sent {
                    Ok(etag) => {
                        // Writes after this continue staged; the bytes the mirror lacks
                        // (the last part) are fetched back from the new object if needed.
                        state.mirror_pending.clear();
                        state.filled_to = match state.unkept.take() {
                            Some(_) => 0,
                            None => state.mirrored.min(size),
                        };
                        state.fill_limit = size;
                        Ok(etag)
                    }
                    Err(source) => {
                        // Every byte must stay: the part buffer goes to the mirror and the
                        // writer on staged; if the disk refuses, it stays in memory.
                        upload.abort().await;
                        let limit = upload.next_part_size() as usize;
                        state.mode = Mode::Streaming {
                            upload,
                            part: PartBuf::from_slice(&tail, limit),
                        };
                        let staged = self.switch_to_staged(state, "a failed upload").await;
                        let failed = self.upload_failed(state, source);
                        if let Err(local) = staged {
                            warn!("{failed}");
                            return Err(local);
                        }
                        Err(failed)
                    }
                }
            }
            Mode::Staged => match self.fill(state).await {
                Ok(()) => self.upload_staged(state, size, stored_mtime).await,
                Err(e) => Err(e),
            },
        };
        match uploaded {
            Ok(etag) => {
                debug!("uploaded {:?} ({size} bytes)", self.key());
                state.origin_etag = Some(etag.clone());
                self.dirty.store(false, Ordering::Release);
                Ok(Some(ObjectMeta {
                    key: self.key(),
                    size,
                    etag,
                    // S3 answers a PUT without Last-Modified; ours is within the request's time.
                    last_modified: SystemTime::now(),
                    mtime: stored_mtime,
                }))
            }
            Err(err) => {
                warn!("{err}");
                Err(err)
            }
        }
    }

    fn upload_failed(&self, state: &State<C>, source: S3Error) -> UploadError {
        UploadError::S3 {
            key: self.key(),
            staging: state.staging.as_ref().map(|s| s.path().to_path_buf()),
            source,
        }
    }

    /// Gives up on the file (released without a successful flush): aborts any multipart
    /// upload in flight; a dirty staging copy is kept and its path logged.
    pub async fn abandon(&self) {
        let mut state = self.state.lock().await;
        if self.is_dirty() {
            if let Err(e) = self.spill(&mut state).await {
                warn!(
                    "the last bytes of {:?} could not be kept on disk ({e}); they are lost",
                    self.key()
                );
            }
        }
        if let Mode::Streaming { upload, .. } = &mut state.mode {
            upload.abort().await;
        }
        state.mode = Mode::Staged;
        if let Some(unkept) = state.unkept.take().filter(|_| self.is_dirty()) {
            warn!(
                "{:?} was not uploaded and its data is lost: it had been streamed to S3 \
                 without a local copy ({})",
                self.key(),
                unkept.why
            );
            return;
        }
        if self.is_dirty() {
            match &state.staging {
                Some(s) => warn!(
                    "{:?} was not uploaded; its data is kept in {}",
                    self.key(),
                    s.path().display()
                ),
                None => warn!("{:?} was not uploaded (it was empty)", self.key()),
            }
        }
    }

    /// Leaves streaming mode: the part buffer goes to the mirror (so every byte is in it),
    /// then the multipart upload is aborted. If the disk refuses the part buffer, the writer
    /// stays streaming (its upload untouched) and the disk's error is returned.
    async fn switch_to_staged(&self, state: &mut State<C>, why: &str) -> Result<(), UploadError> {
        if !matches!(state.mode, Mode::Streaming { .. }) {
            return Ok(());
        }
        debug!(
            "{:?}: {why}; switching from streaming to staging",
            self.key()
        );
        self.spill(state).await?;
        if let Mode::Streaming { upload, .. } = &mut state.mode {
            upload.abort().await;
        }
        state.mode = Mode::Staged;
        Ok(())
    }

    /// The staging file, created (at the current size) on first need.
    async fn staging<'s>(&self, state: &'s mut State<C>) -> Result<&'s StagingFile, UploadError> {
        let file = match state.staging.take() {
            Some(file) => file,
            None => {
                let file = StagingFile::create(&self.config.cache_dir, &self.key())?;
                if let Err(e) = file.set_len(self.size()).await {
                    file.remove();
                    return Err(e);
                }
                file
            }
        };
        Ok(state.staging.insert(file))
    }

    /// Copies what is still missing of the original object into the staging copy, one
    /// part-sized ranged GET at a time (bounded memory), each pinned with `If-Match`.
    async fn fill(&self, state: &mut State<C>) -> Result<(), UploadError> {
        let Some(etag) = state.origin_etag.clone() else {
            return Ok(());
        };
        let chunk = self.config.part_size.max(1);
        while state.filled_to < state.fill_limit {
            let start = state.filled_to;
            let end = state.fill_limit.min(start + chunk);
            let fetched = self
                .client
                .get_object(GetObjectParams {
                    key: self.key(),
                    range: Some(start..end),
                    if_match: Some(etag.clone()),
                })
                .await
                .and_then(|out| {
                    if out.body.len() as u64 == end - start {
                        Ok(out.body.to_bytes())
                    } else {
                        Err(S3Error::Malformed(format!(
                            "asked bytes {start}..{end}, got {} bytes",
                            out.body.len()
                        )))
                    }
                })
                .map_err(|source| UploadError::Fetch {
                    key: self.key(),
                    source,
                })?;
            self.staging(state).await?.write_at(start, fetched).await?;
            state.filled_to = end;
        }
        Ok(())
    }

    /// Uploads the staging copy whole: one PutObject below one part, else multipart with
    /// parts read from disk one at a time (at most `concurrency + 1` in memory).
    async fn upload_staged(
        &self,
        state: &State<C>,
        size: u64,
        mtime: Option<SystemTime>,
    ) -> Result<String, UploadError> {
        let failed = |source| self.upload_failed(state, source);
        let Some(staging) = &state.staging else {
            return self.put(Bytes::new(), mtime).await.map_err(failed);
        };
        if size <= self.config.part_size {
            let body = staging.read_at(0, size as usize).await?;
            return self.put(body, mtime).await.map_err(failed);
        }
        let mut upload = MultipartUpload::new(
            self.client.clone(),
            self.key(),
            self.config.part_size,
            self.config.concurrency,
        );
        upload.set_mtime(mtime);
        let mut offset = 0;
        while offset < size {
            let len = upload.next_part_size().min(size - offset);
            let body = match staging.read_at(offset, len as usize).await {
                Ok(body) => body,
                Err(e) => {
                    upload.abort().await;
                    return Err(e);
                }
            };
            upload.push_part(body).await.map_err(failed)?;
            offset += len;
        }
        upload.complete().await.map_err(failed)
    }

    async fn put(&self, body: Bytes, mtime: Option<SystemTime>) -> Result<String, S3Error> {
        self.client
            .put_object(PutObjectParams {
                key: self.key(),
                body,
                mtime,
            })
            .await
    }
}

impl<C: ObjectClient> Drop for OpenWriter<C> {
    /// A clean staging file goes away with its writer; a dirty one is kept for the user.
    fn drop(&mut self) {
        let dirty = self.is_dirty();
        let size = self.size();
        let key = self.key();
        let state = self.state.get_mut();
        // What only memory held (the part buffer, a mirror write that failed) goes now.
        let unkept = match &state.mode {
            Mode::Streaming { .. } if dirty => size.saturating_sub(state.mirrored),
            _ => 0,
        };
        match state.staging.take() {
            Some(staging) if dirty && unkept > 0 => warn!(
                "{:?} was not uploaded; its first {} bytes are kept in {}, the last {unkept} \
                 are lost",
                key,
                state.mirrored,
                staging.path().display()
            ),
            Some(staging) if dirty => warn!(
                "{:?} was not uploaded; its data is kept in {}",
                key,
                staging.path().display()
            ),
            Some(staging) => staging.remove(),
            None if unkept > 0 => warn!("{:?} was not uploaded; its {unkept} bytes are lost", key),
            None => {}
        }
    }
}
