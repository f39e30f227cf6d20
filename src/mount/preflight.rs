//! Checks made before anything is mounted, so that a mount that cannot work fails with a
//! clear message and leaves nothing behind: FUSE available (device, fusermount3,
//! `user_allow_other`), mount point usable. `s3rolefs check` runs the same checks.

use std::path::{Path, PathBuf};

use super::error::MountError;

/// What FUSE needs before a mount: `/dev/fuse` present (and openable, for root, who opens
/// it); `fusermount3` when we are not root (root mounts with mount(2) directly); and, for `allow_other` by a user
/// other than root, `user_allow_other` in `/etc/fuse.conf` (fusermount3 refuses it
/// otherwise). Returns what was found, for `s3rolefs check`.
pub fn check_fuse_available(allow_other: bool) -> Result<FuseSetup, MountError> {
    let device = Path::new(FUSE_DEVICE);
    if !device.exists() {
        return Err(MountError::NoFuseDevice);
    }
    // SAFETY: geteuid cannot fail and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    // Root opens the device itself (others go through the setuid fusermount3, which opens
    // it for them): a container without the device cgroup permission, or a read-only
    // bind, fails here rather than halfway.
    if root {
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(device)
        {
            return Err(MountError::FuseDeviceUnusable(e.to_string()));
        }
    }
    let fusermount = find_on_path("fusermount3");
    if !root && fusermount.is_none() {
        return Err(MountError::NoFusermount);
    }
    if !root && !open_to_this_user(device) {
        let mode = std::fs::metadata(device).map_or(0, |m| {
            std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777
        });
        return Err(MountError::FuseDeviceClosedToUsers { mode });
    }
    if allow_other && !root && !user_allow_other(FUSE_CONF) {
        return Err(MountError::AllowOtherNotPermitted);
    }
    Ok(FuseSetup { root, fusermount })
}

/// Whether this user may open `device` for reading and writing (as fusermount3 does for it:
/// a container's `/dev` often has `/dev/fuse` as `crw-------`).
fn open_to_this_user(device: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(device.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path; access(2) only reads it.
    unsafe { libc::access(path.as_ptr(), libc::R_OK | libc::W_OK) == 0 }
}

/// The FUSE device.
const FUSE_DEVICE: &str = "/dev/fuse";
/// fusermount3's configuration: `user_allow_other` lives there.
const FUSE_CONF: &str = "/etc/fuse.conf";

/// How this machine will mount.
#[derive(Debug)]
pub struct FuseSetup {
    /// Root mounts with mount(2) itself.
    pub root: bool,
    pub fusermount: Option<PathBuf>,
}

/// Whether `conf` has an uncommented `user_allow_other` line.
fn user_allow_other(conf: &str) -> bool {
    std::fs::read_to_string(conf).is_ok_and(|text| {
        text.lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .any(|l| l == "user_allow_other")
    })
}

/// The mount point exists, is a directory, and is not already a mount point. Returns its
/// canonical path.
pub fn check_mountpoint(path: &Path) -> Result<PathBuf, MountError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MountError::MountpointMissing(path.to_path_buf()))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            // A FUSE mount whose daemon died: it is still mounted.
            return Err(MountError::AlreadyMounted {
                path: path.to_path_buf(),
                fstype: "a FUSE mount whose process is gone".into(),
            });
        }
        Err(e) => {
            return Err(MountError::MountFailed {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    if !meta.is_dir() {
        return Err(MountError::MountpointNotDirectory(path.to_path_buf()));
    }
    let canonical = path.canonicalize().map_err(|e| MountError::MountFailed {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if let Some(fstype) = mount_type_of(&canonical) {
        return Err(MountError::AlreadyMounted {
            path: canonical,
            fstype,
        });
    }
    Ok(canonical)
}

/// The filesystem type mounted exactly at `path`, from `/proc/self/mountinfo`.
pub fn mount_type_of(path: &Path) -> Option<String> {
    mount_entry(path).map(|(_, fstype)| fstype)
}

/// The device (`major:minor`) of the mount exactly at `path`; for FUSE, the name of its
/// entry in `/sys/class/bdi`.
pub fn mount_device_of(path: &Path) -> Option<String> {
    mount_entry(path).map(|(device, _)| device)
}

/// The device and filesystem type of the newest mount exactly at `path`.
fn mount_entry(path: &Path) -> Option<(String, String)> {
    let info = std::fs::read_to_string(MOUNTINFO).ok()?;
    parse_mountinfo(&info)
        .into_iter()
        .rev()
        .find(|m| m.mountpoint == path)
        .map(|m| (m.device, m.fstype))
}

/// This process's view of the mounts.
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// One mount, as `/proc/self/mountinfo` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    pub mountpoint: PathBuf,
    /// `major:minor`.
    pub device: String,
    /// `fuse.s3rolefs` for a mount of ours (`fuse` where the subtype was not kept).
    pub fstype: String,
    /// What was mounted: `s3rolefs:BUCKET[:PREFIX]` for ours.
    pub source: String,
}

/// Every mount of type `fstype`, oldest first (empty if mountinfo cannot be read).
pub fn mounts_of_type(fstype: &str) -> Vec<MountEntry> {
    let info = std::fs::read_to_string(MOUNTINFO).unwrap_or_default();
    parse_mountinfo(&info)
        .into_iter()
        .filter(|m| m.fstype == fstype)
        .collect()
}

/// The entries of a mountinfo text; malformed lines are skipped.
fn parse_mountinfo(info: &str) -> Vec<MountEntry> {
    info.lines()
        .filter_map(|line| {
            // Fields: id parent major:minor root mountpoint options [optional...] - fstype source superopts
            let (left, right) = line.split_once(" - ")?;
            let mut fields = left.split(' ');
            let device = fields.nth(2)?;
            let mountpoint = fields.nth(1)?;
            let mut rest = right.split(' ');
            let fstype = rest.next()?;
            let source = rest.next().unwrap_or_default();
            Some(MountEntry {
                mountpoint: PathBuf::from(unescape_mountinfo(mountpoint)),
                device: device.to_string(),
                fstype: fstype.to_string(),
                source: unescape_mountinfo(source),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = u16::from(d[0] - b'0') * 64
                    + u16::from(d[1] - b'0') * 8
                    + u16::from(d[2] - b'0');
                out.push(value as u8);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first `name` on `$PATH` (and the sbin directories, which sudo-less PATHs miss).
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Escaped spaces in mountinfo paths are decoded.
    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/mnt/my\\040data"), "/mnt/my data");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    /// A missing mount point is named with the fix.
    #[test]
    fn missing_mountpoint_is_reported() {
        let err = check_mountpoint(Path::new("/nonexistent/s3rolefs-test")).unwrap_err();
        assert!(err.to_string().contains("does not exist"));
    }

    /// A regular file is not a mount point.
    #[test]
    fn file_is_not_a_mountpoint() {
        let err = check_mountpoint(Path::new("/proc/self/status")).unwrap_err();
        assert!(
            matches!(err, MountError::MountpointNotDirectory(_)),
            "{err}"
        );
    }

    /// Only an uncommented `user_allow_other` line counts.
    #[test]
    fn user_allow_other_must_be_uncommented() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("fuse.conf");
        let conf_str = conf.to_str().unwrap();
        std::fs::write(&conf, "# user_allow_other\nmount_max = 1000\n").unwrap();
        assert!(!user_allow_other(conf_str));
        std::fs::write(
            &conf,
            "mount_max = 1000\n  user_allow_other  # for s3rolefs\n",
        )
        .unwrap();
        assert!(user_allow_other(conf_str));
        assert!(!user_allow_other("/nonexistent/fuse.conf"));
    }

    /// Every line gives its mount point, device, type and source, escapes decoded.
    #[test]
    fn mountinfo_lines_are_parsed() {
        let info = "22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n\
                    90 29 0:52 / /mnt/my\\040data rw,nosuid,nodev - fuse.s3rolefs s3rolefs:bkt:logs/ rw\n\
                    not a mountinfo line\n";
        let mounts = parse_mountinfo(info);
        assert_eq!(mounts.len(), 2);
        assert_eq!(
            mounts[1],
            MountEntry {
                mountpoint: PathBuf::from("/mnt/my data"),
                device: "0:52".into(),
                fstype: "fuse.s3rolefs".into(),
                source: "s3rolefs:bkt:logs/".into(),
            }
        );
    }

    /// `/` is a mount point of something.
    #[test]
    fn root_is_a_mount_point() {
        assert!(mount_type_of(Path::new("/")).is_some());
    }
}
