//! The consumers' dedup store against the real PostgreSQL (a fresh database per test):
//! records and look-ups, side effect and record committed together or not at all, two
//! racing deliveries of one event applying its side effect once, pruning.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use ltf_consumers::DedupStore;
use ltf_consumers::{Event, HandlerContext, Meta};
use ltf_tests::{count_rows, fresh_database, TestDb};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::Barrier;
use uuid::Uuid;

const GROUP: &str = "latechforce.audit";
const HANDLER: &str = "write-audit-log";

/// A fresh database with a `side_effects` table for the handlers of these tests.
async fn setup() -> Result<(TestDb, DedupStore)> {
    let db = fresh_database().await?;
    sqlx::raw_sql("CREATE TABLE side_effects (event_id uuid NOT NULL, writer text NOT NULL)").execute(&db.pool).await?;
    let store = DedupStore::new(db.pool.clone(), Duration::from_secs(24 * 3600));
    Ok((db, store))
}

fn event() -> Result<Event> {
    let event = ltf_schemas::examples::samples().into_iter().next().context("no sample event")?;
    let meta = Meta {
        topic: "latechforce.table.events".into(),
        partition: 0,
        offset: 0,
        key: Some(event.aggregate_id().to_owned()),
        timestamp_ms: None,
        headers: Default::default(),
    };
    Ok(Event { event, meta: meta.into() })
}

fn ctx() -> HandlerContext {
    HandlerContext::new(GROUP, HANDLER, 1, None)
}

async fn side_effect(tx: &mut Transaction<'static, Postgres>, event: &Event, writer: &str) -> Result<()> {
    sqlx::query("INSERT INTO side_effects (event_id, writer) VALUES ($1, $2)")
        .bind(event.event_id())
        .bind(writer)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn side_effects(pool: &PgPool) -> Result<i64> {
    count_rows(pool, "side_effects").await
}

#[tokio::test]
async fn record_and_is_processed() -> Result<()> {
    let (db, store) = setup().await?;
    let id = Uuid::new_v4();
    assert!(!store.is_processed(GROUP, HANDLER, id).await?);
    let mut conn = db.pool.acquire().await?;
    assert!(DedupStore::record(&mut conn, GROUP, HANDLER, id).await?, "a new record");
    assert!(!DedupStore::record(&mut conn, GROUP, HANDLER, id).await?, "already recorded");
    drop(conn);
    assert!(store.is_processed(GROUP, HANDLER, id).await?);
    assert!(!store.is_processed(GROUP, "other-handler", id).await?, "records are per handler");
    assert!(!store.is_processed("latechforce.cache", HANDLER, id).await?, "records are per group");
    assert!(!store.is_processed(GROUP, HANDLER, Uuid::new_v4()).await?);
    db.drop_database().await
}

#[tokio::test]
async fn a_committed_side_effect_is_not_repeated() -> Result<()> {
    let (db, store) = setup().await?;
    let ev = event()?;
    let mut tx = store.begin(&ctx(), &ev).await?.context("the first delivery gets the record")?;
    side_effect(&mut tx, &ev, "first").await?;
    assert!(!store.is_processed(GROUP, HANDLER, ev.event_id()).await?, "invisible before commit");
    tx.commit().await?;
    assert!(store.is_processed(GROUP, HANDLER, ev.event_id()).await?);
    assert!(store.begin(&ctx(), &ev).await?.is_none(), "a redelivery is a duplicate");
    assert_eq!(side_effects(&db.pool).await?, 1);
    // Another handler of the group processes the same event on its own.
    let other = HandlerContext::new(GROUP, "another", 1, None);
    assert!(store.begin(&other, &ev).await?.is_some());
    db.drop_database().await
}

#[tokio::test]
async fn a_rollback_keeps_neither_record_nor_side_effect() -> Result<()> {
    let (db, store) = setup().await?;
    let ev = event()?;
    let mut tx = store.begin(&ctx(), &ev).await?.context("a new event")?;
    side_effect(&mut tx, &ev, "failed").await?;
    tx.rollback().await?;
    assert!(!store.is_processed(GROUP, HANDLER, ev.event_id()).await?);
    assert_eq!(side_effects(&db.pool).await?, 0);
    // Dropping the transaction (a handler that returned an error) rolls back too.
    let mut tx = store.begin(&ctx(), &ev).await?.context("not recorded, so handled again")?;
    side_effect(&mut tx, &ev, "dropped").await?;
    drop(tx);
    assert!(!store.is_processed(GROUP, HANDLER, ev.event_id()).await?);
    let mut tx = store.begin(&ctx(), &ev).await?.context("still not recorded")?;
    side_effect(&mut tx, &ev, "retried").await?;
    tx.commit().await?;
    assert_eq!(side_effects(&db.pool).await?, 1);
    db.drop_database().await
}

/// One delivery: begins, writes its side effect, holds the transaction a moment (so the
/// other delivery meets the uncommitted record), commits. Whether it got the record.
async fn deliver(store: Arc<DedupStore>, ev: Arc<Event>, barrier: Arc<Barrier>, writer: String) -> Result<bool> {
    barrier.wait().await;
    match store.begin(&ctx(), &ev).await? {
        Some(mut tx) => {
            side_effect(&mut tx, &ev, &writer).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.commit().await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

#[tokio::test]
async fn of_two_racing_deliveries_exactly_one_applies_the_side_effect() -> Result<()> {
    let (db, store) = setup().await?;
    let store = Arc::new(store);
    for round in 0..5 {
        let ev = Arc::new(event()?);
        let barrier = Arc::new(Barrier::new(2));
        let a = tokio::spawn(deliver(store.clone(), ev.clone(), barrier.clone(), format!("a{round}")));
        let b = tokio::spawn(deliver(store.clone(), ev.clone(), barrier, format!("b{round}")));
        let (a, b) = (a.await??, b.await??);
        ensure!(a != b, "round {round}: exactly one delivery must win (a: {a}, b: {b})");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM side_effects WHERE event_id = $1")
            .bind(ev.event_id())
            .fetch_one(&db.pool)
            .await?;
        assert_eq!(n, 1, "round {round}");
    }
    assert_eq!(side_effects(&db.pool).await?, 5);
    db.drop_database().await
}

#[tokio::test]
async fn a_waiting_delivery_takes_over_when_the_first_rolls_back() -> Result<()> {
    let (db, store) = setup().await?;
    let store = Arc::new(store);
    let ev = Arc::new(event()?);
    let first = store.begin(&ctx(), &ev).await?.context("the first delivery")?;
    let second = {
        let (store, ev) = (store.clone(), ev.clone());
        tokio::spawn(async move {
            let Some(mut tx) = store.begin(&ctx(), &ev).await? else { return Ok(false) };
            side_effect(&mut tx, &ev, "second").await?;
            tx.commit().await?;
            anyhow::Ok(true)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second delivery waits on the first's uncommitted record");
    first.rollback().await?;
    assert!(second.await??, "after the rollback the second delivery handles the event");
    assert!(store.is_processed(GROUP, HANDLER, ev.event_id()).await?);
    assert_eq!(side_effects(&db.pool).await?, 1);
    db.drop_database().await
}

#[tokio::test]
async fn prune_deletes_only_records_past_the_retention() -> Result<()> {
    let (db, _) = setup().await?;
    let store = DedupStore::new(db.pool.clone(), Duration::from_secs(3600));
    let (old, recent) = (Uuid::new_v4(), Uuid::new_v4());
    let mut conn = db.pool.acquire().await?;
    for id in [old, recent] {
        DedupStore::record(&mut conn, GROUP, HANDLER, id).await?;
    }
    DedupStore::record(&mut conn, "latechforce.cache", HANDLER, old).await?;
    sqlx::query("UPDATE ltf_processed_events SET processed_at = now() - interval '2 hours' WHERE event_id = $1")
        .bind(old)
        .execute(&mut *conn)
        .await?;
    drop(conn);
    assert_eq!(store.prune().await?, 2, "the old record of both groups");
    assert!(!store.is_processed(GROUP, HANDLER, old).await?);
    assert!(store.is_processed(GROUP, HANDLER, recent).await?);
    assert_eq!(store.prune().await?, 0);
    assert_eq!(count_rows(&db.pool, "ltf_processed_events").await?, 1);
    db.drop_database().await
}
