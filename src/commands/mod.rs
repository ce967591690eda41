//! One module per subcommand: arguments -> validated config -> report.

pub mod lab;
pub mod probe;
pub mod stats;
