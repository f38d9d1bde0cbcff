//! `ltf outbox parked|retry|skip`: the outbox rows Kafka refused for good.
//!
//! The relay parks a row Kafka refuses for good (too large for its topic, an invalid
//! record, a policy violation); the later rows of its aggregate wait behind it. Fix the
//! cause (raise the topic's `max.message.bytes`, …) and `retry` the row, or `skip` it: a
//! skip is a recorded gap in the aggregate's sequence (who, when, why), shown by
//! `ltf audit <aggregateId>`.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use ltf_domain::outbox;

use crate::database::DatabaseArgs;

#[derive(Debug, Subcommand)]
pub enum OutboxCmd {
    /// List the parked rows, oldest first.
    Parked(ParkedArgs),
    /// Unpark a row: the relay tries it again (after the cause was fixed).
    Retry(RetryArgs),
    /// Skip a parked row for good: never published; the rows behind it flow again.
    Skip(SkipArgs),
}

#[derive(Debug, Args)]
pub struct ParkedArgs {
    #[command(flatten)]
    db: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The parked row's id (`ltf outbox parked`).
    id: i64,
    #[command(flatten)]
    db: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct SkipArgs {
    /// The parked row's id (`ltf outbox parked`).
    id: i64,
    /// Who decides the skip (recorded with it).
    #[arg(long)]
    by: String,
    /// Why (recorded with it).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    db: DatabaseArgs,
}

pub async fn run(cmd: OutboxCmd) -> Result<()> {
    match cmd {
        OutboxCmd::Parked(a) => {
            let pool = a.db.connect().await?;
            let rows = outbox::parked(&pool).await?;
            if rows.is_empty() {
                println!("no parked outbox rows");
            }
            for r in rows {
                println!(
                    "{:>8}  {}/{} #{}  {}  {}  {} bytes  -> {}\n          parked {}: {}",
                    r.id,
                    r.aggregate_type,
                    r.aggregate_id,
                    r.aggregate_sequence,
                    r.event_type,
                    r.event_id,
                    r.bytes,
                    r.topic,
                    r.parked_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default(),
                    r.park_reason.as_deref().unwrap_or("-"),
                );
            }
        }
        OutboxCmd::Retry(a) => {
            let pool = a.db.connect().await?;
            if !outbox::retry(&pool, a.id).await? {
                bail!("outbox row {} is not parked", a.id);
            }
            println!("outbox row {} unparked: the relay tries it again", a.id);
        }
        OutboxCmd::Skip(a) => {
            if a.by.trim().is_empty() || a.reason.trim().is_empty() {
                bail!("--by and --reason must say who skips the row and why");
            }
            let pool = a.db.connect().await?;
            if !outbox::skip(&pool, a.id, a.by.trim(), a.reason.trim()).await? {
                bail!("outbox row {} is not parked", a.id);
            }
            println!("outbox row {} skipped by {}: {}", a.id, a.by.trim(), a.reason.trim());
        }
    }
    Ok(())
}
