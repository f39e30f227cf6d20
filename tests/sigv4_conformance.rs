//! Conformance of `s3rolefs::sigv4` against AWS's own SigV4 test vectors: the classic
//! `aws4_testsuite` (via botocore), the current CRT `aws-signing-test-suite/v4`
//! (via aws-c-auth) and the S3 API Reference worked examples. See `SOURCE.md` next to
//! the data for provenance and known quirks.
//!
//! Every case directory is visited. A case either matches (canonical request, string to
//! sign and signature) or is listed in `SKIPS` with the reason it does not apply to S3;
//! anything else fails the test. A skipped case that starts matching fails too, so the
//! list cannot go stale.

use percent_encoding::percent_decode_str;
use s3rolefs::sigv4::{self, HttpRequest, SigningInputs};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/conformance/sigv4");

/// Fewer checked cases than this means the data or the walk is broken, not that we pass.
const MIN_CHECKED: usize = 25;

const NORMALIZES: &str = "S3 never normalizes paths: `.`/`..` segments and repeated \
                          slashes are part of real keys (normalize-path.txt)";
const TOKEN_AFTER: &str = "signs without the session token and adds it afterwards; S3 \
                           requires the token signed (the post-sts-header-before form)";

/// Cases that do not apply to S3, by path relative to `DATA`, with the reason.
const SKIPS: &[(&str, &str)] = &[
    ("aws4_testsuite/normalize-path/get-relative", NORMALIZES),
    (
        "aws4_testsuite/normalize-path/get-relative-relative",
        NORMALIZES,
    ),
    ("aws4_testsuite/normalize-path/get-slash", NORMALIZES),
    (
        "aws4_testsuite/normalize-path/get-slash-dot-slash",
        NORMALIZES,
    ),
    (
        "aws4_testsuite/normalize-path/get-slash-pointless-dot",
        NORMALIZES,
    ),
    ("aws4_testsuite/normalize-path/get-slashes", NORMALIZES),
    (
        "aws4_testsuite/post-sts-token/post-sts-header-after",
        TOKEN_AFTER,
    ),
    (
        "aws-signing-test-suite/v4/get-relative-normalized",
        NORMALIZES,
    ),
    (
        "aws-signing-test-suite/v4/get-relative-relative-normalized",
        NORMALIZES,
    ),
    ("aws-signing-test-suite/v4/get-slash-normalized", NORMALIZES),
    (
        "aws-signing-test-suite/v4/get-slash-dot-slash-normalized",
        NORMALIZES,
    ),
    (
        "aws-signing-test-suite/v4/get-slash-pointless-dot-normalized",
        NORMALIZES,
    ),
    (
        "aws-signing-test-suite/v4/get-slashes-normalized",
        NORMALIZES,
    ),
    (
        "aws-signing-test-suite/v4/post-sts-header-after",
        TOKEN_AFTER,
    ),
];

/// Fixed inputs of the classic suite (botocore's harness; SOURCE.md).
const CLASSIC_KEY_ID: &str = "AKIDEXAMPLE";
const CLASSIC_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const CLASSIC_TIME: u64 = 1_440_938_160; // 2015-08-30T12:36:00Z
const CLASSIC_REGION: &str = "us-east-1";
const CLASSIC_SERVICE: &str = "service";

/// A request file parsed into what `sigv4::sign` takes.
struct ParsedRequest {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl ParsedRequest {
    fn as_http<'a>(&'a self, payload_hash: &'a str) -> HttpRequest<'a> {
        HttpRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            payload_hash,
        }
    }
}

/// Parse a suite request: request line, headers (a line starting with whitespace
/// continues the previous value, kept with its line break so the signer must fold it),
/// blank line, body. The suites write paths raw (`/ሴ`, `/example space/`); S3 sends a key
/// encoded once, so the path is `uri_encode`d exactly like the client encodes keys. The
/// query is written encoded; it is decoded here because the signer takes decoded pairs.
fn parse_request(text: &str) -> ParsedRequest {
    let (head, body) = match text.split_once("\n\n") {
        Some((head, body)) => (head, body.as_bytes().to_vec()),
        None => (text.trim_end_matches('\n'), Vec::new()),
    };
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let (method, rest) = request_line.split_once(' ').unwrap();
    // The target may contain a raw space (get-space), so the version is cut from the end.
    let target = rest
        .rsplit_once(" HTTP/")
        .map_or(rest, |(target, _)| target);
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));

    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().unwrap();
            last.1.push('\n');
            last.1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_string(), value.to_string()));
        }
    }
    ParsedRequest {
        method: method.to_string(),
        path: sigv4::uri_encode(raw_path, false),
        query: decode_query(raw_query),
        headers,
        body,
    }
}

fn decode_query(raw: &str) -> Vec<(String, String)> {
    let decode = |s: &str| percent_decode_str(s).decode_utf8().unwrap().into_owned();
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Expected-file contents without the trailing line break some files carry.
fn expected(path: &Path) -> String {
    read(path).trim_end_matches(['\n', '\r']).to_string()
}

/// Compare one produced value with one expected value; on mismatch return a diff-like text.
fn compare(what: &str, got: &str, want: &str) -> Option<String> {
    if got == want {
        return None;
    }
    let mut out = format!("  {what} differs:\n");
    let (got_lines, want_lines): (Vec<_>, Vec<_>) = (got.lines().collect(), want.lines().collect());
    for i in 0..got_lines.len().max(want_lines.len()) {
        let (g, w) = (got_lines.get(i), want_lines.get(i));
        if g == w {
            let _ = writeln!(out, "      {}", g.unwrap_or(&""));
        } else {
            if let Some(w) = w {
                let _ = writeln!(out, "    - {w}");
            }
            if let Some(g) = g {
                let _ = writeln!(out, "    + {g}");
            }
        }
    }
    Some(out)
}

/// Result of checking one case in one signing form.
struct Outcome {
    name: String,
    failures: Vec<String>,
}

fn header_value<'s>(signed: &'s sigv4::Signed, name: &str) -> &'s str {
    signed
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, v)| v.as_str())
}

/// A classic-suite case: `<dir>/<case>.{req,creq,sts,authz}`. The signature is checked
/// against `.authz`, never `.sreq`: the `.sreq` of get-vanilla-with-session-token carries a
/// garbled signature (SOURCE.md); `.sreq` is only read for the token.
fn check_classic(dir: &Path, name: &str) -> Vec<Outcome> {
    let stem = dir.file_name().unwrap().to_string_lossy().into_owned();
    let file = |ext: &str| dir.join(format!("{stem}.{ext}"));
    let req = parse_request(&read(&file("req")));
    let creq = expected(&file("creq"));
    // The token, where used, is the one the expected canonical request signs or, for
    // post-sts-header-after (token added after signing), the one the signed request sends.
    let sreq = read(&file("sreq"));
    let token = creq
        .lines()
        .find_map(|line| line.strip_prefix("x-amz-security-token:"))
        .or_else(|| {
            sreq.lines()
                .find_map(|line| line.strip_prefix("X-Amz-Security-Token:"))
        });
    let inputs = SigningInputs {
        access_key_id: CLASSIC_KEY_ID,
        secret_access_key: CLASSIC_SECRET,
        session_token: token,
        region: CLASSIC_REGION,
        service: CLASSIC_SERVICE,
        time: UNIX_EPOCH + Duration::from_secs(CLASSIC_TIME),
    };
    // The .req files carry X-Amz-Date (and sometimes the token) already; they go in as
    // given, which also proves the signer ignores caller copies of the headers it owns.
    let payload_hash = sigv4::sha256_hex(&req.body);
    let signed = sigv4::sign(&req.as_http(&payload_hash), &inputs);
    let failures = [
        compare("canonical request", &signed.canonical_request, &creq),
        compare(
            "string to sign",
            &signed.string_to_sign,
            &expected(&file("sts")),
        ),
        compare(
            "authorization",
            header_value(&signed, "authorization"),
            &expected(&file("authz")),
        ),
    ];
    vec![Outcome {
        name: format!("{name} [header]"),
        failures: failures.into_iter().flatten().collect(),
    }]
}

/// `context.json` of a CRT-suite case.
struct Context {
    key_id: String,
    secret: String,
    token: Option<String>,
    region: String,
    service: String,
    time: SystemTime,
    sign_body: bool,
    expires: Duration,
}

fn parse_context(path: &Path) -> Context {
    let json: serde_json::Value = serde_json::from_str(&read(path)).unwrap();
    let text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    let creds = &json["credentials"];
    let timestamp = json["timestamp"].as_str().unwrap();
    let time =
        time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
            .unwrap();
    Context {
        key_id: text(&creds["access_key_id"]),
        secret: text(&creds["secret_access_key"]),
        token: creds["token"].as_str().map(str::to_string),
        region: text(&json["region"]),
        service: text(&json["service"]),
        time: time.into(),
        sign_body: json["sign_body"].as_bool().unwrap_or(false),
        expires: Duration::from_secs(json["expiration_in_seconds"].as_u64().unwrap()),
    }
}

/// A CRT-suite case: `request.txt` + `context.json`, checked in the header form
/// (`header-*.txt`) and the presigned query form (`query-*.txt`).
fn check_crt(dir: &Path, name: &str) -> Vec<Outcome> {
    let ctx = parse_context(&dir.join("context.json"));
    let req = parse_request(&read(&dir.join("request.txt")));
    let inputs = SigningInputs {
        access_key_id: &ctx.key_id,
        secret_access_key: &ctx.secret,
        session_token: ctx.token.as_deref(),
        region: &ctx.region,
        service: &ctx.service,
        time: ctx.time,
    };
    let payload_hash = sigv4::sha256_hex(&req.body);
    // `sign_body` is the CRT's switch for signing `x-amz-content-sha256` in the header
    // form, which the S3 client always does (it passes the header in `headers`).
    let mut headers = req.headers.clone();
    if ctx.sign_body {
        headers.push(("x-amz-content-sha256".into(), payload_hash.clone()));
    }
    let http = HttpRequest {
        headers: &headers,
        ..req.as_http(&payload_hash)
    };
    let signed = sigv4::sign(&http, &inputs);
    let want_signature = expected(&dir.join("header-signature.txt"));
    let failures = [
        compare(
            "canonical request",
            &signed.canonical_request,
            &expected(&dir.join("header-canonical-request.txt")),
        ),
        compare(
            "string to sign",
            &signed.string_to_sign,
            &expected(&dir.join("header-string-to-sign.txt")),
        ),
        compare("signature", &signed.signature, &want_signature),
        compare(
            "authorization ends with the signature",
            header_value(&signed, "authorization")
                .rsplit_once("Signature=")
                .map_or("", |(_, s)| s),
            &want_signature,
        ),
    ];
    let header_form = Outcome {
        name: format!("{name} [header]"),
        failures: failures.into_iter().flatten().collect(),
    };
    vec![
        header_form,
        check_crt_query(dir, name, &req, &inputs, ctx.expires),
    ]
}

/// The presigned form of a CRT case. The signed request lists the query in its own order;
/// any order is valid on the wire, so the pairs are compared as sets.
fn check_crt_query(
    dir: &Path,
    name: &str,
    req: &ParsedRequest,
    inputs: &SigningInputs<'_>,
    expires: Duration,
) -> Outcome {
    let payload_hash = sigv4::sha256_hex(&req.body);
    let presigned = sigv4::presign(&req.as_http(&payload_hash), inputs, expires);
    let signed_request = read(&dir.join("query-signed-request.txt"));
    let target = signed_request
        .lines()
        .next()
        .and_then(|line| line.split_once(' '))
        .and_then(|(_, rest)| rest.rsplit_once(" HTTP/"))
        .map_or("", |(target, _)| target);
    let mut want_query = decode_query(target.split_once('?').map_or("", |(_, q)| q));
    want_query.sort();
    let mut got_query = presigned.query.clone();
    got_query.sort();
    let as_lines = |q: &[(String, String)]| {
        q.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let failures = [
        compare(
            "canonical request",
            &presigned.canonical_request,
            &expected(&dir.join("query-canonical-request.txt")),
        ),
        compare(
            "string to sign",
            &presigned.string_to_sign,
            &expected(&dir.join("query-string-to-sign.txt")),
        ),
        compare(
            "signature",
            &presigned.signature,
            &expected(&dir.join("query-signature.txt")),
        ),
        compare(
            "signed request query (sorted)",
            &as_lines(&got_query),
            &as_lines(&want_query),
        ),
    ];
    Outcome {
        name: format!("{name} [query]"),
        failures: failures.into_iter().flatten().collect(),
    }
}

/// Every case directory under `root`, recursively: one holding a `request.txt` or a
/// `<dirname>.req`.
fn case_dirs(root: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for dir in entries {
        let stem = dir.file_name().unwrap().to_string_lossy().into_owned();
        if dir.join("request.txt").is_file() || dir.join(format!("{stem}.req")).is_file() {
            out.push(dir);
        } else {
            case_dirs(&dir, out);
        }
    }
}

#[test]
fn aws_sigv4_test_suites() {
    let data = Path::new(DATA);
    let mut dirs = Vec::new();
    case_dirs(&data.join("aws4_testsuite"), &mut dirs);
    case_dirs(&data.join("aws-signing-test-suite/v4"), &mut dirs);

    let mut checked = Vec::new();
    let mut skipped = Vec::new();
    let mut problems = Vec::new();
    for dir in &dirs {
        let name = dir
            .strip_prefix(data)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let outcomes = if dir.join("request.txt").is_file() {
            check_crt(dir, &name)
        } else {
            check_classic(dir, &name)
        };
        let skip = SKIPS.iter().find(|(skip, _)| *skip == name);
        for outcome in outcomes {
            match (skip, outcome.failures.is_empty()) {
                (None, true) => checked.push(outcome.name),
                (None, false) => problems.push(format!(
                    "{} FAILED:\n{}",
                    outcome.name,
                    outcome.failures.join("")
                )),
                (Some((_, reason)), false) => skipped.push(format!("{} ({reason})", outcome.name)),
                (Some(_), true) => problems.push(format!(
                    "{} is in SKIPS but now matches: remove the stale skip",
                    outcome.name
                )),
            }
        }
    }
    for (skip, _) in SKIPS {
        if !dirs
            .iter()
            .any(|d| d.strip_prefix(data).ok() == Some(Path::new(skip)))
        {
            problems.push(format!("SKIPS names {skip}, which is not a case directory"));
        }
    }

    let summary = format!(
        "sigv4 conformance: checked {} cases, skipped {}",
        checked.len(),
        skipped.len()
    );
    println!("{summary}");
    for name in &checked {
        println!("  ok    {name}");
    }
    for line in &skipped {
        println!("  skip  {line}");
    }
    assert!(problems.is_empty(), "{summary}\n{}", problems.join("\n"));
    assert!(
        checked.len() >= MIN_CHECKED,
        "{summary}: expected at least {MIN_CHECKED} checked cases"
    );
}

/// The S3 API Reference worked examples (`s3-docs-examples/vectors.json`).
fn s3_vectors() -> serde_json::Value {
    let path = Path::new(DATA).join("s3-docs-examples/vectors.json");
    serde_json::from_str(&read(&path)).unwrap()
}

fn s3_inputs(v: &serde_json::Value) -> (String, String, String, String, SystemTime) {
    let text = |x: &serde_json::Value| x.as_str().unwrap().to_string();
    let amz = text(&v["amz_date"]);
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let time = time::PrimitiveDateTime::parse(&amz, &format)
        .unwrap()
        .assume_utc();
    (
        text(&v["credentials"]["access_key_id"]),
        text(&v["credentials"]["secret_access_key"]),
        text(&v["region"]),
        text(&v["service"]),
        time.into(),
    )
}

/// The vector's headers as the S3 client would pass them (`x-amz-date` included: the
/// signer ignores caller copies of the headers it sets).
fn vector_headers(case: &serde_json::Value) -> Vec<(String, String)> {
    case["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// The vector's canonical query as decoded pairs, checking `encode_query` restores it.
fn vector_query(case: &serde_json::Value, name: &str) -> Vec<(String, String)> {
    let canonical = case["canonical_query"].as_str().unwrap();
    let query = decode_query(canonical);
    assert_eq!(
        sigv4::encode_query(&query),
        canonical,
        "{name}: canonical query"
    );
    query
}

/// The wire path of a vector: a raw key is encoded once, as the client does.
fn vector_path(case: &serde_json::Value, name: &str) -> String {
    let canonical = case["canonical_uri"].as_str().unwrap().to_string();
    if let Some(key) = case["raw_key"].as_str() {
        let encoded = format!("/{}", sigv4::uri_encode(key, false));
        assert_eq!(encoded, canonical, "{name}: key encoded once");
    }
    canonical
}

#[test]
fn s3_single_chunk_header_examples() {
    let v = s3_vectors();
    assert_eq!(
        sigv4::EMPTY_SHA256,
        v["empty_payload_sha256"].as_str().unwrap()
    );
    let (key_id, secret, region, service, time) = s3_inputs(&v);
    let inputs = SigningInputs {
        access_key_id: &key_id,
        secret_access_key: &secret,
        session_token: None,
        region: &region,
        service: &service,
        time,
    };
    let cases = v["header_signed"].as_array().unwrap();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let payload_hash = case["payload_hash"].as_str().unwrap();
        if let Some(body) = case["body_utf8"].as_str() {
            assert_eq!(sigv4::sha256_hex(body.as_bytes()), payload_hash, "{name}");
        }
        let headers = vector_headers(case);
        let query = vector_query(case, name);
        let path = vector_path(case, name);
        let req = HttpRequest {
            method: case["method"].as_str().unwrap(),
            path: &path,
            query: &query,
            headers: &headers,
            payload_hash,
        };
        let signed = sigv4::sign(&req, &inputs);
        assert_eq!(
            sigv4::sha256_hex(signed.canonical_request.as_bytes()),
            case["canonical_request_sha256"].as_str().unwrap(),
            "{name}: canonical request hash; ours:\n{}",
            signed.canonical_request
        );
        assert_eq!(
            signed.signature,
            case["signature"].as_str().unwrap(),
            "{name}"
        );
        let want_auth = format!(
            "AWS4-HMAC-SHA256 Credential={key_id}/{}, SignedHeaders={}, Signature={}",
            v["scope"].as_str().unwrap(),
            case["signed_headers"].as_str().unwrap(),
            signed.signature
        );
        assert_eq!(header_value(&signed, "authorization"), want_auth, "{name}");
        println!("s3 example ok: {name}");
    }
    assert_eq!(cases.len(), 4, "all four single-chunk examples checked");
}

#[test]
fn s3_presigned_url_example() {
    let v = s3_vectors();
    let (key_id, secret, region, service, time) = s3_inputs(&v);
    let inputs = SigningInputs {
        access_key_id: &key_id,
        secret_access_key: &secret,
        session_token: None,
        region: &region,
        service: &service,
        time,
    };
    let cases = v["presigned"].as_array().unwrap();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        // The expected canonical query holds only the X-Amz-* parameters presign adds.
        let want_query = vector_query(case, name);
        let expires = want_query
            .iter()
            .find(|(k, _)| k == "X-Amz-Expires")
            .map(|(_, v)| v.parse::<u64>().unwrap())
            .unwrap();
        let headers = vector_headers(case);
        let path = vector_path(case, name);
        let req = HttpRequest {
            method: case["method"].as_str().unwrap(),
            path: &path,
            query: &[],
            headers: &headers,
            payload_hash: case["payload_hash"].as_str().unwrap(),
        };
        let signed = sigv4::presign(&req, &inputs, Duration::from_secs(expires));
        assert_eq!(
            sigv4::sha256_hex(signed.canonical_request.as_bytes()),
            case["canonical_request_sha256"].as_str().unwrap(),
            "{name}: canonical request hash; ours:\n{}",
            signed.canonical_request
        );
        assert_eq!(
            signed.signature,
            case["signature"].as_str().unwrap(),
            "{name}"
        );
        let mut wire = want_query.clone();
        wire.push(("X-Amz-Signature".into(), signed.signature.clone()));
        assert_eq!(
            sigv4::encode_query(&signed.query),
            sigv4::encode_query(&wire),
            "{name}: query to put on the wire"
        );
        println!("s3 example ok: {name}");
    }
    assert_eq!(cases.len(), 1, "the presigned example checked");
}

#[test]
fn s3_chunked_upload_example() {
    let v = s3_vectors();
    let (key_id, secret, region, service, time) = s3_inputs(&v);
    let inputs = SigningInputs {
        access_key_id: &key_id,
        secret_access_key: &secret,
        session_token: None,
        region: &region,
        service: &service,
        time,
    };
    let case = &v["chunked_upload"];
    let name = case["name"].as_str().unwrap();
    let headers = vector_headers(case);
    let path = vector_path(case, name);
    assert_eq!(
        case["payload_hash"].as_str().unwrap(),
        sigv4::STREAMING_PAYLOAD
    );
    let req = HttpRequest {
        method: case["method"].as_str().unwrap(),
        path: &path,
        query: &[],
        headers: &headers,
        payload_hash: sigv4::STREAMING_PAYLOAD,
    };
    let seed = sigv4::seed_signature(&req, &inputs);
    assert_eq!(seed.amz_date, v["amz_date"].as_str().unwrap());
    assert_eq!(seed.scope, v["scope"].as_str().unwrap());
    assert_eq!(
        seed.signed.signature,
        case["seed_signature"].as_str().unwrap(),
        "{name}: seed; canonical request:\n{}",
        seed.signed.canonical_request
    );
    assert!(
        header_value(&seed.signed, "authorization").contains(&format!(
            "SignedHeaders={},",
            case["signed_headers"].as_str().unwrap()
        ))
    );

    let mut previous = seed.signed.signature.clone();
    let mut decoded_len = 0u64;
    let chunks = case["chunks"].as_array().unwrap();
    for (i, chunk) in chunks.iter().enumerate() {
        let size = usize::try_from(chunk["size"].as_u64().unwrap()).unwrap();
        let data = vec![b'a'; size];
        let signature = sigv4::chunk_signature(
            &seed.signing_key,
            &seed.amz_date,
            &seed.scope,
            &previous,
            &data,
        );
        assert_eq!(
            signature,
            chunk["signature"].as_str().unwrap(),
            "{name}: chunk {i}"
        );
        assert!(sigv4::chunk_header(size, &signature)
            .ends_with(&format!(";chunk-signature={signature}\r\n")));
        decoded_len += chunk["size"].as_u64().unwrap();
        previous = signature;
    }
    assert_eq!(chunks.len(), 3, "all three chunks checked");
    let header = |n: &str| case["headers"][n].as_str().unwrap().parse::<u64>().unwrap();
    assert_eq!(decoded_len, header("x-amz-decoded-content-length"));
    let first_chunk = chunks[0]["size"].as_u64().unwrap();
    assert_eq!(
        sigv4::chunked_encoded_length(decoded_len, first_chunk),
        header("content-length"),
        "{name}: encoded content-length"
    );
    println!("s3 example ok: {name} (seed + {} chunks)", chunks.len());
}
