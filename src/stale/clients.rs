//! Which local pod sent an entry: the network namespace on this node that
//! holds the entry's source address, and the hostname of a process in it
//! (in Kubernetes, the pod's name).
//!
//! Namespaces come from `/run/netns/*` (named by `ip netns`) and from every
//! process's `/proc/PID/ns/net`, one per inode. A namespace's addresses are
//! read from procfs: `/proc/PID/net/fib_trie` (IPv4: `/32 host LOCAL`
//! leaves) and `/proc/PID/net/if_inet6`, which show the namespace of PID,
//! so most namespaces are read without entering them; a named namespace
//! without a process is entered on a short-lived thread. Everything is
//! bounded: a process and a time budget for the walk, and lookups only for
//! the addresses asked about.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::netns::{Netns, NETNS_RUN_DIR};

/// Most processes looked at when finding namespaces.
const MAX_PROCESSES: usize = 65_536;
/// Most time spent finding namespaces and their addresses.
const WALK_BUDGET: Duration = Duration::from_secs(3);

/// The pod (network namespace) an entry's source address belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Client {
    /// The `ip netns` name of the namespace if it has one, else `pid:PID`
    /// of a process in it.
    pub netns: String,
    /// The UTS hostname of a process in the namespace (in Kubernetes: the
    /// pod's name); `null` when no process runs in it.
    pub hostname: Option<String>,
}

/// One network namespace found on the node.
#[derive(Debug, Clone, Default)]
struct Namespace {
    /// Its `ip netns` name, if it has one.
    name: Option<String>,
    /// The lowest PID of a process in it, if any.
    pid: Option<u32>,
}

/// Addresses of local namespaces, looked up once per address.
#[derive(Debug, Default)]
pub struct ClientIndex {
    by_address: HashMap<IpAddr, Client>,
    /// What could not be looked at, for the report's notes.
    pub notes: Vec<String>,
}

impl ClientIndex {
    /// Finds the namespaces holding any of `addresses` (loopback addresses
    /// are in every namespace and never name one). `peers`: the `ip netns`
    /// names of the namespaces linked to the scanned one (`ip netns
    /// list-id` there); when an address is configured in several
    /// namespaces (labs side by side), the one linked to the scanned
    /// namespace is the sender.
    pub fn build(addresses: &HashSet<IpAddr>, peers: &HashSet<String>) -> ClientIndex {
        let wanted: HashSet<IpAddr> =
            addresses.iter().copied().filter(|a| !a.is_loopback()).collect();
        if wanted.is_empty() {
            return ClientIndex::default();
        }
        ClientIndex::build_matching(&|address| wanted.contains(address), peers, true)
    }

    /// Every non-loopback address of every local namespace, for a scan
    /// that names each entry's client as it is decided (before the
    /// addresses are known). Bounded like [`ClientIndex::build`]: the
    /// addresses of the node's namespaces, not of the table. An address
    /// found in several namespaces gets no note here: most such addresses
    /// (other labs' node sides, say) are in no entry.
    pub fn build_all(peers: &HashSet<String>) -> ClientIndex {
        ClientIndex::build_matching(&|address| !address.is_loopback(), peers, false)
    }

    fn build_matching(
        wanted: &dyn Fn(&IpAddr) -> bool,
        peers: &HashSet<String>,
        note_ambiguous: bool,
    ) -> ClientIndex {
        let mut index = ClientIndex::default();
        let started = Instant::now();
        let namespaces = find_namespaces(started, &mut index.notes);
        let mut candidates: HashMap<IpAddr, Vec<Client>> = HashMap::new();
        for (inode, namespace) in &namespaces {
            if started.elapsed() > WALK_BUDGET {
                index.notes.push(format!(
                    "client lookup stopped after {} s; some clients are not named",
                    WALK_BUDGET.as_secs()
                ));
                break;
            }
            let local = match namespace_addresses(namespace) {
                Ok(local) => local,
                Err(why) => {
                    index.notes.push(format!("namespace net:[{inode}]: addresses not read: {why}"));
                    continue;
                }
            };
            let hits: Vec<IpAddr> = local.into_iter().filter(|a| wanted(a)).collect();
            if hits.is_empty() {
                continue;
            }
            let client = Client {
                netns: namespace
                    .name
                    .clone()
                    .or_else(|| namespace.pid.map(|pid| format!("pid:{pid}")))
                    .unwrap_or_else(|| format!("net:[{inode}]")),
                hostname: namespace.pid.and_then(uts_hostname),
            };
            for address in hits {
                candidates.entry(address).or_default().push(client.clone());
            }
        }
        for (address, mut found) in candidates {
            let linked = found.iter().position(|c| peers.contains(&c.netns));
            let chosen = match (linked, found.len()) {
                (Some(position), _) => found.swap_remove(position),
                (None, 1) => found.swap_remove(0),
                (None, _) if !note_ambiguous => found.swap_remove(0),
                (None, _) => {
                    let names: Vec<&str> = found.iter().map(|c| c.netns.as_str()).collect();
                    index.notes.push(format!(
                        "{address} is configured in {} namespaces ({}), none linked to the scanned one; named the first",
                        names.len(),
                        names.join(", ")
                    ));
                    found.swap_remove(0)
                }
            };
            index.by_address.insert(address, chosen);
        }
        index
    }

    /// The client holding `address`, if a local namespace does.
    pub fn get(&self, address: &IpAddr) -> Option<&Client> {
        self.by_address.get(address)
    }
}

/// Every network namespace by inode: named ones first, each with the
/// lowest PID found in it.
fn find_namespaces(started: Instant, notes: &mut Vec<String>) -> BTreeMap<u64, Namespace> {
    let mut namespaces: BTreeMap<u64, Namespace> = BTreeMap::new();
    if let Ok(dir) = fs::read_dir(NETNS_RUN_DIR) {
        for entry in dir.flatten() {
            let path = entry.path();
            // The bind-mounted file's inode is the namespace's.
            if let (Ok(meta), Some(name)) = (fs::metadata(&path), entry.file_name().to_str()) {
                namespaces.entry(meta.ino()).or_default().name = Some(name.to_string());
            }
        }
    }
    let Ok(proc_dir) = fs::read_dir("/proc") else {
        notes.push("cannot list /proc: clients are named only by /run/netns".into());
        return namespaces;
    };
    let mut pids: Vec<u32> = proc_dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .collect();
    pids.sort_unstable();
    if pids.len() > MAX_PROCESSES {
        notes.push(format!(
            "{} processes; only the first {MAX_PROCESSES} were looked at for client namespaces",
            pids.len()
        ));
        pids.truncate(MAX_PROCESSES);
    }
    for pid in pids {
        if started.elapsed() > WALK_BUDGET {
            notes.push("the process walk ran out of time; some clients are not named".into());
            break;
        }
        let Ok(meta) = fs::metadata(format!("/proc/{pid}/ns/net")) else { continue };
        let namespace = namespaces.entry(meta.ino()).or_default();
        if namespace.pid.is_none() {
            namespace.pid = Some(pid);
        }
    }
    namespaces
}

/// The addresses configured in a namespace: through a process in it, else
/// by entering it by name.
fn namespace_addresses(namespace: &Namespace) -> Result<Vec<IpAddr>, String> {
    if let Some(pid) = namespace.pid {
        let base = PathBuf::from(format!("/proc/{pid}/net"));
        if let Ok(addresses) = addresses_under(&base) {
            return Ok(addresses);
        }
    }
    let Some(name) = &namespace.name else {
        return Err("no process and no name to enter it by".into());
    };
    let netns = Netns::open(name).map_err(|e| e.to_string())?;
    netns
        .run(|| addresses_under(&crate::netns::proc_net_dir()))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Local addresses from `fib_trie` and `if_inet6` under a `net` proc
/// directory.
fn addresses_under(dir: &Path) -> std::io::Result<Vec<IpAddr>> {
    let mut addresses = parse_fib_trie(&fs::read_to_string(dir.join("fib_trie"))?);
    // A namespace without IPv6 has no if_inet6.
    if let Ok(text) = fs::read_to_string(dir.join("if_inet6")) {
        addresses.extend(parse_if_inet6(&text));
    }
    Ok(addresses)
}

/// The IPv4 addresses of a namespace from `/proc/net/fib_trie`: each leaf
/// `|-- ADDRESS` followed by a `/32 host LOCAL` line is an address of the
/// namespace.
pub fn parse_fib_trie(text: &str) -> Vec<IpAddr> {
    let mut found = Vec::new();
    let mut last_leaf: Option<IpAddr> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(leaf) = line.strip_prefix("|-- ") {
            last_leaf = leaf.trim().parse().ok();
        } else if line.starts_with("/32 host LOCAL") {
            if let Some(address) = last_leaf {
                if !found.contains(&address) {
                    found.push(address);
                }
            }
        }
    }
    found
}

/// The IPv6 addresses of a namespace from `/proc/net/if_inet6` (first
/// column: 32 hex digits).
pub fn parse_if_inet6(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let hex = line.split_whitespace().next()?;
            if hex.len() != 32 {
                return None;
            }
            let value = u128::from_str_radix(hex, 16).ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(value)))
        })
        .collect()
}

/// The `ip netns` names of the namespaces the calling thread's namespace
/// has ids for (`ip -j netns list-id`): in a Kubernetes node or a lab, the
/// pods linked to it by a veth. Empty when it cannot be read.
pub fn linked_namespaces() -> HashSet<String> {
    let Ok(ran) = crate::process::run_bounded(
        "ip",
        &["-j", "netns", "list-id"],
        None,
        Duration::from_secs(5),
    ) else {
        return HashSet::new();
    };
    let Ok(serde_json::Value::Array(list)) = serde_json::from_slice(&ran.stdout) else {
        return HashSet::new();
    };
    list.iter().filter_map(|n| n.get("name").and_then(|v| v.as_str()).map(str::to_string)).collect()
}

/// The hostname of `pid`'s UTS namespace, read on a thread that entered it.
fn uts_hostname(pid: u32) -> Option<String> {
    let file = fs::File::open(format!("/proc/{pid}/ns/uts")).ok()?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWUTS).ok()?;
                // Why procfs: /proc/sys/kernel/hostname shows the UTS
                // namespace of the reading thread.
                let name = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
                Some(name.trim().to_string()).filter(|n| !n.is_empty())
            })
            .join()
            .ok()
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/net/fib_trie` of a lab client pod (198.18.1.2/24 on eth0),
    /// as Linux 6.18 printed it.
    const FIB_TRIE: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 198.18.1.0/24 2 0 2
        +-- 198.18.1.0/30 2 0 2
           |-- 198.18.1.0
              /24 link UNICAST
           |-- 198.18.1.2
              /32 host LOCAL
        |-- 198.18.1.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.1
              /32 host LOCAL
     +-- 198.18.1.0/24 2 0 2
           |-- 198.18.1.2
              /32 host LOCAL
";

    #[test]
    fn fib_trie_local_addresses() {
        let found = parse_fib_trie(FIB_TRIE);
        assert_eq!(
            found,
            vec!["127.0.0.1".parse::<IpAddr>().unwrap(), "198.18.1.2".parse().unwrap()]
        );
        assert!(parse_fib_trie("garbage\n|-- nonsense\n/32 host LOCAL\n").is_empty());
    }

    #[test]
    fn if_inet6_addresses() {
        let text = "00000000000000000000000000000001 01 80 10 80       lo
20010db8000100000000000000000002 02 40 00 82     eth0
short 02 40 00 82 eth1
";
        assert_eq!(
            parse_if_inet6(text),
            vec!["::1".parse::<IpAddr>().unwrap(), "2001:db8:1::2".parse().unwrap()]
        );
    }

    #[test]
    fn loopback_is_never_a_client_and_nothing_asked_is_nothing_walked() {
        let index =
            ClientIndex::build(&HashSet::from(["127.0.0.1".parse().unwrap()]), &HashSet::new());
        assert!(index.get(&"127.0.0.1".parse().unwrap()).is_none());
        assert!(index.notes.is_empty());
    }
}
