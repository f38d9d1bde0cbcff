//! Values that must not decode give typed errors, never panics: wrong magic byte, unknown
//! schema id, truncated body, an unknown record, and a version no reader supports.

use std::time::Duration;

use anyhow::Result;
use apache_avro::types::Value;
use apache_avro::Schema;
use ltf_schemas::codec::frame;
use ltf_schemas::registry;
use ltf_schemas::{examples, EventCodec, SchemaError, TopicNames};
use ltf_tests::{bootstrap, produce_raw, read_n, registry_url, unique_prefix};
use rdkafka::message::Message;

async fn post_schema(subject: &str, schema: &str) -> Result<(u16, serde_json::Value)> {
    let res = reqwest::Client::new()
        .post(format!("{}/subjects/{subject}/versions", registry_url()))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .json(&serde_json::json!({ "schema": schema }))
        .send()
        .await?;
    Ok((res.status().as_u16(), res.json().await.unwrap_or_default()))
}

#[tokio::test]
async fn garbage_values_give_typed_decode_errors() -> Result<()> {
    let topics = TopicNames::new(unique_prefix("garbage"));
    let ids = registry::register_all(&registry_url(), &topics).await?;
    let codec = EventCodec::new(&registry_url(), topics.clone())?;
    let good = codec.encode(&examples::samples()[2]).await?;
    let topic = topics.all_events()[0].clone();
    let mut wrong_magic = good.value.clone();
    wrong_magic[0] = 1;
    let unknown_id = frame(ids.iter().map(|r| r.id).max().unwrap() + 100_000, &good.value[5..]);
    let truncated = good.value[..good.value.len() / 2].to_vec();
    let short = vec![0u8, 0, 0];
    produce_raw(&topic, "k", &[wrong_magic, unknown_id, truncated, short, vec![]])?;
    let msgs = read_n(&[topic], 5, Duration::from_secs(30))?;
    let mut errors = Vec::new();
    for m in &msgs {
        errors.push(codec.decode(m.payload().unwrap_or_default()).await.expect_err("must not decode"));
    }
    assert!(matches!(&errors[0], SchemaError::NotConfluentFramed { reason } if reason.contains("magic")), "{}", errors[0]);
    assert!(matches!(&errors[1], SchemaError::UnknownSchemaId { .. }), "{}", errors[1]);
    assert!(matches!(&errors[2], SchemaError::BadAvro { .. }), "{}", errors[2]);
    assert!(matches!(&errors[3], SchemaError::NotConfluentFramed { .. }), "{}", errors[3]);
    assert!(matches!(&errors[4], SchemaError::NotConfluentFramed { reason } if reason.contains("empty")), "{}", errors[4]);
    Ok(())
}

#[tokio::test]
async fn an_unsupported_version_is_a_typed_error() -> Result<()> {
    let topics = TopicNames::new(unique_prefix("version"));
    registry::register_all(&registry_url(), &topics).await?;
    let topic = topics.all_events()[0].clone();
    // A future producer's v3: v2 plus an optional field, registered (it is compatible).
    let v2 = ltf_schemas::catalog::schema_def(ltf_schemas::EventType::RecordCreated, 2)?;
    let mut json: serde_json::Value = serde_json::from_str(v2.text)?;
    let payload = json["fields"].as_array_mut().unwrap().iter_mut().find(|f| f["name"] == "payload").unwrap();
    payload["type"]["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "tenantId", "type": ["null", "string"], "default": null}));
    let v3_text = json.to_string();
    let subject = format!("{topic}-com.latechforce.events.RecordCreated");
    let (status, body) = post_schema(&subject, &v3_text).await?;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_u64().unwrap() as u32;
    // Encode a v3 value by hand.
    let v3 = Schema::parse_str(&v3_text)?;
    let codec = EventCodec::new(&registry_url(), topics.clone())?;
    let base = codec.encode(&examples::samples()[1]).await?;
    let v2_value = apache_avro::from_avro_datum(v2.schema(), &mut &base.value[5..], None)?;
    let Value::Record(mut fields) = v2_value.resolve(&v3)? else { panic!() };
    for (k, v) in fields.iter_mut() {
        if k == "version" {
            *v = Value::Int(3);
        }
    }
    let body3 = apache_avro::to_avro_datum(&v3, Value::Record(fields))?;
    produce_raw(&topic, "tbl_1", &[frame(id, &body3)])?;
    let msgs = read_n(&[topic], 1, Duration::from_secs(30))?;
    let err = codec.decode(msgs[0].payload().unwrap()).await.expect_err("v3 is not supported");
    assert!(
        matches!(&err, SchemaError::UnsupportedVersion { event_type: "record-created", version: 3, supported } if supported == &vec![1, 2]),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn a_record_that_is_not_an_event_type_is_a_typed_error() -> Result<()> {
    let topics = TopicNames::new(unique_prefix("stranger"));
    let topic = topics.all_events()[0].clone();
    let text = r#"{"type":"record","name":"Stranger","namespace":"com.example","fields":[{"name":"x","type":"long"}]}"#;
    let (status, body) = post_schema(&format!("{topic}-com.example.Stranger"), text).await?;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_u64().unwrap() as u32;
    let datum = apache_avro::to_avro_datum(&Schema::parse_str(text)?, Value::Record(vec![("x".into(), Value::Long(1))]))?;
    let codec = EventCodec::new(&registry_url(), topics)?;
    let err = codec.decode(&frame(id, &datum)).await.expect_err("not ours");
    assert!(matches!(&err, SchemaError::UnknownEventType { record_name, .. } if record_name == "com.example.Stranger"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_dead_registry_is_a_retryable_error_naming_the_subject() -> Result<()> {
    let topics = TopicNames::new(unique_prefix("deadsr"));
    // Nothing listens on port 1.
    let codec = EventCodec::new("http://127.0.0.1:1/apis/ccompat/v7", topics)?;
    let err = codec.encode(&examples::samples()[0]).await.expect_err("no registry");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("RecordCreated"), "{err}");
    let _ = bootstrap();
    Ok(())
}
