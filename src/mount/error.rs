//! `MountError`: why a mount did not happen, as one line that names the cause and the fix.

use std::path::PathBuf;

use crate::config::ConfigError;

/// Why `mount` (or `unmount`) failed. Each message names the cause and what to do.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("mount point {0} does not exist; create it first (mkdir -p {0})")]
    MountpointMissing(PathBuf),
    #[error("mount point {0} is not a directory; mount on an empty directory")]
    MountpointNotDirectory(PathBuf),
    #[error(
        "{path} is already a mount point ({fstype}); unmount it first (s3rolefs unmount {path})"
    )]
    AlreadyMounted { path: PathBuf, fstype: String },
    #[error("/dev/fuse is missing: FUSE is not available; install it (apt-get install -y fuse3) and load the module (modprobe fuse), or in a container pass --device /dev/fuse")]
    NoFuseDevice,
    #[error(
        "fusermount3 was not found on PATH; install it (apt-get install -y fuse3) or mount as root"
    )]
    NoFusermount,
    #[error("cannot open /dev/fuse: {0}; in a container, run it with --device /dev/fuse --cap-add SYS_ADMIN (and no read-only /dev)")]
    FuseDeviceUnusable(String),
    #[error("/dev/fuse is not open to users other than root (mode {mode:o}), and fusermount3 opens it as the user; as root: chmod 0666 /dev/fuse (the mode udev gives it), or mount as root")]
    FuseDeviceClosedToUsers { mode: u32 },
    #[error("allow_other is refused to users other than root unless /etc/fuse.conf has the line user_allow_other; add it (echo user_allow_other >> /etc/fuse.conf) or mount as root")]
    AllowOtherNotPermitted,
    #[error("no credentials found ({tried}); give the instance an IAM role, or use a profile (--profile), web identity, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; --no-sign-request reads a public bucket")]
    NoCredentials { tried: String },
    #[error("credentials are unusable: {0}")]
    BadCredentials(String),
    #[error("bucket {bucket:?} does not exist at {endpoint}; check the bucket name, --endpoint-url and --region")]
    NoSuchBucket { bucket: String, endpoint: String },
    #[error("access denied to bucket {bucket:?} ({detail}); the credentials from {source_name} (key {key}) need s3:ListBucket on {resource}, or pass --no-sign-request if the bucket is public")]
    AccessDenied {
        bucket: String,
        /// What the policy must allow it on: the bucket's ARN, or the access point's.
        resource: String,
        detail: String,
        source_name: String,
        key: String,
    },
    #[error("bucket {bucket:?} is in region {region}, not {signed_for}; pass --region {region} (or set neither --region nor AWS_REGION to discover it)")]
    WrongRegion {
        bucket: String,
        region: String,
        signed_for: String,
    },
    #[error("cannot reach the S3 endpoint {endpoint}: {reason}; check --endpoint-url (or AWS_ENDPOINT_URL) and the network")]
    Unreachable { endpoint: String, reason: String },
    #[error("{0}; check --endpoint-url and AWS_CA_BUNDLE")]
    InvalidClientConfig(String),
    #[error("S3 refused to open bucket {bucket:?}: {detail}")]
    S3 { bucket: String, detail: String },
    #[error("mounting {path} failed: {reason}")]
    MountFailed { path: PathBuf, reason: String },
    #[error("{path} is not mounted by s3rolefs (not a FUSE mount point); nothing to unmount")]
    NotMounted { path: PathBuf },
    #[error("unmounting {path} failed: {reason}")]
    UnmountFailed { path: PathBuf, reason: String },
    #[error("cannot start the background mount process: {0}")]
    Daemon(String),
    #[error("cannot use the log file {path}: {reason}")]
    LogFile { path: PathBuf, reason: String },
    /// A failure the background child reported; its text already names cause and fix.
    #[error("{0}")]
    Reported(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(String),
}
