//! Lossless JSON field values in Avro, without a recursive type.
//!
//! The spec's `fields: Record<string, unknown>` is an Avro `map` whose values are the union
//! `["null", "boolean", "long", "double", "string", JsonText]`:
//!
//! | JSON value                         | Avro branch                     |
//! |------------------------------------|---------------------------------|
//! | `null`                             | `null`                          |
//! | `true` / `false`                   | `boolean`                       |
//! | integer within i64                 | `long`                          |
//! | any other number (fraction/exp)    | `double`                        |
//! | string                             | `string`                        |
//! | array, object, integer above i64   | `JsonText { json: "<text>" }`   |
//!
//! Why: a recursive Avro type (a JSON value that contains JSON values) breaks Spark 3 and
//! parquet readers, and an untyped JSON string for every field loses the scalar types data
//! teams query on. Scalars therefore stay typed; nested values are JSON text inside a
//! named record, so a reader can tell `"[1,2]"` the string from `[1,2]` the array.

use apache_avro::types::Value;
use serde_json::{Map, Number, Value as Json};

mod lazy;

pub use lazy::LazyFields;

/// A record's fields: JSON object semantics.
pub type Fields = Map<String, Json>;

const JSON_TEXT_BRANCH: u32 = 5;

/// One JSON value as an Avro union value of the field-value union.
pub fn json_to_avro(v: &Json) -> Value {
    let (idx, inner) = match v {
        Json::Null => (0, Value::Null),
        Json::Bool(b) => (1, Value::Boolean(*b)),
        Json::Number(n) => match (n.as_i64(), n.is_f64()) {
            (Some(i), _) => (2, Value::Long(i)),
            (None, true) => (3, Value::Double(n.as_f64().unwrap_or_default())),
            // u64 above i64::MAX: keep it exact as JSON text.
            (None, false) => (JSON_TEXT_BRANCH, json_text(v)),
        },
        Json::String(s) => (4, Value::String(s.clone())),
        Json::Array(_) | Json::Object(_) => (JSON_TEXT_BRANCH, json_text(v)),
    };
    Value::Union(idx, Box::new(inner))
}

fn json_text(v: &Json) -> Value {
    Value::Record(vec![("json".to_owned(), Value::String(v.to_string()))])
}

/// A field map as an Avro map value.
pub fn fields_to_avro(fields: &Fields) -> Value {
    Value::Map(fields.iter().map(|(k, v)| (k.clone(), json_to_avro(v))).collect())
}

/// An Avro field-union value back to JSON; `None` when the value is not of that union.
pub fn avro_to_json(v: Value) -> Option<Json> {
    let v = match v {
        Value::Union(_, inner) => *inner,
        other => other,
    };
    Some(match v {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(b),
        Value::Long(i) => Json::Number(i.into()),
        Value::Int(i) => Json::Number(i.into()),
        Value::Double(d) => Json::Number(Number::from_f64(d)?),
        Value::Float(f) => Json::Number(Number::from_f64(f64::from(f))?),
        Value::String(s) => Json::String(s),
        Value::Record(mut fields) => {
            let (name, Value::String(text)) = fields.pop()? else { return None };
            if name != "json" {
                return None;
            }
            serde_json::from_str(&text).ok()?
        }
        _ => return None,
    })
}

/// An Avro map of field-union values back to a JSON object.
pub fn avro_to_fields(v: Value) -> Option<Fields> {
    let Value::Map(m) = v else { return None };
    let mut out = Fields::new();
    // HashMap order is arbitrary; sort so decoded events compare and print stably.
    let mut entries: Vec<_> = m.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in entries {
        out.insert(k, avro_to_json(v)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_json_kind_round_trips_losslessly() {
        let original = json!({
            "null": null, "yes": true, "no": false,
            "int": -42, "big": i64::MAX, "huge": u64::MAX,
            "float": 3.25, "tiny": 1e-300, "whole_float": 2.0,
            "text": "hello", "looks_like_json": "[1,2]",
            "array": [1, "two", null, [3.5, {"k": false}]],
            "object": {"nested": {"deeper": [1, 2, 3]}, "empty": {}},
            "empty_array": []
        });
        let Json::Object(fields) = original.clone() else { unreachable!() };
        let back = avro_to_fields(fields_to_avro(&fields)).unwrap();
        assert_eq!(Json::Object(back), original);
    }

    #[test]
    fn nested_doubles_come_back_bit_for_bit() {
        // Found by the direct decoder's generated inputs: without serde_json's
        // float_roundtrip, JSON text parsed back read "4326347003203254.0" as 4326347003203254.5.
        let original = json!({"a": [null, [4326347003203254.0, 4326347003203254.5]], "b": [-1793992412323330.5, 5e-324]});
        let Json::Object(fields) = original.clone() else { unreachable!() };
        assert_eq!(Json::Object(avro_to_fields(fields_to_avro(&fields)).unwrap()), original);
    }

    #[test]
    fn scalars_keep_their_avro_types_and_nested_values_become_json_text() {
        assert_eq!(json_to_avro(&json!(7)), Value::Union(2, Box::new(Value::Long(7))));
        assert_eq!(json_to_avro(&json!(7.5)), Value::Union(3, Box::new(Value::Double(7.5))));
        assert_eq!(json_to_avro(&json!("s")), Value::Union(4, Box::new(Value::String("s".into()))));
        let Value::Union(5, inner) = json_to_avro(&json!([1])) else { panic!("not JsonText") };
        assert_eq!(*inner, Value::Record(vec![("json".into(), Value::String("[1]".into()))]));
    }

    #[test]
    fn values_outside_the_union_are_refused() {
        assert_eq!(avro_to_json(Value::Bytes(vec![1])), None);
        assert_eq!(avro_to_json(Value::Record(vec![("json".into(), Value::String("{bad".into()))])), None);
        assert_eq!(avro_to_fields(Value::Array(vec![])), None);
    }
}
