//! Connections to external services (`ltf_connections`). `credentials` holds only the
//! encrypted blob of [`CredentialCipher`](crate::connections::CredentialCipher); the token's
//! expiry and scope sit beside it in clear, so a worker finds tokens to refresh without
//! decrypting.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection};

/// A connection as stored, without its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnection {
    /// The connection id; the aggregateId of its ConnectionEstablished event.
    pub id: String,
    /// The service name, a key of the configured services.
    pub service: String,
    /// The user who connected it.
    pub user_id: String,
    /// Whether it holds credentials.
    pub authenticated: bool,
    /// When the stored access token expires, when the service said.
    pub token_expires_at: Option<DateTime<Utc>>,
    /// The granted scope, space-separated, when the service said.
    pub scope: Option<String>,
    /// When the connection was created.
    pub created_at: DateTime<Utc>,
    /// When its credentials last changed.
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, service, user_id, credentials IS NOT NULL AS authenticated, token_expires_at, scope, created_at, updated_at";

/// The connection `id`, if it exists (no lock).
pub async fn get(conn: &mut PgConnection, id: &str) -> Result<Option<ServiceConnection>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM ltf_connections WHERE id = $1")).bind(id).fetch_optional(conn).await
}

/// The connection `id`, locked for update until the caller's transaction ends.
pub async fn lock(conn: &mut PgConnection, id: &str) -> Result<Option<ServiceConnection>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM ltf_connections WHERE id = $1 FOR UPDATE")).bind(id).fetch_optional(conn).await
}

/// The token facts stored with a credentials blob.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    /// The encrypted credentials.
    pub credentials: &'a [u8],
    /// When the access token expires.
    pub token_expires_at: Option<DateTime<Utc>>,
    /// The granted scope.
    pub scope: Option<&'a str>,
}

/// Inserts an authenticated connection; `None` when the id exists already.
pub async fn insert(
    conn: &mut PgConnection,
    id: &str,
    service: &str,
    user_id: &str,
    stored: Stored<'_>,
) -> Result<Option<ServiceConnection>, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO ltf_connections (id, service, user_id, credentials, token_expires_at, scope)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO NOTHING
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(service)
    .bind(user_id)
    .bind(stored.credentials)
    .bind(stored.token_expires_at)
    .bind(stored.scope)
    .fetch_optional(conn)
    .await
}

/// Replaces the credentials of connection `id` (`updated_at` = now); returns it as stored.
pub async fn set_credentials(conn: &mut PgConnection, id: &str, stored: Stored<'_>) -> Result<ServiceConnection, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE ltf_connections SET credentials = $2, token_expires_at = $3, scope = $4, updated_at = now()
         WHERE id = $1
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(stored.credentials)
    .bind(stored.token_expires_at)
    .bind(stored.scope)
    .fetch_one(conn)
    .await
}

/// The encrypted credentials of connection `id`; `None` when it does not exist or holds
/// none. Decrypt with [`CredentialCipher::open`](crate::connections::CredentialCipher::open)
/// and the connection id.
pub async fn credentials(conn: &mut PgConnection, id: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let blob: Option<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT credentials FROM ltf_connections WHERE id = $1").bind(id).fetch_optional(conn).await?;
    Ok(blob.flatten())
}
