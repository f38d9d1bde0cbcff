//! Which offset of a partition may be committed when events finish out of order.

use std::collections::VecDeque;

/// The in-flight offsets of one partition. Events of different ordering keys finish in
/// any order; the offset to commit is always the lowest one not finished yet (or one
/// past the highest seen when nothing is in flight), so a restart re-reads every
/// unfinished event and skips only finished ones.
///
/// Offsets are dispatched in ascending order nearly always, so they are kept in a queue
/// in that order: a start is a push at the back, a finish a binary search and a mark, and
/// the finished offsets at the front leave as soon as they are there (the lowest
/// unfinished offset is the front). An offset dispatched out of order is inserted in its
/// place. Finished offsets behind an unfinished one (a parked event) wait in the queue,
/// which is compacted once they outnumber the unfinished ones, so it stays within a small
/// multiple of the events in flight.
#[derive(Debug, Default, Clone)]
pub struct PartitionOffsets {
    /// Dispatched offsets, ascending; the front one is unfinished.
    dispatched: VecDeque<Dispatched>,
    /// How many of them are unfinished.
    in_flight: usize,
    next: Option<i64>,
    committed: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
struct Dispatched {
    offset: i64,
    /// The produce timestamp (ms), when known.
    timestamp_ms: Option<i64>,
    finished: bool,
}

/// Finished offsets the queue may hold behind unfinished ones before it is compacted,
/// beyond twice the unfinished.
const SLACK: usize = 64;

impl PartitionOffsets {
    /// Records that `offset` was dispatched.
    pub fn start(&mut self, offset: i64) {
        self.start_at(offset, None);
    }

    /// Records that `offset`, produced at `timestamp_ms`, was dispatched.
    pub fn start_at(&mut self, offset: i64, timestamp_ms: Option<i64>) {
        let entry = Dispatched { offset, timestamp_ms, finished: false };
        if self.dispatched.back().is_none_or(|last| last.offset < offset) {
            self.dispatched.push_back(entry);
            self.in_flight += 1;
        } else {
            match self.dispatched.binary_search_by_key(&offset, |d| d.offset) {
                Ok(i) => {
                    let d = &mut self.dispatched[i];
                    self.in_flight += usize::from(d.finished);
                    *d = entry;
                }
                Err(i) => {
                    self.dispatched.insert(i, entry);
                    self.in_flight += 1;
                }
            }
        }
        self.next = Some(self.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// Records that `offset` finished (handled, skipped or dead-lettered); returns the
    /// offset to store when it moved forward.
    pub fn finish(&mut self, offset: i64) -> Option<i64> {
        if let Ok(i) = self.dispatched.binary_search_by_key(&offset, |d| d.offset) {
            let d = &mut self.dispatched[i];
            if !d.finished {
                d.finished = true;
                self.in_flight -= 1;
            }
        }
        while self.dispatched.front().is_some_and(|d| d.finished) {
            self.dispatched.pop_front();
        }
        if self.dispatched.len() > 2 * self.in_flight + SLACK {
            self.dispatched.retain(|d| !d.finished);
        }
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
        if self.in_flight > 0 || self.next.is_some_and(|n| n > position) || self.committed.is_some_and(|c| c >= position) {
            return false;
        }
        self.next = Some(position);
        self.committed = Some(position);
        true
    }

    /// Events dispatched and not finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The lowest unfinished offset, if any.
    pub fn lowest_unfinished(&self) -> Option<i64> {
        self.dispatched.front().map(|d| d.offset)
    }

    /// The produce timestamp (ms) of the lowest unfinished offset, when known: where the
    /// partition's committed position is in time.
    pub fn lowest_unfinished_timestamp(&self) -> Option<i64> {
        self.dispatched.front().and_then(|d| d.timestamp_ms)
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

    /// The offsets as a sorted map of the unfinished ones: what the queue must agree with.
    #[derive(Default)]
    struct Model {
        in_flight: std::collections::BTreeMap<i64, Option<i64>>,
        next: Option<i64>,
        committed: Option<i64>,
    }

    impl Model {
        fn start_at(&mut self, offset: i64, ts: Option<i64>) {
            self.in_flight.insert(offset, ts);
            self.next = Some(self.next.map_or(offset + 1, |n| n.max(offset + 1)));
        }
        fn finish(&mut self, offset: i64) -> Option<i64> {
            self.in_flight.remove(&offset);
            let candidate = self.in_flight.keys().next().copied().or(self.next)?;
            if self.committed.is_some_and(|c| c >= candidate) {
                return None;
            }
            self.committed = Some(candidate);
            Some(candidate)
        }
    }

    #[test]
    fn random_starts_and_finishes_agree_with_a_sorted_map_of_the_unfinished_offsets() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(32);
        for round in 0..200 {
            let (mut p, mut m) = (PartitionOffsets::default(), Model::default());
            let mut next = 0i64;
            let mut started: Vec<i64> = Vec::new();
            for _ in 0..2_000 {
                match rng.random_range(0..10) {
                    // Mostly in order; now and then an offset again or one out of order.
                    0..=4 => {
                        let offset = match rng.random_range(0..20) {
                            0 if next > 0 => rng.random_range(0..next),
                            _ => {
                                next += rng.random_range(1..3);
                                next
                            }
                        };
                        let ts = rng.random_bool(0.5).then(|| rng.random_range(0..1_000));
                        p.start_at(offset, ts);
                        m.start_at(offset, ts);
                        started.push(offset);
                    }
                    // Finish a random started offset (perhaps finished already), but leave
                    // the lowest ones unfinished for long stretches, as a parked event does.
                    _ if !started.is_empty() => {
                        let from = if round % 2 == 0 { 0 } else { started.len() / 2 };
                        let offset = started[rng.random_range(from..started.len())];
                        assert_eq!(p.finish(offset), m.finish(offset), "round {round}: finish({offset})");
                    }
                    _ => {}
                }
                assert_eq!(p.in_flight(), m.in_flight.len(), "round {round}");
                assert_eq!(p.lowest_unfinished(), m.in_flight.keys().next().copied(), "round {round}");
                assert_eq!(p.lowest_unfinished_timestamp(), m.in_flight.values().next().copied().flatten(), "round {round}");
                assert_eq!(p.next_offset(), m.next, "round {round}");
                assert!(p.dispatched.len() <= 2 * p.in_flight() + SLACK + 1, "round {round}: the queue stays compact");
            }
        }
    }
}
