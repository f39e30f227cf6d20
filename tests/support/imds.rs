//! An EC2 instance metadata service (IMDS) on 127.0.0.1 for tests and demos: [`ImdsEmulator`]
//! speaks IMDSv2 (token PUT, token-checked GETs) and IMDSv1, hands out rotating role
//! credentials, and injects the failures real instances show: IMDSv1-only proxies, v2-only
//! instances, outages (connections refused or 503), hangs (the container hop-limit symptom),
//! no role attached, odd documents.
//!
//! Self-contained (no `super::`), so `examples/s3server.rs` includes it by path. The HTTP
//! plumbing ([`HttpEmulator`]) and credential rotation ([`Rotation`]) are public because the
//! container endpoint emulator (`container.rs`) is built on them.
//!
//! Each emulator runs on its own thread and tokio runtime, so plain `#[test]` and
//! `#[tokio::test]` functions can both use it; dropping it stops the thread. Every loop is
//! bounded (request size, hang duration, read timeouts) and bad input gets a 400, never a
//! panic.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rand::distributions::{Alphanumeric, DistString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The largest request head accepted (IMDS requests are a few hundred bytes).
const MAX_HEAD: usize = 16 * 1024;
/// The largest request body read (and discarded).
const MAX_BODY: usize = 64 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a hung connection is held open: well past any client timeout, bounded so a
/// forgotten hang cannot keep a test alive.
const MAX_HANG: Duration = Duration::from_secs(120);
/// How often waiting loops look at the control flags.
const POLL: Duration = Duration::from_millis(10);
/// The longest token lifetime real IMDS grants.
const MAX_TOKEN_TTL_SECS: u64 = 21_600;

/// Locks a mutex, also after a panic elsewhere poisoned it (test state stays usable).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- HTTP plumbing ------------------------------------------------------------------------

/// A parsed request: method, path (with query), headers with lowercase names.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer to send.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// What a handler decides for one request.
pub enum Reply {
    Answer(Response),
    /// Read the request, never answer (until the emulator stops or [`MAX_HANG`] passes).
    Hang,
}

/// Decides the answer to one request.
pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// Failure switches every emulator has.
#[derive(Default)]
pub struct Faults {
    /// Close the listening socket: connections are refused until cleared.
    refuse: AtomicBool,
    /// Accept and read every request, answer none.
    hang: AtomicBool,
    /// Answer every request 503.
    outage: AtomicBool,
    /// Statuses to answer the next requests with, one each.
    fail_next: Mutex<VecDeque<u16>>,
}

/// A tiny HTTP/1.1 server on its own thread: one request per connection
/// (`Connection: close`), answers from a [`Handler`], with [`Faults`] applied first.
pub struct HttpEmulator {
    addr: SocketAddr,
    faults: Arc<Faults>,
    shutdown: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpEmulator {
    /// Binds `addr` (`127.0.0.1:0` for a free port) and serves `handler`; `name` names the
    /// thread.
    pub fn start(addr: SocketAddr, name: &str, handler: Handler) -> std::io::Result<Self> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let faults = Arc::new(Faults::default());
        let (tx, rx) = watch::channel(false);
        let loop_faults = faults.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                runtime.block_on(accept_loop(std_listener, addr, handler, loop_faults, rx));
                runtime.shutdown_timeout(Duration::from_millis(200));
            })?;
        Ok(HttpEmulator {
            addr,
            faults,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// While on, nothing listens: connections are refused (a host without IMDS).
    pub fn set_refuse_connections(&self, on: bool) {
        self.faults.refuse.store(on, Ordering::SeqCst);
    }

    /// While on, every request is read and never answered.
    pub fn set_hang(&self, on: bool) {
        self.faults.hang.store(on, Ordering::SeqCst);
    }

    /// While on, every request is answered 503.
    pub fn set_outage(&self, on: bool) {
        self.faults.outage.store(on, Ordering::SeqCst);
    }

    /// Answers the next `n` requests with `status` (then normally again).
    pub fn fail_next(&self, n: usize, status: u16) {
        lock(&self.faults.fail_next).extend(std::iter::repeat_n(status, n));
    }
}

impl Drop for HttpEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    std_listener: std::net::TcpListener,
    addr: SocketAddr,
    handler: Handler,
    faults: Arc<Faults>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut listener = TcpListener::from_std(std_listener).ok();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let refuse = faults.refuse.load(Ordering::SeqCst);
        if refuse {
            // Dropping the socket makes the kernel refuse connections to the port.
            listener = None;
        } else if listener.is_none() {
            // Rebinding can briefly fail; try again on the next turn.
            listener = TcpListener::bind(addr).await.ok();
        }
        let Some(l) = listener.as_ref() else {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(POLL) => continue,
            }
        };
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(POLL) => continue,
            accepted = l.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let handler = handler.clone();
                let faults = faults.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(serve_connection(stream, handler, faults, shutdown));
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    handler: Handler,
    faults: Arc<Faults>,
    shutdown: watch::Receiver<bool>,
) {
    let request = match tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)).await {
        Ok(Ok(request)) => request,
        Ok(Err(why)) => {
            let _ = write_response(&mut stream, &Response::new(400, why)).await;
            return;
        }
        Err(_) => return,
    };
    if faults.hang.load(Ordering::SeqCst) {
        hang(shutdown).await;
        return;
    }
    let injected = lock(&faults.fail_next).pop_front();
    let reply = if let Some(status) = injected {
        Reply::Answer(Response::new(status, "injected failure"))
    } else if faults.outage.load(Ordering::SeqCst) {
        Reply::Answer(Response::new(503, "Service Unavailable"))
    } else {
        handler(&request)
    };
    match reply {
        Reply::Answer(response) => {
            let _ = write_response(&mut stream, &response).await;
        }
        Reply::Hang => hang(shutdown).await,
    }
}

/// Holds a connection open without answering, until shutdown or [`MAX_HANG`].
async fn hang(mut shutdown: watch::Receiver<bool>) {
    let _ = tokio::time::timeout(MAX_HANG, shutdown.changed()).await;
}

async fn read_request(stream: &mut TcpStream) -> Result<Request, String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err("request head too large".into());
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            return Err("connection closed mid-request".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "request head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let mut start = lines.next().unwrap_or_default().split(' ');
    let (method, path) = match (start.next(), start.next()) {
        (Some(m), Some(p)) if !m.is_empty() && p.starts_with('/') => (m.to_owned(), p.to_owned()),
        _ => return Err("malformed request line".into()),
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse::<usize>().map_err(|_| "bad content-length"))
        .transpose()?
        .unwrap_or(0);
    if length > MAX_BODY {
        return Err("request body too large".into());
    }
    let mut have = buf.len() - (head_end + 4);
    while have < length {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            return Err("connection closed mid-body".into());
        }
        have += n;
    }
    Ok(Request {
        method,
        path,
        headers,
    })
}

async fn write_response(stream: &mut TcpStream, r: &Response) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        r.body.len()
    );
    if !r
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: text/plain\r\n");
    }
    for (name, value) in &r.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(r.body.as_bytes()).await?;
    stream.shutdown().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

// ---- credentials rotation -----------------------------------------------------------------

/// One set of credentials an emulator handed out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub token: String,
    pub issued_at: SystemTime,
    /// Whole seconds, exactly what the `Expiration` field says.
    pub expires_at: SystemTime,
}

/// Called for every newly issued set, before any client sees it: wire it to
/// `TestServer::add_session_key` so the S3 server accepts exactly what was issued.
pub type OnIssue = Arc<dyn Fn(&IssuedCredentials) + Send + Sync>;

/// An [`OnIssue`] that makes `server` accept every set the emulator issues.
pub fn accepted_by(server: &Arc<super::TestServer>) -> OnIssue {
    let server = Arc::clone(server);
    Arc::new(move |c| {
        server.add_session_key(
            &c.access_key_id,
            &c.secret_access_key,
            &c.token,
            c.expires_at,
        )
    })
}

/// Issues credentials on demand: the current set is reused until it is `period` old, then a
/// new one is minted, valid `lifetime` from its issue (so with lifetime 30 s and period
/// 10 s, every answer has at least 20 s left, as real IMDS keeps a margin).
pub struct Rotation {
    lifetime: Duration,
    period: Duration,
    state: Mutex<RotationState>,
    on_issue: Mutex<Option<OnIssue>>,
}

struct RotationState {
    current: Option<IssuedCredentials>,
    next_rotation: SystemTime,
    issued: Vec<IssuedCredentials>,
}

impl Rotation {
    pub fn new(lifetime: Duration, period: Duration, on_issue: Option<OnIssue>) -> Self {
        Rotation {
            lifetime,
            period,
            state: Mutex::new(RotationState {
                current: None,
                next_rotation: SystemTime::UNIX_EPOCH,
                issued: Vec::new(),
            }),
            on_issue: Mutex::new(on_issue),
        }
    }

    /// The credentials to answer with now, minting a new set when due.
    pub fn current(&self) -> IssuedCredentials {
        let now = SystemTime::now();
        let minted = {
            let mut state = lock(&self.state);
            match &state.current {
                Some(c) if now < state.next_rotation => return c.clone(),
                _ => {}
            }
            let fresh = mint(now, self.lifetime);
            state.current = Some(fresh.clone());
            state.next_rotation = now + self.period;
            state.issued.push(fresh.clone());
            fresh
        };
        // Outside the state lock: the callback may take the S3 server's locks.
        let callback = lock(&self.on_issue).clone();
        if let Some(callback) = callback {
            callback(&minted);
        }
        minted
    }

    /// The next request gets a new set, whatever the period says.
    pub fn rotate_now(&self) {
        lock(&self.state).next_rotation = SystemTime::UNIX_EPOCH;
    }

    /// Every set issued so far, oldest first.
    pub fn issued(&self) -> Vec<IssuedCredentials> {
        lock(&self.state).issued.clone()
    }

    /// Replaces the callback; sets issued before are not replayed.
    pub fn set_on_issue(&self, on_issue: Option<OnIssue>) {
        *lock(&self.on_issue) = on_issue;
    }
}

fn random(n: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), n)
}

fn mint(now: SystemTime, lifetime: Duration) -> IssuedCredentials {
    let expires = now + lifetime;
    let secs = expires
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    IssuedCredentials {
        access_key_id: format!("ASIA{}", random(16).to_uppercase()),
        secret_access_key: random(40),
        token: format!("IQoJb3JpZ2luX2VjE{}", random(120)),
        issued_at: now,
        expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
    }
}

/// RFC 3339 in whole seconds, as IMDS writes times.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// The JSON credentials document IMDS answers with.
pub fn imds_document(c: &IssuedCredentials) -> String {
    serde_json::json!({
        "Code": "Success",
        "LastUpdated": rfc3339(c.issued_at),
        "Type": "AWS-HMAC",
        "AccessKeyId": c.access_key_id,
        "SecretAccessKey": c.secret_access_key,
        "Token": c.token,
        "Expiration": rfc3339(c.expires_at),
    })
    .to_string()
}

// ---- the IMDS emulator --------------------------------------------------------------------

/// Which IMDS versions the emulated instance speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImdsMode {
    /// The default of most instances: v2 with a token, v1 without.
    V1AndV2,
    /// `--http-tokens required`: GETs without a token get 401.
    V2Only,
    /// An old IMDS or a proxy that blocks PUT: the token request gets
    /// [`ImdsOptions::token_refusal_status`] (403 or 405).
    V1Only,
    /// `--http-endpoint disabled`: everything gets 403.
    Disabled,
}

/// How an [`ImdsEmulator`] starts.
#[derive(Clone)]
pub struct ImdsOptions {
    pub addr: SocketAddr,
    pub mode: ImdsMode,
    /// The instance profile's role.
    pub role_name: String,
    /// The longest token lifetime granted (requests asking more get this).
    pub token_ttl: Duration,
    /// How long each issued set is valid.
    pub credentials_lifetime: Duration,
    /// How old the current set may get before a new one is issued.
    pub rotation: Duration,
    pub region: String,
    /// Status of the token PUT in [`ImdsMode::V1Only`] (403 or 405 as old proxies answer).
    pub token_refusal_status: u16,
    pub on_issue: Option<OnIssue>,
}

impl Default for ImdsOptions {
    fn default() -> Self {
        ImdsOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            mode: ImdsMode::V1AndV2,
            role_name: "s3rolefs-test-role".to_owned(),
            token_ttl: Duration::from_secs(MAX_TOKEN_TTL_SECS),
            credentials_lifetime: Duration::from_secs(6 * 3600),
            rotation: Duration::from_secs(3600),
            region: "us-east-1".to_owned(),
            token_refusal_status: 403,
            on_issue: None,
        }
    }
}

/// Request counters of an [`ImdsEmulator`].
#[derive(Default)]
struct Counters {
    token_puts: AtomicUsize,
    credential_gets: AtomicUsize,
    role_list_gets: AtomicUsize,
    v1_requests: AtomicUsize,
    v2_requests: AtomicUsize,
    total: AtomicUsize,
}

struct ImdsState {
    mode: Mutex<ImdsMode>,
    role_name: String,
    region: String,
    token_ttl: Duration,
    token_refusal_status: u16,
    /// Token → when it stops being accepted.
    tokens: Mutex<HashMap<String, Instant>>,
    no_role: AtomicBool,
    hang_token: AtomicBool,
    body_override: Mutex<Option<String>>,
    rotation: Rotation,
    counters: Counters,
}

/// An IMDS on 127.0.0.1. Stops when dropped.
pub struct ImdsEmulator {
    http: HttpEmulator,
    state: Arc<ImdsState>,
}

impl ImdsEmulator {
    /// Starts serving; panics when the address cannot be bound (a test setup error).
    pub fn start(options: ImdsOptions) -> ImdsEmulator {
        let addr = options.addr;
        Self::try_start(options)
            .unwrap_or_else(|e| panic!("IMDS emulator: cannot listen on {addr}: {e}"))
    }

    pub fn try_start(options: ImdsOptions) -> std::io::Result<ImdsEmulator> {
        let state = Arc::new(ImdsState {
            mode: Mutex::new(options.mode),
            role_name: options.role_name,
            region: options.region,
            token_ttl: options.token_ttl,
            token_refusal_status: options.token_refusal_status,
            tokens: Mutex::new(HashMap::new()),
            no_role: AtomicBool::new(false),
            hang_token: AtomicBool::new(false),
            body_override: Mutex::new(None),
            rotation: Rotation::new(
                options.credentials_lifetime,
                options.rotation,
                options.on_issue,
            ),
            counters: Counters::default(),
        });
        let handler_state = state.clone();
        let handler: Handler = Arc::new(move |r| handle(&handler_state, r));
        let http = HttpEmulator::start(options.addr, "imds-emulator", handler)?;
        Ok(ImdsEmulator { http, state })
    }

    /// `http://127.0.0.1:PORT`: the value for `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        self.http.endpoint()
    }

    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }

    pub fn role_name(&self) -> &str {
        &self.state.role_name
    }

    pub fn set_mode(&self, mode: ImdsMode) {
        *lock(&self.state.mode) = mode;
    }

    /// While on, every request is answered 503 (IMDS throttling or unwell).
    pub fn set_outage(&self, on: bool) {
        self.http.set_outage(on);
    }

    /// While on, connections are refused (nothing listens: a host that is not EC2).
    pub fn set_refuse_connections(&self, on: bool) {
        self.http.set_refuse_connections(on);
    }

    /// While on, every request is accepted and never answered.
    pub fn set_hang(&self, on: bool) {
        self.http.set_hang(on);
    }

    /// While on, only the token PUT hangs — the container hop-limit symptom (its answer is
    /// dropped one hop short, GETs still arrive).
    pub fn set_hang_token(&self, on: bool) {
        self.state.hang_token.store(on, Ordering::SeqCst);
    }

    /// While on, the role list answers 404 (no instance profile attached).
    pub fn set_no_role(&self, on: bool) {
        self.state.no_role.store(on, Ordering::SeqCst);
    }

    /// Answers the role's credentials GET with this body instead of a real document
    /// (malformed JSON, a non-Success `Code`); `None` restores real documents.
    pub fn set_credentials_body(&self, body: Option<&str>) {
        *lock(&self.state.body_override) = body.map(str::to_owned);
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.http.fail_next(n, status);
    }

    /// Forgets every token issued: the next GET with one gets 401.
    pub fn invalidate_tokens(&self) {
        lock(&self.state.tokens).clear();
    }

    /// The next credentials request gets a new set.
    pub fn rotate_now(&self) {
        self.state.rotation.rotate_now();
    }

    pub fn set_on_issue(&self, on_issue: Option<OnIssue>) {
        self.state.rotation.set_on_issue(on_issue);
    }

    /// Every credentials set issued so far, oldest first.
    pub fn issued(&self) -> Vec<IssuedCredentials> {
        self.state.rotation.issued()
    }

    pub fn token_puts(&self) -> usize {
        self.state.counters.token_puts.load(Ordering::SeqCst)
    }

    /// GETs of the role's credentials document.
    pub fn credential_gets(&self) -> usize {
        self.state.counters.credential_gets.load(Ordering::SeqCst)
    }

    pub fn role_list_gets(&self) -> usize {
        self.state.counters.role_list_gets.load(Ordering::SeqCst)
    }

    /// GETs that carried no token.
    pub fn v1_requests(&self) -> usize {
        self.state.counters.v1_requests.load(Ordering::SeqCst)
    }

    /// GETs that carried a token (valid or not).
    pub fn v2_requests(&self) -> usize {
        self.state.counters.v2_requests.load(Ordering::SeqCst)
    }

    /// Requests that reached the handler (not hung, refused, or answered by an injected
    /// failure).
    pub fn total_requests(&self) -> usize {
        self.state.counters.total.load(Ordering::SeqCst)
    }
}

fn handle(state: &ImdsState, r: &Request) -> Reply {
    let c = &state.counters;
    c.total.fetch_add(1, Ordering::SeqCst);
    let mode = *lock(&state.mode);
    let answer = |status: u16, body: &str| Reply::Answer(Response::new(status, body));
    if r.method == "PUT" && r.path == "/latest/api/token" {
        c.token_puts.fetch_add(1, Ordering::SeqCst);
        match mode {
            ImdsMode::V1Only => return answer(state.token_refusal_status, "Forbidden"),
            ImdsMode::Disabled => return answer(403, "Forbidden"),
            _ => {}
        }
        if state.hang_token.load(Ordering::SeqCst) {
            return Reply::Hang;
        }
        if r.header("x-forwarded-for").is_some() {
            // Real IMDS refuses tokens to anything that went through a proxy.
            return answer(403, "Forbidden");
        }
        let requested = r
            .header("x-aws-ec2-metadata-token-ttl-seconds")
            .and_then(|v| v.parse::<u64>().ok());
        let Some(requested) = requested.filter(|t| (1..=MAX_TOKEN_TTL_SECS).contains(t)) else {
            return answer(400, "Bad Request");
        };
        let granted = requested.min(state.token_ttl.as_secs().max(1));
        let token = format!("AQAEA{}==", random(51));
        lock(&state.tokens).insert(token.clone(), Instant::now() + Duration::from_secs(granted));
        return Reply::Answer(
            Response::new(200, token)
                .with_header("x-aws-ec2-metadata-token-ttl-seconds", &granted.to_string()),
        );
    }
    if r.method != "GET" {
        return answer(405, "Method Not Allowed");
    }
    if mode == ImdsMode::Disabled {
        return answer(403, "Forbidden");
    }
    match r.header("x-aws-ec2-metadata-token") {
        Some(token) => {
            c.v2_requests.fetch_add(1, Ordering::SeqCst);
            let valid = lock(&state.tokens)
                .get(token)
                .is_some_and(|until| Instant::now() < *until);
            if !valid || mode == ImdsMode::V1Only {
                return answer(401, "Unauthorized");
            }
        }
        None => {
            c.v1_requests.fetch_add(1, Ordering::SeqCst);
            if mode == ImdsMode::V2Only {
                return answer(401, "Unauthorized");
            }
        }
    }
    let path = r.path.split('?').next().unwrap_or_default();
    const CREDS: &str = "/latest/meta-data/iam/security-credentials";
    if path == CREDS || path == format!("{CREDS}/") {
        c.role_list_gets.fetch_add(1, Ordering::SeqCst);
        if state.no_role.load(Ordering::SeqCst) {
            return answer(404, "Not Found");
        }
        return answer(200, &state.role_name);
    }
    if let Some(role) = path.strip_prefix(&format!("{CREDS}/")) {
        c.credential_gets.fetch_add(1, Ordering::SeqCst);
        if state.no_role.load(Ordering::SeqCst) || role != state.role_name {
            return answer(404, "Not Found");
        }
        if let Some(body) = lock(&state.body_override).clone() {
            return answer(200, &body);
        }
        let issued = state.rotation.current();
        return Reply::Answer(
            Response::new(200, imds_document(&issued)).with_header("Content-Type", "text/plain"),
        );
    }
    if path == "/latest/meta-data/placement/region" {
        return answer(200, &state.region);
    }
    answer(404, "Not Found")
}
