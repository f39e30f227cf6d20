//! `MultipartUpload`: one object uploaded as numbered parts, several at once.
//!
//! - The upload starts lazily (CreateMultipartUpload with the first part), so a writer that
//!   never fills a part costs nothing.
//! - Parts are numbered in the order they are pushed; their sizes follow [`part_size`].
//! - At most `concurrency` parts are in flight: [`MultipartUpload::push_part`] waits for a
//!   slot (a semaphore permit) before spawning the part, so a fast writer is held back to
//!   S3's pace and memory stays at `concurrency` parts in flight plus the one being filled.
//! - Any failure aborts the upload (after the parts in flight have ended, so none lands
//!   after the abort); an upload dropped unfinished is aborted in the background. S3 never
//!   keeps a dangling upload from us, short of the abort itself failing (logged).

use std::sync::Arc;

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
            upload_id: None,
            next_part: 1,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            in_flight: Vec::new(),
            done: Vec::new(),
            finished: false,
        }
    }

    /// True once CreateMultipartUpload succeeded (the first part was pushed).
    pub fn is_started(&self) -> bool {
        self.upload_id.is_some()
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
                let id = self.client.create_multipart_upload(&self.key).await?;
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
            let etag = client
                .upload_part(&key, &upload_id, part_number, body)
                .await?;
            Ok(CompletedPart { part_number, etag })
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
    /// in S3. A failed abort is logged: the upload then waits for the bucket's lifecycle rule.
    pub async fn abort(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let in_flight = std::mem::take(&mut self.in_flight);
        abort_upload(
            &*self.client,
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
        runtime.spawn(async move {
            abort_upload(&*client, &key, upload_id.as_deref(), in_flight).await
        });
    }
}

async fn abort_upload<C: ObjectClient>(
    client: &C,
    key: &str,
    upload_id: Option<&str>,
    in_flight: Vec<PartTask>,
) {
    for task in in_flight {
        // Their outcome no longer matters; only that they ended.
        let _ended = task.await;
    }
    if let Some(upload_id) = upload_id {
        match client.abort_multipart_upload(key, upload_id).await {
            Ok(()) => debug!("multipart upload of {key:?} aborted"),
            Err(e) => warn!(
                "aborting the multipart upload {upload_id} of {key:?} failed: {e}; \
                 it stays until AbortMultipartUpload succeeds or a lifecycle rule removes it"
            ),
        }
    }
}

async fn join(task: PartTask) -> Result<CompletedPart, S3Error> {
    task.await
        .map_err(|e| S3Error::Malformed(format!("a part upload task ended abnormally: {e}")))?
}
