//! The cache worker: a Redis read-through cache of records, kept current by the table
//! topic's record events.
//!
//! # Keys
//! With the default prefix `ltf` (configurable, so tests and tenants can share a Redis):
//!
//! * `ltf:record:<tableId>:<recordId>` — a hash: `version` (the record's recordVersion)
//!   and `fields` (the record's fields as JSON text) for a live record; `version` and
//!   `deleted` = `1` for a **tombstone**, which expires after the tombstone TTL.
//! * `ltf:listgen:<tableId>` — the table's list generation, an integer that RecordCreated
//!   and RecordDeleted increment.
//! * `ltf:list:<tableId>:<generation>:<query>` — a cached list of record ids (a page, a
//!   filter: `<query>` is the reader's). Readers build the key from the current
//!   generation, so incrementing it invalidates every list of the table at once; the old
//!   keys expire by their own TTL. Lists hold ids only, so an update (which changes no
//!   membership) leaves them valid: readers take each record's fields from its record key.
//!
//! # The version guard
//! Every write runs in one Lua script ([`WRITE_SCRIPT`]), atomically: when the stored
//! entry — live or tombstone — has a version ≥ the event's recordVersion, the write is a
//! no-op. A replayed, redelivered or reordered older event therefore never overwrites a
//! newer value, and a record deleted at version v stays deleted against any event of a
//! version ≤ v (for as long as its tombstone lives). This guard is the worker's
//! idempotency: it needs no dedup record in PostgreSQL (the pipeline runs without one).
//!
//! Since every record event carries the record row's version *after* the change, the
//! cache after a consumer has read a table topic to its end — from any starting point,
//! any number of times — holds for each record the state of its highest version seen:
//! the database's state.
//!
//! # Failures
//! Redis unreachable (refused, timed out, connection dropped) is an outage of the
//! dependency `redis`: the runtime's circuit breaker opens and the partition waits,
//! nothing is dead-lettered. Other Redis errors (a key of the wrong type, a script error)
//! are retried, then dead-lettered.

use std::time::Duration;

use async_trait::async_trait;
use ltf_schemas::{EventPayload, EventType, Fields};
use metrics::counter;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, RetryMethod};
use sqlx::PgPool;

use crate::metrics::{labels, CACHE_WRITES_TOTAL};
use ltf_consumers::ErrorClass;
use ltf_consumers::{Event, Handler, HandlerContext, HandlerError};

/// The dependency name of Redis, for its circuit breaker.
pub const REDIS: &str = "redis";

/// The guarded write. `KEYS[1]` the record key, `KEYS[2]` the table's list generation key;
/// `ARGV[1]` the version, `ARGV[2]` `put` or `delete`, `ARGV[3]` the fields JSON (put),
/// `ARGV[4]` the tombstone TTL in ms (0: none), `ARGV[5]` `1` to invalidate the table's
/// lists. Returns `{applied (1|0), stored version}`.
pub const WRITE_SCRIPT: &str = r#"
local stored = redis.call('HGET', KEYS[1], 'version')
local version = tonumber(ARGV[1])
if stored and tonumber(stored) >= version then
  return {0, tonumber(stored)}
end
redis.call('DEL', KEYS[1])
if ARGV[2] == 'put' then
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'fields', ARGV[3])
else
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'deleted', '1')
  local ttl = tonumber(ARGV[4])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
end
if ARGV[5] == '1' then redis.call('INCR', KEYS[2]) end
return {1, version}
"#;

/// Errors of the record cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The Redis URL does not parse.
    #[error("invalid Redis URL: {0}")]
    Url(#[source] RedisError),
    /// A Redis command failed.
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    /// Reading the record from PostgreSQL (read-through) failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A cached entry that is not what this module writes.
    #[error("corrupt cache entry {key}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The key scheme, under a prefix (`ltf` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKeys {
    prefix: String,
}

impl Default for CacheKeys {
    fn default() -> CacheKeys {
        CacheKeys::new(DEFAULT_PREFIX)
    }
}

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "ltf";

impl CacheKeys {
    /// Keys under `prefix`.
    pub fn new(prefix: impl Into<String>) -> CacheKeys {
        CacheKeys { prefix: prefix.into() }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>:record:<tableId>:<recordId>`.
    pub fn record(&self, table_id: &str, record_id: &str) -> String {
        format!("{}:record:{table_id}:{record_id}", self.prefix)
    }

    /// `<prefix>:listgen:<tableId>`.
    pub fn list_generation(&self, table_id: &str) -> String {
        format!("{}:listgen:{table_id}", self.prefix)
    }

    /// `<prefix>:list:<tableId>:<generation>:<query>`.
    pub fn list(&self, table_id: &str, generation: i64, query: &str) -> String {
        format!("{}:list:{table_id}:{generation}:{query}", self.prefix)
    }
}

/// A live cached record.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedRecord {
    /// The record's version (recordVersion of the event that wrote it).
    pub version: i64,
    /// Its fields.
    pub fields: Fields,
}

/// What the cache holds for a record.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheEntry {
    /// The record as of `version`.
    Live(CachedRecord),
    /// Deleted at `version`.
    Tombstone {
        /// The recordVersion of the RecordDeleted.
        version: i64,
    },
}

impl CacheEntry {
    /// The stored version.
    pub fn version(&self) -> i64 {
        match self {
            CacheEntry::Live(r) => r.version,
            CacheEntry::Tombstone { version } => *version,
        }
    }
}

/// A change to apply, as a record event describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The record's fields as of `version` (created or updated).
    Put {
        /// The table.
        table_id: String,
        /// The record.
        record_id: String,
        /// Its version after the change.
        version: i64,
        /// Its fields after the change.
        fields: Fields,
        /// Whether the table's list membership changed (a creation).
        invalidate_lists: bool,
    },
    /// The record was deleted at `version`.
    Delete {
        /// The table.
        table_id: String,
        /// The record.
        record_id: String,
        /// The recordVersion of the deletion.
        version: i64,
    },
}

impl Change {
    /// The change a record event asks for; `None` for other events.
    pub fn from_payload(payload: &EventPayload) -> Option<Change> {
        match payload {
            EventPayload::RecordCreated(p) => Some(Change::Put {
                table_id: p.table_id.clone(),
                record_id: p.record_id.clone(),
                version: p.record_version,
                fields: (*p.fields).clone(),
                invalidate_lists: true,
            }),
            EventPayload::RecordUpdated(p) => Some(Change::Put {
                table_id: p.table_id.clone(),
                record_id: p.record_id.clone(),
                version: p.record_version,
                fields: (*p.current_fields).clone(),
                invalidate_lists: false,
            }),
            EventPayload::RecordDeleted(p) => {
                Some(Change::Delete { table_id: p.table_id.clone(), record_id: p.record_id.clone(), version: p.record_version })
            }
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Change::Put { .. } => "put",
            Change::Delete { .. } => "delete",
        }
    }
}

/// What a guarded write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Whether it was written (false: the stored version was as new or newer).
    pub applied: bool,
    /// The version stored after the call.
    pub stored_version: i64,
}

/// Settings of the record cache.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// The Redis URL (`redis://127.0.0.1:6379/0`).
    pub redis_url: String,
    /// The key prefix ([`DEFAULT_PREFIX`]).
    pub key_prefix: String,
    /// How long a tombstone lives; `None`: forever. It bounds how late a stale event can
    /// arrive and still be refused: keep it at least the table topic's retention (Kafka's
    /// default: 7 days) so a replay of the topic never resurrects a deleted record.
    pub tombstone_ttl: Option<Duration>,
    /// Timeout of one Redis command.
    pub response_timeout: Duration,
    /// Timeout of one connection attempt.
    pub connection_timeout: Duration,
}

impl CacheConfig {
    /// Defaults with `redis_url`.
    pub fn new(redis_url: impl Into<String>) -> CacheConfig {
        CacheConfig {
            redis_url: redis_url.into(),
            key_prefix: DEFAULT_PREFIX.into(),
            tombstone_ttl: Some(Duration::from_secs(7 * 86_400)),
            response_timeout: Duration::from_secs(2),
            connection_timeout: Duration::from_secs(2),
        }
    }
}

/// The record cache: guarded writes, reads, read-through.
#[derive(Clone)]
pub struct RecordCache {
    conn: ConnectionManager,
    keys: CacheKeys,
    tombstone_ttl: Option<Duration>,
    script: std::sync::Arc<redis::Script>,
}

impl std::fmt::Debug for RecordCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCache").field("keys", &self.keys).field("tombstone_ttl", &self.tombstone_ttl).finish()
    }
}

impl RecordCache {
    /// A cache on `config.redis_url`. Connects lazily (on the first command, and again
    /// after an outage), so a worker starts while Redis is down; must be called inside a
    /// Tokio runtime.
    pub fn new(config: &CacheConfig) -> Result<RecordCache, CacheError> {
        let client = redis::Client::open(config.redis_url.as_str()).map_err(CacheError::Url)?;
        let manager = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.connection_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, manager).map_err(CacheError::Url)?;
        Ok(RecordCache {
            conn,
            keys: CacheKeys::new(config.key_prefix.clone()),
            tombstone_ttl: config.tombstone_ttl,
            script: std::sync::Arc::new(redis::Script::new(WRITE_SCRIPT)),
        })
    }

    /// The key scheme.
    pub fn keys(&self) -> &CacheKeys {
        &self.keys
    }

    /// A connection (a cheap clone of the manager).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Applies `change` under the version guard.
    pub async fn apply(&self, change: &Change) -> Result<WriteOutcome, CacheError> {
        let mut conn = self.conn.clone();
        let ttl_ms = self.tombstone_ttl.map_or(0, |t| t.as_millis().max(1) as u64);
        let (table, record, version, fields, invalidate) = match change {
            Change::Put { table_id, record_id, version, fields, invalidate_lists } => {
                let json = serde_json::to_string(fields)
                    .map_err(|e| CacheError::Corrupt { key: self.keys.record(table_id, record_id), reason: e.to_string() })?;
                (table_id, record_id, *version, json, *invalidate_lists)
            }
            Change::Delete { table_id, record_id, version } => (table_id, record_id, *version, String::new(), true),
        };
        let (applied, stored_version): (i64, i64) = self
            .script
            .key(self.keys.record(table, record))
            .key(self.keys.list_generation(table))
            .arg(version)
            .arg(change.kind())
            .arg(fields)
            .arg(ttl_ms)
            .arg(if invalidate { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await?;
        let outcome = WriteOutcome { applied: applied == 1, stored_version };
        counter!(CACHE_WRITES_TOTAL, labels::KIND => change.kind(),
            labels::OUTCOME => if outcome.applied { "applied" } else { "stale" })
        .increment(1);
        Ok(outcome)
    }

    /// What the cache holds for the record (live or tombstone).
    pub async fn entry(&self, table_id: &str, record_id: &str) -> Result<Option<CacheEntry>, CacheError> {
        get_entry(&mut self.conn.clone(), &self.keys, table_id, record_id).await
    }

    /// The live cached record; `None` when absent or deleted.
    pub async fn get_record(&self, table_id: &str, record_id: &str) -> Result<Option<CachedRecord>, CacheError> {
        get_record(&mut self.conn.clone(), &self.keys, table_id, record_id).await
    }

    /// Read-through: the cached record, or on a miss the database's row, written to the
    /// cache under the version guard (so a concurrent newer event wins). A tombstone is
    /// a hit: the record is deleted.
    pub async fn read_through(&self, pool: &PgPool, table_id: &str, record_id: &str) -> Result<Option<CachedRecord>, CacheError> {
        match self.entry(table_id, record_id).await? {
            Some(CacheEntry::Live(r)) => return Ok(Some(r)),
            Some(CacheEntry::Tombstone { .. }) => return Ok(None),
            None => {}
        }
        let mut db = pool.acquire().await?;
        let Some(row) = ltf_domain::store::records::get(&mut db, record_id).await? else { return Ok(None) };
        if row.table_id != table_id {
            return Ok(None);
        }
        let change = Change::Put {
            table_id: table_id.into(),
            record_id: record_id.into(),
            version: row.version,
            fields: row.fields.clone(),
            invalidate_lists: false,
        };
        if self.apply(&change).await?.applied {
            return Ok(Some(CachedRecord { version: row.version, fields: row.fields }));
        }
        // A newer event got there first: serve what it wrote.
        self.get_record(table_id, record_id).await
    }

    /// The table's current list generation (0 before any creation or deletion).
    pub async fn list_generation(&self, table_id: &str) -> Result<i64, CacheError> {
        let gen: Option<i64> = self.conn.clone().get(self.keys.list_generation(table_id)).await?;
        Ok(gen.unwrap_or(0))
    }

    /// The cached list `query` of the table's current generation.
    pub async fn get_list(&self, table_id: &str, query: &str) -> Result<Option<Vec<String>>, CacheError> {
        let gen = self.list_generation(table_id).await?;
        let key = self.keys.list(table_id, gen, query);
        let raw: Option<String> = self.conn.clone().get(&key).await?;
        raw.map(|s| serde_json::from_str(&s).map_err(|e| CacheError::Corrupt { key, reason: e.to_string() })).transpose()
    }

    /// Caches the list `query` computed at `generation` (read it with
    /// [`list_generation`](Self::list_generation) *before* querying the database, so a
    /// list computed across an invalidation lands under a generation no reader uses).
    pub async fn put_list(
        &self,
        table_id: &str,
        generation: i64,
        query: &str,
        ids: &[String],
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let key = self.keys.list(table_id, generation, query);
        let json = serde_json::to_string(ids).map_err(|e| CacheError::Corrupt { key: key.clone(), reason: e.to_string() })?;
        let _: () = self.conn.clone().pset_ex(key, json, ttl.as_millis().max(1) as u64).await?;
        Ok(())
    }
}

/// What the cache holds for a record under `keys`: live, tombstone, or nothing.
pub async fn get_entry<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &CacheKeys,
    table_id: &str,
    record_id: &str,
) -> Result<Option<CacheEntry>, CacheError> {
    let key = keys.record(table_id, record_id);
    let (version, fields, deleted): (Option<String>, Option<String>, Option<String>) =
        redis::cmd("HMGET").arg(&key).arg("version").arg("fields").arg("deleted").query_async(conn).await?;
    parse_entry(&key, version, fields, deleted)
}

/// The live record under `keys`; `None` when absent or a tombstone.
pub async fn get_record<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &CacheKeys,
    table_id: &str,
    record_id: &str,
) -> Result<Option<CachedRecord>, CacheError> {
    Ok(match get_entry(conn, keys, table_id, record_id).await? {
        Some(CacheEntry::Live(r)) => Some(r),
        _ => None,
    })
}

/// An entry from its hash fields.
fn parse_entry(
    key: &str,
    version: Option<String>,
    fields: Option<String>,
    deleted: Option<String>,
) -> Result<Option<CacheEntry>, CacheError> {
    let corrupt = |reason: String| CacheError::Corrupt { key: key.to_owned(), reason };
    let Some(version) = version else { return Ok(None) };
    let version: i64 = version.parse().map_err(|_| corrupt(format!("version `{version}` is not an integer")))?;
    if deleted.as_deref() == Some("1") {
        return Ok(Some(CacheEntry::Tombstone { version }));
    }
    let fields = fields.ok_or_else(|| corrupt("no fields".into()))?;
    let fields: Fields = serde_json::from_str(&fields).map_err(|e| corrupt(format!("fields: {e}")))?;
    Ok(Some(CacheEntry::Live(CachedRecord { version, fields })))
}

/// A Redis failure as the runtime sees it: an outage of `redis` when the server is
/// unreachable, else a retryable error of class `redis`.
pub fn redis_failure(e: &RedisError) -> HandlerError {
    let err = HandlerError::retryable(ErrorClass::Redis, e);
    if is_outage(e) {
        err.from_dependency(REDIS)
    } else {
        err
    }
}

/// Whether `e` means Redis is unreachable or unavailable (not a refusal of the command).
fn is_outage(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.retry_method(),
            RetryMethod::Reconnect | RetryMethod::ReconnectFromInitialConnections | RetryMethod::WaitAndRetry
        )
}

impl From<CacheError> for HandlerError {
    fn from(e: CacheError) -> HandlerError {
        match &e {
            CacheError::Redis(r) | CacheError::Url(r) => redis_failure(r),
            CacheError::Database(_) => HandlerError::retryable(ErrorClass::Database, &e),
            CacheError::Corrupt { .. } => HandlerError::permanent(ErrorClass::CorruptCacheEntry, &e),
        }
    }
}

/// Keeps the record cache current: RecordCreated and RecordUpdated write the record's
/// fields at its recordVersion, RecordDeleted leaves a tombstone; creations and deletions
/// invalidate the table's lists. Idempotent by the version guard (no dedup store).
#[derive(Debug, Clone)]
pub struct CacheHandler {
    cache: RecordCache,
}

impl CacheHandler {
    /// A handler writing to `cache`.
    pub fn new(cache: RecordCache) -> CacheHandler {
        CacheHandler { cache }
    }
}

#[async_trait]
impl Handler for CacheHandler {
    fn dependencies(&self) -> &[&'static str] {
        &[REDIS]
    }

    fn name(&self) -> &str {
        "record-cache"
    }

    fn can_handle(&self, event_type: EventType) -> bool {
        matches!(event_type, EventType::RecordCreated | EventType::RecordUpdated | EventType::RecordDeleted)
    }

    async fn handle(&self, _ctx: &HandlerContext, event: &Event) -> Result<(), HandlerError> {
        let Some(change) = Change::from_payload(&event.event.payload) else { return Ok(()) };
        let outcome = self.cache.apply(&change).await?;
        if !outcome.applied {
            tracing::debug!(event_id = %event.event_id(), stored_version = outcome.stored_version,
                "stale record event: the cache holds this version or a newer one");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ltf_schemas::{RecordCreated, RecordDeleted, RecordUpdated};
    use serde_json::json;

    fn fields(v: serde_json::Value) -> Fields {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn keys_follow_the_documented_scheme() {
        let k = CacheKeys::default();
        assert_eq!(k.record("tbl_1", "rec_2"), "ltf:record:tbl_1:rec_2");
        assert_eq!(k.list_generation("tbl_1"), "ltf:listgen:tbl_1");
        assert_eq!(k.list("tbl_1", 7, "page=1"), "ltf:list:tbl_1:7:page=1");
        assert_eq!(CacheKeys::new("t-x").record("a", "b"), "t-x:record:a:b");
    }

    #[test]
    fn record_events_map_to_changes() {
        let created = EventPayload::RecordCreated(RecordCreated {
            table_id: "t".into(),
            record_id: "r".into(),
            record_version: 1,
            fields: fields(json!({"a": 1})).into(),
            created_by: None,
        });
        assert_eq!(
            Change::from_payload(&created),
            Some(Change::Put {
                table_id: "t".into(),
                record_id: "r".into(),
                version: 1,
                fields: fields(json!({"a": 1})),
                invalidate_lists: true
            })
        );
        let updated = EventPayload::RecordUpdated(RecordUpdated {
            table_id: "t".into(),
            record_id: "r".into(),
            record_version: 2,
            previous_fields: fields(json!({"a": 1})).into(),
            current_fields: fields(json!({"a": 2})).into(),
            changed_fields: vec!["a".into()],
        });
        assert_eq!(
            Change::from_payload(&updated),
            Some(Change::Put {
                table_id: "t".into(),
                record_id: "r".into(),
                version: 2,
                fields: fields(json!({"a": 2})),
                invalidate_lists: false
            })
        );
        let deleted = EventPayload::RecordDeleted(RecordDeleted {
            table_id: "t".into(),
            record_id: "r".into(),
            record_version: 3,
            deleted_fields: fields(json!({"a": 2})).into(),
        });
        assert_eq!(
            Change::from_payload(&deleted),
            Some(Change::Delete { table_id: "t".into(), record_id: "r".into(), version: 3 })
        );
    }

    #[test]
    fn entries_parse_from_their_hash_fields() {
        assert_eq!(parse_entry("k", None, None, None).unwrap(), None);
        assert_eq!(
            parse_entry("k", Some("3".into()), Some(r#"{"a":1}"#.into()), None).unwrap(),
            Some(CacheEntry::Live(CachedRecord { version: 3, fields: fields(json!({"a": 1})) }))
        );
        assert_eq!(
            parse_entry("k", Some("4".into()), None, Some("1".into())).unwrap(),
            Some(CacheEntry::Tombstone { version: 4 })
        );
        assert!(matches!(parse_entry("k", Some("x".into()), None, None), Err(CacheError::Corrupt { .. })));
        assert!(matches!(parse_entry("k", Some("1".into()), None, None), Err(CacheError::Corrupt { .. })));
    }

    #[test]
    fn an_unreachable_redis_is_an_outage_and_a_refused_command_is_not() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let e = redis_failure(&refused);
        assert_eq!(e.dependency.as_deref(), Some(REDIS));
        assert!(e.retryable);
        let wrong_type = RedisError::from((redis::ErrorKind::UnexpectedReturnType, "WRONGTYPE"));
        let e = redis_failure(&wrong_type);
        assert_eq!(e.dependency, None);
        assert!(e.retryable);
    }
}
