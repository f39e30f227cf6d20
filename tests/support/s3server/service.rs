//! The `s3s::S3` implementation: bucket and object operations on the in-memory store, with
//! S3's answers for the cases clients depend on (conditional requests, ranges, Content-MD5,
//! listing pagination). Multipart operations live in `multipart.rs`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use s3s::dto::*;
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, StdError, S3};

use super::multipart;
use super::store::{self, Bucket, Entry, Object, Store};

/// Size of the slices a GET body is streamed in: big enough to be cheap per chunk, small
/// enough that a slow reader does not make the server buffer much.
const GET_CHUNK: usize = 1024 * 1024;

/// S3's cap on keys per list page.
const MAX_LIST_KEYS: i32 = 1000;

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

fn etag_matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

/// The read preconditions of GET/HEAD, in S3's order: If-Match, then If-Unmodified-Since
/// (ignored when If-Match passed) give 412; If-None-Match, then If-Modified-Since (ignored
/// when If-None-Match was sent) give 304.
fn check_read_conditions(
    object: &Object,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let modified = object.last_modified;
    match if_match {
        Some(c) if !etag_matches(c, &object.etag) => {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
        Some(_) => {}
        None => {
            if let Some(t) = if_unmodified_since {
                if modified > time::OffsetDateTime::from(t.clone()) {
                    return Err(s3_error!(
                        PreconditionFailed,
                        "At least one of the pre-conditions you specified did not hold"
                    ));
                }
            }
        }
    }
    match if_none_match {
        Some(c) if etag_matches(c, &object.etag) => return Err(s3_error!(NotModified)),
        Some(_) => {}
        None => {
            if let Some(t) = if_modified_since {
                if modified <= time::OffsetDateTime::from(t.clone()) {
                    return Err(s3_error!(NotModified));
                }
            }
        }
    }
    Ok(())
}

/// A stored body sent as zero-copy slices of at most [`GET_CHUNK`] bytes, with its exact
/// length known up front (so the response carries Content-Length, not chunked encoding).
struct SliceStream {
    rest: Bytes,
}

impl Stream for SliceStream {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(GET_CHUNK);
        Poll::Ready(Some(Ok(self.rest.split_to(n))))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rest.len().div_ceil(GET_CHUNK);
        (n, Some(n))
    }
}

impl ByteStream for SliceStream {
    fn remaining_length(&self) -> RemainingLength {
        RemainingLength::new_exact(self.rest.len())
    }
}

fn lookup(store: &Store, bucket: &str, key: &str) -> S3Result<Object> {
    with_bucket(store, bucket, |b| {
        b.objects.get(key).cloned().ok_or_else(no_such_key)
    })
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn metadata_or_none(m: &HashMap<String, String>) -> Option<Metadata> {
    (!m.is_empty()).then(|| m.clone())
}

/// `encoding-type=url` as S3 applies it to keys in listings: RFC 3986 unreserved characters
/// and `/` stay, a space becomes `+`, everything else is percent-encoded UTF-8.
pub fn url_encode_key(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn encode_token(marker: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(marker)
}

fn decode_token(token: &str) -> S3Result<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_LIST_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys cannot be negative")),
        Some(n) => Ok(n.min(MAX_LIST_KEYS) as usize),
    }
}

/// Splits a page into the `Contents` and `CommonPrefixes` of a list response.
fn page_to_lists(entries: Vec<Entry>, url: bool) -> (Vec<s3s::dto::Object>, Vec<CommonPrefix>) {
    let enc = |s: String| if url { url_encode_key(&s) } else { s };
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for entry in entries {
        match entry {
            Entry::Object(key, o) => contents.push(s3s::dto::Object {
                key: Some(enc(key)),
                size: Some(to_i64(o.body.len())),
                e_tag: Some(ETag::Strong(o.etag)),
                last_modified: Some(Timestamp::from(o.last_modified)),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                ..Default::default()
            }),
            Entry::CommonPrefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc(p)),
            }),
        }
    }
    (contents, prefixes)
}

fn wants_url(encoding: Option<&EncodingType>) -> S3Result<bool> {
    match encoding {
        None => Ok(false),
        Some(e) if e.as_str() == EncodingType::URL => Ok(true),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request"
        )),
    }
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
        let input = req.input;
        let object = lookup(&self.store, &input.bucket, &input.key)?;
        check_read_conditions(
            &object,
            input.if_match.as_ref(),
            input.if_unmodified_since.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
        )?;
        let total = object.body.len() as u64;
        let (length, content_range) = match input.range {
            None => (total, None),
            Some(r) => {
                let span = r.check(total)?;
                (
                    span.end - span.start,
                    Some(format!("bytes {}-{}/{total}", span.start, span.end - 1)),
                )
            }
        };
        Ok(S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some(length as i64),
            content_range,
            content_type: Some(object.content_type.clone()),
            e_tag: Some(ETag::Strong(object.etag.clone())),
            last_modified: Some(Timestamp::from(object.last_modified)),
            metadata: metadata_or_none(&object.metadata),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let object = lookup(&self.store, &input.bucket, &input.key)?;
        check_read_conditions(
            &object,
            input.if_match.as_ref(),
            input.if_unmodified_since.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
        )?;
        let total = object.body.len() as u64;
        let (body, content_range) = match input.range {
            None => (object.body.clone(), None),
            Some(r) => {
                let span = r.check(total)?;
                let body = object.body.slice(span.start as usize..span.end as usize);
                (
                    body,
                    Some(format!("bytes {}-{}/{total}", span.start, span.end - 1)),
                )
            }
        };
        Ok(S3Response::new(GetObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some(to_i64(body.len())),
            body: Some(StreamingBlob::new(SliceStream { rest: body })),
            content_range,
            content_type: Some(object.content_type.clone()),
            e_tag: Some(ETag::Strong(object.etag.clone())),
            last_modified: Some(Timestamp::from(object.last_modified)),
            metadata: metadata_or_none(&object.metadata),
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        with_bucket(&self.store, &input.bucket, |_| Ok(()))?;
        let body = collect_body(input.body, input.content_length).await?;
        check_content_md5(input.content_md5.as_deref(), &body)?;
        let object = Object::new(body, input.content_type, input.metadata.unwrap_or_default());
        let etag = object.etag.clone();
        with_bucket(&self.store, &input.bucket, |b| {
            // Conditional writes: If-None-Match: * refuses to overwrite, If-Match requires the
            // current ETag.
            let existing = b.objects.get(&input.key);
            if let Some(c) = &input.if_none_match {
                if existing.is_some_and(|o| etag_matches(c, &o.etag)) {
                    return Err(s3_error!(
                        PreconditionFailed,
                        "At least one of the pre-conditions you specified did not hold"
                    ));
                }
            }
            if let Some(c) = &input.if_match {
                match existing {
                    None => return Err(no_such_key()),
                    Some(o) if !etag_matches(c, &o.etag) => {
                        return Err(s3_error!(
                            PreconditionFailed,
                            "At least one of the pre-conditions you specified did not hold"
                        ));
                    }
                    Some(_) => {}
                }
            }
            b.objects.insert(input.key.clone(), object);
            Ok(())
        })?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            ..
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "Only bucket/key copy sources are supported"
            ));
        };
        let source = lookup(&self.store, src_bucket, src_key)?;
        check_copy_conditions(
            &source,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
        )?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if !replace && **src_bucket == *input.bucket && **src_key == *input.key {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let mut object = if replace {
            Object::new(
                source.body.clone(),
                input.content_type,
                input.metadata.unwrap_or_default(),
            )
        } else {
            Object {
                last_modified: store::now(),
                ..source.clone()
            }
        };
        // A copy made in one request is a single-part object: its ETag is the body's MD5.
        if object.etag.contains('-') {
            object.etag = store::md5_hex(&object.body);
        }
        let result = CopyObjectResult {
            e_tag: Some(ETag::Strong(object.etag.clone())),
            last_modified: Some(Timestamp::from(object.last_modified)),
            ..Default::default()
        };
        with_bucket(&self.store, &input.bucket, |b| {
            b.objects.insert(input.key.clone(), object);
            Ok(())
        })?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(result),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        // Deleting a missing key succeeds, as on S3.
        with_bucket(&self.store, &req.input.bucket, |b| {
            b.objects.remove(&req.input.key);
            Ok(())
        })?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "The XML you provided was not well-formed or did not validate against our published schema"));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let deleted = with_bucket(&self.store, &input.bucket, |b| {
            let mut deleted = Vec::new();
            for id in &input.delete.objects {
                b.objects.remove(&id.key);
                if !quiet {
                    deleted.push(DeletedObject {
                        key: Some(id.key.clone()),
                        ..Default::default()
                    });
                }
            }
            Ok(deleted)
        })?;
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let max = max_keys(input.max_keys)?;
        let url = wants_url(input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let marker = match &input.continuation_token {
            Some(t) => Some(decode_token(t)?),
            None => input.start_after.clone(),
        };
        let page = with_bucket(&self.store, &input.bucket, |b| {
            Ok(store::list(
                &b.objects,
                &prefix,
                input.delimiter.as_deref(),
                marker.as_deref(),
                max,
            ))
        })?;
        let next_token = page
            .truncated
            .then(|| page.entries.last().map(|e| encode_token(e.name())))
            .flatten();
        let key_count = page.entries.len() as i32;
        let (contents, prefixes) = page_to_lists(page.entries, url);
        let enc = |s: Option<String>| {
            if url {
                s.map(|s| url_encode_key(&s))
            } else {
                s
            }
        };
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: enc(Some(prefix)),
            delimiter: enc(input.delimiter),
            start_after: enc(input.start_after),
            max_keys: Some(max as i32),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            next_continuation_token: next_token,
            is_truncated: Some(page.truncated),
            contents: (!contents.is_empty()).then_some(contents),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let max = max_keys(input.max_keys)?;
        let url = wants_url(input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let page = with_bucket(&self.store, &input.bucket, |b| {
            Ok(store::list(
                &b.objects,
                &prefix,
                input.delimiter.as_deref(),
                input.marker.as_deref(),
                max,
            ))
        })?;
        // S3 (v1) only sends NextMarker when a delimiter was given; without one, clients use
        // the last key.
        let next_marker = (page.truncated && input.delimiter.is_some())
            .then(|| page.entries.last().map(|e| e.name().to_owned()))
            .flatten();
        let (contents, prefixes) = page_to_lists(page.entries, url);
        let enc = |s: Option<String>| {
            if url {
                s.map(|s| url_encode_key(&s))
            } else {
                s
            }
        };
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: enc(Some(prefix)),
            delimiter: enc(input.delimiter),
            marker: enc(Some(input.marker.unwrap_or_default())),
            next_marker: enc(next_marker),
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            contents: (!contents.is_empty()).then_some(contents),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
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

/// `x-amz-copy-source-if-match` / `-if-none-match`: both answer 412 on S3.
pub fn check_copy_conditions(
    source: &Object,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<()> {
    let failed = if_match.is_some_and(|c| !etag_matches(c, &source.etag))
        || if_none_match.is_some_and(|c| etag_matches(c, &source.etag));
    if failed {
        return Err(s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ));
    }
    Ok(())
}

/// Maps an error code to the `S3ErrorCode` for codes s3s has no variant for.
pub fn custom_code(code: &str) -> S3ErrorCode {
    code.parse().expect("S3ErrorCode parsing is infallible")
}
