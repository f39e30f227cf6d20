//! Access points: a host `NAME-ACCOUNT.<base>` (what a client makes of an access point ARN
//! `arn:aws:s3:REGION:ACCOUNT:accesspoint/NAME` with a custom endpoint `<base>`) addresses
//! the bucket of the access point registered under that name and account. As on S3, the
//! signature is checked against the request as sent (it covers that Host); the request is
//! then handed to s3s as one to `BUCKET.<vhost base>`, signed again with the caller's own
//! key, so s3s's key checks and the access policy still see the caller. An access point not
//! registered answers 404 `NoSuchAccessPoint`.

use std::collections::HashMap;
use std::sync::RwLock;

use hyper::header::{HeaderValue, HOST};
use hyper::http::request::Parts;
use s3s::{s3_error, S3Error};

use super::auth::KeyTable;
use super::express::ServerKey;
use super::express_sign::{parse_authorization, resign, verify};

/// `NAME-ACCOUNT` → the bucket behind it. Empty on a new server.
#[derive(Default)]
pub struct AccessPoints {
    map: RwLock<HashMap<String, String>>,
}

impl AccessPoints {
    pub fn add(&self, name: &str, account: &str, bucket: &str) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(format!("{name}-{account}"), bucket.to_owned());
    }

    pub fn bucket(&self, label: &str) -> Option<String> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(label)
            .cloned()
    }
}

/// The `NAME-ACCOUNT` label of `host` when it addresses an access point: its first label
/// ends in `-` and a 12-digit account, and the host is not under `vhost_base` (where a
/// first label is a bucket's name).
pub fn label<'a>(host: &'a str, vhost_base: &str) -> Option<&'a str> {
    if host.ends_with(vhost_base) {
        return None;
    }
    let (first, rest) = host.split_once('.')?;
    let (name, account) = first.rsplit_once('-')?;
    let is_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    (is_account && !name.is_empty() && !rest.is_empty()).then_some(first)
}

/// Checks the signature of a request to the access point of `bucket` as sent, then makes
/// it a request to `BUCKET.<vhost_base>` signed with the caller's key for s3s.
pub fn admit(
    keys: &KeyTable,
    bucket: &str,
    vhost_base: &str,
    parts: &mut Parts,
) -> Result<(), S3Error> {
    let auth = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_authorization)
        .ok_or_else(|| s3_error!(AccessDenied, "Access Denied"))?;
    if auth.service != "s3" {
        return Err(s3_error!(
            AuthorizationHeaderMalformed,
            "access points are signed for service s3, not {}",
            auth.service
        ));
    }
    let secret = keys.secret(&auth.access_key).ok_or_else(|| {
        s3_error!(
            InvalidAccessKeyId,
            "The AWS Access Key Id you provided does not exist in our records."
        )
    })?;
    if !verify(parts, &auth, &secret) {
        return Err(s3_error!(SignatureDoesNotMatch));
    }
    let host = HeaderValue::from_str(&format!("{bucket}.{vhost_base}"))
        .map_err(|_| s3_error!(InvalidBucketName))?;
    parts.headers.insert(HOST, host);
    resign(
        parts,
        &ServerKey {
            access_key: auth.access_key,
            secret_key: secret,
            region: auth.region,
        },
    );
    Ok(())
}
