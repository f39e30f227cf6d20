//! The profile provider end to end: real files in a temporary HOME, real programs for
//! `credential_process`, the SSO emulator for IAM Identity Center (and the S3 test server
//! to prove the credentials it hands out are accepted).

mod support;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use s3rolefs::credentials::profile::{profile_region, ProfileProvider};
use s3rolefs::credentials::{CredentialsError, ProvideCredentials, ProviderContext};
use support::sso::{SsoEmulator, SsoOptions};
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
