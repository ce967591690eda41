//! The flush: exact deletes of the stale entries a scan kept, by reply
//! tuple, zone and id, then scans again until none is left.

use super::classify::{Target, Verdict};
use super::scan::{scan_with, Keep, Plan, Scan, Tally};
use super::{FLUSH_BATCH, MAX_NOTES};
use crate::conntrack::entry::{delete_request, family_of, Entry};
use crate::conntrack::socket::{AckOutcome, CtnetlinkSocket};
use crate::conntrack::ConntrackError;
/// The delete request name in errors.
pub(super) const REQUEST_DELETE: &str = "IPCTNL_MSG_CT_DELETE";

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
    pub(super) fn add(&mut self, other: &FlushReport) {
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

/// Deletes every stale entry `first` found, and whatever a scan after it
/// still finds stale: the entries `first` kept, then, when it could not
/// keep them all, batches of at most [`FLUSH_BATCH`] from fresh scans,
/// until a scan finds none, a batch deletes nothing, or the passes run out
/// (one per batch of `first`'s count, and two more). Each entry is deleted
/// by reply tuple, zone and id as the scan saw it, so a pass never deletes
/// an entry it did not just classify as stale. `remaining`: what the last
/// scan found.
pub(super) fn flush(
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
pub(super) fn delete_all(socket: &mut CtnetlinkSocket, stale: &[(Entry, Verdict)]) -> FlushReport {
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
