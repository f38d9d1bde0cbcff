//! The `ltf` binaries against the secured Kafka (`scripts/stack up --secure`: SASL_SSL and
//! mTLS listeners only, StandardAuthorizer, least-privilege ACLs on the topic prefix
//! `latechforce`), each process with its own principal's settings
//! (`<secure stack dir>/clients/<principal>-{sasl,mtls}.env`):
//! * the relay publishes over SASL_SSL and over mTLS, the audit worker reads over mTLS and
//!   the analytics worker over SASL_SSL, and the CLI (`topics`, `status`, `dlq`) works as
//!   the admin over both;
//! * a wrong password, an untrusted CA, a client without a certificate and a plaintext
//!   client each fail within 15 s naming the setting, and no secret is printed;
//! * a worker's principal cannot write to an event topic.
//!
//! The ACLs name the topic prefix, so these tests share `latechforce`'s topics: each one
//! writes its own table and checks its own events.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ltf_domain::store::tables::{self, FieldDef, FieldType, TableDef};
use ltf_domain::usecases::CreateMultipleRecordsInput;
use ltf_domain::{ChangeContext, CreateMultipleRecords, RecordLimits, UseCase};
use ltf_schemas::{EventCodec, TopicNames};
use ltf_tests::{fresh_database, registry_url, TestDb};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::json;
use sqlx::PgPool;

/// The topic prefix the secured stack's ACLs grant.
const PREFIX: &str = "latechforce";

/// The secured stack's directory (`scripts/stack env --secure` exports it).
fn secure_dir() -> Result<PathBuf> {
    let dir = std::env::var("LTF_SECURE_STACK_DIR")
        .context("LTF_SECURE_STACK_DIR is not set: start the secured Kafka with `scripts/stack up --secure` and export `scripts/stack env --secure`")?;
    Ok(PathBuf::from(dir))
}

/// A principal's client settings over `listener` (`sasl` or `mtls`), as variables.
fn settings(principal: &str, listener: &str) -> Result<BTreeMap<String, String>> {
    let file = secure_dir()?.join("clients").join(format!("{principal}-{listener}.env"));
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    Ok(text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
}

/// `ltf` with a principal's settings and nothing of the plain stack's Kafka.
fn ltf(vars: &BTreeMap<String, String>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ltf"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("LTF_KAFKA_")) {
        c.env_remove(k);
    }
    c.envs(vars).env("LTF_REGISTRY_URL", registry_url()).env("LTF_TOPIC_PREFIX", PREFIX);
    c.env("LTF_LOG", "warn").env("RUST_BACKTRACE", "0").env_remove("DATABASE_URL");
    c
}

fn run(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null()).output().context("running ltf")
}

fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = run(cmd)?;
    ensure!(out.status.success(), "ltf failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?)
}

/// Kills the child when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(mut cmd: Command, db: &TestDb, args: &[&str]) -> Result<Running> {
    cmd.args(args).env("DATABASE_URL", db.url()).stdout(Stdio::null());
    Ok(Running(cmd.spawn().context("starting ltf")?))
}

/// Table `tbl_sec` in `db`.
async fn table(db: &TestDb) -> Result<()> {
    let t = TableDef { id: "tbl_sec".into(), name: "Sec".into(), fields: vec![FieldDef::new("title", FieldType::Text)] };
    tables::insert(&mut *db.pool.acquire().await?, &t).await?;
    Ok(())
}

/// `n` records created in `tbl_sec`: their events are in the outbox.
async fn records(db: &TestDb, n: usize) -> Result<()> {
    let codec = Arc::new(EventCodec::new(&registry_url(), TopicNames::new(PREFIX))?);
    let input = CreateMultipleRecordsInput {
        table_id: "tbl_sec".into(),
        records: (0..n).map(|i| json!({"title": format!("secured {i}")}).as_object().cloned().unwrap_or_default()).collect(),
    };
    CreateMultipleRecords::new(RecordLimits::default()).run(&db.pool, &codec, &ChangeContext::user("sec"), input).await?;
    Ok(())
}

async fn count(pool: &PgPool, sql: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

/// Waits (at most `secs`) until `sql` counts at least `n`, the child still running.
async fn wait_count(pool: &PgPool, sql: &str, n: i64, secs: u64, child: &mut Running, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = count(pool, sql).await?;
        if got >= n {
            return Ok(());
        }
        if let Some(status) = child.0.try_wait()? {
            bail!("{what} exited ({status}) with {got} of {n}");
        }
        ensure!(Instant::now() < deadline, "{what}: {got} of {n} after {secs} s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_workers_and_cli_work_over_sasl_ssl_and_over_mtls_each_as_its_own_principal() -> Result<()> {
    let admin_sasl = settings("admin", "sasl")?;
    let admin_mtls = settings("admin", "mtls")?;
    let out = run_ok(ltf(&admin_sasl).args(["topics", "ensure", "--partitions", "3"]))?;
    ensure!(out.contains(&format!("{PREFIX}.table.events")), "topics ensure as the admin over SASL_SSL: {out}");

    let db = fresh_database().await?;
    table(&db).await?;
    records(&db, 10).await?;
    let ours = "SELECT count(*) FROM ltf_outbox WHERE sent_at IS NOT NULL";
    let total = count(&db.pool, "SELECT count(*) FROM ltf_outbox").await?;

    // The relay over SASL_SSL, then over mTLS, as the principal `relay`.
    for listener in ["sasl", "mtls"] {
        let mut relay =
            spawn(ltf(&settings("relay", listener)?), &db, &["relay", "--listen", "127.0.0.1:0", "--partitions", "3"])?;
        let before = count(&db.pool, ours).await?;
        if before == total {
            records(&db, 5).await?;
        }
        let want = count(&db.pool, "SELECT count(*) FROM ltf_outbox").await?;
        wait_count(&db.pool, ours, want, 60, &mut relay, &format!("the relay over {listener}")).await?;
    }
    let ids: HashSet<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM ltf_outbox WHERE topic LIKE '%.table.events'")
        .fetch_all(&db.pool)
        .await?
        .into_iter()
        .collect();

    // The audit worker over mTLS and the analytics worker over SASL_SSL, each as itself.
    let mut audit = spawn(ltf(&settings("audit", "mtls")?), &db, &["worker", "audit", "--listen", "127.0.0.1:0"])?;
    let mut analytics = spawn(ltf(&settings("analytics", "sasl")?), &db, &["worker", "analytics", "--listen", "127.0.0.1:0"])?;
    let id_list: Vec<uuid::Uuid> = ids.iter().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM ltf_event_log WHERE event_id = ANY($1)")
            .bind(&id_list)
            .fetch_one(&db.pool)
            .await?;
        if logged == id_list.len() as i64 {
            break;
        }
        ensure!(audit.0.try_wait()?.is_none(), "the audit worker over mTLS exited");
        ensure!(Instant::now() < deadline, "the audit worker over mTLS logged {logged} of {} events", id_list.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_count(
        &db.pool,
        "SELECT count(*) FROM ltf_analytics_rollups",
        1,
        60,
        &mut analytics,
        "the analytics worker over SASL_SSL",
    )
    .await?;

    // The CLI as the admin over mTLS and SASL_SSL.
    let status = run_ok(ltf(&admin_mtls).args(["status"]))?;
    ensure!(status.contains(&format!("{PREFIX}.audit")), "ltf status over mTLS shows the audit group: {status}");
    run_ok(ltf(&admin_sasl).args(["dlq", "list"]))?;
    drop((audit, analytics));
    db.drop_database().await
}

/// Runs `ltf topics ensure` with `vars` and checks it fails within 15 s naming `key`,
/// without printing `secret`.
fn fails_naming(vars: &BTreeMap<String, String>, key: &str, secret: Option<&str>) -> Result<()> {
    let started = Instant::now();
    let out = run(ltf(vars).args(["topics", "ensure", "--partitions", "3"]))?;
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "expected a failure naming {key}; it succeeded");
    ensure!(took < Duration::from_secs(15), "failed only after {took:?}: {stderr}");
    ensure!(stderr.contains(key), "the error names {key}: {stderr}");
    if let Some(secret) = secret {
        ensure!(!stderr.contains(secret) && !String::from_utf8_lossy(&out.stdout).contains(secret), "the secret was printed");
    }
    Ok(())
}

#[test]
fn a_wrong_password_an_untrusted_ca_a_missing_certificate_and_a_plaintext_client_fail_fast_naming_the_setting() -> Result<()> {
    let dir = secure_dir()?;
    let wrong = std::env::temp_dir().join(format!("ltf-wrong-password-{}", std::process::id()));
    std::fs::write(&wrong, "not-the-password-9f8e7d")?;
    let mut vars = settings("relay", "sasl")?;
    vars.insert("LTF_KAFKA_SASL_PASSWORD_FILE".into(), wrong.display().to_string());
    fails_naming(&vars, "LTF_KAFKA_SASL_PASSWORD", Some("not-the-password-9f8e7d"))?;
    // The same wrong password given in the variable itself.
    vars.remove("LTF_KAFKA_SASL_PASSWORD_FILE");
    vars.insert("LTF_KAFKA_SASL_PASSWORD".into(), "not-the-password-9f8e7d".into());
    fails_naming(&vars, "LTF_KAFKA_SASL_PASSWORD", Some("not-the-password-9f8e7d"))?;
    std::fs::remove_file(&wrong)?;

    let mut vars = settings("relay", "sasl")?;
    vars.insert("LTF_KAFKA_SSL_CA_LOCATION".into(), dir.join("tls/untrusted-ca.pem").display().to_string());
    fails_naming(&vars, "LTF_KAFKA_SSL_CA_LOCATION", None)?;

    let mut vars = settings("relay", "mtls")?;
    vars.remove("LTF_KAFKA_SSL_CERTIFICATE_LOCATION");
    vars.remove("LTF_KAFKA_SSL_KEY_LOCATION");
    fails_naming(&vars, "LTF_KAFKA_SSL_CERTIFICATE_LOCATION", None)?;

    let sasl = settings("relay", "sasl")?;
    let plaintext: BTreeMap<String, String> =
        sasl.iter().filter(|(k, _)| *k == "LTF_KAFKA_BOOTSTRAP").map(|(k, v)| (k.clone(), v.clone())).collect();
    fails_naming(&plaintext, "LTF_KAFKA_SECURITY_PROTOCOL", None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_principal_cannot_write_to_an_event_topic() -> Result<()> {
    let admin = settings("admin", "sasl")?;
    run_ok(ltf(&admin).args(["topics", "ensure", "--partitions", "3"]))?;
    let audit = settings("audit", "sasl")?;
    let password = std::fs::read_to_string(&audit["LTF_KAFKA_SASL_PASSWORD_FILE"])?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &audit["LTF_KAFKA_BOOTSTRAP"])
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", "audit")
        .set("sasl.password", password.trim())
        .set("ssl.ca.location", &audit["LTF_KAFKA_SSL_CA_LOCATION"])
        .set("message.timeout.ms", "10000")
        .create()?;
    let topic = format!("{PREFIX}.table.events");
    let sent = producer.send(FutureRecord::<str, str>::to(&topic).key("k").payload("forged"), Duration::from_secs(10)).await;
    let Err((e, _)) = sent else { bail!("the audit worker's principal wrote to {topic}") };
    ensure!(
        e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed),
        "refused for lack of rights, got: {e}"
    );
    Ok(())
}

/// A SASL_SSL client of `principal` for reading metadata.
fn metadata_client(principal: &str) -> Result<BaseConsumer> {
    let vars = settings(principal, "sasl")?;
    let password = std::fs::read_to_string(&vars["LTF_KAFKA_SASL_PASSWORD_FILE"])?;
    Ok(ClientConfig::new()
        .set("bootstrap.servers", &vars["LTF_KAFKA_BOOTSTRAP"])
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", principal)
        .set("sasl.password", password.trim())
        .set("ssl.ca.location", &vars["LTF_KAFKA_SSL_CA_LOCATION"])
        .create()?)
}

#[test]
fn event_topics_ensured_without_a_replication_factor_take_the_clusters_default() -> Result<()> {
    let admin = settings("admin", "sasl")?;
    run_ok(ltf(&admin).args(["topics", "ensure", "--partitions", "3"]))?;
    let client = metadata_client("admin")?;
    let topic = format!("{PREFIX}.table.events");
    let md = client.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
    // The secured stack's default.replication.factor: 1 on one node, 3 on three.
    let want = md.brokers().len().min(3);
    let t = md.topics().first().context("no metadata for the topic")?;
    ensure!(!t.partitions().is_empty(), "{topic} has no partitions");
    for p in t.partitions() {
        ensure!(
            p.replicas().len() == want,
            "{topic} partition {} has {} replicas on a cluster of {} brokers whose default is {want}",
            p.id(),
            p.replicas().len(),
            md.brokers().len()
        );
    }
    Ok(())
}
