//! The DLQ-rate fuse: stops a worker that dead-letters too much of what it reads.
//!
//! A bad deploy, a schema mix-up or a broken dependency that handlers misreport as
//! permanent would otherwise move a whole topic into the dead-letter topic at full speed.
//! The fuse watches the share of dead-lettered events among the last
//! [`window`](FuseConfig::window) finished events and trips when it exceeds
//! [`max_dead_letter_share`](FuseConfig::max_dead_letter_share), once at least
//! [`min_events`](FuseConfig::min_events) were seen.
//!
//! Guarantees: once tripped the fuse stays tripped — the worker stops consuming and
//! `/readyz` fails — until an operator (or a restart) calls [`DlqFuse::reset`]; the
//! gauge [`FUSE_TRIPPED`]`{group}` is 1 exactly while it is
//! tripped; it is thread-safe and [`is_tripped`](DlqFuse::is_tripped) never blocks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use metrics::gauge;
use serde::Deserialize;
use tracing::error;

use crate::metrics::{labels, FUSE_TRIPPED};
use crate::ConsumeError;

/// DLQ-rate fuse settings. Every field has a default; [`validate`](FuseConfig::validate)
/// names the bad key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FuseConfig {
    /// How many of the most recent finished events the share is taken over. Default 200.
    pub window: u32,
    /// The share of dead-lettered events in the window above which the fuse trips, in
    /// (0, 1]; 1 never trips (disables the fuse). Default 0.5.
    pub max_dead_letter_share: f64,
    /// Finished events needed before the fuse can trip, so a few early failures do not
    /// stop a fresh worker; at most `window`. Default 20.
    pub min_events: u32,
}

impl Default for FuseConfig {
    fn default() -> Self {
        FuseConfig { window: 200, max_dead_letter_share: 0.5, min_events: 20 }
    }
}

impl FuseConfig {
    /// Checks every field; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConsumeError> {
        let bad = |key: &str, reason: &str| Err(ConsumeError::Config { key: key.into(), reason: reason.into() });
        if !(1..=1_000_000).contains(&self.window) {
            return bad("window", "must be between 1 and 1000000");
        }
        if !(self.max_dead_letter_share > 0.0 && self.max_dead_letter_share <= 1.0) {
            return bad("max_dead_letter_share", "must be above 0 and at most 1");
        }
        if self.min_events == 0 || self.min_events > self.window {
            return bad("min_events", "must be between 1 and window");
        }
        Ok(())
    }
}

/// The sliding window of outcomes.
#[derive(Debug, Default)]
struct Window {
    /// Most recent last; `true` = dead-lettered.
    outcomes: VecDeque<bool>,
    dead: usize,
}

/// The DLQ-rate fuse of one consumer group.
#[derive(Debug)]
pub struct DlqFuse {
    group: String,
    config: FuseConfig,
    window: Mutex<Window>,
    tripped: AtomicBool,
}

impl DlqFuse {
    /// An untripped fuse for `group`; sets its gauge to 0.
    pub fn new(group: impl Into<String>, config: FuseConfig) -> DlqFuse {
        let fuse = DlqFuse { group: group.into(), config, window: Mutex::default(), tripped: AtomicBool::new(false) };
        fuse.publish(false);
        fuse
    }

    /// The settings.
    pub fn config(&self) -> &FuseConfig {
        &self.config
    }

    fn publish(&self, tripped: bool) {
        gauge!(FUSE_TRIPPED, labels::GROUP => self.group.clone()).set(if tripped { 1.0 } else { 0.0 });
    }

    /// Records one finished event (`dead_lettered`: it went to the DLQ; otherwise it was
    /// handled, or acknowledged as a duplicate). Returns whether the fuse is tripped now.
    pub fn record(&self, dead_lettered: bool) -> bool {
        if self.is_tripped() {
            return true;
        }
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        w.outcomes.push_back(dead_lettered);
        w.dead += usize::from(dead_lettered);
        while w.outcomes.len() > self.config.window as usize {
            if w.outcomes.pop_front() == Some(true) {
                w.dead -= 1;
            }
        }
        let seen = w.outcomes.len();
        let share = w.dead as f64 / seen as f64;
        if seen >= self.config.min_events as usize && share > self.config.max_dead_letter_share {
            // Only the first caller to trip it logs and sets the gauge.
            if !self.tripped.swap(true, Ordering::SeqCst) {
                error!(
                    group = %self.group, dead_lettered = w.dead, of = seen, max_share = self.config.max_dead_letter_share,
                    "DLQ-rate fuse tripped: the worker stops consuming until it is reset"
                );
                self.publish(true);
            }
            return true;
        }
        false
    }

    /// Whether the fuse tripped (and was not reset since).
    pub fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// Clears the window and the tripped state.
    pub fn reset(&self) {
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        *w = Window::default();
        self.tripped.store(false, Ordering::SeqCst);
        self.publish(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::test_recorder::TestRecorder;

    fn fuse(window: u32, share: f64, min_events: u32) -> DlqFuse {
        DlqFuse::new("g", FuseConfig { window, max_dead_letter_share: share, min_events })
    }

    #[test]
    fn does_not_trip_before_min_events() {
        let f = fuse(10, 0.5, 5);
        for _ in 0..4 {
            assert!(!f.record(true));
        }
        assert!(f.record(true), "the 5th dead letter of 5 trips it");
        assert!(f.is_tripped());
    }

    #[test]
    fn trips_only_above_the_share() {
        let f = fuse(10, 0.5, 4);
        for i in 0..10 {
            assert!(!f.record(i % 2 == 1), "at most half is not above the share");
        }
        assert!(!f.is_tripped());
        // Window: 5 dead of 10, a success first. A dead letter pushes it out: 6 of 10.
        assert!(f.record(true));
    }

    #[test]
    fn old_events_leave_the_window() {
        let f = fuse(4, 0.5, 4);
        for _ in 0..2 {
            f.record(true);
        }
        for _ in 0..100 {
            assert!(!f.record(false));
        }
        // The two early dead letters left the window long ago.
        assert!(!f.record(true));
        assert!(!f.record(true));
        assert!(f.record(true), "3 of the last 4");
    }

    #[test]
    fn stays_tripped_until_reset() {
        let f = fuse(4, 0.5, 2);
        f.record(true);
        assert!(f.record(true));
        for _ in 0..10 {
            assert!(f.record(false), "successes do not untrip it");
        }
        assert!(f.is_tripped());
        f.reset();
        assert!(!f.is_tripped());
        assert!(!f.record(true), "the window started over");
        assert!(f.record(true));
    }

    #[test]
    fn a_share_of_one_never_trips() {
        let f = fuse(10, 1.0, 1);
        for _ in 0..50 {
            assert!(!f.record(true));
        }
    }

    #[test]
    fn the_gauge_follows_the_state() {
        let recorder = TestRecorder::default();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let key = format!("{FUSE_TRIPPED}{{group=g}}");
        let f = fuse(2, 0.5, 2);
        assert_eq!(recorder.gauge(&key), Some(0.0));
        f.record(true);
        f.record(true);
        assert_eq!(recorder.gauge(&key), Some(1.0));
        f.reset();
        assert_eq!(recorder.gauge(&key), Some(0.0));
    }

    #[test]
    fn config_keys_defaults_and_validation() {
        let c: FuseConfig = serde_json::from_str(r#"{"window": 50}"#).unwrap();
        assert_eq!(c, FuseConfig { window: 50, max_dead_letter_share: 0.5, min_events: 20 });
        FuseConfig::default().validate().unwrap();
        assert!(serde_json::from_str::<FuseConfig>(r#"{"share": 0.1}"#).is_err());
        let e = FuseConfig { window: 0, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("`window`"), "{e}");
        let e = FuseConfig { max_dead_letter_share: 0.0, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("`max_dead_letter_share`"), "{e}");
        let e = FuseConfig { min_events: 500, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("`min_events`"), "{e}");
    }
}
