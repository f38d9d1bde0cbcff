//! Types of the metric catalogues: each crate lists the metrics it exports as a
//! `CATALOGUE` of [`Metric`]s (name, type, labels, help) and registers them with
//! [`describe_all`]; a test checks every catalogue against the code and docs/metrics.md.
//! This crate's own metrics are in [`CATALOGUE`].

/// Producers replaced after librdkafka raised a fatal error (every process that publishes).
pub const PRODUCER_REBUILDS_TOTAL: &str = "latechforce_producer_rebuilds_total";

/// The metrics of this crate.
pub const CATALOGUE: &[Metric] =
    &[Metric::counter(PRODUCER_REBUILDS_TOTAL, &[], "Producers replaced by a new one after librdkafka raised a fatal error.")];

/// Describes this crate's metrics on the installed recorder; call once at start.
pub fn describe() {
    describe_all(CATALOGUE);
}

/// What Prometheus type a metric exports as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic counter (`_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A histogram with the buckets the recorder was installed with.
    Histogram,
}

impl Kind {
    /// The Prometheus type name (`counter`, `gauge`, `histogram`), as docs/metrics.md writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One exported metric: name, type, label names and help text. Each crate's `CATALOGUE`
/// lists its metrics; `describe` registers them, and a test checks the catalogues
/// against the code and against docs/metrics.md.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The full name (`latechforce_…`).
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its label names, all from bounded sets.
    pub labels: &'static [&'static str],
    /// The help text.
    pub help: &'static str,
}

impl Metric {
    /// A counter.
    pub const fn counter(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Metric {
        Metric { name, kind: Kind::Counter, labels, help }
    }

    /// A gauge.
    pub const fn gauge(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Metric {
        Metric { name, kind: Kind::Gauge, labels, help }
    }

    /// A histogram.
    pub const fn histogram(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Metric {
        Metric { name, kind: Kind::Histogram, labels, help }
    }
}

/// Describes `catalogue` on the installed recorder; a name ending in `_seconds` or
/// `_bytes` gets that unit.
pub fn describe_all(catalogue: &[Metric]) {
    use metrics::Unit;
    for m in catalogue {
        let unit = if m.name.ends_with("_seconds") {
            Some(Unit::Seconds)
        } else if m.name.ends_with("_bytes") {
            Some(Unit::Bytes)
        } else {
            None
        };
        metrics::with_recorder(|r| match m.kind {
            Kind::Counter => r.describe_counter(m.name.into(), unit, m.help.into()),
            Kind::Gauge => r.describe_gauge(m.name.into(), unit, m.help.into()),
            Kind::Histogram => r.describe_histogram(m.name.into(), unit, m.help.into()),
        });
    }
}
