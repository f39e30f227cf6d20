//! Turning an S3 listing into directory entries: the S3 ↔ POSIX rules for names.
//!
//! A directory is a common prefix (`a/b/` has keys under it) or a zero-byte marker `a/b/`;
//! with delimiter `/`, S3 reports both as common prefixes. The rules applied here:
//!
//! - A key that cannot be a file name — an empty component (`a//b`), `.` or `..`, or a NUL
//!   byte — is hidden, and logged once per key. (Names up to S3's whole key length are
//!   shown: [`NAME_MAX`].)
//! - When both a file `a` and a directory `a/` exist, the directory wins; the file is hidden.
//! - The directory's own marker (`prefix` itself) is not an entry.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::s3::{Listing, ObjectMeta};

/// Longest name of one path component: what FUSE carries (`FUSE_NAME_MAX`), and no more
/// than an S3 key holds. `statfs` states it. Ext4's 255 would hide keys that s3fs shows and
/// creates.
pub const NAME_MAX: usize = 1024;

/// The longest S3 key, in bytes.
pub const KEY_MAX: usize = 1024;

/// What a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    /// An object whose stored mode is `S_IFLNK`: its body is the target (s3fs's format).
    /// Listings cannot tell it from a file; its metadata does.
    Symlink,
}

/// One entry of a listed directory, before it is given an inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedEntry {
    pub name: String,
    pub kind: EntryKind,
    /// For files: size, ETag and mtime as the listing gave them.
    pub object: Option<ObjectMeta>,
}

/// True when `name` can be one path component on Linux.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= NAME_MAX
        && !name.contains('\0')
        && !name.contains('/')
}

/// Checks `name` for a new entry in the directory whose keys start with `parent_key`:
/// `ENAMETOOLONG` beyond [`NAME_MAX`] or when its key (a directory's with its `/`) would
/// pass S3's [`KEY_MAX`]; `EINVAL` for a name no file can have.
pub fn check_new_name(parent_key: &str, name: &str) -> Result<(), super::FsError> {
    if name.len() > NAME_MAX || parent_key.len() + name.len() + 1 > KEY_MAX {
        return Err(super::FsError::NameTooLong);
    }
    if !is_valid_name(name) {
        return Err(super::FsError::InvalidName);
    }
    Ok(())
}

/// The entries of the directory whose keys start with `prefix` (`""` or ending in `/`),
/// sorted by name.
pub fn entries_from_listing(prefix: &str, listing: Listing) -> Vec<ListedEntry> {
    let mut dirs: Vec<ListedEntry> = Vec::new();
    let mut dir_names: HashSet<String> = HashSet::new();
    for common in &listing.common_prefixes {
        let Some(rest) = common.strip_prefix(prefix) else {
            continue;
        };
        let name = rest.strip_suffix('/').unwrap_or(rest);
        if !is_valid_name(name) {
            hidden_key(common, "its name cannot be a directory name");
            continue;
        }
        if dir_names.insert(name.to_string()) {
            dirs.push(ListedEntry {
                name: name.to_string(),
                kind: EntryKind::Directory,
                object: None,
            });
        }
    }
    let mut entries = dirs;
    for object in listing.objects {
        let Some(name) = object.key.strip_prefix(prefix) else {
            continue;
        };
        if name.is_empty() {
            continue; // the directory's own marker
        }
        if !is_valid_name(name) {
            hidden_key(&object.key, "its name cannot be a file name");
            continue;
        }
        if dir_names.contains(name) {
            hidden_key(&object.key, "a directory of the same name shadows it");
            continue;
        }
        entries.push(ListedEntry {
            name: name.to_string(),
            kind: EntryKind::File,
            object: Some(object),
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries.dedup_by(|a, b| a.name == b.name);
    entries
}

/// Logs once per key that it is hidden and why, so a user can find out where a key went
/// without the log repeating it on every listing.
fn hidden_key(key: &str, why: &str) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let first = match SEEN.lock() {
        Ok(mut guard) => {
            let seen = guard.get_or_insert_with(HashSet::new);
            // Bounded: after many distinct hidden keys, stop remembering (and stop logging).
            seen.len() < 10_000 && seen.insert(key.to_string())
        }
        Err(_) => false,
    };
    if first {
        log::warn!("key {key:?} is hidden: {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn obj(key: &str, size: u64) -> ObjectMeta {
        ObjectMeta {
            key: key.into(),
            size,
            etag: "\"e\"".into(),
            last_modified: UNIX_EPOCH,
            metadata: None,
            version_id: None,
        }
    }

    fn names(entries: &[ListedEntry]) -> Vec<(&str, EntryKind)> {
        entries.iter().map(|e| (e.name.as_str(), e.kind)).collect()
    }

    /// Files and common prefixes become files and directories, sorted.
    #[test]
    fn files_and_prefixes_become_entries() {
        let listing = Listing {
            objects: vec![obj("p/b.txt", 3), obj("p/a.txt", 1)],
            common_prefixes: vec!["p/sub/".into()],
        };
        let e = entries_from_listing("p/", listing);
        assert_eq!(
            names(&e),
            vec![
                ("a.txt", EntryKind::File),
                ("b.txt", EntryKind::File),
                ("sub", EntryKind::Directory)
            ]
        );
    }

    /// A directory shadows a file of the same name.
    #[test]
    fn directory_shadows_file_of_same_name() {
        let listing = Listing {
            objects: vec![obj("a", 1)],
            common_prefixes: vec!["a/".into()],
        };
        let e = entries_from_listing("", listing);
        assert_eq!(names(&e), vec![("a", EntryKind::Directory)]);
    }

    /// The directory's own marker, empty components and dot names are hidden.
    #[test]
    fn marker_and_invalid_names_are_hidden() {
        let listing = Listing {
            objects: vec![obj("d/", 0), obj("d/.", 1), obj("d/ok", 1)],
            common_prefixes: vec!["d//".into(), "d/../".into()],
        };
        let e = entries_from_listing("d/", listing);
        assert_eq!(names(&e), vec![("ok", EntryKind::File)]);
    }

    /// Names longer than ext4's 255 bytes are shown (S3 keys reach 1,024 bytes, and s3fs
    /// shows them); new names are refused only past the key's limit.
    #[test]
    fn long_names_are_shown_and_refused_past_the_key_limit() {
        let long = "x".repeat(256);
        let listing = Listing {
            objects: vec![obj(&long, 1), obj("short", 1)],
            common_prefixes: vec![],
        };
        assert_eq!(entries_from_listing("", listing).len(), 2);
        assert!(check_new_name("", &"y".repeat(1000)).is_ok());
        assert!(matches!(
            check_new_name("dir/", &"y".repeat(1020)),
            Err(crate::fs::FsError::NameTooLong)
        ));
        assert!(matches!(
            check_new_name("", "a/b"),
            Err(crate::fs::FsError::InvalidName)
        ));
    }
}
