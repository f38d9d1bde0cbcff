//! `ltf bench latency`: produced event → no-op worker latency, and the worker's RSS.
//!
//! The driver (this process) publishes realistic RecordUpdated events at a fixed rate
//! ([`pace`]), each stamped with its send time in the `ltf-bench-sent-us` header (wall
//! clock, µs: both processes run on one machine). The worker is a separate process
//! (`--role worker`, [`worker`]): the real worker runtime with a no-op handler that records
//! `now − sent` in an HDR histogram; the driver reads its VmRSS from `/proc/<pid>/status`
//! every second.
//!
//! 1. The maximum sustained rate: steps of `--step-secs`, the rate doubled from
//!    `--start-rate` while sustained (or bracketing `--max-rate-hint`), then bisected to
//!    `--precision`. A step is sustained when the producer achieved ≥ 97 % of the offered
//!    rate and the lag (events sent − events handled, asked of the worker every second)
//!    at the step's end (the smallest of its last three samples) grew by no more than
//!    `max(--lag-floor, --lag-bound-ms of the rate)` over the step. The rate found is
//!    held for `--hold-secs` (default 60) with the same rule; if that fails, 90 % of it
//!    is held, up to three times.
//! 2. Latency steps at `--fractions` percent of that rate, each with a fresh worker process
//!    of the same group (so the memory taken while the search overloaded a worker is not
//!    counted as steady RSS) (default 25, 50, 75; the 50 % one
//!    runs `--latency-secs`, the others `--side-secs`), each recorded after
//!    `--settle-secs`: offered and achieved rate, p50/p90/p99/p99.9/max, the worker's
//!    steady RSS (median VmRSS of the step's last 30 s), and the CDF in
//!    `<out>/latency-<pct>.tsv`.
//!
//! The topic must be new (the worker's fresh group reads it from the start); it is deleted
//! at the end unless `--keep-topic`.
//!
//! `RESULT` lines (key=value) for scripts: one per latency step and a last one with
//! `max_rate`, the 50 % step's `p50_ms`, `p99_ms` and `rss_mib`, and the record size (for
//! Kafka's EndToEndLatency at the same size).

mod child;
mod driver;
mod pace;
mod worker;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Result};
use clap::{Args, ValueEnum};

use crate::settings::Common;

/// The header carrying the send time: microseconds since the Unix epoch, in decimal.
pub const SENT_HEADER: &str = "ltf-bench-sent-us";

/// Wall-clock microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Which side of the bench this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Publish, find the maximum rate, run the latency steps, sample the worker's RSS.
    Driver,
    /// The worker process the driver spawns (commands on stdin, answers on stdout).
    Worker,
}

#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// Which side this process is; run the driver, it spawns the worker itself.
    #[arg(long, value_enum, default_value_t = Role::Driver)]
    pub role: Role,
    /// Topic prefix of the bench: the topic is `<prefix>.table.events` (created if
    /// missing; use a fresh prefix per run, as `scripts/bench latency` does).
    #[arg(long, default_value = "ltfbench-latency")]
    pub prefix: String,
    /// Partitions of the bench topic (when it is created).
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Folder of the CDF files `latency-<pct>.tsv` (created if missing).
    #[arg(long, default_value = "target/bench/latency")]
    pub out: PathBuf,
    /// Offered rate (events/s) of the first search step; doubled while sustained.
    #[arg(long, default_value_t = 2000)]
    pub start_rate: u64,
    /// Skip most of the doubling: start the search at this rate (events/s).
    #[arg(long)]
    pub max_rate_hint: Option<u64>,
    /// Highest offered rate the search tries (events/s).
    #[arg(long, default_value_t = 1_000_000)]
    pub rate_cap: u64,
    /// Seconds of each search step.
    #[arg(long, default_value_t = 12)]
    pub step_secs: u64,
    /// The bisection stops when (failed − sustained) / sustained is below this.
    #[arg(long, default_value_t = 0.1)]
    pub precision: f64,
    /// Seconds the rate found is held to confirm that the lag stays bounded.
    #[arg(long, default_value_t = 60)]
    pub hold_secs: u64,
    /// Latency steps, in percent of the maximum sustained rate (comma-separated; must
    /// include 50, the step of the targets).
    #[arg(long, value_delimiter = ',', default_value = "25,50,75")]
    pub fractions: Vec<u32>,
    /// Seconds of the 50 % step, settling excluded (its last 30 s give the steady RSS).
    #[arg(long, default_value_t = 60)]
    pub latency_secs: u64,
    /// Seconds of each other latency step, settling excluded.
    #[arg(long, default_value_t = 20)]
    pub side_secs: u64,
    /// Seconds a latency step runs at its rate before latencies are recorded.
    #[arg(long, default_value_t = 3)]
    pub settle_secs: u64,
    /// A step is sustained when its lag grew by at most this many milliseconds of its
    /// rate (or `--lag-floor` events, the larger).
    #[arg(long, default_value_t = 200)]
    pub lag_bound_ms: u64,
    /// The least lag growth tolerated (events), whatever the rate.
    #[arg(long, default_value_t = 1000)]
    pub lag_floor: u64,
    /// The pacer's tick in milliseconds: each tick sends what the rate owes. One
    /// millisecond (the timer's resolution) is the closest to a steady rate: with a tick as
    /// long as the producer's `linger.ms`, every event of a tick arrives in one burst at the
    /// start of a batch and waits the whole linger, where steady traffic waits half of it on
    /// average.
    #[arg(long, default_value_t = 1)]
    pub tick_ms: u64,
    /// Distinct events encoded up front and cycled by the producer.
    #[arg(long, default_value_t = 20_000)]
    pub pool: usize,
    /// `linger.ms` of the producer (default: the publisher's, as in production).
    #[arg(long)]
    pub linger_ms: Option<u32>,
    /// `compression.type` of the producer (default: the publisher's, as in production).
    #[arg(long)]
    pub compression: Option<String>,
    /// Most events in flight in the worker's runner (the worker's default).
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: u32,
    /// Seconds to wait for the worker to handle its first event (group join included).
    #[arg(long, default_value_t = 90)]
    pub ready_timeout_secs: u64,
    /// Seconds to wait, between steps, for the worker to catch up.
    #[arg(long, default_value_t = 60)]
    pub drain_secs: u64,
    /// Keep the bench topic at the end (by default it is deleted: a run writes gigabytes).
    #[arg(long)]
    pub keep_topic: bool,
    /// The worker's consumer group (`--role worker` only; the driver passes a fresh one).
    #[arg(long)]
    pub group: Option<String>,
}

impl LatencyArgs {
    fn validate(&self) -> Result<()> {
        ensure!(self.start_rate > 0, "--start-rate must be positive");
        ensure!(self.max_rate_hint != Some(0), "--max-rate-hint must be positive");
        ensure!(self.rate_cap >= self.start_rate, "--rate-cap must be at least --start-rate");
        ensure!(self.step_secs >= 3, "--step-secs must be at least 3 (the lag rule reads its last three samples)");
        ensure!(self.hold_secs >= 3, "--hold-secs must be at least 3");
        ensure!(self.precision > 0.0 && self.precision < 1.0, "--precision must be between 0 and 1");
        ensure!(self.fractions.contains(&50), "--fractions must include 50 (the step of the targets)");
        ensure!(self.fractions.iter().all(|f| (1..=100).contains(f)), "--fractions are percentages from 1 to 100");
        ensure!(self.latency_secs > 0 && self.side_secs > 0, "--latency-secs and --side-secs must be positive");
        ensure!(self.tick_ms > 0 && self.tick_ms <= 1000, "--tick-ms must be from 1 to 1000");
        ensure!(self.pool > 0, "--pool must be positive");
        ensure!(self.partitions > 0, "--partitions must be positive");
        ensure!(self.max_in_flight > 0, "--max-in-flight must be positive");
        Ok(())
    }
}

pub async fn run(common: &Common, a: LatencyArgs) -> Result<()> {
    match a.role {
        Role::Worker => worker::run(common, &a).await,
        Role::Driver => {
            a.validate()?;
            driver::run(common, a).await
        }
    }
}
