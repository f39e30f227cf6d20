//! What STS refusals mean: [`StsError`], one variant per cause a user can act on, built
//! from an `<ErrorResponse>`'s code and (already redacted) message, and turned into a
//! [`CredentialsError`] whose text names the fix. Owns which failures are transient (worth a
//! retry inside one call) and which stop the chain (`Invalid`).

use std::fmt;

use super::{CHAINED_ROLE_MAX_DURATION, MAX_ATTEMPTS};
use crate::credentials::http::NoAnswer;
use crate::credentials::CredentialsError;

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
    /// STS refused the signature for its date: the local clock is off STS's (learned from
    /// the answer's `Date`; the call is signed again once with STS's time).
    ClockSkewed { code: String, message: String },
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

    pub(crate) fn classify(status: u16, code: &str, message: String) -> StsError {
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
            StsError::ClockSkewed { code, message } => CredentialsError::failed(
                source,
                format!(
                    "{refused}: {code}: {message}; this host's clock is off STS's by more than \
                     AWS allows, even after correcting for it: set the time right (chrony, \
                     systemd-timesyncd)"
                ),
                true,
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
            StsError::ClockSkewed { code, message } => write!(f, "{code}: {message}"),
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
