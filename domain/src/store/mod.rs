//! The PostgreSQL domain store: embedded migrations, tables, records, forms and
//! connections (the outbox is [`crate::outbox`]).
//!
//! Every function takes a `&mut PgConnection`, so it runs inside whatever transaction the
//! caller holds; none of them begins or commits one. The use cases ([`crate::usecases`])
//! own the transactions.
//!
//! The schema lives in `migrations/` at the repository root, one folder for every crate
//! (DESIGN.md, "Database"), and is embedded in this crate at build time.

pub mod connections;
pub mod forms;

pub mod records;
pub mod tables;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::PgPool;

/// The repository's migrations, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Applies every migration the database does not have yet (a no-op when it is current).
///
/// Fails when the database holds a migration this build does not know, or one whose
/// checksum differs: the database was migrated by another version of the code.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
}
