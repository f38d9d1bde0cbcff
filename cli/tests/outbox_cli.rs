//! `ltf outbox` as an operator uses it: list the parked rows, retry one, skip one with who
//! and why, and see the gap in `ltf audit`; exit codes and output.

use std::process::{Command, Output};

use anyhow::{ensure, Result};
use ltf_domain::usecases::{ChangeContext, CreateRecord, CreateRecordInput, CreateTable, CreateTableInput, UseCase};
use ltf_schemas::{EventCodec, TopicNames};
use ltf_tests::{fresh_database, registry_url, unique_prefix};
use serde_json::json;

fn ltf(db_url: &str, args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_ltf")).args(args).env("DATABASE_URL", db_url).env("RUST_BACKTRACE", "0").output()?)
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_rows_are_listed_retried_and_skipped_with_who_and_why_and_the_gap_shows_in_the_audit() -> Result<()> {
    let db = fresh_database().await?;
    let codec = EventCodec::new(&registry_url(), TopicNames::new(unique_prefix("outbox-cli")))?;
    let ctx = ChangeContext::default();
    let table: CreateTableInput =
        serde_json::from_value(json!({"id": "tasks", "name": "Tasks", "fields": [{"name": "title", "type": "text"}]}))?;
    CreateTable.run(&db.pool, &codec, &ctx, table).await?;
    let input =
        CreateRecordInput { table_id: "tasks".into(), fields: json!({"title": "x"}).as_object().cloned().unwrap_or_default() };
    CreateRecord.run(&db.pool, &codec, &ctx, input).await?;
    // What the relay does to a row Kafka refuses for good.
    let id: i64 = sqlx::query_scalar(
        "UPDATE ltf_outbox SET parked_at = now(), park_reason = 'Broker: Message size too large' RETURNING id",
    )
    .fetch_one(&db.pool)
    .await?;
    let url = db.url();

    let out = ltf(&url, &["outbox", "parked"])?;
    ensure!(out.status.success(), "{}", text(&out));
    let listed = text(&out);
    ensure!(
        listed.contains(&id.to_string()) && listed.contains("tasks #1") && listed.contains("Message size too large"),
        "{listed}"
    );

    let out = ltf(&url, &["outbox", "retry", &id.to_string()])?;
    ensure!(out.status.success() && text(&out).contains("unparked"), "{}", text(&out));
    let out = ltf(&url, &["outbox", "retry", &id.to_string()])?;
    ensure!(!out.status.success() && text(&out).contains("is not parked"), "a row not parked: {}", text(&out));

    sqlx::query("UPDATE ltf_outbox SET parked_at = now(), park_reason = 'again' WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await?;
    let out = ltf(&url, &["outbox", "skip", &id.to_string(), "--by", "", "--reason", "x"])?;
    ensure!(!out.status.success() && text(&out).contains("--by and --reason"), "{}", text(&out));
    let out = ltf(&url, &["outbox", "skip", &id.to_string(), "--by", "ops@example.com", "--reason", "larger than any topic"])?;
    ensure!(out.status.success(), "{}", text(&out));
    let out = ltf(&url, &["outbox", "parked"])?;
    ensure!(text(&out).contains("no parked outbox rows"), "{}", text(&out));

    let out = ltf(&url, &["audit", "tasks"])?;
    let audit = text(&out);
    ensure!(
        out.status.success()
            && audit.contains("SKIPPED record-created by ops@example.com")
            && audit.contains("larger than any topic"),
        "{audit}"
    );
    db.drop_database().await
}
