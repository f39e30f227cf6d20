//! Credentials from a SAML assertion: `AssumeRoleWithSAML` with the base64 assertion read
//! from a file (`--saml-assertion-file`), for a role trusted by a SAML identity provider.
//!
//! Owns: reading the assertion afresh on every `provide()` (an IdP login helper rewrites the
//! file; an assertion is good for 5 minutes, so a kept copy is useless at renewal) and the
//! unsigned STS call. The assertion is a secret: it goes on the wire and nowhere else.

use std::path::PathBuf;

use super::{read_secret_file, StsClient, StsConfig};
use crate::credentials::{BoxFuture, Credentials, CredentialsError, ProvideCredentials};

const NAME: &str = "saml";
const ACTION: &str = "AssumeRoleWithSAML";

/// What to assume with which assertion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SamlParams {
    pub role_arn: String,
    /// The IAM SAML provider (`arn:aws:iam::<account>:saml-provider/<name>`).
    pub principal_arn: String,
    /// Holds the base64 `SAMLResponse`; read on every `provide()`.
    pub assertion_file: PathBuf,
}

/// Assumes a role with the SAML assertion in a file.
pub struct SamlProvider {
    params: SamlParams,
    client: StsClient,
}

impl SamlProvider {
    /// Checks the parameters are present and builds the STS client.
    pub fn new(params: SamlParams, sts: StsConfig) -> Result<Self, CredentialsError> {
        if params.role_arn.trim().is_empty() || params.principal_arn.trim().is_empty() {
            return Err(CredentialsError::invalid(
                NAME,
                "SAML needs both the role ARN and the SAML provider's ARN (principal); set both",
            ));
        }
        if !params.principal_arn.contains(":saml-provider/") {
            return Err(CredentialsError::invalid(
                NAME,
                format!(
                    "principal ARN {:?} is not a SAML provider; use \
                     arn:aws:iam::<account>:saml-provider/<name>",
                    params.principal_arn
                ),
            ));
        }
        Ok(SamlProvider {
            client: StsClient::new(&sts, NAME)?,
            params,
        })
    }

    async fn assume(&self) -> Result<Credentials, CredentialsError> {
        let assertion = read_secret_file(
            NAME,
            &self.params.assertion_file,
            "SAML assertion",
            "log in to the identity provider again to write a fresh assertion",
        )
        .await?;
        let params = [
            ("RoleArn", self.params.role_arn.as_str()),
            ("PrincipalArn", self.params.principal_arn.as_str()),
            ("SAMLAssertion", assertion.expose()),
        ];
        self.client
            .call(ACTION, &params, None, &[assertion.expose()], NAME)
            .await
            .map_err(|e| {
                e.into_credentials_error(
                    NAME,
                    ACTION,
                    &self.params.role_arn,
                    &format!("the assertion in {}", self.params.assertion_file.display()),
                )
            })
    }
}

impl ProvideCredentials for SamlProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn provide(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
        Box::pin(self.assume())
    }
}
