//! netfilter: the protocol-agnostic side of `NETLINK_NETFILTER`
//! (nfnetlink), which both `conntrack` (ctnetlink) and
//! `service` (kube-proxy's nf_tables rules) build on, neither on
//! the other.
//!
//! - [`socket`]: the socket, one request and its whole (possibly
//!   multipart) reply, with receive timeouts and an overall deadline;
//! - [`dump`]: the exchange loop, dump restarts on `NLM_F_DUMP_INTR` and
//!   overruns, request encoding;
//! - [`reply`]: splitting received datagrams into messages and checking
//!   them (sequence, port, `NLMSG_DONE` / `NLMSG_ERROR`);
//! - [`attributes`]: the attribute walker (netlink-packet-core's
//!   `NlasIterator`);
//! - [`nf_tables`]: the nf_tables objects (rules, sets, elements, chains,
//!   the ruleset generation) read over netlink.
//!
//! Errors are [`NetfilterError`]; each user turns them into its own
//! (`ConntrackError`, `NftError`) with the words its users know.

pub mod attributes;
#[cfg(test)]
pub(crate) mod captures;
pub mod dump;
pub mod nf_tables;
pub mod reply;
pub mod socket;
#[cfg(test)]
mod tests;

pub use dump::{encode_request, AckOutcome, DumpEvent, DumpSummary, RestartReason};
pub use reply::{kernel_error, Expect, Progress, RawMessage, Reply, ReplyCollector, ReplyReader};
pub use socket::{NfnetlinkSocket, DUMP_ATTEMPTS, DUMP_DEADLINE, RECV_TIMEOUT, REQUEST_DEADLINE};

/// `NFNETLINK_V0` (include/uapi/linux/netfilter/nfnetlink.h): the only
/// `nfgenmsg.version` there is.
pub const NFNETLINK_V0: u8 = 0;
/// Size of `struct nfgenmsg` (family, version, res_id).
pub const NFGENMSG_LEN: usize = 4;

/// What can go wrong in an nfnetlink conversation, whatever the subsystem.
/// The texts of the variants that reach users unchanged (through
/// `ConntrackError` and `NftError`) are theirs: keep them as they are.
#[derive(Debug, thiserror::Error)]
pub enum NetfilterError {
    /// The kernel answered `EPERM` or `EACCES`: `CAP_NET_ADMIN` is missing
    /// in the namespace.
    #[error("the kernel refused the {request} request: CAP_NET_ADMIN is needed; run as root")]
    PermissionDenied {
        /// What was asked.
        request: &'static str,
    },
    /// The kernel answered `EOPNOTSUPP`: the subsystem asked is not there
    /// (module not loaded, or not built).
    #[error("the kernel does not support {request}")]
    NotSupported {
        /// What was asked.
        request: &'static str,
    },
    /// The kernel has no nfnetlink at all.
    #[error("{0}")]
    Unavailable(String),
    /// A netlink socket call failed.
    #[error("netlink {op} failed: {source}")]
    Socket {
        /// The operation (open, bind, send, recv).
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The kernel answered with an error code.
    #[error("the kernel answered {request} with error {errno}: {message}")]
    Kernel {
        /// What was asked.
        request: &'static str,
        /// The positive errno.
        errno: i32,
        /// strerror text.
        message: String,
    },
    /// A reply did not decode.
    #[error("malformed netlink reply to {request}: {detail}")]
    Malformed {
        /// What was asked.
        request: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// A dump was interrupted or overrun more times than we retry.
    #[error("the {request} dump was interrupted {attempts} times in a row (table changing too fast or receive buffer overrun); no partial result is shown")]
    DumpInconsistent {
        /// What was asked.
        request: &'static str,
        /// How many attempts were made.
        attempts: u32,
    },
    /// A whole exchange (a dump, restarts included) took longer than its
    /// deadline, even though the kernel kept answering.
    #[error("the kernel's answer to the {request} request did not finish within {after:?} (it kept coming, too slowly); no partial result is shown: try again when the node is less busy")]
    Deadline {
        /// What was asked.
        request: &'static str,
        /// The deadline that passed.
        after: std::time::Duration,
    },
    /// The kernel did not answer within the receive timeout.
    #[error("the kernel did not answer the {request} request within {after:?}; ctnetlink may be stuck or the namespace gone; try again")]
    Timeout {
        /// What was asked.
        request: &'static str,
        /// The receive timeout that expired.
        after: std::time::Duration,
    },
}
