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

mod listing;

use super::client::check_key;
use listing::list_page;

use super::{
    AppendObjectParams, CompletedPart, GetObjectOutput, GetObjectParams, ListObjectsParams,
    ListPage, Metadata, ObjectClient, ObjectMeta, PendingUpload, PutObjectParams, S3Error,
    UploadPartCopyParams, S3_SINGLE_COPY_LIMIT,
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
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    ListMultipartUploads,
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
    pub upload_part_copy: u64,
    pub complete_multipart_upload: u64,
    pub abort_multipart_upload: u64,
    pub list_parts: u64,
    pub list_multipart_uploads: u64,
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
            Op::UploadPartCopy => &mut self.upload_part_copy,
            Op::CompleteMultipartUpload => &mut self.complete_multipart_upload,
            Op::AbortMultipartUpload => &mut self.abort_multipart_upload,
            Op::ListParts => &mut self.list_parts,
            Op::ListMultipartUploads => &mut self.list_multipart_uploads,
        };
        *slot += 1;
    }
}

type MakeError = Arc<dyn Fn() -> S3Error + Send + Sync>;

/// An injected failure: when it strikes, and what it says.
struct Failure {
    left: u32,
    make: MakeError,
    /// The operation is carried out first and only its answer fails (an answer lost on
    /// the way back).
    after: bool,
}

#[derive(Clone)]
struct StoredObject {
    data: Bytes,
    etag: String,
    last_modified: SystemTime,
    metadata: Metadata,
}

struct Upload {
    key: String,
    metadata: Metadata,
    parts: BTreeMap<u32, (String, Bytes)>,
    initiated: SystemTime,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, StoredObject>,
    uploads: HashMap<String, Upload>,
    next_upload: u64,
    counters: OpCounters,
    failures: HashMap<Op, Failure>,
}

/// An in-memory bucket behind the [`ObjectClient`] trait.
pub struct MemoryClient {
    state: Mutex<State>,
    page_size: usize,
    min_part_size: usize,
    single_copy_limit: u64,
    /// Takes appends (`x-amz-write-offset-bytes`), as a directory bucket does.
    appends: bool,
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
            single_copy_limit: S3_SINGLE_COPY_LIMIT,
            appends: false,
        }
    }

    /// Takes appends as a directory bucket does ([`ObjectClient::append_object`], counted
    /// as PutObject): at the object's size only (else 400 `InvalidWriteOffset`), its
    /// metadata kept, a new ETag.
    pub fn with_appends(mut self) -> Self {
        self.appends = true;
        self
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

    /// Refuses CopyObject of sources larger than `n` bytes (S3: 5 GiB), as S3 does, so
    /// multipart copies can be tested with small objects.
    pub fn with_single_copy_limit(mut self, n: u64) -> Self {
        self.single_copy_limit = n;
        self
    }

    // A panic while holding the lock can only come from a failing test; keep going with
    // the state as it is rather than cascading panics into unrelated assertions.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the next `n` calls of `op` fail with `make()` (they still count); `n` = 0
    /// takes a pending failure back.
    pub fn fail_next(&self, op: Op, n: u32, make: impl Fn() -> S3Error + Send + Sync + 'static) {
        if n == 0 {
            self.lock().failures.remove(&op);
            return;
        }
        self.lock().failures.insert(
            op,
            Failure {
                left: n,
                make: Arc::new(make),
                after: false,
            },
        );
    }

    /// Carries out the next `n` calls of `op`, then fails them with `make()`: an answer
    /// lost after the work was done.
    pub fn lose_answer_next(
        &self,
        op: Op,
        n: u32,
        make: impl Fn() -> S3Error + Send + Sync + 'static,
    ) {
        self.lock().failures.insert(
            op,
            Failure {
                left: n,
                make: Arc::new(make),
                after: true,
            },
        );
    }

    /// How many times each operation was called so far.
    pub fn counters(&self) -> OpCounters {
        self.lock().counters.clone()
    }

    /// Stores an object directly (no counter), for test setup.
    pub fn insert(&self, key: &str, data: impl Into<Bytes>) -> String {
        self.store(key, data.into(), Metadata::default())
    }

    /// Stores an object with metadata directly (no counter), for test setup.
    pub fn insert_with(&self, key: &str, data: impl Into<Bytes>, metadata: Metadata) -> String {
        self.store(key, data.into(), metadata)
    }

    /// An object's metadata, read directly (no counter), for test assertions.
    pub fn metadata(&self, key: &str) -> Option<Metadata> {
        self.lock().objects.get(key).map(|o| o.metadata.clone())
    }

    fn store(&self, key: &str, data: Bytes, metadata: Metadata) -> String {
        let etag = md5_etag(&data);
        self.lock().objects.insert(
            key.to_string(),
            StoredObject {
                data,
                etag: etag.clone(),
                last_modified: SystemTime::now(),
                metadata,
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
        if let Some(failure) = state.failures.get_mut(&op).filter(|f| !f.after) {
            let err = (failure.make)();
            failure.left -= 1;
            if failure.left == 0 {
                state.failures.remove(&op);
            }
            return Err(err);
        }
        Ok(state)
    }

    /// The answer of a call of `op` that was carried out: `outcome`, unless an injected
    /// failure loses it.
    fn answer<T>(&self, op: Op, outcome: Result<T, S3Error>) -> Result<T, S3Error> {
        let mut state = self.lock();
        if outcome.is_ok() {
            if let Some(failure) = state.failures.get_mut(&op).filter(|f| f.after) {
                let err = (failure.make)();
                failure.left -= 1;
                if failure.left == 0 {
                    state.failures.remove(&op);
                }
                return Err(err);
            }
        }
        outcome
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
        metadata: Some(o.metadata.clone()),
        version_id: None,
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
            body: body.into(),
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
        Ok(self.store(&params.key, params.body, params.metadata))
    }

    async fn append_object(&self, params: AppendObjectParams) -> Result<Option<String>, S3Error> {
        if !self.appends {
            return Ok(None);
        }
        let mut state = self.enter(Op::PutObject)?;
        check_key(&params.key)?;
        let object = state
            .objects
            .get_mut(&params.key)
            .ok_or_else(|| no_such_key(&params.key))?;
        if let Some(etag) = params.if_match.filter(|e| *e != object.etag) {
            return Err(S3Error::PreconditionFailed { etag });
        }
        if object.data.len() as u64 != params.offset {
            return Err(service(
                400,
                "InvalidWriteOffset",
                "The write offset value that you specified does not match the current object size.",
            ));
        }
        let mut data = BytesMut::from(&object.data[..]);
        data.extend_from_slice(&params.body);
        object.data = data.freeze();
        // Not an MD5 of the bytes, as a directory bucket's ETags are not.
        object.etag = format!("\"{}-append\"", &md5_etag(&object.data)[1..33]);
        object.last_modified = SystemTime::now();
        Ok(Some(object.etag.clone()))
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

    async fn copy_object(
        &self,
        from: &str,
        to: &str,
        replace: Option<&Metadata>,
    ) -> Result<String, S3Error> {
        let mut state = self.enter(Op::CopyObject)?;
        check_key(to)?;
        let source = state.objects.get(from).ok_or_else(|| no_such_key(from))?;
        if source.data.len() as u64 > self.single_copy_limit {
            return Err(service(
                400,
                "InvalidRequest",
                "The specified copy source is larger than the maximum allowable size for a copy source",
            ));
        }
        let copy = StoredObject {
            data: source.data.clone(),
            etag: md5_etag(&source.data),
            last_modified: SystemTime::now(),
            // Metadata is copied unless replaced.
            metadata: replace.cloned().unwrap_or_else(|| source.metadata.clone()),
        };
        let etag = copy.etag.clone();
        state.objects.insert(to.to_string(), copy);
        Ok(etag)
    }

    async fn create_multipart_upload(
        &self,
        key: &str,
        metadata: &Metadata,
    ) -> Result<String, S3Error> {
        let mut state = self.enter(Op::CreateMultipartUpload)?;
        check_key(key)?;
        state.next_upload += 1;
        let id = format!("upload-{}", state.next_upload);
        state.uploads.insert(
            id.clone(),
            Upload {
                key: key.to_string(),
                metadata: metadata.clone(),
                parts: BTreeMap::new(),
                initiated: SystemTime::now(),
            },
        );
        drop(state);
        self.answer(Op::CreateMultipartUpload, Ok(id))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<CompletedPart, S3Error> {
        let mut state = self.enter(Op::UploadPart)?;
        if !(1..=10_000).contains(&part_number) {
            return Err(service(400, "InvalidArgument", "part number out of range"));
        }
        let upload = find_upload(&mut state, key, upload_id)?;
        let etag = md5_etag(&body);
        let checksum_crc32c = Some(super::checksum::crc32c_base64(&body));
        let size = body.len() as u64;
        upload.parts.insert(part_number, (etag.clone(), body));
        drop(state);
        self.answer(
            Op::UploadPart,
            Ok(CompletedPart {
                part_number,
                etag,
                checksum_crc32c,
                size,
            }),
        )
    }

    async fn upload_part_copy(
        &self,
        params: UploadPartCopyParams,
    ) -> Result<CompletedPart, S3Error> {
        let mut state = self.enter(Op::UploadPartCopy)?;
        if !(1..=10_000).contains(&params.part_number) {
            return Err(service(400, "InvalidArgument", "part number out of range"));
        }
        let source = state
            .objects
            .get(&params.source_key)
            .ok_or_else(|| no_such_key(&params.source_key))?;
        if let Some(etag) = &params.source_if_match {
            if *etag != source.etag {
                return Err(S3Error::PreconditionFailed { etag: etag.clone() });
            }
        }
        let (start, end) = (params.range.start, params.range.end);
        if start >= end || end > source.data.len() as u64 || end - start > self.single_copy_limit {
            return Err(S3Error::InvalidRange);
        }
        let body = source.data.slice(start as usize..end as usize);
        let upload = find_upload(&mut state, &params.key, &params.upload_id)?;
        let etag = md5_etag(&body);
        let size = body.len() as u64;
        upload
            .parts
            .insert(params.part_number, (etag.clone(), body));
        Ok(CompletedPart {
            part_number: params.part_number,
            etag,
            checksum_crc32c: None,
            size,
        })
    }

    fn single_copy_limit(&self) -> u64 {
        self.single_copy_limit
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
        let metadata = state
            .uploads
            .remove(upload_id)
            .map(|u| u.metadata)
            .unwrap_or_default();
        state.objects.insert(
            key.to_string(),
            StoredObject {
                data: data.freeze(),
                etag: etag.clone(),
                last_modified: SystemTime::now(),
                metadata,
            },
        );
        drop(state);
        self.answer(Op::CompleteMultipartUpload, Ok(etag))
    }

    async fn abort_multipart_upload(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        let mut state = self.enter(Op::AbortMultipartUpload)?;
        find_upload(&mut state, key, upload_id)?;
        state.uploads.remove(upload_id);
        Ok(())
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<CompletedPart>, S3Error> {
        let mut state = self.enter(Op::ListParts)?;
        let upload = find_upload(&mut state, key, upload_id)?;
        Ok(upload
            .parts
            .iter()
            .map(|(n, (etag, body))| CompletedPart {
                part_number: *n,
                etag: etag.clone(),
                checksum_crc32c: Some(super::checksum::crc32c_base64(body)),
                size: body.len() as u64,
            })
            .collect())
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, S3Error> {
        let state = self.enter(Op::ListMultipartUploads)?;
        let mut uploads: Vec<PendingUpload> = state
            .uploads
            .iter()
            .filter(|(_, u)| u.key.starts_with(prefix))
            .map(|(id, u)| PendingUpload {
                key: u.key.clone(),
                upload_id: id.clone(),
                initiated: Some(u.initiated),
            })
            .collect();
        uploads.sort_by(|a, b| (&a.key, a.initiated).cmp(&(&b.key, b.initiated)));
        Ok(uploads)
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
mod tests;
