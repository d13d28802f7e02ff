//! Replay progress per partition of a dead-letter topic: what may be committed, and which
//! replayed records need a marker because the committed offset cannot move past them.
//!
//! The committed offset of the replay group means "every record below it is handled":
//! republished (acknowledged) by a replay, or found already replayed. A run reads a partition
//! from the committed offset to the end it saw at start. The *frontier* moves with every
//! handled record until the first record the run leaves alone (not selected by the filters,
//! or past `--limit`); from there it stays, so that record is offered to the next replay.
//! Records replayed beyond the frontier get a marker instead (see `markers.rs`), which later
//! runs treat as already replayed.

use std::collections::BTreeMap;

/// What a run did with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Republished now.
    Replayed,
    /// Replayed by an earlier run (it has a marker).
    AlreadyReplayed,
    /// Left for a later replay.
    Left,
}

#[derive(Debug, Clone)]
struct Partition {
    /// The committed offset when the run started (or the first retained offset).
    committed: i64,
    /// The end seen at start (high watermark): later records are not part of this run.
    end: i64,
    frontier: i64,
    /// A record was left: the frontier stays where it is.
    stuck: bool,
}

/// Progress of one run over the partitions of one topic.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    partitions: BTreeMap<i32, Partition>,
}

impl Progress {
    /// Starts tracking `partition`, read from `start` (the committed offset) to `end`.
    pub fn add(&mut self, partition: i32, start: i64, end: i64) {
        self.partitions.insert(
            partition,
            Partition {
                committed: start,
                end,
                frontier: start,
                stuck: false,
            },
        );
    }

    /// Records what was done with the record at `offset`; returns whether it needs a marker
    /// (it was replayed now but the frontier cannot cover it).
    pub fn record(&mut self, partition: i32, offset: i64, handling: Handling) -> bool {
        let Some(p) = self.partitions.get_mut(&partition) else {
            return handling == Handling::Replayed;
        };
        if p.stuck {
            return handling == Handling::Replayed;
        }
        match handling {
            Handling::Replayed | Handling::AlreadyReplayed => {
                // Offsets may have gaps (compaction); there is no record in a gap.
                p.frontier = p.frontier.max(offset + 1);
                false
            }
            Handling::Left => {
                p.frontier = p.frontier.max(offset);
                p.stuck = true;
                false
            }
        }
    }

    /// The run read `partition` up to its end: every record of the run's range was seen.
    pub fn finished(&mut self, partition: i32) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            if !p.stuck {
                p.frontier = p.frontier.max(p.end);
            }
        }
    }

    /// Offsets to commit now: the frontier of every partition where it moved past the
    /// committed offset. Call [`Progress::committed`] once they are committed.
    pub fn to_commit(&self) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .filter(|(_, p)| p.frontier > p.committed)
            .map(|(id, p)| (*id, p.frontier))
            .collect()
    }

    /// The offsets of [`Progress::to_commit`] were committed.
    pub fn committed(&mut self, offsets: &[(i32, i64)]) {
        for (id, offset) in offsets {
            if let Some(p) = self.partitions.get_mut(id) {
                p.committed = p.committed.max(*offset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Handling::*;

    fn run(start: i64, end: i64, records: &[(i64, Handling)], finished: bool) -> (Vec<(i32, i64)>, Vec<i64>) {
        let mut p = Progress::default();
        p.add(0, start, end);
        let mut markers = Vec::new();
        for (offset, h) in records {
            if p.record(0, *offset, *h) {
                markers.push(*offset);
            }
        }
        if finished {
            p.finished(0);
        }
        (p.to_commit(), markers)
    }

    #[test]
    fn an_unfiltered_replay_commits_the_whole_range_without_markers() {
        assert_eq!(
            run(3, 6, &[(3, Replayed), (4, Replayed), (5, Replayed)], true),
            (vec![(0, 6)], vec![])
        );
    }

    #[test]
    fn a_selective_replay_stops_the_commit_at_the_first_record_it_leaves() {
        // 3 replayed, 4 left, 5 replayed: commit 4, and 5 needs a marker.
        assert_eq!(
            run(3, 6, &[(3, Replayed), (4, Left), (5, Replayed)], true),
            (vec![(0, 4)], vec![5])
        );
        // Left at the very start: nothing to commit, every replayed record is marked.
        assert_eq!(
            run(3, 6, &[(3, Left), (4, Replayed), (5, AlreadyReplayed)], true),
            (vec![], vec![4])
        );
    }

    #[test]
    fn records_replayed_earlier_let_the_commit_move_on() {
        // A later unfiltered run: 3 was left before, 4 was marked by the selective run.
        assert_eq!(
            run(3, 5, &[(3, Replayed), (4, AlreadyReplayed)], true),
            (vec![(0, 5)], vec![])
        );
    }

    #[test]
    fn an_unfinished_partition_commits_only_what_was_seen() {
        // Stopped by --limit (or a read error) after offset 4 of a range ending at 10.
        assert_eq!(
            run(3, 10, &[(3, Replayed), (4, Replayed)], false),
            (vec![(0, 5)], vec![])
        );
        // Gaps in the offsets (compaction) are skipped; the end covers a trailing gap.
        assert_eq!(run(0, 9, &[(2, Replayed), (6, Replayed)], true), (vec![(0, 9)], vec![]));
        // Nothing new: nothing to commit.
        assert_eq!(run(7, 7, &[], true), (vec![], vec![]));
    }

    #[test]
    fn committed_offsets_are_not_committed_again() {
        let mut p = Progress::default();
        p.add(0, 0, 4);
        p.add(1, 2, 2);
        p.record(0, 0, Replayed);
        p.record(0, 1, Replayed);
        assert_eq!(p.to_commit(), vec![(0, 2)]);
        p.committed(&[(0, 2)]);
        assert_eq!(p.to_commit(), vec![]);
        p.record(0, 2, Replayed);
        p.record(0, 3, Replayed);
        p.finished(0);
        p.finished(1);
        assert_eq!(p.to_commit(), vec![(0, 4)]);
    }
}
