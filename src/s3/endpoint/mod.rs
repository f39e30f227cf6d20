//! Where requests for a bucket go, decided in one place: the URL's scheme, host and path
//! before the key, whether the bucket is in the host or the path, and the region and
//! service that SigV4 signs for. The rules are the AWS SDKs' S3 endpoint rules (the
//! `endpoint-rule-set` of the S3 model), reduced to what a mount uses:
//!
//! - A bucket on AWS: `BUCKET.s3.REGION.DNS_SUFFIX` (path-style:
//!   `s3.REGION.DNS_SUFFIX/BUCKET`), with `s3-fips` for `--fips` and `.dualstack` after it
//!   for `--dual-stack`. The partition gives the suffix: `amazonaws.com`, or
//!   `amazonaws.com.cn` for `cn-*`; `us-gov-*` is `aws-us-gov`. An access point alias
//!   (`…-s3alias`) is a bucket name to these rules.
//! - `--transfer-acceleration`: `BUCKET.s3-accelerate[.dualstack].DNS_SUFFIX`, virtual-hosted
//!   only, never with FIPS.
//! - An access point ARN: `NAME-ACCOUNT.s3-accesspoint[-fips][.dualstack].REGION.DNS_SUFFIX`,
//!   virtual-hosted only, signed for the ARN's region.
//! - An Outposts access point ARN: `NAME-ACCOUNT.OUTPOST_ID.s3-outposts.REGION.DNS_SUFFIX`,
//!   signed for service `s3-outposts` (SigV4; S3 on Outposts also takes SigV4A, which the
//!   rules list first), no FIPS, dual-stack or acceleration.
//! - A directory bucket (S3 Express One Zone, `NAME--ZONEID--x-s3`): its zonal endpoint
//!   `BUCKET.s3express[-fips]-ZONEID[.dualstack].REGION.DNS_SUFFIX`, virtual-hosted only,
//!   signed for service `s3express`; no Transfer Acceleration. (The rules' control-plane
//!   endpoint, `s3express-control.REGION.DNS_SUFFIX/BUCKET`, serves bucket management,
//!   which a mount never calls.) Through a custom endpoint it is addressed as any bucket
//!   there, and still signed for `s3express`. An access point for a directory bucket
//!   (`NAME--ZONEID--xa-s3`) is given where the bucket goes and addressed exactly so.
//! - A custom endpoint (`--endpoint-url`): the bucket (or `NAME-ACCOUNT` of an access point)
//!   before its host, or after its path when path-style; never with FIPS, dual-stack or
//!   acceleration. IP addresses and `localhost` are always path-style (servers there have
//!   no per-bucket host names).
//!
//! Combinations the rules refuse are refused here, before anything is sent, with a
//! [`Refusal`] that says what to drop. This module is pure: no I/O, no clock.

mod arn;
mod error;
mod partition;

use std::fmt;

pub use arn::{split_source as split_arn_source, AccessPointArn, Arn, OutpostsAccessPointArn};
pub use error::{EndpointError, Refusal};
pub use partition::{partition_of, Partition};

use crate::s3::express::{DirectoryBucket, SIGNING_SERVICE};
use crate::sigv4::uri_encode;
use partition::{is_ip_or_localhost, is_valid_host_label, is_virtual_hostable};

/// What a mount addresses: a bucket (or an access point alias, which is used as one), or
/// an access point by its ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketTarget {
    Bucket(String),
    AccessPoint(AccessPointArn),
    OutpostsAccessPoint(OutpostsAccessPointArn),
}

impl BucketTarget {
    /// A bucket name, or an ARN when `text` starts with `arn:` (then it must be a valid
    /// access point ARN).
    pub fn parse(text: &str) -> Result<BucketTarget, EndpointError> {
        if !text.starts_with("arn:") {
            return Ok(BucketTarget::Bucket(text.to_string()));
        }
        Ok(match arn::parse(text)? {
            Arn::AccessPoint(ap) => BucketTarget::AccessPoint(ap),
            Arn::Outposts(op) => BucketTarget::OutpostsAccessPoint(op),
        })
    }

    /// The region an ARN names; requests go there whatever region is configured.
    pub fn arn_region(&self) -> Option<&str> {
        match self {
            BucketTarget::Bucket(_) => None,
            BucketTarget::AccessPoint(ap) => Some(&ap.region),
            BucketTarget::OutpostsAccessPoint(op) => Some(&op.region),
        }
    }

    /// `x-amz-copy-source` for `key` of this target, URI-encoded: `/BUCKET/KEY`, or
    /// `ARN/object/KEY` through an access point (S3's CopyObject form; the `:` of the ARN
    /// are encoded, as the AWS SDKs send it).
    pub fn copy_source(&self, key: &str) -> String {
        match self {
            BucketTarget::Bucket(bucket) => format!("/{bucket}/{}", uri_encode(key, false)),
            arn => uri_encode(&format!("{arn}/object/{key}"), false),
        }
    }
}

impl fmt::Display for BucketTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BucketTarget::Bucket(bucket) => f.write_str(bucket),
            BucketTarget::AccessPoint(ap) => ap.fmt(f),
            BucketTarget::OutpostsAccessPoint(op) => op.fmt(f),
        }
    }
}

/// The endpoint variants and features a mount asks for (all off by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointVariants {
    /// `--dual-stack`: endpoints reachable over IPv6 as well as IPv4.
    pub dual_stack: bool,
    /// `--fips`: FIPS 140 validated endpoints.
    pub fips: bool,
    /// `--transfer-acceleration`: S3 Transfer Acceleration (CloudFront edge locations).
    pub accelerate: bool,
}

/// Everything the endpoint of a bucket depends on.
#[derive(Clone, Copy, Debug)]
pub struct EndpointParams<'a> {
    pub target: &'a BucketTarget,
    /// The region configured or discovered; ARNs bring their own (same partition only).
    pub region: &'a str,
    /// `--endpoint-url` (or its environment variables): `None` for AWS.
    pub endpoint_url: Option<&'a str>,
    pub force_path_style: bool,
    pub variants: EndpointVariants,
}

/// A resolved endpoint: where every request of the mount goes, and what it is signed for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` or `http`.
    pub scheme: String,
    /// Host and (non-default) port, as in the `Host` header; carries the bucket when
    /// virtual-hosted.
    pub host: String,
    /// The path before `/KEY`, without a trailing slash: `""`, `/BUCKET` (path-style), or
    /// a custom endpoint's own path before either.
    pub base_path: String,
    pub path_style: bool,
    pub signing_region: String,
    /// `s3`, `s3-outposts` for S3 on Outposts, or `s3express` for a directory bucket.
    pub signing_service: &'static str,
}

impl Endpoint {
    /// The bucket's base URL, as the SDKs' endpoint tests state it.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.base_path)
    }
}

/// A custom endpoint URL, checked.
struct CustomEndpoint {
    scheme: String,
    host: String,
    /// Host and port.
    authority: String,
    path: String,
}

impl CustomEndpoint {
    fn parse(text: &str) -> Result<CustomEndpoint, EndpointError> {
        let text = text.trim();
        let invalid = |reason: &str| EndpointError::InvalidEndpoint {
            endpoint: text.to_string(),
            reason: reason.to_string(),
        };
        let url = reqwest::Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not carry a query or user info"));
        }
        let host = url.host_str().ok_or_else(|| invalid("it has no host"))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Ok(CustomEndpoint {
            scheme: url.scheme().to_string(),
            host: host.to_string(),
            authority,
            path: url.path().trim_end_matches('/').to_string(),
        })
    }
}

/// The endpoint of `params`, or the rule that refuses it.
pub fn resolve(params: &EndpointParams<'_>) -> Result<Endpoint, EndpointError> {
    let region = params.region;
    if !is_valid_host_label(region, false) {
        return Err(EndpointError::InvalidRegion {
            region: region.to_string(),
        });
    }
    let variants = params.variants;
    let custom = params.endpoint_url.map(CustomEndpoint::parse).transpose()?;
    if custom.is_some() {
        if variants.dual_stack {
            return Err(Refusal::DualStackWithCustomEndpoint.into());
        }
        if variants.fips {
            return Err(Refusal::FipsWithCustomEndpoint.into());
        }
        if variants.accelerate {
            return Err(Refusal::AccelerateWithCustomEndpoint.into());
        }
    }
    match params.target {
        BucketTarget::Bucket(bucket) => bucket_endpoint(bucket, params, custom.as_ref()),
        BucketTarget::AccessPoint(ap) => {
            access_point_endpoint(ap, params, custom.as_ref(), params.target)
        }
        BucketTarget::OutpostsAccessPoint(op) => {
            outposts_endpoint(op, params, custom.as_ref(), params.target)
        }
    }
}

fn bucket_endpoint(
    bucket: &str,
    params: &EndpointParams<'_>,
    custom: Option<&CustomEndpoint>,
) -> Result<Endpoint, EndpointError> {
    if let Some(directory) = DirectoryBucket::parse(bucket) {
        return directory_bucket_endpoint(&directory, params, custom);
    }
    let region = params.region;
    let variants = params.variants;
    let partition = partition_of(region);
    let sign = |scheme: &str, host: String, base_path: String, path_style| Endpoint {
        scheme: scheme.to_string(),
        host,
        base_path,
        path_style,
        signing_region: region.to_string(),
        signing_service: "s3",
    };
    if variants.accelerate {
        if params.force_path_style {
            return Err(Refusal::AccelerateWithPathStyle.into());
        }
        if !is_virtual_hostable(bucket, false) {
            return Err(Refusal::AccelerateWithBucketName.into());
        }
        if !partition.supports_accelerate {
            return Err(Refusal::AccelerateInPartition.into());
        }
    }
    if variants.fips && !partition.supports_fips {
        return Err(Refusal::FipsInPartition.into());
    }
    if variants.accelerate && variants.fips {
        return Err(Refusal::AccelerateWithFips.into());
    }
    let encoded = uri_encode(bucket, true);
    if let Some(custom) = custom {
        let path_style = params.force_path_style
            || is_ip_or_localhost(&custom.host)
            || !is_virtual_hostable(bucket, custom.scheme == "http");
        return Ok(if path_style {
            let path = format!("{}/{encoded}", custom.path);
            sign(&custom.scheme, custom.authority.clone(), path, true)
        } else {
            let host = format!("{bucket}.{}", custom.authority);
            sign(&custom.scheme, host, custom.path.clone(), false)
        });
    }
    let dual = if variants.dual_stack {
        ".dualstack"
    } else {
        ""
    };
    if variants.accelerate {
        let host = format!("{bucket}.s3-accelerate{dual}.{}", partition.dns_suffix);
        return Ok(sign("https", host, String::new(), false));
    }
    let fips = if variants.fips { "-fips" } else { "" };
    let service_host = format!("s3{fips}{dual}.{region}.{}", partition.dns_suffix);
    Ok(
        if params.force_path_style || !is_virtual_hostable(bucket, false) {
            sign("https", service_host, format!("/{encoded}"), true)
        } else {
            sign(
                "https",
                format!("{bucket}.{service_host}"),
                String::new(),
                false,
            )
        },
    )
}

/// A directory bucket's zonal endpoint (see the module doc).
fn directory_bucket_endpoint(
    directory: &DirectoryBucket,
    params: &EndpointParams<'_>,
    custom: Option<&CustomEndpoint>,
) -> Result<Endpoint, EndpointError> {
    let region = params.region;
    let variants = params.variants;
    if variants.accelerate {
        return Err(Refusal::DirectoryBucketAccelerate.into());
    }
    let bucket = &directory.bucket;
    let sign = |scheme: &str, host: String, base_path: String, path_style| Endpoint {
        scheme: scheme.to_string(),
        host,
        base_path,
        path_style,
        signing_region: region.to_string(),
        signing_service: SIGNING_SERVICE,
    };
    if let Some(custom) = custom {
        // As any bucket on that server (a local test server is path-style).
        let path_style = params.force_path_style
            || is_ip_or_localhost(&custom.host)
            || !is_virtual_hostable(bucket, custom.scheme == "http");
        return Ok(if path_style {
            let path = format!("{}/{}", custom.path, uri_encode(bucket, true));
            sign(&custom.scheme, custom.authority.clone(), path, true)
        } else {
            let host = format!("{bucket}.{}", custom.authority);
            sign(&custom.scheme, host, custom.path.clone(), false)
        });
    }
    if params.force_path_style {
        return Err(Refusal::DirectoryBucketPathStyle.into());
    }
    let partition = partition_of(region);
    if variants.fips && !partition.supports_fips {
        return Err(Refusal::FipsInPartition.into());
    }
    let fips = if variants.fips { "-fips" } else { "" };
    let dual = if variants.dual_stack {
        ".dualstack"
    } else {
        ""
    };
    let host = format!(
        "{bucket}.s3express{fips}-{}{dual}.{region}.{}",
        directory.zone_id, partition.dns_suffix
    );
    Ok(sign("https", host, String::new(), false))
}

/// The ARN's partition (by its region, as the SDKs decide it) must be the configured
/// region's: an ARN never moves a mount to another partition's credentials.
fn check_same_partition(
    arn_region: &str,
    params: &EndpointParams<'_>,
    target: &BucketTarget,
) -> Result<Partition, EndpointError> {
    let arn_partition = partition_of(arn_region);
    let region_partition = partition_of(params.region);
    if arn_partition != region_partition {
        return Err(EndpointError::PartitionMismatch {
            arn: target.to_string(),
            region: params.region.to_string(),
            region_partition: region_partition.name,
            arn_partition: arn_partition.name,
        });
    }
    Ok(arn_partition)
}

fn access_point_endpoint(
    ap: &AccessPointArn,
    params: &EndpointParams<'_>,
    custom: Option<&CustomEndpoint>,
    target: &BucketTarget,
) -> Result<Endpoint, EndpointError> {
    let variants = params.variants;
    if params.force_path_style {
        return Err(Refusal::PathStyleWithAccessPoint.into());
    }
    if variants.accelerate {
        return Err(Refusal::AccessPointAccelerate.into());
    }
    let partition = check_same_partition(&ap.region, params, target)?;
    if variants.fips && !partition.supports_fips {
        return Err(Refusal::FipsInPartition.into());
    }
    let label = format!("{}-{}", ap.name, ap.account);
    let (scheme, host, base_path) = match custom {
        Some(c) => (
            c.scheme.clone(),
            format!("{label}.{}", c.authority),
            c.path.clone(),
        ),
        None => {
            let fips = if variants.fips { "-fips" } else { "" };
            let dual = if variants.dual_stack {
                ".dualstack"
            } else {
                ""
            };
            let host = format!(
                "{label}.s3-accesspoint{fips}{dual}.{}.{}",
                ap.region, partition.dns_suffix
            );
            ("https".to_string(), host, String::new())
        }
    };
    Ok(Endpoint {
        scheme,
        host,
        base_path,
        path_style: false,
        signing_region: ap.region.clone(),
        signing_service: "s3",
    })
}

fn outposts_endpoint(
    op: &OutpostsAccessPointArn,
    params: &EndpointParams<'_>,
    custom: Option<&CustomEndpoint>,
    target: &BucketTarget,
) -> Result<Endpoint, EndpointError> {
    let variants = params.variants;
    if params.force_path_style {
        return Err(Refusal::PathStyleWithAccessPoint.into());
    }
    if variants.dual_stack {
        return Err(Refusal::OutpostsDualStack.into());
    }
    if variants.fips {
        return Err(Refusal::OutpostsFips.into());
    }
    if variants.accelerate {
        return Err(Refusal::OutpostsAccelerate.into());
    }
    let partition = check_same_partition(&op.region, params, target)?;
    let label = format!("{}-{}.{}", op.name, op.account, op.outpost_id);
    // The rules' template for a custom endpoint is `https://LABEL.AUTHORITY`: its scheme
    // and path are not used.
    let host = match custom {
        Some(c) => format!("{label}.{}", c.authority),
        None => format!("{label}.s3-outposts.{}.{}", op.region, partition.dns_suffix),
    };
    Ok(Endpoint {
        scheme: "https".to_string(),
        host,
        base_path: String::new(),
        path_style: false,
        signing_region: op.region.clone(),
        signing_service: "s3-outposts",
    })
}

#[cfg(test)]
mod tests;
