//! Credentials from AWS IAM Identity Center (SSO): the access token `aws sso login` cached
//! (renewed with its refresh token when close to expiry, see [`token`]), exchanged for role
//! credentials with the portal's `GetRoleCredentials`
//! (`GET /federation/credentials?account_id=..&role_name=..`, bearer token in
//! `x-amz-sso_bearer_token`). Every `provide()` reads the cache again, so a fresh
//! `aws sso login` is picked up by a live mount without a restart.
//!
//! Endpoints: `https://portal.sso.{region}.amazonaws.com` and
//! `https://oidc.{region}.amazonaws.com`, or `AWS_ENDPOINT_URL_SSO` /
//! `AWS_ENDPOINT_URL_SSO_OIDC` (the SDKs' service-specific endpoint variables). The global
//! `AWS_ENDPOINT_URL` is deliberately not used: with s3rolefs it usually points at an
//! S3-compatible server, which does not serve SSO.

pub mod token;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use self::token::{cache_file_name, short, CachedToken};
use super::http::{self, HttpSettings};
use super::{
    BoxFuture, Credentials, CredentialsError, ProvideCredentials, ProviderContext, Secret,
};

/// Connecting to a regional AWS endpoint takes well under a second; three leave room for a
/// slow resolver without stalling a refresh.
pub const SSO_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The portal and OIDC calls answer in a fraction of a second; ten seconds covers a slow
/// network while keeping a refresh attempt short enough to retry before expiry.
pub const SSO_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What an SSO profile names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoParams {
    /// The profile, for messages (`aws sso login --profile X`).
    pub profile: String,
    /// `sso_session`: the cache is keyed by it; `None` for legacy profiles.
    pub session_name: Option<String>,
    pub start_url: String,
    /// `sso_region`: where the portal (and, unless the cache says otherwise, OIDC) is.
    pub region: String,
    pub account_id: String,
    pub role_name: String,
}

/// Role credentials through IAM Identity Center.
pub struct SsoProvider {
    name: String,
    params: SsoParams,
    cache_file: PathBuf,
    portal_endpoint: String,
    oidc_endpoint: Option<String>,
    http: reqwest::Client,
}

impl SsoProvider {
    /// A provider for `params`, with endpoints and the cache directory from `ctx`.
    pub fn new(ctx: &ProviderContext, params: SsoParams) -> Result<Self, CredentialsError> {
        let name = format!(
            "profile {}: sso {}/{}",
            params.profile, params.account_id, params.role_name
        );
        let home = super::profile::files::home_dir(ctx).ok_or_else(|| {
            CredentialsError::invalid(
                &name,
                "no home directory (HOME unset) to find ~/.aws/sso/cache in; set HOME",
            )
        })?;
        let key = params.session_name.as_deref().unwrap_or(&params.start_url);
        let cache_file = home
            .join(".aws")
            .join("sso")
            .join("cache")
            .join(cache_file_name(key));
        let portal_endpoint = ctx
            .var("AWS_ENDPOINT_URL_SSO")
            .unwrap_or_else(|| format!("https://portal.sso.{}.amazonaws.com", params.region));
        let http = http::client(
            &HttpSettings {
                connect_timeout: SSO_CONNECT_TIMEOUT,
                timeout: SSO_REQUEST_TIMEOUT,
                no_proxy: false,
            },
            &name,
        )?;
        Ok(SsoProvider {
            name,
            oidc_endpoint: ctx.var("AWS_ENDPOINT_URL_SSO_OIDC"),
            params,
            cache_file,
            portal_endpoint,
            http,
        })
    }

    fn login_hint(&self) -> String {
        format!("run aws sso login --profile {}", self.params.profile)
    }

    /// A token valid for the portal call: the cached one, renewed first when close to expiry.
    async fn token(&self) -> Result<Secret, CredentialsError> {
        let hint = self.login_hint();
        let mut cached = CachedToken::read(&self.cache_file, &self.name, &hint)?;
        let now = SystemTime::now();
        if !cached.needs_refresh(now) {
            return Ok(cached.access_token);
        }
        let expired = cached.expires_at <= now;
        if cached.can_refresh(now) {
            let region = cached.region.clone().unwrap_or(self.params.region.clone());
            let oidc = self
                .oidc_endpoint
                .clone()
                .unwrap_or_else(|| format!("https://oidc.{region}.amazonaws.com"));
            match cached.refresh(&self.http, &oidc, &self.name).await {
                Ok(()) => return Ok(cached.access_token),
                Err(e) if expired => {
                    return Err(CredentialsError::failed(
                        &self.name,
                        format!("SSO session expired and renewing it failed ({e}): {hint}"),
                        true,
                    ))
                }
                // Still valid for a few minutes: use it; the next refresh tries again.
                Err(e) => log::warn!("{e}; using the current SSO token until it expires"),
            }
        }
        if expired {
            return Err(CredentialsError::failed(
                &self.name,
                format!("SSO session expired: {hint}"),
                true,
            ));
        }
        Ok(cached.access_token)
    }

    /// The portal's `GetRoleCredentials` call (and its URL, for messages); the bearer token
    /// goes as a sensitive header value, which no HTTP-level log prints.
    fn role_credentials_request(
        &self,
        token: &Secret,
    ) -> Result<(String, reqwest::RequestBuilder), CredentialsError> {
        let url = format!(
            "{}/federation/credentials",
            self.portal_endpoint.trim_end_matches('/')
        );
        let bearer = http::secret_header(token.expose()).ok_or_else(|| {
            CredentialsError::failed(
                &self.name,
                format!(
                    "the cached SSO access token holds characters a header cannot carry: {}",
                    self.login_hint()
                ),
                false,
            )
        })?;
        let request = self
            .http
            .get(&url)
            .query(&[
                ("account_id", self.params.account_id.as_str()),
                ("role_name", self.params.role_name.as_str()),
            ])
            .header("x-amz-sso_bearer_token", bearer);
        Ok((url, request))
    }

    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let token = self.token().await?;
        let (url, request) = self.role_credentials_request(&token)?;
        let answer = http::send(request).await.map_err(|e| {
            CredentialsError::failed(
                &self.name,
                format!("SSO GetRoleCredentials at {url}: {e}"),
                true,
            )
        })?;
        match answer.status {
            200 => {}
            401 => {
                return Err(CredentialsError::failed(
                    &self.name,
                    format!(
                        "the SSO portal refused the token (HTTP 401, {}): {}",
                        error_type(&answer),
                        self.login_hint()
                    ),
                    true,
                ))
            }
            s if s == 429 || s >= 500 => {
                return Err(CredentialsError::failed(
                    &self.name,
                    format!(
                        "SSO GetRoleCredentials failed (HTTP {s}, {}); will retry",
                        error_type(&answer)
                    ),
                    true,
                ))
            }
            s => {
                return Err(CredentialsError::invalid(
                    &self.name,
                    format!(
                        "SSO GetRoleCredentials refused (HTTP {s}, {}); check sso_account_id and \
                         sso_role_name, and that your user may use that role",
                        error_type(&answer)
                    ),
                ))
            }
        }
        parse_role_credentials(&answer.body, &self.name)
    }
}

impl ProvideCredentials for SsoProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn provide(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
        Box::pin(self.fetch())
    }
}

/// The error's type, from the `x-amzn-ErrorType` header or the body's `__type`/`code`; never
/// the message (it could quote the request).
fn error_type(answer: &http::Answer) -> String {
    if let Some(t) = answer
        .headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
    {
        return short(t.split(':').next().unwrap_or(t));
    }
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&answer.body)
        .ok()
        .and_then(|m| {
            ["__type", "code", "Code"]
                .iter()
                .find_map(|k| m.get(*k).and_then(|v| v.as_str()).map(short))
        })
        .unwrap_or_else(|| "no error type".into())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleCredentialsReply {
    role_credentials: RoleCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    /// Milliseconds since the epoch.
    expiration: u64,
}

fn parse_role_credentials(body: &[u8], name: &str) -> Result<Credentials, CredentialsError> {
    let reply: RoleCredentialsReply = serde_json::from_slice(body).map_err(|_| {
        CredentialsError::failed(
            name,
            "SSO GetRoleCredentials answered without roleCredentials {accessKeyId, \
             secretAccessKey, sessionToken, expiration}",
            true,
        )
    })?;
    let c = reply.role_credentials;
    Ok(Credentials {
        access_key_id: c.access_key_id,
        secret_access_key: Secret::new(c.secret_access_key),
        session_token: Some(Secret::new(c.session_token)),
        expiry: Some(UNIX_EPOCH + Duration::from_millis(c.expiration)),
        source: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portal's answer becomes session credentials expiring at the given millisecond.
    #[test]
    fn role_credentials_parse_with_millisecond_expiry() {
        let c = parse_role_credentials(
            br#"{"roleCredentials":{"accessKeyId":"A","secretAccessKey":"S","sessionToken":"T","expiration":1700000000000}}"#,
            "sso",
        )
        .unwrap();
        assert_eq!(
            c.expiry,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(c.session_token.unwrap().expose(), "T");
    }

    /// The bearer token of GetRoleCredentials is a sensitive header value: it never prints
    /// in the request's `Debug`, the form HTTP-level logging uses.
    #[test]
    fn sensitive_header_values_never_print() {
        let ctx = ProviderContext::with_vars(std::collections::HashMap::from([(
            "HOME".to_string(),
            "/nonexistent".to_string(),
        )]));
        let provider = SsoProvider::new(
            &ctx,
            SsoParams {
                profile: "dev".into(),
                session_name: Some("s".into()),
                start_url: "https://example.awsapps.com/start".into(),
                region: "eu-west-1".into(),
                account_id: "123456789012".into(),
                role_name: "reader".into(),
            },
        )
        .unwrap();
        let (_, request) = provider
            .role_credentials_request(&Secret::new("aoaSECRETBEARERTOKEN"))
            .unwrap();
        let request = request.build().unwrap();
        assert!(request.headers()["x-amz-sso_bearer_token"].is_sensitive());
        let printed = format!("{request:?} {:?}", request.headers());
        assert!(!printed.contains("SECRETBEARER"), "{printed}");
    }
}
