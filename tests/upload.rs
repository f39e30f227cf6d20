//! The write engine (`upload::OpenWriter`) over HTTP against the test S3 server: a large
//! file streams as real multipart parts, and an injected UploadPart failure fails the flush,
//! leaves no upload open, keeps the data locally, and a later flush succeeds.

mod support;

use std::sync::Arc;
use std::time::Duration;

use s3rolefs::credentials::{Credentials, CredentialsCell, Secret};
use s3rolefs::private_dir::PrivateDir;
use s3rolefs::s3::client::{ClientConfig, S3Client};
use s3rolefs::upload::journal::BucketId;
use s3rolefs::upload::{Journal, OpenWriter, Origin, UploadError, WriterConfig};
use support::{Fault, Op, TestServer};

const BUCKET: &str = "bucket";
const MIB: usize = 1024 * 1024;

async fn connect(server: &TestServer) -> Arc<S3Client> {
    server.create_bucket(BUCKET);
    let credentials = Credentials {
        access_key_id: server.access_key().to_string(),
        secret_access_key: Secret::new(server.secret_key()),
        session_token: None,
        expiry: None,
        source: "test".into(),
    };
    let config = ClientConfig {
        bucket: BUCKET.to_string(),
        endpoint: Some(server.endpoint()),
        region: Some(server.region().to_string()),
        region_hint: None,
        force_path_style: false,
        provider: Default::default(),
        variants: Default::default(),
        access: Default::default(),
        credentials: Some(Arc::new(CredentialsCell::new(credentials))),
        max_attempts: 3,
        retry_timeout: Duration::ZERO,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(30),
        ca_bundle: None,
        user_agent: "s3rolefs-tests".into(),
        clock: Default::default(),
    };
    Arc::new(
        S3Client::connect(config)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}")),
    )
}

fn writer_config(dir: &tempfile::TempDir, part_size: usize) -> Arc<WriterConfig> {
    let journal = Journal::new(
        PrivateDir::create(dir.path()).unwrap(),
        BucketId {
            endpoint: None,
            bucket: BUCKET.into(),
        },
    );
    let mut config = WriterConfig::new(journal, 1 << 30);
    config.part_size = part_size as u64;
    config.concurrency = 4;
    Arc::new(config)
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

/// Writes `bytes` sequentially in 1 MiB requests, as the kernel sends them.
async fn write_all(w: &OpenWriter<S3Client>, bytes: &[u8]) {
    for (i, chunk) in bytes.chunks(MIB).enumerate() {
        let written = w
            .write((i * MIB) as u64, bytes::Bytes::copy_from_slice(chunk))
            .await;
        assert_eq!(written.unwrap_or_else(|e| panic!("{e}")), chunk.len());
    }
}

/// 50 MiB written sequentially stream as 5 MiB parts; the object is whole and no upload is
/// left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_mib_stream_as_multipart_parts() {
    let server = TestServer::start();
    let s3 = connect(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let w = OpenWriter::new(
        s3,
        "big/file.bin".into(),
        Origin::New,
        Default::default(),
        writer_config(&dir, 5 * MIB),
    );
    let body = data(50 * MIB);
    write_all(&w, &body).await;
    assert!(
        server.count(Op::UploadPart) >= 5,
        "parts go up while writing"
    );
    let meta = w.flush().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(meta.map(|m| m.size), Some(body.len() as u64));
    assert_eq!(server.count(Op::UploadPart), 10);
    assert_eq!(server.count(Op::PutObject), 0);
    assert!(server.get(BUCKET, "big/file.bin").unwrap() == body[..]);
    assert_eq!(server.open_multipart_uploads(BUCKET), 0);
}

/// UploadPart failing past the client's retries fails the flush with the local copy's path,
/// and no object appears; the multipart upload is kept, and once the server recovers the
/// next flush resumes it and leaves no upload open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_part_keeps_the_data_and_a_later_flush_succeeds() {
    let server = TestServer::start();
    server.set_min_part_size(256 * 1024);
    let s3 = connect(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let w = OpenWriter::new(
        s3,
        "doomed.bin".into(),
        Origin::New,
        Default::default(),
        writer_config(&dir, 256 * 1024),
    );
    server.fail_next_op(Op::UploadPart, 1_000, Fault::InternalError);
    let body = data(3 * MIB + 12_345);
    write_all(&w, &body).await;
    let err = w.flush().await.expect_err("the flush must fail");
    assert!(matches!(err, UploadError::S3 { .. }), "{err}");
    let staging = err.staging_path().expect("a staging path").to_path_buf();
    assert!(
        std::fs::read(&staging).unwrap() == body,
        "staging holds every byte"
    );
    assert_eq!(
        server.open_multipart_uploads(BUCKET),
        1,
        "kept for the next flush to resume"
    );
    assert!(
        server.get(BUCKET, "doomed.bin").is_none(),
        "no partial object"
    );

    server.clear_faults();
    w.flush().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(server.get(BUCKET, "doomed.bin").unwrap() == body[..]);
    assert_eq!(server.open_multipart_uploads(BUCKET), 0);
    assert!(!w.is_dirty());
    drop(w);
    assert!(!staging.exists(), "the staging copy goes once uploaded");
}
