//! The Prometheus endpoint of `ctdiag watch --listen`: the cumulative
//! [`Totals`] as Prometheus text ([`render`]), served over HTTP at
//! `/metrics` by [`MetricsServer`].
//!
//! The HTTP server is tiny_http's (a small synchronous HTTP/1.1 server,
//! no async runtime): one accept thread, one thread per open connection,
//! and this module's one thread answering requests.

mod exposition;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::model::Totals;

pub use exposition::{render, NOT_A_POD, OTHER_PODS, PREFIX};

/// The path the metrics are served at.
pub const METRICS_PATH: &str = "/metrics";

/// The content type of the text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the endpoint could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound (or, rarer, the server could not
    /// start on it: no thread).
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        cause: String,
    },
}

/// How often the answering thread checks that tiny_http still listens.
const LISTEN_CHECK: Duration = Duration::from_secs(1);

/// The tiny_http server answering now (replaced when it stopped listening).
type Current = Arc<Mutex<Arc<tiny_http::Server>>>;

/// A running `/metrics` server; stops when dropped or with [`stop`](Self::stop).
pub struct MetricsServer {
    local_addr: SocketAddr,
    current: Current,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

// tiny_http's server has no `Debug`.
impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("local_addr", &self.local_addr)
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl MetricsServer {
    /// Serves `totals` (read at each scrape) on `addr`, keeping at most
    /// `top_pods` pod series (the rest folded into one).
    pub fn start(
        addr: SocketAddr,
        totals: Arc<Mutex<Totals>>,
        top_pods: usize,
    ) -> Result<MetricsServer, MetricsError> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| MetricsError::Bind { addr, cause: bind_cause(&e) })?;
        let local_addr =
            listener.local_addr().map_err(|e| MetricsError::Bind { addr, cause: e.to_string() })?;
        let server = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| MetricsError::Bind { addr, cause: e.to_string() })?;
        let current: Current = Arc::new(Mutex::new(Arc::new(server)));
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let serving = Serving {
                local_addr,
                current: Arc::clone(&current),
                stopping: Arc::clone(&stopping),
                totals,
                top_pods,
            };
            std::thread::Builder::new()
                .name("ctdiag-metrics".into())
                .spawn(move || serving.run())
                .map_err(|e| MetricsError::Bind { addr, cause: e.to_string() })?
        };
        Ok(MetricsServer { local_addr, current, stopping, thread: Some(thread) })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving: the answering thread ends, and the listening socket
    /// is closed once tiny_http's accept thread sees the stop.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        // The flag first: a server the thread swaps in after this unblock
        // is never waited on, the thread sees the flag before it waits.
        self.stopping.store(true, Ordering::SeqCst);
        lock(&self.current).unblock();
        // The thread only answers requests; a panic there is not ours to
        // re-raise while stopping.
        let _ = thread.join();
        // Dropping the last reference to the server (ours: the thread's is
        // gone) stops tiny_http's accept thread and closes the socket.
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What to say when `bind` fails, with what to do where there is something.
fn bind_cause(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            format!("{e} (another process holds the port: pick another with --listen)")
        }
        std::io::ErrorKind::AddrNotAvailable => {
            format!("{e} (the address is not one of this host's: use one it has, or 0.0.0.0)")
        }
        std::io::ErrorKind::PermissionDenied => {
            format!("{e} (ports below 1024 need CAP_NET_BIND_SERVICE: pick a higher one)")
        }
        _ => e.to_string(),
    }
}

/// What the answering thread owns.
struct Serving {
    local_addr: SocketAddr,
    current: Current,
    stopping: Arc<AtomicBool>,
    totals: Arc<Mutex<Totals>>,
    top_pods: usize,
}

impl Serving {
    /// Answers requests until told to stop.
    fn run(self) {
        while !self.stopping.load(Ordering::SeqCst) {
            let server = Arc::clone(&lock(&self.current));
            match server.recv_timeout(LISTEN_CHECK) {
                Ok(Some(request)) => answer(request, &self.totals, self.top_pods),
                // Quiet for a while, the stop's unblock, or tiny_http's
                // accept thread reporting the error it ended on.
                Ok(None) | Err(_) => self.listen_again_if_closed(),
            }
        }
    }

    /// Why: tiny_http's accept thread ends for good on an accept error
    /// (EMFILE when the process ran out of descriptors, ECONNABORTED) or
    /// a panic there, and its listening socket closes with it; nothing
    /// would answer scrapes for the rest of the watch. The socket is gone
    /// exactly when its address can be bound again (Linux refuses a second
    /// listener on a listening address): then serve on the new socket.
    fn listen_again_if_closed(&self) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(listener) = TcpListener::bind(self.local_addr) else { return };
        if let Ok(server) = tiny_http::Server::from_listener(listener, None) {
            *lock(&self.current) = Arc::new(server);
        }
    }
}

/// One response: the metrics for `GET /metrics`, 405 for another method
/// there, 404 elsewhere. A client that went away is not an error.
fn answer(request: tiny_http::Request, totals: &Mutex<Totals>, top_pods: usize) {
    let path = request.url().split('?').next().unwrap_or_default();
    let response = if path != METRICS_PATH {
        text_response(404, "not found: the metrics are at /metrics\n".into())
    } else if !matches!(request.method(), tiny_http::Method::Get | tiny_http::Method::Head) {
        text_response(405, "only GET /metrics\n".into()).with_header(header("Allow", "GET, HEAD"))
    } else {
        // Rendered under the lock: measured with 5,000 pods, rendering
        // (1.3 ms) holds the matcher off for less time than copying the
        // totals to render outside it would (2.6 ms).
        let body = render(&totals.lock().unwrap_or_else(PoisonError::into_inner), top_pods);
        tiny_http::Response::from_string(body).with_header(header("Content-Type", CONTENT_TYPE))
    };
    let _ = request.respond(response);
}

fn text_response(status: u16, body: String) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

/// A header from two ASCII constants of ours.
fn header(name: &'static str, value: &'static str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
        .unwrap_or_else(|()| unreachable!("{name}: {value} is an ASCII header"))
}
