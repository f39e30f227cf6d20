//! The `s3s::S3` implementation: bucket operations here, and dispatch to `objects.rs`,
//! `listing.rs` and `multipart.rs`; plus the helpers they share (bucket lookup, body
//! collection, Content-MD5).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result, S3};

use super::store::{Bucket, Store};
use super::{listing, multipart, objects};

pub struct Service {
    pub store: Arc<Store>,
    /// Region of buckets created without a location constraint.
    pub default_region: String,
}

pub fn no_such_bucket() -> S3Error {
    s3_error!(NoSuchBucket, "The specified bucket does not exist")
}

pub fn no_such_key() -> S3Error {
    s3_error!(NoSuchKey, "The specified key does not exist.")
}

/// Runs `f` on the named bucket under the store lock.
pub fn with_bucket<R>(
    store: &Store,
    name: &str,
    f: impl FnOnce(&mut Bucket) -> S3Result<R>,
) -> S3Result<R> {
    let mut buckets = store.lock();
    let bucket = buckets.get_mut(name).ok_or_else(no_such_bucket)?;
    f(bucket)
}

/// Reads a request body to the end. Errors from s3s's payload verification (a signed
/// payload whose SHA-256 does not match) become the error S3 gives for that.
pub async fn collect_body(body: Option<StreamingBlob>, size_hint: Option<i64>) -> S3Result<Bytes> {
    let Some(mut body) = body else {
        return Ok(Bytes::new());
    };
    let capacity = size_hint.and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
    let mut buf = BytesMut::with_capacity(capacity);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            if e.to_string().contains("Sha256Mismatch") {
                let mut err = S3Error::with_message(
                    "XAmzContentSHA256Mismatch".parse().expect("infallible"),
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                );
                err.set_status_code(hyper::StatusCode::BAD_REQUEST);
                err
            } else {
                s3_error!(IncompleteBody, "You did not provide the number of bytes specified by the Content-Length HTTP header: {e}")
            }
        })?;
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Verifies a `Content-MD5` header (base64 of the binary MD5) against the body.
pub fn check_content_md5(content_md5: Option<&str>, body: &[u8]) -> S3Result<()> {
    use base64::Engine as _;
    use md5::Digest as _;
    let Some(sent) = content_md5 else {
        return Ok(());
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(sent.trim())
        .ok()
        .filter(|d| d.len() == 16)
        .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))?;
    if decoded[..] != md5::Md5::digest(body)[..] {
        return Err(s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received."
        ));
    }
    Ok(())
}

/// Verifies an `x-amz-checksum-crc32c` header against the body, as S3 does.
pub fn check_crc32c(sent: Option<&str>, body: &[u8]) -> S3Result<()> {
    let Some(sent) = sent else {
        return Ok(());
    };
    if sent.trim() != s3rolefs::s3::checksum::crc32c_base64(body) {
        return Err(s3_error!(
            BadDigest,
            "The CRC32C you specified did not match the calculated checksum."
        ));
    }
    Ok(())
}

#[async_trait::async_trait]
impl S3 for Service {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let input = req.input;
        let region = input
            .create_bucket_configuration
            .and_then(|c| c.location_constraint)
            .map(|l| l.as_str().to_owned())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| self.default_region.clone());
        let mut buckets = self.store.lock();
        if buckets.contains_key(&input.bucket) {
            return Err(s3_error!(
                BucketAlreadyOwnedByYou,
                "Your previous request to create the named bucket succeeded and you already own it."
            ));
        }
        buckets.insert(input.bucket.clone(), Bucket::new(&region));
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", input.bucket)),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let mut buckets = self.store.lock();
        let bucket = buckets.get(&req.input.bucket).ok_or_else(no_such_bucket)?;
        if !bucket.objects.is_empty() || !bucket.uploads.is_empty() {
            return Err(s3_error!(
                BucketNotEmpty,
                "The bucket you tried to delete is not empty"
            ));
        }
        buckets.remove(&req.input.bucket);
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let region = self
            .store
            .bucket_region(&req.input.bucket)
            .ok_or_else(no_such_bucket)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(region),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let region = self
            .store
            .bucket_region(&req.input.bucket)
            .ok_or_else(no_such_bucket)?;
        // S3 answers an empty LocationConstraint for us-east-1.
        let location_constraint =
            (region != "us-east-1").then(|| BucketLocationConstraint::from(region));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }

    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self
            .store
            .lock()
            .iter()
            .map(|(name, b)| s3s::dto::Bucket {
                name: Some(name.clone()),
                creation_date: Some(Timestamp::from(b.created)),
                bucket_region: Some(b.region.clone()),
            })
            .collect();
        let owner = Owner {
            display_name: Some("s3rolefs-test".into()),
            id: Some("s3rolefs-test".into()),
        };
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        objects::head(&self.store, req.input).map(S3Response::new)
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        objects::get(&self.store, req.input).map(S3Response::new)
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        objects::put(&self.store, req.input)
            .await
            .map(S3Response::new)
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        objects::copy(&self.store, req.input).map(S3Response::new)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        objects::delete(&self.store, req.input).map(S3Response::new)
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        objects::delete_many(&self.store, req.input).map(S3Response::new)
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        listing::list_v2(&self.store, req.input).map(S3Response::new)
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        listing::list_v1(&self.store, req.input).map(S3Response::new)
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create(&self.store, req.input).map(S3Response::new)
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(&self.store, req.input)
            .await
            .map(S3Response::new)
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(&self.store, req.input).map(S3Response::new)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete(&self.store, req.input).map(S3Response::new)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort(&self.store, req.input).map(S3Response::new)
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_uploads(&self.store, req.input).map(S3Response::new)
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(&self.store, req.input).map(S3Response::new)
    }
}
