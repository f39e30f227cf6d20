//! An AWS STS emulator on 127.0.0.1 for credential tests: [`StsEmulator`] answers the query
//! protocol's `AssumeRole`, `AssumeRoleWithWebIdentity` and `AssumeRoleWithSAML` on its own
//! thread and tokio runtime (stops on drop), issues fresh random credentials, and lets a test
//! see and steer what happened:
//!
//! - every request is recorded ([`StsRequest`]: action, form parameters, the caller's key id,
//!   whether a session token came with it, whether the signature verified);
//! - `AssumeRole` must be SigV4-signed for service `sts`; the signature is verified
//!   independently of the crate's signer whenever the caller's secret is known (keys the
//!   emulator issued, or [`StsEmulator::trust_key`]); an expired issued key gets
//!   `ExpiredToken`; an optional allow-list refuses other callers with AccessDenied;
//! - as on AWS, a caller using temporary credentials that asks for more than 1 h gets the
//!   role-chaining `ValidationError`;
//! - an expected web identity token / SAML assertion makes any other one `InvalidIdentityToken`
//!   (token-rotation tests);
//! - as on AWS, a signature dated more than 15 minutes off the emulator's clock is refused
//!   (`SignatureDoesNotMatch` "Signature expired"), and every answer carries the emulator's
//!   time in `Date`; [`StsOptions::clock_ahead`] sets that clock ahead of the host's (a host
//!   whose clock is behind);
//! - [`StsEmulator::fail_next`] queues faults, [`StsEmulator::answer_next`] verbatim answers; [`StsOptions::on_issue`] sees every issued set
//!   (wire it to `TestServer::add_session_key` so the S3 server accepts exactly those).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;
use rand::distributions::{Alphanumeric, DistString};
use s3s::Body;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// Credentials the emulator issued (same shape as the IMDS emulator's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expires_at: SystemTime,
}

/// Called with every issued set (e.g. to make the S3 test server accept it).
pub type OnIssue = Arc<dyn Fn(&IssuedCredentials) + Send + Sync>;

/// A fault [`StsEmulator::fail_next`] makes the next requests answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StsFault {
    /// 403 AccessDenied "... is not authorized to perform: sts:AssumeRole on resource ...".
    AccessDenied,
    /// 400 ExpiredToken: the caller's credentials expired.
    ExpiredToken,
    /// 400 InvalidIdentityToken.
    InvalidIdentityToken,
    /// 400 Throttling "Rate exceeded".
    Throttling,
    /// 500 InternalFailure.
    ServerError,
    /// 400 ValidationError for a DurationSeconds above the chained-role limit.
    ChainedDurationTooLong,
    /// 400 ValidationError whose message echoes the request's token and the caller's session
    /// token, and whose body carries a `<SessionToken>`: redaction tests.
    ValidationEchoingSecrets,
}

/// Configuration of a [`StsEmulator`].
#[derive(Clone, Default)]
pub struct StsOptions {
    /// Lifetime of issued credentials; `None`: the request's DurationSeconds, else 1 h.
    pub lifetime: Option<Duration>,
    /// When set, AssumeRole callers must be one of these key ids (others: AccessDenied).
    pub allowed_callers: Option<Vec<String>>,
    /// Called with every issued set, before the answer leaves.
    pub on_issue: Option<OnIssue>,
    /// How far the emulator's clock (the `Date` it answers with, the time signatures are
    /// checked against) runs ahead of this host's.
    pub clock_ahead: Duration,
}

/// One request as the emulator saw it.
#[derive(Clone, Debug)]
pub struct StsRequest {
    pub action: String,
    /// The decoded form body (`RoleArn`, `RoleSessionName`, `ExternalId`, `DurationSeconds`,
    /// `WebIdentityToken`, `SAMLAssertion`, ...).
    pub params: BTreeMap<String, String>,
    /// Key id of the SigV4 credential scope; `None` when unsigned.
    pub caller_key: Option<String>,
    /// Service and region of the credential scope.
    pub scope_service: Option<String>,
    pub scope_region: Option<String>,
    /// Whether `x-amz-security-token` came with the request.
    pub had_session_token: bool,
    /// `Some(true/false)` when the caller's secret was known and the signature was checked.
    pub signature_valid: Option<bool>,
    /// The signature's date (`x-amz-date`), when signed.
    pub signed_at: Option<SystemTime>,
}

impl StsRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct State {
    requests: Vec<StsRequest>,
    faults: VecDeque<StsFault>,
    /// Verbatim answers queued by [`StsEmulator::answer_next`] (recorded-traffic replays).
    scripted: VecDeque<Answer>,
    /// Secrets (and, for issued keys, token and expiry) of callers the emulator can verify.
    keys: HashMap<String, KnownKey>,
    allowed: Option<Vec<String>>,
    expected_token: Option<String>,
    expected_assertion: Option<String>,
    issued: Vec<IssuedCredentials>,
}

#[derive(Clone)]
struct KnownKey {
    secret: String,
    session: Option<(String, SystemTime)>,
}

struct Shared {
    state: Mutex<State>,
    lifetime: Option<Duration>,
    on_issue: Option<OnIssue>,
    clock_ahead: Duration,
}

/// How far a signature's date may be from the server's clock (AWS's rule).
const SIGNATURE_WINDOW: Duration = Duration::from_secs(15 * 60);

impl Shared {
    /// The emulator's clock.
    fn now(&self) -> SystemTime {
        SystemTime::now() + self.clock_ahead
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running STS emulator. Stops when dropped.
pub struct StsEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StsEmulator {
    /// Starts on a free port of 127.0.0.1. Panics if it cannot listen.
    pub fn start(options: StsOptions) -> StsEmulator {
        let listener = StdTcpListener::bind("127.0.0.1:0").expect("sts emulator: bind");
        listener
            .set_nonblocking(true)
            .expect("sts emulator: nonblocking");
        let addr = listener.local_addr().expect("sts emulator: local addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                allowed: options.allowed_callers.clone(),
                ..State::default()
            }),
            lifetime: options.lifetime,
            on_issue: options.on_issue.clone(),
            clock_ahead: options.clock_ahead,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sts-emulator")
            .enable_all()
            .build()
            .expect("sts emulator: runtime");
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sts-emulator".into())
            .spawn(move || {
                runtime.block_on(serve(listener, serving, shutdown_rx));
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("sts emulator: thread");
        StsEmulator {
            addr,
            shared,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for `--sts-endpoint-url` / `StsConfig::endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets the emulator verify signatures made with this long-term key pair.
    pub fn trust_key(&self, access_key: &str, secret_key: &str) {
        self.shared.state().keys.insert(
            access_key.to_owned(),
            KnownKey {
                secret: secret_key.to_owned(),
                session: None,
            },
        );
    }

    /// Lets the emulator verify signatures of a temporary key (token checked too).
    pub fn trust_session_key(&self, access_key: &str, secret_key: &str, token: &str) {
        self.shared.state().keys.insert(
            access_key.to_owned(),
            KnownKey {
                secret: secret_key.to_owned(),
                session: Some((
                    token.to_owned(),
                    SystemTime::now() + Duration::from_secs(3600),
                )),
            },
        );
    }

    /// Adds a key id to the AssumeRole allow-list (creating the list).
    pub fn allow_caller(&self, access_key: &str) {
        self.shared
            .state()
            .allowed
            .get_or_insert_with(Vec::new)
            .push(access_key.to_owned());
    }

    /// From now on, AssumeRoleWithWebIdentity accepts only this token.
    pub fn expect_web_identity_token(&self, token: &str) {
        self.shared.state().expected_token = Some(token.to_owned());
    }

    /// From now on, AssumeRoleWithSAML accepts only this assertion.
    pub fn expect_saml_assertion(&self, assertion: &str) {
        self.shared.state().expected_assertion = Some(assertion.to_owned());
    }

    /// The next `n` requests answer `fault` (after being recorded).
    pub fn fail_next(&self, n: usize, fault: StsFault) {
        let mut state = self.shared.state();
        for _ in 0..n {
            state.faults.push_back(fault.clone());
        }
    }

    /// The next request gets exactly this status and body (after being recorded): replays
    /// of recorded STS traffic.
    pub fn answer_next(&self, status: u16, body: &str) {
        self.shared
            .state()
            .scripted
            .push_back((status, body.to_owned()));
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<StsRequest> {
        self.shared.state().requests.clone()
    }

    /// Requests of `action` so far.
    pub fn count(&self, action: &str) -> usize {
        self.shared
            .state()
            .requests
            .iter()
            .filter(|r| r.action == action)
            .count()
    }

    /// Every set of credentials issued so far.
    pub fn issued(&self) -> Vec<IssuedCredentials> {
        self.shared.state().issued.clone()
    }
}

impl Drop for StsEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: StdTcpListener, shared: Arc<Shared>, mut shutdown: oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("sts emulator: listener");
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// An answer: status and XML body.
type Answer = (u16, String);

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let (parts, incoming) = req.into_parts();
    let mut body = Body::from(incoming);
    let bytes = body.store_all_limited(1 << 20).await.unwrap_or_default();
    let (status, xml) = answer(shared, &parts, &bytes);
    let mut response = Response::new(Body::from(xml));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/xml"),
    );
    if let Ok(date) = httpdate::fmt_http_date(shared.now()).parse() {
        response.headers_mut().insert("date", date);
    }
    response
}

fn answer(shared: &Shared, parts: &hyper::http::request::Parts, body: &Bytes) -> Answer {
    let params = parse_form(body);
    let action = params.get("Action").cloned().unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let auth = header("authorization").and_then(|a| parse_authorization(&a));
    let token = header("x-amz-security-token");
    let signed_at = header("x-amz-date").and_then(|d| parse_amz_date(&d));
    let mut state = shared.state();

    let known = auth
        .as_ref()
        .and_then(|a| state.keys.get(&a.access_key).cloned());
    let signature_valid = match (&auth, &known) {
        (Some(a), Some(k)) => Some(verify(parts, body, a, &k.secret)),
        _ => None,
    };
    let record = StsRequest {
        action: action.clone(),
        params: params.clone(),
        caller_key: auth.as_ref().map(|a| a.access_key.clone()),
        scope_service: auth.as_ref().map(|a| a.service.clone()),
        scope_region: auth.as_ref().map(|a| a.region.clone()),
        had_session_token: token.is_some(),
        signature_valid,
        signed_at,
    };
    state.requests.push(record);

    if let Some(scripted) = state.scripted.pop_front() {
        return scripted;
    }
    if let Some(fault) = state.faults.pop_front() {
        return fault_answer(&fault, &params, token.as_deref());
    }
    let role = params.get("RoleArn").cloned().unwrap_or_default();
    match action.as_str() {
        "AssumeRole" => {
            let Some(a) = auth else {
                return error(
                    403,
                    "MissingAuthenticationToken",
                    "Request is missing Authentication Token",
                );
            };
            if a.service != "sts" {
                return error(
                    403,
                    "SignatureDoesNotMatch",
                    &format!(
                        "Credential should be scoped to correct service: 'sts', not '{}'",
                        a.service
                    ),
                );
            }
            if let Some(refusal) = signed_at.and_then(|at| date_refusal(at, shared.now())) {
                return refusal;
            }
            if signature_valid == Some(false) {
                return error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.");
            }
            if let Some(KnownKey {
                session: Some((expected, expires)),
                ..
            }) = &known
            {
                if token.as_deref() != Some(expected.as_str()) {
                    return error(
                        403,
                        "InvalidClientTokenId",
                        "The security token included in the request is invalid.",
                    );
                }
                if *expires <= SystemTime::now() {
                    return error(
                        400,
                        "ExpiredToken",
                        "The security token included in the request is expired",
                    );
                }
            }
            if let Some(allowed) = &state.allowed {
                if !allowed.contains(&a.access_key) {
                    return access_denied(&a.access_key, &role);
                }
            }
            let duration = params
                .get("DurationSeconds")
                .and_then(|d| d.parse::<u64>().ok());
            if token.is_some() && duration.is_some_and(|d| d > 3600) {
                return chained_duration();
            }
            issue(shared, &mut state, &action, duration)
        }
        "AssumeRoleWithWebIdentity" => {
            let given = params.get("WebIdentityToken").cloned().unwrap_or_default();
            if given.is_empty() {
                return error(400, "ValidationError", "WebIdentityToken is required");
            }
            if state.expected_token.as_ref().is_some_and(|t| *t != given) {
                return error(
                    400,
                    "InvalidIdentityToken",
                    "Token is not the one the provider issued",
                );
            }
            let duration = params.get("DurationSeconds").and_then(|d| d.parse().ok());
            issue(shared, &mut state, &action, duration)
        }
        "AssumeRoleWithSAML" => {
            let given = params.get("SAMLAssertion").cloned().unwrap_or_default();
            if given.is_empty() || !params.contains_key("PrincipalArn") {
                return error(
                    400,
                    "ValidationError",
                    "SAMLAssertion and PrincipalArn are required",
                );
            }
            if state
                .expected_assertion
                .as_ref()
                .is_some_and(|t| *t != given)
            {
                return error(400, "InvalidIdentityToken", "Invalid SAML assertion");
            }
            let duration = params.get("DurationSeconds").and_then(|d| d.parse().ok());
            issue(shared, &mut state, &action, duration)
        }
        other => error(
            400,
            "InvalidAction",
            &format!("Could not find operation {other}"),
        ),
    }
}

fn issue(shared: &Shared, state: &mut State, action: &str, duration: Option<u64>) -> Answer {
    let lifetime = shared
        .lifetime
        .unwrap_or_else(|| Duration::from_secs(duration.unwrap_or(3600)));
    let mut rng = rand::thread_rng();
    let issued = IssuedCredentials {
        access_key_id: format!(
            "ASIA{}",
            Alphanumeric.sample_string(&mut rng, 16).to_uppercase()
        ),
        secret_access_key: Alphanumeric.sample_string(&mut rng, 40),
        session_token: format!("FQoG{}", Alphanumeric.sample_string(&mut rng, 200)),
        expires_at: SystemTime::now() + lifetime,
    };
    state.keys.insert(
        issued.access_key_id.clone(),
        KnownKey {
            secret: issued.secret_access_key.clone(),
            session: Some((issued.session_token.clone(), issued.expires_at)),
        },
    );
    state.issued.push(issued.clone());
    if let Some(on_issue) = &shared.on_issue {
        on_issue(&issued);
    }
    let expiration = time::OffsetDateTime::from(issued.expires_at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    (
        200,
        format!(
            "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <{action}Result><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn>\
             </AssumedRoleUser><Credentials><AccessKeyId>{}</AccessKeyId>\
             <SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken>\
             <Expiration>{expiration}</Expiration></Credentials></{action}Result>\
             <ResponseMetadata><RequestId>emulated</RequestId></ResponseMetadata></{action}Response>",
            issued.access_key_id, issued.secret_access_key, issued.session_token
        ),
    )
}

fn fault_answer(
    fault: &StsFault,
    params: &BTreeMap<String, String>,
    token: Option<&str>,
) -> Answer {
    let role = params.get("RoleArn").map(String::as_str).unwrap_or("");
    match fault {
        StsFault::AccessDenied => access_denied("AKIDCALLER", role),
        StsFault::ExpiredToken => error(
            400,
            "ExpiredToken",
            "The security token included in the request is expired",
        ),
        StsFault::InvalidIdentityToken => error(
            400,
            "InvalidIdentityToken",
            "No OpenIDConnect provider found in your account",
        ),
        StsFault::Throttling => error(400, "Throttling", "Rate exceeded"),
        StsFault::ServerError => error(500, "InternalFailure", "An internal error occurred"),
        StsFault::ChainedDurationTooLong => chained_duration(),
        StsFault::ValidationEchoingSecrets => {
            let echoed = params
                .get("WebIdentityToken")
                .or_else(|| params.get("SAMLAssertion"))
                .map(String::as_str)
                .or(token)
                .unwrap_or("");
            (
                400,
                format!(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code>\
                     <Message>1 validation error detected: Value '{}' at 'token' failed to \
                     satisfy constraint; session {}</Message><SessionToken>{}</SessionToken>\
                     </Error><RequestId>emulated</RequestId></ErrorResponse>",
                    xml_escape(echoed),
                    xml_escape(token.unwrap_or("")),
                    xml_escape(echoed)
                ),
            )
        }
    }
}

/// AWS's refusal of a signature dated more than [`SIGNATURE_WINDOW`] from `now`.
fn date_refusal(signed_at: SystemTime, now: SystemTime) -> Option<Answer> {
    let amz = |t: SystemTime| {
        let t = time::OffsetDateTime::from(t);
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    let message = if signed_at + SIGNATURE_WINDOW < now {
        format!(
            "Signature expired: {} is now earlier than {} ({} - 15 min.)",
            amz(signed_at),
            amz(now - SIGNATURE_WINDOW),
            amz(now)
        )
    } else if signed_at > now + SIGNATURE_WINDOW {
        format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            amz(signed_at),
            amz(now + SIGNATURE_WINDOW),
            amz(now)
        )
    } else {
        return None;
    };
    Some(error(403, "SignatureDoesNotMatch", &message))
}

/// `20150830T123600Z` → the time it names.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(text, format)
        .ok()
        .map(|t| t.assume_utc().into())
}

fn access_denied(caller: &str, role: &str) -> Answer {
    error(
        403,
        "AccessDenied",
        &format!(
            "User: arn:aws:iam::123456789012:user/{caller} is not authorized to perform: \
             sts:AssumeRole on resource: {role}"
        ),
    )
}

fn chained_duration() -> Answer {
    error(
        400,
        "ValidationError",
        "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
    )
}

fn error(status: u16, code: &str, message: &str) -> Answer {
    (
        status,
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
             <Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error>\
             <RequestId>emulated</RequestId></ErrorResponse>",
            xml_escape(message)
        ),
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn parse_form(body: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

struct Authorization {
    access_key: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v.to_owned()),
            "SignedHeaders" => signed = Some(v.to_owned()),
            "Signature" => signature = Some(v.to_owned()),
            _ => {}
        }
    }
    let credential = credential?;
    let mut scope = credential.split('/');
    Some(Authorization {
        access_key: scope.next()?.to_owned(),
        date: scope.next()?.to_owned(),
        region: scope.next()?.to_owned(),
        service: scope.next()?.to_owned(),
        signed_headers: signed?.split(';').map(str::to_owned).collect(),
        signature: signature?,
    })
}

/// Recomputes the SigV4 signature of a POST with an empty query, independently of the crate.
fn verify(
    parts: &hyper::http::request::Parts,
    body: &[u8],
    auth: &Authorization,
    secret: &str,
) -> bool {
    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        let value = parts
            .headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(",");
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let Some(amz_date) = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        parts.method,
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        canonical_headers,
        auth.signed_headers.join(";"),
        hex::encode(Sha256::digest(body))
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    for part in [auth.region.as_str(), auth.service.as_str(), "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    hex::encode(hmac(&key, string_to_sign.as_bytes())) == auth.signature
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("hmac takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}
