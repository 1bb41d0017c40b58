use super::*;
use stadtwache_core::Event;
use stadtwache_detect::{Detector, DetectorOptions, WindowKind, WindowSpec};
use std::sync::Arc;

fn ip(s: &str) -> Key {
    Key::Ip(s.parse::<IpAddr>().unwrap())
}

fn secs(s: i64) -> Timestamp {
    Timestamp::from_secs(s)
}

fn trig(key: &Key, t: i64) -> Trigger {
    Trigger {
        rule: RuleId(0),
        key: key.clone(),
        time: secs(t),
        count: 3,
        first_seen: secs(t),
        evidence: vec![1, 2, 3],
        window: WindowSummary {
            kind: WindowKind::Fail2ban,
            threshold: 3,
            window: Duration::from_secs(600),
            window_start: secs(t),
            observations: 3,
            distinct_values: Vec::new(),
        },
    }
}

fn policy(bantime: i64) -> Policy {
    Policy { bantime: Duration::from_secs(bantime), ..Policy::default() }
}

fn ban_duration(d: &Decision) -> Option<Duration> {
    match d {
        Decision::Ban { duration, .. } => *duration,
        other => panic!("expected a ban, got {other:?}"),
    }
}

// ---- allowlist -------------------------------------------------------------

#[test]
fn allowlist_cidr_edges_v4_v6_and_mapped() {
    // Expectations checked against fail2ban's IPAddr(a).isInNet(IPAddr(n))
    // with /usr/bin/python3 (see the report); all agree except the mapped
    // network entry, where fail2ban says False and we deliberately cover it.
    let a =
        Allowlist::parse("10.0.0.0/8, 2001:db8::/32 192.168.0.0/255.255.0.0 ::ffff:172.16.0.0/108 127.0.0.1 ::1 alice")
            .unwrap();
    let hit = |k: &str| a.matches(&ip(k)).map(|e| e.text.clone());
    assert_eq!(hit("10.255.255.255").as_deref(), Some("10.0.0.0/8"));
    assert_eq!(hit("10.0.0.0").as_deref(), Some("10.0.0.0/8"));
    assert_eq!(hit("11.0.0.0"), None);
    assert_eq!(hit("9.255.255.255"), None);
    assert_eq!(hit("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff").as_deref(), Some("2001:db8::/32"));
    assert_eq!(hit("2001:db9::"), None);
    assert_eq!(hit("192.168.3.4").as_deref(), Some("192.168.0.0/255.255.0.0"));
    assert_eq!(hit("::ffff:192.168.1.5").as_deref(), Some("192.168.0.0/255.255.0.0"));
    assert_eq!(hit("172.31.255.255").as_deref(), Some("::ffff:172.16.0.0/108"));
    assert_eq!(hit("172.32.0.0"), None);
    assert_eq!(hit("127.0.0.1").as_deref(), Some("127.0.0.1"));
    assert_eq!(hit("127.0.0.2"), None);
    assert_eq!(hit("::1").as_deref(), Some("::1"));
    assert_eq!(hit("::2"), None);
    // text keys match exactly; text holding an address is an address
    assert!(a.matches(&Key::Text(Arc::from("alice"))).is_some());
    assert!(a.matches(&Key::Text(Arc::from("Alice"))).is_none());
    assert!(a.matches(&Key::Text(Arc::from("10.1.1.1"))).is_some());
    // IPv4 entries never match IPv6 keys and vice versa
    let b = Allowlist::parse("0.0.0.0/0").unwrap();
    assert!(b.matches(&ip("1.2.3.4")).is_some());
    assert!(b.matches(&ip("2001:db8::1")).is_none());
    // host bits are masked (fail2ban: 10.9.9.9 in 10.1.2.3/8 → True)
    let c = Allowlist::parse("10.1.2.3/8").unwrap();
    assert!(c.matches(&ip("10.9.9.9")).is_some());
    // a mapped single entry is the IPv4 address
    let d = Allowlist::parse("::ffff:10.1.2.3").unwrap();
    assert!(d.matches(&ip("10.1.2.3")).is_some());
    assert!(d.matches(&ip("::ffff:10.1.2.3")).is_some());
    assert!(Allowlist::parse("  , ").unwrap().is_empty());
}

#[test]
fn allowlist_errors_are_coded_with_text() {
    for (text, code) in [
        ("1.2.3.4/33", "C021"),
        ("1.2.3.4/abc", "C021"),
        ("2001:db8::/129", "C021"),
        ("10.0.0.0/255.0.255.0", "C022"),
        ("300.1.2.3", "C020"),
        ("1.2.3", "C020"),
        ("2001:db8:::1", "C020"),
        ("nothost/8", "C020"),
        ("[::1", "C020"),
    ] {
        let e = Allowlist::parse(&format!("127.0.0.1 {text}")).unwrap_err();
        assert_eq!(e.code(), code, "{text}");
        assert_eq!(e.text(), text);
        assert!(e.to_string().starts_with(code));
        assert_eq!(e.to_diagnostic().code, code);
    }
}

#[test]
fn allowlisted_keys_are_never_banned() {
    let mut p = policy(600);
    p.allowlist = Allowlist::parse("192.0.2.0/24").unwrap();
    p.ipv6_prefix = Some(64);
    let mut d = Decider::new(p);
    let dec = d.decide(&trig(&ip("::ffff:192.0.2.9"), 100), secs(100));
    match &dec {
        Decision::Allowlisted { entry, reason } => {
            assert_eq!(entry, "192.0.2.0/24");
            assert_eq!(reason.steps, vec![Step::Allowlist { matched: Some("192.0.2.0/24".into()) }]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.active_bans(), 0);
}

// ---- increment ---------------------------------------------------------------

/// Ban the same address again and again (each after the previous expired)
/// and collect the durations in seconds.
fn ban_sequence(p: Policy, n: usize) -> Vec<i64> {
    let mut d = Decider::new(p);
    let k = ip("203.0.113.5");
    let mut t = 1_000;
    let mut out = Vec::new();
    for _ in 0..n {
        let dec = d.decide(&trig(&k, t), secs(t));
        let dur = ban_duration(&dec).unwrap();
        out.push(dur.as_secs());
        t += dur.as_secs() + 1;
        assert_eq!(d.expire(secs(t)).len(), 1);
    }
    out
}

#[test]
fn increment_sequence_matches_fail2ban_formula() {
    // fail2ban's ObserverThread.calcBanTime(jail, 600, Count) for Count 0..23
    // with the default formula (jail.setBanTimeExtra, /usr/bin/python3):
    // [600, 1200, 2400, ..., 314572800, 629145600, 629145600, 629145600, 629145600]
    // The n-th ban uses Count = n - 1 (previous bans from the database).
    // Confirmed end to end with fail2ban's Fail2BanDb(':memory:') and
    // ObserverThread.banFound(BanTicket, jail, 600) for six successive bans:
    // (ban count, bantime) = (1, 600), (2, 1200), (3, 2400), (4, 4800), (5, 9600), (6, 19200).
    let f2b: Vec<i64> = (0..24).map(|c: u32| 600 * (1i64 << c.min(20))).collect();
    assert_eq!(f2b[21], 629_145_600);
    let p = Policy { increment: Some(BanIncrement::default()), ..policy(600) };
    assert_eq!(ban_sequence(p, 24), f2b);

    // maxtime = 1d: [600, 1200, 2400, 4800, 9600, 19200, 38400, 76800, 86400, 86400, ...]
    let inc = BanIncrement::from_fail2ban(None, None, None, Some("1d"), None).unwrap();
    let p = Policy { increment: Some(inc), ..policy(600) };
    assert_eq!(ban_sequence(p, 10), vec![600, 1200, 2400, 4800, 9600, 19200, 38400, 76800, 86400, 86400]);

    // factor 0.5: [600, 600, 1200.0, 2400.0, 4800.0, 9600.0] (max(Time, ...))
    let inc = BanIncrement::from_fail2ban(Some("0.5"), None, None, None, None).unwrap();
    let p = Policy { increment: Some(inc), ..policy(600) };
    assert_eq!(ban_sequence(p, 6), vec![600, 600, 1200, 2400, 4800, 9600]);

    // multipliers "1 5 30 60 300 720 1440 2880", bantime 60:
    // [60, 300, 1800, 3600, 18000, 43200, 86400, 172800, 172800, 172800]
    let inc = BanIncrement::from_fail2ban(None, None, Some("1 5 30 60 300 720 1440 2880"), None, None).unwrap();
    let p = Policy { increment: Some(inc), ..policy(60) };
    assert_eq!(ban_sequence(p, 10), vec![60, 300, 1800, 3600, 18000, 43200, 86400, 172800, 172800, 172800]);

    // multipliers "1 2 4" factor 3, bantime 100: calcBanTime gives
    // [300, 600, 1200, 1200, 1200] for Count 0..4; the first ban is not
    // incremented (no database entry), so the bans are 100, 600, 1200, 1200.
    let inc = BanIncrement::from_fail2ban(Some("3"), None, Some("1 2 4"), None, None).unwrap();
    let p = Policy { increment: Some(inc.clone()), ..policy(100) };
    assert_eq!(ban_sequence(p, 4), vec![100, 600, 1200, 1200]);
    assert_eq!(inc.calc(Duration::from_secs(100), 0, 0).result, Duration::from_secs(300));

    // multipliers "1 2 4 8" maxtime 1000, bantime 200: [200, 400, 800, 1000, 1000]
    let inc = BanIncrement::from_fail2ban(None, None, Some("1 2 4 8"), Some("1000"), None).unwrap();
    let p = Policy { increment: Some(inc), ..policy(200) };
    assert_eq!(ban_sequence(p, 5), vec![200, 400, 800, 1000, 1000]);
}

#[test]
fn increment_explains_its_steps_and_rndtime_is_deterministic() {
    let inc = BanIncrement { maxtime: Some(Duration::from_secs(1000)), ..BanIncrement::default() };
    let c = inc.calc(Duration::from_secs(600), 1, 0);
    assert_eq!(c.multiplier, 2.0);
    assert_eq!(c.computed, Duration::from_secs(1200));
    assert_eq!(c.capped_by, Some(Duration::from_secs(1000)));
    assert_eq!(c.result, Duration::from_secs(1000));

    let unseeded = BanIncrement { rndtime: Some(Duration::from_secs(60)), ..BanIncrement::default() };
    assert_eq!(unseeded.calc(Duration::from_secs(600), 1, 42).random, Duration::ZERO);
    let seeded = BanIncrement { rnd_seed: Some(7), ..unseeded };
    let a = seeded.calc(Duration::from_secs(600), 1, 42);
    let b = seeded.calc(Duration::from_secs(600), 1, 42);
    assert_eq!(a, b);
    assert!(a.random > Duration::ZERO && a.random < Duration::from_secs(60));
    assert_eq!(a.result, Duration(1200 * 1_000_000 + a.random.0));
    assert_ne!(seeded.calc(Duration::from_secs(600), 1, 43).random, a.random);
}

#[test]
fn increment_config_errors() {
    let e = BanIncrement::from_fail2ban(None, Some("ban.Time * 3"), None, None, None).unwrap_err();
    assert_eq!((e.code(), e.text()), ("C026", "ban.Time * 3"));
    assert!(BanIncrement::from_fail2ban(None, Some(DEFAULT_FORMULA), None, None, None).is_ok());
    assert_eq!(BanIncrement::from_fail2ban(Some("2.0 / 2.885385"), None, None, None, None).unwrap_err().code(), "C025");
    assert_eq!(BanIncrement::from_fail2ban(None, None, Some("1 2 x"), None, None).unwrap_err().code(), "C024");
    assert_eq!(BanIncrement::from_fail2ban(None, None, None, Some("1 fortnight"), None).unwrap_err().code(), "C027");
    assert_eq!(Policy { ipv6_prefix: Some(0), ..Policy::default() }.validate().unwrap_err().code(), "C023");
    assert!(Decider::try_new(Policy { ipv6_prefix: Some(129), ..Policy::default() }).is_err());
}

#[test]
fn bad_ip_extra_retries_like_failure_found() {
    // observer.failureFound: retryCount = (1 << banCount)/2 + 1, min maxRetry
    assert_eq!(BanIncrement::bad_ip_extra_retries(0, 5), 0);
    assert_eq!(BanIncrement::bad_ip_extra_retries(1, 5), 1);
    assert_eq!(BanIncrement::bad_ip_extra_retries(2, 5), 2);
    assert_eq!(BanIncrement::bad_ip_extra_retries(3, 5), 4);
    assert_eq!(BanIncrement::bad_ip_extra_retries(4, 5), 4);
    assert_eq!(BanIncrement::bad_ip_extra_retries(40, 100), 99);

    let k = ip("198.51.100.1");
    let mut d = Decider::new(Policy { increment: Some(BanIncrement::default()), ..policy(600) });
    assert_eq!(d.bad_ip_extra_retries(&k, secs(50), 5), 0);
    assert!(d.decide(&trig(&k, 100), secs(100)).is_ban());
    assert_eq!(d.bad_ip_extra_retries(&k, secs(100), 5), 0); // not after the ban
    assert_eq!(d.bad_ip_extra_retries(&k, secs(101), 5), 1);
    // without increment: never
    let mut d = Decider::new(policy(600));
    d.decide(&trig(&k, 100), secs(100));
    assert_eq!(d.bad_ip_extra_retries(&k, secs(101), 5), 0);
}

#[test]
fn ban_history_is_purged_like_fail2ban_bips() {
    let k = ip("198.51.100.1");
    let mut d = Decider::new(Policy { increment: Some(BanIncrement::default()), ..policy(600) });
    d.decide(&trig(&k, 0), secs(0));
    // last ban 0 + 3 × 600 must be older than now - 1d
    let t = 86_400 + 1_801;
    assert_eq!(d.expire(secs(t)).len(), 1);
    assert!(d.explain(&k, secs(t)).history.is_none());
    assert_eq!(ban_duration(&d.decide(&trig(&k, t), secs(t))), Some(Duration::from_secs(600)));
    // within the purge age the count goes on
    d.expire(secs(t + 700));
    assert_eq!(ban_duration(&d.decide(&trig(&k, t + 700), secs(t + 700))), Some(Duration::from_secs(1200)));
}

// ---- bans, prolonging, expiry ------------------------------------------------

#[test]
fn ban_runs_from_trigger_time_and_expires_strictly_after() {
    let mut d = Decider::new(policy(600));
    let k = ip("192.0.2.1");
    match d.decide(&trig(&k, 100), secs(105)) {
        Decision::Ban { key, prefix, duration, until, ban_count, simulated, reason } => {
            assert_eq!(key, k);
            assert_eq!(prefix, None);
            assert_eq!(duration, Some(Duration::from_secs(600)));
            assert_eq!(until, Some(secs(700)));
            assert_eq!(ban_count, 1);
            assert!(!simulated);
            assert_eq!(reason.decided_at, secs(105));
            assert_eq!(reason.evidence, vec![1, 2, 3]);
        }
        other => panic!("{other:?}"),
    }
    assert!(d.expire(secs(700)).is_empty()); // fail2ban: unban when now > end
    let un = d.expire(Timestamp(secs(700).0 + 1));
    assert_eq!(un.len(), 1);
    assert_eq!((un[0].since, un[0].until, un[0].ban_count), (secs(100), secs(700), 1));
    assert_eq!(d.active_bans(), 0);
    // second ban counts as the 2nd even without increment
    match d.decide(&trig(&k, 800), secs(800)) {
        Decision::Ban { ban_count, duration, .. } => {
            assert_eq!(ban_count, 2);
            assert_eq!(duration, Some(Duration::from_secs(600)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn already_banned_prolongs_like_ban_manager() {
    let mut d = Decider::new(policy(600));
    let k = ip("192.0.2.1");
    assert!(d.decide(&trig(&k, 100), secs(100)).is_ban());
    match d.decide(&trig(&k, 300), secs(300)) {
        Decision::AlreadyBanned { until, prolonged, reason, .. } => {
            assert_eq!(until, Some(secs(900)));
            assert!(prolonged);
            assert!(reason.steps.contains(&Step::AlreadyBanned {
                until: Some(secs(700)),
                prolonged: true,
                new_until: Some(secs(900))
            }));
        }
        other => panic!("{other:?}"),
    }
    // a trigger with an older time does not shorten or move the ban
    match d.decide(&trig(&k, 200), secs(300)) {
        Decision::AlreadyBanned { until, prolonged, .. } => {
            assert_eq!(until, Some(secs(900)));
            assert!(!prolonged);
        }
        other => panic!("{other:?}"),
    }
    // the stale heap entry (700) does not unban early
    assert!(d.expire(secs(800)).is_empty());
    assert_eq!(d.expire(secs(901)).len(), 1);

    // with increment the prolongation uses the *base* bantime: a 1200 s
    // second ban is not prolonged by a trigger 100 s later (end 2700 < 3200)
    let mut d = Decider::new(Policy { increment: Some(BanIncrement::default()), ..policy(600) });
    d.decide(&trig(&k, 0), secs(0));
    d.expire(secs(1_000));
    assert_eq!(ban_duration(&d.decide(&trig(&k, 2_000), secs(2_000))), Some(Duration::from_secs(1200)));
    match d.decide(&trig(&k, 2_100), secs(2_100)) {
        Decision::AlreadyBanned { until, prolonged, .. } => {
            assert_eq!(until, Some(secs(3_200)));
            assert!(!prolonged);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn expired_and_permanent_bans() {
    let mut d = Decider::new(policy(600));
    let k = ip("192.0.2.1");
    match d.decide(&trig(&k, 0), secs(601)) {
        Decision::Expired { until, .. } => assert_eq!(until, secs(600)),
        other => panic!("{other:?}"),
    }
    assert!(d.decide(&trig(&k, 0), secs(600)).is_ban());

    let mut d = Decider::new(Policy { increment: Some(BanIncrement::default()), ..policy(-1) });
    match d.decide(&trig(&k, 0), secs(1_000_000)) {
        Decision::Ban { until, duration, .. } => assert_eq!((until, duration), (None, None)),
        other => panic!("{other:?}"),
    }
    assert!(d.expire(Timestamp(i64::MAX)).is_empty());
    assert!(matches!(d.decide(&trig(&k, 5), secs(5)), Decision::AlreadyBanned { until: None, .. }));
    assert!(d.unban(&k).is_some());
    assert_eq!(d.active_bans(), 0);
}

#[test]
fn ban_over_but_not_yet_expired_is_reported_by_the_next_expire() {
    let mut d = Decider::new(policy(600));
    let k = ip("192.0.2.1");
    d.decide(&trig(&k, 0), secs(0));
    // no expire() call in between: the old ban is over at 1000
    match d.decide(&trig(&k, 1_000), secs(1_000)) {
        Decision::Ban { ban_count, until, .. } => assert_eq!((ban_count, until), (2, Some(secs(1_600)))),
        other => panic!("{other:?}"),
    }
    let un = d.expire(secs(1_000));
    assert_eq!(un.len(), 1);
    assert_eq!(un[0].until, secs(600));
    assert_eq!(d.active_bans(), 1);
}

#[test]
fn rule_bantime_overrides_policy() {
    let mut d = Decider::new(policy(600)).with_rule_bantimes(vec![None, Some(Duration::from_secs(86_400))]);
    let mut t = trig(&ip("192.0.2.1"), 0);
    t.rule = RuleId(1);
    assert_eq!(ban_duration(&d.decide(&t, secs(0))), Some(Duration::from_secs(86_400)));
    assert_eq!(ban_duration(&d.decide(&trig(&ip("192.0.2.2"), 0), secs(0))), Some(Duration::from_secs(600)));
}

// ---- IPv6 aggregation, simulation -------------------------------------------

#[test]
fn ipv6_aggregation_to_prefix() {
    let mut p = policy(600);
    p.ipv6_prefix = Some(64);
    p.allowlist = Allowlist::parse("2001:db8:0:2::53").unwrap();
    let mut d = Decider::new(p);
    match d.decide(&trig(&ip("2001:db8:0:1:aaaa::1"), 0), secs(0)) {
        Decision::Ban { key, prefix, reason, .. } => {
            assert_eq!(key, ip("2001:db8:0:1::"));
            assert_eq!(prefix, Some(64));
            assert_eq!(target_string(&key, prefix), "2001:db8:0:1::/64");
            assert!(reason.steps.contains(&Step::Aggregated { prefix: 64, network: ip("2001:db8:0:1::") }));
            assert_eq!(reason.key, ip("2001:db8:0:1:aaaa::1"));
        }
        other => panic!("{other:?}"),
    }
    // another address of the same /64 is already banned
    assert!(matches!(
        d.decide(&trig(&ip("2001:db8:0:1:ffff::2"), 1), secs(1)),
        Decision::AlreadyBanned { prefix: Some(64), .. }
    ));
    // another /64 is a new ban
    assert!(d.decide(&trig(&ip("2001:db8:0:3::1"), 1), secs(1)).is_ban());
    // the /64 of an allowlisted address is not banned as a whole
    match d.decide(&trig(&ip("2001:db8:0:2::99"), 2), secs(2)) {
        Decision::Ban { key, prefix, reason, .. } => {
            assert_eq!((key, prefix), (ip("2001:db8:0:2::99"), None));
            assert!(reason.steps.iter().any(|s| matches!(s, Step::AggregationSkipped { .. })));
        }
        other => panic!("{other:?}"),
    }
    // IPv4 and mapped IPv4 are never aggregated
    match d.decide(&trig(&ip("::ffff:198.51.100.7"), 3), secs(3)) {
        Decision::Ban { key, prefix, reason, .. } => {
            assert_eq!((key, prefix), (ip("198.51.100.7"), None));
            assert!(matches!(reason.steps[1], Step::MappedToIpv4 { .. }));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(d.decide(&trig(&ip("198.51.100.7"), 4), secs(4)), Decision::AlreadyBanned { .. }));
    // explain finds the aggregated ban from any address of the prefix
    let r = d.explain(&ip("2001:db8:0:1::77"), secs(5));
    assert_eq!(r.ban_key, ip("2001:db8:0:1::"));
    assert_eq!(r.ban.unwrap().ban_count, 1);
    assert_eq!(d.bans(secs(5)).len(), 4);
}

#[test]
fn simulation_flag_marks_bans_but_keeps_state() {
    let mut d = Decider::new(Policy { simulate: true, ..policy(600) });
    let k = ip("192.0.2.1");
    match d.decide(&trig(&k, 0), secs(0)) {
        Decision::Ban { simulated, reason, .. } => {
            assert!(simulated);
            assert_eq!(reason.steps.last(), Some(&Step::Simulated));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(d.decide(&trig(&k, 1), secs(1)), Decision::AlreadyBanned { .. }));
    assert!(d.expire(secs(601)).iter().all(|u| u.simulated));
    let mut d = Decider::new(policy(600));
    assert!(matches!(d.decide(&trig(&k, 0), secs(0)), Decision::Ban { simulated: false, .. }));
}

#[test]
fn decisions_serialise_to_json() {
    let mut p = policy(600);
    p.increment = Some(BanIncrement::default());
    let mut d = Decider::new(p);
    let k = ip("192.0.2.1");
    d.decide(&trig(&k, 0), secs(0));
    d.expire(secs(601));
    let dec = d.decide(&trig(&k, 700), secs(700));
    let v = serde_json::to_value(&dec).unwrap();
    assert_eq!(v["decision"], "ban");
    assert_eq!(v["ban_count"], 2);
    assert_eq!(v["reason"]["window"]["kind"], "fail2ban");
    let steps: Vec<&str> =
        v["reason"]["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, vec!["allowlist", "base_bantime", "increment"]);
    assert_eq!(v["reason"]["steps"][2]["multiplier"], 2.0);
    assert!(serde_json::to_string(&d.explain(&k, secs(701))).is_ok());
}

// ---- detect → decide, against fail2ban -----------------------------------------

/// Replays `(address, seconds)` failures through Detector + Decider as the
/// crate docs prescribe and returns what happened, in fail2ban's words.
fn jail(maxretry: u32, findtime: i64, bantime: i64, events: &[(&str, i64)]) -> Vec<(String, String, i64, i64)> {
    let mut det = Detector::new(
        vec![WindowSpec::Fail2ban { maxretry, findtime: Duration::from_secs(findtime) }],
        DetectorOptions::default(),
    );
    let mut dec = Decider::new(policy(bantime));
    let mut out = Vec::new();
    for (n, &(a, t)) in events.iter().enumerate() {
        let now = secs(t);
        for u in dec.expire(now) {
            out.push(("unban".into(), u.key.to_string(), t, 0));
        }
        let ev = Event { rule: RuleId(0), key: ip(a), time: now, weight: 1, distinct: None, line_no: n as u64 };
        if let Some(tr) = det.observe(&ev) {
            match dec.decide(&tr, now) {
                Decision::Ban { key, until, .. } => {
                    out.push(("ban".into(), key.to_string(), t, until.unwrap().as_secs()))
                }
                Decision::AlreadyBanned { key, until, .. } => {
                    out.push(("already".into(), key.to_string(), t, until.unwrap().as_secs()))
                }
                other => panic!("{other:?}"),
            }
        }
    }
    out
}

#[test]
fn wiring_gives_fail2ban_bans() {
    // Obtained with /usr/bin/python3 driving fail2ban's real FailManager and
    // BanManager the way filter.processLineAndAdd and actions.__checkBan do
    // (MyTime.setTime(t); bm.unBanList(t); fm.cleanup(t); fm.addFailure;
    // fm.toBan; bm.addBanTicket(BanTicket.wrap(ticket), reason)).
    //
    // One address failing every 60 s for 40 minutes, maxretry 3, findtime 600,
    // bantime 600: banned at 1120 until 1720, then every 3rd failure while
    // banned prolongs the ban to failure time + 600.
    let ev: Vec<(&str, i64)> = (0..40).map(|i| ("192.0.2.1", 1000 + 60 * i)).collect();
    let got = jail(3, 600, 600, &ev);
    let mut want = vec![("ban".to_string(), "192.0.2.1".to_string(), 1120, 1720)];
    for i in 0..12 {
        let t = 1300 + 180 * i;
        want.push(("already".into(), "192.0.2.1".into(), t, t + 600));
    }
    assert_eq!(got, want);

    // burst, pause past the unban, burst: [('ban', 20, 320), ('already', 50, 350, True),
    // ('unban', 400), ('ban', 420, 720)] with bantime 300
    let got = jail(3, 600, 300, &[0, 10, 20, 30, 40, 50, 400, 410, 420].map(|t| ("192.0.2.1", t)));
    let s = |a: &str, t, u| (a.to_string(), "192.0.2.1".to_string(), t, u);
    assert_eq!(got, vec![s("ban", 20, 320), s("already", 50, 350), s("unban", 400, 0), s("ban", 420, 720)]);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    const KEYS: &[&str] = &[
        "192.0.2.1",
        "192.0.2.200",
        "::ffff:192.0.2.1",
        "10.1.2.3",
        "2001:db8:0:1::1",
        "2001:db8:0:1::2",
        "2001:db8:0:2::1",
        "2001:db8:1::5",
        "::1",
    ];
    const ALLOW: &[&str] = &["192.0.2.0/25", "10.0.0.0/8", "2001:db8:0:2::1", "2001:db8:0:1::/64", "alice", "::1"];

    fn key_of(i: usize) -> Key {
        if i >= KEYS.len() { Key::Text(Arc::from(["alice", "bob"][i % 2])) } else { ip(KEYS[i]) }
    }

    proptest! {
        #[test]
        fn allowlist_always_wins_and_expiry_is_consistent(
            allow in proptest::collection::vec(0..ALLOW.len(), 0..4),
            prefix in prop_oneof![Just(None), Just(Some(48u8)), Just(Some(64u8)), Just(Some(128u8))],
            increment in any::<bool>(),
            bantime in prop_oneof![Just(-1i64), 1i64..2000],
            ops in proptest::collection::vec((0..KEYS.len() + 2, 0i64..5000, any::<bool>()), 1..80),
        ) {
            let spec: Vec<&str> = allow.iter().map(|&i| ALLOW[i]).collect();
            let allowlist = Allowlist::parse(&spec.join(" ")).unwrap();
            let p = Policy {
                bantime: Duration::from_secs(bantime),
                increment: increment.then(BanIncrement::default),
                allowlist: allowlist.clone(),
                ipv6_prefix: prefix,
                simulate: false,
            };
            let mut d = Decider::new(p);
            let mut now = 0i64;
            for (k, dt, do_expire) in ops {
                now += dt;
                let key = key_of(k);
                if do_expire {
                    for u in d.expire(secs(now)) {
                        prop_assert!(u.until < secs(now));
                    }
                }
                let t = trig(&key, now - (dt % 7));
                match d.decide(&t, secs(now)) {
                    Decision::Allowlisted { entry, .. } => {
                        prop_assert_eq!(allowlist.matches(&key).map(|e| e.text.clone()), Some(entry));
                    }
                    Decision::Ban { key: bk, prefix: bp, until, .. } => {
                        prop_assert!(allowlist.matches(&key).is_none());
                        prop_assert!(allowlist.matches(&bk).is_none());
                        if let (Key::Ip(net), Some(p)) = (&bk, bp) {
                            prop_assert!(allowlist.overlaps(*net, p).is_none());
                        }
                        prop_assert!(until.is_none_or(|u| u >= secs(now)));
                        prop_assert!(d.explain(&key, secs(now)).ban.is_some());
                    }
                    Decision::AlreadyBanned { .. } => {
                        prop_assert!(allowlist.matches(&key).is_none());
                        prop_assert!(d.explain(&key, secs(now)).ban.is_some());
                    }
                    Decision::Expired { .. } => prop_assert!(bantime >= 0),
                }
            }
        }

        /// `decide_quiet` against `decide` on the same inputs: the same
        /// outcomes (ban key and prefix), the same bans (durations, ends,
        /// counts), unbans and history, with allowlist, IPv6 aggregation,
        /// increments (random part included), rule bantimes, permanent bans,
        /// bans that are over before the next decision, prolongations.
        #[test]
        fn quiet_decisions_are_decisions(
            allow in proptest::collection::vec(0..ALLOW.len(), 0..4),
            prefix in prop_oneof![Just(None), Just(Some(48u8)), Just(Some(64u8)), Just(Some(128u8))],
            increment in prop_oneof![Just(None), Just(Some(None)), Just(Some(Some(60i64)))],
            purge_age in prop_oneof![Just(86_400i64), 1i64..3000],
            bantime in prop_oneof![Just(-1i64), 1i64..2000],
            rule_bantime in prop_oneof![Just(None), Just(Some(-1i64)), (1i64..900).prop_map(Some)],
            simulate in any::<bool>(),
            seed in any::<u64>(),
            ops in proptest::collection::vec((0..KEYS.len() + 2, 0i64..1500, 0u8..3, 0i64..2000, any::<bool>()), 1..120),
        ) {
            let spec: Vec<&str> = allow.iter().map(|&i| ALLOW[i]).collect();
            let p = Policy {
                bantime: Duration::from_secs(bantime),
                increment: increment.map(|rnd| BanIncrement {
                    rndtime: rnd.map(Duration::from_secs),
                    rnd_seed: rnd.map(|_| 7),
                    purge_age: Duration::from_secs(purge_age),
                    ..BanIncrement::default()
                }),
                allowlist: Allowlist::parse(&spec.join(" ")).unwrap(),
                ipv6_prefix: prefix,
                simulate,
            };
            let make = || {
                Decider::new(p.clone())
                    .with_hash_seed(seed)
                    .with_stored_reasons(false)
                    .with_rule_bantimes(vec![None, rule_bantime.map(Duration::from_secs)])
            };
            let (mut loud, mut quiet) = (make(), make());
            let mut now = 0i64;
            for (k, dt, expire, back, rule1) in ops {
                now += dt;
                let key = key_of(k);
                match expire {
                    0 => {}
                    1 => prop_assert_eq!(loud.expire(secs(now)), quiet.expire(secs(now))),
                    _ => {
                        loud.expire_quiet(secs(now));
                        quiet.expire_quiet(secs(now));
                    }
                }
                let mut t = trig(&key, now - back);
                t.rule = RuleId(u32::from(rule1));
                let d = loud.decide(&t, secs(now));
                prop_assert_eq!(quiet.decide_quiet(&t, secs(now)), d.outcome());
                prop_assert_eq!(loud.bans(secs(now)), quiet.bans(secs(now)));
                prop_assert_eq!(loud.explain(&key, secs(now)), quiet.explain(&key, secs(now)));
                prop_assert_eq!(loud.active_bans(), quiet.active_bans());
            }
            now += 10_000_000;
            prop_assert_eq!(loud.expire(secs(now)), quiet.expire(secs(now)));
            for k in 0..KEYS.len() + 2 {
                prop_assert_eq!(loud.explain(&key_of(k), secs(now)), quiet.explain(&key_of(k), secs(now)));
            }
        }
    }
}

#[test]
fn stored_reasons_can_be_turned_off() {
    let k = ip("192.0.2.1");
    let mut d = Decider::new(policy(600));
    d.decide(&trig(&k, 0), secs(0));
    let r = d.explain(&k, secs(1)).ban.unwrap().reason.unwrap();
    assert_eq!(r.evidence, vec![1, 2, 3]);
    let mut d = Decider::new(policy(600)).with_stored_reasons(false);
    let dec = d.decide(&trig(&k, 0), secs(0));
    assert_eq!(dec.reason().count, 3); // the decision still explains itself
    assert!(d.explain(&k, secs(1)).ban.unwrap().reason.is_none());
}

// ---- restore at start ------------------------------------------------------

/// What a restarted decider gets from the store: the history and the active
/// bans of `d` at `now` (as `Store::ban_history` / `active_decisions` give them).
fn restarted(d: &Decider, p: Policy, now: Timestamp) -> Decider {
    let mut c = Decider::new(p);
    let n = d.history().len();
    assert_eq!(c.restore_history(d.history()), n);
    let bans: Vec<RestoredBan> = d
        .bans(now)
        .into_iter()
        .map(|b| RestoredBan {
            key: b.key,
            prefix: b.prefix,
            rule: RuleId(0),
            since: b.since,
            until: b.until,
            ban_count: b.ban_count,
            simulated: b.simulated,
        })
        .collect();
    let st = c.restore_bans(bans.clone(), now);
    assert_eq!(st, RestoredBans { active: bans.len(), merged: 0, expired: 0 });
    c
}

#[test]
fn restored_ban_is_already_banned_and_increment_counts_previous_bans() {
    let p = Policy { increment: Some(BanIncrement::default()), ..policy(600) };
    let a = ip("192.0.2.7");
    let mut d = Decider::new(p.clone());
    assert_eq!(ban_duration(&d.decide(&trig(&a, 0), secs(0))), Some(Duration::from_secs(600)));
    // Restart while banned: still banned, and a trigger prolongs it.
    let mut c = restarted(&d, p.clone(), secs(100));
    assert_eq!(c.active_bans(), 1);
    match c.decide(&trig(&a, 200), secs(200)) {
        Decision::AlreadyBanned { until, prolonged, .. } => {
            assert_eq!((until, prolonged), (Some(secs(800)), true));
        }
        other => panic!("expected already banned, got {other:?}"),
    }
    let u = c.expire(secs(801));
    assert_eq!(u.len(), 1);
    assert_eq!((u[0].since, u[0].until, u[0].ban_count), (secs(0), secs(800), 1));
    // Restart after the unban: the second ban is incremented (2 × 600 s), the
    // observer adds the bad-address bonus, as without a restart.
    let mut c = restarted(&c, p.clone(), secs(900));
    assert_eq!(c.active_bans(), 0);
    assert_eq!(c.bad_ip_extra_retries(&a, secs(900), 5), 1);
    match c.decide(&trig(&a, 1000), secs(1000)) {
        Decision::Ban { ban_count, duration, .. } => {
            assert_eq!((ban_count, duration), (2, Some(Duration::from_secs(1200))));
        }
        other => panic!("expected a ban, got {other:?}"),
    }
    // Without the history the same trigger would be a first ban.
    let mut fresh = Decider::new(p);
    assert_eq!(ban_duration(&fresh.decide(&trig(&a, 1000), secs(1000))), Some(Duration::from_secs(600)));
}

#[test]
fn restore_merges_prolongations_and_skips_expired_bans() {
    let mut d = Decider::new(Policy { ipv6_prefix: Some(64), ..policy(600) });
    let ban = |key: &str, prefix, since, until: Option<i64>| RestoredBan {
        key: ip(key),
        prefix,
        rule: RuleId(3),
        since: secs(since),
        until: until.map(secs),
        ban_count: 0,
        simulated: false,
    };
    let st = d.restore_bans(
        [
            ban("192.0.2.1", None, 0, Some(600)),
            ban("::ffff:192.0.2.1", None, 300, Some(900)), // a prolongation, mapped spelling
            ban("192.0.2.2", None, 0, Some(50)),           // over at 100
            ban("2001:db8::", Some(64), 0, None),          // permanent network ban
        ],
        secs(100),
    );
    assert_eq!(st, RestoredBans { active: 2, merged: 1, expired: 1 });
    let info = d.explain(&ip("192.0.2.1"), secs(100)).ban.unwrap();
    assert_eq!((info.since, info.until, info.ban_count), (secs(0), Some(secs(900)), 1));
    // An address inside the banned /64 is already banned.
    let t = trig(&ip("2001:db8::42"), 100);
    assert!(matches!(d.decide(&t, secs(100)), Decision::AlreadyBanned { until: None, .. }));
    let u = d.expire(secs(901));
    assert_eq!(u.len(), 1);
    assert_eq!((u[0].rule, u[0].until), (RuleId(3), secs(900)));
}

mod restore_prop {
    use super::*;
    use proptest::prelude::*;

    fn run(d: &mut Decider, ops: &[(usize, i64, i64)], t0: i64, out: &mut Vec<String>, unbans: &mut Vec<Unban>) -> i64 {
        let mut now = t0;
        for &(k, dt, back) in ops {
            now += dt;
            let key = ip(["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"][k]);
            unbans.extend(d.expire(secs(now)));
            let extra = d.bad_ip_extra_retries(&key, secs(now), 5);
            let dec = d.decide(&trig(&key, now - back), secs(now));
            out.push(format!("{extra} {}", serde_json::to_string(&dec).unwrap()));
        }
        now
    }

    proptest! {
        /// A decider restarted from its history and active bans (as the store
        /// gives them) decides, prolongs and unbans exactly like one that ran
        /// without interruption.
        #[test]
        fn restart_decides_like_an_uninterrupted_decider(
            increment in any::<bool>(),
            bantime in prop_oneof![Just(-1i64), 1i64..900],
            prefix in prop_oneof![Just(None), Just(Some(64u8))],
            ops in proptest::collection::vec((0usize..4, 0i64..400, 0i64..30), 1..60),
            split_at in 0.0f64..1.0,
        ) {
            let p = Policy {
                bantime: Duration::from_secs(bantime),
                increment: increment.then(|| BanIncrement { purge_age: Duration::from_secs(3000), ..BanIncrement::default() }),
                ipv6_prefix: prefix,
                ..Policy::default()
            };
            let split = ((ops.len() as f64) * split_at) as usize;
            let mut a = Decider::new(p.clone());
            let (mut want, mut want_unbans) = (Vec::new(), Vec::new());
            run(&mut a, &ops, 0, &mut want, &mut want_unbans);

            let mut b = Decider::new(p.clone());
            let (mut got, mut got_unbans) = (Vec::new(), Vec::new());
            let now = run(&mut b, &ops[..split], 0, &mut got, &mut got_unbans);
            // The daemon expires before it commits; then it is killed.
            got_unbans.extend(b.expire(secs(now)));
            let mut c = restarted(&b, p, secs(now));
            run(&mut c, &ops[split..], now, &mut got, &mut got_unbans);
            prop_assert_eq!(got, want);
            // Unbans with the same end come in ban order, which a restart
            // does not know (it restores in the store's order): compare them
            // ordered by end and key.
            let order = |u: &mut Vec<Unban>| u.sort_by(|x, y| (x.until, &x.key).cmp(&(y.until, &y.key)));
            order(&mut got_unbans);
            order(&mut want_unbans);
            prop_assert_eq!(got_unbans, want_unbans);
        }
    }
}

/// The queue-plus-heap of ban ends pops exactly what one heap pops: ends
/// mostly in time order (queue), now and then earlier ones (heap), pops
/// in between; `expire_quiet` leaves the decider as `expire` does.
#[test]
fn expiry_queue_pops_like_one_heap() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut q = ExpiryQueue::default();
    let mut h: BinaryHeap<Reverse<(i64, u64, Target)>> = BinaryHeap::new();
    let mut generation = 0u64;
    let mut until = 1_000i64;
    for _ in 0..20_000 {
        match next(10) {
            0..=5 => {
                generation += 1;
                let u = match next(4) {
                    0 => until - next(50) as i64,
                    1 => until,
                    _ => {
                        until += next(5) as i64;
                        until
                    }
                };
                let t = (ip(&format!("10.0.{}.{}", next(4), next(250))), None);
                q.push(u, generation, t.clone());
                h.push(Reverse((u, generation, t)));
            }
            _ => {
                assert_eq!(q.peek(), h.peek().map(|Reverse(e)| (e.0, e.1)));
                assert_eq!(q.pop(), h.pop().map(|Reverse(e)| e.2));
            }
        }
        assert_eq!(q.next_until, q.peek().map_or(i64::MAX, |p| p.0));
    }
    while let Some(Reverse(e)) = h.pop() {
        assert_eq!(q.peek(), Some((e.0, e.1)));
        assert_eq!(q.next_until, e.0);
        assert_eq!(q.pop(), Some(e.2));
    }
    assert_eq!(q.next_until, i64::MAX);
    assert_eq!(q.peek(), None);
    assert_eq!(q.pop(), None);
}

#[test]
fn expire_quiet_changes_what_expire_changes() {
    let mut a = Decider::new(Policy { bantime: Duration::from_secs(100), ..Policy::default() });
    let mut b = Decider::new(Policy { bantime: Duration::from_secs(100), ..Policy::default() });
    for i in 0..400i64 {
        let key = ip(&format!("10.1.{}.{}", i % 7, i % 13));
        let t = i * 10 - (i % 5) * 30;
        let now = secs(i * 10);
        assert_eq!(a.decide(&trig(&key, t), now), b.decide(&trig(&key, t), now));
        a.expire(now);
        b.expire_quiet(now);
        assert_eq!(a.active_bans(), b.active_bans(), "step {i}");
        assert_eq!(format!("{:?}", a.bans(now)), format!("{:?}", b.bans(now)), "step {i}");
    }
}

/// `decide_unexplained` decides exactly as `decide` (same outcome, same
/// state afterwards: active bans with their stored reasons, history), its
/// explanation only without steps and evidence; over allowlisted, mapped,
/// aggregated, repeated, prolonged, expired and incremented cases, with
/// stored reasons on and off.
#[test]
fn decide_unexplained_decides_as_decide() {
    let strip = |d: &Decision| {
        let mut d = d.clone();
        let r = match &mut d {
            Decision::Ban { reason, .. }
            | Decision::AlreadyBanned { reason, .. }
            | Decision::Allowlisted { reason, .. }
            | Decision::Expired { reason, .. } => reason,
        };
        r.steps.clear();
        r.evidence.clear();
        d
    };
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for store in [false, true] {
        let mut allowlist = Allowlist::default();
        allowlist.add("10.9.0.0/16").unwrap();
        allowlist.add("2001:db8:0:5::/64").unwrap();
        let policy = Policy {
            bantime: Duration::from_secs(100),
            increment: Some(BanIncrement::from_fail2ban(Some("1"), None, None, None, None).unwrap()),
            allowlist,
            ipv6_prefix: Some(64),
            ..Policy::default()
        };
        let mut a = Decider::new(policy.clone()).with_stored_reasons(store);
        let mut b = Decider::new(policy).with_stored_reasons(store);
        for i in 0..3000i64 {
            let key = match next(4) {
                0 => ip(&format!("10.9.1.{}", next(5))),
                1 => ip(&format!("::ffff:10.1.0.{}", next(5))),
                2 => ip(&format!("2001:db8:0:{}::{}", next(7), next(3) + 1)),
                _ => ip(&format!("10.1.0.{}", next(9))),
            };
            let now = i * 10;
            let t = now - next(400) as i64;
            let want = a.decide(&trig(&key, t), secs(now));
            let got = b.decide_unexplained(&trig(&key, t), secs(now));
            if store {
                assert_eq!(want, got, "step {i}: stored reasons on, full explanation");
            } else {
                assert_eq!(strip(&want), got, "step {i}");
            }
            a.expire(secs(now));
            b.expire_quiet(secs(now));
            assert_eq!(format!("{:?}", a.bans(secs(now))), format!("{:?}", b.bans(secs(now))), "step {i}");
            assert_eq!(a.history().len(), b.history().len(), "step {i}");
        }
    }
}

// ---- keyed hashing (HashDoS) ------------------------------------------------

#[test]
fn ban_maps_hash_with_the_callers_seed() {
    use std::hash::BuildHasher;
    let t: Target = (ip("2001:db8::1"), Some(64));
    let a = Decider::new(policy(100)).with_hash_seed(1);
    let b = Decider::new(policy(100)).with_hash_seed(2);
    let a2 = Decider::new(policy(100)).with_hash_seed(1);
    assert_eq!(a.bans.hasher().hash_one(&t), a2.bans.hasher().hash_one(&t), "same seed, same hash");
    assert_ne!(a.bans.hasher().hash_one(&t), b.bans.hasher().hash_one(&t), "another seed, another hash");
    assert_ne!(a.history.hasher().hash_one(&t), b.history.hasher().hash_one(&t));
    assert_eq!(a.history.hasher().hash_one(&t), key_hasher(1).hash_one(&t));
    // Reseeding keeps what is there.
    let mut c = Decider::new(policy(100));
    c.decide(&trig(&ip("192.0.2.1"), 10), secs(10));
    let c = c.with_hash_seed(7);
    assert_eq!(c.bans(secs(10)).len(), 1);
    assert_eq!(c.history().len(), 1);
    assert_eq!(c.bans.hasher().hash_one(&t), key_hasher(7).hash_one(&t));
}

/// The same triggers through deciders with different hash seeds: the same
/// decisions (ban times with `rndtime` included: the salt is keyed by
/// `rnd_seed`, not the hash seed), unbans, ban list and history, in the same
/// order.
#[test]
fn outputs_do_not_depend_on_the_hash_seed() {
    let inc = BanIncrement {
        rndtime: Some(Duration::from_secs(60)),
        rnd_seed: Some(11),
        ..BanIncrement::from_fail2ban(Some("1"), None, None, Some("100000"), None).unwrap()
    };
    let policy =
        Policy { bantime: Duration::from_secs(100), increment: Some(inc), ipv6_prefix: Some(64), ..Policy::default() };
    let run = |seed: u64| {
        let mut d = Decider::new(policy.clone()).with_hash_seed(seed);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut out = Vec::new();
        for i in 0..3000i64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let key = match rng % 3 {
                0 => ip(&format!("2001:db8:{:x}::{:x}", rng % 11, (rng >> 8) % 5)),
                1 => ip(&format!("::ffff:10.1.0.{}", (rng >> 8) % 50)),
                _ => ip(&format!("10.1.{}.{}", (rng >> 8) % 3, (rng >> 16) % 40)),
            };
            let now = secs(i * 7);
            out.push(format!("{:?}", d.expire(now)));
            out.push(format!("{:?}", d.decide(&trig(&key, i * 7 - (rng >> 24) as i64 % 50), now)));
            if i % 100 == 0 {
                out.push(format!("{:?}", d.bans(now)));
                out.push(format!("{:?}", d.history()));
            }
        }
        out
    };
    let (a, b) = (run(1), run(0x0123_4567_89ab_cdef));
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "output {i}");
    }
    assert!(a.iter().any(|s| s.contains("random: Duration(") && !s.contains("random: Duration(0)")), "rndtime used");
}
