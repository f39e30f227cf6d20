//! AWS Signature Version 4, as pure functions: no I/O, no state, no clock.
//!
//! CONTRACT (implemented by the sigv4 work; the S3 client and STS calls depend on exactly this):
//!
//! - `pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";`
//! - `pub const EMPTY_SHA256: &str` — hex SHA-256 of the empty body.
//! - `pub struct SigningInputs<'a> { access_key_id: &'a str, secret_access_key: &'a str,
//!    session_token: Option<&'a str>, region: &'a str, service: &'a str, time: SystemTime }`
//! - `pub struct HttpRequest<'a> { method: &'a str, path: &'a str /* already URI-encoded,
//!    exactly as sent; never normalized */, query: &'a [(String, String)] /* decoded pairs */,
//!    headers: &'a [(String, String)] /* every header to sign, incl. host and
//!    x-amz-content-sha256 */, payload_hash: &'a str }`
//! - `pub struct Signed { headers: Vec<(&'static str, String)> /* to add to the request:
//!    x-amz-date, x-amz-security-token (when a token is given; it is also signed),
//!    authorization */, canonical_request: String, string_to_sign: String, signature: String }`
//! - `pub fn sign(req: &HttpRequest<'_>, inputs: &SigningInputs<'_>) -> Signed`
//! - `pub fn uri_encode(input: &str, encode_slash: bool) -> String` — AWS URI encoding
//!   (unreserved `A-Za-z0-9-_.~` kept, everything else `%XX` uppercase).
//! - `pub fn encode_query(query: &[(String, String)]) -> String` — the canonical query string,
//!   also what the client puts on the wire so the two always agree.
//! - `pub fn sha256_hex(data: &[u8]) -> String`
//! - `pub fn amz_date(t: SystemTime) -> String` — `20150830T123600Z`.
