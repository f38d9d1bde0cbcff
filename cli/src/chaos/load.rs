//! The mixed load a chaos run drives through the API: tables, records created, updated
//! and deleted singly and in batches, form submissions, and automations with webhook,
//! notify, create_record and update_record actions calling a local receiver. It keeps
//! what the API accepted (its eventIds and record versions), the ground truth the checks
//! compare the stores with.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use super::ground::{Accepted, ChangeKind};

/// The API as the load calls it.
#[derive(Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// What the load did: requests by outcome, and what the API accepted.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests by outcome (`201`, `503`, `error`, …).
    pub outcomes: BTreeMap<String, u64>,
    /// eventIds of every write the API accepted.
    pub events: Vec<Uuid>,
    /// Record changes the API accepted.
    pub changes: Vec<Accepted>,
}

/// The model a run's load writes to: its table, form and automation ids.
#[derive(Debug, Clone)]
pub struct Model {
    tasks: String,
    contacts: String,
    log: String,
    form: String,
}

impl Api {
    /// The API at `base` with `key`.
    pub fn new(base: &str, key: &str) -> Api {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Api { http, base: base.trim_end_matches('/').to_owned(), key: key.to_owned() }
    }

    async fn call(&self, method: Method, path: &str, body: Value) -> Result<(StatusCode, Value)> {
        let r = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key).json(&body).send().await?;
        let status = r.status();
        let text = r.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Sets up the model (run `run`): tables, a form and four automations whose webhook
    /// and notify actions call `receiver` (`http://host:port`).
    pub async fn model(&self, run: &str, receiver: &str) -> Result<Model> {
        let m = Model {
            tasks: format!("tasks_{run}"),
            contacts: format!("contacts_{run}"),
            log: format!("log_{run}"),
            form: format!("signup_{run}"),
        };
        let text = |n: &str| json!({"name": n, "type": "text"});
        let setup = [
            ("/v1/tables", json!({"id": m.tasks, "name": "Tasks", "fields": [text("title"), text("status")]})),
            ("/v1/tables", json!({"id": m.contacts, "name": "Contacts", "fields": [text("name"), text("email")]})),
            ("/v1/tables", json!({"id": m.log, "name": "Log", "fields": [text("task"), text("note")]})),
            (
                "/v1/forms",
                json!({"id": m.form, "name": "Sign up", "tableId": m.contacts, "fields": [text("name"), text("email")]}),
            ),
            (
                "/v1/automations",
                json!({"id": format!("hook_{run}"), "name": "New tasks to the receiver",
                    "trigger": {"event": "record-created", "tableId": m.tasks},
                    "actions": [{"id": "hook", "type": "webhook", "url": format!("{receiver}/hook"), "body": {"task": "{{recordId}}"}}]}),
            ),
            (
                "/v1/automations",
                json!({"id": format!("welcome_{run}"), "name": "Announce contacts",
                    "trigger": {"event": "record-created", "tableId": m.contacts},
                    "actions": [{"id": "tell", "type": "notify", "message": "New contact {{fields.name}}"}]}),
            ),
            (
                "/v1/automations",
                json!({"id": format!("done_{run}"), "name": "Log finished tasks",
                    "trigger": {"event": "record-updated", "tableId": m.tasks,
                                "conditions": [{"field": "status", "op": "changedTo", "value": "done"}]},
                    "actions": [{"id": "log", "type": "create_record", "tableId": m.log, "fields": {"task": "{{recordId}}", "note": "done"}}]}),
            ),
            (
                "/v1/automations",
                json!({"id": format!("seen_{run}"), "name": "Mark log entries seen",
                    "trigger": {"event": "record-created", "tableId": m.log},
                    "actions": [{"id": "seen", "type": "update_record", "tableId": m.log, "recordId": "{{recordId}}", "fields": {"note": "seen"}}]}),
            ),
        ];
        for (path, body) in setup {
            let (status, answer) = self.call(Method::POST, path, body).await?;
            ensure!(status == StatusCode::CREATED, "setting up {path}: {status} {answer}");
        }
        Ok(m)
    }

    /// Drives the load with `concurrency` clients until `until`, at most `rate` requests
    /// per second in all (each client paced to its share); client `i` draws its
    /// operations from `seed + i`.
    pub async fn drive(&self, m: &Model, concurrency: usize, rate: f64, seed: u64, until: Instant) -> Tally {
        let tally = Mutex::new(Tally::default());
        let live: Mutex<Vec<(String, i64)>> = Mutex::new(Vec::new());
        let clients = concurrency.max(1);
        let every = Duration::from_secs_f64(clients as f64 / rate.max(0.1));
        let clients = (0..clients).map(|i| {
            let (tally, live) = (&tally, &live);
            async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(i as u64));
                let mut pace = tokio::time::interval(every);
                pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while Instant::now() < until {
                    pace.tick().await;
                    let op = rng.random_range(0..100);
                    let outcome = self.step(m, op, &mut rng, live).await;
                    let mut t = tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let label = match outcome {
                        Ok((status, events, changes)) => {
                            if status.is_success() {
                                t.events.extend(events);
                                t.changes.extend(changes);
                            }
                            status.as_u16().to_string()
                        }
                        Err(_) => "error".to_owned(),
                    };
                    *t.outcomes.entry(label).or_default() += 1;
                }
            }
        });
        futures::future::join_all(clients).await;
        tally.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One operation, picked by `op` (0..100): create one task (30), create a batch (10),
    /// update a task (25), delete one (10), delete a batch (5), submit the form (20).
    async fn step(
        &self,
        m: &Model,
        op: u32,
        rng: &mut StdRng,
        live: &Mutex<Vec<(String, i64)>>,
    ) -> Result<(StatusCode, Vec<Uuid>, Vec<Accepted>)> {
        let pick = |rng: &mut StdRng, n: usize| -> Vec<(String, i64)> {
            let mut l = live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut out = Vec::new();
            for _ in 0..n.min(l.len()) {
                let i = rng.random_range(0..l.len());
                out.push(l.swap_remove(i));
            }
            out
        };
        let tasks = &m.tasks;
        let (method, path, body, kind, taken) = match op {
            0..30 => (
                Method::POST,
                format!("/v1/tables/{tasks}/records"),
                json!({"fields": {"title": format!("t{}", rng.random::<u32>()), "status": "open"}}),
                ChangeKind::Created,
                Vec::new(),
            ),
            30..40 => {
                let records: Vec<Value> =
                    (0..3).map(|_| json!({"fields": {"title": format!("t{}", rng.random::<u32>()), "status": "open"}})).collect();
                (
                    Method::POST,
                    format!("/v1/tables/{tasks}/records/batch"),
                    json!({"records": records}),
                    ChangeKind::Created,
                    Vec::new(),
                )
            }
            40..65 => {
                let taken = pick(rng, 1);
                let Some((id, _)) = taken.first() else { return Ok((StatusCode::NO_CONTENT, Vec::new(), Vec::new())) };
                let fields = if rng.random_bool(0.4) {
                    json!({"status": "done"})
                } else {
                    json!({"title": format!("t{}", rng.random::<u32>()), "status": "open"})
                };
                (Method::PATCH, format!("/v1/tables/{tasks}/records/{id}"), json!({"fields": fields}), ChangeKind::Updated, taken)
            }
            65..75 => {
                let taken = pick(rng, 1);
                let Some((id, _)) = taken.first() else { return Ok((StatusCode::NO_CONTENT, Vec::new(), Vec::new())) };
                (Method::DELETE, format!("/v1/tables/{tasks}/records/{id}"), json!({}), ChangeKind::Deleted, taken)
            }
            75..80 => {
                let taken = pick(rng, 2);
                if taken.is_empty() {
                    return Ok((StatusCode::NO_CONTENT, Vec::new(), Vec::new()));
                }
                let refs: Vec<Value> = taken.iter().map(|(id, _)| json!({"id": id})).collect();
                (Method::POST, format!("/v1/tables/{tasks}/records/delete"), json!({"records": refs}), ChangeKind::Deleted, taken)
            }
            _ => {
                let n = rng.random::<u32>();
                let body = json!({"data": {"name": format!("Person {n}"), "email": format!("p{n}@example.com")}});
                let (status, answer) = self.call(Method::POST, &format!("/v1/forms/{}/submissions", m.form), body).await?;
                return Ok((status, event_ids(&answer), Vec::new()));
            }
        };
        let result = self.call(method, &path, body).await;
        let (status, answer) = match result {
            Ok(r) => r,
            Err(e) => {
                // Unknown outcome: the record may have changed; it leaves the live set.
                return Err(e);
            }
        };
        let written: Vec<&Value> = match (answer.get("record"), answer.get("records")) {
            (Some(r), _) => vec![r],
            (None, Some(Value::Array(rs))) => rs.iter().collect(),
            _ => Vec::new(),
        };
        let mut changes = Vec::new();
        if status.is_success() {
            let mut l = live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for r in written {
                let (Some(id), Some(version)) = (r["id"].as_str(), r["version"].as_i64()) else { continue };
                changes.push(Accepted { table_id: m.tasks.clone(), record_id: id.to_owned(), version, kind });
                if kind != ChangeKind::Deleted {
                    l.push((id.to_owned(), version));
                }
            }
        } else {
            // Refused: the records taken are as they were.
            live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(taken);
        }
        Ok((status, event_ids(&answer), changes))
    }
}

fn event_ids(answer: &Value) -> Vec<Uuid> {
    answer["eventIds"]
        .as_array()
        .map_or_else(Vec::new, |ids| ids.iter().filter_map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_read_from_any_write_answer() {
        let id = Uuid::new_v4();
        assert_eq!(event_ids(&json!({"eventIds": [id.to_string(), "nope"]})), vec![id]);
        assert!(event_ids(&json!({"error": {}})).is_empty());
    }
}
