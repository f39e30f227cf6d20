//! The S3 API as the filesystem sees it: the [`ObjectClient`] trait, one method per S3
//! operation, each with a small params struct and a typed [`S3Error`].
//!
//! - `client`: the real implementation over HTTP (reqwest): addressing, signing with the
//!   current credentials snapshot, retries, region discovery.
//! - `access`: who pays (requester pays) and whose bucket it must be (expected bucket
//!   owner): headers on every request.
//! - `endpoint`: where requests for a bucket or access point go (partitions, FIPS,
//!   dual-stack, Transfer Acceleration, access point and Outposts ARNs, custom endpoints)
//!   and what they are signed for, by the AWS SDKs' S3 endpoint rules.
//! - `express`: S3 Express One Zone directory buckets (`NAME--ZONEID--x-s3`): the name,
//!   session auth (`CreateSession`, `x-amz-s3session-token`), and what differs.
//! - `xml`: S3's XML bodies (listings, multipart, errors) parsed into the types below.
//! - `error`: [`S3Error`].
//! - `chunks`: [`Chunks`], an object's body in the pieces it arrived in.
//! - `settings`: what objects are written with (encryption, storage class, ACL, SSE-C
//!   key), applied by the client to the operations S3 wants them on.
//! - `listing`: a large directory's pages listed side by side (StartAfter intervals).
//! - `copy`: copies of any size: CopyObject up to the single-copy limit, a multipart copy
//!   (UploadPartCopy) above it.
//! - `metadata`: [`Metadata`], what a write sets besides the bytes (user metadata,
//!   `Content-Type`, the kept standard headers), read from HEAD and sent back whole.
//! - `etag`: the ETag a multipart object gets, to recognise one whose Complete answer was
//!   lost.
//! - `provider`: [`Provider`], which S3 implementation serves the bucket, and what is
//!   known of it before the first request.
//! - `memory`: an in-memory implementation with failure injection and per-operation counters,
//!   for fast unit tests of the filesystem core.
//!
//! This module knows nothing of the filesystem (`fs`).

pub mod access;
pub mod checksum;
pub mod chunks;
pub mod client;
pub mod copy;
pub mod endpoint;
pub mod error;
pub mod etag;
pub mod express;
pub mod listing;
pub mod memory;
pub mod metadata;
pub mod mtime;
pub mod provider;
pub mod settings;
pub mod xml;

use std::future::Future;
use std::time::SystemTime;

use bytes::Bytes;

pub use access::BucketAccess;
pub use chunks::Chunks;
pub use client::PartCopy;
pub use error::S3Error;
pub use metadata::Metadata;
pub use provider::Provider;
pub use settings::{ObjectSettings, S3_SINGLE_COPY_LIMIT};

/// What S3 says about one object (HeadObject, GetObject, or a listing entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// With its quotes, exactly as S3 sent it, so it can be echoed in `If-Match`.
    pub etag: String,
    pub last_modified: SystemTime,
    /// The object's metadata (HEAD and GET answers); `None` from listings, which do not
    /// show it.
    pub metadata: Option<Metadata>,
    /// `x-amz-version-id`, on a versioned bucket (HEAD and GET answers).
    pub version_id: Option<String>,
}

impl ObjectMeta {
    /// The file time kept in `x-amz-meta-mtime` ([`mtime`]), when the answer showed one.
    pub fn mtime(&self) -> Option<SystemTime> {
        self.metadata.as_ref().and_then(Metadata::mtime)
    }
}

/// GetObject.
#[derive(Clone, Debug, Default)]
pub struct GetObjectParams {
    pub key: String,
    /// Half-open byte range `start..end`; `None` for the whole object.
    pub range: Option<std::ops::Range<u64>>,
    /// Fail with [`S3Error::PreconditionFailed`] unless the object still has this ETag.
    pub if_match: Option<String>,
}

/// The body of a GetObject, with the object's metadata.
#[derive(Clone, Debug)]
pub struct GetObjectOutput {
    /// `size` is the whole object's size, not the range's.
    pub meta: ObjectMeta,
    /// As it came off the connection, in pieces ([`Chunks`]): never joined unless a
    /// caller needs one slice.
    pub body: Chunks,
}

/// ListObjectsV2 (one call lists every page).
#[derive(Clone, Debug, Default)]
pub struct ListObjectsParams {
    pub prefix: String,
    /// Usually `"/"`; `None` lists recursively.
    pub delimiter: Option<String>,
    pub start_after: Option<String>,
    /// Stop after this many keys + prefixes in total (`None`: every page).
    pub max_keys: Option<usize>,
}

/// One page of ListObjectsV2.
#[derive(Clone, Debug, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    pub common_prefixes: Vec<String>,
    pub next_continuation_token: Option<String>,
}

/// A whole listing: every page concatenated.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub objects: Vec<ObjectMeta>,
    pub common_prefixes: Vec<String>,
}

/// PutObject.
#[derive(Clone, Debug, Default)]
pub struct PutObjectParams {
    pub key: String,
    pub body: Bytes,
    /// Content type and user metadata the object gets.
    pub metadata: Metadata,
}

/// PutObject with `x-amz-write-offset-bytes` (S3 Express One Zone directory buckets):
/// `body` added at the end of the object `key`, which must be `offset` bytes long. The
/// object keeps its metadata; its ETag and Last-Modified change.
#[derive(Clone, Debug)]
pub struct AppendObjectParams {
    pub key: String,
    /// The object's size now: S3 answers 400 `InvalidWriteOffset` when it is not.
    pub offset: u64,
    pub body: Bytes,
    /// Fail with [`S3Error::PreconditionFailed`] unless the object still has this ETag
    /// (another client replaced it with one of the same size).
    pub if_match: Option<String>,
}

/// One completed part of a multipart upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
    /// The part's CRC32C (base64), listed in CompleteMultipartUpload when S3 gave or took
    /// one ([`checksum`]).
    pub checksum_crc32c: Option<String>,
    /// Bytes in the part (to check a completed object against its parts).
    pub size: u64,
}

/// A multipart upload in progress (ListMultipartUploads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
    /// When S3 says it started (by S3's clock).
    pub initiated: Option<SystemTime>,
}

/// UploadPartCopy: a byte range of an object in the bucket becomes one part.
#[derive(Clone, Debug, Default)]
pub struct UploadPartCopyParams {
    /// The key being assembled.
    pub key: String,
    pub upload_id: String,
    pub part_number: u32,
    pub source_key: String,
    /// Half-open byte range `start..end` of the source.
    pub range: std::ops::Range<u64>,
    /// Fail with [`S3Error::PreconditionFailed`] unless the source still has this ETag, so
    /// parts of one copy never come from two versions of the source.
    pub source_if_match: Option<String>,
}

/// The S3 operations s3rolefs uses. Implementations sign with the current credentials
/// snapshot and retry what is retryable; callers see only final outcomes.
pub trait ObjectClient: Send + Sync + 'static {
    /// Since when S3 has answered no request (refused, reset, timed out), if it has not;
    /// `None` while it answers (and for clients that cannot tell).
    fn unreachable_since(&self) -> Option<std::time::SystemTime> {
        None
    }

    /// How many times S3 stopped answering since the client began (0 for clients that
    /// cannot tell): an outage shorter than a watcher's glance still counts.
    fn outages(&self) -> u64 {
        0
    }

    /// HeadBucket: `Ok` when the bucket exists and we may list it.
    fn head_bucket(&self) -> impl Future<Output = Result<(), S3Error>> + Send;
    fn head_object(&self, key: &str) -> impl Future<Output = Result<ObjectMeta, S3Error>> + Send;
    fn get_object(
        &self,
        params: GetObjectParams,
    ) -> impl Future<Output = Result<GetObjectOutput, S3Error>> + Send;
    /// One page of ListObjectsV2.
    fn list_objects_page(
        &self,
        params: &ListObjectsParams,
        continuation_token: Option<&str>,
    ) -> impl Future<Output = Result<ListPage, S3Error>> + Send;
    fn put_object(
        &self,
        params: PutObjectParams,
    ) -> impl Future<Output = Result<String, S3Error>> + Send;
    fn delete_object(&self, key: &str) -> impl Future<Output = Result<(), S3Error>> + Send;
    /// DeleteObjects: returns the keys that could not be deleted, with S3's reason.
    fn delete_objects(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<(String, String)>, S3Error>> + Send;
    /// CopyObject within the bucket; returns the new ETag. The copy keeps the source's
    /// metadata, unless `replace` is given: then it gets that instead (all of it: a
    /// header left out of `replace` is gone from the copy).
    fn copy_object(
        &self,
        from: &str,
        to: &str,
        replace: Option<&Metadata>,
    ) -> impl Future<Output = Result<String, S3Error>> + Send;
    /// CreateMultipartUpload: returns the upload id. The object gets `metadata`.
    fn create_multipart_upload(
        &self,
        key: &str,
        metadata: &Metadata,
    ) -> impl Future<Output = Result<String, S3Error>> + Send;
    /// UploadPart: returns the part as CompleteMultipartUpload wants it.
    fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> impl Future<Output = Result<CompletedPart, S3Error>> + Send;
    /// CompleteMultipartUpload: returns the object's ETag.
    fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> impl Future<Output = Result<String, S3Error>> + Send;
    fn abort_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<(), S3Error>> + Send;
    /// ListParts, every page: the parts S3 holds of an upload in progress, by number.
    fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<Vec<CompletedPart>, S3Error>> + Send;
    /// ListMultipartUploads of keys starting with `prefix`, every page.
    fn list_multipart_uploads(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<PendingUpload>, S3Error>> + Send;
    /// UploadPartCopy: returns the part as CompleteMultipartUpload wants it.
    fn upload_part_copy(
        &self,
        params: UploadPartCopyParams,
    ) -> impl Future<Output = Result<CompletedPart, S3Error>> + Send;

    /// The largest object one CopyObject may copy on this server ([`S3_SINGLE_COPY_LIMIT`]
    /// on S3); larger ones need a multipart copy.
    fn single_copy_limit(&self) -> u64 {
        S3_SINGLE_COPY_LIMIT
    }

    /// Whether UploadPartCopy copies inside the server. Without it
    /// ([`PartCopy::Missing`]) an UploadPartCopy still works, through this machine, and
    /// copies choose smaller parts to bound memory.
    fn part_copy(&self) -> PartCopy {
        PartCopy::Supported
    }

    /// `Some(true)` when the server's ETags are known to be MD5s of the bytes (the MD5 of
    /// the parts' MD5s for multipart objects); nothing may compare an ETag with an MD5
    /// otherwise.
    fn etags_are_md5(&self) -> Option<bool> {
        Some(true)
    }

    /// RenameObject: `from` becomes `to` in one atomic step (S3 Express One Zone directory
    /// buckets), keeping its metadata and ETag. `Ok(false)` when this bucket cannot rename
    /// (nothing happened): the caller copies and deletes instead.
    fn rename_object(
        &self,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<bool, S3Error>> + Send {
        let _ = (from, to);
        async { Ok(false) }
    }

    /// Appends to an object in place ([`AppendObjectParams`]); returns its new ETag, or
    /// `None` when this bucket cannot append (nothing happened: the caller rewrites the
    /// object instead). Only directory buckets can.
    fn append_object(
        &self,
        params: AppendObjectParams,
    ) -> impl Future<Output = Result<Option<String>, S3Error>> + Send {
        let _ = params;
        async { Ok(None) }
    }

    /// Whether listings may start after a key (`StartAfter`). Directory buckets refuse it
    /// (and list in no order), so a large directory is listed page after page there.
    fn supports_start_after(&self) -> bool {
        true
    }

    /// Copies `from` (of `size` bytes) to `to` within the bucket, whatever its size:
    /// CopyObject up to [`ObjectClient::single_copy_limit`], a multipart copy above it.
    /// Returns the new ETag. `replace` as in [`ObjectClient::copy_object`]; a multipart
    /// copy carries the source's metadata over when `replace` is `None`.
    fn copy_object_sized(
        &self,
        from: &str,
        to: &str,
        size: u64,
        replace: Option<&Metadata>,
    ) -> impl Future<Output = Result<String, S3Error>> + Send
    where
        Self: Sized,
    {
        copy::copy_sized(self, from, to, size, replace)
    }

    /// Every page of a listing, concatenated (stops early at `max_keys`).
    fn list_objects(
        &self,
        params: &ListObjectsParams,
    ) -> impl Future<Output = Result<Listing, S3Error>> + Send {
        async move {
            let mut all = Listing::default();
            let mut token: Option<String> = None;
            loop {
                let page = self.list_objects_page(params, token.as_deref()).await?;
                all.objects.extend(page.objects);
                all.common_prefixes.extend(page.common_prefixes);
                let full = params
                    .max_keys
                    .is_some_and(|m| all.objects.len() + all.common_prefixes.len() >= m);
                match page.next_continuation_token {
                    Some(t) if !full => token = Some(t),
                    _ => return Ok(all),
                }
            }
        }
    }
}
