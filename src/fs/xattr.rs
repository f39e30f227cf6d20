//! Extended attributes: which names the mount keeps, and the form s3fs-fuse stores them in.
//!
//! The `user.` namespace is stored with the object in `x-amz-meta-xattr`: a JSON object of
//! name → base64 of the value, URL-encoded as a whole (`{"user.a":"aGVsbG8="}` travels as
//! `%7B%22user.a%22%3A%22aGVsbG8%3D%22%7D`). An object without attributes has no header.
//! `security.`, `trusted.` and `system.` names are not kept: the kernel asks for
//! `security.capability` before every write, and that answer never needs S3.
//!
//! Read-only names beyond s3fs ([`S3_FACTS`]) show what S3 says of the object
//! (`user.s3.etag`, …); they are readable by name and left out of `listxattr`, so `cp -a`
//! and `rsync -X` do not copy them.

use std::collections::BTreeMap;

use base64::Engine;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Names of the S3 facts readable as attributes.
pub const S3_FACTS: [&str; 5] = [
    "user.s3.etag",
    "user.s3.content-type",
    "user.s3.storage-class",
    "user.s3.version-id",
    "user.s3.key",
];

/// What s3fs escapes (its `urlEncodePath`): everything but letters, digits and `.-_~/`.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Where a name belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// `user.*`: kept with the object.
    User,
    /// One of [`S3_FACTS`]: read-only.
    S3Fact,
    /// Any other namespace: not supported on this filesystem.
    Other,
}

pub fn namespace(name: &str) -> Namespace {
    if S3_FACTS.contains(&name) {
        Namespace::S3Fact
    } else if name.starts_with("user.") && name.len() > "user.".len() {
        Namespace::User
    } else {
        Namespace::Other
    }
}

/// The attributes an `x-amz-meta-xattr` value holds. A value that does not decode (not
/// JSON, not base64) yields what could be read of it, never an error: the object stays
/// usable.
pub fn decode(stored: &str) -> BTreeMap<String, Vec<u8>> {
    let text = percent_decode_str(stored).decode_utf8_lossy();
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&text)
    else {
        log::debug!("x-amz-meta-xattr is not a JSON object; its attributes are not shown");
        return BTreeMap::new();
    };
    let engine = base64::engine::general_purpose::STANDARD;
    map.into_iter()
        .filter_map(|(name, value)| {
            let value = value.as_str()?;
            Some((name, engine.decode(value).ok()?))
        })
        .collect()
}

/// The `x-amz-meta-xattr` value of `attrs`; `None` when there are none (no header).
pub fn encode(attrs: &BTreeMap<String, Vec<u8>>) -> Option<String> {
    if attrs.is_empty() {
        return None;
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let map: serde_json::Map<String, serde_json::Value> = attrs
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(engine.encode(v))))
        .collect();
    let json = serde_json::Value::Object(map).to_string();
    Some(utf8_percent_encode(&json, ESCAPED).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented example, both ways.
    #[test]
    fn s3fs_form() {
        let attrs = BTreeMap::from([("user.a".to_string(), b"hello".to_vec())]);
        let stored = encode(&attrs).unwrap();
        assert_eq!(stored, "%7B%22user.a%22%3A%22aGVsbG8%3D%22%7D");
        assert_eq!(decode(&stored), attrs);
        // Unencoded JSON reads too.
        assert_eq!(decode("{\"user.a\":\"aGVsbG8=\"}"), attrs);
        assert_eq!(encode(&BTreeMap::new()), None);
    }

    /// Binary values survive; garbage decodes to nothing rather than failing.
    #[test]
    fn binary_and_garbage() {
        let attrs = BTreeMap::from([("user.bin".to_string(), vec![0u8, 255, 10, 37, 255, 254])]);
        let stored = encode(&attrs).unwrap();
        // Base64's `/` stays as it is, as s3fs writes it.
        assert!(stored.contains("/"), "{stored}");
        assert_eq!(decode(&stored), attrs);
        assert!(decode("%7Bnot json").is_empty());
    }

    #[test]
    fn namespaces() {
        assert_eq!(namespace("user.x"), Namespace::User);
        assert_eq!(namespace("user."), Namespace::Other);
        assert_eq!(namespace("user.s3.etag"), Namespace::S3Fact);
        assert_eq!(namespace("security.capability"), Namespace::Other);
        assert_eq!(namespace("trusted.x"), Namespace::Other);
    }
}
