//! Source threads: each reads its lines and sends them, in order and in
//! chunks, over the one bounded queue to detection. A file or journald
//! source attaches its position to the last chunk of each read, so the
//! position is committed together with the effects of the lines before it.
//! A full queue blocks file, journald and stdin reading (they catch up
//! later, nothing is lost); the syslog receiver drops and counts instead,
//! since a datagram cannot wait.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant};

use serde::{Deserialize, Serialize};
use stadtwache_acquire::follow::{FileFollower, FollowConfig};

use super::config::{SourceConfig, SourceKind, TimeFrom};
use super::engine::{Chunk, Position, SourceLine};
use crate::timectx::wall_clock;

/// Lines per chunk, at most.
pub const CHUNK_LINES: usize = 1024;

/// What a source reports in `status.json` (read back by `stadtwache
/// status`) and `/metrics`. The source thread fills the reading side;
/// `processed` and `lag_seconds` are detection's, added when the status is
/// collected.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SourceStatus {
    pub name: String,
    pub kind: String,
    pub running: bool,
    pub lines: u64,
    pub bytes: u64,
    /// How far behind (files): bytes written but not yet read.
    pub lag_bytes: u64,
    /// Lines detection has processed.
    #[serde(default)]
    pub processed: u64,
    /// journald/syslog: age of the newest line when it was processed (seconds).
    #[serde(default)]
    pub lag_seconds: Option<f64>,
    /// Dropped or repaired input, by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Recent problems (capped).
    pub issues: Vec<String>,
}

pub struct SourceHandle {
    pub status: Arc<Mutex<SourceStatus>>,
    pub thread: Option<JoinHandle<()>>,
}

/// Start the thread of source `idx`.
pub fn spawn(
    idx: usize,
    cfg: &SourceConfig,
    resume: Option<Position>,
    tx: SyncSender<Chunk>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<SourceHandle> {
    let status = Arc::new(Mutex::new(SourceStatus {
        name: cfg.name.clone(),
        kind: format!("{:?}", cfg.kind).to_lowercase(),
        running: true,
        ..SourceStatus::default()
    }));
    let st = Arc::clone(&status);
    let cfg = cfg.clone();
    let name = format!("src-{}", cfg.name);
    let thread = match cfg.kind {
        SourceKind::File => {
            let cps = match resume {
                Some(Position::Files(c)) => c,
                _ => Vec::new(),
            };
            std::thread::Builder::new().name(name).spawn(move || run_files(idx, cfg, cps, tx, stop, st))?
        }
        SourceKind::Stdin => std::thread::Builder::new().name(name).spawn(move || run_stdin(idx, cfg, tx, stop, st))?,
        SourceKind::Syslog => std::thread::Builder::new()
            .name(name)
            .spawn(move || super::sources_net::run_syslog(idx, cfg, tx, stop, st))?,
        SourceKind::Journald => {
            let cursor = match resume {
                Some(Position::Journal(c)) => Some(c),
                _ => None,
            };
            std::thread::Builder::new()
                .name(name)
                .spawn(move || super::sources_net::run_journald(idx, cfg, cursor, tx, stop, st))?
        }
    };
    Ok(SourceHandle { status, thread: Some(thread) })
}

fn line_time(cfg: &SourceConfig) -> Option<stadtwache_core::Timestamp> {
    match cfg.time {
        TimeFrom::Arrival => Some(wall_clock()),
        TimeFrom::Line => None,
    }
}

fn run_files(
    idx: usize,
    cfg: SourceConfig,
    resume: Vec<stadtwache_acquire::follow::Checkpoint>,
    tx: SyncSender<Chunk>,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<SourceStatus>>,
) {
    let fc = FollowConfig {
        max_line: cfg.max_line_bytes,
        poll_interval: StdDuration::from_millis(250),
        ..FollowConfig::default()
    };
    let mut follower = match FileFollower::new(cfg.paths.clone(), fc, resume) {
        Ok(f) => f,
        Err(e) => {
            let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
            s.issues.push(e.to_string());
            s.running = false;
            return;
        }
    };
    let mut line_nos: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        let lines = follower.poll_once();
        if lines.is_empty() {
            publish_follow(&follower, &status);
            follower.wait();
            continue;
        }
        let now = Instant::now();
        let t = line_time(&cfg);
        let mut out = Vec::with_capacity(lines.len().min(CHUNK_LINES));
        let total = lines.len();
        let mut sent = 0usize;
        for l in lines {
            let no = line_nos.entry((l.source.file.dev, l.source.file.ino)).or_insert(0);
            *no += 1;
            out.push(SourceLine {
                input: Arc::from(l.path.to_string_lossy().as_ref()),
                text: l.text,
                time: t,
                line_no: *no,
                read_at: now,
            });
            sent += 1;
            if out.len() == CHUNK_LINES || sent == total {
                let position = (sent == total).then(|| Position::Files(follower.checkpoint()));
                let chunk = Chunk { source: idx, lines: std::mem::take(&mut out), position };
                if tx.send(chunk).is_err() {
                    return;
                }
            }
        }
        if line_nos.len() > 4096 {
            line_nos.clear();
        }
        publish_follow(&follower, &status);
    }
    publish_follow(&follower, &status);
    status.lock().unwrap_or_else(|p| p.into_inner()).running = false;
}

fn publish_follow(f: &FileFollower, status: &Mutex<SourceStatus>) {
    let st = f.stats();
    let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
    s.lines = st.lines;
    s.bytes = st.bytes;
    s.lag_bytes = st.files.iter().map(|f| f.lag).sum();
    for (k, v) in [
        ("oversize", st.oversize),
        ("invalid_utf8_replaced", st.invalid_utf8),
        ("truncations_unrecovered", st.truncations_unrecovered),
        ("read_errors", st.read_errors),
        ("resume_misses", st.resume_misses),
    ] {
        s.dropped.insert(k.to_string(), v);
    }
    s.issues = st.issues.iter().rev().take(10).map(|i| format!("{}: {}", i.path.display(), i.message)).collect();
}

fn run_stdin(
    idx: usize,
    cfg: SourceConfig,
    tx: SyncSender<Chunk>,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<SourceStatus>>,
) {
    let input = stadtwache_acquire::Input::from_reader("stdin", std::io::stdin());
    let mut reader = input.lines(cfg.max_line_bytes);
    let mut out = Vec::new();
    let input_name: Arc<str> = Arc::from("stdin");
    while !stop.load(Ordering::Relaxed) {
        let Some(line) = reader.next() else { break };
        out.push(SourceLine {
            text: line.text.into_owned(),
            time: line_time(&cfg),
            line_no: line.number,
            input: Arc::clone(&input_name),
            read_at: Instant::now(),
        });
        // stdin blocks per line: send each line rather than wait for a full chunk.
        {
            if tx.send(Chunk { source: idx, lines: std::mem::take(&mut out), position: None }).is_err() {
                return;
            }
            let st = reader.stats();
            let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
            s.lines = st.lines;
            s.bytes = st.bytes;
            s.dropped.insert("oversize".into(), st.oversize);
            s.dropped.insert("invalid_utf8_replaced".into(), st.invalid_utf8);
        }
    }
    status.lock().unwrap_or_else(|p| p.into_inner()).running = false;
}
