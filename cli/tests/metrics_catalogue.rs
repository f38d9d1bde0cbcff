//! The metrics catalogue is checked against the code and against docs/metrics.md.
//!
//! * every `pub const X: &str = "latechforce_…"` of a crate's metrics module is in that
//!   crate's `CATALOGUE` (the list `describe` registers), and nothing else is;
//! * every `counter!` / `gauge!` / `histogram!` call in the workspace's sources names a
//!   metric of the catalogue, with the catalogue's type and label names;
//! * a `"latechforce_…"` string anywhere in the sources names a catalogued metric;
//! * docs/metrics.md has one row per catalogued metric (name, type, labels) and no other;
//! * every label name is bounded: listed in docs/metrics.md's label table, and not an
//!   identifier, free text or the like (`event_id`, `record_id`, `message`, …);
//! * names follow DESIGN.md: prefix `latechforce_`, snake case, counters end in `_total`.
//!
//! Adding a metric: its constant in the crate's metrics module, a line in its
//! `CATALOGUE`, a row in docs/metrics.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ltf_kafka::metrics::{Kind, Metric};

/// The crates' metrics modules: (path from the workspace root, catalogue).
fn modules() -> Vec<(&'static str, &'static [Metric])> {
    vec![
        ("kafka/src/metrics.rs", ltf_kafka::metrics::CATALOGUE),
        ("producers/src/metrics.rs", ltf_producers::metrics::CATALOGUE),
        ("consumers/src/metrics.rs", ltf_consumers::metrics::CATALOGUE),
        ("workers/src/metrics.rs", ltf_workers::metrics::CATALOGUE),
    ]
}

fn catalogue() -> Vec<Metric> {
    modules().into_iter().flat_map(|(_, c)| c.iter().copied()).collect()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// `.rs` files under the crates' `src/` folders, relative to the root.
fn sources() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root()).expect("the workspace root").flatten() {
        let src = entry.path().join("src");
        if entry.path().join("Cargo.toml").is_file() && src.is_dir() {
            walk(&src, &mut files);
        }
    }
    let mut rel: Vec<String> =
        files.iter().map(|p| p.strip_prefix(root()).expect("under the root").to_string_lossy().into_owned()).collect();
    rel.sort();
    rel
}

/// `pub const NAME: &str = "value";` pairs of a module (nested modules included).
fn consts(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("pub const ")?;
            let (name, rest) = l.split_once(": &str = \"")?;
            let value = rest.strip_suffix("\";")?;
            Some((name.trim().to_owned(), value.to_owned()))
        })
        .collect()
}

/// The metric-name and label-name constants of every metrics module: `NAME` → value
/// and `labels::NAME` → value.
fn names() -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let (mut metrics, mut labels) = (BTreeMap::new(), BTreeMap::new());
    for (path, _) in modules() {
        let text = read(path);
        let labels_mod = text.find("pub mod labels").map(|i| (i, i + text[i..].find("\n}").unwrap_or(0)));
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let in_labels = labels_mod.is_some_and(|(a, b)| offset > a && offset < b);
            for (name, value) in consts(line) {
                if value.starts_with("latechforce_") {
                    metrics.insert(name, value);
                } else if in_labels {
                    labels.insert(name, value);
                }
            }
            offset += line.len();
        }
    }
    (metrics, labels)
}

#[test]
fn every_metric_constant_is_in_its_crates_catalogue() {
    let mut problems = Vec::new();
    for (path, catalogue) in modules() {
        let declared: BTreeSet<String> =
            consts(&read(path)).into_iter().map(|(_, v)| v).filter(|v| v.starts_with("latechforce_")).collect();
        let listed: BTreeSet<String> = catalogue.iter().map(|m| m.name.to_owned()).collect();
        for name in declared.difference(&listed) {
            problems.push(format!("{path}: {name} is declared but not in CATALOGUE (add a line there)"));
        }
        for name in listed.difference(&declared) {
            problems.push(format!("{path}: CATALOGUE lists {name}, which is not a constant of the module"));
        }
        let mut seen = BTreeSet::new();
        for m in catalogue {
            if !seen.insert(m.name) {
                problems.push(format!("{path}: {} is listed twice", m.name));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn names_follow_the_metrics_contract() {
    let mut problems = Vec::new();
    for m in catalogue() {
        let snake = m.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !m.name.starts_with("latechforce_") || !snake {
            problems.push(format!("{}: names are `latechforce_` + snake case", m.name));
        }
        if (m.kind == Kind::Counter) != m.name.ends_with("_total") {
            problems.push(format!("{}: counters, and only counters, end in `_total`", m.name));
        }
        if m.help.trim().is_empty() {
            problems.push(format!("{}: no help text", m.name));
        }
        let unique: BTreeSet<_> = m.labels.iter().collect();
        if unique.len() != m.labels.len() {
            problems.push(format!("{}: a label is listed twice", m.name));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// One `counter!(…)`-like call: the macro, its first argument, the label constants named
/// in the call (or in the `let` its label argument refers to), and whether there are
/// labels the scan could not resolve.
#[derive(Debug)]
struct Call {
    at: String,
    kind: Kind,
    name: String,
    labels: BTreeSet<String>,
    resolved: bool,
}

/// The text of a call's arguments: from after `(` to the matching `)`.
fn arguments(text: &str) -> &str {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..i];
                }
            }
            _ => {}
        }
    }
    text
}

fn label_consts(text: &str) -> BTreeSet<String> {
    text.match_indices("labels::")
        .map(|(i, _)| {
            let rest = &text[i + "labels::".len()..];
            rest.chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect()
        })
        .collect()
}

fn calls(path: &str, text: &str) -> Vec<Call> {
    let mut out = Vec::new();
    for (kind, mac) in [(Kind::Counter, "counter!("), (Kind::Gauge, "gauge!("), (Kind::Histogram, "histogram!(")] {
        for (i, _) in text.match_indices(mac) {
            // `describe_counter!(`, `absolute_counter!(`: not a recording call.
            if text[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let args = arguments(&text[i + mac.len()..]);
            let (first, rest) = match args.split_once(',') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (args.trim(), ""),
            };
            let line = text[..i].lines().count();
            let mut labels = label_consts(rest);
            let mut resolved = true;
            if labels.is_empty() && !rest.is_empty() {
                // `gauge!(NAME, &lbl)`: the labels of the nearest `let lbl = …;` above.
                let var = rest.trim_start_matches('&').trim();
                match text[..i].rfind(&format!("let {var} =")) {
                    Some(at) => labels = label_consts(&text[at..at + text[at..].find(';').unwrap_or(0)]),
                    None => resolved = false,
                }
            }
            out.push(Call { at: format!("{path}:{line}"), kind, name: first.to_owned(), labels, resolved });
        }
    }
    out
}

#[test]
fn every_recorded_metric_is_catalogued_with_its_type_and_labels() {
    let (metric_consts, label_consts) = names();
    let catalogue = catalogue();
    let by_name: BTreeMap<&str, &Metric> = catalogue.iter().map(|m| (m.name, m)).collect();
    let mut problems = Vec::new();
    let mut found = 0;
    for path in sources() {
        let text = read(&path);
        for call in calls(&path, &text) {
            found += 1;
            let const_name = call.name.rsplit("::").next().unwrap_or(&call.name);
            let name = match metric_consts.get(const_name) {
                Some(v) => v.clone(),
                None if call.name.starts_with('"') => call.name.trim_matches('"').to_owned(),
                None => {
                    problems.push(format!(
                        "{}: `{}` is not a metric-name constant of a metrics module (names live in one module per crate)",
                        call.at, call.name
                    ));
                    continue;
                }
            };
            let Some(m) = by_name.get(name.as_str()) else {
                problems.push(format!("{}: {name} is recorded but not in a CATALOGUE", call.at));
                continue;
            };
            if m.kind != call.kind {
                problems.push(format!(
                    "{}: {name} is recorded as a {} but catalogued as a {}",
                    call.at,
                    call.kind.as_str(),
                    m.kind.as_str()
                ));
            }
            if !call.resolved {
                continue;
            }
            let mut used = BTreeSet::new();
            for l in &call.labels {
                match label_consts.get(l) {
                    Some(v) => {
                        used.insert(v.as_str());
                    }
                    None => problems.push(format!("{}: labels::{l} is not a label constant", call.at)),
                }
            }
            let listed: BTreeSet<&str> = m.labels.iter().copied().collect();
            if used != listed {
                problems.push(format!("{}: {name} is recorded with labels {used:?}, catalogued with {listed:?}", call.at));
            }
        }
    }
    assert!(found >= catalogue.len(), "the scan found only {found} recording calls: is it still reading the sources?");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn metric_names_in_string_literals_are_catalogued() {
    let known: BTreeSet<&str> = catalogue().iter().map(|m| m.name).collect();
    let mut problems = Vec::new();
    for path in sources() {
        let text = read(&path);
        for (i, _) in text.match_indices("\"latechforce_") {
            let name: String =
                text[i + 1..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
            let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
            if !known.contains(name.as_str()) && !known.contains(base) {
                let line = text[..i].lines().count();
                problems.push(format!("{path}:{line}: {name} is not in a CATALOGUE"));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The table rows of docs/metrics.md (of its `## Labels` section when `labels`, else of
/// the others) whose first cell is a backticked name: (the name, the other cells).
fn doc_rows(labels: bool) -> Vec<(String, Vec<String>)> {
    let text = read("docs/metrics.md");
    let mut section = String::new();
    let mut rows = Vec::new();
    for l in text.lines() {
        if let Some(h) = l.strip_prefix("## ") {
            section = h.trim().to_owned();
        } else if (section == "Labels") == labels {
            rows.push(l);
        }
    }
    rows.into_iter()
        .filter_map(|l| {
            let cells: Vec<String> =
                l.trim().strip_prefix('|')?.strip_suffix('|')?.split('|').map(|c| c.trim().to_owned()).collect();
            let first = cells.first()?.strip_prefix('`')?.strip_suffix('`')?.to_owned();
            Some((first, cells[1..].to_vec()))
        })
        .collect()
}

/// The backticked words of a cell (`—` or empty: none).
fn backticked(cell: &str) -> BTreeSet<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

#[test]
fn docs_metrics_md_lists_exactly_the_catalogue() {
    let catalogue = catalogue();
    let mut problems = Vec::new();
    let mut documented = BTreeMap::new();
    for (name, cells) in doc_rows(false) {
        if cells.len() < 3 {
            problems.push(format!("docs/metrics.md: the row of {name} needs | name | type | labels | meaning |"));
            continue;
        }
        if documented.insert(name.clone(), cells).is_some() {
            problems.push(format!("docs/metrics.md: {name} has two rows"));
        }
    }
    for m in &catalogue {
        let Some(cells) = documented.remove(m.name) else {
            problems.push(format!("docs/metrics.md: no row for {} (a {} in the code)", m.name, m.kind.as_str()));
            continue;
        };
        if cells[0] != m.kind.as_str() {
            problems.push(format!("docs/metrics.md: {} is a {}, the docs say {}", m.name, m.kind.as_str(), cells[0]));
        }
        let in_docs = backticked(&cells[1]);
        let in_code: BTreeSet<String> = m.labels.iter().map(|l| (*l).to_owned()).collect();
        if in_docs != in_code {
            problems.push(format!("docs/metrics.md: {} has labels {in_code:?} in the code, {in_docs:?} in the docs", m.name));
        }
        if cells[2].is_empty() {
            problems.push(format!("docs/metrics.md: {} has no meaning", m.name));
        }
    }
    for name in documented.keys() {
        problems.push(format!("docs/metrics.md lists {name}, which no CATALOGUE has"));
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Label names that carry identifiers or free text: unbounded, never a label.
const UNBOUNDED: [&str; 18] = [
    "id",
    "eventid",
    "recordid",
    "aggregateid",
    "tableid",
    "formid",
    "connectionid",
    "automationid",
    "submissionid",
    "correlationid",
    "causationid",
    "requestid",
    "traceid",
    "userid",
    "principal",
    "message",
    "error",
    "url",
];

fn is_unbounded(label: &str) -> bool {
    let folded: String = label.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_ascii_lowercase();
    UNBOUNDED.contains(&folded.as_str())
        || folded.ends_with("id")
        || ["key", "offset", "email", "path", "text", "body", "name"].iter().any(|w| folded.ends_with(w))
}

#[test]
fn every_label_is_bounded_and_documented() {
    let documented: BTreeSet<String> = doc_rows(true).into_iter().map(|(n, _)| n).collect();
    let mut problems = Vec::new();
    for m in catalogue() {
        for l in m.labels {
            if is_unbounded(l) {
                problems.push(format!("{}: label `{l}` looks like an id or free text; labels take bounded sets only", m.name));
            }
            if !documented.contains(*l) {
                problems.push(format!(
                    "{}: label `{l}` has no row in docs/metrics.md's label table (say which values it takes)",
                    m.name
                ));
            }
        }
    }
    let used: BTreeSet<String> = catalogue().iter().flat_map(|m| m.labels.iter().map(|l| (*l).to_owned())).collect();
    for l in documented.difference(&used) {
        problems.push(format!("docs/metrics.md documents label `{l}`, which no metric has"));
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_unbounded_check_catches_ids() {
    for l in ["event_id", "eventId", "record_id", "recordId", "aggregate_id", "correlation_id", "message", "idempotency_key"] {
        assert!(is_unbounded(l), "{l}");
    }
    for l in ["group", "handler", "event_type", "outcome", "topic", "partition", "service", "route", "status", "class"] {
        assert!(!is_unbounded(l), "{l}");
    }
}
