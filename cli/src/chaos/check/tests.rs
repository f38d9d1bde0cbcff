//! Unit tests of the checks' pure helpers.

use super::*;
use ltf_schemas::{ActionExecuted, ActionResult, ConnectionEstablished, RecordCreated, RecordDeleted, RecordUpdated};
use ltf_workers::cache::CachedRecord;
use serde_json::json;

fn fields(v: Value) -> Fields {
    match v {
        Value::Object(m) => m,
        _ => Fields::new(),
    }
}

fn created(table: &str, record: &str) -> DomainEvent {
    DomainEvent::new(EventPayload::RecordCreated(RecordCreated {
        table_id: table.into(),
        record_id: record.into(),
        record_version: 1,
        fields: Fields::new().into(),
        created_by: None,
    }))
}

fn updated(table: &str, record: &str, version: i64) -> DomainEvent {
    DomainEvent::new(EventPayload::RecordUpdated(RecordUpdated {
        table_id: table.into(),
        record_id: record.into(),
        record_version: version,
        previous_fields: Fields::new().into(),
        current_fields: Fields::new().into(),
        changed_fields: Vec::new(),
    }))
}

fn deleted(table: &str, record: &str, version: i64) -> DomainEvent {
    DomainEvent::new(EventPayload::RecordDeleted(RecordDeleted {
        table_id: table.into(),
        record_id: record.into(),
        record_version: version,
        deleted_fields: Fields::new().into(),
    }))
}

fn accepted(record: &str, version: i64, kind: ChangeKind) -> Accepted {
    Accepted { table_id: "tbl".into(), record_id: record.into(), version, kind }
}

#[test]
fn out_of_order_counts_the_events_out_of_place() {
    assert_eq!(out_of_order(&[]), 0);
    assert_eq!(out_of_order(&[1, 2, 3]), 0);
    assert_eq!(out_of_order(&[1, 3, 2]), 1);
    assert_eq!(out_of_order(&[5, 1, 2, 3, 4]), 1, "one event early is one out of place");
    assert_eq!(out_of_order(&[2, 3, 4, 5, 1]), 1, "one event late is one out of place");
    assert_eq!(out_of_order(&[3, 2, 1]), 2);
    assert_eq!(out_of_order(&[2, 1, 4, 3]), 2);
    assert_eq!(out_of_order(&[1, 1, 2]), 0, "equal sequences are not an inversion");
}

#[test]
fn ordering_keys_name_a_record_a_run_or_an_aggregate() {
    assert_eq!(ordering_kind(&updated("tbl", "r1", 2)), "record");
    let action = DomainEvent::new(EventPayload::ActionExecuted(ActionExecuted {
        automation_id: "auto".into(),
        action_id: "a".into(),
        run_id: "run-1".into(),
        result: ActionResult::Success,
        data: None,
        error: None,
    }));
    assert_eq!(ordering_kind(&action), "run");
    let connection = DomainEvent::new(EventPayload::ConnectionEstablished(ConnectionEstablished {
        connection_id: "c".into(),
        service: "github".into(),
        user_id: "u".into(),
    }));
    assert_eq!(ordering_kind(&connection), "connection");
}

#[test]
fn lines_keep_a_few_and_count_the_rest() {
    let mut lines = Lines::new("audit");
    for i in 0..8 {
        lines.push(i);
    }
    let mut problems = vec!["before".to_owned()];
    lines.into_problems(&mut problems);
    assert_eq!(problems.len(), 1 + LINES_PER_CHECK + 1);
    assert_eq!(problems[1], "audit: 0");
    assert_eq!(problems.last().map(String::as_str), Some("audit: … and 3 more"));

    let mut quiet = Vec::new();
    Lines::new("lag").into_problems(&mut quiet);
    assert!(quiet.is_empty());
}

fn row(sent: bool, parked: bool, skipped: bool) -> OutboxRow {
    let at = Some(Utc::now());
    OutboxRow {
        id: 1,
        event_id: Uuid::nil(),
        event_type: "record-created".into(),
        aggregate_id: "tbl".into(),
        aggregate_sequence: 1,
        sent_at: at.filter(|_| sent),
        parked_at: at.filter(|_| parked),
        park_reason: None,
        skipped_at: at.filter(|_| skipped),
    }
}

#[test]
fn outbox_rows_are_published_unsent_parked_skipped_or_missing() {
    assert_eq!(row_state(&row(true, false, false), true), RowState::Published);
    assert_eq!(row_state(&row(true, false, false), false), RowState::Missing);
    assert_eq!(row_state(&row(false, false, false), false), RowState::Unsent);
    assert_eq!(row_state(&row(false, false, false), true), RowState::Unsent, "published but not marked: the relay left it");
    assert_eq!(row_state(&row(false, true, false), false), RowState::Parked);
    assert_eq!(row_state(&row(false, true, true), false), RowState::Skipped);
}

#[test]
fn an_accepted_change_needs_its_event_of_the_same_type_record_and_version() {
    // The API answers a deletion with the version deleted; its event carries one above.
    let events = [created("tbl", "r1"), updated("tbl", "r1", 2), deleted("tbl", "r2", 5)];
    let mut v = Verdict::default();
    let changes = [
        accepted("r1", 1, ChangeKind::Created),
        accepted("r1", 2, ChangeKind::Updated),
        accepted("r2", 4, ChangeKind::Deleted),
        accepted("r1", 3, ChangeKind::Updated),
        accepted("r2", 5, ChangeKind::Deleted),
    ];
    check_accepted(&changes, events.iter(), &mut v);
    assert_eq!(v.lost, 2);
    assert_eq!(v.problems.len(), 2);
    assert!(v.problems[0].contains("record-updated of tbl/r1 v3"), "{:?}", v.problems);
}

#[test]
fn rollups_expected_per_counter_with_zeros_for_the_other_metrics() {
    let action = DomainEvent::new(EventPayload::ActionExecuted(ActionExecuted {
        automation_id: "auto".into(),
        action_id: "a".into(),
        run_id: "r".into(),
        result: ActionResult::Success,
        data: None,
        error: None,
    }));
    let connection = DomainEvent::new(EventPayload::ConnectionEstablished(ConnectionEstablished {
        connection_id: "c".into(),
        service: "github".into(),
        user_id: "u".into(),
    }));
    let events = [created("tbl", "r1"), created("tbl", "r2"), updated("tbl", "r1", 2), action, connection];
    let expected = expected_rollups(events.iter());
    let get = |d: &str, k: &str, m: &str| expected.get(&(d.to_owned(), k.to_owned(), m.to_owned())).copied();
    assert_eq!(get("table", "tbl", "records_created"), Some(2));
    assert_eq!(get("table", "tbl", "records_updated"), Some(1));
    assert_eq!(get("table", "tbl", "records_deleted"), Some(0));
    assert_eq!(get("automation", "auto", "actions_succeeded"), Some(1));
    assert_eq!(get("automation", "auto", "actions_failed"), Some(0));
    assert_eq!(get("automation", "auto", "automation_runs"), Some(0));
    assert_eq!(get("service", "github", "connections_established"), Some(1));
    assert_eq!(expected.len(), 3 + 3 + 1);
}

#[test]
fn record_truths_know_every_record_and_its_deletion() {
    let events = [created("tbl", "r1"), updated("tbl", "r1", 2), deleted("tbl", "r1", 3), created("tbl", "r2")];
    let truths = record_truths(events.iter(), &[accepted("r3", 1, ChangeKind::Created)]);
    let get = |r: &str| truths.get(&("tbl".to_owned(), r.to_owned())).cloned();
    assert_eq!(get("r1"), Some(RecordTruth { deleted_at: Some(3) }));
    assert_eq!(get("r2"), Some(RecordTruth { deleted_at: None }));
    assert_eq!(get("r3"), Some(RecordTruth { deleted_at: None }));
    assert_eq!(truths.len(), 3);
}

#[test]
fn json_numbers_compare_by_value() {
    assert!(same_json(&json!({"a": [1.0, "x"]}), &json!({"a": [1.0, "x"]})));
    assert!(same_json(&json!(1.0), &json!(1)));
    assert!(!same_json(&json!(1.5), &json!(1)));
    assert!(!same_json(&json!(1), &json!(2)));
    assert!(!same_json(&json!("1"), &json!(1)));
    assert!(!same_json(&json!({"a": 1}), &json!({"a": 1, "b": null})));
    assert!(same_fields(&fields(json!({"n": 2, "t": "x"})), &fields(json!({"t": "x", "n": 2.0}))));
}

#[test]
fn cache_entries_compare_with_the_database() {
    let f = fields(json!({"title": "a"}));
    let g = fields(json!({"title": "b"}));
    let live = |version: i64, fields: &Fields| CacheEntry::Live(CachedRecord { version, fields: fields.clone() });
    let alive = RecordTruth { deleted_at: None };
    let gone = RecordTruth { deleted_at: Some(4) };
    let is_lost = |x: CacheFinding| matches!(x, CacheFinding::Lost(_));
    let is_wrong = |x: CacheFinding| matches!(x, CacheFinding::Wrong(_));

    assert_eq!(cache_finding(Some((2, &f)), &alive, Some(&live(2, &f))), CacheFinding::Agrees);
    assert!(is_lost(cache_finding(Some((2, &f)), &alive, Some(&live(1, &f)))));
    assert!(is_lost(cache_finding(Some((2, &f)), &alive, None)));
    assert!(is_wrong(cache_finding(Some((2, &f)), &alive, Some(&live(3, &f)))));
    assert!(is_wrong(cache_finding(Some((2, &f)), &alive, Some(&live(2, &g)))));
    assert!(is_wrong(cache_finding(Some((2, &f)), &alive, Some(&CacheEntry::Tombstone { version: 3 }))));
    assert!(is_wrong(cache_finding(Some((2, &f)), &gone, Some(&live(2, &f)))));

    assert_eq!(cache_finding(None, &gone, Some(&CacheEntry::Tombstone { version: 4 })), CacheFinding::Agrees);
    assert!(is_lost(cache_finding(None, &gone, None)));
    assert!(is_lost(cache_finding(None, &gone, Some(&live(3, &f)))));
    assert!(is_lost(cache_finding(None, &gone, Some(&CacheEntry::Tombstone { version: 3 }))));
    assert!(is_wrong(cache_finding(None, &gone, Some(&CacheEntry::Tombstone { version: 5 }))));
    assert!(is_wrong(cache_finding(None, &alive, None)));
}

fn step(action_type: &str, result: &str, data: Option<Value>) -> RunStep {
    RunStep {
        position: 0,
        action_id: "a".into(),
        action_type: action_type.into(),
        result: result.into(),
        data,
        error: None,
        attempts: 1,
        executed_at: Utc::now(),
    }
}

#[test]
fn successful_webhook_calls_must_reach_the_receiver() {
    assert!(must_reach_receiver(&step("webhook", "success", Some(json!({"status": 200})))));
    assert!(!must_reach_receiver(&step("webhook", "failure", None)));
    assert!(must_reach_receiver(&step("notify", "success", Some(json!({"channel": "webhook"})))));
    assert!(!must_reach_receiver(&step("notify", "success", Some(json!({"channel": "email"})))));
    assert!(!must_reach_receiver(&step("email", "success", Some(json!({})))));
    assert!(!must_reach_receiver(&step("create_record", "success", Some(json!({})))));
}
