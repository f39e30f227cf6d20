//! `s3rolefs status` as a user meets it: real mounts of the real binary report their bucket,
//! credentials (never a secret), and the uploads in progress through their control socket;
//! the socket is private (0600 in a 0700 directory, and answers only root and the mount's
//! owner), and it goes when the mount goes.

mod support;

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde_json::Value;
use support::imds::{accepted_by, ImdsEmulator, ImdsOptions};
use support::mount::{s3rolefs_command, wait_unmounted};
use support::{Mount, MountCommand, TestServer};

const MIB: usize = 1024 * 1024;

fn server() -> TestServer {
    let server = TestServer::start();
    server.create_bucket("bkt");
    server.put("bkt", "logs/old.txt", b"old".to_vec());
    server
}

/// Runs `s3rolefs ARGS` in a clean environment (as [`s3rolefs_command`] builds it).
fn s3rolefs(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    s3rolefs_command(home.path()).args(args).output().unwrap()
}

/// `s3rolefs status --json`: its stdout, and the documents it lists.
fn status_json() -> (String, Vec<Value>) {
    let out = s3rolefs(&["status", "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    let documents: Vec<Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("status --json is not a JSON array ({e}):\n{stdout}"));
    (stdout, documents)
}

/// The path of the mount point as the mount reports it (its parent resolved).
fn mountpoint_of(mount: &Mount) -> String {
    let path = mount.path();
    let parent = path.parent().unwrap().canonicalize().unwrap();
    parent
        .join(path.file_name().unwrap())
        .to_string_lossy()
        .into_owned()
}

/// The document of the mount at `mountpoint`, if listed.
fn document_of<'a>(documents: &'a [Value], mountpoint: &str) -> Option<&'a Value> {
    documents
        .iter()
        .find(|d| d["mountpoint"].as_str() == Some(mountpoint))
}

/// Where this user's mounts keep their sockets (the mount runs with no XDG_RUNTIME_DIR).
fn socket_dir() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    match unsafe { libc::geteuid() } {
        0 => PathBuf::from("/run/s3rolefs"),
        uid => PathBuf::from(format!("/tmp/s3rolefs-{uid}")),
    }
}

fn socket_of(mount: &Mount) -> PathBuf {
    socket_dir().join(format!("{}.sock", mount.pid().unwrap()))
}

/// Waits (up to 10 s) for `condition`; panics with `what` if it never holds.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A mount is listed with its mount point, bucket and prefix, region, endpoint and pid; its
/// credentials with their source and masked key, and no secret anywhere in the output,
/// JSON or text. `status MOUNTPOINT` shows that mount alone.
#[test]
fn status_lists_the_mount_without_secrets() {
    let server = server();
    let mount = MountCommand::new(&server, "bkt:logs/").start();
    let mountpoint = mountpoint_of(&mount);
    let (stdout, documents) = status_json();
    let doc = document_of(&documents, &mountpoint)
        .unwrap_or_else(|| panic!("{mountpoint} not listed:\n{stdout}"));
    assert_eq!(doc["source"], "bkt:logs/");
    assert_eq!(doc["region"], server.region());
    assert_eq!(doc["pid"], mount.pid().unwrap());
    assert_eq!(doc["read_only"], false);
    let endpoint = doc["endpoint"].as_str().unwrap();
    assert!(
        endpoint.starts_with(&server.endpoint()),
        "{endpoint} vs {}",
        server.endpoint()
    );
    let credentials = &doc["credentials"];
    assert_eq!(credentials["source"], "environment");
    assert_eq!(credentials["expiry"], Value::Null, "long-term keys");
    let masked = credentials["masked_key"].as_str().unwrap();
    assert!(masked.contains('*'), "{masked}");
    assert!(
        !stdout.contains(server.secret_key()),
        "secret leaked:\n{stdout}"
    );
    assert!(
        !stdout.contains(server.access_key()),
        "whole key id:\n{stdout}"
    );
    assert!(doc["fs"]["cache"]["capacity"].as_u64().unwrap() > 0);

    let text = s3rolefs(&["status", &mountpoint]);
    let text_out = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.status.success(), "{text:?}");
    assert!(
        text_out.starts_with(&format!("{mountpoint}  bkt:logs/  (pid ")),
        "{text_out}"
    );
    assert!(
        text_out.contains(&format!(
            "  credentials  environment (key {masked}), never expire"
        )),
        "{text_out}"
    );
    assert!(text_out.contains("  uploads      none"), "{text_out}");
    assert!(!text_out.contains(server.secret_key()), "{text_out}");
    assert_eq!(
        text_out.lines().filter(|l| !l.starts_with(' ')).count(),
        1,
        "one mount only:\n{text_out}"
    );
}

/// Credentials from the instance role show source imds, their expiry (what IMDS said) and
/// the next renewal — and neither the secret key nor the session token.
#[test]
fn instance_role_credentials_show_source_and_expiry() {
    let server = Arc::new(server());
    let imds = ImdsEmulator::start(ImdsOptions {
        on_issue: Some(accepted_by(&server)),
        ..ImdsOptions::default()
    });
    let mount = MountCommand::new(&server, "bkt")
        .without_static_credentials()
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.endpoint())
        .start();
    let mountpoint = mountpoint_of(&mount);
    let (stdout, documents) = status_json();
    let doc = document_of(&documents, &mountpoint)
        .unwrap_or_else(|| panic!("{mountpoint} not listed:\n{stdout}"));
    let credentials = &doc["credentials"];
    assert!(
        credentials["source"].as_str().unwrap().starts_with("imds"),
        "{credentials}"
    );
    assert_eq!(credentials["refreshable"], true);
    assert!(credentials["next_refresh"].is_u64(), "{credentials}");
    let issued = imds.issued();
    let current = issued.last().expect("IMDS issued credentials");
    let expiry = current.expires_at.duration_since(UNIX_EPOCH).unwrap();
    assert_eq!(credentials["expiry"], expiry.as_secs(), "{credentials}");
    for set in &issued {
        assert!(!stdout.contains(&set.secret_access_key), "secret leaked");
        assert!(!stdout.contains(&set.token), "session token leaked");
    }
    let text = s3rolefs(&["status", &mountpoint]);
    let text_out = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text_out.contains(", expire "), "{text_out}");
    assert!(text_out.contains("next renewal in "), "{text_out}");
    for set in &issued {
        assert!(!text_out.contains(&set.secret_access_key), "secret leaked");
        assert!(!text_out.contains(&set.token), "session token leaked");
    }
}

/// A file being written through a `std::fs::File` (open, not closed) is listed as an upload
/// in progress: its path inside the mount and the bytes written so far. Once closed, it is
/// no longer listed, and the bucket has it.
#[test]
fn open_file_is_an_upload_in_progress_until_closed() {
    let server = server();
    let mount = MountCommand::new(&server, "bkt:logs/").start();
    let mountpoint = mountpoint_of(&mount);
    std::fs::create_dir(mount.path().join("sub")).unwrap();
    let mut file = std::fs::File::create(mount.path().join("sub/big.bin")).unwrap();
    file.write_all(&vec![7u8; 3 * MIB]).unwrap();

    let (stdout, documents) = status_json();
    let doc = document_of(&documents, &mountpoint).unwrap();
    let uploads = doc["fs"]["uploads"].as_array().unwrap();
    assert_eq!(uploads.len(), 1, "{stdout}");
    assert_eq!(uploads[0]["path"], "sub/big.bin");
    assert_eq!(uploads[0]["size"], 3 * MIB);
    // Not `dirty`: every process this test binary starts (status, other tests' commands)
    // closes its inherited copy of the descriptor at exec, and each close uploads — see the
    // next test for a writer that holds data back.
    assert!(doc["fs"]["open_files"].as_u64().unwrap() >= 1, "{stdout}");
    let text = String::from_utf8_lossy(&s3rolefs(&["status", &mountpoint]).stdout).into_owned();
    assert!(text.contains("  uploads      1 in progress"), "{text}");
    assert!(text.contains("sub/big.bin  3.0 MiB written, "), "{text}");

    drop(file);
    assert_eq!(
        server.get("bkt", "logs/sub/big.bin").map(|b| b.len()),
        Some(3 * MIB),
        "close uploaded it"
    );
    // The kernel sends `release` after close() returned: the writer goes soon after.
    eventually(
        "the upload leaves the status once the file is closed",
        || {
            let (_, documents) = status_json();
            document_of(&documents, &mountpoint).unwrap()["fs"]["uploads"]
                .as_array()
                .unwrap()
                .is_empty()
        },
    );
}

/// Writes 3 MiB to `$1` with bash builtins only, then holds the file open until a line
/// arrives on stdin. Nothing closes a descriptor of the file meanwhile — no fork (a child's
/// copy of it closes at exit), no per-command redirection (bash closes the copy it makes) —
/// as every close flushes, which uploads the file.
const HOLDING_WRITER: &str = r#"
chunk=x
for ((i = 0; i < 16; i++)); do chunk=$chunk$chunk; done
exec >"$1"
for ((i = 0; i < 48; i++)); do printf '%s' "$chunk"; done
read -r _
"#;

/// Data written but not flushed shows as not yet in S3, with its size; after close it is
/// in the bucket and the upload is gone.
#[test]
fn unflushed_data_shows_as_not_yet_in_s3() {
    use std::process::Stdio;
    let server = server();
    let mount = MountCommand::new(&server, "bkt:logs/").start();
    let mountpoint = mountpoint_of(&mount);
    let mut writer = Command::new("bash")
        .arg("-c")
        .arg(HOLDING_WRITER)
        .arg("bash")
        .arg(mount.path().join("held.bin"))
        .stdin(Stdio::piped())
        .spawn()
        .expect("run bash");
    let upload = |documents: &[Value]| -> Option<Value> {
        let doc = document_of(documents, &mountpoint)?;
        doc["fs"]["uploads"].as_array()?.first().cloned()
    };
    let mut last = (String::new(), None);
    eventually("the writer wrote its 3 MiB", || {
        let (stdout, documents) = status_json();
        last = (stdout, upload(&documents));
        last.1.as_ref().is_some_and(|u| u["size"] == 3 * MIB)
    });
    let (stdout, held) = last;
    let held = held.unwrap();
    assert_eq!(held["path"], "held.bin", "{stdout}");
    assert_eq!(held["dirty"], true, "{stdout}");
    assert_ne!(
        server.get("bkt", "logs/held.bin").map(|b| b.len()),
        Some(3 * MIB),
        "not uploaded yet"
    );
    let text = String::from_utf8_lossy(&s3rolefs(&["status", &mountpoint]).stdout).into_owned();
    assert!(
        text.contains("held.bin  3.0 MiB written, not yet in S3"),
        "{text}"
    );

    writeln!(writer.stdin.as_mut().unwrap()).unwrap();
    assert!(writer.wait().unwrap().success());
    assert_eq!(
        server.get("bkt", "logs/held.bin").map(|b| b.len()),
        Some(3 * MIB),
        "uploaded at close"
    );
    eventually(
        "the upload leaves the status once the file is closed",
        || {
            let (_, documents) = status_json();
            upload(&documents).is_none()
        },
    );
}

/// The socket is `<pid>.sock`, mode 0600, in a 0700 directory of the user; when the mount
/// is unmounted, the socket is removed and `status` no longer lists the mount.
#[test]
fn socket_is_private_and_goes_with_the_mount() {
    let server = server();
    let mount = MountCommand::new(&server, "bkt").start();
    let mountpoint = mountpoint_of(&mount);
    let socket = socket_of(&mount);
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket(), "{}", socket.display());
    assert_eq!(meta.mode() & 0o777, 0o600, "{}", socket.display());
    let dir = std::fs::symlink_metadata(socket_dir()).unwrap();
    assert!(dir.is_dir());
    assert_eq!(dir.mode() & 0o777, 0o700);
    // SAFETY: geteuid cannot fail.
    assert_eq!(dir.uid(), unsafe { libc::geteuid() });

    let out = s3rolefs(&["unmount", &mountpoint]);
    assert!(out.status.success(), "{out:?}");
    assert!(wait_unmounted(mount.path()));
    eventually("the socket is removed when the mount ends", || {
        !socket.exists()
    });
    let (stdout, documents) = status_json();
    assert!(
        document_of(&documents, &mountpoint).is_none(),
        "still listed:\n{stdout}"
    );
    let text = String::from_utf8_lossy(&s3rolefs(&["status"]).stdout).into_owned();
    assert!(!text.contains(&mountpoint), "{text}");
}

/// A mount ended by SIGTERM removes its socket too.
#[test]
fn socket_goes_when_a_signal_ends_the_mount() {
    let server = server();
    let mount = MountCommand::new(&server, "bkt").start();
    let socket = socket_of(&mount);
    assert!(socket.exists());
    let pid = mount.pid().unwrap() as libc::pid_t;
    // SAFETY: a signal to the mount's own process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(wait_unmounted(mount.path()));
    eventually("the socket is removed after SIGTERM", || !socket.exists());
}

/// `status DIR` of a directory that is not an s3rolefs mount fails with one line that says
/// so and how to list the mounts.
#[test]
fn status_of_a_directory_that_is_not_a_mount_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = s3rolefs(&["status", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("s3rolefs: ") && stderr.contains("is not an s3rolefs mount"),
        "{stderr}"
    );
    assert!(stderr.contains("s3rolefs status"), "{stderr}");
}

/// Runs `s3rolefs ARGS` as the user nobody (uid 65534), with `XDG_RUNTIME_DIR` if given.
fn as_nobody(args: &[&str], runtime_dir: Option<&Path>) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_s3rolefs"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path());
    if let Some(dir) = runtime_dir {
        cmd.env("XDG_RUNTIME_DIR", dir);
    }
    cmd.output().expect("run setpriv (util-linux)")
}

/// Removes a directory tree however the test ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Another user (nobody) learns nothing of root's mount: not through `status` (the
/// directory is root's alone: the mount shows without details), and not even when handed
/// a path to the socket it may open — the mount checks who connects and says nothing.
/// Runs as root (it switches users with setpriv), as the harness's other such tests do.
#[test]
fn other_users_cannot_read_the_status() {
    let server = server();
    let mount = MountCommand::new(&server, "bkt:logs/").start();
    let mountpoint = mountpoint_of(&mount);

    let out = as_nobody(&["status", "--json"], None);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let documents: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert!(document_of(&documents, &mountpoint).is_none(), "{stdout}");
    assert!(!stdout.contains("bkt"), "{stdout}");

    let out = as_nobody(&["status"], None);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{mountpoint}  ")))
        .unwrap_or_else(|| panic!("{mountpoint} not listed:\n{text}"));
    assert!(line.contains("(no status: "), "{line}");
    assert!(!text.contains("credentials"), "{text}");
    let out = as_nobody(&["status", &mountpoint], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no status"),
        "{out:?}"
    );

    // Past the directory and the socket's mode: a link to the socket (same inode) in a
    // directory nobody owns, the inode opened to everyone. The mount still refuses.
    let socket = socket_of(&mount);
    let runtime_dir = tempfile::Builder::new()
        .prefix("s3rolefs-status-test-")
        .tempdir_in(socket_dir().parent().unwrap())
        .unwrap()
        .keep();
    let _cleanup = RemoveOnDrop(runtime_dir.clone());
    std::fs::set_permissions(&runtime_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let nobody_dir = runtime_dir.join("s3rolefs");
    std::fs::create_dir(&nobody_dir).unwrap();
    std::fs::set_permissions(&nobody_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&nobody_dir, Some(65534), Some(65534)).unwrap();
    std::fs::hard_link(&socket, nobody_dir.join("1.sock")).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody(&["status", "--json"], Some(&runtime_dir));
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(stdout.trim(), "[]", "the mount answered nobody:\n{stdout}");
    assert!(
        mount
            .stderr_log()
            .contains("may not read this mount's status"),
        "the refusal is the mount's, not the file system's:\n{}",
        mount.stderr_log()
    );
    // Unchanged for root.
    let (_, documents) = status_json();
    assert!(document_of(&documents, &mountpoint).is_some());
}
