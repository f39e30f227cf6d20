//! `S3Client` against the test S3 server: every operation round-trips, listings page and
//! decode, odd keys survive verbatim, conditional and ranged reads, region discovery and
//! `WrongRegion`, retries of injected `SlowDown`, session tokens, redaction.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use s3rolefs::credentials::{Credentials, CredentialsCell, Secret};
use s3rolefs::s3::client::{ClientConfig, S3Client};
use s3rolefs::s3::{GetObjectParams, ListObjectsParams, ObjectClient, PutObjectParams, S3Error};
use support::{Fault, Op, TestServer};

fn credentials(access_key: &str, secret: &str, token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: access_key.to_string(),
        secret_access_key: Secret::new(secret),
        session_token: token.map(Secret::new),
        expiry: None,
        source: "test".into(),
    }
}

fn config(server: &TestServer, bucket: &str) -> ClientConfig {
    ClientConfig {
        bucket: bucket.to_string(),
        endpoint: Some(server.endpoint()),
        region: Some(server.region().to_string()),
        region_hint: None,
        force_path_style: false,
        provider: Default::default(),
        variants: Default::default(),
        access: Default::default(),
        credentials: Some(Arc::new(CredentialsCell::new(credentials(
            server.access_key(),
            server.secret_key(),
            None,
        )))),
        max_attempts: 3,
        retry_timeout: Duration::ZERO,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(10),
        ca_bundle: None,
        user_agent: "s3rolefs-tests".into(),
        clock: Default::default(),
    }
}

async fn connect(server: &TestServer, bucket: &str) -> S3Client {
    server.create_bucket(bucket);
    S3Client::connect(config(server, bucket))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

fn get(key: &str) -> GetObjectParams {
    GetObjectParams {
        key: key.to_string(),
        ..Default::default()
    }
}

fn put(key: &str, body: &'static [u8]) -> PutObjectParams {
    PutObjectParams {
        key: key.to_string(),
        body: Bytes::from_static(body),
        metadata: Default::default(),
    }
}

#[tokio::test]
async fn every_operation_round_trips() {
    let server = TestServer::start();
    let c = connect(&server, "bucket").await;
    assert!(c.is_path_style());
    c.head_bucket().await.unwrap();

    let etag = c.put_object(put("dir/file", b"hello world")).await.unwrap();
    assert_eq!(etag, "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"");
    assert_eq!(server.get("bucket", "dir/file").unwrap(), "hello world");

    let head = c.head_object("dir/file").await.unwrap();
    assert_eq!((head.size, head.etag.as_str()), (11, etag.as_str()));
    let age = SystemTime::now()
        .duration_since(head.last_modified)
        .unwrap();
    assert!(age < Duration::from_secs(60), "{age:?}");

    let whole = c.get_object(get("dir/file")).await.unwrap();
    assert_eq!(
        (&whole.body.to_bytes()[..], whole.meta.size),
        (&b"hello world"[..], 11)
    );

    let copied = c.copy_object("dir/file", "dir/copy", None).await.unwrap();
    assert_eq!(copied, etag);
    assert_eq!(server.get("bucket", "dir/copy").unwrap(), "hello world");

    let listing = c.list_objects(&ListObjectsParams::default()).await.unwrap();
    let keys: Vec<&str> = listing.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, vec!["dir/copy", "dir/file"]);
    assert_eq!(listing.objects[1].etag, etag);
    assert_eq!(listing.objects[1].size, 11);

    c.delete_object("dir/copy").await.unwrap();
    assert_eq!(server.get("bucket", "dir/copy"), None);
    // Deleting what is not there is not an error on S3.
    c.delete_object("dir/copy").await.unwrap();

    server.put_many("bucket", (0..5).map(|i| (format!("batch/{i}"), "x")));
    let keys: Vec<String> = (0..5).map(|i| format!("batch/{i}")).collect();
    assert!(c.delete_objects(&keys).await.unwrap().is_empty());
    assert_eq!(server.keys("bucket"), vec!["dir/file"]);
    assert!(c.delete_objects(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn multipart_upload_complete_and_abort() {
    let server = TestServer::start();
    let c = connect(&server, "bucket").await;
    server.set_min_part_size(4);
    let id = c
        .create_multipart_upload("big", &Default::default())
        .await
        .unwrap();
    let e1 = c
        .upload_part("big", &id, 1, Bytes::from_static(b"part1-"))
        .await
        .unwrap();
    let e2 = c
        .upload_part("big", &id, 2, Bytes::from_static(b"part2"))
        .await
        .unwrap();
    assert!(e1.checksum_crc32c.is_some(), "parts carry their CRC32C");
    let parts = [e1, e2];
    let etag = c
        .complete_multipart_upload("big", &id, &parts)
        .await
        .unwrap();
    assert!(etag.ends_with("-2\""), "{etag}");
    assert_eq!(server.get("bucket", "big").unwrap(), "part1-part2");
    assert_eq!(c.head_object("big").await.unwrap().etag, etag);

    let id = c
        .create_multipart_upload("abandoned", &Default::default())
        .await
        .unwrap();
    assert_eq!(server.open_multipart_uploads("bucket"), 1);
    c.abort_multipart_upload("abandoned", &id).await.unwrap();
    assert_eq!(server.open_multipart_uploads("bucket"), 0);
    let err = c
        .complete_multipart_upload("abandoned", &id, &parts)
        .await
        .unwrap_err();
    assert!(
        matches!(err, S3Error::Service { ref code, .. } if code == "NoSuchUpload"),
        "{err}"
    );
}

/// 2,500 keys: pages of 1,000 chained by tokens, with and without delimiter, prefix,
/// start-after and max-keys.
#[tokio::test]
async fn listing_2500_keys_across_pages() {
    let server = TestServer::start();
    let c = connect(&server, "bucket").await;
    let files = (0..2400).map(|i| (format!("d/f{i:04}"), "x"));
    let subdirs = (0..100).map(|j| (format!("d/s{j:02}/x"), "x"));
    server.put_many("bucket", files.chain(subdirs));

    server.reset_counters();
    let all = c.list_objects(&ListObjectsParams::default()).await.unwrap();
    assert_eq!(all.objects.len(), 2500);
    assert_eq!(server.count(Op::ListObjectsV2), 3);
    assert!(all.objects.windows(2).all(|w| w[0].key < w[1].key));

    let delimited = ListObjectsParams {
        prefix: "d/".into(),
        delimiter: Some("/".into()),
        ..Default::default()
    };
    let dir = c.list_objects(&delimited).await.unwrap();
    assert_eq!((dir.objects.len(), dir.common_prefixes.len()), (2400, 100));
    assert_eq!(dir.common_prefixes[0], "d/s00/");
    assert_eq!(dir.objects[2399].key, "d/f2399");

    let after = ListObjectsParams {
        start_after: Some("d/f2000".into()),
        ..delimited.clone()
    };
    let tail = c.list_objects(&after).await.unwrap();
    assert_eq!((tail.objects.len(), tail.common_prefixes.len()), (399, 100));
    assert_eq!(tail.objects[0].key, "d/f2001");

    let first = c
        .list_objects_page(
            &ListObjectsParams {
                max_keys: Some(10),
                ..delimited
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(first.objects.len(), 10);
    assert!(first.next_continuation_token.is_some());
}

/// Keys are sent encoded once and never normalized, and come back from listings decoded.
#[tokio::test]
async fn odd_keys_round_trip_verbatim() {
    let server = TestServer::start();
    let c = connect(&server, "bucket").await;
    let keys = [
        "with space",
        "unicodé/日本語",
        "100%",
        "a+b",
        "a//b",
        "/leading",
        "trailing/",
        "tab\there",
        "line\nbreak\r",
        "amp&lt;",
        "~tilde*star",
        "a/.hidden/..dots",
    ];
    for key in keys {
        c.put_object(PutObjectParams {
            key: key.to_string(),
            body: Bytes::from(key.as_bytes().to_vec()),
            metadata: Default::default(),
        })
        .await
        .unwrap_or_else(|e| panic!("put {key:?}: {e}"));
        let got = c.get_object(get(key)).await.unwrap();
        assert_eq!(&got.body.to_bytes()[..], key.as_bytes(), "{key:?}");
    }
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(server.keys("bucket"), expected);
    let listed: Vec<String> = c
        .list_objects(&ListObjectsParams::default())
        .await
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed, expected);
    let prefixed = c
        .list_objects(&ListObjectsParams {
            prefix: "a+".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(prefixed.objects.len(), 1);
    assert!(c.delete_objects(&expected).await.unwrap().is_empty());
    assert!(server.keys("bucket").is_empty());
}

/// `a/../b` would reach `b` through any HTTP URL parser: it is refused, and `b` untouched.
#[tokio::test]
async fn dot_segment_keys_are_refused_not_redirected() {
    let server = TestServer::start();
    let c = connect(&server, "bucket").await;
    server.put("bucket", "b", "precious");
    server.reset_counters();
    for key in ["a/../b", "./b", "a/.", ".."] {
        let err = c.delete_object(key).await.unwrap_err();
        assert!(matches!(err, S3Error::InvalidKey { .. }), "{key:?}: {err}");
        assert!(c.put_object(put(key, b"x")).await.is_err());
    }
    assert_eq!(server.total_requests(), 0);
    assert_eq!(server.get("bucket", "b").unwrap(), "precious");
}

#[tokio::test]
async fn ranged_and_conditional_reads() {
    let server = TestServer::start();
    let c = connect(&server, "bucket").await;
    let etag = c.put_object(put("k", b"0123456789")).await.unwrap();
    let ranged = c
        .get_object(GetObjectParams {
            key: "k".into(),
            range: Some(2..5),
            if_match: Some(etag.clone()),
        })
        .await
        .unwrap();
    assert_eq!(
        (&ranged.body.to_bytes()[..], ranged.meta.size),
        (&b"234"[..], 10)
    );
    assert_eq!(ranged.meta.etag, etag);
    let past_end = c
        .get_object(GetObjectParams {
            range: Some(8..100),
            ..get("k")
        })
        .await
        .unwrap();
    assert_eq!(&past_end.body.to_bytes()[..], b"89");

    let stale = c
        .get_object(GetObjectParams {
            if_match: Some("\"0000\"".into()),
            ..get("k")
        })
        .await
        .unwrap_err();
    assert!(
        matches!(stale, S3Error::PreconditionFailed { ref etag } if etag == "\"0000\""),
        "{stale}"
    );
    let beyond = c
        .get_object(GetObjectParams {
            range: Some(10..20),
            ..get("k")
        })
        .await
        .unwrap_err();
    assert!(matches!(beyond, S3Error::InvalidRange), "{beyond}");
    let missing = c.get_object(get("nope")).await.unwrap_err();
    assert!(matches!(missing, S3Error::NoSuchKey { ref key } if key == "nope"));
    let missing = c.head_object("nope").await.unwrap_err();
    assert!(matches!(missing, S3Error::NoSuchKey { .. }), "{missing}");
}

#[tokio::test]
async fn region_is_discovered_or_reported_wrong() {
    let server = TestServer::start();
    server.create_bucket_in_region("far", "eu-west-1");
    let mut cfg = config(&server, "far");
    cfg.region = None;
    let c = S3Client::connect(cfg.clone()).await.unwrap();
    assert_eq!(c.region(), "eu-west-1");
    c.put_object(put("k", b"v")).await.unwrap();
    assert_eq!(
        server.requests().last().unwrap().signing_region.as_deref(),
        Some("eu-west-1")
    );

    cfg.region = Some("us-east-1".into());
    let err = S3Client::connect(cfg.clone()).await.unwrap_err();
    assert!(
        matches!(err, S3Error::WrongRegion { ref region, ref signed_for }
            if region == "eu-west-1" && signed_for == "us-east-1"),
        "{err}"
    );

    // A bucket with no region hint (local servers) is us-east-1.
    server.create_bucket("near");
    cfg.bucket = "near".into();
    cfg.region = None;
    assert_eq!(S3Client::connect(cfg).await.unwrap().region(), "us-east-1");
}

#[tokio::test]
async fn missing_bucket_is_no_such_bucket() {
    let server = TestServer::start();
    let err = S3Client::connect(config(&server, "absent"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, S3Error::NoSuchBucket { ref bucket } if bucket == "absent"),
        "{err}"
    );
    let mut unknown_region = config(&server, "absent");
    unknown_region.region = None;
    let err = S3Client::connect(unknown_region).await.unwrap_err();
    assert!(matches!(err, S3Error::NoSuchBucket { .. }), "{err}");
}

/// Two SlowDowns then success: the call succeeds on the third attempt; with one attempt
/// allowed it fails with a retryable error.
#[tokio::test]
async fn slow_down_is_retried() {
    let server = TestServer::start();
    let c = connect(&server, "bucket").await;
    server.put("bucket", "k", "v");
    server.reset_counters();
    server.fail_next(2, Fault::SlowDown);
    let got = c.get_object(get("k")).await.unwrap();
    assert_eq!(&got.body.to_bytes()[..], b"v");
    assert_eq!(server.count(Op::GetObject), 3);

    server.fail_next(1, Fault::DropConnection);
    assert_eq!(c.head_object("k").await.unwrap().size, 1);

    let mut once = config(&server, "bucket");
    once.max_attempts = 1;
    let c = S3Client::connect(once).await.unwrap();
    server.reset_counters();
    server.fail_next(2, Fault::SlowDown);
    let err = c.get_object(get("k")).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(matches!(err, S3Error::Service { status: 503, ref code, .. } if code == "SlowDown"));
    assert_eq!(server.count(Op::GetObject), 1);
}

/// Temporary credentials: the token is sent with every request; a snapshot swapped into
/// the cell is used by the next request; a rejected token never shows in the error.
#[tokio::test]
async fn session_tokens_are_sent_and_refreshes_picked_up() {
    let server = TestServer::start();
    server.create_bucket("bucket");
    let expires = SystemTime::now() + Duration::from_secs(3600);
    server.add_session_key("ASIAFIRST", "secret-1", "TOKEN-ONE", expires);
    server.add_session_key("ASIASECOND", "secret-2", "TOKEN-TWO", expires);
    let cell = Arc::new(CredentialsCell::new(credentials(
        "ASIAFIRST",
        "secret-1",
        Some("TOKEN-ONE"),
    )));
    let mut cfg = config(&server, "bucket");
    cfg.credentials = Some(cell.clone());
    let c = S3Client::connect(cfg).await.unwrap();
    c.put_object(put("k", b"v")).await.unwrap();
    let last = server.requests().last().cloned().unwrap();
    assert_eq!(last.security_token.as_deref(), Some("TOKEN-ONE"));

    cell.store(credentials("ASIASECOND", "secret-2", Some("TOKEN-TWO")));
    c.head_object("k").await.unwrap();
    assert_eq!(server.access_keys_used(), vec!["ASIAFIRST", "ASIASECOND"]);

    cell.store(credentials(
        "ASIASECOND",
        "secret-2",
        Some("WRONG-TOKEN-SECRET"),
    ));
    let err = c.head_object("k").await.unwrap_err();
    // HEAD answers have no body; the client asks again with a GET to learn the code.
    assert!(
        matches!(err, S3Error::CredentialsRejected { ref code, .. } if code == "InvalidToken"),
        "{err}"
    );
    assert!(!err.to_string().contains("WRONG-TOKEN-SECRET"), "{err}");
    let listing_err = c
        .list_objects(&ListObjectsParams::default())
        .await
        .unwrap_err();
    assert!(
        !listing_err.to_string().contains("WRONG-TOKEN-SECRET"),
        "{listing_err}"
    );

    server.add_session_key("ASIAOLD", "secret-3", "TOKEN-OLD", SystemTime::now());
    cell.store(credentials("ASIAOLD", "secret-3", Some("TOKEN-OLD")));
    let err = c.get_object(get("k")).await.unwrap_err();
    assert!(
        matches!(err, S3Error::CredentialsRejected { ref code, .. } if code == "ExpiredToken"),
        "{err}"
    );
}
