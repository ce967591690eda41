//! The procfs fallback: `/proc/net/stat/nf_conntrack` (world-readable, no
//! CAP_NET_ADMIN needed) and `/proc/sys/net/netfilter/nf_conntrack_{count,max}`.
//!
//! The file is a header row of column names and one row of hex numbers per
//! *possible* CPU. Why rows and CPU numbers need care: the kernel's seq
//! file (`ct_cpu_seq_start`/`ct_cpu_seq_next` in
//! net/netfilter/nf_conntrack_standalone.c) walks CPU numbers `0 ..
//! nr_cpu_ids` and skips those for which `cpu_possible()` is false, without
//! printing the CPU number. ctnetlink's per-CPU dump walks the same
//! possible CPUs and puts the number in `nfgenmsg.res_id`. So row `i` is the
//! `i`-th CPU of `/sys/devices/system/cpu/possible`, which is what makes the
//! two sources agree CPU by CPU even when possible CPUs are not contiguous.
//!
//! Column names changed over time ("searched" became "clashres" in 5.10,
//! "delete_list" became "chainlength" in 5.15); columns are matched by name
//! and mapped to the `CTA_STATS_*` numbers ctnetlink uses, so both sources
//! yield the same [`Counters`] on the same kernel. Columns ctnetlink no
//! longer sends (`searched`, `new`, `ignore`, `delete`, `delete_list`,
//! `expect_*`: the kernel prints 0 or keeps them procfs-only) are left out.

use std::path::{Path, PathBuf};

use super::stats::{
    Counters, CpuStats, Source, StatsSnapshot, CTA_STATS_CHAIN_TOOLONG, CTA_STATS_CLASH_RESOLVE,
    CTA_STATS_DROP, CTA_STATS_EARLY_DROP, CTA_STATS_ERROR, CTA_STATS_FOUND, CTA_STATS_INSERT,
    CTA_STATS_INSERT_FAILED, CTA_STATS_INVALID, CTA_STATS_SEARCH_RESTART,
};
use super::ConntrackError;

/// The statistics file, relative to the namespace's proc net directory.
pub const PROC_NET_STAT_FILE: &str = "stat/nf_conntrack";
/// Entries in the table now (per network namespace).
pub const SYSCTL_CONNTRACK_COUNT: &str = "/proc/sys/net/netfilter/nf_conntrack_count";
/// The table limit.
pub const SYSCTL_CONNTRACK_MAX: &str = "/proc/sys/net/netfilter/nf_conntrack_max";
/// The CPUs the kernel may ever bring up; one stat row each.
pub const SYS_CPU_POSSIBLE: &str = "/sys/devices/system/cpu/possible";

/// The `CTA_STATS_*` attribute a `/proc/net/stat/nf_conntrack` column
/// carries, `None` for columns ctnetlink does not send.
pub fn column_attribute(column: &str) -> Option<u16> {
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

/// `/proc/net/stat/nf_conntrack` parsed: rows numbered from 0 in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStatTable {
    /// The `entries` column (the same global count on every row), if there
    /// is one.
    pub entries: Option<u64>,
    /// One per row; `cpu` is the row index until [`assign_possible_cpus`]
    /// renumbers them.
    pub cpus: Vec<CpuStats>,
}

/// Parses the text of `/proc/net/stat/nf_conntrack`; CPUs are numbered by
/// row (0, 1, ...), which is right when the possible CPUs are `0-N`.
pub fn parse_proc_stat(text: &str) -> Result<Vec<CpuStats>, ConntrackError> {
    parse_proc_stat_table(text, "/proc/net/stat/nf_conntrack").map(|table| table.cpus)
}

/// Parses the text of the statistics file read from `path` (for errors).
pub fn parse_proc_stat_table(text: &str, path: &str) -> Result<ProcStatTable, ConntrackError> {
    let error = |detail: String| ConntrackError::Procfs { path: path.to_string(), detail };
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header: Vec<&str> =
        lines.next().ok_or_else(|| error("the file is empty".into()))?.split_whitespace().collect();
    // A header has names; a row of numbers first means the header is gone.
    if header.iter().all(|name| u64::from_str_radix(name, 16).is_ok()) {
        return Err(error("the first line is not a header of column names".into()));
    }
    let attributes: Vec<Option<u16>> = header.iter().map(|name| column_attribute(name)).collect();
    let entries_column = header.iter().position(|name| *name == "entries");

    let mut entries = None;
    let mut cpus = Vec::new();
    for (row, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != header.len() {
            return Err(error(format!(
                "row {} has {} columns, the header has {}",
                row + 1,
                fields.len(),
                header.len()
            )));
        }
        let mut counters = Counters::default();
        for (column, field) in fields.iter().enumerate() {
            // Why the digit check: from_str_radix would also take a '+'.
            let hex = field.bytes().all(|b| b.is_ascii_hexdigit());
            let value = u64::from_str_radix(field, 16).ok().filter(|_| hex).ok_or_else(|| {
                error(format!("row {}, column {}: {field:?} is not hex", row + 1, header[column]))
            })?;
            let attribute = attributes.get(column).copied().flatten();
            // The kernel prints these as `%08x` of an unsigned int (u32, the
            // width that wraps): more is not what the kernel wrote.
            if (attribute.is_some() || Some(column) == entries_column)
                && value > u64::from(u32::MAX)
            {
                return Err(error(format!(
                    "row {}, column {}: {field:?} is wider than the kernel's 32-bit counters",
                    row + 1,
                    header[column]
                )));
            }
            if Some(column) == entries_column {
                entries = Some(value);
            }
            if let Some(attribute) = attribute {
                counters.0.insert(attribute, value);
            }
        }
        let cpu = u16::try_from(row).map_err(|_| error("more rows than CPU numbers".into()))?;
        cpus.push(CpuStats { cpu, counters });
    }
    if cpus.is_empty() {
        return Err(error("no CPU rows after the header".into()));
    }
    Ok(ProcStatTable { entries, cpus })
}

/// Parses a kernel CPU list such as `0-3,8-11` or `0`.
pub fn parse_cpu_list(text: &str) -> Option<Vec<u16>> {
    let mut cpus = Vec::new();
    for range in text.trim().split(',') {
        let (first, last) = match range.split_once('-') {
            Some((first, last)) => (first.parse::<u16>().ok()?, last.parse::<u16>().ok()?),
            None => {
                let cpu = range.parse::<u16>().ok()?;
                (cpu, cpu)
            }
        };
        if last < first {
            return None;
        }
        cpus.extend(first..=last);
    }
    Some(cpus)
}

/// Renumbers rows with the possible CPUs, in order (see the module doc).
/// Returns false, leaving the row numbers, when the counts differ.
pub fn assign_possible_cpus(cpus: &mut [CpuStats], possible: &[u16]) -> bool {
    if cpus.len() != possible.len() {
        return false;
    }
    for (row, cpu) in cpus.iter_mut().zip(possible) {
        row.cpu = *cpu;
    }
    true
}

fn read_text(path: &Path) -> Result<String, ConntrackError> {
    std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ConntrackError::Unavailable(format!(
            "{} does not exist: conntrack is not loaded or not in use in this network namespace",
            path.display()
        )),
        _ => ConntrackError::Procfs {
            path: path.display().to_string(),
            detail: format!("cannot read: {source}"),
        },
    })
}

fn read_number(path: &Path) -> Result<u64, ConntrackError> {
    let text = read_text(path)?;
    text.trim().parse().map_err(|_| ConntrackError::Procfs {
        path: path.display().to_string(),
        detail: format!("{:?} is not a number", text.trim()),
    })
}

/// Reads the counters of the calling thread's network namespace from
/// procfs. Why per thread: the stat file is read through
/// [`crate::netns::proc_net_dir`] (`/proc/thread-self/net`) and `/proc/sys`
/// resolves the namespace of the thread that opens it, so this works on a
/// thread that has `setns`'d elsewhere.
pub fn read_stats_procfs() -> Result<StatsSnapshot, ConntrackError> {
    let stat_path: PathBuf = crate::netns::proc_net_dir().join(PROC_NET_STAT_FILE);
    let text = read_text(&stat_path)?;
    let mut table = parse_proc_stat_table(&text, &stat_path.display().to_string())?;
    let mut notes = Vec::new();

    match std::fs::read_to_string(SYS_CPU_POSSIBLE).ok().as_deref().and_then(parse_cpu_list) {
        Some(possible) if assign_possible_cpus(&mut table.cpus, &possible) => {}
        Some(possible) => notes.push(format!(
            "{} has {} rows but {SYS_CPU_POSSIBLE} lists {} CPUs; rows are numbered in order",
            stat_path.display(),
            table.cpus.len(),
            possible.len()
        )),
        None => notes.push(format!(
            "cannot read {SYS_CPU_POSSIBLE}; CPU numbers are row numbers and may not match ctnetlink's"
        )),
    }

    let entries = match read_number(Path::new(SYSCTL_CONNTRACK_COUNT)) {
        Ok(entries) => entries,
        Err(error) => match table.entries {
            Some(entries) => {
                notes.push(format!("{error}; entries taken from the stat file"));
                entries
            }
            None => return Err(error),
        },
    };
    let max_entries = read_number(Path::new(SYSCTL_CONNTRACK_MAX))?;
    Ok(StatsSnapshot { source: Source::Procfs, cpus: table.cpus, entries, max_entries, notes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::stats::counter_name;

    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/procfs").join(name);
        std::fs::read_to_string(path).unwrap()
    }

    fn names(counters: &Counters) -> Vec<String> {
        counters.named().map(|(name, _)| name.into_owned()).collect()
    }

    /// The counter names ctnetlink sends on this 6.18 kernel (what
    /// `conntrack -S` prints), in attribute order.
    const NETLINK_NAMES_6_18: [&str; 10] = [
        "found",
        "invalid",
        "insert",
        "insert_failed",
        "drop",
        "early_drop",
        "error",
        "search_restart",
        "clash_resolve",
        "chaintoolong",
    ];

    #[test]
    fn linux_6_18_capture_matches_conntrack_s() {
        let table = parse_proc_stat_table(&fixture("nf_conntrack-6.18.txt"), "fixture").unwrap();
        assert_eq!(table.entries, Some(15));
        assert_eq!(table.cpus.len(), 2);
        for cpu in &table.cpus {
            assert_eq!(names(&cpu.counters), NETLINK_NAMES_6_18);
        }
        // conntrack -S at capture time: cpu=0 invalid=12; cpu=1 invalid=28 error=4.
        assert_eq!(table.cpus[0].counters.get(CTA_STATS_INVALID), Some(12));
        assert_eq!(table.cpus[0].counters.get(CTA_STATS_ERROR), Some(0));
        assert_eq!(table.cpus[1].counters.get(CTA_STATS_INVALID), Some(28));
        assert_eq!(table.cpus[1].counters.get(CTA_STATS_ERROR), Some(4));
        let nonzero: u64 = table.cpus.iter().flat_map(|cpu| cpu.counters.0.values()).sum();
        assert_eq!(nonzero, 12 + 28 + 4);
    }

    #[test]
    fn linux_5_10_layout_has_clash_resolve_but_no_chaintoolong() {
        let cpus = parse_proc_stat(&fixture("nf_conntrack-5.10.txt")).unwrap();
        assert_eq!(cpus.len(), 2);
        assert!(cpus[0].counters.has(CTA_STATS_CLASH_RESOLVE));
        assert!(!cpus[0].counters.has(CTA_STATS_CHAIN_TOOLONG));
        assert_eq!(cpus[0].counters.get(CTA_STATS_CLASH_RESOLVE), Some(12));
        assert_eq!(cpus[1].counters.get(CTA_STATS_CLASH_RESOLVE), Some(9));
        assert_eq!(cpus[0].counters.get(CTA_STATS_FOUND), Some(16));
        assert_eq!(cpus[0].counters.get(CTA_STATS_INSERT_FAILED), Some(1));
        assert_eq!(cpus[1].counters.get(CTA_STATS_ERROR), Some(3));
        assert_eq!(names(&cpus[0].counters).len(), 9);
    }

    #[test]
    fn pre_5_10_layout_has_neither() {
        let table =
            parse_proc_stat_table(&fixture("nf_conntrack-pre-5.10.txt"), "fixture").unwrap();
        assert_eq!(table.entries, Some(0x1a4));
        let cpus = table.cpus;
        assert_eq!(cpus.iter().map(|cpu| cpu.cpu).collect::<Vec<_>>(), [0, 1, 2, 3]);
        for cpu in &cpus {
            assert!(!cpu.counters.has(CTA_STATS_CLASH_RESOLVE));
            assert!(!cpu.counters.has(CTA_STATS_CHAIN_TOOLONG));
            // searched, new, ignore, delete, delete_list, expect_*: not counters.
            assert!(names(&cpu.counters).iter().all(|name| NETLINK_NAMES_6_18.contains(&&**name)));
        }
        assert_eq!(cpus[0].counters.get(CTA_STATS_INSERT_FAILED), Some(0x11));
        assert_eq!(cpus[0].counters.get(CTA_STATS_DROP), Some(0x11));
        assert_eq!(cpus[0].counters.get(CTA_STATS_SEARCH_RESTART), Some(1));
        assert_eq!(cpus[2].counters.get(CTA_STATS_EARLY_DROP), Some(1));
        assert_eq!(cpus[3].counters.get(CTA_STATS_FOUND), Some(0xffff_ffff));
    }

    #[test]
    fn every_mapped_column_has_a_netlink_name() {
        for column in ["found", "invalid", "insert", "insert_failed", "drop", "early_drop"] {
            assert_eq!(counter_name(column_attribute(column).unwrap()), column);
        }
        assert_eq!(counter_name(column_attribute("icmp_error").unwrap()), "error");
        assert_eq!(counter_name(column_attribute("clashres").unwrap()), "clash_resolve");
        assert_eq!(counter_name(column_attribute("chainlength").unwrap()), "chaintoolong");
        for ignored in ["entries", "searched", "new", "ignore", "delete", "delete_list"] {
            assert_eq!(column_attribute(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let header = "entries found invalid\n";
        for text in [
            "",
            "\n\n",
            header,
            "00000001 00000002 00000003\n",
            &format!("{header}00000001 00000002\n"),
            &format!("{header}00000001 00000002 0000000g\n"),
            &format!("{header}00000001 00000002 00000003 00000004\n"),
            &format!("{header}00000001 00000002 -0000003\n"),
            &format!("{header}00000001 00000002 +0000003\n"),
            &format!("{header}00000001 00000002 100000000\n"),
            &format!("{header}100000000 00000002 00000003\n"),
        ] {
            let error = parse_proc_stat(text).unwrap_err();
            assert!(matches!(error, ConntrackError::Procfs { .. }), "{text:?}: {error:?}");
        }
        // Every prefix of the real file parses or fails cleanly.
        let real = fixture("nf_conntrack-6.18.txt");
        for cut in 0..real.len() {
            let _ = parse_proc_stat(&real[..cut]);
        }
    }

    #[test]
    fn possible_cpus_renumber_rows() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("0-1,4,6-7"), Some(vec![0, 1, 4, 6, 7]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(parse_cpu_list(""), None);

        let mut cpus = parse_proc_stat(&fixture("nf_conntrack-pre-5.10.txt")).unwrap();
        assert!(assign_possible_cpus(&mut cpus, &[0, 1, 4, 6]));
        assert_eq!(cpus.iter().map(|cpu| cpu.cpu).collect::<Vec<_>>(), [0, 1, 4, 6]);
        assert_eq!(cpus[2].counters.get(CTA_STATS_EARLY_DROP), Some(1));
        assert!(!assign_possible_cpus(&mut cpus, &[0, 1]));
    }
}
