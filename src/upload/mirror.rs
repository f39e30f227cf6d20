//! [`Mirror`]: the local copy a streaming file keeps of the parts it sends.
//!
//! While a new file streams to S3, each full part is *also* written to a journal entry's
//! data file before it goes up, so every byte is either in the mirror or in the part
//! buffer. This costs one local write per byte of a large file and disk space for its size,
//! and buys the properties nothing else gives: a stream that turns non-sequential (a seek
//! back, a truncate, a flush followed by more writes — a completed multipart upload cannot
//! be appended to) switches to a staged copy with every byte already local; an upload that
//! fails keeps the data (parts sent cannot be read back from S3); and a daemon that dies
//! leaves the file for the next mount to recover.
//!
//! Parts go to the disk in the background, with `O_DIRECT` where the filesystem allows it
//! (no copy into the page cache, no dirty pages competing with the uploads), at most
//! [`MIRROR_LAG`] at once. The part being filled is written ("spilled") only when something
//! needs it on disk: a switch to staging, a read of it, a failed upload, a `close`.
//!
//! The mirror is a safety net, never a limit: when its disk cannot take the next part
//! (full, within a tenth of full, slower than S3, or failing) it is given up — its space
//! freed, the reason kept ([`Unkept`]) — and the file streams on, so a file larger than the
//! local disk, or on a disk slower than the network, uploads like any other. What only the
//! mirror allowed then fails with [`UploadError::NotKept`].
//!
//! Invariant: bytes `[0, mirrored)` are in the data file; with the bytes of the pending
//! writes, everything before the part buffer is (unless given up).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use log::{debug, warn};

use super::journal::Journal;
use super::staging::{StagingFile, WriteThrough};
use super::UploadError;

/// Mirror writes of sent parts that may run at once. The disk usually finishes a part
/// before the next one fills; a few more absorb its hiccups. At most this many more part
/// buffers are held, and only while the disk lags.
pub const MIRROR_LAG: usize = 4;

/// Parts in a row that may find [`MIRROR_LAG`] mirror writes still running (each waits for
/// the oldest) before the disk counts as slower than S3 and the mirror is given up rather
/// than hold the upload to the disk's pace: a gp3 volume writes 125 MB/s where the same
/// instance uploads at 1 GB/s (32 parts of 8 MiB: 2 s at the disk's pace, then S3's). A
/// disk that only stalls now and then keeps its mirror: on the benchmark machine, with
/// both cores busy, eight parts in a row happened about once in three 1 GiB files; 32 did
/// not in a dozen.
pub const MIRROR_PATIENCE: u32 = 32;

/// Why a streaming file has no mirror any more.
#[derive(Clone, Debug)]
pub struct Unkept {
    pub why: String,
    /// The disk was full: what the mirror would have allowed fails with ENOSPC.
    pub no_space: bool,
}

/// Bytes `[offset, offset + data.len())` on their way to the mirror.
struct PendingWrite {
    offset: u64,
    data: Bytes,
    /// `None` once a write of them failed.
    write: Option<WriteThrough>,
}

impl PendingWrite {
    fn is_done(&self) -> bool {
        self.write.as_ref().is_none_or(WriteThrough::is_finished)
    }
}

/// The local copy of a streaming file.
#[derive(Default)]
pub struct Mirror {
    file: Option<StagingFile>,
    mirrored: u64,
    pending: VecDeque<PendingWrite>,
    /// Parts in a row that found [`MIRROR_LAG`] writes still running.
    behind: u32,
    unkept: Option<Unkept>,
}

impl Mirror {
    /// Bytes `[0, mirrored)` are on disk.
    pub fn mirrored(&self) -> u64 {
        self.mirrored
    }

    /// Why the mirror was given up, if it was.
    pub fn unkept(&self) -> Option<&Unkept> {
        self.unkept.as_ref()
    }

    /// The data file, once there is one.
    pub fn file(&self) -> Option<&StagingFile> {
        self.file.as_ref()
    }

    /// The data file, created on first need. `Ok(true)`: it was created just now (the
    /// caller writes the journal record).
    pub fn ensure_file(&mut self, journal: &Arc<Journal>) -> Result<bool, UploadError> {
        if self.file.is_some() {
            return Ok(false);
        }
        self.file = Some(StagingFile::create(journal)?);
        Ok(true)
    }

    /// Starts the write of the part `body` at `start`. Fails, for the caller to give the
    /// mirror up, when the disk cannot take it; gives it up itself when [`MIRROR_LAG`]
    /// earlier writes were still running at each of the last [`MIRROR_PATIENCE`] parts.
    pub async fn push(
        &mut self,
        journal: &Arc<Journal>,
        key: &str,
        start: u64,
        body: &Bytes,
    ) -> Result<(), UploadError> {
        if self.unkept.is_some() {
            return Ok(());
        }
        while self.pending.front().is_some_and(PendingWrite::is_done) {
            self.finish_oldest().await?;
        }
        if self.pending.len() < MIRROR_LAG {
            self.behind = 0;
        } else {
            self.behind += 1;
            if self.behind >= MIRROR_PATIENCE {
                let why = format!(
                    "the disk of {} is slower than the upload: {MIRROR_LAG} parts were still \
                     being written to it each time one of the last {MIRROR_PATIENCE} filled",
                    journal.dir().display()
                );
                self.give_up(key, why, false);
                return Ok(());
            }
            // A hiccup, maybe: wait for the disk this time.
            self.finish_oldest().await?;
        }
        let queued_to = self
            .pending
            .back()
            .map_or(self.mirrored, |p| p.offset + p.data.len() as u64);
        let end = start + body.len() as u64;
        if queued_to >= end {
            return Ok(());
        }
        let skip = queued_to.saturating_sub(start);
        let data = body.slice(skip as usize..);
        self.ensure_file(journal)?;
        let Some(file) = &self.file else {
            return Ok(());
        };
        file.check_room(data.len() as u64)?;
        let write = file.write_through(start + skip, data.clone())?;
        self.pending.push_back(PendingWrite {
            offset: start + skip,
            data,
            write: Some(write),
        });
        Ok(())
    }

    /// Waits for every pending write.
    pub async fn finish(&mut self) -> Result<(), UploadError> {
        while !self.pending.is_empty() {
            self.finish_oldest().await?;
        }
        Ok(())
    }

    /// Waits for the oldest pending write; one that failed is tried once more, plainly,
    /// and stays pending (its bytes kept) if that fails too.
    async fn finish_oldest(&mut self) -> Result<(), UploadError> {
        let Some(mut pending) = self.pending.pop_front() else {
            return Ok(());
        };
        let first = match pending.write.take() {
            Some(write) => write.finish().await,
            None => Err(UploadError::LocalIo {
                path: self.path_for_errors(),
                source: std::io::Error::other("an earlier write failed"),
            }),
        };
        let written = match (first, &self.file) {
            (Ok(()), _) => Ok(()),
            (Err(e), Some(file)) => {
                debug!("mirror write failed ({e}); trying again");
                file.write_at(pending.offset, pending.data.clone()).await
            }
            (Err(e), None) => Err(e),
        };
        match written {
            Ok(()) => {
                let end = pending.offset + pending.data.len() as u64;
                self.mirrored = self.mirrored.max(end);
                Ok(())
            }
            Err(e) => {
                self.pending.push_front(pending);
                Err(e)
            }
        }
    }

    fn path_for_errors(&self) -> std::path::PathBuf {
        self.file
            .as_ref()
            .map_or_else(|| Path::new(".").to_path_buf(), |f| f.path().to_path_buf())
    }

    /// Writes `tail`, the bytes of the part buffer (which starts at `tail_start`, after the
    /// bytes sent), that the mirror does not hold yet: after it every byte of the file is
    /// on disk. An error when the mirror was given up (with why) or the disk refuses.
    pub async fn spill(
        &mut self,
        journal: &Arc<Journal>,
        key: &str,
        tail_start: u64,
        tail: &[u8],
    ) -> Result<(), UploadError> {
        if let Some(unkept) = &self.unkept {
            return Err(not_kept(key, tail_start, unkept));
        }
        self.finish().await?;
        let size = tail_start + tail.len() as u64;
        if self.mirrored >= size {
            return Ok(());
        }
        let skip = self.mirrored.saturating_sub(tail_start) as usize;
        let bytes = Bytes::copy_from_slice(&tail[skip..]);
        self.ensure_file(journal)?;
        if let Some(file) = &self.file {
            file.check_room(bytes.len() as u64)?;
            file.write_at(size - bytes.len() as u64, bytes).await?;
        }
        self.mirrored = size;
        Ok(())
    }

    /// Bytes from `offset` on changed in the part buffer: what the mirror holds of them is
    /// stale.
    pub fn invalidate_from(&mut self, offset: u64) {
        self.mirrored = self.mirrored.min(offset);
    }

    /// The disk cannot hold the mirror (full, nearly: see [`StagingFile::check_room`]; too
    /// slow; or failing): the stream goes on without it rather than refuse the program's
    /// writes, and the space it took is given back.
    pub fn give_up_for(&mut self, key: &str, cause: &UploadError) {
        self.give_up(key, cause.to_string(), cause.is_no_space());
    }

    fn give_up(&mut self, key: &str, why: String, no_space: bool) {
        warn!(
            "{key:?}: {why}; streaming on without a local copy: the file must now be written \
             to its end, and if its upload fails its data cannot be kept"
        );
        self.unkept = Some(Unkept { why, no_space });
        self.pending.clear();
        self.mirrored = 0;
        if let Some(file) = self.file.take() {
            file.remove();
        }
    }

    /// The data file, for the staged copy the stream becomes (all its bytes were spilled),
    /// or for a clean copy after an upload (it holds `[0, mirrored)`).
    pub fn into_file(mut self) -> (Option<StagingFile>, u64) {
        self.pending.clear();
        (self.file.take(), self.mirrored)
    }
}

/// [`UploadError::NotKept`] for `key`, `sent` bytes of which are only in S3's unfinished
/// upload.
pub fn not_kept(key: &str, sent: u64, unkept: &Unkept) -> UploadError {
    UploadError::NotKept {
        key: key.to_string(),
        sent,
        why: unkept.why.clone(),
        no_space: unkept.no_space,
    }
}
