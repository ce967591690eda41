//! `ctdiag stale`: the UDP conntrack entries of a Service whose DNAT target
//! is not a current endpoint, found entry by entry as a streamed dump
//! arrives, and their exact deletion.
//!
//! An entry whose original destination is the ClusterIP:port is
//! - **live** when its reply source (the DNAT target) is a current
//!   endpoint;
//! - **stale, dead endpoint** when the reply source is anything else;
//! - **stale, never translated** when the reply source is the ClusterIP
//!   itself while the Service has endpoints (created while it had none).
//!
//! Memory does not grow with the table: every count (per verdict, per
//! DNAT target, per client address) is exact, but at most [`MAX_LISTED`]
//! stale entries (and as many live ones with `--all-entries`) are kept per
//! Service for the list, the table and the prompt; the report says how
//! many were not kept. `--all-entries -o json` lists every entry anyway:
//! beyond the cap the rows are written out as the dump delivers them
//! ([`stream`]). A flush deletes each stale entry by its reply tuple, zone
//! and the id the scan saw (see [`delete_request`] for why the reply
//! tuple), so an entry recreated under the same original tuple since the
//! scan is never touched, then scans again; when the scan kept only part
//! of the stale entries, the flush deletes them in batches of at most
//! [`FLUSH_BATCH`], each batch taken from a fresh scan, until a scan finds
//! none.

pub mod clients;
pub mod reach;
pub mod stream;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::conntrack::entry::{
    decode_entry, delete_request, family_of, unfiltered_request, DumpFilter, Entry, AF_INET,
    AF_INET6, IPPROTO_UDP,
};
use crate::conntrack::socket::{
    AckOutcome, CtnetlinkSocket, DumpEvent, DumpSource, RawMessage, DUMP_DEADLINE,
    IPCTNL_MSG_CT_NEW, NFNL_SUBSYS_CTNETLINK,
};
use crate::conntrack::stats::read_fill_on;
use crate::conntrack::ConntrackError;
use crate::error::{Error, Result};
use crate::findings::{Finding, FindingCode, Severity};
use crate::netns::{run_in, Netns};
use crate::service::select::{resolve, Selector};
use crate::service::{Protocol, ProxyMode, Service};
use clients::{Client, ClientIndex};
use reach::Unreachable;

/// Most kernel-filtered dumps per address family; more Services of a family
/// share one dump filtered on the protocol only. Why 4: each dump walks the
/// whole table in the kernel, so a handful is cheaper than decoding every
/// UDP entry, and many are not.
const MAX_FILTERED_DUMPS: usize = 4;
/// Most distinct DNAT targets summarized per Service; more are counted
/// together.
const MAX_TARGETS: usize = 4096;
/// Most notes kept about undecodable entries or failed deletes.
const MAX_NOTES: usize = 5;
/// Most stale entries, and most live entries (with `--all-entries`), kept
/// in memory per Service for the report's list, the table and the flush
/// prompt. Why 1,000: more rows than anyone reads in a table, about 120 KiB
/// of entries; the counts stay exact beyond it, and the rest is streamed
/// (`--all-entries -o json`) or deleted in batches (`--flush`).
pub const MAX_LISTED: usize = 1000;
/// Most stale entries one pass of a flush keeps to delete, when the first
/// scan could not keep them all (about 1.2 MiB of entries; 100,000 stale
/// entries take 10 passes, each a fresh dump).
pub const FLUSH_BATCH: usize = 10_000;
/// Most distinct client addresses counted per Service and reason; entries
/// of further addresses are counted together.
const MAX_CLIENTS: usize = 4096;
/// The request name in errors.
const REQUEST_DUMP: &str = "IPCTNL_MSG_CT_GET (conntrack dump)";
/// The delete request name in errors.
const REQUEST_DELETE: &str = "IPCTNL_MSG_CT_DELETE";

/// What `ctdiag stale` was asked to do, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleConfig {
    /// Which Service ports.
    pub selector: Selector,
    /// The node's namespace (conntrack and kube-proxy rules), as typed.
    pub netns: Option<String>,
    /// Delete the stale entries (after `confirm` says yes).
    pub flush: bool,
    /// List live entries too.
    pub all_entries: bool,
    /// The command line that selects the same Services, for remedies
    /// (`ctdiag stale --netns X --service kube-dns`), without `--flush`.
    pub command: String,
}

/// Why an entry is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Its reply source is a current endpoint.
    Live,
    /// Its reply source is not a current endpoint.
    DeadEndpoint,
    /// Its reply source is the ClusterIP itself while the Service has
    /// endpoints: created while it had none, never DNATed.
    NeverTranslated,
    /// Not translated, and the Service has no endpoints now: nothing better
    /// exists (not stale yet; it will be once endpoints return).
    Untranslated,
}

impl Verdict {
    /// Whether the entry is stale.
    pub fn is_stale(self) -> bool {
        matches!(self, Verdict::DeadEndpoint | Verdict::NeverTranslated)
    }

    /// The report's `reason`.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Verdict::DeadEndpoint => Some("dead-endpoint"),
            Verdict::NeverTranslated => Some("never-translated"),
            Verdict::Live | Verdict::Untranslated => None,
        }
    }
}

/// Classifies an entry to `service` (ClusterIP:port) against the Service's
/// current endpoints.
pub fn classify(entry: &Entry, service: SocketAddr, endpoints: &[SocketAddr]) -> Verdict {
    let target = entry.reply.source();
    if target == service {
        if endpoints.is_empty() {
            Verdict::Untranslated
        } else {
            Verdict::NeverTranslated
        }
    } else if endpoints.contains(&target) {
        Verdict::Live
    } else {
        Verdict::DeadEndpoint
    }
}

/// One ClusterIP:port of a Service port: what entries are matched against.
#[derive(Debug, Clone)]
struct Target {
    service: Service,
    cluster_ip: IpAddr,
    port: u16,
    /// The endpoints of the ClusterIP's address family.
    endpoints: Vec<SocketAddr>,
}

impl Target {
    fn address(&self) -> SocketAddr {
        SocketAddr::new(self.cluster_ip, self.port)
    }

    fn family(&self) -> u8 {
        if self.cluster_ip.is_ipv4() {
            AF_INET
        } else {
            AF_INET6
        }
    }
}

/// One dump of the scan: a family, what the kernel is asked to filter,
/// and the targets it serves.
#[derive(Debug, Clone)]
struct Plan {
    filter: DumpFilter,
    targets: Vec<usize>,
}

/// The dumps for `targets`: per family, one kernel-filtered dump per
/// target when there are few, else one dump of the family's UDP entries.
/// IPv6 dumps never ask the kernel to match the address: on Linux 6.18
/// (and the kernels before it that have CTA_FILTER) that comparison is
/// inverted and drops exactly the matching entries (see
/// tests/fixtures/netlink/README.md); the port is matched correctly.
fn plan(targets: &[Target]) -> Vec<Plan> {
    let mut plans = Vec::new();
    for family in [AF_INET, AF_INET6] {
        let of_family: Vec<usize> =
            (0..targets.len()).filter(|i| targets[*i].family() == family).collect();
        if of_family.is_empty() {
            continue;
        }
        if of_family.len() <= MAX_FILTERED_DUMPS {
            for index in of_family {
                let target = &targets[index];
                plans.push(Plan {
                    filter: DumpFilter {
                        family,
                        protocol: IPPROTO_UDP,
                        dst: (family == AF_INET).then_some(target.cluster_ip),
                        dst_port: Some(target.port),
                    },
                    targets: vec![index],
                });
            }
        } else {
            plans.push(Plan {
                filter: DumpFilter { family, protocol: IPPROTO_UDP, dst: None, dst_port: None },
                targets: of_family,
            });
        }
    }
    plans
}

/// Per DNAT target: entries and how many of them are stale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TargetCount {
    entries: u64,
    stale: u64,
}

/// Which entries a scan keeps in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Keep {
    /// List live entries too (`--all-entries`).
    live: bool,
    /// Most stale entries kept per target.
    stale_limit: usize,
    /// Most live entries kept per target (when `live`).
    live_limit: usize,
}

impl Keep {
    /// The report's list: stale entries, and live ones when `live`, at
    /// most [`MAX_LISTED`] of each.
    fn listing(live: bool) -> Keep {
        Keep { live, stale_limit: MAX_LISTED, live_limit: MAX_LISTED }
    }

    /// One batch of a flush: stale entries only.
    fn flush_batch() -> Keep {
        Keep { live: false, stale_limit: FLUSH_BATCH, live_limit: 0 }
    }
}

/// What [`Tally::take`] did with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    /// Counted only: a live entry without `--all-entries`.
    Counted,
    /// Counted and kept in the list.
    Kept,
    /// To be listed, but beyond the limit: counted, not kept.
    NotKept,
}

/// What one scan found for one target.
#[derive(Debug, Clone, Default)]
struct Tally {
    /// Entries the kernel returned in the dump(s) that served this target.
    scanned: u64,
    /// Entries that are not stale.
    live: u64,
    /// Untranslated entries while the Service has no endpoints (counted in
    /// `live`).
    untranslated: u64,
    /// Stale entries towards a target that is not an endpoint.
    dead: u64,
    /// Stale entries never translated.
    never: u64,
    /// The stale entries kept (the first ones of the dump, at most the
    /// scan's limit), for the report and the flush.
    stale: Vec<(Entry, Verdict)>,
    /// Live entries kept, only with `--all-entries`.
    listed_live: Vec<(Entry, Verdict)>,
    /// Entries to be listed that were beyond the limits (not kept).
    not_kept: u64,
    /// Entries per DNAT target (reply source).
    by_target: BTreeMap<SocketAddr, TargetCount>,
    /// Entries whose DNAT target did not fit in `by_target`.
    other_targets: TargetCount,
    /// Stale entries per verdict and client address.
    by_client: HashMap<(Verdict, IpAddr), u64>,
    /// Stale entries per verdict whose client address did not fit in
    /// `by_client`.
    other_clients: HashMap<Verdict, u64>,
}

impl Tally {
    /// Counts one entry and keeps it within `keep`'s limits.
    fn take(&mut self, entry: Entry, verdict: Verdict, keep: Keep) -> Taken {
        let stale = verdict.is_stale();
        let target = entry.reply.source();
        let slot = if self.by_target.len() < MAX_TARGETS || self.by_target.contains_key(&target) {
            self.by_target.entry(target).or_default()
        } else {
            &mut self.other_targets
        };
        slot.entries += 1;
        let (list, limit) = if stale {
            slot.stale += 1;
            if verdict == Verdict::DeadEndpoint {
                self.dead += 1;
            } else {
                self.never += 1;
            }
            let client = (verdict, entry.orig.src);
            if self.by_client.len() < MAX_CLIENTS || self.by_client.contains_key(&client) {
                *self.by_client.entry(client).or_default() += 1;
            } else {
                *self.other_clients.entry(verdict).or_default() += 1;
            }
            (&mut self.stale, keep.stale_limit)
        } else {
            self.live += 1;
            if verdict == Verdict::Untranslated {
                self.untranslated += 1;
            }
            if !keep.live {
                return Taken::Counted;
            }
            (&mut self.listed_live, keep.live_limit)
        };
        if list.len() < limit {
            list.push((entry, verdict));
            Taken::Kept
        } else {
            self.not_kept += 1;
            Taken::NotKept
        }
    }

    fn stale_count(&self) -> u64 {
        self.dead + self.never
    }

    /// Whether every stale entry the scan found is kept.
    fn stale_complete(&self) -> bool {
        self.stale.len() as u64 == self.stale_count()
    }
}

/// What a whole scan found.
#[derive(Debug, Clone, Default)]
struct Scan {
    tallies: Vec<Tally>,
    /// Every dump asked the kernel to filter and the kernel did.
    kernel_filter: bool,
    /// Why the kernel filter was not (fully) used.
    filter_notes: Vec<String>,
    /// Dump messages that did not decode into an entry.
    undecodable: u64,
    /// The first few reasons.
    undecodable_notes: Vec<String>,
    /// Dumps that had to be restarted (interrupted or overrun).
    restarts: u32,
}

/// The state of one dump attempt; dropped whole when the dump restarts.
struct DumpState<'a> {
    plan: &'a Plan,
    /// ClusterIP:port -> (target index, slot in `tallies`).
    by_address: HashMap<SocketAddr, (usize, usize)>,
    targets: &'a [Target],
    keep: Keep,
    filtered: bool,
    scanned: u64,
    outside_filter: u64,
    undecodable: u64,
    undecodable_notes: Vec<String>,
    tallies: Vec<Tally>,
    /// Per slot: whether its entries are being handed out as they come
    /// (once one was not kept, every listed one is).
    streaming: Vec<bool>,
}

impl<'a> DumpState<'a> {
    fn new(plan: &'a Plan, targets: &'a [Target], keep: Keep, filtered: bool) -> Self {
        DumpState {
            plan,
            by_address: plan
                .targets
                .iter()
                .enumerate()
                .map(|(slot, i)| (targets[*i].address(), (*i, slot)))
                .collect(),
            targets,
            keep,
            filtered,
            scanned: 0,
            outside_filter: 0,
            undecodable: 0,
            undecodable_notes: Vec::new(),
            tallies: vec![Tally::default(); plan.targets.len()],
            streaming: vec![false; plan.targets.len()],
        }
    }

    fn undecodable(&mut self, why: String) {
        self.undecodable += 1;
        if self.undecodable_notes.len() < MAX_NOTES {
            self.undecodable_notes.push(why);
        }
    }

    /// Decides on one dump message. Returns an entry to be listed that
    /// was not kept, or any entry to be listed once its slot is streaming,
    /// with the slot of its target.
    fn take(&mut self, raw: RawMessage<'_>) -> Option<(usize, Entry, Verdict)> {
        self.scanned += 1;
        let expected = u16::from(NFNL_SUBSYS_CTNETLINK) << 8 | u16::from(IPCTNL_MSG_CT_NEW);
        if raw.message_type != expected {
            self.undecodable(format!(
                "a message of type {:#06x} in the dump was skipped",
                raw.message_type
            ));
            return None;
        }
        let entry = match decode_entry(raw.family, raw.attributes) {
            Ok(entry) => entry,
            Err(why) => {
                self.undecodable(format!("an entry was skipped: {why}"));
                return None;
            }
        };
        let in_filter = self.plan.filter.matches(&entry);
        if self.filtered && !in_filter {
            self.outside_filter += 1;
        }
        // The userspace check runs whatever the kernel did.
        if !in_filter || entry.orig.protocol != IPPROTO_UDP {
            return None;
        }
        let (index, slot) = self.by_address.get(&entry.orig.destination()).copied()?;
        let target = self.targets.get(index)?;
        let verdict = classify(&entry, target.address(), &target.endpoints);
        let tally = self.tallies.get_mut(slot)?;
        match tally.take(entry, verdict, self.keep) {
            Taken::NotKept => Some((slot, entry, verdict)),
            Taken::Kept if self.streaming.get(slot) == Some(&true) => Some((slot, entry, verdict)),
            Taken::Kept | Taken::Counted => None,
        }
    }
}

/// Receives, during a scan, each entry to be listed that the scan does not
/// keep: the index of its target, what the target's tally holds so far,
/// the entry and its verdict. An error stops the scan.
type Overflow<'o> =
    dyn FnMut(usize, &Tally, &Entry, Verdict) -> std::result::Result<(), ConntrackError> + 'o;

/// Whether a dump error means the kernel refused the CTA_FILTER request
/// (a kernel that has CTA_FILTER but not a flag we use, or a policy that
/// rejects it), so that an unfiltered dump is worth trying.
fn filter_refused(error: &ConntrackError) -> bool {
    match error {
        ConntrackError::Kernel { errno, .. } => {
            matches!(*errno, libc::EINVAL | libc::EOPNOTSUPP | libc::ERANGE | libc::E2BIG)
        }
        ConntrackError::Unavailable(_) => true,
        _ => false,
    }
}

/// Runs every dump of `plans` on `socket` and classifies what comes back,
/// keeping at most [`MAX_LISTED`] stale (and, with `keep_live`, live)
/// entries per target.
fn scan(
    socket: &mut dyn DumpSource,
    targets: &[Target],
    plans: &[Plan],
    keep_live: bool,
) -> std::result::Result<Scan, ConntrackError> {
    scan_with(socket, targets, plans, Keep::listing(keep_live), None)
}

/// [`scan`] with explicit limits, and `overflow` for the entries to be
/// listed beyond them. Once `overflow` has taken an entry, a dump that
/// starts over cannot take it back: the scan then fails.
fn scan_with(
    socket: &mut dyn DumpSource,
    targets: &[Target],
    plans: &[Plan],
    keep: Keep,
    mut overflow: Option<&mut Overflow<'_>>,
) -> std::result::Result<Scan, ConntrackError> {
    let mut result = Scan {
        tallies: vec![Tally::default(); targets.len()],
        kernel_filter: true,
        ..Scan::default()
    };
    let mut use_filter = true;
    for plan in plans {
        loop {
            let request = if use_filter { plan.filter.request() } else { unfiltered_request() };
            let mut state = DumpState::new(plan, targets, keep, use_filter);
            let mut restarts = 0;
            let mut handed_out = false;
            let outcome = socket.dump_events(
                REQUEST_DUMP,
                family_of(plan.filter.family),
                &request,
                DUMP_DEADLINE,
                &mut |event| {
                    match event {
                        // Entries already handed to `overflow` (written
                        // out) cannot be taken back.
                        DumpEvent::Restart { attempt, .. } if handed_out => {
                            return Err(ConntrackError::DumpInconsistent {
                                request: REQUEST_DUMP,
                                attempts: attempt - 1,
                            });
                        }
                        // Everything of the abandoned attempt is void.
                        DumpEvent::Restart { .. } => {
                            restarts += 1;
                            state = DumpState::new(plan, targets, keep, use_filter);
                        }
                        DumpEvent::Message(raw) => {
                            if let Some((slot, entry, verdict)) = state.take(raw) {
                                if let (Some(hand), Some(index), Some(tally)) = (
                                    overflow.as_mut(),
                                    plan.targets.get(slot),
                                    state.tallies.get(slot),
                                ) {
                                    handed_out = true;
                                    hand(*index, tally, &entry, verdict)?;
                                    if let Some(streaming) = state.streaming.get_mut(slot) {
                                        *streaming = true;
                                    }
                                }
                            }
                        }
                    }
                    Ok(())
                },
            );
            match outcome {
                Ok(_) => {}
                Err(error) if use_filter && !handed_out && filter_refused(&error) => {
                    use_filter = false;
                    result.kernel_filter = false;
                    result.filter_notes.push(format!(
                        "the kernel refused the filtered dump ({error}); every entry was dumped and filtered by ctdiag"
                    ));
                    continue;
                }
                Err(error) => return Err(error),
            }
            result.restarts += restarts;
            if state.outside_filter > 0 {
                result.kernel_filter = false;
                result.filter_notes.push(format!(
                    "the kernel sent {} of {} entries outside the CTA_FILTER it was given (it ignores CTA_FILTER: Linux < 5.8); ctdiag filtered them itself",
                    state.outside_filter, state.scanned
                ));
            }
            result.undecodable += state.undecodable;
            for note in state.undecodable_notes.drain(..) {
                if result.undecodable_notes.len() < MAX_NOTES {
                    result.undecodable_notes.push(note);
                }
            }
            for (slot, index) in plan.targets.iter().enumerate() {
                let mut taken = std::mem::take(&mut state.tallies[slot]);
                taken.scanned = state.scanned;
                merge(&mut result.tallies[*index], taken);
            }
            break;
        }
    }
    if !use_filter {
        result.kernel_filter = false;
    }
    Ok(result)
}

fn merge(into: &mut Tally, from: Tally) {
    into.scanned += from.scanned;
    into.live += from.live;
    into.untranslated += from.untranslated;
    into.dead += from.dead;
    into.never += from.never;
    into.stale.extend(from.stale);
    into.listed_live.extend(from.listed_live);
    into.not_kept += from.not_kept;
    for (client, count) in from.by_client {
        *into.by_client.entry(client).or_default() += count;
    }
    for (verdict, count) in from.other_clients {
        *into.other_clients.entry(verdict).or_default() += count;
    }
    for (target, count) in from.by_target {
        let slot = into.by_target.entry(target).or_default();
        slot.entries += count.entries;
        slot.stale += count.stale;
    }
    into.other_targets.entries += from.other_targets.entries;
    into.other_targets.stale += from.other_targets.stale;
}

/// One entry in the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EntryReport {
    /// The client, `ip:port`.
    pub src: String,
    /// The ClusterIP:port it was sent to.
    pub dst: String,
    /// The reply source: the DNAT target (the ClusterIP itself when never
    /// translated).
    pub reply_src: String,
    /// `ASSURED`, `UNREPLIED` or `SEEN_REPLY`.
    pub state: &'static str,
    /// Seconds to expiry.
    pub expires_s: Option<u32>,
    /// Conntrack zone.
    pub zone: u16,
    /// Connection mark.
    pub mark: Option<u32>,
    /// The kernel's id of the entry.
    pub id: Option<u32>,
    /// Whether it is stale.
    pub stale: bool,
    /// `dead-endpoint`, `never-translated` or null.
    pub reason: Option<&'static str>,
    /// The local pod that sent it, when its address is in a namespace on
    /// this node.
    pub client: Option<Client>,
}

/// Entries per DNAT target of a Service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TargetSummary {
    /// The DNAT target (reply source), `ip:port`; `other` for the targets
    /// beyond the summary's limit.
    pub target: String,
    /// Whether it is a current endpoint in the rules.
    pub in_rules: bool,
    /// Entries towards it.
    pub entries: u64,
    /// How many of them are stale.
    pub stale: u64,
    /// Why the node cannot reach it, for an endpoint in the rules that it
    /// cannot reach.
    pub unreachable: Option<String>,
}

/// What a flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlushReport {
    /// Entries the kernel deleted (acknowledged).
    pub deleted: u64,
    /// Entries already gone (`ENOENT`: expired, deleted by someone else,
    /// or replaced by a new entry under the same tuple, which is kept).
    pub already_gone: u64,
    /// Deletes that failed.
    pub failed: u64,
    /// Stale entries the scan after the flush still found.
    pub remaining: u64,
    /// The user answered no at the prompt: nothing was deleted.
    pub declined: bool,
    /// The first few failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl FlushReport {
    fn add(&mut self, other: &FlushReport) {
        self.deleted += other.deleted;
        self.already_gone += other.already_gone;
        self.failed += other.failed;
        self.remaining += other.remaining;
        self.declined |= other.declined;
        for error in &other.errors {
            if self.errors.len() < MAX_NOTES {
                self.errors.push(error.clone());
            }
        }
    }
}

/// The stale scan of one ClusterIP:port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceReport {
    /// `namespace/name:port-name` (the ClusterIP:port for an unnamed
    /// `--cluster-ip`).
    pub service: String,
    /// The ClusterIP.
    pub cluster_ip: IpAddr,
    /// The Service port.
    pub port: u16,
    /// Where the Service came from: `iptables`, `nftables` or `manual`.
    pub proxy_mode: ProxyMode,
    /// The current endpoints in the rules, `ip:port`.
    pub endpoints: Vec<String>,
    /// Entries the kernel returned for this Service's dump(s).
    pub scanned: u64,
    /// Whether the kernel filtered the dump (CTA_FILTER).
    pub kernel_filter: bool,
    /// Stale entries, and live ones with `--all-entries`: at most
    /// [`MAX_LISTED`] of each (the rest are counted, not listed).
    pub entries: Vec<EntryReport>,
    /// Present (true) when `entries` holds only part of the entries it
    /// would list: the first [`MAX_LISTED`] stale (and live) entries of the
    /// dump; `entries_not_listed` says how many more there are.
    #[serde(skip_serializing_if = "is_false")]
    pub entries_truncated: bool,
    /// Entries that `entries` would list but does not hold (present when
    /// truncated).
    #[serde(skip_serializing_if = "is_zero")]
    pub entries_not_listed: u64,
    /// Stale entries found.
    pub stale_count: u64,
    /// Entries that are not stale.
    pub live_count: u64,
    /// Entries per DNAT target.
    pub by_target: Vec<TargetSummary>,
    /// Endpoints in the rules the node cannot reach.
    pub unreachable_endpoints: Vec<Unreachable>,
    /// What was concluded about this Service.
    pub findings: Vec<Finding>,
    /// With `--flush`: what the flush did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush: Option<FlushReport>,
}

/// The whole `ctdiag stale` report: one Service port, or several (`--all`,
/// a Service with several UDP ports, a dual-stack Service) in the
/// `services` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleReport {
    /// The namespace scanned, as given.
    pub netns: Option<String>,
    /// Where the Services came from.
    pub source: String,
    /// Entries in the whole table when the scan started.
    pub table_entries: Option<u64>,
    /// Whether every dump was filtered by the kernel.
    pub kernel_filter: bool,
    /// One report per ClusterIP:port.
    pub services: Vec<ServiceReport>,
    /// Stale entries of all Services.
    pub stale_count: u64,
    /// Entries that are not stale, of all Services.
    pub live_count: u64,
    /// Every finding: each Service's, then those about the scan itself.
    pub findings: Vec<Finding>,
    /// With `--flush`: the totals.
    pub flush: Option<FlushReport>,
    /// Remarks (kernel filter, skipped entries, lookups not done).
    pub notes: Vec<String>,
    /// Whether JSON uses the `services` form (`--all` or more than one
    /// report).
    pub wrapped: bool,
}

impl StaleReport {
    /// The stale entries listed, over all Services.
    pub fn stale_entries(&self) -> impl Iterator<Item = (&ServiceReport, &EntryReport)> {
        self.services.iter().flat_map(|s| s.entries.iter().filter(|e| e.stale).map(move |e| (s, e)))
    }
}

impl Serialize for StaleReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        if let (false, [one]) = (self.wrapped, self.services.as_slice()) {
            // The one-Service form: the Service's object, with the scan's
            // context beside it.
            #[derive(serde::Serialize)]
            struct One<'a> {
                #[serde(flatten)]
                service: &'a ServiceReport,
                netns: &'a Option<String>,
                source: &'a str,
                table_entries: Option<u64>,
                notes: &'a [String],
            }
            return One {
                service: one,
                netns: &self.netns,
                source: &self.source,
                table_entries: self.table_entries,
                notes: &self.notes,
            }
            .serialize(serializer);
        }
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("services", &self.services)?;
        map.serialize_entry("stale_count", &self.stale_count)?;
        map.serialize_entry("live_count", &self.live_count)?;
        map.serialize_entry("kernel_filter", &self.kernel_filter)?;
        map.serialize_entry("findings", &self.findings)?;
        if let Some(flush) = &self.flush {
            map.serialize_entry("flush", flush)?;
        }
        map.serialize_entry("netns", &self.netns)?;
        map.serialize_entry("source", &self.source)?;
        map.serialize_entry("table_entries", &self.table_entries)?;
        map.serialize_entry("notes", &self.notes)?;
        map.end()
    }
}

/// Everything the scan needs between its steps.
struct Session {
    socket: CtnetlinkSocket,
    targets: Vec<Target>,
    plans: Vec<Plan>,
    source: String,
    notes: Vec<String>,
    table_entries: Option<u64>,
}

/// Opens the ctnetlink socket in the namespace (checking CAP_NET_ADMIN
/// first, before anything else is read), then resolves the Services.
fn open_session(config: &StaleConfig, netns: Option<&Netns>) -> Result<Session> {
    let (socket, fill) = run_in(netns, || -> std::result::Result<_, ConntrackError> {
        let mut socket = CtnetlinkSocket::open()?;
        let fill = read_fill_on(&mut socket)?;
        Ok((socket, fill))
    })?
    .map_err(|error| match error {
        ConntrackError::PermissionDenied { .. } => Error::Privilege(
            "ctnetlink refused to list the conntrack table: CAP_NET_ADMIN is needed (in the namespace scanned); run as root".to_string(),
        ),
        other => Error::Conntrack(other),
    })?;
    let resolved = resolve(&config.selector, netns, &[Protocol::Udp])?;
    let mut targets = Vec::new();
    for service in &resolved.services {
        for cluster_ip in &service.cluster_ips {
            targets.push(Target {
                service: service.clone(),
                cluster_ip: *cluster_ip,
                port: service.port,
                endpoints: service
                    .endpoints
                    .iter()
                    .copied()
                    .filter(|e| e.is_ipv4() == cluster_ip.is_ipv4())
                    .collect(),
            });
        }
    }
    let plans = plan(&targets);
    let mut notes = resolved.notes;
    if !resolved.skipped.is_empty() {
        notes.push(format!(
            "{} kube-proxy rule(s) were not understood and skipped (-v in `ctdiag services` lists them)",
            resolved.skipped.len()
        ));
    }
    Ok(Session {
        socket,
        targets,
        plans,
        source: resolved.source,
        notes,
        table_entries: Some(fill.entries),
    })
}

/// Scans, asks `confirm` (with the report as it stands) before a flush,
/// flushes exactly the stale entries, scans again, and reports. Without
/// `config.flush`, `confirm` is never called and nothing is deleted.
/// `confirm` returning false deletes nothing. A scan that cannot complete
/// is an error (exit 2), never a report without stale entries.
pub fn run(
    config: &StaleConfig,
    confirm: &mut dyn FnMut(&StaleReport) -> bool,
) -> Result<StaleReport> {
    let netns = config.netns.as_deref().map(Netns::open).transpose()?;
    let mut session = open_session(config, netns.as_ref())?;
    let first = scan(&mut session.socket, &session.targets, &session.plans, config.all_entries)?;
    let listed = listed_addresses(&first);
    let clients = if listed.is_empty() {
        ClientIndex::default()
    } else {
        let peers = run_in(netns.as_ref(), clients::linked_namespaces).unwrap_or_default();
        ClientIndex::build(&listed, &peers)
    };
    let endpoint_addresses: Vec<IpAddr> = {
        let mut seen = HashSet::new();
        session
            .targets
            .iter()
            .flat_map(|t| t.endpoints.iter().map(|e| e.ip()))
            .filter(|ip| seen.insert(*ip))
            .collect()
    };
    let (unreachable, reach_notes) = reach::check(&endpoint_addresses, netns.as_ref());
    let mut notes = std::mem::take(&mut session.notes);
    notes.extend(reach_notes);
    notes.extend(clients.notes.iter().cloned());
    let context = Context {
        config,
        netns: config.netns.clone(),
        source: session.source.clone(),
        table_entries: session.table_entries,
        clients: &clients,
        unreachable: &unreachable,
        notes,
    };
    let before = context.report(&session.targets, &first, None);
    if !config.flush {
        return Ok(before);
    }
    let to_delete: u64 = first.tallies.iter().map(Tally::stale_count).sum();
    let flushes: Vec<FlushReport> = if to_delete == 0 {
        vec![FlushReport::default(); session.targets.len()]
    } else if !confirm(&before) {
        first
            .tallies
            .iter()
            .map(|t| FlushReport {
                remaining: t.stale_count(),
                declined: true,
                ..FlushReport::default()
            })
            .collect()
    } else {
        flush(&mut session.socket, &session.targets, &session.plans, &first)?
    };
    Ok(context.report(&session.targets, &first, Some(&flushes)))
}

/// Deletes every stale entry `first` found, and whatever a scan after it
/// still finds stale: the entries `first` kept, then, when it could not
/// keep them all, batches of at most [`FLUSH_BATCH`] from fresh scans,
/// until a scan finds none, a batch deletes nothing, or the passes run out
/// (one per batch of `first`'s count, and two more). Each entry is deleted
/// by reply tuple, zone and id as the scan saw it, so a pass never deletes
/// an entry it did not just classify as stale. `remaining`: what the last
/// scan found.
fn flush(
    socket: &mut CtnetlinkSocket,
    targets: &[Target],
    plans: &[Plan],
    first: &Scan,
) -> std::result::Result<Vec<FlushReport>, ConntrackError> {
    let mut flushes: Vec<FlushReport> =
        first.tallies.iter().map(|t| delete_all(socket, &t.stale)).collect();
    let found: u64 = first.tallies.iter().map(Tally::stale_count).sum();
    let complete = first.tallies.iter().all(Tally::stale_complete);
    let passes = if complete { 1 } else { found / FLUSH_BATCH as u64 + 3 };
    for pass in 1..=passes {
        let after = scan_with(socket, targets, plans, Keep::flush_batch(), None)?;
        let stale: u64 = after.tallies.iter().map(Tally::stale_count).sum();
        if stale == 0 || pass == passes {
            for (flush, tally) in flushes.iter_mut().zip(&after.tallies) {
                flush.remaining = tally.stale_count();
            }
            break;
        }
        let mut progress = false;
        for (flush, tally) in flushes.iter_mut().zip(&after.tallies) {
            let batch = delete_all(socket, &tally.stale);
            progress |= batch.deleted + batch.already_gone > 0;
            flush.add(&batch);
        }
        if !progress {
            // Every delete of the batch failed: the next pass would find
            // the same entries. What remains is what this scan found.
            for (flush, tally) in flushes.iter_mut().zip(&after.tallies) {
                flush.remaining = tally.stale_count();
            }
            break;
        }
    }
    Ok(flushes)
}

/// Deletes each entry by tuple, zone and id; each delete is acknowledged.
fn delete_all(socket: &mut CtnetlinkSocket, stale: &[(Entry, Verdict)]) -> FlushReport {
    let mut flush = FlushReport::default();
    let fail = |flush: &mut FlushReport, why: String| {
        flush.failed += 1;
        if flush.errors.len() < MAX_NOTES {
            flush.errors.push(why);
        }
    };
    for (entry, _) in stale {
        let Some(request) = delete_request(entry) else {
            fail(
                &mut flush,
                format!(
                    "{} -> {}: the dump gave no CTA_ID, and without it a delete could hit a newer entry; not deleted",
                    entry.orig.source(),
                    entry.orig.destination()
                ),
            );
            continue;
        };
        match socket.request_ack(REQUEST_DELETE, family_of(entry.family), request) {
            Ok(AckOutcome::Acknowledged) => flush.deleted += 1,
            Ok(AckOutcome::NotFound) => flush.already_gone += 1,
            Err(error) => fail(
                &mut flush,
                format!("{} -> {}: {error}", entry.orig.source(), entry.orig.destination()),
            ),
        }
    }
    flush
}

/// Source addresses of the entries the report lists, and of every stale
/// entry counted per client.
fn listed_addresses(scan: &Scan) -> HashSet<IpAddr> {
    scan.tallies
        .iter()
        .flat_map(|t| {
            t.stale
                .iter()
                .chain(&t.listed_live)
                .map(|(entry, _)| entry.orig.src)
                .chain(t.by_client.keys().map(|(_, address)| *address))
        })
        .collect()
}

/// What the report is built from, besides the scan.
struct Context<'a> {
    config: &'a StaleConfig,
    netns: Option<String>,
    source: String,
    table_entries: Option<u64>,
    clients: &'a ClientIndex,
    unreachable: &'a [Unreachable],
    notes: Vec<String>,
}

impl Context<'_> {
    fn report(
        &self,
        targets: &[Target],
        scan: &Scan,
        flushes: Option<&[FlushReport]>,
    ) -> StaleReport {
        let mut services = Vec::new();
        for (index, (target, tally)) in targets.iter().zip(&scan.tallies).enumerate() {
            let flush = flushes.and_then(|f| f.get(index)).cloned();
            services.push(self.service_report(target, tally, scan.kernel_filter, flush));
        }
        let mut global = Vec::new();
        let mut notes = self.notes.clone();
        notes.extend(scan.filter_notes.iter().cloned());
        if !scan.kernel_filter {
            global.push(Finding::new(
                Severity::Info,
                FindingCode::KernelFilterUnavailable,
                "The kernel did not filter the conntrack dump; ctdiag filtered it itself",
                scan.filter_notes.join("; "),
                "Nothing to do: the result is the same. On a very large table the scan takes longer (the kernel-side filter, CTA_FILTER, needs Linux >= 5.8)",
            ));
        }
        if scan.undecodable > 0 {
            global.push(Finding::new(
                Severity::Info,
                FindingCode::UndecodableEntries,
                format!("{} dump message(s) could not be decoded and were skipped", scan.undecodable),
                scan.undecodable_notes.join("; "),
                "Compare with `conntrack -L -p udp`; if entries are missing here, report the kernel version and this message",
            ));
            notes.extend(scan.undecodable_notes.iter().cloned());
        }
        if scan.restarts > 0 {
            notes.push(format!(
                "the dump was restarted {} time(s) (interrupted or overrun); the result is from a complete dump",
                scan.restarts
            ));
        }
        let wrapped = matches!(self.config.selector, Selector::All) || services.len() != 1;
        let mut findings: Vec<Finding> =
            services.iter().flat_map(|s| s.findings.iter().cloned()).collect();
        findings.extend(global.iter().cloned());
        if !wrapped {
            if let Some(one) = services.first_mut() {
                one.findings.extend(global);
            }
        }
        let flush = flushes.map(|all| {
            let mut total = FlushReport::default();
            for one in all {
                total.add(one);
            }
            total
        });
        StaleReport {
            netns: self.netns.clone(),
            source: self.source.clone(),
            table_entries: self.table_entries,
            kernel_filter: scan.kernel_filter,
            stale_count: services.iter().map(|s| s.stale_count).sum(),
            live_count: services.iter().map(|s| s.live_count).sum(),
            services,
            findings,
            flush,
            notes,
            wrapped,
        }
    }

    fn entry_report(&self, entry: &Entry, verdict: Verdict) -> EntryReport {
        EntryReport {
            src: entry.orig.source().to_string(),
            dst: entry.orig.destination().to_string(),
            reply_src: entry.reply.source().to_string(),
            state: entry.state(),
            expires_s: entry.timeout,
            zone: entry.zone,
            mark: entry.mark,
            id: entry.id,
            stale: verdict.is_stale(),
            reason: verdict.reason(),
            client: self.clients.get(&entry.orig.src).cloned(),
        }
    }

    /// The entries a tally kept, in the report's order: stale first, then
    /// by DNAT target and client.
    fn entry_reports(&self, tally: &Tally) -> Vec<EntryReport> {
        let mut entries: Vec<EntryReport> = tally
            .stale
            .iter()
            .chain(&tally.listed_live)
            .map(|(entry, verdict)| self.entry_report(entry, *verdict))
            .collect();
        entries.sort_by(|a, b| {
            (!a.stale, &a.reply_src, &a.src).cmp(&(!b.stale, &b.reply_src, &b.src))
        });
        entries
    }

    fn service_report(
        &self,
        target: &Target,
        tally: &Tally,
        kernel_filter: bool,
        flush: Option<FlushReport>,
    ) -> ServiceReport {
        let name = target.service.port_name_string();
        let service = if target.service.cluster_ips.len() > 1 {
            format!("{name} ({})", target.cluster_ip)
        } else {
            name
        };
        let entries = self.entry_reports(tally);
        let unreachable: Vec<Unreachable> = self
            .unreachable
            .iter()
            .filter(|u| target.endpoints.iter().any(|e| e.ip() == u.endpoint))
            .cloned()
            .collect();
        let mut by_target: Vec<TargetSummary> = target
            .endpoints
            .iter()
            .map(|endpoint| {
                let count = tally.by_target.get(endpoint).copied().unwrap_or_default();
                TargetSummary {
                    target: endpoint.to_string(),
                    in_rules: true,
                    entries: count.entries,
                    stale: count.stale,
                    unreachable: unreachable
                        .iter()
                        .find(|u| u.endpoint == endpoint.ip())
                        .map(|u| u.why.clone()),
                }
            })
            .collect();
        for (address, count) in &tally.by_target {
            if !target.endpoints.contains(address) {
                by_target.push(TargetSummary {
                    target: address.to_string(),
                    in_rules: false,
                    entries: count.entries,
                    stale: count.stale,
                    unreachable: None,
                });
            }
        }
        if tally.other_targets.entries > 0 {
            by_target.push(TargetSummary {
                target: "other".into(),
                in_rules: false,
                entries: tally.other_targets.entries,
                stale: tally.other_targets.stale,
                unreachable: None,
            });
        }
        let mut report = ServiceReport {
            service,
            cluster_ip: target.cluster_ip,
            port: target.port,
            proxy_mode: target.service.proxy_mode,
            endpoints: target.endpoints.iter().map(ToString::to_string).collect(),
            scanned: tally.scanned,
            kernel_filter,
            entries,
            entries_truncated: tally.not_kept > 0,
            entries_not_listed: tally.not_kept,
            stale_count: tally.stale_count(),
            live_count: tally.live,
            by_target,
            unreachable_endpoints: unreachable,
            findings: Vec::new(),
            flush,
        };
        report.findings = self.findings(target, tally, &report);
        report
    }

    fn findings(&self, target: &Target, tally: &Tally, report: &ServiceReport) -> Vec<Finding> {
        let mut findings = Vec::new();
        let name = &report.service;
        let address = target.address();
        let flush_command = format!("{} --flush", self.config.command);
        let lasting = "Lasting fix: kube-proxy >= 1.32 deletes such entries itself through netlink when endpoints change (older versions run the conntrack binary, give up on errors such as \"such conntrack doesn't exist\", and skip Services without endpoints); node-local DNS (NodeLocal DNSCache) avoids the DNAT to CoreDNS for DNS altogether";
        let cross_check = format!(
            "`conntrack -L -p udp --orig-dst {} --orig-port-dst {}` lists them",
            target.cluster_ip, target.port
        );
        let flushed_all =
            report.flush.as_ref().is_some_and(|f| !f.declined && f.remaining == 0 && f.failed == 0);
        if !flushed_all {
            if tally.dead > 0 {
                let gone: Vec<String> = report
                    .by_target
                    .iter()
                    .filter(|t| !t.in_rules && t.stale > 0)
                    .map(|t| format!("{} ({} entries)", t.target, t.stale))
                    .collect();
                findings.push(Finding::new(
                    Severity::Critical,
                    FindingCode::StaleEntries,
                    format!(
                        "{} UDP conntrack entries of {name} send their clients' packets to {} that {} not an endpoint any more: {}",
                        tally.dead,
                        plural(gone.len(), "a DNAT target", "DNAT targets"),
                        if gone.len() == 1 { "is" } else { "are" },
                        self.blackholed(report, tally, Verdict::DeadEndpoint),
                    ),
                    format!(
                        "to {}; current endpoints: {}; {cross_check}",
                        gone.join(", "),
                        list_or_none(&report.endpoints)
                    ),
                    format!(
                        "Delete exactly these entries: `{flush_command}` (it shows them and asks first; add --yes without a terminal). {lasting}"
                    ),
                ));
            }
            if tally.never > 0 {
                findings.push(Finding::new(
                    Severity::Critical,
                    FindingCode::NeverTranslatedEntries,
                    format!(
                        "{} UDP conntrack entries of {name} were never DNATed (created while it had no endpoints) and still capture their clients' packets: {}",
                        tally.never,
                        self.blackholed(report, tally, Verdict::NeverTranslated),
                    ),
                    format!(
                        "reply source {address} (the ClusterIP itself) while the endpoints are {}; {cross_check}",
                        list_or_none(&report.endpoints)
                    ),
                    format!(
                        "Delete exactly these entries: `{flush_command}` (it shows them and asks first; add --yes without a terminal). kube-proxy skips Services without endpoints when it cleans conntrack, so these stay until deleted or idle for the UDP timeout. {lasting}"
                    ),
                ));
            }
        }
        if let Some(flush) = &report.flush {
            let found = report.stale_count;
            if flush.declined {
                // The stale findings above stand.
            } else if flush.remaining > 0 || flush.failed > 0 {
                findings.push(Finding::new(
                    Severity::Critical,
                    FindingCode::StaleEntriesRemain,
                    format!(
                        "The flush of {name} left {} stale entries behind",
                        flush.remaining
                    ),
                    format!(
                        "deleted {}, already gone {}, failed {}, still stale after the flush {}{}",
                        flush.deleted,
                        flush.already_gone,
                        flush.failed,
                        flush.remaining,
                        if flush.errors.is_empty() {
                            String::new()
                        } else {
                            format!("; first errors: {}", flush.errors.join("; "))
                        }
                    ),
                    format!(
                        "Run `{flush_command}` again; entries that come back at once mean a client is still being DNATed to a target that is not an endpoint: check the rules (`ctdiag stale -v`) and kube-proxy. {lasting}"
                    ),
                ));
            } else if found > 0 {
                findings.push(Finding::new(
                    Severity::Info,
                    FindingCode::StaleEntriesFlushed,
                    format!("Deleted the {found} stale entries of {name}; none remain"),
                    format!(
                        "deleted {}, already gone {} (expired, or replaced since the scan by a new entry, which was kept); a scan after the flush found none",
                        flush.deleted, flush.already_gone
                    ),
                    format!("Their clients' next packets from the same ports create new entries towards live endpoints. {lasting}"),
                ));
            }
        }
        for unreachable in &report.unreachable_endpoints {
            let count = tally
                .by_target
                .iter()
                .filter(|(a, _)| a.ip() == unreachable.endpoint)
                .map(|(_, c)| c.entries)
                .sum::<u64>();
            findings.push(Finding::new(
                Severity::Warning,
                FindingCode::EndpointUnreachable,
                format!(
                    "Endpoint {} of {name} is in the rules but the node cannot reach it: its {count} entries are live by the rules and dead in fact",
                    unreachable.endpoint
                ),
                unreachable.why.clone(),
                format!(
                    "Find the pod with IP {} (`kubectl get pods -A -o wide | grep -w {}`): if it is gone, kube-proxy has not removed it from the rules yet (check kube-proxy's logs); if it runs, its route or neighbour on this node is broken. Once it is out of the rules, `{flush_command}` deletes the entries towards it",
                    unreachable.endpoint, unreachable.endpoint
                ),
            ));
        }
        if target.endpoints.is_empty() {
            let pending = if tally.untranslated > 0 {
                format!(
                    "; {} untranslated entries of its clients will blackhole them once endpoints return: run `{flush_command}` then",
                    tally.untranslated
                )
            } else {
                String::new()
            };
            findings.push(Finding::new(
                Severity::Critical,
                FindingCode::ServiceNoEndpoints,
                format!("{name} has no endpoints in the rules: every packet its clients send to {address} fails"),
                format!("{} rules with no DNAT target for {address}{pending}", target.service.proxy_mode.as_str()),
                format!(
                    "Check the Service's pods and endpoints: `kubectl -n {ns} get endpointslices -l kubernetes.io/service-name={svc}` and `kubectl -n {ns} get pods -o wide`",
                    ns = if target.service.namespace.is_empty() { "NAMESPACE" } else { &target.service.namespace },
                    svc = if target.service.name.is_empty() { "NAME" } else { &target.service.name },
                ),
            ));
        }
        if findings.is_empty() {
            findings.push(Finding::new(
                Severity::Info,
                FindingCode::NoStaleEntries,
                format!("No stale UDP conntrack entries for {name}"),
                format!(
                    "{} entries to {address}, all towards current endpoints ({})",
                    report.live_count,
                    list_or_none(&report.endpoints)
                ),
                "Nothing to do",
            ));
        }
        findings
    }

    /// Who sent from `address`: the pod (or namespace) holding it, else
    /// the address as an entry's `src` writes it.
    fn who(&self, address: IpAddr) -> String {
        match self.clients.get(&address) {
            Some(client) => match &client.hostname {
                Some(host) => format!("pod {host} in {}", client.netns),
                None => format!("netns {}", client.netns),
            },
            None => match address {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            },
        }
    }

    /// "3 clients (198.18.1.2:40001 t-client, ...)" for the stale entries of
    /// one verdict: the count per client from the scan's exact tally, the
    /// sample sources from the entries listed.
    fn blackholed(&self, report: &ServiceReport, tally: &Tally, verdict: Verdict) -> String {
        let reason = verdict.reason();
        // who -> (stale entries, the first sources listed)
        let mut clients: BTreeMap<String, (u64, Vec<&str>)> = BTreeMap::new();
        for ((_, address), count) in tally.by_client.iter().filter(|((v, _), _)| *v == verdict) {
            clients.entry(self.who(*address)).or_default().0 += count;
        }
        for entry in report.entries.iter().filter(|e| e.stale && e.reason == reason) {
            let Ok(source) = entry.src.parse::<SocketAddr>() else { continue };
            let samples = &mut clients.entry(self.who(source.ip())).or_default().1;
            if samples.len() < 3 {
                samples.push(&entry.src);
            }
        }
        let mut text = String::new();
        for (index, (who, (count, shown))) in clients.iter().enumerate() {
            if index == 5 {
                let _ = write!(text, ", and {} more", clients.len() - 5);
                break;
            }
            if index > 0 {
                text.push_str(", ");
            }
            let rest = count.saturating_sub(shown.len() as u64);
            if shown.is_empty() {
                // None of its entries is among those kept.
                let _ = write!(text, "{who} ({count} entries)");
                continue;
            }
            let more = if rest > 0 { format!(" +{rest}") } else { String::new() };
            let _ = write!(text, "{who} ({}{more})", shown.join(" "));
        }
        if let Some(others) = tally.other_clients.get(&verdict) {
            let _ = write!(text, ", and {others} entries of further clients (not counted apart)");
        }
        format!("{} blackholed: {text}", plural(clients.len(), "1 client", "clients"))
    }
}

fn is_false(value: &bool) -> bool {
    !value
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// `one` for 1, `N many` otherwise.
fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        one.to_string()
    } else {
        format!("{n} {many}")
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests;
