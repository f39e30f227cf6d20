//! Where a request goes: the endpoint, path-style or virtual-hosted addressing, and the exact
//! URL, host and encoded path that are both signed and sent.
//!
//! Keys are URI-encoded once and never normalized; the query string on the wire is exactly
//! `sigv4::encode_query`, so the signature always covers what the server receives.
//! One thing no `http(s)` URL can carry: `.` and `..` path segments. The `url` crate (which
//! reqwest sends through) resolves them, in literal and in `%2E` form alike, as the URL
//! standard requires; a request for `a/../b` would silently reach `b`. Such keys, and the
//! empty key (which would address the bucket itself), are refused with
//! [`S3Error::InvalidKey`] before anything is sent.

use std::net::IpAddr;

use crate::s3::S3Error;
use crate::sigv4::{encode_query, uri_encode};

/// Refuses keys that cannot be put in a request path without reaching something else.
pub fn check_key(key: &str) -> Result<(), S3Error> {
    let reason = if key.is_empty() {
        "the empty key addresses the bucket itself"
    } else if key.split('/').any(|seg| seg == "." || seg == "..") {
        "HTTP URLs resolve `.` and `..` path segments, so the request would reach another key"
    } else {
        return Ok(());
    };
    Err(S3Error::InvalidKey {
        key: key.to_string(),
        reason: reason.to_string(),
    })
}

/// The parsed endpoint and the addressing style chosen for the bucket.
#[derive(Clone, Debug)]
pub struct Addressing {
    scheme: String,
    /// Host and (non-default) port of the service endpoint, as in the `Host` header.
    host: String,
    /// A path the endpoint URL carried (`http://gw/s3` → `/s3`), without a trailing slash.
    base_path: String,
    bucket: String,
    path_style: bool,
}

/// One request's target: what is sent and what is signed.
#[derive(Debug)]
pub struct Target {
    pub url: String,
    pub host: String,
    /// URI-encoded path, exactly as sent.
    pub path: String,
}

impl Addressing {
    /// `endpoint`: `None` for AWS (`https://s3.REGION.amazonaws.com`), else the URL given.
    pub fn new(
        endpoint: Option<&str>,
        region: &str,
        bucket: &str,
        force_path_style: bool,
    ) -> Result<Addressing, S3Error> {
        let endpoint = match endpoint {
            Some(e) => e.trim().to_string(),
            None => aws_endpoint(region),
        };
        let url = reqwest::Url::parse(&endpoint)
            .map_err(|e| S3Error::InvalidConfig(format!("endpoint {endpoint:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(S3Error::InvalidConfig(format!(
                "endpoint {endpoint:?}: the scheme must be http or https"
            )));
        }
        if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err(S3Error::InvalidConfig(format!(
                "endpoint {endpoint:?}: must not carry a query or user info"
            )));
        }
        let host_only = url
            .host_str()
            .ok_or_else(|| S3Error::InvalidConfig(format!("endpoint {endpoint:?} has no host")))?;
        let host = match url.port() {
            Some(port) => format!("{host_only}:{port}"),
            None => host_only.to_string(),
        };
        let https = url.scheme() == "https";
        let path_style = force_path_style
            || is_ip_or_localhost(host_only)
            || !virtual_host_compatible(bucket, https);
        Ok(Addressing {
            scheme: url.scheme().to_string(),
            host,
            base_path: url.path().trim_end_matches('/').to_string(),
            bucket: bucket.to_string(),
            path_style,
        })
    }

    pub fn is_path_style(&self) -> bool {
        self.path_style
    }

    /// The `Host` header of every request.
    pub fn host(&self) -> String {
        if self.path_style {
            self.host.clone()
        } else {
            format!("{}.{}", self.bucket, self.host)
        }
    }

    /// The bucket's base URL, for messages (`https://b.s3.eu-west-1.amazonaws.com`).
    pub fn display(&self) -> String {
        let style = if self.path_style {
            "path-style"
        } else {
            "virtual-hosted"
        };
        format!(
            "{}://{}{} ({style})",
            self.scheme,
            self.host(),
            self.bucket_path()
        )
    }

    /// The bucket's own path: `/bucket` (path-style) or empty.
    fn bucket_path(&self) -> String {
        if self.path_style {
            format!("{}/{}", self.base_path, self.bucket)
        } else {
            self.base_path.clone()
        }
    }

    /// The target of a request on `key` (`None`: the bucket itself) with `query` pairs.
    pub fn target(&self, key: Option<&str>, query: &[(String, String)]) -> Result<Target, S3Error> {
        let path = match key {
            Some(key) => {
                check_key(key)?;
                format!("{}/{}", self.bucket_path(), uri_encode(key, false))
            }
            None => format!("{}/", self.bucket_path()),
        };
        let host = self.host();
        let mut url = format!("{}://{host}{path}", self.scheme);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&encode_query(query));
        }
        // Guard against any rewriting the URL parser would do: the path it will send must be
        // the path we sign, byte for byte.
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| S3Error::InvalidConfig(format!("cannot build a URL: {e}")))?;
        if parsed.path() != path {
            return Err(S3Error::InvalidKey {
                key: key.unwrap_or_default().to_string(),
                reason: format!("the URL parser rewrites the path {path:?}"),
            });
        }
        Ok(Target { url, host, path })
    }
}

/// The regional AWS endpoint (China regions live under `amazonaws.com.cn`).
fn aws_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://s3.{region}.{suffix}")
}

fn is_ip_or_localhost(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok()
        || bare.eq_ignore_ascii_case("localhost")
        || bare.to_ascii_lowercase().ends_with(".localhost")
}

/// Whether `bucket` can be a DNS label in front of the endpoint host: lowercase letters,
/// digits and hyphens, 3 to 63 long, and no dots over https (a dotted name would not match
/// the endpoint's wildcard certificate).
fn virtual_host_compatible(bucket: &str, https: bool) -> bool {
    let len_ok = (3..=63).contains(&bucket.len());
    let chars_ok = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ends_ok = !bucket.starts_with(['-', '.']) && !bucket.ends_with(['-', '.']);
    let dots_ok = !bucket.contains('.') || (!https && !bucket.contains(".."));
    len_ok && chars_ok && ends_ok && dots_ok && bucket.parse::<IpAddr>().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn aws_is_virtual_hosted_by_region() {
        let a = Addressing::new(None, "eu-west-1", "my-bucket", false).unwrap();
        let t = a.target(Some("dir/a b+c%.txt"), &[]).unwrap();
        assert_eq!(t.host, "my-bucket.s3.eu-west-1.amazonaws.com");
        assert_eq!(t.path, "/dir/a%20b%2Bc%25.txt");
        assert_eq!(
            t.url,
            "https://my-bucket.s3.eu-west-1.amazonaws.com/dir/a%20b%2Bc%25.txt"
        );
        let cn = Addressing::new(None, "cn-north-1", "b-1", false).unwrap();
        assert_eq!(cn.host(), "b-1.s3.cn-north-1.amazonaws.com.cn");
    }

    #[test]
    fn local_endpoints_and_odd_buckets_are_path_style() {
        for (endpoint, bucket) in [
            (Some("http://127.0.0.1:9000"), "bucket"),
            (Some("http://[::1]:9000/"), "bucket"),
            (Some("http://localhost:9000"), "bucket"),
            (Some("https://s3.example.com"), "dotted.bucket"),
            (Some("https://s3.example.com"), "Upper"),
            (None, "under_score"),
        ] {
            let a = Addressing::new(endpoint, "us-east-1", bucket, false).unwrap();
            assert!(a.is_path_style(), "{endpoint:?} {bucket}");
        }
        let a = Addressing::new(Some("http://127.0.0.1:9000/"), "r", "bkt", false).unwrap();
        let t = a.target(Some("k"), &pairs(&[("uploads", "")])).unwrap();
        assert_eq!(t.url, "http://127.0.0.1:9000/bkt/k?uploads=");
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:9000", "/bkt/k")
        );
        let bucket = a.target(None, &[]).unwrap();
        assert_eq!(bucket.path, "/bkt/");
    }

    #[test]
    fn custom_endpoint_virtual_host_and_base_path() {
        let a =
            Addressing::new(Some("https://s3.example.com:8443/gw/"), "r", "b-1", false).unwrap();
        let t = a.target(Some("x"), &[]).unwrap();
        assert_eq!(t.url, "https://b-1.s3.example.com:8443/gw/x");
        let forced = Addressing::new(Some("https://s3.example.com"), "r", "b-1", true).unwrap();
        assert_eq!(forced.display(), "https://s3.example.com/b-1 (path-style)");
    }

    /// Empty segments and odd characters survive verbatim; dot segments are refused.
    #[test]
    fn keys_are_never_normalized() {
        let a = Addressing::new(Some("http://127.0.0.1:1"), "r", "b", false).unwrap();
        assert_eq!(a.target(Some("a//b"), &[]).unwrap().path, "/b/a//b");
        assert_eq!(a.target(Some("/lead"), &[]).unwrap().path, "/b//lead");
        assert_eq!(a.target(Some("a/.b/..c"), &[]).unwrap().path, "/b/a/.b/..c");
        for key in ["a/../b", "./x", "a/.", "..", ""] {
            assert!(
                matches!(a.target(Some(key), &[]), Err(S3Error::InvalidKey { .. })),
                "{key:?}"
            );
        }
        let q = pairs(&[("prefix", "a b/+"), ("list-type", "2")]);
        assert_eq!(
            a.target(None, &q).unwrap().url,
            "http://127.0.0.1:1/b/?list-type=2&prefix=a%20b%2F%2B"
        );
    }

    #[test]
    fn bad_endpoints_are_config_errors() {
        for e in ["ftp://x", "not a url", "http://u:p@h", "http://h/?x=1"] {
            assert!(matches!(
                Addressing::new(Some(e), "r", "b", false),
                Err(S3Error::InvalidConfig(_))
            ));
        }
    }
}
