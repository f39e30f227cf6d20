//! Mounts that live across many credential rotations, through the real path: kernel →
//! FUSE → s3rolefs → the test S3 server, which accepts only credentials an emulator issued
//! and answers `ExpiredToken` once they expire.
//!
//! Every source is exercised the same way: credentials living 30 s and rotating every
//! 10 s, and a workload that lists directories, stats and reads files continuously for
//! `S3ROLEFS_SOAK_SECS` (default 120) seconds. It must see zero errors, the server must
//! have answered no request with an error (no expired or unknown key ever reached it), and
//! at least 6 distinct keys must have been used. The sources run side by side in one test,
//! each in its own thread, so the whole soak costs one soak's time.

mod support;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use support::container::{ContainerEndpoint, ContainerOptions};
use support::imds::{ImdsEmulator, ImdsMode, ImdsOptions, Rotation};
use support::sso::{SsoEmulator, SsoOptions};
use support::sts::{StsEmulator, StsOptions};
use support::{Mount, MountCommand, TestServer};

const LIFETIME: Duration = Duration::from_secs(30);
const ROTATION: Duration = Duration::from_secs(10);
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/s3rolefs-test";

fn soak_duration() -> Duration {
    let secs = std::env::var("S3ROLEFS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    Duration::from_secs(secs)
}

/// A server whose bucket holds a small tree, with its default key pair retired so only
/// issued credentials work.
fn server() -> Arc<TestServer> {
    let server = Arc::new(TestServer::start());
    server.create_bucket("bkt");
    for i in 0..8 {
        server.put("bkt", &format!("f{i}"), vec![i as u8; 256 * 1024]);
    }
    for i in 0..3 {
        server.put("bkt", &format!("d/g{i}"), vec![b'g'; 1000 + i]);
    }
    server
}

/// What a workload saw.
#[derive(Debug, Default)]
struct Report {
    operations: u64,
    errors: Vec<String>,
}

/// Lists, stats and reads through `root` until `until`, calling `tick` between rounds.
fn workload(root: &Path, until: Instant, mut tick: impl FnMut()) -> Report {
    let mut report = Report::default();
    let mut round: u64 = 0;
    let note = |what: String, r: &mut Report| {
        if r.errors.len() < 20 {
            r.errors.push(what);
        }
    };
    while Instant::now() < until {
        round += 1;
        match std::fs::read_dir(root) {
            Ok(entries) => {
                let names: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
                if names.len() != 9 {
                    note(format!("listing had {} entries", names.len()), &mut report);
                }
                for path in names {
                    if let Err(e) = std::fs::metadata(&path) {
                        note(format!("stat {}: {e}", path.display()), &mut report);
                    }
                    report.operations += 1;
                }
            }
            Err(e) => note(format!("read_dir: {e}"), &mut report),
        }
        let file = root.join(format!("f{}", round % 8));
        let read = std::fs::File::open(&file).and_then(|mut f| {
            f.seek(SeekFrom::Start((round * 4096) % (256 * 1024 - 4096)))?;
            let mut buf = [0u8; 4096];
            f.read_exact(&mut buf)?;
            Ok(buf[0])
        });
        match read {
            Ok(b) if b == (round % 8) as u8 => {}
            Ok(b) => note(
                format!("read {}: wrong byte {b}", file.display()),
                &mut report,
            ),
            Err(e) => note(format!("read {}: {e}", file.display()), &mut report),
        }
        match std::fs::read_dir(root.join("d")).map(Iterator::count) {
            Ok(3) => {}
            Ok(n) => note(format!("d/ listing had {n} entries"), &mut report),
            Err(e) => note(format!("read_dir d: {e}"), &mut report),
        }
        report.operations += 3;
        tick();
        std::thread::sleep(Duration::from_millis(150));
    }
    report
}

/// Runs one scenario's workload on its mount and checks the outcome against the server.
fn soak(
    name: &str,
    server: &TestServer,
    mount: &Mount,
    tick: impl FnMut(),
) -> Result<String, String> {
    let until = Instant::now() + soak_duration();
    server.reset_counters();
    let report = workload(mount.path(), until, tick);
    let failed: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.status.is_none_or(|s| s >= 400) && !asks_for_a_marker(r))
        .map(|r| {
            format!(
                "{:?} {} -> {:?} (key {:?})",
                r.op, r.uri, r.status, r.access_key
            )
        })
        .take(10)
        .collect();
    let keys = server.access_keys_used();
    let mut problems = Vec::new();
    if !report.errors.is_empty() {
        problems.push(format!("workload errors: {:?}", report.errors));
    }
    if !failed.is_empty() {
        problems.push(format!("server refused requests: {failed:?}"));
    }
    if keys.len() < 6 {
        problems.push(format!("only {} distinct keys used", keys.len()));
    }
    let summary = format!(
        "{name}: {} operations, {} S3 requests, {} distinct keys",
        report.operations,
        server.total_requests(),
        keys.len()
    );
    if problems.is_empty() {
        Ok(summary)
    } else {
        Err(format!(
            "{summary}: {}\nmount log tail:\n{}",
            problems.join("; "),
            tail(&mount.stderr_log())
        ))
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// The server accepts exactly what an emulator issues.
fn accept(
    server: &Arc<TestServer>,
) -> impl Fn(&str, &str, &str, SystemTime) + Send + Sync + 'static {
    let server = Arc::clone(server);
    move |ak, sk, token, expires| server.add_session_key(ak, sk, token, expires)
}

/// A mount command with no static keys and no profile: only what the scenario sets.
fn keyless(server: &TestServer) -> MountCommand {
    MountCommand::new(server, "bkt")
        .without_static_credentials()
        .args(&["--metadata-ttl", "0.5"])
}

fn imds_scenario(mode: ImdsMode, name: &'static str) -> impl FnOnce() -> Result<String, String> {
    move || {
        let server = server();
        let sink = accept(&server);
        let imds = ImdsEmulator::start(ImdsOptions {
            mode,
            credentials_lifetime: LIFETIME,
            rotation: ROTATION,
            on_issue: Some(Arc::new(move |c| {
                sink(
                    &c.access_key_id,
                    &c.secret_access_key,
                    &c.token,
                    c.expires_at,
                )
            })),
            ..ImdsOptions::default()
        });
        let mut cmd = keyless(&server)
            .env("AWS_EC2_METADATA_DISABLED", "false")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.endpoint());
        if mode == ImdsMode::V2Only {
            cmd = cmd.args(&["--imds-v2-only"]);
        }
        let mount = cmd.start();
        let result = soak(name, &server, &mount, || {});
        if mode == ImdsMode::V1Only && imds.v2_requests() > 0 && imds.v1_requests() == 0 {
            return Err(format!("{name}: never used IMDSv1"));
        }
        result
    }
}

fn web_identity_scenario() -> Result<String, String> {
    let server = server();
    let sink = accept(&server);
    let sts = StsEmulator::start(StsOptions {
        lifetime: Some(LIFETIME),
        on_issue: Some(Arc::new(move |c| {
            sink(
                &c.access_key_id,
                &c.secret_access_key,
                &c.session_token,
                c.expires_at,
            )
        })),
        ..StsOptions::default()
    });
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let token_file = dir.path().join("token");
    let mut generation = 0u32;
    let write_token = |n: u32| {
        let token = format!("eyJ.web-identity-token-{n}.sig");
        std::fs::write(&token_file, &token).map(|_| token)
    };
    sts.expect_web_identity_token(&write_token(0).map_err(|e| e.to_string())?);
    let mount = keyless(&server)
        .env(
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            token_file.to_str().unwrap_or_default(),
        )
        .env("AWS_ROLE_ARN", ROLE_ARN)
        .env("AWS_ENDPOINT_URL_STS", &sts.endpoint())
        .start();
    let mut last = Instant::now();
    let result = soak("web identity", &server, &mount, || {
        // The token file is rewritten every rotation, as EKS does.
        if last.elapsed() >= ROTATION {
            generation += 1;
            if let Ok(token) = write_token(generation) {
                sts.expect_web_identity_token(&token);
            }
            last = Instant::now();
        }
    });
    let tokens: std::collections::HashSet<String> = sts
        .requests()
        .iter()
        .filter_map(|r| r.param("WebIdentityToken").map(str::to_string))
        .collect();
    if tokens.len() < 3 {
        return Err(format!(
            "web identity: only {} distinct tokens sent: the file is not re-read",
            tokens.len()
        ));
    }
    result
}

fn container_scenario() -> Result<String, String> {
    let server = server();
    let sink = accept(&server);
    let endpoint = ContainerEndpoint::start(ContainerOptions {
        authorization: Some("pod-identity-token".into()),
        credentials_lifetime: LIFETIME,
        rotation: ROTATION,
        on_issue: Some(Arc::new(move |c| {
            sink(
                &c.access_key_id,
                &c.secret_access_key,
                &c.token,
                c.expires_at,
            )
        })),
        ..ContainerOptions::default()
    });
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "pod-identity-token").map_err(|e| e.to_string())?;
    let mount = keyless(&server)
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &endpoint.uri())
        .env(
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            token_file.to_str().unwrap_or_default(),
        )
        .start();
    soak("container", &server, &mount, || {})
}

fn profile_role_scenario() -> Result<String, String> {
    let server = server();
    let sink = accept(&server);
    let sts = StsEmulator::start(StsOptions {
        lifetime: Some(LIFETIME),
        on_issue: Some(Arc::new(move |c| {
            sink(
                &c.access_key_id,
                &c.secret_access_key,
                &c.session_token,
                c.expires_at,
            )
        })),
        ..StsOptions::default()
    });
    sts.trust_key("AKIABASEPROFILEKEY01", "base-profile-secret");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile base]\naws_access_key_id = AKIABASEPROFILEKEY01\n\
             aws_secret_access_key = base-profile-secret\n\n\
             [profile app]\nrole_arn = {ROLE_ARN}\nsource_profile = base\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let mount = keyless(&server)
        .env("AWS_CONFIG_FILE", config.to_str().unwrap_or_default())
        .env("AWS_ENDPOINT_URL_STS", &sts.endpoint())
        .args(&["--profile", "app"])
        .start();
    soak("profile source_profile → role_arn", &server, &mount, || {})
}

fn credential_process_scenario() -> Result<String, String> {
    let server = server();
    let sink = accept(&server);
    let rotation = Arc::new(Rotation::new(
        LIFETIME,
        ROTATION,
        Some(Arc::new(move |c| {
            sink(
                &c.access_key_id,
                &c.secret_access_key,
                &c.token,
                c.expires_at,
            )
        })),
    ));
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let creds_file = dir.path().join("creds.json");
    let write_creds = |path: &PathBuf| {
        let c = rotation.current();
        let doc = serde_json::json!({
            "Version": 1,
            "AccessKeyId": c.access_key_id,
            "SecretAccessKey": c.secret_access_key,
            "SessionToken": c.token,
            "Expiration": support::imds::rfc3339(c.expires_at),
        });
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, doc.to_string()).and_then(|_| std::fs::rename(&tmp, path))
    };
    write_creds(&creds_file).map_err(|e| e.to_string())?;
    let script = dir.path().join("creds.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexec cat {}\n", creds_file.display()),
    )
    .map_err(|e| e.to_string())?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!("[default]\ncredential_process = {}\n", script.display()),
    )
    .map_err(|e| e.to_string())?;
    let mount = keyless(&server)
        .env("AWS_CONFIG_FILE", config.to_str().unwrap_or_default())
        .start();
    soak("credential_process", &server, &mount, || {
        // The helper program hands out whatever the rotation says is current.
        let _ = write_creds(&creds_file);
    })
}

fn sso_scenario() -> Result<String, String> {
    let server = server();
    let sink = accept(&server);
    let sso = SsoEmulator::start(SsoOptions {
        lifetime: Some(LIFETIME),
        on_issue: Some(Arc::new(move |c| {
            sink(
                &c.access_key_id,
                &c.secret_access_key,
                &c.session_token,
                c.expires_at,
            )
        })),
        ..SsoOptions::default()
    });
    let expires = SystemTime::now() + Duration::from_secs(8 * 3600);
    sso.accept_access_token("sso-access-token", expires);
    let home = tempfile::tempdir().map_err(|e| e.to_string())?;
    let aws = home.path().join(".aws");
    std::fs::create_dir_all(aws.join("sso/cache")).map_err(|e| e.to_string())?;
    std::fs::write(
        aws.join("config"),
        "[default]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = reader\n\n\
         [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n",
    )
    .map_err(|e| e.to_string())?;
    let cache = serde_json::json!({
        "startUrl": "https://corp.awsapps.com/start",
        "region": "eu-west-1",
        "accessToken": "sso-access-token",
        "expiresAt": support::imds::rfc3339(expires),
    });
    // The cache file is named by the SHA-1 of the session name, as `aws sso login` writes it.
    std::fs::write(
        aws.join("sso/cache")
            .join(format!("{}.json", sha1_hex(b"corp"))),
        cache.to_string(),
    )
    .map_err(|e| e.to_string())?;
    let mount = keyless(&server)
        .env("HOME", home.path().to_str().unwrap_or_default())
        .env(
            "AWS_CONFIG_FILE",
            aws.join("config").to_str().unwrap_or_default(),
        )
        .env("AWS_ENDPOINT_URL_SSO", &sso.endpoint())
        .start();
    soak("sso", &server, &mount, || {})
}

fn sha1_hex(data: &[u8]) -> String {
    use sha1::Digest as _;
    hex::encode(sha1::Sha1::digest(data))
}

/// One source's soak: a summary line, or what went wrong.
type Scenario = Box<dyn FnOnce() -> Result<String, String> + Send>;

/// Every credential source keeps a mount working across many rotations: zero errors, no
/// request ever refused by the server, at least 6 distinct keys.
#[test]
fn every_source_survives_continuous_rotation() {
    support::require_fuse();
    let scenarios: Vec<(&str, Scenario)> = vec![
        (
            "imds v2 only",
            Box::new(imds_scenario(ImdsMode::V2Only, "imds v2 only")),
        ),
        (
            "imds v1 only",
            Box::new(imds_scenario(ImdsMode::V1Only, "imds v1 only")),
        ),
        ("web identity", Box::new(web_identity_scenario)),
        ("container", Box::new(container_scenario)),
        ("profile role chain", Box::new(profile_role_scenario)),
        ("credential_process", Box::new(credential_process_scenario)),
        ("sso", Box::new(sso_scenario)),
    ];
    let handles: Vec<_> = scenarios
        .into_iter()
        .map(|(name, run)| (name, std::thread::spawn(run)))
        .collect();
    let mut failures = Vec::new();
    for (name, handle) in handles {
        match handle.join() {
            Ok(Ok(summary)) => println!("{summary}"),
            Ok(Err(problem)) => failures.push(problem),
            Err(_) => failures.push(format!("{name}: the scenario panicked")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// IMDS down for longer than the refresh window while the credentials are still valid:
/// zero errors; once it is back, new credentials are picked up.
#[test]
fn imds_outage_within_validity_is_invisible() {
    let server = server();
    let sink = accept(&server);
    let imds = ImdsEmulator::start(ImdsOptions {
        mode: ImdsMode::V2Only,
        credentials_lifetime: Duration::from_secs(40),
        rotation: ROTATION,
        on_issue: Some(Arc::new(move |c| {
            sink(
                &c.access_key_id,
                &c.secret_access_key,
                &c.token,
                c.expires_at,
            )
        })),
        ..ImdsOptions::default()
    });
    let mount = keyless(&server)
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.endpoint())
        .args(&["--imds-v2-only"])
        .start();
    let first_key = server.access_keys_used();
    imds.set_refuse_connections(true);
    // The renewal is due 20 s in (half of 40 s); the outage lasts past it.
    let report = workload(
        mount.path(),
        Instant::now() + Duration::from_secs(28),
        || {},
    );
    assert!(
        report.errors.is_empty(),
        "{:?}\n{}",
        report.errors,
        tail(&mount.stderr_log())
    );
    assert!(mount
        .stderr_log()
        .contains("still serving the current ones"));
    imds.set_refuse_connections(false);
    let report = workload(
        mount.path(),
        Instant::now() + Duration::from_secs(10),
        || {},
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let keys = server.access_keys_used();
    assert!(
        keys.len() > first_key.len(),
        "no new key after the outage: {keys:?}"
    );
    assert!(server
        .requests()
        .iter()
        .all(|r| r.status.is_some_and(|s| s < 400) || asks_for_a_marker(r)));
}

/// The server invalidates the current key early: one forced renewal serves every request
/// that saw the rejection, each is retried, and the application sees no error.
#[test]
fn early_invalidation_forces_one_renewal_and_retries() {
    let server = server();
    let sink = accept(&server);
    let imds = Arc::new(ImdsEmulator::start(ImdsOptions {
        mode: ImdsMode::V2Only,
        credentials_lifetime: Duration::from_secs(3600),
        rotation: Duration::from_secs(3600),
        on_issue: Some(Arc::new(move |c| {
            sink(
                &c.access_key_id,
                &c.secret_access_key,
                &c.token,
                c.expires_at,
            )
        })),
        ..ImdsOptions::default()
    }));
    let mount = Arc::new(
        keyless(&server)
            .env("AWS_EC2_METADATA_DISABLED", "false")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.endpoint())
            .args(&["--metadata-ttl", "0"])
            .start(),
    );
    let old = imds.issued();
    assert_eq!(old.len(), 1);
    let gets_before = imds.credential_gets();
    // The instance's key is revoked; IMDS already hands out its successor.
    imds.rotate_now();
    assert!(server.remove_key(&old[0].access_key_id));
    let readers: Vec<_> = (0..8)
        .map(|i| {
            let mount = Arc::clone(&mount);
            std::thread::spawn(move || {
                let path = mount.path().join(format!("f{i}"));
                std::fs::read(&path).map(|b| b.len())
            })
        })
        .collect();
    for r in readers {
        let outcome = r.join().expect("reader thread");
        assert_eq!(
            outcome.map_err(|e| e.to_string()),
            Ok(256 * 1024),
            "{}",
            tail(&mount.stderr_log())
        );
    }
    let renewals = imds.credential_gets() - gets_before;
    assert_eq!(renewals, 1, "expected exactly one forced renewal");
    assert_eq!(imds.issued().len(), 2);
}

/// A 1 GiB file written while the instance role's credentials rotate every 10 s: every
/// part and the completion sign with the current snapshot; the object arrives whole and
/// the server refused nothing.
#[test]
fn large_upload_spans_rotations() {
    let server = Arc::new(TestServer::start());
    server.create_bucket("bkt");
    let sink = accept(&server);
    let imds = ImdsEmulator::start(ImdsOptions {
        mode: ImdsMode::V2Only,
        credentials_lifetime: LIFETIME,
        rotation: ROTATION,
        on_issue: Some(Arc::new(move |c| {
            sink(
                &c.access_key_id,
                &c.secret_access_key,
                &c.token,
                c.expires_at,
            )
        })),
        ..ImdsOptions::default()
    });
    let mount = keyless(&server)
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.endpoint())
        .start();
    let started = Instant::now();
    let chunk: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    let mut expected = sha2::Sha256::default();
    let mut f = std::fs::File::create(mount.path().join("big.bin")).expect("create");
    // 1 GiB written at no more than 1 GiB per 25 s, so the parts go up across at least one
    // renewal however fast the machine is (a 30 s credential is renewed about halfway).
    const TOTAL: u64 = 1 << 30;
    const SPAN: Duration = Duration::from_secs(25);
    let mut written = 0u64;
    while written < TOTAL {
        let due = (TOTAL as f64 * (started.elapsed().as_secs_f64() / SPAN.as_secs_f64())) as u64;
        if written > due {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        std::io::Write::write_all(&mut f, &chunk).expect("write");
        sha2::Digest::update(&mut expected, &chunk);
        written += chunk.len() as u64;
    }
    f.sync_all().expect("fsync");
    drop(f);
    let stored = server.get("bkt", "big.bin").expect("object");
    assert_eq!(stored.len() as u64, written);
    let got = s3rolefs::sigv4::sha256_hex(&stored);
    let want = hex::encode(sha2::Digest::finalize(expected));
    assert_eq!(got, want);
    assert_eq!(server.open_multipart_uploads("bkt"), 0);
    // 404s are the lookups of the new name before it existed; nothing may be refused.
    let refused: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.status.is_none_or(|s| s >= 400 && s != 404))
        .map(|r| format!("{:?} {} -> {:?}", r.op, r.uri, r.status))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    let keys = server.access_keys_used();
    assert!(keys.len() >= 2, "the upload used {} key(s)", keys.len());
    println!(
        "{} MiB in {:?} with {} distinct keys",
        written >> 20,
        started.elapsed(),
        keys.len()
    );
}

/// A HEAD of a directory's marker that is not there (404): how a directory with no marker
/// answers whether it stores a mode, not a refused request.
fn asks_for_a_marker(r: &support::RequestRecord) -> bool {
    r.op == support::Op::HeadObject
        && r.status == Some(404)
        && r.key.as_deref().is_some_and(|k| k.ends_with('/'))
}
