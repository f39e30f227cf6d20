//! The hyper service in front of s3s: it sees every request first, counts and logs it,
//! applies injected faults and latency, meters both bodies (see `bodies.rs`), and answers what
//! AWS answers when a request is signed for the wrong region — things s3s has no hook for (its
//! region check would need the bucket's region, and a HeadBucket 301 is not an S3 error s3s
//! can produce).
//!
//! A fault that must end the connection without an answer (dropped, cut mid-upload, answer
//! lost) returns an error from the service: hyper then closes the connection unanswered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body as HttpBody, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use s3s::service::S3Service;
use s3s::{s3_error, Body, S3Error};

use super::access_points;
use super::auth::KeyTable;
use super::bodies::Metered;
use super::exchange::{Outcome, RequestRecord};
use super::express::{ServerKey, Verdict};
use super::faults::Fault;
use super::monitor::{Admission, Monitor};
use super::op::Op;
use super::quirks::Refusal;
use super::store::Store;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone)]
pub struct Front {
    pub s3: S3Service,
    /// The accepted keys: directory-bucket mode checks sessions here (`express.rs`).
    pub keys: Arc<KeyTable>,
    /// What requests to a directory bucket are re-signed with for s3s.
    pub server_key: Arc<ServerKey>,
    pub store: Arc<Store>,
    pub monitor: Arc<Monitor>,
    /// The listening address, to bind again after refusing connections.
    pub addr: std::net::SocketAddr,
    /// `localhost:PORT`: hosts `<bucket>.localhost:PORT` address a bucket virtual-host style.
    pub vhost_base: String,
}

/// Credential scope of a SigV4 request, from the Authorization header or a presigned URL.
struct Scope {
    access_key: String,
    region: String,
    presigned: bool,
}

fn credential_scope(req: &Request<Incoming>) -> Option<Scope> {
    if let Some(auth) = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let cred = auth.split("Credential=").nth(1)?.split([',', ' ']).next()?;
        let mut parts = cred.split('/');
        let access_key = parts.next()?.to_owned();
        let region = parts.nth(1)?.to_owned();
        return Some(Scope {
            access_key,
            region,
            presigned: false,
        });
    }
    let cred = query_param(req.uri().query()?, "X-Amz-Credential")?;
    let mut parts = cred.split('/');
    let access_key = parts.next()?.to_owned();
    let region = parts.nth(1)?.to_owned();
    Some(Scope {
        access_key,
        region,
        presigned: true,
    })
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        (n == name).then(|| percent_decode_str(v).decode_utf8_lossy().into_owned())
    })
}

fn has_query_param(query: Option<&str>, name: &str) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.split('=').next() == Some(name))
    })
}

impl Front {
    /// Bucket and key of the request, path-style or virtual-hosted-style.
    fn bucket_and_key(&self, req: &Request<Incoming>) -> (Option<String>, Option<String>) {
        let path = percent_decode_str(req.uri().path())
            .decode_utf8_lossy()
            .into_owned();
        let path = path.strip_prefix('/').unwrap_or(&path);
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        if let Some(label) = access_points::label(host, &self.vhost_base) {
            let bucket = self.store.access_points.bucket(label);
            return (bucket.or_else(|| non_empty(label)), non_empty(path));
        }
        if let Some(bucket) = host
            .strip_suffix(self.vhost_base.as_str())
            .and_then(|h| h.strip_suffix('.'))
        {
            return (non_empty(bucket), non_empty(path));
        }
        match path.split_once('/') {
            Some((bucket, key)) => (non_empty(bucket), non_empty(key)),
            None => (non_empty(path), None),
        }
    }

    /// The log's record of an arriving request, and its credential scope.
    fn record(&self, req: &Request<Incoming>) -> (RequestRecord, Option<Scope>) {
        let (bucket, key) = self.bucket_and_key(req);
        let scope = credential_scope(req);
        let query = req.uri().query();
        let op = Op::classify(
            req.method().as_str(),
            bucket.as_deref(),
            key.as_deref(),
            |name| has_query_param(query, name) || req.headers().contains_key(name),
        );
        let security_token = req
            .headers()
            .get("x-amz-security-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| query.and_then(|q| query_param(q, "X-Amz-Security-Token")));
        let record = RequestRecord {
            op,
            method: req.method().to_string(),
            uri: req.uri().to_string(),
            host: req
                .headers()
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            bucket,
            key,
            access_key: scope.as_ref().map(|s| s.access_key.clone()),
            signing_region: scope.as_ref().map(|s| s.region.clone()),
            security_token,
            status: None,
            fault: None,
            outcome: Outcome::InFlight,
            request_body_complete: false,
            bytes_received: 0,
            bytes_sent: 0,
            duration: None,
        };
        (record, scope)
    }

    async fn handle(self, req: Request<Incoming>) -> Result<Response<Metered<Body>>, BoxError> {
        let (record, scope) = self.record(&req);
        let (op, bucket) = (record.op, record.bucket.clone());
        let summary = format!(
            "{} {} ({op}, key {:?})",
            record.method, record.uri, record.access_key
        );
        let bodiless = req.body().is_end_stream();
        let Admission {
            exchange,
            fault,
            latency,
            hang,
        } = self.monitor.admit(record, summary, bodiless);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }

        let cut_upload = match fault {
            Some(Fault::CutUpload { after }) => Some(after),
            _ => None,
        };
        let cut_download = match fault {
            Some(Fault::CutDownload { after }) => Some(after),
            _ => None,
        };
        let head_request = req.method() == hyper::Method::HEAD;
        let (parts, incoming) = req.into_parts();
        let body = Metered::upload(incoming, exchange.clone(), cut_upload);
        let refusal = match fault {
            None => self.store.quirks.refusal(op, &parts.headers),
            Some(_) => None,
        };
        let response = if let Some(refusal) = refusal {
            // Read whole first: the client sees the answer, not a reset mid-upload.
            read_to_end(body).await?;
            error_response(match refusal {
                Refusal::InvalidArgument(why) => s3_error!(InvalidArgument, "{why}"),
                Refusal::NotImplemented(why) => s3_error!(NotImplemented, "{why}"),
            })
        } else {
            match fault {
                Some(Fault::DropConnection) => {
                    exchange.cut();
                    return Err("connection dropped by fault injection".into());
                }
                Some(Fault::SlowDown) => {
                    error_response(s3_error!(SlowDown, "Please reduce your request rate."))
                }
                Some(Fault::InternalError) => error_response(s3_error!(
                    InternalError,
                    "We encountered an internal error. Please try again."
                )),
                Some(Fault::Hang) => {
                    // The whole request is read first: a hang is a server that took the request
                    // and went silent, not one that stopped reading.
                    let body = read_to_end(body).await?;
                    if let Some(hang) = hang {
                        hang.wait().await;
                    }
                    let req = Request::from_parts(parts, Body::from(body));
                    self.answer(op, bucket.as_deref(), scope.as_ref(), req)
                        .await?
                }
                _ => {
                    let req = Request::from_parts(parts, Body::http_body(body));
                    self.answer(op, bucket.as_deref(), scope.as_ref(), req)
                        .await?
                }
            }
        };
        if exchange.is_cut() {
            // The upload was cut: s3s gave up on the broken body; so do we, unanswered.
            return Err("connection reset mid-upload by fault injection".into());
        }
        if fault == Some(Fault::LoseAnswer) {
            exchange.cut();
            log::debug!("answer {} lost on purpose", response.status());
            return Err("answer lost by fault injection".into());
        }
        let status = response.status();
        let has_body = !(head_request
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED);
        exchange.answering(status.as_u16(), has_body);
        Ok(response.map(|body| Metered::download(body, exchange, cut_download)))
    }

    /// The answer when no fault replaces it: s3s's, or the wrong-region one.
    async fn answer(
        &self,
        op: Op,
        bucket: Option<&str>,
        scope: Option<&Scope>,
        req: Request<Body>,
    ) -> Result<Response<Body>, BoxError> {
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let req = match access_points::label(host, &self.vhost_base) {
            Some(label) => {
                let Some(bucket) = self.store.access_points.bucket(label) else {
                    return Ok(error_response(s3_error!(
                        NoSuchAccessPoint,
                        "The specified accesspoint does not exist"
                    )));
                };
                let (mut parts, body) = req.into_parts();
                if let Err(err) =
                    access_points::admit(&self.keys, &bucket, &self.vhost_base, &mut parts)
                {
                    return Ok(error_response(err));
                }
                Request::from_parts(parts, body)
            }
            None => req,
        };
        if let Some(response) = self.wrong_region(op, bucket, scope) {
            return Ok(response);
        }
        let req = match bucket {
            Some(bucket) if self.store.express.applies(Some(bucket)) => {
                let (mut parts, body) = req.into_parts();
                let verdict = super::express::admit(
                    &self.store,
                    &self.keys,
                    &self.server_key,
                    op,
                    bucket,
                    &mut parts,
                );
                match verdict {
                    Verdict::Answer(response) => return Ok(response),
                    Verdict::Forward if super::express::is_append(op, &parts) => {
                        let mut body = body;
                        let bytes = body.store_all_limited(5 << 30).await?;
                        return Ok(super::express::append(&self.store, bucket, &parts, bytes));
                    }
                    Verdict::Forward => Request::from_parts(parts, body),
                }
            }
            _ => req,
        };
        Ok(self.s3.call(req).await?)
    }

    /// AWS's answer to a request signed for another region than the bucket's: HeadBucket
    /// gets a bodiless 301 naming the right region (how SDKs discover it); everything else
    /// a 400 `AuthorizationHeaderMalformed` with the expected region.
    fn wrong_region(
        &self,
        op: Op,
        bucket: Option<&str>,
        scope: Option<&Scope>,
    ) -> Option<Response<Body>> {
        let scope = scope?;
        if op == Op::CreateBucket {
            return None;
        }
        let actual = self.store.bucket_region(bucket?)?;
        if actual == scope.region {
            return None;
        }
        let region_header = HeaderValue::from_str(&actual).ok()?;
        let mut response = if op == Op::HeadBucket {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
            r
        } else {
            let (code, what) = if scope.presigned {
                (
                    "AuthorizationQueryParametersError",
                    "Error parsing the X-Amz-Credential parameter",
                )
            } else {
                (
                    "AuthorizationHeaderMalformed",
                    "The authorization header is malformed",
                )
            };
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{what}; the region '{}' is wrong; expecting '{actual}'</Message><Region>{actual}</Region></Error>",
                scope.region
            );
            let mut r = Response::new(Body::from(xml));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            r
        };
        response
            .headers_mut()
            .insert("x-amz-bucket-region", region_header);
        Some(response)
    }
}

fn error_response(err: S3Error) -> Response<Body> {
    err.to_http_response().unwrap_or_else(|_| {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// The whole of a (metered) request body, for a request held back before s3s sees it.
async fn read_to_end(mut body: Metered<Incoming>) -> Result<Bytes, BoxError> {
    let mut all = BytesMut::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            all.extend_from_slice(&data);
        }
    }
    Ok(all.freeze())
}

impl hyper::service::Service<Request<Incoming>> for Front {
    type Response = Response<Metered<Body>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        Box::pin(self.clone().handle(req))
    }
}
