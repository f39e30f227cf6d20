//! Conformance of the IMDS endpoint resolution and the container URI resolution with the
//! AWS SDKs' shared test data (smithy-rs `aws-config/test-data`, see `SOURCE.md` next to the
//! data): `imds-config/imds-endpoint-tests.json` and `ecs-tests.json`. Every case is run; the
//! behaviour is compared (which URL, or that it is an error and of which kind), not the exact
//! error strings, which are the Rust SDK's.
//!
//! It also replays the recorded IMDS and ECS traffic of the `default-credential-provider-chain`
//! cases (`imds_*`, `ecs_*`) against our providers: a scripted server on 127.0.0.1 expects
//! the recorded requests in order and answers the recorded responses. The ECS agent's
//! address cannot be pointed elsewhere, so its relative URI is replayed as the same path
//! under `AWS_CONTAINER_CREDENTIALS_FULL_URI` on 127.0.0.1.

mod support;

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use s3rolefs::credentials::container::ContainerProvider;
use s3rolefs::credentials::imds::{ImdsConfig, ImdsOverrides, ImdsProvider};
use s3rolefs::credentials::{Credentials, CredentialsError, ProvideCredentials, ProviderContext};
use serde_json::Value;
use support::imds::{Handler, HttpEmulator, Reply, Response};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/conformance/credentials/smithy-rs/aws-config-test-data"
);

fn load(name: &str) -> Vec<Value> {
    let path = format!("{DATA}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"));
    doc["tests"]
        .as_array()
        .unwrap_or_else(|| panic!("{path}: no tests array"))
        .clone()
}

fn string_map(v: &Value) -> HashMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The `[default]` section of a config file's text: enough for these cases, whose files are
/// one section of `key = value` lines (the real parser is the profile module's).
fn default_profile(text: &str) -> HashMap<String, String> {
    let mut in_default = false;
    let mut keys = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_default = line == "[default]";
        } else if let (true, Some((k, v))) = (in_default, line.split_once('=')) {
            keys.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    keys
}

/// Every IMDS endpoint case: the token URL resolved, or an `Invalid` error where expected.
#[test]
fn imds_endpoint_resolution_matches_sdk_cases() {
    let cases = load("imds-config/imds-endpoint-tests.json");
    let mut failures = Vec::new();
    for case in &cases {
        let docs = case["docs"].as_str().unwrap_or("?");
        let env = string_map(&case["env"]);
        let files = string_map(&case["fs"]);
        // The config file is the one AWS_CONFIG_FILE names, as the SDK would find it.
        let profile = env
            .get("AWS_CONFIG_FILE")
            .and_then(|f| files.get(f))
            .map(|text| default_profile(text))
            .unwrap_or_default();
        let overrides = ImdsOverrides {
            endpoint: case["endpoint_override"].as_str().map(str::to_string),
            mode: case["mode_override"].as_str().map(str::to_string),
        };
        let ctx = ProviderContext::with_vars(env);
        let got = ImdsConfig::resolve_with(&ctx, &|k| profile.get(k).cloned(), &overrides);
        let ok = match (&case["result"]["Ok"], &got) {
            (Value::String(want), Ok(config)) => config.token_url() == *want,
            (Value::Null, Err(CredentialsError::Invalid { .. })) => {
                !case["result"]["Err"].is_null()
            }
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{docs}: expected {}, got {:?}",
                case["result"],
                got.map(|c| c.token_url())
            ));
        }
    }
    let passed = cases.len() - failures.len();
    println!("imds-endpoint-tests: passed {passed} of {}", cases.len());
    assert!(
        failures.is_empty(),
        "imds-endpoint-tests: passed {passed} of {}:\n{}",
        cases.len(),
        failures.join("\n")
    );
    assert!(
        cases.len() >= 14,
        "expected the whole suite, found {}",
        cases.len()
    );
}

/// Every container case: the URI resolved, `NotConfigured` when nothing is set, `Invalid`
/// for a URI without a host.
#[test]
fn container_uri_resolution_matches_sdk_cases() {
    let cases = load("ecs-tests.json");
    let mut failures = Vec::new();
    for case in &cases {
        let docs = case["docs"].as_str().unwrap_or("?");
        let env = string_map(&case["env"]);
        let nothing_set = env.is_empty();
        let got = ContainerProvider::from_context(&ProviderContext::with_vars(env));
        let ok = match (&case["result"]["Ok"], &got) {
            (Value::String(want), Ok(p)) => p.uri() == want,
            // "not enabled" is the chain's NotConfigured; a bad URI is a configuration error.
            (Value::Null, Err(e)) if nothing_set => e.is_not_configured(),
            (Value::Null, Err(CredentialsError::Invalid { .. })) => true,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{docs}: expected {}, got {:?}",
                case["result"],
                got.map(|p| p.uri().to_string())
            ));
        }
    }
    let passed = cases.len() - failures.len();
    println!("ecs-tests: passed {passed} of {}", cases.len());
    assert!(
        failures.is_empty(),
        "ecs-tests: passed {passed} of {}:\n{}",
        cases.len(),
        failures.join("\n")
    );
    assert!(
        cases.len() >= 11,
        "expected the whole suite, found {}",
        cases.len()
    );
}

/// Chain cases that are not about IMDS or the container endpoint alone, or where we differ
/// from the Rust SDK on purpose, with the reason.
const CHAIN_SKIPS: &[(&str, &str)] = &[
    (
        "imds_token_fail",
        "we fall back to IMDSv1 when the token PUT answers 403 (as botocore and the Java SDK \
         do, and as old IMDS proxies need); the Rust SDK stops with \"IMDS is disabled\"",
    ),
    (
        "imds_assume_role",
        "an assumed role on top of IMDS: STS and the chain, tested by their own suites",
    ),
    (
        "ecs_assume_role",
        "an assumed role on top of ECS: STS and the chain, tested by their own suites",
    ),
];

/// One recorded exchange: the request expected and the answer to give.
struct Exchange {
    method: String,
    path: String,
    status: u16,
    body: String,
}

/// The exchanges of `http-traffic.json`, in request order.
fn exchanges(path: &Path) -> Vec<Exchange> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut by_connection: Vec<(u64, Exchange)> = Vec::new();
    for event in doc["events"].as_array().into_iter().flatten() {
        let id = event["connection_id"].as_u64().unwrap_or(0);
        let action = &event["action"];
        if let Some(request) = action["Request"]["request"].as_object() {
            let uri = request["uri"].as_str().unwrap_or_default();
            let path = uri
                .splitn(4, '/')
                .nth(3)
                .map(|p| format!("/{p}"))
                .unwrap_or_default();
            by_connection.push((
                id,
                Exchange {
                    method: request["method"].as_str().unwrap_or_default().to_string(),
                    path,
                    status: 0,
                    body: String::new(),
                },
            ));
        } else if let Some(status) = action["Response"]["response"]["Ok"]["status"].as_u64() {
            if let Some((_, x)) = by_connection.iter_mut().rev().find(|(c, _)| *c == id) {
                x.status = status as u16;
            }
        } else if action["Data"]["direction"] == "Response" {
            let data = action["Data"]["data"]["Utf8"].as_str().unwrap_or_default();
            if let Some((_, x)) = by_connection.iter_mut().rev().find(|(c, _)| *c == id) {
                x.body.push_str(data);
            }
        }
    }
    by_connection.into_iter().map(|(_, x)| x).collect()
}

/// A scripted server and what it saw.
struct Replay {
    server: HttpEmulator,
    /// Requests that were not the next one recorded.
    unexpected: Arc<Mutex<Vec<String>>>,
    /// Recorded exchanges not yet requested.
    left: Arc<Mutex<VecDeque<Exchange>>>,
}

/// A server answering the recorded exchanges in order; a request that is not the next one
/// recorded is answered 599 and noted.
fn replay(script: Vec<Exchange>) -> Replay {
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let unexpected = Arc::new(Mutex::new(Vec::new()));
    let (s, u) = (script.clone(), unexpected.clone());
    let handler: Handler = Arc::new(move |r| {
        let mut script = s.lock().unwrap_or_else(|e| e.into_inner());
        match script.front() {
            Some(x) if x.method == r.method && x.path == r.path => {
                let x = script.pop_front().expect("front exists");
                Reply::Answer(Response::new(x.status, x.body))
            }
            next => {
                u.lock().unwrap_or_else(|e| e.into_inner()).push(format!(
                    "{} {} (expected {:?})",
                    r.method,
                    r.path,
                    next.map(|x| format!("{} {}", x.method, x.path))
                ));
                Reply::Answer(Response::new(599, "unexpected request"))
            }
        }
    });
    let server = HttpEmulator::start(([127, 0, 0, 1], 0).into(), "replay", handler)
        .unwrap_or_else(|e| panic!("replay server: {e}"));
    Replay {
        server,
        unexpected,
        left: script,
    }
}

/// Whether `got` is the recorded result: the same credentials, or an error of the kind the
/// recorded message means ("not enabled" is NotConfigured).
fn matches_result(want: &Value, got: &Result<Credentials, CredentialsError>) -> Result<(), String> {
    match (want.get("Ok"), got) {
        (Some(ok), Ok(c)) => {
            let expiry = ok["expiry"]
                .as_u64()
                .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
            let same = Some(c.access_key_id.as_str()) == ok["access_key_id"].as_str()
                && Some(c.secret_access_key.expose()) == ok["secret_access_key"].as_str()
                && c.session_token.as_ref().map(|t| t.expose()) == ok["session_token"].as_str()
                && c.expiry == expiry;
            if same {
                Ok(())
            } else {
                Err(format!("different credentials: {c:?}"))
            }
        }
        (None, Err(e)) => {
            let text = want["ErrorContains"].as_str().unwrap_or_default();
            if text.contains("not enabled") && !e.is_not_configured() {
                Err(format!("expected NotConfigured, got {e}"))
            } else {
                Ok(())
            }
        }
        (_, got) => Err(format!(
            "expected {want}, got {:?}",
            got.as_ref().map(|c| &c.access_key_id)
        )),
    }
}

/// The recorded IMDS and ECS chain cases replayed against our providers.
#[tokio::test]
async fn recorded_imds_and_ecs_traffic_replays() {
    let root = Path::new(DATA).join("default-credential-provider-chain");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("imds_") || n.starts_with("ecs_"))
        .collect();
    names.sort();
    let (mut passed, mut failures, mut skipped) = (0, Vec::new(), 0);
    for name in &names {
        if let Some((_, why)) = CHAIN_SKIPS.iter().find(|(n, _)| n == name) {
            println!("chain-imds-ecs: skip {name}: {why}");
            skipped += 1;
            continue;
        }
        let dir = root.join(name);
        let read = |f: &str| -> Value {
            let p = dir.join(f);
            serde_json::from_str(
                &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let mut env = string_map(&read("env.json"));
        let want = read("test-case.json")["result"].clone();
        let traffic = dir.join("http-traffic.json");
        let script = if traffic.exists() {
            exchanges(&traffic)
        } else {
            Vec::new()
        };
        let Replay {
            server,
            unexpected,
            left,
        } = replay(script);
        let got = if name.starts_with("ecs_") {
            if let Some(relative) = env.remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
                env.insert(
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI".into(),
                    format!("{}{relative}", server.endpoint()),
                );
            }
            match ContainerProvider::from_context(&ProviderContext::with_vars(env)) {
                Ok(p) => p.provide().await,
                Err(e) => Err(e),
            }
        } else {
            env.insert(
                "AWS_EC2_METADATA_SERVICE_ENDPOINT".into(),
                server.endpoint(),
            );
            match ImdsConfig::resolve(&ProviderContext::with_vars(env), &|_| None) {
                Ok(config) => match ImdsProvider::new(config) {
                    Ok(p) => p.provide().await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        };
        let mut problems = Vec::new();
        if let Err(why) = matches_result(&want, &got) {
            problems.push(why);
        }
        problems.extend(
            unexpected
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..),
        );
        let unused = left.lock().unwrap_or_else(|e| e.into_inner()).len();
        if unused > 0 {
            problems.push(format!("{unused} recorded requests never sent"));
        }
        if problems.is_empty() {
            passed += 1;
        } else {
            failures.push(format!("{name}: {}", problems.join("; ")));
        }
    }
    let run = names.len() - skipped;
    println!("chain-imds-ecs: passed {passed} of {run} ({skipped} skipped)");
    assert!(
        failures.is_empty(),
        "chain-imds-ecs: passed {passed} of {run}:\n{}",
        failures.join("\n")
    );
    assert!(run >= 6, "expected the recorded cases, ran {run}");
}
