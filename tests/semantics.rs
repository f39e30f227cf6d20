//! `docs/SEMANTICS.md`, sentence by sentence, through a real kernel mount of a bucket on the
//! local S3 server. Each test quotes the paragraph it proves.

mod support;

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, UNIX_EPOCH};

use s3rolefs::sigv4::sha256_hex;
use support::{Mount, TestServer};

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn server_with(bucket: &str, objects: &[(&str, &[u8])]) -> TestServer {
    let server = TestServer::start();
    server.create_bucket(bucket);
    for (key, body) in objects {
        server.put(bucket, key, body.to_vec());
    }
    server
}

/// "A directory is a common prefix (`a/b/` has keys under it) or a zero-byte marker object
/// `a/b/`. Both look the same through the mount."
#[test]
fn directories_come_from_prefixes_and_markers() {
    let server = server_with(
        "bkt",
        &[
            ("top.txt", b"t"),
            ("implicit/deep/file.txt", b"x"),
            ("marker/", b""),
        ],
    );
    let m = Mount::start(&server, "bkt", &[]);
    let root = m.path();
    assert_eq!(names(root), ["implicit", "marker", "top.txt"]);
    assert!(fs::metadata(root.join("implicit")).unwrap().is_dir());
    assert!(fs::metadata(root.join("marker")).unwrap().is_dir());
    assert!(fs::metadata(root.join("implicit/deep")).unwrap().is_dir());
    assert_eq!(names(&root.join("implicit/deep")), ["file.txt"]);
    assert!(names(&root.join("marker")).is_empty());
}

/// "The root of a mount is the bucket, or the prefix given as `BUCKET:PREFIX` (a prefix
/// always ends in `/`: `logs` means `logs/`)."
#[test]
fn prefix_mount_shows_only_the_prefix() {
    let server = server_with(
        "bkt",
        &[
            ("logs/2026/a.log", b"aaa"),
            ("logs/b.log", b"b"),
            ("logsother/c.log", b"c"),
            ("root.txt", b"r"),
        ],
    );
    let m = Mount::start(&server, "bkt:logs", &[]);
    assert_eq!(names(m.path()), ["2026", "b.log"]);
    assert_eq!(fs::read(m.path().join("2026/a.log")).unwrap(), b"aaa");
}

/// "Listing a directory lists every key under it, across as many ListObjectsV2 pages as it
/// takes; a directory of 10,000 keys shows all 10,000 entries." With
/// `--no-posix-metadata`, the listing answers every `stat` of `ls -l` (no HEAD per file).
#[test]
fn ten_thousand_key_directory_lists_completely() {
    let server = TestServer::start();
    server.create_bucket("bkt");
    server.put_many(
        "bkt",
        (0..10_000).map(|i| (format!("many/f{i:05}"), format!("{i}").into_bytes())),
    );
    // A TTL longer than the test, so a loaded machine cannot expire the listing's answers.
    let m = Mount::start(
        &server,
        "bkt",
        &["--metadata-ttl", "300", "--no-posix-metadata"],
    );
    let listed = names(&m.path().join("many"));
    assert_eq!(listed.len(), 10_000);
    assert_eq!(listed[0], "f00000");
    assert_eq!(listed[9_999], "f09999");
    // `ls -l`: every entry stats with its size, without a HEAD per file.
    let heads_before = server.count(support::Op::HeadObject);
    for name in listed.iter().step_by(500) {
        let meta = fs::metadata(m.path().join("many").join(name)).unwrap();
        let i: u64 = name[1..].parse().unwrap();
        assert_eq!(meta.len(), i.to_string().len() as u64);
    }
    assert_eq!(server.count(support::Op::HeadObject), heads_before);
}

/// "A listing is reused for `--metadata-ttl`: a second `ls` asks S3 nothing, nor does a lookup
/// of a name it lacks; a change made through the mount shows at once; one made by another
/// client shows once the TTL ran out."
#[test]
fn listings_are_cached_for_the_ttl() {
    let server = TestServer::start();
    server.create_bucket("bkt");
    server.put_many(
        "bkt",
        (0..50).map(|i| (format!("d/f{i:02}"), b"x".to_vec())),
    );
    let m = Mount::start(&server, "bkt", &["--metadata-ttl", "2"]);
    let dir = m.path().join("d");
    assert_eq!(names(&dir).len(), 50);
    let lists = server.count(support::Op::ListObjects);
    assert_eq!(names(&dir).len(), 50);
    assert_eq!(
        server.count(support::Op::ListObjects),
        lists,
        "served from the cache"
    );
    // Through the mount: visible at once.
    fs::write(dir.join("mine"), b"m").unwrap();
    assert!(names(&dir).contains(&"mine".to_string()));
    fs::remove_file(dir.join("f00")).unwrap();
    assert!(!names(&dir).contains(&"f00".to_string()));
    // A name the fresh listing lacks is ENOENT without asking S3.
    let before = server.total_requests();
    assert!(fs::metadata(dir.join("missing")).is_err());
    assert!(fs::metadata(dir.join(".git")).is_err());
    assert_eq!(
        server.total_requests(),
        before,
        "negative lookups from the listing"
    );
    // Another client: visible after the TTL.
    server.put("bkt", "d/theirs", b"t".to_vec());
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(names(&dir).contains(&"theirs".to_string()));
}

/// "When both an object `a` and keys under `a/` exist, the directory wins and the file `a`
/// is hidden (and logged once)."
#[test]
fn directory_shadows_file_of_same_name() {
    let server = server_with("bkt", &[("a", b"file"), ("a/b", b"inner")]);
    let m = Mount::start(&server, "bkt", &[]);
    assert_eq!(names(m.path()), ["a"]);
    assert!(fs::metadata(m.path().join("a")).unwrap().is_dir());
    assert_eq!(fs::read(m.path().join("a/b")).unwrap(), b"inner");
}

/// "Keys that cannot be a path are hidden and logged once: an empty component (`a//b`), a
/// component `.` or `..`." Names longer than 255 bytes are shown.
#[test]
fn keys_that_cannot_be_paths_are_hidden() {
    let long = format!("d/{}", "x".repeat(300));
    let server = server_with(
        "bkt",
        &[
            ("d//b", b"1"),
            ("d/./c", b"1"),
            ("d/../e", b"1"),
            (long.as_str(), b"1"),
            ("d/ok", b"1"),
        ],
    );
    let m = Mount::start(&server, "bkt", &[]);
    assert_eq!(names(&m.path().join("d")), ["ok", &"x".repeat(300)]);
}

/// "A file's size is the object's `Content-Length`, its mtime (and atime, ctime) the
/// object's `Last-Modified`. Mode, owner and group come from the mount."
#[test]
fn stat_shows_size_mtime_and_mount_modes() {
    let server = server_with("bkt", &[("f.txt", b"hello world")]);
    let info = server.object_info("bkt", "f.txt").unwrap();
    let m = Mount::start(
        &server,
        "bkt",
        &[
            "--uid",
            "1234",
            "--gid",
            "4321",
            "--file-mode",
            "0640",
            "--dir-mode",
            "0750",
        ],
    );
    let meta = fs::metadata(m.path().join("f.txt")).unwrap();
    assert_eq!(meta.len(), 11);
    assert_eq!(meta.uid(), 1234);
    assert_eq!(meta.gid(), 4321);
    assert_eq!(meta.mode() & 0o7777, 0o640);
    let mtime = UNIX_EPOCH + Duration::from_secs(meta.mtime() as u64);
    let last_modified: std::time::SystemTime = info.last_modified.into();
    let diff = last_modified
        .duration_since(mtime)
        .unwrap_or_else(|e| e.duration());
    assert!(diff < Duration::from_secs(1), "mtime off by {diff:?}");
    let dmeta = fs::metadata(m.path()).unwrap();
    assert_eq!(dmeta.mode() & 0o7777, 0o750);
}

/// "Keys are shown exactly as stored: spaces, `%`, `+` and any UTF-8 are ordinary
/// characters."
#[test]
fn keys_with_spaces_unicode_percent_and_plus_round_trip() {
    let keys = [
        "with space.txt",
        "100% sure.txt",
        "a+b=c.txt",
        "ünïcødé/日本語.txt",
        "emoji 🎉.bin",
    ];
    let objects: Vec<(&str, &[u8])> = keys.iter().map(|k| (*k, k.as_bytes())).collect();
    let server = server_with("bkt", &objects);
    let m = Mount::start(&server, "bkt", &[]);
    for key in keys {
        assert_eq!(
            fs::read(m.path().join(key)).unwrap(),
            key.as_bytes(),
            "{key}"
        );
    }
    assert_eq!(names(&m.path().join("ünïcødé")), ["日本語.txt"]);
}

/// Objects of 0 B, 1 B, 10 MiB and 100 MiB read back with the content hash of the source.
#[test]
fn objects_of_every_size_read_back_whole() {
    let sizes = [0usize, 1, 10 << 20, 100 << 20];
    let server = TestServer::start();
    server.create_bucket("bkt");
    let mut expected = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let body = pattern(*size, i as u64 + 7);
        expected.push((format!("obj{size}"), sha256_hex(&body)));
        server.put("bkt", &format!("obj{size}"), body);
    }
    let m = Mount::start(&server, "bkt", &[]);
    for (key, hash) in expected {
        let data = fs::read(m.path().join(&key)).unwrap();
        assert_eq!(sha256_hex(&data), hash, "{key}");
    }
}

/// Reads at random offsets return exactly the source's bytes.
#[test]
fn random_offset_reads_match_the_object() {
    let body = pattern(10 << 20, 42);
    let server = server_with("bkt", &[("big", &body)]);
    let m = Mount::start(&server, "bkt", &[]);
    let mut f = fs::File::open(m.path().join("big")).unwrap();
    let offsets = pattern(64 * 8, 9);
    for chunk in offsets.chunks(8) {
        let raw = u64::from_le_bytes(chunk.try_into().unwrap());
        let offset = raw % body.len() as u64;
        let len = (raw >> 40) as usize % 300_000 + 1;
        let mut buf = vec![0u8; len];
        f.seek(SeekFrom::Start(offset)).unwrap();
        let n = f.read(&mut buf).unwrap();
        let end = (offset as usize + len).min(body.len());
        assert!(n > 0);
        assert!(
            buf[..n] == body[offset as usize..offset as usize + n],
            "bytes differ at offset {offset} (+{n})"
        );
        assert!(offset as usize + n <= end);
    }
}

/// "`open` pins the object's version (its ETag) ... If the object is replaced while open,
/// the next read that needs S3 fails with `ESTALE`; opening the file again reads the new
/// version."
#[test]
fn replaced_object_fails_open_handle_with_estale() {
    let old = pattern(4 << 20, 1);
    let server = server_with("bkt", &[("f", &old)]);
    let m = Mount::start(&server, "bkt", &["--metadata-ttl", "0"]);
    let mut f = fs::File::open(m.path().join("f")).unwrap();
    let mut head = vec![0u8; 4096];
    f.read_exact(&mut head).unwrap();
    assert!(head == old[..4096]);
    let new = pattern(4 << 20, 2);
    server.put("bkt", "f", new.clone());
    f.seek(SeekFrom::Start(3 << 20)).unwrap();
    let err = f.read(&mut head).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ESTALE), "{err}");
    drop(f);
    let mut again = fs::File::open(m.path().join("f")).unwrap();
    let mut buf = Vec::new();
    again.read_to_end(&mut buf).unwrap();
    assert!(buf == new, "reopening must read the new version");
}

/// "With `--read-only` (the `ro` mount flag), `open` for writing, `create`, `mkdir`,
/// `unlink`, `rename` and `truncate` fail with `EROFS`."
#[test]
fn read_only_mount_refuses_modifications_with_erofs() {
    let server = server_with("bkt", &[("f", b"x")]);
    let m = Mount::start(&server, "bkt", &["--read-only"]);
    let p = m.path();
    let erofs = |r: std::io::Result<()>| {
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EROFS));
    };
    erofs(fs::write(p.join("new"), b"y"));
    erofs(
        fs::OpenOptions::new()
            .write(true)
            .open(p.join("f"))
            .map(|_| ()),
    );
    erofs(fs::create_dir(p.join("d")));
    erofs(fs::remove_file(p.join("f")));
    erofs(fs::rename(p.join("f"), p.join("g")));
    assert_eq!(server.get("bkt", "f").unwrap().as_ref(), b"x");
}

/// "`statfs` reports large, constant free space."
#[test]
fn statfs_reports_large_free_space() {
    let server = server_with("bkt", &[]);
    let m = Mount::start(&server, "bkt", &[]);
    let path = std::ffi::CString::new(m.path().to_str().unwrap()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
    assert!(st.f_bavail as u64 * st.f_frsize as u64 > 1 << 50);
}

/// "With `--cache-dir-size`, blocks read are kept on disk (files 0600) and read again from
/// there after a remount, never for another version of the object."
#[test]
fn disk_cache_serves_reads_across_remounts() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start();
    server.create_bucket("bkt");
    let data: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    server.put("bkt", "big.bin", data.clone());
    let cache = tempfile::tempdir().unwrap();
    let args = [
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--cache-dir-size",
        "1G",
    ];
    let m = Mount::start(&server, "bkt", &args);
    assert_eq!(fs::read(m.path().join("big.bin")).unwrap(), data);
    drop(m);
    let blocks: Vec<_> = fs::read_dir(cache.path().join("blocks"))
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert!(blocks.len() >= 2, "blocks on disk: {}", blocks.len());
    for b in &blocks {
        assert_eq!(b.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }

    let m = Mount::start(&server, "bkt", &args);
    let gets = server.count(support::Op::GetObject);
    assert_eq!(fs::read(m.path().join("big.bin")).unwrap(), data);
    assert_eq!(
        server.count(support::Op::GetObject),
        gets,
        "a remounted read comes from the disk cache"
    );
    drop(m);

    // Another version of the object: its blocks are not the cached ones.
    let new: Vec<u8> = data.iter().map(|b| b.wrapping_add(1)).collect();
    server.put("bkt", "big.bin", new.clone());
    let m = Mount::start(&server, "bkt", &args);
    assert_eq!(fs::read(m.path().join("big.bin")).unwrap(), new);
}
