//! What tests observe and switch on one server, at run time: per-operation counters and the
//! request log; the faults of single requests (see `faults.rs`); and the link — added latency,
//! bandwidth per direction, refused connections. A new server has none of it switched on, and
//! `clear_faults` switches all of it off again, so nothing leaks from one test to the next.
//!
//! Requests are counted and logged on arrival, before s3s sees them, so counters include
//! requests failed on purpose or refused by auth, which is what retry tests need to count.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::bandwidth::Bandwidth;
use super::exchange::{Exchange, Outcome, RequestRecord};
use super::faults::{Fault, FaultPlan};
use super::op::Op;

/// The port refuses connections until `until` (or until ended).
#[derive(Clone, Copy, Debug)]
pub struct Refusal {
    pub until: Option<Instant>,
}

impl Refusal {
    pub fn active(&self, now: Instant) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

/// Counters, request log, faults and link conditions of one server.
pub struct Monitor {
    // A std mutex: never held across an await, and the test thread takes it too.
    state: Mutex<State>,
    /// Request bodies, client to server.
    upload: Bandwidth,
    /// Response bodies, server to client.
    download: Bandwidth,
    /// Bumped to release hung requests; each hang watches it from its arrival.
    release: watch::Sender<u64>,
    /// Whether the port refuses connections; the accept loop watches it.
    refusal: watch::Sender<Option<Refusal>>,
    /// The accept loop holds a bound listener (false while refusing or stopped).
    listening: AtomicBool,
    /// The server is being stopped: exchanges ending now were cut by that, not by clients.
    stopping: AtomicBool,
}

struct State {
    plan: FaultPlan,
    latency: Duration,
    counts: BTreeMap<Op, usize>,
    log: Vec<RequestRecord>,
    /// Id of `log[0]`: ids stay valid for exchanges in flight when the log is emptied.
    first_id: u64,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            state: Mutex::new(State {
                plan: FaultPlan::default(),
                latency: Duration::ZERO,
                counts: BTreeMap::new(),
                log: Vec::new(),
                first_id: 0,
            }),
            upload: Bandwidth::default(),
            download: Bandwidth::default(),
            release: watch::Sender::new(0),
            refusal: watch::Sender::new(None),
            listening: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        }
    }
}

/// What the front service needs to handle an arriving request.
pub struct Admission {
    pub exchange: Arc<Exchange>,
    pub fault: Option<Fault>,
    pub latency: Duration,
    /// For a [`Fault::Hang`]: resolves when the hang is over.
    pub hang: Option<HangRelease>,
}

/// The end of one hang: a release (`clear_faults`, `end_outage`) or the end of the timed
/// outage that caused it.
pub struct HangRelease {
    released: watch::Receiver<u64>,
    until: Option<Instant>,
}

impl HangRelease {
    pub async fn wait(mut self) {
        let deadline = async {
            match self.until {
                Some(until) => tokio::time::sleep_until(until.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // An error means the monitor is gone, and with it anyone who could release us.
            _ = self.released.changed() => {}
            _ = deadline => {}
        }
    }
}

impl Monitor {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- faults of single requests ------------------------------------------------------

    /// Gives `fault` to the next `n` requests (of operation `only`, or of any operation).
    /// Queued faults are consumed in the order they were added.
    pub fn fail_next(&self, n: usize, fault: Fault, only: Option<Op>) {
        self.lock().plan.queue(n, fault, only);
    }

    /// Gives `fault` to each request (of `only`, or of any operation) with probability
    /// `fraction`, e.g. 0.1 for 10 %; replaces the rate set for the same fault and filter,
    /// 0 removes it.
    pub fn fail_rate(&self, fraction: f64, fault: Fault, only: Option<Op>) {
        self.lock().plan.set_rate(fraction, fault, only);
    }

    /// Makes the draws of `fail_rate` repeat from `seed` (they are random otherwise).
    pub fn seed_faults(&self, seed: u64) {
        self.lock().plan.seed(seed);
    }

    /// Gives `fault` to every request, for `duration` or until `end_outage`/`clear_faults`.
    /// An outage of [`Fault::Hang`] holds every request until it ends, then serves them.
    pub fn outage(&self, fault: Fault, duration: Option<Duration>) {
        self.lock().plan.start_outage(fault, duration);
    }

    /// Closes the port, for `duration` or until `end_outage`/`clear_faults`: new connections
    /// are refused, and requests on connections already open are dropped unanswered. The port
    /// is closed when this returns.
    pub fn refuse_connections(&self, duration: Option<Duration>) {
        self.refusal.send_replace(Some(Refusal {
            until: duration.map(|d| Instant::now() + d),
        }));
        self.await_listening(false);
    }

    /// Ends an outage and refused connections, and releases hung requests.
    pub fn end_outage(&self) {
        self.lock().plan.end_outage();
        self.release_hangs();
        self.accept_again();
    }

    // ---- the link -----------------------------------------------------------------------

    /// Delays every request by `latency` before handling it.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Limits request bodies, all connections together, to `bytes_per_sec`; `None` lifts it.
    pub fn set_upload_bandwidth(&self, bytes_per_sec: Option<u64>) {
        self.upload.set(bytes_per_sec);
    }

    /// Limits response bodies, all connections together, to `bytes_per_sec`; `None` lifts it.
    pub fn set_download_bandwidth(&self, bytes_per_sec: Option<u64>) {
        self.download.set(bytes_per_sec);
    }

    pub fn upload_link(&self) -> &Bandwidth {
        &self.upload
    }

    pub fn download_link(&self) -> &Bandwidth {
        &self.download
    }

    /// Removes every fault and link condition (queued, rates, outage, refusal, latency,
    /// bandwidth) and releases hung requests.
    pub fn clear_faults(&self) {
        {
            let mut state = self.lock();
            state.plan.clear();
            state.latency = Duration::ZERO;
        }
        self.upload.set(None);
        self.download.set(None);
        self.release_hangs();
        self.accept_again();
    }

    fn release_hangs(&self) {
        self.release.send_modify(|generation| *generation += 1);
    }

    /// Lifts a refusal; the port accepts again when this returns.
    fn accept_again(&self) {
        if self.refusal.send_replace(None).is_some() {
            self.await_listening(true);
        }
    }

    /// Waits (briefly) until the accept loop has opened or closed the port, so the test's
    /// next connection does not race it. A stopped server has no loop to wait for.
    fn await_listening(&self, listening: bool) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.is_stopping()
            && self.listening.load(Ordering::Acquire) != listening
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    // ---- the accept loop and the front service --------------------------------------------

    pub fn watch_refusal(&self) -> watch::Receiver<Option<Refusal>> {
        self.refusal.subscribe()
    }

    pub fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::Release);
    }

    pub fn set_stopping(&self, stopping: bool) {
        self.stopping.store(stopping, Ordering::Release);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Counts and logs an arriving request and picks its fault; `bodiless` tells whether the
    /// request has no body to read.
    pub fn admit(
        self: &Arc<Self>,
        mut record: RequestRecord,
        summary: String,
        bodiless: bool,
    ) -> Admission {
        let now = Instant::now();
        let refused = self.refusal.borrow().is_some_and(|r| r.active(now));
        let mut state = self.lock();
        *state.counts.entry(record.op).or_default() += 1;
        let (fault, hang_until) = if refused {
            (Some(Fault::DropConnection), None)
        } else {
            match state.plan.pick(record.op, now) {
                Some(picked) => (Some(picked.fault), picked.hang_until),
                None => (None, None),
            }
        };
        // Subscribed under the lock that `clear_faults` changes the plan under, so a release
        // that follows this admission cannot be missed.
        let hang = (fault == Some(Fault::Hang)).then(|| HangRelease {
            released: self.release.subscribe(),
            until: hang_until,
        });
        record.fault = fault;
        record.outcome = Outcome::InFlight;
        let id = state.first_id + state.log.len() as u64;
        state.log.push(record);
        let latency = state.latency;
        drop(state);
        Admission {
            exchange: Exchange::new(self.clone(), id, now, summary, bodiless),
            fault,
            latency,
            hang,
        }
    }

    /// Writes how exchange `id` ended into its record (if the log still holds it).
    pub fn settle(&self, id: u64, update: impl FnOnce(&mut RequestRecord)) {
        let mut state = self.lock();
        let Some(index) = id.checked_sub(state.first_id) else {
            return;
        };
        if let Some(record) = state.log.get_mut(index as usize) {
            update(record);
        }
    }

    // ---- observation --------------------------------------------------------------------

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

    /// Requests whose client hung up before the exchange ended (mid-upload, while waiting,
    /// mid-download): with no fault switched on, each is a request that failed for slowness.
    pub fn requests_cut_by_client(&self) -> Vec<RequestRecord> {
        self.lock()
            .log
            .iter()
            .filter(|r| r.cut_by_client())
            .cloned()
            .collect()
    }

    /// Every request so far, once none is in flight or `timeout` has passed: a client that
    /// gave up is noticed by the server a moment later (sooner or later as its buffers drain).
    pub async fn settled_requests(&self, timeout: Duration) -> Vec<RequestRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if Instant::now() >= deadline || requests.iter().all(|r| r.outcome != Outcome::InFlight)
            {
                return requests;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Zeroes the counters and empties the request log (faults stay on).
    pub fn reset(&self) {
        let mut state = self.lock();
        state.counts.clear();
        state.first_id += state.log.len() as u64;
        state.log.clear();
    }
}
