//! [`PrivateDir`]: a directory only this user may enter, held open by a descriptor, and the
//! file operations relative to that descriptor that local data (staging copies, cache
//! blocks, sockets' directory) is written with.
//!
//! Why a descriptor: a path is looked up again at every use, so a check made by path says
//! nothing of what the next call by path reaches. A local user who plants
//! `/var/tmp/s3rolefs -> /etc` before the first mount would otherwise have root
//! `chmod 0700 /etc`, or write the bucket's data wherever the link points. Here the last
//! component is created with `mkdir(2)` (which never follows a symlink), opened with
//! `O_NOFOLLOW`, checked with `fstat` on that descriptor, tightened with `fchmod` on it, and
//! every later operation is an `*at` call on it: what was checked is what is used.
//!
//! The rules (DESIGN.md, invariant 11): the directory is a directory, owned by the
//! effective uid, with no group or other permission bits (an own directory with looser
//! bits is brought to 0700; anything else is refused, never changed); files are created
//! 0600 with `O_EXCL`; no operation follows a symlink at the name it is given, and names
//! are single components (no `/`, not `.` or `..`).
//!
//! Parent directories are created the way `mkdir -p` does (mode 0700 each) and followed as
//! they are (`/var/tmp` may be a link on some systems); only the last component is held to
//! the rules above.
//!
//! What it must never do: change anything it did not create or does not own, or act on a
//! path a second time after checking it.

mod sys;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use sys::{
    c_name, checked_name, create_parents, cvt, fstat, is_single_name, is_symlink_at, open_raw,
};

/// The mode of a private directory.
const DIR_MODE: libc::mode_t = 0o700;
/// The mode of a file created in one.
const FILE_MODE: libc::mode_t = 0o600;

/// Why a private directory could not be had. One line each: the path, the cause, the fix.
#[derive(Debug, thiserror::Error)]
pub enum PrivateDirError {
    #[error(
        "cannot create the directory {path}: {source}; create it (mode 0700) or choose another one"
    )]
    Create { path: PathBuf, source: io::Error },
    #[error(
        "cannot open the directory {path}: {source}; check its permissions or choose another one"
    )]
    Open { path: PathBuf, source: io::Error },
    #[error("{path} is a symbolic link, which is never followed; remove it (rm {path}) or choose another directory")]
    Symlink { path: PathBuf },
    #[error("{path} is not a directory; remove it (rm {path}) or choose another directory")]
    NotADirectory { path: PathBuf },
    #[error("the directory {path} belongs to uid {owner}, not to this user (uid {uid}); remove it as root, or choose a directory of your own")]
    NotOwned { path: PathBuf, owner: u32, uid: u32 },
    #[error("cannot make the directory {path} private (mode 0700): {source}; fix its permissions or choose another one")]
    Tighten { path: PathBuf, source: io::Error },
    #[error("{name:?} is not a file name in {path}: a private directory takes single names, without '/' and other than '.' and '..'")]
    BadName { path: PathBuf, name: OsString },
}

impl PrivateDirError {
    /// The directory the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PrivateDirError::Create { path, .. }
            | PrivateDirError::Open { path, .. }
            | PrivateDirError::Symlink { path }
            | PrivateDirError::NotADirectory { path }
            | PrivateDirError::NotOwned { path, .. }
            | PrivateDirError::Tighten { path, .. }
            | PrivateDirError::BadName { path, .. } => path,
        }
    }
}

/// A directory owned by this user, mode 0700, held by an `O_NOFOLLOW` descriptor.
///
/// File operations return [`io::Error`]s as `std::fs` does (callers name the file in their
/// own error types, with [`PrivateDir::path`]); a name that is not a single component is an
/// [`io::ErrorKind::InvalidInput`] error.
#[derive(Debug)]
pub struct PrivateDir {
    fd: OwnedFd,
    /// For messages only: never opened again.
    path: PathBuf,
}

impl PrivateDir {
    /// Creates `path` (and missing parents, as `mkdir -p`, each mode 0700) or takes the
    /// existing directory, after the checks of the module doc.
    pub fn create(path: &Path) -> Result<PrivateDir, PrivateDirError> {
        let name = match path.file_name() {
            Some(name) => name,
            // `/`, or a path ending in `..`: no last component to hold to the rules.
            None => {
                return Err(PrivateDirError::BadName {
                    path: path.to_path_buf(),
                    name: path.as_os_str().to_owned(),
                })
            }
        };
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        create_parents(parent).map_err(|source| PrivateDirError::Create {
            path: parent.to_path_buf(),
            source,
        })?;
        // The parent is followed as it is (see the module doc); the last name is not.
        let parent_fd = open_raw(None, parent.as_os_str(), libc::O_DIRECTORY | libc::O_RDONLY)
            .map_err(|source| PrivateDirError::Open {
                path: parent.to_path_buf(),
                source,
            })?;
        Self::make_at(parent_fd.as_fd(), name, path.to_path_buf())
    }

    /// The private subdirectory `name` (created mode 0700 when missing), under the same
    /// rules, found relative to this directory's descriptor.
    pub fn subdir(&self, name: impl AsRef<OsStr>) -> Result<PrivateDir, PrivateDirError> {
        let name = name.as_ref();
        let path = self.path.join(name);
        if !is_single_name(name) {
            return Err(PrivateDirError::BadName {
                path: self.path.clone(),
                name: name.to_owned(),
            });
        }
        Self::make_at(self.fd.as_fd(), name, path)
    }

    /// `mkdirat` then `openat(O_NOFOLLOW)` then `fstat` and, when needed, `fchmod`.
    fn make_at(
        parent: BorrowedFd<'_>,
        name: &OsStr,
        path: PathBuf,
    ) -> Result<PrivateDir, PrivateDirError> {
        let c_name = c_name(name).map_err(|_| PrivateDirError::BadName {
            path: path.clone(),
            name: name.to_owned(),
        })?;
        // SAFETY: a valid descriptor and a NUL-terminated name; mkdirat touches no memory
        // of ours. mkdir(2) never follows a symlink at the name: a planted link is EEXIST.
        let made = unsafe { libc::mkdirat(parent.as_raw_fd(), c_name.as_ptr(), DIR_MODE) };
        if made != 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(PrivateDirError::Create { path, source: e });
            }
        }
        let fd = open_raw(
            Some(parent),
            name,
            libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_RDONLY,
        )
        .map_err(|e| match e.raw_os_error() {
            // A symlink fails with one or the other (O_DIRECTORY is checked first on Linux).
            Some(libc::ELOOP | libc::ENOTDIR) => {
                if is_symlink_at(parent, &c_name) {
                    PrivateDirError::Symlink { path: path.clone() }
                } else {
                    PrivateDirError::NotADirectory { path: path.clone() }
                }
            }
            _ => PrivateDirError::Open {
                path: path.clone(),
                source: e,
            },
        })?;
        let stat = fstat(fd.as_fd()).map_err(|source| PrivateDirError::Open {
            path: path.clone(),
            source,
        })?;
        if stat.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(PrivateDirError::NotADirectory { path });
        }
        let uid = euid();
        if stat.st_uid != uid {
            return Err(PrivateDirError::NotOwned {
                path,
                owner: stat.st_uid,
                uid,
            });
        }
        // Also after a fresh mkdir: the umask may have taken bits off (never added any).
        if stat.st_mode & 0o7777 != DIR_MODE {
            // SAFETY: fchmod on a descriptor we own; no memory is passed.
            if unsafe { libc::fchmod(fd.as_raw_fd(), DIR_MODE) } != 0 {
                return Err(PrivateDirError::Tighten {
                    path,
                    source: io::Error::last_os_error(),
                });
            }
        }
        Ok(PrivateDir { fd, path })
    }

    /// The directory's path, for messages (operations go through the descriptor).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the file `name`, mode 0600, open for reading and writing; an existing name
    /// (a symlink included) is [`io::ErrorKind::AlreadyExists`].
    pub fn create_new(&self, name: impl AsRef<OsStr>) -> io::Result<File> {
        self.open(
            name,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
        )
    }

    /// Opens `name` with `flags` (`libc::O_*`), never following a symlink at it; a file it
    /// creates is mode 0600.
    pub fn open(&self, name: impl AsRef<OsStr>, flags: libc::c_int) -> io::Result<File> {
        let name = checked_name(name.as_ref())?;
        open_raw(Some(self.fd.as_fd()), name, flags | libc::O_NOFOLLOW).map(File::from)
    }

    /// Removes the file `name` (a symlink is removed itself, never its target).
    pub fn remove(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        let name = c_name(checked_name(name.as_ref())?)?;
        // SAFETY: a valid descriptor and a NUL-terminated name.
        let removed = unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), 0) };
        cvt(removed)
    }

    /// Renames `from` to `to` within this directory, replacing `to` atomically (the
    /// write-then-rename of a file that must appear whole; [`PrivateDir::sync`] makes the
    /// rename itself durable).
    pub fn rename(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> io::Result<()> {
        let from = c_name(checked_name(from.as_ref())?)?;
        let to = c_name(checked_name(to.as_ref())?)?;
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid descriptors and NUL-terminated names.
        let renamed = unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) };
        cvt(renamed)
    }

    /// Renames `from` to `to` within this directory unless `to` exists
    /// ([`io::ErrorKind::AlreadyExists`] then, and nothing changes).
    pub fn rename_noreplace(
        &self,
        from: impl AsRef<OsStr>,
        to: impl AsRef<OsStr>,
    ) -> io::Result<()> {
        let from = c_name(checked_name(from.as_ref())?)?;
        let to = c_name(checked_name(to.as_ref())?)?;
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid descriptors and NUL-terminated names.
        let renamed =
            unsafe { libc::renameat2(fd, from.as_ptr(), fd, to.as_ptr(), libc::RENAME_NOREPLACE) };
        cvt(renamed)
    }

    /// The names in the directory, without `.` and `..`, in no particular order.
    pub fn list(&self) -> io::Result<Vec<OsString>> {
        sys::names(self.fd.as_fd())
    }

    /// Flushes the directory itself to disk: after it, the names created, removed or
    /// renamed so far survive a crash.
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: fsync on a descriptor we own.
        cvt(unsafe { libc::fsync(self.fd.as_raw_fd()) })
    }
}

impl AsFd for PrivateDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The uid this process acts as.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests;
