//! The filesystem core: inode operations answered from the inode table when it can, from
//! S3 (through [`ObjectClient`]) when it must. Async, and free of fuser types: `fuse`
//! is the thin adapter that spawns these methods on tokio and sends their replies, so the
//! FUSE session thread never waits on the network.
//!
//! - `inode`: the inode table (numbers, keys, cached attributes, lookup counts).
//! - `dir`: listing → directory entries (markers, implicit dirs, shadowing, hidden keys).
//! - `handle`: open files (pinned ETag, read-ahead) and open directories (listing snapshot).
//! - `error`: [`FsError`] and the errno policy.
//! - `posix`: modes, owners and times as object metadata (s3fs's format).
//! - `xattr`: extended attributes, stored as s3fs stores them.
//! - `heads`: HEADs of listed entries asked ahead of the `stat`s of `ls -l`.
//! - `attrs`: `setattr` (chmod, chown, utimes, truncate), symlinks and xattrs.
//! - `namespace`: mkdir, rmdir, unlink, rename.
//! - `write`: create, write, flush/fsync, truncation through the upload engine.
//! - `writeback`: `--write-back`'s queue of files closed and not yet uploaded.
//! - `markers`: write-back's directory markers, made durable locally by `mkdir` and queued.
//! - `status`: a snapshot of caches, open files and uploads for `s3rolefs status`.
//! - `fuse`: the `fuser::Filesystem` adapter.

pub mod attrs;
pub mod dir;
pub mod error;
pub mod exclude;
pub mod fuse;
pub mod handle;
mod heads;
pub mod inode;
mod markers;
mod namespace;
pub mod posix;
pub mod status;
pub mod write;
pub mod writeback;
pub mod xattr;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::cache::block::BlockCache;
use crate::cache::disk::DiskCache;
use crate::cache::meta::MetaCache;
use crate::cache::prefetch::{Prefetcher, ReadContext};
use crate::s3::{Chunks, ListObjectsParams, ObjectClient, ObjectMeta, S3Error};
use crate::upload::pending::Pending;
use crate::upload::WriterConfig;
use dir::{EntryKind, ListedEntry};
pub use error::FsError;
use handle::{DirHandle, FileHandle, HandleTable, ListingCache, SnapshotEntry};
pub use handle::{Opened, PageCache};
use heads::Heads;
use inode::{ChildFacts, Inode, InodeTable, ROOT_INO};
use posix::Posix;
pub use write::OpenMode;
use write::WriterSlot;

/// How long an unmount lets the journal's files try to reach S3 before the daemon exits:
/// one retry budget's worth, so an outage does not hold a shutdown (systemd gives a unit
/// 90 s by default; ours 120).
pub const FINAL_PASS: Duration = Duration::from_secs(60);

/// How long an unmount lets the write-back queue drain before what is left goes to the
/// journal (and [`FINAL_PASS`]). `s3rolefs unmount` waits for the queue before it detaches
/// the mount; this bounds the rest (a `--lazy` unmount, a signal).
pub const WRITE_BACK_DRAIN: Duration = Duration::from_secs(30);

/// How the mount presents objects (everything S3 does not store).
#[derive(Clone, Debug)]
pub struct FsConfig {
    /// Key prefix of the mount root: `""` or ending in `/`.
    pub prefix: String,
    pub uid: u32,
    pub gid: u32,
    pub file_mode: u16,
    pub dir_mode: u16,
    /// How long attributes and entries are trusted without asking S3 again.
    pub metadata_ttl: Duration,
    pub read_only: bool,
    /// How open files upload (part size, concurrency, staging directory).
    pub writer: Arc<WriterConfig>,
    /// Bytes of the block cache.
    pub cache_size: u64,
    /// Bytes of blocks fetched ahead, across all open files.
    pub max_prefetch_memory: u64,
    /// The disk tier of the block cache, when configured.
    pub disk_cache: Option<Arc<DiskCache>>,
    /// Bytes the disk tier may hold (0 without one), as `status` reports it.
    pub disk_cache_size: u64,
    /// Modes, owners, times, symlinks and xattrs are read from and stored in object
    /// metadata (s3fs's format); `false` (`--no-posix-metadata`): every file shows the
    /// mount's mode and owner, and metadata is neither read nor written.
    pub posix_metadata: bool,
    /// `Content-Type` of files whose extension names none.
    pub content_type_default: String,
    /// Metadata read by HEADs, kept across remounts (with POSIX metadata).
    pub meta_cache: Option<Arc<MetaCache>>,
    /// `--write-back`: the bound of its queue in bytes (`None`: write-back is off, and
    /// `close` waits for S3).
    pub write_back: Option<u64>,
    /// Names kept local only (`--exclude`).
    pub exclude: exclude::Exclude,
    /// Listings kept across remounts for offline answers (write-back).
    pub listing_store: Option<Arc<crate::cache::listings::ListingStore>>,
}

/// Attributes of one inode, as the kernel gets them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: EntryKind,
    pub size: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    /// Links to it: 2 for a directory, 1 for a file, 0 once its name is gone.
    pub nlink: u32,
    /// The attributes are the object's own (or the mount's, without POSIX metadata).
    /// `false` for an entry known only from a listing, whose metadata was not read yet:
    /// the kernel must not keep them, since it enforces the permissions it is given.
    pub exact: bool,
}

/// One directory entry handed to the kernel, with the offset of the entry after it.
#[derive(Clone, Debug)]
pub struct ReaddirEntry {
    pub next_offset: u64,
    pub name: String,
    pub attr: Attr,
}

/// The mounted filesystem.
pub struct S3Filesystem<C: ObjectClient> {
    client: Arc<C>,
    /// What reads share: the block cache and the prefetch budget.
    reads: ReadContext<C>,
    config: FsConfig,
    /// The whole prefetch budget as `reads` counts it (whole pages), so `status` can tell
    /// how much of it is in use.
    prefetch_capacity: u64,
    mount_time: SystemTime,
    inodes: Mutex<InodeTable>,
    handles: Mutex<HandleTable>,
    listings: Mutex<ListingCache>,
    /// The writer of every inode some handle writes (see `write`).
    writers: Mutex<HashMap<u64, WriterSlot<C>>>,
    /// The marker of every directory whose `mkdir` waits in the write-back queue (see
    /// `markers`).
    markers: Mutex<markers::Markers<C>>,
    /// The background uploads of what the journal holds (failed closes, recovery).
    pending: Arc<Pending<C>>,
    /// HEADs of listed entries asked ahead (`ls -l`).
    heads: Arc<Heads<C>>,
    /// The files closed and not yet uploaded, with `--write-back`.
    write_back: Option<writeback::WriteBack>,
    /// How files kept off S3 (`--exclude`) are written.
    local_writer: Arc<crate::upload::WriterConfig>,
}

impl<C: ObjectClient> S3Filesystem<C> {
    pub fn new(client: Arc<C>, config: FsConfig) -> Self {
        let mount_time = SystemTime::now();
        let reads = ReadContext::new(
            Arc::clone(&client),
            Arc::new(BlockCache::new(config.cache_size)),
            config.max_prefetch_memory,
        )
        .with_disk(config.disk_cache.clone());
        let prefetch_capacity = reads.budget_available();
        let pending = Pending::new(
            Arc::clone(&client),
            Arc::clone(&config.writer),
            config.prefix.clone(),
        );
        S3Filesystem {
            pending,
            heads: Heads::new(Arc::clone(&client), config.metadata_ttl),
            client,
            reads,
            prefetch_capacity,
            inodes: Mutex::new(InodeTable::new(&config.prefix, mount_time)),
            handles: Mutex::new(HandleTable::default()),
            listings: Mutex::new(ListingCache::default()),
            writers: Mutex::new(HashMap::new()),
            markers: Mutex::new(markers::Markers::default()),
            write_back: config.write_back.map(writeback::WriteBack::new),
            local_writer: Arc::new(crate::upload::WriterConfig {
                local_only: true,
                ..(*config.writer).clone()
            }),
            config,
            mount_time,
        }
    }

    pub fn config(&self) -> &FsConfig {
        &self.config
    }

    /// Starts the background uploads on `runtime`: at once, what a mount of this bucket
    /// that died left in the journal (recovery), then every file whose close failed.
    pub fn start_background(&self, runtime: &tokio::runtime::Handle) {
        self.pending.start(runtime);
    }

    /// At unmount: one more try for every file the journal holds, for at most
    /// [`FINAL_PASS`]. Returns how many are still not in S3 (they stay journaled for the
    /// next mount; an upload cut by the deadline leaves its entry as it was).
    pub async fn finish_uploads(&self) -> usize {
        self.stop_write_back(WRITE_BACK_DRAIN).await;
        let left = match tokio::time::timeout(FINAL_PASS, self.pending.pass()).await {
            Ok(left) => left,
            Err(_) => self.pending.snapshot().0.len().max(1),
        };
        if let Some(cache) = &self.config.meta_cache {
            cache.save();
        }
        self.keep_listings();
        left
    }

    /// What a HEAD (or GET) said of an object's metadata, kept for listings to come.
    fn remember(&self, meta: &ObjectMeta) {
        if let (Some(cache), Some(metadata)) = (&self.config.meta_cache, &meta.metadata) {
            cache.put(&meta.key, &meta.etag, meta.last_modified, metadata);
        }
    }

    /// `key` is rewritten through this mount: what was kept of it is stale.
    fn rewritten(&self, key: &str) {
        self.heads.invalidate(key);
        if let Some(cache) = &self.config.meta_cache {
            cache.forget(key);
        }
    }

    // A poisoned lock means a panic elsewhere already broke an invariant; the tables are
    // plain maps that stay consistent between statements, so keep serving.
    fn inodes(&self) -> MutexGuard<'_, InodeTable> {
        self.inodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handles(&self) -> MutexGuard<'_, HandleTable> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn listings(&self) -> MutexGuard<'_, ListingCache> {
        self.listings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A child this mount just made (create, mkdir): in the table with one kernel
    /// reference, in the parent's fresh listing (which stays fresh), and the parent's
    /// times moved.
    fn add_child(&self, parent: u64, name: &str, facts: ChildFacts) -> Result<u64, FsError> {
        let ino = {
            let mut table = self.inodes();
            let ino = table
                .upsert_child(parent, name, facts.clone(), self.valid_until())
                .ok_or(FsError::UnknownInode(parent))?;
            table.remember(ino);
            table.touch_directory(parent);
            if facts.kind == EntryKind::Directory {
                table.count_subdir(parent, true);
            }
            ino
        };
        self.heads.forget_walk(parent);
        self.listings().add(
            parent,
            SnapshotEntry {
                ino,
                name: name.to_string(),
                facts,
            },
        );
        Ok(ino)
    }

    /// The names in directory `ino` changed through this mount: its cached listing goes,
    /// and its times are now (kept in memory: S3 has no directory to store them on).
    fn names_changed(&self, ino: u64) {
        self.listings().invalidate(ino);
        if let (Some(store), Some(inode)) = (&self.config.listing_store, self.inodes().get(ino)) {
            store.forget(&inode.key);
        }
        self.heads.forget_walk(ino);
        self.inodes().touch_directory(ino);
    }

    fn writers(&self) -> MutexGuard<'_, HashMap<u64, WriterSlot<C>>> {
        self.writers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn attr_of(&self, inode: &Inode) -> Attr {
        let posix = inode.posix.as_ref().filter(|_| self.config.posix_metadata);
        let default_perm = match inode.kind {
            EntryKind::Directory => self.config.dir_mode,
            EntryKind::File => self.config.file_mode,
            EntryKind::Symlink => 0o777,
        };
        // A file being written has the size its writer holds, uploaded or not, and the
        // time of its last write.
        let writer = match inode.kind {
            EntryKind::File => self.writer_of(inode.ino),
            EntryKind::Directory | EntryKind::Symlink => None,
        };
        let size = match inode.kind {
            EntryKind::File => writer.as_ref().map_or(inode.size, |w| w.size()),
            EntryKind::Directory => 0,
            EntryKind::Symlink => inode.size,
        };
        let written = writer.and_then(|w| w.modified_at());
        let mtime = written.map_or(inode.mtime, |t| t.max(inode.mtime));
        let ctime = written.map_or(inode.ctime, |t| t.max(inode.ctime));
        Attr {
            ino: inode.ino,
            kind: inode.kind,
            size,
            atime: posix.and_then(|p| p.atime).unwrap_or(mtime),
            mtime,
            ctime,
            perm: posix.and_then(Posix::perm).unwrap_or(default_perm),
            uid: posix.and_then(|p| p.uid).unwrap_or(self.config.uid),
            gid: posix.and_then(|p| p.gid).unwrap_or(self.config.gid),
            nlink: match inode.kind {
                _ if inode.unlinked => 0,
                EntryKind::Directory => inode.subdirs.unwrap_or(0).saturating_add(2),
                EntryKind::File | EntryKind::Symlink => 1,
            },
            exact: self.metadata_known(inode),
        }
    }

    /// True when `inode`'s attributes are its own: its metadata was read (or is not
    /// used), or it is the root (whose attributes are the mount's).
    fn metadata_known(&self, inode: &Inode) -> bool {
        !self.config.posix_metadata || inode.posix.is_some() || inode.ino == ROOT_INO
    }

    fn valid_until(&self) -> Instant {
        Instant::now() + self.config.metadata_ttl
    }

    fn inode(&self, ino: u64) -> Result<Inode, FsError> {
        self.inodes()
            .get(ino)
            .cloned()
            .ok_or(FsError::UnknownInode(ino))
    }

    /// [`S3Filesystem::lookup`] answered from the table, when it can be without S3: a
    /// child whose attributes are fresh and its own, or a name a fresh listing lacks.
    /// `None`: the lookup must ask S3. For the request loop (`ls -l` of a listed directory
    /// whose metadata was read: no hand-off to a task and back per entry).
    pub fn lookup_now(&self, parent: u64, name: &str) -> Option<Result<Attr, FsError>> {
        {
            let mut table = self.inodes();
            let parent_inode = table.get(parent)?;
            if parent_inode.kind != EntryKind::Directory || !dir::is_valid_name(name) {
                return None;
            }
            if parent_inode.key.len() + name.len() > dir::KEY_MAX {
                // Before any listing's word: no key can hold it (`lookup` says the same).
                return Some(Err(FsError::NameTooLong));
            }
            if let Some(child) = table.child(parent, name) {
                let fresh = child.valid_until > Instant::now() && self.metadata_known(child);
                // A file being written is what its writer says, whatever S3 holds; a
                // directory whose marker waits is what this mount made.
                if !fresh && !self.is_local(child.ino) {
                    return None;
                }
                let attr = self.attr_of(child);
                table.remember(attr.ino);
                return Some(Ok(attr));
            }
        }
        let (_, snapshot) = self.listings().get(parent)?;
        snapshot
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .is_err()
            .then_some(Err(FsError::NotFound))
    }

    /// `lookup`: the child `name` of directory `parent`. Counts one kernel reference.
    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Attr, FsError> {
        let parent_inode = self.inode(parent)?;
        if parent_inode.kind != EntryKind::Directory {
            return Err(FsError::NotADirectory);
        }
        if !dir::is_valid_name(name) {
            return Err(FsError::NotFound);
        }
        if parent_inode.key.len() + name.len() > dir::KEY_MAX {
            // No key can hold it: neither here nor creatable (what ext4 answers too).
            return Err(FsError::NameTooLong);
        }
        if let Some(done) = self.lookup_now(parent, name) {
            return done;
        }
        if self.offline() {
            return self.lookup_offline(parent, name);
        }
        // A fresh listing of the parent answers for S3: without the name, nothing is there
        // (negative lookups: shells, editors and `git` probe many names that do not
        // exist); with it, its kind is known and only its metadata is missing. A walk
        // through a listing that outlived its TTL goes on through it: the HEAD says
        // whether the entry still exists.
        let fresh = self.listings().get(parent).map(|(_, snapshot)| snapshot);
        let is_fresh = fresh.is_some();
        let listed = fresh
            .or_else(|| self.heads.walked_listing(parent))
            .map(|snapshot| {
                let found = snapshot.binary_search_by(|e| e.name.as_str().cmp(name));
                (found, snapshot)
            });
        let asked = async {
            Ok(match listed {
                Some((Err(_), _)) if is_fresh => return Err(FsError::NotFound),
                Some((Ok(position), snapshot)) if self.config.posix_metadata => {
                    self.walk_ahead(parent, &parent_inode.key, position, &snapshot);
                    let kind = snapshot[position].facts.kind;
                    match self.listed_facts(&parent_inode.key, name, kind).await? {
                        Some(facts) => facts,
                        None => self.stat_key(&parent_inode.key, name).await?,
                    }
                }
                _ => self.stat_key(&parent_inode.key, name).await?,
            })
        };
        let facts = match asked.await {
            Ok(facts) => facts,
            // S3 went away with this question: answered offline.
            Err(FsError::S3(_)) if self.offline() => return self.lookup_offline(parent, name),
            Err(e) => return Err(e),
        };
        let mut table = self.inodes();
        let ino = table
            .upsert_child(parent, name, facts, self.valid_until())
            .ok_or(FsError::UnknownInode(parent))?;
        table.remember(ino);
        let inode = table.get(ino).ok_or(FsError::UnknownInode(ino))?;
        Ok(self.attr_of(inode))
    }

    /// The facts of `prefix + name`, which a fresh listing showed as `kind`: its HEAD (of
    /// the marker, for a directory; asked ahead by a walk, or now). `None` when the object
    /// is gone since the listing.
    async fn listed_facts(
        &self,
        prefix: &str,
        name: &str,
        kind: EntryKind,
    ) -> Result<Option<ChildFacts>, FsError> {
        let key = match kind {
            EntryKind::Directory => format!("{prefix}{name}/"),
            EntryKind::File | EntryKind::Symlink => format!("{prefix}{name}"),
        };
        let head = self.heads.head(&key).await;
        if let Ok(meta) = &head {
            self.remember(meta);
        }
        match (kind, head) {
            (EntryKind::Directory, Ok(marker)) => Ok(Some(self.directory_facts(Some(&marker)))),
            (EntryKind::Directory, Err(S3Error::NoSuchKey { .. })) => {
                Ok(Some(self.directory_facts(None)))
            }
            (_, Ok(meta)) => Ok(Some(ChildFacts::file(&meta))),
            (_, Err(S3Error::NoSuchKey { .. })) => Ok(None),
            (_, Err(e)) => Err(e.into()),
        }
    }

    /// A directory's facts, from its marker's HEAD (`None`: it has no marker).
    fn directory_facts(&self, marker: Option<&ObjectMeta>) -> ChildFacts {
        let posix = marker
            .and_then(|m| m.metadata.as_ref())
            .map(Posix::from_metadata)
            .unwrap_or_default();
        ChildFacts::directory(self.mount_time, Some(posix))
    }

    /// A `stat` walking the listing of `dir` reached `position`: the HEADs of the entries
    /// after it whose metadata is not known are asked ahead ([`Heads::walk`]).
    fn walk_ahead(
        &self,
        dir: u64,
        prefix: &str,
        position: usize,
        snapshot: &Arc<Vec<SnapshotEntry>>,
    ) {
        self.heads.walk(dir, snapshot, position, |from, to| {
            let table = self.inodes();
            let end = to.min(snapshot.len());
            snapshot[from.min(end)..end]
                .iter()
                .filter(|e| table.get(e.ino).is_none_or(|i| i.posix.is_none()))
                .map(|e| match e.facts.kind {
                    EntryKind::Directory => format!("{prefix}{}/", e.name),
                    EntryKind::File | EntryKind::Symlink => format!("{prefix}{}", e.name),
                })
                .collect()
        });
    }

    /// What `prefix + name` is in S3: a directory when any key lives under `name/` (this
    /// includes a bare `name/` marker), else a file when the object `name` exists. Both
    /// questions are asked at once, so a lookup costs one round trip (two for a directory
    /// with a marker, whose metadata is read too).
    async fn stat_key(&self, prefix: &str, name: &str) -> Result<ChildFacts, FsError> {
        let key = format!("{prefix}{name}");
        if self.is_local_only(&key) {
            // A name kept off S3 (`--exclude`): S3 is never asked about it; what it holds
            // under such a name is seen through listings only.
            return Err(FsError::NotFound);
        }
        let list = ListObjectsParams {
            prefix: format!("{key}/"),
            delimiter: Some("/".into()),
            start_after: None,
            max_keys: Some(1),
        };
        let (head, listing) = tokio::join!(
            self.heads.head(&key),
            self.client.list_objects_page(&list, None)
        );
        let listing = listing?;
        if !listing.objects.is_empty() || !listing.common_prefixes.is_empty() {
            let marker = &list.prefix;
            let has_marker = listing.objects.first().is_some_and(|o| &o.key == marker);
            if !self.config.posix_metadata || !has_marker {
                return Ok(self.directory_facts(None));
            }
            return match self.client.head_object(marker).await {
                Ok(meta) => Ok(self.directory_facts(Some(&meta))),
                Err(S3Error::NoSuchKey { .. }) => Ok(self.directory_facts(None)),
                Err(e) => Err(e.into()),
            };
        }
        match head {
            Ok(meta) => {
                self.remember(&meta);
                Ok(ChildFacts::file(&meta))
            }
            Err(S3Error::NoSuchKey { .. }) => Err(FsError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// `forget`: the kernel dropped `n` references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes().forget(ino, n);
    }

    /// Attributes from the table while they are fresh (no network).
    pub fn getattr_cached(&self, ino: u64) -> Option<Attr> {
        let table = self.inodes();
        let inode = table.get(ino)?;
        let fresh = (inode.kind == EntryKind::Directory || inode.valid_until > Instant::now())
            && self.metadata_known(inode);
        (fresh || self.is_local(ino)).then(|| self.attr_of(inode))
    }

    /// `getattr`: fresh attributes, asking S3 (HEAD; of the marker, for a directory) when
    /// the cached ones expired or were never read.
    pub async fn getattr(&self, ino: u64) -> Result<Attr, FsError> {
        if let Some(attr) = self.getattr_cached(ino) {
            return Ok(attr);
        }
        let inode = self.inode(ino)?;
        if self.offline() {
            // What this mount saw last, rather than an error.
            return Ok(self.attr_of(&inode));
        }
        let head = self.heads.head(&inode.key).await;
        if let Ok(meta) = &head {
            self.remember(meta);
        }
        let facts = match (inode.kind, head) {
            (EntryKind::Directory, Ok(marker)) => self.directory_facts(Some(&marker)),
            (EntryKind::Directory, Err(S3Error::NoSuchKey { .. })) => self.directory_facts(None),
            (_, Ok(meta)) => ChildFacts::file(&meta),
            (_, Err(S3Error::NoSuchKey { .. })) => return Err(FsError::NotFound),
            (_, Err(e)) => return Err(e.into()),
        };
        let mut table = self.inodes();
        table.refresh(ino, facts, self.valid_until());
        let inode = table.get(ino).ok_or(FsError::UnknownInode(ino))?;
        Ok(self.attr_of(inode))
    }

    /// `open` of a file: pins its ETag (from fresh attributes or a HEAD). Returns the handle
    /// and whether the kernel may keep its cached pages (same version as last time).
    pub async fn open(&self, ino: u64, mode: OpenMode) -> Result<Opened, FsError> {
        if let Some(done) = self.open_now(ino, mode) {
            return done;
        }
        if mode.write {
            return self.open_for_write(ino, mode.truncate).await;
        }
        let inode = self.inode(ino)?;
        if inode.kind == EntryKind::Directory {
            return Err(FsError::IsADirectory);
        }
        if self.writer_of(ino).is_some() {
            // Being written through another handle: read its writes, cache nothing.
            let fh = self.handles().insert_file(FileHandle {
                ino,
                reader: tokio::sync::Mutex::new(Prefetcher::new(
                    inode.key.clone(),
                    String::new(),
                    0,
                )),
                writes: false,
            });
            return Ok(Opened {
                fh,
                cache: PageCache::Refresh,
            });
        }
        let fresh = inode.valid_until > Instant::now() || self.offline();
        let (etag, size) = match (&inode.etag, fresh) {
            (Some(etag), true) => (etag.clone(), inode.size),
            _ => {
                self.getattr(ino).await?;
                let fresh = self.inode(ino)?;
                let etag = fresh.etag.clone().ok_or(FsError::NotFound)?;
                (etag, fresh.size)
            }
        };
        Ok(self.open_pinned(ino, inode.key, etag, size))
    }

    /// [`S3Filesystem::open`] done at once when it needs neither S3 nor a wait: a file
    /// opened for reading whose attributes are fresh and that no handle writes. `None`
    /// otherwise. For the filesystem's request loop: the open of a file just listed (`ls`
    /// then `cat`) is answered without handing it to another thread and back.
    pub fn open_now(&self, ino: u64, mode: OpenMode) -> Option<Result<Opened, FsError>> {
        if mode.write || self.writer_of(ino).is_some() {
            return None;
        }
        let inode = match self.inode(ino) {
            Ok(inode) => inode,
            Err(e) => return Some(Err(e)),
        };
        if inode.kind == EntryKind::Directory {
            return Some(Err(FsError::IsADirectory));
        }
        let etag = inode
            .etag
            .clone()
            .filter(|_| inode.valid_until > Instant::now())?;
        let size = inode.size;
        Some(Ok(self.open_pinned(ino, inode.key, etag, size)))
    }

    /// A reading handle on `ino` pinned to version `etag` of `key`.
    fn open_pinned(&self, ino: u64, key: String, etag: String, size: u64) -> Opened {
        let keep_cache = self.inodes().note_open(ino, &etag);
        let handle = FileHandle {
            ino,
            reader: tokio::sync::Mutex::new(Prefetcher::new(key, etag, size)),
            writes: false,
        };
        Opened {
            fh: self.handles().insert_file(handle),
            cache: if keep_cache {
                PageCache::Keep
            } else {
                PageCache::Refresh
            },
        }
    }

    /// `read`: up to `size` bytes at `offset` through the handle's pinned version, as
    /// slices of the fetched bodies (see [`Chunks`]).
    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Chunks, FsError> {
        let handle = self.handles().file(fh).ok_or(FsError::BadHandle(fh))?;
        if let Some(writer) = self.writer_of(handle.ino) {
            return writer
                .read(offset, size)
                .await
                .map(Chunks::from)
                .map_err(FsError::Upload);
        }
        let mut reader = handle.reader.lock().await;
        if reader.etag().is_empty() {
            // Opened while another handle was writing, which has since closed: pin the
            // version that upload left behind.
            self.getattr(handle.ino).await?;
            let inode = self.inode(handle.ino)?;
            let etag = inode.etag.clone().ok_or(FsError::NotFound)?;
            *reader = Prefetcher::new(inode.key.clone(), etag, inode.size);
        }
        Ok(reader.read(&self.reads, offset, size).await?)
    }

    /// `release`: the file is closed; the last writing handle uploads what is left.
    pub async fn release(&self, fh: u64) {
        if self.release_now(fh) {
            return;
        }
        let Some(handle) = self.handles().remove_file(fh) else {
            return;
        };
        if handle.writes {
            self.release_writer(handle.ino).await;
        }
    }

    /// [`S3Filesystem::release`] done at once when the handle only reads (or is gone): true
    /// then. False for a writing handle, whose release may upload.
    pub fn release_now(&self, fh: u64) -> bool {
        let closed = {
            let mut handles = self.handles();
            if handles.file(fh).is_some_and(|h| h.writes) {
                return false;
            }
            handles.remove_file(fh)
        };
        // Its reads ahead are cancelled outside the table's lock.
        drop(closed);
        true
    }

    /// The inode a handle is open on.
    pub fn handle_inode(&self, fh: u64) -> Option<u64> {
        self.handles().file(fh).map(|h| h.ino)
    }

    /// `opendir`.
    pub fn opendir(&self, ino: u64) -> Result<u64, FsError> {
        let inode = self.inode(ino)?;
        if inode.kind != EntryKind::Directory {
            return Err(FsError::NotADirectory);
        }
        Ok(self.handles().insert_dir(DirHandle {
            ino,
            snapshot: tokio::sync::Mutex::new(None),
        }))
    }

    /// `releasedir`.
    pub fn releasedir(&self, fh: u64) {
        self.handles().remove_dir(fh);
    }

    /// `readdir`/`readdirplus`: offers entries from `offset` on to `accept`, which returns
    /// `false` once the kernel's buffer is full. Entries `accept` took are counted as kernel
    /// references when `plus` (readdirplus hands out entries like lookups do). Offsets: 1 is
    /// `.`, 2 is `..`, then the snapshot in order.
    pub async fn readdir(
        &self,
        fh: u64,
        offset: u64,
        plus: bool,
        mut accept: impl FnMut(&ReaddirEntry) -> bool + Send,
    ) -> Result<(), FsError> {
        let handle = self.handles().dir(fh).ok_or(FsError::BadHandle(fh))?;
        let (snapshot, entries_until) = 'listed: {
            let mut slot = handle.snapshot.lock().await;
            let cached = self.listings().get(handle.ino);
            match (&*slot, offset, cached) {
                (Some(s), o, _) if o > 0 => (Arc::clone(s), self.valid_until()),
                (_, _, Some((until, s))) => {
                    *slot = Some(Arc::clone(&s));
                    (s, until)
                }
                _ if self.offline() && self.stale_listing(handle.ino).is_some() => {
                    // Offline: the last listing this mount saw, with its own changes (or
                    // one an earlier mount kept).
                    let stale = self.stale_listing(handle.ino).unwrap_or_default();
                    *slot = Some(Arc::clone(&stale));
                    (stale, Instant::now())
                }
                _ => {
                    let listed = match self.list_directory(handle.ino).await {
                        // S3 went away with this listing: offline from here.
                        Err(e) if self.offline() => match self.stale_listing(handle.ino) {
                            Some(stale) => {
                                *slot = Some(Arc::clone(&stale));
                                break 'listed (stale, Instant::now());
                            }
                            None => Err(e),
                        },
                        listed => listed,
                    };
                    let fresh = Arc::new(listed?);
                    let until = self.valid_until();
                    // Listed: it exists. A listing longer than the TTL must not make the
                    // next `stat` of the directory ask S3 again.
                    let subdirs = fresh
                        .iter()
                        .filter(|e| e.facts.kind == EntryKind::Directory)
                        .count();
                    {
                        let mut table = self.inodes();
                        table.confirm_directory(handle.ino, until);
                        table.set_subdirs(handle.ino, subdirs);
                    }
                    self.listings()
                        .insert(handle.ino, until, Arc::clone(&fresh));
                    self.heads.forget_walk(handle.ino);
                    *slot = Some(Arc::clone(&fresh));
                    (fresh, until)
                }
            }
        };
        let dir_inode = self.inode(handle.ino)?;
        let dot = self.attr_of(&dir_inode);
        let dotdot = {
            let table = self.inodes();
            match table.get(dir_inode.parent) {
                Some(p) => self.attr_of(p),
                None => dot.clone(),
            }
        };
        let mut table = self.inodes();
        let total = snapshot.len() as u64 + 2;
        for position in offset..total {
            let entry = match position {
                0 => ReaddirEntry {
                    next_offset: 1,
                    name: ".".into(),
                    attr: dot.clone(),
                },
                1 => ReaddirEntry {
                    next_offset: 2,
                    name: "..".into(),
                    attr: dotdot.clone(),
                },
                n => {
                    let item = &snapshot[(n - 2) as usize];
                    // The inode may have been dropped since the snapshot (forgotten, or
                    // pruned by another listing of this directory): re-create it from the
                    // snapshot's facts rather than skip the entry.
                    let ino = match table.get(item.ino) {
                        Some(_) => Some(item.ino),
                        None => table.upsert_child(
                            handle.ino,
                            &item.name,
                            item.facts.clone(),
                            entries_until,
                        ),
                    };
                    let Some(attr) = ino.and_then(|i| table.get(i)).map(|i| self.attr_of(i)) else {
                        continue;
                    };
                    ReaddirEntry {
                        next_offset: n + 1,
                        name: item.name.clone(),
                        attr,
                    }
                }
            };
            if !accept(&entry) {
                break;
            }
            if plus && position >= 2 {
                table.remember(entry.attr.ino);
            }
        }
        Ok(())
    }

    /// Lists the directory `ino` (every page) and records every child in the inode table.
    async fn list_directory(&self, ino: u64) -> Result<Vec<SnapshotEntry>, FsError> {
        let inode = self.inode(ino)?;
        let listing = crate::s3::listing::list_all(
            &*self.client,
            &ListObjectsParams {
                prefix: inode.key.clone(),
                delimiter: Some("/".into()),
                start_after: None,
                max_keys: None,
            },
        )
        .await?;
        let mut entries = dir::entries_from_listing(&inode.key, listing);
        // Files being written and directories whose marker waits, which S3 does not hold
        // yet, show as they are now.
        let pending: Vec<(String, EntryKind)> = {
            let table = self.inodes();
            let writers = self.writers();
            let markers = self.markers();
            let files = writers
                .iter()
                .filter(|(_, slot)| !slot.writer.is_unlinked())
                .map(|(ino, _)| (*ino, EntryKind::File));
            let dirs = markers.waiting().map(|ino| (ino, EntryKind::Directory));
            files
                .chain(dirs)
                .filter_map(|(child, kind)| table.get(child).map(|i| (i, kind)))
                .filter(|(i, _)| i.parent == ino && !i.unlinked)
                .map(|(i, kind)| (i.name.clone(), kind))
                .collect()
        };
        for (name, kind) in pending {
            if !entries.iter().any(|e| e.name == name) {
                entries.push(ListedEntry {
                    name,
                    kind,
                    object: None,
                });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let until = self.valid_until();
        let mut table = self.inodes();
        table.prune_unreferenced_children(ino);
        let mut snapshot = Vec::with_capacity(entries.len());
        for ListedEntry { name, kind, object } in entries {
            let facts = match object {
                Some(meta) if kind == EntryKind::File => {
                    let mut facts = self.listed_file(&meta);
                    // A listing cannot tell a symlink from a file; the table, having read
                    // this version's metadata, can.
                    if let Some(known) = table.child(ino, &name) {
                        if known.kind == EntryKind::Symlink && known.etag == facts.etag {
                            facts.kind = EntryKind::Symlink;
                        }
                    }
                    facts
                }
                None => match table.child(ino, &name) {
                    // A file being written keeps what the table knows of it.
                    Some(existing) if kind == EntryKind::File => ChildFacts {
                        kind,
                        size: existing.size,
                        mtime: existing.mtime,
                        time_source: existing.time_source,
                        etag: existing.etag.clone(),
                        posix: existing.posix.clone(),
                        last_modified: existing.last_modified,
                    },
                    _ => ChildFacts::directory(self.mount_time, None),
                },
                Some(_) => ChildFacts::directory(self.mount_time, None),
            };
            if let Some(child) = table.upsert_child(ino, &name, facts.clone(), until) {
                // The table may keep a time the listing cannot show (metadata, utimes).
                let mtime = table.get(child).map_or(facts.mtime, |i| i.mtime);
                snapshot.push(SnapshotEntry {
                    ino: child,
                    name,
                    facts: ChildFacts { mtime, ..facts },
                });
            }
        }
        Ok(snapshot)
    }

    /// The longest name a new entry of directory `ino` may have (`statfs`'s name length,
    /// which `pathconf(_PC_NAME_MAX)` reads per directory): FUSE's limit, less what the
    /// directory's key prefix takes of S3's 1,024-byte keys (and a directory's `/`).
    pub fn name_max(&self, ino: u64) -> u32 {
        let prefix = self.inodes().get(ino).map_or(0, |i| i.key.len());
        dir::NAME_MAX.min(dir::KEY_MAX.saturating_sub(prefix + 1)) as u32
    }

    /// A file as a listing shows it, with the attributes kept for this version of it
    /// (`meta_cache`), when there are.
    fn listed_file(&self, listed: &ObjectMeta) -> ChildFacts {
        let kept = self
            .config
            .meta_cache
            .as_ref()
            .and_then(|c| c.get(&listed.key, &listed.etag, listed.last_modified));
        match kept {
            Some(metadata) => ChildFacts::file(&ObjectMeta {
                metadata: Some(metadata),
                ..listed.clone()
            }),
            None => ChildFacts::file(listed),
        }
    }

    /// Root inode number, for the adapter.
    pub fn root(&self) -> u64 {
        ROOT_INO
    }
}
