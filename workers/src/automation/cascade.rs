//! Cascade on delete: when a record is deleted, every other record whose link field
//! points to it loses that link, through the UpdateRecord use case: each update emits
//! its own RecordUpdated, caused by the deletion (ids derived from it), all committed with
//! the deletion's dedup record.

use std::sync::Arc;

use async_trait::async_trait;
use ltf_domain::store::records::{self, Link};
use ltf_domain::usecases::{RecordPatch, UpdateRecord, UpdateRecordInput, UseCase};
use ltf_schemas::{EventCodec, EventPayload, EventType, Fields};
use serde_json::Value as Json;

use super::emit;
use ltf_consumers::{Event, Handler, HandlerContext, HandlerError};

/// Removes links to deleted records.
#[derive(Debug)]
pub struct CascadeHandler {
    codec: Arc<EventCodec>,
}

impl CascadeHandler {
    /// A handler writing events with `codec`.
    pub fn new(codec: Arc<EventCodec>) -> CascadeHandler {
        CascadeHandler { codec }
    }
}

/// The value of a link field without `id`: null for a single link, the array without it.
pub fn unlinked(value: &Json, id: &str) -> Json {
    match value {
        Json::Array(ids) => Json::Array(ids.iter().filter(|v| v.as_str() != Some(id)).cloned().collect()),
        _ => Json::Null,
    }
}

#[async_trait]
impl Handler for CascadeHandler {
    fn dependencies(&self) -> &[&'static str] {
        &["postgres"]
    }

    fn name(&self) -> &str {
        "cascade"
    }

    fn can_handle(&self, event_type: EventType) -> bool {
        event_type == EventType::RecordDeleted
    }

    async fn handle(&self, ctx: &HandlerContext, event: &Event) -> Result<(), HandlerError> {
        let EventPayload::RecordDeleted(p) = &event.event.payload else { return Ok(()) };
        let Some(mut tx) = ctx.dedup_store()?.begin(ctx, event).await? else { return Ok(()) };
        // Every (record, link field) that points to the deleted record, locked; a linking
        // record deleted meanwhile is not among them (a race, not a failure).
        let links = records::links_to(&mut tx, &p.record_id).await?;
        let mut patches: Vec<(String, String, Fields)> = Vec::new();
        for Link { record_id, table_id, field, value } in links {
            match patches.last_mut() {
                Some((id, _, fields)) if *id == record_id => {
                    fields.insert(field, unlinked(&value, &p.record_id));
                }
                _ => {
                    let mut fields = Fields::new();
                    fields.insert(field, unlinked(&value, &p.record_id));
                    patches.push((record_id, table_id, fields));
                }
            }
        }
        // Records are locked (by links_to); their tables' sequences are taken in table order.
        patches.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        for (record_id, table_id, fields) in patches {
            let uc_ctx = emit::use_case_context(event, "cascade", &record_id);
            let patch = RecordPatch { record_id, fields, expected_version: None };
            UpdateRecord
                .execute(&mut tx, &self.codec, &uc_ctx, UpdateRecordInput { table_id, patch })
                .await
                .map_err(emit::use_case_error)?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn links_to_the_deleted_record_are_removed() {
        assert_eq!(unlinked(&json!("r1"), "r1"), Json::Null);
        assert_eq!(unlinked(&json!(["r0", "r1", "r2"]), "r1"), json!(["r0", "r2"]));
    }
}
