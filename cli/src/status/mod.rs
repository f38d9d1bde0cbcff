//! `ltf status [--watch SECS] [--json]`: per consumer group of the topic prefix its state,
//! members, lag per topic (messages and seconds) and dead letters; and the outbox backlog
//! when `DATABASE_URL` is given.

mod groups;
mod outbox;
mod render;

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;

use crate::database::{DatabaseArgs, Secret};
use crate::dlq::list::{counts, DlqCount};
use crate::ops;
use crate::settings::Common;

pub use groups::GroupKafka;
pub use outbox::OutboxBacklog;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Refresh the screen every this many seconds until Ctrl-C.
    #[arg(long, value_name = "SECS")]
    watch: Option<u64>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// PostgreSQL of the outbox; without it the outbox section is skipped.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<Secret>,
}

/// One consumer group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    #[serde(flatten)]
    pub kafka: GroupKafka,
    /// Dead letters per source topic.
    pub dead_letters: Vec<DlqCount>,
    pub dead_letters_total: u64,
}

/// Everything `status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub at: DateTime<Utc>,
    pub topic_prefix: String,
    pub groups: Vec<GroupStatus>,
    /// `None` when no database was given or it could not be read (see `outbox_note`).
    pub outbox: Option<OutboxBacklog>,
    pub outbox_note: Option<String>,
}

pub async fn run(common: &Common, args: StatusArgs) -> Result<()> {
    let pool = match &args.database_url {
        Some(url) => Some(DatabaseArgs { database_url: url.clone(), db_max_connections: 2 }.connect().await?),
        None => None,
    };
    let Some(secs) = args.watch else {
        let status = collect(common, pool.as_ref()).await?;
        return render::print(&status, args.json);
    };
    let every = Duration::from_secs(secs.max(1));
    // One signal future for the whole loop, polled from the first refresh on: a Ctrl-C
    // that arrives while a refresh runs stops the loop too (tokio keeps the signal for
    // the registered listener; a new `ctrl_c()` per iteration would miss it).
    let stop = ops::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let status = tokio::select! {
            _ = &mut stop => return Ok(()),
            s = collect(common, pool.as_ref()) => s,
        };
        match status {
            Ok(status) => {
                if !args.json {
                    print!("\x1b[2J\x1b[H");
                }
                render::print(&status, args.json)?;
            }
            Err(e) => eprintln!("status failed: {e:#}"),
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Reads everything once.
pub async fn collect(common: &Common, pool: Option<&sqlx::PgPool>) -> Result<Status> {
    let dlq = counts(common, None).await?;
    let mut dlq_groups: Vec<String> = dlq.iter().map(|c| c.group.clone()).collect();
    dlq_groups.dedup();
    let (bootstrap, prefix) = (common.bootstrap.clone(), common.topic_prefix.clone());
    let kafka = tokio::task::spawn_blocking(move || groups::groups(&bootstrap, &prefix, &dlq_groups))
        .await
        .context("the status reader task")??;
    let groups = kafka
        .into_iter()
        .map(|k| {
            let dead_letters: Vec<DlqCount> = dlq.iter().filter(|c| c.group == k.group).cloned().collect();
            GroupStatus { dead_letters_total: dead_letters.iter().map(|c| c.total).sum(), kafka: k, dead_letters }
        })
        .collect();
    let (outbox, outbox_note) = match pool {
        // The Kafka part is still worth showing when the outbox cannot be read.
        Some(pool) => match outbox::backlog(pool).await {
            Ok(b) => (Some(b), None),
            Err(e) => (None, Some(format!("outbox unreadable: {e:#}"))),
        },
        None => (None, Some("outbox skipped: no DATABASE_URL".to_owned())),
    };
    Ok(Status { at: Utc::now(), topic_prefix: common.topic_prefix.clone(), groups, outbox, outbox_note })
}
