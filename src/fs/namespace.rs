//! Changing the namespace: `mkdir`, `rmdir`, `unlink`, `rename` — each turned into the S3
//! calls that do it (DESIGN "S3 ↔ POSIX semantics").
//!
//! - `mkdir` writes the zero-byte marker `dir/`.
//! - `rmdir` fails with `ENOTEMPTY` while any key remains under the directory, then removes
//!   its marker (a directory that only existed through its keys is gone with them).
//! - `rename` of a file is a copy then DeleteObject; of a directory, every key below it
//!   is copied (bounded concurrency) and then deleted — not atomic: a crash half way leaves
//!   keys in both places, never none. `RENAME_NOREPLACE` is honoured. A copy is one
//!   CopyObject up to the server's single-copy limit (5 GiB on S3) and a multipart copy
//!   (UploadPartCopy) above it, so files of any size can be renamed.

use futures_util::stream::{self, TryStreamExt};

use super::dir::{self, EntryKind};
use super::inode::{ChildFacts, TimeSource};
use super::{Attr, FsError, S3Filesystem};
use crate::s3::{ListObjectsParams, ObjectClient, PutObjectParams, S3Error};

/// Copies (or deletes) in flight at once when moving a directory: enough to hide S3's
/// per-request latency, few enough not to trip request-rate limits on one prefix.
pub const RENAME_CONCURRENCY: usize = 16;

impl<C: ObjectClient> S3Filesystem<C> {
    fn writable_dir(&self, ino: u64) -> Result<String, FsError> {
        if self.config.read_only {
            return Err(FsError::ReadOnly);
        }
        let inode = self.inode(ino)?;
        if inode.kind != EntryKind::Directory {
            return Err(FsError::NotADirectory);
        }
        Ok(inode.key)
    }

    fn checked_name(name: &str) -> Result<(), FsError> {
        if dir::is_valid_name(name) {
            Ok(())
        } else {
            Err(FsError::InvalidName)
        }
    }

    /// What `parent_key + name` is now, or `None` when nothing is there.
    async fn existing(&self, parent_key: &str, name: &str) -> Result<Option<ChildFacts>, FsError> {
        match self.stat_key(parent_key, name).await {
            Ok(facts) => Ok(Some(facts)),
            Err(FsError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `mkdir`: writes the marker `name/`.
    pub async fn mkdir(&self, parent: u64, name: &str) -> Result<Attr, FsError> {
        let parent_key = self.writable_dir(parent)?;
        Self::checked_name(name)?;
        if self.existing(&parent_key, name).await?.is_some() {
            return Err(FsError::Exists);
        }
        self.client
            .put_object(PutObjectParams {
                key: format!("{parent_key}{name}/"),
                ..Default::default()
            })
            .await?;
        self.names_changed(parent);
        let facts = ChildFacts::directory(self.mount_time);
        let mut table = self.inodes();
        let ino = table
            .upsert_child(parent, name, facts, self.valid_until())
            .ok_or(FsError::UnknownInode(parent))?;
        table.remember(ino);
        let inode = table.get(ino).ok_or(FsError::UnknownInode(ino))?;
        Ok(self.attr_of(inode))
    }

    /// `rmdir`: `ENOTEMPTY` while keys remain below; removes the marker.
    pub async fn rmdir(&self, parent: u64, name: &str) -> Result<(), FsError> {
        let parent_key = self.writable_dir(parent)?;
        let prefix = format!("{parent_key}{name}/");
        let page = self
            .client
            .list_objects_page(
                &ListObjectsParams {
                    prefix: prefix.clone(),
                    delimiter: Some("/".into()),
                    start_after: None,
                    max_keys: Some(2),
                },
                None,
            )
            .await?;
        let has_marker = page.objects.iter().any(|o| o.key == prefix);
        let others =
            page.objects.iter().filter(|o| o.key != prefix).count() + page.common_prefixes.len();
        if others > 0 {
            return Err(FsError::NotEmpty);
        }
        if !has_marker {
            // Nothing below and no marker: a file of that name, or nothing at all.
            return match self.existing(&parent_key, name).await? {
                Some(_) => Err(FsError::NotADirectory),
                None => Err(FsError::NotFound),
            };
        }
        self.client.delete_object(&prefix).await?;
        self.names_changed(parent);
        self.inodes().unlink_name(parent, name);
        Ok(())
    }

    /// `unlink`: deletes the object.
    pub async fn unlink(&self, parent: u64, name: &str) -> Result<(), FsError> {
        let parent_key = self.writable_dir(parent)?;
        match self.existing(&parent_key, name).await? {
            None => return Err(FsError::NotFound),
            Some(f) if f.kind == EntryKind::Directory => return Err(FsError::IsADirectory),
            Some(_) => {}
        }
        self.client
            .delete_object(&format!("{parent_key}{name}"))
            .await?;
        self.names_changed(parent);
        self.inodes().unlink_name(parent, name);
        Ok(())
    }

    /// `rename`: moves a file or a whole directory. With `no_replace`, an existing
    /// destination is `EEXIST`.
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
        Self::checked_name(new_name)?;
        let (source, target) = tokio::join!(
            self.existing(&from_dir, name),
            self.existing(&to_dir, new_name)
        );
        let source = source?.ok_or(FsError::NotFound)?;
        let target = target?;
        if target.is_some() && no_replace {
            return Err(FsError::Exists);
        }
        // Before the first copy: a rename that fails half way has changed names too.
        self.names_changed(parent);
        self.names_changed(new_parent);
        // A time set with utimes and not stored yet is stored by the copy (the object is
        // rewritten anyway).
        let mut unsaved_time = self
            .inodes()
            .child(parent, name)
            .filter(|i| i.time_source == TimeSource::Unsaved)
            .map(|i| i.mtime);
        match source.kind {
            EntryKind::File => {
                if target
                    .as_ref()
                    .is_some_and(|t| t.kind == EntryKind::Directory)
                {
                    return Err(FsError::IsADirectory);
                }
                let (from, to) = (format!("{from_dir}{name}"), format!("{to_dir}{new_name}"));
                if from != to {
                    self.client
                        .copy_object_sized(&from, &to, source.size, unsaved_time)
                        .await?;
                    self.client.delete_object(&from).await?;
                } else {
                    unsaved_time = None;
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
                self.move_prefix(&from, &to).await?;
            }
        }
        let mut table = self.inodes();
        table.rename(parent, name, new_parent, new_name);
        if let (Some(t), Some(moved), EntryKind::File) =
            (unsaved_time, table.child(new_parent, new_name), source.kind)
        {
            let ino = moved.ino;
            table.set_mtime(ino, t, TimeSource::Metadata);
        }
        drop(table);
        // Again after: a listing taken during the copy may show the old name.
        self.names_changed(parent);
        self.names_changed(new_parent);
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

    /// Copies every key under `from` to `to`, then deletes the originals.
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
        stream::iter(listing.objects.iter().map(Ok::<_, S3Error>))
            .try_for_each_concurrent(RENAME_CONCURRENCY, |object| async move {
                let target = format!("{to}{}", &object.key[from.len()..]);
                self.client
                    .copy_object_sized(&object.key, &target, object.size, None)
                    .await
                    .map(|_| ())
            })
            .await?;
        let keys: Vec<String> = listing.objects.into_iter().map(|o| o.key).collect();
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
            writer: Arc::new(crate::upload::WriterConfig::new(std::env::temp_dir())),
            cache_size: 64 << 20,
            max_prefetch_memory: 64 << 20,
            disk_cache: None,
            disk_cache_size: 0,
        }
    }

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
        let attr = fs.mkdir(ROOT, "d").await.unwrap();
        assert_eq!(attr.kind, EntryKind::Directory);
        assert_eq!(client.keys(), vec!["d/".to_string()]);
        assert!(matches!(fs.mkdir(ROOT, "d").await, Err(FsError::Exists)));
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
        assert!(matches!(fs.mkdir(ROOT, "d").await, Err(FsError::ReadOnly)));
    }
}
