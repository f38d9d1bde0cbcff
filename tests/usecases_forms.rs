//! The table and form use cases against a real PostgreSQL (one fresh database per test)
//! and the real schema registry (one topic prefix per test): definitions are checked
//! before anything is written, tables and forms emit nothing, and a submission is stored
//! with exactly one FormSubmitted outbox row, or nothing at all.

use ltf_producers::api::error::status_of;
use std::collections::BTreeMap;

use anyhow::{bail, Result};
use ltf_domain::usecases::{FieldDef, FieldType, MappingFault};
use ltf_domain::{
    ChangeContext, CreateForm, CreateFormInput, CreateTable, CreateTableInput, SubmitForm, SubmitFormInput, UseCase, UseCaseError,
};
use ltf_schemas::{AggregateType, EventCodec, EventPayload, Fields, TopicNames};
use ltf_tests::{count_rows as count, fresh_database, outbox_rows as outbox, registry_url, unique_prefix, TestDb};
use serde_json::{json, Value};
use sqlx::PgPool;

fn f(v: Value) -> Fields {
    v.as_object().cloned().expect("a JSON object")
}

fn user() -> ChangeContext {
    ChangeContext::user("user_1")
}

async fn setup(test: &str) -> Result<(TestDb, EventCodec)> {
    let db = fresh_database().await?;
    let codec = EventCodec::new(&registry_url(), TopicNames::new(unique_prefix(test)))?;
    Ok((db, codec))
}

fn leads_table() -> CreateTableInput {
    CreateTableInput {
        id: Some("tbl_leads".into()),
        name: "Leads".into(),
        fields: vec![
            FieldDef::new("name", FieldType::Text),
            FieldDef::new("email", FieldType::Text),
            FieldDef::new("budget", FieldType::Number),
            FieldDef::new("extra", FieldType::Json),
        ],
    }
}

fn contact_form() -> CreateFormInput {
    CreateFormInput {
        id: Some("frm_contact".into()),
        name: "Contact us".into(),
        table_id: Some("tbl_leads".into()),
        fields: vec![
            FieldDef::new("full_name", FieldType::Text),
            FieldDef::new("mail", FieldType::Text),
            FieldDef::new("seats", FieldType::Integer),
            FieldDef::new("newsletter", FieldType::Boolean),
        ],
        field_mapping: BTreeMap::from([
            ("full_name".into(), "name".into()),
            ("mail".into(), "email".into()),
            ("seats".into(), "budget".into()),
            ("newsletter".into(), "extra".into()),
        ]),
    }
}

async fn assert_no_outbox(pool: &PgPool) -> Result<()> {
    assert_eq!(count(pool, "ltf_outbox").await?, 0, "outbox rows");
    assert_eq!(count(pool, "ltf_aggregate_sequences").await?, 0, "sequences");
    Ok(())
}

#[tokio::test]
async fn creating_a_table_and_a_form_with_a_mapping_stores_both_and_emits_nothing() -> Result<()> {
    let (db, codec) = setup("uc-forms-create").await?;
    let table = CreateTable.run(&db.pool, &codec, &user(), leads_table()).await?;
    assert_eq!(table.value.id, "tbl_leads");
    assert!(table.events.is_empty());
    let form = CreateForm.run(&db.pool, &codec, &user(), contact_form()).await?;
    assert!(form.events.is_empty());
    assert_eq!(form.value.field_mapping["seats"], "budget");
    let (table_id, mapping): (Option<String>, sqlx::types::Json<BTreeMap<String, String>>) =
        sqlx::query_as("SELECT table_id, field_mapping FROM ltf_forms WHERE id = 'frm_contact'").fetch_one(&db.pool).await?;
    assert_eq!(table_id.as_deref(), Some("tbl_leads"));
    assert_eq!(mapping.0, contact_form().field_mapping);

    // Generated ids; a form needs no table.
    let generated =
        CreateTable.run(&db.pool, &codec, &user(), CreateTableInput { id: None, name: "Empty".into(), fields: vec![] }).await?;
    assert!(generated.value.id.starts_with("tbl_"), "{}", generated.value.id);
    let input = CreateFormInput { id: None, table_id: None, field_mapping: BTreeMap::new(), ..contact_form() };
    let standalone = CreateForm.run(&db.pool, &codec, &user(), input).await?;
    assert!(standalone.value.id.starts_with("frm_"), "{}", standalone.value.id);
    assert_eq!((count(&db.pool, "ltf_tables").await?, count(&db.pool, "ltf_forms").await?), (2, 2));
    assert_no_outbox(&db.pool).await?;

    // The API's JSON shape: camelCase keys, unknown keys refused.
    let json = json!({"name": "From JSON", "tableId": "tbl_leads", "fields": [{"name": "n", "type": "text"}],
                      "fieldMapping": {"n": "name"}});
    let input: CreateFormInput = serde_json::from_value(json)?;
    assert_eq!(input.field_mapping["n"], "name");
    assert!(serde_json::from_value::<CreateTableInput>(json!({"name": "x", "columns": []})).is_err());
    db.drop_database().await
}

/// Whether an error is the one a case expects.
type Expect = fn(&UseCaseError) -> bool;

#[tokio::test]
async fn bad_table_definitions_are_refused_with_their_error_and_write_nothing() -> Result<()> {
    let (db, codec) = setup("uc-forms-bad-table").await?;
    let with = |name: &str, fields: Vec<FieldDef>| CreateTableInput { id: None, name: name.into(), fields };
    let text = |n: &str| FieldDef::new(n, FieldType::Text);
    let many: Vec<FieldDef> = (0..201).map(|i| text(&format!("f{i}"))).collect();
    let cases: Vec<(CreateTableInput, Expect)> = vec![
        (with(" ", vec![]), |e| matches!(e, UseCaseError::InvalidName { entity: "table", .. })),
        (with("T", vec![text("a"), text("b"), text("a")]), |e| matches!(e, UseCaseError::DuplicateField(f) if f == "a")),
        (with("T", vec![text("a"), text("")]), |e| matches!(e, UseCaseError::InvalidFieldName { index: 1, .. })),
        (with("T", many), |e| matches!(e, UseCaseError::TooManyFields { count: 201, limit: 200 })),
        (CreateTableInput { id: Some(String::new()), ..with("T", vec![]) }, |e| {
            matches!(e, UseCaseError::InvalidId { entity: "table", .. })
        }),
    ];
    for (input, expected) in cases {
        let err = CreateTable.run(&db.pool, &codec, &user(), input).await.unwrap_err();
        assert!(expected(&err), "{err:?}");
        assert_eq!(status_of(&err).as_u16(), 400, "{err}");
    }
    assert_eq!(count(&db.pool, "ltf_tables").await?, 0);

    CreateTable.run(&db.pool, &codec, &user(), leads_table()).await?;
    let again = CreateTableInput { name: "Another".into(), ..leads_table() };
    let err = CreateTable.run(&db.pool, &codec, &user(), again).await.unwrap_err();
    assert!(matches!(&err, UseCaseError::AlreadyExists { entity: "table", id } if id == "tbl_leads"), "{err:?}");
    assert_eq!(status_of(&err).as_u16(), 409);
    assert!(err.is_conflict());
    let name: String = sqlx::query_scalar("SELECT name FROM ltf_tables WHERE id = 'tbl_leads'").fetch_one(&db.pool).await?;
    assert_eq!(name, "Leads", "the existing table is unchanged");
    assert_eq!(count(&db.pool, "ltf_tables").await?, 1);
    assert_no_outbox(&db.pool).await?;
    db.drop_database().await
}

#[tokio::test]
async fn bad_form_definitions_are_refused_with_their_error_and_write_nothing() -> Result<()> {
    let (db, codec) = setup("uc-forms-bad-form").await?;
    CreateTable.run(&db.pool, &codec, &user(), leads_table()).await?;
    let mapped = |pairs: &[(&str, &str)]| CreateFormInput {
        field_mapping: pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        ..contact_form()
    };
    let fault = |e: &UseCaseError| match e {
        UseCaseError::InvalidMapping { fault, .. } => Some(*fault),
        _ => None,
    };

    let err = CreateForm.run(&db.pool, &codec, &user(), mapped(&[("phone", "name")])).await.unwrap_err();
    assert_eq!(fault(&err), Some(MappingFault::UnknownFormField), "{err:?}");
    assert_eq!(status_of(&err).as_u16(), 400);
    let err = CreateForm.run(&db.pool, &codec, &user(), mapped(&[("mail", "e_mail")])).await.unwrap_err();
    assert_eq!(fault(&err), Some(MappingFault::UnknownTableField), "{err:?}");
    let err = CreateForm.run(&db.pool, &codec, &user(), mapped(&[("newsletter", "budget")])).await.unwrap_err();
    assert_eq!(fault(&err), Some(MappingFault::IncompatibleTypes { from: FieldType::Boolean, to: FieldType::Number }), "{err:?}");
    let err = CreateForm.run(&db.pool, &codec, &user(), mapped(&[("full_name", "name"), ("mail", "name")])).await.unwrap_err();
    assert_eq!(fault(&err), Some(MappingFault::TargetMappedTwice), "{err:?}");
    let no_table = CreateFormInput { table_id: None, ..contact_form() };
    let err = CreateForm.run(&db.pool, &codec, &user(), no_table).await.unwrap_err();
    assert_eq!(fault(&err), Some(MappingFault::NoTargetTable), "{err:?}");
    let unknown_table = CreateFormInput { table_id: Some("tbl_nope".into()), ..contact_form() };
    let err = CreateForm.run(&db.pool, &codec, &user(), unknown_table).await.unwrap_err();
    assert!(matches!(&err, UseCaseError::UnknownTable(t) if t == "tbl_nope"), "{err:?}");
    assert_eq!(status_of(&err).as_u16(), 404);
    let duplicate_field = CreateFormInput {
        fields: vec![FieldDef::new("x", FieldType::Text), FieldDef::new("x", FieldType::Date)],
        field_mapping: BTreeMap::new(),
        ..contact_form()
    };
    let err = CreateForm.run(&db.pool, &codec, &user(), duplicate_field).await.unwrap_err();
    assert!(matches!(&err, UseCaseError::DuplicateField(f) if f == "x"), "{err:?}");
    let err = CreateForm.run(&db.pool, &codec, &user(), CreateFormInput { name: "".into(), ..contact_form() }).await.unwrap_err();
    assert!(matches!(err, UseCaseError::InvalidName { entity: "form", .. }), "{err:?}");
    assert_eq!(count(&db.pool, "ltf_forms").await?, 0);

    CreateForm.run(&db.pool, &codec, &user(), contact_form()).await?;
    let err = CreateForm.run(&db.pool, &codec, &user(), contact_form()).await.unwrap_err();
    assert!(matches!(&err, UseCaseError::AlreadyExists { entity: "form", id } if id == "frm_contact"), "{err:?}");
    assert_eq!(status_of(&err).as_u16(), 409);
    assert_eq!(count(&db.pool, "ltf_forms").await?, 1);
    assert_no_outbox(&db.pool).await?;
    db.drop_database().await
}

#[tokio::test]
async fn submitting_a_form_writes_the_submission_and_one_outbox_row_that_decodes_to_form_submitted() -> Result<()> {
    let (db, codec) = setup("uc-forms-submit").await?;
    CreateTable.run(&db.pool, &codec, &user(), leads_table()).await?;
    CreateForm.run(&db.pool, &codec, &user(), contact_form()).await?;
    let data = f(json!({"full_name": "Ada", "mail": "ada@example.test", "seats": 12, "newsletter": null}));
    let ctx = user().with_correlation_id("req-42");
    let out =
        SubmitForm.run(&db.pool, &codec, &ctx, SubmitFormInput { form_id: "frm_contact".into(), data: data.clone() }).await?;
    assert_eq!(out.value.form_id, "frm_contact");
    assert_eq!(out.value.data, data);
    assert_eq!(out.value.submitted_by.as_deref(), Some("user_1"));
    assert!(out.value.id.starts_with("sub_"), "{}", out.value.id);
    let stored: (String, sqlx::types::Json<Fields>, Option<String>) =
        sqlx::query_as("SELECT form_id, data, submitted_by FROM ltf_form_submissions WHERE id = $1")
            .bind(&out.value.id)
            .fetch_one(&db.pool)
            .await?;
    assert_eq!((stored.0.as_str(), &stored.1 .0, stored.2.as_deref()), ("frm_contact", &data, Some("user_1")));

    let rows = outbox(&db.pool).await?;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.key, "frm_contact", "key = form id");
    assert_eq!((row.aggregate_type.as_str(), row.aggregate_id.as_str()), ("form", "frm_contact"));
    assert_eq!((row.aggregate_sequence, row.event_type.as_str()), (1, "form-submitted"));
    assert_eq!(row.topic, codec.topics().events(AggregateType::Form));
    let reader = EventCodec::new(&registry_url(), codec.topics().clone())?;
    let decoded = reader.decode(&row.value).await?;
    assert_eq!(decoded, out.events[0]);
    assert_eq!(decoded.aggregate_id(), "frm_contact");
    assert_eq!(decoded.envelope.correlation_id, "req-42");
    let EventPayload::FormSubmitted(p) = &decoded.payload else { bail!("not FormSubmitted: {decoded:?}") };
    assert_eq!((p.form_id.as_str(), p.submission_id.as_str()), ("frm_contact", out.value.id.as_str()));
    assert_eq!(p.data, data);
    assert_eq!(p.submitted_by.as_deref(), Some("user_1"));
    assert_eq!(row.header("event-id"), Some(row.event_id.to_string().as_str()));
    assert_eq!(row.header("event-type"), Some("form-submitted"));
    assert_eq!(row.header("ordering-key"), Some("frm_contact"));
    assert_eq!(row.header("correlation-id"), Some("req-42"));

    // A second submission: the next sequence of the same aggregate.
    let again = SubmitFormInput { form_id: "frm_contact".into(), data: f(json!({"mail": "b@example.test"})) };
    SubmitForm.run(&db.pool, &codec, &ChangeContext::default(), again).await?;
    let rows = outbox(&db.pool).await?;
    assert_eq!(rows.iter().map(|r| r.aggregate_sequence).collect::<Vec<_>>(), vec![1, 2]);
    let EventPayload::FormSubmitted(p) = codec.decode(&rows[1].value).await?.payload else { bail!("not FormSubmitted") };
    assert_eq!(p.submitted_by, None);
    db.drop_database().await
}

#[tokio::test]
async fn an_invalid_submission_is_refused_with_its_error_and_writes_nothing() -> Result<()> {
    let (db, codec) = setup("uc-forms-submit-invalid").await?;
    CreateTable.run(&db.pool, &codec, &user(), leads_table()).await?;
    CreateForm.run(&db.pool, &codec, &user(), contact_form()).await?;
    let submit = |form: &str, data: Value| SubmitFormInput { form_id: form.into(), data: f(data) };

    let err = SubmitForm.run(&db.pool, &codec, &user(), submit("frm_nope", json!({}))).await.unwrap_err();
    assert!(matches!(&err, UseCaseError::UnknownForm(id) if id == "frm_nope"), "{err:?}");
    assert_eq!(status_of(&err).as_u16(), 404);
    let err =
        SubmitForm.run(&db.pool, &codec, &user(), submit("frm_contact", json!({"mail": "a", "phone": "1"}))).await.unwrap_err();
    assert!(
        matches!(&err, UseCaseError::UnknownFormField { form, field } if form == "frm_contact" && field == "phone"),
        "{err:?}"
    );
    assert_eq!(status_of(&err).as_u16(), 400);
    let err = SubmitForm.run(&db.pool, &codec, &user(), submit("frm_contact", json!({"seats": 2.5}))).await.unwrap_err();
    assert!(
        matches!(&err, UseCaseError::WrongFieldType { field, expected: FieldType::Integer, .. } if field == "seats"),
        "{err:?}"
    );
    assert_eq!(status_of(&err).as_u16(), 400);
    let err = SubmitForm.run(&db.pool, &codec, &user(), submit("frm_contact", json!({"newsletter": "yes"}))).await.unwrap_err();
    assert!(matches!(err, UseCaseError::WrongFieldType { .. }), "{err:?}");

    assert_eq!(count(&db.pool, "ltf_form_submissions").await?, 0);
    assert_no_outbox(&db.pool).await?;
    db.drop_database().await
}
