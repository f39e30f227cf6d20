//! One request's passage through the server, as the log tells it. [`RequestRecord`] is what
//! tests read; [`Exchange`] is the live side, shared by the front service and the two body
//! wrappers of one request, each reporting what it saw.
//!
//! The record is settled — outcome, bytes, duration — when the last of them lets go of the
//! exchange, which is when the exchange is over however it ended: answered, cut by a fault,
//! or dropped because the client's connection went away while it was in flight. That last
//! case is why settling happens on drop: a future hyper drops is never polled again, so
//! nothing but its destructor can tell the story.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::faults::Fault;
use super::monitor::Monitor;
use super::op::Op;

/// One request as the server received it, and how it ended.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub op: Op,
    pub method: String,
    /// The path and query as sent (still percent-encoded).
    pub uri: String,
    /// The Host header as sent (an access point's host, before it is handed on).
    pub host: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// The access key id of the credential scope (`None` for anonymous requests). Recorded
    /// as sent, before the signature is verified.
    pub access_key: Option<String>,
    /// The region of the credential scope.
    pub signing_region: Option<String>,
    pub security_token: Option<String>,
    /// The status answered (its head was handed to the connection); `None` when no answer
    /// was sent: dropped, cut mid-upload, lost, hung, or the client left first.
    pub status: Option<u16>,
    /// The fault this request got, if any (whether or not it fired: a cut after more bytes
    /// than the body has does not).
    pub fault: Option<Fault>,
    /// How the exchange ended; [`Outcome::InFlight`] until it has.
    pub outcome: Outcome,
    /// The request body was read to its end (always so for a bodiless request). False when
    /// the server answered without reading it all (an error, a fault) or the connection ended
    /// mid-body.
    pub request_body_complete: bool,
    /// Request body bytes the server read.
    pub bytes_received: u64,
    /// Response body bytes the server handed to the connection.
    pub bytes_sent: u64,
    /// From arrival to the end of the exchange; `None` while in flight.
    pub duration: Option<Duration>,
}

impl RequestRecord {
    /// The client hung up before the exchange ended: gave up mid-upload, while waiting, or
    /// mid-download.
    pub fn cut_by_client(&self) -> bool {
        matches!(self.outcome, Outcome::CutByClient(_))
    }
}

/// How an exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not over yet.
    InFlight,
    /// The whole answer was handed to the connection.
    Answered,
    /// The server ended the connection: a fault (dropped, cut, answer lost), or a response
    /// body that failed mid-way.
    CutByServer,
    /// The client's connection ended first, in this phase.
    CutByClient(Phase),
    /// The server was stopped with the request in flight.
    ServerStopped,
}

/// Where an exchange was when the client left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Sending the request body.
    RequestBody,
    /// Waiting for the answer, the request sent.
    Waiting,
    /// Receiving the response body.
    ResponseBody,
}

/// The live side of one request's record.
pub struct Exchange {
    monitor: Arc<Monitor>,
    /// The record's id in the monitor's log.
    id: u64,
    started: Instant,
    /// `METHOD URI (Op, key …)`, for the debug log.
    summary: String,
    // A std mutex: taken per body slice for a few field updates, never across an await.
    progress: Mutex<Progress>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Upload {
    NotRead,
    Reading,
    Complete,
    /// The client's connection failed mid-body.
    Broken,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Download {
    NotStarted,
    Sending,
    Complete,
}

struct Progress {
    upload: Upload,
    download: Download,
    received: u64,
    sent: u64,
    status: Option<u16>,
    cut_by_server: bool,
}

impl Exchange {
    pub fn new(
        monitor: Arc<Monitor>,
        id: u64,
        started: Instant,
        summary: String,
        bodiless: bool,
    ) -> Arc<Exchange> {
        Arc::new(Exchange {
            monitor,
            id,
            started,
            summary,
            progress: Mutex::new(Progress {
                upload: if bodiless {
                    Upload::Complete
                } else {
                    Upload::NotRead
                },
                download: Download::NotStarted,
                received: 0,
                sent: 0,
                status: None,
                cut_by_server: false,
            }),
        })
    }

    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server started reading the request body.
    pub fn reading(&self) {
        let mut p = self.progress();
        if p.upload == Upload::NotRead {
            p.upload = Upload::Reading;
        }
    }

    pub fn received(&self, n: usize) {
        self.progress().received += n as u64;
    }

    /// The request body was read to its end.
    pub fn request_complete(&self) {
        let mut p = self.progress();
        if p.upload != Upload::Broken {
            p.upload = Upload::Complete;
        }
    }

    /// Reading the request body failed: the client's connection ended mid-body.
    pub fn request_broken(&self) {
        self.progress().upload = Upload::Broken;
    }

    /// The answer's head, with `status`, goes to the connection; `has_body` is false for
    /// answers that never carry one on the wire (to HEAD, 204, 304), which hyper drops unread.
    pub fn answering(&self, status: u16, has_body: bool) {
        {
            let mut p = self.progress();
            p.status = Some(status);
            p.download = if has_body {
                Download::Sending
            } else {
                Download::Complete
            };
        }
        // Shown at once, as before the exchange settles: a test reading the log while a long
        // body streams sees the request as answered with this status.
        self.monitor.settle(self.id, |r| r.status = Some(status));
    }

    pub fn sent(&self, n: usize) {
        self.progress().sent += n as u64;
    }

    /// The whole response body was handed to the connection.
    pub fn response_complete(&self) {
        self.progress().download = Download::Complete;
    }

    /// The server ends the connection (a fault, or a failing response body).
    pub fn cut(&self) {
        self.progress().cut_by_server = true;
    }

    pub fn is_cut(&self) -> bool {
        self.progress().cut_by_server
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let p = self.progress();
        let outcome = if p.cut_by_server {
            Outcome::CutByServer
        } else if p.upload == Upload::Broken {
            Outcome::CutByClient(Phase::RequestBody)
        } else if p.download == Download::Complete {
            Outcome::Answered
        } else if self.monitor.is_stopping() {
            Outcome::ServerStopped
        } else if p.download == Download::Sending {
            Outcome::CutByClient(Phase::ResponseBody)
        } else if p.upload == Upload::Reading {
            Outcome::CutByClient(Phase::RequestBody)
        } else {
            Outcome::CutByClient(Phase::Waiting)
        };
        let duration = self.started.elapsed();
        log::debug!(
            "{} -> {:?} {outcome:?}, {} B in{}, {} B out, {duration:.2?}",
            self.summary,
            p.status,
            p.received,
            if p.upload == Upload::Complete {
                " (whole body)"
            } else {
                ""
            },
            p.sent,
        );
        let (status, complete, received, sent) =
            (p.status, p.upload == Upload::Complete, p.received, p.sent);
        drop(p);
        self.monitor.settle(self.id, |r| {
            r.status = status;
            r.outcome = outcome;
            r.request_body_complete = complete;
            r.bytes_received = received;
            r.bytes_sent = sent;
            r.duration = Some(duration);
        });
    }
}
