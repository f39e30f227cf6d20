//! The one place where an S3 error answer (status, headers, `<Error>` body) becomes an
//! [`S3Error`]. Every message that came from the server is passed through [`redact`]
//! first: S3 echoes tokens and signatures in error bodies.

use reqwest::header::HeaderMap;

use crate::s3::error::redact;
use crate::s3::xml::parse_error;
use crate::s3::S3Error;

/// What the request was about, to name it in the error.
#[derive(Clone, Copy, Debug)]
pub struct ErrorContext<'a> {
    pub bucket: &'a str,
    /// `None` for bucket-level requests (HeadBucket, ListObjectsV2, DeleteObjects).
    pub key: Option<&'a str>,
    /// The region the request was signed for.
    pub region: &'a str,
    pub if_match: Option<&'a str>,
}

/// The header S3 puts on answers about a bucket, naming its region.
pub const BUCKET_REGION: &str = "x-amz-bucket-region";

/// Error codes meaning the credentials themselves are stale or unknown (not a permission).
const CREDENTIAL_CODES: [&str; 5] = [
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "InvalidAccessKeyId",
    "ExpiredTokenException",
];

/// Maps an error answer to an [`S3Error`]. `body` may be empty (HEAD answers have none).
pub fn map_error(status: u16, headers: &HeaderMap, body: &[u8], ctx: &ErrorContext<'_>) -> S3Error {
    let parsed = parse_error(body).unwrap_or_default();
    let code = if parsed.code.is_empty() {
        default_code(status).to_string()
    } else {
        redact(&parsed.code)
    };
    let message = if parsed.message.is_empty() {
        // Not an S3 XML error (a proxy's HTML page, a bare status): keep a short excerpt.
        let text = String::from_utf8_lossy(body);
        redact(text.trim().chars().take(200).collect::<String>().as_str())
    } else {
        redact(&parsed.message)
    };
    let header_region = headers
        .get(BUCKET_REGION)
        .and_then(|v| v.to_str().ok())
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    // A bodiless 400 naming another region is AWS's answer to a HEAD signed for the wrong
    // region (the GET twin says AuthorizationHeaderMalformed).
    let bare_400_with_region = status == 400 && parsed.code.is_empty() && header_region.is_some();
    let right_region = parsed.region.clone().or(header_region);

    if CREDENTIAL_CODES.contains(&code.as_str()) {
        return S3Error::CredentialsRejected { code, message };
    }
    if code == "RequestTimeTooSkewed" {
        return S3Error::ClockSkewed { message };
    }
    let wrong_region = matches!(status, 301 | 307)
        || code == "AuthorizationHeaderMalformed"
        || code == "PermanentRedirect"
        || bare_400_with_region;
    if wrong_region {
        if let Some(region) = right_region.filter(|r| r != ctx.region) {
            return S3Error::WrongRegion {
                region,
                signed_for: ctx.region.to_string(),
            };
        }
    }
    match (status, code.as_str()) {
        (_, "NoSuchBucket") => S3Error::NoSuchBucket {
            bucket: ctx.bucket.to_string(),
        },
        (_, "NoSuchKey") => no_such_key(ctx),
        // HEAD answers carry no body: the status alone tells which one is missing.
        (404, "NotFound") => match ctx.key {
            Some(_) => no_such_key(ctx),
            None => S3Error::NoSuchBucket {
                bucket: ctx.bucket.to_string(),
            },
        },
        (403, _) | (_, "AccessDenied") | (_, "AllAccessDisabled") => {
            S3Error::AccessDenied { code, message }
        }
        (412, _) | (_, "PreconditionFailed") => S3Error::PreconditionFailed {
            etag: ctx.if_match.unwrap_or_default().to_string(),
        },
        (416, _) | (_, "InvalidRange") => S3Error::InvalidRange,
        _ => S3Error::Service {
            status,
            code,
            message,
        },
    }
}

fn no_such_key(ctx: &ErrorContext<'_>) -> S3Error {
    S3Error::NoSuchKey {
        key: ctx.key.unwrap_or_default().to_string(),
    }
}

/// The code to report when the answer had no `<Code>` (HEAD requests, proxies).
fn default_code(status: u16) -> &'static str {
    match status {
        301 => "PermanentRedirect",
        307 => "TemporaryRedirect",
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        412 => "PreconditionFailed",
        416 => "InvalidRange",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const CTX: ErrorContext<'static> = ErrorContext {
        bucket: "b",
        key: Some("k"),
        region: "us-east-1",
        if_match: Some("\"e\""),
    };

    fn map(status: u16, body: &str) -> S3Error {
        map_error(status, &HeaderMap::new(), body.as_bytes(), &CTX)
    }

    fn error_body(code: &str) -> String {
        format!("<Error><Code>{code}</Code><Message>m</Message></Error>")
    }

    #[test]
    fn codes_map_to_variants() {
        assert!(
            matches!(map(404, &error_body("NoSuchKey")), S3Error::NoSuchKey { key } if key == "k")
        );
        assert!(matches!(
            map(404, &error_body("NoSuchBucket")),
            S3Error::NoSuchBucket { .. }
        ));
        assert!(matches!(map(404, ""), S3Error::NoSuchKey { .. }));
        let bucket_ctx = ErrorContext { key: None, ..CTX };
        assert!(matches!(
            map_error(404, &HeaderMap::new(), b"", &bucket_ctx),
            S3Error::NoSuchBucket { .. }
        ));
        for code in ["AccessDenied", "SignatureDoesNotMatch", "AllAccessDisabled"] {
            assert!(
                matches!(map(403, &error_body(code)), S3Error::AccessDenied { .. }),
                "{code}"
            );
        }
        assert!(matches!(map(403, ""), S3Error::AccessDenied { .. }));
        for code in [
            "ExpiredToken",
            "InvalidToken",
            "TokenRefreshRequired",
            "InvalidAccessKeyId",
        ] {
            let status = if code == "ExpiredToken" { 400 } else { 403 };
            assert!(
                matches!(
                    map(status, &error_body(code)),
                    S3Error::CredentialsRejected { .. }
                ),
                "{code}"
            );
        }
        assert!(matches!(map(412, ""), S3Error::PreconditionFailed { etag } if etag == "\"e\""));
        assert!(matches!(
            map(416, &error_body("InvalidRange")),
            S3Error::InvalidRange
        ));
        let slow = map(503, &error_body("SlowDown"));
        assert!(slow.is_retryable());
        assert!(map(400, &error_body("RequestTimeout")).is_retryable());
        assert!(!map(400, &error_body("InvalidArgument")).is_retryable());
        // A server without the operation lacks it for good.
        assert!(!map(501, &error_body("NotImplemented")).is_retryable());
        assert!(!map(400, &error_body("NotImplemented")).is_retryable());
    }

    #[test]
    fn wrong_region_from_body_or_header() {
        let body = "<Error><Code>AuthorizationHeaderMalformed</Code><Message>x</Message>\
                    <Region>eu-west-1</Region></Error>";
        assert!(matches!(
            map(400, body),
            S3Error::WrongRegion { region, signed_for } if region == "eu-west-1" && signed_for == "us-east-1"
        ));
        let mut headers = HeaderMap::new();
        headers.insert(BUCKET_REGION, HeaderValue::from_static("ap-south-1"));
        assert!(matches!(
            map_error(301, &headers, b"", &CTX),
            S3Error::WrongRegion { region, .. } if region == "ap-south-1"
        ));
        assert!(matches!(
            map_error(400, &headers, b"", &CTX),
            S3Error::WrongRegion { region, .. } if region == "ap-south-1"
        ));
        // A redirect naming no region stays a plain service error.
        assert!(matches!(map(301, ""), S3Error::Service { status: 301, .. }));
    }

    /// A token echoed in the body never reaches the error's text.
    #[test]
    fn messages_are_redacted() {
        let body = "<Error><Code>InvalidArgument</Code><Message>bad header \
                    x-amz-security-token=FQoGZXIvYXdzSECRET</Message>\
                    <Token>FQoGZXIvYXdzSECRET</Token></Error>";
        let e = map(400, body).to_string();
        assert!(!e.contains("FQoGZXIvYXdzSECRET"), "{e}");
        let e = map(502, "<html>proxy saw Signature=abcdef0123</html>").to_string();
        assert!(!e.contains("abcdef0123"), "{e}");
    }
}
