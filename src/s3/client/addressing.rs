//! The exact URL, host and encoded path of one request, both signed and sent, on the
//! endpoint [`crate::s3::endpoint`] resolved for the bucket.
//!
//! Keys are URI-encoded once and never normalized; the query string on the wire is exactly
//! `sigv4::encode_query`, so the signature always covers what the server receives.
//! One thing no `http(s)` URL can carry: `.` and `..` path segments. The `url` crate (which
//! reqwest sends through) resolves them, in literal and in `%2E` form alike, as the URL
//! standard requires; a request for `a/../b` would silently reach `b`. Such keys, and the
//! empty key (which would address the bucket itself), are refused with
//! [`S3Error::InvalidKey`] before anything is sent.

use crate::s3::endpoint::{self, BucketTarget, Endpoint, EndpointParams, EndpointVariants};
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

/// The bucket's resolved endpoint, and what it addresses.
#[derive(Clone, Debug)]
pub struct Addressing {
    target: BucketTarget,
    endpoint: Endpoint,
}

/// One request's target: what is sent and what is signed.
#[derive(Debug)]
pub struct Target {
    pub url: String,
    pub host: String,
    /// URI-encoded path, exactly as sent.
    pub path: String,
}

/// How a client reaches its bucket, before a region is known.
#[derive(Clone, Copy, Debug)]
pub struct Route<'a> {
    /// The bucket name, or an access point ARN.
    pub bucket: &'a str,
    /// `None` for AWS, else the URL given (`--endpoint-url`).
    pub endpoint_url: Option<&'a str>,
    pub force_path_style: bool,
    pub variants: EndpointVariants,
}

impl Addressing {
    /// The addressing of `route` in `region` (an access point's own region wins).
    pub fn new(route: &Route<'_>, region: &str) -> Result<Addressing, S3Error> {
        let config_error = |e: endpoint::EndpointError| S3Error::InvalidConfig(e.to_string());
        let target = BucketTarget::parse(route.bucket).map_err(config_error)?;
        let endpoint = endpoint::resolve(&EndpointParams {
            target: &target,
            region,
            endpoint_url: route.endpoint_url,
            force_path_style: route.force_path_style,
            variants: route.variants,
        })
        .map_err(config_error)?;
        Ok(Addressing { target, endpoint })
    }

    pub fn is_path_style(&self) -> bool {
        self.endpoint.path_style
    }

    /// The `Host` header of every request.
    pub fn host(&self) -> String {
        self.endpoint.host.clone()
    }

    /// The region SigV4 signs for: the client's, or an access point ARN's.
    pub fn signing_region(&self) -> &str {
        &self.endpoint.signing_region
    }

    /// The service SigV4 signs for: `s3`, or `s3-outposts` on an Outpost.
    pub fn signing_service(&self) -> &'static str {
        self.endpoint.signing_service
    }

    /// `x-amz-copy-source` for `key` of this bucket or access point.
    pub fn copy_source(&self, key: &str) -> String {
        self.target.copy_source(key)
    }

    /// The bucket's base URL, for messages (`https://b.s3.eu-west-1.amazonaws.com`).
    pub fn display(&self) -> String {
        let style = if self.endpoint.path_style {
            "path-style"
        } else {
            "virtual-hosted"
        };
        format!("{} ({style})", self.endpoint.url())
    }

    /// The target of a request on `key` (`None`: the bucket itself) with `query` pairs.
    pub fn target(&self, key: Option<&str>, query: &[(String, String)]) -> Result<Target, S3Error> {
        let base = &self.endpoint.base_path;
        let path = match key {
            Some(key) => {
                check_key(key)?;
                format!("{base}/{}", uri_encode(key, false))
            }
            None => format!("{base}/"),
        };
        let host = self.host();
        let mut url = format!("{}://{host}{path}", self.endpoint.scheme);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addressing(
        endpoint: Option<&str>,
        region: &str,
        bucket: &str,
        force_path_style: bool,
    ) -> Result<Addressing, S3Error> {
        let route = Route {
            bucket,
            endpoint_url: endpoint,
            force_path_style,
            variants: EndpointVariants::default(),
        };
        Addressing::new(&route, region)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn aws_is_virtual_hosted_by_region() {
        let a = addressing(None, "eu-west-1", "my-bucket", false).unwrap();
        let t = a.target(Some("dir/a b+c%.txt"), &[]).unwrap();
        assert_eq!(t.host, "my-bucket.s3.eu-west-1.amazonaws.com");
        assert_eq!(t.path, "/dir/a%20b%2Bc%25.txt");
        assert_eq!(
            t.url,
            "https://my-bucket.s3.eu-west-1.amazonaws.com/dir/a%20b%2Bc%25.txt"
        );
        let cn = addressing(None, "cn-north-1", "b-1", false).unwrap();
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
            let a = addressing(endpoint, "us-east-1", bucket, false).unwrap();
            assert!(a.is_path_style(), "{endpoint:?} {bucket}");
        }
        let a = addressing(Some("http://127.0.0.1:9000/"), "r", "bkt", false).unwrap();
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
        let a = addressing(Some("https://s3.example.com:8443/gw/"), "r", "b-1", false).unwrap();
        let t = a.target(Some("x"), &[]).unwrap();
        assert_eq!(t.url, "https://b-1.s3.example.com:8443/gw/x");
        let forced = addressing(Some("https://s3.example.com"), "r", "b-1", true).unwrap();
        assert_eq!(forced.display(), "https://s3.example.com/b-1 (path-style)");
    }

    /// Empty segments and odd characters survive verbatim; dot segments are refused.
    #[test]
    fn keys_are_never_normalized() {
        let a = addressing(Some("http://127.0.0.1:1"), "r", "b", false).unwrap();
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
                addressing(Some(e), "r", "b", false),
                Err(S3Error::InvalidConfig(_))
            ));
        }
    }
}
