//! The system calls behind [`PrivateDir`](super::PrivateDir), each wrapped once: `openat`
//! with `O_CLOEXEC` and mode 0600, `fstat`, `fstatat` without following, `readdir` on a
//! descriptor, and the checks of a single file name.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{DIR_MODE, FILE_MODE};

/// Creates the missing directories of `dir`, each mode 0700, as `mkdir -p` does.
pub(super) fn create_parents(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// True for one path component: not empty, no `/`, not `.` or `..` (NUL is refused later).
pub(super) fn is_single_name(name: &OsStr) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.as_bytes().contains(&b'/')
}

pub(super) fn checked_name(name: &OsStr) -> io::Result<&OsStr> {
    if is_single_name(name) {
        Ok(name)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a single file name"),
        ))
    }
}

pub(super) fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} holds a NUL byte"),
        )
    })
}

/// `openat(at, name, flags | O_CLOEXEC, 0600)`; `at: None` is the working directory.
pub(super) fn open_raw(
    at: Option<BorrowedFd<'_>>,
    name: &OsStr,
    flags: libc::c_int,
) -> io::Result<OwnedFd> {
    let c_name = c_name(name)?;
    let at = at.map_or(libc::AT_FDCWD, |fd| fd.as_raw_fd());
    // SAFETY: a valid descriptor (or AT_FDCWD) and a NUL-terminated name; the mode is
    // passed as the variadic argument openat reads when O_CREAT is set.
    let fd = unsafe {
        libc::openat(
            at,
            c_name.as_ptr(),
            flags | libc::O_CLOEXEC,
            libc::c_uint::from(FILE_MODE),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(super) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills the struct on success, and only then is it read.
    unsafe {
        if libc::fstat(fd.as_raw_fd(), stat.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stat.assume_init())
    }
}

/// Whether `name` under `parent` is a symlink (for the message only: nothing is decided on
/// it).
pub(super) fn is_symlink_at(parent: BorrowedFd<'_>, name: &CString) -> bool {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstatat fills the struct on success, and only then is it read.
    unsafe {
        libc::fstatat(
            parent.as_raw_fd(),
            name.as_ptr(),
            stat.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        ) == 0
            && stat.assume_init().st_mode & libc::S_IFMT == libc::S_IFLNK
    }
}

pub(super) fn cvt(result: libc::c_int) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The names in the directory `fd` without `.` and `..` (readdir on a descriptor of its
/// own: readdir moves the offset, and closedir closes it).
pub(super) fn names(fd: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let own = open_raw(
        Some(fd),
        OsStr::new("."),
        libc::O_DIRECTORY | libc::O_RDONLY,
    )?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(own);
    // SAFETY: `raw` is an open directory descriptor that fdopendir takes over.
    let dir = unsafe { libc::fdopendir(raw) };
    if dir.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `raw` is still ours to close.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
        return Err(e);
    }
    let mut names = Vec::new();
    let result = loop {
        // readdir reports an error only through errno, so clear it first.
        // SAFETY: __errno_location points at this thread's errno.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `dir` is a valid DIR* until closedir below.
        let entry = unsafe { libc::readdir(dir) };
        if entry.is_null() {
            let e = io::Error::last_os_error();
            break match e.raw_os_error() {
                Some(0) | None => Ok(()),
                Some(_) => Err(e),
            };
        }
        // SAFETY: d_name is a NUL-terminated name inside the entry readdir returned,
        // valid until the next readdir on `dir`; it is copied at once.
        let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) };
        let name = OsStr::from_bytes(name.to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_owned());
        }
    };
    // SAFETY: `dir` came from fdopendir and is closed once (its descriptor with it).
    unsafe { libc::closedir(dir) };
    result.map(|()| names)
}
