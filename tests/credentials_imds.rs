//! The IMDS and container credential sources against their emulators on 127.0.0.1: the
//! IMDSv2 token flow and cache, the IMDSv1 fallback and when it is refused, the failures real
//! instances show (hop limit, no role, outages, odd documents) with the messages users need,
//! rotation, and the S3 server accepting exactly what IMDS issued.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use s3rolefs::credentials::container::{
    ContainerProvider, FULL_URI_VAR, TOKEN_FILE_VAR, TOKEN_VAR,
};
use s3rolefs::credentials::imds::{ImdsConfig, ImdsProvider};
use s3rolefs::credentials::{Credentials, CredentialsError, ProvideCredentials, ProviderContext};
use support::container::{ContainerEndpoint, ContainerOptions};
use support::imds::{ImdsEmulator, ImdsMode, ImdsOptions, IssuedCredentials, OnIssue};
use support::{TestClient, TestServer};

/// Short timeouts: the emulator answers in microseconds, and hang tests should not wait.
fn config(imds: &ImdsEmulator) -> ImdsConfig {
    let mut c = ImdsConfig::with_endpoint(&imds.endpoint());
    c.connect_timeout = Duration::from_millis(300);
    c.timeout = Duration::from_millis(300);
    c
}

fn provider(config: ImdsConfig) -> ImdsProvider {
    ImdsProvider::new(config).expect("build provider")
}

fn emulator(mode: ImdsMode) -> ImdsEmulator {
    ImdsEmulator::start(ImdsOptions {
        mode,
        ..ImdsOptions::default()
    })
}

fn assert_matches_issued(c: &Credentials, issued: &IssuedCredentials) {
    assert_eq!(c.access_key_id, issued.access_key_id);
    assert_eq!(c.secret_access_key.expose(), issued.secret_access_key);
    assert_eq!(
        c.session_token.as_ref().map(|t| t.expose()),
        Some(issued.token.as_str())
    );
    assert_eq!(c.expiry, Some(issued.expires_at));
    assert_eq!(c.source, "imds");
}

fn message(err: &CredentialsError) -> String {
    err.to_string()
}

// ---- IMDSv2 ---------------------------------------------------------------------------------

/// One token PUT serves many GETs; every GET carries it; the answer is what IMDS issued.
#[tokio::test]
async fn v2_token_is_fetched_once_and_sent_with_every_get() {
    let imds = emulator(ImdsMode::V2Only);
    let p = provider(config(&imds));
    for _ in 0..3 {
        let c = p.provide().await.expect("credentials");
        assert_matches_issued(&c, &imds.issued()[0]);
    }
    assert_eq!(imds.token_puts(), 1);
    assert_eq!(
        imds.v2_requests(),
        6,
        "role list + credentials, three times"
    );
    assert_eq!(imds.v1_requests(), 0);
    assert_eq!(p.name(), "imds");
}

/// A token near the end of the TTL IMDS granted is replaced before use.
#[tokio::test]
async fn token_is_renewed_before_its_ttl_ends() {
    let imds = ImdsEmulator::start(ImdsOptions {
        mode: ImdsMode::V2Only,
        token_ttl: Duration::from_secs(2),
        ..ImdsOptions::default()
    });
    let p = provider(config(&imds));
    p.provide().await.expect("first");
    assert_eq!(imds.token_puts(), 1);
    // Granted 2 s, renewed at half its life.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    p.provide().await.expect("second");
    assert_eq!(imds.token_puts(), 2);
}

/// A GET answered 401 drops the token, fetches a new one and succeeds.
#[tokio::test]
async fn unauthorized_get_fetches_a_new_token() {
    let imds = emulator(ImdsMode::V2Only);
    let p = provider(config(&imds));
    p.provide().await.expect("first");
    imds.invalidate_tokens();
    p.provide().await.expect("after invalidation");
    assert_eq!(imds.token_puts(), 2);
    assert_eq!(imds.v1_requests(), 0);
}

/// 5xx answers are retried: two failures then success within three attempts.
#[tokio::test]
async fn server_errors_are_retried() {
    let imds = emulator(ImdsMode::V2Only);
    let p = provider(config(&imds));
    imds.fail_next(2, 503);
    p.provide().await.expect("credentials after retries");
}

// ---- IMDSv1 fallback ------------------------------------------------------------------------

/// A token PUT refused with 403, 404 or 405 falls back to IMDSv1 GETs without a token.
#[tokio::test]
async fn refused_token_request_falls_back_to_v1() {
    for status in [403, 404, 405] {
        let imds = ImdsEmulator::start(ImdsOptions {
            mode: ImdsMode::V1Only,
            token_refusal_status: status,
            ..ImdsOptions::default()
        });
        let c = provider(config(&imds))
            .provide()
            .await
            .unwrap_or_else(|e| panic!("token PUT {status}: {e}"));
        assert_matches_issued(&c, &imds.issued()[0]);
        assert_eq!(imds.v1_requests(), 2, "token PUT {status}");
        assert_eq!(imds.v2_requests(), 0, "token PUT {status}");
    }
}

/// A token PUT that times out falls back to IMDSv1 when IMDSv1 answers.
#[tokio::test]
async fn timed_out_token_request_falls_back_to_v1() {
    let imds = emulator(ImdsMode::V1AndV2);
    imds.set_hang_token(true);
    let c = provider(config(&imds))
        .provide()
        .await
        .expect("v1 credentials");
    assert_matches_issued(&c, &imds.issued()[0]);
    assert_eq!(imds.v1_requests(), 2);
}

/// With the fallback off, a refused token request is an error and no v1 GET is sent.
#[tokio::test]
async fn no_v1_fallback_when_disabled() {
    let imds = emulator(ImdsMode::V1Only);
    let mut c = config(&imds);
    c.v1_fallback = false;
    let err = provider(c).provide().await.expect_err("v1 disabled");
    assert!(message(&err).contains("IMDSv2 failed"), "{err}");
    assert!(message(&err).contains("IMDSv1 is disabled"), "{err}");
    assert_eq!(imds.v1_requests(), 0);
    assert!(imds.issued().is_empty());
}

/// The fallback switch is read from the environment too.
#[tokio::test]
async fn v1_disabled_variable_turns_fallback_off() {
    let imds = emulator(ImdsMode::V1Only);
    let ctx = ProviderContext::with_vars(HashMap::from([
        (
            "AWS_EC2_METADATA_SERVICE_ENDPOINT".to_string(),
            imds.endpoint(),
        ),
        (
            "AWS_EC2_METADATA_V1_DISABLED".to_string(),
            "true".to_string(),
        ),
    ]));
    let p = ImdsProvider::from_context(&ctx, &|_| None).expect("configured");
    assert!(!p.config().v1_fallback);
    assert!(p.provide().await.is_err());
    assert_eq!(imds.v1_requests(), 0);
}

// ---- failures with a message ----------------------------------------------------------------

/// A v2-only instance whose token answers never arrive (container hop limit 1): the error
/// names the hop limit and the command that raises it.
#[tokio::test]
async fn hung_token_request_on_v2_only_names_the_hop_limit() {
    let imds = emulator(ImdsMode::V2Only);
    imds.set_hang_token(true);
    let err = provider(config(&imds))
        .provide()
        .await
        .expect_err("hop limit");
    let text = message(&err);
    assert!(text.contains("hop limit"), "{text}");
    assert!(text.contains("--http-put-response-hop-limit 2"), "{text}");
    assert!(err.is_retryable());
}

/// IMDS accepting connections and answering nothing, with the fallback off: the error says
/// IMDSv2 failed, v1 is disabled, and names the hop limit.
#[tokio::test]
async fn hang_with_v1_disabled_names_the_hop_limit() {
    let imds = emulator(ImdsMode::V2Only);
    imds.set_hang(true);
    let mut c = config(&imds);
    c.v1_fallback = false;
    let started = std::time::Instant::now();
    let err = provider(c).provide().await.expect_err("hang");
    let text = message(&err);
    assert!(text.contains("IMDSv1 is disabled"), "{text}");
    assert!(text.contains("hop limit"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a hung IMDS must not hang us"
    );
}

/// IMDS hanging on everything, fallback on: the v1 GET times out too and the error still
/// names the hop limit, within a bounded time.
#[tokio::test]
async fn complete_hang_fails_in_bounded_time() {
    let imds = emulator(ImdsMode::V1AndV2);
    imds.set_hang(true);
    let started = std::time::Instant::now();
    let err = provider(config(&imds)).provide().await.expect_err("hang");
    assert!(message(&err).contains("hop limit"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Nothing listening: a retryable failure naming the endpoint and how to opt out.
#[tokio::test]
async fn unreachable_endpoint_is_retryable_and_says_what_to_do() {
    let imds = emulator(ImdsMode::V2Only);
    imds.set_refuse_connections(true);
    // Let the emulator close its socket.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = provider(config(&imds))
        .provide()
        .await
        .expect_err("refused");
    let text = message(&err);
    assert!(err.is_retryable(), "{text}");
    assert!(text.contains(&imds.endpoint()), "{text}");
    assert!(text.contains("AWS_EC2_METADATA_DISABLED=true"), "{text}");
    // And it comes back when IMDS does.
    imds.set_refuse_connections(false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    provider(config(&imds))
        .provide()
        .await
        .expect("after recovery");
}

/// A lasting 503 outage is a retryable failure naming the status.
#[tokio::test]
async fn lasting_outage_is_retryable() {
    let imds = emulator(ImdsMode::V2Only);
    imds.set_outage(true);
    let err = provider(config(&imds)).provide().await.expect_err("outage");
    assert!(err.is_retryable());
    assert!(message(&err).contains("503"), "{err}");
}

/// No instance profile: the error says so and how to attach one.
#[tokio::test]
async fn no_role_attached_says_how_to_attach_one() {
    let imds = emulator(ImdsMode::V2Only);
    imds.set_no_role(true);
    let err = provider(config(&imds))
        .provide()
        .await
        .expect_err("no role");
    let text = message(&err);
    assert!(text.contains("no IAM role is attached"), "{text}");
    assert!(text.contains("associate-iam-instance-profile"), "{text}");
    assert!(
        err.is_not_configured(),
        "the chain moves on, as in the SDKs"
    );
}

/// A document whose Code is not Success carries IMDS's message, with tokens redacted.
#[tokio::test]
async fn non_success_code_carries_the_message() {
    let imds = emulator(ImdsMode::V2Only);
    let echoed = "IQoJb3JpZ2luX2VjEHsaCXVzLWVhc3QtMSJHMEUCIQ";
    imds.set_credentials_body(Some(&format!(
        r#"{{"Code":"AssumeRoleUnauthorizedAccess","Message":"EC2 cannot assume the role with {echoed}"}}"#
    )));
    let err = provider(config(&imds))
        .provide()
        .await
        .expect_err("refused");
    let text = message(&err);
    assert!(text.contains("AssumeRoleUnauthorizedAccess"), "{text}");
    assert!(text.contains("EC2 cannot assume the role"), "{text}");
    assert!(!text.contains(echoed), "{text}");
}

/// Malformed JSON is an error naming the role, never a panic.
#[tokio::test]
async fn malformed_document_is_an_error() {
    let imds = emulator(ImdsMode::V2Only);
    for body in ["{\"AccessKeyId\":", "<html>", "{}", "null"] {
        imds.set_credentials_body(Some(body));
        let err = provider(config(&imds)).provide().await.expect_err(body);
        assert!(message(&err).contains(imds.role_name()), "{body}: {err}");
    }
}

/// A given role name skips the role list; an unknown one is an error naming it.
#[tokio::test]
async fn role_override_skips_the_list_and_unknown_role_is_named() {
    let imds = emulator(ImdsMode::V2Only);
    let mut c = config(&imds);
    c.role_name = Some(imds.role_name().to_string());
    provider(c.clone()).provide().await.expect("given role");
    assert_eq!(imds.role_list_gets(), 0);
    c.role_name = Some("not-my-role".into());
    let err = provider(c).provide().await.expect_err("unknown role");
    assert!(message(&err).contains("not-my-role"), "{err}");
}

/// The region comes from the placement metadata.
#[tokio::test]
async fn region_comes_from_placement() {
    let imds = ImdsEmulator::start(ImdsOptions {
        mode: ImdsMode::V2Only,
        region: "eu-west-3".into(),
        ..ImdsOptions::default()
    });
    assert_eq!(
        provider(config(&imds)).region().await.expect("region"),
        "eu-west-3"
    );
}

// ---- rotation and the S3 server -------------------------------------------------------------

/// When IMDS rotates, the next call returns the new key.
#[tokio::test]
async fn rotation_is_picked_up() {
    let imds = ImdsEmulator::start(ImdsOptions {
        mode: ImdsMode::V2Only,
        credentials_lifetime: Duration::from_secs(30),
        rotation: Duration::from_secs(1),
        ..ImdsOptions::default()
    });
    let p = provider(config(&imds));
    let first = p.provide().await.expect("first");
    assert_eq!(
        p.provide().await.expect("same").access_key_id,
        first.access_key_id
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = p.provide().await.expect("second");
    assert_ne!(second.access_key_id, first.access_key_id);
    assert_eq!(imds.issued().len(), 2);
    assert!(second.expiry > first.expiry);
}

/// The S3 server accepts exactly the credentials IMDS issued, refuses them with
/// ExpiredToken once they expire, and accepts the next ones.
#[tokio::test]
async fn s3_server_accepts_issued_credentials_until_they_expire() {
    let server = Arc::new(TestServer::start());
    server.create_bucket("bucket");
    let s3 = server.clone();
    let on_issue: OnIssue = Arc::new(move |c: &IssuedCredentials| {
        s3.add_session_key(
            &c.access_key_id,
            &c.secret_access_key,
            &c.token,
            c.expires_at,
        )
    });
    let imds = ImdsEmulator::start(ImdsOptions {
        mode: ImdsMode::V2Only,
        credentials_lifetime: Duration::from_secs(2),
        rotation: Duration::from_secs(1),
        on_issue: Some(on_issue),
        ..ImdsOptions::default()
    });
    let p = provider(config(&imds));
    let put = |c: Credentials, key: &'static str| {
        let client = TestClient::new(&server)
            .with_credentials(&c.access_key_id, c.secret_access_key.expose())
            .with_session_token(c.session_token.as_ref().map_or("", |t| t.expose()));
        async move { client.request("PUT", "bucket", key).body("x").send().await }
    };
    let first = p.provide().await.expect("first");
    let expiry = first.expiry.expect("IMDS credentials expire");
    assert_eq!(put(first.clone(), "a").await.status, 200);
    let wait =
        expiry.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(200);
    tokio::time::sleep(wait).await;
    let refused = put(first, "b").await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.text().contains("ExpiredToken"),
        "{}",
        refused.text()
    );
    let fresh = p.provide().await.expect("fresh");
    assert_eq!(put(fresh, "c").await.status, 200);
}

// ---- container endpoint ---------------------------------------------------------------------

fn container_ctx(vars: &[(&str, &str)]) -> ProviderContext {
    ProviderContext::with_vars(
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// A full URI on 127.0.0.1 with a static token: the token is sent, the credentials parsed.
#[tokio::test]
async fn container_full_uri_with_token() {
    let endpoint = ContainerEndpoint::start(ContainerOptions {
        authorization: Some("static-token".into()),
        ..ContainerOptions::default()
    });
    let p = ContainerProvider::from_context(&container_ctx(&[
        (FULL_URI_VAR, &endpoint.uri()),
        (TOKEN_VAR, "static-token"),
    ]))
    .expect("configured");
    let c = p.provide().await.expect("credentials");
    let issued = &endpoint.issued()[0];
    assert_eq!(c.access_key_id, issued.access_key_id);
    assert_eq!(c.expiry, Some(issued.expires_at));
    assert_eq!(c.source, "container");
    assert_eq!(
        endpoint.seen_authorization(),
        vec![Some("static-token".to_string())]
    );
}

/// `localhost` over http is allowed because it resolves to loopback.
#[tokio::test]
async fn container_localhost_uri_is_allowed() {
    let endpoint = ContainerEndpoint::start(ContainerOptions::default());
    let uri = format!("http://localhost:{}/v1/credentials", endpoint.addr().port());
    let p = ContainerProvider::from_context(&container_ctx(&[(FULL_URI_VAR, &uri)]))
        .expect("configured");
    p.provide().await.expect("credentials");
}

/// The token file is read at every call: a rotated token is used at once.
#[tokio::test]
async fn container_token_file_is_reread_every_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    std::fs::write(&file, "token-one\n").expect("write");
    let endpoint = ContainerEndpoint::start(ContainerOptions {
        authorization: Some("token-one".into()),
        ..ContainerOptions::default()
    });
    let p = ContainerProvider::from_context(&container_ctx(&[
        (FULL_URI_VAR, &endpoint.uri()),
        (TOKEN_FILE_VAR, file.to_str().expect("utf-8 path")),
        (TOKEN_VAR, "ignored-when-a-file-is-set"),
    ]))
    .expect("configured");
    p.provide().await.expect("first token");
    std::fs::write(&file, "token-two").expect("rewrite");
    endpoint.set_authorization(Some("token-two"));
    p.provide().await.expect("rotated token");
    assert_eq!(
        endpoint.seen_authorization(),
        vec![Some("token-one".to_string()), Some("token-two".to_string())]
    );
}

/// A wrong token is refused with the status and the variables to check, not the token.
#[tokio::test]
async fn container_wrong_token_names_the_variables() {
    let endpoint = ContainerEndpoint::start(ContainerOptions {
        authorization: Some("right".into()),
        ..ContainerOptions::default()
    });
    let p = ContainerProvider::from_context(&container_ctx(&[
        (FULL_URI_VAR, &endpoint.uri()),
        (TOKEN_VAR, "wrong-secret-token"),
    ]))
    .expect("configured");
    let err = p.provide().await.expect_err("refused");
    let text = message(&err);
    assert!(text.contains("401"), "{text}");
    assert!(text.contains(TOKEN_FILE_VAR), "{text}");
    assert!(!text.contains("wrong-secret-token"), "{text}");
}

/// 5xx answers from the agent are retried.
#[tokio::test]
async fn container_server_errors_are_retried() {
    let endpoint = ContainerEndpoint::start(ContainerOptions::default());
    endpoint.fail_next(2, 500);
    let p = ContainerProvider::from_context(&container_ctx(&[(FULL_URI_VAR, &endpoint.uri())]))
        .expect("configured");
    p.provide().await.expect("after retries");
    assert_eq!(endpoint.issued().len(), 1);
}

/// Plain http to a host that is neither loopback nor an agent is refused, saying why.
#[tokio::test]
async fn container_disallowed_http_host_is_refused() {
    let err = ContainerProvider::from_context(&container_ctx(&[(
        FULL_URI_VAR,
        "http://10.1.2.3/v1/credentials",
    )]))
    .err()
    .expect("refused");
    assert!(matches!(err, CredentialsError::Invalid { .. }), "{err}");
    let text = message(&err);
    assert!(text.contains("10.1.2.3"), "{text}");
    assert!(text.contains("use https"), "{text}");
}
