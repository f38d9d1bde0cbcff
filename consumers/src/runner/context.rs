//! librdkafka callbacks: rebalances and statistics.

use std::sync::Arc;

use metrics::gauge;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Statistics};
use tracing::{info, warn};

use crate::metrics::{labels, LAG_MESSAGES, LAG_SECONDS};
use crate::runner::state::PartitionStates;

/// The consumer context of a runner.
#[derive(Debug, Clone)]
pub struct RunnerContext {
    pub shared: Arc<PartitionStates>,
}

impl ClientContext for RunnerContext {
    /// Consumer lag per partition from librdkafka's statistics: messages behind the
    /// stored position, and the age of the oldest unfinished message.
    fn stats(&self, stats: Statistics) {
        let group = self.shared.group.clone();
        for (topic, t) in &stats.topics {
            for (id, p) in &t.partitions {
                if *id < 0 || p.consumer_lag_stored < 0 {
                    continue;
                }
                let tp = (topic.as_str().into(), *id);
                let lbl = [(labels::GROUP, group.clone()), (labels::TOPIC, topic.clone()), (labels::PARTITION, id.to_string())];
                gauge!(LAG_MESSAGES, &lbl).set(p.consumer_lag_stored as f64);
                gauge!(LAG_SECONDS, &lbl).set(self.shared.oldest_age_seconds(&tp));
            }
        }
    }
}

impl ConsumerContext for RunnerContext {
    /// Before partitions move away: commit what finished (stored offsets) synchronously,
    /// and forget them, so work still running for them stores nothing.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            info!(group = %self.shared.group, partitions = tpl.count(), "partitions revoked; committing finished offsets");
            self.shared.flush_offsets();
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => {}
                Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => warn!(error = %e, "commit on revoke failed"),
            }
            self.shared.revoke(tpl);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            info!(group = %self.shared.group, partitions = tpl.count(), "partitions assigned");
            self.shared.assign(tpl);
        }
    }
}
