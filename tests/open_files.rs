//! Open files follow their names (docs/SEMANTICS.md, "Open files"): a file renamed while
//! open keeps being written under its new name, an unlinked one is never re-created, a
//! renamed object can be read at once, and handles opening and closing one file from many
//! threads never upload an empty or mixed version. Through a real mount.

mod support;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::sync::Arc;

use support::data::{pattern, run};
use support::{Mount, TestServer};

fn setup() -> (TestServer, Mount) {
    let server = TestServer::start();
    server.create_bucket("bkt");
    let mount = Mount::start(&server, "bkt", &[]);
    (server, mount)
}

/// `dd` of 25 MiB (a multipart object), `mv`, then `cmp` at once reads the right bytes: the
/// renamed inode takes the copy's new ETag instead of pinning the one S3 no longer has.
#[test]
fn a_renamed_multipart_file_reads_at_once() {
    let (server, m) = setup();
    let data = pattern(25 << 20, 5);
    let src = std::env::temp_dir().join(format!("s3rolefs-src-{}", std::process::id()));
    fs::write(&src, &data).unwrap();
    run(Command::new("dd")
        .arg(format!("if={}", src.display()))
        .arg(format!("of={}", m.path().join("big.iso").display()))
        .args(["bs=1M", "status=none"]));
    fs::create_dir(m.path().join("archive")).unwrap();
    run(Command::new("mv")
        .arg(m.path().join("big.iso"))
        .arg(m.path().join("archive/big.iso")));
    run(Command::new("cmp")
        .arg(&src)
        .arg(m.path().join("archive/big.iso")));
    fs::remove_file(&src).unwrap();
    assert_eq!(
        server.get("bkt", "archive/big.iso").unwrap().as_ref(),
        &data[..]
    );
    assert!(server.get("bkt", "big.iso").is_none());
}

/// logrotate's pattern: a daemon appends to `app.log`; the log is renamed to `app.log.1`;
/// the daemon writes on through its descriptor (those lines belong to `app.log.1`), then
/// re-opens `app.log` by name. Every line is in the right object, none is lost, and the
/// old name is not re-created by the old descriptor.
#[test]
fn logrotate_keeps_every_line_in_the_right_object() {
    let (server, m) = setup();
    let log = m.path().join("app.log");
    let mut fd = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    fd.write_all(b"line 1\n").unwrap();
    fd.write_all(b"line 2\n").unwrap();
    fd.sync_all().unwrap();
    fs::rename(&log, m.path().join("app.log.1")).unwrap();
    fd.write_all(b"line 3\n").unwrap();
    drop(fd);
    let mut fd = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    fd.write_all(b"line 4\n").unwrap();
    drop(fd);
    assert_eq!(
        server.get("bkt", "app.log.1").unwrap().as_ref(),
        b"line 1\nline 2\nline 3\n"
    );
    assert_eq!(server.get("bkt", "app.log").unwrap().as_ref(), b"line 4\n");
    assert_eq!(server.keys("bkt"), vec!["app.log", "app.log.1"]);
    assert_eq!(
        fs::read(m.path().join("app.log.1")).unwrap(),
        b"line 1\nline 2\nline 3\n"
    );
}

/// The same with a file that had never been uploaded when it was renamed (no sync): it
/// goes up under its new name only.
#[test]
fn a_file_renamed_before_its_first_upload_lands_under_the_new_name() {
    let (server, m) = setup();
    let mut fd = fs::File::create(m.path().join("draft")).unwrap();
    fd.write_all(b"first half, ").unwrap();
    fs::rename(m.path().join("draft"), m.path().join("final")).unwrap();
    fd.write_all(b"second half").unwrap();
    drop(fd);
    assert_eq!(
        server.get("bkt", "final").unwrap().as_ref(),
        b"first half, second half"
    );
    assert_eq!(server.keys("bkt"), vec!["final"]);
}

/// An unlinked open file stays readable and writable through its descriptor and is never
/// re-created in S3, whether it had been uploaded before or not.
#[test]
fn unlink_while_open_keeps_the_handle_and_never_recreates() {
    let (server, m) = setup();
    let path = m.path().join("scratch");
    let mut fd = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    fd.write_all(b"uploaded part").unwrap();
    fd.sync_all().unwrap();
    assert!(server.get("bkt", "scratch").is_some());
    fs::remove_file(&path).unwrap();
    assert!(server.get("bkt", "scratch").is_none(), "unlink deletes");
    assert!(!path.exists());
    fd.write_all(b", then more").unwrap();
    fd.seek(SeekFrom::Start(0)).unwrap();
    let mut back = String::new();
    fd.read_to_string(&mut back).unwrap();
    assert_eq!(back, "uploaded part, then more");
    fd.sync_all().unwrap();
    drop(fd);
    assert!(server.get("bkt", "scratch").is_none(), "never re-created");
    assert!(server.keys("bkt").is_empty());
}

/// `rm` of a file created but not uploaded yet succeeds, and closing its descriptor then
/// uploads nothing.
#[test]
fn rm_of_a_file_not_yet_uploaded_works() {
    let (server, m) = setup();
    let path = m.path().join("new.tmp");
    let mut fd = fs::File::create(&path).unwrap();
    fd.write_all(b"never to be seen").unwrap();
    run(Command::new("rm").arg(&path));
    assert!(!path.exists());
    drop(fd);
    assert!(server.keys("bkt").is_empty(), "{:?}", server.keys("bkt"));
}

/// Renaming over a file that is open for writing: the target's descriptor keeps its own
/// (now nameless) file, and its close does not overwrite the renamed one.
#[test]
fn rename_over_an_open_file_leaves_its_handle_nameless() {
    let (server, m) = setup();
    let mut victim = fs::File::create(m.path().join("target")).unwrap();
    victim.write_all(b"old writer").unwrap();
    fs::write(m.path().join("source"), b"the new content").unwrap();
    fs::rename(m.path().join("source"), m.path().join("target")).unwrap();
    victim.write_all(b" keeps writing").unwrap();
    drop(victim);
    assert_eq!(
        server.get("bkt", "target").unwrap().as_ref(),
        b"the new content"
    );
    assert_eq!(server.keys("bkt"), vec!["target"]);
}

/// Many threads open one existing file for writing (no truncation), stamp their tag on
/// its first bytes and close, again and again, while the writer table attaches and
/// releases underneath: every version that lands is the whole file with one thread's tag —
/// never a file cut to the tag (a writer rebuilt as a new, empty file) and never a mix.
#[test]
fn open_write_close_from_many_threads_lands_whole_versions() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 25;
    const LEN: usize = 64 * 1024;
    let (server, m) = setup();
    let path = m.path().join("shared.bin");
    let body = pattern(LEN, 3);
    let tag = |thread: usize, round: usize| format!("t{thread:02}r{round:03}.........");
    fs::write(&path, &body).unwrap();
    let server = Arc::new(server);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (path, server, body) = (path.clone(), Arc::clone(&server), body.clone());
            std::thread::spawn(move || {
                for r in 0..ROUNDS {
                    let fd = fs::OpenOptions::new().write(true).open(&path).unwrap();
                    fd.write_all_at(tag(t, r).as_bytes(), 0).unwrap();
                    drop(fd);
                    let landed = server.get("bkt", "shared.bin").unwrap();
                    assert_eq!(landed.len(), LEN, "the whole file, never cut to a tag");
                    assert_eq!(&landed[16..], &body[16..], "the rest of the file kept");
                    let stamp = String::from_utf8_lossy(&landed[..16]).to_string();
                    assert!(
                        stamp.starts_with('t') && stamp.ends_with("........."),
                        "one thread's whole tag: {stamp:?}"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let last = server.get("bkt", "shared.bin").unwrap();
    assert_eq!(fs::read(&path).unwrap(), last.as_ref());
}
