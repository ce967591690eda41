//! Command-line definitions (clap derive) only. Also the source of the
//! generated shell completions and man pages.

use clap::{Arg, Args, Parser, Subcommand, ValueEnum};

pub use crate::render::{ColorChoice, OutputFormat};

/// Find and fix the node-level causes of 5-second DNS lookups on a
/// Kubernetes node.
#[derive(Debug, Parser)]
#[command(
    name = "ctdiag",
    version,
    about = "Find and fix the node-level causes of 5-second DNS lookups on a Kubernetes node",
    long_about = "Find and fix the node-level causes of 5-second DNS lookups on a Kubernetes node: \
the conntrack insert race between parallel A and AAAA queries, stale UDP conntrack entries \
pointing at a dead CoreDNS pod, a full conntrack table, a dead or slow kube-dns endpoint.\n\n\
Exit status: 0 ran and found nothing wrong, 1 found a problem (a finding of severity warning \
or worse), 2 could not tell (usage error, missing privilege, runtime error).",
    after_help = "Try it anywhere: `ctdiag lab run` builds a Kubernetes-node lookalike out of network namespaces, puts it through each failure and shows what `ctdiag doctor` finds."
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format: a table for people, JSON for scripts, Prometheus text
    /// exposition where the data are metrics.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// When to color the output (NO_COLOR in the environment means never
    /// for `auto`).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Print only findings that need attention (table output).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Explain more: notes, sources, per-step detail. Repeat for more.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// conntrack counters per CPU and in total (the numbers of `conntrack -S`),
    /// table fill, deltas and rates with --watch, and what they mean.
    Stats(StatsArgs),
    /// Resolver-faithful DNS lookups (A and AAAA in parallel from one fresh
    /// socket), loss and latency, and the conntrack counters they moved.
    Probe(ProbeArgs),
    /// The same probes against a Service's ClusterIP and against each of its
    /// endpoints directly, interleaved, side by side: the DNAT/conntrack
    /// path or one bad endpoint?
    Compare(CompareArgs),
    /// Every Service port the node's kube-proxy rules define (iptables,
    /// nftables or IPVS mode): ClusterIPs and endpoints, optionally checked
    /// against the API's EndpointSlices.
    Services(ServicesArgs),
    /// UDP conntrack entries of a Service whose DNAT target is not a current
    /// endpoint (a dead pod, or never translated); --flush deletes exactly
    /// those.
    Stale(StaleArgs),
    /// Every check in one run, within a time budget: conntrack counters now,
    /// the DNS Service in the rules, stale entries, ClusterIP against each
    /// endpoint, the pods' resolvers, node-local DNS and NFQUEUE; one
    /// verdict table (node-problem-detector plugin with --npd).
    Doctor(DoctorArgs),
    /// Build, inspect and tear down a Kubernetes-node lookalike made of
    /// network namespaces, to reproduce the failures ctdiag diagnoses.
    Lab(LabArgs),
    /// Every pod's own lookups on this node, passively from the packets:
    /// answered, lost and slow per pod and per endpoint, with the cause of
    /// each lost one; or the same from a capture file (--read).
    Watch(WatchArgs),
}

/// `ctdiag watch`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctdiag watch\n  ctdiag watch --duration 60s -o json\n  ctdiag watch --netns lab-node --interval 5s\n  tcpdump -i any -w node.pcap port 53; ctdiag watch --read node.pcap\n  ctdiag watch --listen 0.0.0.0:9153   # Prometheus /metrics\n\n\
Each query (client address and port, DNS id, name, type) is followed from the pod, through its DNATed copy to an \
endpoint, to the answer back to the pod; one not answered within --timeout is unanswered, with a cause: stale-entry \
(the client's conntrack entry DNATs to an address that is no endpoint), endpoint-silent (it went to the endpoint, \
nothing came back), dropped-before-dnat (the node dropped it while another query of the same socket got through), \
one-type-lost (its A/AAAA pair was answered), answer-not-delivered (the endpoint answered, the pod never got it), \
unknown. Live capture: AF_PACKET on every interface of the namespace, needs CAP_NET_RAW (and CAP_NET_ADMIN for \
conntrack lookups).\n\n\
Exit status: 0 every query was answered, 1 a query went unanswered, 2 the capture could not run (or a usage error)."
)]
pub struct WatchArgs {
    /// The DNS Service whose endpoints a DNAT target is checked against
    /// (default: kube-dns from the node's rules, live; none with --read).
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Capture in the node's network namespace: a path, a PID, or an `ip
    /// netns` name. Default: the current one.
    #[arg(long, value_name = "PATH|PID|NAME", conflicts_with = "read")]
    pub netns: Option<String>,
    /// Stop after this long (500ms, 30s, 2m, 1h); with --read, of capture
    /// time. Default: until Ctrl-C (or the end of the file).
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// One report (a refreshed view, a JSON line) per this long.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub interval: String,
    /// A query with no answer after this many milliseconds is unanswered
    /// (glibc's resolver waits 5000).
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub timeout: u64,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics while watching.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// With --listen: pods with their own series (the rest are one series).
    #[arg(long, value_name = "N", default_value_t = 20, requires = "listen")]
    pub top_pods: usize,
    /// Analyse a capture file (pcap or pcapng, e.g. `tcpdump -i any -w
    /// FILE port 53`) instead of capturing.
    #[arg(long, value_name = "FILE")]
    pub read: Option<std::path::PathBuf>,
}

/// `ctdiag doctor`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctdiag doctor\n  ctdiag doctor --budget 30s -o json\n  ctdiag doctor --netns lab-node --probe-netns lab-client --pods lab-client\n  kubectl get endpointslices -A -o json > slices.json; ctdiag doctor --api slices.json\n  ctdiag doctor --npd   # node-problem-detector custom plugin (deploy/)\n\n\
Checks, each on its own thread with its share of the budget (one that cannot run, fails or overruns \
is `unknown` with the reason; the others still run): conntrack (counters sampled over an interval, \
table fill, kernel counters), kube-dns (proxy mode, the Service in the rules, endpoints, --api), \
stale (a scan only: doctor never deletes; the remedy names `ctdiag stale --flush`), compare (a few \
lookups to the ClusterIP and to each endpoint, addresses from the rules or the flags only), \
resolvers (every pod network namespace: resolv.conf and C library), dns-path (node-local DNS, \
NOTRACK, NFQUEUE; looked at, never probed). On a node without kube-proxy rules, stale and compare \
(without --api) are not-applicable, and kube-dns too when an eBPF datapath (Cilium, Calico) shows.\n\n\
Exit status: 0 nothing wrong, 1 a check found a warning or worse, 2 no check could run, or no \
kube-proxy rules and no sign of another Service datapath. With \
--npd: 0 OK, 1 NonOK, 2 Unknown (also when a check could not run and none found a problem), and \
exactly one line of at most 80 characters on stdout."
)]
pub struct DoctorArgs {
    /// The DNS Service (default: kube-dns from the node's rules).
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Scan every UDP Service for stale entries, not only the DNS Service.
    #[arg(long)]
    pub all: bool,
    /// The node's network namespace (conntrack, kube-proxy rules, node-local
    /// DNS): a path, a PID, or an `ip netns` name. Default: the current one.
    #[arg(long, value_name = "PATH|PID|NAME")]
    pub netns: Option<String>,
    /// Start the comparison's lookups in this namespace (a pod's). Default:
    /// the node's.
    #[arg(long, value_name = "PATH|PID|NAME")]
    pub probe_netns: Option<String>,
    /// Look only at these pod network namespaces in the resolver check
    /// (comma-separated or repeated). Default: every namespace in use on
    /// the node.
    #[arg(long, value_name = "NETNS,...", value_delimiter = ',')]
    pub pods: Vec<String>,
    /// The time budget of the whole run: 15s, 30s, 1m.
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    pub budget: String,
    /// Compare the rules with the API: `kubectl get endpointslices -A -o
    /// json` output in FILE, or `-` for stdin. On a node without kube-proxy
    /// rules, `kubectl get services,endpointslices -n kube-system -o json`
    /// output: the comparison probes the ClusterIP and endpoints it gives.
    #[arg(long, value_name = "FILE|-")]
    pub api: Option<String>,
    /// The address node-local DNS (NodeLocal DNSCache) listens on.
    #[arg(long, value_name = "IP", default_value = "169.254.20.10")]
    pub node_local_dns: std::net::IpAddr,
    /// node-problem-detector custom-plugin mode: exactly one line of at most
    /// 80 characters naming the worst finding; exit 0 OK, 1 NonOK, 2 Unknown.
    #[arg(long)]
    pub npd: bool,
}

/// `ctdiag services`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctdiag services\n  ctdiag services --service kube-dns -o json\n  ctdiag services --netns /run/netns/lab-node -v\n  ctdiag services --kubectl\n  kubectl get endpointslices -A -o json > slices.json; ctdiag services --api slices.json\n\n\
Exit status: 0 nothing wrong, 1 a finding of severity warning or worse (kube-dns without endpoints, \
rules of two modes at once, rules that disagree with the API), 2 could not tell."
)]
pub struct ServicesArgs {
    /// Which Service (default: all of them).
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Read the rules in another network namespace (the node's): a path,
    /// a PID, or an `ip netns` name.
    #[arg(long, value_name = "PATH|PID")]
    pub netns: Option<String>,
    /// IPVS mode has no Service names: the kube-dns ClusterIP. Default: the
    /// kubelet's clusterDNS, else the nameserver pods on this node use.
    #[arg(long, value_name = "IP")]
    pub cluster_dns: Option<std::net::IpAddr>,
    /// Compare with the API: the output of `kubectl get endpointslices -A
    /// -o json` in FILE, or `-` for stdin.
    #[arg(long, value_name = "FILE|-", conflicts_with = "kubectl")]
    pub api: Option<String>,
    /// Compare with the API by running `kubectl get endpointslices -A -o
    /// json` (kubectl on PATH with a usable kubeconfig).
    #[arg(long)]
    pub kubectl: bool,
}

/// `ctdiag stats`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctdiag stats\n  ctdiag stats --watch 1 --count 10\n  ctdiag stats --netns /run/netns/lab-node -o json"
)]
pub struct StatsArgs {
    /// Read the counters of another network namespace: a path
    /// (/run/netns/NAME, /proc/PID/ns/net), a PID, or an `ip netns` name.
    #[arg(long, value_name = "PATH|PID")]
    pub netns: Option<String>,
    /// Print per-interval deltas and per-second rates every SECONDS
    /// (decimals allowed, e.g. 0.5).
    #[arg(short, long, value_name = "SECONDS")]
    pub watch: Option<f64>,
    /// With --watch: stop after N intervals (default: until interrupted).
    #[arg(short = 'n', long, value_name = "N", requires = "watch")]
    pub count: Option<u64>,
    /// Read procfs (/proc/net/stat/nf_conntrack) even when ctnetlink works.
    #[arg(long)]
    pub procfs: bool,
}

/// Which Service a command works on (`stale`, `services`, `compare`,
/// `probe`): from the node's kube-proxy rules, or given outright.
#[derive(Debug, Clone, Default, Args)]
pub struct ServiceArgs {
    /// The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or
    /// NAMESPACE/NAME:PORT (a port name or number).
    #[arg(long, value_name = "SPEC")]
    pub service: Option<String>,
    /// Give the Service on the command line instead of reading kube-proxy's
    /// rules: its ClusterIP, and port (default 53). Needs --endpoints.
    #[arg(long, value_name = "IP[:PORT]", requires = "endpoints")]
    pub cluster_ip: Option<String>,
    /// With --cluster-ip: the Service's endpoints (comma-separated or
    /// repeated; a bare IP means the Service port).
    #[arg(long, value_name = "IP:PORT,...", requires = "cluster_ip", value_delimiter = ',')]
    pub endpoints: Vec<String>,
}

/// `ctdiag stale`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctdiag stale\n  ctdiag stale --service kube-dns --flush\n  ctdiag stale --all -o json\n  ctdiag stale --netns lab-node --cluster-ip 198.19.0.10 --endpoints 198.18.2.2:53 --flush --yes\n\n\
An entry whose original destination is the ClusterIP:port is live when its reply source (the DNAT target) is a \
current endpoint, stale (dead-endpoint) when it is not, stale (never-translated) when the reply source is the \
ClusterIP itself (with or without endpoints: the entries kube-proxy's own reconciler deletes). Exit status: 0 no stale entry remains, 1 stale entries remain \
(or another problem: no endpoints, an unreachable endpoint), 2 the scan could not complete. Needs CAP_NET_ADMIN."
)]
pub struct StaleArgs {
    /// Which Service (default: kube-dns, every UDP port of it).
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Every UDP Service the rules define, including those without
    /// endpoints.
    #[arg(long)]
    pub all: bool,
    /// Delete exactly the stale entries (by reply tuple, zone and the id
    /// the scan saw; each acknowledged), then scan again. Asks first on a
    /// terminal; without one, needs --yes.
    #[arg(long)]
    pub flush: bool,
    /// With --flush: delete without asking.
    #[arg(short = 'y', long, requires = "flush")]
    pub yes: bool,
    /// List live entries too (stale ones are always listed; both are always
    /// counted).
    #[arg(long)]
    pub all_entries: bool,
    /// The node's network namespace (its conntrack table and kube-proxy
    /// rules): a path (/run/netns/NAME, /proc/PID/ns/net), a PID, or an
    /// `ip netns` name. Default: the current namespace.
    #[arg(long, value_name = "PATH|PID|NAME")]
    pub netns: Option<String>,
    /// Only the Services of this proxy mode's rules, when rules of several
    /// modes define one ClusterIP:port (a flush refuses sources that
    /// disagree on the endpoints).
    #[arg(long, value_enum, value_name = "MODE", conflicts_with = "cluster_ip")]
    pub from: Option<RulesMode>,
}

/// A kube-proxy mode whose rules `stale --from` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RulesMode {
    /// iptables mode (either iptables backend).
    Iptables,
    /// nftables mode.
    Nftables,
    /// IPVS mode.
    Ipvs,
}

/// Resolver behaviours `ctdiag probe` can imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeMode {
    /// glibc's default: A and AAAA in one sendmmsg on a fresh connected socket.
    Parallel,
    /// Two threads sending on one socket at the same instant (most race-prone).
    Threads,
    /// `options single-request`: A, wait for its answer, then AAAA, same socket.
    Sequential,
    /// `options single-request-reopen`: A, then AAAA from a new socket.
    Reopen,
    /// `options use-vc`: both queries over one TCP connection.
    Tcp,
    /// musl (Alpine): A then AAAA in two sendto calls on a fresh unconnected
    /// socket, unanswered queries sent again every timeout/attempts.
    Musl,
}

/// `ctdiag probe`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctdiag probe --parallel --count 1000\n  ctdiag probe --netns /run/netns/lab-client --stats-netns /run/netns/lab-node --mode threads\n  ctdiag probe --server 198.19.0.10 --name kubernetes.default.svc.cluster.local -o json"
)]
pub struct ProbeArgs {
    /// DNS server to probe, IP or IP:PORT ([IPv6]:PORT). Default: the
    /// kube-dns ClusterIP in the node's kube-proxy rules, iptables or
    /// nftables mode (read in the --stats-netns namespace), else the first
    /// nameserver of the probed namespace's resolv.conf.
    #[arg(short, long, value_name = "IP[:PORT]", conflicts_with_all = ["service", "cluster_ip"])]
    pub server: Option<String>,
    /// Probe a Service's ClusterIP instead of kube-dns: --service SPEC from
    /// the rules, or --cluster-ip/--endpoints given outright (its endpoints
    /// are named in the report and the loss remedy).
    #[command(flatten)]
    pub service: ServiceArgs,
    // Why the lookup flags come in two blocks with `--parallel` between:
    // the flags keep the order `--help`, the man page and the completions
    // had before they were shared with `compare`.
    #[command(flatten)]
    pub lookup: LookupArgs,
    /// Shorthand for --mode parallel.
    #[arg(long, conflicts_with = "mode")]
    pub parallel: bool,
    #[command(flatten)]
    pub namespaces: NamespaceArgs,
    /// Warn when 1 % or more of the answered lookups take this long or
    /// longer, in milliseconds. Default: a fifth of the resolver timeout
    /// the probed namespace's resolv.conf implies (1000 for the usual 5 s).
    #[arg(long, value_name = "MS")]
    pub slow_ms: Option<u64>,
}

/// The lookups `probe` and `compare` make: which names, how many, for how
/// long, how fast, how patiently, and the resolver behaviour. `compare`
/// rewords the help of `--count` and `--duration` (see [`CompareArgs`]).
#[derive(Debug, Args)]
pub struct LookupArgs {
    /// Name to look up (repeat for several; they are used in turn).
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// Number of lookups (default 200 unless --duration is given).
    #[arg(short = 'c', long, value_name = "N", conflicts_with = "duration")]
    pub count: Option<u64>,
    /// Run for this long instead of a count: 30s, 2m, 500ms.
    #[arg(short, long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// Lookups started per second; 0 means as fast as possible.
    #[arg(short, long, value_name = "LOOKUPS_PER_S", default_value_t = 200.0)]
    pub rate: f64,
    /// Lookups in flight at once.
    #[arg(long, value_name = "K", default_value_t = 32)]
    pub concurrency: usize,
    /// How long to wait for each answer, in milliseconds.
    #[arg(short, long, value_name = "MS", default_value_t = 2000)]
    pub timeout: u64,
    /// Resolver behaviour to imitate.
    #[arg(short, long, value_enum, default_value_t = ProbeMode::Parallel)]
    pub mode: ProbeMode,
}

/// Where `probe` and `compare` open their sockets and read the counters.
/// `compare` rewords the help of `--stats-netns` (see [`CompareArgs`]).
#[derive(Debug, Args)]
pub struct NamespaceArgs {
    /// Open the probe sockets inside this network namespace (a pod's):
    /// a path, a PID, or an `ip netns` name.
    #[arg(long, value_name = "PATH|PID")]
    pub netns: Option<String>,
    /// Read the conntrack counters in this namespace (where DNAT happens:
    /// the node's). Default: the current namespace.
    #[arg(long, value_name = "PATH|PID")]
    pub stats_netns: Option<String>,
}

/// What the shared lookup flags mean for `compare`: per target and mode,
/// in all. Why `mut_args` and not `mut_arg`: `mut_arg` moves the flag to the
/// end, which reorders the completions and the man page.
fn compare_wording(arg: Arg) -> Arg {
    match arg.get_id().as_str() {
        "count" => arg.help("Lookups per target and mode (default 200 unless --duration is given)"),
        "duration" => arg.help("Run for this long in all (every target and mode share it): 30s, 2m"),
        "mode" => arg.conflicts_with("modes"),
        "stats_netns" => arg.help(
            "Read the node's kube-proxy rules and conntrack counters in this namespace (where DNAT happens). Default: the current namespace",
        ),
        _ => arg,
    }
}

/// `ctdiag compare`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctdiag compare --netns /run/netns/pod --stats-netns /run/netns/node\n  ctdiag compare --service kube-dns --count 500 --modes parallel,sequential,reopen,tcp,musl\n  ctdiag compare --cluster-ip 10.96.0.10 --endpoints 10.244.1.5:53,10.244.2.7:53 -o json\n  ctdiag compare --kubectl   # a node without kube-proxy rules: ClusterIP and endpoints from the API\n\n\
Each target (the ClusterIP, then every endpoint) gets --count lookups per mode, in --rounds rounds: \
a batch to every target in turn, so load and time hit all alike. The conntrack counters of \
--stats-netns are read around each batch.\n\n\
Exit status: 0 nothing wrong, 1 a finding of severity warning or worse (a dead, lossy or slow \
endpoint, loss through the ClusterIP, loss everywhere), 2 could not tell.",
    mut_args(compare_wording)
)]
pub struct CompareArgs {
    /// Which Service (default kube-dns, from the node's rules in
    /// --stats-netns, else the current namespace).
    #[command(flatten)]
    pub service: ServiceArgs,
    // Why two blocks: see `ProbeArgs`.
    #[command(flatten)]
    pub lookup: LookupArgs,
    /// Repeat the comparison for each of these resolver modes
    /// (comma-separated) and say which resolv.conf option makes the loss go
    /// away: parallel (glibc), sequential (single-request), reopen
    /// (single-request-reopen), tcp (use-vc), musl, threads.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "MODE,...")]
    pub modes: Vec<ProbeMode>,
    /// How many rounds each target's lookups are cut into (interleaving).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub rounds: u32,
    /// Slow-answer threshold in milliseconds. Default: a fifth of the
    /// resolver timeout the probed namespace's resolv.conf implies.
    #[arg(long, value_name = "MS")]
    pub slow_ms: Option<u64>,
    /// When the node has no kube-proxy rules (Cilium, Calico eBPF, a
    /// kube-proxy that never synced): the ClusterIP and ready endpoints from
    /// the API, `kubectl get services,endpointslices -n NAMESPACE -o json`
    /// output in FILE, or `-` for stdin. The rules win when there are any.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["kubectl", "cluster_ip"])]
    pub api: Option<String>,
    /// Like --api, running that kubectl command (kubectl on PATH with a
    /// usable kubeconfig).
    #[arg(long, conflicts_with = "cluster_ip")]
    pub kubectl: bool,
    #[command(flatten)]
    pub namespaces: NamespaceArgs,
}

/// `ctdiag lab`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctdiag lab up\n  ctdiag lab up --prefix demo --endpoints 3 --dns dnsmasq -o json\n  ctdiag lab scenario dead-endpoint --endpoint 2\n  ctdiag lab status\n  ctdiag lab down\n\nThe lab is network namespaces only, none connected to the root namespace: \
PREFIX-node (kube-proxy iptables or nftables rules, ClusterIP 198.19.0.10:53; 2001:db8::a with --ip-family ipv6|dual), \
PREFIX-client (a pod at 198.18.1.2 and 2001:db8:1::2 with a pod-like resolv.conf), PREFIX-dnsN (CoreDNS endpoints at \
198.18.(N+1).2 and 2001:db8:(N+1)::2) and PREFIX-router (the node's default gateway, which drops what it gets). Probe it with \
`ctdiag probe --netns PREFIX-client --stats-netns PREFIX-node`.\n\nThe DNS servers answer \
kubernetes.default.svc.cluster.local (A 198.19.0.1, AAAA 2001:db8::1) and \
kube-dns.kube-system.svc.cluster.local (A 198.19.0.10, AAAA 2001:db8::a), authoritatively, over UDP \
and TCP; other names under cluster.local get NXDOMAIN, names outside it REFUSED. State, PIDs and \
server logs are kept in /run/ctdiag/lab/PREFIX/."
)]
pub struct LabArgs {
    /// What to do with the lab.
    #[command(subcommand)]
    pub action: LabAction,
}

/// `ctdiag lab` actions.
#[derive(Debug, Subcommand)]
pub enum LabAction {
    /// Build the lab (idempotent: an existing lab with the prefix is torn down and rebuilt).
    Up(LabUpArgs),
    /// Tear the lab down: DNS servers, namespaces, /etc/netns files, state (idempotent).
    Down(LabDownArgs),
    /// Show the lab's namespaces, addresses, rules and whether each DNS server is alive.
    Status(LabPrefixArgs),
    /// Build a lab, put it through each failure in turn (parallel clash,
    /// race drop, dead endpoint, slow endpoint, stale entries, full table), run doctor
    /// on each, show what it found, and tear everything down (also on
    /// Ctrl-C or a failure).
    Run(LabRunArgs),
    /// Put an existing lab into a failure scenario (dead, slow or lossy endpoint, stale
    /// conntrack entries, the parallel-query race drop). `ctdiag lab up` again restores a
    /// healthy lab.
    Scenario(LabScenarioArgs),
    /// The embedded DNS responder (started by `lab up` inside an endpoint namespace).
    #[command(hide = true)]
    Responder(LabResponderArgs),
    /// Create many UDP conntrack entries in the lab node's table, fast: raw
    /// datagrams from spoofed sources in the client's subnet, to the
    /// kube-dns ClusterIP (DNATed to the endpoints) or to an unrelated
    /// address. About 2.5 s and 61 MiB of kernel memory per 250,000 entries.
    #[command(
        hide = true,
        after_help = "Examples:\n  ctdiag lab fill --flows 250000 --to unrelated\n  ctdiag lab fill --flows 50000 --to cluster-ip --timeout 600 -o json\n\n\
The entries are UNREPLIED and expire after the kernel's UDP timeout (nf_conntrack_udp_timeout, 30 s) \
unless --timeout gives them longer (an nftables `ct timeout` in the node's `inet ctdiag-fill` table; needs nft). \
`conntrack -C` in the node's namespace counts them."
    )]
    Fill(LabFillArgs),
    /// A sticky DNS client (started by the stale-endpoint and
    /// never-translated scenarios inside the client pod): one UDP socket on
    /// a fixed source port, one query to the ClusterIP per interval, each
    /// outcome appended to a status file.
    #[command(hide = true)]
    Client(LabClientArgs),
}

/// The failures `ctdiag lab run` reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabRunScenario {
    /// Nothing wrong: doctor must find nothing at warning or above.
    Healthy,
    /// The client pod races A/AAAA pairs from one socket while doctor samples.
    ParallelClash,
    /// The node drops the second query of a pair sent at once on one socket
    /// (`lab scenario race-drop`).
    RaceDrop,
    /// An endpoint's pod is gone, the rules still point at it.
    DeadEndpoint,
    /// An endpoint answers 1.5 s late.
    SlowEndpoint,
    /// An endpoint left the rules; its conntrack entries keep clients blackholed.
    StaleEntries,
    /// The node's conntrack table filled to nf_conntrack_max.
    FullTable,
}

/// `ctdiag lab run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctdiag lab run\n  ctdiag lab run --scenarios dead-endpoint,stale-entries -v\n  ctdiag lab run --proxy-mode nftables -o json\n\n\
Each scenario gets a freshly built lab, then doctor (the library, as `ctdiag doctor --netns PREFIX-node \
--probe-netns PREFIX-client --pods PREFIX-client` would run it). A scenario passes when doctor finds \
the finding that shows the failure, no unrelated warning, and every check runs. The full-table \
scenario fills the node's table to nf_conntrack_max with raw datagrams (about 3 s and 65 MB of kernel \
memory per 262,144 entries here). Exit status: 0 every scenario passed, 1 one did not, 2 interrupted \
or the lab could not be built."
)]
pub struct LabRunArgs {
    /// Name prefix of the lab's namespaces (a lab with this prefix is
    /// rebuilt, then removed).
    #[arg(short, long, default_value = "ctdiag-run")]
    pub prefix: String,
    /// kube-proxy mode of the lab's rules.
    #[arg(long, value_enum, default_value_t = LabProxyMode::Iptables)]
    pub proxy_mode: LabProxyMode,
    /// doctor's time budget per scenario.
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    pub budget: String,
    /// Which scenarios, in order (comma-separated). Default: all of them.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SCENARIO,...")]
    pub scenarios: Vec<LabRunScenario>,
}

/// `ctdiag lab client` (hidden): one sticky DNS client.
#[derive(Debug, Args)]
pub struct LabClientArgs {
    /// The socket's fixed local address.
    #[arg(long, value_name = "IP:PORT")]
    pub bind: std::net::SocketAddr,
    /// The DNS server (the kube-dns ClusterIP).
    #[arg(long, value_name = "IP:PORT")]
    pub server: std::net::SocketAddr,
    /// File each query's outcome is appended to (JSON Lines).
    #[arg(long, value_name = "FILE")]
    pub status: std::path::PathBuf,
    /// The pod's name, set as hostname in a new UTS namespace.
    #[arg(long, value_name = "NAME")]
    pub hostname: String,
    /// The lab's `ip netns` file of the client pod; the client exits once it
    /// names another namespace or none.
    #[arg(long, value_name = "PATH")]
    pub netns_file: std::path::PathBuf,
    /// Milliseconds between queries.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub interval_ms: u64,
    /// Exit after this many seconds at the latest.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub lifetime_s: u64,
}

/// Where `lab fill` sends its flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabFillTarget {
    /// The kube-dns ClusterIP, port 53: kube-proxy's rules DNAT each flow to an
    /// endpoint.
    ClusterIp,
    /// 198.18.250.1:9 ([2001:db8:fa::1]:9), routed to the lab's router, which
    /// drops it: entries of no Service.
    Unrelated,
}

/// An address family given as 4 or 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FamilyArg {
    /// IPv4.
    #[value(name = "4")]
    V4,
    /// IPv6.
    #[value(name = "6")]
    V6,
}

/// `ctdiag lab fill` (hidden).
#[derive(Debug, Args)]
pub struct LabFillArgs {
    /// Which lab.
    #[command(flatten)]
    pub lab: LabPrefixArgs,
    /// Number of new entries to create (at most nf_conntrack_max).
    #[arg(long, value_name = "N")]
    pub flows: u32,
    /// Where the flows go.
    #[arg(long, value_enum, value_name = "TARGET")]
    pub to: LabFillTarget,
    /// Address family of the flows.
    #[arg(long, value_enum, default_value_t = FamilyArg::V4)]
    pub family: FamilyArg,
    /// Let the entries live this many seconds without traffic (default: the
    /// kernel's UDP timeout for unreplied flows, 30 s).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

/// Which lab.
#[derive(Debug, Args)]
pub struct LabPrefixArgs {
    /// Name prefix of the lab's namespaces (`PREFIX-node`, `PREFIX-client`,
    /// `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting
    /// with a letter or digit.
    #[arg(short, long, default_value = "ctdiag")]
    pub prefix: String,
}

/// `ctdiag lab up`.
#[derive(Debug, Args)]
pub struct LabUpArgs {
    /// Which lab.
    #[command(flatten)]
    pub lab: LabPrefixArgs,
    /// Number of CoreDNS endpoints behind the kube-dns ClusterIP (1 to 32).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub endpoints: u8,
    /// DNS server run in each endpoint namespace.
    #[arg(long, value_enum, default_value_t = LabDnsServer::Embedded)]
    pub dns: LabDnsServer,
    /// kube-proxy mode whose rules implement the kube-dns Service on the
    /// node.
    #[arg(long, value_enum, default_value_t = LabProxyMode::Iptables)]
    pub proxy_mode: LabProxyMode,
    /// Address families of the kube-dns Service: its ClusterIPs
    /// (198.19.0.10, 2001:db8::a), the rules (iptables/ip6tables, `ip`/`ip6
    /// kube-proxy`), the DNS servers' listeners and the pod's nameservers.
    #[arg(long, value_enum, default_value_t = LabIpFamily::Ipv4)]
    pub ip_family: LabIpFamily,
    /// How the embedded responders misbehave.
    #[command(flatten)]
    pub behavior: ResponderBehaviorArgs,
}

/// How an embedded responder misbehaves (`lab up` and the hidden
/// `lab responder`).
#[derive(Debug, Args)]
pub struct ResponderBehaviorArgs {
    /// Embedded responder: answer every query this many milliseconds late.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub delay_ms: u64,
    /// Embedded responder: share (0 to 1) of all queries silently dropped.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Embedded responder: share (0 to 1) of AAAA queries silently dropped
    /// (one answer of the A/AAAA pair lost).
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub drop_aaaa_rate: f64,
    /// Embedded responder: answer every query with this error rcode and no
    /// records.
    #[arg(long, value_enum, value_name = "RCODE")]
    pub rcode: Option<LabRcode>,
}

/// Error rcodes the embedded responder can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabRcode {
    /// SERVFAIL: the server failed (CoreDNS when its upstream fails).
    Servfail,
    /// REFUSED: the server will not answer.
    Refused,
}

/// `ctdiag lab down`.
#[derive(Debug, Args)]
pub struct LabDownArgs {
    /// Which lab.
    #[command(flatten)]
    pub lab: LabPrefixArgs,
}

/// DNS servers the lab can run in an endpoint namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabDnsServer {
    /// ctdiag's own responder (hickory-proto), with optional delay and drops.
    Embedded,
    /// dnsmasq, a DNS server nobody here wrote (Debian package dnsmasq-base).
    Dnsmasq,
}

/// The lab's Service address families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabIpFamily {
    /// IPv4 only: ClusterIP 198.19.0.10, endpoints 198.18.(N+1).2.
    Ipv4,
    /// IPv6 only: ClusterIP 2001:db8::a, endpoints 2001:db8:(N+1)::2.
    Ipv6,
    /// Both (a dual-stack Service), IPv4 first.
    Dual,
}

/// The kube-proxy modes the lab can imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabProxyMode {
    /// KUBE-SERVICES / KUBE-SVC / KUBE-SEP chains loaded with iptables-restore.
    Iptables,
    /// The `ip kube-proxy` table (service-ips map, numgen vmaps) loaded with nft.
    Nftables,
}

/// Failure scenarios `ctdiag lab scenario` sets up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabScenarioName {
    /// Endpoint N's namespace and DNS server are gone, its address is
    /// blackholed on the node, the rules still point at it: about 1/N of the
    /// lookups through the ClusterIP are lost.
    DeadEndpoint,
    /// Endpoint N answers --delay-ms late (default 1500).
    SlowEndpoint,
    /// Endpoint N (or every endpoint without --endpoint) drops a share of AAAA
    /// queries (--drop-aaaa-rate, default 0.5) and/or of all queries (--drop-rate).
    Lossy,
    /// Endpoint N is removed from the rules and its pod is gone, but conntrack
    /// entries towards it are kept (as when kube-proxy fails to flush them): a
    /// client that reuses its source port stays blackholed. Starts sticky
    /// clients first, at least two of them on endpoint N.
    StaleEndpoint,
    /// kube-dns loses its endpoints and kube-proxy's REJECT rule (kube-proxy
    /// restarting) while sticky clients retry: their packets leave the node
    /// untranslated and their entries keep the ClusterIP as reply source;
    /// the endpoints come back, the clients stay blackholed.
    NeverTranslated,
    /// The node drops a query to the ClusterIP sent on a socket whose earlier
    /// query is not answered yet (an nftables rule before DNAT): glibc's
    /// parallel A/AAAA pair loses one, as in the conntrack insert race on
    /// kernels without clash resolution; conntrack's counters do not move.
    /// `compare --modes` shows which resolv.conf option avoids it
    RaceDrop,
    /// Endpoint N (or every endpoint without --endpoint) answers every query
    /// with an error rcode (--rcode, default servfail) and no records.
    ErrorRcode,
    /// Endpoint N's pod is up but its DNS server is stopped: nothing listens
    /// on port 53, its kernel answers ICMP port unreachable (unlike
    /// dead-endpoint, where the pod is gone and queries meet silence).
    NotListening,
}

/// `ctdiag lab scenario`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctdiag lab scenario dead-endpoint --endpoint 2\n  ctdiag lab scenario slow-endpoint --endpoint 1 --delay-ms 2000\n  ctdiag lab scenario lossy --drop-aaaa-rate 0.3\n  ctdiag lab scenario stale-endpoint --endpoint 2\n  ctdiag lab scenario never-translated\n  ctdiag lab scenario error-rcode --endpoint 2 --rcode servfail\n  ctdiag lab scenario not-listening --endpoint 2\n\nScenarios add up; `ctdiag lab up` rebuilds a healthy lab. slow-endpoint, lossy and error-rcode need the \
embedded DNS server."
)]
pub struct LabScenarioArgs {
    /// The scenario.
    #[arg(value_enum)]
    pub name: LabScenarioName,
    /// Which lab.
    #[command(flatten)]
    pub lab: LabPrefixArgs,
    /// The endpoint (1-based) the scenario acts on. Default: the last one
    /// (lossy, error-rcode: every endpoint).
    #[arg(short, long, value_name = "N")]
    pub endpoint: Option<u8>,
    /// slow-endpoint: answer this many milliseconds late.
    #[arg(long, value_name = "MS")]
    pub delay_ms: Option<u64>,
    /// lossy: share (0 to 1) of all queries silently dropped.
    #[arg(long, value_name = "SHARE")]
    pub drop_rate: Option<f64>,
    /// lossy: share (0 to 1) of AAAA queries silently dropped.
    #[arg(long, value_name = "SHARE")]
    pub drop_aaaa_rate: Option<f64>,
    /// error-rcode: the rcode every answer carries (default servfail).
    #[arg(long, value_enum, value_name = "RCODE")]
    pub rcode: Option<LabRcode>,
}

/// `ctdiag lab responder` (hidden): the embedded DNS server.
#[derive(Debug, Args)]
pub struct LabResponderArgs {
    /// Address to answer on, UDP and TCP (repeat for several, e.g. one per
    /// address family).
    #[arg(long, value_name = "IP:PORT", required = true)]
    pub listen: Vec<std::net::SocketAddr>,
    /// How it misbehaves.
    #[command(flatten)]
    pub behavior: ResponderBehaviorArgs,
    /// UDP worker threads.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub threads: usize,
}
