//! `MemoryClient`: an [`ObjectClient`] over an in-memory `BTreeMap`, with S3's semantics,
//! for fast unit tests of the filesystem core.
//!
//! It behaves like the real client as seen through the trait: prefix/delimiter listings
//! paginated at a configurable page size with opaque continuation tokens, MD5 ETags (and
//! `"md5-of-md5s-N"` for multipart objects), half-open ranges with `InvalidRange`, `If-Match`
//! with `PreconditionFailed`, multipart uploads with part checks, and the same refusal of keys
//! that cannot be addressed over HTTP. Every call bumps a per-operation counter, and
//! [`MemoryClient::fail_next`] makes the next calls of an operation fail with a chosen error.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};

use super::client::check_key;
use super::{
    CompletedPart, GetObjectOutput, GetObjectParams, ListObjectsParams, ListPage, ObjectClient,
    ObjectMeta, PutObjectParams, S3Error,
};

/// The operations of [`ObjectClient`], to aim failure injection at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    HeadBucket,
    HeadObject,
    GetObject,
    ListObjects,
    PutObject,
    DeleteObject,
    DeleteObjects,
    CopyObject,
    CreateMultipartUpload,
    UploadPart,
    CompleteMultipartUpload,
    AbortMultipartUpload,
}

/// How many times each operation was called (failed calls included).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpCounters {
    pub head_bucket: u64,
    pub head_object: u64,
    pub get_object: u64,
    pub list_objects: u64,
    pub put_object: u64,
    pub delete_object: u64,
    pub delete_objects: u64,
    pub copy_object: u64,
    pub create_multipart_upload: u64,
    pub upload_part: u64,
    pub complete_multipart_upload: u64,
    pub abort_multipart_upload: u64,
}

impl OpCounters {
    fn bump(&mut self, op: Op) {
        let slot = match op {
            Op::HeadBucket => &mut self.head_bucket,
            Op::HeadObject => &mut self.head_object,
            Op::GetObject => &mut self.get_object,
            Op::ListObjects => &mut self.list_objects,
            Op::PutObject => &mut self.put_object,
            Op::DeleteObject => &mut self.delete_object,
            Op::DeleteObjects => &mut self.delete_objects,
            Op::CopyObject => &mut self.copy_object,
            Op::CreateMultipartUpload => &mut self.create_multipart_upload,
            Op::UploadPart => &mut self.upload_part,
            Op::CompleteMultipartUpload => &mut self.complete_multipart_upload,
            Op::AbortMultipartUpload => &mut self.abort_multipart_upload,
        };
        *slot += 1;
    }
}

type MakeError = Arc<dyn Fn() -> S3Error + Send + Sync>;

#[derive(Clone)]
struct StoredObject {
    data: Bytes,
    etag: String,
    last_modified: SystemTime,
}

struct Upload {
    key: String,
    parts: BTreeMap<u32, (String, Bytes)>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, StoredObject>,
    uploads: HashMap<String, Upload>,
    next_upload: u64,
    counters: OpCounters,
    failures: HashMap<Op, (u32, MakeError)>,
}

/// An in-memory bucket behind the [`ObjectClient`] trait.
pub struct MemoryClient {
    state: Mutex<State>,
    page_size: usize,
    min_part_size: usize,
}

impl Default for MemoryClient {
    fn default() -> Self {
        Self::new()
    }
}

/// S3's smallest part (all but the last part of a multipart upload).
pub const S3_MIN_PART_SIZE: usize = 5 * 1024 * 1024;

impl MemoryClient {
    /// An empty bucket listing 1,000 entries per page, as S3 does.
    pub fn new() -> Self {
        MemoryClient {
            state: Mutex::new(State::default()),
            page_size: 1000,
            min_part_size: S3_MIN_PART_SIZE,
        }
    }

    /// Listing pages of at most `n` entries (keys + common prefixes), to exercise paging.
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// Accepts smaller parts than S3's 5 MiB, so multipart tests stay small.
    pub fn with_min_part_size(mut self, n: usize) -> Self {
        self.min_part_size = n;
        self
    }

    // A panic while holding the lock can only come from a failing test; keep going with
    // the state as it is rather than cascading panics into unrelated assertions.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the next `n` calls of `op` fail with `make()` (they still count).
    pub fn fail_next(&self, op: Op, n: u32, make: impl Fn() -> S3Error + Send + Sync + 'static) {
        self.lock().failures.insert(op, (n, Arc::new(make)));
    }

    /// How many times each operation was called so far.
    pub fn counters(&self) -> OpCounters {
        self.lock().counters.clone()
    }

    /// Stores an object directly (no counter), for test setup.
    pub fn insert(&self, key: &str, data: impl Into<Bytes>) -> String {
        let data = data.into();
        let etag = md5_etag(&data);
        self.lock().objects.insert(
            key.to_string(),
            StoredObject {
                data,
                etag: etag.clone(),
                last_modified: SystemTime::now(),
            },
        );
        etag
    }

    /// An object's content, read directly (no counter), for test assertions.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.lock().objects.get(key).map(|o| o.data.clone())
    }

    /// Every key, in order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().objects.keys().cloned().collect()
    }

    /// Upload ids of multipart uploads neither completed nor aborted.
    pub fn pending_uploads(&self) -> Vec<String> {
        self.lock().uploads.keys().cloned().collect()
    }

    /// Counts the call, then applies any injected failure; returns the locked state.
    fn enter(&self, op: Op) -> Result<MutexGuard<'_, State>, S3Error> {
        let mut state = self.lock();
        state.counters.bump(op);
        if let Some((left, make)) = state.failures.get_mut(&op) {
            let err = make();
            *left -= 1;
            if *left == 0 {
                state.failures.remove(&op);
            }
            return Err(err);
        }
        Ok(state)
    }
}

fn md5_etag(data: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Md5::digest(data)))
}

fn meta(key: &str, o: &StoredObject) -> ObjectMeta {
    ObjectMeta {
        key: key.to_string(),
        size: o.data.len() as u64,
        etag: o.etag.clone(),
        last_modified: o.last_modified,
    }
}

fn no_such_key(key: &str) -> S3Error {
    S3Error::NoSuchKey {
        key: key.to_string(),
    }
}

fn service(status: u16, code: &str, message: &str) -> S3Error {
    S3Error::Service {
        status,
        code: code.to_string(),
        message: message.to_string(),
    }
}

/// The entry a key contributes to a delimited listing: itself, or its common prefix.
fn entry_of<'a>(key: &'a str, prefix: &str, delimiter: Option<&str>) -> (&'a str, bool) {
    if let Some(d) = delimiter.filter(|d| !d.is_empty()) {
        if let Some(i) = key[prefix.len()..].find(d) {
            return (&key[..prefix.len() + i + d.len()], true);
        }
    }
    (key, false)
}

/// One listing page. The continuation token is the last entry returned: entries come in
/// key order, so the next page is every entry after it (a common prefix covers all its keys).
fn list_page(
    objects: &BTreeMap<String, StoredObject>,
    params: &ListObjectsParams,
    token: Option<&str>,
    page_size: usize,
) -> ListPage {
    let limit = params.max_keys.map_or(page_size, |m| m.clamp(1, page_size));
    let delimiter = params.delimiter.as_deref();
    let mut page = ListPage::default();
    let mut last: Option<String> = None;
    let mut count = 0;
    for (key, object) in objects.range(params.prefix.clone()..) {
        if !key.starts_with(&params.prefix) {
            break;
        }
        if params
            .start_after
            .as_deref()
            .is_some_and(|s| key.as_str() <= s)
        {
            continue;
        }
        let (entry, is_prefix) = entry_of(key, &params.prefix, delimiter);
        if token.is_some_and(|t| entry <= t) || last.as_deref() == Some(entry) {
            continue;
        }
        if count == limit {
            page.next_continuation_token = last;
            return page;
        }
        if is_prefix {
            page.common_prefixes.push(entry.to_string());
        } else {
            page.objects.push(meta(key, object));
        }
        last = Some(entry.to_string());
        count += 1;
    }
    page
}

impl ObjectClient for MemoryClient {
    async fn head_bucket(&self) -> Result<(), S3Error> {
        self.enter(Op::HeadBucket).map(drop)
    }

    async fn head_object(&self, key: &str) -> Result<ObjectMeta, S3Error> {
        let state = self.enter(Op::HeadObject)?;
        check_key(key)?;
        let o = state.objects.get(key).ok_or_else(|| no_such_key(key))?;
        Ok(meta(key, o))
    }

    async fn get_object(&self, params: GetObjectParams) -> Result<GetObjectOutput, S3Error> {
        let state = self.enter(Op::GetObject)?;
        check_key(&params.key)?;
        let o = state
            .objects
            .get(&params.key)
            .ok_or_else(|| no_such_key(&params.key))?;
        if let Some(etag) = &params.if_match {
            if *etag != o.etag {
                return Err(S3Error::PreconditionFailed { etag: etag.clone() });
            }
        }
        let size = o.data.len() as u64;
        let body = match &params.range {
            None => o.data.clone(),
            Some(r) if r.start >= r.end || r.start >= size => return Err(S3Error::InvalidRange),
            // S3 clamps a range that runs past the end.
            Some(r) => o.data.slice(r.start as usize..r.end.min(size) as usize),
        };
        Ok(GetObjectOutput {
            meta: meta(&params.key, o),
            body,
        })
    }

    async fn list_objects_page(
        &self,
        params: &ListObjectsParams,
        continuation_token: Option<&str>,
    ) -> Result<ListPage, S3Error> {
        let state = self.enter(Op::ListObjects)?;
        Ok(list_page(
            &state.objects,
            params,
            continuation_token,
            self.page_size,
        ))
    }

    async fn put_object(&self, params: PutObjectParams) -> Result<String, S3Error> {
        drop(self.enter(Op::PutObject)?);
        check_key(&params.key)?;
        Ok(self.insert(&params.key, params.body))
    }

    async fn delete_object(&self, key: &str) -> Result<(), S3Error> {
        let mut state = self.enter(Op::DeleteObject)?;
        check_key(key)?;
        // S3 answers 204 whether or not the key existed.
        state.objects.remove(key);
        Ok(())
    }

    async fn delete_objects(&self, keys: &[String]) -> Result<Vec<(String, String)>, S3Error> {
        let mut state = self.enter(Op::DeleteObjects)?;
        for key in keys {
            state.objects.remove(key);
        }
        Ok(Vec::new())
    }

    async fn copy_object(&self, from: &str, to: &str) -> Result<String, S3Error> {
        let mut state = self.enter(Op::CopyObject)?;
        check_key(to)?;
        let source = state.objects.get(from).ok_or_else(|| no_such_key(from))?;
        let copy = StoredObject {
            data: source.data.clone(),
            etag: md5_etag(&source.data),
            last_modified: SystemTime::now(),
        };
        let etag = copy.etag.clone();
        state.objects.insert(to.to_string(), copy);
        Ok(etag)
    }

    async fn create_multipart_upload(&self, key: &str) -> Result<String, S3Error> {
        let mut state = self.enter(Op::CreateMultipartUpload)?;
        check_key(key)?;
        state.next_upload += 1;
        let id = format!("upload-{}", state.next_upload);
        state.uploads.insert(
            id.clone(),
            Upload {
                key: key.to_string(),
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<String, S3Error> {
        let mut state = self.enter(Op::UploadPart)?;
        if !(1..=10_000).contains(&part_number) {
            return Err(service(400, "InvalidArgument", "part number out of range"));
        }
        let upload = find_upload(&mut state, key, upload_id)?;
        let etag = md5_etag(&body);
        upload.parts.insert(part_number, (etag.clone(), body));
        Ok(etag)
    }

    async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<String, S3Error> {
        let mut state = self.enter(Op::CompleteMultipartUpload)?;
        let upload = find_upload(&mut state, key, upload_id)?;
        if parts.is_empty() {
            return Err(service(400, "MalformedXML", "no parts"));
        }
        if parts
            .windows(2)
            .any(|w| w[0].part_number >= w[1].part_number)
        {
            return Err(service(
                400,
                "InvalidPartOrder",
                "parts not in ascending order",
            ));
        }
        let mut data = BytesMut::new();
        let mut digests = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let (etag, body) = upload
                .parts
                .get(&part.part_number)
                .filter(|(etag, _)| *etag == part.etag)
                .ok_or_else(|| service(400, "InvalidPart", "part not uploaded or ETag differs"))?;
            if i + 1 < parts.len() && body.len() < self.min_part_size {
                return Err(service(
                    400,
                    "EntityTooSmall",
                    "part smaller than the minimum",
                ));
            }
            digests.extend_from_slice(&hex::decode(etag.trim_matches('"')).unwrap_or_default());
            data.extend_from_slice(body);
        }
        let etag = format!("\"{}-{}\"", hex::encode(Md5::digest(&digests)), parts.len());
        state.uploads.remove(upload_id);
        state.objects.insert(
            key.to_string(),
            StoredObject {
                data: data.freeze(),
                etag: etag.clone(),
                last_modified: SystemTime::now(),
            },
        );
        Ok(etag)
    }

    async fn abort_multipart_upload(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        let mut state = self.enter(Op::AbortMultipartUpload)?;
        find_upload(&mut state, key, upload_id)?;
        state.uploads.remove(upload_id);
        Ok(())
    }
}

fn find_upload<'a>(
    state: &'a mut State,
    key: &str,
    upload_id: &str,
) -> Result<&'a mut Upload, S3Error> {
    state
        .uploads
        .get_mut(upload_id)
        .filter(|u| u.key == key)
        .ok_or_else(|| service(404, "NoSuchUpload", "the upload does not exist"))
}

#[cfg(test)]
mod tests {
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
        assert_eq!((&out.body[..], out.meta.size), (&b"234"[..], 10));
        assert_eq!(&get(Some(8..100), None).unwrap().body[..], b"89");
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
        let id = block_on(c.create_multipart_upload("big")).unwrap();
        let e1 = block_on(c.upload_part("big", &id, 1, Bytes::from_static(b"ab"))).unwrap();
        let e2 = block_on(c.upload_part("big", &id, 2, Bytes::from_static(b"c"))).unwrap();
        let parts = [
            CompletedPart {
                part_number: 2,
                etag: e2.clone(),
            },
            CompletedPart {
                part_number: 1,
                etag: e1.clone(),
            },
        ];
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
}
