//! The messages of one reply: splitting received datagrams into netlink
//! messages and checking them (sequence number, port, `NLMSG_DONE` /
//! `NLMSG_ERROR`, `NLM_F_DUMP_INTR`, `NLMSG_OVERRUN`), socket-free so that
//! it can be tested on captured bytes.

use std::io;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLMSG_ALIGNTO, NLMSG_DONE,
    NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_DUMP_INTR,
};
use netlink_packet_netfilter::NetfilterMessage;

use super::{NetfilterError, NFGENMSG_LEN};

/// One message of a reply: the netlink header (flags such as
/// `NLM_F_DUMP_FILTERED` live there) and the decoded netfilter message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The netlink header as received.
    pub header: NetlinkHeader,
    /// The nfgenmsg header and the netfilter message.
    pub message: NetfilterMessage,
}

/// One nfnetlink message of a reply as received, not decoded further: what
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

/// Decodes one raw message with `netlink-packet-netfilter`.
pub(crate) fn decode_reply(
    request: &'static str,
    raw: RawMessage<'_>,
) -> Result<Reply, NetfilterError> {
    let message = NetlinkMessage::<NetfilterMessage>::deserialize(raw.bytes)
        .map_err(|error| NetfilterError::Malformed { request, detail: error.to_string() })?;
    match message.payload {
        NetlinkPayload::InnerMessage(inner) => Ok(Reply { header: message.header, message: inner }),
        // Why "ctnetlink" for any subsystem: the text users have seen.
        _ => Err(NetfilterError::Malformed {
            request,
            detail: format!("message type {:#06x} is not a ctnetlink message", raw.message_type),
        }),
    }
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
/// `NLMSG_OVERRUN`. The socket-free core of [`super::NfnetlinkSocket`], so it can
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
    /// hands each nfnetlink message of this reply to `sink`. Returns
    /// [`Progress::Complete`] at `NLMSG_DONE` (dump) or at the
    /// acknowledgement (`Expect::Ack`); an error code from the kernel, bytes
    /// that do not split into messages, or an error from `sink` are errors.
    /// The errors of this reader are [`NetfilterError`]s turned into the
    /// sink's error type `E`.
    pub fn feed<E: From<NetfilterError>>(
        &mut self,
        datagram: &[u8],
        sink: &mut dyn FnMut(RawMessage<'_>) -> Result<(), E>,
    ) -> Result<Progress, E> {
        let mut offset = 0usize;
        while offset < datagram.len() {
            let rest = datagram.get(offset..).unwrap_or(&[]);
            let buffer = NetlinkBuffer::new_checked(rest)
                .map_err(|error| self.malformed(format!("at byte {offset}: {error}")))?;
            let length = buffer.length() as usize;
            let bytes = rest.get(..length).unwrap_or(rest);
            // Checked above: the header fits and the length covers it.
            let payload = buffer.payload();
            let (message_type, flags) = (buffer.message_type(), buffer.flags());
            let (sequence, port) = (buffer.sequence_number(), buffer.port_number());
            // Messages are aligned within a datagram (NLMSG_ALIGN).
            let align = usize::from(NLMSG_ALIGNTO) - 1;
            offset = offset.saturating_add(length.saturating_add(align) & !align);

            if sequence != self.sequence {
                // Left over from an abandoned earlier request on this socket.
                self.stale += 1;
                continue;
            }
            if port != self.port {
                return Err(self
                    .malformed(format!(
                        "message for port {port} on the socket of port {}",
                        self.port
                    ))
                    .into());
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
                        return Err(kernel_error(self.request, code).into());
                    }
                    if self.expect == Expect::Ack {
                        return Ok(Progress::Complete);
                    }
                    return Err(self
                        .malformed("an acknowledgement where a dump was expected".into())
                        .into());
                }
                NLMSG_DONE => {
                    // The kernel puts an int after the header; 0 unless the
                    // dump itself failed.
                    let code = error_code(payload).unwrap_or(0);
                    if code != 0 {
                        return Err(kernel_error(self.request, code).into());
                    }
                    if self.expect == Expect::Done {
                        return Ok(Progress::Complete);
                    }
                    return Err(self
                        .malformed("NLMSG_DONE where an acknowledgement was due".into())
                        .into());
                }
                NLMSG_OVERRUN => self.overrun = true,
                _ => {
                    let Some(nfgenmsg) = payload.get(..NFGENMSG_LEN) else {
                        return Err(self
                            .malformed(format!(
                                "message type {message_type:#06x} shorter than its nfgenmsg header"
                            ))
                            .into());
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

    fn malformed(&self, detail: String) -> NetfilterError {
        NetfilterError::Malformed { request: self.request, detail }
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
    pub fn feed(&mut self, datagram: &[u8]) -> Result<Progress, NetfilterError> {
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
pub fn kernel_error(request: &'static str, code: i32) -> NetfilterError {
    let errno = code.saturating_abs();
    match errno {
        libc::EPERM | libc::EACCES => NetfilterError::PermissionDenied { request },
        libc::EOPNOTSUPP => NetfilterError::NotSupported { request },
        _ => NetfilterError::Kernel {
            request,
            errno,
            message: io::Error::from_raw_os_error(errno).to_string(),
        },
    }
}
