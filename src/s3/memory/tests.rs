//! Listing semantics, ranges, conditions, multipart and failure injection of `MemoryClient`.

use super::*;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map(|rt| rt.block_on(f))
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

fn bucket(keys: &[&str], page_size: usize) -> MemoryClient {
    let c = MemoryClient::new().with_page_size(page_size);
    for k in keys {
        c.insert(k, Bytes::from_static(b"x"));
    }
    c
}

fn names(l: &super::super::Listing) -> (Vec<&str>, Vec<&str>) {
    (
        l.objects.iter().map(|o| o.key.as_str()).collect(),
        l.common_prefixes.iter().map(String::as_str).collect(),
    )
}

const KEYS: [&str; 8] = ["a/1", "a/2", "a/b/3", "a/c/4", "a/c/5", "a0", "b", "a/c"];

/// With a delimiter, keys below the next `/` fold into one common prefix, whatever
/// the page size: every page boundary gives the same concatenated listing.
#[test]
fn delimiter_listing_is_the_same_for_every_page_size() {
    for page_size in 1..=8 {
        let c = bucket(&KEYS, page_size);
        let params = ListObjectsParams {
            prefix: "a/".into(),
            delimiter: Some("/".into()),
            ..Default::default()
        };
        let all = block_on(c.list_objects(&params)).unwrap();
        assert_eq!(
            names(&all),
            (vec!["a/1", "a/2", "a/c"], vec!["a/b/", "a/c/"]),
            "page size {page_size}"
        );
    }
}

/// A page holds at most `page_size` entries and carries a token until the end.
#[test]
fn pages_are_bounded_and_chained_by_tokens() {
    let c = bucket(&KEYS, 3);
    let params = ListObjectsParams::default();
    let first = block_on(c.list_objects_page(&params, None)).unwrap();
    assert_eq!(first.objects.len(), 3);
    let token = first.next_continuation_token.clone().unwrap();
    let second = block_on(c.list_objects_page(&params, Some(&token))).unwrap();
    assert_eq!(second.objects[0].key, "a/c");
    let all = block_on(c.list_objects(&params)).unwrap();
    assert_eq!(all.objects.len(), KEYS.len());
    assert_eq!(c.counters().list_objects, 2 + 3);
}

/// start-after skips keys, max-keys stops the whole listing early.
#[test]
fn start_after_and_max_keys() {
    let c = bucket(&KEYS, 2);
    let params = ListObjectsParams {
        start_after: Some("a/c/4".into()),
        ..Default::default()
    };
    let all = block_on(c.list_objects(&params)).unwrap();
    assert_eq!(names(&all).0, vec!["a/c/5", "a0", "b"]);
    let params = ListObjectsParams {
        max_keys: Some(1),
        ..Default::default()
    };
    let one = block_on(c.list_objects(&params)).unwrap();
    assert_eq!(names(&one).0, vec!["a/1"]);
}

#[test]
fn ranges_if_match_and_missing_keys() {
    let c = MemoryClient::new();
    let etag = c.insert("k", Bytes::from_static(b"0123456789"));
    let get = |range, if_match| {
        block_on(c.get_object(GetObjectParams {
            key: "k".into(),
            range,
            if_match,
        }))
    };
    let out = get(Some(2..5), Some(etag.clone())).unwrap();
    assert_eq!((&out.body.to_bytes()[..], out.meta.size), (&b"234"[..], 10));
    assert_eq!(&get(Some(8..100), None).unwrap().body.to_bytes()[..], b"89");
    assert!(matches!(
        get(Some(10..12), None),
        Err(S3Error::InvalidRange)
    ));
    assert!(matches!(
        get(None, Some("\"other\"".into())),
        Err(S3Error::PreconditionFailed { .. })
    ));
    assert!(matches!(
        block_on(c.head_object("nope")),
        Err(S3Error::NoSuchKey { .. })
    ));
    assert!(matches!(
        block_on(c.head_object("a/../k")),
        Err(S3Error::InvalidKey { .. })
    ));
}

/// Parts must be uploaded, in order, and big enough; the ETag has S3's `-N` form.
#[test]
fn multipart_upload_round_trip() {
    let c = MemoryClient::new().with_min_part_size(2);
    let id = block_on(c.create_multipart_upload("big", &Default::default())).unwrap();
    let e1 = block_on(c.upload_part("big", &id, 1, Bytes::from_static(b"ab"))).unwrap();
    let e2 = block_on(c.upload_part("big", &id, 2, Bytes::from_static(b"c"))).unwrap();
    assert_eq!((e1.part_number, e2.part_number), (1, 2));
    let parts = [e2, e1];
    assert!(block_on(c.complete_multipart_upload("big", &id, &parts)).is_err());
    let parts = [parts[1].clone(), parts[0].clone()];
    let etag = block_on(c.complete_multipart_upload("big", &id, &parts)).unwrap();
    assert!(etag.ends_with("-2\""), "{etag}");
    assert_eq!(c.get("big").unwrap(), Bytes::from_static(b"abc"));
    assert!(c.pending_uploads().is_empty());
}

/// Injected failures hit exactly the next `n` calls of that operation, and count.
#[test]
fn fail_next_injects_then_recovers() {
    let c = MemoryClient::new();
    c.insert("k", Bytes::from_static(b"v"));
    c.fail_next(Op::HeadObject, 2, || S3Error::Service {
        status: 503,
        code: "SlowDown".into(),
        message: "slow down".into(),
    });
    assert!(block_on(c.head_object("k")).unwrap_err().is_retryable());
    assert!(block_on(c.head_object("k")).is_err());
    assert!(block_on(c.head_object("k")).is_ok());
    assert!(block_on(c.get_object(GetObjectParams {
        key: "k".into(),
        ..Default::default()
    }))
    .is_ok());
    let n = c.counters();
    assert_eq!((n.head_object, n.get_object, n.put_object), (3, 1, 0));
}
