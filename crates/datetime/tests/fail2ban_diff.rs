//! Differential test against fail2ban 1.0.2's own `DateDetector`.
//!
//! Every line (except `#` comments) of every file under fail2ban's
//! `tests/files/logs` goes through our default detector and through
//! fail2ban's (driven by `tests/fail2ban_dates.py` with the test zone
//! `CET-01CEST-02,M3.5.0,M10.5.0` and now = 1124013600, one fresh stream per
//! file); span (byte offsets of fail2ban's group 1) and time must agree.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::Ref;
use stadtwache_datetime::{DateDetector, TimeContext};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn fail2ban_sample_logs_agree() {
    if common::skip_unless_available("fail2ban_diff") {
        return;
    }
    let mut paths = Vec::new();
    collect(Path::new(common::F2B_LOGS), &mut paths);
    assert!(paths.len() > 50, "expected fail2ban's sample logs");
    let files: Vec<(String, Vec<String>)> = paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            let lines = text
                .split('\n')
                .map(|l| l.trim_end_matches('\r').to_string())
                .filter(|l| !l.starts_with('#'))
                .collect();
            (p.strip_prefix(common::F2B_LOGS).unwrap().display().to_string(), lines)
        })
        .collect();
    let ctx = TimeContext::fail2ban_test();
    let reference = common::run_reference(1_124_013_600, "CET-01CEST-02,M3.5.0,M10.5.0", None, &files);
    // %ExY as fail2ban builds it today (from the machine's clock)
    let det = Arc::new(DateDetector::fail2ban_default());
    let (mut agree, mut differ, mut timed) = (0usize, 0usize, 0usize);
    let mut shown = Vec::new();
    for ((name, lines), refs) in files.iter().zip(&reference) {
        let mut sc = det.scanner();
        for (line, r) in lines.iter().zip(refs) {
            let ours = match sc.find_match(line, &ctx) {
                None => Ref::None,
                Some(m) => Ref::Hit(m.start, m.end, m.time),
            };
            if &ours == r {
                agree += 1;
                if matches!(ours, Ref::Hit(_, _, Some(_))) {
                    timed += 1;
                }
            } else {
                differ += 1;
                if shown.len() < 40 {
                    shown.push(format!("{name}: {line:?}\n    ours {ours:?}\n    f2b  {r:?}"));
                }
            }
        }
    }
    eprintln!("datetime diff: {agree} agree, {differ} differ ({timed} agreeing lines with a date)");
    for s in &shown {
        eprintln!("{s}");
    }
    assert!(agree + differ > 1500, "too few lines compared");
    assert!(timed > 900, "too few dated lines");
    assert_eq!(differ, 0, "lines where we differ from fail2ban");
}
