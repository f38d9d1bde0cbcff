//! Waiting for a dependency (the schema registry, the dedup store's database, a handler's
//! downstream service): the one routine every stage uses when a call failed because a
//! dependency did, so an outage parks the work instead of failing it.
//!
//! A failure is reported to the dependency's breaker; while the breaker is closed the call
//! is repeated after the retry policy's backoff; once it is open, the lane waits until the
//! breaker lets a probe through. Only the waiting lane is held: the partition's other keys
//! go on, and fetching pauses only when waiting work fills the in-flight bound (the
//! runner's back-pressure).

use std::future::Future;
use std::time::Duration;

use tracing::warn;

use crate::middleware::{Breakers, RetryPolicy};

/// Waits while `dependency`'s circuit is open, until a probe may go through (the probe is
/// claimed: report its outcome).
pub(crate) async fn wait_for_probe(breakers: &Breakers, dependency: &str) {
    loop {
        let left = breakers.wait_until_probe(dependency);
        tokio::time::sleep(left.max(Duration::from_millis(50))).await;
        if breakers.try_probe(dependency) {
            return;
        }
    }
}

/// Calls `call` until it returns a value or an error `is_outage` says is not the
/// dependency's failure; every outage of `dependency` is waited out (backoff, or a paused
/// partition while its breaker is open). `what` names the wait in the log.
pub(crate) async fn wait_out<T, E, F, Fut>(
    breakers: &Breakers,
    policy: &RetryPolicy,
    dependency: &str,
    what: &str,
    mut call: F,
    is_outage: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(value) => {
                breakers.on_success(dependency);
                return Ok(value);
            }
            Err(e) if is_outage(&e) => {
                attempt += 1;
                warn!(error = %e, attempt, dependency, "{what} unavailable; the message waits");
                breakers.on_failure(dependency);
                if breakers.is_open(dependency) {
                    wait_for_probe(breakers, dependency).await;
                } else {
                    // The thread-local generator is not `Send`: use it within this statement.
                    let wait = policy.delay(attempt, &mut rand::rng());
                    tokio::time::sleep(wait).await;
                }
            }
            Err(e) => return Err(e),
        }
    }
}
