//! Circuit breakers, one per downstream dependency (`postgres`, `smtp`, a webhook host).
//!
//! States and transitions:
//! * **Closed** (normal): failures are counted; [`failure_threshold`](BreakerConfig::failure_threshold)
//!   consecutive failures open the breaker, a success resets the count;
//! * **Open**: the dependency is considered down for [`cooldown`](BreakerConfig::cooldown);
//!   [`is_open`](Breakers::is_open) is true and the runtime pauses instead of retrying or
//!   dead-lettering. Outcomes reported while open (calls that started before it opened)
//!   change nothing;
//! * **HalfOpen**, once the cooldown is over: [`try_probe`](Breakers::try_probe) grants
//!   one probe at a time; the probe's success closes the breaker, its failure opens it
//!   for another cooldown. A probe that never reports (its partition was revoked, the
//!   worker is stopping) is given up after one cooldown, and a new probe is granted.
//!
//! Guarantees: all methods are thread-safe (one mutex over every breaker, held only for
//! a map look-up); a dependency never seen is closed; time comes from a [`Clock`], so
//! tests drive it with a [`ManualClock`]; every state change sets the gauge
//! [`CIRCUIT_STATE`]`{group, dependency}` to
//! 0 (closed), 1 (half-open) or 2 (open).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use metrics::gauge;
use serde::Deserialize;
use tracing::{info, warn};

use crate::metrics::{labels, CIRCUIT_STATE};
use crate::ConsumeError;

/// Circuit-breaker settings, the same for every dependency. Every field has a default;
/// [`validate`](BreakerConfig::validate) names the bad key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failures of a dependency that open its breaker. Default 5.
    pub failure_threshold: u32,
    /// How long an open breaker stays open before it lets a probe through. Default 10 s.
    #[serde(with = "ltf_kafka::config::millis", rename = "cooldown_ms")]
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failure_threshold: 5, cooldown: Duration::from_secs(10) }
    }
}

impl BreakerConfig {
    /// Checks every field; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConsumeError> {
        let bad = |key: &str, reason: &str| Err(ConsumeError::Config { key: key.into(), reason: reason.into() });
        if self.failure_threshold == 0 {
            return bad("failure_threshold", "must be at least 1");
        }
        if self.cooldown.is_zero() {
            return bad("cooldown_ms", "must be positive");
        }
        Ok(())
    }
}

/// The state of one breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through; failures are counted.
    Closed,
    /// The cooldown is over; one probe at a time may go through.
    HalfOpen,
    /// The dependency is considered down until the cooldown is over.
    Open,
}

impl CircuitState {
    /// The value of the [`CIRCUIT_STATE`] gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge_value(self) -> f64 {
        match self {
            CircuitState::Closed => 0.0,
            CircuitState::HalfOpen => 1.0,
            CircuitState::Open => 2.0,
        }
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now.
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to: for tests of breakers and of the runtime.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Instant>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock { now: Mutex::new(Instant::now()) }
    }
}

impl ManualClock {
    /// A clock standing at the current instant.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One dependency's breaker.
#[derive(Debug, Clone, Copy)]
enum Breaker {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// `probe`: when the probe in flight was granted, if any.
    HalfOpen {
        probe: Option<Instant>,
    },
}

impl Breaker {
    fn state(self) -> CircuitState {
        match self {
            Breaker::Closed { .. } => CircuitState::Closed,
            Breaker::HalfOpen { .. } => CircuitState::HalfOpen,
            Breaker::Open { .. } => CircuitState::Open,
        }
    }
}

/// The circuit breakers of one consumer group, keyed by dependency name.
pub struct Breakers {
    group: String,
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    breakers: Mutex<HashMap<String, Breaker>>,
}

impl fmt::Debug for Breakers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breakers").field("group", &self.group).field("config", &self.config).finish_non_exhaustive()
    }
}

impl Breakers {
    /// The breakers of `group` on the system clock.
    pub fn new(group: impl Into<String>, config: BreakerConfig) -> Breakers {
        Breakers::with_clock(group, config, Arc::new(SystemClock))
    }

    /// The breakers of `group` on `clock`.
    pub fn with_clock(group: impl Into<String>, config: BreakerConfig, clock: Arc<dyn Clock>) -> Breakers {
        Breakers { group: group.into(), config, clock, breakers: Mutex::new(HashMap::new()) }
    }

    /// The settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Breaker>> {
        self.breakers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `dependency`'s breaker, moved from Open to HalfOpen when its cooldown is over.
    fn current<'m>(&self, map: &'m mut HashMap<String, Breaker>, dependency: &str, now: Instant) -> &'m mut Breaker {
        let b = map.entry(dependency.to_owned()).or_insert(Breaker::Closed { failures: 0 });
        if let Breaker::Open { until } = *b {
            if now >= until {
                *b = Breaker::HalfOpen { probe: None };
                self.publish(dependency, CircuitState::HalfOpen);
            }
        }
        b
    }

    fn publish(&self, dependency: &str, state: CircuitState) {
        gauge!(CIRCUIT_STATE, labels::GROUP => self.group.clone(), labels::DEPENDENCY => dependency.to_owned())
            .set(state.gauge_value());
    }

    fn set(&self, b: &mut Breaker, dependency: &str, new: Breaker) {
        let (old, state) = (b.state(), new.state());
        *b = new;
        if old != state {
            self.publish(dependency, state);
            match state {
                CircuitState::Open => warn!(group = %self.group, dependency, "circuit breaker opened"),
                CircuitState::Closed => info!(group = %self.group, dependency, "circuit breaker closed"),
                CircuitState::HalfOpen => {}
            }
        }
    }

    /// `dependency`'s state now (HalfOpen as soon as an open breaker's cooldown is over).
    pub fn state(&self, dependency: &str) -> CircuitState {
        let now = self.clock.now();
        let mut map = self.lock();
        self.current(&mut map, dependency, now).state()
    }

    /// Whether `dependency` is open and its cooldown not over: hold calls to it. False
    /// when closed or half-open (claim the probe with [`try_probe`](Breakers::try_probe)).
    pub fn is_open(&self, dependency: &str) -> bool {
        self.state(dependency) == CircuitState::Open
    }

    /// Whether any breaker is not closed (open, or half-open until a probe succeeded).
    pub fn any_open(&self) -> bool {
        let now = self.clock.now();
        let mut map = self.lock();
        let deps: Vec<String> = map.keys().cloned().collect();
        deps.iter().any(|d| self.current(&mut map, d, now).state() != CircuitState::Closed)
    }

    /// The dependencies whose breakers are not closed, sorted (for logs and `/readyz`).
    pub fn not_closed(&self) -> Vec<String> {
        let now = self.clock.now();
        let mut map = self.lock();
        let deps: Vec<String> = map.keys().cloned().collect();
        let mut out: Vec<String> =
            deps.into_iter().filter(|d| self.current(&mut map, d, now).state() != CircuitState::Closed).collect();
        out.sort();
        out
    }

    /// Asks to call `dependency`: always granted when closed; when half-open, granted to
    /// one caller at a time (the probe, which must report with
    /// [`on_success`](Breakers::on_success) or [`on_failure`](Breakers::on_failure));
    /// refused while open.
    pub fn try_probe(&self, dependency: &str) -> bool {
        let now = self.clock.now();
        let mut map = self.lock();
        let b = self.current(&mut map, dependency, now);
        match *b {
            Breaker::Closed { .. } => true,
            Breaker::Open { .. } => false,
            Breaker::HalfOpen { probe: Some(since) } if now < since + self.config.cooldown => false,
            Breaker::HalfOpen { .. } => {
                *b = Breaker::HalfOpen { probe: Some(now) };
                true
            }
        }
    }

    /// Reports a successful call of `dependency`: resets the failure count when closed,
    /// closes the breaker when half-open, changes nothing while open.
    pub fn on_success(&self, dependency: &str) {
        let now = self.clock.now();
        let mut map = self.lock();
        let b = self.current(&mut map, dependency, now);
        if !matches!(b, Breaker::Open { .. }) {
            self.set(b, dependency, Breaker::Closed { failures: 0 });
        }
    }

    /// Reports a failed call of `dependency`: counts it when closed (opening the breaker
    /// at the threshold), reopens a half-open breaker, changes nothing while open.
    pub fn on_failure(&self, dependency: &str) {
        let now = self.clock.now();
        let mut map = self.lock();
        let b = self.current(&mut map, dependency, now);
        let open = Breaker::Open { until: now + self.config.cooldown };
        match *b {
            Breaker::Closed { failures } if failures + 1 >= self.config.failure_threshold => self.set(b, dependency, open),
            Breaker::Closed { failures } => *b = Breaker::Closed { failures: failures + 1 },
            Breaker::HalfOpen { .. } => self.set(b, dependency, open),
            Breaker::Open { .. } => {}
        }
    }

    /// How long until `dependency` lets a probe through: zero unless it is open.
    pub fn wait_until_probe(&self, dependency: &str) -> Duration {
        let now = self.clock.now();
        let mut map = self.lock();
        match *self.current(&mut map, dependency, now) {
            Breaker::Open { until } => until.saturating_duration_since(now),
            Breaker::Closed { .. } | Breaker::HalfOpen { .. } => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers() -> (Breakers, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let config = BreakerConfig { failure_threshold: 3, cooldown: Duration::from_secs(10) };
        (Breakers::with_clock("g", config, clock.clone()), clock)
    }

    fn open(b: &Breakers) {
        for _ in 0..3 {
            b.on_failure("smtp");
        }
        assert_eq!(b.state("smtp"), CircuitState::Open);
    }

    #[test]
    fn the_breakers_of_user_defined_dependencies_are_bounded_in_number() {
        // Webhook hosts come from user-defined automations: any number of them.
        let (b, _) = breakers();
        for host in 0..5000 {
            for _ in 0..3 {
                b.on_failure(&format!("webhook:h{host}.example:443"));
            }
        }
        let kept = b.not_closed().len();
        assert!(kept <= 1024, "{kept} breakers kept");
    }

    #[test]
    fn an_unknown_dependency_is_closed() {
        let (b, _) = breakers();
        assert_eq!(b.state("postgres"), CircuitState::Closed);
        assert!(!b.is_open("postgres"));
        assert!(b.try_probe("postgres"));
        assert!(!b.any_open());
        assert_eq!(b.wait_until_probe("postgres"), Duration::ZERO);
    }

    #[test]
    fn consecutive_failures_open_it_and_a_success_resets_the_count() {
        let (b, _) = breakers();
        b.on_failure("smtp");
        b.on_failure("smtp");
        b.on_success("smtp");
        b.on_failure("smtp");
        b.on_failure("smtp");
        assert_eq!(b.state("smtp"), CircuitState::Closed, "the success reset the count");
        b.on_failure("smtp");
        assert_eq!(b.state("smtp"), CircuitState::Open);
        assert!(b.is_open("smtp"));
        assert!(b.any_open());
        assert_eq!(b.not_closed(), vec!["smtp".to_owned()]);
        assert!(!b.is_open("postgres"), "breakers are per dependency");
    }

    #[test]
    fn open_refuses_probes_until_the_cooldown_is_over() {
        let (b, clock) = breakers();
        open(&b);
        assert!(!b.try_probe("smtp"));
        assert_eq!(b.wait_until_probe("smtp"), Duration::from_secs(10));
        clock.advance(Duration::from_secs(4));
        assert_eq!(b.wait_until_probe("smtp"), Duration::from_secs(6));
        assert!(b.is_open("smtp"));
        // Late outcomes of calls started before it opened change nothing.
        b.on_success("smtp");
        b.on_failure("smtp");
        assert_eq!(b.wait_until_probe("smtp"), Duration::from_secs(6));
        clock.advance(Duration::from_secs(6));
        assert_eq!(b.state("smtp"), CircuitState::HalfOpen);
        assert!(!b.is_open("smtp"));
        assert!(b.any_open(), "half-open is not closed yet");
        assert_eq!(b.wait_until_probe("smtp"), Duration::ZERO);
    }

    #[test]
    fn half_open_lets_one_probe_through_and_its_success_closes() {
        let (b, clock) = breakers();
        open(&b);
        clock.advance(Duration::from_secs(10));
        assert!(b.try_probe("smtp"));
        assert!(!b.try_probe("smtp"), "one probe at a time");
        b.on_success("smtp");
        assert_eq!(b.state("smtp"), CircuitState::Closed);
        assert!(!b.any_open());
        assert!(b.try_probe("smtp"));
        // Closed again with a fresh count.
        b.on_failure("smtp");
        b.on_failure("smtp");
        assert_eq!(b.state("smtp"), CircuitState::Closed);
    }

    #[test]
    fn a_failed_probe_reopens_for_another_cooldown() {
        let (b, clock) = breakers();
        open(&b);
        clock.advance(Duration::from_secs(12));
        assert!(b.try_probe("smtp"));
        b.on_failure("smtp");
        assert_eq!(b.state("smtp"), CircuitState::Open);
        assert_eq!(b.wait_until_probe("smtp"), Duration::from_secs(10));
        clock.advance(Duration::from_secs(10));
        assert_eq!(b.state("smtp"), CircuitState::HalfOpen);
    }

    #[test]
    fn an_abandoned_probe_is_replaced_after_a_cooldown() {
        let (b, clock) = breakers();
        open(&b);
        clock.advance(Duration::from_secs(10));
        assert!(b.try_probe("smtp"));
        clock.advance(Duration::from_secs(9));
        assert!(!b.try_probe("smtp"));
        clock.advance(Duration::from_secs(1));
        assert!(b.try_probe("smtp"), "the silent probe is given up");
        assert!(!b.try_probe("smtp"));
    }

    #[test]
    fn the_gauge_follows_every_transition() {
        let recorder = crate::middleware::test_recorder::TestRecorder::default();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let key = format!("{CIRCUIT_STATE}{{dependency=smtp,group=g}}");
        let (b, clock) = breakers();
        b.on_failure("smtp");
        assert_eq!(recorder.gauge(&key), None, "no transition yet");
        b.on_failure("smtp");
        b.on_failure("smtp");
        assert_eq!(recorder.gauge(&key), Some(2.0));
        clock.advance(Duration::from_secs(10));
        assert!(b.try_probe("smtp"));
        assert_eq!(recorder.gauge(&key), Some(1.0));
        b.on_failure("smtp");
        assert_eq!(recorder.gauge(&key), Some(2.0));
        clock.advance(Duration::from_secs(10));
        assert_eq!(b.state("smtp"), CircuitState::HalfOpen);
        assert_eq!(recorder.gauge(&key), Some(1.0));
        b.on_success("smtp");
        assert_eq!(recorder.gauge(&key), Some(0.0));
    }

    #[test]
    fn breakers_are_shared_across_threads() {
        let (b, _) = breakers();
        let b = Arc::new(b);
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || b.on_failure("postgres"))
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(b.is_open("postgres"));
    }

    #[test]
    fn config_keys_defaults_and_validation() {
        let c: BreakerConfig = serde_json::from_str(r#"{"cooldown_ms": 2500}"#).unwrap();
        assert_eq!(c, BreakerConfig { failure_threshold: 5, cooldown: Duration::from_millis(2500) });
        BreakerConfig::default().validate().unwrap();
        assert!(serde_json::from_str::<BreakerConfig>(r#"{"cooldown": 1}"#).is_err());
        let e = BreakerConfig { failure_threshold: 0, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("`failure_threshold`"), "{e}");
        let e = BreakerConfig { cooldown: Duration::ZERO, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("`cooldown_ms`"), "{e}");
    }
}
