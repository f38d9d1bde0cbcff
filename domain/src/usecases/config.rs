use serde::Deserialize;

/// Limits of the record use cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordLimits {
    /// Most records one *Multiple* use case accepts; more is
    /// [`BatchTooLarge`](crate::usecases::UseCaseError::BatchTooLarge). Default 1000.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

fn default_max_batch() -> usize {
    1000
}

impl Default for RecordLimits {
    fn default() -> Self {
        RecordLimits { max_batch: default_max_batch() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        assert_eq!(RecordLimits::default().max_batch, 1000);
        let l: RecordLimits = serde_json::from_str("{}").unwrap();
        assert_eq!(l, RecordLimits::default());
        let l: RecordLimits = serde_json::from_str(r#"{"max_batch": 5}"#).unwrap();
        assert_eq!(l.max_batch, 5);
        assert!(serde_json::from_str::<RecordLimits>(r#"{"maxBatch": 5}"#).is_err());
    }
}
