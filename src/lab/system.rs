//! Running the system tools the lab is built with (`ip`, `iptables-restore`,
//! dnsmasq), and starting, finding and stopping the lab's detached DNS
//! server processes.

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// Which package provides a tool, for "install X" messages.
fn package_of(program: &str) -> &'static str {
    match program {
        "ip" => "iproute2",
        "iptables" | "iptables-restore" | "iptables-save" => "iptables",
        "dnsmasq" => "dnsmasq-base",
        "conntrack" => "conntrack",
        _ => "the package that provides it",
    }
}

/// Whether `program` is an executable file in `PATH`.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
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

/// Runs a command to completion, feeding `stdin` if given; a non-zero exit
/// is an `Error::Command` with its stderr.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let command_line = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Runtime(format!(
                "`{program}` not found in PATH: install {}",
                package_of(program)
            )),
            _ => Error::Command { command: command_line.clone(), detail: e.to_string() },
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| Error::Command { command: command_line.clone(), detail: e.to_string() })?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| Error::Command { command: command_line.clone(), detail: e.to_string() })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(Error::Command {
            command: command_line,
            detail: format!("{}: {stderr}", output.status),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
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

/// Whether `pid` is a live (not zombie) process inside the named `ip netns`
/// namespace; a recycled PID elsewhere does not count.
pub fn alive_in_netns(pid: u32, netns: &str) -> bool {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(_) => return false,
    };
    // The state letter follows the parenthesised command name.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, Some('Z') | Some('X') | None) {
        return false;
    }
    let proc_ns = netns_inode(Path::new(&format!("/proc/{pid}/ns/net")));
    let lab_ns = netns_inode(&Path::new(crate::netns::NETNS_RUN_DIR).join(netns));
    proc_ns.is_some() && proc_ns == lab_ns
}

/// Whether `pid` exists and is not a zombie.
fn exists(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state =
                stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X'))
        }
        Err(_) => false,
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

/// Waits until something accepts TCP connections on `addr` inside the named
/// namespace (the DNS server is up), the process `pid` dies, or `timeout`
/// passes.
pub fn wait_listening(
    netns: &str,
    addr: std::net::SocketAddr,
    pid: u32,
    timeout: Duration,
) -> Result<bool> {
    let ns = crate::netns::Netns::open(netns)?;
    let deadline = Instant::now() + timeout;
    loop {
        let connected = ns.run(|| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })?;
        if connected {
            return Ok(true);
        }
        if !alive_in_netns(pid, netns) || Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
