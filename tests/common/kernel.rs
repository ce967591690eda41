//! Test helpers for the kernel's side of things, shared by the integration
//! tests (`tests/common`) and the crate's root-only unit tests
//! (`src/testutil.rs` includes this file): parsing the reference tool's
//! `conntrack -S`, and building the raw packets tests send. Only std here.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Per-CPU counters as `conntrack -S` prints them: cpu -> name -> value.
pub type ConntrackS = BTreeMap<u64, BTreeMap<String, u64>>;

/// Parses `conntrack -S` output (`cpu=0 found=0 invalid=12 ...` per line);
/// an error names the line that does not parse.
pub fn parse_conntrack_s(text: &str) -> Result<ConntrackS, String> {
    let mut cpus = BTreeMap::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let mut cpu = None;
        let mut counters = BTreeMap::new();
        for field in line.split_whitespace() {
            let (name, value) =
                field.split_once('=').ok_or_else(|| format!("{field:?} in {line:?}"))?;
            let value: u64 = value.parse().map_err(|_| format!("{field:?} in {line:?}"))?;
            if name == "cpu" {
                cpu = Some(value);
            } else {
                counters.insert(name.to_string(), value);
            }
        }
        let cpu = cpu.ok_or_else(|| format!("no cpu= in {line:?}"))?;
        cpus.insert(cpu, counters);
    }
    if cpus.is_empty() {
        return Err("conntrack -S printed no CPU line".into());
    }
    Ok(cpus)
}

/// One counter summed over all CPUs (0 when the kernel lacks it).
pub fn total(cpus: &ConntrackS, counter: &str) -> u64 {
    cpus.values().filter_map(|c| c.get(counter)).sum()
}

/// Whether the kernel sends `counter` at all (`conntrack -S` prints it on
/// some CPU line): `clash_resolve` since 5.10, `chaintoolong` since 5.15,
/// or wherever a distribution backported them.
// The integration tests use this; the crate's unit tests, which include
// this file too, do not.
#[allow(dead_code)]
pub fn has_counter(cpus: &ConntrackS, counter: &str) -> bool {
    cpus.values().any(|c| c.contains_key(counter))
}

/// What the kernel showed between two `conntrack -S` reads in one
/// namespace, around a run: which counters it has and how far each moved.
/// Tests whose expectations differ between kernels decide by this, never
/// by the code under test or a version number.
// Integration tests only (see `has_counter`).
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct Moved {
    before: ConntrackS,
    after: ConntrackS,
}

#[allow(dead_code)]
impl Moved {
    /// The change from `before` to `after` (read in the same namespace).
    pub fn between(before: ConntrackS, after: ConntrackS) -> Moved {
        Moved { before, after }
    }

    /// Whether this kernel has `counter`.
    pub fn has(&self, counter: &str) -> bool {
        has_counter(&self.after, counter)
    }

    /// How far `counter` moved over all CPUs; None when the kernel does not
    /// have it. A counter that went down is a broken read and panics.
    pub fn by(&self, counter: &str) -> Option<u64> {
        if !self.has(counter) {
            return None;
        }
        let (before, after) = (total(&self.before, counter), total(&self.after, counter));
        Some(after.checked_sub(before).unwrap_or_else(|| {
            panic!("{counter} went down from {before} to {after}: not two reads of one namespace")
        }))
    }

    /// insert_failed + drop moved: what the kernel counted as packets it
    /// dropped (a clash loser on a kernel that drops it counts in both,
    /// so this bounds the queries such drops can lose). Zero on a kernel
    /// that resolved every clash of the run and counts them in
    /// clash_resolve.
    pub fn drops(&self) -> u64 {
        self.by("insert_failed").unwrap_or(0) + self.by("drop").unwrap_or(0)
    }

    /// The counter in which this kernel counts a raced A/AAAA pair:
    /// clash_resolve where it has it (5.10+); else insert_failed, which
    /// counts the clash whether the kernel resolved it (5.6-5.9) or dropped
    /// the loser (before 5.6).
    pub fn race_counter(&self) -> &'static str {
        if self.has("clash_resolve") {
            "clash_resolve"
        } else {
            "insert_failed"
        }
    }

    /// Races the kernel counted during the run, in [`Moved::race_counter`].
    pub fn raced(&self) -> u64 {
        self.by(self.race_counter()).unwrap_or(0)
    }
}

/// A DNS query as glibc sends it: ID `id`, RD set, one question `name`
/// of type `qtype` (1 A, 28 AAAA), class IN.
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; QDCOUNT 1
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // class IN
    q
}

/// A 20-byte TCP header `source:sport -> destination:dport` with SYN and
/// FIN both set (never valid together: conntrack counts it `invalid`
/// whatever the load) and a correct checksum, for a raw IPPROTO_TCP socket.
pub fn tcp_syn_fin(source: Ipv4Addr, destination: Ipv4Addr, sport: u16, dport: u16) -> [u8; 20] {
    let mut segment = [0u8; 20];
    segment[0..2].copy_from_slice(&sport.to_be_bytes());
    segment[2..4].copy_from_slice(&dport.to_be_bytes());
    segment[4..8].copy_from_slice(&u32::from(sport).to_be_bytes()); // sequence number
    segment[12] = 5 << 4; // data offset: 5 words, no options
    segment[13] = 0x03; // flags: FIN | SYN
    segment[14..16].copy_from_slice(&1024u16.to_be_bytes()); // window
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&source.octets());
    pseudo.extend_from_slice(&destination.octets());
    pseudo.extend_from_slice(&[0, 6, 0, 20]); // zero, protocol TCP, TCP length
    let mut sum: u32 = 0;
    for pair in pseudo.chunks(2).chain(segment.chunks(2)) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    segment[16..18].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    segment
}

/// Sends `segments` (built by [`tcp_syn_fin`]) to `destination` from a
/// raw socket of the calling thread's namespace. Needs CAP_NET_RAW.
pub fn send_raw_tcp(destination: Ipv4Addr, segments: &[[u8; 20]]) -> std::io::Result<()> {
    // SAFETY: plain socket/sendto/close calls with valid buffers and a
    // sockaddr_in that outlives them.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut dst: libc::sockaddr_in = std::mem::zeroed();
        dst.sin_family = libc::AF_INET as libc::sa_family_t;
        dst.sin_addr.s_addr = u32::from_ne_bytes(destination.octets());
        let mut outcome = Ok(());
        for segment in segments {
            let sent = libc::sendto(
                fd,
                segment.as_ptr().cast(),
                segment.len(),
                0,
                (&dst as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            if sent != segment.len() as isize {
                outcome = Err(std::io::Error::last_os_error());
                break;
            }
        }
        libc::close(fd);
        outcome
    }
}
