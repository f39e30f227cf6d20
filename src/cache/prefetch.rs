//! Read-ahead for one open file: sequential detection, a growing window of ranged GETs in
//! flight, served through the shared [`BlockCache`].
//!
//! The kernel reads a file in requests of at most `max_pages` pages (1 MiB), several at once
//! and not always in order. One GET per request would pay an S3 round trip per megabyte and
//! leave the connection idle between requests, so a [`Prefetcher`] keeps a window of
//! ranged GETs running ahead of the reader:
//!
//! - **Small first.** The first reads of a handle fetch exactly what was asked plus a small
//!   window ([`INITIAL_WINDOW`], doubling), so `head` or `file` on a big object cost one
//!   small GET.
//! - **Blocks once sequential.** When the window reaches [`BLOCK_SIZE`]/4 the reader is
//!   streaming: the prefetcher switches to whole blocks ([`BLOCK_SIZE`], one GET each) and
//!   keeps up to `window / BLOCK_SIZE` blocks in flight beyond the one being read, the
//!   window doubling up to [`MAX_WINDOW`]. Finished blocks go into the block cache, where
//!   other handles find them too.
//! - **Tolerant.** A read within [`SEEK_TOLERANCE`] of where the stream is (behind it: a small
//!   backwards seek; ahead: the kernel's concurrent reads arriving out of order) keeps the
//!   stream. Anything else is random access: the GETs in flight are cancelled (aborted)
//!   and the window starts small again, so random reads fetch what they ask and little more.
//! - **Bounded.** Blocks fetched ahead hold a share of the mount-wide prefetch budget
//!   (`--max-prefetch-memory`) until they are read or dropped; when it is spent, a handle
//!   fetches only what its reader asks for. The block a read needs is always fetched.
//! - Every GET carries the ETag pinned at open in `If-Match`, so a handle never mixes two
//!   versions; blocks are cached under that ETag.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::block::{BlockCache, BlockKey, BLOCK_SIZE};
use super::disk::DiskCache;
use crate::s3::{Chunks, GetObjectParams, ObjectClient, S3Error};

/// The first window: small, so probing the start of a big file costs little.
pub const INITIAL_WINDOW: u64 = 256 * 1024;
/// The largest window: blocks in flight ahead of the reader (4 GETs of 8 MiB).
pub const MAX_WINDOW: u64 = 32 * 1024 * 1024;
/// How far from the stream's position a read may land and still count as sequential.
pub const SEEK_TOLERANCE: u64 = 4 * 1024 * 1024;
/// The budget is counted in pages, so a semaphore's `u32` acquire can take a whole block.
const BUDGET_UNIT: u64 = 4096;

/// What every handle's prefetcher shares: the client, the block cache, the memory budget.
pub struct ReadContext<C: ObjectClient> {
    pub client: Arc<C>,
    pub cache: Arc<BlockCache>,
    /// The disk tier, when configured: blocks are looked for there before S3, and stored
    /// there once fetched.
    pub disk: Option<Arc<DiskCache>>,
    budget: Arc<Semaphore>,
}

impl<C: ObjectClient> ReadContext<C> {
    /// `max_prefetch_memory`: bytes of blocks fetched ahead, across all handles.
    pub fn new(client: Arc<C>, cache: Arc<BlockCache>, max_prefetch_memory: u64) -> Self {
        let units = (max_prefetch_memory / BUDGET_UNIT).min(Semaphore::MAX_PERMITS as u64);
        ReadContext {
            client,
            cache,
            disk: None,
            budget: Arc::new(Semaphore::new(units as usize)),
        }
    }

    /// Adds the disk tier.
    pub fn with_disk(mut self, disk: Option<Arc<DiskCache>>) -> Self {
        self.disk = disk;
        self
    }

    fn has_block(&self, key: &BlockKey) -> bool {
        self.cache.contains(key) || self.disk.as_ref().is_some_and(|d| d.contains(key))
    }

    /// Budget units free right now (for tests and `status`).
    pub fn budget_available(&self) -> u64 {
        self.budget.available_permits() as u64 * BUDGET_UNIT
    }
}

/// A block being fetched, with the budget it holds (none for a block a read waits on).
struct InFlight {
    task: JoinHandle<Result<Chunks, S3Error>>,
    _budget: Option<OwnedSemaphorePermit>,
}

/// Read-ahead state of one open file.
pub struct Prefetcher {
    key: Arc<str>,
    etag: Arc<str>,
    size: u64,
    /// The window: bytes to have requested ahead of the reader.
    window: u64,
    /// The end of the furthest read of the current stream.
    frontier: u64,
    /// No read yet: the first one starts a stream wherever it lands.
    fresh: bool,
    /// The last exact (non-block) fetch: `(offset of data[0], data)`.
    exact: Option<(u64, Chunks)>,
    /// The block last read, kept so the reads inside it need no lookup.
    current: Option<(u64, Chunks)>,
    in_flight: BTreeMap<u64, InFlight>,
}

impl std::fmt::Debug for Prefetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetcher")
            .field("key", &self.key)
            .field("etag", &self.etag)
            .field("window", &self.window)
            .field("in_flight", &self.in_flight.len())
            .finish()
    }
}

impl Prefetcher {
    /// A prefetcher for `key` whose version is pinned to `etag`, `size` bytes long.
    pub fn new(key: String, etag: String, size: u64) -> Self {
        Prefetcher {
            key: Arc::from(key),
            etag: Arc::from(etag),
            size,
            window: INITIAL_WINDOW,
            frontier: 0,
            fresh: true,
            exact: None,
            current: None,
            in_flight: BTreeMap::new(),
        }
    }

    /// The ETag this handle reads.
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// GETs running ahead of the reader (for tests).
    pub fn blocks_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Up to `len` bytes at `offset` (fewer at the end of the object; none past it), as
    /// slices of the fetched bodies: nothing is copied on the way to the kernel.
    pub async fn read<C: ObjectClient>(
        &mut self,
        ctx: &ReadContext<C>,
        offset: u64,
        len: u32,
    ) -> Result<Chunks, S3Error> {
        if offset >= self.size || len == 0 {
            return Ok(Chunks::new());
        }
        let end = self.size.min(offset + u64::from(len));
        let near =
            offset + SEEK_TOLERANCE >= self.frontier && offset <= self.frontier + SEEK_TOLERANCE;
        if self.fresh || near {
            if !self.fresh && end > self.frontier {
                self.window = (self.window * 2).min(MAX_WINDOW);
            }
            self.frontier = self.frontier.max(end);
        } else {
            // Random access: what was fetched ahead is not wanted any more.
            self.cancel_in_flight();
            self.window = INITIAL_WINDOW;
            self.frontier = end;
        }
        self.fresh = false;
        if let Some(hit) = self.buffered(offset, end) {
            return Ok(hit);
        }
        if self.window < BLOCK_SIZE / 4 && !self.all_cached(ctx, offset, end) {
            return self.read_exact(ctx, offset, end).await;
        }
        self.read_blocks(ctx, offset, end).await
    }

    /// A read served from the last exact fetch or the current block, without a lookup.
    fn buffered(&self, offset: u64, end: u64) -> Option<Chunks> {
        let current = self
            .current
            .as_ref()
            .map(|(index, data)| (index * BLOCK_SIZE, data));
        let exact = self.exact.as_ref().map(|(start, data)| (*start, data));
        [current, exact]
            .into_iter()
            .flatten()
            .find_map(|(start, data)| {
                let data_end = start + data.len() as u64;
                (offset >= start && end <= data_end)
                    .then(|| data.slice((offset - start) as usize..(end - start) as usize))
            })
    }

    fn all_cached<C: ObjectClient>(&self, ctx: &ReadContext<C>, offset: u64, end: u64) -> bool {
        (offset / BLOCK_SIZE..=(end - 1) / BLOCK_SIZE).all(|i| ctx.has_block(&self.block_key(i)))
    }

    /// What was asked plus the window, in one GET.
    async fn read_exact<C: ObjectClient>(
        &mut self,
        ctx: &ReadContext<C>,
        offset: u64,
        end: u64,
    ) -> Result<Chunks, S3Error> {
        let fetch_end = self.size.min(end.max(offset + self.window));
        let body = fetch(&*ctx.client, &self.key, &self.etag, offset..fetch_end).await?;
        if offset == 0 && fetch_end == self.size && self.size <= BLOCK_SIZE {
            // The whole of a small file: it is its block 0, kept like any block (so it
            // reads again without S3, and from the disk tier after a remount, offline).
            let block_key = self.block_key(0);
            ctx.cache.insert(block_key.clone(), body.clone());
            if let Some(disk) = &ctx.disk {
                disk.put(block_key, body.clone());
            }
        }
        let served = body.slice(0..body.len().min((end - offset) as usize));
        self.exact = Some((offset, body));
        Ok(served)
    }

    /// The read from whole blocks; starts the blocks of the window ahead first, so they
    /// download while this read waits for its own.
    async fn read_blocks<C: ObjectClient>(
        &mut self,
        ctx: &ReadContext<C>,
        offset: u64,
        end: u64,
    ) -> Result<Chunks, S3Error> {
        let first = offset / BLOCK_SIZE;
        let last = (end - 1) / BLOCK_SIZE;
        let last_block = (self.size - 1) / BLOCK_SIZE;
        // Blocks behind the reader are no longer wanted.
        let behind: Vec<u64> = self.in_flight.range(..first).map(|(i, _)| *i).collect();
        for index in behind {
            if let Some(f) = self.in_flight.remove(&index) {
                f.task.abort();
            }
        }
        let ahead = self.window.div_ceil(BLOCK_SIZE);
        for index in (last + 1)..=(last + ahead).min(last_block) {
            if self.in_flight.contains_key(&index) || ctx.cache.contains(&self.block_key(index)) {
                continue;
            }
            let units = (self.block_len(index).div_ceil(BUDGET_UNIT)) as u32;
            let Ok(permit) = ctx.budget.clone().try_acquire_many_owned(units) else {
                break; // the budget is spent: fetch only what is read
            };
            self.start_block(ctx, index, Some(permit));
        }
        let mut served = Chunks::new();
        for index in first..=last {
            let block = self.block(ctx, index).await?;
            let start = index * BLOCK_SIZE;
            let from = offset.max(start) - start;
            let to = end.min(start + block.len() as u64) - start;
            if to < from {
                return Err(S3Error::Malformed(format!(
                    "block {index} of {:?} is {} bytes, shorter than its object",
                    self.key,
                    block.len()
                )));
            }
            // A read across a block boundary is two sets of slices, still no copy.
            served.append(block.slice(from as usize..to as usize));
            self.current = Some((index, block));
        }
        Ok(served)
    }

    /// One block: from the cache, from its GET in flight, or fetched now.
    async fn block<C: ObjectClient>(
        &mut self,
        ctx: &ReadContext<C>,
        index: u64,
    ) -> Result<Chunks, S3Error> {
        if let Some((i, data)) = &self.current {
            if *i == index {
                return Ok(data.clone());
            }
        }
        if let Some(data) = ctx.cache.get(&self.block_key(index)) {
            return Ok(data);
        }
        if !self.in_flight.contains_key(&index) {
            self.start_block(ctx, index, None);
        }
        let Some(f) = self.in_flight.remove(&index) else {
            return Err(S3Error::Malformed("block fetch vanished".into()));
        };
        match f.task.await {
            Ok(result) => result,
            Err(e) => Err(S3Error::Malformed(format!(
                "a block fetch ended abnormally: {e}"
            ))),
        }
    }

    fn start_block<C: ObjectClient>(
        &mut self,
        ctx: &ReadContext<C>,
        index: u64,
        budget: Option<OwnedSemaphorePermit>,
    ) {
        let start = index * BLOCK_SIZE;
        let range = start..start + self.block_len(index);
        let client = ctx.client.clone();
        let cache = ctx.cache.clone();
        let disk = ctx.disk.clone();
        let block_key = self.block_key(index);
        let task = tokio::spawn(async move {
            let want = (range.end - range.start) as usize;
            if let Some(disk) = &disk {
                if let Some(data) = disk.get(&block_key).await.filter(|d| d.len() == want) {
                    cache.insert(block_key, data.clone());
                    return Ok(data);
                }
            }
            let data = fetch(&*client, &block_key.key, &block_key.etag, range).await?;
            cache.insert(block_key.clone(), data.clone());
            if let Some(disk) = &disk {
                disk.put(block_key, data.clone());
            }
            Ok(data)
        });
        self.in_flight.insert(
            index,
            InFlight {
                task,
                _budget: budget,
            },
        );
    }

    fn block_len(&self, index: u64) -> u64 {
        BLOCK_SIZE.min(self.size - index * BLOCK_SIZE)
    }

    fn block_key(&self, index: u64) -> BlockKey {
        BlockKey {
            key: self.key.clone(),
            etag: self.etag.clone(),
            index,
        }
    }

    fn cancel_in_flight(&mut self) {
        for (_, f) in std::mem::take(&mut self.in_flight) {
            f.task.abort();
        }
    }
}

impl Drop for Prefetcher {
    /// A closed handle's GETs ahead are not wanted by anyone.
    fn drop(&mut self) {
        self.cancel_in_flight();
    }
}

/// One ranged GET pinned to `etag`; a short answer is an error (the object changed size).
async fn fetch<C: ObjectClient>(
    client: &C,
    key: &str,
    etag: &str,
    range: std::ops::Range<u64>,
) -> Result<Chunks, S3Error> {
    let want = range.end - range.start;
    let out = client
        .get_object(GetObjectParams {
            key: key.to_string(),
            range: Some(range),
            if_match: Some(etag.to_string()),
        })
        .await?;
    if (out.body.len() as u64) < want {
        return Err(S3Error::Malformed(format!(
            "asked {want} bytes of {key:?}, got {}",
            out.body.len()
        )));
    }
    Ok(out.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::memory::MemoryClient;

    const MIB: u64 = 1024 * 1024;

    fn object(len: u64) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn setup(len: u64, budget: u64) -> (ReadContext<MemoryClient>, Prefetcher, Vec<u8>) {
        let client = Arc::new(MemoryClient::new());
        let data = object(len);
        let etag = client.insert("big", data.clone());
        let ctx = ReadContext::new(client, Arc::new(BlockCache::new(64 * MIB)), budget);
        (ctx, Prefetcher::new("big".into(), etag, len), data)
    }

    fn gets(ctx: &ReadContext<MemoryClient>) -> u64 {
        ctx.client.counters().get_object
    }

    /// Probing the start of a big object costs one small GET.
    #[tokio::test]
    async fn a_first_small_read_costs_one_small_get() {
        let (ctx, mut p, data) = setup(100 * MIB, 64 * MIB);
        let got = p.read(&ctx, 0, 4096).await.unwrap();
        assert_eq!(got.to_bytes().as_ref(), &data[..4096]);
        assert_eq!(gets(&ctx), 1);
        assert_eq!(p.blocks_in_flight(), 0);
        // The rest of the small window is served without asking again.
        p.read(&ctx, 4096, 100_000).await.unwrap();
        assert_eq!(gets(&ctx), 1);
    }

    /// A sequential reader gets every byte, in blocks fetched ahead, each fetched once.
    #[tokio::test]
    async fn sequential_reads_stream_whole_blocks_ahead() {
        let len = 100 * MIB + 12_345;
        let (ctx, mut p, data) = setup(len, 64 * MIB);
        let mut offset = 0;
        let mut saw_ahead = 0;
        while offset < len {
            let got = p.read(&ctx, offset, MIB as u32).await.unwrap();
            assert_eq!(
                got.to_bytes().as_ref(),
                &data[offset as usize..offset as usize + got.len()]
            );
            offset += got.len() as u64;
            saw_ahead = saw_ahead.max(p.blocks_in_flight());
        }
        assert!(saw_ahead >= 4, "blocks ahead in flight: {saw_ahead}");
        // A few small GETs at the start, then one per block.
        let blocks = len.div_ceil(BLOCK_SIZE);
        assert!(
            gets(&ctx) <= blocks + 4,
            "{} GETs for {blocks} blocks",
            gets(&ctx)
        );
    }

    /// Reads that arrive slightly out of order (the kernel's concurrent readahead) and a
    /// small step back keep the stream.
    #[tokio::test]
    async fn out_of_order_and_small_back_steps_stay_sequential() {
        let (ctx, mut p, data) = setup(64 * MIB, 64 * MIB);
        for offset in [
            0,
            MIB,
            3 * MIB,
            2 * MIB,
            4 * MIB,
            5 * MIB,
            4 * MIB,
            6 * MIB,
            8 * MIB,
        ] {
            let got = p.read(&ctx, offset, MIB as u32).await.unwrap();
            assert_eq!(
                got.to_bytes().as_ref(),
                &data[offset as usize..(offset + MIB) as usize]
            );
        }
        assert!(p.blocks_in_flight() > 0, "still streaming");
    }

    /// Random access cancels what was fetched ahead and reads only near what is asked.
    #[tokio::test]
    async fn random_reads_cancel_the_window_and_stay_small() {
        let (ctx, mut p, data) = setup(200 * MIB, 64 * MIB);
        for offset in (0..12).map(|i| i * MIB) {
            p.read(&ctx, offset, MIB as u32).await.unwrap();
        }
        assert!(p.blocks_in_flight() > 0);
        let before = gets(&ctx);
        for offset in [150 * MIB, 30 * MIB + 7, 190 * MIB, 90 * MIB] {
            let got = p.read(&ctx, offset, 4096).await.unwrap();
            assert_eq!(
                got.to_bytes().as_ref(),
                &data[offset as usize..offset as usize + 4096]
            );
            assert_eq!(p.blocks_in_flight(), 0);
        }
        assert_eq!(gets(&ctx) - before, 4, "one GET per random read");
        // Nothing holds budget once the blocks ahead are cancelled.
        assert_eq!(ctx.budget_available(), 64 * MIB);
    }

    /// With no budget left, a reader still gets its data (fetched as it reads).
    #[tokio::test]
    async fn a_spent_budget_still_serves_reads() {
        let (ctx, mut p, data) = setup(40 * MIB, 0);
        let mut offset = 0;
        while offset < 40 * MIB {
            let got = p.read(&ctx, offset, MIB as u32).await.unwrap();
            assert_eq!(
                got.to_bytes().as_ref(),
                &data[offset as usize..offset as usize + got.len()]
            );
            offset += got.len() as u64;
            assert_eq!(p.blocks_in_flight(), 0);
        }
    }

    /// A second handle on the same version reads the blocks the first one fetched.
    #[tokio::test]
    async fn another_handle_reads_from_the_block_cache() {
        let (ctx, mut p, data) = setup(32 * MIB, 64 * MIB);
        let mut offset = 0;
        while offset < 32 * MIB {
            offset += p.read(&ctx, offset, MIB as u32).await.unwrap().len() as u64;
        }
        let etag = p.etag().to_string();
        drop(p);
        let before = gets(&ctx);
        let mut q = Prefetcher::new("big".into(), etag, 32 * MIB);
        let got = q.read(&ctx, 9 * MIB, MIB as u32).await.unwrap();
        assert_eq!(
            got.to_bytes().as_ref(),
            &data[9 * MIB as usize..10 * MIB as usize]
        );
        assert_eq!(gets(&ctx), before, "served from the cache");
        assert!(ctx.cache.stats().hits > 0);
    }

    /// A block whose object changed fails with PreconditionFailed (ESTALE upstream).
    #[tokio::test]
    async fn a_replaced_object_fails_the_pinned_read() {
        let (ctx, mut p, _) = setup(32 * MIB, 64 * MIB);
        ctx.client.insert("big", object(32 * MIB + 1));
        let err = p.read(&ctx, 0, 4096).await.unwrap_err();
        assert!(matches!(err, S3Error::PreconditionFailed { .. }), "{err:?}");
    }
}
