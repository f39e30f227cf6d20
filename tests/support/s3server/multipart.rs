//! Multipart uploads as S3 validates them: parts addressed by number, completion only with
//! the parts listed in ascending order with matching ETags, every part but the last at least
//! the minimum part size (5 MiB on S3; tests may lower it), and the `-N` ETag of the result.

use bytes::BytesMut;
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3Result};

use super::objects::check_copy_conditions;
use super::service::{check_content_md5, check_crc32c, collect_body, no_such_key, with_bucket};
use super::sse::{CustomerKeyHeaders, StoredWith};
use super::store::{self, Object, Part, Store, Upload};

fn no_such_upload() -> S3Error {
    s3_error!(
        NoSuchUpload,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )
}

fn check_part_number(n: i32) -> S3Result<()> {
    if !(1..=10_000).contains(&n) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    Ok(())
}

/// The open upload `upload_id` for `key`.
fn upload_mut<'a>(
    uploads: &'a mut std::collections::BTreeMap<String, Upload>,
    upload_id: &str,
    key: &str,
) -> S3Result<&'a mut Upload> {
    uploads
        .get_mut(upload_id)
        .filter(|u| u.key == key)
        .ok_or_else(no_such_upload)
}

pub fn create(
    store: &Store,
    input: CreateMultipartUploadInput,
) -> S3Result<CreateMultipartUploadOutput> {
    let upload_id = store.next_upload_id();
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
    with_bucket(store, &input.bucket, |b| {
        let upload = Upload {
            key: input.key.clone(),
            initiated: store::now(),
            content_type: input.content_type.clone(),
            metadata: input.metadata.clone().unwrap_or_default(),
            stored,
            parts: Default::default(),
        };
        b.uploads.insert(upload_id.clone(), upload);
        Ok(())
    })?;
    Ok(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload_id),
        ..Default::default()
    })
}

pub async fn upload_part(store: &Store, input: UploadPartInput) -> S3Result<UploadPartOutput> {
    check_part_number(input.part_number)?;
    let customer = CustomerKeyHeaders::new(
        input.sse_customer_algorithm.as_ref(),
        input.sse_customer_key.as_ref(),
        input.sse_customer_key_md5.as_ref(),
    );
    with_bucket(store, &input.bucket, |b| {
        // Every part of an SSE-C upload carries the upload's key.
        upload_mut(&mut b.uploads, &input.upload_id, &input.key)?
            .stored
            .check_access(customer)
    })?;
    let body = collect_body(input.body, input.content_length).await?;
    check_content_md5(input.content_md5.as_deref(), &body)?;
    check_crc32c(input.checksum_crc32c.as_deref(), &body)?;
    let etag = store.quirks.etag(store::md5_hex(&body));
    let part = Part {
        body,
        etag: etag.clone(),
        last_modified: store::now(),
    };
    with_bucket(store, &input.bucket, |b| {
        // Re-check: the upload may have been aborted while the body was arriving.
        let upload = upload_mut(&mut b.uploads, &input.upload_id, &input.key)?;
        upload.parts.insert(input.part_number, part);
        Ok(())
    })?;
    Ok(UploadPartOutput {
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    })
}

/// Parses `x-amz-copy-source-range: bytes=first-last` against an object of `len` bytes.
fn copy_range(range: Option<&str>, len: usize) -> S3Result<std::ops::Range<usize>> {
    let Some(range) = range else {
        return Ok(0..len);
    };
    let invalid = || {
        s3_error!(InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
    };
    let (first, last) = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    let first: usize = first.parse().map_err(|_| invalid())?;
    let last: usize = last.parse().map_err(|_| invalid())?;
    if first > last || last >= len {
        return Err(s3_error!(
            InvalidRange,
            "The requested range is not satisfiable"
        ));
    }
    Ok(first..last + 1)
}

pub fn upload_part_copy(
    store: &Store,
    input: UploadPartCopyInput,
) -> S3Result<UploadPartCopyOutput> {
    check_part_number(input.part_number)?;
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
    let source = with_bucket(store, src_bucket, |b| {
        b.objects.get(&**src_key).cloned().ok_or_else(no_such_key)
    })?;
    source.stored.check_access(CustomerKeyHeaders::new(
        input.copy_source_sse_customer_algorithm.as_ref(),
        input.copy_source_sse_customer_key.as_ref(),
        input.copy_source_sse_customer_key_md5.as_ref(),
    ))?;
    let customer = CustomerKeyHeaders::new(
        input.sse_customer_algorithm.as_ref(),
        input.sse_customer_key.as_ref(),
        input.sse_customer_key_md5.as_ref(),
    );
    check_copy_conditions(
        &source,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
    )?;
    let span = copy_range(input.copy_source_range.as_deref(), source.body.len())?;
    if span.len() > store.single_copy_limit() {
        return Err(s3_error!(
            InvalidRequest,
            "The specified copy range is larger than the maximum allowable part size"
        ));
    }
    let body = source.body.slice(span);
    let etag = store.quirks.etag(store::md5_hex(&body));
    let last_modified = store::now();
    with_bucket(store, &input.bucket, |b| {
        let upload = upload_mut(&mut b.uploads, &input.upload_id, &input.key)?;
        upload.stored.check_access(customer)?;
        upload.parts.insert(
            input.part_number,
            Part {
                body,
                etag: etag.clone(),
                last_modified,
            },
        );
        Ok(())
    })?;
    Ok(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(etag)),
            last_modified: Some(Timestamp::from(last_modified)),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub fn complete(
    store: &Store,
    input: CompleteMultipartUploadInput,
) -> S3Result<CompleteMultipartUploadOutput> {
    let min_part_size = store.min_part_size();
    let requested = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default();
    let customer = CustomerKeyHeaders::new(
        input.sse_customer_algorithm.as_ref(),
        input.sse_customer_key.as_ref(),
        input.sse_customer_key_md5.as_ref(),
    );
    let etag = with_bucket(store, &input.bucket, |b| {
        let upload = upload_mut(&mut b.uploads, &input.upload_id, &input.key)?;
        // As on S3, an SSE-C upload is completed only with its key.
        upload.stored.check_access(customer)?;
        if requested.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        }
        // S3 checks the order of the whole list before looking at any part.
        let numbers: Vec<i32> = requested
            .iter()
            .map(|p| p.part_number.unwrap_or(0))
            .collect();
        if numbers.windows(2).any(|w| w[0] >= w[1]) {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. The parts list must be specified in order by part number."
            ));
        }
        let invalid_part = || {
            s3_error!(
                InvalidPart,
                "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag."
            )
        };
        let mut chosen: Vec<&Part> = Vec::with_capacity(requested.len());
        for (p, number) in requested.iter().zip(&numbers) {
            let part = upload.parts.get(number).ok_or_else(invalid_part)?;
            if p.e_tag.as_ref().is_none_or(|e| e.value() != part.etag) {
                return Err(invalid_part());
            }
            chosen.push(part);
        }
        let (_, init) = chosen.split_last().expect("at least one part");
        if init.iter().any(|p| p.body.len() < min_part_size) {
            return Err(s3_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed object size."
            ));
        }
        let mut body = BytesMut::with_capacity(chosen.iter().map(|p| p.body.len()).sum());
        for part in &chosen {
            body.extend_from_slice(&part.body);
        }
        let etag = store.quirks.etag(store::multipart_etag(
            chosen.iter().map(|p| p.etag.as_str()),
        ));
        let mut object = Object::new(
            body.freeze(),
            upload.content_type.clone(),
            upload.metadata.clone(),
        );
        object.etag = etag.clone();
        *object.stored = upload.stored.clone();
        b.uploads.remove(&input.upload_id);
        b.objects.insert(input.key.clone(), object);
        Ok(etag)
    })?;
    Ok(CompleteMultipartUploadOutput {
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        bucket: Some(input.bucket),
        key: Some(input.key),
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    })
}

pub fn abort(
    store: &Store,
    input: AbortMultipartUploadInput,
) -> S3Result<AbortMultipartUploadOutput> {
    with_bucket(store, &input.bucket, |b| {
        upload_mut(&mut b.uploads, &input.upload_id, &input.key)?;
        b.uploads.remove(&input.upload_id);
        Ok(())
    })?;
    Ok(AbortMultipartUploadOutput::default())
}

pub fn list_uploads(
    store: &Store,
    input: ListMultipartUploadsInput,
) -> S3Result<ListMultipartUploadsOutput> {
    let max = input
        .max_uploads
        .map_or(1000, |n| n.clamp(0, 1000) as usize);
    let prefix = input.prefix.clone().unwrap_or_default();
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let id_marker = input.upload_id_marker.clone().unwrap_or_default();
    let mut all: Vec<(String, String, Upload)> = with_bucket(store, &input.bucket, |b| {
        Ok(b.uploads
            .iter()
            .filter(|(_, u)| u.key.starts_with(&prefix))
            .map(|(id, u)| (u.key.clone(), id.clone(), u.clone()))
            .collect())
    })?;
    all.sort_by(|a, b| (&a.0, a.2.initiated, &a.1).cmp(&(&b.0, b.2.initiated, &b.1)));
    all.retain(|(key, id, _)| {
        key_marker.is_empty()
            || key > &key_marker
            || (key == &key_marker && !id_marker.is_empty() && id > &id_marker)
    });
    let truncated = all.len() > max;
    all.truncate(max);
    let (next_key_marker, next_upload_id_marker) = match (truncated, all.last()) {
        (true, Some((k, id, _))) => (Some(k.clone()), Some(id.clone())),
        _ => (None, None),
    };
    let uploads = all
        .into_iter()
        .map(|(key, id, u)| MultipartUpload {
            key: Some(key),
            upload_id: Some(id),
            initiated: Some(Timestamp::from(u.initiated)),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        })
        .collect();
    Ok(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        next_key_marker,
        next_upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        uploads: Some(uploads),
        ..Default::default()
    })
}

pub fn list_parts(store: &Store, input: ListPartsInput) -> S3Result<ListPartsOutput> {
    let max = input.max_parts.map_or(1000, |n| n.clamp(0, 1000) as usize);
    let after = input.part_number_marker.unwrap_or(0);
    let mut parts: Vec<(i32, Part)> = with_bucket(store, &input.bucket, |b| {
        let upload = upload_mut(&mut b.uploads, &input.upload_id, &input.key)?;
        Ok(upload
            .parts
            .range(after + 1..)
            .map(|(n, p)| (*n, p.clone()))
            .collect())
    })?;
    let truncated = parts.len() > max;
    parts.truncate(max);
    let next_part_number_marker = truncated.then(|| parts.last().map(|(n, _)| *n)).flatten();
    let parts = parts
        .into_iter()
        .map(|(n, p)| s3s::dto::Part {
            part_number: Some(n),
            size: Some(p.body.len() as i64),
            e_tag: Some(ETag::Strong(p.etag)),
            last_modified: Some(Timestamp::from(p.last_modified)),
            ..Default::default()
        })
        .collect();
    Ok(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        part_number_marker: input.part_number_marker,
        next_part_number_marker,
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        parts: Some(parts),
        ..Default::default()
    })
}
