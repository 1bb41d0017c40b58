//! Benchmark of the nftables enforcer, in a network namespace of its own
//! (needs root; the root namespace's ruleset is not touched).
//!
//! ```text
//! cargo run --release -p stadtwache-enforce --example nft_bench -- [--bans 100000] [--runs 3] [--refresh auto|add|replace]
//! ```
//!
//! Per run: 100,000 bans (70 % IPv4, 29 % IPv6, 1 % prefixes; 1 % permanent,
//! the rest 1 min … 1 day) applied in one transaction to an empty table; the
//! listing; the same bans again (every element present: timeouts reset);
//! a reconcile without drift; a "restart" (table deleted, new enforcer,
//! ensure + reconcile from the desired list); a reconcile after the IPv4 set
//! was flushed by hand; one daemon tick (100 bans + 100 unbans into the full
//! table). Prints seconds per step; the median over the runs at the end.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use stadtwache_enforce::{Ban, Enforcer, NftConfig, NftEnforcer, Refresh, Target};

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn bans(n: usize, seed: u64) -> Vec<Ban> {
    let mut rng = Rng(seed | 1);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    let mut i = 0usize;
    while out.len() < n {
        i += 1;
        let r = rng.next();
        let target = match i % 100 {
            // 1 %: prefixes, /24 in 100.64.0.0/10 and /48 in 2001:db8::/32 (never overlapping)
            0 if i % 200 == 0 => Target::new(Ipv4Addr::from(0x6440_0000 | ((r as u32 & 0x3fff) << 8)).into(), Some(24)),
            0 => Target::new(Ipv6Addr::from((0x2001_0db8u128 << 96) | (u128::from(r as u16) << 80)).into(), Some(48)),
            1..=29 => Ok(Target::from(Ipv6Addr::from((0x2a00u128 << 112) | u128::from(r)))),
            _ => Ok(Target::from(Ipv4Addr::from(0x0b00_0000 + (r as u32 % 0x5000_0000)))),
        }
        .expect("valid prefix");
        if !seen.insert(target) {
            continue;
        }
        let expires =
            if r >> 60 == 0 && i % 7 == 0 { None } else { Some(Duration::from_secs(60 + (r >> 40) % 86_340)) };
        out.push(Ban { target, expires });
    }
    out
}

/// CPU seconds used by this process and its waited-for children (nft), from
/// /proc/self/stat (utime, stime, cutime, cstime in clock ticks of 1/100 s):
/// unlike wall time, not inflated by other load on the machine.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the ")" closing the command name; utime is field 14 overall.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().skip(11).take(4).filter_map(|x| x.parse().ok()).collect();
    f.iter().sum::<f64>() / 100.0
}

/// Runs `f`; prints and returns (wall, CPU) seconds.
fn timed<T>(label: &str, f: impl FnOnce() -> T) -> (T, (f64, f64)) {
    let (start, cpu) = (Instant::now(), cpu_secs());
    let v = f();
    let (s, c) = (start.elapsed().as_secs_f64(), cpu_secs() - cpu);
    println!("  {label:<58} {s:>7.3} s wall {c:>6.2} s CPU");
    (v, (s, c))
}

fn main() {
    let mut n = 100_000usize;
    let mut runs = 3usize;
    let mut refresh = Refresh::Auto;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match (a.as_str(), v.parse::<usize>().ok(), v.as_str()) {
            ("--bans", Some(v), _) => n = v,
            ("--runs", Some(v), _) => runs = v,
            ("--refresh", _, "auto") => refresh = Refresh::Auto,
            ("--refresh", _, "add") => refresh = Refresh::Add,
            ("--refresh", _, "replace") => refresh = Refresh::Replace,
            _ => {
                eprintln!("usage: nft_bench [--bans N] [--runs R] [--refresh auto|add|replace]");
                std::process::exit(2);
            }
        }
    }
    let name = format!("sw-enf-bench-{}", std::process::id());
    let ok = Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: cannot create a network namespace (root and iproute2 needed)");
        std::process::exit(1);
    }
    let ns = Netns(name);
    let command: Vec<String> = ["ip", "netns", "exec", &ns.0, "nft"].iter().map(|s| s.to_string()).collect();
    let nft = |args: &[&str]| {
        let st = Command::new(&command[0]).args(&command[1..]).args(args).status().unwrap();
        assert!(st.success(), "nft {args:?}");
    };
    let version =
        Command::new("nft").arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("nft_bench: {n} bans, {runs} runs; {}; Linux {}", version.unwrap_or_default(), kernel.trim());

    let desired = bans(n, 0x5eed);
    let v4 = desired.iter().filter(|b| b.target.is_ipv4() && b.target.prefix().is_none()).count();
    let pfx = desired.iter().filter(|b| b.target.prefix().is_some()).count();
    let perm = desired.iter().filter(|b| b.expires.is_none()).count();
    println!("  bans: {v4} IPv4 addresses, {} IPv6 addresses, {pfx} prefixes, {perm} permanent", n - v4 - pfx);
    let mut table: Vec<Vec<(f64, f64)>> = Vec::new();
    for run in 1..=runs {
        println!("run {run}");
        let config = NftConfig { command: command.clone(), refresh, ..NftConfig::default() };
        let mut e = NftEnforcer::new(config.clone()).unwrap();
        let mut row = Vec::new();
        row.push(timed("ensure (create table, 4 sets, 2 chains; probe)", || e.ensure().unwrap()).1);
        if run == 1 {
            println!("  re-add replaces timeouts: {:?} (refresh = {refresh:?})", e.readd_replaces_timeouts());
        }
        let (st, s) =
            timed(&format!("apply {n} bans to empty sets (1 transaction)"), || e.apply(&desired, &[]).unwrap());
        assert_eq!((st.added, st.transactions, st.rejected.len()), (n, 1, 0));
        row.push(s);
        let (l, s) = timed("list() (nft -j list table, parse)", || e.list().unwrap());
        assert_eq!(l.len(), n);
        row.push(s);
        let (_, s) = timed("  of which nft -j list table alone (output discarded)", || {
            let out = Command::new(&command[0])
                .args(&command[1..])
                .args(["-j", "list", "table", "inet", "stadtwache"])
                .output()
                .unwrap();
            assert!(out.status.success());
            out.stdout.len()
        });
        row.push(s);
        let (st, s) =
            timed(&format!("apply the same {n} bans again (timeouts reset)"), || e.apply(&desired, &[]).unwrap());
        assert_eq!((st.added, st.transactions), (n, 1));
        row.push(s);
        let (d, s) = timed("reconcile, no drift", || e.reconcile(&desired).unwrap());
        assert!(d.is_clean(), "{d:?}");
        row.push(s);
        // Restart: the table is gone (reboot, `nft flush ruleset`), a new process starts.
        e.remove_all().unwrap();
        let mut e = NftEnforcer::new(config).unwrap();
        let (d, s) = timed(&format!("restart: ensure + reconcile {n} into a new table"), || {
            e.ensure().unwrap();
            e.reconcile(&desired).unwrap()
        });
        assert_eq!((d.missing, d.extra, d.total), (n, 0, n), "{d:?}");
        row.push(s);
        nft(&["flush", "set", "inet", "stadtwache", "v4"]);
        let (d, s) = timed("reconcile after `nft flush set … v4`", || e.reconcile(&desired).unwrap());
        assert_eq!((d.missing, d.extra), (v4, 0), "{d:?}");
        row.push(s);
        let fresh = bans(100, 0xbeef + run as u64);
        let gone: Vec<Target> = desired[..100].iter().map(|b| b.target).collect();
        let (st, s) = timed("one tick: 100 bans + 100 unbans into the full table", || e.apply(&fresh, &gone).unwrap());
        assert_eq!(st.transactions, 1);
        row.push(s);
        e.remove_all().unwrap();
        table.push(row);
    }
    let labels = [
        "ensure",
        "apply 100k new",
        "list",
        "  of which nft -j alone",
        "apply 100k present",
        "reconcile clean",
        "restart (ensure+reconcile)",
        "reconcile v4 flushed",
        "tick 100+100",
    ];
    println!("median of {runs} runs (wall; CPU of this process + nft):");
    for (i, label) in labels.iter().enumerate() {
        let mut v: Vec<f64> = table.iter().map(|r| r[i].0).collect();
        let mut c: Vec<f64> = table.iter().map(|r| r[i].1).collect();
        v.sort_by(f64::total_cmp);
        c.sort_by(f64::total_cmp);
        println!(
            "  {label:<28} {:>7.3} s (min {:.3}, max {:.3})  CPU {:.2} s",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1],
            c[c.len() / 2]
        );
    }
}
