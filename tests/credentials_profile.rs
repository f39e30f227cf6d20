//! The profile provider end to end: real files in a temporary HOME, real programs for
//! `credential_process`, the STS and SSO emulators, and the S3 test server to prove the
//! credentials handed out are accepted.

mod support;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use s3rolefs::credentials::profile::{profile_region, MfaPrompt, ProfileProvider};
use s3rolefs::credentials::{CredentialsError, ProvideCredentials, ProviderContext};
use support::imds::{ImdsEmulator, ImdsOptions};
use support::sso::{SsoEmulator, SsoOptions};
use support::sts::{StsEmulator, StsOptions};
use support::{TestClient, TestServer};

/// A temporary HOME with `~/.aws`, and the variables a test sets.
struct Home {
    dir: tempfile::TempDir,
    vars: HashMap<String, String>,
}

impl Home {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(".aws/sso/cache")).expect("mkdir .aws");
        let mut vars = HashMap::new();
        vars.insert("HOME".into(), dir.path().display().to_string());
        Home { dir, vars }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(self, text: &str) -> Self {
        std::fs::write(self.path().join(".aws/config"), text).expect("write config");
        self
    }

    fn credentials(self, text: &str) -> Self {
        std::fs::write(self.path().join(".aws/credentials"), text).expect("write credentials");
        self
    }

    fn var(mut self, k: &str, v: &str) -> Self {
        self.vars.insert(k.into(), v.into());
        self
    }

    fn ctx(&self) -> ProviderContext {
        ProviderContext::with_vars(self.vars.clone())
    }

    /// An executable script in HOME.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }
}

fn provider(home: &Home) -> ProfileProvider {
    ProfileProvider::from_context(&home.ctx(), None).expect("profile resolves")
}

/// Static keys with a session token come through, and the source names the profile.
#[tokio::test]
async fn static_profile_keys_with_session_token() {
    let home = Home::new().credentials(
        "[default]\naws_access_key_id = AKIDSTATIC\naws_secret_access_key = SECRET\n\
         aws_session_token = TOKEN\n",
    );
    let c = provider(&home).provide().await.expect("credentials");
    assert_eq!(c.access_key_id, "AKIDSTATIC");
    assert_eq!(c.secret_access_key.expose(), "SECRET");
    assert_eq!(c.session_token.expect("token").expose(), "TOKEN");
    assert_eq!(c.source, "profile default: static keys");
}

/// `--profile` wins over `AWS_PROFILE`, which wins over `default`.
#[tokio::test]
async fn explicit_profile_beats_aws_profile_beats_default() {
    let home = Home::new()
        .credentials(
            "[default]\naws_access_key_id = D\naws_secret_access_key = s\n\
             [envp]\naws_access_key_id = E\naws_secret_access_key = s\n\
             [flagp]\naws_access_key_id = F\naws_secret_access_key = s\n",
        )
        .var("AWS_PROFILE", "envp");
    let id = |ctx: ProviderContext| async move {
        ProfileProvider::from_context(&ctx, None)
            .expect("resolves")
            .provide()
            .await
            .expect("credentials")
            .access_key_id
    };
    assert_eq!(id(home.ctx()).await, "E");
    let mut flagged = home.ctx();
    flagged.profile = Some("flagp".into());
    assert_eq!(id(flagged).await, "F");
    let no_env = Home {
        vars: HashMap::from([("HOME".into(), home.path().display().to_string())]),
        dir: tempfile::tempdir().expect("tempdir"),
    };
    assert_eq!(id(no_env.ctx()).await, "D");
}

/// A profile asked for by name that does not exist is Invalid, naming it and the files.
#[test]
fn missing_explicit_profile_is_invalid_and_names_files() {
    let home = Home::new()
        .credentials("[default]\naws_access_key_id = D\naws_secret_access_key = s\n")
        .var("AWS_PROFILE", "nope");
    let err = ProfileProvider::from_context(&home.ctx(), None)
        .err()
        .expect("error");
    let text = err.to_string();
    assert!(matches!(err, CredentialsError::Invalid { .. }), "{text}");
    assert!(text.contains("`nope`"), "{text}");
    assert!(
        text.contains(".aws/config") && text.contains(".aws/credentials"),
        "{text}"
    );
}

/// No files and no profile asked for: the source does not apply, the chain moves on.
#[test]
fn absent_default_profile_is_not_configured() {
    let home = Home::new();
    let err = ProfileProvider::from_context(&home.ctx(), None)
        .err()
        .expect("error");
    assert!(err.is_not_configured(), "{err}");
}

/// A default profile holding only settings (region) lets the chain move on.
#[test]
fn settings_only_profile_is_not_configured() {
    let home = Home::new().config("[default]\nregion = eu-central-1\n");
    let err = ProfileProvider::from_context(&home.ctx(), None)
        .err()
        .expect("error");
    assert!(err.is_not_configured(), "{err}");
    assert_eq!(profile_region(&home.ctx()).as_deref(), Some("eu-central-1"));
}

/// A source_profile cycle is Invalid and names every profile on it.
#[test]
fn source_profile_cycle_is_invalid_and_named() {
    let home = Home::new()
        .config(
            "[profile a]\nrole_arn = arn:aws:iam::123456789012:role/A\nsource_profile = b\n\
             [profile b]\nrole_arn = arn:aws:iam::123456789012:role/B\nsource_profile = a\n",
        )
        .var("AWS_PROFILE", "a");
    let err = ProfileProvider::from_context(&home.ctx(), None)
        .err()
        .expect("error");
    assert!(matches!(err, CredentialsError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("a → b → a"), "{err}");
}

/// Both source_profile and credential_source is Invalid.
#[test]
fn both_source_profile_and_credential_source_is_invalid() {
    let home = Home::new()
        .config(
            "[profile a]\nrole_arn = arn:aws:iam::123456789012:role/A\nsource_profile = b\n\
             credential_source = Environment\n\
             [profile b]\naws_access_key_id = K\naws_secret_access_key = S\n",
        )
        .var("AWS_PROFILE", "a");
    let err = ProfileProvider::from_context(&home.ctx(), None)
        .err()
        .expect("error");
    assert!(matches!(err, CredentialsError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("keep only one"), "{err}");
}

/// Keys rotated in the file under a live provider are used at the next provide.
#[tokio::test]
async fn rotated_static_keys_are_reread() {
    let home =
        Home::new().credentials("[default]\naws_access_key_id = OLD\naws_secret_access_key = s\n");
    let p = provider(&home);
    assert_eq!(p.provide().await.expect("first").access_key_id, "OLD");
    let _home = home.credentials("[default]\naws_access_key_id = NEW\naws_secret_access_key = s\n");
    assert_eq!(p.provide().await.expect("second").access_key_id, "NEW");
}

/// credential_process runs on every provide and its JSON becomes the credentials.
#[tokio::test]
async fn credential_process_runs_again_on_every_call() {
    let home = Home::new();
    let counter = home.path().join("count");
    let script = home.script(
        "creds.sh",
        &format!(
            "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}\n\
             echo '{{\"Version\": 1, \"AccessKeyId\": \"AKIDPROC'$n'\", \"SecretAccessKey\": \"S\", \
             \"SessionToken\": \"T\", \"Expiration\": \"2099-01-01T00:00:00Z\"}}'",
            c = counter.display()
        ),
    );
    let home = home.config(&format!(
        "[default]\ncredential_process = {} --flag 'quoted arg'\n",
        script.display()
    ));
    let p = provider(&home);
    let first = p.provide().await.expect("first");
    let second = p.provide().await.expect("second");
    assert_eq!(first.access_key_id, "AKIDPROC1");
    assert_eq!(second.access_key_id, "AKIDPROC2");
    assert!(first.expiry.is_some());
    assert_eq!(first.source, "profile default: credential_process");
}

/// A Version other than 1 is refused.
#[tokio::test]
async fn credential_process_with_bad_version_is_refused() {
    let home = Home::new();
    let script = home.script(
        "v2.sh",
        "echo '{\"Version\": 2, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"SECRETV2\"}'",
    );
    let home = home.config(&format!(
        "[default]\ncredential_process = {}\n",
        script.display()
    ));
    let err = provider(&home).provide().await.expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("Version 2"), "{text}");
    assert!(!text.contains("SECRETV2"), "{text}");
}

/// A failing program's error carries its exit status and first stderr line, not stdout.
#[tokio::test]
async fn credential_process_failure_reports_status_and_stderr() {
    let home = Home::new();
    let script = home.script(
        "fail.sh",
        "echo 'SECRET-ON-STDOUT'\necho 'token expired, log in again' >&2\necho second >&2\nexit 3",
    );
    let home = home.config(&format!(
        "[default]\ncredential_process = {}\n",
        script.display()
    ));
    let err = provider(&home).provide().await.expect_err("fails");
    let text = err.to_string();
    assert!(text.contains("exit status 3"), "{text}");
    assert!(text.contains("token expired, log in again"), "{text}");
    assert!(!text.contains("second"), "{text}");
    assert!(!text.contains("SECRET-ON-STDOUT"), "{text}");
}

/// A shell pipeline in credential_process runs through sh.
#[tokio::test]
async fn credential_process_pipeline_runs_through_a_shell() {
    let home = Home::new().config(
        "[default]\ncredential_process = printf '%s' '{\"Version\": 1, \"AccessKeyId\": \"PIPED\", \
         \"SecretAccessKey\": \"S\"}' | cat\n",
    );
    let c = provider(&home).provide().await.expect("credentials");
    assert_eq!(c.access_key_id, "PIPED");
    assert!(c.expiry.is_none());
}

/// credential_source = Environment without the variables is an error, not a silent skip.
#[tokio::test]
async fn credential_source_environment_requires_the_variables() {
    let home = Home::new().config(
        "[profile a]\nrole_arn = arn:aws:iam::123456789012:role/A\ncredential_source = Environment\n",
    );
    let mut ctx = home.ctx();
    ctx.profile = Some("a".into());
    ctx.region = Some("us-east-1".into());
    let p = ProfileProvider::from_context(&ctx, None).expect("resolves");
    assert_eq!(
        p.description(),
        "profile a: credential_source Environment → assume role arn:aws:iam::123456789012:role/A"
    );
    let err = p.provide().await.expect_err("no environment keys");
    assert!(matches!(err, CredentialsError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
}

/// A role with mfa_serial and no way to ask for the code is refused up front.
#[test]
fn mfa_without_prompt_is_invalid() {
    let home = Home::new().config(
        "[profile a]\nrole_arn = arn:aws:iam::123456789012:role/A\nsource_profile = b\n\
         mfa_serial = arn:aws:iam::123456789012:mfa/me\n\
         [profile b]\naws_access_key_id = K\naws_secret_access_key = S\n",
    );
    let mut ctx = home.ctx();
    ctx.profile = Some("a".into());
    let err = ProfileProvider::from_context(&ctx, None)
        .err()
        .expect("error");
    assert!(err.to_string().contains("MFA"), "{err}");
}

const SSO_START_URL: &str = "https://d-1234567890.awsapps.com/start";

/// A HOME with an sso-session profile and a cache file for it.
fn sso_home(emulator: &SsoEmulator, cache: serde_json::Value) -> Home {
    let home = Home::new()
        .config(&format!(
            "[profile dev]\nsso_session = corp\nsso_account_id = 111122223333\n\
             sso_role_name = Reader\nregion = eu-west-1\n\
             [sso-session corp]\nsso_start_url = {SSO_START_URL}\nsso_region = eu-west-1\n"
        ))
        .var("AWS_PROFILE", "dev")
        .var("AWS_ENDPOINT_URL_SSO", &emulator.endpoint())
        .var("AWS_ENDPOINT_URL_SSO_OIDC", &emulator.endpoint());
    // sha1("corp"), as `aws sso login` names the file.
    let path = home
        .path()
        .join(".aws/sso/cache/ee0bfd2552fbd840c02cc48b6e823320543c450f.json");
    std::fs::write(&path, cache.to_string()).expect("write cache");
    home
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// A valid cached token buys role credentials the S3 server accepts.
#[tokio::test]
async fn sso_cached_token_gets_role_credentials_that_s3_accepts() {
    let server = Arc::new(TestServer::start());
    server.create_bucket("bucket-one");
    let s3 = server.clone();
    let emulator = SsoEmulator::start(SsoOptions {
        on_issue: Some(Arc::new(move |c| {
            s3.add_session_key(
                &c.access_key_id,
                &c.secret_access_key,
                &c.session_token,
                c.expires_at,
            )
        })),
        ..SsoOptions::default()
    });
    let expires = SystemTime::now() + Duration::from_secs(3600);
    emulator.accept_access_token("cached-token", expires);
    let home = sso_home(
        &emulator,
        serde_json::json!({"accessToken": "cached-token", "expiresAt": rfc3339(expires),
                           "startUrl": SSO_START_URL, "region": "eu-west-1"}),
    );
    let c = provider(&home).provide().await.expect("credentials");
    let requests = emulator.role_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].account_id.as_deref(), Some("111122223333"));
    assert_eq!(requests[0].role_name.as_deref(), Some("Reader"));
    assert_eq!(emulator.create_token_calls(), 0);
    assert_eq!(c.source, "profile dev: sso 111122223333/Reader");
    let token = c
        .session_token
        .as_ref()
        .expect("token")
        .expose()
        .to_string();
    let reply = TestClient::new(&server)
        .with_credentials(&c.access_key_id, c.secret_access_key.expose())
        .with_session_token(&token)
        .request("GET", "bucket-one", "")
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// A token about to expire is renewed with its refresh token and the cache written back
/// (new token, rotated refresh token, mode 0600).
#[tokio::test]
async fn sso_token_near_expiry_is_refreshed_and_cache_written_back() {
    let emulator = SsoEmulator::start(SsoOptions::default());
    let soon = SystemTime::now() + Duration::from_secs(60);
    emulator.accept_access_token("old-token", soon);
    emulator.accept_refresh_token("refresh-1", "client-id", "client-secret");
    let home = sso_home(
        &emulator,
        serde_json::json!({"accessToken": "old-token", "expiresAt": rfc3339(soon),
                           "refreshToken": "refresh-1", "clientId": "client-id",
                           "clientSecret": "client-secret",
                           "registrationExpiresAt": "2099-01-01T00:00:00Z",
                           "region": "eu-west-1", "startUrl": SSO_START_URL}),
    );
    provider(&home).provide().await.expect("credentials");
    assert_eq!(emulator.create_token_calls(), 1);
    let used = emulator.role_requests()[0]
        .bearer_token
        .clone()
        .expect("bearer");
    assert_ne!(used, "old-token");
    let path = home
        .path()
        .join(".aws/sso/cache/ee0bfd2552fbd840c02cc48b6e823320543c450f.json");
    let cache: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("cache")).expect("json");
    assert_eq!(cache["accessToken"].as_str(), Some(used.as_str()));
    assert_ne!(cache["refreshToken"].as_str(), Some("refresh-1"));
    assert_eq!(
        cache["clientId"].as_str(),
        Some("client-id"),
        "other fields kept"
    );
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let left = s3rolefs_time(cache["expiresAt"].as_str().expect("expiresAt"));
    assert!(left > SystemTime::now() + Duration::from_secs(3600));
}

fn s3rolefs_time(text: &str) -> SystemTime {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .expect("rfc3339")
        .into()
}

/// An expired token without a refresh token says to log in again, naming the profile.
#[tokio::test]
async fn sso_expired_token_without_refresh_says_to_log_in() {
    let emulator = SsoEmulator::start(SsoOptions::default());
    let past = SystemTime::now() - Duration::from_secs(60);
    let home = sso_home(
        &emulator,
        serde_json::json!({"accessToken": "stale", "expiresAt": rfc3339(past)}),
    );
    let err = provider(&home).provide().await.expect_err("expired");
    assert!(
        err.to_string()
            .contains("SSO session expired: run aws sso login --profile dev"),
        "{err}"
    );
    assert!(emulator.role_requests().is_empty());
}

/// A token the portal rejects (revoked) is an error naming the login fix, never the token.
#[tokio::test]
async fn sso_rejected_token_is_reported_without_the_token() {
    let emulator = SsoEmulator::start(SsoOptions::default());
    let later = SystemTime::now() + Duration::from_secs(3600);
    let home = sso_home(
        &emulator,
        serde_json::json!({"accessToken": "revoked-token-value", "expiresAt": rfc3339(later)}),
    );
    let err = provider(&home).provide().await.expect_err("rejected");
    let text = err.to_string();
    assert!(
        text.contains("401") && text.contains("aws sso login"),
        "{text}"
    );
    assert!(!text.contains("revoked-token-value"), "{text}");
}

const ROLE_A: &str = "arn:aws:iam::123456789012:role/A";
const ROLE_B: &str = "arn:aws:iam::123456789012:role/B";

/// An STS emulator whose issued keys the S3 server accepts, and a server with a bucket.
fn sts_and_s3() -> (StsEmulator, Arc<TestServer>) {
    let server = Arc::new(TestServer::start());
    server.create_bucket("bucket-one");
    let s3 = server.clone();
    let sts = StsEmulator::start(StsOptions {
        on_issue: Some(Arc::new(move |c| {
            s3.add_session_key(
                &c.access_key_id,
                &c.secret_access_key,
                &c.session_token,
                c.expires_at,
            )
        })),
        ..StsOptions::default()
    });
    (sts, server)
}

async fn s3_accepts(server: &TestServer, c: &s3rolefs::credentials::Credentials) -> bool {
    let mut client =
        TestClient::new(server).with_credentials(&c.access_key_id, c.secret_access_key.expose());
    if let Some(token) = &c.session_token {
        client = client.with_session_token(token.expose());
    }
    let reply = client.request("GET", "bucket-one", "").send().await;
    reply.status == 200
}

/// source_profile → role_arn: AssumeRole signed with the source's keys, carrying the
/// role's options; every provide assumes the role again; S3 accepts the result.
#[tokio::test]
async fn source_profile_role_is_assumed_with_its_keys_on_every_provide() {
    let (sts, server) = sts_and_s3();
    sts.trust_key("AKIDBASE", "base-secret");
    let home = Home::new()
        .config(&format!(
            "[profile dev]\nrole_arn = {ROLE_A}\nsource_profile = base\nregion = eu-west-1\n\
             external_id = ext-123\nrole_session_name = dev-session\nduration_seconds = 1800\n"
        ))
        .credentials("[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = base-secret\n")
        .var("AWS_PROFILE", "dev")
        .var("AWS_ENDPOINT_URL_STS", &sts.endpoint());
    let p = provider(&home);
    let first = p.provide().await.expect("first");
    let second = p.provide().await.expect("second");
    assert_eq!(
        first.source,
        format!("profile dev: source_profile base (static keys) → assume role {ROLE_A}")
    );
    assert_ne!(first.access_key_id, second.access_key_id);
    let requests = sts.requests();
    assert_eq!(requests.len(), 2, "one AssumeRole per provide");
    let r = &requests[0];
    assert_eq!(r.action, "AssumeRole");
    assert_eq!(r.caller_key.as_deref(), Some("AKIDBASE"));
    assert_eq!(r.signature_valid, Some(true));
    assert_eq!(r.scope_region.as_deref(), Some("eu-west-1"));
    assert_eq!(r.param("RoleArn"), Some(ROLE_A));
    assert_eq!(r.param("ExternalId"), Some("ext-123"));
    assert_eq!(r.param("RoleSessionName"), Some("dev-session"));
    assert_eq!(r.param("DurationSeconds"), Some("1800"));
    assert!(s3_accepts(&server, &second).await);
}

/// Chained roles are assumed innermost first, each with the previous hop's credentials.
#[tokio::test]
async fn chained_roles_are_assumed_in_order() {
    let (sts, server) = sts_and_s3();
    sts.trust_key("AKIDROOT", "root-secret");
    let home = Home::new()
        .config(&format!(
            "[profile a]\nrole_arn = {ROLE_A}\nsource_profile = b\n\
             [profile b]\nrole_arn = {ROLE_B}\nsource_profile = root\n\
             [profile root]\naws_access_key_id = AKIDROOT\naws_secret_access_key = root-secret\n"
        ))
        .var("AWS_PROFILE", "a")
        .var("AWS_REGION", "us-east-1")
        .var("AWS_ENDPOINT_URL_STS", &sts.endpoint());
    let c = provider(&home).provide().await.expect("credentials");
    let requests = sts.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].param("RoleArn"), Some(ROLE_B));
    assert_eq!(requests[0].caller_key.as_deref(), Some("AKIDROOT"));
    assert_eq!(requests[1].param("RoleArn"), Some(ROLE_A));
    let issued_b = &sts.issued()[0];
    assert_eq!(
        requests[1].caller_key.as_deref(),
        Some(issued_b.access_key_id.as_str())
    );
    assert!(requests[1].had_session_token);
    assert_eq!(requests[1].signature_valid, Some(true));
    assert!(s3_accepts(&server, &c).await);
}

/// credential_source = Environment: the environment's keys sign the AssumeRole.
#[tokio::test]
async fn credential_source_environment_assumes_role_with_env_keys() {
    let (sts, server) = sts_and_s3();
    sts.trust_key("AKIDENV", "env-secret");
    let home = Home::new()
        .config(&format!(
            "[profile a]\nrole_arn = {ROLE_A}\ncredential_source = Environment\n"
        ))
        .var("AWS_PROFILE", "a")
        .var("AWS_REGION", "us-east-1")
        .var("AWS_ACCESS_KEY_ID", "AKIDENV")
        .var("AWS_SECRET_ACCESS_KEY", "env-secret")
        .var("AWS_ENDPOINT_URL_STS", &sts.endpoint());
    let c = provider(&home).provide().await.expect("credentials");
    let r = &sts.requests()[0];
    assert_eq!(r.caller_key.as_deref(), Some("AKIDENV"));
    assert_eq!(r.signature_valid, Some(true));
    assert!(s3_accepts(&server, &c).await);
}

/// mfa_serial: the prompt is asked with the device serial and its code goes to STS.
#[tokio::test]
async fn mfa_code_from_the_prompt_reaches_sts() {
    let (sts, _server) = sts_and_s3();
    sts.trust_key("AKIDBASE", "base-secret");
    let home = Home::new()
        .config(&format!(
            "[profile dev]\nrole_arn = {ROLE_A}\nsource_profile = base\n\
             mfa_serial = arn:aws:iam::123456789012:mfa/me\n\
             [profile base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = base-secret\n"
        ))
        .var("AWS_PROFILE", "dev")
        .var("AWS_REGION", "us-east-1")
        .var("AWS_ENDPOINT_URL_STS", &sts.endpoint());
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    let prompt: MfaPrompt = Arc::new(move |serial: &str| {
        seen.lock().expect("lock").push(serial.to_string());
        Ok("123456".to_string())
    });
    let p = ProfileProvider::from_context(&home.ctx(), Some(prompt)).expect("resolves");
    p.provide().await.expect("credentials");
    assert_eq!(
        *asked.lock().expect("lock"),
        vec!["arn:aws:iam::123456789012:mfa/me"]
    );
    let r = &sts.requests()[0];
    assert_eq!(
        r.param("SerialNumber"),
        Some("arn:aws:iam::123456789012:mfa/me")
    );
    assert_eq!(r.param("TokenCode"), Some("123456"));
}

/// web_identity_token_file + role_arn in a profile: AssumeRoleWithWebIdentity with the
/// file's token, read again on every provide.
#[tokio::test]
async fn profile_web_identity_reads_token_file_each_time() {
    let (sts, server) = sts_and_s3();
    let home = Home::new();
    let token_file = home.path().join("token.jwt");
    std::fs::write(&token_file, "first-token").expect("token");
    let home = home
        .config(&format!(
            "[default]\nrole_arn = {ROLE_A}\nweb_identity_token_file = {}\n\
             role_session_name = wi\n",
            token_file.display()
        ))
        .var("AWS_REGION", "us-east-1")
        .var("AWS_ENDPOINT_URL_STS", &sts.endpoint());
    let p = provider(&home);
    sts.expect_web_identity_token("first-token");
    let c = p.provide().await.expect("first");
    std::fs::write(&token_file, "second-token").expect("rotate token");
    sts.expect_web_identity_token("second-token");
    p.provide().await.expect("second, with the rotated token");
    let requests = sts.requests();
    assert_eq!(requests[0].action, "AssumeRoleWithWebIdentity");
    assert_eq!(requests[0].param("RoleSessionName"), Some("wi"));
    assert_eq!(requests[1].param("WebIdentityToken"), Some("second-token"));
    assert!(s3_accepts(&server, &c).await);
}

/// credential_source = Ec2InstanceMetadata: the instance role (found through the profile's
/// own ec2_metadata_service_endpoint key) signs the AssumeRole.
#[tokio::test]
async fn credential_source_instance_metadata_uses_the_profile_imds_endpoint() {
    let (sts, server) = sts_and_s3();
    let imds = ImdsEmulator::start(ImdsOptions::default());
    let home = Home::new()
        .config(&format!(
            "[profile a]\nrole_arn = {ROLE_A}\ncredential_source = Ec2InstanceMetadata\n\
             ec2_metadata_service_endpoint = {}\nregion = us-east-1\n",
            imds.endpoint()
        ))
        .var("AWS_PROFILE", "a")
        .var("AWS_ENDPOINT_URL_STS", &sts.endpoint());
    let p = provider(&home);
    assert_eq!(p.get("region").as_deref(), Some("us-east-1"));
    let c = p.provide().await.expect("credentials");
    let instance_key = imds.issued()[0].access_key_id.clone();
    let r = &sts.requests()[0];
    assert_eq!(r.caller_key.as_deref(), Some(instance_key.as_str()));
    assert!(r.had_session_token);
    assert!(imds.credential_gets() >= 1);
    assert!(s3_accepts(&server, &c).await);
}

/// A legacy SSO profile (start URL and region in the profile) finds its cache by the
/// SHA-1 of the start URL.
#[tokio::test]
async fn sso_legacy_profile_uses_start_url_cache() {
    let emulator = SsoEmulator::start(SsoOptions::default());
    let expires = SystemTime::now() + Duration::from_secs(3600);
    emulator.accept_access_token("legacy-token", expires);
    let home = Home::new()
        .config(&format!(
            "[default]\nsso_start_url = {SSO_START_URL}\nsso_region = us-east-1\n\
             sso_account_id = 111122223333\nsso_role_name = Admin\n"
        ))
        .var("AWS_ENDPOINT_URL_SSO", &emulator.endpoint());
    // sha1 of SSO_START_URL, computed independently with Python's hashlib.
    let path = home
        .path()
        .join(".aws/sso/cache/7487b5b67d5fa1132cf33fa93ae51ef38cc37752.json");
    let cache = serde_json::json!({"accessToken": "legacy-token", "expiresAt": rfc3339(expires)});
    std::fs::write(&path, cache.to_string()).expect("cache");
    provider(&home).provide().await.expect("credentials");
    let requests = emulator.role_requests();
    assert_eq!(requests[0].bearer_token.as_deref(), Some("legacy-token"));
    assert_eq!(requests[0].role_name.as_deref(), Some("Admin"));
}

/// An sso_session profile without account and role (a token-only profile) cannot give
/// credentials and says which keys to add.
#[test]
fn sso_token_only_profile_is_invalid() {
    let home = Home::new().config(
        "[default]\nsso_session = corp\n[sso-session corp]\n\
         sso_start_url = https://x.awsapps.com/start\nsso_region = us-east-1\n",
    );
    let err = ProfileProvider::from_context(&home.ctx(), None)
        .err()
        .expect("error");
    assert!(err.to_string().contains("sso_account_id"), "{err}");
}
