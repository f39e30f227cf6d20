//! Changing what an inode carries besides its bytes: `setattr` (`chmod`, `chown`, `utimes`,
//! truncation), symlinks, and extended attributes.
//!
//! S3 cannot change an object's metadata in place. A change to a file that no handle
//! writes is a copy of the object onto itself with `x-amz-metadata-directive: REPLACE`,
//! carrying the whole metadata a HEAD just showed with the change made to it (every other
//! header survives; UploadPartCopy above the single-copy limit). A file open for writing
//! takes the change into its writer: it rides with the upload. A directory's attributes
//! live on its marker `dir/`, which a change writes if it is missing; a directory whose
//! marker waits in the write-back queue (`markers`) takes the change into that marker,
//! which carries it up: no S3 call; so does one whose marker this mount uploaded lately,
//! through a new queued marker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::dir::EntryKind;
use super::inode::{ChildFacts, Inode, TimeSource, ROOT_INO};
use super::posix::{Posix, PERM_BITS, S_IFDIR, S_IFLNK, S_IFREG};
use super::xattr::{self, Namespace};
use super::{Attr, FsError, S3Filesystem};
use crate::s3::metadata::USER_METADATA_LIMIT;
use crate::s3::{GetObjectParams, Metadata, ObjectClient, PutObjectParams, S3Error};
use crate::upload::OpenWriter;

/// The Content-Type of directory markers, as s3fs writes them.
pub const DIRECTORY_CONTENT_TYPE: &str = "application/x-directory";

/// What one `setattr` asks to change.
#[derive(Clone, Debug, Default)]
pub struct SetAttr {
    /// Permission bits (the type bits are the file's own).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SystemTime>,
    pub mtime: Option<SystemTime>,
}

impl SetAttr {
    /// True when it sets file times.
    fn sets_times(&self) -> bool {
        self.atime.is_some() || self.mtime.is_some()
    }

    /// True when it sets the mode or an owner.
    fn sets_owners_or_mode(&self) -> bool {
        self.mode.is_some() || self.uid.is_some() || self.gid.is_some()
    }

    /// Its modes, owners and times set in `posix`.
    fn apply_to(&self, posix: &mut Posix) {
        if let Some(mode) = self.mode {
            let kind = posix.mode.unwrap_or(0) & !PERM_BITS;
            posix.mode = Some(kind | (mode & PERM_BITS));
        }
        if self.uid.is_some() {
            posix.uid = self.uid;
        }
        if self.gid.is_some() {
            posix.gid = self.gid;
        }
        if self.mtime.is_some() {
            posix.mtime = self.mtime;
        }
        if self.atime.is_some() {
            posix.atime = self.atime;
        }
    }
}

/// Who creates a file, and with which mode (permission bits, umask applied).
#[derive(Clone, Copy, Debug)]
pub struct Creator {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// `setxattr`'s flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrFlag {
    /// Create or replace.
    Any,
    /// `XATTR_CREATE`: fail if it exists.
    Create,
    /// `XATTR_REPLACE`: fail unless it exists.
    Replace,
}

impl<C: ObjectClient> S3Filesystem<C> {
    /// `setattr`: truncation first (it uploads), then modes, owners and times in one
    /// change of the metadata.
    pub async fn setattr(&self, ino: u64, change: SetAttr) -> Result<Attr, FsError> {
        if self.config.read_only {
            return Err(FsError::ReadOnly);
        }
        if let Some(size) = change.size {
            self.set_size(ino, size).await?;
        }
        let times_set = change.sets_times();
        let attrs_set = change.sets_owners_or_mode();
        if !times_set && !attrs_set {
            return self.getattr(ino).await;
        }
        if !self.config.posix_metadata {
            // Modes and owners are the mount's; only the file time is kept.
            if let Some(mtime) = change.mtime {
                self.change_metadata(ino, Some(true), |posix| {
                    posix.mtime = Some(mtime);
                    Ok(())
                })
                .await?;
            }
            return self.getattr(ino).await;
        }
        self.change_metadata(ino, times_set.then_some(true), |posix| {
            change.apply_to(posix);
            Ok(())
        })
        .await?;
        self.getattr(ino).await
    }

    /// [`S3Filesystem::setattr`] answered in the request loop when it needs only memory
    /// (and a journal line, not synced): the modes, owners and times of a file being
    /// written or waiting for its upload — `tar x` sets all three on every file it makes.
    /// `None`: `setattr` must do it.
    pub fn setattr_now(&self, ino: u64, change: &SetAttr) -> Option<Result<Attr, FsError>> {
        let simple = change.size.is_none()
            && (change.sets_times() || change.sets_owners_or_mode())
            && self.config.posix_metadata
            && !self.config.read_only;
        if !simple {
            return None;
        }
        let inode = self.inode(ino).ok()?;
        if inode.kind != EntryKind::File {
            return None;
        }
        let writer = self.writer_of(ino)?;
        let mut metadata = writer.metadata_as_set();
        let posix = match self.changed(&inode, &metadata, |posix| {
            change.apply_to(posix);
            Ok(())
        }) {
            Ok(posix) => posix,
            Err(e) => return Some(Err(e)),
        };
        posix.store(&mut metadata);
        if let Err(e) = check_size(&metadata) {
            return Some(Err(e));
        }
        if !writer.set_metadata_now(metadata, change.sets_times().then_some(true)) {
            return None;
        }
        self.inodes().set_posix(ino, posix);
        Some(self.getattr_cached(ino).ok_or(FsError::UnknownInode(ino)))
    }

    /// Changes the attributes stored with `ino` by `change` (given them complete: every
    /// attribute shown, see [`S3Filesystem::complete`]) and stores them; `ctime` becomes
    /// now. `times_set`: the change set the file times (`Some(true)`), or leaves a writer's
    /// notion of it as it was (`None`).
    pub(super) async fn change_metadata(
        &self,
        ino: u64,
        times_set: Option<bool>,
        change: impl FnOnce(&mut Posix) -> Result<(), FsError>,
    ) -> Result<(), FsError> {
        if self.config.read_only {
            return Err(FsError::ReadOnly);
        }
        let inode = self.inode(ino)?;
        if let Some(writer) = self
            .writer_of(ino)
            .filter(|_| inode.kind == EntryKind::File)
        {
            let mut metadata = writer.metadata_as_set();
            let posix = self.changed(&inode, &metadata, change)?;
            posix.store(&mut metadata);
            check_size(&metadata)?;
            let stored = writer.set_metadata(metadata, times_set).await?;
            let mut table = self.inodes();
            if let Some((etag, size)) = stored {
                // Stored at once (the file had nothing left to upload): the new version.
                self.rewritten(&inode.key);
                let facts = ChildFacts {
                    kind: EntryKind::File,
                    size,
                    mtime: posix.mtime.unwrap_or(inode.mtime),
                    time_source: TimeSource::Metadata,
                    etag: Some(etag),
                    posix: Some(posix.clone()),
                    last_modified: None,
                };
                table.refresh(ino, facts, self.valid_until());
            }
            table.set_posix(ino, posix);
            return Ok(());
        }
        if inode.kind == EntryKind::Directory {
            if let Some(marker) = self.marker_of(ino) {
                return self.change_queued_marker(&inode, &marker, change).await;
            }
            if let Some(made) = self.take_made_marker(&inode) {
                return self.requeue_marker(&inode, made, change).await;
            }
            return self.change_directory(&inode, change).await;
        }
        let current = match self.client.head_object(&inode.key).await {
            Ok(meta) => meta,
            Err(S3Error::NoSuchKey { .. }) => return Err(FsError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let mut metadata = current.metadata.clone().unwrap_or_default();
        let posix = self.changed(&inode, &metadata, change)?;
        posix.store(&mut metadata);
        check_size(&metadata)?;
        let etag = self
            .client
            .copy_object_sized(&inode.key, &inode.key, current.size, Some(&metadata))
            .await?;
        self.rewritten(&inode.key);
        let mut facts = ChildFacts::file(&current);
        facts.kind = inode.kind;
        facts.etag = Some(etag);
        // The copy has a Last-Modified of its own, which the next listing shows.
        facts.last_modified = None;
        facts.posix = Some(posix.clone());
        facts.mtime = posix.mtime.unwrap_or(facts.mtime);
        facts.time_source = TimeSource::Metadata;
        let mut table = self.inodes();
        table.refresh(ino, facts, self.valid_until());
        table.set_posix(ino, posix);
        Ok(())
    }

    /// [`S3Filesystem::change_metadata`] of a directory whose marker waits in the
    /// write-back queue: the queued marker (and its journal record) takes the change. If
    /// its upload ended first, the writer copies the marker onto itself with it instead.
    async fn change_queued_marker(
        &self,
        inode: &Inode,
        marker: &OpenWriter<C>,
        change: impl FnOnce(&mut Posix) -> Result<(), FsError>,
    ) -> Result<(), FsError> {
        let mut metadata = marker.metadata_as_set();
        let posix = self.changed(inode, &metadata, change)?;
        posix.store(&mut metadata);
        check_size(&metadata)?;
        // A marker is never written to: its times are always the ones set.
        if marker.set_metadata(metadata, Some(true)).await?.is_some() {
            self.rewritten(&inode.key);
        }
        self.inodes().set_posix(inode.ino, posix);
        Ok(())
    }

    /// [`S3Filesystem::change_metadata`] of a directory: its marker is rewritten (a copy
    /// onto itself) or written. The root of a whole bucket has no marker: its attributes
    /// are the mount's, changed in memory only.
    async fn change_directory(
        &self,
        inode: &Inode,
        change: impl FnOnce(&mut Posix) -> Result<(), FsError>,
    ) -> Result<(), FsError> {
        if inode.ino == ROOT_INO && inode.key.is_empty() {
            let posix = self.changed(inode, &Metadata::default(), change)?;
            self.inodes().set_posix(inode.ino, posix);
            return Ok(());
        }
        let marker = inode.key.as_str();
        let current = match self.client.head_object(marker).await {
            Ok(meta) => Some(meta),
            Err(S3Error::NoSuchKey { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let mut metadata = match current.as_ref().and_then(|m| m.metadata.clone()) {
            Some(m) => m,
            None => Metadata::with_content_type(Some(DIRECTORY_CONTENT_TYPE.into())),
        };
        let posix = self.changed(inode, &metadata, change)?;
        posix.store(&mut metadata);
        check_size(&metadata)?;
        match current {
            Some(_) => {
                self.client
                    .copy_object(marker, marker, Some(&metadata))
                    .await?;
            }
            None => {
                self.client
                    .put_object(PutObjectParams {
                        key: marker.to_string(),
                        body: Bytes::new(),
                        metadata,
                    })
                    .await?;
            }
        }
        self.rewritten(marker);
        self.inodes().set_posix(inode.ino, posix);
        Ok(())
    }

    /// The attributes `metadata` holds, completed with what `inode` shows where it holds
    /// none (s3fs stores them all together), changed by `change`, `ctime` now.
    pub(super) fn changed(
        &self,
        inode: &Inode,
        metadata: &Metadata,
        change: impl FnOnce(&mut Posix) -> Result<(), FsError>,
    ) -> Result<Posix, FsError> {
        let mut posix = Posix::from_metadata(metadata);
        if self.config.posix_metadata {
            let shown = self.attr_of(inode);
            let kind = match inode.kind {
                EntryKind::File => S_IFREG,
                EntryKind::Directory => S_IFDIR,
                EntryKind::Symlink => S_IFLNK,
            };
            let perm = posix.perm().map_or(u32::from(shown.perm), u32::from);
            posix.mode = Some(kind | perm);
            posix.uid = posix.uid.or(Some(shown.uid));
            posix.gid = posix.gid.or(Some(shown.gid));
            posix.mtime = posix.mtime.or(Some(shown.mtime));
            posix.atime = posix.atime.or(Some(shown.atime));
        }
        change(&mut posix)?;
        if self.config.posix_metadata {
            posix.ctime = Some(SystemTime::now());
        }
        Ok(posix)
    }

    /// What a new file, directory or link gets: its mode, owner and times (now), and the
    /// Content-Type of its name (directories: s3fs's marker type); the metadata and the
    /// attributes in it (`None` without POSIX metadata).
    pub(super) fn new_entry(
        &self,
        name: &str,
        kind: EntryKind,
        creator: Creator,
    ) -> (Metadata, Option<Posix>) {
        let content_type = match kind {
            EntryKind::Directory => DIRECTORY_CONTENT_TYPE.to_string(),
            EntryKind::File | EntryKind::Symlink => self.content_type(name),
        };
        let mut metadata = Metadata::with_content_type(Some(content_type));
        let posix = self.new_posix(kind, creator);
        if let Some(posix) = &posix {
            posix.store(&mut metadata);
        }
        (metadata, posix)
    }

    fn new_posix(&self, kind: EntryKind, creator: Creator) -> Option<Posix> {
        if !self.config.posix_metadata {
            return None;
        }
        let now = SystemTime::now();
        let mode = match kind {
            EntryKind::File => S_IFREG | (creator.mode & PERM_BITS),
            EntryKind::Directory => S_IFDIR | (creator.mode & PERM_BITS),
            EntryKind::Symlink => S_IFLNK | 0o777,
        };
        Some(Posix {
            mode: Some(mode),
            uid: Some(creator.uid),
            gid: Some(creator.gid),
            mtime: Some(now),
            ctime: Some(now),
            atime: Some(now),
            xattr: None,
        })
    }

    /// The owner a new inode in `parent` gets: its creator's, but the group of a setgid
    /// directory (and a new directory in one is setgid too), as Linux filesystems do.
    pub(super) fn creator_in(&self, parent: u64, mut creator: Creator, kind: EntryKind) -> Creator {
        let table = self.inodes();
        let Some(parent) = table.get(parent) else {
            return creator;
        };
        let attr = self.attr_of(parent);
        if u32::from(attr.perm) & libc::S_ISGID != 0 {
            creator.gid = attr.gid;
            if kind == EntryKind::Directory {
                creator.mode |= libc::S_ISGID;
            }
        }
        creator
    }

    /// `symlink`: an object named `name` whose body is `target`, mode `S_IFLNK|0777`.
    pub async fn symlink(
        &self,
        parent: u64,
        name: &str,
        target: &str,
        creator: Creator,
    ) -> Result<Attr, FsError> {
        if !self.config.posix_metadata {
            return Err(FsError::NotPermitted(
                "symlinks need POSIX metadata (mounted with --no-posix-metadata)",
            ));
        }
        let parent_key = self.writable_dir(parent)?;
        Self::checked_name(&parent_key, name)?;
        if self.existing(&parent_key, name).await?.is_some() {
            return Err(FsError::Exists);
        }
        let creator = self.creator_in(parent, creator, EntryKind::Symlink);
        let (metadata, _) = self.new_entry(name, EntryKind::Symlink, creator);
        let body = Bytes::from(target.as_bytes().to_vec());
        let key = format!("{parent_key}{name}");
        let etag = self
            .client
            .put_object(PutObjectParams {
                key,
                body,
                metadata: metadata.clone(),
            })
            .await?;
        self.names_changed(parent);
        let posix = Posix::from_metadata(&metadata);
        let facts = ChildFacts {
            kind: EntryKind::Symlink,
            size: target.len() as u64,
            mtime: posix.mtime.unwrap_or_else(SystemTime::now),
            time_source: TimeSource::Metadata,
            etag: Some(etag),
            posix: Some(posix),
            last_modified: None,
        };
        let mut table = self.inodes();
        let ino = table
            .upsert_child(parent, name, facts, self.valid_until())
            .ok_or(FsError::UnknownInode(parent))?;
        table.remember(ino);
        table.set_link(ino, Arc::from(target));
        let inode = table.get(ino).ok_or(FsError::UnknownInode(ino))?;
        Ok(self.attr_of(inode))
    }

    /// `readlink`: the target, from the table once read.
    pub async fn readlink(&self, ino: u64) -> Result<Arc<str>, FsError> {
        let inode = self.inode(ino)?;
        if inode.kind != EntryKind::Symlink {
            return Err(FsError::InvalidArgument("not a symlink"));
        }
        if let Some(target) = inode.link.clone() {
            return Ok(target);
        }
        let got = self
            .client
            .get_object(GetObjectParams {
                key: inode.key.clone(),
                range: None,
                if_match: inode.etag.clone(),
            })
            .await?;
        let target: Arc<str> = Arc::from(String::from_utf8_lossy(&got.body.to_bytes()).as_ref());
        self.inodes().set_link(ino, Arc::clone(&target));
        Ok(target)
    }

    /// The `user.` attributes of `ino` (reading its metadata if not known yet).
    async fn xattrs(&self, ino: u64) -> Result<BTreeMap<String, Vec<u8>>, FsError> {
        if let Some(writer) = self.writer_of(ino) {
            let metadata = writer.metadata_as_set();
            return Ok(metadata
                .user
                .get("xattr")
                .map(|x| xattr::decode(x))
                .unwrap_or_default());
        }
        let mut inode = self.inode(ino)?;
        if inode.posix.is_none() {
            self.getattr(ino).await?;
            inode = self.inode(ino)?;
        }
        Ok(inode
            .posix
            .and_then(|p| p.xattr)
            .map(|x| xattr::decode(&x))
            .unwrap_or_default())
    }

    /// `getxattr` answered without S3, when it can be: names outside `user.` (the kernel
    /// asks for `security.capability` before every write), and attributes of an inode
    /// whose metadata is known. `None`: [`S3Filesystem::getxattr`] must ask.
    pub fn getxattr_now(&self, ino: u64, name: &str) -> Option<Result<Vec<u8>, FsError>> {
        match xattr::namespace(name) {
            Namespace::Other => Some(Err(FsError::NotSupported(
                "only user. extended attributes are kept",
            ))),
            Namespace::S3Fact => None,
            Namespace::User if !self.config.posix_metadata => Some(Err(FsError::NotSupported(
                "mounted with --no-posix-metadata",
            ))),
            Namespace::User => {
                if self.writer_of(ino).is_some() {
                    return None;
                }
                let table = self.inodes();
                let inode = table.get(ino)?;
                let posix = inode.posix.as_ref()?;
                let found = posix
                    .xattr
                    .as_deref()
                    .and_then(|x| xattr::decode(x).remove(name));
                Some(found.ok_or(FsError::NoAttribute))
            }
        }
    }

    /// `getxattr`.
    pub async fn getxattr(&self, ino: u64, name: &str) -> Result<Vec<u8>, FsError> {
        if let Some(done) = self.getxattr_now(ino, name) {
            return done;
        }
        if xattr::namespace(name) == Namespace::S3Fact {
            return self.s3_fact(ino, name).await;
        }
        self.xattrs(ino)
            .await?
            .remove(name)
            .ok_or(FsError::NoAttribute)
    }

    /// One of [`xattr::S3_FACTS`], from a HEAD of the object.
    async fn s3_fact(&self, ino: u64, name: &str) -> Result<Vec<u8>, FsError> {
        let inode = self.inode(ino)?;
        if inode.ino == ROOT_INO && inode.key.is_empty() {
            return Err(FsError::NoAttribute);
        }
        let meta = self.client.head_object(&inode.key).await?;
        let metadata = meta.metadata.unwrap_or_default();
        let value = match name {
            "user.s3.etag" => Some(meta.etag),
            "user.s3.content-type" => metadata.content_type,
            // S3 names the class only when it is not STANDARD.
            "user.s3.storage-class" => Some(
                metadata
                    .kept
                    .get("x-amz-storage-class")
                    .cloned()
                    .unwrap_or_else(|| "STANDARD".into()),
            ),
            "user.s3.version-id" => meta.version_id,
            "user.s3.key" => Some(inode.key),
            _ => None,
        };
        value.map(String::into_bytes).ok_or(FsError::NoAttribute)
    }

    /// `listxattr`: the `user.` names, each followed by a NUL (the S3 facts are left out).
    pub async fn listxattr(&self, ino: u64) -> Result<Vec<u8>, FsError> {
        if !self.config.posix_metadata {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for name in self.xattrs(ino).await?.into_keys() {
            out.extend_from_slice(name.as_bytes());
            out.push(0);
        }
        Ok(out)
    }

    /// `setxattr` of a `user.` attribute.
    pub async fn setxattr(
        &self,
        ino: u64,
        name: &str,
        value: &[u8],
        flag: XattrFlag,
    ) -> Result<(), FsError> {
        self.check_xattr_name(name)?;
        if value.len() > USER_METADATA_LIMIT {
            return Err(FsError::ValueTooLarge {
                size: value.len(),
                limit: USER_METADATA_LIMIT,
            });
        }
        let inode = self.inode(ino)?;
        if inode.kind == EntryKind::Symlink {
            // As on Linux filesystems: user attributes are for files and directories.
            return Err(FsError::NotPermitted("user attributes on a symlink"));
        }
        let value = value.to_vec();
        self.change_xattrs(ino, move |attrs| {
            match (flag, attrs.contains_key(name)) {
                (XattrFlag::Create, true) => return Err(FsError::Exists),
                (XattrFlag::Replace, false) => return Err(FsError::NoAttribute),
                _ => {}
            }
            attrs.insert(name.to_string(), value);
            Ok(())
        })
        .await
    }

    /// `removexattr` of a `user.` attribute.
    pub async fn removexattr(&self, ino: u64, name: &str) -> Result<(), FsError> {
        self.check_xattr_name(name)?;
        self.change_xattrs(ino, move |attrs| {
            attrs.remove(name).map(drop).ok_or(FsError::NoAttribute)
        })
        .await
    }

    /// Changes the `user.` attributes of `ino` by `change` and stores them.
    async fn change_xattrs(
        &self,
        ino: u64,
        change: impl FnOnce(&mut BTreeMap<String, Vec<u8>>) -> Result<(), FsError>,
    ) -> Result<(), FsError> {
        self.change_metadata(ino, None, move |posix| {
            let mut attrs = posix
                .xattr
                .as_deref()
                .map(xattr::decode)
                .unwrap_or_default();
            change(&mut attrs)?;
            posix.xattr = xattr::encode(&attrs).map(Arc::from);
            Ok(())
        })
        .await
    }

    fn check_xattr_name(&self, name: &str) -> Result<(), FsError> {
        match xattr::namespace(name) {
            Namespace::User if self.config.posix_metadata => Ok(()),
            Namespace::User => Err(FsError::NotSupported("mounted with --no-posix-metadata")),
            Namespace::S3Fact => Err(FsError::NotPermitted("user.s3.* attributes are read-only")),
            Namespace::Other => Err(FsError::NotSupported(
                "only user. extended attributes are kept",
            )),
        }
    }

    /// The Content-Type a file named `name` is uploaded with: from its extension, else the
    /// mount's default.
    pub(super) fn content_type(&self, name: &str) -> String {
        mime_guess::from_path(name)
            .first_raw()
            .map_or_else(|| self.config.content_type_default.clone(), str::to_string)
    }
}

/// Refuses metadata S3 would refuse (2 KiB of user metadata).
pub(super) fn check_size(metadata: &Metadata) -> Result<(), FsError> {
    let size = metadata.user_size();
    if size > USER_METADATA_LIMIT {
        return Err(FsError::MetadataFull {
            size,
            limit: USER_METADATA_LIMIT,
        });
    }
    Ok(())
}
