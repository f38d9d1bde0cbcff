//! Dead letters: a message the group gave up on, copied to its dead-letter topic.
//!
//! Guarantees (DESIGN.md, "Retry and dead letters"):
//! * the dead letter goes to `<event topic>.<group>.dlq`, also when the message was read
//!   from the group's retry topic `<event topic>.<group>.retry` (a replayed dead letter
//!   that failed again lands in the same DLQ, never in a `….retry.<group>.dlq`);
//! * it keeps the original key, the value bytes unchanged and the original headers, and
//!   adds every `dlq-*` header of [`DlqHeaders`]; `dlq-*` headers the message already
//!   carried (from an earlier dead-lettering) are replaced, never duplicated;
//! * `dlq-original-topic`, `-partition`, `-offset` and `-timestamp` name where the event
//!   was first read: a message from the retry topic that carries them (a replayed dead
//!   letter) keeps them, so they still point at the event topic; any other message
//!   gives its own coordinates (see [`DeadLetter::origin`]);
//! * a keyless message stays keyless (not an empty key); undecodable messages are
//!   dead-lettered like any other, with `dlq-handler` = [`UNDECODABLE_HANDLER`];
//! * [`DeadLetterPublisher::publish`] returns only after the broker acknowledged the
//!   copy (idempotent producer); only then may the caller store the original's offset.
//!   A dead letter is never recorded in the dedup store, so a replay is handled again.
//!
//! Header values are the [`Meta`] headers as UTF-8 text: a foreign header with non-UTF-8
//! bytes is copied lossily.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use ltf_kafka::{EventPublisher, PublishError};
use ltf_schemas::{EncodedEvent, TopicNames};
use metrics::counter;
use tracing::warn;

use crate::metrics::{labels, DEAD_LETTERS_TOTAL};
use crate::ErrorClass;
use crate::Meta;

/// The `dlq-*` header names a dead letter carries (DESIGN.md, "Retry and dead letters").
#[derive(Debug)]
pub struct DlqHeaders;

impl DlqHeaders {
    /// The prefix every dead-letter header shares; original headers with it are replaced.
    pub const PREFIX: &'static str = "dlq-";
    /// The bounded error class (`validation`, `timeout`, `undecodable`, …).
    pub const ERROR_CLASS: &'static str = "dlq-error-class";
    /// The error message, at most [`MAX_ERROR_MESSAGE_BYTES`] bytes.
    pub const ERROR_MESSAGE: &'static str = "dlq-error-message";
    /// Handler calls made before giving up.
    pub const ATTEMPTS: &'static str = "dlq-attempts";
    /// The topic the event was first read from.
    pub const ORIGINAL_TOPIC: &'static str = "dlq-original-topic";
    /// Its partition there.
    pub const ORIGINAL_PARTITION: &'static str = "dlq-original-partition";
    /// Its offset there.
    pub const ORIGINAL_OFFSET: &'static str = "dlq-original-offset";
    /// Its Kafka timestamp there, milliseconds since the epoch (`-1` when it had none).
    pub const ORIGINAL_TIMESTAMP: &'static str = "dlq-original-timestamp";
    /// The consumer group that gave up.
    pub const CONSUMER_GROUP: &'static str = "dlq-consumer-group";
    /// The handler that failed, or [`UNDECODABLE_HANDLER`].
    pub const HANDLER: &'static str = "dlq-handler";
    /// When the first attempt failed (RFC 3339, UTC, milliseconds).
    pub const FIRST_FAILURE: &'static str = "dlq-first-failure";
    /// When the last attempt failed (RFC 3339, UTC, milliseconds).
    pub const LAST_FAILURE: &'static str = "dlq-last-failure";
}

/// `dlq-handler` of a message that did not decode (no handler ran).
pub const UNDECODABLE_HANDLER: &str = "-";

/// Longest `dlq-error-message`, in bytes; longer messages are cut at a character boundary.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 1024;

/// Where an event was first read: the `dlq-original-*` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The Kafka timestamp, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// A message the group gave up on, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The message as read: topic, partition, offset, timestamp, key, headers.
    pub original: Meta,
    /// Its value bytes, unchanged (also when they did not decode).
    pub value: Vec<u8>,
    /// A bounded error class ([`HandlerError::class`](crate::HandlerError::class), or
    /// e.g. `undecodable`).
    pub error_class: ErrorClass,
    /// What went wrong; cut to [`MAX_ERROR_MESSAGE_BYTES`] in the header.
    pub error_message: String,
    /// Handler calls made (0 for an undecodable message).
    pub attempts: u32,
    /// The consumer group id.
    pub group: String,
    /// The handler's name, or [`UNDECODABLE_HANDLER`].
    pub handler: String,
    /// When the first attempt failed.
    pub first_failure: DateTime<Utc>,
    /// When the last attempt failed.
    pub last_failure: DateTime<Utc>,
}

impl DeadLetter {
    /// The event topic of the original: its topic, or for the group's retry topic
    /// `<t>.<group>.retry` the `<t>` it retries.
    pub fn event_topic(&self) -> &str {
        let topic = &self.original.topic;
        topic.strip_suffix(&format!(".{}.retry", self.group)).unwrap_or(topic)
    }

    /// The dead-letter topic: `<event topic>.<group>.dlq`.
    pub fn topic(&self) -> String {
        TopicNames::dlq(self.event_topic(), &self.group)
    }

    /// Where the event was first read. For a message of the group's retry topic that
    /// carries valid `dlq-original-topic`, `-partition` and `-offset` headers (a replayed
    /// dead letter): those (and `-timestamp`). Otherwise: the message's own coordinates.
    pub fn origin(&self) -> Origin {
        let m = &self.original;
        let own =
            || Origin { topic: m.topic.to_string(), partition: m.partition, offset: m.offset, timestamp_ms: m.timestamp_ms };
        if self.event_topic() == &*m.topic {
            return own();
        }
        let topic = m.header(DlqHeaders::ORIGINAL_TOPIC).filter(|t| !t.is_empty());
        let partition = m.header(DlqHeaders::ORIGINAL_PARTITION).and_then(|p| p.parse().ok());
        let offset = m.header(DlqHeaders::ORIGINAL_OFFSET).and_then(|o| o.parse().ok());
        match (topic, partition, offset) {
            (Some(topic), Some(partition), Some(offset)) => Origin {
                topic: topic.to_owned(),
                partition,
                offset,
                timestamp_ms: m.header(DlqHeaders::ORIGINAL_TIMESTAMP).and_then(|t| t.parse().ok()).filter(|t: &i64| *t >= 0),
            },
            _ => own(),
        }
    }

    /// The Kafka message: topic [`topic`](DeadLetter::topic), the original key (`""` when
    /// the original had none: [`DeadLetterPublisher`] then sends it keyless), the value
    /// bytes, the original headers without their `dlq-*` ones, then every `dlq-*` header.
    pub fn to_message(&self) -> EncodedEvent {
        let origin = self.origin();
        let rfc3339 = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut headers: Vec<(String, String)> = self
            .original
            .headers
            .iter()
            .filter(|(k, _)| !k.starts_with(DlqHeaders::PREFIX))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        headers.extend(
            [
                (DlqHeaders::ERROR_CLASS, self.error_class.as_str().to_owned()),
                (DlqHeaders::ERROR_MESSAGE, truncate(&self.error_message, MAX_ERROR_MESSAGE_BYTES).to_owned()),
                (DlqHeaders::ATTEMPTS, self.attempts.to_string()),
                (DlqHeaders::ORIGINAL_TOPIC, origin.topic),
                (DlqHeaders::ORIGINAL_PARTITION, origin.partition.to_string()),
                (DlqHeaders::ORIGINAL_OFFSET, origin.offset.to_string()),
                (DlqHeaders::ORIGINAL_TIMESTAMP, origin.timestamp_ms.unwrap_or(-1).to_string()),
                (DlqHeaders::CONSUMER_GROUP, self.group.clone()),
                (DlqHeaders::HANDLER, self.handler.clone()),
                (DlqHeaders::FIRST_FAILURE, rfc3339(&self.first_failure)),
                (DlqHeaders::LAST_FAILURE, rfc3339(&self.last_failure)),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        EncodedEvent {
            topic: self.topic(),
            key: self.original.key.clone().unwrap_or_default(),
            value: self.value.clone(),
            headers,
        }
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Where a consumer group's dead letters go: Kafka ([`DeadLetterPublisher`]) in a worker;
/// the runtime's in-memory tests put a recorder in its place.
#[async_trait]
pub trait DeadLetterSink: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `dl` durably; `Ok` only once it is (for Kafka: acknowledged by the broker).
    async fn publish(&self, dl: &DeadLetter) -> Result<(), PublishError>;
}

/// Publishes a consumer group's dead letters.
#[derive(Debug, Clone)]
pub struct DeadLetterPublisher {
    publisher: EventPublisher,
    group: String,
}

impl DeadLetterPublisher {
    /// Dead letters of `group`, through `publisher` (idempotent, `acks=all`).
    pub fn new(publisher: EventPublisher, group: impl Into<String>) -> DeadLetterPublisher {
        DeadLetterPublisher { publisher, group: group.into() }
    }

    /// The consumer group id (the metric label).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Publishes `dl` and waits for the broker's acknowledgement ([`DeadLetterSink::publish`]).
    pub async fn publish(&self, dl: &DeadLetter) -> Result<(), PublishError> {
        DeadLetterSink::publish(self, dl).await
    }
}

#[async_trait]
impl DeadLetterSink for DeadLetterPublisher {
    /// Publishes `dl` and waits for the broker's acknowledgement; then counts
    /// [`DEAD_LETTERS_TOTAL`]`{group, topic, class}` (topic = the event topic, see
    /// [`DeadLetter::event_topic`]) and logs it. On an error nothing was counted and the
    /// caller must not store the original's offset.
    async fn publish(&self, dl: &DeadLetter) -> Result<(), PublishError> {
        let msg = dl.to_message();
        let delivery = if dl.original.key.is_some() {
            self.publisher.publish_encoded(&msg).await?
        } else {
            self.publisher.publish_encoded_without_key(&msg).await?
        };
        counter!(
            DEAD_LETTERS_TOTAL,
            labels::GROUP => self.group.clone(),
            labels::TOPIC => dl.event_topic().to_owned(),
            labels::CLASS => dl.error_class.as_str(),
        )
        .increment(1);
        warn!(
            group = %self.group, handler = %dl.handler, topic = %dl.original.topic, partition = dl.original.partition,
            offset = dl.original.offset, class = %dl.error_class, attempts = dl.attempts, dlq = %msg.topic,
            dlq_partition = delivery.partition, dlq_offset = delivery.offset, error = %truncate(&dl.error_message, 256),
            "dead-lettered a message"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(ms).single().unwrap()
    }

    fn letter(topic: &str, headers: Vec<(&str, &str)>) -> DeadLetter {
        DeadLetter {
            original: Meta {
                topic: topic.into(),
                partition: 2,
                offset: 41,
                key: Some("tbl_1".into()),
                timestamp_ms: Some(1_700_000_000_123),
                headers: headers.into(),
            },
            value: vec![0, 0, 0, 0, 7, 1, 2, 3],
            error_class: ErrorClass::Validation,
            error_message: "field `age` is not a number".into(),
            attempts: 3,
            group: "latechforce.automation".into(),
            handler: "run-automations".into(),
            first_failure: at(1_764_237_600_000),
            last_failure: at(1_764_237_600_450),
        }
    }

    fn header<'a>(m: &'a EncodedEvent, name: &str) -> Vec<&'a str> {
        m.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    #[test]
    fn keeps_key_value_and_headers_and_adds_every_dlq_header() {
        let dl = letter("latechforce.table.events", vec![("event-id", "e-1"), ("ordering-key", "rec_1")]);
        let m = dl.to_message();
        assert_eq!(m.topic, "latechforce.table.events.latechforce.automation.dlq");
        assert_eq!(m.key, "tbl_1");
        assert_eq!(m.value, dl.value);
        assert_eq!(&m.headers[..2], &dl.original.headers.to_vec()[..]);
        let expect = [
            (DlqHeaders::ERROR_CLASS, "validation"),
            (DlqHeaders::ERROR_MESSAGE, "field `age` is not a number"),
            (DlqHeaders::ATTEMPTS, "3"),
            (DlqHeaders::ORIGINAL_TOPIC, "latechforce.table.events"),
            (DlqHeaders::ORIGINAL_PARTITION, "2"),
            (DlqHeaders::ORIGINAL_OFFSET, "41"),
            (DlqHeaders::ORIGINAL_TIMESTAMP, "1700000000123"),
            (DlqHeaders::CONSUMER_GROUP, "latechforce.automation"),
            (DlqHeaders::HANDLER, "run-automations"),
            (DlqHeaders::FIRST_FAILURE, "2025-11-27T10:00:00.000Z"),
            (DlqHeaders::LAST_FAILURE, "2025-11-27T10:00:00.450Z"),
        ];
        for (name, value) in expect {
            assert_eq!(header(&m, name), vec![value], "{name}");
        }
        assert_eq!(m.headers.len(), 2 + expect.len());
    }

    #[test]
    fn a_replayed_dead_letter_keeps_its_origin_and_replaces_old_dlq_headers() {
        let dl = letter(
            "latechforce.table.events.latechforce.automation.retry",
            vec![
                ("event-id", "e-1"),
                (DlqHeaders::ORIGINAL_TOPIC, "latechforce.table.events"),
                (DlqHeaders::ORIGINAL_PARTITION, "0"),
                (DlqHeaders::ORIGINAL_OFFSET, "7"),
                (DlqHeaders::ORIGINAL_TIMESTAMP, "1600000000000"),
                (DlqHeaders::ATTEMPTS, "5"),
                (DlqHeaders::ERROR_CLASS, "timeout"),
            ],
        );
        assert_eq!(dl.event_topic(), "latechforce.table.events");
        let m = dl.to_message();
        assert_eq!(m.topic, "latechforce.table.events.latechforce.automation.dlq");
        assert_eq!(header(&m, DlqHeaders::ORIGINAL_TOPIC), vec!["latechforce.table.events"]);
        assert_eq!(header(&m, DlqHeaders::ORIGINAL_PARTITION), vec!["0"]);
        assert_eq!(header(&m, DlqHeaders::ORIGINAL_OFFSET), vec!["7"]);
        assert_eq!(header(&m, DlqHeaders::ORIGINAL_TIMESTAMP), vec!["1600000000000"]);
        assert_eq!(header(&m, DlqHeaders::ATTEMPTS), vec!["3"], "the old value is replaced");
        assert_eq!(header(&m, DlqHeaders::ERROR_CLASS), vec!["validation"]);
        assert_eq!(header(&m, "event-id"), vec!["e-1"]);
        assert_eq!(m.headers.len(), 1 + 11);
    }

    #[test]
    fn a_retry_message_without_an_origin_gives_its_own_coordinates() {
        let retry = "latechforce.table.events.latechforce.automation.retry";
        let dl =
            letter(retry, vec![(DlqHeaders::ORIGINAL_TOPIC, "latechforce.table.events"), (DlqHeaders::ORIGINAL_OFFSET, "x")]);
        let m = dl.to_message();
        assert_eq!(m.topic, "latechforce.table.events.latechforce.automation.dlq");
        assert_eq!(header(&m, DlqHeaders::ORIGINAL_TOPIC), vec![retry]);
        assert_eq!(header(&m, DlqHeaders::ORIGINAL_PARTITION), vec!["2"]);
        assert_eq!(header(&m, DlqHeaders::ORIGINAL_OFFSET), vec!["41"]);
        // Another group's retry topic is just a topic to this group.
        let dl = letter("latechforce.table.events.latechforce.audit.retry", vec![]);
        assert_eq!(dl.topic(), "latechforce.table.events.latechforce.audit.retry.latechforce.automation.dlq");
    }

    #[test]
    fn undecodable_keyless_messages_and_long_errors() {
        let mut dl = letter("latechforce.form.events", vec![]);
        dl.original.key = None;
        dl.original.timestamp_ms = None;
        dl.handler = UNDECODABLE_HANDLER.into();
        dl.attempts = 0;
        dl.error_message = "é".repeat(600);
        let m = dl.to_message();
        assert_eq!(m.key, "");
        assert_eq!(header(&m, DlqHeaders::HANDLER), vec!["-"]);
        assert_eq!(header(&m, DlqHeaders::ATTEMPTS), vec!["0"]);
        assert_eq!(header(&m, DlqHeaders::ORIGINAL_TIMESTAMP), vec!["-1"]);
        let msg = header(&m, DlqHeaders::ERROR_MESSAGE)[0];
        assert_eq!(msg.len(), MAX_ERROR_MESSAGE_BYTES);
        assert_eq!(msg, "é".repeat(512));
        assert_eq!(truncate("aé", 2), "a", "never splits a character");
    }
}
