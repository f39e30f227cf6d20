//! `CredentialsCell`: the current credentials snapshot, swapped atomically, and the channel
//! by which a request that S3 rejected asks for a refresh.
//!
//! Readers (every S3 request attempt) call [`CredentialsCell::load`] once, sign with the
//! snapshot they got, and drop it; an in-flight request keeps the snapshot it started with
//! while new requests get the new one, and nobody ever sees a half-swapped pair. The owner of
//! the cell (the refresher) is the only caller of [`CredentialsCell::store`].
//!
//! When S3 answers `ExpiredToken`/`InvalidToken`/`InvalidAccessKeyId` for a snapshot,
//! [`CredentialsCell::rejected`] marks exactly that snapshot as rejected, wakes the refresher
//! once however many requests ask (they all wait on the same change), and hands back the
//! new snapshot so each request can be retried once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{watch, Notify};

use super::Credentials;

/// The current credentials of a mount.
#[derive(Debug)]
pub struct CredentialsCell {
    current: ArcSwap<Credentials>,
    /// Bumped on every store; rejected requests wait for the next bump.
    generation: watch::Sender<u64>,
    /// Wakes the refresher for a forced refresh (a stored permit if it is busy).
    wake: Notify,
    /// The access key id S3 rejected, so the refresher refreshes only if it is still current
    /// (a burst of rejections of one snapshot causes one refresh).
    rejected_key: Mutex<Option<String>>,
    /// False for sources that cannot renew (static keys): a rejection cannot be cured.
    refreshable: AtomicBool,
}

impl CredentialsCell {
    /// A cell holding `initial`.
    pub fn new(initial: Credentials) -> Self {
        CredentialsCell {
            current: ArcSwap::from_pointee(initial),
            generation: watch::channel(0).0,
            wake: Notify::new(),
            rejected_key: Mutex::new(None),
            refreshable: AtomicBool::new(false),
        }
    }

    /// The snapshot to sign one request attempt with. Lock-free.
    pub fn load(&self) -> Arc<Credentials> {
        self.current.load_full()
    }

    /// Replaces the snapshot; requests already signed keep theirs.
    pub fn store(&self, fresh: Credentials) {
        self.current.store(Arc::new(fresh));
        self.generation.send_modify(|g| *g += 1);
    }

    /// Declares whether a refresher renews this cell (set by the refresher when it starts).
    pub fn set_refreshable(&self, refreshable: bool) {
        self.refreshable.store(refreshable, Ordering::Release);
    }

    pub fn is_refreshable(&self) -> bool {
        self.refreshable.load(Ordering::Acquire)
    }

    /// S3 rejected `snapshot` as expired or unknown. Returns the snapshot to retry with, or
    /// `None` when no newer one came within `wait` (or the source cannot renew).
    pub async fn rejected(
        &self,
        snapshot: &Arc<Credentials>,
        wait: Duration,
    ) -> Option<Arc<Credentials>> {
        if !self.is_refreshable() {
            return None;
        }
        let mut changes = self.generation.subscribe();
        let current = self.load();
        if !Arc::ptr_eq(&current, snapshot) {
            // Someone refreshed since this request was signed: just retry.
            return Some(current);
        }
        if let Ok(mut rejected) = self.rejected_key.lock() {
            *rejected = Some(snapshot.access_key_id.clone());
        }
        self.wake.notify_one();
        let _ = tokio::time::timeout(wait, changes.changed()).await;
        let fresh = self.load();
        (!Arc::ptr_eq(&fresh, snapshot)).then_some(fresh)
    }

    /// Refresher side: waits until a request reports a rejected snapshot.
    pub async fn refresh_requested(&self) {
        self.wake.notified().await;
    }

    /// Refresher side: true (once) when the current snapshot is the one S3 rejected.
    pub fn take_rejection(&self) -> bool {
        let Ok(mut rejected) = self.rejected_key.lock() else {
            return false;
        };
        match rejected.take() {
            Some(key) => key == self.load().access_key_id,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Secret;

    fn creds(id: &str) -> Credentials {
        Credentials {
            access_key_id: id.into(),
            secret_access_key: Secret::new("s"),
            session_token: None,
            expiry: None,
            source: "test".into(),
        }
    }

    /// A snapshot taken before a swap stays whole and unchanged after it.
    #[test]
    fn snapshot_survives_a_swap() {
        let cell = CredentialsCell::new(creds("OLD"));
        let before = cell.load();
        cell.store(creds("NEW"));
        assert_eq!(before.access_key_id, "OLD");
        assert_eq!(cell.load().access_key_id, "NEW");
    }

    /// A rejection wakes the refresher and the caller gets the refreshed snapshot.
    #[tokio::test]
    async fn rejection_waits_for_the_refresh() {
        let cell = Arc::new(CredentialsCell::new(creds("OLD")));
        cell.set_refreshable(true);
        let refresher = {
            let cell = Arc::clone(&cell);
            tokio::spawn(async move {
                cell.refresh_requested().await;
                assert!(cell.take_rejection());
                cell.store(creds("NEW"));
            })
        };
        let old = cell.load();
        let fresh = cell.rejected(&old, Duration::from_secs(5)).await;
        assert_eq!(fresh.unwrap().access_key_id, "NEW");
        refresher.await.unwrap();
    }

    /// A snapshot already replaced is not refreshed again: the caller retries at once.
    #[tokio::test]
    async fn stale_rejection_returns_current_without_refresh() {
        let cell = CredentialsCell::new(creds("OLD"));
        cell.set_refreshable(true);
        let old = cell.load();
        cell.store(creds("NEW"));
        let fresh = cell.rejected(&old, Duration::from_millis(10)).await;
        assert_eq!(fresh.unwrap().access_key_id, "NEW");
        assert!(!cell.take_rejection());
    }

    /// Static credentials cannot be cured by a refresh.
    #[tokio::test]
    async fn static_cell_gives_up_at_once() {
        let cell = CredentialsCell::new(creds("STATIC"));
        let snap = cell.load();
        assert!(cell.rejected(&snap, Duration::from_secs(5)).await.is_none());
    }
}
