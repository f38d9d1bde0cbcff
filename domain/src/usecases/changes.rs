//! What an update changes: merging a patch into stored fields and naming the changed keys.

use ltf_schemas::Fields;
/// The fields after applying `patch` to `stored`: a key set to `null` is removed, any other
/// value replaces the stored one whole (top-level merge, as in RFC 7396 for one level).
pub fn merge(stored: &Fields, patch: &Fields) -> Fields {
    let mut out = stored.clone();
    for (k, v) in patch {
        if v.is_null() {
            out.remove(k);
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// The keys whose value differs between `previous` and `current`, including keys only one
/// of them has; sorted.
pub fn changed_fields(previous: &Fields, current: &Fields) -> Vec<String> {
    let mut keys: Vec<String> = previous
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(current.keys().filter(|k| !previous.contains_key(*k)).cloned())
        .collect();
    keys.sort();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn f(v: Value) -> Fields {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn merge_replaces_adds_and_removes() {
        let stored = f(json!({"a": 1, "b": {"x": 1, "y": 2}, "c": "keep"}));
        let patch = f(json!({"a": 2, "b": {"x": 1}, "d": true, "c": null, "zz": null}));
        assert_eq!(merge(&stored, &patch), f(json!({"a": 2, "b": {"x": 1}, "d": true})));
    }

    #[test]
    fn changed_fields_include_added_removed_and_nested_changes() {
        let prev = f(json!({"same": 1, "changed": "a", "removed": true, "nested": [1, 2]}));
        let cur = f(json!({"same": 1, "changed": "b", "added": null, "nested": [1, 3]}));
        assert_eq!(changed_fields(&prev, &cur), vec!["added", "changed", "nested", "removed"]);
        assert!(changed_fields(&prev, &prev).is_empty());
    }

    #[test]
    fn a_patch_equal_to_the_stored_values_changes_nothing() {
        let stored = f(json!({"a": 1, "b": "x"}));
        assert!(changed_fields(&stored, &merge(&stored, &f(json!({"a": 1, "missing": null})))).is_empty());
        assert_eq!(changed_fields(&stored, &merge(&stored, &f(json!({"b": null})))), vec!["b"]);
    }
}
