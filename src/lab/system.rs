//! Running the system tools the lab is built with (`ip`, `iptables-restore`,
//! dnsmasq), and starting, finding and stopping the lab's detached DNS
//! server processes.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::process::{run_bounded, RunError};

/// Which package provides a tool, for "install X" messages.
fn package_of(program: &str) -> &'static str {
    match program {
        "ip" => "iproute2",
        "iptables" | "iptables-restore" | "iptables-save" | "ip6tables-restore" => "iptables",
        "nft" => "nftables",
        "dnsmasq" => "dnsmasq-base",
        "conntrack" => "conntrack",
        _ => "the package that provides it",
    }
}

/// Whether `program` is an executable file in the PATH tools are run from
/// ([`crate::process::tool_path`]: the fixed root PATH as root).
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = crate::process::tool_path();
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| {
        std::fs::metadata(candidate).is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.is_file() && m.permissions().mode() & 0o111 != 0
        })
    })
}

/// A usage-style error naming the package to install when `program` is
/// missing.
pub fn require_tool(program: &str) -> Result<()> {
    if find_in_path(program).is_some() {
        return Ok(());
    }
    let package = package_of(program);
    Err(Error::Runtime(format!(
        "`{program}` not found in PATH: the lab needs it; install {package} (e.g. `apt-get install {package}`)"
    )))
}

/// How long one of the lab's set-up commands (`ip`, `iptables-restore`,
/// `nft -f`) may take before it is killed.
pub const SETUP_DEADLINE: Duration = Duration::from_secs(60);

/// Runs a command to completion, feeding `stdin` if given, killed after
/// [`SETUP_DEADLINE`]; a non-zero exit is an `Error::Command` with its
/// stderr.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let command_line = format!("{program} {}", args.join(" "));
    let output = run_bounded(program, args, stdin.map(str::as_bytes), SETUP_DEADLINE).map_err(
        |e| match e {
            RunError::NotFound { .. } => Error::Runtime(format!(
                "`{program}` not found in PATH: install {}",
                package_of(program)
            )),
            other => Error::Command { command: command_line.clone(), detail: other.to_string() },
        },
    )?;
    if !output.status.success() {
        return Err(Error::Command {
            command: command_line,
            detail: format!("{}: {}", output.status, output.stderr_text()),
        });
    }
    Ok(output.stdout_text())
}

/// `ip ARGS...`.
pub fn ip(args: &[&str]) -> Result<()> {
    run("ip", args, None).map(|_| ())
}

/// Starts `program args` inside the named network namespace, detached from
/// this process (own session, stdin from /dev/null, stdout and stderr
/// appended to `log`). Returns its PID.
pub fn spawn_in_netns(netns: &str, program: &Path, args: &[String], log: &Path) -> Result<u32> {
    let ns_path = Path::new(crate::netns::NETNS_RUN_DIR).join(netns);
    let ns_file = File::open(&ns_path)
        .map_err(|e| Error::Netns { path: ns_path.clone(), reason: e.to_string() })?;
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::Runtime(format!("cannot open log {}: {e}", log.display())))?;
    let log_clone = log_file
        .try_clone()
        .map_err(|e| Error::Runtime(format!("cannot open log {}: {e}", log.display())))?;
    let ns_fd = std::os::fd::AsRawFd::as_raw_fd(&ns_file);
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).stdout(log_file).stderr(log_clone);
    // SAFETY: the closure runs in the forked child before exec and calls only
    // the async-signal-safe syscalls setns(2) and setsid(2); `ns_file` stays
    // open in the parent until spawn returns, so the descriptor is valid.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Why a new session: the server must outlive `ctdiag lab up` and
            // not get the terminal's SIGHUP/SIGINT.
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|e| Error::Command {
        command: format!("{} {}", program.display(), args.join(" ")),
        detail: e.to_string(),
    })?;
    drop(ns_file);
    Ok(child.id())
}

/// The namespace identity of a network namespace file or process
/// (`net:[4026532...]` as its inode number).
fn netns_inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// The state letter of process `pid` from /proc/PID/stat (`R`, `S`, `Z`...),
/// `None` when there is no such process.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state letter follows the parenthesised command name.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next())
}

fn is_running_state(state: Option<char>) -> bool {
    !matches!(state, Some('Z') | Some('X') | None)
}

/// Whether `pid` is a live (not zombie) process inside the named `ip netns`
/// namespace; a recycled PID elsewhere does not count.
pub fn alive_in_netns(pid: u32, netns: &str) -> bool {
    if !is_running_state(process_state(pid)) {
        return false;
    }
    let proc_ns = netns_inode(Path::new(&format!("/proc/{pid}/ns/net")));
    let lab_ns = netns_inode(&Path::new(crate::netns::NETNS_RUN_DIR).join(netns));
    proc_ns.is_some() && proc_ns == lab_ns
}

/// Whether any thread of process `pid` is still running. A zombie thread
/// group leader does not count, but its other threads do.
///
/// Why the threads: when a multi-threaded server gets SIGTERM, its leader can
/// show `Z` while the other threads are still exiting and still hold the
/// shared file table, so its sockets stay bound. Starting a new server on
/// the same port at that moment fails with EADDRINUSE.
fn exists(pid: u32) -> bool {
    match process_state(pid) {
        None => false,
        state if is_running_state(state) => true,
        _ => std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| tasks.flatten().any(|t| t.file_name() != pid.to_string().as_str()))
            .unwrap_or(false),
    }
}

/// Stops a process: SIGTERM, up to 1 s of grace, then SIGKILL. Reaps it if
/// it is our child. Returns whether it was running.
pub fn stop(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else { return false };
    let target = Pid::from_raw(raw);
    if !exists(pid) {
        reap(target);
        return false;
    }
    let _ = kill(target, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        reap(target);
        if !exists(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = kill(target, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline && exists(pid) {
        reap(target);
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Collects the exit status of `pid` if it is our child (a process spawned
/// by a library user in the same process); otherwise a no-op.
fn reap(pid: Pid) {
    let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
}

/// PIDs of every process inside the named namespace (`ip netns pids`).
pub fn pids_in_netns(netns: &str) -> Vec<u32> {
    run("ip", &["netns", "pids", netns], None)
        .map(|out| out.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Waits until the process `pid` itself holds a UDP socket bound to `addr`
/// and a TCP socket listening on it (the DNS server is up), the process dies,
/// or `timeout` passes.
///
/// Why ownership and not just "something answers": while an old server on
/// the same port is still exiting, a connect succeeds against its socket and
/// the new server may be the one that failed to bind.
pub fn wait_listening(
    netns: &str,
    addr: std::net::SocketAddr,
    pid: u32,
    timeout: Duration,
) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    let (udp_table, tcp_table) = if addr.is_ipv6() { ("udp6", "tcp6") } else { ("udp", "tcp") };
    loop {
        if !alive_in_netns(pid, netns) {
            return Ok(false);
        }
        let udp = bound_socket_inodes(pid, udp_table, addr, None);
        let tcp = bound_socket_inodes(pid, tcp_table, addr, Some(TCP_LISTEN));
        let owned = socket_inodes_of(pid);
        if udp.iter().any(|i| owned.contains(i)) && tcp.iter().any(|i| owned.contains(i)) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `st` of a listening socket in /proc/net/tcp.
const TCP_LISTEN: u8 = 0x0A;

/// Inodes of the sockets bound to `addr` in `/proc/PID/net/{table}` (the
/// table of the process's network namespace: `udp`, `tcp`, `udp6`,
/// `tcp6`), optionally only those in state `state`.
fn bound_socket_inodes(
    pid: u32,
    table: &str,
    addr: std::net::SocketAddr,
    state: Option<u8>,
) -> Vec<u64> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(parse_socket_line)
        .filter_map(|(local, st, inode)| {
            (local == addr && state.is_none_or(|want| want == st)).then_some(inode)
        })
        .collect()
}

/// The address of /proc/net/{udp,tcp}{,6}'s `local_address` column: the
/// address's 32-bit words in network order, each printed as a host-order
/// hex number (8 digits for IPv4, 4 x 8 for IPv6).
fn parse_proc_address(hex: &str) -> Option<std::net::IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(std::net::Ipv4Addr::from(word(0)?).into()),
        32 => {
            let mut octets = [0u8; 16];
            for i in 0..4 {
                octets[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(std::net::Ipv6Addr::from(octets).into())
        }
        _ => None,
    }
}

/// `local_address`, `st` and `inode` of one line of /proc/net/{udp,tcp}{,6}:
/// `0: 020312C6:0035 00000000:0000 07 ... 0 12345 ...`.
fn parse_socket_line(line: &str) -> Option<(std::net::SocketAddr, u8, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (ip, port) = fields.get(1)?.split_once(':')?;
    let ip = parse_proc_address(ip)?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let st = u8::from_str_radix(fields.get(3)?, 16).ok()?;
    let inode = fields.get(9)?.parse().ok()?;
    Some((std::net::SocketAddr::new(ip, port), st, inode))
}

/// Inodes of the sockets the process `pid` has open (`socket:[N]` links in
/// /proc/PID/fd).
fn socket_inodes_of(pid: u32) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?.to_string();
            target.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_lines_from_proc_net() {
        // A UDP socket bound to 198.18.3.2:53, as this x86_64 kernel prints it.
        let udp = "  123: 020312C6:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 91234 2 0000000000000000 0";
        let (local, st, inode) = parse_socket_line(udp).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(local, "198.18.3.2:53".parse().unwrap());
            // [2001:db8:3::2]:53 as /proc/net/udp6 prints it on x86_64.
            let udp6 = "   5: B80D0120000003000000000002000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0";
            let (local, st, inode) = parse_socket_line(udp6).unwrap();
            assert_eq!(local, "[2001:db8:3::2]:53".parse().unwrap());
            assert_eq!((st, inode), (7, 4242));
        }
        assert_eq!((st, inode), (7, 91234));
        assert_eq!(parse_socket_line("  sl  local_address rem_address   st"), None);
        assert_eq!(parse_socket_line(""), None);
    }

    #[test]
    fn this_process_owns_its_sockets() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let pid = std::process::id();
        let owned = socket_inodes_of(pid);
        let (u, t) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        let udp_inodes = bound_socket_inodes(pid, "udp", u, None);
        let tcp_inodes = bound_socket_inodes(pid, "tcp", t, Some(TCP_LISTEN));
        assert!(udp_inodes.iter().any(|i| owned.contains(i)), "{udp_inodes:?} {owned:?}");
        assert!(tcp_inodes.iter().any(|i| owned.contains(i)), "{tcp_inodes:?} {owned:?}");
    }
}
