//! The runner's core without a broker: lanes with a fake [`Process`], and the partition
//! bookkeeping with a recording [`PartitionControl`] in place of librdkafka.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::TopicPartitionList;
use tokio::sync::Semaphore;

use super::lanes::{Job, Lanes};
use super::process::{Incoming, PartitionPause, Process};
use super::state::PartitionStates;
use super::testing::{states, tp, Call, Feed};
use crate::Meta;

fn revoke_all(states: &PartitionStates) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("t", 0);
    states.revoke(&tpl);
}

fn assign_all(states: &PartitionStates) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("t", 0);
    states.assign(&tpl);
}

#[test]
fn a_paused_partition_fetches_again_after_it_is_revoked_and_reassigned() {
    let (states, rec) = states();
    states.start(&tp(), 0, None);
    let lane = PartitionPause::new(states.clone(), tp());
    lane.block();
    assert!(rec.is_paused());
    revoke_all(&states);
    assign_all(&states);
    // The old lane's circuit closes after the rebalance.
    lane.unblock();
    assert!(!rec.is_paused(), "librdkafka keeps an application's pause across a rebalance: {:?}", rec.calls());
    assert!(states.start(&tp(), 0, None).is_some());
}

/// A message that waits on an open circuit, then leaves without an attempt (it turned out
/// a duplicate, or its value then failed to decode for good).
#[derive(Debug)]
struct WaitsThenLeaves;

#[async_trait]
impl Process for WaitsThenLeaves {
    async fn process(&self, _: &Incoming, blocker: &PartitionPause) {
        blocker.block();
    }
}

#[tokio::test]
async fn a_lane_that_waited_on_a_circuit_and_left_without_an_attempt_releases_its_pause() {
    let feed = Feed::new(Arc::new(WaitsThenLeaves));
    for offset in 0..2 {
        feed.push(incoming("a", offset)).await;
    }
    feed.settle().await;
    assert!(!feed.recorder.is_paused(), "the partition stays paused: {:?}", feed.recorder.calls());
    assert_eq!(feed.recorder.calls().iter().filter(|c| **c == Call::Store(2)).count(), 1);
}

#[test]
fn the_stored_offset_is_the_lowest_unfinished_one_when_events_finish_out_of_order() {
    let (states, rec) = states();
    let mut generation = 0;
    for o in 10..15 {
        generation = states.start(&tp(), o, None).expect("not paused");
    }
    for o in [12, 11, 10, 14, 13] {
        states.finish(&tp(), generation, o);
    }
    // 12 and 11 leave 10 unfinished (10 is stored once), 10 frees up to 13, 13 all of it.
    assert_eq!(rec.calls(), vec![Call::Store(10), Call::Store(13), Call::Store(15)]);
    assert_eq!(states.in_flight(), 0);
}

#[test]
fn work_of_a_revoked_assignment_stores_no_offset_and_the_next_assignment_starts_afresh() {
    let (states, rec) = states();
    let old = states.start(&tp(), 5, None).expect("not paused");
    revoke_all(&states);
    states.finish(&tp(), old, 5);
    assert_eq!(rec.calls(), vec![], "an offset of the revoked generation is never stored");
    let new = states.start(&tp(), 5, None).expect("not paused");
    assert_ne!(new, old, "a reassignment is a new generation");
    states.finish(&tp(), new, 5);
    assert_eq!(rec.calls(), vec![Call::Store(6)]);
}

#[test]
fn a_partition_pauses_once_for_any_number_of_blocked_lanes_and_resumes_after_the_last_at_the_first_undispatched_offset() {
    let (states, rec) = states();
    for o in 0..3 {
        states.start(&tp(), o, None);
    }
    let (a, b) = (PartitionPause::new(states.clone(), tp()), PartitionPause::new(states.clone(), tp()));
    a.block();
    a.block(); // one lane's pause counts once
    b.block();
    assert_eq!(rec.calls(), vec![Call::Pause]);
    assert_eq!(states.start(&tp(), 3, None), None, "fetched after the pause: dropped, re-read after the seek");
    a.unblock();
    assert_eq!(rec.calls(), vec![Call::Pause], "b still waits");
    b.unblock();
    b.unblock(); // a second release of the same lane does nothing
    assert_eq!(rec.calls(), vec![Call::Pause, Call::Seek(3), Call::Resume]);
    assert!(states.start(&tp(), 3, None).is_some(), "after the resume the offset is dispatched again");
}

/// A process that records when each message of which key started and ended.
#[derive(Debug, Default)]
struct Timeline {
    spans: Mutex<Vec<(String, i64, Instant, Instant)>>,
}

#[async_trait]
impl Process for Timeline {
    async fn process(&self, msg: &Incoming, _: &PartitionPause) {
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let key = msg.meta.key.clone().unwrap_or_default();
        self.spans.lock().expect("timeline").push((key, msg.meta.offset, started, Instant::now()));
    }
}

fn incoming(key: &str, offset: i64) -> Incoming {
    let meta = Meta { topic: "t".into(), partition: 0, offset, key: Some(key.into()), timestamp_ms: None, headers: Vec::new() };
    Incoming { meta, value: Vec::new() }
}

#[tokio::test]
async fn events_of_one_key_run_in_offset_order_and_keys_run_concurrently_and_every_offset_is_stored() {
    let (states, rec) = states();
    let timeline = Arc::new(Timeline::default());
    let lanes = Lanes::new(states.clone(), timeline.clone());
    let permits = Arc::new(Semaphore::new(16));
    for (offset, key) in ["a", "b", "a", "b", "a", "b"].into_iter().enumerate() {
        let offset = offset as i64;
        let generation = states.start(&tp(), offset, None).expect("not paused");
        let permit = permits.clone().acquire_owned().await.expect("permit");
        lanes.push(("t".into(), 0, key.into()), Job { incoming: incoming(key, offset), generation, permit });
    }
    tokio::time::timeout(Duration::from_secs(5), async {
        while states.in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("every event finished");
    let spans = timeline.spans.lock().expect("timeline").clone();
    for key in ["a", "b"] {
        let mine: Vec<_> = spans.iter().filter(|s| s.0 == key).collect();
        let offsets: Vec<i64> = mine.iter().map(|s| s.1).collect();
        assert_eq!(offsets, if key == "a" { vec![0, 2, 4] } else { vec![1, 3, 5] }, "in offset order");
        assert!(mine.windows(2).all(|w| w[0].3 <= w[1].2), "one after the other: {mine:?}");
    }
    let (a0, b1) = (spans.iter().find(|s| s.1 == 0).expect("0"), spans.iter().find(|s| s.1 == 1).expect("1"));
    assert!(a0.2 < b1.3 && b1.2 < a0.3, "keys a and b ran at the same time");
    assert_eq!(rec.calls().last(), Some(&Call::Store(6)), "the last store covers every offset");
    assert_eq!(permits.available_permits(), 16, "every permit came back");
}

/// A process that takes as long as its key says: `fast` 10 ms, `slow` 10 s.
#[derive(Debug, Default)]
struct Paced;

#[async_trait]
impl Process for Paced {
    async fn process(&self, msg: &Incoming, _: &PartitionPause) {
        let ms = if msg.meta.key.as_deref() == Some("slow") { 10_000 } else { 10 };
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

#[tokio::test]
async fn shutdown_lets_in_flight_work_finish_and_stores_its_offsets() {
    let feed = Feed::new(Arc::new(Paced));
    for (offset, key) in ["fast", "other", "fast"].into_iter().enumerate() {
        feed.push(incoming(key, offset as i64)).await;
    }
    let abandoned = super::drain(&feed.states, Duration::from_secs(5)).await;
    assert_eq!(abandoned, 0);
    assert!(feed.states.is_stopped(), "the worker no longer counts as consuming");
    assert_eq!(feed.recorder.calls().last(), Some(&Call::Store(3)), "every finished offset is stored");
}

#[tokio::test]
async fn shutdown_abandons_work_still_running_at_the_deadline_without_storing_its_offset() {
    let feed = Feed::new(Arc::new(Paced));
    for (offset, key) in ["fast", "slow", "fast"].into_iter().enumerate() {
        feed.push(incoming(key, offset as i64)).await;
    }
    let started = Instant::now();
    let abandoned = super::drain(&feed.states, Duration::from_millis(300)).await;
    assert!(started.elapsed() < Duration::from_secs(2), "the drain ends at its deadline");
    assert_eq!(abandoned, 1, "the slow event is abandoned");
    // Offset 0 finished, 1 did not: 1 is the commit position, whatever finished after it.
    assert_eq!(feed.recorder.calls(), vec![Call::Store(1)]);
}
