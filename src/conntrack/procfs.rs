//! The procfs fallback: `/proc/net/stat/nf_conntrack` (world-readable) and
//! `/proc/sys/net/netfilter/nf_conntrack_{count,max}`, for when ctnetlink
//! is refused (it needs CAP_NET_ADMIN).
//!
//! The file is a header row of column names and one row of hex numbers per
//! possible CPU. Column names differ between kernels (`searched` and
//! `delete_list` went away, `clashres` came in 5.10, `chainlength` in
//! 5.15), so columns are found by name and mapped to the ctnetlink
//! attribute that carries the same counter; columns ctnetlink no longer
//! sends are left out, so both paths give the same counters.

use std::path::Path;

use super::stats::{
    Counters, CpuStats, Source, StatsSnapshot, CTA_STATS_CHAIN_TOOLONG, CTA_STATS_CLASH_RESOLVE,
    CTA_STATS_DROP, CTA_STATS_EARLY_DROP, CTA_STATS_ERROR, CTA_STATS_FOUND, CTA_STATS_INSERT,
    CTA_STATS_INSERT_FAILED, CTA_STATS_INVALID, CTA_STATS_SEARCH_RESTART,
};
use super::ConntrackError;

/// The ctnetlink attribute carrying the counter of a procfs column, for the
/// columns ctnetlink sends.
fn column_attribute(column: &str) -> Option<u16> {
    Some(match column {
        "found" => CTA_STATS_FOUND,
        "invalid" => CTA_STATS_INVALID,
        "insert" => CTA_STATS_INSERT,
        "insert_failed" => CTA_STATS_INSERT_FAILED,
        "drop" => CTA_STATS_DROP,
        "early_drop" => CTA_STATS_EARLY_DROP,
        "icmp_error" => CTA_STATS_ERROR,
        "search_restart" => CTA_STATS_SEARCH_RESTART,
        "clashres" => CTA_STATS_CLASH_RESOLVE,
        "chainlength" => CTA_STATS_CHAIN_TOOLONG,
        _ => return None,
    })
}

/// Parses the text of `/proc/net/stat/nf_conntrack`. Row `i` belongs to the
/// `i`-th entry of `possible_cpus` (the kernel skips impossible CPUs, as
/// its ctnetlink dump does); without that list rows are numbered 0, 1, ...
pub fn parse_proc_stat(
    text: &str,
    possible_cpus: Option<&[u16]>,
) -> Result<Vec<CpuStats>, ConntrackError> {
    let bad = |detail: String| ConntrackError::Procfs { path: PROC_STAT.into(), detail };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> =
        lines.next().ok_or_else(|| bad("empty file".into()))?.split_whitespace().collect();
    if header.first() != Some(&"entries") {
        return Err(bad(format!("unexpected header {:?}", header.join(" "))));
    }
    let columns: Vec<(usize, u16)> = header
        .iter()
        .enumerate()
        .filter_map(|(i, name)| column_attribute(name).map(|attr| (i, attr)))
        .collect();
    let mut cpus = Vec::new();
    for (row, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != header.len() {
            return Err(bad(format!(
                "row {row} has {} columns, the header {}",
                fields.len(),
                header.len()
            )));
        }
        let mut counters = Counters::default();
        for &(i, attr) in &columns {
            let value = u64::from_str_radix(fields[i], 16).map_err(|_| {
                bad(format!("row {row}, column {}: {:?} is not hex", header[i], fields[i]))
            })?;
            counters.0.insert(attr, value);
        }
        let cpu = match possible_cpus {
            Some(list) => *list.get(row).ok_or_else(|| {
                bad(format!("{} rows but only {} possible CPUs", row + 1, list.len()))
            })?,
            None => u16::try_from(row).map_err(|_| bad("too many rows".into()))?,
        };
        cpus.push(CpuStats { cpu, counters });
    }
    if cpus.is_empty() {
        return Err(bad("no CPU rows".into()));
    }
    Ok(cpus)
}

/// Parses a kernel CPU list such as `0-3,5,7-8`.
pub fn parse_cpu_list(text: &str) -> Option<Vec<u16>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
                if b < a {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// The statistics file, relative to the thread's `/proc/.../net`.
const PROC_STAT: &str = "/proc/net/stat/nf_conntrack";

fn read_number(path: &str) -> Result<u64, ConntrackError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConntrackError::Procfs { path: path.into(), detail: e.to_string() })?;
    text.trim().parse().map_err(|_| ConntrackError::Procfs {
        path: path.into(),
        detail: format!("{:?} is not a number", text.trim()),
    })
}

/// Reads the counters of the calling thread's network namespace from
/// procfs.
pub fn read_stats_procfs() -> Result<StatsSnapshot, ConntrackError> {
    let path = crate::netns::proc_net_dir().join("stat/nf_conntrack");
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ConntrackError::Unavailable(format!(
            "{} does not exist: the nf_conntrack module is not loaded",
            path.display()
        )),
        _ => ConntrackError::Procfs { path: path.display().to_string(), detail: e.to_string() },
    })?;
    let possible = std::fs::read_to_string(Path::new("/sys/devices/system/cpu/possible"))
        .ok()
        .and_then(|t| parse_cpu_list(&t));
    let cpus = parse_proc_stat(&text, possible.as_deref())?;
    // Why /proc/sys and not the thread's directory: net sysctls follow the
    // namespace of the opening thread, so this is the thread's namespace.
    let entries = read_number("/proc/sys/net/netfilter/nf_conntrack_count")?;
    let max_entries = read_number("/proc/sys/net/netfilter/nf_conntrack_max")?;
    Ok(StatsSnapshot { source: Source::Procfs, cpus, entries, max_entries, notes: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::stats::counter_name;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/procfs/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn names(c: &Counters) -> Vec<String> {
        c.0.keys().map(|a| counter_name(*a).into_owned()).collect()
    }

    #[test]
    fn kernel_6_18_layout_maps_to_the_netlink_counters() {
        let cpus = parse_proc_stat(&fixture("linux-6.18.txt"), Some(&[0, 1])).unwrap();
        assert_eq!(cpus.len(), 2);
        assert_eq!(
            names(&cpus[0].counters),
            [
                "found",
                "invalid",
                "insert",
                "insert_failed",
                "drop",
                "early_drop",
                "error",
                "search_restart",
                "clash_resolve",
                "chaintoolong"
            ]
        );
        // Values from the fixture (hex): what `conntrack -S` printed for the
        // same state was clash_resolve=25 on cpu 0 and 35 on cpu 1.
        assert_eq!(cpus[1].cpu, 1);
        assert_eq!(cpus[0].counters.get(CTA_STATS_CLASH_RESOLVE), Some(25));
        assert_eq!(cpus[1].counters.get(CTA_STATS_CLASH_RESOLVE), Some(35));
        assert_eq!(cpus[1].counters.get(CTA_STATS_INVALID), Some(0));
    }

    #[test]
    fn old_kernel_without_clash_or_chain_columns() {
        let cpus = parse_proc_stat(&fixture("linux-4.19.txt"), None).unwrap();
        assert_eq!(cpus.len(), 4);
        assert!(!cpus[0].counters.has(CTA_STATS_CLASH_RESOLVE));
        assert!(!cpus[0].counters.has(CTA_STATS_CHAIN_TOOLONG));
        assert_eq!(cpus[2].counters.get(CTA_STATS_INSERT_FAILED), Some(0x1f4));
        assert_eq!(cpus[2].counters.get(CTA_STATS_DROP), Some(0x1f4));
        assert_eq!(cpus[2].counters.get(CTA_STATS_ERROR), Some(1));
        assert_eq!(cpus[0].counters.get(CTA_STATS_FOUND), Some(0x1e240));
    }

    #[test]
    fn kernel_5_10_has_clashres_but_no_chainlength() {
        let cpus = parse_proc_stat(&fixture("linux-5.10.txt"), None).unwrap();
        assert!(cpus[0].counters.has(CTA_STATS_CLASH_RESOLVE));
        assert!(!cpus[0].counters.has(CTA_STATS_CHAIN_TOOLONG));
        assert_eq!(cpus[1].counters.get(CTA_STATS_CLASH_RESOLVE), Some(0x10));
    }

    #[test]
    fn rows_follow_the_possible_cpu_list() {
        let cpus = parse_proc_stat(&fixture("linux-4.19.txt"), Some(&[0, 2, 4, 6])).unwrap();
        let ids: Vec<u16> = cpus.iter().map(|c| c.cpu).collect();
        assert_eq!(ids, [0, 2, 4, 6]);
        assert!(parse_proc_stat(&fixture("linux-4.19.txt"), Some(&[0])).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for text in [
            "",
            "\n\n",
            "nonsense header\n1 2\n",
            "entries found\n0000 zz\n",
            "entries found\n0000\n",
            "entries found\n",
            "entries found\n00000000 ffffffffffffffffff\n",
        ] {
            assert!(parse_proc_stat(text, None).is_err(), "{text:?}");
        }
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0-2,5,7-8"), Some(vec![0, 1, 2, 5, 7, 8]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }
}
