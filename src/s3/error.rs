//! `S3Error`: every way an S3 call can end badly, typed so that callers (the filesystem's
//! errno policy, the mount's startup checks) can match on the cause rather than on text.
//!
//! Error messages from S3 are kept, but only after [`redact`] removed anything that looks
//! like a credential: S3 and STS echo request headers (tokens, signatures) in error bodies.

/// An S3 call that failed for good (after retries).
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("bucket {bucket:?} does not exist")]
    NoSuchBucket { bucket: String },
    #[error("no such key {key:?}")]
    NoSuchKey { key: String },
    /// HTTP 403 (AccessDenied, and the signature/key errors that are not credential expiry).
    #[error("access denied ({code}): {message}")]
    AccessDenied { code: String, message: String },
    /// The credentials were rejected as expired or unknown (ExpiredToken, InvalidToken,
    /// TokenRefreshRequired, InvalidAccessKeyId).
    #[error("credentials rejected ({code}): {message}")]
    CredentialsRejected { code: String, message: String },
    /// The bucket lives in another region than the one we signed for.
    #[error("the bucket is in region {region:?}, not {signed_for:?}")]
    WrongRegion { region: String, signed_for: String },
    /// The request's signing time was too far from the server's clock.
    #[error("the local clock is too far from S3's: {message}")]
    ClockSkewed { message: String },
    /// If-Match did not hold: the object changed since it was opened.
    #[error("the object changed (ETag no longer {etag})")]
    PreconditionFailed { etag: String },
    #[error("the requested range is not satisfiable")]
    InvalidRange,
    /// Any other error answer from the server, with its S3 code and (redacted) message.
    #[error("S3 error {status} {code}: {message}")]
    Service {
        status: u16,
        code: String,
        message: String,
    },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach {endpoint}: {reason}")]
    Network { endpoint: String, reason: String },
    /// The answer was not what S3 sends (bad XML, missing header).
    #[error("malformed answer from S3: {0}")]
    Malformed(String),
    /// A key that cannot be sent in a request path: empty, or with `.`/`..` segments that
    /// every HTTP URL parser resolves away (the request would reach another object).
    #[error("key {key:?} cannot be addressed: {reason}")]
    InvalidKey { key: String, reason: String },
    /// The client configuration is unusable (endpoint URL, CA bundle).
    #[error("invalid S3 client configuration: {0}")]
    InvalidConfig(String),
    /// No credentials to sign with.
    #[error("no credentials: {0}")]
    NoCredentials(String),
}

impl S3Error {
    /// S3 refused an append (`x-amz-write-offset-bytes`) because the object is not the size
    /// it named: another client changed it meanwhile.
    pub fn is_invalid_write_offset(&self) -> bool {
        matches!(self, S3Error::Service { code, .. } if code == "InvalidWriteOffset")
    }

    /// True for errors worth trying again (5xx, throttling, connection failures).
    pub fn is_retryable(&self) -> bool {
        match self {
            S3Error::Network { .. } => true,
            // 501 Not Implemented is for good: the server lacks the operation.
            S3Error::Service { status, code, .. } if *status == 501 || code == "NotImplemented" => {
                false
            }
            S3Error::Service { status, code, .. } => {
                *status >= 500
                    || *status == 429
                    || matches!(
                        code.as_str(),
                        "SlowDown"
                            | "Throttling"
                            | "ThrottlingException"
                            | "RequestTimeout"
                            | "RequestLimitExceeded"
                            | "InternalError"
                            | "ServiceUnavailable"
                    )
            }
            _ => false,
        }
    }
}

/// Removes what looks like a secret from a text S3 sent back (error bodies echo the
/// `Authorization` header, `x-amz-security-token`, and presigned query strings).
pub fn redact(text: &str) -> String {
    const SECRET_TAGS: [&str; 6] = [
        "Token",
        "SessionToken",
        "SecretAccessKey",
        "Signature",
        "SignatureProvided",
        "StringToSign",
    ];
    let mut out = text.to_string();
    for tag in SECRET_TAGS {
        out = redact_xml_element(&out, tag);
    }
    for marker in [
        "x-amz-security-token=",
        "X-Amz-Security-Token=",
        "X-Amz-Signature=",
        "Signature=",
        "x-amz-security-token:",
    ] {
        out = redact_after(&out, marker);
    }
    out
}

fn redact_xml_element(text: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(&open) {
        let body_start = start + open.len();
        out.push_str(&rest[..body_start]);
        match rest[body_start..].find(&close) {
            Some(end) => {
                out.push_str("** redacted **");
                rest = &rest[body_start + end..];
            }
            None => {
                out.push_str("** redacted **");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn redact_after(text: &str, marker: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(marker) {
        let value_start = start + marker.len();
        out.push_str(&rest[..value_start]);
        out.push_str("** redacted **");
        let tail = &rest[value_start..];
        let end = tail
            .find(|c: char| c == '&' || c == ',' || c == '<' || c == '"' || c.is_whitespace())
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens and signatures echoed in an error body never survive redaction.
    #[test]
    fn redact_removes_tokens_and_signatures() {
        let body = "<Error><Code>InvalidToken</Code><Token>FwoGZXIvYXdzEJr</Token>\
                    <SignatureProvided>abc123</SignatureProvided>\
                    <Message>bad x-amz-security-token=FwoGZXI&amp;x=1</Message></Error>";
        let r = redact(body);
        assert!(!r.contains("FwoGZXI"), "{r}");
        assert!(!r.contains("abc123"), "{r}");
        assert!(r.contains("InvalidToken"));
    }
}
