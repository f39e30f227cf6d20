//! Access point ARNs, parsed as the AWS SDKs' S3 endpoint rules parse them
//! (`aws.parseArn`, then the S3 checks on its resource), and the split of a mount source
//! `ARN[:PREFIX]`.
//!
//! An ARN is `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`; the resource's components
//! are separated by `/` or `:` alike (`accesspoint/NAME` and `accesspoint:NAME` are the
//! same access point). Two kinds are mounted: S3 access points
//! (`arn:aws:s3:REGION:ACCOUNT:accesspoint/NAME`) and S3 on Outposts access points
//! (`arn:aws:s3-outposts:REGION:ACCOUNT:outpost/OUTPOST_ID/accesspoint/NAME`). Object Lambda
//! access points and Multi-Region Access Points are refused with the reason.

use std::fmt;

use super::error::EndpointError;
use super::partition::is_valid_host_label;

/// An S3 access point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessPointArn {
    /// As the ARN says; the endpoint's partition is the region's (as in the SDKs).
    pub partition: String,
    pub region: String,
    pub account: String,
    pub name: String,
}

impl fmt::Display for AccessPointArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:s3:{}:{}:accesspoint/{}",
            self.partition, self.region, self.account, self.name
        )
    }
}

/// An access point of S3 on Outposts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutpostsAccessPointArn {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub outpost_id: String,
    pub name: String,
}

impl fmt::Display for OutpostsAccessPointArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:s3-outposts:{}:{}:outpost/{}/accesspoint/{}",
            self.partition, self.region, self.account, self.outpost_id, self.name
        )
    }
}

/// A parsed ARN that s3rolefs can mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arn {
    AccessPoint(AccessPointArn),
    Outposts(OutpostsAccessPointArn),
}

/// Parses an access point ARN, refusing everything else with the SDKs' reason.
pub fn parse(text: &str) -> Result<Arn, EndpointError> {
    let invalid = |reason: String| EndpointError::InvalidArn {
        arn: text.to_string(),
        reason,
    };
    let fields: Vec<&str> = text.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = fields[..] else {
        return Err(invalid(
            "it does not have the six `:`-separated fields of an ARN".into(),
        ));
    };
    if prefix != "arn" || partition.is_empty() || service.is_empty() || resource.is_empty() {
        return Err(invalid("it is not a valid ARN".into()));
    }
    let parts: Vec<&str> = resource.split([':', '/']).collect();
    let kind = parts[0];
    if kind.is_empty() {
        return Err(invalid("no ARN type specified".into()));
    }
    let check_region = || {
        if is_valid_host_label(region, true) {
            Ok(())
        } else {
            Err(invalid(format!(
                "the region {region:?} is not a valid DNS name"
            )))
        }
    };
    let check_account = || {
        if account.is_empty() {
            Err(invalid("the account id is missing".into()))
        } else if is_valid_host_label(account, false) {
            Ok(())
        } else {
            Err(invalid(format!(
                "the account id may only contain a-z, A-Z, 0-9 and `-`, found {account:?}"
            )))
        }
    };
    let check_name = |name: &str| {
        if is_valid_host_label(name, false) {
            Ok(())
        } else {
            Err(invalid(format!(
                "the access point name may only contain a-z, A-Z, 0-9 and `-`, found {name:?}"
            )))
        }
    };
    match service {
        "s3-object-lambda" => Err(EndpointError::UnsupportedArn {
            arn: text.to_string(),
            kind: "an S3 Object Lambda access point",
            why: "its objects are produced by a Lambda function on each GET and cannot be written; mount the supporting access point instead",
        }),
        "s3-outposts" => {
            let outpost_id = parts.get(1).copied().unwrap_or_default();
            if outpost_id.is_empty() {
                return Err(invalid("the Outpost id is missing".into()));
            }
            if !is_valid_host_label(outpost_id, false) {
                return Err(invalid(format!(
                    "the Outpost id may only contain a-z, A-Z, 0-9 and `-`, found {outpost_id:?}"
                )));
            }
            if parts.len() > 4 {
                return Err(invalid(
                    "an Outposts access point ARN has no sub-resources (to mount a prefix, write ARN:PREFIX)".into(),
                ));
            }
            check_region()?;
            check_account()?;
            let (Some(&outpost_kind), Some(&name)) = (parts.get(2), parts.get(3)) else {
                return Err(invalid(
                    "expected the 4-component resource outpost/OUTPOST_ID/accesspoint/NAME".into(),
                ));
            };
            if outpost_kind != "accesspoint" {
                return Err(invalid(format!(
                    "expected an Outposts resource of type `accesspoint`, found {outpost_kind:?}"
                )));
            }
            check_name(name)?;
            Ok(Arn::Outposts(OutpostsAccessPointArn {
                partition: partition.to_string(),
                region: region.to_string(),
                account: account.to_string(),
                outpost_id: outpost_id.to_string(),
                name: name.to_string(),
            }))
        }
        _ if kind == "accesspoint" => {
            let name = parts.get(1).copied().unwrap_or_default();
            if name.is_empty() {
                return Err(invalid(
                    "expected a resource of the format `accesspoint/NAME` but no name was provided"
                        .into(),
                ));
            }
            if region.is_empty() {
                return Err(EndpointError::UnsupportedArn {
                    arn: text.to_string(),
                    kind: "a Multi-Region Access Point",
                    why: "its requests must be signed with SigV4A, which s3rolefs does not implement; mount one of its regional buckets or access points",
                });
            }
            if parts.len() > 2 {
                return Err(invalid(
                    "an access point ARN has a single resource component after `accesspoint` (to mount a prefix, write ARN:PREFIX)".into(),
                ));
            }
            if service != "s3" {
                return Err(invalid(format!(
                    "the ARN is not for the S3 service, found {service:?}"
                )));
            }
            check_region()?;
            check_account()?;
            check_name(name)?;
            Ok(Arn::AccessPoint(AccessPointArn {
                partition: partition.to_string(),
                region: region.to_string(),
                account: account.to_string(),
                name: name.to_string(),
            }))
        }
        "s3" if region.is_empty() && account.is_empty() => Err(invalid(
            "this is a bucket ARN: give the bucket's name instead".into(),
        )),
        _ => Err(invalid(format!(
            "unrecognized format (service {service:?}, type {kind:?})"
        ))),
    }
}

/// Splits a mount source that starts with `arn:` into the ARN and the prefix after it.
///
/// An access point name can hold neither `:` nor `/`, so the ARN ends at the first `:`
/// after its name: `arn:aws:s3:us-west-2:123456789012:accesspoint/ap:logs/2026/` mounts
/// `logs/2026/` of access point `ap`. The name is the resource's 2nd component (4th on
/// Outposts), whichever of `/` and `:` separates them. Anything else after the name (a
/// `/`) stays in the ARN, for [`parse`] to refuse. This is where the form differs from
/// the SDKs, which refuse `accesspoint:NAME:MORE` as an ARN: a mount source is never
/// given to them.
pub fn split_source(source: &str) -> (&str, Option<&str>) {
    let mut colons = source.match_indices(':').map(|(i, _)| i);
    let Some(resource_start) = colons.nth(4).map(|i| i + 1) else {
        return (source, None);
    };
    let service = source.split(':').nth(2).unwrap_or_default();
    let separators_before_name = if service == "s3-outposts" { 3 } else { 1 };
    let resource = &source[resource_start..];
    let mut name_start = 0;
    for _ in 0..separators_before_name {
        match resource[name_start..].find([':', '/']) {
            Some(i) => name_start += i + 1,
            None => return (source, None),
        }
    }
    match resource[name_start..].find(':') {
        Some(i) => {
            let end = resource_start + name_start + i;
            (&source[..end], Some(&source[end + 1..]))
        }
        None => (source, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prefix starts at the first `:` after the access point's name, in either form.
    #[test]
    fn sources_split_after_the_name() {
        let ap = "arn:aws:s3:us-west-2:123456789012:accesspoint/myap";
        assert_eq!(split_source(ap), (ap, None));
        assert_eq!(
            split_source(&format!("{ap}:logs/2026/")),
            (ap, Some("logs/2026/"))
        );
        let colon = "arn:aws:s3:us-west-2:123456789012:accesspoint:myap";
        assert_eq!(split_source(&format!("{colon}:a:b")), (colon, Some("a:b")));
        let op = "arn:aws:s3-outposts:us-west-2:123456789012:outpost/op-01234567890123456/accesspoint/reports";
        assert_eq!(split_source(&format!("{op}:x/")), (op, Some("x/")));
        assert_eq!(split_source(op), (op, None));
        // A sub-resource stays in the ARN, which refuses it.
        let sub = "arn:aws:s3:us-west-2:123456789012:accesspoint/myap/object";
        assert_eq!(split_source(sub), (sub, None));
        assert!(parse(sub).is_err());
        assert_eq!(split_source("arn:aws:s3"), ("arn:aws:s3", None));
    }

    /// Both resource forms name the same access point; Display gives the `/` form.
    #[test]
    fn colon_and_slash_forms_are_one_access_point() {
        let slash = parse("arn:aws:s3:us-west-2:123456789012:accesspoint/myap").unwrap();
        let colon = parse("arn:aws:s3:us-west-2:123456789012:accesspoint:myap").unwrap();
        assert_eq!(slash, colon);
        let Arn::AccessPoint(ap) = slash else {
            panic!("not an access point")
        };
        assert_eq!(
            ap.to_string(),
            "arn:aws:s3:us-west-2:123456789012:accesspoint/myap"
        );
    }

    /// A bucket ARN is refused with the fix.
    #[test]
    fn bucket_arns_point_to_the_name() {
        let err = parse("arn:aws:s3:::my-bucket").unwrap_err().to_string();
        assert!(err.contains("give the bucket's name"), "{err}");
    }
}
