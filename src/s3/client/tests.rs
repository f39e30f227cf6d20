//! The client against a scripted HTTP server that records every request it gets: what
//! goes on the wire (signature headers, session token, query, Content-MD5), and how
//! retries, region discovery and odd answers are handled.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::{ClientConfig, S3Client};
use crate::credentials::{Credentials, CredentialsCell, Secret};
use crate::s3::{GetObjectParams, ListObjectsParams, ObjectClient, PutObjectParams, S3Error};

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub(super) struct Seen {
    pub(super) line: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Seen {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Answers requests with `script` in order (the last answer repeats), recording them.
pub(super) struct Scripted {
    pub(super) endpoint: String,
    pub(super) seen: Arc<Mutex<Vec<Seen>>>,
}

pub(super) async fn serve(script: Vec<String>) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let script = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (record, script) = (record.clone(), script.clone());
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                loop {
                    let mut line = String::new();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut headers = Vec::new();
                    loop {
                        let mut h = String::new();
                        read.read_line(&mut h).await.unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (n, v) = h.split_once(':').unwrap();
                        headers.push((n.trim().to_lowercase(), v.trim().to_string()));
                    }
                    let len = headers
                        .iter()
                        .find(|(n, _)| n == "content-length")
                        .map_or(0, |(_, v)| v.parse().unwrap());
                    let mut body = vec![0; len];
                    read.read_exact(&mut body).await.unwrap();
                    let n = {
                        let mut seen = record.lock().unwrap();
                        seen.push(Seen {
                            line: line.trim_end().to_string(),
                            headers,
                            body,
                        });
                        seen.len()
                    };
                    let answer = &script[(n - 1).min(script.len() - 1)];
                    // HEAD answers have no body on the wire, whatever the script says.
                    let answer = if line.starts_with("HEAD") {
                        answer.split_inclusive("\r\n\r\n").next().unwrap_or(answer)
                    } else {
                        answer
                    };
                    write.write_all(answer.as_bytes()).await.unwrap();
                }
            });
        }
    });
    Scripted { endpoint, seen }
}

pub(super) fn answer(status: &str, headers: &[&str], body: &str) -> String {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    out
}

pub(super) const OBJECT_HEADERS: [&str; 2] = [
    "etag: \"e1\"",
    "last-modified: Wed, 21 Oct 2015 07:28:00 GMT",
];

pub(super) fn config(endpoint: &str, credentials: Option<Credentials>) -> ClientConfig {
    ClientConfig {
        bucket: "bkt".into(),
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        region_hint: None,
        force_path_style: false,
        provider: Default::default(),
        variants: Default::default(),
        access: Default::default(),
        credentials: credentials.map(|c| Arc::new(CredentialsCell::new(c))),
        max_attempts: 3,
        retry_timeout: Duration::ZERO,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(5),
        ca_bundle: None,
        user_agent: "s3rolefs-test".into(),
        clock: Default::default(),
    }
}

pub(super) fn session_credentials() -> Credentials {
    Credentials {
        access_key_id: "ASIAEXAMPLE".into(),
        secret_access_key: Secret::new("secret"),
        session_token: Some(Secret::new("SESSION-TOKEN-VALUE")),
        expiry: None,
        source: "test".into(),
    }
}

/// Every attempt is signed with the snapshot, and the session token travels with it.
#[tokio::test]
async fn signed_requests_carry_the_session_token() {
    let server = serve(vec![
        answer("200 OK", &[], ""),
        answer("200 OK", &OBJECT_HEADERS, ""),
    ])
    .await;
    let client = S3Client::connect(config(&server.endpoint, Some(session_credentials())))
        .await
        .unwrap();
    client
        .put_object(PutObjectParams {
            key: "dir/a b".into(),
            body: Bytes::from_static(b"hello"),
            metadata: Default::default(),
        })
        .await
        .unwrap();
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen[0].line, "HEAD /bkt/ HTTP/1.1");
    let put = &seen[1];
    assert_eq!(put.line, "PUT /bkt/dir/a%20b HTTP/1.1");
    assert_eq!(
        put.header("x-amz-security-token"),
        Some("SESSION-TOKEN-VALUE")
    );
    let auth = put.header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/"),
        "{auth}"
    );
    assert!(auth.contains("x-amz-security-token"), "{auth}");
    assert!(auth.contains("/us-east-1/s3/aws4_request"), "{auth}");
    assert_eq!(
        put.header("x-amz-checksum-crc32c"),
        Some(crate::s3::checksum::crc32c_base64(b"hello").as_str())
    );
    assert!(
        auth.contains("x-amz-checksum-crc32c"),
        "the checksum is signed: {auth}"
    );
    // A small body keeps its signed SHA-256.
    assert_eq!(
        put.header("x-amz-content-sha256"),
        Some("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
    );
    assert_eq!(put.body, b"hello");
}

/// `--no-sign-request`: no Authorization, no token.
#[tokio::test]
async fn unsigned_requests_have_no_authorization() {
    let server = serve(vec![answer("200 OK", &[], "")]).await;
    S3Client::connect(config(&server.endpoint, None))
        .await
        .unwrap();
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(seen[0].header("x-amz-security-token"), None);
}

/// SlowDown twice, then success: the call succeeds on the third attempt.
#[tokio::test]
async fn throttling_is_retried_then_gives_up() {
    let slow = answer(
        "503 Slow Down",
        &[],
        "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>",
    );
    let server = serve(vec![
        answer("200 OK", &[], ""),
        slow.clone(),
        slow.clone(),
        answer("200 OK", &OBJECT_HEADERS, ""),
    ])
    .await;
    let client = S3Client::connect(config(&server.endpoint, None))
        .await
        .unwrap();
    client.delete_object("k").await.unwrap();
    assert_eq!(server.seen.lock().unwrap().len(), 4);

    let server = serve(vec![answer("200 OK", &[], ""), slow]).await;
    let mut cfg = config(&server.endpoint, None);
    cfg.max_attempts = 2;
    let client = S3Client::connect(cfg).await.unwrap();
    let err = client.delete_object("k").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(server.seen.lock().unwrap().len(), 3);
}

/// A 4xx other than throttling is final at once.
#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = serve(vec![
        answer("200 OK", &[], ""),
        answer(
            "404 Not Found",
            &[],
            "<Error><Code>NoSuchKey</Code></Error>",
        ),
    ])
    .await;
    let client = S3Client::connect(config(&server.endpoint, None))
        .await
        .unwrap();
    let err = client
        .get_object(GetObjectParams {
            key: "gone".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, S3Error::NoSuchKey { ref key } if key == "gone"),
        "{err}"
    );
    assert_eq!(server.seen.lock().unwrap().len(), 2);
}

/// CopyObject answered 200 with an `<Error>` body is an error (retried if retryable).
#[tokio::test]
async fn copy_error_inside_a_200_is_an_error() {
    let server = serve(vec![
        answer("200 OK", &[], ""),
        answer(
            "200 OK",
            &[],
            "<Error><Code>AccessDenied</Code><Message>no</Message></Error>",
        ),
    ])
    .await;
    let client = S3Client::connect(config(&server.endpoint, None))
        .await
        .unwrap();
    let err = client
        .copy_object("from key", "to", None)
        .await
        .unwrap_err();
    assert!(matches!(err, S3Error::AccessDenied { .. }), "{err}");
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen[1].header("x-amz-copy-source"), Some("/bkt/from%20key"));
}

/// Discovery: a 400 AuthorizationHeaderMalformed names the region; the client re-signs.
/// HEAD answers have no body, so the region is read from a GET's error body.
#[tokio::test]
async fn region_is_discovered_from_a_malformed_authorization_answer() {
    let server = serve(vec![
        answer("400 Bad Request", &[], ""),
        answer(
            "400 Bad Request",
            &[],
            "<Error><Code>AuthorizationHeaderMalformed</Code><Message>wrong region</Message>\
             <Region>eu-west-3</Region></Error>",
        ),
        answer("200 OK", &[], ""),
    ])
    .await;
    let mut cfg = config(&server.endpoint, Some(session_credentials()));
    cfg.region = None;
    let client = S3Client::connect(cfg).await.unwrap();
    assert_eq!(client.region(), "eu-west-3");
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen[1].line, "GET /bkt/?list-type=2&max-keys=0 HTTP/1.1");
    assert!(seen[1]
        .header("authorization")
        .unwrap()
        .contains("/us-east-1/s3/"));
    assert_eq!(seen[2].line, "HEAD /bkt/ HTTP/1.1");
    assert!(seen[2]
        .header("authorization")
        .unwrap()
        .contains("/eu-west-3/s3/"));
}

/// Discovery: the header on a 301 names the region (no region configured).
#[tokio::test]
async fn region_is_discovered_from_the_bucket_region_header() {
    let server = serve(vec![
        answer(
            "301 Moved Permanently",
            &["x-amz-bucket-region: us-west-2"],
            "",
        ),
        answer("200 OK", &[], ""),
    ])
    .await;
    let mut cfg = config(&server.endpoint, None);
    cfg.region = None;
    let client = S3Client::connect(cfg).await.unwrap();
    assert_eq!(client.region(), "us-west-2");
    assert_eq!(server.seen.lock().unwrap().len(), 2);
}

/// A configured region the bucket is not in: `WrongRegion` naming the right one.
#[tokio::test]
async fn configured_wrong_region_is_reported() {
    let server = serve(vec![answer(
        "301 Moved Permanently",
        &["x-amz-bucket-region: ap-northeast-1"],
        "",
    )])
    .await;
    let err = S3Client::connect(config(&server.endpoint, None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, S3Error::WrongRegion { ref region, ref signed_for }
            if region == "ap-northeast-1" && signed_for == "us-east-1"),
        "{err}"
    );
}

/// Nothing listens: a network error after every attempt, naming the endpoint.
#[tokio::test]
async fn unreachable_endpoint_is_a_network_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = S3Client::connect(config(&endpoint, None))
        .await
        .unwrap_err();
    assert!(matches!(err, S3Error::Network { .. }), "{err}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
}

/// A bare 403 to a HEAD is explained by the same question as a GET, whose body says the
/// key id is unknown: the caller gets `CredentialsRejected`, not a plain `AccessDenied`.
#[tokio::test]
async fn bare_head_refusals_are_explained_by_a_get() {
    let server = serve(vec![
        answer("200 OK", &[], ""),
        answer("403 Forbidden", &[], ""),
        answer(
            "403 Forbidden",
            &[],
            "<Error><Code>InvalidAccessKeyId</Code><Message>unknown key</Message></Error>",
        ),
    ])
    .await;
    let client = S3Client::connect(config(&server.endpoint, Some(session_credentials())))
        .await
        .unwrap();
    let err = client.head_object("k").await.unwrap_err();
    assert!(
        matches!(err, S3Error::CredentialsRejected { ref code, .. } if code == "InvalidAccessKeyId"),
        "{err}"
    );
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen[2].line, "GET /bkt/k HTTP/1.1");
    assert_eq!(seen[2].header("range"), Some("bytes=0-0"));
}

/// A self-signed CA (public certificate only), as an `AWS_CA_BUNDLE` would hold.
const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBjDCCATOgAwIBAgIULIul/juXwe5oeGyQHe++0MU5iYEwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQczNyb2xlZnMgdGVzdCBDQTAgFw0yNjExMjMxMTA5NDdaGA8y
MTI2MTAzMDExMDk0N1owGzEZMBcGA1UEAwwQczNyb2xlZnMgdGVzdCBDQTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABJM25MOzkDzESznIKo+cYil2jvvmaa5ZelR8
M29kkY+u+pgCUauZ7z95+w+qgyqwOsOY4iP8zzWngdMx6QxBU82jUzBRMB0GA1Ud
DgQWBBSu2XMb1nP1WUH37/5PLQywuzU4mDAfBgNVHSMEGDAWgBSu2XMb1nP1WUH3
7/5PLQywuzU4mDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIC7z
UjMvRJe1mmwcFuFAycC38yhooqRegmXjN7FB1FLIAiAravPyLL+z6BhbPWC6/86m
wrbrVobvrYs6TGEZQWRLKg==
-----END CERTIFICATE-----
";

/// A readable PEM bundle is accepted; a missing file or one without certificates is a
/// configuration error naming the file, before any request.
#[tokio::test]
async fn ca_bundle_is_loaded_or_rejected() {
    let server = serve(vec![answer("200 OK", &[], "")]).await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("ca.pem");
    std::fs::write(&good, TEST_CA_PEM).unwrap();
    let mut cfg = config(&server.endpoint, None);
    cfg.ca_bundle = Some(good);
    S3Client::connect(cfg.clone()).await.unwrap();

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    for path in [empty, dir.path().join("missing.pem")] {
        cfg.ca_bundle = Some(path.clone());
        let err = S3Client::connect(cfg.clone()).await.unwrap_err();
        assert!(matches!(err, S3Error::InvalidConfig(_)), "{err}");
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    }
    assert_eq!(server.seen.lock().unwrap().len(), 1);
}

/// `RequestTimeTooSkewed`: the request is signed again with the server's clock (from its
/// `Date`) and succeeds; later requests, and the mount's STS calls that share the clock,
/// keep using the corrected clock.
#[tokio::test]
async fn clock_skew_is_corrected_from_the_server_date() {
    let server_time = std::time::SystemTime::now() + Duration::from_secs(3600);
    let date = format!("date: {}", httpdate::fmt_http_date(server_time));
    let skewed = answer(
        "403 Forbidden",
        &[&date],
        "<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request \
         time and the current time is too large.</Message></Error>",
    );
    let ok = answer("200 OK", &OBJECT_HEADERS, "body");
    let server = serve(vec![answer("200 OK", &[], ""), skewed, ok]).await;
    let cfg = config(&server.endpoint, Some(session_credentials()));
    let mount_clock = cfg.clock.clone();
    let client = S3Client::connect(cfg).await.unwrap();
    let out = client
        .get_object(GetObjectParams {
            key: "k".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(out.body.to_bytes().as_ref(), b"body");
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    let signed_at = |i: usize| seen[i].header("x-amz-date").unwrap().to_string();
    let expected = crate::sigv4::amz_date(server_time);
    // Same hour of the server's clock (the local one is an hour behind).
    assert_eq!(signed_at(2)[..11], expected[..11]);
    assert_ne!(signed_at(1)[..11], expected[..11]);
    let offset = mount_clock.offset_ms();
    assert!((offset - 3_600_000).abs() < 5_000, "{offset}");
}

/// `AccessDenied` is a permission problem: it never waits for a credentials renewal.
#[tokio::test]
async fn access_denied_does_not_wait_for_a_renewal() {
    let denied = answer(
        "403 Forbidden",
        &[],
        "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
    );
    let server = serve(vec![answer("200 OK", &[], ""), denied]).await;
    let mut cfg = config(&server.endpoint, Some(session_credentials()));
    if let Some(cell) = &cfg.credentials {
        cell.set_refreshable(true);
    }
    cfg.max_attempts = 1;
    let client = S3Client::connect(cfg).await.unwrap();
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_object(GetObjectParams {
            key: "k".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("no wait for a renewal");
    assert!(matches!(outcome, Err(S3Error::AccessDenied { .. })));
}

/// A region hint (the instance's, on EC2) the bucket is not in is overruled by the region
/// S3 names: the mount goes on in the bucket's region instead of failing.
#[tokio::test]
async fn region_hint_is_overruled_by_the_buckets_region() {
    let server = serve(vec![
        answer(
            "301 Moved Permanently",
            &["x-amz-bucket-region: ap-northeast-1"],
            "",
        ),
        answer("200 OK", &[], ""),
    ])
    .await;
    let mut cfg = config(&server.endpoint, Some(session_credentials()));
    cfg.region = None;
    cfg.region_hint = Some("eu-central-1".into());
    let client = S3Client::connect(cfg).await.unwrap();
    assert_eq!(client.region(), "ap-northeast-1");
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen[0]
            .header("authorization")
            .unwrap()
            .contains("/eu-central-1/s3/"),
        "asked in the hinted region first"
    );
}

/// A hint a local server does not contradict (it names no region) is kept.
#[tokio::test]
async fn region_hint_stands_where_the_server_names_none() {
    let server = serve(vec![answer("200 OK", &[], "")]).await;
    let mut cfg = config(&server.endpoint, None);
    cfg.region = None;
    cfg.region_hint = Some("eu-central-1".into());
    let client = S3Client::connect(cfg).await.unwrap();
    assert_eq!(client.region(), "eu-central-1");
    assert_eq!(server.seen.lock().unwrap().len(), 1);
}

/// How a [`custom`] server answers the request number `n` (1-based) on its connection.
type Behaviour = Arc<dyn Fn(usize) -> Step + Send + Sync>;

/// What a [`custom`] server does with one request.
enum Step {
    /// Writes this answer at once.
    Answer(String),
    /// Never answers (the connection stays open, silent).
    Silence,
    /// Writes the head, then the body in `pieces` pieces, `gap` apart.
    Trickle {
        head: String,
        body: Vec<u8>,
        pieces: usize,
        gap: Duration,
    },
}

/// A server whose answers `behaviour` decides per request (counted across connections);
/// it reads each request whole first.
async fn custom(behaviour: Behaviour) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (behaviour, counter) = (Arc::clone(&behaviour), Arc::clone(&counter));
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                loop {
                    let mut line = String::new();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0;
                    loop {
                        let mut h = String::new();
                        if read.read_line(&mut h).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end().to_lowercase();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    if read.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    match behaviour(n) {
                        Step::Answer(a) => {
                            if write.write_all(a.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        Step::Silence => std::future::pending::<()>().await,
                        Step::Trickle {
                            head,
                            body,
                            pieces,
                            gap,
                        } => {
                            let _ = write.write_all(head.as_bytes()).await;
                            for piece in body.chunks(body.len().div_ceil(pieces)) {
                                tokio::time::sleep(gap).await;
                                if write.write_all(piece).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    (endpoint, count)
}

/// A server that takes a request and never answers costs one I/O timeout, and the request
/// is sent again rather than hang.
#[tokio::test]
async fn a_silent_server_times_out_and_is_retried() {
    let (endpoint, count) = custom(Arc::new(|n| match n {
        2 => Step::Silence,
        _ => Step::Answer(answer("200 OK", &OBJECT_HEADERS, "")),
    }))
    .await;
    let mut cfg = config(&endpoint, None);
    cfg.io_timeout = Duration::from_millis(400);
    let client = S3Client::connect(cfg).await.unwrap();
    let started = std::time::Instant::now();
    client.delete_object("k").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
}

/// An answer that takes ten times the I/O timeout but keeps moving never times out.
#[tokio::test]
async fn a_slow_moving_answer_never_times_out() {
    let body: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    let expected = body.clone();
    let (endpoint, _) = custom(Arc::new(move |n| match n {
        1 => Step::Answer(answer("200 OK", &[], "")),
        _ => Step::Trickle {
            head: format!(
                "HTTP/1.1 200 OK\r\netag: \"e1\"\r\nlast-modified: Wed, 21 Oct 2015 07:28:00 GMT\r\ncontent-length: {}\r\n\r\n",
                body.len()
            ),
            body: body.clone(),
            pieces: 20,
            gap: Duration::from_millis(100),
        },
    }))
    .await;
    let mut cfg = config(&endpoint, None);
    cfg.io_timeout = Duration::from_millis(500);
    cfg.max_attempts = 1;
    let client = S3Client::connect(cfg).await.unwrap();
    let got = client
        .get_object(GetObjectParams {
            key: "k".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(got.body.to_bytes().as_ref(), &expected[..]);
}

/// Once connected, SlowDown answers are retried for the whole budget, past the number of
/// attempts; at mount (connect) only the attempts are made.
#[tokio::test]
async fn throttling_is_retried_for_the_budget() {
    let started = std::time::Instant::now();
    let (endpoint, count) = custom(Arc::new(move |n| {
        if n == 1 || started.elapsed() > Duration::from_millis(1500) {
            Step::Answer(answer("200 OK", &OBJECT_HEADERS, ""))
        } else {
            Step::Answer(answer(
                "503 Slow Down",
                &[],
                "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>",
            ))
        }
    }))
    .await;
    let mut cfg = config(&endpoint, None);
    cfg.max_attempts = 2;
    cfg.retry_timeout = Duration::from_secs(10);
    cfg.initial_backoff = Duration::from_millis(20);
    cfg.max_backoff = Duration::from_millis(200);
    let client = S3Client::connect(cfg).await.unwrap();
    client.delete_object("k").await.unwrap();
    assert!(count.load(std::sync::atomic::Ordering::SeqCst) > 3);
}

/// A server that refuses `x-amz-checksum-crc32c` gets the same PutObject with Content-MD5,
/// and every later one goes with MD5 straight away.
#[tokio::test]
async fn refused_checksum_falls_back_to_content_md5() {
    let refused = answer(
        "400 Bad Request",
        &[],
        "<Error><Code>InvalidArgument</Code><Message>no</Message></Error>",
    );
    let server = serve(vec![
        answer("200 OK", &[], ""),
        refused,
        answer("200 OK", &OBJECT_HEADERS, ""),
        answer("200 OK", &OBJECT_HEADERS, ""),
    ])
    .await;
    let client = S3Client::connect(config(&server.endpoint, Some(session_credentials())))
        .await
        .unwrap();
    for key in ["a", "b"] {
        client
            .put_object(PutObjectParams {
                key: key.into(),
                body: Bytes::from_static(b"hello"),
                metadata: Default::default(),
            })
            .await
            .unwrap();
    }
    let seen = server.seen.lock().unwrap();
    assert!(seen[1].header("x-amz-checksum-crc32c").is_some());
    assert_eq!(
        seen[2].header("content-md5"),
        Some("XUFAKrxLKna5cZ2REBfFkg==")
    );
    assert_eq!(seen[3].header("x-amz-checksum-crc32c"), None);
    assert!(seen[3].header("content-md5").is_some());
    assert!(client.quirks().no_checksums());
}

/// A 400 on `list-type=2` is answered with a V1 listing, and the client stays on V1.
#[tokio::test]
async fn refused_list_v2_falls_back_to_v1() {
    let refused = answer(
        "400 Bad Request",
        &[],
        "<Error><Code>InvalidArgument</Code><Message>no v2</Message></Error>",
    );
    let v1 = answer(
        "200 OK",
        &[],
        "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>b</Key>\
         <LastModified>2009-10-12T17:50:30.000Z</LastModified><Size>1</Size></Contents>\
         <Contents><Key>a</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
         <Size>1</Size></Contents></ListBucketResult>",
    );
    let server = serve(vec![answer("200 OK", &[], ""), refused, v1.clone(), v1]).await;
    let client = S3Client::connect(config(&server.endpoint, Some(session_credentials())))
        .await
        .unwrap();
    let params = ListObjectsParams::default();
    for _ in 0..2 {
        let page = client.list_objects_page(&params, None).await.unwrap();
        let keys: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
    }
    let seen = server.seen.lock().unwrap();
    assert!(seen[1].line.contains("list-type=2"));
    assert!(!seen[2].line.contains("list-type") && !seen[3].line.contains("list-type"));
    assert!(client.quirks().list_v1());
    assert_eq!(client.quirks().active().len(), 2, "V1 and unsorted");
}
