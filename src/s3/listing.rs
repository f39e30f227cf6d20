//! Listing a large directory with several ListObjectsV2 calls at once.
//!
//! A listing's pages are chained by continuation tokens, so a 10,000-key directory costs ten
//! round trips one after the other. `StartAfter` lets a listing begin anywhere, so the key
//! range after the first page can be cut into intervals `(a0, a1], (a1, a2], …, (ak, ∞)`
//! listed side by side: each interval starts after its lower bound and stops at the first
//! entry past its upper bound. The result is the same listing whatever the cut points are
//! — they only decide how much work is wasted — so they are guesses:
//!
//! - Names that end in a number (`t00999`, `IMG_0999.jpg`, `part-00999`) are extrapolated:
//!   the first page covered numbers `n0..=n1`, so the next pages probably end near
//!   `n1 + k·(n1 − n0 + 1)`, and a page that ends exactly on its bound needs no second call.
//! - Anything else is listed page after page, as before.
//!
//! Servers that refuse `StartAfter` (directory buckets: see
//! [`ObjectClient::supports_start_after`]) are listed page after page.
//!
//! Entries met twice (a common prefix reported again after a bound inside it) are merged.

use futures_util::future::try_join_all;

use super::{ListObjectsParams, ListPage, Listing, ObjectClient, S3Error};

/// At most this many intervals are listed at once after the first page: a directory of up
/// to 11 pages of numbered names lists in two rounds.
pub const MAX_INTERVALS: usize = 10;

/// Every entry of a delimited listing, listing key ranges side by side when the first page
/// suggests where the next ones end.
pub async fn list_all<C: ObjectClient>(
    client: &C,
    params: &ListObjectsParams,
) -> Result<Listing, S3Error> {
    if params.max_keys.is_some() || params.start_after.is_some() || !client.supports_start_after() {
        return client.list_objects(params).await;
    }
    let first = client.list_objects_page(params, None).await?;
    let Some(token) = first.next_continuation_token.clone() else {
        return Ok(merge(vec![first]));
    };
    let bounds = match (first_entry(&first), last_entry(&first)) {
        (Some(a), Some(b)) => guess_bounds(&params.prefix, &a, &b),
        _ => Vec::new(),
    };
    if bounds.is_empty() {
        // No guess: the rest page after page, from the first page's token.
        let mut pages = vec![first];
        let mut token = Some(token);
        while let Some(t) = token {
            let page = client.list_objects_page(params, Some(&t)).await?;
            token = page.next_continuation_token.clone();
            pages.push(page);
        }
        return Ok(merge(pages));
    }
    let mut lower = vec![last_entry(&first).unwrap_or_default()];
    lower.extend(bounds.iter().cloned());
    let intervals = lower.iter().enumerate().map(|(i, after)| {
        let upper = bounds.get(i).cloned();
        list_interval(client, params, after.clone(), upper)
    });
    let mut pages = vec![first];
    for interval in try_join_all(intervals).await? {
        pages.extend(interval);
    }
    Ok(merge(pages))
}

/// The entries of `(after, upper]` (`upper: None`: to the end), page after page.
async fn list_interval<C: ObjectClient>(
    client: &C,
    params: &ListObjectsParams,
    after: String,
    upper: Option<String>,
) -> Result<Vec<ListPage>, S3Error> {
    let ranged = ListObjectsParams {
        start_after: Some(after),
        ..params.clone()
    };
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut page = client.list_objects_page(&ranged, token.as_deref()).await?;
        let mut done = page.next_continuation_token.is_none();
        if let Some(upper) = &upper {
            let before = page.objects.len() + page.common_prefixes.len();
            page.objects.retain(|o| o.key <= *upper);
            page.common_prefixes.retain(|p| p <= upper);
            let kept = page.objects.len() + page.common_prefixes.len();
            // Past the bound, or ending exactly on it: the rest belongs to the next interval.
            let on_bound = last_entry(&page).is_some_and(|l| l == *upper);
            done |= kept < before || on_bound;
        }
        token = page.next_continuation_token.take();
        pages.push(page);
        if done {
            return Ok(pages);
        }
    }
}

/// The first page's smallest and largest entries (objects and common prefixes together).
fn first_entry(page: &ListPage) -> Option<String> {
    let o = page.objects.first().map(|o| o.key.as_str());
    let p = page.common_prefixes.first().map(String::as_str);
    [o, p].into_iter().flatten().min().map(str::to_string)
}

fn last_entry(page: &ListPage) -> Option<String> {
    let o = page.objects.last().map(|o| o.key.as_str());
    let p = page.common_prefixes.last().map(String::as_str);
    [o, p].into_iter().flatten().max().map(str::to_string)
}

/// Upper bounds for the intervals after a first page running from `first` to `last`: when
/// both are `<stem><digits><tail>` with the same stem, tail and digit count, the next
/// numbers at the first page's stride, zero-padded to the same width. Empty otherwise.
pub fn guess_bounds(prefix: &str, first: &str, last: &str) -> Vec<String> {
    let (Some(a), Some(b)) = (first.strip_prefix(prefix), last.strip_prefix(prefix)) else {
        return Vec::new();
    };
    let (Some((stem_a, num_a, tail_a)), Some((stem_b, num_b, tail_b))) =
        (split_number(a), split_number(b))
    else {
        return Vec::new();
    };
    if stem_a != stem_b || tail_a != tail_b || num_a.len() != num_b.len() || num_a.len() > 18 {
        return Vec::new();
    }
    let (Ok(n0), Ok(n1)) = (num_a.parse::<u64>(), num_b.parse::<u64>()) else {
        return Vec::new();
    };
    if n1 <= n0 {
        return Vec::new();
    }
    let stride = n1 - n0 + 1;
    let width = num_a.len();
    let max = 10u64.saturating_pow(width as u32) - 1;
    (1..=MAX_INTERVALS as u64 - 1)
        .map_while(|k| n1.checked_add(k.checked_mul(stride)?).filter(|n| *n <= max))
        .map(|n| format!("{prefix}{stem_a}{n:0width$}{tail_a}"))
        .collect()
}

/// `IMG_0042.jpg` → (`IMG_`, `0042`, `.jpg`): the last run of ASCII digits in a name.
fn split_number(name: &str) -> Option<(&str, &str, &str)> {
    let bytes = name.as_bytes();
    let end = bytes.iter().rposition(u8::is_ascii_digit)? + 1;
    let start = bytes[..end]
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |i| i + 1);
    Some((&name[..start], &name[start..end], &name[end..]))
}

/// Pages into one listing, in key order, each entry once.
fn merge(pages: Vec<ListPage>) -> Listing {
    let mut all = Listing::default();
    for page in pages {
        all.objects.extend(page.objects);
        all.common_prefixes.extend(page.common_prefixes);
    }
    all.objects.sort_by(|a, b| a.key.cmp(&b.key));
    all.objects.dedup_by(|a, b| a.key == b.key);
    all.common_prefixes.sort();
    all.common_prefixes.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::memory::MemoryClient;

    fn params(prefix: &str) -> ListObjectsParams {
        ListObjectsParams {
            prefix: prefix.into(),
            delimiter: Some("/".into()),
            start_after: None,
            max_keys: None,
        }
    }

    async fn same_as_sequential(client: &MemoryClient, prefix: &str) -> Listing {
        let fast = list_all(client, &params(prefix)).await.unwrap();
        let slow = client.list_objects(&params(prefix)).await.unwrap();
        let keys = |l: &Listing| l.objects.iter().map(|o| o.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&fast), keys(&slow));
        assert_eq!(fast.common_prefixes, slow.common_prefixes);
        fast
    }

    #[test]
    fn bounds_follow_numbered_names() {
        assert_eq!(
            guess_bounds("tiny/", "tiny/t00000", "tiny/t00999")[..3],
            ["tiny/t01999", "tiny/t02999", "tiny/t03999"]
        );
        assert_eq!(
            guess_bounds("", "IMG_0001.jpg", "IMG_0100.jpg")[0],
            "IMG_0200.jpg"
        );
        assert!(guess_bounds("", "apple", "cherry").is_empty());
        assert!(guess_bounds("", "a1", "b2").is_empty());
        assert!(guess_bounds("", "x1", "x22").is_empty());
        // Never past the widest number the padding can hold.
        assert_eq!(guess_bounds("", "n0", "n4"), ["n9"]);
    }

    /// Numbered keys: the intervals end on page boundaries, one call each.
    #[tokio::test]
    async fn numbered_directory_lists_in_parallel_without_waste() {
        let client = MemoryClient::new().with_page_size(100);
        for i in 0..1000 {
            client.insert(&format!("d/t{i:05}"), b"x".to_vec());
        }
        let listing = list_all(&client, &params("d/")).await.unwrap();
        assert_eq!(listing.objects.len(), 1000);
        // 1 first page + 9 guessed intervals of one page each (the last ends on the
        // directory's last key) + the open rest (empty).
        assert_eq!(client.counters().list_objects, 11);
        same_as_sequential(&client, "d/").await;
    }

    /// Whatever the names, the result is the sequential listing: wrong guesses, gaps,
    /// subdirectories across bounds, names after the last guess.
    #[tokio::test]
    async fn any_directory_lists_exactly() {
        let client = MemoryClient::new().with_page_size(7);
        let mut keys: Vec<String> = (0..40).map(|i| format!("d/f{i:03}")).collect();
        keys.extend((0..30).map(|i| format!("d/f{:03}", 500 + i * 13)));
        keys.extend(
            [
                "d/f021/inner",
                "d/f021x/deep/k",
                "d/f070/a",
                "d/zzz",
                "d/f999z",
            ]
            .map(String::from),
        );
        keys.extend((0..20).map(|i| format!("d/mixed-{i}")));
        keys.push("d/".into());
        for k in &keys {
            client.insert(k, b"x".to_vec());
        }
        same_as_sequential(&client, "d/").await;
        same_as_sequential(&client, "").await;
        same_as_sequential(&client, "d/f0").await;
        // A directory of plain names goes page after page.
        let plain = MemoryClient::new().with_page_size(3);
        for w in ["apple", "banana", "cherry", "date", "elder", "fig", "grape"] {
            plain.insert(&format!("p/{w}"), b"x".to_vec());
        }
        same_as_sequential(&plain, "p/").await;
    }
}
