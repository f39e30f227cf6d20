//! `ImdsConfig`: where the instance metadata service is and how patiently to talk to it,
//! resolved the way the AWS SDKs do from the environment and the active shared-config
//! profile. Pure: no I/O, so every rule is unit-tested.

use std::time::Duration;

use super::NAME;
use crate::credentials::{CredentialsError, ProviderContext};

/// The IPv4 link-local address of IMDS on every EC2 instance.
pub const IPV4_ENDPOINT: &str = "http://169.254.169.254";
/// The IPv6 address of IMDS (Nitro instances with IPv6 metadata enabled).
pub const IPV6_ENDPOINT: &str = "http://[fd00:ec2::254]";
/// IMDS answers from the hypervisor in milliseconds; a second is already generous, and a
/// mount must not hang for long on a host that is not EC2 at all.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Same reasoning as the connect timeout: a hung IMDS must not hang a mount.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// IMDS is local and fast, but throttles (429/503) under bursts: three attempts with a
/// short backoff ride out a blip and still fail within a few seconds.
pub const DEFAULT_ATTEMPTS: u32 = 3;
/// The longest session IMDS grants (6 h): fewer token requests, and the token never outlives
/// what IMDS allows.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(21_600);

/// The endpoint variable, as the SDKs name it.
pub const ENDPOINT_VAR: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
/// The endpoint-mode variable (`IPv4` | `IPv6`).
pub const ENDPOINT_MODE_VAR: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE";
/// Turns the IMDS source off entirely.
pub const DISABLED_VAR: &str = "AWS_EC2_METADATA_DISABLED";
/// Forbids the IMDSv1 fallback.
pub const V1_DISABLED_VAR: &str = "AWS_EC2_METADATA_V1_DISABLED";
/// Shared-config keys, the profile-file twins of the variables above.
pub const ENDPOINT_KEY: &str = "ec2_metadata_service_endpoint";
pub const ENDPOINT_MODE_KEY: &str = "ec2_metadata_service_endpoint_mode";
pub const V1_DISABLED_KEY: &str = "ec2_metadata_v1_disabled";

/// How to reach IMDS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImdsConfig {
    /// Base URL, no trailing slash (`http://169.254.169.254`).
    pub endpoint: String,
    /// Whether a refused or timed-out IMDSv2 token request may fall back to IMDSv1.
    pub v1_fallback: bool,
    /// The role to ask for; `None` asks IMDS which role the instance has.
    pub role_name: Option<String>,
    pub connect_timeout: Duration,
    /// One whole request, answer included.
    pub timeout: Duration,
    /// Tries per request (at least one) on connection errors and 5xx.
    pub attempts: u32,
    /// Lifetime requested for IMDSv2 session tokens.
    pub token_ttl: Duration,
}

/// Settings given explicitly (flags, code), which beat the environment as in the SDKs'
/// builders: an explicit endpoint beats everything; an explicit mode beats the configured
/// mode but not a configured endpoint.
#[derive(Clone, Debug, Default)]
pub struct ImdsOverrides {
    pub endpoint: Option<String>,
    pub mode: Option<String>,
}

impl ImdsConfig {
    /// The configuration with every default, at `endpoint`.
    pub fn with_endpoint(endpoint: &str) -> Self {
        ImdsConfig {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            v1_fallback: true,
            role_name: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            token_ttl: DEFAULT_TOKEN_TTL,
        }
    }

    /// Resolves from the environment of `ctx` and the active profile's keys (`profile`
    /// looks one up; pass `&|_| None` when there is no profile).
    pub fn resolve(
        ctx: &ProviderContext,
        profile: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ImdsConfig, CredentialsError> {
        Self::resolve_with(ctx, profile, &ImdsOverrides::default())
    }

    /// [`ImdsConfig::resolve`] with explicit settings on top.
    pub fn resolve_with(
        ctx: &ProviderContext,
        profile: &dyn Fn(&str) -> Option<String>,
        overrides: &ImdsOverrides,
    ) -> Result<ImdsConfig, CredentialsError> {
        let profile = |key: &str| profile(key).filter(|v| !v.trim().is_empty());
        if ctx.flag(DISABLED_VAR) == Some(true) {
            return Err(CredentialsError::not_configured(
                NAME,
                format!("IMDS disabled by {DISABLED_VAR}"),
            ));
        }
        let explicit = overrides
            .endpoint
            .clone()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (v, "the endpoint override"))
            .or_else(|| ctx.var(ENDPOINT_VAR).map(|v| (v, ENDPOINT_VAR)))
            .or_else(|| profile(ENDPOINT_KEY).map(|v| (v, ENDPOINT_KEY)));
        let endpoint = match explicit {
            Some((url, origin)) => validate_endpoint(&url, origin)?,
            None => {
                let mode = overrides
                    .mode
                    .clone()
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (v, "the endpoint mode override"))
                    .or_else(|| ctx.var(ENDPOINT_MODE_VAR).map(|v| (v, ENDPOINT_MODE_VAR)))
                    .or_else(|| profile(ENDPOINT_MODE_KEY).map(|v| (v, ENDPOINT_MODE_KEY)));
                match mode {
                    None => IPV4_ENDPOINT.to_string(),
                    Some((mode, origin)) => endpoint_for_mode(&mode, origin)?.to_string(),
                }
            }
        };
        let v1_disabled = ctx.flag(V1_DISABLED_VAR) == Some(true)
            || profile(V1_DISABLED_KEY).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let mut config = ImdsConfig::with_endpoint(&endpoint);
        config.v1_fallback = !v1_disabled;
        Ok(config)
    }

    /// The URL of the IMDSv2 token request.
    pub fn token_url(&self) -> String {
        format!("{}/latest/api/token", self.endpoint)
    }
}

/// `IPv4` / `IPv6` (any case) to the endpoint of that family.
fn endpoint_for_mode(mode: &str, origin: &str) -> Result<&'static str, CredentialsError> {
    match mode.trim().to_ascii_lowercase().as_str() {
        "ipv4" => Ok(IPV4_ENDPOINT),
        "ipv6" => Ok(IPV6_ENDPOINT),
        _ => Err(CredentialsError::invalid(
            NAME,
            format!(
                "`{}` is not a valid endpoint mode (from {origin}): use IPv4 or IPv6",
                mode.trim()
            ),
        )),
    }
}

/// An http(s) URL with a host, returned without its trailing slash.
fn validate_endpoint(url: &str, origin: &str) -> Result<String, CredentialsError> {
    let url = url.trim();
    let bad = |why: &str| {
        CredentialsError::invalid(
            NAME,
            format!(
                "{origin}={url:?} is not a usable IMDS endpoint ({why}): \
                 give a URL like http://169.254.169.254"
            ),
        )
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ctx(vars: &[(&str, &str)]) -> ProviderContext {
        ProviderContext::with_vars(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        )
    }

    /// Nothing configured: the IPv4 address, v1 fallback allowed, the documented defaults.
    #[test]
    fn defaults_to_ipv4_with_fallback() {
        let c = ImdsConfig::resolve(&ctx(&[]), &|_| None).unwrap();
        assert_eq!(c.endpoint, IPV4_ENDPOINT);
        assert!(c.v1_fallback);
        assert_eq!(c.attempts, DEFAULT_ATTEMPTS);
        assert_eq!(c.token_ttl, DEFAULT_TOKEN_TTL);
        assert_eq!(c.token_url(), "http://169.254.169.254/latest/api/token");
    }

    /// `AWS_EC2_METADATA_DISABLED=true` (any case) makes the source not apply.
    #[test]
    fn disabled_variable_is_not_configured() {
        let err = ImdsConfig::resolve(&ctx(&[(DISABLED_VAR, "TRUE")]), &|_| None).unwrap_err();
        assert!(err.is_not_configured());
        assert!(err.to_string().contains(DISABLED_VAR));
    }

    /// The environment's endpoint beats the profile's, and loses its trailing slash.
    #[test]
    fn environment_endpoint_beats_profile() {
        let c = ImdsConfig::resolve(&ctx(&[(ENDPOINT_VAR, "http://127.0.0.1:9/")]), &|k| {
            (k == ENDPOINT_KEY).then(|| "http://wrong:1".to_string())
        })
        .unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:9");
    }

    /// The mode picks the address family, case-insensitively; other values are refused
    /// with the allowed ones named.
    #[test]
    fn endpoint_mode_selects_family() {
        let c = ImdsConfig::resolve(&ctx(&[(ENDPOINT_MODE_VAR, "ipV6")]), &|_| None).unwrap();
        assert_eq!(c.endpoint, IPV6_ENDPOINT);
        let err = ImdsConfig::resolve(&ctx(&[(ENDPOINT_MODE_VAR, "IPv7")]), &|_| None).unwrap_err();
        assert!(matches!(err, CredentialsError::Invalid { .. }));
        assert!(err.to_string().contains("IPv4 or IPv6"));
    }

    /// Text that is not an http(s) URL is refused, naming the variable.
    #[test]
    fn malformed_endpoint_is_invalid() {
        for bad in ["not a uri", "ftp://host", "/relative"] {
            let err = ImdsConfig::resolve(&ctx(&[(ENDPOINT_VAR, bad)]), &|_| None).unwrap_err();
            assert!(matches!(err, CredentialsError::Invalid { .. }), "{bad}");
            assert!(err.to_string().contains(ENDPOINT_VAR), "{err}");
        }
    }

    /// Either the variable or the profile key turns the v1 fallback off.
    #[test]
    fn v1_fallback_can_be_disabled_by_env_or_profile() {
        let by_env = ImdsConfig::resolve(&ctx(&[(V1_DISABLED_VAR, "true")]), &|_| None).unwrap();
        assert!(!by_env.v1_fallback);
        let by_profile = ImdsConfig::resolve(&ctx(&[]), &|k| {
            (k == V1_DISABLED_KEY).then(|| "True".to_string())
        })
        .unwrap();
        assert!(!by_profile.v1_fallback);
    }

    /// An explicit mode beats the configured mode but not a configured endpoint.
    #[test]
    fn mode_override_ranks_below_configured_endpoint() {
        let overrides = ImdsOverrides {
            endpoint: None,
            mode: Some("IPv6".into()),
        };
        let c =
            ImdsConfig::resolve_with(&ctx(&[(ENDPOINT_MODE_VAR, "IPv4")]), &|_| None, &overrides)
                .unwrap();
        assert_eq!(c.endpoint, IPV6_ENDPOINT);
        let c = ImdsConfig::resolve_with(
            &ctx(&[(ENDPOINT_VAR, "http://169.254.169.200")]),
            &|_| None,
            &overrides,
        )
        .unwrap();
        assert_eq!(c.endpoint, "http://169.254.169.200");
    }
}
