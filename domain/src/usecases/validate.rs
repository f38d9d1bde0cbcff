//! Input validation: batch sizes, and field values against the field definitions of a
//! table (records) or a form (submissions).

use chrono::{DateTime, NaiveDate};
use ltf_schemas::Fields;
use serde_json::Value;

use sqlx::PgConnection;

use crate::store::forms::{self, FormDef};
use crate::store::tables::{self, FieldDef, FieldType, TableDef};
use crate::usecases::{RecordLimits, UseCaseError};

/// The table's definition, share-locked until the transaction ends (so it cannot change
/// while its records are validated and written); an unknown table is refused.
pub async fn table(conn: &mut PgConnection, table_id: &str) -> Result<TableDef, UseCaseError> {
    tables::find_for_share(conn, table_id).await?.ok_or_else(|| UseCaseError::UnknownTable(table_id.to_owned()))
}

/// A batch must hold at least one record and at most `limits.max_batch`: an empty one is
/// [`UseCaseError::EmptyBatch`], a larger one [`UseCaseError::BatchTooLarge`].
pub fn batch(size: usize, limits: &RecordLimits) -> Result<(), UseCaseError> {
    if size == 0 {
        return Err(UseCaseError::EmptyBatch);
    }
    if size > limits.max_batch {
        return Err(UseCaseError::BatchTooLarge { size, limit: limits.max_batch });
    }
    Ok(())
}

/// Every key of `fields` must be a field of `table` and its value of the field's type;
/// `null` is accepted for every type (an empty value). `index` is the record's position in
/// the request, reported in the error.
pub fn fields(table: &TableDef, fields: &Fields, index: usize) -> Result<(), UseCaseError> {
    values(&table.fields, fields).map_err(|fault| match fault {
        FieldFault::Unknown(field) => UseCaseError::UnknownField { table: table.id.clone(), field, index },
        FieldFault::WrongType { field, expected, got } => UseCaseError::WrongFieldType { field, expected, got, index },
    })
}

/// The form's definition, share-locked until the transaction ends; an unknown form is
/// refused.
pub async fn form(conn: &mut PgConnection, form_id: &str) -> Result<FormDef, UseCaseError> {
    forms::find_for_share(conn, form_id).await?.ok_or_else(|| UseCaseError::UnknownForm(form_id.to_owned()))
}

/// A form submission: every key of `data` must be a field of `form` and its value of the
/// field's type (`null` accepted for every type).
pub fn submission(form: &FormDef, data: &Fields) -> Result<(), UseCaseError> {
    values(&form.fields, data).map_err(|fault| match fault {
        FieldFault::Unknown(field) => UseCaseError::UnknownFormField { form: form.id.clone(), field },
        FieldFault::WrongType { field, expected, got } => UseCaseError::WrongFieldType { field, expected, got, index: 0 },
    })
}

/// A value that does not fit a list of field definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldFault {
    /// No definition has this name.
    Unknown(String),
    /// The value does not have the field's type.
    WrongType {
        /// The field name.
        field: String,
        /// The defined type.
        expected: FieldType,
        /// What the value is instead ([`value_of_type`]'s description).
        got: String,
    },
}

/// Every key of `values` must name one of `defs` and its value be of that field's type;
/// the first fault found is returned.
pub fn values(defs: &[FieldDef], values: &Fields) -> Result<(), FieldFault> {
    for (name, value) in values {
        let def = defs.iter().find(|d| &d.name == name).ok_or_else(|| FieldFault::Unknown(name.clone()))?;
        if let Err(got) = value_of_type(def.field_type, value) {
            return Err(FieldFault::WrongType { field: name.clone(), expected: def.field_type, got });
        }
    }
    Ok(())
}

/// Whether every value valid for a field of type `from` is valid for one of type `to`
/// (so a form field of type `from` may be mapped onto a table field of type `to`): the
/// same type, any type into `json`, `integer` into `number`, `date` into `text`.
pub fn storable_in(from: FieldType, to: FieldType) -> bool {
    from == to
        || to == FieldType::Json
        || matches!((from, to), (FieldType::Integer, FieldType::Number) | (FieldType::Date, FieldType::Text))
}

/// Whether `value` is a value of `ty`; if not, a description of what it is.
pub fn value_of_type(ty: FieldType, value: &Value) -> Result<(), String> {
    let ok = match (ty, value) {
        (_, Value::Null) | (FieldType::Json, _) => true,
        (FieldType::Text, Value::String(_)) => true,
        (FieldType::Number, Value::Number(_)) => true,
        (FieldType::Integer, Value::Number(n)) => {
            if n.is_f64() {
                return Err("a number with a fraction or an exponent".into());
            }
            true
        }
        (FieldType::Boolean, Value::Bool(_)) => true,
        (FieldType::Date, Value::String(s)) => {
            if !is_date(s) {
                return Err("a string that is not an ISO 8601 date or RFC 3339 date-time".into());
            }
            true
        }
        (FieldType::Link, Value::String(_)) => true,
        (FieldType::Link, Value::Array(ids)) => {
            if !ids.iter().all(Value::is_string) {
                return Err("an array that is not only record ids".into());
            }
            true
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(kind(value).to_owned())
    }
}

fn is_date(s: &str) -> bool {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() || DateTime::parse_from_rfc3339(s).is_ok()
}

/// The JSON kind of a value, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tables::FieldDef;
    use serde_json::json;

    fn table() -> TableDef {
        TableDef {
            id: "tbl".into(),
            name: "Tasks".into(),
            fields: vec![
                FieldDef::new("title", FieldType::Text),
                FieldDef::new("points", FieldType::Integer),
                FieldDef::new("due", FieldType::Date),
            ],
        }
    }

    fn f(v: Value) -> Fields {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn every_type_accepts_its_values_and_null() {
        let cases = [
            (FieldType::Text, json!("x")),
            (FieldType::Number, json!(1.5)),
            (FieldType::Number, json!(-3)),
            (FieldType::Integer, json!(7)),
            (FieldType::Integer, json!(u64::MAX)),
            (FieldType::Boolean, json!(false)),
            (FieldType::Date, json!("2024-05-01")),
            (FieldType::Date, json!("2024-05-01T10:00:00Z")),
            (FieldType::Json, json!({"a": [1]})),
            (FieldType::Link, json!("rec_1")),
            (FieldType::Link, json!(["rec_1", "rec_2"])),
        ];
        for (ty, v) in cases {
            assert_eq!(value_of_type(ty, &v), Ok(()), "{ty} {v}");
            assert_eq!(value_of_type(ty, &Value::Null), Ok(()), "{ty} null");
        }
    }

    #[test]
    fn wrong_values_say_what_they_are() {
        assert_eq!(value_of_type(FieldType::Text, &json!(1)), Err("number".into()));
        assert_eq!(value_of_type(FieldType::Integer, &json!("1")), Err("string".into()));
        assert!(value_of_type(FieldType::Integer, &json!(1.5)).unwrap_err().contains("fraction"));
        assert!(value_of_type(FieldType::Date, &json!("yesterday")).unwrap_err().contains("not an ISO 8601 date"));
        assert_eq!(value_of_type(FieldType::Boolean, &json!([])), Err("array".into()));
        assert!(value_of_type(FieldType::Link, &json!(["a", 1])).is_err());
    }

    #[test]
    fn fields_are_checked_against_the_table() {
        assert!(fields(&table(), &f(json!({"title": "a", "points": 3, "due": null})), 0).is_ok());
        let e = fields(&table(), &f(json!({"title": "a", "color": "red"})), 4).unwrap_err();
        assert!(matches!(&e, UseCaseError::UnknownField { table, field, index: 4 } if table == "tbl" && field == "color"), "{e}");
        let e = fields(&table(), &f(json!({"points": "3"})), 0).unwrap_err();
        assert!(
            matches!(&e, UseCaseError::WrongFieldType { field, expected: FieldType::Integer, got, .. } if field == "points" && got == "string"),
            "{e}"
        );
    }

    #[test]
    fn submissions_are_checked_against_the_form() {
        let form = FormDef {
            id: "frm".into(),
            name: "Contact".into(),
            table_id: None,
            fields: vec![FieldDef::new("email", FieldType::Text), FieldDef::new("age", FieldType::Integer)],
            field_mapping: Default::default(),
        };
        assert!(submission(&form, &f(json!({"email": "a@b.c", "age": null}))).is_ok());
        let e = submission(&form, &f(json!({"phone": "1"}))).unwrap_err();
        assert!(matches!(&e, UseCaseError::UnknownFormField { form, field } if form == "frm" && field == "phone"), "{e}");
        let e = submission(&form, &f(json!({"age": "old"}))).unwrap_err();
        assert!(matches!(&e, UseCaseError::WrongFieldType { field, expected: FieldType::Integer, .. } if field == "age"), "{e}");
    }

    #[test]
    fn storable_types_accept_every_value_of_the_source_type() {
        use FieldType::*;
        let samples = [json!("x"), json!(1.5), json!(3), json!(true), json!("2024-05-01"), json!({"a": 1}), json!(["r1"])];
        let all = [Text, Number, Integer, Boolean, Date, Json, Link];
        for from in all {
            for to in all {
                if storable_in(from, to) {
                    for v in samples.iter().filter(|v| value_of_type(from, v).is_ok()) {
                        assert_eq!(value_of_type(to, v), Ok(()), "{from} -> {to}: {v}");
                    }
                }
            }
        }
        assert!(storable_in(Integer, Number) && storable_in(Link, Json) && storable_in(Date, Text));
        assert!(!storable_in(Number, Integer) && !storable_in(Text, Date) && !storable_in(Text, Link));
    }

    #[test]
    fn batches_are_bounded() {
        let limits = RecordLimits { max_batch: 2 };
        assert!(matches!(batch(0, &limits), Err(UseCaseError::EmptyBatch)));
        assert!(batch(2, &limits).is_ok());
        assert!(matches!(batch(3, &limits), Err(UseCaseError::BatchTooLarge { size: 3, limit: 2 })));
    }
}
