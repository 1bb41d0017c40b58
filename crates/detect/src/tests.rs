use super::*;
use std::hash::BuildHasher;
use std::net::IpAddr;

fn ip(s: &str) -> Key {
    Key::Ip(s.parse::<IpAddr>().unwrap())
}

fn ev(rule: u32, key: &Key, secs: f64, weight: u32, line: u64) -> Event {
    Event {
        rule: RuleId(rule),
        key: key.clone(),
        time: Timestamp::from_secs_f64(secs),
        weight,
        distinct: None,
        line_no: line,
    }
}

fn f2b(maxretry: u32, findtime: i64) -> Detector {
    Detector::new(
        vec![WindowSpec::Fail2ban { maxretry, findtime: Duration::from_secs(findtime) }],
        DetectorOptions::default(),
    )
}

/// Per event: `(attempts, banned)` where attempts is the ticket's retry count
/// after the failure (fail2ban's `addFailure` return value). Runs the
/// unthrottled `cleanup(t)` before every failure, like the script below.
fn run_f2b(maxretry: u32, findtime: i64, events: &[(&str, f64, u32)]) -> Vec<(u64, bool)> {
    let mut d = f2b(maxretry, findtime);
    let mut out = Vec::new();
    for (n, &(k, t, w)) in events.iter().enumerate() {
        let key = Key::Text(Arc::from(k));
        d.cleanup(Timestamp::from_secs_f64(t));
        match d.observe(&ev(0, &key, t, w, n as u64)) {
            Some(tr) => out.push((tr.count, true)),
            None => out.push((d.snapshot(RuleId(0), &key).unwrap().count, false)),
        }
    }
    out
}

// The expectations below were obtained by running fail2ban 1.0.2's real
// `FailManager` with /usr/bin/python3 (script: for each event
// `fm.cleanup(t); a = fm.addFailure(FailTicket(ip, t), count)`, then
// `fm.toBan(ip)` when `a >= maxretry`), printing `(t, a[, 'BAN', ticket time])`.

#[test]
fn f2b_basic_ban_and_fresh_ticket_after_ban() {
    // basic [(0, 1), (100, 2), (200, 3, 'BAN', 200, 3, 3), (300, 1)]
    let r = run_f2b(3, 600, &[("a", 0.0, 1), ("a", 100.0, 1), ("a", 200.0, 1), ("a", 300.0, 1)]);
    assert_eq!(r, vec![(1, false), (2, false), (3, true), (1, false)]);
}

#[test]
fn f2b_aging_when_span_exceeds_findtime() {
    // aging2 [(0, 1), (500, 2), (1000, 2), (1001, 3, 'BAN', 1001, 3, 4)]
    // at 1000: retry = round(2 / 1000 * 600) = 1, +1 = 2 (a sliding window
    // would say 2 as well, but a plain counter 3); first becomes 400.
    // at 1001: round(2 / 601 * 600) = 2, +1 = 3 → ban.
    let r = run_f2b(3, 600, &[("a", 0.0, 1), ("a", 500.0, 1), ("a", 1000.0, 1), ("a", 1001.0, 1)]);
    assert_eq!(r, vec![(1, false), (2, false), (2, false), (3, true)]);
    // aging [(0, 1), (500, 2), (1100, 1), (1150, 2)]: at 1100 the ticket
    // (last 500 <= 1100 - 600) is removed by cleanup before it could age.
    let r = run_f2b(3, 600, &[("a", 0.0, 1), ("a", 500.0, 1), ("a", 1100.0, 1), ("a", 1150.0, 1)]);
    assert_eq!(r, vec![(1, false), (2, false), (1, false), (2, false)]);
}

#[test]
fn f2b_aging_rounds_half_to_even() {
    // tie720 [(0, 1), (100, 2), (600, 3), (720, 3)]
    // at 720: round(3 / 720 * 600) = round(2.5) = 2 (banker's), +1 = 3.
    let r = run_f2b(10, 600, &[("a", 0.0, 1), ("a", 100.0, 1), ("a", 600.0, 1), ("a", 720.0, 1)]);
    assert_eq!(r, vec![(1, false), (2, false), (3, false), (3, false)]);
    // tie_b [(0, 1), (0, 2), (0, 3), (0, 4), (500, 5), (1000, 4)]
    let r = run_f2b(
        10,
        600,
        &[("a", 0.0, 1), ("a", 0.0, 1), ("a", 0.0, 1), ("a", 0.0, 1), ("a", 500.0, 1), ("a", 1000.0, 1)],
    );
    assert_eq!(r.last(), Some(&(4, false)));
    assert_eq!(r[4], (5, false));
}

#[test]
fn f2b_not_a_sliding_window() {
    // steady_rate: one failure every 400 s with findtime 600 bans at the 3rd
    // failure although never more than 2 fall into any 600 s window.
    // [(0, 1), (400, 2), (800, 3, 'BAN', 800, 3, 3), (1200, 1), (1600, 2), (2000, 3, 'BAN', ...)]
    let ev: Vec<(&str, f64, u32)> = (0..6).map(|i| ("a", 400.0 * i as f64, 1)).collect();
    let r = run_f2b(3, 600, &ev);
    assert_eq!(r, vec![(1, false), (2, false), (3, true), (1, false), (2, false), (3, true)]);
}

#[test]
fn f2b_time_going_backwards_still_counts() {
    // backwards [(100, 1), (50, 2), (40, 3, 'BAN', 100, 3, 3)]  — ticket time stays 100
    let mut d = f2b(3, 600);
    let k = ip("192.0.2.1");
    assert!(d.observe(&ev(0, &k, 100.0, 1, 1)).is_none());
    assert!(d.observe(&ev(0, &k, 50.0, 1, 2)).is_none());
    let t = d.observe(&ev(0, &k, 40.0, 1, 3)).unwrap();
    assert_eq!(t.time, Timestamp::from_secs(100));
    assert_eq!(t.count, 3);
    assert_eq!(t.first_seen, Timestamp::from_secs(40));
    assert_eq!(t.evidence, vec![1, 2, 3]);
    // backwards_then_age [(1000, 1), (10, 2), (1500, 3)] (maxretry 5)
    let r = run_f2b(5, 600, &[("a", 1000.0, 1), ("a", 10.0, 1), ("a", 1500.0, 1)]);
    assert_eq!(r, vec![(1, false), (2, false), (3, false)]);
}

#[test]
fn f2b_weights_are_addfailure_count() {
    // weight [(0, 3, 'BAN', 0, 3, 1)]; weight2 [(0, 1), (10, 4), (20, 5, 'BAN', 20, 5, 3)]
    assert_eq!(run_f2b(3, 600, &[("a", 0.0, 3)]), vec![(3, true)]);
    let r = run_f2b(5, 600, &[("a", 0.0, 1), ("a", 10.0, 3), ("a", 20.0, 1)]);
    assert_eq!(r, vec![(1, false), (4, false), (5, true)]);
    let mut d = f2b(5, 600);
    let k = ip("192.0.2.1");
    d.observe(&ev(0, &k, 0.0, 1, 0));
    d.observe(&ev(0, &k, 10.0, 3, 1));
    let t = d.observe(&ev(0, &k, 20.0, 1, 2)).unwrap();
    assert_eq!(t.window.observations, 3); // fail2ban's ticket attempt (failures) = 3
}

#[test]
fn f2b_cleanup_boundary_is_inclusive() {
    // cleanup_edge_600 [(0, 1), (600, 1)]; cleanup_edge_599 [(0, 1), (599, 2, 'BAN', ...)]
    assert_eq!(run_f2b(2, 600, &[("a", 0.0, 1), ("a", 600.0, 1)]), vec![(1, false), (1, false)]);
    assert_eq!(run_f2b(2, 600, &[("a", 0.0, 1), ("a", 599.0, 1)]), vec![(1, false), (2, true)]);
    // cleanup_stale [(0, 1), (100, 2), (700, 1)]
    let r = run_f2b(3, 600, &[("a", 0.0, 1), ("a", 100.0, 1), ("a", 700.0, 1)]);
    assert_eq!(r, vec![(1, false), (2, false), (1, false)]);
}

#[test]
fn f2b_fractional_seconds() {
    // fraction [(0.25, 1), (400.5, 2), (1000.75, 1), (1001, 2)]
    let r = run_f2b(3, 600, &[("a", 0.25, 1), ("a", 400.5, 1), ("a", 1000.75, 1), ("a", 1001.0, 1)]);
    assert_eq!(r, vec![(1, false), (2, false), (1, false), (2, false)]);
}

#[test]
fn f2b_keys_are_independent() {
    // mixed_keys [(0, 1), (1, 1), (2, 2, 'BAN', 2, 2, 2), (700, 1)]
    let r = run_f2b(2, 600, &[("a", 0.0, 1), ("b", 1.0, 1), ("a", 2.0, 1), ("b", 700.0, 1)]);
    assert_eq!(r, vec![(1, false), (1, false), (2, true), (1, false)]);
}

#[test]
fn f2b_observed_bonus_needs_a_ticket() {
    // observed_missing 0 0 ; observed_present: addFailure(t) = 1, addFailure(t, 2, True) = 3
    let mut d = f2b(3, 600);
    let k = ip("192.0.2.7");
    assert!(d.add_observed(RuleId(0), &k, Timestamp::from_secs(5), 2).is_none());
    assert_eq!(d.stats().tracked_keys, 0);
    assert!(d.observe(&ev(0, &k, 5.0, 1, 0)).is_none());
    let t = d.add_observed(RuleId(0), &k, Timestamp::from_secs(5), 2).unwrap();
    assert_eq!(t.count, 3);
    assert_eq!(d.stats().tracked_keys, 0);
}

#[test]
fn count_exact_sliding_window() {
    let spec = WindowSpec::Count { threshold: 3, window: Duration::from_secs(10) };
    let mut d = Detector::new(vec![spec], DetectorOptions::default());
    let k = ip("2001:db8::1");
    assert!(d.observe(&ev(0, &k, 0.0, 1, 1)).is_none());
    assert!(d.observe(&ev(0, &k, 5.0, 1, 2)).is_none());
    // age of the first event is exactly the window: it no longer counts
    assert!(d.observe(&ev(0, &k, 10.0, 1, 3)).is_none());
    let t = d.observe(&ev(0, &k, 14.0, 1, 4)).unwrap();
    assert_eq!(t.count, 3);
    assert_eq!(t.evidence, vec![2, 3, 4]);
    assert_eq!(t.first_seen, Timestamp::from_secs(5));
    assert_eq!(t.time, Timestamp::from_secs(14));
    // state is dropped after the trigger
    assert!(d.observe(&ev(0, &k, 15.0, 1, 5)).is_none());
    assert_eq!(d.snapshot(RuleId(0), &k).unwrap().count, 1);
    // weights add up
    assert!(d.observe(&ev(0, &k, 16.0, 2, 6)).is_some());
}

#[test]
fn count_out_of_order_events() {
    let spec = WindowSpec::Count { threshold: 3, window: Duration::from_secs(10) };
    let mut d = Detector::new(vec![spec], DetectorOptions::default());
    let k = ip("192.0.2.1");
    assert!(d.observe(&ev(0, &k, 20.0, 1, 1)).is_none());
    // too old for the key's newest time (20 - 10): ignored
    assert!(d.observe(&ev(0, &k, 10.0, 1, 2)).is_none());
    assert_eq!(d.stats().too_old, 1);
    assert!(d.observe(&ev(0, &k, 12.0, 1, 3)).is_none());
    let t = d.observe(&ev(0, &k, 21.0, 1, 4)).unwrap();
    assert_eq!(t.evidence, vec![3, 1, 4]); // time order
    assert_eq!(t.first_seen, Timestamp::from_secs(12));
}

#[test]
fn distinct_user_enumeration() {
    let spec = WindowSpec::Distinct { threshold: 3, window: Duration::from_secs(60) };
    let mut d = Detector::new(vec![spec], DetectorOptions::default());
    let k = ip("198.51.100.4");
    let dev = |t: f64, v: Option<&str>, line: u64| Event { distinct: v.map(Arc::from), ..ev(0, &k, t, 1, line) };
    assert!(d.observe(&dev(0.0, Some("root"), 1)).is_none());
    assert!(d.observe(&dev(1.0, Some("root"), 2)).is_none());
    assert!(d.observe(&dev(2.0, None, 3)).is_none());
    assert!(d.observe(&dev(3.0, Some("admin"), 4)).is_none());
    assert_eq!(d.snapshot(RuleId(0), &k).unwrap().count, 2);
    // "root" was last seen at 1 → gone at 61; "admin" stays
    assert!(d.observe(&dev(61.0, Some("oracle"), 5)).is_none());
    let t = d.observe(&dev(62.0, Some("test"), 6)).unwrap();
    assert_eq!(t.count, 3);
    let vals: Vec<&str> = t.window.distinct_values.iter().map(|v| &**v).collect();
    assert_eq!(vals, vec!["admin", "oracle", "test"]);
    assert_eq!(t.evidence, vec![4, 5, 6]);
    assert_eq!(t.first_seen, Timestamp::from_secs(3));
}

#[test]
fn once_triggers_every_event_without_state() {
    let mut d = Detector::new(vec![WindowSpec::Once], DetectorOptions::default());
    let k = ip("203.0.113.9");
    for n in 0..3 {
        let t = d.observe(&ev(0, &k, n as f64, 1, n)).unwrap();
        assert_eq!(t.window.kind, WindowKind::Once);
        assert_eq!(t.evidence, vec![n]);
    }
    assert_eq!(d.stats().tracked_keys, 0);
    assert_eq!(d.stats().triggers, 3);
}

#[test]
fn unknown_rule_is_ignored() {
    let mut d = f2b(1, 600);
    assert!(d.observe(&ev(7, &ip("192.0.2.1"), 0.0, 1, 0)).is_none());
    assert_eq!(d.stats().unknown_rule, 1);
    assert!(!d.forget(RuleId(7), &ip("192.0.2.1")));
    assert!(d.add_observed(RuleId(7), &ip("192.0.2.1"), Timestamp(0), 5).is_none());
}

#[test]
fn key_cap_bounds_memory_under_a_flood() {
    let cap = 10_000;
    let mut d = Detector::new(
        vec![WindowSpec::Fail2ban { maxretry: 5, findtime: Duration::from_secs(600) }],
        DetectorOptions { max_keys: cap, ..DetectorOptions::default() },
    );
    let first = Key::Ip(IpAddr::from([10, 0, 0, 0]));
    for n in 0u32..1_000_000 {
        let key = Key::Ip(IpAddr::from((0x0a00_0000u32 + n).to_be_bytes()));
        assert!(d.observe(&ev(0, &key, f64::from(n) / 1000.0, 1, u64::from(n))).is_none());
        assert!(d.stats().tracked_keys <= cap);
    }
    let s = d.stats();
    assert_eq!(s.tracked_keys, cap);
    assert_eq!(s.evicted, 1_000_000 - cap as u64);
    assert!(d.slots.len() <= cap);
    // the oldest key was evicted: a new failure starts from 1
    assert!(d.snapshot(RuleId(0), &first).is_none());
    // the newest is still there
    let last = Key::Ip(IpAddr::from((0x0a00_0000u32 + 999_999).to_be_bytes()));
    assert_eq!(d.snapshot(RuleId(0), &last).unwrap().count, 1);
}

#[test]
fn eviction_is_least_recently_observed() {
    let mut d = Detector::new(
        vec![WindowSpec::Count { threshold: 100, window: Duration::from_secs(600) }],
        DetectorOptions { max_keys: 2, ..DetectorOptions::default() },
    );
    let (a, b, c) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"));
    d.observe(&ev(0, &a, 0.0, 1, 0));
    d.observe(&ev(0, &b, 1.0, 1, 1));
    d.observe(&ev(0, &a, 2.0, 1, 2)); // a is now most recent
    d.observe(&ev(0, &c, 3.0, 1, 3)); // evicts b
    assert!(d.snapshot(RuleId(0), &b).is_none());
    assert_eq!(d.snapshot(RuleId(0), &a).unwrap().count, 2);
    assert_eq!(d.stats().evicted, 1);
}

#[test]
fn purge_drops_stale_windows_and_forget_works() {
    let mut d = Detector::new(
        vec![
            WindowSpec::Fail2ban { maxretry: 5, findtime: Duration::from_secs(600) },
            WindowSpec::Count { threshold: 5, window: Duration::from_secs(60) },
        ],
        DetectorOptions::default(),
    );
    let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
    d.observe(&ev(0, &a, 0.0, 1, 0));
    d.observe(&ev(1, &b, 100.0, 1, 1));
    assert_eq!(d.purge(Timestamp::from_secs(160)), 0); // a (tail) still live until 600
    assert_eq!(d.purge(Timestamp::from_secs(600)), 2);
    assert_eq!(d.stats().tracked_keys, 0);
    assert_eq!(d.stats().purged, 2);
    d.observe(&ev(0, &a, 700.0, 1, 2));
    assert!(d.forget(RuleId(0), &a));
    assert!(d.snapshot(RuleId(0), &a).is_none());
}

#[test]
fn evidence_is_capped_keeping_the_newest() {
    let mut d = Detector::new(
        vec![WindowSpec::Fail2ban { maxretry: 10, findtime: Duration::from_secs(600) }],
        DetectorOptions { evidence_cap: 3, ..DetectorOptions::default() },
    );
    let k = ip("192.0.2.1");
    let mut last = None;
    for n in 0..10 {
        last = d.observe(&ev(0, &k, n as f64, 1, n));
    }
    assert_eq!(last.unwrap().evidence, vec![7, 8, 9]);
}

#[test]
fn spec_validation() {
    assert!(WindowSpec::Count { threshold: 0, window: Duration::from_secs(1) }.validate().is_err());
    assert_eq!(WindowSpec::Fail2ban { maxretry: 3, findtime: Duration::ZERO }.validate().unwrap_err().code(), "C040");
    assert!(WindowSpec::Once.validate().is_ok());
}

/// Checks the time index of every fail2ban rule: the list is ordered by
/// `last`, every fail2ban slot is in exactly one of list / late set, and
/// nothing else is indexed.
pub(crate) fn check_time_index(d: &Detector) {
    let mut seen = 0;
    for (r, svc) in d.svc.iter().enumerate() {
        let (mut i, mut prev, mut prev_last) = (svc.oldest, NIL, i64::MIN);
        while i != NIL {
            let s = &d.slots[i as usize];
            assert_eq!((s.rule as usize, s.timed, s.tprev), (r, Timed::List, prev));
            assert!(s.state.last >= prev_last);
            prev_last = s.state.last;
            (prev, i) = (i, s.tnext);
            seen += 1;
        }
        assert_eq!(svc.newest, prev);
        for &(last, i) in &svc.late {
            let s = &d.slots[i as usize];
            assert_eq!((s.rule as usize, s.timed, s.state.last), (r, Timed::Late, last));
            seen += 1;
        }
    }
    let tickets = d
        .maps
        .iter()
        .enumerate()
        .filter(|(r, _)| matches!(d.specs[*r], WindowSpec::Fail2ban { .. }))
        .map(|(_, m)| m.len())
        .sum::<usize>();
    assert_eq!(seen, tickets);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `cleanup`/`service` drop exactly the tickets with
        /// `last <= now - findtime`, whatever the order of event times, also
        /// with eviction, triggers, `forget` and `purge` in between.
        #[test]
        fn f2b_cleanup_drops_exactly_the_stale_tickets(
            max_keys in 3usize..40,
            ops in proptest::collection::vec((0u8..8, 0u8..2, 0u8..24, 0i64..400), 1..300),
        ) {
            let specs = vec![
                WindowSpec::Fail2ban { maxretry: 6, findtime: Duration::from_secs(30) },
                WindowSpec::Fail2ban { maxretry: 1000, findtime: Duration::from_secs(100) },
            ];
            let fts = [30i64, 100];
            let mut d = Detector::new(specs, DetectorOptions { max_keys, evidence_cap: 2, ..DetectorOptions::default() });
            let keys: Vec<Key> = (0..24).map(|k| Key::Text(Arc::from(format!("k{k}")))).collect();
            for (n, &(op, rule, k, t)) in ops.iter().enumerate() {
                let key = &keys[k as usize];
                match op {
                    0..=3 => {
                        d.observe(&ev(u32::from(rule), key, t as f64, 1, n as u64));
                    }
                    4 => {
                        d.add_observed(RuleId(u32::from(rule)), key, Timestamp::from_secs(t), 1);
                    }
                    5 => {
                        d.forget(RuleId(u32::from(rule)), key);
                    }
                    _ => {
                        let now = Timestamp::from_secs(t + 50);
                        let before: Vec<(usize, Key, i64)> = (0..2usize)
                            .flat_map(|r| keys.iter().map(move |k| (r, k)))
                            .filter_map(|(r, k)| {
                                d.snapshot(RuleId(r as u32), k).map(|s| (r, k.clone(), s.last_seen.0))
                            })
                            .collect();
                        let stale = before.iter().filter(|(r, _, l)| *l <= now.0 - fts[*r] * 1_000_000).count();
                        let dropped = if op == 6 { d.cleanup(now) } else { d.service(now) };
                        if op == 6 {
                            prop_assert_eq!(dropped, stale);
                        }
                        for (r, k, l) in &before {
                            let fresh = *l > now.0 - fts[*r] * 1_000_000;
                            let kept = d.snapshot(RuleId(*r as u32), k).is_some();
                            prop_assert!(kept || dropped > 0);
                            if op == 6 {
                                prop_assert_eq!(kept, fresh);
                            }
                        }
                    }
                }
                check_time_index(&d);
            }
        }
    }

    proptest! {
        /// The fail2ban path of `observe` (`observe_f2b`) against the general
        /// path: the same triggers, stats, windows, LRU order, time index and
        /// changes, with IPv4, IPv6, IPv4-mapped IPv6 and text keys, eviction
        /// at the key cap, time going backwards, `add_observed`, `service`,
        /// `cleanup`, `forget`, `purge`, a `Count` rule in between and an
        /// event for an unknown rule.
        #[test]
        fn f2b_fast_path_equals_general_path(
            max_keys in 1usize..12,
            cap in 0usize..4,
            ops in proptest::collection::vec((0u8..10, 0u8..4, 0u8..10, 0i64..300, 1u32..3), 1..250),
        ) {
            let specs = vec![
                WindowSpec::Fail2ban { maxretry: 4, findtime: Duration::from_secs(30) },
                WindowSpec::Fail2ban { maxretry: 50, findtime: Duration::from_secs(100) },
                WindowSpec::Count { threshold: 3, window: Duration::from_secs(20) },
            ];
            let opts = DetectorOptions { max_keys, evidence_cap: cap, ..DetectorOptions::default() };
            let mut fast = Detector::new(specs.clone(), opts).with_change_tracking();
            let mut plain = Detector::new(specs, opts).with_change_tracking();
            plain.f2b_fast = false;
            let keys = [
                ip("10.0.0.1"), ip("::ffff:10.0.0.1"), ip("10.0.0.2"), ip("2001:db8::1"), ip("2001:db8::2"),
                ip("::ffff:10.0.0.3"), ip("10.0.0.3"), Key::Text(Arc::from("u1")), Key::Text(Arc::from("u2")),
                ip("2001:db8::1:0"),
            ];
            for (n, &(op, rule, k, t, w)) in ops.iter().enumerate() {
                let key = &keys[k as usize];
                let rule = u32::from(rule);
                match op {
                    0..=4 => {
                        let e = ev(rule, key, t as f64, w, n as u64);
                        prop_assert_eq!(fast.observe(&e), plain.observe(&e));
                    }
                    5 => {
                        let (a, b) = (RuleId(rule), Timestamp::from_secs(t));
                        prop_assert_eq!(fast.add_observed(a, key, b, w), plain.add_observed(a, key, b, w));
                    }
                    6 => prop_assert_eq!(fast.forget(RuleId(rule), key), plain.forget(RuleId(rule), key)),
                    7 => prop_assert_eq!(fast.service(Timestamp::from_secs(t)), plain.service(Timestamp::from_secs(t))),
                    8 => prop_assert_eq!(fast.cleanup(Timestamp::from_secs(t)), plain.cleanup(Timestamp::from_secs(t))),
                    _ => prop_assert_eq!(fast.purge(Timestamp::from_secs(t)), plain.purge(Timestamp::from_secs(t))),
                }
                prop_assert_eq!(fast.stats(), plain.stats());
                prop_assert_eq!(fast.export_all(), plain.export_all());
                prop_assert_eq!(fast.take_dirty(), plain.take_dirty());
                prop_assert_eq!(fast.take_dirty_rules(), plain.take_dirty_rules());
                check_time_index(&fast);
                // the same LRU order (the next eviction victims)
                let order = |d: &Detector| {
                    let mut v = Vec::new();
                    let mut i = d.tail;
                    while i != NIL {
                        v.push((d.slots[i as usize].rule, d.slots[i as usize].key.clone()));
                        i = d.slots[i as usize].prev;
                    }
                    v
                };
                prop_assert_eq!(order(&fast), order(&plain));
            }
        }
    }

    /// Naive recompute: for each event, the newest time of the key so far is
    /// `now`; the count is the sum of weights of events after the last
    /// trigger with `now - window < time` (and not ignored as too old).
    fn naive(threshold: u32, window: i64, evs: &[(u8, i64, u32)]) -> Vec<Option<u64>> {
        let mut out = Vec::new();
        let mut hist: Vec<Vec<(i64, u32)>> = vec![Vec::new(); 4];
        let mut now: Vec<Option<i64>> = vec![None; 4];
        for &(k, t, w) in evs {
            let k = k as usize;
            let n = now[k].map_or(t, |n| n.max(t));
            let lo = n - window;
            if t > lo && w > 0 {
                hist[k].push((t, w));
            }
            let sum: u64 = hist[k].iter().filter(|e| e.0 > lo).map(|e| u64::from(e.1)).sum();
            if sum >= u64::from(threshold) {
                out.push(Some(sum));
                hist[k].clear();
                now[k] = None;
            } else {
                now[k] = Some(n);
                out.push(None);
            }
        }
        out
    }

    /// Naive distinct recompute, same conventions as `naive`.
    fn naive_distinct(threshold: u32, window: i64, evs: &[(u8, i64, Option<u8>)]) -> Vec<Option<u64>> {
        let mut out = Vec::new();
        let mut hist: Vec<Vec<(i64, u8)>> = vec![Vec::new(); 4];
        let mut now: Vec<Option<i64>> = vec![None; 4];
        for &(k, t, v) in evs {
            let k = k as usize;
            let n = now[k].map_or(t, |n| n.max(t));
            let lo = n - window;
            if let Some(v) = v {
                if t > lo {
                    hist[k].push((t, v));
                }
            }
            let mut vals: Vec<u8> = hist[k].iter().filter(|e| e.0 > lo).map(|e| e.1).collect();
            vals.sort_unstable();
            vals.dedup();
            if vals.len() as u64 >= u64::from(threshold) {
                out.push(Some(vals.len() as u64));
                hist[k].clear();
                now[k] = None;
            } else {
                now[k] = Some(n);
                out.push(None);
            }
        }
        out
    }

    proptest! {
        #[test]
        fn distinct_matches_naive_recompute(
            threshold in 1u32..5,
            window in 1i64..50,
            evs in proptest::collection::vec((0u8..4, 0i64..200, proptest::option::weighted(0.9, 0u8..6)), 0..200),
        ) {
            let spec = WindowSpec::Distinct { threshold, window: Duration(window) };
            let mut d = Detector::new(vec![spec], DetectorOptions::default());
            let expect = naive_distinct(threshold, window, &evs);
            for (n, (&(k, t, v), exp)) in evs.iter().zip(expect).enumerate() {
                let key = Key::Ip(IpAddr::from([10, 0, 0, k]));
                let e = Event {
                    rule: RuleId(0),
                    key,
                    time: Timestamp(t),
                    weight: 1,
                    distinct: v.map(|v| Arc::from(format!("user{v}"))),
                    line_no: n as u64,
                };
                let got = d.observe(&e).map(|t| t.count);
                prop_assert_eq!(got, exp, "event {}", n);
            }
        }

        #[test]
        fn count_matches_naive_recompute(
            threshold in 1u32..6,
            window in 1i64..50,
            evs in proptest::collection::vec((0u8..4, 0i64..200, 0u32..3), 0..200),
        ) {
            // sort mostly forward but with jitter (time going backwards)
            let spec = WindowSpec::Count { threshold, window: Duration(window) };
            let mut d = Detector::new(vec![spec], DetectorOptions::default());
            let expect = naive(threshold, window, &evs);
            for (n, (&(k, t, w), exp)) in evs.iter().zip(expect).enumerate() {
                let key = Key::Ip(IpAddr::from([10, 0, 0, k]));
                let e = Event { rule: RuleId(0), key, time: Timestamp(t), weight: w, distinct: None, line_no: n as u64 };
                let got = d.observe(&e).map(|t| t.count);
                prop_assert_eq!(got, exp, "event {}", n);
            }
        }
    }
}

/// `cargo test --release -p stadtwache-detect -- --ignored --nocapture throughput`
#[test]
#[ignore]
fn throughput() {
    let mut d = Detector::new(
        vec![
            WindowSpec::Fail2ban { maxretry: 5, findtime: Duration::from_secs(600) },
            WindowSpec::Count { threshold: 20, window: Duration::from_secs(60) },
        ],
        DetectorOptions { max_keys: 100_000, ..DetectorOptions::default() },
    );
    // TP_TRACK=1: with change tracking, taking the changes every 1,000 events.
    let track = std::env::var_os("TP_TRACK").is_some();
    if track {
        d.track_changes();
    }
    let mut taken = 0usize;
    let n: u64 = std::env::var("TP_N").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000_000);
    let start = std::time::Instant::now();
    let mut trig = 0u64;
    let mut x = 0x1234_5678u64;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = Key::Ip(IpAddr::from(((x % 200_000) as u32).to_be_bytes()));
        let e = Event {
            rule: RuleId((i & 1) as u32),
            key,
            time: Timestamp(i as i64 * 50),
            weight: 1,
            distinct: None,
            line_no: i,
        };
        trig += u64::from(d.observe(&e).is_some());
        if track && i % 1_000 == 999 {
            taken += d.take_dirty().len();
        }
    }
    let el = start.elapsed();
    eprintln!(
        "{n} events in {el:?}: {:.1} M/s, {trig} triggers, {taken} records taken, {:?}",
        n as f64 / el.as_secs_f64() / 1e6,
        d.stats()
    );
}

#[test]
fn mapped_ipv4_shares_the_ipv4_ticket() {
    // fail2ban: IPAddr("::ffff:192.0.2.1") is the IPv4 address 192.0.2.1
    let mut d = f2b(2, 600);
    assert!(d.observe(&ev(0, &ip("::ffff:192.0.2.1"), 0.0, 1, 0)).is_none());
    let t = d.observe(&ev(0, &ip("192.0.2.1"), 1.0, 1, 1)).unwrap();
    assert_eq!(t.key, ip("192.0.2.1"));
    assert_eq!(t.count, 2);
}

#[test]
fn f2b_cleanup_uses_the_callers_clock() {
    // Another key's newer event moves the clock: a's ticket (last 0) is
    // cleaned up at clock 700 even though a's next failure is dated 650.
    let mut d = f2b(2, 600);
    let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
    d.observe(&ev(0, &a, 0.0, 1, 0));
    d.observe(&ev(0, &b, 700.0, 1, 1));
    assert_eq!(d.clock(), Some(Timestamp::from_secs(700)));
    assert_eq!(d.cleanup(d.clock().unwrap()), 1);
    assert!(d.observe(&ev(0, &a, 650.0, 1, 2)).is_none());
    assert_eq!(d.snapshot(RuleId(0), &a).unwrap().count, 1);
    // Without a cleanup the stale ticket is not dropped by a failure: it is
    // aged (fail2ban's addFailure): round(1 / 650 * 600) = 1, + 1 = 2 → ban.
    let mut d = f2b(2, 600);
    d.observe(&ev(0, &a, 0.0, 1, 0));
    d.observe(&ev(0, &b, 700.0, 1, 1));
    let t = d.observe(&ev(0, &a, 650.0, 1, 2)).unwrap();
    assert_eq!((t.count, t.time), (2, Timestamp::from_secs(650)));
}

// ---- fail2ban's service schedule -------------------------------------------
//
// Expectations obtained with /usr/bin/python3 and fail2ban 1.0.2's real
// classes: `flt = Filter(None); flt.setMaxRetry(m); flt.setFindTime(f)`, then
// per line `now = max(now, t); MyTime.setTime(now); flt.performSvc()`, and
// for a failure line `a = flt.failManager.addFailure(FailTicket(ip, t))`,
// `toBan(ip)` + `performSvc()` when `a >= m`; printed as
// `(t, ip, a, tickets dropped by the line's performSvc[, 'BAN', time, retry])`
// or `(t, 'svc-dropped', n)` for a line without failure.

/// Lines `(t, Some(key))` (failure) or `(t, None)`: per line `service(now)`
/// then the failure. Returns per line `(attempts or 0, banned, dropped)`.
fn run_svc(maxretry: u32, findtime: i64, lines: &[(f64, Option<&str>)]) -> Vec<(u64, bool, usize)> {
    let mut d = f2b(maxretry, findtime);
    let mut now = i64::MIN;
    let mut out = Vec::new();
    for (n, &(t, k)) in lines.iter().enumerate() {
        now = now.max(Timestamp::from_secs_f64(t).0);
        let dropped = d.service(Timestamp(now));
        let Some(k) = k else {
            out.push((0, false, dropped));
            continue;
        };
        let key = Key::Text(Arc::from(k));
        match d.observe(&ev(0, &key, t, 1, n as u64)) {
            Some(tr) => out.push((tr.count, true, dropped)),
            None => out.push((d.snapshot(RuleId(0), &key).unwrap().count, false, dropped)),
        }
    }
    out
}

#[test]
fn f2b_service_is_throttled_and_stale_tickets_age_in_between() {
    // throttle_ages (maxretry 5, findtime 10): [(0, 'a', 1, 0), (3, 'a', 2, 0),
    // (10, 'b', 1, 0), (14, 'a', 2, 0), (15, 'svc-dropped', 0), (20, 'b', 1, 1),
    // (21, 'b', 2, 0)]. Services run at 0, 10, 15, 20 (14 < 10 + 5): at 14
    // a's ticket (last 3 <= 14 - 10) is stale but still there, so it is aged,
    // round(2 / 14 * 10) = 1, + 1 = 2 — not dropped and restarted at 1.
    let r = run_svc(
        5,
        10,
        &[
            (0.0, Some("a")),
            (3.0, Some("a")),
            (10.0, Some("b")),
            (14.0, Some("a")),
            (15.0, None),
            (20.0, Some("b")),
            (21.0, Some("b")),
        ],
    );
    assert_eq!(
        r,
        vec![(1, false, 0), (2, false, 0), (1, false, 0), (2, false, 0), (0, false, 0), (1, false, 1), (2, false, 0)]
    );
}

#[test]
fn f2b_aging_between_services_can_ban() {
    // aged_ban (maxretry 3, findtime 10): [(0, 'a', 1, 0), (1, 'a', 2, 0),
    // (8, 'svc-dropped', 0), (12, 'a', 3, 0, 'BAN', 12, 3), (13, 'a', 1, 0)]
    // The service at 8 sets the next one to 13; at 12 the stale ticket
    // (last 1 <= 2) ages to round(2 / 12 * 10) = 2, + 1 = 3: a ban that the
    // cleanup-before-every-failure limit would not give.
    let lines = [(0.0, Some("a")), (1.0, Some("a")), (8.0, None), (12.0, Some("a")), (13.0, Some("a"))];
    let r = run_svc(3, 10, &lines);
    assert_eq!(r, vec![(1, false, 0), (2, false, 0), (0, false, 0), (3, true, 0), (1, false, 0)]);
    let mut d = f2b(3, 10);
    let a = Key::Text(Arc::from("a"));
    for (n, &(t, k)) in lines.iter().enumerate() {
        d.cleanup(Timestamp::from_secs_f64(t));
        if k.is_some() {
            assert!(d.observe(&ev(0, &a, t, 1, n as u64)).is_none());
        }
    }
}

#[test]
fn f2b_service_with_time_going_backwards() {
    // backwards (maxretry 3, findtime 10): [(100, 'a', 1, 0), (104, 'b', 1, 0),
    // (50, 'a', 2, 0), (120, 'svc-dropped', 2), (121, 'a', 1, 0)]
    let r =
        run_svc(3, 10, &[(100.0, Some("a")), (104.0, Some("b")), (50.0, Some("a")), (120.0, None), (121.0, Some("a"))]);
    assert_eq!(r, vec![(1, false, 0), (1, false, 0), (2, false, 0), (0, false, 2), (1, false, 0)]);
    // A caller clock that goes backwards (next input of a replay) restarts
    // the schedule instead of suspending the cleanup until it catches up.
    let mut d = f2b(3, 10);
    let a = Key::Text(Arc::from("a"));
    assert_eq!(d.service(Timestamp::from_secs(1000)), 0);
    d.observe(&ev(0, &a, 100.0, 1, 0));
    assert_eq!(d.service(Timestamp::from_secs(104)), 0); // restarted at 104
    assert_eq!(d.service(Timestamp::from_secs(108)), 0); // throttled (< 109)
    assert_eq!(d.service(Timestamp::from_secs(109)), 0); // ran; next at 114
    assert_eq!(d.service(Timestamp::from_secs(113)), 0); // throttled, ticket stale
    assert_eq!(d.snapshot(RuleId(0), &a).unwrap().count, 1);
    assert_eq!(d.service(Timestamp::from_secs(114)), 1);
    assert_eq!(d.stats().cleaned, 1);
    assert_eq!(d.stats().tracked_keys, 0);
}

#[test]
fn f2b_service_is_per_rule_and_leaves_other_kinds_alone() {
    let mut d = Detector::new(
        vec![
            WindowSpec::Fail2ban { maxretry: 9, findtime: Duration::from_secs(10) },
            WindowSpec::Count { threshold: 9, window: Duration::from_secs(10) },
            WindowSpec::Fail2ban { maxretry: 9, findtime: Duration::from_secs(100) },
        ],
        DetectorOptions::default(),
    );
    let a = ip("192.0.2.1");
    for r in 0..3 {
        d.observe(&ev(r, &a, 0.0, 1, 0));
    }
    assert_eq!(d.service(Timestamp::from_secs(50)), 1); // rule 0 only
    assert!(d.snapshot(RuleId(0), &a).is_none());
    assert!(d.snapshot(RuleId(1), &a).is_some()); // Count: purge's business
    assert!(d.snapshot(RuleId(2), &a).is_some());
    assert_eq!(d.service(Timestamp::from_secs(100)), 1); // rule 2
    assert_eq!(d.stats().tracked_keys, 1);
}

/// `service`'s quiet range (no rule due) skips exactly the calls that would
/// do nothing: against the rule-by-rule path on every call, with two
/// fail2ban rules and a count rule, the clock mostly moving forward, now
/// and then back, and a restore of the service state in between.
#[test]
fn service_quiet_range_skips_only_idle_calls() {
    let specs = vec![
        WindowSpec::Fail2ban { maxretry: 4, findtime: Duration::from_secs(60) },
        WindowSpec::Count { threshold: 3, window: Duration::from_secs(30) },
        WindowSpec::Fail2ban { maxretry: 3, findtime: Duration::from_secs(20) },
    ];
    let mut a = Detector::new(specs.clone(), DetectorOptions::default());
    let mut b = Detector::new(specs, DetectorOptions::default());
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut t = 1_000_000.0f64;
    for i in 0..20_000u64 {
        t += match next(20) {
            0 => -(next(30) as f64),
            1 => 7.5,
            _ => next(3) as f64 * 0.5,
        };
        let now = Timestamp::from_secs_f64(t);
        assert_eq!(a.service(now), b.service_rules(now), "call {i}");
        if i % 5_000 == 4_999 {
            let saved: Vec<_> = (0..3).map(|r| (RuleId(r), persist_rule(&a, r))).collect();
            a.restore_rules(saved.clone());
            b.restore_rules(saved);
        }
        let key = ip(&format!("10.0.0.{}", next(40)));
        let e = ev(next(3) as u32, &key, t - next(10) as f64, 1, i);
        assert_eq!(a.observe(&e), b.observe(&e), "event {i}");
        assert_eq!(a.stats(), b.stats(), "event {i}");
    }
    assert!(a.stats().cleaned > 100, "{:?}", a.stats());
}

fn persist_rule(d: &Detector, r: u32) -> SavedRule {
    SavedRule {
        v: SAVED_VERSION,
        last_service: (d.svc[r as usize].last_run != i64::MIN).then_some(Timestamp(d.svc[r as usize].last_run)),
    }
}

// ---- keyed hashing (HashDoS) ------------------------------------------------

#[test]
fn maps_hash_with_the_callers_seed() {
    let keys = [ip("2001:db8::1"), ip("192.0.2.7"), Key::Text(Arc::from("root"))];
    for k in &keys {
        assert_eq!(key_hasher(1).hash_one(k), key_hasher(1).hash_one(k), "{k}: same seed, same hash");
        assert_ne!(key_hasher(1).hash_one(k), key_hasher(2).hash_one(k), "{k}: another seed, another hash");
    }
    // Bucket hashes of keys an attacker varies in the low bits differ between
    // seeds (what decides the probe start in a hashbrown table).
    let bucket = |seed: u64, k: &Key| key_hasher(seed).hash_one(k) & 0xffff;
    let v6 = |i: u16| ip(&format!("2001:db8::{i:x}"));
    assert!((0..64).any(|i| bucket(1, &v6(i)) != bucket(2, &v6(i))));
    // The detector's maps use the seed from its options.
    let spec = vec![WindowSpec::Fail2ban { maxretry: 3, findtime: Duration::from_secs(600) }];
    let d1 = Detector::new(spec.clone(), DetectorOptions { hash_seed: 1, ..DetectorOptions::default() });
    let d2 = Detector::new(spec, DetectorOptions { hash_seed: 2, ..DetectorOptions::default() });
    for k in &keys {
        assert_eq!(d1.maps[0].hasher().hash_one(k), key_hasher(1).hash_one(k));
        assert_eq!(d2.maps[0].hasher().hash_one(k), key_hasher(2).hash_one(k));
    }
}

#[test]
fn outputs_do_not_depend_on_the_hash_seed() {
    let specs = vec![
        WindowSpec::Fail2ban { maxretry: 3, findtime: Duration::from_secs(600) },
        WindowSpec::Count { threshold: 4, window: Duration::from_secs(300) },
    ];
    let run = |seed: u64| {
        let opts = DetectorOptions { max_keys: 150, hash_seed: seed, ..DetectorOptions::default() };
        let mut d = Detector::new(specs.clone(), opts).with_change_tracking();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut out = Vec::new();
        for n in 0..4000u64 {
            let r = rng.next();
            let key =
                if r % 3 == 0 { ip(&format!("2001:db8::{:x}", r % 200)) } else { ip(&format!("10.0.0.{}", r % 97)) };
            let t = n as f64 * 2.0;
            d.service(Timestamp::from_secs_f64(t));
            out.push(format!("{:?}", d.observe(&ev((r >> 8) as u32 % 2, &key, t, 1, n))));
            if n % 500 == 0 {
                out.push(format!("{:?}", d.take_dirty()));
            }
        }
        out.push(format!("{:?}", d.export_all()));
        out.push(format!("{:?}", d.take_dirty()));
        out.push(format!("{:?}", d.stats()));
        out
    };
    let (a, b) = (run(1), run(0xdead_beef_cafe_f00d));
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "output {i}");
    }
    assert!(a.iter().any(|s| s.starts_with("Some(")), "some triggers");
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
