//! The write engine against the in-memory bucket: which S3 calls each write pattern makes,
//! what the object holds afterwards, and what survives a failure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::s3::memory::{MemoryClient, Op};
use crate::s3::{
    CompletedPart, GetObjectOutput, GetObjectParams, ListObjectsParams, ListPage, Metadata,
    ObjectClient, ObjectMeta, PutObjectParams, S3Error,
};

const PART: u64 = 64 * 1024;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn config(dir: &tempfile::TempDir, concurrency: usize) -> Arc<WriterConfig> {
    Arc::new(WriterConfig {
        part_size: PART,
        concurrency,
        journal: super::staging::tests::journal(dir),
        budget: MemoryBudget::new(1 << 30),
        write_back: false,
        incremental_upload: false,
        local_only: false,
    })
}

/// A configuration whose journal directory is gone (removed after it was opened): the
/// disk takes nothing.
fn config_without_disk(dir: &tempfile::TempDir) -> Arc<WriterConfig> {
    let gone = dir.path().join("gone");
    let journal = Journal::new(
        crate::private_dir::PrivateDir::create(&gone).unwrap(),
        journal::BucketId {
            endpoint: None,
            bucket: "test".into(),
        },
    );
    std::fs::remove_dir(&gone).unwrap();
    Arc::new(WriterConfig {
        part_size: PART,
        concurrency: 4,
        journal,
        budget: MemoryBudget::new(1 << 30),
        write_back: false,
        incremental_upload: false,
        local_only: false,
    })
}

fn bucket() -> Arc<MemoryClient> {
    Arc::new(MemoryClient::new().with_min_part_size(0))
}

fn internal_error() -> S3Error {
    S3Error::Service {
        status: 500,
        code: "InternalError".into(),
        message: "injected".into(),
    }
}

/// Writes `bytes` from `offset` in kernel-sized 16 KiB requests.
async fn write_all<C: ObjectClient>(w: &OpenWriter<C>, offset: u64, bytes: &[u8]) {
    for (i, chunk) in bytes.chunks(16 * 1024).enumerate() {
        let at = offset + (i * 16 * 1024) as u64;
        assert_eq!(
            w.write(at, Bytes::copy_from_slice(chunk)).await.unwrap(),
            chunk.len()
        );
    }
}

/// The journal's entries' files (spares, emptied files kept for reuse, are not).
fn staged_files(dir: &tempfile::TempDir) -> usize {
    std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| !journal::is_spare(&e.as_ref().unwrap().file_name().to_string_lossy()))
        .count()
}

/// A file smaller than one part goes up as one PutObject on flush.
#[tokio::test]
async fn small_file_goes_up_as_one_put_object() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "small".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 4),
    );
    write_all(&w, 0, b"hello world").await;
    assert_eq!(s3.get("small"), None, "nothing is visible before flush");
    let meta = w.flush().await.unwrap().unwrap();
    assert_eq!(meta.size, 11);
    assert_eq!(s3.get("small").unwrap(), "hello world");
    let c = s3.counters();
    assert_eq!((c.put_object, c.create_multipart_upload), (1, 0));
    assert!(!w.is_dirty());
}

/// A created file flushed without any write becomes an empty object.
#[tokio::test]
async fn empty_new_file_becomes_an_empty_object() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "empty".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 4),
    );
    assert!(w.is_dirty());
    assert_eq!(w.flush().await.unwrap().unwrap().size, 0);
    assert_eq!(s3.get("empty").unwrap().len(), 0);
    assert_eq!(
        w.flush().await.unwrap(),
        None,
        "a second flush has nothing to do"
    );
}

/// 3.5 parts written sequentially stream as four parts while written, completed on flush.
#[tokio::test]
async fn sequential_file_streams_as_multipart() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "big".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 4),
    );
    let body = data((PART * 7 / 2) as usize);
    write_all(&w, 0, &body).await;
    assert!(w.is_streaming().await);
    assert_eq!(w.size(), body.len() as u64);
    // The upload started while writing (its parts run in the background; how many have
    // reached S3 by now depends on the scheduler, so only the start is asserted).
    assert_eq!(
        s3.counters().create_multipart_upload,
        1,
        "the stream starts before flush"
    );
    let meta = w.flush().await.unwrap().unwrap();
    assert!(meta.etag.ends_with("-4\""), "{}", meta.etag);
    assert_eq!(s3.get("big").unwrap(), body);
    let c = s3.counters();
    assert_eq!(
        (
            c.create_multipart_upload,
            c.upload_part,
            c.complete_multipart_upload,
            c.put_object
        ),
        (1, 4, 1, 0)
    );
    assert!(s3.pending_uploads().is_empty());
    drop(w);
    assert_eq!(staged_files(&dir), 0, "the clean mirror is removed");
}

/// Reads see what was written, streaming or staged.
#[tokio::test]
async fn reads_see_the_writes() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "rw".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 4),
    );
    let body = data((PART + 100) as usize);
    write_all(&w, 0, &body).await;
    assert_eq!(
        &w.read(PART - 10, 50).await.unwrap()[..],
        &body[(PART - 10) as usize..(PART + 40) as usize]
    );
    assert_eq!(w.read(PART + 90, 50).await.unwrap().len(), 10);
    assert!(w.read(PART + 100, 50).await.unwrap().is_empty());
}

/// An UploadPart wrapper that takes its time and records the most parts in flight at once.
struct SlowParts {
    inner: MemoryClient,
    now: AtomicUsize,
    most: AtomicUsize,
}

impl ObjectClient for SlowParts {
    async fn head_bucket(&self) -> Result<(), S3Error> {
        self.inner.head_bucket().await
    }
    async fn head_object(&self, key: &str) -> Result<ObjectMeta, S3Error> {
        self.inner.head_object(key).await
    }
    async fn get_object(&self, params: GetObjectParams) -> Result<GetObjectOutput, S3Error> {
        self.inner.get_object(params).await
    }
    async fn list_objects_page(
        &self,
        params: &ListObjectsParams,
        token: Option<&str>,
    ) -> Result<ListPage, S3Error> {
        self.inner.list_objects_page(params, token).await
    }
    async fn put_object(&self, params: PutObjectParams) -> Result<String, S3Error> {
        self.inner.put_object(params).await
    }
    async fn delete_object(&self, key: &str) -> Result<(), S3Error> {
        self.inner.delete_object(key).await
    }
    async fn delete_objects(&self, keys: &[String]) -> Result<Vec<(String, String)>, S3Error> {
        self.inner.delete_objects(keys).await
    }
    async fn copy_object(
        &self,
        from: &str,
        to: &str,
        replace: Option<&Metadata>,
    ) -> Result<String, S3Error> {
        self.inner.copy_object(from, to, replace).await
    }
    async fn create_multipart_upload(
        &self,
        key: &str,
        metadata: &Metadata,
    ) -> Result<String, S3Error> {
        self.inner.create_multipart_upload(key, metadata).await
    }
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<CompletedPart, S3Error> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        // Long enough that parts overlap even on a loaded machine.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        self.inner
            .upload_part(key, upload_id, part_number, body)
            .await
    }
    async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<String, S3Error> {
        self.inner
            .complete_multipart_upload(key, upload_id, parts)
            .await
    }
    async fn abort_multipart_upload(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        self.inner.abort_multipart_upload(key, upload_id).await
    }
    async fn upload_part_copy(
        &self,
        params: crate::s3::UploadPartCopyParams,
    ) -> Result<CompletedPart, S3Error> {
        self.inner.upload_part_copy(params).await
    }
    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<CompletedPart>, S3Error> {
        self.inner.list_parts(key, upload_id).await
    }
    async fn list_multipart_uploads(
        &self,
        prefix: &str,
    ) -> Result<Vec<crate::s3::PendingUpload>, S3Error> {
        self.inner.list_multipart_uploads(prefix).await
    }
}

/// Never more than `concurrency` parts upload at once, and that many do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_in_flight_never_exceed_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = Arc::new(SlowParts {
        inner: MemoryClient::new().with_min_part_size(0),
        now: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
    });
    let w = OpenWriter::new(
        s3.clone(),
        "slow".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 3),
    );
    let body = data((PART * 10) as usize);
    write_all(&w, 0, &body).await;
    w.flush().await.unwrap();
    assert_eq!(s3.most.load(Ordering::SeqCst), 3);
    assert_eq!(s3.inner.get("slow").unwrap(), body);
}

/// A failing part fails the flush and keeps every byte local, under a complete journal
/// record; the multipart upload is kept, and the next flush resumes it: the parts S3 holds
/// are not sent again.
#[tokio::test]
async fn a_failed_part_keeps_the_data_and_the_upload_to_resume() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "doomed".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 1),
    );
    let body = data((PART * 7 / 2) as usize);
    write_all(&w, 0, &body[..(PART * 2) as usize]).await;
    while s3.counters().upload_part < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    s3.fail_next(Op::UploadPart, 1000, internal_error);
    write_all(&w, PART * 2, &body[(PART * 2) as usize..]).await;
    let err = w.flush().await.unwrap_err();
    assert!(matches!(err, UploadError::S3 { .. }), "{err}");
    let path = err.staging_path().unwrap().to_path_buf();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), body);
    let record: journal::Record =
        journal::last_record(&std::fs::read(path.with_extension("json")).unwrap()).unwrap();
    assert!(record.complete, "close was called on this content");
    assert_eq!(
        (record.key.as_str(), record.size),
        ("doomed", body.len() as u64)
    );
    assert_eq!(s3.pending_uploads().len(), 1, "kept to resume");
    assert_eq!(s3.counters().abort_multipart_upload, 0);
    assert_eq!(s3.get("doomed"), None, "no partial object");
    assert!(w.is_dirty());

    s3.fail_next(Op::UploadPart, 0, internal_error);
    let sent_before = s3.counters().upload_part;
    w.flush().await.unwrap().unwrap();
    assert_eq!(s3.get("doomed").unwrap(), body);
    assert_eq!(s3.counters().list_parts, 1);
    assert_eq!(
        s3.counters().upload_part - sent_before,
        2,
        "the two parts S3 held were not sent again"
    );
    assert!(s3.pending_uploads().is_empty());
    assert!(
        !path.with_extension("json").exists(),
        "the record goes once S3 has the file"
    );
}

/// A failed completion leaves nothing visible in S3; the next flush resumes the upload and
/// only completes it (every part is there already).
#[tokio::test]
async fn flush_after_a_failed_complete_only_completes() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    s3.fail_next(Op::CompleteMultipartUpload, 1, internal_error);
    let w = OpenWriter::new(
        s3.clone(),
        "retry".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 2),
    );
    let body = data((PART * 5 / 2) as usize);
    write_all(&w, 0, &body).await;
    assert!(w.flush().await.is_err());
    assert_eq!(s3.get("retry"), None);
    let parts = s3.counters().upload_part;
    w.flush().await.unwrap().unwrap();
    assert_eq!(s3.get("retry").unwrap(), body);
    assert_eq!(s3.counters().upload_part, parts, "no part sent twice");
    assert!(s3.pending_uploads().is_empty());
    assert!(!w.is_dirty());
}

/// A Complete that S3 carried out but whose answer was lost (the retry finds no upload)
/// is recognised: the object is ours, the flush succeeds, nothing is uploaded again.
#[tokio::test]
async fn a_complete_whose_answer_was_lost_succeeds() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "lost".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 2),
    );
    let body = data((PART * 5 / 2) as usize);
    write_all(&w, 0, &body).await;
    s3.lose_answer_next(Op::CompleteMultipartUpload, 1, || S3Error::Service {
        status: 404,
        code: "NoSuchUpload".into(),
        message: "the retry found the upload completed".into(),
    });
    let meta = w.flush().await.unwrap().unwrap();
    assert_eq!(s3.get("lost").unwrap(), body);
    assert_eq!(meta.etag, s3.head_object("lost").await.unwrap().etag);
    let c = s3.counters();
    assert_eq!(
        (c.complete_multipart_upload, c.create_multipart_upload),
        (1, 1)
    );
    assert!(!w.is_dirty());
}

/// A stream that seeks back part way switches to staging without losing a byte.
#[tokio::test]
async fn sequential_then_seek_keeps_every_byte() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "seek".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 2),
    );
    let mut expect = data((PART * 5 / 2) as usize);
    write_all(&w, 0, &expect).await;
    w.write(10, Bytes::from_static(b"PATCHED")).await.unwrap();
    expect[10..17].copy_from_slice(b"PATCHED");
    assert!(!w.is_streaming().await);
    let tail = data(1000);
    write_all(&w, expect.len() as u64, &tail).await;
    expect.extend_from_slice(&tail);
    w.flush().await.unwrap();
    assert_eq!(s3.get("seek").unwrap(), expect);
    assert!(
        s3.pending_uploads().is_empty(),
        "the streaming upload was aborted"
    );
    assert_eq!(s3.counters().abort_multipart_upload, 1);
}

/// Writes after a completed flush are uploaded by the next flush, whole.
#[tokio::test]
async fn writes_after_a_flush_upload_the_whole_file_again() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "twice".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 2),
    );
    let first = data((PART * 3 / 2) as usize);
    write_all(&w, 0, &first).await;
    w.flush().await.unwrap();
    assert_eq!(s3.get("twice").unwrap(), first);
    let second = b"and more".to_vec();
    write_all(&w, first.len() as u64, &second).await;
    w.flush().await.unwrap();
    assert_eq!(s3.get("twice").unwrap(), [first, second].concat());
    assert!(s3.pending_uploads().is_empty());
}

/// A random write into an existing object fetches only the chunk it touches (pinned to the
/// object's ETag); the upload copies the untouched parts inside S3.
#[tokio::test]
async fn random_write_into_existing_object_keeps_the_rest() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let mut expect = data((PART * 3) as usize);
    let etag = s3.insert("obj", expect.clone());
    let origin = Origin::Existing {
        etag,
        size: expect.len() as u64,
    };
    let w = OpenWriter::new(
        s3.clone(),
        "obj".into(),
        origin,
        Metadata::default(),
        config(&dir, 2),
    );
    assert!(!w.is_dirty());
    w.write(PART + 5, Bytes::from_static(b"xyz")).await.unwrap();
    expect[(PART + 5) as usize..(PART + 8) as usize].copy_from_slice(b"xyz");
    assert_eq!(
        &w.read(PART, 10).await.unwrap()[..],
        &expect[PART as usize..(PART + 10) as usize]
    );
    w.flush().await.unwrap();
    assert_eq!(s3.get("obj").unwrap(), expect);
    let c = s3.counters();
    assert_eq!(c.get_object, 1, "one ranged GET, for the chunk written");
    assert_eq!((c.upload_part, c.upload_part_copy), (1, 2));
}

/// Appending a line to a large object moves about one part each way: the last chunk is
/// fetched, every other part is copied inside S3.
#[tokio::test]
async fn an_append_to_a_large_object_moves_one_part() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let mut expect = data((PART * 20 + 100) as usize);
    let etag = s3.insert("big.log", expect.clone());
    let origin = Origin::Existing {
        etag,
        size: expect.len() as u64,
    };
    let w = OpenWriter::new(
        s3.clone(),
        "big.log".into(),
        origin,
        Metadata::default(),
        config(&dir, 4),
    );
    w.write(w.size(), Bytes::from_static(b"one more line\n"))
        .await
        .unwrap();
    expect.extend_from_slice(b"one more line\n");
    w.flush().await.unwrap();
    assert_eq!(s3.get("big.log").unwrap(), expect);
    let c = s3.counters();
    assert_eq!(c.get_object, 1);
    assert_eq!((c.upload_part, c.upload_part_copy), (1, 20));
    let local = std::fs::metadata(w.staging_path().await.unwrap()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert!(
        local.blocks() * 512 < 2 * PART,
        "the local copy is sparse: {} bytes on disk",
        local.blocks() * 512
    );
}

/// A write or truncate that would make a file larger than S3's 5 TiB limit is refused at
/// once (EFBIG), before anything is sent.
#[tokio::test]
async fn beyond_five_tib_is_refused_at_the_write() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "huge".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 2),
    );
    let err = w.truncate(6 << 40).await.unwrap_err();
    assert!(matches!(err, UploadError::TooLarge { .. }), "{err}");
    let err = w
        .write(S3_MAX_OBJECT_SIZE, Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, UploadError::TooLarge { .. }), "{err}");
    assert_eq!(w.size(), 0);
}

/// Appending to an existing object keeps its content and adds the new bytes.
#[tokio::test]
async fn append_to_existing_object() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let etag = s3.insert("log", "line 1\n");
    let origin = Origin::Existing { etag, size: 7 };
    let w = OpenWriter::new(
        s3.clone(),
        "log".into(),
        origin,
        Metadata::default(),
        config(&dir, 2),
    );
    w.write(w.size(), Bytes::from_static(b"line 2\n"))
        .await
        .unwrap();
    assert_eq!(w.size(), 14);
    w.flush().await.unwrap();
    assert_eq!(s3.get("log").unwrap(), "line 1\nline 2\n");
}

/// Truncating an existing object fetches only the bytes kept; growing again adds zeros.
#[tokio::test]
async fn truncate_existing_object_fetches_only_kept_bytes() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let etag = s3.insert("t", data(5000));
    let origin = Origin::Existing { etag, size: 5000 };
    let w = OpenWriter::new(
        s3.clone(),
        "t".into(),
        origin,
        Metadata::default(),
        config(&dir, 2),
    );
    w.truncate(10).await.unwrap();
    w.truncate(20).await.unwrap();
    assert_eq!(w.size(), 20);
    w.flush().await.unwrap();
    let mut expect = data(10);
    expect.resize(20, 0);
    assert_eq!(s3.get("t").unwrap(), expect);
    assert_eq!(s3.counters().get_object, 1);
}

/// Truncating to zero needs nothing from the object at all.
#[tokio::test]
async fn truncate_to_zero_fetches_nothing() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let etag = s3.insert("z", data(5000));
    let w = OpenWriter::new(
        s3.clone(),
        "z".into(),
        Origin::Existing { etag, size: 5000 },
        Metadata::default(),
        config(&dir, 2),
    );
    w.truncate(0).await.unwrap();
    w.write(0, Bytes::from_static(b"new")).await.unwrap();
    w.flush().await.unwrap();
    assert_eq!(s3.get("z").unwrap(), "new");
    assert_eq!(s3.counters().get_object, 0);
}

/// An existing file opened but not changed uploads nothing.
#[tokio::test]
async fn unchanged_existing_file_uploads_nothing() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let etag = s3.insert("same", "abc");
    let origin = Origin::Existing { etag, size: 3 };
    let w = OpenWriter::new(
        s3.clone(),
        "same".into(),
        origin,
        Metadata::default(),
        config(&dir, 2),
    );
    assert_eq!(w.flush().await.unwrap(), None);
    assert_eq!(s3.counters(), Default::default());
}

/// An object replaced by another client since open fails the edit instead of mixing versions.
#[tokio::test]
async fn object_changed_since_open_fails_the_fill() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let etag = s3.insert("moved", "old content");
    s3.insert("moved", "new content");
    let origin = Origin::Existing { etag, size: 11 };
    let w = OpenWriter::new(
        s3.clone(),
        "moved".into(),
        origin,
        Metadata::default(),
        config(&dir, 2),
    );
    let err = w.write(0, Bytes::from_static(b"x")).await.unwrap_err();
    assert!(
        matches!(err.s3_error(), Some(S3Error::PreconditionFailed { .. })),
        "{err}"
    );
    assert_eq!(s3.get("moved").unwrap(), "new content");
}

/// Abandoning a streaming writer aborts its multipart upload and keeps its data locally,
/// under a complete journal record (for the background upload).
#[tokio::test]
async fn abandon_aborts_the_upload_and_keeps_the_data() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "gone".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 2),
    );
    let body = data((PART * 2) as usize);
    write_all(&w, 0, &body).await;
    assert_eq!(s3.pending_uploads().len(), 1);
    w.abandon().await;
    assert!(s3.pending_uploads().is_empty());
    let path = w.staging_path().await.unwrap();
    drop(w);
    assert_eq!(std::fs::read(&path).unwrap(), body);
    let record: journal::Record =
        journal::last_record(&std::fs::read(path.with_extension("json")).unwrap()).unwrap();
    assert!(record.complete);
}

/// The part size schedule starts at the configured size, never exceeds 5 GiB, and lets
/// 10,000 parts hold at least 5 TiB even from S3's 5 MiB minimum.
#[test]
fn part_size_schedule_reaches_five_tib_in_ten_thousand_parts() {
    for base in [5 << 20, DEFAULT_PART_SIZE, 64 << 20] {
        assert_eq!(part_size(base, 1), base);
        let sizes: Vec<u64> = (1..=S3_MAX_PARTS).map(|n| part_size(base, n)).collect();
        assert!(sizes.windows(2).all(|w| w[0] <= w[1]));
        assert!(sizes.iter().all(|&s| s <= S3_MAX_PART_SIZE));
        let total: u64 = sizes.iter().sum();
        assert!(total >= S3_MAX_OBJECT_SIZE, "base {base}: {total}");
    }
    assert_eq!(
        part_size(DEFAULT_PART_SIZE, PARTS_PER_DOUBLING + 1),
        2 * DEFAULT_PART_SIZE
    );
}

/// A writer dropped mid-stream without flush still aborts its multipart upload.
#[tokio::test]
async fn dropped_writer_aborts_its_upload() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "dropped".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 2),
    );
    write_all(&w, 0, &data((PART * 2) as usize)).await;
    assert_eq!(s3.pending_uploads().len(), 1);
    drop(w);
    for _ in 0..100 {
        if s3.pending_uploads().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(s3.pending_uploads().is_empty());
    assert_eq!(s3.counters().abort_multipart_upload, 1);
}

/// A flush before any write (a duplicate descriptor closed, as `cmd > file` does) uploads
/// the empty file and keeps streaming: the data that follows goes up as it is written.
#[tokio::test]
async fn an_empty_flush_keeps_the_writer_streaming() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = Arc::new(MemoryClient::new().with_min_part_size(0));
    let w = OpenWriter::new(
        s3.clone(),
        "dup".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 2),
    );
    w.flush().await.unwrap();
    assert_eq!(s3.get("dup").unwrap().len(), 0);
    assert!(w.is_streaming().await);
    let body = data((PART * 3) as usize);
    write_all(&w, 0, &body).await;
    assert!(w.is_streaming().await);
    // The multipart upload started while writing (its first part is pushed inline).
    assert_eq!(s3.counters().create_multipart_upload, 1);
    w.flush().await.unwrap();
    assert_eq!(s3.get("dup").unwrap(), body);
}

/// A file smaller than a part goes up from memory: no staging file is ever created.
#[tokio::test]
async fn small_file_never_touches_the_disk() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "s".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 4),
    );
    write_all(&w, 0, &data((PART / 2) as usize)).await;
    assert_eq!(staged_files(&dir), 0, "nothing local while writing");
    w.flush().await.unwrap();
    assert_eq!(staged_files(&dir), 0, "nothing local after the upload");
}

/// While streaming, every full part is in the mirror; only the part being filled is not,
/// and a read of it puts it there (the file keeps streaming).
#[tokio::test]
async fn the_mirror_holds_every_sent_part() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "m".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 4),
    );
    let body = data((PART * 5 / 2) as usize);
    write_all(&w, 0, &body).await;
    let path = w.staging_path().await.unwrap();
    let read_back = w.read(0, body.len() as u32).await.unwrap();
    assert_eq!(&read_back[..], &body[..]);
    assert!(w.is_streaming().await, "a read does not end the stream");
    assert_eq!(std::fs::read(&path).unwrap(), body);
    w.flush().await.unwrap();
    assert_eq!(s3.get("m").unwrap(), body);
}

/// A journal directory that cannot hold the mirror (here: removed) does not stop a stream:
/// the mirror is given up and the file streams on to a whole object. Only what needed the
/// mirror is refused, with the reason: a write, read or truncate before the part being
/// filled; reads inside that part still work.
#[tokio::test]
async fn a_stream_goes_on_without_a_mirror_the_disk_cannot_hold() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let cfg = config_without_disk(&dir);
    let w = OpenWriter::new(
        s3.clone(),
        "d".into(),
        Origin::New,
        Metadata::default(),
        cfg,
    );
    let body = data((PART * 5 / 2) as usize);
    write_all(&w, 0, &body).await;
    assert!(w.is_streaming().await);
    let refused = w.write(10, Bytes::from_static(b"x")).await.unwrap_err();
    assert!(matches!(refused, UploadError::NotKept { sent, .. } if sent == 2 * PART));
    assert!(
        refused.to_string().contains("gone"),
        "names the cause: {refused}"
    );
    assert!(
        w.read(0, 10).await.is_err(),
        "sent bytes cannot be read back"
    );
    assert!(w.truncate(PART).await.is_err());
    let tail = w.read(2 * PART + 5, 10).await.unwrap();
    assert_eq!(
        &tail[..],
        &body[(2 * PART + 5) as usize..(2 * PART + 15) as usize]
    );
    write_all(&w, body.len() as u64, b"end").await;
    w.flush().await.unwrap();
    assert_eq!(s3.get("d").unwrap(), [&body[..], b"end"].concat());
    assert!(
        !dir.path().join("gone").exists(),
        "nothing was written locally"
    );
}

/// A disk slower than the upload does not hold the stream to its pace for long: once part
/// after part finds the mirror still busy with the earlier ones, it is given up and the
/// file streams on; a write back into it then says why it cannot be done.
#[tokio::test]
async fn a_mirror_slower_than_the_upload_is_given_up() {
    use super::staging::tests::slow_disk;
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    // Each part must find the disk still busy (a part filled in under the delay); 100 ms
    // keeps that true when both cores are busy with the rest of the suite (20 ms did not,
    // about one full run in three).
    slow_disk::slow_down(dir.path(), Duration::from_millis(100));
    let w = OpenWriter::new(
        s3.clone(),
        "slow".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 4),
    );
    let body = data((PART * 48) as usize);
    write_all(&w, 0, &body).await;
    let refused = w.write(0, Bytes::from_static(b"x")).await.unwrap_err();
    assert!(refused.to_string().contains("slower"), "{refused}");
    w.flush().await.unwrap();
    assert_eq!(s3.get("slow").unwrap(), body);
}

/// A disk that keeps up, if only just, keeps its mirror: a part that finds it busy waits.
#[tokio::test]
async fn a_mirror_that_keeps_up_is_kept() {
    use super::staging::tests::slow_disk;
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    slow_disk::slow_down(dir.path(), Duration::from_millis(5));
    let w = OpenWriter::new(
        s3.clone(),
        "kept".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 4),
    );
    let mut expect = data((PART * 8) as usize);
    for chunk in expect.chunks(PART as usize) {
        let at = w.size();
        w.write(at, Bytes::copy_from_slice(chunk)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.write(10, Bytes::from_static(b"PATCH")).await.unwrap();
    expect[10..15].copy_from_slice(b"PATCH");
    w.flush().await.unwrap();
    assert_eq!(s3.get("kept").unwrap(), expect);
}

/// Without a mirror, an upload that fails cannot keep the data: flush says so (the cause
/// and that the bytes were not kept), and the multipart upload is not left open.
#[tokio::test]
async fn a_failed_upload_without_a_mirror_says_the_data_is_lost() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "lost".into(),
        Origin::New,
        Metadata::default(),
        config_without_disk(&dir),
    );
    write_all(&w, 0, &data((PART * 3 / 2) as usize)).await;
    s3.fail_next(Op::CompleteMultipartUpload, 1, internal_error);
    let err = w.flush().await.unwrap_err();
    assert!(matches!(err, UploadError::NotKept { .. }), "{err}");
    assert!(w.is_dirty());
    assert!(s3.get("lost").is_none(), "no partial object");
    assert!(s3.pending_uploads().is_empty(), "the upload was aborted");
    assert!(w
        .write(w.size(), Bytes::from_static(b"more"))
        .await
        .is_err());
}

/// Writes taken at once (`write_now`, the request loop's path) are the writes `write` would
/// have made: they stop short of filling a part, take only the end of a streaming file, and
/// the object holds every byte in order whichever path each write took.
#[tokio::test]
async fn writes_taken_at_once_stream_like_any_other() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "now".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 2),
    );
    let body = data((PART * 5 / 2) as usize);
    let (mut at, mut taken_now) = (0, 0);
    for chunk in body.chunks(16 * 1024) {
        match w.write_now(at as u64, chunk) {
            Some(n) => {
                assert_eq!(n, chunk.len());
                taken_now += 1;
            }
            None => {
                let n = w.write(at as u64, Bytes::copy_from_slice(chunk)).await;
                assert_eq!(n.unwrap(), chunk.len());
            }
        }
        at += chunk.len();
    }
    assert_eq!(
        taken_now, 8,
        "three of each four 16 KiB writes, none that fills a part"
    );
    assert_eq!(w.write_now(100, b"x"), None, "only at the end");
    assert_eq!(w.size(), body.len() as u64);
    w.flush().await.unwrap();
    assert_eq!(s3.get("now").unwrap(), body);
    assert_eq!(
        w.write_now(body.len() as u64, b"x"),
        None,
        "not once staged"
    );
}

/// A write inside the part being filled (a header patched while the file is small) changes
/// it in memory: the file keeps streaming and never touches the disk.
#[tokio::test]
async fn a_write_inside_the_part_being_filled_keeps_streaming() {
    let (dir, s3) = (tempfile::tempdir().unwrap(), bucket());
    let w = OpenWriter::new(
        s3.clone(),
        "hdr".into(),
        Origin::New,
        Metadata::default(),
        config(&dir, 2),
    );
    let mut expect = data((PART + PART / 2) as usize);
    write_all(&w, 0, &expect).await;
    let inside = PART + 10;
    w.write(inside, Bytes::from_static(b"SIZE")).await.unwrap();
    expect[inside as usize..inside as usize + 4].copy_from_slice(b"SIZE");
    assert!(w.is_streaming().await, "patched in memory");
    let read = w.read(inside, 4).await.unwrap();
    assert_eq!(&read[..], b"SIZE", "reads see the patch");
    w.flush().await.unwrap();
    assert_eq!(s3.get("hdr").unwrap(), expect);
    assert_eq!(
        s3.counters().abort_multipart_upload,
        0,
        "no switch to staging"
    );
}

/// A bucket that takes appends (a directory bucket), and a configuration with
/// `--incremental-upload`.
fn appending(dir: &tempfile::TempDir) -> (Arc<MemoryClient>, Arc<WriterConfig>) {
    let s3 = Arc::new(MemoryClient::new().with_min_part_size(0).with_appends());
    let mut config = (*config(dir, 2)).clone();
    config.incremental_upload = true;
    (s3, Arc::new(config))
}

/// The memory bucket's ETags of appended objects say so (`…-append`).
fn was_appended(etag: &str) -> bool {
    etag.ends_with("-append\"")
}

/// `body` stored at `key`, and a writer opened on it.
fn existing(
    s3: &Arc<MemoryClient>,
    key: &str,
    body: &'static str,
    config: Arc<WriterConfig>,
) -> OpenWriter<MemoryClient> {
    let etag = s3.insert(key, body);
    OpenWriter::new(
        s3.clone(),
        key.into(),
        Origin::Existing {
            etag,
            size: body.len() as u64,
        },
        Metadata::default(),
        config,
    )
}

/// With `--incremental-upload`, bytes added at the end go up alone, appended in S3: one
/// PutObject, nothing copied or rewritten; a second append in the same open file too.
#[tokio::test]
async fn incremental_append_sends_only_the_new_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (s3, config) = appending(&dir);
    let w = existing(&s3, "log", "line 1\n", config);
    w.write(w.size(), Bytes::from_static(b"line 2\n"))
        .await
        .unwrap();
    let meta = w.flush().await.unwrap().unwrap();
    assert!(was_appended(&meta.etag), "{meta:?}");
    assert_eq!(s3.get("log").unwrap(), "line 1\nline 2\n");
    w.write(w.size(), Bytes::from_static(b"line 3\n"))
        .await
        .unwrap();
    w.flush().await.unwrap();
    assert_eq!(s3.get("log").unwrap(), "line 1\nline 2\nline 3\n");
    let c = s3.counters();
    assert_eq!(c.put_object, 2);
    assert_eq!(c.copy_object + c.upload_part + c.upload_part_copy, 0);
}

/// A write below the old end, a cut, or metadata the append could not store (a stored
/// mtime that moves): the object is rewritten as without the flag.
#[tokio::test]
async fn anything_but_an_append_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let (s3, config) = appending(&dir);
    let w = existing(&s3, "a", "0123456789", Arc::clone(&config));
    w.write(10, Bytes::from_static(b"end")).await.unwrap();
    w.write(0, Bytes::from_static(b"X")).await.unwrap();
    let meta = w.flush().await.unwrap().unwrap();
    assert!(!was_appended(&meta.etag));
    assert_eq!(s3.get("a").unwrap(), "X123456789end");

    let w = existing(&s3, "b", "0123456789", Arc::clone(&config));
    w.truncate(5).await.unwrap();
    w.write(5, Bytes::from_static(b"new")).await.unwrap();
    assert!(!was_appended(&w.flush().await.unwrap().unwrap().etag));
    assert_eq!(s3.get("b").unwrap(), "01234new");

    let mut timed = Metadata::default();
    timed.set_time("mtime", std::time::SystemTime::UNIX_EPOCH);
    let etag = s3.insert_with("c", "0123456789", timed.clone());
    let w = OpenWriter::new(
        s3.clone(),
        "c".into(),
        Origin::Existing { etag, size: 10 },
        timed,
        config,
    );
    w.write(10, Bytes::from_static(b"more")).await.unwrap();
    assert!(!was_appended(&w.flush().await.unwrap().unwrap().etag));
    assert_eq!(s3.get("c").unwrap(), "0123456789more");
}

/// Another client appended first: the object no longer ends where the file's base did
/// (S3 refuses the append). The new bytes go at the object's new end, and the file is
/// the object from then on: neither client's bytes are lost.
#[tokio::test]
async fn a_lost_append_race_appends_at_the_new_end() {
    let dir = tempfile::tempdir().unwrap();
    let (s3, config) = appending(&dir);
    let w = existing(&s3, "log", "line 1\n", config);
    w.write(w.size(), Bytes::from_static(b"mine\n"))
        .await
        .unwrap();
    s3.insert("log", "line 1\ntheirs\n");
    let meta = w.flush().await.unwrap().unwrap();
    let both = "line 1\ntheirs\nmine\n";
    assert_eq!(s3.get("log").unwrap(), both);
    assert_eq!(meta.size, both.len() as u64);
    assert_eq!(w.size(), both.len() as u64);
    assert_eq!(w.read(0, 100).await.unwrap(), both);
    assert!(!w.is_dirty());
}

/// An append carried out whose answer was lost (the retry finds the object grown by
/// exactly these bytes) is not made twice.
#[tokio::test]
async fn an_append_whose_answer_was_lost_is_not_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let (s3, config) = appending(&dir);
    let w = existing(&s3, "log", "line 1\n", config);
    w.write(w.size(), Bytes::from_static(b"line 2\n"))
        .await
        .unwrap();
    s3.lose_answer_next(Op::PutObject, 1, || S3Error::Service {
        status: 400,
        code: "InvalidWriteOffset".into(),
        message: "the retry of a lost answer".into(),
    });
    w.flush().await.unwrap();
    assert_eq!(s3.get("log").unwrap(), "line 1\nline 2\n");
    assert_eq!(w.size(), 14);
}

/// An object that holds S3's 10,000 appends and parts (`TooManyParts`) is rewritten
/// whole instead, which resets the count.
#[tokio::test]
async fn too_many_parts_rewrites_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let (s3, config) = appending(&dir);
    let w = existing(&s3, "log", "line 1\n", config);
    w.write(w.size(), Bytes::from_static(b"line 2\n"))
        .await
        .unwrap();
    s3.fail_next(Op::PutObject, 1, || S3Error::Service {
        status: 400,
        code: "TooManyParts".into(),
        message: "too many parts".into(),
    });
    let meta = w.flush().await.unwrap().unwrap();
    assert!(!was_appended(&meta.etag));
    assert_eq!(s3.get("log").unwrap(), "line 1\nline 2\n");
    assert_eq!(s3.counters().put_object, 2);
}
