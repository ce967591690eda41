//! The flush on scripted sockets: a scan after the deletes that fails,
//! and an entry spared because a later read of the rules named its
//! target. Helpers from `tests`.

use std::time::Duration;

use netlink_packet_netfilter::conntrack::ConntrackMessage;
use netlink_packet_netfilter::NetfilterProtoFamily;

use super::clients::ClientIndex;
use super::report::Context;
use super::scan::{plan, scan};
use super::tests::{captured_dump, config, manual, report_of, targets_of, Replay};
use crate::conntrack::socket::{DumpEvent, DumpSource, DumpSummary};
use crate::conntrack::ConntrackError;
use crate::findings::FindingCode;

/// Replays the captured dump for the first scan, acknowledges every
/// delete, and fails every dump after the first (a scan after the flush
/// that cannot complete).
struct RescanFails {
    first: Replay,
    dumps: usize,
    deletes: usize,
}

impl DumpSource for RescanFails {
    fn dump_events(
        &mut self,
        request: &'static str,
        family: NetfilterProtoFamily,
        message: &ConntrackMessage,
        deadline: Duration,
        on_event: &mut dyn FnMut(DumpEvent<'_>) -> std::result::Result<(), ConntrackError>,
    ) -> std::result::Result<DumpSummary, ConntrackError> {
        self.dumps += 1;
        if self.dumps > 1 {
            return Err(ConntrackError::DumpInconsistent { request, attempts: 3 });
        }
        self.first.dump_events(request, family, message, deadline, on_event)
    }
}

impl super::flush::FlushSocket for RescanFails {
    fn delete(
        &mut self,
        _family: NetfilterProtoFamily,
        _request: ConntrackMessage,
    ) -> std::result::Result<crate::conntrack::socket::AckOutcome, ConntrackError> {
        self.deletes += 1;
        Ok(crate::conntrack::socket::AckOutcome::Acknowledged)
    }
}

#[test]
fn a_failed_scan_after_the_deletes_still_reports_what_was_deleted() {
    let selector = manual("198.19.0.10", &["198.18.2.2:53"]);
    let targets = targets_of(&selector);
    let plans = plan(&targets);
    let mut socket =
        RescanFails { first: Replay::new(vec![vec![captured_dump()]]), dumps: 0, deletes: 0 };
    let first = scan(&mut socket, &targets, &plans, false).unwrap();
    let flushes = super::flush::flush(&mut socket, &targets, &plans, &first);
    assert_eq!(socket.deletes, 2, "both stale entries were deleted");
    assert_eq!((flushes[0].deleted, flushes[0].remaining), (2, None));
    assert!(!flushes[0].verified());
    assert!(flushes[0].rescan_error.as_deref().unwrap().contains("scan after the deletes failed"));
    let report = report_of(&config(selector), &targets, &first);
    let config = config(manual("198.19.0.10", &["198.18.2.2:53"]));
    let clients = ClientIndex::default();
    let context = Context {
        config: &config,
        netns: None,
        source: String::new(),
        table_entries: None,
        clients: &clients,
        unreachable: &[],
        notes: Vec::new(),
    };
    let flushed = context.report(&targets, &first, Some(&flushes));
    let json = serde_json::to_value(&flushed).unwrap();
    assert_eq!(json["flush"]["deleted"], 2);
    assert!(json["flush"]["remaining"].is_null(), "{json}");
    let codes: Vec<FindingCode> = flushed.findings.iter().map(|f| f.code).collect();
    assert!(codes.contains(&FindingCode::FlushUnverified), "{codes:?}");
    assert!(!codes.contains(&FindingCode::StaleEntriesFlushed), "{codes:?}");
    assert_eq!(report.stale_count, 2);
}

#[test]
fn an_entry_whose_target_became_an_endpoint_is_spared() {
    let selector = manual("198.19.0.10", &["198.18.2.2:53"]);
    let targets = targets_of(&selector);
    let plans = plan(&targets);
    let mut socket =
        RescanFails { first: Replay::new(vec![vec![captured_dump()]]), dumps: 0, deletes: 0 };
    let first = scan(&mut socket, &targets, &plans, false).unwrap();
    // A later read of the rules names 198.18.3.2:53 (entry 40001's target).
    let mut later = targets.clone();
    later[0].endpoints.push("198.18.3.2:53".parse().unwrap());
    let flushes = super::flush::flush(&mut socket, &later, &plans, &first);
    assert_eq!(socket.deletes, 1, "only the never-translated entry");
    assert_eq!((flushes[0].deleted, flushes[0].spared), (1, 1));
}

/// More targets of a family than kernel-filtered dumps share one dump,
/// whose entries are looked up by ClusterIP:port. Two sources' copies of
/// one ClusterIP:port used to be two targets with one address there, and
/// the last copy silently took every entry; merged, the entry towards an
/// endpoint one source names is live.
#[test]
fn copies_of_one_cluster_ip_in_a_shared_dump_are_one_target() {
    use crate::service::{Protocol, ProxyMode, Service};
    let service = |cluster_ip: &str, endpoint: &str, mode: ProxyMode| Service {
        namespace: "kube-system".into(),
        name: format!("svc-{cluster_ip}"),
        port_name: "dns".into(),
        protocol: Protocol::Udp,
        cluster_ips: vec![cluster_ip.parse().unwrap()],
        port: 53,
        endpoints: vec![endpoint.parse().unwrap()],
        proxy_mode: mode,
    };
    let mut services: Vec<Service> = (11..16)
        .map(|n| service(&format!("198.19.0.{n}"), "198.18.2.2:53", ProxyMode::Iptables))
        .collect();
    services.push(service("198.19.0.10", "198.18.3.2:53", ProxyMode::Iptables));
    services.push(service("198.19.0.10", "198.18.2.2:53", ProxyMode::Nftables));
    let targets = super::sources::targets(&services);
    assert_eq!(targets.len(), 6, "one target per ClusterIP:port");
    let plans = plan(&targets);
    assert_eq!(plans.len(), 1, "one shared dump");
    let mut source = Replay::new(vec![vec![captured_dump()]]);
    let result = scan(&mut source, &targets, &plans, false).unwrap();
    let index = targets.iter().position(|t| t.address().to_string() == "198.19.0.10:53").unwrap();
    let tally = &result.tallies[index];
    // 40001 -> 198.18.3.2:53 (an endpoint in the iptables rules): live;
    // 40002, never translated: stale.
    assert_eq!((tally.live, tally.dead, tally.never), (1, 0, 1));
}
