//! A ctnetlink socket (any `NETLINK_NETFILTER` conversation, in fact: the
//! nf_tables rule reader of [`crate::service::nf_tables`] uses it too): one
//! request, its whole (possibly multipart) reply,
//! either collected ([`CtnetlinkSocket::dump`]) or streamed message by
//! message ([`CtnetlinkSocket::dump_each`]) so that memory does not grow
//! with the conntrack table.
//!
//! Requests are built and, for the collected form, replies parsed with
//! `netlink-packet-netfilter` ([`NetfilterMessage`], [`ConntrackMessage`]);
//! this module adds what the crate leaves to the caller: sequence and port
//! checks, `NLMSG_DONE` / `NLMSG_ERROR` handling, `NLM_F_DUMP_INTR` and
//! overrun detection with restarts, a receive timeout, and an overall
//! deadline per exchange.
//!
//! The socket lives in the network namespace of the thread that opened it,
//! for its whole life (see [`crate::netns`]).

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_netfilter::conntrack::ConntrackMessage;
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
use nix::sys::time::TimeVal;

use super::ConntrackError;

/// `NFNL_SUBSYS_CTNETLINK` (include/uapi/linux/netfilter/nfnetlink.h).
pub const NFNL_SUBSYS_CTNETLINK: u8 = 1;
/// `NFNETLINK_V0`: the only `nfgenmsg.version` there is.
pub const NFNETLINK_V0: u8 = 0;
/// `IPCTNL_MSG_CT_NEW` (include/uapi/linux/netfilter/nfnetlink_conntrack.h).
pub const IPCTNL_MSG_CT_NEW: u8 = 0;
/// `IPCTNL_MSG_CT_GET`: one entry, or the table with `NLM_F_DUMP`.
pub const IPCTNL_MSG_CT_GET: u8 = 1;
/// `IPCTNL_MSG_CT_DELETE`: delete the entry with this tuple.
pub const IPCTNL_MSG_CT_DELETE: u8 = 2;
/// `IPCTNL_MSG_CT_GET_CTRZERO`: get and zero counters.
pub const IPCTNL_MSG_CT_GET_CTRZERO: u8 = 3;
/// `IPCTNL_MSG_CT_GET_STATS_CPU`: per-CPU counters, a dump of one message per
/// possible CPU (CPU number in `nfgenmsg.res_id`).
pub const IPCTNL_MSG_CT_GET_STATS_CPU: u8 = 4;
/// `IPCTNL_MSG_CT_GET_STATS`: table fill (`CTA_STATS_GLOBAL_*`).
pub const IPCTNL_MSG_CT_GET_STATS: u8 = 5;

/// `NLMSG_NOOP` (include/uapi/linux/netlink.h).
const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR`: an error code, 0 for an acknowledgement.
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
const NLMSG_DONE: u16 = 3;
/// `NLMSG_OVERRUN`: data was lost.
const NLMSG_OVERRUN: u16 = 4;
/// Size of `struct nfgenmsg` (family, version, res_id).
const NFGENMSG_LEN: usize = 4;

/// How long one `recv` may wait before the kernel counts as silent.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request/acknowledgement exchange may take.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// How long a whole dump may take, restarts included. Why an overall
/// deadline: the receive timeout restarts with every datagram, so a dump
/// that trickles in (a kernel walking a huge table under heavy load) would
/// never end by it alone. Why 60 s: a 250,000-entry table dumps in well
/// under a second here; sixty times that is a sick node, not a slow one.
pub const DUMP_DEADLINE: Duration = Duration::from_secs(60);
/// How many times an interrupted or overrun dump is started again before
/// giving up with [`ConntrackError::DumpInconsistent`].
pub const DUMP_ATTEMPTS: u32 = 3;
/// Starting receive buffer. Why 64 KiB: the kernel fills dump datagrams up
/// to 32 KiB (more with a large `SO_RCVBUF`); the buffer still grows when a
/// peek says a datagram is larger.
const RECV_BUFFER_LEN: usize = 64 * 1024;
/// Upper bound on datagrams read while draining an abandoned dump.
const DRAIN_LIMIT: usize = 100_000;

/// One message of a reply: the netlink header (flags such as
/// `NLM_F_DUMP_FILTERED` live there) and the decoded netfilter message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The netlink header as received.
    pub header: NetlinkHeader,
    /// The nfgenmsg header and the ctnetlink message.
    pub message: NetfilterMessage,
}

/// One ctnetlink message of a reply as received, not decoded further: what
/// a streaming consumer gets, borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawMessage<'a> {
    /// `nlmsg_type`: `NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_*`.
    pub message_type: u16,
    /// `nlmsg_flags` (`NLM_F_MULTI`, `NLM_F_DUMP_FILTERED`, ...).
    pub flags: u16,
    /// `nfgenmsg.nfgen_family`: `AF_INET`, `AF_INET6`, ...
    pub family: u8,
    /// `nfgenmsg.res_id` (host order).
    pub res_id: u16,
    /// The attributes after the nfgenmsg header.
    pub attributes: &'a [u8],
    /// The whole message, netlink header included.
    pub bytes: &'a [u8],
}

/// Why a dump starts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    /// A message carried `NLM_F_DUMP_INTR`: the table changed in a way that
    /// makes this walk inconsistent.
    Interrupted,
    /// Messages were lost: `ENOBUFS`, `NLMSG_OVERRUN` or a truncated
    /// datagram.
    Overrun,
}

/// What a streaming dump hands its consumer, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpEvent<'a> {
    /// The dump starts over: everything the consumer took from earlier
    /// attempts is void and must be discarded.
    Restart {
        /// The attempt that starts now (2 for the first restart).
        attempt: u32,
        /// Why the previous attempt was abandoned.
        reason: RestartReason,
    },
    /// One message of the current attempt.
    Message(RawMessage<'a>),
}

/// How a streamed dump ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpSummary {
    /// Attempts made (1 when nothing had to be restarted).
    pub attempts: u32,
    /// Messages of the complete attempt.
    pub messages: u64,
}

/// How the kernel answered a request sent with `NLM_F_ACK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// Error code 0: done.
    Acknowledged,
    /// `ENOENT`: nothing matched (for a DELETE: the entry is already gone).
    NotFound,
}

/// A `NETLINK_NETFILTER` socket bound to a kernel-assigned port.
#[derive(Debug)]
pub struct CtnetlinkSocket {
    socket: Socket,
    port: u32,
    next_sequence: u32,
    buffer: Vec<u8>,
    /// The receive timeout asked for (see [`Self::set_recv_timeout`]).
    recv_timeout: Duration,
    /// What `SO_RCVTIMEO` is set to now: lower than `recv_timeout` near a
    /// deadline.
    socket_timeout: Duration,
}

impl CtnetlinkSocket {
    /// Opens and binds a socket in the calling thread's network namespace,
    /// with a [`RECV_TIMEOUT`] receive timeout.
    pub fn open() -> Result<Self, ConntrackError> {
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(|source| {
            if source.raw_os_error() == Some(libc::EPROTONOSUPPORT) {
                ConntrackError::Unavailable(
                    "the kernel has no nfnetlink (NETLINK_NETFILTER sockets are not supported)"
                        .into(),
                )
            } else {
                ConntrackError::Socket { op: "open", source }
            }
        })?;
        let address =
            socket.bind_auto().map_err(|source| ConntrackError::Socket { op: "bind", source })?;
        // Why a time-derived start: a fresh socket gets a fresh port, so any
        // value works; a varying one makes captures easy to tell apart.
        let next_sequence = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs() as u32)
            .unwrap_or(1);
        let mut opened = CtnetlinkSocket {
            socket,
            port: address.port_number(),
            next_sequence,
            // Capacity only: recv writes into it and sets the length.
            // Why not zeroed: touching 64 KiB costs 16 page faults per run,
            // a visible share of a whole `ctdiag stats`.
            buffer: Vec::with_capacity(RECV_BUFFER_LEN),
            recv_timeout: RECV_TIMEOUT,
            socket_timeout: Duration::ZERO,
        };
        opened.set_recv_timeout(RECV_TIMEOUT)?;
        Ok(opened)
    }

    /// Changes how long one `recv` may wait (`SO_RCVTIMEO`) before
    /// [`ConntrackError::Timeout`]. A zero duration would mean "wait
    /// forever" to the kernel, so it is raised to 1 ms.
    pub fn set_recv_timeout(&mut self, timeout: Duration) -> Result<(), ConntrackError> {
        let timeout = timeout.max(Duration::from_millis(1));
        self.set_socket_timeout(timeout)?;
        self.recv_timeout = timeout;
        Ok(())
    }

    fn set_socket_timeout(&mut self, timeout: Duration) -> Result<(), ConntrackError> {
        let timeout = timeout.max(Duration::from_millis(1));
        if timeout == self.socket_timeout {
            return Ok(());
        }
        let value = TimeVal::new(timeout.as_secs() as _, timeout.subsec_micros() as _);
        setsockopt(&self.socket, ReceiveTimeout, &value).map_err(|errno| {
            ConntrackError::Socket { op: "setsockopt(SO_RCVTIMEO)", source: io::Error::from(errno) }
        })?;
        self.socket_timeout = timeout;
        Ok(())
    }

    /// The netlink port id the kernel assigned to this socket.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Sends `message` with `NLM_F_DUMP` and returns every message of the
    /// dump, in order, decoded by `netlink-packet-netfilter`. Built on
    /// [`Self::dump_each`]: an interrupted or overrun dump is started again
    /// (what was collected is dropped), up to [`DUMP_ATTEMPTS`] times, then
    /// [`ConntrackError::DumpInconsistent`]: a partial dump is never
    /// returned. `request` names the request in errors.
    pub fn dump<M: Clone + Into<NetfilterMessageInner>>(
        &mut self,
        request: &'static str,
        family: NetfilterProtoFamily,
        message: M,
    ) -> Result<Vec<Reply>, ConntrackError> {
        let mut replies = Vec::new();
        self.dump_each(request, family, &message, DUMP_DEADLINE, |event| match event {
            DumpEvent::Restart { .. } => {
                replies.clear();
                Ok(())
            }
            DumpEvent::Message(raw) => {
                replies.push(decode_reply(request, raw)?);
                Ok(())
            }
        })?;
        Ok(replies)
    }

    /// Sends `message` with `NLM_F_DUMP` and hands every message of the
    /// dump to `on_event` as it arrives, without keeping any. An interrupted
    /// (`NLM_F_DUMP_INTR`) or overrun (`ENOBUFS`, `NLMSG_OVERRUN`, a
    /// truncated datagram) dump is started again up to [`DUMP_ATTEMPTS`]
    /// times; before each new attempt `on_event` gets
    /// [`DumpEvent::Restart`] and must discard what it took so far. After
    /// the last attempt: [`ConntrackError::DumpInconsistent`]. The whole
    /// dump, restarts included, must finish within `deadline`, else
    /// [`ConntrackError::Deadline`]. An error returned by `on_event` stops
    /// the dump and is returned (the socket stays usable).
    pub fn dump_each<M, F>(
        &mut self,
        request: &'static str,
        family: NetfilterProtoFamily,
        message: &M,
        deadline: Duration,
        on_event: F,
    ) -> Result<DumpSummary, ConntrackError>
    where
        M: Clone + Into<NetfilterMessageInner>,
        F: FnMut(DumpEvent<'_>) -> Result<(), ConntrackError>,
    {
        let recv_timeout = self.recv_timeout;
        let mut sequence = self.next_sequence;
        let result = dump_with(
            self,
            &mut sequence,
            request,
            family,
            message,
            Deadline::after(deadline),
            recv_timeout,
            on_event,
        );
        self.next_sequence = sequence;
        self.finish_exchange(&result);
        result
    }

    /// Sends `message` with `NLM_F_ACK` (no dump) and returns the messages
    /// the kernel sent before its acknowledgement (for
    /// `IPCTNL_MSG_CT_GET_STATS`: the one reply).
    pub fn request(
        &mut self,
        request: &'static str,
        family: NetfilterProtoFamily,
        message: impl Into<NetfilterMessageInner>,
    ) -> Result<Vec<Reply>, ConntrackError> {
        let sequence = self.take_sequence();
        let bytes = encode_request(family, message, NLM_F_REQUEST | NLM_F_ACK, sequence);
        let mut replies = Vec::new();
        let recv_timeout = self.recv_timeout;
        let result = exchange(
            self,
            request,
            sequence,
            &bytes,
            Expect::Ack,
            Deadline::after(REQUEST_DEADLINE),
            recv_timeout,
            &mut |raw| {
                replies.push(decode_reply(request, raw)?);
                Ok(())
            },
        );
        self.finish_exchange(&result);
        match result? {
            Exchange::Complete { .. } => Ok(replies),
            Exchange::Overrun => {
                self.drain();
                Err(ConntrackError::DumpInconsistent { request, attempts: 1 })
            }
        }
    }

    /// Sends `message` with `NLM_F_ACK` and reports the outcome; `ENOENT`
    /// is [`AckOutcome::NotFound`], not an error, so that a caller deleting
    /// entries can count "already gone". Any other error code is an error.
    pub fn request_ack(
        &mut self,
        request: &'static str,
        family: NetfilterProtoFamily,
        message: ConntrackMessage,
    ) -> Result<AckOutcome, ConntrackError> {
        match self.request(request, family, message) {
            Ok(_) => Ok(AckOutcome::Acknowledged),
            Err(ConntrackError::Kernel { errno: libc::ENOENT, .. }) => Ok(AckOutcome::NotFound),
            Err(other) => Err(other),
        }
    }

    fn take_sequence(&mut self) -> u32 {
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        sequence
    }

    /// After an exchange: the receive timeout goes back to what was asked
    /// for (a deadline may have lowered it), and an exchange abandoned in
    /// the middle (an error, a deadline) leaves nothing queued for the next.
    fn finish_exchange<T>(&mut self, result: &Result<T, ConntrackError>) {
        if result.is_err() {
            self.drain();
        }
        let _ = self.set_socket_timeout(self.recv_timeout);
    }

    /// Receives one datagram into `self.buffer`, growing it first when a
    /// peek says the datagram would not fit.
    fn recv_datagram(&mut self, wait: Duration) -> Result<Received<'_>, ConntrackError> {
        self.set_socket_timeout(wait)?;
        loop {
            // Peek with MSG_TRUNC: the return value is the datagram's real
            // size even when it is larger than the buffer.
            let peeked = {
                let mut probe = [0u8; 16];
                let mut window: &mut [u8] = &mut probe[..];
                self.socket.recv_from(&mut window, libc::MSG_PEEK | libc::MSG_TRUNC)
            };
            let size = match peeked {
                Ok((size, _)) => size,
                Err(error) => match classify_recv_error(error) {
                    RecvFailure::Retry => continue,
                    RecvFailure::Overrun => return Ok(Received::Overrun),
                    RecvFailure::TimedOut => return Ok(Received::TimedOut),
                    RecvFailure::Fatal(error) => return Err(error),
                },
            };
            self.buffer.clear();
            self.buffer.reserve(size);
            let received = self.socket.recv_from(&mut self.buffer, libc::MSG_TRUNC);
            return match received {
                Ok((length, _)) if length > self.buffer.len() => Ok(Received::Overrun),
                // Only the kernel (port 0) answers requests; anything else
                // is not part of this conversation.
                Ok((_, from)) if from.port_number() != 0 => Ok(Received::NotFromKernel),
                Ok((length, _)) => Ok(Received::Datagram(self.buffer.get(..length).unwrap_or(&[]))),
                Err(error) => match classify_recv_error(error) {
                    RecvFailure::Retry => continue,
                    RecvFailure::Overrun => Ok(Received::Overrun),
                    RecvFailure::TimedOut => Ok(Received::TimedOut),
                    RecvFailure::Fatal(error) => Err(error),
                },
            };
        }
    }

    /// Reads and discards what is queued, without waiting. Why this
    /// finishes an abandoned dump: the kernel produces the next dump
    /// datagram synchronously inside our `recv`, so "nothing queued" means
    /// the dump is over and a new one can start on this socket.
    fn drain(&mut self) {
        for _ in 0..DRAIN_LIMIT {
            self.buffer.clear();
            match self.socket.recv_from(&mut self.buffer, libc::MSG_DONTWAIT | libc::MSG_TRUNC) {
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(libc::EINTR) => {}
                Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(_) => return,
            }
        }
    }
}

/// Anything that streams a dump: the ctnetlink socket, or a stand-in that
/// replays captured bytes in tests.
pub trait DumpSource {
    /// See [`CtnetlinkSocket::dump_each`].
    fn dump_events(
        &mut self,
        request: &'static str,
        family: NetfilterProtoFamily,
        message: &ConntrackMessage,
        deadline: Duration,
        on_event: &mut dyn FnMut(DumpEvent<'_>) -> Result<(), ConntrackError>,
    ) -> Result<DumpSummary, ConntrackError>;
}

impl DumpSource for CtnetlinkSocket {
    fn dump_events(
        &mut self,
        request: &'static str,
        family: NetfilterProtoFamily,
        message: &ConntrackMessage,
        deadline: Duration,
        on_event: &mut dyn FnMut(DumpEvent<'_>) -> Result<(), ConntrackError>,
    ) -> Result<DumpSummary, ConntrackError> {
        self.dump_each(request, family, message, deadline, on_event)
    }
}

impl AsRawFd for CtnetlinkSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

/// Decodes one raw message with `netlink-packet-netfilter`.
fn decode_reply(request: &'static str, raw: RawMessage<'_>) -> Result<Reply, ConntrackError> {
    let message = NetlinkMessage::<NetfilterMessage>::deserialize(raw.bytes)
        .map_err(|error| ConntrackError::Malformed { request, detail: error.to_string() })?;
    match message.payload {
        NetlinkPayload::InnerMessage(inner) => Ok(Reply { header: message.header, message: inner }),
        _ => Err(ConntrackError::Malformed {
            request,
            detail: format!("message type {:#06x} is not a ctnetlink message", raw.message_type),
        }),
    }
}

/// One receive, as the exchange sees it.
#[derive(Debug)]
pub(crate) enum Received<'a> {
    /// A datagram from the kernel.
    Datagram(&'a [u8]),
    /// Messages were lost (`ENOBUFS`, a truncated datagram).
    Overrun,
    /// A datagram from another netlink port: not ours.
    NotFromKernel,
    /// Nothing arrived within the wait.
    TimedOut,
}

/// Where an exchange sends its request and receives the reply: the
/// ctnetlink socket, or a scripted stand-in in the tests.
pub(crate) trait Transport {
    /// The netlink port replies are addressed to.
    fn port(&self) -> u32;
    /// Sends one request datagram to the kernel.
    fn send(&mut self, bytes: &[u8]) -> Result<(), ConntrackError>;
    /// Receives one datagram, waiting at most `wait`.
    fn recv(&mut self, wait: Duration) -> Result<Received<'_>, ConntrackError>;
    /// Discards whatever is queued.
    fn drain(&mut self);
}

impl Transport for CtnetlinkSocket {
    fn port(&self) -> u32 {
        self.port
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), ConntrackError> {
        let kernel = SocketAddr::new(0, 0);
        self.socket
            .send_to(bytes, &kernel, 0)
            .map(|_| ())
            .map_err(|source| ConntrackError::Socket { op: "send", source })
    }

    fn recv(&mut self, wait: Duration) -> Result<Received<'_>, ConntrackError> {
        self.recv_datagram(wait)
    }

    fn drain(&mut self) {
        CtnetlinkSocket::drain(self)
    }
}

enum RecvFailure {
    Retry,
    Overrun,
    TimedOut,
    Fatal(ConntrackError),
}

fn classify_recv_error(error: io::Error) -> RecvFailure {
    match error.raw_os_error() {
        Some(libc::EINTR) => RecvFailure::Retry,
        Some(libc::ENOBUFS) => RecvFailure::Overrun,
        Some(libc::EAGAIN) => RecvFailure::TimedOut,
        _ => RecvFailure::Fatal(ConntrackError::Socket { op: "recv", source: error }),
    }
}

/// How one exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exchange {
    /// The terminating message arrived; `interrupted` when some message
    /// carried `NLM_F_DUMP_INTR`.
    Complete {
        /// The dump is not consistent.
        interrupted: bool,
    },
    /// Messages were lost; the rest of the reply may still be queued.
    Overrun,
}

/// When an exchange must be over, and the budget it was given (for the
/// error message).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    /// The instant.
    pub(crate) at: Instant,
    /// The whole budget, as given.
    pub(crate) budget: Duration,
}

impl Deadline {
    /// `budget` from now.
    pub(crate) fn after(budget: Duration) -> Self {
        Deadline { at: Instant::now() + budget, budget }
    }
}

/// How long the next receive may wait: the receive timeout, or what is
/// left before `deadline` if that is less; `None` once the deadline passed.
pub(crate) fn next_wait(
    now: Instant,
    deadline: Instant,
    recv_timeout: Duration,
) -> Option<Duration> {
    let left = deadline.checked_duration_since(now)?;
    if left.is_zero() {
        return None;
    }
    Some(left.min(recv_timeout))
}

/// Sends one request and feeds every datagram of its reply to `sink`
/// through a [`ReplyReader`], until the reply is complete, the transport
/// reports an overrun, or time runs out (the receive timeout for one
/// datagram, `deadline` for the whole exchange).
#[allow(clippy::too_many_arguments)]
pub(crate) fn exchange<T: Transport>(
    transport: &mut T,
    request: &'static str,
    sequence: u32,
    bytes: &[u8],
    expect: Expect,
    deadline: Deadline,
    recv_timeout: Duration,
    sink: &mut dyn FnMut(RawMessage<'_>) -> Result<(), ConntrackError>,
) -> Result<Exchange, ConntrackError> {
    transport.send(bytes)?;
    let mut reader = ReplyReader::new(request, sequence, transport.port(), expect);
    loop {
        let Some(wait) = next_wait(Instant::now(), deadline.at, recv_timeout) else {
            return Err(ConntrackError::Deadline { request, after: deadline.budget });
        };
        let datagram = match transport.recv(wait)? {
            Received::Datagram(datagram) => datagram,
            Received::Overrun => return Ok(Exchange::Overrun),
            Received::NotFromKernel => continue,
            // Waiting less than the receive timeout means the deadline cut
            // the wait short.
            Received::TimedOut if wait < recv_timeout => {
                return Err(ConntrackError::Deadline { request, after: deadline.budget })
            }
            Received::TimedOut => {
                return Err(ConntrackError::Timeout { request, after: recv_timeout })
            }
        };
        match reader.feed(datagram, sink)? {
            Progress::More => {}
            Progress::Complete if reader.overrun => return Ok(Exchange::Overrun),
            Progress::Complete => {
                return Ok(Exchange::Complete { interrupted: reader.interrupted })
            }
        }
    }
}

/// The streaming dump over any transport: see [`CtnetlinkSocket::dump_each`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn dump_with<T: Transport, M, F>(
    transport: &mut T,
    next_sequence: &mut u32,
    request: &'static str,
    family: NetfilterProtoFamily,
    message: &M,
    deadline: Deadline,
    recv_timeout: Duration,
    mut on_event: F,
) -> Result<DumpSummary, ConntrackError>
where
    M: Clone + Into<NetfilterMessageInner>,
    F: FnMut(DumpEvent<'_>) -> Result<(), ConntrackError>,
{
    for attempt in 1..=DUMP_ATTEMPTS {
        let sequence = *next_sequence;
        *next_sequence = next_sequence.wrapping_add(1);
        let bytes = encode_request(family, message.clone(), NLM_F_REQUEST | NLM_F_DUMP, sequence);
        let mut messages = 0u64;
        let outcome = exchange(
            transport,
            request,
            sequence,
            &bytes,
            Expect::Done,
            deadline,
            recv_timeout,
            &mut |raw| {
                messages += 1;
                on_event(DumpEvent::Message(raw))
            },
        )?;
        let reason = match outcome {
            Exchange::Complete { interrupted: false } => {
                return Ok(DumpSummary { attempts: attempt, messages })
            }
            // Interrupted: the dump ran to NLMSG_DONE, nothing is left to
            // drain.
            Exchange::Complete { interrupted: true } => RestartReason::Interrupted,
            // Overrun: the rest of the old dump may still come.
            Exchange::Overrun => {
                transport.drain();
                RestartReason::Overrun
            }
        };
        if attempt < DUMP_ATTEMPTS {
            on_event(DumpEvent::Restart { attempt: attempt + 1, reason })?;
        }
    }
    Err(ConntrackError::DumpInconsistent { request, attempts: DUMP_ATTEMPTS })
}

/// Builds the bytes of a nfnetlink request (ctnetlink, or any other
/// netfilter subsystem the message belongs to, such as nf_tables):
/// nlmsghdr, nfgenmsg (version 0, res_id 0) and the message's attributes.
pub fn encode_request(
    family: NetfilterProtoFamily,
    message: impl Into<NetfilterMessageInner>,
    flags: u16,
    sequence: u32,
) -> Vec<u8> {
    let netfilter = NetfilterMessage::new(NetfilterHeader::new(family, NFNETLINK_V0, 0), message);
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = sequence;
    let mut netlink = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(netfilter));
    netlink.finalize();
    let mut bytes = vec![0; netlink.buffer_len()];
    netlink.serialize(&mut bytes);
    bytes
}

/// What a reply must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A dump: `NLMSG_DONE`.
    Done,
    /// A request with `NLM_F_ACK`: `NLMSG_ERROR` with code 0.
    Ack,
}

/// Whether a reply is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More datagrams belong to this reply.
    More,
    /// The terminating message arrived.
    Complete,
}

/// Splits the datagrams of one reply into messages and checks them:
/// sequence number, port, `NLMSG_DONE` / `NLMSG_ERROR`, `NLM_F_DUMP_INTR`,
/// `NLMSG_OVERRUN`. The socket-free core of [`CtnetlinkSocket`], so it can
/// be tested on captured bytes. Never panics on any input.
#[derive(Debug)]
pub struct ReplyReader {
    request: &'static str,
    sequence: u32,
    port: u32,
    expect: Expect,
    /// Some message carried `NLM_F_DUMP_INTR`: the dump is not consistent.
    pub interrupted: bool,
    /// The kernel reported `NLMSG_OVERRUN`: messages were lost.
    pub overrun: bool,
    /// Messages skipped because their sequence number belongs to an earlier
    /// request on the same socket.
    pub stale: usize,
}

impl ReplyReader {
    /// A reader for the reply to request `sequence` sent from `port`.
    pub fn new(request: &'static str, sequence: u32, port: u32, expect: Expect) -> Self {
        ReplyReader {
            request,
            sequence,
            port,
            expect,
            interrupted: false,
            overrun: false,
            stale: 0,
        }
    }

    /// Takes in one received datagram (one or more netlink messages) and
    /// hands each ctnetlink message of this reply to `sink`. Returns
    /// [`Progress::Complete`] at `NLMSG_DONE` (dump) or at the
    /// acknowledgement (`Expect::Ack`); an error code from the kernel, bytes
    /// that do not split into messages, or an error from `sink` are errors.
    pub fn feed(
        &mut self,
        datagram: &[u8],
        sink: &mut dyn FnMut(RawMessage<'_>) -> Result<(), ConntrackError>,
    ) -> Result<Progress, ConntrackError> {
        let mut offset = 0usize;
        while offset < datagram.len() {
            let rest = datagram.get(offset..).unwrap_or(&[]);
            let buffer = NetlinkBuffer::new_checked(rest)
                .map_err(|error| self.malformed(format!("at byte {offset}: {error}")))?;
            let length = buffer.length() as usize;
            let bytes = rest.get(..length).unwrap_or(rest);
            let payload = bytes.get(16..).unwrap_or(&[]);
            let (message_type, flags) = (buffer.message_type(), buffer.flags());
            let (sequence, port) = (buffer.sequence_number(), buffer.port_number());
            // Messages are 4-byte aligned within a datagram (NLMSG_ALIGN).
            offset = offset.saturating_add(length.saturating_add(3) & !3);

            if sequence != self.sequence {
                // Left over from an abandoned earlier request on this socket.
                self.stale += 1;
                continue;
            }
            if port != self.port {
                return Err(self.malformed(format!(
                    "message for port {port} on the socket of port {}",
                    self.port
                )));
            }
            if flags & NLM_F_DUMP_INTR != 0 {
                self.interrupted = true;
            }
            match message_type {
                NLMSG_NOOP => {}
                NLMSG_ERROR => {
                    let code = error_code(payload).ok_or_else(|| {
                        self.malformed("NLMSG_ERROR shorter than its error code".into())
                    })?;
                    if code != 0 {
                        return Err(kernel_error(self.request, code));
                    }
                    if self.expect == Expect::Ack {
                        return Ok(Progress::Complete);
                    }
                    return Err(
                        self.malformed("an acknowledgement where a dump was expected".into())
                    );
                }
                NLMSG_DONE => {
                    // The kernel puts an int after the header; 0 unless the
                    // dump itself failed.
                    let code = error_code(payload).unwrap_or(0);
                    if code != 0 {
                        return Err(kernel_error(self.request, code));
                    }
                    if self.expect == Expect::Done {
                        return Ok(Progress::Complete);
                    }
                    return Err(
                        self.malformed("NLMSG_DONE where an acknowledgement was due".into())
                    );
                }
                NLMSG_OVERRUN => self.overrun = true,
                _ => {
                    let Some(nfgenmsg) = payload.get(..NFGENMSG_LEN) else {
                        return Err(self.malformed(format!(
                            "message type {message_type:#06x} shorter than its nfgenmsg header"
                        )));
                    };
                    sink(RawMessage {
                        message_type,
                        flags,
                        family: nfgenmsg[0],
                        res_id: u16::from_be_bytes([nfgenmsg[2], nfgenmsg[3]]),
                        attributes: payload.get(NFGENMSG_LEN..).unwrap_or(&[]),
                        bytes,
                    })?;
                }
            }
        }
        Ok(Progress::More)
    }

    fn malformed(&self, detail: String) -> ConntrackError {
        ConntrackError::Malformed { request: self.request, detail }
    }
}

/// The `int error` at the start of an `NLMSG_ERROR` / `NLMSG_DONE` payload
/// (host order).
fn error_code(payload: &[u8]) -> Option<i32> {
    let bytes: [u8; 4] = payload.get(..4)?.try_into().ok()?;
    Some(i32::from_ne_bytes(bytes))
}

/// Collects the messages of one reply, decoded by `netlink-packet-netfilter`:
/// a [`ReplyReader`] whose sink keeps every message. For replies that are
/// small by nature (statistics, acknowledgements).
#[derive(Debug)]
pub struct ReplyCollector {
    reader: ReplyReader,
    /// The messages received so far, in order.
    pub replies: Vec<Reply>,
    /// Some message carried `NLM_F_DUMP_INTR`: the dump is not consistent.
    pub interrupted: bool,
    /// The kernel reported `NLMSG_OVERRUN`: messages were lost.
    pub overrun: bool,
    /// Messages skipped because their sequence number belongs to an earlier
    /// request on the same socket.
    pub stale: usize,
}

impl ReplyCollector {
    /// A collector for the reply to request `sequence` sent from `port`.
    pub fn new(request: &'static str, sequence: u32, port: u32, expect: Expect) -> Self {
        ReplyCollector {
            reader: ReplyReader::new(request, sequence, port, expect),
            replies: Vec::new(),
            interrupted: false,
            overrun: false,
            stale: 0,
        }
    }

    /// Takes in one received datagram; see [`ReplyReader::feed`]. Messages
    /// that `netlink-packet-netfilter` cannot decode are errors.
    pub fn feed(&mut self, datagram: &[u8]) -> Result<Progress, ConntrackError> {
        let request = self.reader.request;
        let replies = &mut self.replies;
        let progress = self.reader.feed(datagram, &mut |raw| {
            replies.push(decode_reply(request, raw)?);
            Ok(())
        });
        self.interrupted = self.reader.interrupted;
        self.overrun = self.reader.overrun;
        self.stale = self.reader.stale;
        progress
    }
}

/// The typed error for a negative errno from `NLMSG_ERROR` or `NLMSG_DONE`.
/// `EPERM`/`EACCES` mean the caller lacks `CAP_NET_ADMIN` in the namespace.
pub fn kernel_error(request: &'static str, code: i32) -> ConntrackError {
    let errno = code.saturating_abs();
    match errno {
        libc::EPERM | libc::EACCES => ConntrackError::PermissionDenied { fallback: String::new() },
        libc::EOPNOTSUPP => ConntrackError::Unavailable(format!(
            "the kernel does not support {request} (is nf_conntrack_netlink loaded?)"
        )),
        _ => ConntrackError::Kernel {
            request,
            errno,
            message: io::Error::from_raw_os_error(errno).to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::captures::*;

    fn stats_cpu_request() -> ConntrackMessage {
        ConntrackMessage::Other { message_type: IPCTNL_MSG_CT_GET_STATS_CPU, attributes: vec![] }
    }

    #[test]
    fn request_encodes_like_the_capture() {
        let bytes = encode_request(
            NetfilterProtoFamily::Unspec,
            stats_cpu_request(),
            NLM_F_REQUEST | NLM_F_DUMP,
            CPU_DUMP_SEQUENCE,
        );
        assert_eq!(bytes, CPU_DUMP_REQUEST);
    }

    #[test]
    fn dump_spanning_two_datagrams_completes_at_done() {
        let mut collector =
            ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT, Expect::Done);
        assert_eq!(collector.feed(&CPU_DUMP_DATAGRAM).unwrap(), Progress::More);
        // Both messages of the one datagram were taken.
        assert_eq!(collector.replies.len(), 2);
        assert_eq!(collector.replies[0].message.header.res_id, 0);
        assert_eq!(collector.replies[1].message.header.res_id, 1);
        assert_eq!(collector.feed(&CPU_DUMP_DONE).unwrap(), Progress::Complete);
        assert_eq!(collector.replies.len(), 2);
        assert!(!collector.interrupted);
        assert!(!collector.overrun);
    }

    #[test]
    fn messages_and_done_in_one_datagram() {
        let mut datagram = CPU_DUMP_DATAGRAM.to_vec();
        datagram.extend_from_slice(&CPU_DUMP_DONE);
        let mut collector =
            ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT, Expect::Done);
        assert_eq!(collector.feed(&datagram).unwrap(), Progress::Complete);
        assert_eq!(collector.replies.len(), 2);
    }

    #[test]
    fn dump_intr_on_any_message_is_detected() {
        // Derived from the capture: NLM_F_DUMP_INTR (0x10) set on message 2.
        let mut datagram = CPU_DUMP_DATAGRAM;
        datagram[CPU_DUMP_MESSAGE2_FLAGS] |= NLM_F_DUMP_INTR as u8;
        let mut collector =
            ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT, Expect::Done);
        collector.feed(&datagram).unwrap();
        assert_eq!(collector.feed(&CPU_DUMP_DONE).unwrap(), Progress::Complete);
        assert!(collector.interrupted);

        // ... and on the NLMSG_DONE alone.
        let mut done = CPU_DUMP_DONE;
        done[6] |= NLM_F_DUMP_INTR as u8;
        let mut collector =
            ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT, Expect::Done);
        collector.feed(&CPU_DUMP_DATAGRAM).unwrap();
        collector.feed(&done).unwrap();
        assert!(collector.interrupted);
    }

    #[test]
    fn eperm_is_permission_denied() {
        let mut collector =
            ReplyCollector::new("test", CPU_DUMP_SEQUENCE, EPERM_PORT, Expect::Done);
        let error = collector.feed(&EPERM_DATAGRAM).unwrap_err();
        assert!(matches!(error, ConntrackError::PermissionDenied { .. }), "{error:?}");
        assert!(error.to_string().contains("CAP_NET_ADMIN"));
    }

    #[test]
    fn ack_completes_a_request() {
        let mut collector = ReplyCollector::new("test", GLOBAL_SEQUENCE, GLOBAL_PORT, Expect::Ack);
        assert_eq!(collector.feed(&GLOBAL_DATAGRAM).unwrap(), Progress::More);
        assert_eq!(collector.feed(&GLOBAL_ACK).unwrap(), Progress::Complete);
        assert_eq!(collector.replies.len(), 1);
        assert_eq!(collector.replies[0].header.message_type, 0x0105);
    }

    #[test]
    fn ack_inside_a_dump_is_malformed() {
        let mut collector = ReplyCollector::new("test", GLOBAL_SEQUENCE, GLOBAL_PORT, Expect::Done);
        let error = collector.feed(&GLOBAL_ACK).unwrap_err();
        assert!(matches!(error, ConntrackError::Malformed { .. }), "{error:?}");
    }

    #[test]
    fn enoent_is_a_distinct_kernel_error() {
        let mut collector =
            ReplyCollector::new("delete", DELETE_SEQUENCE, DELETE_PORT, Expect::Ack);
        let error = collector.feed(&DELETE_ENOENT_DATAGRAM).unwrap_err();
        assert!(
            matches!(error, ConntrackError::Kernel { errno: libc::ENOENT, request: "delete", .. }),
            "{error:?}"
        );
    }

    #[test]
    fn other_sequence_numbers_are_skipped_as_stale() {
        let mut collector =
            ReplyCollector::new("test", CPU_DUMP_SEQUENCE + 1, CPU_DUMP_PORT, Expect::Done);
        assert_eq!(collector.feed(&CPU_DUMP_DATAGRAM).unwrap(), Progress::More);
        assert_eq!(collector.feed(&CPU_DUMP_DONE).unwrap(), Progress::More);
        assert!(collector.replies.is_empty());
        assert_eq!(collector.stale, 3);
    }

    #[test]
    fn another_port_is_malformed() {
        let mut collector =
            ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT + 1, Expect::Done);
        let error = collector.feed(&CPU_DUMP_DATAGRAM).unwrap_err();
        assert!(matches!(error, ConntrackError::Malformed { .. }), "{error:?}");
    }

    #[test]
    fn truncated_datagrams_are_errors_not_panics() {
        let mut datagram = CPU_DUMP_DATAGRAM.to_vec();
        datagram.extend_from_slice(&CPU_DUMP_DONE);
        for cut in 1..datagram.len() {
            let mut collector =
                ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT, Expect::Done);
            // Cut inside a message: that message's length field points past
            // the end, which must be an error. Cuts at a message boundary
            // leave whole messages and an unfinished dump.
            match collector.feed(&datagram[..cut]) {
                Err(ConntrackError::Malformed { .. }) => assert!(cut % 100 != 0),
                Ok(Progress::More) => assert!(cut == 100 || cut == 200, "cut {cut}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        // A deterministic byte soup (xorshift), plus hand-picked nasties:
        // a zero length, a length below the header size, a huge length.
        let mut state = 0x2545_f491_u32;
        for round in 0..2000 {
            let size = (round % 97) + 1;
            let bytes = crate::testutil::pseudo_random_bytes(&mut state, size as usize);
            let mut collector = ReplyCollector::new("test", 0, 0, Expect::Done);
            let _ = collector.feed(&bytes);
        }
        for length in [0u32, 4, 15, 0xffff_ffff] {
            let mut bytes = CPU_DUMP_DONE;
            bytes[..4].copy_from_slice(&length.to_ne_bytes());
            let mut collector =
                ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT, Expect::Done);
            assert!(collector.feed(&bytes).is_err(), "length {length}");
        }
    }

    #[test]
    fn a_silent_kernel_is_a_timeout() {
        // Nothing was sent, so nothing will come: the receive must give up
        // instead of hanging.
        let mut socket = CtnetlinkSocket::open().unwrap();
        let started = Instant::now();
        assert!(matches!(socket.recv(Duration::from_millis(20)).unwrap(), Received::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(2));
        // Through an exchange: the receive timeout names itself ...
        socket.set_recv_timeout(Duration::from_millis(20)).unwrap();
        let error = exchange(
            &mut Silent(&mut socket),
            "silence",
            1,
            &[],
            Expect::Done,
            Deadline::after(Duration::from_secs(5)),
            Duration::from_millis(20),
            &mut |_| Ok(()),
        )
        .unwrap_err();
        assert!(matches!(error, ConntrackError::Timeout { request: "silence", .. }), "{error:?}");
        assert!(error.to_string().contains("20ms"), "{error}");
        // ... and a deadline shorter than the receive timeout cuts the wait.
        let started = Instant::now();
        let error = exchange(
            &mut Silent(&mut socket),
            "silence",
            1,
            &[],
            Expect::Done,
            Deadline::after(Duration::from_millis(50)),
            Duration::from_secs(5),
            &mut |_| Ok(()),
        )
        .unwrap_err();
        assert!(matches!(error, ConntrackError::Deadline { request: "silence", .. }), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    /// The real socket, but sending nothing.
    struct Silent<'a>(&'a mut CtnetlinkSocket);

    impl Transport for Silent<'_> {
        fn port(&self) -> u32 {
            self.0.port()
        }
        fn send(&mut self, _: &[u8]) -> Result<(), ConntrackError> {
            Ok(())
        }
        fn recv(&mut self, wait: Duration) -> Result<Received<'_>, ConntrackError> {
            self.0.recv_datagram(wait)
        }
        fn drain(&mut self) {}
    }

    #[test]
    fn kernel_error_mapping() {
        assert!(matches!(
            kernel_error("x", -libc::EACCES),
            ConntrackError::PermissionDenied { .. }
        ));
        assert!(matches!(kernel_error("x", -libc::EOPNOTSUPP), ConntrackError::Unavailable(_)));
        let busy = kernel_error("x", -libc::EBUSY);
        assert!(matches!(busy, ConntrackError::Kernel { errno: libc::EBUSY, .. }), "{busy:?}");
    }

    #[test]
    fn next_wait_is_capped_by_the_deadline() {
        let now = Instant::now();
        let second = Duration::from_secs(1);
        assert_eq!(next_wait(now, now + 10 * second, second), Some(second));
        assert_eq!(next_wait(now, now + second / 4, second), Some(second / 4));
        assert_eq!(next_wait(now, now, second), None);
        assert_eq!(next_wait(now + second, now, second), None);
    }

    /// One scripted receive.
    #[derive(Clone)]
    enum Step {
        Datagram(Vec<u8>),
        Overrun,
    }

    /// A kernel stand-in that answers each request with the next script,
    /// rewriting the sequence numbers of captured datagrams to the
    /// request's (as the kernel echoes them); after the scripts run out it
    /// trickles `trickle` forever, one datagram per `pace`.
    struct Scripted {
        port: u32,
        scripts: std::collections::VecDeque<Vec<Step>>,
        current: std::collections::VecDeque<Step>,
        sequence: u32,
        buffer: Vec<u8>,
        requests: usize,
        drained: usize,
        trickle: Option<(Vec<u8>, Duration)>,
    }

    impl Scripted {
        fn new(port: u32, scripts: Vec<Vec<Step>>) -> Self {
            Scripted {
                port,
                scripts: scripts.into(),
                current: Default::default(),
                sequence: 0,
                buffer: Vec::new(),
                requests: 0,
                drained: 0,
                trickle: None,
            }
        }
    }

    /// Writes `sequence` into every message of `datagram`.
    fn with_sequence(datagram: &[u8], sequence: u32) -> Vec<u8> {
        let mut bytes = datagram.to_vec();
        let mut offset = 0;
        while offset + 16 <= bytes.len() {
            let length = u32::from_ne_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
            bytes[offset + 8..offset + 12].copy_from_slice(&sequence.to_ne_bytes());
            offset += (length + 3) & !3;
            if length == 0 {
                break;
            }
        }
        bytes
    }

    impl Transport for Scripted {
        fn port(&self) -> u32 {
            self.port
        }
        fn send(&mut self, bytes: &[u8]) -> Result<(), ConntrackError> {
            self.sequence = u32::from_ne_bytes(bytes[8..12].try_into().unwrap());
            self.requests += 1;
            self.current = self.scripts.pop_front().unwrap_or_default().into();
            Ok(())
        }
        fn recv(&mut self, wait: Duration) -> Result<Received<'_>, ConntrackError> {
            match self.current.pop_front() {
                Some(Step::Datagram(bytes)) => {
                    self.buffer = with_sequence(&bytes, self.sequence);
                    Ok(Received::Datagram(&self.buffer))
                }
                Some(Step::Overrun) => Ok(Received::Overrun),
                None => match &self.trickle {
                    Some((bytes, pace)) if *pace <= wait => {
                        std::thread::sleep(*pace);
                        self.buffer = with_sequence(bytes, self.sequence);
                        Ok(Received::Datagram(&self.buffer))
                    }
                    _ => {
                        std::thread::sleep(wait);
                        Ok(Received::TimedOut)
                    }
                },
            }
        }
        fn drain(&mut self) {
            self.drained += 1;
            self.current.clear();
        }
    }

    fn entries_dump() -> Vec<Step> {
        vec![
            Step::Datagram(ENTRIES_FILTERED_DATAGRAM.to_vec()),
            Step::Datagram(ENTRIES_FILTERED_DONE.to_vec()),
        ]
    }

    fn interrupted_dump() -> Vec<Step> {
        // Derived from the capture: NLM_F_DUMP_INTR on entry 2.
        let mut datagram = ENTRIES_FILTERED_DATAGRAM;
        datagram[ENTRIES_FILTERED_MESSAGE2_FLAGS] |= NLM_F_DUMP_INTR as u8;
        vec![Step::Datagram(datagram.to_vec()), Step::Datagram(ENTRIES_FILTERED_DONE.to_vec())]
    }

    /// Runs a streaming dump over `transport`, recording what the consumer
    /// saw: `M` per message, `R<attempt>` per restart.
    fn stream(
        transport: &mut Scripted,
        deadline: Duration,
    ) -> (Result<DumpSummary, ConntrackError>, Vec<String>) {
        let mut seen = Vec::new();
        let mut sequence = 7;
        let result = dump_with(
            transport,
            &mut sequence,
            "test dump",
            NetfilterProtoFamily::IPv4,
            &ConntrackMessage::Get(vec![]),
            Deadline::after(deadline),
            Duration::from_secs(1),
            |event| {
                seen.push(match event {
                    DumpEvent::Restart { attempt, .. } => format!("R{attempt}"),
                    DumpEvent::Message(raw) => {
                        assert_eq!(raw.family, 2);
                        "M".to_string()
                    }
                });
                Ok(())
            },
        );
        (result, seen)
    }

    #[test]
    fn a_clean_streamed_dump_hands_over_each_entry_once() {
        let mut transport = Scripted::new(ENTRIES_FILTERED_PORT, vec![entries_dump()]);
        let (result, seen) = stream(&mut transport, Duration::from_secs(5));
        assert_eq!(result.unwrap(), DumpSummary { attempts: 1, messages: 2 });
        assert_eq!(seen, ["M", "M"]);
    }

    #[test]
    fn an_interrupted_dump_restarts_and_the_consumer_is_told_to_reset() {
        let mut transport =
            Scripted::new(ENTRIES_FILTERED_PORT, vec![interrupted_dump(), entries_dump()]);
        let (result, seen) = stream(&mut transport, Duration::from_secs(5));
        assert_eq!(result.unwrap(), DumpSummary { attempts: 2, messages: 2 });
        // The first attempt's two entries, then the reset, then the new ones.
        assert_eq!(seen, ["M", "M", "R2", "M", "M"]);
        assert_eq!(transport.requests, 2);
    }

    #[test]
    fn an_overrun_dump_is_drained_and_restarted() {
        // NLMSG_OVERRUN (type 4) from the kernel, derived from the DONE
        // capture by changing its type.
        let mut overrun_message = ENTRIES_FILTERED_DONE;
        overrun_message[4] = 4;
        let truncated = vec![Step::Datagram(ENTRIES_FILTERED_DATAGRAM.to_vec()), Step::Overrun];
        let overrun = vec![
            Step::Datagram(overrun_message.to_vec()),
            Step::Datagram(ENTRIES_FILTERED_DATAGRAM.to_vec()),
            Step::Datagram(ENTRIES_FILTERED_DONE.to_vec()),
        ];
        let mut transport =
            Scripted::new(ENTRIES_FILTERED_PORT, vec![truncated, overrun, entries_dump()]);
        let (result, seen) = stream(&mut transport, Duration::from_secs(5));
        assert_eq!(result.unwrap().attempts, 3);
        assert_eq!(seen, ["M", "M", "R2", "M", "M", "R3", "M", "M"]);
        assert_eq!(transport.drained, 2);
    }

    #[test]
    fn a_dump_that_never_completes_gives_up_with_a_typed_error() {
        let mut transport = Scripted::new(
            ENTRIES_FILTERED_PORT,
            vec![interrupted_dump(), interrupted_dump(), interrupted_dump(), entries_dump()],
        );
        let (result, seen) = stream(&mut transport, Duration::from_secs(5));
        let error = result.unwrap_err();
        assert!(
            matches!(error, ConntrackError::DumpInconsistent { attempts: DUMP_ATTEMPTS, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("no partial result"), "{error}");
        assert_eq!(transport.requests, DUMP_ATTEMPTS as usize);
        // Every attempt's entries were announced void before the next one.
        assert_eq!(seen, ["M", "M", "R2", "M", "M", "R3", "M", "M"]);
    }

    #[test]
    fn a_trickling_dump_ends_at_the_deadline() {
        // Entries keep coming, each well within the receive timeout, and
        // NLMSG_DONE never does.
        let mut transport = Scripted::new(ENTRIES_FILTERED_PORT, vec![vec![]]);
        transport.trickle = Some((ENTRIES_FILTERED_DATAGRAM.to_vec(), Duration::from_millis(10)));
        let started = Instant::now();
        let (result, seen) = stream(&mut transport, Duration::from_millis(200));
        let error = result.unwrap_err();
        assert!(
            matches!(error, ConntrackError::Deadline { request: "test dump", .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("200ms"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert!(seen.len() > 2, "entries did trickle in: {seen:?}");
    }

    #[test]
    fn a_consumer_error_stops_the_dump() {
        let mut transport = Scripted::new(ENTRIES_FILTERED_PORT, vec![entries_dump()]);
        let mut sequence = 1;
        let error = dump_with(
            &mut transport,
            &mut sequence,
            "test dump",
            NetfilterProtoFamily::IPv4,
            &ConntrackMessage::Get(vec![]),
            Deadline::after(Duration::from_secs(5)),
            Duration::from_secs(1),
            |_| Err(ConntrackError::Malformed { request: "test dump", detail: "stop".into() }),
        )
        .unwrap_err();
        assert!(matches!(error, ConntrackError::Malformed { .. }), "{error:?}");
        assert_eq!(transport.requests, 1);
    }

    #[test]
    fn an_error_at_dump_start_is_the_kernels() {
        // The kernel refuses a dump request with NLMSG_ERROR (here EPERM,
        // the capture of an unprivileged dump).
        let mut transport =
            Scripted::new(EPERM_PORT, vec![vec![Step::Datagram(EPERM_DATAGRAM.to_vec())]]);
        let (result, seen) = stream(&mut transport, Duration::from_secs(5));
        assert!(matches!(result, Err(ConntrackError::PermissionDenied { .. })), "{result:?}");
        assert!(seen.is_empty());
    }
}
