//! An S3-compatible server on 127.0.0.1 for tests and demos: [`TestServer`] runs s3s over an
//! in-memory store on its own thread and tokio runtime, so plain `#[test]` and
//! `#[tokio::test]` functions can both use it, and gives tests out-of-band access to the
//! store, the accepted keys, request counters and fault injection.
//!
//! - `store.rs`: buckets, objects, uploads, listing rules.
//! - `service.rs`: the `s3s::S3` impl (bucket operations, dispatch, shared helpers);
//!   `objects.rs`, `listing.rs`, `multipart.rs`: the object, list and multipart operations.
//! - `auth.rs`: the key table (SigV4 via s3s), session tokens, anonymous public reads.
//! - `accept.rs`: the accept loop, one task per connection.
//! - `front.rs`: the hyper service in front of s3s (faults, counters, wrong-region answers);
//!   `bodies.rs`: both bodies of a request, counted, paced and cut there.
//! - `monitor.rs`: what tests observe and switch — counters, the request log, faults, the
//!   link; `control.rs`: the same, as [`TestServer`] methods.
//! - `faults.rs`: the faults of single requests and which request gets one;
//!   `bandwidth.rs`: the link's shared bandwidth per direction; `exchange.rs`: the request
//!   log's records and how each request ended; `op.rs`: S3 operations.
//! - `express.rs`: directory-bucket mode (S3 Express One Zone): `CreateSession`, session
//!   tokens that expire, unsorted listings without `StartAfter`, `RenameObject`.
//! - `access_points.rs`: hosts `NAME-ACCOUNT.<base>` that address a bucket through an
//!   access point registered by the test, signed as sent.
//! - `quirks.rs`: the ways S3-compatible servers differ from S3 (no checksum headers, V1
//!   listings only, no UploadPartCopy, non-MD5 ETags, unsorted listings), per test.

mod accept;
pub mod access_points;
pub mod auth;
pub mod bandwidth;
pub mod bodies;
mod control;
pub mod exchange;
pub mod express;
pub mod express_sign;
pub mod faults;
pub mod front;
pub mod listing;
pub mod monitor;
pub mod multipart;
pub mod objects;
pub mod op;
pub mod quirks;
pub mod service;
pub mod sse;
pub mod store;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rand::distributions::{Alphanumeric, DistString};
use s3s::host::SingleDomain;
use s3s::service::S3ServiceBuilder;
use tokio::sync::oneshot;

use self::auth::{KeyTable, Policy, TableAuth};
// Named by tests, not by every user of this module (the example server).
#[allow(unused_imports)]
pub use self::exchange::{Outcome, Phase, RequestRecord};
pub use self::faults::Fault;
use self::front::Front;
pub use self::monitor::Monitor;
pub use self::op::Op;
pub use self::quirks::Quirk;
use self::service::Service;
pub use self::sse::StoredWith;
use self::store::{Bucket, Object, Store};

/// Configuration of a [`TestServer`] before it starts.
pub struct ServerBuilder {
    addr: SocketAddr,
    access_key: Option<String>,
    secret_key: Option<String>,
    region: String,
    worker_threads: usize,
}

impl ServerBuilder {
    /// Listen address; default `127.0.0.1:0` (a free port).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// The default key pair; generated when not given.
    pub fn credentials(mut self, access_key: &str, secret_key: &str) -> Self {
        self.access_key = Some(access_key.to_owned());
        self.secret_key = Some(secret_key.to_owned());
        self
    }

    /// Region of buckets created without one; default `us-east-1`.
    pub fn region(mut self, region: &str) -> Self {
        self.region = region.to_owned();
        self
    }

    /// Runtime worker threads; default 2 (the CI machines have 2 cores).
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = n.max(1);
        self
    }

    /// Binds the socket (so the port is known and bind errors surface here) and starts
    /// serving on a background thread. Panics if the address cannot be bound.
    pub fn start(self) -> TestServer {
        self.try_start()
            .unwrap_or_else(|e| panic!("test S3 server: cannot listen on {}: {e}", self.addr))
    }

    /// Like [`ServerBuilder::start`], with the bind error returned instead of a panic.
    pub fn try_start(&self) -> std::io::Result<TestServer> {
        let access_key = self.access_key.clone().unwrap_or_else(|| {
            format!(
                "AKIA{}",
                Alphanumeric
                    .sample_string(&mut rand::thread_rng(), 16)
                    .to_uppercase()
            )
        });
        let secret_key = self
            .secret_key
            .clone()
            .unwrap_or_else(|| Alphanumeric.sample_string(&mut rand::thread_rng(), 40));
        let keys = Arc::new(KeyTable::default());
        keys.add_key(&access_key, &secret_key);
        let mut server = TestServer {
            addr: self.addr,
            access_key,
            secret_key,
            region: self.region.clone(),
            worker_threads: self.worker_threads,
            store: Arc::new(Store::new()),
            keys,
            monitor: Arc::new(Monitor::default()),
            shutdown: None,
            thread: None,
        };
        server.listen()?;
        Ok(server)
    }
}

impl TestServer {
    /// Binds `self.addr` and serves the server's store on a background thread.
    fn listen(&mut self) -> std::io::Result<()> {
        let listener = StdTcpListener::bind(self.addr)?;
        listener.set_nonblocking(true)?;
        self.addr = listener.local_addr()?;
        let vhost_base = format!("localhost:{}", self.addr.port());
        let mut builder = S3ServiceBuilder::new(Service {
            store: self.store.clone(),
            default_region: self.region.clone(),
        });
        builder.set_auth(TableAuth(self.keys.clone()));
        builder.set_access(Policy {
            keys: self.keys.clone(),
            store: self.store.clone(),
        });
        builder.set_host(SingleDomain::new(&vhost_base).map_err(std::io::Error::other)?);
        let front = Front {
            s3: builder.build(),
            keys: self.keys.clone(),
            server_key: Arc::new(express::ServerKey {
                access_key: self.access_key.clone(),
                secret_key: self.secret_key.clone(),
                region: self.region.clone(),
            }),
            store: self.store.clone(),
            monitor: self.monitor.clone(),
            addr: self.addr,
            vhost_base,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.worker_threads)
            .thread_name("s3server")
            .enable_all()
            .build()?;
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        self.monitor.set_stopping(false);
        // The port accepts from the bind on (the kernel queues connections for the loop).
        self.monitor.set_listening(true);
        let thread = std::thread::Builder::new()
            .name("s3server".into())
            .spawn(move || {
                runtime.block_on(accept::serve(listener, front, shutdown_rx));
                // Cuts open keep-alive connections instead of waiting for clients to hang up.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        self.shutdown = Some(shutdown_tx);
        self.thread = Some(thread);
        Ok(())
    }

    /// Stops serving, as a crashed or unplugged server would: the port refuses connections
    /// and open ones are cut. The buckets stay in memory for [`TestServer::restart`].
    pub fn stop(&mut self) {
        // Requests cut by the shutdown are recorded as such, not as clients hanging up.
        self.monitor.set_stopping(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Serves again, on the same address, with the same buckets and keys.
    pub fn restart(&mut self) {
        self.stop();
        // The port was ours a moment ago; a client's connection in TIME_WAIT does not block
        // a listener, so the bind succeeds at once.
        self.listen().unwrap_or_else(|e| {
            panic!("test S3 server: cannot listen again on {}: {e}", self.addr)
        });
    }
}

/// Metadata of a stored object, for assertions.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectInfo {
    pub size: usize,
    /// Quoted, as in an `ETag` header.
    pub etag: String,
    pub content_type: String,
    pub metadata: HashMap<String, String>,
    pub last_modified: time::OffsetDateTime,
}

/// A running S3-compatible server. Stops (and closes its connections) when dropped.
pub struct TestServer {
    addr: SocketAddr,
    access_key: String,
    secret_key: String,
    region: String,
    worker_threads: usize,
    store: Arc<Store>,
    keys: Arc<KeyTable>,
    monitor: Arc<Monitor>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on a free port of 127.0.0.1 with a generated key pair.
    pub fn start() -> TestServer {
        Self::builder().start()
    }

    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            access_key: None,
            secret_key: None,
            region: "us-east-1".to_owned(),
            worker_threads: 2,
        }
    }

    /// `http://127.0.0.1:PORT` (path-style addressing).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://localhost:PORT`: with this endpoint, `<bucket>.localhost:PORT` is the bucket's
    /// virtual host (the client must resolve `*.localhost` to 127.0.0.1 itself).
    pub fn virtual_host_endpoint(&self) -> String {
        format!("http://localhost:{}", self.addr.port())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The default region (of buckets made by [`TestServer::create_bucket`]).
    pub fn region(&self) -> &str {
        &self.region
    }

    // ---- keys -------------------------------------------------------------------------

    /// Accepts another long-term key pair.
    pub fn add_key(&self, access_key: &str, secret_key: &str) {
        self.keys.add_key(access_key, secret_key);
    }

    /// Accepts a temporary key pair, valid only with `token` and until `expires_at`.
    pub fn add_session_key(
        &self,
        access_key: &str,
        secret_key: &str,
        token: &str,
        expires_at: SystemTime,
    ) {
        self.keys
            .add_session_key(access_key, secret_key, token, expires_at);
    }

    /// Stops accepting a key (including the default one); returns whether it was known.
    /// Denies `access_key` the operations `ops` (s3s names: `GetObject`, `PutObject`,
    /// `ListObjectsV2`, `HeadBucket`, …) with AccessDenied, like a policy that lacks them.
    pub fn deny(&self, access_key: &str, ops: &[&str]) {
        self.keys.deny(access_key, ops);
    }

    pub fn remove_key(&self, access_key: &str) -> bool {
        self.keys.remove_key(access_key)
    }

    // ---- buckets and objects, out of band ---------------------------------------------

    /// Creates a bucket in the default region. Panics if it exists.
    pub fn create_bucket(&self, name: &str) {
        self.create_bucket_in_region(name, &self.region.clone());
    }

    /// Creates a bucket in `region`. Panics if it exists.
    pub fn create_bucket_in_region(&self, name: &str, region: &str) {
        // Catches test typos here rather than as a puzzling 400 InvalidBucketName later.
        assert!(
            s3s::path::check_bucket_name(name),
            "test S3 server: {name:?} is not a valid bucket name"
        );
        let previous = self
            .store
            .lock()
            .insert(name.to_owned(), Bucket::new(region));
        assert!(
            previous.is_none(),
            "test S3 server: bucket {name} already exists"
        );
    }

    /// Lets anonymous (unsigned) requests read `bucket`, like a public-read bucket policy.
    pub fn set_public_read(&self, bucket: &str, public: bool) {
        self.with_bucket(bucket, |b| b.public_read = public);
    }

    /// Stores an object directly (no HTTP), with S3's ETag for a single PUT.
    pub fn put(&self, bucket: &str, key: &str, body: impl Into<Bytes>) {
        self.put_object(bucket, key, body, None, HashMap::new());
    }

    /// Stores an object with a content type and user metadata.
    pub fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: impl Into<Bytes>,
        content_type: Option<&str>,
        metadata: HashMap<String, String>,
    ) {
        let object = Object::new(body.into(), content_type.map(str::to_owned), metadata);
        self.with_bucket(bucket, |b| b.objects.insert(key.to_owned(), object));
    }

    /// Stores many objects under one lock: a 10,000-key directory costs milliseconds.
    pub fn put_many<K: Into<String>, B: Into<Bytes>>(
        &self,
        bucket: &str,
        objects: impl IntoIterator<Item = (K, B)>,
    ) {
        self.with_bucket(bucket, |b| {
            for (key, body) in objects {
                b.objects
                    .insert(key.into(), Object::new(body.into(), None, HashMap::new()));
            }
        });
    }

    pub fn get(&self, bucket: &str, key: &str) -> Option<Bytes> {
        self.with_bucket(bucket, |b| b.objects.get(key).map(|o| o.body.clone()))
    }

    pub fn object_info(&self, bucket: &str, key: &str) -> Option<ObjectInfo> {
        self.with_bucket(bucket, |b| {
            b.objects.get(key).map(|o| ObjectInfo {
                size: o.body.len(),
                etag: o.quoted_etag(),
                content_type: o.content_type.clone(),
                metadata: o.metadata.clone(),
                last_modified: o.last_modified,
            })
        })
    }

    /// The encryption (SSE, KMS key, SSE-C key MD5), storage class and ACL an object was
    /// stored with.
    pub fn stored_with(&self, bucket: &str, key: &str) -> Option<StoredWith> {
        self.with_bucket(bucket, |b| b.objects.get(key).map(|o| (*o.stored).clone()))
    }

    /// All keys of `bucket`, in S3 listing order.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        self.with_bucket(bucket, |b| b.objects.keys().cloned().collect())
    }

    /// Removes an object; returns whether it existed.
    pub fn delete(&self, bucket: &str, key: &str) -> bool {
        self.with_bucket(bucket, |b| b.objects.remove(key).is_some())
    }

    /// Number of multipart uploads started and neither completed nor aborted.
    pub fn open_multipart_uploads(&self, bucket: &str) -> usize {
        self.with_bucket(bucket, |b| b.uploads.len())
    }

    /// Minimum size of every part but the last at CompleteMultipartUpload (S3: 5 MiB), so
    /// multipart tests can use small parts.
    pub fn set_min_part_size(&self, bytes: usize) {
        self.store.set_min_part_size(bytes);
    }

    /// Largest CopyObject source and UploadPartCopy range accepted (S3: 5 GiB), so tests
    /// of multipart copies can use small objects and prove CopyObject was not used above.
    pub fn set_single_copy_limit(&self, bytes: usize) {
        self.store.set_single_copy_limit(bytes);
    }

    fn with_bucket<R>(&self, bucket: &str, f: impl FnOnce(&mut Bucket) -> R) -> R {
        let mut buckets = self.store.lock();
        let b = buckets
            .get_mut(bucket)
            .unwrap_or_else(|| panic!("test S3 server: no bucket {bucket}"));
        f(b)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}
