//! Checks 7 and 8: dead letters and lag, from what Kafka holds (blocking reads).

use super::*;

/// What Kafka holds besides the events: the dead letters and the groups' lag.
#[derive(Debug, Default)]
pub(super) struct KafkaState {
    /// (DLQ topic, messages) of each DLQ topic of the run's groups that exists.
    pub(super) dead_letters: Vec<(String, i64)>,
    /// (group, event topic, messages not committed) of each topic a group consumes.
    pub(super) behind: Vec<(String, String, i64)>,
}

/// Messages the groups (`(worker, group)` pairs) have not committed on the event topics
/// their workers consume (blocking): zero once every group caught up.
pub fn groups_behind(bootstrap: &str, topics: &TopicNames, groups: &[(String, String)]) -> Result<i64> {
    Ok(kafka_state(bootstrap, topics, groups)?.behind.iter().map(|(_, _, n)| n).sum())
}

/// Reads the dead-letter topics and the committed offsets of every group of `g.groups`.
pub(super) async fn read_kafka_state(g: &Ground) -> Result<KafkaState> {
    let bootstrap = g.bootstrap.clone();
    let topics = g.topics.clone();
    let groups: Vec<(String, String)> = g.groups.iter().map(|(w, gr)| (w.clone(), gr.clone())).collect();
    tokio::task::spawn_blocking(move || kafka_state(&bootstrap, &topics, &groups)).await.context("the Kafka reader panicked")?
}

/// The [`KafkaState`] of `groups` ((worker, group) pairs) on the event topics of `topics`
/// (blocking). The cluster's metadata is read whole, so no topic is created by asking.
fn kafka_state(bootstrap: &str, topics: &TopicNames, groups: &[(String, String)]) -> Result<KafkaState> {
    let reader = plain_consumer(bootstrap)?;
    let md = reader.fetch_metadata(None, KAFKA_TIMEOUT).context("reading the cluster metadata")?;
    let partitions: HashMap<String, Vec<i32>> =
        md.topics().iter().map(|t| (t.name().to_owned(), t.partitions().iter().map(|p| p.id()).collect())).collect();
    let events = topics.all_events();
    let mut state = KafkaState::default();
    for (worker, group) in groups {
        for topic in &events {
            let dlq = TopicNames::dlq(topic, group);
            if let Some(ps) = partitions.get(&dlq) {
                state.dead_letters.push((dlq.clone(), messages(&reader, &dlq, ps)?));
            }
        }
        let consumed = WorkerKind::parse(worker).map_or_else(|| events.clone(), |w| w.topics(topics));
        // A consumer with the group's id, only to read its committed offsets: it never
        // subscribes, so it does not join the group.
        let offsets: BaseConsumer = ltf_kafka::security::client_config(bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .context("creating the offsets consumer")?;
        for topic in consumed {
            let Some(ps) = partitions.get(&topic) else { continue };
            let behind = group_behind(&offsets, &reader, group, &topic, ps)?;
            state.behind.push((group.clone(), topic, behind));
        }
    }
    Ok(state)
}

/// The messages `topic` holds: the sum of high − low watermarks of its partitions.
fn messages(reader: &BaseConsumer, topic: &str, partitions: &[i32]) -> Result<i64> {
    let mut n = 0;
    for &p in partitions {
        let (low, high) =
            reader.fetch_watermarks(topic, p, KAFKA_TIMEOUT).with_context(|| format!("watermarks of {topic}[{p}]"))?;
        n += (high - low).max(0);
    }
    Ok(n)
}

/// How many messages of `topic` the group of `offsets` has not committed (from the low
/// watermark where it committed nothing).
fn group_behind(offsets: &BaseConsumer, reader: &BaseConsumer, group: &str, topic: &str, partitions: &[i32]) -> Result<i64> {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition(topic, p);
    }
    let committed =
        offsets.committed_offsets(tpl, KAFKA_TIMEOUT).with_context(|| format!("committed offsets of {group} on {topic}"))?;
    let mut behind = 0;
    for e in committed.elements() {
        let (low, high) = reader
            .fetch_watermarks(topic, e.partition(), KAFKA_TIMEOUT)
            .with_context(|| format!("watermarks of {topic}[{}]", e.partition()))?;
        let at = match e.offset() {
            Offset::Offset(o) => o.max(low),
            _ => low,
        };
        behind += (high - at).max(0);
    }
    Ok(behind)
}

/// Check 7: no dead letters. Each message on a `<topic>.<group>.dlq` of the run's groups
/// adds to `dead_lettered`.
pub(super) fn check_dead_letters(kafka: &KafkaState, v: &mut Verdict) {
    let mut lines = Lines::new("dead letters");
    for (topic, n) in kafka.dead_letters.iter().filter(|(_, n)| *n > 0) {
        v.dead_lettered += *n as usize;
        lines.push(format_args!("{topic}: {n} message(s)"));
    }
    lines.into_problems(&mut v.problems);
}

/// Check 8: every group committed each event topic it consumes up to its high watermark;
/// the messages behind add to `stuck`.
pub(super) fn check_lag(kafka: &KafkaState, v: &mut Verdict) {
    let mut lines = Lines::new("lag");
    for (group, topic, n) in kafka.behind.iter().filter(|(_, _, n)| *n > 0) {
        v.stuck += *n as usize;
        lines.push(format_args!("{group} is {n} message(s) behind on {topic}"));
    }
    lines.into_problems(&mut v.problems);
}
