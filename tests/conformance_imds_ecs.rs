//! Conformance of the IMDS endpoint resolution and the container URI resolution with the
//! AWS SDKs' shared test data (smithy-rs `aws-config/test-data`, see `SOURCE.md` next to the
//! data): `imds-config/imds-endpoint-tests.json` and `ecs-tests.json`. Every case is run; the
//! behaviour is compared (which URL, or that it is an error and of which kind), not the exact
//! error strings, which are the Rust SDK's.

use std::collections::HashMap;

use s3rolefs::credentials::container::ContainerProvider;
use s3rolefs::credentials::imds::{ImdsConfig, ImdsOverrides};
use s3rolefs::credentials::{CredentialsError, ProviderContext};
use serde_json::Value;

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
