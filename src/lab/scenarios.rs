//! The scenarios `lab scenario` applies to a running lab: [`apply_scenario`]
//! checks the lab, dispatches to one function per scenario, and records
//! what was done in the lab's state.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::kube_dns::{endpoint_list, load_rules, rules_endpoints};
use super::responder::{ErrorRcode, ResponderBehavior};
use super::servers::{remove_endpoint_pod, restart_server, stop_server};
use super::state::{
    refresh_liveness, running_endpoints, save_state, status, EndpointState, LabInfo, ScenarioInfo,
};
use super::sticky::{describe_clients, place_sticky_clients};
use super::topology::{endpoint_addr, set_sysctl};
use super::{require_root, system, validate_prefix, DnsServerKind, DNS_PORT};
use crate::error::{Error, Result};

/// A scenario to apply to an existing lab.
#[derive(Debug, Clone, PartialEq)]
pub enum Scenario {
    /// Endpoint `endpoint`'s pod is gone, its address blackholed, the rules
    /// still point at it.
    DeadEndpoint {
        /// 1-based endpoint; `None`: the last endpoint still running.
        endpoint: Option<u8>,
    },
    /// Endpoint `endpoint` answers `delay` late.
    SlowEndpoint {
        /// 1-based endpoint; `None`: the last endpoint still running.
        endpoint: Option<u8>,
        /// The delay.
        delay: Duration,
    },
    /// Endpoint `endpoint` (every endpoint when `None`) drops queries.
    Lossy {
        /// 1-based endpoint, or all.
        endpoint: Option<u8>,
        /// Share of all queries dropped.
        drop_rate: f64,
        /// Share of AAAA queries dropped.
        drop_aaaa_rate: f64,
    },
    /// Endpoint `endpoint` removed from the rules and its pod gone, its
    /// conntrack entries kept.
    StaleEndpoint {
        /// 1-based endpoint; `None`: the last endpoint still running.
        endpoint: Option<u8>,
    },
    /// kube-dns without endpoints and without kube-proxy's REJECT (as while
    /// kube-proxy restarts) while sticky clients retry: their packets are
    /// routed to the node's gateway untranslated, so their entries have the
    /// ClusterIP as reply source; then the endpoints come back and those
    /// entries keep the clients blackholed.
    NeverTranslated,
    /// The node drops a query to the ClusterIP sent on a socket whose
    /// earlier query is not answered yet: what the conntrack insert race
    /// does to glibc's parallel A/AAAA pair on kernels without clash
    /// resolution, imitated with an nftables rule before DNAT.
    RaceDrop,
    /// Endpoint `endpoint` (every endpoint when `None`) answers every query
    /// with `rcode` and no records.
    ErrorRcode {
        /// 1-based endpoint, or all.
        endpoint: Option<u8>,
        /// The rcode.
        rcode: ErrorRcode,
    },
    /// Endpoint `endpoint`'s pod is up, its DNS server stopped: its kernel
    /// answers ICMP port unreachable.
    NotListening {
        /// 1-based endpoint; `None`: the last endpoint still running.
        endpoint: Option<u8>,
    },
}

/// How late the endpoints answer in `race-drop`, ms.
pub(super) const RACE_ANSWER_DELAY_MS: u64 = 10;
/// The table `race-drop` adds to the node.
pub const RACE_TABLE: &str = "ctdiag-race";

/// The `race-drop` rules: before DNAT (priority -150, after conntrack's
/// -200), a UDP query to a kube-dns ClusterIP in a flow that already has an
/// unanswered packet (`ct state new`: no reply seen yet; `ct original
/// packets > 1`: not its first packet) is dropped. Why this imitates the
/// race: on a kernel without clash resolution, the second of two packets
/// sent at once on one socket loses the insert race and is dropped; a
/// query sent after the first was answered (`single-request`), from
/// another socket (`single-request-reopen`), or over TCP (`use-vc`) is not.
pub(super) fn race_rules(cluster_ips: &[IpAddr]) -> String {
    let mut rules = format!(
        "table inet {RACE_TABLE} {{\n  chain prerouting {{\n    type filter hook prerouting priority -150; policy accept;\n"
    );
    for ip in cluster_ips {
        let family = if ip.is_ipv6() { "ip6" } else { "ip" };
        rules.push_str(&format!(
            "    {family} daddr {ip} udp dport {DNS_PORT} ct state new ct original packets > 1 counter drop\n"
        ));
    }
    rules.push_str("  }\n}\n");
    rules
}

/// Applies a scenario to the lab `prefix` and returns the updated lab.
pub fn apply_scenario(prefix: &str, scenario: &Scenario) -> Result<LabInfo> {
    validate_prefix(prefix)?;
    require_root()?;
    let mut info = status(prefix)?;
    // Why the last endpoint by default: the first keeps answering, so the
    // lab still resolves and the failure is partial, as on a real cluster.
    let last_running = running_endpoints(&info).into_iter().max().unwrap_or(1);
    let pick = |endpoint: &Option<u8>| endpoint.unwrap_or(last_running);
    let applied = match scenario {
        Scenario::DeadEndpoint { endpoint } => dead_endpoint(&mut info, pick(endpoint))?,
        Scenario::SlowEndpoint { endpoint, delay } => {
            slow_endpoint(&mut info, pick(endpoint), *delay)?
        }
        Scenario::Lossy { endpoint, drop_rate, drop_aaaa_rate } => {
            lossy(&mut info, *endpoint, *drop_rate, *drop_aaaa_rate)?
        }
        Scenario::StaleEndpoint { endpoint } => stale_endpoint(&mut info, pick(endpoint))?,
        Scenario::NeverTranslated => never_translated(&mut info)?,
        Scenario::RaceDrop => race_drop(&mut info)?,
        Scenario::ErrorRcode { endpoint, rcode } => error_rcode(&mut info, *endpoint, *rcode)?,
        Scenario::NotListening { endpoint } => not_listening(&mut info, pick(endpoint))?,
    };
    info.scenarios.push(applied);
    refresh_liveness(&mut info);
    save_state(&info)?;
    Ok(info)
}

/// Endpoint `n` exists and was not removed by an earlier scenario.
fn check_endpoint(info: &LabInfo, n: u8) -> Result<()> {
    match info.servers.iter().find(|s| s.endpoint == n) {
        None => Err(Error::Usage(format!(
            "--endpoint {n}: the lab has endpoints 1 to {}",
            info.servers.len()
        ))),
        Some(s) if s.state == EndpointState::Removed => Err(Error::Usage(format!(
            "--endpoint {n}: that endpoint was already removed by an earlier scenario; `ctdiag lab up` rebuilds the lab"
        ))),
        Some(_) => Ok(()),
    }
}

/// The lab runs the embedded DNS server, which scenario `name` needs.
fn need_embedded(info: &LabInfo, name: &str) -> Result<()> {
    if info.dns_server != DnsServerKind::Embedded {
        return Err(Error::Usage(format!(
            "{name} needs the embedded DNS server (`ctdiag lab up --dns embedded`); dnsmasq cannot delay or drop on purpose"
        )));
    }
    Ok(())
}

/// `dead-endpoint`: endpoint `endpoint`'s pod is gone and its address
/// blackholed, the rules still point at it.
fn dead_endpoint(info: &mut LabInfo, endpoint: u8) -> Result<ScenarioInfo> {
    check_endpoint(info, endpoint)?;
    remove_endpoint_pod(info, endpoint)?;
    let n_rules = rules_endpoints(info).len();
    Ok(ScenarioInfo {
        name: "dead-endpoint".into(),
        endpoint: Some(endpoint),
        summary: format!(
            "endpoint {endpoint} ({}) is gone and blackholed on the node but still in the rules: about 1/{n_rules} of the lookups through {} get no answer",
            endpoint_addr(endpoint, info.cluster_ip),
            info.cluster_ip
        ),
    })
}

/// `slow-endpoint`: endpoint `endpoint` answers `delay` late.
fn slow_endpoint(info: &mut LabInfo, endpoint: u8, delay: Duration) -> Result<ScenarioInfo> {
    need_embedded(info, "slow-endpoint")?;
    check_endpoint(info, endpoint)?;
    restart_server(info, endpoint, |s| s.delay_ms = delay.as_millis() as u64)?;
    Ok(ScenarioInfo {
        name: "slow-endpoint".into(),
        endpoint: Some(endpoint),
        summary: format!(
            "endpoint {endpoint} ({}) answers {} ms late",
            endpoint_addr(endpoint, info.cluster_ip),
            delay.as_millis()
        ),
    })
}

/// `lossy`: endpoint `endpoint` (every running endpoint when `None`) drops
/// the given shares of queries without answering.
fn lossy(
    info: &mut LabInfo,
    endpoint: Option<u8>,
    drop_rate: f64,
    drop_aaaa_rate: f64,
) -> Result<ScenarioInfo> {
    need_embedded(info, "lossy")?;
    ResponderBehavior { drop_rate, drop_aaaa_rate, ..ResponderBehavior::healthy() }.validate()?;
    let targets: Vec<u8> = match endpoint {
        Some(n) => {
            check_endpoint(info, n)?;
            vec![n]
        }
        None => running_endpoints(info),
    };
    for n in targets {
        restart_server(info, n, |s| {
            s.drop_rate = drop_rate;
            s.drop_aaaa_rate = drop_aaaa_rate;
        })?;
    }
    let which = endpoint.map_or("every endpoint".to_string(), |n| format!("endpoint {n}"));
    Ok(ScenarioInfo {
        name: "lossy".into(),
        endpoint,
        summary: format!(
            "{which} drops {:.0}% of AAAA queries and {:.0}% of all queries without answering",
            drop_aaaa_rate * 100.0,
            drop_rate * 100.0
        ),
    })
}

/// `stale-endpoint`: endpoint `endpoint` leaves the rules and its pod goes,
/// its conntrack entries stay; sticky clients placed on it beforehand stay
/// blackholed.
fn stale_endpoint(info: &mut LabInfo, endpoint: u8) -> Result<ScenarioInfo> {
    check_endpoint(info, endpoint)?;
    let remaining: Vec<u8> = rules_endpoints(info).into_iter().filter(|n| *n != endpoint).collect();
    if remaining.is_empty() {
        return Err(Error::Usage(
            "stale-endpoint needs at least one other endpoint left in the rules (`lab up --endpoints 2`)".into(),
        ));
    }
    // Clients whose entries go to the endpoint exist before it
    // leaves, as resolvers that were running all along.
    let target = SocketAddr::new(endpoint_addr(endpoint, info.cluster_ip), DNS_PORT);
    let placed = place_sticky_clients(
        info,
        "stale-endpoint",
        &|reply_src| reply_src == target,
        STICKY_ON_TARGET,
        STICKY_CONTROL,
    )?;
    // Rules first, then the pod: as when kube-proxy syncs the new
    // endpoint list but never deletes the UDP conntrack entries.
    load_rules(&info.namespaces.node, &info.cluster_ips, &remaining, info.rules_mode, true)?;
    info.endpoints = endpoint_list(&info.cluster_ips, &remaining);
    remove_endpoint_pod(info, endpoint)?;
    Ok(ScenarioInfo {
        name: "stale-endpoint".into(),
        endpoint: Some(endpoint),
        summary: format!(
            "endpoint {endpoint} ({}) is out of the rules and gone, its conntrack entries are kept: sticky clients {} (fixed source ports) stay blackholed until their entries are deleted; {} answered through the other endpoints",
            endpoint_addr(endpoint, info.cluster_ip),
            describe_clients(&placed.on_target),
            describe_clients(&placed.control),
        ),
    })
}

/// `never-translated`: kube-dns loses its endpoints and its REJECT while
/// sticky clients retry, then the endpoints come back; the clients'
/// untranslated entries keep them going to the node's gateway.
fn never_translated(info: &mut LabInfo) -> Result<ScenarioInfo> {
    let endpoints = rules_endpoints(info);
    if endpoints.is_empty() {
        return Err(Error::Usage(
            "never-translated brings the endpoints back at the end, but the rules have none; `ctdiag lab up` rebuilds the lab".into(),
        ));
    }
    let node = info.namespaces.node.clone();
    // kube-proxy restarting: the Service's DNAT rules are gone and
    // so is its REJECT, so a packet to the ClusterIP is routed to
    // the default gateway (the router drops it) and conntrack
    // confirms an entry that was never translated.
    load_rules(&node, &info.cluster_ips, &[], info.rules_mode, false)?;
    let cluster = SocketAddr::new(info.cluster_ip, DNS_PORT);
    let placed = place_sticky_clients(
        info,
        "never-translated",
        &|reply_src| reply_src == cluster,
        NEVER_TRANSLATED_CLIENTS,
        0,
    );
    // The endpoints come back whatever happened above, so that a
    // failed scenario does not leave kube-dns without endpoints.
    let restored = load_rules(&node, &info.cluster_ips, &endpoints, info.rules_mode, true);
    let placed = placed?;
    restored?;
    Ok(ScenarioInfo {
        name: "never-translated".into(),
        endpoint: None,
        summary: format!(
            "kube-dns had no endpoints and no REJECT rule (kube-proxy restarting) while sticky clients {} retried: their entries were never translated (reply source {cluster}) and keep their queries going to the node's gateway now that the endpoints are back, until the entries are deleted",
            describe_clients(&placed.on_target)
        ),
    })
}

/// `race-drop`: the node drops the second query of a pair in flight on one
/// socket ([`race_rules`]); the endpoints answer a little late so that
/// pairs are in flight at once.
fn race_drop(info: &mut LabInfo) -> Result<ScenarioInfo> {
    system::require_tool("nft")?;
    let node = info.namespaces.node.clone();
    // Why: `ct original packets` counts only with accounting on
    // (per namespace, writable in a child one).
    set_sysctl(&node, "netfilter/nf_conntrack_acct", "1")?;
    system::run(
        "ip",
        &["netns", "exec", &node, "nft", "-f", "-"],
        Some(&race_rules(&info.cluster_ips)),
    )?;
    // Why a delay: the race needs both queries in flight at once.
    // An answer within microseconds can beat the pair's second
    // query to the node (then it is a reply-seen flow and passes),
    // which made the share lost swing between a fifth and three
    // quarters; 10 ms, like a CoreDNS answering from cache, keeps
    // the first one unanswered while the second arrives.
    let delayed = info.dns_server == DnsServerKind::Embedded;
    if delayed {
        for n in running_endpoints(info) {
            restart_server(info, n, |s| s.delay_ms = RACE_ANSWER_DELAY_MS)?;
        }
    }
    let ips: Vec<String> = info.cluster_ips.iter().map(IpAddr::to_string).collect();
    Ok(ScenarioInfo {
        name: "race-drop".into(),
        endpoint: None,
        summary: format!(
            "the node drops a query to {} sent on a socket whose earlier query is unanswered (table inet {RACE_TABLE} in {node}){}: glibc's parallel A/AAAA pair loses one as in the conntrack insert race on kernels without clash resolution (where insert_failed would rise; here conntrack's counters do not move, the rule's counter does)",
            ips.join(", "),
            if delayed {
                format!(", and the endpoints answer {RACE_ANSWER_DELAY_MS} ms late so that both queries of a pair are in flight at once")
            } else {
                String::new()
            }
        ),
    })
}

/// `error-rcode`: endpoint `endpoint` (every running endpoint when `None`)
/// answers every query with `rcode` and no records.
fn error_rcode(
    info: &mut LabInfo,
    endpoint: Option<u8>,
    rcode: ErrorRcode,
) -> Result<ScenarioInfo> {
    need_embedded(info, "error-rcode")?;
    let targets: Vec<u8> = match endpoint {
        Some(n) => {
            check_endpoint(info, n)?;
            vec![n]
        }
        None => running_endpoints(info),
    };
    for n in targets {
        restart_server(info, n, |s| s.rcode = Some(rcode.as_str().to_string()))?;
    }
    let which = endpoint.map_or("every endpoint".to_string(), |n| {
        format!("endpoint {n} ({})", endpoint_addr(n, info.cluster_ip))
    });
    Ok(ScenarioInfo {
        name: "error-rcode".into(),
        endpoint,
        summary: format!(
            "{which} answers every query with {} and no records (as a CoreDNS whose upstream fails)",
            rcode.as_str()
        ),
    })
}

/// `not-listening`: endpoint `endpoint`'s DNS server stops, its pod
/// (namespace, address, route) stays: its kernel answers each query with
/// ICMP port unreachable. Why the ICMP rate limit is lifted in that
/// namespace: the kernel sends at most about one unreachable per second
/// per peer by default, and the scenario is to show what the answer is,
/// not how the limit thins it.
fn not_listening(info: &mut LabInfo, endpoint: u8) -> Result<ScenarioInfo> {
    check_endpoint(info, endpoint)?;
    stop_server(info, endpoint)?;
    let namespace = info
        .servers
        .iter()
        .find(|s| s.endpoint == endpoint)
        .map(|s| s.namespace.clone())
        .unwrap_or_default();
    set_sysctl(&namespace, "ipv4/icmp_ratelimit", "0")?;
    // IPv6's limit, where the namespace has IPv6 (ignored otherwise).
    let _ = set_sysctl(&namespace, "ipv6/icmp/ratelimit", "0");
    Ok(ScenarioInfo {
        name: "not-listening".into(),
        endpoint: Some(endpoint),
        summary: format!(
            "endpoint {endpoint} ({}) is up but nothing listens on port {DNS_PORT}: its kernel answers every query with ICMP port unreachable (a pod gone, as in dead-endpoint, answers nothing)",
            endpoint_addr(endpoint, info.cluster_ip)
        ),
    })
}

/// Sticky clients a scenario wants on the endpoint (or entry kind) it acts
/// on.
pub(super) const STICKY_ON_TARGET: usize = 2;
/// Sticky clients it wants elsewhere, to show the difference.
pub(super) const STICKY_CONTROL: usize = 2;
/// Sticky clients the never-translated scenario starts.
pub(super) const NEVER_TRANSLATED_CLIENTS: usize = 3;
