//! The IMDS wire protocol: the IMDSv2 session token (fetched, cached until shortly before its
//! TTL ends, dropped on 401), the IMDSv1 fallback and when it is allowed, and retries with
//! backoff on connection errors, throttling and 5xx. Every failure becomes a one-line
//! [`CredentialsError`] naming the cause and the fix.

use std::time::{Duration, Instant};

use reqwest::header::CONTENT_LENGTH;
use reqwest::Method;
use tokio::sync::Mutex;

use super::document::error_reason;
use super::{ImdsConfig, NAME};
use crate::credentials::http::{self, Answer, HttpSettings, NoAnswer};
use crate::credentials::{CredentialsError, Secret};

/// Header carrying the requested token lifetime on the token PUT (and the granted one on its
/// answer).
pub const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
/// Header carrying the session token on every IMDSv2 GET.
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// A token is renewed this long before IMDS says it ends (or at half its life when that is
/// shorter), so a request never leaves with a token that expires on the way.
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(120);
/// First retry delay, doubled for each further attempt: IMDS throttling clears within tens
/// of milliseconds, and three attempts then cost well under a second of waiting.
pub const RETRY_BASE_DELAY: Duration = Duration::from_millis(100);

/// The fix for a token request that connects but is never answered: IMDS drops answers
/// that would cross more network hops than the instance's limit, and a container is one.
macro_rules! hop_limit_fix {
    () => {
        "in a container, raise the instance's metadata hop limit to 2 (aws ec2 \
         modify-instance-metadata-options --http-put-response-hop-limit 2)"
    };
}
pub(super) const HOP_LIMIT_FIX: &str = hop_limit_fix!();
const HOP_LIMIT_HINT: &str = concat!("the IMDSv2 token request timed out: ", hop_limit_fix!());

/// How the GETs of one call authenticate.
#[derive(Clone)]
pub(super) enum Session {
    /// IMDSv2: every GET sends this token.
    V2(Secret),
    /// IMDSv1, because the token request was refused with this status or timed out (`None`).
    V1 { token_status: Option<u16> },
}

struct CachedToken {
    value: Secret,
    renew_at: Instant,
}

/// Talks to one IMDS endpoint.
pub(super) struct ImdsClient {
    pub(super) config: ImdsConfig,
    http: reqwest::Client,
    /// A tokio mutex, held across the token PUT on purpose: concurrent callers wait for the
    /// one token being fetched instead of each fetching their own.
    token: Mutex<Option<CachedToken>>,
}

impl ImdsClient {
    pub(super) fn new(config: ImdsConfig) -> Result<Self, CredentialsError> {
        let http = http::client(
            &HttpSettings {
                connect_timeout: config.connect_timeout,
                timeout: config.timeout,
                // Invariant 4: IMDS is link-local; a proxy would answer for another host.
                no_proxy: true,
            },
            NAME,
        )?;
        Ok(ImdsClient {
            config,
            http,
            token: Mutex::new(None),
        })
    }

    /// A GET of `path` (from `/latest/...`) that answered something other than 401/5xx; a
    /// 401 drops the token and tries once more with a fresh one.
    pub(super) async fn get(&self, path: &str) -> Result<Answer, CredentialsError> {
        let mut session = self.session().await?;
        let mut fresh_token_tried = false;
        loop {
            let result = self
                .send_with_retries(Method::GET, path, &session, true)
                .await;
            let answer = match result {
                Ok(answer) => answer,
                Err(no_answer) => return Err(self.no_answer_error(&no_answer, &session)),
            };
            if answer.status == 401 {
                match &session {
                    Session::V2(_) if !fresh_token_tried => {
                        fresh_token_tried = true;
                        *self.token.lock().await = None;
                        session = self.session().await?;
                        continue;
                    }
                    Session::V2(_) => {
                        return Err(CredentialsError::failed(
                            NAME,
                            format!(
                                "IMDS at {} refused a fresh IMDSv2 token (401) for {path}: \
                                 check that nothing between us and IMDS rewrites headers",
                                self.config.endpoint
                            ),
                            true,
                        ))
                    }
                    Session::V1 { token_status } => {
                        return Err(self.v1_refused_error(*token_status));
                    }
                }
            }
            if answer.status >= 500 || answer.status == 429 {
                return Err(CredentialsError::failed(
                    NAME,
                    format!(
                        "IMDS at {} answered {} ({}) to GET {path} after {} attempts: \
                         IMDS is throttling or unwell; try again shortly",
                        self.config.endpoint,
                        answer.status,
                        error_reason(&answer.body),
                        self.attempts()
                    ),
                    true,
                ));
            }
            return Ok(answer);
        }
    }

    /// The cached IMDSv2 token, a new one, or IMDSv1 when the token request was refused in
    /// a way that means "this IMDS has no v2" and the fallback is allowed.
    pub(super) async fn session(&self) -> Result<Session, CredentialsError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            if Instant::now() < token.renew_at {
                return Ok(Session::V2(token.value.clone()));
            }
        }
        *cached = None;
        let ttl_secs = self.config.token_ttl.as_secs().max(1);
        let answer = self
            .send_with_retries(
                Method::PUT,
                "/latest/api/token",
                &Session::V1 { token_status: None },
                false,
            )
            .await;
        let endpoint = &self.config.endpoint;
        match answer {
            Ok(a) if a.status == 200 => {
                let value = a.text().trim().to_string();
                if value.is_empty() {
                    return Err(CredentialsError::failed(
                        NAME,
                        format!("IMDS at {endpoint} answered the token request with an empty token: is {endpoint} really IMDS?"),
                        true,
                    ));
                }
                // IMDS says how long the token lives; trust that over what we asked for.
                let granted = a
                    .headers
                    .get(TOKEN_TTL_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(ttl_secs);
                let life = Duration::from_secs(granted);
                let margin = TOKEN_REFRESH_MARGIN.min(life / 2);
                let value = Secret::new(value);
                *cached = Some(CachedToken {
                    value: value.clone(),
                    renew_at: Instant::now() + (life - margin),
                });
                Ok(Session::V2(value))
            }
            Ok(a) if (403..=405).contains(&a.status) => {
                if self.config.v1_fallback {
                    log::debug!("imds: token request answered {}; using IMDSv1", a.status);
                    Ok(Session::V1 {
                        token_status: Some(a.status),
                    })
                } else {
                    Err(CredentialsError::failed(
                        NAME,
                        format!(
                            "IMDSv2 failed: IMDS at {endpoint} answered the token request with {} \
                             and IMDSv1 is disabled (AWS_EC2_METADATA_V1_DISABLED, \
                             ec2_metadata_v1_disabled or --imds-v2-only): turn the metadata \
                             service on (aws ec2 modify-instance-metadata-options --http-endpoint \
                             enabled), make sure no proxy blocks PUT, or allow the IMDSv1 fallback",
                            a.status
                        ),
                        false,
                    ))
                }
            }
            Ok(a) if a.status >= 500 || a.status == 429 => Err(CredentialsError::failed(
                NAME,
                format!(
                    "IMDS at {endpoint} answered {} ({}) to the token request after {} attempts: \
                     IMDS is throttling or unwell; try again shortly",
                    a.status,
                    error_reason(&a.body),
                    self.attempts()
                ),
                true,
            )),
            Ok(a) => Err(CredentialsError::failed(
                NAME,
                format!(
                    "IMDS at {endpoint} refused the token request ({} {}) for a {ttl_secs} s \
                     token: token lifetimes must be 1 to 21600 s",
                    a.status,
                    error_reason(&a.body)
                ),
                false,
            )),
            Err(NoAnswer::Timeout) => {
                if self.config.v1_fallback {
                    log::debug!("imds: token request timed out; trying IMDSv1");
                    Ok(Session::V1 { token_status: None })
                } else {
                    Err(CredentialsError::failed(
                        NAME,
                        format!(
                            "IMDSv2 failed at {endpoint} and IMDSv1 is disabled: {HOP_LIMIT_HINT}; \
                             not on EC2? set credentials another way or AWS_EC2_METADATA_DISABLED=true"
                        ),
                        true,
                    ))
                }
            }
            Err(other) => Err(self.no_answer_error(&other, &Session::V1 { token_status: None })),
        }
    }

    /// Sends one request, retrying connection errors, throttling and 5xx (and timeouts when
    /// `retry_timeouts`) with doubling delays. The last answer or failure is returned.
    async fn send_with_retries(
        &self,
        method: Method,
        path: &str,
        session: &Session,
        retry_timeouts: bool,
    ) -> Result<Answer, NoAnswer> {
        let url = format!("{}{path}", self.config.endpoint);
        let attempts = self.attempts();
        let mut delay = RETRY_BASE_DELAY;
        let mut attempt = 1;
        loop {
            let mut request = self.http.request(method.clone(), &url);
            if method == Method::PUT {
                let ttl = self.config.token_ttl.as_secs().max(1);
                request = request
                    .header(TOKEN_TTL_HEADER, ttl.to_string())
                    .header(CONTENT_LENGTH, "0");
            } else if let Session::V2(token) = session {
                match http::secret_header(token.expose()) {
                    Some(value) => request = request.header(TOKEN_HEADER, value),
                    // IMDS tokens are base64; anything else cannot have come from IMDS.
                    None => {
                        return Err(NoAnswer::Other(
                            "IMDS returned a token that is not a valid header value".into(),
                        ))
                    }
                }
            }
            let result = http::send(request).await;
            let again = match &result {
                Ok(a) => a.status >= 500 || a.status == 429,
                Err(NoAnswer::Timeout) => retry_timeouts,
                Err(NoAnswer::Connect(_) | NoAnswer::Other(_)) => true,
            };
            if !again || attempt >= attempts {
                return result;
            }
            log::debug!("imds: {method} {path} attempt {attempt} of {attempts} failed; retrying");
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        }
    }

    fn attempts(&self) -> u32 {
        self.config.attempts.max(1)
    }

    /// The error for a request that got no answer at all.
    fn no_answer_error(&self, no_answer: &NoAnswer, session: &Session) -> CredentialsError {
        let endpoint = &self.config.endpoint;
        let attempts = self.attempts();
        let reason = match no_answer {
            NoAnswer::Connect(cause) => format!(
                "IMDS at {endpoint} is unreachable ({cause}, {attempts} attempts): not on EC2? \
                 set credentials another way or AWS_EC2_METADATA_DISABLED=true"
            ),
            NoAnswer::Timeout => match session {
                // The token request already timed out and IMDSv1 does not answer either:
                // either nothing is there, or the hop limit drops our answers.
                Session::V1 { token_status: None } => format!(
                    "IMDS at {endpoint} does not answer: {HOP_LIMIT_HINT}, and the IMDSv1 \
                     fallback timed out too; not on EC2? set credentials another way or \
                     AWS_EC2_METADATA_DISABLED=true"
                ),
                _ => format!(
                    "IMDS at {endpoint} gave no answer within {} ms ({attempts} attempts): \
                     not on EC2? set credentials another way or AWS_EC2_METADATA_DISABLED=true",
                    self.config.timeout.as_millis()
                ),
            },
            NoAnswer::Other(cause) => format!(
                "request to IMDS at {endpoint} failed ({cause}, {attempts} attempts): \
                 check that {endpoint} is the instance metadata service"
            ),
        };
        CredentialsError::failed(NAME, reason, true)
    }

    /// IMDSv1 answered 401: the instance requires IMDSv2, which we could not get.
    fn v1_refused_error(&self, token_status: Option<u16>) -> CredentialsError {
        let endpoint = &self.config.endpoint;
        let why_v1 = match token_status {
            None => HOP_LIMIT_HINT.to_string(),
            Some(status) => format!(
                "the IMDSv2 token request was answered {status}: check that nothing between \
                 us and IMDS (a proxy, an old IMDS emulator) blocks PUT requests"
            ),
        };
        CredentialsError::failed(
            NAME,
            format!("IMDS at {endpoint} requires IMDSv2 (IMDSv1 answered 401), and {why_v1}"),
            true,
        )
    }
}
