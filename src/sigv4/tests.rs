//! Unit tests of `sign` and the redacting `Debug` impls.

use super::*;
use std::time::{Duration, UNIX_EPOCH};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "session-token-value";

fn inputs(token: Option<&'static str>) -> SigningInputs<'static> {
    SigningInputs {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: SECRET,
        session_token: token,
        region: "us-east-1",
        service: "s3",
        time: UNIX_EPOCH + Duration::from_secs(1_440_938_160),
    }
}

fn headers() -> Vec<(String, String)> {
    vec![
        ("Host".into(), "bucket.s3.amazonaws.com".into()),
        ("x-amz-content-sha256".into(), EMPTY_SHA256.into()),
    ]
}

fn request<'a>(headers: &'a [(String, String)]) -> HttpRequest<'a> {
    HttpRequest {
        method: "GET",
        path: "/a%20b",
        query: &[],
        headers,
        payload_hash: EMPTY_SHA256,
    }
}

fn header<'s>(signed: &'s Signed, name: &str) -> Option<&'s str> {
    signed
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn session_token_is_added_and_signed() {
    let h = headers();
    let signed = sign(&request(&h), &inputs(Some(TOKEN)));
    assert_eq!(header(&signed, "x-amz-security-token"), Some(TOKEN));
    assert!(signed
        .canonical_request
        .contains(&format!("\nx-amz-security-token:{TOKEN}\n")));
    let auth = header(&signed, "authorization").unwrap_or_default();
    assert!(
        auth.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,")
    );
    let unsigned = sign(&request(&h), &inputs(None));
    assert_eq!(header(&unsigned, "x-amz-security-token"), None);
    assert_ne!(unsigned.signature, signed.signature);
}

#[test]
fn authorization_carries_scope_and_signature() {
    let h = headers();
    let signed = sign(&request(&h), &inputs(None));
    assert_eq!(header(&signed, "x-amz-date"), Some("20150830T123600Z"));
    assert_eq!(
        header(&signed, "authorization"),
        Some(
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={}",
                signed.signature
            )
            .as_str()
        )
    );
    assert!(signed.canonical_request.starts_with("GET\n/a%20b\n\n"));
}

#[test]
fn caller_supplied_signer_headers_are_ignored() {
    let mut h = headers();
    h.push(("X-Amz-Date".into(), "19990101T000000Z".into()));
    h.push(("Authorization".into(), "stale".into()));
    let with_stale = sign(&request(&h), &inputs(None));
    let clean = sign(&request(&headers()), &inputs(None));
    assert_eq!(with_stale.canonical_request, clean.canonical_request);
    assert_eq!(with_stale.signature, clean.signature);
}

#[test]
fn debug_never_shows_secrets() {
    let inputs = inputs(Some(TOKEN));
    let shown = format!("{inputs:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("AKIDEXAMPLE"), "{shown}");

    let h = headers();
    let signed = sign(&request(&h), &inputs);
    let shown = format!("{signed:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(!shown.contains(&signed.signature), "{shown}");
    assert!(!shown.contains("Credential="), "{shown}");
}

#[test]
fn presign_signs_the_token_and_replaces_stale_parameters() {
    let h = vec![("host".to_string(), "bucket.s3.amazonaws.com".to_string())];
    let query = vec![
        ("X-Amz-Signature".to_string(), "stale".to_string()),
        ("versionId".to_string(), "v1".to_string()),
    ];
    let req = HttpRequest {
        query: &query,
        payload_hash: UNSIGNED_PAYLOAD,
        ..request(&h)
    };
    let presigned = presign(&req, &inputs(Some(TOKEN)), Duration::from_secs(900));
    let value = |key: &str| {
        presigned
            .query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(value("X-Amz-Signature"), [presigned.signature.as_str()]);
    assert_eq!(value("X-Amz-Security-Token"), [TOKEN]);
    assert_eq!(value("X-Amz-Expires"), ["900"]);
    assert_eq!(value("versionId"), ["v1"]);
    assert!(presigned
        .canonical_request
        .contains(&format!("X-Amz-Security-Token={TOKEN}&")));
    let shown = format!("{presigned:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(!shown.contains(&presigned.signature), "{shown}");
}

#[test]
fn streaming_seed_debug_hides_the_signing_key() {
    let h = headers();
    let seed = seed_signature(&request(&h), &inputs(None));
    assert!(seed
        .signed
        .canonical_request
        .ends_with(&format!("\n{STREAMING_PAYLOAD}")));
    let shown = format!("{seed:?}");
    assert!(!shown.contains(&hex::encode(seed.signing_key)), "{shown}");
    assert!(
        !shown.contains(&format!("{:?}", seed.signing_key)),
        "{shown}"
    );
}
