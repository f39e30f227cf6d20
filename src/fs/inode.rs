//! The inode table: inode number ↔ (parent, name), the S3 key behind each inode, cached
//! attributes with their expiry, and the kernel's lookup counts.
//!
//! The kernel holds a reference on an inode for every entry we hand it (lookup, readdirplus);
//! `forget` gives them back. An inode whose count falls to zero is dropped, so the table's
//! size follows what the kernel remembers, not the size of the bucket. Numbers are never
//! reused while the mount lives (a 64-bit counter), so a stale number is an error, never a
//! different file.
//!
//! The table lives behind a `std::sync::Mutex` in the filesystem: every operation on it is
//! short and never awaits, so a blocking lock is cheaper than an async one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::dir::EntryKind;
use super::posix::Posix;

/// The root directory's inode number (fixed by FUSE).
pub const ROOT_INO: u64 = 1;

/// What the filesystem knows about one inode.
#[derive(Clone, Debug)]
pub struct Inode {
    pub ino: u64,
    pub parent: u64,
    pub name: String,
    pub kind: EntryKind,
    /// The object key (files) or the key prefix ending in `/` (directories; `""` or the
    /// mount prefix for the root).
    pub key: String,
    pub size: u64,
    pub mtime: SystemTime,
    /// Where `mtime` comes from.
    pub time_source: TimeSource,
    /// The last change of the inode's attributes or content (`st_ctime`).
    pub ctime: SystemTime,
    /// The object's ETag when last seen (files only).
    pub etag: Option<String>,
    /// Its `Last-Modified` when last seen, when known: with the ETag, the version whose
    /// metadata `posix` is (a copy onto itself changes metadata and `Last-Modified`, not
    /// the ETag of a single-part object).
    pub last_modified: Option<SystemTime>,
    /// What the object's metadata says of modes, owners, times and xattrs; `None` until
    /// its metadata was read (a listing does not show it).
    pub posix: Option<Posix>,
    /// A symlink's target, once read (for the version `etag` names).
    pub link: Option<Arc<str>>,
    /// Its name is gone (unlinked, or renamed over) while the kernel still holds it.
    pub unlinked: bool,
    /// A directory's subdirectories, when this mount knows them: counted by its last
    /// listing (or 0 for one it made), then kept by its `mkdir`, `rmdir` and `rename`.
    /// Its link count is 2 more (`None`: 2).
    pub subdirs: Option<u32>,
    /// Until when `size`/`mtime`/`etag` may be served without asking S3.
    pub valid_until: Instant,
    /// The ETag pinned by the last `open`: the kernel's page cache holds that version, so
    /// it may be kept only while the next open pins the same one.
    pub cached_etag: Option<String>,
    lookups: u64,
    /// Holders besides the kernel (a file's writer while it lives, its last upload
    /// included): the inode stays while any holds it, so the file keeps one inode number
    /// and one writer however the kernel forgets and looks it up again.
    pins: u32,
}

/// Where a file's mtime comes from. A listing shows only `Last-Modified`, so a time from
/// metadata is kept over a listing's time while the ETag stays the same.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeSource {
    /// The object's `Last-Modified` (directories: the mount time).
    #[default]
    LastModified,
    /// The object's `x-amz-meta-mtime`, seen on a HEAD or stored by our own write.
    Metadata,
    /// A directory whose entries changed through this mount: its times are that change's,
    /// newer than what its marker stores (kept in memory only).
    Local,
}

/// Fresh facts about a child, from a listing or a HEAD.
#[derive(Clone, Debug)]
pub struct ChildFacts {
    pub kind: EntryKind,
    pub size: u64,
    pub mtime: SystemTime,
    pub time_source: TimeSource,
    pub etag: Option<String>,
    /// S3's `Last-Modified` (HEAD, listing); `None` when not from S3 (our own upload).
    pub last_modified: Option<SystemTime>,
    /// The attributes its metadata holds; `None` when the facts come from a listing.
    pub posix: Option<Posix>,
}

impl ChildFacts {
    /// An object as S3 describes it: a file, or a symlink when its stored mode says so.
    /// Its `x-amz-meta-mtime` when it has one (HEAD, GET), else `Last-Modified` (listings).
    pub fn file(meta: &crate::s3::ObjectMeta) -> Self {
        let posix = meta.metadata.as_ref().map(Posix::from_metadata);
        let kind = match posix.as_ref().and_then(Posix::kind) {
            Some(EntryKind::Symlink) => EntryKind::Symlink,
            _ => EntryKind::File,
        };
        let mtime = meta.mtime();
        ChildFacts {
            kind,
            size: meta.size,
            mtime: mtime.unwrap_or(meta.last_modified),
            time_source: match mtime {
                Some(_) => TimeSource::Metadata,
                None => TimeSource::LastModified,
            },
            etag: Some(meta.etag.clone()),
            last_modified: Some(meta.last_modified),
            posix,
        }
    }

    /// A directory: no size, the mount time; `posix` from its marker, when read.
    pub fn directory(mount_time: SystemTime, posix: Option<Posix>) -> Self {
        let mtime = posix.as_ref().and_then(|p| p.mtime);
        ChildFacts {
            kind: EntryKind::Directory,
            size: 0,
            mtime: mtime.unwrap_or(mount_time),
            time_source: match mtime {
                Some(_) => TimeSource::Metadata,
                None => TimeSource::LastModified,
            },
            etag: None,
            last_modified: None,
            posix,
        }
    }
}

impl Inode {
    /// Takes fresh facts (same kind). A `Last-Modified` from a listing does not replace a
    /// time from metadata or `utimes` while the object is the same version, and a listing
    /// (no metadata) leaves the attributes metadata gave that version. A directory's
    /// times and attributes change only with what its marker says (or this mount did).
    fn take(&mut self, facts: ChildFacts, valid_until: Instant) {
        // The same version: the same ETag and, where both are known, Last-Modified.
        let same_version = self.etag == facts.etag
            && match (self.last_modified, facts.last_modified) {
                (Some(a), Some(b)) => whole_seconds(a) == whole_seconds(b),
                _ => true,
            };
        // Facts of our own rewrite carry none: the next listing's is taken as this one's.
        self.last_modified = facts.last_modified;
        self.valid_until = valid_until;
        if facts.kind == EntryKind::Directory {
            let touched = self.time_source == TimeSource::Local && self.mtime >= facts.mtime;
            if facts.posix.is_none() || touched {
                if let Some(posix) = facts.posix {
                    self.posix = Some(Posix {
                        mtime: self.posix.as_ref().and_then(|p| p.mtime),
                        ctime: self.posix.as_ref().and_then(|p| p.ctime),
                        ..posix
                    });
                }
                return;
            }
        }
        let keep_time = facts.time_source == TimeSource::LastModified
            && same_version
            && self.time_source != TimeSource::LastModified;
        if !keep_time {
            self.mtime = facts.mtime;
            self.time_source = facts.time_source;
        }
        match facts.posix {
            Some(posix) => {
                self.ctime = posix.ctime.unwrap_or(self.mtime);
                self.posix = Some(posix);
            }
            None if same_version => {}
            None => {
                self.ctime = self.mtime;
                self.posix = None;
            }
        }
        if !same_version {
            self.link = None;
        }
        self.size = facts.size;
        self.etag = facts.etag;
    }
}

/// The inode table.
#[derive(Debug)]
pub struct InodeTable {
    inodes: HashMap<u64, Inode>,
    children: HashMap<(u64, String), u64>,
    next_ino: u64,
}

impl InodeTable {
    /// A table holding only the root directory, whose keys start with `prefix`.
    pub fn new(prefix: &str, mount_time: SystemTime) -> Self {
        let root = Inode {
            ino: ROOT_INO,
            parent: ROOT_INO,
            name: String::new(),
            kind: EntryKind::Directory,
            key: prefix.to_string(),
            size: 0,
            mtime: mount_time,
            time_source: TimeSource::LastModified,
            ctime: mount_time,
            etag: None,
            last_modified: None,
            posix: None,
            link: None,
            unlinked: false,
            subdirs: None,
            valid_until: far_future(),
            cached_etag: None,
            // The root is never forgotten.
            lookups: 1,
            pins: 0,
        };
        InodeTable {
            inodes: HashMap::from([(ROOT_INO, root)]),
            children: HashMap::new(),
            next_ino: ROOT_INO + 1,
        }
    }

    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.inodes.get(&ino)
    }

    /// The child `name` of `parent`, if the table knows it.
    pub fn child(&self, parent: u64, name: &str) -> Option<&Inode> {
        let ino = self.children.get(&(parent, name.to_string()))?;
        self.inodes.get(ino)
    }

    /// Records what S3 says about `parent/name` and returns its inode number. A child whose
    /// kind changed (a file replaced by a directory) gets a new inode: the old number keeps
    /// pointing at what the kernel knew until it forgets it.
    pub fn upsert_child(
        &mut self,
        parent: u64,
        name: &str,
        facts: ChildFacts,
        valid_until: Instant,
    ) -> Option<u64> {
        let parent_key = match self.inodes.get(&parent) {
            Some(p) if p.kind == EntryKind::Directory => p.key.clone(),
            _ => return None,
        };
        let slot = (parent, name.to_string());
        if let Some(&ino) = self.children.get(&slot) {
            if let Some(existing) = self.inodes.get_mut(&ino) {
                if existing.kind == facts.kind {
                    existing.take(facts, valid_until);
                    return Some(ino);
                }
            }
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let key = match facts.kind {
            EntryKind::Directory => format!("{parent_key}{name}/"),
            EntryKind::File | EntryKind::Symlink => format!("{parent_key}{name}"),
        };
        let ctime = facts
            .posix
            .as_ref()
            .and_then(|p| p.ctime)
            .unwrap_or(facts.mtime);
        self.inodes.insert(
            ino,
            Inode {
                ino,
                parent,
                name: name.to_string(),
                kind: facts.kind,
                key,
                size: facts.size,
                mtime: facts.mtime,
                time_source: facts.time_source,
                ctime,
                etag: facts.etag,
                last_modified: facts.last_modified,
                posix: facts.posix,
                link: None,
                unlinked: false,
                subdirs: None,
                valid_until,
                cached_etag: None,
                lookups: 0,
                pins: 0,
            },
        );
        self.children.insert(slot, ino);
        Some(ino)
    }

    /// A directory was just listed, so it exists: its attributes are fresh until `until`.
    pub fn confirm_directory(&mut self, ino: u64, until: Instant) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            if inode.kind == EntryKind::Directory && inode.valid_until < until {
                inode.valid_until = until;
            }
        }
    }

    /// Updates a known inode's attributes (after a HEAD or an upload).
    pub fn refresh(&mut self, ino: u64, facts: ChildFacts, until: Instant) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.take(facts, until);
        }
    }

    /// The attributes of `ino` changed through this mount (`chmod`, `utimes`, …): `posix`
    /// is what its metadata holds now.
    pub fn set_posix(&mut self, ino: u64, posix: Posix) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            if let Some(t) = posix.mtime {
                inode.mtime = t;
                inode.time_source = TimeSource::Metadata;
            }
            if let Some(t) = posix.ctime {
                inode.ctime = t;
            }
            inode.posix = Some(posix);
        }
    }

    /// `ino` is a symlink to `target` (for the version the table knows).
    pub fn set_link(&mut self, ino: u64, target: Arc<str>) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.link = Some(target);
        }
    }

    /// The content of `ino` changed through this mount: its mtime and ctime are now.
    pub fn touch(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            let now = SystemTime::now();
            inode.mtime = now;
            inode.ctime = now;
        }
    }

    /// The entries of directory `ino` changed through this mount: its times are now.
    pub fn touch_directory(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            let now = SystemTime::now();
            inode.mtime = now;
            inode.ctime = now;
            inode.time_source = TimeSource::Local;
        }
    }

    /// Records that an open pinned `etag`; returns whether the kernel may keep the pages it
    /// cached for this inode (they are of the same version).
    pub fn note_open(&mut self, ino: u64, etag: &str) -> bool {
        let Some(inode) = self.inodes.get_mut(&ino) else {
            return false;
        };
        let same = inode.cached_etag.as_deref() == Some(etag);
        inode.cached_etag = Some(etag.to_string());
        same
    }

    /// Moves the entry `parent/name` to `new_parent/new_name` after a rename in S3, keeping
    /// its inode number (the kernel keeps it too). Keys below a moved directory are
    /// rewritten to the new prefix. An entry that was at the destination loses its name.
    pub fn rename(&mut self, parent: u64, name: &str, new_parent: u64, new_name: &str) {
        let Some(ino) = self.children.remove(&(parent, name.to_string())) else {
            return;
        };
        let Some(new_parent_key) = self.inodes.get(&new_parent).map(|p| p.key.clone()) else {
            return;
        };
        if let Some(replaced) = self.children.remove(&(new_parent, new_name.to_string())) {
            if replaced != ino {
                self.mark_unlinked(replaced);
            }
        }
        let Some(inode) = self.inodes.get_mut(&ino) else {
            return;
        };
        let old_key = inode.key.clone();
        let new_key = match inode.kind {
            EntryKind::Directory => format!("{new_parent_key}{new_name}/"),
            EntryKind::File | EntryKind::Symlink => format!("{new_parent_key}{new_name}"),
        };
        inode.parent = new_parent;
        inode.name = new_name.to_string();
        inode.key = new_key.clone();
        inode.ctime = SystemTime::now();
        self.children
            .insert((new_parent, new_name.to_string()), ino);
        if old_key.ends_with('/') {
            for other in self.inodes.values_mut() {
                if other.ino != ino {
                    if let Some(rest) = other.key.strip_prefix(&old_key) {
                        other.key = format!("{new_key}{rest}");
                    }
                }
            }
        }
    }

    /// Directory `ino` has `n` subdirectories (its listing says so, or it was just made).
    pub fn set_subdirs(&mut self, ino: u64, n: usize) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.subdirs = Some(u32::try_from(n).unwrap_or(u32::MAX));
        }
    }

    /// Directory `ino` gained (`true`) or lost a subdirectory through this mount: its
    /// count follows, when it is known.
    pub fn count_subdir(&mut self, ino: u64, gained: bool) {
        if let Some(n) = self.inodes.get_mut(&ino).and_then(|i| i.subdirs.as_mut()) {
            *n = match gained {
                true => n.saturating_add(1),
                false => n.saturating_sub(1),
            };
        }
    }

    /// Forgets `parent/name` as a name (the object is gone); the inode itself stays until
    /// the kernel forgets it, with no name (`nlink` 0) and its ctime now.
    pub fn unlink_name(&mut self, parent: u64, name: &str) {
        if let Some(ino) = self.children.remove(&(parent, name.to_string())) {
            self.mark_unlinked(ino);
        }
    }

    fn mark_unlinked(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.unlinked = true;
            inode.ctime = SystemTime::now();
        }
    }

    /// The kernel took one more reference on `ino`.
    pub fn remember(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.lookups += 1;
        }
    }

    /// The kernel gave back `n` references on `ino`; the inode goes when none are left.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let Some(inode) = self.inodes.get_mut(&ino) else {
            return;
        };
        inode.lookups = inode.lookups.saturating_sub(n);
        self.drop_if_unheld(ino);
    }

    /// Keeps `ino` in the table until [`InodeTable::unpin`], whatever the kernel forgets.
    pub fn pin(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.pins += 1;
        }
    }

    /// Gives back a [`InodeTable::pin`]; the inode goes if nothing else holds it.
    pub fn unpin(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.pins = inode.pins.saturating_sub(1);
        }
        self.drop_if_unheld(ino);
    }

    fn drop_if_unheld(&mut self, ino: u64) {
        let Some(inode) = self.inodes.get(&ino) else {
            return;
        };
        if ino == ROOT_INO || inode.lookups > 0 || inode.pins > 0 {
            return;
        }
        let slot = (inode.parent, inode.name.clone());
        self.inodes.remove(&ino);
        if self.children.get(&slot) == Some(&ino) {
            self.children.remove(&slot);
        }
    }

    /// Attributes of everything below the directory prefix `prefix` must be asked of S3
    /// again (the objects were rewritten: a copy may have given them new ETags).
    pub fn expire_under(&mut self, prefix: &str) {
        let now = Instant::now();
        for inode in self.inodes.values_mut() {
            if inode.key.starts_with(prefix) && inode.kind != EntryKind::Directory {
                inode.valid_until = now;
            }
        }
    }

    /// Drops entries created by a listing that the kernel never took (count zero), except
    /// `keep`. Keeps the table bounded by what the kernel holds.
    pub fn prune_unreferenced_children(&mut self, parent: u64) {
        let unreferenced: Vec<u64> = self
            .inodes
            .values()
            .filter(|i| i.parent == parent && i.ino != ROOT_INO && i.lookups == 0 && i.pins == 0)
            .map(|i| i.ino)
            .collect();
        for ino in unreferenced {
            self.forget(ino, 0);
        }
    }

    pub fn len(&self) -> usize {
        self.inodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inodes.is_empty()
    }
}

/// `t` in whole seconds: a HEAD's `Last-Modified` (an HTTP date) has no fraction, a
/// listing's may have milliseconds.
fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(100 * 365 * 24 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn file(size: u64) -> ChildFacts {
        ChildFacts {
            kind: EntryKind::File,
            size,
            mtime: UNIX_EPOCH,
            time_source: TimeSource::LastModified,
            etag: Some("\"e\"".into()),
            last_modified: None,
            posix: None,
        }
    }

    fn dir() -> ChildFacts {
        ChildFacts::directory(UNIX_EPOCH, None)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(1)
    }

    /// Children get keys built from their parent's prefix.
    #[test]
    fn child_keys_follow_parent_prefix() {
        let mut t = InodeTable::new("logs/", UNIX_EPOCH);
        let d = t.upsert_child(ROOT_INO, "2026", dir(), soon()).unwrap();
        let f = t.upsert_child(d, "a.txt", file(3), soon()).unwrap();
        assert_eq!(t.get(d).unwrap().key, "logs/2026/");
        assert_eq!(t.get(f).unwrap().key, "logs/2026/a.txt");
    }

    /// The same name keeps its inode number while its kind stays the same.
    #[test]
    fn upsert_keeps_number_for_same_kind() {
        let mut t = InodeTable::new("", UNIX_EPOCH);
        let a = t.upsert_child(ROOT_INO, "a", file(1), soon()).unwrap();
        let b = t.upsert_child(ROOT_INO, "a", file(2), soon()).unwrap();
        assert_eq!(a, b);
        assert_eq!(t.get(a).unwrap().size, 2);
        let c = t.upsert_child(ROOT_INO, "a", dir(), soon()).unwrap();
        assert_ne!(a, c);
    }

    /// A time and attributes from metadata survive listings of the same version, not a
    /// new one.
    #[test]
    fn listing_keeps_metadata_of_the_same_version() {
        let mut t = InodeTable::new("", UNIX_EPOCH);
        let a = t.upsert_child(ROOT_INO, "a", file(1), soon()).unwrap();
        let set = UNIX_EPOCH + Duration::from_secs(1_000);
        t.set_posix(
            a,
            Posix {
                mode: Some(0o100600),
                mtime: Some(set),
                ..Posix::default()
            },
        );
        t.upsert_child(ROOT_INO, "a", file(1), soon()).unwrap();
        assert_eq!(t.get(a).unwrap().mtime, set);
        assert!(t.get(a).unwrap().posix.is_some());
        let mut changed = file(2);
        changed.etag = Some("\"other\"".into());
        t.upsert_child(ROOT_INO, "a", changed, soon()).unwrap();
        assert_eq!(t.get(a).unwrap().mtime, UNIX_EPOCH);
        assert_eq!(t.get(a).unwrap().time_source, TimeSource::LastModified);
        assert!(t.get(a).unwrap().posix.is_none());
    }

    /// An inode goes when the kernel forgets every reference; the root never goes.
    #[test]
    fn forget_drops_inode_at_zero() {
        let mut t = InodeTable::new("", UNIX_EPOCH);
        let a = t.upsert_child(ROOT_INO, "a", file(1), soon()).unwrap();
        t.remember(a);
        t.remember(a);
        t.forget(a, 1);
        assert!(t.get(a).is_some());
        t.forget(a, 1);
        assert!(t.get(a).is_none());
        assert!(t.child(ROOT_INO, "a").is_none());
        t.forget(ROOT_INO, 5);
        assert!(t.get(ROOT_INO).is_some());
    }

    /// A renamed directory keeps its number and moves every key below it.
    #[test]
    fn rename_moves_keys_below_a_directory() {
        let mut t = InodeTable::new("", UNIX_EPOCH);
        let d = t.upsert_child(ROOT_INO, "a", dir(), soon()).unwrap();
        let f = t.upsert_child(d, "f", file(1), soon()).unwrap();
        let e = t.upsert_child(ROOT_INO, "e", dir(), soon()).unwrap();
        t.rename(ROOT_INO, "a", e, "b");
        assert_eq!(t.child(e, "b").unwrap().ino, d);
        assert!(t.child(ROOT_INO, "a").is_none());
        assert_eq!(t.get(d).unwrap().key, "e/b/");
        assert_eq!(t.get(f).unwrap().key, "e/b/f");
    }

    /// Listing leftovers the kernel never took are pruned; referenced ones stay.
    #[test]
    fn prune_drops_only_unreferenced() {
        let mut t = InodeTable::new("", UNIX_EPOCH);
        let a = t.upsert_child(ROOT_INO, "a", file(1), soon()).unwrap();
        let b = t.upsert_child(ROOT_INO, "b", file(1), soon()).unwrap();
        t.remember(b);
        t.prune_unreferenced_children(ROOT_INO);
        assert!(t.get(a).is_none());
        assert!(t.get(b).is_some());
        assert_eq!(t.len(), 2);
    }
}
