//! Renames of files above the single-copy limit and of large directories, through a real
//! mount: a file larger than `--single-copy-limit` moves as a multipart copy
//! (UploadPartCopy) and arrives byte-exact with no upload left open; a failed multipart copy
//! leaves the source in place; a directory of 500 keys (one of them above the limit) moves
//! whole.
//!
//! The server refuses CopyObject above the same limit, as S3 does above 5 GiB, so a test
//! passes only if the mount chose the multipart copy itself.

mod support;

use std::fs;

use s3rolefs::sigv4::sha256_hex;
use support::{Fault, Mount, Op, TestServer};

const MIB: usize = 1024 * 1024;
/// The limit the tests lower S3's 5 GiB to.
const LIMIT: &str = "32M";
const LIMIT_BYTES: usize = 32 * MIB;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 16) as u8)
        .collect()
}

fn server() -> TestServer {
    let server = TestServer::start();
    server.create_bucket("bkt");
    server.set_single_copy_limit(LIMIT_BYTES);
    server
}

/// A 100 MiB file renamed above the limit moves as UploadPartCopy parts: content equal,
/// old key gone, no multipart upload left open, no CopyObject tried.
#[test]
fn file_above_limit_is_renamed_with_upload_part_copy() {
    let server = server();
    let data = pattern(100 * MIB, 7);
    server.put("bkt", "big.bin", data.clone());
    let m = Mount::start(&server, "bkt", &["--single-copy-limit", LIMIT]);
    server.reset_counters();

    fs::rename(m.path().join("big.bin"), m.path().join("renamed.bin")).unwrap();

    let counts = server.counts();
    assert_eq!(server.count(Op::UploadPartCopy), 4, "{counts:?}");
    assert_eq!(server.count(Op::CopyObject), 0, "{counts:?}");
    assert_eq!(server.count(Op::CompleteMultipartUpload), 1, "{counts:?}");
    assert_eq!(server.keys("bkt"), vec!["renamed.bin".to_string()]);
    let moved = server.get("bkt", "renamed.bin").unwrap();
    assert_eq!(sha256_hex(&moved), sha256_hex(&data), "content differs");
    assert_eq!(server.open_multipart_uploads("bkt"), 0);
    assert_eq!(
        fs::metadata(m.path().join("renamed.bin")).unwrap().len(),
        data.len() as u64
    );
    assert!(!m.path().join("big.bin").exists());
}

/// A file at or below the limit is still one CopyObject.
#[test]
fn file_below_limit_is_one_copy_object() {
    let server = server();
    server.put("bkt", "small.bin", pattern(LIMIT_BYTES, 1));
    let m = Mount::start(&server, "bkt", &["--single-copy-limit", LIMIT]);
    server.reset_counters();
    fs::rename(m.path().join("small.bin"), m.path().join("moved.bin")).unwrap();
    assert_eq!(server.count(Op::CopyObject), 1, "{:?}", server.counts());
    assert_eq!(server.count(Op::UploadPartCopy), 0);
    assert_eq!(server.keys("bkt"), vec!["moved.bin".to_string()]);
}

/// A multipart copy that keeps failing fails the rename, aborts its upload and leaves the
/// source untouched.
#[test]
fn failed_multipart_copy_keeps_the_source() {
    let server = server();
    let data = pattern(80 * MIB, 9);
    server.put("bkt", "big.bin", data.clone());
    let m = Mount::start(
        &server,
        "bkt",
        &[
            "--single-copy-limit",
            LIMIT,
            "--max-attempts",
            "2",
            "--retry-timeout",
            "0",
        ],
    );
    server.fail_next_op(Op::UploadPartCopy, 1000, Fault::InternalError);

    let err = fs::rename(m.path().join("big.bin"), m.path().join("renamed.bin")).unwrap_err();
    server.clear_faults();

    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(server.keys("bkt"), vec!["big.bin".to_string()]);
    assert_eq!(
        sha256_hex(&server.get("bkt", "big.bin").unwrap()),
        sha256_hex(&data)
    );
    assert_eq!(
        server.open_multipart_uploads("bkt"),
        0,
        "the failed copy was not aborted"
    );
    assert!(server.count(Op::AbortMultipartUpload) >= 1);
}

/// A directory of 500 keys, one of them above the limit, moves whole: every key under the
/// new name with its content, none left under the old one.
#[test]
fn directory_of_500_keys_is_renamed_whole() {
    let server = server();
    let big = pattern(40 * MIB, 3);
    let small: Vec<(String, Vec<u8>)> = (0..499)
        .map(|i| {
            (
                format!("{i:04}.txt"),
                format!("content of {i}").into_bytes(),
            )
        })
        .collect();
    server.put_many(
        "bkt",
        small
            .iter()
            .map(|(name, body)| (format!("dir/{name}"), body.clone())),
    );
    server.put("bkt", "dir/sub/big.bin", big.clone());
    let m = Mount::start(&server, "bkt", &["--single-copy-limit", LIMIT]);
    server.reset_counters();

    fs::rename(m.path().join("dir"), m.path().join("moved")).unwrap();

    let keys = server.keys("bkt");
    assert_eq!(keys.len(), 500, "keys after the rename: {}", keys.len());
    assert!(
        keys.iter().all(|k| k.starts_with("moved/")),
        "keys left behind: {:?}",
        keys.iter()
            .filter(|k| !k.starts_with("moved/"))
            .collect::<Vec<_>>()
    );
    for (name, body) in &small {
        assert_eq!(
            server
                .get("bkt", &format!("moved/{name}"))
                .unwrap()
                .as_ref(),
            &body[..],
            "{name}"
        );
    }
    let moved = server.get("bkt", "moved/sub/big.bin").unwrap();
    assert_eq!(sha256_hex(&moved), sha256_hex(&big));
    assert_eq!(server.count(Op::CopyObject), 499, "{:?}", server.counts());
    assert_eq!(server.count(Op::UploadPartCopy), 2, "{:?}", server.counts());
    assert_eq!(server.open_multipart_uploads("bkt"), 0);
    assert_eq!(fs::read_dir(m.path().join("moved")).unwrap().count(), 500);
    assert!(!m.path().join("dir").exists());
}
