use std::collections::BTreeMap;

use ltf_schemas::EventCodec;
use serde::Deserialize;
use sqlx::{Connection, PgConnection};

use crate::store::forms::{self, FormDef};
use crate::store::tables::FieldDef;
use crate::usecases::definitions::{self, is_duplicate};
use crate::usecases::{validate, ChangeContext, Outcome, UseCase, UseCaseError};

/// Input of [`CreateForm`]. JSON keys are camelCase; unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateFormInput {
    /// The form id; a new `frm_<uuid>` when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The display name; not blank.
    pub name: String,
    /// The table its submissions feed, if any; it must exist.
    #[serde(default)]
    pub table_id: Option<String>,
    /// The form's field definitions, in order: unique, non-blank names, at most
    /// [`MAX_FIELDS`](crate::usecases::MAX_FIELDS).
    #[serde(default)]
    pub fields: Vec<FieldDef>,
    /// Form field name -> table field name: each key a field of the form, each value a
    /// field of `table_id` that can hold the form field's values (same type, into `json`,
    /// `integer` into `number`, `date` into `text`), no table field twice.
    #[serde(default)]
    pub field_mapping: BTreeMap<String, String>,
}

impl CreateFormInput {
    /// The form to store, what [`CreateForm`] checks before the database checked: the id
    /// (or a new one), the name, the field definitions. The field mapping is checked
    /// against the target table once it is read.
    pub(crate) fn definition(self) -> Result<FormDef, UseCaseError> {
        let id = definitions::id_or_new(self.id, "form", "frm")?;
        definitions::name("form", &self.name)?;
        definitions::fields(&self.fields)?;
        Ok(FormDef { id, name: self.name, table_id: self.table_id, fields: self.fields, field_mapping: self.field_mapping })
    }
}

/// Creates a form. The event contract has no form-created event, so nothing is emitted
/// (`Outcome::events` is empty). An existing id is [`UseCaseError::AlreadyExists`] (409);
/// an unknown target table is [`UseCaseError::UnknownTable`] (404); a bad mapping entry is
/// [`UseCaseError::InvalidMapping`] (400).
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateForm;

impl UseCase for CreateForm {
    type Input = CreateFormInput;
    type Output = FormDef;

    /// Validates the definition against the target table (share-locked, so its fields
    /// cannot change meanwhile), then writes it in one transaction (a savepoint when `conn`
    /// is inside the caller's transaction). Returns the form as stored.
    async fn execute(
        &self,
        conn: &mut PgConnection,
        _codec: &EventCodec,
        _ctx: &ChangeContext,
        input: CreateFormInput,
    ) -> Result<Outcome<FormDef>, UseCaseError> {
        let form = input.definition()?;
        let mut tx = conn.begin().await?;
        let table = match &form.table_id {
            Some(table_id) => Some(validate::table(&mut tx, table_id).await?),
            None => None,
        };
        definitions::mapping(&form.fields, &form.field_mapping, table.as_ref())?;
        if let Err(e) = forms::insert(&mut tx, &form).await {
            return Err(if is_duplicate(&e) { UseCaseError::AlreadyExists { entity: "form", id: form.id } } else { e.into() });
        }
        tx.commit().await?;
        Ok(Outcome { value: form, events: Vec::new() })
    }
}
