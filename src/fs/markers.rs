//! Write-back's directory markers: with `--write-back`, `mkdir` does not wait for S3. The
//! new directory's marker `dir/` (zero bytes, its mode, owner and times as metadata,
//! Content-Type `application/x-directory`) is made durable locally and queued, as `close`
//! does for a file, and goes up from the write-back queue in the background.
//!
//! A queued marker is what it is: an [`OpenWriter`] of the zero-byte object `dir/`, new
//! (`Origin::New`), persisted through the journal like a closed file, so a crash of the
//! daemon keeps it and the next mount's recovery (`upload::pending`) uploads it. It lives
//! in a table of its own, by the directory's inode, not in the writers' table: everything
//! that finds a writer there takes the inode for a file being written (its size, its reads
//! and opens, the names a listing adds, the open files a rename carries). The inode is
//! pinned while its marker waits, so the kernel forgetting it cannot part a later `chmod`
//! from the marker it must change.
//!
//! While the marker waits, the directory is what this mount says it is (S3 has nothing of
//! it, or only the files already uploaded into it):
//!
//! - `chmod`, `chown`, `utimes` and xattrs change the queued marker (its journal record
//!   too), no S3 call. After its upload, for a while ([`MADE_TRUSTED`]), the mount still
//!   knows every header the marker carries (it sent them): a change then queues a new
//!   marker with them, based on the uploaded version, rather than HEAD and copy the marker
//!   at once. That is what `tar x` does: it sets each directory's owner, mode and times
//!   when the whole tree is out, long after the `mkdir`. A marker this mount did not make
//!   (or made longer ago) is changed at once, by HEAD and copy: only the HEAD can say
//!   which other headers it carries, and the copy must keep them;
//! - `rmdir` removes it locally and drops the marker, which never reaches S3;
//! - `rename` of it (or of a directory above it) uploads the queued markers first (and
//!   `namespace` the files queued in it), then moves the directory in S3 like any other:
//!   a directory's rename is a copy of every key under it, which must find them there.
//!
//! Lock order: the inode table before this table, as for the writers' table; never the
//! other way round.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use super::inode::Inode;
use super::posix::Posix;
use super::writeback::{classify, Outcome, NEW_DIR_TTL};
use super::{FsError, S3Filesystem};
use crate::s3::{Metadata, ObjectClient};
use crate::upload::{OpenWriter, Origin, Queued};

/// How long after its upload a marker this mount made is taken to carry exactly what this
/// mount sent (when the metadata TTL is shorter): as long as a new directory is taken to
/// hold only what this mount put in it (`mkdir`), no other client knowing its name yet.
pub const MADE_TRUSTED: Duration = NEW_DIR_TTL;

/// Markers made lately kept before the expired ones are dropped.
const MADE_KEPT: usize = 4096;

/// The markers of a mount's write-back directories.
pub(super) struct Markers<C: ObjectClient> {
    /// Waiting for their upload, by directory inode.
    queued: HashMap<u64, Arc<OpenWriter<C>>>,
    /// Uploaded lately, by directory inode (see [`MADE_TRUSTED`]).
    made: HashMap<u64, MadeMarker>,
}

impl<C: ObjectClient> Default for Markers<C> {
    fn default() -> Self {
        Markers {
            queued: HashMap::new(),
            made: HashMap::new(),
        }
    }
}

impl<C: ObjectClient> Markers<C> {
    /// The directories whose marker waits (and was not dropped).
    pub(super) fn waiting(&self) -> impl Iterator<Item = u64> + '_ {
        self.queued
            .iter()
            .filter(|(_, marker)| !marker.is_unlinked())
            .map(|(ino, _)| *ino)
    }
}

/// A marker this mount uploaded: every header it carries, since this mount sent them.
#[derive(Clone, Debug)]
pub(super) struct MadeMarker {
    /// Its key then: a rename moves the marker by a copy, whose ETag may differ.
    key: String,
    etag: String,
    metadata: Metadata,
    until: Instant,
}

impl<C: ObjectClient> S3Filesystem<C> {
    pub(super) fn markers(&self) -> MutexGuard<'_, Markers<C>> {
        // A plain map consistent between statements: a panic elsewhere leaves it usable.
        self.markers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The queued marker of directory `ino`, while it waits for its upload.
    pub(super) fn marker_of(&self, ino: u64) -> Option<Arc<OpenWriter<C>>> {
        self.markers().queued.get(&ino).map(Arc::clone)
    }

    /// True when `ino` is more than S3 knows: a file being written or waiting for its
    /// upload, or a directory whose marker waits. Its attributes are this mount's.
    pub(super) fn is_local(&self, ino: u64) -> bool {
        self.writer_of(ino).is_some() || self.markers().queued.contains_key(&ino)
    }

    /// True when a file being written (or queued) or a queued marker lives below the
    /// directory prefix `prefix`: the directory is not empty, whatever S3 lists.
    pub(super) fn holds_local_entries(&self, prefix: &str) -> bool {
        let below = |key: &str| key.len() > prefix.len() && key.starts_with(prefix);
        let writing = self
            .writers()
            .values()
            .any(|s| !s.writer.is_unlinked() && below(&s.writer.key()));
        writing
            || self
                .markers()
                .queued
                .values()
                .any(|m| !m.is_unlinked() && below(&m.key()))
    }

    /// The marker `key` with `metadata`, durable on the local disk under a complete
    /// journal record (nothing asked of S3), replacing version `replaces` of it (`None`: a
    /// new directory). Fails only when the local disk does.
    pub(super) async fn persist_marker(
        &self,
        key: &str,
        metadata: Metadata,
        replaces: Option<String>,
    ) -> Result<Arc<OpenWriter<C>>, FsError> {
        let marker = Arc::new(OpenWriter::new(
            Arc::clone(&self.client),
            key.to_string(),
            Origin::New,
            metadata,
            Arc::clone(&self.config.writer),
        ));
        // Recorded as the version it replaces: a recovery after a crash then puts it over
        // that version (and only that one).
        marker.set_replaces(replaces);
        marker.persist().await.map_err(|e| {
            log::error!("{e}");
            FsError::Upload(e)
        })?;
        Ok(marker)
    }

    /// Directory `ino`'s persisted marker waits in the write-back queue from now on.
    pub(super) fn queue_marker(&self, ino: u64, marker: Arc<OpenWriter<C>>) {
        let Some(queue) = &self.write_back else {
            return;
        };
        // Pinned before the table holds it (lock order: inodes, then markers).
        self.inodes().pin(ino);
        let key = marker.key();
        // Bound first: the table's lock goes before the inode table's is taken.
        let replaced = self.markers().queued.insert(ino, marker);
        if let Some(old) = replaced {
            // Not expected: `mkdir` makes a new inode, and a change queues a marker only
            // when none waits (the kernel holds the directory's lock through a setattr).
            // The older one's journal entry goes up from the background pass.
            log::debug!("{:?}: a second queued marker replaced the first", old.key());
            self.inodes().unpin(ino);
        }
        queue.enqueue(ino, key, 0);
    }

    /// The queued marker is done with (uploaded, or its directory removed): out of the
    /// table, its inode unpinned. Only if it is still `marker`.
    fn retire_marker(&self, ino: u64, marker: &Arc<OpenWriter<C>>) {
        let gone = {
            let mut markers = self.markers();
            let same = markers
                .queued
                .get(&ino)
                .is_some_and(|m| Arc::ptr_eq(m, marker));
            if same {
                markers.queued.remove(&ino);
            }
            same
        };
        if gone {
            self.inodes().unpin(ino);
        }
    }

    /// The write-back queue's upload of directory `ino`'s marker. A marker already at the
    /// key (another client made the same directory) is replaced by this one: a marker
    /// holds no data to keep beside it, only the attributes this mount set last.
    pub(super) async fn upload_marker(&self, ino: u64, marker: Arc<OpenWriter<C>>) -> Outcome {
        match marker.upload_queued(|key| key.to_string()).await {
            Ok(Queued::Renamed) => {
                return Outcome::Failed {
                    why: "renamed during the upload's check".into(),
                    cannot: false,
                }
            }
            Ok(Queued::Nothing) => {}
            Ok(Queued::Uploaded(meta) | Queued::Conflict(meta)) => {
                self.made_marker(ino, &marker, meta.etag)
            }
            Err(e) => {
                let failed = classify(&e);
                if let Outcome::Failed { why, .. } = &failed {
                    log::debug!(
                        "{:?}: marker upload failed, will retry: {why}",
                        marker.key()
                    );
                }
                return failed;
            }
        }
        self.rewritten(&marker.key());
        self.retire_marker(ino, &marker);
        Outcome::Done
    }

    /// The marker of directory `ino` went up as `etag`: what it carries is known for a
    /// while (see [`MADE_TRUSTED`]).
    fn made_marker(&self, ino: u64, marker: &OpenWriter<C>, etag: String) {
        let now = Instant::now();
        let made = MadeMarker {
            key: marker.key(),
            etag,
            metadata: marker.metadata_as_set(),
            until: now + self.config.metadata_ttl.max(MADE_TRUSTED),
        };
        let mut markers = self.markers();
        if markers.made.len() >= MADE_KEPT {
            markers.made.retain(|_, m| m.until > now);
        }
        markers.made.insert(ino, made);
    }

    /// Directory `ino` (`inode`) is removed or changed some other way: what was known of
    /// its marker is no more.
    pub(super) fn forget_made_marker(&self, ino: u64) {
        self.markers().made.remove(&ino);
    }

    /// What this mount knows of directory `inode`'s marker, which it uploaded lately (see
    /// [`MADE_TRUSTED`]), taken for a change of its attributes (`None` for any other
    /// directory). Taken out: the marker queued with the change supersedes it.
    pub(super) fn take_made_marker(&self, inode: &Inode) -> Option<MadeMarker> {
        let mut markers = self.markers();
        let fresh = markers
            .made
            .get(&inode.ino)
            .is_some_and(|m| m.key == inode.key && m.until > Instant::now());
        match fresh {
            true => markers.made.remove(&inode.ino),
            false => None,
        }
    }

    /// A change of the attributes of directory `inode`, whose marker this mount uploaded
    /// lately (`made`): a new marker carrying every header of the uploaded one with the
    /// change made is queued, as `mkdir` queues one, and S3 is not asked.
    pub(super) async fn requeue_marker(
        &self,
        inode: &Inode,
        made: MadeMarker,
        change: impl FnOnce(&mut Posix) -> Result<(), FsError>,
    ) -> Result<(), FsError> {
        let mut metadata = made.metadata;
        let posix = self.changed(inode, &metadata, change)?;
        posix.store(&mut metadata);
        super::attrs::check_size(&metadata)?;
        let marker = self
            .persist_marker(&inode.key, metadata, Some(made.etag))
            .await?;
        self.queue_marker(inode.ino, marker);
        self.inodes().set_posix(inode.ino, posix);
        Ok(())
    }

    /// `rmdir` of directory `ino`, whose marker waits: the marker is dropped (its journal
    /// record with it) and never reaches S3. Returns `false` when it reached S3 meanwhile
    /// (an upload under way ended first): then S3's marker must be deleted too.
    pub(super) async fn drop_marker(
        &self,
        ino: u64,
        marker: &Arc<OpenWriter<C>>,
    ) -> Result<bool, FsError> {
        // Waits for an upload under way; from here nothing of it goes up.
        marker.unlink().await?;
        self.retire_marker(ino, marker);
        if let Some(queue) = &self.write_back {
            queue.forget(ino);
        }
        Ok(marker.replaces().is_none())
    }

    /// Uploads now every queued marker at or below the directory prefix `prefix` (a
    /// rename of the directory copies what S3 holds under it, which must include them).
    /// Fails, keeping them queued, when S3 does not take them.
    pub(super) async fn upload_markers_under(&self, prefix: &str) -> Result<(), FsError> {
        let mut under: Vec<(u64, Arc<OpenWriter<C>>)> = self
            .markers()
            .queued
            .iter()
            .filter(|(_, m)| !m.is_unlinked() && m.key().starts_with(prefix))
            .map(|(ino, m)| (*ino, Arc::clone(m)))
            .collect();
        // Parents before children, as `mkdir -p` made them.
        under.sort_by_key(|(_, m)| m.key());
        for (ino, marker) in under {
            marker.flush().await.map_err(|e| {
                log::error!("{e}");
                FsError::Upload(e)
            })?;
            self.rewritten(&marker.key());
            self.retire_marker(ino, &marker);
            if let Some(queue) = &self.write_back {
                queue.forget(ino);
            }
        }
        Ok(())
    }

    /// At unmount: the queued markers leave the table and stay in the journal, complete,
    /// for the last background pass and the next mount.
    pub(super) async fn abandon_markers(&self) {
        let all: Vec<(u64, Arc<OpenWriter<C>>)> = self.markers().queued.drain().collect();
        for (ino, marker) in all {
            self.inodes().unpin(ino);
            marker.abandon().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::attrs::{Creator, SetAttr, DIRECTORY_CONTENT_TYPE};
    use super::super::dir::EntryKind;
    use super::super::writeback::Outcome;
    use super::super::{FsConfig, FsError, S3Filesystem};
    use crate::s3::memory::MemoryClient;
    use crate::upload::WriterConfig;
    use std::sync::Arc;
    use std::time::Duration;

    const ROOT: u64 = 1;
    const USER: Creator = Creator {
        uid: 1000,
        gid: 1000,
        mode: 0o755,
    };

    /// A write-back mount of an empty bucket whose metadata TTL is `ttl`.
    fn write_back_fs(ttl: Duration) -> (Arc<MemoryClient>, S3Filesystem<MemoryClient>) {
        let client = Arc::new(MemoryClient::new());
        let writer = WriterConfig {
            write_back: true,
            ..crate::upload::test_config()
        };
        let config = FsConfig {
            prefix: String::new(),
            uid: 0,
            gid: 0,
            file_mode: 0o644,
            dir_mode: 0o755,
            metadata_ttl: ttl,
            read_only: false,
            writer: Arc::new(writer),
            cache_size: 64 << 20,
            max_prefetch_memory: 64 << 20,
            disk_cache: None,
            disk_cache_size: 0,
            posix_metadata: true,
            content_type_default: "application/octet-stream".into(),
            meta_cache: None,
            write_back: Some(1 << 30),
            exclude: Default::default(),
            listing_store: None,
        };
        (Arc::clone(&client), S3Filesystem::new(client, config))
    }

    fn queued_keys(fs: &S3Filesystem<MemoryClient>) -> Vec<String> {
        let queue = fs
            .write_back
            .as_ref()
            .map(|q| q.status())
            .unwrap_or_default();
        queue.files.into_iter().map(|f| f.key).collect()
    }

    fn chmod(mode: u32) -> SetAttr {
        SetAttr {
            mode: Some(mode),
            ..SetAttr::default()
        }
    }

    /// mkdir and chmod of the new directory put nothing in S3: the marker waits in the
    /// queue with the chmod in it, and its upload carries both (s3fs's decimal mode,
    /// the directory Content-Type).
    #[tokio::test]
    async fn mkdir_queues_the_marker_and_chmod_changes_it() {
        let (client, fs) = write_back_fs(Duration::from_secs(1));
        let d = fs.mkdir(ROOT, "d", USER).await.unwrap();
        // The root was never listed: S3 was asked whether `d` exists, nothing more.
        let asked = client.counters();
        assert_eq!((asked.put_object, asked.copy_object), (0, 0));
        let e = fs.mkdir(d.ino, "e", USER).await.unwrap();
        let e = fs.setattr(e.ino, chmod(0o700)).await.unwrap();
        assert_eq!((e.kind, e.perm), (EntryKind::Directory, 0o700));
        assert_eq!(
            client.counters(),
            asked,
            "a new directory's names need no S3"
        );
        assert!(client.keys().is_empty());
        assert_eq!(queued_keys(&fs), ["d/", "d/e/"]);
        for ino in [d.ino, e.ino] {
            assert!(matches!(fs.upload_queued(ino).await, Outcome::Done));
        }
        assert_eq!(client.keys(), ["d/", "d/e/"]);
        let stored = client.metadata("d/e/").unwrap();
        assert_eq!(stored.user["mode"], (libc::S_IFDIR | 0o700).to_string());
        assert_eq!(stored.user["uid"], "1000");
        assert_eq!(stored.content_type.as_deref(), Some(DIRECTORY_CONTENT_TYPE));
        assert!(
            fs.marker_of(e.ino).is_none(),
            "uploaded: the table lets it go"
        );
    }

    /// A directory whose marker waits stays a directory with its own attributes after
    /// the TTL: lookups, getattr and the parent's listing answer without S3's word.
    #[tokio::test]
    async fn a_queued_directory_stays_what_this_mount_made() {
        let (_, fs) = write_back_fs(Duration::from_millis(1));
        let d = fs.mkdir(ROOT, "d", USER).await.unwrap();
        fs.setattr(d.ino, chmod(0o711)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let found = fs.lookup(ROOT, "d").await.unwrap();
        assert_eq!(
            (found.ino, found.kind, found.perm),
            (d.ino, EntryKind::Directory, 0o711)
        );
        assert_eq!(fs.getattr(d.ino).await.unwrap().perm, 0o711);
        let fh = fs.opendir(ROOT).unwrap();
        let mut listed = Vec::new();
        fs.readdir(fh, 0, false, |e| {
            listed.push((e.name.clone(), e.attr.kind));
            true
        })
        .await
        .unwrap();
        assert!(
            listed.contains(&("d".to_string(), EntryKind::Directory)),
            "{listed:?}"
        );
        assert!(matches!(
            fs.mkdir(ROOT, "d", USER).await,
            Err(FsError::Exists)
        ));
    }

    /// rmdir of a directory S3 never held sends nothing, drops the marker from the queue
    /// and the journal; a queued child makes it ENOTEMPTY first.
    #[tokio::test]
    async fn rmdir_of_a_queued_directory_leaves_nothing() {
        let (client, fs) = write_back_fs(Duration::from_secs(1));
        let d = fs.mkdir(ROOT, "d", USER).await.unwrap();
        fs.mkdir(d.ino, "e", USER).await.unwrap();
        assert!(matches!(fs.rmdir(ROOT, "d").await, Err(FsError::NotEmpty)));
        fs.rmdir(d.ino, "e").await.unwrap();
        fs.rmdir(ROOT, "d").await.unwrap();
        assert!(queued_keys(&fs).is_empty());
        assert!(
            fs.config.writer.journal.scan().is_empty(),
            "no journal entry left"
        );
        assert!(client.keys().is_empty());
        let counters = client.counters();
        assert_eq!((counters.put_object, counters.delete_object), (0, 0));
        assert!(matches!(fs.lookup(ROOT, "d").await, Err(FsError::NotFound)));
    }

    /// A marker still queued when the mount ends is left in the journal, complete, and the
    /// journal's background uploads (this mount's last pass, the next mount's recovery)
    /// put it in S3 with its metadata. (`kill -9`: `queued_directories_survive_kill_and_
    /// remount` in `tests/writeback.rs`; a crash cannot be played inside one process,
    /// whose journal holds its own entries.)
    #[tokio::test]
    async fn a_queued_marker_left_at_unmount_goes_up_from_the_journal() {
        let (client, fs) = write_back_fs(Duration::from_secs(1));
        let d = fs.mkdir(ROOT, "d", USER).await.unwrap();
        fs.setattr(d.ino, chmod(0o750)).await.unwrap();
        fs.stop_write_back(Duration::ZERO).await;
        assert!(client.keys().is_empty());
        assert!(fs.marker_of(d.ino).is_none(), "left to the journal");
        assert_eq!(fs.pending.pass().await, 0);
        assert_eq!(client.keys(), ["d/"]);
        let stored = client.metadata("d/").unwrap();
        assert_eq!(stored.user["mode"], (libc::S_IFDIR | 0o750).to_string());
        assert_eq!(stored.content_type.as_deref(), Some(DIRECTORY_CONTENT_TYPE));
    }

    /// A rename of a directory whose marker waits uploads the marker first, and the
    /// files queued in it, then moves it like any directory.
    #[tokio::test]
    async fn rename_of_a_queued_directory_uploads_its_marker_first() {
        let (client, fs) = write_back_fs(Duration::from_secs(1));
        let d = fs.mkdir(ROOT, "d", USER).await.unwrap();
        fs.mkdir(d.ino, "sub", USER).await.unwrap();
        let (f, opened) = fs.create(d.ino, "f", false, false, USER).await.unwrap();
        fs.write(opened.fh, 0, bytes::Bytes::from_static(b"hello"))
            .await
            .unwrap();
        fs.flush(f.ino).await.unwrap();
        fs.release(opened.fh).await;
        assert!(client.keys().is_empty(), "all queued");
        fs.rename(ROOT, "d", ROOT, "moved", false).await.unwrap();
        assert_eq!(client.keys(), ["moved/", "moved/f", "moved/sub/"]);
        assert_eq!(client.get("moved/f").unwrap().as_ref(), b"hello");
        // The file's entry waits for a worker to find it uploaded, under its new name.
        assert_eq!(queued_keys(&fs), ["moved/f"]);
        let moved = fs.lookup(ROOT, "moved").await.unwrap();
        assert_eq!((moved.ino, moved.kind), (d.ino, EntryKind::Directory));
    }

    /// After its marker went up, a change of the directory's attributes (what `tar x`
    /// does once the tree is out) queues a new marker with every header of the uploaded
    /// one: no HEAD, no copy. A directory this mount did not make is changed at once.
    #[tokio::test]
    async fn a_change_after_the_upload_queues_the_marker_again() {
        let (client, fs) = write_back_fs(Duration::from_secs(1));
        let d = fs.mkdir(ROOT, "d", USER).await.unwrap();
        assert!(matches!(fs.upload_queued(d.ino).await, Outcome::Done));
        let uploaded = client.counters();
        fs.setattr(d.ino, chmod(0o700)).await.unwrap();
        assert_eq!(client.counters(), uploaded, "nothing asked of S3");
        assert_eq!(queued_keys(&fs), ["d/"]);
        assert!(matches!(fs.upload_queued(d.ino).await, Outcome::Done));
        let stored = client.metadata("d/").unwrap();
        assert_eq!(stored.user["mode"], (libc::S_IFDIR | 0o700).to_string());
        assert_eq!(stored.content_type.as_deref(), Some(DIRECTORY_CONTENT_TYPE));

        client.insert("theirs/", Vec::new());
        let theirs = fs.lookup(ROOT, "theirs").await.unwrap();
        fs.setattr(theirs.ino, chmod(0o700)).await.unwrap();
        assert_eq!(client.counters().copy_object, 1, "HEAD and copy, as before");
        assert!(!queued_keys(&fs).contains(&"theirs/".to_string()));
    }
}
