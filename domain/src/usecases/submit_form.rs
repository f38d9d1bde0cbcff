use ltf_schemas::{DomainEvent, EventCodec, EventPayload, Fields, FormSubmitted};
use serde::Deserialize;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::outbox;
use crate::store::forms::{self, FormSubmission};
use crate::usecases::{validate, ChangeContext, Outcome, UseCase, UseCaseError};

/// Input of [`SubmitForm`]. JSON keys are camelCase; unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubmitFormInput {
    /// The form submitted.
    pub form_id: String,
    /// The values, by form field name.
    pub data: Fields,
}

/// Stores a form submission and its FormSubmitted event (aggregateId = formId,
/// submittedBy = the context's user) in one transaction. An unknown form is
/// [`UseCaseError::UnknownForm`] (404); a field the form does not define is
/// [`UseCaseError::UnknownFormField`] and a value of the wrong type
/// [`UseCaseError::WrongFieldType`] (400): then nothing is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubmitForm;

impl UseCase for SubmitForm {
    type Input = SubmitFormInput;
    type Output = FormSubmission;

    /// Validates the data against the form (share-locked), then writes the submission and
    /// its outbox row in one transaction (a savepoint when `conn` is inside the caller's
    /// transaction). Returns the submission as stored.
    async fn execute(
        &self,
        conn: &mut PgConnection,
        codec: &EventCodec,
        ctx: &ChangeContext,
        input: SubmitFormInput,
    ) -> Result<Outcome<FormSubmission>, UseCaseError> {
        let mut tx = conn.begin().await?;
        let form = validate::form(&mut tx, &input.form_id).await?;
        validate::submission(&form, &input.data)?;
        let id = format!("sub_{}", Uuid::new_v4().simple());
        let submission = forms::insert_submission(&mut tx, &id, &form.id, &input.data, ctx.user_id.as_deref()).await?;
        let event = DomainEvent::new(EventPayload::FormSubmitted(FormSubmitted {
            form_id: submission.form_id.clone(),
            submission_id: submission.id.clone(),
            data: submission.data.clone().into(),
            submitted_by: submission.submitted_by.clone(),
        }));
        let events = outbox::append(&mut tx, codec, ctx.traceparent.as_deref(), ctx.stamp(vec![event])).await?;
        tx.commit().await?;
        Ok(Outcome { value: submission, events })
    }
}
