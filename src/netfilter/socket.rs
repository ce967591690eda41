//! An nfnetlink socket (`NETLINK_NETFILTER`, any subsystem: ctnetlink for
//! `conntrack`, nf_tables for [`super::nf_tables`]): one request,
//! its whole (possibly multipart) reply, either collected
//! ([`NfnetlinkSocket::dump`]) or streamed message by message
//! ([`NfnetlinkSocket::dump_each`]) so that memory does not grow with the
//! conntrack table.
//!
//! Requests are built and, for the collected form, replies parsed with
//! `netlink-packet-netfilter` ([`NetfilterMessage`]); this module adds what
//! the crate leaves to the caller: sequence and port checks, `NLMSG_DONE` /
//! `NLMSG_ERROR` handling, `NLM_F_DUMP_INTR` and overrun detection with
//! restarts, a receive timeout, and an overall deadline per exchange.
//!
//! The socket lives in the network namespace of the thread that opened it,
//! for its whole life (see [`crate::netns`]).

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};
#[cfg(doc)]
use netlink_packet_netfilter::NetfilterMessage;
use netlink_packet_netfilter::{NetfilterMessageInner, NetfilterProtoFamily};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
use nix::sys::time::TimeVal;

use super::dump::{
    dump_with, encode_request, exchange, AckOutcome, Deadline, DumpEvent, DumpSummary, Exchange,
    Received, Transport,
};
use super::reply::{decode_reply, Expect, RawMessage, Reply};
use super::NetfilterError;

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
/// giving up with [`NetfilterError::DumpInconsistent`].
pub const DUMP_ATTEMPTS: u32 = 3;
/// Starting receive buffer. Why 64 KiB: the kernel fills dump datagrams up
/// to 32 KiB (more with a large `SO_RCVBUF`); the buffer still grows when a
/// datagram was larger (see `recv_datagram`).
const RECV_BUFFER_LEN: usize = 64 * 1024;
/// Upper bound on datagrams read while draining an abandoned dump.
const DRAIN_LIMIT: usize = 100_000;

/// A `NETLINK_NETFILTER` socket bound to a kernel-assigned port.
#[derive(Debug)]
pub struct NfnetlinkSocket {
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

impl NfnetlinkSocket {
    /// Opens and binds a socket in the calling thread's network namespace,
    /// with a [`RECV_TIMEOUT`] receive timeout.
    pub fn open() -> Result<Self, NetfilterError> {
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(|source| {
            if source.raw_os_error() == Some(libc::EPROTONOSUPPORT) {
                NetfilterError::Unavailable(
                    "the kernel has no nfnetlink (NETLINK_NETFILTER sockets are not supported)"
                        .into(),
                )
            } else {
                NetfilterError::Socket { op: "open", source }
            }
        })?;
        let address =
            socket.bind_auto().map_err(|source| NetfilterError::Socket { op: "bind", source })?;
        // Why a time-derived start: a fresh socket gets a fresh port, so any
        // value works; a varying one makes captures easy to tell apart.
        let next_sequence = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs() as u32)
            .unwrap_or(1);
        let mut opened = NfnetlinkSocket {
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
    /// [`NetfilterError::Timeout`]. A zero duration would mean "wait
    /// forever" to the kernel, so it is raised to 1 ms.
    pub fn set_recv_timeout(&mut self, timeout: Duration) -> Result<(), NetfilterError> {
        let timeout = timeout.max(Duration::from_millis(1));
        self.set_socket_timeout(timeout)?;
        self.recv_timeout = timeout;
        Ok(())
    }

    fn set_socket_timeout(&mut self, timeout: Duration) -> Result<(), NetfilterError> {
        let timeout = timeout.max(Duration::from_millis(1));
        if timeout == self.socket_timeout {
            return Ok(());
        }
        let value = TimeVal::new(timeout.as_secs() as _, timeout.subsec_micros() as _);
        setsockopt(&self.socket, ReceiveTimeout, &value).map_err(|errno| {
            NetfilterError::Socket { op: "setsockopt(SO_RCVTIMEO)", source: io::Error::from(errno) }
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
    /// [`NetfilterError::DumpInconsistent`]: a partial dump is never
    /// returned. `request` names the request in errors.
    pub fn dump<M: Clone + Into<NetfilterMessageInner>>(
        &mut self,
        request: &'static str,
        family: NetfilterProtoFamily,
        message: M,
    ) -> Result<Vec<Reply>, NetfilterError> {
        let mut replies = Vec::new();
        self.dump_each::<_, _, NetfilterError>(
            request,
            family,
            &message,
            DUMP_DEADLINE,
            |event| match event {
                DumpEvent::Restart { .. } => {
                    replies.clear();
                    Ok(())
                }
                DumpEvent::Message(raw) => {
                    replies.push(decode_reply(request, raw)?);
                    Ok(())
                }
            },
        )?;
        Ok(replies)
    }

    /// Sends `message` with `NLM_F_DUMP` and hands every message of the
    /// dump to `on_event` as it arrives, without keeping any. An interrupted
    /// (`NLM_F_DUMP_INTR`) or overrun (`ENOBUFS`, `NLMSG_OVERRUN`, a
    /// truncated datagram) dump is started again up to [`DUMP_ATTEMPTS`]
    /// times; before each new attempt `on_event` gets
    /// [`DumpEvent::Restart`] and must discard what it took so far. After
    /// the last attempt: [`NetfilterError::DumpInconsistent`]. The whole
    /// dump, restarts included, must finish within `deadline`, else
    /// [`NetfilterError::Deadline`]. An error returned by `on_event` stops
    /// the dump and is returned (the socket stays usable); the socket's own
    /// errors reach the caller as `on_event`'s error type `E`.
    pub fn dump_each<M, F, E>(
        &mut self,
        request: &'static str,
        family: NetfilterProtoFamily,
        message: &M,
        deadline: Duration,
        on_event: F,
    ) -> Result<DumpSummary, E>
    where
        M: Clone + Into<NetfilterMessageInner>,
        F: FnMut(DumpEvent<'_>) -> Result<(), E>,
        E: From<NetfilterError>,
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
    ) -> Result<Vec<Reply>, NetfilterError> {
        let sequence = self.take_sequence();
        let bytes = encode_request(family, message, NLM_F_REQUEST | NLM_F_ACK, sequence);
        let mut replies = Vec::new();
        let recv_timeout = self.recv_timeout;
        let result = exchange::<_, NetfilterError>(
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
                Err(NetfilterError::DumpInconsistent { request, attempts: 1 })
            }
        }
    }

    /// [`Self::request`] with every message of the reply handed to `sink`
    /// as received, not decoded: for the nf_tables GETs of one object
    /// (one set, one set element), whose messages ctdiag walks itself.
    pub fn request_each(
        &mut self,
        request: &'static str,
        family: NetfilterProtoFamily,
        message: impl Into<NetfilterMessageInner>,
        sink: &mut dyn FnMut(RawMessage<'_>) -> Result<(), NetfilterError>,
    ) -> Result<(), NetfilterError> {
        let sequence = self.take_sequence();
        let bytes = encode_request(family, message, NLM_F_REQUEST | NLM_F_ACK, sequence);
        let recv_timeout = self.recv_timeout;
        let result = exchange::<_, NetfilterError>(
            self,
            request,
            sequence,
            &bytes,
            Expect::Ack,
            Deadline::after(REQUEST_DEADLINE),
            recv_timeout,
            sink,
        );
        self.finish_exchange(&result);
        match result? {
            Exchange::Complete { .. } => Ok(()),
            Exchange::Overrun => {
                self.drain();
                Err(NetfilterError::DumpInconsistent { request, attempts: 1 })
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
        message: impl Into<NetfilterMessageInner>,
    ) -> Result<AckOutcome, NetfilterError> {
        match self.request(request, family, message) {
            Ok(_) => Ok(AckOutcome::Acknowledged),
            Err(NetfilterError::Kernel { errno: libc::ENOENT, .. }) => Ok(AckOutcome::NotFound),
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
    fn finish_exchange<T, E>(&mut self, result: &Result<T, E>) {
        if result.is_err() {
            self.drain();
        }
        let _ = self.set_socket_timeout(self.recv_timeout);
    }

    /// Receives one datagram into `self.buffer`. Why no peek at its size
    /// first: that is one more system call per datagram, and a rule dump
    /// of one chain is often one datagram (a node with 10,000 Services has
    /// 40,000 such chains). A datagram larger than the buffer (the kernel
    /// caps dump datagrams at 32 KiB, the buffer holds 64) is cut: it is
    /// reported as an overrun (a dump starts over) and the buffer grows to
    /// its size (`MSG_TRUNC` returns the real size), so the next fits.
    pub(super) fn recv_datagram(&mut self, wait: Duration) -> Result<Received<'_>, NetfilterError> {
        self.set_socket_timeout(wait)?;
        loop {
            self.buffer.clear();
            self.buffer.reserve(RECV_BUFFER_LEN);
            let received = self.socket.recv_from(&mut self.buffer, libc::MSG_TRUNC);
            return match received {
                Ok((length, _)) if length > self.buffer.len() => {
                    self.buffer.reserve(length);
                    Ok(Received::Overrun)
                }
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

impl AsRawFd for NfnetlinkSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

impl Transport for NfnetlinkSocket {
    fn port(&self) -> u32 {
        self.port
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), NetfilterError> {
        let kernel = SocketAddr::new(0, 0);
        self.socket
            .send_to(bytes, &kernel, 0)
            .map(|_| ())
            .map_err(|source| NetfilterError::Socket { op: "send", source })
    }

    fn recv(&mut self, wait: Duration) -> Result<Received<'_>, NetfilterError> {
        self.recv_datagram(wait)
    }

    fn drain(&mut self) {
        NfnetlinkSocket::drain(self)
    }
}

enum RecvFailure {
    Retry,
    Overrun,
    TimedOut,
    Fatal(NetfilterError),
}

fn classify_recv_error(error: io::Error) -> RecvFailure {
    match error.raw_os_error() {
        Some(libc::EINTR) => RecvFailure::Retry,
        Some(libc::ENOBUFS) => RecvFailure::Overrun,
        Some(libc::EAGAIN) => RecvFailure::TimedOut,
        _ => RecvFailure::Fatal(NetfilterError::Socket { op: "recv", source: error }),
    }
}
