//! Enforcement stages: nftables at the network edge (stage 1) and the HTTP
//! decision API for reverse proxies and bouncers (stage 2).
//!
//! The stage thread follows the store's change stream (decisions written by
//! detection, the admin API or the CLI) and applies each step to the kernel
//! in ONE nft transaction; it also refreshes the API's in-memory index.
//! On start and every `reconcile_interval` it makes the kernel sets equal to
//! the stored active decisions and counts the drift it repaired.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use stadtwache_api::{ApiServer, ApiState, DecisionIndex, SharedStore};
use stadtwache_core::{Key, Timestamp};
use stadtwache_enforce::{Ban, DryRunEnforcer, Enforcer, NftEnforcer, Target};
use stadtwache_metrics::{Counter, CounterVec, Gauge, GaugeVec, Histogram, Registry};
use stadtwache_store::{ChangeCursor, DecisionId, Store, StoredDecision};

use super::config::Config;
use crate::dlog;
use crate::timectx::wall_clock;

/// What `status` shows about enforcement.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StageStatus {
    /// One line on the firewall stage.
    pub nftables: String,
    /// One line on the API stage.
    pub api: String,
    pub nft_enabled: bool,
    pub transactions: u64,
    pub failures: u64,
    pub elements_added: u64,
    pub elements_removed: u64,
    pub reconciles: u64,
    pub drift_missing: u64,
    pub drift_extra: u64,
    pub drift_retimed: u64,
    pub last_error: Option<String>,
    /// Detection (line read) → in the kernel set, milliseconds (p50, p99).
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub latency_samples: u64,
}

enum Msg {
    Committed(Vec<(DecisionId, Instant)>),
}

pub struct Stages {
    tx: SyncSender<Msg>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
    status: Arc<Mutex<StageStatus>>,
    api: Option<stadtwache_api::ApiHandle>,
    api_state: Option<ApiState>,
    metrics: DaemonMetrics,
}

/// The daemon's own series in `/metrics` (the API registers its own).
#[derive(Clone)]
pub struct DaemonMetrics {
    pub lines: CounterVec,
    pub lag: GaugeVec,
    pub lag_seconds: GaugeVec,
    pub dropped: GaugeVec,
    pub matches: GaugeVec,
    pub active: Gauge,
    pub drift: CounterVec,
    pub nft_tx: Counter,
    pub nft_fail: Counter,
    pub latency: Histogram,
    /// Last values pushed into the `lines` counters.
    seen: Arc<Mutex<HashMap<String, u64>>>,
}

impl DaemonMetrics {
    fn new(r: &Registry) -> Result<DaemonMetrics> {
        let m = || anyhow::anyhow!("registering metrics");
        Ok(DaemonMetrics {
            lines: r.counter_vec("stadtwache_source_lines_total", "Lines read per source.", &["source"]).map_err(|_| m())?,
            lag: r
                .gauge_vec("stadtwache_source_lag_bytes", "Bytes written to a source but not yet read.", &["source"])
                .map_err(|_| m())?,
            lag_seconds: r
                .gauge_vec(
                    "stadtwache_source_lag_seconds",
                    "journald/syslog: age of the newest line when detection processed it.",
                    &["source"],
                )
                .map_err(|_| m())?,
            dropped: r
                .gauge_vec(
                    "stadtwache_source_dropped",
                    "Input dropped or repaired per source and reason (oversize, invalid_utf8_replaced, not_allowed, queue_full, …).",
                    &["source", "reason"],
                )
                .map_err(|_| m())?,
            matches: r
                .gauge_vec("stadtwache_rule_matches", "Failures matched per source and rule.", &["source", "rule"])
                .map_err(|_| m())?,
            active: r.gauge("stadtwache_decisions_active", "Active (enforced) decisions.").map_err(|_| m())?,
            drift: r
                .counter_vec(
                    "stadtwache_enforcement_drift_total",
                    "Kernel set elements repaired by reconciliation (missing, extra, retimed).",
                    &["stage", "kind"],
                )
                .map_err(|_| m())?,
            nft_tx: r.counter("stadtwache_nft_transactions_total", "nft transactions run.").map_err(|_| m())?,
            nft_fail: r.counter("stadtwache_nft_failures_total", "nft transactions that failed.").map_err(|_| m())?,
            latency: r
                .histogram(
                    "stadtwache_detect_to_enforce_seconds",
                    "From reading the triggering line to the address being in the nft set.",
                    &[0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0],
                )
                .map_err(|_| m())?,
            seen: Arc::new(Mutex::new(HashMap::new())),
        })
    }
}

/// Enforceable target of a stored decision (text keys are not).
fn target_of(d: &StoredDecision) -> Option<Target> {
    match &d.decision.key {
        Key::Ip(ip) => Target::new(*ip, d.decision.prefix).ok(),
        Key::Text(_) => None,
    }
}

fn ban_of(d: &StoredDecision, now: Timestamp) -> Option<Ban> {
    if d.decision.simulated {
        return None;
    }
    let target = target_of(d)?;
    let expires = d.decision.until.map(|u| StdDuration::from_micros(u.0.saturating_sub(now.0).max(0) as u64));
    Some(Ban { target, expires })
}

fn make_enforcer(cfg: &Config) -> Result<Box<dyn Enforcer>> {
    Ok(if cfg.nftables.enabled {
        Box::new(NftEnforcer::new(cfg.nftables.nft.clone()).context("nftables")?)
    } else {
        Box::new(DryRunEnforcer::new())
    })
}

impl Stages {
    pub fn start(cfg: &Config, registry: Arc<Registry>) -> Result<Stages> {
        let metrics =
            DaemonMetrics::new(&registry).or_else(|_| DaemonMetrics::new(&Registry::new())).context("metrics")?;
        let status = Arc::new(Mutex::new(StageStatus { nft_enabled: cfg.nftables.enabled, ..StageStatus::default() }));
        let (api, api_state) = if cfg.api.enabled {
            let store = super::open_store(cfg)?;
            let shared: SharedStore = Arc::new(Mutex::new(store));
            let index = Arc::new(DecisionIndex::new());
            let state = ApiState::new(cfg.api.api.clone(), shared, index, Arc::clone(&registry))
                .map_err(|e| anyhow::anyhow!("decision API: {e}"))?;
            let handle = ApiServer::bind(state.clone())
                .map_err(|e| anyhow::anyhow!("decision API on {}: {e}", cfg.api.api.listen))?;
            (Some(handle), Some(state))
        } else {
            (None, None)
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1024);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut enforcer = make_enforcer(cfg)?;
        let store = super::open_store(cfg)?;
        let reconcile_every = super::dur(&cfg.nftables.reconcile_interval);
        let th_status = Arc::clone(&status);
        let th_stop = Arc::clone(&stop);
        let th_api = api_state.clone();
        let th_metrics = metrics.clone();
        let thread = std::thread::Builder::new().name("stages".into()).spawn(move || {
            if let Err(e) = enforcer.ensure() {
                dlog!("error", "firewall: {e}");
            }
            stage_loop(enforcer, store, rx, th_stop, th_status, th_api, th_metrics, reconcile_every)
        })?;
        {
            let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
            s.api = match &api {
                Some(h) => format!("listening on {}", h.local_addr()),
                None => "off".into(),
            };
        }
        Ok(Stages { tx, stop, thread: Some(thread), status, api, api_state, metrics })
    }

    /// Decisions just committed, with the time their triggering line was read.
    pub fn committed(&self, ids: Vec<(DecisionId, Instant)>) {
        // Never block detection: with the queue full the stage thread is
        // busy and will see the decisions in the change stream anyway (only
        // the latency sample is lost).
        match self.tx.try_send(Msg::Committed(ids)) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }

    pub fn status(&self) -> StageStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Push the daemon's counters into `/metrics`.
    pub fn publish_metrics(&self, st: &super::status::Status) {
        let m = &self.metrics;
        let mut seen = m.seen.lock().unwrap_or_else(|p| p.into_inner());
        for s in &st.sources {
            let prev = seen.insert(s.name.clone(), s.lines).unwrap_or(0);
            if s.lines > prev {
                m.lines.with(&[&s.name]).inc_by(s.lines - prev);
            }
            m.lag.with(&[&s.name]).set(s.lag_bytes as f64);
            if let Some(l) = s.lag_seconds {
                m.lag_seconds.with(&[&s.name]).set(l);
            }
            for (reason, v) in &s.dropped {
                m.dropped.with(&[&s.name, reason]).set(*v as f64);
            }
        }
        for r in &st.rules {
            m.matches.with(&[&r.source, &r.rule]).set(r.hits as f64);
        }
    }

    pub fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(h) = self.api.take() {
            if let Err(e) = h.shutdown() {
                dlog!("warning", "decision API shutdown: {e}");
            }
        }
        self.api_state = None;
    }
}

impl Drop for Stages {
    fn drop(&mut self) {
        self.stop();
    }
}

#[allow(clippy::too_many_arguments)]
fn stage_loop(
    mut enforcer: Box<dyn Enforcer>,
    mut store: stadtwache_store::SqliteStore,
    rx: Receiver<Msg>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    status: Arc<Mutex<StageStatus>>,
    api: Option<ApiState>,
    metrics: DaemonMetrics,
    reconcile_every: StdDuration,
) {
    let mut cursor = ChangeCursor::START;
    let mut last_reconcile: Option<Instant> = None;
    let mut last_expire = Instant::now() - StdDuration::from_secs(10);
    let mut waiting: HashMap<DecisionId, Instant> = HashMap::new();
    let mut latencies: Vec<f64> = Vec::new();
    // Samples ever taken, and at how many the percentiles were last computed.
    let (mut samples, mut computed_at) = (0u64, 0u64);
    let mut need_reconcile = true;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match rx.recv_timeout(StdDuration::from_millis(100)) {
            Ok(Msg::Committed(ids)) => {
                if waiting.len() < 100_000 {
                    waiting.extend(ids);
                }
                while let Ok(Msg::Committed(more)) = rx.try_recv() {
                    if waiting.len() < 100_000 {
                        waiting.extend(more);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = wall_clock();
        if last_expire.elapsed() >= StdDuration::from_secs(1) {
            if let Err(e) = store.expire(now) {
                dlog!("warning", "expiring decisions: {e}");
            }
            last_expire = Instant::now();
        }
        // Periodic (and first) reconciliation: kernel = stored active decisions.
        if need_reconcile || last_reconcile.is_none_or(|t| t.elapsed() >= reconcile_every) {
            let began = Instant::now();
            let first = last_reconcile.is_none();
            match store.changed_since(ChangeCursor::START) {
                Ok(all) => {
                    let desired: Vec<Ban> = all.new.iter().filter_map(|d| ban_of(d, now)).collect();
                    metrics.active.set(desired.len() as f64);
                    let read = began.elapsed();
                    match enforcer.reconcile(&desired) {
                        Ok(drift) => {
                            if first {
                                dlog!(
                                    "info",
                                    "{}: {} stored decision(s) read in {:.3} s, reconciled in {:.3} s",
                                    enforcer.name(),
                                    desired.len(),
                                    read.as_secs_f64(),
                                    (began.elapsed() - read).as_secs_f64()
                                );
                            }
                            if !drift.is_clean() {
                                dlog!(
                                    "warning",
                                    "firewall drift repaired: {} missing, {} extra, {} retimed",
                                    drift.missing,
                                    drift.extra,
                                    drift.retimed
                                );
                            }
                            metrics.drift.with(&["nftables", "missing"]).inc_by(drift.missing as u64);
                            metrics.drift.with(&["nftables", "extra"]).inc_by(drift.extra as u64);
                            metrics.drift.with(&["nftables", "retimed"]).inc_by(drift.retimed as u64);
                            cursor = all.cursor;
                            need_reconcile = false;
                            for d in &all.new {
                                if let Some(t) = waiting.remove(&d.id) {
                                    let s = t.elapsed().as_secs_f64();
                                    metrics.latency.observe(s);
                                    latencies.push(s);
                                    samples += 1;
                                }
                            }
                        }
                        Err(e) => note_error(&status, &format!("reconcile: {e}")),
                    }
                    last_reconcile = Some(Instant::now());
                }
                Err(e) => note_error(&status, &format!("reading decisions: {e}")),
            }
        } else {
            match store.changed_since(cursor) {
                Ok(ch) if ch.gap => need_reconcile = true,
                Ok(ch) => {
                    let adds: Vec<Ban> = ch.new.iter().filter_map(|d| ban_of(d, now)).collect();
                    let removes: Vec<Target> = ch.deleted.iter().filter_map(target_of).collect();
                    if adds.is_empty() && removes.is_empty() {
                        cursor = ch.cursor;
                    } else {
                        match enforcer.apply(&adds, &removes) {
                            Ok(_) => {
                                cursor = ch.cursor;
                                for d in &ch.new {
                                    if let Some(t) = waiting.remove(&d.id) {
                                        let s = t.elapsed().as_secs_f64();
                                        metrics.latency.observe(s);
                                        latencies.push(s);
                                        samples += 1;
                                    }
                                }
                            }
                            Err(e) => {
                                note_error(&status, &format!("apply: {e}"));
                                need_reconcile = true;
                            }
                        }
                    }
                }
                Err(e) => note_error(&status, &format!("change stream: {e}")),
            }
        }
        if let Some(api) = &api {
            if let Err(e) = api.refresh_index() {
                note_error(&status, &format!("API index: {e}"));
            }
        }
        // Waiting entries that never made it (simulated, text keys, ended): drop after a while.
        waiting.retain(|_, t| t.elapsed() < StdDuration::from_secs(60));
        if latencies.len() > 10_000 {
            latencies.drain(..latencies.len() - 10_000);
        }
        let h = enforcer.health();
        let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
        metrics.nft_tx.inc_by(h.transactions.saturating_sub(s.transactions));
        metrics.nft_fail.inc_by(h.failures.saturating_sub(s.failures));
        s.transactions = h.transactions;
        s.failures = h.failures;
        s.elements_added = h.elements_added;
        s.elements_removed = h.elements_removed;
        s.reconciles = h.reconciles;
        s.drift_missing = h.drift_missing;
        s.drift_extra = h.drift_extra;
        s.drift_retimed = h.drift_retimed;
        if h.last_error.is_some() {
            s.last_error = h.last_error.clone();
        }
        // Percentiles only when there are new samples (this loop runs every 100 ms).
        if samples != computed_at {
            computed_at = samples;
            let mut sorted = latencies.clone();
            sorted.sort_by(f64::total_cmp);
            let pct = |p: f64| sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).map(|v| v * 1000.0);
            s.latency_ms_p50 = pct(0.5);
            s.latency_ms_p99 = pct(0.99);
            s.latency_samples = samples;
        }
        s.nftables = format!(
            "{} — {} transactions ({} failed), {} added, {} removed, {} reconciliations, drift repaired: {} missing / {} extra / {} retimed{}",
            if s.nft_enabled { "enforcing" } else { "dry-run (enable [nftables])" },
            h.transactions,
            h.failures,
            h.elements_added,
            h.elements_removed,
            h.reconciles,
            h.drift_missing,
            h.drift_extra,
            h.drift_retimed,
            s.last_error.as_ref().map_or(String::new(), |e| format!("; last error: {e}"))
        );
        if let Some(api) = &api {
            let now = wall_clock();
            s.api = format!(
                "listening on {}, {} decisions in memory, index {}",
                api.config().listen,
                api.index().len(),
                match api.index().age(now) {
                    Some(a) => format!("{:.1} s old", a.0 as f64 / 1e6),
                    None => "never refreshed".into(),
                }
            );
        }
    }
}

fn note_error(status: &Mutex<StageStatus>, e: &str) {
    dlog!("error", "{e}");
    status.lock().unwrap_or_else(|p| p.into_inner()).last_error = Some(e.to_string());
}

/// Targets in our kernel sets (for `why`), or why they cannot be read.
pub fn firewall_state(cfg: &Config) -> Result<Vec<String>, String> {
    if !cfg.nftables.enabled {
        return Err("not enforced at the network edge (nftables disabled: dry-run)".into());
    }
    let mut e = NftEnforcer::new(cfg.nftables.nft.clone()).map_err(|e| e.to_string())?;
    let list = e.list().map_err(|e| format!("cannot read the nft sets: {e}"))?;
    Ok(list.into_iter().map(|(t, _)| t.to_string()).collect())
}

/// `stadtwache firewall remove`.
pub fn firewall_remove(cfg: &Config) -> Result<()> {
    let mut e = NftEnforcer::new(cfg.nftables.nft.clone()).context("nftables")?;
    e.remove_all().context("removing our nftables table")?;
    Ok(())
}
