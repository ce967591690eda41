//! The Prometheus endpoint of `ctdiag watch --listen`: the cumulative
//! [`Totals`] as Prometheus text, served over HTTP at `/metrics`.
//!
//! Placeholder with the interface the command is wired against; the
//! exporter itself is being written (issue 15).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::model::Totals;

/// Why the endpoint could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        cause: String,
    },
}

/// A running `/metrics` server; stops when dropped or with [`stop`](Self::stop).
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
}

impl MetricsServer {
    /// Serves `totals` (read at each scrape) on `addr`, keeping at most
    /// `top_pods` pod series (the rest folded into one).
    pub fn start(
        addr: SocketAddr,
        totals: Arc<Mutex<Totals>>,
        top_pods: usize,
    ) -> Result<MetricsServer, MetricsError> {
        let _ = (totals, top_pods);
        Err(MetricsError::Bind { addr, cause: "the exporter is not built yet".into() })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving.
    pub fn stop(self) {}
}

/// `totals` as Prometheus text exposition format.
pub fn render(totals: &Totals, top_pods: usize) -> String {
    let _ = (totals, top_pods);
    String::new()
}
