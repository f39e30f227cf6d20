//! POSIX attributes kept as object metadata, in the format s3fs-fuse writes, so a bucket
//! written by s3fs reads the same here and the other way round:
//!
//! | header | holds |
//! |---|---|
//! | `x-amz-meta-mode` | the whole `st_mode` in decimal, type bits included (`33188` = a regular file 0644) |
//! | `x-amz-meta-uid`, `-gid` | decimal ids |
//! | `x-amz-meta-mtime`, `-ctime`, `-atime` | epoch seconds, `SEC` or `SEC.NNNNNNNNN` |
//! | `x-amz-meta-xattr` | the `user.` extended attributes (see `xattr`) |
//!
//! s3sync's `x-amz-meta-permissions`/`-owner`/`-group` are read too, when s3fs's are absent.
//!
//! **One header, two bases.** rclone (`--metadata`) writes `x-amz-meta-mode` in *octal*,
//! without a leading 0 (`100644`, `120777`). The rule that tells them apart, from the value
//! alone ([`parse_mode`]), in order:
//! 1. a leading `0` is octal (as s3fs itself reads it, with `strtoll(s, 0)`);
//! 2. a digit 8 or 9 is decimal (`33188`);
//! 3. six digits or more are octal: a 16-bit mode is at most 65535 in decimal, and
//!    rclone's files, directories and links are six octal digits;
//! 4. five digits: whichever reading names a file type; decimal when both do (s3fs's
//!    symlink `41471` is also an octal directory with the sticky bit; rclone never writes
//!    five digits for an object);
//! 5. four digits or fewer are decimal: s3fs's modes without type bits (`493` = 0755).
//!
//! What this reads differently from its writer: rclone's `666`/`444` from a Windows
//! source (taken as decimal), and a five-digit octal value that is also a valid decimal
//! mode (taken as decimal).

use std::sync::Arc;
use std::time::SystemTime;

use super::dir::EntryKind;
use crate::s3::Metadata;

/// `S_IFMT` and the file types, as `u32` (libc's are `mode_t`).
pub const S_IFMT: u32 = libc::S_IFMT;
pub const S_IFREG: u32 = libc::S_IFREG;
pub const S_IFDIR: u32 = libc::S_IFDIR;
pub const S_IFLNK: u32 = libc::S_IFLNK;
/// Permission bits with setuid, setgid and sticky.
pub const PERM_BITS: u32 = 0o7777;

/// What the metadata says of an inode's POSIX attributes; `None` where it says nothing
/// (the mount's defaults apply).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Posix {
    /// The whole `st_mode`; its type bits are 0 when the stored value had none.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: Option<SystemTime>,
    pub ctime: Option<SystemTime>,
    pub atime: Option<SystemTime>,
    /// `x-amz-meta-xattr` as stored (decoded on demand, see `xattr`).
    pub xattr: Option<Arc<str>>,
}

impl Posix {
    /// The attributes `metadata` holds.
    pub fn from_metadata(metadata: &Metadata) -> Posix {
        let user = &metadata.user;
        let number = |name: &str| user.get(name).and_then(|v| v.trim().parse::<u32>().ok());
        let mode = user
            .get("mode")
            .and_then(|v| parse_mode(v))
            .or_else(|| user.get("permissions").and_then(|v| parse_mode(v)));
        Posix {
            mode,
            uid: number("uid").or_else(|| number("owner")),
            gid: number("gid").or_else(|| number("group")),
            mtime: metadata.time("mtime"),
            ctime: metadata.time("ctime"),
            atime: metadata.time("atime"),
            xattr: user.get("xattr").map(|v| Arc::from(v.as_str())),
        }
    }

    /// Writes these attributes into `metadata`, leaving every other header as it is.
    /// Attributes that are `None` are not written (a header already there stays).
    pub fn store(&self, metadata: &mut Metadata) {
        if let Some(mode) = self.mode {
            metadata.user.insert("mode".into(), mode.to_string());
            // s3sync's header would contradict the new mode: s3fs's is the one kept.
            metadata.user.remove("permissions");
        }
        if let Some(uid) = self.uid {
            metadata.user.insert("uid".into(), uid.to_string());
            metadata.user.remove("owner");
        }
        if let Some(gid) = self.gid {
            metadata.user.insert("gid".into(), gid.to_string());
            metadata.user.remove("group");
        }
        for (name, time) in [
            ("mtime", self.mtime),
            ("ctime", self.ctime),
            ("atime", self.atime),
        ] {
            if let Some(t) = time {
                metadata.set_time(name, t);
            }
        }
        match &self.xattr {
            Some(x) => {
                metadata.user.insert("xattr".into(), x.to_string());
            }
            None => {
                metadata.user.remove("xattr");
            }
        }
    }

    /// The file type the stored mode names, if it names one this filesystem shows.
    pub fn kind(&self) -> Option<EntryKind> {
        match self.mode? & S_IFMT {
            S_IFREG => Some(EntryKind::File),
            S_IFDIR => Some(EntryKind::Directory),
            S_IFLNK => Some(EntryKind::Symlink),
            _ => None,
        }
    }

    /// The permission bits, if stored.
    pub fn perm(&self) -> Option<u16> {
        self.mode.map(|m| (m & PERM_BITS) as u16)
    }
}

/// `x-amz-meta-mode` as an `st_mode` (see the module's rule for the two bases); `None`
/// for a value that is no mode at all.
pub fn parse_mode(value: &str) -> Option<u32> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let decimal = value.parse::<u32>().ok().filter(|d| *d <= 0o177777);
    let octal = u32::from_str_radix(value, 8)
        .ok()
        .filter(|o| *o <= 0o177777);
    let valid = |m: &u32| m & S_IFMT == 0 || known_type(*m);
    let chosen = if value.len() > 1 && value.starts_with('0') {
        octal
    } else if value.contains(['8', '9']) {
        decimal
    } else if value.len() >= 6 {
        octal
    } else if value.len() == 5 {
        match (
            decimal.filter(|d| known_type(*d)),
            octal.filter(|o| known_type(*o)),
        ) {
            (Some(d), _) => Some(d),
            (None, Some(o)) => Some(o),
            (None, None) => decimal,
        }
    } else {
        decimal
    };
    chosen.filter(valid)
}

fn known_type(mode: u32) -> bool {
    matches!(
        mode & S_IFMT,
        S_IFREG
            | S_IFDIR
            | S_IFLNK
            | libc::S_IFIFO
            | libc::S_IFSOCK
            | libc::S_IFCHR
            | libc::S_IFBLK
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// s3fs's decimal modes, rclone's octal ones, and bare permissions.
    #[test]
    fn modes_in_both_bases() {
        assert_eq!(parse_mode("33188"), Some(0o100644)); // s3fs, file 0644
        assert_eq!(parse_mode("16877"), Some(0o040755)); // s3fs, directory 0755
        assert_eq!(parse_mode("41471"), Some(0o120777)); // s3fs, symlink
        assert_eq!(parse_mode("100644"), Some(0o100644)); // rclone, octal with type
        assert_eq!(parse_mode("120777"), Some(0o120777)); // rclone, symlink
        assert_eq!(parse_mode("40755"), Some(0o040755)); // octal directory: not a decimal mode
        assert_eq!(parse_mode("0755"), Some(0o755)); // leading zero: octal
        assert_eq!(parse_mode("493"), Some(0o755)); // s3fs mkdir, no type bits
        assert_eq!(parse_mode("420"), Some(0o644));
        assert_eq!(parse_mode(""), None);
        assert_eq!(parse_mode("rw-r--r--"), None);
        assert_eq!(parse_mode("99999999"), None);
    }

    /// What `store` writes reads back the same, and every other header stays.
    #[test]
    fn stored_attributes_read_back() {
        let mut metadata = Metadata::default();
        metadata.user.insert("other".into(), "kept".into());
        metadata.user.insert("permissions".into(), "420".into());
        let posix = Posix {
            mode: Some(0o100600),
            uid: Some(1000),
            gid: Some(100),
            mtime: Some(UNIX_EPOCH + Duration::new(1_700_000_000, 5)),
            ctime: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_001)),
            atime: None,
            xattr: Some(Arc::from("%7B%7D")),
        };
        posix.store(&mut metadata);
        assert_eq!(metadata.user["mode"], "33152");
        assert_eq!(metadata.user["other"], "kept");
        assert!(!metadata.user.contains_key("permissions"));
        assert_eq!(Posix::from_metadata(&metadata), posix);
        assert_eq!(posix.kind(), Some(EntryKind::File));
        assert_eq!(posix.perm(), Some(0o600));
    }

    /// s3sync's headers count when s3fs's are absent.
    #[test]
    fn s3sync_headers() {
        let mut metadata = Metadata::default();
        metadata.user.insert("permissions".into(), "33261".into());
        metadata.user.insert("owner".into(), "7".into());
        metadata.user.insert("group".into(), "8".into());
        let posix = Posix::from_metadata(&metadata);
        assert_eq!(
            (posix.mode, posix.uid, posix.gid),
            (Some(0o100755), Some(7), Some(8))
        );
    }
}
