//! Kafka transactions: a batch of messages becomes visible to readers (`read_committed`,
//! librdkafka's default) all at once when committed, or never when aborted.
//!
//! The outbox relay writes each batch in a transaction, so a message Kafka refuses cannot
//! be overtaken by a later message of its key that Kafka took: both are aborted, and the
//! later one is written again after the refused one is dealt with.
//!
//! A transactional publisher heals itself: after any failure of a transaction step that
//! leaves the producer in doubt (a timeout, a fenced or fatal producer), the producer is
//! replaced by a new one of the same `transactional.id`, whose initialization aborts what
//! the old one left open.

use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use ltf_schemas::EncodedEvent;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use tracing::debug;

use super::{delivered, event_id_of, EventPublisher};
use crate::PublishError;

/// How [`EventPublisher::publish_transaction`] ended.
#[derive(Debug)]
pub enum TransactionOutcome {
    /// Every message was acknowledged and the transaction committed: all are visible.
    Committed,
    /// Kafka refused these messages for good (their index in the transaction and why); the
    /// transaction was aborted, none of its messages is visible.
    Refused(Vec<(usize, PublishError)>),
    /// A failure a retry may heal (a lost broker, a timeout, a failed commit); nothing of
    /// the transaction is visible.
    Failed(PublishError),
}

/// Whether the message was taken back unsent by an abort (not refused, not failed).
fn purged(e: &PublishError) -> bool {
    matches!(e, PublishError::Kafka { source, .. }
        if matches!(source.rdkafka_error_code(), Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)))
}

/// How long initializing, committing or aborting a transaction may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

impl EventPublisher {
    /// A publisher of the same settings and codec whose producer writes in transactions
    /// under `transactional_id`. At most one producer of an id is live: starting one fences
    /// (stops) the previous one and aborts its open transaction, so each concurrent writer
    /// needs its own id, and a restarted writer should take its old one.
    pub fn transactional(&self, transactional_id: &str) -> Result<EventPublisher, PublishError> {
        if transactional_id.trim().is_empty() {
            return Err(PublishError::Config { key: "transactional_id".into(), reason: "must not be empty".into() });
        }
        let mut config = self.config.clone();
        config.transactional_id = Some(transactional_id.to_owned());
        let mut publisher = EventPublisher::new(&config, self.codec.clone())?;
        // Same cluster: what one read of the topics' limits, the other knows.
        publisher.topic_limits = self.topic_limits.clone();
        Ok(publisher)
    }

    /// Publishes `msgs` in one transaction: committed when Kafka took every one; aborted
    /// at the first failure (librdkafka then takes back what it has not sent, rather than
    /// holding it until it times out), so none is visible to readers of committed messages.
    pub async fn publish_transaction(&self, msgs: &[&EncodedEvent]) -> TransactionOutcome {
        if let Err(e) = self.begin_transaction().await {
            return TransactionOutcome::Failed(e);
        }
        let mut deliveries = FuturesUnordered::new();
        let mut failed = None;
        for (at, &msg) in msgs.iter().enumerate() {
            match self.enqueue(msg).await {
                Ok(fut) => deliveries.push(async move { (at, delivered(&msg.topic, || event_id_of(msg), fut).await) }),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let mut refused = Vec::new();
        let mut aborted = false;
        if failed.is_some() {
            self.abort_quietly().await;
            aborted = true;
        }
        while let Some((at, result)) = deliveries.next().await {
            match result {
                Ok(_) => {}
                Err(e) if purged(&e) => {}
                Err(e) => {
                    if e.is_permanent() {
                        refused.push((at, e));
                    } else {
                        failed.get_or_insert(e);
                    }
                    if !aborted {
                        aborted = true;
                        self.abort_quietly().await;
                    }
                }
            }
        }
        if let Some(e) = failed {
            return TransactionOutcome::Failed(e);
        }
        if !refused.is_empty() {
            refused.sort_by_key(|(at, _)| *at);
            return TransactionOutcome::Refused(refused);
        }
        match self.commit_transaction().await {
            Ok(()) => TransactionOutcome::Committed,
            Err(e) => {
                // Aborted already (commit_transaction does it).
                self.renew();
                TransactionOutcome::Failed(e)
            }
        }
    }

    /// Aborts the open transaction after a failure and replaces the producer: the failed
    /// message left a gap in the producer's sequence numbers that librdkafka does not
    /// repair across transactions; a new producer of the same id starts a new epoch.
    async fn abort_quietly(&self) {
        if let Err(e) = self.abort_transaction().await {
            debug!(error = %e, "aborting a failed transaction failed");
        }
        self.renew();
    }

    /// Replaces the producer by a new one of the same id (a new epoch) after a failure.
    fn renew(&self) {
        let producer = self.producer();
        if let Err(e) = self.rebuild_if(&producer, |_| Some("a transaction failed; the next starts a new epoch".into())) {
            debug!(error = %e, "replacing the producer failed");
        }
    }

    /// Starts a transaction (initializing the producer's transactions first, once per
    /// producer). Messages published until [`commit_transaction`](Self::commit_transaction)
    /// or [`abort_transaction`](Self::abort_transaction) belong to it.
    async fn begin_transaction(&self) -> Result<(), PublishError> {
        let producer = self.producer();
        let handle = producer.client().native_ptr() as usize;
        let ready = *self.txn_ready.lock().unwrap_or_else(std::sync::PoisonError::into_inner) == handle;
        if !ready {
            self.step(&producer, "initialize", |p| p.init_transactions(TXN_TIMEOUT)).await?;
            *self.txn_ready.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = handle;
        }
        self.step(&producer, "begin", |p| p.begin_transaction()).await
    }

    /// Commits the open transaction: every message published in it was acknowledged and
    /// is now visible. On failure the transaction is aborted (or the producer replaced),
    /// and none of its messages is visible to readers of committed messages.
    async fn commit_transaction(&self) -> Result<(), PublishError> {
        let producer = self.producer();
        match self.step(&producer, "commit", |p| p.commit_transaction(TXN_TIMEOUT)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Err(abort) = self.abort_transaction().await {
                    debug!(error = %abort, "aborting after a failed commit failed");
                }
                Err(e)
            }
        }
    }

    /// Aborts the open transaction: none of its messages becomes visible to readers of
    /// committed messages. A producer that cannot abort is replaced.
    async fn abort_transaction(&self) -> Result<(), PublishError> {
        let producer = self.producer();
        self.step(&producer, "abort", |p| p.abort_transaction(TXN_TIMEOUT)).await
    }

    /// Runs a blocking transaction call off the async threads; after a failure that does
    /// not leave the producer ready for the next step (anything but an abortable error of
    /// a commit), the producer is replaced.
    async fn step(
        &self,
        producer: &FutureProducer,
        stage: &'static str,
        call: impl FnOnce(&FutureProducer) -> Result<(), KafkaError> + Send + 'static,
    ) -> Result<(), PublishError> {
        let p = producer.clone();
        let result = tokio::task::spawn_blocking(move || call(&p)).await.unwrap_or_else(|join| {
            debug!(error = %join, "a transaction call did not finish");
            Err(KafkaError::Canceled)
        });
        let Err(source) = result else { return Ok(()) };
        let abortable = matches!(&source, KafkaError::Transaction(e) if e.txn_requires_abort() && !e.is_fatal());
        if !(stage == "commit" && abortable) {
            self.rebuild_if(producer, |_| Some(format!("a transaction failed to {stage}: {source}")))?;
        }
        Err(PublishError::Transaction { stage, source })
    }
}
