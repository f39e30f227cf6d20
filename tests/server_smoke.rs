//! Tests of the test S3 server itself: the behaviours the crate's S3 client relies on.

mod support;

use support::{TestClient, TestServer};

/// A signed PUT followed by a GET returns the body with its MD5 ETag.
#[tokio::test]
async fn put_then_get_round_trips() {
    let server = TestServer::start();
    server.create_bucket("bucket");
    let client = TestClient::new(&server);
    let put = client
        .request("PUT", "bucket", "k")
        .body("hello")
        .send()
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    let get = client.request("GET", "bucket", "k").send().await;
    assert_eq!(get.status, 200, "{}", get.text());
    assert_eq!(&get.body[..], b"hello");
    assert_eq!(
        get.header("etag"),
        Some("\"5d41402abc4b2a76b9719d911017c592\"")
    );
}
