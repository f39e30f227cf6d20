//! What tests can observe and break: per-operation request counters, a log of every request
//! (with the access key id it was signed with), injected failures and latency.
//!
//! Requests are classified here from method, path and query — before s3s sees them — so
//! counters include requests that were failed on purpose or rejected by auth, which is what
//! retry tests need to count.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

/// An S3 operation, named as AWS names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    ListBuckets,
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    GetBucketLocation,
    ListObjects,
    ListObjectsV2,
    ListMultipartUploads,
    DeleteObjects,
    GetObject,
    HeadObject,
    PutObject,
    CopyObject,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    Other,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Op {
    /// Classifies a request the way S3 routes it. `bucket`/`key` come from the path or the
    /// virtual host; `has` tells whether a query parameter or header is present.
    pub fn classify(
        method: &str,
        bucket: Option<&str>,
        key: Option<&str>,
        has: impl Fn(&str) -> bool,
    ) -> Op {
        match (method, bucket, key) {
            ("GET", None, _) => Op::ListBuckets,
            ("PUT", Some(_), None) => Op::CreateBucket,
            ("DELETE", Some(_), None) => Op::DeleteBucket,
            ("HEAD", Some(_), None) => Op::HeadBucket,
            ("GET", Some(_), None) if has("location") => Op::GetBucketLocation,
            ("GET", Some(_), None) if has("uploads") => Op::ListMultipartUploads,
            ("GET", Some(_), None) if has("list-type") => Op::ListObjectsV2,
            ("GET", Some(_), None) => Op::ListObjects,
            ("POST", Some(_), None) if has("delete") => Op::DeleteObjects,
            ("GET", Some(_), Some(_)) if has("uploadId") => Op::ListParts,
            ("GET", Some(_), Some(_)) => Op::GetObject,
            ("HEAD", Some(_), Some(_)) => Op::HeadObject,
            ("PUT", Some(_), Some(_)) if has("partNumber") && has("x-amz-copy-source") => {
                Op::UploadPartCopy
            }
            ("PUT", Some(_), Some(_)) if has("partNumber") => Op::UploadPart,
            ("PUT", Some(_), Some(_)) if has("x-amz-copy-source") => Op::CopyObject,
            ("PUT", Some(_), Some(_)) => Op::PutObject,
            ("POST", Some(_), Some(_)) if has("uploads") => Op::CreateMultipartUpload,
            ("POST", Some(_), Some(_)) if has("uploadId") => Op::CompleteMultipartUpload,
            ("DELETE", Some(_), Some(_)) if has("uploadId") => Op::AbortMultipartUpload,
            ("DELETE", Some(_), Some(_)) => Op::DeleteObject,
            _ => Op::Other,
        }
    }
}

/// A failure the server can be told to produce instead of handling a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `503 SlowDown`, S3's throttling answer.
    SlowDown,
    /// `500 InternalError`.
    InternalError,
    /// Close the connection without answering (the client sees a reset / incomplete message).
    DropConnection,
}

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub op: Op,
    pub method: String,
    /// The path and query as sent (still percent-encoded).
    pub uri: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// The access key id of the credential scope (`None` for anonymous requests). Recorded
    /// as sent, before the signature is verified.
    pub access_key: Option<String>,
    /// The region of the credential scope.
    pub signing_region: Option<String>,
    pub security_token: Option<String>,
    /// The status answered; `None` when the connection was dropped on purpose.
    pub status: Option<u16>,
}

struct PendingFault {
    fault: Fault,
    only: Option<Op>,
    remaining: usize,
}

#[derive(Default)]
struct State {
    faults: VecDeque<PendingFault>,
    latency: Duration,
    counts: BTreeMap<Op, usize>,
    log: Vec<RequestRecord>,
}

/// Counters, request log and pending faults of one server.
#[derive(Default)]
pub struct Monitor {
    state: Mutex<State>,
}

impl Monitor {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails the next `n` requests (of operation `only`, or of any operation) with `fault`.
    /// Queued faults are consumed in the order they were added.
    pub fn fail_next(&self, n: usize, fault: Fault, only: Option<Op>) {
        if n > 0 {
            self.lock().faults.push_back(PendingFault {
                fault,
                only,
                remaining: n,
            });
        }
    }

    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Removes pending faults and latency.
    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.faults.clear();
        state.latency = Duration::ZERO;
    }

    /// Counts and logs a request; returns its index in the log, the fault to apply (if any)
    /// and the latency to add.
    pub fn admit(&self, record: RequestRecord) -> (usize, Option<Fault>, Duration) {
        let mut state = self.lock();
        *state.counts.entry(record.op).or_default() += 1;
        let op = record.op;
        state.log.push(record);
        let index = state.log.len() - 1;
        let mut fault = None;
        if let Some(pos) = state
            .faults
            .iter()
            .position(|f| f.only.is_none_or(|o| o == op))
        {
            let pending = &mut state.faults[pos];
            fault = Some(pending.fault);
            pending.remaining -= 1;
            if pending.remaining == 0 {
                state.faults.remove(pos);
            }
        }
        (index, fault, state.latency)
    }

    pub fn set_status(&self, index: usize, status: u16) {
        if let Some(r) = self.lock().log.get_mut(index) {
            r.status = Some(status);
        }
    }

    pub fn count(&self, op: Op) -> usize {
        self.lock().counts.get(&op).copied().unwrap_or(0)
    }

    pub fn counts(&self) -> BTreeMap<Op, usize> {
        self.lock().counts.clone()
    }

    pub fn total(&self) -> usize {
        self.lock().log.len()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().log.clone()
    }

    /// Zeroes the counters and empties the request log (faults stay queued).
    pub fn reset(&self) {
        let mut state = self.lock();
        state.counts.clear();
        state.log.clear();
    }
}
