//! The SSO access token: read from the cache `aws sso login` writes
//! (`~/.aws/sso/cache/<sha1>.json`), renewed through SSO-OIDC `CreateToken` when it is about
//! to expire and the cache holds a refresh token, and written back the way the CLI would
//! (same file, mode 0600, replaced atomically), so the CLI and this mount share one login.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use crate::credentials::env::parse_rfc3339;
use crate::credentials::http::{send, Answer};
use crate::credentials::{CredentialsError, Secret};

/// Renew the token when it has less than this left: the CLI and SDKs use the same margin,
/// and it leaves room for the role-credentials call that follows.
pub const TOKEN_REFRESH_WINDOW: Duration = Duration::from_secs(5 * 60);

/// The cache file name for a session (`sso_session`) or, for legacy profiles, a start URL.
pub fn cache_file_name(key: &str) -> String {
    format!("{}.json", hex::encode(Sha1::digest(key.as_bytes())))
}

/// A token as cached, with what a refresh needs.
pub struct CachedToken {
    pub path: PathBuf,
    pub access_token: Secret,
    pub expires_at: SystemTime,
    refresh: Option<RefreshGrant>,
    /// The region the client registration lives in (the cache's `region`).
    pub region: Option<String>,
    /// The whole JSON object, so a write-back keeps fields we do not use.
    document: Map<String, Value>,
}

struct RefreshGrant {
    refresh_token: Secret,
    client_id: String,
    client_secret: Secret,
    registration_expires_at: Option<SystemTime>,
}

impl CachedToken {
    /// Reads the cache file (fresh every time: `aws sso login` may have replaced it).
    pub fn read(path: &Path, name: &str, login_hint: &str) -> Result<Self, CredentialsError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CredentialsError::failed(
                    name,
                    format!(
                        "no SSO login found ({} is missing): {login_hint}",
                        path.display()
                    ),
                    true,
                ))
            }
            Err(e) => {
                return Err(CredentialsError::invalid(
                    name,
                    format!("cannot read {}: {e}; fix its permissions", path.display()),
                ))
            }
        };
        let malformed = |what: &str| {
            CredentialsError::invalid(
                name,
                format!(
                    "{} is not a valid SSO token cache ({what}): {login_hint}",
                    path.display()
                ),
            )
        };
        let document: Map<String, Value> =
            serde_json::from_slice(&bytes).map_err(|_| malformed("not a JSON object"))?;
        let text = |key: &str| {
            document
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let access_token = text("accessToken").ok_or_else(|| malformed("no accessToken"))?;
        let expires_at = text("expiresAt")
            .and_then(|t| parse_cache_time(&t))
            .ok_or_else(|| malformed("no valid expiresAt"))?;
        let refresh = match (text("refreshToken"), text("clientId"), text("clientSecret")) {
            (Some(refresh_token), Some(client_id), Some(client_secret)) => Some(RefreshGrant {
                refresh_token: Secret::new(refresh_token),
                client_id,
                client_secret: Secret::new(client_secret),
                registration_expires_at: text("registrationExpiresAt")
                    .and_then(|t| parse_cache_time(&t)),
            }),
            _ => None,
        };
        Ok(CachedToken {
            path: path.to_path_buf(),
            access_token: Secret::new(access_token),
            expires_at,
            refresh,
            region: text("region"),
            document,
        })
    }

    /// True when the token should be renewed at `now`.
    pub fn needs_refresh(&self, now: SystemTime) -> bool {
        self.expires_at
            .duration_since(now)
            .map_or(true, |left| left < TOKEN_REFRESH_WINDOW)
    }

    /// True when a refresh can be tried: a refresh token and a live client registration.
    pub fn can_refresh(&self, now: SystemTime) -> bool {
        self.refresh
            .as_ref()
            .is_some_and(|r| r.registration_expires_at.is_none_or(|t| t > now))
    }

    /// Renews the token with SSO-OIDC `CreateToken` at `oidc_endpoint` and writes the cache
    /// file back. Errors never include a token.
    pub async fn refresh(
        &mut self,
        http: &reqwest::Client,
        oidc_endpoint: &str,
        name: &str,
    ) -> Result<(), CredentialsError> {
        let Some(grant) = &self.refresh else {
            return Err(CredentialsError::invalid(
                name,
                "the cached SSO token has no refresh token",
            ));
        };
        let body = serde_json::json!({
            "clientId": grant.client_id,
            "clientSecret": grant.client_secret.expose(),
            "grantType": "refresh_token",
            "refreshToken": grant.refresh_token.expose(),
        });
        let url = format!("{}/token", oidc_endpoint.trim_end_matches('/'));
        let request = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string());
        let answer = send(request).await.map_err(|e| {
            CredentialsError::failed(name, format!("SSO-OIDC CreateToken at {url}: {e}"), true)
        })?;
        if answer.status != 200 {
            return Err(oidc_error(&answer, name));
        }
        let reply: Map<String, Value> = serde_json::from_slice(&answer.body).map_err(|_| {
            CredentialsError::failed(
                name,
                "SSO-OIDC CreateToken answered with malformed JSON",
                true,
            )
        })?;
        let access_token = reply
            .get("accessToken")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                CredentialsError::failed(
                    name,
                    "SSO-OIDC CreateToken answered without accessToken",
                    true,
                )
            })?;
        let expires_in = reply
            .get("expiresIn")
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                CredentialsError::failed(
                    name,
                    "SSO-OIDC CreateToken answered without expiresIn",
                    true,
                )
            })?;
        let expires_at = SystemTime::now() + Duration::from_secs(expires_in);
        self.access_token = Secret::new(access_token);
        self.expires_at = expires_at;
        self.document
            .insert("accessToken".into(), access_token.into());
        self.document
            .insert("expiresAt".into(), format_cache_time(expires_at).into());
        if let Some(new_refresh) = reply.get("refreshToken").and_then(Value::as_str) {
            self.document
                .insert("refreshToken".into(), new_refresh.into());
            if let Some(grant) = &mut self.refresh {
                grant.refresh_token = Secret::new(new_refresh);
            }
        }
        write_atomically(&self.path, &Value::Object(self.document.clone())).map_err(|e| {
            CredentialsError::failed(
                name,
                format!(
                    "renewed the SSO token but cannot write {}: {e}; fix the directory's permissions",
                    self.path.display()
                ),
                true,
            )
        })
    }
}

/// An SSO-OIDC error answer: its OAuth `error` code only (descriptions may quote input).
fn oidc_error(answer: &Answer, name: &str) -> CredentialsError {
    let code = serde_json::from_slice::<Map<String, Value>>(&answer.body)
        .ok()
        .and_then(|m| m.get("error").and_then(Value::as_str).map(short))
        .unwrap_or_else(|| "no error code".into());
    let retryable = answer.status >= 500 || answer.status == 429;
    CredentialsError::failed(
        name,
        format!(
            "SSO-OIDC CreateToken refused the refresh (HTTP {}, {code})",
            answer.status
        ),
        retryable,
    )
}

/// At most 100 characters of a server-chosen code, no control characters.
pub(super) fn short(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(100).collect()
}

/// The cache's times: RFC 3339 (`2026-01-01T00:00:00Z`), or the older CLI's `...UTC` form.
fn parse_cache_time(text: &str) -> Option<SystemTime> {
    match text.strip_suffix("UTC") {
        Some(base) => parse_rfc3339(&format!("{base}Z")),
        None => parse_rfc3339(text),
    }
}

fn format_cache_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let dt = time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    dt.format(&format).unwrap_or_default()
}

/// Replaces `path` with `value`: a mode-0600 temporary file beside it, synced, then renamed
/// over it, so a reader (the CLI, another mount) sees the old file or the new one, never half.
fn write_atomically(path: &Path, value: &Value) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(value.to_string().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// File names are the SHA-1 of the key, as the CLI computes them.
    #[test]
    fn cache_file_name_is_sha1_of_key() {
        // Expected values computed independently with Python's hashlib.
        assert_eq!(
            cache_file_name("https://d-abc123.awsapps.com/start"),
            "40a89917e3175433e361b710a9d43528d7f1890a.json"
        );
        assert_eq!(
            cache_file_name("admin"),
            "d033e22ae348aeb5660fc2140aec35850c4da997.json"
        );
    }

    /// The older `...UTC` time form and RFC 3339 both parse, and writing round-trips.
    #[test]
    fn cache_times_parse_in_both_forms() {
        let a = parse_cache_time("2026-01-01T00:00:00UTC").unwrap();
        let b = parse_cache_time("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(format_cache_time(a), "2026-01-01T00:00:00Z");
    }
}
