//! What can go wrong on purpose, and to which request: [`Fault`] is one failure; [`FaultPlan`]
//! holds the faults switched on — an outage, faults queued for the next requests, faults drawn
//! at a rate — and picks the one, if any, each arriving request gets.
//!
//! A request gets at most one fault. When several could apply, an outage wins, then queued
//! faults (oldest first), then rates (in the order they were set): an outage is the state of
//! the whole server, a queued fault a precise script, a rate background noise. (Refused
//! connections, which outrank all of these, are the listener's business: see `Monitor`.)
//!
//! Bandwidth and latency are not faults of one request but properties of the link; `Monitor`
//! keeps them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::op::Op;

/// A failure the server can be told to produce for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `503 SlowDown`, S3's throttling answer, without reading the request body.
    SlowDown,
    /// `500 InternalError`, without reading the request body.
    InternalError,
    /// Close the connection without reading the body or answering: nothing is applied, and the
    /// client sees a reset or an incomplete message.
    DropConnection,
    /// Read the first `after` bytes of the request body, then close the connection: a client
    /// still sending sees a reset (or EOF) mid-body and no answer; nothing is applied. A body
    /// of at most `after` bytes is not cut.
    CutUpload { after: u64 },
    /// Answer, but close the connection once `after` bytes of the response body are sent: the
    /// client gets the status, headers (with the full length) and a truncated body, then EOF.
    /// The request is applied. A body of at most `after` bytes is not cut.
    CutDownload { after: u64 },
    /// Read the whole request, then answer nothing until hangs are released (`clear_faults`,
    /// `end_outage`, or the end of a timed outage); then handle it as if nothing happened. A
    /// client that gives up first is recorded as having cut the exchange.
    Hang,
    /// Apply the request fully (the store changes as it would), then close the connection
    /// instead of sending the answer: the client cannot tell whether it was applied.
    LoseAnswer,
}

/// A fault for the next `remaining` requests of `only` (or of any operation).
struct Queued {
    fault: Fault,
    only: Option<Op>,
    remaining: usize,
}

/// A fault for a `fraction` of the requests of `only` (or of any operation).
struct Rate {
    fault: Fault,
    only: Option<Op>,
    fraction: f64,
}

/// Every request gets `fault` until `until` (or until ended).
struct Outage {
    fault: Fault,
    until: Option<Instant>,
}

/// The fault a request gets, and when a hang it causes ends by itself (a timed outage's end).
pub struct Picked {
    pub fault: Fault,
    pub hang_until: Option<Instant>,
}

/// The faults switched on for one server.
pub struct FaultPlan {
    queued: VecDeque<Queued>,
    rates: Vec<Rate>,
    outage: Option<Outage>,
    /// Draws for rates; seeded from entropy unless a test asks for a fixed sequence.
    rng: StdRng,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            queued: VecDeque::new(),
            rates: Vec::new(),
            outage: None,
            rng: StdRng::from_entropy(),
        }
    }
}

fn matches(only: Option<Op>, op: Op) -> bool {
    only.is_none_or(|o| o == op)
}

impl FaultPlan {
    /// Gives `fault` to the next `n` requests of `only` (or of any operation).
    pub fn queue(&mut self, n: usize, fault: Fault, only: Option<Op>) {
        if n > 0 {
            self.queued.push_back(Queued {
                fault,
                only,
                remaining: n,
            });
        }
    }

    /// Gives `fault` to each request of `only` (or of any operation) with probability
    /// `fraction`, replacing the rate set before for the same fault and filter; 0 removes it.
    pub fn set_rate(&mut self, fraction: f64, fault: Fault, only: Option<Op>) {
        self.rates.retain(|r| !(r.fault == fault && r.only == only));
        let fraction = fraction.clamp(0.0, 1.0);
        if fraction > 0.0 {
            self.rates.push(Rate {
                fault,
                only,
                fraction,
            });
        }
    }

    /// Makes the draws for rates repeat from `seed`.
    pub fn seed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// Gives `fault` to every request, for `duration` or until ended.
    pub fn start_outage(&mut self, fault: Fault, duration: Option<Duration>) {
        self.outage = Some(Outage {
            fault,
            until: duration.map(|d| Instant::now() + d),
        });
    }

    pub fn end_outage(&mut self) {
        self.outage = None;
    }

    pub fn clear(&mut self) {
        self.queued.clear();
        self.rates.clear();
        self.outage = None;
    }

    /// The fault, if any, for a request of `op` arriving at `now`; consumes a queued one.
    pub fn pick(&mut self, op: Op, now: Instant) -> Option<Picked> {
        if let Some(outage) = &self.outage {
            if outage.until.is_none_or(|until| now < until) {
                return Some(Picked {
                    fault: outage.fault,
                    hang_until: outage.until,
                });
            }
            self.outage = None;
        }
        if let Some(pos) = self.queued.iter().position(|q| matches(q.only, op)) {
            let queued = &mut self.queued[pos];
            let fault = queued.fault;
            queued.remaining -= 1;
            if queued.remaining == 0 {
                self.queued.remove(pos);
            }
            return Some(Picked {
                fault,
                hang_until: None,
            });
        }
        // Drawn in order: a later rate applies to the requests the earlier ones spared.
        for rate in self.rates.iter().filter(|r| matches(r.only, op)) {
            if self.rng.gen::<f64>() < rate.fraction {
                return Some(Picked {
                    fault: rate.fault,
                    hang_until: None,
                });
            }
        }
        None
    }
}
