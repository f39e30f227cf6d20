//! The JSON credentials document IMDS and the container endpoints answer with
//! (`{Code, AccessKeyId, SecretAccessKey, Token, Expiration, ...}`), and the one-line,
//! redacted reasons built from error bodies. Shared by `imds` and `container`.

use serde::Deserialize;

use crate::credentials::env::parse_rfc3339;
use crate::credentials::{Credentials, Secret};

/// The fields we read; everything else (`LastUpdated`, `Type`, `AccountId`) is ignored.
/// All optional so that a missing field gets our error message, not serde's.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Document {
    code: Option<String>,
    message: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    token: Option<String>,
    expiration: Option<String>,
}

/// Why a document did not yield credentials. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DocumentError {
    /// Not JSON, or not the expected object; the text says what was wrong.
    Malformed(String),
    /// A well-formed answer whose `Code` is not `Success`: the service's code and message.
    Refused { code: String, message: String },
}

/// Parses a credentials document into [`Credentials`] from `source`.
pub(crate) fn parse_credentials(body: &[u8], source: &str) -> Result<Credentials, DocumentError> {
    let doc: Document = serde_json::from_slice(body).map_err(|e| {
        // serde_json's message names line and column, never the offending value.
        DocumentError::Malformed(format!("not a JSON credentials document ({e})"))
    })?;
    if let Some(code) = doc.code.as_deref() {
        if code != "Success" {
            return Err(DocumentError::Refused {
                code: short_reason(code),
                message: short_reason(doc.message.as_deref().unwrap_or("no message")),
            });
        }
    }
    let missing = |field: &str| DocumentError::Malformed(format!("the answer has no {field}"));
    let access_key_id = doc
        .access_key_id
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| missing("AccessKeyId"))?;
    let secret = doc
        .secret_access_key
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| missing("SecretAccessKey"))?;
    let expiry = match doc.expiration.as_deref() {
        None => None,
        Some(text) => Some(parse_rfc3339(text).ok_or_else(|| {
            DocumentError::Malformed(format!(
                "Expiration {:?} is not an RFC 3339 time",
                short_reason(text)
            ))
        })?),
    };
    Ok(Credentials {
        access_key_id: access_key_id.trim().to_string(),
        secret_access_key: Secret::new(secret.trim()),
        session_token: doc
            .token
            .filter(|t| !t.trim().is_empty())
            .map(|t| Secret::new(t.trim())),
        expiry,
        source: source.to_string(),
    })
}

/// The longest reason text kept from a service's answer.
const REASON_MAX_CHARS: usize = 160;
/// Runs of token-like characters at least this long, with a digit or a base64 symbol in
/// them, are hidden: session tokens, secrets and IMDS tokens are all longer and random,
/// while words, error codes (`AssumeRoleUnauthorizedAccess`) and ARN parts are letters only
/// or broken up by `:`/`.`/spaces.
const SECRET_RUN_MIN: usize = 24;
/// Any run this long is hidden whatever it holds: no word or code is that long.
const SECRET_RUN_ALWAYS: usize = 40;

/// One line of at most [`REASON_MAX_CHARS`] characters, with every long token-like run
/// (what a secret or session token looks like) replaced by `[redacted]`. For error bodies,
/// which services sometimes fill with the request's own tokens.
pub(crate) fn short_reason(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let len = run.chars().count();
        let random_looking = run
            .chars()
            .any(|c| c.is_ascii_digit() || matches!(c, '+' | '/' | '='));
        if len >= SECRET_RUN_ALWAYS || (len >= SECRET_RUN_MIN && random_looking) {
            out.push_str("[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in one_line.trim().chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-') {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    if out.chars().count() > REASON_MAX_CHARS {
        out = out.chars().take(REASON_MAX_CHARS).collect::<String>() + "...";
    }
    out
}

/// The reason an error answer gives: `Code: Message` of a JSON body when there is one,
/// else the body's text; always through [`short_reason`].
pub(crate) fn error_reason(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(alias = "Code", alias = "code")]
        code: Option<String>,
        #[serde(alias = "Message", alias = "message")]
        message: Option<String>,
    }
    if let Ok(ErrorBody { code, message }) = serde_json::from_slice::<ErrorBody>(body) {
        let joined = [code, message]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
        if !joined.is_empty() {
            return short_reason(&joined);
        }
    }
    let text = short_reason(&String::from_utf8_lossy(body));
    if text.is_empty() {
        "empty body".to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
      "Code" : "Success",
      "LastUpdated" : "2026-01-01T00:00:00Z",
      "Type" : "AWS-HMAC",
      "AccessKeyId" : "ASIAEXAMPLE",
      "SecretAccessKey" : "secret/key+value",
      "Token" : "token-value",
      "Expiration" : "2026-01-01T06:00:00Z"
    }"#;

    /// A Success document yields every field, expiry included.
    #[test]
    fn parses_success_document() {
        let c = parse_credentials(GOOD.as_bytes(), "imds").unwrap();
        assert_eq!(c.access_key_id, "ASIAEXAMPLE");
        assert_eq!(c.secret_access_key.expose(), "secret/key+value");
        assert_eq!(c.session_token.unwrap().expose(), "token-value");
        assert_eq!(c.expiry, parse_rfc3339("2026-01-01T06:00:00Z"));
        assert_eq!(c.source, "imds");
    }

    /// A Code other than Success carries the service's code and message.
    #[test]
    fn non_success_code_is_refused_with_message() {
        let body =
            br#"{"Code":"AssumeRoleUnauthorizedAccess","Message":"EC2 cannot assume the role"}"#;
        assert_eq!(
            parse_credentials(body, "imds").unwrap_err(),
            DocumentError::Refused {
                code: "AssumeRoleUnauthorizedAccess".into(),
                message: "EC2 cannot assume the role".into()
            }
        );
    }

    /// Truncated JSON, a wrong shape, a missing key or a bad date is an error, never a panic.
    #[test]
    fn malformed_documents_are_errors() {
        for body in [
            &b"{\"AccessKeyId\": "[..],
            b"[]",
            b"\xff\xfe",
            br#"{"AccessKeyId":"A"}"#,
            br#"{"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"tomorrow"}"#,
        ] {
            assert!(matches!(
                parse_credentials(body, "imds"),
                Err(DocumentError::Malformed(_))
            ));
        }
    }

    /// Container documents (ECS, EKS Pod Identity) have no Code; AccountId is ignored.
    #[test]
    fn container_document_without_code_parses() {
        let body = br#"{"AccessKeyId":"A","SecretAccessKey":"S","Token":"T","AccountId":"123456789012","Expiration":"2026-01-01T00:00:00Z"}"#;
        assert!(parse_credentials(body, "container").is_ok());
    }

    /// Token-like runs are hidden, words and codes kept, the line bounded.
    #[test]
    fn short_reason_redacts_tokens_and_bounds_length() {
        let token = "AQoDYXdzEN7//////////wEa0AMBFkIFLfF7oMkGW9MnnPwNuRNikTvwPiHCk";
        let reason = short_reason(&format!("Token {token} is\nnot valid"));
        assert_eq!(reason, "Token [redacted] is not valid");
        assert!(short_reason(&"word ".repeat(100)).chars().count() <= REASON_MAX_CHARS + 3);
    }

    /// JSON error bodies give `Code: Message`; other bodies their redacted text.
    #[test]
    fn error_reason_prefers_json_code_and_message() {
        assert_eq!(
            error_reason(br#"{"code":"AccessDenied","message":"no"}"#),
            "AccessDenied: no"
        );
        assert_eq!(error_reason(b"Service Unavailable"), "Service Unavailable");
        assert_eq!(error_reason(b""), "empty body");
    }
}
