//! Credentials from a web identity token (EKS IRSA, GitHub Actions OIDC, any OIDC issuer):
//! `AssumeRoleWithWebIdentity` with the token read from `AWS_WEB_IDENTITY_TOKEN_FILE` for
//! `AWS_ROLE_ARN` (session name `AWS_ROLE_SESSION_NAME`), or from a profile's
//! `web_identity_token_file` / `role_arn`.
//!
//! Owns: reading the token file afresh on every `provide()` — EKS rewrites the projected
//! token about hourly and a token kept from the first read stops working, which is how
//! peers' mounts died after an hour — and the unsigned STS call (the token is the
//! authentication). The token is a secret: it goes on the wire and nowhere else.

use std::path::PathBuf;

use super::sts::{
    check_session_name, default_session_name, read_secret_file, StsClient, StsConfig,
};
use super::{BoxFuture, Credentials, CredentialsError, ProvideCredentials, ProviderContext};

const NAME: &str = "web identity";
const ACTION: &str = "AssumeRoleWithWebIdentity";

/// What to assume with which token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebIdentityParams {
    /// Read on every `provide()`; never cached.
    pub token_file: PathBuf,
    pub role_arn: String,
    /// Default `s3rolefs-<unix time>`.
    pub session_name: Option<String>,
}

/// Assumes a role with the token in a file.
pub struct WebIdentityProvider {
    params: WebIdentityParams,
    client: StsClient,
}

impl WebIdentityProvider {
    /// From `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (+ `AWS_ROLE_SESSION_NAME`).
    /// `NotConfigured` without a token file (as in the SDKs, even when `AWS_ROLE_ARN` is
    /// set); `Invalid` when the token file is set without `AWS_ROLE_ARN`.
    pub fn from_context(ctx: &ProviderContext, sts: StsConfig) -> Result<Self, CredentialsError> {
        let token_file = ctx.var("AWS_WEB_IDENTITY_TOKEN_FILE");
        let role_arn = ctx.var("AWS_ROLE_ARN");
        let (token_file, role_arn) = match (token_file, role_arn) {
            (Some(file), Some(arn)) => (file, arn),
            (None, None) => {
                return Err(CredentialsError::not_configured(
                    NAME,
                    "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN are not set",
                ))
            }
            // As in the SDKs: without a token file this source does not apply, and the chain
            // goes on to the container endpoint and the instance role. Other tools set
            // AWS_ROLE_ARN alone; stopping the chain on it would break those hosts.
            (None, Some(_)) => {
                return Err(CredentialsError::not_configured(
                    NAME,
                    "AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not, so web \
                     identity does not apply; set AWS_WEB_IDENTITY_TOKEN_FILE to use it",
                ))
            }
            (Some(_), None) => {
                return Err(CredentialsError::invalid(
                    NAME,
                    "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not; set both \
                     (the role to assume with the token)",
                ))
            }
        };
        Self::new(
            WebIdentityParams {
                token_file: PathBuf::from(token_file.trim()),
                role_arn: role_arn.trim().to_string(),
                session_name: ctx
                    .var("AWS_ROLE_SESSION_NAME")
                    .map(|s| s.trim().to_string()),
            },
            sts,
        )
    }

    /// From explicit parameters (a profile's `web_identity_token_file` and `role_arn`).
    pub fn new(params: WebIdentityParams, sts: StsConfig) -> Result<Self, CredentialsError> {
        if params.role_arn.trim().is_empty() {
            return Err(CredentialsError::invalid(
                NAME,
                "a web identity token file is configured without a role ARN; set role_arn",
            ));
        }
        if params.token_file.as_os_str().is_empty() {
            return Err(CredentialsError::invalid(
                NAME,
                "the web identity token file path is empty; set it to the OIDC token's file",
            ));
        }
        if let Some(session) = &params.session_name {
            check_session_name(NAME, session)?;
        }
        Ok(WebIdentityProvider {
            client: StsClient::new(&sts, NAME)?,
            params,
        })
    }

    /// The parameters this provider was built from.
    pub fn params(&self) -> &WebIdentityParams {
        &self.params
    }

    async fn assume(&self) -> Result<Credentials, CredentialsError> {
        let token = read_secret_file(
            NAME,
            &self.params.token_file,
            "web identity token",
            "check that the token is mounted into this pod/host and readable by this user",
        )
        .await?;
        let session_name = self
            .params
            .session_name
            .clone()
            .unwrap_or_else(default_session_name);
        let params = [
            ("RoleArn", self.params.role_arn.as_str()),
            ("RoleSessionName", session_name.as_str()),
            ("WebIdentityToken", token.expose()),
        ];
        self.client
            .call(ACTION, &params, None, &[token.expose()], NAME)
            .await
            .map_err(|e| {
                e.into_credentials_error(
                    NAME,
                    ACTION,
                    &self.params.role_arn,
                    &format!("the token in {}", self.params.token_file.display()),
                )
            })
    }
}

impl ProvideCredentials for WebIdentityProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn provide(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
        Box::pin(self.assume())
    }
}
