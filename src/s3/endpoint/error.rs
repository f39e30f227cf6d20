//! Why a bucket, access point or endpoint cannot be reached as configured: one line each,
//! naming what to change. The refusals are the ones the AWS SDKs' S3 endpoint rules make
//! (their wording is kept where it is clear), typed so tests can name the exact rule.

/// Option combinations S3 has no endpoint for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("--dual-stack cannot be combined with a custom endpoint (--endpoint-url, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL): give the dual-stack endpoint's URL itself, or drop one")]
    DualStackWithCustomEndpoint,
    #[error("--fips cannot be combined with a custom endpoint (--endpoint-url, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL): give the FIPS endpoint's URL itself, or drop one")]
    FipsWithCustomEndpoint,
    #[error("--transfer-acceleration cannot be combined with a custom endpoint (--endpoint-url, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL): drop one")]
    AccelerateWithCustomEndpoint,
    #[error(
        "the region's partition has no FIPS endpoints (the China regions have none): drop --fips"
    )]
    FipsInPartition,
    #[error(
        "S3 Transfer Acceleration cannot be used with FIPS: drop --transfer-acceleration or --fips"
    )]
    AccelerateWithFips,
    #[error("S3 Transfer Acceleration cannot be used in this region's partition (the China regions have none): drop --transfer-acceleration")]
    AccelerateInPartition,
    #[error("S3 Transfer Acceleration needs the bucket in the host name, so it cannot be used with --force-path-style: drop one")]
    AccelerateWithPathStyle,
    #[error("S3 Transfer Acceleration needs the bucket in the host name, and this bucket's name cannot be a host name (dots, or characters DNS does not allow): drop --transfer-acceleration")]
    AccelerateWithBucketName,
    #[error("an access point is always addressed by host name, so it cannot be used with --force-path-style: drop --force-path-style")]
    PathStyleWithAccessPoint,
    #[error("access points do not support S3 Transfer Acceleration: drop --transfer-acceleration")]
    AccessPointAccelerate,
    #[error("S3 on Outposts has no dual-stack endpoints: drop --dual-stack")]
    OutpostsDualStack,
    #[error("S3 on Outposts has no FIPS endpoints: drop --fips")]
    OutpostsFips,
    #[error(
        "S3 on Outposts does not support S3 Transfer Acceleration: drop --transfer-acceleration"
    )]
    OutpostsAccelerate,
    #[error("directory buckets (S3 Express One Zone) do not support S3 Transfer Acceleration: drop --transfer-acceleration")]
    DirectoryBucketAccelerate,
    #[error("a directory bucket (S3 Express One Zone) is always addressed by host name on AWS, so it cannot be used with --force-path-style: drop --force-path-style")]
    DirectoryBucketPathStyle,
}

/// An endpoint that cannot be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error("invalid region {region:?}: it is not a valid DNS name (e.g. eu-west-1)")]
    InvalidRegion { region: String },
    #[error("invalid ARN {arn:?}: {reason}; an access point ARN looks like arn:aws:s3:us-west-2:123456789012:accesspoint/NAME")]
    InvalidArn { arn: String, reason: String },
    /// An ARN S3 knows but s3rolefs does not mount.
    #[error("{arn:?} is {kind}, which s3rolefs cannot mount: {why}")]
    UnsupportedArn {
        arn: String,
        kind: &'static str,
        why: &'static str,
    },
    #[error("the region {region:?} is in partition {region_partition:?} but the ARN {arn:?} is in {arn_partition:?}: give a region of the ARN's partition, or none")]
    PartitionMismatch {
        arn: String,
        region: String,
        region_partition: &'static str,
        arn_partition: &'static str,
    },
    #[error("endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
}
