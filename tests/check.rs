//! `s3rolefs check`: the real binary against the test server and the IMDS emulator, one test
//! per diagnosis. Each failure test asserts the ✘ line of the failing step names the cause,
//! and that the exit status is not 0; the healthy case passes every step with status 0.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use support::imds::{accepted_by, ImdsEmulator, ImdsMode, ImdsOptions};
use support::mount::s3rolefs_command;
use support::TestServer;
use tempfile::TempDir;

/// `s3rolefs check ARGS` in a clean environment pointed at `server`, with `env` on top.
fn check(server: &TestServer, args: &[&str], env: &[(&str, &str)]) -> Output {
    check_via(None, server, args, env)
}

/// The same, run through `wrapper` (a program and its arguments) when given.
fn check_via(
    wrapper: Option<&[&str]>,
    server: &TestServer,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let home = TempDir::new().unwrap();
    let plain = s3rolefs_command(home.path());
    let mut cmd = match wrapper {
        None => plain,
        Some(wrapper) => {
            let mut wrapped = Command::new(wrapper[0]);
            wrapped.args(&wrapper[1..]).arg(plain.get_program());
            wrapped.env_clear();
            wrapped.envs(plain.get_envs().filter_map(|(k, v)| Some((k, v?))));
            wrapped
        }
    };
    cmd.arg("check").args(args);
    cmd.env("AWS_ENDPOINT_URL", server.endpoint());
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = cmd.output().expect("run s3rolefs check");
    eprintln!(
        "--- s3rolefs check {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The server's own key pair, as environment variables.
fn static_keys(server: &TestServer) -> [(&str, &str); 2] {
    [
        ("AWS_ACCESS_KEY_ID", server.access_key()),
        ("AWS_SECRET_ACCESS_KEY", server.secret_key()),
    ]
}

/// The report line of step `name`.
fn line<'a>(out: &'a Output, name: &str) -> &'a str {
    let stdout = std::str::from_utf8(&out.stdout).expect("utf-8 report");
    stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no {name:?} line in:\n{stdout}"))
}

/// Asserts step `name` failed with a line containing every one of `words`, and the exit
/// status says so.
fn assert_fails(out: &Output, name: &str, words: &[&str]) {
    assert!(!out.status.success(), "check passed despite the fault");
    let line = line(out, name);
    assert!(line.starts_with('✘'), "{name} did not fail: {line}");
    for word in words {
        assert!(line.contains(word), "{name} line lacks {word:?}: {line}");
    }
}

/// An IMDS emulator whose credentials `server` accepts, and the environment pointing at it.
fn instance(server: &Arc<TestServer>, mode: ImdsMode) -> ImdsEmulator {
    ImdsEmulator::start(ImdsOptions {
        mode,
        on_issue: Some(accepted_by(server)),
        ..ImdsOptions::default()
    })
}

fn imds_env(imds: &ImdsEmulator) -> [(&'static str, String); 2] {
    [
        ("AWS_EC2_METADATA_DISABLED", "false".to_string()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint()),
    ]
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Everything in order on an instance with a role: every step passes (the write probe
/// included), the exit status is 0, and the probe object is gone afterwards.
#[test]
fn a_working_setup_passes_every_check() {
    let server = Arc::new(TestServer::start());
    server.create_bucket("data");
    server.put("data", "logs/today.txt", b"hello".to_vec());
    let imds = instance(&server, ImdsMode::V2Only);
    let env = imds_env(&imds);
    let out = check(&server, &["data:logs/", "--write-probe"], &as_refs(&env));
    assert!(out.status.success());
    for name in [
        "fuse",
        "credentials",
        "imds",
        "role",
        "endpoint",
        "clock",
        "bucket",
        "list",
        "write",
        "read",
        "delete",
    ] {
        assert!(line(&out, name).starts_with('✔'), "{}", line(&out, name));
    }
    assert!(line(&out, "credentials").contains("from imds"));
    assert!(line(&out, "role").contains("s3rolefs-test-role"));
    assert!(line(&out, "read").contains("logs/today.txt"));
    assert_eq!(server.keys("data"), vec!["logs/today.txt".to_string()]);
}

/// `--json` gives the same verdicts to scripts, and the exit status follows them.
#[test]
fn json_report_lists_every_step() {
    let server = TestServer::start();
    server.create_bucket("data");
    let out = check(&server, &["data", "--json"], &static_keys(&server));
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    let checks = report["checks"].as_array().unwrap();
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {name} in {report:#}"))
    };
    assert_eq!(status("credentials"), "pass");
    assert_eq!(status("list"), "pass");
    // Nothing to read in an empty bucket, and writes are only probed when asked.
    assert_eq!(status("read"), "skip");
    assert_eq!(status("write"), "skip");
}

/// A bucket name S3 would refuse fails before any probe, as one line, and `--json` still
/// prints a document that says so.
#[test]
fn invalid_bucket_name_is_reported_in_json_too() {
    let server = TestServer::start();
    let out = check(&server, &["Bad_Bucket", "--json"], &static_keys(&server));
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("invalid bucket name"),
        "{report:#}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("s3rolefs: invalid bucket name"), "{stderr}");
}

/// No `/dev/fuse` (a container started without the device): the fuse line says so and how
/// to fix it. Runs `check` in its own mount namespace with an empty `/dev`.
#[test]
fn no_fuse_device_is_diagnosed() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "this test needs root (a mount namespace) and CI runs as root"
        );
        eprintln!("not root: cannot hide /dev/fuse; skipped outside CI");
        return;
    }
    let server = TestServer::start();
    server.create_bucket("data");
    let hide_dev = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount -t tmpfs none /dev && exec \"$0\" \"$@\"",
    ];
    let out = check_via(Some(&hide_dev), &server, &["data"], &static_keys(&server));
    assert_fails(
        &out,
        "fuse",
        &["/dev/fuse is missing", "--device /dev/fuse"],
    );
}

/// No credentials anywhere (no keys, no profile, no IMDS): the credentials line lists what
/// was tried and names the ways to provide them.
#[test]
fn missing_credentials_are_diagnosed() {
    let server = TestServer::start();
    server.create_bucket("data");
    let out = check(
        &server,
        &["data"],
        &[
            ("AWS_EC2_METADATA_DISABLED", "false"),
            // Nothing listens there: connection refused at once.
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9"),
        ],
    );
    assert_fails(
        &out,
        "credentials",
        &["no credentials found", "AWS_ACCESS_KEY_ID", "IAM role"],
    );
    assert_fails(&out, "imds", &["unreachable"]);
}

/// The IMDSv2 token request connects but is never answered — a container behind an
/// instance whose hop limit is 1: the imds line names the hop limit and the command.
#[test]
fn imds_token_hang_names_the_hop_limit() {
    let server = Arc::new(TestServer::start());
    server.create_bucket("data");
    let imds = instance(&server, ImdsMode::V1AndV2);
    imds.set_hang_token(true);
    let env = imds_env(&imds);
    let out = check(&server, &["data"], &as_refs(&env));
    assert_fails(
        &out,
        "imds",
        &["hop limit", "--http-put-response-hop-limit 2"],
    );
}

/// An instance without an instance profile: the role line says no role is attached and
/// how to attach one.
#[test]
fn instance_without_role_is_diagnosed() {
    let server = Arc::new(TestServer::start());
    server.create_bucket("data");
    let imds = instance(&server, ImdsMode::V2Only);
    imds.set_no_role(true);
    let env = imds_env(&imds);
    let out = check(&server, &["data"], &as_refs(&env));
    assert_fails(&out, "credentials", &["no IAM role"]);
    assert_fails(
        &out,
        "role",
        &["no IAM role is attached", "associate-iam-instance-profile"],
    );
    assert!(line(&out, "imds").starts_with('✔'), "IMDS itself works");
}

/// `--region` names another region than the bucket's: the bucket line gives the right one.
#[test]
fn wrong_region_is_diagnosed() {
    let server = TestServer::start();
    server.create_bucket_in_region("eu-data", "eu-west-1");
    let out = check(
        &server,
        &["eu-data", "--region", "us-west-2"],
        &static_keys(&server),
    );
    assert_fails(
        &out,
        "bucket",
        &["region eu-west-1, not us-west-2", "--region eu-west-1"],
    );
}

/// Credentials that may list but not read or write: each denied permission is its own ✘
/// line naming the permission and the resource.
#[test]
fn denied_permissions_are_named() {
    let server = TestServer::start();
    server.create_bucket("data");
    server.put("data", "in/file", b"x".to_vec());
    server.deny(server.access_key(), &["GetObject", "PutObject"]);
    let out = check(
        &server,
        &["data:in/", "--write-probe"],
        &static_keys(&server),
    );
    assert!(line(&out, "list").starts_with('✔'));
    assert_fails(
        &out,
        "read",
        &["access denied", "s3:GetObject", "arn:aws:s3:::data/in/*"],
    );
    assert_fails(&out, "write", &["access denied", "s3:PutObject"]);

    // Without s3:ListBucket the bucket cannot be opened at all.
    server.deny(server.access_key(), &["HeadBucket", "ListObjectsV2"]);
    let out = check(&server, &["data"], &static_keys(&server));
    assert_fails(&out, "bucket", &["access denied", "s3:ListBucket"]);
    assert_fails(&out, "list", &["access denied", "s3:ListBucket"]);
}

/// This machine's clock 20 minutes fast (libfaketime moves only the wall clock of the
/// check): the clock line says by how much and how to fix it. S3 would refuse such
/// requests; s3rolefs re-signs with the server's time, so the other steps still pass.
#[test]
fn skewed_clock_is_diagnosed() {
    let faketime = ["/usr/bin/faketime", "-f", "+20m"];
    if !Path::new(faketime[0]).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "faketime is missing: apt-get install -y faketime (scripts/setup does)"
        );
        eprintln!("faketime is missing: skipped outside CI");
        return;
    }
    let server = TestServer::start();
    server.create_bucket("data");
    let mut env = static_keys(&server).to_vec();
    env.push(("FAKETIME_DONT_FAKE_MONOTONIC", "1"));
    let out = check_via(Some(&faketime), &server, &["data"], &env);
    assert_fails(&out, "clock", &["20 min", "ahead of S3's", "timedatectl"]);
    // What a mount does (open the bucket, list it) works all the same.
    for name in ["bucket", "list"] {
        assert!(line(&out, name).starts_with('✔'), "{}", line(&out, name));
    }
}
