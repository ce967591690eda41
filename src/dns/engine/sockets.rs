//! Probe sockets: opening them, what their errors mean, and how many a run
//! may hold within the open-file limit.

use std::io;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage};

use super::lookup::Failure;
use super::{Mode, SocketUse};

/// Where a socket error surfaced: the local stack refused the call itself
/// (`connect`/`send` failed at once), or the network answered with an ICMP
/// error that the socket reported (on a later call or `recv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ErrorSource {
    /// Returned synchronously by `connect(2)`/`send(2)`: no packet left.
    Local,
    /// An ICMP error (or a TCP reset) the socket reported for its flow.
    Network,
}

/// The outcome of a query whose socket reported `errno` from `source`.
/// Why the split matters: a synchronous ENETUNREACH/EHOSTUNREACH means no
/// packet ever left (this namespace has no route), which is no evidence of
/// loss on the path; the same errno from the network is an ICMP host/net
/// unreachable; ECONNREFUSED is an ICMP port unreachable (the host is up,
/// nothing listens) whichever call reports it.
pub(super) fn failure_of_errno(errno: Option<i32>, source: ErrorSource) -> Failure {
    match (errno, source) {
        (Some(libc::ECONNREFUSED), _) => Failure::PortUnreachable,
        (Some(errno @ (libc::ENETUNREACH | libc::EHOSTUNREACH)), ErrorSource::Local) => {
            Failure::NoRoute { errno }
        }
        (
            Some(
                libc::ENETUNREACH
                | libc::EHOSTUNREACH
                | libc::EHOSTDOWN
                | libc::ENETDOWN
                | libc::EACCES
                | libc::ENOPROTOOPT,
            ),
            ErrorSource::Network,
        ) => Failure::Unreachable,
        _ => Failure::SendFailed,
    }
}

/// Turns on full ICMP error reporting (`IP_RECVERR`/`IPV6_RECVERR`), as
/// glibc's stub resolver does on its UDP sockets: host and network
/// unreachable then reach a connected socket too (without it only port
/// unreachable does), and each error is queued with its origin.
pub(super) fn enable_icmp_errors(socket: &UdpSocket, ipv4: bool) {
    use nix::sys::socket::{setsockopt, sockopt};
    // Why ignore a failure: without it the errors are coarser, not wrong.
    let _ = if ipv4 {
        setsockopt(socket, sockopt::Ipv4RecvErr, &true)
    } else {
        setsockopt(socket, sockopt::Ipv6RecvErr, &true)
    };
}

/// Reads the socket's error queue empty (with `IP_RECVERR` a queued error
/// keeps `POLLERR` raised until it is read); returns the errno of the last
/// ICMP error found, if any.
pub(super) fn drain_icmp_errors(socket: &UdpSocket) -> Option<i32> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrStorage};
    let mut found = None;
    // Bounded: a socket's queue holds a few errors at most; never spin.
    for _ in 0..16 {
        let mut data = [0u8; 512];
        let mut iov = [std::io::IoSliceMut::new(&mut data)];
        let mut space = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6);
        let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
        let Ok(message) =
            recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, Some(&mut space), flags)
        else {
            break;
        };
        let Ok(cmsgs) = message.cmsgs() else { break };
        for cmsg in cmsgs {
            let error = match cmsg {
                ControlMessageOwned::Ipv4RecvErr(error, _)
                | ControlMessageOwned::Ipv6RecvErr(error, _) => error,
                _ => continue,
            };
            if matches!(error.ee_origin, libc::SO_EE_ORIGIN_ICMP | libc::SO_EE_ORIGIN_ICMP6) {
                found = Some(error.ee_errno as i32);
            }
        }
    }
    found
}

/// Whether a socket could not be created because this process holds as
/// many descriptors as its open-file limit allows.
pub(super) fn is_descriptor_limit(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EMFILE)
}

/// Room left for descriptors besides the probe sockets: stdio, the
/// namespace handles, the netlink socket that reads the counters afterwards.
const DESCRIPTOR_SLACK: u64 = 16;

/// The sockets one lookup holds at most at once.
fn sockets_per_lookup(mode: Mode) -> u64 {
    // Reopen keeps the A query's socket while the AAAA query uses a new one.
    if mode == Mode::Reopen {
        2
    } else {
        1
    }
}

/// The descriptors open in this process now.
fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(DESCRIPTOR_SLACK, |dir| dir.count() as u64)
}

/// The soft and hard `RLIMIT_NOFILE`.
pub(super) fn open_file_limits() -> (u64, u64) {
    use nix::sys::resource::{getrlimit, Resource};
    getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024))
}

/// The open-file limit leaves too little room for the lookups asked to be
/// in flight at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}; raise the limit (`ulimit -n {wanted}`) or allow {fits} lookups in flight or fewer",
    self.shortfall()
)]
pub struct SocketBudgetError {
    /// Lookups asked to be in flight at once.
    pub concurrency: usize,
    /// The resolver mode (reopen holds two sockets per lookup).
    pub mode: Mode,
    /// Sockets those lookups need.
    pub in_flight: u64,
    /// The soft open-file limit (after trying to raise it).
    pub soft: u64,
    /// Descriptors this process held already.
    pub open_now: u64,
    /// The limit that would be enough.
    pub wanted: u64,
    /// Lookups in flight that fit (at least 1).
    pub fits: u64,
}

impl SocketBudgetError {
    /// What does not fit: the sockets needed against the limit.
    pub fn shortfall(&self) -> String {
        format!(
            "{} lookups in flight need {} sockets{}, but the open-file limit (`ulimit -n`) is {} with {} descriptors already open",
            self.concurrency,
            self.in_flight,
            if self.mode == Mode::Reopen { " (two each in reopen mode)" } else { "" },
            self.soft,
            self.open_now
        )
    }
}

/// How many sockets a run of `concurrency` lookups in flight in `mode` may
/// hold, from the open-file limit: every lookup in flight must have its
/// sockets, and sockets lingering for late answers get what is left, at
/// most twice as many as the lookups in flight hold. Raises the soft
/// open-file limit towards the hard one when that is needed (as Go
/// programs do at start); fails, naming the limit, when even the lookups in
/// flight would not fit.
pub fn socket_budget(
    concurrency: usize,
    mode: Mode,
) -> std::result::Result<SocketUse, SocketBudgetError> {
    let in_flight = concurrency as u64 * sockets_per_lookup(mode);
    let open_now = open_descriptors();
    let wanted = open_now + DESCRIPTOR_SLACK + 3 * in_flight;
    let (mut soft, hard) = open_file_limits();
    if soft < wanted && soft < hard {
        use nix::sys::resource::{setrlimit, Resource};
        // Why ignore a failure: the check below says what the limit is.
        let _ = setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard);
        soft = open_file_limits().0;
    }
    let available = soft.saturating_sub(open_now + DESCRIPTOR_SLACK);
    if available < in_flight {
        let fits = (available / sockets_per_lookup(mode)).max(1);
        return Err(SocketBudgetError {
            concurrency,
            mode,
            in_flight,
            soft,
            open_now,
            wanted,
            fits,
        });
    }
    Ok(SocketUse {
        open_file_limit: soft,
        // Why twice the sockets in flight: lookups that time out together
        // linger together, and the next wave times out as the last one's
        // lingering ends; at most one wave waits at a time otherwise.
        lingering_limit: (available - in_flight).min(2 * in_flight),
        ..SocketUse::default()
    })
}

/// A fresh non-blocking UDP socket bound to a free port, connected to
/// `server` unless `connect` is false (musl never connects its socket).
/// The outer error: no socket could be made at all (e.g. the open-file
/// limit); the inner one: a connect failure that counts against the lookup
/// (e.g. no route).
pub(super) fn fresh_udp(server: SocketAddr, connect: bool) -> io::Result<io::Result<UdpSocket>> {
    let bind: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(bind)?;
    socket.set_nonblocking(true)?;
    if !connect {
        return Ok(Ok(socket));
    }
    enable_icmp_errors(&socket, server.is_ipv4());
    Ok(socket.connect(server).map(|()| socket))
}

/// A fresh non-blocking TCP socket with its connect to `server` under way;
/// errors as for [`fresh_udp`].
pub(super) fn fresh_tcp(server: SocketAddr) -> io::Result<io::Result<TcpStream>> {
    let family = if server.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd: OwnedFd = socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let address = SockaddrStorage::from(server);
    let connected = match socket::connect(fd.as_raw_fd(), &address) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => Ok(()),
        Err(errno) => Err(io::Error::from(errno)),
    };
    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
    // SAFETY: `raw` is an open TCP socket we own; TcpStream takes it over.
    let stream = unsafe { TcpStream::from_raw_fd(raw) };
    Ok(connected.map(|()| stream))
}
