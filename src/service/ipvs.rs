//! Services from kube-proxy's IPVS mode: virtual servers (ClusterIP:port)
//! and their real servers (endpoints).
//!
//! Where they are read, and why there: the kernel's own listing,
//! `/proc/net/ip_vs` of the namespace (the same table `ipvsadm -Ln`
//! prints, from `ip_vs_info_seq_show` in net/netfilter/ipvs/ip_vs_ctl.c:
//! IPv4 addresses and ports in hex, IPv6 as `[%pI6]`). It needs no tool
//! and no privilege, cannot hang like a listing tool, and exists only when
//! the IPVS module is loaded, so its absence is the cheap "not IPVS mode"
//! test. `ipvsadm` is only the fallback when that file cannot be read, and
//! is never run when IPVS is absent: it loads the `ip_vs` module as a side
//! effect. The generic-netlink family was not used: this machine's kernel
//! has no IPVS, so a netlink decoder could be tested on nothing but bytes
//! written by hand; the text format has real public captures (see
//! tests/fixtures/ipvs/README.md). One parser reads both forms.
//!
//! Which virtual servers are ClusterIPs: those whose address kube-proxy
//! bound to its dummy device `kube-ipvs0` (ClusterIPs, and also external
//! and load-balancer IPs, which IPVS cannot tell apart from ClusterIPs).
//! NodePort virtual servers sit on node addresses and are skipped. A real
//! server of weight 0 is a terminating endpoint kube-proxy keeps for its
//! open connections; no new connection goes to it, so it is not counted.
//!
//! IPVS has no Service names. kube-dns is recognised by its ClusterIP, the
//! address pods use as their nameserver (see [`ClusterDnsHint`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::{Protocol, ProxyMode, Service, KUBE_DNS};
use crate::dns::pods::{self, PodScanConfig};
use crate::error::{Error, Result};
use crate::netns::{proc_net_dir, run_in, Netns};
use crate::process::{listing_deadline, run_bounded, RunError};
use kubelet::kubelet_cluster_dns;

mod kubelet;

/// The dummy device kube-proxy's IPVS mode binds every Service IP to.
pub const KUBE_IPVS_DEVICE: &str = "kube-ipvs0";

/// One real server of a virtual server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    /// Its address and port.
    pub address: SocketAddr,
    /// Its weight; 0 means no new connections (a terminating endpoint).
    pub weight: i64,
}

/// One IPVS virtual server (`ipvsadm -Ln` calls it a service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServer {
    /// tcp, udp or sctp.
    pub protocol: Protocol,
    /// The virtual address and port.
    pub address: SocketAddr,
    /// The real servers, in listing order.
    pub real_servers: Vec<RealServer>,
}

/// The virtual servers of a listing, and the lines that could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// In listing order.
    pub virtual_servers: Vec<VirtualServer>,
    /// `line N: why` for every line that was not understood.
    pub skipped: Vec<String>,
}

/// `0A60000A:0035` (the kernel's hex form), `[2001:db8::a]:53` (ipvsadm or
/// the kernel's full IPv6 form), or `10.96.0.10:53`.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.rsplit_once(':')?;
    // Why this test first: `[2001:0db8:...:000a]:0035` also parses as a
    // decimal socket address. The kernel writes IPv6 with `%pI6` (eight
    // groups of four hex digits) and a four-digit hex port; ipvsadm writes
    // compressed groups and a decimal port.
    let kernel_v6 = ip.len() == 41
        && port.len() == 4
        && ip[1..40].split(':').all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if !kernel_v6 {
        if let Ok(address) = text.parse::<SocketAddr>() {
            return Some(address);
        }
    }
    let port = u16::from_str_radix(port, 16).ok()?;
    if let Some(v6) = ip.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return Some(SocketAddr::new(IpAddr::V6(v6.parse::<Ipv6Addr>().ok()?), port));
    }
    if ip.len() != 8 {
        return None;
    }
    let ip = u32::from_str_radix(ip, 16).ok()?;
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
}

/// Parses `/proc/net/ip_vs` or `ipvsadm -Ln [--exact]` output. Never
/// fails: lines that cannot be read are listed in `skipped`.
pub fn parse(text: &str) -> Table {
    let mut table = Table::default();
    // Why a flag: the real servers of a virtual server that could not be
    // read must not be taken for the previous one's.
    let mut current_ok = false;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty()
            || line.starts_with("IP Virtual Server")
            || line.starts_with("Prot ")
            || line.starts_with("-> RemoteAddress")
        {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(rest) = line.strip_prefix("->") {
            if !current_ok {
                continue;
            }
            let words: Vec<&str> = rest.split_whitespace().collect();
            let parsed = match words.as_slice() {
                [address, _forward, weight, ..] => {
                    parse_address(address).zip(weight.parse::<i64>().ok())
                }
                _ => None,
            };
            match (parsed, table.virtual_servers.last_mut()) {
                (Some((address, weight)), Some(vs)) => {
                    vs.real_servers.push(RealServer { address, weight })
                }
                _ => table.skipped.push(format!("line {number}: cannot read real server {line:?}")),
            }
            continue;
        }
        current_ok = false;
        match words.as_slice() {
            ["FWM", ..] => table.skipped.push(format!(
                "line {number}: firewall-mark virtual server {line:?} (not a Service address)"
            )),
            [protocol, address, ..] => match (Protocol::parse(protocol), parse_address(address)) {
                (Some(protocol), Some(address)) => {
                    table.virtual_servers.push(VirtualServer {
                        protocol,
                        address,
                        real_servers: Vec::new(),
                    });
                    current_ok = true;
                }
                _ => table
                    .skipped
                    .push(format!("line {number}: cannot read virtual server {line:?}")),
            },
            _ => table.skipped.push(format!("line {number}: cannot read {line:?}")),
        }
    }
    table
}

/// How kube-dns is told among IPVS's nameless virtual servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterDnsHint {
    /// `--cluster-dns IP`: the user says which ClusterIP is kube-dns.
    pub cluster_dns: Option<IpAddr>,
}

/// The kube-dns ClusterIP, and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsMatch {
    /// The ClusterIP taken to be kube-dns.
    pub ip: IpAddr,
    /// How, in words: `--cluster-dns`, the kubelet's `clusterDNS`, or the
    /// nameserver of pods on this node.
    pub how: String,
}

/// What IPVS mode defines in a namespace.
#[derive(Debug, Clone, Default)]
pub struct IpvsRead {
    /// The Service ports (ClusterIP virtual servers on kube-ipvs0).
    pub services: Vec<Service>,
    /// Virtual servers and real servers that were left out, and why.
    pub skipped: Vec<String>,
    /// Where the table came from (`/proc/net/ip_vs`, `ipvsadm`); empty when
    /// IPVS is not loaded.
    pub tools: Vec<String>,
    /// How kube-dns was matched (none: no virtual server was taken for it).
    pub kube_dns: Option<DnsMatch>,
    /// Remarks for `-v`.
    pub notes: Vec<String>,
}

/// Builds Services from a table: only virtual servers whose address is in
/// `vips` (kube-ipvs0's addresses), kube-dns named when `dns` is one of
/// them. Unnamed virtual servers get an empty namespace and name.
pub fn services_from(
    table: &Table,
    vips: &[IpAddr],
    dns: Option<IpAddr>,
) -> (Vec<Service>, Vec<String>) {
    let mut skipped = Vec::new();
    let mut services = Vec::new();
    for vs in &table.virtual_servers {
        if !vips.contains(&vs.address.ip()) {
            skipped.push(format!(
                "virtual server {} {}: its address is not on {KUBE_IPVS_DEVICE} (a NodePort or node address, not a ClusterIP)",
                vs.protocol.as_str(),
                vs.address
            ));
            continue;
        }
        let mut endpoints = Vec::new();
        for rs in &vs.real_servers {
            if rs.weight <= 0 {
                skipped.push(format!(
                    "real server {} of {} {}: weight {} (terminating: kube-proxy keeps it for open connections, new ones do not go to it)",
                    rs.address,
                    vs.protocol.as_str(),
                    vs.address,
                    rs.weight
                ));
            } else {
                endpoints.push(rs.address);
            }
        }
        endpoints.sort();
        endpoints.dedup();
        let is_dns = dns == Some(vs.address.ip());
        services.push(Service {
            namespace: if is_dns { KUBE_DNS.0.into() } else { String::new() },
            name: if is_dns { KUBE_DNS.1.into() } else { String::new() },
            port_name: String::new(),
            protocol: vs.protocol,
            cluster_ips: vec![vs.address.ip()],
            port: vs.address.port(),
            endpoints,
            proxy_mode: ProxyMode::Ipvs,
        });
    }
    services.sort_by(|a, b| {
        (&a.namespace, &a.name, a.protocol, a.port, &a.cluster_ips).cmp(&(
            &b.namespace,
            &b.name,
            b.protocol,
            b.port,
            &b.cluster_ips,
        ))
    });
    (services, skipped)
}

/// The addresses on `device` in the calling thread's namespace; `None`
/// when there is no such device.
fn device_addresses(device: &str) -> Result<Option<Vec<IpAddr>>> {
    let addrs = nix::ifaddrs::getifaddrs()
        .map_err(|e| Error::Runtime(format!("cannot list the interface addresses: {e}")))?;
    let mut found = false;
    let mut out = Vec::new();
    for ifa in addrs.filter(|ifa| ifa.interface_name == device) {
        found = true;
        let Some(address) = ifa.address else { continue };
        if let Some(v4) = address.as_sockaddr_in() {
            out.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = address.as_sockaddr_in6() {
            out.push(IpAddr::V6(v6.ip()));
        }
    }
    out.sort();
    out.dedup();
    Ok(found.then_some(out))
}

/// The nameservers of the pods on this node (containers in network
/// namespaces other than `own_netns`), counted once per namespace, with
/// one resolv.conf path per nameserver as evidence. The pods are read by
/// [`pods::scan`]: every container root of a namespace (so a pause
/// container without a resolv.conf does not hide the pod's), through the
/// guarded reader.
fn pod_nameservers(proc: &Path, own_netns: &Path) -> BTreeMap<IpAddr, (usize, PathBuf)> {
    let config = PodScanConfig {
        proc_dir: proc.to_path_buf(),
        ..PodScanConfig::system(pods::namespace_inode(own_netns).ok(), None)
    };
    let scan = pods::scan(&config, &AtomicBool::new(false));
    let mut per_namespace: BTreeMap<&str, BTreeSet<IpAddr>> = BTreeMap::new();
    let mut evidence: BTreeMap<IpAddr, PathBuf> = BTreeMap::new();
    for pod in scan.pods.iter().filter(|p| p.pid.is_some()) {
        let Some(setup) = &pod.setup else { continue };
        for ip in &setup.nameservers {
            per_namespace.entry(&pod.netns).or_default().insert(*ip);
            evidence.entry(*ip).or_insert_with(|| PathBuf::from(&pod.resolv_conf_path));
        }
    }
    let mut counts: BTreeMap<IpAddr, (usize, PathBuf)> = BTreeMap::new();
    for ip in per_namespace.values().flatten() {
        let path = evidence.get(ip).cloned().unwrap_or_default();
        let slot = counts.entry(*ip).or_insert((0, path));
        slot.0 += 1;
    }
    counts
}

/// Which virtual server address is kube-dns: `--cluster-dns`, else the
/// kubelet's clusterDNS, else the nameserver most pods on this node use;
/// only an address that is a port-53 virtual server on kube-ipvs0 counts
/// (except `--cluster-dns`, which the user vouches for).
fn match_kube_dns(
    hint: &ClusterDnsHint,
    dns_vips: &[IpAddr],
    proc: &Path,
    own_netns: &Path,
) -> (Option<DnsMatch>, Vec<String>) {
    let mut notes = Vec::new();
    if let Some(ip) = hint.cluster_dns {
        if !dns_vips.contains(&ip) {
            notes.push(format!(
                "--cluster-dns {ip} is not a port-53 virtual server on {KUBE_IPVS_DEVICE}"
            ));
        }
        return (Some(DnsMatch { ip, how: "--cluster-dns".into() }), notes);
    }
    if let Some((ips, how)) = kubelet_cluster_dns(proc) {
        if let Some(ip) = ips.iter().find(|ip| dns_vips.contains(ip)) {
            return (Some(DnsMatch { ip: *ip, how }), notes);
        }
        notes.push(format!("{how} names {ips:?}, none of them a port-53 virtual server"));
    }
    let counts = pod_nameservers(proc, own_netns);
    let best =
        counts.iter().filter(|(ip, _)| dns_vips.contains(ip)).max_by_key(|(_, (count, _))| *count);
    if let Some((ip, (count, path))) = best {
        return (
            Some(DnsMatch {
                ip: *ip,
                how: format!(
                    "the nameserver of {count} pod namespace(s) on this node (e.g. {})",
                    path.display()
                ),
            }),
            notes,
        );
    }
    notes.push(
        "kube-dns not named in IPVS mode: no --cluster-dns, no kubelet clusterDNS, and no pod on this node uses a port-53 virtual server as its nameserver; pass --cluster-dns IP".into(),
    );
    (None, notes)
}

/// Reads IPVS mode in `netns` (the current namespace when `None`): the
/// virtual servers, kube-ipvs0's addresses, and which one is kube-dns.
/// `Ok` with no tools when IPVS is not loaded there.
pub fn read(netns: Option<&Netns>, hint: &ClusterDnsHint) -> Result<IpvsRead> {
    read_with(netns, hint, "ipvsadm", Path::new("/proc"))
}

/// [`read`] with the fallback program and the proc root given (tests).
pub(crate) fn read_with(
    netns: Option<&Netns>,
    hint: &ClusterDnsHint,
    ipvsadm: &str,
    proc: &Path,
) -> Result<IpvsRead> {
    run_in(netns, || -> Result<IpvsRead> {
        let file = proc_net_dir().join("ip_vs");
        let vips = device_addresses(KUBE_IPVS_DEVICE)?;
        let (text, tool) = match std::fs::read_to_string(&file) {
            Ok(text) => (text, "/proc/net/ip_vs".to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut read = IpvsRead::default();
                if vips.is_some() {
                    read.notes.push(format!(
                        "{KUBE_IPVS_DEVICE} exists but IPVS is not loaded (no /proc/net/ip_vs): a leftover of IPVS mode?"
                    ));
                }
                return Ok(read);
            }
            Err(e) => match run_bounded(ipvsadm, &["-Ln", "--exact"], None, listing_deadline()) {
                Ok(out) if out.status.success() => (out.stdout_text(), "ipvsadm -Ln".to_string()),
                Ok(out) => {
                    return Err(Error::Command {
                        command: format!("{ipvsadm} -Ln --exact"),
                        detail: format!("{} {} (reading IPVS needs root)", out.status, out.stderr_text()),
                    })
                }
                Err(RunError::NotFound { .. }) => {
                    return Err(Error::Command {
                        command: format!("{ipvsadm} -Ln --exact"),
                        detail: format!(
                            "{} cannot be read ({e}) and {ipvsadm} is not installed (the ipvsadm package provides it)",
                            file.display()
                        ),
                    })
                }
                Err(other) => {
                    return Err(Error::Command {
                        command: format!("{ipvsadm} -Ln --exact"),
                        detail: other.to_string(),
                    })
                }
            },
        };
        let table = parse(&text);
        let mut read = IpvsRead { tools: vec![tool], ..IpvsRead::default() };
        read.skipped.extend(table.skipped.iter().cloned());
        let Some(vips) = vips else {
            if !table.virtual_servers.is_empty() {
                read.notes.push(format!(
                    "IPVS has {} virtual server(s) but there is no {KUBE_IPVS_DEVICE} device: not kube-proxy's",
                    table.virtual_servers.len()
                ));
            }
            return Ok(read);
        };
        let dns_vips: Vec<IpAddr> = table
            .virtual_servers
            .iter()
            .filter(|vs| vs.address.port() == 53 && vips.contains(&vs.address.ip()))
            .map(|vs| vs.address.ip())
            .collect();
        let (dns, notes) = if dns_vips.is_empty() && hint.cluster_dns.is_none() {
            (None, Vec::new())
        } else {
            match_kube_dns(hint, &dns_vips, proc, &proc_thread_netns())
        };
        read.notes.extend(notes);
        let (services, skipped) = services_from(&table, &vips, dns.as_ref().map(|d| d.ip));
        read.services = services;
        read.skipped.extend(skipped);
        read.kube_dns = dns;
        Ok(read)
    })?
}

/// The calling thread's network namespace link (its own, inside `run_in`).
fn proc_thread_netns() -> PathBuf {
    PathBuf::from("/proc/thread-self/ns/net")
}

#[cfg(test)]
mod tests {
    use super::*;

    const IPVSADM: &str = include_str!("../../tests/fixtures/ipvs/opsnull-251-ipvsadm-Ln.txt");
    const PROC: &str = include_str!("../../tests/fixtures/ipvs/proc-net-ip_vs.txt");

    fn sa(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_in_every_form() {
        assert_eq!(parse_address("0A60000A:0035"), Some(sa("10.96.0.10:53")));
        assert_eq!(parse_address("10.96.0.10:53"), Some(sa("10.96.0.10:53")));
        assert_eq!(parse_address("[2001:db8::a]:53"), Some(sa("[2001:db8::a]:53")));
        assert_eq!(
            parse_address("[2001:0db8:0000:0000:0000:0000:0000:000a]:0035"),
            Some(sa("[2001:db8::a]:53"))
        );
        for bad in ["", "0A60000A", "0A60000:0035", "ZZ60000A:0035", "10.96.0.10:http", "[x]:35"] {
            assert_eq!(parse_address(bad), None, "{bad:?}");
        }
    }

    /// `ipvsadm -L -n` of a kube-proxy IPVS node (opsnull issue 251).
    #[test]
    fn real_ipvsadm_listing() {
        let table = parse(IPVSADM);
        assert_eq!(table.skipped, Vec::<String>::new());
        assert_eq!(table.virtual_servers.len(), 7);
        let dns = &table.virtual_servers[4];
        assert_eq!((dns.protocol, dns.address), (Protocol::Tcp, sa("10.254.0.2:53")));
        let real: Vec<SocketAddr> = dns.real_servers.iter().map(|r| r.address).collect();
        assert_eq!(real, [sa("10.253.7.5:53"), sa("10.253.35.5:53")]);
        // `persistent 10800` after the scheduler is read past.
        assert_eq!(table.virtual_servers[3].address, sa("10.254.0.1:443"));
        assert_eq!(table.virtual_servers[3].real_servers.len(), 2);
    }

    /// The kernel's own form gives the same table as ipvsadm's.
    #[test]
    fn proc_form_matches_ipvsadm_form() {
        let from_proc = parse(PROC);
        assert_eq!(from_proc.skipped.len(), 1, "{:?}", from_proc.skipped);
        assert!(from_proc.skipped[0].contains("firewall-mark"));
        let ipvsadm = parse(IPVSADM);
        // The procfs fixture is the same table plus UDP 53, an IPv6
        // ClusterIP, a weight-0 real server and a firewall-mark service.
        for vs in &ipvsadm.virtual_servers {
            assert!(from_proc.virtual_servers.contains(vs), "{vs:?}");
        }
    }

    #[test]
    fn only_vips_on_the_device_and_weight_0_left_out() {
        let table = parse(PROC);
        let vips: Vec<IpAddr> =
            ["10.254.0.1", "10.254.0.2", "10.254.9.36", "10.254.20.57", "fd00:10:96::a"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect();
        let (services, skipped) = services_from(&table, &vips, Some("10.254.0.2".parse().unwrap()));
        let dns: Vec<&Service> = services.iter().filter(|s| s.name == "kube-dns").collect();
        assert_eq!(dns.len(), 2, "{services:#?}");
        assert_eq!(dns[0].namespace, "kube-system");
        let udp = dns.iter().find(|s| s.protocol == Protocol::Udp).unwrap();
        // 10.253.56.5 has weight 0 in the fixture: terminating.
        assert_eq!(udp.endpoints, [sa("10.253.7.5:53"), sa("10.253.35.5:53")]);
        assert!(
            skipped.iter().any(|s| s.contains("10.253.56.5:53") && s.contains("weight 0")),
            "{skipped:#?}"
        );
        // NodePorts on node addresses are not ClusterIPs.
        assert!(services.iter().all(|s| s.port != 32429));
        assert!(skipped.iter().any(|s| s.contains("10.253.102.0:32429")));
        let v6 = services.iter().find(|s| s.cluster_ips[0].is_ipv6()).unwrap();
        assert_eq!(v6.endpoints, [sa("[fd00:10:244::5]:53")]);
        assert!(services.iter().all(|s| s.proxy_mode == ProxyMode::Ipvs));
    }

    #[test]
    fn garbled_lines_are_named_and_their_real_servers_not_misfiled() {
        let text = "TCP  10.96.0.1:443 rr\n  -> 10.244.0.2:6443 Masq 1 0 0\nICMP 10.96.0.9:0 rr\n  -> 10.244.0.3:1 Masq 1 0 0\nUDP  nonsense rr\n  -> junk\n  -> 10.244.0.4:53 Masq x 0 0\nFWM  00000001 rr\n";
        let table = parse(text);
        assert_eq!(table.virtual_servers.len(), 1);
        assert_eq!(table.virtual_servers[0].real_servers.len(), 1);
        assert_eq!(table.skipped.len(), 3, "{:#?}", table.skipped);
        assert!(table.skipped[0].starts_with("line 3:"));
    }

    #[test]
    fn kube_dns_from_a_pods_resolv_conf() {
        if !crate::testutil::lab_allowed("kube_dns_from_a_pods_resolv_conf") {
            return;
        }
        let ns = crate::testutil::NamespaceGuard::create("ipvsdns");
        let etc = format!("/etc/netns/{}", ns.name);
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(format!("{etc}/resolv.conf"), "nameserver 198.19.0.10\noptions ndots:5\n")
            .unwrap();
        let mut pod = std::process::Command::new("ip")
            .args(["netns", "exec", &ns.name, "sleep", "20"])
            .spawn()
            .unwrap();
        // The bind mount of resolv.conf happens before exec: wait until the
        // process is `sleep` in the other namespace.
        let pid = pod.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim()
            != "sleep"
        {
            assert!(std::time::Instant::now() < deadline, "the pod process never started");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let dns_vips = ["198.19.0.10".parse::<IpAddr>().unwrap()];
        let (found, notes) = match_kube_dns(
            &ClusterDnsHint::default(),
            &dns_vips,
            Path::new("/proc"),
            Path::new("/proc/self/ns/net"),
        );
        let _ = pod.kill();
        let _ = pod.wait();
        let _ = std::fs::remove_dir_all(&etc);
        let found = found.unwrap_or_else(|| panic!("no match: {notes:?}"));
        assert_eq!(found.ip, dns_vips[0]);
        assert!(
            found.how.contains("nameserver of") && found.how.contains("/root/etc/resolv.conf"),
            "{}",
            found.how
        );
        let hint = ClusterDnsHint { cluster_dns: Some("198.19.0.53".parse().unwrap()) };
        let (forced, notes) =
            match_kube_dns(&hint, &dns_vips, Path::new("/proc"), Path::new("/proc/self/ns/net"));
        assert_eq!(forced.unwrap().how, "--cluster-dns");
        assert!(notes[0].contains("not a port-53 virtual server"), "{notes:?}");
    }

    /// A pod whose first container (the pause container, here a process
    /// whose /etc is empty) has no resolv.conf: its namespace is still
    /// counted from the next container's file. The address is unique to
    /// this run, so no other namespace on the machine counts for it.
    #[test]
    fn a_pause_container_without_resolv_conf_does_not_hide_its_pod() {
        use super::kubelet::tests::start;
        if !crate::testutil::lab_allowed(
            "a_pause_container_without_resolv_conf_does_not_hide_its_pod",
        ) {
            return;
        }
        let ns = crate::testutil::NamespaceGuard::create("ipvspause");
        let ip: IpAddr =
            format!("198.19.{}.{}", 200 + std::process::id() % 50, 1 + std::process::id() % 250)
                .parse()
                .unwrap();
        let etc = format!("/etc/netns/{}", ns.name);
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(format!("{etc}/resolv.conf"), format!("nameserver {ip}\n")).unwrap();
        // Started first, so /proc lists it first (PIDs ascend).
        let pause = start(
            &[
                "ip",
                "netns",
                "exec",
                &ns.name,
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                "mount -t tmpfs ctdiag-pause /etc && exec sleep 30",
            ],
            "sleep",
        );
        let app = start(&["ip", "netns", "exec", &ns.name, "sleep", "30"], "sleep");
        let pause_pid = pause.0.id();
        assert!(
            !Path::new(&format!("/proc/{pause_pid}/root/etc/resolv.conf")).exists(),
            "the pause stand-in has a resolv.conf"
        );
        let counts = pod_nameservers(Path::new("/proc"), Path::new("/proc/self/ns/net"));
        drop((pause, app));
        let _ = std::fs::remove_dir_all(&etc);
        let (count, path) =
            counts.get(&ip).unwrap_or_else(|| panic!("{ip} not counted: {counts:?}"));
        assert_eq!(*count, 1, "{counts:?}");
        assert!(path.ends_with("root/etc/resolv.conf"), "{}", path.display());
    }

    /// Only an executable named `kubelet` in the host's mount and PID
    /// namespaces is the kubelet: a process that only calls itself
    /// `kubelet` (comm), and a `kubelet` executable in a mount namespace
    /// of its own (a pod's), are not.
    /// The ClusterIPs are the addresses of a `kube-ipvs0` device in the
    /// namespace. kube-proxy makes it a dummy device; this kernel has no
    /// dummy driver (and no IPVS), so one end of a veth pair named
    /// `kube-ipvs0` stands in: what is read is the same address list.
    #[test]
    fn kube_ipvs0_addresses_and_no_ipvs_here() {
        if !crate::testutil::lab_allowed("kube_ipvs0_addresses_and_no_ipvs_here") {
            return;
        }
        let ns = crate::testutil::NamespaceGuard::create("ipvsdev");
        ns.exec(&[
            "ip",
            "link",
            "add",
            KUBE_IPVS_DEVICE,
            "type",
            "veth",
            "peer",
            "name",
            "ipvs-peer",
        ]);
        ns.exec(&["ip", "addr", "add", "198.19.0.10/32", "dev", KUBE_IPVS_DEVICE]);
        ns.exec(&["ip", "addr", "add", "2001:db8:ffff::10/128", "dev", KUBE_IPVS_DEVICE, "nodad"]);
        let netns = Netns::open(&ns.name).unwrap();
        let addrs = netns.run(|| device_addresses(KUBE_IPVS_DEVICE)).unwrap().unwrap().unwrap();
        assert_eq!(
            addrs,
            ["198.19.0.10".parse::<IpAddr>().unwrap(), "2001:db8:ffff::10".parse().unwrap()]
        );
        assert_eq!(netns.run(|| device_addresses("no-such-dev")).unwrap().unwrap(), None);
        // Without the IPVS module (this kernel has none) nothing is read,
        // and the leftover device is noted.
        if Path::new("/proc/net/ip_vs").exists() {
            return;
        }
        let read = read(Some(&netns), &ClusterDnsHint::default()).unwrap();
        assert!(read.tools.is_empty() && read.services.is_empty());
        assert!(read.notes[0].contains("IPVS is not loaded"), "{:?}", read.notes);
    }
}
