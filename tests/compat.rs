//! S3-compatible servers, through real mounts: for each quirk of the test server
//! (`support::s3server::quirks`) switched on, the basics — write, read, list, rename of a
//! file above the single-copy limit, append to an existing object — keep every byte
//! (SHA-256-equal), the mount says once what it found, and `s3rolefs check` names the quirk.
//! The basics through an access point ARN (`access_point_hosts`), its virtual host resolved
//! in a private mount namespace. Then the same basics against moto (`moto_server`), a server
//! written by others.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use s3rolefs::sigv4::sha256_hex;
use support::data::pattern;
use support::mount::s3rolefs_command;
use support::s3server::Quirk;
use support::{Mount, MountCommand, TestServer};
use tempfile::TempDir;

/// Objects above this are renamed with a multipart copy (UploadPartCopy where the server
/// has it): low, so the test's files cross it.
const LIMIT: &str = "6M";
const LIMIT_BYTES: usize = 6 << 20;

/// A server with `quirk` on, a bucket holding `existing.bin` (20 MiB), and a mount of it.
fn setup(quirk: Quirk) -> (TestServer, Mount, Vec<u8>) {
    let server = TestServer::start();
    server.create_bucket("bkt");
    server.set_single_copy_limit(LIMIT_BYTES);
    let existing = pattern(20 << 20, 7);
    server.put("bkt", "existing.bin", existing.clone());
    server.set_quirk(quirk, true);
    // Parts below the limit: the server's UploadPartCopy takes no range above it.
    let mount = Mount::start(
        &server,
        "bkt",
        &["--single-copy-limit", LIMIT, "--part-size", "5M"],
    );
    (server, mount, existing)
}

/// Write, read, list, rename above the single-copy limit, append: every byte arrives.
fn basics(server: &TestServer, bucket: &str, m: &Mount, existing: &[u8]) {
    let root = m.path();
    // A small file (PutObject) and a large one (multipart, streamed).
    fs::write(root.join("small.txt"), b"hello, compatible world\n").unwrap();
    let big = pattern(14 << 20, 3);
    let mut f = fs::File::create(root.join("big.bin")).unwrap();
    for chunk in big.chunks(1 << 20) {
        f.write_all(chunk).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(
        fs::read(root.join("small.txt")).unwrap(),
        b"hello, compatible world\n"
    );
    assert_eq!(
        sha256_hex(&fs::read(root.join("big.bin")).unwrap()),
        sha256_hex(&big)
    );
    fs::create_dir(root.join("dir")).unwrap();
    for i in 0..5 {
        fs::write(root.join(format!("dir/f{i}")), format!("file {i}")).unwrap();
    }

    // Rename above the single-copy limit: a multipart copy.
    fs::rename(root.join("big.bin"), root.join("dir/moved.bin")).unwrap();
    assert!(!root.join("big.bin").exists());
    assert_eq!(
        sha256_hex(&fs::read(root.join("dir/moved.bin")).unwrap()),
        sha256_hex(&big)
    );

    // Append to an existing object: its unchanged parts are copied (UploadPartCopy).
    let tail = pattern(3 << 20, 11);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(root.join("existing.bin"))
        .unwrap();
    f.write_all(&tail).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let mut appended = existing.to_vec();
    appended.extend_from_slice(&tail);
    assert_eq!(
        sha256_hex(&fs::read(root.join("existing.bin")).unwrap()),
        sha256_hex(&appended)
    );

    // Listings: through the mount, and the bucket's own objects.
    let names = |dir: &Path| -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let expected_root: BTreeSet<String> = ["dir", "existing.bin", "small.txt"]
        .map(String::from)
        .into();
    assert_eq!(names(root), expected_root);
    let expected_dir: BTreeSet<String> = (0..5)
        .map(|i| format!("f{i}"))
        .chain(["moved.bin".to_string()])
        .collect();
    assert_eq!(names(&root.join("dir")), expected_dir);
    let stored = |key: &str| sha256_hex(&server.get(bucket, key).expect(key));
    assert_eq!(stored("dir/moved.bin"), sha256_hex(&big));
    assert_eq!(stored("existing.bin"), sha256_hex(&appended));
    assert_eq!(server.open_multipart_uploads(bucket), 0);
}

/// `s3rolefs check bkt --write-probe` against `server`: its stdout.
fn check(server: &TestServer) -> String {
    let home = TempDir::new().unwrap();
    let out = s3rolefs_command(home.path())
        .args(["check", "bkt", "--write-probe", "--region", server.region()])
        .env("AWS_ENDPOINT_URL", server.endpoint())
        .env("AWS_ACCESS_KEY_ID", server.access_key())
        .env("AWS_SECRET_ACCESS_KEY", server.secret_key())
        .output()
        .expect("run s3rolefs check");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "--- check: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "check failed:\n{stdout}");
    stdout
}

/// The whole test of one quirk: basics pass, the mount said `said` once, check names `name`.
fn quirk_case(quirk: Quirk, said: &str, name: &str) {
    let (server, m, existing) = setup(quirk);
    basics(&server, "bkt", &m, &existing);
    let log = m.stderr_log();
    assert_eq!(
        log.matches(said).count(),
        1,
        "the mount should say {said:?} once:\n{log}"
    );
    let report = check(&server);
    let line = report
        .lines()
        .find(|l| l.contains("quirks"))
        .unwrap_or_else(|| panic!("no quirks line:\n{report}"));
    assert!(line.contains(name), "{line}");
}

/// A server that refuses `x-amz-checksum-*` gets Content-MD5 instead.
#[test]
fn no_checksum_headers() {
    quirk_case(
        Quirk::NoChecksumHeaders,
        "refused x-amz-checksum-* headers",
        "no-checksum-headers",
    );
}

/// A server without ListObjectsV2 is listed with V1 and markers.
#[test]
fn list_v1_only() {
    quirk_case(
        Quirk::ListV1Only,
        "does not serve ListObjectsV2",
        "list-v1-only",
    );
}

/// A server without UploadPartCopy: renames and appends copy through the client.
#[test]
fn no_upload_part_copy() {
    quirk_case(
        Quirk::NoUploadPartCopy,
        "does not implement UploadPartCopy",
        "no-upload-part-copy",
    );
}

/// ETags that are not MD5s are found out, and never taken for MD5s.
#[test]
fn etags_not_md5() {
    quirk_case(
        Quirk::OpaqueEtags,
        "ETags are not MD5 digests",
        "etags-not-md5",
    );
}

/// Listing pages out of order are sorted by the client.
#[test]
fn unsorted_listings() {
    quirk_case(
        Quirk::UnsortedListings,
        "lists keys out of order",
        "unsorted-listings",
    );
}

/// A listing of more than a page on a V1-only server with unsorted pages: every key once.
#[test]
fn v1_unsorted_many_pages() {
    let server = TestServer::start();
    server.create_bucket("bkt");
    let keys: Vec<String> = (0..2500).map(|i| format!("many/k{i:05}")).collect();
    server.put_many("bkt", keys.iter().map(|k| (k.clone(), b"x".to_vec())));
    server.set_quirk(Quirk::ListV1Only, true);
    server.set_quirk(Quirk::UnsortedListings, true);
    let m = Mount::start(&server, "bkt", &[]);
    let listed: BTreeSet<String> = fs::read_dir(m.path().join("many"))
        .unwrap()
        .map(|e| format!("many/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    assert_eq!(listed, keys.into_iter().collect());
}

/// A staged file's parts (8 MiB) above the server's copy limit (6 MiB): the unchanged
/// parts of an append are copied through the client instead of refused.
#[test]
fn append_with_parts_above_the_copy_limit() {
    let server = TestServer::start();
    server.create_bucket("bkt");
    server.set_single_copy_limit(LIMIT_BYTES);
    let existing = pattern(20 << 20, 7);
    server.put("bkt", "existing.bin", existing.clone());
    let m = Mount::start(&server, "bkt", &["--single-copy-limit", LIMIT]);
    let tail = pattern(1 << 20, 2);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(m.path().join("existing.bin"))
        .unwrap();
    f.write_all(&tail).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let mut appended = existing;
    appended.extend_from_slice(&tail);
    let stored = server.get("bkt", "existing.bin").unwrap();
    assert_eq!(sha256_hex(&stored), sha256_hex(&appended));
}

// ---- moto ---------------------------------------------------------------------------------

/// `moto_server` on a free port of 127.0.0.1, stopped on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto; panics with the fix when it is not installed (never skips: CI must
    /// run this test).
    fn start() -> Moto {
        let installed = Command::new("moto_server")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed,
            "moto_server is not installed (CI={}); fix: S3ROLEFS_SETUP_TESTS=1 scripts/setup \
             (pip install 'moto[server]')",
            std::env::var("CI").unwrap_or_default()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// CreateBucket with plain HTTP (moto does not check signatures by default).
    fn create_bucket(&self, name: &str) {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            conn,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
            "moto CreateBucket: {answer}"
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The read/write/rename basics against moto, mounted with `--endpoint-url` and static
/// credentials from the environment.
#[test]
fn moto_basics() {
    let moto = Moto::start();
    moto.create_bucket("compat");
    let m = MountCommand::to_endpoint(
        "compat",
        &moto.endpoint(),
        "us-east-1",
        "testing",
        "testing",
    )
    .args(&[
        "--force-path-style",
        "--provider",
        "other",
        "--single-copy-limit",
        LIMIT,
    ])
    .start();
    let root = m.path();
    let data = pattern(12 << 20, 5);
    fs::write(root.join("a.bin"), &data).unwrap();
    fs::write(root.join("small.txt"), b"moto\n").unwrap();
    assert_eq!(
        sha256_hex(&fs::read(root.join("a.bin")).unwrap()),
        sha256_hex(&data)
    );
    fs::rename(root.join("a.bin"), root.join("b.bin")).unwrap();
    assert!(!root.join("a.bin").exists());
    assert_eq!(
        sha256_hex(&fs::read(root.join("b.bin")).unwrap()),
        sha256_hex(&data)
    );
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(root.join("small.txt"))
        .unwrap();
    f.write_all(b"more\n").unwrap();
    drop(f);
    assert_eq!(fs::read(root.join("small.txt")).unwrap(), b"moto\nmore\n");
    let names: BTreeSet<String> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["b.bin", "small.txt"].map(String::from).into());
}

/// The access point of the tests below: `arn:aws:s3:us-east-1:123456789012:accesspoint/myap`
/// with `--endpoint-url http://s3.test:PORT` is the host `myap-123456789012.s3.test:PORT`.
const AP_NAME: &str = "myap";
const AP_ACCOUNT: &str = "123456789012";

/// The basics in `sh`, inside the private mount namespace of [`access_point_hosts`]: mount
/// the ARN, write, read back (SHA-256), rename above the single-copy limit, append to an
/// existing object, list; unmounted on the way out, also when a step fails.
const AP_SCRIPT: &str = r#"
set -eu
mount --bind "$WORK/hosts" /etc/hosts
getent hosts "$AP_HOST" >/dev/null
"$S3ROLEFS" mount "$ARN" "$MNT" --endpoint-url "http://s3.test:$PORT" --region us-east-1 \
    --cache-dir "$HOME/cache" --single-copy-limit 6M --part-size 5M
trap '"$S3ROLEFS" unmount "$MNT" || { fusermount3 -u -z "$MNT"; exit 1; }' EXIT
sha() { sha256sum < "$1" | cut -d' ' -f1; }
printf 'hello, access point\n' > "$MNT/small.txt"
cp "$WORK/big.src" "$MNT/big.bin"
test "$(sha "$MNT/big.bin")" = "$BIG_SHA"
test "$(cat "$MNT/small.txt")" = "hello, access point"
mkdir "$MNT/dir"
for i in 0 1 2 3 4; do printf "file $i" > "$MNT/dir/f$i"; done
mv "$MNT/big.bin" "$MNT/dir/moved.bin"
test ! -e "$MNT/big.bin"
test "$(sha "$MNT/dir/moved.bin")" = "$BIG_SHA"
cat "$WORK/tail.src" >> "$MNT/existing.bin"
test "$(sha "$MNT/existing.bin")" = "$APPENDED_SHA"
test "$(ls "$MNT" | tr '\n' ' ')" = "dir existing.bin small.txt "
test "$(ls "$MNT/dir" | tr '\n' ' ')" = "f0 f1 f2 f3 f4 moved.bin "
echo basics-passed
"#;

/// Panics unless `program` is on PATH: CI must fail loudly, never skip.
fn require_program(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    assert!(
        found,
        "{program} is not on PATH: this test cannot run. Fix: apt-get install -y {package}"
    );
}

/// An access point ARN with a custom endpoint, through a real mount: every request goes to
/// the access point's virtual host `myap-123456789012.s3.test:PORT`, signed for that host,
/// and the server hands it to the bucket behind the access point. That host name must
/// resolve to 127.0.0.1 without a resolver option in the product: the mount and the basics
/// run in a private mount namespace (`unshare --mount`) whose /etc/hosts maps it, so the
/// FUSE mount exists only there and the basics are shell commands inside it; the server
/// stays in this process on 127.0.0.1, and this side checks its store and request log.
#[test]
fn access_point_hosts() {
    support::mount::require_fuse();
    require_program("unshare", "util-linux");
    require_program("sha256sum", "coreutils");
    let server = TestServer::start();
    server.create_bucket("bkt");
    server.set_single_copy_limit(LIMIT_BYTES);
    server.add_access_point(AP_NAME, AP_ACCOUNT, "bkt");
    let existing = pattern(7 << 20, 7);
    server.put("bkt", "existing.bin", existing.clone());
    let big = pattern(14 << 20, 3);
    let tail = pattern(1 << 20, 11);
    let mut appended = existing.clone();
    appended.extend_from_slice(&tail);

    let work = TempDir::new().unwrap();
    let (home, mnt) = (work.path().join("home"), work.path().join("mnt"));
    fs::create_dir(&home).unwrap();
    fs::create_dir(&mnt).unwrap();
    let ap_host = format!("{AP_NAME}-{AP_ACCOUNT}.s3.test");
    fs::write(
        work.path().join("hosts"),
        format!("127.0.0.1 localhost s3.test {ap_host}\n"),
    )
    .unwrap();
    fs::write(work.path().join("big.src"), &big).unwrap();
    fs::write(work.path().join("tail.src"), &tail).unwrap();

    let port = server.addr().port();
    let arn = format!("arn:aws:s3:us-east-1:{AP_ACCOUNT}:accesspoint/{AP_NAME}");
    let env = s3rolefs_command(&home);
    let mut cmd = Command::new("unshare");
    cmd.env_clear();
    for (name, value) in env.get_envs() {
        if let Some(value) = value {
            cmd.env(name, value);
        }
    }
    let out = cmd
        .args(["--mount", "--propagation", "private", "sh", "-c", AP_SCRIPT])
        .env("S3ROLEFS", env!("CARGO_BIN_EXE_s3rolefs"))
        .env("AWS_ACCESS_KEY_ID", server.access_key())
        .env("AWS_SECRET_ACCESS_KEY", server.secret_key())
        .env("WORK", work.path())
        .env("MNT", &mnt)
        .env("ARN", &arn)
        .env("PORT", port.to_string())
        .env("AP_HOST", &ap_host)
        .env("BIG_SHA", sha256_hex(&big))
        .env("APPENDED_SHA", sha256_hex(&appended))
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("basics-passed"),
        "the basics through the access point failed ({}):\n{stdout}\n{stderr}",
        out.status
    );

    // The bucket behind the access point holds every byte, and nothing is left half-done.
    let stored = |key: &str| sha256_hex(&server.get("bkt", key).expect(key));
    assert_eq!(stored("dir/moved.bin"), sha256_hex(&big));
    assert_eq!(stored("existing.bin"), sha256_hex(&appended));
    assert_eq!(
        server.get("bkt", "small.txt").as_deref(),
        Some(&b"hello, access point\n"[..])
    );
    assert!(server.get("bkt", "big.bin").is_none());
    for i in 0..5 {
        assert_eq!(
            server.get("bkt", &format!("dir/f{i}")).as_deref(),
            Some(format!("file {i}").as_bytes())
        );
    }
    assert_eq!(server.open_multipart_uploads("bkt"), 0);

    // Every request went to the access point's host and reached the bucket behind it.
    let requests = server.requests();
    assert!(requests.len() > 10, "{} requests", requests.len());
    let expected_host = format!("{ap_host}:{port}");
    for r in &requests {
        assert_eq!(r.host, expected_host, "{} {}", r.method, r.uri);
        assert_eq!(r.bucket.as_deref(), Some("bkt"), "{} {}", r.method, r.uri);
    }
}

/// An access point the server does not have answers 404 `NoSuchAccessPoint`, as from S3.
#[test]
fn unknown_access_point() {
    let server = TestServer::start();
    server.create_bucket("bkt");
    server.add_access_point(AP_NAME, AP_ACCOUNT, "bkt");
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    write!(
        stream,
        "GET /?list-type=2 HTTP/1.1\r\nHost: other-{AP_ACCOUNT}.s3.test:{}\r\nConnection: close\r\n\r\n",
        server.addr().port()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(
        answer.contains("<Code>NoSuchAccessPoint</Code>"),
        "{answer}"
    );
}
