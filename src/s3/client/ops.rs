//! The S3 operations of [`ObjectClient`], each one request (DeleteObjects: one per 1,000
//! keys) built on `transport`, and the reading of their answers.

use std::time::SystemTime;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::Method;

use super::transport::{Request, Response};
use super::{compat, PartCopy, S3Client};
use crate::s3::checksum;
use crate::s3::error::redact;
use crate::s3::settings::{Applies, ObjectSettings};
use crate::s3::{
    xml, AppendObjectParams, CompletedPart, GetObjectOutput, GetObjectParams, ListObjectsParams,
    ListPage, Metadata, ObjectClient, ObjectMeta, PendingUpload, PutObjectParams, S3Error,
    UploadPartCopyParams,
};

/// S3's limit on keys per DeleteObjects.
const S3_BATCH_LIMIT: usize = 1000;

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn etag_of(resp: &Response) -> Result<String, S3Error> {
    header(&resp.headers, "etag")
        .map(str::to_string)
        .ok_or_else(|| S3Error::Malformed("answer without an ETag header".into()))
}

/// `Content-Range: bytes 0-99/1234` → 1234.
fn total_from_content_range(value: &str) -> Result<u64, S3Error> {
    value
        .rsplit_once('/')
        .and_then(|(_, total)| total.trim().parse().ok())
        .ok_or_else(|| S3Error::Malformed(format!("bad Content-Range {value:?}")))
}

/// Metadata from the headers of a HEAD or GET answer. `size` is the whole object's.
fn meta_from_headers(key: &str, resp: &Response) -> Result<ObjectMeta, S3Error> {
    let headers = &resp.headers;
    let size = match header(headers, "content-range") {
        Some(range) => total_from_content_range(range)?,
        None => match header(headers, "content-length") {
            Some(len) => len
                .trim()
                .parse()
                .map_err(|_| S3Error::Malformed(format!("bad Content-Length {len:?}")))?,
            None => resp.body.len() as u64,
        },
    };
    let last_modified = match header(headers, "last-modified") {
        Some(date) => httpdate::parse_http_date(date)
            .map_err(|_| S3Error::Malformed(format!("bad Last-Modified {date:?}")))?,
        None => return Err(S3Error::Malformed("answer without Last-Modified".into())),
    };
    Ok(ObjectMeta {
        key: key.to_string(),
        size,
        etag: etag_of(resp)?,
        last_modified,
        metadata: Some(Metadata::from_headers(headers.iter().filter_map(
            |(name, value)| Some((name.as_str(), header_text(value)?)),
        ))),
        version_id: header(headers, "x-amz-version-id").map(str::to_string),
    })
}

/// A header's value as text: visible ASCII, or UTF-8 (S3 passes user metadata through as
/// the bytes it was given).
fn header_text(value: &reqwest::header::HeaderValue) -> Option<&str> {
    value
        .to_str()
        .ok()
        .or_else(|| std::str::from_utf8(value.as_bytes()).ok())
}

impl Request<'_> {
    /// The metadata a written object gets. A storage class the mount sets wins over the
    /// one an object had.
    fn metadata(mut self, metadata: &Metadata, settings: &ObjectSettings) -> Self {
        let skip: &[&str] = match settings.storage_class {
            Some(_) => &["x-amz-storage-class"],
            None => &[],
        };
        self.headers.extend(metadata.headers(skip));
        self
    }
}

impl S3Client {
    /// `x-amz-copy-source` for a key of this bucket: `/bucket/key`, the key URI-encoded
    /// (through an access point: `ARN/object/key`).
    fn copy_source(&self, key: &str) -> String {
        self.addressing.copy_source(key)
    }

    /// HEAD answers carry no body, so a HEAD refused with a bare 400 or 403 cannot say why:
    /// an expired token, an unknown key id and a missing permission look alike, yet the
    /// caller must tell them apart (only the first calls for a credentials refresh). The
    /// same question asked with a GET needing the same permission gets S3's `<Error>`.
    ///
    /// Returns `None` when the GET succeeded: the HEAD's failure is gone (the GET renewed
    /// rejected credentials on the way), and the caller asks its HEAD again.
    pub(super) async fn explain_head_failure(
        &self,
        err: S3Error,
        ask: Request<'_>,
    ) -> Option<S3Error> {
        let bare = match &err {
            S3Error::Service {
                status: 400, code, ..
            } => code == "BadRequest",
            S3Error::AccessDenied { code, .. } => code == "Forbidden",
            _ => false,
        };
        if !bare {
            return Some(err);
        }
        match self.execute(&ask).await {
            Ok(_) => None,
            Err(
                better @ (S3Error::CredentialsRejected { .. }
                | S3Error::AccessDenied { .. }
                | S3Error::WrongRegion { .. }
                | S3Error::NoSuchBucket { .. }),
            ) => Some(better),
            Err(_) => Some(err),
        }
    }
}

impl S3Client {
    /// The server's clock minus ours, in milliseconds, from the `Date` header of its answer
    /// to a HeadBucket — any answer, an error included, carries one. Ours is read halfway
    /// through the request. `None` when the server sends no usable `Date`.
    pub async fn clock_offset_ms(&self) -> Result<Option<i64>, S3Error> {
        let probe = Request {
            raw_errors: true,
            ..Request::new("HeadBucket", Method::HEAD, None)
        };
        let sent = SystemTime::now();
        let resp = self.execute(&probe).await?;
        let received = SystemTime::now();
        let ours = sent + received.duration_since(sent).unwrap_or_default() / 2;
        let Some(theirs) = resp
            .headers
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(|d| httpdate::parse_http_date(d).ok())
        else {
            return Ok(None);
        };
        Ok(Some(match theirs.duration_since(ours) {
            Ok(ahead) => ahead.as_millis() as i64,
            Err(behind) => -(behind.duration().as_millis() as i64),
        }))
    }
}

/// How far before our first attempt an orphan may have started by S3's clock: the clock
/// is corrected from S3's answers, this covers what remains (and clock granularity).
const ORPHAN_SLACK: std::time::Duration = std::time::Duration::from_secs(2);

impl S3Client {
    /// A CreateMultipartUpload needed more than one attempt: an earlier one may have
    /// started an upload whose answer was lost. Uploads of exactly `key` started since
    /// `sent` (by S3's clock), other than `ours`, are those orphans: aborted, so none is
    /// left to cost storage. Best effort: a failure here is logged, not returned.
    async fn abort_orphans(&self, key: &str, ours: &str, sent: SystemTime) {
        let since = sent.checked_sub(ORPHAN_SLACK).unwrap_or(sent);
        let uploads = match self.list_multipart_uploads(key).await {
            Ok(uploads) => uploads,
            Err(e) => {
                log::debug!("{key:?}: cannot look for orphaned uploads: {e}");
                return;
            }
        };
        for upload in uploads {
            let orphan = upload.key == key
                && upload.upload_id != ours
                && upload.initiated.is_some_and(|t| t >= since);
            if !orphan {
                continue;
            }
            match self.abort_multipart_upload(key, &upload.upload_id).await {
                Ok(()) => log::debug!(
                    "{key:?}: aborted {}, started by an attempt whose answer was lost",
                    upload.upload_id
                ),
                Err(e) => log::debug!("{key:?}: aborting orphan {}: {e}", upload.upload_id),
            }
        }
    }
}

impl S3Client {
    /// UploadPartCopy itself: the part copied inside S3. The range is not empty.
    async fn upload_part_copy_in_s3(
        &self,
        params: &UploadPartCopyParams,
    ) -> Result<CompletedPart, S3Error> {
        let range = &params.range;
        let mut req = Request::new("UploadPartCopy", Method::PUT, Some(&params.key))
            .query("partNumber", params.part_number.to_string())
            .query("uploadId", params.upload_id.as_str())
            .header("x-amz-copy-source", self.copy_source(&params.source_key))
            .header(
                "x-amz-copy-source-range",
                format!("bytes={}-{}", range.start, range.end - 1),
            )
            .object_headers(self.settings.headers(Applies::Access))
            .object_headers(self.settings.copy_source_headers())
            .object_headers(self.access.copy_source_headers());
        if let Some(etag) = &params.source_if_match {
            req = req.header("x-amz-copy-source-if-match", etag.clone());
            req.if_match = Some(etag);
        }
        req.error_key = Some(&params.source_key);
        req.error_in_ok = true;
        let resp = self.execute(&req).await?;
        let (etag, checksum_crc32c) = xml::parse_copy_part(&resp.body)?;
        Ok(CompletedPart {
            part_number: params.part_number,
            etag,
            checksum_crc32c,
            size: range.end - range.start,
        })
    }
}

impl ObjectClient for S3Client {
    fn unreachable_since(&self) -> Option<std::time::SystemTime> {
        self.reach.since().map(|(_, at)| at)
    }

    fn outages(&self) -> u64 {
        self.reach.outages()
    }

    async fn head_bucket(&self) -> Result<(), S3Error> {
        self.head_bucket_checked().await
    }

    async fn head_object(&self, key: &str) -> Result<ObjectMeta, S3Error> {
        let head = Request::new("HeadObject", Method::HEAD, Some(key))
            .object_headers(self.settings.headers(Applies::Access));
        let err = match self.execute(&head).await {
            Ok(resp) => return meta_from_headers(key, &resp),
            Err(err) => err,
        };
        let ask = Request::new("GetObject", Method::GET, Some(key))
            .header("range", "bytes=0-0")
            .object_headers(self.settings.headers(Applies::Access));
        match self.explain_head_failure(err, ask).await {
            Some(err) => Err(err),
            // The explaining GET cured the cause (renewed credentials): ask once more.
            None => {
                let resp = self.execute(&head).await?;
                meta_from_headers(key, &resp)
            }
        }
    }

    async fn get_object(&self, params: GetObjectParams) -> Result<GetObjectOutput, S3Error> {
        let key = params.key.as_str();
        let mut req = Request {
            keep_chunks: true,
            ..Request::new("GetObject", Method::GET, Some(key))
        }
        .object_headers(self.settings.headers(Applies::Access));
        if let Some(range) = &params.range {
            // An empty half-open range has no `bytes=a-b` form; S3 would call it unsatisfiable.
            if range.start >= range.end {
                return Err(S3Error::InvalidRange);
            }
            req = req.header("range", format!("bytes={}-{}", range.start, range.end - 1));
        }
        if let Some(etag) = &params.if_match {
            req = req.header("if-match", etag.clone());
            req.if_match = Some(etag);
        }
        let resp = self.execute(&req).await?;
        let meta = meta_from_headers(key, &resp)?;
        let body = match (&params.range, resp.status) {
            // A server that ignores Range sends the whole object with 200: cut it ourselves.
            (Some(range), 200) => {
                if range.start >= meta.size {
                    return Err(S3Error::InvalidRange);
                }
                let end = range.end.min(meta.size).min(resp.chunks.len() as u64);
                resp.chunks.slice(range.start as usize..end as usize)
            }
            _ => resp.chunks,
        };
        Ok(GetObjectOutput { meta, body })
    }

    async fn list_objects_page(
        &self,
        params: &ListObjectsParams,
        continuation_token: Option<&str>,
    ) -> Result<ListPage, S3Error> {
        self.list_page(params, continuation_token).await
    }

    async fn put_object(&self, params: PutObjectParams) -> Result<String, S3Error> {
        let build = |md5| {
            Request::new("PutObject", Method::PUT, Some(&params.key))
                .object_headers(self.settings.headers(Applies::Create))
                .metadata(&params.metadata, &self.settings)
                .body_with_integrity(params.body.clone(), md5)
        };
        let (resp, _) = self.send_with_integrity("PutObject", build).await?;
        let etag = etag_of(&resp)?;
        self.learn_etags(&params.body, &etag);
        Ok(etag)
    }

    async fn rename_object(&self, from: &str, to: &str) -> Result<bool, S3Error> {
        if !self.directory
            || self
                .rename_missing
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(false);
        }
        self.rename_object_request(from, to).await
    }

    async fn append_object(&self, params: AppendObjectParams) -> Result<Option<String>, S3Error> {
        if !self.directory {
            return Ok(None);
        }
        self.append_object_request(&params).await.map(Some)
    }

    fn supports_start_after(&self) -> bool {
        !self.directory
    }

    async fn delete_object(&self, key: &str) -> Result<(), S3Error> {
        self.execute(&Request::new("DeleteObject", Method::DELETE, Some(key)))
            .await
            .map(drop)
    }

    async fn delete_objects(&self, keys: &[String]) -> Result<Vec<(String, String)>, S3Error> {
        let mut failed = Vec::new();
        for batch in keys.chunks(S3_BATCH_LIMIT) {
            let body = Bytes::from(xml::delete_objects_body(batch));
            let req = Request::new("DeleteObjects", Method::POST, None)
                .query("delete", "")
                .header("content-type", "application/xml")
                .body_with_md5(body);
            let resp = self.execute(&req).await?;
            for (key, reason) in xml::parse_delete_result(&resp.body)? {
                failed.push((key, redact(&reason)));
            }
        }
        Ok(failed)
    }

    async fn copy_object(
        &self,
        from: &str,
        to: &str,
        replace: Option<&Metadata>,
    ) -> Result<String, S3Error> {
        let mut req = Request::new("CopyObject", Method::PUT, Some(to))
            .header("x-amz-copy-source", self.copy_source(from))
            .object_headers(self.settings.headers(Applies::Create))
            .object_headers(self.settings.copy_source_headers())
            .object_headers(self.access.copy_source_headers());
        if let Some(metadata) = replace {
            req = req
                .header("x-amz-metadata-directive", "REPLACE")
                .metadata(metadata, &self.settings);
        }
        // A missing source is the error S3 reports for a copy.
        req.error_key = Some(from);
        req.error_in_ok = true;
        let resp = self.execute(&req).await?;
        xml::parse_copy_object(&resp.body)
    }

    async fn create_multipart_upload(
        &self,
        key: &str,
        metadata: &Metadata,
    ) -> Result<String, S3Error> {
        let build = |no_checksum: bool| {
            let req = Request::new("CreateMultipartUpload", Method::POST, Some(key))
                .query("uploads", "")
                .object_headers(self.settings.headers(Applies::Create))
                .metadata(metadata, &self.settings);
            if no_checksum {
                req
            } else {
                req.header(checksum::ALGORITHM_HEADER, checksum::ALGORITHM)
            }
        };
        let sent = self.clock.now();
        let no_checksum = self.quirks.no_checksums();
        let (mut resp, mut attempts) = self.execute_counted(&build(no_checksum)).await;
        // A refusal created nothing: asking again without the algorithm cannot duplicate.
        if let (false, Err(e)) = (no_checksum, &resp) {
            if compat::refused(e) {
                let (again, more) = self.execute_counted(&build(true)).await;
                if again.is_ok() {
                    self.quirks
                        .found_no_checksums("CreateMultipartUpload", &e.to_string());
                    resp = again;
                    attempts = more;
                }
            }
        }
        let upload_id = xml::parse_initiate_multipart(&resp?.body)?;
        if attempts > 1 {
            self.abort_orphans(key, &upload_id, sent).await;
        }
        Ok(upload_id)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<CompletedPart, S3Error> {
        let build = |md5| {
            Request::new("UploadPart", Method::PUT, Some(key))
                .query("partNumber", part_number.to_string())
                .query("uploadId", upload_id)
                .object_headers(self.settings.headers(Applies::Access))
                .body_with_integrity(body.clone(), md5)
        };
        let (resp, md5) = self.send_with_integrity("UploadPart", build).await?;
        let etag = etag_of(&resp)?;
        self.learn_etags(&body, &etag);
        Ok(CompletedPart {
            part_number,
            etag,
            // Listed in the Complete only when it was sent.
            checksum_crc32c: (!md5).then(|| checksum::crc32c_base64(&body)),
            size: body.len() as u64,
        })
    }

    async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<String, S3Error> {
        // An SSE-C upload is completed with its key, as S3 requires.
        let mut req = Request::new("CompleteMultipartUpload", Method::POST, Some(key))
            .query("uploadId", upload_id)
            .header("content-type", "application/xml")
            .object_headers(self.settings.headers(Applies::Access));
        req.body = Bytes::from(xml::complete_multipart_body(parts));
        req.error_in_ok = true;
        let resp = self.execute(&req).await?;
        xml::parse_complete_multipart(&resp.body)
    }

    async fn abort_multipart_upload(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        let req = Request::new("AbortMultipartUpload", Method::DELETE, Some(key))
            .query("uploadId", upload_id);
        self.execute(&req).await.map(drop)
    }

    async fn upload_part_copy(
        &self,
        params: UploadPartCopyParams,
    ) -> Result<CompletedPart, S3Error> {
        if params.range.start >= params.range.end {
            return Err(S3Error::InvalidRange);
        }
        // A range above the server's copy limit (`--single-copy-limit`, below a staged
        // file's part size on some servers) cannot be copied there either.
        let too_large = params.range.end - params.range.start > self.single_copy_limit;
        if too_large || self.quirks.part_copy() == PartCopy::Missing {
            return self.copy_part_through_here(params).await;
        }
        match self.upload_part_copy_in_s3(&params).await {
            Ok(part) => {
                self.quirks.found_part_copy();
                Ok(part)
            }
            Err(e) if compat::not_implemented(&e) => {
                self.quirks.found_no_part_copy(&e.to_string());
                self.copy_part_through_here(params).await
            }
            Err(e) => Err(e),
        }
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<CompletedPart>, S3Error> {
        let mut all = Vec::new();
        let mut marker: Option<u32> = None;
        loop {
            let mut req = Request::new("ListParts", Method::GET, Some(key))
                .query("uploadId", upload_id)
                .object_headers(self.settings.headers(Applies::Access));
            if let Some(m) = marker {
                req = req.query("part-number-marker", m.to_string());
            }
            let resp = self.execute(&req).await?;
            let (parts, next) = xml::parse_list_parts(&resp.body)?;
            all.extend(parts);
            match next {
                Some(m) if Some(m) != marker => marker = Some(m),
                _ => return Ok(all),
            }
        }
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, S3Error> {
        let mut all = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut req = Request::new("ListMultipartUploads", Method::GET, None)
                .query("uploads", "")
                .query("prefix", prefix);
            if let Some((key, id)) = &markers {
                req = req
                    .query("key-marker", key.clone())
                    .query("upload-id-marker", id.clone());
            }
            let resp = self.execute(&req).await?;
            let (uploads, next) = xml::parse_list_uploads(&resp.body)?;
            all.extend(
                uploads
                    .into_iter()
                    .map(|(key, upload_id, initiated)| PendingUpload {
                        key,
                        upload_id,
                        initiated,
                    }),
            );
            match next {
                Some(m) if Some(&m) != markers.as_ref() => markers = Some(m),
                _ => return Ok(all),
            }
        }
    }

    fn single_copy_limit(&self) -> u64 {
        self.single_copy_limit
    }

    fn part_copy(&self) -> PartCopy {
        self.quirks.part_copy()
    }

    fn etags_are_md5(&self) -> Option<bool> {
        self.quirks.etags_are_md5()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn content_range_total() {
        assert_eq!(total_from_content_range("bytes 0-99/1234").unwrap(), 1234);
        assert!(total_from_content_range("bytes 0-99/*").is_err());
        assert!(total_from_content_range("garbage").is_err());
    }

    #[test]
    fn meta_from_a_ranged_answer() {
        let mut headers = HeaderMap::new();
        headers.insert("etag", "\"abc\"".parse().unwrap());
        headers.insert(
            "last-modified",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        headers.insert("content-range", "bytes 2-4/10".parse().unwrap());
        headers.insert("content-length", "3".parse().unwrap());
        let resp = Response {
            status: 206,
            headers,
            body: Bytes::from_static(b"234"),
            chunks: crate::s3::Chunks::new(),
        };
        let meta = meta_from_headers("k", &resp).unwrap();
        assert_eq!((meta.size, meta.etag.as_str()), (10, "\"abc\""));
        assert!(meta.last_modified > SystemTime::UNIX_EPOCH);
    }
}
