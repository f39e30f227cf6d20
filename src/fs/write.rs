//! The filesystem side of writing: which open files have a writer, how handles share it,
//! and what `create`, `write`, `flush`, `fsync`, `release` and truncation do.
//!
//! One [`OpenWriter`] per inode, shared by every handle that writes it, so two handles on
//! one file see each other's writes; reads of such a file are served by the writer (read
//! your writes) until the last handle closes. `flush` (every `close`) and `fsync` return
//! only once S3 acknowledged the data; a failure returns an error and the writer keeps the
//! data (staging copy) so a later flush retries — nothing is lost silently.

use std::sync::Arc;
use std::time::SystemTime;

use super::attrs::Creator;
use super::dir::EntryKind;
use super::handle::{FileHandle, Opened, PageCache};
use super::inode::{ChildFacts, TimeSource};
use super::{Attr, FsError, S3Filesystem};
use crate::cache::prefetch::Prefetcher;
use crate::s3::{Metadata, ObjectClient, S3Error};
use crate::upload::{OpenWriter, Origin, UploadError};

/// A writer and how many open handles use it.
pub struct WriterSlot<C: ObjectClient> {
    pub writer: Arc<OpenWriter<C>>,
    pub handles: usize,
}

/// How a file is opened, as far as writing is concerned.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenMode {
    pub write: bool,
    /// `O_TRUNC`: the content starts empty (and sequential writes stream).
    pub truncate: bool,
}

impl<C: ObjectClient> S3Filesystem<C> {
    /// The writer of `ino`, if a handle writes it.
    pub(super) fn writer_of(&self, ino: u64) -> Option<Arc<OpenWriter<C>>> {
        self.writers().get(&ino).map(|s| Arc::clone(&s.writer))
    }

    /// Attaches a handle to the inode's writer, creating it with `origin` if none exists
    /// (then the inode is pinned: one inode, one writer, until the writer goes).
    /// `local_only`: a file kept off S3 (`--exclude`, see `exclude`).
    fn attach_writer(
        &self,
        ino: u64,
        key: &str,
        origin: Origin,
        metadata: Metadata,
        local_only: bool,
    ) -> Arc<OpenWriter<C>> {
        // Pinned before the writer exists, and never under the writers' lock: elsewhere the
        // inode table's lock is held while a writer is looked up (attributes), so taking
        // them in the other order here could deadlock.
        self.inodes().pin(ino);
        let (writer, created) = {
            let mut writers = self.writers();
            let mut created = false;
            let slot = writers.entry(ino).or_insert_with(|| {
                created = true;
                WriterSlot {
                    writer: Arc::new(OpenWriter::new(
                        Arc::clone(&self.client),
                        key.to_string(),
                        origin,
                        metadata,
                        match local_only {
                            true => Arc::clone(&self.local_writer),
                            false => Arc::clone(&self.config.writer),
                        },
                    )),
                    handles: 0,
                }
            });
            slot.handles += 1;
            (Arc::clone(&slot.writer), created)
        };
        if !created {
            // The existing writer holds its own pin.
            self.inodes().unpin(ino);
        }
        writer
    }

    /// Attaches a handle to the inode's writer if it has one. Checked and attached under
    /// one lock: a writer whose last handle is closing (its final upload under way) is
    /// joined, never replaced by a second writer that would start from S3's older version.
    fn attach_existing(&self, ino: u64) -> Option<Arc<OpenWriter<C>>> {
        let mut writers = self.writers();
        let slot = writers.get_mut(&ino)?;
        slot.handles += 1;
        Some(Arc::clone(&slot.writer))
    }

    /// A writer for `ino` with one more handle on it: the existing one, else a new one that
    /// starts empty (`truncate`) or from the object's current version. Either way the
    /// object's metadata (modes, owners, xattrs, Content-Type, other tools' headers) is read
    /// first and goes with every upload.
    async fn writer_for(&self, ino: u64, truncate: bool) -> Result<Arc<OpenWriter<C>>, FsError> {
        if let Some(writer) = self.attach_existing(ino) {
            return Ok(writer);
        }
        let inode = self.inode(ino)?;
        let known = self.known_object(&inode);
        let current = match known {
            Some(meta) => Ok(meta),
            None => self.client.head_object(&inode.key).await,
        };
        let current = match current {
            Ok(meta) => {
                self.remember(&meta);
                Some(meta)
            }
            // Truncating a file S3 does not hold (gone meanwhile): a new one.
            Err(S3Error::NoSuchKey { .. }) if truncate => None,
            Err(S3Error::NoSuchKey { .. }) => return Err(FsError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let current_size = current.as_ref().map(|m| m.size);
        let metadata = match &current {
            Some(meta) => meta.metadata.clone().unwrap_or_default(),
            None => Metadata::with_content_type(Some(self.content_type(&inode.name))),
        };
        let replaced = match &current {
            Some(meta) if truncate => Some(meta.etag.clone()),
            _ => None,
        };
        let origin = match current {
            Some(meta) if !truncate => {
                let mut table = self.inodes();
                table.refresh(ino, ChildFacts::file(&meta), self.valid_until());
                Origin::Existing {
                    etag: meta.etag,
                    size: meta.size,
                }
            }
            _ => Origin::New,
        };
        let touched = truncate && current_size.is_some_and(|s| s > 0);
        let local_only = current_size.is_none() && self.is_local_only(&inode.key);
        // A writer created while S3 was asked is joined (`or_insert`): still one writer.
        let writer = self.attach_writer(ino, &inode.key, origin, metadata, local_only);
        if replaced.is_some() && writer.replaces().is_none() {
            // Emptied: the content replaces that version without using its bytes.
            writer.set_replaces(replaced);
        }
        if touched {
            // O_TRUNC emptied a file: its times move, as a write's would.
            writer.touch().await;
        }
        Ok(writer)
    }

    /// With write-back, the object behind a file as this mount knows it while that is
    /// fresh (the metadata TTL): its ETag and size, and its metadata from the metadata
    /// cache. Opening it for writing then needs no HEAD, so a save works through an outage
    /// as long as the file was seen lately. `None`: S3 is asked.
    fn known_object(&self, inode: &super::inode::Inode) -> Option<crate::s3::ObjectMeta> {
        self.write_back.as_ref()?;
        if inode.kind != EntryKind::File || inode.valid_until <= std::time::Instant::now() {
            return None;
        }
        let etag = inode.etag.clone()?;
        let last_modified = inode.last_modified?;
        let metadata = self
            .config
            .meta_cache
            .as_ref()?
            .get(&inode.key, &etag, last_modified)?;
        Some(crate::s3::ObjectMeta {
            key: inode.key.clone(),
            size: inode.size,
            etag,
            last_modified,
            metadata: Some(metadata),
            version_id: None,
        })
    }

    fn new_handle(&self, ino: u64, key: &str, etag: String, size: u64) -> u64 {
        self.handles().insert_file(FileHandle {
            ino,
            reader: tokio::sync::Mutex::new(Prefetcher::new(key.to_string(), etag, size)),
            writes: true,
        })
    }

    /// `open` for writing: an existing object is edited from its current version unless
    /// `O_TRUNC` starts it empty (then the page cache is bypassed, as for `create`).
    pub(super) async fn open_for_write(&self, ino: u64, truncate: bool) -> Result<Opened, FsError> {
        if self.config.read_only {
            return Err(FsError::ReadOnly);
        }
        let inode = self.inode(ino)?;
        if inode.kind == EntryKind::Directory {
            return Err(FsError::IsADirectory);
        }
        let writer = self.writer_for(ino, truncate).await?;
        if truncate {
            if let Err(e) = writer.truncate(0).await {
                self.release_writer(ino).await;
                return Err(FsError::Upload(e));
            }
        }
        Ok(Opened {
            fh: self.new_handle(ino, &inode.key, inode.etag.unwrap_or_default(), inode.size),
            cache: if truncate {
                PageCache::Bypass
            } else {
                PageCache::Refresh
            },
        })
    }

    /// `create`: a new, empty file that exists locally until its first flush uploads it,
    /// owned by `creator` with its mode. `exclusive` (`O_EXCL`) refuses a name that exists.
    pub async fn create(
        &self,
        parent: u64,
        name: &str,
        exclusive: bool,
        truncate: bool,
        creator: Creator,
    ) -> Result<(Attr, Opened), FsError> {
        let parent_key = self.writable_dir(parent)?;
        Self::checked_name(&parent_key, name)?;
        let parent_inode = self.inode(parent)?;
        // A fresh listing of the parent without the name answers for S3, as for a lookup:
        // a new file can be created (and its data journaled) while S3 cannot be reached.
        let unknown = self.inodes().child(parent, name).is_none();
        let lacks = |snapshot: &[super::handle::SnapshotEntry]| {
            snapshot
                .binary_search_by(|e| e.name.as_str().cmp(name))
                .is_err()
        };
        let known_absent = unknown
            && (self
                .listings()
                .get(parent)
                .is_some_and(|(_, snapshot)| lacks(&snapshot))
                // Offline: the last listing seen, however old, answers.
                || self.offline()
                    && self
                        .stale_listing(parent)
                        .is_some_and(|snapshot| lacks(&snapshot)));
        let existing = if known_absent {
            Err(FsError::NotFound)
        } else {
            self.stat_key(&parent_inode.key, name).await
        };
        match existing {
            Ok(existing) if exclusive => {
                let _ = existing;
                return Err(FsError::Exists);
            }
            Ok(existing) if existing.kind == EntryKind::Directory => {
                return Err(FsError::IsADirectory)
            }
            Ok(_) => {
                // O_CREAT on an existing file opens it.
                let attr = self.lookup(parent, name).await?;
                let opened = self.open_for_write(attr.ino, truncate).await?;
                let attr = self.getattr(attr.ino).await?;
                return Ok((attr, opened));
            }
            Err(FsError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let creator = self.creator_in(parent, creator, EntryKind::File);
        let (metadata, posix) = self.new_entry(name, EntryKind::File, creator);
        let facts = ChildFacts {
            kind: EntryKind::File,
            size: 0,
            mtime: posix
                .as_ref()
                .and_then(|p| p.mtime)
                .unwrap_or_else(SystemTime::now),
            time_source: TimeSource::LastModified,
            etag: None,
            last_modified: None,
            posix,
        };
        let ino = self.add_child(parent, name, facts)?;
        let key = format!("{}{name}", parent_inode.key);
        let local_only = self.is_local_only(&key);
        self.attach_writer(ino, &key, Origin::New, metadata, local_only);
        let fh = self.new_handle(ino, &key, String::new(), 0);
        let attr = self.getattr(ino).await?;
        Ok((
            attr,
            Opened {
                fh,
                cache: PageCache::Bypass,
            },
        ))
    }

    /// `write` through a handle, done at once when it needs no wait (see
    /// [`OpenWriter::write_now`]); `None`: [`S3Filesystem::write`] must do it.
    pub fn write_now(&self, fh: u64, offset: u64, data: &[u8]) -> Option<u32> {
        let handle = self.handles().file(fh).filter(|h| h.writes)?;
        let writer = self.writer_of(handle.ino)?;
        writer.write_now(offset, data).map(|n| n as u32)
    }

    /// `write` through a handle.
    pub async fn write(&self, fh: u64, offset: u64, data: bytes::Bytes) -> Result<u32, FsError> {
        let handle = self.handles().file(fh).ok_or(FsError::BadHandle(fh))?;
        if !handle.writes {
            return Err(FsError::BadHandle(fh));
        }
        let writer = self.writer_of(handle.ino).ok_or(FsError::BadHandle(fh))?;
        let n = writer.write(offset, data).await.map_err(FsError::Upload)?;
        Ok(n as u32)
    }

    /// `flush` (each `close`) and `fsync`: uploads what the file's writer holds; returns
    /// once S3 acknowledged it.
    pub async fn flush(&self, ino: u64) -> Result<(), FsError> {
        let Some(writer) = self.writer_of(ino) else {
            return Ok(());
        };
        self.save(ino, &writer).await
    }

    /// What `close` and `fsync` owe: the upload, or with write-back the local copy made
    /// durable and queued (see `writeback`).
    async fn save(&self, ino: u64, writer: &OpenWriter<C>) -> Result<(), FsError> {
        if writer.is_local_only() {
            return Ok(());
        }
        match self.write_back {
            Some(_) => self.queue_upload(ino, writer).await,
            None => self.upload(ino, writer).await,
        }
    }

    /// True when the `close` of handle `fh` on `ino` has nothing to send, so the request
    /// loop answers it at once: the handle only reads, or nobody writes the file. As NFS
    /// does, closing a reader does not upload what another handle is writing (that would
    /// end a streaming upload half way); `fsync` through any handle still does.
    pub fn flush_now(&self, fh: u64, ino: u64) -> bool {
        let reads_only = self.handles().file(fh).is_some_and(|h| !h.writes);
        reads_only || self.writer_of(ino).is_none()
    }

    /// Uploads what the writer of `ino` holds now, write-back or not (a close without
    /// write-back; a rename that must find the file in S3).
    pub(super) async fn upload(&self, ino: u64, writer: &OpenWriter<C>) -> Result<(), FsError> {
        match writer.flush().await {
            Ok(Some(meta)) => {
                self.rewritten(&meta.key);
                let mut table = self.inodes();
                table.refresh(ino, ChildFacts::file(&meta), self.valid_until());
                table.note_open(ino, &meta.etag);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                log::error!("{e}");
                Err(FsError::Upload(e))
            }
        }
    }

    /// `release` of a writing handle: the last one uploads anything left, then the writer
    /// goes (close() already reported the result of its flush). The writer stays in the
    /// table during that upload, so an `open` meanwhile joins it rather than start a
    /// second writer from S3's older version, and two uploads of one file never race.
    pub(super) async fn release_writer(&self, ino: u64) {
        let writer = {
            let mut writers = self.writers();
            let Some(slot) = writers.get_mut(&ino) else {
                return;
            };
            slot.handles = slot.handles.saturating_sub(1);
            if slot.handles > 0 {
                return;
            }
            Arc::clone(&slot.writer)
        };
        if writer.is_local_only() && !writer.is_unlinked() {
            // Kept, pinned, while the mount lives: the only copy there is.
            return;
        }
        if writer.is_dirty() {
            let _ = self.save(ino, &writer).await;
            if self.write_back.as_ref().is_some_and(|q| q.is_queued(ino)) {
                // Stays, pinned, until its upload: reads and stats see what was written.
                return;
            }
        }
        let left = self.retire_writer(ino, &writer).await;
        // The writer (and its lock on the journal entry) goes before the background
        // uploads are told to take the entry.
        drop(writer);
        if left {
            self.pending.wake();
        }
    }

    /// Drops the inode's writer if no handle uses it any more (and it is still `writer`).
    /// One with changes S3 lacks is left in the journal, complete, for the background
    /// uploads: returns true then.
    pub(super) async fn retire_writer(&self, ino: u64, writer: &Arc<OpenWriter<C>>) -> bool {
        let gone = {
            let mut writers = self.writers();
            let unused = writers
                .get(&ino)
                .is_some_and(|s| s.handles == 0 && Arc::ptr_eq(&s.writer, writer));
            if unused {
                writers.remove(&ino);
            }
            unused
        };
        if gone {
            self.inodes().unpin(ino);
            if writer.is_dirty() && !writer.is_local_only() {
                // Kept in the journal, complete: the background uploads take it from here
                // once the writer (and its lock on the file) is gone.
                writer.abandon().await;
                return true;
            }
        }
        false
    }

    /// True when a new file at `key` is kept off S3 (`--exclude`).
    pub(super) fn is_local_only(&self, key: &str) -> bool {
        let path = key.strip_prefix(&self.config.prefix).unwrap_or(key);
        self.config.exclude.matches(path)
    }

    /// A file kept local only, renamed to `key` where it is to be an ordinary file: a new
    /// writer of `key` takes its bytes and metadata and its place (its handles with it),
    /// and goes to S3 like any new file — now if no handle has it open, else at their
    /// close. `replaces`: the version at `key` it replaces.
    pub(super) async fn promote_local(
        &self,
        ino: u64,
        local: &Arc<OpenWriter<C>>,
        key: &str,
        replaces: Option<String>,
    ) -> Result<(), FsError> {
        let writer = Arc::new(OpenWriter::new(
            Arc::clone(&self.client),
            key.to_string(),
            Origin::New,
            local.metadata(),
            Arc::clone(&self.config.writer),
        ));
        let size = local.size();
        let mut offset = 0;
        while offset < size {
            let len = (size - offset).min(1 << 20) as u32;
            let bytes = local.read(offset, len).await?;
            if bytes.is_empty() {
                break;
            }
            offset += bytes.len() as u64;
            writer.write(offset - bytes.len() as u64, bytes).await?;
        }
        writer.set_metadata(local.metadata(), Some(true)).await?;
        writer.set_replaces(replaces);
        let idle = {
            let mut writers = self.writers();
            let Some(slot) = writers
                .get_mut(&ino)
                .filter(|s| Arc::ptr_eq(&s.writer, local))
            else {
                return Err(FsError::NotFound);
            };
            slot.writer = Arc::clone(&writer);
            let idle = slot.handles == 0;
            if idle {
                // Released below like the last handle of any written file.
                slot.handles = 1;
            }
            idle
        };
        local.unlink().await?;
        if idle {
            self.release_writer(ino).await;
        }
        Ok(())
    }

    /// `setattr(size)`: truncation, through the open writer or as its own upload (through
    /// a writer of its own for the time, so it is ordered with any other).
    pub async fn set_size(&self, ino: u64, size: u64) -> Result<Attr, FsError> {
        if self.config.read_only {
            return Err(FsError::ReadOnly);
        }
        if let Some(writer) = self.writer_of(ino) {
            let before = writer.size();
            writer.truncate(size).await.map_err(FsError::Upload)?;
            if size != before {
                // Shown at once; stored with the upload (which stamps its own time).
                self.inodes().touch(ino);
            }
            return self.getattr(ino).await;
        }
        let inode = self.inode(ino)?;
        match inode.kind {
            EntryKind::Directory => return Err(FsError::IsADirectory),
            EntryKind::Symlink => return Err(FsError::InvalidArgument("truncate of a symlink")),
            EntryKind::File => {}
        }
        let writer = self.writer_for(ino, size == 0).await?;
        let truncated = match writer.truncate(size).await {
            Ok(()) => self.save(ino, &writer).await,
            Err(e) => Err(FsError::Upload(e)),
        };
        self.release_writer(ino).await;
        truncated?;
        self.getattr(ino).await
    }
}

impl From<UploadError> for FsError {
    fn from(e: UploadError) -> Self {
        FsError::Upload(e)
    }
}
