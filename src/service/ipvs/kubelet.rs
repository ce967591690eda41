//! The node's kubelet, for the cluster DNS address it gives pods (which
//! IPVS mode needs to tell kube-dns among nameless virtual servers): found
//! by its executable and the host's namespaces, its `--config` read
//! through the guarded reader.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::dns::rootfs;

/// The `clusterDNS` addresses of a kubelet config file (YAML, as kubeadm
/// and the distributions write it: `clusterDNS:` then `- IP` lines).
fn kubelet_config_cluster_dns(text: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        let Some(rest) = trimmed.strip_prefix("clusterDNS:") else { continue };
        let rest = rest.trim();
        if let Some(inline) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            out.extend(
                inline.split(',').filter_map(|s| s.trim().trim_matches('"').parse::<IpAddr>().ok()),
            );
            continue;
        }
        while let Some(next) = lines.peek() {
            let Some(item) = next.trim().strip_prefix("- ") else { break };
            if let Ok(ip) = item.trim().trim_matches(|c| c == '"' || c == '\'').parse() {
                out.push(ip);
            }
            lines.next();
        }
    }
    out
}

/// The kubelet's `--cluster-dns` and `--config` from a command line
/// (NUL-separated, as /proc/PID/cmdline holds it).
fn kubelet_flags(cmdline: &[u8]) -> (Vec<IpAddr>, Option<PathBuf>) {
    let args: Vec<String> =
        cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let mut dns = Vec::new();
    let mut config = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value_or_next = || value.clone().or_else(|| iter.next().cloned());
        match flag {
            "--cluster-dns" => {
                if let Some(v) = value_or_next() {
                    dns.extend(v.split(',').filter_map(|s| s.trim().parse::<IpAddr>().ok()));
                }
            }
            "--config" => config = value_or_next().map(PathBuf::from),
            _ => {}
        }
    }
    (dns, config)
}

/// The host's mount and PID namespaces: those of `proc`'s PID 1 (the
/// host's init when ctdiag sees the host's processes, on the node or with
/// `hostPID`), else ctdiag's own (when PID 1's cannot be read: ctdiag then
/// runs on the node itself, or sees no kubelet anyway).
fn host_namespaces(proc: &Path) -> Option<(PathBuf, PathBuf)> {
    let of = |process: &str| {
        let ns = proc.join(process).join("ns");
        Some((std::fs::read_link(ns.join("mnt")).ok()?, std::fs::read_link(ns.join("pid")).ok()?))
    };
    of("1").or_else(|| of("self"))
}

/// Whether process `dir` (`/proc/PID`) is the node's kubelet: its
/// executable is a file named `kubelet` and it runs in the host's mount
/// and PID namespaces. Why not `comm`: any pod can name a process
/// `kubelet` (prctl, or an executable of that name in its image), and a
/// pod's kubelet lookalike must not decide which ClusterIP is kube-dns.
fn is_host_kubelet(dir: &Path, host: &(PathBuf, PathBuf)) -> bool {
    // `kubelet (deleted)`: the binary was replaced on disk (an upgrade)
    // while this one runs.
    let exe_named_kubelet = std::fs::read_link(dir.join("exe")).is_ok_and(|exe| {
        exe.file_name().is_some_and(|name| name == "kubelet" || name == "kubelet (deleted)")
    });
    exe_named_kubelet
        && std::fs::read_link(dir.join("ns/mnt")).is_ok_and(|mnt| mnt == host.0)
        && std::fs::read_link(dir.join("ns/pid")).is_ok_and(|pid| pid == host.1)
}

/// The command lines of the node's kubelets ([`is_host_kubelet`]), by
/// scanning `proc`.
fn kubelet_cmdlines(proc: &Path) -> Vec<(u32, Vec<u8>)> {
    let Some(host) = host_namespaces(proc) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(proc) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if is_host_kubelet(&entry.path(), &host) {
            if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
                out.push((pid, cmdline));
            }
        }
    }
    out
}

/// Most bytes of a kubelet config file read (a real one is a few KiB).
const MAX_KUBELET_CONFIG: u64 = 1024 * 1024;

/// The `clusterDNS` of the kubelet config file at `path`, read through
/// the guarded reader (inside the kubelet's root for a
/// `/proc/PID/root/...` path; regular files only, bounded, never blocking).
fn config_cluster_dns(path: &Path) -> Vec<IpAddr> {
    rootfs::read_path(path, MAX_KUBELET_CONFIG)
        .text()
        .map(kubelet_config_cluster_dns)
        .unwrap_or_default()
}

/// The cluster DNS addresses the kubelet gives pods: its `--cluster-dns`
/// flag, else `clusterDNS` of its `--config` file, else of
/// /var/lib/kubelet/config.yaml. With where it was read.
pub(super) fn kubelet_cluster_dns(proc: &Path) -> Option<(Vec<IpAddr>, String)> {
    for (pid, cmdline) in kubelet_cmdlines(proc) {
        let (dns, config) = kubelet_flags(&cmdline);
        if !dns.is_empty() {
            return Some((dns, format!("the kubelet's --cluster-dns (PID {pid})")));
        }
        if let Some(path) = config {
            // The path is the kubelet's, inside its mount namespace.
            let path = proc
                .join(pid.to_string())
                .join("root")
                .join(path.strip_prefix("/").unwrap_or(&path));
            let dns = config_cluster_dns(&path);
            if !dns.is_empty() {
                return Some((dns, format!("clusterDNS in {}", path.display())));
            }
        }
    }
    let default = Path::new("/var/lib/kubelet/config.yaml");
    let dns = config_cluster_dns(default);
    (!dns.is_empty()).then(|| (dns, format!("clusterDNS in {}", default.display())))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn kubelet_sources() {
        let yaml = "kind: KubeletConfiguration\nclusterDNS:\n- 10.96.0.10\n- \"fd00::a\"\nclusterDomain: cluster.local\n";
        assert_eq!(
            kubelet_config_cluster_dns(yaml),
            ["10.96.0.10".parse::<IpAddr>().unwrap(), "fd00::a".parse().unwrap()]
        );
        assert_eq!(kubelet_config_cluster_dns("clusterDNS: [10.0.0.10]\n").len(), 1);
        assert!(kubelet_config_cluster_dns("clusterDomain: x\n").is_empty());
        let (dns, config) = kubelet_flags(b"/usr/bin/kubelet\0--cluster-dns=10.96.0.10,fd00::a\0--config\0/var/lib/kubelet/config.yaml\0");
        assert_eq!(dns.len(), 2);
        assert_eq!(config, Some(PathBuf::from("/var/lib/kubelet/config.yaml")));
        let (dns, config) = kubelet_flags(b"kubelet\0--cluster-dns\0\x31\x39\x38.19.0.10\0");
        assert_eq!((dns, config), (vec!["198.19.0.10".parse::<IpAddr>().unwrap()], None));
    }

    /// kube-dns matched from the nameserver of a process in another
    /// namespace (a pod), read through /proc/PID/root; and `--cluster-dns`
    /// wins over it.
    /// A child process in its own process group, killed with everything
    /// it started (a shell's `sleep`) and reaped on drop.
    pub(in crate::service::ipvs) struct Proc(pub(in crate::service::ipvs) std::process::Child);

    impl Drop for Proc {
        fn drop(&mut self) {
            // SAFETY: kill(2) on the process group of our own child.
            unsafe {
                libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = self.0.wait();
        }
    }

    /// Starts `args` and waits until its process runs `exe_name` (what
    /// /proc/PID/exe names once every set-up step has exec'd).
    pub(in crate::service::ipvs) fn start(args: &[&str], exe_name: &str) -> Proc {
        use std::os::unix::process::CommandExt;
        // A copy just written can be "busy" (ETXTBSY) for a moment: another
        // test thread that forked while the copy's write descriptor was open
        // holds it until its child execs. Retried, bounded.
        let mut tries = 0;
        let child = loop {
            match std::process::Command::new(args[0]).args(&args[1..]).process_group(0).spawn() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                spawned => break spawned.unwrap(),
            }
        };
        let pid = child.id();
        let running = Proc(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !std::fs::read_link(format!("/proc/{pid}/exe"))
            .is_ok_and(|exe| exe.file_name().is_some_and(|n| n == exe_name))
        {
            assert!(std::time::Instant::now() < deadline, "{args:?} never became {exe_name}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        running
    }

    #[test]
    fn the_kubelet_is_found_by_executable_and_host_namespaces() {
        if !crate::testutil::lab_allowed("the_kubelet_is_found_by_executable_and_host_namespaces") {
            return;
        }
        let dir = std::env::temp_dir().join(format!("ctdiag-kubelet-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubelet = dir.join("kubelet");
        std::fs::copy("/bin/sh", &kubelet).unwrap();
        let kubelet = kubelet.to_str().unwrap();
        let shell = std::fs::canonicalize("/bin/sh").unwrap();
        let shell = shell.file_name().unwrap().to_str().unwrap().to_string();
        // `; :` keeps the shell alive (no exec of its last command).
        let real = start(
            &[kubelet, "-c", "sleep 30; :", "kubelet", "--cluster-dns=198.19.0.88"],
            "kubelet",
        );
        let renamed = start(
            &[
                "sh",
                "-c",
                "printf kubelet > /proc/$$/comm; sleep 30; :",
                "kubelet",
                "--cluster-dns=198.19.0.66",
            ],
            &shell,
        );
        let in_pod = start(
            &[
                "unshare",
                "-m",
                "--propagation",
                "private",
                kubelet,
                "-c",
                "sleep 30; :",
                "kubelet",
                "--cluster-dns=198.19.0.77",
            ],
            "kubelet",
        );
        let renamed_pid = renamed.0.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_to_string(format!("/proc/{renamed_pid}/comm"))
            .unwrap_or_default()
            .trim()
            != "kubelet"
        {
            assert!(std::time::Instant::now() < deadline, "the lookalike never renamed itself");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let found: Vec<u32> =
            kubelet_cmdlines(Path::new("/proc")).into_iter().map(|(pid, _)| pid).collect();
        let (real_pid, in_pod_pid) = (real.0.id(), in_pod.0.id());
        let in_pod_mnt = std::fs::read_link(format!("/proc/{in_pod_pid}/ns/mnt")).unwrap();
        drop((real, renamed, in_pod));
        let _ = std::fs::remove_dir_all(&dir);
        let host = host_namespaces(Path::new("/proc")).unwrap();
        assert_ne!(in_pod_mnt, host.0);
        assert!(found.contains(&real_pid), "{found:?}");
        assert!(!found.contains(&renamed_pid), "a process named kubelet was taken: {found:?}");
        assert!(!found.contains(&in_pod_pid), "a pod's kubelet was taken: {found:?}");
    }
}
