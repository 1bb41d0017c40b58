//! kill -9 at any moment loses no committed decision and double-counts no line.
//!
//! The parent re-executes this test binary as a child (`crash_child`, armed by
//! an environment variable) that resumes from its checkpoint and commits
//! batches in a loop — batch `i` = some decisions + some alerts + the
//! checkpoint "line i+1 done" — and expires decisions in between. The parent
//! SIGKILLs it at a random moment, reopens the database and checks that every
//! batch is wholly present or wholly absent, that the present ones are exactly
//! those before the checkpoint, and that the change log matches the rows.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stadtwache_core::{Key, Timestamp};
use stadtwache_store::{
    Batch, Checkpoint, EvidenceLine, FileIdentity, NewAlert, NewDecision, Origin, RuleStateRow, SqliteStore, Store,
    WindowRow,
};

const ENV_DIR: &str = "STADTWACHE_STORE_CRASH_DIR";
const SOURCE: &str = "/var/log/crash-test.log";
const SCOPE: &str = "crash-test";
const ROUNDS: usize = 30;
/// Written by the child after its first commit. The mid-stream kills are
/// timed from it, not from the spawn: a process start-up (a debug test
/// binary, SQLite opening the file) can take longer than the whole random
/// delay on a loaded machine, and then too few rounds made progress.
const MARKER: &str = "child-committed";

fn decisions_in(i: u64) -> u64 {
    1 + (i * 7919) % 5
}

fn alerts_in(i: u64) -> u64 {
    i % 3
}

fn batch(i: u64) -> Batch {
    let text = |s: String| Key::Text(Arc::from(s));
    let evidence = vec![EvidenceLine::new(SOURCE, i + 1, format!("line {i} of the log"))];
    Batch {
        decisions: (0..decisions_in(i))
            .map(|j| NewDecision {
                rule: Some(format!("batch-{i}")),
                evidence: evidence.clone(),
                reason: serde_json::json!({ "batch": i, "j": j }),
                ..NewDecision::new(
                    text(format!("d{i}-{j}")),
                    None,
                    Origin::Rule,
                    Timestamp::from_secs(i as i64),
                    // Some permanent, most expiring a few batches later.
                    (j != 0).then(|| Timestamp::from_secs(i as i64 + 5)),
                )
            })
            .collect(),
        alerts: (0..alerts_in(i))
            .map(|j| NewAlert {
                rule: format!("batch-{i}"),
                key: text(format!("a{i}-{j}")),
                time: Timestamp::from_secs(i as i64),
                count: 5,
                window: serde_json::json!({ "batch": i }),
                evidence: evidence.clone(),
            })
            .collect(),
        checkpoints: vec![Checkpoint {
            file: Some(FileIdentity { dev: 2049, inode: 131_072, fingerprint: b"first bytes".to_vec() }),
            line: i + 1,
            ..Checkpoint::new(SOURCE, (i + 1) * 100, Timestamp::from_secs(i as i64))
        }],
        replace_groups: vec![SOURCE.into()],
        // Detector windows travel with the checkpoint: batch i adds window
        // `w{i}`, deletes `w{i-3}` and rewrites `live` and the rule state.
        windows: [
            Some(WindowRow {
                scope: SCOPE.into(),
                rule: "r".into(),
                key: text(format!("w{i}")),
                state: Some(i.to_string()),
            }),
            i.checked_sub(3).map(|old| WindowRow {
                scope: SCOPE.into(),
                rule: "r".into(),
                key: text(format!("w{old}")),
                state: None,
            }),
            Some(WindowRow {
                scope: SCOPE.into(),
                rule: "r".into(),
                key: text("live".into()),
                state: Some(i.to_string()),
            }),
        ]
        .into_iter()
        .flatten()
        .collect(),
        rule_states: vec![RuleStateRow { scope: SCOPE.into(), rule: "r".into(), state: Some(i.to_string()) }],
    }
}

/// The windows after `done` batches, as `(key, state)` sorted by key.
fn windows_after(done: u64) -> Vec<(Key, String)> {
    let text = |s: String| Key::Text(Arc::from(s));
    let mut want: Vec<(Key, String)> =
        (done.saturating_sub(3)..done).map(|i| (text(format!("w{i}")), i.to_string())).collect();
    if done > 0 {
        want.push((text("live".into()), (done - 1).to_string()));
    }
    want.sort();
    want
}

/// The child: resume after the checkpoint, commit until killed.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(ENV_DIR) else {
        return; // not armed: an ordinary test run
    };
    let mut s = SqliteStore::open(Path::new(&dir)).expect("child: open");
    let mut i = s.get_checkpoint(SOURCE).expect("child: checkpoint").map_or(0, |c| c.line);
    let first = i;
    loop {
        s.commit_batch(&batch(i)).expect("child: commit");
        if i == first {
            // Tell the parent this run is under way (see `MARKER`).
            std::fs::write(Path::new(&dir).join(MARKER), b"").expect("child: marker");
        }
        if i % 4 == 0 {
            s.expire(Timestamp::from_secs(i as i64)).expect("child: expire");
        }
        i += 1;
    }
}

/// Checks the database after a kill; returns the number of committed batches.
fn verify(dir: &Path) -> u64 {
    let s = SqliteStore::open(dir).expect("reopen after kill");
    assert!(s.integrity_check().unwrap().is_empty(), "integrity");
    let cp = s.get_checkpoint(SOURCE).unwrap();
    let done = cp.as_ref().map_or(0, |c| c.line);
    if let Some(cp) = &cp {
        assert_eq!(cp.offset, done * 100, "offset matches the last batch");
    }
    // The windows are exactly those of the committed batches: never torn.
    let w = s.windows(SCOPE).unwrap();
    assert_eq!(w.skipped, 0);
    let got: Vec<(Key, String)> = w.windows.into_iter().map(|r| (r.key, r.state.unwrap())).collect();
    assert_eq!(got, windows_after(done), "windows after {done} batches");
    let rules: Vec<String> = w.rules.into_iter().map(|r| r.state.unwrap()).collect();
    assert_eq!(rules, done.checked_sub(1).map(|i| i.to_string()).into_iter().collect::<Vec<_>>());
    drop(s);

    let conn = rusqlite::Connection::open(dir.join(stadtwache_store::DB_FILE_NAME)).unwrap();
    let counts = |sql: &str| -> HashMap<String, u64> {
        let mut st = conn.prepare(sql).unwrap();
        st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let decisions = counts("SELECT rule, COUNT(*) FROM decisions GROUP BY rule");
    let alerts = counts("SELECT rule, COUNT(*) FROM alerts GROUP BY rule");
    let mut want_decisions = 0;
    let mut want_alerts = 0;
    for i in 0..done {
        let rule = format!("batch-{i}");
        assert_eq!(decisions.get(&rule).copied().unwrap_or(0), decisions_in(i), "decisions of batch {i} of {done}");
        assert_eq!(alerts.get(&rule).copied().unwrap_or(0), alerts_in(i), "alerts of batch {i} of {done}");
        want_decisions += decisions_in(i);
        want_alerts += alerts_in(i);
    }
    // Nothing of a batch after the checkpoint (it would be counted twice on resume).
    assert_eq!(decisions.values().sum::<u64>(), want_decisions, "no decisions beyond batch {done}");
    assert_eq!(alerts.values().sum::<u64>(), want_alerts, "no alerts beyond batch {done}");

    // The change log agrees with the rows: one "new" per decision, one "end"
    // per ended decision, none otherwise.
    let one = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        one("SELECT COUNT(*) FROM decisions d WHERE (SELECT COUNT(*) FROM changes c \
             WHERE c.decision_id = d.id AND c.kind = 0) != 1"),
        0
    );
    assert_eq!(
        one("SELECT COUNT(*) FROM decisions d WHERE (SELECT COUNT(*) FROM changes c \
             WHERE c.decision_id = d.id AND c.kind = 1) != (d.deleted_at IS NOT NULL)"),
        0
    );
    assert_eq!(one("SELECT COUNT(*) FROM changes WHERE kind = 0"), want_decisions as i64);
    done
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[test]
fn kill_9_loses_no_committed_batch_and_double_counts_no_line() {
    if std::env::var_os(ENV_DIR).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("crash test seed {seed:#x}");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut done = 0;
    let mut progressed = 0;
    for round in 0..ROUNDS {
        let _ = std::fs::remove_file(dir.path().join(MARKER));
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(ENV_DIR, dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Sometimes very early (while opening or migrating), mostly mid-stream:
        // at a random moment after the first commit of this run.
        let early = round % 5 == 0;
        let wait = if early { rng.below(15) } else { rng.below(200) };
        if !early {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !dir.path().join(MARKER).exists() {
                if let Some(st) = child.try_wait().unwrap() {
                    let out = child.wait_with_output().unwrap();
                    panic!("child ended on its own ({st}): {}", String::from_utf8_lossy(&out.stderr));
                }
                assert!(Instant::now() < deadline, "round {round}: the child made no commit within 60 s");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        std::thread::sleep(Duration::from_millis(wait));
        // SIGKILL on Unix.
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "child ended on its own: {}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "child failed: {stderr}");
        let now = verify(dir.path());
        assert!(now >= done, "committed batches went missing: {now} < {done}");
        if now > done {
            progressed += 1;
        }
        eprintln!("round {round:2}: killed after {wait:3} ms, {now} batches committed");
        done = now;
    }
    eprintln!("{ROUNDS} kills, {done} batches, {:.1} s", started.elapsed().as_secs_f64());
    assert!(progressed >= ROUNDS / 2, "children made too little progress ({progressed} rounds)");
}
