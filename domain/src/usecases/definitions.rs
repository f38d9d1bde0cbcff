//! Checks of table and form definitions: ids, names, field definitions, field mappings.

use std::collections::{BTreeMap, HashSet};

use uuid::Uuid;

use crate::store::tables::{FieldDef, TableDef};
use crate::usecases::validate::storable_in;
use crate::usecases::{MappingFault, UseCaseError};

/// Most field definitions a table or form may have; more is
/// [`TooManyFields`](UseCaseError::TooManyFields).
pub const MAX_FIELDS: usize = 200;

/// Longest id, name or field name, in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// The given id, checked, or a new `<prefix>_<uuid without dashes>`.
pub(crate) fn id_or_new(given: Option<String>, entity: &'static str, prefix: &str) -> Result<String, UseCaseError> {
    match given {
        None => Ok(format!("{prefix}_{}", Uuid::new_v4().simple())),
        Some(id) if id.trim().is_empty() => Err(UseCaseError::InvalidId { entity, reason: "is empty" }),
        Some(id) if id.chars().count() > MAX_NAME_CHARS => {
            Err(UseCaseError::InvalidId { entity, reason: "is longer than 255 characters" })
        }
        Some(id) if id.chars().any(char::is_control) => {
            Err(UseCaseError::InvalidId { entity, reason: "holds control characters" })
        }
        Some(id) => Ok(id),
    }
}

/// A table or form name: not blank, at most [`MAX_NAME_CHARS`].
pub(crate) fn name(entity: &'static str, name: &str) -> Result<(), UseCaseError> {
    if name.trim().is_empty() {
        return Err(UseCaseError::InvalidName { entity, reason: "is empty" });
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(UseCaseError::InvalidName { entity, reason: "is longer than 255 characters" });
    }
    Ok(())
}

/// Field definitions: at most [`MAX_FIELDS`], names not blank, at most
/// [`MAX_NAME_CHARS`], unique.
pub(crate) fn fields(fields: &[FieldDef]) -> Result<(), UseCaseError> {
    if fields.len() > MAX_FIELDS {
        return Err(UseCaseError::TooManyFields { count: fields.len(), limit: MAX_FIELDS });
    }
    let mut seen = HashSet::with_capacity(fields.len());
    for (index, f) in fields.iter().enumerate() {
        if f.name.trim().is_empty() {
            return Err(UseCaseError::InvalidFieldName { index, reason: "is empty" });
        }
        if f.name.chars().count() > MAX_NAME_CHARS {
            return Err(UseCaseError::InvalidFieldName { index, reason: "is longer than 255 characters" });
        }
        if !seen.insert(f.name.as_str()) {
            return Err(UseCaseError::DuplicateField(f.name.clone()));
        }
    }
    Ok(())
}

/// A form's field mapping: every key a field of the form, every value a field of `table`
/// that can store the form field's values, no table field mapped twice, and no mapping
/// without a table.
pub(crate) fn mapping(
    form_fields: &[FieldDef],
    mapping: &BTreeMap<String, String>,
    table: Option<&TableDef>,
) -> Result<(), UseCaseError> {
    let mut targets = HashSet::with_capacity(mapping.len());
    for (form_field, table_field) in mapping {
        let fault =
            |fault| UseCaseError::InvalidMapping { form_field: form_field.clone(), table_field: table_field.clone(), fault };
        let from = form_fields.iter().find(|f| &f.name == form_field).ok_or_else(|| fault(MappingFault::UnknownFormField))?;
        let table = table.ok_or_else(|| fault(MappingFault::NoTargetTable))?;
        let to = table.field(table_field).ok_or_else(|| fault(MappingFault::UnknownTableField))?;
        if !storable_in(from.field_type, to.field_type) {
            return Err(fault(MappingFault::IncompatibleTypes { from: from.field_type, to: to.field_type }));
        }
        if !targets.insert(table_field.as_str()) {
            return Err(fault(MappingFault::TargetMappedTwice));
        }
    }
    Ok(())
}

/// Whether `e` is PostgreSQL refusing a duplicate key.
pub(crate) fn is_duplicate(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tables::FieldType;

    fn defs(names: &[&str]) -> Vec<FieldDef> {
        names.iter().map(|n| FieldDef::new(*n, FieldType::Text)).collect()
    }

    #[test]
    fn ids_are_generated_or_checked() {
        let id = id_or_new(None, "table", "tbl").unwrap();
        assert!(id.starts_with("tbl_") && id.len() == 36, "{id}");
        assert_eq!(id_or_new(Some("tbl_x".into()), "table", "tbl").unwrap(), "tbl_x");
        assert!(matches!(id_or_new(Some(" ".into()), "form", "frm"), Err(UseCaseError::InvalidId { entity: "form", .. })));
        assert!(id_or_new(Some("x".repeat(256)), "form", "frm").is_err());
        assert!(id_or_new(Some("a\nb".into()), "form", "frm").is_err());
    }

    #[test]
    fn field_definitions_are_unique_named_and_bounded() {
        assert!(fields(&defs(&["a", "b"])).is_ok());
        assert!(matches!(fields(&defs(&["a", "b", "a"])), Err(UseCaseError::DuplicateField(f)) if f == "a"));
        assert!(matches!(fields(&defs(&["a", " "])), Err(UseCaseError::InvalidFieldName { index: 1, .. })));
        let many: Vec<FieldDef> = (0..=MAX_FIELDS).map(|i| FieldDef::new(format!("f{i}"), FieldType::Text)).collect();
        assert!(matches!(fields(&many), Err(UseCaseError::TooManyFields { count: 201, limit: 200 })));
        assert!(fields(&many[..MAX_FIELDS]).is_ok());
        assert!(matches!(name("table", ""), Err(UseCaseError::InvalidName { entity: "table", .. })));
    }

    #[test]
    fn mappings_need_known_compatible_fields() {
        let table = TableDef {
            id: "t".into(),
            name: "T".into(),
            fields: vec![FieldDef::new("title", FieldType::Text), FieldDef::new("n", FieldType::Number)],
        };
        let form = vec![FieldDef::new("subject", FieldType::Text), FieldDef::new("count", FieldType::Integer)];
        let m = |pairs: &[(&str, &str)]| pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert!(mapping(&form, &m(&[("subject", "title"), ("count", "n")]), Some(&table)).is_ok());
        let fault = |pairs: &[(&str, &str)], table: Option<&TableDef>| match mapping(&form, &m(pairs), table) {
            Err(UseCaseError::InvalidMapping { fault, .. }) => Some(fault),
            _ => None,
        };
        assert_eq!(fault(&[("nope", "title")], Some(&table)), Some(MappingFault::UnknownFormField));
        assert_eq!(fault(&[("subject", "nope")], Some(&table)), Some(MappingFault::UnknownTableField));
        assert_eq!(
            fault(&[("subject", "n")], Some(&table)),
            Some(MappingFault::IncompatibleTypes { from: FieldType::Text, to: FieldType::Number })
        );
        assert_eq!(fault(&[("subject", "title")], None), Some(MappingFault::NoTargetTable));
        let form = vec![FieldDef::new("a", FieldType::Text), FieldDef::new("b", FieldType::Text)];
        let e = mapping(&form, &m(&[("a", "title"), ("b", "title")]), Some(&table)).unwrap_err();
        assert!(matches!(e, UseCaseError::InvalidMapping { fault: MappingFault::TargetMappedTwice, .. }), "{e}");
        assert!(mapping(&form, &BTreeMap::new(), None).is_ok());
    }
}
