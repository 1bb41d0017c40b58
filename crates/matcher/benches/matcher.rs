//! Criterion micro-benchmark: `FilterRunner` lines/s on a generated sshd log.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench -p stadtwache-match --bench matcher
//! ```
//!
//! Filter: fail2ban's own `sshd` filter, as fail2ban's reader expands it from
//! `/etc/fail2ban/filter.d` (via `src/runner/f2b_dump.py spec`, which calls the
//! installed fail2ban library; nothing of it is copied here). Without fail2ban
//! (or with `STADTWACHE_BENCH_NATIVE=1`) a small native sshd rule written for
//! this benchmark is used instead; the group names say which one ran.
//!
//! Sample: `stadtwache-loggen sshd --lines 20000 --seed 1` (same generator as
//! `bench/run.sh`), split by the filter itself into
//! * `matching`: lines that yield at least one failure,
//! * `non_matching`: lines that yield none (benign sshd traffic, helpers),
//! * `mixed`: the log as generated (≈38 % matching for the fail2ban filter).
//!
//! Each iteration runs the whole sample through a fresh runner with date
//! detection (`process_line`); throughput is reported in lines (elements).

use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stadtwache_core::{Spanned, Timestamp};
use stadtwache_datetime::{TimeContext, parse_logtimezone};
use stadtwache_loggen::{SshdOptions, generate_sshd, time::parse_start};
use stadtwache_match::{CompileOptions, CompiledFilter, FilterRunner, FilterSpec, RunOptions};

#[path = "../tests/support/spec_format.rs"]
mod spec_format;

const SAMPLE_LINES: u64 = 20_000;

/// fail2ban's `sshd` filter (normal mode) as its reader expands it, or None
/// when fail2ban is not installed.
fn fail2ban_sshd() -> Option<FilterSpec> {
    if std::env::var_os("STADTWACHE_BENCH_NATIVE").is_some()
        || !std::path::Path::new("/etc/fail2ban/filter.d/sshd.conf").exists()
    {
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/src/runner/f2b_dump.py");
    let out = std::env::temp_dir().join(format!("stadtwache-bench-sshd-{}.spec", std::process::id()));
    let ok = Command::new("/usr/bin/python3")
        .arg(script)
        .arg("spec")
        .arg(&out)
        .arg("sshd")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let text = std::fs::read_to_string(&out).ok();
    let _ = std::fs::remove_file(&out);
    let text = text.filter(|_| ok)?;
    let spec = spec_format::parse_spec("fail2ban sshd", &text);
    (!spec.failregex.is_empty()).then_some(spec)
}

/// A native sshd rule written for this benchmark (not fail2ban's filter).
fn native_sshd() -> FilterSpec {
    // Searched after the date detector cut the date out (no `^`: the host
    // name and spacing before the daemon tag vary).
    let pre = r"sshd\[\d+\]:\s+";
    let rx = [
        r"Failed (?:password|none|keyboard-interactive/pam) for (?:invalid user )?<F-USER>\S*</F-USER> from <HOST> port \d+",
        r"Invalid user <F-USER>\S*</F-USER> from <HOST>",
        r"error: maximum authentication attempts exceeded for (?:invalid user )?<F-USER>\S+</F-USER> from <HOST>",
        r"pam_unix\(sshd:auth\): authentication failure;.* rhost=<HOST>",
        r"Did not receive identification string from <HOST>",
    ];
    FilterSpec {
        name: "native sshd".into(),
        failregex: rx.iter().map(|r| Spanned::new(format!("{pre}{r}"))).collect(),
        maxlines: 1,
        ..FilterSpec::default()
    }
}

fn bench_matcher(c: &mut Criterion) {
    let (spec, which) = match fail2ban_sshd() {
        Some(s) => (s, "f2b_sshd"),
        None => (native_sshd(), "native_sshd"),
    };
    let filter = Arc::new(
        CompiledFilter::compile(&spec, &CompileOptions::default())
            .unwrap_or_else(|e| panic!("compiling {}: {e:?}", spec.name))
            .filter,
    );

    let start = parse_start("2026-03-02T00:00:00Z").expect("start");
    let opts = SshdOptions {
        lines: SAMPLE_LINES,
        seed: 1,
        start,
        days: 3.0,
        attackers: 5000,
        ipv6_share: 0.1,
        host: "bastion".into(),
    };
    let mut buf = Vec::new();
    generate_sshd(&opts, &mut buf).expect("generate");
    let text = String::from_utf8(buf).expect("utf-8");
    let mixed: Vec<&str> = text.lines().collect();
    let ctx = TimeContext { now: Timestamp::from_secs(start + 4 * 86_400), tz: parse_logtimezone("UTC").expect("UTC") };

    // Split the sample by what the filter makes of each line.
    let mut runner = FilterRunner::new(Arc::clone(&filter), RunOptions::default());
    let (mut matching, mut non_matching) = (Vec::new(), Vec::new());
    for &l in &mixed {
        let res = runner.process_line(l, &ctx);
        if res.failures.iter().any(|f| f.fid.is_some() && !f.nofail) {
            matching.push(l);
        } else {
            non_matching.push(l);
        }
    }
    eprintln!(
        "matcher bench: filter {which} ({} failregex), sample {} lines: {} matching, {} non-matching",
        filter.failregex_count(),
        mixed.len(),
        matching.len(),
        non_matching.len()
    );

    let mut g = c.benchmark_group(format!("matcher/{which}"));
    g.sample_size(10);
    for (name, lines) in [("matching", &matching), ("non_matching", &non_matching), ("mixed", &mixed)] {
        if lines.is_empty() {
            continue;
        }
        g.throughput(Throughput::Elements(lines.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut r = FilterRunner::new(Arc::clone(&filter), RunOptions::default());
                let mut n = 0usize;
                for &l in lines.iter() {
                    n += r.process_line(black_box(l), &ctx).failures.len();
                }
                black_box(n)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_matcher);
criterion_main!(benches);
