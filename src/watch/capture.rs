//! The live capture: one `AF_PACKET` socket on every interface of the
//! namespace (`ETH_P_ALL`, ifindex 0, as `tcpdump -i any`), cooked
//! (`SOCK_DGRAM`: each packet from its network header, VLAN tags already
//! in the metadata), a classic BPF filter keeping UDP and TCP port 53 over
//! IPv4 and IPv6, and a `TPACKET_V3` memory-mapped ring the kernel fills
//! block by block. `PACKET_STATISTICS` counts what the ring dropped.
//!
//! Hand-made over libc rather than a crate: libpcap would have to be
//! linked statically into the static glibc binary the image ships (no
//! loader in it), and the AF_PACKET crates seen either lack TPACKET_V3
//! with a filter or are unmaintained; the kernel interface is small and
//! stable (Documentation/networking/packet_mmap.rst).

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::packet::{self, DnsPacket, LinkType};
use super::source::{Next, PacketSource, SourceError};

/// Ring geometry: 16 blocks of 512 KiB (8 MiB), each block handed over
/// when full or after [`BLOCK_TIMEOUT_MS`]: room for a burst of tens of
/// thousands of DNS packets while the reader is busy.
const BLOCK_SIZE: u32 = 512 * 1024;
const BLOCK_COUNT: u32 = 16;
/// The frame size the kernel checks `tp_frame_nr` against (not a frame
/// size with V3, whose frames are packed).
const FRAME_SIZE: u32 = 2048;
/// A block not full is handed over after this long.
const BLOCK_TIMEOUT_MS: u32 = 20;
/// Bytes kept of each packet: headers and the question (the answer's
/// records are not read).
const SNAPLEN: u32 = 600;
/// How long one wait for a block lasts before time moves on.
const POLL_MS: u16 = 100;

/// `ETH_P_ALL`.
const ETH_P_ALL: u16 = 0x0003;

/// The classic BPF program: accept UDP/TCP with source or destination
/// port 53 over IPv4 (first fragments only) and IPv6 (no extension
/// headers: stub resolvers and CoreDNS send none), [`SNAPLEN`] bytes.
/// The packet starts at the network header (`SOCK_DGRAM`); the protocol is
/// the ancillary `skb->protocol`.
fn filter() -> Vec<libc::sock_filter> {
    const LD_H_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
    const LD_B_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const LD_H_IND: u16 = 0x48; // BPF_LD | BPF_H | BPF_IND
    const LDX_B_MSH: u16 = 0xb1; // BPF_LDX | BPF_B | BPF_MSH
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let protocol = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;
    vec![
        /* 0 */ op(LD_H_ABS, 0, 0, protocol),
        /* 1 */ op(JEQ_K, 0, 10, 0x0800),
        // IPv4: protocol UDP or TCP, not a later fragment.
        /* 2 */
        op(LD_B_ABS, 0, 0, 9),
        /* 3 */ op(JEQ_K, 1, 0, 17),
        /* 4 */ op(JEQ_K, 0, 16, 6),
        /* 5 */ op(LD_H_ABS, 0, 0, 6),
        /* 6 */ op(JSET_K, 14, 0, 0x1fff),
        /* 7 */ op(LDX_B_MSH, 0, 0, 0),
        /* 8 */ op(LD_H_IND, 0, 0, 0),
        /* 9 */ op(JEQ_K, 10, 0, 53),
        /* 10 */ op(LD_H_IND, 0, 0, 2),
        /* 11 */ op(JEQ_K, 8, 9, 53),
        // IPv6 (protocol 0x86dd): next header UDP or TCP at 40.
        /* 12 */
        op(JEQ_K, 0, 8, 0x86dd),
        /* 13 */ op(LD_B_ABS, 0, 0, 6),
        /* 14 */ op(JEQ_K, 1, 0, 17),
        /* 15 */ op(JEQ_K, 0, 5, 6),
        /* 16 */ op(LD_H_ABS, 0, 0, 40),
        /* 17 */ op(JEQ_K, 2, 0, 53),
        /* 18 */ op(LD_H_ABS, 0, 0, 42),
        /* 19 */ op(JEQ_K, 0, 1, 53),
        /* 20 */ op(RET_K, 0, 0, SNAPLEN),
        /* 21 */ op(RET_K, 0, 0, 0),
    ]
}

/// An open capture: the socket, its ring, what was taken from it.
pub struct LiveCapture {
    fd: OwnedFd,
    ring: *mut u8,
    ring_len: usize,
    /// The next block to look at.
    block: u32,
    ready: VecDeque<DnsPacket>,
    drops: u64,
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture")
            .field("block", &self.block)
            .field("drops", &self.drops)
            .finish()
    }
}

// SAFETY: the ring is owned by this value alone (mapped in `open`,
// unmapped in `drop`); nothing else holds the pointer.
unsafe impl Send for LiveCapture {}

fn os_error(what: &str) -> SourceError {
    let e = std::io::Error::last_os_error();
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => ": CAP_NET_RAW is needed; run as root",
        _ => "",
    };
    SourceError::Capture(format!("{what}: {e}{hint}"))
}

fn set_option<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &str,
) -> Result<(), SourceError> {
    // SAFETY: `value` is a valid `T` for the call's duration and its size
    // is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(os_error(what));
    }
    Ok(())
}

impl LiveCapture {
    /// Opens the capture in the current network namespace (the caller
    /// enters the node's first).
    pub fn open() -> Result<LiveCapture, SourceError> {
        // SAFETY: plain socket(2); the fd is owned right after.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ALL.to_be()),
            )
        };
        if raw < 0 {
            return Err(os_error("AF_PACKET socket"));
        }
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let program = filter();
        let fprog =
            libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr().cast_mut() };
        set_option(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog,
            "attaching the port 53 filter",
        )?;
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        set_option(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &version, "TPACKET_V3")?;
        let req = libc::tpacket_req3 {
            tp_block_size: BLOCK_SIZE,
            tp_block_nr: BLOCK_COUNT,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: BLOCK_SIZE / FRAME_SIZE * BLOCK_COUNT,
            tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_option(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req, "the capture ring")?;
        let ring_len = (BLOCK_SIZE * BLOCK_COUNT) as usize;
        // SAFETY: maps the ring the kernel just allocated for this socket.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED,
                fd.as_raw_fd(),
                0,
            )
        };
        let ring = if ring == libc::MAP_FAILED {
            // MAP_LOCKED needs RLIMIT_MEMLOCK room; without it, unlocked.
            // SAFETY: as above.
            let again = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    ring_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            if again == libc::MAP_FAILED {
                return Err(os_error("mapping the capture ring"));
            }
            again
        } else {
            ring
        };
        // SAFETY: zeroed sockaddr_ll is valid; bound to every interface.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ALL.to_be();
        addr.sll_ifindex = 0;
        let capture = LiveCapture {
            fd,
            ring: ring.cast(),
            ring_len,
            block: 0,
            ready: VecDeque::new(),
            drops: 0,
        };
        // SAFETY: `addr` is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                capture.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(os_error("binding the capture"));
        }
        Ok(capture)
    }

    /// The block `n`'s start.
    fn block_ptr(&self, n: u32) -> *mut u8 {
        // SAFETY: n < BLOCK_COUNT, within the mapping.
        unsafe { self.ring.add((n * BLOCK_SIZE) as usize) }
    }

    /// The block's `block_status` word (offset 8: after `version` and
    /// `offset_to_priv`), shared with the kernel.
    fn status(&self, n: u32) -> &AtomicU32 {
        // SAFETY: aligned u32 inside the mapping, alive as long as self.
        unsafe { &*(self.block_ptr(n).add(8) as *const AtomicU32) }
    }

    /// Takes the packets of every block the kernel has handed over.
    fn drain_blocks(&mut self) {
        for _ in 0..BLOCK_COUNT {
            let n = self.block;
            if self.status(n).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                break;
            }
            self.read_block(n);
            self.status(n).store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.block = (n + 1) % BLOCK_COUNT;
        }
    }

    fn read_block(&mut self, n: u32) {
        let block = self.block_ptr(n);
        let read_u32 = |p: *const u8| -> u32 {
            // SAFETY: callers pass offsets checked against BLOCK_SIZE.
            unsafe { std::ptr::read_unaligned(p.cast::<u32>()) }
        };
        let num_pkts = read_u32(unsafe { block.add(12) });
        let mut offset = read_u32(unsafe { block.add(16) }) as usize;
        for _ in 0..num_pkts {
            // Offsets come from the kernel; still, never read outside the block.
            if offset + 48 > BLOCK_SIZE as usize {
                break;
            }
            // SAFETY: offset + header within the block (checked above).
            let hdr = unsafe { block.add(offset) };
            let next = read_u32(hdr) as usize;
            let sec = read_u32(unsafe { hdr.add(4) });
            let nsec = read_u32(unsafe { hdr.add(8) });
            let snaplen = read_u32(unsafe { hdr.add(12) }) as usize;
            let net = usize::from(unsafe { std::ptr::read_unaligned(hdr.add(26).cast::<u16>()) });
            if offset + net + snaplen <= BLOCK_SIZE as usize {
                // SAFETY: the packet's bytes lie within the block (checked).
                let data = unsafe { std::slice::from_raw_parts(hdr.add(net), snaplen) };
                let ts = Duration::new(u64::from(sec), nsec.min(999_999_999));
                if let Some(p) = packet::decode(LinkType::RawIp, ts, data) {
                    self.ready.push_back(p);
                }
            }
            if next == 0 {
                break;
            }
            offset += next;
        }
    }

    /// Reads and resets the kernel's counters, adding the drops.
    fn read_stats(&mut self) {
        let mut stats = libc::tpacket_stats_v3 { tp_packets: 0, tp_drops: 0, tp_freeze_q_cnt: 0 };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `stats` and `len` are valid for the kernel to write.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut stats as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            self.drops += u64::from(stats.tp_drops);
        }
    }
}

impl PacketSource for LiveCapture {
    fn next(&mut self) -> Result<Next, SourceError> {
        if let Some(p) = self.ready.pop_front() {
            return Ok(Next::Packet(p));
        }
        self.drain_blocks();
        if let Some(p) = self.ready.pop_front() {
            return Ok(Next::Packet(p));
        }
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, i32::from(POLL_MS)) };
        if rc < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(os_error("waiting for packets"));
        }
        self.drain_blocks();
        match self.ready.pop_front() {
            Some(p) => Ok(Next::Packet(p)),
            None => Ok(Next::Idle(super::run::wall_clock())),
        }
    }

    fn drops(&mut self) -> u64 {
        self.read_stats();
        self.drops
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, unmapped once.
        unsafe {
            libc::munmap(self.ring.cast(), self.ring_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every jump lands inside the program (the kernel refuses it
    /// otherwise, at run time).
    #[test]
    fn filter_jumps_stay_inside() {
        let program = filter();
        for (i, op) in program.iter().enumerate() {
            if op.code & 0x07 == 0x05 {
                assert!(i + 1 + usize::from(op.jt) < program.len(), "{i}");
                assert!(i + 1 + usize::from(op.jf) < program.len(), "{i}");
            }
        }
    }
}
