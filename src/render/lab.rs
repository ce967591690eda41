//! Rendering of `ctdiag lab` reports: the lab (`up`, `status`,
//! `scenario`), what `down` removed, the fill, and `lab run`'s scenario
//! table. JSON is the reports as they are ([`crate::render::json`]); none
//! has metrics (`-o prometheus` is refused before the lab is touched).

use comfy_table::{Cell, Table};

use crate::lab::fill::FillReport;
use crate::lab::run::RunReport;
use crate::lab::{DownReport, EndpointState, LabInfo, ROUTER_IP};
use crate::render::table::{new_table, num};
use crate::render::{Context, Render};

/// The lab: what it is made of, its DNS servers, its sticky clients and
/// the scenarios applied.
fn info_table(ctx: &Context, info: &LabInfo) -> String {
    let summary = summary_table(ctx, info);
    let servers = servers_table(ctx, info);
    let mut text = format!("{summary}\n{servers}\n");
    if !info.clients.is_empty() {
        text.push_str(&format!(
            "sticky clients in {} (one socket each, a query per second):\n{}\n",
            info.namespaces.client,
            clients_table(ctx, info)
        ));
    }
    for scenario in &info.scenarios {
        text.push_str(&format!("scenario {}: {}\n", scenario.name, scenario.summary));
    }
    text
}

/// Namespaces, Service, rules and where the state is.
fn summary_table(ctx: &Context, info: &LabInfo) -> Table {
    let mut summary = new_table(ctx, &["lab", &info.prefix]);
    let rows: Vec<(&str, String)> = vec![
        ("node namespace", info.namespaces.node.clone()),
        ("client namespace", format!("{} (198.18.1.2, 2001:db8:1::2)", info.namespaces.client)),
        ("router namespace", format!("{} ({}, drops all)", info.namespaces.router, ROUTER_IP)),
        (
            "kube-dns ClusterIP",
            format!(
                "{} port {} udp+tcp ({})",
                info.cluster_ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(", "),
                info.port,
                info.ip_family.as_str()
            ),
        ),
        ("endpoints in the rules", info.endpoints.join(", ")),
        ("rules", format!("kube-proxy {} mode", info.rules_mode.as_str())),
        ("DNS server", info.dns_server.as_str().to_string()),
        ("client resolv.conf", info.resolv_conf.display().to_string()),
        ("state", info.state_dir.display().to_string()),
    ];
    for (key, value) in rows {
        summary.add_row(vec![Cell::new(key), Cell::new(value)]);
    }
    summary
}

/// One row per endpoint's DNS server.
fn servers_table(ctx: &Context, info: &LabInfo) -> Table {
    let mut servers = new_table(
        ctx,
        &[
            "endpoint",
            "namespace",
            "address",
            "server",
            "pid",
            "alive",
            "delay ms",
            "drop",
            "drop AAAA",
        ],
    );
    for s in &info.servers {
        let alive = match (s.state, s.alive) {
            (EndpointState::Removed, _) => "removed".to_string(),
            (_, true) => "yes".to_string(),
            (_, false) => "NO".to_string(),
        };
        servers.add_row(vec![
            num(s.endpoint),
            Cell::new(&s.namespace),
            Cell::new(if s.addresses.is_empty() {
                s.address.clone()
            } else {
                s.addresses.join(", ")
            }),
            Cell::new(s.kind.as_str()),
            Cell::new(s.pid.map_or("-".to_string(), |p| p.to_string())),
            Cell::new(alive),
            num(s.delay_ms),
            num(format!("{:.2}", s.drop_rate)),
            num(format!("{:.2}", s.drop_aaaa_rate)),
        ]);
    }
    servers
}

/// One row per sticky client.
fn clients_table(ctx: &Context, info: &LabInfo) -> Table {
    let mut clients = new_table(
        ctx,
        &["client", "pid", "source", "hostname", "entry to", "alive", "answered", "last query"],
    );
    for c in &info.clients {
        clients.add_row(vec![
            num(c.id),
            Cell::new(c.pid),
            Cell::new(&c.source),
            Cell::new(&c.hostname),
            Cell::new(&c.entry_reply_src),
            Cell::new(if c.alive { "yes" } else { "no" }),
            num(format!("{}/{}", c.answered, c.queries)),
            Cell::new(match c.last_answered {
                Some(true) => "answered",
                Some(false) => "UNANSWERED",
                None => "-",
            }),
        ]);
    }
    clients
}

/// What `lab down` removed, in one sentence.
fn down_text(_ctx: &Context, report: &DownReport) -> String {
    if !report.found {
        return format!("No lab with prefix {:?} was there; nothing to remove.", report.prefix);
    }
    let mut text = format!(
        "Removed lab {:?}: namespaces {}; stopped {} process(es)",
        report.prefix,
        if report.removed_namespaces.is_empty() {
            "none".to_string()
        } else {
            report.removed_namespaces.join(", ")
        },
        report.stopped_pids.len()
    );
    for path in &report.removed_paths {
        text.push_str(&format!("; removed {}", path.display()));
    }
    text.push('.');
    text
}

/// The fill: flows sent, entries before and after, the table's limit.
fn fill_table(ctx: &Context, report: &FillReport) -> String {
    let mut t = new_table(ctx, &["lab fill", &report.prefix]);
    let rows: Vec<(&str, String)> = vec![
        ("node namespace", report.node_namespace.clone()),
        (
            "flows",
            format!(
                "{} {} to {} ({})",
                report.flows,
                report.family.as_str(),
                report.destination,
                report.target.as_str()
            ),
        ),
        ("sources", report.sources.clone()),
        ("datagrams sent", format!("{} in {} round(s)", report.packets_sent, report.rounds)),
        (
            "entries (conntrack -C)",
            format!("{} -> {} ({:+})", report.entries_before, report.entries_after, report.created),
        ),
        ("nf_conntrack_max", report.conntrack_max.to_string()),
        ("entry timeout", format!("{} s without traffic", report.timeout_s)),
        ("time", format!("{:.0} ms", report.elapsed_ms)),
    ];
    for (key, value) in rows {
        t.add_row(vec![Cell::new(key), Cell::new(value)]);
    }
    let mut text = format!("{t}\n");
    for n in &report.notes {
        text.push_str(&format!("note: {n}\n"));
    }
    text
}

/// `lab run`'s scenario table: what each failure should show, what doctor
/// found (with `-v`, each doctor table first).
fn run_table(ctx: &Context, report: &RunReport) -> String {
    let mut out = String::new();
    if ctx.verbose > 0 {
        for result in &report.scenarios {
            if let Some(doctor) = &result.doctor {
                out.push_str(&format!("== {}\n", result.scenario.as_str()));
                out.push_str(&doctor.table(ctx));
                out.push('\n');
            }
        }
    }
    let mut t = new_table(
        ctx,
        &["scenario", "expected finding", "doctor found", "unrelated warnings", "result", "time"],
    );
    for result in &report.scenarios {
        let expected = if result.expected.is_empty() {
            "none at warning or above".to_string()
        } else {
            result.expected.join(" or ")
        };
        let found =
            if result.found.is_empty() { "nothing".to_string() } else { result.found.join(", ") };
        let mut unrelated = result.unrelated.join(", ");
        if !result.unknown.is_empty() {
            if !unrelated.is_empty() {
                unrelated.push_str("; ");
            }
            unrelated.push_str(&format!("could not run: {}", result.unknown.join("; ")));
        }
        if let Some(error) = &result.error {
            unrelated = error.clone();
        }
        let verdict = match (result.passed, result.expected_found) {
            (true, _) => "pass".to_string(),
            (false, false) => "FAIL: expected finding missing".to_string(),
            (false, true) => "FAIL".to_string(),
        };
        t.add_row(vec![
            Cell::new(result.scenario.as_str()),
            Cell::new(expected),
            Cell::new(found),
            Cell::new(if unrelated.is_empty() { "none".to_string() } else { unrelated }),
            Cell::new(verdict),
            Cell::new(format!("{:.1} s + {:.1} s", result.setup_s, result.doctor_s)),
        ]);
    }
    out.push_str(&format!("{t}\n"));
    let passed = report.scenarios.iter().filter(|r| r.passed).count();
    out.push_str(&format!(
        "{} of {} scenarios passed{}; lab {} {}; {:.0} s in all (time: setting up + doctor; -v shows each doctor table)\n",
        passed,
        report.scenarios.len(),
        if report.interrupted { " before the run was interrupted" } else { "" },
        report.prefix,
        if report.torn_down { "torn down" } else { "NOT torn down: run `ctdiag lab down --prefix` with it" },
        report.duration_s
    ));
    out
}

impl Render for LabInfo {
    const COMMAND: &'static str = "ctdiag lab";

    fn table(&self, ctx: &Context) -> String {
        info_table(ctx, self)
    }
}

impl Render for DownReport {
    const COMMAND: &'static str = "ctdiag lab";

    fn table(&self, ctx: &Context) -> String {
        down_text(ctx, self)
    }
}

impl Render for FillReport {
    const COMMAND: &'static str = "ctdiag lab";

    fn table(&self, ctx: &Context) -> String {
        fill_table(ctx, self)
    }
}

impl Render for RunReport {
    const COMMAND: &'static str = "ctdiag lab";

    fn table(&self, ctx: &Context) -> String {
        run_table(ctx, self)
    }
}
