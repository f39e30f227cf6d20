//! The mount's credentials: run the chain once, put the winner's credentials in the cell,
//! start the refresher, and say at mount what the user should know (a session token that
//! cannot be renewed, an MFA session that ends the mount). Also the MFA prompt, which reads
//! the terminal — the only place that may.

use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::CredentialOptions;
use crate::credentials::chain::{self, ChainError, ChainOptions, Resolved};
use crate::credentials::profile::{profile_region, MfaPrompt};
use crate::credentials::refresher::Refresher;
use crate::credentials::{
    mask_key_id, CredentialsCell, CredentialsError, ProviderContext, SkewedClock,
};

use super::error::MountError;

/// The credentials plane of a running mount.
pub struct MountCredentials {
    pub cell: Arc<CredentialsCell>,
    /// Keeps renewing the cell while it lives.
    pub refresher: Refresher,
    /// Where they come from, for messages.
    pub source: String,
    pub masked_key: String,
    /// The region the chain's sources point at, when no region was configured.
    pub region: Option<String>,
    /// `region` is the instance's (IMDS), not the user's: where the instance runs says
    /// nothing of where the bucket is, so the bucket's own region overrules it.
    pub region_from_instance: bool,
    /// Every source the chain looked at, and why the others did not apply.
    pub attempts: Vec<chain::Attempt>,
    /// The mount's one clock: its STS providers sign by it, and so does its S3 client, so a
    /// skew either learns corrects both.
    pub clock: SkewedClock,
}

/// The providers' view of the configuration: the process environment plus the flags.
pub fn context_for(opts: &CredentialOptions, region: Option<&str>) -> ProviderContext {
    let mut ctx = ProviderContext::from_process();
    ctx.profile = opts.profile.clone();
    ctx.region = region
        .map(str::to_string)
        .or_else(|| ctx.var("AWS_REGION"))
        .or_else(|| ctx.var("AWS_DEFAULT_REGION"));
    if ctx.region.is_none() {
        ctx.region = profile_region(&ctx);
    }
    ctx
}

/// The chain's options from the flags; `interactive` allows asking for an MFA code.
pub fn chain_options(opts: &CredentialOptions, interactive: bool) -> ChainOptions {
    ChainOptions {
        role_arn: opts.role_arn.clone(),
        external_id: opts.external_id.clone(),
        role_session_name: opts.role_session_name.clone(),
        duration: opts.duration_seconds.map(Duration::from_secs),
        sts_endpoint: opts.sts_endpoint_url.clone(),
        saml_assertion_file: opts.saml_assertion_file.clone(),
        saml_principal_arn: opts.saml_principal_arn.clone(),
        imds_v2_only: opts.imds_v2_only,
        imds_role: opts.imds_role.clone(),
        mfa_prompt: interactive.then(terminal_mfa_prompt),
    }
}

/// What [`region_of`] says of a region read from the instance metadata.
const INSTANCE_REGION: &str = "instance metadata";

/// The region and where it came from: configured, the profile, or (on EC2) IMDS.
pub async fn region_of(
    ctx: &ProviderContext,
    resolved: &Resolved,
) -> (Option<String>, &'static str) {
    if let Some(r) = &ctx.region {
        return (Some(r.clone()), "configured");
    }
    if resolved.credentials.source.starts_with("imds") {
        let imds = crate::credentials::imds::ImdsConfig::resolve(ctx, &|_| None)
            .and_then(crate::credentials::imds::ImdsProvider::new);
        if let Ok(imds) = imds {
            if let Ok(region) = imds.region().await {
                return (Some(region), INSTANCE_REGION);
            }
        }
    }
    (None, "not set")
}

/// Runs the chain and starts the refresher.
pub async fn start(
    opts: &CredentialOptions,
    region: Option<&str>,
) -> Result<MountCredentials, MountError> {
    let ctx = context_for(opts, region);
    let resolved = chain::resolve(&ctx, &chain_options(opts, true))
        .await
        .map_err(|e| match e {
            ChainError::NoneFound { .. } => MountError::NoCredentials {
                tried: e
                    .to_string()
                    .trim_start_matches("no credentials found (")
                    .trim_end_matches(')')
                    .to_string(),
            },
            ChainError::SourceFailed { error, .. } => MountError::BadCredentials(error.to_string()),
        })?;
    let (found_region, region_source) = region_of(&ctx, &resolved).await;
    let creds = &resolved.credentials;
    let source = creds.source.clone();
    let masked_key = mask_key_id(&creds.access_key_id);
    warn_about_lifetime(&resolved);
    let attempts = resolved.attempts.clone();
    let cell = Arc::new(CredentialsCell::new(resolved.credentials.clone()));
    let refresher = Refresher::start(Arc::clone(&cell), resolved.provider, SystemTime::now())
        .map_err(|e| MountError::Runtime(format!("cannot start the credentials refresher: {e}")))?;
    log::info!("credentials from {source} (key {masked_key})");
    Ok(MountCredentials {
        cell,
        refresher,
        source,
        masked_key,
        region: found_region,
        region_from_instance: region_source == INSTANCE_REGION,
        attempts,
        clock: ctx.clock.clone(),
    })
}

/// Credentials that will run out without renewal deserve a warning at mount.
fn warn_about_lifetime(resolved: &Resolved) {
    let creds = &resolved.credentials;
    if resolved.provider.refreshable() {
        return;
    }
    if let Some(expiry) = creds.expiry {
        let left = expiry.duration_since(SystemTime::now()).unwrap_or_default();
        log::warn!(
            "the credentials from {} cannot be renewed and expire in {} min; the mount will \
             fail after that. Use a source that renews itself: an instance role, a profile with \
             role_arn/credential_process/sso, or web identity",
            creds.source,
            left.as_secs() / 60
        );
    } else if creds.session_token.is_some() {
        log::warn!(
            "the credentials from {} are a session token that cannot be renewed; when it \
             expires the mount fails. Use an instance role, a profile with \
             role_arn/credential_process/sso, or web identity instead",
            creds.source
        );
    }
}

/// Asks for an MFA code on the controlling terminal (once per mount).
fn terminal_mfa_prompt() -> MfaPrompt {
    Arc::new(|serial: &str| {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .map_err(|_| {
                CredentialsError::invalid(
                    "mfa",
                    format!(
                        "an MFA code for {serial} is needed but there is no terminal to ask on; \
                         mount from a terminal, or use a profile without mfa_serial"
                    ),
                )
            })?;
        let mut out = &tty;
        let _ = write!(
            out,
            "MFA code for {serial} (the mount ends when this MFA session expires): "
        );
        let _ = out.flush();
        let mut line = String::new();
        BufReader::new(&tty).read_line(&mut line).map_err(|e| {
            CredentialsError::invalid("mfa", format!("cannot read the MFA code: {e}"))
        })?;
        let code = line.trim().to_string();
        if code.is_empty() {
            return Err(CredentialsError::invalid("mfa", "no MFA code given"));
        }
        Ok(code)
    })
}
