//! One exchange with the kernel (a request and its whole reply) over any
//! transport (`Transport`), and the dump loop on top of it: restarts on
//! `NLM_F_DUMP_INTR` and overruns, an overall deadline, the consumer told
//! to discard what it took before each restart.

use std::time::{Duration, Instant};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};

use super::reply::{Expect, Progress, RawMessage, ReplyReader};
use super::socket::DUMP_ATTEMPTS;
use super::{NetfilterError, NFNETLINK_V0};

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
/// nfnetlink socket, or a scripted stand-in in the tests.
pub(crate) trait Transport {
    /// The netlink port replies are addressed to.
    fn port(&self) -> u32;
    /// Sends one request datagram to the kernel.
    fn send(&mut self, bytes: &[u8]) -> Result<(), NetfilterError>;
    /// Receives one datagram, waiting at most `wait`.
    fn recv(&mut self, wait: Duration) -> Result<Received<'_>, NetfilterError>;
    /// Discards whatever is queued.
    fn drain(&mut self);
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
pub(crate) fn exchange<T: Transport, E: From<NetfilterError>>(
    transport: &mut T,
    request: &'static str,
    sequence: u32,
    bytes: &[u8],
    expect: Expect,
    deadline: Deadline,
    recv_timeout: Duration,
    sink: &mut dyn FnMut(RawMessage<'_>) -> Result<(), E>,
) -> Result<Exchange, E> {
    transport.send(bytes)?;
    let mut reader = ReplyReader::new(request, sequence, transport.port(), expect);
    loop {
        let Some(wait) = next_wait(Instant::now(), deadline.at, recv_timeout) else {
            return Err(NetfilterError::Deadline { request, after: deadline.budget }.into());
        };
        let datagram = match transport.recv(wait)? {
            Received::Datagram(datagram) => datagram,
            Received::Overrun => return Ok(Exchange::Overrun),
            Received::NotFromKernel => continue,
            // Waiting less than the receive timeout means the deadline cut
            // the wait short.
            Received::TimedOut if wait < recv_timeout => {
                return Err(NetfilterError::Deadline { request, after: deadline.budget }.into())
            }
            Received::TimedOut => {
                return Err(NetfilterError::Timeout { request, after: recv_timeout }.into())
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

/// The streaming dump over any transport: see [`super::NfnetlinkSocket::dump_each`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn dump_with<T: Transport, M, F, E>(
    transport: &mut T,
    next_sequence: &mut u32,
    request: &'static str,
    family: NetfilterProtoFamily,
    message: &M,
    deadline: Deadline,
    recv_timeout: Duration,
    mut on_event: F,
) -> Result<DumpSummary, E>
where
    M: Clone + Into<NetfilterMessageInner>,
    F: FnMut(DumpEvent<'_>) -> Result<(), E>,
    E: From<NetfilterError>,
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
    Err(NetfilterError::DumpInconsistent { request, attempts: DUMP_ATTEMPTS }.into())
}

/// Builds the bytes of an nfnetlink request (ctnetlink, or any other
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
