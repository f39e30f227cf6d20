//! SigV4 of requests to directory buckets (`express.rs`): the signature recomputed here,
//! independently of the client's signer (as `x-amz-content-sha256` states the payload), and
//! a checked request signed again with the server's own key for service `s3`, which is what
//! s3s 0.14 verifies.

use std::time::SystemTime;

use hmac::{Hmac, KeyInit, Mac};
use hyper::header::HeaderValue;
use hyper::http::request::Parts;
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

use super::express::{ServerKey, SESSION_TOKEN_HEADER};

/// Signs `parts` again with the server's own key for service `s3`, which s3s verifies.
pub fn resign(parts: &mut Parts, key: &ServerKey) {
    let hash = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(s3rolefs::sigv4::UNSIGNED_PAYLOAD)
        .to_owned();
    let host = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let query: Vec<(String, String)> = query_pairs(parts.uri.query().unwrap_or(""))
        .into_iter()
        .map(|(n, v)| (decode(&n), decode(&v)))
        .collect();
    let headers = vec![
        ("host".to_owned(), host),
        ("x-amz-content-sha256".to_owned(), hash.clone()),
    ];
    let signed = s3rolefs::sigv4::sign(
        &s3rolefs::sigv4::HttpRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: &query,
            headers: &headers,
            payload_hash: &hash,
        },
        &s3rolefs::sigv4::SigningInputs {
            access_key_id: &key.access_key,
            secret_access_key: &key.secret_key,
            session_token: None,
            region: &key.region,
            service: "s3",
            time: SystemTime::now(),
        },
    );
    parts.headers.remove(SESSION_TOKEN_HEADER);
    for (name, value) in signed.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            parts.headers.insert(name, v);
        }
    }
}

pub struct Authorization {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v.to_owned()),
            "SignedHeaders" => signed = Some(v.to_owned()),
            "Signature" => signature = Some(v.to_owned()),
            _ => {}
        }
    }
    let credential = credential?;
    let mut scope = credential.split('/');
    Some(Authorization {
        access_key: scope.next()?.to_owned(),
        date: scope.next()?.to_owned(),
        region: scope.next()?.to_owned(),
        service: scope.next()?.to_owned(),
        signed_headers: signed?.split(';').map(str::to_owned).collect(),
        signature: signature?,
    })
}

/// The raw `name=value` pairs of a query (`name` alone is `name=`).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (n.to_owned(), v.to_owned())
        })
        .collect()
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Recomputes the SigV4 signature of the request (headers and query as sent, the payload
/// hash as its `x-amz-content-sha256` states), independently of the client's signer.
pub fn verify(parts: &Parts, auth: &Authorization, secret: &str) -> bool {
    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        let value = parts
            .headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(",");
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(amz_date), Some(payload_hash)) =
        (header("x-amz-date"), header("x-amz-content-sha256"))
    else {
        return false;
    };
    let mut pairs = query_pairs(parts.uri.query().unwrap_or(""));
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_request = format!(
        "{}\n{}\n{query}\n{canonical_headers}\n{}\n{payload_hash}",
        parts.method,
        parts.uri.path(),
        auth.signed_headers.join(";"),
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    for part in [auth.region.as_str(), auth.service.as_str(), "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    hex::encode(hmac(&key, string_to_sign.as_bytes())) == auth.signature
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("hmac takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}
