//! Credentials from the shared config and credentials files (`~/.aws/config`,
//! `~/.aws/credentials`): the active profile (`--profile`, else `AWS_PROFILE`, else
//! `default`) resolved into a chain of providers the way the AWS SDKs do it.
//!
//! - [`parser`]: the file dialect; [`files`]: where the files are and reading them;
//!   [`resolve`]: profile set → chain of steps (pure data, held to the cross-SDK suite).
//! - [`ProfileProvider`] (here): builds one provider per step — static keys, a
//!   `credential_source`, web identity, SSO or `credential_process` at the base, then one
//!   `AssumeRoleProvider` per `role_arn` on top — and runs the whole chain on every
//!   `provide()`, so a refresh renews every hop.
//!
//! What this module must never do: read `std::env` (everything comes through the
//! [`ProviderContext`]), or let a source's "not configured" slip through — once the profile
//! names a source, that source failing is an error, not a reason to try the next provider.

mod error;
pub mod files;
pub mod parser;
pub mod resolve;

use std::sync::Arc;

use self::files::FileLocations;
use self::parser::Section;
use self::resolve::{resolve_chain, static_keys, BaseSource, NamedSource, ProfileChain};
use super::container::ContainerProvider;
use super::env::EnvironmentProvider;
use super::imds::{ImdsConfig, ImdsProvider};
use super::process::ProcessProvider;
use super::sso::{SsoParams, SsoProvider};
use super::sts::{AssumeRoleParams, AssumeRoleProvider, Mfa, StsConfig};
use super::web_identity::{WebIdentityParams, WebIdentityProvider};
use super::{
    BoxFuture, Credentials, CredentialsError, ProvideCredentials, ProviderContext, SharedProvider,
};

/// Asks the user for the current code of the MFA device whose serial it is given (the
/// mount reads it from the terminal; tests return a fixed code).
pub type MfaPrompt = Arc<dyn Fn(&str) -> Result<String, CredentialsError> + Send + Sync>;

/// The active profile's credentials, through every hop of its chain.
pub struct ProfileProvider {
    /// `profile dev`.
    name: String,
    /// `profile dev: source_profile base (static) → assume role arn:...`: what
    /// `Credentials::source` says, so logs and `s3rolefs credentials` show the path.
    description: String,
    chain: ProfileChain,
    /// The active profile's own keys (region, IMDS endpoint settings, ...).
    active: Section,
    provider: SharedProvider,
}

impl ProfileProvider {
    /// Resolves the active profile of `ctx`. `NotConfigured` when the profile is not defined
    /// and was not asked for, or holds no credentials at all; `Invalid` when an explicitly
    /// asked profile is missing, or the chain is misconfigured (cycle, half a key pair, ...).
    pub fn from_context(
        ctx: &ProviderContext,
        mfa_prompt: Option<MfaPrompt>,
    ) -> Result<Self, CredentialsError> {
        let selected = ctx.profile_name();
        let name = format!("profile {selected}");
        let locations = FileLocations::resolve(ctx);
        let set = locations.load()?;
        let Some(active) = set.profile(&selected).cloned() else {
            let explicit = ctx.profile.is_some() || ctx.var("AWS_PROFILE").is_some();
            let reason = format!(
                "profile `{selected}` is not defined in {}",
                locations.describe()
            );
            return Err(if explicit {
                CredentialsError::invalid(
                    &name,
                    format!("{reason}; define it, or select another with --profile/AWS_PROFILE"),
                )
            } else {
                CredentialsError::not_configured(&name, reason)
            });
        };
        let chain = resolve_chain(&set, &selected).map_err(|e| match e {
            // A profile with settings only (region, ...) is common; other sources may apply.
            resolve::ResolveError::NoCredentials { ref profile } if *profile == selected => {
                CredentialsError::not_configured(&name, e.to_string())
            }
            e => CredentialsError::invalid(&name, e.to_string()),
        })?;
        let builder = Builder {
            ctx,
            name: &name,
            locations: &locations,
            active: &active,
            mfa_prompt,
        };
        let provider = builder.build(&chain)?;
        Ok(ProfileProvider {
            description: format!("{name}: {}", describe(&chain, &selected)),
            name,
            chain,
            active,
            provider,
        })
    }

    /// A key of the active profile, as written (IMDS endpoint settings, region, ...).
    pub fn get(&self, key: &str) -> Option<String> {
        self.active.get(key).map(str::to_string)
    }

    /// The resolved chain (for `s3rolefs credentials` and diagnostics).
    pub fn chain(&self) -> &ProfileChain {
        &self.chain
    }

    /// What the credentials' `source` will say.
    pub fn description(&self) -> &str {
        &self.description
    }

    async fn run(&self) -> Result<Credentials, CredentialsError> {
        match self.provider.provide().await {
            Ok(mut credentials) => {
                credentials.source = self.description.clone();
                Ok(credentials)
            }
            // The profile named this source: its absence is a misconfiguration, not a cue
            // for the chain to quietly try the next provider.
            Err(CredentialsError::NotConfigured {
                source_name,
                reason,
            }) => Err(CredentialsError::invalid(
                &self.name,
                format!("{source_name}: {reason}; the profile relies on it, so provide it or change the profile"),
            )),
            Err(e) => Err(e),
        }
    }
}

impl ProvideCredentials for ProfileProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn provide(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
        Box::pin(self.run())
    }
}

/// The active profile's `region` (for the mount when no `--region`/`AWS_REGION` is given).
/// `None` when the files are missing, unreadable or do not set it: the caller then falls
/// back to its own default, and an unreadable file is reported by the credentials chain.
pub fn profile_region(ctx: &ProviderContext) -> Option<String> {
    active_profile(ctx)
        .ok()
        .flatten()
        .and_then(|p| p.value("region").map(str::to_string))
}

/// The active profile's keys, `None` when it is not defined.
pub fn active_profile(ctx: &ProviderContext) -> Result<Option<Section>, CredentialsError> {
    let set = FileLocations::resolve(ctx).load()?;
    Ok(set.profile(&ctx.profile_name()).cloned())
}

/// `source_profile base (static) → assume role arn:...`.
fn describe(chain: &ProfileChain, selected: &str) -> String {
    let (profile, what) = match &chain.base {
        BaseSource::AccessKey(k) => (Some(k.profile.as_str()), "static keys".to_string()),
        BaseSource::Named(n) => (None, format!("credential_source {}", n.as_str())),
        BaseSource::WebIdentity {
            profile, role_arn, ..
        } => (
            Some(profile.as_str()),
            format!("web identity → role {role_arn}"),
        ),
        BaseSource::Sso(s) => (
            Some(s.profile.as_str()),
            format!(
                "sso {}/{}",
                s.account_id.as_deref().unwrap_or("?"),
                s.role_name.as_deref().unwrap_or("?")
            ),
        ),
        BaseSource::Process { profile, .. } => {
            (Some(profile.as_str()), "credential_process".to_string())
        }
    };
    let mut text = match profile {
        Some(p) if p != selected => format!("source_profile {p} ({what})"),
        _ => what,
    };
    for role in &chain.roles {
        text.push_str(&format!(" → assume role {}", role.role_arn));
    }
    text
}

/// Turns a resolved chain into providers.
struct Builder<'a> {
    ctx: &'a ProviderContext,
    name: &'a str,
    locations: &'a FileLocations,
    active: &'a Section,
    mfa_prompt: Option<MfaPrompt>,
}

impl Builder<'_> {
    fn build(&self, chain: &ProfileChain) -> Result<SharedProvider, CredentialsError> {
        let mut provider = self.base(&chain.base)?;
        for role in &chain.roles {
            let mfa = match (&role.mfa_serial, &self.mfa_prompt) {
                (None, _) => None,
                (Some(serial), Some(prompt)) => {
                    let (prompt, device) = (prompt.clone(), serial.clone());
                    Some(Mfa {
                        serial: serial.clone(),
                        code: Arc::new(move || prompt(&device)),
                    })
                }
                (Some(serial), None) => {
                    return Err(CredentialsError::invalid(
                        self.name,
                        format!(
                            "profile `{}` needs an MFA code (mfa_serial {serial}) and there is \
                             no terminal to ask; run in the foreground, or use a profile without \
                             mfa_serial",
                            role.profile
                        ),
                    ))
                }
            };
            let params = AssumeRoleParams {
                role_arn: role.role_arn.clone(),
                session_name: role.session_name.clone(),
                external_id: role.external_id.clone(),
                duration: role.duration,
                mfa,
            };
            provider = Arc::new(AssumeRoleProvider::new(provider, params, self.sts())?);
        }
        Ok(provider)
    }

    /// STS settings from the environment and flags, with the active profile's `region`
    /// when neither names one (as the SDKs do).
    fn sts(&self) -> StsConfig {
        let mut sts = StsConfig::from_context(self.ctx, None);
        if sts.region.is_none() {
            sts.region = self.active.value("region").map(str::to_string);
        }
        sts
    }

    fn base(&self, base: &BaseSource) -> Result<SharedProvider, CredentialsError> {
        let ctx = self.ctx;
        // A named source that "does not apply" here is a misconfigured profile.
        let required = |e: CredentialsError| match e {
            CredentialsError::NotConfigured {
                source_name,
                reason,
            } => CredentialsError::invalid(
                self.name,
                format!("{source_name}: {reason}; the profile's credential_source needs it"),
            ),
            e => e,
        };
        Ok(match base {
            BaseSource::AccessKey(keys) => Arc::new(ProfileKeysProvider {
                name: format!("profile {} (static)", keys.profile),
                profile: keys.profile.clone(),
                locations: self.locations.clone(),
            }),
            BaseSource::Named(NamedSource::Environment) => {
                Arc::new(EnvironmentProvider::from_context(ctx))
            }
            BaseSource::Named(NamedSource::Ec2InstanceMetadata) => {
                let active = self.active.clone();
                let lookup = move |k: &str| active.get(k).map(str::to_string);
                let config = ImdsConfig::resolve(ctx, &lookup).map_err(required)?;
                Arc::new(ImdsProvider::new(config).map_err(required)?)
            }
            BaseSource::Named(NamedSource::EcsContainer) => {
                Arc::new(ContainerProvider::from_context(ctx).map_err(required)?)
            }
            BaseSource::WebIdentity {
                role_arn,
                token_file,
                session_name,
                ..
            } => Arc::new(WebIdentityProvider::new(
                WebIdentityParams {
                    token_file: token_file.clone(),
                    role_arn: role_arn.clone(),
                    session_name: session_name.clone(),
                },
                self.sts(),
            )?),
            BaseSource::Sso(s) => {
                let missing = |key: &str| {
                    CredentialsError::invalid(
                        self.name,
                        format!(
                            "profile `{}` uses SSO but {key} is not set; add it (aws configure sso \
                             writes all of sso_start_url, sso_region, sso_account_id, sso_role_name)",
                            s.profile
                        ),
                    )
                };
                let params = SsoParams {
                    profile: s.profile.clone(),
                    session_name: s.session_name.clone(),
                    start_url: s
                        .start_url
                        .clone()
                        .ok_or_else(|| missing("sso_start_url"))?,
                    region: s.region.clone().ok_or_else(|| missing("sso_region"))?,
                    account_id: s
                        .account_id
                        .clone()
                        .ok_or_else(|| missing("sso_account_id"))?,
                    role_name: s
                        .role_name
                        .clone()
                        .ok_or_else(|| missing("sso_role_name"))?,
                };
                Arc::new(SsoProvider::new(ctx, params)?)
            }
            BaseSource::Process { profile, command } => {
                Arc::new(ProcessProvider::new(profile, command.clone()))
            }
        })
    }
}

/// A profile's static keys, read from the files again on every `provide()`: keys rotated
/// with `aws configure` under a live mount are picked up at the next refresh (an S3
/// `InvalidAccessKeyId` triggers one) instead of failing until a remount.
struct ProfileKeysProvider {
    name: String,
    profile: String,
    locations: FileLocations,
}

impl ProfileKeysProvider {
    fn read(&self) -> Result<Credentials, CredentialsError> {
        let set = self.locations.load()?;
        let section = set.profile(&self.profile).ok_or_else(|| {
            CredentialsError::invalid(
                &self.name,
                format!(
                    "profile `{}` disappeared from {}; restore it",
                    self.profile,
                    self.locations.describe()
                ),
            )
        })?;
        let keys = static_keys(&self.profile, section)
            .map_err(|e| CredentialsError::invalid(&self.name, e.to_string()))?;
        Ok(Credentials {
            access_key_id: keys.access_key_id,
            secret_access_key: keys.secret_access_key,
            session_token: keys.session_token,
            expiry: None,
            source: self.name.clone(),
        })
    }
}

impl ProvideCredentials for ProfileKeysProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn provide(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
        Box::pin(async move { self.read() })
    }
}
