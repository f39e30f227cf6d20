//! Write-back (`--write-back`): `close` and `fsync` return once the file is durable on the
//! local disk (its data synced, then its journal record), and the upload runs later, in the
//! background, in the order files were closed.
//!
//! A closed file's writer stays in the writer table until its upload is done, so the file
//! reads, stats and lists as written meanwhile (read-your-writes), and a file opened and
//! changed again while it waits joins that writer and goes up once, in its latest version.
//! [`WriteBack`] is the queue: one entry per file, kept at the place of its first close
//! not yet uploaded; [`WRITE_BACK_WORKERS`] tasks take the entry whose turn came first
//! (a second after the last close of any file, [`QUIET`], but at most [`SETTLE`] after its
//! own; or its next retry; ties in queue order). A failure
//! for a passing reason (network down, throttling, credentials expired, the local disk
//! full) is retried with growing pauses for as long as the mount lives; one that cannot
//! pass (access denied, say) is tried again only now and then, and shown. An upload that
//! finds another client's newer version at the key puts this mount's version beside it
//! (`conflict_name`) and keeps both. At unmount what is still queued stays in the journal,
//! complete, and the next mount of the bucket uploads it (`upload::pending`); so does a
//! crash.
//!
//! The queue is bounded in bytes (`--write-back-max-size`): past the bound a `close` waits
//! for room rather than failing.
//!
//! Directories (`mkdir`) queue too: their marker `dir/` is an entry like a file's, whose
//! writer lives in the markers' table rather than the writers' (see `markers`).
//!
//! Offline: when S3 stops answering, lookups, attributes, listings and opens are answered
//! from what this mount saw — and, for a directory it has not listed, from the listing an
//! earlier mount kept (`cache::listings`, written every minute and at unmount).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use log::{info, warn};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::dir::EntryKind;
use super::handle::SnapshotEntry;
use super::inode::ChildFacts;
use super::{FsError, S3Filesystem};
use crate::cache::listings::{seconds, StoredEntry};
use crate::s3::{ObjectClient, ObjectMeta, S3Error};
use crate::upload::{unix_now, OpenWriter, Passing, Queued, UploadError};

/// Uploads running at once. Queued files are mostly small (a save, an unpacked tree), so
/// what bounds their pace is round trips, not bandwidth: eight overlap them.
pub const WRITE_BACK_WORKERS: usize = 8;

/// How long an operation of a write-back mount waits for a network that does not answer at
/// all before it fails (or, for what this mount saw, is answered from that): see
/// `S3Client::set_unreachable_budget`.
pub const UNREACHABLE_BUDGET: Duration = Duration::from_secs(5);

/// How often an offline mount asks whether S3 answers again.
const PROBE: Duration = Duration::from_secs(5);

/// How long a directory made by a write-back mount is known empty but for what the mount
/// put in it (see `mkdir`), when the metadata TTL is shorter.
pub const NEW_DIR_TTL: Duration = Duration::from_secs(60);

/// How often the listings seen are kept on disk for a later mount's offline answers (and
/// at unmount).
const KEEP_LISTINGS_EVERY: Duration = Duration::from_secs(60);

/// How long a closed file waits before its upload starts, from its last close, at most:
/// what programs do right after a close (`tar` and `cp -p` set times and modes, editors
/// rename, a build rewrites) then rides with the one upload instead of costing another (a
/// copy of the object onto itself), and a file closed again meanwhile goes up once.
/// rclone's `--vfs-write-back` waits 5 s by default.
pub const SETTLE: Duration = Duration::from_secs(5);

/// ...but once no file was closed for this long, the files settling go at once: a save
/// goes up a second after it, and a burst of closes (`tar x`, a build, a copy) has the
/// disk and the processors to itself until it pauses or has waited [`SETTLE`].
pub const QUIET: Duration = Duration::from_secs(1);

/// The first and the longest pause before a failed upload is tried again.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(60);
/// An upload that cannot pass (access denied…) is tried again this seldom.
const FAILED_RETRY: Duration = Duration::from_secs(300);

/// A file waiting for its upload, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedFile {
    /// Its place in the queue: files closed earlier have lower numbers.
    pub seq: u64,
    /// The file's key.
    pub key: String,
    pub size: u64,
    /// `queued`, `uploading`, `retrying: <reason>`, `failed: <reason>`.
    pub state: String,
    /// When its oldest change not in S3 was closed (seconds since the epoch).
    pub since: u64,
    pub attempts: u32,
}

/// The write-back queue, as `status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteBackStatus {
    pub files: Vec<QueuedFile>,
    /// Bytes queued, and the bound (`--write-back-max-size`).
    pub bytes: u64,
    pub max_bytes: u64,
    /// The number the last file queued got: `sync` waits until no file numbered up to
    /// this one is left.
    pub last_seq: u64,
}

#[derive(Debug)]
struct Entry {
    ino: u64,
    file: QueuedFile,
    busy: bool,
    /// Closed again while its upload ran: it stays queued after that upload.
    again: bool,
    next_try: Instant,
    pause: Duration,
}

#[derive(Debug, Default)]
struct Queue {
    last_seq: u64,
    /// By place in the queue.
    entries: BTreeMap<u64, Entry>,
    by_ino: HashMap<u64, u64>,
    /// The entries not being uploaded, by the time their turn comes (then by place): a
    /// worker finds the next one without walking the queue (`tar x` queues thousands of
    /// files, and every upload that ends wakes every worker).
    due: BTreeSet<(Instant, u64)>,
    bytes: u64,
    /// Entries waiting out their [`SETTLE`] after a close (not a retry's pause).
    settling: BTreeSet<u64>,
    /// The last close queued.
    last_close: Option<Instant>,
}

impl Queue {
    /// When the settling entries go if no file is closed meanwhile ([`QUIET`]).
    fn quiet_at(&self) -> Option<Instant> {
        match self.settling.is_empty() {
            true => None,
            false => self.last_close.map(|at| at + QUIET),
        }
    }

    /// The mount is quiet: every settling entry is due now.
    fn release_settling(&mut self, now: Instant) {
        for seq in std::mem::take(&mut self.settling) {
            let settling = self
                .entries
                .get(&seq)
                .is_some_and(|e| e.next_try > now && e.file.state == "queued");
            if settling {
                self.set_due(seq, now);
            }
        }
    }

    /// Entry `seq` (not busy) is next tried at `at`.
    fn set_due(&mut self, seq: u64, at: Instant) {
        if let Some(entry) = self.entries.get_mut(&seq) {
            if !entry.busy {
                self.due.remove(&(entry.next_try, seq));
                self.due.insert((at, seq));
            }
            entry.next_try = at;
        }
    }
}

/// The queue of files closed and not yet uploaded (see the module doc).
#[derive(Debug)]
pub struct WriteBack {
    queue: Mutex<Queue>,
    /// New work, or an upload ended.
    changed: Notify,
    max_bytes: u64,
    closing: AtomicBool,
}

/// How one upload went.
pub(super) enum Outcome {
    Done,
    /// Try again after a pause; `cannot`: it will not pass by itself.
    Failed {
        why: String,
        cannot: bool,
    },
}

impl WriteBack {
    pub fn new(max_bytes: u64) -> WriteBack {
        WriteBack {
            queue: Mutex::new(Queue::default()),
            changed: Notify::new(),
            max_bytes,
            closing: AtomicBool::new(false),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Plain maps consistent between statements: a panic elsewhere leaves them usable.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `ino` in the queue (at the end), or, already there, keeps its place and takes
    /// the new size.
    pub(super) fn enqueue(&self, ino: u64, key: String, size: u64) {
        let mut guard = self.queue();
        let queue = &mut *guard;
        let now = Instant::now();
        queue.last_close = Some(now);
        let was_empty = queue.entries.is_empty();
        if let Some(&seq) = queue.by_ino.get(&ino) {
            queue.settling.insert(seq);
            let Some(entry) = queue.entries.get_mut(&seq) else {
                return;
            };
            queue.bytes = queue.bytes - entry.file.size + size;
            entry.file.size = size;
            entry.file.key = key;
            entry.again |= entry.busy;
            let at = entry.next_try.max(now + SETTLE);
            queue.set_due(seq, at);
        } else {
            queue.last_seq += 1;
            let seq = queue.last_seq;
            queue.by_ino.insert(ino, seq);
            queue.bytes += size;
            let at = now + SETTLE;
            queue.due.insert((at, seq));
            queue.settling.insert(seq);
            queue.entries.insert(
                seq,
                Entry {
                    ino,
                    file: QueuedFile {
                        seq,
                        key,
                        size,
                        state: "queued".into(),
                        since: unix_now(),
                        attempts: 0,
                    },
                    busy: false,
                    again: false,
                    next_try: at,
                    pause: FIRST_RETRY,
                },
            );
        }
        drop(guard);
        // Workers wait at most until the next entry is due or the mount is quiet: only a
        // queue that was empty has them waiting for news.
        if was_empty {
            self.changed.notify_waiters();
        }
    }

    /// A queued file was renamed: `status` shows its new name.
    pub fn renamed(&self, ino: u64, key: &str) {
        let mut guard = self.queue();
        let queue = &mut *guard;
        if let Some(entry) = queue
            .by_ino
            .get(&ino)
            .and_then(|seq| queue.entries.get_mut(seq))
        {
            entry.file.key = key.to_string();
        }
    }

    /// `ino` needs no upload any more (a directory removed before its marker went up):
    /// out of the queue at once, so `sync` does not wait for it. An upload under way keeps
    /// its entry until it ends.
    pub(super) fn forget(&self, ino: u64) {
        let mut guard = self.queue();
        let queue = &mut *guard;
        let Some(&seq) = queue.by_ino.get(&ino) else {
            return;
        };
        if let Some(entry) = queue.entries.get(&seq).filter(|e| !e.busy) {
            queue.due.remove(&(entry.next_try, seq));
            queue.settling.remove(&seq);
            queue.bytes = queue.bytes.saturating_sub(entry.file.size);
            queue.entries.remove(&seq);
            queue.by_ino.remove(&ino);
        }
        drop(guard);
        self.changed.notify_waiters();
    }

    /// True when `ino` waits in the queue.
    pub fn is_queued(&self, ino: u64) -> bool {
        self.queue().by_ino.contains_key(&ino)
    }

    /// Waits until `size` more bytes fit under the bound, and one more file under
    /// [`files_bound`] (at once when the queue is empty, whatever the size: one file
    /// always goes).
    async fn room_for(&self, ino: u64, size: u64) {
        loop {
            let changed = self.changed.notified();
            {
                let queue = self.queue();
                if queue.entries.is_empty()
                    || queue.by_ino.contains_key(&ino)
                    || (queue.bytes.saturating_add(size) <= self.max_bytes
                        && queue.entries.len() < files_bound())
                    || self.closing.load(Ordering::Acquire)
                {
                    return;
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), changed).await;
        }
    }

    /// The entry whose turn came first (of those due at once, the one closed first),
    /// marked busy.
    #[cfg(test)]
    fn take(&self) -> Option<(u64, u64)> {
        self.take_or_wait().ok()
    }

    /// [`WriteBack::take`], or when nothing is due, when the next entry will be.
    fn take_or_wait(&self) -> Result<(u64, u64), Option<Instant>> {
        let now = Instant::now();
        let mut guard = self.queue();
        let queue = &mut *guard;
        if queue.quiet_at().is_some_and(|quiet| quiet <= now) {
            queue.release_settling(now);
        }
        let &(at, seq) = queue.due.first().ok_or(None)?;
        if at > now {
            let wake = queue.quiet_at().map_or(at, |quiet| quiet.min(at));
            return Err(Some(wake));
        }
        queue.due.remove(&(at, seq));
        queue.settling.remove(&seq);
        let entry = queue.entries.get_mut(&seq).ok_or(None)?;
        entry.busy = true;
        entry.file.state = "uploading".into();
        entry.file.attempts += 1;
        Ok((seq, entry.ino))
    }

    /// An upload of entry `seq` ended.
    fn finish(&self, seq: u64, outcome: Outcome) {
        let mut queue = self.queue();
        match outcome {
            Outcome::Done => match queue.entries.get_mut(&seq) {
                Some(entry) if entry.again => {
                    // What the upload sent is older than the last close: once more.
                    entry.again = false;
                    entry.busy = false;
                    entry.file.state = "queued".into();
                    let at = entry.next_try;
                    queue.due.insert((at, seq));
                }
                Some(_) => {
                    if let Some(entry) = queue.entries.remove(&seq) {
                        queue.by_ino.remove(&entry.ino);
                        queue.bytes = queue.bytes.saturating_sub(entry.file.size);
                    }
                }
                None => {}
            },
            Outcome::Failed { why, cannot } => {
                if let Some(entry) = queue.entries.get_mut(&seq) {
                    entry.busy = false;
                    let wait = if cannot { FAILED_RETRY } else { entry.pause };
                    entry.pause = (entry.pause * 2).min(LONGEST_RETRY);
                    entry.next_try = Instant::now() + wait;
                    entry.file.state = if cannot {
                        format!("failed: {why}")
                    } else {
                        format!("retrying: {why}")
                    };
                    let at = entry.next_try;
                    queue.due.insert((at, seq));
                }
            }
        }
        drop(queue);
        self.changed.notify_waiters();
    }

    /// After a passing failure that says S3 cannot be reached at all: the entries waiting
    /// behind wait as long (each would only fail the same way).
    fn hold_all(&self, until: Instant, why: &str) {
        let mut guard = self.queue();
        let queue = &mut *guard;
        for (seq, entry) in queue.entries.iter_mut().filter(|(_, e)| !e.busy) {
            if entry.next_try < until {
                queue.due.remove(&(entry.next_try, *seq));
                queue.due.insert((until, *seq));
                entry.next_try = until;
                entry.file.state = format!("retrying: {why}");
            }
        }
    }

    /// S3 answers again: what waited for it is tried now.
    fn release_all(&self) {
        let now = Instant::now();
        let mut guard = self.queue();
        let queue = &mut *guard;
        for (seq, entry) in queue.entries.iter_mut().filter(|(_, e)| !e.busy) {
            if entry.file.state.starts_with("retrying") {
                queue.due.remove(&(entry.next_try, *seq));
                queue.due.insert((now, *seq));
                entry.next_try = now;
                entry.pause = FIRST_RETRY;
            }
        }
        drop(guard);
        self.changed.notify_waiters();
    }

    /// What `status` shows.
    pub fn status(&self) -> WriteBackStatus {
        let queue = self.queue();
        WriteBackStatus {
            files: queue.entries.values().map(|e| e.file.clone()).collect(),
            bytes: queue.bytes,
            max_bytes: self.max_bytes,
            last_seq: queue.last_seq,
        }
    }

    /// The queue's entries in order, for the unmount.
    fn inos(&self) -> Vec<u64> {
        self.queue().entries.values().map(|e| e.ino).collect()
    }

    /// Until the queue is empty, or only holds what cannot pass by itself.
    async fn drained(&self) {
        loop {
            let changed = self.changed.notified();
            let left = self
                .queue()
                .entries
                .values()
                .any(|e| e.busy || !e.file.state.starts_with("failed"));
            if !left {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), changed).await;
        }
    }
}

impl<C: ObjectClient> S3Filesystem<C> {
    /// Write-back's `close` and `fsync`: the file is made durable locally and queued. Fails
    /// only when the local disk does.
    pub(super) async fn queue_upload(
        &self,
        ino: u64,
        writer: &OpenWriter<C>,
    ) -> Result<(), FsError> {
        let Some(queue) = &self.write_back else {
            return Ok(());
        };
        if !writer.is_dirty() || writer.is_unlinked() {
            return Ok(());
        }
        queue.room_for(ino, writer.size()).await;
        writer.persist().await.map_err(|e| {
            log::error!("{e}");
            FsError::Upload(e)
        })?;
        queue.enqueue(ino, writer.key(), writer.size());
        Ok(())
    }

    /// Starts the write-back uploads on `runtime` (nothing without `--write-back`).
    pub fn start_write_back(self: &Arc<Self>, runtime: &tokio::runtime::Handle)
    where
        C: 'static,
    {
        if self.write_back.is_none() {
            return;
        }
        for _ in 0..WRITE_BACK_WORKERS {
            let fs = Arc::clone(self);
            runtime.spawn(async move { fs.write_back_worker().await });
        }
        let fs = Arc::clone(self);
        runtime.spawn(async move { fs.watch_reach().await });
    }

    /// True when the mount works offline: write-back is on and S3 has not answered lately.
    /// Then lookups, attributes, listings and opens are answered from what this mount saw
    /// (however old), and only what it never saw fails.
    pub(super) fn offline(&self) -> bool {
        self.write_back.is_some() && self.client.unreachable_since().is_some()
    }

    /// Says once when the mount goes offline and when it is back, asks S3 every few
    /// seconds while it is away, and lets the queue go as soon as it answers.
    async fn watch_reach(&self) {
        let Some(queue) = &self.write_back else {
            return;
        };
        let mut was: Option<SystemTime> = None;
        let mut seen = self.client.outages();
        let mut probed = Instant::now();
        let mut kept = Instant::now();
        while !queue.closing.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if kept.elapsed() >= KEEP_LISTINGS_EVERY {
                // A mount that ends without an unmount (a crash, a power loss) leaves
                // listings at most this old for the next one to work offline from.
                kept = Instant::now();
                self.keep_listings();
            }
            let now = self.client.unreachable_since();
            // An outage begun (and maybe ended) since the last glance counts too.
            let outages = self.client.outages();
            if outages != seen && was.is_none() {
                warn!(
                    "S3 cannot be reached: working offline from what this mount has seen; \
                     files closed meanwhile wait in the write-back queue"
                );
            }
            let began = was.or(if outages != seen {
                now.or(Some(SystemTime::now()))
            } else {
                None
            });
            seen = outages;
            if let (Some(since), None) = (began, now) {
                let away = since.elapsed().unwrap_or_default().as_secs();
                info!("S3 answers again (after {away} s): uploading the write-back queue");
                queue.release_all();
            }
            was = now;
            if now.is_some() && probed.elapsed() >= PROBE {
                probed = Instant::now();
                // One attempt (the client does not retry a network that is gone); an
                // answer, even a refusal, ends the offline time.
                let _ = self.client.head_bucket().await;
            }
        }
    }

    /// The last listing of directory `ino`, however old: this mount's, else the one an
    /// earlier mount kept (`ListingStore`), its entries made inodes.
    pub(super) fn stale_listing(&self, ino: u64) -> Option<Arc<Vec<SnapshotEntry>>> {
        if let Some(snapshot) = self.listings().stale(ino) {
            return Some(snapshot);
        }
        let store = self.config.listing_store.as_ref()?;
        let dir_key = self.inodes().get(ino)?.key.clone();
        let stored = store.get(&dir_key)?;
        let now = Instant::now();
        let mut snapshot = Vec::with_capacity(stored.len());
        for entry in stored {
            let facts = match entry.dir {
                true => ChildFacts::directory(self.mount_time, None),
                false => self.listed_file(&ObjectMeta {
                    key: format!("{dir_key}{}", entry.name),
                    size: entry.size,
                    etag: entry.etag.clone().unwrap_or_default(),
                    last_modified: entry.last_modified(),
                    metadata: None,
                    version_id: None,
                }),
            };
            let Some(child) = self
                .inodes()
                .upsert_child(ino, &entry.name, facts.clone(), now)
            else {
                continue;
            };
            snapshot.push(SnapshotEntry {
                ino: child,
                name: entry.name,
                facts,
            });
        }
        let snapshot = Arc::new(snapshot);
        self.listings().insert(ino, now, Arc::clone(&snapshot));
        Some(snapshot)
    }

    /// Keeps every listing this mount holds for the next one (`ListingStore`): what S3
    /// showed, with this mount's own changes, without the files S3 does not hold yet.
    pub(super) fn keep_listings(&self) {
        let Some(store) = &self.config.listing_store else {
            return;
        };
        let listings = self.listings().all();
        for (ino, snapshot) in listings {
            let Some(key) = self.inodes().get(ino).map(|i| i.key.clone()) else {
                continue;
            };
            let entries = snapshot
                .iter()
                .filter(|e| e.facts.kind == EntryKind::Directory || e.facts.etag.is_some())
                .map(|e| StoredEntry {
                    name: e.name.clone(),
                    dir: e.facts.kind == EntryKind::Directory,
                    size: e.facts.size,
                    etag: e.facts.etag.clone(),
                    modified: e.facts.last_modified.map_or(0, seconds),
                })
                .collect();
            store.put(&key, entries);
        }
        store.save();
    }

    /// `lookup` while offline: the inode this mount knows, else the last listing of the
    /// parent it saw; a name neither shows was not there. Only a directory never listed
    /// cannot answer.
    pub(super) fn lookup_offline(&self, parent: u64, name: &str) -> Result<super::Attr, FsError> {
        {
            let mut table = self.inodes();
            if let Some(child) = table.child(parent, name) {
                let attr = self.attr_of(child);
                table.remember(attr.ino);
                return Ok(attr);
            }
        }
        let Some(snapshot) = self.stale_listing(parent) else {
            return Err(FsError::S3(S3Error::Network {
                endpoint: "S3".into(),
                reason: "S3 cannot be reached, and this mount has not listed the directory \
                         (nor kept a listing of it from an earlier mount)"
                    .into(),
            }));
        };
        let Ok(at) = snapshot.binary_search_by(|e| e.name.as_str().cmp(name)) else {
            return Err(FsError::NotFound);
        };
        let mut table = self.inodes();
        let ino = table
            .upsert_child(parent, name, snapshot[at].facts.clone(), Instant::now())
            .ok_or(FsError::UnknownInode(parent))?;
        table.remember(ino);
        let inode = table.get(ino).ok_or(FsError::UnknownInode(ino))?;
        Ok(self.attr_of(inode))
    }

    async fn write_back_worker(&self) {
        let Some(queue) = &self.write_back else {
            return;
        };
        while !queue.closing.load(Ordering::Acquire) {
            let changed = queue.changed.notified();
            let (seq, ino) = match queue.take_or_wait() {
                Ok(taken) => taken,
                Err(next) => {
                    // Nothing due: wait for news, or for the next entry to come due.
                    let most = Instant::now() + Duration::from_millis(500);
                    let until = next.map_or(most, |at| at.min(most));
                    let _ = tokio::time::timeout_at(until.into(), changed).await;
                    continue;
                }
            };
            let outcome = self.upload_queued(ino).await;
            if let Outcome::Failed { why, cannot: false } = &outcome {
                if why.starts_with(UNREACHABLE) {
                    queue.hold_all(Instant::now() + FIRST_RETRY, why);
                }
            }
            queue.finish(seq, outcome);
        }
    }

    /// One queued file's upload (see [`OpenWriter::upload_queued`]), or directory marker's
    /// (see `markers`).
    pub(super) async fn upload_queued(&self, ino: u64) -> Outcome {
        if let Some(marker) = self.marker_of(ino) {
            return self.upload_marker(ino, marker).await;
        }
        let Some((writer, handles)) = self
            .writers()
            .get(&ino)
            .map(|s| (Arc::clone(&s.writer), s.handles))
        else {
            // Unlinked or uploaded some other way meanwhile.
            return Outcome::Done;
        };
        if handles > 0 {
            // Open again: it is queued anew, in its latest version, when it closes.
            return Outcome::Done;
        }
        let host = hostname();
        let result = writer
            .upload_queued(|key| conflict_name(key, &host, SystemTime::now()))
            .await;
        match result {
            Ok(Queued::Nothing) => {}
            Ok(Queued::Renamed) => {
                return Outcome::Failed {
                    why: "renamed during the upload's check".into(),
                    cannot: false,
                }
            }
            Ok(Queued::Uploaded(meta)) => {
                self.rewritten(&meta.key);
                let mut table = self.inodes();
                table.refresh(ino, ChildFacts::file(&meta), self.valid_until());
                table.note_open(ino, &meta.etag);
            }
            Ok(Queued::Conflict(meta)) => {
                // The name now shows the other client's version, and the copy is listed.
                let inode = self.inodes().get(ino).map(|i| (i.parent, i.key.clone()));
                if let Some((parent, key)) = inode {
                    info!(
                        "{key:?}: this mount's version is kept beside it as {:?}",
                        meta.key
                    );
                    self.inodes().expire_under(&key);
                    self.names_changed(parent);
                }
            }
            Err(e) => {
                let failed = classify(&e);
                if let Outcome::Failed { why, .. } = &failed {
                    log::debug!("{:?}: upload failed, will retry: {why}", writer.key());
                }
                return failed;
            }
        }
        self.retire_writer(ino, &writer).await;
        Outcome::Done
    }

    /// At unmount: the queue stops, and every file still queued is left in the journal,
    /// complete, for the background uploads of this mount's last moments and of the next
    /// mount of the bucket. Waits at most `wait` for the queue to drain first.
    pub(super) async fn stop_write_back(&self, wait: Duration) {
        let Some(queue) = &self.write_back else {
            return;
        };
        let _ = tokio::time::timeout(wait, queue.drained()).await;
        queue.closing.store(true, Ordering::Release);
        queue.changed.notify_waiters();
        for ino in queue.inos() {
            let writer = {
                let mut writers = self.writers();
                match writers.get(&ino) {
                    Some(slot) if slot.handles == 0 => writers.remove(&ino).map(|s| s.writer),
                    _ => None,
                }
            };
            if let Some(writer) = writer {
                self.inodes().unpin(ino);
                // Waits for an upload under way, then leaves what is left in the journal.
                writer.abandon().await;
            }
        }
        self.abandon_markers().await;
    }
}

/// How many files may wait in the queue: each holds its local copy open until its
/// upload, so half the descriptors the process may open (the other half for the caches,
/// connections and FUSE). With the usual limits (raised at start to the hard limit,
/// 524,288 on most systems) the byte bound comes first; under a low hard limit a `close`
/// waits for room instead of failing with `EMFILE`.
fn files_bound() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct passed, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return usize::MAX;
    }
    usize::try_from(limit.rlim_cur / 2)
        .unwrap_or(usize::MAX)
        .max(64)
}

/// The prefix of a failure that says S3 could not be reached at all.
const UNREACHABLE: &str = "S3 unreachable";

/// Whether a failed queued upload may pass by itself.
pub(super) fn classify(e: &UploadError) -> Outcome {
    let (why, cannot) = match (e.passing(), e.s3_error()) {
        (Passing::Unreachable, Some(s3)) => (format!("{UNREACHABLE}: {s3}"), false),
        (Passing::Transient, Some(s3)) => (s3.to_string(), false),
        (Passing::Unreachable | Passing::Transient, None) => (e.to_string(), false),
        (Passing::Never, Some(s3)) => (s3.to_string(), true),
        (Passing::Never, None) => (e.to_string(), true),
    };
    Outcome::Failed { why, cannot }
}

/// `dir/NAME (conflict HOST YYYY-MM-DD HHMMSS).EXT`: beside `key`, saying where and when
/// it was written, keeping the extension so the file still opens with its program.
pub fn conflict_name(key: &str, host: &str, at: SystemTime) -> String {
    let stamp = time::OffsetDateTime::from(at)
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour][minute][second]"
        ))
        .unwrap_or_else(|_| unix_now().to_string());
    let (dir, name) = match key.rfind('/') {
        Some(i) => key.split_at(i + 1),
        None => ("", key),
    };
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    };
    format!("{dir}{stem} (conflict {host} {stamp}){ext}")
}

/// This machine's name, as a conflict copy names it.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer it is given.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..len]) {
        Ok(name) if ok && !name.is_empty() => name.replace('/', "_"),
        _ => "localhost".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_names_keep_the_directory_and_the_extension() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_342_400);
        assert_eq!(
            conflict_name("docs/report.txt", "laptop", at),
            "docs/report (conflict laptop 2026-12-04 000000).txt"
        );
        assert_eq!(
            conflict_name("Makefile", "h", at),
            "Makefile (conflict h 2026-12-04 000000)"
        );
        assert_eq!(
            conflict_name("a/.bashrc", "h", at),
            "a/.bashrc (conflict h 2026-12-04 000000)"
        );
        assert_eq!(
            conflict_name("a.b/c.tar.gz", "h", at),
            "a.b/c.tar (conflict h 2026-12-04 000000).gz"
        );
    }

    /// Makes every entry due now (instead of after [`SETTLE`]).
    fn due(q: &WriteBack) {
        let mut queue = q.queue();
        let seqs: Vec<u64> = queue.entries.keys().copied().collect();
        for seq in seqs {
            queue.set_due(seq, Instant::now());
        }
    }

    /// A closed file waits [`SETTLE`] before its upload, counted from its last close.
    #[test]
    fn a_closed_file_settles_before_its_upload() {
        let q = WriteBack::new(1 << 20);
        q.enqueue(7, "a".into(), 10);
        assert_eq!(q.take(), None);
        due(&q);
        q.enqueue(7, "a".into(), 10);
        assert_eq!(q.take(), None, "closed again: it settles again");
        due(&q);
        assert_eq!(q.take(), Some((1, 7)));
    }

    /// Once no file was closed for [`QUIET`], the files settling go at once, in queue
    /// order; a file waiting out a retry's pause keeps waiting.
    #[test]
    fn a_quiet_mount_lets_the_settling_files_go() {
        let q = WriteBack::new(1 << 20);
        q.enqueue(7, "a".into(), 10);
        q.enqueue(8, "b".into(), 10);
        q.enqueue(9, "c".into(), 10);
        due(&q);
        assert_eq!(q.take(), Some((1, 7)));
        q.finish(
            1,
            Outcome::Failed {
                why: "slow down".into(),
                cannot: false,
            },
        );
        q.enqueue(7, "a".into(), 10);
        q.enqueue(10, "d".into(), 10);
        assert_eq!(q.take(), Some((2, 8)), "made due before the new closes");
        assert_eq!(q.take(), Some((3, 9)));
        assert_eq!(q.take(), None, "closes a moment ago: still settling");
        q.queue().last_close = Some(Instant::now() - QUIET);
        assert_eq!(q.take(), Some((4, 10)), "quiet: it goes");
        assert_eq!(q.take(), None, "the retry's pause still runs");
    }

    /// A file closed twice keeps its first place; the bytes follow its size.
    #[test]
    fn a_file_keeps_its_first_place_in_the_queue() {
        let q = WriteBack::new(1 << 20);
        q.enqueue(7, "a".into(), 10);
        q.enqueue(8, "b".into(), 20);
        q.enqueue(7, "a".into(), 15);
        due(&q);
        let status = q.status();
        assert_eq!(status.bytes, 35);
        assert_eq!(
            status.files.iter().map(|f| &f.key[..]).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(q.take(), Some((1, 7)));
        assert_eq!(q.take(), Some((2, 8)), "the busy one is skipped");
        q.finish(
            1,
            Outcome::Failed {
                why: "x".into(),
                cannot: false,
            },
        );
        assert_eq!(q.take(), None, "a failed one waits its pause");
        q.finish(2, Outcome::Done);
        assert_eq!(q.status().bytes, 15);
        assert!(!q.is_queued(8));
        assert!(q.is_queued(7));
    }

    /// A file closed again while its upload runs stays queued after that upload: what
    /// the upload sent may be older than the last close.
    #[test]
    fn a_close_during_the_upload_queues_the_file_once_more() {
        let q = WriteBack::new(1 << 20);
        q.enqueue(7, "a".into(), 10);
        due(&q);
        assert_eq!(q.take(), Some((1, 7)));
        q.enqueue(7, "a".into(), 12);
        q.finish(1, Outcome::Done);
        assert!(q.is_queued(7));
        due(&q);
        assert_eq!(q.take(), Some((1, 7)), "its place is kept");
        q.finish(1, Outcome::Done);
        assert!(!q.is_queued(7));
        assert_eq!(q.status().bytes, 0);
    }

    /// An entry no longer needed (a directory removed before its marker went up) leaves
    /// the queue at once; one whose upload is under way stays until that upload ends.
    #[test]
    fn a_forgotten_entry_leaves_the_queue_unless_it_is_uploading() {
        let q = WriteBack::new(1 << 20);
        q.enqueue(7, "d/".into(), 0);
        q.enqueue(8, "e/".into(), 0);
        q.forget(7);
        assert!(!q.is_queued(7));
        due(&q);
        assert_eq!(q.take(), Some((2, 8)));
        q.forget(8);
        assert!(q.is_queued(8), "busy: its upload's end decides");
        q.finish(2, Outcome::Done);
        assert!(q.status().files.is_empty());
    }
}
