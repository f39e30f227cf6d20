//! Mounting and unmounting as a user meets them: background mode whose exit code tells the
//! truth, `s3rolefs unmount`, clean unmount on SIGTERM/SIGINT, and one-line errors (cause
//! and fix, exit code 1, nothing left mounted) for every way a mount can fail.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::mount::{mount_device, mount_type, wait_unmounted};
use support::{run_mount_expect_failure, Mount, MountCommand, TestServer};

fn server() -> TestServer {
    let server = TestServer::start();
    server.create_bucket("bkt");
    server.put("bkt", "hello.txt", b"hello".to_vec());
    server
}

fn s3rolefs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_s3rolefs"))
}

/// Asserts the failure is one line that contains every one of `needles`.
fn assert_one_line_error(code: i32, stderr: &str, needles: &[&str]) {
    assert_eq!(code, 1, "exit code; stderr:\n{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("s3rolefs:"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected; stderr:\n{stderr}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{needle:?} not in {:?}",
            lines[0]
        );
    }
}

/// Without `--foreground`, `mount` returns 0 once the mount is usable, and
/// `s3rolefs unmount` takes it down.
#[test]
fn background_mount_returns_when_ready_and_unmounts() {
    let server = server();
    let (mount, status, stderr) = Mount::start_daemon(&server, "bkt", &[]);
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(
        std::fs::read(mount.path().join("hello.txt")).unwrap(),
        b"hello"
    );
    assert_eq!(
        mount_type(mount.path()).as_deref(),
        Some("fuse.s3rolefs"),
        "fstype"
    );
    let out = s3rolefs()
        .arg("unmount")
        .arg(mount.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(wait_unmounted(mount.path()));
}

/// A root mount reads ahead 1 MiB (the kernel's FUSE default is 128 KiB), set once the
/// mount answered its first request, before any file could be opened.
#[test]
fn root_mount_reads_ahead_a_megabyte() {
    let server = server();
    let mount = Mount::start(&server, "bkt", &[]);
    assert_eq!(
        std::fs::read(mount.path().join("hello.txt")).unwrap(),
        b"hello"
    );
    let device = mount_device(mount.path()).expect("the mount is in mountinfo");
    let read_ahead = std::fs::read_to_string(format!("/sys/class/bdi/{device}/read_ahead_kb"))
        .expect("the mount's bdi exists");
    // SAFETY: geteuid cannot fail.
    let expected = if unsafe { libc::geteuid() } == 0 {
        "1024"
    } else {
        "128" // sysfs is root's: other users keep the kernel's default
    };
    assert_eq!(read_ahead.trim(), expected);
}

/// Runs `mount.s3rolefs SOURCE DIR -o OPTIONS` — the form mount(8) and fstab use, through a
/// link of that name to the binary — with the server's keys; returns its exit status and
/// stderr once it returned (a mount is then ready, in the background).
fn mount_helper(server: &TestServer, source: &str, dir: &Path, options: &str) -> (bool, String) {
    let home = tempfile::tempdir().unwrap();
    let helper = home.path().join("mount.s3rolefs");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_s3rolefs"), &helper).unwrap();
    let log = home.path().join("stderr.log");
    let options = format!(
        "{options},endpoint_url={},region={}",
        server.endpoint(),
        server.region()
    );
    let status = Command::new(&helper)
        .arg(source)
        .arg(dir)
        .args(["-o", &options])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", home.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", server.access_key())
        .env("AWS_SECRET_ACCESS_KEY", server.secret_key())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    (status.success(), std::fs::read_to_string(&log).unwrap())
}

/// mount(8)'s form with an fstab line's options (`_netdev`, `nofail`, `x-systemd.*` left to
/// mount(8) and systemd, the rest as flags): returns once mounted; `umount` unmounts; a bad
/// bucket fails with its one-line message.
#[test]
fn mount_helper_form_mounts_and_umount_unmounts() {
    support::require_fuse();
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = mount_helper(
        &server,
        "bkt",
        dir.path(),
        "rw,_netdev,nofail,x-systemd.automount,allow_other,uid=4242,file_mode=0600",
    );
    assert!(ok, "{stderr}");
    assert_eq!(mount_type(dir.path()).as_deref(), Some("fuse.s3rolefs"));
    let file = dir.path().join("hello.txt");
    assert_eq!(std::fs::read(&file).unwrap(), b"hello");
    let meta = std::fs::metadata(&file).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.mode() & 0o777), (4242, 0o600));
    let out = Command::new("umount").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(wait_unmounted(dir.path()));

    let (ok, stderr) = mount_helper(&server, "missing-bucket", dir.path(), "ro");
    assert!(!ok, "a missing bucket must fail the mount");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(mount_type(dir.path()).is_none());
    let (ok, stderr) = mount_helper(&server, "bkt", dir.path(), "regoin=x");
    assert!(
        !ok && stderr.contains("unknown mount option \"regoin\""),
        "{stderr}"
    );
}

/// Under systemd (`Type=notify`): `READY=1` on `NOTIFY_SOCKET` once the mount is usable,
/// `STOPPING=1` when it goes (here a fake systemd: a datagram socket of the test's).
#[test]
fn systemd_hears_ready_and_stopping() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let systemd = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mount = MountCommand::new(&server, "bkt")
        .env("NOTIFY_SOCKET", socket_path.to_str().unwrap())
        .start();
    let mut buf = [0u8; 512];
    let n = systemd.recv(&mut buf).expect("READY=1 within 10 s");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        ready.starts_with("READY=1\nSTATUS=mounted bkt on "),
        "{ready}"
    );
    assert_eq!(
        std::fs::read(mount.path().join("hello.txt")).unwrap(),
        b"hello",
        "usable once READY=1 was sent"
    );
    let pid = mount.pid().unwrap() as libc::pid_t;
    // SAFETY: a signal to the mount's own process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let n = systemd.recv(&mut buf).expect("STOPPING=1 within 10 s");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(wait_unmounted(mount.path()));
}

/// Removes the test's own `/dev/log` however the test ends.
struct DevLog;

impl Drop for DevLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file("/dev/log");
    }
}

/// A background mount without `--log-file` (as mount(8) and fstab start it: no terminal)
/// logs to syslog: datagrams on `/dev/log`, here a socket of the test's where the machine
/// has no syslog.
#[test]
fn background_mount_logs_to_syslog() {
    let dev_log = Path::new("/dev/log");
    // SAFETY: geteuid cannot fail.
    if dev_log.exists() || unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: /dev/log is taken by this machine's syslog, or not root");
        return;
    }
    let syslog = std::os::unix::net::UnixDatagram::bind(dev_log).unwrap();
    let _remove = DevLog;
    syslog
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let server = server();
    let (mount, status, stderr) = Mount::start_daemon(&server, "bkt", &[]);
    assert!(status.success(), "{status}: {stderr}");
    let wanted = format!("mounted bkt on {}", mount.path().display());
    let mut buf = [0u8; 4096];
    let line = loop {
        let n = syslog.recv(&mut buf).expect("the mount's log within 10 s");
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        if line.contains(&wanted) {
            break line;
        }
    };
    assert!(
        line.starts_with("<30>s3rolefs["),
        "facility daemon, info: {line}"
    );
}

/// In background mode a failure still reaches the caller: exit code 1 and the message.
#[test]
fn background_mount_reports_failure() {
    let server = server();
    let (mount, status, stderr) = Mount::start_daemon(&server, "no-such-bucket", &[]);
    assert!(!status.success());
    assert!(!mount.is_mounted());
    assert_one_line_error(status.code().unwrap(), &stderr, &["does not exist"]);
}

/// SIGTERM and SIGINT unmount cleanly and the process exits 0.
#[test]
fn termination_signals_unmount_cleanly() {
    let server = server();
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mount = Mount::start(&server, "bkt", &[]);
        let pid = mount.pid().unwrap() as libc::pid_t;
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        assert!(
            wait_unmounted(mount.path()),
            "still mounted after signal {signal}"
        );
        // The process logs its clean exit just after the kernel drops the mount.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !mount.stderr_log().contains("unmounted") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            mount.stderr_log().contains("unmounted"),
            "{}",
            mount.stderr_log()
        );
    }
}

/// `unmount` of a directory that is not a mount point says so.
#[test]
fn unmount_of_plain_directory_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = s3rolefs().arg("unmount").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not mounted"));
}

/// Bucket names that S3 would reject are refused before any request.
#[test]
fn invalid_bucket_name() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = run_mount_expect_failure(&server, "Bad_Bucket", dir.path(), &[]);
    assert_one_line_error(code, &err, &["invalid bucket name", "Bad_Bucket"]);
    assert_eq!(server.total_requests(), 0);
}

/// A bucket that does not exist is named, with what to check.
#[test]
fn bucket_does_not_exist() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = run_mount_expect_failure(&server, "missing-bucket", dir.path(), &[]);
    assert_one_line_error(
        code,
        &err,
        &["missing-bucket", "does not exist", "--endpoint-url"],
    );
}

/// Wrong secret: access denied, naming the credentials' source and the permission needed.
#[test]
fn access_denied() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = MountCommand::new(&server, "bkt")
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        .run_expect_failure(dir.path());
    assert_one_line_error(
        code,
        &err,
        &["access denied", "environment", "s3:ListBucket"],
    );
    assert!(!err.contains("not-the-secret"), "secret leaked: {err}");
}

/// A bucket in another region than the one given: the message names the right one.
#[test]
fn wrong_region_names_the_right_one() {
    let server = server();
    server.create_bucket_in_region("eu-bkt", "eu-west-1");
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = MountCommand::new(&server, "eu-bkt")
        .region("us-east-1")
        .run_expect_failure(dir.path());
    assert_one_line_error(code, &err, &["eu-west-1", "--region eu-west-1"]);
}

/// With no region configured, the bucket's region is discovered and the mount works.
#[test]
fn region_is_discovered_when_not_given() {
    let server = server();
    server.create_bucket_in_region("eu-bkt", "eu-west-1");
    server.put("eu-bkt", "x", b"eu".to_vec());
    let mount = MountCommand::new(&server, "eu-bkt").region("").start();
    assert_eq!(std::fs::read(mount.path().join("x")).unwrap(), b"eu");
}

/// On EC2 without `--region` or `AWS_REGION`: the instance's region (IMDS placement) is
/// where the bucket is asked for first, and the bucket's own region, which S3 names in its
/// answer, overrules it (an instance in one region may mount a bucket of another).
#[test]
fn instance_region_gives_way_to_the_buckets() {
    use support::imds::{accepted_by, ImdsEmulator, ImdsOptions};
    let server = std::sync::Arc::new(server());
    server.create_bucket_in_region("eu-bkt", "eu-west-1");
    server.put("eu-bkt", "x", b"eu".to_vec());
    let imds = ImdsEmulator::start(ImdsOptions {
        region: "ap-southeast-2".into(),
        on_issue: Some(accepted_by(&server)),
        ..ImdsOptions::default()
    });
    let mount = MountCommand::new(&server, "eu-bkt")
        .region("")
        .without_static_credentials()
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.endpoint())
        .start();
    assert_eq!(std::fs::read(mount.path().join("x")).unwrap(), b"eu");
    assert!(
        mount.stderr_log().contains("is in region eu-west-1"),
        "{}",
        mount.stderr_log()
    );
}

/// An endpoint nobody listens on: "cannot reach", naming the endpoint.
#[test]
fn endpoint_unreachable() {
    let server = server();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let endpoint = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = MountCommand::new(&server, "bkt")
        .endpoint(&endpoint)
        .args(&["--max-attempts", "2"])
        .run_expect_failure(dir.path());
    assert_one_line_error(code, &err, &["cannot reach", &endpoint]);
}

/// Mount point missing, or a file: named with the fix.
#[test]
fn mountpoint_missing_or_not_a_directory() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let (code, err) = run_mount_expect_failure(&server, "bkt", &missing, &[]);
    assert_one_line_error(code, &err, &["does not exist", "mkdir -p"]);
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let (code, err) = run_mount_expect_failure(&server, "bkt", &file, &[]);
    assert_one_line_error(code, &err, &["not a directory"]);
}

/// Mounting twice on the same directory: "already a mount point", and the first mount
/// keeps working.
#[test]
fn already_mounted() {
    let server = server();
    let mount = Mount::start(&server, "bkt", &[]);
    // The harness's failure runner treats a mounted directory as success; run directly.
    let out = s3rolefs()
        .args(["mount", "bkt"])
        .arg(mount.path())
        .args([
            "--endpoint-url",
            &server.endpoint(),
            "--region",
            server.region(),
        ])
        .env("AWS_ACCESS_KEY_ID", server.access_key())
        .env("AWS_SECRET_ACCESS_KEY", server.secret_key())
        .output()
        .unwrap();
    let (code, err) = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_one_line_error(code, &err, &["already a mount point", "s3rolefs unmount"]);
    assert_eq!(
        std::fs::read(mount.path().join("hello.txt")).unwrap(),
        b"hello"
    );
}

/// No credentials anywhere: the message lists what was tried and the ways out.
#[test]
fn no_credentials() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = MountCommand::new(&server, "bkt")
        .without_static_credentials()
        .run_expect_failure(dir.path());
    assert_one_line_error(
        code,
        &err,
        &[
            "no credentials found",
            "AWS_ACCESS_KEY_ID",
            "--no-sign-request",
        ],
    );
}

/// `--no-sign-request` mounts a public bucket without any credentials.
#[test]
fn public_bucket_mounts_without_credentials() {
    let server = server();
    server.set_public_read("bkt", true);
    let mount = MountCommand::new(&server, "bkt")
        .without_static_credentials()
        .args(&["--no-sign-request"])
        .start();
    assert_eq!(
        std::fs::read(mount.path().join("hello.txt")).unwrap(),
        b"hello"
    );
}

/// Runs the mount command inside a private mount namespace prepared by `setup` (a shell
/// snippet run as root before the command), and returns its exit code and stderr.
fn run_in_namespace(server: &TestServer, setup: &str, as_nobody: bool) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let runner = if as_nobody {
        "exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$@\""
    } else {
        "exec \"$@\""
    };
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("{setup} && {runner}"))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_s3rolefs"))
        .args(["mount", "bkt"])
        .arg(dir.path())
        .args([
            "--endpoint-url",
            &server.endpoint(),
            "--region",
            server.region(),
        ])
        .arg("--foreground")
        .env("AWS_ACCESS_KEY_ID", server.access_key())
        .env("AWS_SECRET_ACCESS_KEY", server.secret_key())
        .output()
        .expect("run unshare (util-linux)");
    assert!(mount_type(dir.path()).is_none());
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// No `/dev/fuse`: FUSE is not available, with how to get it.
#[test]
fn dev_fuse_missing() {
    let server = server();
    let (code, err) = run_in_namespace(&server, "mount -t tmpfs tmpfs /dev", false);
    assert_one_line_error(
        code,
        &err,
        &["/dev/fuse is missing", "apt-get install -y fuse3"],
    );
}

/// A non-root user without `fusermount3`: named, with how to install it.
#[test]
fn fusermount3_missing_for_non_root() {
    let server = server();
    let mask = "for p in /usr/bin/fusermount3 /bin/fusermount3; do \
                [ -e $p ] && mount --bind /dev/null $p; done; true";
    let (code, err) = run_in_namespace(&server, mask, true);
    assert_one_line_error(code, &err, &["fusermount3", "apt-get install -y fuse3"]);
}
