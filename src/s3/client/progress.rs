//! Timeouts that measure progress, not duration (DESIGN invariant 9).
//!
//! A request fails for slowness only when no byte moved either way for the I/O timeout:
//! neither a piece of its body went into the socket nor a piece of the answer came out. A
//! 64 MiB part on a 1.5 MB/s uplink takes 45 s to send and must not fail, where a server
//! that accepted the connection and then went silent must not hold a request forever.
//! (`reqwest`'s read timeout cannot tell them apart: it starts at send and is not reset
//! while the body goes out, so every upload had to be *sent* within it.)
//!
//! - [`Progress`]: when bytes last moved for one attempt, touched by both directions.
//! - [`ProgressBody`]: a request body handed to the HTTP client in small slices of one
//!   `Bytes` (no copy), each slice it takes a sign that the socket had room again.
//! - [`Progress::stalled`]: resolves once the attempt has been idle for the limit; raced
//!   against the attempt, it cancels it.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

/// The slice of a body handed to the HTTP client at a time. The client asks for the next
/// one when its write buffer has room, that is when the link took bytes, so a slice is the
/// unit progress is seen in: at 16 KiB, a link would have to be slower than 16 KiB per
/// I/O timeout (about 270 bytes/s at 60 s) before a moving upload looks stalled. Slices
/// share the body's memory; smaller ones only cost a few more polls.
const SLICE: usize = 16 * 1024;

/// When bytes of one request attempt last moved, either way.
#[derive(Debug)]
pub struct Progress {
    start: Instant,
    /// Milliseconds since `start` of the last movement.
    last_ms: AtomicU64,
}

impl Progress {
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    /// Bytes moved just now.
    pub fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Resolves once nothing moved for `limit`; never while bytes keep moving.
    pub async fn stalled(&self, limit: Duration) {
        loop {
            let deadline = self.last() + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A request body of known length (so it goes with `Content-Length`, as S3 wants), given
/// to the HTTP client [`SLICE`] bytes at a time, each one touching the attempt's
/// [`Progress`].
pub struct ProgressBody {
    rest: Bytes,
    progress: Arc<Progress>,
}

impl ProgressBody {
    pub fn new(body: Bytes, progress: Arc<Progress>) -> Self {
        ProgressBody {
            rest: body,
            progress,
        }
    }
}

impl http_body::Body for ProgressBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let take = self.rest.len().min(SLICE);
        let slice = self.rest.split_to(take);
        self.progress.touch();
        Poll::Ready(Some(Ok(http_body::Frame::data(slice))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.rest.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// The body comes out whole, in slices, with its exact length announced.
    #[tokio::test]
    async fn body_comes_out_whole_in_slices() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let progress = Progress::new();
        let mut body = ProgressBody::new(Bytes::from(data.clone()), Arc::clone(&progress));
        assert_eq!(
            http_body::Body::size_hint(&body).exact(),
            Some(data.len() as u64)
        );
        let mut out = Vec::new();
        let mut frames = 0;
        while let Some(frame) = body.frame().await {
            let chunk = frame.unwrap().into_data().unwrap();
            assert!(chunk.len() <= SLICE);
            out.extend_from_slice(&chunk);
            frames += 1;
        }
        assert_eq!(out, data);
        assert_eq!(frames, data.len().div_ceil(SLICE));
    }

    /// `stalled` waits while bytes keep moving and resolves once they stop.
    #[tokio::test(start_paused = true)]
    async fn stalled_measures_silence_not_duration() {
        let progress = Progress::new();
        let limit = Duration::from_secs(10);
        let mover = {
            let progress = Arc::clone(&progress);
            tokio::spawn(async move {
                // 30 s of slow but steady movement: every 5 s.
                for _ in 0..6 {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    progress.touch();
                }
            })
        };
        let started = Instant::now();
        progress.stalled(limit).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(40) && waited < Duration::from_secs(41),
            "stalled after {waited:?}: 30 s of movement, then 10 s of silence"
        );
        mover.await.unwrap();
    }
}
