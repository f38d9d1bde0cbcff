//! `ltf automations` as an operator uses it: store a definition from a file, refuse a bad
//! one naming the key, list, disable and enable, and show runs; exit codes and output.

use std::process::{Command, Output};

use anyhow::Result;
use ltf_domain::usecases::{ChangeContext, CreateTable, CreateTableInput, UseCase};
use ltf_schemas::{EventCodec, TopicNames};
use ltf_tests::{fresh_database, registry_url, unique_prefix};
use serde_json::json;

fn ltf(db_url: &str, args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_ltf"))
        .args(["--registry", &registry_url()])
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("RUST_BACKTRACE", "0")
        .output()?)
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automations_are_stored_listed_toggled_and_their_runs_shown_and_bad_definitions_refused() -> Result<()> {
    let db = fresh_database().await?;
    let codec = EventCodec::new(&registry_url(), TopicNames::new(unique_prefix("auto-cli")))?;
    let input = CreateTableInput {
        id: Some("tasks".into()),
        name: "Tasks".into(),
        fields: serde_json::from_value(json!([{"name": "status", "type": "text"}]))?,
    };
    CreateTable.run(&db.pool, &codec, &ChangeContext::default(), input).await?;
    let dir = tempfile::tempdir()?;
    let good = dir.path().join("done.json");
    std::fs::write(
        &good,
        json!({"id": "done", "name": "Status done",
               "trigger": {"event": "record-updated", "tableId": "tasks", "conditions": [{"field": "status", "op": "changedTo", "value": "Done"}]},
               "actions": [{"id": "hook", "type": "webhook", "url": "https://hooks.example.com/done"}]})
        .to_string(),
    )?;
    let url = db.url();

    let out = ltf(&url, &["automations", "create", good.to_str().unwrap_or_default()])?;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8(out.stdout)?.trim(), "stored automation done (1 actions)");

    let again = ltf(&url, &["automations", "create", good.to_str().unwrap_or_default()])?;
    assert!(!again.status.success());
    assert!(text(&again).contains("automation done already exists"), "{}", text(&again));

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        json!({"id": "bad", "name": "Bad", "trigger": {"event": "record-created", "tableId": "tasks"}, "actions": []})
            .to_string(),
    )?;
    let refused = ltf(&url, &["automations", "create", bad.to_str().unwrap_or_default()])?;
    assert!(!refused.status.success());
    assert!(text(&refused).contains("invalid automation: actions: must hold at least one action"), "{}", text(&refused));

    let list = ltf(&url, &["automations", "list"])?;
    let listing = String::from_utf8(list.stdout)?;
    assert!(
        listing.starts_with("done ") && listing.contains("enabled  record-updated on tasks (1 conditions) -> webhook"),
        "{listing}"
    );
    assert!(ltf(&url, &["automations", "disable", "done"])?.status.success());
    let json_list: serde_json::Value = serde_json::from_slice(&ltf(&url, &["automations", "list", "--json"])?.stdout)?;
    assert_eq!(json_list[0]["enabled"], false);
    assert!(ltf(&url, &["automations", "enable", "done"])?.status.success());
    let missing = ltf(&url, &["automations", "enable", "nope"])?;
    assert!(!missing.status.success() && text(&missing).contains("automation nope does not exist"), "{}", text(&missing));

    let runs = ltf(&url, &["automations", "runs", "--automation", "done"])?;
    assert!(runs.status.success());
    assert_eq!(String::from_utf8(runs.stdout)?.trim(), "no runs");
    assert!(!ltf(&url, &["automations", "runs", "--limit", "0"])?.status.success());
    db.drop_database().await
}
