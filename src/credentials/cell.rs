//! `CredentialsCell`: the current credentials snapshot, swapped atomically.
//!
//! Readers (every S3 request attempt) call [`CredentialsCell::load`] once, sign with the
//! snapshot they got, and drop it; an in-flight request keeps the snapshot it started with
//! while new requests get the new one, and nobody ever sees a half-swapped pair. The owner of
//! the cell (the refresher) is the only caller of [`CredentialsCell::store`].

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Credentials;

/// The current credentials of a mount.
#[derive(Debug)]
pub struct CredentialsCell {
    current: ArcSwap<Credentials>,
}

impl CredentialsCell {
    /// A cell holding `initial`.
    pub fn new(initial: Credentials) -> Self {
        CredentialsCell {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// The snapshot to sign one request attempt with. Lock-free.
    pub fn load(&self) -> Arc<Credentials> {
        self.current.load_full()
    }

    /// Replaces the snapshot; requests already signed keep theirs.
    pub fn store(&self, fresh: Credentials) {
        self.current.store(Arc::new(fresh));
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
}
