//! conntrack counters: per-CPU statistics and the table fill, from
//! ctnetlink (`IPCTNL_MSG_CT_GET_STATS_CPU`, `IPCTNL_MSG_CT_GET_STATS`) or
//! from `/proc/net/stat/nf_conntrack` when ctnetlink is refused.

pub mod report;

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};

use netlink_packet_core::{DefaultNla, Nla, NLA_TYPE_MASK};
use netlink_packet_netfilter::conntrack::ConntrackMessage;
use netlink_packet_netfilter::{NetfilterMessageInner, NetfilterProtoFamily};

use super::procfs::read_stats_procfs;
use super::socket::{CtnetlinkSocket, Reply, IPCTNL_MSG_CT_GET_STATS, IPCTNL_MSG_CT_GET_STATS_CPU};
use super::ConntrackError;

/// `CTA_STATS_*` attribute numbers (include/uapi/linux/netfilter/nfnetlink_conntrack.h).
pub const CTA_STATS_SEARCHED: u16 = 1;
/// Entries found on lookup.
pub const CTA_STATS_FOUND: u16 = 2;
/// Deprecated "new" counter.
pub const CTA_STATS_NEW: u16 = 3;
/// Packets that could not be tracked.
pub const CTA_STATS_INVALID: u16 = 4;
/// Deprecated "ignore" counter.
pub const CTA_STATS_IGNORE: u16 = 5;
/// Deprecated "delete" counter.
pub const CTA_STATS_DELETE: u16 = 6;
/// Deprecated "delete_list" counter.
pub const CTA_STATS_DELETE_LIST: u16 = 7;
/// Entries inserted (0 on current kernels).
pub const CTA_STATS_INSERT: u16 = 8;
/// Entries that lost the insert race and could not be resolved.
pub const CTA_STATS_INSERT_FAILED: u16 = 9;
/// Packets dropped because of a conntrack failure.
pub const CTA_STATS_DROP: u16 = 10;
/// Entries evicted early because the table was full.
pub const CTA_STATS_EARLY_DROP: u16 = 11;
/// Packets with errors (ICMP errors that matched nothing, ...).
pub const CTA_STATS_ERROR: u16 = 12;
/// Lookups restarted because a hash resize moved the chain.
pub const CTA_STATS_SEARCH_RESTART: u16 = 13;
/// Insert clashes the kernel resolved (>= 5.10).
pub const CTA_STATS_CLASH_RESOLVE: u16 = 14;
/// Inserts refused because a hash chain was too long (>= 5.15).
pub const CTA_STATS_CHAIN_TOOLONG: u16 = 15;

/// `CTA_STATS_GLOBAL_*` attributes of `IPCTNL_MSG_CT_GET_STATS`.
pub const CTA_STATS_GLOBAL_ENTRIES: u16 = 1;
/// The table size limit (`nf_conntrack_max`).
pub const CTA_STATS_GLOBAL_MAX_ENTRIES: u16 = 2;

/// The name `conntrack -S` prints for a per-CPU attribute, `unknownN` for
/// one it does not know.
pub fn counter_name(attr: u16) -> std::borrow::Cow<'static, str> {
    let name = match attr {
        CTA_STATS_SEARCHED => "searched",
        CTA_STATS_FOUND => "found",
        CTA_STATS_NEW => "new",
        CTA_STATS_INVALID => "invalid",
        CTA_STATS_IGNORE => "ignore",
        CTA_STATS_DELETE => "delete",
        CTA_STATS_DELETE_LIST => "delete_list",
        CTA_STATS_INSERT => "insert",
        CTA_STATS_INSERT_FAILED => "insert_failed",
        CTA_STATS_DROP => "drop",
        CTA_STATS_EARLY_DROP => "early_drop",
        CTA_STATS_ERROR => "error",
        CTA_STATS_SEARCH_RESTART => "search_restart",
        CTA_STATS_CLASH_RESOLVE => "clash_resolve",
        CTA_STATS_CHAIN_TOOLONG => "chaintoolong",
        other => return format!("unknown{other}").into(),
    };
    name.into()
}

/// A set of counters keyed by `CTA_STATS_*` attribute number. Only the
/// attributes the kernel sent are present: presence is how features
/// (clash_resolve, chaintoolong) are detected. Serializes as a map from the
/// `conntrack -S` name to the value, in attribute order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(pub BTreeMap<u16, u64>);

impl Counters {
    /// The value of one attribute, if the kernel sent it.
    pub fn get(&self, attr: u16) -> Option<u64> {
        self.0.get(&attr).copied()
    }

    /// Whether the kernel sent this attribute.
    pub fn has(&self, attr: u16) -> bool {
        self.0.contains_key(&attr)
    }

    /// Adds `other` into `self`, attribute by attribute (wrapping: the
    /// kernel's per-CPU counters are u32 and may wrap).
    pub fn accumulate(&mut self, other: &Counters) {
        for (attr, value) in &other.0 {
            let slot = self.0.entry(*attr).or_insert(0);
            *slot = slot.wrapping_add(*value);
        }
    }

    /// `self - before` per attribute, for attributes present in both,
    /// modulo 2^32 when the value went down: the kernel's counters are u32
    /// per CPU and wrap, so 4294967290 then 5 is +11, not 0. A sum over CPUs
    /// (see [`StatsSnapshot::total`]) wraps the same way modulo 2^32, so
    /// its delta is right as long as fewer than 2^32 events happened in
    /// between.
    pub fn delta_since(&self, before: &Counters) -> Counters {
        Counters(
            self.0
                .iter()
                .filter_map(|(attr, now)| {
                    before.get(*attr).map(|then| (*attr, counter_delta(then, *now)))
                })
                .collect(),
        )
    }

    /// `(name, value)` pairs in attribute order.
    pub fn named(&self) -> impl Iterator<Item = (std::borrow::Cow<'static, str>, u64)> + '_ {
        self.0.iter().map(|(attr, value)| (counter_name(*attr), *value))
    }
}

/// How far a kernel counter moved from `then` to `now`. Up: the plain
/// difference (so a counter a kernel sends as 8 bytes keeps its range).
/// Down: it wrapped at 2^32, and the distance is taken modulo 2^32.
pub fn counter_delta(then: u64, now: u64) -> u64 {
    if now >= then {
        now - then
    } else {
        now.wrapping_sub(then) & u64::from(u32::MAX)
    }
}

impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.named() {
            map.serialize_entry(&name, &value)?;
        }
        map.end()
    }
}

/// The counters of one CPU.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CpuStats {
    /// CPU number (`nfgenmsg.res_id` of its message).
    pub cpu: u16,
    /// Its counters.
    #[serde(flatten)]
    pub counters: Counters,
}

/// Where the counters came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// ctnetlink.
    Netlink,
    /// /proc/net/stat/nf_conntrack and /proc/sys/net/netfilter.
    Procfs,
}

/// One reading of the counters of a network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// ctnetlink or procfs.
    pub source: Source,
    /// Per-CPU counters, ordered by CPU.
    pub cpus: Vec<CpuStats>,
    /// Entries in the table now.
    pub entries: u64,
    /// The table limit.
    pub max_entries: u64,
    /// Why the fallback was used, and similar remarks for the user.
    pub notes: Vec<String>,
}

impl StatsSnapshot {
    /// The counters summed over all CPUs.
    pub fn total(&self) -> Counters {
        let mut total = Counters::default();
        for cpu in &self.cpus {
            total.accumulate(&cpu.counters);
        }
        total
    }
}

/// Reads the counters of the calling thread's network namespace: ctnetlink
/// first, procfs when ctnetlink is refused (with a note saying so).
pub fn read_stats() -> Result<StatsSnapshot, ConntrackError> {
    match read_stats_netlink() {
        Err(ConntrackError::PermissionDenied { .. }) => match read_stats_procfs() {
            Ok(mut snapshot) => {
                snapshot.notes.push(
                    "ctnetlink refused the request (CAP_NET_ADMIN is needed); the counters were read from /proc/net/stat/nf_conntrack instead"
                        .into(),
                );
                Ok(snapshot)
            }
            Err(procfs_error) => Err(ConntrackError::PermissionDenied {
                fallback: format!("; the procfs fallback failed too: {procfs_error}"),
            }),
        },
        other => other,
    }
}

/// Reads the counters from the given source only, with no fallback
/// (`ctdiag stats --procfs`).
pub fn read_stats_from(source: Source) -> Result<StatsSnapshot, ConntrackError> {
    match source {
        Source::Netlink => read_stats_netlink(),
        Source::Procfs => read_stats_procfs(),
    }
}

/// Request name of the per-CPU dump, for errors.
const REQUEST_STATS_CPU: &str = "IPCTNL_MSG_CT_GET_STATS_CPU";
/// Request name of the global statistics, for errors.
const REQUEST_STATS: &str = "IPCTNL_MSG_CT_GET_STATS";

/// Reads the counters over ctnetlink, on a socket opened in the calling
/// thread's network namespace.
pub fn read_stats_netlink() -> Result<StatsSnapshot, ConntrackError> {
    let mut socket = CtnetlinkSocket::open()?;
    read_stats_on(&mut socket)
}

/// Reads the counters over ctnetlink on an open socket: the per-CPU dump,
/// then the global fill.
pub fn read_stats_on(socket: &mut CtnetlinkSocket) -> Result<StatsSnapshot, ConntrackError> {
    let cpu_replies = socket.dump(
        REQUEST_STATS_CPU,
        NetfilterProtoFamily::Unspec,
        stats_request(IPCTNL_MSG_CT_GET_STATS_CPU),
    )?;
    let (cpus, mut notes) = decode_cpu_replies(&cpu_replies)?;
    let global_replies = socket.request(
        REQUEST_STATS,
        NetfilterProtoFamily::Unspec,
        stats_request(IPCTNL_MSG_CT_GET_STATS),
    )?;
    let global = decode_global_replies(&global_replies)?;
    if global.max_entries.is_none() {
        notes.push(
            "the kernel did not report the table limit (CTA_STATS_GLOBAL_MAX_ENTRIES)".into(),
        );
    }
    Ok(StatsSnapshot {
        source: Source::Netlink,
        cpus,
        entries: global.entries,
        max_entries: global.max_entries.unwrap_or(0),
        notes,
    })
}

/// The table fill only (`IPCTNL_MSG_CT_GET_STATS`) on an open socket: one
/// small request, which also tells whether ctnetlink answers at all
/// (`PermissionDenied` without CAP_NET_ADMIN).
pub fn read_fill_on(socket: &mut CtnetlinkSocket) -> Result<GlobalStats, ConntrackError> {
    let replies = socket.request(
        REQUEST_STATS,
        NetfilterProtoFamily::Unspec,
        stats_request(IPCTNL_MSG_CT_GET_STATS),
    )?;
    decode_global_replies(&replies)
}

/// A statistics request: no attributes, family `AF_UNSPEC`.
fn stats_request(message_type: u8) -> ConntrackMessage {
    ConntrackMessage::Other { message_type, attributes: Vec::new() }
}

/// The type and attributes of a ctnetlink message the crate has no type
/// for (statistics replies parse as `ConntrackMessage::Other`).
fn other_attributes(reply: &Reply) -> Option<(u8, &[DefaultNla])> {
    match &reply.message.inner {
        NetfilterMessageInner::Conntrack(ConntrackMessage::Other { message_type, attributes }) => {
            Some((*message_type, attributes.as_slice()))
        }
        _ => None,
    }
}

/// The attribute number without the `NLA_F_NESTED` / `NLA_F_NET_BYTEORDER`
/// flag bits, and the value bytes.
fn attribute_parts(attribute: &DefaultNla) -> (u16, Vec<u8>) {
    let mut value = vec![0; attribute.value_len()];
    attribute.emit_value(&mut value);
    (attribute.kind() & NLA_TYPE_MASK, value)
}

/// A big-endian counter: 4 bytes (every counter today) or 8 (tolerated in
/// case a kernel widens one). Anything else is `None`.
fn be_counter(value: &[u8]) -> Option<u64> {
    match value.len() {
        4 => value.try_into().ok().map(|bytes| u64::from(u32::from_be_bytes(bytes))),
        8 => value.try_into().ok().map(u64::from_be_bytes),
        _ => None,
    }
}

/// Decodes one `IPCTNL_MSG_CT_GET_STATS_CPU` reply message: the CPU number
/// from `nfgenmsg.res_id`, every attribute as a big-endian counter
/// (unknown numbers kept). An attribute of the wrong size is skipped and
/// described in the returned notes.
pub fn decode_cpu_reply(reply: &Reply) -> Result<(CpuStats, Vec<String>), ConntrackError> {
    let cpu = reply.message.header.res_id;
    let attributes = match other_attributes(reply) {
        Some((IPCTNL_MSG_CT_GET_STATS_CPU, attributes)) => attributes,
        _ => {
            return Err(ConntrackError::Malformed {
                request: REQUEST_STATS_CPU,
                detail: format!(
                    "expected message type {IPCTNL_MSG_CT_GET_STATS_CPU}, got {:#06x}",
                    reply.header.message_type
                ),
            })
        }
    };
    let mut counters = Counters::default();
    let mut notes = Vec::new();
    for attribute in attributes {
        let (kind, value) = attribute_parts(attribute);
        match be_counter(&value) {
            Some(number) => {
                counters.0.insert(kind, number);
            }
            None => notes.push(format!(
                "cpu {cpu}: ignored {} ({kind}): {} bytes where a 4-byte counter was expected",
                counter_name(kind),
                value.len()
            )),
        }
    }
    Ok((CpuStats { cpu, counters }, notes))
}

/// Decodes the messages of the per-CPU dump, ordered by CPU. Two messages
/// for the same CPU make the dump malformed.
pub fn decode_cpu_replies(
    replies: &[Reply],
) -> Result<(Vec<CpuStats>, Vec<String>), ConntrackError> {
    let mut cpus: Vec<CpuStats> = Vec::with_capacity(replies.len());
    let mut notes = Vec::new();
    for reply in replies {
        let (cpu, cpu_notes) = decode_cpu_reply(reply)?;
        if cpus.iter().any(|seen| seen.cpu == cpu.cpu) {
            return Err(ConntrackError::Malformed {
                request: REQUEST_STATS_CPU,
                detail: format!("cpu {} reported twice", cpu.cpu),
            });
        }
        cpus.push(cpu);
        notes.extend(cpu_notes);
    }
    if cpus.is_empty() {
        return Err(ConntrackError::Malformed {
            request: REQUEST_STATS_CPU,
            detail: "the dump held no CPU".into(),
        });
    }
    cpus.sort_by_key(|cpu| cpu.cpu);
    Ok((cpus, notes))
}

/// The table fill from `IPCTNL_MSG_CT_GET_STATS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalStats {
    /// `CTA_STATS_GLOBAL_ENTRIES`.
    pub entries: u64,
    /// `CTA_STATS_GLOBAL_MAX_ENTRIES`, absent on kernels that do not send it.
    pub max_entries: Option<u64>,
}

/// Decodes the reply to `IPCTNL_MSG_CT_GET_STATS`: exactly one message with
/// `CTA_STATS_GLOBAL_ENTRIES` (required) and `CTA_STATS_GLOBAL_MAX_ENTRIES`.
pub fn decode_global_replies(replies: &[Reply]) -> Result<GlobalStats, ConntrackError> {
    let malformed = |detail: String| ConntrackError::Malformed { request: REQUEST_STATS, detail };
    let [reply] = replies else {
        return Err(malformed(format!("expected one message, got {}", replies.len())));
    };
    let Some((IPCTNL_MSG_CT_GET_STATS, attributes)) = other_attributes(reply) else {
        return Err(malformed(format!(
            "expected message type {IPCTNL_MSG_CT_GET_STATS}, got {:#06x}",
            reply.header.message_type
        )));
    };
    let mut entries = None;
    let mut max_entries = None;
    for attribute in attributes {
        let (kind, value) = attribute_parts(attribute);
        let slot = match kind {
            CTA_STATS_GLOBAL_ENTRIES => &mut entries,
            CTA_STATS_GLOBAL_MAX_ENTRIES => &mut max_entries,
            _ => continue,
        };
        *slot = Some(be_counter(&value).ok_or_else(|| {
            malformed(format!("attribute {kind} has {} bytes, expected 4", value.len()))
        })?);
    }
    let entries =
        entries.ok_or_else(|| malformed("no CTA_STATS_GLOBAL_ENTRIES attribute".into()))?;
    Ok(GlobalStats { entries, max_entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::captures::*;
    use crate::conntrack::socket::{Expect, ReplyCollector};

    fn cpu_replies(datagram: &[u8]) -> Vec<Reply> {
        let mut collector =
            ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT, Expect::Done);
        collector.feed(datagram).unwrap();
        collector.feed(&CPU_DUMP_DONE).unwrap();
        collector.replies
    }

    fn global_replies(datagram: &[u8]) -> Vec<Reply> {
        let mut collector = ReplyCollector::new("test", GLOBAL_SEQUENCE, GLOBAL_PORT, Expect::Ack);
        collector.feed(datagram).unwrap();
        collector.feed(&GLOBAL_ACK).unwrap();
        collector.replies
    }

    /// What `conntrack -S` printed at capture time, per CPU.
    const CONNTRACK_S_AT_CAPTURE: [&str; 2] = [
        "found=0 invalid=12 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0",
        "found=0 invalid=28 insert=0 insert_failed=0 drop=0 early_drop=0 error=4 search_restart=0 clash_resolve=0 chaintoolong=0",
    ];

    fn render_like_conntrack_s(counters: &Counters) -> String {
        counters
            .named()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn per_cpu_decode_matches_conntrack_s() {
        let (cpus, notes) = decode_cpu_replies(&cpu_replies(&CPU_DUMP_DATAGRAM)).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(cpus.iter().map(|cpu| cpu.cpu).collect::<Vec<_>>(), [0, 1]);
        for (cpu, expected) in cpus.iter().zip(CONNTRACK_S_AT_CAPTURE) {
            assert_eq!(render_like_conntrack_s(&cpu.counters), expected);
        }
        assert!(cpus[0].counters.has(CTA_STATS_CLASH_RESOLVE));
        assert!(cpus[0].counters.has(CTA_STATS_CHAIN_TOOLONG));
        assert_eq!(cpus[1].counters.get(CTA_STATS_ERROR), Some(4));
    }

    #[test]
    fn global_decode() {
        let global = decode_global_replies(&global_replies(&GLOBAL_DATAGRAM)).unwrap();
        assert_eq!(global, GlobalStats { entries: 15, max_entries: Some(262_144) });
    }

    #[test]
    fn global_without_entries_is_malformed() {
        // Derived: CTA_STATS_GLOBAL_ENTRIES renumbered to 7 (unknown).
        let mut datagram = GLOBAL_DATAGRAM;
        datagram[22] = 7;
        let error = decode_global_replies(&global_replies(&datagram)).unwrap_err();
        assert!(matches!(error, ConntrackError::Malformed { .. }), "{error:?}");
    }

    #[test]
    fn unknown_attribute_is_kept_as_unknown_n() {
        // Derived: CTA_STATS_CHAIN_TOOLONG of CPU 0 renumbered to 16, which
        // no kernel sends yet.
        let mut datagram = CPU_DUMP_DATAGRAM;
        datagram[CPU_DUMP_MESSAGE1_LAST_NLA_TYPE] = 16;
        let (cpus, notes) = decode_cpu_replies(&cpu_replies(&datagram)).unwrap();
        assert!(notes.is_empty());
        assert_eq!(cpus[0].counters.get(16), Some(0));
        assert!(!cpus[0].counters.has(CTA_STATS_CHAIN_TOOLONG));
        assert!(cpus[0].counters.named().any(|(name, _)| name == "unknown16"));
        let json = serde_json::to_value(&cpus[0]).unwrap();
        assert_eq!(json["unknown16"], 0);
        assert_eq!(json["invalid"], 12);
        assert_eq!(json["cpu"], 0);
    }

    #[test]
    fn byte_order_flag_is_masked_from_the_attribute_number() {
        // Derived: NLA_F_NET_BYTEORDER (0x4000) set on CPU 0's CTA_STATS_INVALID.
        let mut datagram = CPU_DUMP_DATAGRAM;
        datagram[20 + 8 + 3] |= 0x40;
        let (cpus, _) = decode_cpu_replies(&cpu_replies(&datagram)).unwrap();
        assert_eq!(cpus[0].counters.get(CTA_STATS_INVALID), Some(12));
    }

    #[test]
    fn wrong_attribute_length_is_skipped_with_a_note() {
        // Derived: CPU 0's CTA_STATS_INVALID given nla_len 6 (a 2-byte
        // value, then 2 bytes of padding): still well-formed netlink.
        let mut datagram = CPU_DUMP_DATAGRAM;
        datagram[20 + 8] = 6;
        let (cpus, notes) = decode_cpu_replies(&cpu_replies(&datagram)).unwrap();
        assert!(!cpus[0].counters.has(CTA_STATS_INVALID));
        assert_eq!(cpus[0].counters.get(CTA_STATS_FOUND), Some(0));
        assert_eq!(cpus[1].counters.get(CTA_STATS_INVALID), Some(28));
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("invalid"), "{notes:?}");
    }

    #[test]
    fn attribute_running_past_the_message_is_an_error() {
        // Derived: CPU 0's last attribute claims 12 bytes, 4 more than the
        // message has.
        let mut datagram = CPU_DUMP_DATAGRAM;
        datagram[CPU_DUMP_MESSAGE1_LAST_NLA_TYPE - 2] = 12;
        let mut collector =
            ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT, Expect::Done);
        let error = ConntrackError::from(collector.feed(&datagram).unwrap_err());
        assert!(matches!(error, ConntrackError::Malformed { .. }), "{error:?}");
    }

    #[test]
    fn same_cpu_twice_is_malformed() {
        let mut datagram = CPU_DUMP_DATAGRAM;
        datagram[100 + 19] = 0; // message 2's res_id says CPU 0 too
        let error = decode_cpu_replies(&cpu_replies(&datagram)).unwrap_err();
        assert!(matches!(error, ConntrackError::Malformed { .. }), "{error:?}");
    }

    #[test]
    fn a_global_reply_is_not_a_cpu_reply() {
        let error = decode_cpu_replies(&global_replies(&GLOBAL_DATAGRAM)).unwrap_err();
        assert!(matches!(error, ConntrackError::Malformed { .. }), "{error:?}");
        assert!(decode_cpu_replies(&[]).is_err());
    }

    #[test]
    fn deltas_across_a_32_bit_wrap() {
        let max = u64::from(u32::MAX);
        assert_eq!(counter_delta(max - 5, 5), 11);
        assert_eq!(counter_delta(max, 0), 1);
        assert_eq!(counter_delta(7, 7), 0);
        assert_eq!(counter_delta(3, 10), 7);
        // Not capped at 2^32 when it only went up (an 8-byte counter).
        assert_eq!(counter_delta(1, 1 << 40), (1 << 40) - 1);

        // Two CPUs, CPU 0's insert_failed wraps: per CPU and in the sum.
        let cpu = |n: u16, insert_failed: u64, drop: u64| CpuStats {
            cpu: n,
            counters: Counters(
                [(CTA_STATS_INSERT_FAILED, insert_failed), (CTA_STATS_DROP, drop)].into(),
            ),
        };
        let snapshot = |cpus| StatsSnapshot {
            source: Source::Netlink,
            cpus,
            entries: 1,
            max_entries: 10,
            notes: vec![],
        };
        let before = snapshot(vec![cpu(0, max - 2, 4), cpu(1, 100, max)]);
        let after = snapshot(vec![cpu(0, 4, 4), cpu(1, 103, 1)]);
        let per_cpu = after.cpus[0].counters.delta_since(&before.cpus[0].counters);
        assert_eq!(per_cpu.get(CTA_STATS_INSERT_FAILED), Some(7));
        let total = after.total().delta_since(&before.total());
        assert_eq!(total.get(CTA_STATS_INSERT_FAILED), Some(7 + 3));
        assert_eq!(total.get(CTA_STATS_DROP), Some(2));
    }

    #[test]
    fn totals_and_deltas() {
        let (cpus, _) = decode_cpu_replies(&cpu_replies(&CPU_DUMP_DATAGRAM)).unwrap();
        let snapshot = StatsSnapshot {
            source: Source::Netlink,
            cpus,
            entries: 15,
            max_entries: 262_144,
            notes: vec![],
        };
        let total = snapshot.total();
        assert_eq!(total.get(CTA_STATS_INVALID), Some(40));
        assert_eq!(total.get(CTA_STATS_ERROR), Some(4));
        assert_eq!(total.delta_since(&snapshot.cpus[0].counters).get(CTA_STATS_INVALID), Some(28));
    }
}
