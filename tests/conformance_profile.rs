//! The cross-SDK conformance suites for shared config files, run case by case against our
//! parser, file locations and profile-chain resolution (data: `../shared/conformance/
//! credentials/smithy-rs`, see its SOURCE.md). Each suite prints `<suite>: passed N of M`
//! and the cases it skips, with the reason; any failed case fails the test.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use s3rolefs::credentials::profile::files::FileLocations;
use s3rolefs::credentials::profile::parser::{ProfileSet, Section};
use s3rolefs::credentials::profile::resolve::{resolve_chain, BaseSource, ResolveError};
use s3rolefs::credentials::ProviderContext;
use serde_json::{Map, Value};

fn data(path: &str) -> Value {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/credentials/smithy-rs")
        .join(path);
    let text = std::fs::read_to_string(&full)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Counts and failures of one suite, reported the same way for all three.
struct Tally {
    suite: &'static str,
    total: usize,
    passed: usize,
    skipped: Vec<(String, &'static str)>,
    failures: Vec<String>,
}

impl Tally {
    fn new(suite: &'static str) -> Self {
        Tally {
            suite,
            total: 0,
            passed: 0,
            skipped: Vec::new(),
            failures: Vec::new(),
        }
    }

    fn check(&mut self, name: &str, result: Result<(), String>) {
        self.total += 1;
        match result {
            Ok(()) => self.passed += 1,
            Err(why) => self.failures.push(format!("{name}: {why}")),
        }
    }

    fn skip(&mut self, name: &str, reason: &'static str) {
        self.total += 1;
        self.skipped.push((name.to_string(), reason));
    }

    fn finish(self) {
        let run = self.total - self.skipped.len();
        let summary = format!("{}: passed {} of {}", self.suite, self.passed, run);
        println!("{summary} ({} skipped)", self.skipped.len());
        for (name, reason) in &self.skipped {
            println!("  skipped: {name} — {reason}");
        }
        for f in &self.failures {
            println!("  FAILED: {f}");
        }
        assert!(run > 0, "{summary}: no case ran");
        assert!(
            self.failures.is_empty(),
            "{summary}; failures:\n{}",
            self.failures.join("\n")
        );
    }
}

fn section_json(section: &Section) -> Value {
    Value::Object(
        section
            .properties()
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn sections_json(sections: &BTreeMap<String, Section>) -> Value {
    Value::Object(
        sections
            .iter()
            .map(|(k, s)| (k.clone(), section_json(s)))
            .collect(),
    )
}

/// `profile-parser-tests.json`: file texts → profiles and sso-sessions, or an error.
#[test]
fn profile_parser_suite() {
    let suite = data("aws-runtime-test-data/profile-parser-tests.json");
    let mut tally = Tally::new("profile-parser");
    for case in suite["tests"].as_array().expect("tests array") {
        let name = case["name"].as_str().unwrap_or("?");
        let input = &case["input"];
        let parsed = ProfileSet::from_texts(
            input["configFile"].as_str(),
            input["credentialsFile"].as_str(),
        );
        let output = &case["output"];
        let result = match (parsed, output.get("errorContaining")) {
            (Err(e), Some(want)) => {
                let want = want.as_str().unwrap_or("");
                if e.to_string().contains(want) {
                    Ok(())
                } else {
                    Err(format!("error {e:?} does not contain {want:?}"))
                }
            }
            (Err(e), None) => Err(format!("unexpected error {e}")),
            (Ok(_), Some(want)) => Err(format!("parsed, but expected error {want}")),
            (Ok(set), None) => {
                let want = &output["config"];
                let mut problems = Vec::new();
                if sections_json(&set.profiles) != want["profiles"] {
                    problems.push(format!(
                        "profiles {} != expected {}",
                        sections_json(&set.profiles),
                        want["profiles"]
                    ));
                }
                if let Some(sessions) = want.get("sso_sessions") {
                    if sections_json(&set.sso_sessions) != *sessions {
                        problems.push(format!(
                            "sso_sessions {} != expected {sessions}",
                            sections_json(&set.sso_sessions)
                        ));
                    }
                }
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(problems.join("; "))
                }
            }
        };
        tally.check(name, result);
    }
    tally.finish();
}

/// `file-location-tests.json`: environment → config and credentials paths, and profile.
#[test]
fn file_location_suite() {
    let suite = data("aws-runtime-test-data/file-location-tests.json");
    let mut tally = Tally::new("file-location");
    for case in suite["tests"].as_array().expect("tests array") {
        let name = case["name"].as_str().unwrap_or("?");
        if case["platform"].as_str() != Some("linux") {
            tally.skip(
                name,
                "Windows paths and USERPROFILE/HOMEDRIVE: s3rolefs is a Linux FUSE filesystem",
            );
            continue;
        }
        let vars: HashMap<String, String> = case["environment"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let ctx = ProviderContext::with_vars(vars);
        let loc = FileLocations::resolve(&ctx);
        let mut problems = Vec::new();
        let want_config = case["configLocation"].as_str().map(PathBuf::from);
        let want_credentials = case["credentialsLocation"].as_str().map(PathBuf::from);
        if loc.config != want_config {
            problems.push(format!("config {:?} != {want_config:?}", loc.config));
        }
        if loc.credentials != want_credentials {
            problems.push(format!(
                "credentials {:?} != {want_credentials:?}",
                loc.credentials
            ));
        }
        if let Some(profile) = case["profile"].as_str() {
            if ctx.profile_name() != profile {
                problems.push(format!("profile {} != {profile}", ctx.profile_name()));
            }
        }
        tally.check(
            name,
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            },
        );
    }
    tally.finish();
}

/// Our chain as the suite writes it: `[{"AccessKey": {..}}, {"AssumeRole": {..}}, ...]`.
fn chain_json(chain: &s3rolefs::credentials::profile::resolve::ProfileChain) -> Value {
    let mut steps = Vec::new();
    let obj = |pairs: Vec<(&str, Option<String>)>| -> Value {
        Value::Object(
            pairs
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_string(), Value::String(v?))))
                .collect::<Map<_, _>>(),
        )
    };
    let base = match &chain.base {
        BaseSource::AccessKey(k) => serde_json::json!({ "AccessKey": obj(vec![
            ("access_key_id", Some(k.access_key_id.clone())),
            ("secret_access_key", Some(k.secret_access_key.expose().to_string())),
            ("account_id", k.account_id.clone()),
        ])}),
        BaseSource::Named(n) => serde_json::json!({ "NamedSource": n.as_str() }),
        BaseSource::WebIdentity {
            role_arn,
            token_file,
            session_name,
            ..
        } => serde_json::json!({ "WebIdentityToken": obj(vec![
            ("role_arn", Some(role_arn.clone())),
            ("web_identity_token_file", Some(token_file.display().to_string())),
            ("role_session_name", session_name.clone()),
        ])}),
        BaseSource::Sso(s) => serde_json::json!({ "Sso": obj(vec![
            ("sso_session", s.session_name.clone()),
            ("sso_account_id", s.account_id.clone()),
            ("sso_region", s.region.clone()),
            ("sso_role_name", s.role_name.clone()),
            ("sso_start_url", s.start_url.clone()),
        ])}),
        BaseSource::Process { command, .. } => {
            serde_json::json!({ "CredentialProcess": command })
        }
    };
    steps.push(base);
    for role in &chain.roles {
        steps.push(serde_json::json!({ "AssumeRole": obj(vec![
            ("role_arn", Some(role.role_arn.clone())),
            ("external_id", role.external_id.clone()),
            ("role_session_name", role.session_name.clone()),
        ])}));
    }
    Value::Array(steps)
}

/// Which of our errors stands for each error the suite expects. The suite's strings are the
/// Rust SDK's wording; we compare the behaviour (the kind of refusal), not the text.
fn error_matches(expected: &str, got: &ResolveError) -> bool {
    use ResolveError::*;
    match expected {
        "profile must contain `source_profile`" => matches!(got, NoSource { .. }),
        "profile contained both source_profile and credential_source" => {
            matches!(got, BothSources { .. })
        }
        "profile missing aws_secret_access_key" => matches!(
            got,
            PartialKeys {
                missing: "aws_secret_access_key",
                ..
            }
        ),
        "profile missing aws_access_key_id" => matches!(
            got,
            PartialKeys {
                missing: "aws_access_key_id",
                ..
            }
        ),
        "profile `B` did not contain credential information" => {
            matches!(got, NoCredentials { profile } if profile == "B")
        }
        "profile `A` did not contain credential information" => {
            matches!(got, NoCredentials { profile } if profile == "A")
        }
        "could not find source profile B referenced from A" => matches!(
            got,
            MissingSourceProfile { name, referenced_from } if name == "B" && referenced_from == "A"
        ),
        "No profiles were defined" => matches!(got, NoProfiles),
        "profile formed an infinite loop" => matches!(got, Cycle { .. }),
        "`role_arn` was missing" => matches!(got, WebIdentityWithoutRole { .. }),
        // The SSO configuration errors carry the SDK's wording in their message.
        other if other.contains("sso") => match got {
            InvalidSso { message, .. } => message.contains(other),
            MissingSsoSession { .. } => got.to_string().contains(other),
            _ => false,
        },
        _ => false,
    }
}

/// `assume-role-tests.json`: profiles → the chain of steps (base, then roles), or an error.
#[test]
fn assume_role_suite() {
    let suite = data("aws-config-test-data/assume-role-tests.json");
    let mut tally = Tally::new("assume-role");
    for case in suite.as_array().expect("array of cases") {
        let name = case["docs"].as_str().unwrap_or("?");
        let input = &case["input"];
        let mut config = String::new();
        let sections = [("profiles", "profile"), ("sso_sessions", "sso-session")];
        for (key, prefix) in sections {
            for (section, props) in input[key].as_object().into_iter().flatten() {
                config.push_str(&format!("[{prefix} {section}]\n"));
                for (k, v) in props.as_object().into_iter().flatten() {
                    config.push_str(&format!("{k} = {}\n", v.as_str().unwrap_or("")));
                }
            }
        }
        let set = match ProfileSet::from_texts(Some(&config), None) {
            Ok(set) => set,
            Err(e) => {
                tally.check(name, Err(format!("generated config did not parse: {e}")));
                continue;
            }
        };
        let selected = input["selected_profile"].as_str().unwrap_or("default");
        let resolved = resolve_chain(&set, selected);
        let output = &case["output"];
        let result = match (resolved, output.get("Error")) {
            (Ok(chain), None) => {
                let got = chain_json(&chain);
                if got == output["ProfileChain"] {
                    Ok(())
                } else {
                    Err(format!(
                        "chain {got} != expected {}",
                        output["ProfileChain"]
                    ))
                }
            }
            (Ok(chain), Some(want)) => Err(format!(
                "resolved to {}, expected error {want}",
                chain_json(&chain)
            )),
            (Err(e), Some(want)) => {
                let want = want.as_str().unwrap_or("");
                if error_matches(want, &e) {
                    Ok(())
                } else {
                    Err(format!("error {e:?} is not the expected {want:?}"))
                }
            }
            (Err(e), None) => Err(format!("unexpected error {e}")),
        };
        tally.check(name, result);
    }
    tally.finish();
}
