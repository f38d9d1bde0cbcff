//! Circuit breakers, one per downstream dependency (`postgres`, `smtp`, a webhook's
//! `host:port`).
//!
//! States and transitions:
//! * **Closed** (normal): outcomes are counted over a sliding [`window`](BreakerConfig::window);
//!   once the window holds at least [`min_calls`](BreakerConfig::min_calls) outcomes and
//!   the share of failures reaches [`failure_rate`](BreakerConfig::failure_rate), the
//!   breaker opens. A dependency that fails one call in ten stays closed; one that fails
//!   most calls opens, whatever the order of the failures;
//! * **Open**: the dependency is considered down for [`cooldown`](BreakerConfig::cooldown);
//!   [`is_open`](Breakers::is_open) is true and the runtime parks the work that needs it
//!   instead of retrying or dead-lettering. Outcomes reported while open (calls that
//!   started before it opened) change nothing;
//! * **HalfOpen**, once the cooldown is over: [`half_open_probes`](BreakerConfig::half_open_probes)
//!   probes may be in flight at once; as many successes close the breaker, any failure
//!   opens it for another cooldown. A probe that never reports (its partition was revoked,
//!   the worker is stopping) is given up after one cooldown.
//!
//! Concurrency: a call made through [`Breakers::admit`] holds one of the dependency's
//! slots until it ends. A breaker that never opened allows
//! [`max_concurrency`](BreakerConfig::max_concurrency) calls at once; one that just
//! closed allows `half_open_probes` and one more per success, up to `max_concurrency`,
//! so a recovering host is not hit by every parked call at once.
//!
//! Guarantees: all methods are thread-safe (one mutex over every breaker, held only for
//! a map look-up); a dependency never seen is closed; at most
//! [`max_dependencies`](BreakerConfig::max_dependencies) breakers are kept (dependency
//! names may come from user-defined automations): when full, the breaker unused the
//! longest with no call in flight is forgotten, closed ones first; time comes from a
//! [`Clock`], so tests drive it with a [`ManualClock`]; every state change sets the gauge
//! [`CIRCUIT_STATE`]`{group, dependency}` to 0 (closed), 1 (half-open) or 2 (open) and
//! counts one [`CIRCUIT_TRANSITIONS_TOTAL`]`{group, dependency, state}`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use metrics::{counter, gauge};
use serde::Deserialize;
use tracing::{info, warn};

use crate::metrics::{labels, CIRCUIT_STATE, CIRCUIT_TRANSITIONS_TOTAL};
use crate::ConsumeError;

/// Circuit-breaker settings, the same for every dependency. Every field has a default;
/// [`validate`](BreakerConfig::validate) names the bad key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// The sliding window over which outcomes are counted. Default 10 s.
    #[serde(with = "ltf_kafka::config::millis", rename = "window_ms")]
    pub window: Duration,
    /// Fewest outcomes in the window before the failure rate may open the breaker.
    /// Default 10.
    pub min_calls: u32,
    /// Share of failed calls in the window (0 < rate ≤ 1) that opens the breaker. Default 0.5.
    pub failure_rate: f64,
    /// How long an open breaker stays open before it lets probes through. Default 10 s.
    #[serde(with = "ltf_kafka::config::millis", rename = "cooldown_ms")]
    pub cooldown: Duration,
    /// Probes let through at once when half-open; as many successes close it. Default 2.
    pub half_open_probes: u32,
    /// Most calls to one dependency at once (through [`Breakers::admit`]). Default 16.
    pub max_concurrency: u32,
    /// Most breakers kept. Default 1024.
    pub max_dependencies: usize,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window: Duration::from_secs(10),
            min_calls: 10,
            failure_rate: 0.5,
            cooldown: Duration::from_secs(10),
            half_open_probes: 2,
            max_concurrency: 16,
            max_dependencies: 1024,
        }
    }
}

impl BreakerConfig {
    /// Checks every field; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConsumeError> {
        let bad = |key: &str, reason: &str| Err(ConsumeError::Config { key: key.into(), reason: reason.into() });
        if self.window.is_zero() {
            return bad("window_ms", "must be positive");
        }
        if self.min_calls == 0 {
            return bad("min_calls", "must be at least 1");
        }
        if !(self.failure_rate > 0.0 && self.failure_rate <= 1.0) {
            return bad("failure_rate", "must be above 0 and at most 1");
        }
        if self.cooldown.is_zero() {
            return bad("cooldown_ms", "must be positive");
        }
        if self.half_open_probes == 0 {
            return bad("half_open_probes", "must be at least 1");
        }
        if self.max_concurrency < self.half_open_probes {
            return bad("max_concurrency", "must be at least half_open_probes");
        }
        if self.max_dependencies == 0 {
            return bad("max_dependencies", "must be at least 1");
        }
        Ok(())
    }
}

/// The state of one breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through; outcomes are counted.
    Closed,
    /// The cooldown is over; a few probes at a time may go through.
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

    /// The state's name (the `state` label of [`CIRCUIT_TRANSITIONS_TOTAL`]).
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::HalfOpen => "half_open",
            CircuitState::Open => "open",
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

/// Outcomes of one slice (a tenth) of the window.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    start: Instant,
    ok: u32,
    failed: u32,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open {
        until: Instant,
    },
    /// `probes`: granted and not reported; `since`: when the last was granted;
    /// `successes`: probes that succeeded.
    HalfOpen {
        probes: u32,
        since: Instant,
        successes: u32,
    },
}

/// One dependency's breaker.
#[derive(Debug)]
struct Breaker {
    phase: Phase,
    window: VecDeque<Bucket>,
    /// Calls admitted and not ended.
    in_flight: u32,
    /// Calls allowed at once now (ramps up after a recovery).
    limit: u32,
    last_used: Instant,
}

impl Breaker {
    fn state(&self) -> CircuitState {
        match self.phase {
            Phase::Closed => CircuitState::Closed,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
            Phase::Open { .. } => CircuitState::Open,
        }
    }
}

/// Whether a call to a dependency may go now ([`Breakers::admit`]).
#[derive(Debug)]
pub enum Admission {
    /// Go: the call holds a slot until the permit is dropped; report its outcome with
    /// [`DependencyPermit::finish`].
    Go(DependencyPermit),
    /// The dependency's concurrency limit is reached (or its probes are out): wait a little.
    Busy,
    /// The circuit is open: park the work.
    Open,
}

/// A slot of one dependency, held while a call to it runs.
#[derive(Debug)]
pub struct DependencyPermit {
    breakers: Arc<Breakers>,
    dependency: String,
    reported: bool,
}

impl DependencyPermit {
    /// The dependency the call is for.
    pub fn dependency(&self) -> &str {
        &self.dependency
    }

    /// Reports the call's outcome to the breaker (once) and frees the slot.
    pub fn finish(mut self, ok: bool) {
        self.reported = true;
        if ok {
            self.breakers.on_success(&self.dependency);
        } else {
            self.breakers.on_failure(&self.dependency);
        }
    }
}

impl Drop for DependencyPermit {
    fn drop(&mut self) {
        self.breakers.release(&self.dependency, self.reported);
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

    /// Makes room for one more breaker: forgets the one unused the longest with no call
    /// in flight, a closed one when there is one.
    fn evict(&self, map: &mut HashMap<String, Breaker>) {
        let victim = map
            .iter()
            .filter(|(_, b)| b.in_flight == 0)
            .min_by_key(|(_, b)| (b.state() != CircuitState::Closed, b.last_used))
            .or_else(|| map.iter().min_by_key(|(_, b)| b.last_used))
            .map(|(k, _)| k.clone());
        if let Some(k) = victim {
            map.remove(&k);
            gauge!(CIRCUIT_STATE, labels::GROUP => self.group.clone(), labels::DEPENDENCY => k).set(0.0);
        }
    }

    /// Runs `f` on `dependency`'s breaker, moved from Open to HalfOpen when its cooldown
    /// is over; every state change is published.
    fn with<R>(&self, dependency: &str, f: impl FnOnce(&mut Breaker, Instant, &BreakerConfig) -> R) -> R {
        let now = self.clock.now();
        let mut map = self.lock();
        if !map.contains_key(dependency) {
            while map.len() >= self.config.max_dependencies {
                self.evict(&mut map);
            }
            let fresh = Breaker {
                phase: Phase::Closed,
                window: VecDeque::new(),
                in_flight: 0,
                limit: self.config.max_concurrency,
                last_used: now,
            };
            map.insert(dependency.to_owned(), fresh);
        }
        let b = map.get_mut(dependency).expect("inserted above");
        b.last_used = now;
        let before = b.state();
        if let Phase::Open { until } = b.phase {
            if now >= until {
                b.phase = Phase::HalfOpen { probes: 0, since: now, successes: 0 };
            }
        }
        let out = f(b, now, &self.config);
        let after = b.state();
        drop(map);
        if before != after {
            self.publish(dependency, after);
        }
        out
    }

    fn publish(&self, dependency: &str, state: CircuitState) {
        gauge!(CIRCUIT_STATE, labels::GROUP => self.group.clone(), labels::DEPENDENCY => dependency.to_owned())
            .set(state.gauge_value());
        counter!(CIRCUIT_TRANSITIONS_TOTAL, labels::GROUP => self.group.clone(),
            labels::DEPENDENCY => dependency.to_owned(), labels::STATE => state.as_str())
        .increment(1);
        match state {
            CircuitState::Open => warn!(group = %self.group, dependency, "circuit breaker opened"),
            CircuitState::Closed => info!(group = %self.group, dependency, "circuit breaker closed"),
            CircuitState::HalfOpen => info!(group = %self.group, dependency, "circuit breaker half-open; probing"),
        }
    }

    /// `dependency`'s state now (HalfOpen as soon as an open breaker's cooldown is over).
    pub fn state(&self, dependency: &str) -> CircuitState {
        self.with(dependency, |b, _, _| b.state())
    }

    /// Whether `dependency` is open and its cooldown not over: hold calls to it. False
    /// when closed or half-open (claim a probe with [`try_probe`](Breakers::try_probe)).
    pub fn is_open(&self, dependency: &str) -> bool {
        self.state(dependency) == CircuitState::Open
    }

    /// Whether any breaker is not closed (open, or half-open until its probes succeeded).
    pub fn any_open(&self) -> bool {
        !self.not_closed().is_empty()
    }

    /// The dependencies whose breakers are not closed, sorted (for logs and `/readyz`).
    pub fn not_closed(&self) -> Vec<String> {
        let deps: Vec<String> = self.lock().keys().cloned().collect();
        let mut out: Vec<String> = deps.into_iter().filter(|d| self.state(d) != CircuitState::Closed).collect();
        out.sort();
        out
    }

    /// How many breakers are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no breaker is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Claims a probe of a half-open `dependency` (always granted when closed, refused
    /// while open): up to `half_open_probes` at once, each of which must report with
    /// [`on_success`](Breakers::on_success) or [`on_failure`](Breakers::on_failure).
    pub fn try_probe(&self, dependency: &str) -> bool {
        self.with(dependency, claim_probe)
    }

    /// Asks for a slot to call `dependency`; `holds_probe` when the caller already
    /// claimed a probe of it with [`try_probe`](Breakers::try_probe).
    pub fn admit(self: &Arc<Self>, dependency: &str, holds_probe: bool) -> Admission {
        let go = self.with(dependency, |b, now, config| {
            let ok = match b.phase {
                Phase::Open { .. } => return None,
                Phase::Closed => b.in_flight < b.limit,
                Phase::HalfOpen { .. } => holds_probe || claim_probe(b, now, config),
            };
            if ok {
                b.in_flight += 1;
            }
            Some(ok)
        });
        match go {
            None => Admission::Open,
            Some(false) => Admission::Busy,
            Some(true) => {
                Admission::Go(DependencyPermit { breakers: self.clone(), dependency: dependency.to_owned(), reported: false })
            }
        }
    }

    /// A slot is given back; a probe that did not report is given up.
    fn release(&self, dependency: &str, reported: bool) {
        let mut map = self.lock();
        if let Some(b) = map.get_mut(dependency) {
            b.in_flight = b.in_flight.saturating_sub(1);
            if let (false, Phase::HalfOpen { probes, .. }) = (reported, &mut b.phase) {
                *probes = probes.saturating_sub(1);
            }
        }
    }

    /// Reports a successful call of `dependency`: counted when closed (and the
    /// concurrency limit ramps up by one), one probe's success when half-open (enough of
    /// them close it), nothing while open.
    pub fn on_success(&self, dependency: &str) {
        self.with(dependency, |b, now, config| match b.phase {
            Phase::Closed => {
                record(b, now, config, true);
                b.limit = (b.limit + 1).min(config.max_concurrency);
            }
            Phase::HalfOpen { probes, since, successes } => {
                if successes + 1 >= config.half_open_probes {
                    b.phase = Phase::Closed;
                    b.window.clear();
                    b.limit = config.half_open_probes;
                } else {
                    b.phase = Phase::HalfOpen { probes: probes.saturating_sub(1), since, successes: successes + 1 };
                }
            }
            Phase::Open { .. } => {}
        });
    }

    /// Reports a failed call of `dependency`: counted when closed (opening the breaker
    /// when the window's failure rate reaches the threshold), reopens a half-open
    /// breaker, changes nothing while open.
    pub fn on_failure(&self, dependency: &str) {
        self.with(dependency, |b, now, config| match b.phase {
            Phase::Closed => {
                let (ok, failed) = record(b, now, config, false);
                let total = ok + failed;
                if total >= config.min_calls && f64::from(failed) >= config.failure_rate * f64::from(total) {
                    b.phase = Phase::Open { until: now + config.cooldown };
                }
            }
            Phase::HalfOpen { .. } => b.phase = Phase::Open { until: now + config.cooldown },
            Phase::Open { .. } => {}
        });
    }

    /// How long until `dependency` lets a probe through: zero unless it is open.
    pub fn wait_until_probe(&self, dependency: &str) -> Duration {
        self.with(dependency, |b, now, _| match b.phase {
            Phase::Open { until } => until.saturating_duration_since(now),
            Phase::Closed | Phase::HalfOpen { .. } => Duration::ZERO,
        })
    }
}

/// Grants a probe when closed, or when half-open with a probe left (probes silent for a
/// cooldown are given up first).
fn claim_probe(b: &mut Breaker, now: Instant, config: &BreakerConfig) -> bool {
    match &mut b.phase {
        Phase::Closed => true,
        Phase::Open { .. } => false,
        Phase::HalfOpen { probes, since, .. } => {
            if now >= *since + config.cooldown {
                *probes = 0;
            }
            if *probes < config.half_open_probes {
                *probes += 1;
                *since = now;
                true
            } else {
                false
            }
        }
    }
}

/// Adds one outcome to the window and returns the window's (successes, failures).
fn record(b: &mut Breaker, now: Instant, config: &BreakerConfig, ok: bool) -> (u32, u32) {
    let slice = config.window / 10;
    while b.window.front().is_some_and(|f| now.saturating_duration_since(f.start) >= config.window) {
        b.window.pop_front();
    }
    match b.window.back_mut() {
        Some(last) if now.saturating_duration_since(last.start) < slice => {}
        _ => b.window.push_back(Bucket { start: now, ok: 0, failed: 0 }),
    }
    let last = b.window.back_mut().expect("pushed above");
    if ok {
        last.ok += 1;
    } else {
        last.failed += 1;
    }
    b.window.iter().fold((0, 0), |(o, f), x| (o + x.ok, f + x.failed))
}

#[cfg(test)]
mod tests;
