//! One provider's connection to STS: a query-protocol form POST to the configured endpoint,
//! SigV4-signed for service `sts` with the caller's credentials (session token included) or
//! unsigned for the token-authenticated actions, retried with jitter on transient failures.
//! Owns the wire: nothing here logs a body (requests carry tokens, answers carry secrets).

use std::time::Duration;

use rand::Rng;

use super::error::StsError;
use super::xml;
use super::{
    StsConfig, API_VERSION, CONNECT_TIMEOUT, MAX_ATTEMPTS, REQUEST_TIMEOUT, RETRY_BASE_DELAY,
};
use crate::credentials::clock::{self, SkewedClock};
use crate::credentials::http::{self, HttpSettings};
use crate::credentials::{Credentials, CredentialsError, Secret};
use crate::sigv4;

/// The credentials STS handed out, as [`Credentials`] from `source`.
fn to_credentials(issued: xml::IssuedCredentials, source: &str) -> Credentials {
    Credentials {
        access_key_id: issued.access_key_id,
        secret_access_key: issued.secret_access_key,
        session_token: Some(issued.session_token),
        expiry: Some(issued.expiration),
        source: source.to_string(),
    }
}

/// One provider's connection to STS: a client with [`CONNECT_TIMEOUT`]/[`REQUEST_TIMEOUT`],
/// the URL and the signing region.
pub(crate) struct StsClient {
    http: reqwest::Client,
    url: reqwest::Url,
    /// `host[:port]` exactly as reqwest sends it (the port only when not the default).
    host: String,
    signing_region: String,
    /// What signatures are dated by (shared with the mount's S3 client).
    clock: SkewedClock,
}

impl StsClient {
    pub(crate) fn new(config: &StsConfig, source: &str) -> Result<Self, CredentialsError> {
        let text = config.endpoint_url();
        let url = reqwest::Url::parse(&text).map_err(|e| {
            CredentialsError::invalid(
                source,
                format!("STS endpoint {text:?} is not a URL ({e}); give --sts-endpoint-url as https://host[:port]"),
            )
        })?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(CredentialsError::invalid(
                    source,
                    format!("STS endpoint {text:?} has no host; give --sts-endpoint-url as https://host[:port]"),
                ))
            }
        };
        let settings = HttpSettings {
            connect_timeout: CONNECT_TIMEOUT,
            timeout: REQUEST_TIMEOUT,
            // STS is a public AWS endpoint: corporate proxies (HTTPS_PROXY) apply to it.
            no_proxy: false,
        };
        Ok(StsClient {
            http: http::client(&settings, source)?,
            url,
            host,
            signing_region: config.signing_region().to_string(),
            clock: config.clock.clone(),
        })
    }

    /// Calls `action` with `params`, signed with `signer` when given (AssumeRole) or unsigned
    /// (the web identity and SAML actions authenticate by their token), retrying transient
    /// failures. `secrets` are values the request carries that an error echo must not show.
    pub(crate) async fn call(
        &self,
        action: &str,
        params: &[(&str, &str)],
        signer: Option<&Credentials>,
        secrets: &[&str],
        source: &str,
    ) -> Result<Credentials, StsError> {
        let mut form: Vec<(String, String)> = vec![
            ("Action".into(), action.into()),
            ("Version".into(), API_VERSION.into()),
        ];
        form.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let body = sigv4::encode_query(&form);
        let mut attempt = 1;
        let mut corrected_clock = false;
        loop {
            match self.attempt(&body, signer, secrets).await {
                Ok(issued) => return Ok(to_credentials(issued, source)),
                // Signed again at once, dated by STS's clock (learned by `attempt`); once.
                Err(StsError::ClockSkewed { .. }) if !corrected_clock => corrected_clock = true,
                Err(e) if e.is_transient() && attempt < MAX_ATTEMPTS => {
                    let delay = backoff(attempt);
                    log::debug!(
                        "{source}: {action} attempt {attempt} failed ({e}); retrying in {} ms",
                        delay.as_millis()
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The form POST of one attempt, signed with `signer` when given. The signature and
    /// the session token go as sensitive header values: no HTTP-level log prints them.
    pub(super) fn request(
        &self,
        body: &str,
        signer: Option<&Credentials>,
    ) -> Result<reqwest::RequestBuilder, StsError> {
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let mut request = self
            .http
            .post(self.url.clone())
            .header("content-type", content_type)
            .body(body.to_string());
        let Some(creds) = signer else {
            return Ok(request);
        };
        let headers = [
            ("content-type".to_string(), content_type.to_string()),
            ("host".to_string(), self.host.clone()),
        ];
        let payload_hash = sigv4::sha256_hex(body.as_bytes());
        let signed = sigv4::sign(
            &sigv4::HttpRequest {
                method: "POST",
                path: self.url.path(),
                query: &[],
                headers: &headers,
                payload_hash: &payload_hash,
            },
            &sigv4::SigningInputs {
                access_key_id: &creds.access_key_id,
                secret_access_key: creds.secret_access_key.expose(),
                session_token: creds.session_token.as_ref().map(Secret::expose),
                region: &self.signing_region,
                service: "sts",
                time: self.clock.now(),
            },
        );
        for (name, value) in signed.headers {
            request = match name {
                "authorization" | "x-amz-security-token" => {
                    // Only a session token from the base source can hold such characters.
                    let value = http::secret_header(&value).ok_or_else(|| {
                        StsError::Transport(http::NoAnswer::Other(format!(
                            "the {name} header cannot carry the base credentials' session \
                             token (it holds characters a header cannot)"
                        )))
                    })?;
                    request.header(name, value)
                }
                _ => request.header(name, value),
            };
        }
        Ok(request)
    }

    async fn attempt(
        &self,
        body: &str,
        signer: Option<&Credentials>,
        secrets: &[&str],
    ) -> Result<xml::IssuedCredentials, StsError> {
        let request = self.request(body, signer)?;
        let answer = http::send(request).await.map_err(StsError::Transport)?;
        if answer.status == 200 {
            return xml::parse_credentials(&answer.body).map_err(|detail| StsError::Malformed {
                status: 200,
                detail,
            });
        }
        let mut known: Vec<&str> = secrets.to_vec();
        if let Some(creds) = signer {
            known.push(creds.secret_access_key.expose());
            if let Some(token) = &creds.session_token {
                known.push(token.expose());
            }
        }
        match xml::parse_error(&answer.body) {
            Some(error) => {
                let message = xml::redact(&error.message, &known);
                if signer.is_some() && is_signature_date_error(&error.code) {
                    let server = clock::server_date(&answer.headers);
                    if let Some(server) = server.filter(|t| self.clock.is_off(*t)) {
                        let offset_ms = self.clock.learn(server);
                        log::warn!(
                            "the local clock is {offset_ms} ms off STS's; signing with STS's time"
                        );
                        return Err(StsError::ClockSkewed {
                            code: error.code,
                            message,
                        });
                    }
                }
                Err(StsError::classify(answer.status, &error.code, message))
            }
            None if answer.status == 429 => Err(StsError::Throttling(String::new())),
            None if answer.status >= 500 => Err(StsError::Server {
                status: answer.status,
                code: String::new(),
            }),
            None => Err(StsError::Malformed {
                status: answer.status,
                detail: "no <ErrorResponse> in the body".into(),
            }),
        }
    }
}

/// The codes AWS refuses a signature with when its date is too far from the server's
/// clock (STS says `SignatureDoesNotMatch` "Signature expired: ..."; other query APIs
/// `RequestExpired`). They are about the date only when the answer's `Date` shows the skew.
fn is_signature_date_error(code: &str) -> bool {
    matches!(
        code,
        "SignatureDoesNotMatch"
            | "RequestExpired"
            | "RequestTimeTooSkewed"
            | "InvalidSignatureException"
    )
}

/// Full jitter: a random delay up to `RETRY_BASE_DELAY * 2^(attempt-1)`.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let ceiling = RETRY_BASE_DELAY.saturating_mul(1 << attempt.saturating_sub(1).min(8));
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::thread_rng().gen_range(0..=millis))
}
