//! `ltf migrate`: applies the repository's migrations to DATABASE_URL and prints each one
//! it applied (nothing when the database is current).

use anyhow::Result;
use clap::Args;

use crate::database::{migrate, DatabaseArgs};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
}

pub async fn run(args: MigrateArgs) -> Result<()> {
    let pool = args.db.connect().await?;
    let applied = migrate(&pool).await?;
    if applied.is_empty() {
        println!("the database is up to date");
    }
    for m in applied {
        println!("applied {m}");
    }
    pool.close().await;
    Ok(())
}
