//! What the `automation` and `api_bodies` fuzz targets in `fuzz/` run, callable from stable
//! tests too: their corpora under `fuzz/corpus/<target>/` are replayed by `cargo test -p
//! ltf-domain` (`tests/fuzz_corpus.rs`). Pure functions only: no database, no network.

use std::collections::BTreeMap;

use ltf_schemas::examples::samples;
use ltf_schemas::Fields;
use serde::de::DeserializeOwned;
use serde_json::{json, Value as Json};

use crate::automations::{render, render_fields, render_json, trigger_data, ActionKind, Automation};
use crate::store::forms::FormDef;
use crate::store::tables::{FieldDef, FieldType, TableDef};
use crate::usecases::requests::{
    AuthenticateConnectionRequest, CreateFormRequest, CreateRecordRequest, CreateRecordsRequest, CreateTableRequest,
    DeleteRecordsRequest, SubmitFormRequest, UpdateRecordRequest, UpdateRecordsRequest,
};
use crate::usecases::{definitions, validate, RecordLimits, UseCaseError};

/// The `automation` target: a POST /automations body. Parses it as an [`Automation`] (as the
/// API does), checks that the definition as stored reads back equal, validates it, and for
/// every sample event evaluates the trigger and renders every templated string of every
/// action against the event's trigger data (plus one earlier step's data). Returns how many
/// templates rendered without a missing path.
///
/// Panics only on a bug: a definition that does not read back as it was stored.
pub fn automation(data: &[u8]) -> usize {
    let Ok(automation) = serde_json::from_slice::<Automation>(data) else { return 0 };
    let stored = serde_json::to_value(&automation).expect("an automation serializes");
    let back: Automation = serde_json::from_value(stored).expect("a stored automation reads back");
    assert_eq!(back, automation, "a stored automation reads back changed");
    if automation.validate().is_err() {
        return 0;
    }
    let mut rendered = 0;
    for event in samples() {
        let _ = automation.trigger.matches(&event.payload);
        let Some(fields) = trigger_data(&event.payload) else { continue };
        let mut data = Json::Object(fields);
        data["steps"] = json!({"first": {"recordId": "rec_2", "status": 200, "tags": ["a", {"b": null}]}});
        for action in &automation.actions {
            let results = match &action.kind {
                ActionKind::Webhook { body, .. } => vec![body.as_ref().map(|b| render_json(b, &data).is_ok()).unwrap_or(true)],
                ActionKind::Email { to, subject, body } => {
                    [to, subject, body].into_iter().map(|t| render(t, &data).is_ok()).collect()
                }
                ActionKind::CreateRecord { fields, .. } => vec![render_fields(fields, &data).is_ok()],
                ActionKind::UpdateRecord { record_id, fields, .. } => {
                    vec![render(record_id, &data).is_ok(), render_fields(fields, &data).is_ok()]
                }
                ActionKind::Notify { message, .. } => vec![render(message, &data).is_ok()],
            };
            rendered += results.into_iter().filter(|ok| *ok).count();
        }
    }
    rendered
}

/// The request bodies the `api_bodies` target parses, one per write route with a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BodyKind {
    /// `POST /v1/tables/{tableId}/records` ([`CreateRecordRequest`]).
    CreateRecord,
    /// `POST /v1/tables/{tableId}/records/batch` ([`CreateRecordsRequest`]).
    CreateRecords,
    /// `PATCH /v1/tables/{tableId}/records/{recordId}` ([`UpdateRecordRequest`]).
    UpdateRecord,
    /// `PATCH /v1/tables/{tableId}/records` ([`UpdateRecordsRequest`]).
    UpdateRecords,
    /// `POST /v1/tables/{tableId}/records/delete` ([`DeleteRecordsRequest`]).
    DeleteRecords,
    /// `POST /v1/tables` ([`CreateTableRequest`]).
    CreateTable,
    /// `POST /v1/forms` ([`CreateFormRequest`]).
    CreateForm,
    /// `POST /v1/forms/{formId}/submissions` ([`SubmitFormRequest`]).
    SubmitForm,
    /// `POST /v1/connections` ([`AuthenticateConnectionRequest`]).
    AuthenticateConnection,
    /// `POST /v1/automations` ([`Automation`]).
    CreateAutomation,
}

impl BodyKind {
    /// Every kind, in the order of their selecting digits `0` to `9`.
    pub const ALL: [BodyKind; 10] = [
        BodyKind::CreateRecord,
        BodyKind::CreateRecords,
        BodyKind::UpdateRecord,
        BodyKind::UpdateRecords,
        BodyKind::DeleteRecords,
        BodyKind::CreateTable,
        BodyKind::CreateForm,
        BodyKind::SubmitForm,
        BodyKind::AuthenticateConnection,
        BodyKind::CreateAutomation,
    ];

    /// The kind an input's first byte selects: the ASCII digit `i` selects `ALL[i]` (the
    /// committed seeds start with one), any other byte the kind its distance from `0`
    /// modulo 10 names.
    pub fn from_byte(byte: u8) -> BodyKind {
        BodyKind::ALL[usize::from(byte.wrapping_sub(b'0')) % BodyKind::ALL.len()]
    }
}

/// What the API makes of a body before any database access.
#[derive(Debug)]
pub enum BodyVerdict {
    /// Not JSON of the body's type (unknown keys included): the extractor refuses it.
    Malformed,
    /// Parsed, then refused by a check the use case makes before the database.
    Refused(UseCaseError),
    /// Parsed and accepted by those checks: the use case would go on to the database.
    Accepted,
}

/// The table of [`api_body`]'s record routes and form mappings: one field of every type.
pub fn sample_table() -> TableDef {
    TableDef { id: "tbl_sample".into(), name: "Sample".into(), fields: every_field_type() }
}

/// The form of [`api_body`]'s submissions: one field of every type, mapped onto
/// [`sample_table`].
pub fn sample_form() -> FormDef {
    let fields = every_field_type();
    let field_mapping: BTreeMap<String, String> = fields.iter().map(|f| (f.name.clone(), f.name.clone())).collect();
    FormDef { id: "frm_sample".into(), name: "Sample".into(), table_id: Some("tbl_sample".into()), fields, field_mapping }
}

fn every_field_type() -> Vec<FieldDef> {
    use FieldType::*;
    [("title", Text), ("amount", Number), ("count", Integer), ("done", Boolean), ("due", Date), ("meta", Json), ("owner", Link)]
        .into_iter()
        .map(|(name, ty)| FieldDef::new(name, ty))
        .collect()
}

/// The batch limit of [`api_body`]'s batch routes (the API's is configured, 1000 by
/// default): small, so that oversized batches are reached.
pub const FUZZ_MAX_BATCH: usize = 8;

/// The `api_bodies` target: the first byte picks a [`BodyKind`], the rest is that route's
/// JSON body. Parses it as the API's extractor does (`serde_json` into the route's body
/// type), turns it into the use case's input as the handler does, then runs the checks
/// that use case makes before it touches the database, against a database holding only
/// [`sample_table`] and [`sample_form`] (the route's path names them). A refusal's message
/// is rendered, as the API's error body does. `None` for an empty input.
///
/// Never panics: a panic is a bug.
pub fn api_body(data: &[u8]) -> Option<(BodyKind, BodyVerdict)> {
    let (&first, body) = data.split_first()?;
    let kind = BodyKind::from_byte(first);
    let table = sample_table();
    let limits = RecordLimits { max_batch: FUZZ_MAX_BATCH };
    let checked: Option<Result<(), UseCaseError>> = match kind {
        BodyKind::CreateRecord => parse::<CreateRecordRequest>(body).map(|req| {
            let input = req.input(table.id.clone());
            records(&table, [&input.fields])
        }),
        BodyKind::CreateRecords => parse::<CreateRecordsRequest>(body).map(|req| {
            let input = req.input(table.id.clone());
            validate::batch(input.records.len(), &limits)?;
            records(&table, &input.records)
        }),
        BodyKind::UpdateRecord => parse::<UpdateRecordRequest>(body).map(|req| {
            let input = req.input(table.id.clone(), "rec_1".into());
            records(&table, [&input.patch.fields])
        }),
        BodyKind::UpdateRecords => parse::<UpdateRecordsRequest>(body).map(|req| {
            let input = req.input(table.id.clone());
            validate::batch(input.patches.len(), &limits)?;
            records(&table, input.patches.iter().map(|p| &p.fields))
        }),
        BodyKind::DeleteRecords => parse::<DeleteRecordsRequest>(body).map(|req| {
            let input = req.input(table.id.clone());
            validate::batch(input.records.len(), &limits)
        }),
        BodyKind::CreateTable => parse::<CreateTableRequest>(body).map(|req| req.input().definition().map(drop)),
        BodyKind::CreateForm => parse::<CreateFormRequest>(body).map(|req| {
            let form = req.input().definition()?;
            let target = match &form.table_id {
                Some(id) if *id == table.id => Some(&table),
                Some(id) => return Err(UseCaseError::UnknownTable(id.clone())),
                None => None,
            };
            definitions::mapping(&form.fields, &form.field_mapping, target)
        }),
        BodyKind::SubmitForm => parse::<SubmitFormRequest>(body).map(|req| {
            let form = sample_form();
            let input = req.input(form.id.clone());
            validate::submission(&form, &input.data)
        }),
        BodyKind::AuthenticateConnection => {
            parse::<AuthenticateConnectionRequest>(body).map(|req| req.input(Some("usr_caller".into())).checked_id().map(drop))
        }
        BodyKind::CreateAutomation => parse::<Automation>(body).map(|a| a.validate().map_err(UseCaseError::from)),
    };
    let verdict = match checked {
        None => BodyVerdict::Malformed,
        Some(Ok(())) => BodyVerdict::Accepted,
        Some(Err(e)) => {
            let _message = e.to_string();
            BodyVerdict::Refused(e)
        }
    };
    Some((kind, verdict))
}

/// Each record's fields against `table`, as the record use cases check them.
fn records<'a>(table: &TableDef, fields: impl IntoIterator<Item = &'a Fields>) -> Result<(), UseCaseError> {
    fields.into_iter().enumerate().try_for_each(|(index, f)| validate::fields(table, f, index))
}

/// A body as axum's `Json` extractor reads it.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::from_slice(body).ok()
}
