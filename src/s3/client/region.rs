//! Which endpoint and region to use: pure resolution helpers for the configuration layer, and
//! the reading of a HeadBucket answer during region discovery.

use reqwest::header::HeaderMap;

use super::errors::BUCKET_REGION;
use crate::s3::xml::parse_error;

/// The region discovery signs its HeadBucket for, and the answer when nothing says otherwise
/// (local S3-compatible servers send no region hint).
pub const DISCOVERY_REGION: &str = "us-east-1";

/// `--endpoint-url` flag, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL` (blank values
/// count as unset). The environment ones are skipped when
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`, as in the AWS SDKs; the flag never is.
pub fn resolve_endpoint(
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    if let Some(flag) = flag.map(str::trim).filter(|f| !f.is_empty()) {
        return Some(flag.to_string());
    }
    let ignore = env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if ignore {
        return None;
    }
    first_set(&env, &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
}

/// `--region` flag, else `AWS_REGION`, else `AWS_DEFAULT_REGION` (blank values count as
/// unset). `None` means: discover it from the bucket.
pub fn resolve_region(flag: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(flag) = flag.map(str::trim).filter(|f| !f.is_empty()) {
        return Some(flag.to_string());
    }
    first_set(&env, &["AWS_REGION", "AWS_DEFAULT_REGION"])
}

fn first_set(env: &impl Fn(&str) -> Option<String>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    })
}

/// The bucket's region as a HeadBucket answer tells it: the `x-amz-bucket-region` header
/// (sent with 200, 301 and 403), or the `<Region>` of a 400 `AuthorizationHeaderMalformed`.
pub fn region_hint(status: u16, headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let header = headers
        .get(BUCKET_REGION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    header.or_else(|| {
        if status != 400 {
            return None;
        }
        parse_error(body)
            .filter(|e| e.code == "AuthorizationHeaderMalformed")
            .and_then(|e| e.region)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn endpoint_precedence() {
        let e = env(&[
            ("AWS_ENDPOINT_URL", "http://all"),
            ("AWS_ENDPOINT_URL_S3", "http://s3"),
        ]);
        assert_eq!(
            resolve_endpoint(Some("http://flag"), &e).as_deref(),
            Some("http://flag")
        );
        assert_eq!(resolve_endpoint(None, &e).as_deref(), Some("http://s3"));
        let e = env(&[
            ("AWS_ENDPOINT_URL", "http://all"),
            ("AWS_ENDPOINT_URL_S3", " "),
        ]);
        assert_eq!(
            resolve_endpoint(Some(""), &e).as_deref(),
            Some("http://all")
        );
        let e = env(&[
            ("AWS_ENDPOINT_URL", "http://all"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]);
        assert_eq!(resolve_endpoint(None, &e), None);
        assert_eq!(
            resolve_endpoint(Some("http://f"), &e).as_deref(),
            Some("http://f")
        );
    }

    #[test]
    fn region_precedence() {
        let e = env(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-west-2"),
        ]);
        assert_eq!(
            resolve_region(Some("ap-south-1"), &e).as_deref(),
            Some("ap-south-1")
        );
        assert_eq!(resolve_region(None, &e).as_deref(), Some("eu-west-1"));
        let e = env(&[("AWS_DEFAULT_REGION", "us-west-2")]);
        assert_eq!(resolve_region(None, &e).as_deref(), Some("us-west-2"));
        assert_eq!(resolve_region(None, env(&[])), None);
    }

    #[test]
    fn hints_from_header_or_malformed_authorization() {
        let mut headers = HeaderMap::new();
        headers.insert(BUCKET_REGION, HeaderValue::from_static("eu-central-1"));
        for status in [200, 301, 403] {
            assert_eq!(
                region_hint(status, &headers, b"").as_deref(),
                Some("eu-central-1")
            );
        }
        let body =
            b"<Error><Code>AuthorizationHeaderMalformed</Code><Region>sa-east-1</Region></Error>";
        assert_eq!(
            region_hint(400, &HeaderMap::new(), body).as_deref(),
            Some("sa-east-1")
        );
        assert_eq!(region_hint(200, &HeaderMap::new(), b""), None);
        assert_eq!(region_hint(403, &HeaderMap::new(), body), None);
    }
}
