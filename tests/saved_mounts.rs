//! Drive mode as a normal user meets it (issue #19, items 1-3): a user made for the test
//! (useradd) saves mounts, mounts them through fusermount3, reads and writes, asks `status`
//! and `list`, unmounts, mounts and unmounts them all, and enables a login unit that
//! `systemd-analyze --user verify` accepts; `allow_other` works once /etc/fuse.conf allows
//! it and is refused with the fix before. Defaults are the user's XDG places: nothing but
//! HOME is given.
//!
//! Runs as root (to create the user; CI does), like the harness's other two-user tests.

mod support;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::mount::{mount_type, wait_unmounted};
use support::{require_fuse, TestServer};

/// A user that exists for one test: its home (0755, so others may reach a shared mount)
/// in a temporary directory; on drop its mounts are detached, its processes ended (each
/// by its id: the mounts this test started) and the user deleted.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    _root: tempfile::TempDir,
}

impl TestUser {
    fn create(tag: &str) -> TestUser {
        // SAFETY: geteuid cannot fail.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test creates a user (useradd) and must run as root, as CI does"
        );
        require_fuse();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata("/dev/fuse").unwrap().permissions(),
        );
        assert_eq!(
            mode & 0o666,
            0o666,
            "/dev/fuse is not open to users (mode {mode:o}) and fusermount3 opens it as the \
             user; fix: chmod 0666 /dev/fuse (scripts/setup does; udev gives it that mode)"
        );
        let root = tempfile::Builder::new()
            .prefix("s3rolefs-user-")
            .tempdir()
            .unwrap();
        set_mode(root.path(), 0o755);
        let name = format!("s3r{tag}{}", std::process::id());
        let home = root.path().join(&name);
        let out = Command::new("useradd")
            .args(["--no-create-home", "--user-group", "--shell", "/bin/sh"])
            .arg("--home-dir")
            .arg(&home)
            .arg(&name)
            .output()
            .expect("useradd (Debian: passwd) is installed");
        assert!(out.status.success(), "useradd {name}: {out:?}");
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").arg(flag).arg(&name).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        std::fs::create_dir(&home).unwrap();
        set_mode(&home, 0o755);
        std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
        // What a login session has (/run/user/UID): the mounts' status sockets go there.
        let runtime = home.join("runtime");
        std::fs::create_dir(&runtime).unwrap();
        set_mode(&runtime, 0o700);
        std::os::unix::fs::chown(&runtime, Some(uid), Some(gid)).unwrap();
        TestUser {
            name,
            uid,
            gid,
            home,
            _root: root,
        }
    }

    /// A command run as this user with an environment built from scratch: HOME, PATH, the
    /// server's keys, no AWS configuration of the machine's.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>, server: &TestServer) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(program)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin")),
            )
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("XDG_RUNTIME_DIR", self.home.join("runtime"))
            .env("AWS_ACCESS_KEY_ID", server.access_key())
            .env("AWS_SECRET_ACCESS_KEY", server.secret_key())
            .env("AWS_CONFIG_FILE", self.home.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.home.join("no-aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .current_dir(&self.home)
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// `s3rolefs ARGS` as this user.
    fn s3rolefs(&self, server: &TestServer, args: &[&str]) -> Output {
        self.command(env!("CARGO_BIN_EXE_s3rolefs"), server)
            .args(args)
            .output()
            .unwrap()
    }

    /// `sh -c SCRIPT` as this user.
    fn sh(&self, server: &TestServer, script: &str) -> Output {
        self.command("sh", server)
            .args(["-c", script])
            .output()
            .unwrap()
    }

    /// A directory of this user's under its home.
    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.home.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(self.uid), Some(self.gid)).unwrap();
        dir
    }

    /// The ids of this user's processes (the mounts this test started).
    fn processes(&self) -> Vec<libc::pid_t> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        let line = s.lines().find(|l| l.starts_with("Uid:"))?;
                        line.split_whitespace().nth(1)?.parse::<u32>().ok()
                    })
                    == Some(self.uid)
            })
            .collect()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        for dir in ["data", "logs", "shared"].map(|d| self.home.join(d)) {
            if mount_type(&dir).is_some() {
                let _ = Command::new("umount").arg("-l").arg(&dir).status();
            }
        }
        for signal in [libc::SIGTERM, libc::SIGKILL] {
            for pid in self.processes() {
                // SAFETY: a signal to a process of the test's own user, by its id.
                unsafe { libc::kill(pid, signal) };
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn server() -> TestServer {
    let server = TestServer::start();
    server.create_bucket("bkt");
    server.put("bkt", "hello.txt", b"hello".to_vec());
    server.put("bkt", "logs/app.log", b"started".to_vec());
    server
}

/// The line of `list` that names `name`.
fn list_line(listing: &str, name: &str) -> String {
    listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("{name} not listed:\n{listing}"))
        .to_string()
}

/// The mount options mountinfo shows for `dir` (`user_id=` names who mounted it).
fn mount_options(dir: &Path) -> String {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap()))
        .and_then(|l| l.split_once(" - "))
        .map(|(_, right)| right.to_string())
        .unwrap_or_default()
}

/// A normal user's whole day: add, mount NAME (through fusermount3), write and read,
/// status, list, unmount NAME, mount --all / unmount --all, remove; the file in the
/// user's XDG config place, the journal in its XDG state place, the caches in its XDG cache
/// place.
#[test]
fn a_user_saves_mounts_uses_and_unmounts_them() {
    let server = server();
    let user = TestUser::create("a");
    let data = user.dir("data");
    let logs = user.dir("logs");
    let endpoint = server.endpoint();
    let common = ["--endpoint-url", &endpoint, "--region", server.region()];

    let out = user.s3rolefs(
        &server,
        &[&["add", "data", "bkt", "data"][..], &common].concat(),
    );
    assert!(ok(&out).contains("saved data"), "{out:?}");
    let out = user.s3rolefs(
        &server,
        &[
            &["add", "logs", "bkt:logs/", "logs", "-o", "read_only"][..],
            &common,
        ]
        .concat(),
    );
    ok(&out);
    let file = user.home.join(".config/s3rolefs/mounts.toml");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(
        saved.contains(&format!("mountpoint = \"{}\"", data.display())),
        "{saved}"
    );
    assert!(saved.contains("read_only = true"), "{saved}");
    assert!(
        !saved.contains(server.secret_key()),
        "no secret in the file: {saved}"
    );
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&file).unwrap()),
        user.uid
    );

    let listing = ok(&user.s3rolefs(&server, &["list"]));
    assert!(
        list_line(&listing, "data").contains("not mounted"),
        "{listing}"
    );

    ok(&user.s3rolefs(&server, &["mount", "data"]));
    assert_eq!(mount_type(&data).as_deref(), Some("fuse.s3rolefs"));
    let options = mount_options(&data);
    assert!(
        options.contains(&format!("user_id={}", user.uid)),
        "mounted by the user through fusermount3: {options}"
    );
    let out = user.sh(
        &server,
        "cat data/hello.txt && echo written-by-user > data/new.txt && cat data/new.txt",
    );
    assert_eq!(ok(&out), "hellowritten-by-user\n");
    assert_eq!(
        server.get("bkt", "new.txt").unwrap().as_ref(),
        b"written-by-user\n"
    );
    // The journal is in the user's XDG state place, the caches in its XDG cache place.
    assert!(user.home.join(".local/state/s3rolefs/journal").is_dir());
    assert!(user.home.join(".cache/s3rolefs/meta").is_dir());
    assert!(!user.home.join(".local/state/s3rolefs/meta").exists());

    let status = ok(&user.s3rolefs(&server, &["status"]));
    assert!(
        status.contains(data.to_str().unwrap()) && status.contains("bkt"),
        "{status}"
    );
    let listing = ok(&user.s3rolefs(&server, &["list"]));
    assert!(
        list_line(&listing, "data").contains("mounted (pid "),
        "{listing}"
    );
    assert!(
        list_line(&listing, "logs").contains("not mounted"),
        "{listing}"
    );

    ok(&user.s3rolefs(&server, &["unmount", "data"]));
    assert!(wait_unmounted(&data));
    let listing = ok(&user.s3rolefs(&server, &["list"]));
    assert!(
        list_line(&listing, "data").contains("not mounted"),
        "{listing}"
    );

    let out = ok(&user.s3rolefs(&server, &["mount", "--all"]));
    assert!(
        out.contains("data: mounted") && out.contains("logs: mounted"),
        "{out}"
    );
    let out = user.sh(
        &server,
        "cat logs/app.log; echo x > logs/new 2>/dev/null && echo writable",
    );
    assert_eq!(
        text(&out.stdout),
        "started",
        "read-only prefix mount: {out:?}"
    );
    let out = ok(&user.s3rolefs(&server, &["mount", "--all"]));
    assert!(out.contains("data: already mounted"), "{out}");
    ok(&user.s3rolefs(&server, &["unmount", "--all"]));
    assert!(wait_unmounted(&data) && wait_unmounted(&logs));

    ok(&user.s3rolefs(&server, &["remove", "logs"]));
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(
        !saved.contains("[logs]") && saved.contains("[data]"),
        "{saved}"
    );
    let out = user.s3rolefs(&server, &["mount", "logs"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no saved mount \"logs\""),
        "{out:?}"
    );
}

/// A bad entry stops `mount NAME` with the file, the line and the fix.
#[test]
fn a_bad_entry_names_its_file_and_line() {
    let server = server();
    let user = TestUser::create("b");
    let dir = user.home.join(".config/s3rolefs");
    let file = dir.join("mounts.toml");
    user.sh(&server, &format!("mkdir -p {}", dir.display()));
    std::fs::write(
        &file,
        "[data]\nbucket = \"bkt\"\nmountpoint = \"~/data\"\nregoin = \"x\"\n",
    )
    .unwrap();
    let out = user.s3rolefs(&server, &["mount", "data"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "s3rolefs: {}:4: unknown option \"regoin\"",
            file.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// `enable NAME` writes a user unit that systemd-analyze accepts (and, with no user
/// manager reachable, prints the command to enable it); `disable` removes it. The system
/// unit (`--system --print`) verifies too.
#[test]
fn login_units_verify_and_go_away() {
    let server = server();
    let user = TestUser::create("c");
    user.dir("data");
    let endpoint = server.endpoint();
    ok(&user.s3rolefs(
        &server,
        &[
            "add",
            "data",
            "bkt",
            "data",
            "--endpoint-url",
            &endpoint,
            "--write-back",
        ],
    ));
    let out = ok(&user.s3rolefs(&server, &["enable", "data"]));
    let unit = user.home.join(".config/systemd/user/s3rolefs-data.service");
    assert!(unit.is_file(), "{out}");
    if !Path::new("/run/systemd/system").is_dir() {
        assert!(
            out.contains("systemctl --user enable s3rolefs-data.service"),
            "{out}"
        );
    }
    let text_of_unit = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "Restart=on-failure",
        "WantedBy=default.target",
        &format!(
            "ExecStart={} mount data --foreground",
            env!("CARGO_BIN_EXE_s3rolefs")
        ),
        &format!("ExecStop={} unmount data", env!("CARGO_BIN_EXE_s3rolefs")),
    ] {
        assert!(
            text_of_unit.lines().any(|l| l == line),
            "{line}:\n{text_of_unit}"
        );
    }
    // Verified by root in a user manager's setting (--user): systemd-analyze makes its
    // working directory in /tmp whatever TMPDIR says, and /tmp may not be open to users.
    let analyze = systemd_analyze();
    let runtime = tempfile::tempdir().unwrap();
    let out = Command::new(analyze)
        .args(["--user", "verify", "--man=no"])
        .arg(&unit)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .output()
        .unwrap();
    assert_verified(&out);
    let listing = ok(&user.s3rolefs(&server, &["list"]));
    assert!(
        list_line(&listing, "data").trim_end().ends_with("enabled"),
        "{listing}"
    );

    let out = user.s3rolefs(&server, &["enable", "data", "--system"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("needs root"), "{out:?}");
    let system = ok(&user.s3rolefs(&server, &["enable", "data", "--system", "--print"]));
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("s3rolefs-data.service");
    std::fs::write(&path, &system).unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    assert_verified(&out);

    let out = ok(&user.s3rolefs(&server, &["disable", "data"]));
    assert!(!unit.exists(), "{out}");
    let listing = ok(&user.s3rolefs(&server, &["list"]));
    assert!(
        list_line(&listing, "data").trim_end().ends_with('-'),
        "{listing}"
    );
}

/// `allow_other` as a user: refused with the fix while /etc/fuse.conf does not allow it;
/// once it does (here a fuse.conf bound over it in a private mount namespace), another user
/// reads the mount.
#[test]
fn allow_other_follows_fuse_conf() {
    let server = server();
    let user = TestUser::create("d");
    let shared = user.dir("shared");
    let endpoint = server.endpoint();
    ok(&user.s3rolefs(
        &server,
        &[
            "add",
            "shared",
            "bkt",
            "shared",
            "--endpoint-url",
            &endpoint,
            "--allow-other",
        ],
    ));
    let conf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(conf.path(), "# fuse.conf of the test\n").unwrap();
    set_mode(conf.path(), 0o644);
    let in_namespace = |conf_text: &str| -> Output {
        std::fs::write(conf.path(), conf_text).unwrap();
        let s3rolefs = env!("CARGO_BIN_EXE_s3rolefs");
        let as_user = format!(
            "setpriv --reuid={} --regid={} --init-groups --",
            user.uid, user.gid
        );
        let script = format!(
            "mount --bind {conf} /etc/fuse.conf && {as_user} {s3rolefs} mount shared && \
             setpriv --reuid=65534 --regid=65534 --clear-groups -- cat {file}; \
             status=$?; {as_user} {s3rolefs} unmount shared; exit $status",
            conf = conf.path().display(),
            file = shared.join("hello.txt").display(),
        );
        // unshare and the bind mount need root: the user steps switch inside the script.
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &user.home)
            .env("XDG_RUNTIME_DIR", user.home.join("runtime"))
            .env("AWS_ACCESS_KEY_ID", server.access_key())
            .env("AWS_SECRET_ACCESS_KEY", server.secret_key())
            .env("AWS_CONFIG_FILE", user.home.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                user.home.join("no-aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .current_dir(&user.home);
        cmd.output().expect("unshare (util-linux) is installed")
    };
    let refused = in_namespace("# mount_max = 1000\n");
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("user_allow_other") && stderr.contains("/etc/fuse.conf"),
        "{stderr}"
    );
    let allowed = in_namespace("user_allow_other\n");
    assert_eq!(ok(&allowed), "hello", "{allowed:?}");
    assert!(mount_type(&shared).is_none());
}

/// systemd-analyze, which CI must have (scripts/setup installs systemd).
fn systemd_analyze() -> &'static str {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "systemd-analyze is missing: install systemd (scripts/setup does) to verify the login units"
    );
    "systemd-analyze"
}

#[track_caller]
fn assert_verified(out: &Output) {
    let stderr = text(&out.stderr);
    // Complaints about other units of this machine are not ours.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("s3rolefs")).collect();
    assert!(out.status.success() && ours.is_empty(), "{stderr}");
}
