//! HEADs of a listed directory's entries, asked ahead of the `stat`s that will want them.
//!
//! A listing shows no metadata, so the mode, owner and times of a listed file are known
//! only after a HEAD of it; the kernel enforces whatever attributes it is handed, so a
//! listing's guess is never given as the answer (see `Attr::exact`). `ls -l` then asks for
//! every entry one after another. Like reads ahead, [`Heads`] notices the walk through the
//! listing and keeps a growing window of HEADs in flight ahead of it, so each `stat` finds
//! its answer there or joins the request already under way. A single `stat` in a large
//! directory costs a handful of HEADs, not one per entry.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::stream::{self, StreamExt};
use lru::LruCache;

use super::handle::SnapshotEntry;
use crate::s3::{ObjectClient, ObjectMeta, S3Error};

/// HEADs in flight at once for one window.
pub const HEAD_CONCURRENCY: usize = 32;
/// The first window, and the largest.
const FIRST_WINDOW: usize = 8;
const MAX_WINDOW: usize = 512;
/// Answers kept for the `stat`s still to come.
const KEPT_ANSWERS: usize = 16_384;

/// What a HEAD said, in a form two waiters can share.
#[derive(Clone, Debug)]
enum Answer {
    Found(ObjectMeta),
    Missing,
    /// Any other failure: the waiter asks again itself (and gets the error).
    Failed,
}

type SharedHead = Shared<BoxFuture<'static, Answer>>;

/// Where the walk through one directory's listing is.
#[derive(Clone, Debug, Default)]
struct Window {
    /// Positions below this were asked for.
    next: usize,
    size: usize,
    /// The listing walked, kept past its TTL: a walk longer than the TTL goes on through
    /// it (each HEAD still says whether its entry exists).
    listing: Option<Arc<Vec<SnapshotEntry>>>,
}

/// The HEADs asked ahead, and their answers.
pub struct Heads<C: ObjectClient> {
    client: Arc<C>,
    state: Mutex<State>,
    /// How long an answer stands for the object (the metadata TTL).
    ttl: Duration,
}

struct State {
    in_flight: HashMap<String, SharedHead>,
    answers: LruCache<String, (Instant, Answer)>,
    windows: HashMap<u64, Window>,
}

impl<C: ObjectClient> Heads<C> {
    pub fn new(client: Arc<C>, ttl: Duration) -> Arc<Self> {
        Arc::new(Heads {
            client,
            state: Mutex::new(State {
                in_flight: HashMap::new(),
                answers: LruCache::new(
                    NonZeroUsize::new(KEPT_ANSWERS).unwrap_or(NonZeroUsize::MIN),
                ),
                windows: HashMap::new(),
            }),
            ttl,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Plain maps, consistent between statements.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// HeadObject of `key`: an answer asked ahead and still fresh, or the request already
    /// in flight for it, or a new one.
    pub async fn head(&self, key: &str) -> Result<ObjectMeta, S3Error> {
        let waiting = {
            let mut state = self.state();
            match state.answers.pop(key) {
                Some((at, answer)) if at.elapsed() < self.ttl => Some(Ok(answer)),
                _ => state.in_flight.get(key).cloned().map(Err),
            }
        };
        let answer = match waiting {
            Some(Ok(answer)) => answer,
            Some(Err(shared)) => shared.await,
            None => Answer::Failed,
        };
        match answer {
            Answer::Found(meta) => Ok(meta),
            Answer::Missing => Err(S3Error::NoSuchKey {
                key: key.to_string(),
            }),
            Answer::Failed => self.client.head_object(key).await,
        }
    }

    /// The listing of `dir` a walk went through, fresh or not.
    pub fn walked_listing(&self, dir: u64) -> Option<Arc<Vec<SnapshotEntry>>> {
        self.state().windows.get(&dir)?.listing.clone()
    }

    /// The walk of directory `dir` is at `position` of `listing`, whose entries from there
    /// on are `keys(from, to)` (the keys not known yet, in listing order): asks for the next
    /// window of them when the walk goes on through it.
    pub fn walk(
        self: &Arc<Self>,
        dir: u64,
        listing: &Arc<Vec<SnapshotEntry>>,
        position: usize,
        keys: impl FnOnce(usize, usize) -> Vec<String>,
    ) {
        let (from, to) = {
            let mut state = self.state();
            let window = state.windows.entry(dir).or_default();
            if !window
                .listing
                .as_ref()
                .is_some_and(|l| Arc::ptr_eq(l, listing))
            {
                *window = Window {
                    listing: Some(Arc::clone(listing)),
                    ..Window::default()
                };
            }
            if position < window.next {
                // Inside the window: move it on once half of it was walked.
                if window.next - position > window.size / 2 {
                    return;
                }
                window.size = (window.size * 2).min(MAX_WINDOW);
            } else {
                window.size = FIRST_WINDOW;
                window.next = position + 1;
            }
            let from = window.next;
            window.next = position + 1 + window.size;
            (from, window.next)
        };
        let keys = keys(from, to);
        if keys.is_empty() {
            return;
        }
        let mut started = Vec::new();
        {
            let mut state = self.state();
            for key in keys {
                if state.in_flight.contains_key(&key) || state.answers.contains(&key) {
                    continue;
                }
                let client = Arc::clone(&self.client);
                let asked = key.clone();
                let head = async move {
                    match client.head_object(&asked).await {
                        Ok(meta) => Answer::Found(meta),
                        Err(S3Error::NoSuchKey { .. }) => Answer::Missing,
                        Err(e) => {
                            log::debug!("HEAD of {asked:?} asked ahead: {e}");
                            Answer::Failed
                        }
                    }
                }
                .boxed()
                .shared();
                state.in_flight.insert(key.clone(), head.clone());
                started.push((key, head));
            }
        }
        if started.is_empty() {
            return;
        }
        let heads = Arc::clone(self);
        tokio::spawn(async move {
            stream::iter(started)
                .for_each_concurrent(HEAD_CONCURRENCY, |(key, head)| {
                    let heads = Arc::clone(&heads);
                    async move {
                        let answer = head.await;
                        let mut state = heads.state();
                        state.in_flight.remove(&key);
                        if !matches!(answer, Answer::Failed) {
                            state.answers.put(key, (Instant::now(), answer));
                        }
                    }
                })
                .await;
        });
    }

    /// The listing of `dir` was dropped or renewed: its walk starts over.
    pub fn forget_walk(&self, dir: u64) {
        self.state().windows.remove(&dir);
    }

    /// `key` was changed through this mount: an answer asked before is stale.
    pub fn invalidate(&self, key: &str) {
        self.state().answers.pop(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::memory::MemoryClient;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("k{i:04}")).collect()
    }

    /// A walk through a listing asks ahead in a growing window; the answers serve the
    /// `stat`s without a HEAD of their own.
    #[tokio::test]
    async fn a_walk_is_served_from_heads_asked_ahead() {
        let client = Arc::new(MemoryClient::new());
        let all = keys(200);
        for k in &all {
            client.insert(k, "x");
        }
        let heads = Heads::new(Arc::clone(&client), Duration::from_secs(60));
        let listing = Arc::new(Vec::new());
        for (i, key) in all.iter().enumerate() {
            heads.walk(1, &listing, i, |from, to| {
                all[from.min(200)..to.min(200)].to_vec()
            });
            heads.head(key).await.unwrap();
        }
        // Every key asked once: ahead, or by its own stat (the first one).
        assert_eq!(client.counters().head_object, 200);
        assert!(matches!(
            heads.head("missing").await,
            Err(S3Error::NoSuchKey { .. })
        ));
    }

    /// One `stat` in a large directory asks only a small window ahead.
    #[tokio::test]
    async fn a_single_stat_asks_a_small_window() {
        let client = Arc::new(MemoryClient::new());
        let all = keys(1000);
        for k in &all {
            client.insert(k, "x");
        }
        let heads = Heads::new(Arc::clone(&client), Duration::from_secs(60));
        heads.walk(1, &Arc::new(Vec::new()), 500, |from, to| {
            all[from..to].to_vec()
        });
        heads.head(&all[500]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(client.counters().head_object as usize, 1 + FIRST_WINDOW);
    }
}
