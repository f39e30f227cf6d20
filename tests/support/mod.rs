//! The harness every integration test stands on (`mod support;` in each test file):
//!
//! - [`s3server`]: [`TestServer`], an S3-compatible server on 127.0.0.1 with an in-memory
//!   store, fault injection and request counters.
//! - [`mount`]: [`Mount`], the real `s3rolefs` binary mounted against a server, always
//!   unmounted again; [`require_fuse`]; [`run_mount_expect_failure`].
//! - [`sso`]: [`sso::SsoEmulator`], IAM Identity Center's portal and OIDC token endpoints.
//! - [`sts`]: [`sts::StsEmulator`], an STS emulator (AssumeRole, web identity, SAML) with
//!   fault injection, request records and an `on_issue` hook.
//! - [`client`]: [`TestClient`], a minimal independent SigV4 client for raw requests.
//! - [`s3fs`]: [`s3fs::S3fs`], s3fs-fuse itself mounted on a test server bucket.
//! - [`data`]: the byte pattern write tests use, commands that must succeed, a small tmpfs.
//! - [`imds`]: [`imds::ImdsEmulator`], an EC2 instance metadata service with rotating role
//!   credentials and failure switches; [`container`]: [`container::ContainerEndpoint`], the
//!   ECS / EKS Pod Identity credentials endpoint.
//!
//! Each test binary uses part of this module, hence the `allow`s.
#![allow(dead_code)]

pub mod client;
pub mod container;
pub mod data;
pub mod imds;
pub mod mount;
pub mod s3fs;
pub mod s3server;
pub mod sso;
pub mod sts;

#[allow(unused_imports)]
pub use self::client::{Reply, TestClient};
#[allow(unused_imports)]
pub use self::mount::{require_fuse, run_mount_expect_failure, Mount, MountCommand};
#[allow(unused_imports)]
pub use self::s3server::{Fault, ObjectInfo, Op, Outcome, Phase, RequestRecord, TestServer};

/// A server holding the empty bucket `bkt`, the one most tests use.
pub fn server_with_bkt() -> TestServer {
    let server = TestServer::start();
    server.create_bucket("bkt");
    server
}

/// Polls `done` every 100 ms for up to `limit`; true once it held.
pub fn eventually(limit: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
