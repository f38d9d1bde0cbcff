//! [`WorkerBuilder`]: assembles the [`Pipeline`] of one consumer group from what it must
//! have (group, codec, handlers, dead-letter publisher) and what it may tune (dedup store,
//! retry policy, circuit breakers, DLQ-rate fuse), with the runtime's defaults.

use std::sync::Arc;
use std::time::Duration;

use ltf_kafka::EventPublisher;
use ltf_schemas::EventCodec;

use crate::middleware::dedup::DedupStore;
use crate::middleware::{BreakerConfig, Breakers, DeadLetterPublisher, DlqFuse, FuseConfig, RetryPolicy};
use crate::pipeline::Pipeline;
use crate::Router;

/// Builds a worker's [`Pipeline`]:
///
/// ```ignore
/// let pipeline = WorkerBuilder::new(&group, codec, router, publisher)
///     .dedup(Arc::new(DedupStore::new(pool, retention)))
///     .retry(RetryPolicy::default())
///     .build();
/// ```
///
/// Defaults: no dedup store (handlers that need one fail with a `config` error), the
/// default [`RetryPolicy`], [`Breakers`] with the default [`BreakerConfig`], a [`DlqFuse`]
/// with the default [`FuseConfig`].
#[derive(Debug)]
pub struct WorkerBuilder {
    group: String,
    codec: Arc<EventCodec>,
    router: Router,
    publisher: EventPublisher,
    dedup: Option<Arc<DedupStore>>,
    retry: RetryPolicy,
    breakers: Option<Arc<Breakers>>,
    fuse: Option<Arc<DlqFuse>>,
    max_park: Option<Duration>,
}

impl WorkerBuilder {
    /// A builder for consumer group `group`: events decoded with `codec`, handled by
    /// `router`'s handlers, dead letters published with `publisher`.
    pub fn new(group: impl Into<String>, codec: Arc<EventCodec>, router: Router, publisher: EventPublisher) -> WorkerBuilder {
        WorkerBuilder {
            group: group.into(),
            codec,
            router,
            publisher,
            dedup: None,
            retry: RetryPolicy::default(),
            breakers: None,
            fuse: None,
            max_park: None,
        }
    }

    /// The dedup store the pipeline checks and records events in.
    pub fn dedup(mut self, store: Arc<DedupStore>) -> WorkerBuilder {
        self.dedup = Some(store);
        self
    }

    /// [`WorkerBuilder::dedup`] when `store` is `Some`.
    pub fn dedup_opt(mut self, store: Option<Arc<DedupStore>>) -> WorkerBuilder {
        self.dedup = store;
        self
    }

    /// The retry policy of handler errors.
    pub fn retry(mut self, policy: RetryPolicy) -> WorkerBuilder {
        self.retry = policy;
        self
    }

    /// Circuit breakers with `config`.
    pub fn breaker_config(mut self, config: BreakerConfig) -> WorkerBuilder {
        self.breakers = Some(Arc::new(Breakers::new(&self.group, config)));
        self
    }

    /// These circuit breakers (shared, e.g. to watch their state).
    pub fn breakers(mut self, breakers: Arc<Breakers>) -> WorkerBuilder {
        self.breakers = Some(breakers);
        self
    }

    /// A DLQ-rate fuse with `config`.
    pub fn fuse_config(mut self, config: FuseConfig) -> WorkerBuilder {
        self.fuse = Some(Arc::new(DlqFuse::new(&self.group, config)));
        self
    }

    /// How long an event may stay parked on a failed dependency before its handler is
    /// told ([`crate::HandlerContext::park_expired`]) and a dependency error fails it with
    /// `dependency_unavailable`. Default `None`: parked without limit (audit, analytics
    /// and cache must not lose an event to an outage; the automation worker sets one).
    pub fn max_park(mut self, max_park: Option<Duration>) -> WorkerBuilder {
        self.max_park = max_park;
        self
    }

    /// The pipeline.
    pub fn build(self) -> Pipeline {
        let breakers = self.breakers.unwrap_or_else(|| Arc::new(Breakers::new(&self.group, BreakerConfig::default())));
        let fuse = self.fuse.unwrap_or_else(|| Arc::new(DlqFuse::new(&self.group, FuseConfig::default())));
        let dead_letters = Arc::new(DeadLetterPublisher::new(self.publisher, &self.group));
        let mut pipeline =
            Pipeline::new(self.group, self.codec, self.router, self.dedup, self.retry, breakers, fuse, dead_letters);
        pipeline.max_park = self.max_park;
        pipeline
    }
}
