//! The credentials plane: what a set of AWS credentials is, where it comes from, and the
//! cell that holds the current snapshot under a live mount.
//!
//! - [`Credentials`]: key id, secret, optional session token and expiry, and the name of the
//!   source that produced them. Secrets are [`Secret`]s, so `Debug` never shows them.
//! - [`ProvideCredentials`]: one implementation per source (`env`, `profile`, `imds`,
//!   `sts`, ...), all of the same shape: built from configuration (a [`ProviderContext`]),
//!   `provide()` returns fresh credentials or a [`CredentialsError`] saying why this source
//!   does not apply or failed. Object-safe, so sources compose (`Arc<dyn ProvideCredentials>`:
//!   an assumed role on top of any base source).
//! - [`CredentialsCell`]: the current snapshot, swapped atomically. Request code loads one
//!   snapshot per attempt and signs with it; only the owner of the cell swaps it.
//! - [`SkewedClock`]: the time signatures are dated with, corrected by what S3 or STS said
//!   of their clock; one per mount, shared by the S3 client and the STS providers.
//!
//! This module knows nothing of S3: it never imports `s3` or `fs`.

mod cell;
pub mod chain;
pub mod clock;
pub mod container;
mod context;
pub mod env;
pub mod http;
pub mod imds;
pub mod process;
pub mod profile;
pub mod refresher;
mod secret;
pub mod sso;
pub mod sts;
pub mod web_identity;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

pub use cell::CredentialsCell;
pub use clock::SkewedClock;
pub use context::ProviderContext;
pub use secret::Secret;

/// A boxed future, as object-safe providers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A provider shared between a chain, a refresher and the sources built on it.
pub type SharedProvider = Arc<dyn ProvideCredentials>;

/// One set of AWS credentials, as a source handed them out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id. Not a secret, but shown masked to users (see [`mask_key_id`]).
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Present for temporary credentials; must be sent with every request signed by them.
    pub session_token: Option<Secret>,
    /// When these credentials stop working; `None` for long-term keys.
    pub expiry: Option<SystemTime>,
    /// Which provider produced them (`"environment"`, `"imds"`, `"profile dev (assume role)"`,
    /// ...), for logs and the `credentials` command.
    pub source: String,
}

impl Credentials {
    /// True when the credentials carry an expiry that is already past at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expiry.is_some_and(|e| e <= now)
    }
}

/// Why a credentials source gave nothing. Every message names the cause and, where there is
/// one, the fix; none ever holds a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialsError {
    /// The source does not apply here (its variables or files are absent). The chain moves on.
    #[error("{source_name}: {reason}")]
    NotConfigured { source_name: String, reason: String },
    /// The source applies but is configured wrongly (a half-set pair, a malformed file, a
    /// profile cycle). Retrying will not help; the chain stops here.
    #[error("{source_name}: {reason}")]
    Invalid { source_name: String, reason: String },
    /// The source applies but could not deliver now (unreachable endpoint, 5xx, throttling,
    /// a refused STS call). `retryable` says whether trying again later may succeed.
    #[error("{source_name}: {reason}")]
    Failed {
        source_name: String,
        reason: String,
        retryable: bool,
    },
}

impl CredentialsError {
    pub fn not_configured(source_name: impl Into<String>, reason: impl Into<String>) -> Self {
        CredentialsError::NotConfigured {
            source_name: source_name.into(),
            reason: reason.into(),
        }
    }

    pub fn invalid(source_name: impl Into<String>, reason: impl Into<String>) -> Self {
        CredentialsError::Invalid {
            source_name: source_name.into(),
            reason: reason.into(),
        }
    }

    pub fn failed(
        source_name: impl Into<String>,
        reason: impl Into<String>,
        retryable: bool,
    ) -> Self {
        CredentialsError::Failed {
            source_name: source_name.into(),
            reason: reason.into(),
            retryable,
        }
    }

    /// True when the source does not apply (the chain should try the next one).
    pub fn is_not_configured(&self) -> bool {
        matches!(self, CredentialsError::NotConfigured { .. })
    }

    /// True when asking the same source again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CredentialsError::Failed {
                retryable: true,
                ..
            }
        )
    }
}

/// A source of credentials. Every provider has this shape: constructed from configuration
/// (a [`ProviderContext`]), asked for fresh credentials whenever the current ones need
/// renewing. Object-safe: `provide` returns a boxed future.
pub trait ProvideCredentials: Send + Sync {
    /// The source's name as users know it (`"environment"`, `"imds"`, ...).
    fn name(&self) -> &str;

    /// Fresh credentials, or why this source gave none.
    fn provide(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>>;

    /// Whether asking again can give newer credentials (false for fixed keys such as the
    /// environment's: the refresher then leaves them alone).
    fn refreshable(&self) -> bool {
        true
    }
}

/// `AKIA************MPLE`: enough of a key id to tell two apart, not enough to use it.
pub fn mask_key_id(id: &str) -> String {
    let n = id.chars().count();
    if n <= 8 {
        return "*".repeat(n);
    }
    id.chars()
        .enumerate()
        .map(|(i, c)| if i < 4 || i >= n - 4 { c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Debug` of a whole credentials set shows the key id but neither secret.
    #[test]
    fn debug_of_credentials_hides_secret_and_token() {
        let c = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("very-secret"),
            session_token: Some(Secret::new("token-value")),
            expiry: None,
            source: "test".into(),
        };
        let text = format!("{c:?}");
        assert!(text.contains("AKIDEXAMPLE"));
        assert!(!text.contains("very-secret"));
        assert!(!text.contains("token-value"));
    }

    /// Masking keeps the first and last four characters only.
    #[test]
    fn mask_key_id_keeps_ends() {
        assert_eq!(mask_key_id("AKIAIOSFODNN7EXAMPLE"), "AKIA************MPLE");
        assert_eq!(mask_key_id("short"), "*****");
    }
}
