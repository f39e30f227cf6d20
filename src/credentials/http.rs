//! The small HTTP layer every credentials source uses (IMDS, container endpoint, STS, SSO):
//! a client with explicit timeouts, and one request call that turns every failure into a
//! [`CredentialsError`] naming the source and the cause — never a secret.

use std::time::Duration;

use bytes::Bytes;

use super::CredentialsError;

/// How a source's HTTP client behaves.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    /// The whole request, answer included.
    pub timeout: Duration,
    /// IMDS and the container endpoint are link-local/loopback: never through a proxy.
    pub no_proxy: bool,
}

/// A built HTTP client for one source.
pub fn client(
    settings: &HttpSettings,
    source_name: &str,
) -> Result<reqwest::Client, CredentialsError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("s3rolefs/", env!("CARGO_PKG_VERSION")));
    if settings.no_proxy {
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| {
        CredentialsError::invalid(source_name, format!("cannot build an HTTP client: {e}"))
    })
}

/// A header value that carries a secret (a signature, a session token, a bearer token):
/// flagged sensitive, so hyper and reqwest never print it at any log level. `None` when the
/// value holds characters a header cannot carry (the caller names the source in its error).
pub fn secret_header(value: &str) -> Option<reqwest::header::HeaderValue> {
    let mut header = reqwest::header::HeaderValue::from_str(value).ok()?;
    header.set_sensitive(true);
    Some(header)
}

/// An answer: status, headers and the whole body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request got no answer at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoAnswer {
    /// Could not connect (refused, unreachable, DNS).
    Connect(String),
    /// Connected, but no complete answer in time.
    Timeout,
    /// Anything else on the way (reset, protocol error).
    Other(String),
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoAnswer::Connect(e) => write!(f, "cannot connect: {e}"),
            NoAnswer::Timeout => f.write_str("no answer in time"),
            NoAnswer::Other(e) => write!(f, "request failed: {e}"),
        }
    }
}

/// Sends `request` and reads the whole answer.
pub async fn send(request: reqwest::RequestBuilder) -> Result<Answer, NoAnswer> {
    let response = request.send().await.map_err(classify)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(classify)?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn classify(e: reqwest::Error) -> NoAnswer {
    // A connect timeout is both `is_connect` and `is_timeout`: it is a connection failure
    // (nobody there), not a server that accepted and went silent (IMDS's hop-limit symptom).
    if e.is_connect() {
        NoAnswer::Connect(root_cause(&e))
    } else if e.is_timeout() {
        NoAnswer::Timeout
    } else {
        NoAnswer::Other(root_cause(&e))
    }
}

/// The innermost cause of an error ("Connection refused"), without the URL reqwest adds
/// (URLs can carry presigned tokens).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret header prints as a placeholder in `Debug` (the form HTTP-level logging
    /// uses); a value a header cannot carry is refused.
    #[test]
    fn secret_header_values_never_print() {
        let value = secret_header("FwoGZXIvYXdzEXAMPLETOKEN").unwrap();
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("FwoGZXIv"), "{value:?}");
        assert!(secret_header("line\nbreak").is_none());
    }
}
