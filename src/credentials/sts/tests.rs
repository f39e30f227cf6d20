//! Unit tests of the pure parts: endpoint resolution, error classification, validation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::assume_role::check_role_arn;
use super::client::backoff;
use super::*;
use crate::credentials::{BoxFuture, Credentials, ProvideCredentials, SharedProvider};

fn ctx(vars: &[(&str, &str)]) -> ProviderContext {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ProviderContext::with_vars(map)
}

struct NoBase;

impl ProvideCredentials for NoBase {
    fn name(&self) -> &str {
        "base"
    }

    fn provide(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
        Box::pin(async { Err(CredentialsError::not_configured("base", "none")) })
    }
}

fn params(arn: &str, duration: Option<u64>) -> AssumeRoleParams {
    AssumeRoleParams {
        role_arn: arn.into(),
        duration: duration.map(Duration::from_secs),
        ..AssumeRoleParams::default()
    }
}

const ARN: &str = "arn:aws:iam::123456789012:role/reader";

/// The flag beats AWS_ENDPOINT_URL_STS, which beats AWS_ENDPOINT_URL.
#[test]
fn endpoint_flag_beats_service_variable_beats_global_variable() {
    let c = ctx(&[
        ("AWS_ENDPOINT_URL_STS", "http://sts-var"),
        ("AWS_ENDPOINT_URL", "http://all-var"),
    ]);
    assert_eq!(
        StsConfig::from_context(&c, Some("http://flag")).endpoint_url(),
        "http://flag"
    );
    assert_eq!(
        StsConfig::from_context(&c, None).endpoint_url(),
        "http://sts-var"
    );
    let c = ctx(&[("AWS_ENDPOINT_URL", "http://all-var")]);
    assert_eq!(
        StsConfig::from_context(&c, None).endpoint_url(),
        "http://all-var"
    );
}

/// Without an override the regional endpoint is used, region from --region, then AWS_REGION,
/// then AWS_DEFAULT_REGION.
#[test]
fn regional_endpoint_from_region_precedence() {
    let mut c = ctx(&[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "us-west-2"),
    ]);
    assert_eq!(
        StsConfig::from_context(&c, None).endpoint_url(),
        "https://sts.eu-west-1.amazonaws.com"
    );
    c.region = Some("ap-south-1".into());
    let cfg = StsConfig::from_context(&c, None);
    assert_eq!(cfg.endpoint_url(), "https://sts.ap-south-1.amazonaws.com");
    assert_eq!(cfg.signing_region(), "ap-south-1");
    let c = ctx(&[("AWS_DEFAULT_REGION", "us-west-2")]);
    assert_eq!(
        StsConfig::from_context(&c, None).endpoint_url(),
        "https://sts.us-west-2.amazonaws.com"
    );
    let c = ctx(&[("AWS_REGION", "cn-north-1")]);
    assert_eq!(
        StsConfig::from_context(&c, None).endpoint_url(),
        "https://sts.cn-north-1.amazonaws.com.cn"
    );
}

/// No region anywhere: the global endpoint, signed for us-east-1; blank values are unset.
#[test]
fn no_region_uses_global_endpoint_signed_for_us_east_1() {
    let cfg = StsConfig::from_context(&ctx(&[("AWS_REGION", " ")]), Some(" "));
    assert_eq!(cfg.endpoint_url(), GLOBAL_ENDPOINT);
    assert_eq!(cfg.signing_region(), "us-east-1");
}

/// Error codes map to their kinds, and the chained-role duration message is recognised.
#[test]
fn error_codes_classify() {
    assert!(matches!(
        StsError::classify(403, "AccessDenied", "x".into()),
        StsError::AccessDenied(_)
    ));
    assert!(matches!(
        StsError::classify(
            400,
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.".into()
        ),
        StsError::ChainedDurationTooLong(_)
    ));
    assert!(matches!(
        StsError::classify(400, "ValidationError", "other".into()),
        StsError::Validation { .. }
    ));
    assert!(StsError::classify(400, "Throttling", "slow".into()).is_transient());
    assert!(StsError::classify(503, "ServiceUnavailable", String::new()).is_transient());
    assert!(!StsError::classify(403, "AccessDenied", String::new()).is_transient());
    assert!(StsError::classify(400, "IDPCommunicationError", String::new()).is_transient());
}

/// Role ARNs of any partition pass; user ARNs, role names and short accounts are refused.
#[test]
fn role_arn_shape_is_checked() {
    for ok in [
        ARN,
        "arn:aws-cn:iam::123456789012:role/path/to/r",
        "arn:aws-us-gov:iam::123456789012:role/r",
    ] {
        assert!(check_role_arn("t", ok).is_ok(), "{ok}");
    }
    for bad in [
        "reader",
        "arn:aws:iam::123456789012:user/bob",
        "arn:aws:iam::12345:role/r",
        "arn:aws:s3:::bucket",
        "arn:aws:iam::123456789012:role/",
        "arn:azure:iam::123456789012:role/r",
    ] {
        let err = check_role_arn("t", bad).unwrap_err();
        assert!(matches!(err, CredentialsError::Invalid { .. }), "{bad}");
        assert!(err.to_string().contains(bad), "{err}");
    }
}

/// Durations outside 900..=43200 s are Invalid at construction; the bounds themselves pass.
#[test]
fn duration_out_of_range_is_invalid() {
    let base: SharedProvider = Arc::new(NoBase);
    let sts = StsConfig::default();
    for secs in [899, 43_201] {
        let err = AssumeRoleProvider::new(base.clone(), params(ARN, Some(secs)), sts.clone())
            .err()
            .unwrap();
        assert!(matches!(err, CredentialsError::Invalid { .. }));
        assert!(err.to_string().contains("900 to 43200"), "{err}");
    }
    for secs in [900, 43_200] {
        assert!(
            AssumeRoleProvider::new(base.clone(), params(ARN, Some(secs)), sts.clone()).is_ok()
        );
    }
}

/// A malformed session name is refused before any call.
#[test]
fn bad_session_name_is_invalid() {
    let base: SharedProvider = Arc::new(NoBase);
    let mut p = params(ARN, None);
    p.session_name = Some("has space".into());
    let err = AssumeRoleProvider::new(base, p, StsConfig::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("has space"), "{err}");
}

/// AccessDenied names the trust policy and the sts:AssumeRole permission as the fix.
#[test]
fn access_denied_names_trust_policy_fix() {
    let err = StsError::AccessDenied("User: arn:aws:iam::1:user/u is not authorized".into())
        .into_credentials_error("s", "AssumeRole", ARN, "the caller");
    let text = err.to_string();
    assert!(text.contains("trust policy"), "{text}");
    assert!(text.contains("sts:AssumeRole"), "{text}");
    assert!(!err.is_retryable());
}

/// Jittered backoff never exceeds its doubling ceiling.
#[test]
fn backoff_stays_under_ceiling() {
    for attempt in 1..=4 {
        let ceiling = RETRY_BASE_DELAY * (1 << (attempt - 1));
        for _ in 0..20 {
            assert!(backoff(attempt) <= ceiling);
        }
    }
}

/// An AssumeRole request carries its signature and session token as sensitive header
/// values: neither prints in the request's `Debug`, the form HTTP-level logging uses.
#[test]
fn sensitive_header_values_never_print() {
    let client = StsClient::new(
        &StsConfig {
            region: Some("eu-west-1".into()),
            endpoint: Some("http://127.0.0.1:1".into()),
            ..StsConfig::default()
        },
        "test",
    )
    .unwrap();
    let signer = Credentials {
        access_key_id: "ASIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        session_token: Some(Secret::new("FwoGZXIvYXdzEXAMPLETOKEN")),
        expiry: None,
        source: "test".into(),
    };
    let request = client
        .request("Action=AssumeRole", Some(&signer))
        .unwrap()
        .build()
        .unwrap();
    for name in ["authorization", "x-amz-security-token"] {
        assert!(request.headers()[name].is_sensitive(), "{name}");
    }
    let printed = format!("{request:?} {:?}", request.headers());
    assert!(!printed.contains("FwoGZXIv"), "{printed}");
    assert!(!printed.contains("Signature="), "{printed}");
    assert!(printed.contains("x-amz-date"), "{printed}");
}
