//! Changing the namespace: `mkdir`, `rmdir`, `unlink`, `rename` — each turned into the S3
//! calls that do it (DESIGN "S3 ↔ POSIX semantics").
//!
//! - `mkdir` writes the zero-byte marker `dir/` (with write-back: makes it durable
//!   locally and queues it, see `markers`).
//! - `rmdir` fails with `ENOTEMPTY` while any key remains under the directory (or a file
//!   or marker of this mount waits to go there), then removes its marker (a directory that
//!   only existed through its keys is gone with them; one whose marker only waits in the
//!   write-back queue is removed locally, and nothing reaches S3).
//! - `rename` of a file is a copy then DeleteObject; of a directory, every key below it
//!   is copied (bounded concurrency) and then deleted — not atomic: a crash half way leaves
//!   keys in both places, never none. `RENAME_NOREPLACE` is honoured. A copy is one
//!   CopyObject up to the server's single-copy limit (5 GiB on S3) and a multipart copy
//!   (UploadPartCopy) above it, so files of any size can be renamed. Where the bucket has
//!   RenameObject (S3 Express One Zone directory buckets) a file is renamed by it instead,
//!   atomically, and so is each key of a directory but its `dir/` marker.

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::attrs::Creator;
use super::dir::{self, EntryKind};
use super::inode::{ChildFacts, TimeSource};
use super::{Attr, FsError, S3Filesystem};
use crate::s3::{ListObjectsParams, ObjectClient, PutObjectParams, S3Error};
use crate::upload::OpenWriter;
use std::sync::Arc;
use std::time::Instant;

/// Copies (or deletes) in flight at once when moving a directory: enough to hide S3's
/// per-request latency, few enough not to trip request-rate limits on one prefix.
pub const RENAME_CONCURRENCY: usize = 16;

/// See [`S3Filesystem::held_below`].
struct HeldBelow {
    marker: bool,
    others: bool,
}

impl<C: ObjectClient> S3Filesystem<C> {
    pub(super) fn writable_dir(&self, ino: u64) -> Result<String, FsError> {
        if self.config.read_only {
            return Err(FsError::ReadOnly);
        }
        let inode = self.inode(ino)?;
        if inode.kind != EntryKind::Directory {
            return Err(FsError::NotADirectory);
        }
        Ok(inode.key)
    }

    /// Checks `name` for a new entry in the directory of key prefix `parent_key`.
    pub(super) fn checked_name(parent_key: &str, name: &str) -> Result<(), FsError> {
        dir::check_new_name(parent_key, name)
    }

    /// What `parent_key + name` is now, or `None` when nothing is there.
    pub(super) async fn existing(
        &self,
        parent_key: &str,
        name: &str,
    ) -> Result<Option<ChildFacts>, FsError> {
        match self.stat_key(parent_key, name).await {
            Ok(facts) => Ok(Some(facts)),
            Err(FsError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`S3Filesystem::existing`] answered from what this mount knows while it is fresh
    /// (the metadata TTL): a file's inode with its ETag, a file or directory S3 does not
    /// hold yet (being written, or queued), or the parent's listing without the name.
    /// Else S3 is asked — or, when it cannot be reached with write-back, the last listing
    /// of the parent this mount saw answers, as for an offline lookup.
    pub(super) async fn existing_known(
        &self,
        parent: u64,
        parent_key: &str,
        name: &str,
    ) -> Result<Option<ChildFacts>, FsError> {
        let now = Instant::now();
        let child = self.inodes().child(parent, name).map(|i| i.ino);
        let local = child.is_some_and(|ino| self.is_local(ino));
        let known = self
            .inodes()
            .child(parent, name)
            .filter(|i| (i.valid_until > now || local) && !i.unlinked)
            .map(|i| ChildFacts {
                kind: i.kind,
                size: i.size,
                mtime: i.mtime,
                time_source: i.time_source,
                etag: i.etag.clone(),
                last_modified: i.last_modified,
                posix: i.posix.clone(),
            });
        match known {
            Some(facts) if facts.kind != EntryKind::File || facts.etag.is_some() || local => {
                return Ok(Some(facts))
            }
            Some(_) => {}
            None => {
                let absent = self.listings().get(parent).is_some_and(|(_, snapshot)| {
                    snapshot
                        .binary_search_by(|e| e.name.as_str().cmp(name))
                        .is_err()
                });
                if absent {
                    return Ok(None);
                }
            }
        }
        match self.existing(parent_key, name).await {
            Err(FsError::S3(e)) if self.offline() => self.existing_offline(parent, name, e),
            asked => asked,
        }
    }

    /// [`S3Filesystem::existing`] while S3 cannot be reached (write-back): the last
    /// listing of `parent` this mount saw (or an earlier one kept) answers; without one,
    /// `failed`, S3's error.
    fn existing_offline(
        &self,
        parent: u64,
        name: &str,
        failed: S3Error,
    ) -> Result<Option<ChildFacts>, FsError> {
        let Some(snapshot) = self.stale_listing(parent) else {
            return Err(FsError::S3(failed));
        };
        Ok(snapshot
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|at| snapshot[at].facts.clone()))
    }

    /// `mkdir`: writes the marker `name/`, with the new directory's mode, owner and times;
    /// with write-back, makes it durable locally and queues it (see `markers`).
    pub async fn mkdir(&self, parent: u64, name: &str, creator: Creator) -> Result<Attr, FsError> {
        let parent_key = self.writable_dir(parent)?;
        Self::checked_name(&parent_key, name)?;
        if self
            .existing_known(parent, &parent_key, name)
            .await?
            .is_some()
        {
            return Err(FsError::Exists);
        }
        let creator = self.creator_in(parent, creator, EntryKind::Directory);
        let (metadata, posix) = self.new_entry(name, EntryKind::Directory, creator);
        let key = format!("{parent_key}{name}/");
        let marker = match self.write_back {
            Some(_) => Some(self.persist_marker(&key, metadata, None).await?),
            None => {
                self.client
                    .put_object(PutObjectParams {
                        key: key.clone(),
                        body: bytes::Bytes::new(),
                        metadata,
                    })
                    .await?;
                None
            }
        };
        self.rewritten(&key);
        let facts = ChildFacts::directory(self.mount_time, Some(posix.unwrap_or_default()));
        let ino = match self.add_child(parent, name, facts) {
            Ok(ino) => ino,
            Err(e) => {
                if let Some(marker) = marker {
                    // The parent went meanwhile: the marker must not reach S3 alone.
                    let _ = marker.unlink().await;
                }
                return Err(e);
            }
        };
        if let Some(marker) = marker {
            self.queue_marker(ino, marker);
        }
        // The new directory is known empty (nothing was below its name a moment ago):
        // files made in it next need no listing. With write-back it stays this mount's
        // own for longer than the TTL (no other client knows its name yet): what `tar x`
        // or `git clone` makes in it asks S3 nothing, however slow the round trip.
        let until = match self.write_back {
            Some(_) => Instant::now() + self.config.metadata_ttl.max(super::writeback::NEW_DIR_TTL),
            None => self.valid_until(),
        };
        self.listings().insert(ino, until, Arc::new(Vec::new()));
        let mut table = self.inodes();
        table.set_subdirs(ino, 0);
        let inode = table.get(ino).ok_or(FsError::UnknownInode(ino))?;
        Ok(self.attr_of(inode))
    }

    /// `rmdir`: `ENOTEMPTY` while keys remain below; removes the marker.
    pub async fn rmdir(&self, parent: u64, name: &str) -> Result<(), FsError> {
        let parent_key = self.writable_dir(parent)?;
        let prefix = format!("{parent_key}{name}/");
        if self.holds_local_entries(&prefix) {
            // Files or directories of this mount wait to go there.
            return Err(FsError::NotEmpty);
        }
        let queued = self
            .inodes()
            .child(parent, name)
            .map(|i| i.ino)
            .and_then(|ino| Some((ino, self.marker_of(ino)?)));
        if let Some((ino, marker)) = queued {
            if self.rmdir_queued(parent, name, ino, &marker).await? {
                return Ok(());
            }
        }
        let below = self.held_below(&prefix).await?;
        if below.others {
            return Err(FsError::NotEmpty);
        }
        let has_marker = below.marker;
        if !has_marker {
            // Nothing below and no marker: a file of that name, or nothing at all.
            return match self.existing(&parent_key, name).await? {
                Some(_) => Err(FsError::NotADirectory),
                None => Err(FsError::NotFound),
            };
        }
        self.client.delete_object(&prefix).await?;
        self.rewritten(&prefix);
        self.names_changed(parent);
        if let Some(ino) = self.inodes().child(parent, name).map(|i| i.ino) {
            self.forget_made_marker(ino);
        }
        let mut table = self.inodes();
        table.unlink_name(parent, name);
        table.count_subdir(parent, false);
        Ok(())
    }

    /// `rmdir` of directory `ino` (`parent/name`), whose marker waits in the write-back
    /// queue: `ENOTEMPTY` as S3 would say it (what this mount knows of the directory's
    /// names, S3 asked only when that is not fresh), then the marker is dropped and the
    /// name goes locally. Returns `false` when the marker reached S3 meanwhile: the rest
    /// of `rmdir` then removes it there.
    async fn rmdir_queued(
        &self,
        parent: u64,
        name: &str,
        ino: u64,
        marker: &Arc<OpenWriter<C>>,
    ) -> Result<bool, FsError> {
        if !self.known_empty(ino, &marker.key()).await? {
            return Err(FsError::NotEmpty);
        }
        if !self.drop_marker(ino, marker).await? {
            return Ok(false);
        }
        // Only this name went: the parent's listing stays, without it (offline too).
        self.listings().remove(parent, name);
        self.heads.forget_walk(parent);
        let mut table = self.inodes();
        table.touch_directory(parent);
        table.unlink_name(parent, name);
        table.count_subdir(parent, false);
        Ok(true)
    }

    /// True when directory `ino` (key prefix `prefix`) has no entry: its fresh listing
    /// (a directory this mount made stays fresh for a while, with what it put there), else
    /// S3's, else, S3 being away, the last listing seen.
    async fn known_empty(&self, ino: u64, prefix: &str) -> Result<bool, FsError> {
        if let Some((_, snapshot)) = self.listings().get(ino) {
            return Ok(snapshot.is_empty());
        }
        match self.held_below(prefix).await {
            Ok(below) => Ok(!below.others),
            Err(e) if self.offline() => match self.listings().stale(ino) {
                Some(snapshot) => Ok(snapshot.is_empty()),
                None => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// What S3 holds under the directory prefix `prefix`: its marker, and whether
    /// anything else (one page of two keys says both).
    async fn held_below(&self, prefix: &str) -> Result<HeldBelow, S3Error> {
        let page = self
            .client
            .list_objects_page(
                &ListObjectsParams {
                    prefix: prefix.to_string(),
                    delimiter: Some("/".into()),
                    start_after: None,
                    max_keys: Some(2),
                },
                None,
            )
            .await?;
        Ok(HeldBelow {
            marker: page.objects.iter().any(|o| o.key == prefix),
            others: !page.common_prefixes.is_empty()
                || page.objects.iter().any(|o| o.key != prefix),
        })
    }

    /// The writer of `parent/name` when a handle has it open for writing.
    fn open_child(&self, parent: u64, name: &str) -> Option<(u64, Arc<OpenWriter<C>>)> {
        let ino = self.inodes().child(parent, name)?.ino;
        Some((ino, self.writer_of(ino)?))
    }

    /// `unlink`: deletes the object. A file open for writing stays readable and writable
    /// through its handles and is never uploaded again (POSIX); one not uploaded yet is
    /// removed all the same.
    pub async fn unlink(&self, parent: u64, name: &str) -> Result<(), FsError> {
        let parent_key = self.writable_dir(parent)?;
        if let Some((_, writer)) = self.open_child(parent, name) {
            let in_s3 = writer.replaces().is_some();
            writer.unlink().await?;
            if in_s3 {
                self.client
                    .delete_object(&format!("{parent_key}{name}"))
                    .await?;
            }
            // Else the key held nothing when the file was made and it never uploaded:
            // nothing to delete (and an object another client put there since is theirs).
        } else {
            match self.existing(&parent_key, name).await? {
                None => return Err(FsError::NotFound),
                Some(f) if f.kind == EntryKind::Directory => return Err(FsError::IsADirectory),
                Some(_) => {}
            }
            self.client
                .delete_object(&format!("{parent_key}{name}"))
                .await?;
        }
        self.rewritten(&format!("{parent_key}{name}"));
        // The name is gone, and only it: a fresh listing stays, without it.
        self.listings().remove(parent, name);
        self.heads.forget_walk(parent);
        self.inodes().touch_directory(parent);
        self.inodes().unlink_name(parent, name);
        Ok(())
    }

    /// `rename`: moves a file or a whole directory. With `no_replace`, an existing
    /// destination is `EEXIST`. A file open for writing is uploaded first and keeps being
    /// written under its new name (its later writes and close land there: logrotate).
    pub async fn rename(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        no_replace: bool,
    ) -> Result<(), FsError> {
        let from_dir = self.writable_dir(parent)?;
        let to_dir = self.writable_dir(new_parent)?;
        Self::checked_name(&to_dir, new_name)?;
        // A directory is moved (or replaced) by copying what S3 holds under it: the
        // markers queued there go up first. Nothing to do for a file (no marker's key
        // starts with its name and a `/`).
        self.upload_markers_under(&format!("{from_dir}{name}/"))
            .await?;
        self.upload_markers_under(&format!("{to_dir}{new_name}/"))
            .await?;
        let open_source = self.open_child(parent, name);
        let open_target = self.open_child(new_parent, new_name);
        let (source, target) = tokio::join!(
            async {
                match &open_source {
                    // What S3 holds may be older, or nothing yet: the writer speaks.
                    Some((_, w)) => Ok(Some(ChildFacts {
                        kind: EntryKind::File,
                        size: w.size(),
                        mtime: std::time::SystemTime::now(),
                        time_source: TimeSource::LastModified,
                        etag: None,
                        posix: None,
                        last_modified: None,
                    })),
                    None => self.existing(&from_dir, name).await,
                }
            },
            self.existing_known(new_parent, &to_dir, new_name)
        );
        let source = source?.ok_or(FsError::NotFound)?;
        let target = target?;
        if (target.is_some() || open_target.is_some()) && no_replace {
            return Err(FsError::Exists);
        }
        // Before the first copy: a rename that fails half way has changed names too.
        self.names_changed(parent);
        self.names_changed(new_parent);
        let mut moved_file = None;
        match source.kind {
            EntryKind::File | EntryKind::Symlink => {
                if target
                    .as_ref()
                    .is_some_and(|t| t.kind == EntryKind::Directory)
                {
                    return Err(FsError::IsADirectory);
                }
                let (from, to) = (format!("{from_dir}{name}"), format!("{to_dir}{new_name}"));
                if from != to {
                    if let Some((_, replaced)) = &open_target {
                        // Its name goes to the source: what its handles write from now on
                        // must not land over the renamed file.
                        replaced.unlink().await?;
                    }
                    let local_target = match &open_target {
                        Some((_, w)) => w.is_local_only(),
                        None => target.is_none(),
                    };
                    let renamed_locally = match (&open_source, &open_target, &self.write_back) {
                        // A file kept off S3 (`--exclude`): it stays off under a name that
                        // is excluded too and where S3 holds nothing; elsewhere it becomes
                        // an ordinary file, uploaded like a new one. S3 is never asked for
                        // the old name, which it never held.
                        (Some((ino, writer)), _, _) if writer.is_local_only() => {
                            if local_target && self.is_local_only(&to) {
                                writer.rekey(to.clone(), None).await?;
                            } else {
                                let replaces = target.as_ref().and_then(|t| t.etag.clone());
                                self.promote_local(*ino, writer, &to, replaces).await?;
                            }
                            true
                        }
                        // Write-back, a file S3 never held (a program's temporary file
                        // renamed over the real one): only its name changes; its queued
                        // upload goes to the new one. No network, so a save never waits.
                        (Some((ino, writer)), None, Some(queue)) => {
                            let replaces = match &target {
                                Some(t) => t.etag.clone(),
                                None => None,
                            };
                            let renamed = (target.is_none() || replaces.is_some())
                                && writer.rekey(to.clone(), replaces).await?;
                            if renamed {
                                queue.renamed(*ino, &to);
                            }
                            renamed
                        }
                        _ => false,
                    };
                    moved_file = if renamed_locally {
                        None
                    } else {
                        Some(match &open_source {
                            Some((_, writer)) => {
                                writer
                                    .rename(to.clone(), |flushed| {
                                        let size = flushed.map_or(writer.size(), |m| m.size);
                                        self.move_object(from.clone(), to.clone(), size)
                                    })
                                    .await?
                            }
                            None => self.move_object(from, to, source.size).await?,
                        })
                    };
                }
            }
            EntryKind::Directory => {
                let (from, to) = (format!("{from_dir}{name}/"), format!("{to_dir}{new_name}/"));
                if to.starts_with(&from) {
                    // Moving a directory into itself.
                    return Err(FsError::InvalidName);
                }
                match &target {
                    Some(t) if t.kind == EntryKind::File => return Err(FsError::NotADirectory),
                    Some(_) => self.require_empty(&to).await?,
                    None => {}
                }
                self.move_open_files(&from, &to, self.move_prefix(&from, &to))
                    .await?;
            }
        }
        let mut table = self.inodes();
        table.rename(parent, name, new_parent, new_name);
        if source.kind == EntryKind::Directory {
            table.count_subdir(parent, false);
            table.count_subdir(new_parent, true);
        }
        if target
            .as_ref()
            .is_some_and(|t| t.kind == EntryKind::Directory)
        {
            table.count_subdir(new_parent, false);
        }
        match (table.child(new_parent, new_name).map(|i| i.ino), moved_file) {
            (Some(ino), Some((etag, size))) => {
                // The copy is a new version (a multipart object gets a new ETag): take S3's
                // answer at once, or the next open would pin a version that is gone.
                // The copy keeps the metadata, so the attributes shown stay.
                let facts = match table.get(ino) {
                    Some(i) => ChildFacts {
                        kind: i.kind,
                        size,
                        mtime: i.mtime,
                        time_source: i.time_source,
                        etag: Some(etag),
                        posix: i.posix.clone(),
                        last_modified: None,
                    },
                    None => ChildFacts {
                        kind: EntryKind::File,
                        size,
                        mtime: std::time::SystemTime::now(),
                        time_source: TimeSource::LastModified,
                        etag: Some(etag),
                        posix: None,
                        last_modified: None,
                    },
                };
                table.refresh(ino, facts, self.valid_until());
            }
            (Some(_), None) if source.kind == EntryKind::Directory => {
                let moved = format!("{to_dir}{new_name}/");
                table.expire_under(&moved);
            }
            _ => {}
        }
        drop(table);
        // Again after: a listing taken during the copy may show the old name.
        self.names_changed(parent);
        self.names_changed(new_parent);
        Ok(())
    }

    /// Moves `from` to `to` (its metadata with it: modes, owners, times, xattrs and the
    /// Content-Type stay): RenameObject where the bucket has it, else a copy and a delete;
    /// returns the new object's ETag and size.
    async fn move_object(
        &self,
        from: String,
        to: String,
        size: u64,
    ) -> Result<(String, u64), FsError> {
        // A directory bucket renames in one atomic request; elsewhere: copy, delete.
        if self.client.rename_object(&from, &to).await? {
            self.rewritten(&to);
            self.rewritten(&from);
            // RenameObject answers no ETag; the object keeps its own, which the inode takes.
            let meta = self.client.head_object(&to).await?;
            return Ok((meta.etag, meta.size));
        }
        let etag = self
            .client
            .copy_object_sized(&from, &to, size, None)
            .await?;
        self.rewritten(&to);
        self.client.delete_object(&from).await?;
        self.rewritten(&from);
        Ok((etag, size))
    }

    /// Runs `moving` (the move of the directory `from` to `to`) with every file open for
    /// writing below `from` uploaded first and pointed at its new key after, so the move
    /// carries their current content and their later uploads land under the new name.
    async fn move_open_files(
        &self,
        from: &str,
        to: &str,
        moving: impl std::future::Future<Output = Result<(), FsError>>,
    ) -> Result<(), FsError> {
        let open: Vec<(u64, Arc<OpenWriter<C>>)> = self
            .writers()
            .iter()
            .filter(|(_, slot)| slot.writer.key().starts_with(from) && !slot.writer.is_unlinked())
            .map(|(ino, slot)| (*ino, Arc::clone(&slot.writer)))
            .collect();
        for (ino, writer) in &open {
            // Uploaded now, write-back or not: the move copies what S3 holds under `from`,
            // and a file only queued would be left behind (its later upload, to the old
            // key, then finding nothing at the new one).
            if !writer.is_local_only() {
                self.upload(*ino, writer).await?;
            }
        }
        moving.await?;
        for (ino, writer) in &open {
            let key = writer.key();
            if let Some(rest) = key.strip_prefix(from) {
                let new_key = format!("{to}{rest}");
                if let Some(queue) = &self.write_back {
                    queue.renamed(*ino, &new_key);
                }
                // The moved object is the writer's base now: its ETag, from S3.
                writer
                    .rename(new_key.clone(), |_| async {
                        let meta = self.client.head_object(&new_key).await?;
                        Ok::<_, FsError>((meta.etag, meta.size))
                    })
                    .await?;
            }
        }
        Ok(())
    }

    async fn require_empty(&self, prefix: &str) -> Result<(), FsError> {
        let page = self
            .client
            .list_objects_page(
                &ListObjectsParams {
                    prefix: prefix.to_string(),
                    delimiter: None,
                    start_after: None,
                    max_keys: Some(2),
                },
                None,
            )
            .await?;
        if page.objects.iter().any(|o| o.key != prefix) {
            return Err(FsError::NotEmpty);
        }
        Ok(())
    }

    /// One key of a directory move: renamed (`None`), or copied (`Some(key)`, to delete).
    async fn move_key(
        &self,
        key: String,
        target: String,
        size: u64,
    ) -> Result<Option<String>, S3Error> {
        if !key.ends_with('/') && self.client.rename_object(&key, &target).await? {
            return Ok(None);
        }
        self.client
            .copy_object_sized(&key, &target, size, None)
            .await?;
        Ok(Some(key))
    }

    /// Moves every key under `from` to `to`: RenameObject for each where the bucket has it
    /// (directory markers excepted: S3 Express renames no key ending in `/`), else copies,
    /// then deletes the originals copied.
    async fn move_prefix(&self, from: &str, to: &str) -> Result<(), FsError> {
        let listing = self
            .client
            .list_objects(&ListObjectsParams {
                prefix: from.to_string(),
                delimiter: None,
                start_after: None,
                max_keys: None,
            })
            .await?;
        let moves = listing.objects.into_iter().map(|object| {
            let target = format!("{to}{}", &object.key[from.len()..]);
            self.move_key(object.key, target, object.size)
        });
        let copied: Vec<Option<String>> = stream::iter(moves)
            .buffer_unordered(RENAME_CONCURRENCY)
            .try_collect()
            .await?;
        let keys: Vec<String> = copied.into_iter().flatten().collect();
        if keys.is_empty() {
            return Ok(());
        }
        let failed = self.client.delete_objects(&keys).await?;
        if let Some((key, reason)) = failed.into_iter().next() {
            log::warn!("rename: {key:?} was copied but could not be deleted: {reason}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{FsConfig, S3Filesystem};
    use crate::s3::memory::MemoryClient;
    use std::sync::Arc;
    use std::time::Duration;

    fn config(read_only: bool) -> FsConfig {
        FsConfig {
            prefix: String::new(),
            uid: 0,
            gid: 0,
            file_mode: 0o644,
            dir_mode: 0o755,
            metadata_ttl: Duration::from_secs(1),
            read_only,
            writer: Arc::new(crate::upload::test_config()),
            cache_size: 64 << 20,
            max_prefetch_memory: 64 << 20,
            disk_cache: None,
            disk_cache_size: 0,
            posix_metadata: true,
            content_type_default: "application/octet-stream".into(),
            meta_cache: None,
            write_back: None,
            exclude: Default::default(),
            listing_store: None,
        }
    }

    const ROOT_USER: Creator = Creator {
        uid: 0,
        gid: 0,
        mode: 0o755,
    };

    fn fs(objects: &[(&str, &str)]) -> (Arc<MemoryClient>, S3Filesystem<MemoryClient>) {
        let client = Arc::new(MemoryClient::new());
        for (k, v) in objects {
            client.insert(k, v.as_bytes().to_vec());
        }
        let fs = S3Filesystem::new(Arc::clone(&client), config(false));
        (client, fs)
    }

    const ROOT: u64 = 1;

    /// mkdir writes the marker; a second mkdir of the same name is EEXIST.
    #[tokio::test]
    async fn mkdir_writes_marker_and_refuses_existing() {
        let (client, fs) = fs(&[]);
        let attr = fs.mkdir(ROOT, "d", ROOT_USER).await.unwrap();
        assert_eq!(attr.kind, EntryKind::Directory);
        assert_eq!(client.keys(), vec!["d/".to_string()]);
        assert!(matches!(
            fs.mkdir(ROOT, "d", ROOT_USER).await,
            Err(FsError::Exists)
        ));
    }

    /// rmdir refuses while keys remain, then removes the marker.
    #[tokio::test]
    async fn rmdir_refuses_non_empty_then_removes_marker() {
        let (client, fs) = fs(&[("d/", ""), ("d/x", "1")]);
        assert!(matches!(fs.rmdir(ROOT, "d").await, Err(FsError::NotEmpty)));
        fs.unlink(fs.lookup(ROOT, "d").await.unwrap().ino, "x")
            .await
            .unwrap();
        fs.rmdir(ROOT, "d").await.unwrap();
        assert!(client.keys().is_empty());
        assert!(matches!(fs.rmdir(ROOT, "d").await, Err(FsError::NotFound)));
    }

    /// unlink of a directory is EISDIR; of a missing name ENOENT.
    #[tokio::test]
    async fn unlink_refuses_directories_and_missing() {
        let (_, fs) = fs(&[("d/x", "1")]);
        assert!(matches!(
            fs.unlink(ROOT, "d").await,
            Err(FsError::IsADirectory)
        ));
        assert!(matches!(
            fs.unlink(ROOT, "nope").await,
            Err(FsError::NotFound)
        ));
    }

    /// A file rename copies then deletes; NOREPLACE refuses an existing target.
    #[tokio::test]
    async fn rename_file_copies_then_deletes() {
        let (client, fs) = fs(&[("a", "A"), ("b", "B")]);
        assert!(matches!(
            fs.rename(ROOT, "a", ROOT, "b", true).await,
            Err(FsError::Exists)
        ));
        fs.rename(ROOT, "a", ROOT, "c", false).await.unwrap();
        assert_eq!(client.keys(), vec!["b".to_string(), "c".to_string()]);
        assert_eq!(client.get("c").unwrap().as_ref(), b"A");
    }

    /// A directory rename moves every key below it, marker included.
    #[tokio::test]
    async fn rename_directory_moves_every_key() {
        let (client, fs) = fs(&[("d/", ""), ("d/x", "1"), ("d/sub/y", "2"), ("other", "o")]);
        fs.rename(ROOT, "d", ROOT, "e", false).await.unwrap();
        assert_eq!(
            client.keys(),
            vec!["e/", "e/sub/y", "e/x", "other"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        );
    }

    /// A file above the single-copy limit is renamed with a multipart copy, byte-exact.
    #[tokio::test]
    async fn rename_large_file_uses_multipart_copy() {
        let client = Arc::new(MemoryClient::new().with_single_copy_limit(6 << 20));
        let data: Vec<u8> = (0..(13usize << 20)).map(|i| (i % 253) as u8).collect();
        client.insert("big", data.clone());
        let fs = S3Filesystem::new(Arc::clone(&client), config(false));
        fs.rename(ROOT, "big", ROOT, "moved", false).await.unwrap();
        let c = client.counters();
        assert_eq!((c.copy_object, c.upload_part_copy), (0, 3));
        assert_eq!(client.keys(), vec!["moved".to_string()]);
        assert_eq!(client.get("moved").unwrap().as_ref(), &data[..]);
        assert!(client.pending_uploads().is_empty());
    }

    /// A directory cannot replace a non-empty one, nor move into itself.
    #[tokio::test]
    async fn rename_directory_refuses_non_empty_target_and_self_nesting() {
        let (_, fs) = fs(&[("d/x", "1"), ("e/y", "2")]);
        assert!(matches!(
            fs.rename(ROOT, "d", ROOT, "e", false).await,
            Err(FsError::NotEmpty)
        ));
        let d = fs.lookup(ROOT, "d").await.unwrap().ino;
        assert!(matches!(
            fs.rename(ROOT, "d", d, "inner", false).await,
            Err(FsError::InvalidName)
        ));
    }

    /// Every change is refused on a read-only mount.
    #[tokio::test]
    async fn read_only_refuses_changes() {
        let client = Arc::new(MemoryClient::new());
        let fs = S3Filesystem::new(client, config(true));
        assert!(matches!(
            fs.mkdir(ROOT, "d", ROOT_USER).await,
            Err(FsError::ReadOnly)
        ));
    }
}
