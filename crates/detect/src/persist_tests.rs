use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::tests::check_time_index;

fn ip(s: &str) -> Key {
    Key::Ip(s.parse::<IpAddr>().unwrap())
}

fn text(s: &str) -> Key {
    Key::Text(Arc::from(s))
}

fn specs() -> Vec<WindowSpec> {
    vec![
        WindowSpec::Fail2ban { maxretry: 3, findtime: Duration::from_secs(30) },
        WindowSpec::Fail2ban { maxretry: 5, findtime: Duration::from_secs(100) },
        WindowSpec::Count { threshold: 4, window: Duration::from_secs(40) },
        WindowSpec::Distinct { threshold: 3, window: Duration::from_secs(50) },
        WindowSpec::Once,
        WindowSpec::Count { threshold: 2, window: Duration::from_secs(10) },
    ]
}

fn keys() -> Vec<Key> {
    vec![
        ip("10.0.0.1"),
        ip("::ffff:10.0.0.1"),
        ip("10.0.0.2"),
        ip("2001:db8::1"),
        ip("0.0.0.0"),
        text("alice"),
        text("bob"),
        text(""),
    ]
}

/// One step of a scenario.
#[derive(Clone, Debug)]
enum Op {
    Observe {
        rule: u32,
        key: usize,
        t: i64,
        weight: u32,
        distinct: Option<u8>,
    },
    AddObserved {
        rule: u32,
        key: usize,
        t: i64,
        extra: u32,
    },
    Service(i64),
    Cleanup(i64),
    Purge(i64),
    Forget {
        rule: u32,
        key: usize,
    },
    /// Export the changes to the "database" (no effect on the detector's windows).
    Take,
}

/// What an op returned, for comparing runs.
#[derive(Clone, Debug, PartialEq)]
enum Out {
    Trigger(Option<Trigger>),
    Count(usize),
    Flag(bool),
    None,
}

fn op_strategy() -> impl Strategy<Value = (u8, u8, u8, i64, u8)> {
    (0u8..16, 0u8..6, 0u8..8, -20i64..20, 0u8..8)
}

/// Turns raw tuples into ops; times drift forward with the op index and
/// jitter backwards and forwards (quarter seconds included).
fn ops_of(raw: &[(u8, u8, u8, i64, u8)]) -> Vec<Op> {
    raw.iter()
        .enumerate()
        .map(|(n, &(op, rule, key, jitter, x))| {
            let t = (n as i64 * 2 + jitter).max(0) * 1_000_000 + i64::from(x % 4) * 250_000;
            let (rule, key) = (u32::from(rule), usize::from(key));
            match op {
                0..=6 => Op::Observe {
                    rule,
                    key,
                    t,
                    weight: if x == 7 { 2 } else { 1 },
                    distinct: (x != 6).then_some(x % 5),
                },
                7 => Op::AddObserved { rule, key, t, extra: u32::from(x % 3) },
                8 | 9 => Op::Service(t + 3_000_000),
                10 => Op::Cleanup(t),
                11 => Op::Purge(t + 20_000_000),
                12 => Op::Forget { rule, key },
                _ => Op::Take,
            }
        })
        .collect()
}

type Db = BTreeMap<(u32, Key), SavedWindow>;
type RuleDb = BTreeMap<u32, SavedRule>;

fn take(d: &mut Detector, db: &mut Db, rdb: &mut RuleDb) {
    let recs = d.take_dirty();
    let mut seen = std::collections::HashSet::new();
    for r in recs {
        assert!(seen.insert((r.rule, r.key.clone())), "a pair twice in one take");
        match r.state {
            Some(w) => {
                db.insert((r.rule.0, r.key), w);
            }
            None => {
                db.remove(&(r.rule.0, r.key));
            }
        }
    }
    for (r, s) in d.take_dirty_rules() {
        rdb.insert(r.0, s);
    }
}

/// Runs `ops`, the first being op number `first` of the scenario (line numbers).
fn run(d: &mut Detector, ops: &[Op], first: usize, db: &mut Db, rdb: &mut RuleDb) -> Vec<Out> {
    let keys = keys();
    let mut out = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        let o = match *op {
            Op::Observe { rule, key, t, weight, distinct } => Out::Trigger(d.observe(&Event {
                rule: RuleId(rule),
                key: keys[key].clone(),
                time: Timestamp(t),
                weight,
                distinct: distinct.map(|v| Arc::from(format!("u{v}"))),
                line_no: (first + n) as u64,
            })),
            Op::AddObserved { rule, key, t, extra } => {
                Out::Trigger(d.add_observed(RuleId(rule), &keys[key], Timestamp(t), extra))
            }
            Op::Service(now) => Out::Count(d.service(Timestamp(now))),
            Op::Cleanup(now) => Out::Count(d.cleanup(Timestamp(now))),
            Op::Purge(now) => Out::Count(d.purge(Timestamp(now))),
            Op::Forget { rule, key } => Out::Flag(d.forget(RuleId(rule), &keys[key])),
            Op::Take => {
                take(d, db, rdb);
                Out::None
            }
        };
        out.push(o);
        check_time_index(d);
    }
    out
}

/// The windows with `lru` replaced by its rank (only the order is meaningful).
fn normalised(mut all: Vec<(RuleId, Key, SavedWindow)>) -> Vec<(RuleId, Key, SavedWindow)> {
    all.sort_by_key(|(_, _, w)| w.lru);
    for (rank, (_, _, w)) in all.iter_mut().enumerate() {
        w.lru = rank as u64;
    }
    all.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    all
}

fn db_rows(db: &Db) -> Vec<(RuleId, Key, SavedWindow)> {
    db.iter().map(|((r, k), w)| (RuleId(*r), k.clone(), w.clone())).collect()
}

fn sorted(mut all: Vec<(RuleId, Key, SavedWindow)>) -> Vec<(RuleId, Key, SavedWindow)> {
    all.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    all
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A runs uninterrupted; B runs up to `split` (exporting its changes to a
    /// simulated database now and then), C is restored from that database
    /// and runs the rest. Every output of B + C equals A's, and the database
    /// kept up to date by the takes always equals the detector's full state.
    #[test]
    fn restore_continues_exactly_like_an_uninterrupted_run(
        max_keys in 2usize..24,
        evidence_cap in 0usize..4,
        raw in proptest::collection::vec(op_strategy(), 1..250),
        split_at in 0.0f64..1.0,
    ) {
        let ops = ops_of(&raw);
        let split = ((ops.len() as f64) * split_at) as usize;
        let opts = DetectorOptions { max_keys, evidence_cap, ..DetectorOptions::default() };
        let new = || Detector::new(specs(), opts).with_change_tracking();

        let mut a = new();
        let (mut adb, mut ardb) = (Db::new(), RuleDb::new());
        let want = run(&mut a, &ops, 0, &mut adb, &mut ardb);
        // Tracking changes nothing about the windows.
        let mut plain = Detector::new(specs(), opts);
        prop_assert_eq!(&run(&mut plain, &ops, 0, &mut Db::new(), &mut RuleDb::new()), &want);
        prop_assert!(plain.take_dirty().is_empty() && plain.take_dirty_rules().is_empty());
        take(&mut a, &mut adb, &mut ardb);
        prop_assert_eq!(db_rows(&adb), sorted(a.export_all()), "A's takes mirror A");

        let mut b = new();
        let (mut db, mut rdb) = (Db::new(), RuleDb::new());
        let mut got = run(&mut b, &ops[..split], 0, &mut db, &mut rdb);
        take(&mut b, &mut db, &mut rdb);
        prop_assert_eq!(db_rows(&db), sorted(b.export_all()), "B's takes mirror B");
        let b_rules: RuleDb = b.export_rules().into_iter().map(|(r, s)| (r.0, s)).collect();
        let rdb_live: RuleDb = rdb.iter().filter(|(_, s)| s.last_service.is_some()).map(|(r, s)| (*r, *s)).collect();
        let b_live: RuleDb = b_rules.iter().filter(|(_, s)| s.last_service.is_some()).map(|(r, s)| (*r, *s)).collect();
        prop_assert_eq!(&rdb_live, &b_live);
        drop(b);

        let mut c = new();
        let st = c.restore(db.iter().map(|((r, k), w)| (RuleId(*r), k.clone(), w.clone())));
        prop_assert_eq!(st, RestoreStats { restored: db.len(), ..RestoreStats::default() });
        let st = c.restore_rules(rdb.iter().map(|(r, s)| (RuleId(*r), *s)));
        prop_assert_eq!(st.restored, rdb.len());
        check_time_index(&c);
        prop_assert!(c.take_dirty().is_empty(), "a restore reports nothing");
        prop_assert_eq!(c.stats().tracked_keys, db.len());
        got.extend(run(&mut c, &ops[split..], split, &mut db, &mut rdb));
        take(&mut c, &mut db, &mut rdb);

        prop_assert_eq!(got, want);
        prop_assert_eq!(normalised(c.export_all()), normalised(a.export_all()));
        prop_assert_eq!(c.export_rules(), a.export_rules());
        prop_assert_eq!(c.stats().tracked_keys, a.stats().tracked_keys);
        prop_assert_eq!(db_rows(&db), sorted(c.export_all()), "C's takes mirror C");
    }
}

#[test]
fn restore_into_a_smaller_cap_keeps_the_most_recent_and_reports_the_evicted() {
    let spec = vec![WindowSpec::Fail2ban { maxretry: 10, findtime: Duration::from_secs(600) }];
    let mut a = Detector::new(spec.clone(), DetectorOptions::default());
    let ks: Vec<Key> = (0..10).map(|i| text(&format!("k{i}"))).collect();
    // k0..k9 observed in that order, then k3 again: k3 is the most recent.
    for (n, k) in ks.iter().enumerate() {
        a.observe(&Event {
            rule: RuleId(0),
            key: k.clone(),
            time: Timestamp::from_secs(n as i64),
            weight: 1,
            distinct: None,
            line_no: n as u64,
        });
    }
    a.observe(&Event {
        rule: RuleId(0),
        key: ks[3].clone(),
        time: Timestamp::from_secs(20),
        weight: 1,
        distinct: None,
        line_no: 99,
    });
    let saved = a.export_all();
    assert_eq!(saved.len(), 10);
    let mut c =
        Detector::new(spec, DetectorOptions { max_keys: 4, ..DetectorOptions::default() }).with_change_tracking();
    let st = c.restore(saved);
    assert_eq!((st.restored, st.evicted), (10, 6));
    let mut kept: Vec<String> =
        ks.iter().filter(|k| c.snapshot(RuleId(0), k).is_some()).map(|k| k.to_string()).collect();
    kept.sort();
    assert_eq!(kept, ["k3", "k7", "k8", "k9"]);
    assert_eq!(c.snapshot(RuleId(0), &ks[3]).unwrap().count, 2);
    check_time_index(&c);
    // The evicted pairs are deleted from the store by the next take.
    let mut deleted: Vec<String> =
        c.take_dirty().into_iter().filter(|r| r.state.is_none()).map(|r| r.key.to_string()).collect();
    deleted.sort();
    assert_eq!(deleted, ["k0", "k1", "k2", "k4", "k5", "k6"]);
    // The next new key evicts the least recent survivor (k7), as in `a` with the same cap.
    c.observe(&Event {
        rule: RuleId(0),
        key: text("new"),
        time: Timestamp::from_secs(30),
        weight: 1,
        distinct: None,
        line_no: 100,
    });
    assert!(c.snapshot(RuleId(0), &ks[7]).is_none());
    assert!(c.snapshot(RuleId(0), &ks[3]).is_some());
}

#[test]
fn restore_skips_and_counts_unusable_records() {
    let mut c = Detector::new(specs(), DetectorOptions::default());
    let f2b = SavedWindow {
        v: SAVED_VERSION,
        lru: 1,
        now: Timestamp::from_secs(5),
        state: SavedState::Fail2ban {
            first: Timestamp::from_secs(1),
            last: Timestamp::from_secs(5),
            first_seen: Timestamp::from_secs(1),
            retry: 2,
            failures: 2,
            lines: vec![1, 2],
        },
    };
    let st = c.restore([
        (RuleId(99), text("a"), f2b.clone()),                        // unknown rule
        (RuleId(2), text("a"), f2b.clone()),                         // Count rule, fail2ban state
        (RuleId(4), text("a"), f2b.clone()),                         // Once keeps no state
        (RuleId(0), text("a"), SavedWindow { v: 2, ..f2b.clone() }), // future format
        (RuleId(0), ip("::ffff:10.0.0.1"), SavedWindow { lru: 7, ..f2b.clone() }),
        (RuleId(0), ip("10.0.0.1"), f2b.clone()), // same pair (mapped)
    ]);
    assert_eq!(
        st,
        RestoreStats { restored: 1, unknown_rule: 1, wrong_kind: 2, bad_version: 1, duplicate: 1, evicted: 0 }
    );
    assert_eq!(c.snapshot(RuleId(0), &ip("10.0.0.1")).unwrap().count, 2);
    // The third failure bans, from the restored ticket.
    let t = c
        .observe(&Event {
            rule: RuleId(0),
            key: ip("10.0.0.1"),
            time: Timestamp::from_secs(6),
            weight: 1,
            distinct: None,
            line_no: 3,
        })
        .unwrap();
    assert_eq!((t.count, t.first_seen, t.evidence), (3, Timestamp::from_secs(1), vec![1, 2, 3]));
    let st = c.restore_rules([
        (RuleId(0), SavedRule { v: SAVED_VERSION, last_service: Some(Timestamp::from_secs(4)) }),
        (RuleId(2), SavedRule { v: SAVED_VERSION, last_service: None }),
        (RuleId(1), SavedRule { v: 9, last_service: None }),
        (RuleId(42), SavedRule { v: SAVED_VERSION, last_service: None }),
    ]);
    assert_eq!(st, RestoreStats { restored: 1, unknown_rule: 1, wrong_kind: 1, bad_version: 1, ..Default::default() });
    assert_eq!(c.export_rules()[0].1.last_service, Some(Timestamp::from_secs(4)));
}

#[test]
fn tracking_is_off_by_default_and_takes_report_each_change_once() {
    let mut d = Detector::new(specs(), DetectorOptions::default());
    let e = |rule: u32, k: &str, s: i64| Event {
        rule: RuleId(rule),
        key: text(k),
        time: Timestamp::from_secs(s),
        weight: 1,
        distinct: None,
        line_no: s as u64,
    };
    d.observe(&e(0, "a", 1));
    assert!(d.take_dirty().is_empty());
    d.track_changes();
    d.observe(&e(0, "a", 2));
    d.observe(&e(0, "b", 2));
    d.observe(&e(4, "c", 2)); // Once: no state
    let mut r = d.take_dirty();
    r.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|r| r.state.is_some()));
    assert!(d.take_dirty().is_empty(), "nothing changed since");
    assert!(d.observe(&e(0, "a", 3)).is_some(), "3rd failure of a");
    d.service(Timestamp::from_secs(100)); // cleans b up
    let r = d.take_dirty();
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|r| r.state.is_none()), "{r:?}");
    assert_eq!(
        d.take_dirty_rules(),
        vec![
            (RuleId(0), SavedRule { v: 1, last_service: Some(Timestamp::from_secs(100)) }),
            (RuleId(1), SavedRule { v: 1, last_service: Some(Timestamp::from_secs(100)) })
        ]
    );
    assert!(d.take_dirty_rules().is_empty());
}

/// Typical JSON sizes of saved records (quoted in the module docs).
#[test]
fn json_sizes_are_small() {
    let t0 = 1_772_409_600_000_000i64; // 2026-03-02, µs
    let mut d = Detector::new(specs(), DetectorOptions::default()).with_change_tracking();
    let key = ip("203.0.113.77");
    for (i, rule) in [(0u64, 0u32), (1, 0), (0, 2), (1, 2), (2, 2)] {
        d.observe(&Event {
            rule: RuleId(rule),
            key: key.clone(),
            time: Timestamp(t0 + i as i64 * 1_234_567),
            weight: 1,
            distinct: None,
            line_no: 1_000_000 + i,
        });
    }
    d.service(Timestamp(t0));
    let all = d.export_all();
    let json = |r: u32| serde_json::to_string(&all.iter().find(|x| x.0 == RuleId(r)).unwrap().2).unwrap();
    let f2b = json(0);
    let count = json(2);
    let rule = serde_json::to_string(&d.export_rules()[0].1).unwrap();
    eprintln!("fail2ban ticket (2 failures): {} bytes: {f2b}", f2b.len());
    eprintln!("count window (3 events): {} bytes: {count}", count.len());
    eprintln!("rule state: {} bytes: {rule}", rule.len());
    assert!(f2b.len() < 200, "{f2b}");
    assert!(count.len() < 200, "{count}");
    assert!(rule.len() < 40, "{rule}");
    // And they read back.
    let back: SavedWindow = serde_json::from_str(&f2b).unwrap();
    assert_eq!(back, all.iter().find(|x| x.0 == RuleId(0)).unwrap().2);
    assert!(serde_json::from_str::<SavedWindow>("{\"v\":1,\"lru\":1}").is_err());
}
