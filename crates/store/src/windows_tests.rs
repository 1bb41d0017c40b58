//! Saved detector windows and ban history.

use std::net::IpAddr;
use std::sync::Arc;

use stadtwache_core::{Duration, Event, Key, RuleId, Timestamp};
use stadtwache_decide::{BanIncrement, Decider, Decision, Policy, RestoredBan};
use stadtwache_detect::{Detector, DetectorOptions, SavedRule, SavedWindow, WindowSpec};

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

fn row(scope: &str, rule: &str, key: Key, state: Option<&str>) -> WindowRow {
    WindowRow { scope: scope.into(), rule: rule.into(), key, state: state.map(str::to_string) }
}

fn rule_row(scope: &str, rule: &str, state: Option<&str>) -> RuleStateRow {
    RuleStateRow { scope: scope.into(), rule: rule.into(), state: state.map(str::to_string) }
}

#[test]
fn windows_are_upserted_deleted_and_read_per_scope() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let batch = Batch {
        windows: vec![
            row("sshd", "sshd", ip("192.0.2.1"), Some("a")),
            row("sshd", "sshd", ip("::ffff:192.0.2.2"), Some("b")),
            row("sshd", "sshd", text("192.0.2.1"), Some("c")), // a text key that looks like an address
            row("sshd", "probe", ip("192.0.2.1"), Some("d")),
            row("nginx", "sshd", ip("192.0.2.1"), Some("e")),
        ],
        rule_states: vec![rule_row("sshd", "sshd", Some("r1")), rule_row("nginx", "x", Some("r2"))],
        ..Batch::default()
    };
    assert!(!batch.is_empty());
    assert!(!Batch { rule_states: vec![rule_row("a", "b", None)], ..Batch::default() }.is_empty());
    s.commit_batch(&batch).unwrap();
    let w = s.windows("sshd").unwrap();
    assert_eq!(w.skipped, 0);
    let got: Vec<(String, Key, String)> =
        w.windows.iter().map(|r| (r.rule.clone(), r.key.clone(), r.state.clone().unwrap())).collect();
    assert_eq!(
        got,
        vec![
            ("probe".into(), ip("192.0.2.1"), "d".into()),
            ("sshd".into(), ip("192.0.2.1"), "a".into()),
            ("sshd".into(), ip("192.0.2.2"), "b".into()), // mapped address stored as IPv4
            ("sshd".into(), text("192.0.2.1"), "c".into()),
        ]
    );
    assert_eq!(w.rules, vec![rule_row("sshd", "sshd", Some("r1"))]);

    // Replace one, delete two (one of them missing: no error), drop a rule state.
    s.commit_batch(&Batch {
        windows: vec![
            row("sshd", "sshd", ip("192.0.2.1"), Some("a2")),
            row("sshd", "sshd", ip("192.0.2.2"), None),
            row("sshd", "sshd", ip("192.0.2.99"), None),
            row("sshd", "probe", ip("::ffff:192.0.2.1"), None),
        ],
        rule_states: vec![rule_row("sshd", "sshd", None)],
        ..Batch::default()
    })
    .unwrap();
    let w = s.windows("sshd").unwrap();
    let got: Vec<(Key, String)> = w.windows.iter().map(|r| (r.key.clone(), r.state.clone().unwrap())).collect();
    assert_eq!(got, vec![(ip("192.0.2.1"), "a2".into()), (text("192.0.2.1"), "c".into())]);
    assert!(w.rules.is_empty());

    // Another scope is untouched; delete_windows empties one scope.
    assert_eq!(s.windows("nginx").unwrap().windows.len(), 1);
    assert_eq!(s.delete_windows("sshd").unwrap(), 2);
    assert_eq!(s.windows("sshd").unwrap(), StoredWindows::default());
    assert_eq!(s.windows("nginx").unwrap().rules.len(), 1);
    assert_eq!(s.delete_windows("nginx").unwrap(), 2);
    assert_eq!(s.delete_windows("nginx").unwrap(), 0);
}

#[test]
fn a_bad_window_row_fails_the_whole_batch() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let cp = Checkpoint::new("/var/log/auth.log", 10, t(1));
    let bad = Batch {
        checkpoints: vec![cp],
        windows: vec![row("sshd", "sshd", ip("192.0.2.1"), Some("a")), row("", "sshd", ip("192.0.2.1"), Some("a"))],
        ..Batch::default()
    };
    assert!(matches!(s.commit_batch(&bad), Err(StoreError::Invalid { .. })));
    assert!(s.get_checkpoint("/var/log/auth.log").unwrap().is_none());
    assert!(s.windows("sshd").unwrap().windows.is_empty());
}

#[test]
fn unreadable_window_rows_are_skipped_and_counted() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.commit_batch(&Batch { windows: vec![row("sshd", "r", ip("192.0.2.1"), Some("ok"))], ..Batch::default() })
        .unwrap();
    s.conn
        .execute_batch(
            "INSERT INTO windows VALUES ('sshd', 'r', 'ip', 'not an address', '{}');
             INSERT INTO windows VALUES ('sshd', 'r', 'text', 'k', x'00ff');
             INSERT INTO windows VALUES ('sshd', 'r', 'text', CAST(x'ff' AS TEXT), '{}');
             INSERT INTO rule_states VALUES ('sshd', 'r', x'7b7d');",
        )
        .unwrap();
    let w = s.windows("sshd").unwrap();
    assert_eq!(w.windows.len(), 1);
    assert_eq!(w.rules.len(), 0);
    assert_eq!(w.skipped, 4);
}

#[test]
fn the_windows_tables_are_added_to_a_version_1_database() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    s.conn
        .execute_batch("DROP TABLE windows; DROP TABLE rule_states; DELETE FROM schema_version WHERE version = 2;")
        .unwrap();
    assert_eq!(s.schema_version().unwrap(), 1);
    drop(s);
    let mut s = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), 2);
    s.commit_batch(&Batch { windows: vec![row("a", "r", ip("192.0.2.1"), Some("x"))], ..Batch::default() }).unwrap();
    assert_eq!(s.windows("a").unwrap().windows.len(), 1);
}

/// The daemon's loop in small: per line `service(now)` + `observe`, and every
/// few lines a commit of the windows (as JSON rows). A restart from the store
/// continues exactly like the uninterrupted detector.
#[test]
fn detector_windows_survive_a_restart_through_the_store() {
    const SCOPE: &str = "/var/log/auth.log";
    let specs = vec![
        WindowSpec::Fail2ban { maxretry: 3, findtime: Duration::from_secs(150) },
        WindowSpec::Count { threshold: 3, window: Duration::from_secs(150) },
        WindowSpec::Distinct { threshold: 3, window: Duration::from_secs(150) },
    ];
    let names = ["sshd", "burst", "users"];
    let keys: Vec<Key> = vec![ip("192.0.2.1"), ip("2001:db8::7"), text("10.0.0.1"), text("bob")];
    let events: Vec<Event> = (0..400u64)
        .map(|n| Event {
            rule: RuleId((n % 3) as u32),
            key: keys[((n * 7) % 4) as usize].clone(),
            time: Timestamp::from_secs((n * 5 + (n * 13) % 9) as i64),
            weight: 1,
            distinct: Some(Arc::from(format!("u{}", n % 5))),
            line_no: n,
        })
        .collect();
    let new = || Detector::new(specs.clone(), DetectorOptions::default()).with_change_tracking();
    let step = |d: &mut Detector, e: &Event| {
        d.service(e.time);
        d.observe(e)
    };
    let want: Vec<_> = {
        let mut a = new();
        events.iter().map(|e| step(&mut a, e)).collect()
    };
    let rule_of = |name: &str| names.iter().position(|n| *n == name).map(|i| RuleId(i as u32));
    for split in [0, 1, 37, 200, 399, 400] {
        let mut s = SqliteStore::open_in_memory().unwrap();
        let mut b = new();
        let mut got = Vec::new();
        for (n, e) in events[..split].iter().enumerate() {
            got.push(step(&mut b, e));
            if n % 7 == 6 || n + 1 == split {
                let windows = b
                    .take_dirty()
                    .into_iter()
                    .map(|r| WindowRow {
                        scope: SCOPE.into(),
                        rule: names[r.rule.0 as usize].into(),
                        key: r.key,
                        state: r.state.map(|w| serde_json::to_string(&w).unwrap()),
                    })
                    .collect();
                let rule_states = b
                    .take_dirty_rules()
                    .into_iter()
                    .map(|(r, st)| RuleStateRow {
                        scope: SCOPE.into(),
                        rule: names[r.0 as usize].into(),
                        state: Some(serde_json::to_string(&st).unwrap()),
                    })
                    .collect();
                let cp = Checkpoint { line: n as u64 + 1, ..Checkpoint::new(SCOPE, n as u64 + 1, e.time) };
                s.commit_batch(&Batch { checkpoints: vec![cp], windows, rule_states, ..Batch::default() }).unwrap();
            }
        }
        drop(b);
        // Restart: read, map names, parse, restore; a row of an unknown rule is skipped.
        s.commit_batch(&Batch { windows: vec![row(SCOPE, "gone", ip("192.0.2.1"), Some("{}"))], ..Batch::default() })
            .unwrap();
        let stored = s.windows(SCOPE).unwrap();
        let mut unknown = 0;
        let records: Vec<(RuleId, Key, SavedWindow)> = stored
            .windows
            .into_iter()
            .filter_map(|r| {
                let Some(rule) = rule_of(&r.rule) else {
                    unknown += 1;
                    return None;
                };
                Some((rule, r.key, serde_json::from_str(r.state.as_deref()?).ok()?))
            })
            .collect();
        assert_eq!(unknown, 1);
        let rules: Vec<(RuleId, SavedRule)> = stored
            .rules
            .iter()
            .filter_map(|r| Some((rule_of(&r.rule)?, serde_json::from_str(r.state.as_deref()?).ok()?)))
            .collect();
        let mut c = new();
        let n = records.len();
        assert_eq!(c.restore(records).restored, n);
        assert_eq!(c.restore_rules(rules).unknown_rule, 0);
        let done = s.get_checkpoint(SCOPE).unwrap().map_or(0, |cp| cp.line as usize);
        assert_eq!(done, split);
        got.extend(events[done..].iter().map(|e| step(&mut c, e)));
        assert_eq!(got, want, "split at {split}");
        assert!(want.iter().flatten().count() > 50, "the scenario triggers");
    }
}

#[test]
fn ban_history_counts_bans_not_prolongations_and_restores_the_decider() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let p = Policy { increment: Some(BanIncrement::default()), ..Policy::default() };
    let mut d = Decider::new(p.clone());
    let a = ip("192.0.2.1");
    let trig = |key: &Key, time: i64| stadtwache_detect::Trigger {
        rule: RuleId(0),
        key: key.clone(),
        time: t(time),
        count: 3,
        first_seen: t(time),
        evidence: vec![],
        window: stadtwache_detect::WindowSummary {
            kind: stadtwache_detect::WindowKind::Fail2ban,
            threshold: 3,
            window: Duration::from_secs(600),
            window_start: t(time),
            observations: 3,
            distinct_values: vec![],
        },
    };
    // The daemon's storing of decisions: bans, and prolongations as new
    // decisions carrying their AlreadyBanned explanation.
    let store_decision = |s: &mut SqliteStore, dec: &Decision, rule: &str| match dec {
        Decision::Ban { .. } => {
            let nd = NewDecision::from_decision(dec, Some(rule), vec![]).unwrap().unwrap();
            s.insert_decision(&nd).unwrap();
        }
        Decision::AlreadyBanned { key, prefix, until, prolonged: true, reason } => {
            let nd = NewDecision {
                rule: Some(rule.into()),
                reason: serde_json::to_value(reason).unwrap(),
                ..NewDecision::new(key.clone(), *prefix, Origin::Rule, reason.decided_at, *until)
            };
            s.insert_decision(&nd).unwrap();
        }
        _ => {}
    };
    let mut now = 0;
    for (key, time) in [
        (a.clone(), 10),
        (a.clone(), 300),
        (ip("2001:db8::1"), 400),
        (a.clone(), 2000),
        (a.clone(), 2100),
        (a.clone(), 2700),
    ] {
        now = time;
        for _ in d.expire(t(now)) {}
        let dec = d.decide(&trig(&key, time), t(now));
        store_decision(&mut s, &dec, "sshd");
    }
    // Something the history must not count: an admin ban, another rule.
    s.insert_decision(&NewDecision::new(a.clone(), None, Origin::Admin, t(5), None)).unwrap();
    let other = d.decide(&trig(&ip("198.51.100.1"), now), t(now));
    store_decision(&mut s, &other, "nginx");
    assert_eq!(s.decisions_for(&a).unwrap().len(), 5, "2 bans, 2 prolongations, 1 admin ban");

    let hist = s.ban_history(&["sshd"]).unwrap();
    let mut want: Vec<_> = d.history().into_iter().filter(|(k, _, _)| *k != ip("198.51.100.1")).collect::<Vec<_>>();
    let mut got: Vec<_> = hist.iter().map(|h| (h.key.clone(), h.prefix, h.history)).collect();
    want.sort_by(|x, y| x.0.cmp(&y.0));
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(got, want);
    assert_eq!(got[0].2.ban_count, 2);
    assert_eq!(s.ban_history(&[]).unwrap().len(), 3, "all rules");

    // Restart: history + active rule bans → the same decisions as `d`.
    let mut c = Decider::new(p);
    c.restore_history(hist.into_iter().map(|h| (h.key, h.prefix, h.history)));
    let bans: Vec<RestoredBan> = s
        .active_decisions(t(now))
        .unwrap()
        .into_iter()
        .filter(|sd| sd.decision.origin == Origin::Rule && sd.decision.rule.as_deref() == Some("sshd"))
        .map(|sd| RestoredBan {
            since: sd.decision.trigger_time(),
            key: sd.decision.key,
            prefix: sd.decision.prefix,
            rule: RuleId(0),
            until: sd.decision.until,
            ban_count: 0,
            simulated: sd.decision.simulated,
        })
        .collect();
    let st = c.restore_bans(bans, t(now));
    assert_eq!((st.active, st.merged), (1, 1), "the second ban of a and its prolongation");
    for time in [now + 10, now + 5000] {
        for k in [a.clone(), ip("2001:db8::1")] {
            let (x, y) = (d.decide(&trig(&k, time), t(time)), c.decide(&trig(&k, time), t(time)));
            assert_eq!(x, y);
        }
    }
}
