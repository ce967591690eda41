//! Findings: what a check concluded, with the evidence and what to do.

use serde::Serialize;

/// How bad a finding is. Anything at `Warning` or above makes the command
/// exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Context worth knowing; nothing is wrong.
    Info,
    /// Something is wrong or about to be.
    Warning,
    /// DNS lookups are failing or will fail.
    Critical,
}

impl Severity {
    /// The lowercase name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Declares [`FindingCode`]: one variant per stable machine-readable code,
/// with the string it serializes to, the command that emits it, and the
/// severities it can have. The README's table of finding codes is checked
/// against [`FindingCode::ALL`] by a test, and unit tests of each command's
/// analysis produce every code it emits.
macro_rules! finding_codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $code:literal, $command:literal $(, [$($severity:ident),+])?; )+) => {
        /// Every finding code ctdiag emits. Serialized as the kebab-case
        /// string users and scripts match on; never rename one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum FindingCode {
            $( $(#[doc = $doc])* $variant, )+
        }

        impl FindingCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [FindingCode] = &[$(FindingCode::$variant,)+];

            /// The stable string, e.g. `conntrack-drops`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(FindingCode::$variant => $code,)+
                }
            }

            /// The command whose report carries this finding (`stats`,
            /// `probe`, ...).
            pub fn command(self) -> &'static str {
                match self {
                    $(FindingCode::$variant => $command,)+
                }
            }

            /// The severities a finding with this code can have, least
            /// severe first (empty when a code was declared without them,
            /// which a test refuses).
            pub fn severities(self) -> &'static [Severity] {
                match self {
                    $(FindingCode::$variant => &[$($(Severity::$severity),+)?],)+
                }
            }
        }
    };
}

finding_codes! {
    /// insert_failed or drop rose: the race on a kernel without clash
    /// resolution, or a full table (critical when rising now, warning for
    /// totals since boot).
    ConntrackDrops = "conntrack-drops", "stats", [Warning, Critical];
    /// clash_resolve rose with no insert_failed: races happen and the kernel
    /// resolves them.
    ClashesResolved = "clashes-resolved", "stats", [Info];
    /// The table is at nf_conntrack_max.
    TableFull = "table-full", "stats", [Critical];
    /// The table is more than 90 % full.
    TableNearFull = "table-near-full", "stats", [Warning];
    /// Entries were evicted early because the table was full (a warning
    /// when rising now or the table is nearly full).
    EarlyDrop = "early-drop", "stats", [Info, Warning];
    /// Inserts refused because a hash chain grew too long.
    ChainTooLong = "chain-too-long", "stats", [Warning];
    /// The kernel has no clash_resolve counter (pre-5.10 counting).
    NoClashResolveCounter = "no-clash-resolve-counter", "stats", [Info];
    /// A one-shot read shows totals since boot.
    TotalsSinceBoot = "totals-since-boot", "stats", [Info];
    /// Every counter is 0 and the table empty: not where DNAT happens.
    NoConntrackActivity = "no-conntrack-activity", "stats", [Info];
    /// The counters came from the procfs fallback.
    StatsSource = "stats-source", "stats", [Info];
    /// The kube-dns ClusterIP has no endpoints in the node's rules.
    ClusterDnsNoEndpoints = "cluster-dns-no-endpoints", "probe", [Critical];
    /// Lookups lost an answer while insert_failed/drop rose.
    ConntrackRaceDrops = "conntrack-race-drops", "probe", [Critical];
    /// Most lost queries got ICMP errors: a server is dead or not listening.
    DnsEndpointUnreachable = "dns-endpoint-unreachable", "probe", [Critical];
    /// Queries were lost with no conntrack drop to explain it (critical
    /// above 1 % of the queries).
    DnsQueriesLost = "dns-queries-lost", "probe", [Warning, Critical];
    /// Probes raced in conntrack and the kernel resolved every clash.
    ConntrackClashesResolved = "conntrack-clashes-resolved", "probe", [Info];
    /// Every lookup was answered.
    NoLoss = "no-loss", "probe", [Info];
    /// conntrack dropped packets during the probe, though every probe was
    /// answered.
    ConntrackDropsElsewhere = "conntrack-drops-elsewhere", "probe", [Warning];
    /// 1 % or more of the answered lookups took --slow-ms or longer, or
    /// some were answered only after the resolver's timeout.
    SlowAnswers = "slow-answers", "probe", [Warning];
    /// Answers were SERVFAIL, REFUSED, FORMERR or NOTIMP.
    DnsErrorRcodes = "dns-error-rcodes", "probe", [Warning];
    /// Answers were NXDOMAIN.
    NameDoesNotExist = "name-does-not-exist", "probe", [Info];
    /// Packets arrived that were not taken as answers.
    StrayPackets = "stray-packets", "probe", [Info];
    /// The conntrack counters could not be read around the probe.
    ConntrackCountersUnavailable = "conntrack-counters-unavailable", "probe", [Info];
    /// The probe stopped before its planned end.
    StoppedEarly = "stopped-early", "probe", [Info];
    /// An endpoint probed directly answered no query at all.
    EndpointDead = "endpoint-dead", "compare", [Critical];
    /// An endpoint probed directly lost some queries while others answered
    /// (critical above 1 % of its queries).
    EndpointLossy = "endpoint-lossy", "compare", [Warning, Critical];
    /// An endpoint's p99 is far above its peers', or many of its lookups
    /// are slower than --slow-ms.
    EndpointSlow = "endpoint-slow", "compare", [Warning];
    /// Queries are lost through the ClusterIP while every endpoint probed
    /// directly answers everything: the DNAT/conntrack path.
    ClusterIpPathLoss = "cluster-ip-path-loss", "compare", [Warning, Critical];
    /// Lookups through the ClusterIP are slow while no endpoint is.
    ClusterIpPathSlow = "cluster-ip-path-slow", "compare", [Warning];
    /// Queries are lost at every target: upstream or the node's network.
    LossEverywhere = "loss-everywhere", "compare", [Warning, Critical];
    /// The Service has no endpoints in the rules: nothing to compare.
    CompareNoEndpoints = "compare-no-endpoints", "compare", [Critical];
    /// Queries to a target could not leave the namespace: connect/send
    /// failed with ENETUNREACH/EHOSTUNREACH (no route), not a loss.
    NoRouteToTarget = "no-route-to-target", "compare", [Warning];
    /// An endpoint loses one record type only (A or AAAA): a server or
    /// middlebox that drops it, the classic cause of exact 5 s stalls.
    OneTypeLost = "one-type-lost", "compare", [Critical];
    /// An endpoint answers SERVFAIL/REFUSED/... while its peers answer
    /// NOERROR (critical when every answer is an error).
    EndpointErrorRcodes = "endpoint-error-rcodes", "compare", [Warning, Critical];
    /// Every target answers with errors: CoreDNS or its upstream, not the
    /// node's conntrack (critical when every answer is an error).
    ErrorRcodesEverywhere = "error-rcodes-everywhere", "compare", [Warning, Critical];
    /// With several modes: which resolv.conf option made the loss through
    /// the ClusterIP go away, or that none did.
    ResolverWorkaround = "resolver-workaround", "compare", [Info];
    /// Every target answered every query and none was slow.
    CompareClean = "compare-clean", "compare", [Info];
    /// The comparison stopped before its planned end.
    CompareStoppedEarly = "compare-stopped-early", "compare", [Info];
    /// kube-dns has no endpoints in the node's rules: every lookup through
    /// its ClusterIP is rejected.
    KubeDnsNoEndpoints = "kube-dns-no-endpoints", "services", [Critical];
    /// Service ports other than kube-dns have no endpoints (often normal).
    ServicesWithoutEndpoints = "services-without-endpoints", "services", [Info];
    /// Rules of more than one kube-proxy mode define Services at once.
    MixedProxyModes = "mixed-proxy-modes", "services", [Warning];
    /// Some kube-proxy rules could not be read and were skipped.
    RulesSkipped = "rules-skipped", "services", [Info];
    /// An endpoint in the rules is not ready (or gone) in the API
    /// (critical for kube-dns).
    RulesEndpointNotReady = "rules-endpoint-not-ready", "services", [Warning, Critical];
    /// An endpoint ready in the API is missing from the rules (critical
    /// for kube-dns).
    ApiEndpointMissingFromRules = "api-endpoint-missing-from-rules", "services", [Warning, Critical];
    /// The API has ready endpoints for a Service the rules REJECT
    /// (critical for kube-dns).
    ServiceRejectedWithEndpoints = "service-rejected-with-endpoints", "services", [Warning, Critical];
    /// Objects of the API listing could not be read.
    ApiObjectsSkipped = "api-objects-skipped", "services", [Info];
    /// UDP conntrack entries of a Service DNATed to a target that is not an
    /// endpoint any more: their clients are blackholed.
    StaleEntries = "stale-entries", "stale", [Critical];
    /// UDP conntrack entries created while a Service had no endpoints,
    /// never DNATed: they capture their clients (kube-proxy's reconciler
    /// deletes them whether the Service has endpoints now or not).
    NeverTranslatedEntries = "never-translated-entries", "stale", [Critical];
    /// An endpoint in the rules that the node cannot reach (no route,
    /// neighbour FAILED): its entries are live by the rules and dead in fact.
    EndpointUnreachable = "endpoint-unreachable", "stale", [Warning];
    /// A Service has no endpoints in the rules: its clients fail.
    ServiceNoEndpoints = "service-no-endpoints", "stale", [Critical];
    /// A flush left stale entries behind.
    StaleEntriesRemain = "stale-entries-remain", "stale", [Critical];
    /// A flush deleted every stale entry.
    StaleEntriesFlushed = "stale-entries-flushed", "stale", [Info];
    /// No stale entries for a Service.
    NoStaleEntries = "no-stale-entries", "stale", [Info];
    /// The kernel did not filter the conntrack dump (CTA_FILTER); ctdiag
    /// filtered it.
    KernelFilterUnavailable = "kernel-filter-unavailable", "stale", [Info];
    /// Dump messages that did not decode were skipped.
    UndecodableEntries = "undecodable-entries", "stale", [Info];
    /// Several rule sources (two proxy modes, two copies of one mode's
    /// rules) define one ClusterIP:port with different endpoints.
    RuleSourcesDisagree = "rule-sources-disagree", "stale", [Warning];
    /// The scan after a flush failed: what was deleted is known, what is
    /// still stale is not.
    FlushUnverified = "flush-unverified", "stale", [Warning];
    /// musl containers set resolv.conf options musl does not implement
    /// (single-request, single-request-reopen, use-vc): no protection.
    ResolverOptionIgnored = "resolver-option-ignored", "doctor", [Warning];
    /// How many names (and queries) a short name expands to with the pods'
    /// ndots and search list.
    SearchListExpansion = "search-list-expansion", "doctor", [Info];
    /// A container's resolv.conf was not used: too large, binary, or not a
    /// regular file.
    ResolvConfUnusable = "resolv-conf-unusable", "doctor", [Info];
    /// Node-local DNS listens on this node (with or without NOTRACK rules
    /// taking its traffic out of conntrack).
    NodeLocalDns = "node-local-dns", "doctor", [Info];
    /// NFQUEUE rules can see DNS packets (a warning on kernels before 6.12,
    /// where queued packets are not clash-resolved).
    NfqueueOnDnsPath = "nfqueue-on-dns-path", "doctor", [Info, Warning];
    /// The node namespace has no kube-proxy Service rules: what carries
    /// Services instead (an eBPF datapath it saw signs of), or that nothing
    /// does as far as doctor can see (the kube-dns check is then unknown).
    NoKubeProxyRules = "no-kube-proxy-rules", "doctor", [Info];
}

impl Serialize for FindingCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for FindingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for FindingCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One conclusion of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// A stable machine-readable identifier, e.g. `conntrack-drops`.
    pub code: FindingCode,
    /// One line saying what is going on.
    pub summary: String,
    /// The numbers that show it.
    pub evidence: String,
    /// What to do about it.
    pub remedy: String,
}

impl Finding {
    /// Builds a finding.
    pub fn new(
        severity: Severity,
        code: FindingCode,
        summary: impl Into<String>,
        evidence: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Self {
        Finding {
            severity,
            code,
            summary: summary.into(),
            evidence: evidence.into(),
            remedy: remedy.into(),
        }
    }
}

/// True when any finding is a warning or worse (exit status 1).
pub fn has_problem(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity >= Severity::Warning)
}

/// What a command concluded, mapped to the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Ran and found nothing wrong: exit 0.
    Clean,
    /// Ran and found a problem (a warning or worse): exit 1.
    Problem,
    /// Ran, wrote its report, and still could not tell (`doctor` when no
    /// check could run; `doctor --npd` when a check could not run and none
    /// found a problem): exit 2.
    Unknown,
}

impl Outcome {
    /// From a list of findings.
    pub fn from_findings(findings: &[Finding]) -> Self {
        if has_problem(findings) {
            Outcome::Problem
        } else {
            Outcome::Clean
        }
    }

    /// The process exit status.
    pub fn exit_code(self) -> std::process::ExitCode {
        match self {
            Outcome::Clean => std::process::ExitCode::SUCCESS,
            Outcome::Problem => std::process::ExitCode::from(1),
            Outcome::Unknown => std::process::ExitCode::from(crate::EXIT_UNKNOWN),
        }
    }
}

/// The most severe finding (the first of equals), if any.
pub fn worst(findings: &[Finding]) -> Option<&Finding> {
    findings.iter().fold(None, |worst: Option<&Finding>, f| match worst {
        Some(w) if w.severity >= f.severity => Some(w),
        _ => Some(f),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_kebab_case_strings() {
        let mut seen = std::collections::BTreeSet::new();
        for code in FindingCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{text}"
            );
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(text));
        }
    }

    /// The README's table of finding codes: `(code, command, severities)`
    /// per row.
    fn readme_table() -> Vec<(String, String, Vec<String>)> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let text = std::fs::read_to_string(&path).expect("README.md");
        let mut lines = text.lines().skip_while(|l| !l.starts_with("| code | command |"));
        assert!(lines.next().is_some(), "README.md has no `| code | command | ...` table");
        lines
            .skip(1) // the |---| line
            .take_while(|l| l.starts_with('|'))
            .map(|line| {
                let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
                let bare = |cell: &str| cell.trim_matches('`').to_string();
                let severities = cells
                    .get(2)
                    .map_or(Vec::new(), |c| c.split(',').map(|s| s.trim().to_string()).collect());
                (bare(cells[0]), bare(cells.get(1).copied().unwrap_or("")), severities)
            })
            .collect()
    }

    #[test]
    fn every_code_declares_its_severities() {
        for code in FindingCode::ALL {
            assert!(
                !code.severities().is_empty(),
                "{code}: declare its severities in finding_codes! (src/findings.rs), e.g. `, [Warning]`"
            );
            assert!(
                code.severities().windows(2).all(|w| w[0] < w[1]),
                "{code}: least severe first"
            );
        }
    }

    #[test]
    fn readme_table_lists_every_code_with_its_command_and_severities() {
        let rows = readme_table();
        let row_for = |code: &str| rows.iter().find(|(c, _, _)| c == code);
        for code in FindingCode::ALL {
            let severities: Vec<String> =
                code.severities().iter().map(|s| s.as_str().to_string()).collect();
            let Some((_, command, listed)) = row_for(code.as_str()) else {
                panic!(
                    "README.md: add a row `| `{code}` | `{}` | {} | what it means |` to the finding codes table",
                    code.command(),
                    severities.join(", ")
                );
            };
            assert_eq!(command, code.command(), "README.md row of {code}: command");
            assert_eq!(listed, &severities, "README.md row of {code}: severities");
        }
        for (code, _, _) in &rows {
            assert!(
                FindingCode::ALL.iter().any(|c| c.as_str() == code),
                "README.md lists `{code}`, which is no finding code (src/findings.rs)"
            );
        }
        assert_eq!(rows.len(), FindingCode::ALL.len(), "README.md lists a code twice");
    }

    #[test]
    fn this_file_cites_only_codes_that_exist() {
        let text = include_str!("findings.rs");
        for cited in text.split('`').skip(1).step_by(2) {
            let looks_like_a_code = cited.contains('-')
                && cited.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if looks_like_a_code {
                assert!(
                    FindingCode::ALL.iter().any(|c| c.as_str() == cited),
                    "src/findings.rs cites `{cited}`, which is no finding code"
                );
            }
        }
    }

    /// Every command that emits codes has its coverage test, next to its
    /// analysis: `every_COMMAND_code_is_produced_by_a_case`, which drives
    /// the real analysis with one case per (code, severity) declared above.
    /// A new command's codes, or a renamed test, fail here.
    #[test]
    fn every_command_has_a_test_producing_each_code_at_each_severity() {
        fn sources(dir: &std::path::Path, text: &mut String) {
            for entry in std::fs::read_dir(dir).expect("src/ is readable").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    sources(&path, text);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    text.push_str(&std::fs::read_to_string(&path).expect("a source file"));
                }
            }
        }
        let mut text = String::new();
        sources(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut text);
        let commands: std::collections::BTreeSet<&str> =
            FindingCode::ALL.iter().map(|c| c.command()).collect();
        for command in commands {
            let test = format!("fn every_{command}_code_is_produced_by_a_case()");
            assert!(
                text.contains(&test),
                "no `{test}` in src/: write one that produces each `{command}` code at each severity"
            );
        }
    }

    #[test]
    fn worst_is_the_first_most_severe() {
        let f = |severity, code| Finding::new(severity, code, "", "", "");
        let list = [
            f(Severity::Info, FindingCode::NoLoss),
            f(Severity::Warning, FindingCode::SlowAnswers),
            f(Severity::Warning, FindingCode::DnsErrorRcodes),
        ];
        assert_eq!(worst(&list).unwrap().code, FindingCode::SlowAnswers);
        assert!(worst(&[]).is_none());
    }
}
