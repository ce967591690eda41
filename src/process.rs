//! External commands (`iptables-save`, `nft`, `ip`, `ipvsadm`, `kubectl`, ...)
//! run with a deadline: a wedged tool on a sick node is killed and reported,
//! never waited for forever, and when ctdiag runs as root a tool is looked
//! up in a fixed, root-owned PATH ([`ROOT_PATH`]), never in the caller's.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a listing tool (`iptables-save`, `nft list`, `ipvsadm`) may
/// take. Why 10 s: a 2,000-Service node lists in about 0.2 s; ten times a
/// very large node's listing still fits, and a hung tool costs at most this.
pub const LISTING_DEADLINE: Duration = Duration::from_secs(10);

/// The environment variable that shortens (or lengthens) the listing
/// deadline, in milliseconds (1 to 600000); tests use it to wait less for a
/// tool they made hang. Other values are ignored.
pub const LISTING_DEADLINE_ENV: &str = "CTDIAG_LISTING_DEADLINE_MS";

/// The deadline of a listing tool: [`LISTING_DEADLINE`], unless
/// `CTDIAG_LISTING_DEADLINE_MS` gives another.
pub fn listing_deadline() -> Duration {
    std::env::var(LISTING_DEADLINE_ENV)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|ms| (1..=600_000).contains(ms))
        .map_or(LISTING_DEADLINE, Duration::from_millis)
}

/// Where tools are looked up when ctdiag runs as root (effective UID 0).
/// Why not the caller's PATH: a root-run diagnostic that runs
/// `iptables-save` or `nft` from `~/bin` or `.` (a PATH kept by `sudo -E`,
/// a shell profile) runs whatever someone put there, as root.
pub const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long a killed command has to be reaped after SIGKILL. Why 2 s: a
/// killed process exits as soon as it is scheduled; one that has not after
/// this long is stuck in the kernel (uninterruptible sleep on a hung file
/// system or device) and waiting longer would hang ctdiag with it.
pub const REAP_DEADLINE: Duration = Duration::from_secs(2);

/// The directories of [`ROOT_PATH`] that exist, are owned by root and are
/// writable by root only (a directory anyone could write into is no safer
/// than the caller's PATH), joined as a PATH value.
fn root_path() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        ROOT_PATH
            .split(':')
            .filter(|dir| {
                std::fs::metadata(dir)
                    .is_ok_and(|m| m.is_dir() && m.uid() == 0 && m.mode() & 0o022 == 0)
            })
            .collect::<Vec<_>>()
            .join(":")
    })
}

/// Whether the effective UID is 0.
fn running_as_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail (nix's
    // geteuid needs its `user` feature, not enabled for one call).
    unsafe { libc::geteuid() == 0 }
}

/// The PATH external tools are looked up in and run with: the root-owned
/// directories of [`ROOT_PATH`] when ctdiag runs as root, else the caller's
/// PATH.
pub fn tool_path() -> OsString {
    if running_as_root() {
        OsString::from(root_path())
    } else {
        std::env::var_os("PATH").unwrap_or_default()
    }
}

/// `Command::new(program)` looked up in [`tool_path`] and run with it as
/// its PATH (a wrapper script's own commands resolve the same way).
fn tool_command(program: &str) -> Command {
    let mut command = Command::new(program);
    command.env("PATH", tool_path());
    command
}

/// Waits for `child` for at most `limit`; `None` when it is still there.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(2)),
            _ => return None,
        }
    }
}

/// SIGKILL to the process group `pid` leads (nix's killpg: kill(2) with
/// the negated id).
fn kill_group(pid: libc::pid_t) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
}

/// Kills the process group of `child` and reaps it, waiting at most
/// [`REAP_DEADLINE`]; the error says whether it was reaped.
fn kill_and_reap(child: &mut Child, command: String, after: Duration) -> RunError {
    // The process group of our own child, not yet reaped; an error (the
    // group already gone) leaves nothing to do.
    kill_group(child.id() as libc::pid_t);
    let left_running = wait_bounded(child, REAP_DEADLINE).is_none().then_some(child.id());
    RunError::TimedOut { command, after, left_running }
}

/// The instant no external command may outlive, process-wide (see
/// [`DeadlineCap`]).
static CAP: Mutex<Option<Instant>> = Mutex::new(None);
/// Process groups of the commands running now (through [`run_bounded`] or
/// [`run_bounded_lines`]).
static RUNNING: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// Records a running command's process group until dropped.
struct Registered(libc::pid_t);

impl Registered {
    fn new(pid: libc::pid_t) -> Self {
        RUNNING.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(pid);
        Registered(pid)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        RUNNING.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|p| *p != self.0);
    }
}

/// While alive, every command started through [`run_bounded`] or
/// [`run_bounded_lines`] (by this thread or any other) is killed at `until`
/// at the latest, whatever deadline its caller gave. Why: `ctdiag doctor`
/// runs checks in threads within a time budget and gives up on a check that
/// overruns; a listing tool that check started (a hung `nft`) must not
/// outlive the budget, nor the process. Dropping the guard restores the
/// cap that was in force before.
#[derive(Debug)]
pub struct DeadlineCap {
    previous: Option<Instant>,
}

impl DeadlineCap {
    /// Caps every command's deadline at `until` (an earlier cap in force
    /// stays when it is earlier).
    pub fn until(until: Instant) -> Self {
        let mut cap = CAP.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = *cap;
        *cap = Some(previous.map_or(until, |p| p.min(until)));
        DeadlineCap { previous }
    }
}

impl Drop for DeadlineCap {
    /// Restores the previous cap and kills every command still running:
    /// the work that started them has been given up, and a command must not
    /// outlive the budget (nor the process, which may exit right after).
    fn drop(&mut self) {
        *CAP.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = self.previous;
        let running = RUNNING.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        // Children of ours not yet reaped (each is unregistered only after
        // its wait), so their group ids are not reused.
        for pid in running {
            kill_group(pid);
        }
    }
}

/// `deadline` from now, shortened to the [`DeadlineCap`] in force.
fn capped(deadline: Duration) -> Duration {
    let cap = *CAP.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    capped_at(deadline, cap, Instant::now())
}

/// `deadline` from `now`, ending no later than `cap`.
fn capped_at(deadline: Duration, cap: Option<Instant>, now: Instant) -> Duration {
    match cap {
        Some(until) => deadline.min(until.saturating_duration_since(now)),
        None => deadline,
    }
}

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Ran {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

impl Ran {
    /// Stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as trimmed text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

/// Why a command gave no result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program is not installed (not found in PATH; as root, in
    /// [`ROOT_PATH`]).
    #[error("`{program}` not found in {}", tool_path().to_string_lossy())]
    NotFound {
        /// The program.
        program: String,
    },
    /// It could not be started.
    #[error("`{program}` could not be started: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// It did not finish in time and was killed (with everything it
    /// started); when it had still not exited [`REAP_DEADLINE`] after
    /// SIGKILL it was given up on, and `left_running` names it.
    #[error("`{command}` did not finish within {after:?} and was killed{}", left_running.map_or_else(String::new, |pid| format!(", but PID {pid} had not exited {REAP_DEADLINE:?} after SIGKILL (stuck in the kernel?) and was left behind")))]
    TimedOut {
        /// The command line.
        command: String,
        /// The deadline that passed.
        after: Duration,
        /// The PID still not reaped after SIGKILL, if any.
        left_running: Option<u32>,
    },
}

/// Runs `program args` with stdin from `input` (or /dev/null), collecting
/// stdout and stderr, for at most `deadline`. The command runs in its own
/// process group, so at the deadline the whole group is killed: a wrapper
/// script's children cannot keep the pipes open.
pub fn run_bounded(
    program: &str,
    args: &[&str],
    input: Option<&[u8]>,
    deadline: Duration,
) -> Result<Ran, RunError> {
    let deadline = capped(deadline);
    let started = Instant::now();
    let mut command = tool_command(program);
    command
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            RunError::NotFound { program: program.to_string() }
        } else {
            RunError::Spawn { program: program.to_string(), source }
        }
    })?;
    let pid = child.id() as libc::pid_t;
    let _registered = Registered::new(pid);
    let (done_tx, done_rx) = mpsc::channel::<(u8, Vec<u8>)>();
    // Why threads per pipe: a tool that fills one pipe while we block on the
    // other would deadlock; each reader ends at EOF or when the group dies.
    if let (Some(mut stdin), Some(bytes)) = (child.stdin.take(), input) {
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            // A tool that exits without reading all of it is not our error.
            let _ = stdin.write_all(&bytes);
        });
    }
    for (tag, pipe) in [
        (0u8, child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
        (1u8, child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
    ] {
        let tx = done_tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            let _ = tx.send((tag, buf));
        });
    }
    drop(done_tx);
    let mut outputs: [Option<Vec<u8>>; 2] = [None, None];
    let timed_out = loop {
        if outputs.iter().all(Option::is_some) {
            break false;
        }
        let left = deadline.saturating_sub(started.elapsed());
        match done_rx.recv_timeout(left) {
            Ok((tag, buf)) => outputs[usize::from(tag)] = Some(buf),
            Err(mpsc::RecvTimeoutError::Timeout) => break true,
            // Both readers are gone (cannot happen before both sent).
            Err(mpsc::RecvTimeoutError::Disconnected) => break false,
        }
    };
    // Both pipes are closed; the process may still linger (it closed them
    // early), so the wait is bounded too.
    let status = if timed_out {
        None
    } else {
        wait_bounded(&mut child, deadline.saturating_sub(started.elapsed()))
    };
    let Some(status) = status else {
        let command = format!("{program} {}", args.join(" ")).trim_end().to_string();
        return Err(kill_and_reap(&mut child, command, deadline));
    };
    let [stdout, stderr] = outputs;
    Ok(Ran { status, stdout: stdout.unwrap_or_default(), stderr: stderr.unwrap_or_default() })
}

/// Runs `program args` like [`run_bounded`] (stdin from /dev/null), but
/// hands each line of stdout to `on_line` as it arrives, so a caller can
/// parse a long listing while the tool still prints it. The returned
/// `Ran` has an empty `stdout`. Invalid UTF-8 is replaced, never fatal.
pub fn run_bounded_lines(
    program: &str,
    args: &[&str],
    deadline: Duration,
    mut on_line: impl FnMut(&str),
) -> Result<Ran, RunError> {
    let deadline = capped(deadline);
    let started = Instant::now();
    let mut child = tool_command(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                RunError::NotFound { program: program.to_string() }
            } else {
                RunError::Spawn { program: program.to_string(), source }
            }
        })?;
    let pid = child.id() as libc::pid_t;
    let _registered = Registered::new(pid);
    // None = end of stdout; Some(chunk) = more bytes.
    let (chunks_tx, chunks_rx) = mpsc::channel::<Option<Vec<u8>>>();
    if let Some(mut stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if chunks_tx.send(Some(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = chunks_tx.send(None);
        });
    } else {
        let _ = chunks_tx.send(None);
    }
    let (err_tx, err_rx) = mpsc::channel::<Vec<u8>>();
    let stderr = child.stderr.take();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = stderr {
            let _ = pipe.read_to_end(&mut buf);
        }
        let _ = err_tx.send(buf);
    });
    let mut pending: Vec<u8> = Vec::new();
    let kill = |child: &mut Child| {
        let command = format!("{program} {}", args.join(" ")).trim_end().to_string();
        kill_and_reap(child, command, deadline)
    };
    loop {
        let left = deadline.saturating_sub(started.elapsed());
        match chunks_rx.recv_timeout(left) {
            Ok(Some(chunk)) => {
                pending.extend_from_slice(&chunk);
                // Hand over every complete line; keep the rest.
                if let Some(last) = pending.iter().rposition(|b| *b == b'\n') {
                    let rest = pending.split_off(last + 1);
                    for line in String::from_utf8_lossy(&pending).lines() {
                        on_line(line);
                    }
                    pending = rest;
                }
            }
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => return Err(kill(&mut child)),
        }
    }
    if !pending.is_empty() {
        on_line(&String::from_utf8_lossy(&pending));
    }
    let left = deadline.saturating_sub(started.elapsed());
    let stderr = match err_rx.recv_timeout(left) {
        Ok(buf) => buf,
        Err(_) => return Err(kill(&mut child)),
    };
    let Some(status) = wait_bounded(&mut child, deadline.saturating_sub(started.elapsed())) else {
        return Err(kill(&mut child));
    };
    Ok(Ran { status, stdout: Vec::new(), stderr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_output_and_status() {
        let ran =
            run_bounded("sh", &["-c", "echo out; echo err >&2; exit 3"], None, LISTING_DEADLINE)
                .unwrap();
        assert_eq!(ran.stdout_text(), "out\n");
        assert_eq!(ran.stderr_text(), "err");
        assert_eq!(ran.status.code(), Some(3));
    }

    #[test]
    fn feeds_stdin() {
        let ran = run_bounded("cat", &[], Some(b"abc"), LISTING_DEADLINE).unwrap();
        assert_eq!(ran.stdout, b"abc");
    }

    #[test]
    fn a_hung_command_and_its_children_are_killed_at_the_deadline() {
        let started = Instant::now();
        // The child `sleep` inherits the pipes: killing only `sh` would
        // leave them open and the readers waiting.
        let error =
            run_bounded("sh", &["-c", "sleep 30; echo never"], None, Duration::from_millis(300))
                .unwrap_err();
        assert!(matches!(error, RunError::TimedOut { .. }), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(error.to_string().contains("did not finish within 300ms"), "{error}");
    }

    #[test]
    fn lines_arrive_as_printed_and_a_hang_is_killed() {
        let mut lines = Vec::new();
        let ran = run_bounded_lines(
            "sh",
            &["-c", "printf 'a\\nb\\n'; sleep 0.1; printf 'c'; echo err >&2; exit 4"],
            LISTING_DEADLINE,
            |l| lines.push(l.to_string()),
        )
        .unwrap();
        assert_eq!(lines, ["a", "b", "c"]);
        assert_eq!((ran.status.code(), ran.stderr_text().as_str()), (Some(4), "err"));
        let started = Instant::now();
        let error = run_bounded_lines(
            "sh",
            &["-c", "echo x; sleep 30"],
            Duration::from_millis(300),
            |_| {},
        )
        .unwrap_err();
        assert!(matches!(error, RunError::TimedOut { .. }), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(
            run_bounded_lines("ctdiag-no-such-tool", &[], LISTING_DEADLINE, |_| {}),
            Err(RunError::NotFound { .. })
        ));
    }

    #[test]
    fn a_cap_shortens_a_deadline_and_never_lengthens_it() {
        let now = Instant::now();
        let ten = Duration::from_secs(10);
        assert_eq!(capped_at(ten, None, now), ten);
        assert_eq!(capped_at(ten, Some(now + Duration::from_secs(2)), now), Duration::from_secs(2));
        assert_eq!(capped_at(ten, Some(now + Duration::from_secs(60)), now), ten);
        assert_eq!(capped_at(ten, Some(now - Duration::from_secs(1)), now), Duration::ZERO);
    }

    #[test]
    fn the_wait_for_a_child_that_does_not_exit_is_bounded() {
        // A child that is not killed stands in for one stuck in the kernel
        // after SIGKILL: the wait gives up at its limit instead of hanging.
        let mut child = Command::new("sleep").arg("30").process_group(0).spawn().unwrap();
        let started = Instant::now();
        assert_eq!(wait_bounded(&mut child, Duration::from_millis(200)), None);
        // Why 5 s: 200 ms plus scheduling delay on a loaded 2-core machine,
        // far below the 30 s an unbounded wait would take.
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        let error = kill_and_reap(&mut child, "sleep 30".into(), Duration::from_millis(200));
        match error {
            RunError::TimedOut { left_running: None, .. } => {}
            other => panic!("a killed sleep was not reaped: {other:?}"),
        }
        let text = RunError::TimedOut {
            command: "nft list ruleset".into(),
            after: Duration::from_secs(10),
            left_running: Some(42),
        }
        .to_string();
        assert!(text.contains("PID 42 had not exited") && text.contains("left behind"), "{text}");
    }

    #[test]
    fn root_looks_tools_up_in_root_owned_directories_only() {
        if !running_as_root() {
            return;
        }
        let path = tool_path();
        let path = path.to_str().unwrap();
        // Every directory kept is in ROOT_PATH, and root-owned and not
        // group- or world-writable according to the file system.
        for dir in path.split(':') {
            assert!(ROOT_PATH.split(':').any(|d| d == dir), "{dir} in {path}");
            let meta = std::fs::metadata(dir).unwrap();
            assert_eq!((meta.uid(), meta.mode() & 0o022), (0, 0), "{dir}");
        }
        assert!(path.split(':').any(|d| std::path::Path::new(d).join("sh").exists()), "{path}");
    }

    #[test]
    fn a_missing_program_is_not_found() {
        let error = run_bounded("ctdiag-no-such-tool", &[], None, LISTING_DEADLINE).unwrap_err();
        assert!(matches!(error, RunError::NotFound { .. }), "{error:?}");
    }
}
