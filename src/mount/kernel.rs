//! The kernel mount itself, for root: `mount(2)` with the filesystem type
//! `fuse.s3rolefs`, so `/proc/mounts`, `findmnt -t fuse.s3rolefs`, `df -t` and systemd see
//! what the mount is. (fuser's own root path mounts as plain `fuse`; for other users it
//! goes through `fusermount3`, which sets the subtype itself, and we use fuser there.)

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// True when this process may call mount(2) itself.
pub fn can_mount_directly() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn cstring(text: &[u8]) -> io::Result<CString> {
    CString::new(text).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Opens `/dev/fuse` and mounts it on `mountpoint` as `fuse.s3rolefs` named `source`.
/// Returns the device descriptor the FUSE session reads requests from.
pub fn mount_fuse(
    mountpoint: &Path,
    source: &str,
    read_only: bool,
    allow_other: bool,
) -> io::Result<OwnedFd> {
    let device = cstring(b"/dev/fuse")?;
    // SAFETY: a valid NUL-terminated path; the result is checked before use.
    let raw = unsafe { libc::open(device.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mode = std::fs::metadata(mountpoint)?.permissions().mode();
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut data = format!(
        "fd={},rootmode={:o},user_id={uid},group_id={gid},default_permissions",
        fd.as_raw_fd(),
        mode & libc::S_IFMT
    );
    if allow_other {
        data.push_str(",allow_other");
    }
    let mut flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOATIME;
    if read_only {
        flags |= libc::MS_RDONLY;
    }
    let target = cstring(mountpoint.as_os_str().as_bytes())?;
    let source = cstring(source.as_bytes())?;
    let fstype = cstring(b"fuse.s3rolefs")?;
    let data = cstring(data.as_bytes())?;
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Unmounts `mountpoint` (root). When a process still uses the mount and `lazy_if_busy`,
/// detaches it instead: it disappears from the tree now and goes away once released.
pub fn unmount(mountpoint: &Path, lazy_if_busy: bool) -> io::Result<()> {
    let target = cstring(mountpoint.as_os_str().as_bytes())?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(target.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if lazy_if_busy && err.raw_os_error() == Some(libc::EBUSY) {
        log::warn!(
            "{} is busy; detaching it (it goes away once no process uses it)",
            mountpoint.display()
        );
        // SAFETY: as above.
        if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } == 0 {
            return Ok(());
        }
        return Err(io::Error::last_os_error());
    }
    Err(err)
}

/// How far the kernel reads ahead of a program reading a file of the mount, in KiB: one
/// FUSE request of the largest size (`max_pages` 256 × 4 KiB), so a sequential reader always
/// has the next megabyte on its way while it copies the current one. The kernel's default
/// for FUSE is 128 KiB — eight times the requests, and the reader waits between them;
/// measured 1 MiB: +20 % on a sequential read, more reads worse (page-cache churn).
pub const READ_AHEAD_KIB: u32 = 1024;

/// Sets the read-ahead of the FUSE mount on `device` (`major:minor`). Root only (sysfs).
/// Must run after the FUSE handshake, which lowers it to what the kernel offered then.
pub fn set_read_ahead(device: &str, kib: u32) -> io::Result<()> {
    std::fs::write(
        format!("/sys/class/bdi/{device}/read_ahead_kb"),
        kib.to_string(),
    )
}
