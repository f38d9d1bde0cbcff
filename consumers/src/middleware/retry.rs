//! Retrying a failed handler with exponential backoff and jitter.
//!
//! Guarantees of the retry loop (`attempts`, the one the pipeline runs around every
//! handler call):
//! * a handler is called at most [`RetryPolicy::max_attempts`] times per delivery, and
//!   only a **retryable** error ([`HandlerError::retryable`]) is retried: a permanent one
//!   ends the run after its attempt;
//! * the attempts run one after the other in the calling task, so per-key order holds
//!   through retries (nothing else of the key runs meanwhile — the runner's job is only
//!   not to start the next event of the key before this one finished);
//! * a failure of a dependency (a refused connection, a timeout, a 5xx, 408/429, an open
//!   circuit: the error names the dependency) never uses an attempt: the event is parked
//!   (its lane waits, other keys go on) and called again after the backoff, or once the
//!   breaker lets a probe through, without limit or until the worker's `max_park`;
//! * the wait before attempt *n + 1* is exponential with **equal jitter**: half of
//!   `min(max_backoff, initial_backoff × multiplier^(n−1))` fixed plus a uniformly random
//!   part up to the other half. Waits never exceed `max_backoff`, never fall below half
//!   the exponential step (so they grow with the attempt until the cap), and spread
//!   retries of many consumers hit by the same outage;
//! * the returned future is cancel-safe: dropping it (shutdown, revocation) abandons the
//!   remaining attempts, and the event, not acknowledged, is delivered again.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use metrics::{counter, gauge};

use rand::Rng;
use serde::Deserialize;

use tracing::debug;

use crate::metrics::{labels, GroupMetrics, PARKED, PARKS_TOTAL, RETRIES_TOTAL};
use crate::middleware::dedup::DedupStore;
use crate::middleware::dependency::wait_for_probe;
use crate::middleware::Breakers;
use crate::{ConsumeError, ErrorClass, HandlerContext, HandlerError};

/// How failed handler calls are retried. Every field has a default;
/// [`validate`](RetryPolicy::validate) names the bad key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Most handler calls per delivery, the first included (1 = no retry). Default 3.
    pub max_attempts: u32,
    /// Wait after the first failed attempt, before jitter. Default 100 ms.
    #[serde(with = "ltf_kafka::config::millis", rename = "initial_backoff_ms")]
    pub initial_backoff: Duration,
    /// Longest wait between attempts. Default 10 s.
    #[serde(with = "ltf_kafka::config::millis", rename = "max_backoff_ms")]
    pub max_backoff: Duration,
    /// Factor by which the wait grows per failed attempt (at least 1). Default 2.0.
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// Checks every field; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConsumeError> {
        let bad = |key: &str, reason: &str| Err(ConsumeError::Config { key: key.into(), reason: reason.into() });
        if !(1..=100).contains(&self.max_attempts) {
            return bad("max_attempts", "must be between 1 and 100");
        }
        if self.initial_backoff.is_zero() {
            return bad("initial_backoff_ms", "must be positive");
        }
        if self.max_backoff < self.initial_backoff {
            return bad("max_backoff_ms", "must be at least initial_backoff_ms");
        }
        if !(self.multiplier.is_finite() && (1.0..=100.0).contains(&self.multiplier)) {
            return bad("multiplier", "must be between 1 and 100");
        }
        Ok(())
    }

    /// The exponential step after failed attempt `attempt` (from 1), capped at
    /// `max_backoff`: `initial_backoff × multiplier^(attempt−1)`.
    pub fn step(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        let cap = self.max_backoff.as_secs_f64();
        // NaN or infinity (a huge exponent) and anything above the cap become the cap.
        if secs.is_finite() && secs < cap {
            Duration::from_secs_f64(secs.max(0.0))
        } else {
            self.max_backoff
        }
    }

    /// How long to wait after failed attempt `attempt` (from 1) before the next one:
    /// equal jitter, uniformly in `[step / 2, step]` with `step` = [`step`](RetryPolicy::step).
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let step = self.step(attempt);
        let half = step / 2;
        let jitter = rng.random_range(0.0..=1.0_f64);
        half + (step - half).mul_f64(jitter)
    }

    /// Whether a call that failed with `err` on attempt `attempt` (from 1) is tried again:
    /// only retryable errors, and only while attempts are left.
    pub fn should_retry(&self, err: &HandlerError, attempt: u32) -> bool {
        err.retryable && attempt < self.max_attempts
    }
}

/// What [`attempts`] ended with.
#[derive(Debug)]
pub(crate) struct Attempted {
    /// The last call's outcome.
    pub result: Result<(), HandlerError>,
    /// Attempts made: calls that failed with the handler's own error, plus the last call
    /// (dependency failures are parked, not counted).
    pub attempts: u32,
    /// When the first call failed, if one did.
    pub first_failure: Option<DateTime<Utc>>,
}

/// Where the attempts run: the group and handler (for the context and the metrics), the
/// policy, the group's breakers and dedup store, the dependencies the handler declared
/// (a successful call is a success of each), and how long an event may stay parked.
#[derive(Debug)]
pub(crate) struct Scope<'a> {
    pub group: &'a Arc<str>,
    pub handler: &'a Arc<str>,
    pub policy: &'a RetryPolicy,
    pub breakers: &'a Arc<Breakers>,
    pub dedup: Option<&'a Arc<DedupStore>>,
    pub dependencies: &'a [&'static str],
    pub max_park: Option<Duration>,
    pub metrics: &'a GroupMetrics,
}

/// Counts an event in the parked gauge for as long as it lives.
struct ParkedGauge<'a>(&'a str);

impl<'a> ParkedGauge<'a> {
    fn new(group: &'a str) -> ParkedGauge<'a> {
        gauge!(PARKED, labels::GROUP => group.to_owned()).increment(1.0);
        ParkedGauge(group)
    }
}

impl Drop for ParkedGauge<'_> {
    fn drop(&mut self) {
        gauge!(PARKED, labels::GROUP => self.0.to_owned()).decrement(1.0);
    }
}

/// The retry middleware as the pipeline runs it: calls `call` (one handler call per
/// attempt, with a fresh [`HandlerContext`]) until it succeeds, fails for good or
/// exhausts the policy.
///
/// Only the handler's own errors use attempts. A failure of a dependency (the error names
/// one) is reported to its breaker and parks the event: the call is repeated after the
/// policy's backoff while the breaker is closed, after the breaker lets a probe through
/// while it is open, without limit, or until `max_park` (then the handler is called once
/// more with [`HandlerContext::park_expired`], and a dependency error then fails the
/// event with class `dependency_unavailable`). Parking holds the event's lane and its
/// in-flight slot, never the partition: other keys go on.
pub(crate) async fn attempts<F, Fut>(scope: &Scope<'_>, mut call: F) -> Attempted
where
    F: FnMut(HandlerContext) -> Fut,
    Fut: Future<Output = Result<(), HandlerError>>,
{
    let Scope { group, handler, policy, breakers, dedup, dependencies, max_park, metrics } = *scope;
    let started = Instant::now();
    let mut attempt: u32 = 1;
    let mut first_failure = None;
    let mut parked: Option<(Instant, ParkedGauge<'_>)> = None;
    let mut waits: u32 = 0;
    let mut probe: Option<String> = None;
    let result = loop {
        let mut ctx =
            HandlerContext::new(group.clone(), handler.clone(), attempt, dedup.cloned()).with_max_attempts(policy.max_attempts);
        ctx.breakers = Some(breakers.clone());
        ctx.probe = probe.take();
        ctx.parked = parked.as_ref().map_or(Duration::ZERO, |(since, _)| since.elapsed());
        ctx.max_park = max_park;
        // What is needed of the context after the call, so the call takes it (no copy).
        let (call_state, claimed, park_expired) = (ctx.call.clone(), ctx.probe.clone(), ctx.park_expired());
        let outcome = call(ctx).await;
        let reported = std::mem::take(&mut *call_state.reported.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let failed_dependency = outcome.as_ref().err().and_then(|e| e.dependency.clone());
        // A probe the runtime claimed and the call did not report: the call's outcome is
        // the dependency's (it answered unless it is the one that failed).
        if let Some(p) = claimed.as_deref().filter(|p| !reported.iter().any(|r| r == p)) {
            if failed_dependency.as_deref() != Some(p) {
                breakers.on_success(p);
            }
        }
        let err = match outcome {
            Ok(()) => {
                for d in dependencies.iter().filter(|d| !reported.iter().any(|r| r == *d)) {
                    breakers.on_success(d);
                }
                break Ok(());
            }
            Err(e) => e,
        };
        first_failure.get_or_insert_with(Utc::now);
        if let Some(dep) = failed_dependency {
            if !reported.contains(&dep) {
                breakers.on_failure(&dep);
            }
            if park_expired {
                let max = max_park.unwrap_or_default();
                break Err(HandlerError::permanent(
                    ErrorClass::DependencyUnavailable,
                    format!("{dep} unavailable for longer than {} s: {}", max.as_secs(), err.message),
                ));
            }
            if parked.is_none() {
                parked = Some((Instant::now(), ParkedGauge::new(group)));
            }
            counter!(PARKS_TOTAL, labels::GROUP => group.to_string(), labels::HANDLER => handler.to_string(),
                labels::DEPENDENCY => dep.clone())
            .increment(1);
            waits += 1;
            if breakers.is_open(&dep) {
                // Not the event's fault: wait for the dependency without using an attempt,
                // at most until `max_park` is over.
                debug!(handler = &**handler, dependency = %dep, "circuit open; the event is parked");
                let left = max_park.map(|max| max.saturating_sub(parked.as_ref().map_or(Duration::ZERO, |(s, _)| s.elapsed())));
                match left {
                    None => {
                        wait_for_probe(breakers, &dep).await;
                        probe = Some(dep);
                    }
                    Some(left) => {
                        if tokio::time::timeout(left, wait_for_probe(breakers, &dep)).await.is_ok() {
                            probe = Some(dep);
                        }
                    }
                }
            } else {
                // The thread-local generator is not `Send`: use it within this statement only.
                let wait = policy.delay(waits, &mut rand::rng());
                tokio::time::sleep(wait).await;
            }
            continue;
        }
        if !policy.should_retry(&err, attempt) {
            break Err(err);
        }
        counter!(RETRIES_TOTAL, labels::GROUP => group.to_string(), labels::HANDLER => handler.to_string(),
            labels::CLASS => err.class.as_str())
        .increment(1);
        // The thread-local generator is not `Send`: use it within this statement only.
        let wait = policy.delay(attempt, &mut rand::rng());
        tokio::time::sleep(wait).await;
        attempt += 1;
    };
    drop(parked);
    metrics.processing(handler, started.elapsed().as_secs_f64());
    Attempted { result, attempts: attempt, first_failure }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::middleware::{BreakerConfig, CircuitState};
    use crate::ErrorClass;

    fn fast(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            multiplier: 2.0,
        }
    }

    fn flaky() -> HandlerError {
        HandlerError::retryable(ErrorClass::Timeout, "took too long")
    }

    /// Breakers opening after `threshold` calls that all failed.
    fn breakers(threshold: u32, cooldown: Duration) -> Arc<Breakers> {
        let config = BreakerConfig { min_calls: threshold, failure_rate: 1.0, cooldown, ..BreakerConfig::default() };
        Arc::new(Breakers::new("g", config))
    }

    static METRICS: std::sync::LazyLock<GroupMetrics> = std::sync::LazyLock::new(|| GroupMetrics::new("g"));
    static NAMES: std::sync::LazyLock<(Arc<str>, Arc<str>)> = std::sync::LazyLock::new(|| ("g".into(), "h".into()));

    fn scope<'a>(policy: &'a RetryPolicy, breakers: &'a Arc<Breakers>, max_park: Option<Duration>) -> Scope<'a> {
        Scope {
            group: &NAMES.0,
            handler: &NAMES.1,
            policy,
            breakers,
            dedup: None,
            dependencies: &[],
            max_park,
            metrics: &METRICS,
        }
    }

    /// Runs the retry loop with `fast(max)` and breakers opening after `threshold`
    /// failures; `outcome(call)` is the handler's result on each call.
    async fn run(max: u32, threshold: u32, outcome: impl Fn(u32) -> Result<(), HandlerError>) -> (Attempted, u32) {
        let breakers = breakers(threshold, Duration::from_millis(5));
        let policy = fast(max);
        let scope = scope(&policy, &breakers, None);
        let calls = AtomicU32::new(0);
        let attempted = attempts(&scope, |ctx| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            let result = outcome(n);
            async move {
                assert_eq!(&*ctx.handler, "h");
                result
            }
        })
        .await;
        (attempted, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_retryable_error_is_retried_and_heals_on_the_second_attempt() {
        let (a, calls) = run(3, 5, |n| if n < 2 { Err(flaky()) } else { Ok(()) }).await;
        assert_eq!((a.result, a.attempts, calls), (Ok(()), 2, 2));
        assert!(a.first_failure.is_some());
    }

    #[tokio::test]
    async fn a_retryable_error_that_never_heals_fails_after_max_attempts() {
        let (a, calls) = run(4, 100, |_| Err(flaky())).await;
        assert_eq!((a.result, a.attempts, calls), (Err(flaky()), 4, 4));
    }

    #[tokio::test]
    async fn a_permanent_error_is_not_retried() {
        let (a, calls) = run(5, 5, |_| Err(HandlerError::permanent(ErrorClass::Validation, "bad field"))).await;
        assert_eq!((a.result.map_err(|e| e.class), a.attempts, calls), (Err(ErrorClass::Validation), 1, 1));
    }

    #[tokio::test]
    async fn failures_of_a_dependency_are_waited_out_not_counted_whatever_its_breaker() {
        let down = || HandlerError::retryable(ErrorClass::Connect, "refused").from_dependency("smtp");
        // The breaker opens at the first failure: three outages, then the dependency is back.
        let (a, calls) = run(2, 1, |n| if n <= 3 { Err(down()) } else { Ok(()) }).await;
        assert_eq!((a.result, a.attempts, calls), (Ok(()), 1, 4), "only the successful call counts");
        // With the breaker still closed, the event is parked just the same.
        let (a, calls) = run(3, 100, |n| if n <= 5 { Err(down()) } else { Ok(()) }).await;
        assert_eq!((a.result, a.attempts, calls), (Ok(()), 1, 6));
        // The handler's own errors still use attempts, dependency failures in between not.
        let own = || HandlerError::retryable(ErrorClass::Timeout, "slow");
        let (a, calls) = run(3, 100, |n| match n {
            1 | 3 => Err(down()),
            2 | 4 | 5 => Err(own()),
            _ => Ok(()),
        })
        .await;
        assert_eq!((a.result, a.attempts, calls), (Err(own()), 3, 5));
    }

    #[tokio::test]
    async fn past_max_park_the_handler_is_told_and_a_dependency_error_then_fails_the_event() {
        let breakers = breakers(100, Duration::from_millis(5));
        let policy = fast(3);
        let scope = scope(&policy, &breakers, Some(Duration::from_millis(30)));
        let down = || HandlerError::retryable(ErrorClass::Connect, "refused").from_dependency("smtp");
        let a = attempts(&scope, |_| async { Err(down()) }).await;
        let err = a.result.expect_err("gave up");
        assert_eq!((err.class, err.retryable), (ErrorClass::DependencyUnavailable, false));
        assert!(err.message.contains("smtp"), "{}", err.message);
        // A handler that turns the expiry into an outcome of its own (a failed run) ends Ok.
        let seen = AtomicU32::new(0);
        let a = attempts(&scope, |ctx| {
            let expired = ctx.park_expired();
            seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if expired {
                    Ok(())
                } else {
                    Err(down())
                }
            }
        })
        .await;
        assert!(a.result.is_ok());
        assert!(seen.load(Ordering::SeqCst) >= 2);
    }

    #[tokio::test]
    async fn a_lone_event_is_not_dead_lettered_by_an_outage_shorter_than_it_takes_the_breaker_to_open() {
        let down = || HandlerError::retryable(ErrorClass::Connect, "refused").from_dependency("smtp");
        // The breaker needs more failures than an event has attempts: the outage (four
        // failed calls) must not use them up.
        let (a, calls) = run(3, 5, |n| if n <= 4 { Err(down()) } else { Ok(()) }).await;
        assert_eq!((a.result, calls), (Ok(()), 5), "an outage is not poison");
        assert_eq!(a.attempts, 1, "only the handler's own errors count as attempts");
    }

    #[tokio::test]
    async fn a_dependency_call_that_failed_on_the_last_attempt_is_no_success_for_its_breaker() {
        // The automation's pattern: retry a failing call until the last attempt, then
        // record the failure on the run and return Ok. A dead host must still open its
        // breaker: three events, two failed calls each, then the recorded failure.
        // (Since dependency failures use no attempts, the automation gives up when the
        // event was parked for longer than `max_park`, here 1 ms.)
        let breakers = breakers(5, Duration::from_secs(60));
        let policy = fast(3);
        let scope = scope(&policy, &breakers, Some(Duration::from_millis(1)));
        for _ in 0..3 {
            let a = tokio::time::timeout(
                Duration::from_secs(2),
                attempts(&scope, |ctx| async move {
                    if ctx.park_expired() {
                        Ok(()) // the failure is recorded on the run
                    } else {
                        Err(HandlerError::retryable(ErrorClass::Connect, "refused").from_dependency("smtp"))
                    }
                }),
            )
            .await;
            assert!(a.is_ok_and(|a| a.result.is_ok()));
        }
        for _ in 0..2 {
            let _ = attempts(&scope, |_| async {
                Err(HandlerError::retryable(ErrorClass::Connect, "refused").from_dependency("smtp"))
            })
            .await;
        }
        assert_ne!(breakers.state("smtp"), CircuitState::Closed, "every call to smtp failed");
    }

    #[test]
    fn delays_grow_and_stay_within_bounds() {
        let p = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(7);
        let mut last_floor = Duration::ZERO;
        for attempt in 1..=20 {
            let step = p.step(attempt);
            assert!(step <= p.max_backoff);
            assert!(step / 2 >= last_floor, "attempt {attempt}: the floor shrank");
            last_floor = step / 2;
            for _ in 0..50 {
                let d = p.delay(attempt, &mut rng);
                assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?} outside [{:?}, {step:?}]", step / 2);
            }
        }
        assert_eq!(p.step(1), Duration::from_millis(100));
        assert_eq!(p.step(2), Duration::from_millis(200));
        assert_eq!(p.step(4), Duration::from_millis(800));
        assert_eq!(p.step(8), Duration::from_secs(10));
        assert_eq!(p.step(u32::MAX), Duration::from_secs(10));
        // The jitter really varies.
        let samples: std::collections::HashSet<Duration> = (0..20).map(|_| p.delay(3, &mut rng)).collect();
        assert!(samples.len() > 1);
    }

    #[test]
    fn only_retryable_errors_with_attempts_left_are_retried() {
        let p = RetryPolicy::default();
        assert!(p.should_retry(&flaky(), 1));
        assert!(p.should_retry(&flaky(), 2));
        assert!(!p.should_retry(&flaky(), 3));
        assert!(!p.should_retry(&HandlerError::permanent(ErrorClass::Validation, "x"), 1));
    }

    #[test]
    fn config_keys_defaults_and_validation() {
        let p: RetryPolicy =
            serde_json::from_str(r#"{"max_attempts": 5, "initial_backoff_ms": 50, "max_backoff_ms": 2000}"#).unwrap();
        assert_eq!(p.max_attempts, 5);
        assert_eq!(p.initial_backoff, Duration::from_millis(50));
        assert_eq!(p.max_backoff, Duration::from_secs(2));
        assert_eq!(p.multiplier, 2.0);
        p.validate().unwrap();
        RetryPolicy::default().validate().unwrap();
        assert!(serde_json::from_str::<RetryPolicy>(r#"{"initial_backoff": 5}"#).is_err());
        let e = RetryPolicy { max_attempts: 0, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("`max_attempts`"), "{e}");
        let e = RetryPolicy { max_backoff: Duration::from_millis(1), ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("`max_backoff_ms`"), "{e}");
        let e = RetryPolicy { multiplier: 0.5, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("`multiplier`"), "{e}");
        let e = RetryPolicy { multiplier: f64::NAN, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("`multiplier`"), "{e}");
    }
}
