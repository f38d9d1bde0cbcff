//! The breakers' states, transitions, limits and settings, on a manual clock.

use super::*;

/// Opens at 3 outcomes with half of them failures; one probe at a time.
fn config() -> BreakerConfig {
    BreakerConfig {
        min_calls: 3,
        failure_rate: 0.5,
        cooldown: Duration::from_secs(10),
        half_open_probes: 1,
        max_concurrency: 4,
        ..BreakerConfig::default()
    }
}

fn breakers() -> (Breakers, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    (Breakers::with_clock("g", config(), clock.clone()), clock)
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
    assert_eq!(b.len(), 1024);
    assert_eq!(b.state("webhook:h4999.example:443"), CircuitState::Open, "the newest are kept");
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
fn a_failure_rate_over_the_window_opens_it_not_a_run_of_failures() {
    let (b, _) = breakers();
    b.on_failure("smtp");
    b.on_failure("smtp");
    assert_eq!(b.state("smtp"), CircuitState::Closed, "fewer calls than min_calls");
    let (b, clock) = breakers();
    for _ in 0..9 {
        b.on_success("smtp");
        b.on_success("smtp");
        b.on_failure("smtp");
    }
    assert_eq!(b.state("smtp"), CircuitState::Closed, "one call in three failing stays below the rate");
    // Outcomes older than the window no longer count: three failures after a quiet
    // window are all there is.
    clock.advance(Duration::from_secs(11));
    let (b2, clock2) = breakers();
    for _ in 0..20 {
        b2.on_success("smtp");
    }
    clock2.advance(Duration::from_secs(11));
    for _ in 0..3 {
        b2.on_failure("smtp");
    }
    assert_eq!(b2.state("smtp"), CircuitState::Open, "the old successes left the window");
    for _ in 0..4 {
        b.on_failure("smtp");
        b.on_failure("smtp");
        b.on_success("smtp");
    }
    assert_eq!(b.state("smtp"), CircuitState::Open, "interleaved failures open it at the rate");
    assert!(b.is_open("smtp"));
    assert!(b.any_open());
    assert_eq!(b.not_closed(), vec!["smtp".to_owned()]);
    assert!(!b.is_open("postgres"), "breakers are per dependency");
}

#[test]
fn half_open_admits_a_few_probes_and_a_recovered_dependency_ramps_up() {
    let clock = Arc::new(ManualClock::new());
    let b = Arc::new(Breakers::with_clock("g", BreakerConfig { half_open_probes: 2, ..config() }, clock.clone()));
    let go = |b: &Arc<Breakers>| match b.admit("hook", false) {
        Admission::Go(p) => Some(p),
        Admission::Busy => None,
        Admission::Open => panic!("open"),
    };
    // Never opened: the full concurrency.
    let held: Vec<_> = (0..4).map(|_| go(&b).expect("a slot")).collect();
    assert!(go(&b).is_none(), "max_concurrency calls at once");
    drop(held);
    for _ in 0..3 {
        b.on_failure("hook");
    }
    assert!(matches!(b.admit("hook", false), Admission::Open));
    clock.advance(Duration::from_secs(10));
    let (p1, p2) = (go(&b).expect("probe 1"), go(&b).expect("probe 2"));
    assert!(go(&b).is_none(), "two probes at a time");
    p1.finish(true);
    assert_eq!(b.state("hook"), CircuitState::HalfOpen, "one success is not enough");
    p2.finish(true);
    assert_eq!(b.state("hook"), CircuitState::Closed);
    // Recovering: two calls at once, then one more per success.
    let a = go(&b).expect("1");
    let c = go(&b).expect("2");
    assert!(go(&b).is_none(), "the limit starts at half_open_probes");
    a.finish(true);
    let d = go(&b).expect("a freed slot");
    let e = go(&b).expect("the limit grew by one");
    assert!(go(&b).is_none());
    drop((c, d, e));
}

#[test]
fn a_probe_that_never_reports_is_given_back_when_its_call_ends() {
    let clock = Arc::new(ManualClock::new());
    let b = Arc::new(Breakers::with_clock("g", config(), clock.clone()));
    for _ in 0..3 {
        b.on_failure("hook");
    }
    clock.advance(Duration::from_secs(10));
    let p = match b.admit("hook", false) {
        Admission::Go(p) => p,
        other => panic!("{other:?}"),
    };
    assert!(matches!(b.admit("hook", false), Admission::Busy));
    drop(p);
    assert!(matches!(b.admit("hook", false), Admission::Go(_)), "the silent probe's slot came back");
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
    // Closed again with a fresh window.
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
    let c: BreakerConfig = serde_json::from_str(r#"{"cooldown_ms": 2500, "window_ms": 30000, "min_calls": 20}"#).unwrap();
    let want = BreakerConfig {
        cooldown: Duration::from_millis(2500),
        window: Duration::from_secs(30),
        min_calls: 20,
        ..BreakerConfig::default()
    };
    assert_eq!(c, want);
    BreakerConfig::default().validate().unwrap();
    assert!(serde_json::from_str::<BreakerConfig>(r#"{"cooldown": 1}"#).is_err());
    for (bad, key) in [
        (BreakerConfig { min_calls: 0, ..Default::default() }, "`min_calls`"),
        (BreakerConfig { failure_rate: 0.0, ..Default::default() }, "`failure_rate`"),
        (BreakerConfig { failure_rate: 1.5, ..Default::default() }, "`failure_rate`"),
        (BreakerConfig { window: Duration::ZERO, ..Default::default() }, "`window_ms`"),
        (BreakerConfig { half_open_probes: 0, ..Default::default() }, "`half_open_probes`"),
        (BreakerConfig { max_concurrency: 1, ..Default::default() }, "`max_concurrency`"),
        (BreakerConfig { max_dependencies: 0, ..Default::default() }, "`max_dependencies`"),
    ] {
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
    let e = BreakerConfig { cooldown: Duration::ZERO, ..Default::default() }.validate().unwrap_err().to_string();
    assert!(e.contains("`cooldown_ms`"), "{e}");
}
