//! Credentials from a container credentials endpoint, as the AWS SDKs get them: ECS task
//! roles (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, served at 169.254.170.2), EKS Pod
//! Identity and other agents (`AWS_CONTAINER_CREDENTIALS_FULL_URI`), with an optional
//! `Authorization` token (`AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`, re-read on every call
//! because the agent rotates it, or `AWS_CONTAINER_AUTHORIZATION_TOKEN`).
//!
//! Owns where the endpoint is and which hosts it may be on (plain http only to loopback and
//! the ECS/EKS link-local agents, so a forged variable cannot send the token to any host),
//! the request with its retries, and the answer. The JSON document is the IMDS one
//! (`imds::document`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};

use super::http::{self, Answer, HttpSettings, NoAnswer};
use super::imds::document::{error_reason, parse_credentials, DocumentError};
use super::{
    BoxFuture, Credentials, CredentialsError, ProvideCredentials, ProviderContext, Secret,
};

const NAME: &str = "container";

/// Where the ECS agent serves task-role credentials (the base of the relative URI).
pub const ECS_ENDPOINT: &str = "http://169.254.170.2";
/// The ECS agent's address, allowed over plain http.
pub const ECS_HOST: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 2);
/// The EKS Pod Identity agent's IPv4 address, allowed over plain http.
pub const EKS_HOST_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 23);
/// The EKS Pod Identity agent's IPv6 address, allowed over plain http.
pub const EKS_HOST_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x23);
/// The agents are on the same host or link; two seconds covers a busy node, as in the SDKs.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The EKS agent calls STS itself before answering, so it gets more time than IMDS.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// A few attempts ride out an agent restart without holding a mount for long.
pub const DEFAULT_ATTEMPTS: u32 = 3;
/// First retry delay, doubled per attempt: agents recover in well under a second.
pub const RETRY_BASE_DELAY: Duration = Duration::from_millis(100);

pub const RELATIVE_URI_VAR: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
pub const FULL_URI_VAR: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
pub const TOKEN_FILE_VAR: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
pub const TOKEN_VAR: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";

/// The value of the `Authorization` header, if any.
enum Authorization {
    None,
    Token(Secret),
    /// Read at every call: the agent rotates the file's content.
    File(PathBuf),
}

/// Credentials from an ECS / EKS container credentials endpoint.
pub struct ContainerProvider {
    uri: String,
    /// An http URL naming a host by name: it must resolve to loopback only, checked at each
    /// call (DNS answers can change).
    resolve_check: Option<(String, u16)>,
    authorization: Authorization,
    http: reqwest::Client,
    attempts: u32,
}

impl ContainerProvider {
    /// Reads the container variables of `ctx`: `NotConfigured` when neither URI variable is
    /// set, `Invalid` for a URI that is malformed or on a host plain http may not reach.
    pub fn from_context(ctx: &ProviderContext) -> Result<Self, CredentialsError> {
        let (uri, resolve_check) = if let Some(relative) = ctx.var(RELATIVE_URI_VAR) {
            let relative = relative.trim();
            if !relative.starts_with('/') {
                return Err(CredentialsError::invalid(
                    NAME,
                    format!("{RELATIVE_URI_VAR} must be a path starting with / (as ECS sets it)"),
                ));
            }
            (format!("{ECS_ENDPOINT}{relative}"), None)
        } else if let Some(full) = ctx.var(FULL_URI_VAR) {
            let full = full.trim().to_string();
            let check = check_full_uri(&full)?;
            (full, check)
        } else {
            return Err(CredentialsError::not_configured(
                NAME,
                format!("neither {RELATIVE_URI_VAR} nor {FULL_URI_VAR} is set"),
            ));
        };
        let authorization = if let Some(path) = ctx.var(TOKEN_FILE_VAR) {
            Authorization::File(PathBuf::from(path.trim()))
        } else if let Some(token) = ctx.var(TOKEN_VAR) {
            Authorization::Token(Secret::new(token.trim()))
        } else {
            Authorization::None
        };
        let http = http::client(
            &HttpSettings {
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                timeout: DEFAULT_TIMEOUT,
                no_proxy: true,
            },
            NAME,
        )?;
        Ok(ContainerProvider {
            uri,
            resolve_check,
            authorization,
            http,
            attempts: DEFAULT_ATTEMPTS,
        })
    }

    /// The endpoint credentials are fetched from.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Fresh credentials from the endpoint.
    pub async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        if let Some((host, port)) = &self.resolve_check {
            check_resolves_to_loopback(host, *port).await?;
        }
        let authorization = self.authorization().await?;
        let shown = display_uri(&self.uri);
        let answer = match self.send_with_retries(authorization.as_ref()).await {
            Ok(answer) => answer,
            Err(no_answer) => {
                return Err(CredentialsError::failed(
                    NAME,
                    format!(
                        "container credentials endpoint {shown}: {no_answer} ({} attempts): \
                         is the ECS/EKS agent running?",
                        self.attempts
                    ),
                    true,
                ))
            }
        };
        match answer.status {
            200 => {}
            401 | 403 => {
                return Err(CredentialsError::failed(
                    NAME,
                    format!(
                        "container credentials endpoint {shown} refused us ({} {}): check \
                         {TOKEN_FILE_VAR} / {TOKEN_VAR}",
                        answer.status,
                        error_reason(&answer.body)
                    ),
                    false,
                ))
            }
            status => {
                let retryable = status >= 500 || status == 429;
                return Err(CredentialsError::failed(
                    NAME,
                    format!(
                        "container credentials endpoint {shown} answered {status} ({}){}",
                        error_reason(&answer.body),
                        if retryable {
                            format!(" after {} attempts: try again shortly", self.attempts)
                        } else {
                            format!(": check {RELATIVE_URI_VAR} / {FULL_URI_VAR}")
                        }
                    ),
                    retryable,
                ));
            }
        }
        parse_credentials(&answer.body, NAME).map_err(|e| {
            let why = match e {
                DocumentError::Refused { code, message } => format!("{code}: {message}"),
                DocumentError::Malformed(why) => why,
            };
            CredentialsError::failed(
                NAME,
                format!("container credentials endpoint {shown} sent unusable credentials: {why}"),
                true,
            )
        })
    }

    /// The `Authorization` value for this call; the file is read now, never cached.
    async fn authorization(&self) -> Result<Option<HeaderValue>, CredentialsError> {
        let token = match &self.authorization {
            Authorization::None => return Ok(None),
            Authorization::Token(token) => token.clone(),
            Authorization::File(path) => match tokio::fs::read_to_string(path).await {
                Ok(text) => Secret::new(text.trim()),
                Err(e) => {
                    return Err(CredentialsError::failed(
                        NAME,
                        format!(
                            "cannot read {TOKEN_FILE_VAR}={} ({e}): check the file the \
                             agent mounts",
                            path.display()
                        ),
                        true,
                    ))
                }
            },
        };
        let invalid = || {
            CredentialsError::invalid(
                NAME,
                format!(
                    "the container authorization token ({TOKEN_FILE_VAR} / {TOKEN_VAR}) is empty \
                     or has characters a header cannot carry (line breaks): set it to the token alone"
                ),
            )
        };
        if token.expose().is_empty() || token.expose().contains(['\r', '\n']) {
            return Err(invalid());
        }
        http::secret_header(token.expose())
            .map(Some)
            .ok_or_else(invalid)
    }

    async fn send_with_retries(
        &self,
        authorization: Option<&HeaderValue>,
    ) -> Result<Answer, NoAnswer> {
        let mut delay = RETRY_BASE_DELAY;
        let mut attempt = 1;
        loop {
            let mut request = self
                .http
                .get(&self.uri)
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(value) = authorization {
                request = request.header(AUTHORIZATION, value.clone());
            }
            let result = http::send(request).await;
            let again = match &result {
                Ok(a) => a.status >= 500 || a.status == 429,
                Err(_) => true,
            };
            if !again || attempt >= self.attempts {
                return result;
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        }
    }
}

impl ProvideCredentials for ContainerProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn provide(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
        Box::pin(self.credentials())
    }
}

/// Checks a full URI the SDKs' way: https to any host; http only to loopback, the ECS agent
/// or the EKS Pod Identity agent. A host name over http is returned to be resolved at call
/// time.
fn check_full_uri(uri: &str) -> Result<Option<(String, u16)>, CredentialsError> {
    let bad = |why: String| CredentialsError::invalid(NAME, format!("{FULL_URI_VAR}: {why}"));
    let parsed = reqwest::Url::parse(uri).map_err(|e| {
        bad(format!(
            "{:?} is not a URL ({e}): the URI did not specify a host; give e.g. \
             http://169.254.170.23/v1/credentials",
            display_uri(uri)
        ))
    })?;
    let host = match parsed.host_str().filter(|h| !h.is_empty()) {
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        None => {
            return Err(bad(format!(
                "{:?}: the URI did not specify a host",
                display_uri(uri)
            )))
        }
    };
    match parsed.scheme() {
        "https" => return Ok(None),
        "http" => {}
        other => return Err(bad(format!("scheme {other:?} is not http or https"))),
    }
    let allowed = "plain http is allowed only to loopback, 169.254.170.2 (ECS), \
                   169.254.170.23 or [fd00:ec2::23] (EKS Pod Identity): use https";
    match host.parse::<IpAddr>() {
        Ok(ip) if is_allowed_http_ip(ip) => Ok(None),
        Ok(ip) => Err(bad(format!("host {ip} is not allowed: {allowed}"))),
        Err(_) => Ok(Some((host, parsed.port_or_known_default().unwrap_or(80)))),
    }
}

/// Loopback, or one of the container credential agents' link-local addresses.
fn is_allowed_http_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4 == ECS_HOST || v4 == EKS_HOST_V4,
        IpAddr::V6(v6) => v6.is_loopback() || v6 == EKS_HOST_V6,
    }
}

/// A host named in an http URI must resolve to loopback addresses only (`localhost`).
async fn check_resolves_to_loopback(host: &str, port: u16) -> Result<(), CredentialsError> {
    let addrs: Vec<IpAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.map(|a| a.ip()).collect(),
        Err(e) => {
            return Err(CredentialsError::failed(
                NAME,
                format!("{FULL_URI_VAR}: cannot resolve {host} ({e}): check the host name"),
                true,
            ))
        }
    };
    match addrs.iter().find(|ip| !ip.is_loopback()) {
        None if !addrs.is_empty() => Ok(()),
        found => Err(CredentialsError::invalid(
            NAME,
            format!(
                "{FULL_URI_VAR}: host {host} resolves to {}, not loopback: plain http is \
                 allowed only to loopback or the ECS/EKS agents; use https",
                found.map_or("nothing".to_string(), ToString::to_string)
            ),
        )),
    }
}

/// The URI without its query, for messages (a query could carry a credential).
fn display_uri(uri: &str) -> &str {
    uri.split(['?', '#']).next().unwrap_or(uri)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<ContainerProvider, CredentialsError> {
        ContainerProvider::from_context(&ProviderContext::with_vars(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        ))
    }

    /// No URI variable: the source does not apply.
    #[test]
    fn no_variables_is_not_configured() {
        assert!(from(&[]).err().is_some_and(|e| e.is_not_configured()));
    }

    /// The relative URI goes to the ECS agent and beats the full URI.
    #[test]
    fn relative_uri_goes_to_ecs_agent_and_wins() {
        let p = from(&[
            (RELATIVE_URI_VAR, "/v2/credentials/abc?x=1"),
            (FULL_URI_VAR, "http://127.0.0.1:1/other"),
        ])
        .unwrap();
        assert_eq!(p.uri(), "http://169.254.170.2/v2/credentials/abc?x=1");
    }

    /// http is allowed to loopback and the agents, refused elsewhere; https goes anywhere.
    #[test]
    fn full_uri_hosts_follow_sdk_rules() {
        for ok in [
            "http://127.0.0.1:8080/c",
            "http://127.1.2.3/c",
            "http://[::1]/c",
            "http://169.254.170.2/c",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
            "https://example.com/c",
        ] {
            assert!(from(&[(FULL_URI_VAR, ok)]).is_ok(), "{ok}");
        }
        for bad in [
            "http://192.168.1.10/c",
            "http://[fd00::1]/c",
            "ftp://127.0.0.1/c",
            "/c",
        ] {
            let err = from(&[(FULL_URI_VAR, bad)]).err();
            assert!(
                matches!(err, Some(CredentialsError::Invalid { .. })),
                "{bad}: {err:?}"
            );
        }
    }

    /// A host name over http is checked by resolving it; localhost passes.
    #[tokio::test]
    async fn localhost_resolves_to_loopback() {
        assert!(check_resolves_to_loopback("localhost", 80).await.is_ok());
    }

    /// Messages show a URI without its query.
    #[test]
    fn display_uri_drops_query() {
        assert_eq!(display_uri("http://h/p?token=x"), "http://h/p");
    }

    /// The authorization token goes as a sensitive header value: it never prints in
    /// `Debug`, the form HTTP-level logging uses.
    #[tokio::test]
    async fn sensitive_header_values_never_print() {
        let p = from(&[
            (FULL_URI_VAR, "http://127.0.0.1:1/c"),
            (TOKEN_VAR, "SECRETCONTAINERTOKEN"),
        ])
        .unwrap();
        let value = p.authorization().await.unwrap().unwrap();
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("SECRETCONTAINER"));
    }
}
