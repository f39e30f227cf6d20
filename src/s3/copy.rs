//! Copies of any size within the bucket (what `rename` is made of).
//!
//! Up to the server's single-copy limit (5 GiB on S3) a copy is one CopyObject. Above it,
//! S3 refuses CopyObject, and the copy becomes a multipart upload whose parts are
//! UploadPartCopy requests, each naming a byte range of the source: the bytes never leave
//! S3. The source's ETag is read first (HeadObject) and every part carries it in
//! `x-amz-copy-source-if-match`, so an object replaced during the copy fails it rather
//! than yielding a mix of two versions. Parts run [`COPY_CONCURRENCY`] at a time; any
//! failure aborts the upload, so no multipart upload is left behind.
//!
//! A server without UploadPartCopy ([`PartCopy::Missing`]) gets the same copy, each part
//! downloaded and uploaded again by the client: parts are then [`THROUGH_HERE_PART_SIZE`]
//! so that memory stays bounded. While it is not known yet, the first part is copied
//! alone at that size, and the answer decides the size of the rest.

use futures_util::stream::{self, StreamExt, TryStreamExt};
use log::{debug, warn};

use super::etag::{answer_may_be_lost, completed_from};
use super::settings::{COPY_CONCURRENCY, COPY_PART_SIZE, S3_MIN_PART_SIZE};
use super::{CompletedPart, Metadata, ObjectClient, PartCopy, S3Error, UploadPartCopyParams};

/// Part size of a copy made through this machine (no UploadPartCopy): each part in flight
/// is held in memory once, so [`COPY_CONCURRENCY`] × 16 MiB at most per copy.
pub const THROUGH_HERE_PART_SIZE: u64 = 16 * 1024 * 1024;

/// S3's limit on parts of one multipart upload (the write path's `upload::S3_MAX_PARTS`;
/// `s3` cannot import `upload`).
const S3_MAX_PARTS: u32 = 10_000;

/// The part size of a multipart copy of `size` bytes under a single-copy `limit`:
/// [`COPY_PART_SIZE`], never above the limit (each part is itself a copy), never below
/// S3's minimum part size, and large enough that the copy fits in S3's 10,000 parts.
pub fn copy_part_size(size: u64, limit: u64) -> u64 {
    let needed = size.div_ceil(u64::from(S3_MAX_PARTS));
    COPY_PART_SIZE.min(limit).max(needed).max(S3_MIN_PART_SIZE)
}

/// See [`ObjectClient::copy_object_sized`].
pub async fn copy_sized<C: ObjectClient>(
    client: &C,
    from: &str,
    to: &str,
    size: u64,
    replace: Option<&Metadata>,
) -> Result<String, S3Error> {
    if size <= client.single_copy_limit() {
        return client.copy_object(from, to, replace).await;
    }
    multipart_copy(client, from, to, replace).await
}

async fn multipart_copy<C: ObjectClient>(
    client: &C,
    from: &str,
    to: &str,
    replace: Option<&Metadata>,
) -> Result<String, S3Error> {
    // The size and version the parts are cut from: the caller's size may be stale.
    let source = client.head_object(from).await?;

    // A multipart upload starts without metadata: the source's is carried over by hand.
    let metadata = match replace {
        Some(m) => m.clone(),
        None => source.metadata.clone().unwrap_or_default(),
    };
    let upload_id = client.create_multipart_upload(to, &metadata).await?;
    let part = |part_number, range| UploadPartCopyParams {
        key: to.to_string(),
        upload_id: upload_id.clone(),
        part_number,
        source_key: from.to_string(),
        range,
        source_if_match: Some(source.etag.clone()),
    };
    let limit = client.single_copy_limit();
    // Unknown support: one small part first, alone, tells.
    let mut first: Vec<CompletedPart> = Vec::new();
    let mut start = 0;
    if client.part_copy() == PartCopy::Unknown {
        let size = copy_part_size(source.size, THROUGH_HERE_PART_SIZE.min(limit));
        let end = size.min(source.size);
        match client.upload_part_copy(part(1, 0..end)).await {
            Ok(done) => first.push(done),
            Err(e) => return abort_copy(client, to, &upload_id, Err(e)).await,
        }
        start = end;
    }
    let part_size = match client.part_copy() {
        PartCopy::Missing => copy_part_size(source.size, THROUGH_HERE_PART_SIZE.min(limit)),
        _ => copy_part_size(source.size, limit),
    };
    debug!(
        "copying {from:?} ({} bytes) to {to:?} as a multipart copy of {part_size}-byte parts",
        source.size
    );
    let numbered = first.len() as u32;
    let ranges = (0..(source.size - start).div_ceil(part_size)).map(|i| {
        let at = start + i * part_size;
        (
            numbered + i as u32 + 1,
            at..(at + part_size).min(source.size),
        )
    });
    let copied = stream::iter(ranges)
        .map(|(part_number, range)| client.upload_part_copy(part(part_number, range)))
        .buffer_unordered(COPY_CONCURRENCY)
        // The first failure drops (cancels) the parts still in flight before the abort.
        .try_collect::<Vec<_>>()
        .await
        .map(|mut parts| {
            parts.extend(first);
            parts
        });
    let result = match copied {
        Ok(mut parts) => {
            parts.sort_by_key(|p| p.part_number);
            match client
                .complete_multipart_upload(to, &upload_id, &parts)
                .await
            {
                // An answer lost after S3 completed the copy: the object is ours.
                Err(e) if answer_may_be_lost(&e) => {
                    match completed_from(client, to, &parts).await {
                        Some(etag) => Ok(etag),
                        None => Err(e),
                    }
                }
                done => done,
            }
        }
        Err(e) => Err(e),
    };
    abort_copy(client, to, &upload_id, result).await
}

/// Aborts the multipart copy when `result` is a failure, then hands `result` back.
async fn abort_copy<C: ObjectClient>(
    client: &C,
    to: &str,
    upload_id: &str,
    result: Result<String, S3Error>,
) -> Result<String, S3Error> {
    if result.is_err() {
        if let Err(abort) = client.abort_multipart_upload(to, upload_id).await {
            warn!(
                "aborting the multipart copy {upload_id} to {to:?} failed: {abort}; \
                 it stays until AbortMultipartUpload succeeds or a lifecycle rule removes it"
            );
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::memory::{MemoryClient, Op};
    use crate::s3::S3_SINGLE_COPY_LIMIT;

    const MIB: u64 = 1024 * 1024;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Parts are 512 MiB under S3's limit, the limit under a lower one, and grow to fit
    /// 10,000 parts.
    #[test]
    fn part_size_follows_limit_and_part_count() {
        assert_eq!(
            copy_part_size(6 * 1024 * MIB, S3_SINGLE_COPY_LIMIT),
            512 * MIB
        );
        assert_eq!(copy_part_size(100 * MIB, 32 * MIB), 32 * MIB);
        assert_eq!(copy_part_size(100 * MIB, MIB), S3_MIN_PART_SIZE);
        let huge = 5 * 1024 * 1024 * MIB;
        assert!(copy_part_size(huge, S3_SINGLE_COPY_LIMIT) * 10_000 >= huge);
    }

    /// Up to the limit a copy is one CopyObject.
    #[tokio::test]
    async fn small_copy_is_one_copy_object() {
        let client = MemoryClient::new().with_single_copy_limit(8 * MIB);
        client.insert("a", pattern(8 * MIB as usize));
        client
            .copy_object_sized("a", "b", 8 * MIB, None)
            .await
            .unwrap();
        let c = client.counters();
        assert_eq!((c.copy_object, c.upload_part_copy), (1, 0));
        assert_eq!(client.get("b"), client.get("a"));
    }

    /// Above the limit the copy is a multipart copy of limit-sized parts, byte-exact.
    #[tokio::test]
    async fn large_copy_is_a_multipart_copy() {
        let client = MemoryClient::new().with_single_copy_limit(8 * MIB);
        let data = pattern(20 * MIB as usize + 17);
        client.insert("a", data.clone());
        client
            .copy_object_sized("a", "b", data.len() as u64, None)
            .await
            .unwrap();
        let c = client.counters();
        assert_eq!((c.copy_object, c.upload_part_copy), (0, 3));
        assert_eq!(c.complete_multipart_upload, 1);
        assert_eq!(client.get("b").unwrap().as_ref(), &data[..]);
        assert!(client.pending_uploads().is_empty());
    }

    /// A failed part aborts the multipart copy: no upload is left, no object appears.
    #[tokio::test]
    async fn failed_part_aborts_the_copy() {
        let client = MemoryClient::new().with_single_copy_limit(8 * MIB);
        client.insert("a", pattern(20 * MIB as usize));
        client.fail_next(Op::UploadPartCopy, 1, || S3Error::AccessDenied {
            code: "AccessDenied".into(),
            message: "denied".into(),
        });
        let err = client
            .copy_object_sized("a", "b", 20 * MIB, None)
            .await
            .unwrap_err();
        assert!(matches!(err, S3Error::AccessDenied { .. }), "{err}");
        assert!(client.pending_uploads().is_empty());
        assert_eq!(client.counters().abort_multipart_upload, 1);
        assert!(client.get("b").is_none());
    }

    /// A source replaced during the copy fails the copy instead of mixing versions.
    #[tokio::test]
    async fn source_replaced_during_copy_fails_it() {
        let client = MemoryClient::new().with_single_copy_limit(8 * MIB);
        client.insert("a", pattern(20 * MIB as usize));
        let etag = client.head_object("a").await.unwrap().etag;
        client.insert("a", vec![1u8; 20 * MIB as usize]);
        let err = client
            .upload_part_copy(UploadPartCopyParams {
                key: "b".into(),
                upload_id: client
                    .create_multipart_upload("b", &Default::default())
                    .await
                    .unwrap(),
                part_number: 1,
                source_key: "a".into(),
                range: 0..MIB,
                source_if_match: Some(etag),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, S3Error::PreconditionFailed { .. }), "{err}");
    }
}
