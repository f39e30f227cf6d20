//! What an object carries besides its bytes that a write sets: its user metadata
//! (`x-amz-meta-*`) and the standard headers S3 stores with it (`Content-Type`,
//! `Cache-Control`, …, the storage class).
//!
//! S3 cannot change an object's metadata in place: a change is a copy of the object onto
//! itself with `x-amz-metadata-directive: REPLACE`, which replaces *everything* the write
//! sets. So a [`Metadata`] read from a HEAD is the whole of it, and a change is made to that
//! whole and sent back: every header another tool stored survives a `chmod` made here.
//!
//! This module knows the headers, not what they mean: the filesystem reads modes, owners,
//! times and xattrs out of [`Metadata::user`] (`fs::posix`).

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::mtime;

/// The prefix of user metadata headers.
pub const USER_PREFIX: &str = "x-amz-meta-";

/// Standard headers S3 keeps with an object and returns on HEAD, which a copy with
/// `REPLACE` must send again to keep (`Content-Type` is [`Metadata::content_type`]).
pub const KEPT_HEADERS: [&str; 7] = [
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
    "x-amz-storage-class",
    "x-amz-website-redirect-location",
];

/// S3's limit on user metadata: the UTF-8 bytes of every name (without `x-amz-meta-`) and
/// value together.
pub const USER_METADATA_LIMIT: usize = 2048;

/// The metadata of an object, as a HEAD shows it and a write sets it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Metadata {
    /// `Content-Type`; `None`: the server's default (`binary/octet-stream` on S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// User metadata: names lower-case, without `x-amz-meta-`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
    /// [`KEPT_HEADERS`] the object has, by lower-case name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kept: BTreeMap<String, String>,
}

impl Metadata {
    /// Metadata of a new object of content type `content_type`.
    pub fn with_content_type(content_type: Option<String>) -> Metadata {
        Metadata {
            content_type,
            ..Metadata::default()
        }
    }

    /// The file time kept in `x-amz-meta-mtime` ([`mtime`]), when there is a readable one.
    pub fn mtime(&self) -> Option<SystemTime> {
        self.time("mtime")
    }

    /// A time kept as user metadata `name` (`mtime`, `ctime`, `atime`) in
    /// [`mtime::format`]'s form.
    pub fn time(&self, name: &str) -> Option<SystemTime> {
        self.user.get(name).and_then(|v| mtime::parse(v))
    }

    /// Stores `t` as user metadata `name` ([`mtime::format`]).
    pub fn set_time(&mut self, name: &str, t: SystemTime) {
        self.user.insert(name.to_string(), mtime::format(t));
    }

    /// The bytes S3 counts against [`USER_METADATA_LIMIT`].
    pub fn user_size(&self) -> usize {
        self.user.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// The headers a write sends: `Content-Type`, the kept ones, then the user metadata.
    /// `skip` names headers the caller sends itself (the mount's storage class).
    pub fn headers<'a>(
        &'a self,
        skip: &'a [&'a str],
    ) -> impl Iterator<Item = (String, String)> + 'a {
        let content_type = self
            .content_type
            .iter()
            .map(|v| ("content-type".to_string(), v.clone()));
        let kept = self
            .kept
            .iter()
            .filter(move |(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()));
        let user = self
            .user
            .iter()
            .map(|(k, v)| (format!("{USER_PREFIX}{k}"), v.clone()));
        content_type.chain(kept).chain(user)
    }

    /// Reads the metadata out of an answer's headers, given as (lower-case name, value).
    pub fn from_headers<'h>(headers: impl IntoIterator<Item = (&'h str, &'h str)>) -> Metadata {
        let mut meta = Metadata::default();
        for (name, value) in headers {
            if let Some(user) = name.strip_prefix(USER_PREFIX) {
                meta.user.insert(user.to_string(), value.to_string());
            } else if name == "content-type" {
                meta.content_type = Some(value.to_string());
            } else if KEPT_HEADERS.contains(&name) {
                meta.kept.insert(name.to_string(), value.to_string());
            }
        }
        meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// What a HEAD shows is what a write sends back, `Content-Type` and kept headers too.
    #[test]
    fn headers_round_trip() {
        let meta = Metadata::from_headers([
            ("content-type", "text/plain"),
            ("x-amz-meta-mode", "33188"),
            ("x-amz-meta-other-tool", "kept"),
            ("cache-control", "no-cache"),
            ("x-amz-storage-class", "STANDARD_IA"),
            ("etag", "\"e\""),
            ("content-length", "3"),
        ]);
        assert_eq!(meta.content_type.as_deref(), Some("text/plain"));
        assert_eq!(meta.user.len(), 2);
        let sent: Vec<(String, String)> = meta.headers(&[]).collect();
        let back = Metadata::from_headers(sent.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(back, meta);
        let skipped: Vec<(String, String)> = meta.headers(&["x-amz-storage-class"]).collect();
        assert_eq!(skipped.len(), 4);
    }

    /// Times are kept in the shared `SEC[.NSEC]` form; the size counts names and values.
    #[test]
    fn times_and_size() {
        let mut meta = Metadata::default();
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        meta.set_time("mtime", t);
        assert_eq!(meta.mtime(), Some(t));
        assert_eq!(meta.user["mtime"], "1700000000.000000005");
        assert_eq!(
            meta.user_size(),
            "mtime".len() + "1700000000.000000005".len()
        );
    }
}
