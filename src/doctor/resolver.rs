//! The resolver check: how the pods on this node look names up (search
//! list, ndots, the options that change how A and AAAA are sent) and which
//! C library does it, which decides which workarounds can apply.

use std::collections::BTreeMap;

use serde_json::json;

use super::{CheckContext, CheckResult};
use crate::dns::pods::{self, PodResolver, PodScan, PodScanConfig};
use crate::dns::rootfs::{Libc, RootFile};
use crate::error::{Error, Result};
use crate::findings::{Finding, FindingCode, Severity};

/// How many pods a finding's evidence names before "and N more".
const NAMED: usize = 6;

fn names(pods: &[&PodResolver]) -> String {
    let mut text = pods.iter().take(NAMED).map(|p| p.label()).collect::<Vec<_>>().join(", ");
    if pods.len() > NAMED {
        text.push_str(&format!(", and {} more", pods.len() - NAMED));
    }
    text
}

/// The options set in a resolv.conf that musl does not implement.
fn ignored_by_musl(pod: &PodResolver) -> Vec<&'static str> {
    let Some(setup) = &pod.setup else { return Vec::new() };
    let mut out = Vec::new();
    if setup.single_request {
        out.push("single-request");
    }
    if setup.single_request_reopen {
        out.push("single-request-reopen");
    }
    if setup.use_vc {
        out.push("use-vc");
    }
    out
}

/// The findings about what the scan found.
pub fn analyze(scan: &PodScan) -> Vec<Finding> {
    [resolver_option_ignored(scan), search_list_expansion(scan), resolv_conf_unusable(scan)]
        .into_iter()
        .flatten()
        .collect()
}

/// [`FindingCode::ResolverOptionIgnored`]: musl containers relying on
/// options musl ignores.
fn resolver_option_ignored(scan: &PodScan) -> Option<Finding> {
    let musl_ignoring: Vec<&PodResolver> = scan
        .pods
        .iter()
        .filter(|p| p.libc.libc == Libc::Musl && !ignored_by_musl(p).is_empty())
        .collect();
    if musl_ignoring.is_empty() {
        return None;
    }
    let mut options: Vec<&str> = musl_ignoring.iter().flat_map(|p| ignored_by_musl(p)).collect();
    options.sort_unstable();
    options.dedup();
    Some(Finding::new(
        Severity::Warning,
        FindingCode::ResolverOptionIgnored,
        format!(
            "{} musl container(s) rely on {}, which musl ignores: their A and AAAA queries still leave one socket in parallel",
            musl_ignoring.len(),
            options.join(", ")
        ),
        format!(
            "{} (C library {}; options {})",
            names(&musl_ignoring),
            musl_ignoring[0].libc.files.join(", "),
            musl_ignoring[0].setup.as_ref().map(|s| s.options_text().join(" ")).unwrap_or_default()
        ),
        "musl has no single-request, single-request-reopen or use-vc: protect these pods with NodeLocal DNSCache (no DNAT for DNS), a kernel that resolves the clash (>= 5.10), or a glibc-based image; fully qualified names (a trailing dot) also cut the search-list queries",
    ))
}

/// [`FindingCode::SearchListExpansion`]: the most common search-list
/// expansion (ndots above 1 with a search list).
fn search_list_expansion(scan: &PodScan) -> Option<Finding> {
    // Search-list expansion, per (ndots, search list): the most common first.
    let mut expansions: BTreeMap<(u32, Vec<String>), Vec<&PodResolver>> = BTreeMap::new();
    for pod in &scan.pods {
        if let Some(setup) = &pod.setup {
            if setup.ndots > 1 && !setup.search.is_empty() {
                expansions.entry((setup.ndots, setup.search.clone())).or_default().push(pod);
            }
        }
    }
    let mut expansions: Vec<_> = expansions.into_iter().collect();
    expansions.sort_by_key(|(_, pods)| std::cmp::Reverse(pods.len()));
    let ((ndots, search), pods) = expansions.first()?;
    let setup =
        pods[0].setup.as_ref().map(|s| (s.names_per_short_lookup(), s.queries_per_short_lookup()));
    let (names_n, queries_n) = setup.unwrap_or((search.len() + 1, 2 * (search.len() + 1)));
    let others = expansions.len() - 1;
    Some(Finding::new(
        Severity::Info,
        FindingCode::SearchListExpansion,
        format!(
            "A name with fewer than {ndots} dots is tried as {names_n} names ({queries_n} queries, A and AAAA) before it is looked up as given: {} container(s) with ndots:{ndots} and {} search domains",
            pods.len(),
            search.len()
        ),
        format!(
            "search {}; {}{}",
            search.join(" "),
            names(pods),
            if others > 0 { format!("; {others} other search set-up(s) in -o json") } else { String::new() }
        ),
        "Each extra query is another chance to hit the conntrack race or a dead endpoint: use fully qualified names with a trailing dot (example.com.) for names outside the cluster, or a lower ndots in the pods' dnsConfig (options ndots:2)",
    ))
}

/// [`FindingCode::ResolvConfUnusable`]: container resolv.conf files not
/// used.
fn resolv_conf_unusable(scan: &PodScan) -> Option<Finding> {
    let unusable: Vec<(&PodResolver, String)> = scan
        .pods
        .iter()
        .filter_map(|p| match &p.resolv_conf {
            RootFile::Truncated { size, .. } => Some((
                p,
                format!(
                    "{} bytes, only the first {} read",
                    size,
                    crate::dns::rootfs::MAX_RESOLV_CONF
                ),
            )),
            RootFile::Refused { reason } => Some((p, reason.clone())),
            RootFile::Read { .. } | RootFile::Missing => None,
        })
        .collect();
    if unusable.is_empty() {
        return None;
    }
    let listed: Vec<String> =
        unusable.iter().take(NAMED).map(|(p, why)| format!("{}: {why}", p.label())).collect();
    Some(Finding::new(
        Severity::Info,
        FindingCode::ResolvConfUnusable,
        format!("{} container resolv.conf file(s) were not used (too large, binary, or not a regular file)", unusable.len()),
        listed.join("; "),
        "Look at these containers' /etc/resolv.conf: the kubelet writes a small text file; anything else came from the image or was mounted over it",
    ))
}

/// One line: how many containers, which C libraries, which options.
pub fn evidence(scan: &PodScan) -> String {
    if scan.pods.is_empty() {
        return format!(
            "no container with a resolv.conf in {} pod network namespace(s){}",
            scan.namespaces,
            if scan.without_resolv_conf > 0 {
                format!(" ({} without one)", scan.without_resolv_conf)
            } else {
                String::new()
            }
        );
    }
    let count = |libc: Libc| scan.pods.iter().filter(|p| p.libc.libc == libc).count();
    let mut options: BTreeMap<String, usize> = BTreeMap::new();
    for pod in &scan.pods {
        if let Some(setup) = &pod.setup {
            for (set, name) in [
                (setup.single_request, "single-request"),
                (setup.single_request_reopen, "single-request-reopen"),
                (setup.use_vc, "use-vc"),
                (setup.no_aaaa, "no-aaaa"),
            ] {
                if set {
                    *options.entry(format!("{name} ({})", pod.libc.libc.as_str())).or_default() +=
                        1;
                }
            }
        }
    }
    let mut nameservers: BTreeMap<String, usize> = BTreeMap::new();
    for pod in &scan.pods {
        if let Some(ns) = pod.setup.as_ref().and_then(|s| s.nameservers.first()) {
            *nameservers.entry(ns.to_string()).or_default() += 1;
        }
    }
    format!(
        "{} container(s) in {} pod network namespace(s): glibc {}, musl {}, both {}, none found {}; nameserver {}; race workarounds: {}",
        scan.pods.len(),
        scan.namespaces,
        count(Libc::Glibc),
        count(Libc::Musl),
        count(Libc::Both),
        count(Libc::None),
        nameservers.iter().map(|(ns, n)| format!("{ns} ({n})")).collect::<Vec<_>>().join(", "),
        if options.is_empty() {
            "none".to_string()
        } else {
            options.iter().map(|(o, n)| format!("{o} x{n}")).collect::<Vec<_>>().join(", ")
        }
    )
}

/// Scans the pods of this node (or the `--pods` namespaces).
pub(super) fn check(ctx: &CheckContext) -> Result<CheckResult> {
    let node_path = match &ctx.config.netns {
        Some(spec) => crate::netns::resolve_spec(spec)?,
        None => std::path::PathBuf::from("/proc/thread-self/ns/net"),
    };
    let node = pods::namespace_inode(&node_path)
        .map_err(|e| Error::Netns { path: node_path.clone(), reason: e.to_string() })?;
    let only = match &ctx.config.pods {
        Some(specs) => Some(
            specs
                .iter()
                .map(|spec| {
                    let path = crate::netns::resolve_spec(spec)?;
                    pods::namespace_inode(&path).map_err(|e| {
                        Error::Usage(format!("--pods {spec}: {}: {e}", path.display()))
                    })
                })
                .collect::<Result<Vec<u64>>>()?,
        ),
        None => None,
    };
    let scan = pods::scan(&PodScanConfig::system(Some(node), only), &ctx.stop);
    refused_everywhere(&scan)?;
    let findings = analyze(&scan);
    let mut evidence = evidence(&scan);
    if scan.truncated {
        evidence.push_str(" (scan cut short: limit or budget reached)");
    }
    let data = json!(scan);
    Ok(CheckResult { evidence, remedy: None, findings, data, status: None })
}

/// No pod looked into because the kernel refused every process it was
/// asked about: that is "could not tell", not "nothing wrong" (a container
/// without CAP_SYS_PTRACE sees every other process's namespaces refused).
fn refused_everywhere(scan: &PodScan) -> Result<()> {
    if scan.pods.is_empty() && scan.without_resolv_conf == 0 && scan.denied > 0 {
        return Err(Error::Privilege(format!(
            "the kernel refused to show {} processes' namespaces, so no pod's resolver was read: CAP_SYS_PTRACE is needed (run as root)",
            scan.denied
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::resolv::ResolverSetup;
    use crate::dns::rootfs::{self, MAX_RESOLV_CONF};
    use std::path::Path;

    /// A pod read from a fixture root the way the scan reads a container.
    fn fixture_pod(name: &str) -> PodResolver {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rootfs").join(name);
        let root = rootfs::open_root(&dir).unwrap();
        let read = rootfs::read_file(&root, "etc/resolv.conf", MAX_RESOLV_CONF);
        PodResolver {
            netns: "net:[1]".into(),
            netns_name: None,
            pid: Some(1),
            hostname: Some(name.into()),
            resolv_conf_path: dir.join("etc/resolv.conf").display().to_string(),
            setup: read.text().map(ResolverSetup::parse),
            resolv_conf: read,
            libc: rootfs::detect_libc(&root),
        }
    }

    fn scan(pods: Vec<PodResolver>) -> PodScan {
        PodScan { namespaces: pods.len(), pods, ..PodScan::default() }
    }

    #[test]
    fn every_process_refused_is_unknown_not_ok() {
        // What a container without CAP_SYS_PTRACE sees: every other
        // process's namespaces refused, no pod read.
        let refused = PodScan { denied: 12, ..PodScan::default() };
        let err = refused_everywhere(&refused).unwrap_err();
        assert!(matches!(err, Error::Privilege(_)), "{err:?}");
        assert!(err.to_string().contains("CAP_SYS_PTRACE"), "{err}");
        // Some refused, some read (a process that is not a pod's): the pods
        // read decide.
        let partly = PodScan { denied: 3, ..scan(vec![fixture_pod("glibc")]) };
        assert!(refused_everywhere(&partly).is_ok());
        // Nothing refused, no pods: a node without pods is fine.
        assert!(refused_everywhere(&PodScan::default()).is_ok());
        // Only pause containers read: the scan did see into the pods.
        let pause = PodScan { denied: 3, without_resolv_conf: 1, ..PodScan::default() };
        assert!(refused_everywhere(&pause).is_ok());
    }

    #[test]
    fn musl_ignoring_single_request_is_a_warning_glibc_using_it_is_not() {
        let glibc = fixture_pod("glibc");
        assert_eq!(glibc.libc.libc, Libc::Glibc);
        assert!(glibc.setup.as_ref().unwrap().single_request_reopen);
        let findings = analyze(&scan(vec![glibc.clone()]));
        assert!(findings.iter().all(|f| f.severity == Severity::Info), "{findings:?}");
        let musl = fixture_pod("musl");
        let findings = analyze(&scan(vec![glibc, musl]));
        let ignored =
            findings.iter().find(|f| f.code == FindingCode::ResolverOptionIgnored).unwrap();
        assert_eq!(ignored.severity, Severity::Warning);
        assert!(ignored.summary.contains("single-request"), "{ignored:?}");
        assert!(ignored.evidence.contains("musl (pid 1)"), "{ignored:?}");
        assert!(ignored.evidence.contains("lib/ld-musl-x86_64.so.1"), "{ignored:?}");
    }

    #[test]
    fn the_expansion_of_the_most_common_search_list_is_named() {
        let pods = vec![fixture_pod("glibc"), fixture_pod("static"), fixture_pod("musl")];
        let findings = analyze(&scan(pods));
        let expansion =
            findings.iter().find(|f| f.code == FindingCode::SearchListExpansion).unwrap();
        // glibc and static share the kubelet's 3-domain list: 4 names, 8 queries.
        assert!(expansion.summary.contains("tried as 4 names (8 queries"), "{expansion:?}");
        assert!(expansion.summary.contains("2 container(s)"), "{expansion:?}");
        assert!(expansion.evidence.contains("1 other search set-up"), "{expansion:?}");
        let musl = analyze(&scan(vec![fixture_pod("musl")]));
        let expansion = musl.iter().find(|f| f.code == FindingCode::SearchListExpansion).unwrap();
        assert!(expansion.summary.contains("tried as 7 names (14 queries"), "{expansion:?}");
    }

    #[test]
    fn unusable_files_are_named_and_evidence_counts_libcs() {
        let mut huge = fixture_pod("glibc");
        huge.resolv_conf = RootFile::Truncated { text: String::new(), size: 10_000_000 };
        let mut escaped = fixture_pod("escape");
        assert_eq!(escaped.resolv_conf, RootFile::Missing);
        escaped.resolv_conf = RootFile::Refused { reason: "etc/resolv.conf is binary".into() };
        let all = scan(vec![huge, escaped, fixture_pod("musl"), fixture_pod("static")]);
        let findings = analyze(&all);
        let unusable = findings.iter().find(|f| f.code == FindingCode::ResolvConfUnusable).unwrap();
        assert!(unusable.evidence.contains("10000000 bytes"), "{unusable:?}");
        assert!(unusable.evidence.contains("binary"), "{unusable:?}");
        let text = evidence(&all);
        assert!(text.contains("glibc 1, musl 1, both 0, none found 2"), "{text}");
        assert!(text.contains("single-request (musl) x1"), "{text}");
        assert!(evidence(&PodScan::default()).starts_with("no container"));
    }

    /// Every code `doctor` declares, at every declared severity, comes out
    /// of the analyses on some input here.
    #[test]
    fn every_doctor_code_is_produced_by_a_case() {
        use crate::doctor::dns_path::{self, DnsPath, Listener};
        use crate::kernel::Kernel;
        let mut produced: Vec<Finding> = Vec::new();
        let mut huge = fixture_pod("glibc");
        huge.resolv_conf = RootFile::Truncated { text: String::new(), size: 1 << 20 };
        produced.extend(analyze(&scan(vec![huge, fixture_pod("musl")])));
        let address: std::net::IpAddr = "169.254.20.10".parse().unwrap();
        let mut path = DnsPath {
            node_local_dns: Some(address),
            listeners: vec![Listener { protocol: "udp".into(), address }],
            ..DnsPath::default()
        };
        path.rules.nfqueue_dns.push("-A FORWARD -j NFQUEUE".into());
        for release in ["5.15.0", "6.18.0"] {
            produced.extend(dns_path::analyze(&path, &Kernel::from_release(release)));
        }
        // A node without kube-proxy rules, with and without an eBPF datapath.
        for interfaces in [vec![], vec!["cilium_host".to_string()]] {
            let seen = crate::doctor::NodeDatapath {
                kube_proxy_rules: false,
                place: "node".into(),
                signs: crate::doctor::datapath::signs(&interfaces, false, &[]),
                notes: vec![],
            };
            produced.push(seen.finding());
        }
        for code in FindingCode::ALL.iter().filter(|c| c.command() == "doctor") {
            for severity in code.severities() {
                assert!(
                    produced.iter().any(|f| f.code == *code && f.severity == *severity),
                    "no case produces {code} as {severity:?}"
                );
            }
        }
        for f in &produced {
            assert!(f.code.severities().contains(&f.severity), "{f:?}");
        }
    }
}
