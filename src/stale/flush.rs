//! The flush: exact deletes of the stale entries a scan kept, by reply
//! tuple, zone and id, then scans again until none is left.

use super::classify::{classify, Target, Verdict};
use super::scan::{scan_with, Keep, Plan, Scan, Tally};
use super::{FLUSH_BATCH, MAX_NOTES};
use crate::conntrack::entry::{delete_request, family_of, Entry};
use crate::conntrack::socket::{AckOutcome, CtnetlinkSocket, DumpSource};
use crate::conntrack::ConntrackError;
use netlink_packet_netfilter::conntrack::ConntrackMessage;
use netlink_packet_netfilter::NetfilterProtoFamily;
/// The delete request name in errors.
pub(super) const REQUEST_DELETE: &str = "IPCTNL_MSG_CT_DELETE";

/// What a flush needs of the kernel: dumps and acknowledged deletes (a
/// trait so that tests can replay captures and make a scan fail).
pub(super) trait FlushSocket: DumpSource {
    /// Sends one `IPCTNL_MSG_CT_DELETE` and waits for its acknowledgement.
    fn delete(
        &mut self,
        family: NetfilterProtoFamily,
        request: ConntrackMessage,
    ) -> std::result::Result<AckOutcome, ConntrackError>;
}

impl FlushSocket for CtnetlinkSocket {
    fn delete(
        &mut self,
        family: NetfilterProtoFamily,
        request: ConntrackMessage,
    ) -> std::result::Result<AckOutcome, ConntrackError> {
        self.request_ack(REQUEST_DELETE, family, request)
    }
}

/// What a flush did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FlushReport {
    /// Entries the kernel deleted (acknowledged).
    pub deleted: u64,
    /// Entries already gone (`ENOENT`: expired, deleted by someone else,
    /// or replaced by a new entry under the same tuple, which is kept).
    pub already_gone: u64,
    /// Deletes that failed.
    pub failed: u64,
    /// Stale entries the scan after the flush still found; `None` (JSON
    /// null) when that scan failed, so nobody knows.
    pub remaining: Option<u64>,
    /// Entries the first scan found stale whose DNAT target was an
    /// endpoint in a later read of the rules (an endpoint added
    /// mid-rollout): kept, never deleted.
    #[serde(skip_serializing_if = "is_zero")]
    pub spared: u64,
    /// The user answered no at the prompt: nothing was deleted.
    pub declined: bool,
    /// The first few failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Why the scan after the deletes failed (then `remaining` is null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescan_error: Option<String>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl Default for FlushReport {
    /// Nothing deleted, nothing remaining.
    fn default() -> Self {
        FlushReport {
            deleted: 0,
            already_gone: 0,
            failed: 0,
            remaining: Some(0),
            spared: 0,
            declined: false,
            errors: Vec::new(),
            rescan_error: None,
        }
    }
}

impl FlushReport {
    pub(super) fn add(&mut self, other: &FlushReport) {
        self.deleted += other.deleted;
        self.already_gone += other.already_gone;
        self.failed += other.failed;
        self.remaining = self.remaining.zip(other.remaining).map(|(a, b)| a + b);
        self.spared += other.spared;
        self.declined |= other.declined;
        for error in &other.errors {
            if self.errors.len() < MAX_NOTES {
                self.errors.push(error.clone());
            }
        }
        if self.rescan_error.is_none() {
            self.rescan_error.clone_from(&other.rescan_error);
        }
    }

    /// Whether a flush ran (not declined) and its outcome is known.
    pub fn verified(&self) -> bool {
        self.declined || self.remaining.is_some()
    }
}

/// Deletes every stale entry `first` found, and whatever a scan after it
/// still finds stale: the entries `first` kept, then, when it could not
/// keep them all, batches of at most [`FLUSH_BATCH`] from fresh scans,
/// until a scan finds none, a batch deletes nothing, or the passes run out
/// (one per batch of `first`'s count, and two more). Each entry is deleted
/// by reply tuple, zone and id as the scan saw it, so a pass never deletes
/// an entry it did not just classify as stale.
///
/// `targets` hold every endpoint any read of the rules named (the union:
/// see `Target::protected`): an entry `first` found stale whose target is
/// among them is spared, and the scans after it classify by them.
/// `remaining`: what the last scan found; `None` when a scan after the
/// deletes failed (the counts of what was deleted are still reported).
pub(super) fn flush(
    socket: &mut dyn FlushSocket,
    targets: &[Target],
    plans: &[Plan],
    first: &Scan,
) -> Vec<FlushReport> {
    let mut flushes: Vec<FlushReport> = first
        .tallies
        .iter()
        .zip(targets)
        .map(|(tally, target)| {
            let (doomed, spared) = still_stale(&tally.stale, target);
            FlushReport { spared, ..delete_all(socket, &doomed) }
        })
        .collect();
    let found: u64 = first.tallies.iter().map(Tally::stale_count).sum();
    let complete = first.tallies.iter().all(Tally::stale_complete);
    let passes = if complete { 1 } else { found / FLUSH_BATCH as u64 + 3 };
    for pass in 1..=passes {
        let after = match scan_with(socket, targets, plans, Keep::flush_batch(), None) {
            Ok(after) => after,
            Err(error) => {
                for flush in &mut flushes {
                    flush.remaining = None;
                    flush.rescan_error = Some(format!(
                        "the scan after the deletes failed ({error}): what is still stale is unknown"
                    ));
                }
                break;
            }
        };
        let stale: u64 = after.tallies.iter().map(Tally::stale_count).sum();
        if stale == 0 || pass == passes {
            for (flush, tally) in flushes.iter_mut().zip(&after.tallies) {
                flush.remaining = Some(tally.stale_count());
            }
            break;
        }
        let mut progress = false;
        for (flush, tally) in flushes.iter_mut().zip(&after.tallies) {
            let batch = delete_all(socket, &tally.stale);
            progress |= batch.deleted + batch.already_gone > 0;
            let remaining = flush.remaining;
            flush.add(&batch);
            flush.remaining = remaining;
        }
        if !progress {
            // Every delete of the batch failed: the next pass would find
            // the same entries. What remains is what this scan found.
            for (flush, tally) in flushes.iter_mut().zip(&after.tallies) {
                flush.remaining = Some(tally.stale_count());
            }
            break;
        }
    }
    flushes
}

/// The entries of `stale` still stale against `target`'s endpoints (which
/// may have grown since the scan), and how many are not.
pub(super) fn still_stale(
    stale: &[(Entry, Verdict)],
    target: &Target,
) -> (Vec<(Entry, Verdict)>, u64) {
    let mut spared = 0;
    let doomed = stale
        .iter()
        .filter(|(entry, _)| {
            let now = classify(entry, target.address(), &target.endpoints);
            spared += u64::from(!now.is_stale());
            now.is_stale()
        })
        .copied()
        .collect();
    (doomed, spared)
}

/// Deletes each entry by tuple, zone and id; each delete is acknowledged.
pub(super) fn delete_all(socket: &mut dyn FlushSocket, stale: &[(Entry, Verdict)]) -> FlushReport {
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
        match socket.delete(family_of(entry.family), request) {
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
