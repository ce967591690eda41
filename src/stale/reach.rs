//! Endpoints that are still in the rules but cannot be reached from the
//! node: no usable route (`ip route get` answers unreachable, blackhole,
//! prohibit or no route) or a neighbour entry in state FAILED or
//! INCOMPLETE. Their conntrack entries are live by the rules and dead in
//! fact.
//!
//! Read with iproute2's JSON output (`ip -j route get ADDR`, `ip -j neigh
//! show`) through [`crate::process::run_bounded`], inside the scanned
//! namespace: a dependency-free way to ask rtnetlink that prints what a
//! user would type to check.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::netns::{run_in, Netns};
use crate::process::{run_bounded, RunError};

/// How long one `ip` call may take.
const IP_DEADLINE: Duration = Duration::from_secs(5);
/// Most endpoints checked per scan (one `ip route get` each).
pub const MAX_CHECKED: usize = 256;

/// An endpoint in the rules that the node cannot reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreachable {
    /// The endpoint address.
    pub endpoint: IpAddr,
    /// Why, with the command that shows it.
    pub why: String,
}

/// What a route lookup said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A usable route: the next hop to check in the neighbour table (the
    /// gateway, or the address itself on a link).
    Via {
        /// The neighbour packets go to.
        next_hop: IpAddr,
        /// The device.
        dev: String,
    },
    /// The address is the node's own.
    Local,
    /// No usable route, and what kind (from the kernel's answer).
    Unusable(String),
}

/// Reads `ip -j route get` output (or its error) for `address`.
pub fn parse_route_get(address: IpAddr, success: bool, stdout: &str, stderr: &str) -> Route {
    if !success {
        // The errno tells the route type (fib_props in the kernel).
        let kind = if stderr.contains("Invalid argument") {
            "a blackhole route"
        } else if stderr.contains("No route to host") {
            "an unreachable route"
        } else if stderr.contains("Permission denied") {
            "a prohibit route"
        } else if stderr.contains("Network is unreachable") {
            "no route"
        } else {
            "no usable route"
        };
        return Route::Unusable(format!("{kind} (`ip route get {address}`: {})", stderr.trim()));
    }
    let parsed: serde_json::Value = match serde_json::from_str(stdout) {
        Ok(value) => value,
        Err(_) => return Route::Unusable(format!("`ip -j route get {address}` printed no JSON")),
    };
    let Some(route) = parsed.get(0) else {
        return Route::Unusable(format!("`ip -j route get {address}` returned no route"));
    };
    let field = |name: &str| route.get(name).and_then(|v| v.as_str()).unwrap_or("");
    match field("type") {
        "local" => return Route::Local,
        "" | "unicast" => {}
        other => {
            return Route::Unusable(format!("a route of type {other} (`ip route get {address}`)"))
        }
    }
    let next_hop = field("gateway").parse().unwrap_or(address);
    Route::Via { next_hop, dev: field("dev").to_string() }
}

/// Neighbour states from `ip -j neigh show`: address -> states (e.g.
/// `["FAILED"]`).
pub fn parse_neighbours(stdout: &str) -> HashMap<IpAddr, Vec<String>> {
    let Ok(serde_json::Value::Array(list)) = serde_json::from_str(stdout) else {
        return HashMap::new();
    };
    list.iter()
        .filter_map(|n| {
            let dst = n.get("dst")?.as_str()?.parse().ok()?;
            let states = n
                .get("state")?
                .as_array()?
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            Some((dst, states))
        })
        .collect()
}

/// Checks each endpoint address (at most [`MAX_CHECKED`]) from inside
/// `netns`. Returns the unreachable ones and notes on what could not be
/// checked.
pub fn check(endpoints: &[IpAddr], netns: Option<&Netns>) -> (Vec<Unreachable>, Vec<String>) {
    let mut notes = Vec::new();
    let checked = &endpoints[..endpoints.len().min(MAX_CHECKED)];
    if endpoints.len() > MAX_CHECKED {
        notes.push(format!(
            "{} endpoints; only the first {MAX_CHECKED} were checked for a route",
            endpoints.len()
        ));
    }
    if checked.is_empty() {
        return (Vec::new(), notes);
    }
    let result = run_in(netns, || {
        let neighbours = match run_bounded("ip", &["-j", "neigh", "show"], None, IP_DEADLINE) {
            Ok(ran) if ran.status.success() => parse_neighbours(&ran.stdout_text()),
            Ok(ran) => return Err(format!("`ip -j neigh show` failed: {}", ran.stderr_text())),
            Err(RunError::NotFound { .. }) => {
                return Err(
                    "`ip` (iproute2) is not installed: endpoints were not checked for a route"
                        .into(),
                )
            }
            Err(e) => return Err(e.to_string()),
        };
        let mut unreachable = Vec::new();
        for address in checked {
            let text = address.to_string();
            let ran = match run_bounded("ip", &["-j", "route", "get", &text], None, IP_DEADLINE) {
                Ok(ran) => ran,
                Err(e) => return Err(e.to_string()),
            };
            let route = parse_route_get(
                *address,
                ran.status.success(),
                &ran.stdout_text(),
                &ran.stderr_text(),
            );
            match route {
                Route::Local => {}
                Route::Unusable(why) => unreachable.push(Unreachable { endpoint: *address, why }),
                Route::Via { next_hop, dev } => {
                    let states = neighbours.get(&next_hop).cloned().unwrap_or_default();
                    if let Some(bad) = states.iter().find(|s| *s == "FAILED" || *s == "INCOMPLETE")
                    {
                        let hop = if next_hop == *address {
                            String::new()
                        } else {
                            format!(" (its gateway {next_hop})")
                        };
                        unreachable.push(Unreachable {
                            endpoint: *address,
                            why: format!(
                                "the neighbour entry of {next_hop}{hop} on {dev} is {bad} (`ip neigh show {next_hop}`)"
                            ),
                        });
                    }
                }
            }
        }
        Ok(unreachable)
    });
    let why = match result {
        Ok(Ok(unreachable)) => return (unreachable, notes),
        Ok(Err(why)) => why,
        Err(error) => error.to_string(),
    };
    notes.push(format!("endpoints not checked for a route: {why}"));
    (Vec::new(), notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn route_answers() {
        // Real `ip -j route get` output on a lab node (iproute2 6.x).
        let direct = r#"[{"dst":"198.18.2.2","dev":"d1","prefsrc":"198.18.2.1","flags":[],"uid":0,"cache":[]}]"#;
        assert_eq!(
            parse_route_get(ip("198.18.2.2"), true, direct, ""),
            Route::Via { next_hop: ip("198.18.2.2"), dev: "d1".into() }
        );
        let via = r#"[{"dst":"198.18.9.2","gateway":"198.18.2.2","dev":"d1","flags":[]}]"#;
        assert_eq!(
            parse_route_get(ip("198.18.9.2"), true, via, ""),
            Route::Via { next_hop: ip("198.18.2.2"), dev: "d1".into() }
        );
        let local = r#"[{"type":"local","dst":"198.18.2.1","dev":"lo"}]"#;
        assert_eq!(parse_route_get(ip("198.18.2.1"), true, local, ""), Route::Local);
        // What the kernel answers for each route type (same kernel).
        for (stderr, kind) in [
            ("RTNETLINK answers: Invalid argument", "blackhole"),
            ("RTNETLINK answers: No route to host", "unreachable route"),
            ("RTNETLINK answers: Permission denied", "prohibit"),
            ("RTNETLINK answers: Network is unreachable", "no route"),
        ] {
            let Route::Unusable(why) = parse_route_get(ip("198.18.3.2"), false, "", stderr) else {
                panic!("{stderr} is not unusable")
            };
            assert!(why.contains(kind) && why.contains("ip route get 198.18.3.2"), "{why}");
        }
        assert!(matches!(
            parse_route_get(ip("198.18.3.2"), true, "not json", ""),
            Route::Unusable(_)
        ));
        assert!(matches!(parse_route_get(ip("198.18.3.2"), true, "[]", ""), Route::Unusable(_)));
    }

    #[test]
    fn neighbour_states() {
        let text = r#"[{"dst":"198.18.2.9","dev":"d1","state":["FAILED"]},{"dst":"198.18.2.2","dev":"d1","lladdr":"3a:fa:a9:88:5a:4a","state":["REACHABLE"]},{"dst":"fe80::1","dev":"d1","router":null,"state":["STALE"]}]"#;
        let table = parse_neighbours(text);
        assert_eq!(table[&ip("198.18.2.9")], ["FAILED"]);
        assert_eq!(table[&ip("198.18.2.2")], ["REACHABLE"]);
        assert_eq!(table.len(), 3);
        assert!(parse_neighbours("garbage").is_empty());
    }
}
