//! The endpoint rules, case by case, against the expectations AWS publishes.
//!
//! Each row of [`SDK_CASES`] is a case of the S3 endpoint rule set's own test suite
//! (`tests/functional/endpoint-rules/s3/endpoint-tests-1.json` in botocore, the same suite
//! every AWS SDK runs), named by its `documentation` string; the URL, signing name and
//! signing region are copied from its `expect`. Where it expects an error, the row names
//! the [`Refusal`] (or error kind) that stands for the same rule. Outposts rows take the
//! SigV4 auth scheme of the two the rules list (SigV4A first). The suite has no plain
//! GovCloud bucket cases; the `aws-us-gov` rows take their hosts from AWS's list of the
//! GovCloud S3 endpoints (`s3[-fips][.dualstack].us-gov-*.amazonaws.com`).

use super::*;

#[derive(Debug)]
enum Expect {
    /// The bucket's base URL, the signing name and the signing region.
    Url(&'static str, &'static str, &'static str),
    Refused(Refusal),
    InvalidArn,
    InvalidRegion,
    InvalidEndpoint,
    PartitionMismatch,
}

use Expect::*;

struct Case {
    doc: &'static str,
    bucket: &'static str,
    region: &'static str,
    endpoint: Option<&'static str>,
    /// Any of `path`, `dual`, `fips`, `accel`, comma-separated.
    flags: &'static str,
    expect: Expect,
}

const fn case(
    doc: &'static str,
    bucket: &'static str,
    region: &'static str,
    flags: &'static str,
    expect: Expect,
) -> Case {
    Case {
        doc,
        bucket,
        region,
        endpoint: None,
        flags,
        expect,
    }
}

const fn custom(
    doc: &'static str,
    bucket: &'static str,
    region: &'static str,
    endpoint: &'static str,
    flags: &'static str,
    expect: Expect,
) -> Case {
    Case {
        doc,
        bucket,
        region,
        endpoint: Some(endpoint),
        flags,
        expect,
    }
}

const AP: &str = "arn:aws:s3:us-west-2:123456789012:accesspoint:myendpoint";
const AP_CN: &str = "arn:aws-cn:s3:cn-north-1:123456789012:accesspoint:myendpoint";
const OUTPOST: &str =
    "arn:aws:s3-outposts:us-west-2:123456789012:outpost/op-01234567890123456/accesspoint/reports";
const OUTPOST_EAST: &str =
    "arn:aws:s3-outposts:us-east-1:123456789012:outpost:op-01234567890123456:accesspoint:myaccesspoint";
const VPCE: &str = "https://control.vpce-1a2b3c4d-5e6f.s3.us-west-2.vpce.amazonaws.com";

#[rustfmt::skip]
const SDK_CASES: &[Case] = &[
    // Buckets, partition `aws`.
    case("vanilla virtual addressing@us-west-2", "bucket-name", "us-west-2", "",
        Url("https://bucket-name.s3.us-west-2.amazonaws.com", "s3", "us-west-2")),
    case("virtual addressing + dualstack@us-west-2", "bucket-name", "us-west-2", "dual",
        Url("https://bucket-name.s3.dualstack.us-west-2.amazonaws.com", "s3", "us-west-2")),
    case("virtual addressing + fips@us-west-2", "bucket-name", "us-west-2", "fips",
        Url("https://bucket-name.s3-fips.us-west-2.amazonaws.com", "s3", "us-west-2")),
    case("virtual addressing + dualstack + fips@us-west-2", "bucket-name", "us-west-2", "dual,fips",
        Url("https://bucket-name.s3-fips.dualstack.us-west-2.amazonaws.com", "s3", "us-west-2")),
    case("accelerate (dualstack=false)@us-west-2", "bucket-name", "us-west-2", "accel",
        Url("https://bucket-name.s3-accelerate.amazonaws.com", "s3", "us-west-2")),
    case("accelerate + dualstack@us-west-2", "bucket-name", "us-west-2", "accel,dual",
        Url("https://bucket-name.s3-accelerate.dualstack.amazonaws.com", "s3", "us-west-2")),
    case("accelerate + fips = error@us-west-2", "bucket-name", "us-west-2", "accel,fips",
        Refused(Refusal::AccelerateWithFips)),
    case("path style + accelerate = error@us-west-2", "bucket-name", "us-west-2", "path,accel",
        Refused(Refusal::AccelerateWithPathStyle)),
    case("path style can't be used with accelerate", "bucket!", "us-east-2", "accel",
        Refused(Refusal::AccelerateWithBucketName)),
    case("vanilla path style@us-west-2", "bucket-name", "us-west-2", "path",
        Url("https://s3.us-west-2.amazonaws.com/bucket-name", "s3", "us-west-2")),
    case("path style + dualstack@us-west-2", "bucket-name", "us-west-2", "path,dual",
        Url("https://s3.dualstack.us-west-2.amazonaws.com/bucket-name", "s3", "us-west-2")),
    case("path style + fips@af-south-1", "bucket-name", "af-south-1", "path,fips",
        Url("https://s3-fips.af-south-1.amazonaws.com/bucket-name", "s3", "af-south-1")),
    case("FIPS + dualstack + non-DNS endpoint", "bucket!", "us-east-1", "path,dual,fips",
        Url("https://s3-fips.dualstack.us-east-1.amazonaws.com/bucket%21", "s3", "us-east-1")),
    case("subdomains are not allowed in virtual buckets", "bucket.name", "us-east-1", "",
        Url("https://s3.us-east-1.amazonaws.com/bucket.name", "s3", "us-east-1")),
    case("bucket names with 3 characters are allowed in virtual buckets", "aaa", "us-east-1", "",
        Url("https://aaa.s3.us-east-1.amazonaws.com", "s3", "us-east-1")),
    case("bucket names with uppercase characters are not allowed in virtual host", "BucketName",
        "us-east-1", "", Url("https://s3.us-east-1.amazonaws.com/BucketName", "s3", "us-east-1")),
    case("URI encode bucket names in the path", "bucket name", "us-west-2", "",
        Url("https://s3.us-west-2.amazonaws.com/bucket%20name", "s3", "us-west-2")),
    case("implicit path style bucket + dualstack", "99_ab", "us-west-2", "dual",
        Url("https://s3.dualstack.us-west-2.amazonaws.com/99_ab", "s3", "us-west-2")),
    case("region is not a valid DNS-suffix", "bucket-name", "a b", "", InvalidRegion),
    // Buckets, partition `aws-cn`.
    case("vanilla virtual addressing@cn-north-1", "bucket-name", "cn-north-1", "",
        Url("https://bucket-name.s3.cn-north-1.amazonaws.com.cn", "s3", "cn-north-1")),
    case("virtual addressing + dualstack@cn-north-1", "bucket-name", "cn-north-1", "dual",
        Url("https://bucket-name.s3.dualstack.cn-north-1.amazonaws.com.cn", "s3", "cn-north-1")),
    case("vanilla path style@cn-north-1", "bucket-name", "cn-north-1", "path",
        Url("https://s3.cn-north-1.amazonaws.com.cn/bucket-name", "s3", "cn-north-1")),
    case("path style + dualstack@cn-north-1", "bucket-name", "cn-north-1", "path,dual",
        Url("https://s3.dualstack.cn-north-1.amazonaws.com.cn/bucket-name", "s3", "cn-north-1")),
    case("virtual addressing + fips@cn-north-1", "bucket-name", "cn-north-1", "fips",
        Refused(Refusal::FipsInPartition)),
    case("path style + fips@cn-north-1", "bucket-name", "cn-north-1", "path,fips",
        Refused(Refusal::FipsInPartition)),
    case("accelerate (dualstack=false)@cn-north-1", "bucket-name", "cn-north-1", "accel",
        Refused(Refusal::AccelerateInPartition)),
    case("path style + accelerate = error@cn-north-1", "bucket-name", "cn-north-1", "path,accel",
        Refused(Refusal::AccelerateWithPathStyle)),
    // Buckets, partition `aws-us-gov`.
    case("fips@us-gov-west-2, bucket is not S3-dns-compatible (subdomains)", "bucket.with.dots",
        "us-gov-west-1", "fips",
        Url("https://s3-fips.us-gov-west-1.amazonaws.com/bucket.with.dots", "s3", "us-gov-west-1")),
    case("GovCloud endpoint list: standard", "bucket-name", "us-gov-east-1", "",
        Url("https://bucket-name.s3.us-gov-east-1.amazonaws.com", "s3", "us-gov-east-1")),
    case("GovCloud endpoint list: FIPS", "bucket-name", "us-gov-west-1", "fips",
        Url("https://bucket-name.s3-fips.us-gov-west-1.amazonaws.com", "s3", "us-gov-west-1")),
    case("GovCloud endpoint list: dual-stack", "bucket-name", "us-gov-east-1", "dual",
        Url("https://bucket-name.s3.dualstack.us-gov-east-1.amazonaws.com", "s3", "us-gov-east-1")),
    case("GovCloud endpoint list: FIPS dual-stack", "bucket-name", "us-gov-west-1", "dual,fips",
        Url("https://bucket-name.s3-fips.dualstack.us-gov-west-1.amazonaws.com", "s3", "us-gov-west-1")),
    // Directory buckets (S3 Express One Zone): the rules' zonal templates
    // `{Bucket}.s3express[-fips]-{zone}[.dualstack].{Region}.{dnsSuffix}`, signed `s3express`.
    case("S3 Express data plane@us-west-2", "mybucket--usw2-az1--x-s3", "us-west-2", "",
        Url("https://mybucket--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com", "s3express", "us-west-2")),
    case("S3 Express data plane, short zone name@us-east-1", "mybucket--abcd-ab1--x-s3", "us-east-1", "",
        Url("https://mybucket--abcd-ab1--x-s3.s3express-abcd-ab1.us-east-1.amazonaws.com", "s3express", "us-east-1")),
    case("S3 Express data plane, local zone@us-west-2", "mybucket--usw2-lax1-az1--x-s3", "us-west-2", "",
        Url("https://mybucket--usw2-lax1-az1--x-s3.s3express-usw2-lax1-az1.us-west-2.amazonaws.com", "s3express", "us-west-2")),
    case("S3 Express data plane + fips@us-west-2", "mybucket--usw2-az1--x-s3", "us-west-2", "fips",
        Url("https://mybucket--usw2-az1--x-s3.s3express-fips-usw2-az1.us-west-2.amazonaws.com", "s3express", "us-west-2")),
    case("S3 Express data plane + dualstack@us-west-2", "mybucket--usw2-az1--x-s3", "us-west-2", "dual",
        Url("https://mybucket--usw2-az1--x-s3.s3express-usw2-az1.dualstack.us-west-2.amazonaws.com", "s3express", "us-west-2")),
    case("S3 Express data plane + dualstack + fips@us-west-2", "mybucket--usw2-az1--x-s3", "us-west-2", "dual,fips",
        Url("https://mybucket--usw2-az1--x-s3.s3express-fips-usw2-az1.dualstack.us-west-2.amazonaws.com", "s3express", "us-west-2")),
    case("S3 Express data plane@cn-north-1 (partition suffix)", "mybucket--cnn1-az1--x-s3", "cn-north-1", "",
        Url("https://mybucket--cnn1-az1--x-s3.s3express-cnn1-az1.cn-north-1.amazonaws.com.cn", "s3express", "cn-north-1")),
    case("S3 Express + fips@cn-north-1 = error", "mybucket--cnn1-az1--x-s3", "cn-north-1", "fips",
        Refused(Refusal::FipsInPartition)),
    case("S3 Express does not support S3 Accelerate", "mybucket--usw2-az1--x-s3", "us-west-2", "accel",
        Refused(Refusal::DirectoryBucketAccelerate)),
    case("S3 Express on AWS is virtual-hosted only", "mybucket--usw2-az1--x-s3", "us-west-2", "path",
        Refused(Refusal::DirectoryBucketPathStyle)),
    custom("S3 Express data plane, custom endpoint", "mybucket--usw2-az1--x-s3", "us-west-2",
        "https://custom.com", "",
        Url("https://mybucket--usw2-az1--x-s3.custom.com", "s3express", "us-west-2")),
    custom("S3 Express data plane, custom endpoint with an IP (path-style)", "mybucket--usw2-az1--x-s3",
        "us-west-2", "http://127.0.0.1:9000", "",
        Url("http://127.0.0.1:9000/mybucket--usw2-az1--x-s3", "s3express", "us-west-2")),
    custom("S3 Express + dualstack + custom endpoint = error", "mybucket--usw2-az1--x-s3", "us-west-2",
        "https://custom.com", "dual", Refused(Refusal::DualStackWithCustomEndpoint)),
    // Access points for directory buckets (`--xa-s3`): addressed, signed and refused as
    // the directory buckets they serve (the rules test the two suffixes alike).
    case("S3 Express access point@us-west-2", "myaccesspoint--usw2-az1--xa-s3", "us-west-2", "",
        Url("https://myaccesspoint--usw2-az1--xa-s3.s3express-usw2-az1.us-west-2.amazonaws.com", "s3express", "us-west-2")),
    case("S3 Express access point, local zone@us-west-2", "myaccesspoint--usw2-lax1-az1--xa-s3", "us-west-2", "",
        Url("https://myaccesspoint--usw2-lax1-az1--xa-s3.s3express-usw2-lax1-az1.us-west-2.amazonaws.com", "s3express", "us-west-2")),
    case("S3 Express access point + fips@us-west-2", "myaccesspoint--usw2-az1--xa-s3", "us-west-2", "fips",
        Url("https://myaccesspoint--usw2-az1--xa-s3.s3express-fips-usw2-az1.us-west-2.amazonaws.com", "s3express", "us-west-2")),
    case("S3 Express access point + dualstack + fips@us-west-2", "myaccesspoint--usw2-az1--xa-s3", "us-west-2", "dual,fips",
        Url("https://myaccesspoint--usw2-az1--xa-s3.s3express-fips-usw2-az1.dualstack.us-west-2.amazonaws.com", "s3express", "us-west-2")),
    case("S3 Express access point@cn-north-1 (partition suffix)", "myaccesspoint--cnn1-az1--xa-s3", "cn-north-1", "",
        Url("https://myaccesspoint--cnn1-az1--xa-s3.s3express-cnn1-az1.cn-north-1.amazonaws.com.cn", "s3express", "cn-north-1")),
    case("S3 Express access point + accelerate = error", "myaccesspoint--usw2-az1--xa-s3", "us-west-2", "accel",
        Refused(Refusal::DirectoryBucketAccelerate)),
    case("S3 Express access point on AWS is virtual-hosted only", "myaccesspoint--usw2-az1--xa-s3", "us-west-2", "path",
        Refused(Refusal::DirectoryBucketPathStyle)),
    custom("S3 Express access point, custom endpoint", "myaccesspoint--usw2-az1--xa-s3", "us-west-2",
        "https://custom.com", "",
        Url("https://myaccesspoint--usw2-az1--xa-s3.custom.com", "s3express", "us-west-2")),
    custom("S3 Express access point, custom endpoint with an IP (path-style)", "myaccesspoint--usw2-az1--xa-s3",
        "us-west-2", "http://127.0.0.1:9000", "",
        Url("http://127.0.0.1:9000/myaccesspoint--usw2-az1--xa-s3", "s3express", "us-west-2")),
    // Custom endpoints.
    custom("virtual addressing + private link@us-west-2", "bucket-name", "us-west-2",
        "http://control.vpce-1a2b3c4d-5e6f.s3.us-west-2.vpce.amazonaws.com", "",
        Url("http://bucket-name.control.vpce-1a2b3c4d-5e6f.s3.us-west-2.vpce.amazonaws.com", "s3", "us-west-2")),
    custom("path style + private link@us-west-2", "bucket-name", "us-west-2", VPCE, "path",
        Url("https://control.vpce-1a2b3c4d-5e6f.s3.us-west-2.vpce.amazonaws.com/bucket-name", "s3", "us-west-2")),
    custom("virtual addressing + private link@cn-north-1", "bucket-name", "cn-north-1", VPCE, "",
        Url("https://bucket-name.control.vpce-1a2b3c4d-5e6f.s3.us-west-2.vpce.amazonaws.com", "s3", "cn-north-1")),
    custom("scheme is respected (virtual addressing)", "bucketname", "af-south-1",
        "http://control.vpce-1a2b3c4d-5e6f.s3.us-west-2.vpce.amazonaws.com/foo", "",
        Url("http://bucketname.control.vpce-1a2b3c4d-5e6f.s3.us-west-2.vpce.amazonaws.com/foo", "s3", "af-south-1")),
    custom("scheme is respected", "99_ab", "af-south-1",
        "http://control.vpce-1a2b3c4d-5e6f.s3.us-west-2.vpce.amazonaws.com", "",
        Url("http://control.vpce-1a2b3c4d-5e6f.s3.us-west-2.vpce.amazonaws.com/99_ab", "s3", "af-south-1")),
    custom("using an IPv4 address forces path style", "bucketname", "af-south-1",
        "https://123.123.0.1", "", Url("https://123.123.0.1/bucketname", "s3", "af-south-1")),
    custom("subdomains are allowed in virtual buckets on http endpoints", "bucket.name",
        "us-east-1", "http://example.com", "", Url("http://bucket.name.example.com", "s3", "us-east-1")),
    custom("SDK::Host + FIPS@us-west-2", "bucket-name", "us-west-2", VPCE, "fips",
        Refused(Refusal::FipsWithCustomEndpoint)),
    custom("SDK::Host + DualStack@us-west-2", "bucket-name", "us-west-2", VPCE, "dual",
        Refused(Refusal::DualStackWithCustomEndpoint)),
    custom("SDK::HOST + accelerate@us-west-2", "bucket-name", "us-west-2", VPCE, "accel",
        Refused(Refusal::AccelerateWithCustomEndpoint)),
    custom("FIPS + dualstack + custom endpoint", "bucket-name", "us-west-2",
        "http://beta.example.com:1234/path", "dual,fips", Refused(Refusal::DualStackWithCustomEndpoint)),
    custom("Dual-stack endpoint + SDK::Host is error", "bucketname", "us-west-2", "https://abc.com",
        "path,dual", Refused(Refusal::DualStackWithCustomEndpoint)),
    custom("invalid Endpoint override", "bucketname", "af-south-1", "abcde://nota#url", "",
        InvalidEndpoint),
    custom("invalid region", "bucket", "us-east-2!", "http://foo.com", "", InvalidRegion),
    // Access points.
    case("vanilla access point arn@us-west-2", AP, "us-west-2", "",
        Url("https://myendpoint-123456789012.s3-accesspoint.us-west-2.amazonaws.com", "s3", "us-west-2")),
    case("access point arn + FIPS@us-west-2", AP, "us-west-2", "fips",
        Url("https://myendpoint-123456789012.s3-accesspoint-fips.us-west-2.amazonaws.com", "s3", "us-west-2")),
    case("access point arn + FIPS + DualStack@us-west-2", AP, "us-west-2", "dual,fips",
        Url("https://myendpoint-123456789012.s3-accesspoint-fips.dualstack.us-west-2.amazonaws.com", "s3", "us-west-2")),
    case("Access point ARN with Dualstack", AP, "us-east-1", "dual",
        Url("https://myendpoint-123456789012.s3-accesspoint.dualstack.us-west-2.amazonaws.com", "s3", "us-west-2")),
    case("vanilla access point arn with region mismatch and UseArnRegion unset", AP, "us-east-1", "",
        Url("https://myendpoint-123456789012.s3-accesspoint.us-west-2.amazonaws.com", "s3", "us-west-2")),
    case("access point arn + accelerate = error@us-west-2", AP, "us-west-2", "accel",
        Refused(Refusal::AccessPointAccelerate)),
    case("path style + arn is error@us-west-2 (an access point ARN for the suite's outposts one)", AP, "us-west-2", "path",
        Refused(Refusal::PathStyleWithAccessPoint)),
    case("vanilla access point arn@cn-north-1", AP_CN, "cn-north-1", "",
        Url("https://myendpoint-123456789012.s3-accesspoint.cn-north-1.amazonaws.com.cn", "s3", "cn-north-1")),
    case("access point arn + FIPS@cn-north-1", AP_CN, "cn-north-1", "fips",
        Refused(Refusal::FipsInPartition)),
    case("access point arn + accelerate = error@cn-north-1", AP_CN, "cn-north-1", "accel",
        Refused(Refusal::AccessPointAccelerate)),
    case("empty arn type (partition mismatch)",
        "arn:aws:s3:cn-north-1:123456789012:accesspoint:my-endpoint", "us-east-2", "",
        PartitionMismatch),
    custom("SDK::Host + access point ARN@us-west-2", AP, "us-west-2", "https://beta.example.com", "",
        Url("https://myendpoint-123456789012.beta.example.com", "s3", "us-west-2")),
    custom("Endpoint override, accesspoint with http, path, query, and port", AP, "us-west-2",
        "http://beta.example.com:1234/path", "",
        Url("http://myendpoint-123456789012.beta.example.com:1234/path", "s3", "us-west-2")),
    custom("SDK::Host + access point + Dualstack is an error", AP_CN, "cn-north-1",
        "https://beta.example.com", "dual", Refused(Refusal::DualStackWithCustomEndpoint)),
    case("Invalid access point ARN: Not S3",
        "arn:aws:not-s3:us-west-2:123456789012:accesspoint:myendpoint", "us-east-1", "", InvalidArn),
    case("Invalid access point ARN: invalid resource",
        "arn:aws:s3:us-west-2:123456789012:accesspoint:myendpoint:more-data", "us-east-1", "",
        InvalidArn),
    case("Invalid access point ARN: invalid no ap name",
        "arn:aws:s3:us-west-2:123456789012:accesspoint:", "us-east-1", "", InvalidArn),
    case("Invalid access point ARN: AccountId is invalid",
        "arn:aws:s3:us-west-2:123456_789012:accesspoint:apname", "us-east-1", "", InvalidArn),
    case("Invalid access point ARN: access point name is invalid",
        "arn:aws:s3:us-west-2:123456789012:accesspoint:ap_name", "us-east-1", "", InvalidArn),
    case("Bucket region is invalid",
        "arn:aws:s3:us-west -2:123456789012:accesspoint:myendpoint", "us-east-1", "", InvalidArn),
    case("missing arn type", "arn:aws:s3:us-west-2:123456789012:", "us-east-1", "", InvalidArn),
    case("object lambda with invalid arn - bad service and someresource",
        "arn:aws:sqs:us-west-2:123456789012:someresource", "us-west-2", "", InvalidArn),
    // Outposts access points.
    case("S3 outposts vanilla test", OUTPOST, "us-west-2", "",
        Url("https://reports-123456789012.op-01234567890123456.s3-outposts.us-west-2.amazonaws.com", "s3-outposts", "us-west-2")),
    custom("S3 outposts custom endpoint", OUTPOST, "us-west-2", "https://example.amazonaws.com", "",
        Url("https://reports-123456789012.op-01234567890123456.example.amazonaws.com", "s3-outposts", "us-west-2")),
    case("outposts arn with region mismatch and UseArnRegion unset", OUTPOST_EAST, "us-west-2", "",
        Url("https://myaccesspoint-123456789012.op-01234567890123456.s3-outposts.us-east-1.amazonaws.com", "s3-outposts", "us-east-1")),
    case("outposts arn with partition mismatch and UseArnRegion=true",
        "arn:aws:s3-outposts:cn-north-1:123456789012:outpost:op-01234567890123456:accesspoint:myaccesspoint",
        "us-west-2", "", PartitionMismatch),
    case("S3 outposts does not support dualstack", OUTPOST, "us-east-1", "dual",
        Refused(Refusal::OutpostsDualStack)),
    case("S3 outposts does not support fips", OUTPOST, "us-east-1", "fips",
        Refused(Refusal::OutpostsFips)),
    case("S3 outposts does not support accelerate", OUTPOST, "us-east-1", "accel",
        Refused(Refusal::OutpostsAccelerate)),
    case("validates against subresource",
        "arn:aws:s3-outposts:us-west-2:123456789012:outpost:op-01234567890123456:accesspoint:mybucket:object:foo",
        "us-west-2", "", InvalidArn),
    case("validates against access point host label",
        "arn:aws:s3-outposts:us-west-2:123456789012:outpost:op-01234567890123456:accesspoint:invalid.bucket#",
        "us-west-2", "", InvalidArn),
    case("invalid ARN outpost",
        "arn:aws:s3-outposts:us-east-1:123456789012:outpost/op_01234567890123456/accesspoint/reports",
        "us-east-2", "", InvalidArn),
    case("invalid ARN (no access point name)",
        "arn:aws:s3-outposts:us-east-1:123456789012:outpost/op-01234567890123456/reports",
        "us-east-2", "", InvalidArn),
    case("invalid ARN (not 4 components)",
        "arn:aws:s3-outposts:us-east-1:123456789012:outpost/op-01234567890123456", "us-east-2", "",
        InvalidArn),
    case("invalid outpost type",
        "arn:aws:s3-outposts:us-east-1:123456789012:outpost/op-01234567890123456/not-accesspoint/reports",
        "us-east-2", "", InvalidArn),
    case("invalid outpost type (no outpost id)", "arn:aws:s3-outposts:us-east-1:12345789012:outpost",
        "us-east-2", "", InvalidArn),
];

fn variants(flags: &str) -> (bool, EndpointVariants) {
    let on = |name| flags.split(',').any(|f| f == name);
    (
        on("path"),
        EndpointVariants {
            dual_stack: on("dual"),
            fips: on("fips"),
            accelerate: on("accel"),
        },
    )
}

fn run(case: &Case) -> Result<Endpoint, EndpointError> {
    let target = BucketTarget::parse(case.bucket)?;
    let (force_path_style, variants) = variants(case.flags);
    resolve(&EndpointParams {
        target: &target,
        region: case.region,
        endpoint_url: case.endpoint,
        force_path_style,
        variants,
    })
}

/// Every case of AWS's S3 endpoint test suite that a mount can meet resolves as AWS says.
#[test]
fn endpoints_follow_the_aws_rules() {
    let mut failures = Vec::new();
    for case in SDK_CASES {
        let got = run(case);
        let ok = match (&case.expect, &got) {
            (Url(url, service, region), Ok(e)) => {
                e.url() == *url && e.signing_service == *service && e.signing_region == *region
            }
            (Refused(want), Err(EndpointError::Refused(got))) => want == got,
            (InvalidArn, Err(EndpointError::InvalidArn { .. }))
            | (InvalidRegion, Err(EndpointError::InvalidRegion { .. }))
            | (InvalidEndpoint, Err(EndpointError::InvalidEndpoint { .. }))
            | (PartitionMismatch, Err(EndpointError::PartitionMismatch { .. })) => true,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{}: expected {:?}, got {got:?}",
                case.doc, case.expect
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn resolve_one(
    bucket: &str,
    region: &str,
    endpoint: Option<&str>,
) -> Result<Endpoint, EndpointError> {
    resolve(&EndpointParams {
        target: &BucketTarget::parse(bucket)?,
        region,
        endpoint_url: endpoint,
        force_path_style: false,
        variants: EndpointVariants::default(),
    })
}

/// An access point alias is a bucket name to the rules: virtual-hosted on the regional
/// endpoint.
#[test]
fn access_point_alias_is_a_virtual_hosted_bucket() {
    let alias = "myap-hrzrlukc5m36ft7okagglf3gmwluquse1b-s3alias";
    let e = resolve_one(alias, "us-east-1", None).unwrap();
    assert_eq!(
        e.url(),
        format!("https://{alias}.s3.us-east-1.amazonaws.com")
    );
    assert!(!e.path_style);
}

/// Multi-Region Access Points (SigV4A) and Object Lambda access points are refused by
/// name.
#[test]
fn unsupported_arns_say_what_they_are() {
    for (arn, kind) in [
        (
            "arn:aws:s3::123456789012:accesspoint:mfzwi23gnjvgw.mrap",
            "Multi-Region",
        ),
        (
            "arn:aws:s3-object-lambda:us-east-1:123456789012:accesspoint/mybanner",
            "Object Lambda",
        ),
    ] {
        let err = resolve_one(arn, "us-east-1", None).unwrap_err();
        assert!(
            matches!(err, EndpointError::UnsupportedArn { .. }) && err.to_string().contains(kind),
            "{err}"
        );
    }
}

/// Local servers have no per-bucket host names: `localhost` is path-style like an IP.
#[test]
fn localhost_endpoints_are_path_style() {
    let e = resolve_one("bkt", "us-east-1", Some("http://localhost:9000/")).unwrap();
    assert_eq!(e.url(), "http://localhost:9000/bkt");
    let e = resolve_one("bkt", "us-east-1", Some("http://[::1]:9000")).unwrap();
    assert_eq!(e.url(), "http://[::1]:9000/bkt");
}

/// A copy source names the bucket, or the access point ARN with `/object/` (encoded).
#[test]
fn copy_sources_through_access_points() {
    let bucket = BucketTarget::parse("b").unwrap();
    assert_eq!(bucket.copy_source("a b/c"), "/b/a%20b/c");
    let ap = BucketTarget::parse(AP).unwrap();
    assert_eq!(
        ap.copy_source("a b/c"),
        "arn%3Aaws%3As3%3Aus-west-2%3A123456789012%3Aaccesspoint/myendpoint/object/a%20b/c"
    );
}
