//! Directory-bucket mode (S3 Express One Zone), switched on per server with
//! [`TestServer::set_directory_buckets`](super::TestServer::set_directory_buckets). Then
//! every bucket named `NAME--ZONEID--x-s3` behaves as a directory bucket:
//!
//! - `CreateSession` (`GET /BUCKET?session`) must be signed (SigV4, service `s3express`) with
//!   a long-term key of the server; it answers session credentials that live the configured
//!   lifetime (tests use 30 s), for that bucket.
//! - Every other request must be signed with a session's key for service `s3express` and
//!   carry its token in `x-amz-s3session-token`. A missing token is 403 `AccessDenied`, an
//!   unknown key 403 `InvalidAccessKeyId`, a wrong token 400 `InvalidToken`, an expired
//!   session 400 `ExpiredToken` (S3's error table), a bad signature 403
//!   `SignatureDoesNotMatch`. The signature is recomputed here, independently of the
//!   client's signer.
//! - ListObjectsV2 with `start-after` is 400 `InvalidArgument`; listing pages come shuffled
//!   (`listing.rs`).
//! - `RenameObject` (`PUT /BUCKET/TO?renameObject`, `x-amz-rename-source: /BUCKET/FROM`)
//!   moves the object under the store's lock, so no reader sees both or neither; a retry
//!   with the same `x-amz-client-token` is answered as the first.
//! - PutObject with `x-amz-write-offset-bytes: N` appends its body to the object under the
//!   store's lock, when the object is `N` bytes long (else 400 `InvalidWriteOffset`; `N` = 0
//!   with no object creates it) and `If-Match`, if sent, holds (else 412). The object keeps
//!   its metadata and gets a new ETag; every append is logged
//!   ([`TestServer::appends`](super::TestServer::appends)).
//!
//! `express_sign.rs` checks and re-signs the signatures.
//!
//! s3s 0.14 knows neither `CreateSession`, `RenameObject` nor the `s3express` service, so
//! this front-end answers the first two itself and hands every other request to s3s re-signed
//! with the server's default key for service `s3`, after checking the session here (so a
//! test of directory buckets must keep that key: rotate keys added with `add_key`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use percent_encoding::percent_decode_str;
use rand::distributions::{Alphanumeric, DistString};
use s3s::{s3_error, Body, S3Error, S3ErrorCode};

use super::auth::KeyTable;
use super::express_sign::{parse_authorization, query_pairs, resign, verify};
use super::op::Op;
use super::store::{md5_hex, now, Object, Store};

/// The session token header of S3 Express.
pub const SESSION_TOKEN_HEADER: &str = "x-amz-s3session-token";

#[derive(Clone, Debug)]
struct Session {
    secret: String,
    token: String,
    expires_at: SystemTime,
    bucket: String,
}

/// The directory-bucket switch and the sessions it issued.
#[derive(Default)]
pub struct Express {
    /// The lifetime of a session; `None`: directory-bucket mode is off.
    lifetime: Mutex<Option<Duration>>,
    /// Session access key → session.
    sessions: Mutex<HashMap<String, Session>>,
    /// `x-amz-client-token`s of RenameObjects done.
    rename_tokens: Mutex<HashSet<String>>,
    /// Every append carried out, in order.
    appends: Mutex<Vec<Append>>,
}

/// The header that makes a PutObject an append.
pub const WRITE_OFFSET_HEADER: &str = "x-amz-write-offset-bytes";

/// One append the server carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Append {
    pub key: String,
    /// Where its bytes went (the object's size before).
    pub offset: u64,
    /// The bytes it added.
    pub len: u64,
}

impl Express {
    /// Directory-bucket mode on with sessions of `lifetime`, or off (`None`).
    pub fn set(&self, lifetime: Option<Duration>) {
        *self.lifetime.lock().unwrap_or_else(|e| e.into_inner()) = lifetime;
    }

    pub fn lifetime(&self) -> Option<Duration> {
        *self.lifetime.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_on(&self) -> bool {
        self.lifetime().is_some()
    }

    /// Whether `bucket` is a directory bucket of a server in directory-bucket mode.
    pub fn applies(&self, bucket: Option<&str>) -> bool {
        self.is_on() && bucket.is_some_and(|b| b.ends_with("--x-s3") || b.ends_with("--xa-s3"))
    }

    fn issue(&self, bucket: &str, lifetime: Duration) -> (String, Session) {
        let mut rng = rand::thread_rng();
        let key = format!("ASIAEXPRESS{}", Alphanumeric.sample_string(&mut rng, 9)).to_uppercase();
        let session = Session {
            secret: Alphanumeric.sample_string(&mut rng, 40),
            token: Alphanumeric.sample_string(&mut rng, 64),
            expires_at: SystemTime::now() + lifetime,
            bucket: bucket.to_owned(),
        };
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), session.clone());
        (key, session)
    }

    /// Ends every session issued so far, as their expiry would: their next request gets
    /// `ExpiredToken`.
    pub fn expire_all(&self) {
        let now = SystemTime::now();
        for s in self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values_mut()
        {
            s.expires_at = s.expires_at.min(now);
        }
    }

    /// Every append carried out so far.
    pub fn appends(&self) -> Vec<Append> {
        self.appends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn session(&self, key: &str) -> Option<Session> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }
}

/// What the front does with a request to a directory bucket.
pub enum Verdict {
    /// Answered here (CreateSession, RenameObject, or a refusal).
    Answer(Response<Body>),
    /// Checked; `parts` were re-signed for s3s with the server's key: pass it on.
    Forward,
}

/// The server's own long-term key, which requests passed on to s3s are re-signed with.
pub struct ServerKey {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// Checks (and answers, where s3s cannot) one request to a directory bucket.
pub fn admit(
    store: &Store,
    keys: &KeyTable,
    server_key: &ServerKey,
    op: Op,
    bucket: &str,
    parts: &mut Parts,
) -> Verdict {
    match admit_inner(store, keys, server_key, op, bucket, parts) {
        Ok(verdict) => verdict,
        Err(err) => Verdict::Answer(error_response(err)),
    }
}

fn admit_inner(
    store: &Store,
    keys: &KeyTable,
    server_key: &ServerKey,
    op: Op,
    bucket: &str,
    parts: &mut Parts,
) -> Result<Verdict, S3Error> {
    let express = &store.express;
    let auth = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_authorization)
        .ok_or_else(|| s3_error!(AccessDenied, "Access Denied"))?;
    if auth.service != "s3express" {
        return Err(s3_error!(
            AuthorizationHeaderMalformed,
            "directory buckets are signed for service s3express, not {}",
            auth.service
        ));
    }
    if op == Op::CreateSession {
        let secret = keys
            .long_term_secret(&auth.access_key)
            .ok_or_else(|| s3_error!(InvalidAccessKeyId))?;
        if !verify(parts, &auth, &secret) {
            return Err(s3_error!(SignatureDoesNotMatch));
        }
        let lifetime = express.lifetime().unwrap_or(Duration::from_secs(300));
        let (key, session) = express.issue(bucket, lifetime);
        return Ok(Verdict::Answer(create_session_answer(&key, &session)));
    }
    if parts.headers.contains_key("x-amz-security-token") {
        return Err(s3_error!(
            InvalidRequest,
            "x-amz-security-token is not used with directory buckets; send the session token in x-amz-s3session-token"
        ));
    }
    let Some(token) = parts
        .headers
        .get(SESSION_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(s3_error!(
            AccessDenied,
            "directory bucket requests need a session (CreateSession) and x-amz-s3session-token"
        ));
    };
    let session = express
        .session(&auth.access_key)
        .ok_or_else(|| s3_error!(InvalidAccessKeyId))?;
    if session.token != token || session.bucket != bucket {
        return Err(s3_error!(
            InvalidToken,
            "The provided token is malformed or otherwise invalid."
        ));
    }
    if SystemTime::now() >= session.expires_at {
        return Err(s3_error!(ExpiredToken, "The provided token has expired."));
    }
    if !verify(parts, &auth, &session.secret) {
        return Err(s3_error!(SignatureDoesNotMatch));
    }
    let query = parts.uri.query().unwrap_or("");
    if op == Op::ListObjectsV2 && query_pairs(query).iter().any(|(n, _)| n == "start-after") {
        return Err(s3_error!(
            InvalidArgument,
            "StartAfter is not supported for directory buckets"
        ));
    }
    if op == Op::RenameObject {
        return rename(store, bucket, parts).map(Verdict::Answer);
    }
    resign(parts, server_key);
    Ok(Verdict::Forward)
}

/// RenameObject, under the store's lock.
fn rename(store: &Store, bucket: &str, parts: &Parts) -> Result<Response<Body>, S3Error> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let source = header("x-amz-rename-source")
        .ok_or_else(|| s3_error!(InvalidRequest, "missing x-amz-rename-source"))?;
    let source = percent_decode_str(source).decode_utf8_lossy().into_owned();
    let source = source.strip_prefix('/').unwrap_or(&source);
    let from = source
        .strip_prefix(bucket)
        .and_then(|s| s.strip_prefix('/'))
        .ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "the rename source must be in the same bucket"
            )
        })?
        .to_owned();
    let path = percent_decode_str(parts.uri.path())
        .decode_utf8_lossy()
        .into_owned();
    let to = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(bucket))
        .and_then(|p| p.strip_prefix('/'))
        .ok_or_else(|| s3_error!(InvalidRequest, "no destination key"))?
        .to_owned();
    if from.ends_with('/') || to.ends_with('/') {
        return Err(s3_error!(
            InvalidRequest,
            "RenameObject does not rename keys that end in /"
        ));
    }
    let client_token = header("x-amz-client-token").map(str::to_owned);
    let mut tokens = store
        .express
        .rename_tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if client_token.as_ref().is_some_and(|t| tokens.contains(t)) {
        return Ok(empty_ok());
    }
    let mut buckets = store.lock();
    let b = buckets
        .get_mut(bucket)
        .ok_or_else(|| s3_error!(NoSuchBucket))?;
    if header("if-none-match") == Some("*") && b.objects.contains_key(&to) {
        return Err(s3_error!(PreconditionFailed));
    }
    let object = b
        .objects
        .remove(&from)
        .ok_or_else(|| s3_error!(NoSuchKey))?;
    b.objects.insert(to, object);
    if let Some(t) = client_token {
        tokens.insert(t);
    }
    Ok(empty_ok())
}

/// Whether the request (of operation `op`) is an append: s3s would take it for a PUT.
pub fn is_append(op: Op, parts: &Parts) -> bool {
    op == Op::PutObject && parts.headers.contains_key(WRITE_OFFSET_HEADER)
}

/// An append (PutObject with `x-amz-write-offset-bytes`) of `body`, under the store's
/// lock. Called after [`admit`] checked the session.
pub fn append(store: &Store, bucket: &str, parts: &Parts, body: Bytes) -> Response<Body> {
    append_inner(store, bucket, parts, body).unwrap_or_else(error_response)
}

fn append_inner(
    store: &Store,
    bucket: &str,
    parts: &Parts,
    body: Bytes,
) -> Result<Response<Body>, S3Error> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let offset: u64 = header(WRITE_OFFSET_HEADER)
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "x-amz-write-offset-bytes is not a number"))?;
    let path = percent_decode_str(parts.uri.path())
        .decode_utf8_lossy()
        .into_owned();
    let key = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(bucket))
        .and_then(|p| p.strip_prefix('/'))
        .filter(|k| !k.is_empty())
        .ok_or_else(|| s3_error!(InvalidRequest, "no key"))?
        .to_owned();
    let mut buckets = store.lock();
    let b = buckets
        .get_mut(bucket)
        .ok_or_else(|| s3_error!(NoSuchBucket))?;
    let len = body.len() as u64;
    let etag = match b.objects.get_mut(&key) {
        None if offset == 0 => {
            let object = Object::new(body, None, HashMap::new());
            let etag = object.etag.clone();
            b.objects.insert(key.clone(), object);
            etag
        }
        None => return Err(s3_error!(NoSuchKey)),
        Some(object) => {
            if object.body.len() as u64 != offset {
                let mut err = S3Error::with_message(
                    S3ErrorCode::Custom("InvalidWriteOffset".into()),
                    "The write offset value that you specified does not match the current object size.",
                );
                err.set_status_code(StatusCode::BAD_REQUEST);
                return Err(err);
            }
            if let Some(wanted) = header("if-match") {
                if wanted.trim_matches('"') != object.etag {
                    return Err(s3_error!(PreconditionFailed));
                }
            }
            let mut all = BytesMut::from(&object.body[..]);
            all.extend_from_slice(&body);
            object.body = all.freeze();
            // Directory buckets' ETags are no MD5 of the bytes; this one only changes.
            object.etag = format!("{}ff", &md5_hex(&object.body)[..30]);
            object.last_modified = now();
            object.etag.clone()
        }
    };
    store
        .express
        .appends
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Append { key, offset, len });
    let mut r = empty_ok();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        r.headers_mut().insert(hyper::header::ETAG, v);
    }
    Ok(r)
}

fn empty_ok() -> Response<Body> {
    Response::new(Body::empty())
}

fn create_session_answer(key: &str, session: &Session) -> Response<Body> {
    let expiration = time::OffsetDateTime::from(session.expires_at);
    let expiration = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        expiration.year(),
        u8::from(expiration.month()),
        expiration.day(),
        expiration.hour(),
        expiration.minute(),
        expiration.second()
    );
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CreateSessionResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Credentials><SessionToken>{}</SessionToken><SecretAccessKey>{}</SecretAccessKey><AccessKeyId>{key}</AccessKeyId><Expiration>{expiration}</Expiration></Credentials></CreateSessionResult>",
        session.token, session.secret
    );
    let mut r = Response::new(Body::from(xml));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    r
}

fn error_response(err: S3Error) -> Response<Body> {
    err.to_http_response().unwrap_or_else(|_| {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}
