//! AWS URI encoding of paths and query strings, and the canonical query string.
//!
//! The canonical query string is also the string the client sends on the wire, so the
//! request S3 receives and the request we signed can never disagree about encoding.

/// AWS URI encoding: unreserved `A-Za-z0-9-_.~` are kept, every other UTF-8 byte becomes
/// `%XX` with uppercase hex. `/` is kept unless `encode_slash` (object keys keep their
/// slashes in the path; query keys and values encode them).
pub fn uri_encode(input: &str, encode_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(input.len());
    for &byte in input.as_bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || (byte == b'/' && !encode_slash);
        if keep {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

/// The canonical query string from DECODED pairs: key and value each `uri_encode`d with `/`
/// encoded, sorted by encoded key then encoded value (so repeated keys are ordered too),
/// joined as `k=v` with `&`. A value-less sub-resource such as `?lifecycle` is `("lifecycle",
/// "")` and becomes `lifecycle=`, which S3 accepts on the wire and requires in the signature.
pub fn encode_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unreserved_characters_are_kept() {
        let unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        assert_eq!(uri_encode(unreserved, true), unreserved);
    }

    #[test]
    fn reserved_characters_are_percent_encoded_uppercase() {
        assert_eq!(uri_encode("a b", false), "a%20b");
        assert_eq!(uri_encode("a+b", false), "a%2Bb");
        assert_eq!(uri_encode("100%", false), "100%25");
        assert_eq!(uri_encode("test$file.text", false), "test%24file.text");
        assert_eq!(uri_encode("=&?#:@", true), "%3D%26%3F%23%3A%40");
    }

    #[test]
    fn slash_is_kept_or_encoded_per_flag() {
        assert_eq!(uri_encode("/dir/key", false), "/dir/key");
        assert_eq!(uri_encode("/dir/key", true), "%2Fdir%2Fkey");
    }

    #[test]
    fn unicode_is_encoded_as_utf8_bytes() {
        assert_eq!(uri_encode("ሴ", false), "%E1%88%B4");
        assert_eq!(uri_encode("é", false), "%C3%A9");
    }

    #[test]
    fn query_is_sorted_by_encoded_key_then_value() {
        let query = pairs(&[
            ("prefix", "J"),
            ("max-keys", "2"),
            ("Param", "b"),
            ("Param", "a"),
            ("ሴ", "x"),
        ]);
        assert_eq!(
            encode_query(&query),
            "%E1%88%B4=x&Param=a&Param=b&max-keys=2&prefix=J"
        );
    }

    #[test]
    fn query_encodes_slash_and_keeps_valueless_keys() {
        let query = pairs(&[("lifecycle", ""), ("prefix", "a/b c")]);
        assert_eq!(encode_query(&query), "lifecycle=&prefix=a%2Fb%20c");
        assert_eq!(encode_query(&[]), "");
    }
}
