//! [`Staged`]: a file edited on a local copy and uploaded whole on flush.
//!
//! Everything that is not a new file written at its end works here: writes at any offset,
//! appends, truncation, editing an existing object. The copy is sparse (see `chunks`): only
//! what a read or a partial write needs is fetched from the base (ranged GETs pinned to its
//! ETag), and only what changed is sent — unchanged whole parts are copied inside S3
//! (UploadPartCopy), so an append of a line to a 10 GiB object moves about one part each
//! way. Every byte written to the copy keeps the disk's reserve (a tenth of it, at most 1 GiB,
//! free) or
//! fails with `ENOSPC` first.
//!
//! With `--incremental-upload` on a directory bucket, a file that is its base with bytes
//! added at the end (see `chunks`), at most one part of them, sends only those:
//! [`Staged::append`], a PutObject with `x-amz-write-offset-bytes` at the base's size and
//! `If-Match` on its ETag. If another client changed the object meanwhile (400
//! `InvalidWriteOffset`, or 412), the object's end is asked (HEAD) and the bytes are
//! appended there instead, as `O_APPEND` does on a shared disk: neither client's bytes
//! are lost, and the copy starts over from the object as S3 now holds it. (Unless the
//! object ends with exactly these bytes: then the first append was carried out and only
//! its answer lost, and it is not made twice.) After a few such races, when the object is
//! gone, or when it holds S3's 10,000 appends and parts (`TooManyParts`), the file is
//! uploaded whole as below.
//!
//! A multipart upload that failed is kept ([`Staged::keep_resumable`]) and the next upload
//! resumes it: the parts S3 holds whose CRC32C matches the local bytes are taken as they are
//! (ListParts), the rest is sent again.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use log::{debug, warn};

use super::chunks::{ChunkMap, PartSource};
use super::journal::Record;
use super::multipart::{abort_upload, part_size, MultipartUpload};
use super::staging::StagingFile;
use super::{UploadError, WriterConfig, S3_MAX_OBJECT_SIZE};
use crate::s3::checksum::crc32c_base64;
use crate::s3::{
    AppendObjectParams, CompletedPart, GetObjectParams, Metadata, ObjectClient, ObjectMeta,
    PutObjectParams, S3Error,
};

/// Appends tried at another client's new end before the file goes up whole: each one
/// lost a race within a round trip, so a third loss means a key too busy to append to.
const APPEND_RACES: usize = 3;

/// The object a staged copy's absent chunks come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base {
    pub key: String,
    /// With its quotes, as S3 sent it (`If-Match`).
    pub etag: String,
}

/// A multipart upload of a staged file that failed, kept so the next upload sends only
/// what S3 lacks.
#[derive(Clone, Debug)]
struct Resumable {
    key: String,
    upload_id: String,
}

/// A file on its local copy.
pub struct Staged {
    file: Option<StagingFile>,
    base: Option<Base>,
    chunks: ChunkMap,
    resumable: Option<Resumable>,
}

/// What a staged file's operations need from the writer.
pub struct Ctx<'a, C: ObjectClient> {
    pub client: &'a Arc<C>,
    pub config: &'a WriterConfig,
    /// The key the file uploads to (and names in errors).
    pub key: &'a str,
}

impl Staged {
    /// True when the object S3 holds (`meta`, from a HEAD) is exactly this copy's data:
    /// an upload of it completed and only the answer was lost (with the daemon, or on the
    /// way). Told by size and ETag, on a server whose ETags are MD5s only (elsewhere
    /// `false`: the caller then keeps both versions).
    pub async fn holds_exactly<C: ObjectClient + ?Sized>(
        &self,
        client: &C,
        meta: &ObjectMeta,
        first_part: u64,
    ) -> bool {
        if client.etags_are_md5() != Some(true) {
            return false;
        }
        if meta.size != self.size() || !self.is_all_local() {
            return false;
        }
        let Some(file) = self.file() else {
            return false;
        };
        let size = self.size();
        let expected = if size <= first_part {
            match file.read_at(0, size as usize).await {
                Ok(body) => {
                    use md5::Digest as _;
                    hex::encode(md5::Md5::digest(&body))
                }
                Err(_) => return false,
            }
        } else {
            let mut parts = Vec::new();
            let (mut start, mut number) = (0, 1);
            while start < size {
                let len = part_size(first_part, number).min(size - start);
                let Ok(body) = file.read_at(start, len as usize).await else {
                    return false;
                };
                use md5::Digest as _;
                parts.push(crate::s3::CompletedPart {
                    part_number: number,
                    etag: hex::encode(md5::Md5::digest(&body)),
                    checksum_crc32c: None,
                    size: len,
                });
                start += len;
                number += 1;
            }
            match crate::s3::etag::multipart_etag(&parts) {
                Some(etag) => etag,
                None => return false,
            }
        };
        meta.etag.trim_matches('"') == expected
    }

    /// An existing object of `size` bytes at `base`, nothing of it local yet.
    pub fn existing(base: Base, size: u64, chunk: u64) -> Staged {
        Staged {
            file: None,
            base: Some(base),
            chunks: ChunkMap::new(chunk, size),
            resumable: None,
        }
    }

    /// A new file whose every byte is in `file` (a stream that switched, spilled whole).
    pub fn local(file: Option<StagingFile>, size: u64, chunk: u64) -> Staged {
        Staged {
            file,
            base: None,
            chunks: ChunkMap::all_dirty(chunk, size),
            resumable: None,
        }
    }

    /// A file just uploaded as `base` (`size` bytes), whose first `local` bytes are in
    /// `file` (a stream's mirror); the rest is fetched from the new object when needed.
    pub fn uploaded(
        file: Option<StagingFile>,
        base: Base,
        size: u64,
        local: u64,
        chunk: u64,
    ) -> Staged {
        let local = if file.is_some() { local } else { 0 };
        Staged {
            file,
            base: Some(base),
            chunks: ChunkMap::from_prefix(chunk, size, local),
            resumable: None,
        }
    }

    /// A journal entry's file as its record describes it (recovery).
    pub fn from_record(file: StagingFile, record: &Record) -> Staged {
        let chunks = if record.stream {
            // A mirror: its bytes are the file's first ones, nothing else is known.
            let len = file.length().unwrap_or(0).min(record.size);
            ChunkMap::all_dirty(record.chunk.max(1), len)
        } else {
            ChunkMap::from_runs(record.chunk, record.size, record.base_limit, &record.chunks)
        };
        Staged {
            file: Some(file),
            base: record.base_etag.clone().map(|etag| Base {
                key: record.key.clone(),
                etag,
            }),
            chunks,
            resumable: None,
        }
    }

    pub fn size(&self) -> u64 {
        self.chunks.size()
    }

    pub fn base(&self) -> Option<&Base> {
        self.base.as_ref()
    }

    /// The base moved: a rename copied it to `base` (same bytes, maybe a new ETag).
    pub fn rebase(&mut self, base: Option<Base>) {
        self.base = base;
    }

    pub fn file(&self) -> Option<&StagingFile> {
        self.file.as_ref()
    }

    pub fn take_file(&mut self) -> Option<StagingFile> {
        self.file.take()
    }

    /// True when every byte of the file is local: it does not need its base any more.
    pub fn is_all_local(&self) -> bool {
        self.base.is_none() || self.chunks.all_local()
    }

    /// Writes what the journal record says of the copy.
    pub fn describe(&self, record: &mut Record) {
        record.base_etag = self.base.as_ref().map(|b| b.etag.clone());
        record.base_limit = self.chunks.base_limit();
        record.size = self.chunks.size();
        record.chunk = self.chunks.chunk_size();
        record.chunks = self.chunks.runs();
        record.stream = false;
        record.upload_ids = self.resumable.iter().map(|r| r.upload_id.clone()).collect();
    }

    /// The local copy, created now if nothing needed it yet (an empty new file that must
    /// still be journaled).
    pub async fn ensure_local<C: ObjectClient>(
        &mut self,
        ctx: &Ctx<'_, C>,
    ) -> Result<&StagingFile, UploadError> {
        self.ensure_file(ctx).await
    }

    /// The copy, created (at the file's size) on first need.
    async fn ensure_file<C: ObjectClient>(
        &mut self,
        ctx: &Ctx<'_, C>,
    ) -> Result<&StagingFile, UploadError> {
        if self.file.is_none() {
            let file = StagingFile::create(&ctx.config.journal)?;
            if let Err(e) = file.set_len(self.chunks.size()).await {
                file.remove();
                return Err(e);
            }
            self.file = Some(file);
        }
        match &self.file {
            Some(file) => Ok(file),
            None => unreachable!("created just above"),
        }
    }

    /// Fetches the given chunks' base parts into the copy, one GET each (a chunk's memory
    /// at a time), pinned to the base's ETag.
    async fn fetch<C: ObjectClient>(
        &mut self,
        ctx: &Ctx<'_, C>,
        chunks: Vec<(usize, Range<u64>)>,
    ) -> Result<(), UploadError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let Some(base) = self.base.clone() else {
            // Absent chunks exist only with a base; nothing to fetch from otherwise.
            return Ok(());
        };
        self.ensure_file(ctx).await?;
        for (i, range) in chunks {
            let fetch_error = |source| UploadError::Fetch {
                key: ctx.key.to_string(),
                source,
            };
            if let Some(file) = &self.file {
                file.check_room(range.end - range.start)?;
            }
            let out = ctx
                .client
                .get_object(GetObjectParams {
                    key: base.key.clone(),
                    range: Some(range.clone()),
                    if_match: Some(base.etag.clone()),
                })
                .await
                .map_err(fetch_error)?;
            if out.body.len() as u64 != range.end - range.start {
                return Err(fetch_error(S3Error::Malformed(format!(
                    "asked bytes {}..{}, got {} bytes",
                    range.start,
                    range.end,
                    out.body.len()
                ))));
            }
            if let Some(file) = &self.file {
                file.write_at(range.start, out.body.to_bytes()).await?;
            }
            self.chunks.fetched(i);
        }
        Ok(())
    }

    /// Up to `len` bytes at `offset`.
    pub async fn read<C: ObjectClient>(
        &mut self,
        ctx: &Ctx<'_, C>,
        offset: u64,
        len: usize,
    ) -> Result<Bytes, UploadError> {
        let size = self.chunks.size();
        if offset >= size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = size.min(offset + len as u64);
        let missing = self.chunks.to_fetch_for_read(offset..end);
        self.fetch(ctx, missing).await?;
        self.ensure_file(ctx)
            .await?
            .read_at(offset, (end - offset) as usize)
            .await
    }

    /// Writes `data` at `offset`. `Ok(true)` when a chunk changed state (the journal
    /// records it).
    pub async fn write<C: ObjectClient>(
        &mut self,
        ctx: &Ctx<'_, C>,
        offset: u64,
        data: Bytes,
    ) -> Result<bool, UploadError> {
        let end = offset + data.len() as u64;
        too_large(ctx.key, end)?;
        let missing = self.chunks.to_fetch_for_write(offset..end);
        self.fetch(ctx, missing).await?;
        let file = self.ensure_file(ctx).await?;
        file.check_room(data.len() as u64)?;
        file.write_at(offset, data).await?;
        Ok(self.chunks.written(offset..end))
    }

    /// Cuts or extends (with zeros) the file to `size`.
    pub async fn truncate<C: ObjectClient>(
        &mut self,
        ctx: &Ctx<'_, C>,
        size: u64,
    ) -> Result<(), UploadError> {
        too_large(ctx.key, size)?;
        self.ensure_file(ctx).await?.set_len(size).await?;
        self.chunks.resize(size);
        Ok(())
    }

    /// Fetches everything still only in the base (the base is about to go).
    pub async fn fetch_all<C: ObjectClient>(
        &mut self,
        ctx: &Ctx<'_, C>,
    ) -> Result<(), UploadError> {
        let size = self.chunks.size();
        let missing = self.chunks.to_fetch_for_read(0..size);
        self.fetch(ctx, missing).await?;
        self.base = None;
        Ok(())
    }

    /// Keeps the failed multipart upload `upload_id` of `key` for the next upload to
    /// resume.
    pub fn keep_resumable(&mut self, key: String, upload_id: String) {
        self.resumable = Some(Resumable { key, upload_id });
    }

    /// A kept multipart upload that will not be resumed: aborted (in the background, if
    /// the server cannot be reached).
    pub async fn drop_resumable<C: ObjectClient>(
        &mut self,
        client: &Arc<C>,
        config: &WriterConfig,
    ) {
        if let Some(r) = self.resumable.take() {
            abort_upload(
                client,
                &r.key,
                Some(&r.upload_id),
                Vec::new(),
                Some(&config.journal),
            )
            .await;
        }
    }

    /// Uploads the file to `ctx.key` (the base stays where it is: recovery uploads beside
    /// it): one PutObject up to one part, else a multipart upload mixing parts copied from
    /// the base and parts sent from the copy. Returns the new ETag; the copy is clean and
    /// based on it afterwards.
    pub async fn upload<C: ObjectClient>(
        &mut self,
        ctx: &Ctx<'_, C>,
        metadata: &Metadata,
    ) -> Result<String, UploadError> {
        let size = self.chunks.size();
        let s3_failed = |source, staged: &Staged| UploadError::S3 {
            key: ctx.key.to_string(),
            staging: staged.file.as_ref().map(|f| f.path().to_path_buf()),
            source,
        };
        let etag = if size <= ctx.config.part_size {
            let missing = self.chunks.to_fetch_for_read(0..size);
            self.fetch(ctx, missing).await?;
            let body = match (&self.file, size) {
                (_, 0) | (None, _) => Bytes::new(),
                (Some(file), _) => file.read_at(0, size as usize).await?,
            };
            ctx.client
                .put_object(PutObjectParams {
                    key: ctx.key.to_string(),
                    body,
                    metadata: metadata.clone(),
                })
                .await
                .map_err(|e| s3_failed(e, self))?
        } else {
            self.upload_parts(ctx, metadata).await?
        };
        self.chunks.uploaded();
        self.base = Some(Base {
            key: ctx.key.to_string(),
            etag: etag.clone(),
        });
        Ok(etag)
    }

    /// Uploads only the bytes added at the end of the base, appended in S3 (see the
    /// module doc). `Ok(None)`: not an append, or the bucket cannot append, or the races
    /// were lost: nothing changed in S3, and [`Staged::upload`] must do it. On success the
    /// copy is clean and based on the new ETag; the file's size is then
    /// [`Staged::size`] (larger than before when another client's bytes came first).
    pub async fn append<C: ObjectClient>(
        &mut self,
        ctx: &Ctx<'_, C>,
    ) -> Result<Option<String>, UploadError> {
        let Some(added) = self.chunks.appended() else {
            return Ok(None);
        };
        let len = added.end - added.start;
        // One part's memory at most, as any part; larger appends go up in parts.
        let base = self.base.clone().filter(|b| b.key == ctx.key);
        let (Some(base), Some(file)) = (base, &self.file) else {
            return Ok(None);
        };
        if len > ctx.config.part_size {
            return Ok(None);
        }
        let _reservation = ctx.config.budget.reserve(len).await;
        let body = file.read_at(added.start, len as usize).await?;
        let (mut offset, mut if_match) = (added.start, base.etag);
        for _ in 0..=APPEND_RACES {
            let sent = ctx
                .client
                .append_object(AppendObjectParams {
                    key: ctx.key.to_string(),
                    offset,
                    body: body.clone(),
                    if_match: Some(if_match.clone()),
                })
                .await;
            let changed = match sent {
                Ok(None) => return Ok(None),
                Ok(Some(etag)) => return Ok(Some(self.appended(ctx, offset, len, etag))),
                Err(e) if e.is_invalid_write_offset() => e,
                Err(e @ S3Error::PreconditionFailed { .. }) => e,
                Err(S3Error::NoSuchKey { .. }) => return Ok(None),
                // 10,000 appends and parts: only a rewrite resets the count.
                Err(S3Error::Service { code, .. }) if code == "TooManyParts" => return Ok(None),
                Err(e) => return Err(self.failed(ctx, e)),
            };
            let now = match ctx.client.head_object(ctx.key).await {
                Ok(now) => now,
                Err(S3Error::NoSuchKey { .. }) => return Ok(None),
                Err(e) => return Err(self.failed(ctx, e)),
            };
            if now.size == offset + len && self.ends_with(ctx, &now.etag, offset, &body).await {
                debug!("{:?}: the append was made, its answer lost", ctx.key);
                return Ok(Some(self.appended(ctx, offset, len, now.etag)));
            }
            warn!(
                "{:?} changed in S3 while it was appended to ({changed}); its {len} new bytes                  go at the object's new end, {} bytes",
                ctx.key, now.size
            );
            (offset, if_match) = (now.size, now.etag);
        }
        Ok(None)
    }

    /// Whether the object, version `etag`, holds `body` at `offset` (its last bytes).
    async fn ends_with<C: ObjectClient>(
        &self,
        ctx: &Ctx<'_, C>,
        etag: &str,
        offset: u64,
        body: &Bytes,
    ) -> bool {
        let got = ctx
            .client
            .get_object(GetObjectParams {
                key: ctx.key.to_string(),
                range: Some(offset..offset + body.len() as u64),
                if_match: Some(etag.to_string()),
            })
            .await;
        got.is_ok_and(|out| out.body.to_bytes() == *body)
    }

    /// `len` bytes were appended at `offset`, giving version `etag`: the copy is based on
    /// it. Appended where the copy ended, the copy is that object; elsewhere (another
    /// client's bytes came first) the copy no longer matches it, and starts over as that
    /// object, nothing of it local.
    fn appended<C: ObjectClient>(
        &mut self,
        ctx: &Ctx<'_, C>,
        offset: u64,
        len: u64,
        etag: String,
    ) -> String {
        if offset == self.chunks.size() - len {
            self.chunks.uploaded();
        } else {
            if let Some(file) = self.file.take() {
                file.remove();
            }
            self.chunks = ChunkMap::new(self.chunks.chunk_size(), offset + len);
        }
        self.base = Some(Base {
            key: ctx.key.to_string(),
            etag: etag.clone(),
        });
        etag
    }

    async fn upload_parts<C: ObjectClient>(
        &mut self,
        ctx: &Ctx<'_, C>,
        metadata: &Metadata,
    ) -> Result<String, UploadError> {
        let config = ctx.config;
        let mut upload = MultipartUpload::new(
            Arc::clone(ctx.client),
            ctx.key.to_string(),
            config.part_size,
            config.concurrency,
        )
        .with_journal(Arc::clone(&config.journal));
        upload.set_metadata(metadata.clone(), false);
        let held = self.resume(ctx, &mut upload).await;
        let plan = self.chunks.plan(|n| part_size(config.part_size, n));
        let mut sent = Ok(());
        for part in plan {
            let pushed = match (&part.source, &self.base) {
                (PartSource::Base, Some(base)) => {
                    let base = base.clone();
                    upload
                        .push_copy(&base.key, part.range.clone(), &base.etag)
                        .await
                        .map_err(|e| self.failed(ctx, e))
                }
                _ => {
                    self.push_local(ctx, &mut upload, &part.range, held.get(&part.number))
                        .await
                }
            };
            if let Err(e) = pushed {
                sent = Err(e);
                break;
            }
        }
        let completed = match sent {
            Ok(()) => upload.complete().await.map_err(|e| self.failed(ctx, e)),
            Err(e) => Err(e),
        };
        if completed.is_err() && upload.is_started() {
            if let Some(id) = upload.into_resumable().await {
                debug!("{:?}: keeping multipart upload {id} to resume", ctx.key);
                self.keep_resumable(ctx.key.to_string(), id);
            }
        }
        completed
    }

    /// Sends part `range` from the copy, or takes the part S3 already holds when it is the
    /// same bytes.
    async fn push_local<C: ObjectClient>(
        &mut self,
        ctx: &Ctx<'_, C>,
        upload: &mut MultipartUpload<C>,
        range: &Range<u64>,
        held: Option<&CompletedPart>,
    ) -> Result<(), UploadError> {
        let missing = self.chunks.to_fetch_for_part(range.clone());
        self.fetch(ctx, missing).await?;
        let len = range.end - range.start;
        let reservation = ctx.config.budget.reserve(len).await;
        let file = self.ensure_file(ctx).await?;
        let body = file.read_at(range.start, len as usize).await?;
        if let Some(part) = held.filter(|p| {
            p.size == len && p.checksum_crc32c.as_deref() == Some(&crc32c_base64(&body))
        }) {
            upload.adopt(part.clone());
            return Ok(());
        }
        upload
            .push_part(body, Some(reservation))
            .await
            .map_err(|e| self.failed(ctx, e))
    }

    /// The upload to resume, if one was kept for this key: its parts as S3 holds them. One
    /// that cannot be listed is aborted and the upload starts afresh.
    async fn resume<C: ObjectClient>(
        &mut self,
        ctx: &Ctx<'_, C>,
        upload: &mut MultipartUpload<C>,
    ) -> HashMap<u32, CompletedPart> {
        let Some(kept) = self.resumable.take() else {
            return HashMap::new();
        };
        let abort = || {
            abort_upload(
                ctx.client,
                &kept.key,
                Some(&kept.upload_id),
                Vec::new(),
                Some(&ctx.config.journal),
            )
        };
        if kept.key != ctx.key {
            abort().await;
            return HashMap::new();
        }
        match ctx.client.list_parts(&kept.key, &kept.upload_id).await {
            Ok(parts) => {
                debug!(
                    "{:?}: resuming multipart upload {} ({} parts in S3)",
                    ctx.key,
                    kept.upload_id,
                    parts.len()
                );
                upload.resume(kept.upload_id);
                parts.into_iter().map(|p| (p.part_number, p)).collect()
            }
            Err(e) => {
                debug!(
                    "{:?}: cannot resume {} ({e}); starting afresh",
                    ctx.key, kept.upload_id
                );
                abort().await;
                HashMap::new()
            }
        }
    }

    fn failed<C: ObjectClient>(&self, ctx: &Ctx<'_, C>, source: S3Error) -> UploadError {
        UploadError::S3 {
            key: ctx.key.to_string(),
            staging: self.file.as_ref().map(|f| f.path().to_path_buf()),
            source,
        }
    }
}

/// [`UploadError::TooLarge`] when a file of `size` bytes could not be stored.
pub fn too_large(key: &str, size: u64) -> Result<(), UploadError> {
    if size > S3_MAX_OBJECT_SIZE {
        return Err(UploadError::TooLarge {
            key: key.to_string(),
            size,
        });
    }
    Ok(())
}
