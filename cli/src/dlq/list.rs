//! `ltf dlq list`: dead letters per group and source topic, by `dlq-error-class`.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::scan::Range;
use super::{load, Letter, ListArgs, Selection};
use crate::settings::Common;

/// The dead letters of one group from one source topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DlqCount {
    pub group: String,
    pub source_topic: String,
    pub dlq_topic: String,
    pub total: u64,
    /// Count per `dlq-error-class` (`unknown` when a letter has none).
    pub by_class: BTreeMap<String, u64>,
}

/// Counts per class.
pub fn by_class(letters: &[Letter]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for l in letters {
        *out.entry(l.class()).or_insert(0) += 1;
    }
    out
}

/// The counts of every selected DLQ topic (empty ones included, with total 0).
pub async fn counts(common: &Common, group: Option<String>) -> Result<Vec<DlqCount>> {
    let loaded = load(common, Selection { group, topic: None }, Range::default()).await?;
    Ok(loaded
        .into_iter()
        .map(|(t, letters)| DlqCount {
            total: letters.len() as u64,
            by_class: by_class(&letters),
            group: t.group,
            source_topic: t.source,
            dlq_topic: t.name,
        })
        .collect())
}

pub async fn run(common: &Common, args: ListArgs) -> Result<()> {
    let counts = counts(common, args.group).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&counts)?);
        return Ok(());
    }
    if counts.is_empty() {
        println!("no dead-letter topics for prefix {}", common.topic_prefix);
        return Ok(());
    }
    println!("{:<32} {:<36} {:<20} {:>8}", "GROUP", "SOURCE TOPIC", "CLASS", "COUNT");
    for c in &counts {
        if c.by_class.is_empty() {
            println!("{:<32} {:<36} {:<20} {:>8}", c.group, c.source_topic, "-", 0);
        }
        for (class, n) in &c.by_class {
            println!("{:<32} {:<36} {:<20} {:>8}", c.group, c.source_topic, class, n);
        }
    }
    let total: u64 = counts.iter().map(|c| c.total).sum();
    println!("total {total}");
    Ok(())
}
