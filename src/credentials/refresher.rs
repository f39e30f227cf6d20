//! The refresher: a dedicated background thread that owns the mount's current credentials,
//! renews them ahead of expiry, and is the only writer of the [`CredentialsCell`].
//!
//! Timing, as the AWS SDKs do it: a snapshot that expires is renewed at
//! `expiry − min(advisory window, half its lifetime)` — the advisory window is 5 min for
//! lifetimes up to 20 min, 15 min below 90 min, 60 min otherwise — minus a little jitter so
//! many mounts do not hit IMDS or STS at the same instant.
//!
//! Failure never takes a mount down:
//! - A refresh that fails while the current credentials are valid keeps serving them (a
//!   warning, never an error to the filesystem) and retries with jittered backoff that
//!   shortens as expiry nears.
//! - A source that hands back credentials already expired, or the same key again near
//!   expiry, counts as a failure.
//! - Static stability: when the source (IMDS) is unreachable past expiry, the last
//!   credentials keep signing (S3 may still accept them for a while; IMDS itself serves
//!   expired credentials during outages) and retries go on, logged.
//! - A request that S3 rejected (`ExpiredToken`, ...) wakes the refresher at once through
//!   the cell; one refresh serves every request that asked. After a failed renewal, such a
//!   forced refresh waits out the same backoff as the scheduled retry (it is then made at
//!   that time, still as a forced one): rejections that keep coming while the source keeps
//!   failing never ask IMDS or STS faster than the backoff allows.
//!
//! The thread runs its own single-threaded tokio runtime, so a busy filesystem runtime can
//! never delay a renewal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::sync::Notify;

use super::{Credentials, CredentialsCell, SharedProvider};

/// Advisory windows (see the module doc).
const SHORT_LIFETIME: Duration = Duration::from_secs(20 * 60);
const MEDIUM_LIFETIME: Duration = Duration::from_secs(90 * 60);
const SHORT_ADVISORY: Duration = Duration::from_secs(5 * 60);
const MEDIUM_ADVISORY: Duration = Duration::from_secs(15 * 60);
const LONG_ADVISORY: Duration = Duration::from_secs(60 * 60);
/// Longest pause between retries while the credentials are still valid: a failing source
/// is asked at least this often.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5 * 60);
/// Retry pace once the credentials have expired (static stability): often, so service
/// resumes soon after the source comes back.
const EXPIRED_RETRY_DELAY: Duration = Duration::from_secs(10);
/// One call to a source may not take longer than this (its own timeouts are shorter).
const PROVIDE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the refresher is doing, for logs, `status` and `credentials`.
#[derive(Clone, Debug, Default)]
pub struct RefreshStatus {
    /// When the next renewal is due (`None`: the credentials never expire).
    pub next_refresh: Option<SystemTime>,
    /// Renewals that succeeded since the mount started.
    pub refreshes: u64,
    /// Failures in a row, and the last one's message.
    pub failures: u32,
    pub last_error: Option<String>,
}

/// The advisory window for credentials that live `lifetime`.
pub fn advisory_window(lifetime: Duration) -> Duration {
    if lifetime <= SHORT_LIFETIME {
        SHORT_ADVISORY
    } else if lifetime < MEDIUM_LIFETIME {
        MEDIUM_ADVISORY
    } else {
        LONG_ADVISORY
    }
}

/// When credentials obtained at `obtained` and expiring at `expiry` should be renewed
/// (before jitter).
pub fn refresh_at(obtained: SystemTime, expiry: SystemTime) -> SystemTime {
    let lifetime = expiry.duration_since(obtained).unwrap_or_default();
    expiry - advisory_window(lifetime).min(lifetime / 2)
}

/// How long to wait before retrying after `failures` failures in a row, at `now`, when the
/// current credentials expire at `expiry`. The longest possible wait; the caller jitters it.
pub fn retry_delay(now: SystemTime, expiry: Option<SystemTime>, failures: u32) -> Duration {
    let exponential = Duration::from_secs(1u64 << failures.clamp(1, 9).saturating_sub(1));
    let cap = match expiry {
        None => MAX_RETRY_DELAY,
        Some(e) => match e.duration_since(now) {
            // A quarter of what is left: four more tries before expiry at least.
            Ok(left) if !left.is_zero() => {
                (left / 4).clamp(Duration::from_secs(1), MAX_RETRY_DELAY)
            }
            _ => EXPIRED_RETRY_DELAY,
        },
    };
    exponential.min(cap)
}

/// A random fraction of `d` in `[d/2, d]`, so retries of many mounts spread out.
fn jitter_down(d: Duration) -> Duration {
    let f: f64 = rand::thread_rng().gen_range(0.5..=1.0);
    d.mul_f64(f)
}

/// The background refresher of one mount. Stops (and joins its thread) on drop.
pub struct Refresher {
    stop: Arc<StopSignal>,
    status: Arc<Mutex<RefreshStatus>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct StopSignal {
    stopped: AtomicBool,
    notify: Notify,
}

impl Refresher {
    /// Starts renewing `cell` from `provider`. The cell's current credentials were obtained
    /// at `obtained` (just now, usually).
    pub fn start(
        cell: Arc<CredentialsCell>,
        provider: SharedProvider,
        obtained: SystemTime,
    ) -> std::io::Result<Refresher> {
        // Fixed keys (the environment's) have nothing to renew: no thread, and a rejection
        // by S3 is reported as is.
        let refreshable = provider.refreshable();
        cell.set_refreshable(refreshable);
        let stop = Arc::new(StopSignal::default());
        let status = Arc::new(Mutex::new(RefreshStatus::default()));
        let thread = if refreshable {
            // Built here, before the thread starts, so a failure is reported to the caller;
            // it moves into the thread and is never dropped inside an async context.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop2, status2) = (Arc::clone(&stop), Arc::clone(&status));
            Some(
                std::thread::Builder::new()
                    .name("s3rolefs-credentials".into())
                    .spawn(move || {
                        runtime.block_on(run(cell, provider, obtained, stop2, status2));
                    })?,
            )
        } else {
            None
        };
        Ok(Refresher {
            stop,
            status,
            thread,
        })
    }

    /// What the refresher is doing now.
    pub fn status(&self) -> RefreshStatus {
        self.status_handle().get()
    }

    /// A handle that reads the status from elsewhere (the `status` control socket), without
    /// holding the refresher itself; after the refresher stopped it reads the last status.
    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle(Arc::clone(&self.status))
    }
}

/// A cloneable reader of one refresher's [`RefreshStatus`].
#[derive(Clone, Debug)]
pub struct StatusHandle(Arc<Mutex<RefreshStatus>>);

impl StatusHandle {
    /// What the refresher is doing now (held only for the copy).
    pub fn get(&self) -> RefreshStatus {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.stop.stopped.store(true, Ordering::Release);
        self.stop.notify.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn schedule(creds: &Credentials, obtained: SystemTime) -> Option<SystemTime> {
    let expiry = creds.expiry?;
    let at = refresh_at(obtained, expiry);
    // Jitter: up to a tenth of the lead time, at most a minute, earlier.
    let lead = expiry.duration_since(at).unwrap_or_default();
    let spread = (lead / 10).min(Duration::from_secs(60));
    Some(at - jitter_down(spread).saturating_sub(spread / 2))
}

async fn sleep_until(at: Option<SystemTime>) {
    match at {
        None => std::future::pending().await,
        Some(at) => {
            let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::time::sleep(wait).await;
        }
    }
}

async fn run(
    cell: Arc<CredentialsCell>,
    provider: SharedProvider,
    obtained: SystemTime,
    stop: Arc<StopSignal>,
    status: Arc<Mutex<RefreshStatus>>,
) {
    let mut next = schedule(&cell.load(), obtained);
    let mut failures: u32 = 0;
    // A rejection that came during a backoff: the refresh at the end of it is a forced one.
    let mut forced_pending = false;
    set_status(&status, |s| s.next_refresh = next);
    loop {
        let requested = tokio::select! {
            _ = sleep_until(next) => false,
            _ = cell.refresh_requested() => true,
            _ = stop.notify.notified() => return,
        };
        if stop.stopped.load(Ordering::Acquire) {
            return;
        }
        if requested && !cell.take_rejection() {
            // A late wake-up for a snapshot that was replaced meanwhile.
            continue;
        }
        if requested && forced_refresh_waits(failures, next, SystemTime::now()) {
            // Only this loop stores into the cell, so the rejected snapshot stays current
            // until the backoff ends, and the refresh then is still a forced one.
            forced_pending = true;
            log::debug!("credentials rejected during a retry backoff; renewing at {next:?}");
            continue;
        }
        let forced = std::mem::take(&mut forced_pending) | requested;
        let current = cell.load();
        let outcome = match tokio::time::timeout(PROVIDE_TIMEOUT, provider.provide()).await {
            Ok(Ok(fresh)) => judge(&current, fresh, forced),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "{} did not answer within {PROVIDE_TIMEOUT:?}",
                provider.name()
            )),
        };
        let now = SystemTime::now();
        match outcome {
            Ok(fresh) => {
                log::info!(
                    "credentials renewed from {} (key {}, {})",
                    fresh.source,
                    super::mask_key_id(&fresh.access_key_id),
                    describe_expiry(fresh.expiry, now)
                );
                next = schedule(&fresh, now);
                cell.store(fresh);
                failures = 0;
                set_status(&status, |s| {
                    s.refreshes += 1;
                    s.failures = 0;
                    s.last_error = None;
                    s.next_refresh = next;
                });
            }
            Err(reason) => {
                failures += 1;
                let expiry = current.expiry;
                let delay = jitter_down(retry_delay(now, expiry, failures));
                if current.is_expired_at(now) {
                    log::warn!(
                        "credentials refresh failed ({reason}); the credentials have expired: \
                         still signing with the last ones and retrying in {delay:?}"
                    );
                } else {
                    log::warn!(
                        "credentials refresh failed ({reason}); still serving the current ones \
                         ({}), retrying in {delay:?}",
                        describe_expiry(expiry, now)
                    );
                }
                next = Some(now + delay);
                set_status(&status, |s| {
                    s.failures = failures;
                    s.last_error = Some(reason.clone());
                    s.next_refresh = next;
                });
            }
        }
    }
}

/// True when a forced refresh asked at `now` must wait for `next`: a renewal failed
/// (`failures` in a row) and its backoff has not ended. Without a failure a forced refresh
/// goes at once, whenever the next scheduled renewal is due.
fn forced_refresh_waits(failures: u32, next: Option<SystemTime>, now: SystemTime) -> bool {
    failures > 0 && next.is_some_and(|next| now < next)
}

/// Accepts `fresh` unless it is already expired, or the same key again when a change was
/// needed (a forced refresh, or the current key nearing expiry).
fn judge(current: &Credentials, fresh: Credentials, forced: bool) -> Result<Credentials, String> {
    let now = SystemTime::now();
    if fresh.is_expired_at(now) {
        return Err(format!(
            "{} returned credentials that had already expired",
            fresh.source
        ));
    }
    if fresh.access_key_id == current.access_key_id {
        if forced {
            return Err(format!(
                "{} returned the key S3 just rejected",
                fresh.source
            ));
        }
        let near_expiry = current
            .expiry
            .is_some_and(|e| fresh.expiry.is_none_or(|f| f <= e));
        if near_expiry {
            return Err(format!(
                "{} returned the same key again, expiring no later",
                fresh.source
            ));
        }
    }
    Ok(fresh)
}

fn describe_expiry(expiry: Option<SystemTime>, now: SystemTime) -> String {
    match expiry {
        None => "no expiry".into(),
        Some(e) => match e.duration_since(now) {
            Ok(left) => format!("valid for {}s", left.as_secs()),
            Err(past) => format!("expired {}s ago", past.duration().as_secs()),
        },
    }
}

fn set_status(status: &Mutex<RefreshStatus>, f: impl FnOnce(&mut RefreshStatus)) {
    if let Ok(mut s) = status.lock() {
        f(&mut s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::{BoxFuture, CredentialsError, ProvideCredentials, Secret};
    use std::sync::atomic::AtomicUsize;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        T0 + Duration::from_secs(secs)
    }

    /// Short lifetimes renew at half-life; long ones an advisory window before expiry.
    #[test]
    fn refresh_time_follows_the_advisory_windows() {
        // 30 s: min(5 min, 15 s) = 15 s before expiry.
        assert_eq!(refresh_at(at(0), at(30)), at(15));
        // 1 h: min(15 min, 30 min) = 15 min before.
        assert_eq!(refresh_at(at(0), at(3600)), at(2700));
        // 6 h (IMDS): 60 min before.
        assert_eq!(refresh_at(at(0), at(6 * 3600)), at(5 * 3600));
        // 15 min: min(5 min, 7.5 min).
        assert_eq!(refresh_at(at(0), at(900)), at(600));
    }

    /// Retries grow exponentially but never past a quarter of the time left, and keep a
    /// fast pace after expiry.
    #[test]
    fn retry_delay_shortens_as_expiry_nears() {
        assert_eq!(
            retry_delay(at(0), Some(at(3600)), 1),
            Duration::from_secs(1)
        );
        assert_eq!(
            retry_delay(at(0), Some(at(3600)), 6),
            Duration::from_secs(32)
        );
        assert_eq!(
            retry_delay(at(0), Some(at(3600)), 30),
            Duration::from_secs(256)
        );
        assert_eq!(
            retry_delay(at(3590), Some(at(3600)), 30),
            Duration::from_millis(2500)
        );
        assert_eq!(
            retry_delay(at(4000), Some(at(3600)), 30),
            EXPIRED_RETRY_DELAY
        );
        assert_eq!(retry_delay(at(0), None, 30), Duration::from_secs(256));
    }

    fn creds(id: &str, expiry: Option<SystemTime>) -> Credentials {
        Credentials {
            access_key_id: id.into(),
            secret_access_key: Secret::new("s"),
            session_token: Some(Secret::new("t")),
            expiry,
            source: "test".into(),
        }
    }

    /// Expired answers and the same key near expiry are failures; a new key is accepted.
    #[test]
    fn judge_refuses_expired_and_repeated_keys() {
        let now = SystemTime::now();
        let current = creds("A", Some(now + Duration::from_secs(60)));
        assert!(judge(
            &current,
            creds("B", Some(now - Duration::from_secs(1))),
            false
        )
        .is_err());
        assert!(judge(
            &current,
            creds("A", Some(now + Duration::from_secs(60))),
            false
        )
        .is_err());
        assert!(judge(
            &current,
            creds("A", Some(now + Duration::from_secs(600))),
            true
        )
        .is_err());
        assert!(judge(
            &current,
            creds("A", Some(now + Duration::from_secs(600))),
            false
        )
        .is_ok());
        assert!(judge(
            &current,
            creds("B", Some(now + Duration::from_secs(60))),
            false
        )
        .is_ok());
    }

    /// A source handing out a new key per call, living `life`.
    struct Rotating {
        calls: AtomicUsize,
        life: Duration,
        fail: AtomicBool,
        /// Every call, failed ones included.
        asked: AtomicUsize,
    }

    impl ProvideCredentials for Rotating {
        fn name(&self) -> &str {
            "rotating"
        }
        fn provide(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
            Box::pin(async move {
                self.asked.fetch_add(1, Ordering::SeqCst);
                if self.fail.load(Ordering::SeqCst) {
                    return Err(CredentialsError::failed("rotating", "down", true));
                }
                let n = self.calls.fetch_add(1, Ordering::SeqCst);
                Ok(creds(&format!("K{n}"), Some(SystemTime::now() + self.life)))
            })
        }
    }

    /// Short-lived credentials are renewed before they expire, again and again.
    #[test]
    fn renews_short_lived_credentials_ahead_of_expiry() {
        let source = Arc::new(Rotating {
            calls: AtomicUsize::new(1),
            life: Duration::from_secs(2),
            fail: AtomicBool::new(false),
            asked: AtomicUsize::new(0),
        });
        let cell = Arc::new(CredentialsCell::new(creds(
            "K0",
            Some(SystemTime::now() + Duration::from_secs(2)),
        )));
        let refresher =
            Refresher::start(Arc::clone(&cell), source.clone(), SystemTime::now()).unwrap();
        std::thread::sleep(Duration::from_millis(3500));
        let current = cell.load();
        assert_ne!(current.access_key_id, "K0");
        assert!(!current.is_expired_at(SystemTime::now()));
        assert!(
            refresher.status().refreshes >= 2,
            "{:?}",
            refresher.status()
        );
    }

    /// While the source is down the last credentials stay in the cell, and the failure is
    /// recorded; when it is back, renewal resumes.
    #[test]
    fn outage_keeps_current_credentials_and_recovers() {
        let source = Arc::new(Rotating {
            calls: AtomicUsize::new(1),
            life: Duration::from_secs(2),
            fail: AtomicBool::new(true),
            asked: AtomicUsize::new(0),
        });
        let cell = Arc::new(CredentialsCell::new(creds(
            "K0",
            Some(SystemTime::now() + Duration::from_secs(2)),
        )));
        let refresher =
            Refresher::start(Arc::clone(&cell), source.clone(), SystemTime::now()).unwrap();
        std::thread::sleep(Duration::from_millis(2500));
        assert_eq!(cell.load().access_key_id, "K0");
        assert!(refresher.status().failures >= 1);
        source.fail.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(12_000));
        assert_ne!(cell.load().access_key_id, "K0", "{:?}", refresher.status());
    }

    /// After a failure a forced refresh waits for the backoff's end; without one, or once
    /// the backoff is over, it goes at once.
    #[test]
    fn forced_refresh_waits_out_a_failure_backoff() {
        assert!(!forced_refresh_waits(0, Some(at(3600)), at(0)));
        assert!(forced_refresh_waits(1, Some(at(10)), at(5)));
        assert!(!forced_refresh_waits(3, Some(at(10)), at(10)));
        assert!(!forced_refresh_waits(1, None, at(5)));
    }

    /// Rejections that keep coming while the source keeps failing ask it no faster than
    /// the retry backoff: one call at once, then one per backoff, single-flight.
    #[test]
    fn forced_refreshes_share_the_backoff_after_failures() {
        let source = Arc::new(Rotating {
            calls: AtomicUsize::new(1),
            life: Duration::from_secs(3600),
            fail: AtomicBool::new(true),
            asked: AtomicUsize::new(0),
        });
        let cell = Arc::new(CredentialsCell::new(creds(
            "K0",
            Some(SystemTime::now() + Duration::from_secs(3600)),
        )));
        let refresher =
            Refresher::start(Arc::clone(&cell), source.clone(), SystemTime::now()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // 1.4 s of requests rejected every 20 ms. Backoffs after 1 and 2 failures are at
        // least 0.5 s and 1 s: calls at 0, then within [0.5, 1] s, the third not before 1.5 s.
        let started = std::time::Instant::now();
        runtime.block_on(async {
            while started.elapsed() < Duration::from_millis(1400) {
                let snapshot = cell.load();
                assert!(cell
                    .rejected(&snapshot, Duration::from_millis(20))
                    .await
                    .is_none());
            }
        });
        let asked = source.asked.load(Ordering::SeqCst);
        assert!((1..=2).contains(&asked), "{asked} calls in 1.4 s");
        assert_eq!(cell.load().access_key_id, "K0");
        assert!(refresher.status().failures >= 1);
    }
}
