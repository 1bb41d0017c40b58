//! Network and journal sources: the syslog receiver and journald.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use stadtwache_acquire::syslog::{SyslogMessage, SyslogReceiver, SyslogStats};

use super::config::{SourceConfig, TimeFrom};
use stadtwache_acquire::journald::{JournalEntry, JournaldSource, JournaldStats};

use super::engine::{Chunk, Position, SourceLine};
use super::sources::{CHUNK_LINES, SourceStatus};
use crate::timectx::wall_clock;

/// Messages waiting between the receiver threads and this source thread.
const SYSLOG_QUEUE: usize = 8192;

pub fn run_syslog(
    idx: usize,
    cfg: SourceConfig,
    tx: SyncSender<Chunk>,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<SourceStatus>>,
) {
    let sc = cfg.syslog.clone().unwrap_or_default();
    let (mtx, mrx) = std::sync::mpsc::sync_channel::<SyslogMessage>(SYSLOG_QUEUE);
    let handle = match SyslogReceiver::spawn(sc, mtx) {
        Ok(h) => h,
        Err(e) => {
            crate::dlog!("error", "source {}: {e}", cfg.name);
            let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
            s.issues.push(e.to_string());
            s.running = false;
            return;
        }
    };
    pump(idx, &mrx, &tx, &stop, |m| (line_of(&cfg, &m), None), || publish(&handle.stats(), &status));
    let st = handle.shutdown();
    publish(&st, &status);
    status.lock().unwrap_or_else(|p| p.into_inner()).running = false;
}

/// Move what a receiver thread queued into chunks for detection (at most
/// [`CHUNK_LINES`] each, the last cursor as the chunk's position) until
/// `stop`; `publish` refreshes the source's status twice a second.
fn pump<T>(
    idx: usize,
    rx: &Receiver<T>,
    tx: &SyncSender<Chunk>,
    stop: &AtomicBool,
    mut to_line: impl FnMut(T) -> (SourceLine, Option<String>),
    mut publish: impl FnMut(),
) {
    let mut last_publish = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let first = match rx.recv_timeout(StdDuration::from_millis(100)) {
            Ok(e) => Some(e),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut out = Vec::new();
        let mut cursor = None;
        for item in first.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok())).take(CHUNK_LINES) {
            let (line, c) = to_line(item);
            out.push(line);
            cursor = c.or(cursor);
        }
        if !out.is_empty() {
            let position = cursor.map(Position::Journal);
            if tx.send(Chunk { source: idx, lines: out, position }).is_err() {
                break;
            }
        }
        if last_publish.elapsed() >= StdDuration::from_millis(500) {
            publish();
            last_publish = Instant::now();
        }
    }
}

/// A syslog message as a line: fail2ban's journal style (`host app[pid]:
/// message`) with the message's own time (or the arrival time), so stock
/// filters match without a date in the text.
fn line_of(cfg: &SourceConfig, m: &SyslogMessage) -> SourceLine {
    let time = match cfg.time {
        TimeFrom::Arrival => m.received,
        TimeFrom::Line => m.effective_time(),
    };
    SourceLine {
        text: m.journal_style_line(),
        time: Some(time),
        line_no: 0,
        input: Arc::from(format!("syslog:{}", m.peer.ip()).as_str()),
        read_at: Instant::now(),
    }
}

fn publish(st: &SyslogStats, status: &Mutex<SourceStatus>) {
    let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
    s.lines = st.udp.received + st.tcp.received;
    s.bytes = st.udp.bytes + st.tcp.bytes;
    let both = |f: fn(&stadtwache_acquire::syslog::TransportStats) -> u64| f(&st.udp) + f(&st.tcp);
    for (k, v) in [
        ("malformed", both(|t| t.malformed)),
        ("invalid_utf8_replaced", both(|t| t.invalid_utf8)),
        ("truncated", both(|t| t.truncated)),
        ("not_allowed", both(|t| t.dropped_not_allowed) + st.connections_refused_not_allowed),
        ("oversize", both(|t| t.dropped_oversize)),
        ("queue_full", both(|t| t.dropped_queue_full)),
        ("connections_over_limit", st.connections_refused_limit),
        ("read_errors", st.read_errors),
    ] {
        s.dropped.insert(k.to_string(), v);
    }
    s.issues = st
        .issues
        .iter()
        .rev()
        .take(10)
        .map(|i| format!("{:?} {}: {}", i.transport, i.peer.map_or("-".into(), |p| p.to_string()), i.reason))
        .collect();
}

pub fn run_journald(
    idx: usize,
    cfg: SourceConfig,
    cursor: Option<String>,
    tx: SyncSender<Chunk>,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<SourceStatus>>,
) {
    let jc = cfg.journald.clone().unwrap_or_default();
    let (etx, erx) = std::sync::mpsc::sync_channel::<JournalEntry>(SYSLOG_QUEUE);
    let handle = match JournaldSource::spawn(jc, cursor, etx) {
        Ok(h) => h,
        Err(e) => {
            crate::dlog!("error", "source {}: {e}", cfg.name);
            let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
            s.issues.push(e.to_string());
            s.running = false;
            return;
        }
    };
    let input: Arc<str> = Arc::from(format!("journald:{}", cfg.name).as_str());
    let to_line = |e: JournalEntry| {
        let time = match cfg.time {
            TimeFrom::Arrival => wall_clock(),
            TimeFrom::Line => e.realtime,
        };
        let line = SourceLine {
            text: e.line(),
            time: Some(time),
            line_no: 0,
            input: Arc::clone(&input),
            read_at: Instant::now(),
        };
        (line, Some(e.cursor))
    };
    pump(idx, &erx, &tx, &stop, to_line, || publish_journal(&handle.stats(), &status));
    let st = handle.shutdown();
    publish_journal(&st, &status);
    status.lock().unwrap_or_else(|p| p.into_inner()).running = false;
}

fn publish_journal(st: &JournaldStats, status: &Mutex<SourceStatus>) {
    let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
    s.lines = st.lines;
    s.bytes = st.bytes;
    for (k, v) in [
        ("oversize", st.oversize),
        ("malformed", st.malformed),
        ("no_message", st.no_message),
        ("invalid_utf8_replaced", st.invalid_utf8),
        ("journalctl_restarts", st.restarts),
        ("spawn_errors", st.spawn_errors),
    ] {
        s.dropped.insert(k.to_string(), v);
    }
    s.issues = st.issues.iter().rev().take(10).cloned().collect();
}
