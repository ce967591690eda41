//! conntrack counters: per-CPU statistics and the table fill, from
//! ctnetlink (`IPCTNL_MSG_CT_GET_STATS_CPU`, `IPCTNL_MSG_CT_GET_STATS`) or
//! from `/proc/net/stat/nf_conntrack` when ctnetlink is refused.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};

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
/// first, procfs when ctnetlink is refused (with a note saying so).
pub fn read_stats() -> Result<StatsSnapshot, ConntrackError> {
    Err(ConntrackError::Unavailable("not implemented yet".into()))
}

/// Reads the counters from procfs only.
pub fn read_stats_procfs() -> Result<StatsSnapshot, ConntrackError> {
    Err(ConntrackError::Unavailable("not implemented yet".into()))
}
