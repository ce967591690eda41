//! Typed errors of the library. The binary turns them into a message and
//! exit status 2 ("could not tell").

use std::path::PathBuf;

/// Everything that can stop a command from reaching a verdict.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag, a flag combination or an input file is wrong.
    #[error("{0}")]
    Usage(String),
    /// The kernel or the system refused for lack of privilege.
    #[error("{0}")]
    Privilege(String),
    /// A network namespace could not be opened or entered.
    #[error("network namespace {path}: {reason}")]
    Netns {
        /// The path that was tried (`/proc/PID/ns/net`, `/run/netns/NAME`, ...).
        path: PathBuf,
        /// What went wrong, in words.
        reason: String,
    },
    /// A ctnetlink conversation failed.
    #[error(transparent)]
    Conntrack(#[from] crate::conntrack::ConntrackError),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An external command (ip, iptables-restore, ...) failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line, for the user to rerun.
        command: String,
        /// Its exit status and stderr.
        detail: String,
    },
    /// The open-file limit leaves too little room for the probe sockets.
    #[error(transparent)]
    SocketBudget(#[from] crate::dns::engine::SocketBudgetError),
    /// Any other runtime failure, with context.
    #[error("{0}")]
    Runtime(String),
    /// Output could not be written.
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
