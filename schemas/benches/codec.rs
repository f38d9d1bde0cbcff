//! Codec cost per event, without Kafka or the registry: building the Avro value, encoding
//! it, and decoding (with resolution for a v1 value). `cargo bench -p ltf-schemas`.

use apache_avro::Schema;
use criterion::{criterion_group, criterion_main, Criterion};
use ltf_schemas::catalog::{schema_def, EventType};
use ltf_schemas::codec::{decode_with, encode_body};
use ltf_schemas::examples::samples;

fn codec(c: &mut Criterion) {
    let events = samples();
    let updated = events.iter().find(|e| e.event_type() == EventType::RecordUpdated).unwrap().clone();
    let v1 = events.iter().find(|e| e.event_type() == EventType::RecordCreated && e.envelope.version == 1).unwrap().clone();
    let def = schema_def(EventType::RecordUpdated, 1).unwrap();
    c.bench_function("resolve schema (per-call cost inside apache-avro)", |b| {
        b.iter(|| apache_avro::schema::ResolvedSchema::try_from(def.schema()).unwrap().get_names().len())
    });
    c.bench_function("encode RecordUpdated", |b| b.iter(|| encode_body(&updated).unwrap()));
    let body = encode_body(&updated).unwrap();
    c.bench_function("decode RecordUpdated", |b| b.iter(|| decode_with(1, def.schema(), &body).unwrap()));
    let v1_schema: &Schema = schema_def(EventType::RecordCreated, 1).unwrap().schema();
    let v1_body = encode_body(&v1).unwrap();
    c.bench_function("decode RecordCreated v1 as v2", |b| b.iter(|| decode_with(1, v1_schema, &v1_body).unwrap()));
}

criterion_group!(benches, codec);
criterion_main!(benches);
