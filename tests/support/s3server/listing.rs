//! ListObjectsV2 and ListObjects (v1) responses: paging parameters, continuation tokens and
//! `encoding-type=url`, on top of `store::list`.

use s3s::dto::*;
use s3s::{s3_error, S3Result};

use super::objects::to_i64;
use super::service::with_bucket;
use super::store::{self, Entry, Store};

/// S3's cap on keys per list page.
const MAX_LIST_KEYS: i32 = 1000;

/// `encoding-type=url` as S3 applies it to keys in listings: RFC 3986 unreserved characters
/// and `/` stay, a space becomes `+`, everything else is percent-encoded UTF-8.
pub fn url_encode_key(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn encode_token(marker: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(marker)
}

fn decode_token(token: &str) -> S3Result<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_LIST_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys cannot be negative")),
        Some(n) => Ok(n.min(MAX_LIST_KEYS) as usize),
    }
}

/// Splits a page into the `Contents` and `CommonPrefixes` of a list response.
fn page_to_lists(entries: Vec<Entry>, url: bool) -> (Vec<s3s::dto::Object>, Vec<CommonPrefix>) {
    let enc = |s: String| if url { url_encode_key(&s) } else { s };
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for entry in entries {
        match entry {
            Entry::Object(key, o) => contents.push(s3s::dto::Object {
                key: Some(enc(key)),
                size: Some(to_i64(o.body.len())),
                e_tag: Some(ETag::Strong(o.etag)),
                last_modified: Some(Timestamp::from(o.last_modified)),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                ..Default::default()
            }),
            Entry::CommonPrefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc(p)),
            }),
        }
    }
    (contents, prefixes)
}

fn wants_url(encoding: Option<&EncodingType>) -> S3Result<bool> {
    match encoding {
        None => Ok(false),
        Some(e) if e.as_str() == EncodingType::URL => Ok(true),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request"
        )),
    }
}

pub fn list_v2(store: &Store, input: ListObjectsV2Input) -> S3Result<ListObjectsV2Output> {
    let max = max_keys(input.max_keys)?;
    let url = wants_url(input.encoding_type.as_ref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let marker = match &input.continuation_token {
        Some(t) => Some(decode_token(t)?),
        None => input.start_after.clone(),
    };
    let page = with_bucket(store, &input.bucket, |b| {
        Ok(store::list(
            &b.objects,
            &prefix,
            input.delimiter.as_deref(),
            marker.as_deref(),
            max,
        ))
    })?;
    let next_token = page
        .truncated
        .then(|| page.entries.last().map(|e| encode_token(e.name())))
        .flatten();
    let key_count = page.entries.len() as i32;
    let (contents, prefixes) = page_to_lists(unsorted(store, page.entries), url);
    let enc = |s: Option<String>| {
        if url {
            s.map(|s| url_encode_key(&s))
        } else {
            s
        }
    };
    Ok(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: enc(Some(prefix)),
        delimiter: enc(input.delimiter),
        start_after: enc(input.start_after),
        max_keys: Some(max as i32),
        key_count: Some(key_count),
        continuation_token: input.continuation_token,
        next_continuation_token: next_token,
        is_truncated: Some(page.truncated),
        contents: (!contents.is_empty()).then_some(contents),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    })
}

pub fn list_v1(store: &Store, input: ListObjectsInput) -> S3Result<ListObjectsOutput> {
    let max = max_keys(input.max_keys)?;
    let url = wants_url(input.encoding_type.as_ref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let page = with_bucket(store, &input.bucket, |b| {
        Ok(store::list(
            &b.objects,
            &prefix,
            input.delimiter.as_deref(),
            input.marker.as_deref(),
            max,
        ))
    })?;
    // S3 (v1) only sends NextMarker when a delimiter was given; without one, clients use
    // the last key.
    let next_marker = (page.truncated && input.delimiter.is_some())
        .then(|| page.entries.last().map(|e| e.name().to_owned()))
        .flatten();
    let (contents, prefixes) = page_to_lists(unsorted(store, page.entries), url);
    let enc = |s: Option<String>| {
        if url {
            s.map(|s| url_encode_key(&s))
        } else {
            s
        }
    };
    Ok(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: enc(Some(prefix)),
        delimiter: enc(input.delimiter),
        marker: enc(Some(input.marker.unwrap_or_default())),
        next_marker: enc(next_marker),
        max_keys: Some(max as i32),
        is_truncated: Some(page.truncated),
        contents: (!contents.is_empty()).then_some(contents),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    })
}

/// A page's entries as the server lists them: in key order, reversed when the
/// `UnsortedListings` quirk is on, shuffled in directory-bucket mode (S3 Express lists in
/// no order at all).
fn unsorted(store: &Store, mut entries: Vec<Entry>) -> Vec<Entry> {
    if store.express.is_on() {
        use rand::seq::SliceRandom as _;
        entries.shuffle(&mut rand::thread_rng());
    } else if store.quirks.is_on(super::quirks::Quirk::UnsortedListings) {
        entries.reverse();
    }
    entries
}
