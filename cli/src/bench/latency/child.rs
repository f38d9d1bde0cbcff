//! The worker process of `ltf bench latency` seen from the driver: started as
//! `ltf bench latency --role worker` (the same binary), spoken to over its stdin/stdout
//! ([`super::worker`] has the commands), its VmRSS sampled every second.

use std::process::Stdio;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::worker::REPLY;
use super::LatencyArgs;
use crate::settings::Common;

/// The worker process and its command channel.
#[derive(Debug)]
pub struct Link {
    pub pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Link {
    /// Sends one command and reads its answer (the text after [`REPLY`]).
    pub async fn ask(&mut self, cmd: &str) -> Result<String> {
        let gone = "the worker process ended (its log is above)";
        let stdin = self.stdin.as_mut().context(gone)?;
        stdin.write_all(format!("{cmd}\n").as_bytes()).await.context(gone)?;
        stdin.flush().await.context(gone)?;
        let lines = &mut self.lines;
        let read = async {
            while let Some(line) = lines.next_line().await.context(gone)? {
                if let Some(answer) = line.strip_prefix(REPLY) {
                    return Ok(answer.to_owned());
                }
            }
            bail!(gone)
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .with_context(|| format!("the worker did not answer `{cmd}` within 30 s"))?
    }

    pub async fn handled(&mut self) -> Result<u64> {
        field(&self.ask("count").await?, "handled")
    }

    /// Ends the worker (end of its input: it stops its runner, committing its offsets, and
    /// deletes its group's side topics); returns the events it saw without a send time.
    pub async fn stop(&mut self) -> Result<u64> {
        let unstamped = field(&self.ask("count").await?, "unstamped")?;
        drop(self.stdin.take());
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(Ok(s)) if s.success() => {}
            Ok(Ok(s)) => eprintln!("warning: the worker process ended with {s}"),
            Ok(Err(e)) => eprintln!("warning: waiting for the worker process: {e}"),
            Err(_) => {
                eprintln!("warning: the worker process did not stop within 60 s; killed");
                let _ = self.child.kill().await;
            }
        }
        Ok(unstamped)
    }
}

/// The value of `key=` in a `k=v k=v` line.
pub fn field<T: FromStr>(line: &str, key: &str) -> Result<T> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no number `{key}=` in the worker's answer `{line}`"))
}

/// VmRSS samples of the worker, one a second.
#[derive(Debug, Clone, Default)]
pub struct Rss(Arc<Mutex<Vec<(Instant, u64)>>>);

impl Rss {
    pub fn start(pid: u32) -> Rss {
        let rss = Rss::default();
        let samples = rss.0.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                let Some(kib) = vm_rss_kib(pid) else { return };
                samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((Instant::now(), kib));
            }
        });
        rss
    }

    /// Median VmRSS (MiB) of the samples in the last 30 s of `[from, to]`, and their number.
    pub fn steady_mib(&self, from: Instant, to: Instant) -> Option<(f64, usize)> {
        let from = from.max(to.checked_sub(Duration::from_secs(30)).unwrap_or(from));
        let mut kib: Vec<u64> = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, k)| *k)
            .collect();
        kib.sort_unstable();
        let n = kib.len();
        (n > 0).then(|| (if n % 2 == 1 { kib[n / 2] as f64 } else { (kib[n / 2 - 1] + kib[n / 2]) as f64 / 2.0 } / 1024.0, n))
    }
}

/// `VmRSS` of `/proc/<pid>/status` in KiB (`None` once the process is gone).
fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The security settings given as flags, as the environment variables the worker reads.
fn security_env(common: &Common) -> Vec<(&'static str, String)> {
    common.kafka_security.by_variable().into_iter().filter_map(|(k, v)| v.clone().map(|v| (k, v))).collect()
}

/// Starts a worker process of `group` (a group that committed offsets resumes there).
pub fn spawn_worker(common: &Common, a: &LatencyArgs, group: &str) -> Result<Link> {
    let exe = std::env::current_exe().context("locating the ltf binary, to start the worker process")?;
    let mut child = Command::new(exe)
        .args(["--bootstrap", &common.bootstrap, "--registry", &common.registry, "--log-format", &common.log_format])
        .args(["bench", "latency", "--role", "worker", "--prefix", &a.prefix, "--group", group])
        .args(["--max-in-flight", &a.max_in_flight.to_string()])
        .envs(security_env(common))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting the worker process")?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().context("the worker's stdout")?;
    let pid = child.id().context("the worker process ended at once")?;
    Ok(Link { pid, child, stdin, lines: BufReader::new(stdout).lines() })
}
