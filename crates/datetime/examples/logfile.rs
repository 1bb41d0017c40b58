//! CPU cost of `DateScanner::find_match` per line of a real log, as the
//! replay sees it (a filter's `datepattern`, default `{^LN-BEG}`, zone UTC).
//! `cargo run --release -p stadtwache-datetime --example logfile -- FILE [DATEPATTERN] [ROUNDS]`

use std::hint::black_box;
use std::sync::Arc;

use stadtwache_core::Timestamp;
use stadtwache_datetime::{DateDetector, TimeContext, TimeZone};

/// CPU time of this thread in ns (the machine is shared: wall time lies).
fn cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    s.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let file = args.next().expect("usage: logfile FILE [DATEPATTERN] [ROUNDS]");
    let pattern = args.next().unwrap_or_else(|| "{^LN-BEG}".to_string());
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(3);
    let text = std::fs::read_to_string(&file).expect("readable UTF-8 file");
    let lines: Vec<&str> = text.lines().collect();
    let det = Arc::new(DateDetector::from_datepattern(&pattern).expect("valid datepattern"));
    let ctx = TimeContext { now: Timestamp::from_secs(1_796_000_000), tz: TimeZone::UTC };
    let mut best = u64::MAX;
    let mut sum = 0i64;
    for _ in 0..rounds {
        let mut sc = det.scanner();
        let c0 = cpu_ns();
        for l in &lines {
            if let Some(m) = black_box(sc.find_match(black_box(l), &ctx)) {
                sum = sum.wrapping_add(m.time.map_or(0, |t| t.0) + m.end as i64);
            }
        }
        best = best.min(cpu_ns() - c0);
    }
    println!(
        "{:.1} ns/line CPU (best of {rounds}), {} lines, checksum {sum}",
        best as f64 / lines.len() as f64,
        lines.len()
    );
}
