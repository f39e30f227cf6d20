//! Tests of the test S3 server's fault layer, over HTTP as a client meets it: bandwidth limits,
//! latency, cuts mid-body, hangs, error rates, lost answers, outages and refused connections,
//! and the request log's account of each exchange. Timings are asserted loosely: these prove
//! the faults happen, not how fast this machine is.

mod support;

use std::time::{Duration, Instant};

use support::{Fault, Op, Outcome, Phase, RequestRecord, TestClient, TestServer};

const BUCKET: &str = "bucket";
const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

fn server() -> (TestServer, TestClient) {
    let server = TestServer::start();
    server.create_bucket(BUCKET);
    let client = TestClient::new(&server);
    (server, client)
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A plain HTTP client, for reading a (public) object's body as it arrives.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("build http client")
}

fn public_url(server: &TestServer, key: &str) -> String {
    server.set_public_read(BUCKET, true);
    format!("{}/{BUCKET}/{key}", server.endpoint())
}

/// The only record of operation `op`.
fn record_of(requests: &[RequestRecord], op: Op) -> RequestRecord {
    let mut of_op = requests.iter().filter(|r| r.op == op);
    let record = of_op
        .next()
        .unwrap_or_else(|| panic!("no {op}: {requests:#?}"));
    assert!(of_op.next().is_none(), "more than one {op}: {requests:#?}");
    record.clone()
}

// ---- the link ---------------------------------------------------------------------------

/// A 4 MiB PUT over a 2 MiB/s uplink takes about 2 s.
#[tokio::test]
async fn upload_bandwidth_paces_request_bodies() {
    let (server, client) = server();
    server.set_upload_bandwidth(Some(2 * MIB as u64));
    let t0 = Instant::now();
    let put = client
        .request("PUT", BUCKET, "k")
        .body(data(4 * MIB))
        .send()
        .await;
    let took = t0.elapsed();
    assert_eq!(put.status, 200, "{}", put.text());
    assert!(
        took > Duration::from_millis(1500) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let put = record_of(
        &server.settled_requests(Duration::from_secs(2)).await,
        Op::PutObject,
    );
    assert_eq!(put.bytes_received, 4 * MIB as u64);
    assert!(put.request_body_complete);
}

/// A 2 MiB GET over a 2 MiB/s downlink takes about 1 s, its bytes arriving without a stall.
#[tokio::test]
async fn download_bandwidth_paces_response_bodies_smoothly() {
    let (server, _) = server();
    server.put(BUCKET, "k", data(2 * MIB));
    server.set_download_bandwidth(Some(2 * MIB as u64));
    let t0 = Instant::now();
    let mut response = http()
        .get(public_url(&server, "k"))
        .send()
        .await
        .expect("GET");
    let (mut got, mut last, mut longest_gap) = (0, Instant::now(), Duration::ZERO);
    while let Some(chunk) = response.chunk().await.expect("body") {
        got += chunk.len();
        longest_gap = longest_gap.max(last.elapsed());
        last = Instant::now();
    }
    let took = t0.elapsed();
    assert_eq!(got, 2 * MIB);
    assert!(
        took > Duration::from_millis(750) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(longest_gap < Duration::from_millis(300), "{longest_gap:?}");
}

/// The uplink is shared: two 1 MiB PUTs side by side over 2 MiB/s take ~1 s, not 0.5 s.
#[tokio::test]
async fn bandwidth_is_shared_by_all_connections() {
    let (server, client) = server();
    server.set_upload_bandwidth(Some(2 * MIB as u64));
    let t0 = Instant::now();
    let (a, b) = tokio::join!(
        client.request("PUT", BUCKET, "a").body(data(MIB)).send(),
        client.request("PUT", BUCKET, "b").body(data(MIB)).send(),
    );
    let took = t0.elapsed();
    assert_eq!((a.status, b.status), (200, 200));
    assert!(
        took > Duration::from_millis(800) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

/// Added latency comes on top of the time the body takes to cross the link.
#[tokio::test]
async fn latency_adds_to_bandwidth() {
    let (server, client) = server();
    server.set_latency(Duration::from_millis(400));
    server.set_upload_bandwidth(Some(MIB as u64));
    let t0 = Instant::now();
    let put = client
        .request("PUT", BUCKET, "k")
        .body(data(512 * KIB))
        .send()
        .await;
    let took = t0.elapsed();
    assert_eq!(put.status, 200);
    assert!(
        took > Duration::from_millis(800) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

// ---- cuts, hangs, lost answers ----------------------------------------------------------

/// An upload cut after 256 KiB is a transport error for the client, stores nothing, and is
/// logged with the bytes read.
#[tokio::test]
async fn cut_upload_is_a_transport_error_and_stores_nothing() {
    let (server, client) = server();
    server.fail_next_op(
        Op::PutObject,
        1,
        Fault::CutUpload {
            after: 256 * KIB as u64,
        },
    );
    let cut = client
        .request("PUT", BUCKET, "k")
        .body(data(MIB))
        .try_send()
        .await;
    assert!(cut.is_err(), "{cut:?}");
    assert_eq!(server.get(BUCKET, "k"), None);
    let put = record_of(
        &server.settled_requests(Duration::from_secs(2)).await,
        Op::PutObject,
    );
    assert_eq!(
        put.fault,
        Some(Fault::CutUpload {
            after: 256 * KIB as u64
        })
    );
    assert_eq!(put.outcome, Outcome::CutByServer);
    assert_eq!(put.status, None);
    assert_eq!(put.bytes_received, 256 * KIB as u64);
    assert!(!put.request_body_complete);

    let again = client
        .request("PUT", BUCKET, "k")
        .body(data(MIB))
        .send()
        .await;
    assert_eq!(again.status, 200);
}

/// A download cut after 100,000 bytes gives the client the head, those bytes, then a broken
/// body.
#[tokio::test]
async fn cut_download_delivers_a_truncated_body_then_closes() {
    let (server, _) = server();
    server.put(BUCKET, "k", data(MIB));
    server.fail_next_op(Op::GetObject, 1, Fault::CutDownload { after: 100_000 });
    let mut response = http()
        .get(public_url(&server, "k"))
        .send()
        .await
        .expect("GET head");
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(MIB as u64));
    let mut got = 0;
    let end = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => got += chunk.len(),
            other => break other,
        }
    };
    assert!(end.is_err(), "the body ended cleanly: {end:?}");
    assert_eq!(got, 100_000);
    let get = record_of(
        &server.settled_requests(Duration::from_secs(2)).await,
        Op::GetObject,
    );
    assert_eq!(get.status, Some(200));
    assert_eq!(get.outcome, Outcome::CutByServer);
    assert_eq!(get.bytes_sent, 100_000);
}

/// A hung request gets no answer; the client giving up is logged as cut by the client.
#[tokio::test]
async fn hang_is_not_answered_and_the_client_giving_up_is_logged() {
    let (server, client) = server();
    server.put(BUCKET, "k", "v");
    server.fail_next_op(Op::GetObject, 1, Fault::Hang);
    let waited = tokio::time::timeout(
        Duration::from_millis(500),
        client.request("GET", BUCKET, "k").try_send(),
    )
    .await;
    assert!(waited.is_err(), "answered: {waited:?}");
    server.settled_requests(Duration::from_secs(2)).await;
    let gave_up = server.requests_cut_by_client();
    assert_eq!(gave_up.len(), 1, "{gave_up:#?}");
    assert_eq!(gave_up[0].fault, Some(Fault::Hang));
    assert_eq!(gave_up[0].outcome, Outcome::CutByClient(Phase::Waiting));
    assert_eq!(gave_up[0].status, None);
}

/// A hung upload is read whole, then answered (and applied) once the hang is released.
#[tokio::test]
async fn released_hang_is_answered() {
    let (server, client) = server();
    server.fail_next_op(Op::PutObject, 1, Fault::Hang);
    let put = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .request("PUT", BUCKET, "k")
                .body(data(300 * KIB))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!put.is_finished());
    assert_eq!(server.get(BUCKET, "k"), None);
    let hung = record_of(&server.requests(), Op::PutObject);
    assert_eq!(hung.outcome, Outcome::InFlight);
    server.clear_faults();
    assert_eq!(put.await.expect("PUT task").status, 200);
    assert_eq!(server.get(BUCKET, "k").map(|b| b.len()), Some(300 * KIB));
    let put = record_of(
        &server.settled_requests(Duration::from_secs(2)).await,
        Op::PutObject,
    );
    assert_eq!(put.outcome, Outcome::Answered);
    assert!(put.request_body_complete);
}

/// A lost answer: the PUT is stored, the client sees only a broken connection.
#[tokio::test]
async fn lost_answer_stores_the_put_but_the_client_sees_a_broken_connection() {
    let (server, client) = server();
    server.fail_next_op(Op::PutObject, 1, Fault::LoseAnswer);
    let put = client
        .request("PUT", BUCKET, "k")
        .body("stored")
        .try_send()
        .await;
    assert!(put.is_err(), "{put:?}");
    assert_eq!(server.get(BUCKET, "k").as_deref(), Some(&b"stored"[..]));
    let put = record_of(
        &server.settled_requests(Duration::from_secs(2)).await,
        Op::PutObject,
    );
    assert_eq!(put.fault, Some(Fault::LoseAnswer));
    assert_eq!(put.outcome, Outcome::CutByServer);
    assert_eq!(put.status, None);
    assert!(put.request_body_complete);
}

/// Lost answers of CopyObject, CompleteMultipartUpload and DeleteObject: each is applied.
#[tokio::test]
async fn lost_answers_of_copy_complete_and_delete_are_applied() {
    let (server, client) = server();
    server.put(BUCKET, "src", "source");
    server.fail_next_op(Op::CopyObject, 1, Fault::LoseAnswer);
    server.fail_next_op(Op::CompleteMultipartUpload, 1, Fault::LoseAnswer);
    server.fail_next_op(Op::DeleteObject, 1, Fault::LoseAnswer);

    let copy = client
        .request("PUT", BUCKET, "copy")
        .header("x-amz-copy-source", &format!("/{BUCKET}/src"))
        .try_send()
        .await;
    assert!(copy.is_err(), "{copy:?}");
    assert_eq!(server.get(BUCKET, "copy").as_deref(), Some(&b"source"[..]));

    let start = client
        .request("POST", BUCKET, "mp")
        .query("uploads", "")
        .send()
        .await;
    let id = start.xml_value("UploadId").expect("UploadId");
    let part = client
        .request("PUT", BUCKET, "mp")
        .query("partNumber", "1")
        .query("uploadId", &id)
        .body("whole")
        .send()
        .await;
    let etag = part.header("etag").expect("ETag").to_owned();
    let complete = client
        .request("POST", BUCKET, "mp")
        .query("uploadId", &id)
        .body(format!(
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
        ))
        .try_send()
        .await;
    assert!(complete.is_err(), "{complete:?}");
    assert_eq!(server.get(BUCKET, "mp").as_deref(), Some(&b"whole"[..]));

    let delete = client.request("DELETE", BUCKET, "src").try_send().await;
    assert!(delete.is_err(), "{delete:?}");
    assert_eq!(server.get(BUCKET, "src"), None);
}

// ---- rates and outages ------------------------------------------------------------------

/// A 10 % SlowDown rate fails about 40 of 400 requests, each with S3's XML error.
#[tokio::test]
async fn error_rate_fails_about_the_given_fraction() {
    let (server, client) = server();
    server.put(BUCKET, "k", "v");
    server.seed_faults(20261204);
    server.fail_rate(0.1, Fault::SlowDown);
    let mut failed = 0;
    for _ in 0..400 {
        let get = client.request("GET", BUCKET, "k").send().await;
        if get.status == 503 {
            assert_eq!(get.xml_value("Code").as_deref(), Some("SlowDown"));
            failed += 1;
        } else {
            assert_eq!(get.status, 200);
        }
    }
    // Binomial(400, 0.1): mean 40, standard deviation 6; this band is ±4 of them.
    assert!((16..=64).contains(&failed), "{failed} of 400 failed");
    let logged = server.requests();
    assert_eq!(
        logged
            .iter()
            .filter(|r| r.fault == Some(Fault::SlowDown))
            .count(),
        failed
    );
}

/// A rate set for one operation leaves the others alone.
#[tokio::test]
async fn error_rate_applies_only_to_its_operation() {
    let (server, client) = server();
    server.put(BUCKET, "k", "v");
    server.fail_rate_op(Op::PutObject, 1.0, Fault::InternalError);
    let put = client.request("PUT", BUCKET, "k").body("w").send().await;
    assert_eq!(put.status, 500);
    assert_eq!(put.xml_value("Code").as_deref(), Some("InternalError"));
    assert_eq!(client.request("GET", BUCKET, "k").send().await.status, 200);
    assert_eq!(server.get(BUCKET, "k").as_deref(), Some(&b"v"[..]));
}

/// A timed outage answers every request with its fault, then ends by itself; an open-ended
/// one lasts until ended.
#[tokio::test]
async fn outage_answers_every_request_until_it_ends() {
    let (server, client) = server();
    server.put(BUCKET, "k", "v");
    server.outage(Fault::SlowDown, Some(Duration::from_millis(400)));
    assert_eq!(client.request("GET", BUCKET, "k").send().await.status, 503);
    assert_eq!(client.request("HEAD", BUCKET, "").send().await.status, 503);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(client.request("GET", BUCKET, "k").send().await.status, 200);

    server.outage(Fault::InternalError, None);
    assert_eq!(client.request("GET", BUCKET, "k").send().await.status, 500);
    server.end_outage();
    assert_eq!(client.request("GET", BUCKET, "k").send().await.status, 200);
}

/// While connections are refused the port answers nothing, open connections included; after
/// the refusal the same port serves again.
#[tokio::test]
async fn refused_connections_are_refused_until_the_outage_ends() {
    let (server, client) = server();
    server.put(BUCKET, "k", "v");
    // Leaves a pooled connection open for the client to try during the outage.
    assert_eq!(client.request("GET", BUCKET, "k").send().await.status, 200);
    server.refuse_connections(None);
    let refused = std::net::TcpStream::connect(server.addr()).map(|_| ());
    assert_eq!(
        refused.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
    assert!(client.request("GET", BUCKET, "k").try_send().await.is_err());
    server.end_outage();
    assert_eq!(client.request("GET", BUCKET, "k").send().await.status, 200);

    server.refuse_connections(Some(Duration::from_millis(300)));
    assert!(std::net::TcpStream::connect(server.addr()).is_err());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(client.request("GET", BUCKET, "k").send().await.status, 200);
}

/// `clear_faults` releases hangs and switches off queued faults, rates, outages, latency and
/// bandwidth limits.
#[tokio::test]
async fn clear_faults_switches_everything_off() {
    let (server, client) = server();
    server.put(BUCKET, "k", data(256 * KIB));
    server.outage(Fault::Hang, None);
    let hung = tokio::spawn({
        let client = client.clone();
        async move { client.request("HEAD", BUCKET, "k").send().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.fail_next(10, Fault::DropConnection);
    server.fail_rate(1.0, Fault::SlowDown);
    server.set_latency(Duration::from_secs(5));
    server.set_upload_bandwidth(Some(KIB as u64));
    server.set_download_bandwidth(Some(KIB as u64));
    server.clear_faults();
    let t0 = Instant::now();
    let head = tokio::time::timeout(Duration::from_secs(1), hung).await;
    let head = head.expect("released").expect("HEAD task");
    let get = client.request("GET", BUCKET, "k").send().await;
    let put = client
        .request("PUT", BUCKET, "p")
        .body(data(64 * KIB))
        .send()
        .await;
    assert_eq!((head.status, get.status, put.status), (200, 200, 200));
    assert_eq!(get.body.len(), 256 * KIB);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
}

/// Faults switched on one server do not reach another.
#[tokio::test]
async fn faults_stay_with_their_server() {
    let (broken, broken_client) = server();
    let (healthy, healthy_client) = server();
    broken.outage(Fault::InternalError, None);
    broken.set_download_bandwidth(Some(1));
    assert_eq!(
        broken_client
            .request("HEAD", BUCKET, "")
            .send()
            .await
            .status,
        500
    );
    assert_eq!(
        healthy_client
            .request("HEAD", BUCKET, "")
            .send()
            .await
            .status,
        200
    );
    assert_eq!(healthy.requests()[0].fault, None);
}

// ---- the request log --------------------------------------------------------------------

/// Each record tells the bytes each way, whether the body came whole, the outcome and the
/// duration.
#[tokio::test]
async fn request_log_tells_how_each_exchange_went() {
    let (server, client) = server();
    assert_eq!(
        client
            .request("PUT", BUCKET, "k")
            .body(data(1000))
            .send()
            .await
            .status,
        200
    );
    assert_eq!(
        client.request("GET", BUCKET, "k").send().await.body.len(),
        1000
    );
    let requests = server.settled_requests(Duration::from_secs(2)).await;
    let put = record_of(&requests, Op::PutObject);
    assert_eq!(
        (
            put.bytes_received,
            put.bytes_sent,
            put.request_body_complete
        ),
        (1000, 0, true)
    );
    let get = record_of(&requests, Op::GetObject);
    assert_eq!(
        (
            get.bytes_received,
            get.bytes_sent,
            get.request_body_complete
        ),
        (0, 1000, true)
    );
    for r in [&put, &get] {
        assert_eq!(
            (r.status, r.outcome, r.fault),
            (Some(200), Outcome::Answered, None)
        );
        assert!(r.duration.is_some_and(|d| d < Duration::from_secs(5)));
    }
    assert!(server.requests_cut_by_client().is_empty());
}

/// Answers with no body on the wire (to HEAD, 304) are logged as answered, not as cut.
#[tokio::test]
async fn bodiless_answers_are_logged_as_answered() {
    let (server, client) = server();
    server.put(BUCKET, "k", "v");
    let etag = server.object_info(BUCKET, "k").expect("k").etag;
    assert_eq!(client.request("HEAD", BUCKET, "k").send().await.status, 200);
    assert_eq!(
        client
            .request("HEAD", BUCKET, "missing")
            .send()
            .await
            .status,
        404
    );
    let not_modified = client
        .request("GET", BUCKET, "k")
        .header("if-none-match", &etag)
        .send()
        .await;
    assert_eq!(not_modified.status, 304);
    let requests = server.settled_requests(Duration::from_secs(2)).await;
    assert!(
        requests.iter().all(|r| r.outcome == Outcome::Answered),
        "{requests:#?}"
    );
}

/// A client that gives up mid-upload over a slow link is logged as cut by the client,
/// mid-body.
#[tokio::test]
async fn client_giving_up_mid_upload_is_logged() {
    let (server, client) = server();
    server.set_upload_bandwidth(Some(MIB as u64));
    let put = tokio::time::timeout(
        Duration::from_millis(300),
        client
            .request("PUT", BUCKET, "k")
            .body(data(2 * MIB))
            .try_send(),
    )
    .await;
    assert!(put.is_err(), "finished: {put:?}");
    server.settled_requests(Duration::from_secs(5)).await;
    let gave_up = server.requests_cut_by_client();
    assert_eq!(gave_up.len(), 1, "{gave_up:#?}");
    assert_eq!(gave_up[0].outcome, Outcome::CutByClient(Phase::RequestBody));
    assert!(!gave_up[0].request_body_complete);
    assert!(gave_up[0].bytes_received < 2 * MIB as u64);
    assert_eq!(server.get(BUCKET, "k"), None);
}
