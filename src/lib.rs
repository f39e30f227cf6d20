//! # Layout
//!
//! Imports run one way: `cli → mount → fs → {cache, upload} → s3 → credentials → sigv4`.
//!
//! - `cli`: the command line (`mount`, `unmount`, `status`, `credentials`, `check`); prints
//!   failures as one line.
//! - `config`: one validated `MountConfig` from flags and environment; every default, once.
//! - `mount`: preflight checks, credentials and bucket, the kernel mount, background mode,
//!   signals, unmount; the per-mount control socket that `status` reads.
//! - `fs`: the filesystem core (inodes, directories, handles, errno policy, a status
//!   snapshot), POSIX attributes in s3fs's metadata format (modes, owners, times, symlinks,
//!   xattrs) with the HEADs asked ahead of `ls -l`, and the thin fuser adapter.
//! - `cache`: read-ahead between the filesystem and S3; object metadata kept across
//!   remounts by version.
//! - `upload`: the write path of an open file (streaming multipart or a sparse local copy),
//!   uploaded whole; the crash-safe journal of what is not in S3 yet, its background
//!   uploads and recovery at mount.
//! - `s3`: the `ObjectClient` trait (one method per S3 operation) and its HTTP implementation;
//!   where a bucket's or access point's requests go (the AWS S3 endpoint rules) and the
//!   headers every request carries.
//! - `credentials`: what credentials are, the sources that provide them, the atomically
//!   swapped current snapshot.
//! - `sigv4`: AWS Signature Version 4 as pure functions (a leaf; no I/O).
//! - `private_dir`: a directory only this user may enter, held by a descriptor, and the
//!   file operations relative to it that every local file (staging, cache, sockets) is
//!   made with (a leaf; `mount`, `cache` and `upload` use it).

pub mod cache;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod fs;
pub mod mount;
pub mod private_dir;
pub mod s3;
pub mod sigv4;
pub mod upload;

pub use config::MountConfig;

/// Mounts as `config` says (the library entry point; the binary goes through `cli`). In the
/// background, the child is this process's command line again.
pub fn run(config: MountConfig) -> Result<(), mount::MountError> {
    let arguments: Vec<_> = std::env::args_os().skip(1).collect();
    mount::mount(config, &arguments)
}
