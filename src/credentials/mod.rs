//! The credentials plane: what a set of AWS credentials is, where it comes from, and the
//! cell that holds the current snapshot under a live mount.
//!
//! - [`Credentials`]: key id, secret, optional session token and expiry, and the name of the
//!   source that produced them. Secrets are [`Secret`]s, so `Debug` never shows them.
//! - [`ProvideCredentials`]: one implementation per source (`env`, later `profile`, `imds`,
//!   `sts`, ...), all of the same shape: built from configuration, `provide()` returns fresh
//!   credentials or a [`CredentialsError`] saying why this source does not apply.
//! - [`CredentialsCell`]: the current snapshot, swapped atomically. Request code loads one
//!   snapshot per attempt and signs with it; only the owner of the cell swaps it.
//!
//! This module knows nothing of S3: it never imports `s3` or `fs`.

mod cell;
pub mod env;
mod secret;

use std::future::Future;
use std::time::SystemTime;

pub use cell::CredentialsCell;
pub use secret::Secret;

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
    /// Which provider produced them (`"environment"`, `"imds"`, ...), for logs and `credentials`.
    pub source: &'static str,
}

impl Credentials {
    /// True when the credentials carry an expiry that is already past at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expiry.is_some_and(|e| e <= now)
    }
}

/// Why a credentials source gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The source does not apply here (its variables or files are absent). The chain moves on.
    #[error("{source_name}: {reason}")]
    NotConfigured {
        source_name: &'static str,
        reason: String,
    },
    /// The source applies but is broken (a half-set pair, a malformed value). Reported as is.
    #[error("{source_name}: {reason}")]
    Invalid {
        source_name: &'static str,
        reason: String,
    },
}

/// A source of credentials. Every provider has this shape: constructed from configuration,
/// asked for fresh credentials whenever the current ones need renewing.
pub trait ProvideCredentials: Send + Sync {
    /// The source's name as users know it (`"environment"`, `"imds"`, ...).
    fn name(&self) -> &'static str;

    /// Fresh credentials, or why this source gave none.
    fn provide(&self) -> impl Future<Output = Result<Credentials, CredentialsError>> + Send;
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
            source: "test",
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
