//! How the client lives with a server's quirks ([`super::Quirks`]): each fallback beside
//! the answer that calls for it, so `ops` reads as S3's operations and nothing more.
//!
//! - Checksums: a body goes with `x-amz-checksum-crc32c` until the server refuses one
//!   (400/501) and takes the same request with `Content-MD5`; from then on with MD5.
//! - Listings: ListObjectsV2 until a first page is refused (400/501) or comes in V1's
//!   shape, and a V1 listing of it works; from then on V1 with markers. Every page is
//!   sorted before anyone sees it.
//! - UploadPartCopy: until the server answers 501 / `NotImplemented`; from then on a part
//!   is copied through this machine — a ranged GET pinned to the source's ETag, then an
//!   UploadPart — one part in memory at a time per copy task.
//! - ETags: the first bodies written while the kind is unknown are hashed with MD5 once,
//!   to learn whether the server's ETags are MD5s.

use bytes::Bytes;
use md5::Digest as _;
use reqwest::Method;

use super::transport::{Request, Response};
use super::S3Client;
use crate::s3::{
    xml, CompletedPart, GetObjectParams, ListObjectsParams, ListPage, ObjectClient, S3Error,
    UploadPartCopyParams,
};

/// S3's limit on entries per listing page.
const S3_LIST_LIMIT: usize = 1000;

/// Bodies up to this size teach the client what kind of ETags the server gives, while it
/// does not know yet: one MD5 of at most a part (a few ms), once per mount.
const ETAG_PROBE_MAX: usize = 16 * 1024 * 1024;

/// An answer that refuses something the request carried (a header, a query parameter):
/// 400 or 501, for good.
pub(super) fn refused(e: &S3Error) -> bool {
    matches!(
        e,
        S3Error::Service {
            status: 400 | 501,
            ..
        }
    ) && !e.is_retryable()
}

/// An answer saying the server lacks the operation.
pub(super) fn not_implemented(e: &S3Error) -> bool {
    matches!(e, S3Error::Service { status, code, .. } if *status == 501 || code == "NotImplemented")
}

impl S3Client {
    /// Sends the request `build(md5)` makes with CRC32C (`md5 = false`) unless the server
    /// is known to refuse checksum headers; a refusal is tried once more with `Content-MD5`,
    /// and its success teaches the quirk. Returns the answer and whether MD5 was used.
    pub(super) async fn send_with_integrity<'a>(
        &self,
        op: &str,
        build: impl Fn(bool) -> Request<'a>,
    ) -> Result<(Response, bool), S3Error> {
        if self.quirks.no_checksums() {
            return Ok((self.execute(&build(true)).await?, true));
        }
        match self.execute(&build(false)).await {
            Err(e) if refused(&e) => match self.execute(&build(true)).await {
                Ok(resp) => {
                    self.quirks.found_no_checksums(op, &e.to_string());
                    Ok((resp, true))
                }
                // Not the checksum, then: the first answer is the one to report.
                Err(_) => Err(e),
            },
            other => other.map(|resp| (resp, false)),
        }
    }

    /// Learns from a body written and the ETag it got whether ETags are MD5s, while that
    /// is unknown.
    pub(super) fn learn_etags(&self, body: &[u8], etag: &str) {
        if self.quirks.etags_unconfirmed() && body.len() <= ETAG_PROBE_MAX {
            self.quirks
                .saw_etag(etag, &hex::encode(md5::Md5::digest(body)));
        }
    }

    /// One page, V2 or V1 as the server serves, sorted.
    pub(super) async fn list_page(
        &self,
        params: &ListObjectsParams,
        token: Option<&str>,
    ) -> Result<ListPage, S3Error> {
        let page = if self.quirks.list_v1() {
            self.list_v1_page(params, token).await?
        } else {
            match self.list_v2_page(params, token).await {
                // Only a first page can switch: a V2 token means nothing to V1.
                Err(e)
                    if token.is_none() && (refused(&e) || matches!(e, S3Error::Malformed(_))) =>
                {
                    match self.list_v1_page(params, None).await {
                        Ok(page) => {
                            self.quirks.found_list_v1(&e.to_string());
                            page
                        }
                        // Not the listing's version, then: the first answer is the one.
                        Err(_) => return Err(e),
                    }
                }
                other => other?,
            }
        };
        Ok(self.sorted(page))
    }

    fn sorted(&self, mut page: ListPage) -> ListPage {
        let keys_sorted = page.objects.windows(2).all(|w| w[0].key <= w[1].key);
        let prefixes_sorted = page.common_prefixes.windows(2).all(|w| w[0] <= w[1]);
        if !(keys_sorted && prefixes_sorted) {
            self.quirks.found_unsorted();
            page.objects.sort_by(|a, b| a.key.cmp(&b.key));
            page.common_prefixes.sort();
        }
        page
    }

    async fn list_v2_page(
        &self,
        params: &ListObjectsParams,
        continuation_token: Option<&str>,
    ) -> Result<ListPage, S3Error> {
        let mut req = Request::new("ListObjectsV2", Method::GET, None)
            .query("list-type", "2")
            // Keys may hold characters XML 1.0 cannot carry; S3 url-encodes them on request.
            .query("encoding-type", "url")
            .query("prefix", params.prefix.clone());
        if let Some(d) = &params.delimiter {
            req = req.query("delimiter", d.clone());
        }
        if let Some(token) = continuation_token {
            req = req.query("continuation-token", token);
        }
        if let Some(after) = &params.start_after {
            req = req.query("start-after", after.clone());
        }
        if let Some(max) = params.max_keys {
            req = req.query("max-keys", max.clamp(1, S3_LIST_LIMIT).to_string());
        }
        let resp = self.execute(&req).await?;
        xml::parse_list_objects_v2(&resp.body)
    }

    /// ListObjects (V1): the marker is the previous page's (`token`), else `start_after`.
    async fn list_v1_page(
        &self,
        params: &ListObjectsParams,
        token: Option<&str>,
    ) -> Result<ListPage, S3Error> {
        let mut req = Request::new("ListObjects", Method::GET, None)
            .query("encoding-type", "url")
            .query("prefix", params.prefix.clone());
        if let Some(d) = &params.delimiter {
            req = req.query("delimiter", d.clone());
        }
        if let Some(marker) = token.or(params.start_after.as_deref()) {
            req = req.query("marker", marker);
        }
        if let Some(max) = params.max_keys {
            req = req.query("max-keys", max.clamp(1, S3_LIST_LIMIT).to_string());
        }
        let resp = self.execute(&req).await?;
        xml::parse_list_objects_v1(&resp.body)
    }

    /// A part copied through this machine, for a server without UploadPartCopy: the
    /// source's range (pinned to its ETag) downloaded, then uploaded as the part.
    pub(super) async fn copy_part_through_here(
        &self,
        params: UploadPartCopyParams,
    ) -> Result<CompletedPart, S3Error> {
        let source = self
            .get_object(GetObjectParams {
                key: params.source_key.clone(),
                range: Some(params.range.clone()),
                if_match: params.source_if_match.clone(),
            })
            .await?;
        let body: Bytes = source.body.to_bytes();
        if body.len() as u64 != params.range.end - params.range.start {
            return Err(S3Error::Malformed(format!(
                "GET of {:?} bytes {:?} returned {} bytes",
                params.source_key,
                params.range,
                body.len()
            )));
        }
        self.upload_part(&params.key, &params.upload_id, params.part_number, body)
            .await
    }
}
