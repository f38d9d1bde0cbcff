//! Realistic events for the demo and the benchmarks: a no-code workspace's day.

use ltf_schemas::fields::Fields;
use ltf_schemas::{
    ActionExecuted, ActionResult, AutomationTriggered, ConnectionEstablished, DomainEvent, EventPayload, FormSubmitted,
    RecordCreated, RecordDeleted, RecordUpdated,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use uuid::Uuid;

const FIRST: [&str; 8] = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken"];
const LAST: [&str; 8] = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"];
const STATUS: [&str; 4] = ["Todo", "In progress", "Blocked", "Done"];
const SERVICES: [&str; 5] = ["github", "google-sheets", "slack", "stripe", "hubspot"];
const CITIES: [&str; 5] = ["Paris", "Lyon", "Berlin", "Lisbon", "Montreal"];

/// A seeded generator, so runs are comparable.
#[derive(Debug)]
pub struct Sampler {
    rng: StdRng,
    tables: Vec<String>,
}

fn id(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::new_v4().simple())
}

impl Sampler {
    pub fn new(seed: u64, tables: usize) -> Sampler {
        Sampler { rng: StdRng::seed_from_u64(seed), tables: (0..tables.max(1)).map(|_| id("tbl")).collect() }
    }

    fn pick<'a>(&mut self, xs: &'a [&'a str]) -> &'a str {
        xs[self.rng.random_range(0..xs.len())]
    }

    /// A contact/deal record's fields: scalars of every type, an array and an object.
    pub fn fields(&mut self) -> Fields {
        let first = self.pick(&FIRST);
        let last = self.pick(&LAST);
        let v = json!({
            "name": format!("{first} {last}"),
            "email": format!("{}.{}@example.com", first.to_lowercase(), last.to_lowercase()),
            "status": self.pick(&STATUS),
            "amount": (self.rng.random_range(100..1_000_000) as f64) / 100.0,
            "quantity": self.rng.random_range(1..500),
            "active": self.rng.random_bool(0.8),
            "dueDate": if self.rng.random_bool(0.3) { Value::Null } else { json!("2026-12-01") },
            "tags": ["customer", self.pick(&["vip", "trial", "churn-risk"])],
            "address": {"city": self.pick(&CITIES), "zip": format!("{:05}", self.rng.random_range(1000..99999))},
            "notes": "Met at the conference; follow up about the annual plan and the onboarding.",
        });
        v.as_object().cloned().unwrap_or_default()
    }

    pub fn table(&mut self) -> String {
        let i = self.rng.random_range(0..self.tables.len());
        self.tables[i].clone()
    }

    /// A RecordUpdated event with realistic before/after fields.
    pub fn record_updated(&mut self) -> DomainEvent {
        let previous = self.fields();
        let mut current = previous.clone();
        let status = self.pick(&STATUS);
        current.insert("status".into(), json!(status));
        current.insert("amount".into(), json!((self.rng.random_range(100..1_000_000) as f64) / 100.0));
        let changed =
            ["amount", "status"].iter().filter(|k| previous.get(**k) != current.get(**k)).map(|k| k.to_string()).collect();
        DomainEvent::new(EventPayload::RecordUpdated(RecordUpdated {
            table_id: self.table(),
            record_id: id("rec"),
            record_version: self.rng.random_range(2..20),
            previous_fields: previous.into(),
            current_fields: current.into(),
            changed_fields: changed,
        }))
    }

    /// One user story, as the events it causes, in causal order: a form submission that
    /// becomes a record, which triggers an automation whose actions run; sometimes the
    /// record is then edited or deleted; sometimes a connection is authenticated; now and
    /// then a legacy (v1) producer writes a record.
    pub fn story(&mut self) -> Vec<DomainEvent> {
        let mut out = Vec::with_capacity(8);
        let table_id = self.table();
        let record_id = id("rec");
        let fields = self.fields();
        let user = format!("user_{}", self.rng.random_range(1..50));
        let form = DomainEvent::new(EventPayload::FormSubmitted(FormSubmitted {
            form_id: format!("form_{}", self.rng.random_range(1..6)),
            submission_id: id("sub"),
            data: fields.clone().into(),
            submitted_by: self.rng.random_bool(0.7).then(|| user.clone()),
        }));
        let created = DomainEvent::new(EventPayload::RecordCreated(RecordCreated {
            table_id: table_id.clone(),
            record_id: record_id.clone(),
            record_version: 1,
            fields: fields.clone().into(),
            created_by: Some(user.clone()),
        }))
        .caused_by(&form);
        let automation_id = format!("auto_{}", self.rng.random_range(1..4));
        let run_id = Uuid::new_v4().to_string();
        let triggered = DomainEvent::new(EventPayload::AutomationTriggered(AutomationTriggered {
            automation_id: automation_id.clone(),
            trigger_id: "trg_record_created".into(),
            trigger_data: fields.clone().into(),
            run_id: run_id.clone(),
        }))
        .caused_by(&created);
        let ok = self.rng.random_bool(0.9);
        let action = DomainEvent::new(EventPayload::ActionExecuted(ActionExecuted {
            automation_id,
            action_id: "act_send_email".into(),
            run_id,
            result: if ok { ActionResult::Success } else { ActionResult::Failure },
            data: ok.then(|| json!({"messageId": id("msg"), "recipients": 1}).as_object().cloned().unwrap_or_default().into()),
            error: (!ok).then(|| "SMTP 451: try again later".to_owned()),
        }))
        .caused_by(&triggered);
        out.extend([form, created.clone(), triggered, action]);
        if self.rng.random_bool(0.5) {
            let mut current = fields.clone();
            current.insert("status".into(), json!("Done"));
            out.push(DomainEvent::new(EventPayload::RecordUpdated(RecordUpdated {
                table_id: table_id.clone(),
                record_id: record_id.clone(),
                record_version: 2,
                previous_fields: fields.clone().into(),
                current_fields: current.clone().into(),
                changed_fields: vec!["status".into()],
            })));
            if self.rng.random_bool(0.3) {
                out.push(DomainEvent::new(EventPayload::RecordDeleted(RecordDeleted {
                    table_id: table_id.clone(),
                    record_id,
                    record_version: 3,
                    deleted_fields: current.into(),
                })));
            }
        }
        if self.rng.random_bool(0.2) {
            out.push(DomainEvent::new(EventPayload::ConnectionEstablished(ConnectionEstablished {
                connection_id: id("conn"),
                service: self.pick(&SERVICES).to_owned(),
                user_id: user,
            })));
        }
        if self.rng.random_bool(0.2) {
            out.push(
                DomainEvent::new(EventPayload::RecordCreated(RecordCreated {
                    table_id,
                    record_id: id("rec"),
                    record_version: 1,
                    fields: self.fields().into(),
                    created_by: None,
                }))
                .with_version(1),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ltf_schemas::EventType;
    use std::collections::BTreeSet;

    #[test]
    fn stories_cover_every_event_type_and_both_record_created_versions() {
        let mut s = Sampler::new(1, 3);
        let events: Vec<_> = (0..200).flat_map(|_| s.story()).collect();
        let types: BTreeSet<_> = events.iter().map(|e| e.event_type()).collect();
        assert_eq!(types.len(), EventType::ALL.len());
        let versions: BTreeSet<_> =
            events.iter().filter(|e| e.event_type() == EventType::RecordCreated).map(|e| e.envelope.version).collect();
        assert_eq!(versions, BTreeSet::from([1, 2]));
    }
}
