//! Registering the contract's schemas, setting subject compatibility, and checking a
//! changed schema against what the registry holds.
//!
//! Registration goes through schema_registry_converter; the calls it lacks
//! (`PUT /config/{subject}`, listing a subject's versions) are plain HTTP against the same
//! Confluent-compatible API. A refusal is explained with apache-avro's own
//! schema-compatibility check against each registered version.

use std::path::Path;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use schema_registry_converter::async_impl::schema_registry::{is_compatible_schema, post_schema};
use serde::Deserialize;

use crate::catalog::{EventType, SCHEMAS};
use crate::codec::{registry_error, sr_settings, supplied, supplied_text};
use crate::contract::{subject, TopicNames};
use crate::SchemaError;

/// The compatibility level every subject gets.
pub const COMPATIBILITY: &str = "BACKWARD_TRANSITIVE";

/// One registered schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The subject it was registered under (`<topic>-<record full name>`).
    pub subject: String,
    /// The embedded `.avsc` file it came from.
    pub file: String,
    /// The registry's schema id: what values written with it carry after the magic byte.
    pub id: u32,
}

/// A schema to check: where it came from and its text.
#[derive(Debug, Clone)]
pub struct LocalSchema {
    /// The file's path, or the embedded file's name.
    pub file: String,
    /// The event type its record full name names.
    pub event_type: EventType,
    /// The parsed schema.
    pub schema: Schema,
    /// The schema text as read; sent to the registry as is.
    pub text: String,
}

/// Thin client for the registry calls schema_registry_converter does not make.
#[derive(Debug, Clone)]
pub struct RegistryAdmin {
    base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct VersionedSchema {
    schema: String,
}

impl RegistryAdmin {
    /// A client of the Confluent-compatible API at `registry_url` (for Apicurio:
    /// `http://host:port/apis/ccompat/v7`).
    pub fn new(registry_url: &str) -> RegistryAdmin {
        RegistryAdmin { base: registry_url.trim_end_matches('/').to_owned(), http: reqwest::Client::new() }
    }

    fn err(subject: &str, e: impl std::fmt::Display, retryable: bool) -> SchemaError {
        SchemaError::Registry { subject: subject.to_owned(), reason: e.to_string(), retryable }
    }

    async fn send(&self, subject: &str, req: reqwest::RequestBuilder) -> Result<Option<reqwest::Response>, SchemaError> {
        let res = req.send().await.map_err(|e| Self::err(subject, e, true))?;
        match res.status().as_u16() {
            404 => Ok(None),
            s if (200..300).contains(&s) => Ok(Some(res)),
            s => {
                let body = res.text().await.unwrap_or_default();
                Err(Self::err(subject, format!("HTTP {s}: {body}"), s >= 500))
            }
        }
    }

    /// Sets a subject's compatibility level (the subject must have a version).
    pub async fn set_compatibility(&self, subject: &str, level: &str) -> Result<(), SchemaError> {
        let url = format!("{}/config/{}", self.base, subject);
        let req = self.http.put(url).json(&serde_json::json!({ "compatibility": level }));
        match self.send(subject, req).await? {
            Some(_) => Ok(()),
            None => Err(Self::err(subject, "subject not found when setting compatibility", false)),
        }
    }

    /// A subject's compatibility level, if set.
    pub async fn compatibility(&self, subject: &str) -> Result<Option<String>, SchemaError> {
        let url = format!("{}/config/{}", self.base, subject);
        let Some(res) = self.send(subject, self.http.get(url)).await? else { return Ok(None) };
        let v: serde_json::Value = res.json().await.map_err(|e| Self::err(subject, e, false))?;
        Ok(v.get("compatibilityLevel").or_else(|| v.get("compatibility")).and_then(|c| c.as_str()).map(String::from))
    }

    /// Every subject the registry holds.
    pub async fn subjects(&self) -> Result<Vec<String>, SchemaError> {
        let url = format!("{}/subjects", self.base);
        match self.send("*", self.http.get(url)).await? {
            Some(res) => res.json().await.map_err(|e| Self::err("*", e, false)),
            None => Ok(vec![]),
        }
    }

    /// The versions of a subject (empty when the subject does not exist).
    pub async fn versions(&self, subject: &str) -> Result<Vec<u32>, SchemaError> {
        let url = format!("{}/subjects/{}/versions", self.base, subject);
        match self.send(subject, self.http.get(url)).await? {
            Some(res) => res.json().await.map_err(|e| Self::err(subject, e, false)),
            None => Ok(vec![]),
        }
    }

    /// The schema of one version of a subject.
    pub async fn schema(&self, subject: &str, version: u32) -> Result<Schema, SchemaError> {
        let url = format!("{}/subjects/{}/versions/{}", self.base, subject, version);
        let res = self
            .send(subject, self.http.get(url))
            .await?
            .ok_or_else(|| Self::err(subject, format!("version {version} not found"), false))?;
        let v: VersionedSchema = res.json().await.map_err(|e| Self::err(subject, e, false))?;
        Schema::parse_str(&v.schema).map_err(|e| Self::err(subject, e, false))
    }
}

/// Registers every embedded schema under every topic prefix's subject (v1 before v2),
/// and sets each subject to BACKWARD_TRANSITIVE once it has its first version.
pub async fn register_all(registry_url: &str, topics: &TopicNames) -> Result<Vec<Registered>, SchemaError> {
    let sr = sr_settings(registry_url)?;
    let admin = RegistryAdmin::new(registry_url);
    let mut out = Vec::new();
    for def in &SCHEMAS {
        let subj = subject(&topics.events(def.event_type.aggregate()), &def.event_type.full_name());
        let reg = post_schema(&sr, subj.clone(), supplied(def)).await.map_err(|e| registry_error(&subj, e))?;
        if admin.compatibility(&subj).await?.as_deref() != Some(COMPATIBILITY) {
            admin.set_compatibility(&subj, COMPATIBILITY).await?;
        }
        out.push(Registered { subject: subj, file: def.file.to_owned(), id: reg.id });
    }
    Ok(out)
}

/// Reads the `.avsc` files of a folder (e.g. a working copy of `schemas/avro`).
pub fn load_dir(dir: &Path) -> Result<Vec<LocalSchema>, SchemaError> {
    let read_err =
        |f: &Path, e: &dyn std::fmt::Display| SchemaError::Parse { file: f.display().to_string(), reason: e.to_string() };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| read_err(dir, &e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "avsc"))
        .collect();
    entries.sort();
    entries
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|e| read_err(&path, &e))?;
            let schema = Schema::parse_str(&text).map_err(|e| read_err(&path, &e))?;
            let name = match &schema {
                Schema::Record(r) => r.name.fullname(None),
                _ => String::new(),
            };
            let event_type = EventType::from_full_name(&name)
                .ok_or_else(|| read_err(&path, &format!("record {name:?} is not an event type")))?;
            Ok(LocalSchema { file: path.display().to_string(), event_type, schema, text })
        })
        .collect()
}

/// The embedded schemas as [`LocalSchema`]s.
pub fn embedded() -> Vec<LocalSchema> {
    SCHEMAS
        .iter()
        .map(|d| LocalSchema {
            file: d.file.to_owned(),
            event_type: d.event_type,
            schema: d.schema().clone(),
            text: d.text.to_owned(),
        })
        .collect()
}

/// Why `reader` cannot read data written with `writer`, naming the field when there is one.
pub fn explain(writer: &Schema, reader: &Schema) -> Option<String> {
    SchemaCompatibility::can_read(writer, reader).err().map(|e| {
        let mut msg = e.to_string();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        msg
    })
}

/// Checks each local schema against every registered version of its subject: the
/// registry's verdict under the subject's level, explained by apache-avro's check
/// (BACKWARD: the new schema must read data of every earlier version).
/// Returns the subjects checked; the first incompatibility is an error.
pub async fn check_all(registry_url: &str, topics: &TopicNames, local: &[LocalSchema]) -> Result<Vec<String>, SchemaError> {
    let sr = sr_settings(registry_url)?;
    let admin = RegistryAdmin::new(registry_url);
    let mut checked = Vec::new();
    for l in local {
        let subj = subject(&topics.events(l.event_type.aggregate()), &l.event_type.full_name());
        let versions = admin.versions(&subj).await?;
        let mut registered = Vec::with_capacity(versions.len());
        for v in &versions {
            registered.push((*v, admin.schema(&subj, *v).await?));
        }
        // Unchanged from a registered version: nothing to check.
        if registered.iter().any(|(_, s)| s.canonical_form() == l.schema.canonical_form()) {
            checked.push(subj);
            continue;
        }
        let first_refusal = registered.iter().find_map(|(v, s)| explain(s, &l.schema).map(|why| (*v, why)));
        let registry_ok = if versions.is_empty() {
            true
        } else {
            is_compatible_schema(&sr, subj.clone(), supplied_text(l.event_type, &l.text))
                .await
                .map_err(|e| registry_error(&subj, e))?
        };
        match (registry_ok, first_refusal) {
            (true, None) => checked.push(subj),
            (_, Some((version, reason))) => {
                return Err(SchemaError::Incompatible { subject: subj, file: l.file.clone(), version, reason })
            }
            (false, None) => {
                return Err(SchemaError::Incompatible {
                    subject: subj,
                    file: l.file.clone(),
                    version: *versions.last().unwrap_or(&0),
                    reason: "the registry refused it; apache-avro's check found no field at fault".into(),
                })
            }
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_names_a_new_field_without_default() {
        let old = Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#).unwrap();
        let new = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"tenantId","type":"string"}]}"#,
        )
        .unwrap();
        let why = explain(&old, &new).expect("incompatible");
        assert!(why.contains("tenantId"), "{why}");
        assert_eq!(explain(&new, &old), None, "dropping a field is backward compatible");
    }

    #[test]
    fn embedded_schemas_load_like_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("avro");
        let from_dir = load_dir(&dir).unwrap();
        assert_eq!(from_dir.len(), embedded().len());
    }
}
