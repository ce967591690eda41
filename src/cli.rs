//! Command-line definitions (clap derive) only. Also the source of the
//! generated shell completions and man pages.

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    after_help = "Try it anywhere: `ctdiag lab up` builds a Kubernetes-node lookalike out of network namespaces."
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

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables.
    Table,
    /// One JSON object (JSON Lines for streams such as `--watch`).
    Json,
    /// Prometheus text exposition format (metrics commands only).
    Prometheus,
}

/// Color choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Color when stdout is a terminal and NO_COLOR is unset.
    Auto,
    /// Always color.
    Always,
    /// Never color.
    Never,
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
    /// Build, inspect and tear down a Kubernetes-node lookalike made of
    /// network namespaces, to reproduce the failures ctdiag diagnoses.
    Lab(LabArgs),
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

/// Resolver behaviours `ctdiag probe` can imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeMode {
    /// glibc/musl default: A and AAAA in one sendmmsg on a fresh connected socket.
    Parallel,
    /// Two threads sending on one socket at the same instant (most race-prone).
    Threads,
    /// `options single-request`: A, wait for its answer, then AAAA, same socket.
    Sequential,
    /// `options single-request-reopen`: A, then AAAA from a new socket.
    Reopen,
    /// `options use-vc`: both queries over one TCP connection.
    Tcp,
}

/// `ctdiag probe`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctdiag probe --parallel --count 1000\n  ctdiag probe --netns /run/netns/lab-client --stats-netns /run/netns/lab-node --mode threads\n  ctdiag probe --server 198.19.0.10 --name kubernetes.default.svc.cluster.local -o json"
)]
pub struct ProbeArgs {
    /// DNS server to probe, IP or IP:PORT ([IPv6]:PORT). Default: the first
    /// nameserver of the probed namespace's resolv.conf.
    #[arg(short, long, value_name = "IP[:PORT]")]
    pub server: Option<String>,
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
    /// Shorthand for --mode parallel.
    #[arg(long, conflicts_with = "mode")]
    pub parallel: bool,
    /// Open the probe sockets inside this network namespace (a pod's):
    /// a path, a PID, or an `ip netns` name.
    #[arg(long, value_name = "PATH|PID")]
    pub netns: Option<String>,
    /// Read the conntrack counters in this namespace (where DNAT happens:
    /// the node's). Default: the current namespace.
    #[arg(long, value_name = "PATH|PID")]
    pub stats_netns: Option<String>,
}

/// `ctdiag lab`.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// What to do with the lab.
    #[command(subcommand)]
    pub action: LabAction,
}

/// `ctdiag lab` actions.
#[derive(Debug, Subcommand)]
pub enum LabAction {
    /// Build the lab (idempotent: an existing lab with the prefix is rebuilt).
    Up(LabUpArgs),
    /// Tear the lab down: namespaces, DNS servers, state (idempotent).
    Down(LabDownArgs),
    /// Show the lab's namespaces, addresses, rules and DNS servers.
    Status(LabPrefixArgs),
}

/// Which lab.
#[derive(Debug, Args)]
pub struct LabPrefixArgs {
    /// Name prefix of the lab's namespaces (`PREFIX-node`, `PREFIX-client`,
    /// `PREFIX-dnsN`).
    #[arg(short, long, default_value = "ctdiag")]
    pub prefix: String,
}

/// `ctdiag lab up`.
#[derive(Debug, Args)]
pub struct LabUpArgs {
    /// Which lab.
    #[command(flatten)]
    pub lab: LabPrefixArgs,
    /// Number of CoreDNS endpoints behind the kube-dns ClusterIP.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub endpoints: u8,
    /// DNS server run in each endpoint namespace.
    #[arg(long, value_enum, default_value_t = LabDnsServer::Embedded)]
    pub dns: LabDnsServer,
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
    /// dnsmasq, a DNS server nobody here wrote.
    Dnsmasq,
}
