//! `ctdiag lab fill`: many UDP conntrack entries in the lab node's table,
//! fast, without any process answering them.
//!
//! How: a raw IP socket (`IPPROTO_RAW`, the header written here) opened in
//! the client pod's namespace sends one empty UDP datagram per flow with
//! `sendmmsg`, each from its own spoofed source address and port inside the
//! client's subnet (`198.18.1.3`-`198.18.1.254`, `2001:db8:1::1:0:0/116`; the
//! pod itself is `.2`, so the node's reverse-path filter accepts them and
//! they never collide with the pod's own flows). Every datagram crosses the
//! node, whose conntrack confirms one UNREPLIED entry per tuple:
//!
//! - `--to cluster-ip`: to the kube-dns ClusterIP port 53; kube-proxy's rules
//!   DNAT each to an endpoint, so the entries look like DNS flows of pods
//!   (reply source = an endpoint). The DNS servers ignore an empty datagram.
//! - `--to unrelated`: to `198.18.250.1:9` / `[2001:db8:fa::1]:9`, which the
//!   node routes to its default gateway (the lab's router, which drops it):
//!   entries that belong to no Service.
//!
//! Tuples come from a cursor kept in the lab's state directory, so repeated
//! fills create new entries instead of refreshing old ones. The node's
//! entry count (`nf_conntrack_count` of its namespace, what `conntrack -C`
//! prints) is read before and after; when fewer entries appeared than
//! requested (a packet lost on the way, an entry evicted), the missing
//! number is sent again from fresh tuples, a bounded number of times.
//!
//! Cost, measured on this project's machine (Linux 6.18, 2 CPUs; the
//! README has the run): 250,000 entries in about 2 s, almost all of it in
//! the kernel (conntrack, NAT and routing of each datagram in the node).
//! The kernel keeps each entry in a 256-byte `nf_conntrack` slab object
//! plus small extensions: `Slab` in /proc/meminfo grew by 63 MB for
//! 250,000 entries, about 260 bytes each, held until they expire (the
//! kernel's UDP timeout for unreplied flows, 30 s, or `--timeout`) or the
//! lab is torn down. Entries of a child namespace count against the
//! machine-wide `nf_conntrack_max` per namespace (read-only there): a lab
//! node's table can be filled up to it without touching the root
//! namespace's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::LabInfo;
use crate::error::{Error, Result};
use crate::netns::Netns;

/// Where the fill's flows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FillTarget {
    /// The kube-dns ClusterIP, port 53 (DNATed to the endpoints).
    ClusterIp,
    /// An address outside every Service, routed to the node's gateway.
    Unrelated,
}

impl FillTarget {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FillTarget::ClusterIp => "cluster-ip",
            FillTarget::Unrelated => "unrelated",
        }
    }
}

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl Family {
    /// `ipv4` or `ipv6`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }
}

/// What `lab fill` does.
#[derive(Debug, Clone)]
pub struct FillConfig {
    /// The lab.
    pub prefix: String,
    /// Entries to create (1 to `nf_conntrack_max`).
    pub flows: u32,
    /// Where the flows go.
    pub target: FillTarget,
    /// IPv4 or IPv6 flows.
    pub family: Family,
    /// How long the entries live without traffic; `None`: the kernel's UDP
    /// timeout for unreplied flows (`nf_conntrack_udp_timeout`, 30 s by
    /// default).
    pub timeout: Option<Duration>,
}

/// Longest `--timeout` accepted (one day).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

impl FillConfig {
    /// Checks the fields that need no lab.
    pub fn validate(&self) -> Result<()> {
        super::validate_prefix(&self.prefix)?;
        if self.flows == 0 {
            return Err(Error::Usage("--flows 0: give the number of entries to create".into()));
        }
        if let Some(t) = self.timeout {
            if t.is_zero() || t > MAX_TIMEOUT {
                return Err(Error::Usage(format!(
                    "--timeout {}: between 1 and {} seconds",
                    t.as_secs(),
                    MAX_TIMEOUT.as_secs()
                )));
            }
        }
        Ok(())
    }
}

/// What `lab fill` did: the node's entry count before and after, from the
/// kernel (`nf_conntrack_count` of the node's namespace, as `conntrack -C`
/// prints it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FillReport {
    /// The lab.
    pub prefix: String,
    /// The node namespace whose table was filled.
    pub node_namespace: String,
    /// `ipv4` or `ipv6`.
    pub family: Family,
    /// `cluster-ip` or `unrelated`.
    pub target: FillTarget,
    /// Where every flow was sent, `ip:port`.
    pub destination: String,
    /// The spoofed source addresses, in words.
    pub sources: String,
    /// Entries requested.
    pub flows: u32,
    /// Datagrams sent (more than `flows` when some had to be sent again).
    pub packets_sent: u64,
    /// Sending rounds (1 unless entries were missing after the first).
    pub rounds: u32,
    /// The node's entry count before.
    pub entries_before: u64,
    /// The node's entry count after.
    pub entries_after: u64,
    /// `entries_after - entries_before` (other traffic and expiring entries
    /// in the node count too).
    pub created: i64,
    /// The kernel's limit per namespace (`nf_conntrack_max`).
    pub conntrack_max: u64,
    /// Seconds each entry lives without traffic.
    pub timeout_s: u64,
    /// Wall time of the whole fill, in milliseconds.
    pub elapsed_ms: f64,
    /// Anything worth knowing (table full, entries missing).
    pub notes: Vec<String>,
}

/// The fill's source range, first and last host byte (IPv4): `.2` is the
/// pod, so it is left out.
const V4_SOURCE_HOSTS: (u8, u8) = (3, 254);
/// Source ports: the unprivileged range.
const SOURCE_PORTS: (u16, u16) = (1024, 65535);
/// IPv6 source addresses used: `2001:db8:1::1:0:0` + 0..this.
const V6_SOURCE_HOSTS: u32 = 4096;
/// Where `--to unrelated` flows go: routed to the lab's router.
pub const UNRELATED_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 250, 1);
/// IPv6 counterpart of [`UNRELATED_V4`].
pub const UNRELATED_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xfa, 0, 0, 0, 0, 1);
/// The discard port: nothing listens there anyway.
const UNRELATED_PORT: u16 = 9;
/// Datagrams per `sendmmsg` call.
const BATCH: usize = 1024;
/// Most sending rounds.
const MAX_ROUNDS: u32 = 5;
/// How long to wait for the count to stop moving after a round.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(3);
/// The nftables table that gives the fill's entries their `--timeout`.
const TIMEOUT_TABLE: &str = "inet ctdiag-fill";

/// The first IPv6 fill source, `2001:db8:1::1:0:0`.
fn v6_source_base() -> u128 {
    u128::from(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 1, 0, 0))
}

/// How many distinct source tuples a family has.
fn tuple_space(family: Family) -> u64 {
    let ports = u64::from(SOURCE_PORTS.1 - SOURCE_PORTS.0) + 1;
    let hosts = match family {
        Family::Ipv4 => u64::from(V4_SOURCE_HOSTS.1 - V4_SOURCE_HOSTS.0) + 1,
        Family::Ipv6 => u64::from(V6_SOURCE_HOSTS),
    };
    hosts * ports
}

/// Source address and port of tuple number `n` (taken modulo the space):
/// the address varies fastest, so consecutive flows spread over the hash
/// table and the range.
pub fn source_of(family: Family, n: u64) -> SocketAddr {
    let n = n % tuple_space(family);
    match family {
        Family::Ipv4 => {
            let hosts = u64::from(V4_SOURCE_HOSTS.1 - V4_SOURCE_HOSTS.0) + 1;
            let host = V4_SOURCE_HOSTS.0 + (n % hosts) as u8;
            let port = SOURCE_PORTS.0 + (n / hosts) as u16;
            SocketAddr::new(Ipv4Addr::new(198, 18, 1, host).into(), port)
        }
        Family::Ipv6 => {
            let hosts = u64::from(V6_SOURCE_HOSTS);
            let ip = Ipv6Addr::from(v6_source_base() + u128::from(n % hosts));
            let port = SOURCE_PORTS.0 + (n / hosts) as u16;
            SocketAddr::new(ip.into(), port)
        }
    }
}

/// The source range in words, for the report.
fn sources_text(family: Family) -> String {
    match family {
        Family::Ipv4 => format!(
            "198.18.1.{}-198.18.1.{}, ports {}-{}",
            V4_SOURCE_HOSTS.0, V4_SOURCE_HOSTS.1, SOURCE_PORTS.0, SOURCE_PORTS.1
        ),
        Family::Ipv6 => format!(
            "{}-{}, ports {}-{}",
            Ipv6Addr::from(v6_source_base()),
            Ipv6Addr::from(v6_source_base() + u128::from(V6_SOURCE_HOSTS) - 1),
            SOURCE_PORTS.0,
            SOURCE_PORTS.1
        ),
    }
}

/// The nftables source match of the fill's range.
fn source_match(family: Family) -> String {
    match family {
        Family::Ipv4 => {
            format!("ip saddr 198.18.1.{}-198.18.1.{}", V4_SOURCE_HOSTS.0, V4_SOURCE_HOSTS.1)
        }
        Family::Ipv6 => format!(
            "ip6 saddr {}-{}",
            Ipv6Addr::from(v6_source_base()),
            Ipv6Addr::from(v6_source_base() + u128::from(V6_SOURCE_HOSTS) - 1)
        ),
    }
}

/// The `nft -f` input that gives entries of the fill's source range
/// `timeout` instead of the kernel's UDP timeouts: a `ct timeout` object
/// per family assigned in a raw-priority prerouting chain, before conntrack
/// creates the entry. Replaces an earlier fill's table.
pub fn timeout_ruleset(timeout: Duration) -> String {
    let s = timeout.as_secs();
    let mut out = String::new();
    for line in [
        format!("add table {TIMEOUT_TABLE}"),
        format!("delete table {TIMEOUT_TABLE}"),
        format!("add table {TIMEOUT_TABLE}"),
        format!(
            "add ct timeout {TIMEOUT_TABLE} fill-udp4 {{ protocol udp ; l3proto ip ; policy = {{ unreplied : {s}, replied : {s} }} ; }}"
        ),
        format!(
            "add ct timeout {TIMEOUT_TABLE} fill-udp6 {{ protocol udp ; l3proto ip6 ; policy = {{ unreplied : {s}, replied : {s} }} ; }}"
        ),
        format!(
            "add chain {TIMEOUT_TABLE} prerouting {{ type filter hook prerouting priority filter ; policy accept ; }}"
        ),
        format!(
            "add rule {TIMEOUT_TABLE} prerouting {} meta l4proto udp ct timeout set \"fill-udp4\"",
            source_match(Family::Ipv4)
        ),
        format!(
            "add rule {TIMEOUT_TABLE} prerouting {} meta l4proto udp ct timeout set \"fill-udp6\"",
            source_match(Family::Ipv6)
        ),
    ] {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The Internet checksum (RFC 1071) of `chunks` taken as one byte string of
/// even-length pieces.
fn internet_checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in chunks {
        let mut words = chunk.chunks_exact(2);
        for w in &mut words {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            sum += u32::from(u16::from_be_bytes([*last, 0]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Length of one fill datagram as written to the raw socket.
fn packet_len(family: Family) -> usize {
    match family {
        Family::Ipv4 => 20 + 8,
        Family::Ipv6 => 40 + 8,
    }
}

/// Writes one IP + UDP header with an empty payload from `src` to `dst`
/// into `out` (exactly [`packet_len`] bytes). The UDP checksum is real:
/// conntrack drops datagrams with a bad one as invalid, and IPv6 requires
/// it. IPv4's header checksum, length and ID are filled in by the kernel
/// (`IP_HDRINCL` semantics).
pub fn write_packet(src: SocketAddr, dst: SocketAddr, out: &mut [u8]) {
    const UDP_LEN: u16 = 8;
    let mut udp = [0u8; 8];
    udp[0..2].copy_from_slice(&src.port().to_be_bytes());
    udp[2..4].copy_from_slice(&dst.port().to_be_bytes());
    udp[4..6].copy_from_slice(&UDP_LEN.to_be_bytes());
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let pseudo_tail = [0, libc::IPPROTO_UDP as u8, 0, UDP_LEN as u8];
            let sum = internet_checksum(&[&s.octets(), &d.octets(), &pseudo_tail, &udp]);
            udp[6..8].copy_from_slice(&(if sum == 0 { 0xffff } else { sum }).to_be_bytes());
            let ip = &mut out[..20];
            ip.fill(0);
            ip[0] = 0x45;
            ip[8] = 64;
            ip[9] = libc::IPPROTO_UDP as u8;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            out[20..28].copy_from_slice(&udp);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let pseudo_tail = [0, 0, 0, UDP_LEN as u8, 0, 0, 0, libc::IPPROTO_UDP as u8];
            let sum = internet_checksum(&[&s.octets(), &d.octets(), &pseudo_tail, &udp]);
            udp[6..8].copy_from_slice(&(if sum == 0 { 0xffff } else { sum }).to_be_bytes());
            let ip = &mut out[..40];
            ip.fill(0);
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&UDP_LEN.to_be_bytes());
            ip[6] = libc::IPPROTO_UDP as u8;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            out[40..48].copy_from_slice(&udp);
        }
        // Callers pass one family; a mixed pair writes nothing sendable.
        _ => out.fill(0),
    }
}

/// Opens a raw IP socket of `family` whose datagrams carry their own IP
/// header (`IPPROTO_RAW` implies `IP_HDRINCL`, and `IPV6_HDRINCL` since
/// Linux 4.5), with a large send buffer.
fn open_raw_socket(family: Family) -> std::io::Result<OwnedFd> {
    let domain = match family {
        Family::Ipv4 => libc::AF_INET,
        Family::Ipv6 => libc::AF_INET6,
    };
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd =
        unsafe { libc::socket(domain, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a descriptor we just opened and own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let size: libc::c_int = 4 << 20;
    // Why FORCE: root may exceed wmem_max; a failure only means a smaller
    // buffer, and sendmmsg then blocks a little more often.
    // SAFETY: setsockopt(2) on our socket with a valid int option value.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    Ok(fd)
}

/// A socket address in the C layout `sendmmsg` takes.
struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    /// Raw sockets take the destination address only (port 0: for IPv6 a
    /// non-zero port would name the protocol).
    fn new(ip: IpAddr) -> RawAddr {
        // SAFETY: sockaddr_storage is plain old data; all zero is valid.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match ip {
            IpAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: 0,
                    sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.octets()) },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_in fits in sockaddr_storage, which is
                // aligned for every socket address type.
                unsafe {
                    std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin)
                };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            IpAddr::V6(v6) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: 0,
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr { s6_addr: v6.octets() },
                    sin6_scope_id: 0,
                };
                // SAFETY: as above, for sockaddr_in6.
                unsafe {
                    std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6)
                };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        RawAddr { storage, len: len as libc::socklen_t }
    }
}

/// Sends one datagram per tuple `first..first + count` to `dst` on the raw
/// socket, [`BATCH`] per `sendmmsg`. Returns how many the kernel took.
fn send_flows(
    socket: &OwnedFd,
    family: Family,
    dst: SocketAddr,
    first: u64,
    count: u64,
) -> std::io::Result<u64> {
    let len = packet_len(family);
    let mut buf = vec![0u8; len * BATCH];
    let mut addr = RawAddr::new(dst.ip());
    let mut sent = 0u64;
    while sent < count {
        let n = (count - sent).min(BATCH as u64) as usize;
        for i in 0..n {
            let src = source_of(family, first + sent + i as u64);
            write_packet(src, dst, &mut buf[i * len..(i + 1) * len]);
        }
        let mut iovecs: Vec<libc::iovec> = (0..n)
            .map(|i| libc::iovec {
                // SAFETY: in bounds: i < n <= BATCH and buf holds BATCH packets.
                iov_base: unsafe { buf.as_mut_ptr().add(i * len) }.cast(),
                iov_len: len,
            })
            .collect();
        // SAFETY: mmsghdr is plain old data; all zero is a valid value.
        let mut headers: Vec<libc::mmsghdr> =
            (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (header, iov) in headers.iter_mut().zip(iovecs.iter_mut()) {
            header.msg_hdr.msg_name = (&mut addr.storage as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = addr.len;
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
        }
        let mut offset = 0usize;
        while offset < n {
            // SAFETY: `headers[offset..n]` are initialised mmsghdrs whose
            // pointers (address, iovec, packet bytes) outlive the call.
            let rc = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    headers.as_mut_ptr().add(offset),
                    (n - offset) as libc::c_uint,
                    0,
                )
            };
            if rc < 0 {
                let error = std::io::Error::last_os_error();
                match error.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    // Why retry: the send buffer or a device queue is full
                    // for a moment; the next call goes through.
                    Some(libc::ENOBUFS) | Some(libc::EAGAIN) => {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    _ => return Err(error),
                }
            }
            offset += rc as usize;
        }
        sent += n as u64;
    }
    Ok(sent)
}

/// A `/proc/sys/net/netfilter` value of the namespace `ns`.
fn netfilter_sysctl(ns: &Netns, key: &str) -> Result<u64> {
    let path = PathBuf::from("/proc/sys/net/netfilter").join(key);
    // /proc/sys/net resolves to the namespace of the thread that opens it.
    let text = ns.run(|| std::fs::read_to_string(&path))?.map_err(|e| {
        Error::Runtime(format!("cannot read {} in {}: {e}", path.display(), ns.spec()))
    })?;
    text.trim().parse().map_err(|_| {
        Error::Runtime(format!(
            "{} in {} is not a number: {:?}",
            path.display(),
            ns.spec(),
            text.trim()
        ))
    })
}

/// The number of conntrack entries in the namespace `ns` (`conntrack -C`).
pub fn entry_count(ns: &Netns) -> Result<u64> {
    netfilter_sysctl(ns, "nf_conntrack_count")
}

/// Waits until the count in `ns` reaches `target` or stops moving, at most
/// [`SETTLE_TIMEOUT`]; returns the last count read.
fn settle(ns: &Netns, target: u64) -> Result<u64> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut last = entry_count(ns)?;
    let mut unchanged = 0;
    while last < target && unchanged < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        let now = entry_count(ns)?;
        unchanged = if now == last { unchanged + 1 } else { 0 };
        last = now;
    }
    Ok(last)
}

/// The file holding the next unused tuple number of each family.
fn cursor_file(dir: &Path, family: Family) -> PathBuf {
    dir.join(format!("fill-cursor-{}", family.as_str()))
}

fn load_cursor(dir: &Path, family: Family) -> u64 {
    std::fs::read_to_string(cursor_file(dir, family))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

fn save_cursor(dir: &Path, family: Family, value: u64) -> Result<()> {
    let path = cursor_file(dir, family);
    std::fs::write(&path, value.to_string())
        .map_err(|e| Error::Runtime(format!("cannot write {}: {e}", path.display())))
}

/// Where the fill's datagrams go: the lab's ClusterIP of the family, or an
/// address no rule translates. A family the node has no rules for is a
/// usage error.
fn destination(config: &FillConfig, info: &LabInfo) -> Result<SocketAddr> {
    if !info.cluster_ips.iter().any(|ip| Family::of(*ip) == config.family) {
        // Why not allowed: a namespace tracks a family only once a rule of
        // that family needs conntrack (the node's kube-proxy rules); the
        // datagrams would be forwarded and leave no entry.
        return Err(Error::Usage(format!(
            "--family {}: the lab's node has no {} kube-proxy rules (built with --ip-family {}), so it keeps no {} conntrack entries; rebuild it with `ctdiag lab up --ip-family dual`",
            config.family.as_str().trim_start_matches("ipv"),
            config.family.as_str(),
            info.ip_family.as_str(),
            config.family.as_str()
        )));
    }
    Ok(match config.target {
        FillTarget::ClusterIp => {
            let ip = info.cluster_ips.iter().copied().find(|ip| Family::of(*ip) == config.family);
            SocketAddr::new(ip.unwrap_or(info.cluster_ip), super::DNS_PORT)
        }
        FillTarget::Unrelated => match config.family {
            Family::Ipv4 => SocketAddr::new(UNRELATED_V4.into(), UNRELATED_PORT),
            Family::Ipv6 => SocketAddr::new(UNRELATED_V6.into(), UNRELATED_PORT),
        },
    })
}

/// The entries' timeout in seconds: `config.timeout` set with an nftables
/// rule on the node, or the node's `nf_conntrack_udp_timeout`.
fn entry_timeout(config: &FillConfig, info: &LabInfo, node: &Netns) -> Result<u64> {
    Ok(match config.timeout {
        Some(t) => {
            super::system::require_tool("nft")?;
            let mut args = vec!["netns", "exec", info.namespaces.node.as_str()];
            args.extend(["nft", "-f", "-"]);
            super::system::run("ip", &args, Some(&timeout_ruleset(t)))?;
            t.as_secs()
        }
        None => netfilter_sysctl(node, "nf_conntrack_udp_timeout")?,
    })
}

/// Fills the lab node's conntrack table with `config.flows` new UDP
/// entries (see the module documentation) and reports the kernel's count
/// before and after.
pub fn fill(config: &FillConfig) -> Result<FillReport> {
    config.validate()?;
    super::require_root()?;
    let started = Instant::now();
    let info = super::status(&config.prefix)?;
    let destination = destination(config, &info)?;
    let node = Netns::open(&info.namespaces.node)?;
    let client = Netns::open(&info.namespaces.client)?;
    let conntrack_max = netfilter_sysctl(&node, "nf_conntrack_max")?;
    if u64::from(config.flows) > conntrack_max {
        return Err(Error::Usage(format!(
            "--flows {}: a namespace holds at most nf_conntrack_max = {conntrack_max} entries (read-only in a child namespace; the machine's value)",
            config.flows
        )));
    }
    let timeout_s = entry_timeout(config, &info, &node)?;
    let socket = client.run(|| open_raw_socket(config.family))?.map_err(|e| {
        Error::Runtime(format!(
            "cannot open a raw {} socket in {}: {e} (CAP_NET_RAW is needed)",
            config.family.as_str(),
            info.namespaces.client
        ))
    })?;

    let entries_before = entry_count(&node)?;
    let target = entries_before + u64::from(config.flows);
    let mut cursor = load_cursor(&info.state_dir, config.family);
    let mut packets_sent = 0u64;
    let mut rounds = 0u32;
    let mut count = entries_before;
    let mut notes = Vec::new();
    while count < target && rounds < MAX_ROUNDS {
        if count >= conntrack_max {
            notes.push(format!(
                "the node's table is full (nf_conntrack_max = {conntrack_max}): the kernel drops new flows and evicts unreplied entries early"
            ));
            break;
        }
        rounds += 1;
        let missing = target - count;
        let sent =
            send_flows(&socket, config.family, destination, cursor, missing).map_err(|e| {
                Error::Runtime(format!(
                    "sending the fill's datagrams in {} failed: {e}",
                    info.namespaces.client
                ))
            })?;
        cursor = (cursor + sent) % tuple_space(config.family);
        packets_sent += sent;
        count = settle(&node, target)?;
    }
    save_cursor(&info.state_dir, config.family, cursor)?;
    if count < target && notes.is_empty() {
        notes.push(format!(
            "{} of the {} entries did not appear after {rounds} rounds (lost on the way, or expired meanwhile)",
            target - count,
            config.flows
        ));
    }
    Ok(FillReport {
        prefix: info.prefix.clone(),
        node_namespace: info.namespaces.node.clone(),
        family: config.family,
        target: config.target,
        destination: destination.to_string(),
        sources: sources_text(config.family),
        flows: config.flows,
        packets_sent,
        rounds,
        entries_before,
        entries_after: count,
        created: count as i64 - entries_before as i64,
        conntrack_max,
        timeout_s,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_stay_in_the_client_subnet_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for n in 0..100_000u64 {
            let s = source_of(Family::Ipv4, n);
            let IpAddr::V4(ip) = s.ip() else { panic!("{s}") };
            assert_eq!(&ip.octets()[..3], &[198, 18, 1]);
            assert!((3..=254).contains(&ip.octets()[3]), "{s}");
            assert!(s.port() >= 1024);
            assert!(seen.insert(s), "{s} twice");
        }
        let last = source_of(Family::Ipv4, tuple_space(Family::Ipv4) - 1);
        assert_eq!(last, "198.18.1.254:65535".parse().unwrap());
        // The space wraps instead of overflowing.
        assert_eq!(source_of(Family::Ipv4, tuple_space(Family::Ipv4)), source_of(Family::Ipv4, 0));
        let v6 = source_of(Family::Ipv6, 4097);
        assert_eq!(v6, "[2001:db8:1::1:0:1]:1025".parse().unwrap());
    }

    /// A UDP datagram written here, checked against a checksum computed
    /// independently over the bytes as they go on the wire.
    #[test]
    fn packets_carry_valid_udp_checksums() {
        let src: SocketAddr = "198.18.1.3:1024".parse().unwrap();
        let dst: SocketAddr = "198.19.0.10:53".parse().unwrap();
        let mut buf = [0u8; 28];
        write_packet(src, dst, &mut buf);
        assert_eq!(&buf[..2], &[0x45, 0]);
        assert_eq!(buf[9], 17);
        assert_eq!(&buf[12..20], &[198, 18, 1, 3, 198, 19, 0, 10]);
        assert_eq!(&buf[20..26], &[0x04, 0x00, 0x00, 0x35, 0x00, 0x08]);
        // Summing the pseudo-header and the datagram including its checksum
        // gives 0xffff, i.e. internet_checksum 0.
        let pseudo = [198, 18, 1, 3, 198, 19, 0, 10, 0, 17, 0, 8];
        assert_eq!(internet_checksum(&[&pseudo, &buf[20..28]]), 0);

        let src: SocketAddr = "[2001:db8:1::1:0:0]:4000".parse().unwrap();
        let dst: SocketAddr = "[2001:db8::a]:53".parse().unwrap();
        let mut buf = [0u8; 48];
        write_packet(src, dst, &mut buf);
        assert_eq!(buf[0], 0x60);
        assert_eq!(&buf[4..8], &[0, 8, 17, 64]);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&buf[8..40]);
        pseudo.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 17]);
        assert_eq!(internet_checksum(&[&pseudo, &buf[40..48]]), 0);
    }

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 section 3: 0x0001 0xf203 0xf4f5 0xf6f7 sums to 0xddf2.
        assert_eq!(
            internet_checksum(&[&[0x00, 0x01, 0xf2, 0x03], &[0xf4, 0xf5, 0xf6, 0xf7]]),
            !0xddf2
        );
    }

    #[test]
    fn timeout_ruleset_names_both_families() {
        let text = timeout_ruleset(Duration::from_secs(600));
        assert!(text.contains("policy = { unreplied : 600, replied : 600 }"), "{text}");
        assert!(
            text.contains(
                "ip saddr 198.18.1.3-198.18.1.254 meta l4proto udp ct timeout set \"fill-udp4\""
            ),
            "{text}"
        );
        assert!(text.contains("ip6 saddr 2001:db8:1::1:0:0-2001:db8:1::1:0:fff"), "{text}");
    }

    #[test]
    fn config_validation() {
        let mut config = FillConfig {
            prefix: "x".into(),
            flows: 0,
            target: FillTarget::ClusterIp,
            family: Family::Ipv4,
            timeout: None,
        };
        assert!(config.validate().is_err());
        config.flows = 10;
        assert!(config.validate().is_ok());
        config.timeout = Some(Duration::ZERO);
        assert!(config.validate().is_err());
        config.timeout = Some(Duration::from_secs(90_000));
        assert!(config.validate().is_err());
    }
}
