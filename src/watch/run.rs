//! The watch loop: packets from the source into the matcher, decided
//! queries into the interval's and the run's counts and the exporter's
//! totals, one report per interval and a summary at the end.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::matcher::{EntryLookup, FastMap, Matcher, NoLookup, ServiceView};
use super::model::{PodName, ReportKind, Totals, WatchReport};
use super::source::{FileSource, Next, PacketSource, SourceError};
use super::stats::{add_to_totals, Span};
use crate::error::{Error, Result};
use crate::service::select::Selector;
use crate::service::Protocol;

/// Where the packets come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A pcap or pcapng file (`--read`).
    File(PathBuf),
    /// The live capture on every interface of a namespace (the current one
    /// when `None`).
    Live(Option<String>),
}

/// A validated `ctdiag watch`.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Where the packets come from.
    pub input: Input,
    /// Stop after this long (live: wall clock; file: packet time).
    pub duration: Option<Duration>,
    /// One report per this much time.
    pub interval: Duration,
    /// A query with no answer after this long is unanswered.
    pub timeout: Duration,
    /// The DNS Service: kube-dns (or `--service`) from the node's rules,
    /// live; as given with `--cluster-ip` and `--endpoints`.
    pub selector: Selector,
}

/// Names client addresses.
pub trait PodNamer {
    /// The pod holding `address`, if known.
    fn name(&mut self, address: IpAddr) -> Option<PodName>;
}

/// Names nobody (a capture from another node).
#[derive(Debug, Default)]
pub struct NoNames;

impl PodNamer for NoNames {
    fn name(&mut self, _address: IpAddr) -> Option<PodName> {
        None
    }
}

/// What the loop runs against: the source, conntrack, pod names.
pub struct Parts {
    /// The packets.
    pub source: Box<dyn PacketSource>,
    /// The client tuple's conntrack entry.
    pub lookup: Box<dyn EntryLookup>,
    /// Pod names.
    pub namer: Box<dyn PodNamer>,
    /// The Service as known.
    pub service: ServiceView,
    /// Whether time is the wall clock (live) or the packets' (a file).
    pub live: bool,
}

/// The parts for a capture file: no conntrack, no pod names, the Service
/// only as given on the command line (there are no rules to read).
pub fn file_parts(path: &std::path::Path, selector: &Selector) -> Result<Parts> {
    let source = FileSource::open(path).map_err(source_error)?;
    let service = match selector {
        Selector::Manual(manual) => super::live::view_of(&manual.services(&[Protocol::Udp])),
        _ => ServiceView::default(),
    };
    Ok(Parts {
        source: Box::new(source),
        lookup: Box::new(NoLookup),
        namer: Box::new(NoNames),
        service,
        live: false,
    })
}

/// The parts of `config`'s input.
pub fn open(config: &WatchConfig) -> Result<Parts> {
    match &config.input {
        Input::File(path) => file_parts(path, &config.selector),
        Input::Live(netns) => super::live::parts(netns.as_deref(), &config.selector),
    }
}

/// A source error as the command reports it.
pub fn source_error(error: SourceError) -> Error {
    match error {
        SourceError::Read { path, cause } => {
            Error::ReadFile { path, source: std::io::Error::other(cause) }
        }
        other => Error::Runtime(other.to_string()),
    }
}

/// Whether the run should stop (Ctrl-C).
pub type StopFlag<'a> = &'a dyn Fn() -> bool;

/// Runs the watch: `emit` gets each interval's report, the summary is
/// returned. `totals` is updated as queries are decided.
pub fn run(
    config: &WatchConfig,
    mut parts: Parts,
    totals: &Arc<Mutex<Totals>>,
    stop: StopFlag<'_>,
    emit: &mut dyn FnMut(&WatchReport) -> Result<()>,
) -> Result<WatchReport> {
    let mut matcher = Matcher::new(config.timeout, parts.service.clone());
    let mut interval = Span::default();
    let mut whole = Span::default();
    let started = Instant::now();
    // Packet time of the start (a file's first packet; live: now).
    let mut origin: Option<Duration> = parts.live.then(wall_clock);
    let mut next_tick = config.interval;
    let mut drops_seen = 0;
    let mut decider = Decider::default();
    loop {
        let next = parts.source.next().map_err(source_error)?;
        let now = match &next {
            Next::Packet(packet) => packet.ts,
            Next::Idle(now) => *now,
            Next::End => break,
        };
        let start = *origin.get_or_insert(now);
        // Packet time, live too (the kernel's timestamps are the wall
        // clock): no clock read per packet.
        let elapsed = now.saturating_sub(start);
        // Reports of the intervals that ended before this packet: what it
        // decides belongs to a later one.
        while elapsed >= next_tick {
            let drops = parts.source.drops();
            interval.capture_drops = drops.saturating_sub(drops_seen);
            whole.capture_drops += interval.capture_drops;
            drops_seen = drops;
            set_drops(totals, drops);
            if parts.live || !interval.is_empty() {
                let names = names_of(&decider.pods);
                emit(&interval.report(ReportKind::Interval, next_tick.as_secs_f64(), &names))?;
            }
            interval = Span::default();
            // Addresses not named yet are asked again next interval (a new
            // pod, a rebuilt index); names found are kept for the summary.
            decider.pods.retain(|_, pod| pod.is_some());
            next_tick += config.interval;
            if !parts.live && elapsed >= next_tick {
                // A quiet stretch of a file: no empty report per interval.
                let skipped = elapsed.as_nanos() / config.interval.as_nanos().max(1);
                next_tick = config.interval * u32::try_from(skipped + 1).unwrap_or(u32::MAX);
            }
        }
        if config.duration.is_some_and(|d| elapsed >= d) {
            // Live: the queries sent before the end are followed to their
            // answer or timeout (at most --timeout more), none after.
            let drained = matcher.pending() == 0;
            let waited = config.duration.is_some_and(|d| elapsed >= d + config.timeout);
            if !parts.live || drained || waited {
                break;
            }
            matcher.close();
        }
        match next {
            Next::Packet(packet) => matcher.packet(packet, parts.lookup.as_mut()),
            Next::Idle(now) => matcher.advance(now, parts.lookup.as_mut()),
            Next::End => break,
        }
        decide(&mut matcher, &mut parts, totals, (&mut interval, &mut whole), &mut decider);
        if stop() {
            break;
        }
    }
    let end = if parts.live { wall_clock() } else { matcher.now() };
    let pending = matcher.finish(end, parts.lookup.as_mut());
    decide(&mut matcher, &mut parts, totals, (&mut interval, &mut whole), &mut decider);
    let drops = parts.source.drops();
    interval.capture_drops = drops.saturating_sub(drops_seen);
    whole.capture_drops += interval.capture_drops;
    set_drops(totals, drops);
    let elapsed = match (parts.live, origin) {
        (true, _) => started.elapsed(),
        (false, Some(start)) => end.saturating_sub(start),
        (false, None) => Duration::ZERO,
    };
    let names = names_of(&decider.pods);
    // The last, partial interval: the intervals add up to the summary.
    if !interval.is_empty() {
        emit(&interval.report(ReportKind::Interval, elapsed.as_secs_f64(), &names))?;
    }
    let mut summary = whole.report(ReportKind::Summary, elapsed.as_secs_f64(), &names);
    summary.pending = pending as u64;
    Ok(summary)
}

/// What the loop keeps between packets to count decided queries without
/// allocating: the batch vector, and the pod of each client address (asked
/// of the namer once per address and interval).
#[derive(Default)]
struct Decider {
    batch: Vec<super::matcher::Decided>,
    pods: FastMap<IpAddr, Option<PodName>>,
}

/// Counts the matcher's decided queries everywhere.
fn decide(
    matcher: &mut Matcher,
    parts: &mut Parts,
    totals: &Arc<Mutex<Totals>>,
    spans: (&mut Span, &mut Span),
    decider: &mut Decider,
) {
    matcher.swap_decided(&mut decider.batch);
    if decider.batch.is_empty() {
        return;
    }
    let Ok(mut totals) = totals.lock() else { return };
    let (interval, whole) = spans;
    for d in &decider.batch {
        interval.record(d);
        whole.record(d);
        let ip = d.client.ip();
        let pod = decider.pods.entry(ip).or_insert_with(|| parts.namer.name(ip));
        add_to_totals(&mut totals, d, pod);
    }
    decider.batch.clear();
}

fn set_drops(totals: &Arc<Mutex<Totals>>, drops: u64) {
    if let Ok(mut totals) = totals.lock() {
        totals.capture_drops = drops;
    }
}

/// The pod names known, for a report.
fn names_of(pods: &FastMap<IpAddr, Option<PodName>>) -> impl Fn(IpAddr) -> Option<PodName> + '_ {
    move |address| pods.get(&address).cloned().flatten()
}

/// Now, since the Unix epoch (the clock packet timestamps use).
pub fn wall_clock() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// A Service view from the Service's ClusterIPs and port and endpoints.
pub fn service_view(cluster_ips: &[IpAddr], port: u16, endpoints: &[SocketAddr]) -> ServiceView {
    ServiceView {
        service_addrs: cluster_ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
        endpoints: endpoints.iter().copied().collect(),
        unreachable: HashSet::new(),
    }
}
