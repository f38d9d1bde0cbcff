//! The `ltf` binaries against the secured Kafka (`scripts/stack up --secure`: SASL_SSL and
//! mTLS listeners only, StandardAuthorizer, least-privilege ACLs on the topic prefix
//! `latechforce`), each process with its own principal's settings
//! (`<secure stack dir>/clients/<principal>-{sasl,mtls}.env`):
//! * the relay and every worker (audit, analytics, cache, automation) do their work over
//!   SASL_SSL and then over mTLS, and the CLI (`topics`, `status`, `dlq`) works as the
//!   admin over both;
//! * `ltf topics ensure` without a replication factor takes the cluster's default (3 on
//!   the three nodes `scripts/test` starts);
//! * a wrong password, an untrusted CA, a client without a certificate and a plaintext
//!   client each fail within 15 s naming the setting, and no secret is printed;
//! * a worker's principal cannot write to an event topic.
//!
//! The ACLs name the topic prefix, so these tests share `latechforce`'s topics: each one
//! writes its own table and checks its own events.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ltf_domain::automations::Automation;
use ltf_domain::store::tables::{self, FieldDef, FieldType, TableDef};
use ltf_domain::usecases::{CreateAutomation, CreateMultipleRecordsInput};
use ltf_domain::{ChangeContext, CreateMultipleRecords, RecordLimits, UseCase};
use ltf_schemas::{EventCodec, TopicNames};
use ltf_tests::{fresh_database, redis_key_count, registry_url, TestDb};
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

/// One run's tables: records written to `source` trigger an automation that writes one
/// record to `log` each. Unique names: the secured stack's topics are shared.
struct Tables {
    source: String,
    log: String,
}

impl Tables {
    async fn create(db: &TestDb) -> Result<Tables> {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let t = Tables { source: format!("sec_{tag}"), log: format!("sec_log_{tag}") };
        for (id, field) in [(&t.source, "title"), (&t.log, "src")] {
            let def = TableDef { id: id.clone(), name: id.clone(), fields: vec![FieldDef::new(field, FieldType::Text)] };
            tables::insert(&mut *db.pool.acquire().await?, &def).await?;
        }
        let automation: Automation = serde_json::from_value(json!({
            "id": format!("log-{}", t.source), "name": "Log each record",
            "trigger": {"event": "record-created", "tableId": t.source},
            "actions": [{"id": "log", "type": "create_record", "tableId": t.log, "fields": {"src": "{{recordId}}"}}]
        }))?;
        CreateAutomation.run(&db.pool, &codec()?, &ChangeContext::user("sec"), automation).await?;
        Ok(t)
    }

    /// `n` records created in the source table: their events are in the outbox.
    async fn records(&self, db: &TestDb, n: usize) -> Result<()> {
        let input = CreateMultipleRecordsInput {
            table_id: self.source.clone(),
            records: (0..n).map(|i| json!({"title": format!("secured {i}")}).as_object().cloned().unwrap_or_default()).collect(),
        };
        CreateMultipleRecords::new(RecordLimits::default()).run(&db.pool, &codec()?, &ChangeContext::user("sec"), input).await?;
        Ok(())
    }
}

fn codec() -> Result<EventCodec> {
    Ok(EventCodec::new(&registry_url(), TopicNames::new(PREFIX))?)
}

/// `sql` with `$1` bound to `arg`, a count.
async fn count(pool: &PgPool, sql: &str, arg: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(sql).bind(arg).fetch_one(pool).await?)
}

/// What each process has done so far, read from its own store.
#[derive(Debug)]
struct Progress {
    /// The relay: outbox rows marked sent, of all rows.
    sent: i64,
    rows: i64,
    /// The audit worker: outbox rows whose event it logged.
    audited: i64,
    /// The analytics worker: records counted as created in the source table.
    counted: i64,
    /// The cache worker: source records in Redis.
    cached: i64,
    /// The automation worker: records its runs wrote to the log table.
    logged: i64,
}

impl Progress {
    async fn read(db: &TestDb, t: &Tables, cache_prefix: &str) -> Result<Progress> {
        let p = &db.pool;
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM ltf_outbox").fetch_one(p).await?;
        let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM ltf_outbox WHERE sent_at IS NOT NULL").fetch_one(p).await?;
        let audited: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM ltf_outbox o WHERE EXISTS (SELECT 1 FROM ltf_event_log l WHERE l.event_id = o.event_id)",
        )
        .fetch_one(p)
        .await?;
        let counted = count(
            p,
            "SELECT coalesce(sum(value), 0)::bigint FROM ltf_analytics_rollups
             WHERE dimension = 'table' AND key = $1 AND metric = 'records_created'",
            &t.source,
        )
        .await?;
        let cached = redis_key_count(&format!("{cache_prefix}:record:{}:*", t.source)).await? as i64;
        let logged = count(p, "SELECT count(*) FROM ltf_records WHERE table_id = $1", &t.log).await?;
        Ok(Progress { sent, rows, audited, counted, cached, logged })
    }

    /// Every stage has done all of `written` source records (and the relay and the audit
    /// worker every outbox row, the automation's own events included).
    fn done(&self, written: i64) -> bool {
        self.sent == self.rows && self.audited == self.rows && [self.counted, self.cached, self.logged] == [written; 3]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_every_worker_and_the_cli_work_over_sasl_ssl_and_over_mtls_each_as_its_own_principal() -> Result<()> {
    let admin_sasl = settings("admin", "sasl")?;
    let admin_mtls = settings("admin", "mtls")?;
    let out = run_ok(ltf(&admin_sasl).args(["topics", "ensure", "--partitions", "3"]))?;
    ensure!(out.contains(&format!("{PREFIX}.table.events")), "topics ensure as the admin over SASL_SSL: {out}");

    let db = fresh_database().await?;
    let t = Tables::create(&db).await?;
    let cache_prefix = format!("ltf-sec-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut written = 0;
    // Each round: new records, then the relay and the four workers over one listener,
    // each as its own principal, until every stage has done every record.
    for listener in ["sasl", "mtls"] {
        t.records(&db, 5).await?;
        written += 5;
        let relay = spawn(ltf(&settings("relay", listener)?), &db, &["relay", "--listen", "127.0.0.1:0", "--partitions", "3"])?;
        let mut procs = vec![("relay", relay)];
        for w in ["audit", "analytics", "cache", "automation"] {
            let mut cmd = ltf(&settings(w, listener)?);
            cmd.env("LTF_CACHE_KEY_PREFIX", &cache_prefix);
            let args = ["worker", w, "--listen", "127.0.0.1:0", "--session-timeout-ms", "6000"];
            procs.push((w, spawn(cmd, &db, &args)?));
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let progress = Progress::read(&db, &t, &cache_prefix).await?;
            if progress.done(written) {
                break;
            }
            for (name, child) in procs.iter_mut() {
                if let Some(status) = child.0.try_wait()? {
                    bail!("{name} over {listener} exited ({status}); {progress:?}");
                }
            }
            ensure!(Instant::now() < deadline, "over {listener} after 120 s: {progress:?}, {written} source records written");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // The CLI as the admin over mTLS and SASL_SSL.
    let status = run_ok(ltf(&admin_mtls).args(["status"]))?;
    ensure!(status.contains(&format!("{PREFIX}.audit")), "ltf status over mTLS shows the audit group: {status}");
    run_ok(ltf(&admin_sasl).args(["dlq", "list"]))?;
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
    let producer: FutureProducer = sasl_client("audit")?.set("message.timeout.ms", "10000").create()?;
    let topic = format!("{PREFIX}.table.events");
    let sent = producer.send(FutureRecord::<str, str>::to(&topic).key("k").payload("forged"), Duration::from_secs(10)).await;
    let Err((e, _)) = sent else { bail!("the audit worker's principal wrote to {topic}") };
    ensure!(
        e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed),
        "refused for lack of rights, got: {e}"
    );
    Ok(())
}

/// The settings of a plain rust-rdkafka client of `principal` over SASL_SSL.
fn sasl_client(principal: &str) -> Result<ClientConfig> {
    let vars = settings(principal, "sasl")?;
    let password = std::fs::read_to_string(&vars["LTF_KAFKA_SASL_PASSWORD_FILE"])?;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &vars["LTF_KAFKA_BOOTSTRAP"])
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", principal)
        .set("sasl.password", password.trim())
        .set("ssl.ca.location", &vars["LTF_KAFKA_SSL_CA_LOCATION"]);
    Ok(config)
}

#[test]
fn event_topics_ensured_without_a_replication_factor_take_the_clusters_default() -> Result<()> {
    let admin = settings("admin", "sasl")?;
    run_ok(ltf(&admin).args(["topics", "ensure", "--partitions", "3"]))?;
    let client: BaseConsumer = sasl_client("admin")?.create()?;
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
