//! The scan's classification, restarts, filter fallback and report shape,
//! on the real ctnetlink captures of src/conntrack/captures.rs.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use netlink_packet_netfilter::conntrack::ConntrackMessage;
use netlink_packet_netfilter::NetfilterProtoFamily;

use super::classify::Target;
use super::clients::ClientIndex;
use super::flush::delete_all;
use super::reach::Unreachable;
use super::report::Context;
use super::scan::{plan, scan, scan_with, Keep, Scan, Tally, TargetCount};
use super::*;
use crate::conntrack::captures::*;
use crate::conntrack::entry::{unfiltered_request, Entry, AF_INET6};
use crate::conntrack::socket::{CtnetlinkSocket, DumpEvent, DumpSource};
use crate::conntrack::socket::{DumpSummary, Expect, ReplyReader};
use crate::conntrack::ConntrackError;
use crate::findings::{FindingCode, Severity};
use crate::service::select::{ManualService, DEFAULT_MANUAL_PORT};
use crate::service::Protocol;

/// One scripted dump: its attempts, each a list of datagrams.
type Script = Vec<Vec<Vec<u8>>>;

/// A dump source that replays captured datagrams through the real
/// [`ReplyReader`], announcing a restart before every attempt after the
/// first, and records each request. With `refuse_filter`, a filtered
/// request is answered with EINVAL (as a kernel that rejects it would).
pub(super) struct Replay {
    scripts: VecDeque<Script>,
    sequence: u32,
    port: u32,
    requests: Vec<ConntrackMessage>,
    refuse_filter: bool,
}

impl Replay {
    pub(super) fn new(scripts: Vec<Script>) -> Self {
        Replay {
            scripts: scripts.into(),
            sequence: ENTRIES_FILTERED_SEQUENCE,
            port: ENTRIES_FILTERED_PORT,
            requests: Vec::new(),
            refuse_filter: false,
        }
    }
}

impl DumpSource for Replay {
    fn dump_events(
        &mut self,
        request: &'static str,
        _family: NetfilterProtoFamily,
        message: &ConntrackMessage,
        _deadline: Duration,
        on_event: &mut dyn FnMut(DumpEvent<'_>) -> std::result::Result<(), ConntrackError>,
    ) -> std::result::Result<DumpSummary, ConntrackError> {
        self.requests.push(message.clone());
        if self.refuse_filter && matches!(message, ConntrackMessage::Other { .. }) {
            return Err(crate::conntrack::socket::kernel_error(request, -libc::EINVAL));
        }
        let script = self.scripts.pop_front().expect("a script per dump");
        let attempts = script.len() as u32;
        let mut messages = 0;
        for (attempt, datagrams) in script.iter().enumerate() {
            if attempt > 0 {
                on_event(DumpEvent::Restart {
                    attempt: attempt as u32 + 1,
                    reason: crate::conntrack::socket::RestartReason::Interrupted,
                })?;
            }
            messages = 0;
            let mut reader = ReplyReader::new(request, self.sequence, self.port, Expect::Done);
            for datagram in datagrams {
                reader.feed(datagram, &mut |raw| {
                    messages += 1;
                    on_event(DumpEvent::Message(raw))
                })?;
            }
        }
        Ok(DumpSummary { attempts, messages })
    }
}

/// The captured filtered dump: the never-translated entry (40002, zone 5)
/// and the one DNATed to 198.18.3.2:53 (40001).
pub(super) fn captured_dump() -> Vec<Vec<u8>> {
    vec![ENTRIES_FILTERED_DATAGRAM.to_vec(), ENTRIES_FILTERED_DONE.to_vec()]
}

pub(super) fn manual(cluster_ip: &str, endpoints: &[&str]) -> Selector {
    let cluster: std::net::SocketAddr = cluster_ip.parse().unwrap_or_else(|_| {
        std::net::SocketAddr::new(cluster_ip.parse().unwrap(), DEFAULT_MANUAL_PORT)
    });
    let endpoints = endpoints.iter().map(|e| e.parse().unwrap()).collect();
    Selector::Manual(ManualService::new(cluster.ip(), cluster.port(), endpoints, None).unwrap())
}

pub(super) fn targets_of(selector: &Selector) -> Vec<Target> {
    let Selector::Manual(manual) = selector else { panic!("manual only") };
    super::sources::targets(&manual.services(&[Protocol::Udp]))
}

pub(super) fn config(selector: Selector) -> StaleConfig {
    StaleConfig {
        selector,
        netns: Some("lab-node".into()),
        flush: false,
        all_entries: false,
        command: "ctdiag stale --netns lab-node --cluster-ip 198.19.0.10 --endpoints 198.18.2.2"
            .into(),
        advice: crate::commands::args::SELECT_ADVICE,
        from: None,
    }
}

pub(super) fn report_of(config: &StaleConfig, targets: &[Target], scan: &Scan) -> StaleReport {
    let clients = ClientIndex::default();
    let context = Context {
        config,
        netns: config.netns.clone(),
        source: "--cluster-ip/--endpoints".into(),
        table_entries: Some(4),
        clients: &clients,
        unreachable: &[],
        notes: Vec::new(),
    };
    context.report(targets, scan, None)
}

#[test]
fn classification() {
    let cluster: SocketAddr = "198.19.0.10:53".parse().unwrap();
    let live: SocketAddr = "198.18.2.2:53".parse().unwrap();
    let mut scan_source = Replay::new(vec![vec![captured_dump()]]);
    let selector = manual("198.19.0.10", &["198.18.3.2:53"]);
    let targets = targets_of(&selector);
    let result = scan(&mut scan_source, &targets, &plan(&targets), true).unwrap();
    let entries: Vec<Entry> = result.tallies[0]
        .stale
        .iter()
        .chain(&result.tallies[0].listed_live)
        .map(|(e, _)| *e)
        .collect();
    let untranslated = entries.iter().find(|e| e.orig.src_port == 40002).unwrap();
    let dnated = entries.iter().find(|e| e.orig.src_port == 40001).unwrap();
    assert_eq!(classify(dnated, cluster, &["198.18.3.2:53".parse().unwrap()]), Verdict::Live);
    assert_eq!(classify(dnated, cluster, &[live]), Verdict::DeadEndpoint);
    // Same address, another port: not that endpoint.
    assert_eq!(
        classify(dnated, cluster, &["198.18.3.2:5353".parse().unwrap()]),
        Verdict::DeadEndpoint
    );
    assert_eq!(classify(dnated, cluster, &[]), Verdict::DeadEndpoint);
    assert_eq!(classify(untranslated, cluster, &[live]), Verdict::NeverTranslated);
    // A Service without endpoints: never-translated entries are stale too
    // (kube-proxy's reconciler deletes them since kubernetes#139629).
    assert_eq!(classify(untranslated, cluster, &[]), Verdict::NeverTranslated);
    assert!(!Verdict::Live.is_stale() && Verdict::Live.reason().is_none());
    assert_eq!(Verdict::DeadEndpoint.reason(), Some("dead-endpoint"));
    assert_eq!(Verdict::NeverTranslated.reason(), Some("never-translated"));
}

#[test]
fn a_scan_classifies_the_captured_entries() {
    let selector = manual("198.19.0.10", &["198.18.2.2:53"]);
    let targets = targets_of(&selector);
    let plans = plan(&targets);
    let mut source = Replay::new(vec![vec![captured_dump()]]);
    let result = scan(&mut source, &targets, &plans, false).unwrap();
    let tally = &result.tallies[0];
    assert_eq!(tally.scanned, 2);
    assert_eq!(tally.stale_count(), 2);
    assert_eq!(tally.live, 0);
    assert!(result.kernel_filter);
    let reasons: Vec<(u16, Verdict)> =
        tally.stale.iter().map(|(e, v)| (e.orig.src_port, *v)).collect();
    assert!(reasons.contains(&(40001, Verdict::DeadEndpoint)), "{reasons:?}");
    assert!(reasons.contains(&(40002, Verdict::NeverTranslated)), "{reasons:?}");
    // The request was the kernel-filtered one.
    assert_eq!(source.requests, vec![plans[0].filter.request()]);
    assert_eq!(
        tally.by_target[&"198.18.3.2:53".parse().unwrap()],
        TargetCount { entries: 1, stale: 1 }
    );
}

#[test]
fn a_restarted_dump_counts_each_entry_once() {
    let selector = manual("198.19.0.10", &["198.18.2.2:53"]);
    let targets = targets_of(&selector);
    // The first attempt got one datagram in (then was interrupted), the
    // second is complete: its counts alone must stand.
    let script = vec![vec![ENTRIES_FILTERED_DATAGRAM.to_vec()], captured_dump()];
    let mut source = Replay::new(vec![script]);
    let result = scan(&mut source, &targets, &plan(&targets), false).unwrap();
    assert_eq!(result.tallies[0].scanned, 2);
    assert_eq!(result.tallies[0].stale_count(), 2);
    assert_eq!(result.restarts, 1);
}

#[test]
fn a_dump_that_cannot_complete_is_an_error_not_a_clean_result() {
    struct GivesUp;
    impl DumpSource for GivesUp {
        fn dump_events(
            &mut self,
            request: &'static str,
            _: NetfilterProtoFamily,
            _: &ConntrackMessage,
            _: Duration,
            on_event: &mut dyn FnMut(DumpEvent<'_>) -> std::result::Result<(), ConntrackError>,
        ) -> std::result::Result<DumpSummary, ConntrackError> {
            on_event(DumpEvent::Restart {
                attempt: 2,
                reason: crate::conntrack::socket::RestartReason::Overrun,
            })?;
            Err(ConntrackError::DumpInconsistent { request, attempts: 3 })
        }
    }
    let selector = manual("198.19.0.10", &["198.18.2.2:53"]);
    let targets = targets_of(&selector);
    let error = scan(&mut GivesUp, &targets, &plan(&targets), false).unwrap_err();
    assert!(matches!(error, ConntrackError::DumpInconsistent { .. }), "{error:?}");
}

#[test]
fn a_refused_filter_falls_back_to_an_unfiltered_dump() {
    let selector = manual("198.19.0.10", &["198.18.2.2:53"]);
    let targets = targets_of(&selector);
    let mut source = Replay::new(vec![vec![captured_dump()]]);
    source.refuse_filter = true;
    let result = scan(&mut source, &targets, &plan(&targets), false).unwrap();
    assert!(!result.kernel_filter);
    assert_eq!(source.requests.len(), 2);
    assert_eq!(source.requests[1], unfiltered_request());
    assert_eq!(result.tallies[0].stale_count(), 2);
    assert!(result.filter_notes[0].contains("refused"), "{:?}", result.filter_notes);
    let report = report_of(&config(selector), &targets, &result);
    assert!(report.findings.iter().any(|f| f.code == FindingCode::KernelFilterUnavailable));
}

#[test]
fn entries_outside_the_filter_mean_the_kernel_ignored_it() {
    // A Service on port 54: both captured entries (port 53) came back
    // although the filter asked for 54, as from a kernel without CTA_FILTER.
    let selector = manual("198.19.0.10:54", &["198.18.2.2:54"]);
    let targets = targets_of(&selector);
    let mut source = Replay::new(vec![vec![captured_dump()]]);
    let result = scan(&mut source, &targets, &plan(&targets), false).unwrap();
    assert!(!result.kernel_filter);
    assert_eq!(result.tallies[0].stale_count() + result.tallies[0].live, 0);
    assert_eq!(result.tallies[0].scanned, 2);
    assert!(result.filter_notes[0].contains("outside"), "{:?}", result.filter_notes);
}

#[test]
fn an_undecodable_entry_is_skipped_and_counted() {
    // Derived from the capture: entry 1's CTA_TUPLE_ORIG renamed to an
    // unknown attribute (type 0x7f), so it has no original tuple.
    let mut datagram = ENTRIES_FILTERED_DATAGRAM;
    datagram[22] = 0x7f;
    let selector = manual("198.19.0.10", &["198.18.2.2:53"]);
    let targets = targets_of(&selector);
    let mut source =
        Replay::new(vec![vec![vec![datagram.to_vec(), ENTRIES_FILTERED_DONE.to_vec()]]]);
    let result = scan(&mut source, &targets, &plan(&targets), false).unwrap();
    assert_eq!(result.undecodable, 1);
    assert!(
        result.undecodable_notes[0].contains("CTA_TUPLE_ORIG"),
        "{:?}",
        result.undecodable_notes
    );
    assert_eq!(result.tallies[0].stale_count(), 1, "the other entry still counts");
    let report = report_of(&config(selector), &targets, &result);
    assert!(report.findings.iter().any(|f| f.code == FindingCode::UndecodableEntries));
}

#[test]
fn plans_filter_ipv6_by_port_only_and_share_a_dump_among_many() {
    let v6 = targets_of(&manual("[2001:db8::a]:53", &["[2001:db8:2::2]:53"]));
    let plans = plan(&v6);
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].filter.family, AF_INET6);
    assert_eq!(plans[0].filter.dst, None, "never an IPv6 address in CTA_FILTER");
    assert_eq!(plans[0].filter.dst_port, Some(53));
    let v4 = targets_of(&manual("198.19.0.10", &[]));
    assert_eq!(plan(&v4)[0].filter.dst, Some("198.19.0.10".parse().unwrap()));
    let many: Vec<Target> =
        (0..6).flat_map(|i| targets_of(&manual(&format!("198.19.0.{}", 10 + i), &[]))).collect();
    let plans = plan(&many);
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].targets.len(), 6);
    assert_eq!((plans[0].filter.dst, plans[0].filter.dst_port), (None, None));
}

#[test]
fn the_one_service_report_has_the_contract_fields() {
    let selector = manual("198.19.0.10", &["198.18.2.2:53"]);
    let targets = targets_of(&selector);
    let mut source = Replay::new(vec![vec![captured_dump()]]);
    let result = scan(&mut source, &targets, &plan(&targets), false).unwrap();
    let report = report_of(&config(selector), &targets, &result);
    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "service",
        "cluster_ip",
        "port",
        "endpoints",
        "scanned",
        "kernel_filter",
        "entries",
        "stale_count",
        "live_count",
        "findings",
    ] {
        assert!(json.get(key).is_some(), "{key} missing: {json}");
    }
    assert!(json.get("flush").is_none(), "no flush object without --flush");
    assert_eq!(json["service"], "198.19.0.10:53");
    assert_eq!(json["cluster_ip"], "198.19.0.10");
    assert_eq!(json["endpoints"], serde_json::json!(["198.18.2.2:53"]));
    assert_eq!(json["stale_count"], 2);
    let entries = json["entries"].as_array().unwrap();
    let dead = entries.iter().find(|e| e["reason"] == "dead-endpoint").unwrap();
    assert_eq!(dead["src"], "198.18.1.2:40001");
    assert_eq!(dead["dst"], "198.19.0.10:53");
    assert_eq!(dead["reply_src"], "198.18.3.2:53");
    assert_eq!(dead["state"], "ASSURED");
    assert_eq!(dead["expires_s"], 99);
    assert_eq!(dead["zone"], 0);
    assert_eq!(dead["mark"], 7);
    assert_eq!(dead["id"], 193_283_103u32);
    assert_eq!(dead["stale"], true);
    assert_eq!(dead["client"], serde_json::Value::Null);
    let never = entries.iter().find(|e| e["reason"] == "never-translated").unwrap();
    assert_eq!((never["zone"].as_u64(), never["state"].as_str()), (Some(5), Some("UNREPLIED")));
    let codes: Vec<&str> =
        json["findings"].as_array().unwrap().iter().filter_map(|f| f["code"].as_str()).collect();
    assert!(
        codes.contains(&"stale-entries") && codes.contains(&"never-translated-entries"),
        "{codes:?}"
    );
    let stale = report.findings.iter().find(|f| f.code == FindingCode::StaleEntries).unwrap();
    assert_eq!(stale.severity, Severity::Critical);
    assert!(
        stale.remedy.contains(
            "ctdiag stale --netns lab-node --cluster-ip 198.19.0.10 --endpoints 198.18.2.2 --flush"
        ),
        "{}",
        stale.remedy
    );
    assert!(
        stale.remedy.contains("1.32") && stale.remedy.contains("node-local"),
        "{}",
        stale.remedy
    );
    assert!(stale.evidence.contains("198.18.3.2:53"), "{}", stale.evidence);
}

#[test]
fn several_services_use_the_services_form() {
    let mut targets = targets_of(&manual("198.19.0.10", &["198.18.3.2:53"]));
    targets.extend(targets_of(&manual("198.19.0.11", &[])));
    let mut source =
        Replay::new(vec![vec![captured_dump()], vec![vec![ENTRIES_FILTERED_DONE.to_vec()]]]);
    let result = scan(&mut source, &targets, &plan(&targets), false).unwrap();
    let report = report_of(&config(Selector::All), &targets, &result);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["services"].as_array().unwrap().len(), 2);
    assert_eq!(json["stale_count"], 1, "the never-translated entry");
    assert_eq!(json["live_count"], 1, "the entry DNATed to 198.18.3.2");
    let codes: Vec<&str> =
        json["findings"].as_array().unwrap().iter().filter_map(|f| f["code"].as_str()).collect();
    assert!(codes.contains(&"service-no-endpoints"), "{codes:?}");
    assert!(codes.contains(&"never-translated-entries"), "{codes:?}");
    assert!(json.get("service").is_none());
}

#[test]
fn flush_outcomes_decide_the_findings() {
    let selector = manual("198.19.0.10", &["198.18.2.2:53"]);
    let targets = targets_of(&selector);
    let mut source = Replay::new(vec![vec![captured_dump()]]);
    let result = scan(&mut source, &targets, &plan(&targets), false).unwrap();
    let config = config(selector);
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
    let codes = |flush: FlushReport| -> Vec<(FindingCode, Severity)> {
        context
            .report(&targets, &result, Some(&[flush]))
            .findings
            .iter()
            .map(|f| (f.code, f.severity))
            .collect()
    };
    let clean = codes(FlushReport { deleted: 1, already_gone: 1, ..FlushReport::default() });
    assert_eq!(clean, vec![(FindingCode::StaleEntriesFlushed, Severity::Info)]);
    let left = codes(FlushReport { deleted: 1, remaining: Some(1), ..FlushReport::default() });
    assert!(left.contains(&(FindingCode::StaleEntriesRemain, Severity::Critical)), "{left:?}");
    let failed = codes(FlushReport { failed: 1, ..FlushReport::default() });
    assert!(failed.contains(&(FindingCode::StaleEntriesRemain, Severity::Critical)), "{failed:?}");
    let declined =
        codes(FlushReport { remaining: Some(2), declined: true, ..FlushReport::default() });
    assert!(declined.contains(&(FindingCode::StaleEntries, Severity::Critical)), "{declined:?}");
    let json =
        serde_json::to_value(context.report(&targets, &result, Some(&[FlushReport::default()])))
            .unwrap();
    for key in ["deleted", "already_gone", "failed", "remaining"] {
        assert!(json["flush"].get(key).is_some(), "flush.{key}: {json}");
    }
}

#[test]
fn an_entry_without_an_id_is_never_deleted() {
    let selector = manual("198.19.0.10", &["198.18.2.2:53"]);
    let targets = targets_of(&selector);
    let mut source = Replay::new(vec![vec![captured_dump()]]);
    let result = scan(&mut source, &targets, &plan(&targets), false).unwrap();
    let mut stale = result.tallies[0].stale.clone();
    for (entry, _) in &mut stale {
        entry.id = None;
    }
    // No socket is touched: both fail before any request is sent. A socket
    // in a namespace of our own would be needed otherwise; an unbound one
    // is enough to prove nothing was asked of it.
    let Ok(mut socket) = CtnetlinkSocket::open() else { return };
    let flush = delete_all(&mut socket, &stale);
    assert_eq!((flush.deleted, flush.already_gone, flush.failed), (0, 0, 2));
    assert!(flush.errors[0].contains("CTA_ID"), "{:?}", flush.errors);
}

/// Every `stale` finding code, at each severity it declares, from
/// synthetic scans of the captured entries.
#[test]
fn every_stale_code_is_produced_by_a_case() {
    let mut produced: Vec<(FindingCode, Severity)> = Vec::new();
    let mut collect = |report: &StaleReport| {
        for f in &report.findings {
            assert_eq!(f.code.command(), "stale", "{f:?}");
            assert!(f.code.severities().contains(&f.severity), "{f:?}");
            produced.push((f.code, f.severity));
        }
    };
    let clients = ClientIndex::default();
    let unreachable = [Unreachable {
        endpoint: "198.18.3.2".parse().unwrap(),
        why: "a blackhole route (`ip route get 198.18.3.2`: RTNETLINK answers: Invalid argument)"
            .into(),
    }];
    let cases: [(&str, &[&str], Option<FlushReport>, bool); 7] = [
        // dead-endpoint + never-translated
        ("198.19.0.10", &["198.18.2.2:53"], None, false),
        // live + never-translated, with the live endpoint unreachable
        ("198.19.0.10", &["198.18.3.2:53"], None, true),
        // no endpoints
        ("198.19.0.11", &["198.18.2.2:53"], None, false),
        // flushed clean, and left behind
        (
            "198.19.0.10",
            &["198.18.2.2:53"],
            Some(FlushReport { deleted: 2, ..FlushReport::default() }),
            false,
        ),
        (
            "198.19.0.10",
            &["198.18.2.2:53"],
            Some(FlushReport { remaining: Some(1), ..FlushReport::default() }),
            false,
        ),
        // deleted, then the scan after the deletes failed
        (
            "198.19.0.10",
            &["198.18.2.2:53"],
            Some(FlushReport { deleted: 2, remaining: None, ..FlushReport::default() }),
            false,
        ),
        // nothing at all to this ClusterIP
        ("198.19.0.12", &["198.18.2.2:53"], None, false),
    ];
    for (cluster_ip, endpoints, flush, with_unreachable) in cases {
        let selector = manual(cluster_ip, endpoints);
        let mut targets = targets_of(&selector);
        if cluster_ip == "198.19.0.11" {
            targets[0].endpoints.clear();
        }
        let mut source = Replay::new(vec![vec![captured_dump()]]);
        source.refuse_filter = cluster_ip == "198.19.0.12";
        let result = scan(&mut source, &targets, &plan(&targets), false).unwrap();
        let config = config(selector);
        let context = Context {
            config: &config,
            netns: None,
            source: String::new(),
            table_entries: None,
            clients: &clients,
            unreachable: if with_unreachable { &unreachable } else { &[] },
            notes: Vec::new(),
        };
        let flushes = flush.map(|f| vec![f]);
        collect(&context.report(&targets, &result, flushes.as_deref()));
    }
    // An undecodable entry.
    let mut datagram = ENTRIES_FILTERED_DATAGRAM;
    datagram[22] = 0x7f;
    let selector = manual("198.19.0.10", &["198.18.2.2:53"]);
    let targets = targets_of(&selector);
    let mut source =
        Replay::new(vec![vec![vec![datagram.to_vec(), ENTRIES_FILTERED_DONE.to_vec()]]]);
    let result = scan(&mut source, &targets, &plan(&targets), false).unwrap();
    collect(&report_of(&config(selector), &targets, &result));
    // Two rule sources that disagree on the endpoints.
    let of_mode = |mode: crate::service::ProxyMode, endpoint: &str| crate::service::Service {
        namespace: "kube-system".into(),
        name: "kube-dns".into(),
        port_name: "dns".into(),
        protocol: Protocol::Udp,
        cluster_ips: vec!["198.19.0.10".parse().unwrap()],
        port: 53,
        endpoints: vec![endpoint.parse().unwrap()],
        proxy_mode: mode,
    };
    let targets = super::sources::targets(&[
        of_mode(crate::service::ProxyMode::Iptables, "198.18.2.2:53"),
        of_mode(crate::service::ProxyMode::Nftables, "198.18.3.2:53"),
    ]);
    let mut source = Replay::new(vec![vec![captured_dump()]]);
    let result = scan(&mut source, &targets, &plan(&targets), false).unwrap();
    let report = report_of(&config(Selector::All), &targets, &result);
    // 40001 goes to 198.18.3.2:53, an endpoint in the nftables rules only:
    // live (only the never-translated entry is stale).
    assert_eq!(report.stale_count, 1);
    collect(&report);

    for code in FindingCode::ALL.iter().filter(|c| c.command() == "stale") {
        for severity in code.severities() {
            assert!(
                produced.contains(&(*code, *severity)),
                "no case produces {code} as {severity:?}: {produced:?}"
            );
        }
    }
}

/// `count` copies of `entry` from `sources` client addresses in turn, each
/// with its own source port.
fn copies(entry: &Entry, count: usize, sources: &[&str]) -> Vec<Entry> {
    (0..count)
        .map(|i| {
            let mut copy = *entry;
            copy.orig.src = sources[i % sources.len()].parse().unwrap();
            copy.orig.src_port = 1024 + (i / sources.len()) as u16;
            copy.reply.dst = copy.orig.src;
            copy.reply.dst_port = copy.orig.src_port;
            copy
        })
        .collect()
}

#[test]
fn a_big_scan_counts_every_entry_but_keeps_at_most_max_listed_of_each_kind() {
    // The captured entry DNATed to 198.18.3.2:53, judged against endpoint
    // 198.18.2.2:53 (stale) and against 198.18.3.2:53 (live).
    let mut source = Replay::new(vec![vec![captured_dump()]]);
    let selector = manual("198.19.0.10", &["198.18.2.2:53"]);
    let targets = targets_of(&selector);
    let found = scan(&mut source, &targets, &plan(&targets), false).unwrap();
    let dnated = found.tallies[0].stale.iter().find(|(e, _)| e.orig.src_port == 40001).unwrap().0;
    let sources = ["198.18.1.3", "198.18.1.4", "198.18.1.5", "198.18.1.6", "198.18.1.7"];
    let stale = copies(&dnated, 2_500, &sources);
    let live_endpoint: SocketAddr = "198.18.3.2:53".parse().unwrap();
    let service: SocketAddr = "198.19.0.10:53".parse().unwrap();
    let mut tally = Tally::default();
    let listing = Keep::listing(true);
    for entry in &stale {
        let verdict = classify(entry, service, &targets[0].endpoints);
        assert_eq!(verdict, Verdict::DeadEndpoint);
        tally.take(*entry, verdict, listing);
    }
    for entry in copies(&dnated, 1_200, &["198.18.1.8"]) {
        tally.take(entry, classify(&entry, service, &[live_endpoint]), listing);
    }
    assert_eq!((tally.stale_count(), tally.live, tally.dead), (2_500, 1_200, 2_500));
    assert_eq!((tally.stale.len(), tally.listed_live.len()), (MAX_LISTED, MAX_LISTED));
    assert_eq!(tally.not_kept, 2_500 + 1_200 - 2 * MAX_LISTED as u64);
    assert!(!tally.stale_complete());
    assert_eq!(tally.by_target[&live_endpoint], TargetCount { entries: 3_700, stale: 2_500 });

    let scan = Scan { tallies: vec![tally], kernel_filter: true, ..Scan::default() };
    let report = report_of(&config(selector), &targets, &scan);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["stale_count"], 2_500);
    assert_eq!(json["live_count"], 1_200);
    assert_eq!(json["entries"].as_array().unwrap().len(), 2 * MAX_LISTED);
    assert_eq!(json["entries_truncated"], true);
    assert_eq!(json["entries_not_listed"], 1_700);
    // The finding counts every entry and every client, not the kept ones:
    // 500 entries per client, 3 shown, 497 more.
    let finding = report.findings.iter().find(|f| f.code == FindingCode::StaleEntries).unwrap();
    assert!(finding.summary.starts_with("2500 UDP conntrack entries"), "{}", finding.summary);
    assert!(finding.summary.contains("5 clients blackholed"), "{}", finding.summary);
    for address in sources {
        assert!(finding.summary.contains(&format!("{address}:1026 +497")), "{}", finding.summary);
    }
}

#[test]
fn a_small_report_has_no_truncation_fields() {
    let selector = manual("198.19.0.10", &["198.18.2.2:53"]);
    let targets = targets_of(&selector);
    let mut source = Replay::new(vec![vec![captured_dump()]]);
    let result = scan(&mut source, &targets, &plan(&targets), true).unwrap();
    let json = serde_json::to_value(report_of(&config(selector), &targets, &result)).unwrap();
    assert!(json.get("entries_truncated").is_none(), "{json}");
    assert!(json.get("entries_not_listed").is_none(), "{json}");
}

/// The streamed document, for limits of one entry of each kind, against
/// the report built whole from the same captured dump (limits as usual).
fn streamed_and_whole(wrapped: bool) -> (serde_json::Value, serde_json::Value) {
    let selector = manual("198.19.0.10", &["198.18.2.2:53"]);
    let targets = targets_of(&selector);
    let config = StaleConfig { all_entries: true, ..config(selector) };
    let clients = ClientIndex::default();
    let context = Context {
        config: &config,
        netns: config.netns.clone(),
        source: "--cluster-ip/--endpoints".into(),
        table_entries: Some(4),
        clients: &clients,
        unreachable: &[],
        notes: Vec::new(),
    };
    let mut out = Vec::new();
    let mut writer = stream::Writer::new(&mut out, wrapped);
    let tight = Keep { live: true, stale_limit: 1, live_limit: 1 };
    let mut source = Replay::new(vec![vec![captured_dump()]]);
    let done: Vec<Scan> = Vec::new();
    let streamed = {
        let mut hand = |_: usize, tally: &Tally, entry: &Entry, verdict: Verdict| {
            writer.row(&context, &targets, &done, 0, tally, entry, verdict)
        };
        scan_with(&mut source, &targets, &plan(&targets), tight, Some(&mut hand)).unwrap()
    };
    writer.scanned(&context, &targets[0], 0, &streamed).unwrap();
    assert!(writer.opened, "the second stale entry is beyond a limit of one");
    let mut report = context.report(&targets, &streamed, None);
    report.wrapped = wrapped;
    writer.finish(&report).unwrap();
    let streamed: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let mut source = Replay::new(vec![vec![captured_dump()]]);
    let whole = scan(&mut source, &targets, &plan(&targets), true).unwrap();
    let mut whole = context.report(&targets, &whole, None);
    whole.wrapped = wrapped;
    (streamed, serde_json::to_value(&whole).unwrap())
}

#[test]
fn streamed_entries_make_the_same_json_as_a_whole_report() {
    for wrapped in [false, true] {
        let (streamed, whole) = streamed_and_whole(wrapped);
        // The same document, every entry listed: only the order of the
        // entries may differ (dump order beyond the limit), and the
        // findings' sample sources (taken from the entries kept, one here).
        let summaries = |value: &serde_json::Value| -> Vec<String> {
            value["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["summary"].as_str().unwrap().to_string())
                .collect()
        };
        assert!(
            summaries(&streamed).contains(
                &"1 UDP conntrack entries of 198.19.0.10:53 send their clients' packets to 2 DNAT targets that are not an endpoint any more: 1 client blackholed: 198.18.1.2 (1 entries)".to_string()
            ),
            "{:?}",
            summaries(&streamed)
        );
        let comparable = |mut value: serde_json::Value| {
            let blank = |findings: &mut serde_json::Value| {
                for finding in findings.as_array_mut().unwrap() {
                    finding["summary"] = serde_json::Value::Null;
                }
            };
            blank(&mut value["findings"]);
            let service = if wrapped { &mut value["services"][0] } else { &mut value };
            blank(&mut service["findings"]);
            let entries = service["entries"].as_array_mut().unwrap();
            entries.sort_by_key(|e| e["src"].as_str().unwrap_or_default().to_string());
            value
        };
        assert_eq!(comparable(streamed), comparable(whole), "wrapped: {wrapped}");
    }
}

#[test]
fn a_dump_that_starts_over_after_entries_were_written_out_fails() {
    let selector = manual("198.19.0.10", &["198.18.2.2:53"]);
    let targets = targets_of(&selector);
    // Attempt 1 delivers both entries (the second beyond a limit of one,
    // so it is handed out), then the dump is interrupted.
    let script = vec![captured_dump(), captured_dump()];
    let mut source = Replay::new(vec![script]);
    let tight = Keep { live: true, stale_limit: 1, live_limit: 1 };
    let mut handed = 0;
    let mut hand = |_: usize, _: &Tally, _: &Entry, _: Verdict| {
        handed += 1;
        Ok(())
    };
    let error = scan_with(&mut source, &targets, &plan(&targets), tight, Some(&mut hand))
        .expect_err("entries already handed out cannot be taken back");
    assert!(matches!(error, ConntrackError::DumpInconsistent { attempts: 1, .. }), "{error:?}");
    assert_eq!(handed, 1);
    // Without anything handed out, the same restart is absorbed.
    let mut source = Replay::new(vec![vec![captured_dump(), captured_dump()]]);
    let result = scan(&mut source, &targets, &plan(&targets), true).unwrap();
    assert_eq!((result.restarts, result.tallies[0].stale_count()), (1, 2));
}
