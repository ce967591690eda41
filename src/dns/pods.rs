//! The resolver set-up of the pods on this node: every network namespace
//! in use (the processes' `/proc/PID/ns/net`, and `ip netns` names), and in
//! each, every container root (one per mount namespace) with its
//! `etc/resolv.conf` and C library, read through [`crate::dns::rootfs`]
//! (never outside the container's root, bounded).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::resolv::ResolverSetup;
use super::rootfs::{self, LibcEvidence, RootFile, MAX_RESOLV_CONF};

/// Most network namespaces looked at.
pub const MAX_NAMESPACES: usize = 1024;
/// Most container roots looked at over all namespaces.
pub const MAX_ROOTS: usize = 4096;
/// Most processes looked at (a node has far fewer).
const MAX_PROCESSES: usize = 1_000_000;
/// Most bytes of a container's `etc/hostname` read.
const MAX_HOSTNAME: u64 = 256;

/// Which namespaces to look at.
#[derive(Debug, Clone, Default)]
pub struct PodScanConfig {
    /// The node's own namespace (inode), left out: hostNetwork pods and the
    /// node's daemons live there.
    pub node_netns: Option<u64>,
    /// Only these namespaces (inodes), when given (`--pods`).
    pub only: Option<Vec<u64>>,
    /// Where `ip netns` names live (`/run/netns`).
    pub named_dir: PathBuf,
    /// Where `ip netns exec` takes a named namespace's resolv.conf from
    /// (`/etc/netns`).
    pub named_etc: PathBuf,
    /// The proc file system (`/proc`).
    pub proc_dir: PathBuf,
}

impl PodScanConfig {
    /// The node's real paths.
    pub fn system(node_netns: Option<u64>, only: Option<Vec<u64>>) -> Self {
        PodScanConfig {
            node_netns,
            only,
            named_dir: PathBuf::from(crate::netns::NETNS_RUN_DIR),
            named_etc: PathBuf::from("/etc/netns"),
            proc_dir: PathBuf::from("/proc"),
        }
    }
}

/// One container root in a pod's network namespace, and its resolver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodResolver {
    /// The network namespace, `net:[INODE]`.
    pub netns: String,
    /// Its `ip netns` name, when it has one.
    pub netns_name: Option<String>,
    /// A process of the container (none for a named namespace without one).
    pub pid: Option<u32>,
    /// The container's `etc/hostname` (the pod's name in Kubernetes).
    pub hostname: Option<String>,
    /// The file read: `/proc/PID/root/etc/resolv.conf` or
    /// `/etc/netns/NAME/resolv.conf`.
    pub resolv_conf_path: String,
    /// How reading it went.
    pub resolv_conf: RootFile,
    /// What it sets (none when it could not be read).
    pub setup: Option<ResolverSetup>,
    /// The container's C library.
    pub libc: LibcEvidence,
}

impl PodResolver {
    /// How the pod is named in reports: hostname, else the `ip netns` name,
    /// else the PID.
    pub fn label(&self) -> String {
        match (&self.hostname, &self.netns_name, self.pid) {
            (Some(host), _, Some(pid)) => format!("{host} (pid {pid})"),
            (Some(host), _, None) => host.clone(),
            (None, Some(name), _) => format!("netns {name}"),
            (None, None, Some(pid)) => format!("pid {pid} in {}", self.netns),
            (None, None, None) => self.netns.clone(),
        }
    }
}

/// What the scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PodScan {
    /// One entry per container root with a resolv.conf (roots without one,
    /// such as a pod's pause container, are counted in `without_resolv_conf`).
    pub pods: Vec<PodResolver>,
    /// Network namespaces looked at (the node's own left out).
    pub namespaces: usize,
    /// Container roots without an `etc/resolv.conf` (sandbox containers).
    pub without_resolv_conf: usize,
    /// Whether a limit or the stop flag cut the scan short.
    pub truncated: bool,
    /// Processes whose namespaces the kernel refused to show (EACCES or
    /// EPERM: looking into another process needs CAP_SYS_PTRACE).
    pub denied: usize,
    /// Remarks: processes that could not be looked at, and similar.
    pub notes: Vec<String>,
}

/// The inode of a namespace file (`/proc/PID/ns/net`, `/run/netns/NAME`),
/// which names the namespace.
pub fn namespace_inode(path: &Path) -> std::io::Result<u64> {
    Ok(std::fs::metadata(path)?.ino())
}

/// Per network namespace: per mount namespace, the first process seen.
type Groups = BTreeMap<u64, BTreeMap<u64, u32>>;

/// Walks `/proc`; `stop` cuts it short.
fn group_processes(config: &PodScanConfig, stop: &AtomicBool, scan: &mut PodScan) -> Groups {
    let mut groups: Groups = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&config.proc_dir) else {
        scan.notes.push(format!("cannot list {}", config.proc_dir.display()));
        return groups;
    };
    let mut unreadable = 0usize;
    for entry in entries.filter_map(Result::ok).take(MAX_PROCESSES) {
        if stop.load(Ordering::Relaxed) {
            scan.truncated = true;
            break;
        }
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let dir = entry.path();
        let (net, mnt) =
            match (namespace_inode(&dir.join("ns/net")), namespace_inode(&dir.join("ns/mnt"))) {
                (Ok(net), Ok(mnt)) => (net, mnt),
                (Err(e), _) | (_, Err(e)) => {
                    // Gone since the listing, or not ours to look at.
                    unreadable += 1;
                    if e.kind() == std::io::ErrorKind::PermissionDenied {
                        scan.denied += 1;
                    }
                    continue;
                }
            };
        if Some(net) == config.node_netns {
            continue;
        }
        if config.only.as_ref().is_some_and(|only| !only.contains(&net)) {
            continue;
        }
        if !groups.contains_key(&net) && groups.len() >= MAX_NAMESPACES {
            scan.truncated = true;
            continue;
        }
        groups.entry(net).or_default().entry(mnt).or_insert(pid);
    }
    if unreadable > 0 {
        scan.notes.push(format!(
            "{unreadable} processes could not be looked at (exited meanwhile, or reading their namespaces needs root)"
        ));
    }
    groups
}

/// `ip netns` names by namespace inode.
fn named_namespaces(config: &PodScanConfig) -> BTreeMap<u64, String> {
    let mut names = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&config.named_dir) else { return names };
    for entry in entries.filter_map(Result::ok).take(MAX_NAMESPACES * 4) {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        if let Ok(inode) = namespace_inode(&entry.path()) {
            names.entry(inode).or_insert(name);
        }
    }
    names
}

/// The first line of `etc/hostname` inside the root, if it is a plausible
/// host name.
fn hostname(root: &std::os::fd::OwnedFd) -> Option<String> {
    let text = rootfs::read_file(root, "etc/hostname", MAX_HOSTNAME);
    let line = text.text()?.lines().next()?.trim().to_string();
    let plausible = !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    plausible.then_some(line)
}

/// Reads one container root.
fn read_root(
    netns: u64,
    netns_name: Option<String>,
    pid: Option<u32>,
    root_path: &Path,
    resolv_conf: &str,
) -> Result<PodResolver, String> {
    let root = rootfs::open_root(root_path)
        .map_err(|e| format!("cannot open {}: {e}", root_path.display()))?;
    let read = rootfs::read_file(&root, resolv_conf, MAX_RESOLV_CONF);
    let setup = read.text().map(ResolverSetup::parse);
    Ok(PodResolver {
        netns: format!("net:[{netns}]"),
        netns_name,
        pid,
        hostname: if pid.is_some() { hostname(&root) } else { None },
        resolv_conf_path: root_path.join(resolv_conf).display().to_string(),
        resolv_conf: read,
        setup,
        libc: rootfs::detect_libc(&root),
    })
}

/// Scans the node's pods' resolvers. Never fails: what cannot be read is
/// said in `notes`; `stop` cuts it short (`truncated`).
pub fn scan(config: &PodScanConfig, stop: &AtomicBool) -> PodScan {
    let mut scan = PodScan::default();
    let groups = group_processes(config, stop, &mut scan);
    let names = named_namespaces(config);
    let mut seen_namespaces: BTreeSet<u64> = BTreeSet::new();
    let mut roots = 0usize;
    'namespaces: for (net, mounts) in &groups {
        seen_namespaces.insert(*net);
        for pid in mounts.values() {
            if stop.load(Ordering::Relaxed) || roots >= MAX_ROOTS {
                scan.truncated = true;
                break 'namespaces;
            }
            roots += 1;
            let root = config.proc_dir.join(pid.to_string()).join("root");
            match read_root(*net, names.get(net).cloned(), Some(*pid), &root, "etc/resolv.conf") {
                Ok(pod) if pod.resolv_conf == RootFile::Missing => scan.without_resolv_conf += 1,
                Ok(pod) => scan.pods.push(pod),
                Err(why) => scan.notes.push(why),
            }
        }
    }
    // Named namespaces nobody runs in (yet): their resolver is the file `ip
    // netns exec` mounts over /etc/resolv.conf, in the node's root.
    for (net, name) in &names {
        if seen_namespaces.contains(net) || Some(*net) == config.node_netns {
            continue;
        }
        if config.only.as_ref().is_some_and(|only| !only.contains(net)) {
            continue;
        }
        if stop.load(Ordering::Relaxed) || seen_namespaces.len() >= MAX_NAMESPACES {
            scan.truncated = true;
            break;
        }
        let path = format!("{}/{name}/resolv.conf", config.named_etc.display());
        let root = Path::new("/");
        // Only names with their own resolv.conf: the others would show the
        // node's own, which says nothing about a pod.
        if !Path::new(&path).is_file() {
            continue;
        }
        seen_namespaces.insert(*net);
        match read_root(*net, Some(name.clone()), None, root, path.trim_start_matches('/')) {
            Ok(pod) => scan.pods.push(pod),
            Err(why) => scan.notes.push(why),
        }
    }
    scan.namespaces = seen_namespaces.len();
    scan
}
