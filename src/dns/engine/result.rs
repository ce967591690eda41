//! What a run counted: the raw outcome the commands turn into reports.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::dns::histogram::LatencyHistogram;

/// Packets that arrived but were not taken as answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StrayCounts {
    /// From another address or port than the server.
    pub wrong_source: u64,
    /// A response whose ID matches no query of that socket.
    pub wrong_id: u64,
    /// ID matches but the question differs.
    pub wrong_question: u64,
    /// Not decodable (cut short, garbage) or not a response.
    pub malformed: u64,
    /// A response with the TC bit set.
    pub truncated: u64,
    /// A second answer to an already answered query.
    pub duplicate: u64,
    /// An answer that came after its query had timed out.
    pub late: u64,
}

impl StrayCounts {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.wrong_source
            + self.wrong_id
            + self.wrong_question
            + self.malformed
            + self.truncated
            + self.duplicate
            + self.late
    }
}

/// The header the probe and compare reports share: where the lookups ran
/// and what they asked. Both reports flatten it, so its fields are keys of
/// the report's JSON object, in this order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LookupHeader {
    /// Namespace of the probe sockets; null for the current one.
    pub netns: Option<String>,
    /// Namespace whose conntrack counters were read; null for the current one.
    pub stats_netns: Option<String>,
    /// Names looked up, in turn.
    pub names: Vec<String>,
}

/// Per record type: sent, answered, lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TypeCounts {
    /// Queries sent (or attempted).
    pub sent: u64,
    /// Queries answered.
    pub answered: u64,
    /// Queries without an answer (any outcome but answered).
    pub lost: u64,
}

/// How each query ended: exactly one outcome per query sent (or
/// attempted), so the fields add up to the queries sent. Only `timed_out`
/// is silence on the path; the others are errors the stack or the network
/// reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    /// Answered (any rcode).
    pub answered: u64,
    /// No answer and no error until the timeout: the query or its answer
    /// was lost on the way, or the server ignored it.
    pub timed_out: u64,
    /// ICMP port unreachable (ECONNREFUSED; over TCP a reset connect):
    /// the server's host is up but nothing listens on the port.
    pub port_unreachable: u64,
    /// ICMP host or network unreachable (or administratively prohibited)
    /// from the network, reported to the socket.
    pub unreachable: u64,
    /// `connect(2)`/`send(2)` itself failed with ENETUNREACH/EHOSTUNREACH:
    /// this namespace has no route to the target, no packet left.
    pub no_route: u64,
    /// The send failed otherwise (EPERM from a local firewall, ENOBUFS,
    /// ...), or a TCP connection closed before its answers.
    pub send_failed: u64,
}

impl Outcomes {
    /// Queries that ended in an error (neither answered nor timed out).
    pub fn errors(&self) -> u64 {
        self.port_unreachable + self.unreachable + self.no_route + self.send_failed
    }

    /// Adds another count.
    pub fn add(&mut self, other: &Outcomes) {
        self.answered += other.answered;
        self.timed_out += other.timed_out;
        self.port_unreachable += other.port_unreachable;
        self.unreachable += other.unreachable;
        self.no_route += other.no_route;
        self.send_failed += other.send_failed;
    }
}

/// The raw outcome of a run; the command turns it into a report.
#[derive(Debug, Clone, Default)]
pub struct EngineResult {
    /// Lookups started and finished.
    pub lookups: u64,
    /// A then AAAA.
    pub by_type: [TypeCounts; 2],
    /// Lookups with exactly one of their two queries unanswered.
    pub one_lost_lookups: u64,
    /// Lookups with both queries unanswered.
    pub both_lost_lookups: u64,
    /// How each query ended.
    pub outcomes: Outcomes,
    /// The errno of the first query that found no route (ENETUNREACH or
    /// EHOSTUNREACH), for the evidence.
    pub no_route_errno: Option<i32>,
    /// Answers per rcode name.
    pub rcodes: BTreeMap<String, u64>,
    /// Packets not taken as answers.
    pub stray: StrayCounts,
    /// Time from the start of each fully answered lookup to its last
    /// answer: a fixed-size histogram, so memory does not grow with the run.
    pub latency: LatencyHistogram,
    /// Fully answered lookups whose last answer came `slow_after` or more
    /// after their start (counted exactly, not from the histogram).
    pub slow_lookups: u64,
    /// Fully answered lookups whose last answer came `resolver_timeout` or
    /// more after their start (counted exactly).
    pub beyond_resolver_timeout: u64,
    /// Queries sent again because they were still unanswered after
    /// `retry_after` ([`Mode::Musl`](super::Mode::Musl)); not part of `by_type[].sent`.
    pub retransmitted: u64,
    /// Wall time from the first lookup to the end of the run.
    pub elapsed: Duration,
    /// Whether the hard run-time cap stopped the run.
    pub capped: bool,
    /// Whether a stop request (SIGINT) ended the run early.
    pub interrupted: bool,
    /// How many sockets the run held, and within which limits.
    pub sockets: SocketUse,
}

/// The probe sockets a run held: lookups in flight and sockets lingering
/// for late answers, within the process's open-file limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SocketUse {
    /// The open-file limit (soft `RLIMIT_NOFILE`, `ulimit -n`) during the run.
    pub open_file_limit: u64,
    /// Most probe sockets open at once.
    pub peak_open: u64,
    /// How many sockets may wait for late answers at once.
    pub lingering_limit: u64,
    /// Lingering sockets closed before their time to stay within that
    /// limit (a late answer to one of them is no longer seen).
    pub lingering_closed_early: u64,
}

impl EngineResult {
    /// Queries sent, both types.
    pub fn queries_sent(&self) -> u64 {
        self.by_type.iter().map(|t| t.sent).sum()
    }

    /// Queries answered, both types.
    pub fn answered(&self) -> u64 {
        self.by_type.iter().map(|t| t.answered).sum()
    }

    /// Queries lost, both types.
    pub fn lost(&self) -> u64 {
        self.by_type.iter().map(|t| t.lost).sum()
    }

    /// Adds another run's result into this one (rounds of the same target
    /// in `compare`): counts add up, latencies merge, run times add, the
    /// socket peak is the higher one.
    pub fn merge(&mut self, other: &EngineResult) {
        self.lookups += other.lookups;
        for (mine, theirs) in self.by_type.iter_mut().zip(&other.by_type) {
            mine.sent += theirs.sent;
            mine.answered += theirs.answered;
            mine.lost += theirs.lost;
        }
        self.one_lost_lookups += other.one_lost_lookups;
        self.both_lost_lookups += other.both_lost_lookups;
        self.outcomes.add(&other.outcomes);
        self.no_route_errno = self.no_route_errno.or(other.no_route_errno);
        for (rcode, n) in &other.rcodes {
            *self.rcodes.entry(rcode.clone()).or_insert(0) += n;
        }
        let (s, o) = (&mut self.stray, &other.stray);
        s.wrong_source += o.wrong_source;
        s.wrong_id += o.wrong_id;
        s.wrong_question += o.wrong_question;
        s.malformed += o.malformed;
        s.truncated += o.truncated;
        s.duplicate += o.duplicate;
        s.late += o.late;
        self.latency.merge(&other.latency);
        self.slow_lookups += other.slow_lookups;
        self.beyond_resolver_timeout += other.beyond_resolver_timeout;
        self.retransmitted += other.retransmitted;
        self.elapsed += other.elapsed;
        self.capped |= other.capped;
        self.interrupted |= other.interrupted;
        let (s, o) = (&mut self.sockets, &other.sockets);
        s.open_file_limit = s.open_file_limit.max(o.open_file_limit);
        s.peak_open = s.peak_open.max(o.peak_open);
        s.lingering_limit = s.lingering_limit.max(o.lingering_limit);
        s.lingering_closed_early += o.lingering_closed_early;
    }
}
