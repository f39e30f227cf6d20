//! The S3 operation a request is, classified from method, path and query before s3s sees
//! it, so counters and fault filters also cover requests failed on purpose or refused by auth.

use std::fmt;

/// An S3 operation, named as AWS names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    ListBuckets,
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    GetBucketLocation,
    ListObjects,
    ListObjectsV2,
    ListMultipartUploads,
    DeleteObjects,
    GetObject,
    HeadObject,
    PutObject,
    CopyObject,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    CreateSession,
    RenameObject,
    Other,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Op {
    /// Classifies a request the way S3 routes it. `bucket`/`key` come from the path or the
    /// virtual host; `has` tells whether a query parameter or header is present.
    pub fn classify(
        method: &str,
        bucket: Option<&str>,
        key: Option<&str>,
        has: impl Fn(&str) -> bool,
    ) -> Op {
        match (method, bucket, key) {
            ("GET", None, _) => Op::ListBuckets,
            ("PUT", Some(_), None) => Op::CreateBucket,
            ("DELETE", Some(_), None) => Op::DeleteBucket,
            ("HEAD", Some(_), None) => Op::HeadBucket,
            ("GET", Some(_), None) if has("session") => Op::CreateSession,
            ("GET", Some(_), None) if has("location") => Op::GetBucketLocation,
            ("GET", Some(_), None) if has("uploads") => Op::ListMultipartUploads,
            ("GET", Some(_), None) if has("list-type") => Op::ListObjectsV2,
            ("GET", Some(_), None) => Op::ListObjects,
            ("POST", Some(_), None) if has("delete") => Op::DeleteObjects,
            ("GET", Some(_), Some(_)) if has("uploadId") => Op::ListParts,
            ("GET", Some(_), Some(_)) => Op::GetObject,
            ("HEAD", Some(_), Some(_)) => Op::HeadObject,
            ("PUT", Some(_), Some(_)) if has("renameObject") => Op::RenameObject,
            ("PUT", Some(_), Some(_)) if has("partNumber") && has("x-amz-copy-source") => {
                Op::UploadPartCopy
            }
            ("PUT", Some(_), Some(_)) if has("partNumber") => Op::UploadPart,
            ("PUT", Some(_), Some(_)) if has("x-amz-copy-source") => Op::CopyObject,
            ("PUT", Some(_), Some(_)) => Op::PutObject,
            ("POST", Some(_), Some(_)) if has("uploads") => Op::CreateMultipartUpload,
            ("POST", Some(_), Some(_)) if has("uploadId") => Op::CompleteMultipartUpload,
            ("DELETE", Some(_), Some(_)) if has("uploadId") => Op::AbortMultipartUpload,
            ("DELETE", Some(_), Some(_)) => Op::DeleteObject,
            _ => Op::Other,
        }
    }
}
