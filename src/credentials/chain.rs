//! The default credentials chain: which source applies, in the AWS SDKs' order, and why the
//! others did not.
//!
//! Order: environment → profile (`--profile`, `AWS_PROFILE`) → web identity from the
//! environment → container endpoint → IMDS. A source that does not apply (its variables or
//! files are absent) passes to the next; a source that applies but fails stops the chain
//! with its error, as in the SDKs — except that an unreachable IMDS at the end reads as "no
//! credentials found" with every reason listed. Explicit flags override the chain:
//! `--profile` uses that profile alone; `--saml-assertion-file` uses SAML; `--role-arn`
//! assumes a role on top of whatever source won.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::container::ContainerProvider;
use super::env::EnvironmentProvider;
use super::imds::{ImdsConfig, ImdsProvider};
use super::profile::{active_profile, MfaPrompt, ProfileProvider};
use super::sts::saml::{SamlParams, SamlProvider};
use super::sts::{AssumeRoleParams, AssumeRoleProvider, StsConfig};
use super::web_identity::WebIdentityProvider;
use super::{Credentials, CredentialsError, ProviderContext, SharedProvider};

/// What the user asked of the chain beyond the environment.
#[derive(Clone, Default)]
pub struct ChainOptions {
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub role_session_name: Option<String>,
    pub duration: Option<Duration>,
    pub sts_endpoint: Option<String>,
    pub saml_assertion_file: Option<PathBuf>,
    pub saml_principal_arn: Option<String>,
    pub imds_v2_only: bool,
    pub imds_role: Option<String>,
    /// Asks the user for an MFA code (the mount reads it from the terminal).
    pub mfa_prompt: Option<MfaPrompt>,
}

/// One source the chain looked at, and what came of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub source: String,
    /// `None` when this source supplied the credentials; else why it did not.
    pub skipped_because: Option<String>,
}

/// The source that won, its first credentials, and the story of the others.
pub struct Resolved {
    pub provider: SharedProvider,
    pub credentials: Credentials,
    pub attempts: Vec<Attempt>,
}

/// Why the chain gave no credentials.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("no credentials found ({})", list(.attempts))]
    NoneFound { attempts: Vec<Attempt> },
    #[error("{error}")]
    SourceFailed {
        error: CredentialsError,
        attempts: Vec<Attempt>,
    },
}

fn list(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|a| match &a.skipped_because {
            Some(why) => format!("{}: {why}", a.source),
            None => format!("{}: ok", a.source),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Finds the source that applies and its first credentials.
pub async fn resolve(ctx: &ProviderContext, opts: &ChainOptions) -> Result<Resolved, ChainError> {
    let sts = StsConfig::from_context(ctx, opts.sts_endpoint.as_deref());
    let mut attempts = Vec::new();

    if let Some(assertion_file) = &opts.saml_assertion_file {
        let (Some(role_arn), Some(principal_arn)) = (&opts.role_arn, &opts.saml_principal_arn)
        else {
            let error = CredentialsError::invalid(
                "saml",
                "--saml-assertion-file needs --role-arn and --saml-principal-arn",
            );
            return Err(ChainError::SourceFailed { error, attempts });
        };
        let saml = SamlProvider::new(
            SamlParams {
                role_arn: role_arn.clone(),
                principal_arn: principal_arn.clone(),
                assertion_file: assertion_file.clone(),
            },
            sts,
        );
        return match saml {
            Ok(p) => first_credentials(Arc::new(p), attempts).await,
            Err(error) => Err(ChainError::SourceFailed { error, attempts }),
        };
    }

    let mut candidates: Vec<Result<SharedProvider, CredentialsError>> = Vec::new();
    let profile = ProfileProvider::from_context(ctx, opts.mfa_prompt.clone());
    if ctx.profile.is_some() {
        // An explicit --profile is what the user wants, whatever the environment holds.
        candidates.push(profile.map(|p| Arc::new(p) as SharedProvider));
    } else {
        candidates.push(Ok(Arc::new(EnvironmentProvider::from_context(ctx))));
        candidates.push(profile.map(|p| Arc::new(p) as SharedProvider));
        candidates.push(
            WebIdentityProvider::from_context(ctx, sts.clone())
                .map(|p| Arc::new(p) as SharedProvider),
        );
        candidates
            .push(ContainerProvider::from_context(ctx).map(|p| Arc::new(p) as SharedProvider));
        candidates.push(imds_provider(ctx, opts));
    }

    let count = candidates.len();
    let mut base = None;
    for (i, candidate) in candidates.into_iter().enumerate() {
        let last = i + 1 == count;
        let provider = match candidate {
            Ok(p) => p,
            Err(e) if e.is_not_configured() => {
                attempts.push(skipped(&e));
                continue;
            }
            Err(error) => return Err(ChainError::SourceFailed { error, attempts }),
        };
        match provider.provide().await {
            Ok(credentials) => {
                attempts.push(Attempt {
                    source: provider.name().to_string(),
                    skipped_because: None,
                });
                base = Some((provider, credentials));
                break;
            }
            Err(e) if e.is_not_configured() || (last && e.is_retryable()) => {
                attempts.push(skipped(&e));
            }
            Err(error) => return Err(ChainError::SourceFailed { error, attempts }),
        }
    }
    let Some((provider, credentials)) = base else {
        return Err(ChainError::NoneFound { attempts });
    };

    let Some(role_arn) = &opts.role_arn else {
        return Ok(Resolved {
            provider,
            credentials,
            attempts,
        });
    };
    let params = AssumeRoleParams {
        role_arn: role_arn.clone(),
        session_name: opts.role_session_name.clone(),
        external_id: opts.external_id.clone(),
        duration: opts.duration,
        mfa: None,
    };
    let assume: SharedProvider = match AssumeRoleProvider::new(provider, params, sts) {
        Ok(p) => Arc::new(p),
        Err(error) => return Err(ChainError::SourceFailed { error, attempts }),
    };
    first_credentials(assume, attempts).await
}

async fn first_credentials(
    provider: SharedProvider,
    mut attempts: Vec<Attempt>,
) -> Result<Resolved, ChainError> {
    match provider.provide().await {
        Ok(credentials) => {
            attempts.push(Attempt {
                source: provider.name().to_string(),
                skipped_because: None,
            });
            Ok(Resolved {
                provider,
                credentials,
                attempts,
            })
        }
        Err(error) => Err(ChainError::SourceFailed { error, attempts }),
    }
}

fn imds_provider(
    ctx: &ProviderContext,
    opts: &ChainOptions,
) -> Result<SharedProvider, CredentialsError> {
    Ok(Arc::new(instance_metadata(ctx, opts)?))
}

/// The IMDS source as the chain configures it: the environment, the active profile's keys,
/// `--imds-v2-only` and `--imds-role`. `NotConfigured` when IMDS is disabled.
pub fn instance_metadata(
    ctx: &ProviderContext,
    opts: &ChainOptions,
) -> Result<ImdsProvider, CredentialsError> {
    // The active profile may set the IMDS endpoint (ec2_metadata_service_endpoint, ...).
    let profile = active_profile(ctx).ok().flatten();
    let lookup = |key: &str| {
        profile
            .as_ref()
            .and_then(|p| p.value(key).map(str::to_string))
    };
    let mut config = ImdsConfig::resolve(ctx, &lookup)?;
    if opts.imds_v2_only {
        config.v1_fallback = false;
    }
    if let Some(role) = &opts.imds_role {
        config.role_name = Some(role.clone());
    }
    ImdsProvider::new(config)
}

fn skipped(e: &CredentialsError) -> Attempt {
    let (source, reason) = match e {
        CredentialsError::NotConfigured {
            source_name,
            reason,
        }
        | CredentialsError::Invalid {
            source_name,
            reason,
        }
        | CredentialsError::Failed {
            source_name,
            reason,
            ..
        } => (source_name.clone(), reason.clone()),
    };
    Attempt {
        source,
        skipped_because: Some(reason),
    }
}
