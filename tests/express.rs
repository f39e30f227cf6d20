//! S3 Express One Zone directory buckets, against the test server in directory-bucket mode
//! (`support::s3server::express`): sessions from `CreateSession` signing every request with
//! `x-amz-s3session-token`, shuffled listings without `StartAfter`, `RenameObject`.
//!
//! The client-level tests prove the session refresher (renewal ahead of expiry, one forced
//! renewal for a burst of `ExpiredToken` answers); the mount tests prove the issue's "done
//! when": a mount reads, writes, lists (sorted), renames atomically, and survives sessions
//! that expire every 30 s for two minutes with zero errors.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use s3rolefs::credentials::{Credentials, CredentialsCell, Secret};
use s3rolefs::s3::client::{ClientConfig, S3Client};
use s3rolefs::s3::{ListObjectsParams, ObjectClient, PutObjectParams};
use s3rolefs::sigv4::sha256_hex;
use support::data::pattern;
use support::{Mount, Op, TestServer};

const BUCKET: &str = "data--usw2-az1--x-s3";

/// A server in directory-bucket mode whose sessions live `lifetime`, with the bucket.
fn express_server(lifetime: Duration) -> TestServer {
    let server = TestServer::start();
    server.set_directory_buckets(Some(lifetime));
    server.create_bucket(BUCKET);
    server
}

fn config(server: &TestServer) -> ClientConfig {
    ClientConfig {
        bucket: BUCKET.to_string(),
        endpoint: Some(server.endpoint()),
        region: Some(server.region().to_string()),
        region_hint: None,
        force_path_style: false,
        provider: Default::default(),
        variants: Default::default(),
        access: Default::default(),
        credentials: Some(Arc::new(CredentialsCell::new(Credentials {
            access_key_id: server.access_key().to_string(),
            secret_access_key: Secret::new(server.secret_key()),
            session_token: None,
            expiry: None,
            source: "test".into(),
        }))),
        max_attempts: 3,
        retry_timeout: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(10),
        ca_bundle: None,
        user_agent: "s3rolefs-tests".into(),
        clock: Default::default(),
    }
}

fn put(key: &str, body: &[u8]) -> PutObjectParams {
    PutObjectParams {
        key: key.to_string(),
        body: Bytes::copy_from_slice(body),
        metadata: Default::default(),
    }
}

/// Every request but `CreateSession` was signed with a session key (never the server's
/// own), and `CreateSession` with the server's key; none carried `x-amz-security-token`.
fn assert_session_signed(server: &TestServer) {
    for r in server.requests() {
        assert!(r.security_token.is_none(), "{r:?}");
        let key = r.access_key.clone().unwrap_or_default();
        if r.op == Op::CreateSession {
            assert_eq!(key, server.access_key(), "{r:?}");
        } else {
            assert!(key.starts_with("ASIAEXPRESS"), "not a session key: {r:?}");
        }
    }
}

/// The first `CreateSession` happens at connect, and a session is renewed ahead of its
/// expiry: with 4 s sessions, requests 6 s later still succeed, after renewals.
#[tokio::test]
async fn sessions_are_renewed_ahead_of_expiry() {
    let server = express_server(Duration::from_secs(4));
    let client = S3Client::connect(config(&server)).await.unwrap();
    assert!(client.is_directory_bucket());
    assert_eq!(server.count(Op::CreateSession), 1);
    client.put_object(put("a", b"one")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let status = client.session_status().unwrap().get();
    assert!(status.refreshes >= 1, "{status:?}");
    let before = server.count(Op::CreateSession);
    client.head_object("a").await.unwrap();
    assert_eq!(
        server.count(Op::CreateSession),
        before,
        "a renewed session needs no CreateSession on the request path"
    );
    assert_session_signed(&server);
}

/// Sessions that end early (`ExpiredToken`) are renewed once for a whole burst of
/// rejected requests, and each request is retried with the new session.
#[tokio::test]
async fn expired_token_forces_one_renewal_for_a_burst() {
    let server = express_server(Duration::from_secs(300));
    let client = Arc::new(S3Client::connect(config(&server)).await.unwrap());
    client.put_object(put("k", b"v")).await.unwrap();
    server.expire_directory_sessions();
    let before = server.count(Op::CreateSession);
    let burst = (0..8).map(|_| {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.head_object("k").await })
    });
    for r in futures_util::future::join_all(burst).await {
        r.unwrap().unwrap();
    }
    assert_eq!(server.count(Op::CreateSession), before + 1);
    assert_session_signed(&server);
}

/// When the mount's own credentials rotate, the next session is asked for with the new
/// ones: the old key can be gone from the server without a single failed request.
#[tokio::test]
async fn rotated_base_credentials_sign_the_next_session() {
    let server = express_server(Duration::from_secs(300));
    // Keys of the mount's own besides the server's (which the server re-signs with).
    let key = |id: &str, secret: &str| Credentials {
        access_key_id: id.into(),
        secret_access_key: Secret::new(secret),
        session_token: None,
        expiry: None,
        source: "test".into(),
    };
    server.add_key("AKIAFIRSTKEY00000001", "first-secret");
    let mut cfg = config(&server);
    let base = Arc::new(CredentialsCell::new(key(
        "AKIAFIRSTKEY00000001",
        "first-secret",
    )));
    cfg.credentials = Some(Arc::clone(&base));
    let client = S3Client::connect(cfg).await.unwrap();
    client.put_object(put("k", b"v")).await.unwrap();

    server.add_key("AKIAROTATEDKEY000001", "rotated-secret");
    base.store(key("AKIAROTATEDKEY000001", "rotated-secret"));
    assert!(server.remove_key("AKIAFIRSTKEY00000001"));
    server.expire_directory_sessions();
    client.head_object("k").await.unwrap();
    let sessions: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.op == Op::CreateSession)
        .filter_map(|r| r.access_key)
        .collect();
    assert_eq!(
        sessions,
        ["AKIAFIRSTKEY00000001", "AKIAROTATEDKEY000001"],
        "CreateSession signers"
    );
}

/// A listing of several pages works although the server refuses `StartAfter` (the
/// side-by-side listing is not used), and sorted although each page comes shuffled.
#[tokio::test]
async fn listings_page_without_start_after_and_come_sorted() {
    let server = express_server(Duration::from_secs(300));
    let keys: Vec<String> = (0..2500).map(|i| format!("big/t{i:05}")).collect();
    server.put_many(
        BUCKET,
        keys.iter().map(|k| (k.clone(), Bytes::from_static(b"x"))),
    );
    let client = S3Client::connect(config(&server)).await.unwrap();
    let listing = s3rolefs::s3::listing::list_all(
        &client,
        &ListObjectsParams {
            prefix: "big/".into(),
            delimiter: Some("/".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut got: Vec<String> = listing.objects.into_iter().map(|o| o.key).collect();
    got.sort();
    assert_eq!(got, keys);
    let refused = server
        .requests()
        .into_iter()
        .filter(|r| r.status == Some(400))
        .count();
    assert_eq!(refused, 0, "a listing asked for StartAfter");
}

/// Names in a directory of the mount, in the order `readdir` gave them.
fn names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Write, read (SHA-256-equal), list (sorted though the server shuffles), and rename with
/// one RenameObject and no copy (a directory: one per key), through a real mount of a
/// directory bucket.
#[test]
fn a_mount_reads_writes_lists_and_renames_atomically() {
    let server = express_server(Duration::from_secs(30));
    let listed: Vec<String> = (0..40).map(|i| format!("n{i:02}")).collect();
    server.put_many(
        BUCKET,
        listed
            .iter()
            .map(|n| (format!("dir/{n}"), Bytes::from(n.clone()))),
    );
    let m = Mount::start(&server, BUCKET, &[]);
    let root = m.path();

    let small = b"hello, directory bucket\n".to_vec();
    let large = pattern(3 << 20, 5);
    fs::write(root.join("small.txt"), &small).unwrap();
    fs::write(root.join("large.bin"), &large).unwrap();
    assert_eq!(fs::read(root.join("small.txt")).unwrap(), small);
    assert_eq!(
        sha256_hex(&fs::read(root.join("large.bin")).unwrap()),
        sha256_hex(&large)
    );
    assert_eq!(
        sha256_hex(&server.get(BUCKET, "large.bin").unwrap()),
        sha256_hex(&large)
    );

    for _ in 0..3 {
        assert_eq!(names(&root.join("dir")), listed, "readdir must come sorted");
    }

    // An append to an existing object, and a chmod (a copy of the object onto itself).
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(root.join("small.txt"))
        .unwrap();
    f.write_all(b"more\n").unwrap();
    drop(f);
    let appended = [small.as_slice(), b"more\n"].concat();
    assert_eq!(fs::read(root.join("small.txt")).unwrap(), appended);
    assert_eq!(server.get(BUCKET, "small.txt").unwrap(), appended);
    fs::set_permissions(root.join("small.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        fs::metadata(root.join("small.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    server.reset_counters();
    fs::rename(root.join("large.bin"), root.join("dir/moved.bin")).unwrap();
    assert_eq!(server.count(Op::RenameObject), 1);
    assert_eq!(server.count(Op::CopyObject), 0);
    assert_eq!(server.count(Op::UploadPartCopy), 0);
    assert_eq!(server.count(Op::DeleteObject), 0);
    assert!(server.get(BUCKET, "large.bin").is_none());
    assert!(!root.join("large.bin").exists());
    assert_eq!(
        sha256_hex(&fs::read(root.join("dir/moved.bin")).unwrap()),
        sha256_hex(&large)
    );

    // A directory: each key renamed on its own (41 RenameObjects), nothing copied.
    server.reset_counters();
    fs::rename(root.join("dir"), root.join("moved")).unwrap();
    assert_eq!(server.count(Op::RenameObject), 41);
    assert_eq!(server.count(Op::CopyObject), 0);
    assert_eq!(server.count(Op::DeleteObjects), 0);
    let mut expected = listed.clone();
    expected.push("moved.bin".into());
    expected.sort();
    assert_eq!(names(&root.join("moved")), expected);
    assert!(!root.join("dir").exists());
    assert_eq!(fs::read(root.join("moved/n07")).unwrap(), b"n07");
    assert_session_signed(&server);
    drop(m);
}

/// An access point for a directory bucket (`NAME--ZONEID--xa-s3`) mounts as the directory
/// bucket it serves: sessions from `CreateSession` on the access point sign every request,
/// and a file written reads back SHA-256-equal, in the mount and in the store.
#[test]
fn an_access_point_for_a_directory_bucket_mounts_like_one() {
    const ACCESS_POINT: &str = "shared--usw2-az1--xa-s3";
    let server = TestServer::start();
    server.set_directory_buckets(Some(Duration::from_secs(30)));
    server.create_bucket(ACCESS_POINT);
    server.put(ACCESS_POINT, "there.txt", "from the bucket\n");
    let m = Mount::start(&server, ACCESS_POINT, &[]);
    let root = m.path();
    assert_eq!(
        fs::read(root.join("there.txt")).unwrap(),
        b"from the bucket\n"
    );
    let body = pattern(1 << 20, 9);
    fs::write(root.join("new.bin"), &body).unwrap();
    assert_eq!(
        sha256_hex(&fs::read(root.join("new.bin")).unwrap()),
        sha256_hex(&body)
    );
    assert_eq!(
        sha256_hex(&server.get(ACCESS_POINT, "new.bin").unwrap()),
        sha256_hex(&body)
    );
    assert!(server.count(Op::CreateSession) >= 1);
    let sessions = server.requests();
    assert!(sessions
        .iter()
        .filter(|r| r.op == Op::CreateSession)
        .all(|r| r.bucket.as_deref() == Some(ACCESS_POINT)));
    assert_session_signed(&server);
    drop(m);
}

/// The PutObjects the server received since its counters were reset: their bodies' sizes.
fn put_sizes(server: &TestServer) -> Vec<u64> {
    server
        .requests()
        .iter()
        .filter(|r| r.op == Op::PutObject)
        .map(|r| r.bytes_received)
        .collect()
}

/// `--incremental-upload`: `echo more >> file` on a directory bucket sends one PutObject
/// with `x-amz-write-offset-bytes` and only the appended bytes, and the object reads
/// SHA-256-equal; a write below the old end rewrites the object as without the flag; an
/// append that races another client's append keeps both clients' bytes.
#[test]
fn incremental_upload_sends_only_appended_bytes() {
    let server = express_server(Duration::from_secs(30));
    // As another tool stores it: no file times in its metadata, so an append cannot leave
    // a stale one behind (see docs/ENDPOINTS.md).
    let first = b"line 1\n".repeat(3000);
    server.put(BUCKET, "log.txt", first.clone());
    let m = Mount::start(&server, BUCKET, &["--incremental-upload"]);
    let root = m.path();
    let file = root.join("log.txt");
    let append = |bytes: &[u8]| {
        let mut f = fs::OpenOptions::new().append(true).open(&file).unwrap();
        f.write_all(bytes).unwrap();
    };

    server.reset_counters();
    append(b"more\n");
    let mut expected = [first.as_slice(), b"more\n"].concat();
    let appends = server.appends();
    assert_eq!(appends.len(), 1, "{appends:?}");
    assert_eq!(
        (appends[0].key.as_str(), appends[0].offset, appends[0].len),
        ("log.txt", first.len() as u64, 5)
    );
    assert_eq!(
        put_sizes(&server),
        vec![5],
        "one PutObject, the new bytes only"
    );
    for op in [
        Op::CreateMultipartUpload,
        Op::UploadPart,
        Op::UploadPartCopy,
        Op::CopyObject,
    ] {
        assert_eq!(server.count(op), 0, "{op:?}");
    }
    assert_eq!(
        sha256_hex(&server.get(BUCKET, "log.txt").unwrap()),
        sha256_hex(&expected)
    );
    assert_eq!(sha256_hex(&fs::read(&file).unwrap()), sha256_hex(&expected));

    // A write below the old end: the whole object goes up again, no append.
    server.reset_counters();
    {
        let mut f = fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all(b"LINE").unwrap();
    }
    expected[..4].copy_from_slice(b"LINE");
    assert_eq!(server.appends().len(), 1);
    assert_eq!(put_sizes(&server), vec![expected.len() as u64]);
    assert_eq!(server.get(BUCKET, "log.txt").unwrap(), expected);

    // Another client appends while this mount's append is open: S3 refuses the mount's
    // offset, and its bytes go after the other client's.
    {
        let mut f = fs::OpenOptions::new().append(true).open(&file).unwrap();
        f.write_all(b"mine\n").unwrap();
        let theirs = [expected.as_slice(), b"theirs\n"].concat();
        server.put(BUCKET, "log.txt", theirs);
    }
    let both = [expected.as_slice(), b"theirs\n", b"mine\n"].concat();
    assert_eq!(
        sha256_hex(&server.get(BUCKET, "log.txt").unwrap()),
        sha256_hex(&both)
    );
    let appends = server.appends();
    assert_eq!(appends.last().unwrap().offset, (expected.len() + 7) as u64);
    assert_eq!(sha256_hex(&fs::read(&file).unwrap()), sha256_hex(&both));
    assert_session_signed(&server);
    drop(m);
}

/// `--incremental-upload` on a general purpose bucket is refused at mount, naming the fix.
#[test]
fn incremental_upload_needs_a_directory_bucket() {
    let server = TestServer::start();
    server.create_bucket("plain");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_s3rolefs"))
        .args([
            "mount",
            "plain",
            "/nonexistent-mountpoint",
            "--incremental-upload",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--incremental-upload needs a directory bucket"),
        "{err}"
    );
    assert!(err.contains("drop --incremental-upload"), "{err}");
}

/// The endurance run: sessions expire every 30 s, and twice more the server ends
/// them early; for two minutes a mount writes, reads, lists and renames without a single
/// error, through at least four sessions.
#[test]
fn a_mount_survives_session_expiry_for_two_minutes() {
    let server = express_server(Duration::from_secs(30));
    let m = Mount::start(&server, BUCKET, &[]);
    let root = m.path();
    let dir = root.join("run");
    fs::create_dir(&dir).unwrap();

    let started = Instant::now();
    let mut errors: Vec<String> = Vec::new();
    let mut rounds = 0u64;
    let mut forced = [Duration::from_secs(40), Duration::from_secs(80)]
        .into_iter()
        .peekable();
    while started.elapsed() < Duration::from_secs(120) {
        if forced.peek().is_some_and(|at| started.elapsed() >= *at) {
            forced.next();
            server.expire_directory_sessions();
        }
        let i = rounds % 16;
        let data = pattern(64 * 1024 + rounds as usize, rounds as u8);
        let file = dir.join(format!("f{i:02}"));
        let mut step = |what: &str, r: std::io::Result<()>| {
            if let Err(e) = r {
                errors.push(format!(
                    "round {rounds} ({:?}): {what}: {e}",
                    started.elapsed()
                ));
            }
        };
        step("write", fs::write(&file, &data));
        step(
            "read",
            fs::read(&file).and_then(|got| {
                (sha256_hex(&got) == sha256_hex(&data))
                    .then_some(())
                    .ok_or_else(|| std::io::Error::other("content differs"))
            }),
        );
        step(
            "list",
            fs::read_dir(&dir).and_then(|entries| {
                let names: Result<Vec<String>, _> = entries
                    .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect();
                let names = names?;
                let mut sorted = names.clone();
                sorted.sort();
                (names == sorted && names.contains(&format!("f{i:02}")))
                    .then_some(())
                    .ok_or_else(|| std::io::Error::other(format!("listing {names:?}")))
            }),
        );
        if rounds % 4 == 3 {
            let renamed = dir.join(format!("r{i:02}"));
            step("rename", fs::rename(&file, &renamed));
            step("rename back", fs::rename(&renamed, &file));
        }
        rounds += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let sessions = server.count(Op::CreateSession);
    assert!(
        errors.is_empty(),
        "{} errors in {rounds} rounds:\n{}\n--- mount log ---\n{}",
        errors.len(),
        errors.join("\n"),
        m.stderr_log()
    );
    assert!(
        sessions >= 4,
        "only {sessions} CreateSession calls in 2 minutes"
    );
    assert!(server.count(Op::RenameObject) > 0);
    assert_eq!(server.count(Op::CopyObject), 0);
    assert_session_signed(&server);
    eprintln!(
        "{rounds} rounds, {sessions} sessions, {} requests, at {:?}",
        server.total_requests(),
        SystemTime::now()
    );
    drop(m);
}

/// `s3rolefs check` names the directory bucket and says that session auth works.
#[test]
fn check_reports_a_directory_bucket_with_working_sessions() {
    let server = express_server(Duration::from_secs(30));
    server.put(BUCKET, "sample.txt", "sample");
    let home = tempfile::TempDir::new().unwrap();
    let out = support::mount::s3rolefs_command(home.path())
        .args([
            "check",
            BUCKET,
            "--write-probe",
            "--region",
            server.region(),
        ])
        .env("AWS_ENDPOINT_URL", server.endpoint())
        .env("AWS_ACCESS_KEY_ID", server.access_key())
        .env("AWS_SECRET_ACCESS_KEY", server.secret_key())
        .output()
        .expect("run s3rolefs check");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "check failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("express"))
        .unwrap_or_else(|| panic!("no express line:\n{stdout}"));
    assert!(
        line.contains("directory bucket (S3 Express One Zone, zone usw2-az1)")
            && line.contains("session auth works"),
        "{line}"
    );
}

/// A GET of `/BUCKET/k` signed with the server's long-term key for `service`, without a
/// session token: its status and error code.
async fn signed_without_session(server: &TestServer, service: &str) -> (u16, String) {
    let path = format!("/{BUCKET}/k");
    let host = server.addr().to_string();
    let hash = s3rolefs::sigv4::sha256_hex(b"");
    let headers = vec![
        ("host".to_string(), host),
        ("x-amz-content-sha256".to_string(), hash.clone()),
    ];
    let signed = s3rolefs::sigv4::sign(
        &s3rolefs::sigv4::HttpRequest {
            method: "GET",
            path: &path,
            query: &[],
            headers: &headers,
            payload_hash: &hash,
        },
        &s3rolefs::sigv4::SigningInputs {
            access_key_id: server.access_key(),
            secret_access_key: server.secret_key(),
            session_token: None,
            region: server.region(),
            service,
            time: SystemTime::now(),
        },
    );
    let mut req = reqwest::Client::new()
        .get(format!("{}{path}", server.endpoint()))
        .header("x-amz-content-sha256", hash);
    for (name, value) in signed.headers {
        req = req.header(name, value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    let code = body
        .split("<Code>")
        .nth(1)
        .and_then(|rest| rest.split("</Code>").next())
        .unwrap_or("")
        .to_string();
    (status, code)
}

/// Without a session, a request to a directory bucket is refused: signed with the
/// long-term key itself it is 403 AccessDenied; signed for service `s3` it is malformed.
#[tokio::test]
async fn requests_without_a_session_are_refused() {
    let server = express_server(Duration::from_secs(30));
    server.put(BUCKET, "k", "v");
    assert_eq!(
        signed_without_session(&server, "s3express").await,
        (403, "AccessDenied".to_string())
    );
    assert_eq!(
        signed_without_session(&server, "s3").await,
        (400, "AuthorizationHeaderMalformed".to_string())
    );
}
