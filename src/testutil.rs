//! Helpers shared by unit tests.

use std::process::Command;

/// `len` pseudo-random bytes from a xorshift32 generator: deterministic
/// garbage for "never panics on any input" tests.
pub fn pseudo_random_bytes(state: &mut u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 17;
            *state ^= *state << 5;
            *state as u8
        })
        .collect()
}

/// `count` pieces picked pseudo-randomly from `pieces` and joined: garbage
/// made of a parser's own tokens, for "never panics" tests of text parsers.
pub fn pseudo_random_text(state: &mut u32, pieces: &[&str], count: usize) -> String {
    pseudo_random_bytes(state, count)
        .into_iter()
        .map(|b| pieces[usize::from(b) % pieces.len()])
        .collect()
}

/// Whether a root-only test can run; panics in CI when it cannot.
pub fn lab_allowed(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs root to create a network namespace, and CI=true forbids skipping");
    }
    eprintln!("skipping {test}: not root (needs a network namespace of its own)");
    false
}

/// Runs a command; panics with its stderr when it fails. Returns stdout.
pub fn run(args: &[&str]) -> String {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|error| panic!("cannot run {args:?}: {error}"));
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A named network namespace, deleted on drop (also when a test panics).
pub struct NamespaceGuard {
    /// The `ip netns` name.
    pub name: String,
}

impl NamespaceGuard {
    /// Creates `ctdiag-ct-PID-TAG` with `lo` up and a conntrack rule.
    pub fn create(tag: &str) -> Self {
        let name = format!("ctdiag-ct-{}-{tag}", std::process::id());
        // A leftover of a crashed run with the same pid would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        let guard = NamespaceGuard { name };
        guard.exec(&["ip", "link", "set", "lo", "up"]);
        // Why a rule: conntrack hooks register in a namespace only once a
        // ruleset asks for conntrack.
        guard.exec(&[
            "iptables",
            "-A",
            "INPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-j",
            "ACCEPT",
        ]);
        guard
    }

    /// Runs a command inside the namespace; panics when it fails.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}
