//! Credentials of the EC2 instance role, from the instance metadata service (IMDS), as the
//! AWS SDKs get them: an IMDSv2 session token (`PUT /latest/api/token`), the role name
//! (`GET /latest/meta-data/iam/security-credentials/`) unless one is given, then that role's
//! credentials document. Falls back to IMDSv1 only when the token request is refused with
//! 403/404/405 or times out, and never when the fallback is disabled.
//!
//! - `config.rs`: [`ImdsConfig`], where IMDS is (environment, profile keys, overrides) and
//!   every default with its reason.
//! - `client.rs`: the token cache, v1 fallback, retries and the error messages.
//! - `document.rs`: the JSON credentials document (shared with the container source) and
//!   redaction of error bodies.
//!
//! Owns nothing else: no refresh timing (the refresher's), no chain order (the chain's).

mod client;
mod config;
pub(crate) mod document;

pub use client::{RETRY_BASE_DELAY, TOKEN_HEADER, TOKEN_REFRESH_MARGIN, TOKEN_TTL_HEADER};
pub use config::*;

use self::client::{ImdsClient, Session};
use self::document::{error_reason, parse_credentials, DocumentError};
use super::{BoxFuture, Credentials, CredentialsError, ProvideCredentials, ProviderContext};
use crate::sigv4::uri_encode;

/// The source name users see.
pub(crate) const NAME: &str = "imds";

const ROLE_LIST_PATH: &str = "/latest/meta-data/iam/security-credentials/";
const REGION_PATH: &str = "/latest/meta-data/placement/region";

/// How IMDS gave a session ([`ImdsProvider::token_check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenCheck {
    /// An IMDSv2 token.
    V2,
    /// IMDSv1: the token request was refused with this status (IMDSv2 is off).
    V1Refused(u16),
    /// IMDSv1: the token request connected but was never answered — the hop limit; `fix`
    /// says what to do.
    V1TimedOut { fix: &'static str },
}

/// The instance role's credentials from IMDS.
pub struct ImdsProvider {
    client: ImdsClient,
}

impl ImdsProvider {
    /// A provider for `config`.
    pub fn new(config: ImdsConfig) -> Result<Self, CredentialsError> {
        Ok(ImdsProvider {
            client: ImdsClient::new(config)?,
        })
    }

    /// Resolves the configuration from `ctx` and the active profile's keys (see
    /// [`ImdsConfig::resolve`]); `NotConfigured` when IMDS is disabled.
    pub fn from_context(
        ctx: &ProviderContext,
        profile: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, CredentialsError> {
        Self::new(ImdsConfig::resolve(ctx, profile)?)
    }

    pub fn config(&self) -> &ImdsConfig {
        &self.client.config
    }

    /// Fresh credentials of the instance role.
    pub async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let role = match &self.client.config.role_name {
            Some(role) => role.clone(),
            None => self.role_name().await?,
        };
        let path = format!("{ROLE_LIST_PATH}{}", uri_encode(&role, true));
        let answer = self.client.get(&path).await?;
        let endpoint = &self.client.config.endpoint;
        match answer.status {
            200 => {}
            404 => {
                return Err(CredentialsError::failed(
                    NAME,
                    format!(
                        "IMDS at {endpoint} has no credentials for role {role:?} (404): \
                         name the instance profile's role (aws ec2 \
                         describe-iam-instance-profile-associations) or drop --imds-role"
                    ),
                    false,
                ))
            }
            status => {
                return Err(CredentialsError::failed(
                    NAME,
                    format!(
                        "IMDS at {endpoint} answered {status} ({}) for role {role:?}: is the \
                         metadata service turned off? (aws ec2 modify-instance-metadata-options \
                         --http-endpoint enabled)",
                        error_reason(&answer.body)
                    ),
                    false,
                ))
            }
        }
        parse_credentials(&answer.body, NAME).map_err(|e| match e {
            DocumentError::Refused { code, message } => CredentialsError::failed(
                NAME,
                format!(
                    "IMDS could not give credentials for role {role:?}: {code}: {message} \
                     (check the role's trust policy allows ec2.amazonaws.com)"
                ),
                true,
            ),
            DocumentError::Malformed(why) => CredentialsError::failed(
                NAME,
                format!(
                    "IMDS at {endpoint} sent unusable credentials for role {role:?}: {why}; \
                     is {endpoint} really IMDS?"
                ),
                true,
            ),
        })
    }

    /// The instance's region (`/latest/meta-data/placement/region`), for mounts that name
    /// none.
    pub async fn region(&self) -> Result<String, CredentialsError> {
        let answer = self.client.get(REGION_PATH).await?;
        let endpoint = &self.client.config.endpoint;
        let region = answer.text().trim().to_string();
        if answer.status != 200 || region.is_empty() {
            return Err(CredentialsError::failed(
                NAME,
                format!(
                    "IMDS at {endpoint} gave no region ({} {}): pass --region",
                    answer.status,
                    error_reason(&answer.body)
                ),
                false,
            ));
        }
        Ok(region)
    }

    /// How this IMDS hands out sessions, for `s3rolefs check`: an IMDSv2 token, or IMDSv1
    /// because the token request was refused or never answered. An error when neither works.
    pub async fn token_check(&self) -> Result<TokenCheck, CredentialsError> {
        Ok(match self.client.session().await? {
            Session::V2(_) => TokenCheck::V2,
            Session::V1 {
                token_status: Some(status),
            } => TokenCheck::V1Refused(status),
            Session::V1 { token_status: None } => TokenCheck::V1TimedOut {
                fix: client::HOP_LIMIT_FIX,
            },
        })
    }

    /// The role attached to the instance: the first line of the role list.
    pub async fn role_name(&self) -> Result<String, CredentialsError> {
        let answer = self.client.get(ROLE_LIST_PATH).await?;
        let endpoint = &self.client.config.endpoint;
        // As in the SDKs, an instance without a role is "not configured": the chain moves
        // on (and reports this reason if nothing else applies).
        let no_role = || {
            CredentialsError::not_configured(
                NAME,
                format!(
                    "no IAM role is attached to this instance (IMDS at {endpoint} lists none): \
                     attach one (aws ec2 associate-iam-instance-profile --instance-id ID \
                     --iam-instance-profile Name=PROFILE)"
                ),
            )
        };
        match answer.status {
            200 => answer
                .text()
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
                .ok_or_else(no_role),
            404 => Err(no_role()),
            status => Err(CredentialsError::failed(
                NAME,
                format!(
                    "IMDS at {endpoint} answered {status} ({}) for the role list: is the \
                     metadata service turned off? (aws ec2 modify-instance-metadata-options \
                     --http-endpoint enabled)",
                    error_reason(&answer.body)
                ),
                false,
            )),
        }
    }
}

impl ProvideCredentials for ImdsProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn provide(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
        Box::pin(self.credentials())
    }
}
