//! `ltf audit <aggregateId>`: an aggregate's history from the audit worker's event log.

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use ltf_domain::outbox;
use ltf_workers::audit::history;

use crate::database::DatabaseArgs;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The aggregate (tableId, automationId, connectionId or formId).
    aggregate_id: String,
    /// Only events that occurred at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Print each event's payload as JSON too.
    #[arg(long)]
    payload: bool,
    #[command(flatten)]
    db: DatabaseArgs,
}

pub async fn run(args: AuditArgs) -> Result<()> {
    let pool = args.db.connect().await?;
    let entries = history(&pool, &args.aggregate_id, args.since).await?;
    if entries.is_empty() {
        println!("no events logged for {}", args.aggregate_id);
    }
    // Gaps: outbox rows an operator skipped (never published, so never logged).
    for gap in outbox::skipped(&pool, &args.aggregate_id).await? {
        println!(
            "{:>6}  SKIPPED {} by {} at {}: {}",
            gap.aggregate_sequence,
            gap.event_type,
            gap.skipped_by.as_deref().unwrap_or("-"),
            gap.skipped_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default(),
            gap.skip_reason.as_deref().unwrap_or("-"),
        );
    }
    for e in entries {
        println!(
            "{:>6}  {}  {:<22} {}  correlation {}  cause {}",
            e.aggregate_sequence,
            e.occurred_on.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            e.event_type,
            e.event_id,
            e.correlation_id,
            e.causation_id.as_deref().unwrap_or("-"),
        );
        if args.payload {
            println!("        {}", e.payload);
        }
    }
    Ok(())
}
