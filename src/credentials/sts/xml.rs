//! STS's query-protocol XML answers: the `<Credentials>` inside any `<...Result>`, and the
//! `<ErrorResponse><Error><Code/Message>` of a refusal. Also the redaction every STS error
//! text goes through before it reaches a [`CredentialsError`](super::CredentialsError).
//!
//! Parsing goes through a tiny element tree built with quick-xml (answers are a few hundred
//! bytes). `credentials` must not import `s3`, so this is its own small tree rather than
//! `s3::xml`'s. Nothing here panics on input: a body that is not the expected document is a
//! `Malformed` description that never quotes the body (it may hold a session token).

use std::borrow::Cow;
use std::time::SystemTime;

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::credentials::env::parse_rfc3339;
use crate::credentials::Secret;

/// An error message longer than this is cut: STS messages are one sentence, and anything
/// longer is more likely an echo of a request value than advice.
pub const MAX_MESSAGE_CHARS: usize = 400;

/// A run of token-alphabet characters at least this long is treated as a secret (session
/// tokens are hundreds of characters, JWTs and SAML assertions longer); ARNs, role and
/// session names are shorter runs, split by `:` and `/`.
pub const SECRET_RUN_CHARS: usize = 64;

/// One XML element: local name (namespace prefix dropped), text, children.
#[derive(Debug, Default)]
struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }
}

/// Credentials as STS issued them.
#[derive(Debug)]
pub struct IssuedCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Secret,
    pub expiration: SystemTime,
}

/// The `<Code>` and `<Message>` of an `<ErrorResponse>`, not yet redacted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// The credentials of a successful `AssumeRole*` answer.
pub fn parse_credentials(body: &[u8]) -> Result<IssuedCredentials, String> {
    let root = parse_document(body)?;
    // `<AssumeRoleResponse><AssumeRoleResult><Credentials>`: the result element's name
    // follows the action, so take whichever child ends in `Result`.
    let result = root
        .children
        .iter()
        .find(|c| c.name.ends_with("Result"))
        .ok_or_else(|| format!("<{}> has no ...Result element", root.name))?;
    let creds = result
        .child("Credentials")
        .ok_or_else(|| format!("<{}> has no <Credentials> element", result.name))?;
    let field = |name: &str| {
        creds
            .child_text(name)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("<Credentials> has no <{name}> element"))
    };
    let expiration_text = field("Expiration")?;
    let expiration = parse_rfc3339(expiration_text)
        .ok_or_else(|| format!("<Expiration> {expiration_text:?} is not an ISO 8601 time"))?;
    Ok(IssuedCredentials {
        access_key_id: field("AccessKeyId")?.to_string(),
        secret_access_key: Secret::new(field("SecretAccessKey")?),
        session_token: Secret::new(field("SessionToken")?),
        expiration,
    })
}

/// The `<Error>` of an `<ErrorResponse>`; `None` when the body is not one (a proxy's HTML
/// page, an empty 503).
pub fn parse_error(body: &[u8]) -> Option<ErrorBody> {
    let root = parse_document(body).ok()?;
    let error = if root.name == "Error" {
        &root
    } else {
        root.child("Error")?
    };
    Some(ErrorBody {
        code: error.child_text("Code").unwrap_or_default().to_string(),
        message: error.child_text("Message").unwrap_or_default().to_string(),
    })
}

/// `text` with every `known` secret value and every long token-like run replaced, cut to
/// [`MAX_MESSAGE_CHARS`]. STS echoes request values in messages ("Value 'eyJ...' at
/// 'webIdentityToken' failed to satisfy constraint"), so no message is shown unredacted.
pub fn redact(text: &str, known: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in known.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret, "** redacted **");
    }
    let mut redacted = String::with_capacity(out.len());
    let mut run = String::new();
    let flush = |run: &mut String, into: &mut String| {
        // `//host/path` after a scheme is a URL (an OIDC issuer STS names), never a token.
        if run.chars().count() >= SECRET_RUN_CHARS && !run.starts_with("//") {
            into.push_str("** redacted **");
        } else {
            into.push_str(run);
        }
        run.clear();
    };
    for c in out.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-' | '.' | '%') {
            run.push(c);
        } else {
            flush(&mut run, &mut redacted);
            redacted.push(c);
        }
    }
    flush(&mut run, &mut redacted);
    if redacted.chars().count() > MAX_MESSAGE_CHARS {
        redacted = redacted.chars().take(MAX_MESSAGE_CHARS).collect();
        redacted.push('…');
    }
    redacted
}

fn parse_document(body: &[u8]) -> Result<Element, String> {
    let malformed = |e: &dyn std::fmt::Display| format!("invalid XML: {e}");
    let text = std::str::from_utf8(body).map_err(|e| malformed(&e))?;
    let mut reader = Reader::from_str(text);
    // A stack of open elements; the bottom one is a synthetic holder for the root.
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        match reader.read_event().map_err(|e| malformed(&e))? {
            Event::Start(start) => stack.push(Element {
                name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                ..Element::default()
            }),
            Event::Empty(start) => {
                let element = Element {
                    name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                    ..Element::default()
                };
                push_child(&mut stack, element)?;
            }
            Event::End(_) => {
                let done = stack.pop().ok_or("invalid XML: unbalanced end tag")?;
                push_child(&mut stack, done)?;
            }
            Event::Text(t) => append_text(&mut stack, &t.decode().map_err(|e| malformed(&e))?),
            Event::CData(t) => append_text(&mut stack, &t.decode().map_err(|e| malformed(&e))?),
            Event::GeneralRef(r) => {
                let resolved = resolve_reference(&r)?;
                append_text(&mut stack, &resolved);
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if stack.len() != 1 {
        return Err("invalid XML: unclosed element".into());
    }
    stack
        .pop()
        .and_then(|holder| holder.children.into_iter().next())
        .ok_or_else(|| "invalid XML: empty document".into())
}

fn push_child(stack: &mut [Element], child: Element) -> Result<(), String> {
    let parent = stack.last_mut().ok_or("invalid XML: unbalanced end tag")?;
    parent.children.push(child);
    Ok(())
}

fn append_text(stack: &mut [Element], text: &str) {
    // The synthetic holder (depth 0) only sees whitespace between prolog items.
    if stack.len() > 1 {
        if let Some(top) = stack.last_mut() {
            top.text.push_str(text);
        }
    }
}

/// `&amp;`, `&#10;`: quick-xml hands references over apart from the text around them.
fn resolve_reference(r: &quick_xml::events::BytesRef<'_>) -> Result<Cow<'static, str>, String> {
    if let Some(c) = r
        .resolve_char_ref()
        .map_err(|e| format!("invalid XML: {e}"))?
    {
        return Ok(Cow::Owned(c.to_string()));
    }
    let name = r.decode().map_err(|e| format!("invalid XML: {e}"))?;
    quick_xml::escape::resolve_predefined_entity(&name)
        .map(Cow::Borrowed)
        .ok_or_else(|| format!("invalid XML: unknown entity &{name};"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
      <AssumeRoleResult>
        <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn></AssumedRoleUser>
        <Credentials>
          <AccessKeyId>ASIATEST</AccessKeyId>
          <SecretAccessKey>secret&amp;key</SecretAccessKey>
          <SessionToken>TOKEN</SessionToken>
          <Expiration>2030-01-01T00:00:00Z</Expiration>
        </Credentials>
      </AssumeRoleResult>
    </AssumeRoleResponse>"#;

    /// Key id, secret (entities resolved), token and expiry come out of any `...Result`.
    #[test]
    fn parses_credentials_of_a_result() {
        let c = parse_credentials(OK.as_bytes()).unwrap();
        assert_eq!(c.access_key_id, "ASIATEST");
        assert_eq!(c.secret_access_key.expose(), "secret&key");
        assert_eq!(c.session_token.expose(), "TOKEN");
        assert_eq!(c.expiration, parse_rfc3339("2030-01-01T00:00:00Z").unwrap());
    }

    /// A document without `<Credentials>` is malformed, and the message quotes no body.
    #[test]
    fn missing_credentials_is_malformed_without_quoting_the_body() {
        let body = "<AssumeRoleResponse><AssumeRoleResult><SessionToken>SECRETVALUE</SessionToken>\
                    </AssumeRoleResult></AssumeRoleResponse>";
        let err = parse_credentials(body.as_bytes()).unwrap_err();
        assert!(err.contains("Credentials"), "{err}");
        assert!(!err.contains("SECRETVALUE"), "{err}");
    }

    /// Code and message come out of an `<ErrorResponse>`; other documents are not errors.
    #[test]
    fn parses_error_response() {
        let body = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>\
                    <Message>nope</Message></Error><RequestId>x</RequestId></ErrorResponse>";
        let e = parse_error(body.as_bytes()).unwrap();
        assert_eq!(e.code, "AccessDenied");
        assert_eq!(e.message, "nope");
        assert_eq!(parse_error(b"<html>busy</html>"), None);
        assert_eq!(parse_error(b""), None);
    }

    /// Known secrets and long token-like runs are replaced; ARNs and URLs stay readable.
    #[test]
    fn redaction_removes_known_values_and_long_runs() {
        let jwt = format!("eyJ{}", "a".repeat(100));
        let issuer = "https://oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF";
        let text = format!(
            "Value '{jwt}' at 'webIdentityToken' and short-secret for \
             arn:aws:iam::123456789012:role/reader, issuer {issuer}"
        );
        let out = redact(&text, &["short-secret"]);
        assert!(!out.contains(&jwt), "{out}");
        assert!(!out.contains("short-secret"), "{out}");
        assert!(
            out.contains("arn:aws:iam::123456789012:role/reader"),
            "{out}"
        );
        assert!(out.contains(issuer), "{out}");
    }

    /// An over-long message is cut to the limit.
    #[test]
    fn redaction_cuts_long_messages() {
        let out = redact(&"word ".repeat(200), &[]);
        assert!(out.chars().count() <= MAX_MESSAGE_CHARS + 1, "{out}");
    }
}
