//! Helpers shared by unit tests.

use std::time::Duration;

use crate::process::run_bounded;

/// The kernel-side helpers the integration tests use too (one copy, in
/// `tests/common/kernel.rs`): `conntrack -S` parsing, raw packets.
#[path = "../tests/common/kernel.rs"]
pub mod kernel;

/// CI's strict mode and the skip log, one copy with the integration tests
/// (`tests/common/ci.rs`).
#[path = "../tests/common/ci.rs"]
pub mod ci;

/// The longest a command run by a unit test may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// `len` pseudo-random bytes from a xorshift32 generator: deterministic
/// garbage for the netlink socket's "never panics" test
/// (conntrack/socket.rs); the text parsers and DNS matching have proptest
/// properties in tests/properties.rs instead.
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

/// Whether a root-only test can run; panics in CI's strict mode when it
/// cannot, else records the skip.
pub fn lab_allowed(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if ci::is_ci() {
        panic!(
            "{test}: needs root to create a network namespace, and CI={:?} forbids skipping",
            ci::ci_value()
        );
    }
    ci::record_skip("not root: needs a network namespace of its own (run as root)");
    false
}

/// Runs a command for at most [`COMMAND_TIMEOUT`]; panics with its stderr
/// when it fails or hangs. Returns stdout.
pub fn run(args: &[&str]) -> String {
    let ran = run_bounded(args[0], &args[1..], None, COMMAND_TIMEOUT)
        .unwrap_or_else(|error| panic!("cannot run {args:?}: {error}"));
    assert!(ran.status.success(), "{args:?} failed: {}", ran.stderr_text());
    ran.stdout_text()
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
        let _ = run_bounded("ip", &["netns", "del", &name], None, COMMAND_TIMEOUT);
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
        // Bounded, and never a panic while a test may be panicking.
        if let Err(e) = run_bounded("ip", &["netns", "del", &self.name], None, COMMAND_TIMEOUT) {
            eprintln!("cannot remove namespace {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::kernel::*;
    use std::net::Ipv4Addr;

    #[test]
    fn ci_is_strict_unless_unset_empty_false_or_zero() {
        use super::ci::strict;
        for on in ["true", "TRUE", "1", "yes", "woodpecker", " true "] {
            assert!(strict(Some(on)), "CI={on:?}");
        }
        for off in ["false", "FALSE", "False", "0", "", "  ", " false"] {
            assert!(!strict(Some(off)), "CI={off:?}");
        }
        assert!(!strict(None), "CI unset");
    }

    #[test]
    fn conntrack_s_lines_parse_and_bad_ones_are_named() {
        let text = "cpu=0   \tfound=0 invalid=12 clash_resolve=3 \ncpu=1 found=1 invalid=28 clash_resolve=0\n";
        let cpus = parse_conntrack_s(text).unwrap();
        assert_eq!(cpus[&1]["invalid"], 28);
        assert_eq!(total(&cpus, "clash_resolve"), 3);
        assert_eq!(total(&cpus, "chaintoolong"), 0);
        assert!(parse_conntrack_s("cpu=0 found=x").unwrap_err().contains("found=x"));
        assert!(parse_conntrack_s("").is_err());
    }

    #[test]
    fn syn_fin_checksum_verifies() {
        let (s, d) = (Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(198, 19, 0, 10));
        let segment = tcp_syn_fin(s, d, 40_000, 53);
        // The one's-complement sum over pseudo-header and segment is 0xffff.
        let mut pseudo = s.octets().to_vec();
        pseudo.extend_from_slice(&d.octets());
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        let mut sum: u32 = 0;
        for pair in pseudo.chunks(2).chain(segment.chunks(2)) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
        assert_eq!(segment[13], 0x03);
        assert_eq!(dns_query(0x1234, "a.bc.", 28)[..2], [0x12, 0x34]);
        assert_eq!(dns_query(1, "a.bc", 28).len(), 12 + 1 + 1 + 1 + 2 + 1 + 4);
    }
}
