//! The checks of a chaos run: after the api, the relay and the four workers ran under load
//! with faults and drained, every store is compared with the ground truth ([`Ground`]).
//!
//! [`check`] reads the event topics once, every partition from its start up to the high
//! watermark it has at the time of the check, then runs one check per store. Each check
//! counts its violations into the [`Verdict`] and names the first few of them in
//! `problems` (at most [`LINES_PER_CHECK`] lines per check, then one line saying how many
//! more), so the output stays short while the counts stay complete.
//!
//! The stores are read through their owners where the owner offers a read that fits:
//! the event log by `ltf_workers::audit::history`, the rollups by
//! `ltf_workers::analytics::total` (and what an event counts for by
//! `ltf_workers::analytics::counts`), records by `ltf_domain::store::records::get`, runs
//! and steps by `ltf_domain::automations::store::runs`, the cache by
//! `ltf_workers::cache::RecordCache::entry`, the outbox by `ltf_domain::outbox::inventory`
//! and `values`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use futures::{stream, StreamExt, TryStreamExt};
use ltf_domain::automations::store as automation_store;
use ltf_domain::automations::RunStep;
use ltf_domain::store::records;
use ltf_schemas::{DomainEvent, EventPayload, EventType, Fields, TopicNames};
use ltf_workers::cache::{CacheConfig, CacheEntry, RecordCache};
use ltf_workers::{analytics, audit, WorkerKind};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::ground::{Accepted, ChangeKind, Ground, Verdict};

/// Timeout of one Kafka metadata, watermark or offsets request.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// How long reading the event topics may go without a message before it gives up.
const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Problem lines kept per check; the rest are counted in one closing line.
const LINES_PER_CHECK: usize = 5;

/// Database and Redis reads in flight at once.
const PARALLEL: usize = 16;

/// The metrics of each analytics dimension (`ltf_workers::analytics::counts`): a key seen
/// on the topics is checked for each, so a counter with no event behind it is found too.
const ROLLUP_METRICS: [(&str, &[&str]); 4] = [
    ("table", &["records_created", "records_updated", "records_deleted"]),
    ("form", &["form_submissions"]),
    ("service", &["connections_established"]),
    ("automation", &["automation_runs", "actions_succeeded", "actions_failed"]),
];

/// Compares every store of the run with the event topics, the outbox and what the load
/// was told (see the module documentation): the topics with the outbox, the accepted
/// changes with the outbox, then the audit log, the analytics rollups, the record cache,
/// the automation runs, the dead-letter topics and the groups' lag.
///
/// Fails only when a store cannot be read; every disagreement is in the verdict.
pub async fn check(g: &Ground) -> Result<Verdict> {
    let mut lines = Lines::new("topics");
    let topics = read_event_topics(g, &mut lines).await?;
    let mut v = Verdict { events: topics.distinct(), ..Verdict::default() };
    lines.into_problems(&mut v.problems);
    let unpublished = check_outbox(g, &topics, &mut v).await?;
    check_accepted(&g.accepted, topics.events().chain(&unpublished), &mut v);
    check_audit(&g.pool, &topics, &mut v).await?;
    check_analytics(&g.pool, &topics, &mut v).await?;
    check_cache(g, &topics, &mut v).await?;
    check_automation(g, &topics, &mut v).await?;
    let kafka = read_kafka_state(g).await?;
    check_dead_letters(&kafka, &mut v);
    check_lag(&kafka, &mut v);
    Ok(v)
}

// --- problem lines -----------------------------------------------------------------------

/// The problem lines of one check: the first [`LINES_PER_CHECK`] kept, the others counted.
#[derive(Debug)]
struct Lines {
    check: &'static str,
    kept: Vec<String>,
    more: usize,
}

impl Lines {
    /// No lines yet, for the check named `check` (it prefixes each line).
    fn new(check: &'static str) -> Lines {
        Lines { check, kept: Vec::new(), more: 0 }
    }

    /// Notes one violation.
    fn push(&mut self, line: impl std::fmt::Display) {
        if self.kept.len() < LINES_PER_CHECK {
            self.kept.push(format!("{}: {line}", self.check));
        } else {
            self.more += 1;
        }
    }

    /// Appends the kept lines, and a line counting the others, to `problems`.
    fn into_problems(self, problems: &mut Vec<String>) {
        problems.extend(self.kept);
        if self.more > 0 {
            problems.push(format!("{}: … and {} more", self.check, self.more));
        }
    }
}

// --- 1. topics vs outbox ----------------------------------------------------------------

/// An outbox row, without its value.
type OutboxRow = ltf_domain::outbox::InventoryRow;

/// Every row of the outbox, by id.
async fn outbox_rows(pool: &PgPool) -> Result<Vec<OutboxRow>> {
    ltf_domain::outbox::inventory(pool).await.context("reading the outbox")
}

/// The encoded values of the outbox rows `ids`.
async fn outbox_values(pool: &PgPool, ids: &[i64]) -> Result<Vec<(i64, Vec<u8>)>> {
    ltf_domain::outbox::values(pool, ids).await.context("reading outbox values")
}

/// Where an outbox row stands against the topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowState {
    /// Sent, and its event is on the topics.
    Published,
    /// Not sent yet, not parked: the relay left it.
    Unsent,
    /// Parked: Kafka refused it for good.
    Parked,
    /// Skipped by an operator: never to be published.
    Skipped,
    /// Marked sent, but its event is not on the topics.
    Missing,
}

/// The state of `row`, given whether its eventId is on the topics.
fn row_state(row: &OutboxRow, on_topics: bool) -> RowState {
    if row.skipped_at.is_some() {
        if on_topics {
            RowState::Published
        } else {
            RowState::Skipped
        }
    } else if row.sent_at.is_none() {
        if row.parked_at.is_some() {
            RowState::Parked
        } else {
            RowState::Unsent
        }
    } else if on_topics {
        RowState::Published
    } else {
        RowState::Missing
    }
}

/// Check 1: every outbox row published and on the topics (marked sent but absent, or
/// skipped: lost; unsent or parked: stuck), and every topic event from an outbox row
/// (a problem line, no count: duplicates of one eventId are the relay's at-least-once).
///
/// Returns the events of the rows that are not on the topics, decoded, for
/// [`check_accepted`]: a change whose event waits in the outbox is counted here, once.
async fn check_outbox(g: &Ground, topics: &TopicEvents, v: &mut Verdict) -> Result<Vec<DomainEvent>> {
    let mut lines = Lines::new("outbox");
    let rows = outbox_rows(&g.pool).await?;
    let mut absent = Vec::new();
    for row in &rows {
        let on_topics = topics.contains(&row.event_id);
        if !on_topics {
            absent.push(row.id);
        }
        let what =
            format!("row {} ({} {}, {}#{})", row.id, row.event_type, row.event_id, row.aggregate_id, row.aggregate_sequence);
        match row_state(row, on_topics) {
            RowState::Published => {}
            RowState::Unsent => {
                v.stuck += 1;
                lines.push(format_args!("{what} never published"));
            }
            RowState::Parked => {
                v.stuck += 1;
                lines.push(format_args!("{what} parked: {}", row.park_reason.as_deref().unwrap_or("no reason")));
            }
            RowState::Skipped => {
                v.lost += 1;
                lines.push(format_args!("{what} skipped, never published"));
            }
            RowState::Missing => {
                v.lost += 1;
                lines.push(format_args!("{what} marked sent but not on the topics"));
            }
        }
    }
    let in_outbox: HashSet<Uuid> = rows.iter().map(|r| r.event_id).collect();
    for (id, t) in topics.by_id.iter().filter(|(id, _)| !in_outbox.contains(id)) {
        lines.push(format_args!("{} {id} on {} has no outbox row", t.event.event_type().as_str(), t.topic));
    }
    let mut unpublished = Vec::new();
    for (id, value) in outbox_values(&g.pool, &absent).await? {
        match g.codec.decode(&value).await {
            Ok(e) => unpublished.push(e),
            Err(e) => lines.push(format_args!("row {id}: value does not decode: {e}")),
        }
    }
    lines.into_problems(&mut v.problems);
    Ok(unpublished)
}

// --- 2. accepted changes ⊆ outbox --------------------------------------------------------

/// A record change as (event type, table, record, record version).
type ChangeKey<'a> = (EventType, &'a str, &'a str, i64);

/// The change a record event describes; `None` for other events.
fn change_of(e: &DomainEvent) -> Option<ChangeKey<'_>> {
    match &e.payload {
        EventPayload::RecordCreated(p) => Some((EventType::RecordCreated, &p.table_id, &p.record_id, p.record_version)),
        EventPayload::RecordUpdated(p) => Some((EventType::RecordUpdated, &p.table_id, &p.record_id, p.record_version)),
        EventPayload::RecordDeleted(p) => Some((EventType::RecordDeleted, &p.table_id, &p.record_id, p.record_version)),
        _ => None,
    }
}

/// The event an accepted change must have produced. A deletion is accepted with the
/// version deleted (the API answers the record as it was); its RecordDeleted carries the
/// version after the deletion, one above.
fn change_of_accepted(a: &Accepted) -> ChangeKey<'_> {
    let (ty, version) = match a.kind {
        ChangeKind::Created => (EventType::RecordCreated, a.version),
        ChangeKind::Updated => (EventType::RecordUpdated, a.version),
        ChangeKind::Deleted => (EventType::RecordDeleted, a.version + 1),
    };
    (ty, &a.table_id, &a.record_id, version)
}

/// Check 2: every change the API accepted has its event, of the matching type, record
/// and version, among `events` (the topics' and the unpublished outbox rows'); else lost.
fn check_accepted<'a>(accepted: &[Accepted], events: impl Iterator<Item = &'a DomainEvent>, v: &mut Verdict) {
    let mut lines = Lines::new("accepted");
    let known: HashSet<ChangeKey<'_>> = events.filter_map(change_of).collect();
    for a in accepted {
        let key = change_of_accepted(a);
        if !known.contains(&key) {
            v.lost += 1;
            lines.push(format_args!("{} of {}/{} v{}: no event in the outbox", key.0.as_str(), key.1, key.2, key.3));
        }
    }
    lines.into_problems(&mut v.problems);
}

// --- 3. audit log -----------------------------------------------------------------------

/// How many events of `sequence` (in the order they were handled) are out of their order:
/// the fewest that must be taken out for the rest to be ascending (its length minus that
/// of its longest non-decreasing subsequence). One event handled late counts 1, however
/// far it moved.
fn out_of_order(sequence: &[i64]) -> usize {
    let mut tails: Vec<i64> = Vec::new();
    for &s in sequence {
        let i = tails.partition_point(|&t| t <= s);
        if i == tails.len() {
            tails.push(s);
        } else {
            tails[i] = s;
        }
    }
    sequence.len() - tails.len()
}

/// What an event's ordering key names: `record`, `run`, or its aggregate type.
fn ordering_kind(e: &DomainEvent) -> &'static str {
    match &e.payload {
        EventPayload::AutomationTriggered(_) | EventPayload::ActionExecuted(_) => "run",
        p if p.record_id().is_some() => "record",
        _ => e.aggregate_type().as_str(),
    }
}

/// An event-log row in the order of its writing: (received_at, aggregate sequence).
type Handled = (DateTime<Utc>, i64);

/// Check 3: `ltf_event_log` (event_id, aggregate_id, aggregate_sequence, received_at, read
/// per aggregate of the topics by `audit::history`) holds each topic event exactly once
/// (none: lost; more: doubled; a row of no topic event: a problem line), and per ordering
/// key (record, run, else aggregate) the rows in the order the worker wrote them
/// (received_at, the time of its transaction) have ascending aggregate sequences.
async fn check_audit(pool: &PgPool, topics: &TopicEvents, v: &mut Verdict) -> Result<()> {
    let mut lines = Lines::new("audit");
    let aggregates: BTreeSet<&str> = topics.events().map(DomainEvent::aggregate_id).collect();
    let histories: Vec<Vec<audit::LogEntry>> = stream::iter(aggregates)
        .map(|a| async move { audit::history(pool, a, None).await.with_context(|| format!("reading the event log of {a}")) })
        .buffered(PARALLEL)
        .try_collect()
        .await?;
    let mut rows_of: HashMap<Uuid, usize> = HashMap::new();
    let mut handled: BTreeMap<(&str, &str), Vec<Handled>> = BTreeMap::new();
    for entry in histories.iter().flatten() {
        *rows_of.entry(entry.event_id).or_default() += 1;
        match topics.by_id.get(&entry.event_id) {
            Some(t) => handled
                .entry((ordering_kind(&t.event), t.event.ordering_key()))
                .or_default()
                .push((entry.received_at, entry.aggregate_sequence)),
            None if topics.undecodable.contains(&entry.event_id) => {}
            None => lines.push(format_args!("row {} ({}) is no event of the topics", entry.event_id, entry.event_type)),
        }
    }
    for (id, t) in &topics.by_id {
        match rows_of.get(id).copied().unwrap_or(0) {
            0 => {
                v.lost += 1;
                lines.push(format_args!("{} {id} not logged", t.event.event_type().as_str()));
            }
            1 => {}
            n => {
                v.doubled += n - 1;
                lines.push(format_args!("{} {id} logged {n} times", t.event.event_type().as_str()));
            }
        }
    }
    for ((kind, key), mut rows) in handled {
        rows.sort();
        let sequence: Vec<i64> = rows.iter().map(|(_, seq)| *seq).collect();
        let late = out_of_order(&sequence);
        if late > 0 {
            v.out_of_order += late;
            lines.push(format_args!("{kind} {key}: {late} event(s) logged out of order: sequences {sequence:?}"));
        }
    }
    lines.into_problems(&mut v.problems);
    Ok(())
}

// --- 4. analytics -----------------------------------------------------------------------

/// A rollup counter: (dimension, key, metric).
type Counter = (String, String, String);

/// What the rollups must sum to over all hours: each event counted as
/// `analytics::counts` says, and 0 for every other metric of each (dimension, key) seen.
fn expected_rollups<'a>(events: impl Iterator<Item = &'a DomainEvent>) -> BTreeMap<Counter, i64> {
    let mut out: BTreeMap<Counter, i64> = BTreeMap::new();
    for e in events {
        for (dimension, key, metric) in analytics::counts(&e.payload) {
            for (_, metrics) in ROLLUP_METRICS.iter().filter(|(d, _)| *d == dimension) {
                for m in metrics.iter() {
                    out.entry((dimension.to_owned(), key.to_owned(), (*m).to_owned())).or_insert(0);
                }
            }
            *out.entry((dimension.to_owned(), key.to_owned(), metric.to_owned())).or_insert(0) += 1;
        }
    }
    out
}

/// Check 4: `ltf_analytics_rollups` (value summed over every bucket by
/// `analytics::total`, per dimension, key and metric) equals the count of distinct topic
/// events of that kind; above: doubled by the difference, below: lost by it.
async fn check_analytics(pool: &PgPool, topics: &TopicEvents, v: &mut Verdict) -> Result<()> {
    let mut lines = Lines::new("analytics");
    let expected = expected_rollups(topics.events());
    let totals: Vec<i64> = stream::iter(expected.keys())
        .map(|(d, k, m)| async move {
            analytics::total(pool, d, k, m, None, None).await.with_context(|| format!("reading the rollup {d}/{k}/{m}"))
        })
        .buffered(PARALLEL)
        .try_collect()
        .await?;
    for (((dimension, key, metric), want), got) in expected.iter().zip(totals) {
        let diff = got - want;
        if diff != 0 {
            if diff > 0 {
                v.doubled += diff.unsigned_abs() as usize;
            } else {
                v.lost += diff.unsigned_abs() as usize;
            }
            lines.push(format_args!("{dimension} {key} {metric}: {got}, {want} events"));
        }
    }
    lines.into_problems(&mut v.problems);
    Ok(())
}

// --- 5. cache = database ----------------------------------------------------------------

/// What the topics say of a record beyond its existence: the version it was deleted at
/// (the RecordDeleted's recordVersion), if it was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RecordTruth {
    deleted_at: Option<i64>,
}

/// Every record of the topics' record events and of the accepted changes, by (table,
/// record).
fn record_truths<'a>(
    events: impl Iterator<Item = &'a DomainEvent>,
    accepted: &[Accepted],
) -> BTreeMap<(String, String), RecordTruth> {
    let mut out: BTreeMap<(String, String), RecordTruth> = BTreeMap::new();
    for (ty, table, record, version) in events.filter_map(change_of) {
        let truth = out.entry((table.to_owned(), record.to_owned())).or_default();
        if ty == EventType::RecordDeleted {
            truth.deleted_at = truth.deleted_at.max(Some(version));
        }
    }
    for a in accepted {
        out.entry((a.table_id.clone(), a.record_id.clone())).or_default();
    }
    out
}

/// Whether two JSON values are the same, numbers compared by value when one is a float
/// (`1.0` in one store, `1.0` written back as `1` by another).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || ((x.is_f64() || y.is_f64()) && x.as_f64().is_some() && x.as_f64() == y.as_f64())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| same_json(p, q)))
        }
        _ => a == b,
    }
}

/// Whether two field maps are the same (see [`same_json`]).
fn same_fields(a: &Fields, b: &Fields) -> bool {
    a.len() == b.len() && a.iter().all(|(k, x)| b.get(k).is_some_and(|y| same_json(x, y)))
}

/// How a record's cache entry compares with the database.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CacheFinding {
    /// As it must be.
    Agrees,
    /// Behind the database: a change never reached the cache.
    Lost(String),
    /// Otherwise wrong.
    Wrong(String),
}

/// Compares a record's cache entry with its database row (`db`: version and fields; `None`
/// when the row is gone, as a deletion leaves it) and its [`RecordTruth`]. A live row
/// needs a live entry of its version and fields; a deleted record a tombstone at its
/// deletion's version (the worker keeps tombstones for days, so absent is lost).
fn cache_finding(db: Option<(i64, &Fields)>, truth: &RecordTruth, entry: Option<&CacheEntry>) -> CacheFinding {
    use CacheFinding::{Agrees, Lost, Wrong};
    match (db, truth.deleted_at, entry) {
        (Some((version, _)), Some(deleted), _) => Wrong(format!("in the database at v{version}, yet deleted at v{deleted}")),
        (Some((version, _)), None, None) => Lost(format!("not cached; database v{version}")),
        (Some((version, fields)), None, Some(CacheEntry::Live(c))) => {
            if c.version < version {
                Lost(format!("cached v{}, database v{version}", c.version))
            } else if c.version > version {
                Wrong(format!("cached v{}, ahead of the database v{version}", c.version))
            } else if !same_fields(&c.fields, fields) {
                Wrong(format!("v{version}: cached fields differ from the database's"))
            } else {
                Agrees
            }
        }
        (Some((version, _)), None, Some(CacheEntry::Tombstone { version: t })) => {
            Wrong(format!("tombstone at v{t}, but the database holds v{version}"))
        }
        (None, None, _) => Wrong("not in the database, and no RecordDeleted on the topics".into()),
        (None, Some(deleted), None) => Lost(format!("deleted at v{deleted}, no tombstone")),
        (None, Some(deleted), Some(CacheEntry::Live(c))) if c.version < deleted => {
            Lost(format!("deleted at v{deleted}, still cached live at v{}", c.version))
        }
        (None, Some(deleted), Some(CacheEntry::Live(c))) => {
            Wrong(format!("deleted at v{deleted}, cached live at v{}", c.version))
        }
        (None, Some(deleted), Some(CacheEntry::Tombstone { version: t })) if *t < deleted => {
            Lost(format!("deleted at v{deleted}, tombstone at v{t}"))
        }
        (None, Some(deleted), Some(CacheEntry::Tombstone { version: t })) if *t > deleted => {
            Wrong(format!("deleted at v{deleted}, tombstone at v{t}"))
        }
        (None, Some(_), Some(CacheEntry::Tombstone { .. })) => Agrees,
    }
}

/// Check 5: for every record of the topics and of the accepted changes, its `ltf_records`
/// row (id, table_id, version, fields; `records::get`; deleted records are removed) and
/// its Redis entry (`RecordCache::entry` under `g.cache_prefix`) agree: behind → lost,
/// any other difference → a problem line.
async fn check_cache(g: &Ground, topics: &TopicEvents, v: &mut Verdict) -> Result<()> {
    let mut lines = Lines::new("cache");
    let mut config = CacheConfig::new(g.redis_url.clone());
    config.key_prefix = g.cache_prefix.clone();
    let cache = RecordCache::new(&config).context("connecting to Redis")?;
    let truths = record_truths(topics.events(), &g.accepted);
    let pool = &g.pool;
    let cache = &cache;
    let found: Vec<(Option<records::Record>, Option<CacheEntry>)> = stream::iter(truths.keys())
        .map(|(table, record)| async move {
            let mut conn = pool.acquire().await.context("a database connection")?;
            let row = records::get(&mut conn, record).await.with_context(|| format!("reading record {record}"))?;
            let entry =
                cache.entry(table, record).await.with_context(|| format!("reading the cache entry of {table}/{record}"))?;
            anyhow::Ok((row, entry))
        })
        .buffered(PARALLEL)
        .try_collect()
        .await?;
    for (((table, record), truth), (row, entry)) in truths.iter().zip(found) {
        if let Some(r) = row.as_ref().filter(|r| &r.table_id != table) {
            lines.push(format_args!("{table}/{record}: the database has it in table {}", r.table_id));
            continue;
        }
        match cache_finding(row.as_ref().map(|r| (r.version, &r.fields)), truth, entry.as_ref()) {
            CacheFinding::Agrees => {}
            CacheFinding::Lost(why) => {
                v.lost += 1;
                lines.push(format_args!("{table}/{record}: {why}"));
            }
            CacheFinding::Wrong(why) => lines.push(format_args!("{table}/{record}: {why}")),
        }
    }
    lines.into_problems(&mut v.problems);
    Ok(())
}

// --- 6. automation ----------------------------------------------------------------------

/// Whether a step called a webhook that must have reached the receiver: a successful
/// `webhook` action, or a successful `notify` through the webhook channel (its data says
/// `"channel": "webhook"`).
fn must_reach_receiver(step: &RunStep) -> bool {
    let webhook = step.action_type == "webhook"
        || (step.action_type == "notify"
            && step.data.as_ref().and_then(|d| d.get("channel")).and_then(Value::as_str) == Some("webhook"));
    webhook && step.result == "success"
}

/// Check 6: `ltf_automation_runs` and `ltf_automation_steps` (`automation_store::runs`:
/// run_id, source_event_id, status; each step's action_id, action_type, result, data).
/// A run still `running` is stuck; a run whose source_event_id is no topic event is a
/// problem line; an AutomationTriggered on the topics without its run is lost; a
/// successful webhook step whose Idempotency-Key `<runId>:<actionId>` the receiver never
/// saw is lost.
async fn check_automation(g: &Ground, topics: &TopicEvents, v: &mut Verdict) -> Result<()> {
    let mut lines = Lines::new("automation");
    let mut conn = g.pool.acquire().await.context("a database connection")?;
    let runs = automation_store::runs(&mut conn, None, i64::MAX).await.context("reading the automation runs")?;
    drop(conn);
    let run_ids: HashSet<Uuid> = runs.iter().map(|r| r.run_id).collect();
    for run in &runs {
        if run.status == "running" {
            v.stuck += 1;
            lines.push(format_args!("run {} of {} still running", run.run_id, run.automation_id));
        }
        if !topics.contains(&run.source_event_id) {
            lines.push(format_args!("run {}: its source event {} is not on the topics", run.run_id, run.source_event_id));
        }
        for step in run.steps.iter().filter(|s| must_reach_receiver(s)) {
            let key = format!("{}:{}", run.run_id, step.action_id);
            if !g.received_keys.contains(&key) {
                v.lost += 1;
                lines.push(format_args!("step {key} ({}) succeeded, the receiver never got it", step.action_type));
            }
        }
    }
    for e in topics.events() {
        if let EventPayload::AutomationTriggered(p) = &e.payload {
            if !Uuid::parse_str(&p.run_id).is_ok_and(|id| run_ids.contains(&id)) {
                v.lost += 1;
                lines.push(format_args!("automation-triggered {} names run {}, which is not stored", e.event_id(), p.run_id));
            }
        }
    }
    lines.into_problems(&mut v.problems);
    Ok(())
}

mod kafka;
#[cfg(test)]
mod tests;
mod topics;

pub use kafka::groups_behind;
use kafka::{check_dead_letters, check_lag, read_kafka_state};
use topics::{plain_consumer, read_event_topics, TopicEvents};
