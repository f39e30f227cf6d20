//! Running the real `s3rolefs` binary against a [`TestServer`]: a kernel FUSE mount in a
//! temporary directory that is always unmounted again — also when the test panics — and
//! never deleted while still mounted (that would delete through the mount into the bucket).
//!
//! The child's environment is built from scratch: only the server's key pair, a `HOME` inside
//! the temporary directory and non-existent AWS config files, so nothing of the developer's
//! or CI's AWS setup (profiles, instance metadata) leaks into a test.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::s3server::TestServer;

/// How long a mount may take to appear, or a failing mount command to exit.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a failing mount command that already printed its error may take to exit.
const SAID_EXIT_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the foreground process may take to exit after its mount is gone.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// Panics unless this machine can run kernel FUSE mounts: `/dev/fuse` must exist and
/// `fusermount3` be on PATH (non-root mounts need it, and the harness unmounts with it).
/// Never skips: CI must fail loudly when FUSE is missing.
pub fn require_fuse() {
    let mut missing = Vec::new();
    if !Path::new("/dev/fuse").exists() {
        missing.push("/dev/fuse does not exist (load the fuse module, or run the container with --device /dev/fuse --cap-add SYS_ADMIN)");
    }
    if find_on_path("fusermount3").is_none() {
        missing.push("fusermount3 is not on PATH");
    }
    assert!(
        missing.is_empty(),
        "FUSE mount tests cannot run: {}. Fix: apt-get install -y fuse3",
        missing.join("; ")
    );
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The `s3rolefs` binary with an environment built from scratch: `PATH`, `HOME` = `home`,
/// AWS config files that do not exist, IMDS disabled — nothing of the machine's AWS setup.
pub fn s3rolefs_command(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3rolefs"));
    cmd.env_clear();
    cmd.env(
        "PATH",
        std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/sbin:/usr/bin:/sbin:/bin")),
    );
    cmd.env("HOME", home);
    cmd.env("AWS_CONFIG_FILE", home.join("no-aws-config"));
    cmd.env(
        "AWS_SHARED_CREDENTIALS_FILE",
        home.join("no-aws-credentials"),
    );
    cmd.env("AWS_EC2_METADATA_DISABLED", "true");
    cmd.env("RUST_BACKTRACE", "1");
    cmd
}

/// The `s3rolefs mount` command line and environment for one test.
pub struct MountCommand {
    source: String,
    endpoint: String,
    region: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    static_credentials: Option<(String, String)>,
}

impl MountCommand {
    /// `s3rolefs mount SOURCE DIR --endpoint-url <server> --region <server region>` with the
    /// server's default key pair in `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
    pub fn new(server: &TestServer, source: &str) -> Self {
        Self {
            source: source.to_owned(),
            endpoint: server.endpoint(),
            region: server.region().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            static_credentials: Some((
                server.access_key().to_owned(),
                server.secret_key().to_owned(),
            )),
        }
    }

    /// The same against any S3 endpoint (another server than [`TestServer`], e.g. moto),
    /// with a static key pair.
    pub fn to_endpoint(
        source: &str,
        endpoint: &str,
        region: &str,
        access_key: &str,
        secret_key: &str,
    ) -> Self {
        Self {
            source: source.to_owned(),
            endpoint: endpoint.to_owned(),
            region: region.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            static_credentials: Some((access_key.to_owned(), secret_key.to_owned())),
        }
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    pub fn region(mut self, region: &str) -> Self {
        self.region = region.to_owned();
        self
    }

    pub fn endpoint(mut self, endpoint: &str) -> Self {
        self.endpoint = endpoint.to_owned();
        self
    }

    /// Adds (or overrides) a variable of the child's environment.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Leaves `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` unset, for tests of the other
    /// credential sources.
    pub fn without_static_credentials(mut self) -> Self {
        self.static_credentials = None;
        self
    }

    fn command(&self, mountpoint: &Path, home: &Path, foreground: bool) -> Command {
        let mut cmd = s3rolefs_command(home);
        cmd.arg("mount").arg(&self.source).arg(mountpoint);
        cmd.args(["--endpoint-url", &self.endpoint, "--region", &self.region]);
        if foreground {
            cmd.arg("--foreground");
        }
        cmd.args(&self.args);
        if !self.args.iter().any(|a| a == "--cache-dir") {
            // Each mount its own journal: the machine's default (/var/lib/s3rolefs for root)
            // would be shared by every test, and a file one test left there could be
            // "recovered" into another test's bucket on the same port.
            cmd.arg("--cache-dir").arg(home.join("cache"));
        }
        cmd.env("RUST_LOG", "s3rolefs=debug");
        if let Some((access_key, secret_key)) = &self.static_credentials {
            cmd.env("AWS_ACCESS_KEY_ID", access_key);
            cmd.env("AWS_SECRET_ACCESS_KEY", secret_key);
        }
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Mounts with `--foreground` and waits until the mount is up. Panics (with the child's
    /// stderr) if the child exits or the mount does not appear in time.
    pub fn start(self) -> Mount {
        require_fuse();
        let mut mount = Mount::prepare();
        let mut cmd = self.command(&mount.mountpoint, &mount.home(), true);
        mount.redirect_output(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run s3rolefs: {e}"));
        mount.child = Some(child);
        mount.wait_until_mounted();
        mount
    }

    /// Mounts WITHOUT `--foreground`: the command daemonizes and should return once the mount
    /// is ready. Returns the mount (unmounted on drop if it came up), the command's exit
    /// status and its stderr. Panics if the command does not return in time.
    pub fn start_daemon(self) -> (Mount, ExitStatus, String) {
        require_fuse();
        let mut mount = Mount::prepare();
        let mut cmd = self.command(&mount.mountpoint, &mount.home(), false);
        mount.redirect_output(&mut cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run s3rolefs: {e}"));
        let status = wait_bounded(&mut child, MOUNT_TIMEOUT).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "s3rolefs mount (daemon mode) did not return within {MOUNT_TIMEOUT:?}; stderr:\n{}",
                mount.stderr_log()
            )
        });
        mount.mounted = mount_type(&mount.mountpoint).is_some();
        let stderr = mount.stderr_log();
        (mount, status, stderr)
    }

    /// Runs the mount command in the foreground on `mountpoint`, expecting it to fail.
    /// Returns its exit code and stderr. Panics if it mounts anyway, does not exit in time,
    /// or is killed by a signal.
    pub fn run_expect_failure(self, mountpoint: &Path) -> (i32, String) {
        let home = TempDir::new().expect("create temp dir");
        let log_path = home.path().join("stderr.log");
        let mut cmd = self.command(mountpoint, home.path(), true);
        cmd.stdout(Stdio::null());
        cmd.stderr(File::create(&log_path).expect("create stderr log"));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run s3rolefs: {e}"));
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let deadline = Instant::now() + MOUNT_TIMEOUT;
        let mut said_at: Option<Instant> = None;
        loop {
            if let Some(status) = child.try_wait().expect("wait for s3rolefs") {
                let Some(code) = status.code() else {
                    panic!(
                        "s3rolefs mount was killed by a signal ({status}); stderr:\n{}",
                        read_log()
                    );
                };
                return (code, read_log());
            }
            if mount_type(mountpoint).is_some() {
                unmount(mountpoint);
                let _ = wait_bounded(&mut child, EXIT_TIMEOUT).or_else(|| kill(&mut child));
                panic!(
                    "s3rolefs mount was expected to fail but mounted {}; stderr:\n{}",
                    mountpoint.display(),
                    read_log()
                );
            }
            // The command said why it fails and is on its way out: a machine whose disk is
            // saturated by the other tests may take long to page in its exit path (seen
            // twice: 20 s in `folio_wait_bit_common` after the error was printed). That is
            // the machine, not the command: it gets longer.
            if said_at.is_none() && read_log().contains("s3rolefs: ") {
                said_at = Some(Instant::now());
            }
            let deadline = said_at.map_or(deadline, |at| deadline.max(at + SAID_EXIT_TIMEOUT));
            if Instant::now() >= deadline {
                let stuck = where_stuck(child.id());
                kill(&mut child);
                panic!(
                    "s3rolefs mount did not exit within {MOUNT_TIMEOUT:?} ({stuck}); stderr:\n{}",
                    read_log()
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

/// Runs `s3rolefs mount` in the foreground expecting failure; see
/// [`MountCommand::run_expect_failure`].
pub fn run_mount_expect_failure(
    server: &TestServer,
    source: &str,
    mountpoint: &Path,
    extra_args: &[&str],
) -> (i32, String) {
    MountCommand::new(server, source)
        .args(extra_args)
        .run_expect_failure(mountpoint)
}

/// A live `s3rolefs` mount in a temporary directory.
pub struct Mount {
    /// Holds `mnt/` (the mount point), `home/`-like files and the output logs.
    root: Option<TempDir>,
    mountpoint: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    mounted: bool,
}

impl Mount {
    /// Mounts `source` ("bucket" or "bucket:prefix/") from `server` in the foreground.
    pub fn start(server: &TestServer, source: &str, extra_args: &[&str]) -> Mount {
        MountCommand::new(server, source).args(extra_args).start()
    }

    /// Mounts through the daemonizing path; see [`MountCommand::start_daemon`].
    pub fn start_daemon(
        server: &TestServer,
        source: &str,
        extra_args: &[&str],
    ) -> (Mount, ExitStatus, String) {
        MountCommand::new(server, source)
            .args(extra_args)
            .start_daemon()
    }

    fn prepare() -> Mount {
        let root = tempfile::Builder::new()
            .prefix("s3rolefs-test-")
            .tempdir()
            .expect("create temp dir");
        let mountpoint = root.path().join("mnt");
        std::fs::create_dir(&mountpoint).expect("create mount point");
        let log_path = root.path().join("stderr.log");
        Mount {
            root: Some(root),
            mountpoint,
            log_path,
            child: None,
            mounted: false,
        }
    }

    /// Sends the child's stderr (and stdout) to files: unlike pipes, files never block a
    /// chatty child and stay readable after a daemon detaches.
    fn redirect_output(&self, cmd: &mut Command) {
        cmd.stderr(File::create(&self.log_path).expect("create stderr log"));
        cmd.stdout(File::create(self.home().join("stdout.log")).expect("create stdout log"));
    }

    /// The temporary directory holding the mount point and logs; also the child's `HOME`.
    fn home(&self) -> PathBuf {
        self.mountpoint
            .parent()
            .expect("mount point is inside the temp dir")
            .to_path_buf()
    }

    fn wait_until_mounted(&mut self) {
        let deadline = Instant::now() + MOUNT_TIMEOUT;
        loop {
            match mount_type(&self.mountpoint) {
                Some(t) if t == "fuse.s3rolefs" || t == "fuse" => {
                    self.mounted = true;
                    return;
                }
                Some(other) => {
                    self.mounted = true;
                    panic!(
                        "{} is mounted with type {other}, expected fuse.s3rolefs or fuse",
                        self.mountpoint.display()
                    );
                }
                None => {}
            }
            let child = self.child.as_mut().expect("foreground mount has a child");
            if let Some(status) = child.try_wait().expect("wait for s3rolefs") {
                self.child = None;
                panic!(
                    "s3rolefs exited ({status}) before mounting; stderr:\n{}",
                    self.stderr_log()
                );
            }
            if Instant::now() >= deadline {
                let stuck = where_stuck(child.id());
                panic!(
                    "{} was not mounted within {MOUNT_TIMEOUT:?} ({stuck}); stderr:\n{}",
                    self.mountpoint.display(),
                    self.stderr_log()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// The mounted directory.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Makes the directories above the mount point searchable by every user (temporary
    /// directories are 0700), for tests that act as other users on an `--allow-other`
    /// mount.
    pub fn open_to_others(&self) {
        use std::os::unix::fs::PermissionsExt;
        let mut dir = self.mountpoint.parent();
        while let Some(d) = dir.filter(|d| *d != Path::new("/")) {
            let mode = std::fs::metadata(d)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            if mode & 0o005 != 0o005 {
                let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o755));
            }
            dir = d.parent();
        }
    }

    /// Everything the mount command wrote to stderr so far (`RUST_LOG=s3rolefs=debug`).
    pub fn stderr_log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether the mount point is still mounted (the filesystem may be gone if the process
    /// died).
    pub fn is_mounted(&self) -> bool {
        mount_type(&self.mountpoint).is_some()
    }

    /// The foreground process's id (`None` for daemon-mode mounts).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9` of the daemon, as an OOM kill or a power cut would end it: no flush, no
    /// release, no unmount. The dead mount is then detached (lazily, as an admin would)
    /// so the directory can be mounted again.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid; no memory is passed.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
            }
            let _ = child.wait();
        }
        unmount(&self.mountpoint);
        self.mounted = false;
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let was_mounted = self.mounted || mount_type(&self.mountpoint).is_some();
        if was_mounted {
            unmount(&self.mountpoint);
        }
        if let Some(mut child) = self.child.take() {
            // Unmounting ends a healthy foreground process; one that never mounted (or hung)
            // has nothing to finish.
            if !was_mounted || wait_bounded(&mut child, EXIT_TIMEOUT).is_none() {
                if was_mounted {
                    eprintln!(
                        "s3rolefs did not exit within {EXIT_TIMEOUT:?} after unmount; killing it"
                    );
                }
                kill(&mut child);
            }
        }
        if was_mounted && std::thread::panicking() {
            eprintln!(
                "---- s3rolefs stderr ({}) ----\n{}",
                self.log_path.display(),
                self.stderr_log()
            );
        }
        if mount_type(&self.mountpoint).is_some() {
            // Deleting the directory now would recurse into the bucket: leak it instead.
            eprintln!(
                "{} is still mounted; leaving its temp dir in place",
                self.mountpoint.display()
            );
            if let Some(root) = self.root.take() {
                let _ = root.keep();
            }
        }
    }
}

/// Unmounts with `fusermount3 -u`, falling back to a lazy unmount when the mount is busy or
/// the FUSE process is gone.
fn unmount(mountpoint: &Path) {
    let attempts: [(&str, &[&str]); 3] = [
        ("fusermount3", &["-u"]),
        ("umount", &["-l"]),
        ("fusermount3", &["-uz"]),
    ];
    for (program, args) in attempts {
        let status = Command::new(program)
            .args(args)
            .arg(mountpoint)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if status.is_ok_and(|s| s.success()) || mount_type(mountpoint).is_none() {
            return;
        }
    }
    eprintln!("could not unmount {}", mountpoint.display());
}

/// Where process `pid` waits, for a message about a hang: its state, the kernel function
/// it sleeps in, and its threads' kernel stacks (root can read them).
fn where_stuck(pid: u32) -> String {
    let read =
        |what: &str| std::fs::read_to_string(format!("/proc/{pid}/{what}")).unwrap_or_default();
    let state = read("stat")
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default();
    let mut stacks = String::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let stack = std::fs::read_to_string(task.path().join("stack")).unwrap_or_default();
            let first = stack.lines().take(4).collect::<Vec<_>>().join(" < ");
            stacks.push_str(&format!(
                "\n  task {}: {}",
                task.file_name().to_string_lossy(),
                first
            ));
        }
    }
    // A process that runs rather than sleeps: where, in user space (gdb, when installed).
    let user = Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt 12",
        ])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.starts_with('#') || l.starts_with("Thread"))
                .collect::<Vec<_>>()
                .join("\n  ")
        })
        .unwrap_or_default();
    format!(
        "{} state {state}, wchan {}{stacks}\n  {user}",
        read("comm").trim(),
        read("wchan")
    )
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

fn kill(child: &mut Child) -> Option<ExitStatus> {
    let _ = child.kill();
    child.wait().ok()
}

/// Waits (up to 10 s) until nothing is mounted at `dir`; false if something still is.
pub fn wait_unmounted(dir: &Path) -> bool {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    while mount_type(dir).is_some() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
    true
}

/// The filesystem type mounted exactly at `dir`, from `/proc/self/mountinfo` (the last entry
/// wins, as mounts stack).
pub fn mount_type(dir: &Path) -> Option<String> {
    mount_entry(dir).map(|(_, fs_type)| fs_type)
}

/// The device (`major:minor`) of the mount exactly at `dir`; a FUSE mount's name in
/// `/sys/class/bdi`.
pub fn mount_device(dir: &Path) -> Option<String> {
    mount_entry(dir).map(|(device, _)| device)
}

fn mount_entry(dir: &Path) -> Option<(String, String)> {
    // Resolve only the parent: a stat of a hung FUSE mount point itself would block.
    let dir = match (
        dir.parent().and_then(|p| p.canonicalize().ok()),
        dir.file_name(),
    ) {
        (Some(parent), Some(name)) => parent.join(name),
        _ => dir.to_path_buf(),
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().rev().find_map(|line| {
        // <id> <parent> <maj:min> <root> <mount point> <options> [optional...] - <type> ...
        let (left, right) = line.split_once(" - ")?;
        let mut fields = left.split(' ');
        let device = fields.nth(2)?;
        let mount_point = unescape_mountinfo(fields.nth(1)?);
        let fs_type = right.split(' ').next()?;
        (Path::new(&mount_point) == dir).then(|| (device.to_owned(), fs_type.to_owned()))
    })
}

/// Undoes mountinfo's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let code =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
