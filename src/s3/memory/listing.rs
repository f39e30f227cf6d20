//! ListObjectsV2 over the in-memory map: prefix, delimiter roll-up into common prefixes,
//! start-after, and pages chained by opaque continuation tokens.

use std::collections::BTreeMap;

use super::{meta, StoredObject};
use crate::s3::{ListObjectsParams, ListPage};

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
pub(super) fn list_page(
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
