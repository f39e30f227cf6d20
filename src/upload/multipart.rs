//! `MultipartUpload`: one object uploaded as numbered parts, several at once.
//!
//! - The upload starts lazily (CreateMultipartUpload with the first part), so a writer that
//!   never fills a part costs nothing.
//! - Parts are numbered in the order they are pushed; their sizes follow [`part_size`].
//!   A part is data ([`MultipartUpload::push_part`]), a range of another object copied
//!   inside S3 ([`MultipartUpload::push_copy`]), or one S3 already holds from an earlier
//!   try ([`MultipartUpload::adopt`], after [`MultipartUpload::resume`]).
//! - At most `concurrency` parts are in flight: a push waits for a slot (a semaphore
//!   permit) before spawning the part, so a fast writer is held back to S3's pace; the
//!   mount-wide [`MemoryBudget`](super::budget::MemoryBudget) reservation of a part travels
//!   with it until S3 answered.
//! - Each part is retried on its own by the client (within its retry budget). A part that
//!   still fails ends the upload as *failed*, not aborted: the parts S3 holds stay, and the
//!   writer's next flush resumes the same upload ([`MultipartUpload::into_resumable`]),
//!   sending only what S3 lacks. An upload is aborted when it can no longer be of use (the
//!   file switched to a local copy, was unlinked, or went up another way), and one dropped
//!   unfinished is aborted in the background. An abort that cannot reach the server is
//!   retried in the background for an hour.
//! - A Complete whose answer was lost (the retry finds `NoSuchUpload`, or the retries ran
//!   out) is checked: an object at the key with our size and the ETag our parts make
//!   (`md5(part md5s)-N`) is ours, and the upload succeeded (DESIGN invariant 9).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use log::{debug, warn};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::budget::Reservation;
use super::journal::Journal;
use super::{stamp_times, PARTS_PER_DOUBLING, S3_MAX_PARTS, S3_MAX_PART_SIZE};
use crate::s3::etag::{answer_may_be_lost, completed_from};
use crate::s3::{CompletedPart, Metadata, ObjectClient, S3Error, UploadPartCopyParams};

/// The size of part `part_number` (1-based) when the first part is `base` bytes: doubles
/// every [`PARTS_PER_DOUBLING`] parts, capped at S3's 5 GiB part limit.
pub fn part_size(base: u64, part_number: u32) -> u64 {
    let doublings = part_number.saturating_sub(1) / PARTS_PER_DOUBLING;
    // 10,000 parts make at most 11 doublings; the cap keeps the shift defined regardless.
    let factor = 1u64 << doublings.min(40);
    base.saturating_mul(factor).min(S3_MAX_PART_SIZE.max(base))
}

type PartTask = JoinHandle<Result<CompletedPart, S3Error>>;

/// Where an upload stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Parts may be pushed.
    Open,
    /// A part or the Complete failed for good; the parts S3 holds stay for a resume.
    Failed,
    /// Completed or aborted, or handed on ([`MultipartUpload::into_resumable`]).
    Ended,
}

/// A multipart upload of one key, in progress.
pub struct MultipartUpload<C: ObjectClient> {
    client: Arc<C>,
    key: String,
    base_part_size: u64,
    /// What the object carries; fixed once the upload started (metadata goes with
    /// CreateMultipartUpload).
    metadata: Metadata,
    /// The file times in `metadata` are moved to the time the upload starts ([`stamp_times`]).
    stamp: bool,
    upload_id: Option<String>,
    /// The number the next pushed part gets.
    next_part: u32,
    /// One permit per part in flight: the per-file bound and the back-pressure.
    slots: Arc<Semaphore>,
    in_flight: Vec<PartTask>,
    done: Vec<CompletedPart>,
    stage: Stage,
    /// Where an abort the server cannot be told about yet is noted (see `abort_upload`).
    journal: Option<Arc<Journal>>,
}

impl<C: ObjectClient> MultipartUpload<C> {
    /// An upload of `key` not started yet; parts follow [`part_size`] from `base_part_size`.
    pub fn new(client: Arc<C>, key: String, base_part_size: u64, concurrency: usize) -> Self {
        MultipartUpload {
            client,
            key,
            base_part_size,
            metadata: Metadata::default(),
            stamp: false,
            upload_id: None,
            next_part: 1,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            in_flight: Vec::new(),
            done: Vec::new(),
            stage: Stage::Open,
            journal: None,
        }
    }

    /// Notes aborts that fail for a passing reason in `journal`, so they survive an
    /// unmount or a crash.
    pub fn with_journal(mut self, journal: Arc<Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// The metadata the object is to carry, its file times moved to the upload's start
    /// when `stamp`; too late once the upload started.
    pub fn set_metadata(&mut self, metadata: Metadata, stamp: bool) {
        if !self.is_started() {
            self.metadata = metadata;
            self.stamp = stamp;
        }
    }

    /// A write came: the file times are the upload's start again.
    pub fn stamp_times(&mut self) {
        self.stamp = true;
    }

    /// Points an upload not started yet at another key (its file was renamed); a started
    /// upload's key is S3's and stays.
    pub fn retarget(&mut self, key: String) {
        if !self.is_started() {
            self.key = key;
        }
    }

    /// The metadata the completed object carries (once started).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// True once CreateMultipartUpload succeeded (the first part was pushed).
    pub fn is_started(&self) -> bool {
        self.upload_id.is_some()
    }

    /// The upload's id, once started.
    pub fn upload_id(&self) -> Option<&str> {
        self.upload_id.as_deref()
    }

    /// True once no part goes up any more: completed, aborted, or failed.
    pub fn has_ended(&self) -> bool {
        self.stage != Stage::Open
    }

    /// The size the next part must have (the last part may be smaller).
    pub fn next_part_size(&self) -> u64 {
        part_size(self.base_part_size, self.next_part)
    }

    /// Parts currently uploading (at most `concurrency`).
    pub fn parts_in_flight(&self) -> usize {
        self.in_flight.iter().filter(|t| !t.is_finished()).count()
    }

    /// Continues upload `upload_id` (started earlier for this key): the next part pushed
    /// or adopted is part 1 again; S3 keeps the last version of each part number.
    pub fn resume(&mut self, upload_id: String) {
        self.upload_id = Some(upload_id);
        self.next_part = 1;
    }

    /// Takes part `part` as S3 holds it (resumed), in place of pushing it again.
    pub fn adopt(&mut self, part: CompletedPart) {
        self.next_part = part.part_number + 1;
        self.done.retain(|p| p.part_number != part.part_number);
        self.done.push(part);
    }

    /// Queues the next part: waits for a free slot, then uploads it in the background,
    /// holding `hold` (its memory) until S3 answered. An earlier part's failure, or this
    /// one's start failing, ends the upload as failed.
    pub async fn push_part(
        &mut self,
        body: Bytes,
        hold: Option<Reservation>,
    ) -> Result<(), S3Error> {
        let (upload_id, part_number, slot) = self.next_slot().await?;
        let client = self.client.clone();
        let key = self.key.clone();
        self.in_flight.push(tokio::spawn(async move {
            let _slot = slot;
            let _hold = hold;
            client
                .upload_part(&key, &upload_id, part_number, body)
                .await
        }));
        Ok(())
    }

    /// Queues the next part as a copy of `range` of `source_key` (pinned to
    /// `source_etag`), made inside S3.
    pub async fn push_copy(
        &mut self,
        source_key: &str,
        range: std::ops::Range<u64>,
        source_etag: &str,
    ) -> Result<(), S3Error> {
        let (upload_id, part_number, slot) = self.next_slot().await?;
        let client = self.client.clone();
        let params = UploadPartCopyParams {
            key: self.key.clone(),
            upload_id,
            part_number,
            source_key: source_key.to_string(),
            range,
            source_if_match: Some(source_etag.to_string()),
        };
        self.in_flight.push(tokio::spawn(async move {
            let _slot = slot;
            client.upload_part_copy(params).await
        }));
        Ok(())
    }

    /// A slot for the next part, the upload started if it was not: `(upload id, number,
    /// permit)`.
    async fn next_slot(
        &mut self,
    ) -> Result<(String, u32, tokio::sync::OwnedSemaphorePermit), S3Error> {
        let taken = self.try_next_slot().await;
        if taken.is_err() && self.stage == Stage::Open {
            self.stage = Stage::Failed;
        }
        taken
    }

    async fn try_next_slot(
        &mut self,
    ) -> Result<(String, u32, tokio::sync::OwnedSemaphorePermit), S3Error> {
        if self.stage != Stage::Open {
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
                if self.stamp {
                    stamp_times(&mut self.metadata, SystemTime::now());
                    self.stamp = false;
                }
                let id = self
                    .client
                    .create_multipart_upload(&self.key, &self.metadata)
                    .await?;
                debug!("multipart upload of {:?} started", self.key);
                self.upload_id = Some(id.clone());
                id
            }
        };
        let part_number = self.next_part;
        self.next_part += 1;
        Ok((upload_id, part_number, slot))
    }

    /// Collects parts that ended, so a failure stops the writer at its next part rather
    /// than at completion.
    async fn reap_finished(&mut self) -> Result<(), S3Error> {
        let (ended, running): (Vec<_>, Vec<_>) =
            self.in_flight.drain(..).partition(|t| t.is_finished());
        self.in_flight = running;
        let mut first_error = None;
        for task in ended {
            match join(task).await {
                Ok(part) => self.done.push(part),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Waits for every part, then completes the upload: the object appears whole. Returns
    /// its ETag. On failure the upload is kept (failed) for a resume.
    pub async fn complete(&mut self) -> Result<String, S3Error> {
        let completed = self.try_complete().await;
        match &completed {
            Ok(_) => self.stage = Stage::Ended,
            Err(_) => self.stage = Stage::Failed,
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
        if self.stage != Stage::Open {
            return Err(S3Error::Malformed(format!(
                "the multipart upload of {:?} already ended",
                self.key
            )));
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
        let etag = match self
            .client
            .complete_multipart_upload(&self.key, &upload_id, &self.done)
            .await
        {
            Ok(etag) => etag,
            Err(e) if answer_may_be_lost(&e) => match self.completed_anyway().await {
                Some(etag) => {
                    debug!(
                        "{:?}: the Complete's answer was lost ({e}), but the object is ours",
                        self.key
                    );
                    etag
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        debug!(
            "multipart upload of {:?} completed in {} parts",
            self.key,
            self.done.len()
        );
        Ok(etag)
    }

    /// After a Complete that failed in a way that may have hidden its success: the ETag of
    /// the object at the key if it is exactly what our parts make.
    async fn completed_anyway(&self) -> Option<String> {
        completed_from(&*self.client, &self.key, &self.done).await
    }

    /// Hands the failed upload's id on for a later resume (the caller keeps it, in the
    /// journal too); nothing is aborted.
    pub async fn into_resumable(mut self) -> Option<String> {
        for task in std::mem::take(&mut self.in_flight) {
            if let Ok(part) = join(task).await {
                self.done.push(part);
            }
        }
        self.stage = Stage::Ended;
        self.upload_id.take()
    }

    /// Waits for the parts in flight (so none lands after the abort), then aborts the upload
    /// in S3. An abort that fails for a passing reason (server unreachable, 5xx) is retried
    /// in the background; see `keep_aborting`.
    pub async fn abort(&mut self) {
        if self.stage == Stage::Ended {
            return;
        }
        self.stage = Stage::Ended;
        let in_flight = std::mem::take(&mut self.in_flight);
        abort_upload(
            &self.client,
            &self.key,
            self.upload_id.as_deref(),
            in_flight,
            self.journal.as_ref(),
        )
        .await;
    }
}

impl<C: ObjectClient> Drop for MultipartUpload<C> {
    /// An upload dropped unfinished (its writer dropped without flush) is aborted in the
    /// background, so it never dangles.
    fn drop(&mut self) {
        if self.stage == Stage::Ended || self.upload_id.is_none() {
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
        let journal = self.journal.take();
        runtime.spawn(async move {
            abort_upload(
                &client,
                &key,
                upload_id.as_deref(),
                in_flight,
                journal.as_ref(),
            )
            .await
        });
    }
}

/// Aborts `upload_id` of `key` once `in_flight` ended; retried in the background when
/// the server cannot be reached, and noted in `journal` meanwhile (the next mount aborts
/// it if this one ends first).
pub async fn abort_upload<C: ObjectClient>(
    client: &Arc<C>,
    key: &str,
    upload_id: Option<&str>,
    in_flight: Vec<PartTask>,
    journal: Option<&Arc<Journal>>,
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
            if let Some(journal) = journal {
                journal.note_abort(key, upload_id);
            }
            keep_aborting(
                client.clone(),
                key.to_string(),
                upload_id.to_string(),
                journal.cloned(),
            );
        }
        Err(S3Error::Service { code, .. }) if code == "NoSuchUpload" => {
            debug!("multipart upload {upload_id} of {key:?} was already gone")
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
/// [`ABORT_RETRY_FOR`]; the journal still names the upload, so the next mount aborts it.
fn keep_aborting<C: ObjectClient>(
    client: Arc<C>,
    key: String,
    upload_id: String,
    journal: Option<Arc<Journal>>,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        warn!("multipart upload {upload_id} of {key:?} is left open (no runtime to retry on)");
        return;
    };
    runtime.spawn(async move {
        let started = tokio::time::Instant::now();
        let mut pause = ABORT_RETRY_FIRST;
        loop {
            tokio::time::sleep(pause).await;
            let forget = || {
                if let Some(journal) = &journal {
                    journal.forget_abort(&upload_id);
                }
            };
            match client.abort_multipart_upload(&key, &upload_id).await {
                Ok(()) => {
                    log::info!("multipart upload {upload_id} of {key:?} aborted on retry");
                    forget();
                    return;
                }
                Err(e) if !e.is_retryable() => {
                    // NoSuchUpload (aborted by someone else), access denied: nothing to redo.
                    debug!("aborting the multipart upload {upload_id} of {key:?}: {e}");
                    forget();
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
