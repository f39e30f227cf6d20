//! AWS STS: where its endpoint is ([`StsConfig`]), how one query-protocol call is made
//! (a signed or unsigned form POST, retried on throttling, 5xx and lost connections), and
//! what its refusals mean ([`StsError`], turned into a [`CredentialsError`] that names the
//! fix). The providers built on it live beside it: [`assume_role`] (AssumeRole on top of any
//! base source, with MFA), [`saml`] (AssumeRoleWithSAML); web identity is
//! `credentials::web_identity`.
//!
//! - `mod.rs`: [`StsConfig`] (endpoint and region resolution), the defaults, shared helpers.
//! - `client.rs`: the wire (form POST, SigV4, retries); `error.rs`: [`StsError`] and its
//!   fixes; `xml.rs`: answers, error bodies, redaction.
//!
//! STS calls sign with `crate::sigv4` (service `sts`) and parse their own XML (`xml.rs`);
//! nothing here imports `s3`. Request bodies carry secrets (web identity tokens, SAML
//! assertions) and answers carry session tokens: neither is ever logged, and every STS
//! message is redacted before it reaches an error.

pub mod assume_role;
mod client;
mod error;
pub mod saml;
mod xml;

use std::time::{Duration, SystemTime};

use super::{CredentialsError, ProviderContext, Secret, SkewedClock};

pub use assume_role::{AssumeRoleParams, AssumeRoleProvider, Mfa};
pub(crate) use client::StsClient;
pub use error::StsError;
pub use saml::{SamlParams, SamlProvider};

/// The STS API version every query-protocol call names.
pub const API_VERSION: &str = "2011-06-15";

/// The global endpoint, used only when no region is known at all: it lives in us-east-1,
/// adds cross-region latency and fails when that region is unreachable, which is why the
/// SDKs have defaulted to the regional endpoint since 2022.
pub const GLOBAL_ENDPOINT: &str = "https://sts.amazonaws.com";

/// The region the global endpoint (and an endpoint override without a region) signs for.
pub const GLOBAL_SIGNING_REGION: &str = "us-east-1";

/// STS answers in well under a second; 3 s to connect covers a slow TLS handshake behind a
/// NAT gateway without stalling the refresher on an unreachable endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A whole call, answer included. Long enough for an IdP round trip behind
/// AssumeRoleWithWebIdentity; short enough that a retry still fits well inside the
/// refresher's renewal margin.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts per call (the SDKs' standard retry mode makes 3): enough to ride out a throttle
/// or a dropped connection, few enough that a real outage is reported within ~30 s.
pub const MAX_ATTEMPTS: u32 = 3;

/// First retry delay ceiling; doubles per attempt, with full jitter so that many mounts on
/// one account do not retry in lockstep against STS's per-account throttle.
pub const RETRY_BASE_DELAY: Duration = Duration::from_millis(200);

/// AWS caps a role session assumed with credentials of another role ("role chaining") at
/// one hour, whatever the role's maximum session duration says.
pub const CHAINED_ROLE_MAX_DURATION: Duration = Duration::from_secs(3600);

/// Where STS calls go and which region they are signed for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StsConfig {
    /// The region of the regional endpoint and of the signature.
    pub region: Option<String>,
    /// An explicit endpoint (`--sts-endpoint-url`, `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`);
    /// `None` means the regional endpoint, or the global one without a region.
    pub endpoint: Option<String>,
    /// What signatures are dated by; learns from STS's answers to a skewed signature.
    pub clock: SkewedClock,
}

impl StsConfig {
    /// Endpoint: the flag, else `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`; region:
    /// `ctx.region` (`--region`), else `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    pub fn from_context(ctx: &ProviderContext, flag_endpoint: Option<&str>) -> Self {
        let endpoint = flag_endpoint
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .or_else(|| ctx.var("AWS_ENDPOINT_URL_STS"))
            .or_else(|| ctx.var("AWS_ENDPOINT_URL"))
            .map(|e| e.trim().to_string());
        let region = ctx
            .region
            .clone()
            .filter(|r| !r.trim().is_empty())
            .or_else(|| ctx.var("AWS_REGION"))
            .or_else(|| ctx.var("AWS_DEFAULT_REGION"))
            .map(|r| r.trim().to_string());
        StsConfig {
            region,
            endpoint,
            clock: ctx.clock.clone(),
        }
    }

    /// The URL calls are posted to: the explicit endpoint, else `https://sts.{region}.
    /// amazonaws.com` (the SDK default since 2022), else the global endpoint.
    pub fn endpoint_url(&self) -> String {
        match (&self.endpoint, &self.region) {
            (Some(endpoint), _) => endpoint.clone(),
            (None, Some(region)) => regional_endpoint(region),
            (None, None) => GLOBAL_ENDPOINT.to_string(),
        }
    }

    /// The region calls are signed for: the configured one, else us-east-1 (where the global
    /// endpoint lives).
    pub fn signing_region(&self) -> &str {
        self.region.as_deref().unwrap_or(GLOBAL_SIGNING_REGION)
    }
}

/// `https://sts.{region}.amazonaws.com`, or `.amazonaws.com.cn` in the China partition.
fn regional_endpoint(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://sts.{region}.amazonaws.com.cn")
    } else {
        format!("https://sts.{region}.amazonaws.com")
    }
}

/// A role session name: `s3rolefs-<unix seconds>`, so CloudTrail shows who and when.
pub(crate) fn default_session_name() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("s3rolefs-{secs}")
}

/// STS's rule for RoleSessionName: 2 to 64 of `[A-Za-z0-9_+=,.@-]`.
pub(crate) fn check_session_name(source: &str, name: &str) -> Result<(), CredentialsError> {
    let len_ok = (2..=64).contains(&name.chars().count());
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if len_ok && chars_ok {
        Ok(())
    } else {
        Err(CredentialsError::invalid(
            source,
            format!(
                "role session name {name:?} is invalid; use 2 to 64 letters, digits or _+=,.@-"
            ),
        ))
    }
}

/// Reads a token or assertion file afresh (they are rotated under a live mount: EKS
/// rewrites its projected token hourly). Missing, unreadable or empty → an error naming the
/// path. `retryable`: a rotation may be in progress, so a later attempt may find it.
pub(crate) async fn read_secret_file(
    source: &str,
    path: &std::path::Path,
    what: &str,
    fix: &str,
) -> Result<Secret, CredentialsError> {
    let text = tokio::fs::read_to_string(path).await.map_err(|e| {
        CredentialsError::failed(
            source,
            format!("cannot read the {what} file {}: {e}; {fix}", path.display()),
            true,
        )
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(CredentialsError::failed(
            source,
            format!("the {what} file {} is empty; {fix}", path.display()),
            true,
        ));
    }
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests;
