//! A ctnetlink socket: requests, multipart dumps, acknowledgements.
//!
//! Why the replies are split here rather than with the crate's example
//! loop: one `recv` may hold many netlink messages, a dump spans many
//! `recv`s, and every message must be checked for `NLMSG_ERROR`,
//! `NLM_F_DUMP_INTR`, our sequence number and the kernel's port, or a
//! partial dump could pass for a complete one.

use std::time::Duration;

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_netfilter::conntrack::ConntrackMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use super::ConntrackError;

/// Get (or dump) conntrack entries.
pub const IPCTNL_MSG_CT_GET: u8 = 1;
/// Delete one conntrack entry.
pub const IPCTNL_MSG_CT_DELETE: u8 = 2;
/// Dump the per-CPU statistics: one message per CPU.
pub const IPCTNL_MSG_CT_GET_STATS_CPU: u8 = 4;
/// Get the global statistics (entries, max entries).
pub const IPCTNL_MSG_CT_GET_STATS: u8 = 5;

/// `NLMSG_ERROR` message type.
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE` message type.
const NLMSG_DONE: u16 = 3;
/// Size of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;
/// Receive buffer: the kernel fills at most 32 KiB (or a page) per dump
/// step; twice that leaves room and `MSG_TRUNC` tells if it was not enough.
const RECV_BUFFER: usize = 64 * 1024;
/// How long one `recv` may wait before the kernel counts as silent.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-dump attempts before giving up on an interrupted dump.
pub const MAX_DUMP_ATTEMPTS: u32 = 4;

/// One message of a reply, as far as the conversation is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A data message (a stats message, an entry, ...), with its
    /// `NLM_F_DUMP_INTR` flag.
    Message {
        /// The decoded netfilter message.
        message: NetfilterMessage,
        /// Set when the kernel says the dump was interrupted by a change.
        interrupted: bool,
    },
    /// `NLMSG_DONE`: end of a dump. Carries the kernel's status code (0 or
    /// a negative errno).
    Done {
        /// 0 when the dump ended normally.
        status: i32,
        /// Set when the kernel says the dump was interrupted by a change.
        interrupted: bool,
    },
    /// `NLMSG_ERROR` with code 0: an acknowledgement.
    Ack,
    /// `NLMSG_ERROR` with a negative errno.
    Error {
        /// The positive errno.
        errno: i32,
    },
}

/// Splits and decodes one received buffer. Messages whose sequence number
/// or port do not match ours are skipped (a stale reply of an earlier
/// request); anything malformed is an error, never a panic.
pub fn parse_replies(
    bytes: &[u8],
    request: &'static str,
    seq: u32,
    port: u32,
) -> Result<Vec<Reply>, ConntrackError> {
    let malformed = |detail: String| ConntrackError::Malformed { request, detail };
    let mut replies = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        if rest.len() < NLMSG_HDRLEN {
            return Err(malformed(format!(
                "{} trailing bytes, shorter than a netlink header",
                rest.len()
            )));
        }
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(malformed(format!(
                "netlink message length {len} at offset {offset} (buffer has {} bytes left)",
                rest.len()
            )));
        }
        let message_type = u16::from_ne_bytes([rest[4], rest[5]]);
        let flags = u16::from_ne_bytes([rest[6], rest[7]]);
        let msg_seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let msg_port = u32::from_ne_bytes([rest[12], rest[13], rest[14], rest[15]]);
        let whole = &rest[..len];
        // Messages are 4-byte aligned (NLMSG_ALIGN).
        offset += (len + 3) & !3;
        if msg_seq != seq || (msg_port != port && msg_port != 0) {
            continue;
        }
        let interrupted = flags & NLM_F_DUMP_INTR != 0;
        match message_type {
            NLMSG_ERROR => {
                let code = read_i32(whole, NLMSG_HDRLEN)
                    .ok_or_else(|| malformed("NLMSG_ERROR without an error code".into()))?;
                replies.push(if code == 0 { Reply::Ack } else { Reply::Error { errno: -code } });
            }
            NLMSG_DONE => {
                // A DONE of a dump carries an int status; some kernels send
                // it empty.
                let status = read_i32(whole, NLMSG_HDRLEN).unwrap_or(0);
                replies.push(Reply::Done { status, interrupted });
            }
            _ => {
                let mut header = NetlinkHeader::default();
                header.length = len as u32;
                header.message_type = message_type;
                header.flags = flags;
                header.sequence_number = msg_seq;
                header.port_number = msg_port;
                let message = NetfilterMessage::deserialize(&header, &whole[NLMSG_HDRLEN..])
                    .map_err(|e| malformed(format!("message type {message_type:#06x}: {e}")))?;
                replies.push(Reply::Message { message, interrupted });
            }
        }
    }
    Ok(replies)
}

fn read_i32(bytes: &[u8], at: usize) -> Option<i32> {
    let b = bytes.get(at..at + 4)?;
    Some(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// What a request that asked for an acknowledgement came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// The kernel did it.
    Done,
    /// `ENOENT`: there was nothing to act on (for a delete: already gone).
    NotFound,
}

/// Why one dump attempt did not give a complete answer.
enum Attempt {
    /// Interrupted or overrun: the whole dump must be redone.
    Retry,
    /// A real failure.
    Fail(ConntrackError),
}

impl From<ConntrackError> for Attempt {
    fn from(e: ConntrackError) -> Self {
        Attempt::Fail(e)
    }
}

/// A ctnetlink socket in the network namespace of the thread that opened it.
pub struct CtSocket {
    socket: Socket,
    port: u32,
    seq: u32,
    buf: Vec<u8>,
}

impl CtSocket {
    /// Opens and binds a `NETLINK_NETFILTER` socket with a receive timeout.
    pub fn open() -> Result<Self, ConntrackError> {
        let sock_err = |op| move |source| ConntrackError::Socket { op, source };
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(sock_err("socket"))?;
        let addr = socket.bind_auto().map_err(sock_err("bind"))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(sock_err("connect"))?;
        set_recv_timeout(&socket, RECV_TIMEOUT).map_err(sock_err("setsockopt(SO_RCVTIMEO)"))?;
        // Why: a dump of a big table can outrun a small default socket
        // buffer (ENOBUFS); a larger one makes retries rare.
        let _ = socket.set_rx_buf_sz(1 << 20);
        // Timestamp-free, process-unique start for sequence numbers.
        let seq = std::process::id().wrapping_mul(7919);
        Ok(CtSocket { socket, port: addr.port_number(), seq, buf: Vec::with_capacity(RECV_BUFFER) })
    }

    fn send(
        &mut self,
        family: u8,
        message: ConntrackMessage,
        flags: u16,
    ) -> Result<u32, ConntrackError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(
            header,
            NetlinkPayload::from(NetfilterMessage::new(
                NetfilterHeader::new(NetfilterProtoFamily::from(family), 0, 0),
                message,
            )),
        );
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket
            .send(&bytes, 0)
            .map_err(|source| ConntrackError::Socket { op: "send", source })?;
        Ok(self.seq)
    }

    /// Receives one buffer and decodes it.
    fn recv_replies(&mut self, request: &'static str, seq: u32) -> Result<Vec<Reply>, Attempt> {
        // Why a Vec with capacity and no zeroing: recv writes into the spare
        // capacity and sets the length; zeroing 64 KiB per call was a third
        // of the whole run's instructions.
        self.buf.clear();
        let size = match self.socket.recv(&mut self.buf, libc::MSG_TRUNC) {
            Ok(size) => size,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Err(Attempt::Retry),
            // EAGAIN (== EWOULDBLOCK on Linux): SO_RCVTIMEO expired.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                return Err(Attempt::Fail(ConntrackError::Kernel {
                    request,
                    errno: libc::ETIMEDOUT,
                    message: format!("no reply within {} s", RECV_TIMEOUT.as_secs()),
                }))
            }
            Err(source) => {
                return Err(Attempt::Fail(ConntrackError::Socket { op: "recv", source }))
            }
        };
        if size > self.buf.len() {
            // Truncated datagram: the rest of it is lost; redo the dump.
            return Err(Attempt::Retry);
        }
        Ok(parse_replies(&self.buf, request, seq, self.port)?)
    }

    /// Dumps `message_type` and returns every data message. An interrupted
    /// or overrun dump is redone from the start; after
    /// [`MAX_DUMP_ATTEMPTS`] it is an error, never a partial result.
    pub fn dump(
        &mut self,
        request: &'static str,
        family: u8,
        message: ConntrackMessage,
    ) -> Result<Vec<NetfilterMessage>, ConntrackError> {
        for _ in 0..MAX_DUMP_ATTEMPTS {
            match self.dump_once(request, family, message.clone()) {
                Ok(messages) => return Ok(messages),
                Err(Attempt::Retry) => {
                    // Drain what is left of the broken dump so the next
                    // attempt starts clean.
                    self.drain();
                }
                Err(Attempt::Fail(e)) => return Err(e),
            }
        }
        Err(ConntrackError::DumpInconsistent { request, attempts: MAX_DUMP_ATTEMPTS })
    }

    fn dump_once(
        &mut self,
        request: &'static str,
        family: u8,
        message: ConntrackMessage,
    ) -> Result<Vec<NetfilterMessage>, Attempt> {
        let seq = self.send(family, message, NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut messages = Vec::new();
        let mut interrupted = false;
        loop {
            for reply in self.recv_replies(request, seq)? {
                match reply {
                    Reply::Message { message, interrupted: intr } => {
                        interrupted |= intr;
                        messages.push(message);
                    }
                    Reply::Done { status, interrupted: intr } => {
                        if intr || interrupted {
                            return Err(Attempt::Retry);
                        }
                        if status < 0 {
                            return Err(kernel_error(request, -status).into());
                        }
                        return Ok(messages);
                    }
                    Reply::Error { errno } => return Err(kernel_error(request, errno).into()),
                    Reply::Ack => {}
                }
            }
        }
    }

    /// Sends a plain (non-dump) request with `NLM_F_ACK` and returns the
    /// messages the kernel answered before its acknowledgement. Why not a
    /// dump: `IPCTNL_MSG_CT_GET_STATS` answers with a single message and no
    /// `NLMSG_DONE`.
    pub fn request(
        &mut self,
        request: &'static str,
        family: u8,
        message: ConntrackMessage,
    ) -> Result<Vec<NetfilterMessage>, ConntrackError> {
        let seq = self.send(family, message, NLM_F_REQUEST | NLM_F_ACK)?;
        let mut messages = Vec::new();
        loop {
            let replies = match self.recv_replies(request, seq) {
                Ok(replies) => replies,
                Err(Attempt::Retry) => {
                    return Err(ConntrackError::DumpInconsistent { request, attempts: 1 })
                }
                Err(Attempt::Fail(e)) => return Err(e),
            };
            for reply in replies {
                match reply {
                    Reply::Message { message, .. } => messages.push(message),
                    Reply::Ack | Reply::Done { .. } => return Ok(messages),
                    Reply::Error { errno } => return Err(kernel_error(request, errno)),
                }
            }
        }
    }

    /// Sends one request with `NLM_F_ACK` and waits for the kernel's answer.
    pub fn request_ack(
        &mut self,
        request: &'static str,
        family: u8,
        message: ConntrackMessage,
    ) -> Result<AckOutcome, ConntrackError> {
        let seq = self.send(family, message, NLM_F_REQUEST | NLM_F_ACK)?;
        loop {
            let replies = match self.recv_replies(request, seq) {
                Ok(replies) => replies,
                Err(Attempt::Retry) => continue,
                Err(Attempt::Fail(e)) => return Err(e),
            };
            for reply in replies {
                match reply {
                    Reply::Ack => return Ok(AckOutcome::Done),
                    Reply::Error { errno } if errno == libc::ENOENT => {
                        return Ok(AckOutcome::NotFound)
                    }
                    Reply::Error { errno } => return Err(kernel_error(request, errno)),
                    Reply::Message { .. } | Reply::Done { .. } => {}
                }
            }
        }
    }

    /// Reads and discards whatever is queued, without waiting.
    fn drain(&mut self) {
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, libc::MSG_DONTWAIT) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// The typed error for a kernel errno.
pub fn kernel_error(request: &'static str, errno: i32) -> ConntrackError {
    if errno == libc::EPERM || errno == libc::EACCES {
        return ConntrackError::PermissionDenied { fallback: String::new() };
    }
    ConntrackError::Kernel {
        request,
        errno,
        message: std::io::Error::from_raw_os_error(errno).to_string(),
    }
}

fn set_recv_timeout(socket: &Socket, timeout: Duration) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: a valid socket fd and a correctly sized timeval.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
