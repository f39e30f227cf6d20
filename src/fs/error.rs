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
    /// A name that cannot be a file name here (`.`/`..`, a `/`, NUL; not UTF-8: S3 keys
    /// are UTF-8), or a move of a directory into itself.
    #[error("invalid name")]
    InvalidName,
    /// A name that is not UTF-8: S3 keys are, so it can be neither found nor created.
    #[error("the name is not UTF-8")]
    NotUtf8,
    /// A name, or the key it makes, longer than the mount allows (`statfs`'s name length,
    /// S3's 1,024-byte keys).
    #[error("name too long")]
    NameTooLong,
    /// Not a kind of file or operation this filesystem has (hard links, device nodes,
    /// fifos, sockets).
    #[error("not permitted on this filesystem: {0}")]
    NotPermitted(&'static str),
    /// An extended attribute outside the `user.` namespace, or a read-only one written.
    #[error("not supported: {0}")]
    NotSupported(&'static str),
    /// No extended attribute of that name.
    #[error("no such attribute")]
    NoAttribute,
    /// The answer does not fit the caller's buffer (`getxattr`, `listxattr`).
    #[error("buffer too small")]
    BufferTooSmall,
    /// One attribute value larger than S3 can store with an object.
    #[error("attribute value too large: {size} bytes, at most {limit}")]
    ValueTooLarge { size: usize, limit: usize },
    /// The object's metadata would exceed S3's limit.
    #[error("no room: the object's metadata would be {size} bytes, S3 keeps at most {limit}")]
    MetadataFull { size: usize, limit: usize },
    /// Not a symlink (`readlink`), or another argument the operation cannot take.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
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
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::NotUtf8 => libc::EINVAL,
            FsError::NotPermitted(_) => libc::EPERM,
            FsError::NotSupported(_) => libc::EOPNOTSUPP,
            FsError::NoAttribute => libc::ENODATA,
            FsError::BufferTooSmall => libc::ERANGE,
            FsError::ValueTooLarge { .. } => libc::E2BIG,
            FsError::MetadataFull { .. } => libc::ENOSPC,
            FsError::InvalidArgument(_) => libc::EINVAL,
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
                | FsError::NameTooLong
                | FsError::NotUtf8
                | FsError::NotPermitted(_)
                | FsError::NotSupported(_)
                | FsError::NoAttribute
                | FsError::BufferTooSmall
                | FsError::ValueTooLarge { .. }
                | FsError::MetadataFull { .. }
                | FsError::InvalidArgument(_)
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
