//! `aws-chunked` uploads signed per chunk (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`): the
//! headers carry a seed signature, and each chunk's signature chains from the previous one,
//! so the body can be streamed without hashing it up front.

use super::{
    hmac_sha256, sha256_hex, sign, signing_key, HttpRequest, Signed, SigningInputs, EMPTY_SHA256,
};
use std::fmt;

/// Payload hash (and `x-amz-content-sha256` value) of a chunk-signed upload.
pub const STREAMING_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";

/// First line of every chunk's string to sign.
const CHUNK_ALGORITHM: &str = "AWS4-HMAC-SHA256-PAYLOAD";

/// Bytes of `;chunk-signature=` plus a hex signature plus the two CRLFs around the data.
const CHUNK_OVERHEAD: u64 = 17 + 64 + 2 + 2;

/// What chunk signing needs after the headers are signed. `Debug` redacts the key.
#[derive(Clone)]
pub struct StreamingSeed {
    /// The signed headers; `signed.signature` is the seed (the first "previous signature").
    pub signed: Signed,
    /// The day's signing key: as sensitive as the secret for that day, region and service.
    pub signing_key: [u8; 32],
    pub amz_date: String,
    pub scope: String,
}

impl fmt::Debug for StreamingSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamingSeed")
            .field("signed", &self.signed)
            .field("signing_key", &"<redacted>")
            .field("amz_date", &self.amz_date)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Sign the headers of a chunked upload. The payload hash is forced to
/// `STREAMING_PAYLOAD`; the caller must also send (and pass in `req.headers`)
/// `x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, `content-encoding:
/// aws-chunked`, `x-amz-decoded-content-length` and the encoded `content-length`
/// (`chunked_encoded_length`).
pub fn seed_signature(req: &HttpRequest<'_>, inputs: &SigningInputs<'_>) -> StreamingSeed {
    let req = HttpRequest {
        payload_hash: STREAMING_PAYLOAD,
        ..*req
    };
    let signed = sign(&req, inputs);
    let amz_date = super::amz_date(inputs.time);
    let date = amz_date.get(..8).unwrap_or(&amz_date);
    let scope = super::credential_scope(date, inputs.region, inputs.service);
    let signing_key = signing_key(
        inputs.secret_access_key,
        date,
        inputs.region,
        inputs.service,
    );
    StreamingSeed {
        signed,
        signing_key,
        amz_date,
        scope,
    }
}

/// The signature of one chunk, chained from `previous_signature` (the seed for the first
/// chunk). The body ends with a zero-length chunk, which is signed too.
pub fn chunk_signature(
    signing_key: &[u8; 32],
    amz_date: &str,
    scope: &str,
    previous_signature: &str,
    chunk_data: &[u8],
) -> String {
    let string_to_sign = format!(
        "{CHUNK_ALGORITHM}\n{amz_date}\n{scope}\n{previous_signature}\n{EMPTY_SHA256}\n{}",
        sha256_hex(chunk_data)
    );
    hex::encode(hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// The line sent before a chunk's data: `<hex size>;chunk-signature=<signature>\r\n`
/// (the data is followed by `\r\n`).
pub fn chunk_header(chunk_len: usize, signature: &str) -> String {
    format!("{chunk_len:x};chunk-signature={signature}\r\n")
}

/// The `content-length` of a body of `decoded_len` bytes sent in chunks of `chunk_size`
/// (the last one shorter) followed by the final zero-length chunk. A `chunk_size` of 0 is
/// treated as 1 rather than dividing by zero.
pub fn chunked_encoded_length(decoded_len: u64, chunk_size: u64) -> u64 {
    let chunk_size = chunk_size.max(1);
    let framed = |len: u64| (hex_digits(len) + CHUNK_OVERHEAD).saturating_add(len);
    let full = decoded_len / chunk_size;
    let rest = decoded_len % chunk_size;
    // Saturating: a length near u64::MAX is not a real upload, but must not panic.
    let mut total = full
        .saturating_mul(framed(chunk_size))
        .saturating_add(framed(0));
    if rest > 0 {
        total = total.saturating_add(framed(rest));
    }
    total
}

fn hex_digits(n: u64) -> u64 {
    u64::from((u64::BITS - n.leading_zeros()).div_ceil(4).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_header_is_lowercase_hex_size() {
        assert_eq!(chunk_header(65536, "ab"), "10000;chunk-signature=ab\r\n");
        assert_eq!(chunk_header(0, "cd"), "0;chunk-signature=cd\r\n");
    }

    #[test]
    fn encoded_length_counts_every_frame() {
        // An empty body is the final zero-length chunk only.
        assert_eq!(chunked_encoded_length(0, 65536), 1 + CHUNK_OVERHEAD);
        assert_eq!(hex_digits(0), 1);
        assert_eq!(hex_digits(15), 1);
        assert_eq!(hex_digits(16), 2);
        assert_eq!(hex_digits(65536), 5);
        assert_eq!(
            chunked_encoded_length(10, 0),
            10 * (1 + CHUNK_OVERHEAD + 1) + 86
        );
    }
}
