//! The STS-based credential sources against the STS emulator on 127.0.0.1: AssumeRole on top
//! of a base source, web identity with a rotating token file, SAML, retries, error texts and
//! redaction; and a replay of every STS exchange recorded in the smithy-rs conformance data.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use s3rolefs::credentials::sts::{
    AssumeRoleParams, AssumeRoleProvider, Mfa, SamlParams, SamlProvider, StsConfig,
};
use s3rolefs::credentials::web_identity::{WebIdentityParams, WebIdentityProvider};
use s3rolefs::credentials::{
    BoxFuture, Credentials, CredentialsCell, CredentialsError, ProvideCredentials, ProviderContext,
    Secret, SharedProvider, SkewedClock,
};
use s3rolefs::s3::client::{ClientConfig, S3Client};
use s3rolefs::s3::{GetObjectParams, ObjectClient};
use support::sts::{StsEmulator, StsFault, StsOptions};
use support::TestServer;

const ROLE: &str = "arn:aws:iam::123456789012:role/reader";
const BASE_KEY: &str = "AKIDBASEEXAMPLE";
const BASE_SECRET: &str = "base-secret-key-value";
const BASE_TOKEN: &str = "base-session-token-value-that-must-never-show";

/// A base source handing out fixed credentials and counting how often it was asked.
struct StaticBase {
    token: Option<&'static str>,
    calls: AtomicUsize,
}

impl ProvideCredentials for StaticBase {
    fn name(&self) -> &str {
        "static base"
    }

    fn provide(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            Ok(Credentials {
                access_key_id: BASE_KEY.into(),
                secret_access_key: Secret::new(BASE_SECRET),
                session_token: self.token.map(Secret::new),
                expiry: None,
                source: "static base".into(),
            })
        })
    }
}

fn base(token: Option<&'static str>) -> Arc<StaticBase> {
    Arc::new(StaticBase {
        token,
        calls: AtomicUsize::new(0),
    })
}

fn sts_config(sts: &StsEmulator) -> StsConfig {
    StsConfig {
        region: Some("eu-west-1".into()),
        endpoint: Some(sts.endpoint()),
        ..StsConfig::default()
    }
}

/// An emulator that can verify the base key's signatures.
fn emulator(token: Option<&str>) -> StsEmulator {
    let sts = StsEmulator::start(StsOptions::default());
    match token {
        Some(t) => sts.trust_session_key(BASE_KEY, BASE_SECRET, t),
        None => sts.trust_key(BASE_KEY, BASE_SECRET),
    }
    sts
}

fn assume(
    sts: &StsEmulator,
    base: Arc<StaticBase>,
    params: AssumeRoleParams,
) -> AssumeRoleProvider {
    let base: SharedProvider = base;
    AssumeRoleProvider::new(base, params, sts_config(sts)).expect("valid parameters")
}

fn role(duration: Option<u64>) -> AssumeRoleParams {
    AssumeRoleParams {
        role_arn: ROLE.into(),
        duration: duration.map(Duration::from_secs),
        ..AssumeRoleParams::default()
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// AssumeRole is signed for sts in the configured region with the base key, carries the
/// base's session token, and returns exactly what STS issued.
#[tokio::test]
async fn assume_role_signs_with_base_credentials_and_token() {
    let sts = emulator(Some(BASE_TOKEN));
    let base = base(Some(BASE_TOKEN));
    let provider = assume(&sts, base.clone(), role(None));

    let creds = provider.provide().await.expect("assume role");

    let requests = sts.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.action, "AssumeRole");
    assert_eq!(r.param("Version"), Some("2011-06-15"));
    assert_eq!(r.param("RoleArn"), Some(ROLE));
    assert_eq!(r.caller_key.as_deref(), Some(BASE_KEY));
    assert!(r.had_session_token, "the base session token must be sent");
    assert_eq!(r.signature_valid, Some(true));
    assert_eq!(r.scope_service.as_deref(), Some("sts"));
    assert_eq!(r.scope_region.as_deref(), Some("eu-west-1"));
    assert!(r
        .param("RoleSessionName")
        .is_some_and(|n| n.starts_with("s3rolefs-")));

    let issued = &sts.issued()[0];
    assert_eq!(creds.access_key_id, issued.access_key_id);
    assert_eq!(creds.secret_access_key.expose(), issued.secret_access_key);
    assert_eq!(
        creds.session_token.as_ref().map(Secret::expose),
        Some(issued.session_token.as_str())
    );
    let expiry = creds.expiry.expect("expiry");
    let skew = expiry
        .duration_since(issued.expires_at)
        .unwrap_or_else(|e| e.duration());
    assert!(skew < Duration::from_secs(1), "expiry {skew:?} off");
    assert!(creds.source.contains("static base") && creds.source.contains(ROLE));
    assert_eq!(base.calls.load(Ordering::SeqCst), 1);
}

/// Every provide asks the base afresh (a refreshed instance role under it is used).
#[tokio::test]
async fn each_provide_asks_the_base_again() {
    let sts = emulator(None);
    let base = base(None);
    let provider = assume(&sts, base.clone(), role(None));
    let first = provider.provide().await.expect("first");
    let second = provider.provide().await.expect("second");
    assert_ne!(first.access_key_id, second.access_key_id);
    assert_eq!(base.calls.load(Ordering::SeqCst), 2);
}

/// External id, session name and duration reach STS as given.
#[tokio::test]
async fn external_id_session_name_and_duration_are_sent() {
    let sts = emulator(None);
    let mut params = role(Some(7200));
    params.external_id = Some("ext-123".into());
    params.session_name = Some("nightly-backup".into());
    let provider = assume(&sts, base(None), params);
    provider.provide().await.expect("assume role");
    let r = &sts.requests()[0];
    assert_eq!(r.param("ExternalId"), Some("ext-123"));
    assert_eq!(r.param("RoleSessionName"), Some("nightly-backup"));
    assert_eq!(r.param("DurationSeconds"), Some("7200"));
}

/// Durations outside 900..=43200 s and malformed role ARNs are refused before any call.
#[tokio::test]
async fn duration_and_role_arn_are_validated_up_front() {
    let sts = emulator(None);
    for secs in [60, 43_201] {
        let base: SharedProvider = base(None);
        let err = AssumeRoleProvider::new(base, role(Some(secs)), sts_config(&sts))
            .err()
            .expect("refused");
        assert!(matches!(err, CredentialsError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains(&secs.to_string()), "{err}");
    }
    let base: SharedProvider = base(None);
    let params = AssumeRoleParams {
        role_arn: "reader".into(),
        ..AssumeRoleParams::default()
    };
    let err = AssumeRoleProvider::new(base, params, sts_config(&sts))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("\"reader\""), "{err}");
    assert_eq!(sts.requests().len(), 0);
}

/// A chained role refused a session over 1 h is asked again once with 3600 s, and later
/// renewals ask for 3600 s at once.
#[tokio::test]
async fn chained_role_duration_is_retried_with_one_hour() {
    let sts = emulator(Some(BASE_TOKEN));
    let provider = assume(&sts, base(Some(BASE_TOKEN)), role(Some(7200)));
    provider.provide().await.expect("capped to 1 h");
    provider.provide().await.expect("renewal");
    let durations: Vec<_> = sts
        .requests()
        .iter()
        .map(|r| r.param("DurationSeconds").unwrap_or("").to_string())
        .collect();
    assert_eq!(durations, ["7200", "3600", "3600"]);
}

/// The injected chained-duration refusal is retried once with 3600 s.
#[tokio::test]
async fn injected_chained_duration_refusal_is_retried_once() {
    let sts = emulator(None);
    sts.fail_next(1, StsFault::ChainedDurationTooLong);
    let provider = assume(&sts, base(None), role(Some(10_800)));
    provider.provide().await.expect("retried");
    let durations: Vec<_> = sts
        .requests()
        .iter()
        .map(|r| r.param("DurationSeconds").unwrap_or("").to_string())
        .collect();
    assert_eq!(durations, ["10800", "3600"]);
}

/// AccessDenied explains the fix: trust policy and sts:AssumeRole; it is not retried.
#[tokio::test]
async fn access_denied_names_the_trust_policy_fix() {
    let sts = StsEmulator::start(StsOptions {
        allowed_callers: Some(vec!["AKIDSOMEONEELSE".into()]),
        ..StsOptions::default()
    });
    let provider = assume(&sts, base(None), role(None));
    let err = provider.provide().await.expect_err("denied");
    let text = err.to_string();
    assert!(text.contains("AccessDenied"), "{text}");
    assert!(text.contains("trust policy"), "{text}");
    assert!(text.contains("sts:AssumeRole"), "{text}");
    assert!(text.contains(ROLE), "{text}");
    assert!(!err.is_retryable(), "{err:?}");
    assert_eq!(
        sts.count("AssumeRole"),
        1,
        "AccessDenied must not be retried"
    );
}

/// Throttling and 5xx are retried within the call; three in a row give a retryable error.
#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let sts = emulator(None);
    let provider = assume(&sts, base(None), role(None));
    sts.fail_next(2, StsFault::Throttling);
    provider.provide().await.expect("after throttling");
    assert_eq!(sts.count("AssumeRole"), 3);

    sts.fail_next(1, StsFault::ServerError);
    provider.provide().await.expect("after a 500");
    assert_eq!(sts.count("AssumeRole"), 5);

    sts.fail_next(3, StsFault::ServerError);
    let err = provider.provide().await.expect_err("STS down");
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("500"), "{err}");
    assert_eq!(sts.count("AssumeRole"), 8);
}

/// A refused connection is retried, then reported as retryable, naming the fix.
#[tokio::test]
async fn unreachable_sts_is_a_retryable_failure() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let base: SharedProvider = base(None);
    let provider = AssumeRoleProvider::new(
        base,
        role(None),
        StsConfig {
            region: None,
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            ..StsConfig::default()
        },
    )
    .expect("valid");
    let err = provider.provide().await.expect_err("nothing listens");
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("--sts-endpoint-url"), "{err}");
}

/// An emulator whose clock runs `ahead` of this host's, trusting the base key, and an
/// AssumeRole provider on it signing by `clock`.
fn skewed(ahead: Duration, clock: &SkewedClock) -> (StsEmulator, AssumeRoleProvider) {
    let sts = StsEmulator::start(StsOptions {
        clock_ahead: ahead,
        ..StsOptions::default()
    });
    sts.trust_key(BASE_KEY, BASE_SECRET);
    let config = StsConfig {
        clock: clock.clone(),
        ..sts_config(&sts)
    };
    let base: SharedProvider = base(None);
    let provider = AssumeRoleProvider::new(base, role(None), config).expect("valid");
    (sts, provider)
}

/// How far `t` is ahead of this host's clock, in whole minutes.
fn minutes_ahead(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::now()) {
        Ok(d) => (d.as_secs_f64() / 60.0).round() as i64,
        Err(e) => -((e.duration().as_secs_f64() / 60.0).round() as i64),
    }
}

/// With the mount's clock corrected (as the S3 client does from `RequestTimeTooSkewed`),
/// AssumeRole is dated by it too: STS, two hours ahead of this host, takes the first
/// signature.
#[tokio::test]
async fn assume_role_signs_with_the_corrected_clock() {
    let ahead = Duration::from_secs(2 * 3600);
    let clock = SkewedClock::new();
    clock.learn(SystemTime::now() + ahead);
    let (sts, provider) = skewed(ahead, &clock);
    provider.provide().await.expect("assume role");
    let requests = sts.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].signature_valid, Some(true));
    assert_eq!(minutes_ahead(requests[0].signed_at.expect("signed")), 120);
}

/// STS refusing a signature for its date ("Signature expired") with its own time in `Date`:
/// the clock learns it (for S3 too) and the call is signed again once, and succeeds.
#[tokio::test]
async fn assume_role_learns_the_clock_from_a_skew_refusal() {
    let clock = SkewedClock::new();
    let (sts, provider) = skewed(Duration::from_secs(3600), &clock);
    provider
        .provide()
        .await
        .expect("assume role after correcting the clock");
    let requests = sts.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(minutes_ahead(requests[0].signed_at.expect("signed")), 0);
    assert_eq!(minutes_ahead(requests[1].signed_at.expect("signed")), 60);
    assert_eq!((clock.offset_ms() as f64 / 60_000.0).round() as i64, 60);
}

/// A signature refused while the clocks agree is a wrong key, not a skew: no second try,
/// and the clock is left alone.
#[tokio::test]
async fn signature_refused_at_the_right_time_is_not_retried() {
    let clock = SkewedClock::new();
    let (sts, provider) = skewed(Duration::ZERO, &clock);
    sts.trust_key(BASE_KEY, "not-the-secret-the-base-signs-with");
    let err = provider.provide().await.expect_err("bad signature");
    assert!(err.to_string().contains("SignatureDoesNotMatch"), "{err}");
    assert_eq!(sts.requests().len(), 1);
    assert_eq!(clock.offset_ms(), 0);
}

/// The MFA code is asked once and sent with the serial; a renewal says it cannot renew.
#[tokio::test]
async fn mfa_code_is_asked_once_and_renewal_is_refused() {
    let sts = emulator(None);
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let mut params = role(None);
    params.mfa = Some(Mfa {
        serial: "arn:aws:iam::123456789012:mfa/alice".into(),
        code: Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok("123456".into())
        }),
    });
    let provider = assume(&sts, base(None), params);
    assert!(provider.needs_mfa());

    provider.provide().await.expect("first session");
    let r = &sts.requests()[0];
    assert_eq!(
        r.param("SerialNumber"),
        Some("arn:aws:iam::123456789012:mfa/alice")
    );
    assert_eq!(r.param("TokenCode"), Some("123456"));

    let err = provider.provide().await.expect_err("cannot renew");
    assert!(matches!(err, CredentialsError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot be renewed"), "{err}");
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert_eq!(sts.count("AssumeRole"), 1);
}

/// A role without MFA says so (the mount warns only when it is needed).
#[tokio::test]
async fn role_without_mfa_does_not_need_it() {
    let sts = emulator(None);
    assert!(!assume(&sts, base(None), role(None)).needs_mfa());
}

fn web_identity(sts: &StsEmulator, token_file: &Path) -> WebIdentityProvider {
    WebIdentityProvider::new(
        WebIdentityParams {
            token_file: token_file.to_path_buf(),
            role_arn: ROLE.into(),
            session_name: Some("pod-a".into()),
        },
        sts_config(sts),
    )
    .expect("valid")
}

/// The token file is read on every provide: after rotation STS sees the new token.
#[tokio::test]
async fn web_identity_rereads_rotated_token_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    let sts = StsEmulator::start(StsOptions::default());
    let provider = web_identity(&sts, &file);

    write(&file, "token-one\n");
    sts.expect_web_identity_token("token-one");
    provider.provide().await.expect("first token");

    write(&file, "token-two");
    sts.expect_web_identity_token("token-two");
    let creds = provider.provide().await.expect("rotated token");
    assert_eq!(creds.source, "web identity");

    let tokens: Vec<_> = sts
        .requests()
        .iter()
        .map(|r| r.param("WebIdentityToken").unwrap_or("").to_string())
        .collect();
    assert_eq!(tokens, ["token-one", "token-two"]);
    let r = &sts.requests()[1];
    assert_eq!(r.action, "AssumeRoleWithWebIdentity");
    assert_eq!(r.caller_key, None, "web identity calls are unsigned");
    assert_eq!(r.param("RoleSessionName"), Some("pod-a"));
}

/// A refused token is a retryable failure naming the token file and the issuer fix.
#[tokio::test]
async fn web_identity_invalid_token_names_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    write(&file, "stale");
    let sts = StsEmulator::start(StsOptions::default());
    sts.expect_web_identity_token("fresh");
    let err = web_identity(&sts, &file)
        .provide()
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("InvalidIdentityToken"), "{text}");
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(err.is_retryable());
}

/// A missing or empty token file is an error naming the path.
#[tokio::test]
async fn web_identity_missing_or_empty_token_file_names_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    let sts = StsEmulator::start(StsOptions::default());
    let provider = web_identity(&sts, &file);
    let err = provider.provide().await.expect_err("missing");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
    write(&file, "  \n");
    let err = provider.provide().await.expect_err("empty");
    assert!(err.to_string().contains("is empty"), "{err}");
    assert_eq!(sts.requests().len(), 0);
}

fn ctx(vars: &[(&str, &str)]) -> ProviderContext {
    ProviderContext::with_vars(
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    )
}

/// No token file: not configured (even with AWS_ROLE_ARN, as in the SDKs); a token file
/// without AWS_ROLE_ARN: invalid; both: works with AWS_ROLE_SESSION_NAME sent.
#[tokio::test]
async fn web_identity_environment_pair_is_validated() {
    let sts = StsEmulator::start(StsOptions::default());
    let cfg = || sts_config(&sts);
    let err = WebIdentityProvider::from_context(&ctx(&[]), cfg())
        .err()
        .expect("absent");
    assert!(err.is_not_configured(), "{err:?}");

    let err =
        WebIdentityProvider::from_context(&ctx(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")]), cfg())
            .err()
            .expect("half");
    assert!(matches!(err, CredentialsError::Invalid { .. }));
    assert!(err.to_string().contains("AWS_ROLE_ARN is not"), "{err}");

    let err = WebIdentityProvider::from_context(&ctx(&[("AWS_ROLE_ARN", ROLE)]), cfg())
        .err()
        .expect("half");
    assert!(
        err.is_not_configured(),
        "role alone leaves the chain going: {err:?}"
    );
    assert!(
        err.to_string()
            .contains("AWS_WEB_IDENTITY_TOKEN_FILE is not"),
        "{err}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    write(&file, "jwt");
    let file_text = file.display().to_string();
    let provider = WebIdentityProvider::from_context(
        &ctx(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &file_text),
            ("AWS_ROLE_ARN", ROLE),
            ("AWS_ROLE_SESSION_NAME", "from-env"),
        ]),
        cfg(),
    )
    .expect("both set");
    provider.provide().await.expect("assumed");
    assert_eq!(sts.requests()[0].param("RoleSessionName"), Some("from-env"));
}

/// SAML: role, principal and the assertion (re-read each time) are sent unsigned.
#[tokio::test]
async fn saml_sends_assertion_principal_and_role() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("assertion");
    let sts = StsEmulator::start(StsOptions::default());
    let provider = SamlProvider::new(
        SamlParams {
            role_arn: ROLE.into(),
            principal_arn: "arn:aws:iam::123456789012:saml-provider/corp".into(),
            assertion_file: file.clone(),
        },
        sts_config(&sts),
    )
    .expect("valid");
    write(&file, "PHNhbWxwOlJlc3BvbnNlPg==");
    sts.expect_saml_assertion("PHNhbWxwOlJlc3BvbnNlPg==");
    provider.provide().await.expect("first assertion");
    write(&file, "bmV3IGFzc2VydGlvbg==");
    sts.expect_saml_assertion("bmV3IGFzc2VydGlvbg==");
    provider.provide().await.expect("new assertion");
    let r = &sts.requests()[1];
    assert_eq!(r.action, "AssumeRoleWithSAML");
    assert_eq!(r.param("RoleArn"), Some(ROLE));
    assert_eq!(
        r.param("PrincipalArn"),
        Some("arn:aws:iam::123456789012:saml-provider/corp")
    );
    assert_eq!(r.param("SAMLAssertion"), Some("bmV3IGFzc2VydGlvbg=="));
    assert_eq!(r.caller_key, None);
}

/// An STS error echoing the web identity token shows neither it nor the body's secrets.
#[tokio::test]
async fn echoed_web_identity_token_is_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    let token = format!("eyJhbGciOiJSUzI1NiJ9.{}.sig", "x".repeat(30));
    write(&file, &token);
    let sts = StsEmulator::start(StsOptions::default());
    sts.fail_next(1, StsFault::ValidationEchoingSecrets);
    let err = web_identity(&sts, &file)
        .provide()
        .await
        .expect_err("refused");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("ValidationError"), "{shown}");
    assert!(!shown.contains(&token), "{shown}");
    assert!(!shown.contains("xxxxxxxxxx"), "{shown}");
}

/// An AssumeRole error echoing the base session token never shows it.
#[tokio::test]
async fn echoed_base_session_token_is_redacted() {
    let sts = emulator(Some(BASE_TOKEN));
    sts.fail_next(1, StsFault::ValidationEchoingSecrets);
    let provider = assume(&sts, base(Some(BASE_TOKEN)), role(None));
    let err = provider.provide().await.expect_err("refused");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(BASE_TOKEN), "{shown}");
    assert!(!shown.contains(BASE_SECRET), "{shown}");
}

/// End to end: S3 accepts exactly the credentials STS issued (wired through `on_issue`).
#[tokio::test]
async fn issued_credentials_are_accepted_by_the_s3_server() {
    let server = Arc::new(TestServer::start());
    server.create_bucket("bucket");
    server.put("bucket", "hello.txt", "hi");
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
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    write(&file, "jwt");
    let creds = web_identity(&sts, &file).provide().await.expect("assumed");

    let client = S3Client::connect(ClientConfig {
        bucket: "bucket".into(),
        endpoint: Some(server.endpoint()),
        region: Some(server.region().to_string()),
        region_hint: None,
        force_path_style: true,
        provider: Default::default(),
        variants: Default::default(),
        access: Default::default(),
        credentials: Some(Arc::new(CredentialsCell::new(creds))),
        max_attempts: 1,
        retry_timeout: Duration::ZERO,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(10),
        ca_bundle: None,
        user_agent: "s3rolefs-tests".into(),
        clock: Default::default(),
    })
    .await
    .expect("connect with STS credentials");
    let got = client
        .get_object(GetObjectParams {
            key: "hello.txt".into(),
            ..Default::default()
        })
        .await
        .expect("get with STS credentials");
    assert_eq!(&got.body.to_bytes()[..], b"hi");
}

// ---- conformance: recorded STS exchanges -------------------------------------------------

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../shared/conformance/credentials/smithy-rs/aws-config-test-data/default-credential-provider-chain",
    )
}

/// One recorded STS exchange: the form body sent and the answer.
struct Exchange {
    case: String,
    request: BTreeMap<String, String>,
    status: u16,
    body: String,
}

fn form(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

/// Every STS request/answer pair in every case's `http-traffic.json`.
fn recorded_exchanges() -> Vec<Exchange> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(conformance_dir())
        .expect("conformance data (../shared/conformance) is present")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("http-traffic.json").exists())
        .collect();
    cases.sort();
    let mut out = Vec::new();
    for case in cases {
        let text = std::fs::read_to_string(case.join("http-traffic.json")).expect("readable");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let events = doc["events"].as_array().cloned().unwrap_or_default();
        let mut by_conn: BTreeMap<u64, (bool, String, u16, String)> = BTreeMap::new();
        for e in &events {
            let conn = e["connection_id"].as_u64().unwrap_or(0);
            let entry = by_conn.entry(conn).or_default();
            let action = &e["action"];
            if let Some(uri) = action["Request"]["request"]["uri"].as_str() {
                entry.0 = uri.contains("://sts.");
            }
            if let Some(status) = action["Response"]["response"]["Ok"]["status"].as_u64() {
                entry.2 = u16::try_from(status).unwrap_or(0);
            }
            if let Some(data) = action["Data"]["data"]["Utf8"].as_str() {
                match action["Data"]["direction"].as_str() {
                    Some("Request") => entry.1.push_str(data),
                    _ => entry.3.push_str(data),
                }
            }
        }
        for (_, (is_sts, request, status, body)) in by_conn {
            if is_sts {
                out.push(Exchange {
                    case: case
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    request: form(&request),
                    status,
                    body,
                });
            }
        }
    }
    out
}

fn xml_value(body: &str, tag: &str) -> Option<String> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(body[start..end].to_string())
}

/// Replays one exchange through our provider; `Ok(None)` when it passed, `Ok(Some(reason))`
/// when skipped, `Err` on a mismatch.
async fn replay(ex: &Exchange, dir: &Path) -> Result<Option<String>, String> {
    let sts = StsEmulator::start(StsOptions::default());
    sts.answer_next(ex.status, &ex.body);
    let role_arn = ex.request.get("RoleArn").cloned().unwrap_or_default();
    let session = ex.request.get("RoleSessionName").cloned();
    let action = ex.request.get("Action").cloned().unwrap_or_default();
    let result = match action.as_str() {
        "AssumeRole" => {
            let base: SharedProvider = base(Some(BASE_TOKEN));
            let params = AssumeRoleParams {
                role_arn: role_arn.clone(),
                session_name: session,
                ..AssumeRoleParams::default()
            };
            match AssumeRoleProvider::new(base, params, sts_config(&sts)) {
                Ok(p) => p.provide().await,
                Err(e) if role_arn.split(':').nth(4).is_some_and(|a| a.len() != 12) => {
                    assert!(matches!(e, CredentialsError::Invalid { .. }), "{e}");
                    return Ok(Some(format!(
                        "fake account id in {role_arn} is refused before any call (real ones have 12 digits)"
                    )));
                }
                Err(e) => return Err(format!("refused valid parameters: {e}")),
            }
        }
        "AssumeRoleWithWebIdentity" => {
            let file = dir.join(format!("{}.jwt", ex.case));
            write(
                &file,
                ex.request
                    .get("WebIdentityToken")
                    .map_or("", |s| s.as_str()),
            );
            let provider = WebIdentityProvider::new(
                WebIdentityParams {
                    token_file: file,
                    role_arn: role_arn.clone(),
                    session_name: session,
                },
                sts_config(&sts),
            )
            .map_err(|e| e.to_string())?;
            provider.provide().await
        }
        other => return Ok(Some(format!("action {other} has no provider here"))),
    };
    let sent = sts
        .requests()
        .first()
        .map(|r| r.params.clone())
        .unwrap_or_default();
    // The SDK sends the token file's bytes verbatim, trailing newline included; we trim
    // surrounding whitespace (an editor's newline is never part of a JWT).
    let mut recorded = ex.request.clone();
    if let Some(token) = recorded.get_mut("WebIdentityToken") {
        *token = token.trim().to_string();
    }
    if sent != recorded {
        let differing: Vec<_> = recorded
            .keys()
            .chain(sent.keys())
            .filter(|k| sent.get(*k) != recorded.get(*k))
            .collect();
        return Err(format!(
            "sent form differs from the recording in {differing:?}"
        ));
    }
    match (ex.status, result) {
        (200, Ok(c)) => {
            let want = |t: &str| xml_value(&ex.body, t).unwrap_or_default();
            let expiry = time::OffsetDateTime::parse(
                &want("Expiration"),
                &time::format_description::well_known::Rfc3339,
            )
            .map(SystemTime::from)
            .ok();
            let same = c.access_key_id == want("AccessKeyId")
                && c.secret_access_key.expose() == want("SecretAccessKey")
                && c.session_token.as_ref().map(Secret::expose)
                    == Some(want("SessionToken").as_str())
                && c.expiry == expiry;
            if same {
                Ok(None)
            } else {
                Err(format!(
                    "credentials differ from the recorded answer: {c:?}"
                ))
            }
        }
        (status, Err(e)) if status != 200 => {
            let code = xml_value(&ex.body, "Code").unwrap_or_default();
            let message = xml_value(&ex.body, "Message").unwrap_or_default();
            let text = e.to_string();
            if text.contains(&code) && text.contains(&message) {
                Ok(None)
            } else {
                Err(format!("error {text:?} lacks {code} / {message}"))
            }
        }
        (status, other) => Err(format!("HTTP {status} answer gave {other:?}")),
    }
}

/// Every STS exchange recorded in the smithy-rs default-chain cases, replayed through our
/// providers: the same form parameters are sent and the same credentials (or error) result.
#[tokio::test]
async fn conformance_recorded_sts_exchanges() {
    let exchanges = recorded_exchanges();
    let dir = tempfile::tempdir().expect("tempdir");
    let total = exchanges.len();
    let (mut passed, mut failures) = (0, Vec::new());
    for ex in &exchanges {
        let action = ex.request.get("Action").cloned().unwrap_or_default();
        match replay(ex, dir.path()).await {
            Ok(None) => passed += 1,
            Ok(Some(reason)) => println!("skipped {} ({action}): {reason}", ex.case),
            Err(why) => failures.push(format!("{} ({action}): {why}", ex.case)),
        }
    }
    println!("sts recorded exchanges: passed {passed} of {total}");
    assert!(
        total >= 7,
        "expected the 7 recorded STS exchanges, found {total}"
    );
    assert!(
        failures.is_empty(),
        "sts recorded exchanges: passed {passed} of {total}; failures:\n{}",
        failures.join("\n")
    );
    assert!(
        passed >= total - 1,
        "sts recorded exchanges: passed {passed} of {total}"
    );
}

/// The recorded answer body of a case's first STS exchange.
fn recorded_sts_answer(case: &str) -> Option<(u16, String)> {
    recorded_exchanges()
        .into_iter()
        .find(|ex| ex.case == case)
        .map(|ex| (ex.status, ex.body))
}

/// The smithy-rs default-chain cases configured by web identity environment variables:
/// `from_context` resolves the recorded STS endpoint from the case's region, reads the case's
/// token file and yields the expected credentials.
#[tokio::test]
async fn conformance_web_identity_environment_cases() {
    let root = conformance_dir();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("conformance data present")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    cases.sort();
    let (mut total, mut passed, mut failures) = (0, 0, Vec::new());
    for case in cases {
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(env_text) = std::fs::read_to_string(case.join("env.json")) else {
            continue;
        };
        let env: HashMap<String, String> = serde_json::from_str(&env_text).expect("env.json");
        let Some(token_path) = env.get("AWS_WEB_IDENTITY_TOKEN_FILE") else {
            continue;
        };
        total += 1;
        if env.contains_key("AWS_PROFILE") {
            println!("skipped {name}: AWS_PROFILE selects a profile that takes precedence (a profile-chain case)");
            continue;
        }
        let mut vars = env.clone();
        // The case's files live under its fs/ folder; point the variable there.
        let token_file = case.join("fs").join(token_path.trim_start_matches('/'));
        vars.insert(
            "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
            token_file.display().to_string(),
        );
        let context = ProviderContext::with_vars(vars);
        let resolved = StsConfig::from_context(&context, None);
        let Some((status, body)) = recorded_sts_answer(&name) else {
            failures.push(format!("{name}: no recorded STS exchange"));
            continue;
        };
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(case.join("test-case.json")).expect("test-case.json"),
        )
        .expect("test-case JSON");
        let want = &expected["result"]["Ok"];
        let recorded_host = format!("https://sts.{}.amazonaws.com", env["AWS_REGION"]);
        if resolved.endpoint_url() != recorded_host {
            failures.push(format!("{name}: endpoint {}", resolved.endpoint_url()));
            continue;
        }
        let sts = StsEmulator::start(StsOptions::default());
        sts.answer_next(status, &body);
        let config = StsConfig {
            endpoint: Some(sts.endpoint()),
            ..resolved
        };
        let got = match WebIdentityProvider::from_context(&context, config) {
            Ok(p) => p.provide().await,
            Err(e) => Err(e),
        };
        match got {
            Ok(c) => {
                let expiry = c
                    .expiry
                    .and_then(|e| e.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs());
                let same = Some(c.access_key_id.as_str()) == want["access_key_id"].as_str()
                    && Some(c.secret_access_key.expose()) == want["secret_access_key"].as_str()
                    && c.session_token.as_ref().map(Secret::expose)
                        == want["session_token"].as_str()
                    && expiry == want["expiry"].as_u64();
                if same {
                    passed += 1;
                } else {
                    failures.push(format!("{name}: credentials differ: {c:?}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    println!("web identity environment cases: passed {passed} of {total}");
    assert!(
        failures.is_empty() && passed >= 1,
        "web identity environment cases: passed {passed} of {total}; failures: {failures:?}"
    );
}
