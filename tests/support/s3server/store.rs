//! The in-memory object store: buckets, objects, multipart uploads, and S3's listing rules.
//!
//! Keys are opaque strings kept verbatim in a sorted map (`dir/` markers, `a` beside `a/b`,
//! `a//b`, spaces, `%`, `+`, unicode): there is no path mapping, so what S3 would list is
//! exactly what this store lists, in the same (UTF-8 byte) order.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use md5::{Digest, Md5};
use time::OffsetDateTime;

use super::quirks::Quirks;
use super::sse::StoredWith;

/// S3's minimum size for every part of a multipart upload but the last.
pub const S3_MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// S3's largest CopyObject source and largest UploadPartCopy range (5 GiB).
pub const S3_SINGLE_COPY_LIMIT: usize = 5 * 1024 * 1024 * 1024;

/// The content type S3 records when a PUT carries none.
pub const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// One stored object. Cloning is cheap: the body is a reference-counted `Bytes`.
#[derive(Clone, Debug)]
pub struct Object {
    pub body: Bytes,
    /// The ETag without its quotes: hex MD5, or `<hex md5 of part md5s>-N` for multipart.
    pub etag: String,
    pub last_modified: OffsetDateTime,
    pub content_type: String,
    /// User metadata (`x-amz-meta-*`), names lower-case without the prefix.
    pub metadata: HashMap<String, String>,
    /// Encryption, storage class and ACL its writer asked for (boxed: most objects have
    /// none, and listings move many objects).
    pub stored: Box<StoredWith>,
}

impl Object {
    /// An object as a single PUT would store it.
    pub fn new(
        body: Bytes,
        content_type: Option<String>,
        metadata: HashMap<String, String>,
    ) -> Self {
        let etag = md5_hex(&body);
        Self {
            body,
            etag,
            last_modified: now(),
            content_type: content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            metadata,
            stored: Box::default(),
        }
    }

    /// The quoted ETag as it appears in headers and XML.
    pub fn quoted_etag(&self) -> String {
        format!("\"{}\"", self.etag)
    }
}

/// An uploaded part of a multipart upload.
#[derive(Clone, Debug)]
pub struct Part {
    pub body: Bytes,
    pub etag: String,
    pub last_modified: OffsetDateTime,
}

/// An open multipart upload.
#[derive(Clone, Debug)]
pub struct Upload {
    pub key: String,
    pub initiated: OffsetDateTime,
    pub content_type: Option<String>,
    pub metadata: HashMap<String, String>,
    /// What CreateMultipartUpload asked for; the completed object gets it.
    pub stored: StoredWith,
    pub parts: BTreeMap<i32, Part>,
}

#[derive(Debug)]
pub struct Bucket {
    pub region: String,
    pub created: OffsetDateTime,
    /// Anonymous (unsigned) reads are allowed, like a public-read bucket policy.
    pub public_read: bool,
    pub objects: BTreeMap<String, Object>,
    pub uploads: BTreeMap<String, Upload>,
}

impl Bucket {
    pub fn new(region: &str) -> Self {
        Self {
            region: region.to_owned(),
            created: now(),
            public_read: false,
            objects: BTreeMap::new(),
            uploads: BTreeMap::new(),
        }
    }
}

/// All buckets behind one lock: every operation is a short map update or a cheap clone,
/// so a single mutex is simpler than finer locking and never the bottleneck.
pub struct Store {
    buckets: Mutex<BTreeMap<String, Bucket>>,
    upload_seq: AtomicU64,
    min_part_size: AtomicUsize,
    single_copy_limit: AtomicUsize,
    /// How this server differs from S3, switched by tests (`quirks.rs`).
    pub quirks: Quirks,
    /// Directory-bucket mode and its sessions (`express.rs`).
    pub express: super::express::Express,
    /// Access points and their buckets, registered by tests (`access_points.rs`).
    pub access_points: super::access_points::AccessPoints,
}

impl Store {
    pub fn new() -> Self {
        Self {
            buckets: Mutex::new(BTreeMap::new()),
            upload_seq: AtomicU64::new(1),
            min_part_size: AtomicUsize::new(S3_MIN_PART_SIZE),
            single_copy_limit: AtomicUsize::new(S3_SINGLE_COPY_LIMIT),
            quirks: Quirks::default(),
            express: super::express::Express::default(),
            access_points: Default::default(),
        }
    }

    /// Locks the bucket table. A panic in another holder does not poison the test server:
    /// the data is plain maps that stay consistent between statements.
    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Bucket>> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn min_part_size(&self) -> usize {
        self.min_part_size.load(Ordering::Relaxed)
    }

    pub fn set_min_part_size(&self, n: usize) {
        self.min_part_size.store(n, Ordering::Relaxed);
    }

    pub fn single_copy_limit(&self) -> usize {
        self.single_copy_limit.load(Ordering::Relaxed)
    }

    pub fn set_single_copy_limit(&self, n: usize) {
        self.single_copy_limit.store(n, Ordering::Relaxed);
    }

    /// A fresh, unguessable-looking upload id (S3's are opaque strings too).
    pub fn next_upload_id(&self) -> String {
        let seq = self.upload_seq.fetch_add(1, Ordering::Relaxed);
        let salt: u64 = rand::random();
        format!("upload-{seq:08}-{salt:016x}")
    }

    /// The region of `bucket`, if it exists.
    pub fn bucket_region(&self, bucket: &str) -> Option<String> {
        self.lock().get(bucket).map(|b| b.region.clone())
    }

    pub fn is_public_read(&self, bucket: &str) -> bool {
        self.lock().get(bucket).is_some_and(|b| b.public_read)
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

/// The current time at S3's listing precision (whole seconds: `LastModified` in listings
/// ends in `.000Z` and HTTP dates have no fraction, so both views of an object agree).
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// The ETag S3 gives a completed multipart upload: MD5 over the concatenated binary MD5s of
/// the parts, then `-<part count>`.
pub fn multipart_etag<'a>(part_etags: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Md5::new();
    let mut n = 0usize;
    for etag in part_etags {
        hasher.update(hex::decode(etag).expect("part etags are hex md5"));
        n += 1;
    }
    format!("{}-{n}", hex::encode(hasher.finalize()))
}

/// One listing entry, in key order.
#[derive(Debug)]
pub enum Entry {
    Object(String, Object),
    CommonPrefix(String),
}

impl Entry {
    /// The key or prefix, which is also what a continuation marker records.
    pub fn name(&self) -> &str {
        match self {
            Entry::Object(k, _) | Entry::CommonPrefix(k) => k,
        }
    }
}

/// A page of a listing.
#[derive(Debug)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// More entries follow the last one returned.
    pub truncated: bool,
}

/// Lists `objects` the way ListObjects(V2) does: keys starting with `prefix`, strictly after
/// `after` (a start-after key or continuation marker), keys that contain `delimiter` after the
/// prefix rolled up into one common prefix each, at most `max` entries (objects and prefixes
/// together).
///
/// A common prefix that sorts at or before `after` was already returned (or is before the
/// requested start), so its whole group is skipped: this is what makes a marker that names a
/// common prefix resume right after that group instead of repeating it.
pub fn list(
    objects: &BTreeMap<String, Object>,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> Page {
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let mut lower: Bound<String> = match after {
        Some(a) if a >= prefix => Bound::Excluded(a.to_owned()),
        _ => Bound::Included(prefix.to_owned()),
    };
    let mut entries = Vec::new();

    'scan: loop {
        let range = objects.range::<String, _>((lower.as_ref(), Bound::Unbounded));
        for (key, object) in range {
            if !key.starts_with(prefix) {
                break 'scan;
            }
            let rolled_up = delimiter.and_then(|d| {
                key[prefix.len()..]
                    .find(d)
                    .map(|pos| &key[..prefix.len() + pos + d.len()])
            });
            let Some(common) = rolled_up else {
                if entries.len() == max {
                    return Page {
                        entries,
                        truncated: true,
                    };
                }
                entries.push(Entry::Object(key.clone(), object.clone()));
                continue;
            };
            let already_listed = after.is_some_and(|a| common <= a);
            if !already_listed {
                if entries.len() == max {
                    return Page {
                        entries,
                        truncated: true,
                    };
                }
                entries.push(Entry::CommonPrefix(common.to_owned()));
            }
            // Jump over every key of this group in one step.
            match prefix_successor(common) {
                Some(next) => {
                    lower = Bound::Included(next);
                    continue 'scan;
                }
                None => break 'scan,
            }
        }
        break;
    }
    Page {
        entries,
        truncated: false,
    }
}

/// The smallest string greater than every string that starts with `p`, if one exists.
fn prefix_successor(p: &str) -> Option<String> {
    let mut chars: Vec<char> = p.chars().collect();
    while let Some(c) = chars.pop() {
        let next = match c {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}
