//! A ctnetlink socket: one request, its whole (possibly multipart) reply.
//!
//! Messages are built and parsed with `netlink-packet-netfilter`
//! ([`NetfilterMessage`], [`ConntrackMessage`]); this module adds what the
//! crate leaves to the caller: sequence and port checks, `NLMSG_DONE` /
//! `NLMSG_ERROR` handling, `NLM_F_DUMP_INTR` and `ENOBUFS` detection with
//! retries, and a receive timeout.
//!
//! The socket lives in the network namespace of the thread that opened it,
//! for its whole life (see [`crate::netns`]).

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_netfilter::conntrack::ConntrackMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
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

/// How long one `recv` may wait before the kernel counts as silent.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);
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
    recv_timeout: Duration,
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
        };
        opened.set_recv_timeout(RECV_TIMEOUT)?;
        Ok(opened)
    }

    /// Changes how long one `recv` may wait (`SO_RCVTIMEO`) before
    /// [`ConntrackError::Timeout`]. A zero duration would mean "wait
    /// forever" to the kernel, so it is raised to 1 ms.
    pub fn set_recv_timeout(&mut self, timeout: Duration) -> Result<(), ConntrackError> {
        let timeout = timeout.max(Duration::from_millis(1));
        let value = TimeVal::new(timeout.as_secs() as _, timeout.subsec_micros() as _);
        setsockopt(&self.socket, ReceiveTimeout, &value).map_err(|errno| {
            ConntrackError::Socket { op: "setsockopt(SO_RCVTIMEO)", source: io::Error::from(errno) }
        })?;
        self.recv_timeout = timeout;
        Ok(())
    }

    /// The netlink port id the kernel assigned to this socket.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Sends `message` with `NLM_F_DUMP` and returns every message of the
    /// dump, in order. A dump that was interrupted (`NLM_F_DUMP_INTR` on any
    /// message) or overrun (`ENOBUFS`, `NLMSG_OVERRUN`, a truncated
    /// datagram) is started again, up to [`DUMP_ATTEMPTS`] times, then
    /// [`ConntrackError::DumpInconsistent`]: a partial dump is never
    /// returned. `request` names the request in errors.
    pub fn dump(
        &mut self,
        request: &'static str,
        family: NetfilterProtoFamily,
        message: ConntrackMessage,
    ) -> Result<Vec<Reply>, ConntrackError> {
        for _attempt in 0..DUMP_ATTEMPTS {
            match self.exchange(request, family, &message, NLM_F_DUMP, Expect::Done)? {
                Exchange::Complete(collector) if !collector.interrupted => {
                    return Ok(collector.replies)
                }
                // Interrupted: the dump ran to NLMSG_DONE, nothing is left
                // to drain. Overrun: the rest of the old dump may still come.
                Exchange::Complete(_) => {}
                Exchange::Overrun => self.drain(),
            }
        }
        Err(ConntrackError::DumpInconsistent { request, attempts: DUMP_ATTEMPTS })
    }

    /// Sends `message` with `NLM_F_ACK` (no dump) and returns the messages
    /// the kernel sent before its acknowledgement (for
    /// `IPCTNL_MSG_CT_GET_STATS`: the one reply).
    pub fn request(
        &mut self,
        request: &'static str,
        family: NetfilterProtoFamily,
        message: ConntrackMessage,
    ) -> Result<Vec<Reply>, ConntrackError> {
        match self.exchange(request, family, &message, NLM_F_ACK, Expect::Ack)? {
            Exchange::Complete(collector) => Ok(collector.replies),
            Exchange::Overrun => Err(ConntrackError::DumpInconsistent { request, attempts: 1 }),
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

    fn exchange(
        &mut self,
        request: &'static str,
        family: NetfilterProtoFamily,
        message: &ConntrackMessage,
        extra_flags: u16,
        expect: Expect,
    ) -> Result<Exchange, ConntrackError> {
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        let bytes = encode_request(family, message.clone(), NLM_F_REQUEST | extra_flags, sequence);
        let kernel = SocketAddr::new(0, 0);
        self.socket
            .send_to(&bytes, &kernel, 0)
            .map_err(|source| ConntrackError::Socket { op: "send", source })?;

        let mut collector = ReplyCollector::new(request, sequence, self.port, expect);
        loop {
            let length = match self.recv_datagram(request)? {
                Received::Datagram(length) => length,
                Received::Overrun => return Ok(Exchange::Overrun),
                Received::NotFromKernel => continue,
            };
            let datagram = self.buffer.get(..length).unwrap_or(&[]);
            match collector.feed(datagram)? {
                Progress::More => {}
                Progress::Complete if collector.overrun => return Ok(Exchange::Overrun),
                Progress::Complete => return Ok(Exchange::Complete(collector)),
            }
        }
    }

    /// Receives one datagram into `self.buffer`, growing it first when a
    /// peek says the datagram would not fit.
    fn recv_datagram(&mut self, request: &'static str) -> Result<Received, ConntrackError> {
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
                Err(error) => match classify_recv_error(request, self.recv_timeout, error) {
                    RecvFailure::Retry => continue,
                    RecvFailure::Overrun => return Ok(Received::Overrun),
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
                Ok((length, _)) => Ok(Received::Datagram(length)),
                Err(error) => match classify_recv_error(request, self.recv_timeout, error) {
                    RecvFailure::Retry => continue,
                    RecvFailure::Overrun => Ok(Received::Overrun),
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

impl AsRawFd for CtnetlinkSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

enum Received {
    Datagram(usize),
    Overrun,
    NotFromKernel,
}

enum RecvFailure {
    Retry,
    Overrun,
    Fatal(ConntrackError),
}

fn classify_recv_error(request: &'static str, after: Duration, error: io::Error) -> RecvFailure {
    match error.raw_os_error() {
        Some(libc::EINTR) => RecvFailure::Retry,
        Some(libc::ENOBUFS) => RecvFailure::Overrun,
        Some(libc::EAGAIN) => RecvFailure::Fatal(ConntrackError::Timeout { request, after }),
        _ => RecvFailure::Fatal(ConntrackError::Socket { op: "recv", source: error }),
    }
}

enum Exchange {
    Complete(ReplyCollector),
    Overrun,
}

/// Builds the bytes of a ctnetlink request: nlmsghdr, nfgenmsg (version 0,
/// res_id 0) and the message's attributes.
pub fn encode_request(
    family: NetfilterProtoFamily,
    message: ConntrackMessage,
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

/// Collects the messages of one reply from the datagrams the socket
/// receives; the socket-free half of [`CtnetlinkSocket`], so it can be
/// tested on captured bytes.
#[derive(Debug)]
pub struct ReplyCollector {
    request: &'static str,
    sequence: u32,
    port: u32,
    expect: Expect,
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
            request,
            sequence,
            port,
            expect,
            replies: Vec::new(),
            interrupted: false,
            overrun: false,
            stale: 0,
        }
    }

    /// Takes in one received datagram (one or more netlink messages).
    /// Returns [`Progress::Complete`] at `NLMSG_DONE` (dump) or at the
    /// acknowledgement (`Expect::Ack`); an error code from the kernel, or
    /// bytes that do not decode, are errors.
    pub fn feed(&mut self, datagram: &[u8]) -> Result<Progress, ConntrackError> {
        let mut offset = 0;
        while offset < datagram.len() {
            let rest = datagram.get(offset..).unwrap_or(&[]);
            let length = NetlinkBuffer::new_checked(rest)
                .map_err(|error| self.malformed(format!("at byte {offset}: {error}")))?
                .length() as usize;
            let bytes = rest.get(..length).unwrap_or(rest);
            let message = NetlinkMessage::<NetfilterMessage>::deserialize(bytes)
                .map_err(|error| self.malformed(format!("at byte {offset}: {error}")))?;
            // Messages are 4-byte aligned within a datagram (NLMSG_ALIGN).
            offset = offset.saturating_add(length.saturating_add(3) & !3);

            if message.header.sequence_number != self.sequence {
                // Left over from an abandoned earlier request on this socket.
                self.stale += 1;
                continue;
            }
            if message.header.port_number != self.port {
                return Err(self.malformed(format!(
                    "message for port {} on the socket of port {}",
                    message.header.port_number, self.port
                )));
            }
            if message.header.flags & NLM_F_DUMP_INTR != 0 {
                self.interrupted = true;
            }
            match message.payload {
                NetlinkPayload::InnerMessage(inner) => {
                    self.replies.push(Reply { header: message.header, message: inner })
                }
                NetlinkPayload::Done(done) => {
                    if done.code != 0 {
                        return Err(kernel_error(self.request, done.code));
                    }
                    if self.expect == Expect::Done {
                        return Ok(Progress::Complete);
                    }
                    return Err(
                        self.malformed("NLMSG_DONE where an acknowledgement was due".into())
                    );
                }
                NetlinkPayload::Error(error) => match error.code {
                    Some(code) => return Err(kernel_error(self.request, code.get())),
                    None if self.expect == Expect::Ack => return Ok(Progress::Complete),
                    None => {
                        return Err(
                            self.malformed("an acknowledgement where a dump was expected".into())
                        )
                    }
                },
                NetlinkPayload::Overrun(_) => self.overrun = true,
                NetlinkPayload::Noop => {}
                _ => {}
            }
        }
        Ok(Progress::More)
    }

    fn malformed(&self, detail: String) -> ConntrackError {
        ConntrackError::Malformed { request: self.request, detail }
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
        // with the typed error instead of hanging.
        let mut socket = CtnetlinkSocket::open().unwrap();
        socket.set_recv_timeout(Duration::from_millis(20)).unwrap();
        let error = match socket.recv_datagram("silence") {
            Err(error) => error,
            Ok(_) => panic!("received something without asking"),
        };
        assert!(matches!(error, ConntrackError::Timeout { request: "silence", .. }), "{error:?}");
        assert!(error.to_string().contains("20ms"), "{error}");
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
}
