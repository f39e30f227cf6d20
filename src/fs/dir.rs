//! Turning an S3 listing into directory entries: the S3 ↔ POSIX rules for names.
//!
//! A directory is a common prefix (`a/b/` has keys under it) or a zero-byte marker `a/b/`;
//! with delimiter `/`, S3 reports both as common prefixes. The rules applied here:
//!
//! - A key that cannot be a file name — an empty component (`a//b`), `.` or `..`, a name
//!   longer than 255 bytes, or a NUL byte — is hidden, and logged once per key.
//! - When both a file `a` and a directory `a/` exist, the directory wins; the file is hidden.
//! - The directory's own marker (`prefix` itself) is not an entry.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::s3::{Listing, ObjectMeta};

/// Longest name Linux accepts for one path component.
pub const NAME_MAX: usize = 255;

/// What a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
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

/// Attributes of a synthetic directory: S3 has none, so the mount time stands in.
pub fn directory_mtime(mount_time: SystemTime) -> SystemTime {
    mount_time
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
            mtime: None,
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

    /// Names longer than 255 bytes are hidden.
    #[test]
    fn overlong_names_are_hidden() {
        let long = "x".repeat(256);
        let listing = Listing {
            objects: vec![obj(&long, 1), obj("short", 1)],
            common_prefixes: vec![],
        };
        assert_eq!(entries_from_listing("", listing).len(), 1);
    }
}
