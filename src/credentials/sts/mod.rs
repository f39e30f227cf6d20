//! AWS STS: where its endpoint is ([`StsConfig`]), how one query-protocol call is made
//! (a signed or unsigned form POST, retried on throttling, 5xx and lost connections), and
//! what its refusals mean ([`StsError`], turned into a [`CredentialsError`] that names the
//! fix). The providers built on it live beside it: [`assume_role`] (AssumeRole on top of any
//! base source, with MFA), [`saml`] (AssumeRoleWithSAML); web identity is
//! `credentials::web_identity`.
//!
//! STS calls sign with `crate::sigv4` (service `sts`) and parse their own XML ([`xml`]);
//! nothing here imports `s3`. Request bodies carry secrets (web identity tokens, SAML
//! assertions) and answers carry session tokens: neither is ever logged, and every STS
//! message is redacted before it reaches an error.

pub mod assume_role;
pub mod saml;
mod xml;

use std::fmt;
use std::time::{Duration, SystemTime};

use rand::Rng;

use super::http::{self, HttpSettings, NoAnswer};
use super::{Credentials, CredentialsError, ProviderContext, Secret};
use crate::sigv4;

pub use assume_role::{AssumeRoleParams, AssumeRoleProvider, Mfa};
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
        StsConfig { region, endpoint }
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

/// Why an STS call gave no credentials. Messages are already redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StsError {
    /// The caller may not assume the role (trust policy or the caller's own policy).
    AccessDenied(String),
    /// The credentials the call was signed with have expired.
    ExpiredToken(String),
    /// The web identity token or SAML assertion was refused.
    InvalidIdentityToken(String),
    /// STS could not reach the identity provider to check the token; transient.
    IdpCommunication(String),
    /// STS is not activated in the signing region for this account.
    RegionDisabled(String),
    /// DurationSeconds above the 1 h cap of a role assumed with another role's credentials.
    ChainedDurationTooLong(String),
    /// Any other malformed request (`ValidationError`, `MalformedPolicyDocument`, ...).
    Validation { code: String, message: String },
    /// STS throttled the account.
    Throttling(String),
    /// A 5xx answer.
    Server { status: u16, code: String },
    /// No answer at all (connection refused, timeout, reset).
    Transport(NoAnswer),
    /// An answer that is not STS's (a proxy page, truncated XML).
    Malformed { status: u16, detail: String },
    /// Any other refusal.
    Other {
        status: u16,
        code: String,
        message: String,
    },
}

impl StsError {
    /// Throttling, 5xx, lost connections and IdP hiccups are worth another attempt.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StsError::Throttling(_)
                | StsError::Server { .. }
                | StsError::Transport(_)
                | StsError::IdpCommunication(_)
        ) || matches!(self, StsError::Malformed { status, .. } if *status >= 500)
    }

    fn classify(status: u16, code: &str, message: String) -> StsError {
        match code {
            "AccessDenied" | "AccessDeniedException" => StsError::AccessDenied(message),
            "ExpiredToken" | "ExpiredTokenException" => StsError::ExpiredToken(message),
            "InvalidIdentityToken" | "InvalidIdentityTokenException" => {
                StsError::InvalidIdentityToken(message)
            }
            "IDPCommunicationError" | "IDPCommunicationErrorException" => {
                StsError::IdpCommunication(message)
            }
            "IDPRejectedClaim" | "IDPRejectedClaimException" => {
                StsError::InvalidIdentityToken(message)
            }
            "RegionDisabledException" => StsError::RegionDisabled(message),
            "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException" => StsError::Throttling(message),
            "ValidationError" if is_chained_duration_message(&message) => {
                StsError::ChainedDurationTooLong(message)
            }
            "ValidationError"
            | "MalformedPolicyDocument"
            | "PackedPolicyTooLarge"
            | "InvalidParameterValue" => StsError::Validation {
                code: code.to_string(),
                message,
            },
            _ if status == 429 => StsError::Throttling(message),
            _ if status >= 500 => StsError::Server {
                status,
                code: code.to_string(),
            },
            _ => StsError::Other {
                status,
                code: code.to_string(),
                message,
            },
        }
    }

    /// The error a provider returns: cause and fix in one line. `action` is the STS action,
    /// `role_arn` the role asked for, `caller` who asked (a base source, "the web identity
    /// token", ...).
    pub fn into_credentials_error(
        self,
        source: &str,
        action: &str,
        role_arn: &str,
        caller: &str,
    ) -> CredentialsError {
        let refused = format!("STS refused {action} of {role_arn}");
        match self {
            StsError::AccessDenied(m) => CredentialsError::failed(
                source,
                format!(
                    "{refused}: AccessDenied: {m}; add {caller} as a principal to the trust \
                     policy of {role_arn}, and allow it {} on that role in its own IAM policy",
                    permission_of(action)
                ),
                false,
            ),
            StsError::ExpiredToken(m) => CredentialsError::failed(
                source,
                format!(
                    "{refused}: ExpiredToken: {m}; the credentials of {caller} have expired — \
                     renew them (they are asked for again on the next attempt)"
                ),
                true,
            ),
            StsError::InvalidIdentityToken(m) => CredentialsError::failed(
                source,
                format!(
                    "{refused}: InvalidIdentityToken: {m}; check that {caller} is current and \
                     that the role trusts its issuer (an IAM identity provider for it must exist)"
                ),
                true,
            ),
            StsError::IdpCommunication(m) => CredentialsError::failed(
                source,
                format!("{refused}: IDPCommunicationError: {m}; STS could not reach the identity provider, retrying later"),
                true,
            ),
            StsError::RegionDisabled(m) => CredentialsError::invalid(
                source,
                format!(
                    "{refused}: RegionDisabledException: {m}; activate STS for this region in \
                     the account's IAM settings, or set --region / --sts-endpoint-url to an \
                     active region"
                ),
            ),
            StsError::ChainedDurationTooLong(m) => CredentialsError::invalid(
                source,
                format!(
                    "{refused}: {m}; AWS caps roles assumed from another role at {} s, \
                     ask for at most that",
                    CHAINED_ROLE_MAX_DURATION.as_secs()
                ),
            ),
            StsError::Validation { code, message } => CredentialsError::invalid(
                source,
                format!("{refused}: {code}: {message}; fix the parameter named in the message"),
            ),
            StsError::Throttling(m) => CredentialsError::failed(
                source,
                format!("{refused}: throttled after {MAX_ATTEMPTS} attempts: {m}; retrying later"),
                true,
            ),
            StsError::Server { status, code } => CredentialsError::failed(
                source,
                format!("{refused}: HTTP {status} {code} after {MAX_ATTEMPTS} attempts; STS is unavailable, retrying later"),
                true,
            ),
            StsError::Transport(e) => CredentialsError::failed(
                source,
                format!("cannot reach STS for {action} of {role_arn}: {e} (after {MAX_ATTEMPTS} attempts); check the network, --region or --sts-endpoint-url"),
                true,
            ),
            StsError::Malformed { status, detail } => CredentialsError::failed(
                source,
                format!("{action} of {role_arn}: HTTP {status} answer is not STS's ({detail}); check --sts-endpoint-url and any proxy in between"),
                status >= 500,
            ),
            StsError::Other {
                status,
                code,
                message,
            } => CredentialsError::failed(
                source,
                format!("{refused}: HTTP {status} {code}: {message}"),
                false,
            ),
        }
    }
}

impl fmt::Display for StsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StsError::AccessDenied(m) => write!(f, "AccessDenied: {m}"),
            StsError::ExpiredToken(m) => write!(f, "ExpiredToken: {m}"),
            StsError::InvalidIdentityToken(m) => write!(f, "InvalidIdentityToken: {m}"),
            StsError::IdpCommunication(m) => write!(f, "IDPCommunicationError: {m}"),
            StsError::RegionDisabled(m) => write!(f, "RegionDisabledException: {m}"),
            StsError::ChainedDurationTooLong(m) => write!(f, "ValidationError: {m}"),
            StsError::Validation { code, message } => write!(f, "{code}: {message}"),
            StsError::Throttling(m) => write!(f, "Throttling: {m}"),
            StsError::Server { status, code } => write!(f, "HTTP {status} {code}"),
            StsError::Transport(e) => write!(f, "{e}"),
            StsError::Malformed { status, detail } => write!(f, "HTTP {status}: {detail}"),
            StsError::Other {
                status,
                code,
                message,
            } => write!(f, "HTTP {status} {code}: {message}"),
        }
    }
}

/// STS's message for a DurationSeconds above the chained-role cap: "The requested
/// DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
fn is_chained_duration_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("durationseconds") && m.contains("chaining")
}

/// The IAM permission an action needs, for the AccessDenied fix.
fn permission_of(action: &str) -> String {
    format!("sts:{action}")
}

/// The credentials STS handed out, as [`Credentials`] from `source`.
fn to_credentials(issued: xml::IssuedCredentials, source: &str) -> Credentials {
    Credentials {
        access_key_id: issued.access_key_id,
        secret_access_key: issued.secret_access_key,
        session_token: Some(issued.session_token),
        expiry: Some(issued.expiration),
        source: source.to_string(),
    }
}

/// One provider's connection to STS: a client with [`CONNECT_TIMEOUT`]/[`REQUEST_TIMEOUT`],
/// the URL and the signing region.
pub(crate) struct StsClient {
    http: reqwest::Client,
    url: reqwest::Url,
    /// `host[:port]` exactly as reqwest sends it (the port only when not the default).
    host: String,
    signing_region: String,
}

impl StsClient {
    pub(crate) fn new(config: &StsConfig, source: &str) -> Result<Self, CredentialsError> {
        let text = config.endpoint_url();
        let url = reqwest::Url::parse(&text).map_err(|e| {
            CredentialsError::invalid(
                source,
                format!("STS endpoint {text:?} is not a URL ({e}); give --sts-endpoint-url as https://host[:port]"),
            )
        })?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(CredentialsError::invalid(
                    source,
                    format!("STS endpoint {text:?} has no host; give --sts-endpoint-url as https://host[:port]"),
                ))
            }
        };
        let settings = HttpSettings {
            connect_timeout: CONNECT_TIMEOUT,
            timeout: REQUEST_TIMEOUT,
            // STS is a public AWS endpoint: corporate proxies (HTTPS_PROXY) apply to it.
            no_proxy: false,
        };
        Ok(StsClient {
            http: http::client(&settings, source)?,
            url,
            host,
            signing_region: config.signing_region().to_string(),
        })
    }

    /// Calls `action` with `params`, signed with `signer` when given (AssumeRole) or unsigned
    /// (the web identity and SAML actions authenticate by their token), retrying transient
    /// failures. `secrets` are values the request carries that an error echo must not show.
    pub(crate) async fn call(
        &self,
        action: &str,
        params: &[(&str, &str)],
        signer: Option<&Credentials>,
        secrets: &[&str],
        source: &str,
    ) -> Result<Credentials, StsError> {
        let mut form: Vec<(String, String)> = vec![
            ("Action".into(), action.into()),
            ("Version".into(), API_VERSION.into()),
        ];
        form.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let body = sigv4::encode_query(&form);
        let mut attempt = 1;
        loop {
            match self.attempt(&body, signer, secrets).await {
                Ok(issued) => return Ok(to_credentials(issued, source)),
                Err(e) if e.is_transient() && attempt < MAX_ATTEMPTS => {
                    let delay = backoff(attempt);
                    log::debug!(
                        "{source}: {action} attempt {attempt} failed ({e}); retrying in {} ms",
                        delay.as_millis()
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn attempt(
        &self,
        body: &str,
        signer: Option<&Credentials>,
        secrets: &[&str],
    ) -> Result<xml::IssuedCredentials, StsError> {
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let mut request = self
            .http
            .post(self.url.clone())
            .header("content-type", content_type)
            .body(body.to_string());
        if let Some(creds) = signer {
            let headers = [
                ("content-type".to_string(), content_type.to_string()),
                ("host".to_string(), self.host.clone()),
            ];
            let payload_hash = sigv4::sha256_hex(body.as_bytes());
            let signed = sigv4::sign(
                &sigv4::HttpRequest {
                    method: "POST",
                    path: self.url.path(),
                    query: &[],
                    headers: &headers,
                    payload_hash: &payload_hash,
                },
                &sigv4::SigningInputs {
                    access_key_id: &creds.access_key_id,
                    secret_access_key: creds.secret_access_key.expose(),
                    session_token: creds.session_token.as_ref().map(Secret::expose),
                    region: &self.signing_region,
                    service: "sts",
                    time: SystemTime::now(),
                },
            );
            for (name, value) in signed.headers {
                request = request.header(name, value);
            }
        }
        let answer = http::send(request).await.map_err(StsError::Transport)?;
        if answer.status == 200 {
            return xml::parse_credentials(&answer.body).map_err(|detail| StsError::Malformed {
                status: 200,
                detail,
            });
        }
        let mut known: Vec<&str> = secrets.to_vec();
        if let Some(creds) = signer {
            known.push(creds.secret_access_key.expose());
            if let Some(token) = &creds.session_token {
                known.push(token.expose());
            }
        }
        match xml::parse_error(&answer.body) {
            Some(error) => Err(StsError::classify(
                answer.status,
                &error.code,
                xml::redact(&error.message, &known),
            )),
            None if answer.status == 429 => Err(StsError::Throttling(String::new())),
            None if answer.status >= 500 => Err(StsError::Server {
                status: answer.status,
                code: String::new(),
            }),
            None => Err(StsError::Malformed {
                status: answer.status,
                detail: "no <ErrorResponse> in the body".into(),
            }),
        }
    }
}

/// Full jitter: a random delay up to `RETRY_BASE_DELAY * 2^(attempt-1)`.
fn backoff(attempt: u32) -> Duration {
    let ceiling = RETRY_BASE_DELAY.saturating_mul(1 << attempt.saturating_sub(1).min(8));
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::thread_rng().gen_range(0..=millis))
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
