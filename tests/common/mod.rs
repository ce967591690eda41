//! Shared harness for integration tests: run the real `ctdiag` binary, build
//! a lab in network namespaces and tear it down again, also on panic.
//!
//! ```ignore
//! mod common;
//! use common::TestLab;
//!
//! #[test]
//! fn something() {
//!     if !common::require_root() {
//!         return;
//!     }
//!     let lab = TestLab::up(&["--endpoints", "2"]);
//!     let out = common::exec(&lab.client_ns(), &["dig", "+short", "kubernetes.default.svc.cluster.local"]);
//!     assert_eq!(common::stdout(&out).trim(), "198.19.0.1");
//!     let probe = common::ctdiag(&["probe", "--netns", &lab.client_ns(), "-o", "json"]);
//!     // `lab` is torn down when it goes out of scope.
//! }
//! ```
//!
//! Every command run here is bounded by [`COMMAND_TIMEOUT`]: a command that
//! hangs is killed and the test fails with what it printed.
//!
//! Network rule: only send traffic inside the lab's namespaces (198.18.0.0/15,
//! 2001:db8::/32) or to loopback, never from the root namespace to anything
//! else.

// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod ci;
pub mod conntrack;
pub mod exposition;
pub mod kernel;
pub mod prometheus;
pub mod report;
pub mod sticky;

/// The longest any single command run by the harness may take. Why 60 s:
/// the longest commands run with it (a lab `compare` or `doctor`, `probe`
/// runs of a few thousand lookups) take up to about 15 s here, so a loaded
/// machine gets four times that, and a hang still ends the test within a
/// minute. Commands bounded by something longer (`lab run`: a budget per
/// scenario) pass their own limit to [`run_with_timeout`].
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Path of the `ctdiag` binary under test.
pub const CTDIAG: &str = env!("CARGO_BIN_EXE_ctdiag");

/// The tools the stale tests' labs need beside root: conntrack-tools (the
/// kernel's view), nftables (nftables-mode rules) and dig (real DNS
/// clients). Records the skip, or panics in CI, like [`require_tool`].
pub fn lab_tools() -> bool {
    require_root()
        && require_tool("conntrack", "conntrack")
        && require_tool("nft", "nftables")
        && require_tool("dig", "bind9-dnsutils")
}

/// True when running as root (lab tests can run). Otherwise: outside CI
/// records the skip with its reason ([`ci::record_skip`]) and returns
/// false; in CI's strict mode ([`ci::strict`]) panics, because CI must
/// never silently skip a lab test.
pub fn require_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if is_ci() {
        panic!(
            "lab tests need root (network namespaces, iptables) and CI={:?} forbids skipping",
            ci::ci_value()
        );
    }
    ci::record_skip("not root: lab tests need network namespaces and iptables (run as root)");
    false
}

/// True when `program` is on PATH. Outside CI a missing tool means "skip,
/// recorded with its reason" (returns false); in CI's strict mode it
/// panics.
pub fn require_tool(program: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    if found {
        return true;
    }
    if is_ci() {
        panic!(
            "`{program}` is missing (install {package}) and CI={:?} forbids skipping",
            ci::ci_value()
        );
    }
    ci::record_skip(&format!("`{program}` is missing; install {package} (.ci/deps)"));
    false
}

/// Whether CI's strict mode is on: `CI` set and not `false`/`0` ([`ci::strict`]).
pub fn is_ci() -> bool {
    ci::is_ci()
}

/// A short prefix unique to this test process and call: `t<pid%10000>-<n>`.
pub fn unique_prefix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("t{}-{n}", std::process::id() % 10000)
}

/// Runs a command to completion with stdin closed, killing it after
/// [`COMMAND_TIMEOUT`] (then the test panics with its output so far).
pub fn run(program: &str, args: &[&str]) -> Output {
    run_with_timeout(program, args, COMMAND_TIMEOUT)
}

/// [`run`] with an explicit time limit.
pub fn run_with_timeout(program: &str, args: &[&str], timeout: Duration) -> Output {
    spawn(program, args).wait_bounded(timeout)
}

/// A command started in the background with stdin closed and its output
/// collected; waiting for it is bounded ([`Running::wait_bounded`]), and
/// dropping it unwaited kills it.
///
/// Why not the crate's own runner (`ctdiag::process::run_bounded`), which
/// does the same process-group-and-deadline work: this one is the harness
/// that checks the code under test, so it stays independent of it (a bug
/// in `process.rs`, such as a deadline that never fires, must fail tests,
/// not hang the harness that runs them). It also differs on purpose: it
/// finds programs in the test's own PATH (the crate, as root, looks only
/// in its fixed root PATH), it knows nothing of the crate's process-wide
/// `DeadlineCap`, and it runs commands in the background (`spawn`,
/// `signal`, `is_running`, stdout closed early), which the crate's runner
/// has no use for.
pub struct Running {
    child: Option<Child>,
    command: String,
    output: mpsc::Receiver<(Vec<u8>, Vec<u8>)>,
}

/// Starts `program args` in its own process group (so a timeout kills
/// everything it started), stdout and stderr read by threads.
pub fn spawn(program: &str, args: &[&str]) -> Running {
    spawn_inner(program, args, false)
}

/// [`spawn`] with the reading end of its stdout pipe closed at once, as
/// when the reader (`| head -c 1`) has gone: every write gets EPIPE.
pub fn spawn_with_stdout_closed(program: &str, args: &[&str]) -> Running {
    spawn_inner(program, args, true)
}

fn spawn_inner(program: &str, args: &[&str], close_stdout: bool) -> Running {
    try_spawn(program, args, close_stdout)
        .unwrap_or_else(|e| panic!("cannot start `{program}`: {e}"))
}

fn try_spawn(program: &str, args: &[&str], close_stdout: bool) -> std::io::Result<Running> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let stdout = child.stdout.take().filter(|_| !close_stdout);
    let stderr = child.stderr.take();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let err_reader = std::thread::spawn(move || {
            let mut err = Vec::new();
            if let Some(mut stderr) = stderr {
                let _ = stderr.read_to_end(&mut err);
            }
            err
        });
        let mut out = Vec::new();
        if let Some(mut stdout) = stdout {
            let _ = stdout.read_to_end(&mut out);
        }
        let err = err_reader.join().unwrap_or_default();
        let _ = tx.send((out, err));
    });
    Ok(Running { child: Some(child), command: format!("{program} {}", args.join(" ")), output: rx })
}

impl Running {
    /// The process ID.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the PID of our own child, not yet reaped.
        unsafe {
            libc::kill(self.id() as i32, signal);
        }
    }

    /// Whether the process is still running (not yet exited).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits at most `timeout` for the process to end and its output to be
    /// read; past that, kills its process group and panics.
    pub fn wait_bounded(self, timeout: Duration) -> Output {
        self.wait_until(timeout).unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`Running::wait_bounded`] that says why instead of panicking.
    pub fn wait_until(mut self, timeout: Duration) -> Result<Output, String> {
        let started = Instant::now();
        let mut child = self.child.take().ok_or("already waited for")?;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    kill_group(&mut child);
                    return Err(format!("`{}` did not finish within {timeout:?}", self.command));
                }
                Err(e) => return Err(format!("waiting for `{}`: {e}", self.command)),
            }
        };
        // A process that left a child holding the pipes open: bounded too.
        let left = timeout.saturating_sub(started.elapsed()).max(Duration::from_secs(1));
        match self.output.recv_timeout(left) {
            Ok((stdout, stderr)) => Ok(Output { status, stdout, stderr }),
            Err(_) => {
                kill_group(&mut child);
                Err(format!("`{}` ended but its output stayed open past {timeout:?}", self.command))
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }
}

/// Kills the process group of a child started by [`spawn`] and reaps it.
fn kill_group(child: &mut Child) {
    // SAFETY: kill(2) on the process group our own child leads.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.wait();
}

/// Runs `cmd[0] cmd[1..]` inside the named network namespace (`ip netns
/// exec`, which also bind-mounts `/etc/netns/NS/resolv.conf`).
pub fn exec(ns: &str, cmd: &[&str]) -> Output {
    let mut args = vec!["netns", "exec", ns];
    args.extend_from_slice(cmd);
    run("ip", &args)
}

/// Runs the `ctdiag` binary under test.
pub fn ctdiag(args: &[&str]) -> Output {
    run(CTDIAG, args)
}

/// The script of [`ctdiag_with_tools`]: `$1` the directory of tools,
/// `$2` 1 to hide the system's, `$3` the binary, then `KEY=VALUE` words up
/// to `--`, then the arguments.
const WITH_TOOLS: &str = r#"set -e
tools=$1 hide=$2 bin=$3
shift 3
mount --bind "$tools" /usr/local/sbin
if [ "$hide" = 1 ]; then
    for dir in /usr/local/bin /usr/sbin /sbin /bin /usr/bin; do
        [ -L "$dir" ] || mount -t tmpfs -o size=1m ctdiag-no-tools "$dir"
    done
fi
while [ "$1" != -- ]; do export "$1"; shift; done
shift
exec "$bin" "$@"
"#;

/// Runs `ctdiag ARGS` (with the `KEY=VALUE` words of `env` set) as root
/// with `tools` standing in for the tools ctdiag runs. Why not a PATH: as
/// root ctdiag looks tools up only in its fixed root PATH
/// (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin), never
/// the caller's. So in a private mount namespace (`unshare -m`, nothing
/// leaks to the host) `tools` is bind-mounted over /usr/local/sbin, the
/// first directory of that PATH, and with `hide_system` every other
/// directory of it is an empty tmpfs: only `tools`' programs exist.
pub fn ctdiag_with_tools(
    tools: &std::path::Path,
    hide_system: bool,
    env: &[&str],
    args: &[&str],
) -> Output {
    let tools = tools.display().to_string();
    let mut full = vec![
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        WITH_TOOLS,
        "sh",
        &tools,
        if hide_system { "1" } else { "0" },
        CTDIAG,
    ];
    full.extend_from_slice(env);
    full.push("--");
    full.extend_from_slice(args);
    run("unshare", &full)
}

/// Runs the `ctdiag` binary under test inside a network namespace.
pub fn ctdiag_in(ns: &str, args: &[&str]) -> Output {
    let mut cmd = vec![CTDIAG];
    cmd.extend_from_slice(args);
    exec(ns, &cmd)
}

/// `conntrack -S` in namespace `ns`, parsed (cpu -> name -> value): the
/// reference every counter test compares against.
pub fn conntrack_s(ns: &str) -> kernel::ConntrackS {
    let out = exec(ns, &["conntrack", "-S"]);
    assert_success(&out, &format!("conntrack -S in {ns}"));
    kernel::parse_conntrack_s(&stdout(&out)).unwrap_or_else(|e| panic!("conntrack -S: {e}"))
}

/// One counter of `conntrack -S` in `ns`, summed over the CPUs.
pub fn conntrack_s_total(ns: &str, counter: &str) -> u64 {
    kernel::total(&conntrack_s(ns), counter)
}

/// Stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Stdout parsed as one JSON document; panics with stdout and stderr if it
/// is not.
pub fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "output is not JSON ({e}); status {}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            stdout(output),
            stderr(output)
        )
    })
}

/// Panics with the command's output unless it exited 0.
pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// A lab built with the real binary (`ctdiag lab up --prefix P -o json`),
/// torn down (`ctdiag lab down`) when dropped, also when the test panics.
pub struct TestLab {
    /// The lab's unique prefix.
    pub prefix: String,
    /// The JSON `lab up` printed (updated by [`TestLab::scenario`]):
    /// prefix, namespaces {node, client, dns[]}, cluster_ip, port,
    /// endpoints ["ip:port"], dns_server, resolv_conf, rules_mode,
    /// state_dir, servers [{endpoint, namespace, address, kind, pid, alive,
    /// state, delay_ms, drop_rate, drop_aaaa_rate, log}], scenarios [].
    pub info: Value,
}

impl TestLab {
    /// Builds a lab with a fresh prefix; `args` are extra `lab up` flags
    /// (`--endpoints 3`, `--dns dnsmasq`, `--drop-aaaa-rate 0.5`, ...).
    /// Panics if the lab cannot be built (call [`require_root`] first).
    pub fn up(args: &[&str]) -> TestLab {
        let prefix = unique_prefix();
        let mut full = vec!["lab", "up", "--prefix", prefix.as_str(), "-o", "json"];
        full.extend_from_slice(args);
        // The guard exists before the command runs so that a half-built lab
        // is removed even when `lab up` fails.
        let mut lab = TestLab { prefix: prefix.clone(), info: Value::Null };
        let output = ctdiag(&full);
        assert_success(&output, &format!("ctdiag {}", full.join(" ")));
        lab.info = json(&output);
        assert_eq!(lab.info["prefix"], prefix.as_str());
        lab
    }

    /// The node namespace (`PREFIX-node`): kube-proxy rules and conntrack.
    pub fn node_ns(&self) -> String {
        format!("{}-node", self.prefix)
    }

    /// The client pod namespace (`PREFIX-client`, 198.18.1.2).
    pub fn client_ns(&self) -> String {
        format!("{}-client", self.prefix)
    }

    /// Endpoint `n`'s namespace (`PREFIX-dnsN`, 1-based).
    pub fn dns_ns(&self, n: u8) -> String {
        format!("{}-dns{n}", self.prefix)
    }

    /// Endpoint `n`'s IP address (198.18.(n+1).2).
    pub fn endpoint_ip(&self, n: u8) -> String {
        format!("198.18.{}.2", n + 1)
    }

    /// The kube-dns ClusterIP (198.19.0.10).
    pub fn cluster_ip(&self) -> String {
        self.info["cluster_ip"].as_str().unwrap_or("198.19.0.10").to_string()
    }

    /// The endpoints currently in the rules, `ip:port`.
    pub fn endpoints(&self) -> Vec<String> {
        self.info["endpoints"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default()
    }

    /// PIDs of the DNS servers that are running.
    pub fn server_pids(&self) -> Vec<u32> {
        self.info["servers"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["pid"].as_u64().map(|p| p as u32)).collect())
            .unwrap_or_default()
    }

    /// Applies `ctdiag lab scenario NAME --prefix P -o json ARGS...`, stores
    /// and returns the updated lab description. Panics if it fails.
    pub fn scenario(&mut self, name: &str, args: &[&str]) -> Value {
        let mut full =
            vec!["lab", "scenario", name, "--prefix", self.prefix.as_str(), "-o", "json"];
        full.extend_from_slice(args);
        let output = ctdiag(&full);
        assert_success(&output, &format!("ctdiag {}", full.join(" ")));
        self.info = json(&output);
        self.info.clone()
    }

    /// `ctdiag lab status --prefix P -o json` (output and parsed JSON, which
    /// is `Null` when the command printed none).
    pub fn status(&self) -> (Output, Value) {
        let output = ctdiag(&["lab", "status", "--prefix", &self.prefix, "-o", "json"]);
        let value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        (output, value)
    }

    /// Runs a command in the client pod's namespace.
    pub fn in_client(&self, cmd: &[&str]) -> Output {
        exec(&self.client_ns(), cmd)
    }

    /// Runs a command in the node's namespace.
    pub fn in_node(&self, cmd: &[&str]) -> Output {
        exec(&self.node_ns(), cmd)
    }
}

/// How long tear-down and failure dumps may take: bounded like everything
/// else, and they never panic (they run while a test may be panicking).
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a command for at most `timeout` without ever panicking: `None`
/// when it could not start or did not finish (then it is killed).
pub fn try_run(program: &str, args: &[&str], timeout: Duration) -> Option<Output> {
    let running = try_spawn(program, args, false).ok()?;
    running.wait_until(timeout).ok()
}

impl TestLab {
    fn dump_for_failure(&self) {
        let args = ["lab", "status", "--prefix", &self.prefix, "-o", "json"];
        match try_run(CTDIAG, &args, CLEANUP_TIMEOUT) {
            Some(o) => {
                eprintln!("--- lab status --prefix {}:\n{}{}", self.prefix, stdout(&o), stderr(&o))
            }
            None => eprintln!("--- lab status --prefix {}: did not run or hung", self.prefix),
        }
        let dir = std::path::Path::new("/run/ctdiag/lab").join(&self.prefix);
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                eprintln!("--- {}:\n{}", path.display(), tail.join("\n"));
            }
        }
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        // A failed test shows what the lab looked like and what its DNS
        // servers logged: on CI that is the only evidence there is.
        if std::thread::panicking() {
            self.dump_for_failure();
        }
        match try_run(CTDIAG, &["lab", "down", "--prefix", &self.prefix], CLEANUP_TIMEOUT) {
            Some(o) if o.status.success() => {}
            Some(o) => eprintln!("lab down --prefix {} failed: {}", self.prefix, stderr(&o)),
            None => eprintln!(
                "lab down --prefix {} did not run or took over {CLEANUP_TIMEOUT:?}",
                self.prefix
            ),
        }
    }
}

/// Whether a process runs whose command line contains `marker`.
pub fn process_with(marker: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        (text.contains(marker) && process_running(pid)).then_some(pid)
    })
}

/// Whether `pid` is a running process (a zombie waiting to be reaped does
/// not count).
pub fn process_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state =
                stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}
