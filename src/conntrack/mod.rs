//! conntrack: ctnetlink on the nfnetlink socket of [`crate::netfilter`],
//! with a procfs fallback for the counters; entries, the kernel-side dump
//! filter and exact deletes for the stale scan (module `stale`, which
//! builds on this one).

/// The captured ctnetlink bytes, kept in [`crate::netfilter`] (its socket
/// tests read them too) and reachable here for conntrack's own tests.
#[cfg(test)]
pub(crate) use crate::netfilter::captures;
pub mod entry;
#[cfg(test)]
mod lab_tests;
pub mod procfs;
pub mod socket;
pub mod stats;

pub use procfs::{parse_proc_stat, read_stats_procfs};
pub use socket::{AckOutcome, CtnetlinkSocket, Reply};
pub use stats::{
    read_stats, read_stats_from, read_stats_netlink, Counters, CpuStats, Source, StatsSnapshot,
};

/// What can go wrong talking to conntrack.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    /// ctnetlink refused for lack of CAP_NET_ADMIN and procfs was no help.
    #[error("ctnetlink refused the request: CAP_NET_ADMIN is needed; run as root{fallback}")]
    PermissionDenied {
        /// Why the procfs fallback did not work either, if it was tried.
        fallback: String,
    },
    /// The kernel has no conntrack in this namespace (module not loaded,
    /// or no /proc/net/stat/nf_conntrack).
    #[error("conntrack is not available: {0}")]
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
    #[error("malformed ctnetlink reply to {request}: {detail}")]
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
    /// A procfs file did not parse.
    #[error("cannot parse {path}: {detail}")]
    Procfs {
        /// The file.
        path: String,
        /// What was wrong.
        detail: String,
    },
}
