//! The runner's core without a broker: lanes with a fake [`Process`], and the partition
//! bookkeeping with a recording [`PartitionControl`] in place of librdkafka.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::TopicPartitionList;
use tokio::sync::Semaphore;

use super::lanes::{Job, Lanes};
use super::process::{Incoming, PartitionPause, Process};
use super::state::{PartitionStates, Tp};
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
    // Every in-flight slot is held: the partition pauses at the next message.
    states.hold(&tp(), 1);
    assert!(rec.is_paused());
    revoke_all(&states);
    assign_all(&states);
    assert!(!rec.is_paused(), "librdkafka keeps an application's pause across a rebalance: {:?}", rec.calls());
    assert!(!states.is_held(&tp(), 1), "the new assignment starts unpaused");
    states.release_held();
    assert!(!rec.is_paused());
    assert!(states.start(&tp(), 1, None).is_some());
}

/// Key `a` waits on a dependency (parked) for 300 ms; other keys take no time.
#[derive(Debug, Default)]
struct WaitsOnCircuit {
    finished: Mutex<Vec<i64>>,
}

#[async_trait]
impl Process for WaitsOnCircuit {
    async fn process(&self, msg: Incoming, _: &PartitionPause) {
        if msg.meta.key.as_deref() == Some("a") {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        self.finished.lock().expect("finished").push(msg.meta.offset);
    }
}

#[tokio::test]
async fn a_lane_that_waits_on_a_circuit_pauses_nothing_and_other_keys_of_its_partition_go_on() {
    let process = Arc::new(WaitsOnCircuit::default());
    let feed = Feed::new(process.clone());
    for (offset, key) in ["a", "b", "b", "a"].into_iter().enumerate() {
        feed.push(incoming(key, offset as i64)).await;
    }
    feed.settle().await;
    let finished = process.finished.lock().expect("finished").clone();
    assert_eq!(finished, vec![1, 2, 0, 3], "key b went on while a waited; a kept its order");
    assert!(!feed.recorder.calls().contains(&Call::Pause), "the partition was never paused: {:?}", feed.recorder.calls());
    assert_eq!(feed.recorder.calls().last(), Some(&Call::Store(4)));
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
        states.flush_offsets();
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
    states.flush_offsets();
    assert_eq!(rec.calls(), vec![], "an offset of the revoked generation is never stored");
    let new = states.start(&tp(), 5, None).expect("not paused");
    assert_ne!(new, old, "a reassignment is a new generation");
    states.finish(&tp(), new, 5);
    states.flush_offsets();
    assert_eq!(rec.calls(), vec![Call::Store(6)]);
}

#[test]
fn a_batch_drops_the_messages_received_before_their_partition_was_revoked_and_keeps_the_others() {
    let (states, rec) = states();
    let other: Tp = ("t".into(), 1);
    // Both partitions known, then a batch whose first messages came before a revocation
    // of partition 0 (run by a later poll of the same batch).
    let g = states.start(&tp(), 0, None).expect("not paused");
    states.start(&other, 0, None).expect("not paused");
    let received = states.generation();
    revoke_all(&states);
    let after = states.generation();
    let started = states.start_all([(&tp(), 1, None, received), (&other, 1, None, received), (&tp(), 7, None, after)]);
    assert_eq!(started[0], None, "received before its partition was revoked: left to the new owner");
    assert_eq!(started[1], Some(g), "its partition was not revoked: started in its own generation");
    assert!(started[2].is_some_and(|n| n > g), "received after the revocation: a new assignment");
    assert_eq!(states.in_flight(), 4, "the two earlier messages and the two started now");
    states.finish(&other, g, 0);
    states.finish(&other, g, 1);
    states.flush_offsets();
    assert_eq!(rec.calls(), vec![Call::Store(2)], "the kept message's partition commits past it");
}

#[test]
fn offsets_finished_between_two_flushes_are_stored_once_at_the_lowest_unfinished_one() {
    let (states, rec) = states();
    let other: Tp = ("t".into(), 1);
    let mut g = 0;
    for o in 0..6 {
        g = states.start(&tp(), o, None).expect("not paused");
    }
    states.start(&other, 40, None).expect("not paused");
    for o in [0, 1, 3, 4] {
        states.finish(&tp(), g, o);
    }
    assert_eq!(rec.calls(), vec![], "finishing stores nothing by itself");
    states.flush_offsets();
    assert_eq!(rec.calls(), vec![Call::Store(2)], "one store for four events: 2 is still unfinished");
    states.flush_offsets();
    assert_eq!(rec.calls().len(), 1, "nothing moved: nothing stored again");
    states.finish(&tp(), g, 2);
    states.finish(&other, g, 40);
    states.flush_offsets();
    let mut calls = rec.calls();
    calls.sort_by_key(|c| match c {
        Call::Store(o) => *o,
        _ => -1,
    });
    assert_eq!(calls, vec![Call::Store(2), Call::Store(5), Call::Store(41)], "each partition once");
}

#[test]
fn back_pressure_pauses_a_partition_once_and_resumes_it_at_the_first_message_not_dispatched() {
    let (states, rec) = states();
    for o in 0..3 {
        states.start(&tp(), o, None);
    }
    states.hold(&tp(), 4);
    states.hold(&tp(), 3); // fetched earlier, also without a slot
    assert_eq!(rec.calls(), vec![Call::Pause], "paused once");
    assert!(states.is_held(&tp(), 3) && states.is_held(&tp(), 5), "fetched after the pause: read again after the seek");
    assert!(!states.is_held(&tp(), 2));
    states.release_held();
    states.release_held(); // nothing left to resume
    assert_eq!(rec.calls(), vec![Call::Pause, Call::Seek(3), Call::Resume]);
    assert!(!states.is_held(&tp(), 3));
    assert!(states.start(&tp(), 3, None).is_some(), "after the resume the offset is dispatched");
}

/// The relay writes in transactions: a commit marker after the last message of a
/// partition is never delivered, and only the consumer's position steps over it.
#[test]
fn an_idle_partition_stores_the_position_past_a_transaction_marker_and_a_busy_or_held_one_does_not() {
    let (states, rec) = states();
    let g = states.start(&tp(), 0, None).expect("not paused");
    states.store_idle_positions(&[(tp(), 2)]);
    assert_eq!(rec.calls(), vec![], "offset 0 is in flight");
    states.finish(&tp(), g, 0);
    states.store_idle_positions(&[(tp(), 2)]);
    states.store_idle_positions(&[(tp(), 2)]);
    assert_eq!(rec.calls(), vec![Call::Store(1), Call::Store(2)], "past the marker at 1, once");
    states.store_idle_positions(&[(tp(), 1)]);
    assert_eq!(rec.calls().len(), 2, "never backwards");
    states.hold(&tp(), 3);
    states.store_idle_positions(&[(tp(), 6)]);
    assert_eq!(rec.calls().last(), Some(&Call::Pause), "3.. were fetched but held: not stored past");
    states.release_held();
    let g = states.start(&tp(), 3, None).expect("dispatched after the seek");
    states.finish(&tp(), g, 3);
    states.flush_offsets();
    assert_eq!(rec.calls().last(), Some(&Call::Store(4)));
    let other: Tp = ("t".into(), 1);
    states.store_idle_positions(&[(other, 7)]);
    assert_eq!(rec.calls().last(), Some(&Call::Store(7)), "a partition that delivered only markers");
}

/// A process that records when each message of which key started and ended.
#[derive(Debug, Default)]
struct Timeline {
    spans: Mutex<Vec<(String, i64, Instant, Instant)>>,
}

#[async_trait]
impl Process for Timeline {
    async fn process(&self, msg: Incoming, _: &PartitionPause) {
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let key = msg.meta.key.clone().unwrap_or_default();
        self.spans.lock().expect("timeline").push((key, msg.meta.offset, started, Instant::now()));
    }
}

fn incoming(key: &str, offset: i64) -> Incoming {
    let meta =
        Meta { topic: "t".into(), partition: 0, offset, key: Some(key.into()), timestamp_ms: None, headers: Default::default() };
    Incoming { meta: meta.into(), value: Arc::from([]) }
}

#[tokio::test]
async fn events_of_one_key_run_in_offset_order_and_keys_run_concurrently_and_every_offset_is_stored() {
    let (states, rec) = states();
    let timeline = Arc::new(Timeline::default());
    let lanes = Lanes::new(states.clone(), timeline.clone(), tokio::runtime::Handle::current());
    let permits = Arc::new(Semaphore::new(16));
    for (offset, key) in ["a", "b", "a", "b", "a", "b"].into_iter().enumerate() {
        let offset = offset as i64;
        let generation = states.start(&tp(), offset, None).expect("not paused");
        let permit = permits.clone().acquire_owned().await.expect("permit");
        lanes.push(lanes.key(&tp(), Some(key), offset), Job { tp: tp(), incoming: incoming(key, offset), generation, permit });
    }
    tokio::time::timeout(Duration::from_secs(5), async {
        while states.in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("every event finished");
    states.flush_offsets();
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
    async fn process(&self, msg: Incoming, _: &PartitionPause) {
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

/// A process that waits until it is let go.
#[derive(Debug, Default)]
struct Gate(tokio::sync::Notify);

#[async_trait]
impl Process for Gate {
    async fn process(&self, msg: Incoming, _: &PartitionPause) {
        if msg.meta.key.as_deref() == Some("boom") {
            panic!("a process that panics");
        }
        self.0.notified().await;
    }
}

#[tokio::test]
async fn a_batch_of_events_takes_one_task_not_a_task_per_event_and_later_events_of_its_keys_join_their_lanes() {
    let gate = Arc::new(Gate::default());
    let feed = Feed::new(gate.clone());
    let before = tokio::runtime::Handle::current().metrics().num_alive_tasks();
    feed.push_batch((0..12).map(|o| incoming(&format!("key-{o}"), o)).collect()).await;
    tokio::task::yield_now().await;
    let alive = tokio::runtime::Handle::current().metrics().num_alive_tasks() - before;
    assert_eq!(alive, 1, "12 events of 12 keys fetched together take one task");
    // Two more for keys that are running: they wait in their lanes, no task more.
    feed.push_batch(vec![incoming("key-3", 12), incoming("key-7", 13)]).await;
    tokio::task::yield_now().await;
    assert_eq!(tokio::runtime::Handle::current().metrics().num_alive_tasks() - before, 1);
    assert_eq!(feed.states.in_flight(), 14);
    while feed.states.in_flight() > 0 {
        gate.0.notify_waiters();
        tokio::task::yield_now().await;
    }
    feed.settle().await;
    assert_eq!(feed.recorder.calls().last(), Some(&Call::Store(14)));
}

#[tokio::test]
async fn a_process_that_panics_leaves_its_event_unfinished_and_the_other_keys_of_its_partition_go_on() {
    let gate = Arc::new(Gate::default());
    let feed = Feed::new(gate.clone());
    feed.push(incoming("boom", 0)).await;
    for offset in 1..4 {
        feed.push(incoming(&format!("key-{offset}"), offset)).await;
    }
    tokio::time::timeout(Duration::from_secs(5), async {
        while feed.states.in_flight() > 1 {
            gate.0.notify_waiters();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the other keys finished");
    assert_eq!(feed.states.in_flight(), 1, "the event that panicked is not finished");
    assert!(!feed.recorder.calls().iter().any(|c| matches!(c, Call::Store(o) if *o > 0)), "nothing stored past offset 0");
    assert_eq!(feed.permits.available_permits(), 16, "the permit of the event that panicked came back");
}

#[tokio::test]
async fn a_lane_is_one_ordering_key_of_one_partition_and_a_message_without_one_is_its_own() {
    let (states, _rec) = states();
    let lanes = Lanes::new(states, Arc::new(Nothing), tokio::runtime::Handle::current());
    let p0: Tp = ("t".into(), 0);
    let p1: Tp = ("t".into(), 1);
    let other: Tp = ("u".into(), 0);
    assert_eq!(lanes.key(&p0, Some("rec_1"), 1), lanes.key(&p0, Some("rec_1"), 2), "one key: one lane, whatever the offset");
    assert_ne!(lanes.key(&p0, Some("rec_1"), 1), lanes.key(&p0, Some("rec_2"), 1));
    assert_ne!(lanes.key(&p0, Some("rec_1"), 1), lanes.key(&p1, Some("rec_1"), 1), "partitions have lanes of their own");
    assert_ne!(lanes.key(&p0, Some("rec_1"), 1), lanes.key(&other, Some("rec_1"), 1), "and topics");
    assert_ne!(lanes.key(&p0, None, 1), lanes.key(&p0, None, 2), "no key: a lane per message");
    assert_ne!(lanes.key(&p0, None, 1), lanes.key(&p0, Some("1"), 1));
}

/// A process that does nothing.
#[derive(Debug)]
struct Nothing;

#[async_trait]
impl Process for Nothing {
    async fn process(&self, _: Incoming, _: &PartitionPause) {}
}

#[tokio::test]
async fn finished_messages_are_dropped_by_the_poll_loop_not_by_the_lanes() {
    let (states, _rec) = states();
    let lanes = Lanes::new(states.clone(), Arc::new(Nothing), tokio::runtime::Handle::current());
    let permits = Arc::new(Semaphore::new(16));
    let mut kept = Vec::new();
    let mut batch = Vec::new();
    for offset in 0..3 {
        let msg = incoming(&format!("key-{offset}"), offset);
        kept.push(msg.value.clone());
        let generation = states.start(&tp(), offset, None).expect("not paused");
        let permit = permits.clone().acquire_owned().await.expect("permit");
        batch.push((lanes.key(&tp(), msg.meta.key.as_deref(), offset), Job { tp: tp(), incoming: msg, generation, permit }));
    }
    lanes.push_batch(batch);
    tokio::time::timeout(Duration::from_secs(5), async {
        while states.in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("every event finished");
    assert_eq!(permits.available_permits(), 16, "their slots came back at once");
    assert!(kept.iter().all(|v| Arc::strong_count(v) == 2), "the lanes keep each finished message for the poll loop");
    lanes.drop_spent();
    assert!(kept.iter().all(|v| Arc::strong_count(v) == 1), "the poll loop's call dropped them");
}
