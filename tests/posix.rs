//! What POSIX programs set — modes, owners, times, symlinks, extended attributes — kept in
//! the bucket in s3fs-fuse's format, through a real mount: read from objects s3fs wrote,
//! stored so that s3fs reads them, enforced by the kernel, and kept by `rsync -a`, `cp -a`,
//! `tar` and `git`.

mod support;

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use support::data::run;
use support::{Mount, TestServer};

fn server() -> TestServer {
    let server = TestServer::start();
    server.create_bucket("bkt");
    server
}

fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("no NUL in test paths")
}

/// `utimensat` with both times (seconds, nanoseconds), on the link itself.
fn set_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) {
    let times = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    let path = c_path(path);
    // SAFETY: a valid C string and an array of two timespecs, as utimensat takes.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "utimensat: {}", std::io::Error::last_os_error());
}

fn getxattr(path: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let path = c_path(path);
    let name = CString::new(name).expect("no NUL");
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and a buffer of the length given.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

fn setxattr(path: &Path, name: &str, value: &[u8], flags: i32) -> std::io::Result<()> {
    let path = c_path(path);
    let name = CString::new(name).expect("no NUL");
    // SAFETY: valid C strings and a value of the length given.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn removexattr(path: &Path, name: &str) -> std::io::Result<()> {
    let path = c_path(path);
    let name = CString::new(name).expect("no NUL");
    // SAFETY: valid C strings.
    let rc = unsafe { libc::lremovexattr(path.as_ptr(), name.as_ptr()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn listxattr(path: &Path) -> Vec<String> {
    let path = c_path(path);
    let mut buf = vec![0u8; 4096];
    // SAFETY: a valid C string and a buffer of the length given.
    let n = unsafe { libc::llistxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0, "listxattr: {}", std::io::Error::last_os_error());
    buf.truncate(n as usize);
    buf.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// A tree as s3fs writes it — a marker with mode 0711, files 0600 and 0755 of two owners
/// with times, a symlink, xattrs — reads through the mount as s3fs shows it.
#[test]
fn a_tree_written_by_s3fs_reads_as_s3fs_shows_it() {
    let server = server();
    let dir = meta(&[
        ("mode", "16841"),
        ("uid", "1000"),
        ("gid", "1000"),
        ("mtime", "1600000000"),
    ]);
    server.put_object("bkt", "d/", "", Some("application/x-directory"), dir);
    server.put_object(
        "bkt",
        "d/secret",
        "s3cret",
        Some("text/plain"),
        meta(&[
            ("mode", "33152"),
            ("uid", "1001"),
            ("gid", "1002"),
            ("mtime", "1600000001.500000000"),
            ("ctime", "1600000002"),
            ("atime", "1600000003"),
        ]),
    );
    server.put_object(
        "bkt",
        "d/tool",
        "#!/bin/sh\n",
        None,
        meta(&[("mode", "33261"), ("uid", "0"), ("gid", "0")]),
    );
    server.put_object(
        "bkt",
        "d/link",
        "secret",
        None,
        meta(&[("mode", "41471"), ("uid", "1000"), ("gid", "1000")]),
    );
    server.put_object(
        "bkt",
        "d/tagged",
        "t",
        None,
        meta(&[
            ("mode", "33188"),
            ("xattr", "%7B%22user.a%22%3A%22aGVsbG8%3D%22%7D"),
        ]),
    );
    // rclone's octal mode reads too.
    server.put_object(
        "bkt",
        "d/rclone",
        "r",
        None,
        meta(&[("mode", "100640"), ("mtime", "1700000000.25")]),
    );
    let m = Mount::start(&server, "bkt", &[]);
    let d = m.path().join("d");

    let dm = fs::metadata(&d).unwrap();
    assert!(dm.is_dir());
    assert_eq!(dm.mode() & 0o7777, 0o711);
    assert_eq!((dm.uid(), dm.gid()), (1000, 1000));
    assert_eq!(dm.mtime(), 1_600_000_000);

    // In listing order, as `ls -l` asks: each shows its own attributes.
    let mut names: Vec<String> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["link", "rclone", "secret", "tagged", "tool"]);
    let secret = fs::symlink_metadata(d.join("secret")).unwrap();
    assert_eq!(secret.mode(), 0o100600);
    assert_eq!((secret.uid(), secret.gid()), (1001, 1002));
    assert_eq!(
        (secret.mtime(), secret.mtime_nsec()),
        (1_600_000_001, 500_000_000)
    );
    assert_eq!(secret.ctime(), 1_600_000_002);
    assert_eq!(secret.atime(), 1_600_000_003);
    assert_eq!(
        fs::symlink_metadata(d.join("tool")).unwrap().mode(),
        0o100755
    );
    let link = fs::symlink_metadata(d.join("link")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(fs::read_link(d.join("link")).unwrap(), Path::new("secret"));
    assert_eq!(fs::read(d.join("link")).unwrap(), b"s3cret");
    assert_eq!(getxattr(&d.join("tagged"), "user.a").unwrap(), b"hello");
    assert_eq!(listxattr(&d.join("tagged")), ["user.a"]);
    let rclone = fs::metadata(d.join("rclone")).unwrap();
    assert_eq!(rclone.mode(), 0o100640);
    assert_eq!(
        (rclone.mtime(), rclone.mtime_nsec()),
        (1_700_000_000, 250_000_000)
    );
}

/// `chmod`, `chown` and `utimensat` are stored in the object in s3fs's format, keep every
/// other header, and are there for the next mount.
#[test]
fn modes_owners_and_times_are_stored_in_s3fs_format() {
    let server = server();
    server.put_object(
        "bkt",
        "doc.txt",
        "text",
        Some("text/markdown"),
        meta(&[("other-tool", "kept")]),
    );
    {
        let m = Mount::start(&server, "bkt", &[]);
        let p = m.path().join("doc.txt");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::chown(&p, Some(1234), Some(5678)).unwrap();
        set_times(&p, (1_500_000_001, 0), (1_500_000_000, 123_456_789));
        let now = fs::metadata(&p).unwrap();
        assert_eq!(now.mode(), 0o100640);
        assert_eq!((now.uid(), now.gid()), (1234, 5678));
        assert_eq!(
            (now.mtime(), now.mtime_nsec()),
            (1_500_000_000, 123_456_789)
        );
    }
    let stored = server.object_info("bkt", "doc.txt").unwrap();
    assert_eq!(stored.metadata["mode"], "33184");
    assert_eq!(stored.metadata["uid"], "1234");
    assert_eq!(stored.metadata["gid"], "5678");
    assert_eq!(stored.metadata["mtime"], "1500000000.123456789");
    assert_eq!(stored.metadata["atime"], "1500000001");
    assert!(stored.metadata.contains_key("ctime"));
    assert_eq!(stored.metadata["other-tool"], "kept");
    assert_eq!(stored.content_type, "text/markdown");
    assert_eq!(server.get("bkt", "doc.txt").unwrap().as_ref(), b"text");

    let m = Mount::start(&server, "bkt", &[]);
    let again = fs::metadata(m.path().join("doc.txt")).unwrap();
    assert_eq!(again.mode(), 0o100640);
    assert_eq!((again.uid(), again.gid()), (1234, 5678));
    assert_eq!(again.mtime(), 1_500_000_000);
}

/// New files and directories take their creator's owner and mode (umask applied), a
/// Content-Type from the name, and a marker with its metadata.
#[test]
fn new_files_and_directories_take_their_creators_mode_and_owner() {
    let server = server();
    let m = Mount::start(&server, "bkt", &[]);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(m.path().join("notes.txt"))
        .unwrap();
    std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o711)
        .create(m.path().join("private"))
        .unwrap();
    let file = server.object_info("bkt", "notes.txt").unwrap();
    assert_eq!(file.metadata["mode"], (0o100640 & !0o022u32).to_string());
    assert_eq!(file.metadata["uid"], "0");
    assert_eq!(file.content_type, "text/plain");
    let dir = server.object_info("bkt", "private/").unwrap();
    assert_eq!(dir.metadata["mode"], (0o040711u32).to_string());
    assert_eq!(dir.content_type, "application/x-directory");
    assert_eq!(
        fs::metadata(m.path().join("private")).unwrap().mode(),
        0o040711
    );
    // A directory with no marker gets one when its mode changes.
    server.put("bkt", "implicit/file", "x");
    fs::set_permissions(m.path().join("implicit"), fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        server.object_info("bkt", "implicit/").unwrap().metadata["mode"],
        (0o040700u32).to_string()
    );
}

/// Symlinks in s3fs's format: `ln -s`, `readlink`, `lstat`, links to files and to
/// directories; `rename` keeps a link a link.
#[test]
fn symlinks_are_objects_holding_their_target() {
    let server = server();
    let m = Mount::start(&server, "bkt", &[]);
    fs::create_dir(m.path().join("dir")).unwrap();
    fs::write(m.path().join("dir/file"), b"data").unwrap();
    std::os::unix::fs::symlink("dir/file", m.path().join("to-file")).unwrap();
    std::os::unix::fs::symlink("dir", m.path().join("to-dir")).unwrap();
    assert_eq!(server.get("bkt", "to-file").unwrap().as_ref(), b"dir/file");
    assert_eq!(
        server.object_info("bkt", "to-file").unwrap().metadata["mode"],
        "41471"
    );
    assert_eq!(fs::read(m.path().join("to-file")).unwrap(), b"data");
    assert_eq!(fs::read(m.path().join("to-dir/file")).unwrap(), b"data");
    let l = fs::symlink_metadata(m.path().join("to-dir")).unwrap();
    assert!(l.file_type().is_symlink());
    assert_eq!(l.len(), 3);
    fs::rename(m.path().join("to-file"), m.path().join("moved")).unwrap();
    assert_eq!(
        fs::read_link(m.path().join("moved")).unwrap(),
        Path::new("dir/file")
    );
    // Through a fresh mount, listing first (the listing cannot tell it is a link).
    drop(m);
    let m = Mount::start(&server, "bkt", &[]);
    let names: Vec<_> = fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    let moved = names.iter().find(|e| e.file_name() == "moved").unwrap();
    assert!(fs::symlink_metadata(moved.path())
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(m.path().join("moved")).unwrap(), b"data");
}

/// `user.` attributes are stored as s3fs stores them; other namespaces are refused at
/// once; the S3 facts are readable but not listed.
#[test]
fn extended_attributes_in_the_user_namespace() {
    let server = server();
    let m = Mount::start(&server, "bkt", &[]);
    let p = m.path().join("f");
    fs::write(&p, b"x").unwrap();
    setxattr(&p, "user.a", b"hello", 0).unwrap();
    setxattr(&p, "user.bin", &[0, 1, 255], 0).unwrap();
    assert_eq!(getxattr(&p, "user.a").unwrap(), b"hello");
    assert_eq!(getxattr(&p, "user.bin").unwrap(), [0, 1, 255]);
    let mut names = listxattr(&p);
    names.sort();
    assert_eq!(names, ["user.a", "user.bin"]);
    let stored = server.object_info("bkt", "f").unwrap().metadata["xattr"].clone();
    assert!(
        stored.starts_with("%7B%22user.a%22%3A%22aGVsbG8%3D%22"),
        "{stored}"
    );
    let create = setxattr(&p, "user.a", b"again", libc::XATTR_CREATE).unwrap_err();
    assert_eq!(create.raw_os_error(), Some(libc::EEXIST));
    let replace = setxattr(&p, "user.none", b"v", libc::XATTR_REPLACE).unwrap_err();
    assert_eq!(replace.raw_os_error(), Some(libc::ENODATA));
    removexattr(&p, "user.a").unwrap();
    let gone = getxattr(&p, "user.a").unwrap_err();
    assert_eq!(gone.raw_os_error(), Some(libc::ENODATA));
    let other = setxattr(&p, "trusted.x", b"v", 0).unwrap_err();
    assert_eq!(other.raw_os_error(), Some(libc::EOPNOTSUPP));
    let big = setxattr(&p, "user.big", &vec![b'x'; 3000], 0).unwrap_err();
    assert_eq!(big.raw_os_error(), Some(libc::E2BIG));
    let full = setxattr(&p, "user.big", &vec![b'x'; 2000], 0).unwrap_err();
    assert_eq!(full.raw_os_error(), Some(libc::ENOSPC));
    let etag = server.object_info("bkt", "f").unwrap().etag;
    assert_eq!(getxattr(&p, "user.s3.etag").unwrap(), etag.as_bytes());
    assert!(!listxattr(&p).iter().any(|n| n.starts_with("user.s3.")));
    // Writes still work with the kernel asking for security.capability first.
    fs::write(&p, b"rewritten").unwrap();
    assert_eq!(getxattr(&p, "user.bin").unwrap(), [0, 1, 255]);
}

/// The kernel enforces the stored modes: a file made 0600 by root cannot be read by
/// another user through an `allow_other` mount, and can once it is 0644.
#[test]
fn stored_modes_are_enforced_for_other_users() {
    let server = server();
    server.put_object(
        "bkt",
        "listed-secret",
        "hidden",
        None,
        meta(&[("mode", "33152"), ("uid", "0"), ("gid", "0")]),
    );
    let m = Mount::start(&server, "bkt", &["--allow-other"]);
    m.open_to_others();
    let p = m.path().join("secret");
    fs::write(&p, b"for root").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    let as_nobody = |path: &Path| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(path)
            .output()
            .unwrap()
    };
    let denied = as_nobody(&p);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    // A listing shows no mode: what it lists is not taken as readable.
    let _ = fs::read_dir(m.path()).unwrap().count();
    assert!(!as_nobody(&m.path().join("listed-secret")).status.success());
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    let allowed = as_nobody(&p);
    assert!(allowed.status.success());
    assert_eq!(allowed.stdout, b"for root");
}

/// A source tree with modes, links and times, in a local directory.
fn source_tree(root: &Path) {
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc/conf.d")).unwrap();
    fs::write(root.join("bin/run"), b"#!/bin/sh\necho run\n").unwrap();
    fs::set_permissions(root.join("bin/run"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("etc/secret"), b"key").unwrap();
    fs::set_permissions(root.join("etc/secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(root.join("etc/conf.d/a.conf"), b"a=1\n").unwrap();
    std::os::unix::fs::symlink("../bin/run", root.join("etc/run-link")).unwrap();
    std::os::unix::fs::symlink("conf.d", root.join("etc/conf-link")).unwrap();
    fs::set_permissions(root.join("etc/conf.d"), fs::Permissions::from_mode(0o750)).unwrap();
    for (i, p) in ["bin/run", "etc/secret", "etc/conf.d/a.conf"]
        .iter()
        .enumerate()
    {
        set_times(
            &root.join(p),
            (1_400_000_000, 0),
            (1_400_000_000 + i as i64, 0),
        );
    }
    set_times(
        &root.join("etc/run-link"),
        (1_400_000_100, 0),
        (1_400_000_100, 0),
    );
}

/// What `rsync -ani` would still change from `src` to `dst`: nothing when they match in
/// content, modes, owners, times and links.
fn differences(src: &Path, dst: &Path) -> String {
    let out = run(Command::new("rsync")
        .args(["-ani", "--no-times", "--checksum"])
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display())));
    let timed = run(Command::new("rsync")
        .args(["-ani", "--omit-dir-times"])
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display())));
    format!("{out}{timed}")
}

/// `rsync -a`, `cp -a` and `tar x` round-trip a tree with modes, symlinks and times.
#[test]
fn rsync_cp_and_tar_keep_modes_links_and_times() {
    let server = server();
    let m = Mount::start(&server, "bkt", &[]);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    source_tree(&src);

    run(Command::new("rsync")
        .arg("-a")
        .arg(format!("{}/", src.display()))
        .arg(m.path().join("rsynced")));
    assert_eq!(differences(&src, &m.path().join("rsynced")), "");

    run(Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(m.path().join("copied")));
    assert_eq!(differences(&src, &m.path().join("copied")), "");

    let tarball = local.path().join("t.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tarball)
        .arg("-C")
        .arg(&src)
        .arg("."));
    fs::create_dir(m.path().join("untarred")).unwrap();
    run(Command::new("tar")
        .arg("-xpf")
        .arg(&tarball)
        .arg("-C")
        .arg(m.path().join("untarred")));
    assert_eq!(differences(&src, &m.path().join("untarred")), "");

    // And back out of a fresh mount: what reached S3 is the tree.
    drop(m);
    let m = Mount::start(&server, "bkt", &[]);
    assert_eq!(differences(&src, &m.path().join("rsynced")), "");
}

/// `git clone` onto the mount keeps executable bits and symlinks, and leaves a clean tree.
#[test]
fn git_clone_keeps_executable_bits_and_symlinks() {
    let server = server();
    let m = Mount::start(&server, "bkt", &[]);
    let local = tempfile::tempdir().unwrap();
    let repo = local.path().join("repo");
    fs::create_dir(&repo).unwrap();
    let git = |dir: &Path, args: &[&str]| {
        run(Command::new("git")
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", local.path())
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@e",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args))
    };
    git(&repo, &["init", "-q"]);
    fs::write(repo.join("build.sh"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(repo.join("build.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(repo.join("README"), b"hi\n").unwrap();
    std::os::unix::fs::symlink("README", repo.join("README.link")).unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "first"]);
    git(
        m.path(),
        &[
            "clone",
            "-q",
            "--no-hardlinks",
            repo.to_str().unwrap(),
            "clone",
        ],
    );
    let clone = m.path().join("clone");
    assert_eq!(
        fs::metadata(clone.join("build.sh")).unwrap().mode() & 0o111,
        0o111
    );
    assert_eq!(
        fs::read_link(clone.join("README.link")).unwrap(),
        Path::new("README")
    );
    assert_eq!(git(&clone, &["status", "--porcelain"]), "");
}

/// The tree of the interop tests: nested directories with modes 0711 and 0750, files
/// 0600/0644/0755 owned by two users, links to a file and to a directory, xattrs on a file
/// and a directory, times set on files and (last) on directories.
fn interop_tree(root: &Path) {
    for d in ["a", "a/b", "a/private", "bin"] {
        fs::create_dir(root.join(d)).unwrap();
    }
    let files: [(&str, u32, u32, &[u8]); 4] = [
        ("a/secret", 0o600, 1000, b"s"),
        ("a/b/deep", 0o644, 1001, b"deep"),
        ("bin/tool", 0o755, 0, b"#!/bin/sh\n"),
        ("a/private/x", 0o640, 1000, b"x"),
    ];
    for (i, (path, mode, owner, body)) in files.iter().enumerate() {
        let p = root.join(path);
        fs::write(&p, body).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
        std::os::unix::fs::chown(&p, Some(*owner), Some(*owner)).unwrap();
        set_times(&p, (1_600_000_000, 0), (1_600_000_000 + i as i64, 0));
    }
    std::os::unix::fs::symlink("a/secret", root.join("link-file")).unwrap();
    std::os::unix::fs::symlink("a/b", root.join("link-dir")).unwrap();
    setxattr(&root.join("a/b/deep"), "user.note", b"hello", 0).unwrap();
    setxattr(&root.join("a"), "user.dir", b"d", 0).unwrap();
    fs::set_permissions(root.join("a/private"), fs::Permissions::from_mode(0o711)).unwrap();
    fs::set_permissions(root.join("a/b"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(root.join("a/b"), Some(1001), Some(1001)).unwrap();
    for (i, d) in ["a/private", "a/b", "a", "bin"].iter().enumerate() {
        set_times(
            &root.join(d),
            (1_500_000_000, 0),
            (1_500_000_000 + i as i64, 0),
        );
    }
}

/// How a tree looks to `find` (mode, owner, group, mtime, type, link target) and its
/// `user.` xattrs, one line each, sorted.
fn describe(root: &Path) -> String {
    let found = run(Command::new("find").arg(root).args([
        "-mindepth",
        "1",
        "-printf",
        "%P %m %U %G %T@ %y %l\n",
    ]));
    let mut lines: Vec<String> = found.lines().map(str::to_string).collect();
    for line in found.lines() {
        let path = line.split(' ').next().unwrap_or_default();
        if line.contains(" l ") || path.is_empty() {
            continue;
        }
        let mut names = listxattr(&root.join(path));
        names.sort();
        for name in names {
            let value = getxattr(&root.join(path), &name).unwrap();
            lines.push(format!(
                "{path} xattr {name}={}",
                String::from_utf8_lossy(&value)
            ));
        }
    }
    lines.sort();
    lines.join("\n")
}

/// A tree made through s3fs itself reads identically through s3rolefs; the same tree made
/// through s3rolefs reads identically through s3fs.
#[test]
fn trees_move_between_s3fs_and_s3rolefs_unchanged() {
    let server = server();
    server.create_bucket("other");
    {
        let s3fs = support::s3fs::S3fs::mount(&server, "bkt");
        interop_tree(s3fs.path());
        let by_s3fs = describe(s3fs.path());
        assert!(
            by_s3fs.contains("a/secret 600 1000 1000 1600000000"),
            "{by_s3fs}"
        );
        let ours = Mount::start(&server, "bkt", &[]);
        assert_eq!(describe(ours.path()), by_s3fs);
    }
    let ours = Mount::start(&server, "other", &[]);
    interop_tree(ours.path());
    let by_us = describe(ours.path());
    drop(ours);
    let again = Mount::start(&server, "other", &[]);
    assert_eq!(
        describe(again.path()),
        by_us,
        "a fresh mount reads what was stored"
    );
    let s3fs = support::s3fs::S3fs::mount(&server, "other");
    assert_eq!(describe(s3fs.path()), by_us);
}

/// What HEADs said is kept across remounts by version: a second mount's `ls -l` needs no
/// HEAD, and a file whose metadata another client changed (same body, so the same ETag,
/// but a new Last-Modified) is asked again and shows its new mode.
#[test]
fn metadata_read_once_answers_listings_after_a_remount() {
    let server = server();
    for i in 0..20 {
        server.put_object(
            "bkt",
            &format!("d/f{i:02}"),
            "same body",
            None,
            meta(&[("mode", "33152"), ("uid", "7"), ("gid", "8")]),
        );
    }
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap();
    let modes = |m: &Mount| -> Vec<u32> {
        let mut entries: Vec<_> = fs::read_dir(m.path().join("d"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        entries
            .iter()
            .map(|p| fs::symlink_metadata(p).unwrap().mode())
            .collect()
    };
    {
        let m = Mount::start(&server, "bkt", &["--cache-dir", cache_arg]);
        assert!(modes(&m).iter().all(|&mode| mode == 0o100600));
        assert!(server.count(support::Op::HeadObject) >= 20);
    }
    // Another client rewrites one file's metadata a second later: same ETag, new time.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    server.put_object(
        "bkt",
        "d/f05",
        "same body",
        None,
        meta(&[("mode", "33188"), ("uid", "7"), ("gid", "8")]),
    );
    server.reset_counters();
    let m = Mount::start(&server, "bkt", &["--cache-dir", cache_arg]);
    let again = modes(&m);
    assert_eq!(again[5], 0o100644, "the changed file shows its new mode");
    assert!(again
        .iter()
        .enumerate()
        .all(|(i, &mode)| i == 5 || mode == 0o100600));
    let heads: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.op == support::Op::HeadObject)
        .filter_map(|r| r.key)
        .filter(|k| k.starts_with("d/"))
        .collect();
    assert_eq!(heads, ["d/f05"], "only the changed file is asked");
}
