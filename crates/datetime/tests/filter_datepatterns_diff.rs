//! Differential test of custom `datepattern`s: for each filter in
//! `/etc/fail2ban/filter.d` with a literal `datepattern` and a sample log of
//! the same name in fail2ban's test files, run that log through our detector
//! built from the pattern and through fail2ban's (same zone and "now" as
//! `fail2ban_diff.rs`).

mod common;

use std::path::Path;
use std::sync::Arc;

use common::Ref;
use serde_json::json;
use stadtwache_datetime::{DateDetector, TimeContext};

const FILTER_D: &str = "/etc/fail2ban/filter.d";

/// The first `datepattern = ...` line, with `%%` as the config loader turns
/// it (skipping ones that need interpolation).
fn datepattern(conf: &str) -> Option<String> {
    let line = conf.lines().find(|l| l.trim_start().starts_with("datepattern") && l.contains('='))?;
    let v = line.split_once('=')?.1.trim();
    if v.contains("%(") || v.contains("<L_") || v.contains("<lt_") {
        return None;
    }
    Some(v.replace("%%", "%"))
}

#[test]
fn filter_datepatterns_agree() {
    if common::skip_unless_available("filter_datepatterns_diff") {
        return;
    }
    if !Path::new(FILTER_D).is_dir() {
        if std::env::var("STADTWACHE_REQUIRE_FAIL2BAN").as_deref() == Ok("1") {
            panic!("{FILTER_D} missing");
        }
        eprintln!("SKIPPED: filter_datepatterns_diff: {FILTER_D} missing");
        return;
    }
    let mut cases = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(FILTER_D).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for conf in entries {
        let Some(name) = conf.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".conf")) else {
            continue;
        };
        let log = Path::new(common::F2B_LOGS).join(name);
        let (Ok(text), true) = (std::fs::read_to_string(&conf), log.is_file()) else {
            continue;
        };
        let Some(pattern) = datepattern(&text) else {
            continue;
        };
        let bytes = std::fs::read(&log).unwrap();
        let lines: Vec<String> = String::from_utf8_lossy(&bytes)
            .split('\n')
            .map(|l| l.trim_end_matches('\r').to_string())
            .filter(|l| !l.starts_with('#'))
            .collect();
        cases.push((name.to_string(), pattern, lines));
    }
    assert!(cases.len() >= 20, "expected fail2ban's filters with datepatterns");
    let files = cases.iter().map(|(n, p, l)| json!({"name": n, "lines": l, "pattern": p})).collect();
    let reference = common::run_reference_files(1_124_013_600, "CET-01CEST-02,M3.5.0,M10.5.0", files);
    let ctx = TimeContext::fail2ban_test();
    let (mut agree, mut differ, mut timed) = (0usize, 0usize, 0usize);
    let mut shown = Vec::new();
    for ((name, pattern, lines), refs) in cases.iter().zip(&reference) {
        let det = Arc::new(DateDetector::from_datepattern(pattern).unwrap_or_else(|e| panic!("{name}: {e}")));
        let mut sc = det.scanner();
        for (line, r) in lines.iter().zip(refs) {
            let ours = match sc.find_match(line, &ctx) {
                None => Ref::None,
                Some(m) => Ref::Hit(m.start, m.end, m.time),
            };
            if &ours == r {
                agree += 1;
                timed += usize::from(matches!(ours, Ref::Hit(_, _, Some(_))));
            } else {
                differ += 1;
                if shown.len() < 30 {
                    shown.push(format!("{name} [{pattern}]: {line:?}\n    ours {ours:?}\n    f2b  {r:?}"));
                }
            }
        }
    }
    eprintln!(
        "datepattern diff: {} filters, {agree} agree, {differ} differ ({timed} agreeing lines with a date)",
        cases.len()
    );
    for s in &shown {
        eprintln!("{s}");
    }
    assert!(timed > 150, "too few dated lines");
    assert_eq!(differ, 0, "lines where we differ from fail2ban");
}
