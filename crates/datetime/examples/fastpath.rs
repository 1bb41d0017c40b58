//! Rough cost of `DateScanner::find` per line on the common formats (the
//! "last template still hits" fast path). Run with
//! `cargo run --release -p stadtwache-datetime --example fastpath`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use stadtwache_core::Timestamp;
use stadtwache_datetime::{DateDetector, TimeContext};

fn lines(fmt: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            // "-burst": ten lines per second, as under attack
            let i = if fmt.ends_with("-burst") { i / 10 } else { i };
            let fmt = fmt.trim_end_matches("-burst");
            let (h, m, s) = (i / 3600 % 24, i / 60 % 60, i % 60);
            let d = 1 + i / 86_400 % 28;
            match fmt {
                "syslog" => format!(
                    "Nov {d:2} {h:02}:{m:02}:{s:02} host sshd[{i}]: Failed password for root from 192.0.2.{} port 22 ssh2",
                    i % 250
                ),
                "iso" => format!("2026-11-{d:02} {h:02}:{m:02}:{s:02} host sshd[{i}]: Failed password"),
                "iso-t" => format!("2026-11-{d:02}T{h:02}:{m:02}:{s:02}.123456+01:00 host sshd[{i}]: Failed"),
                "clf" => format!(
                    "192.0.2.{} - - [{d:02}/Nov/2026:{h:02}:{m:02}:{s:02} +0100] \"GET / HTTP/1.1\" 401 0",
                    i % 250
                ),
                "epoch" => format!("{}.{:03} host x", 1_795_000_000 + i, i % 1000),
                "nodate" => format!("srv sshd[{i}]: Failed password for root from 192.0.2.{} port 22 ssh2", i % 250),
                _ => unreachable!(),
            }
        })
        .collect()
}

/// CPU time of this thread in ns (the machine is shared: wall time lies).
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn main() {
    let det = Arc::new(DateDetector::fail2ban_default());
    let ctx = TimeContext {
        now: Timestamp::from_secs(1_796_000_000),
        tz: TimeZone::posix("CET-01CEST-02,M3.5.0,M10.5.0").unwrap(),
    };
    let only = std::env::args().nth(1);
    for fmt in ["syslog", "iso", "iso-t", "clf", "epoch", "syslog-burst", "iso-burst", "clf-burst", "nodate"] {
        if only.as_deref().is_some_and(|o| o != fmt) {
            continue;
        }
        let ls = lines(fmt, 200_000);
        let mut sc = det.scanner();
        let mut found = 0usize;
        // warm-up (first lines go through the template search)
        for l in ls.iter().take(1000) {
            found += usize::from(sc.find(l, &ctx).is_some());
        }
        let t0 = Instant::now();
        let c0 = cpu_ns();
        let rounds = 5;
        for _ in 0..rounds {
            for l in &ls {
                found += usize::from(black_box(sc.find(black_box(l), &ctx)).is_some());
            }
        }
        let n = (rounds * ls.len()) as f64;
        let ns = t0.elapsed().as_nanos() as f64 / n;
        let cpu = match (c0, cpu_ns()) {
            (Some(a), Some(b)) => format!("{:6.1} ns/line CPU", (b - a) as f64 / n),
            _ => String::new(),
        };
        let expect = if fmt == "nodate" { 0 } else { 1000 + rounds * ls.len() };
        assert_eq!(found, expect, "{fmt}: every line has a date (or none)");
        println!("{fmt:12} {ns:6.1} ns/line wall, {cpu}");
    }
}

use stadtwache_datetime::TimeZone;
