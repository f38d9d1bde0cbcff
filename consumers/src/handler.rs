//! The handler API: what a worker's handler implements and what it is given.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use ltf_schemas::{DomainEvent, EventType, Headers};
use rdkafka::message::Message;
use uuid::Uuid;

use std::sync::Mutex;
use std::time::Duration;

use crate::middleware::circuit_breaker::{Admission, DependencyPermit};
use crate::middleware::dedup::{DedupStore, Recording};
use crate::middleware::Breakers;
use crate::{ErrorClass, MessageHeaders};

/// Kafka metadata of the message an event came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The topic it was read from (an event topic or the group's retry topic); shared by
    /// the messages of a partition, not copied per message.
    pub topic: Arc<str>,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The Kafka key (the aggregateId).
    pub key: Option<String>,
    /// Broker or create timestamp, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The headers, as (name, UTF-8 value).
    pub headers: MessageHeaders,
}

impl Meta {
    /// The metadata of a fetched message; header values as UTF-8 (lossy).
    pub fn of(msg: &impl Message) -> Meta {
        Meta::in_topic(msg, msg.topic().into())
    }

    /// [`Meta::of`] a message of `topic` (its name, shared).
    pub(crate) fn in_topic(msg: &impl Message, topic: Arc<str>) -> Meta {
        let headers = msg.headers().map(MessageHeaders::of).unwrap_or_default();
        Meta {
            topic,
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().map(|k| match std::str::from_utf8(k) {
                Ok(key) => key.to_owned(),
                Err(_) => String::from_utf8_lossy(k).into_owned(),
            }),
            timestamp_ms: msg.timestamp().to_millis(),
            headers,
        }
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

/// A decoded event as a handler sees it: the typed event with its envelope, and where it
/// came from.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event.
    pub event: DomainEvent,
    /// Kafka metadata.
    pub meta: Arc<Meta>,
}

impl Event {
    /// The eventId.
    pub fn event_id(&self) -> Uuid {
        self.event.event_id()
    }

    /// The event type.
    pub fn event_type(&self) -> EventType {
        self.event.event_type()
    }

    /// The ordering key (DESIGN.md): recordId for record events, else the aggregateId;
    /// taken from the `ordering-key` header when present.
    pub fn ordering_key(&self) -> String {
        self.meta.header(Headers::ORDERING_KEY).map_or_else(|| self.event.ordering_key().to_owned(), str::to_owned)
    }
}

/// Why a handler failed, and what the runtime should do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    /// Whether trying again may succeed (a timeout, a dependency down). Only retryable
    /// errors are retried; others are dead-lettered at once.
    pub retryable: bool,
    /// The bounded class for metrics and the `dlq-error-class` header.
    pub class: ErrorClass,
    /// What went wrong, for logs and the `dlq-error-message` header. Never secrets.
    pub message: String,
    /// The downstream dependency that failed (`postgres`, `smtp`, a webhook host): its
    /// circuit breaker counts the failure, and while it is open the runtime pauses
    /// instead of retrying or dead-lettering.
    pub dependency: Option<String>,
}

impl HandlerError {
    /// A failure that may heal on a later attempt.
    pub fn retryable(class: ErrorClass, message: impl fmt::Display) -> HandlerError {
        HandlerError { retryable: true, class, message: message.to_string(), dependency: None }
    }

    /// A failure that will not heal by trying again (invalid data, a refused request).
    pub fn permanent(class: ErrorClass, message: impl fmt::Display) -> HandlerError {
        HandlerError { retryable: false, class, message: message.to_string(), dependency: None }
    }

    /// Marks the failure as an outage of `dependency` (retryable, counted by its breaker).
    pub fn from_dependency(mut self, dependency: impl Into<String>) -> HandlerError {
        self.dependency = Some(dependency.into());
        self.retryable = true;
        self
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

impl std::error::Error for HandlerError {}

impl From<sqlx::Error> for HandlerError {
    /// A database error, by what it is ([`ltf_pg::classify`]): the database away (lost or
    /// refused connections, a restart, too many connections) is a retryable failure of the
    /// `postgres` dependency, counted by its circuit breaker; a lost race (deadlock,
    /// serialization failure, lock or statement timeout) is retryable; anything else
    /// (a constraint, a missing table) is permanent.
    fn from(e: sqlx::Error) -> HandlerError {
        match ltf_pg::classify(&e) {
            ltf_pg::PgFailure::Unavailable => HandlerError::retryable(ErrorClass::Database, &e).from_dependency("postgres"),
            ltf_pg::PgFailure::Conflict => HandlerError::retryable(ErrorClass::Database, &e),
            ltf_pg::PgFailure::Permanent => HandlerError::permanent(ErrorClass::Database, &e),
        }
    }
}

/// Runs a handler's future, turning a panic inside it into an error of that event
/// ([`ErrorClass::Panic`], retried, then dead-lettered like any handler error) instead of
/// unwinding through the lane or the batcher that runs it.
pub(crate) async fn guarded(call: impl std::future::Future<Output = Result<(), HandlerError>>) -> Result<(), HandlerError> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(call).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Err(HandlerError::retryable(ErrorClass::Panic, format!("the handler panicked: {message}")))
        }
    }
}

/// What the runtime gives a handler besides the event.
#[derive(Debug, Clone)]
pub struct HandlerContext {
    /// The consumer group id (shared: a call's context copies no name).
    pub group: Arc<str>,
    /// The handler's name (shared).
    pub handler: Arc<str>,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// The group's dedup store, when configured.
    pub dedup: Option<Arc<DedupStore>>,
    /// What this call tells the runtime besides its result: whether the handler recorded
    /// the event itself, which dependencies it reported.
    pub(crate) call: Arc<CallState>,
    /// Attempts the runtime's retry policy allows this delivery (1 when unknown).
    pub max_attempts: u32,
    /// The group's circuit breakers, for calls made through [`dependency`](HandlerContext::dependency).
    pub(crate) breakers: Option<Arc<Breakers>>,
    /// The dependency whose probe this call holds (the runtime claimed it while parked).
    pub(crate) probe: Option<String>,
    /// How long this event has been parked on failed dependencies so far.
    pub parked: Duration,
    /// How long the event may stay parked before [`park_expired`](HandlerContext::park_expired)
    /// (`None`: without limit).
    pub max_park: Option<Duration>,
}

/// The state of one handler call that the runtime reads after it (one allocation per
/// call for both).
#[derive(Debug, Default)]
pub(crate) struct CallState {
    /// The dedup middleware's state ([`DedupStore::begin`] marks it).
    pub(crate) recording: Recording,
    /// Dependencies whose outcome the call reported itself.
    pub(crate) reported: Mutex<Vec<String>>,
}

/// A call to a dependency admitted by its circuit breaker ([`HandlerContext::dependency`]):
/// holds one of the dependency's concurrency slots until dropped.
#[derive(Debug)]
pub struct DependencyCall {
    permit: Option<DependencyPermit>,
    call: Arc<CallState>,
}

impl DependencyCall {
    /// Reports whether the call succeeded (a failure is the dependency's: refused, timed
    /// out, 5xx, 408, 429), and frees the slot. The runtime then does not count the
    /// handler's error of this dependency a second time.
    pub fn finish(mut self, ok: bool) {
        if let Some(p) = self.permit.take() {
            self.call.reported.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(p.dependency().to_owned());
            p.finish(ok);
        }
    }
}

impl HandlerContext {
    /// The context of attempt `attempt` of `handler` in `group`.
    pub fn new(
        group: impl Into<Arc<str>>,
        handler: impl Into<Arc<str>>,
        attempt: u32,
        dedup: Option<Arc<DedupStore>>,
    ) -> HandlerContext {
        HandlerContext {
            group: group.into(),
            handler: handler.into(),
            attempt,
            dedup,
            call: Arc::default(),
            max_attempts: 1,
            breakers: None,
            probe: None,
            parked: Duration::ZERO,
            max_park: None,
        }
    }

    /// Asks `dependency`'s circuit breaker for a call: waits while the dependency's
    /// concurrency limit is reached, and fails at once with a retryable error of the
    /// dependency (class `circuit_open`) while its circuit is open, so the runtime parks
    /// the event without calling. Without breakers (a context made outside the runtime)
    /// every call is admitted.
    pub async fn dependency(&self, dependency: &str) -> Result<DependencyCall, HandlerError> {
        let Some(breakers) = &self.breakers else {
            return Ok(DependencyCall { permit: None, call: self.call.clone() });
        };
        let holds_probe = self.probe.as_deref() == Some(dependency);
        loop {
            match breakers.admit(dependency, holds_probe) {
                Admission::Go(permit) => return Ok(DependencyCall { permit: Some(permit), call: self.call.clone() }),
                Admission::Busy => tokio::time::sleep(Duration::from_millis(20)).await,
                Admission::Open => {
                    return Err(HandlerError::retryable(ErrorClass::CircuitOpen, format!("the circuit of {dependency} is open"))
                        .from_dependency(dependency))
                }
            }
        }
    }

    /// Whether the event has been parked on failed dependencies for longer than
    /// `max_park`: a handler that turns failures into outcomes (the automation's failed
    /// step, `dependency_unavailable`) does so now; returning the dependency's error
    /// again dead-letters the event with class `dependency_unavailable`.
    pub fn park_expired(&self) -> bool {
        self.max_park.is_some_and(|max| self.parked >= max)
    }

    /// The dedup store, for a handler that records its side effect in the dedup
    /// transaction ([`DedupStore::begin`]); a pipeline built without one is a
    /// configuration error, reported as a permanent failure naming the handler.
    pub fn dedup_store(&self) -> Result<&DedupStore, HandlerError> {
        self.dedup.as_deref().ok_or_else(|| {
            HandlerError::permanent(
                ErrorClass::Config,
                format!("handler {} of group {} needs the dedup store", self.handler, self.group),
            )
        })
    }

    /// Sets the attempts the retry policy allows.
    pub fn with_max_attempts(mut self, max_attempts: u32) -> HandlerContext {
        self.max_attempts = max_attempts;
        self
    }

    /// Whether a retryable error of the handler's own (not a dependency's) returned now
    /// would not be retried: a handler that turns failures into events (the automation's
    /// ActionExecuted failure) does so now. Dependency failures use no attempts: see
    /// [`park_expired`](HandlerContext::park_expired).
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// A handler of one worker. Registered on the worker's [`Router`](crate::Router); the
/// runtime calls [`handle`](Handler::handle) for every event it [`can_handle`](Handler::can_handle).
///
/// `handle` must be idempotent: the runtime delivers at least once. Record the event in
/// the dedup store in the transaction of the side effect
/// ([`DedupStore::begin`](crate::middleware::dedup::DedupStore::begin)), or use
/// a natural idempotency key with an external system (one derived from the eventId, as
/// the automation worker's `Idempotency-Key: <runId>:<actionId>`).
///
/// A complete handler (the README's example, compiled here):
///
/// ```
/// use async_trait::async_trait;
/// use ltf_consumers::{ErrorClass, Event, Handler, HandlerContext, HandlerError, Router};
/// use ltf_schemas::{EventPayload, EventType};
///
/// pub struct CountDone;
///
/// #[async_trait]
/// impl Handler for CountDone {
///     fn name(&self) -> &str { "count-done" }
///
///     fn can_handle(&self, t: EventType) -> bool { t == EventType::RecordUpdated }
///
///     async fn handle(&self, ctx: &HandlerContext, event: &Event) -> Result<(), HandlerError> {
///         let EventPayload::RecordUpdated(u) = &event.event.payload else { return Ok(()) };
///         if !u.changed_fields.iter().any(|f| f == "status") { return Ok(()) }
///         let dedup = ctx.dedup.as_ref().ok_or_else(|| HandlerError::permanent(ErrorClass::Config, "no dedup store"))?;
///         let Some(mut tx) = dedup.begin(ctx, event).await? else { return Ok(()) };
///         sqlx::query("UPDATE done_counts SET n = n + 1 WHERE table_id = $1")
///             .bind(&u.table_id).execute(&mut *tx).await?;
///         tx.commit().await?;
///         Ok(())
///     }
/// }
///
/// let router = Router::new().register(CountDone);
/// assert_eq!(router.handlers_for(EventType::RecordUpdated).len(), 1);
/// ```
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// A stable name: metrics label, `dlq-handler` header, dedup key part.
    fn name(&self) -> &str;

    /// Whether this handler wants events of `event_type`.
    fn can_handle(&self, event_type: EventType) -> bool;

    /// The dependencies every call uses (`postgres`, `redis`): a successful call counts as
    /// a success of each in their circuit breakers, so they open on a failure *rate*.
    /// Dependencies called through [`HandlerContext::dependency`] report themselves.
    fn dependencies(&self) -> &[&'static str] {
        &[]
    }

    /// Handles one event.
    async fn handle(&self, ctx: &HandlerContext, event: &Event) -> Result<(), HandlerError>;
}
