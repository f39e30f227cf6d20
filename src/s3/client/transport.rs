//! Sending one S3 request: sign each attempt with one credentials snapshot, send, read the
//! whole answer, and retry what is retryable with jittered backoff.

use std::time::SystemTime;

use bytes::Bytes;
use log::warn;
use reqwest::header::HeaderMap;
use reqwest::Method;

use super::errors::{map_error, ErrorContext};
use super::S3Client;
use crate::s3::xml::parse_error;
use crate::s3::S3Error;
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
}

impl<'a> Request<'a> {
    pub fn new(op: &'static str, method: Method, key: Option<&'a str>) -> Self {
        Request {
            op,
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: Bytes::new(),
            if_match: None,
            error_key: None,
            error_in_ok: false,
            raw_errors: false,
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

    /// A body, with the `Content-MD5` S3 checks it against.
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
    pub body: Bytes,
}

impl S3Client {
    /// Sends `req`, retrying per the policy. `Ok` is a success answer (or, with
    /// `raw_errors`, any answer not worth retrying).
    pub(super) async fn execute(&self, req: &Request<'_>) -> Result<Response, S3Error> {
        let mut attempt = 1;
        loop {
            let err = match self.send_once(req).await {
                Ok(resp) => match self.failure_of(&resp, req) {
                    None => return Ok(resp),
                    Some(err)
                        if req.raw_errors
                            && !(err.is_retryable() && self.retry.may_retry(attempt)) =>
                    {
                        return Ok(resp)
                    }
                    Some(err) => err,
                },
                Err(err) => err,
            };
            if !err.is_retryable() || !self.retry.may_retry(attempt) {
                return Err(err);
            }
            let pause = self.retry.backoff(attempt);
            // `err` is already redacted (map_error), and URLs carry no secrets.
            warn!(
                "{} {:?}: attempt {attempt}/{} failed: {err}; retrying in {pause:?}",
                req.op,
                req.key.unwrap_or(""),
                self.retry.max_attempts
            );
            tokio::time::sleep(pause).await;
            attempt += 1;
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

    /// One attempt: a fresh signature from the current credentials snapshot.
    async fn send_once(&self, req: &Request<'_>) -> Result<Response, S3Error> {
        let target = self.addressing.target(req.key, &req.query)?;
        let payload_hash = sigv4::sha256_hex(&req.body);
        let mut headers = vec![
            ("host".to_string(), target.host.clone()),
            ("x-amz-content-sha256".to_string(), payload_hash.clone()),
        ];
        headers.extend(req.headers.iter().cloned());

        let mut builder = self.http.request(req.method.clone(), &target.url);
        if let Some(cell) = &self.credentials {
            // One snapshot per attempt: a refresh between attempts is picked up, and a
            // refresh during this one cannot mix the key of one set with the token of another.
            let creds = cell.load();
            let signed = sigv4::sign(
                &HttpRequest {
                    method: req.method.as_str(),
                    path: &target.path,
                    query: &req.query,
                    headers: &headers,
                    payload_hash: &payload_hash,
                },
                &SigningInputs {
                    access_key_id: &creds.access_key_id,
                    secret_access_key: creds.secret_access_key.expose(),
                    session_token: creds.session_token.as_ref().map(|t| t.expose()),
                    region: &self.region,
                    service: "s3",
                    time: SystemTime::now(),
                },
            );
            for (name, value) in signed.headers {
                builder = builder.header(name, value);
            }
        }
        // reqwest derives `Host` from the URL, the same value we signed.
        for (name, value) in headers.iter().filter(|(n, _)| n != "host") {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let resp = builder
            .body(req.body.clone())
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| self.transport_error(&e))?;
        Ok(Response {
            status,
            headers,
            body,
        })
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
