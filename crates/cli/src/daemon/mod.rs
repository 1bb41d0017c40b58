//! `stadtwache run`: the live daemon.
//!
//! ```text
//!  source threads ──(bounded queue of chunks)──▶ detection (this thread)
//!   files, journald,                               match → detect → decide
//!   syslog, stdin                                  │ every commit_interval:
//!                                                  ▼ ONE transaction
//!                                       store: decisions + alerts + positions
//!                                                  │ change stream
//!                                                  ▼
//!                               stage thread: nftables (batched) + API index
//! ```
//!
//! The store is the bus: the detection thread and the admin API write
//! decisions; the stage thread follows the store's change stream and brings
//! the kernel sets and the API's in-memory index up to date, and reconciles
//! both against the stored decisions on start and periodically. A crash
//! between commit and enforcement only delays enforcement.
//!
//! Signals: SIGTERM/SIGINT stop gracefully (sources stop, the queue is
//! drained, a last commit); SIGHUP reloads the config atomically — a
//! broken new config keeps the old one running and says why.

pub mod config;
pub mod engine;
pub mod sources;
pub mod sources_net;
pub mod stages;
pub mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context, Result};
use stadtwache_core::{Diagnostic, Duration};
use stadtwache_store::{Batch, SqliteOptions, SqliteStore, Store, Synchronous};

use config::Config;
use engine::{Chunk, Engine, Position};
use sources::SourceHandle;

use crate::timectx::wall_clock;

/// Log a line to stderr (journald picks it up under systemd).
#[macro_export]
macro_rules! dlog {
    ($level:literal, $($arg:tt)*) => {
        eprintln!(concat!("stadtwache[", $level, "]: {}"), format_args!($($arg)*))
    };
}

pub struct RunRequest {
    pub config: Option<PathBuf>,
}

/// Load the config (or the embedded default), printing every diagnostic.
pub fn load_config(path: Option<&Path>) -> Option<Config> {
    match path {
        None => Some(config::embedded_default()),
        Some(p) => {
            let loaded = config::load(p);
            for d in &loaded.diagnostics {
                eprintln!("{d}");
            }
            loaded.config
        }
    }
}

pub fn open_store(cfg: &Config) -> Result<SqliteStore> {
    let dir = &cfg.daemon.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating data directory {}", dir.display()))?;
    let mut opts = SqliteOptions::default();
    if cfg.daemon.synchronous == "full" {
        opts.synchronous = Synchronous::Full;
    }
    SqliteStore::open_with(dir, &opts).with_context(|| format!("opening the store in {}", dir.display()))
}

fn dur(text: &str) -> StdDuration {
    let d = Duration::parse(text).unwrap_or(Duration::from_secs(1));
    StdDuration::from_micros(d.0.max(1000) as u64)
}

/// The running sources and the queue they feed.
struct Running {
    engine: Engine,
    sources: Vec<SourceHandle>,
    stop: Arc<AtomicBool>,
    rx: Receiver<Chunk>,
}

fn start_sources(cfg: &Config, engine: Engine, store: &SqliteStore) -> Result<Running> {
    let chunks = (cfg.daemon.queue_lines / sources::CHUNK_LINES).max(4);
    let (tx, rx) = mpsc::sync_channel(chunks);
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for (i, s) in cfg.sources.iter().enumerate() {
        let group = engine::group_of(&s.name);
        let stored = store.checkpoints_in(&group).with_context(|| format!("reading checkpoints of {}", s.name))?;
        let resume = match s.kind {
            config::SourceKind::File => Some(Position::Files(engine::from_store(&stored))),
            config::SourceKind::Journald => stored.iter().find_map(|c| c.journal_cursor.clone()).map(Position::Journal),
            _ => None,
        };
        handles.push(
            sources::spawn(i, s, resume, tx.clone(), Arc::clone(&stop))
                .with_context(|| format!("starting source {}", s.name))?,
        );
    }
    Ok(Running { engine, sources: handles, stop, rx })
}

/// Merge a batch that failed to commit with the next one (later positions win).
fn merge(mut older: Batch, newer: Batch) -> Batch {
    older.decisions.extend(newer.decisions);
    older.alerts.extend(newer.alerts);
    for w in newer.windows {
        older.windows.retain(|o| (&o.scope, &o.rule, &o.key) != (&w.scope, &w.rule, &w.key));
        older.windows.push(w);
    }
    for r in newer.rule_states {
        older.rule_states.retain(|o| (&o.scope, &o.rule) != (&r.scope, &r.rule));
        older.rule_states.push(r);
    }
    for g in &newer.replace_groups {
        older.checkpoints.retain(|c| &c.group != g);
        if !older.replace_groups.contains(g) {
            older.replace_groups.push(g.clone());
        }
    }
    for c in newer.checkpoints {
        older.checkpoints.retain(|o| o.source != c.source);
        older.checkpoints.push(c);
    }
    older
}

struct Committer {
    retry: Option<(Batch, Vec<Instant>)>,
    failures: u64,
    last_error: Option<String>,
    commits: u64,
}

impl Committer {
    fn commit(&mut self, store: &mut SqliteStore, engine: &mut Engine, stages: &stages::Stages) {
        let now = wall_clock();
        let (batch, read_at) = engine.take_batch(now);
        let (batch, read_at) = match self.retry.take() {
            Some((old, mut old_t)) => {
                old_t.extend(read_at);
                (merge(old, batch), old_t)
            }
            None => (batch, read_at),
        };
        if batch.is_empty() {
            return;
        }
        match store.commit_batch(&batch) {
            Ok(done) => {
                self.commits += 1;
                stages.committed(done.decisions.into_iter().zip(read_at).collect());
            }
            Err(e) => {
                self.failures += 1;
                if self.failures.is_power_of_two() {
                    dlog!("error", "commit failed ({} so far), will retry: {e}", self.failures);
                }
                self.last_error = Some(e.to_string());
                self.retry = Some((batch, read_at));
            }
        }
    }
}

/// Stop the sources, run what they queued, commit.
fn stop_sources(run: Running, store: &mut SqliteStore, committer: &mut Committer, stages: &stages::Stages) -> Engine {
    let Running { mut engine, sources, stop, rx } = run;
    stop.store(true, Ordering::Relaxed);
    let mut handles: Vec<_> = sources.into_iter().filter_map(|mut s| s.thread.take()).collect();
    // Keep draining while the threads finish (a blocked send must get through).
    loop {
        while let Ok(chunk) = rx.try_recv() {
            engine.process(chunk, wall_clock());
        }
        handles.retain(|h| !h.is_finished());
        if handles.is_empty() {
            break;
        }
        if let Ok(chunk) = rx.recv_timeout(StdDuration::from_millis(20)) {
            engine.process(chunk, wall_clock());
        }
    }
    while let Ok(chunk) = rx.try_recv() {
        engine.process(chunk, wall_clock());
    }
    committer.commit(store, &mut engine, stages);
    engine
}

pub fn run(req: RunRequest) -> Result<ExitCode> {
    let Some(cfg) = load_config(req.config.as_deref()) else {
        return Ok(ExitCode::from(1));
    };
    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&term)).context("installing signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup)).context("installing SIGHUP")?;

    let mut store = open_store(&cfg)?;
    let started = wall_clock();
    // Enforcement first: the stage thread reconciles the kernel with the
    // stored decisions while detection compiles its rules and restores its
    // windows.
    let registry = Arc::new(stadtwache_metrics::Registry::new());
    let mut stages = stages::Stages::start(&cfg, Arc::clone(&registry))?;
    let mut engine = match Engine::build(&cfg, started) {
        Ok(e) => e,
        Err(diags) => {
            print_diags(&diags);
            stages.stop();
            return Ok(ExitCode::from(1));
        }
    };
    for note in engine.restore(&store, started) {
        dlog!("info", "{note}");
    }
    let mut running = start_sources(&cfg, engine, &store)?;
    let mut cfg = cfg;
    dlog!(
        "info",
        "running: {} source(s), store {}, nftables {}, api {}",
        cfg.sources.len(),
        cfg.daemon.data_dir.display(),
        if cfg.nftables.enabled { "on" } else { "dry-run" },
        if cfg.api.enabled { cfg.api.api.listen.to_string() } else { "off".into() }
    );
    let mut committer = Committer { retry: None, failures: 0, last_error: None, commits: 0 };
    let mut last_commit = Instant::now();
    let mut last_status = Instant::now() - StdDuration::from_secs(3600);
    let mut last_purge = Instant::now();
    let reloads = Arc::new(Mutex::new(status::ReloadStatus::default()));
    loop {
        let interval = dur(&cfg.daemon.commit_interval);
        let wait = interval.saturating_sub(last_commit.elapsed()).max(StdDuration::from_millis(1));
        match running.rx.recv_timeout(wait) {
            Ok(chunk) => {
                let now = wall_clock();
                running.engine.process(chunk, now);
                // Take what else is queued, up to a budget, before committing.
                let mut budget = 256;
                while budget > 0 {
                    match running.rx.try_recv() {
                        Ok(c) => running.engine.process(c, now),
                        Err(_) => break,
                    }
                    budget -= 1;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
        }
        if last_commit.elapsed() >= interval {
            committer.commit(&mut store, &mut running.engine, &stages);
            last_commit = Instant::now();
        }
        if term.load(Ordering::Relaxed) {
            dlog!("info", "stopping");
            break;
        }
        if hup.swap(false, Ordering::Relaxed) {
            match reload(&cfg, req.config.as_deref(), &reloads) {
                Some((new_cfg, mut new_engine)) => {
                    let old = stop_sources(running, &mut store, &mut committer, &stages);
                    for note in new_engine.restore(&store, wall_clock()) {
                        dlog!("info", "{note}");
                    }
                    new_engine.carry_over(old);
                    if new_cfg.nftables != cfg.nftables || new_cfg.api != cfg.api {
                        stages.stop();
                        stages = stages::Stages::start(&new_cfg, Arc::clone(&registry))?;
                    }
                    running = start_sources(&new_cfg, new_engine, &store)?;
                    cfg = new_cfg;
                    dlog!("info", "reloaded: {} source(s)", cfg.sources.len());
                }
                None => dlog!("error", "reload failed; the previous configuration keeps running"),
            }
        }
        if last_status.elapsed() >= dur(&cfg.daemon.status_interval) {
            let st = status::collect(&cfg, &running, &committer, &stages, &reloads);
            if let Err(e) = status::write(&cfg.daemon.data_dir, &st) {
                dlog!("warning", "cannot write status: {e}");
            }
            stages.publish_metrics(&st);
            last_status = Instant::now();
        }
        if last_purge.elapsed() >= StdDuration::from_secs(3600) {
            let before = wall_clock().saturating_sub(Duration::parse(&cfg.daemon.retention).unwrap_or_default());
            if let Err(e) = store.purge(before) {
                dlog!("warning", "purge failed: {e}");
            }
            last_purge = Instant::now();
        }
    }
    let _engine = stop_sources(running, &mut store, &mut committer, &stages);
    stages.stop();
    let mut st = status::Status::stopped(&cfg);
    st.commits = committer.commits;
    let _ = status::write(&cfg.daemon.data_dir, &st);
    Ok(ExitCode::SUCCESS)
}

fn print_diags(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}

/// Read and compile the new config; `None` (and the reasons printed and
/// recorded) when anything is wrong.
fn reload(old: &Config, path: Option<&Path>, reloads: &Mutex<status::ReloadStatus>) -> Option<(Config, Engine)> {
    let mut r = reloads.lock().unwrap_or_else(|p| p.into_inner());
    r.attempts += 1;
    let result = match path {
        None => Ok(config::embedded_default()),
        Some(p) => {
            let loaded = config::load(p);
            match loaded.config {
                Some(c) => Ok(c),
                None => Err(loaded.diagnostics),
            }
        }
    };
    let result = result.and_then(|c| {
        if c.daemon.data_dir != old.daemon.data_dir {
            return Err(vec![Diagnostic::error("K020", "data_dir cannot change on reload; restart instead")]);
        }
        Engine::build(&c, wall_clock()).map(|e| (c, e))
    });
    match result {
        Ok(ok) => {
            r.last_error = None;
            r.last_ok_unix = Some(wall_clock().as_secs_f64());
            Some(ok)
        }
        Err(diags) => {
            print_diags(&diags);
            r.failures += 1;
            r.last_error = Some(diags.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"));
            None
        }
    }
}
