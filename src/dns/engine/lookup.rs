//! One lookup in flight: its queries, its sockets, how each received
//! packet is matched, and how a finished lookup is counted.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dns::wire::{classify, rcode_name, SentQuery, Verdict};

use super::sockets::{drain_icmp_errors, failure_of_errno, ErrorSource};
use super::tcp::TcpConn;
use super::EngineResult;

/// Why a query ended without an answer: the outcomes of
/// [`Outcomes`](super::Outcomes) other than answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// Silence until the timeout.
    TimedOut,
    /// ICMP port unreachable (ECONNREFUSED): the host is up, nothing listens.
    PortUnreachable,
    /// ICMP host/net unreachable (or admin prohibited) from the network.
    Unreachable,
    /// `connect`/`send` failed at once with ENETUNREACH/EHOSTUNREACH: no
    /// packet left this namespace.
    NoRoute {
        /// The errno the call returned.
        errno: i32,
    },
    /// Any other send failure (EPERM from a local firewall, ENOBUFS, ...),
    /// or a TCP connection that closed or was reset.
    SendFailed,
}

impl Failure {
    /// Whether the network reported it for the whole flow (an ICMP error).
    fn reported_by_network(self) -> bool {
        matches!(self, Failure::PortUnreachable | Failure::Unreachable)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QueryState {
    Unsent,
    Pending { sent_at: Instant },
    Answered,
    Failed(Failure),
}

#[derive(Debug)]
pub(super) struct QuerySlot {
    pub(super) sent: SentQuery,
    pub(super) bytes: Vec<u8>,
    pub(super) state: QueryState,
}

#[derive(Debug)]
pub(super) enum Conn {
    Udp(Arc<UdpSocket>),
    Tcp(TcpConn),
}

impl Conn {
    pub(super) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Conn::Udp(s) => s.as_fd(),
            Conn::Tcp(t) => t.stream.as_fd(),
        }
    }
}

/// Which of a lookup's sockets: the current one, or (reopen mode) the A
/// query's own socket, kept after the AAAA query moved to a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Which {
    Current,
    First,
}

/// One lookup in flight (or lingering after it finished with a loss).
#[derive(Debug)]
pub(super) struct Lookup {
    pub(super) conn: Option<Conn>,
    /// The queries `conn` carried: both, except for reopen's AAAA socket.
    pub(super) conn_carries: [bool; 2],
    /// Reopen mode: the A query's socket, kept open after its query timed
    /// out so that a late A answer is still seen (and counted as late).
    pub(super) first_conn: Option<Conn>,
    pub(super) queries: [QuerySlot; 2],
    pub(super) started: Instant,
    pub(super) last_answer: Option<Instant>,
    /// Set once the lookup is accounted; the socket stays open until then.
    pub(super) linger_until: Option<Instant>,
    /// [`Mode::Musl`](super::Mode::Musl): when the queries still unanswered are sent again.
    pub(super) retry_at: Option<Instant>,
}

/// What one received packet meant for a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PacketEffect {
    Answered,
    Stray,
}

impl Lookup {
    pub(super) fn new(started: Instant, queries: [QuerySlot; 2]) -> Self {
        Lookup {
            conn: None,
            conn_carries: [true, true],
            first_conn: None,
            queries,
            started,
            last_answer: None,
            linger_until: None,
            retry_at: None,
        }
    }

    /// Sockets this lookup holds open.
    pub(super) fn sockets(&self) -> usize {
        usize::from(self.conn.is_some()) + usize::from(self.first_conn.is_some())
    }

    /// Closes every socket of the lookup; returns how many were open.
    pub(super) fn close(&mut self) -> usize {
        let open = self.sockets();
        self.conn = None;
        self.first_conn = None;
        open
    }

    pub(super) fn finished(&self) -> bool {
        self.queries.iter().all(|q| matches!(q.state, QueryState::Answered | QueryState::Failed(_)))
    }

    /// Applies one received packet: an answer for a pending query, or one
    /// of the stray kinds.
    pub(super) fn on_packet(
        &mut self,
        packet: &[u8],
        source: SocketAddr,
        server: SocketAddr,
        now: Instant,
        result: &mut EngineResult,
    ) -> PacketEffect {
        let carried = self.conn_carries;
        self.on_packet_for(packet, carried, source, server, now, result)
    }

    /// [`Lookup::on_packet`] for a packet that arrived on a socket that
    /// carried the queries marked in `carried`.
    pub(super) fn on_packet_for(
        &mut self,
        packet: &[u8],
        carried: [bool; 2],
        source: SocketAddr,
        server: SocketAddr,
        now: Instant,
        result: &mut EngineResult,
    ) -> PacketEffect {
        // Why only sent queries, and only those of this socket: an answer to
        // a query not sent yet, or sent from another socket, cannot be
        // genuine.
        let (positions, candidates): (Vec<usize>, Vec<&SentQuery>) = self
            .queries
            .iter()
            .enumerate()
            .filter(|(position, slot)| slot.state != QueryState::Unsent && carried[*position])
            .map(|(position, slot)| (position, &slot.sent))
            .unzip();
        let verdict = match classify(packet, source, server, &candidates) {
            Verdict::Answer { index, rcode } => positions
                .get(index)
                .map_or(Verdict::WrongId, |&index| Verdict::Answer { index, rcode }),
            other => other,
        };
        // Every packet that is not a first answer counts as one kind of stray.
        let stray = match verdict {
            Verdict::Answer { index, rcode } => {
                let slot = &mut self.queries[index];
                match slot.state {
                    QueryState::Pending { .. } => {
                        slot.state = QueryState::Answered;
                        result.by_type[index].answered += 1;
                        *result.rcodes.entry(rcode_name(rcode)).or_insert(0) += 1;
                        self.last_answer = Some(now);
                        return PacketEffect::Answered;
                    }
                    QueryState::Answered => &mut result.stray.duplicate,
                    QueryState::Failed(_) => &mut result.stray.late,
                    QueryState::Unsent => &mut result.stray.wrong_id,
                }
            }
            Verdict::Truncated { .. } => &mut result.stray.truncated,
            Verdict::WrongSource => &mut result.stray.wrong_source,
            Verdict::WrongId => &mut result.stray.wrong_id,
            Verdict::WrongQuestion => &mut result.stray.wrong_question,
            Verdict::Malformed => &mut result.stray.malformed,
        };
        *stray += 1;
        PacketEffect::Stray
    }

    /// Marks every pending or unsent query failed.
    pub(super) fn fail_open_queries(&mut self, failure: Failure) {
        for slot in &mut self.queries {
            if matches!(slot.state, QueryState::Pending { .. } | QueryState::Unsent) {
                slot.state = QueryState::Failed(failure);
            }
        }
    }

    /// An ICMP error is reported once per socket, to whichever call comes
    /// first (often the second send). It applies to the whole flow, so the
    /// other open query of the lookup has failed the same way.
    pub(super) fn spread_refusal(&mut self) {
        let network = self.queries.iter().find_map(|q| match q.state {
            QueryState::Failed(failure) if failure.reported_by_network() => Some(failure),
            _ => None,
        });
        if let Some(failure) = network {
            self.fail_open_queries(failure);
        }
    }

    /// Times out pending queries whose deadline passed; for a TCP
    /// connection still connecting, the lookup's start counts.
    pub(super) fn expire(&mut self, now: Instant, timeout: Duration) {
        let connecting = matches!(&self.conn, Some(Conn::Tcp(t)) if !t.connected);
        for slot in &mut self.queries {
            let deadline = match slot.state {
                QueryState::Pending { sent_at } => sent_at + timeout,
                QueryState::Unsent if connecting => self.started + timeout,
                _ => continue,
            };
            if now >= deadline {
                slot.state = QueryState::Failed(Failure::TimedOut);
            }
        }
    }

    /// The earliest instant something is due for this lookup.
    pub(super) fn next_deadline(&self, timeout: Duration) -> Option<Instant> {
        if let Some(until) = self.linger_until {
            return Some(until);
        }
        let connecting = matches!(&self.conn, Some(Conn::Tcp(t)) if !t.connected);
        let expiry = self
            .queries
            .iter()
            .filter_map(|slot| match slot.state {
                QueryState::Pending { sent_at } => Some(sent_at + timeout),
                QueryState::Unsent if connecting => Some(self.started + timeout),
                _ => None,
            })
            .min();
        match (expiry, self.retry_at) {
            (Some(expiry), Some(retry)) => Some(expiry.min(retry)),
            (expiry, _) => expiry,
        }
    }

    /// [`Mode::Musl`](super::Mode::Musl): once `retry_at` has come, sends every query still
    /// pending again (same bytes, same ID, same socket), as musl does every
    /// `timeout / attempts`; not after a query's own deadline (musl stops
    /// resending when its timeout has run out).
    pub(super) fn resend_due(
        &mut self,
        now: Instant,
        timeout: Duration,
        retry_after: Duration,
        server: SocketAddr,
        result: &mut EngineResult,
    ) {
        let Some(retry_at) = self.retry_at else { return };
        if now < retry_at {
            return;
        }
        let Some(Conn::Udp(socket)) = &self.conn else {
            self.retry_at = None;
            return;
        };
        let socket = Arc::clone(socket);
        for slot in &mut self.queries {
            if let QueryState::Pending { sent_at } = slot.state {
                if now < sent_at + timeout {
                    // Why a failed resend is not a loss: musl ignores the
                    // result of sendto; the query still waits its timeout.
                    let _ = socket.send_to(&slot.bytes, server);
                    result.retransmitted += 1;
                }
            }
        }
        let pending = self.queries.iter().any(|q| matches!(q.state, QueryState::Pending { .. }));
        self.retry_at = pending.then_some(now + retry_after);
    }
}

/// Why `connect(2)` failed, as the lookup's outcome (always local).
pub(super) fn failure_of_connect(e: &io::Error) -> Failure {
    failure_of_errno(e.raw_os_error(), ErrorSource::Local)
}

/// Why a send on `socket` failed: an ICMP error queued for the flow (the
/// send only reported it), else the local stack's refusal.
pub(super) fn failure_of_send(socket: &UdpSocket, e: &io::Error) -> Failure {
    match drain_icmp_errors(socket) {
        Some(errno) => failure_of_errno(Some(errno), ErrorSource::Network),
        None => failure_of_errno(e.raw_os_error(), ErrorSource::Local),
    }
}

/// Why a receive (or a TCP connection) failed with `errno`: reported by
/// the network.
pub(super) fn failure_of_network(errno: Option<i32>) -> Failure {
    failure_of_errno(errno, ErrorSource::Network)
}

/// Adds a finished lookup to the totals.
pub(super) fn account(
    lookup: &Lookup,
    slow_after: Duration,
    resolver_timeout: Duration,
    result: &mut EngineResult,
) {
    result.lookups += 1;
    let mut lost = 0;
    let outcomes = &mut result.outcomes;
    for (index, slot) in lookup.queries.iter().enumerate() {
        let QueryState::Failed(failure) = slot.state else {
            outcomes.answered += u64::from(slot.state == QueryState::Answered);
            continue;
        };
        lost += 1;
        result.by_type[index].lost += 1;
        match failure {
            Failure::TimedOut => outcomes.timed_out += 1,
            Failure::PortUnreachable => outcomes.port_unreachable += 1,
            Failure::Unreachable => outcomes.unreachable += 1,
            Failure::NoRoute { errno } => {
                outcomes.no_route += 1;
                result.no_route_errno.get_or_insert(errno);
            }
            Failure::SendFailed => outcomes.send_failed += 1,
        }
    }
    match lost {
        0 => {
            if let Some(last) = lookup.last_answer {
                let latency = last.saturating_duration_since(lookup.started);
                result.latency.record(latency);
                if latency >= slow_after {
                    result.slow_lookups += 1;
                }
                if latency >= resolver_timeout {
                    result.beyond_resolver_timeout += 1;
                }
            }
        }
        1 => result.one_lost_lookups += 1,
        _ => result.both_lost_lookups += 1,
    }
}
