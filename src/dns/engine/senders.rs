//! How a lookup's queries leave: one `sendmmsg(2)` (parallel), two
//! threads at a barrier (threads), `sendto(2)` back to back (musl), one at
//! a time (sequential, reopen).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::error::{Error, Result};

use super::lookup::{failure_of_send, Failure, Lookup, QueryState};

/// A two-party barrier that spins instead of sleeping. Why: with a futex
/// barrier the last thread to arrive runs on while the other is still being
/// woken up, tens of microseconds apart; spinning releases both within
/// nanoseconds, which is what makes the two packets meet in conntrack.
#[derive(Debug, Default)]
struct SpinBarrier {
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    /// Spins this long before yielding the CPU (the other thread may need it).
    const SPINS_BEFORE_YIELD: u32 = 200_000;

    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == 2 {
            self.arrived.store(0, Ordering::Release);
            self.generation.fetch_add(1, Ordering::AcqRel);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if spins < Self::SPINS_BEFORE_YIELD {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// The second sender of [`Mode::Threads`](super::Mode::Threads): a helper thread that sends the
/// AAAA query while the engine thread sends the A query, both released by
/// one spinning barrier. Why the engine thread is the other sender: one
/// thread wake-up per lookup instead of three.
pub(super) struct SenderPair {
    jobs: mpsc::Sender<SendJob>,
    done: mpsc::Receiver<(Instant, io::Result<usize>)>,
    barrier: Arc<SpinBarrier>,
    handle: JoinHandle<()>,
}

struct SendJob {
    socket: Arc<UdpSocket>,
    bytes: Vec<u8>,
}

impl SenderPair {
    pub(super) fn spawn() -> Result<Self> {
        let barrier = Arc::new(SpinBarrier::default());
        let (done_tx, done) = mpsc::channel();
        let (jobs, rx) = mpsc::channel::<SendJob>();
        let helper_barrier = Arc::clone(&barrier);
        let handle = std::thread::Builder::new()
            .name("probe-send".into())
            .spawn(move || {
                for job in rx {
                    helper_barrier.wait();
                    let sent = job.socket.send(&job.bytes);
                    let at = Instant::now();
                    drop(job);
                    if done_tx.send((at, sent)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Runtime(format!("cannot start a sender thread: {e}")))?;
        Ok(SenderPair { jobs, done, barrier, handle })
    }

    /// Sends both queries at the same instant, A from this thread and AAAA
    /// from the helper; the send results in query order.
    pub(super) fn send(
        &self,
        socket: &Arc<UdpSocket>,
        bytes: [&[u8]; 2],
    ) -> Result<[(Instant, io::Result<usize>); 2]> {
        let broken = || Error::Runtime("the sender thread stopped unexpectedly".into());
        self.jobs
            .send(SendJob { socket: Arc::clone(socket), bytes: bytes[1].to_vec() })
            .map_err(|_| broken())?;
        self.barrier.wait();
        let sent_a = socket.send(bytes[0]);
        let at_a = Instant::now();
        let (at_aaaa, sent_aaaa) = self.done.recv().map_err(|_| broken())?;
        Ok([(at_a, sent_a), (at_aaaa, sent_aaaa)])
    }

    pub(super) fn shutdown(self) {
        drop(self.jobs);
        let _ = self.handle.join();
    }
}

/// Sends both datagrams in one `sendmmsg(2)` call, as glibc does; returns
/// how many left. Why libc and not `nix::sys::socket::sendmmsg` (nix 0.30):
/// nix tells how many messages left only through `MultiResults`, whose
/// iterator copies each message's source-address slot out of storage that
/// only `recvmmsg` fills (after a send it was never written), and the
/// count matters here: a partial send (1) sends the AAAA query again alone.
fn send_pair_mmsg(socket: &UdpSocket, a: &[u8], b: &[u8]) -> io::Result<usize> {
    let mut iov = [
        libc::iovec { iov_base: a.as_ptr() as *mut libc::c_void, iov_len: a.len() },
        libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() },
    ];
    // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
    let mut messages: [libc::mmsghdr; 2] = unsafe { std::mem::zeroed() };
    for (message, vec) in messages.iter_mut().zip(iov.iter_mut()) {
        message.msg_hdr.msg_iov = vec;
        message.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the headers point at iovecs and buffers that outlive the call;
    // the socket is connected, so no address is given.
    let sent = unsafe { libc::sendmmsg(socket.as_raw_fd(), messages.as_mut_ptr(), 2, 0) };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

pub(super) fn send_parallel(lookup: &mut Lookup, socket: &UdpSocket) {
    let outcome = send_pair_mmsg(socket, &lookup.queries[0].bytes, &lookup.queries[1].bytes);
    let at = Instant::now();
    match outcome {
        Ok(2) => {
            for slot in &mut lookup.queries {
                slot.state = QueryState::Pending { sent_at: at };
            }
        }
        Ok(1) => {
            lookup.queries[0].state = QueryState::Pending { sent_at: at };
            send_one(lookup, 1, socket);
        }
        Ok(_) => lookup.fail_open_queries(Failure::SendFailed),
        Err(e) => lookup.fail_open_queries(failure_of_send(socket, &e)),
    }
}

/// musl: A, then AAAA, each in its own `sendto(2)` on the unconnected
/// socket, back to back.
pub(super) fn send_musl(lookup: &mut Lookup, socket: &UdpSocket, server: SocketAddr) {
    for slot in &mut lookup.queries {
        let outcome = socket.send_to(&slot.bytes, server);
        let at = Instant::now();
        slot.state = match outcome {
            Ok(_) => QueryState::Pending { sent_at: at },
            Err(e) => QueryState::Failed(failure_of_send(socket, &e)),
        };
    }
}

pub(super) fn send_one(lookup: &mut Lookup, index: usize, socket: &UdpSocket) {
    let outcome = socket.send(&lookup.queries[index].bytes);
    let at = Instant::now();
    lookup.queries[index].state = match outcome {
        Ok(_) => QueryState::Pending { sent_at: at },
        Err(e) => QueryState::Failed(failure_of_send(socket, &e)),
    };
}
