//! A container credentials endpoint on 127.0.0.1 (what the ECS agent and the EKS Pod
//! Identity agent serve): [`ContainerEndpoint`] answers GETs of one path with rotating
//! credentials, checks the `Authorization` token (changeable at run time, to test that the
//! token file is re-read), and has the same failure switches as the IMDS emulator.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::imds::{
    rfc3339, Handler, HttpEmulator, IssuedCredentials, OnIssue, Reply, Request, Response, Rotation,
};

/// How a [`ContainerEndpoint`] starts.
#[derive(Clone)]
pub struct ContainerOptions {
    pub addr: SocketAddr,
    /// The path credentials are served at (`/v1/credentials`, `/v2/credentials/ID`).
    pub path: String,
    /// The `Authorization` value required; `None` accepts any request.
    pub authorization: Option<String>,
    pub credentials_lifetime: Duration,
    pub rotation: Duration,
    /// EKS Pod Identity answers carry the account id; ECS answers do not.
    pub account_id: Option<String>,
    pub on_issue: Option<OnIssue>,
}

impl Default for ContainerOptions {
    fn default() -> Self {
        ContainerOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            path: "/v1/credentials".to_owned(),
            authorization: None,
            credentials_lifetime: Duration::from_secs(6 * 3600),
            rotation: Duration::from_secs(3600),
            account_id: Some("123456789012".to_owned()),
            on_issue: None,
        }
    }
}

struct EndpointState {
    path: String,
    authorization: Mutex<Option<String>>,
    account_id: Option<String>,
    rotation: Rotation,
    requests: AtomicUsize,
    unauthorized: AtomicUsize,
    /// The `Authorization` values received, in order (tests check re-reads).
    seen_authorization: Mutex<Vec<Option<String>>>,
}

/// A container credentials endpoint on 127.0.0.1. Stops when dropped.
pub struct ContainerEndpoint {
    http: HttpEmulator,
    state: Arc<EndpointState>,
}

impl ContainerEndpoint {
    /// Starts serving; panics when the address cannot be bound (a test setup error).
    pub fn start(options: ContainerOptions) -> ContainerEndpoint {
        let state = Arc::new(EndpointState {
            path: options.path,
            authorization: Mutex::new(options.authorization),
            account_id: options.account_id,
            rotation: Rotation::new(
                options.credentials_lifetime,
                options.rotation,
                options.on_issue,
            ),
            requests: AtomicUsize::new(0),
            unauthorized: AtomicUsize::new(0),
            seen_authorization: Mutex::new(Vec::new()),
        });
        let handler_state = state.clone();
        let handler: Handler = Arc::new(move |r| handle(&handler_state, r));
        let http = HttpEmulator::start(options.addr, "container-endpoint", handler)
            .unwrap_or_else(|e| panic!("container endpoint: cannot listen: {e}"));
        ContainerEndpoint { http, state }
    }

    /// The full URI: the value for `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    pub fn uri(&self) -> String {
        format!("{}{}", self.http.endpoint(), self.state.path)
    }

    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// Requires `authorization` from now on (`None`: accepts anything).
    pub fn set_authorization(&self, authorization: Option<&str>) {
        *self
            .state
            .authorization
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = authorization.map(str::to_owned);
    }

    /// The `Authorization` values received, in order (`None` where there was none).
    pub fn seen_authorization(&self) -> Vec<Option<String>> {
        self.state
            .seen_authorization
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_outage(&self, on: bool) {
        self.http.set_outage(on);
    }

    pub fn set_refuse_connections(&self, on: bool) {
        self.http.set_refuse_connections(on);
    }

    pub fn set_hang(&self, on: bool) {
        self.http.set_hang(on);
    }

    pub fn fail_next(&self, n: usize, status: u16) {
        self.http.fail_next(n, status);
    }

    pub fn rotate_now(&self) {
        self.state.rotation.rotate_now();
    }

    pub fn set_on_issue(&self, on_issue: Option<OnIssue>) {
        self.state.rotation.set_on_issue(on_issue);
    }

    pub fn issued(&self) -> Vec<IssuedCredentials> {
        self.state.rotation.issued()
    }

    /// Requests that reached the handler.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Requests refused for a wrong or missing `Authorization`.
    pub fn unauthorized(&self) -> usize {
        self.state.unauthorized.load(Ordering::SeqCst)
    }
}

fn handle(state: &EndpointState, r: &Request) -> Reply {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let sent = r.header("authorization").map(str::to_owned);
    state
        .seen_authorization
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(sent.clone());
    if r.method != "GET" {
        return Reply::Answer(Response::new(405, "Method Not Allowed"));
    }
    if r.path != state.path {
        return Reply::Answer(Response::new(404, "Not Found"));
    }
    let required = state
        .authorization
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(required) = required {
        if sent.as_deref() != Some(required.as_str()) {
            state.unauthorized.fetch_add(1, Ordering::SeqCst);
            return Reply::Answer(
                Response::new(
                    401,
                    r#"{"code":"AccessDeniedException","message":"invalid authorization token"}"#,
                )
                .with_header("Content-Type", "application/json"),
            );
        }
    }
    let c = state.rotation.current();
    let mut doc = serde_json::json!({
        "AccessKeyId": c.access_key_id,
        "SecretAccessKey": c.secret_access_key,
        "Token": c.token,
        "Expiration": rfc3339(c.expires_at),
    });
    if let (Some(account), Some(map)) = (&state.account_id, doc.as_object_mut()) {
        map.insert("AccountId".to_owned(), serde_json::json!(account));
    }
    Reply::Answer(
        Response::new(200, doc.to_string()).with_header("Content-Type", "application/json"),
    )
}
