//! An incompatible change to a schema is refused twice: by `check` (naming the subject,
//! the registered version and the field) and by the registry itself.

use anyhow::Result;
use ltf_schemas::registry::{self, check_all, load_dir};
use ltf_schemas::{SchemaError, TopicNames};
use ltf_tests::{registry_url, unique_prefix};

fn copy_schemas() -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/avro");
    for e in std::fs::read_dir(src)? {
        let p = e?.path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap()))?;
    }
    Ok(dir)
}

#[tokio::test]
async fn unchanged_schemas_pass_the_check() -> Result<()> {
    let topics = TopicNames::new(unique_prefix("checkok"));
    registry::register_all(&registry_url(), &topics).await?;
    let dir = copy_schemas()?;
    let checked = check_all(&registry_url(), &topics, &load_dir(dir.path())?).await?;
    assert_eq!(checked.len(), 8);
    Ok(())
}

#[tokio::test]
async fn an_incompatible_change_is_refused_by_check_and_by_the_registry() -> Result<()> {
    let topics = TopicNames::new(unique_prefix("checkbad"));
    registry::register_all(&registry_url(), &topics).await?;
    let dir = copy_schemas()?;
    // A new required field without a default: v2 readers cannot read v1/v2 data.
    let path = dir.path().join("record_created.v2.avsc");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let payload = json["fields"].as_array_mut().unwrap().iter_mut().find(|f| f["name"] == "payload").unwrap();
    payload["type"]["fields"].as_array_mut().unwrap().push(serde_json::json!({"name": "tenantId", "type": "string"}));
    std::fs::write(&path, json.to_string())?;

    let err = check_all(&registry_url(), &topics, &load_dir(dir.path())?).await.expect_err("incompatible");
    let SchemaError::Incompatible { subject, version, reason, file } = &err else { panic!("{err}") };
    assert!(subject.ends_with("table.events-com.latechforce.events.RecordCreated"), "{subject}");
    assert_eq!(*version, 1, "the first registered version it cannot read");
    assert!(reason.contains("tenantId"), "{reason}");
    assert!(file.ends_with("record_created.v2.avsc"));

    let res = reqwest::Client::new()
        .post(format!("{}/subjects/{subject}/versions", registry_url()))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .json(&serde_json::json!({ "schema": json.to_string() }))
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 409, "the registry refuses it too");
    Ok(())
}
