//! Bad input never panics; bad patterns are errors; `logtimezone` parsing.

use std::sync::Arc;

use stadtwache_core::Timestamp;
use stadtwache_datetime::{DateDetector, DateError, TimeContext, TimeZone, parse_logtimezone};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn nasty_lines() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        " ",
        "\u{0}",
        "9999999999999999999999999999 x",
        "99999999999 x",
        "[99999999999.999999] x",
        "Feb 30 10:00:00 x",
        "Feb 29 10:00:00 2100 x",
        "Jan 23 29:99:99 x",
        "9999-12-31 23:59:59 -1959 x",
        "2000-01-01 00:00:00 +1959 x",
        "0000-00-00 00:00:00",
        "@ffffffffffffffffffffffff x",
        "Dec 31 23:59:59.999999 2029 x",
        "é Jan 23 21:59:59 x",
        "Jan 23 21:59:59é x",
        "\u{17f}ep 23 21:59:59 x",
        "٣٣٣٣-٠١-٢٣ ٢١:٥٩:٥٩",
        "audit(1138457732.123:1) audit(99999999999.9:2)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("Jan 23 21:59:59 ".repeat(5000));
    v.push("2".repeat(100_000));
    let mut r = Rng(42);
    let alphabet: Vec<char> = "0123456789 :-/.,TZ+[]@abcJanFebSunUTCé٣\u{2003}\t".chars().collect();
    for _ in 0..3000 {
        let n = (r.next() % 60) as usize;
        v.push((0..n).map(|_| alphabet[(r.next() % alphabet.len() as u64) as usize]).collect());
    }
    v
}

fn contexts() -> Vec<TimeContext> {
    vec![
        TimeContext::fail2ban_test(),
        TimeContext { now: Timestamp(i64::MAX), tz: TimeZone::UTC },
        TimeContext { now: Timestamp(i64::MIN), tz: TimeZone::UTC },
        TimeContext { now: Timestamp::from_secs(253_402_300_000), tz: parse_logtimezone("UTC-1959").unwrap() },
    ]
}

#[test]
fn no_panics_on_bad_lines() {
    let patterns = [
        None,
        Some("^%m/%d/%Y %H:%M:%S"),
        Some("%j %U %W %a %A %B %w %y %I %p"),
        Some("LEPOCH"),
        Some("{^LN-BEG}TAI64N"),
        Some("^[^\\[]*\\[({DATE})"),
        Some("{NONE}"),
        Some("(?P<d>\\d+)-(?P<m>\\d+)-(?P<Y>\\d+) (?P<H>\\d+)"),
    ];
    let lines = nasty_lines();
    let mut found = 0;
    for p in patterns {
        let det = Arc::new(match p {
            None => DateDetector::fail2ban_default_for_year(2026),
            Some(p) => DateDetector::from_datepattern_for_year(p, 2026).unwrap(),
        });
        for ctx in contexts() {
            let mut sc = det.scanner();
            for l in &lines {
                if let Some(m) = sc.find_match(l, &ctx) {
                    assert!(m.start <= m.end && m.end <= l.len());
                    assert!(l.is_char_boundary(m.start) && l.is_char_boundary(m.end));
                    found += 1;
                }
            }
        }
    }
    assert!(found > 1000, "the nasty lines should still contain dates: {found}");
}

#[test]
fn invalid_dates_have_no_time() {
    let det = Arc::new(DateDetector::fail2ban_default_for_year(2026));
    let ctx = TimeContext::fail2ban_test();
    for l in ["Feb 30 10:00:00 x", "Jan 23 24:59:59 x", "Feb 29 10:00:00 x"] {
        let mut sc = det.scanner();
        assert_eq!(sc.find(l, &ctx), None, "{l}");
        let m = sc.find_match(l, &ctx).expect("span still cut");
        assert_eq!((m.start, m.end, m.time), (0, 15, None));
    }
}

#[test]
fn bad_patterns_are_errors() {
    for p in ["%q", "%Exb %H", "%s", "%", "(%H:%M", "%d %d", "^%H:%M:%S\n^%H:%M:%S"] {
        let e = DateDetector::from_datepattern(p).expect_err(p);
        assert!(matches!(e, DateError::InvalidPattern { .. }), "{p}: {e}");
        assert!(e.to_string().starts_with("D001"), "{e}");
    }
}

#[test]
fn logtimezone_like_fail2ban() {
    // expected minutes from fail2ban's validateTimeZone (run with python3)
    let ok = [
        ("UTC", 0),
        ("UTC+0200", 120),
        ("UTC-05", -300),
        ("GMT+01:30", 90),
        ("CET", 60),
        ("+0100", 60),
        ("-0330", -210),
        ("Z", 0),
        ("", 0),
        ("CEST", 120),
        ("UTC+0260", 180),
        ("A+01", 120),
    ];
    let at = jiff::Timestamp::from_second(1_124_013_600).unwrap();
    for (z, minutes) in ok {
        let tz = parse_logtimezone(z).unwrap_or_else(|e| panic!("{z}: {e}"));
        assert_eq!(tz.to_offset(at).seconds(), minutes * 60, "{z}");
    }
    for z in ["EST5EDT", "UTC+2", "utc", "Europe/Berlin", "ABCD"] {
        let e = parse_logtimezone(z).expect_err(z);
        assert!(e.to_string().starts_with("D002"), "{e}");
    }
}

#[test]
fn logtimezone_applies_to_dates_without_zone() {
    let det = Arc::new(DateDetector::fail2ban_default_for_year(2026));
    let ctx = TimeContext { now: Timestamp::from_secs(1_124_013_600), tz: parse_logtimezone("UTC+0200").unwrap() };
    let mut sc = det.scanner();
    // 2005-01-23 21:59:59 at +02:00, and an explicit zone still wins
    let h = sc.find("2005-01-23 21:59:59 x", &ctx).unwrap();
    assert_eq!(h.time, Timestamp::from_secs(1_106_510_399));
    let h = sc.find("2005-01-23 21:59:59 +0000 x", &ctx).unwrap();
    assert_eq!(h.time, Timestamp::from_secs(1_106_517_599));
}

#[test]
fn detector_is_shareable() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<DateDetector>();
    send::<stadtwache_datetime::DateScanner>();
}
