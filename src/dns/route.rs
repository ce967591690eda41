//! Why a target had no route: the errno `connect(2)`/`send(2)` returned and
//! what the namespace's routing table answers for it (`ip route get`), as
//! the evidence of `no-route-to-target`.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::netns::{run_in, Netns};
use crate::process::run_bounded;

/// How long `ip route get` may take.
const IP_DEADLINE: Duration = Duration::from_secs(3);

/// The evidence that a namespace has no route to a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoRoute {
    /// The errno name the socket call returned, e.g. `ENETUNREACH`.
    pub errno: String,
    /// What `ip route get TARGET` answered in the probing namespace (its
    /// first line, or its error), or why it could not run.
    pub route_get: String,
}

/// The kernel's name of a routing errno.
pub fn errno_name(errno: i32) -> String {
    match errno {
        libc::ENETUNREACH => "ENETUNREACH (Network is unreachable)".into(),
        libc::EHOSTUNREACH => "EHOSTUNREACH (No route to host)".into(),
        other => format!("errno {other} ({})", std::io::Error::from_raw_os_error(other)),
    }
}

/// The no-route evidence for `target`, asking the routing table of
/// `netns` (the current namespace when `None`).
pub fn no_route_evidence(errno: i32, target: IpAddr, netns: Option<&Netns>) -> NoRoute {
    let text = target.to_string();
    let answer = run_in(netns, || run_bounded("ip", &["route", "get", &text], None, IP_DEADLINE));
    let route_get = match answer {
        Ok(Ok(ran)) => {
            let out = if ran.status.success() { ran.stdout_text() } else { ran.stderr_text() };
            let line = out.lines().next().unwrap_or("").trim().to_string();
            format!("`ip route get {text}`: {line}")
        }
        Ok(Err(e)) => format!("`ip route get {text}` could not run: {e}"),
        Err(e) => format!("`ip route get {text}` could not run in the probe namespace: {e}"),
    };
    NoRoute { errno: errno_name(errno), route_get }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_errnos_have_their_kernel_names() {
        assert!(errno_name(libc::ENETUNREACH).starts_with("ENETUNREACH"));
        assert!(errno_name(libc::EHOSTUNREACH).starts_with("EHOSTUNREACH"));
        assert!(errno_name(libc::EPERM).starts_with("errno 1"));
    }
}
