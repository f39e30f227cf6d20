//! Credentials of an assumed role: `AssumeRole` signed with the credentials of any base
//! source (environment, instance role, a profile, another assumed role), with an optional
//! external id, session duration and MFA code.
//!
//! Owns: validating the role ARN and duration up front, asking the base for fresh
//! credentials on every `provide()` (so a refreshed instance role under it is always used),
//! the automatic 1 h retry when AWS refuses a longer chained-role session, and the MFA
//! rule — a code is asked for once, and a session that needed one cannot be renewed.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::{
    check_session_name, default_session_name, StsClient, StsConfig, StsError,
    CHAINED_ROLE_MAX_DURATION,
};
use crate::credentials::{
    BoxFuture, Credentials, CredentialsError, ProvideCredentials, SharedProvider,
};

/// STS's shortest role session.
pub const MIN_DURATION: Duration = Duration::from_secs(900);

/// STS's longest role session (a role's MaxSessionDuration can be set up to 12 h).
pub const MAX_DURATION: Duration = Duration::from_secs(43_200);

const ACTION: &str = "AssumeRole";

/// An MFA device and how to get a code from it (a prompt on the terminal, a test closure).
#[derive(Clone)]
pub struct Mfa {
    /// The device's serial number or ARN (`mfa_serial`).
    pub serial: String,
    /// Asked once, on the first `provide()`, for the current 6-digit code.
    pub code: Arc<dyn Fn() -> Result<String, CredentialsError> + Send + Sync>,
}

impl fmt::Debug for Mfa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mfa")
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

/// What to assume and how.
#[derive(Clone, Debug, Default)]
pub struct AssumeRoleParams {
    pub role_arn: String,
    /// Default `s3rolefs-<unix time>` (see CloudTrail to tell mounts apart).
    pub session_name: Option<String>,
    pub external_id: Option<String>,
    /// `None`: STS's default (1 h). Must lie in 900..=43200 s.
    pub duration: Option<Duration>,
    pub mfa: Option<Mfa>,
}

/// MFA progress: a code is used once.
#[derive(Debug, Default)]
struct MfaState {
    /// Set once STS issued credentials for a code; further renewals are refused.
    used: bool,
    expiry: Option<SystemTime>,
}

/// Assumes `role_arn` with the credentials of a base source.
pub struct AssumeRoleProvider {
    base: SharedProvider,
    params: AssumeRoleParams,
    client: StsClient,
    name: String,
    /// Set after AWS refused a longer session as chained: later calls ask for 1 h at once.
    capped_to_chained_limit: AtomicBool,
    /// A `std` mutex: held only to read or set two fields, never across an `.await`.
    mfa_state: Mutex<MfaState>,
}

impl AssumeRoleProvider {
    /// Validates `params` (role ARN shape, duration range, session name) and builds the STS
    /// client. `Invalid` names the bad value and what is accepted.
    pub fn new(
        base: SharedProvider,
        params: AssumeRoleParams,
        sts: StsConfig,
    ) -> Result<Self, CredentialsError> {
        let name = format!("{} → assume role {}", base.name(), params.role_arn);
        check_role_arn(&name, &params.role_arn)?;
        if let Some(d) = params.duration {
            if d < MIN_DURATION || d > MAX_DURATION {
                return Err(CredentialsError::invalid(
                    &name,
                    format!(
                        "role session duration {} s is out of range; use {} to {} s",
                        d.as_secs(),
                        MIN_DURATION.as_secs(),
                        MAX_DURATION.as_secs()
                    ),
                ));
            }
        }
        if let Some(session) = &params.session_name {
            check_session_name(&name, session)?;
        }
        if let Some(id) = &params.external_id {
            if !(2..=1224).contains(&id.chars().count()) {
                return Err(CredentialsError::invalid(
                    &name,
                    "external id must be 2 to 1224 characters; use the value the role's owner gave",
                ));
            }
        }
        Ok(AssumeRoleProvider {
            client: StsClient::new(&sts, &name)?,
            base,
            params,
            name,
            capped_to_chained_limit: AtomicBool::new(false),
            mfa_state: Mutex::new(MfaState::default()),
        })
    }

    /// True when the role needs an MFA code: the session cannot be renewed without the user,
    /// so the mount should say at start that it ends when these credentials expire.
    pub fn needs_mfa(&self) -> bool {
        self.params.mfa.is_some()
    }

    /// The role this provider assumes.
    pub fn role_arn(&self) -> &str {
        &self.params.role_arn
    }

    fn mfa_state(&self) -> std::sync::MutexGuard<'_, MfaState> {
        self.mfa_state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn assume(&self) -> Result<Credentials, CredentialsError> {
        let mfa_code = match &self.params.mfa {
            None => None,
            Some(mfa) => {
                let state = self.mfa_state();
                if state.used {
                    let until = state
                        .expiry
                        .map(|e| format!(" at {}", crate::sigv4::amz_date(e)))
                        .unwrap_or_default();
                    return Err(CredentialsError::invalid(
                        &self.name,
                        format!(
                            "the MFA session of {} cannot be renewed without a new code from {}; \
                             the mount ends when its credentials expire{until} — remount to \
                             enter a new code",
                            self.params.role_arn, mfa.serial
                        ),
                    ));
                }
                drop(state);
                Some((mfa.serial.clone(), (mfa.code)()?))
            }
        };

        let base = self.base.provide().await?;
        let session_name = self
            .params
            .session_name
            .clone()
            .unwrap_or_else(default_session_name);
        let mut duration = self.params.duration;
        if self.capped_to_chained_limit.load(Ordering::Relaxed) {
            duration = duration.map(|d| d.min(CHAINED_ROLE_MAX_DURATION));
        }

        let mut result = self
            .call(&base, &session_name, duration, mfa_code.as_ref())
            .await;
        if let Err(StsError::ChainedDurationTooLong(_)) = &result {
            if duration.is_some_and(|d| d > CHAINED_ROLE_MAX_DURATION) {
                log::warn!(
                    "{}: AWS caps roles assumed from another role's credentials at {} s; \
                     asking for {} s instead of {} s",
                    self.name,
                    CHAINED_ROLE_MAX_DURATION.as_secs(),
                    CHAINED_ROLE_MAX_DURATION.as_secs(),
                    duration.map(|d| d.as_secs()).unwrap_or_default()
                );
                self.capped_to_chained_limit.store(true, Ordering::Relaxed);
                result = self
                    .call(
                        &base,
                        &session_name,
                        Some(CHAINED_ROLE_MAX_DURATION),
                        mfa_code.as_ref(),
                    )
                    .await;
            }
        }
        let credentials = result.map_err(|e| {
            e.into_credentials_error(
                &self.name,
                ACTION,
                &self.params.role_arn,
                &format!("the caller of source {:?}", self.base.name()),
            )
        })?;
        if self.params.mfa.is_some() {
            let mut state = self.mfa_state();
            state.used = true;
            state.expiry = credentials.expiry;
        }
        Ok(credentials)
    }

    async fn call(
        &self,
        base: &Credentials,
        session_name: &str,
        duration: Option<Duration>,
        mfa: Option<&(String, String)>,
    ) -> Result<Credentials, StsError> {
        let duration_text = duration.map(|d| d.as_secs().to_string());
        let mut params: Vec<(&str, &str)> = vec![
            ("RoleArn", &self.params.role_arn),
            ("RoleSessionName", session_name),
        ];
        if let Some(d) = &duration_text {
            params.push(("DurationSeconds", d));
        }
        if let Some(id) = &self.params.external_id {
            params.push(("ExternalId", id));
        }
        if let Some((serial, code)) = mfa {
            params.push(("SerialNumber", serial));
            params.push(("TokenCode", code));
        }
        self.client
            .call(ACTION, &params, Some(base), &[], &self.name)
            .await
    }
}

impl ProvideCredentials for AssumeRoleProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn provide(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
        Box::pin(self.assume())
    }
}

/// `arn:aws[-partition]:iam::<12-digit account>:role/[path/]name`, or `Invalid` naming the
/// value: a user ARN, a role name alone or a mistyped account fail here, not at STS.
pub fn check_role_arn(source: &str, arn: &str) -> Result<(), CredentialsError> {
    let bad = |why: &str| {
        CredentialsError::invalid(
            source,
            format!(
                "role ARN {arn:?} {why}; use arn:aws:iam::<12-digit account>:role/<name> \
                 (copy it from the role's page in the IAM console)"
            ),
        )
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts.as_slice() else {
        return Err(bad("is not an ARN"));
    };
    let partition_ok = partition
        .strip_prefix("aws")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
        && partition
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-');
    if *prefix != "arn" || !partition_ok {
        return Err(bad("is not an ARN"));
    }
    if *service != "iam" || !region.is_empty() {
        return Err(bad("is not an IAM ARN"));
    }
    if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad("does not hold a 12-digit account id"));
    }
    match resource.strip_prefix("role/") {
        Some(name) if !name.is_empty() && !name.ends_with('/') => Ok(()),
        _ => Err(bad("does not name a role")),
    }
}
