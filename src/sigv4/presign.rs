//! Presigned URLs: the signature travels in the query string instead of headers.

use super::{
    amz_date, canonical_headers, canonical_request, credential_scope, encode_query, hmac_sha256,
    is_signer_owned, signing_key, string_to_sign, HttpRequest, SigningInputs, ALGORITHM,
};
use std::fmt;
use std::time::Duration;

/// Query parameters the presigner sets; caller copies in `HttpRequest::query` are dropped.
const PRESIGN_OWNED: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-Security-Token",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
];

/// The result of `presign`. `Debug` shows only the query keys.
#[derive(Clone)]
pub struct Presigned {
    /// The complete DECODED query for the URL: the request's own pairs, the `X-Amz-*`
    /// parameters (the token among them, signed) and `X-Amz-Signature`. Put
    /// `encode_query(&query)` on the wire. Anyone holding it can use the URL: do not log.
    pub query: Vec<(String, String)>,
    /// Contains the session token when one is given: do not log.
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
}

impl fmt::Debug for Presigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.query.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Presigned")
            .field("query_keys", &keys)
            .field("string_to_sign", &self.string_to_sign)
            .finish_non_exhaustive()
    }
}

/// Sign `req` in the query-string form, valid for `expires_in` from `inputs.time` (S3
/// accepts 1 second to 7 days). Only `req.headers` are signed (for S3 usually just
/// `host`); the payload hash is usually `UNSIGNED_PAYLOAD`.
pub fn presign(
    req: &HttpRequest<'_>,
    inputs: &SigningInputs<'_>,
    expires_in: Duration,
) -> Presigned {
    let timestamp = amz_date(inputs.time);
    let date = timestamp.get(..8).unwrap_or(&timestamp);
    let scope = credential_scope(date, inputs.region, inputs.service);
    let headers = canonical_headers(
        req.headers
            .iter()
            .filter(|(name, _)| !is_signer_owned(name))
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );

    let mut query: Vec<(String, String)> = req
        .query
        .iter()
        .filter(|(k, _)| !PRESIGN_OWNED.contains(&k.as_str()))
        .cloned()
        .collect();
    let mut add = |k: &str, v: String| query.push((k.to_owned(), v));
    add("X-Amz-Algorithm", ALGORITHM.to_owned());
    add(
        "X-Amz-Credential",
        format!("{}/{scope}", inputs.access_key_id),
    );
    add("X-Amz-Date", timestamp.clone());
    add("X-Amz-Expires", expires_in.as_secs().to_string());
    if let Some(token) = inputs.session_token {
        add("X-Amz-Security-Token", token.to_owned());
    }
    add("X-Amz-SignedHeaders", headers.signed.clone());

    let creq = canonical_request(
        req.method,
        req.path,
        &encode_query(&query),
        &headers,
        req.payload_hash,
    );
    let sts = string_to_sign(&timestamp, &scope, &creq);
    let key = signing_key(
        inputs.secret_access_key,
        date,
        inputs.region,
        inputs.service,
    );
    let signature = hex::encode(hmac_sha256(&key, sts.as_bytes()));
    query.push(("X-Amz-Signature".to_owned(), signature.clone()));
    Presigned {
        query,
        canonical_request: creq,
        string_to_sign: sts,
        signature,
    }
}
