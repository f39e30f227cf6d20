//! Credentials from the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN` and `AWS_CREDENTIAL_EXPIRATION` (RFC 3339), as the AWS SDKs read them.

use std::time::SystemTime;

use super::{
    BoxFuture, Credentials, CredentialsError, ProvideCredentials, ProviderContext, Secret,
};

const NAME: &str = "environment";

/// How a provider reads one variable: the process environment, or a map in tests.
type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Reads credentials from process environment variables (or any lookup, for tests).
pub struct EnvironmentProvider {
    lookup: Lookup,
}

impl EnvironmentProvider {
    /// Reads the real process environment.
    pub fn new() -> Self {
        Self::with_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the variables of `ctx`.
    pub fn from_context(ctx: &ProviderContext) -> Self {
        let ctx = ctx.clone();
        Self::with_lookup(move |k| ctx.var(k))
    }

    /// Reads variables through `lookup` instead of the process environment.
    pub fn with_lookup(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        EnvironmentProvider {
            lookup: Box::new(lookup),
        }
    }

    fn var(&self, key: &str) -> Option<String> {
        (self.lookup)(key).filter(|v| !v.trim().is_empty())
    }

    /// The synchronous core of [`ProvideCredentials::provide`].
    pub fn read(&self) -> Result<Credentials, CredentialsError> {
        let id = self.var("AWS_ACCESS_KEY_ID");
        let secret = self.var("AWS_SECRET_ACCESS_KEY");
        let (id, secret) = match (id, secret) {
            (Some(id), Some(secret)) => (id, secret),
            (None, None) => {
                return Err(CredentialsError::not_configured(
                    NAME,
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set",
                ))
            }
            (Some(_), None) => {
                return Err(CredentialsError::invalid(
                    NAME,
                    "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set both",
                ))
            }
            (None, Some(_)) => {
                return Err(CredentialsError::invalid(
                    NAME,
                    "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not; set both",
                ))
            }
        };
        let expiry = match self.var("AWS_CREDENTIAL_EXPIRATION") {
            None => None,
            Some(text) => Some(parse_rfc3339(&text).ok_or_else(|| {
                CredentialsError::invalid(
                    NAME,
                    format!(
                        "AWS_CREDENTIAL_EXPIRATION={text:?} is not an RFC 3339 time \
                         (e.g. 2026-01-01T00:00:00Z)"
                    ),
                )
            })?),
        };
        Ok(Credentials {
            access_key_id: id.trim().to_string(),
            secret_access_key: Secret::new(secret.trim()),
            session_token: self.var("AWS_SESSION_TOKEN").map(|t| Secret::new(t.trim())),
            expiry,
            source: NAME.into(),
        })
    }
}

impl Default for EnvironmentProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl ProvideCredentials for EnvironmentProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn provide(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
        Box::pin(async move { self.read() })
    }

    /// The environment of a running process does not change: asking again gives the same.
    fn refreshable(&self) -> bool {
        false
    }
}

/// Parses an RFC 3339 timestamp (`2026-01-01T00:00:00Z`, with optional fraction and offset).
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let t =
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
            .ok()?;
    Some(t.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn provider(vars: &[(&str, &str)]) -> EnvironmentProvider {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvironmentProvider::with_lookup(move |k| map.get(k).cloned())
    }

    /// Key id, secret, token and expiry all come through.
    #[test]
    fn reads_full_session_credentials() {
        let c = provider(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "SECRET"),
            ("AWS_SESSION_TOKEN", "TOKEN"),
            ("AWS_CREDENTIAL_EXPIRATION", "2030-01-01T00:00:00Z"),
        ])
        .read()
        .unwrap();
        assert_eq!(c.access_key_id, "AKID");
        assert_eq!(c.secret_access_key.expose(), "SECRET");
        assert_eq!(c.session_token.unwrap().expose(), "TOKEN");
        assert!(c.expiry.is_some());
    }

    /// Nothing set: the source does not apply (the chain moves on).
    #[test]
    fn absent_variables_are_not_configured() {
        assert!(matches!(
            provider(&[]).read(),
            Err(CredentialsError::NotConfigured { .. })
        ));
    }

    /// Half a pair is an error naming the missing variable.
    #[test]
    fn half_a_pair_is_invalid() {
        let err = provider(&[("AWS_ACCESS_KEY_ID", "AKID")])
            .read()
            .unwrap_err();
        assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY"));
    }

    /// Blank values count as unset, as in the SDKs.
    #[test]
    fn blank_values_are_unset() {
        assert!(matches!(
            provider(&[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", " ")]).read(),
            Err(CredentialsError::NotConfigured { .. })
        ));
    }
}
