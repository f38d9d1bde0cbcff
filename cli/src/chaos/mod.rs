//! `ltf chaos`: the fault-injection harness. Starts the api, the relay and the four
//! workers on a fresh database and topic prefix, drives a mixed load through the API while
//! it crashes and restarts the processes and the stack's services at random (seeded)
//! points, waits until everything drained, then compares every store with the ground
//! truth ([`check`]) and prints one table. `scripts/chaos` runs it on a private stack
//! instance; RELIABILITY.md explains how to run it against another deployment.

pub mod check;
mod faults;
pub mod ground;
mod load;
mod procs;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::demo::flows::{serve_receiver, Behaviour};
use crate::settings::Common;
use faults::{Fault, Injector, WORKERS};
use ground::{Ground, Verdict};
use procs::Procs;

#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// Minutes of load (fractions allowed: 0.5 is 30 s).
    #[arg(long, default_value_t = 3.0)]
    minutes: f64,
    /// Faults to inject, comma-separated: workers, relay, kafka, postgres, redis, and with
    /// `--brokers 3` broker and broker-stall (there `kafka` means `broker`).
    #[arg(long, value_delimiter = ',', default_value = "workers,relay,kafka,postgres,redis")]
    faults: Vec<Fault>,
    /// Kafka nodes of the stack (`scripts/stack up --brokers N`): 1 or 3. With 3, event
    /// topics are replicated three times (min.insync.replicas 2).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
    brokers: u8,
    /// Seconds between faults: each gap is drawn between this and twice it.
    #[arg(long, default_value_t = 8)]
    fault_every_secs: u64,
    /// The receiver answers 10 % of calls 503 and 5 % after 2 s (the workers' webhook
    /// timeout is 1.5 s: the call took effect, the answer came late).
    #[arg(long)]
    flaky_receiver: bool,
    /// Seed of the load and the faults (a run is reproducible); default: drawn and printed.
    #[arg(long)]
    seed: Option<u64>,
    /// Keep the run's database (and print its URL) for inspection.
    #[arg(long)]
    keep: bool,
    /// Clients driving the API at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Most API requests per second, all clients together: a rate the pipeline sustains
    /// on the machine, so the run measures faults, not a backlog (every request writes one
    /// to three events, and the automations write more).
    #[arg(long, default_value_t = 40.0)]
    rate: f64,
    /// Ports: the api on +0, the relay on +1, the workers on +2..+5, the receiver on +9.
    #[arg(long, default_value_t = 18500)]
    port_base: u16,
    /// Longest wait for everything to drain after the load, in seconds.
    #[arg(long, default_value_t = 300)]
    drain_secs: u64,
    /// The `scripts/stack` script of the stack instance to inject faults into.
    #[arg(long, default_value = "scripts/stack")]
    stack: PathBuf,
    /// The database server (a database of the run is created on it).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Redis of the cache worker.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Where the processes' logs go.
    #[arg(long, default_value = "target/chaos")]
    logs: PathBuf,
}

/// Faults injected, by kind.
type Injected = BTreeMap<&'static str, u32>;

pub async fn run(common: &Common, args: ChaosArgs) -> Result<()> {
    if !(args.minutes > 0.0 && args.minutes <= 240.0) {
        bail!("--minutes must be above 0 and at most 240");
    }
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        bail!("--rate must be above 0");
    }
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let run_id = format!("{stamp}{}", seed % 1000);
    let prefix = format!("ltfchaos-{run_id}");
    let db_name = format!("ltf_chaos_{run_id}");
    if args.brokers == 2 {
        bail!("--brokers takes 1 or 3");
    }
    let faults: BTreeSet<Fault> =
        args.faults.iter().map(|f| if args.brokers == 3 && *f == Fault::Kafka { Fault::Broker } else { *f }).collect();
    if let Some(f) = faults.iter().find(|f| f.needs_three_brokers() && args.brokers != 3) {
        bail!("the fault `{}` needs the three-broker stack (--brokers 3)", f.name());
    }
    println!(
        "chaos run {run_id}: seed {seed}, {} min of load at {} requests/s, faults: {}{}",
        args.minutes,
        args.rate,
        faults.iter().map(|f| f.name()).collect::<Vec<_>>().join(","),
        if args.flaky_receiver { ", flaky receiver" } else { "" }
    );

    // A fresh database and topic prefix.
    let server = PgPool::connect(&args.database_url).await.context("connecting to DATABASE_URL")?;
    sqlx::query(&format!("CREATE DATABASE {db_name}")).execute(&server).await?;
    server.close().await;
    let db_url = database_url_of(&args.database_url, &db_name)?;
    let outcome = run_on(common, &args, seed, &run_id, &prefix, &db_url, &faults).await;
    if args.keep {
        println!("kept: database {db_name} (DATABASE_URL ending /{db_name}), topic prefix {prefix}");
    } else {
        drop_run_database(&args.database_url, &db_name).await;
    }
    let verdict = outcome?;
    if !passed(&verdict) {
        bail!("the chaos run broke a promise (see the table and the problems above)");
    }
    Ok(())
}

/// Drops the run's database (see [`ltf_pg::drop_database`]). A database left behind is
/// reported; it breaks no promise of the run.
async fn drop_run_database(database_url: &str, db_name: &str) {
    use sqlx::Connection;
    let dropped = match sqlx::PgConnection::connect(database_url).await {
        Ok(mut server) => ltf_pg::drop_database(&mut server, db_name).await,
        Err(e) => Err(e),
    };
    if let Err(e) = dropped {
        eprintln!("warning: the run's database {db_name} was not dropped: {e}");
    }
}

fn passed(v: &Verdict) -> bool {
    v.lost == 0 && v.doubled == 0 && v.out_of_order == 0 && v.stuck == 0 && v.dead_lettered == 0 && v.problems.is_empty()
}

/// `url` with its database replaced by `db`.
fn database_url_of(url: &str, db: &str) -> Result<String> {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').context("DATABASE_URL has no database part")?;
    Ok(match query {
        Some(q) => format!("{server}/{db}?{q}"),
        None => format!("{server}/{db}"),
    })
}

async fn ltf(args: &[&str], env: &[(String, String)]) -> Result<()> {
    let exe = std::env::current_exe()?;
    let out = tokio::process::Command::new(exe).args(args).envs(env.iter().cloned()).output().await?;
    if !out.status.success() {
        bail!("ltf {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

async fn run_on(
    common: &Common,
    args: &ChaosArgs,
    seed: u64,
    run_id: &str,
    prefix: &str,
    db_url: &str,
    faults: &BTreeSet<Fault>,
) -> Result<Verdict> {
    let base = args.port_base;
    let key = format!("chaos-{:x}", rand::rng().random::<u128>());
    let env: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), db_url.into()),
        ("LTF_TOPIC_PREFIX".into(), prefix.into()),
        ("LTF_KAFKA_BOOTSTRAP".into(), common.bootstrap.clone()),
        ("LTF_REGISTRY_URL".into(), common.registry.clone()),
        ("REDIS_URL".into(), args.redis_url.clone()),
        // Event topics (and the side topics that follow them) on every node.
        ("LTF_TOPIC_REPLICATION".into(), args.brokers.to_string()),
    ];
    ltf(&["schemas", "register"], &env).await?;
    ltf(&["topics", "ensure"], &env).await?;
    ltf(&["migrate"], &env).await?;

    let receiver: SocketAddr = ([127, 0, 0, 1], base + 9).into();
    let behaviour = Behaviour { flaky: args.flaky_receiver, late: Duration::from_millis(2000) };
    let received = serve_receiver(receiver, behaviour).await?;

    let logs = args.logs.join(run_id);
    let mut procs = Procs::new(logs.clone())?;
    let url = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");
    let mut api_env = env.clone();
    api_env.push(("LTF_API_KEYS".into(), format!("chaos:{key}")));
    api_env.push(("LTF_API_LISTEN".into(), format!("127.0.0.1:{base}")));
    procs.add("api", &["api".into()], &api_env, url(base, "/readyz"))?;
    let relay_listen = format!("127.0.0.1:{}", base + 1);
    procs.add("relay", &["relay".into(), "--listen".into(), relay_listen], &env, url(base + 1, "/readyz"))?;
    let cache_prefix = format!("{prefix}-cache");
    let mut worker_env = env.clone();
    worker_env.extend([
        ("LTF_WEBHOOK_ALLOW_HOSTS".to_owned(), "127.0.0.1".to_owned()),
        ("LTF_WEBHOOK_TIMEOUT_MS".to_owned(), "1500".to_owned()),
        ("LTF_NOTIFY_WEBHOOK_URL".to_owned(), format!("http://{receiver}/notify")),
        ("LTF_CACHE_KEY_PREFIX".to_owned(), cache_prefix.clone()),
    ]);
    for (i, w) in WORKERS.iter().enumerate() {
        let port = base + 2 + i as u16;
        let a = vec!["worker".to_owned(), (*w).to_owned(), "--listen".to_owned(), format!("127.0.0.1:{port}")];
        procs.add(w, &a, &worker_env, url(port, "/readyz"))?;
    }
    for name in procs.names() {
        procs.wait_ready(&name, Duration::from_secs(120)).await?;
    }
    println!(
        "api :{base}, relay :{}, workers :{}-:{}, receiver :{}; logs in {}",
        base + 1,
        base + 2,
        base + 5,
        base + 9,
        logs.display()
    );
    let procs = Arc::new(Mutex::new(procs));

    let api = load::Api::new(&url(base, ""), &key);
    let model = api.model(&run_id[run_id.len().saturating_sub(8)..], &format!("http://{receiver}")).await?;
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(args.minutes * 60.0);

    // Faults, while the load runs.
    let injector = Injector::new(args.stack.clone())
        .aiming_at(&common.bootstrap, &ltf_schemas::TopicNames::new(prefix).events(ltf_schemas::AggregateType::Table));
    let fault_list: Vec<Fault> = faults.iter().copied().collect();
    let fault_task = {
        let procs = procs.clone();
        let every = args.fault_every_secs.max(1);
        async move {
            let mut injected = Injected::new();
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
            let mut round: Vec<Fault> = Vec::new();
            loop {
                let gap = Duration::from_millis(rng.random_range(every * 1000..=every * 2000));
                if Instant::now() + gap >= until || fault_list.is_empty() {
                    break;
                }
                tokio::time::sleep(gap).await;
                if round.is_empty() {
                    // Every kind once per round, in a seeded order.
                    round = fault_list.clone();
                    for i in (1..round.len()).rev() {
                        round.swap(i, rng.random_range(0..=i));
                    }
                }
                let Some(fault) = round.pop() else { break };
                match injector.inject(fault, &procs, &mut rng).await {
                    Ok(what) => {
                        *injected.entry(fault.name()).or_default() += 1;
                        println!("  {:>6.1} s  fault: {} ({what})", started.elapsed().as_secs_f64(), fault.name());
                    }
                    Err(e) => println!("  {:>6.1} s  fault {} failed: {e:#}", started.elapsed().as_secs_f64(), fault.name()),
                }
            }
            injected
        }
    };
    let (tally, injected) = tokio::join!(api.drive(&model, args.concurrency, args.rate, seed, until), fault_task);
    let load_secs = started.elapsed().as_secs_f64();
    println!(
        "load: {} requests in {load_secs:.0} s, by answer: {}",
        tally.outcomes.values().sum::<u64>(),
        tally.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    );

    // Repair whatever is still down, then wait until everything drained.
    let revived = procs.lock().await.revive()?;
    if !revived.is_empty() {
        println!("restarted after the load (they had exited): {}", revived.join(", "));
    }
    let pool = PgPool::connect(db_url).await?;
    let topics = ltf_schemas::TopicNames::new(prefix);
    let groups: BTreeMap<String, String> = WORKERS
        .iter()
        .map(|w| ((*w).to_owned(), ltf_workers::WorkerKind::parse(w).map(|k| k.group_id(&topics)).unwrap_or_default()))
        .collect();
    let drain_started = Instant::now();
    let drained = drain(&pool, &common.bootstrap, &topics, &groups, Duration::from_secs(args.drain_secs), &procs).await;
    let drain_secs = drain_started.elapsed().as_secs_f64();
    procs.lock().await.stop_all(Duration::from_secs(25)).await;

    let received_keys: BTreeSet<String> = {
        let r = received.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        r.keys.values().flatten().cloned().collect()
    };
    let ground = Ground {
        pool: pool.clone(),
        bootstrap: common.bootstrap.clone(),
        codec: Arc::new(ltf_schemas::EventCodec::new(&common.registry, topics.clone())?),
        topics,
        groups,
        redis_url: args.redis_url.clone(),
        cache_prefix,
        received_keys,
        accepted: tally.changes.clone(),
    };
    let mut verdict = check::check(&ground).await?;
    accepted_in_outbox(&pool, &tally.events, &mut verdict).await?;
    if let Err(e) = drained {
        verdict.problems.push(format!("not drained: {e:#}"));
    }
    report(&verdict, &injected, tally.events.len(), drain_secs);
    Ok(verdict)
}

/// Every eventId the API answered with is in the outbox (the API commits its events with
/// the change), else lost.
async fn accepted_in_outbox(pool: &PgPool, accepted: &[uuid::Uuid], v: &mut Verdict) -> Result<()> {
    let outbox: BTreeSet<uuid::Uuid> = ltf_domain::outbox::inventory(pool).await?.into_iter().map(|r| r.event_id).collect();
    let missing: Vec<&uuid::Uuid> = accepted.iter().filter(|id| !outbox.contains(id)).collect();
    v.lost += missing.len();
    for id in missing.iter().take(5) {
        v.problems.push(format!("event {id} accepted by the API is not in the outbox"));
    }
    Ok(())
}

/// Waits until the outbox is published, every group committed every event topic to its
/// end and no run is `running`, three looks in a row; restarts processes that exited.
async fn drain(
    pool: &PgPool,
    bootstrap: &str,
    topics: &ltf_schemas::TopicNames,
    groups: &BTreeMap<String, String>,
    within: Duration,
    procs: &Arc<Mutex<Procs>>,
) -> Result<()> {
    let deadline = Instant::now() + within;
    let mut quiet = 0;
    loop {
        procs.lock().await.revive()?;
        let unsent = ltf_domain::outbox::backlog(pool).await.map_or(-1, |b| b.rows);
        let running = match pool.acquire().await {
            Ok(mut conn) => ltf_domain::automations::store::running_runs(&mut conn).await.unwrap_or(-1),
            Err(_) => -1,
        };
        let pairs: Vec<(String, String)> = groups.iter().map(|(w, g)| (w.clone(), g.clone())).collect();
        let (bootstrap, topics) = (bootstrap.to_owned(), topics.clone());
        let behind = tokio::task::spawn_blocking(move || check::groups_behind(&bootstrap, &topics, &pairs))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(-1);
        quiet = if unsent == 0 && running == 0 && behind == 0 { quiet + 1 } else { 0 };
        if quiet >= 3 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("after {within:?}: {unsent} outbox rows unsent, {running} runs running, groups {behind} messages behind");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn report(v: &Verdict, injected: &Injected, accepted: usize, drain_secs: f64) {
    let faults = if injected.is_empty() {
        "none".to_owned()
    } else {
        injected.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
    };
    println!();
    println!(
        "| events | accepted by the API | faults injected | lost | doubled | out of order | stuck | dead-lettered | drain |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {accepted} | {faults} | {} | {} | {} | {} | {} | {drain_secs:.0} s |",
        v.events, v.lost, v.doubled, v.out_of_order, v.stuck, v.dead_lettered
    );
    for p in &v.problems {
        println!("  problem: {p}");
    }
    println!("{}", if passed(v) { "PASSED: every promise held" } else { "FAILED" });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_database_replaces_the_url_database_and_keeps_the_query() {
        assert_eq!(database_url_of("postgres://u:p@h:5/latechforce", "x").unwrap(), "postgres://u:p@h:5/x");
        assert_eq!(database_url_of("postgres://u@h/db?sslmode=disable", "x").unwrap(), "postgres://u@h/x?sslmode=disable");
    }

    #[test]
    fn a_run_passes_only_with_nothing_lost_doubled_reordered_stuck_or_dead_lettered() {
        let ok = Verdict { events: 10, ..Verdict::default() };
        assert!(passed(&ok));
        for bad in [
            Verdict { lost: 1, ..ok.clone() },
            Verdict { doubled: 1, ..ok.clone() },
            Verdict { out_of_order: 1, ..ok.clone() },
            Verdict { stuck: 1, ..ok.clone() },
            Verdict { dead_lettered: 1, ..ok.clone() },
            Verdict { problems: vec!["x".into()], ..ok.clone() },
        ] {
            assert!(!passed(&bad), "{bad:?}");
        }
    }
}
