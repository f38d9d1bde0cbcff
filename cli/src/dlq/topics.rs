//! The dead-letter topics of the cluster: `<event topic>.<group>.dlq` for every event
//! topic of the prefix, found in the cluster metadata by that naming pattern.

use std::time::Duration;

use anyhow::{Context, Result};
use ltf_schemas::TopicNames;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// Metadata and watermark requests give up after this long.
pub const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// One dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqTopic {
    /// `<source>.<group>.dlq`.
    pub name: String,
    /// The event topic its letters were first read from.
    pub source: String,
    /// The consumer group that dead-lettered them.
    pub group: String,
    /// Its partition ids.
    pub partitions: Vec<i32>,
}

impl DlqTopic {
    /// `<source>.<group>.retry`: where a replayed letter goes (only this group reads it).
    pub fn retry_topic(&self) -> String {
        TopicNames::retry(&self.source, &self.group)
    }
}

/// Which dead-letter topics a command looks at.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// A group id, or a worker name (`audit` for `<prefix>.audit`).
    pub group: Option<String>,
    /// An event topic, its aggregate (`table` for `<prefix>.table.events`) or a DLQ topic.
    pub topic: Option<String>,
}

impl Selection {
    fn group_matches(&self, prefix: &str, group: &str) -> bool {
        self.group.as_deref().is_none_or(|g| g == group || format!("{prefix}.{g}") == group)
    }

    fn topic_matches(&self, prefix: &str, t: &DlqTopic) -> bool {
        self.topic.as_deref().is_none_or(|x| x == t.source || x == t.name || format!("{prefix}.{x}.events") == t.source)
    }
}

/// A consumer that joins no group and commits nothing: for metadata and reading.
pub fn plain_consumer(bootstrap: &str) -> Result<BaseConsumer> {
    ltf_kafka::security::client_config(bootstrap)
        .set("group.id", format!("ltf-cli-reader-{}", uuid::Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating a Kafka consumer")
}

/// `name` as `<event topic>.<group>.dlq` for one of `events`: (event topic, group).
pub fn parse_dlq_name<'a>(name: &'a str, events: &'a [String]) -> Option<(&'a str, &'a str)> {
    let rest = name.strip_suffix(".dlq")?;
    events.iter().find_map(|e| {
        let group = rest.strip_prefix(e.as_str())?.strip_prefix('.')?;
        (!group.is_empty()).then_some((e.as_str(), group))
    })
}

/// The dead-letter topics of `prefix` that `selection` picks, sorted by group then name
/// (blocking: one metadata request).
pub fn discover(consumer: &BaseConsumer, prefix: &str, selection: &Selection) -> Result<Vec<DlqTopic>> {
    let events = TopicNames::new(prefix).all_events();
    let md = consumer.fetch_metadata(None, KAFKA_TIMEOUT).context("reading the cluster metadata")?;
    let mut out: Vec<DlqTopic> = md
        .topics()
        .iter()
        .filter_map(|t| {
            let (source, group) = parse_dlq_name(t.name(), &events)?;
            let mut partitions: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            partitions.sort_unstable();
            Some(DlqTopic { name: t.name().to_owned(), source: source.to_owned(), group: group.to_owned(), partitions })
        })
        .filter(|t| selection.group_matches(prefix, &t.group) && selection.topic_matches(prefix, t))
        .collect();
    out.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dlq_names_of_the_prefix_only() {
        let events = TopicNames::new("p").all_events();
        assert_eq!(parse_dlq_name("p.table.events.p.audit.dlq", &events), Some(("p.table.events", "p.audit")));
        assert_eq!(parse_dlq_name("p.form.events.other.dlq", &events), Some(("p.form.events", "other")));
        assert_eq!(parse_dlq_name("p.table.events.p.audit.retry", &events), None);
        assert_eq!(parse_dlq_name("q.table.events.p.audit.dlq", &events), None);
        assert_eq!(parse_dlq_name("p.table.events.dlq", &events), None);
    }

    #[test]
    fn selection_accepts_worker_and_aggregate_names() {
        let t = DlqTopic {
            name: "p.table.events.p.audit.dlq".into(),
            source: "p.table.events".into(),
            group: "p.audit".into(),
            partitions: vec![0],
        };
        let sel = |g: Option<&str>, x: Option<&str>| Selection { group: g.map(Into::into), topic: x.map(Into::into) };
        assert!(sel(Some("audit"), Some("table")).group_matches("p", &t.group));
        assert!(sel(None, Some("table")).topic_matches("p", &t));
        assert!(sel(None, Some("p.table.events")).topic_matches("p", &t));
        assert!(sel(None, Some("p.table.events.p.audit.dlq")).topic_matches("p", &t));
        assert!(!sel(Some("cache"), None).group_matches("p", &t.group));
        assert!(!sel(None, Some("form")).topic_matches("p", &t));
        assert_eq!(t.retry_topic(), "p.table.events.p.audit.retry");
    }
}
