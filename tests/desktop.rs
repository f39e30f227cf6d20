//! What desktops do to a drive (#19 item 6, docs/DESKTOP.md), through real mounts against
//! the test server: names kept local only (`--exclude`) never reach S3 in any request, yet
//! list, read, rename and go like any file, and become ordinary files when renamed to a
//! name S3 is to hold; `gio trash` (the file managers' trash, `.Trash-UID` at the mount's
//! top) and restoring from it work; thumbnail directories, office lock files and an
//! editor's save through a temporary file work and leave S3 as the user's files alone;
//! `statfs` gives figures a file manager copies under.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use s3rolefs::sigv4::sha256_hex;
use support::data::Tmpfs;
use support::{Mount, TestServer};

fn server() -> TestServer {
    support::server_with_bkt()
}

const EXCLUDE: &str = ".DS_Store|Thumbs.db|.~lock.*#";

/// A mount keeping `EXCLUDE` local, with write-back or without.
fn mount(server: &TestServer, cache: &Path, write_back: bool) -> Mount {
    let mut args = vec![
        "--exclude",
        EXCLUDE,
        "--cache-dir",
        cache.to_str().unwrap(),
        // Every lookup asks again: a local-only file must not depend on a cached answer.
        "--metadata-ttl",
        "0",
    ];
    if write_back {
        args.push("--write-back");
    }
    Mount::start(server, "bkt", &args)
}

/// `s3rolefs sync DIR`: everything closed is in S3.
fn sync(dir: &Path) {
    let home = tempfile::tempdir().unwrap();
    let out = support::mount::s3rolefs_command(home.path())
        .arg("sync")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// No request of any kind named a local-only file.
fn assert_never_asked(server: &TestServer) {
    for r in server.requests() {
        let key = r.key.unwrap_or_default();
        assert!(
            !key.contains(".DS_Store") && !key.contains(".~lock") && !key.contains("Thumbs.db"),
            "S3 was asked about {key:?} ({} {})",
            r.method,
            r.uri
        );
    }
}

/// Files under excluded names are written, listed, read, renamed among excluded names and
/// removed without one request about them; S3 holds only the user's files, also after
/// unmount. Renamed to an ordinary name, such a file goes to S3 with its bytes. With and
/// without write-back.
#[test]
fn excluded_names_stay_local_and_become_files_when_renamed() {
    for write_back in [false, true] {
        let server = server();
        let cache = Tmpfs::mount("256m");
        let m = mount(&server, cache.path(), write_back);
        let root = m.path();
        fs::create_dir(root.join("docs")).unwrap();
        fs::write(root.join("docs/report.odt"), b"the report").unwrap();
        fs::write(root.join("docs/.~lock.report.odt#"), b"user,host,2026").unwrap();
        fs::write(root.join(".DS_Store"), vec![7u8; 5000]).unwrap();
        fs::write(root.join("docs/Thumbs.db"), b"thumbs").unwrap();

        let mut listed: Vec<String> = fs::read_dir(root.join("docs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        listed.sort();
        assert_eq!(listed, [".~lock.report.odt#", "Thumbs.db", "report.odt"]);
        assert_eq!(fs::read(root.join(".DS_Store")).unwrap(), vec![7u8; 5000]);
        assert_eq!(
            fs::read(root.join("docs/.~lock.report.odt#")).unwrap(),
            b"user,host,2026"
        );
        // Stays local under another excluded name; opened again, appended to.
        fs::rename(
            root.join("docs/.~lock.report.odt#"),
            root.join("docs/.~lock.other.odt#"),
        )
        .unwrap();
        assert!(!root.join("docs/.~lock.report.odt#").exists());
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(root.join("docs/.~lock.other.odt#"))
            .unwrap();
        std::io::Write::write_all(&mut f, b",more").unwrap();
        drop(f);
        assert_eq!(
            fs::read(root.join("docs/.~lock.other.odt#")).unwrap(),
            b"user,host,2026,more"
        );
        fs::remove_file(root.join("docs/.~lock.other.odt#")).unwrap();
        assert!(!root.join("docs/.~lock.other.odt#").exists());

        // Renamed to an ordinary name: an ordinary file, in S3 with the same bytes.
        fs::rename(
            root.join("docs/Thumbs.db"),
            root.join("docs/thumbs-kept.db"),
        )
        .unwrap();
        assert_eq!(
            fs::read(root.join("docs/thumbs-kept.db")).unwrap(),
            b"thumbs"
        );
        sync(root);
        assert_never_asked(&server);
        drop(m);
        let mut keys = server.keys("bkt");
        keys.sort();
        assert_eq!(
            keys,
            ["docs/", "docs/report.odt", "docs/thumbs-kept.db"],
            "write-back: {write_back}"
        );
        assert_eq!(
            sha256_hex(&server.get("bkt", "docs/thumbs-kept.db").unwrap()),
            sha256_hex(b"thumbs")
        );
        assert_never_asked(&server);
    }
}

/// `gio trash` (what file managers call) moves a file into `.Trash-UID/files` at the
/// mount's top with its `.trashinfo`; moving it back to the path the info names restores
/// it. Thumbnail directories and an editor's save through a temporary file
/// and a rename leave exactly the user's files in S3. `statfs` reports room enough for any
/// copy and names as long as S3 keys allow.
#[test]
fn trash_thumbnails_editor_saves_and_statfs() {
    let server = server();
    let cache = Tmpfs::mount("256m");
    let m = mount(&server, cache.path(), true);
    let root = m.path();
    fs::write(root.join("notes.txt"), b"first version").unwrap();

    let gio = |args: &[&str]| {
        let out = Command::new("gio")
            .args(args)
            .env("HOME", cache.path())
            .output()
            .unwrap_or_else(|e| panic!("gio (Debian: libglib2.0-bin) cannot run: {e}"));
        assert!(
            out.status.success(),
            "gio {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    gio(&["trash", root.join("notes.txt").to_str().unwrap()]);
    assert!(!root.join("notes.txt").exists());
    let uid = unsafe { libc::geteuid() };
    let trash = root.join(format!(".Trash-{uid}"));
    assert_eq!(
        fs::read(trash.join("files/notes.txt")).unwrap(),
        b"first version"
    );
    let info = fs::read_to_string(trash.join("info/notes.txt.trashinfo")).unwrap();
    assert!(info.contains("Path="), "{info}");
    // Restored as a file manager does: the file back to the Path its info names, the
    // info removed.
    let original = info
        .lines()
        .find_map(|l| l.strip_prefix("Path="))
        .unwrap()
        .to_string();
    // Relative to the top directory, as the trash specification has it for `.Trash-UID`.
    assert_eq!(original, "notes.txt");
    fs::rename(trash.join("files/notes.txt"), root.join(&original)).unwrap();
    fs::remove_file(trash.join("info/notes.txt.trashinfo")).unwrap();
    assert_eq!(fs::read(root.join("notes.txt")).unwrap(), b"first version");
    assert!(!trash.join("files/notes.txt").exists());

    // A file manager's thumbnails and an editor's save: write a temporary file, rename it
    // over the original.
    fs::create_dir_all(root.join(".thumbnails/normal")).unwrap();
    fs::write(root.join(".thumbnails/normal/abc.png"), b"\x89PNG").unwrap();
    fs::write(root.join(".notes.txt.swp"), b"swap").unwrap();
    fs::write(root.join("notes.txt.tmp~"), b"second version").unwrap();
    fs::rename(root.join("notes.txt.tmp~"), root.join("notes.txt")).unwrap();
    fs::remove_file(root.join(".notes.txt.swp")).unwrap();
    assert_eq!(fs::read(root.join("notes.txt")).unwrap(), b"second version");

    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let path = std::ffi::CString::new(root.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
    let free = st.f_bavail as u128 * st.f_frsize as u128;
    assert!(free >= 1 << 40, "free space {free}");
    assert!(st.f_namemax >= 255, "name max {}", st.f_namemax);

    sync(root);
    drop(m);
    assert_eq!(
        server.get("bkt", "notes.txt").unwrap().as_ref(),
        b"second version"
    );
    let keys = server.keys("bkt");
    assert!(
        !keys
            .iter()
            .any(|k| k.contains(".swp") || k.contains("tmp~")),
        "{keys:?}"
    );
    assert!(
        keys.contains(&".thumbnails/normal/abc.png".to_string()),
        "{keys:?}"
    );
}
