//! Request and response bodies as they cross the link. [`Metered`] wraps a body to count its
//! bytes into the exchange, pace them through the link's bandwidth in that direction, and cut
//! the connection after a given number of bytes.
//!
//! Every body is wrapped, with or without faults: the counts and "did the body end" are what
//! the request log reports, and a bandwidth limit switched on mid-transfer applies from the
//! next slice. Unthrottled, a frame passes through whole, for an atomic load and an
//! uncontended lock (the exchange's counts) per frame.
//!
//! A cut ends the body with an error, and hyper closes a connection whose body fails:
//!
//! - upload: the error reaches s3s, which gives up the request; the front service then drops
//!   the connection instead of answering. The client, still sending, gets a reset (or EOF).
//! - download: the bytes before the cut are given a moment ([`FLUSH_GRACE`]) to reach the
//!   socket first — hyper drops what it has not written when a body fails — so the client
//!   reads the head and a truncated body, then EOF.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Sleep;

use super::bandwidth::Bandwidth;
use super::exchange::Exchange;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a cut response body stays pending before it fails. hyper writes out what it holds
/// as soon as the body is pending; the grace covers a reader whose socket buffer is full for a
/// moment, so the bytes before the cut reach it.
const FLUSH_GRACE: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// A request body, read by the server.
    Upload,
    /// A response body, sent by the server.
    Download,
}

/// A body counted, paced and possibly cut on its way.
pub struct Metered<B: HttpBody<Data = Bytes> + Unpin> {
    inner: B,
    direction: Direction,
    exchange: Arc<Exchange>,
    /// Taken from `inner`, not yet passed on: the rest of a frame bigger than one slice.
    held: Bytes,
    /// A slice booked on the link, released when `timer` fires.
    booked: Option<Bytes>,
    /// Made on first use: an unthrottled, uncut body never needs one.
    timer: Option<Pin<Box<Sleep>>>,
    /// Bytes passed on so far.
    passed: u64,
    /// Cut the connection after this many bytes.
    cut_after: Option<u64>,
    /// The cut is decided; a download waits for [`FLUSH_GRACE`] before failing.
    cutting: bool,
    /// `inner` has ended and everything was passed on.
    ended: bool,
}

impl<B: HttpBody<Data = Bytes> + Unpin> Metered<B> {
    /// A request body, counted into `exchange` and cut after `cut_after` bytes.
    pub fn upload(inner: B, exchange: Arc<Exchange>, cut_after: Option<u64>) -> Self {
        Self::new(inner, Direction::Upload, exchange, cut_after)
    }

    /// A response body, counted into `exchange` and cut after `cut_after` bytes.
    pub fn download(inner: B, exchange: Arc<Exchange>, cut_after: Option<u64>) -> Self {
        Self::new(inner, Direction::Download, exchange, cut_after)
    }

    fn new(
        inner: B,
        direction: Direction,
        exchange: Arc<Exchange>,
        cut_after: Option<u64>,
    ) -> Self {
        Metered {
            inner,
            direction,
            exchange,
            held: Bytes::new(),
            booked: None,
            timer: None,
            passed: 0,
            cut_after,
            cutting: false,
            ended: false,
        }
    }

    fn link(&self) -> &Bandwidth {
        match self.direction {
            Direction::Upload => self.exchange.monitor().upload_link(),
            Direction::Download => self.exchange.monitor().download_link(),
        }
    }

    fn count(&self, n: usize) {
        match self.direction {
            Direction::Upload => self.exchange.received(n),
            Direction::Download => self.exchange.sent(n),
        }
    }

    /// Everything was passed on and `inner` has nothing more.
    fn finished(&self) -> bool {
        self.ended
            || (self.held.is_empty()
                && self.booked.is_none()
                && !self.cutting
                && self.inner.is_end_stream())
    }

    fn set_timer(&mut self, at: tokio::time::Instant) {
        match &mut self.timer {
            Some(timer) => timer.as_mut().reset(at),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl<B> HttpBody for Metered<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.direction == Direction::Upload {
            this.exchange.reading();
        }
        loop {
            if let Some(slice) = this.booked.take() {
                if this.poll_timer(cx).is_pending() {
                    this.booked = Some(slice);
                    return Poll::Pending;
                }
                this.count(slice.len());
                return Poll::Ready(Some(Ok(Frame::data(slice))));
            }
            if this.cutting {
                ready!(this.poll_timer(cx));
                let err = std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection cut mid-body by fault injection",
                );
                return Poll::Ready(Some(Err(err.into())));
            }
            if !this.held.is_empty() {
                let room = match this.cut_after {
                    Some(limit) if this.passed >= limit => {
                        // Recorded now: a client leaving during the grace still met a cut.
                        this.exchange.cut();
                        this.cutting = true;
                        if this.direction == Direction::Download {
                            let at = tokio::time::Instant::now() + FLUSH_GRACE;
                            this.set_timer(at);
                        } else {
                            this.timer = None;
                        }
                        continue;
                    }
                    Some(limit) => usize::try_from(limit - this.passed).unwrap_or(usize::MAX),
                    None => usize::MAX,
                };
                let slice = this.link().book(this.held.len().min(room));
                let bytes = this.held.split_to(slice.len);
                this.passed += bytes.len() as u64;
                match slice.at {
                    Some(at) => {
                        this.set_timer(at.into());
                        this.booked = Some(bytes);
                    }
                    None => {
                        this.count(bytes.len());
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                }
                continue;
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                None => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.held = data,
                    // Trailers pass as they are.
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(e)) => {
                    match this.direction {
                        // hyper fails an incoming body when the client's connection ends
                        // (or breaks framing) before the body does.
                        Direction::Upload => this.exchange.request_broken(),
                        Direction::Download => this.exchange.cut(),
                    }
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished()
    }

    fn size_hint(&self) -> SizeHint {
        let pending = (self.held.len() + self.booked.as_ref().map_or(0, Bytes::len)) as u64;
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + pending);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + pending);
        }
        hint
    }
}

impl<B: HttpBody<Data = Bytes> + Unpin> Drop for Metered<B> {
    fn drop(&mut self) {
        // The body's consumer may stop at its known length without polling for the end.
        if !self.finished() {
            return;
        }
        match self.direction {
            Direction::Upload => self.exchange.request_complete(),
            Direction::Download => self.exchange.response_complete(),
        }
    }
}
