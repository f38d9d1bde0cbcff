//! The driver's producer: realistic RecordUpdated events published through the
//! [`EventPublisher`] at a fixed rate, each stamped with its send time.
//!
//! A pool of events from the demo's [`Sampler`](crate::demo::sample::Sampler) is encoded
//! once and cycled (encoding every event afresh would take a core the worker shares on a
//! small machine; the worker runs no dedup, so repeated eventIds cost it nothing). Every
//! tick sends what the rate owes since the rate was set (so late ticks catch up), each copy
//! stamped with the wall clock in microseconds ([`SENT_HEADER`]) right before it is handed
//! to librdkafka; a debt above one second of the rate is dropped, so a producer that cannot
//! keep up shows as an achieved rate below the offered one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ltf_kafka::EventPublisher;
use ltf_schemas::EncodedEvent;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::{now_us, SENT_HEADER};

/// Counters of the pacer, shared with the driver.
#[derive(Debug, Default)]
pub struct Sent {
    /// Events handed to librdkafka.
    pub sent: AtomicU64,
    /// Events the broker acknowledged.
    pub acked: AtomicU64,
    /// Events that failed for good (the first error is printed).
    pub failed: AtomicU64,
}

/// The running pacer: set its rate (events/s, 0 pauses it) through `rate`.
#[derive(Debug)]
pub struct Pacer {
    pub rate: watch::Sender<u64>,
    pub counts: Arc<Sent>,
    task: JoinHandle<()>,
}

impl Pacer {
    pub fn start(publisher: EventPublisher, pool: Vec<EncodedEvent>, tick: Duration) -> Pacer {
        let (rate, rx) = watch::channel(0u64);
        let counts = Arc::new(Sent::default());
        let task = tokio::spawn(pace(publisher, pool, tick, rx, counts.clone()));
        Pacer { rate, counts, task }
    }

    /// Events sent and not failed.
    pub fn sent_ok(&self) -> u64 {
        self.counts.sent.load(Ordering::Relaxed).saturating_sub(self.counts.failed.load(Ordering::Relaxed))
    }

    /// Stops sending and waits (at most `timeout`) for every sent event to be acknowledged
    /// or failed.
    pub async fn stop(self, timeout: Duration) {
        let _ = self.rate.send(0);
        self.task.abort();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let c = &self.counts;
            if c.acked.load(Ordering::Relaxed) + c.failed.load(Ordering::Relaxed) >= c.sent.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn pace(
    publisher: EventPublisher,
    pool: Vec<EncodedEvent>,
    tick: Duration,
    mut rate: watch::Receiver<u64>,
    counts: Arc<Sent>,
) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next = 0usize;
    // Since the rate was set (or the debt dropped): when, and events sent since.
    let mut since = Instant::now();
    let mut sent_since = 0u64;
    let reported = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        interval.tick().await;
        if rate.has_changed().unwrap_or(false) {
            rate.borrow_and_update();
            since = Instant::now();
            sent_since = 0;
        }
        let r = *rate.borrow();
        if r == 0 {
            continue;
        }
        let owed = (r as f64 * since.elapsed().as_secs_f64()) as u64;
        let mut n = owed.saturating_sub(sent_since);
        if n > r {
            // More than a second behind: the producer cannot keep up; forget the debt.
            since = Instant::now();
            sent_since = 0;
            n = (r as f64 * tick.as_secs_f64()).ceil() as u64;
        }
        if n == 0 {
            continue;
        }
        let mut batch = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let mut m = pool[next].clone();
            next = (next + 1) % pool.len();
            m.set_header(SENT_HEADER, now_us().to_string());
            batch.push(m);
        }
        sent_since += n;
        counts.sent.fetch_add(n, Ordering::Relaxed);
        let (p, c, reported) = (publisher.clone(), counts.clone(), reported.clone());
        // Enqueued at once by its own task; the pacer does not wait for acknowledgements.
        tokio::spawn(async move {
            for r in p.publish_encoded_batch(&batch).await {
                match r {
                    Ok(_) => c.acked.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        if !reported.swap(true, Ordering::Relaxed) {
                            eprintln!("publishing failed (first error; later ones are only counted): {e}");
                        }
                        c.failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        });
    }
}
