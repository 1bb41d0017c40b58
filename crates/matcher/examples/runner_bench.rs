//! Throughput of `FilterRunner` on a synthetic sshd log, one core.
//!
//! ```text
//! cargo run --release -p stadtwache-match --example runner_bench -- SPEC [options]
//!   SPEC            filter in the runner's dump format: tab-separated records
//!                   `P<TAB>prefregex`, `R<TAB>failregex`, `I<TAB>ignoreregex`,
//!                   `M<TAB>maxlines`, `D<TAB>datepattern` (`\t`, `\n`, `\\` escaped)
//!   --lines N       lines to run (default 2,000,000)
//!   --mix M         `attack` (sshd lines only, mostly failures and helpers),
//!                   `syslog` (30 % sshd, 70 % other daemons; default), `quiet`
//!                   (30 % sshd without failures, 70 % other), `other` (no sshd)
//!   --dates         lines start with a syslog date, found and cut out by the
//!                   date detector (`process_line`); otherwise the lines have
//!                   no date and the time is given (`process_line_at`)
//!   --check-all     fail2ban's checkAllRegex
//!   --literals      print each failregex's prefilter literals and exit
//!   --log FILE      take the (first 100,000) lines from FILE instead of generating them
//!   --probe         also time the prefregex alone, and each failregex alone
//!                   on the lines it matches (patterns only, no runner)
//! ```
//!
//! The filter is read from a file, e.g. fail2ban's `sshd` filter as fail2ban's
//! own reader expands it (so no third-party regex is part of this crate):
//!
//! ```text
//! python3 crates/matcher/src/runner/f2b_dump.py spec /tmp/sshd.spec sshd
//! cargo run --release -p stadtwache-match --example runner_bench -- /tmp/sshd.spec --dates --mix syslog
//! ```

use std::sync::Arc;
use std::time::Instant;

use stadtwache_core::{Spanned, Timestamp};
use stadtwache_datetime::TimeContext;
use stadtwache_match::pattern::{Pattern, PatternKind};
use stadtwache_match::{CompileOptions, CompiledFilter, FilterRunner, FilterSpec, RunOptions};

#[path = "../tests/support/spec_format.rs"]
mod spec_format;

fn read_spec(path: &str) -> FilterSpec {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    spec_format::parse_spec(path, &text)
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const USERS: [&str; 8] = ["root", "admin", "test", "oracle", "ubuntu", "git", "postgres", "user1"];

fn sshd_line(r: &mut Rng, quiet: bool) -> String {
    let pid = 1000 + r.below(30000);
    let ip = format!("198.51.{}.{}", r.below(256), 1 + r.below(254));
    let port = 1024 + r.below(60000);
    let user = USERS[r.below(USERS.len() as u64) as usize];
    let msg = if quiet {
        match r.below(4) {
            0 => format!("Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:abcdefghijklmnop"),
            1 => format!("pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"),
            2 => format!("pam_unix(sshd:session): session closed for user {user}"),
            _ => "Server listening on 0.0.0.0 port 22.".to_string(),
        }
    } else {
        match r.below(10) {
            0 | 1 => format!("Invalid user {user} from {ip} port {port}"),
            2 | 3 => format!("Failed password for invalid user {user} from {ip} port {port} ssh2"),
            4 => format!("Failed password for {user} from {ip} port {port} ssh2"),
            5 => format!("Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"),
            6 => format!("Disconnected from invalid user {user} {ip} port {port} [preauth]"),
            7 => format!("Connection closed by {ip} port {port} [preauth]"),
            8 => format!(
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}"
            ),
            _ => format!("pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"),
        }
    };
    format!("srv sshd[{pid}]: {msg}")
}

fn other_line(r: &mut Rng) -> String {
    let pid = 1000 + r.below(30000);
    match r.below(6) {
        0 => format!("srv CRON[{pid}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"),
        1 => format!("srv systemd[1]: Started Session {} of User root.", r.below(9999)),
        2 => format!(
            "srv kernel: [{}.{:06}] [UFW BLOCK] IN=eth0 OUT= MAC=00:16:3e:00:00:01 SRC=203.0.113.{} DST=192.0.2.1 LEN=40 PROTO=TCP SPT={} DPT=23",
            r.below(99999),
            r.below(999999),
            r.below(256),
            r.below(65535)
        ),
        3 => format!("srv postfix/smtpd[{pid}]: connect from unknown[203.0.113.{}]", r.below(256)),
        4 => format!("srv systemd-logind[{pid}]: New session {} of user root.", r.below(9999)),
        _ => format!("srv dhclient[{pid}]: DHCPACK of 192.0.2.{} from 192.0.2.254", r.below(256)),
    }
}

/// CPU time of this thread in seconds (Linux `schedstat`), so that the
/// figure holds on a busy machine too; None elsewhere.
fn cpu_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// CPU time of the prefregex on every line, and of each failregex on the
/// contents it matches.
fn probe_patterns(spec: &FilterSpec, log: &[String]) {
    let opts = CompileOptions::default();
    let pref = spec.prefregex.as_ref().map(|p| Pattern::compile(p, PatternKind::Prefregex, &opts).unwrap());
    let fails: Vec<Pattern> = spec
        .failregex
        .iter()
        .map(|r| {
            Pattern::compile_with(
                r,
                PatternKind::Failregex,
                &opts,
                stadtwache_match::pattern::PatternOptions { multiline: false, use_dns: true },
            )
            .unwrap()
        })
        .collect();
    // what the runner searches: the line with its date cut out, plus "\n"
    let det = Arc::new(stadtwache_datetime::DateDetector::fail2ban_default());
    let mut scanner = det.scanner();
    let ctx = TimeContext::fail2ban_test();
    let bufs: Vec<String> = log
        .iter()
        .map(|l| match scanner.find_match(l, &ctx) {
            Some(h) if h.start < h.end && h.end <= l.len() => format!("{}{}\n", &l[..h.start], &l[h.end..]),
            _ => format!("{l}\n"),
        })
        .collect();
    let mut contents: Vec<String> = Vec::new();
    if let Some(p) = &pref {
        let mut sc = p.new_scratch();
        let ci = p.group_index("content");
        let t = cpu_secs().unwrap_or(0.0);
        let mut n = 0;
        for b in &bufs {
            if p.captures_with(b, &mut sc).unwrap_or(false) {
                n += 1;
                if let Some((s, e)) = ci.and_then(|i| sc.get(i)) {
                    contents.push(format!("{}\n", &b[s..e]));
                }
            }
        }
        let dt = cpu_secs().unwrap_or(0.0) - t;
        println!("prefregex: {} lines, {n} matched, {:.0} ns/line", bufs.len(), dt * 1e9 / bufs.len() as f64);
    } else {
        contents = bufs;
    }
    for (i, f) in fails.iter().enumerate() {
        let mut sc = f.new_scratch();
        let hits: Vec<&String> = contents.iter().filter(|c| f.is_match(c).unwrap_or(false)).collect();
        if hits.is_empty() {
            continue;
        }
        let t = cpu_secs().unwrap_or(0.0);
        for c in &hits {
            let _ = f.captures_with(c, &mut sc);
        }
        let dt = cpu_secs().unwrap_or(0.0) - t;
        println!(
            "failregex {i:2} ({:?}): {} hits, captures {:.0} ns/hit",
            f.engine(),
            hits.len(),
            dt * 1e9 / hits.len() as f64
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(spec_path) = args.first() else {
        eprintln!(
            "usage: runner_bench SPEC [--lines N] [--mix attack|syslog|quiet] [--dates] [--check-all] [--literals]"
        );
        std::process::exit(2);
    };
    let mut n_lines: usize = 2_000_000;
    let mut mix = "syslog".to_string();
    let mut dates = false;
    let mut check_all = false;
    let mut literals = false;
    let mut probe = false;
    let mut log_file: Option<String> = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--lines" => n_lines = it.next().and_then(|v| v.replace(['_', ','], "").parse().ok()).unwrap_or(n_lines),
            "--mix" => mix = it.next().cloned().unwrap_or(mix),
            "--dates" => dates = true,
            "--check-all" => check_all = true,
            "--literals" => literals = true,
            "--probe" => probe = true,
            "--log" => log_file = it.next().cloned(),
            other => panic!("unknown argument {other}"),
        }
    }
    let spec = read_spec(spec_path);
    if literals {
        for (i, r) in spec.failregex.iter().enumerate() {
            let p = Pattern::compile(r, PatternKind::Failregex, &CompileOptions::default());
            match p {
                Ok(p) => println!("{i:2} {:?} {:?}", p.engine(), p.required_literals()),
                Err(e) => println!("{i:2} error {e:?}"),
            }
        }
        return;
    }
    let compiled = match CompiledFilter::compile(&spec, &CompileOptions::default()) {
        Ok(c) => c,
        Err(e) => panic!("compile: {e:?}"),
    };
    for w in &compiled.warnings {
        eprintln!("{w}");
    }
    let filter = Arc::new(compiled.filter);

    // Pre-generate the log so that generation is not measured.
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let uniq = 100_000.min(n_lines.max(1));
    let months = ["Nov"];
    let mut log: Vec<String> = Vec::with_capacity(uniq);
    for i in 0..uniq {
        let body = match mix.as_str() {
            "attack" => sshd_line(&mut rng, false),
            "other" => other_line(&mut rng),
            "quiet" => {
                if rng.below(10) < 3 {
                    sshd_line(&mut rng, true)
                } else {
                    other_line(&mut rng)
                }
            }
            _ => {
                if rng.below(10) < 3 {
                    sshd_line(&mut rng, false)
                } else {
                    other_line(&mut rng)
                }
            }
        };
        if dates {
            let s = i % 86_400;
            log.push(format!("{} 2{} {:02}:{:02}:{:02} {body}", months[0], 6, s / 3600, (s / 60) % 60, s % 60));
        } else {
            log.push(body);
        }
    }
    if let Some(path) = &log_file {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        log = text.lines().take(uniq).map(str::to_string).collect();
    }
    let uniq = log.len().max(1);
    let bytes: usize = log.iter().map(|l| l.len() + 1).sum::<usize>() * (n_lines / uniq.max(1)).max(1);

    if probe {
        probe_patterns(&spec, &log);
        // long hostile lines: 64 KiB (the reader's cap) of near-misses
        let mut r = FilterRunner::new(Arc::clone(&filter), RunOptions { check_all_regex: check_all });
        for body in [
            format!("srv sshd[1]: Failed password for {} from 198.51.100.1 port 22 ssh2", "invalid user ".repeat(5000)),
            format!("srv sshd[1]: Invalid user {}", "x from ".repeat(9000)),
            format!("srv sshd[1]: {}", "Connection closed by ".repeat(3000)),
        ] {
            let t = Instant::now();
            let res = r.process_line_at(&body, Timestamp::from_secs(1_124_013_600));
            println!(
                "hostile line of {} bytes: {:.3} ms (wall), {} results, budget exhausted {}",
                body.len(),
                t.elapsed().as_secs_f64() * 1e3,
                res.failures.len(),
                r.stats().budget_exhausted
            );
        }
    }
    let ctx = TimeContext::fail2ban_test();
    let mut runner = FilterRunner::new(Arc::clone(&filter), RunOptions { check_all_regex: check_all });
    let t0 = Timestamp::from_secs(1_124_013_600);
    // warm-up
    for l in log.iter().take(10_000) {
        let _ = if dates { runner.process_line(l, &ctx) } else { runner.process_line_at(l, t0) };
    }
    let mut runner = FilterRunner::new(Arc::clone(&filter), RunOptions { check_all_regex: check_all });
    let (mut failures, mut real) = (0usize, 0usize);
    let start = Instant::now();
    let cpu0 = cpu_secs();
    for i in 0..n_lines {
        let l = &log[i % uniq];
        let res = if dates { runner.process_line(l, &ctx) } else { runner.process_line_at(l, t0) };
        failures += res.failures.len();
        real += res.failures.iter().filter(|f| f.fid.is_some() && !f.nofail).count();
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_secs().zip(cpu0).map(|(b, a)| b - a);
    let secs = cpu.unwrap_or(wall);
    println!(
        "{n_lines} lines ({mix}, dates: {dates}, check_all: {check_all}): {:.0} lines/s, {:.1} MB/s per CPU second \
         ({secs:.3} s CPU, {wall:.3} s wall); {failures} results, {real} failures; stats {:?}",
        n_lines as f64 / secs,
        bytes as f64 / secs / 1e6,
        runner.stats()
    );
}
