use ltf_schemas::EventCodec;
use sqlx::{Connection, PgConnection};

use crate::automations::{store, ActionKind, Automation};
use crate::store::{forms, tables};
use crate::usecases::definitions::is_duplicate;
use crate::usecases::{ChangeContext, Outcome, UseCase, UseCaseError};

/// Stores an automation definition. It is validated first
/// ([`UseCaseError::InvalidAutomation`] names the bad key); the trigger's table or form
/// and the tables of record actions must exist. Emits nothing; an existing id is
/// [`UseCaseError::AlreadyExists`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateAutomation;

impl UseCase for CreateAutomation {
    type Input = Automation;
    type Output = Automation;

    async fn execute(
        &self,
        conn: &mut PgConnection,
        _codec: &EventCodec,
        _ctx: &ChangeContext,
        input: Automation,
    ) -> Result<Outcome<Automation>, UseCaseError> {
        input.validate()?;
        let mut tx = conn.begin().await?;
        if let Some(table) = &input.trigger.table_id {
            tables::find_for_share(&mut tx, table).await?.ok_or_else(|| UseCaseError::UnknownTable(table.clone()))?;
        }
        if let Some(form) = &input.trigger.form_id {
            forms::find_for_share(&mut tx, form).await?.ok_or_else(|| UseCaseError::UnknownForm(form.clone()))?;
        }
        for action in &input.actions {
            if let ActionKind::CreateRecord { table_id, .. } | ActionKind::UpdateRecord { table_id, .. } = &action.kind {
                tables::find_for_share(&mut tx, table_id).await?.ok_or_else(|| UseCaseError::UnknownTable(table_id.clone()))?;
            }
        }
        if let Err(e) = store::insert(&mut tx, &input).await {
            return Err(if is_duplicate(&e) {
                UseCaseError::AlreadyExists { entity: "automation", id: input.id }
            } else {
                e.into()
            });
        }
        tx.commit().await?;
        Ok(Outcome { value: input, events: Vec::new() })
    }
}
