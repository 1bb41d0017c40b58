//! One case per template kind (default list and custom `datepattern`s).
//!
//! How the expected values were obtained: each (pattern, line) pair was run
//! through fail2ban 1.0.2's own `DateDetector` with
//! `tests/fail2ban_dates.py` (TZ=`CET-01CEST-02,M3.5.0,M10.5.0`,
//! `MyTime.setTime(1124013600)` and `setAlternateNow(1124013600)`, as
//! fail2ban's `tests/utils.py` sets up), one fresh detector per line, and the
//! printed (byte start, byte end, time) were pasted here. `None` for the time
//! means fail2ban cuts the span out but gets no date (invalid date, unknown
//! zone, empty span). `test_cases_still_match_fail2ban` re-runs them live
//! when fail2ban is installed.

mod common;

use std::sync::Arc;

use stadtwache_core::Timestamp;
use stadtwache_datetime::{DateDetector, DateMatch, TimeContext};

#[allow(non_snake_case)]
fn S(s: i64) -> Timestamp {
    Timestamp::from_secs(s)
}

#[allow(non_snake_case)]
fn F(s: f64) -> Timestamp {
    Timestamp::from_secs_f64(s)
}

type Case = (Option<&'static str>, &'static str, Option<(usize, usize, Option<Timestamp>)>);

/// The year fail2ban's `%ExY` was built around when the values were taken.
const YEAR: i64 = 2026;

fn cases() -> Vec<Case> {
    vec![
        (None, "Jan 23 21:59:59 host sshd[1]: x", Some((0, 15, Some(S(1106513999))))),
        (None, "Sun Jan 23 21:59:59.011 2005 x", Some((0, 28, Some(S(1106513999))))),
        (None, "Sun Jan 23 2005 21:59:59.011 x", Some((0, 28, Some(S(1106513999))))),
        (None, "Jan  3 01:02:03 host x", Some((0, 15, Some(S(1104710523))))),
        (None, "2005-01-23T21:59:59.981746+01:00 x", Some((0, 32, Some(S(1106513999))))),
        (None, "2005-01-23T21:59:59Z x", Some((0, 20, Some(S(1106517599))))),
        (None, "2005-01-23 21:59:59 x", Some((0, 19, Some(S(1106513999))))),
        (None, "2005/01/23 21:59:59 -0500 x", Some((0, 25, Some(S(1106535599))))),
        (None, "2005.01.23  8:59:59 x", Some((0, 19, Some(S(1106467199))))),
        (None, "host 2005-01-23 21:59:59,123 UTC x", Some((5, 32, Some(S(1106517599))))),
        (None, "23/01/2005 21:59:59 x", Some((0, 19, Some(S(1106513999))))),
        (None, "23/01/05 21:59:59 x", Some((0, 17, Some(S(1106513999))))),
        (None, "17-07-2008 17:23:25 x", Some((0, 19, Some(S(1216308205))))),
        (None, "1.2.3.4 - - [31/Oct/2006:09:22:55 -0000] \"GET / HTTP/1.1\"", Some((13, 39, Some(S(1162286575))))),
        (None, "[31/Oct/2006:09:22:55 +0200] x", Some((1, 27, Some(S(1162279375))))),
        (None, "26-Jul-2007 15:20:52.252 x", Some((0, 24, Some(S(1185456052))))),
        (None, "26-Jul-2007 15:20:52 +0200 x", Some((0, 26, Some(S(1185456052))))),
        (None, "05/20/2008:01:57:39 x", Some((0, 19, Some(S(1211241459))))),
        (None, "01-27-2012 16:22:44.252 x", Some((0, 23, Some(S(1327677764))))),
        (None, "1138457732 x", Some((0, 10, Some(S(1138457732))))),
        (None, "[1138457732] x", Some((1, 11, Some(S(1138457732))))),
        (None, "1138457732.123456 x", Some((0, 17, Some(F(1138457732.123456))))),
        (None, "type=USER_AUTH msg=audit(1138457732.123:123): x", Some((25, 39, Some(F(1138457732.123))))),
        (None, "21:59:59 x", Some((0, 8, Some(S(1123963199))))),
        (None, "13:00:00 x", Some((0, 8, Some(S(1123930800))))),
        (None, "<09/16/08@05:03:30> x", Some((0, 19, Some(S(1221534210))))),
        (None, "130322 11:46:11 x", Some((0, 15, Some(S(1363949171))))),
        (None, "Apr 27, 2013 2:33:06 PM x", Some((0, 23, Some(S(1367065986))))),
        (None, "Apr-27-13 02:33:06 x", Some((0, 18, Some(S(1367022786))))),
        (None, "20050123T215959 x", Some((0, 15, Some(S(1106513999))))),
        (None, "20050123 215959+0100 x", Some((0, 20, Some(S(1106513999))))),
        (None, "PDT Apr 16 21:05:29 x", Some((0, 19, Some(S(1113710729))))),
        (None, "+00:00 Jan 23 21:59:59.011 2005 x", Some((0, 31, Some(S(1106517599))))),
        (None, "@4000000044c65bbb0a3ae2bc x", Some((0, 25, Some(S(1153850299))))),
        (None, "Dec 31 23:59:59 x", Some((0, 15, Some(S(1104533999))))),
        (None, "Aug 15 10:00:00 x", Some((0, 15, Some(S(1124092800))))),
        (None, "Aug 15 13:00:00 x", Some((0, 15, Some(S(1092567600))))),
        (None, "Feb 30 10:00:00 x", Some((0, 15, None))),
        (None, "Feb 29 10:00:00 x", Some((0, 15, None))),
        (None, "Jan 23 24:59:59 x", Some((0, 15, None))),
        (None, "Mar 27 02:30:00 x", Some((0, 15, Some(S(1111887000))))),
        (None, "Oct 30 02:30:00 x", Some((0, 15, Some(S(1099096200))))),
        (None, "Oct 30 03:30:00 x", Some((0, 15, Some(S(1099099800))))),
        (None, "no date here", None),
        (None, "", None),
        (Some("^%m/%d/%Y %H:%M:%S"), "01/23/2005 21:59:59 x", Some((0, 19, Some(S(1106513999))))),
        (Some("^L %d/%m/%Y - %H:%M:%S"), "L 01/01/2014 - 01:25:17: Bad Rcon", Some((0, 23, Some(S(1388535917))))),
        (
            Some("%d/%b[^/]*/%Y:%H:%M:%S %z"),
            "1.2.3.4 - - [02/sept./2015:00:11:31 +0200] x",
            Some((13, 41, Some(S(1441145491)))),
        ),
        (
            Some("^[^\\[]*\\[({DATE})"),
            "1.2.3.4 - - [31/Oct/2006:09:22:55 -0000] x",
            Some((13, 39, Some(S(1162286575)))),
        ),
        (Some("{^LN-BEG}"), "Jan 23 21:59:59 host x", Some((0, 15, Some(S(1106513999))))),
        (Some("{^LN-BEG}"), "host Jan 23 21:59:59 x", Some((0, 20, None))),
        (Some("^%b %d, %ExY %I:%M:%S %p"), "Apr 27, 2013 12:33:06 AM x", Some((0, 24, Some(S(1367015586))))),
        (Some("^%Y %j %H:%M:%S"), "2005 023 21:59:59 x", Some((0, 17, Some(S(1106513999))))),
        (Some("^%Y %U %a %H:%M:%S"), "2005 03 Sun 21:59:59 x", Some((0, 20, Some(S(1105909199))))),
        (Some("^%Y %W %w %H:%M:%S"), "2005 03 1 21:59:59 x", Some((0, 18, Some(S(1105995599))))),
        (Some("^%d.%m.%Y %H:%M:%S %ExZ"), "23.01.2005 21:59:59 EST x", Some((0, 23, Some(S(1106535599))))),
        (Some("^%d.%m.%Y %H:%M:%S %Exz"), "23.01.2005 21:59:59 CET+0100 x", Some((0, 28, Some(S(1106510399))))),
        (Some("^%y%m%d %H%M%S"), "050123 215959 x", Some((0, 13, Some(S(1106513999))))),
        (Some("^%B %d %Y %H:%M:%S"), "January 23 2005 21:59:59 x", Some((0, 24, Some(S(1106513999))))),
        (Some("^%A %d %b %Y %X"), "Sunday 23 Jan 2005 21:59:59 x", Some((0, 27, Some(S(1106513999))))),
        (Some("^%c"), "Sun Jan 23 21:59:59 2005 x", Some((0, 24, Some(S(1106513999))))),
        (Some("^%x %H:%M"), "01/23/05 21:59 x", Some((0, 14, Some(S(1106513940))))),
        (Some("%H:%M:%S %%"), "x 21:59:59 % y", Some((2, 12, Some(S(1123963199))))),
        (Some("{NONE}"), "Jan 23 21:59:59 x", Some((0, 0, None))),
        (Some("EPOCH"), "x 1138457732 y", None),
        (Some("EPOCH"), "1138457732 y", Some((0, 10, Some(S(1138457732))))),
        (Some("^EPOCH"), "1138457732 y", Some((0, 10, Some(S(1138457732))))),
        (Some("{^LN-BEG}Epoch"), "[1138457732] y", Some((1, 11, Some(S(1138457732))))),
        (Some("LEPOCH"), "1138457732123 y", Some((0, 13, Some(F(1138457732.123))))),
        (Some("LEPOCH"), "1138457732123456 y", Some((0, 16, Some(F(1138457732.123456))))),
        (Some("LEPOCH"), "1138457732123.456 y", Some((0, 17, Some(F(1138457732.123456))))),
        (Some("^\\[{EPOCH}\\]"), "[1138457732.5] y", None),
        (Some("^{LEPOCH}"), "1138457732123 y", Some((0, 13, Some(F(1138457732.123))))),
        (Some("TAI64N"), "x @4000000044c65bbb0a3ae2bc y", Some((2, 27, Some(S(1153850299))))),
        (Some("{^LN-BEG}TAI64N"), "@4000000044c65bbb0a3ae2bc y", Some((0, 25, Some(S(1153850299))))),
        (Some("^%Y-%m-%d %H:%M:%S\n^%d/%m/%Y %H:%M:%S"), "23/01/2005 21:59:59 x", Some((0, 19, Some(S(1106513999))))),
        (Some("^%Y-%m-%d %H:%M:%S\n^%d/%m/%Y %H:%M:%S"), "2005-01-23 21:59:59 x", Some((0, 19, Some(S(1106513999))))),
        (Some("{^LN-BEG}%H:%M:%S"), "21:59:59 x", Some((0, 8, Some(S(1123963199))))),
        (
            Some("^(?:%Y-)?%m-%d[ T]%H:%M:%S(?:\\.%f)?"),
            "08-03 07:56:53.026292 [WARN]",
            Some((0, 21, Some(S(1123048613)))),
        ),
        (Some("^%Y:%m:%d-%H:%M:%S"), "2014:07:02-00:17:45: x", Some((0, 19, Some(S(1404253065))))),
        (Some("^<%d %b %Y %H:%M:%S>"), "<23 jan 2005 21:59:59> x", Some((0, 22, Some(S(1106513999))))),
        (Some("{UNB}%H:%M:%S"), "a21:59:59b", Some((1, 9, Some(S(1123963199))))),
        (Some("%H:%M:%S"), "a21:59:59b", None),
    ]
}

fn detector(pattern: Option<&str>) -> Arc<DateDetector> {
    Arc::new(match pattern {
        None => DateDetector::fail2ban_default_for_year(YEAR),
        Some(p) => DateDetector::from_datepattern_for_year(p, YEAR).expect("pattern compiles"),
    })
}

fn ours(pattern: Option<&str>, line: &str) -> Option<(usize, usize, Option<Timestamp>)> {
    let ctx = TimeContext::fail2ban_test();
    let mut sc = detector(pattern).scanner();
    sc.find_match(line, &ctx).map(|DateMatch { start, end, time }| (start, end, time))
}

#[test]
fn templates_match_fail2ban_values() {
    let mut bad = Vec::new();
    for (pattern, line, expected) in cases() {
        let got = ours(pattern, line);
        if got != expected {
            bad.push(format!("{pattern:?} {line:?}: ours {got:?}, fail2ban {expected:?}"));
        }
    }
    assert!(bad.is_empty(), "{} mismatches:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn find_drops_spans_without_time() {
    let ctx = TimeContext::fail2ban_test();
    let mut sc = detector(None).scanner();
    assert_eq!(sc.find("Feb 30 10:00:00 x", &ctx), None);
    let hit = sc.find("Jan 23 21:59:59 x", &ctx).expect("date");
    assert_eq!((hit.start, hit.end, hit.time), (0, 15, S(1_106_513_999)));
}

#[test]
fn test_cases_still_match_fail2ban() {
    if common::skip_unless_available("templates live check") {
        return;
    }
    // the table above must still be what fail2ban says (guards the pasting)
    let files =
        cases().iter().map(|(p, l, _)| serde_json::json!({"name": "case", "lines": [l], "pattern": p})).collect();
    let r = common::run_reference_files(1_124_013_600, "CET-01CEST-02,M3.5.0,M10.5.0", files);
    for ((pattern, line, expected), r) in cases().into_iter().zip(r) {
        let got = match &r[0] {
            common::Ref::None => None,
            common::Ref::Hit(s, e, t) => Some((*s, *e, *t)),
            common::Ref::Error => panic!("fail2ban raised for {pattern:?} {line:?}"),
        };
        assert_eq!(got, expected, "fail2ban now says otherwise for {pattern:?} {line:?}");
    }
}
