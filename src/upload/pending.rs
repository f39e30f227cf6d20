//! [`Pending`]: the uploads of what the journal holds and no writer does — a file whose last
//! `close` failed (S3 down for longer than the retry budget), and everything a mount that
//! died left behind (recovery at the next mount of the bucket).
//!
//! One background task per mount takes over (locks) every journal entry of the bucket no
//! live writer holds, and for each:
//!
//! 1. aborts the multipart uploads the record names (a dead writer's);
//! 2. decides where the data goes. A *complete* file (its program called `close`/`fsync`)
//!    goes to its key if the object there is still the version it was based on (or, for a
//!    new file, if there is none); else — another client wrote the key since — beside it as
//!    `NAME.s3rolefs-recovered-<time>`. An incomplete file (open when the daemon died) was
//!    never finished by its program: it only ever goes beside the object, which stays as it
//!    was. Never is another client's newer object overwritten;
//! 3. uploads it (absent chunks copied from the base inside S3), then removes the entry.
//!
//! What fails for a passing reason is retried with growing pauses (2 s to 5 min) as long as
//! the mount lives, and by the next mount after that. What cannot be done (the base a
//! partial copy needs is gone) stays in the journal, logged once, for the user to look at.
//! `status` shows each pending file with its state and the files recovered lately.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use log::{debug, info, warn};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::journal::{Found, Record};
use super::multipart::abort_upload;
use super::staged::{Ctx, Staged};
use super::staging::StagingFile;
use super::{unix_now, Passing, UploadError, WriterConfig};
use crate::s3::{ObjectClient, S3Error};

/// The first and the longest pause between two passes that left work undone.
const FIRST_PAUSE: Duration = Duration::from_secs(2);
const LONGEST_PAUSE: Duration = Duration::from_secs(300);

/// How many recovered files `status` remembers.
const RECOVERED_SHOWN: usize = 50;

/// A journal entry waiting for S3, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFile {
    pub key: String,
    pub size: u64,
    /// `complete` (closed; goes to its key) or `incomplete` (open when its mount died;
    /// goes beside it).
    pub kind: String,
    /// `waiting`, `uploading`, `retrying: <reason>`, `stuck: <reason>`.
    pub state: String,
    /// When the entry was last written (seconds since the epoch).
    pub since: u64,
    pub attempts: u32,
}

/// A file the background uploads put in S3.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveredFile {
    pub key: String,
    /// Where it went: `key` itself, or the `.s3rolefs-recovered-…` name beside it.
    pub to: String,
    /// Seconds since the epoch.
    pub at: u64,
}

#[derive(Default)]
struct Shown {
    pending: BTreeMap<String, PendingFile>,
    recovered: VecDeque<RecoveredFile>,
    /// Entries that cannot be done this mount (logged once).
    stuck: BTreeMap<String, String>,
}

/// The background uploads of one mount.
pub struct Pending<C: ObjectClient> {
    client: Arc<C>,
    config: Arc<WriterConfig>,
    /// Keys outside it are another mount's business.
    prefix: String,
    wake: Notify,
    shown: Mutex<Shown>,
}

/// What became of one entry.
enum Done {
    Uploaded(RecoveredFile),
    /// Nothing worth uploading (an incomplete file with no byte on disk).
    Empty,
    /// The object already is this data (a Complete whose answer the crash lost).
    AlreadyThere,
}

impl<C: ObjectClient> Pending<C> {
    pub fn new(client: Arc<C>, config: Arc<WriterConfig>, prefix: String) -> Arc<Self> {
        Arc::new(Pending {
            client,
            config,
            prefix,
            wake: Notify::new(),
            shown: Mutex::new(Shown::default()),
        })
    }

    fn shown(&self) -> MutexGuard<'_, Shown> {
        self.shown.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the background task on `runtime`: a pass at once (recovery), then one whenever
    /// [`Pending::wake`] is called, and again with growing pauses while work is left.
    pub fn start(self: &Arc<Self>, runtime: &tokio::runtime::Handle) {
        let this = Arc::clone(self);
        runtime.spawn(async move {
            let mut pause = FIRST_PAUSE;
            loop {
                let left = this.pass().await;
                let wait = if left == 0 {
                    pause = FIRST_PAUSE;
                    LONGEST_PAUSE
                } else {
                    let wait = pause;
                    pause = (pause * 2).min(LONGEST_PAUSE);
                    wait
                };
                tokio::select! {
                    () = this.wake.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
        });
    }

    /// A file was left in the journal (its last handle closed, not uploaded): try soon.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The pending files and the ones recovered lately.
    pub fn snapshot(&self) -> (Vec<PendingFile>, Vec<RecoveredFile>) {
        let shown = self.shown();
        (
            shown.pending.values().cloned().collect(),
            shown.recovered.iter().cloned().collect(),
        )
    }

    /// One pass over the journal: every entry no live writer holds is tried once. Returns
    /// how many are left.
    pub async fn pass(&self) -> usize {
        self.abort_noted().await;
        let found = self.config.journal.scan();
        let mut left = 0;
        let mut seen = Vec::new();
        // Once S3 cannot be reached, the other entries would each wait out the retry
        // budget for nothing: they wait for the next pass instead.
        let mut unreachable = false;
        for entry in found {
            if !entry.record.key.starts_with(&self.prefix) {
                continue;
            }
            let id = entry.data.id.clone();
            seen.push(id.clone());
            if unreachable {
                self.show(&id, &entry.record, "waiting: S3 unreachable".into(), false);
                left += 1;
                continue;
            }
            if self.shown().stuck.contains_key(&id) {
                left += 1;
                continue;
            }
            self.show(&id, &entry.record, "uploading".into(), true);
            match self.recover(entry).await {
                Ok(done) => {
                    self.shown().pending.remove(&id);
                    match done {
                        Done::Uploaded(file) => {
                            info!(
                                "{:?}: uploaded from the journal{}",
                                file.key,
                                if file.to == file.key {
                                    String::new()
                                } else {
                                    format!(
                                        " beside it, as {:?} (the object had changed, or the \
                                         file was never finished)",
                                        file.to
                                    )
                                }
                            );
                            let mut shown = self.shown();
                            shown.recovered.push_back(file);
                            while shown.recovered.len() > RECOVERED_SHOWN {
                                shown.recovered.pop_front();
                            }
                        }
                        Done::Empty | Done::AlreadyThere => {}
                    }
                }
                Err((
                    record,
                    Retry::Later {
                        why,
                        unreachable: cut,
                    },
                )) => {
                    debug!("{:?}: still not in S3: {why}", record.key);
                    self.show(&id, &record, format!("retrying: {why}"), false);
                    left += 1;
                    unreachable = cut;
                }
                Err((record, Retry::Never(why))) => {
                    warn!(
                        "{:?}: cannot be uploaded ({why}); its data stays in {}",
                        record.key,
                        self.config.journal.dir().display()
                    );
                    self.show(&id, &record, format!("stuck: {why}"), false);
                    self.shown().stuck.insert(id, why);
                    left += 1;
                }
            }
        }
        // Entries gone (uploaded by a writer of this mount, or another mount) drop out.
        self.shown().pending.retain(|id, _| seen.contains(id));
        left
    }

    /// Aborts the uploads the journal notes as still to abort (an abort cut by an outage,
    /// then by an unmount or a crash); a note goes once S3 took the abort or has no such
    /// upload.
    async fn abort_noted(&self) {
        for note in self.config.journal.aborts() {
            if !note.key.starts_with(&self.prefix) {
                continue;
            }
            match self
                .client
                .abort_multipart_upload(&note.key, &note.upload_id)
                .await
            {
                Ok(()) => {
                    info!(
                        "multipart upload {} of {:?} aborted (noted by an earlier mount)",
                        note.upload_id, note.key
                    );
                    self.config.journal.forget_abort(&note.upload_id);
                }
                Err(e) if e.is_retryable() => {
                    debug!(
                        "aborting {} of {:?} again failed: {e}",
                        note.upload_id, note.key
                    )
                }
                Err(e) => {
                    debug!(
                        "{} of {:?}: {e}; nothing to abort",
                        note.upload_id, note.key
                    );
                    self.config.journal.forget_abort(&note.upload_id);
                }
            }
        }
    }

    fn show(&self, id: &str, record: &Record, state: String, attempt: bool) {
        let mut shown = self.shown();
        let entry = shown
            .pending
            .entry(id.to_string())
            .or_insert_with(|| PendingFile {
                key: record.key.clone(),
                size: record.size,
                kind: if record.complete {
                    "complete".into()
                } else {
                    "incomplete".into()
                },
                state: String::new(),
                since: record.updated,
                attempts: 0,
            });
        entry.state = state;
        if attempt {
            entry.attempts += 1;
        }
    }

    /// Uploads one entry (see the module doc); on failure hands the record back with
    /// whether to try again (the entry stays, unlocked again when its file closes).
    async fn recover(&self, found: Found) -> Result<Done, (Record, Retry)> {
        let Found { record, data } = found;
        let file = StagingFile::from_entry(&self.config.journal, data);
        let mut staged = Staged::from_record(file, &record);
        let outcome = self.upload_entry(&record, &mut staged).await;
        let file = staged.take_file();
        match outcome {
            Ok(done) => {
                if let Some(file) = file {
                    file.remove();
                }
                Ok(done)
            }
            Err(retry) => Err((record, retry)),
        }
    }

    async fn upload_entry(&self, record: &Record, staged: &mut Staged) -> Result<Done, Retry> {
        for id in &record.upload_ids {
            // A dead writer's upload: of no use now (the data is uploaded afresh).
            abort_upload(
                &self.client,
                &record.key,
                Some(id),
                Vec::new(),
                Some(&self.config.journal),
            )
            .await;
        }
        if staged.size() == 0 && !record.complete {
            return Ok(Done::Empty);
        }
        let target = match self.target(record, staged).await? {
            Target::Done => return Ok(Done::AlreadyThere),
            Target::Key(key) => key,
        };
        let ctx = Ctx {
            client: &self.client,
            config: &self.config,
            key: &target,
        };
        let uploaded = staged.upload(&ctx, &record.metadata()).await;
        staged.drop_resumable(&self.client, &self.config).await;
        match uploaded {
            Ok(_) => Ok(Done::Uploaded(RecoveredFile {
                key: record.key.clone(),
                to: target,
                at: unix_now(),
            })),
            Err(e) => Err(Retry::from_upload(e)),
        }
    }

    /// Where the entry's data goes: its key (complete, and the object is still its base),
    /// or beside it.
    async fn target(&self, record: &Record, staged: &Staged) -> Result<Target, Retry> {
        let beside = Target::Key(recovered_name(&record.key, SystemTime::now()));
        if !record.complete {
            return Ok(beside);
        }
        match self.client.head_object(&record.key).await {
            Ok(meta) if record.base_etag.as_deref() == Some(meta.etag.as_str()) => {
                Ok(Target::Key(record.key.clone()))
            }
            Ok(meta) => {
                if staged
                    .holds_exactly(&*self.client, &meta, self.config.part_size)
                    .await
                {
                    return Ok(Target::Done);
                }
                Ok(beside)
            }
            Err(S3Error::NoSuchKey { .. }) if record.base_etag.is_none() => {
                Ok(Target::Key(record.key.clone()))
            }
            Err(S3Error::NoSuchKey { .. }) => Ok(beside),
            Err(e) if e.is_retryable() => Err(Retry::later(
                e.to_string(),
                matches!(e, S3Error::Network { .. }),
            )),
            Err(e) => Err(Retry::Never(e.to_string())),
        }
    }
}

enum Target {
    Key(String),
    Done,
}

/// Why an entry is still in the journal.
enum Retry {
    /// A passing failure (network, 5xx, throttling): tried again later. `unreachable`: the
    /// server could not be reached at all (the rest of the pass would fare no better).
    Later { why: String, unreachable: bool },
    /// Cannot be done (the base a partial copy needs is gone, access denied): left alone
    /// until the next mount.
    Never(String),
}

impl Retry {
    fn later(why: String, unreachable: bool) -> Retry {
        Retry::Later { why, unreachable }
    }

    fn from_upload(e: UploadError) -> Retry {
        match (e.passing(), e.s3_error()) {
            (Passing::Unreachable, Some(s3)) => Retry::later(s3.to_string(), true),
            (Passing::Unreachable | Passing::Transient, _) => Retry::later(e.to_string(), false),
            (Passing::Never, _) => Retry::Never(e.to_string()),
        }
    }
}

/// `NAME.s3rolefs-recovered-<UTC time>`: beside `key`, sorted by time, never a name a
/// user would pick.
pub fn recovered_name(key: &str, at: SystemTime) -> String {
    let stamp = time::OffsetDateTime::from(at)
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| unix_now().to_string());
    format!("{key}.s3rolefs-recovered-{stamp}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recovered name keeps the key and says when.
    #[test]
    fn recovered_names_keep_the_key() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_342_400);
        assert_eq!(
            recovered_name("dir/report.txt", at),
            "dir/report.txt.s3rolefs-recovered-20261204T000000Z"
        );
    }
}
