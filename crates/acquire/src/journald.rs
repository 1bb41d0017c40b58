//! The `acquire` stage for the systemd journal, without linking libsystemd:
//! a child `journalctl --follow --output=json` whose output is read with a
//! cap on each line.
//!
//! [`JournaldSource::spawn`] starts one thread that runs
//!
//! ```text
//! journalctl --follow --output=json --all --no-pager
//!            [--after-cursor=CURSOR | --no-tail | --lines=0 | --since=@START]
//!            [--directory=DIR | --file=FILE…]
//!            [_SYSTEMD_UNIT=u1 _SYSTEMD_UNIT=u2 + SYSLOG_IDENTIFIER=i1 …]
//! ```
//!
//! (units OR identifiers: journalctl ORs matches of one field and `+`
//! separates alternatives), parses each JSON line into a [`JournalEntry`]
//! and hands it to the caller's bounded `SyncSender`, waiting when it is full
//! (the journal keeps the entries: nothing is dropped). Each entry carries its
//! `__CURSOR`; the daemon stores the cursor of the last entry it processed and
//! passes it to `spawn` after a restart, which resumes with
//! `--after-cursor`: no entry is lost or read twice.
//!
//! If journalctl exits (or cannot be started), it is restarted after a
//! back-off (doubling from `restart_delay_ms` to `restart_delay_max_ms`),
//! after the last cursor handed out; each restart is counted and its exit
//! status and last stderr output kept as an issue.
//!
//! # Bad input
//!
//! - a JSON line over `max_entry` bytes is skipped and counted (`oversize`);
//! - a line that is not a JSON object, or has no `__CURSOR` or no time stamp,
//!   is skipped and counted (`malformed`, with the reason in `issues`);
//! - an entry whose `MESSAGE` is absent or `null` is skipped and counted
//!   (`no_message`); `MESSAGE` as an array of bytes (not UTF-8) is decoded
//!   with U+FFFD replacement (`invalid_utf8`), an array of strings (a field
//!   given several times) is joined with spaces, as fail2ban does.

use std::collections::VecDeque;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde_json::Value;
use stadtwache_core::Timestamp;

use crate::Input;

/// Issues kept in [`JournaldStats::issues`].
pub const MAX_JOURNAL_ISSUES: usize = 100;

/// Configuration of a [`JournaldSource`]. Every field has a default.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournaldConfig {
    /// The journalctl program. Default `journalctl` (looked up in `PATH`).
    pub journalctl: PathBuf,
    /// Only entries of these units (`_SYSTEMD_UNIT=`, exact names such as
    /// `ssh.service`). With `identifiers` too, entries matching either.
    /// Both empty: every entry.
    pub units: Vec<String>,
    /// Only entries with these `SYSLOG_IDENTIFIER`s (`sshd`).
    pub identifiers: Vec<String>,
    /// Read the journal files in this directory (`--directory`) instead of
    /// the system journal.
    pub directory: Option<PathBuf>,
    /// Read these journal files (`--file`) instead of the system journal.
    pub files: Vec<PathBuf>,
    /// Without a saved cursor: read every entry in the journal (`true`) or
    /// only entries written from now on (`false`, the default).
    pub from_start: bool,
    /// Cap on one JSON line of journalctl's output, in bytes. Default 256 KiB.
    pub max_entry: usize,
    /// First delay before restarting journalctl, in milliseconds. Default 1000.
    pub restart_delay_ms: u64,
    /// Longest delay before restarting journalctl. Default 60000.
    pub restart_delay_max_ms: u64,
}

impl Default for JournaldConfig {
    fn default() -> Self {
        JournaldConfig {
            journalctl: PathBuf::from("journalctl"),
            units: Vec::new(),
            identifiers: Vec::new(),
            directory: None,
            files: Vec::new(),
            from_start: false,
            max_entry: 256 * 1024,
            restart_delay_ms: 1000,
            restart_delay_max_ms: 60_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournaldError {
    #[error("I020: invalid journald configuration: {0}")]
    Config(String),
    #[error("I021: cannot run {program}: {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
}

/// One journal entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    /// `__CURSOR`: where to resume after this entry.
    pub cursor: String,
    /// `_SOURCE_REALTIME_TIMESTAMP` (when the message was logged), else
    /// `__REALTIME_TIMESTAMP` (when the journal received it); the same choice
    /// as fail2ban.
    pub realtime: Timestamp,
    pub hostname: Option<String>,
    /// `SYSLOG_IDENTIFIER`, else `_COMM`.
    pub identifier: Option<String>,
    /// `SYSLOG_PID`, else `_PID` (as text).
    pub pid: Option<String>,
    /// `_SYSTEMD_UNIT`.
    pub unit: Option<String>,
    pub message: String,
    /// Invalid UTF-8 in a byte-array field was replaced.
    pub replaced: bool,
}

impl JournalEntry {
    /// The line fail2ban's systemd backend matches: `host ident[pid]: message`
    /// (parts that are missing are left out, as there), with newlines in the
    /// message written as `\n`. The time is [`JournalEntry::realtime`].
    pub fn line(&self) -> String {
        let mut parts: Vec<String> = Vec::with_capacity(3);
        if let Some(h) = &self.hostname {
            parts.push(h.clone());
        }
        if let Some(ident) = &self.identifier {
            let mut p = ident.clone();
            if let Some(pid) = &self.pid {
                p.push('[');
                p.push_str(pid);
                p.push(']');
            }
            p.push(':');
            parts.push(p);
        }
        parts.push(self.message.replace('\n', "\\n"));
        parts.join(" ")
    }
}

/// Why a JSON line gave no entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("not a JSON object: {0}")]
    Json(String),
    #[error("no __CURSOR")]
    NoCursor,
    #[error("no usable time stamp")]
    NoTime,
    #[error("no MESSAGE (absent or null)")]
    NoMessage,
}

/// A field's text: a string, an array of bytes, or (a field given several
/// times) an array of those, joined with `sep`. Returns (text, replaced).
fn field_text(v: &Value, sep: Option<&str>) -> Option<(String, bool)> {
    match v {
        Value::String(s) => Some((s.clone(), false)),
        Value::Array(items) if items.iter().all(|b| b.as_u64().is_some_and(|b| b < 256)) => {
            let bytes: Vec<u8> = items.iter().filter_map(Value::as_u64).map(|b| b as u8).collect();
            match String::from_utf8(bytes) {
                Ok(s) => Some((s, false)),
                Err(e) => Some((String::from_utf8_lossy(e.as_bytes()).into_owned(), true)),
            }
        }
        Value::Array(items) => {
            let mut texts = items.iter().filter_map(|i| field_text(i, None));
            match sep {
                None => texts.next(),
                Some(sep) => {
                    let (mut out, mut replaced) = texts.next()?;
                    for (t, r) in texts {
                        out.push_str(sep);
                        out.push_str(&t);
                        replaced |= r;
                    }
                    Some((out, replaced))
                }
            }
        }
        _ => None,
    }
}

/// Parse one line of `journalctl --output=json`.
pub fn parse_entry(json: &str) -> Result<JournalEntry, EntryError> {
    let v: Value = serde_json::from_str(json).map_err(|e| EntryError::Json(e.to_string()))?;
    let obj = v.as_object().ok_or_else(|| EntryError::Json("not an object".into()))?;
    let mut replaced = false;
    let mut get = |k: &str| {
        let (t, r) = obj.get(k).and_then(|v| field_text(v, None))?;
        replaced |= r;
        Some(t).filter(|t| !t.is_empty())
    };
    let cursor = get("__CURSOR").ok_or(EntryError::NoCursor)?;
    let realtime = get("_SOURCE_REALTIME_TIMESTAMP")
        .and_then(|t| t.parse::<i64>().ok())
        .or_else(|| get("__REALTIME_TIMESTAMP").and_then(|t| t.parse::<i64>().ok()))
        .ok_or(EntryError::NoTime)?;
    let hostname = get("_HOSTNAME");
    let identifier = get("SYSLOG_IDENTIFIER").or_else(|| get("_COMM"));
    let pid = get("SYSLOG_PID").or_else(|| get("_PID"));
    let unit = get("_SYSTEMD_UNIT");
    let (message, r) = obj.get("MESSAGE").and_then(|v| field_text(v, Some(" "))).ok_or(EntryError::NoMessage)?;
    Ok(JournalEntry {
        cursor,
        realtime: Timestamp(realtime),
        hostname,
        identifier,
        pid,
        unit,
        message,
        replaced: replaced || r,
    })
}

/// Counters of a [`JournaldSource`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JournaldStats {
    /// JSON lines read from journalctl.
    pub lines: u64,
    pub bytes: u64,
    /// Entries handed to the consumer.
    pub delivered: u64,
    /// Lines over `max_entry`, skipped.
    pub oversize: u64,
    /// Lines that gave no entry (not JSON, no cursor, no time), skipped.
    pub malformed: u64,
    /// Entries without a MESSAGE, skipped.
    pub no_message: u64,
    /// Delivered with invalid UTF-8 replaced.
    pub invalid_utf8: u64,
    /// Waiting for queue room when the source was shut down (not handed out,
    /// so not in the cursor: read again after a restart).
    pub dropped_shutdown: u64,
    /// journalctl exited, or failed to start, and was (re)started.
    pub restarts: u64,
    pub spawn_errors: u64,
    /// A journalctl child is running.
    pub running: bool,
    /// The cursor of the last entry handed out.
    pub cursor: Option<String>,
    pub issues_total: u64,
    /// The last [`MAX_JOURNAL_ISSUES`] issues, oldest first.
    pub issues: VecDeque<String>,
}

impl JournaldStats {
    fn issue(&mut self, s: String) {
        self.issues_total += 1;
        if self.issues.len() >= MAX_JOURNAL_ISSUES {
            self.issues.pop_front();
        }
        self.issues.push_back(s);
    }
}

struct Shared {
    stop: AtomicBool,
    child: Mutex<Option<Child>>,
    stats: Mutex<JournaldStats>,
}

impl Shared {
    fn stats(&self) -> std::sync::MutexGuard<'_, JournaldStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleep up to `d`, waking early when stopped.
    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopping() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// Starts the journalctl follower; see the module documentation.
pub struct JournaldSource;

impl JournaldSource {
    /// Start following. `cursor`: the cursor of the last entry processed
    /// before (resume after it), or `None` (see [`JournaldConfig::from_start`]).
    /// Errors for a bad configuration or when journalctl cannot be started at
    /// all (later failures are retried).
    pub fn spawn(
        config: JournaldConfig,
        cursor: Option<String>,
        sender: SyncSender<JournalEntry>,
    ) -> Result<JournaldHandle, JournaldError> {
        if config.directory.is_some() && !config.files.is_empty() {
            return Err(JournaldError::Config("`directory` and `files` exclude each other".into()));
        }
        if config.max_entry == 0 {
            return Err(JournaldError::Config("`max_entry` must be at least 1".into()));
        }
        for m in config.units.iter().chain(&config.identifiers) {
            if m.is_empty() || m.contains(['\n', '\0']) {
                return Err(JournaldError::Config(format!("invalid unit or identifier {m:?}")));
            }
        }
        let start = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        let first = start_child(&config, cursor.as_deref(), None)
            .map_err(|source| JournaldError::Spawn { program: config.journalctl.clone(), source })?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            child: Mutex::new(None),
            stats: Mutex::new(JournaldStats { cursor: cursor.clone(), ..JournaldStats::default() }),
        });
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("journald".into())
            .spawn(move || run(&sh, &config, cursor, start, first, &sender))
            .map_err(|source| JournaldError::Spawn { program: "thread".into(), source })?;
        Ok(JournaldHandle { shared, thread: Some(thread) })
    }
}

/// The running follower. Dropping it shuts it down too.
pub struct JournaldHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for JournaldHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournaldHandle").finish_non_exhaustive()
    }
}

impl JournaldHandle {
    pub fn stats(&self) -> JournaldStats {
        self.shared.stats().clone()
    }

    /// Kill journalctl, stop the thread, return the final counters.
    pub fn shutdown(mut self) -> JournaldStats {
        self.stop_and_join();
        self.stats()
    }

    fn stop_and_join(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(c) = self.shared.child.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = c.kill();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for JournaldHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn journalctl_args(config: &JournaldConfig, cursor: Option<&str>, since: Option<u64>) -> Vec<String> {
    let mut a: Vec<String> = ["--follow", "--output=json", "--all", "--no-pager", "--quiet"].map(String::from).to_vec();
    match (cursor, since) {
        (Some(c), _) => a.push(format!("--after-cursor={c}")),
        (None, Some(s)) => a.push(format!("--since=@{s}")),
        (None, None) if config.from_start => a.push("--no-tail".into()),
        (None, None) => a.push("--lines=0".into()),
    }
    if let Some(d) = &config.directory {
        a.push(format!("--directory={}", d.display()));
    }
    for f in &config.files {
        a.push(format!("--file={}", f.display()));
    }
    for u in &config.units {
        a.push(format!("_SYSTEMD_UNIT={u}"));
    }
    if !config.units.is_empty() && !config.identifiers.is_empty() {
        a.push("+".into());
    }
    for i in &config.identifiers {
        a.push(format!("SYSLOG_IDENTIFIER={i}"));
    }
    a
}

fn start_child(config: &JournaldConfig, cursor: Option<&str>, since: Option<u64>) -> std::io::Result<Child> {
    Command::new(&config.journalctl)
        .args(journalctl_args(config, cursor, since))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

/// The last `STDERR_KEEP` bytes of the child's stderr, read on a thread so
/// that a chatty child never blocks on a full pipe.
const STDERR_KEEP: usize = 2048;

fn drain_stderr(mut err: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut keep: VecDeque<u8> = VecDeque::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            keep.extend(&buf[..n]);
            while keep.len() > STDERR_KEEP {
                keep.pop_front();
            }
        }
        String::from_utf8_lossy(&keep.into_iter().collect::<Vec<u8>>()).trim().to_owned()
    })
}

fn run(
    sh: &Shared,
    config: &JournaldConfig,
    mut cursor: Option<String>,
    start: u64,
    first: Child,
    sender: &SyncSender<JournalEntry>,
) {
    let base = Duration::from_millis(config.restart_delay_ms.max(1));
    let max = Duration::from_millis(config.restart_delay_max_ms.max(config.restart_delay_ms).max(1));
    let mut delay = base;
    let mut next = Some(first);
    while !sh.stopping() {
        let mut child = match next.take() {
            Some(c) => c,
            None => match start_child(config, cursor.as_deref(), Some(start)) {
                Ok(c) => c,
                Err(e) => {
                    let mut st = sh.stats();
                    st.spawn_errors += 1;
                    st.issue(format!("cannot run {}: {e}", config.journalctl.display()));
                    drop(st);
                    sh.sleep(delay);
                    delay = (delay * 2).min(max);
                    continue;
                }
            },
        };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take().map(drain_stderr);
        {
            let mut slot = sh.child.lock().unwrap_or_else(|e| e.into_inner());
            if sh.stopping() {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            *slot = Some(child);
        }
        sh.stats().running = true;
        let started = Instant::now();
        if let Some(out) = stdout {
            let mut lines = Input::from_reader("journalctl", out).lines(config.max_entry);
            let mut seen_oversize = 0;
            while let Some(line) = lines.next() {
                let parsed = parse_entry(&line.text);
                let mut st = sh.stats();
                st.lines += 1;
                let oversize = lines.stats().oversize;
                if oversize > seen_oversize {
                    st.oversize += oversize - seen_oversize;
                    st.issue(format!("journal entry over {} bytes skipped", config.max_entry));
                    seen_oversize = oversize;
                }
                let entry = match parsed {
                    Ok(e) => e,
                    Err(EntryError::NoMessage) => {
                        st.no_message += 1;
                        continue;
                    }
                    Err(e) => {
                        st.malformed += 1;
                        st.issue(format!("journal line skipped: {e}"));
                        continue;
                    }
                };
                drop(st);
                match send(sh, sender, entry) {
                    Sent::Yes(c, replaced) => {
                        let mut st = sh.stats();
                        st.delivered += 1;
                        if replaced {
                            st.invalid_utf8 += 1;
                        }
                        st.cursor = Some(c.clone());
                        cursor = Some(c);
                    }
                    Sent::Stopped => {
                        sh.stats().dropped_shutdown += 1;
                        break;
                    }
                    Sent::Closed => {
                        // The consumer is gone: stop for good.
                        sh.stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            }
            let rs = lines.into_stats();
            let mut st = sh.stats();
            st.bytes += rs.bytes;
            if rs.oversize > seen_oversize {
                st.oversize += rs.oversize - seen_oversize;
            }
            for e in rs.read_errors {
                st.issue(format!("reading journalctl: {}", e.message));
            }
        }
        let status = {
            let mut slot = sh.child.lock().unwrap_or_else(|e| e.into_inner());
            // Its stdout is at its end (the child is exiting) or we stopped
            // reading: make sure it is gone (a kill does not change the
            // status of a child that already exited), and reap it.
            slot.take().map(|mut c| {
                let _ = c.kill();
                c.wait()
            })
        };
        let err_text = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
        sh.stats().running = false;
        if sh.stopping() {
            break;
        }
        let mut st = sh.stats();
        st.restarts += 1;
        let status = match status {
            Some(Ok(s)) => s.to_string(),
            Some(Err(e)) => e.to_string(),
            None => "unknown".into(),
        };
        st.issue(format!("journalctl ended ({status}); restarting: {err_text}"));
        drop(st);
        if started.elapsed() > max {
            delay = base;
        }
        sh.sleep(delay);
        delay = (delay * 2).min(max);
    }
}

enum Sent {
    Yes(String, bool),
    Stopped,
    Closed,
}

fn send(sh: &Shared, sender: &SyncSender<JournalEntry>, entry: JournalEntry) -> Sent {
    let cursor = entry.cursor.clone();
    let replaced = entry.replaced;
    let mut entry = entry;
    let mut wait = Duration::from_micros(100);
    loop {
        match sender.try_send(entry) {
            Ok(()) => return Sent::Yes(cursor, replaced),
            Err(TrySendError::Full(back)) => {
                if sh.stopping() {
                    return Sent::Stopped;
                }
                entry = back;
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(20));
            }
            Err(TrySendError::Disconnected(_)) => return Sent::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_as_string_bytes_array_or_null() {
        let e = parse_entry(r#"{"__CURSOR":"c1","__REALTIME_TIMESTAMP":"1795780800000000","_HOSTNAME":"bastion","SYSLOG_IDENTIFIER":"sshd","_PID":"4242","_SYSTEMD_UNIT":"ssh.service","MESSAGE":"Failed password for root from 203.0.113.9"}"#).unwrap();
        assert_eq!(e.line(), "bastion sshd[4242]: Failed password for root from 203.0.113.9");
        assert_eq!((e.realtime, e.unit.as_deref()), (Timestamp(1_795_780_800_000_000), Some("ssh.service")));
        let e = parse_entry(r#"{"__CURSOR":"c2","__REALTIME_TIMESTAMP":"1","_SOURCE_REALTIME_TIMESTAMP":"2","_COMM":"cron","MESSAGE":[97,98,255,10,99]}"#).unwrap();
        assert_eq!((e.message.as_str(), e.replaced, e.realtime), ("ab\u{fffd}\nc", true, Timestamp(2)));
        assert_eq!(e.line(), "cron: ab\u{fffd}\\nc");
        let e = parse_entry(
            r#"{"__CURSOR":"c3","__REALTIME_TIMESTAMP":"1","MESSAGE":["one",[116,119,111]],"SYSLOG_PID":["7","8"]}"#,
        )
        .unwrap();
        assert_eq!((e.message.as_str(), e.pid.as_deref(), e.line()), ("one two", Some("7"), "one two".to_string()));
        assert_eq!(
            parse_entry(r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","MESSAGE":null}"#),
            Err(EntryError::NoMessage)
        );
        assert_eq!(parse_entry(r#"{"__REALTIME_TIMESTAMP":"1","MESSAGE":"x"}"#), Err(EntryError::NoCursor));
        assert_eq!(parse_entry(r#"{"__CURSOR":"c","MESSAGE":"x"}"#), Err(EntryError::NoTime));
        assert!(matches!(parse_entry("[1,2]"), Err(EntryError::Json(_))));
        assert!(matches!(parse_entry("{\"__CURSOR\": \"c\", trunc"), Err(EntryError::Json(_))));
    }

    #[test]
    fn arguments_resume_filter_and_or() {
        let cfg = JournaldConfig {
            units: vec!["ssh.service".into(), "nginx.service".into()],
            identifiers: vec!["sshd".into()],
            files: vec!["/x/a.journal".into()],
            ..JournaldConfig::default()
        };
        let a = journalctl_args(&cfg, Some("s=1;i=2"), Some(5));
        assert!(a.contains(&"--after-cursor=s=1;i=2".to_string()));
        let tail: Vec<&str> = a.iter().map(String::as_str).skip_while(|s| s.starts_with("--")).collect();
        assert_eq!(tail, ["_SYSTEMD_UNIT=ssh.service", "_SYSTEMD_UNIT=nginx.service", "+", "SYSLOG_IDENTIFIER=sshd"]);
        assert!(journalctl_args(&cfg, None, None).contains(&"--lines=0".to_string()));
        assert!(journalctl_args(&cfg, None, Some(5)).contains(&"--since=@5".to_string()));
        let cfg = JournaldConfig { from_start: true, ..JournaldConfig::default() };
        assert!(journalctl_args(&cfg, None, None).contains(&"--no-tail".to_string()));
    }
}
