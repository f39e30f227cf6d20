//! Write-back (`--write-back`, docs/DESKTOP.md), through real mounts against the test
//! server's fault layer: `close` returns while S3 is away and the upload follows once it is
//! back, `sync` waits for it, `kill -9` with files queued loses none, another client's
//! newer version is never overwritten (both are kept), an editor's save through a
//! temporary file and a rename needs no network, and directories are made, changed and
//! removed offline like files (their markers queued). Figures (how long closes took) are
//! printed for the session notes; nothing here asserts a time.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use s3rolefs::sigv4::sha256_hex;
use support::data::{pattern, Tmpfs};
use support::mount::s3rolefs_command;
use support::{eventually, Fault, Mount, Op, TestServer};

fn server() -> TestServer {
    support::server_with_bkt()
}

/// A write-back mount whose journal is in `cache` (a tmpfs that outlives the mount).
fn write_back_mount(server: &TestServer, cache: &Path, extra: &[&str]) -> Mount {
    let mut args = vec![
        "--write-back",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--metadata-ttl",
        "600",
    ];
    args.extend_from_slice(extra);
    Mount::start(server, "bkt", &args)
}

/// Each queued file holds its local copy open until its upload. Under a hard limit of 128
/// descriptors (set on the running daemon), 400 files written at once all close — past
/// the queue's share of descriptors a `close` waits for room instead of failing with
/// `EMFILE` — and `sync` finds them all in S3.
#[test]
fn more_queued_files_than_descriptors_all_close_and_reach_s3() {
    let server = server();
    let cache = Tmpfs::mount("1g");
    let m = write_back_mount(&server, cache.path(), &[]);
    let pid = m.pid().expect("the daemon's pid").to_string();
    let limited = std::process::Command::new("prlimit")
        .args(["--nofile=128:128", "--pid", &pid])
        .status()
        .expect("prlimit (util-linux)");
    assert!(limited.success());
    for i in 0..400 {
        let name = format!("f{i:03}.txt");
        // `fsync` says what `close` would (which `fs::write` does not check).
        let mut f = fs::File::create(m.path().join(&name)).unwrap();
        f.write_all(format!("file {i}\n").as_bytes())
            .and_then(|()| f.sync_all())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
    assert!(ok, "{said}");
    assert_eq!(server.keys("bkt").len(), 400);
    assert_eq!(
        server.get("bkt", "f399.txt").unwrap().as_ref(),
        b"file 399\n"
    );
}

/// The journal's disk fills up while S3 is away: small files (each closed into the close
/// log with its bytes) and larger ones (a local copy each) are written until a `close`
/// fails. It fails with `ENOSPC`, at once, never a hang or another error; every file whose
/// `close` succeeded reaches S3 once it is back, byte for byte, and the one that failed
/// was said to fail.
#[test]
fn a_full_journal_disk_fails_the_close_and_keeps_every_file_closed_before() {
    let server = server();
    let cache = Tmpfs::mount("24m");
    // A queue bound past the disk's size: the disk fills before the bound makes a close
    // wait for room (which, S3 away, it would do for as long as the outage lasts).
    let m = write_back_mount(&server, cache.path(), &["--write-back-max-size", "1G"]);
    fs::read_dir(m.path()).unwrap().for_each(drop);
    server.refuse_connections(None);
    let mut closed = Vec::new();
    let mut refused = None;
    for i in 0..400 {
        let name = format!("f{i:03}.bin");
        // Mostly small files, every fifth a local copy of its own.
        let size = if i % 5 == 4 { 700_000 } else { 20_000 + i * 10 };
        let data = pattern(size, i as u8);
        let mut f = fs::File::create(m.path().join(&name)).unwrap();
        let written = f.write_all(&data).and_then(|()| f.sync_all());
        match written {
            Ok(()) => closed.push((name, data)),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("the 24 MiB disk filled up");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert!(closed.len() >= 20, "{} files closed", closed.len());
    server.end_outage();
    let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
    assert!(ok, "{said}");
    for (name, data) in &closed {
        assert_eq!(
            sha256_hex(&server.get("bkt", name).unwrap()),
            sha256_hex(data),
            "{name}"
        );
    }
}

/// `s3rolefs ARGS…` run to its end: (success, stderr).
fn s3rolefs(args: &[&Path]) -> (bool, String) {
    let home = tempfile::tempdir().unwrap();
    let out = s3rolefs_command(home.path()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

/// Writes `data` to `path` and closes it; returns how long the `close` took.
fn write_and_time_close(path: &Path, data: &[u8]) -> Duration {
    let mut f = fs::File::create(path).unwrap();
    f.write_all(data).unwrap();
    let closing = Instant::now();
    drop(f);
    closing.elapsed()
}

/// S3 refuses every connection for 60 s. Files written meanwhile close at once, read back
/// as written through the mount, and show in `status` as queued; `sync` waits through the
/// outage and succeeds once S3 is back, when every object's SHA-256 matches.
#[test]
fn writes_in_an_outage_close_at_once_and_sync_waits_for_s3() {
    let server = server();
    let cache = Tmpfs::mount("1g");
    let m = write_back_mount(&server, cache.path(), &[]);
    fs::read_dir(m.path()).unwrap().for_each(drop);
    let outage = Instant::now();
    server.refuse_connections(Some(Duration::from_secs(60)));
    let files: Vec<(String, Vec<u8>)> = (0..30)
        .map(|i| (format!("f{i:02}.bin"), pattern(1000 + i * 40_000, i as u8)))
        .collect();
    let mut slowest = Duration::ZERO;
    for (name, data) in &files {
        slowest = slowest.max(write_and_time_close(&m.path().join(name), data));
    }
    println!(
        "FIGURE write-back: 30 closes during an outage, slowest {:.1} ms",
        slowest.as_secs_f64() * 1000.0
    );
    for (name, data) in &files {
        assert_eq!(&fs::read(m.path().join(name)).unwrap(), data, "{name}");
    }
    let mut listed: Vec<String> = fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    assert_eq!(listed.len(), 30, "{listed:?}");
    let (ok, status) = s3rolefs(&[Path::new("status"), m.path()]);
    assert!(ok, "{status}");
    assert!(
        status.contains("30 files") && status.contains("closed and waiting for S3"),
        "{status}"
    );
    assert!(server.keys("bkt").is_empty(), "nothing reached S3 yet");

    let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
    assert!(ok, "{said}");
    assert!(
        outage.elapsed() >= Duration::from_secs(59),
        "sync returned during the outage"
    );
    println!(
        "FIGURE write-back: sync returned {:.1} s after the 60 s outage began",
        outage.elapsed().as_secs_f64()
    );
    for (name, data) in &files {
        assert_eq!(
            sha256_hex(&server.get("bkt", name).unwrap()),
            sha256_hex(data),
            "{name}"
        );
    }
}

/// A file's mtime is the time of its last write: shown so while it is written and while it
/// waits in the queue, and stored so by its upload, however long that waited (here behind a
/// 10 s outage) — not the time of the upload.
#[test]
fn a_queued_file_keeps_the_time_of_its_last_write() {
    let server = server();
    let cache = Tmpfs::mount("1g");
    let m = write_back_mount(&server, cache.path(), &[]);
    fs::read_dir(m.path()).unwrap().for_each(drop);
    let path = m.path().join("notes.txt");
    let mut f = fs::File::create(&path).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let before = SystemTime::now();
    f.write_all(b"written at last").unwrap();
    let after = SystemTime::now();
    let written = |t: SystemTime| t >= before && t <= after;
    let shown = fs::metadata(&path).unwrap().modified().unwrap();
    assert!(
        written(shown),
        "while written: {shown:?}, not in {before:?}..{after:?}"
    );
    server.refuse_connections(Some(Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(1200));
    drop(f);
    let shown = fs::metadata(&path).unwrap().modified().unwrap();
    assert!(
        written(shown),
        "queued: {shown:?}, not in {before:?}..{after:?}"
    );
    let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
    assert!(ok, "{said}");
    let stored: f64 = server.object_info("bkt", "notes.txt").unwrap().metadata["mtime"]
        .parse()
        .unwrap();
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(
        stored >= secs(before) - 1e-3 && stored <= secs(after) + 1e-3,
        "stored {stored}, written in {}..{}",
        secs(before),
        secs(after)
    );
    let shown = fs::metadata(&path).unwrap().modified().unwrap();
    assert!(
        written(shown),
        "uploaded: {shown:?}, not in {before:?}..{after:?}"
    );
}

/// `kill -9` with 100 files closed and queued (S3 away): the next mount uploads all 100.
#[test]
fn a_hundred_queued_files_survive_kill_and_remount() {
    let server = server();
    let cache = Tmpfs::mount("1g");
    let mut m = write_back_mount(&server, cache.path(), &[]);
    fs::create_dir(m.path().join("d")).unwrap();
    server.refuse_connections(None);
    let files: Vec<(String, Vec<u8>)> = (0..100)
        .map(|i| (format!("d/n{i:03}.txt"), pattern(500 + i * 3001, i as u8)))
        .collect();
    for (name, data) in &files {
        fs::write(m.path().join(name), data).unwrap();
    }
    // The small ones (up to 128 KiB) are in the close log with their bytes and nowhere
    // else on disk (no data file: their copies are in memory), the others in entries of
    // their own: both kinds are recovered.
    let journal = cache.path().join("journal");
    let names: Vec<String> = fs::read_dir(&journal)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("closes-")), "{names:?}");
    let large = files.iter().filter(|(_, d)| d.len() > 128 << 10).count();
    let data_files = names.iter().filter(|n| n.ends_with(".data")).count();
    let records = names.iter().filter(|n| n.ends_with(".json")).count();
    assert_eq!((data_files, records), (large, large), "{names:?}");
    m.crash();
    server.end_outage();
    assert!(
        server.keys("bkt").is_empty(),
        "nothing yet, the directory's marker waited too: {:?}",
        server.keys("bkt")
    );

    let _m = write_back_mount(&server, cache.path(), &[]);
    assert!(
        eventually(Duration::from_secs(90), || server.keys("bkt").len() == 101),
        "uploaded: {}",
        server.keys("bkt").len()
    );
    for (name, data) in &files {
        assert_eq!(
            server.get("bkt", name).unwrap().as_ref(),
            &data[..],
            "{name}"
        );
    }
    assert!(
        eventually(Duration::from_secs(30), || {
            support::data::journal_entries(&journal) == 0
        }),
        "the journal is empty once S3 has everything"
    );
}

/// While this mount's edit of `notes.txt` waits (S3 away), another client replaces the
/// object. The upload finds the other version there and puts this one beside it as
/// `notes (conflict HOST TIME).txt`: both versions are kept.
#[test]
fn another_clients_newer_version_is_kept_beside_a_queued_edit() {
    let server = server();
    let cache = Tmpfs::mount("1g");
    server.put("bkt", "notes.txt", b"first version\n".to_vec());
    let m = write_back_mount(&server, cache.path(), &[]);
    assert_eq!(
        fs::read(m.path().join("notes.txt")).unwrap(),
        b"first version\n"
    );
    server.refuse_connections(None);
    fs::write(m.path().join("notes.txt"), b"this mount's edit\n").unwrap();
    server.put("bkt", "notes.txt", b"another client's edit\n".to_vec());
    server.end_outage();
    let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
    assert!(ok, "{said}");
    assert_eq!(
        server.get("bkt", "notes.txt").unwrap().as_ref(),
        b"another client's edit\n"
    );
    let keys = server.keys("bkt");
    let copy = keys
        .iter()
        .find(|k| k.starts_with("notes (conflict ") && k.ends_with(").txt"))
        .unwrap_or_else(|| panic!("no conflict copy in {keys:?}"));
    assert_eq!(
        server.get("bkt", copy).unwrap().as_ref(),
        b"this mount's edit\n"
    );
    assert!(
        eventually(Duration::from_secs(5), || fs::read(
            m.path().join("notes.txt")
        )
        .is_ok_and(|b| b == b"another client's edit\n")),
        "the name shows the other client's version"
    );
    assert!(m.path().join(copy).exists(), "the copy is listed");
}

/// An editor's save — a temporary file written, closed, renamed over the document — while
/// S3 is away: every step succeeds without the network, the document reads as saved, and
/// once S3 is back it holds the new text and no temporary key is left.
#[test]
fn a_save_through_a_temporary_file_needs_no_network() {
    let server = server();
    let cache = Tmpfs::mount("1g");
    server.put("bkt", "doc.txt", b"old text\n".to_vec());
    let m = write_back_mount(&server, cache.path(), &[]);
    // Listed, as a file manager or the editor's open dialog would have.
    fs::read_dir(m.path()).unwrap().for_each(drop);
    assert_eq!(fs::read(m.path().join("doc.txt")).unwrap(), b"old text\n");
    server.refuse_connections(None);
    let saving = Instant::now();
    let tmp = m.path().join(".doc.txt.tmp");
    fs::write(&tmp, b"new text\n").unwrap();
    fs::rename(&tmp, m.path().join("doc.txt")).unwrap();
    println!(
        "FIGURE write-back: save through a temporary file in an outage took {:.1} ms",
        saving.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(fs::read(m.path().join("doc.txt")).unwrap(), b"new text\n");
    assert!(!tmp.exists());
    server.end_outage();
    let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
    assert!(ok, "{said}");
    assert_eq!(
        server.get("bkt", "doc.txt").unwrap().as_ref(),
        b"new text\n"
    );
    assert_eq!(server.keys("bkt"), ["doc.txt"]);
}

/// A file created and removed before its upload never reaches S3, and its removal needs no
/// network; `s3rolefs unmount` waits for the rest of the queue before the mount goes.
#[test]
fn unmount_waits_for_the_queue_and_removed_files_never_go_up() {
    let server = server();
    let cache = Tmpfs::mount("1g");
    let m = write_back_mount(&server, cache.path(), &[]);
    fs::read_dir(m.path()).unwrap().for_each(drop);
    server.refuse_connections(None);
    fs::write(m.path().join("scratch.tmp"), b"gone soon").unwrap();
    fs::remove_file(m.path().join("scratch.tmp")).unwrap();
    let data = pattern(3 << 20, 7);
    fs::write(m.path().join("kept.bin"), &data).unwrap();
    server.end_outage();
    server.set_latency(Duration::from_millis(300));
    let (ok, said) = s3rolefs(&[Path::new("unmount"), m.path()]);
    assert!(ok, "{said}");
    assert!(!m.is_mounted() || support::mount::wait_unmounted(m.path()));
    assert_eq!(server.keys("bkt"), ["kept.bin"]);
    assert_eq!(
        sha256_hex(&server.get("bkt", "kept.bin").unwrap()),
        sha256_hex(&data)
    );
}

/// Every file under `root`, by path from it, sorted.
fn walk(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                let rel = entry.path().strip_prefix(root).unwrap().to_owned();
                found.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}

/// A tree of 1,000 files in three levels, listed and partly read; then S3 refuses every
/// connection. The tree still lists whole from what the mount saw, the files read before
/// read again, a file never read fails at once instead of waiting out the retry budget,
/// `status` says the mount is offline, and a file written meanwhile closes and reaches S3
/// once it is back.
#[test]
fn a_tree_seen_before_lists_and_reads_while_s3_is_away() {
    let server = server();
    let cache = Tmpfs::mount("1g");
    let mut names = Vec::new();
    for a in 0..10 {
        for b in 0..10 {
            for f in 0..10 {
                let name = format!("a{a}/b{b}/f{f}.txt");
                server.put("bkt", &name, format!("content of {name}\n").into_bytes());
                names.push(name);
            }
        }
    }
    let m = write_back_mount(&server, cache.path(), &[]);
    assert_eq!(walk(m.path()), names);
    let read_before: Vec<&String> = names.iter().step_by(10).collect();
    for name in &read_before {
        fs::read(m.path().join(name)).unwrap();
    }

    server.refuse_connections(None);
    let listing = Instant::now();
    assert_eq!(walk(m.path()), names, "the tree lists as it was seen");
    println!(
        "FIGURE offline: listed 1,000 files in 111 directories in {:.2} s with S3 away",
        listing.elapsed().as_secs_f64()
    );
    for name in &read_before {
        assert_eq!(
            fs::read(m.path().join(name)).unwrap(),
            format!("content of {name}\n").into_bytes(),
            "{name}"
        );
    }
    let failing = Instant::now();
    let err = fs::read(m.path().join("a9/b9/f9.txt")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    println!(
        "FIGURE offline: a file never read failed in {:.2} s",
        failing.elapsed().as_secs_f64()
    );
    let (ok, status) = s3rolefs(&[Path::new("status"), m.path()]);
    assert!(ok && status.contains("working offline"), "{status}");
    fs::write(m.path().join("a0/new.txt"), b"written offline\n").unwrap();

    server.end_outage();
    let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
    assert!(ok, "{said}");
    assert_eq!(
        server.get("bkt", "a0/new.txt").unwrap().as_ref(),
        b"written offline\n"
    );
    assert!(
        eventually(Duration::from_secs(5), || {
            let log = m.stderr_log();
            log.contains("working offline from what this mount has seen")
                && log.contains("S3 answers again")
        }),
        "the log says once that the mount went offline and once that it is back"
    );
}

/// What one mount saw is there offline for the next: a tree listed and partly read, then
/// unmounted; mounted again, S3 goes away before anything is listed. The tree lists whole
/// from the listings the first mount kept, with the modes it saw, and the files it read
/// read again from the disk tier of the block cache. Mounted a third time with S3 already
/// gone, the mount starts offline, lists and reads the same, and a file written then
/// reaches S3 once it answers.
#[test]
fn a_tree_seen_by_an_earlier_mount_lists_offline() {
    let server = server();
    let cache = Tmpfs::mount("1g");
    let mut names = Vec::new();
    for a in 0..4 {
        for b in 0..5 {
            for f in 0..5 {
                let name = format!("a{a}/b{b}/f{f}.txt");
                server.put("bkt", &name, format!("content of {name}\n").into_bytes());
                names.push(name);
            }
        }
    }
    // One file carries a mode in s3fs's format: seen by a `stat`, kept for the next mount.
    server.put_object(
        "bkt",
        "a0/b0/f0.txt",
        b"content of a0/b0/f0.txt\n".to_vec(),
        None,
        [("mode".to_string(), "33184".to_string())].into(),
    );
    let extra = ["--cache-dir-size", "64M"];
    let m = write_back_mount(&server, cache.path(), &extra);
    assert_eq!(walk(m.path()), names);
    fs::metadata(m.path().join("a0/b0/f0.txt")).unwrap();
    let read_before: Vec<&String> = names.iter().step_by(7).collect();
    for name in &read_before {
        fs::read(m.path().join(name)).unwrap();
    }
    let (ok, said) = s3rolefs(&[Path::new("unmount"), m.path()]);
    assert!(ok, "{said}");
    drop(m);

    let m = write_back_mount(&server, cache.path(), &extra);
    server.refuse_connections(None);
    assert_eq!(
        walk(m.path()),
        names,
        "the tree lists as the earlier mount saw it"
    );
    let mode = fs::metadata(m.path().join("a0/b0/f0.txt")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o640
    );
    for name in &read_before {
        assert_eq!(
            fs::read(m.path().join(name)).unwrap(),
            format!("content of {name}\n").into_bytes(),
            "{name}"
        );
    }
    let (ok, said) = s3rolefs(&[Path::new("unmount"), m.path()]);
    assert!(ok, "{said}");
    drop(m);

    // S3 gone before the mount starts: it mounts offline, lists and reads what was kept,
    // queues what is written, and uploads it once S3 answers.
    let m = write_back_mount(&server, cache.path(), &extra);
    assert!(
        m.stderr_log().contains("mounting offline"),
        "{}",
        m.stderr_log()
    );
    assert_eq!(walk(m.path()), names);
    assert_eq!(
        fs::read(m.path().join(read_before[1])).unwrap(),
        format!("content of {}\n", read_before[1]).into_bytes()
    );
    fs::write(m.path().join("a1/written-offline.txt"), b"on the train\n").unwrap();
    let (ok, status) = s3rolefs(&[Path::new("status"), m.path()]);
    assert!(ok && status.contains("working offline"), "{status}");
    server.end_outage();
    let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
    assert!(ok, "{said}");
    assert_eq!(
        server
            .get("bkt", "a1/written-offline.txt")
            .unwrap()
            .as_ref(),
        b"on the train\n"
    );
}

/// The answer to a queued file's PUT is lost (S3 stored it), then the next attempts get no
/// answer either, so the upload fails and is tried again later. That try finds this
/// mount's own bytes at the key, not another client's version: no conflict copy is made,
/// for a new file and for an edit of an existing one, and S3 ends up with the edits.
#[test]
fn a_lost_answer_is_not_taken_for_another_clients_version() {
    let server = server();
    let cache = Tmpfs::mount("256m");
    server.put("bkt", "edit.txt", b"version one\n".to_vec());
    let m = write_back_mount(&server, cache.path(), &[]);
    for (name, body) in [
        ("new.txt", b"a new file\n".as_slice()),
        ("edit.txt", b"version two\n".as_slice()),
    ] {
        server.fail_next_op(Op::PutObject, 1, Fault::LoseAnswer);
        server.fail_next_op(Op::PutObject, 8, Fault::DropConnection);
        fs::write(m.path().join(name), body).unwrap();
        let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
        assert!(ok, "{said}");
        assert_eq!(server.get("bkt", name).unwrap().as_ref(), body, "{name}");
    }
    let mut keys = server.keys("bkt");
    keys.sort();
    assert_eq!(keys, ["edit.txt", "new.txt"], "no conflict copy");
    assert!(
        !m.stderr_log().contains("changed in S3"),
        "{}",
        m.stderr_log()
    );
}

/// A file waiting for its upload, or being uploaded through a slow link, reads at once:
/// its local copy answers, the upload does not hold it up. 4 MiB through 512 KiB/s takes
/// about 8 s to go up; the file is read whole, with its bytes, before S3 has it.
#[test]
fn a_file_being_uploaded_reads_without_waiting_for_the_upload() {
    let server = server();
    let cache = Tmpfs::mount("256m");
    let m = write_back_mount(&server, cache.path(), &[]);
    let data = pattern(4 << 20, 9);
    fs::write(m.path().join("big.bin"), &data).unwrap();
    server.set_upload_bandwidth(Some(512 << 10));
    // Past the settle delay: the upload has begun.
    assert!(eventually(Duration::from_secs(20), || {
        server
            .requests()
            .iter()
            .any(|r| r.key.as_deref() == Some("big.bin") && r.method == "PUT")
    }));
    // Read through a new descriptor, past the kernel's page cache.
    let read = {
        let mut f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(m.path().join("big.bin"))
            .unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut out).unwrap();
        out
    };
    let uploaded_yet = server.get("bkt", "big.bin").is_some();
    assert_eq!(sha256_hex(&read), sha256_hex(&data));
    assert!(!uploaded_yet, "the read waited for the upload");
    server.set_upload_bandwidth(None);
    let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
    assert!(ok, "{said}");
    assert_eq!(
        sha256_hex(&server.get("bkt", "big.bin").unwrap()),
        sha256_hex(&data)
    );
}

/// s3fs's `x-amz-meta-mode` of a directory with permission bits `perm`.
fn dir_mode(perm: u32) -> String {
    (libc::S_IFDIR | perm).to_string()
}

/// S3 refuses every connection: `mkdir -p a/b/c`, files in the new directories and a
/// `chmod 0700 a/b` all succeed at once, `status` shows the markers queued; once S3 is
/// back `sync` waits for them, and they are in S3 with their modes (s3fs's decimal
/// format) and the directory Content-Type.
#[test]
fn directories_made_in_an_outage_reach_s3_after_it() {
    use std::os::unix::fs::PermissionsExt;
    let server = server();
    let cache = Tmpfs::mount("1g");
    let m = write_back_mount(&server, cache.path(), &[]);
    fs::read_dir(m.path()).unwrap().for_each(drop);
    server.refuse_connections(None);
    let making = Instant::now();
    fs::create_dir_all(m.path().join("a/b/c")).unwrap();
    fs::write(m.path().join("a/top.txt"), b"top\n").unwrap();
    fs::write(m.path().join("a/b/c/deep.txt"), b"deep\n").unwrap();
    fs::set_permissions(m.path().join("a/b"), fs::Permissions::from_mode(0o700)).unwrap();
    println!(
        "FIGURE write-back: mkdir -p of 3 levels, 2 files and a chmod in an outage took {:.1} ms",
        making.elapsed().as_secs_f64() * 1000.0
    );
    let b = fs::metadata(m.path().join("a/b")).unwrap();
    assert!(b.is_dir());
    assert_eq!(b.permissions().mode() & 0o7777, 0o700);
    // What mkdir gave `c` (0777 less this process's umask), as the mount shows it.
    let c_perm = fs::metadata(m.path().join("a/b/c"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(
        fs::read(m.path().join("a/b/c/deep.txt")).unwrap(),
        b"deep\n"
    );
    let (ok, status) = s3rolefs(&[Path::new("status"), m.path()]);
    assert!(ok, "{status}");
    assert!(status.contains("a/b/"), "the markers are queued: {status}");
    assert!(server.keys("bkt").is_empty(), "nothing reached S3 yet");

    server.end_outage();
    let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
    assert!(ok, "{said}");
    assert_eq!(
        server.keys("bkt"),
        ["a/", "a/b/", "a/b/c/", "a/b/c/deep.txt", "a/top.txt"]
    );
    let marker = server.object_info("bkt", "a/b/").unwrap();
    assert_eq!(marker.metadata["mode"], dir_mode(0o700));
    assert_eq!(marker.content_type, "application/x-directory");
    assert_eq!(marker.size, 0);
    let c = server.object_info("bkt", "a/b/c/").unwrap();
    assert_eq!(c.metadata["mode"], dir_mode(c_perm));
}

/// `kill -9` right after `mkdir` of a few directories (their markers queued, S3 away):
/// the next mount uploads the markers from the journal, modes and all.
#[test]
fn queued_directories_survive_kill_and_remount() {
    use std::os::unix::fs::PermissionsExt;
    let server = server();
    let cache = Tmpfs::mount("1g");
    let mut m = write_back_mount(&server, cache.path(), &[]);
    fs::read_dir(m.path()).unwrap().for_each(drop);
    server.refuse_connections(None);
    fs::create_dir(m.path().join("x")).unwrap();
    fs::create_dir_all(m.path().join("y/z")).unwrap();
    fs::set_permissions(m.path().join("y/z"), fs::Permissions::from_mode(0o750)).unwrap();
    m.crash();
    server.end_outage();
    assert!(server.keys("bkt").is_empty(), "{:?}", server.keys("bkt"));

    let m = write_back_mount(&server, cache.path(), &[]);
    assert!(
        eventually(Duration::from_secs(60), || server.keys("bkt").len() == 3),
        "uploaded: {:?}",
        server.keys("bkt")
    );
    assert_eq!(server.keys("bkt"), ["x/", "y/", "y/z/"]);
    let z = server.object_info("bkt", "y/z/").unwrap();
    assert_eq!(z.metadata["mode"], dir_mode(0o750));
    assert_eq!(z.content_type, "application/x-directory");
    let shown = fs::metadata(m.path().join("y/z")).unwrap();
    assert!(shown.is_dir());
    assert_eq!(shown.permissions().mode() & 0o7777, 0o750);
}

/// Directories made and removed before their markers went up leave nothing in S3, and
/// their removal needs no network; a directory holding a queued one is ENOTEMPTY.
#[test]
fn a_directory_removed_before_its_upload_never_reaches_s3() {
    let server = server();
    let cache = Tmpfs::mount("1g");
    let m = write_back_mount(&server, cache.path(), &[]);
    fs::read_dir(m.path()).unwrap().for_each(drop);
    server.refuse_connections(None);
    fs::create_dir_all(m.path().join("q/r")).unwrap();
    fs::write(m.path().join("q/r/f.txt"), b"scratch").unwrap();
    let refused = fs::remove_dir(m.path().join("q")).unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(libc::ENOTEMPTY), "{refused}");
    fs::remove_file(m.path().join("q/r/f.txt")).unwrap();
    fs::remove_dir(m.path().join("q/r")).unwrap();
    fs::remove_dir(m.path().join("q")).unwrap();
    assert!(!m.path().join("q").exists());
    fs::create_dir(m.path().join("kept")).unwrap();
    server.end_outage();
    let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
    assert!(ok, "{said}");
    assert_eq!(server.keys("bkt"), ["kept/"]);
}

/// `tar x` sets each directory's mode and times once the whole tree is out, after the
/// markers went up: a directory this mount made lately takes them without S3 (here away),
/// in a marker queued again, which `sync` then waits for.
#[test]
fn a_directory_made_lately_changes_offline_after_its_upload() {
    use std::os::unix::fs::PermissionsExt;
    let server = server();
    let cache = Tmpfs::mount("1g");
    let m = write_back_mount(&server, cache.path(), &[]);
    fs::create_dir(m.path().join("t")).unwrap();
    let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
    assert!(ok, "{said}");
    assert_eq!(server.keys("bkt"), ["t/"]);
    server.refuse_connections(None);
    fs::set_permissions(m.path().join("t"), fs::Permissions::from_mode(0o701)).unwrap();
    let shown = fs::metadata(m.path().join("t")).unwrap();
    assert_eq!(shown.permissions().mode() & 0o7777, 0o701);
    server.end_outage();
    let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
    assert!(ok, "{said}");
    let marker = server.object_info("bkt", "t/").unwrap();
    assert_eq!(marker.metadata["mode"], dir_mode(0o701));
    assert_eq!(marker.content_type, "application/x-directory");
}

/// What `tar x` does to each directory — mkdir, then chown, chmod and the times once the
/// tree is out — for 126 directories through a 5 ms round trip: no request waits (0.16 s;
/// 8.0 s when each step waited for S3), and `sync` then finds every marker in S3 with its
/// mode.
#[test]
fn directories_cost_no_round_trip_through_a_slow_link() {
    use std::os::unix::fs::PermissionsExt;
    let server = server();
    let cache = Tmpfs::mount("1g");
    let m = write_back_mount(&server, cache.path(), &[]);
    fs::create_dir(m.path().join("tree")).unwrap();
    let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
    assert!(ok, "{said}");
    server.set_latency(Duration::from_millis(5));
    let dirs: Vec<_> = (0..126)
        .map(|i| m.path().join(format!("tree/d{:02}/s{i:03}", i / 10)))
        .collect();
    // SAFETY: getuid/getgid read the process's ids; no memory is passed.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let making = Instant::now();
    for dir in &dirs {
        fs::create_dir_all(dir).unwrap();
    }
    let stamp = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    for dir in &dirs {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o750)).unwrap();
        let handle = fs::File::open(dir).unwrap();
        handle
            .set_times(fs::FileTimes::new().set_modified(stamp).set_accessed(stamp))
            .unwrap();
    }
    println!(
        "FIGURE write-back: 126 directories made, chowned, chmodded and timed through a 5 ms \
         round trip in {:.2} s",
        making.elapsed().as_secs_f64()
    );
    let (ok, said) = s3rolefs(&[Path::new("sync"), m.path()]);
    assert!(ok, "{said}");
    server.set_latency(Duration::ZERO);
    let markers: Vec<String> = server
        .keys("bkt")
        .into_iter()
        .filter(|k| k.starts_with("tree/d") && k.matches('/').count() == 3)
        .collect();
    assert_eq!(markers.len(), 126, "{markers:?}");
    for key in &markers {
        let marker = server.object_info("bkt", key).unwrap();
        assert_eq!(marker.metadata["mode"], dir_mode(0o750), "{key}");
        assert_eq!(marker.metadata["mtime"], "1500000000", "{key}");
    }
}
