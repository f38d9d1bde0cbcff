//! User-defined tables and their field definitions (`ltf_tables`).

use std::fmt;

use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::PgConnection;

/// The type of a table field; a record's value for the field must match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// A JSON string.
    Text,
    /// Any JSON number.
    Number,
    /// A JSON number without fraction or exponent.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A string holding an ISO 8601 date (`2024-05-01`) or an RFC 3339 date-time.
    Date,
    /// Any JSON value.
    Json,
    /// The id of a linked record, or an array of ids.
    Link,
}

impl FieldType {
    /// The name stored in the field definitions (`text`, `number`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Integer => "integer",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Json => "json",
            FieldType::Link => "link",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field definition of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// The field name, the key in a record's fields.
    pub name: String,
    /// The type its values must have.
    #[serde(rename = "type")]
    pub field_type: FieldType,
}

impl FieldDef {
    /// A field definition.
    pub fn new(name: impl Into<String>, field_type: FieldType) -> FieldDef {
        FieldDef { name: name.into(), field_type }
    }
}

/// A table: its id, name and field definitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDef {
    /// The table id; the aggregateId of its records' events.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The field definitions, in order.
    pub fields: Vec<FieldDef>,
}

impl TableDef {
    /// The definition of field `name`, if the table has one.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Inserts a table definition.
pub async fn insert(conn: &mut PgConnection, table: &TableDef) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO ltf_tables (id, name, fields) VALUES ($1, $2, $3)")
        .bind(&table.id)
        .bind(&table.name)
        .bind(Json(&table.fields))
        .execute(conn)
        .await?;
    Ok(())
}

/// The table `id`, read with a share lock: its field definitions cannot change until the
/// caller's transaction ends, so records validated against them stay valid.
pub async fn find_for_share(conn: &mut PgConnection, id: &str) -> Result<Option<TableDef>, sqlx::Error> {
    let row: Option<(String, String, Json<Vec<FieldDef>>)> =
        sqlx::query_as("SELECT id, name, fields FROM ltf_tables WHERE id = $1 FOR SHARE").bind(id).fetch_optional(conn).await?;
    Ok(row.map(|(id, name, Json(fields))| TableDef { id, name, fields }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_definitions_use_the_stored_names() {
        let defs = vec![FieldDef::new("title", FieldType::Text), FieldDef::new("due", FieldType::Date)];
        let json = serde_json::to_string(&defs).unwrap();
        assert_eq!(json, r#"[{"name":"title","type":"text"},{"name":"due","type":"date"}]"#);
        let back: Vec<FieldDef> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, defs);
        assert!(serde_json::from_str::<FieldDef>(r#"{"name":"x","type":"blob"}"#).is_err());
    }
}
