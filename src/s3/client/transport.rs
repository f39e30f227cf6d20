//! Sending one S3 request: sign each attempt with one credentials snapshot, send, read the
//! whole answer, and retry what is retryable with jittered backoff within the retry budget.
//! An attempt fails for slowness only when no byte moved for the I/O timeout (`progress`).

use crate::s3::checksum;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use log::{debug, warn};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;

use super::addressing::Target;
use super::errors::{map_error, ErrorContext};
use super::progress::{Progress, ProgressBody};
use super::S3Client;
use crate::credentials::{clock, Credentials};
use crate::s3::express::SESSION_TOKEN_HEADER;
use crate::s3::settings::SettingHeader;
use crate::s3::xml::parse_error;
use crate::s3::{Chunks, S3Error};
use crate::sigv4::{self, HttpRequest, SigningInputs};

/// One S3 request, replayable: the body is `Bytes`, everything else is borrowed or small.
pub(super) struct Request<'a> {
    /// The operation's name, for retry logs.
    pub op: &'static str,
    pub method: Method,
    /// `None` for bucket-level requests.
    pub key: Option<&'a str>,
    /// Decoded query pairs (signed and sent as `sigv4::encode_query`).
    pub query: Vec<(String, String)>,
    /// Extra headers, sent and signed (lowercase names).
    pub headers: Vec<(String, String)>,
    /// Headers from the mount's object settings (encryption, storage class, ACL, SSE-C
    /// key), sent and signed; the sensitive ones are hidden from HTTP-level logging.
    pub object_headers: Vec<SettingHeader>,
    pub body: Bytes,
    /// The ETag sent in `If-Match`, to name it in `PreconditionFailed`.
    pub if_match: Option<&'a str>,
    /// The key an error is about, when it is not `key` (CopyObject's source).
    pub error_key: Option<&'a str>,
    /// The operation may answer 200 with an `<Error>` body (CopyObject,
    /// CompleteMultipartUpload): such an answer is a failure.
    pub error_in_ok: bool,
    /// Hand non-retryable error answers back as they are (region discovery reads them).
    pub raw_errors: bool,
    /// Keep a success answer's body in the pieces it arrived in ([`Response::chunks`])
    /// instead of joining them (object bodies: joining is a copy of every byte).
    pub keep_chunks: bool,
}

impl<'a> Request<'a> {
    pub fn new(op: &'static str, method: Method, key: Option<&'a str>) -> Self {
        Request {
            op,
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            object_headers: Vec::new(),
            body: Bytes::new(),
            if_match: None,
            error_key: None,
            error_in_ok: false,
            raw_errors: false,
            keep_chunks: false,
        }
    }

    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_string(), value.into()));
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Adds headers of the mount's object settings.
    pub fn object_headers(mut self, headers: Vec<SettingHeader>) -> Self {
        self.object_headers.extend(headers);
        self
    }

    /// A body, with the CRC32C S3 checks it against ([`checksum`]).
    pub fn body_with_checksum(mut self, body: Bytes) -> Self {
        let crc = checksum::crc32c_base64(&body);
        self.body = body;
        self.header(checksum::HEADER, crc)
    }

    /// A body with the checksum S3 checks it against: CRC32C, or `Content-MD5` for a server
    /// that refuses checksum headers (`md5`).
    pub fn body_with_integrity(self, body: Bytes, md5: bool) -> Self {
        if md5 {
            self.body_with_md5(body)
        } else {
            self.body_with_checksum(body)
        }
    }

    /// A body, with the `Content-MD5` S3 checks it against (DeleteObjects requires it).
    pub fn body_with_md5(mut self, body: Bytes) -> Self {
        use base64::Engine as _;
        use md5::Digest as _;
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
        self.body = body;
        self.header("content-md5", md5)
    }
}

/// A whole answer.
pub(super) struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body, unless it went to `chunks`.
    pub body: Bytes,
    /// A success answer's body in pieces, when the request asked to `keep_chunks`.
    pub chunks: Chunks,
}

/// How long a request S3 rejected for stale credentials waits for the refresher.
const REFRESH_WAIT: Duration = Duration::from_secs(30);

impl S3Client {
    /// Sends `req`, retrying per the policy. `Ok` is a success answer (or, with
    /// `raw_errors`, any answer not worth retrying).
    ///
    /// Besides the retry policy, two answers get one extra attempt each: credentials
    /// rejected as expired or unknown (after the refresher renewed exactly that snapshot),
    /// and `RequestTimeTooSkewed` (re-signed by the server's clock).
    pub(super) async fn execute(&self, req: &Request<'_>) -> Result<Response, S3Error> {
        self.execute_counted(req).await.0
    }

    /// [`S3Client::execute`], also saying how many attempts were sent: a request that is
    /// not idempotent (CreateMultipartUpload) checks what an earlier attempt whose answer
    /// was lost may have done.
    pub(super) async fn execute_counted(
        &self,
        req: &Request<'_>,
    ) -> (Result<Response, S3Error>, u32) {
        let mut attempt = 1;
        let outcome = self.execute_attempts(req, &mut attempt).await;
        (outcome, attempt)
    }

    async fn execute_attempts(
        &self,
        req: &Request<'_>,
        attempt: &mut u32,
    ) -> Result<Response, S3Error> {
        let started = tokio::time::Instant::now();
        let mut renewed_credentials = false;
        let mut corrected_clock = false;
        let unreachable_before = self.reach.since().is_some();
        loop {
            let (result, snapshot) = self.send_once(req).await;
            match &result {
                Ok(_) => self.reach.answered(),
                Err(S3Error::Network { .. }) => self.reach.unanswered(),
                Err(_) => {}
            }
            let err = match result {
                Ok(resp) => match self.failure_of(&resp, req) {
                    None => return Ok(resp),
                    Some(err)
                        if req.raw_errors
                            && !(err.is_retryable()
                                && self.retry.may_retry(*attempt, started.elapsed())) =>
                    {
                        return Ok(resp)
                    }
                    Some(S3Error::ClockSkewed { .. }) if !corrected_clock => {
                        corrected_clock = self.learn_clock_offset(&resp.headers);
                        if corrected_clock {
                            continue;
                        }
                        return Err(self.failure_of(&resp, req).unwrap_or(S3Error::ClockSkewed {
                            message: String::new(),
                        }));
                    }
                    Some(err) => err,
                },
                Err(err) => err,
            };
            if let (S3Error::CredentialsRejected { code, .. }, Some(snapshot), false) =
                (&err, &snapshot, renewed_credentials)
            {
                if let Some(cell) = self.signing_cell(req) {
                    warn!(
                        "{} {:?}: S3 rejected the credentials ({code}); renewing them",
                        req.op,
                        req.key.unwrap_or("")
                    );
                    if cell.rejected(snapshot, REFRESH_WAIT).await.is_some() {
                        renewed_credentials = true;
                        continue;
                    }
                }
            }
            let pause = self.retry.backoff(*attempt);
            let gone = match (&err, self.unreachable_budget) {
                // Drive mode: a network that is gone is not waited for long (see
                // `set_unreachable_budget`).
                (S3Error::Network { .. }, Some(budget)) => {
                    unreachable_before || started.elapsed() + pause > budget
                }
                _ => false,
            };
            if gone
                || !err.is_retryable()
                || !self.retry.may_retry(*attempt, started.elapsed() + pause)
            {
                if *attempt > 1 {
                    debug!(
                        "{} {:?}: giving up after {} attempts in {:.1} s",
                        req.op,
                        req.key.unwrap_or(""),
                        *attempt,
                        started.elapsed().as_secs_f64()
                    );
                }
                return Err(err);
            }
            // `err` is already redacted (map_error), and URLs carry no secrets.
            debug!(
                "{} {:?}: attempt {} failed: {err}; retrying in {pause:?}",
                req.op,
                req.key.unwrap_or(""),
                *attempt,
            );
            tokio::time::sleep(pause).await;
            *attempt += 1;
        }
    }

    /// The error an answer stands for, if it is one.
    pub(super) fn failure_of(&self, resp: &Response, req: &Request<'_>) -> Option<S3Error> {
        let ok = (200..300).contains(&resp.status);
        if ok && !(req.error_in_ok && parse_error(&resp.body).is_some()) {
            return None;
        }
        let ctx = ErrorContext {
            bucket: &self.bucket,
            key: req.error_key.or(req.key),
            region: &self.region,
            if_match: req.if_match,
        };
        Some(map_error(resp.status, &resp.headers, &resp.body, &ctx))
    }

    /// Records the server's clock from an answer's `Date` header into the mount's clock
    /// (STS signs by it too); true if it was usable.
    fn learn_clock_offset(&self, headers: &HeaderMap) -> bool {
        let Some(server) = clock::server_date(headers) else {
            return false;
        };
        let offset_ms = self.clock.learn(server);
        warn!("the local clock is {offset_ms} ms off S3's; signing with S3's time");
        true
    }

    /// The time to sign with: local time corrected by what S3 (or STS) told us of its clock.
    fn signing_time(&self) -> SystemTime {
        self.clock.now()
    }

    /// One attempt: a fresh signature from the current credentials snapshot, which is
    /// returned beside the outcome so a rejection names exactly the snapshot S3 refused.
    async fn send_once(
        &self,
        req: &Request<'_>,
    ) -> (Result<Response, S3Error>, Option<Arc<Credentials>>) {
        let mut used = None;
        let result = self.send_signed(req, &mut used).await;
        (result, used)
    }

    async fn send_signed(
        &self,
        req: &Request<'_>,
        used: &mut Option<Arc<Credentials>>,
    ) -> Result<Response, S3Error> {
        let target = self.addressing.target(req.key, &req.query)?;
        let payload_hash = payload_hash(req);
        let mut headers = vec![
            ("host".to_string(), target.host.clone()),
            ("x-amz-content-sha256".to_string(), payload_hash.clone()),
        ];
        headers.extend(req.headers.iter().cloned());
        // S3 wants every `x-amz-*` header signed, the SSE-C key included; the signature
        // carries only a hash of it.
        headers.extend(
            self.access
                .headers()
                .iter()
                .chain(&req.object_headers)
                .map(|h| (h.name.to_string(), h.value.clone())),
        );

        let mut builder = self.http.request(req.method.clone(), &target.url);
        if let Some(cell) = self.signing_cell(req) {
            // One snapshot per attempt: a refresh between attempts is picked up, and a
            // refresh during this one cannot mix the key of one set with the token of another.
            let creds = cell.load();
            let signed = self.sign_attempt(req, &target, &headers, &payload_hash, &creds);
            for (name, value) in signed.headers {
                let sensitive = name == "authorization"
                    || name == "x-amz-security-token"
                    || name == SESSION_TOKEN_HEADER;
                builder = builder.header(name, header_value(name, &value, sensitive)?);
            }
            *used = Some(creds);
        }
        // reqwest derives `Host` from the URL, the same value we signed.
        for (name, value) in headers.iter().filter(|(n, _)| n != "host") {
            let sensitive = req
                .object_headers
                .iter()
                .any(|h| h.sensitive && h.name == name);
            builder = builder.header(name.as_str(), header_value(name, value, sensitive)?);
        }
        let started = std::time::Instant::now();
        let progress = Progress::new();
        let body = if req.body.is_empty() {
            reqwest::Body::from(Bytes::new())
        } else {
            reqwest::Body::wrap(ProgressBody::new(req.body.clone(), Arc::clone(&progress)))
        };
        let exchange = async {
            let mut resp = builder
                .body(body)
                .send()
                .await
                .map_err(|e| self.transport_error(&e))?;
            progress.touch();
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let mut chunks = Chunks::new();
            while let Some(part) = resp.chunk().await.map_err(|e| self.transport_error(&e))? {
                progress.touch();
                chunks.push(part);
            }
            Ok::<_, S3Error>((status, headers, chunks))
        };
        let (status, headers, chunks) = tokio::select! {
            exchanged = exchange => exchanged?,
            () = progress.stalled(self.io_timeout) => {
                return Err(S3Error::Network {
                    endpoint: self.addressing.display(),
                    reason: format!(
                        "no byte moved either way for {} s (--io-timeout)",
                        self.io_timeout.as_secs_f64()
                    ),
                });
            }
        };
        // Object bodies stay in the pieces they arrived in; anything else (XML) is joined.
        let (body, chunks) = if req.keep_chunks && (200..300).contains(&status) {
            (Bytes::new(), chunks)
        } else {
            (chunks.to_bytes(), Chunks::new())
        };
        // Per request, for `RUST_LOG=s3rolefs=trace` when a mount is slow: which call, how long.
        log::trace!(
            "{} {:?}: {status}, {} bytes up, {} down, {:.1} ms",
            req.op,
            req.key.unwrap_or(""),
            req.body.len(),
            body.len() + chunks.len(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        Ok(Response {
            status,
            headers,
            body,
            chunks,
        })
    }

    /// SigV4 for one attempt, for the region and service the endpoint names (`s3`, or
    /// `s3-outposts` on an Outpost; an access point's own region).
    pub(super) fn sign(
        &self,
        req: &Request<'_>,
        target: &Target,
        headers: &[(String, String)],
        payload_hash: &str,
        creds: &Credentials,
    ) -> sigv4::Signed {
        sigv4::sign(
            &HttpRequest {
                method: req.method.as_str(),
                path: &target.path,
                query: &req.query,
                headers,
                payload_hash,
            },
            &SigningInputs {
                access_key_id: &creds.access_key_id,
                secret_access_key: creds.secret_access_key.expose(),
                session_token: creds.session_token.as_ref().map(|t| t.expose()),
                region: self.addressing.signing_region(),
                service: self.addressing.signing_service(),
                time: self.signing_time(),
            },
        )
    }

    fn transport_error(&self, e: &reqwest::Error) -> S3Error {
        if e.is_builder() {
            return S3Error::InvalidConfig(format!("cannot build the request: {e}"));
        }
        // The error chain holds the useful part ("connection refused", "timed out").
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        S3Error::Network {
            endpoint: self.addressing.display(),
            reason,
        }
    }
}

/// A header value for the wire; `sensitive` ones (signature, session token, SSE-C key) are
/// flagged so that hyper and reqwest never print them, at any log level.
fn header_value(name: &str, value: &str, sensitive: bool) -> Result<HeaderValue, S3Error> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        S3Error::InvalidConfig(format!(
            "header {name} holds characters HTTP cannot carry; use printable ASCII in the mount's settings (storage class, ACL, KMS key id)"
        ))
    })?;
    v.set_sensitive(sensitive);
    Ok(v)
}

/// Bodies above this size that carry a checksum go with `UNSIGNED-PAYLOAD`.
const UNSIGNED_PAYLOAD_FROM: usize = 64 * 1024;

/// The `x-amz-content-sha256` of a request. A large body with a checksum header (every
/// PutObject and UploadPart) goes as `UNSIGNED-PAYLOAD`, as the AWS SDKs and mountpoint-s3
/// send data: the checksum header is signed and S3 checks the body against it, and neither
/// side has to SHA-256 every byte again (on the benchmark's server, verifying that hash
/// cost more CPU than storing the data). Small bodies (XML) keep the signed hash.
fn payload_hash(req: &Request<'_>) -> String {
    let has_checksum = req
        .headers
        .iter()
        .any(|(name, _)| name == checksum::HEADER || name == "content-md5");
    if has_checksum && req.body.len() >= UNSIGNED_PAYLOAD_FROM {
        sigv4::UNSIGNED_PAYLOAD.to_string()
    } else {
        sigv4::sha256_hex(&req.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sensitive header value prints as a placeholder in `Debug`, the form HTTP-level
    /// logging would use; an ordinary one prints as itself.
    #[test]
    fn sensitive_header_values_never_print() {
        let secret =
            header_value("x-amz-server-side-encryption-customer-key", "S3CR3T", true).unwrap();
        assert!(secret.is_sensitive());
        assert!(!format!("{secret:?}").contains("S3CR3T"));
        let plain = header_value("x-amz-storage-class", "STANDARD_IA", false).unwrap();
        assert!(format!("{plain:?}").contains("STANDARD_IA"));
        assert!(header_value("x-amz-acl", "bad\nvalue", false).is_err());
    }
}
