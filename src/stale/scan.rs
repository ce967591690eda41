//! The scan: the ctnetlink socket opened in the node's namespace, the
//! Services resolved into targets, the dumps planned (kernel-filtered where
//! the kernel can) and every entry counted and classified as it arrives.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use super::classify::{classify, Target, Verdict};
use super::{StaleConfig, FLUSH_BATCH, MAX_LISTED, MAX_NOTES};
use crate::conntrack::entry::{
    decode_entry, family_of, unfiltered_request, DumpFilter, Entry, AF_INET, AF_INET6, IPPROTO_UDP,
};
use crate::conntrack::socket::{
    CtnetlinkSocket, DumpEvent, DumpSource, RawMessage, DUMP_DEADLINE, IPCTNL_MSG_CT_NEW,
    NFNL_SUBSYS_CTNETLINK,
};
use crate::conntrack::stats::read_fill_on;
use crate::conntrack::ConntrackError;
use crate::error::{Error, Result};
use crate::netns::{run_in, Netns};
use crate::service::select::{resolve, Resolved};
use crate::service::{Protocol, ProxyMode};
/// Most kernel-filtered dumps per address family; more Services of a family
/// share one dump filtered on the protocol only. Why 4: each dump walks the
/// whole table in the kernel, so a handful is cheaper than decoding every
/// UDP entry, and many are not.
pub(super) const MAX_FILTERED_DUMPS: usize = 4;
/// Most distinct DNAT targets summarized per Service; more are counted
/// together.
pub(super) const MAX_TARGETS: usize = 4096;
/// Most distinct client addresses counted per Service and reason; entries
/// of further addresses are counted together.
pub(super) const MAX_CLIENTS: usize = 4096;
/// The request name in errors.
pub(super) const REQUEST_DUMP: &str = "IPCTNL_MSG_CT_GET (conntrack dump)";

/// One dump of the scan: a family, what the kernel is asked to filter,
/// and the targets it serves.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) filter: DumpFilter,
    pub(super) targets: Vec<usize>,
}

/// The dumps for `targets`: per family, one kernel-filtered dump per
/// target when there are few, else one dump of the family's UDP entries.
/// IPv6 dumps never ask the kernel to match the address: on Linux 6.18
/// (and the kernels before it that have CTA_FILTER) that comparison is
/// inverted and drops exactly the matching entries (see
/// tests/fixtures/netlink/README.md); the port is matched correctly.
pub(super) fn plan(targets: &[Target]) -> Vec<Plan> {
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
pub(super) struct TargetCount {
    pub(super) entries: u64,
    pub(super) stale: u64,
}

/// Which entries a scan keeps in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Keep {
    /// List live entries too (`--all-entries`).
    pub(super) live: bool,
    /// Most stale entries kept per target.
    pub(super) stale_limit: usize,
    /// Most live entries kept per target (when `live`).
    pub(super) live_limit: usize,
}

impl Keep {
    /// The report's list: stale entries, and live ones when `live`, at
    /// most [`MAX_LISTED`] of each.
    pub(super) fn listing(live: bool) -> Keep {
        Keep { live, stale_limit: MAX_LISTED, live_limit: MAX_LISTED }
    }

    /// One batch of a flush: stale entries only.
    pub(super) fn flush_batch() -> Keep {
        Keep { live: false, stale_limit: FLUSH_BATCH, live_limit: 0 }
    }
}

/// What [`Tally::take`] did with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Taken {
    /// Counted only: a live entry without `--all-entries`.
    Counted,
    /// Counted and kept in the list.
    Kept,
    /// To be listed, but beyond the limit: counted, not kept.
    NotKept,
}

/// What one scan found for one target.
#[derive(Debug, Clone, Default)]
pub(super) struct Tally {
    /// Entries the kernel returned in the dump(s) that served this target.
    pub(super) scanned: u64,
    /// Entries that are not stale.
    pub(super) live: u64,
    /// Stale entries towards a target that is not an endpoint.
    pub(super) dead: u64,
    /// Stale entries never translated.
    pub(super) never: u64,
    /// The stale entries kept (the first ones of the dump, at most the
    /// scan's limit), for the report and the flush.
    pub(super) stale: Vec<(Entry, Verdict)>,
    /// Live entries kept, only with `--all-entries`.
    pub(super) listed_live: Vec<(Entry, Verdict)>,
    /// Entries to be listed that were beyond the limits (not kept).
    pub(super) not_kept: u64,
    /// Entries per DNAT target (reply source).
    pub(super) by_target: BTreeMap<SocketAddr, TargetCount>,
    /// Entries whose DNAT target did not fit in `by_target`.
    pub(super) other_targets: TargetCount,
    /// Stale entries per verdict and client address.
    pub(super) by_client: HashMap<(Verdict, IpAddr), u64>,
    /// Stale entries per verdict whose client address did not fit in
    /// `by_client`.
    pub(super) other_clients: HashMap<Verdict, u64>,
}

impl Tally {
    /// Counts one entry and keeps it within `keep`'s limits.
    pub(super) fn take(&mut self, entry: Entry, verdict: Verdict, keep: Keep) -> Taken {
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

    pub(super) fn stale_count(&self) -> u64 {
        self.dead + self.never
    }

    /// Whether every stale entry the scan found is kept.
    pub(super) fn stale_complete(&self) -> bool {
        self.stale.len() as u64 == self.stale_count()
    }
}

/// What a whole scan found.
#[derive(Debug, Clone, Default)]
pub(super) struct Scan {
    pub(super) tallies: Vec<Tally>,
    /// Every dump asked the kernel to filter and the kernel did.
    pub(super) kernel_filter: bool,
    /// Why the kernel filter was not (fully) used.
    pub(super) filter_notes: Vec<String>,
    /// Dump messages that did not decode into an entry.
    pub(super) undecodable: u64,
    /// The first few reasons.
    pub(super) undecodable_notes: Vec<String>,
    /// Dumps that had to be restarted (interrupted or overrun).
    pub(super) restarts: u32,
}

/// The state of one dump attempt; dropped whole when the dump restarts.
pub(super) struct DumpState<'a> {
    pub(super) plan: &'a Plan,
    /// ClusterIP:port -> (target index, slot in `tallies`).
    pub(super) by_address: HashMap<SocketAddr, (usize, usize)>,
    pub(super) targets: &'a [Target],
    pub(super) keep: Keep,
    pub(super) filtered: bool,
    pub(super) scanned: u64,
    pub(super) outside_filter: u64,
    pub(super) undecodable: u64,
    pub(super) undecodable_notes: Vec<String>,
    pub(super) tallies: Vec<Tally>,
    /// Per slot: whether its entries are being handed out as they come
    /// (once one was not kept, every listed one is).
    pub(super) streaming: Vec<bool>,
}

impl<'a> DumpState<'a> {
    pub(super) fn new(plan: &'a Plan, targets: &'a [Target], keep: Keep, filtered: bool) -> Self {
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

    pub(super) fn undecodable(&mut self, why: String) {
        self.undecodable += 1;
        if self.undecodable_notes.len() < MAX_NOTES {
            self.undecodable_notes.push(why);
        }
    }

    /// Decides on one dump message. Returns an entry to be listed that
    /// was not kept, or any entry to be listed once its slot is streaming,
    /// with the slot of its target.
    pub(super) fn take(&mut self, raw: RawMessage<'_>) -> Option<(usize, Entry, Verdict)> {
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
pub(super) type Overflow<'o> =
    dyn FnMut(usize, &Tally, &Entry, Verdict) -> std::result::Result<(), ConntrackError> + 'o;

/// Whether a dump error means the kernel refused the CTA_FILTER request
/// (a kernel that has CTA_FILTER but not a flag we use, or a policy that
/// rejects it), so that an unfiltered dump is worth trying.
pub(super) fn filter_refused(error: &ConntrackError) -> bool {
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
pub(super) fn scan(
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
pub(super) fn scan_with(
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

pub(super) fn merge(into: &mut Tally, from: Tally) {
    into.scanned += from.scanned;
    into.live += from.live;
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

/// Everything the scan needs between its steps.
pub(super) struct Session {
    pub(super) socket: CtnetlinkSocket,
    pub(super) targets: Vec<Target>,
    pub(super) plans: Vec<Plan>,
    pub(super) source: String,
    pub(super) notes: Vec<String>,
    pub(super) table_entries: Option<u64>,
    /// Rules the read skipped as unreadable (a flush refuses them).
    pub(super) skipped: Vec<String>,
}

impl Session {
    /// Every endpoint address of the scanned Services, once each, in the
    /// order the Services name them (what the reachability check looks at).
    pub(super) fn endpoint_addresses(&self) -> Vec<std::net::IpAddr> {
        let mut seen = std::collections::HashSet::new();
        self.targets
            .iter()
            .flat_map(|t| t.endpoints.iter().map(|e| e.ip()))
            .filter(|ip| seen.insert(*ip))
            .collect()
    }
}

/// Opens the ctnetlink socket in the namespace (checking CAP_NET_ADMIN
/// first, before anything else is read), then resolves the Services.
pub(super) fn open_session(config: &StaleConfig, netns: Option<&Netns>) -> Result<Session> {
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
    let resolved = resolve_services(config, netns)?;
    let mut targets = super::sources::targets(&resolved.services);
    let (copies, legacy_notes) = legacy_copies(config, &resolved, netns);
    super::sources::add_copies(&mut targets, &copies, super::backends::LEGACY_LABEL);
    let plans = plan(&targets);
    let mut notes = resolved.notes;
    notes.extend(legacy_notes);
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
        skipped: resolved.skipped,
    })
}

/// The UDP Service ports `config` selects, from the rules of `config.from`
/// only when it names a mode.
pub(super) fn resolve_services(config: &StaleConfig, netns: Option<&Netns>) -> Result<Resolved> {
    let mut resolved = resolve(&config.selector, netns, &[Protocol::Udp])
        .map_err(|e| Error::Usage(e.message(&config.advice)))?;
    if let Some(mode) = config.from {
        let modes: BTreeSet<&'static str> =
            resolved.services.iter().map(|s| s.proxy_mode.as_str()).collect();
        resolved.services.retain(|s| s.proxy_mode == mode || s.proxy_mode == ProxyMode::Manual);
        if resolved.services.is_empty() {
            return Err(Error::Usage(format!(
                "--from {}: the Service is not in the {} rules; it is in the rules of: {}",
                mode.as_str(),
                mode.as_str(),
                modes.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(resolved)
}

/// The legacy iptables backend's copy of the Services (see
/// [`super::backends`]), unless `--from` names another mode.
fn legacy_copies(
    config: &StaleConfig,
    resolved: &Resolved,
    netns: Option<&Netns>,
) -> (Vec<crate::service::Service>, Vec<String>) {
    if config.from.is_some_and(|mode| mode != ProxyMode::Iptables) {
        return (Vec::new(), Vec::new());
    }
    super::backends::legacy_copies(&config.selector, resolved, netns)
}

/// Reads the rules again and adds to each target every endpoint this read
/// names for its ClusterIP:port (the union of the reads: an entry is only
/// deleted when its target is an endpoint in none of them). For a Service
/// given with `--cluster-ip` nothing changes. An error when the rules
/// cannot be read again: the flush then deletes nothing.
pub(super) fn reread(
    config: &StaleConfig,
    netns: Option<&Netns>,
    targets: &mut [Target],
    when: &str,
) -> Result<()> {
    if matches!(config.selector, crate::service::select::Selector::Manual(_)) {
        return Ok(());
    }
    let again = resolve_services(config, netns).map_err(|error| {
        Error::Runtime(format!(
            "the kube-proxy rules could not be read again {when} ({error}); nothing was deleted"
        ))
    })?;
    let mut fresh_targets = super::sources::targets(&again.services);
    let (copies, _) = legacy_copies(config, &again, netns);
    super::sources::add_copies(&mut fresh_targets, &copies, super::backends::LEGACY_LABEL);
    for fresh in fresh_targets {
        if let Some(target) = targets.iter_mut().find(|t| t.address() == fresh.address()) {
            let mut union: BTreeSet<SocketAddr> = target.endpoints.iter().copied().collect();
            union.extend(fresh.endpoints);
            target.endpoints = union.into_iter().collect();
        }
    }
    Ok(())
}

/// Source addresses of the entries the report lists, and of every stale
/// entry counted per client.
pub(super) fn listed_addresses(scan: &Scan) -> HashSet<IpAddr> {
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
