//! The pipeline's processes under the harness: the api, the relay and the four workers,
//! each an `ltf` child process with its own log file, started, SIGKILLed and restarted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};

/// One process: how to start it, where it answers `/readyz`, and the running child.
#[derive(Debug)]
struct Proc {
    args: Vec<String>,
    env: Vec<(String, String)>,
    ready: String,
    child: Option<Child>,
    starts: u32,
}

/// The running processes, by name (`api`, `relay`, `audit`, `cache`, `analytics`,
/// `automation`).
#[derive(Debug)]
pub struct Procs {
    exe: PathBuf,
    logs: PathBuf,
    procs: BTreeMap<String, Proc>,
    http: reqwest::Client,
}

impl Procs {
    /// Processes of this `ltf` executable, logging into `logs`.
    pub fn new(logs: PathBuf) -> Result<Procs> {
        let exe = std::env::current_exe().context("the ltf executable")?;
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        Ok(Procs { exe, logs, procs: BTreeMap::new(), http: reqwest::Client::new() })
    }

    /// Adds `name` (`ltf <args>` with `env` on top of this process's), ready when
    /// `ready` answers 2xx, and starts it.
    pub fn add(&mut self, name: &str, args: &[String], env: &[(String, String)], ready: String) -> Result<()> {
        let p = Proc { args: args.to_vec(), env: env.to_vec(), ready, child: None, starts: 0 };
        self.procs.insert(name.to_owned(), p);
        self.start(name)
    }

    /// Starts `name` (again), appending to its log.
    pub fn start(&mut self, name: &str) -> Result<()> {
        let log_path = self.logs.join(format!("{name}.log"));
        let p = self.procs.get_mut(name).with_context(|| format!("no process {name}"))?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let mut cmd = Command::new(&self.exe);
        cmd.args(&p.args).envs(p.env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        cmd.kill_on_drop(true);
        p.child = Some(cmd.spawn().with_context(|| format!("starting {name}"))?);
        p.starts += 1;
        Ok(())
    }

    /// Kills `name` with SIGKILL (a crash: nothing runs after it) and reaps it.
    pub async fn kill(&mut self, name: &str) -> Result<()> {
        let p = self.procs.get_mut(name).with_context(|| format!("no process {name}"))?;
        if let Some(mut child) = p.child.take() {
            child.start_kill().ok();
            child.wait().await.ok();
        }
        Ok(())
    }

    /// Waits until `name` answers its readiness URL, or fails naming its log.
    pub async fn wait_ready(&mut self, name: &str, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let p = self.procs.get_mut(name).with_context(|| format!("no process {name}"))?;
            if let Some(child) = p.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "{name} exited ({status}) before it was ready; see {}",
                        self.logs.join(format!("{name}.log")).display()
                    );
                }
            }
            let ok = self.http.get(&p.ready).timeout(Duration::from_secs(2)).send().await.is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{name} not ready after {within:?}; see {}", self.logs.join(format!("{name}.log")).display());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Restarts every process that exited by itself (a worker that gave up while Kafka
    /// was down counts as a crash the harness repairs), returning their names.
    pub fn revive(&mut self) -> Result<Vec<String>> {
        let mut dead = Vec::new();
        for (name, p) in &mut self.procs {
            if let Some(child) = p.child.as_mut() {
                if child.try_wait()?.is_some() {
                    dead.push(name.clone());
                }
            }
        }
        for name in &dead {
            self.start(name)?;
        }
        Ok(dead)
    }

    /// The names of the processes.
    pub fn names(&self) -> Vec<String> {
        self.procs.keys().cloned().collect()
    }

    /// Stops every process with SIGTERM (a graceful stop), waiting at most `within` each.
    pub async fn stop_all(&mut self, within: Duration) {
        for p in self.procs.values_mut() {
            let Some(mut child) = p.child.take() else { continue };
            if let Some(pid) = child.id() {
                // SIGTERM through the shell's kill: no signal crate needed.
                let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
            }
            if tokio::time::timeout(within, child.wait()).await.is_err() {
                child.start_kill().ok();
                child.wait().await.ok();
            }
        }
    }
}
