//! ctdiag: find and fix the node-level causes of 5-second DNS lookups on a
//! Kubernetes node.
//!
//! The library does the work and returns plain data (`Serialize` reports);
//! the binary parses, calls, renders and maps the exit status.

pub mod app;
pub mod cli;
pub mod commands;
pub mod conntrack;
pub mod dns;
pub mod doctor;
pub mod error;
pub mod findings;
pub mod generate;
pub mod interrupt;
pub mod kernel;
pub mod lab;
pub mod netfilter;
pub mod netns;
pub mod process;
pub mod render;
pub mod service;
pub mod stale;
#[cfg(test)]
pub(crate) mod testutil;
pub mod watch;

pub use app::{run, Outcome};
pub use error::{Error, Result};

/// Exit status for "could not tell" (usage error, missing privilege,
/// runtime error); also node-problem-detector's "Unknown".
pub const EXIT_UNKNOWN: u8 = 2;
