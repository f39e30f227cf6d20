//! `MultipartUpload`: one object uploaded as numbered parts, several at once.
//!
//! - The upload starts lazily (CreateMultipartUpload with the first part), so a writer that
//!   never fills a part costs nothing.
//! - Parts are numbered in the order they are pushed; their sizes follow [`part_size`].
//! - At most `concurrency` parts are in flight: [`MultipartUpload::push_part`] waits for a
//!   slot (a semaphore permit) before spawning the part, so a fast writer is held back to
//!   S3's pace and memory stays at `concurrency` parts in flight plus the one being filled.
//! - Any failure aborts the upload (after the parts in flight have ended, so none lands
//!   after the abort); an upload dropped unfinished is aborted in the background. An abort
//!   that cannot reach the server is retried in the background for an hour, so an outage
//!   in the middle of an upload leaves nothing dangling once the server is back.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use log::{debug, warn};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::{PARTS_PER_DOUBLING, S3_MAX_PARTS, S3_MAX_PART_SIZE};
use crate::s3::{CompletedPart, ObjectClient, S3Error};

/// The size of part `part_number` (1-based) when the first part is `base` bytes: doubles
/// every [`PARTS_PER_DOUBLING`] parts, capped at S3's 5 GiB part limit.
pub fn part_size(base: u64, part_number: u32) -> u64 {
    let doublings = part_number.saturating_sub(1) / PARTS_PER_DOUBLING;
    // 10,000 parts make at most 11 doublings; the cap keeps the shift defined regardless.
    let factor = 1u64 << doublings.min(40);
    base.saturating_mul(factor).min(S3_MAX_PART_SIZE.max(base))
}

type PartTask = JoinHandle<Result<CompletedPart, S3Error>>;

/// A multipart upload of one key, in progress.
pub struct MultipartUpload<C: ObjectClient> {
    client: Arc<C>,
    key: String,
    base_part_size: u64,
    /// Stored as `x-amz-meta-mtime`; fixed once the upload started (metadata goes with
    /// CreateMultipartUpload).
    mtime: Option<SystemTime>,
    upload_id: Option<String>,
    /// The number the next pushed part gets.
    next_part: u32,
    /// One permit per part in flight: the memory bound and the back-pressure.
    slots: Arc<Semaphore>,
    in_flight: Vec<PartTask>,
    done: Vec<CompletedPart>,
    /// Completed or aborted: nothing left to clean up.
    finished: bool,
}

impl<C: ObjectClient> MultipartUpload<C> {
    /// An upload of `key` not started yet; parts follow [`part_size`] from `base_part_size`.
    pub fn new(client: Arc<C>, key: String, base_part_size: u64, concurrency: usize) -> Self {
        MultipartUpload {
            client,
            key,
            base_part_size,
            mtime: None,
            upload_id: None,
            next_part: 1,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            in_flight: Vec::new(),
            done: Vec::new(),
            finished: false,
        }
    }

    /// The file time the object is to carry; too late once the upload started.
    pub fn set_mtime(&mut self, mtime: Option<SystemTime>) {
        if !self.is_started() {
            self.mtime = mtime;
        }
    }

    /// Points an upload not started yet at another key (its file was renamed); a started
    /// upload's key is S3's and stays.
    pub fn retarget(&mut self, key: String) {
        if !self.is_started() {
            self.key = key;
        }
    }

    /// The file time the completed object carries.
    pub fn mtime(&self) -> Option<SystemTime> {
        self.mtime
    }

    /// True once CreateMultipartUpload succeeded (the first part was pushed).
    pub fn is_started(&self) -> bool {
        self.upload_id.is_some()
    }

    /// True once the upload completed or was aborted (after a failure): no part goes up now.
    pub fn has_ended(&self) -> bool {
        self.finished
    }

    /// The size the next part must have (the last part may be smaller).
    pub fn next_part_size(&self) -> u64 {
        part_size(self.base_part_size, self.next_part)
    }

    /// Parts currently uploading (at most `concurrency`).
    pub fn parts_in_flight(&self) -> usize {
        self.in_flight.iter().filter(|t| !t.is_finished()).count()
    }

    /// Queues the next part: waits for a free slot, then uploads it in the background.
    /// On any error (this part's start, or an earlier part's failure) the upload is aborted.
    pub async fn push_part(&mut self, body: Bytes) -> Result<(), S3Error> {
        let pushed = self.try_push(body).await;
        if pushed.is_err() {
            self.abort().await;
        }
        pushed
    }

    async fn try_push(&mut self, body: Bytes) -> Result<(), S3Error> {
        if self.finished {
            return Err(S3Error::Malformed(format!(
                "the multipart upload of {:?} already ended",
                self.key
            )));
        }
        if self.next_part > S3_MAX_PARTS {
            // S3's own answer for an object past 5 TiB, which 10,000 parts of the schedule reach.
            return Err(S3Error::Service {
                status: 400,
                code: "EntityTooLarge".into(),
                message: format!("{:?} needs more than {S3_MAX_PARTS} parts", self.key),
            });
        }
        self.reap_finished().await?;
        // Never closed, so acquiring only fails if that changes; report it rather than panic.
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| S3Error::Malformed(format!("part slots closed: {e}")))?;
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self
                    .client
                    .create_multipart_upload(&self.key, self.mtime)
                    .await?;
                debug!("multipart upload of {:?} started", self.key);
                self.upload_id = Some(id.clone());
                id
            }
        };
        let part_number = self.next_part;
        self.next_part += 1;
        let client = self.client.clone();
        let key = self.key.clone();
        self.in_flight.push(tokio::spawn(async move {
            let _slot = slot;
            client
                .upload_part(&key, &upload_id, part_number, body)
                .await
        }));
        Ok(())
    }

    /// Collects parts that ended, so a failure stops the writer at its next part rather
    /// than at completion.
    async fn reap_finished(&mut self) -> Result<(), S3Error> {
        let (ended, running): (Vec<_>, Vec<_>) =
            self.in_flight.drain(..).partition(|t| t.is_finished());
        self.in_flight = running;
        for task in ended {
            self.done.push(join(task).await?);
        }
        Ok(())
    }

    /// Waits for every part, then completes the upload: the object appears whole. Returns
    /// its ETag. On failure the upload is aborted.
    pub async fn complete(&mut self) -> Result<String, S3Error> {
        let completed = self.try_complete().await;
        if completed.is_err() {
            self.abort().await;
        }
        completed
    }

    async fn try_complete(&mut self) -> Result<String, S3Error> {
        let mut first_error = None;
        for task in std::mem::take(&mut self.in_flight) {
            match join(task).await {
                Ok(part) => self.done.push(part),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let Some(upload_id) = self.upload_id.clone() else {
            return Err(S3Error::Malformed(format!(
                "completing {:?} with no part uploaded",
                self.key
            )));
        };
        self.done.sort_by_key(|p| p.part_number);
        debug!(
            "{:?}: {} parts uploaded; completing",
            self.key,
            self.done.len()
        );
        let etag = self
            .client
            .complete_multipart_upload(&self.key, &upload_id, &self.done)
            .await?;
        self.finished = true;
        debug!(
            "multipart upload of {:?} completed in {} parts",
            self.key,
            self.done.len()
        );
        Ok(etag)
    }

    /// Waits for the parts in flight (so none lands after the abort), then aborts the upload
    /// in S3. An abort that fails for a passing reason (server unreachable, 5xx) is retried
    /// in the background; see `keep_aborting`.
    pub async fn abort(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let in_flight = std::mem::take(&mut self.in_flight);
        abort_upload(
            &self.client,
            &self.key,
            self.upload_id.as_deref(),
            in_flight,
        )
        .await;
    }
}

impl<C: ObjectClient> Drop for MultipartUpload<C> {
    /// An upload dropped unfinished (its writer dropped without flush) is aborted in the
    /// background, so it never dangles.
    fn drop(&mut self) {
        if self.finished || self.upload_id.is_none() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            warn!(
                "multipart upload of {:?} dropped outside the runtime; it is left open",
                self.key
            );
            return;
        };
        let client = self.client.clone();
        let key = std::mem::take(&mut self.key);
        let upload_id = self.upload_id.take();
        let in_flight = std::mem::take(&mut self.in_flight);
        runtime.spawn(
            async move { abort_upload(&client, &key, upload_id.as_deref(), in_flight).await },
        );
    }
}

async fn abort_upload<C: ObjectClient>(
    client: &Arc<C>,
    key: &str,
    upload_id: Option<&str>,
    in_flight: Vec<PartTask>,
) {
    for task in in_flight {
        // Their outcome no longer matters; only that they ended.
        let _ended = task.await;
    }
    let Some(upload_id) = upload_id else {
        return;
    };
    match client.abort_multipart_upload(key, upload_id).await {
        Ok(()) => debug!("multipart upload of {key:?} aborted"),
        Err(e) if e.is_retryable() => {
            warn!(
                "aborting the multipart upload {upload_id} of {key:?} failed: {e}; \
                 retrying in the background"
            );
            keep_aborting(client.clone(), key.to_string(), upload_id.to_string());
        }
        Err(e) => warn!("aborting the multipart upload {upload_id} of {key:?} failed: {e}"),
    }
}

/// How long a failed abort keeps being retried (the server may be down for a while).
const ABORT_RETRY_FOR: Duration = Duration::from_secs(3600);
/// The first and the longest pause between two abort attempts.
const ABORT_RETRY_FIRST: Duration = Duration::from_millis(500);
const ABORT_RETRY_MAX: Duration = Duration::from_secs(60);

/// Retries an abort that failed (server unreachable, 5xx) with growing pauses, so an upload
/// cut by an outage does not dangle once the server is back. Gives up loudly after
/// [`ABORT_RETRY_FOR`].
fn keep_aborting<C: ObjectClient>(client: Arc<C>, key: String, upload_id: String) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        warn!("multipart upload {upload_id} of {key:?} is left open (no runtime to retry on)");
        return;
    };
    runtime.spawn(async move {
        let started = tokio::time::Instant::now();
        let mut pause = ABORT_RETRY_FIRST;
        loop {
            tokio::time::sleep(pause).await;
            match client.abort_multipart_upload(&key, &upload_id).await {
                Ok(()) => {
                    log::info!("multipart upload {upload_id} of {key:?} aborted on retry");
                    return;
                }
                Err(e) if !e.is_retryable() => {
                    // NoSuchUpload (aborted by someone else), access denied: nothing to redo.
                    warn!("aborting the multipart upload {upload_id} of {key:?}: {e}");
                    return;
                }
                Err(e) if started.elapsed() >= ABORT_RETRY_FOR => {
                    warn!(
                        "giving up aborting the multipart upload {upload_id} of {key:?}: {e}; \
                         it stays until a lifecycle rule removes it"
                    );
                    return;
                }
                Err(e) => debug!("aborting {upload_id} of {key:?} again failed: {e}"),
            }
            pause = (pause * 2).min(ABORT_RETRY_MAX);
        }
    });
}

async fn join(task: PartTask) -> Result<CompletedPart, S3Error> {
    task.await
        .map_err(|e| S3Error::Malformed(format!("a part upload task ended abnormally: {e}")))?
}
