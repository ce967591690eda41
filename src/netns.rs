//! Network namespaces: open one by path, PID or `ip netns` name, and run
//! work inside it on a dedicated thread.
//!
//! Why a thread: `setns(2)` changes the namespace of the calling thread only.
//! Running the work on a short-lived scoped thread leaves the rest of the
//! process where it was, and sockets created there stay bound to the
//! namespace they were created in after the thread ends.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use crate::error::{Error, Result};

/// An opened network namespace.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
    spec: String,
}

/// Where `ip netns` keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Turns what the user typed into the namespace file to open: a PID means
/// `/proc/PID/ns/net`, a bare name means `/run/netns/NAME`, anything with a
/// `/` is a path.
pub fn resolve_spec(spec: &str) -> Result<PathBuf> {
    if spec.is_empty() {
        return Err(Error::Usage("--netns needs a path, a PID or a name".into()));
    }
    if spec.bytes().all(|b| b.is_ascii_digit()) {
        let pid: u32 =
            spec.parse().map_err(|_| Error::Usage(format!("--netns {spec}: PID out of range")))?;
        if pid == 0 {
            return Err(Error::Usage("--netns 0: PID 0 is not a process".into()));
        }
        return Ok(PathBuf::from(format!("/proc/{pid}/ns/net")));
    }
    if spec.contains('/') {
        return Ok(PathBuf::from(spec));
    }
    Ok(Path::new(NETNS_RUN_DIR).join(spec))
}

impl Netns {
    /// Opens the namespace named by `spec` (see [`resolve_spec`]). A path or
    /// PID that does not exist is a usage error.
    pub fn open(spec: &str) -> Result<Self> {
        let path = resolve_spec(spec)?;
        let file = File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Usage(format!(
                "--netns {spec}: {} does not exist (give a path such as /run/netns/NAME, a PID, or an `ip netns` name)",
                path.display()
            )),
            std::io::ErrorKind::PermissionDenied => Error::Privilege(format!(
                "--netns {spec}: cannot open {}: permission denied; entering another namespace needs root (CAP_SYS_ADMIN)",
                path.display()
            )),
            _ => Error::Netns { path: path.clone(), reason: e.to_string() },
        })?;
        Ok(Netns { file, path, spec: spec.to_string() })
    }

    /// The file the namespace was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the user typed, for messages and reports.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Runs `work` on a thread that has entered this namespace and returns
    /// its result.
    pub fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        std::thread::scope(|scope| {
            let handle = scope.spawn(|| {
                setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|errno| Error::Netns {
                    path: self.path.clone(),
                    reason: match errno {
                        nix::errno::Errno::EPERM => {
                            "setns refused: entering a namespace needs root (CAP_SYS_ADMIN)".into()
                        }
                        nix::errno::Errno::EINVAL => "not a network namespace".into(),
                        other => format!("setns failed: {other}"),
                    },
                })?;
                Ok(work())
            });
            handle
                .join()
                .map_err(|_| Error::Runtime("worker thread inside the namespace panicked".into()))?
        })
    }
}

/// Runs `work` inside `netns` when one is given, in the current namespace
/// otherwise.
pub fn run_in<T, F>(netns: Option<&Netns>, work: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    match netns {
        Some(ns) => ns.run(work),
        None => Ok(work()),
    }
}

/// The proc directory of the calling thread's network namespace. Why not
/// `/proc/net`: that follows `/proc/self`, the thread-group leader, which
/// has not entered the namespace a worker thread is in.
pub fn proc_net_dir() -> PathBuf {
    PathBuf::from("/proc/thread-self/net")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_forms() {
        assert_eq!(resolve_spec("1234").unwrap(), PathBuf::from("/proc/1234/ns/net"));
        assert_eq!(resolve_spec("lab-node").unwrap(), PathBuf::from("/run/netns/lab-node"));
        assert_eq!(resolve_spec("/var/run/netns/x").unwrap(), PathBuf::from("/var/run/netns/x"));
        assert!(resolve_spec("").is_err());
        assert!(resolve_spec("0").is_err());
        assert!(resolve_spec("99999999999999999999").is_err());
    }

    #[test]
    fn missing_namespace_is_usage_error() {
        let err = Netns::open("/nonexistent/ns").unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err:?}");
    }
}
