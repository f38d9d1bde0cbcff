//! Codec cost per event, without Kafka or the registry: encoding, and decoding (with
//! resolution for a v1 value) directly and through apache-avro's `Value` path. The direct
//! decoder builds field maps when first read: "+ read every field" is the cost for a
//! handler that reads them.
//! `cargo bench -p ltf-schemas --bench codec`.

use apache_avro::Schema;
use criterion::{criterion_group, criterion_main, Criterion};
use ltf_schemas::catalog::{schema_def, EventType};
use ltf_schemas::codec::{decode_with, decode_with_apache, encode_body};
use ltf_schemas::examples::samples;
use ltf_schemas::EventPayload;
use serde_json::json;

/// Ten field values of every kind, as `ltf bench produce` writes them.
fn realistic_fields(n: i64) -> ltf_schemas::LazyFields {
    json!({
        "title": "Quarterly report for the board", "status": "in-progress", "priority": n,
        "estimate": 12.5, "done": false, "due": "2026-12-01", "owner": "user-42", "notes": null,
        "tags": ["finance", "q4", "board"], "meta": {"source": "import", "rev": 3}
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
    .into()
}

fn codec(c: &mut Criterion) {
    let events = samples();
    let mut updated = events.iter().find(|e| e.event_type() == EventType::RecordUpdated).unwrap().clone();
    if let EventPayload::RecordUpdated(p) = &mut updated.payload {
        p.previous_fields = realistic_fields(2);
        p.current_fields = realistic_fields(3);
        p.changed_fields = vec!["priority".into()];
    }
    let mut v1 = events.iter().find(|e| e.event_type() == EventType::RecordCreated && e.envelope.version == 1).unwrap().clone();
    if let EventPayload::RecordCreated(p) = &mut v1.payload {
        p.fields = realistic_fields(1);
    }
    let def = schema_def(EventType::RecordUpdated, 1).unwrap();
    c.bench_function("resolve schema (per-call cost inside apache-avro)", |b| {
        b.iter(|| apache_avro::schema::ResolvedSchema::try_from(def.schema()).unwrap().get_names().len())
    });
    c.bench_function("encode RecordUpdated", |b| b.iter(|| encode_body(&updated).unwrap()));
    let body = encode_body(&updated).unwrap();
    c.bench_function("decode RecordUpdated (direct)", |b| b.iter(|| decode_with(1, def.schema(), &body).unwrap()));
    // What a handler that reads the field maps pays: decoding, then building both maps.
    c.bench_function("decode RecordUpdated (direct) + read every field", |b| {
        b.iter(|| {
            let e = decode_with(1, def.schema(), &body).unwrap();
            let EventPayload::RecordUpdated(p) = &e.payload else { unreachable!("a RecordUpdated body") };
            let values = p.previous_fields.values().chain(p.current_fields.values());
            (values.filter(|v| !v.is_null()).count(), e)
        })
    });
    c.bench_function("decode RecordUpdated (apache-avro Value)", |b| {
        b.iter(|| decode_with_apache(1, def.schema(), &body).unwrap())
    });
    let v1_schema: &Schema = schema_def(EventType::RecordCreated, 1).unwrap().schema();
    let v1_body = encode_body(&v1).unwrap();
    c.bench_function("decode RecordCreated v1 as v2 (direct)", |b| b.iter(|| decode_with(1, v1_schema, &v1_body).unwrap()));
    c.bench_function("decode RecordCreated v1 as v2 (apache-avro Value)", |b| {
        b.iter(|| decode_with_apache(1, v1_schema, &v1_body).unwrap())
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
