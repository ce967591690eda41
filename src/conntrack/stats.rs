//! conntrack counters: per-CPU statistics and the table fill, from
//! ctnetlink (`IPCTNL_MSG_CT_GET_STATS_CPU`, `IPCTNL_MSG_CT_GET_STATS`) or
//! from `/proc/net/stat/nf_conntrack` when ctnetlink is refused.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};

use netlink_packet_core::Nla;
use netlink_packet_netfilter::conntrack::ConntrackMessage;
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner};

pub use super::procfs::read_stats_procfs;
use super::socket::{CtSocket, IPCTNL_MSG_CT_GET_STATS, IPCTNL_MSG_CT_GET_STATS_CPU};
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

    /// `self - before` per attribute, for attributes present in both.
    /// Counters that went backwards (a CPU went offline, a wrap) give 0.
    pub fn delta_since(&self, before: &Counters) -> Counters {
        Counters(
            self.0
                .iter()
                .filter_map(|(attr, now)| {
                    before.get(*attr).map(|then| (*attr, now.saturating_sub(then)))
                })
                .collect(),
        )
    }

    /// `(name, value)` pairs in attribute order.
    pub fn named(&self) -> impl Iterator<Item = (std::borrow::Cow<'static, str>, u64)> + '_ {
        self.0.iter().map(|(attr, value)| (counter_name(*attr), *value))
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
/// first; when ctnetlink is refused or fails, procfs, with a note saying so.
pub fn read_stats() -> Result<StatsSnapshot, ConntrackError> {
    let netlink_error = match read_stats_netlink() {
        Ok(snapshot) => return Ok(snapshot),
        Err(e) => e,
    };
    let denied = matches!(netlink_error, ConntrackError::PermissionDenied { .. });
    match read_stats_procfs() {
        Ok(mut snapshot) => {
            snapshot.notes.push(if denied {
                "ctnetlink refused the request (CAP_NET_ADMIN is needed); the counters were read \
                 from /proc/net/stat/nf_conntrack instead"
                    .to_string()
            } else {
                format!("ctnetlink failed ({netlink_error}); the counters were read from /proc/net/stat/nf_conntrack instead")
            });
            Ok(snapshot)
        }
        Err(procfs_error) if denied => Err(ConntrackError::PermissionDenied {
            fallback: format!("; the procfs fallback failed too: {procfs_error}"),
        }),
        Err(_) => Err(netlink_error),
    }
}

/// Reads the counters over ctnetlink: `IPCTNL_MSG_CT_GET_STATS_CPU` (one
/// message per CPU) and `IPCTNL_MSG_CT_GET_STATS` (entries, max).
pub fn read_stats_netlink() -> Result<StatsSnapshot, ConntrackError> {
    let mut socket = CtSocket::open()?;
    let per_cpu = socket.dump(
        "IPCTNL_MSG_CT_GET_STATS_CPU",
        AF_UNSPEC,
        ConntrackMessage::Other { message_type: IPCTNL_MSG_CT_GET_STATS_CPU, attributes: vec![] },
    )?;
    let mut cpus = per_cpu.iter().map(decode_cpu_stats).collect::<Result<Vec<_>, _>>()?;
    cpus.sort_by_key(|c| c.cpu);
    let global = socket.request(
        "IPCTNL_MSG_CT_GET_STATS",
        AF_UNSPEC,
        ConntrackMessage::Other { message_type: IPCTNL_MSG_CT_GET_STATS, attributes: vec![] },
    )?;
    let global = global.first().ok_or(ConntrackError::Malformed {
        request: "IPCTNL_MSG_CT_GET_STATS",
        detail: "the kernel sent no statistics message".into(),
    })?;
    let (entries, max_entries) = decode_global_stats(global)?;
    Ok(StatsSnapshot { source: Source::Netlink, cpus, entries, max_entries, notes: Vec::new() })
}

/// `AF_UNSPEC`: the statistics are not per address family.
const AF_UNSPEC: u8 = 0;

/// The attributes of a conntrack message as (type, value) pairs, with the
/// NLA_F_NESTED / NLA_F_NET_BYTEORDER flag bits cleared.
fn raw_attributes(
    message: &NetfilterMessage,
    request: &'static str,
    expected_type: u8,
) -> Result<Vec<(u16, Vec<u8>)>, ConntrackError> {
    match &message.inner {
        NetfilterMessageInner::Conntrack(ConntrackMessage::Other { message_type, attributes })
            if *message_type == expected_type =>
        {
            Ok(attributes
                .iter()
                .map(|nla| {
                    let mut value = vec![0; nla.value_len()];
                    nla.emit_value(&mut value);
                    (nla.kind() & NLA_TYPE_MASK, value)
                })
                .collect())
        }
        other => Err(ConntrackError::Malformed {
            request,
            detail: format!("unexpected reply {other:?}"),
        }),
    }
}

/// `NLA_TYPE_MASK`: the attribute type without the flag bits.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// A big-endian counter: u32 as the kernel sends them (u64 accepted too).
fn be_counter(attr: u16, value: &[u8], request: &'static str) -> Result<u64, ConntrackError> {
    match value.len() {
        4 => Ok(u64::from(u32::from_be_bytes([value[0], value[1], value[2], value[3]]))),
        8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(value);
            Ok(u64::from_be_bytes(b))
        }
        n => Err(ConntrackError::Malformed {
            request,
            detail: format!("attribute {attr} ({}) has {n} bytes, expected 4", counter_name(attr)),
        }),
    }
}

/// Decodes one `IPCTNL_MSG_CT_GET_STATS_CPU` reply: the CPU from
/// `nfgenmsg.res_id`, one counter per attribute (unknown ones kept).
pub fn decode_cpu_stats(message: &NetfilterMessage) -> Result<CpuStats, ConntrackError> {
    const REQUEST: &str = "IPCTNL_MSG_CT_GET_STATS_CPU";
    let mut counters = Counters::default();
    for (attr, value) in raw_attributes(message, REQUEST, IPCTNL_MSG_CT_GET_STATS_CPU)? {
        counters.0.insert(attr, be_counter(attr, &value, REQUEST)?);
    }
    Ok(CpuStats { cpu: message.header.res_id, counters })
}

/// Decodes the `IPCTNL_MSG_CT_GET_STATS` reply into (entries, max).
pub fn decode_global_stats(message: &NetfilterMessage) -> Result<(u64, u64), ConntrackError> {
    const REQUEST: &str = "IPCTNL_MSG_CT_GET_STATS";
    let (mut entries, mut max) = (None, None);
    for (attr, value) in raw_attributes(message, REQUEST, IPCTNL_MSG_CT_GET_STATS)? {
        match attr {
            CTA_STATS_GLOBAL_ENTRIES => entries = Some(be_counter(attr, &value, REQUEST)?),
            CTA_STATS_GLOBAL_MAX_ENTRIES => max = Some(be_counter(attr, &value, REQUEST)?),
            _ => {}
        }
    }
    match (entries, max) {
        (Some(entries), Some(max)) => Ok((entries, max)),
        _ => Err(ConntrackError::Malformed {
            request: REQUEST,
            detail: "entries or max_entries attribute missing".into(),
        }),
    }
}
