//! Sequential read-ahead for one open file.
//!
//! The kernel reads a file in requests of at most `max_pages` pages. Sending one ranged GET
//! per request would pay a full S3 round trip for every megabyte, so a [`Prefetcher`]
//! fetches a window ahead of the reader and serves the following requests from it:
//!
//! - The first GET is small ([`INITIAL_WINDOW`]), so `head`/`file` on a large object cost
//!   one small request.
//! - Each read that continues where the previous one ended doubles the window, up to
//!   [`MAX_WINDOW`]; a read elsewhere (random access) drops back to the initial window and
//!   fetches only what was asked plus that window.
//! - Data is served as slices of the fetched `Bytes` (no copy), and every GET carries the
//!   ETag pinned at open in `If-Match`, so one handle never mixes two versions.
//!
//! Memory per handle is bounded by one window.

use bytes::Bytes;

use crate::s3::{GetObjectParams, ObjectClient, S3Error};

/// The first window: small, so probing the start of a big file costs little.
pub const INITIAL_WINDOW: u64 = 256 * 1024;
/// The largest window: 16 MiB keeps one GET long enough to amortize its round trip
/// while bounding the memory one handle holds.
pub const MAX_WINDOW: u64 = 16 * 1024 * 1024;

/// Read-ahead state of one open file.
#[derive(Debug)]
pub struct Prefetcher {
    key: String,
    etag: String,
    size: u64,
    /// `(offset of buffer[0], data)`.
    buffer: Option<(u64, Bytes)>,
    window: u64,
    /// Where the next read starts if the reader is sequential.
    next_offset: u64,
}

impl Prefetcher {
    /// A prefetcher for `key` whose version is pinned to `etag`, `size` bytes long.
    pub fn new(key: String, etag: String, size: u64) -> Self {
        Prefetcher {
            key,
            etag,
            size,
            buffer: None,
            window: INITIAL_WINDOW,
            next_offset: 0,
        }
    }

    /// The ETag this handle reads.
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// Up to `len` bytes at `offset` (fewer at the end of the object; none past it).
    pub async fn read<C: ObjectClient>(
        &mut self,
        client: &C,
        offset: u64,
        len: u32,
    ) -> Result<Bytes, S3Error> {
        if offset >= self.size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = self.size.min(offset + u64::from(len));
        let sequential = offset == self.next_offset;
        self.next_offset = end;
        if let Some(hit) = self.buffered(offset, end) {
            return Ok(hit);
        }
        self.window = if sequential && offset > 0 {
            (self.window * 2).min(MAX_WINDOW)
        } else {
            INITIAL_WINDOW
        };
        let fetch_end = self.size.min(end.max(offset + self.window));
        let out = client
            .get_object(GetObjectParams {
                key: self.key.clone(),
                range: Some(offset..fetch_end),
                if_match: Some(self.etag.clone()),
            })
            .await?;
        let body = out.body;
        let served = body.slice(..body.len().min((end - offset) as usize));
        self.buffer = Some((offset, body));
        Ok(served)
    }

    fn buffered(&self, offset: u64, end: u64) -> Option<Bytes> {
        let (start, data) = self.buffer.as_ref()?;
        let buf_end = start + data.len() as u64;
        if offset >= *start && end <= buf_end {
            let from = (offset - start) as usize;
            let to = (end - start) as usize;
            Some(data.slice(from..to))
        } else {
            None
        }
    }
}
