//! `ltf dlq list|show|replay`: the dead letters of the consumer groups
//! (`<event topic>.<group>.dlq`, DESIGN.md "Retry and dead letters").
//!
//! * `list` counts them per group, source topic and `dlq-error-class`;
//! * `show` prints each with its partition/offset, key, headers and decoded value;
//! * `replay` re-publishes selected ones to `<event topic>.<group>.retry` (so only that
//!   group sees them) and records each in `ltf_dlq_replays` (see [`replay`]).

pub mod list;
mod record;
mod replay;
mod scan;
mod show;
mod topics;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

pub use scan::Letter;
pub use topics::{plain_consumer, DlqTopic, Selection, KAFKA_TIMEOUT};

use crate::settings::Common;

#[derive(Debug, Subcommand)]
pub enum DlqCmd {
    /// Dead letters per group and source topic, by error class.
    List(ListArgs),
    /// Each dead letter: partition/offset, key, headers, decoded value.
    Show(ShowArgs),
    /// Re-publish dead letters to the group's retry topic (rate-limited, recorded).
    Replay(replay::ReplayArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this consumer group (its id, or a worker name such as `audit`).
    #[arg(long)]
    group: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Which group's dead letters `show` and `replay` read.
#[derive(Debug, Args)]
pub struct LetterArgs {
    /// The consumer group (its id, or a worker name such as `audit`).
    #[arg(long)]
    group: String,
    /// Only this source topic (name, or aggregate such as `table`); `replay --offsets`
    /// needs it when the group has several DLQ topics.
    #[arg(long)]
    topic: Option<String>,
    /// Only this `dlq-error-class`.
    #[arg(long)]
    class: Option<String>,
}

impl LetterArgs {
    /// The DLQ topics to read.
    fn selection(&self) -> Selection {
        Selection { group: Some(self.group.clone()), topic: self.topic.clone() }
    }
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    letters: LetterArgs,
    /// Only this DLQ partition.
    #[arg(long)]
    partition: Option<i32>,
    /// From this DLQ offset on (in each partition read).
    #[arg(long)]
    offset: Option<i64>,
    /// At most this many letters.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Machine-readable output (one JSON array).
    #[arg(long)]
    json: bool,
}

/// Filters shared by `show` and `replay`, applied after reading.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this `dlq-error-class`.
    pub class: Option<String>,
    /// Only letters dead-lettered at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only letters dead-lettered before this time.
    pub until: Option<DateTime<Utc>>,
}

impl Filter {
    pub fn keeps(&self, l: &Letter) -> bool {
        let t = l.time();
        self.class.as_deref().is_none_or(|c| l.class() == c)
            && self.since.is_none_or(|s| t.is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| t.is_some_and(|t| t < u))
    }
}

pub async fn run(common: &Common, cmd: DlqCmd) -> Result<()> {
    match cmd {
        DlqCmd::List(a) => list::run(common, a).await,
        DlqCmd::Show(a) => show::run(common, a).await,
        DlqCmd::Replay(a) => replay::run(common, a).await,
    }
}

/// The selected DLQ topics and their letters in `range` (Kafka calls off the runtime).
pub async fn load(common: &Common, selection: Selection, range: scan::Range) -> Result<Vec<(DlqTopic, Vec<Letter>)>> {
    let bootstrap = common.bootstrap.clone();
    let prefix = common.topic_prefix.clone();
    tokio::task::spawn_blocking(move || {
        let consumer = plain_consumer(&bootstrap)?;
        let topics = topics::discover(&consumer, &prefix, &selection)?;
        topics
            .into_iter()
            .map(|t| {
                let letters = scan::read_topic(&consumer, &t, range)?;
                Ok((t, letters))
            })
            .collect()
    })
    .await
    .context("the DLQ reader task")?
}
