use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use stadtwache_core::{Key, Timestamp};

use super::*;

fn ip(s: &str) -> Key {
    Key::Ip(s.parse::<IpAddr>().unwrap())
}

fn text(s: &str) -> Key {
    Key::Text(Arc::from(s))
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_secs(secs)
}

fn ban(key: Key, created: i64, until: Option<i64>) -> NewDecision {
    NewDecision::new(key, None, Origin::Rule, t(created), until.map(t))
}

fn mem() -> SqliteStore {
    SqliteStore::open_in_memory().unwrap()
}

fn file_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("data")).unwrap();
    (dir, s)
}

fn ids(ds: &[StoredDecision]) -> Vec<i64> {
    ds.iter().map(|d| d.id.0).collect()
}

#[test]
fn open_creates_a_private_wal_database_with_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("var/lib/stadtwache");
    let s = SqliteStore::open(&data).unwrap();
    assert_eq!(s.path(), data.join(DB_FILE_NAME));
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let mode: String = s.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = s.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
    assert_eq!(sync, 1, "NORMAL");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(s.path()).unwrap().permissions().mode();
        assert_eq!(m & 0o777, 0o600);
        let m = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(m & 0o777, 0o700);
    }
    assert!(s.integrity_check().unwrap().is_empty());
    drop(s);
    // Reopening migrates nothing and keeps the data.
    let mut s = SqliteStore::open(&data).unwrap();
    s.insert_decision(&ban(ip("192.0.2.1"), 1, None)).unwrap();
    drop(s);
    let opts = SqliteOptions { synchronous: Synchronous::Full, ..SqliteOptions::default() };
    let s = SqliteStore::open_with(&data, &opts).unwrap();
    let sync: i64 = s.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
    assert_eq!(sync, 2, "FULL");
    assert_eq!(s.active_decisions(t(2)).unwrap().len(), 1);
    let versions: i64 = s.conn.query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0)).unwrap();
    assert_eq!(versions, SCHEMA_VERSION);
}

/// The daemon and a CLI command (`decisions list`) opening the same new
/// database at once: both open it (switching a new file to WAL answered
/// "locked" at once before the retry — the daemon then failed to start).
#[test]
fn processes_opening_a_new_database_at_once_all_succeed() {
    for round in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (data, barrier) = (data.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteStore::open(&data).map(|s| s.schema_version())
                })
            })
            .collect();
        for h in handles {
            let r = h.join().unwrap();
            assert!(matches!(r, Ok(Ok(SCHEMA_VERSION))), "round {round}: {r:?}");
        }
    }
}

#[test]
fn a_newer_schema_is_refused() {
    let (dir, s) = file_store();
    s.conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?1, 0)", [SCHEMA_VERSION + 1]).unwrap();
    drop(s);
    let err = SqliteStore::open(&dir.path().join("data")).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, known, .. } if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION),
        "{err}"
    );
    assert!(err.to_string().contains("newer than this build"), "{err}");
}

#[test]
fn a_file_that_is_not_a_database_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE_NAME);
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("open") && msg.contains(DB_FILE_NAME), "{msg}");

    // A database damaged after the header.
    let dir2 = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(dir2.path()).unwrap();
    for i in 0..200 {
        s.insert_decision(&ban(text(&format!("user{i}")), 1, None)).unwrap();
    }
    s.wal_checkpoint().unwrap();
    drop(s);
    let path = dir2.path().join(DB_FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().skip(4096) {
        *b = 0xa5;
    }
    std::fs::write(&path, &bytes).unwrap();
    // Opening or reading must fail with an error (whichever comes first).
    match SqliteStore::open(dir2.path()) {
        Err(e) => {
            eprintln!("damaged database: open failed: {e}");
            assert!(e.is_corrupt(), "{e:?}");
        }
        Ok(s) => {
            let r = s.active_decisions(t(2));
            eprintln!("damaged database: opened; read: {:?}", r.as_ref().map(Vec::len));
            match r {
                Err(e) => assert!(e.is_corrupt(), "{e:?}"),
                Ok(_) => assert!(!s.integrity_check().unwrap_or_default().is_empty()),
            }
        }
    }
}

#[test]
fn a_locked_database_is_a_busy_error() {
    let (dir, _s) = file_store();
    let path = dir.path().join("data").join(DB_FILE_NAME);
    let opts = SqliteOptions { busy_timeout: StdDuration::from_millis(50), ..SqliteOptions::default() };
    let mut other = SqliteStore::open_file(&path, &opts).unwrap();
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = other.insert_decision(&ban(ip("192.0.2.7"), 1, None)).unwrap_err();
    assert!(err.is_busy(), "{err:?}");
    assert!(err.to_string().contains("commit_batch"), "{err}");
    // Readers are not blocked by a writer in WAL mode.
    assert!(other.active_decisions(t(1)).unwrap().is_empty());
    locker.execute_batch("ROLLBACK").unwrap();
    other.insert_decision(&ban(ip("192.0.2.7"), 1, None)).unwrap();
}

#[test]
fn decisions_round_trip_with_reason_and_capped_evidence() {
    let mut s = mem();
    let long = "x".repeat(MAX_EVIDENCE_TEXT + 100) + "é";
    let evidence: Vec<EvidenceLine> = (1..=40)
        .map(|i| EvidenceLine {
            input: "/var/log/auth.log".into(),
            line: i,
            text: if i == 40 { long.clone() } else { format!("line {i}") },
        })
        .collect();
    let d = NewDecision {
        key: ip("2001:db8::1234"),
        prefix: Some(64),
        origin: Origin::Admin,
        rule: Some("sshd".into()),
        reason: serde_json::json!({"rule": 0, "steps": [{"step": "allowlist", "matched": null}]}),
        evidence,
        created: t(100),
        until: Some(t(700)),
        simulated: true,
    };
    let id = s.insert_decision(&d).unwrap();
    let got = s.decision(id).unwrap().unwrap();
    assert_eq!(got.id, id);
    assert_eq!(got.deleted_at, None);
    assert_eq!(got.end, None);
    let g = &got.decision;
    assert_eq!(g.key, ip("2001:db8::"), "network address");
    assert_eq!(g.prefix, Some(64));
    assert_eq!(g.target(), "2001:db8::/64");
    assert_eq!(g.origin, Origin::Admin);
    assert_eq!(g.rule.as_deref(), Some("sshd"));
    assert_eq!(g.reason, d.reason);
    assert_eq!(g.created, t(100));
    assert_eq!(g.until, Some(t(700)));
    assert!(g.simulated);
    assert_eq!(g.evidence.len(), MAX_EVIDENCE_LINES);
    assert_eq!(g.evidence[0].line, 40 - MAX_EVIDENCE_LINES as u64 + 1, "the last lines are kept");
    let last = g.evidence.last().unwrap();
    assert_eq!(last.line, 40);
    assert_eq!(last.text.len(), MAX_EVIDENCE_TEXT);
    assert!(s.decision(DecisionId(999)).unwrap().is_none());

    // Full-length prefixes are plain addresses; mapped IPv4 is IPv4.
    let id =
        s.insert_decision(&NewDecision::new(ip("::ffff:192.0.2.9"), Some(32), Origin::Federation, t(1), None)).unwrap();
    let got = s.decision(id).unwrap().unwrap();
    assert_eq!((got.decision.key.clone(), got.decision.prefix), (ip("192.0.2.9"), None));
    assert_eq!(got.decision.origin, Origin::Federation);
    assert_eq!(got.decision.until, None);

    let other = NewDecision::new(text("alice"), None, Origin::Other("Blocklist".into()), t(1), None);
    let id = s.insert_decision(&other).unwrap();
    assert_eq!(s.decision(id).unwrap().unwrap().decision.origin, Origin::Other("blocklist".into()));
}

#[test]
fn invalid_input_is_refused_and_a_batch_is_all_or_nothing() {
    let mut s = mem();
    let cp = |offset| Checkpoint { line: offset, ..Checkpoint::new("/var/log/auth.log", offset, t(1)) };
    s.put_checkpoint(&cp(10)).unwrap();
    // The bad row comes last: everything written before it is rolled back.
    let bad = Batch {
        decisions: vec![ban(ip("192.0.2.1"), 1, Some(100))],
        alerts: vec![],
        checkpoints: vec![cp(20), Checkpoint::new("", 1, t(1))],
        replace_groups: vec!["/var/log/auth.log".into()],
        ..Batch::default()
    };
    let err = s.commit_batch(&bad).unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert!(s.active_decisions(t(1)).unwrap().is_empty());
    assert_eq!(s.get_checkpoint("/var/log/auth.log").unwrap().unwrap().offset, 10);
    let bad = Batch {
        decisions: vec![
            ban(ip("192.0.2.1"), 1, Some(100)),
            NewDecision::new(text("bob"), Some(24), Origin::Rule, t(1), None),
        ],
        checkpoints: vec![cp(20)],
        ..Batch::default()
    };
    assert!(s.commit_batch(&bad).is_err());
    assert!(s.active_decisions(t(1)).unwrap().is_empty());
    assert_eq!(s.changed_since(ChangeCursor::START).unwrap().cursor, ChangeCursor::START);

    let too_long = NewDecision::new(ip("192.0.2.1"), Some(33), Origin::Rule, t(1), None);
    assert!(s.insert_decision(&too_long).is_err());
    assert!(s.put_checkpoint(&cp(u64::MAX)).is_err());
    let mut empty_source = cp(1);
    empty_source.source.clear();
    assert!(s.put_checkpoint(&empty_source).is_err());
    assert!(s.changed_since(ChangeCursor::START).unwrap().new.is_empty());
    assert_eq!(s.commit_batch(&Batch::default()).unwrap(), Committed::default());
}

#[test]
fn delete_by_id_and_by_target() {
    let mut s = mem();
    let a = s.insert_decision(&ban(ip("192.0.2.1"), 1, Some(1000))).unwrap();
    let b = s.insert_decision(&ban(ip("192.0.2.1"), 2, None)).unwrap();
    let c = s.insert_decision(&ban(ip("192.0.2.2"), 3, Some(1000))).unwrap();
    let net = s.insert_decision(&NewDecision::new(ip("192.0.2.77"), Some(24), Origin::Admin, t(4), None)).unwrap();
    assert_eq!(s.delete_decisions(&DecisionRef::Id(c), t(10)).unwrap(), 1);
    assert_eq!(s.delete_decisions(&DecisionRef::Id(c), t(11)).unwrap(), 0, "already ended");
    let gone = s.decision(c).unwrap().unwrap();
    assert_eq!(gone.deleted_at, Some(t(10)));
    assert_eq!(gone.end, Some(EndReason::Deleted));
    assert!(!gone.is_active(t(10)));

    let target = DecisionRef::Target { key: ip("192.0.2.1"), prefix: None };
    assert_eq!(s.delete_decisions(&target, t(20)).unwrap(), 2);
    assert_eq!(ids(&s.active_decisions(t(20)).unwrap()), vec![net.0]);
    for id in [a, b] {
        assert_eq!(s.decision(id).unwrap().unwrap().deleted_at, Some(t(20)));
    }
    // The network by its own target (any address inside names the same network).
    let target = DecisionRef::Target { key: ip("192.0.2.200"), prefix: Some(24) };
    assert_eq!(s.delete_decisions(&target, t(30)).unwrap(), 1);
    assert!(s.active_decisions(t(30)).unwrap().is_empty());
}

#[test]
fn active_decisions_and_expiry_follow_the_given_time() {
    let mut s = mem();
    let short = s.insert_decision(&ban(ip("192.0.2.1"), 0, Some(100))).unwrap();
    let long = s.insert_decision(&ban(ip("192.0.2.2"), 0, Some(200))).unwrap();
    let perm = s.insert_decision(&ban(ip("192.0.2.3"), 0, None)).unwrap();

    // Active while now <= until.
    assert_eq!(ids(&s.active_decisions(t(100)).unwrap()), vec![short.0, long.0, perm.0]);
    assert_eq!(ids(&s.active_decisions(Timestamp(t(100).0 + 1)).unwrap()), vec![long.0, perm.0]);
    // Nothing is removed before its time.
    assert_eq!(s.expire(t(100)).unwrap(), 0);
    assert_eq!(s.expire(t(150)).unwrap(), 1);
    assert_eq!(s.expire(t(150)).unwrap(), 0, "idempotent");
    let d = s.decision(short).unwrap().unwrap();
    assert_eq!(d.deleted_at, Some(t(150)));
    assert_eq!(d.end, Some(EndReason::Expired));
    // Even when asked about an earlier time, an ended decision stays ended.
    assert_eq!(ids(&s.active_decisions(t(50)).unwrap()), vec![long.0, perm.0]);
    assert_eq!(s.expire(t(10_000_000)).unwrap(), 1);
    assert_eq!(ids(&s.active_decisions(t(10_000_000)).unwrap()), vec![perm.0]);

    // Expiry is recorded for the stream.
    let ch = s.changed_since(ChangeCursor(3)).unwrap();
    assert!(ch.new.is_empty());
    assert_eq!(ids(&ch.deleted), vec![short.0, long.0]);
}

#[test]
fn decisions_for_finds_the_address_and_the_networks_that_contain_it() {
    let mut s = mem();
    let a = s.insert_decision(&ban(ip("198.51.100.7"), 1, Some(10))).unwrap();
    let n24 = s.insert_decision(&NewDecision::new(ip("198.51.100.0"), Some(24), Origin::Admin, t(2), None)).unwrap();
    let n16 = s.insert_decision(&NewDecision::new(ip("198.51.0.0"), Some(16), Origin::Admin, t(3), None)).unwrap();
    let _other = s.insert_decision(&ban(ip("198.51.101.7"), 1, None)).unwrap();
    let _elsewhere =
        s.insert_decision(&NewDecision::new(ip("203.0.113.0"), Some(24), Origin::Admin, t(3), None)).unwrap();
    let v6 = s.insert_decision(&NewDecision::new(ip("2001:db8:1:2::"), Some(64), Origin::Rule, t(3), None)).unwrap();
    let u = s.insert_decision(&ban(text("alice"), 1, None)).unwrap();
    s.expire(t(100)).unwrap();

    // Newest first, ended ones included.
    let got = s.decisions_for(&ip("198.51.100.7")).unwrap();
    assert_eq!(ids(&got), vec![n16.0, n24.0, a.0]);
    assert!(!got[2].is_active(t(100)));
    assert_eq!(ids(&s.decisions_for(&ip("::ffff:198.51.100.7")).unwrap()), vec![n16.0, n24.0, a.0]);
    assert_eq!(ids(&s.decisions_for(&ip("2001:db8:1:2::99")).unwrap()), vec![v6.0]);
    assert!(s.decisions_for(&ip("2001:db8:1:3::1")).unwrap().is_empty());
    assert_eq!(ids(&s.decisions_for(&text("alice")).unwrap()), vec![u.0]);
    assert!(s.decisions_for(&text("198.51.100.7")).unwrap().is_empty());
}

#[test]
fn the_change_stream_contract() {
    let mut s = mem();
    // 1. Start-up pull: every target's longest live decision, never simulated ones.
    let a1 = s.insert_decision(&ban(ip("192.0.2.1"), 0, Some(100))).unwrap();
    let a2 = s.insert_decision(&ban(ip("192.0.2.1"), 0, Some(400))).unwrap();
    let b = s.insert_decision(&ban(ip("192.0.2.2"), 0, None)).unwrap();
    let mut sim = ban(ip("192.0.2.3"), 0, Some(100));
    sim.simulated = true;
    s.insert_decision(&sim).unwrap();
    let ch = s.changed_since(ChangeCursor::START).unwrap();
    assert_eq!(ids(&ch.new), vec![a2.0, b.0]);
    assert!(ch.deleted.is_empty());
    assert!(!ch.gap);
    let c1 = ch.cursor;
    assert!(c1 > ChangeCursor::START);

    // 2. Nothing happened: nothing to send, the cursor stays.
    let ch = s.changed_since(c1).unwrap();
    assert!(ch.new.is_empty() && ch.deleted.is_empty());
    assert_eq!(ch.cursor, c1);

    // 3. A shorter decision for a known target: the bouncer gets the longest again.
    let a3 = s.insert_decision(&ban(ip("192.0.2.1"), 50, Some(200))).unwrap();
    let c = s.insert_decision(&ban(ip("192.0.2.4"), 50, Some(200))).unwrap();
    let ch = s.changed_since(c1).unwrap();
    assert_eq!(ids(&ch.new), vec![a2.0, c.0]);
    assert!(ch.deleted.is_empty());
    let c2 = ch.cursor;
    assert!(c2 > c1);

    // 4. The shorter decisions of a target end: not reported deleted while a
    //    longer one still holds the address.
    assert_eq!(s.expire(t(300)).unwrap(), 4, "a1, a3, c and the simulated one");
    let ch = s.changed_since(c2).unwrap();
    assert!(ch.new.is_empty());
    assert_eq!(ids(&ch.deleted), vec![c.0]);
    let c3 = ch.cursor;
    assert!(c3 > c2);
    let _ = (a1, a3);

    // 5. The last decision of a target ends: deleted, once per target.
    assert_eq!(s.expire(t(500)).unwrap(), 1);
    let ch = s.changed_since(c3).unwrap();
    assert_eq!(ids(&ch.deleted), vec![a2.0]);
    let c4 = ch.cursor;

    // 6. Inserted and deleted between two pulls: only the deletion (harmless).
    let d = s.insert_decision(&ban(ip("192.0.2.5"), 600, None)).unwrap();
    s.delete_decisions(&DecisionRef::Id(d), t(601)).unwrap();
    let ch = s.changed_since(c4).unwrap();
    assert!(ch.new.is_empty());
    assert_eq!(ids(&ch.deleted), vec![d.0]);
    // A bouncer far behind sees the net effect.
    let ch = s.changed_since(c1).unwrap();
    assert!(ch.new.is_empty());
    assert_eq!(ids(&ch.deleted), vec![c.0, a2.0, d.0]);

    // 7. Purge: old cursors are told they have a gap; the cursor never moves back.
    let c5 = ch.cursor;
    let purged = s.purge(t(550)).unwrap();
    assert_eq!(purged.decisions, 5, "all but b and d");
    assert_eq!(s.changed_since(c5).unwrap().cursor, c5);
    let ch = s.changed_since(c1).unwrap();
    assert!(ch.gap);
    assert_eq!(ids(&ch.new), vec![b.0], "a gap answers like a start-up pull");
    assert!(!s.changed_since(c5).unwrap().gap);
    let ch = s.changed_since(ChangeCursor(c5.0 + 1000)).unwrap();
    assert!(ch.gap, "a cursor from the future (replaced database)");
    assert_eq!(ch.cursor, c5);
}

#[test]
fn alerts_filter_limit_and_order() {
    let mut s = mem();
    let alert = |rule: &str, key: Key, time: i64| NewAlert {
        rule: rule.into(),
        key,
        time: t(time),
        count: 5,
        window: serde_json::json!({"kind": "fail2ban", "threshold": 5}),
        evidence: vec![EvidenceLine::new("auth.log", 7, "Failed password")],
    };
    let a1 = s.insert_alert(&alert("sshd", ip("192.0.2.1"), 10)).unwrap();
    let a2 = s.insert_alert(&alert("sshd", ip("192.0.2.2"), 20)).unwrap();
    let a3 = s.insert_alert(&alert("nginx", ip("192.0.2.1"), 30)).unwrap();
    let a4 = s.insert_alert(&alert("sshd", text("root"), 40)).unwrap();
    let got = |f: AlertFilter, limit| s.alerts(&f, limit).unwrap().iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(got(AlertFilter::default(), 10), vec![a4, a3, a2, a1]);
    assert_eq!(got(AlertFilter::default(), 2), vec![a4, a3]);
    let sshd = AlertFilter { rule: Some("sshd".into()), ..AlertFilter::default() };
    assert_eq!(got(sshd.clone(), 10), vec![a4, a2, a1]);
    let one = AlertFilter { key: Some(ip("192.0.2.1")), ..AlertFilter::default() };
    assert_eq!(got(one, 10), vec![a3, a1]);
    let span = AlertFilter { since: Some(t(20)), before: Some(t(40)), ..sshd };
    assert_eq!(got(span, 10), vec![a2]);
    let all = s.alerts(&AlertFilter::default(), 1).unwrap();
    assert_eq!(all[0].alert.key, text("root"));
    assert_eq!(all[0].alert.count, 5);
    assert_eq!(all[0].alert.window["threshold"], 5);
    assert_eq!(all[0].alert.evidence[0].line, 7);

    assert_eq!(s.purge(t(25)).unwrap(), Purged { decisions: 0, alerts: 2 });
    let left: Vec<AlertId> = s.alerts(&AlertFilter::default(), 10).unwrap().iter().map(|a| a.id).collect();
    assert_eq!(left, vec![a4, a3]);
}

#[test]
fn checkpoints_round_trip() {
    let mut s = mem();
    assert!(s.get_checkpoint("auth").unwrap().is_none());
    let cp = Checkpoint {
        source: "sshd#64769:1234".into(),
        group: "sshd".into(),
        path: Some("/var/log/auth.log".into()),
        file: Some(FileIdentity { dev: u64::MAX, inode: 1 << 63, fingerprint: vec![0, 1, 2, 255] }),
        after: Some((u64::MAX - 1, 77)),
        modified_ns: Some(1_700_000_000_123_456_789),
        offset: 123_456,
        line: 789,
        journal_cursor: None,
        updated: t(5),
    };
    s.put_checkpoint(&cp).unwrap();
    assert_eq!(s.get_checkpoint(&cp.source).unwrap().unwrap(), cp);
    let moved = Checkpoint { offset: 200_000, line: 1000, updated: t(6), ..cp.clone() };
    s.put_checkpoint(&moved).unwrap();
    assert_eq!(s.get_checkpoint(&cp.source).unwrap().unwrap(), moved);
    let journal = Checkpoint {
        line: 42,
        journal_cursor: Some("s=abc;i=1f;b=def;m=12;t=34;x=56".into()),
        ..Checkpoint::new("journald:sshd.service", 0, t(7))
    };
    s.put_checkpoint(&journal).unwrap();
    assert_eq!(s.checkpoints().unwrap(), vec![journal.clone(), moved.clone()]);
    assert!(s.delete_checkpoint(&journal.source).unwrap());
    assert!(!s.delete_checkpoint(&journal.source).unwrap());
    assert_eq!(s.checkpoints().unwrap(), vec![moved.clone()]);
    let mut big = cp.clone();
    big.file.as_mut().unwrap().fingerprint = vec![7; MAX_FINGERPRINT + 1];
    assert!(s.put_checkpoint(&big).is_err());

    // A non-UTF-8 path survives.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let odd = Checkpoint {
            path: Some(std::ffi::OsStr::from_bytes(b"/var/log/\xff\xfe.log").into()),
            ..Checkpoint::new("odd", 1, t(1))
        };
        s.put_checkpoint(&odd).unwrap();
        assert_eq!(s.get_checkpoint("odd").unwrap().unwrap(), odd);
        s.delete_checkpoint("odd").unwrap();
    }

    // A group's set is replaced whole: the rotated generation was let go.
    let new_gen =
        Checkpoint { source: "sshd#64769:5678".into(), after: Some((64769, 1234)), offset: 10, ..moved.clone() };
    s.commit_batch(&Batch { checkpoints: vec![moved.clone(), new_gen.clone()], ..Batch::default() }).unwrap();
    s.put_checkpoint(&Checkpoint::new("nginx", 5, t(1))).unwrap();
    assert_eq!(s.checkpoints_in("sshd").unwrap(), vec![moved, new_gen.clone()]);
    let only = Checkpoint { after: None, offset: 20, ..new_gen };
    s.commit_batch(&Batch { checkpoints: vec![only.clone()], replace_groups: vec!["sshd".into()], ..Batch::default() })
        .unwrap();
    assert_eq!(s.checkpoints_in("sshd").unwrap(), vec![only]);
    assert_eq!(s.checkpoints_in("nginx").unwrap().len(), 1);
}

#[test]
fn bouncers_keys_hashes_and_pulls() {
    let (dir, mut s) = file_store();
    let key = s.add_bouncer("nftables", t(1)).unwrap();
    assert_eq!(key.len(), 2 * KEY_BYTES);
    let key2 = s.add_bouncer("nginx", t(2)).unwrap();
    assert_ne!(key, key2);
    s.add_bouncer_with_key("haproxy", "operator-chosen-key-0001", t(3)).unwrap();
    assert!(matches!(s.add_bouncer("nginx", t(4)), Err(StoreError::BouncerExists { .. })));
    assert!(s.add_bouncer_with_key("short", "too-short", t(4)).is_err());
    assert!(s.add_bouncer("", t(4)).is_err());
    assert!(s.add_bouncer("a\nb", t(4)).is_err());

    assert_eq!(s.authenticate(&key).unwrap().as_deref(), Some("nftables"));
    assert_eq!(s.authenticate(&key2).unwrap().as_deref(), Some("nginx"));
    assert_eq!(s.authenticate("operator-chosen-key-0001").unwrap().as_deref(), Some("haproxy"));
    let mut wrong = key.clone().into_bytes();
    wrong[63] = if wrong[63] == b'0' { b'1' } else { b'0' };
    assert_eq!(s.authenticate(std::str::from_utf8(&wrong).unwrap()).unwrap(), None);
    assert_eq!(s.authenticate("").unwrap(), None);
    assert_eq!(s.authenticate(&"k".repeat(MAX_KEY_LEN + 1)).unwrap(), None);

    let names: Vec<String> = s.list_bouncers().unwrap().into_iter().map(|b| b.name).collect();
    assert_eq!(names, vec!["haproxy", "nftables", "nginx"]);
    assert!(s.record_pull("nftables", t(10), ChangeCursor(7)).unwrap());
    assert!(!s.record_pull("nobody", t(10), ChangeCursor(7)).unwrap());
    let nft = s.list_bouncers().unwrap().into_iter().find(|b| b.name == "nftables").unwrap();
    assert_eq!(
        nft,
        BouncerInfo { name: "nftables".into(), created: t(1), last_pull: Some(t(10)), cursor: ChangeCursor(7) }
    );
    assert!(s.delete_bouncer("nginx").unwrap());
    assert!(!s.delete_bouncer("nginx").unwrap());
    assert_eq!(s.authenticate(&key2).unwrap(), None);

    // The key is nowhere in the files, neither as text nor as its bytes.
    let raw: Vec<u8> = (0..KEY_BYTES).map(|i| u8::from_str_radix(&key[2 * i..2 * i + 2], 16).unwrap()).collect();
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        files += 1;
        for needle in [key.as_bytes(), &raw[..], b"operator-chosen-key-0001"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
    }
    assert!(files >= 2, "database and WAL were checked");
    s.wal_checkpoint().unwrap();
    let bytes = std::fs::read(s.path()).unwrap();
    assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()));
    // …while the name is (so the search above would have found a plain key).
    assert!(bytes.windows(8).any(|w| w == b"nftables"));
}

#[test]
fn from_decision_takes_a_ban_of_the_decide_crate() {
    use stadtwache_core::{Duration, RuleId};
    use stadtwache_decide::{Decider, Policy};
    use stadtwache_detect::{Trigger, WindowKind, WindowSummary};

    let mut decider =
        Decider::new(Policy { bantime: Duration::from_secs(600), ipv6_prefix: Some(64), ..Policy::default() });
    let trigger = Trigger {
        rule: RuleId(0),
        key: ip("2001:db8::5"),
        time: t(1000),
        count: 3,
        first_seen: t(900),
        evidence: vec![1, 2, 3],
        window: WindowSummary {
            kind: WindowKind::Fail2ban,
            threshold: 3,
            window: Duration::from_secs(600),
            window_start: t(900),
            observations: 3,
            distinct_values: Vec::new(),
        },
    };
    let decision = decider.decide(&trigger, t(1001));
    let evidence = vec![EvidenceLine::new("auth.log", 3, "Failed password for root")];
    let nd = NewDecision::from_decision(&decision, Some("sshd"), evidence).unwrap().unwrap();
    assert_eq!(nd.target(), "2001:db8::/64");
    assert_eq!(nd.until, Some(t(1600)));
    assert_eq!(nd.created, t(1001));
    assert_eq!(nd.origin, Origin::Rule);
    assert_eq!(nd.reason["count"], 3);
    let mut s = mem();
    let id = s.insert_decision(&nd).unwrap();
    assert_eq!(s.decision(id).unwrap().unwrap().decision, nd);
    // Not a ban: nothing to store.
    let again = decider.decide(&trigger, t(1002));
    assert!(NewDecision::from_decision(&again, None, vec![]).unwrap().is_none());
}

#[test]
fn origins_round_trip() {
    for o in [Origin::Rule, Origin::Admin, Origin::Federation, Origin::Bouncer] {
        assert_eq!(Origin::parse(o.as_str()), o);
    }
    assert_eq!(Origin::parse("CSCLI"), Origin::Other("cscli".into()));
    assert_eq!(serde_json::to_string(&Origin::Admin).unwrap(), "\"admin\"");
}

#[test]
fn two_connections_see_each_others_commits() {
    let (dir, mut w) = file_store();
    let r = SqliteStore::open(&dir.path().join("data")).unwrap();
    let id = w.insert_decision(&ban(ip("192.0.2.1"), 1, None)).unwrap();
    assert_eq!(ids(&r.active_decisions(t(1)).unwrap()), vec![id.0]);
    let ch = r.changed_since(ChangeCursor::START).unwrap();
    assert_eq!(ids(&ch.new), vec![id.0]);
}

#[test]
fn query_plans_use_the_indexes() {
    let s = mem();
    // The statements the store issues (as in sqlite.rs): none may scan a whole table.
    let plan = |sql: &str| -> String {
        let mut st = s.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows: Vec<String> =
            st.query_map([], |r| r.get::<_, String>(3)).unwrap().collect::<rusqlite::Result<_>>().unwrap();
        rows.join(" | ")
    };
    for sql in [
        "SELECT id FROM decisions WHERE deleted_at IS NULL AND until IS NOT NULL AND until < 5",
        "SELECT id FROM decisions d INDEXED BY decisions_live_until WHERE d.deleted_at IS NULL AND (d.until IS NULL OR d.until >= 5) ORDER BY d.id",
        "SELECT id FROM decisions d INDEXED BY decisions_live_until WHERE d.deleted_at IS NULL AND d.simulated = 0",
        "SELECT id FROM decisions WHERE deleted_at IS NULL AND value = 'x' AND scope = 'ip'",
        "SELECT id FROM decisions d WHERE (d.value = 'x' AND d.scope = 'ip') OR (d.scope = 'range' AND d.value IN (SELECT value FROM json_each('[\"a\"]'))) ORDER BY d.id DESC",
        "SELECT d.id FROM decisions d WHERE d.deleted_at IS NULL AND d.simulated = 0 AND (d.value, d.scope) IN (SELECT d2.value, d2.scope FROM changes c JOIN decisions d2 ON d2.id = c.decision_id WHERE c.seq > 5 AND c.kind = 0)",
        "SELECT d.id FROM changes c JOIN decisions d ON d.id = c.decision_id WHERE c.seq > 5 AND c.kind = 1 AND d.simulated = 0 AND NOT EXISTS (SELECT 1 FROM decisions l WHERE l.value = d.value AND l.scope = d.scope AND l.deleted_at IS NULL AND l.simulated = 0) ORDER BY c.seq",
        "SELECT id FROM alerts WHERE rule = 'x' AND time >= 5 ORDER BY time DESC, id DESC LIMIT 10",
        "SELECT id FROM alerts WHERE value = 'x' AND scope = 'ip' ORDER BY time DESC, id DESC LIMIT 10",
        "SELECT id FROM alerts ORDER BY time DESC, id DESC LIMIT 10",
        "SELECT source FROM checkpoints WHERE grp = 'x'",
    ] {
        let p = plan(sql);
        println!("{sql}\n    {p}");
        for step in p.split(" | ") {
            let full_scan = step.starts_with("SCAN ") && !step.contains("INDEX") && !step.contains("VIRTUAL TABLE");
            assert!(!full_scan, "{sql}: {p}");
        }
    }
}

#[test]
fn a_damaged_row_is_a_corrupt_error() {
    let mut s = mem();
    let id = s.insert_decision(&ban(ip("192.0.2.1"), 1, None)).unwrap();
    s.conn.execute("UPDATE decisions SET reason = 'not json' WHERE id = ?1", [id.0]).unwrap();
    let err = s.decision(id).unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
    assert!(err.to_string().contains("reason JSON"), "{err}");
    s.conn.execute("UPDATE decisions SET reason = 'null', value = '999.1.2.3' WHERE id = ?1", [id.0]).unwrap();
    assert!(s.active_decisions(t(1)).unwrap_err().is_corrupt());
    assert!(s.changed_since(ChangeCursor::START).unwrap_err().is_corrupt());
    s.put_checkpoint(&Checkpoint::new("x", 1, t(1))).unwrap();
    s.conn.execute("UPDATE checkpoints SET byte_offset = -1", []).unwrap();
    assert!(s.get_checkpoint("x").unwrap_err().is_corrupt());
}

#[test]
fn the_stream_leaves_out_reason_and_evidence() {
    let mut s = mem();
    let d = NewDecision {
        reason: serde_json::json!({"count": 5}),
        evidence: vec![EvidenceLine::new("auth.log", 1, "Failed password")],
        rule: Some("sshd".into()),
        ..ban(ip("192.0.2.1"), 1, Some(100))
    };
    let id = s.insert_decision(&d).unwrap();
    let ch = s.changed_since(ChangeCursor::START).unwrap();
    let got = &ch.new[0].decision;
    assert_eq!(got.reason, serde_json::Value::Null);
    assert!(got.evidence.is_empty());
    assert_eq!((got.rule.as_deref(), got.until, &got.key), (Some("sshd"), Some(t(100)), &ip("192.0.2.1")));
    assert_eq!(s.decision(id).unwrap().unwrap().decision, d);
}

#[test]
fn the_trait_is_object_safe_and_send() {
    let mut s: Box<dyn Store> = Box::new(mem());
    let id = s.insert_decision(&ban(ip("192.0.2.1"), 1, None)).unwrap();
    let handle = std::thread::spawn(move || s.decision(id).unwrap().is_some());
    assert!(handle.join().unwrap());
}
