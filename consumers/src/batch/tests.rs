//! Batch mode without a broker: batches by type and key, and the split of a failed batch.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ltf_schemas::{examples, DomainEvent, EventType};
use uuid::Uuid;

use super::{BatchConfig, BatchHandler, BatchPipeline};
use crate::middleware::FuseConfig;
use crate::pipeline::testing::{incoming_of, pipeline, Sink};
use crate::runner::testing::{Call, Feed};
use crate::{ErrorClass, Event, HandlerContext, HandlerError};

/// One handler call: each event's type, id and Kafka key.
type HandlerCall = Vec<(EventType, Uuid, String)>;

/// Records every batch it is called with; fails (permanently) any batch holding a poison id.
#[derive(Debug, Default)]
struct Collect {
    calls: Mutex<Vec<HandlerCall>>,
    poison: HashSet<Uuid>,
}

#[async_trait]
impl BatchHandler for Arc<Collect> {
    fn name(&self) -> &str {
        "collect"
    }
    fn can_handle(&self, _: EventType) -> bool {
        true
    }
    async fn handle_batch(&self, _: &HandlerContext, event_type: EventType, events: &[Event]) -> Result<(), HandlerError> {
        let call = events
            .iter()
            .map(|e| {
                assert_eq!(e.event_type(), event_type);
                (e.event_type(), e.event_id(), e.meta.key.clone().unwrap_or_default())
            })
            .collect();
        self.calls.lock().expect("calls").push(call);
        if events.iter().any(|e| self.poison.contains(&e.event_id())) {
            return Err(HandlerError::permanent(ErrorClass::Validation, "poison in the batch"));
        }
        Ok(())
    }
}

/// A fresh event like sample `i` (its own event id).
fn like(i: usize) -> DomainEvent {
    let mut e = examples::samples().swap_remove(i);
    e.envelope.event_id = Uuid::new_v4();
    e
}

fn batch(handler: Arc<Collect>, sink: Arc<Sink>) -> Feed {
    let config = BatchConfig { max_batch: 100, max_wait: Duration::from_millis(200) };
    Feed::new(Arc::new(BatchPipeline::new(pipeline(&[], sink, FuseConfig::default()), handler, config)))
}

/// Pushes `events` at offsets 0.. with the given keys, and waits until all finished.
async fn run(feed: &Feed, events: &[(&DomainEvent, &str)]) {
    for (offset, (event, key)) in events.iter().enumerate() {
        let mut msg = incoming_of(event, offset as i64);
        Arc::make_mut(&mut msg.meta).key = Some((*key).to_owned());
        feed.push(msg).await;
    }
    feed.settle().await;
    assert_eq!(feed.recorder.calls().last(), Some(&Call::Store(events.len() as i64)), "every offset is stored");
}

#[tokio::test]
async fn a_batch_holds_events_of_one_type_and_every_event_is_handled_once() {
    let handler = Arc::new(Collect::default());
    let feed = batch(handler.clone(), Arc::new(Sink::default()));
    // Created (v2), updated, deleted, interleaved, each of its own key.
    let events: Vec<DomainEvent> = [1, 2, 1, 3, 2, 1].into_iter().map(like).collect();
    let keyed: Vec<(&DomainEvent, String)> = events.iter().enumerate().map(|(i, e)| (e, format!("k{i}"))).collect();
    run(&feed, &keyed.iter().map(|(e, k)| (*e, k.as_str())).collect::<Vec<_>>()).await;
    let calls = handler.calls.lock().expect("calls").clone();
    let types: Vec<EventType> = calls.iter().map(|c| c[0].0).collect();
    assert_eq!(calls.len(), 3, "one batch per type: {calls:?}");
    assert_eq!(types.iter().collect::<HashSet<_>>().len(), 3, "no type twice: {types:?}");
    assert!(calls.iter().all(|c| c.iter().all(|e| e.0 == c[0].0)), "one type per batch");
    let mut handled: Vec<Uuid> = calls.iter().flatten().map(|e| e.1).collect();
    handled.sort();
    let mut sent: Vec<Uuid> = events.iter().map(|e| e.envelope.event_id).collect();
    sent.sort();
    assert_eq!(handled, sent, "each event once");
}

#[tokio::test]
async fn a_batch_never_holds_two_events_of_one_key_and_a_key_is_handled_in_offset_order() {
    let handler = Arc::new(Collect::default());
    let feed = batch(handler.clone(), Arc::new(Sink::default()));
    let events: Vec<DomainEvent> = (0..5).map(|_| like(1)).collect();
    let keys = ["a", "b", "a", "a", "b"];
    run(&feed, &events.iter().zip(keys).collect::<Vec<_>>()).await;
    let calls = handler.calls.lock().expect("calls").clone();
    for call in &calls {
        let keys: Vec<&str> = call.iter().map(|e| e.2.as_str()).collect();
        assert_eq!(keys.iter().collect::<HashSet<_>>().len(), keys.len(), "a key twice in one batch: {keys:?}");
    }
    for key in ["a", "b"] {
        let order: Vec<Uuid> = calls.iter().flatten().filter(|e| e.2 == key).map(|e| e.1).collect();
        let expected: Vec<Uuid> = events.iter().zip(keys).filter(|(_, k)| *k == key).map(|(e, _)| e.envelope.event_id).collect();
        assert_eq!(order, expected, "key {key} in offset order");
    }
}

#[tokio::test]
async fn a_failed_batch_is_split_and_only_the_event_that_fails_alone_is_dead_lettered() {
    let events: Vec<DomainEvent> = (0..3).map(|_| like(1)).collect();
    let poison = events[1].envelope.event_id;
    let handler = Arc::new(Collect { poison: HashSet::from([poison]), ..Collect::default() });
    let sink = Arc::new(Sink::default());
    let feed = batch(handler.clone(), sink.clone());
    run(&feed, &events.iter().zip(["x", "y", "z"]).collect::<Vec<_>>()).await;
    let calls = handler.calls.lock().expect("calls").clone();
    let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![3, 1, 1, 1], "the whole batch once (a permanent error), then each event alone");
    let letters = sink.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].handler, "collect");
    assert_eq!(letters[0].error_class, ErrorClass::Validation);
    assert_eq!(letters[0].original.key.as_deref(), Some("y"), "only the poison event is dead-lettered");
}

/// Panics on any batch holding a poison id, like a buggy sink.
#[derive(Debug)]
struct PanicsOnPoison(Uuid);

#[async_trait]
impl BatchHandler for PanicsOnPoison {
    fn name(&self) -> &str {
        "panics"
    }
    fn can_handle(&self, _: EventType) -> bool {
        true
    }
    async fn handle_batch(&self, _: &HandlerContext, _: EventType, events: &[Event]) -> Result<(), HandlerError> {
        assert!(events.iter().all(|e| e.event_id() != self.0), "a bug in the batch handler");
        Ok(())
    }
}

#[tokio::test]
async fn a_panicking_batch_handler_dead_letters_only_its_event_and_the_batcher_lives_on() {
    let events: Vec<DomainEvent> = (0..4).map(|_| like(1)).collect();
    let sink = Arc::new(Sink::default());
    let config = BatchConfig { max_batch: 100, max_wait: Duration::from_millis(100) };
    let handler = PanicsOnPoison(events[1].envelope.event_id);
    let feed = Feed::new(Arc::new(BatchPipeline::new(pipeline(&[], sink.clone(), FuseConfig::default()), handler, config)));
    run(&feed, &events[..2].iter().zip(["a", "b"]).collect::<Vec<_>>()).await;
    // The batcher is still there for the events after the panic.
    for (offset, event) in events[2..].iter().enumerate() {
        let mut msg = incoming_of(event, 2 + offset as i64);
        Arc::make_mut(&mut msg.meta).key = Some(format!("k{offset}"));
        feed.push(msg).await;
    }
    feed.settle().await;
    let letters = sink.letters();
    assert_eq!(letters.len(), 1, "only the event that panics alone: {letters:?}");
    assert_eq!(letters[0].error_class.as_str(), "panic");
    assert_eq!(letters[0].original.key.as_deref(), Some("b"));
    assert_eq!(feed.recorder.calls().last(), Some(&Call::Store(4)));
}
