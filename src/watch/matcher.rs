//! Packets -> queries: each query (client address and port, DNS id, name,
//! type) is followed from the pod (destination the ClusterIP or the server
//! asked), through its DNATed copy (same client, id and question, towards
//! an endpoint), to the answer back to the client; one not answered within
//! the timeout is unanswered, with the cause the packets (and, live, the
//! conntrack entry of the client's tuple) show.
//!
//! Time is the packets' own: a capture file is analysed as it was taken.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use super::model::Cause;
use super::packet::{DnsPacket, Transport};

/// A query's identity: what its copies and its answer repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct QueryKey {
    client: SocketAddr,
    transport: Transport,
    id: u16,
    qtype: u16,
    qname: u64,
}

/// What a client socket's queries did lately (for the causes of its
/// other queries).
#[derive(Debug, Default, Clone, Copy)]
struct SocketSeen {
    /// When one last got through the node (a DNATed copy left, or an
    /// answer came): a query dropped on a socket whose other query got
    /// through was dropped by the node.
    through: Option<Duration>,
    /// The last one answered: name hash, type, when (`one-type-lost`).
    answered: Option<(u64, u16, Duration)>,
}

/// FNV-1a, for the matcher's maps: their keys are a few bytes of
/// addresses and ids from packets, hashed several times per packet, and
/// SipHash's flooding resistance buys nothing against one node's own pods
/// (the maps are pruned by time).
#[derive(Default)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// A map hashed with [`Fnv`].
pub type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// A query not yet decided.
#[derive(Debug)]
struct Pending {
    /// When the pod's query was first seen.
    first: Duration,
    /// Where the pod sent it.
    asked: SocketAddr,
    /// The DNATed copy's destination, when seen.
    copy_to: Option<SocketAddr>,
    /// The source of an answer seen on its way from the endpoint, before
    /// reverse NAT (its source differs from `asked`).
    endpoint_answer: Option<SocketAddr>,
}

/// How one query ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The answer reached the client: its rcode and the latency.
    Answered {
        /// The 4-bit header rcode.
        rcode: u8,
        /// From the pod's query to the answer to the pod.
        latency: Duration,
    },
    /// No answer reached the client within the timeout.
    Unanswered(Cause),
}

/// One decided query.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    /// The client's address and port.
    pub client: SocketAddr,
    /// The endpoint: the DNAT target when known, else the address asked.
    pub endpoint: SocketAddr,
    /// How it ended.
    pub outcome: Outcome,
}

/// What the matcher knows of the Service in front of the endpoints.
#[derive(Debug, Clone, Default)]
pub struct ServiceView {
    /// Addresses queries to which are DNATed (the ClusterIPs).
    pub service_addrs: HashSet<SocketAddr>,
    /// The current endpoints; empty when unknown (then nothing is
    /// `stale-entry` from the packets alone).
    pub endpoints: HashSet<SocketAddr>,
    /// Endpoints in the rules the node has no usable route or neighbour
    /// for: a query DNATed to one is dropped on the node, its copy never
    /// seen, and (unconfirmed) no conntrack entry is left to show it.
    pub unreachable: HashSet<SocketAddr>,
}

/// The conntrack entry of a client's tuple: where its DNAT sends it.
pub trait EntryLookup {
    /// The reply source (DNAT target) of the entry whose original tuple is
    /// `client` -> `asked` over UDP, if there is one (and a lookup was
    /// allowed now: lookups are rate-limited by the implementation).
    fn dnat_target(&mut self, client: SocketAddr, asked: SocketAddr) -> Option<SocketAddr>;
}

/// No conntrack: a capture file.
#[derive(Debug, Default)]
pub struct NoLookup;

impl EntryLookup for NoLookup {
    fn dnat_target(&mut self, _client: SocketAddr, _asked: SocketAddr) -> Option<SocketAddr> {
        None
    }
}

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// The matcher's state.
#[derive(Debug)]
pub struct Matcher {
    timeout: Duration,
    service: ServiceView,
    pending: FastMap<QueryKey, Pending>,
    /// Queries in the order first seen, for the timeout.
    order: VecDeque<(Duration, QueryKey)>,
    /// Per client socket: what its other queries did lately.
    sockets: FastMap<SocketAddr, SocketSeen>,
    /// Destinations queries to which were seen DNATed (learned when the
    /// Service is not known).
    learned_service: HashSet<SocketAddr>,
    /// The latest packet time seen.
    now: Duration,
    /// When the maps were last pruned.
    pruned: Duration,
    /// No new queries are taken (a watch ending, its last ones decided).
    closed: bool,
    decided: Vec<Decided>,
}

impl Matcher {
    /// A matcher deciding a query unanswered `timeout` after it was sent.
    pub fn new(timeout: Duration, service: ServiceView) -> Matcher {
        Matcher {
            timeout,
            service,
            pending: FastMap::default(),
            order: VecDeque::new(),
            sockets: FastMap::default(),
            learned_service: HashSet::new(),
            now: Duration::ZERO,
            pruned: Duration::ZERO,
            closed: false,
            decided: Vec::new(),
        }
    }

    /// The latest packet time seen.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Queries not yet decided.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes no new query from now on; those pending are still followed
    /// to their answer or their timeout.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Takes the queries decided since the last call.
    pub fn take_decided(&mut self) -> Vec<Decided> {
        std::mem::take(&mut self.decided)
    }

    /// Moves the queries decided since the last call into `into` (empty),
    /// keeping both vectors' memory: no allocation per packet.
    pub fn swap_decided(&mut self, into: &mut Vec<Decided>) {
        std::mem::swap(&mut self.decided, into);
    }

    /// Feeds one packet (times expire first, so a query sent again after
    /// the timeout is a new query).
    pub fn packet(&mut self, packet: DnsPacket, lookup: &mut dyn EntryLookup) {
        self.advance(packet.ts, lookup);
        if packet.response {
            self.response(packet);
        } else {
            self.query(packet);
        }
    }

    /// Moves time to `now` (never back): queries older than the timeout
    /// are decided unanswered.
    pub fn advance(&mut self, now: Duration, lookup: &mut dyn EntryLookup) {
        self.now = self.now.max(now);
        while let Some((first, _)) = self.order.front() {
            if self.now.saturating_sub(*first) < self.timeout {
                break;
            }
            let Some((first, key)) = self.order.pop_front() else { break };
            let same = self.pending.get(&key).is_some_and(|p| p.first == first);
            if same {
                if let Some(pending) = self.pending.remove(&key) {
                    self.expire(key, pending, lookup);
                }
            }
        }
        self.prune();
    }

    /// Decides every pending query as of the end of the capture: those the
    /// timeout has passed for are unanswered, the others are dropped
    /// undecided (a file ends, a watch stops: they may yet be answered).
    pub fn finish(&mut self, end: Duration, lookup: &mut dyn EntryLookup) -> usize {
        self.advance(end, lookup);
        let left = self.pending.len();
        self.pending.clear();
        self.order.clear();
        left
    }

    fn query(&mut self, packet: DnsPacket) {
        let key = QueryKey {
            client: packet.src,
            transport: packet.transport,
            id: packet.id,
            qtype: packet.qtype,
            qname: packet.qname,
        };
        if let Some(pending) = self.pending.get_mut(&key) {
            // The same query again: seen on another interface (the DNATed
            // copy when the destination changed), or retransmitted.
            if packet.dst != pending.asked && pending.copy_to.is_none() {
                pending.copy_to = Some(packet.dst);
                self.learned_service.insert(pending.asked);
                self.sockets.entry(key.client).or_default().through = Some(packet.ts);
            }
            return;
        }
        if self.closed {
            return;
        }
        self.order.push_back((packet.ts, key));
        self.pending.insert(
            key,
            Pending { first: packet.ts, asked: packet.dst, copy_to: None, endpoint_answer: None },
        );
    }

    fn response(&mut self, packet: DnsPacket) {
        let key = QueryKey {
            client: packet.dst,
            transport: packet.transport,
            id: packet.id,
            qtype: packet.qtype,
            qname: packet.qname,
        };
        let Some(pending) = self.pending.get_mut(&key) else { return };
        if packet.src != pending.asked {
            // From the endpoint, before reverse NAT: not yet delivered.
            pending.endpoint_answer.get_or_insert(packet.src);
            self.sockets.entry(key.client).or_default().through = Some(packet.ts);
            return;
        }
        let Some(pending) = self.pending.remove(&key) else { return };
        let endpoint = pending.copy_to.or(pending.endpoint_answer).unwrap_or(pending.asked);
        let seen = self.sockets.entry(key.client).or_default();
        seen.through = Some(packet.ts);
        seen.answered = Some((key.qname, key.qtype, packet.ts));
        self.decided.push(Decided {
            client: key.client,
            endpoint,
            outcome: Outcome::Answered {
                rcode: packet.rcode,
                latency: packet.ts.saturating_sub(pending.first),
            },
        });
    }

    fn expire(&mut self, key: QueryKey, pending: Pending, lookup: &mut dyn EntryLookup) {
        let target = match (pending.copy_to, pending.endpoint_answer) {
            (Some(to), _) => Some(to),
            (None, Some(from)) => Some(from),
            (None, None) if key.transport == Transport::Udp => {
                lookup.dnat_target(key.client, pending.asked)
            }
            (None, None) => None,
        };
        let cause = self.cause(&key, &pending, target);
        let endpoint = match (cause, pending.copy_to) {
            (Cause::EndpointSilent, None) => self.only_unreachable().or(target),
            _ => target,
        };
        self.decided.push(Decided {
            client: key.client,
            endpoint: endpoint.unwrap_or(pending.asked),
            outcome: Outcome::Unanswered(cause),
        });
    }

    /// Why `pending` went unanswered; `target` is where it was (or, from
    /// conntrack, would have been) DNATed.
    fn cause(&self, key: &QueryKey, pending: &Pending, target: Option<SocketAddr>) -> Cause {
        if pending.endpoint_answer.is_some() {
            return Cause::AnswerNotDelivered;
        }
        let dnat_expected = self.service.service_addrs.contains(&pending.asked)
            || self.learned_service.contains(&pending.asked);
        if let Some(target) = target {
            let known = !self.service.endpoints.is_empty();
            // A target that is no endpoint, or an entry never translated
            // (reply source the ClusterIP itself) while endpoints exist.
            if known && dnat_expected && !self.service.endpoints.contains(&target) {
                return Cause::StaleEntry;
            }
        }
        if pending.copy_to.is_none() && dnat_expected && self.only_unreachable().is_some() {
            // No copy left: the query was DNATed to the one endpoint the
            // node cannot reach and died at the routing decision, its
            // entry unconfirmed. (An entry found for the socket is its
            // pair's, which did leave: A and AAAA can be DNATed apart.)
            return Cause::EndpointSilent;
        }
        let window = pending.first.saturating_sub(self.timeout)..pending.first + self.timeout;
        let seen = self.sockets.get(&key.client);
        let socket_through = seen.and_then(|s| s.through).is_some_and(|t| window.contains(&t));
        if pending.copy_to.is_none() && dnat_expected && socket_through {
            return Cause::DroppedBeforeDnat;
        }
        let pair = match key.qtype {
            TYPE_A => Some(TYPE_AAAA),
            TYPE_AAAA => Some(TYPE_A),
            _ => None,
        };
        let pair_answered = match (pair, seen.and_then(|s| s.answered)) {
            (Some(other), Some((name, qtype, t))) => {
                name == key.qname && qtype == other && window.contains(&t)
            }
            _ => false,
        };
        if pair_answered {
            return Cause::OneTypeLost;
        }
        if target.is_some() || !dnat_expected {
            return Cause::EndpointSilent;
        }
        Cause::Unknown
    }

    /// The unreachable endpoint, when exactly one is.
    fn only_unreachable(&self) -> Option<SocketAddr> {
        let mut all = self.service.unreachable.iter();
        match (all.next(), all.next()) {
            (Some(only), None) => Some(*only),
            _ => None,
        }
    }

    /// Forgets what is older than twice the timeout, once per half timeout of
    /// packet time (not per packet: the maps hold every socket of the
    /// last seconds at high rates).
    fn prune(&mut self) {
        if self.now.saturating_sub(self.pruned) < self.timeout / 2 {
            return;
        }
        self.pruned = self.now;
        let horizon = self.now.saturating_sub(self.timeout * 2);
        self.sockets.retain(|_, s| s.through.is_some_and(|t| t >= horizon));
    }
}

#[cfg(test)]
mod tests;
