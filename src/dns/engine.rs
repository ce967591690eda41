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

use std::collections::BTreeMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;
use nix::poll::{PollFd, PollFlags};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage};
use nix::sys::time::TimeSpec;
use serde::Serialize;

use crate::dns::histogram::LatencyHistogram;
use crate::dns::wire::{classify, rcode_name, QueryType, SentQuery, Verdict};
use crate::error::{Error, Result};

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

/// Per record type: sent, answered, lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TypeCounts {
    /// Queries sent (or attempted).
    pub sent: u64,
    /// Queries answered.
    pub answered: u64,
    /// Queries without an answer (timeout, ICMP error, send failure).
    pub lost: u64,
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
    /// Queries that failed with an ICMP error (port or host unreachable,
    /// reported by the socket as refused/unreachable).
    pub refused: u64,
    /// Queries that timed out without any answer.
    pub timed_out: u64,
    /// Queries that could not be sent (or a TCP connection that closed).
    pub send_errors: u64,
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
    /// `retry_after` ([`Mode::Musl`]); not part of `by_type[].sent`.
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
        self.refused += other.refused;
        self.timed_out += other.timed_out;
        self.send_errors += other.send_errors;
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

/// Why a query ended without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    TimedOut,
    Refused,
    SendError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryState {
    Unsent,
    Pending { sent_at: Instant },
    Answered,
    Failed(Failure),
}

#[derive(Debug)]
struct QuerySlot {
    sent: SentQuery,
    bytes: Vec<u8>,
    state: QueryState,
}

#[derive(Debug)]
struct TcpConn {
    stream: TcpStream,
    connected: bool,
    out: Vec<u8>,
    written: usize,
    inbuf: Vec<u8>,
}

#[derive(Debug)]
enum Conn {
    Udp(Arc<UdpSocket>),
    Tcp(TcpConn),
}

impl Conn {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Conn::Udp(s) => s.as_fd(),
            Conn::Tcp(t) => t.stream.as_fd(),
        }
    }
}

/// Which of a lookup's sockets: the current one, or (reopen mode) the A
/// query's own socket, kept after the AAAA query moved to a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Current,
    First,
}

/// One lookup in flight (or lingering after it finished with a loss).
#[derive(Debug)]
struct Lookup {
    conn: Option<Conn>,
    /// The queries `conn` carried: both, except for reopen's AAAA socket.
    conn_carries: [bool; 2],
    /// Reopen mode: the A query's socket, kept open after its query timed
    /// out so that a late A answer is still seen (and counted as late).
    first_conn: Option<Conn>,
    queries: [QuerySlot; 2],
    started: Instant,
    last_answer: Option<Instant>,
    /// Set once the lookup is accounted; the socket stays open until then.
    linger_until: Option<Instant>,
    /// [`Mode::Musl`]: when the queries still unanswered are sent again.
    retry_at: Option<Instant>,
}

/// What one received packet meant for a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PacketEffect {
    Answered,
    Stray,
}

impl Lookup {
    fn new(started: Instant, queries: [QuerySlot; 2]) -> Self {
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
    fn sockets(&self) -> usize {
        usize::from(self.conn.is_some()) + usize::from(self.first_conn.is_some())
    }

    /// Closes every socket of the lookup; returns how many were open.
    fn close(&mut self) -> usize {
        let open = self.sockets();
        self.conn = None;
        self.first_conn = None;
        open
    }

    fn finished(&self) -> bool {
        self.queries.iter().all(|q| matches!(q.state, QueryState::Answered | QueryState::Failed(_)))
    }

    /// Applies one received packet: an answer for a pending query, or one
    /// of the stray kinds.
    fn on_packet(
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
    fn on_packet_for(
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
    fn fail_open_queries(&mut self, failure: Failure) {
        for slot in &mut self.queries {
            if matches!(slot.state, QueryState::Pending { .. } | QueryState::Unsent) {
                slot.state = QueryState::Failed(failure);
            }
        }
    }

    /// An ICMP error is reported once per socket, to whichever call comes
    /// first (often the second send). It applies to the whole flow, so the
    /// other open query of the lookup has failed too.
    fn spread_refusal(&mut self) {
        if self.queries.iter().any(|q| q.state == QueryState::Failed(Failure::Refused)) {
            self.fail_open_queries(Failure::Refused);
        }
    }

    /// Times out pending queries whose deadline passed; for a TCP
    /// connection still connecting, the lookup's start counts.
    fn expire(&mut self, now: Instant, timeout: Duration) {
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
    fn next_deadline(&self, timeout: Duration) -> Option<Instant> {
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

    /// [`Mode::Musl`]: once `retry_at` has come, sends every query still
    /// pending again (same bytes, same ID, same socket), as musl does every
    /// `timeout / attempts`; not after a query's own deadline (musl stops
    /// resending when its timeout has run out).
    fn resend_due(
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

/// Small fast PRNG for query IDs (xorshift64*), seeded from getrandom(2).
#[derive(Debug)]
struct IdSource(u64);

impl IdSource {
    fn new() -> Self {
        let mut seed = [0u8; 8];
        // SAFETY: the buffer is valid for 8 writable bytes.
        let got = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
        let mut value = u64::from_ne_bytes(seed);
        if got != 8 || value == 0 {
            // Why a fallback: getrandom can be unavailable in odd sandboxes;
            // IDs only need to be unpredictable enough to not collide.
            value = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9e37_79b9_7f4a_7c15)
                | 1;
        }
        IdSource(value)
    }

    fn next_u16(&mut self) -> u16 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 48) as u16
    }
}

/// A two-party barrier that spins instead of sleeping. Why: with a futex
/// barrier the last thread to arrive runs on while the other is still being
/// woken up, tens of microseconds apart; spinning releases both within
/// nanoseconds, which is what makes the two packets meet in conntrack.
#[derive(Debug, Default)]
struct SpinBarrier {
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    /// Spins this long before yielding the CPU (the other thread may need it).
    const SPINS_BEFORE_YIELD: u32 = 200_000;

    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == 2 {
            self.arrived.store(0, Ordering::Release);
            self.generation.fetch_add(1, Ordering::AcqRel);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if spins < Self::SPINS_BEFORE_YIELD {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// The second sender of [`Mode::Threads`]: a helper thread that sends the
/// AAAA query while the engine thread sends the A query, both released by
/// one spinning barrier. Why the engine thread is the other sender: one
/// thread wake-up per lookup instead of three.
struct SenderPair {
    jobs: mpsc::Sender<SendJob>,
    done: mpsc::Receiver<(Instant, io::Result<usize>)>,
    barrier: Arc<SpinBarrier>,
    handle: JoinHandle<()>,
}

struct SendJob {
    socket: Arc<UdpSocket>,
    bytes: Vec<u8>,
}

impl SenderPair {
    fn spawn() -> Result<Self> {
        let barrier = Arc::new(SpinBarrier::default());
        let (done_tx, done) = mpsc::channel();
        let (jobs, rx) = mpsc::channel::<SendJob>();
        let helper_barrier = Arc::clone(&barrier);
        let handle = std::thread::Builder::new()
            .name("probe-send".into())
            .spawn(move || {
                for job in rx {
                    helper_barrier.wait();
                    let sent = job.socket.send(&job.bytes);
                    let at = Instant::now();
                    drop(job);
                    if done_tx.send((at, sent)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Runtime(format!("cannot start a sender thread: {e}")))?;
        Ok(SenderPair { jobs, done, barrier, handle })
    }

    /// Sends both queries at the same instant, A from this thread and AAAA
    /// from the helper; the send results in query order.
    fn send(
        &self,
        socket: &Arc<UdpSocket>,
        bytes: [&[u8]; 2],
    ) -> Result<[(Instant, io::Result<usize>); 2]> {
        let broken = || Error::Runtime("the sender thread stopped unexpectedly".into());
        self.jobs
            .send(SendJob { socket: Arc::clone(socket), bytes: bytes[1].to_vec() })
            .map_err(|_| broken())?;
        self.barrier.wait();
        let sent_a = socket.send(bytes[0]);
        let at_a = Instant::now();
        let (at_aaaa, sent_aaaa) = self.done.recv().map_err(|_| broken())?;
        Ok([(at_a, sent_a), (at_aaaa, sent_aaaa)])
    }

    fn shutdown(self) {
        drop(self.jobs);
        let _ = self.handle.join();
    }
}

/// Whether an I/O error is the socket reporting an ICMP error (what a
/// connected UDP socket turns port/host/network unreachable into).
fn is_icmp_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED)
            | Some(libc::EHOSTUNREACH)
            | Some(libc::ENETUNREACH)
            | Some(libc::EHOSTDOWN)
            | Some(libc::ENETDOWN)
            | Some(libc::ECONNRESET)
    )
}

/// Whether a socket could not be created because this process holds as
/// many descriptors as its open-file limit allows.
fn is_descriptor_limit(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EMFILE)
}

/// Room left for descriptors besides the probe sockets: stdio, the
/// namespace handles, the netlink socket that reads the counters afterwards.
const DESCRIPTOR_SLACK: u64 = 16;

/// The sockets one lookup holds at most at once.
fn sockets_per_lookup(mode: Mode) -> u64 {
    // Reopen keeps the A query's socket while the AAAA query uses a new one.
    if mode == Mode::Reopen {
        2
    } else {
        1
    }
}

/// The descriptors open in this process now.
fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(DESCRIPTOR_SLACK, |dir| dir.count() as u64)
}

/// The soft and hard `RLIMIT_NOFILE`.
fn open_file_limits() -> (u64, u64) {
    use nix::sys::resource::{getrlimit, Resource};
    getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024))
}

/// How many sockets a run may hold, from the open-file limit: every lookup
/// in flight must have its sockets, and sockets lingering for late answers
/// get what is left, at most twice as many as the lookups in flight hold. Raises the soft
/// open-file limit towards the hard one when that is needed (as Go
/// programs do at start); fails, naming the limit, when even the lookups in
/// flight would not fit.
fn socket_budget(config: &EngineConfig) -> Result<SocketUse> {
    let concurrency = config.concurrency as u64;
    let in_flight = concurrency * sockets_per_lookup(config.mode);
    let open_now = open_descriptors();
    let wanted = open_now + DESCRIPTOR_SLACK + 3 * in_flight;
    let (mut soft, hard) = open_file_limits();
    if soft < wanted && soft < hard {
        use nix::sys::resource::{setrlimit, Resource};
        // Why ignore a failure: the check below says what the limit is.
        let _ = setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard);
        soft = open_file_limits().0;
    }
    let available = soft.saturating_sub(open_now + DESCRIPTOR_SLACK);
    if available < in_flight {
        let fits = available / sockets_per_lookup(config.mode);
        return Err(Error::Usage(format!(
            "--concurrency {}: {} lookups in flight need {in_flight} sockets{}, but the open-file limit (`ulimit -n`) is {soft} with {open_now} descriptors already open; raise the limit (`ulimit -n {}`) or give --concurrency {} or less",
            config.concurrency,
            config.concurrency,
            if config.mode == Mode::Reopen { " (two each in reopen mode)" } else { "" },
            wanted,
            fits.max(1),
        )));
    }
    Ok(SocketUse {
        open_file_limit: soft,
        // Why twice the sockets in flight: lookups that time out together
        // linger together, and the next wave times out as the last one's
        // lingering ends; at most one wave waits at a time otherwise.
        lingering_limit: (available - in_flight).min(2 * in_flight),
        ..SocketUse::default()
    })
}

/// A fresh non-blocking UDP socket bound to a free port, connected to
/// `server` unless `connect` is false (musl never connects its socket).
/// The outer error: no socket could be made at all (e.g. the open-file
/// limit); the inner one: a connect failure that counts against the lookup
/// (e.g. no route).
fn fresh_udp(server: SocketAddr, connect: bool) -> io::Result<io::Result<UdpSocket>> {
    let bind: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(bind)?;
    socket.set_nonblocking(true)?;
    if !connect {
        return Ok(Ok(socket));
    }
    Ok(socket.connect(server).map(|()| socket))
}

/// A fresh non-blocking TCP socket with its connect to `server` under way;
/// errors as for [`fresh_udp`].
fn fresh_tcp(server: SocketAddr) -> io::Result<io::Result<TcpStream>> {
    let family = if server.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd: OwnedFd = socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let address = SockaddrStorage::from(server);
    let connected = match socket::connect(fd.as_raw_fd(), &address) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => Ok(()),
        Err(errno) => Err(io::Error::from(errno)),
    };
    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
    // SAFETY: `raw` is an open TCP socket we own; TcpStream takes it over.
    let stream = unsafe { TcpStream::from_raw_fd(raw) };
    Ok(connected.map(|()| stream))
}

/// Sends both datagrams in one `sendmmsg(2)` call, as glibc does; returns
/// how many left.
fn send_pair_mmsg(socket: &UdpSocket, a: &[u8], b: &[u8]) -> io::Result<usize> {
    let mut iov = [
        libc::iovec { iov_base: a.as_ptr() as *mut libc::c_void, iov_len: a.len() },
        libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() },
    ];
    // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
    let mut messages: [libc::mmsghdr; 2] = unsafe { std::mem::zeroed() };
    for (message, vec) in messages.iter_mut().zip(iov.iter_mut()) {
        message.msg_hdr.msg_iov = vec;
        message.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the headers point at iovecs and buffers that outlive the call;
    // the socket is connected, so no address is given.
    let sent = unsafe { libc::sendmmsg(socket.as_raw_fd(), messages.as_mut_ptr(), 2, 0) };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
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

struct Engine<'a> {
    config: &'a EngineConfig,
    ids: IdSource,
    senders: Option<SenderPair>,
    active: Vec<Lookup>,
    result: EngineResult,
    started: u64,
    buf: Vec<u8>,
    /// Probe sockets open now (in flight and lingering).
    open_sockets: u64,
    /// Sockets lingering for late answers now (a reopen lookup may hold
    /// two).
    lingering: u64,
}

impl<'a> Engine<'a> {
    fn new(config: &'a EngineConfig) -> Result<Self> {
        if config.names.is_empty() {
            return Err(Error::Usage("no name to look up".into()));
        }
        let sockets = socket_budget(config)?;
        let senders = if config.mode == Mode::Threads { Some(SenderPair::spawn()?) } else { None };
        Ok(Engine {
            config,
            ids: IdSource::new(),
            senders,
            active: Vec::new(),
            result: EngineResult { sockets, ..EngineResult::default() },
            started: 0,
            buf: vec![0u8; 65_536],
            open_sockets: 0,
            lingering: 0,
        })
    }

    fn in_flight(&self) -> usize {
        self.active.iter().filter(|l| l.linger_until.is_none()).count()
    }

    /// Counts a socket just opened.
    fn opened(&mut self) {
        self.open_sockets += 1;
        self.result.sockets.peak_open = self.result.sockets.peak_open.max(self.open_sockets);
    }

    /// Removes the lookup at `index`, closing its sockets.
    fn remove(&mut self, index: usize) {
        let mut lookup = self.active.swap_remove(index);
        let closed = lookup.close() as u64;
        if lookup.linger_until.is_some() {
            self.lingering -= closed;
        }
        self.open_sockets -= closed;
    }

    /// Closes the sockets of the lookup that has lingered longest, to make
    /// room; false when none lingers. Why the oldest: it has waited the
    /// longest, so a late answer is least likely to still come to it. Why
    /// close rather than stop starting lookups: the run keeps the rate and
    /// concurrency it was asked for, which is what it measures.
    fn close_oldest_lingering(&mut self) -> bool {
        let oldest = self
            .active
            .iter_mut()
            .filter(|l| l.linger_until.is_some() && l.sockets() > 0)
            .min_by_key(|l| l.linger_until);
        let Some(lookup) = oldest else { return false };
        let closed = lookup.close() as u64;
        self.open_sockets -= closed;
        self.lingering -= closed;
        self.result.sockets.lingering_closed_early += closed;
        true
    }

    /// A fresh UDP socket for a query; at the open-file limit, closes a
    /// lingering socket and tries again. `Ok(Err(_))` counts against the
    /// lookup (a connect failure).
    fn open_udp(&mut self) -> Result<io::Result<UdpSocket>> {
        loop {
            match fresh_udp(self.config.server, self.config.mode != Mode::Musl) {
                Ok(outcome) => {
                    if outcome.is_ok() {
                        self.opened();
                    }
                    return Ok(outcome);
                }
                Err(e) if is_descriptor_limit(&e) && self.close_oldest_lingering() => continue,
                Err(e) => return Err(self.socket_error("UDP", e)),
            }
        }
    }

    /// A fresh TCP connection under way, as [`Engine::open_udp`].
    fn open_tcp(&mut self) -> Result<io::Result<TcpStream>> {
        loop {
            match fresh_tcp(self.config.server) {
                Ok(outcome) => {
                    if outcome.is_ok() {
                        self.opened();
                    }
                    return Ok(outcome);
                }
                Err(e) if is_descriptor_limit(&e) && self.close_oldest_lingering() => continue,
                Err(e) => return Err(self.socket_error("TCP", e)),
            }
        }
    }

    /// Why no probe socket could be made, with the real cause and what to do.
    fn socket_error(&self, kind: &str, e: io::Error) -> Error {
        let held = format!(
            "{} probe sockets were open ({} lookups in flight, {} lingering for late answers, at most {} of those allowed)",
            self.open_sockets,
            self.in_flight(),
            self.lingering,
            self.result.sockets.lingering_limit
        );
        Error::Runtime(match e.raw_os_error() {
            Some(libc::EMFILE) => format!(
                "cannot open a probe {kind} socket: {e}: this process reached its open-file limit ({}, `ulimit -n`) and no lingering socket was left to close; {held}; something else in ctdiag holds descriptors too, or the limit was lowered during the run: raise it (`ulimit -n`) or lower --concurrency",
                open_file_limits().0
            ),
            Some(libc::ENFILE) => format!(
                "cannot open a probe {kind} socket: {e}: the whole system is at its open-file limit (`sysctl fs.file-max`), not this probe; {held}; free descriptors elsewhere or raise fs.file-max"
            ),
            Some(libc::ENOBUFS) | Some(libc::ENOMEM) => format!(
                "cannot open a probe {kind} socket: {e}: the kernel is short of memory for sockets; {held}; lower --concurrency or --rate"
            ),
            _ => format!("cannot open a probe {kind} socket: {e}; {held}"),
        })
    }

    fn run(&mut self, stop: &AtomicBool, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        let t0 = Instant::now();
        let interval =
            (self.config.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / self.config.rate));
        let start_until =
            t0 + self.config.duration.unwrap_or(self.config.max_run).min(self.config.max_run);
        let mut next_start = t0;
        let mut in_flight = 0usize;
        loop {
            let now = Instant::now();
            let stopping = stop.load(Ordering::Relaxed);
            if stopping {
                self.result.interrupted = true;
            }
            let more_allowed = !stopping
                && self.config.count.is_none_or(|c| self.started < c)
                && now < start_until;
            if !more_allowed
                && self.config.count.is_some_and(|c| self.started < c)
                && now >= start_until
            {
                self.result.capped = self.config.duration.is_none();
            }
            // Start what the rate and the concurrency allow.
            if more_allowed {
                while in_flight < self.config.concurrency
                    && self.config.count.is_none_or(|c| self.started < c)
                {
                    let now = Instant::now();
                    if now < next_start || now >= start_until {
                        break;
                    }
                    self.start_lookup(now)?;
                    in_flight += 1;
                    if let Some(step) = interval {
                        next_start += step;
                        // Why: after a stall (concurrency full) do not burst
                        // to catch up; keep the spacing.
                        if next_start + step < now {
                            next_start = now;
                        }
                    }
                }
            }
            self.settle(Instant::now(), progress)?;
            in_flight = self.in_flight();
            let can_start_more = more_allowed
                && self.config.count.is_none_or(|c| self.started < c)
                && Instant::now() < start_until;
            if self.active.is_empty() && !can_start_more {
                break;
            }
            // Sleep until a socket is ready or something is due.
            let mut wake =
                self.active.iter().filter_map(|l| l.next_deadline(self.config.timeout)).min();
            if can_start_more && in_flight < self.config.concurrency {
                let due = next_start.min(start_until);
                wake = Some(wake.map_or(due, |w| w.min(due)));
            }
            let ready = self.wait(wake)?;
            let now = Instant::now();
            for (index, which, revents) in ready {
                self.service(index, which, revents, now);
            }
            self.settle(Instant::now(), progress)?;
            in_flight = self.in_flight();
        }
        self.result.elapsed = t0.elapsed();
        Ok(())
    }

    /// Polls the active sockets until one is ready or `wake`; returns which
    /// socket of which lookup is ready, with its events.
    fn wait(&self, wake: Option<Instant>) -> Result<Vec<(usize, Which, PollFlags)>> {
        let mut fds: Vec<PollFd> = Vec::with_capacity(self.active.len());
        let mut owners: Vec<(usize, Which)> = Vec::with_capacity(self.active.len());
        for (index, lookup) in self.active.iter().enumerate() {
            if let Some(conn) = &lookup.conn {
                let mut flags = PollFlags::POLLIN;
                if let Conn::Tcp(t) = conn {
                    if !t.connected || t.written < t.out.len() {
                        flags |= PollFlags::POLLOUT;
                    }
                }
                fds.push(PollFd::new(conn.fd(), flags));
                owners.push((index, Which::Current));
            }
            if let Some(conn) = &lookup.first_conn {
                fds.push(PollFd::new(conn.fd(), PollFlags::POLLIN));
                owners.push((index, Which::First));
            }
        }
        let timeout = wake.map(|w| {
            let left = w.saturating_duration_since(Instant::now());
            TimeSpec::from_duration(left)
        });
        // Why a bound with no deadline at all: never block forever.
        let timeout =
            timeout.unwrap_or_else(|| TimeSpec::from_duration(Duration::from_millis(100)));
        match nix::poll::ppoll(&mut fds, Some(timeout), None) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Vec::new()),
            Err(errno) => return Err(Error::Runtime(format!("ppoll failed: {errno}"))),
        }
        Ok(fds
            .iter()
            .zip(owners)
            .filter_map(|(fd, (index, which))| {
                fd.revents().filter(|r| !r.is_empty()).map(|r| (index, which, r))
            })
            .collect())
    }

    fn new_queries(&mut self) -> [QuerySlot; 2] {
        let name = &self.config.names[(self.started % self.config.names.len() as u64) as usize];
        let id_a = self.ids.next_u16();
        let mut id_aaaa = self.ids.next_u16();
        while id_aaaa == id_a {
            id_aaaa = self.ids.next_u16();
        }
        [(id_a, QueryType::A), (id_aaaa, QueryType::AAAA)].map(|(id, qtype)| {
            let sent = SentQuery { id, name: name.clone(), qtype };
            // Encoding a validated name cannot fail; an empty packet would
            // only be counted as a loss.
            let bytes = sent.encode().unwrap_or_default();
            QuerySlot { sent, bytes, state: QueryState::Unsent }
        })
    }

    fn start_lookup(&mut self, now: Instant) -> Result<()> {
        let queries = self.new_queries();
        self.started += 1;
        let mut lookup = Lookup::new(now, queries);
        self.result.by_type[0].sent += 1;
        self.result.by_type[1].sent += 1;
        match self.config.mode {
            Mode::Parallel | Mode::Threads | Mode::Sequential | Mode::Reopen | Mode::Musl => {
                match self.open_udp()? {
                    Err(e) => lookup.fail_open_queries(failure_of(&e)),
                    Ok(socket) => {
                        let socket = Arc::new(socket);
                        lookup.conn = Some(Conn::Udp(Arc::clone(&socket)));
                        match self.config.mode {
                            Mode::Parallel => send_parallel(&mut lookup, &socket),
                            Mode::Threads => self.send_threads(&mut lookup, &socket)?,
                            Mode::Musl => {
                                send_musl(&mut lookup, &socket, self.config.server);
                                lookup.retry_at = self.config.retry_after.map(|after| now + after);
                            }
                            _ => send_one(&mut lookup, 0, &socket),
                        }
                    }
                }
            }
            Mode::Tcp => match self.open_tcp()? {
                Err(e) => lookup.fail_open_queries(failure_of(&e)),
                Ok(stream) => {
                    let mut out = Vec::with_capacity(2 * 64);
                    for slot in &lookup.queries {
                        out.extend_from_slice(&(slot.bytes.len() as u16).to_be_bytes());
                        out.extend_from_slice(&slot.bytes);
                    }
                    lookup.conn = Some(Conn::Tcp(TcpConn {
                        stream,
                        connected: false,
                        out,
                        written: 0,
                        inbuf: Vec::new(),
                    }));
                }
            },
        }
        lookup.spread_refusal();
        self.active.push(lookup);
        Ok(())
    }

    fn send_threads(&mut self, lookup: &mut Lookup, socket: &Arc<UdpSocket>) -> Result<()> {
        let Some(pair) = &self.senders else {
            return Err(Error::Runtime("threads mode without sender threads".into()));
        };
        let sent = pair.send(socket, [&lookup.queries[0].bytes, &lookup.queries[1].bytes])?;
        for (slot, (at, outcome)) in lookup.queries.iter_mut().zip(sent) {
            slot.state = match outcome {
                Ok(_) => QueryState::Pending { sent_at: at },
                Err(e) => QueryState::Failed(failure_of(&e)),
            };
        }
        Ok(())
    }

    /// Reads what a ready socket has and applies it.
    fn service(&mut self, index: usize, which: Which, revents: PollFlags, now: Instant) {
        let server = self.config.server;
        let Some(lookup) = self.active.get_mut(index) else { return };
        let (conn, carried) = match which {
            Which::Current => (&lookup.conn, lookup.conn_carries),
            Which::First => (&lookup.first_conn, [true, false]),
        };
        match conn {
            None => {}
            Some(Conn::Udp(socket)) => {
                let socket = Arc::clone(socket);
                loop {
                    match socket.recv_from(&mut self.buf) {
                        Ok((len, source)) => {
                            let packet = &self.buf[..len];
                            lookup.on_packet_for(
                                packet,
                                carried,
                                source,
                                server,
                                now,
                                &mut self.result,
                            );
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => {
                            // An ICMP error for this flow: every open query
                            // the socket carried has failed (the error is
                            // reported once).
                            let failure = failure_of(&e);
                            for (slot, carried) in lookup.queries.iter_mut().zip(carried) {
                                if carried
                                    && matches!(
                                        slot.state,
                                        QueryState::Pending { .. } | QueryState::Unsent
                                    )
                                {
                                    slot.state = QueryState::Failed(failure);
                                }
                            }
                            break;
                        }
                    }
                }
            }
            Some(Conn::Tcp(_)) => service_tcp(lookup, revents, server, now, &mut self.result),
        }
    }

    /// Advances sequential modes, expires deadlines, accounts finished
    /// lookups, and closes sockets whose lingering is over (or, at the
    /// lingering limit, the oldest lingering ones).
    fn settle(&mut self, now: Instant, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        let timeout = self.config.timeout;
        let mut index = 0;
        while index < self.active.len() {
            let lookup = &mut self.active[index];
            if let Some(until) = lookup.linger_until {
                if now >= until || lookup.sockets() == 0 {
                    self.remove(index);
                } else {
                    index += 1;
                }
                continue;
            }
            if let Some(retry_after) = self.config.retry_after {
                lookup.resend_due(now, timeout, retry_after, self.config.server, &mut self.result);
            }
            lookup.expire(now, timeout);
            // single-request(-reopen): the AAAA query follows once the A
            // query is done.
            let aaaa_due = matches!(self.config.mode, Mode::Sequential | Mode::Reopen)
                && !matches!(
                    lookup.queries[0].state,
                    QueryState::Unsent | QueryState::Pending { .. }
                )
                && lookup.queries[1].state == QueryState::Unsent;
            if aaaa_due {
                self.send_second(index)?;
            }
            let lookup = &mut self.active[index];
            if !lookup.finished() {
                index += 1;
                continue;
            }
            account(lookup, self.config.slow_after, self.config.resolver_timeout, &mut self.result);
            progress(self.result.lookups);
            let any_timed_out =
                lookup.queries.iter().any(|q| q.state == QueryState::Failed(Failure::TimedOut));
            let udp = matches!(lookup.conn, Some(Conn::Udp(_))) || lookup.first_conn.is_some();
            let linger = any_timed_out
                && udp
                && !self.config.linger.is_zero()
                && self.result.sockets.lingering_limit > 0;
            if !linger {
                self.remove(index);
                continue;
            }
            // What a lingering lookup keeps: only the sockets that still
            // wait for an answer that timed out.
            let lookup = &mut self.active[index];
            if lookup.first_conn.is_some() {
                if lookup.queries[0].state != QueryState::Failed(Failure::TimedOut) {
                    lookup.first_conn = None;
                    self.open_sockets -= 1;
                }
                if lookup.queries[1].state != QueryState::Failed(Failure::TimedOut)
                    && lookup.conn.take().is_some()
                {
                    self.open_sockets -= 1;
                }
            }
            let needed = self.active[index].sockets() as u64;
            let limit = self.result.sockets.lingering_limit;
            // At the limit, the oldest lingering sockets make room (they
            // belong to other lookups: indexes do not move).
            while self.lingering + needed > limit && self.close_oldest_lingering() {}
            if self.lingering + needed > limit {
                self.remove(index);
                continue;
            }
            self.active[index].linger_until = Some(now + self.config.linger);
            self.lingering += needed;
            index += 1;
        }
        Ok(())
    }

    /// Sends the AAAA query of a sequential or reopen lookup once its A
    /// query is done: on the same socket, or (reopen) on a new one while
    /// the A socket stays open if its query timed out.
    fn send_second(&mut self, index: usize) -> Result<()> {
        if self.config.mode == Mode::Reopen {
            let opened = self.open_udp()?;
            let lookup = &mut self.active[index];
            let first = lookup.conn.take();
            // Why keep it only after a timeout: an answered A query needs
            // nothing more from its socket (glibc closes it); a timed-out
            // one may still get its late answer, which counts as late.
            if lookup.queries[0].state == QueryState::Failed(Failure::TimedOut) {
                lookup.first_conn = first;
            } else if first.is_some() {
                self.open_sockets -= 1;
            }
            let lookup = &mut self.active[index];
            lookup.conn_carries = [false, true];
            match opened {
                Ok(socket) => {
                    let socket = Arc::new(socket);
                    lookup.conn = Some(Conn::Udp(Arc::clone(&socket)));
                    send_one(lookup, 1, &socket);
                }
                Err(e) => lookup.queries[1].state = QueryState::Failed(failure_of(&e)),
            }
            // No spread_refusal: the AAAA socket is another flow.
            return Ok(());
        }
        let lookup = &mut self.active[index];
        if let Some(Conn::Udp(socket)) = &lookup.conn {
            let socket = Arc::clone(socket);
            send_one(lookup, 1, &socket);
        } else {
            lookup.queries[1].state = QueryState::Failed(Failure::SendError);
        }
        lookup.spread_refusal();
        Ok(())
    }
}

/// Why the socket call failed, as the lookup's outcome.
fn failure_of(e: &io::Error) -> Failure {
    if is_icmp_error(e) {
        Failure::Refused
    } else {
        Failure::SendError
    }
}

fn send_parallel(lookup: &mut Lookup, socket: &UdpSocket) {
    let outcome = send_pair_mmsg(socket, &lookup.queries[0].bytes, &lookup.queries[1].bytes);
    let at = Instant::now();
    match outcome {
        Ok(2) => {
            for slot in &mut lookup.queries {
                slot.state = QueryState::Pending { sent_at: at };
            }
        }
        Ok(1) => {
            lookup.queries[0].state = QueryState::Pending { sent_at: at };
            send_one(lookup, 1, socket);
        }
        Ok(_) => lookup.fail_open_queries(Failure::SendError),
        Err(e) => lookup.fail_open_queries(failure_of(&e)),
    }
}

/// musl: A, then AAAA, each in its own `sendto(2)` on the unconnected
/// socket, back to back.
fn send_musl(lookup: &mut Lookup, socket: &UdpSocket, server: SocketAddr) {
    for slot in &mut lookup.queries {
        let outcome = socket.send_to(&slot.bytes, server);
        let at = Instant::now();
        slot.state = match outcome {
            Ok(_) => QueryState::Pending { sent_at: at },
            Err(e) => QueryState::Failed(failure_of(&e)),
        };
    }
}

fn send_one(lookup: &mut Lookup, index: usize, socket: &UdpSocket) {
    let outcome = socket.send(&lookup.queries[index].bytes);
    let at = Instant::now();
    lookup.queries[index].state = match outcome {
        Ok(_) => QueryState::Pending { sent_at: at },
        Err(e) => QueryState::Failed(failure_of(&e)),
    };
}

/// Drives one TCP lookup: finish the connect, write both queries, read
/// length-prefixed answers.
fn service_tcp(
    lookup: &mut Lookup,
    revents: PollFlags,
    server: SocketAddr,
    now: Instant,
    result: &mut EngineResult,
) {
    let Some(Conn::Tcp(tcp)) = lookup.conn.as_mut() else { return };
    if !tcp.connected {
        match tcp.stream.take_error() {
            Ok(None) if revents.intersects(PollFlags::POLLOUT) => tcp.connected = true,
            Ok(None) => return,
            Ok(Some(e)) | Err(e) => {
                let failure = failure_of(&e);
                lookup.fail_open_queries(failure);
                return;
            }
        }
    }
    if tcp.written < tcp.out.len() {
        match tcp.stream.write(&tcp.out[tcp.written..]) {
            Ok(n) => {
                let was = tcp.written;
                tcp.written += n;
                let at = Instant::now();
                // A query counts as sent once all its bytes are written.
                let mut end = 0;
                for slot in &mut lookup.queries {
                    end += 2 + slot.bytes.len();
                    if was < end && tcp.written >= end && slot.state == QueryState::Unsent {
                        slot.state = QueryState::Pending { sent_at: at };
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => {
                lookup.fail_open_queries(failure_of(&e));
                return;
            }
        }
    }
    let Some(Conn::Tcp(tcp)) = lookup.conn.as_mut() else { return };
    let mut chunk = [0u8; 4096];
    let mut closed = false;
    loop {
        match tcp.stream.read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => tcp.inbuf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                lookup.fail_open_queries(failure_of(&e));
                return;
            }
        }
    }
    let mut frames = Vec::new();
    loop {
        let Some(Conn::Tcp(tcp)) = lookup.conn.as_mut() else { return };
        if tcp.inbuf.len() < 2 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([tcp.inbuf[0], tcp.inbuf[1]]));
        if tcp.inbuf.len() < 2 + len {
            break;
        }
        frames.push(tcp.inbuf[2..2 + len].to_vec());
        tcp.inbuf.drain(..2 + len);
    }
    for frame in frames {
        // On a TCP connection the peer is the server by construction.
        lookup.on_packet(&frame, server, server, now, result);
    }
    if closed {
        lookup.fail_open_queries(Failure::SendError);
    }
}

/// Adds a finished lookup to the totals.
fn account(
    lookup: &Lookup,
    slow_after: Duration,
    resolver_timeout: Duration,
    result: &mut EngineResult,
) {
    result.lookups += 1;
    let mut lost = 0;
    for (index, slot) in lookup.queries.iter().enumerate() {
        if let QueryState::Failed(failure) = slot.state {
            lost += 1;
            result.by_type[index].lost += 1;
            match failure {
                Failure::TimedOut => result.timed_out += 1,
                Failure::Refused => result.refused += 1,
                Failure::SendError => result.send_errors += 1,
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::wire::parse_name;
    use hickory_proto::op::{Message, MessageType, OpCode, Query};

    const SERVER: &str = "127.0.0.1:53";
    const FIVE_S: Duration = Duration::from_secs(5);

    fn lookup() -> Lookup {
        let name = parse_name("kubernetes.default.svc.cluster.local").unwrap();
        let now = Instant::now();
        let slots = [(7u16, QueryType::A), (9u16, QueryType::AAAA)].map(|(id, qtype)| {
            let sent = SentQuery { id, name: name.clone(), qtype };
            let bytes = sent.encode().unwrap();
            QuerySlot { sent, bytes, state: QueryState::Pending { sent_at: now } }
        });
        Lookup::new(now, slots)
    }

    fn answer(id: u16, qtype: QueryType) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("kubernetes.default.svc.cluster.local.").unwrap(),
            qtype.record_type(),
        ));
        m.to_vec().unwrap()
    }

    #[test]
    fn duplicate_answer_counted_apart() {
        let server: SocketAddr = SERVER.parse().unwrap();
        let mut l = lookup();
        let mut r = EngineResult::default();
        let now = Instant::now();
        let packet = answer(7, QueryType::A);
        assert_eq!(l.on_packet(&packet, server, server, now, &mut r), PacketEffect::Answered);
        assert_eq!(l.on_packet(&packet, server, server, now, &mut r), PacketEffect::Stray);
        assert_eq!(r.stray.duplicate, 1);
        assert_eq!(r.by_type[0].answered, 1);
        assert!(!l.finished());
        let packet = answer(9, QueryType::AAAA);
        assert_eq!(l.on_packet(&packet, server, server, now, &mut r), PacketEffect::Answered);
        assert!(l.finished());
        assert_eq!(r.rcodes.get("NOERROR"), Some(&2));
    }

    #[test]
    fn late_answer_after_timeout_is_not_an_answer() {
        let server: SocketAddr = SERVER.parse().unwrap();
        let mut l = lookup();
        let mut r = EngineResult::default();
        let later = Instant::now() + Duration::from_secs(10);
        l.expire(later, Duration::from_secs(1));
        assert!(l.finished());
        let packet = answer(9, QueryType::AAAA);
        assert_eq!(l.on_packet(&packet, server, server, later, &mut r), PacketEffect::Stray);
        assert_eq!(r.stray.late, 1);
        account(&l, FIVE_S, FIVE_S, &mut r);
        assert_eq!((r.both_lost_lookups, r.timed_out, r.lost()), (1, 2, 2));
    }

    #[test]
    fn stray_kinds_do_not_answer() {
        let server: SocketAddr = SERVER.parse().unwrap();
        let mut l = lookup();
        let mut r = EngineResult::default();
        let now = Instant::now();
        let other: SocketAddr = "127.0.0.2:53".parse().unwrap();
        l.on_packet(&answer(7, QueryType::A), other, server, now, &mut r);
        l.on_packet(&answer(8, QueryType::A), server, server, now, &mut r);
        l.on_packet(&answer(7, QueryType::AAAA), server, server, now, &mut r);
        l.on_packet(&answer(7, QueryType::A)[..10], server, server, now, &mut r);
        let expected = StrayCounts {
            wrong_source: 1,
            wrong_id: 1,
            wrong_question: 1,
            malformed: 1,
            ..StrayCounts::default()
        };
        assert_eq!(r.stray, expected);
        assert_eq!(r.answered(), 0);
        assert!(!l.finished());
    }

    #[test]
    fn answered_lookups_go_to_the_histogram_and_slow_ones_are_counted_exactly() {
        let server: SocketAddr = SERVER.parse().unwrap();
        let mut r = EngineResult::default();
        let slow_after = Duration::from_millis(300);
        for (a_ms, aaaa_ms) in [(1, 2), (299, 299), (10, 300), (20, 500)] {
            let mut l = lookup();
            let a = l.started + Duration::from_millis(a_ms);
            let aaaa = l.started + Duration::from_millis(aaaa_ms);
            l.on_packet(&answer(7, QueryType::A), server, server, a, &mut r);
            l.on_packet(&answer(9, QueryType::AAAA), server, server, aaaa, &mut r);
            assert!(l.finished());
            account(&l, slow_after, Duration::from_millis(400), &mut r);
        }
        assert_eq!(r.latency.len(), 4);
        assert_eq!(r.slow_lookups, 2, "300 ms and 500 ms are at or above 300 ms");
        assert_eq!(r.beyond_resolver_timeout, 1, "500 ms only is at or above 400 ms");
        assert_eq!(r.latency.max_us(), Some(500_000), "the last answer ends a lookup");
        assert_eq!(r.latency.min_us(), Some(2_000));
    }

    #[test]
    fn merged_results_add_up() {
        let server: SocketAddr = SERVER.parse().unwrap();
        let mut answered = EngineResult::default();
        let mut l = lookup();
        let at = l.started + Duration::from_millis(3);
        l.on_packet(&answer(7, QueryType::A), server, server, at, &mut answered);
        l.on_packet(&answer(9, QueryType::AAAA), server, server, at, &mut answered);
        account(&l, FIVE_S, FIVE_S, &mut answered);
        answered.by_type = [TypeCounts { sent: 1, answered: 1, lost: 0 }; 2];
        answered.elapsed = Duration::from_secs(1);
        let mut lost = EngineResult::default();
        let mut l = lookup();
        l.expire(Instant::now() + Duration::from_secs(10), Duration::from_secs(1));
        l.on_packet(&answer(7, QueryType::A), server, server, Instant::now(), &mut lost);
        account(&l, FIVE_S, FIVE_S, &mut lost);
        lost.by_type[0].sent = 1;
        lost.by_type[1].sent = 1;
        lost.elapsed = Duration::from_secs(2);
        lost.sockets.lingering_closed_early = 4;
        let mut total = answered.clone();
        total.merge(&lost);
        assert_eq!(total.lookups, 2);
        assert_eq!((total.queries_sent(), total.answered(), total.lost()), (4, 2, 2));
        assert_eq!((total.both_lost_lookups, total.timed_out, total.stray.late), (1, 2, 1));
        assert_eq!(total.latency.len(), 1);
        assert_eq!(total.rcodes.get("NOERROR"), Some(&2));
        assert_eq!(total.elapsed, Duration::from_secs(3));
        assert_eq!(total.sockets.lingering_closed_early, 4);
    }

    #[test]
    fn one_lost_lookup_is_the_race_signature() {
        let server: SocketAddr = SERVER.parse().unwrap();
        let mut l = lookup();
        let mut r = EngineResult::default();
        let now = Instant::now();
        l.on_packet(&answer(7, QueryType::A), server, server, now, &mut r);
        l.expire(now + Duration::from_secs(3), Duration::from_secs(2));
        assert!(l.finished());
        account(&l, FIVE_S, FIVE_S, &mut r);
        assert_eq!(r.one_lost_lookups, 1);
        assert_eq!(r.by_type[1].lost, 1);
        assert_eq!(r.by_type[0].lost, 0);
    }
}
