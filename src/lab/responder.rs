//! The lab's embedded DNS server: an authoritative responder for a few names
//! under `cluster.local`, over UDP and TCP, with an optional delay and
//! optional silent drops (all queries, or only AAAA queries: the "one answer
//! of the A/AAAA pair lost" signature).
//!
//! What it answers (documented in `ctdiag lab --help` too):
//! - `kubernetes.default.svc.cluster.local`: A 198.19.0.1, AAAA 2001:db8::1
//! - `kube-dns.kube-system.svc.cluster.local`: A 198.19.0.10, AAAA 2001:db8::a
//! - any other name under `cluster.local`: NXDOMAIN (as CoreDNS answers a
//!   Service that does not exist, and what the ndots:5 search list needs)
//! - an existing name with another record type: NOERROR without answers
//! - names outside `cluster.local`: REFUSED (it is not a recursive resolver)
//! - undecodable queries with a readable header: FORMERR; shorter garbage
//!   and anything that is itself a response: ignored.
//! - with an error rcode set (`--rcode servfail|refused`): every query it
//!   would answer gets that rcode and no records, as a CoreDNS whose
//!   upstream fails answers SERVFAIL.
//!
//! Every answer is authoritative (AA), echoes the ID, the question and the
//! RD bit.

use std::collections::BinaryHeap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};

use crate::error::{Error, Result};

/// TTL of every answer (CoreDNS's kubernetes plugin default).
pub const ANSWER_TTL: u32 = 5;

/// The names the lab's DNS servers answer, with their A and AAAA records.
pub const LAB_RECORDS: &[(&str, Ipv4Addr, Option<Ipv6Addr>)] = &[
    (
        "kubernetes.default.svc.cluster.local",
        Ipv4Addr::new(198, 19, 0, 1),
        Some(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    ),
    (
        "kube-dns.kube-system.svc.cluster.local",
        Ipv4Addr::new(198, 19, 0, 10),
        Some(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xa)),
    ),
];

/// The zone the responder is authoritative for.
pub const LAB_ZONE: &str = "cluster.local";

/// How the responder misbehaves on purpose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResponderBehavior {
    /// Answer this long after the query arrived.
    pub delay: Duration,
    /// Share (0..=1) of all queries dropped without an answer.
    pub drop_rate: f64,
    /// Share (0..=1) of AAAA queries dropped without an answer.
    pub drop_aaaa_rate: f64,
    /// Answer every query with this error rcode (no records) instead.
    pub rcode: Option<ErrorRcode>,
}

/// An error rcode the responder can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorRcode {
    /// SERVFAIL (2): the server failed (CoreDNS when its upstream fails).
    Servfail,
    /// REFUSED (5): the server will not answer.
    Refused,
}

impl ErrorRcode {
    /// The rcode's name, as `dig` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorRcode::Servfail => "SERVFAIL",
            ErrorRcode::Refused => "REFUSED",
        }
    }

    /// From its name (any case), as the lab's state stores it.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "SERVFAIL" => Some(ErrorRcode::Servfail),
            "REFUSED" => Some(ErrorRcode::Refused),
            _ => None,
        }
    }

    fn response_code(self) -> ResponseCode {
        match self {
            ErrorRcode::Servfail => ResponseCode::ServFail,
            ErrorRcode::Refused => ResponseCode::Refused,
        }
    }
}

/// The reply turned into an error answer with `rcode`: same ID, question
/// and flags, no records, not authoritative.
pub fn with_error_rcode(reply: Reply, rcode: ErrorRcode) -> Reply {
    let Ok(mut message) = Message::from_vec(&reply.bytes) else { return reply };
    message.metadata.response_code = rcode.response_code();
    message.metadata.authoritative = false;
    message.answers.clear();
    match message.to_vec() {
        Ok(bytes) => Reply { bytes, query_type: reply.query_type },
        Err(_) => reply,
    }
}

impl ResponderBehavior {
    /// Checks the shares are within 0..=1.
    pub fn validate(&self) -> Result<()> {
        for (flag, value) in
            [("--drop-rate", self.drop_rate), ("--drop-aaaa-rate", self.drop_aaaa_rate)]
        {
            if !(0.0..=1.0).contains(&value) {
                return Err(Error::Usage(format!(
                    "{flag} {value}: a share between 0 and 1 is needed (0.25 drops a quarter)"
                )));
            }
        }
        Ok(())
    }
}

/// The reply to one query, and what was asked (for the AAAA drop decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The encoded answer.
    pub bytes: Vec<u8>,
    /// The question's type, when the query could be decoded.
    pub query_type: Option<RecordType>,
}

/// Builds the answer to one DNS message. `None` means "send nothing":
/// too short to carry an ID, or a response rather than a query.
pub fn answer(request: &[u8]) -> Option<Reply> {
    // Why check by hand first: a message whose QR bit is set is a response;
    // answering it could make two responders ping-pong forever.
    if request.len() < 12 || request[2] & 0x80 != 0 {
        return None;
    }
    let id = u16::from_be_bytes([request[0], request[1]]);
    let message = match Message::from_vec(request) {
        Ok(m) => m,
        Err(_) => {
            let reply = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
            return reply.to_vec().ok().map(|bytes| Reply { bytes, query_type: None });
        }
    };
    let mut reply = Message::response(message.metadata.id, message.metadata.op_code);
    reply.metadata.recursion_desired = message.metadata.recursion_desired;
    reply.metadata.checking_disabled = message.metadata.checking_disabled;
    reply.metadata.authoritative = true;
    reply.add_queries(message.queries.iter().cloned());
    if message.metadata.message_type != MessageType::Query {
        return None;
    }
    if message.metadata.op_code != OpCode::Query {
        reply.metadata.response_code = ResponseCode::NotImp;
        reply.metadata.authoritative = false;
        return reply.to_vec().ok().map(|bytes| Reply { bytes, query_type: None });
    }
    let [query] = message.queries.as_slice() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        reply.metadata.authoritative = false;
        return reply.to_vec().ok().map(|bytes| Reply { bytes, query_type: None });
    };
    let query_type = query.query_type();
    let (code, records) = resolve(query);
    reply.metadata.response_code = code;
    if code == ResponseCode::Refused {
        reply.metadata.authoritative = false;
    }
    reply.add_answers(records);
    reply.to_vec().ok().map(|bytes| Reply { bytes, query_type: Some(query_type) })
}

/// Looks a question up in [`LAB_RECORDS`].
fn resolve(query: &Query) -> (ResponseCode, Vec<Record>) {
    if query.query_class() != DNSClass::IN {
        return (ResponseCode::Refused, Vec::new());
    }
    let ascii = query.name().to_lowercase().to_ascii();
    let name = ascii.trim_end_matches('.');
    let in_zone = name == LAB_ZONE || name.ends_with(&format!(".{LAB_ZONE}"));
    if !in_zone {
        return (ResponseCode::Refused, Vec::new());
    }
    let Some((_, v4, v6)) = LAB_RECORDS.iter().find(|(known, _, _)| *known == name) else {
        return (ResponseCode::NXDomain, Vec::new());
    };
    let owner = query.name().clone();
    let records = match query.query_type() {
        RecordType::A => vec![Record::from_rdata(owner, ANSWER_TTL, RData::A(A(*v4)))],
        RecordType::AAAA => v6
            .iter()
            .map(|ip| Record::from_rdata(owner.clone(), ANSWER_TTL, RData::AAAA(AAAA(*ip))))
            .collect(),
        _ => Vec::new(),
    };
    (ResponseCode::NoError, records)
}

/// A small, fast pseudo-random generator (splitmix64) for drop decisions;
/// no cryptographic quality needed.
#[derive(Debug, Clone)]
struct DropDice(u64);

impl DropDice {
    fn seeded(salt: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        DropDice(nanos ^ (u64::from(std::process::id()) << 32) ^ salt.wrapping_mul(0x9e37_79b9))
    }

    /// A uniform number in [0, 1).
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether to drop this reply.
    fn drop(&mut self, behavior: &ResponderBehavior, reply: &Reply) -> bool {
        if behavior.drop_rate > 0.0 && self.next_unit() < behavior.drop_rate {
            return true;
        }
        reply.query_type == Some(RecordType::AAAA)
            && behavior.drop_aaaa_rate > 0.0
            && self.next_unit() < behavior.drop_aaaa_rate
    }
}

/// A UDP answer waiting for its delay to pass.
struct Delayed {
    due: Instant,
    to: SocketAddr,
    bytes: Vec<u8>,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    // Reversed: BinaryHeap is a max-heap and the earliest due time must pop first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.due.cmp(&self.due)
    }
}

/// Most TCP connections served at once; more are closed at accept.
const MAX_TCP_CONNECTIONS: usize = 512;

/// Binds UDP and TCP on every address of `listen` and serves until the
/// process is killed. Returns only on a setup error.
pub fn serve(listen: &[SocketAddr], behavior: ResponderBehavior, udp_threads: usize) -> Result<()> {
    behavior.validate()?;
    if listen.is_empty() {
        return Err(Error::Usage("--listen: give at least one IP:PORT".into()));
    }
    let bind_err = |proto: &str, addr: SocketAddr, e: std::io::Error| {
        Error::Runtime(format!(
            "cannot bind {proto} {addr}: {e} (is another DNS server running there?)"
        ))
    };
    // Bind everything first, so that a failure leaves nothing half-served.
    let mut sockets = Vec::new();
    for addr in listen {
        let udp = UdpSocket::bind(addr).map_err(|e| bind_err("UDP", *addr, e))?;
        let tcp = TcpListener::bind(addr).map_err(|e| bind_err("TCP", *addr, e))?;
        sockets.push((*addr, udp, tcp));
    }
    let open_connections = Arc::new(AtomicUsize::new(0));
    let mut accept_loops = Vec::new();
    for (addr, udp, tcp) in sockets {
        // Why a separate sender thread for delayed answers: sleeping in the
        // receive threads would cap the rate at threads/delay queries per
        // second.
        let delayed_tx = if behavior.delay.is_zero() {
            None
        } else {
            let (tx, rx) = mpsc::channel::<Delayed>();
            let socket = udp.try_clone().map_err(|e| bind_err("UDP", addr, e))?;
            std::thread::spawn(move || send_delayed(socket, rx));
            Some(tx)
        };
        for index in 0..udp_threads.max(1) {
            let socket = udp.try_clone().map_err(|e| bind_err("UDP", addr, e))?;
            let delayed_tx = delayed_tx.clone();
            std::thread::spawn(move || serve_udp(socket, behavior, delayed_tx, index as u64));
        }
        let open_connections = Arc::clone(&open_connections);
        accept_loops.push(std::thread::spawn(move || accept_tcp(tcp, behavior, &open_connections)));
    }
    for handle in accept_loops {
        // The accept loops never return; a panicked one ends the server.
        let _ = handle.join();
    }
    Err(Error::Runtime("the DNS responder's TCP accept loop ended".into()))
}

/// Accepts TCP connections on `tcp` forever, one thread each, at most
/// [`MAX_TCP_CONNECTIONS`] at once over all listeners.
fn accept_tcp(tcp: TcpListener, behavior: ResponderBehavior, open_connections: &Arc<AtomicUsize>) {
    let mut salt = 1000u64;
    loop {
        let stream = match tcp.accept() {
            Ok((stream, _)) => stream,
            Err(_) => continue,
        };
        if open_connections.fetch_add(1, Ordering::SeqCst) >= MAX_TCP_CONNECTIONS {
            open_connections.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        salt += 1;
        let open_connections = Arc::clone(open_connections);
        std::thread::spawn(move || {
            serve_tcp(stream, behavior, salt);
            open_connections.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

fn serve_udp(
    socket: UdpSocket,
    behavior: ResponderBehavior,
    delayed_tx: Option<mpsc::Sender<Delayed>>,
    salt: u64,
) {
    let mut dice = DropDice::seeded(salt);
    let mut buf = [0u8; 65535];
    loop {
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(_) => continue,
        };
        let arrived = Instant::now();
        let Some(reply) = answer(&buf[..len]) else { continue };
        let reply = match behavior.rcode {
            Some(rcode) => with_error_rcode(reply, rcode),
            None => reply,
        };
        if dice.drop(&behavior, &reply) {
            continue;
        }
        match &delayed_tx {
            Some(tx) => {
                let due = arrived + behavior.delay;
                if tx.send(Delayed { due, to: from, bytes: reply.bytes }).is_err() {
                    return;
                }
            }
            None => {
                // A failed send (peer gone, buffer full) loses one answer,
                // which is what a real server would do too.
                let _ = socket.send_to(&reply.bytes, from);
            }
        }
    }
}

fn send_delayed(socket: UdpSocket, rx: mpsc::Receiver<Delayed>) {
    let mut queue: BinaryHeap<Delayed> = BinaryHeap::new();
    loop {
        let wait = queue.peek().map(|next| next.due.saturating_duration_since(Instant::now()));
        let received = match wait {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(wait) => rx.recv_timeout(wait),
        };
        match received {
            Ok(item) => queue.push(item),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        while queue.peek().is_some_and(|next| next.due <= now) {
            if let Some(item) = queue.pop() {
                let _ = socket.send_to(&item.bytes, item.to);
            }
        }
    }
}

fn serve_tcp(mut stream: TcpStream, behavior: ResponderBehavior, salt: u64) {
    let mut dice = DropDice::seeded(salt);
    // An idle client must not hold a thread forever.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    loop {
        let mut len_bytes = [0u8; 2];
        if stream.read_exact(&mut len_bytes).is_err() {
            return;
        }
        let len = usize::from(u16::from_be_bytes(len_bytes));
        let mut message = vec![0u8; len];
        if stream.read_exact(&mut message).is_err() {
            return;
        }
        let Some(reply) = answer(&message) else { continue };
        let reply = match behavior.rcode {
            Some(rcode) => with_error_rcode(reply, rcode),
            None => reply,
        };
        if dice.drop(&behavior, &reply) {
            continue;
        }
        if !behavior.delay.is_zero() {
            std::thread::sleep(behavior.delay);
        }
        let Ok(reply_len) = u16::try_from(reply.bytes.len()) else { continue };
        let mut framed = Vec::with_capacity(reply.bytes.len() + 2);
        framed.extend_from_slice(&reply_len.to_be_bytes());
        framed.extend_from_slice(&reply.bytes);
        if stream.write_all(&framed).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;

    fn query(name: &str, rtype: RecordType, id: u16) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        m.to_vec().unwrap()
    }

    fn decode(reply: &Reply) -> Message {
        Message::from_vec(&reply.bytes).unwrap()
    }

    #[test]
    fn answers_a_and_aaaa_authoritatively() {
        let reply =
            answer(&query("kubernetes.default.svc.cluster.local.", RecordType::A, 4242)).unwrap();
        let m = decode(&reply);
        assert_eq!(m.metadata.id, 4242);
        assert!(m.metadata.authoritative);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(198, 19, 0, 1))));
        assert_eq!(reply.query_type, Some(RecordType::A));

        let reply =
            answer(&query("Kubernetes.Default.svc.cluster.local.", RecordType::AAAA, 7)).unwrap();
        let m = decode(&reply);
        assert_eq!(m.answers[0].data, RData::AAAA(AAAA("2001:db8::1".parse().unwrap())));
        // The question is echoed as asked, case included.
        assert_eq!(m.queries[0].name().to_ascii(), "Kubernetes.Default.svc.cluster.local.");

        let m = decode(
            &answer(&query("kube-dns.kube-system.svc.cluster.local.", RecordType::A, 1)).unwrap(),
        );
        assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(198, 19, 0, 10))));
    }

    #[test]
    fn unknown_names_and_types() {
        let m =
            decode(&answer(&query("nope.default.svc.cluster.local.", RecordType::A, 1)).unwrap());
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.metadata.authoritative);
        let m = decode(
            &answer(&query("kubernetes.default.svc.cluster.local.", RecordType::MX, 1)).unwrap(),
        );
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        let m = decode(&answer(&query("example.com.", RecordType::A, 1)).unwrap());
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn garbage_never_panics() {
        assert_eq!(answer(&[]), None);
        assert_eq!(answer(&[1, 2, 3]), None);
        // A header claiming one question that is not there: FORMERR, ID kept.
        let broken = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff];
        let m = decode(&answer(&broken).unwrap());
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        // A response is never answered.
        let mut response = query("kubernetes.default.svc.cluster.local.", RecordType::A, 9);
        response[2] |= 0x80;
        assert_eq!(answer(&response), None);
        // Deterministic pseudo-random inputs of every length up to 300.
        let mut dice = DropDice(12345);
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len).map(|_| (dice.next_unit() * 256.0) as u8).collect();
            let _ = answer(&bytes);
        }
    }

    #[test]
    fn an_error_rcode_keeps_id_and_question_and_drops_the_records() {
        let reply =
            answer(&query("kubernetes.default.svc.cluster.local.", RecordType::AAAA, 77)).unwrap();
        for rcode in [ErrorRcode::Servfail, ErrorRcode::Refused] {
            let m = decode(&with_error_rcode(reply.clone(), rcode));
            assert_eq!(m.metadata.id, 77);
            // RFC 1035: SERVFAIL is 2, REFUSED is 5.
            let expected = if rcode == ErrorRcode::Servfail { 2 } else { 5 };
            assert_eq!(u16::from(m.metadata.response_code), expected);
            assert_eq!(m.queries.len(), 1);
            assert!(m.answers.is_empty());
            assert!(!m.metadata.authoritative);
            assert_eq!(ErrorRcode::parse(&rcode.as_str().to_lowercase()), Some(rcode));
        }
        assert_eq!(ErrorRcode::parse("NOERROR"), None);
    }

    #[test]
    fn drop_shares_are_validated_and_applied() {
        let bad = ResponderBehavior { drop_rate: 1.5, ..ResponderBehavior::healthy() };
        assert!(bad.validate().is_err());
        let aaaa_only = ResponderBehavior { drop_aaaa_rate: 1.0, ..ResponderBehavior::healthy() };
        let mut dice = DropDice(1);
        let a = answer(&query("kubernetes.default.svc.cluster.local.", RecordType::A, 1)).unwrap();
        let aaaa =
            answer(&query("kubernetes.default.svc.cluster.local.", RecordType::AAAA, 1)).unwrap();
        assert!(!dice.drop(&aaaa_only, &a));
        assert!(dice.drop(&aaaa_only, &aaaa));
        let half = ResponderBehavior { drop_rate: 0.5, ..ResponderBehavior::healthy() };
        let dropped = (0..10_000).filter(|_| dice.drop(&half, &a)).count();
        assert!((4_000..6_000).contains(&dropped), "{dropped}");
    }
}
