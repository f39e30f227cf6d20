//! An AWS IAM Identity Center emulator on 127.0.0.1 for credential tests: [`SsoEmulator`]
//! serves both the portal's `GetRoleCredentials` (`GET /federation/credentials`, bearer
//! token in `x-amz-sso_bearer_token`) and SSO-OIDC's `CreateToken` (`POST /token`, refresh
//! grant) on its own thread and tokio runtime (stops on drop). Point both
//! `AWS_ENDPOINT_URL_SSO` and `AWS_ENDPOINT_URL_SSO_OIDC` at [`SsoEmulator::endpoint`].
//!
//! Only tokens the test registered ([`SsoEmulator::accept_access_token`]) or the emulator
//! issued through a refresh are accepted; an expired one gets 401 `UnauthorizedException`
//! as from AWS. A refresh rotates the refresh token, as SSO-OIDC does. Counters and
//! [`SsoOptions::on_issue`] (wire it to `TestServer::add_session_key`) let a test see what
//! happened.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;
use rand::distributions::{Alphanumeric, DistString};
use s3s::Body;
use tokio::sync::oneshot;

/// The same issued-credentials record and callback as the STS emulator's, so one sink
/// serves every emulator.
pub use super::sts::{IssuedCredentials, OnIssue};

/// Configuration of an [`SsoEmulator`].
#[derive(Clone, Default)]
pub struct SsoOptions {
    /// Lifetime of issued role credentials; default 1 h.
    pub lifetime: Option<Duration>,
    /// Lifetime of access tokens a refresh issues; default 8 h (IAM Identity Center's).
    pub token_lifetime: Option<Duration>,
    /// Called with every issued set, before the answer leaves.
    pub on_issue: Option<OnIssue>,
}

/// One `GetRoleCredentials` call as the emulator saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleRequest {
    pub account_id: Option<String>,
    pub role_name: Option<String>,
    pub bearer_token: Option<String>,
}

/// A refresh grant the emulator honours.
#[derive(Clone)]
struct Grant {
    client_id: String,
    client_secret: String,
}

#[derive(Default)]
struct State {
    access_tokens: HashMap<String, SystemTime>,
    refresh_tokens: HashMap<String, Grant>,
    role_requests: Vec<RoleRequest>,
    create_token_calls: usize,
    issued: Vec<IssuedCredentials>,
}

struct Shared {
    state: Mutex<State>,
    options: SsoOptions,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running emulator.
pub struct SsoEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SsoEmulator {
    /// Starts on an ephemeral port of 127.0.0.1.
    pub fn start(options: SsoOptions) -> SsoEmulator {
        let listener = StdTcpListener::bind("127.0.0.1:0").expect("sso emulator: bind");
        listener
            .set_nonblocking(true)
            .expect("sso emulator: nonblocking");
        let addr = listener.local_addr().expect("sso emulator: local addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            options,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sso-emulator")
            .enable_all()
            .build()
            .expect("sso emulator: runtime");
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sso-emulator".into())
            .spawn(move || {
                runtime.block_on(serve(listener, serving, shutdown_rx));
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("sso emulator: thread");
        SsoEmulator {
            addr,
            shared,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for both `AWS_ENDPOINT_URL_SSO` and `..._SSO_OIDC`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Accepts `token` as a bearer token until `expires_at` (what `aws sso login` obtained).
    pub fn accept_access_token(&self, token: &str, expires_at: SystemTime) {
        self.shared
            .state()
            .access_tokens
            .insert(token.to_owned(), expires_at);
    }

    /// Accepts `refresh_token` from the client registration `client_id`/`client_secret`.
    pub fn accept_refresh_token(&self, refresh_token: &str, client_id: &str, client_secret: &str) {
        self.shared.state().refresh_tokens.insert(
            refresh_token.to_owned(),
            Grant {
                client_id: client_id.to_owned(),
                client_secret: client_secret.to_owned(),
            },
        );
    }

    /// Every `GetRoleCredentials` call so far.
    pub fn role_requests(&self) -> Vec<RoleRequest> {
        self.shared.state().role_requests.clone()
    }

    /// How many `CreateToken` calls arrived (successful or not).
    pub fn create_token_calls(&self) -> usize {
        self.shared.state().create_token_calls
    }

    /// Every set of role credentials issued so far.
    pub fn issued(&self) -> Vec<IssuedCredentials> {
        self.shared.state().issued.clone()
    }
}

impl Drop for SsoEmulator {
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
    let listener = tokio::net::TcpListener::from_std(listener).expect("sso emulator: listener");
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

/// Status, optional `x-amzn-ErrorType`, JSON body.
type Answer = (u16, Option<&'static str>, serde_json::Value);

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let (parts, incoming) = req.into_parts();
    let mut body = Body::from(incoming);
    let bytes = body.store_all_limited(1 << 20).await.unwrap_or_default();
    let (status, error_type, json) = match (parts.method.as_str(), parts.uri.path()) {
        ("GET", "/federation/credentials") => get_role_credentials(shared, &parts),
        ("POST", "/token") => create_token(shared, &bytes),
        _ => (
            404,
            Some("ResourceNotFoundException"),
            serde_json::json!({"message": "no such operation"}),
        ),
    };
    let mut response = Response::new(Body::from(json.to_string()));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(t) = error_type {
        headers.insert(
            "x-amzn-errortype",
            hyper::header::HeaderValue::from_static(t),
        );
    }
    response
}

fn random(n: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), n)
}

fn get_role_credentials(shared: &Shared, parts: &hyper::http::request::Parts) -> Answer {
    let query: BTreeMap<String, String> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            (decode(k), decode(v))
        })
        .collect();
    let bearer = parts
        .headers
        .get("x-amz-sso_bearer_token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut state = shared.state();
    state.role_requests.push(RoleRequest {
        account_id: query.get("account_id").cloned(),
        role_name: query.get("role_name").cloned(),
        bearer_token: bearer.clone(),
    });
    let valid = bearer
        .as_ref()
        .and_then(|t| state.access_tokens.get(t))
        .is_some_and(|expires| *expires > SystemTime::now());
    if !valid {
        return (
            401,
            Some("UnauthorizedException"),
            serde_json::json!({"message": "Session token not found or invalid"}),
        );
    }
    if !query.contains_key("account_id") || !query.contains_key("role_name") {
        return (
            400,
            Some("InvalidRequestException"),
            serde_json::json!({"message": "account_id and role_name are required"}),
        );
    }
    let expires_at =
        SystemTime::now() + shared.options.lifetime.unwrap_or(Duration::from_secs(3600));
    let issued = IssuedCredentials {
        access_key_id: format!("ASIA{}", random(16).to_uppercase()),
        secret_access_key: random(40),
        session_token: random(120),
        expires_at,
    };
    if let Some(on_issue) = &shared.options.on_issue {
        on_issue(&issued);
    }
    state.issued.push(issued.clone());
    let millis = expires_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    (
        200,
        None,
        serde_json::json!({"roleCredentials": {
            "accessKeyId": issued.access_key_id,
            "secretAccessKey": issued.secret_access_key,
            "sessionToken": issued.session_token,
            "expiration": millis,
        }}),
    )
}

fn create_token(shared: &Shared, body: &[u8]) -> Answer {
    let mut state = shared.state();
    state.create_token_calls += 1;
    let invalid_grant = || {
        (
            400,
            Some("InvalidGrantException"),
            serde_json::json!({"error": "invalid_grant", "error_description": "Invalid refresh token provided"}),
        )
    };
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (
            400,
            Some("InvalidRequestException"),
            serde_json::json!({"error": "invalid_request"}),
        );
    };
    let field = |k: &str| request.get(k).and_then(|v| v.as_str()).unwrap_or("");
    if field("grantType") != "refresh_token" {
        return (
            400,
            Some("UnsupportedGrantTypeException"),
            serde_json::json!({"error": "unsupported_grant_type"}),
        );
    }
    let Some(grant) = state.refresh_tokens.get(field("refreshToken")).cloned() else {
        return invalid_grant();
    };
    if grant.client_id != field("clientId") || grant.client_secret != field("clientSecret") {
        return (
            400,
            Some("InvalidClientException"),
            serde_json::json!({"error": "invalid_client"}),
        );
    }
    let lifetime = shared
        .options
        .token_lifetime
        .unwrap_or(Duration::from_secs(8 * 3600));
    let access_token = format!("aoa{}", random(60));
    let refresh_token = format!("aor{}", random(60));
    state.refresh_tokens.remove(field("refreshToken"));
    state.refresh_tokens.insert(refresh_token.clone(), grant);
    state
        .access_tokens
        .insert(access_token.clone(), SystemTime::now() + lifetime);
    (
        200,
        None,
        serde_json::json!({
            "accessToken": access_token,
            "tokenType": "Bearer",
            "expiresIn": lifetime.as_secs(),
            "refreshToken": refresh_token,
        }),
    )
}
