//! `ltf dlq replay`: re-publishes selected dead letters to `<event topic>.<group>.retry`,
//! which only that group consumes, at a bounded rate, and records each one.
//!
//! * Key and value bytes are the original's; so are its headers, `event-id` included, so
//!   the worker's dedup store still recognises an event that was handled meanwhile.
//! * Of the `dlq-*` headers only the four `dlq-original-{topic,partition,offset,timestamp}`
//!   are kept: the dead-letter writer reads them from a retry-topic message, so a replay
//!   that fails again is dead-lettered to the same DLQ naming the event topic as origin.
//!   The others (class, message, attempts, handler, failures, group) are dropped: a
//!   replay starts with fresh attempts and a new failure writes fresh ones.
//!   `dlq-replayed-at` (RFC 3339) and `dlq-replayed-from` (`<dlq topic>/<partition>/<offset>`)
//!   are added; being `dlq-*`, they too are replaced if the replay is dead-lettered again.
//! * Each letter is recorded in `ltf_dlq_replays` after the broker acknowledged its copy;
//!   a later replay skips recorded letters unless `--again`. A crash between the two
//!   replays that letter once more next time: same eventId, so the worker drops it.
//! * `--dry-run` publishes and records nothing.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use ltf_consumers::middleware::DlqHeaders;
use ltf_kafka::topics::{ensure_side_topics, SideTopic, CLUSTER_DEFAULT_REPLICATION};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use sqlx::PgPool;

use super::record::{already_replayed, record, Replayed};
use super::scan::Range;
use super::{load, DlqTopic, Filter, Letter};
use crate::database::{DatabaseArgs, Secret};
use crate::settings::Common;

/// Added to each replayed message: when it was replayed.
pub const REPLAYED_AT: &str = "dlq-replayed-at";
/// Added to each replayed message: the dead letter it copies, `<dlq topic>/<partition>/<offset>`.
pub const REPLAYED_FROM: &str = "dlq-replayed-from";
/// The `dlq-*` headers a replay keeps (the dead-letter writer reads them back).
const KEPT: [&str; 4] =
    [DlqHeaders::ORIGINAL_TOPIC, DlqHeaders::ORIGINAL_PARTITION, DlqHeaders::ORIGINAL_OFFSET, DlqHeaders::ORIGINAL_TIMESTAMP];

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    letters: super::LetterArgs,
    /// Only letters dead-lettered at or after this RFC 3339 time (the DLQ record's timestamp).
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Only letters dead-lettered before this RFC 3339 time.
    #[arg(long)]
    until: Option<DateTime<Utc>>,
    /// Only these DLQ coordinates, `partition:offset,…`.
    #[arg(long, value_delimiter = ',')]
    offsets: Vec<Coord>,
    /// Most messages published per second (`N` or `N/s`).
    #[arg(long, default_value = "50/s")]
    rate: Rate,
    /// Print what would be replayed; publish and record nothing.
    #[arg(long)]
    dry_run: bool,
    /// Replay letters recorded as replayed before too.
    #[arg(long)]
    again: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// PostgreSQL holding `ltf_dlq_replays` (required unless `--dry-run`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<Secret>,
}

/// A DLQ `partition:offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coord {
    pub partition: i32,
    pub offset: i64,
}

impl FromStr for Coord {
    type Err = String;

    fn from_str(s: &str) -> Result<Coord, String> {
        let (p, o) = s.trim().split_once(':').ok_or_else(|| format!("`{s}`: expected partition:offset"))?;
        Ok(Coord {
            partition: p.parse().map_err(|_| format!("`{s}`: bad partition"))?,
            offset: o.parse().map_err(|_| format!("`{s}`: bad offset"))?,
        })
    }
}

/// Messages per second, at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub u32);

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let n = s.trim().strip_suffix("/s").unwrap_or(s.trim());
        match n.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Rate(n)),
            _ => Err(format!("`{s}`: expected a positive rate such as 100/s")),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.0)
    }
}

/// The headers of the replayed copy of `l` (see the module doc).
pub fn replay_headers(l: &Letter, now: DateTime<Utc>) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out: Vec<(String, Option<Vec<u8>>)> =
        l.headers.iter().filter(|(k, _)| !k.starts_with(DlqHeaders::PREFIX) || KEPT.contains(&k.as_str())).cloned().collect();
    out.push((REPLAYED_AT.into(), Some(now.to_rfc3339_opts(SecondsFormat::Millis, true).into_bytes())));
    out.push((REPLAYED_FROM.into(), Some(format!("{}/{}/{}", l.topic, l.partition, l.offset).into_bytes())));
    out
}

#[derive(Debug, Serialize)]
struct Item {
    dlq_topic: String,
    partition: i32,
    offset: i64,
    event_id: Option<String>,
    class: String,
    retry_topic: String,
    retry_partition: Option<i32>,
    retry_offset: Option<i64>,
}

#[derive(Debug, Serialize)]
struct Summary {
    dry_run: bool,
    replayed: Vec<Item>,
    skipped_already_replayed: usize,
}

pub async fn run(common: &Common, args: ReplayArgs) -> Result<()> {
    let selection = args.letters.selection();
    let loaded = load(common, selection, Range::default()).await?;
    if loaded.is_empty() {
        bail!("no dead-letter topic for group `{}` (prefix {})", args.letters.group, common.topic_prefix);
    }
    if !args.offsets.is_empty() && loaded.len() > 1 {
        let names: Vec<&str> = loaded.iter().map(|(t, _)| t.source.as_str()).collect();
        bail!("--offsets names partitions of one DLQ topic: add --topic (one of {})", names.join(", "));
    }
    let pool = match (&args.database_url, args.dry_run) {
        (Some(url), _) => Some(DatabaseArgs { database_url: url.clone(), db_max_connections: 2 }.connect().await?),
        (None, true) => None,
        (None, false) => bail!("replay records what it replayed in PostgreSQL: set DATABASE_URL (or --database-url)"),
    };
    let filter = Filter { class: args.letters.class.clone(), since: args.since, until: args.until };
    let mut summary = Summary { dry_run: args.dry_run, replayed: Vec::new(), skipped_already_replayed: 0 };
    let producer: Option<FutureProducer> = if args.dry_run {
        None
    } else {
        Some(common.publisher_config().client_config()?.create().context("creating the Kafka producer")?)
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate.0)));
    for (topic, letters) in &loaded {
        let done = match &pool {
            Some(pool) if !args.again => match already_replayed(pool, &topic.group, &topic.name).await {
                Ok(done) => done,
                // A dry run still shows what it would replay; it just cannot tell what was.
                Err(e) if args.dry_run => {
                    eprintln!("not skipping letters replayed before: {e:#}");
                    Default::default()
                }
                Err(e) => return Err(e),
            },
            _ => Default::default(),
        };
        let selected: Vec<&Letter> = letters
            .iter()
            .filter(|l| filter.keeps(l))
            .filter(|l| args.offsets.is_empty() || args.offsets.contains(&Coord { partition: l.partition, offset: l.offset }))
            .collect();
        let (skipped, todo): (Vec<&Letter>, Vec<&Letter>) =
            selected.into_iter().partition(|l| done.contains(&(l.partition, l.offset)));
        summary.skipped_already_replayed += skipped.len();
        if todo.is_empty() {
            continue;
        }
        if let (Some(producer), Some(pool)) = (&producer, &pool) {
            ensure_retry_topic(common, topic).await?;
            for l in todo {
                tick.tick().await;
                summary.replayed.push(publish(producer, pool, topic, l).await?);
                if !args.json {
                    print_item(summary.replayed.last().expect("just pushed"), false);
                }
            }
        } else {
            for l in todo {
                let item = item(topic, l, None);
                if !args.json {
                    print_item(&item, true);
                }
                summary.replayed.push(item);
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let verb = if args.dry_run { "would replay" } else { "replayed" };
        println!(
            "{verb} {} dead letter(s); skipped {} replayed before{}",
            summary.replayed.len(),
            summary.skipped_already_replayed,
            if summary.skipped_already_replayed > 0 { " (--again to replay them too)" } else { "" }
        );
    }
    Ok(())
}

fn item(topic: &DlqTopic, l: &Letter, at: Option<(i32, i64)>) -> Item {
    Item {
        dlq_topic: topic.name.clone(),
        partition: l.partition,
        offset: l.offset,
        event_id: l.header("event-id"),
        class: l.class(),
        retry_topic: topic.retry_topic(),
        retry_partition: at.map(|a| a.0),
        retry_offset: at.map(|a| a.1),
    }
}

fn print_item(i: &Item, dry_run: bool) {
    let target = match (i.retry_partition, i.retry_offset) {
        (Some(p), Some(o)) => format!("{} partition {p} offset {o}", i.retry_topic),
        _ => i.retry_topic.clone(),
    };
    println!(
        "{}{} {}:{}  event {}  class {}  -> {target}",
        if dry_run { "would replay " } else { "replayed " },
        i.dlq_topic,
        i.partition,
        i.offset,
        i.event_id.as_deref().unwrap_or("-"),
        i.class,
    );
}

/// The worker creates its retry topics at start; create it here too when missing (never
/// let an idempotent producer auto-create a topic, see README), as durable as its event
/// topic.
async fn ensure_retry_topic(common: &Common, topic: &DlqTopic) -> Result<()> {
    let spec = SideTopic {
        name: topic.retry_topic(),
        source: topic.source.clone(),
        partitions: topic.partitions.len().max(1) as i32,
        fallback_replication: CLUSTER_DEFAULT_REPLICATION,
    };
    ensure_side_topics(&common.bootstrap, &[spec]).await.with_context(|| format!("creating {}", topic.retry_topic()))?;
    Ok(())
}

async fn publish(producer: &FutureProducer, pool: &PgPool, topic: &DlqTopic, l: &Letter) -> Result<Item> {
    let retry = topic.retry_topic();
    let mut headers = OwnedHeaders::new();
    for (k, v) in replay_headers(l, Utc::now()) {
        headers = headers.insert(Header { key: &k, value: v.as_deref() });
    }
    let mut msg: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&retry).headers(headers);
    if let Some(key) = &l.key {
        msg = msg.key(key);
    }
    if let Some(value) = &l.value {
        msg = msg.payload(value);
    }
    let delivery = producer
        .send(msg, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)
        .with_context(|| format!("publishing {}:{} of {} to {retry}", l.partition, l.offset, topic.name))?;
    let item = item(topic, l, Some((delivery.partition, delivery.offset)));
    record(
        pool,
        &Replayed {
            group: &topic.group,
            dlq_topic: &topic.name,
            dlq_partition: l.partition,
            dlq_offset: l.offset,
            event_id: item.event_id.clone(),
            error_class: item.class.clone(),
            retry_topic: &retry,
            retry_partition: delivery.partition,
            retry_offset: delivery.offset,
        },
    )
    .await?;
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(headers: &[(&str, &str)]) -> Letter {
        Letter {
            topic: "p.table.events.p.audit.dlq".into(),
            partition: 1,
            offset: 7,
            timestamp_ms: Some(1_700_000_000_000),
            key: Some(b"tbl_1".to_vec()),
            value: Some(vec![0, 0, 0, 0, 1, 2]),
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), Some(v.as_bytes().to_vec()))).collect(),
        }
    }

    #[test]
    fn keeps_original_headers_and_the_origin_drops_the_failure_and_marks_the_replay() {
        let l = letter(&[
            ("event-id", "e-1"),
            ("dlq-error-class", "database"),
            ("dlq-attempts", "3"),
            ("dlq-original-topic", "p.table.events"),
            ("dlq-original-partition", "0"),
            ("dlq-original-offset", "4"),
            ("dlq-original-timestamp", "1"),
            ("dlq-handler", "event-log"),
            ("traceparent", "00-x"),
        ]);
        let now = DateTime::from_timestamp_millis(1_764_237_600_000).unwrap();
        let h = replay_headers(&l, now);
        let names: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "event-id",
                "dlq-original-topic",
                "dlq-original-partition",
                "dlq-original-offset",
                "dlq-original-timestamp",
                "traceparent",
                REPLAYED_AT,
                REPLAYED_FROM
            ]
        );
        assert_eq!(h[6].1.as_deref(), Some(&b"2025-11-27T10:00:00.000Z"[..]));
        assert_eq!(h[7].1.as_deref(), Some(&b"p.table.events.p.audit.dlq/1/7"[..]));
    }

    #[test]
    fn parses_coordinates_and_rates() {
        assert_eq!("2:41".parse::<Coord>(), Ok(Coord { partition: 2, offset: 41 }));
        assert!("2".parse::<Coord>().is_err());
        assert_eq!("100/s".parse::<Rate>(), Ok(Rate(100)));
        assert_eq!("7".parse::<Rate>(), Ok(Rate(7)));
        assert!("0/s".parse::<Rate>().is_err());
    }
}
