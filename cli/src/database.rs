//! The PostgreSQL connection of the subcommands that use the domain store, and applying
//! the migrations.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result};
use clap::Args;
use ltf_domain::store;
use sqlx::PgPool;

/// A secret option value (database URL, API keys): `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL of the domain store and outbox.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Secret,
    /// Most connections in the pool.
    #[arg(long, env = "LTF_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
}

impl DatabaseArgs {
    /// A pool on the database (connects once to fail early on a wrong URL).
    pub async fn connect(&self) -> Result<PgPool> {
        let options: sqlx::postgres::PgConnectOptions =
            self.database_url.0.parse().context("DATABASE_URL is not a PostgreSQL URL")?;
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(self.db_max_connections)
            .connect_with(options)
            .await
            .context("connecting to PostgreSQL (DATABASE_URL)")
    }
}

/// Applies the migrations the database does not have; returns `version description` of
/// each one applied now.
pub async fn migrate(pool: &PgPool) -> Result<Vec<String>> {
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text").fetch_one(pool).await?;
    let before: HashSet<i64> = if exists.is_some() {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(pool).await?.into_iter().collect()
    } else {
        HashSet::new()
    };
    store::migrate(pool).await.context("applying the migrations")?;
    Ok(store::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !before.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect())
}
