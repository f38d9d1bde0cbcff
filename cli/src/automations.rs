//! `ltf automations`: store, list, enable or disable automations and show their runs.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ltf_domain::automations::{store, Automation};
use ltf_domain::usecases::{ChangeContext, CreateAutomation, UseCase};

use crate::database::DatabaseArgs;
use crate::settings::Common;

#[derive(Debug, Subcommand)]
pub enum AutomationsCmd {
    /// Store an automation from a JSON file (the body of POST /v1/automations).
    Create {
        /// The definition file (`-` for stdin).
        file: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// List the automations.
    List {
        /// Print the definitions as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Enable an automation.
    Enable(Toggle),
    /// Disable an automation: it is kept but never triggered.
    Disable(Toggle),
    /// The latest runs with their steps, newest first.
    Runs(RunsArgs),
}

#[derive(Debug, Args)]
pub struct Toggle {
    /// The automation id.
    id: String,
    #[command(flatten)]
    db: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only runs of this automation.
    #[arg(long)]
    automation: Option<String>,
    /// How many runs.
    #[arg(long, default_value_t = 20)]
    limit: i64,
    /// Print the runs as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DatabaseArgs,
}

pub async fn run(common: &Common, cmd: AutomationsCmd) -> Result<()> {
    match cmd {
        AutomationsCmd::Create { file, db } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let automation: Automation = serde_json::from_str(&text).context("parsing the automation definition")?;
            let pool = db.connect().await?;
            let codec = common.codec()?;
            let out = CreateAutomation.run(&pool, &codec, &ChangeContext::default(), automation).await?;
            println!("stored automation {} ({} actions)", out.value.id, out.value.actions.len());
        }
        AutomationsCmd::List { json, db } => {
            let pool = db.connect().await?;
            let all = store::list(&mut *pool.acquire().await?).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("no automations");
            }
            for a in all.iter().filter(|_| !json) {
                let scope = a.trigger.table_id.as_deref().or(a.trigger.form_id.as_deref()).unwrap_or("-");
                let actions: Vec<&str> = a.actions.iter().map(|x| x.kind.type_name()).collect();
                println!(
                    "{:<24} {:<8} {} on {} ({} conditions) -> {}",
                    a.id,
                    if a.enabled { "enabled" } else { "disabled" },
                    a.trigger.event.as_str(),
                    scope,
                    a.trigger.conditions.len(),
                    actions.join(", ")
                );
            }
        }
        AutomationsCmd::Enable(t) => toggle(t, true).await?,
        AutomationsCmd::Disable(t) => toggle(t, false).await?,
        AutomationsCmd::Runs(args) => {
            if !(1..=10_000).contains(&args.limit) {
                bail!("--limit must be between 1 and 10000");
            }
            let pool = args.db.connect().await?;
            let runs = store::runs(&mut *pool.acquire().await?, args.automation.as_deref(), args.limit).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
                return Ok(());
            }
            if runs.is_empty() {
                println!("no runs");
            }
            for r in runs {
                println!(
                    "{}  {:<20} {:<9} started {}  source {}  correlation {}{}",
                    r.run_id,
                    r.automation_id,
                    r.status,
                    r.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    r.source_event_id,
                    r.correlation_id,
                    r.error.map(|e| format!("  error: {e}")).unwrap_or_default()
                );
                for s in r.steps {
                    println!(
                        "    {:>2}. {:<16} {:<13} {:<7} attempts {}{}",
                        s.position + 1,
                        s.action_id,
                        s.action_type,
                        s.result,
                        s.attempts,
                        s.error.map(|e| format!("  error: {e}")).unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}

async fn toggle(t: Toggle, enabled: bool) -> Result<()> {
    let pool = t.db.connect().await?;
    if !store::set_enabled(&mut *pool.acquire().await?, &t.id, enabled).await? {
        bail!("automation {} does not exist", t.id);
    }
    println!("automation {} {}", t.id, if enabled { "enabled" } else { "disabled" });
    Ok(())
}
