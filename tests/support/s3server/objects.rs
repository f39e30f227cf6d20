//! Object operations (HEAD, GET, PUT, copy, delete) on the store, with S3's conditional
//! requests, ranges and Content-MD5 checks. GET bodies are zero-copy slices of the stored
//! `Bytes`.

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use s3s::dto::*;
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{s3_error, S3Result, StdError};

use super::service::{check_content_md5, check_crc32c, collect_body, no_such_key, with_bucket};
use super::sse::{CustomerKeyHeaders, StoredWith};
use super::store::{self, Object, Store};

/// Size of the slices a GET body is streamed in: big enough to be cheap per chunk, small
/// enough that a slow reader does not make the server buffer much.
const GET_CHUNK: usize = 1024 * 1024;

pub fn etag_matches(condition: &ETagCondition, etag: &str) -> bool {
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

pub fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn metadata_or_none(m: &HashMap<String, String>) -> Option<Metadata> {
    (!m.is_empty()).then(|| m.clone())
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

/// What GET and HEAD share: the object, preconditions checked, the requested span.
struct Read {
    object: Object,
    body: Bytes,
    content_range: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn read(
    store: &Store,
    bucket: &str,
    key: &str,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    range: Option<Range>,
    customer: CustomerKeyHeaders<'_>,
) -> S3Result<Read> {
    let object = lookup(store, bucket, key)?;
    object.stored.check_access(customer)?;
    check_read_conditions(
        &object,
        if_match,
        if_unmodified_since,
        if_none_match,
        if_modified_since,
    )?;
    let total = object.body.len() as u64;
    let (body, content_range) = match range {
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
    Ok(Read {
        object,
        body,
        content_range,
    })
}

pub fn head(store: &Store, input: HeadObjectInput) -> S3Result<HeadObjectOutput> {
    let Read {
        object,
        body,
        content_range,
    } = read(
        store,
        &input.bucket,
        &input.key,
        input.if_match.as_ref(),
        input.if_unmodified_since.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.range,
        CustomerKeyHeaders::new(
            input.sse_customer_algorithm.as_ref(),
            input.sse_customer_key.as_ref(),
            input.sse_customer_key_md5.as_ref(),
        ),
    )?;
    Ok(HeadObjectOutput {
        accept_ranges: Some("bytes".into()),
        content_length: Some(to_i64(body.len())),
        content_range,
        content_type: Some(object.content_type.clone()),
        e_tag: Some(ETag::Strong(object.etag.clone())),
        last_modified: Some(Timestamp::from(object.last_modified)),
        metadata: metadata_or_none(&object.metadata),
        server_side_encryption: object.stored.sse.clone().map(ServerSideEncryption::from),
        ssekms_key_id: object.stored.kms_key_id.clone(),
        sse_customer_algorithm: object
            .stored
            .customer_key_md5
            .as_ref()
            .map(|_| "AES256".into()),
        sse_customer_key_md5: object.stored.customer_key_md5.clone(),
        storage_class: object.stored.storage_class.clone().map(StorageClass::from),
        ..Default::default()
    })
}

pub fn get(store: &Store, input: GetObjectInput) -> S3Result<GetObjectOutput> {
    let Read {
        object,
        body,
        content_range,
    } = read(
        store,
        &input.bucket,
        &input.key,
        input.if_match.as_ref(),
        input.if_unmodified_since.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.range,
        CustomerKeyHeaders::new(
            input.sse_customer_algorithm.as_ref(),
            input.sse_customer_key.as_ref(),
            input.sse_customer_key_md5.as_ref(),
        ),
    )?;
    Ok(GetObjectOutput {
        accept_ranges: Some("bytes".into()),
        content_length: Some(to_i64(body.len())),
        body: Some(StreamingBlob::new(SliceStream { rest: body })),
        content_range,
        content_type: Some(object.content_type.clone()),
        e_tag: Some(ETag::Strong(object.etag.clone())),
        last_modified: Some(Timestamp::from(object.last_modified)),
        metadata: metadata_or_none(&object.metadata),
        server_side_encryption: object.stored.sse.clone().map(ServerSideEncryption::from),
        ssekms_key_id: object.stored.kms_key_id.clone(),
        sse_customer_algorithm: object
            .stored
            .customer_key_md5
            .as_ref()
            .map(|_| "AES256".into()),
        sse_customer_key_md5: object.stored.customer_key_md5.clone(),
        storage_class: object.stored.storage_class.clone().map(StorageClass::from),
        ..Default::default()
    })
}

pub async fn put(store: &Store, input: PutObjectInput) -> S3Result<PutObjectOutput> {
    with_bucket(store, &input.bucket, |_| Ok(()))?;
    let body = collect_body(input.body, input.content_length).await?;
    check_content_md5(input.content_md5.as_deref(), &body)?;
    check_crc32c(input.checksum_crc32c.as_deref(), &body)?;
    let stored = StoredWith::from_request(
        input.server_side_encryption.as_ref(),
        input.ssekms_key_id.as_ref(),
        CustomerKeyHeaders::new(
            input.sse_customer_algorithm.as_ref(),
            input.sse_customer_key.as_ref(),
            input.sse_customer_key_md5.as_ref(),
        ),
        input.storage_class.as_ref(),
        input.acl.as_ref(),
    )?;
    let mut object = Object::new(body, input.content_type, input.metadata.unwrap_or_default());
    *object.stored = stored;
    object.etag = store.quirks.etag(object.etag);
    let etag = object.etag.clone();
    with_bucket(store, &input.bucket, |b| {
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
    Ok(PutObjectOutput {
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    })
}

pub fn copy(store: &Store, input: CopyObjectInput) -> S3Result<CopyObjectOutput> {
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
    let source = lookup(store, src_bucket, src_key)?;
    let limit = store.single_copy_limit();
    if source.body.len() > limit {
        return Err(s3_error!(
            InvalidRequest,
            "The specified copy source is larger than the maximum allowable size for a copy source: {limit}"
        ));
    }
    source.stored.check_access(CustomerKeyHeaders::new(
        input.copy_source_sse_customer_algorithm.as_ref(),
        input.copy_source_sse_customer_key.as_ref(),
        input.copy_source_sse_customer_key_md5.as_ref(),
    ))?;
    check_copy_conditions(
        &source,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
    )?;
    // The copy is stored as this request asks, not as the source was (S3's rule).
    let stored = StoredWith::from_request(
        input.server_side_encryption.as_ref(),
        input.ssekms_key_id.as_ref(),
        CustomerKeyHeaders::new(
            input.sse_customer_algorithm.as_ref(),
            input.sse_customer_key.as_ref(),
            input.sse_customer_key_md5.as_ref(),
        ),
        input.storage_class.as_ref(),
        input.acl.as_ref(),
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
    *object.stored = stored;
    // A copy made in one request is a single-part object: its ETag is the body's MD5.
    if object.etag.contains('-') {
        object.etag = store::md5_hex(&object.body);
    }
    object.etag = store.quirks.etag(object.etag);
    let result = CopyObjectResult {
        e_tag: Some(ETag::Strong(object.etag.clone())),
        last_modified: Some(Timestamp::from(object.last_modified)),
        ..Default::default()
    };
    with_bucket(store, &input.bucket, |b| {
        b.objects.insert(input.key.clone(), object);
        Ok(())
    })?;
    Ok(CopyObjectOutput {
        copy_object_result: Some(result),
        ..Default::default()
    })
}

pub fn delete(store: &Store, input: DeleteObjectInput) -> S3Result<DeleteObjectOutput> {
    // Deleting a missing key succeeds, as on S3.
    with_bucket(store, &input.bucket, |b| {
        b.objects.remove(&input.key);
        Ok(())
    })?;
    Ok(DeleteObjectOutput::default())
}

pub fn delete_many(store: &Store, input: DeleteObjectsInput) -> S3Result<DeleteObjectsOutput> {
    if input.delete.objects.len() > 1000 {
        return Err(s3_error!(MalformedXML, "The XML you provided was not well-formed or did not validate against our published schema"));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let deleted = with_bucket(store, &input.bucket, |b| {
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
    Ok(DeleteObjectsOutput {
        deleted: Some(deleted),
        ..Default::default()
    })
}
