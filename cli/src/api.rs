//! `ltf api`: the HTTP API over the use cases.
//!
//! Reads its configuration from an optional TOML file (`ApiConfig`'s keys), overridden by
//! flags and environment variables; applies the migrations; installs the Prometheus
//! recorder (served at `/metrics`); serves until SIGTERM or SIGINT, then stops accepting
//! and lets in-flight requests finish. API keys are never logged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use ltf_producers::api::{router, ApiConfig, ApiKey, ApiState, Readiness};

use crate::database::{migrate, DatabaseArgs, Secret};
use crate::ops;
use crate::settings::Common;

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// TOML file with the API configuration: `listen`, `body_limit_bytes`,
    /// `wait_for_publish_timeout_ms`, `readiness_timeout_ms`, `[records] max_batch`,
    /// `[[api_keys]] principal/key`. Flags and environment variables override it.
    #[arg(long, env = "LTF_API_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "LTF_API_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// API keys as `principal:key,principal:key`; replaces the file's keys. Prefer the
    /// environment variable: a flag is visible in the process list.
    #[arg(long, env = "LTF_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<Secret>,
    /// Largest request body in bytes [default: 4194304].
    #[arg(long, env = "LTF_API_BODY_LIMIT_BYTES")]
    pub body_limit_bytes: Option<usize>,
    /// Bound of `?waitForPublish=true` in milliseconds [default: 5000].
    #[arg(long, env = "LTF_API_WAIT_FOR_PUBLISH_TIMEOUT_MS")]
    pub wait_for_publish_timeout_ms: Option<u64>,
    /// Most records in one batch request [default: 1000].
    #[arg(long, env = "LTF_API_MAX_BATCH")]
    pub max_batch: Option<usize>,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

impl ApiArgs {
    /// The file's configuration (or the defaults) with the flags applied, validated.
    fn api_config(&self) -> Result<ApiConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("{}", path.display()))?
            }
            None => ApiConfig::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(keys) = &self.api_keys {
            config.api_keys = ApiKey::parse_list(&keys.0)?;
        }
        if let Some(n) = self.body_limit_bytes {
            config.body_limit_bytes = n;
        }
        if let Some(ms) = self.wait_for_publish_timeout_ms {
            config.wait_for_publish_timeout_ms = ms;
        }
        if let Some(n) = self.max_batch {
            config.records.max_batch = n;
        }
        config.validate().context("API configuration (set LTF_API_KEYS=principal:key,... for the keys)")?;
        Ok(config)
    }
}

pub async fn run(common: &Common, args: ApiArgs) -> Result<()> {
    let config = args.api_config()?;
    let pool = args.db.connect().await?;
    for m in migrate(&pool).await? {
        tracing::info!(migration = %m, "applied migration");
    }
    let metrics = ops::install_metrics()?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let readiness = Readiness::new(&common.bootstrap, &common.registry)?;
    let listen = config.listen;
    let principals: Vec<String> = config.api_keys.iter().map(|k| k.principal.clone()).collect();
    let state = ApiState::new(config, pool.clone(), common.writer_codec().await?, readiness)?.with_metrics(metrics);
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, ?principals, "ltf api serving");
    eprintln!("ltf api listening on http://{addr} ({} API key(s))", principals.len());
    let shutdown = async {
        ops::shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
    };
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await.context("serving")?;
    pool.close().await;
    eprintln!("ltf api stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        api: ApiArgs,
    }

    fn parse(file: &str, flags: &[&str]) -> Result<ApiConfig> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("api.toml");
        std::fs::write(&path, file)?;
        let mut args = vec!["ltf", "--config", path.to_str().unwrap_or_default(), "--database-url", "postgres://db"];
        args.extend_from_slice(flags);
        Cli::try_parse_from(args)?.api.api_config()
    }

    const FILE: &str = r#"
        body_limit_bytes = 1024
        [records]
        max_batch = 7
        [[api_keys]]
        principal = "svc"
        key = "file-key-0123456789"
    "#;

    #[test]
    fn the_file_is_read_and_flags_override_it() -> Result<()> {
        let c = parse(FILE, &[])?;
        assert_eq!((c.body_limit_bytes, c.records.max_batch, c.listen.port()), (1024, 7, 8080));
        assert_eq!(c.api_keys, vec![ApiKey::new("svc", "file-key-0123456789")]);
        let c = parse(FILE, &["--listen", "127.0.0.1:9999", "--api-keys", "ops:flag-key-0123456789", "--max-batch", "3"])?;
        assert_eq!((c.listen.port(), c.records.max_batch), (9999, 3));
        assert_eq!(c.api_keys, vec![ApiKey::new("ops", "flag-key-0123456789")]);
        Ok(())
    }

    #[test]
    fn bad_files_and_values_are_refused_naming_the_key_never_the_secret() {
        let e = format!("{:#}", parse("listen_on = \"x\"", &[]).unwrap_err());
        assert!(e.contains("listen_on"), "{e}");
        let e = format!("{:#}", parse(FILE, &["--api-keys", "ops:short"]).unwrap_err());
        assert!(e.contains("api_keys[0].key") && !e.contains("short`"), "{e}");
        let e = format!("{:#}", parse("", &[]).unwrap_err());
        assert!(e.contains("api_keys"), "{e}");
        assert!(!format!("{:?}", Secret("hidden".into())).contains("hidden"));
    }
}
