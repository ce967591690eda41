//! One module per subcommand: arguments -> validated config -> the core's
//! report -> rendered output and exit status.

pub mod args;
pub mod compare;
pub mod doctor;
pub mod lab;
pub mod probe;
pub mod services;
pub mod stale;
pub mod stats;
pub mod watch;
