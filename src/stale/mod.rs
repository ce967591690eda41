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
//! and the id the scan saw (see
//! [`delete_request`](crate::conntrack::entry::delete_request) for why the
//! reply tuple), so an entry recreated under the same original tuple since the
//! scan is never touched, then scans again; when the scan kept only part
//! of the stale entries, the flush deletes them in batches of at most
//! [`FLUSH_BATCH`], each batch taken from a fresh scan, until a scan finds
//! none.
//!
//! One file per job: [`classify`](mod@classify) (the verdict of an entry), `scan` (the
//! socket, the Services resolved, the dumps and their tallies), [`flush`]
//! (the exact deletes), [`report`] (the report structs and how a scan
//! becomes one), `findings` (one function per finding code), [`clients`]
//! (which local pod sent an entry), [`reach`] (whether the node reaches an
//! endpoint) and [`stream`] (`--all-entries -o json` beyond the cap).
//! `stale` builds on `conntrack` and `service`; neither depends on it.

mod backends;
pub mod classify;
pub mod clients;
mod findings;
pub mod flush;
pub mod reach;
pub mod report;
mod scan;
mod sources;
pub mod stream;

use crate::error::Result;
use crate::netns::{run_in, Netns};
use crate::service::select::{Advice, Selector};
use clients::ClientIndex;
use flush::flush;
use report::Context;
use scan::{listed_addresses, open_session, Tally};

pub use classify::{classify, Verdict};
pub use flush::FlushReport;
pub use report::{EntryReport, ServiceReport, StaleReport, TargetSummary};

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
    /// What to pass instead when the Services cannot be resolved.
    pub advice: Advice,
    /// Only the Services of this proxy mode's rules (`--from`).
    pub from: Option<crate::service::ProxyMode>,
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
    if config.flush {
        if let Some(why) = sources::flush_refusal(&session.targets, &session.skipped) {
            return Err(crate::error::Error::Usage(why));
        }
    }
    let first =
        scan::scan(&mut session.socket, &session.targets, &session.plans, config.all_entries)?;
    let listed = listed_addresses(&first);
    let clients = if listed.is_empty() {
        ClientIndex::default()
    } else {
        let peers = run_in(netns.as_ref(), clients::linked_namespaces).unwrap_or_default();
        ClientIndex::build(&listed, &peers)
    };
    let (unreachable, reach_notes) = reach::check(&session.endpoint_addresses(), netns.as_ref());
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
    if to_delete == 0 {
        let flushes = vec![FlushReport::default(); session.targets.len()];
        return Ok(context.report(&session.targets, &first, Some(&flushes)));
    }
    // The rules again after the scan, and again right before deleting
    // (the prompt can wait for minutes, a rollout goes on meanwhile): an
    // entry is deleted only if its target is an endpoint in none of the
    // reads.
    let mut current = session.targets.clone();
    scan::reread(config, netns.as_ref(), &mut current, "after the scan")?;
    let flushes: Vec<FlushReport> = if !confirm(&before) {
        first
            .tallies
            .iter()
            .map(|t| FlushReport {
                remaining: Some(t.stale_count()),
                declined: true,
                ..FlushReport::default()
            })
            .collect()
    } else {
        scan::reread(config, netns.as_ref(), &mut current, "right before deleting")?;
        flush(&mut session.socket, &current, &session.plans, &first)
    };
    Ok(context.report(&session.targets, &first, Some(&flushes)))
}

#[cfg(test)]
mod flush_tests;
#[cfg(test)]
mod tests;
