//! `FsError`: why a filesystem operation failed, and the one place where every cause is
//! mapped to an errno. Reading [`FsError::errno`] tells the whole errno policy.

use crate::s3::S3Error;
use crate::upload::UploadError;

/// A failed filesystem operation.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    #[error("the mount is read-only")]
    ReadOnly,
    #[error("already exists")]
    Exists,
    #[error("directory not empty")]
    NotEmpty,
    #[error("invalid name")]
    InvalidName,
    #[error("stale handle {0}")]
    BadHandle(u64),
    #[error("unknown inode {0}")]
    UnknownInode(u64),
    #[error("{0}")]
    S3(#[from] S3Error),
    /// Writing or uploading an open file failed (the data is kept; see the message).
    #[error("{0}")]
    Upload(UploadError),
}

impl FsError {
    /// The errno the kernel gets for this error. The whole policy is this one `match`.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::NotADirectory => libc::ENOTDIR,
            FsError::IsADirectory => libc::EISDIR,
            FsError::ReadOnly => libc::EROFS,
            FsError::Exists => libc::EEXIST,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::InvalidName => libc::EINVAL,
            FsError::BadHandle(_) => libc::EBADF,
            // The kernel asked about an inode it forgot: its view is stale.
            FsError::UnknownInode(_) => libc::ESTALE,
            FsError::S3(e) => s3_errno(e),
            FsError::Upload(e) if e.is_no_space() => libc::ENOSPC,
            FsError::Upload(UploadError::TooLarge { .. }) => libc::EFBIG,
            FsError::Upload(e) => e.s3_error().map_or(libc::EIO, s3_errno),
        }
    }

    /// Errors worth a log line: expected answers (ENOENT on lookup) are not.
    pub fn is_noteworthy(&self) -> bool {
        !matches!(
            self,
            FsError::NotFound
                | FsError::NotADirectory
                | FsError::IsADirectory
                | FsError::ReadOnly
                | FsError::Exists
                | FsError::NotEmpty
                | FsError::InvalidName
        ) && !matches!(self, FsError::S3(S3Error::NoSuchKey { .. }))
    }
}

/// The errno of an S3 failure.
fn s3_errno(e: &S3Error) -> i32 {
    match e {
        S3Error::NoSuchKey { .. } => libc::ENOENT,
        S3Error::NoSuchBucket { .. } => libc::ENOENT,
        // A name S3 cannot address through a URL cannot exist through the mount.
        S3Error::InvalidKey { .. } => libc::ENOENT,
        S3Error::AccessDenied { .. } => libc::EACCES,
        S3Error::CredentialsRejected { .. } => libc::EACCES,
        S3Error::NoCredentials(_) => libc::EACCES,
        // The object changed under an open handle: reading on would mix versions.
        S3Error::PreconditionFailed { .. } => libc::ESTALE,
        S3Error::InvalidRange => libc::EINVAL,
        S3Error::WrongRegion { .. }
        | S3Error::Service { .. }
        | S3Error::Network { .. }
        | S3Error::Malformed(_)
        | S3Error::InvalidConfig(_)
        | S3Error::ClockSkewed { .. } => libc::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A changed object surfaces as ESTALE, never as data of mixed versions.
    #[test]
    fn precondition_failed_is_estale() {
        let e = FsError::S3(S3Error::PreconditionFailed {
            etag: "\"x\"".into(),
        });
        assert_eq!(e.errno(), libc::ESTALE);
    }

    /// Access problems are EACCES, network problems EIO.
    #[test]
    fn access_and_network_errnos() {
        let denied = FsError::S3(S3Error::AccessDenied {
            code: "AccessDenied".into(),
            message: String::new(),
        });
        assert_eq!(denied.errno(), libc::EACCES);
        let net = FsError::S3(S3Error::Network {
            endpoint: "x".into(),
            reason: "refused".into(),
        });
        assert_eq!(net.errno(), libc::EIO);
    }
}
