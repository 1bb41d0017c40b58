//! A small Prometheus registry for the Stadtwache daemon and its API.
//!
//! - [`Counter`], [`Gauge`], [`Histogram`] (fixed buckets) and labelled
//!   families of each ([`CounterVec`], [`GaugeVec`], [`HistogramVec`]);
//! - [`Registry::render`] writes the text exposition format 0.0.4 (`# HELP`,
//!   `# TYPE`, escaped label values, cumulative `_bucket` lines with `le`).
//!
//! # Cost on the hot path
//!
//! Updating a metric is one or two relaxed atomic operations. Looking a label
//! set up (`CounterVec::with`) takes a read lock and a hash lookup: callers do
//! it once and keep the returned handle (`let sshd = lines.with(&["sshd"]);`
//! then `sshd.inc()` per line). Handles are cheap `Arc` clones.
//!
//! # Cardinality cap
//!
//! A family holds at most [`Registry::max_series`] label sets (default
//! [`DEFAULT_MAX_SERIES`]). Further label sets all share one overflow series
//! whose label values are [`OVERFLOW_LABEL_VALUE`], so totals stay right and
//! memory stays bounded; each label set that overflowed is counted in
//! `stadtwache_metrics_overflow_total{family="…"}`. Never use per-address
//! labels: a family is for a bounded set (sources, rules, endpoints).
//!
//! ```
//! use stadtwache_metrics::Registry;
//! let reg = Registry::new();
//! let lines = reg.counter_vec("stadtwache_lines_total", "Lines read.", &["source"]).unwrap();
//! let sshd = lines.with(&["sshd"]);
//! sshd.inc();
//! assert!(reg.render().contains("stadtwache_lines_total{source=\"sshd\"} 1\n"));
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Default cap on label sets per family.
pub const DEFAULT_MAX_SERIES: usize = 256;
/// Label value of the series that collects label sets beyond the cap.
pub const OVERFLOW_LABEL_VALUE: &str = "__overflow__";
/// Name of the family counting label sets that went to the overflow series.
pub const OVERFLOW_FAMILY: &str = "stadtwache_metrics_overflow_total";

/// Buckets (seconds) for request latencies: 50 µs to 5 s.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Buckets (seconds) for detection-to-enforcement latency: 1 ms to 5 min.
pub const ENFORCEMENT_BUCKETS: &[f64] =
    &[0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// Why a metric could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("invalid metric name {0:?} (must match [a-zA-Z_:][a-zA-Z0-9_:]*)")]
    InvalidName(String),
    #[error("invalid label name {0:?} (must match [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)")]
    InvalidLabel(String),
    #[error("metric {0:?} is already registered")]
    Duplicate(String),
    #[error("histogram {name:?}: buckets must be finite, strictly increasing and not empty")]
    InvalidBuckets { name: String },
}

/// A monotonically increasing integer counter.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// A counter not attached to any registry (its updates are not rendered).
    pub fn detached() -> Self {
        Counter::default()
    }

    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (stored as `f64` bits).
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicU64>);

impl Gauge {
    pub fn detached() -> Self {
        Gauge::default()
    }

    #[inline]
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    #[inline]
    pub fn add(&self, d: f64) {
        add_f64(&self.0, d);
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1.0);
    }

    #[inline]
    pub fn dec(&self) {
        self.add(-1.0);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

fn add_f64(cell: &AtomicU64, d: f64) {
    let mut cur = cell.load(Ordering::Relaxed);
    loop {
        let new = (f64::from_bits(cur) + d).to_bits();
        match cell.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

#[derive(Debug)]
struct HistogramCore {
    bounds: Arc<[f64]>,
    /// Per bucket (not cumulative); the last one is `+Inf`.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
    count: AtomicU64,
}

/// A histogram with fixed buckets (upper bounds, in the unit observed; seconds
/// for latencies).
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramCore>);

impl Histogram {
    fn with_bounds(bounds: Arc<[f64]>) -> Self {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram(Arc::new(HistogramCore { bounds, counts, sum: AtomicU64::new(0), count: AtomicU64::new(0) }))
    }

    /// A histogram not attached to any registry. Invalid buckets give one `+Inf` bucket.
    pub fn detached(buckets: &[f64]) -> Self {
        let b: Arc<[f64]> = if valid_buckets(buckets) { buckets.into() } else { Arc::from(Vec::new()) };
        Histogram::with_bounds(b)
    }

    /// Records one value. NaN is ignored.
    #[inline]
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let core = &*self.0;
        let i = core.bounds.partition_point(|&b| b < v);
        core.counts[i].fetch_add(1, Ordering::Relaxed);
        add_f64(&core.sum, v);
        core.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a duration in seconds.
    #[inline]
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> f64 {
        f64::from_bits(self.0.sum.load(Ordering::Relaxed))
    }
}

fn valid_buckets(b: &[f64]) -> bool {
    !b.is_empty() && b.iter().all(|v| v.is_finite()) && b.windows(2).all(|w| w[0] < w[1])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Clone)]
enum Cell {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

#[derive(Debug, Default)]
struct Series {
    /// Label values → index into `order`.
    index: HashMap<Box<[String]>, usize>,
    order: Vec<(Box<[String]>, Cell)>,
    overflow: Option<Cell>,
}

#[derive(Debug)]
struct FamilyCore {
    name: String,
    help: String,
    kind: Kind,
    labels: Box<[String]>,
    buckets: Arc<[f64]>,
    max_series: usize,
    series: RwLock<Series>,
    overflowed: Counter,
}

impl FamilyCore {
    fn new_cell(&self) -> Cell {
        match self.kind {
            Kind::Counter => Cell::Counter(Counter::default()),
            Kind::Gauge => Cell::Gauge(Gauge::default()),
            Kind::Histogram => Cell::Histogram(Histogram::with_bounds(self.buckets.clone())),
        }
    }

    /// The cell of a label set; the overflow cell beyond the cap. A wrong
    /// number of values is padded with "" or cut (never a panic).
    fn cell(&self, values: &[&str]) -> Cell {
        {
            let s = self.series.read().unwrap_or_else(|e| e.into_inner());
            if let Some(&i) = lookup(&s.index, values) {
                return s.order[i].1.clone();
            }
        }
        let mut s = self.series.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&i) = lookup(&s.index, values) {
            return s.order[i].1.clone();
        }
        if s.order.len() >= self.max_series {
            self.overflowed.inc();
            if s.overflow.is_none() {
                s.overflow = Some(self.new_cell());
            }
            return s.overflow.clone().unwrap_or_else(|| self.new_cell());
        }
        let key: Box<[String]> =
            (0..self.labels.len()).map(|i| values.get(i).copied().unwrap_or("").to_string()).collect();
        let cell = self.new_cell();
        let i = s.order.len();
        s.order.push((key.clone(), cell.clone()));
        s.index.insert(key, i);
        cell
    }
}

fn lookup<'a>(index: &'a HashMap<Box<[String]>, usize>, values: &[&str]) -> Option<&'a usize> {
    // Allocation-free on a hit would need raw_entry; label sets are looked up
    // once and cached by callers, so one small allocation is fine.
    let key: Box<[String]> = values.iter().map(|v| v.to_string()).collect();
    index.get(&key)
}

/// A labelled family of counters.
#[derive(Clone, Debug)]
pub struct CounterVec(Arc<FamilyCore>);

impl CounterVec {
    /// The counter for these label values (in the order of the label names).
    /// Keep the handle: the lookup is not free.
    pub fn with(&self, values: &[&str]) -> Counter {
        match self.0.cell(values) {
            Cell::Counter(c) => c,
            _ => Counter::detached(),
        }
    }
}

/// A labelled family of gauges.
#[derive(Clone, Debug)]
pub struct GaugeVec(Arc<FamilyCore>);

impl GaugeVec {
    pub fn with(&self, values: &[&str]) -> Gauge {
        match self.0.cell(values) {
            Cell::Gauge(g) => g,
            _ => Gauge::detached(),
        }
    }
}

/// A labelled family of histograms (all with the family's buckets).
#[derive(Clone, Debug)]
pub struct HistogramVec(Arc<FamilyCore>);

impl HistogramVec {
    pub fn with(&self, values: &[&str]) -> Histogram {
        match self.0.cell(values) {
            Cell::Histogram(h) => h,
            _ => Histogram::detached(&self.0.buckets),
        }
    }
}

/// The set of metrics rendered by `/metrics`. Thread-safe; share it in an `Arc`.
#[derive(Debug)]
pub struct Registry {
    families: Mutex<Vec<Arc<FamilyCore>>>,
    max_series: usize,
    overflow: Arc<FamilyCore>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// A registry with the default cardinality cap ([`DEFAULT_MAX_SERIES`]).
    pub fn new() -> Self {
        Registry::with_max_series(DEFAULT_MAX_SERIES)
    }

    /// A registry whose families hold at most `max_series` label sets each (at least 1).
    pub fn with_max_series(max_series: usize) -> Self {
        let overflow = Arc::new(FamilyCore {
            name: OVERFLOW_FAMILY.to_string(),
            help: "Label sets that exceeded a family's cardinality cap and were counted in its overflow series."
                .to_string(),
            kind: Kind::Counter,
            labels: Box::new(["family".to_string()]),
            buckets: Arc::from(Vec::new()),
            max_series: usize::MAX,
            series: RwLock::new(Series::default()),
            overflowed: Counter::detached(),
        });
        Registry { families: Mutex::new(Vec::new()), max_series: max_series.max(1), overflow }
    }

    /// The cap on label sets per family.
    pub fn max_series(&self) -> usize {
        self.max_series
    }

    fn register(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<Arc<FamilyCore>, MetricsError> {
        if !valid_metric_name(name) {
            return Err(MetricsError::InvalidName(name.to_string()));
        }
        for l in labels {
            if !valid_label_name(l) || (kind == Kind::Histogram && *l == "le") {
                return Err(MetricsError::InvalidLabel(l.to_string()));
            }
        }
        if kind == Kind::Histogram && !valid_buckets(buckets) {
            return Err(MetricsError::InvalidBuckets { name: name.to_string() });
        }
        let mut fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        if name == OVERFLOW_FAMILY || fams.iter().any(|f| f.name == name) {
            return Err(MetricsError::Duplicate(name.to_string()));
        }
        let overflowed = if labels.is_empty() { Counter::detached() } else { self.overflow_counter(name) };
        let fam = Arc::new(FamilyCore {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            buckets: buckets.into(),
            max_series: if labels.is_empty() { 1 } else { self.max_series },
            series: RwLock::new(Series::default()),
            overflowed,
        });
        fams.push(fam.clone());
        Ok(fam)
    }

    fn overflow_counter(&self, family: &str) -> Counter {
        match self.overflow.cell(&[family]) {
            Cell::Counter(c) => c,
            _ => Counter::detached(),
        }
    }

    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, MetricsError> {
        let f = self.register(name, help, Kind::Counter, &[], &[])?;
        Ok(CounterVec(f).with(&[]))
    }

    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, MetricsError> {
        let f = self.register(name, help, Kind::Gauge, &[], &[])?;
        Ok(GaugeVec(f).with(&[]))
    }

    /// `buckets`: finite, strictly increasing upper bounds (`+Inf` is implied).
    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Result<Histogram, MetricsError> {
        let f = self.register(name, help, Kind::Histogram, &[], buckets)?;
        Ok(HistogramVec(f).with(&[]))
    }

    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<CounterVec, MetricsError> {
        Ok(CounterVec(self.register(name, help, Kind::Counter, labels, &[])?))
    }

    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec, MetricsError> {
        Ok(GaugeVec(self.register(name, help, Kind::Gauge, labels, &[])?))
    }

    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<HistogramVec, MetricsError> {
        Ok(HistogramVec(self.register(name, help, Kind::Histogram, labels, buckets)?))
    }

    /// Everything registered, in the text exposition format 0.0.4
    /// (`Content-Type: text/plain; version=0.0.4`), families in registration
    /// order, label sets in first-use order. The overflow family comes last,
    /// once some label set overflowed.
    pub fn render(&self) -> String {
        let fams: Vec<Arc<FamilyCore>> = self.families.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = String::with_capacity(256 * fams.len());
        for f in &fams {
            render_family(&mut out, f);
        }
        let has_overflow = !self
            .overflow
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .order
            .iter()
            .all(|(_, c)| matches!(c, Cell::Counter(c) if c.get() == 0));
        if has_overflow {
            render_family(&mut out, &self.overflow);
        }
        out
    }
}

fn valid_metric_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(n: &str) -> bool {
    let mut chars = n.chars();
    !n.starts_with("__")
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// HELP text escaping: `\` and newline.
fn escape_help(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Label value escaping: `\`, `"` and newline.
fn escape_value(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

fn push_labels(out: &mut String, names: &[String], values: &[String], le: Option<f64>) {
    if names.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (n, v) in names.iter().zip(values) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(n);
        out.push_str("=\"");
        escape_value(out, v);
        out.push('"');
    }
    if let Some(le) = le {
        if !first {
            out.push(',');
        }
        out.push_str("le=\"");
        push_f64(out, le);
        out.push('"');
    }
    out.push('}');
}

fn render_family(out: &mut String, f: &FamilyCore) {
    let s = f.series.read().unwrap_or_else(|e| e.into_inner());
    out.push_str("# HELP ");
    out.push_str(&f.name);
    out.push(' ');
    escape_help(out, &f.help);
    out.push('\n');
    let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
    let overflow_values: Box<[String]> = f.labels.iter().map(|_| OVERFLOW_LABEL_VALUE.to_string()).collect();
    let all = s.order.iter().map(|(k, c)| (k, c)).chain(s.overflow.as_ref().map(|c| (&overflow_values, c)));
    for (values, cell) in all {
        match cell {
            Cell::Counter(c) => {
                out.push_str(&f.name);
                push_labels(out, &f.labels, values, None);
                let _ = writeln!(out, " {}", c.get());
            }
            Cell::Gauge(g) => {
                out.push_str(&f.name);
                push_labels(out, &f.labels, values, None);
                out.push(' ');
                push_f64(out, g.get());
                out.push('\n');
            }
            Cell::Histogram(h) => {
                let core = &*h.0;
                let mut cumulative = 0u64;
                for (i, n) in core.counts.iter().enumerate() {
                    cumulative += n.load(Ordering::Relaxed);
                    let le = core.bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    out.push_str(&f.name);
                    out.push_str("_bucket");
                    push_labels(out, &f.labels, values, Some(le));
                    let _ = writeln!(out, " {cumulative}");
                }
                out.push_str(&f.name);
                out.push_str("_sum");
                push_labels(out, &f.labels, values, None);
                out.push(' ');
                push_f64(out, h.sum());
                out.push('\n');
                out.push_str(&f.name);
                out.push_str("_count");
                push_labels(out, &f.labels, values, None);
                // The count is read after the buckets: with concurrent
                // observations it may be slightly ahead of +Inf; use the
                // bucket total so the exposition stays consistent.
                let _ = writeln!(out, " {cumulative}");
            }
        }
    }
}

#[cfg(test)]
mod tests;
