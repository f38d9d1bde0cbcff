//! apache-avro 0.22's Value path and schema-aware serde (`read_deser`) and
//! serde_avro_fast, decoding the same realistic RecordUpdated (ten field values of every
//! kind before and after). Compare with `cargo bench -p ltf-schemas --bench codec`.

use std::collections::HashMap;
use std::hint::black_box;

use apache_avro::types::{Record, Value};
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::Schema;
use criterion::{criterion_group, criterion_main, Criterion};
use serde::Deserialize;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct RecordUpdated {
    event_id: String,
    aggregate_type: String,
    event_type: String,
    aggregate_id: String,
    aggregate_sequence: i64,
    occurred_on: i64,
    version: i32,
    correlation_id: String,
    causation_id: Option<String>,
    record_version: i64,
    payload: Payload,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", rename = "RecordUpdatedPayload")]
struct Payload {
    table_id: String,
    record_id: String,
    previous_fields: HashMap<String, FieldValue>,
    current_fields: HashMap<String, FieldValue>,
    changed_fields: Vec<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
enum FieldValue {
    #[serde(rename = "null", alias = "Null")]
    Null,
    #[serde(rename = "boolean", alias = "Boolean")]
    Boolean(bool),
    #[serde(rename = "long", alias = "Long")]
    Long(i64),
    #[serde(rename = "double", alias = "Double")]
    Double(f64),
    #[serde(rename = "string", alias = "String")]
    String(String),
    #[serde(alias = "com.latechforce.events.JsonText")]
    JsonText(JsonText),
}

#[derive(Debug, Deserialize, PartialEq)]
struct JsonText {
    json: String,
}

fn fields(n: i64) -> Value {
    let json = |s: &str| Value::Union(5, Box::new(Value::Record(vec![("json".into(), Value::String(s.into()))])));
    Value::Map(HashMap::from([
        ("title".to_string(), Value::Union(4, Box::new(Value::String("Quarterly report for the board".into())))),
        ("status".into(), Value::Union(4, Box::new(Value::String("in-progress".into())))),
        ("priority".into(), Value::Union(2, Box::new(Value::Long(n)))),
        ("estimate".into(), Value::Union(3, Box::new(Value::Double(12.5)))),
        ("done".into(), Value::Union(1, Box::new(Value::Boolean(false)))),
        ("due".into(), Value::Union(4, Box::new(Value::String("2026-12-01".into())))),
        ("owner".into(), Value::Union(4, Box::new(Value::String("user-42".into())))),
        ("notes".into(), Value::Union(0, Box::new(Value::Null))),
        ("tags".into(), json(r#"["finance","q4","board"]"#)),
        ("meta".into(), json(r#"{"source":"import","rev":3}"#)),
    ]))
}

fn sample(schema: &Schema) -> Vec<u8> {
    let mut r = Record::new(schema).unwrap();
    r.put("eventId", Value::Uuid("9b2f8f2e-3a43-4f4e-9d7e-2b1f6f1d9a10".parse().unwrap()));
    r.put("aggregateType", "table");
    r.put("eventType", "record-updated");
    r.put("aggregateId", "tbl_projects");
    r.put("aggregateSequence", 1234i64);
    r.put("occurredOn", Value::TimestampMillis(1_764_000_000_000));
    r.put("version", 1i32);
    r.put("correlationId", "c0ffee00-0000-4000-8000-000000000001");
    r.put("causationId", Value::Union(0, Box::new(Value::Null)));
    r.put("recordVersion", 7i64);
    let p = Value::Record(vec![
        ("tableId".into(), Value::String("tbl_projects".into())),
        ("recordId".into(), Value::String("rec_000123".into())),
        ("previousFields".into(), fields(2)),
        ("currentFields".into(), fields(3)),
        ("changedFields".into(), Value::Array(vec![Value::String("priority".into())])),
    ]);
    r.put("payload", p);
    apache_avro::to_avro_datum(schema, r).unwrap()
}

fn bench(c: &mut Criterion) {
    let text = include_str!("../../../avro/record_updated.v1.avsc");
    let schema = Schema::parse_str(text).unwrap();
    let bytes = sample(&schema);
    let fast: serde_avro_fast::Schema = text.parse().unwrap();
    let reader = GenericDatumReader::builder(&schema).build().unwrap();

    // Both serde paths read the same event, the one written.
    let b = reader.read_deser::<RecordUpdated>(&mut bytes.as_slice()).unwrap();
    let f: RecordUpdated = serde_avro_fast::from_datum_slice(&bytes, &fast).unwrap();
    assert_eq!(b, f);
    assert_eq!(f.payload.current_fields["priority"], FieldValue::Long(3));

    c.bench_function("apache-avro 0.22 read_value (Value tree)", |z| {
        z.iter(|| reader.read_value(&mut black_box(bytes.as_slice())).unwrap())
    });
    c.bench_function("apache-avro 0.22 read_deser (schema-aware serde)", |z| {
        z.iter(|| reader.read_deser::<RecordUpdated>(&mut black_box(bytes.as_slice())).unwrap())
    });
    c.bench_function("serde_avro_fast 2.1 from_datum_slice", |z| {
        z.iter(|| serde_avro_fast::from_datum_slice::<RecordUpdated>(black_box(&bytes), &fast).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
