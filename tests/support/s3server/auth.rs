//! Who may call the server: a mutable table of access keys (long-term keys and session keys
//! with a token and an expiry) behind s3s's SigV4 verification, and the access policy that
//! lets anonymous requests read public buckets and denies a key the operations a test
//! takes away from it.
//!
//! s3s 0.14.1 verifies the signature itself and only asks [`S3Auth::get_secret_key`] for the
//! secret of the access key id in the credential scope; that hook does not see the request.
//! The [`S3Access::check`] hook runs after verification and sees the verified access key, the
//! operation, the bucket/key, the URI and all headers — so `x-amz-security-token` (or the
//! `X-Amz-Security-Token` query parameter of a presigned URL) is checked there.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};

use super::store::Store;

#[derive(Clone, Debug)]
struct KeyEntry {
    secret: String,
    session: Option<Session>,
}

/// What makes a key temporary: the token that must accompany it and when it stops working.
#[derive(Clone, Debug)]
struct Session {
    token: String,
    expires_at: SystemTime,
}

/// The accepted access keys. Shared by the running server and the test, which may add and
/// remove keys while requests are in flight (credential rotation tests).
#[derive(Default)]
pub struct KeyTable {
    keys: RwLock<HashMap<String, KeyEntry>>,
    /// Access key → operations (s3s names: `GetObject`, `ListObjectsV2`, …) it is denied,
    /// as an IAM policy without that permission would.
    denied: RwLock<HashMap<String, Vec<String>>>,
}

impl KeyTable {
    /// Denies `access_key` the operations `ops` from now on (AccessDenied, 403).
    pub fn deny(&self, access_key: &str, ops: &[&str]) {
        self.denied
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(access_key.to_owned())
            .or_default()
            .extend(ops.iter().map(|op| (*op).to_owned()));
    }

    fn is_denied(&self, access_key: &str, op: &str) -> bool {
        self.denied
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(access_key)
            .is_some_and(|ops| ops.iter().any(|o| o == op))
    }

    /// Accepts a long-term key pair (no session token).
    pub fn add_key(&self, access_key: &str, secret_key: &str) {
        self.write().insert(
            access_key.to_owned(),
            KeyEntry {
                secret: secret_key.to_owned(),
                session: None,
            },
        );
    }

    /// Accepts a temporary key pair that is only valid with `token` and until `expires_at`;
    /// afterwards requests get `ExpiredToken`, as from AWS.
    pub fn add_session_key(
        &self,
        access_key: &str,
        secret_key: &str,
        token: &str,
        expires_at: SystemTime,
    ) {
        let session = Some(Session {
            token: token.to_owned(),
            expires_at,
        });
        self.write().insert(
            access_key.to_owned(),
            KeyEntry {
                secret: secret_key.to_owned(),
                session,
            },
        );
    }

    /// Stops accepting `access_key`; returns whether it was known.
    pub fn remove_key(&self, access_key: &str) -> bool {
        self.write().remove(access_key).is_some()
    }

    /// The secret of a long-term key (not a session's): what may sign a `CreateSession`.
    pub fn long_term_secret(&self, access_key: &str) -> Option<String> {
        self.get(access_key)
            .filter(|e| e.session.is_none())
            .map(|e| e.secret)
    }

    /// The secret of any accepted key, long-term or a session's.
    pub fn secret(&self, access_key: &str) -> Option<String> {
        self.get(access_key).map(|e| e.secret)
    }

    fn get(&self, access_key: &str) -> Option<KeyEntry> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(access_key)
            .cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, KeyEntry>> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `S3Auth` handed to s3s: a view of the shared key table.
pub struct TableAuth(pub Arc<KeyTable>);

#[async_trait::async_trait]
impl S3Auth for TableAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.get(access_key) {
            Some(entry) => Ok(SecretKey::from(entry.secret)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}

/// Operations an anonymous caller may use on a public-read bucket.
const ANONYMOUS_READS: &[&str] = &[
    "GetObject",
    "HeadObject",
    "HeadBucket",
    "ListObjects",
    "ListObjectsV2",
    "GetBucketLocation",
];

/// The `S3Access` handed to s3s: session-token checks for signed requests, public-read
/// buckets for anonymous ones.
pub struct Policy {
    pub keys: Arc<KeyTable>,
    pub store: Arc<Store>,
}

#[async_trait::async_trait]
impl S3Access for Policy {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            let public = cx
                .s3_path()
                .get_bucket_name()
                .is_some_and(|b| self.store.is_public_read(b));
            if public && ANONYMOUS_READS.contains(&cx.s3_op().name()) {
                return Ok(());
            }
            return Err(s3_error!(AccessDenied, "Access Denied"));
        };
        let Some(entry) = self.keys.get(&credentials.access_key) else {
            // Removed between signature check and now.
            return Err(s3_error!(InvalidAccessKeyId));
        };
        if self
            .keys
            .is_denied(&credentials.access_key, cx.s3_op().name())
        {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        let sent_token = security_token(cx);
        match (&entry.session, sent_token) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(s3_error!(
                InvalidToken,
                "The provided token is malformed or otherwise invalid."
            )),
            (Some(_), None) => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
            (Some(session), Some(token)) => {
                if token != session.token {
                    Err(s3_error!(
                        InvalidToken,
                        "The provided token is malformed or otherwise invalid."
                    ))
                } else if SystemTime::now() >= session.expires_at {
                    Err(s3_error!(ExpiredToken, "The provided token has expired."))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// The session token of the request: the header, or the query parameter of a presigned URL.
fn security_token(cx: &S3AccessContext<'_>) -> Option<String> {
    if let Some(v) = cx.headers().get("x-amz-security-token") {
        return v.to_str().ok().map(str::to_owned);
    }
    let query = cx.uri().query()?;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "X-Amz-Security-Token").then(|| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}
