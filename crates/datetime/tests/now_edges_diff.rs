//! Year and day completion around new year and DST changes, against
//! fail2ban itself (live; SKIPPED when fail2ban is unavailable).

mod common;

use std::sync::Arc;

use common::Ref;
use stadtwache_core::Timestamp;
use stadtwache_datetime::{DateDetector, TimeContext, TimeZone};

const TZ: &str = "CET-01CEST-02,M3.5.0,M10.5.0";

#[test]
fn completion_edges_agree() {
    if common::skip_unless_available("now_edges_diff") {
        return;
    }
    let lines: Vec<String> = [
        "Dec 31 23:59:59 host x",
        "Jan  1 00:00:01 host x",
        "Jan  1 23:30:00 host x",
        "Jan  2 00:30:00 host x",
        "Feb 29 12:00:00 host x",
        "Mar 27 02:30:00 host x",
        "Oct 30 02:30:00 host x",
        "Oct 30 01:30:00 host x",
        "Oct 29 02:30:00 host x",
        "23:59:59 host x",
        "00:00:01 host x",
        "02:30:00 host x",
        "01:30:00 host x",
        "Dec 31 23:59:59 +0200 host x",
        "Jan  1 00:00:01 -0500 x",
        "Sun Jan  1 00:00:01 2006 x",
        "2005-12-31 23:59:59 x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // around local midnights, new year and the DST changes of the test zone
    // (its POSIX rule switches at 02:00 local time: gap 02:00-03:00 in March,
    // fold 01:00-02:00 in October)
    let nows = [
        1_136_070_000, // 2006-01-01 00:00 CET
        1_136_073_600, // 2006-01-01 01:00 CET
        1_136_075_400, // 2006-01-01 01:30 CET
        1_136_156_400, // 2006-01-02 00:00 CET
        1_111_885_200, // 2005-03-27 03:00 CEST (just after the gap)
        1_130_632_200, // 2005-10-30 01:30 CET (second pass of the fold)
        1_078_052_400, // 2004-02-29 12:00 CET (leap day)
        1_109_631_600, // 2005-03-01 00:00 CET
    ];
    let tz = TimeZone::posix(TZ).unwrap();
    let det = Arc::new(DateDetector::fail2ban_default());
    let (mut agree, mut differ) = (0, 0);
    let mut shown = Vec::new();
    for now in nows {
        // one stream per line, so each line is searched from scratch
        let files: Vec<_> = lines.iter().map(|l| serde_json::json!({"name": "x", "lines": [l]})).collect();
        // glibc's mktime resolves a DST fold with the offset of its previous
        // result; our fresh scanner starts from glibc's initial state (0).
        // For this zone's fold (01:00-02:00 local, switch at 00:00 UTC) a
        // previous winter result (+01:00) leads to the same choice as 0, so
        // fail2ban is primed with one before each line.
        let reference = common::run_reference_req(serde_json::json!({
            "now": now,
            "tz": TZ,
            "files": files,
            "prime_mktime": [2005, 12, 1, 12, 0, 0],
        }));
        let ctx = TimeContext { now: Timestamp::from_secs(now), tz: tz.clone() };
        for (line, r) in lines.iter().zip(&reference) {
            let ours = match det.scanner().find_match(line, &ctx) {
                None => Ref::None,
                Some(m) => Ref::Hit(m.start, m.end, m.time),
            };
            if ours == r[0] {
                agree += 1;
            } else {
                differ += 1;
                shown.push(format!("now={now} {line:?}: ours {ours:?}, fail2ban {:?}", r[0]));
            }
        }
    }
    eprintln!("now edges: {agree} agree, {differ} differ");
    assert!(shown.is_empty(), "{}", shown.join("\n"));
    assert_eq!(agree, lines.len() * nows.len());
}
