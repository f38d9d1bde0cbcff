//! The pipeline's dead-letter decisions without a broker or a registry.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::testing::{incoming, pipeline, timeout, Scripted, Sink};
use crate::middleware::{FuseConfig, UNDECODABLE_HANDLER};
use crate::runner::{test_pause, Process};
use crate::{ErrorClass, HandlerError};

#[tokio::test]
async fn an_event_handled_at_once_or_after_a_retry_is_not_dead_lettered() {
    let sink = Arc::new(Sink::default());
    let ok = Scripted::new("ok", []);
    let heals = Scripted::new("heals", [Err(timeout())]);
    let p = pipeline(&[ok.clone(), heals.clone()], sink.clone(), FuseConfig::default());
    p.process(incoming(0, 7).1, &test_pause()).await;
    assert_eq!((ok.calls(), heals.calls()), (1, 2));
    assert!(sink.letters().is_empty());
}

#[tokio::test]
async fn a_permanent_error_is_dead_lettered_after_one_attempt_with_its_class_and_the_message_as_read() {
    let sink = Arc::new(Sink::default());
    let bad = Scripted::new("bad", [Err(HandlerError::permanent(ErrorClass::Validation, "field `age` is not a number"))]);
    let p = pipeline(std::slice::from_ref(&bad), sink.clone(), FuseConfig::default());
    let (event, msg) = incoming(1, 7);
    p.process(msg.clone(), &test_pause()).await;
    assert_eq!(bad.calls(), 1, "a permanent error is not retried");
    let letters = sink.letters();
    assert_eq!(letters.len(), 1);
    let dl = &letters[0];
    assert_eq!(dl.error_class, ErrorClass::Validation);
    assert_eq!(dl.error_message, "field `age` is not a number");
    assert_eq!(dl.attempts, 1);
    assert_eq!((dl.group.as_str(), dl.handler.as_str()), ("g", "bad"));
    assert_eq!(dl.value, &*msg.value, "the value is dead-lettered byte for byte");
    assert_eq!(dl.original, *msg.meta);
    assert_eq!(dl.original.key.as_deref(), Some(event.aggregate_id()));
}

#[tokio::test]
async fn a_retryable_error_that_never_heals_is_dead_lettered_after_the_last_attempt() {
    let sink = Arc::new(Sink::default());
    let flaky = Scripted::new("flaky", [Err(timeout()), Err(timeout()), Err(timeout()), Err(timeout())]);
    let p = pipeline(std::slice::from_ref(&flaky), sink.clone(), FuseConfig::default());
    p.process(incoming(2, 7).1, &test_pause()).await;
    assert_eq!(*flaky.attempts.lock().expect("attempts"), vec![1, 2, 3]);
    let letters = sink.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].error_class, letters[0].attempts), (ErrorClass::Timeout, 3));
    assert!(letters[0].first_failure <= letters[0].last_failure);
}

#[tokio::test]
async fn each_handler_concludes_on_its_own_and_a_failing_one_does_not_stop_the_others() {
    let sink = Arc::new(Sink::default());
    let first = Scripted::new("first", [Err(HandlerError::permanent(ErrorClass::Config, "no table"))]);
    let second = Scripted::new("second", []);
    let p = pipeline(&[first.clone(), second.clone()], sink.clone(), FuseConfig::default());
    p.process(incoming(0, 7).1, &test_pause()).await;
    assert_eq!((first.calls(), second.calls()), (1, 1));
    let handlers: Vec<String> = sink.letters().into_iter().map(|d| d.handler).collect();
    assert_eq!(handlers, vec!["first".to_owned()]);
}

#[tokio::test]
async fn a_value_that_does_not_decode_is_dead_lettered_as_it_is_and_no_handler_runs() {
    let sink = Arc::new(Sink::default());
    let h = Scripted::new("h", []);
    let p = pipeline(std::slice::from_ref(&h), sink.clone(), FuseConfig::default());
    let (_, mut msg) = incoming(0, 7);
    msg.value = b"plain text, not Confluent-framed".as_slice().into();
    p.process(msg.clone(), &test_pause()).await;
    // Framed, but the body is cut short: bad Avro.
    let (_, mut cut) = incoming(0, 8);
    cut.value = cut.value[..9].into();
    p.process(cut.clone(), &test_pause()).await;
    assert_eq!(h.calls(), 0);
    let letters = sink.letters();
    let got: Vec<_> = letters.iter().map(|d| (d.error_class, d.handler.as_str(), d.attempts, d.value.clone())).collect();
    assert_eq!(
        got,
        vec![
            (ErrorClass::NotConfluentFramed, UNDECODABLE_HANDLER, 0, msg.value.to_vec()),
            (ErrorClass::BadAvro, UNDECODABLE_HANDLER, 0, cut.value.to_vec()),
        ]
    );
}

#[tokio::test]
async fn a_dead_letter_the_sink_refuses_is_retried_until_it_is_taken_before_the_event_finishes() {
    let sink = Arc::new(Sink { refuse: AtomicU32::new(3), ..Sink::default() });
    let bad = Scripted::new("bad", [Err(HandlerError::permanent(ErrorClass::Validation, "no"))]);
    let p = pipeline(&[bad], sink.clone(), FuseConfig::default());
    p.process(incoming(0, 7).1, &test_pause()).await;
    assert_eq!(sink.refused.load(Ordering::SeqCst), 3);
    assert_eq!(sink.letters().len(), 1, "process returned only once the dead letter was taken");
}

#[tokio::test]
async fn the_fuse_stops_the_worker_once_too_large_a_share_is_dead_lettered() {
    let sink = Arc::new(Sink::default());
    let fuse = FuseConfig { window: 4, max_dead_letter_share: 0.5, min_events: 4 };
    let script = (0..3).map(|_| Err(HandlerError::permanent(ErrorClass::Validation, "no")));
    let h = Scripted::new("h", [Ok(())].into_iter().chain(script));
    let p = pipeline(&[h], sink.clone(), fuse);
    let pause = test_pause();
    for (n, stopped) in [(0, false), (1, false), (2, false), (3, true)] {
        p.process(incoming(0, n).1, &pause).await;
        assert_eq!(pause.is_worker_stopped(), stopped, "after event {n}");
    }
    assert_eq!(sink.letters().len(), 3);
}

/// A handler that panics on every call.
#[derive(Debug)]
struct Panics;

#[async_trait::async_trait]
impl crate::Handler for Panics {
    fn name(&self) -> &str {
        "panics"
    }
    fn can_handle(&self, _: ltf_schemas::EventType) -> bool {
        true
    }
    async fn handle(&self, _: &crate::HandlerContext, _: &crate::Event) -> Result<(), HandlerError> {
        panic!("a bug in the handler")
    }
}

#[tokio::test]
async fn a_panicking_handler_is_retried_then_dead_lettered_as_panic_and_its_key_goes_on() {
    use crate::runner::testing::{Call, Feed};
    let sink = Arc::new(Sink::default());
    let mut p = pipeline(&[], sink.clone(), FuseConfig::default());
    p.router = crate::Router::new().register(Panics);
    let feed = Feed::new(Arc::new(p));
    for offset in 0..3 {
        let (_, mut msg) = incoming(0, offset);
        Arc::make_mut(&mut msg.meta).key = Some("one-key".into());
        feed.push(msg).await;
    }
    feed.settle().await;
    let letters = sink.letters();
    assert_eq!(letters.len(), 3, "each event dead-lettered");
    // A panic is an error of that event, like any handler error: retried, then dead-lettered.
    assert!(letters.iter().all(|d| d.error_class.as_str() == "panic" && d.attempts == 3), "{letters:?}");
    assert!(letters[0].error_message.contains("a bug in the handler"), "{}", letters[0].error_message);
    assert_eq!(feed.recorder.calls().last(), Some(&Call::Store(3)));
    assert_eq!(feed.permits.available_permits(), 16, "every permit came back");
}

/// Key `a` needs a webhook host that is down until `up`; other keys need nothing.
#[derive(Debug, Default, Clone)]
struct NeedsHost {
    up: Arc<std::sync::atomic::AtomicBool>,
    handled: Arc<std::sync::Mutex<Vec<(String, i64)>>>,
}

#[async_trait::async_trait]
impl crate::Handler for NeedsHost {
    fn name(&self) -> &str {
        "needs-host"
    }
    fn can_handle(&self, _: ltf_schemas::EventType) -> bool {
        true
    }
    async fn handle(&self, ctx: &crate::HandlerContext, event: &crate::Event) -> Result<(), HandlerError> {
        let key = event.meta.key.clone().unwrap_or_default();
        if key == "a" {
            let call = ctx.dependency("webhook:host:80").await?;
            let up = self.up.load(Ordering::SeqCst);
            call.finish(up);
            if !up {
                return Err(HandlerError::retryable(ErrorClass::Connect, "refused").from_dependency("webhook:host:80"));
            }
        }
        self.handled.lock().expect("handled").push((key, event.meta.offset));
        Ok(())
    }
}

#[tokio::test]
async fn an_open_circuit_parks_only_the_keys_that_need_it_without_pausing_or_dead_lettering() {
    use crate::middleware::{BreakerConfig, Breakers, CircuitState};
    use crate::runner::testing::{Call, Feed};
    use std::time::Duration;
    let sink = Arc::new(Sink::default());
    let handler = NeedsHost::default();
    let mut p = pipeline(&[], sink.clone(), FuseConfig::default());
    p.router = crate::Router::new().register(handler.clone());
    let config =
        BreakerConfig { min_calls: 2, failure_rate: 1.0, cooldown: Duration::from_millis(50), ..BreakerConfig::default() };
    let breakers = Arc::new(Breakers::new("g", config));
    p.breakers = breakers.clone();
    let feed = Feed::new(Arc::new(p));
    for (offset, key) in ["a", "b", "b", "b", "a", "b"].into_iter().enumerate() {
        let (_, mut msg) = incoming(0, offset as i64);
        Arc::make_mut(&mut msg.meta).key = Some(key.into());
        feed.push(msg).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let handled = handler.handled.lock().expect("handled").clone();
    assert_eq!(handled, vec![("b".into(), 1), ("b".into(), 2), ("b".into(), 3), ("b".into(), 5)], "b flowed while a waited");
    assert_ne!(breakers.state("webhook:host:80"), CircuitState::Closed, "the host's circuit opened");
    assert!(!feed.recorder.calls().contains(&Call::Pause), "nothing paused the partition");
    feed.states.flush_offsets();
    assert_eq!(feed.recorder.calls().last(), Some(&Call::Store(0)), "a's first event holds the commit position");

    handler.up.store(true, Ordering::SeqCst);
    feed.settle().await;
    let a: Vec<i64> = handler.handled.lock().expect("handled").iter().filter(|(k, _)| k == "a").map(|(_, o)| *o).collect();
    assert_eq!(a, vec![0, 4], "a went on in order once its host was back");
    assert!(sink.letters().is_empty(), "an outage is not poison: {:?}", sink.letters());
    assert_eq!(feed.recorder.calls().last(), Some(&Call::Store(6)));
    assert_eq!(breakers.state("webhook:host:80"), CircuitState::Closed, "closed by the probes' successes");
}
