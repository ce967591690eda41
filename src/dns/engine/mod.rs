//! The probe engine: lookups the way a pod's stub resolver makes them, many
//! in flight at once on non-blocking sockets, every packet matched strictly.
//!
//! One lookup = one fresh socket (so one new conntrack entry, as for a real
//! resolver) and two queries, A and AAAA, sent the way the chosen [`Mode`]
//! says. The engine runs single-threaded around `ppoll(2)`; only
//! [`Mode::Threads`] adds a pair of sender threads that meet at a barrier
//! so both queries leave the same socket at the same instant.
//!
//! Everything is bounded: a lookup ends when both queries are answered,
//! failed or timed out; the run ends at `count` lookups, after `duration`,
//! or at `max_run`, whichever comes first, and then waits at most one
//! timeout for the lookups still in flight.

mod event_loop;
mod ids;
mod lookup;
mod result;
mod senders;
mod sockets;
mod tcp;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hickory_proto::rr::Name;
use serde::Serialize;

use crate::error::Result;
use event_loop::Engine;

pub use result::{EngineResult, LookupHeader, Outcomes, SocketUse, StrayCounts, TypeCounts};
pub use sockets::{socket_budget, SocketBudgetError};

/// How a lookup's two queries are sent: the resolver behaviours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// glibc's default: both queries in one `sendmmsg(2)` on a fresh
    /// connected UDP socket.
    Parallel,
    /// Two threads send one query each on the same socket at the same
    /// instant (released together by a barrier): the most race-prone.
    Threads,
    /// `options single-request`: A, wait for its answer, then AAAA on the
    /// same socket.
    Sequential,
    /// `options single-request-reopen`: A, then AAAA from a new socket.
    Reopen,
    /// `options use-vc`: one TCP connection, both queries length-prefixed.
    Tcp,
    /// musl's stub resolver (Alpine): a fresh socket bound to port 0 and
    /// never connected, A then AAAA in two `sendto(2)` calls back to back,
    /// unanswered queries sent again every [`EngineConfig::retry_after`]
    /// (musl: `timeout / attempts`) until the timeout. No ICMP error
    /// reaches an unconnected socket, so a refused query waits its timeout.
    Musl,
}

impl Mode {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Parallel => "parallel",
            Mode::Threads => "threads",
            Mode::Sequential => "sequential",
            Mode::Reopen => "reopen",
            Mode::Tcp => "tcp",
            Mode::Musl => "musl",
        }
    }
}

/// What the engine is to do (already validated).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where the queries go.
    pub server: SocketAddr,
    /// Names looked up, in turn.
    pub names: Vec<Name>,
    /// How the two queries of a lookup are sent.
    pub mode: Mode,
    /// Stop after this many lookups.
    pub count: Option<u64>,
    /// Stop starting lookups after this long.
    pub duration: Option<Duration>,
    /// Lookups started per second; 0 = as fast as concurrency allows.
    pub rate: f64,
    /// Lookups in flight at once (sockets lingering for late answers are
    /// bounded apart, from what the open-file limit leaves).
    pub concurrency: usize,
    /// How long a query waits for its answer before it counts as lost.
    pub timeout: Duration,
    /// How long a socket with a lost query stays open to count late answers.
    pub linger: Duration,
    /// Hard cap on the time spent starting lookups.
    pub max_run: Duration,
    /// A fully answered lookup this slow or slower counts in
    /// [`EngineResult::slow_lookups`] (`--slow-ms`).
    pub slow_after: Duration,
    /// A fully answered lookup this slow or slower counts in
    /// [`EngineResult::beyond_resolver_timeout`]: the resolver would have
    /// given up on it (its `options timeout:`).
    pub resolver_timeout: Duration,
    /// [`Mode::Musl`]: queries still unanswered this long after they were
    /// (last) sent are sent again on the same socket; other modes never
    /// resend. `None`: no resending.
    pub retry_after: Option<Duration>,
}

/// Runs the probe. `progress` is called with the number of finished
/// lookups; `stop` ends the run early (lookups in flight still finish).
pub fn run(
    config: &EngineConfig,
    stop: &AtomicBool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<EngineResult> {
    let mut engine = Engine::new(config)?;
    let outcome = engine.run(stop, progress);
    if let Some(pair) = engine.senders.take() {
        pair.shutdown();
    }
    outcome?;
    Ok(engine.result)
}
