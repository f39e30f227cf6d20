//! AWS Signature Version 4, as pure functions: no I/O, no state, no clock.
//!
//! This module owns the exact bytes of a signature: URI and query encoding, header
//! canonicalization, the canonical request, the string to sign, the signing key and what
//! the signature adds to a request — headers (`sign`), a presigned query (`presign`), or
//! per-chunk signatures of an `aws-chunked` upload (`seed_signature`, `chunk_signature`).
//! The caller owns everything else: the clock (`SigningInputs::time`), the credentials,
//! hashing the body, and sending exactly the path, query and headers that were signed.
//!
//! S3 rules, which differ from the generic AWS suite: the path is encoded once by the
//! caller and used verbatim (never normalized: `a/../b` and `a//b` are real keys), and the
//! session token is signed (S3 requires it).

mod canonical;
mod chunked;
mod crypto;
mod encode;
mod presign;

pub use canonical::{
    canonical_header_value, canonical_headers, canonical_request, credential_scope, string_to_sign,
    CanonicalHeaders, ALGORITHM,
};
pub use chunked::{
    chunk_header, chunk_signature, chunked_encoded_length, seed_signature, StreamingSeed,
    STREAMING_PAYLOAD,
};
pub use crypto::{amz_date, hmac_sha256, sha256_hex, signing_key};
pub use encode::{encode_query, uri_encode};
pub use presign::{presign, Presigned};

use std::fmt;
use std::time::SystemTime;

/// `x-amz-content-sha256` / payload hash for a body that is not hashed (TLS protects it).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Hex SHA-256 of the empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Header names the signer sets itself; any the caller passes in `HttpRequest::headers`
/// are ignored, so the value signed and the value sent can never differ.
const SIGNER_OWNED: [&str; 3] = ["x-amz-date", "x-amz-security-token", "authorization"];

/// Who signs, where, and when. `Debug` redacts the secret and the session token.
#[derive(Clone, Copy)]
pub struct SigningInputs<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
    pub service: &'a str,
    pub time: SystemTime,
}

impl fmt::Debug for SigningInputs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningInputs")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.map(|_| "<redacted>"))
            .field("region", &self.region)
            .field("service", &self.service)
            .field("time", &amz_date(self.time))
            .finish()
    }
}

/// The request as it will be sent.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// Already URI-encoded exactly as sent on the wire; used verbatim.
    pub path: &'a str,
    /// DECODED key/value pairs; the signer encodes and sorts them (see `encode_query`).
    pub query: &'a [(String, String)],
    /// Every header to sign, names in any case, including `host` and, for S3,
    /// `x-amz-content-sha256`. `x-amz-date`, `x-amz-security-token` and `authorization`
    /// are set by the signer and ignored here.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body, `UNSIGNED_PAYLOAD`, or a `STREAMING-*` marker.
    pub payload_hash: &'a str,
}

/// The result of `sign`. `Debug` shows only what is safe to log.
#[derive(Clone)]
pub struct Signed {
    /// Headers to add to (replace on) the request: `x-amz-date`, `x-amz-security-token`
    /// when a token is given, and `authorization`.
    pub headers: Vec<(&'static str, String)>,
    /// Contains the session token when one is given: do not log.
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Signed")
            .field("headers", &names)
            .field("canonical_request", &"<redacted: may contain the token>")
            .field("string_to_sign", &self.string_to_sign)
            .field("signature", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Sign `req` for the `Authorization` header form.
pub fn sign(req: &HttpRequest<'_>, inputs: &SigningInputs<'_>) -> Signed {
    let timestamp = amz_date(inputs.time);
    let date = timestamp.get(..8).unwrap_or(&timestamp);
    let scope = credential_scope(date, inputs.region, inputs.service);

    let mut added: Vec<(&'static str, String)> = vec![("x-amz-date", timestamp.clone())];
    if let Some(token) = inputs.session_token {
        added.push(("x-amz-security-token", token.to_owned()));
    }
    let caller = req
        .headers
        .iter()
        .filter(|(name, _)| !is_signer_owned(name))
        .map(|(name, value)| (name.as_str(), value.as_str()));
    let own = added.iter().map(|(name, value)| (*name, value.as_str()));
    let headers = canonical_headers(caller.chain(own));

    let creq = canonical_request(
        req.method,
        req.path,
        &encode_query(req.query),
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

    added.push((
        "authorization",
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
            inputs.access_key_id, headers.signed
        ),
    ));
    Signed {
        headers: added,
        canonical_request: creq,
        string_to_sign: sts,
        signature,
    }
}

fn is_signer_owned(name: &str) -> bool {
    SIGNER_OWNED
        .iter()
        .any(|owned| name.trim().eq_ignore_ascii_case(owned))
}

#[cfg(test)]
mod tests;
