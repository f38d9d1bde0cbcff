use ltf_schemas::EventCodec;
use serde::Deserialize;
use sqlx::{Connection, PgConnection};

use crate::store::tables::{self, FieldDef, TableDef};
use crate::usecases::definitions::{self, is_duplicate};
use crate::usecases::{ChangeContext, Outcome, UseCase, UseCaseError};

/// Input of [`CreateTable`]. JSON keys are camelCase; unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTableInput {
    /// The table id; a new `tbl_<uuid>` when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The display name; not blank.
    pub name: String,
    /// The field definitions, in order: unique, non-blank names, at most
    /// [`MAX_FIELDS`](crate::usecases::MAX_FIELDS).
    #[serde(default)]
    pub fields: Vec<FieldDef>,
}

impl CreateTableInput {
    /// The table to store, everything [`CreateTable`] checks before the database checked:
    /// the id (or a new one), the name, the field definitions.
    pub(crate) fn definition(self) -> Result<TableDef, UseCaseError> {
        let id = definitions::id_or_new(self.id, "table", "tbl")?;
        definitions::name("table", &self.name)?;
        definitions::fields(&self.fields)?;
        Ok(TableDef { id, name: self.name, fields: self.fields })
    }
}

/// Creates a table. The event contract has no table events, so nothing is emitted
/// (`Outcome::events` is empty). An existing id is [`UseCaseError::AlreadyExists`] (409)
/// and leaves the existing table as it was.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateTable;

impl UseCase for CreateTable {
    type Input = CreateTableInput;
    type Output = TableDef;

    /// Validates the definition, then writes it in one transaction (a savepoint when
    /// `conn` is inside the caller's transaction). Returns the table as stored.
    async fn execute(
        &self,
        conn: &mut PgConnection,
        _codec: &EventCodec,
        _ctx: &ChangeContext,
        input: CreateTableInput,
    ) -> Result<Outcome<TableDef>, UseCaseError> {
        let table = input.definition()?;
        let mut tx = conn.begin().await?;
        if let Err(e) = tables::insert(&mut tx, &table).await {
            return Err(if is_duplicate(&e) { UseCaseError::AlreadyExists { entity: "table", id: table.id } } else { e.into() });
        }
        tx.commit().await?;
        Ok(Outcome { value: table, events: Vec::new() })
    }
}
