//! Server-side encryption, storage class and ACL through a real mount: SSE-C objects
//! written, read back, renamed and multipart-copied with the customer key, which never
//! reaches the log even at `RUST_LOG=trace`; SSE-KMS, storage class and canned ACL on
//! PutObject, on multipart uploads and on copies; and the one-line errors of settings that
//! cannot work.

mod support;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use md5::Digest as _;
use s3rolefs::credentials::{Credentials, CredentialsCell, Secret};
use s3rolefs::s3::client::{ClientConfig, S3Client};
use s3rolefs::s3::settings::{CustomerKey, Encryption};
use s3rolefs::s3::{GetObjectParams, ObjectClient, ObjectSettings, S3Error};
use support::{run_mount_expect_failure, Mount, MountCommand, Op, TestServer};

const MIB: usize = 1024 * 1024;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A server with bucket `bkt`, a fresh random SSE-C key and the file holding it (raw).
fn sse_c_setup() -> (TestServer, [u8; 32], tempfile::TempDir) {
    let server = TestServer::start();
    server.create_bucket("bkt");
    let key: [u8; 32] = rand::random();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("sse-c.key"), key).unwrap();
    (server, key, dir)
}

fn key_arg(dir: &tempfile::TempDir) -> String {
    dir.path().join("sse-c.key").display().to_string()
}

/// An independent client of the test server, with the given object settings.
async fn client(server: &TestServer, settings: ObjectSettings) -> S3Client {
    let credentials = Credentials {
        access_key_id: server.access_key().to_string(),
        secret_access_key: Secret::new(server.secret_key()),
        session_token: None,
        expiry: None,
        source: "test".into(),
    };
    let config = ClientConfig {
        bucket: "bkt".into(),
        endpoint: Some(server.endpoint()),
        region: Some(server.region().to_string()),
        region_hint: None,
        force_path_style: true,
        provider: Default::default(),
        variants: Default::default(),
        access: Default::default(),
        credentials: Some(Arc::new(CredentialsCell::new(credentials))),
        max_attempts: 1,
        retry_timeout: Duration::ZERO,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(10),
        ca_bundle: None,
        user_agent: "s3rolefs-tests".into(),
        clock: Default::default(),
    };
    S3Client::connect(config)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
        .with_object_settings(settings)
}

fn get(key: &str) -> GetObjectParams {
    GetObjectParams {
        key: key.into(),
        ..Default::default()
    }
}

fn write_in_chunks(path: &Path, data: &[u8]) {
    let mut f = fs::File::create(path).unwrap();
    for chunk in data.chunks(MIB) {
        f.write_all(chunk).unwrap();
    }
    f.sync_all().unwrap();
}

/// An SSE-C file written through the mount is stored under the key's MD5, reads back
/// through a fresh mount, and cannot be read without the key or with another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_c_object_round_trips_and_needs_its_key() {
    let (server, key, dir) = sse_c_setup();
    let data = pattern(300_000, 1);
    {
        let m = Mount::start(&server, "bkt", &["--sse-c-key-file", &key_arg(&dir)]);
        fs::write(m.path().join("secret.bin"), &data).unwrap();
    }
    let stored = server.stored_with("bkt", "secret.bin").unwrap();
    assert_eq!(
        stored.customer_key_md5,
        Some(b64(&md5::Md5::digest(key))),
        "the server did not store the SSE-C key's MD5"
    );
    assert_eq!(stored.sse, None);

    server.reset_counters();
    let m = Mount::start(&server, "bkt", &["--sse-c-key-file", &key_arg(&dir)]);
    assert_eq!(fs::read(m.path().join("secret.bin")).unwrap(), data);
    assert!(server.count(Op::GetObject) > 0, "the read never reached S3");

    let plain = client(&server, ObjectSettings::default()).await;
    match plain.get_object(get("secret.bin")).await {
        Err(S3Error::Service {
            status: 400, code, ..
        }) => assert_eq!(code, "InvalidRequest"),
        other => panic!("a GET without the key must fail with InvalidRequest: {other:?}"),
    }
    let other_key = CustomerKey::from_file_content(&[0x5a; 32]).unwrap();
    let wrong = client(
        &server,
        ObjectSettings {
            encryption: Encryption::Customer(other_key),
            ..Default::default()
        },
    )
    .await;
    match wrong.get_object(get("secret.bin")).await {
        Err(S3Error::AccessDenied { .. }) => {}
        other => panic!("a GET with another key must be AccessDenied: {other:?}"),
    }
}

/// With SSE-C, renames copy with the source's key, also as a multipart copy above the
/// single-copy limit, and a large file streams as parts that all carry the key.
#[test]
fn sse_c_survives_multipart_upload_and_rename() {
    let (server, key, dir) = sse_c_setup();
    let m = Mount::start(
        &server,
        "bkt",
        &[
            "--sse-c-key-file",
            &key_arg(&dir),
            "--part-size",
            "5M",
            "--single-copy-limit",
            "5M",
        ],
    );
    let big = pattern(12 * MIB, 2);
    write_in_chunks(&m.path().join("big.bin"), &big);
    assert!(server.count(Op::UploadPart) >= 2, "{:?}", server.counts());
    fs::write(m.path().join("small.txt"), b"small and secret").unwrap();

    fs::rename(m.path().join("big.bin"), m.path().join("moved.bin")).unwrap();
    fs::rename(m.path().join("small.txt"), m.path().join("moved.txt")).unwrap();
    assert!(
        server.count(Op::UploadPartCopy) >= 3,
        "{:?}",
        server.counts()
    );
    assert!(server.count(Op::CopyObject) >= 1, "{:?}", server.counts());

    let md5 = Some(b64(&md5::Md5::digest(key)));
    for name in ["moved.bin", "moved.txt"] {
        assert_eq!(
            server.stored_with("bkt", name).unwrap().customer_key_md5,
            md5,
            "{name} lost its SSE-C key on the way"
        );
    }
    assert_eq!(server.get("bkt", "moved.bin").unwrap().as_ref(), &big[..]);
    assert_eq!(
        fs::read(m.path().join("moved.txt")).unwrap(),
        b"small and secret"
    );
    assert_eq!(
        server.keys("bkt"),
        vec!["moved.bin".to_string(), "moved.txt".to_string()]
    );
    assert_eq!(server.open_multipart_uploads("bkt"), 0);
}

/// At `RUST_LOG=trace` the mount's log shows neither the SSE-C key (raw or base64) nor the
/// secret access key, across writes, reads and copies.
#[test]
fn sse_c_key_never_reaches_the_trace_log() {
    let (server, key, dir) = sse_c_setup();
    // The base64 form of the key file, so both spellings are exercised across tests.
    fs::write(dir.path().join("sse-c.key"), format!("{}\n", b64(&key))).unwrap();
    let m = MountCommand::new(&server, "bkt")
        .args(&[
            "--sse-c-key-file",
            &key_arg(&dir),
            "--part-size",
            "5M",
            "--single-copy-limit",
            "5M",
        ])
        .env("RUST_LOG", "trace")
        .start();
    let data = pattern(11 * MIB, 3);
    write_in_chunks(&m.path().join("a.bin"), &data);
    fs::rename(m.path().join("a.bin"), m.path().join("b.bin")).unwrap();
    assert_eq!(fs::read(m.path().join("b.bin")).unwrap(), data);
    // An unreadable (non-UTF-8) log reads as empty and fails the length check below: raw
    // key bytes cannot hide that way.
    let text = m.stderr_log();
    assert!(
        text.lines().count() > 50,
        "the trace log is empty or short; is RUST_LOG=trace honoured?\n{text}"
    );
    assert!(
        !text.contains(&b64(&key)),
        "the base64 SSE-C key is in the log"
    );
    assert!(
        !text.contains(&hex::encode(key)),
        "the hex SSE-C key is in the log"
    );
    assert!(
        !text.as_bytes().windows(key.len()).any(|w| w == key),
        "the raw SSE-C key is in the log"
    );
    assert!(
        !text.contains(server.secret_key()),
        "the secret access key is in the log"
    );
}

/// SSE-KMS with a key id, a storage class and a canned ACL reach the server on PutObject,
/// on a multipart upload and on the copy a rename makes.
#[test]
fn kms_storage_class_and_acl_reach_every_write() {
    let server = TestServer::start();
    server.create_bucket("bkt");
    let m = Mount::start(
        &server,
        "bkt",
        &[
            "--sse",
            "aws:kms",
            "--sse-kms-key-id",
            "alias/s3rolefs-test",
            "--storage-class",
            "STANDARD_IA",
            "--acl",
            "bucket-owner-full-control",
            "--part-size",
            "5M",
        ],
    );
    fs::write(m.path().join("small.txt"), b"hello").unwrap();
    write_in_chunks(&m.path().join("big.bin"), &pattern(12 * MIB, 4));
    assert!(server.count(Op::CreateMultipartUpload) >= 1);
    fs::rename(m.path().join("small.txt"), m.path().join("renamed.txt")).unwrap();
    assert!(server.count(Op::CopyObject) >= 1);
    for key in ["renamed.txt", "big.bin"] {
        let stored = server.stored_with("bkt", key).unwrap();
        assert_eq!(stored.sse.as_deref(), Some("aws:kms"), "{key}: {stored:?}");
        assert_eq!(
            stored.kms_key_id.as_deref(),
            Some("alias/s3rolefs-test"),
            "{key}: {stored:?}"
        );
        assert_eq!(
            stored.storage_class.as_deref(),
            Some("STANDARD_IA"),
            "{key}"
        );
        assert_eq!(
            stored.acl.as_deref(),
            Some("bucket-owner-full-control"),
            "{key}"
        );
        assert_eq!(stored.customer_key_md5, None);
    }
}

/// SSE-S3 (`--sse AES256`) is sent on writes only: reads of the object still work.
#[test]
fn sse_s3_objects_read_back() {
    let server = TestServer::start();
    server.create_bucket("bkt");
    let m = Mount::start(&server, "bkt", &["--sse", "AES256"]);
    fs::write(m.path().join("f.txt"), b"encrypted at rest").unwrap();
    assert_eq!(
        server.stored_with("bkt", "f.txt").unwrap().sse.as_deref(),
        Some("AES256")
    );
    drop(m);
    let m = Mount::start(&server, "bkt", &["--sse", "AES256"]);
    assert_eq!(
        fs::read(m.path().join("f.txt")).unwrap(),
        b"encrypted at rest"
    );
}

/// Settings that cannot work stop the mount with one line naming the fix, never the key.
#[test]
fn impossible_settings_fail_with_one_line() {
    let (server, _key, dir) = sse_c_setup();
    let mnt = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--sse-kms-key-id", "k"], "needs --sse aws:kms"),
        (&["--sse", "AES128"], "use AES256"),
        (
            &["--sse", "AES256", "--sse-c-key-file", &key_arg(&dir)],
            "cannot go together",
        ),
        (&["--storage-class", "DEEP_ARCHIVE"], "restore"),
    ];
    for (args, expected) in cases {
        let (code, stderr) = run_mount_expect_failure(&server, "bkt", mnt.path(), args);
        assert_ne!(code, 0);
        let line = stderr
            .lines()
            .find(|l| l.starts_with("s3rolefs: "))
            .unwrap_or_else(|| panic!("{args:?}: no error line in:\n{stderr}"));
        assert!(line.contains(expected), "{args:?}: {line}");
    }
    fs::write(dir.path().join("sse-c.key"), b"too short").unwrap();
    let (_, stderr) = run_mount_expect_failure(
        &server,
        "bkt",
        mnt.path(),
        &["--sse-c-key-file", &key_arg(&dir)],
    );
    assert!(stderr.contains("32-byte"), "{stderr}");
    assert!(
        !stderr.contains("too short"),
        "the key file's content leaked: {stderr}"
    );
}
