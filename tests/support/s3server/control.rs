//! [`TestServer`]'s fault and observation methods: each forwards to the server's [`Monitor`]
//! (see `monitor.rs` for what they do on the wire), so a test reads `server.fail_next(…)`.
//! Everything here is off on a new server and can be switched at any time while it runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Fault, Monitor, Op, Quirk, RequestRecord, TestServer};

impl TestServer {
    // ---- faults of single requests ------------------------------------------------------

    /// Gives the next `n` requests (any operation) `fault`.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.monitor.fail_next(n, fault, None);
    }

    /// Gives the next `n` requests of operation `op` `fault`.
    pub fn fail_next_op(&self, op: Op, n: usize, fault: Fault) {
        self.monitor.fail_next(n, fault, Some(op));
    }

    /// Gives each request (any operation) `fault` with probability `fraction` (0.1 = 10 %);
    /// replaces the rate set before for the same fault, 0 removes it.
    pub fn fail_rate(&self, fraction: f64, fault: Fault) {
        self.monitor.fail_rate(fraction, fault, None);
    }

    /// Gives each request of operation `op` `fault` with probability `fraction`.
    pub fn fail_rate_op(&self, op: Op, fraction: f64, fault: Fault) {
        self.monitor.fail_rate(fraction, fault, Some(op));
    }

    /// Makes the draws of `fail_rate` repeat from `seed` (they are random otherwise).
    pub fn seed_faults(&self, seed: u64) {
        self.monitor.seed_faults(seed);
    }

    /// Gives every request `fault`, for `duration` or until [`TestServer::end_outage`].
    pub fn outage(&self, fault: Fault, duration: Option<Duration>) {
        self.monitor.outage(fault, duration);
    }

    /// Closes the port, for `duration` or until [`TestServer::end_outage`]: connections are
    /// refused, and requests on connections already open are dropped unanswered.
    pub fn refuse_connections(&self, duration: Option<Duration>) {
        self.monitor.refuse_connections(duration);
    }

    /// Ends an outage and refused connections (the port accepts again when this returns),
    /// and releases hung requests.
    pub fn end_outage(&self) {
        self.monitor.end_outage();
    }

    // ---- the link -----------------------------------------------------------------------

    /// Delays every request by `latency` before handling it.
    pub fn set_latency(&self, latency: Duration) {
        self.monitor.set_latency(latency);
    }

    /// Limits request bodies to `bytes_per_sec`, shared by all connections like a laptop's
    /// uplink; `None` lifts the limit.
    pub fn set_upload_bandwidth(&self, bytes_per_sec: Option<u64>) {
        self.monitor.set_upload_bandwidth(bytes_per_sec);
    }

    /// Limits response bodies to `bytes_per_sec`, shared by all connections; `None` lifts it.
    pub fn set_download_bandwidth(&self, bytes_per_sec: Option<u64>) {
        self.monitor.set_download_bandwidth(bytes_per_sec);
    }

    /// Switches off every fault and link condition and releases hung requests.
    pub fn clear_faults(&self) {
        self.monitor.clear_faults();
    }

    /// The monitor itself, to switch faults from another thread or task than the test's.
    pub fn monitor(&self) -> Arc<Monitor> {
        self.monitor.clone()
    }

    // ---- quirks of S3-compatible servers ------------------------------------------------

    /// Switches `quirk` on or off (see `quirks.rs`); a new server has none.
    pub fn set_quirk(&self, quirk: Quirk, on: bool) {
        self.store.quirks.set(quirk, on);
    }

    /// Registers the access point `NAME` of account `account` for `bucket`: requests to the
    /// host `NAME-ACCOUNT.<any base>:PORT` (an access point ARN with a custom endpoint) then
    /// reach `bucket`; unregistered access points answer 404 `NoSuchAccessPoint`.
    pub fn add_access_point(&self, name: &str, account: &str, bucket: &str) {
        self.store.access_points.add(name, account, bucket);
    }

    /// Directory-bucket mode (see `express.rs`): buckets named `NAME--ZONEID--x-s3` then
    /// want `CreateSession` sessions that live `session_lifetime`; `None` switches it off.
    pub fn set_directory_buckets(&self, session_lifetime: Option<Duration>) {
        self.store.express.set(session_lifetime);
    }

    /// Every append (PutObject with `x-amz-write-offset-bytes`) the server carried out.
    pub fn appends(&self) -> Vec<super::express::Append> {
        self.store.express.appends()
    }

    /// Ends every directory-bucket session now: the next request of each gets `ExpiredToken`.
    pub fn expire_directory_sessions(&self) {
        self.store.express.expire_all();
    }

    // ---- observation --------------------------------------------------------------------

    /// Requests of operation `op` received so far (including failed ones).
    pub fn count(&self, op: Op) -> usize {
        self.monitor.count(op)
    }

    /// Requests received so far, per operation.
    pub fn counts(&self) -> BTreeMap<Op, usize> {
        self.monitor.counts()
    }

    /// Requests received so far, all operations.
    pub fn total_requests(&self) -> usize {
        self.monitor.total()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.monitor.requests()
    }

    /// Every request so far, once none is in flight or `timeout` has passed.
    pub async fn settled_requests(&self, timeout: Duration) -> Vec<RequestRecord> {
        self.monitor.settled_requests(timeout).await
    }

    /// Requests whose client hung up before the exchange ended (mid-upload, while waiting
    /// for the answer, mid-download).
    pub fn requests_cut_by_client(&self) -> Vec<RequestRecord> {
        self.monitor.requests_cut_by_client()
    }

    /// Distinct access key ids that signed requests, in first-use order.
    pub fn access_keys_used(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for key in self
            .monitor
            .requests()
            .into_iter()
            .filter_map(|r| r.access_key)
        {
            if !seen.contains(&key) {
                seen.push(key);
            }
        }
        seen
    }

    /// Zeroes counters and empties the request log.
    pub fn reset_counters(&self) {
        self.monitor.reset();
    }
}
