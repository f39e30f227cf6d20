//! Every way getting credentials can fail at mount, through the real binary: a one-line
//! error naming the cause and the fix, exit code 1, nothing mounted — and the
//! `s3rolefs credentials` report, which never shows a secret.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use support::imds::{ImdsEmulator, ImdsMode, ImdsOptions};
use support::sts::{StsEmulator, StsOptions};
use support::{Mount, MountCommand, TestServer};

fn server() -> Arc<TestServer> {
    let server = Arc::new(TestServer::start());
    server.create_bucket("bkt");
    server.put("bkt", "hello.txt", b"hello".to_vec());
    server
}

fn one_line(code: i32, stderr: &str) -> String {
    assert_eq!(code, 1, "exit code; stderr:\n{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("s3rolefs:"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected; stderr:\n{stderr}");
    lines[0].to_string()
}

fn imds_command(server: &TestServer, imds: &ImdsEmulator) -> MountCommand {
    MountCommand::new(server, "bkt")
        .without_static_credentials()
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.endpoint())
}

/// No source at all: the message lists every source tried and why it did not apply.
#[test]
fn no_credentials_lists_every_source_and_its_reason() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = MountCommand::new(&server, "bkt")
        .without_static_credentials()
        .run_expect_failure(dir.path());
    let line = one_line(code, &err);
    for needle in [
        "no credentials found",
        "environment: AWS_ACCESS_KEY_ID",
        "profile default",
        "web identity",
        "container",
        "imds: IMDS disabled by AWS_EC2_METADATA_DISABLED",
        "--no-sign-request",
    ] {
        assert!(line.contains(needle), "{needle:?} not in {line}");
    }
}

/// IMDS answers 404 on the role list: no role is attached, and the message says how to
/// attach one.
#[test]
fn imds_without_role_says_no_role_is_attached() {
    let server = server();
    let imds = ImdsEmulator::start(ImdsOptions::default());
    imds.set_no_role(true);
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = imds_command(&server, &imds).run_expect_failure(dir.path());
    let line = one_line(code, &err);
    assert!(
        line.contains("no IAM role") || line.contains("no role"),
        "{line}"
    );
    assert!(
        line.contains("instance profile") || line.contains("associate-iam-instance-profile"),
        "{line}"
    );
}

/// An IMDSv2 token request that connects but never answers is the container hop limit:
/// the message says so.
#[test]
fn imds_token_hang_names_the_hop_limit() {
    let server = server();
    let imds = ImdsEmulator::start(ImdsOptions {
        mode: ImdsMode::V2Only,
        ..ImdsOptions::default()
    });
    imds.set_hang_token(true);
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = imds_command(&server, &imds)
        .args(&["--imds-v2-only"])
        .run_expect_failure(dir.path());
    let line = one_line(code, &err);
    assert!(line.contains("hop limit"), "{line}");
}

/// IMDSv1 is never used when `--imds-v2-only` says so, even if the token is refused.
#[test]
fn imds_v2_only_refuses_v1_fallback() {
    let server = server();
    let imds = ImdsEmulator::start(ImdsOptions {
        mode: ImdsMode::V1Only,
        ..ImdsOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = imds_command(&server, &imds)
        .args(&["--imds-v2-only"])
        .run_expect_failure(dir.path());
    let line = one_line(code, &err);
    assert!(line.contains("IMDSv1") || line.contains("v1"), "{line}");
    assert_eq!(imds.v1_requests(), 0);
}

/// STS refuses the role: the message explains the trust policy / permission to fix.
#[test]
fn assume_role_access_denied_names_the_trust_policy() {
    let server = server();
    let sts = StsEmulator::start(StsOptions {
        allowed_callers: Some(vec!["AKIASOMEONEELSE00000".into()]),
        ..StsOptions::default()
    });
    sts.trust_key(server.access_key(), server.secret_key());
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = MountCommand::new(&server, "bkt")
        .env("AWS_ENDPOINT_URL_STS", &sts.endpoint())
        .args(&["--role-arn", "arn:aws:iam::123456789012:role/reader"])
        .run_expect_failure(dir.path());
    let line = one_line(code, &err);
    assert!(line.contains("sts:AssumeRole"), "{line}");
    assert!(line.contains("trust policy"), "{line}");
    assert!(!line.contains(server.secret_key()));
}

/// A session token from the environment that cannot be renewed mounts with a warning that
/// names its expiry and what to use instead.
#[test]
fn unrenewable_session_token_warns_at_mount() {
    let server = server();
    let expires = SystemTime::now() + Duration::from_secs(3600);
    server.add_session_key(
        "ASIAENVSESSION000001",
        "env-session-secret",
        "env-token",
        expires,
    );
    let expiration = time::OffsetDateTime::from(expires)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mount: Mount = MountCommand::new(&server, "bkt")
        .env("AWS_ACCESS_KEY_ID", "ASIAENVSESSION000001")
        .env("AWS_SECRET_ACCESS_KEY", "env-session-secret")
        .env("AWS_SESSION_TOKEN", "env-token")
        .env("AWS_CREDENTIAL_EXPIRATION", &expiration)
        .start();
    assert_eq!(
        std::fs::read(mount.path().join("hello.txt")).unwrap(),
        b"hello"
    );
    let log = mount.stderr_log();
    assert!(
        log.contains("cannot be renewed") && log.contains("expire in"),
        "{log}"
    );
    assert!(
        !log.contains("env-session-secret") && !log.contains("env-token"),
        "secret in log"
    );
}

/// `s3rolefs credentials --json` names the source that won and why the others did not,
/// with the key masked and no secret anywhere.
#[test]
fn credentials_report_shows_source_never_secrets() {
    let imds = ImdsEmulator::start(ImdsOptions {
        mode: ImdsMode::V2Only,
        credentials_lifetime: Duration::from_secs(1800),
        ..ImdsOptions::default()
    });
    let out = Command::new(env!("CARGO_BIN_EXE_s3rolefs"))
        .args([
            "credentials",
            "--json",
            "--imds-v2-only",
            "--region",
            "us-east-1",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["source"], "imds");
    assert_eq!(report["session_token"], true);
    assert!(report["next_refresh"].is_string());
    let tried = report["tried"].as_array().unwrap();
    assert!(tried
        .iter()
        .any(|t| t["source"] == "environment" && t["applied"] == false));
    let issued = &imds.issued()[0];
    let masked = report["access_key_id"].as_str().unwrap();
    assert_ne!(masked, issued.access_key_id);
    assert!(masked.starts_with(&issued.access_key_id[..4]));
    assert!(!text.contains(&issued.secret_access_key) && !text.contains(&issued.token));
}
