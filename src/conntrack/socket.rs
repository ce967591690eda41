//! The ctnetlink socket: [`crate::netfilter::NfnetlinkSocket`] speaking
//! for conntrack, its errors as [`ConntrackError`], and the ctnetlink
//! message numbers. The socket itself (dumps, restarts, deadlines) is
//! [`crate::netfilter`]'s; the names it had here are re-exported so that
//! callers keep one path.

use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_packet_netfilter::conntrack::ConntrackMessage;
use netlink_packet_netfilter::{NetfilterMessageInner, NetfilterProtoFamily};

pub use crate::netfilter::{
    encode_request, AckOutcome, DumpEvent, DumpSummary, Expect, Progress, RawMessage, Reply,
    ReplyCollector, ReplyReader, RestartReason, DUMP_ATTEMPTS, DUMP_DEADLINE, RECV_TIMEOUT,
    REQUEST_DEADLINE,
};
use crate::netfilter::{NetfilterError, NfnetlinkSocket};

use super::ConntrackError;

/// `NFNL_SUBSYS_CTNETLINK` (include/uapi/linux/netfilter/nfnetlink.h).
pub const NFNL_SUBSYS_CTNETLINK: u8 = 1;
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

/// A `NETLINK_NETFILTER` socket for ctnetlink requests, in the network
/// namespace of the thread that opened it.
#[derive(Debug)]
pub struct CtnetlinkSocket(NfnetlinkSocket);

impl CtnetlinkSocket {
    /// Opens and binds a socket in the calling thread's network namespace,
    /// with a [`RECV_TIMEOUT`] receive timeout.
    pub fn open() -> Result<Self, ConntrackError> {
        Ok(CtnetlinkSocket(NfnetlinkSocket::open()?))
    }

    /// See [`NfnetlinkSocket::set_recv_timeout`].
    pub fn set_recv_timeout(&mut self, timeout: Duration) -> Result<(), ConntrackError> {
        Ok(self.0.set_recv_timeout(timeout)?)
    }

    /// The netlink port id the kernel assigned to this socket.
    pub fn port(&self) -> u32 {
        self.0.port()
    }

    /// See [`NfnetlinkSocket::dump`].
    pub fn dump<M: Clone + Into<NetfilterMessageInner>>(
        &mut self,
        request: &'static str,
        family: NetfilterProtoFamily,
        message: M,
    ) -> Result<Vec<Reply>, ConntrackError> {
        Ok(self.0.dump(request, family, message)?)
    }

    /// See [`NfnetlinkSocket::dump_each`].
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
        self.0.dump_each(request, family, message, deadline, on_event)
    }

    /// See [`NfnetlinkSocket::request`].
    pub fn request(
        &mut self,
        request: &'static str,
        family: NetfilterProtoFamily,
        message: impl Into<NetfilterMessageInner>,
    ) -> Result<Vec<Reply>, ConntrackError> {
        Ok(self.0.request(request, family, message)?)
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
        Ok(self.0.request_ack(request, family, message)?)
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
        self.0.as_raw_fd()
    }
}

/// The typed error for a negative errno from `NLMSG_ERROR` or `NLMSG_DONE`
/// to a ctnetlink request: [`crate::netfilter::kernel_error`] in
/// conntrack's words.
pub fn kernel_error(request: &'static str, code: i32) -> ConntrackError {
    crate::netfilter::kernel_error(request, code).into()
}

impl From<NetfilterError> for ConntrackError {
    /// Variant for variant, so that a caller matching on `ConntrackError`
    /// (the stale scan's filter fallback, the stats' procfs fallback) sees
    /// what it saw when the socket was conntrack's own.
    fn from(error: NetfilterError) -> Self {
        match error {
            NetfilterError::PermissionDenied { .. } => {
                ConntrackError::PermissionDenied { fallback: String::new() }
            }
            NetfilterError::NotSupported { request } => ConntrackError::Unavailable(format!(
                "the kernel does not support {request} (is nf_conntrack_netlink loaded?)"
            )),
            NetfilterError::Unavailable(why) => ConntrackError::Unavailable(why),
            NetfilterError::Socket { op, source } => ConntrackError::Socket { op, source },
            NetfilterError::Kernel { request, errno, message } => {
                ConntrackError::Kernel { request, errno, message }
            }
            NetfilterError::Malformed { request, detail } => {
                ConntrackError::Malformed { request, detail }
            }
            NetfilterError::DumpInconsistent { request, attempts } => {
                ConntrackError::DumpInconsistent { request, attempts }
            }
            NetfilterError::Deadline { request, after } => {
                ConntrackError::Deadline { request, after }
            }
            NetfilterError::Timeout { request, after } => {
                ConntrackError::Timeout { request, after }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conntrack words of each socket error: the texts users saw when
    /// the socket was conntrack's own.
    #[test]
    fn netfilter_errors_in_conntracks_words() {
        let denied = ConntrackError::from(crate::netfilter::kernel_error("x", -libc::EPERM));
        assert_eq!(
            denied.to_string(),
            "ctnetlink refused the request: CAP_NET_ADMIN is needed; run as root"
        );
        let unsupported = kernel_error("IPCTNL_MSG_CT_GET", -libc::EOPNOTSUPP);
        assert_eq!(
            unsupported.to_string(),
            "conntrack is not available: the kernel does not support IPCTNL_MSG_CT_GET (is nf_conntrack_netlink loaded?)"
        );
        let malformed = ConntrackError::from(NetfilterError::Malformed {
            request: "IPCTNL_MSG_CT_GET",
            detail: "short".into(),
        });
        assert_eq!(malformed.to_string(), "malformed ctnetlink reply to IPCTNL_MSG_CT_GET: short");
        let gone = kernel_error("delete", -libc::ENOENT);
        assert!(matches!(gone, ConntrackError::Kernel { errno: libc::ENOENT, .. }), "{gone:?}");
    }
}
