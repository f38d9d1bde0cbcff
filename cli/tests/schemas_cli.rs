//! `ltf schemas register` then `ltf schemas check` as an operator runs them: exit codes
//! and messages, against the real registry.

use std::process::Command;

use anyhow::Result;
use ltf_tests::{registry_url, unique_prefix};

fn ltf(prefix: &str, args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_ltf"))
        .args(["--registry", &registry_url(), "--topic-prefix", prefix])
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()?)
}

#[test]
fn check_passes_on_the_shipped_schemas_and_fails_naming_subject_version_and_field() -> Result<()> {
    let prefix = unique_prefix("cli");
    let out = ltf(&prefix, &["schemas", "register"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(out.stdout)?;
    assert_eq!(listing.matches("registered ").count(), 8, "{listing}");

    let ok = ltf(&prefix, &["schemas", "check"])?;
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(String::from_utf8(ok.stdout)?.matches("compatible").count(), 8);

    // Change a copy of the schemas: FormSubmitted's payload gets a required field.
    let dir = tempfile::tempdir()?;
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/avro");
    for e in std::fs::read_dir(src)? {
        let p = e?.path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap()))?;
    }
    let path = dir.path().join("form_submitted.v1.avsc");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let payload = json["fields"].as_array_mut().unwrap().iter_mut().find(|f| f["name"] == "payload").unwrap();
    payload["type"]["fields"].as_array_mut().unwrap().push(serde_json::json!({"name": "locale", "type": "string"}));
    std::fs::write(&path, json.to_string())?;

    let bad = ltf(&prefix, &["schemas", "check", "--dir", dir.path().to_str().unwrap()])?;
    assert!(!bad.status.success(), "an incompatible change must fail the check");
    let err = String::from_utf8(bad.stderr)?;
    assert!(err.contains(&format!("{prefix}.form.events-com.latechforce.events.FormSubmitted")), "{err}");
    assert!(err.contains("registered version 1"), "{err}");
    assert!(err.contains("locale"), "{err}");
    Ok(())
}
