//! `ltf dlq show`: each dead letter with partition/offset, key, every header and the
//! value decoded through the schema registry (or why it does not decode, with its bytes).

use std::fmt::Write as _;

use anyhow::Result;
use ltf_schemas::EventCodec;
use serde::Serialize;

use super::scan::Range;
use super::{load, Filter, Letter, ShowArgs};
use crate::settings::Common;

/// Most value bytes printed as hex when a value does not decode.
const MAX_HEX_BYTES: usize = 512;

/// The value of a letter as `show` presents it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// Decoded with the registry's writer schema.
    Event(serde_json::Value),
    /// Not decodable: why, the length and the bytes as hex (cut at [`MAX_HEX_BYTES`]).
    Undecodable { error: String, length: usize, hex: String },
}

#[derive(Debug, Serialize)]
struct Shown {
    dlq_topic: String,
    group: String,
    source_topic: String,
    partition: i32,
    offset: i64,
    timestamp: Option<String>,
    key: Option<String>,
    headers: Vec<(String, Option<String>)>,
    value: Value,
}

/// Lowercase hex, cut at [`MAX_HEX_BYTES`] with a trailing `…`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().min(MAX_HEX_BYTES) * 2 + 3);
    for b in bytes.iter().take(MAX_HEX_BYTES) {
        let _ = write!(s, "{b:02x}");
    }
    if bytes.len() > MAX_HEX_BYTES {
        s.push('…');
    }
    s
}

/// Decodes `bytes` with `codec`, or says why it cannot.
pub async fn decode(codec: &EventCodec, bytes: Option<&[u8]>) -> Value {
    let Some(bytes) = bytes else {
        return Value::Undecodable { error: "no value (tombstone)".into(), length: 0, hex: String::new() };
    };
    let undecodable = |error: String| Value::Undecodable { error, length: bytes.len(), hex: hex(bytes) };
    match codec.decode(bytes).await {
        Ok(event) => match serde_json::to_value(&event) {
            Ok(v) => Value::Event(v),
            Err(e) => undecodable(format!("decoded, but not representable as JSON: {e}")),
        },
        Err(e) => undecodable(e.to_string()),
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub async fn run(common: &Common, args: ShowArgs) -> Result<()> {
    let selection = args.letters.selection();
    let range = Range { partition: args.partition, from_offset: args.offset };
    let filter = Filter { class: args.letters.class.clone(), ..Filter::default() };
    let loaded = load(common, selection, range).await?;
    let codec = common.codec()?;
    let mut shown = Vec::new();
    'topics: for (t, letters) in &loaded {
        for l in letters.iter().filter(|l| filter.keeps(l)) {
            if shown.len() >= args.limit {
                break 'topics;
            }
            shown.push(to_shown(&codec, t, l).await);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    if loaded.is_empty() {
        println!("no dead-letter topic for this group (prefix {})", common.topic_prefix);
    } else if shown.is_empty() {
        println!("no dead letters match");
    }
    for s in &shown {
        print_human(s)?;
    }
    Ok(())
}

async fn to_shown(codec: &EventCodec, t: &super::DlqTopic, l: &Letter) -> Shown {
    Shown {
        dlq_topic: t.name.clone(),
        group: t.group.clone(),
        source_topic: t.source.clone(),
        partition: l.partition,
        offset: l.offset,
        timestamp: l.time().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        key: l.key.as_deref().map(lossy),
        headers: l.headers.iter().map(|(k, v)| (k.clone(), v.as_deref().map(lossy))).collect(),
        value: decode(codec, l.value.as_deref()).await,
    }
}

fn print_human(s: &Shown) -> Result<()> {
    println!(
        "== {} partition {} offset {}  dead-lettered {}",
        s.dlq_topic,
        s.partition,
        s.offset,
        s.timestamp.as_deref().unwrap_or("-")
    );
    println!("key: {}", s.key.as_deref().unwrap_or("(none)"));
    println!("headers:");
    for (k, v) in &s.headers {
        println!("  {k}: {}", v.as_deref().unwrap_or("(null)"));
    }
    match &s.value {
        Value::Event(v) => println!("value:\n{}", serde_json::to_string_pretty(v)?),
        Value::Undecodable { error, length, hex } => {
            println!("value: cannot decode: {error}");
            println!("  {length} bytes: {hex}");
        }
    }
    println!();
    Ok(())
}
