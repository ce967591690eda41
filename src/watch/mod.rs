//! `ctdiag watch`: every pod's own lookups on this node, seen passively in
//! the packets (the query, its DNATed copy, the answer), per pod and per
//! endpoint, with the cause of each unanswered one.

pub mod capture;
pub mod live;
pub mod matcher;
pub mod metrics;
pub mod model;
pub mod packet;
pub mod run;
pub mod source;
pub mod stats;

pub use run::{run, Input, WatchConfig};
