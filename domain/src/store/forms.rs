//! Forms and their submissions (`ltf_forms`, `ltf_form_submissions`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ltf_schemas::Fields;
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection};

use crate::store::tables::FieldDef;

/// A form: its fields and, optionally, the table its submissions feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FormDef {
    /// The form id; the aggregateId of its FormSubmitted events.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The table its submissions become records of, if any.
    pub table_id: Option<String>,
    /// The field definitions a submission is validated against, in order.
    pub fields: Vec<FieldDef>,
    /// Form field name -> field of `table_id` its value is stored in; every key is a field
    /// of the form, every value a field of the table of a compatible type.
    pub field_mapping: BTreeMap<String, String>,
}

impl FormDef {
    /// The definition of field `name`, if the form has one.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A stored form submission.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FormSubmission {
    /// The submission id.
    pub id: String,
    /// The form submitted.
    pub form_id: String,
    /// The submitted values, validated against the form's fields.
    pub data: Fields,
    /// The submitting user, when known.
    pub submitted_by: Option<String>,
    /// When it was stored.
    pub submitted_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct FormRow {
    id: String,
    name: String,
    table_id: Option<String>,
    fields: Json<Vec<FieldDef>>,
    field_mapping: Json<BTreeMap<String, String>>,
}

#[derive(FromRow)]
struct SubmissionRow {
    id: String,
    form_id: String,
    data: Json<Fields>,
    submitted_by: Option<String>,
    submitted_at: DateTime<Utc>,
}

/// Inserts a form definition (a duplicate id is a unique violation).
pub async fn insert(conn: &mut PgConnection, form: &FormDef) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO ltf_forms (id, name, table_id, fields, field_mapping) VALUES ($1, $2, $3, $4, $5)")
        .bind(&form.id)
        .bind(&form.name)
        .bind(&form.table_id)
        .bind(Json(&form.fields))
        .bind(Json(&form.field_mapping))
        .execute(conn)
        .await?;
    Ok(())
}

/// The form `id`, read with a share lock held until the caller's transaction ends.
pub async fn find_for_share(conn: &mut PgConnection, id: &str) -> Result<Option<FormDef>, sqlx::Error> {
    let row: Option<FormRow> =
        sqlx::query_as("SELECT id, name, table_id, fields, field_mapping FROM ltf_forms WHERE id = $1 FOR SHARE")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|r| FormDef {
        id: r.id,
        name: r.name,
        table_id: r.table_id,
        fields: r.fields.0,
        field_mapping: r.field_mapping.0,
    }))
}

/// Inserts a submission of `form_id`; returns it as stored.
pub async fn insert_submission(
    conn: &mut PgConnection,
    id: &str,
    form_id: &str,
    data: &Fields,
    submitted_by: Option<&str>,
) -> Result<FormSubmission, sqlx::Error> {
    let r: SubmissionRow = sqlx::query_as(
        "INSERT INTO ltf_form_submissions (id, form_id, data, submitted_by) VALUES ($1, $2, $3, $4)
         RETURNING id, form_id, data, submitted_by, submitted_at",
    )
    .bind(id)
    .bind(form_id)
    .bind(Json(data))
    .bind(submitted_by)
    .fetch_one(conn)
    .await?;
    Ok(FormSubmission {
        id: r.id,
        form_id: r.form_id,
        data: r.data.0,
        submitted_by: r.submitted_by,
        submitted_at: r.submitted_at,
    })
}
