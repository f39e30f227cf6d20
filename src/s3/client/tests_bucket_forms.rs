//! What the bucket forms and bucket-wide settings put on the wire: requester pays and the
//! expected bucket owner on every request (copies naming their source's owner too),
//! DSSE-KMS on writes, and the signing scope of access points and Outposts.

use bytes::Bytes;
use reqwest::Method;

use super::tests::{answer, config, serve, session_credentials, OBJECT_HEADERS};
use super::transport::Request;
use super::{ClientConfig, S3Client};
use crate::s3::settings::{Encryption, ObjectSettings};
use crate::s3::{BucketAccess, ObjectClient, PutObjectParams};

fn paying_config(endpoint: &str) -> ClientConfig {
    ClientConfig {
        access: BucketAccess {
            requester_pays: true,
            expected_owner: Some("111122223333".into()),
        },
        ..config(endpoint, Some(session_credentials()))
    }
}

/// Every request, the bucket check included, carries `x-amz-request-payer` and
/// `x-amz-expected-bucket-owner`, signed.
#[tokio::test]
async fn bucket_access_headers_go_on_every_request() {
    let server = serve(vec![
        answer("200 OK", &[], ""),
        answer("200 OK", &OBJECT_HEADERS, ""),
        answer("204 No Content", &[], ""),
    ])
    .await;
    let client = S3Client::connect(paying_config(&server.endpoint))
        .await
        .unwrap();
    client
        .put_object(PutObjectParams {
            key: "k".into(),
            body: Bytes::from_static(b"x"),
            metadata: Default::default(),
        })
        .await
        .unwrap();
    client.delete_object("k").await.unwrap();
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(
            request.header("x-amz-request-payer"),
            Some("requester"),
            "{}",
            request.line
        );
        assert_eq!(
            request.header("x-amz-expected-bucket-owner"),
            Some("111122223333"),
            "{}",
            request.line
        );
        let auth = request.header("authorization").unwrap_or_default();
        assert!(
            auth.contains("x-amz-expected-bucket-owner") && auth.contains("x-amz-request-payer"),
            "not signed: {auth}"
        );
        assert_eq!(request.header("x-amz-source-expected-bucket-owner"), None);
    }
}

/// A copy names the owner of its source as well (CopyObject here; UploadPartCopy takes
/// the same headers).
#[tokio::test]
async fn copies_name_the_source_bucket_owner() {
    let copied = "<CopyObjectResult><ETag>\"e2\"</ETag></CopyObjectResult>";
    let server = serve(vec![
        answer("200 OK", &[], ""),
        answer("200 OK", &[], copied),
    ])
    .await;
    let client = S3Client::connect(paying_config(&server.endpoint))
        .await
        .unwrap();
    client.copy_object("a", "b", None).await.unwrap();
    let seen = server.seen.lock().unwrap().clone();
    let copy = &seen[1];
    assert_eq!(
        copy.header("x-amz-source-expected-bucket-owner"),
        Some("111122223333")
    );
    assert_eq!(
        copy.header("x-amz-expected-bucket-owner"),
        Some("111122223333")
    );
}

/// `--sse aws:kms:dsse` names DSSE-KMS and the key on a write.
#[tokio::test]
async fn dsse_goes_on_writes() {
    let server = serve(vec![
        answer("200 OK", &[], ""),
        answer("200 OK", &OBJECT_HEADERS, ""),
    ])
    .await;
    let client = S3Client::connect(config(&server.endpoint, None))
        .await
        .unwrap()
        .with_object_settings(ObjectSettings {
            encryption: Encryption::KmsDsse {
                key_id: Some("alias/k".into()),
            },
            ..Default::default()
        });
    client
        .put_object(PutObjectParams {
            key: "k".into(),
            body: Bytes::from_static(b"x"),
            metadata: Default::default(),
        })
        .await
        .unwrap();
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(
        seen[1].header("x-amz-server-side-encryption"),
        Some("aws:kms:dsse")
    );
    assert_eq!(
        seen[1].header("x-amz-server-side-encryption-aws-kms-key-id"),
        Some("alias/k")
    );
    assert_eq!(seen[0].header("x-amz-server-side-encryption"), None);
}

/// The host and credential scope a request on `bucket` gets in `region`.
fn signed_scope(bucket: &str, region: &str) -> (String, String) {
    let config = ClientConfig {
        bucket: bucket.into(),
        endpoint: None,
        region: Some(region.into()),
        ..config("http://unused", None)
    };
    let client = S3Client::unconnected(&config).unwrap();
    let req = Request::new("GetObject", Method::GET, Some("k"));
    let target = client.addressing.target(Some("k"), &[]).unwrap();
    let headers = vec![("host".to_string(), target.host.clone())];
    let signed = client.sign(
        &req,
        &target,
        &headers,
        "UNSIGNED-PAYLOAD",
        &session_credentials(),
    );
    let auth = signed
        .headers
        .iter()
        .find(|(name, _)| *name == "authorization")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    (target.host, auth)
}

/// An Outposts access point is signed for service `s3-outposts` in the ARN's region.
#[test]
fn outposts_requests_are_signed_for_s3_outposts() {
    let arn = "arn:aws:s3-outposts:us-west-2:123456789012:outpost/op-01234567890123456/accesspoint/reports";
    let (host, auth) = signed_scope(arn, "us-west-2");
    assert_eq!(
        host,
        "reports-123456789012.op-01234567890123456.s3-outposts.us-west-2.amazonaws.com"
    );
    assert!(
        auth.contains("/us-west-2/s3-outposts/aws4_request"),
        "{auth}"
    );
}

/// An access point is signed for `s3` in its own region, whatever region was configured.
#[test]
fn access_points_are_signed_for_their_region() {
    let arn = "arn:aws:s3:eu-west-1:123456789012:accesspoint/myap";
    let (host, auth) = signed_scope(arn, "us-east-1");
    assert_eq!(
        host,
        "myap-123456789012.s3-accesspoint.eu-west-1.amazonaws.com"
    );
    assert!(auth.contains("/eu-west-1/s3/aws4_request"), "{auth}");
}
