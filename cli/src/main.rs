//! `ltf`: the LaTeChforce event pipeline command.
//!
//! One binary for every process and tool of the pipeline; `ltf --help` lists them all:
//! the services `api`, `relay` and `worker <name>`; the operators' `status`, `dlq`,
//! `audit`, `automations`, `migrate`, `schemas` and `topics`; and `demo`, `demo-flows`
//! and `bench` (the `demo/` and `bench/` folders), driven by `scripts/demo` and
//! `scripts/bench`.

/// mimalloc instead of glibc's malloc: a worker allocates small, short-lived values on one
/// thread and frees them on another, where glibc's arenas cost a quarter of its CPU. With
/// the `override` feature it is also the malloc of the C code linked in (librdkafka).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod api;
mod audit;
mod automations;
mod bench;
mod chaos;
mod database;
mod demo;
mod dlq;
mod memory;
mod migrate;
mod ops;
mod outbox;
mod relay;
mod schemas;
mod settings;
mod status;
mod telemetry;
mod topics;
mod worker;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use settings::Common;

#[derive(Debug, Parser)]
#[command(name = "ltf", version, about = "LaTeChforce event pipeline")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register, check and list the Avro schemas of the event contract.
    #[command(subcommand)]
    Schemas(schemas::SchemasCmd),
    /// Create the event topics.
    #[command(subcommand)]
    Topics(topics::TopicsCmd),
    /// Publish a realistic stream of every event type and show it consumed.
    Demo(demo::DemoArgs),
    /// Drive the running api, relay and workers through the spec's flows and summarise
    /// each worker (see scripts/demo).
    DemoFlows(demo::flows::DemoFlowsArgs),
    /// Serve the HTTP API over the use cases.
    Api(api::ApiArgs),
    /// Apply the database migrations and print those applied.
    Migrate(migrate::MigrateArgs),
    /// Run a worker's consumer group (audit, cache, analytics, automation) until stopped.
    Worker(worker::WorkerArgs),
    /// Store, list, enable or disable automations; show their runs.
    #[command(subcommand)]
    Automations(automations::AutomationsCmd),
    /// Print an aggregate's history from the audit worker's event log.
    Audit(audit::AuditArgs),
    /// Publish the transactional outbox to Kafka, in order, until stopped.
    Relay(relay::RelayArgs),
    /// Outbox rows Kafka refused for good: list them, retry one, or skip one (a recorded gap).
    #[command(subcommand)]
    Outbox(outbox::OutboxCmd),
    /// Dead letters: list counts, show them decoded, replay them to the group's retry topic.
    #[command(subcommand)]
    Dlq(dlq::DlqCmd),
    /// Consumer groups (state, members, lag), dead letters and the outbox backlog.
    Status(status::StatusArgs),
    /// Throughput benchmarks (see scripts/bench).
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// The fault-injection harness: the pipeline under load and faults, every store
    /// checked against the ground truth (see scripts/chaos and RELIABILITY.md).
    Chaos(chaos::ChaosArgs),
}

fn main() -> Result<()> {
    memory::without_huge_pages();
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = runtime_threads(&cli.command) {
        runtime.worker_threads(threads);
    }
    runtime.enable_all().build().context("starting the runtime")?.block_on(run(cli))
}

/// The runtime's threads for `command`, when not tokio's default (`TOKIO_WORKER_THREADS`,
/// else one per core). A command that runs a consumer group's runner leaves one core to the
/// runner's poll thread, which is busy as long as events come: with a runtime thread per core
/// besides it, the three took turns on two cores and the no-op worker read 7 % fewer events
/// per second (19 alternated rounds, BENCHMARKS.md, "Consumer"). `TOKIO_WORKER_THREADS`
/// still decides when set.
fn runtime_threads(command: &Command) -> Option<usize> {
    let runs_a_runner = match command {
        Command::Worker(_) => true,
        Command::Bench(bench::BenchCmd::Consume(_)) => true,
        Command::Bench(bench::BenchCmd::Latency(a)) => a.role == bench::latency::Role::Worker,
        _ => false,
    };
    if !runs_a_runner || std::env::var_os("TOKIO_WORKER_THREADS").is_some() {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    Some(cores.saturating_sub(1).max(1))
}

async fn run(cli: Cli) -> Result<()> {
    let _telemetry = cli.common.init_tracing(&service_name(&cli.command));
    if uses_kafka(&cli.command) {
        cli.common.kafka_security.install()?;
        // Settings the brokers refuse (login, certificates, protocol) end the command now,
        // naming the setting; brokers not reachable yet are retried by the clients.
        ltf_kafka::security::check(&cli.common.bootstrap, std::time::Duration::from_secs(10))
            .await
            .context("Kafka refused the connection settings")?;
    }
    match cli.command {
        Command::Schemas(c) => schemas::run(&cli.common, c).await,
        Command::Topics(c) => topics::run(&cli.common, c).await,
        Command::Demo(a) => demo::run(&cli.common, a).await,
        Command::DemoFlows(a) => demo::flows::run(a).await,
        Command::Relay(a) => relay::run(&cli.common, a).await,
        Command::Bench(c) => bench::run(&cli.common, c).await,
        Command::Chaos(a) => chaos::run(&cli.common, a).await,
        Command::Api(a) => api::run(&cli.common, a).await,
        Command::Migrate(a) => migrate::run(a).await,
        Command::Worker(a) => worker::run(&cli.common, a).await,
        Command::Audit(a) => audit::run(a).await,
        Command::Automations(c) => automations::run(&cli.common, c).await,
        Command::Dlq(c) => dlq::run(&cli.common, c).await,
        Command::Outbox(c) => outbox::run(c).await,
        Command::Status(a) => status::run(&cli.common, a).await,
    }
}

/// Whether the command talks to Kafka (its connection settings are checked at start).
fn uses_kafka(command: &Command) -> bool {
    !matches!(
        command,
        Command::Migrate(_) | Command::Audit(_) | Command::Outbox(_) | Command::DemoFlows(_) | Command::Automations(_)
    )
}

/// The service name of a command's traces: `ltf-api`, `ltf-relay`, `ltf-worker-<name>`, ….
fn service_name(command: &Command) -> String {
    match command {
        Command::Api(_) => "ltf-api".into(),
        Command::Relay(_) => "ltf-relay".into(),
        Command::Worker(a) => format!("ltf-worker-{}", a.name()),
        _ => "ltf".into(),
    }
}
