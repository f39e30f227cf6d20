//! Which AWS partition a region belongs to, and the DNS rules the endpoint rules test names
//! against (`isValidHostLabel`, `aws.isVirtualHostableS3Bucket` in the AWS SDKs' rule set).
//!
//! Only the three partitions s3rolefs is built for are known: `aws`, `aws-cn` and
//! `aws-us-gov`. As in the SDKs, a region that matches no partition's pattern falls into
//! `aws`: a new commercial region works the day it opens.

use std::net::IpAddr;

/// An AWS partition: a separate set of regions under its own DNS suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// `aws`, `aws-cn`, `aws-us-gov`, as ARNs and error messages name it.
    pub name: &'static str,
    /// What every endpoint host of the partition ends with.
    pub dns_suffix: &'static str,
    /// Whether the partition has FIPS endpoints (`s3-fips.…`). The China regions have none.
    pub supports_fips: bool,
    /// Whether S3 Transfer Acceleration exists there (not in the China regions).
    pub supports_accelerate: bool,
}

const AWS: Partition = Partition {
    name: "aws",
    dns_suffix: "amazonaws.com",
    supports_fips: true,
    supports_accelerate: true,
};

const AWS_CN: Partition = Partition {
    name: "aws-cn",
    dns_suffix: "amazonaws.com.cn",
    supports_fips: false,
    supports_accelerate: false,
};

const AWS_US_GOV: Partition = Partition {
    name: "aws-us-gov",
    dns_suffix: "amazonaws.com",
    supports_fips: true,
    supports_accelerate: true,
};

/// The partition of `region`: `cn-*` is China, `us-gov-*` GovCloud, anything else `aws`.
pub fn partition_of(region: &str) -> Partition {
    if region.starts_with("cn-") {
        AWS_CN
    } else if region.starts_with("us-gov-") {
        AWS_US_GOV
    } else {
        AWS
    }
}

/// One DNS label (`allow_dots`: a dotted run of them): 1 to 63 letters, digits and hyphens,
/// not starting with a hyphen. The rules check regions, account ids and access point names
/// with it before putting them in a host name.
pub fn is_valid_host_label(text: &str, allow_dots: bool) -> bool {
    if allow_dots {
        return text
            .split('.')
            .all(|label| is_valid_host_label(label, false));
    }
    (1..=63).contains(&text.len())
        && !text.starts_with('-')
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Whether `bucket` can be the first label(s) of a host name: 3 to 63 lowercase letters,
/// digits and hyphens (`allow_dots`: dots too), starting and ending with a letter or
/// digit, not an IP address. Dots are allowed only over plain HTTP: a dotted name would not
/// match the endpoint's wildcard TLS certificate.
pub fn is_virtual_hostable(bucket: &str, allow_dots: bool) -> bool {
    let len_ok = (3..=63).contains(&bucket.len());
    let chars_ok = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ends_ok = !bucket.starts_with(['-', '.']) && !bucket.ends_with(['-', '.']);
    let dots_ok = !bucket.contains('.') || (allow_dots && !bucket.contains(".."));
    len_ok && chars_ok && ends_ok && dots_ok && bucket.parse::<IpAddr>().is_err()
}

/// An IP address or `localhost` (with or without port brackets): servers that have no
/// per-bucket host names, so the bucket goes in the path.
pub fn is_ip_or_localhost(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok()
        || bare.eq_ignore_ascii_case("localhost")
        || bare.to_ascii_lowercase().ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// China and GovCloud regions have their own partitions; unknown ones are `aws`'s.
    #[test]
    fn regions_map_to_their_partition() {
        assert_eq!(
            partition_of("cn-northwest-1").dns_suffix,
            "amazonaws.com.cn"
        );
        assert_eq!(partition_of("us-gov-east-1").name, "aws-us-gov");
        assert_eq!(partition_of("us-east-1").name, "aws");
        assert_eq!(partition_of("xx-future-9").name, "aws");
    }

    /// Host labels refuse what a host name cannot hold.
    #[test]
    fn host_labels() {
        assert!(is_valid_host_label("us-west-2", false));
        assert!(!is_valid_host_label("us-west -2", false));
        assert!(!is_valid_host_label("-a", false));
        assert!(!is_valid_host_label("a.b", false));
        assert!(is_valid_host_label("a.b", true));
        assert!(!is_valid_host_label("", false));
    }
}
