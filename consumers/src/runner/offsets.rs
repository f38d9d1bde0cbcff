//! Which offset of a partition may be committed when events finish out of order.

use std::collections::BTreeMap;

/// The in-flight offsets of one partition. Events of different ordering keys finish in
/// any order; the offset to commit is always the lowest one not finished yet (or one
/// past the highest seen when nothing is in flight), so a restart re-reads every
/// unfinished event and skips only finished ones.
#[derive(Debug, Default, Clone)]
pub struct PartitionOffsets {
    /// In-flight offsets with their produce timestamps (ms), when known.
    in_flight: BTreeMap<i64, Option<i64>>,
    next: Option<i64>,
    committed: Option<i64>,
}

impl PartitionOffsets {
    /// Records that `offset` was dispatched.
    pub fn start(&mut self, offset: i64) {
        self.start_at(offset, None);
    }

    /// Records that `offset`, produced at `timestamp_ms`, was dispatched.
    pub fn start_at(&mut self, offset: i64, timestamp_ms: Option<i64>) {
        self.in_flight.insert(offset, timestamp_ms);
        self.next = Some(self.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// Records that `offset` finished (handled, skipped or dead-lettered); returns the
    /// offset to store when it moved forward.
    pub fn finish(&mut self, offset: i64) -> Option<i64> {
        self.in_flight.remove(&offset);
        let candidate = self.lowest_unfinished().or(self.next)?;
        if self.committed.is_some_and(|c| c >= candidate) {
            return None;
        }
        self.committed = Some(candidate);
        Some(candidate)
    }

    /// Moves the offset to commit to `position` (the consumer's position, past records
    /// never delivered: transaction markers) when nothing is in flight and it is ahead of
    /// everything dispatched and committed; returns whether it moved.
    pub fn advance_to(&mut self, position: i64) -> bool {
        if !self.in_flight.is_empty() || self.next.is_some_and(|n| n > position) || self.committed.is_some_and(|c| c >= position)
        {
            return false;
        }
        self.next = Some(position);
        self.committed = Some(position);
        true
    }

    /// Events dispatched and not finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The lowest unfinished offset, if any.
    pub fn lowest_unfinished(&self) -> Option<i64> {
        self.in_flight.first_key_value().map(|(o, _)| *o)
    }

    /// The produce timestamp (ms) of the lowest unfinished offset, when known: where the
    /// partition's committed position is in time.
    pub fn lowest_unfinished_timestamp(&self) -> Option<i64> {
        self.in_flight.first_key_value().and_then(|(_, ts)| *ts)
    }

    /// One past the highest offset dispatched.
    pub fn next_offset(&self) -> Option<i64> {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_offset_is_the_lowest_unfinished_one() {
        let mut p = PartitionOffsets::default();
        for o in 10..15 {
            p.start(o);
        }
        assert_eq!(p.finish(12), Some(10), "10 is still unfinished");
        assert_eq!(p.finish(11), None, "10 is still unfinished, nothing moved");
        assert_eq!(p.finish(10), Some(13));
        assert_eq!(p.finish(14), None);
        assert_eq!(p.finish(13), Some(15), "all done: one past the highest");
        assert_eq!(p.in_flight(), 0);
    }

    #[test]
    fn the_timestamp_is_the_lowest_unfinished_offsets() {
        let mut p = PartitionOffsets::default();
        p.start_at(10, Some(1_000));
        p.start_at(11, Some(900));
        p.start(12);
        assert_eq!(p.lowest_unfinished_timestamp(), Some(1_000));
        p.finish(10);
        assert_eq!(p.lowest_unfinished_timestamp(), Some(900));
        p.finish(11);
        assert_eq!(p.lowest_unfinished_timestamp(), None, "12 has none");
        p.finish(12);
        assert_eq!(p.lowest_unfinished_timestamp(), None);
    }

    #[test]
    fn finishing_in_order_moves_one_by_one() {
        let mut p = PartitionOffsets::default();
        p.start(0);
        p.start(1);
        assert_eq!(p.finish(0), Some(1));
        assert_eq!(p.lowest_unfinished(), Some(1));
        assert_eq!(p.finish(1), Some(2));
        assert_eq!(p.next_offset(), Some(2));
    }
}
