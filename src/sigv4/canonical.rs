//! The canonical request and the string to sign: the exact bytes SigV4 hashes.

use super::crypto::sha256_hex;
use std::collections::BTreeMap;

/// The algorithm name, first line of every string to sign and of the `authorization` value.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Headers in canonical form: the `name:value\n` block and the `;`-joined signed names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalHeaders {
    /// One `name:value\n` line per distinct header name, sorted by name.
    pub block: String,
    /// The sorted lowercase names joined by `;` (the `SignedHeaders` value).
    pub signed: String,
}

/// A header value in canonical form: trimmed, and every run of whitespace (including the
/// line break and indentation of an obsolete folded multi-line value) collapsed to one space.
pub fn canonical_header_value(value: &str) -> String {
    value.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// Canonicalize headers: names lowercased; values canonicalized; repeated names merged
/// into one line with their values joined by `,` in the order given; lines sorted by name.
pub fn canonical_headers<'h, I>(headers: I) -> CanonicalHeaders
where
    I: IntoIterator<Item = (&'h str, &'h str)>,
{
    let mut merged: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        merged
            .entry(name.trim().to_ascii_lowercase())
            .or_default()
            .push(canonical_header_value(value));
    }
    let mut block = String::new();
    let mut names = Vec::with_capacity(merged.len());
    for (name, values) in &merged {
        block.push_str(name);
        block.push(':');
        block.push_str(&values.join(","));
        block.push('\n');
        names.push(name.as_str());
    }
    CanonicalHeaders {
        block,
        signed: names.join(";"),
    }
}

/// The canonical request. `path` is used verbatim (already encoded; S3 never normalizes),
/// except that an empty path means `/`. `canonical_query` is `encode_query`'s output.
pub fn canonical_request(
    method: &str,
    path: &str,
    canonical_query: &str,
    headers: &CanonicalHeaders,
    payload_hash: &str,
) -> String {
    let path = if path.is_empty() { "/" } else { path };
    format!(
        "{method}\n{path}\n{canonical_query}\n{}\n{}\n{payload_hash}",
        headers.block, headers.signed
    )
}

/// The credential scope `YYYYMMDD/region/service/aws4_request`.
pub fn credential_scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// The string to sign: algorithm, timestamp, scope and the hash of the canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lowercased_sorted_and_repeated_values_joined_in_order() {
        let h = canonical_headers([
            ("My-Header1", "value4"),
            ("Host", "example.amazonaws.com"),
            ("my-header1", "value1"),
            ("MY-HEADER1", "value3"),
        ]);
        assert_eq!(
            h.block,
            "host:example.amazonaws.com\nmy-header1:value4,value1,value3\n"
        );
        assert_eq!(h.signed, "host;my-header1");
    }

    #[test]
    fn values_trimmed_collapsed_and_folded() {
        assert_eq!(canonical_header_value("  \"a   b   c\" "), "\"a b c\"");
        assert_eq!(
            canonical_header_value("value1\n  value2\n     value3"),
            "value1 value2 value3"
        );
    }
}
