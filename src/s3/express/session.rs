//! Session credentials of a directory bucket: the `CreateSession` answer parsed, and
//! [`SessionProvider`], the credentials source the mount's refresher renews them from.
//!
//! A session is asked for with the mount's own credentials (whatever they are at that
//! moment: a rotated instance role signs the next session) and lasts about five minutes;
//! the refresher renews it ahead of expiry, and at once when S3 answers `ExpiredToken`.
//! Its secret key and token are [`Secret`]s from the moment they are parsed.

use std::time::SystemTime;

use crate::credentials::{BoxFuture, Credentials, CredentialsError, ProvideCredentials, Secret};
use crate::s3::client::S3Client;
use crate::s3::xml::{parse_document, parse_iso8601};
use crate::s3::S3Error;

/// The `source` of session credentials, in logs and `status`.
pub const SOURCE: &str = "CreateSession";

/// `CreateSessionResult/Credentials`: the session's key pair, token and expiry.
pub fn parse_create_session(body: &[u8]) -> Result<Credentials, S3Error> {
    let root = parse_document(body)?;
    if root.name != "CreateSessionResult" {
        return Err(S3Error::Malformed(format!(
            "expected <CreateSessionResult>, got <{}>",
            root.name
        )));
    }
    let creds = root.child("Credentials").ok_or_else(|| {
        S3Error::Malformed("<CreateSessionResult> has no <Credentials> element".into())
    })?;
    let field = |name: &str| {
        creds
            .child_text(name)
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().to_string())
            .ok_or_else(|| S3Error::Malformed(format!("<Credentials> has no <{name}> element")))
    };
    Ok(Credentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: Secret::new(field("SecretAccessKey")?),
        session_token: Some(Secret::new(field("SessionToken")?)),
        expiry: Some(parse_iso8601(&field("Expiration")?)?),
        source: SOURCE.to_string(),
    })
}

/// The credentials source of a directory bucket's sessions: each `provide` is one
/// `CreateSession`, signed with the mount's credentials by a client of its own (no pooled
/// connections, so it works from the refresher's runtime as from the mount's).
pub struct SessionProvider {
    client: S3Client,
}

impl SessionProvider {
    /// `client` must sign with the mount's own credentials (it is not a session client).
    pub fn new(client: S3Client) -> SessionProvider {
        SessionProvider { client }
    }
}

impl ProvideCredentials for SessionProvider {
    fn name(&self) -> &str {
        SOURCE
    }

    fn provide(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
        Box::pin(async move {
            let creds = self.client.create_session().await.map_err(|e| {
                let retryable = e.is_retryable()
                    || matches!(e, S3Error::CredentialsRejected { .. })
                    || matches!(e, S3Error::Network { .. });
                CredentialsError::failed(SOURCE, e.to_string(), retryable)
            })?;
            if creds.expiry.is_some_and(|e| e <= SystemTime::now()) {
                return Err(CredentialsError::failed(
                    SOURCE,
                    "the session S3 gave has already expired (is this machine's clock right?)",
                    true,
                ));
            }
            Ok(creds)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<CreateSessionResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Credentials>
    <SessionToken>TOKEN-SECRET</SessionToken>
    <SecretAccessKey>KEY-SECRET</SecretAccessKey>
    <AccessKeyId>ASIASESSION</AccessKeyId>
    <Expiration>2026-12-04T21:05:00Z</Expiration>
  </Credentials>
</CreateSessionResult>"#;

    /// The answer's four fields become credentials whose secrets never print.
    #[test]
    fn create_session_answer_parses_into_secret_credentials() {
        let creds = parse_create_session(ANSWER.as_bytes()).unwrap();
        assert_eq!(creds.access_key_id, "ASIASESSION");
        assert_eq!(creds.secret_access_key.expose(), "KEY-SECRET");
        assert_eq!(
            creds.session_token.as_ref().map(|t| t.expose()),
            Some("TOKEN-SECRET")
        );
        assert_eq!(
            creds.expiry,
            Some(parse_iso8601("2026-12-04T21:05:00Z").unwrap())
        );
        let shown = format!("{creds:?}");
        assert!(!shown.contains("KEY-SECRET") && !shown.contains("TOKEN-SECRET"));
    }

    /// An answer without one of the fields is malformed, not a session without a token.
    #[test]
    fn create_session_answer_missing_a_field_is_malformed() {
        let body = ANSWER.replace("<SessionToken>TOKEN-SECRET</SessionToken>", "");
        assert!(matches!(
            parse_create_session(body.as_bytes()),
            Err(S3Error::Malformed(_))
        ));
        assert!(parse_create_session(b"<Other/>").is_err());
    }
}
