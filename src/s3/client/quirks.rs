//! What this server does differently from AWS S3, in one place: [`Quirks`].
//!
//! Each quirk starts from the provider's known default ([`Provider`]) and is otherwise
//! found out at run time, by the answer that shows it:
//!
//! - *no checksum headers*: a PutObject, UploadPart or CreateMultipartUpload refused with a
//!   400 or 501 while it carried `x-amz-checksum-crc32c` / `x-amz-checksum-algorithm`, and
//!   accepted when sent again with `Content-MD5` instead.
//! - *ListObjects V1 only*: a `list-type=2` listing refused with a 400 or 501 (or answered
//!   in V1's shape), and a V1 listing of the same page accepted. Pages then chain by
//!   markers.
//! - *no UploadPartCopy*: an UploadPartCopy answered 501 / `NotImplemented`. Copies of parts
//!   then go through this machine: a ranged GET and an UploadPart.
//! - *ETags are not MD5s*: the first small PutObject or UploadPart of the mount answered
//!   an ETag that is not the MD5 of the body sent. Nothing compares an ETag with an MD5
//!   unless this says the server's ETags are MD5s ([`Quirks::etags_are_md5`]).
//! - *unsorted listings*: a listing page whose keys were not in order (the client sorts
//!   every page, so the rest of the mount never sees it).
//!
//! Every quirk is an atomic that only ever flips one way, by `compare_exchange`: whichever
//! request sees it first logs it, once; the others find it set. Nothing here blocks.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use log::{info, warn};

use crate::s3::provider::Provider;

/// Whether the server's ETags are the MD5 of an object's bytes (the parts' MD5s' MD5 for
/// a multipart object).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtagKind {
    /// Not seen yet.
    Unknown,
    Md5,
    /// Opaque (random, a hash of something else, or encrypted objects' on S3).
    Opaque,
}

/// Whether UploadPartCopy works on this server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartCopy {
    Unknown,
    Supported,
    Missing,
}

/// One quirk, as `s3rolefs check` and the logs name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quirk {
    NoChecksumHeaders,
    ListV1Only,
    NoUploadPartCopy,
    EtagsNotMd5,
    UnsortedListings,
}

impl Quirk {
    /// The name `check` prints.
    pub fn name(self) -> &'static str {
        match self {
            Quirk::NoChecksumHeaders => "no-checksum-headers",
            Quirk::ListV1Only => "list-v1-only",
            Quirk::NoUploadPartCopy => "no-upload-part-copy",
            Quirk::EtagsNotMd5 => "etags-not-md5",
            Quirk::UnsortedListings => "unsorted-listings",
        }
    }

    /// What s3rolefs does about it.
    pub fn consequence(self) -> &'static str {
        match self {
            Quirk::NoChecksumHeaders => {
                "uploads carry Content-MD5 instead of x-amz-checksum-crc32c"
            }
            Quirk::ListV1Only => "directories are listed with ListObjects (V1) and markers",
            Quirk::NoUploadPartCopy => {
                "renames of files above the single-copy limit and edits of large files \
                 download and upload again the bytes that did not change, through this \
                 machine: slower, and billed as traffic where the provider bills it"
            }
            Quirk::EtagsNotMd5 => {
                "ETags are not MD5s: an upload whose answer was lost is not recognised by \
                 its ETag (a recovered copy goes beside the object instead)"
            }
            Quirk::UnsortedListings => "listing pages are sorted by s3rolefs",
        }
    }
}

const ETAG_UNKNOWN: u8 = 0;
const ETAG_MD5: u8 = 1;
const ETAG_OPAQUE: u8 = 2;
/// MD5s by the provider's documentation, until the first write confirms or refutes it.
const ETAG_ASSUMED_MD5: u8 = 3;
const COPY_UNKNOWN: u8 = 0;
const COPY_SUPPORTED: u8 = 1;
const COPY_MISSING: u8 = 2;

/// The quirks of one server, shared by every request of a client.
#[derive(Debug)]
pub struct Quirks {
    provider: Provider,
    no_checksums: AtomicBool,
    list_v1: AtomicBool,
    part_copy: AtomicU8,
    etags: AtomicU8,
    unsorted: AtomicBool,
}

impl Quirks {
    /// The provider's known defaults; everything else is found out.
    pub fn new(provider: Provider) -> Quirks {
        let known = provider.known_quirks();
        Quirks {
            provider,
            no_checksums: AtomicBool::new(known.contains(&Quirk::NoChecksumHeaders)),
            list_v1: AtomicBool::new(known.contains(&Quirk::ListV1Only)),
            part_copy: AtomicU8::new(if known.contains(&Quirk::NoUploadPartCopy) {
                COPY_MISSING
            } else {
                COPY_UNKNOWN
            }),
            etags: AtomicU8::new(if known.contains(&Quirk::EtagsNotMd5) {
                ETAG_OPAQUE
            } else if provider == Provider::Aws {
                // S3's documented ETag for unencrypted and SSE-S3 objects; SSE-KMS and
                // SSE-C are set with `assume_opaque_etags`. An endpoint that is not S3
                // shows otherwise at its first write.
                ETAG_ASSUMED_MD5
            } else {
                ETAG_UNKNOWN
            }),
            unsorted: AtomicBool::new(false),
        }
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Objects written with SSE-KMS or SSE-C: S3's ETags for them are not MD5s.
    pub fn assume_opaque_etags(&self) {
        self.etags.store(ETAG_OPAQUE, Ordering::Relaxed);
    }

    pub fn no_checksums(&self) -> bool {
        self.no_checksums.load(Ordering::Relaxed)
    }

    pub fn list_v1(&self) -> bool {
        self.list_v1.load(Ordering::Relaxed)
    }

    pub fn part_copy(&self) -> PartCopy {
        match self.part_copy.load(Ordering::Relaxed) {
            COPY_SUPPORTED => PartCopy::Supported,
            COPY_MISSING => PartCopy::Missing,
            _ => PartCopy::Unknown,
        }
    }

    pub fn etags(&self) -> EtagKind {
        match self.etags.load(Ordering::Relaxed) {
            ETAG_MD5 | ETAG_ASSUMED_MD5 => EtagKind::Md5,
            ETAG_OPAQUE => EtagKind::Opaque,
            _ => EtagKind::Unknown,
        }
    }

    /// `Some(true)` only when the server's ETags are known to be MD5s.
    pub fn etags_are_md5(&self) -> Option<bool> {
        match self.etags() {
            EtagKind::Md5 => Some(true),
            EtagKind::Opaque => Some(false),
            EtagKind::Unknown => None,
        }
    }

    /// The server refused a checksum header and took `Content-MD5`.
    pub fn found_no_checksums(&self, op: &str, why: &str) {
        if !self.no_checksums.swap(true, Ordering::Relaxed) {
            warn!(
                "the server refused x-amz-checksum-* headers on {op} ({why}); {}",
                Quirk::NoChecksumHeaders.consequence()
            );
        }
    }

    /// The server refused ListObjectsV2 and answered V1.
    pub fn found_list_v1(&self, why: &str) {
        if !self.list_v1.swap(true, Ordering::Relaxed) {
            warn!(
                "the server does not serve ListObjectsV2 ({why}); {}",
                Quirk::ListV1Only.consequence()
            );
        }
    }

    /// UploadPartCopy answered 501 / NotImplemented.
    pub fn found_no_part_copy(&self, why: &str) {
        if self.part_copy.swap(COPY_MISSING, Ordering::Relaxed) != COPY_MISSING {
            warn!(
                "the server does not implement UploadPartCopy ({why}); {}",
                Quirk::NoUploadPartCopy.consequence()
            );
        }
    }

    /// An UploadPartCopy succeeded.
    pub fn found_part_copy(&self) {
        let _ = self.part_copy.compare_exchange(
            COPY_UNKNOWN,
            COPY_SUPPORTED,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Whether ETags still need a look (the first small write of the mount decides).
    pub fn etags_unconfirmed(&self) -> bool {
        matches!(
            self.etags.load(Ordering::Relaxed),
            ETAG_UNKNOWN | ETAG_ASSUMED_MD5
        )
    }

    /// The ETag the server gave a body whose MD5 (hex) is `md5`: decides [`EtagKind`] if it
    /// was unknown.
    pub fn saw_etag(&self, etag: &str, md5: &str) {
        let kind = if etag.trim_matches('"').eq_ignore_ascii_case(md5) {
            ETAG_MD5
        } else {
            ETAG_OPAQUE
        };
        let current = self.etags.load(Ordering::Relaxed);
        if !matches!(current, ETAG_UNKNOWN | ETAG_ASSUMED_MD5) {
            return;
        }
        let decided = self
            .etags
            .compare_exchange(current, kind, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if decided && kind == ETAG_OPAQUE {
            info!(
                "the server's ETags are not MD5 digests of the data; {}",
                Quirk::EtagsNotMd5.consequence()
            );
        }
    }

    /// A listing page came unsorted.
    pub fn found_unsorted(&self) {
        if !self.unsorted.swap(true, Ordering::Relaxed) {
            warn!(
                "the server lists keys out of order; {}",
                Quirk::UnsortedListings.consequence()
            );
        }
    }

    /// Every quirk in force, known by the provider or found out.
    pub fn active(&self) -> Vec<Quirk> {
        let mut out = Vec::new();
        if self.no_checksums() {
            out.push(Quirk::NoChecksumHeaders);
        }
        if self.list_v1() {
            out.push(Quirk::ListV1Only);
        }
        if self.part_copy() == PartCopy::Missing {
            out.push(Quirk::NoUploadPartCopy);
        }
        if self.etags() == EtagKind::Opaque {
            out.push(Quirk::EtagsNotMd5);
        }
        if self.unsorted.load(Ordering::Relaxed) {
            out.push(Quirk::UnsortedListings);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each quirk flips once and stays; ETags are decided by the first body seen.
    #[test]
    fn quirks_flip_once() {
        let q = Quirks::new(Provider::Other);
        assert!(q.active().is_empty());
        assert_eq!(q.etags_are_md5(), None);
        q.saw_etag("\"0123\"", "abcd");
        q.saw_etag("\"abcd\"", "abcd");
        assert_eq!(q.etags_are_md5(), Some(false));
        q.found_part_copy();
        assert_eq!(q.part_copy(), PartCopy::Supported);
        q.found_no_part_copy("501");
        q.found_part_copy();
        assert_eq!(q.part_copy(), PartCopy::Missing);
        q.found_list_v1("400");
        q.found_no_checksums("PutObject", "400");
        q.found_unsorted();
        assert_eq!(q.active().len(), 5);
    }

    /// AWS's ETags are MD5s until shown otherwise; a provider's known quirks start set.
    #[test]
    fn provider_defaults() {
        let aws = Quirks::new(Provider::Aws);
        assert_eq!(aws.etags_are_md5(), Some(true));
        // An endpoint that only claims to be S3 is found out by its first write.
        aws.saw_etag("\"ffff\"", "abcd");
        assert_eq!(aws.etags_are_md5(), Some(false));
        let gcs = Quirks::new(Provider::Gcs);
        assert!(gcs.no_checksums() && gcs.list_v1());
        assert_eq!(Quirks::new(Provider::R2).etags_are_md5(), Some(false));
        assert_eq!(Quirks::new(Provider::Minio).etags_are_md5(), None);
    }
}
