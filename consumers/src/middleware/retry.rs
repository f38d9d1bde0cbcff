//! Retrying a failed handler with exponential backoff and jitter.
//!
//! Guarantees of [`run_with_retry`]:
//! * a handler is called at most [`RetryPolicy::max_attempts`] times per delivery, and
//!   only a **retryable** error ([`HandlerError::retryable`]) is retried: a permanent one
//!   ends the run after its attempt;
//! * the attempts run one after the other in the calling task, so per-key order holds
//!   through retries (nothing else of the key runs meanwhile — the runner's job is only
//!   not to start the next event of the key before this one finished);
//! * a failure of a dependency whose circuit breaker is open ends the run at once with
//!   that error, so the runner can pause instead of burning attempts on an outage;
//! * the wait before attempt *n + 1* is exponential with **equal jitter**: half of
//!   `min(max_backoff, initial_backoff × multiplier^(n−1))` fixed plus a uniformly random
//!   part up to the other half. Waits never exceed `max_backoff`, never fall below half
//!   the exponential step (so they grow with the attempt until the cap), and spread
//!   retries of many consumers hit by the same outage;
//! * the returned future is cancel-safe: dropping it (shutdown, revocation) abandons the
//!   remaining attempts, and the event, not acknowledged, is delivered again.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;

use crate::{ConsumeError, HandlerError};

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

/// Calls `f(attempt)` (attempt from 1) until it succeeds, fails permanently, runs out of
/// attempts, or fails because of a dependency whose breaker `is_open(dependency)` says is
/// open. Between attempts it calls `on_retry(&error, failed_attempt)` (count
/// [`RETRIES_TOTAL`](crate::metrics::RETRIES_TOTAL) and log there) and waits
/// [`RetryPolicy::delay`].
///
/// Returns the last outcome and how many attempts were made. `f` should report each
/// outcome to the breakers ([`Breakers::on_success`](super::Breakers::on_success) /
/// [`on_failure`](super::Breakers::on_failure)) before returning, so the check after a
/// failure sees the breaker the failure opened.
pub async fn run_with_retry<F, Fut>(
    policy: &RetryPolicy,
    mut f: F,
    is_open: impl Fn(&str) -> bool,
    mut on_retry: impl FnMut(&HandlerError, u32),
) -> (Result<(), HandlerError>, u32)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<(), HandlerError>>,
{
    let mut attempt = 1;
    loop {
        let err = match f(attempt).await {
            Ok(()) => return (Ok(()), attempt),
            Err(err) => err,
        };
        let breaker_open = err.dependency.as_deref().is_some_and(&is_open);
        if breaker_open || !policy.should_retry(&err, attempt) {
            return (Err(err), attempt);
        }
        on_retry(&err, attempt);
        // The thread-local generator is not `Send`: use it within this statement only.
        let wait = policy.delay(attempt, &mut rand::rng());
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn fast(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            multiplier: 2.0,
        }
    }

    fn flaky() -> HandlerError {
        HandlerError::retryable("timeout", "took too long")
    }

    #[tokio::test]
    async fn heals_on_the_second_attempt() {
        let mut retried = Vec::new();
        let (res, attempts) = run_with_retry(
            &fast(3),
            |attempt| async move {
                if attempt < 2 {
                    Err(flaky())
                } else {
                    Ok(())
                }
            },
            |_| false,
            |e, a| retried.push((e.class.clone(), a)),
        )
        .await;
        assert_eq!(res, Ok(()));
        assert_eq!(attempts, 2);
        assert_eq!(retried, vec![("timeout".to_owned(), 1)]);
    }

    #[tokio::test]
    async fn never_healing_fails_after_max_attempts() {
        let calls = AtomicU32::new(0);
        let (res, attempts) = run_with_retry(
            &fast(4),
            |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(flaky()) }
            },
            |_| false,
            |_, _| {},
        )
        .await;
        assert_eq!(res, Err(flaky()));
        assert_eq!((attempts, calls.load(Ordering::SeqCst)), (4, 4));
    }

    #[tokio::test]
    async fn a_permanent_error_is_not_retried() {
        let mut retries = 0;
        let (res, attempts) = run_with_retry(
            &fast(5),
            |_| async { Err(HandlerError::permanent("validation", "bad field")) },
            |_| false,
            |_, _| retries += 1,
        )
        .await;
        assert_eq!(res.map_err(|e| e.class), Err("validation".to_owned()));
        assert_eq!((attempts, retries), (1, 0));
    }

    #[tokio::test]
    async fn an_open_dependency_stops_the_retries() {
        let down = || HandlerError::retryable("connect", "refused").from_dependency("smtp");
        let (res, attempts) = run_with_retry(&fast(5), |_| async move { Err(down()) }, |dep| dep == "smtp", |_, _| {}).await;
        assert_eq!(res, Err(down()));
        assert_eq!(attempts, 1);
        // Another dependency's open breaker does not matter.
        let (_, attempts) = run_with_retry(&fast(3), |_| async move { Err(down()) }, |dep| dep == "postgres", |_, _| {}).await;
        assert_eq!(attempts, 3);
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
        assert!(!p.should_retry(&HandlerError::permanent("validation", "x"), 1));
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
