//! The engine's single-threaded loop around `ppoll(2)`: starting lookups
//! at the asked rate and concurrency, servicing ready sockets, settling
//! finished and lingering lookups.

use std::io::{self, ErrorKind};
use std::net::{TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};
use nix::sys::time::TimeSpec;

use crate::dns::wire::{QueryType, SentQuery};
use crate::error::{Error, Result};

use super::ids::IdSource;
use super::lookup::{
    account, failure_of_connect, failure_of_network, failure_of_send, Conn, Failure, Lookup,
    QuerySlot, QueryState, Which,
};
use super::senders::{send_musl, send_one, send_parallel, SenderPair};
use super::sockets::{
    drain_icmp_errors, fresh_tcp, fresh_udp, is_descriptor_limit, open_file_limits, socket_budget,
};
use super::tcp::{service_tcp, TcpConn};
use super::{EngineConfig, EngineResult, Mode};

pub(super) struct Engine<'a> {
    config: &'a EngineConfig,
    ids: IdSource,
    pub(super) senders: Option<SenderPair>,
    active: Vec<Lookup>,
    pub(super) result: EngineResult,
    started: u64,
    buf: Vec<u8>,
    /// Probe sockets open now (in flight and lingering).
    open_sockets: u64,
    /// Sockets lingering for late answers now (a reopen lookup may hold
    /// two).
    lingering: u64,
}

impl<'a> Engine<'a> {
    pub(super) fn new(config: &'a EngineConfig) -> Result<Self> {
        if config.names.is_empty() {
            return Err(Error::Usage("no name to look up".into()));
        }
        let sockets = socket_budget(config.concurrency, config.mode)?;
        let senders = if config.mode == Mode::Threads { Some(SenderPair::spawn()?) } else { None };
        Ok(Engine {
            config,
            ids: IdSource::new(),
            senders,
            active: Vec::new(),
            result: EngineResult { sockets, ..EngineResult::default() },
            started: 0,
            buf: vec![0u8; 65_536],
            open_sockets: 0,
            lingering: 0,
        })
    }

    fn in_flight(&self) -> usize {
        self.active.iter().filter(|l| l.linger_until.is_none()).count()
    }

    /// Counts a socket just opened.
    fn opened(&mut self) {
        self.open_sockets += 1;
        self.result.sockets.peak_open = self.result.sockets.peak_open.max(self.open_sockets);
    }

    /// Removes the lookup at `index`, closing its sockets.
    fn remove(&mut self, index: usize) {
        let mut lookup = self.active.swap_remove(index);
        let closed = lookup.close() as u64;
        if lookup.linger_until.is_some() {
            self.lingering -= closed;
        }
        self.open_sockets -= closed;
    }

    /// Closes the sockets of the lookup that has lingered longest, to make
    /// room; false when none lingers. Why the oldest: it has waited the
    /// longest, so a late answer is least likely to still come to it. Why
    /// close rather than stop starting lookups: the run keeps the rate and
    /// concurrency it was asked for, which is what it measures.
    fn close_oldest_lingering(&mut self) -> bool {
        let oldest = self
            .active
            .iter_mut()
            .filter(|l| l.linger_until.is_some() && l.sockets() > 0)
            .min_by_key(|l| l.linger_until);
        let Some(lookup) = oldest else { return false };
        let closed = lookup.close() as u64;
        self.open_sockets -= closed;
        self.lingering -= closed;
        self.result.sockets.lingering_closed_early += closed;
        true
    }

    /// A fresh UDP socket for a query; at the open-file limit, closes a
    /// lingering socket and tries again. `Ok(Err(_))` counts against the
    /// lookup (a connect failure).
    fn open_udp(&mut self) -> Result<io::Result<UdpSocket>> {
        loop {
            match fresh_udp(self.config.server, self.config.mode != Mode::Musl) {
                Ok(outcome) => {
                    if outcome.is_ok() {
                        self.opened();
                    }
                    return Ok(outcome);
                }
                Err(e) if is_descriptor_limit(&e) && self.close_oldest_lingering() => continue,
                Err(e) => return Err(self.socket_error("UDP", e)),
            }
        }
    }

    /// A fresh TCP connection under way, as [`Engine::open_udp`].
    fn open_tcp(&mut self) -> Result<io::Result<TcpStream>> {
        loop {
            match fresh_tcp(self.config.server) {
                Ok(outcome) => {
                    if outcome.is_ok() {
                        self.opened();
                    }
                    return Ok(outcome);
                }
                Err(e) if is_descriptor_limit(&e) && self.close_oldest_lingering() => continue,
                Err(e) => return Err(self.socket_error("TCP", e)),
            }
        }
    }

    /// Why no probe socket could be made, with the real cause and what to do.
    fn socket_error(&self, kind: &str, e: io::Error) -> Error {
        let held = format!(
            "{} probe sockets were open ({} lookups in flight, {} lingering for late answers, at most {} of those allowed)",
            self.open_sockets,
            self.in_flight(),
            self.lingering,
            self.result.sockets.lingering_limit
        );
        Error::Runtime(match e.raw_os_error() {
            Some(libc::EMFILE) => format!(
                "cannot open a probe {kind} socket: {e}: this process reached its open-file limit ({}, `ulimit -n`) and no lingering socket was left to close; {held}; something else in ctdiag holds descriptors too, or the limit was lowered during the run: raise it (`ulimit -n`) or lower --concurrency",
                open_file_limits().0
            ),
            Some(libc::ENFILE) => format!(
                "cannot open a probe {kind} socket: {e}: the whole system is at its open-file limit (`sysctl fs.file-max`), not this probe; {held}; free descriptors elsewhere or raise fs.file-max"
            ),
            Some(libc::ENOBUFS) | Some(libc::ENOMEM) => format!(
                "cannot open a probe {kind} socket: {e}: the kernel is short of memory for sockets; {held}; lower --concurrency or --rate"
            ),
            _ => format!("cannot open a probe {kind} socket: {e}; {held}"),
        })
    }

    pub(super) fn run(&mut self, stop: &AtomicBool, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        let t0 = Instant::now();
        let interval =
            (self.config.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / self.config.rate));
        let start_until =
            t0 + self.config.duration.unwrap_or(self.config.max_run).min(self.config.max_run);
        let mut next_start = t0;
        let mut in_flight = 0usize;
        loop {
            let now = Instant::now();
            let stopping = stop.load(Ordering::Relaxed);
            if stopping {
                self.result.interrupted = true;
            }
            let more_allowed = !stopping
                && self.config.count.is_none_or(|c| self.started < c)
                && now < start_until;
            if !more_allowed
                && self.config.count.is_some_and(|c| self.started < c)
                && now >= start_until
            {
                self.result.capped = self.config.duration.is_none();
            }
            // Start what the rate and the concurrency allow.
            if more_allowed {
                while in_flight < self.config.concurrency
                    && self.config.count.is_none_or(|c| self.started < c)
                {
                    let now = Instant::now();
                    if now < next_start || now >= start_until {
                        break;
                    }
                    self.start_lookup(now)?;
                    in_flight += 1;
                    if let Some(step) = interval {
                        next_start += step;
                        // Why: after a stall (concurrency full) do not burst
                        // to catch up; keep the spacing.
                        if next_start + step < now {
                            next_start = now;
                        }
                    }
                }
            }
            self.settle(Instant::now(), progress)?;
            in_flight = self.in_flight();
            let can_start_more = more_allowed
                && self.config.count.is_none_or(|c| self.started < c)
                && Instant::now() < start_until;
            if self.active.is_empty() && !can_start_more {
                break;
            }
            // Sleep until a socket is ready or something is due.
            let mut wake =
                self.active.iter().filter_map(|l| l.next_deadline(self.config.timeout)).min();
            if can_start_more && in_flight < self.config.concurrency {
                let due = next_start.min(start_until);
                wake = Some(wake.map_or(due, |w| w.min(due)));
            }
            let ready = self.wait(wake)?;
            let now = Instant::now();
            for (index, which, revents) in ready {
                self.service(index, which, revents, now);
            }
            self.settle(Instant::now(), progress)?;
            in_flight = self.in_flight();
        }
        self.result.elapsed = t0.elapsed();
        Ok(())
    }

    /// Polls the active sockets until one is ready or `wake`; returns which
    /// socket of which lookup is ready, with its events.
    fn wait(&self, wake: Option<Instant>) -> Result<Vec<(usize, Which, PollFlags)>> {
        let mut fds: Vec<PollFd> = Vec::with_capacity(self.active.len());
        let mut owners: Vec<(usize, Which)> = Vec::with_capacity(self.active.len());
        for (index, lookup) in self.active.iter().enumerate() {
            if let Some(conn) = &lookup.conn {
                let mut flags = PollFlags::POLLIN;
                if let Conn::Tcp(t) = conn {
                    if !t.connected || t.written < t.out.len() {
                        flags |= PollFlags::POLLOUT;
                    }
                }
                fds.push(PollFd::new(conn.fd(), flags));
                owners.push((index, Which::Current));
            }
            if let Some(conn) = &lookup.first_conn {
                fds.push(PollFd::new(conn.fd(), PollFlags::POLLIN));
                owners.push((index, Which::First));
            }
        }
        let timeout = wake.map(|w| {
            let left = w.saturating_duration_since(Instant::now());
            TimeSpec::from_duration(left)
        });
        // Why a bound with no deadline at all: never block forever.
        let timeout =
            timeout.unwrap_or_else(|| TimeSpec::from_duration(Duration::from_millis(100)));
        match nix::poll::ppoll(&mut fds, Some(timeout), None) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Vec::new()),
            Err(errno) => return Err(Error::Runtime(format!("ppoll failed: {errno}"))),
        }
        Ok(fds
            .iter()
            .zip(owners)
            .filter_map(|(fd, (index, which))| {
                fd.revents().filter(|r| !r.is_empty()).map(|r| (index, which, r))
            })
            .collect())
    }

    fn new_queries(&mut self) -> [QuerySlot; 2] {
        let name = &self.config.names[(self.started % self.config.names.len() as u64) as usize];
        let id_a = self.ids.next_u16();
        let mut id_aaaa = self.ids.next_u16();
        while id_aaaa == id_a {
            id_aaaa = self.ids.next_u16();
        }
        [(id_a, QueryType::A), (id_aaaa, QueryType::AAAA)].map(|(id, qtype)| {
            let sent = SentQuery { id, name: name.clone(), qtype };
            // Encoding a validated name cannot fail; an empty packet would
            // only be counted as a loss.
            let bytes = sent.encode().unwrap_or_default();
            QuerySlot { sent, bytes, state: QueryState::Unsent }
        })
    }

    fn start_lookup(&mut self, now: Instant) -> Result<()> {
        let queries = self.new_queries();
        self.started += 1;
        let mut lookup = Lookup::new(now, queries);
        self.result.by_type[0].sent += 1;
        self.result.by_type[1].sent += 1;
        match self.config.mode {
            Mode::Parallel | Mode::Threads | Mode::Sequential | Mode::Reopen | Mode::Musl => {
                match self.open_udp()? {
                    Err(e) => lookup.fail_open_queries(failure_of_connect(&e)),
                    Ok(socket) => {
                        let socket = Arc::new(socket);
                        lookup.conn = Some(Conn::Udp(Arc::clone(&socket)));
                        match self.config.mode {
                            Mode::Parallel => send_parallel(&mut lookup, &socket),
                            Mode::Threads => self.send_threads(&mut lookup, &socket)?,
                            Mode::Musl => {
                                send_musl(&mut lookup, &socket, self.config.server);
                                lookup.retry_at = self.config.retry_after.map(|after| now + after);
                            }
                            _ => send_one(&mut lookup, 0, &socket),
                        }
                    }
                }
            }
            Mode::Tcp => match self.open_tcp()? {
                Err(e) => lookup.fail_open_queries(failure_of_connect(&e)),
                Ok(stream) => {
                    let mut out = Vec::with_capacity(2 * 64);
                    for slot in &lookup.queries {
                        out.extend_from_slice(&(slot.bytes.len() as u16).to_be_bytes());
                        out.extend_from_slice(&slot.bytes);
                    }
                    lookup.conn = Some(Conn::Tcp(TcpConn {
                        stream,
                        connected: false,
                        out,
                        written: 0,
                        inbuf: Vec::new(),
                    }));
                }
            },
        }
        lookup.spread_refusal();
        self.active.push(lookup);
        Ok(())
    }

    fn send_threads(&mut self, lookup: &mut Lookup, socket: &Arc<UdpSocket>) -> Result<()> {
        let Some(pair) = &self.senders else {
            return Err(Error::Runtime("threads mode without sender threads".into()));
        };
        let sent = pair.send(socket, [&lookup.queries[0].bytes, &lookup.queries[1].bytes])?;
        for (slot, (at, outcome)) in lookup.queries.iter_mut().zip(sent) {
            slot.state = match outcome {
                Ok(_) => QueryState::Pending { sent_at: at },
                Err(e) => QueryState::Failed(failure_of_send(socket, &e)),
            };
        }
        Ok(())
    }

    /// Reads what a ready socket has and applies it.
    fn service(&mut self, index: usize, which: Which, revents: PollFlags, now: Instant) {
        let server = self.config.server;
        let Some(lookup) = self.active.get_mut(index) else { return };
        let (conn, carried) = match which {
            Which::Current => (&lookup.conn, lookup.conn_carries),
            Which::First => (&lookup.first_conn, [true, false]),
        };
        match conn {
            None => {}
            Some(Conn::Udp(socket)) => {
                let socket = Arc::clone(socket);
                // With IP_RECVERR a queued ICMP error keeps POLLERR raised
                // until it is read, and it says what the network answered.
                let queued = if revents.intersects(PollFlags::POLLERR) {
                    drain_icmp_errors(&socket)
                } else {
                    None
                };
                let mut failure = queued.map(|errno| failure_of_network(Some(errno)));
                loop {
                    match socket.recv_from(&mut self.buf) {
                        Ok((len, source)) => {
                            let packet = &self.buf[..len];
                            lookup.on_packet_for(
                                packet,
                                carried,
                                source,
                                server,
                                now,
                                &mut self.result,
                            );
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => {
                            failure = Some(failure_of_network(queued.or(e.raw_os_error())));
                            break;
                        }
                    }
                }
                // An ICMP error for this flow: every open query the socket
                // carried has failed (the error is reported once).
                if let Some(failure) = failure {
                    for (slot, carried) in lookup.queries.iter_mut().zip(carried) {
                        if carried
                            && matches!(slot.state, QueryState::Pending { .. } | QueryState::Unsent)
                        {
                            slot.state = QueryState::Failed(failure);
                        }
                    }
                }
            }
            Some(Conn::Tcp(_)) => service_tcp(lookup, revents, server, now, &mut self.result),
        }
    }

    /// Advances sequential modes, expires deadlines, accounts finished
    /// lookups, and closes sockets whose lingering is over (or, at the
    /// lingering limit, the oldest lingering ones).
    fn settle(&mut self, now: Instant, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        let timeout = self.config.timeout;
        let mut index = 0;
        while index < self.active.len() {
            let lookup = &mut self.active[index];
            if let Some(until) = lookup.linger_until {
                if now >= until || lookup.sockets() == 0 {
                    self.remove(index);
                } else {
                    index += 1;
                }
                continue;
            }
            if let Some(retry_after) = self.config.retry_after {
                lookup.resend_due(now, timeout, retry_after, self.config.server, &mut self.result);
            }
            lookup.expire(now, timeout);
            // single-request(-reopen): the AAAA query follows once the A
            // query is done.
            let aaaa_due = matches!(self.config.mode, Mode::Sequential | Mode::Reopen)
                && !matches!(
                    lookup.queries[0].state,
                    QueryState::Unsent | QueryState::Pending { .. }
                )
                && lookup.queries[1].state == QueryState::Unsent;
            if aaaa_due {
                self.send_second(index)?;
            }
            let lookup = &mut self.active[index];
            if !lookup.finished() {
                index += 1;
                continue;
            }
            account(lookup, self.config.slow_after, self.config.resolver_timeout, &mut self.result);
            progress(self.result.lookups);
            let any_timed_out =
                lookup.queries.iter().any(|q| q.state == QueryState::Failed(Failure::TimedOut));
            let udp = matches!(lookup.conn, Some(Conn::Udp(_))) || lookup.first_conn.is_some();
            let linger = any_timed_out
                && udp
                && !self.config.linger.is_zero()
                && self.result.sockets.lingering_limit > 0;
            if !linger {
                self.remove(index);
                continue;
            }
            // What a lingering lookup keeps: only the sockets that still
            // wait for an answer that timed out.
            let lookup = &mut self.active[index];
            if lookup.first_conn.is_some() {
                if lookup.queries[0].state != QueryState::Failed(Failure::TimedOut) {
                    lookup.first_conn = None;
                    self.open_sockets -= 1;
                }
                if lookup.queries[1].state != QueryState::Failed(Failure::TimedOut)
                    && lookup.conn.take().is_some()
                {
                    self.open_sockets -= 1;
                }
            }
            let needed = self.active[index].sockets() as u64;
            let limit = self.result.sockets.lingering_limit;
            // At the limit, the oldest lingering sockets make room (they
            // belong to other lookups: indexes do not move).
            while self.lingering + needed > limit && self.close_oldest_lingering() {}
            if self.lingering + needed > limit {
                self.remove(index);
                continue;
            }
            self.active[index].linger_until = Some(now + self.config.linger);
            self.lingering += needed;
            index += 1;
        }
        Ok(())
    }

    /// Sends the AAAA query of a sequential or reopen lookup once its A
    /// query is done: on the same socket, or (reopen) on a new one while
    /// the A socket stays open if its query timed out.
    fn send_second(&mut self, index: usize) -> Result<()> {
        if self.config.mode == Mode::Reopen {
            let opened = self.open_udp()?;
            let lookup = &mut self.active[index];
            let first = lookup.conn.take();
            // Why keep it only after a timeout: an answered A query needs
            // nothing more from its socket (glibc closes it); a timed-out
            // one may still get its late answer, which counts as late.
            if lookup.queries[0].state == QueryState::Failed(Failure::TimedOut) {
                lookup.first_conn = first;
            } else if first.is_some() {
                self.open_sockets -= 1;
            }
            let lookup = &mut self.active[index];
            lookup.conn_carries = [false, true];
            match opened {
                Ok(socket) => {
                    let socket = Arc::new(socket);
                    lookup.conn = Some(Conn::Udp(Arc::clone(&socket)));
                    send_one(lookup, 1, &socket);
                }
                Err(e) => lookup.queries[1].state = QueryState::Failed(failure_of_connect(&e)),
            }
            // No spread_refusal: the AAAA socket is another flow.
            return Ok(());
        }
        let lookup = &mut self.active[index];
        if let Some(Conn::Udp(socket)) = &lookup.conn {
            let socket = Arc::clone(socket);
            send_one(lookup, 1, &socket);
        } else {
            lookup.queries[1].state = QueryState::Failed(Failure::SendFailed);
        }
        lookup.spread_refusal();
        Ok(())
    }
}
