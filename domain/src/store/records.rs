//! Records of user tables (`ltf_records`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ltf_schemas::Fields;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection};

/// A record row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The record id.
    pub id: String,
    /// The table it belongs to.
    pub table_id: String,
    /// Its field values, validated against the table's field definitions.
    pub fields: Fields,
    /// 1 when created, one more with every change; events carry it as recordVersion.
    pub version: i64,
    /// When the record was created.
    pub created_at: DateTime<Utc>,
    /// When the record last changed.
    pub updated_at: DateTime<Utc>,
    /// The user who created it, when known.
    pub created_by: Option<String>,
}

#[derive(FromRow)]
struct Row {
    id: String,
    table_id: String,
    fields: Json<Fields>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_by: Option<String>,
}

impl From<Row> for Record {
    fn from(r: Row) -> Record {
        Record {
            id: r.id,
            table_id: r.table_id,
            fields: r.fields.0,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            created_by: r.created_by,
        }
    }
}

const COLUMNS: &str = "id, table_id, fields, version, created_at, updated_at, created_by";

/// Puts rows back in the order of `ids` (RETURNING and `= ANY` do not promise an order).
fn in_order(ids: impl IntoIterator<Item = impl AsRef<str>>, rows: Vec<Row>) -> Vec<Record> {
    let mut by_id: HashMap<String, Record> = rows.into_iter().map(|r| (r.id.clone(), r.into())).collect();
    ids.into_iter().filter_map(|id| by_id.remove(id.as_ref())).collect()
}

/// Inserts new records of `table_id` at version 1, in one statement; returns them in the
/// order given.
pub async fn insert_many(
    conn: &mut PgConnection,
    table_id: &str,
    records: &[(String, Fields)],
    created_by: Option<&str>,
) -> Result<Vec<Record>, sqlx::Error> {
    let ids: Vec<&str> = records.iter().map(|(id, _)| id.as_str()).collect();
    let fields: Vec<Json<&Fields>> = records.iter().map(|(_, f)| Json(f)).collect();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "INSERT INTO ltf_records (id, table_id, fields, version, created_by)
         SELECT u.id, $1, u.fields, 1, $4 FROM UNNEST($2::text[], $3::jsonb[]) AS u(id, fields)
         RETURNING {COLUMNS}"
    ))
    .bind(table_id)
    .bind(&ids)
    .bind(&fields)
    .bind(created_by)
    .fetch_all(conn)
    .await?;
    Ok(in_order(ids, rows))
}

/// The records `ids` of `table_id` that exist, locked for update until the caller's
/// transaction ends. Rows are locked in id order, so two batches over the same records
/// cannot deadlock each other.
pub async fn lock_many(conn: &mut PgConnection, table_id: &str, ids: &[&str]) -> Result<Vec<Record>, sqlx::Error> {
    let rows: Vec<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM ltf_records WHERE table_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE"))
            .bind(table_id)
            .bind(ids)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().map(Record::from).collect())
}

/// Writes new fields and versions of existing records (`updated_at` = now); returns the
/// rows as written, in the order given.
pub async fn update_many(conn: &mut PgConnection, changes: &[(&str, &Fields, i64)]) -> Result<Vec<Record>, sqlx::Error> {
    let ids: Vec<&str> = changes.iter().map(|c| c.0).collect();
    let fields: Vec<Json<&Fields>> = changes.iter().map(|c| Json(c.1)).collect();
    let versions: Vec<i64> = changes.iter().map(|c| c.2).collect();
    let rows: Vec<Row> = sqlx::query_as(
        "UPDATE ltf_records AS r SET fields = u.fields, version = u.version, updated_at = now()
         FROM UNNEST($1::text[], $2::jsonb[], $3::bigint[]) AS u(id, fields, version)
         WHERE r.id = u.id
         RETURNING r.id, r.table_id, r.fields, r.version, r.created_at, r.updated_at, r.created_by",
    )
    .bind(&ids)
    .bind(&fields)
    .bind(&versions)
    .fetch_all(conn)
    .await?;
    Ok(in_order(ids, rows))
}

/// Deletes the records `ids`; returns how many rows went.
pub async fn delete_many(conn: &mut PgConnection, ids: &[&str]) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM ltf_records WHERE id = ANY($1)").bind(ids).execute(conn).await?;
    Ok(done.rows_affected())
}

/// The record `id`, if it exists (no lock).
pub async fn get(conn: &mut PgConnection, id: &str) -> Result<Option<Record>, sqlx::Error> {
    let row: Option<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM ltf_records WHERE id = $1")).bind(id).fetch_optional(conn).await?;
    Ok(row.map(Record::from))
}

/// How many records `table_id` holds.
pub async fn count(conn: &mut PgConnection, table_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM ltf_records WHERE table_id = $1").bind(table_id).fetch_one(conn).await
}

/// A link field of a record that points to another record.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Link {
    /// The linking record.
    pub record_id: String,
    /// Its table.
    pub table_id: String,
    /// The link field (of type `link` in the table's definition).
    pub field: String,
    /// The field's value: the linked id, or an array of ids.
    pub value: serde_json::Value,
}

/// Every (record, link field) whose value is `record_id` or an array holding it, other
/// than `record_id` itself, by record id. Reads the tables' field definitions
/// (`ltf_tables`) to know which fields are links.
///
/// The linking records are locked for update, in id order (the writers' lock order): a
/// linking record that another transaction is deleting is waited for and, once that
/// deletion committed, not returned; one returned stays there until the caller's
/// transaction ends.
pub async fn links_to(conn: &mut PgConnection, record_id: &str) -> Result<Vec<Link>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id AS record_id, r.table_id, f->>'name' AS field, r.fields->(f->>'name') AS value
         FROM ltf_records r
         JOIN ltf_tables t ON t.id = r.table_id
         CROSS JOIN LATERAL jsonb_array_elements(t.fields) f
         WHERE f->>'type' = 'link' AND r.id <> $1
           AND (r.fields->(f->>'name') = to_jsonb($1::text) OR r.fields->(f->>'name') @> jsonb_build_array($1::text))
         ORDER BY r.id
         FOR UPDATE OF r",
    )
    .bind(record_id)
    .fetch_all(conn)
    .await
}
