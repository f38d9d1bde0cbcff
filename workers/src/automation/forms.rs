//! The spec's FormSubmittedHandler: a submission of a form that feeds a table becomes a
//! record of that table, through the CreateRecord use case, exactly once: the record, its
//! RecordCreated (caused by the FormSubmitted, ids derived from it) and the dedup record
//! commit together.

use std::sync::Arc;

use async_trait::async_trait;
use ltf_domain::store::forms;
use ltf_domain::usecases::{CreateRecord, CreateRecordInput, UseCase};
use ltf_schemas::{EventCodec, EventPayload, EventType, Fields};

use super::emit;
use ltf_consumers::ErrorClass;
use ltf_consumers::{Event, Handler, HandlerContext, HandlerError};

/// Turns submissions into records.
#[derive(Debug)]
pub struct FormsHandler {
    codec: Arc<EventCodec>,
}

impl FormsHandler {
    /// A handler writing events with `codec`.
    pub fn new(codec: Arc<EventCodec>) -> FormsHandler {
        FormsHandler { codec }
    }
}

/// The record fields of a submission: through the form's field mapping when it has one,
/// otherwise under the same names.
pub fn record_fields(mapping: &std::collections::BTreeMap<String, String>, data: &Fields) -> Fields {
    if mapping.is_empty() {
        return data.clone();
    }
    data.iter().filter_map(|(k, v)| mapping.get(k).map(|target| (target.clone(), v.clone()))).collect()
}

#[async_trait]
impl Handler for FormsHandler {
    fn dependencies(&self) -> &[&'static str] {
        &["postgres"]
    }

    fn name(&self) -> &str {
        "forms"
    }

    fn can_handle(&self, event_type: EventType) -> bool {
        event_type == EventType::FormSubmitted
    }

    async fn handle(&self, ctx: &HandlerContext, event: &Event) -> Result<(), HandlerError> {
        let EventPayload::FormSubmitted(p) = &event.event.payload else { return Ok(()) };
        let dedup = ctx.dedup_store()?;
        let Some(mut tx) = dedup.begin(ctx, event).await? else { return Ok(()) };
        let Some(form) = forms::find_for_share(&mut tx, &p.form_id).await? else {
            return Err(HandlerError::permanent(ErrorClass::UnknownForm, format!("form {} does not exist", p.form_id)));
        };
        let Some(table_id) = form.table_id.clone() else {
            // A form that feeds no table: nothing to create; the dedup record remains.
            tx.commit().await?;
            return Ok(());
        };
        let uc_ctx = emit::use_case_context(event, "forms", &p.submission_id);
        let uc_ctx = match &p.submitted_by {
            Some(user) => ltf_domain::usecases::ChangeContext { user_id: Some(user.clone()), ..uc_ctx },
            None => uc_ctx,
        };
        let input = CreateRecordInput { table_id, fields: record_fields(&form.field_mapping, &p.data) };
        CreateRecord.execute(&mut tx, &self.codec, &uc_ctx, input).await.map_err(emit::use_case_error)?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn submissions_map_to_table_fields() {
        let mut data = Fields::new();
        data.insert("your_email".into(), json!("a@example.com"));
        data.insert("ignored".into(), json!(1));
        let mapping = [("your_email".to_owned(), "email".to_owned())].into_iter().collect();
        assert_eq!(record_fields(&mapping, &data), json!({"email": "a@example.com"}).as_object().unwrap().clone());
        assert_eq!(record_fields(&Default::default(), &data), data);
    }
}
