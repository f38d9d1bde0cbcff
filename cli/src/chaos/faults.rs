//! The faults the harness injects, and how. Processes of the pipeline are crashed with
//! SIGKILL and restarted; the stack's services through `scripts/stack` (the instance the
//! environment names: `scripts/chaos` runs a private one).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::Rng;
use tokio::process::Command;
use tokio::sync::Mutex;

use super::procs::Procs;

/// The workers the `workers` fault picks from.
pub const WORKERS: [&str; 4] = ["audit", "cache", "analytics", "automation"];

/// A kind of fault. `broker` and `broker-stall` need the three-broker stack
/// (`--brokers 3`); `registry` comes once the registry keeps its schemas across a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// A worker (one of the four, at random) SIGKILLed, restarted 0.5 to 3 s later.
    Workers,
    /// The relay SIGKILLed, restarted 0.5 to 3 s later.
    Relay,
    /// Kafka SIGKILLed (`scripts/stack kill kafka`), started again 1 to 3 s later.
    Kafka,
    /// PostgreSQL restarted (`scripts/stack restart postgres`: fast shutdown, start).
    Postgres,
    /// Redis stopped for 3 to 8 s.
    Redis,
    /// The Kafka node leading the most partitions of the busiest topic (the table
    /// events) SIGKILLed, started again 1 to 3 s later.
    Broker,
    /// That node stopped with SIGSTOP for 10 to 14 s, longer than
    /// `broker.session.timeout.ms` (9 s): the cluster fences it and moves its leaders;
    /// then SIGCONT.
    BrokerStall,
}

impl Fault {
    /// Every fault, in the order of `--faults`.
    pub const ALL: [Fault; 7] =
        [Fault::Workers, Fault::Relay, Fault::Kafka, Fault::Postgres, Fault::Redis, Fault::Broker, Fault::BrokerStall];

    /// Its name in `--faults` and the report.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Workers => "workers",
            Fault::Relay => "relay",
            Fault::Kafka => "kafka",
            Fault::Postgres => "postgres",
            Fault::Redis => "redis",
            Fault::Broker => "broker",
            Fault::BrokerStall => "broker-stall",
        }
    }

    /// Whether the fault needs the three-broker stack.
    pub fn needs_three_brokers(self) -> bool {
        matches!(self, Fault::Broker | Fault::BrokerStall)
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Fault, String> {
        match s.trim() {
            "registry" => Err("`registry` needs a registry that keeps its schemas across a restart; not yet".into()),
            other => Fault::ALL.into_iter().find(|f| f.name() == other).ok_or_else(|| {
                let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                format!("unknown fault `{other}`; one of: {}", names.join(", "))
            }),
        }
    }
}

/// Injects faults into the processes and the stack.
#[derive(Debug)]
pub struct Injector {
    stack: PathBuf,
    /// Bootstrap servers and the busiest topic, whose leading node the broker faults hit.
    busiest: Option<(String, String)>,
}

/// The nodes of the three-broker stack.
const NODES: [&str; 3] = ["kafka-1", "kafka-2", "kafka-3"];

impl Injector {
    /// Faults of the stack instance `stack` (the `scripts/stack` script) names.
    pub fn new(stack: PathBuf) -> Injector {
        Injector { stack, busiest: None }
    }

    /// The broker faults hit the node leading the most partitions of `topic`.
    pub fn aiming_at(mut self, bootstrap: &str, topic: &str) -> Injector {
        self.busiest = Some((bootstrap.to_owned(), topic.to_owned()));
        self
    }

    /// The node leading the most partitions of the busiest topic (Kafka's node ids 1..3
    /// are the stack's kafka-1..3); a node at random when Kafka does not say.
    async fn leading_node(&self, rng: &mut StdRng) -> String {
        let random = NODES[rng.random_range(0..NODES.len())].to_owned();
        let Some((bootstrap, topic)) = self.busiest.clone() else { return random };
        let leader = tokio::task::spawn_blocking(move || {
            use rdkafka::consumer::{BaseConsumer, Consumer};
            let consumer: BaseConsumer = ltf_kafka::security::client_config(&bootstrap).create().ok()?;
            let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(5)).ok()?;
            let mut led = std::collections::BTreeMap::new();
            for p in md.topics().first()?.partitions() {
                *led.entry(p.leader()).or_insert(0) += 1;
            }
            led.into_iter().filter(|(node, _)| (1..=3).contains(node)).max_by_key(|(_, n)| *n).map(|(node, _)| node)
        })
        .await
        .ok()
        .flatten();
        leader.map_or(random, |node| format!("kafka-{node}"))
    }

    async fn stack(&self, args: &[&str]) -> Result<()> {
        let out = Command::new(&self.stack)
            .args(args)
            .output()
            .await
            .with_context(|| format!("running {} {}", self.stack.display(), args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "{} {} failed: {}",
                self.stack.display(),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default()
            );
        }
        Ok(())
    }

    /// `scripts/stack <down> <service>`, a wait of `down_for`, `scripts/stack <up> <service>`;
    /// returns the service.
    async fn down_then_up(&self, (down, up): (&str, &str), service: &str, down_for: Duration) -> Result<String> {
        self.stack(&[down, service]).await?;
        tokio::time::sleep(down_for).await;
        self.stack(&[up, service]).await?;
        Ok(service.to_owned())
    }

    /// Injects `fault` and repairs it (restarts what it stopped), returning what it hit.
    pub async fn inject(&self, fault: Fault, procs: &Arc<Mutex<Procs>>, rng: &mut StdRng) -> Result<String> {
        let pause = |rng: &mut StdRng, lo: u64, hi: u64| Duration::from_millis(rng.random_range(lo..=hi));
        match fault {
            Fault::Workers | Fault::Relay => {
                let name = if fault == Fault::Relay { "relay" } else { WORKERS[rng.random_range(0..WORKERS.len())] };
                let down = pause(rng, 500, 3000);
                procs.lock().await.kill(name).await?;
                tokio::time::sleep(down).await;
                procs.lock().await.start(name)?;
                Ok(name.to_owned())
            }
            Fault::Kafka => self.down_then_up(("kill", "start"), "kafka", pause(rng, 1000, 3000)).await,
            Fault::Postgres => {
                self.stack(&["restart", "postgres"]).await?;
                Ok("postgres".into())
            }
            Fault::Redis => self.down_then_up(("stop", "start"), "redis", pause(rng, 3000, 8000)).await,
            Fault::Broker => {
                let node = self.leading_node(rng).await;
                self.down_then_up(("kill", "start"), &node, pause(rng, 1000, 3000)).await
            }
            Fault::BrokerStall => {
                let node = self.leading_node(rng).await;
                self.down_then_up(("pause", "resume"), &node, pause(rng, 10_000, 14_000)).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_by_name_and_the_later_ones_say_why_not_yet() {
        for f in Fault::ALL {
            assert_eq!(f.name().parse::<Fault>(), Ok(f));
        }
        assert!("registry".parse::<Fault>().unwrap_err().contains("keeps its schemas"));
        assert!("disk"
            .parse::<Fault>()
            .unwrap_err()
            .contains("one of: workers, relay, kafka, postgres, redis, broker, broker-stall"));
        assert!(Fault::Broker.needs_three_brokers() && !Fault::Kafka.needs_three_brokers());
    }
}
