//! The relay loop: batches while there is work, then waits for a notification.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::counter;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use crate::metrics::{labels, RELAY_FAILURES_TOTAL};
use crate::relay::batch::{run_batch, BatchReport};
use crate::relay::housekeeping::{prune, sample_backlog};
use crate::relay::{Backlog, RelayConfig, RelayError};
use ltf_domain::outbox::{self, NOTIFY_CHANNEL as CHANNEL};
use ltf_kafka::EventPublisher;

/// The outbox relay. See the [module documentation](crate::relay) for its guarantees.
/// Clones share one slot and publish their batches one at a time.
#[derive(Debug, Clone)]
pub struct Relay {
    pool: PgPool,
    publisher: EventPublisher,
    config: RelayConfig,
    slot: Arc<Mutex<Option<Slot>>>,
}

/// The relay's slot: the connection holding its slot lock, and the transactional
/// publisher named after the slot.
struct Slot {
    lock: PgConnection,
    publisher: EventPublisher,
    id: String,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("transactional_id", &self.id).finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay publishing the outbox of `pool` through `publisher`.
    pub fn new(pool: PgPool, publisher: EventPublisher, config: RelayConfig) -> Result<Relay, RelayError> {
        config.validate()?;
        Ok(Relay { pool, publisher, config, slot: Arc::default() })
    }

    /// Takes the lowest free relay slot and a transactional publisher named after it.
    async fn claim_slot(&self) -> Result<Slot, RelayError> {
        let mut lock = PgConnection::connect_with(&self.pool.connect_options()).await?;
        let slot = outbox::claim_relay_slot(&mut lock, self.config.max_relays)
            .await?
            .ok_or(RelayError::NoSlot { max_relays: self.config.max_relays })?;
        let id = format!("{}.relay-{slot}", self.publisher.codec().topics().prefix());
        let publisher = self.publisher.transactional(&id)?;
        info!(transactional_id = %id, "relay slot taken");
        Ok(Slot { lock, publisher, id })
    }

    /// Publishes one batch: claims up to `max_aggregates` aggregates no other relay holds
    /// and publishes up to `batch_size` of their lowest unsent rows.
    pub async fn relay_once(&self) -> Result<BatchReport, RelayError> {
        let mut held = self.slot.lock().await;
        let result = self.batch(&mut held).await;
        if let Err(e) = &result {
            counter!(RELAY_FAILURES_TOTAL, labels::REASON => e.reason()).increment(1);
            // A lost slot connection freed the slot: another relay may take it (and fence
            // this relay's transactions). Take a slot again before the next batch.
            if let Some(slot) = held.as_mut() {
                if slot.lock.ping().await.is_err() {
                    warn!(transactional_id = %slot.id, "the relay slot's connection is gone; taking a slot again");
                    *held = None;
                }
            }
        }
        result
    }

    async fn batch(&self, held: &mut Option<Slot>) -> Result<BatchReport, RelayError> {
        let slot = match held {
            Some(slot) => slot,
            None => held.insert(self.claim_slot().await?),
        };
        let mut conn = self.pool.acquire().await?;
        run_batch(&mut conn, &slot.publisher, &self.config).await
    }

    /// Publishes batches until one finds nothing to do; returns the rows published.
    /// Rows held by another relay are left to it.
    pub async fn drain(&self) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            let report = self.relay_once().await?;
            if report.published == 0 {
                return Ok(total);
            }
            total += report.published;
        }
    }

    /// The backlog now; also sets the backlog gauges.
    pub async fn backlog(&self) -> Result<Backlog, RelayError> {
        Ok(sample_backlog(&self.pool).await?)
    }

    /// Deletes sent rows older than the retention; returns how many.
    pub async fn prune(&self) -> Result<u64, RelayError> {
        Ok(prune(&self.pool, self.config.retention).await?)
    }

    /// Runs until `shutdown` resolves: drains the outbox, then waits for a notification
    /// of new rows (or the poll interval), samples the backlog and prunes sent rows on
    /// their intervals. A failed batch is logged, counted and retried after a backoff;
    /// the relay itself only stops on `shutdown`. A batch in progress when `shutdown`
    /// resolves is finished (or fails) first, so what was published is marked sent.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), RelayError> {
        tokio::pin!(shutdown);
        let mut listener = self.listen().await;
        let mut backoff = self.config.min_backoff;
        let mut next_backlog = Instant::now();
        let mut next_prune = Instant::now();
        info!(batch_size = self.config.batch_size, "relay started");
        loop {
            let idle = match self.relay_once().await {
                Ok(report) => {
                    backoff = self.config.min_backoff;
                    if report.published > 0 {
                        debug!(published = report.published, aggregates = report.aggregates, "relay batch");
                    }
                    report.published == 0
                }
                Err(e) => {
                    warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "relay batch failed; retrying");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    continue;
                }
            };
            let now = Instant::now();
            if now >= next_backlog {
                next_backlog = now + self.config.backlog_interval;
                if let Err(e) = sample_backlog(&self.pool).await {
                    warn!(error = %e, "sampling the outbox backlog failed");
                }
            }
            if now >= next_prune {
                next_prune = now + self.config.prune_interval;
                match prune(&self.pool, self.config.retention).await {
                    Ok(0) => {}
                    Ok(n) => debug!(pruned = n, "pruned sent outbox rows"),
                    Err(e) => warn!(error = %e, "pruning the outbox failed"),
                }
            }
            if idle {
                let wait = self.config.poll_interval.min(self.config.backlog_interval);
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = notified(&mut listener, wait) => {}
                }
            }
        }
        info!("relay stopped");
        Ok(())
    }

    /// A listener on the outbox channel; `None` (polling only) when it cannot connect now.
    async fn listen(&self) -> Option<PgListener> {
        match PgListener::connect_with(&self.pool).await {
            Ok(mut l) => match l.listen(CHANNEL).await {
                Ok(()) => Some(l),
                Err(e) => {
                    warn!(error = %e, "LISTEN failed; polling the outbox instead");
                    None
                }
            },
            Err(e) => {
                warn!(error = %e, "no notification connection; polling the outbox instead");
                None
            }
        }
    }
}

/// Returns on the next notification, or after `wait`. The listener reconnects by itself
/// after a lost connection (a notification sent meanwhile is covered by the next poll).
async fn notified(listener: &mut Option<PgListener>, wait: Duration) {
    match listener {
        Some(l) => {
            if let Ok(Err(e)) = tokio::time::timeout(wait, l.recv()).await {
                debug!(error = %e, "outbox listener lost its connection");
                tokio::time::sleep(wait).await;
            }
        }
        None => tokio::time::sleep(wait).await,
    }
}
