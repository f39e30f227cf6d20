//! `S3Client`: the [`ObjectClient`](crate::s3::ObjectClient) over HTTP.
//!
//! - `addressing`: the exact URL and path of a request, on the endpoint
//!   [`crate::s3::endpoint`] resolved (path-style or virtual-hosted, signing region and
//!   service).
//! - `transport`: one request with a fresh signature per attempt, and the retry loop.
//! - `progress`: the I/O timeout, which measures silence, not duration.
//! - `retry`: capped exponential backoff with full jitter, within a time budget.
//! - `errors`: the one mapping from an error answer to [`S3Error`].
//! - `region`: endpoint/region resolution helpers and region discovery hints.
//! - `express`: directory buckets' session auth (`CreateSession` and its refresher) and
//!   `RenameObject`.
//! - `ops`: the operations themselves; `compat`: their fallbacks for a server's quirks.
//! - `quirks`: what the server does differently from S3 ([`Quirks`]), known from the
//!   provider or found out by the answers, in one place.
//!
//! Every default (attempts, timeouts, user agent) belongs to the configuration layer; this
//! module takes [`ClientConfig`] as given.

mod addressing;
mod compat;
mod errors;
mod express;
mod ops;
mod progress;
mod quirks;
mod reach;
mod region;
mod retry;
mod transport;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use log::{debug, info};
use reqwest::Method;

pub use addressing::check_key;
pub use quirks::{EtagKind, PartCopy, Quirk, Quirks};
pub use region::{resolve_endpoint, resolve_region, DISCOVERY_REGION};
pub use retry::RetryPolicy;

use crate::credentials::{CredentialsCell, SkewedClock};
use crate::s3::endpoint::EndpointVariants;
use crate::s3::provider::Provider;
use crate::s3::settings::{Encryption, ObjectSettings};
use crate::s3::{BucketAccess, S3Error, S3_SINGLE_COPY_LIMIT};
use addressing::{Addressing, Route};
use transport::Request;

/// Everything the client needs, resolved by the configuration layer.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// A bucket name (or access point alias), or an access point ARN.
    pub bucket: String,
    /// `http://127.0.0.1:9000`, `https://s3.example.com`; `None` for AWS.
    pub endpoint: Option<String>,
    /// `None`: discover the bucket's region with HeadBucket.
    pub region: Option<String>,
    /// Without `region`: the region to ask first (the instance's); S3's answer naming the
    /// bucket's own overrules it.
    pub region_hint: Option<String>,
    pub force_path_style: bool,
    /// Which S3 implementation it is: the quirks known before the first request.
    pub provider: Provider,
    /// Dual-stack, FIPS and Transfer Acceleration endpoints.
    pub variants: EndpointVariants,
    /// Requester pays and the expected bucket owner: headers on every request, the checks
    /// of [`S3Client::connect`] included.
    pub access: BucketAccess,
    /// `None`: send unsigned requests (`--no-sign-request`).
    pub credentials: Option<Arc<CredentialsCell>>,
    /// Attempts per operation that are made whatever the retry budget says, the first
    /// included (`AWS_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// How long an operation keeps being retried after transient failures (its first
    /// attempt's start to its last attempt's start). Applies once connected: the checks of
    /// [`S3Client::connect`] make `max_attempts` only, so a wrong endpoint fails a mount fast.
    pub retry_timeout: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    /// Longest time no byte may move either way during an attempt (`progress`).
    pub io_timeout: Duration,
    /// Extra PEM root certificates (`AWS_CA_BUNDLE`), trusted besides the system's.
    pub ca_bundle: Option<PathBuf>,
    pub user_agent: String,
    /// What signatures are dated by: the mount's one clock, shared with its STS providers,
    /// so a skew learned from either side corrects both.
    pub clock: SkewedClock,
}

/// An S3 bucket over HTTP, its region established.
pub struct S3Client {
    http: reqwest::Client,
    bucket: String,
    region: String,
    addressing: Addressing,
    credentials: Option<Arc<CredentialsCell>>,
    retry: RetryPolicy,
    /// See [`ClientConfig::retry_timeout`]; the policy's budget once connected.
    retry_budget: Duration,
    /// See [`ClientConfig::io_timeout`].
    io_timeout: Duration,
    /// The mount's clock, corrected from `RequestTimeTooSkewed` answers (and STS's): signatures
    /// are dated by the server's clock so a skewed host keeps working.
    clock: SkewedClock,
    /// What objects are written with, and the SSE-C key reads need.
    settings: ObjectSettings,
    /// Requester pays and expected bucket owner, on every request.
    access: BucketAccess,
    /// The largest object one CopyObject copies; above it copies are multipart.
    single_copy_limit: u64,
    /// Whether S3 answers (see `reach`).
    reach: reach::Reach,
    /// See [`S3Client::set_unreachable_budget`].
    unreachable_budget: Option<Duration>,
    /// What the server does differently from S3; shared, so that what one request found
    /// out holds for all (and for `check`'s report).
    quirks: Arc<Quirks>,
    /// The bucket is a directory bucket (S3 Express One Zone), by its name.
    directory: bool,
    /// A directory bucket's sessions, once opened (`express`).
    sessions: Option<express::Sessions>,
    /// The server answered RenameObject `NotImplemented`: renames copy and delete.
    rename_missing: AtomicBool,
}

impl fmt::Debug for S3Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Client")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.addressing.display())
            .field("signed", &self.credentials.is_some())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl S3Client {
    /// Builds the HTTP client, establishes the bucket's region (discovering it when not
    /// configured), and checks with HeadBucket that the bucket exists and may be used.
    ///
    /// A configured region that is not the bucket's is [`S3Error::WrongRegion`] naming the
    /// right one; a missing bucket is [`S3Error::NoSuchBucket`]; a forbidden one
    /// [`S3Error::AccessDenied`].
    pub async fn connect(config: ClientConfig) -> Result<S3Client, S3Error> {
        let mut client = S3Client::open(&config).await?;
        // From now on the mount lives with the network's weather: transient failures are
        // retried for the whole budget.
        client.retry.budget = client.retry_budget;
        Ok(client)
    }

    /// A client for a bucket S3 does not answer for now (a write-back mount starting
    /// offline, from what earlier mounts kept): nothing is asked. The region is the one
    /// given, else the hint (where an earlier mount found the bucket), else `us-east-1`;
    /// S3 counts as unreachable from the start, so the filesystem answers offline until it
    /// answers. Not for directory buckets, whose every request needs a session first.
    pub fn offline(config: ClientConfig) -> Result<S3Client, S3Error> {
        let http = build_http(&config)?;
        let region = [&config.region, &config.region_hint]
            .into_iter()
            .flatten()
            .map(|r| r.trim())
            .find(|r| !r.is_empty())
            .unwrap_or(DISCOVERY_REGION)
            .to_string();
        let mut client = S3Client::for_region(http, &config, &region)?;
        client.retry.budget = client.retry_budget;
        client.reach.unanswered();
        Ok(client)
    }

    /// Drive mode's patience with a network that is gone: an operation whose attempts get
    /// no answer at all (refused, reset, timed out) is retried for `budget` only, and not
    /// at all once S3 has not answered since before it began — the filesystem then answers
    /// from what it saw, and write-back's queue retries uploads on its own schedule. Other
    /// failures (5xx, throttling) keep the whole retry budget. `None` (the default): every
    /// transient failure is retried for the whole budget.
    pub fn set_unreachable_budget(&mut self, budget: Option<Duration>) {
        self.unreachable_budget = budget;
    }

    /// [`S3Client::connect`]'s checks, with attempts bounded by count only.
    async fn open(config: &ClientConfig) -> Result<S3Client, S3Error> {
        let config = config.clone();
        let http = build_http(&config)?;
        let configured = config
            .region
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        let hinted = config
            .region_hint
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let probe_region = configured.as_deref().or(hinted).unwrap_or(DISCOVERY_REGION);
        if crate::s3::express::is_directory_bucket(&config.bucket) {
            // A directory bucket's zonal endpoint names its region, and every request but
            // CreateSession needs a session: no discovery, the region given (or the
            // instance's, where a zonal bucket usually is).
            let mut client = S3Client::for_region(http, &config, probe_region)?;
            client.start_sessions(&config).await?;
            client.head_bucket_checked().await?;
            return Ok(client);
        }
        let client = S3Client::for_region(http.clone(), &config, probe_region)?;
        if configured.is_some() {
            client.head_bucket_checked().await?;
            return Ok(client);
        }

        // Discovery: S3 names the bucket's region on any answer to a HeadBucket, even one
        // signed for the wrong region; local servers name none and keep the region asked
        // (the hint, else `us-east-1`).
        let probe = Request {
            raw_errors: true,
            ..Request::new("HeadBucket", Method::HEAD, None)
        };
        let mut resp = client.execute(&probe).await?;
        let mut hint = region::region_hint(resp.status, &resp.headers, &resp.body);
        if hint.is_none() && resp.status == 400 {
            // A HEAD answer has no body, and servers that name the region only in the body
            // of `AuthorizationHeaderMalformed` need a GET to show it: an empty listing.
            let listing = Request {
                raw_errors: true,
                ..empty_listing()
            };
            let answer = client.execute(&listing).await?;
            hint = region::region_hint(answer.status, &answer.headers, &answer.body);
            resp = answer;
        }
        let region = hint.unwrap_or_else(|| probe_region.to_string());
        debug!("bucket {:?}: region {region} (discovered)", config.bucket);
        if region == probe_region {
            return match client.failure_of(&resp, &probe) {
                None => Ok(client),
                // A HEAD's bare 403/400 may be a clock S3 finds too far off, or credentials
                // to renew: the checked HeadBucket asks again with a GET that shows why.
                Some(_) => client.head_bucket_checked().await.map(|()| client),
            };
        }
        let client = S3Client::for_region(http, &config, &region)?;
        client.head_bucket_checked().await?;
        info!(
            "bucket {:?} is in region {region}; using {}",
            config.bucket,
            client.endpoint_display()
        );
        Ok(client)
    }

    /// A client for the configured region (else the hinted one, else the discovery region)
    /// that has asked S3 nothing yet: for probes that must run when the bucket cannot be
    /// opened (`s3rolefs check` reports each permission on its own).
    pub fn unconnected(config: &ClientConfig) -> Result<S3Client, S3Error> {
        let region = [&config.region, &config.region_hint]
            .into_iter()
            .flatten()
            .map(|r| r.trim())
            .find(|r| !r.is_empty())
            .unwrap_or(DISCOVERY_REGION);
        S3Client::for_region(build_http(config)?, config, region)
    }

    fn for_region(
        http: reqwest::Client,
        config: &ClientConfig,
        region: &str,
    ) -> Result<S3Client, S3Error> {
        let route = Route {
            bucket: &config.bucket,
            endpoint_url: config.endpoint.as_deref(),
            force_path_style: config.force_path_style,
            variants: config.variants,
        };
        Ok(S3Client {
            addressing: Addressing::new(&route, region)?,
            http,
            bucket: config.bucket.clone(),
            region: region.to_string(),
            credentials: config.credentials.clone(),
            retry: RetryPolicy {
                min_attempts: config.max_attempts.max(1),
                budget: Duration::ZERO,
                initial_backoff: config.initial_backoff,
                max_backoff: config.max_backoff,
            },
            retry_budget: config.retry_timeout,
            io_timeout: config.io_timeout,
            clock: config.clock.clone(),
            settings: ObjectSettings::default(),
            access: config.access.clone(),
            single_copy_limit: S3_SINGLE_COPY_LIMIT,
            reach: reach::Reach::default(),
            unreachable_budget: None,
            quirks: Arc::new(Quirks::new(config.provider)),
            directory: crate::s3::express::is_directory_bucket(&config.bucket),
            sessions: None,
            rename_missing: AtomicBool::new(false),
        })
    }

    /// Writes objects with `settings` (encryption, storage class, ACL) from now on, and
    /// sends their SSE-C key, if any, on every request about an object.
    pub fn with_object_settings(mut self, settings: ObjectSettings) -> Self {
        // S3's ETags of SSE-KMS and SSE-C objects are not MD5s of their bytes.
        if matches!(
            settings.encryption,
            Encryption::Kms { .. } | Encryption::KmsDsse { .. } | Encryption::Customer(_)
        ) {
            self.quirks.assume_opaque_etags();
        }
        self.settings = settings;
        self
    }

    /// Copies objects larger than `bytes` as multipart copies (S3's limit is
    /// [`S3_SINGLE_COPY_LIMIT`]; some S3-compatible servers have lower ones).
    pub fn with_single_copy_limit(mut self, bytes: u64) -> Self {
        self.single_copy_limit = bytes;
        self
    }

    async fn head_bucket_checked(&self) -> Result<(), S3Error> {
        match self
            .execute(&Request::new("HeadBucket", Method::HEAD, None))
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => match self.explain_head_failure(err, empty_listing()).await {
                Some(err) => Err(err),
                // The explaining GET cured the cause (renewed credentials): ask once more.
                None => self
                    .execute(&Request::new("HeadBucket", Method::HEAD, None))
                    .await
                    .map(|_| ()),
            },
        }
    }

    /// The server's quirks, as known so far.
    pub fn quirks(&self) -> &Quirks {
        &self.quirks
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Whether requests address the bucket in the path (`endpoint/bucket/key`) rather than
    /// in the host name.
    pub fn is_path_style(&self) -> bool {
        self.addressing.is_path_style()
    }

    /// The bucket's base URL and addressing style, for messages
    /// (`https://b.s3.eu-west-1.amazonaws.com (virtual-hosted)`).
    pub fn endpoint_display(&self) -> String {
        self.addressing.display()
    }
}

/// A ListObjectsV2 of no keys: the GET twin of HeadBucket (same permission), whose error
/// answers have a body.
fn empty_listing() -> Request<'static> {
    Request::new("ListObjectsV2", Method::GET, None)
        .query("list-type", "2")
        .query("max-keys", "0")
}

/// [`build_http`] without idle connections kept: for a client used from more than one
/// runtime (a directory bucket's `CreateSession`, from the mount's and the refresher's).
fn build_http_unpooled(config: &ClientConfig) -> Result<reqwest::Client, S3Error> {
    http_builder(config)?
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| S3Error::InvalidConfig(format!("cannot build the HTTP client: {e}")))
}

/// The HTTP client: rustls with the system roots plus `ca_bundle`, no redirects (a 301 from
/// S3 is an answer about the region, and following a redirect would re-send a signature made
/// for another host).
fn build_http(config: &ClientConfig) -> Result<reqwest::Client, S3Error> {
    http_builder(config)?
        .build()
        .map_err(|e| S3Error::InvalidConfig(format!("cannot build the HTTP client: {e}")))
}

fn http_builder(config: &ClientConfig) -> Result<reqwest::ClientBuilder, S3Error> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(config.connect_timeout)
        .user_agent(config.user_agent.clone())
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &config.ca_bundle {
        let pem = std::fs::read(path).map_err(|e| {
            S3Error::InvalidConfig(format!("cannot read CA bundle {}: {e}", path.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| S3Error::InvalidConfig(format!("CA bundle {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(S3Error::InvalidConfig(format!(
                "CA bundle {} holds no PEM certificate",
                path.display()
            )));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bucket_forms;
