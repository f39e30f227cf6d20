//! The files in packaging/ and scripts/package: the systemd unit passes `systemd-analyze
//! verify` (with its ExecStart pointed at the binary under test), every line of the example
//! fstab is accepted by the mount helper as mount(8) would call it (`-f`: checked, not
//! mounted), the man pages render, the completions load, the .deb installs and mounts
//! through mount(8) with credentials from an emulated instance role, and the .rpm holds the
//! same files and installs into a scratch root.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use support::imds::{accepted_by, ImdsEmulator, ImdsOptions};
use support::mount::{mount_type, wait_unmounted};
use support::TestServer;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// systemd-analyze is on every systemd machine; where it is missing the check cannot run,
/// which CI must not mistake for a pass.
fn systemd_analyze() -> Option<&'static str> {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var("CI").as_deref() == Ok("true") {
        panic!("systemd-analyze is missing: install systemd to verify packaging/systemd");
    }
    found.then_some("systemd-analyze")
}

#[test]
fn systemd_unit_verifies() {
    let Some(analyze) = systemd_analyze() else {
        eprintln!("skipped: no systemd-analyze on this machine");
        return;
    };
    let unit = std::fs::read_to_string(Path::new(ROOT).join("packaging/systemd/s3rolefs@.service"))
        .unwrap();
    assert!(
        unit.contains("Type=notify"),
        "readiness comes from the mount"
    );
    let dir = tempfile::tempdir().unwrap();
    let binary = env!("CARGO_BIN_EXE_s3rolefs");
    let env_file = dir.path().join("mnt-data.env");
    std::fs::write(
        &env_file,
        "S3ROLEFS_SOURCE=my-bucket\nS3ROLEFS_ARGS=--region eu-west-1\n",
    )
    .unwrap();
    let local = unit
        .replace("/usr/bin/s3rolefs", binary)
        .replace("/etc/s3rolefs/%i.env", env_file.to_str().unwrap());
    let path = dir.path().join("s3rolefs@mnt-data.service");
    std::fs::write(&path, local).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg("--man=no")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Complaints about other units of this machine are not ours.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("s3rolefs")).collect();
    assert!(out.status.success() && ours.is_empty(), "{stderr}");
}

#[test]
fn example_fstab_lines_are_accepted() {
    let fstab = std::fs::read_to_string(Path::new(ROOT).join("packaging/fstab.example")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("mount.s3rolefs");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_s3rolefs"), &helper).unwrap();
    let mut lines = 0;
    for line in fstab
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [source, target, fstype, options, ..] = fields[..] else {
            panic!("not an fstab line: {line}");
        };
        // mount(8) runs mount.TYPE; for fuse.TYPE, mount.fuse3 runs TYPE itself.
        let program = if fstype == "s3rolefs" {
            helper.clone()
        } else {
            assert_eq!(fstype, "fuse.s3rolefs");
            Path::new(env!("CARGO_BIN_EXE_s3rolefs")).to_path_buf()
        };
        let out = Command::new(program)
            .args([source, target, "-f", "-o", options])
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}: {out:?}");
        lines += 1;
    }
    assert_eq!(lines, 2);
}

/// `man s3rolefs` and `man s3rolefs-mount` render from the generated pages, and the mount
/// page lists the flags --help shows.
#[test]
fn man_pages_render() {
    let binary = env!("CARGO_BIN_EXE_s3rolefs");
    let help = Command::new(binary)
        .args(["mount", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for (page, name) in [(None, "s3rolefs"), (Some("mount"), "s3rolefs-mount")] {
        let roff = Command::new(binary)
            .arg("manpage")
            .args(page)
            .output()
            .unwrap();
        assert!(roff.status.success(), "{roff:?}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("{name}.1"));
        std::fs::write(&file, &roff.stdout).unwrap();
        let rendered = Command::new("man")
            .arg("-l")
            .arg(&file)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .expect("man is installed (Debian: man-db)");
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(rendered.status.success(), "{rendered:?}");
        assert!(text.contains(&format!("{name}(1)")), "{text}");
        if page == Some("mount") {
            for flag in [
                "--endpoint-url",
                "--region",
                "--role-arn",
                "--cache-size",
                "--part-size",
            ] {
                assert!(
                    help.contains(flag) && text.contains(flag),
                    "{flag} in --help and man"
                );
            }
        }
    }
}

/// The bash completion script loads and completes the commands and the mount flags.
#[test]
fn bash_completion_loads() {
    let binary = env!("CARGO_BIN_EXE_s3rolefs");
    let script = Command::new(binary)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(script.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s3rolefs.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    // Complete `s3rolefs mount --reg` as bash would, through the loaded function.
    let probe = format!(
        "source {} && complete -p s3rolefs && COMP_WORDS=(s3rolefs mount --reg) COMP_CWORD=2 \
         COMP_LINE='s3rolefs mount --reg' COMP_POINT=21 && _s3rolefs s3rolefs --reg mount && \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash").arg("-c").arg(&probe).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("complete -o bashdefault"), "{text}");
    assert!(text.lines().any(|l| l == "--region"), "{text}");
}

/// rpmbuild comes with Debian's `rpm` package (scripts/setup installs it); where it is
/// missing the .rpm cannot be built, which CI must not mistake for a pass.
fn rpmbuild_found() -> bool {
    let found = Command::new("rpmbuild")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var("CI").as_deref() == Ok("true") {
        panic!("rpmbuild is missing: install it (Debian: apt-get install rpm) to build the .rpm");
    }
    found
}

/// scripts/package with FORMATS=rpm builds an .rpm of the binary under test holding what the
/// .deb holds (zsh completions at the RPM distributions' path), requiring fuse3, versioned
/// from Cargo.toml; `rpm --root` installs it into a scratch directory, where
/// mount.s3rolefs is a symlink to the binary and the binary runs. Nothing outside temporary
/// directories is touched: rpm's database is kept there too (--dbpath).
#[test]
fn rpm_builds_with_the_deb_contents() {
    if !rpmbuild_found() {
        eprintln!("skipped: no rpmbuild on this machine (Debian: apt-get install rpm)");
        return;
    }
    let binary = env!("CARGO_BIN_EXE_s3rolefs");
    let out = tempfile::tempdir().unwrap();
    let built = Command::new(Path::new(ROOT).join("scripts/package"))
        .env("BIN", binary)
        .env("FORMATS", "rpm")
        .env("OUT", out.path())
        .env("COMPRESSION", "none")
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    let stdout = String::from_utf8_lossy(&built.stdout);
    let [rpm] = stdout.lines().collect::<Vec<_>>()[..] else {
        panic!("one package path expected: {stdout}");
    };
    assert!(rpm.ends_with(".rpm") && Path::new(rpm).is_file(), "{rpm}");

    // Queries open a database too (on Debian ~/.rpmdb, created if missing): a scratch one.
    let db = out.path().join("query-db");
    let query = |args: &[&str]| {
        let out = Command::new("rpm")
            .arg("--dbpath")
            .arg(&db)
            .args(args)
            .arg(rpm)
            .output()
            .unwrap();
        assert!(out.status.success(), "rpm {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let listed = query(&["-qlp"]);
    let files: Vec<&str> = listed.lines().collect();
    let expected = [
        "/usr/bin/s3rolefs",
        "/usr/sbin/mount.s3rolefs",
        "/usr/share/man/man1/s3rolefs.1.gz",
        "/usr/share/man/man1/s3rolefs-mount.1.gz",
        "/usr/share/man/man1/s3rolefs-unmount.1.gz",
        "/usr/share/man/man1/s3rolefs-credentials.1.gz",
        "/usr/share/bash-completion/completions/s3rolefs",
        "/usr/share/zsh/site-functions/_s3rolefs",
        "/usr/share/fish/vendor_completions.d/s3rolefs.fish",
        "/usr/lib/systemd/system/s3rolefs@.service",
        "/usr/share/doc/s3rolefs",
        "/usr/share/doc/s3rolefs/README.md",
        "/usr/share/doc/s3rolefs/fstab.example",
    ];
    for path in expected {
        assert!(
            files.contains(&path),
            "{path} missing from the .rpm:\n{listed}"
        );
    }
    // Beyond those, only the man pages of further commands (one for each command --help
    // lists), each a command the binary has.
    for path in files.iter().filter(|path| !expected.contains(path)) {
        let command = path
            .strip_prefix("/usr/share/man/man1/s3rolefs-")
            .and_then(|page| page.strip_suffix(".1.gz"))
            .unwrap_or_else(|| panic!("unexpected {path} in the .rpm:\n{listed}"));
        assert_ne!(command, "help", "no man page for help:\n{listed}");
        let help = Command::new(binary)
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(help.status.success(), "{path} names no command: {help:?}");
    }
    let docs = query(&["-qdp"]);
    for doc in ["README.md", "fstab.example"] {
        let path = format!("/usr/share/doc/s3rolefs/{doc}");
        assert!(docs.lines().any(|l| l == path), "{doc} is %doc:\n{docs}");
    }

    let requires = query(&["-qp", "--requires"]);
    assert!(requires.lines().any(|l| l.trim() == "fuse3"), "{requires}");
    // RPM versions cannot hold '-': scripts/package maps a Cargo pre-release's to '~'.
    let version = query(&["-qp", "--queryformat", "%{VERSION}"]);
    assert_eq!(version, env!("CARGO_PKG_VERSION").replace('-', "~"));
    let license = query(&["-qp", "--queryformat", "%{LICENSE}"]);
    assert_eq!(license, env!("CARGO_PKG_LICENSE"));

    let root = out.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // --dbpath is inside --root: root/var/lib/rpm.
    let installed = Command::new("rpm")
        .arg("--root")
        .arg(&root)
        .args([
            "--dbpath",
            "/var/lib/rpm",
            "--nodeps",
            "--noscripts",
            "-i",
            rpm,
        ])
        .output()
        .unwrap();
    assert!(installed.status.success(), "rpm -i: {installed:?}");
    let helper = root.join("usr/sbin/mount.s3rolefs");
    let target = std::fs::read_link(&helper).unwrap();
    assert_eq!(target, Path::new("../bin/s3rolefs"));
    assert_eq!(
        std::fs::canonicalize(&helper).unwrap(),
        std::fs::canonicalize(root.join("usr/bin/s3rolefs")).unwrap()
    );
    let run = Command::new(root.join("usr/bin/s3rolefs"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        format!("s3rolefs {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Undoes the install (and any mount left) however the test ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["-r", "s3rolefs"]).output();
    }
}

/// scripts/package builds the .deb of the binary under test; `dpkg -i` installs it; then
/// `mount -t s3rolefs` and an fstab line (`mount -T FSTAB DIR`) mount the test server's
/// bucket with credentials from the IMDS emulator only, `umount` unmounts, and a missing
/// bucket makes mount(8) fail with the message. It changes the system (the package is
/// removed at the end), so it runs in CI or where `S3ROLEFS_TEST_INSTALL=1`.
#[test]
fn deb_installs_and_mount8_uses_it() {
    let in_ci = std::env::var("CI").as_deref() == Ok("true");
    if !in_ci && std::env::var("S3ROLEFS_TEST_INSTALL").as_deref() != Ok("1") {
        eprintln!("skipped: installs a package into the system; S3ROLEFS_TEST_INSTALL=1 runs it");
        return;
    }
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "dpkg -i and mount(8) need root"
    );
    support::require_fuse();
    // Its own output directory, so the .rpm test can build at the same time.
    let out = tempfile::tempdir().unwrap();
    let built = Command::new(Path::new(ROOT).join("scripts/package"))
        .env("BIN", env!("CARGO_BIN_EXE_s3rolefs"))
        .env("FORMATS", "deb")
        .env("OUT", out.path())
        .env("COMPRESSION", "none")
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    let deb = String::from_utf8_lossy(&built.stdout).trim().to_owned();
    let installed = Command::new("dpkg").args(["-i", &deb]).output().unwrap();
    assert!(installed.status.success(), "{installed:?}");
    let _installed = Installed;
    assert!(Path::new("/usr/sbin/mount.s3rolefs").exists());

    let server = Arc::new(TestServer::start());
    server.create_bucket("bkt");
    server.put("bkt", "hello.txt", b"hello".to_vec());
    let imds = ImdsEmulator::start(ImdsOptions {
        on_issue: Some(accepted_by(&server)),
        ..ImdsOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let options = format!(
        "_netdev,endpoint_url={},region={}",
        server.endpoint(),
        server.region()
    );
    // No keys anywhere: the instance role (emulated) is the only source.
    let mount8 = |args: &[&str]| {
        Command::new("mount")
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", dir.path())
            .env("AWS_CONFIG_FILE", dir.path().join("none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint())
            .output()
            .unwrap()
    };
    let mnt_arg = mnt.to_str().unwrap();

    let out = mount8(&["-t", "s3rolefs", "bkt", mnt_arg, "-o", &options]);
    assert!(out.status.success(), "mount -t s3rolefs: {out:?}");
    assert_eq!(mount_type(&mnt).as_deref(), Some("fuse.s3rolefs"));
    assert_eq!(std::fs::read(mnt.join("hello.txt")).unwrap(), b"hello");
    let out = Command::new("umount").arg(&mnt).output().unwrap();
    assert!(out.status.success(), "umount: {out:?}");
    assert!(wait_unmounted(&mnt));

    let fstab = dir.path().join("fstab");
    std::fs::write(&fstab, format!("bkt {mnt_arg} s3rolefs {options},ro 0 0\n")).unwrap();
    let out = mount8(&["-T", fstab.to_str().unwrap(), mnt_arg]);
    assert!(out.status.success(), "mount from an fstab line: {out:?}");
    assert_eq!(std::fs::read(mnt.join("hello.txt")).unwrap(), b"hello");
    assert!(
        std::fs::write(mnt.join("new"), b"x").is_err(),
        "ro from the fstab line"
    );
    let out = Command::new("umount").arg(&mnt).output().unwrap();
    assert!(out.status.success(), "umount: {out:?}");
    assert!(wait_unmounted(&mnt));

    let out = mount8(&["-t", "s3rolefs", "missing-bucket", mnt_arg, "-o", &options]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a missing bucket must fail mount(8)");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(mount_type(&mnt).is_none());
}
