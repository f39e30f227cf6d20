//! Tests of the test S3 server itself, over HTTP with an independent minimal SigV4 client:
//! the S3 behaviours the crate's client relies on (key semantics, listing, ranges,
//! preconditions, multipart, regions, auth) and the hooks tests use (faults, counters).

mod support;

use std::time::{Duration, Instant, SystemTime};

use support::{Fault, Op, TestClient, TestServer};

const BUCKET: &str = "bucket";

fn server() -> (TestServer, TestClient) {
    let server = TestServer::start();
    server.create_bucket(BUCKET);
    let client = TestClient::new(&server);
    (server, client)
}

fn md5_b64(data: &[u8]) -> String {
    use base64::Engine as _;
    use md5::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

/// A signed PUT followed by a GET returns the body, its MD5 ETag and content type.
#[tokio::test]
async fn put_then_get_round_trips() {
    let (server, client) = server();
    let put = client
        .request("PUT", BUCKET, "k")
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(
        put.header("etag"),
        Some("\"5d41402abc4b2a76b9719d911017c592\"")
    );
    let get = client.request("GET", BUCKET, "k").send().await;
    assert_eq!(get.status, 200, "{}", get.text());
    assert_eq!(&get.body[..], b"hello");
    assert_eq!(
        get.header("etag"),
        Some("\"5d41402abc4b2a76b9719d911017c592\"")
    );
    assert_eq!(get.header("content-type"), Some("text/plain"));
    assert_eq!(get.header("content-length"), Some("5"));
    assert_eq!(server.get(BUCKET, "k").as_deref(), Some(&b"hello"[..]));
}

/// Keys with spaces, `%`, `+`, `//` and unicode are stored verbatim over HTTP.
#[tokio::test]
async fn awkward_keys_are_stored_verbatim() {
    let (server, client) = server();
    let keys = [
        "with space",
        "per%cent",
        "plus+sign",
        "a//b",
        "ünï/cødé ✓",
        "dir/",
    ];
    for key in keys {
        let put = client
            .request("PUT", BUCKET, key)
            .body(key.to_owned())
            .send()
            .await;
        assert_eq!(put.status, 200, "{key}: {}", put.text());
        let get = client.request("GET", BUCKET, key).send().await;
        assert_eq!(get.body, key.as_bytes(), "{key}");
    }
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(server.keys(BUCKET), expected);
}

/// Listing with `/` delimiter: `a` beside `a/b`, `dir/` markers, `a//b` under `a/`.
#[tokio::test]
async fn listing_rolls_up_common_prefixes_like_s3() {
    let (server, client) = server();
    server.put_many(
        BUCKET,
        ["a", "a/b", "a//b", "dir/", "dir/x", "z"].map(|k| (k, "x")),
    );

    let root = client
        .request("GET", BUCKET, "")
        .query("list-type", "2")
        .query("delimiter", "/")
        .send()
        .await;
    assert_eq!(root.status, 200, "{}", root.text());
    assert_eq!(root.xml_nested("Contents", "Key"), ["a", "z"]);
    assert_eq!(root.xml_nested("CommonPrefixes", "Prefix"), ["a/", "dir/"]);
    assert_eq!(root.xml_value("KeyCount").as_deref(), Some("4"));

    let a = client
        .request("GET", BUCKET, "")
        .query("list-type", "2")
        .query("delimiter", "/")
        .query("prefix", "a/")
        .send()
        .await;
    assert_eq!(a.xml_nested("Contents", "Key"), ["a/b"]);
    assert_eq!(a.xml_nested("CommonPrefixes", "Prefix"), ["a//"]);

    let dir = client
        .request("GET", BUCKET, "")
        .query("list-type", "2")
        .query("delimiter", "/")
        .query("prefix", "dir/")
        .send()
        .await;
    assert_eq!(dir.xml_nested("Contents", "Key"), ["dir/", "dir/x"]);
}

/// Listing entries carry ETag, Size and LastModified.
#[tokio::test]
async fn listing_contents_carry_etag_size_and_date() {
    let (server, client) = server();
    server.put(BUCKET, "k", "hello");
    let list = client
        .request("GET", BUCKET, "")
        .query("list-type", "2")
        .send()
        .await;
    assert_eq!(
        list.xml_nested("Contents", "ETag"),
        ["\"5d41402abc4b2a76b9719d911017c592\""]
    );
    assert_eq!(list.xml_nested("Contents", "Size"), ["5"]);
    let modified = &list.xml_nested("Contents", "LastModified")[0];
    assert!(
        modified.ends_with('Z') && modified.contains('T'),
        "{modified}"
    );
}

/// 2,500 keys come back in three pages of ≤1000 chained by continuation tokens, each once.
#[tokio::test]
async fn listing_paginates_with_continuation_tokens() {
    let (server, client) = server();
    let keys: Vec<String> = (0..2500).map(|i| format!("d/k{i:05}")).collect();
    server.put_many(BUCKET, keys.iter().map(|k| (k.clone(), "")));

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut req = client
            .request("GET", BUCKET, "")
            .query("list-type", "2")
            .query("prefix", "d/");
        if let Some(t) = &token {
            req = req.query("continuation-token", t);
        }
        let page = req.send().await;
        assert_eq!(page.status, 200, "{}", page.text());
        pages += 1;
        let page_keys = page.xml_nested("Contents", "Key");
        assert_eq!(
            page.xml_value("KeyCount"),
            Some(page_keys.len().to_string())
        );
        seen.extend(page_keys);
        if page.xml_value("IsTruncated").as_deref() == Some("true") {
            token = Some(
                page.xml_value("NextContinuationToken")
                    .expect("truncated page has a token"),
            );
        } else {
            assert_eq!(page.xml_value("NextContinuationToken"), None);
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, keys);
}

/// Pages of common prefixes never repeat a prefix (the marker skips its whole group).
#[tokio::test]
async fn listing_paginates_common_prefixes_without_repeats() {
    let (server, client) = server();
    server.put_many(
        BUCKET,
        (0..30).flat_map(|i| [(format!("p{i:02}/a"), ""), (format!("p{i:02}/b"), "")]),
    );
    let mut prefixes = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = client
            .request("GET", BUCKET, "")
            .query("list-type", "2")
            .query("delimiter", "/")
            .query("max-keys", "7");
        if let Some(t) = &token {
            req = req.query("continuation-token", t);
        }
        let page = req.send().await;
        prefixes.extend(page.xml_nested("CommonPrefixes", "Prefix"));
        token = page.xml_value("NextContinuationToken");
        if token.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (0..30).map(|i| format!("p{i:02}/")).collect();
    assert_eq!(prefixes, expected);
}

/// `start-after` lists strictly after the given key; `max-keys` above 1000 is capped.
#[tokio::test]
async fn listing_honours_start_after_and_caps_max_keys() {
    let (server, client) = server();
    server.put_many(BUCKET, ["a", "b", "c", "d"].map(|k| (k, "")));
    let after = client
        .request("GET", BUCKET, "")
        .query("list-type", "2")
        .query("start-after", "b")
        .send()
        .await;
    assert_eq!(after.xml_nested("Contents", "Key"), ["c", "d"]);
    let capped = client
        .request("GET", BUCKET, "")
        .query("list-type", "2")
        .query("max-keys", "5000")
        .send()
        .await;
    assert_eq!(capped.xml_value("MaxKeys").as_deref(), Some("1000"));
}

/// `encoding-type=url` percent-encodes keys and prefixes in the response.
#[tokio::test]
async fn listing_url_encodes_keys_on_request() {
    let (server, client) = server();
    server.put_many(BUCKET, ["sp ace/x", "plus+", "ü"].map(|k| (k, "")));
    let list = client
        .request("GET", BUCKET, "")
        .query("list-type", "2")
        .query("delimiter", "/")
        .query("encoding-type", "url")
        .send()
        .await;
    assert_eq!(list.xml_value("EncodingType").as_deref(), Some("url"));
    assert_eq!(list.xml_nested("Contents", "Key"), ["plus%2B", "%C3%BC"]);
    assert_eq!(list.xml_nested("CommonPrefixes", "Prefix"), ["sp+ace/"]);
}

/// ListObjects v1 pages with markers; NextMarker only appears with a delimiter.
#[tokio::test]
async fn listing_v1_paginates_with_markers() {
    let (server, client) = server();
    server.put_many(BUCKET, ["a", "b", "c"].map(|k| (k, "")));
    let first = client
        .request("GET", BUCKET, "")
        .query("max-keys", "2")
        .send()
        .await;
    assert_eq!(first.xml_nested("Contents", "Key"), ["a", "b"]);
    assert_eq!(first.xml_value("IsTruncated").as_deref(), Some("true"));
    assert_eq!(first.xml_value("NextMarker"), None);
    let rest = client
        .request("GET", BUCKET, "")
        .query("marker", "b")
        .send()
        .await;
    assert_eq!(rest.xml_nested("Contents", "Key"), ["c"]);
}

/// Range GETs: `a-b`, `a-`, `-n` give 206 with Content-Range; past the end gives 416.
#[tokio::test]
async fn range_get_answers_partial_content() {
    let (server, client) = server();
    server.put(BUCKET, "r", "0123456789");
    for (range, body, content_range) in [
        ("bytes=2-5", "2345", "bytes 2-5/10"),
        ("bytes=7-", "789", "bytes 7-9/10"),
        ("bytes=-3", "789", "bytes 7-9/10"),
        ("bytes=8-100", "89", "bytes 8-9/10"),
    ] {
        let r = client
            .request("GET", BUCKET, "r")
            .header("range", range)
            .send()
            .await;
        assert_eq!(r.status, 206, "{range}: {}", r.text());
        assert_eq!(r.body, body.as_bytes(), "{range}");
        assert_eq!(r.header("content-range"), Some(content_range), "{range}");
    }
    let beyond = client
        .request("GET", BUCKET, "r")
        .header("range", "bytes=10-")
        .send()
        .await;
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.xml_value("Code").as_deref(), Some("InvalidRange"));
}

/// If-Match with another ETag gives 412; If-None-Match with the current ETag gives 304.
#[tokio::test]
async fn conditional_get_answers_412_and_304() {
    let (server, client) = server();
    server.put(BUCKET, "c", "hello");
    let etag = server.object_info(BUCKET, "c").unwrap().etag;
    let stale = client
        .request("GET", BUCKET, "c")
        .header("if-match", "\"0123\"")
        .send()
        .await;
    assert_eq!(stale.status, 412);
    assert_eq!(
        stale.xml_value("Code").as_deref(),
        Some("PreconditionFailed")
    );
    let fresh = client
        .request("GET", BUCKET, "c")
        .header("if-match", &etag)
        .send()
        .await;
    assert_eq!(fresh.status, 200);
    let unchanged = client
        .request("GET", BUCKET, "c")
        .header("if-none-match", &etag)
        .send()
        .await;
    assert_eq!(unchanged.status, 304);
    assert!(unchanged.body.is_empty());
}

/// HEAD reports size, ETag and user metadata; a missing key is a bodiless 404.
#[tokio::test]
async fn head_object_reports_metadata() {
    let (server, client) = server();
    let put = client
        .request("PUT", BUCKET, "h")
        .header("x-amz-meta-color", "blue")
        .body("abc")
        .send()
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    let head = client.request("HEAD", BUCKET, "h").send().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("3"));
    assert_eq!(head.header("x-amz-meta-color"), Some("blue"));
    assert_eq!(
        server.object_info(BUCKET, "h").unwrap().metadata["color"],
        "blue"
    );
    let missing = client.request("HEAD", BUCKET, "nope").send().await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.is_empty());
}

/// UNSIGNED-PAYLOAD bodies are accepted; a body that does not match its signed SHA-256 is
/// refused with XAmzContentSHA256Mismatch and not stored.
#[tokio::test]
async fn payload_hash_is_verified_unless_unsigned() {
    let (server, client) = server();
    let unsigned = client
        .request("PUT", BUCKET, "u")
        .payload_hash("UNSIGNED-PAYLOAD")
        .body("data")
        .send()
        .await;
    assert_eq!(unsigned.status, 200, "{}", unsigned.text());
    let wrong = client
        .request("PUT", BUCKET, "w")
        .payload_hash(&"0".repeat(64))
        .body("data")
        .send()
        .await;
    assert_eq!(wrong.status, 400, "{}", wrong.text());
    assert_eq!(
        wrong.xml_value("Code").as_deref(),
        Some("XAmzContentSHA256Mismatch")
    );
    assert_eq!(server.keys(BUCKET), ["u"]);
}

/// A PUT whose Content-MD5 does not match the body is refused with BadDigest.
#[tokio::test]
async fn put_with_wrong_content_md5_is_refused() {
    let (server, client) = server();
    let bad = client
        .request("PUT", BUCKET, "m")
        .header("content-md5", &md5_b64(b"other"))
        .body("data")
        .send()
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.xml_value("Code").as_deref(), Some("BadDigest"));
    assert_eq!(server.get(BUCKET, "m"), None);
    let good = client
        .request("PUT", BUCKET, "m")
        .header("content-md5", &md5_b64(b"data"))
        .body("data")
        .send()
        .await;
    assert_eq!(good.status, 200, "{}", good.text());
}

/// CopyObject takes a URL-encoded source key and keeps the body.
#[tokio::test]
async fn copy_object_decodes_the_source_key() {
    let (server, client) = server();
    server.put(BUCKET, "src dir/ü+1", "payload");
    let source = format!(
        "/{BUCKET}/{}",
        support::client::uri_encode("src dir/ü+1", false)
    );
    let copy = client
        .request("PUT", BUCKET, "dst")
        .header("x-amz-copy-source", &source)
        .send()
        .await;
    assert_eq!(copy.status, 200, "{}", copy.text());
    assert!(copy.xml_value("ETag").is_some());
    assert_eq!(server.get(BUCKET, "dst").as_deref(), Some(&b"payload"[..]));
}

/// DeleteObjects removes every listed key, existing or not.
#[tokio::test]
async fn delete_objects_removes_listed_keys() {
    let (server, client) = server();
    server.put_many(BUCKET, ["x", "y", "z"].map(|k| (k, "")));
    let body = "<Delete><Object><Key>x</Key></Object><Object><Key>y</Key></Object><Object><Key>missing</Key></Object></Delete>";
    let del = client
        .request("POST", BUCKET, "")
        .query("delete", "")
        .header("content-md5", &md5_b64(body.as_bytes()))
        .body(body)
        .send()
        .await;
    assert_eq!(del.status, 200, "{}", del.text());
    assert_eq!(del.xml_nested("Deleted", "Key"), ["x", "y", "missing"]);
    assert_eq!(server.keys(BUCKET), ["z"]);
}

async fn start_upload(client: &TestClient, key: &str) -> String {
    let create = client
        .request("POST", BUCKET, key)
        .query("uploads", "")
        .send()
        .await;
    assert_eq!(create.status, 200, "{}", create.text());
    create.xml_value("UploadId").expect("UploadId")
}

async fn upload_part(client: &TestClient, key: &str, id: &str, n: u32, body: Vec<u8>) -> String {
    let part = client
        .request("PUT", BUCKET, key)
        .query("partNumber", &n.to_string())
        .query("uploadId", id)
        .body(body)
        .send()
        .await;
    assert_eq!(part.status, 200, "{}", part.text());
    part.header("etag").expect("part etag").to_owned()
}

fn complete_xml(parts: &[(u32, &str)]) -> String {
    let parts: String = parts
        .iter()
        .map(|(n, e)| format!("<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"))
        .collect();
    format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>")
}

/// Multipart: parts in order complete into the concatenation with a `-N` ETag, no upload left.
#[tokio::test]
async fn multipart_upload_completes_with_dash_n_etag() {
    let (server, client) = server();
    server.set_min_part_size(4);
    let id = start_upload(&client, "mp").await;
    assert_eq!(server.open_multipart_uploads(BUCKET), 1);
    let e1 = upload_part(&client, "mp", &id, 1, b"part1-".to_vec()).await;
    let e2 = upload_part(&client, "mp", &id, 2, b"two".to_vec()).await;
    let done = client
        .request("POST", BUCKET, "mp")
        .query("uploadId", &id)
        .body(complete_xml(&[(1, &e1), (2, &e2)]))
        .send()
        .await;
    assert_eq!(done.status, 200, "{}", done.text());
    let etag = done.xml_value("ETag").unwrap();
    assert!(etag.ends_with("-2\""), "{etag}");
    assert_eq!(server.get(BUCKET, "mp").as_deref(), Some(&b"part1-two"[..]));
    assert_eq!(server.object_info(BUCKET, "mp").unwrap().etag, etag);
    assert_eq!(server.open_multipart_uploads(BUCKET), 0);
}

/// Completion is refused for small non-last parts, out-of-order lists and wrong ETags.
#[tokio::test]
async fn multipart_completion_validates_parts() {
    let (server, client) = server();
    let id = start_upload(&client, "mp").await;
    let e1 = upload_part(&client, "mp", &id, 1, vec![1; 10]).await;
    let e2 = upload_part(&client, "mp", &id, 2, vec![2; 10]).await;
    let code = |xml: String| {
        let client = client.clone();
        let id = id.clone();
        async move {
            let r = client
                .request("POST", BUCKET, "mp")
                .query("uploadId", &id)
                .body(xml)
                .send()
                .await;
            (r.status, r.xml_value("Code").unwrap_or_default())
        }
    };
    assert_eq!(
        code(complete_xml(&[(1, &e1), (2, &e2)])).await,
        (400, "EntityTooSmall".into())
    );
    assert_eq!(
        code(complete_xml(&[(2, &e2), (1, &e1)])).await,
        (400, "InvalidPartOrder".into())
    );
    assert_eq!(
        code(complete_xml(&[(1, &e2)])).await,
        (400, "InvalidPart".into())
    );
    assert_eq!(server.open_multipart_uploads(BUCKET), 1);

    let listed = client
        .request("GET", BUCKET, "")
        .query("uploads", "")
        .send()
        .await;
    assert_eq!(
        listed.xml_nested("Upload", "UploadId"),
        std::slice::from_ref(&id)
    );
    let abort = client
        .request("DELETE", BUCKET, "mp")
        .query("uploadId", &id)
        .send()
        .await;
    assert_eq!(abort.status, 204);
    assert_eq!(server.open_multipart_uploads(BUCKET), 0);
    let again = client
        .request("DELETE", BUCKET, "mp")
        .query("uploadId", &id)
        .send()
        .await;
    assert_eq!(again.status, 404);
}

/// A bucket in another region: HeadBucket signed for the wrong region gets 301 with the
/// bucket's region; other requests get 400 AuthorizationHeaderMalformed naming it.
#[tokio::test]
async fn wrong_region_gets_aws_answers() {
    let server = TestServer::start();
    server.create_bucket_in_region("eu-bucket", "eu-west-1");
    let wrong = TestClient::new(&server);
    let head = wrong.request("HEAD", "eu-bucket", "").send().await;
    assert_eq!(head.status, 301);
    assert_eq!(head.header("x-amz-bucket-region"), Some("eu-west-1"));
    assert!(head.body.is_empty());

    let list = wrong
        .request("GET", "eu-bucket", "")
        .query("list-type", "2")
        .send()
        .await;
    assert_eq!(list.status, 400);
    assert_eq!(
        list.xml_value("Code").as_deref(),
        Some("AuthorizationHeaderMalformed")
    );
    assert_eq!(list.xml_value("Region").as_deref(), Some("eu-west-1"));
    assert_eq!(
        list.xml_value("Message").as_deref(),
        Some("The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'")
    );

    let right = TestClient::new(&server).with_region("eu-west-1");
    let head = right.request("HEAD", "eu-bucket", "").send().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("x-amz-bucket-region"), Some("eu-west-1"));
    let location = right
        .request("GET", "eu-bucket", "")
        .query("location", "")
        .send()
        .await;
    assert_eq!(
        location.xml_value("LocationConstraint").as_deref(),
        Some("eu-west-1")
    );
}

/// Injected SlowDown / InternalError answer the next N requests, then service resumes;
/// counters include the failed requests.
#[tokio::test]
async fn injected_errors_fail_the_next_requests_and_are_counted() {
    let (server, client) = server();
    server.put(BUCKET, "k", "v");
    server.fail_next(2, Fault::SlowDown);
    server.fail_next_op(Op::GetObject, 1, Fault::InternalError);
    let statuses = [
        client.request("GET", BUCKET, "k").send().await,
        client.request("HEAD", BUCKET, "k").send().await,
        client.request("GET", BUCKET, "k").send().await,
        client.request("GET", BUCKET, "k").send().await,
    ];
    assert_eq!(
        statuses.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 503, 500, 200]
    );
    assert_eq!(statuses[0].xml_value("Code").as_deref(), Some("SlowDown"));
    assert_eq!(
        statuses[2].xml_value("Code").as_deref(),
        Some("InternalError")
    );
    assert_eq!(server.count(Op::GetObject), 3);
    assert_eq!(server.count(Op::HeadObject), 1);
    assert_eq!(server.total_requests(), 4);
    server.reset_counters();
    assert_eq!(server.count(Op::GetObject), 0);
}

/// A dropped connection is a transport error for the client; the next request works.
#[tokio::test]
async fn injected_connection_drop_is_a_transport_error() {
    let (server, client) = server();
    server.put(BUCKET, "k", "v");
    server.fail_next(1, Fault::DropConnection);
    assert!(client.request("GET", BUCKET, "k").try_send().await.is_err());
    assert_eq!(client.request("GET", BUCKET, "k").send().await.status, 200);
    assert_eq!(server.requests()[0].status, None);
}

/// Added latency delays every answer.
#[tokio::test]
async fn injected_latency_delays_requests() {
    let (server, client) = server();
    server.set_latency(Duration::from_millis(150));
    let t0 = Instant::now();
    assert_eq!(client.request("HEAD", BUCKET, "").send().await.status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(150));
}

/// Each request's access key id is recorded; unknown and removed keys are refused with 403.
#[tokio::test]
async fn access_keys_are_recorded_and_checked() {
    let (server, client) = server();
    server.add_key("AKIDSECOND", "second-secret");
    let second = client
        .clone()
        .with_credentials("AKIDSECOND", "second-secret");
    assert_eq!(client.request("HEAD", BUCKET, "").send().await.status, 200);
    assert_eq!(second.request("HEAD", BUCKET, "").send().await.status, 200);
    assert_eq!(
        server.access_keys_used(),
        [server.access_key().to_owned(), "AKIDSECOND".to_owned()]
    );

    let wrong_secret = client.clone().with_credentials("AKIDSECOND", "nope");
    let r = wrong_secret.request("HEAD", BUCKET, "").send().await;
    assert_eq!(r.status, 403);
    assert!(server.remove_key("AKIDSECOND"));
    let r = second
        .request("GET", BUCKET, "")
        .query("list-type", "2")
        .send()
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.xml_value("Code").as_deref(), Some("InvalidAccessKeyId"));
}

/// Session keys need their token and stop working with ExpiredToken once expired.
#[tokio::test]
async fn session_keys_require_their_token_and_expire() {
    let (server, client) = server();
    let expires = SystemTime::now() + Duration::from_millis(300);
    server.add_session_key("ASIATEMP", "temp-secret", "token-1", expires);
    let temp = client.clone().with_credentials("ASIATEMP", "temp-secret");
    let list = |c: TestClient| async move {
        c.request("GET", BUCKET, "")
            .query("list-type", "2")
            .send()
            .await
    };

    assert_eq!(
        list(temp.clone().with_session_token("token-1"))
            .await
            .status,
        200
    );
    assert_eq!(list(temp.clone()).await.status, 403);
    let bad = list(temp.clone().with_session_token("token-2")).await;
    assert_eq!(bad.xml_value("Code").as_deref(), Some("InvalidToken"));
    assert_eq!(
        server.requests()[0].security_token.as_deref(),
        Some("token-1")
    );

    std::thread::sleep(Duration::from_millis(350));
    let expired = list(temp.with_session_token("token-1")).await;
    assert_eq!(expired.status, 400);
    assert_eq!(expired.xml_value("Code").as_deref(), Some("ExpiredToken"));
}

/// Anonymous requests read public-read buckets only, and never write.
#[tokio::test]
async fn anonymous_requests_read_public_buckets_only() {
    let (server, _) = server();
    server.put(BUCKET, "k", "v");
    let anonymous = TestClient::anonymous(&server);
    assert_eq!(
        anonymous.request("GET", BUCKET, "k").send().await.status,
        403
    );
    server.set_public_read(BUCKET, true);
    assert_eq!(
        anonymous.request("GET", BUCKET, "k").send().await.status,
        200
    );
    assert_eq!(
        anonymous
            .request("GET", BUCKET, "")
            .query("list-type", "2")
            .send()
            .await
            .status,
        200
    );
    assert_eq!(
        anonymous
            .request("PUT", BUCKET, "k2")
            .body("x")
            .send()
            .await
            .status,
        403
    );
    assert_eq!(server.requests()[1].access_key, None);
}

/// Virtual-hosted-style requests (`Host: bucket.localhost:PORT`) address the bucket.
#[tokio::test]
async fn virtual_hosted_style_addresses_the_bucket() {
    let (server, _) = server();
    server.put(BUCKET, "dir/k", "vhost");
    server.set_public_read(BUCKET, true);
    let http = reqwest::Client::builder()
        .no_proxy()
        .resolve(&format!("{BUCKET}.localhost"), server.addr())
        .build()
        .unwrap();
    let url = format!("http://{BUCKET}.localhost:{}/dir/k", server.addr().port());
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "vhost");
    assert_eq!(server.requests()[0].bucket.as_deref(), Some(BUCKET));
}

/// A 24 MiB object streams back intact in many slices, ranges included.
#[tokio::test]
async fn large_object_streams_back_intact() {
    let (server, client) = server();
    // A 251-byte period never lines up with the 1 MiB slices, so a misplaced slice shows.
    let period: Vec<u8> = (0..251u8).collect();
    let body = period.repeat(24 * 1024 * 1024 / 251 + 1);
    server.put(BUCKET, "big", body.clone());
    let get = client.request("GET", BUCKET, "big").send().await;
    assert_eq!(get.status, 200);
    assert!(get.body == body, "body differs");
    let tail = client
        .request("GET", BUCKET, "big")
        .header("range", "bytes=3000000-")
        .send()
        .await;
    assert!(tail.body == body[3_000_000..], "range body differs");
}

/// The harness reads mount types from /proc/self/mountinfo.
#[test]
fn mount_type_reads_mountinfo() {
    assert_eq!(
        support::mount::mount_type(std::path::Path::new("/proc")).as_deref(),
        Some("proc")
    );
    assert_eq!(
        support::mount::mount_type(&std::env::temp_dir().join("not-a-mount")),
        None
    );
}

/// Buckets: ListBuckets shows them; creating one twice is BucketAlreadyOwnedByYou.
#[tokio::test]
async fn buckets_are_listed_and_unique() {
    let (_server, client) = server();
    let create = client.request("PUT", "second-bucket", "").send().await;
    assert_eq!(create.status, 200, "{}", create.text());
    let again = client.request("PUT", "second-bucket", "").send().await;
    assert_eq!(again.status, 409);
    assert_eq!(
        again.xml_value("Code").as_deref(),
        Some("BucketAlreadyOwnedByYou")
    );
    let list = client.request("GET", "", "").send().await;
    assert_eq!(list.xml_nested("Bucket", "Name"), [BUCKET, "second-bucket"]);
    let missing = client.request("GET", "no-such-bucket", "k").send().await;
    assert_eq!(missing.xml_value("Code").as_deref(), Some("NoSuchBucket"));
}

/// The server serves plain `#[test]` functions too (its runtime is its own).
#[test]
fn out_of_band_api_works_without_a_runtime() {
    let server = TestServer::start();
    server.create_bucket(BUCKET);
    server.put_many(BUCKET, (0..10_000).map(|i| (format!("many/{i:05}"), "")));
    assert_eq!(server.keys(BUCKET).len(), 10_000);
    assert!(server.delete(BUCKET, "many/00000"));
    assert_eq!(server.get(BUCKET, "many/00000"), None);
    assert!(server.endpoint().starts_with("http://127.0.0.1:"));
}

/// A PUT whose x-amz-checksum-crc32c does not match the body is refused with BadDigest.
#[tokio::test]
async fn put_with_wrong_crc32c_is_refused() {
    use s3rolefs::s3::checksum::crc32c_base64;
    let (server, client) = server();
    let bad = client
        .request("PUT", BUCKET, "c")
        .header("x-amz-checksum-crc32c", &crc32c_base64(b"other"))
        .body("data")
        .send()
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.xml_value("Code").as_deref(), Some("BadDigest"));
    assert_eq!(server.get(BUCKET, "c"), None);
    let good = client
        .request("PUT", BUCKET, "c")
        .header("x-amz-checksum-crc32c", &crc32c_base64(b"data"))
        .body("data")
        .send()
        .await;
    assert_eq!(good.status, 200, "{}", good.text());
}
