//! Writes that just work, through a real mount: what ordinary programs do to files on a
//! disk, checked through the mount and against the bucket's own contents.

mod support;

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;

use s3rolefs::sigv4::sha256_hex;
use support::{Mount, TestServer};

fn setup(objects: &[(&str, &[u8])]) -> (TestServer, Mount) {
    let server = TestServer::start();
    server.create_bucket("bkt");
    for (k, v) in objects {
        server.put("bkt", k, v.to_vec());
    }
    let mount = Mount::start(&server, "bkt", &[]);
    (server, mount)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new file written and closed is in the bucket, whole, with its size visible.
#[test]
fn new_file_is_uploaded_on_close() {
    let (server, m) = setup(&[]);
    fs::write(m.path().join("hello.txt"), b"hello world").unwrap();
    assert_eq!(
        server.get("bkt", "hello.txt").unwrap().as_ref(),
        b"hello world"
    );
    assert_eq!(fs::metadata(m.path().join("hello.txt")).unwrap().len(), 11);
    assert_eq!(
        fs::read(m.path().join("hello.txt")).unwrap(),
        b"hello world"
    );
}

/// A large file written sequentially streams as a multipart upload and arrives whole;
/// no upload is left open.
#[test]
fn large_sequential_write_arrives_whole() {
    let (server, m) = setup(&[]);
    let data = pattern(40 << 20, 3);
    let mut f = fs::File::create(m.path().join("big.bin")).unwrap();
    for chunk in data.chunks(1 << 20) {
        f.write_all(chunk).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    let stored = server.get("bkt", "big.bin").unwrap();
    assert_eq!(sha256_hex(&stored), sha256_hex(&data));
    assert_eq!(server.open_multipart_uploads("bkt"), 0);
}

/// Appending from two opens, one line at a time, keeps every line in order.
#[test]
fn append_from_two_opens_keeps_every_line() {
    let (server, m) = setup(&[("log.txt", b"start\n")]);
    let path = m.path().join("log.txt");
    for i in 0..3 {
        for who in ["a", "b"] {
            let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
            writeln!(f, "{who}{i}").unwrap();
        }
    }
    let expected = "start\na0\nb0\na1\nb1\na2\nb2\n";
    assert_eq!(fs::read_to_string(&path).unwrap(), expected);
    assert_eq!(
        server.get("bkt", "log.txt").unwrap().as_ref(),
        expected.as_bytes()
    );
}

/// Writes after a seek, and an overwrite in the middle of an existing object.
#[test]
fn random_writes_edit_the_object() {
    let original = pattern(3 << 20, 1);
    let (server, m) = setup(&[("data.bin", &original)]);
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path().join("data.bin"))
        .unwrap();
    f.seek(SeekFrom::Start(1 << 20)).unwrap();
    f.write_all(b"PATCHED").unwrap();
    f.seek(SeekFrom::Start(10)).unwrap();
    f.write_all(b"HEAD").unwrap();
    drop(f);
    let mut expected = original.clone();
    expected[(1 << 20)..(1 << 20) + 7].copy_from_slice(b"PATCHED");
    expected[10..14].copy_from_slice(b"HEAD");
    assert!(server.get("bkt", "data.bin").unwrap().as_ref() == expected.as_slice());
}

/// truncate shrinks and grows (with zeros).
#[test]
fn truncate_to_any_size() {
    let (server, m) = setup(&[("t", b"0123456789")]);
    let path = m.path().join("t");
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4)
        .unwrap();
    assert_eq!(server.get("bkt", "t").unwrap().as_ref(), b"0123");
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(6)
        .unwrap();
    assert_eq!(server.get("bkt", "t").unwrap().as_ref(), b"0123\0\0");
    assert_eq!(fs::metadata(&path).unwrap().len(), 6);
}

/// O_EXCL on an existing file is EEXIST.
#[test]
fn exclusive_create_refuses_existing() {
    let (_server, m) = setup(&[("x", b"1")]);
    let err = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(m.path().join("x"))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
}

/// mkdir writes a marker; rmdir refuses a non-empty directory; unlink and rename work.
#[test]
fn namespace_operations() {
    let (server, m) = setup(&[("d/x", b"1")]);
    let p = m.path();
    fs::create_dir(p.join("new")).unwrap();
    assert!(server.keys("bkt").contains(&"new/".to_string()));
    assert_eq!(
        fs::remove_dir(p.join("d")).unwrap_err().raw_os_error(),
        Some(libc::ENOTEMPTY)
    );
    fs::rename(p.join("d/x"), p.join("new/y")).unwrap();
    fs::remove_dir(p.join("d")).unwrap_or(());
    assert_eq!(fs::read(p.join("new/y")).unwrap(), b"1");
    fs::rename(p.join("new"), p.join("moved")).unwrap();
    assert_eq!(fs::read(p.join("moved/y")).unwrap(), b"1");
    fs::remove_file(p.join("moved/y")).unwrap();
    fs::remove_dir(p.join("moved")).unwrap();
    assert!(server.keys("bkt").is_empty(), "{:?}", server.keys("bkt"));
}

/// An editor-style save: write a temp file, fsync, rename over the original.
#[test]
fn editor_save_replaces_the_file() {
    let (server, m) = setup(&[("doc.txt", b"old text")]);
    let tmp = m.path().join(".doc.txt.swp");
    let mut f = fs::File::create(&tmp).unwrap();
    f.write_all(b"new text").unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs::rename(&tmp, m.path().join("doc.txt")).unwrap();
    assert_eq!(server.get("bkt", "doc.txt").unwrap().as_ref(), b"new text");
    assert!(server.get("bkt", ".doc.txt.swp").is_none());
}

/// `sed -i` (temp file + rename) edits a file in place.
#[test]
fn sed_in_place() {
    let (server, m) = setup(&[("conf", b"name=old\nport=1\n")]);
    run(Command::new("sed")
        .args(["-i", "s/old/new/"])
        .arg(m.path().join("conf")));
    assert_eq!(
        server.get("bkt", "conf").unwrap().as_ref(),
        b"name=new\nport=1\n"
    );
}

/// `cp -r` of a tree and back: every byte equal, the bucket holds exactly those keys.
#[test]
fn cp_tree_round_trip() {
    let (server, m) = setup(&[]);
    let src = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for i in 0..40 {
        let rel = format!("tree/d{}/f{i}.bin", i % 5);
        let data = pattern((i * 7919) % (300 * 1024) + i, i as u8);
        fs::create_dir_all(src.path().join(format!("tree/d{}", i % 5))).unwrap();
        fs::write(src.path().join(&rel), &data).unwrap();
        expected.push((rel, data));
    }
    run(Command::new("cp")
        .arg("-r")
        .arg(src.path().join("tree"))
        .arg(m.path()));
    let back = tempfile::tempdir().unwrap();
    run(Command::new("cp")
        .arg("-r")
        .arg(m.path().join("tree"))
        .arg(back.path()));
    let mut keys = server.keys("bkt");
    keys.retain(|k| !k.ends_with('/'));
    assert_eq!(keys.len(), expected.len());
    for (rel, data) in expected {
        assert!(fs::read(back.path().join(&rel)).unwrap() == data, "{rel}");
        assert!(
            server.get("bkt", &rel).unwrap().as_ref() == data.as_slice(),
            "{rel}"
        );
    }
}

/// `tar x` of an archive into the mount.
#[test]
fn tar_extract() {
    let (server, m) = setup(&[]);
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("pkg/src")).unwrap();
    fs::write(src.path().join("pkg/src/main.c"), b"int main(){}\n").unwrap();
    fs::write(src.path().join("pkg/README"), b"readme\n").unwrap();
    let archive = src.path().join("pkg.tar");
    run(Command::new("tar")
        .arg("cf")
        .arg(&archive)
        .arg("-C")
        .arg(src.path())
        .arg("pkg"));
    run(Command::new("tar")
        .arg("xf")
        .arg(&archive)
        .arg("-C")
        .arg(m.path()));
    assert_eq!(
        server.get("bkt", "pkg/src/main.c").unwrap().as_ref(),
        b"int main(){}\n"
    );
    assert_eq!(fs::read(m.path().join("pkg/README")).unwrap(), b"readme\n");
}
