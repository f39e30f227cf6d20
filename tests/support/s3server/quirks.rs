//! The ways S3-compatible servers differ from S3, switchable per test ([`Quirk`]), so the
//! client's detection and fallbacks are tested through real mounts. All are off on a new
//! server; [`TestServer::set_quirk`](super::TestServer::set_quirk) switches one.
//!
//! - `NoChecksumHeaders`: a request with an `x-amz-checksum-*` header (or the checksum
//!   algorithm on CreateMultipartUpload) gets 400 `InvalidArgument`, as some servers answer
//!   headers they do not know; `Content-MD5` is checked as always.
//! - `ListV1Only`: `list-type=2` gets 400 `InvalidArgument`; ListObjects (V1) works.
//! - `NoUploadPartCopy`: UploadPartCopy gets 501 `NotImplemented`.
//! - `OpaqueEtags`: every ETag given from then on (PUT, copy, part, Complete) is random hex,
//!   not an MD5.
//! - `UnsortedListings`: the entries of every listing page come in reverse order.
//!
//! Refusals are answered by the front service after the whole request body was read, so
//! the client sees an answer, not a connection reset mid-upload.

use std::sync::atomic::{AtomicBool, Ordering};

use hyper::HeaderMap;

/// One quirk of a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quirk {
    NoChecksumHeaders,
    ListV1Only,
    NoUploadPartCopy,
    OpaqueEtags,
    UnsortedListings,
}

/// Which quirks are on.
#[derive(Debug, Default)]
pub struct Quirks {
    no_checksums: AtomicBool,
    v1_only: AtomicBool,
    no_part_copy: AtomicBool,
    opaque_etags: AtomicBool,
    unsorted: AtomicBool,
}

/// Why the server refuses a request, when a quirk makes it.
pub enum Refusal {
    /// 400 InvalidArgument with this message.
    InvalidArgument(&'static str),
    /// 501 NotImplemented with this message.
    NotImplemented(&'static str),
}

impl Quirks {
    fn flag(&self, quirk: Quirk) -> &AtomicBool {
        match quirk {
            Quirk::NoChecksumHeaders => &self.no_checksums,
            Quirk::ListV1Only => &self.v1_only,
            Quirk::NoUploadPartCopy => &self.no_part_copy,
            Quirk::OpaqueEtags => &self.opaque_etags,
            Quirk::UnsortedListings => &self.unsorted,
        }
    }

    pub fn set(&self, quirk: Quirk, on: bool) {
        self.flag(quirk).store(on, Ordering::Relaxed);
    }

    pub fn is_on(&self, quirk: Quirk) -> bool {
        self.flag(quirk).load(Ordering::Relaxed)
    }

    /// The refusal a request gets from the quirks switched on, if any.
    pub fn refusal(&self, op: super::Op, headers: &HeaderMap) -> Option<Refusal> {
        use super::Op;
        let checksum_header = headers.keys().any(|name| {
            let name = name.as_str();
            name.starts_with("x-amz-checksum-") || name == "x-amz-sdk-checksum-algorithm"
        });
        if self.is_on(Quirk::NoChecksumHeaders) && checksum_header {
            return Some(Refusal::InvalidArgument(
                "Unsupported header: x-amz-checksum-*",
            ));
        }
        match op {
            Op::ListObjectsV2 if self.is_on(Quirk::ListV1Only) => Some(Refusal::InvalidArgument(
                "list-type=2 is not supported; use ListObjects",
            )),
            Op::UploadPartCopy if self.is_on(Quirk::NoUploadPartCopy) => {
                Some(Refusal::NotImplemented("UploadPartCopy is not implemented"))
            }
            _ => None,
        }
    }

    /// The ETag (unquoted) an object or part with body MD5 `md5` gets.
    pub fn etag(&self, md5: String) -> String {
        if self.is_on(Quirk::OpaqueEtags) {
            use rand::Rng as _;
            let bytes: [u8; 16] = rand::thread_rng().gen();
            hex::encode(bytes)
        } else {
            md5
        }
    }
}
