//! End-to-end properties of the generators: determinism, exact line counts,
//! non-decreasing timestamps, address hygiene.

use std::collections::HashSet;
use std::net::IpAddr;

use stadtwache_loggen::time::{MONTHS, days_from_civil, parse_start};
use stadtwache_loggen::{
    CardinalityOptions, NginxOptions, SshdOptions, generate_cardinality, generate_nginx, generate_sshd,
};

const START: &str = "2026-03-02T00:00:00Z";

fn sshd_opts(lines: u64, seed: u64) -> SshdOptions {
    SshdOptions {
        lines,
        seed,
        start: parse_start(START).unwrap(),
        days: 3.0,
        attackers: 5000,
        ipv6_share: 0.1,
        host: "bastion".into(),
    }
}

fn sshd(lines: u64, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let st = generate_sshd(&sshd_opts(lines, seed), &mut out).unwrap();
    assert_eq!(st.lines, lines);
    out
}

fn nginx(lines: u64, seed: u64) -> Vec<u8> {
    let o =
        NginxOptions { lines, seed, start: parse_start(START).unwrap(), days: 3.0, attackers: 3000, ipv6_share: 0.1 };
    let mut out = Vec::new();
    let st = generate_nginx(&o, &mut out).unwrap();
    assert_eq!(st.lines, lines);
    out
}

fn month(m: &str) -> u32 {
    MONTHS.iter().position(|x| *x == m).expect("month") as u32 + 1
}

/// Epoch of a `Mmm dd HH:MM:SS` prefix, year 2026.
fn syslog_time(line: &str) -> i64 {
    let mon = month(&line[0..3]);
    let day: u32 = line[4..6].trim().parse().unwrap();
    let h: i64 = line[7..9].parse().unwrap();
    let mi: i64 = line[10..12].parse().unwrap();
    let s: i64 = line[13..15].parse().unwrap();
    assert_eq!(&line[15..16], " ");
    days_from_civil(2026, mon, day) * 86_400 + h * 3600 + mi * 60 + s
}

/// Epoch of nginx `[dd/Mon/yyyy:HH:MM:SS +0000]`.
fn clf_time(line: &str) -> i64 {
    let i = line.find('[').unwrap() + 1;
    let t = &line[i..i + 26];
    assert_eq!(&t[20..], " +0000");
    let day: u32 = t[0..2].parse().unwrap();
    let mon = month(&t[3..6]);
    let year: i64 = t[7..11].parse().unwrap();
    let h: i64 = t[12..14].parse().unwrap();
    let mi: i64 = t[15..17].parse().unwrap();
    let s: i64 = t[18..20].parse().unwrap();
    days_from_civil(year, mon, day) * 86_400 + h * 3600 + mi * 60 + s
}

#[test]
fn sshd_is_deterministic() {
    let a = sshd(20_000, 1);
    assert_eq!(a, sshd(20_000, 1));
    assert_ne!(a, sshd(20_000, 2));
}

#[test]
fn sshd_line_counts_exact() {
    for n in [0u64, 1, 2, 7, 999, 12_345] {
        let out = sshd(n, 42);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count() as u64, n);
        assert!(n == 0 || out.ends_with(b"\n"));
    }
}

#[test]
fn sshd_timestamps_non_decreasing_and_span_days() {
    let out = String::from_utf8(sshd(100_000, 1)).unwrap();
    let times: Vec<i64> = out.lines().map(syslog_time).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let start = parse_start(START).unwrap();
    assert_eq!(times[0], start);
    let span = times.last().unwrap() - times[0];
    assert!(span > 2 * 86_400 && span < 4 * 86_400, "span {span}");
}

fn sshd_addresses(text: &str) -> HashSet<IpAddr> {
    let mut set = HashSet::new();
    for line in text.lines() {
        for w in line.split([' ', '=']) {
            if (w.contains('.') || w.matches(':').count() >= 2)
                && let Ok(a) = w.parse::<IpAddr>()
            {
                set.insert(a);
            }
        }
    }
    set
}

#[test]
fn sshd_mix_and_address_hygiene() {
    let text = String::from_utf8(sshd(100_000, 3)).unwrap();
    for needle in [
        "]: Accepted publickey for ",
        "]: Accepted password for ",
        "]: pam_unix(sshd:session): session opened for user ",
        "]: pam_unix(sshd:session): session closed for user ",
        "]: Failed password for root from ",
        "]: Failed password for invalid user ",
        "]: Invalid user ",
        "]: pam_unix(sshd:auth): authentication failure; ",
        "[preauth]",
        "]: Connection closed by authenticating user root ",
        "]: Connection closed by invalid user ",
        "Too many authentication failures",
        "]: error: maximum authentication attempts exceeded for ",
        "]: Did not receive identification string from ",
        "no matching key exchange method found",
        "]: banner exchange: Connection from ",
        "]: error: kex_exchange_identification: ",
        "]: Received disconnect from ",
    ] {
        assert!(text.contains(needle), "missing {needle:?}");
    }
    let addrs = sshd_addresses(&text);
    assert!(addrs.len() > 800, "only {} addresses", addrs.len());
    assert!(addrs.iter().any(IpAddr::is_ipv6));
    for a in &addrs {
        match a {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                assert!(!v4.is_private() && !v4.is_loopback(), "{a}");
                assert!(!(o[0] == 172 && (16..32).contains(&o[1])), "{a}");
            }
            IpAddr::V6(v6) => assert!(!a.to_string().contains("::"), "{v6}"),
        }
    }
}

#[test]
fn zipf_skew_over_attackers() {
    let text = String::from_utf8(sshd(100_000, 5)).unwrap();
    let mut counts = std::collections::HashMap::<&str, u32>::new();
    for line in text.lines().filter(|l| l.contains("]: Failed password for ")) {
        let ip = line.split(" from ").nth(1).unwrap().split(' ').next().unwrap();
        *counts.entry(ip).or_default() += 1;
    }
    let mut v: Vec<u32> = counts.values().copied().collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    let total: u32 = v.iter().sum();
    let top10: u32 = v.iter().take(10).sum();
    // Heavy head, long tail.
    assert!(top10 * 5 > total, "top10 {top10} of {total}");
    assert!(v.len() > 200);
}

#[test]
fn nginx_deterministic_exact_monotonic() {
    let a = nginx(30_000, 9);
    assert_eq!(a, nginx(30_000, 9));
    assert_ne!(a, nginx(30_000, 10));
    let text = String::from_utf8(a).unwrap();
    assert_eq!(text.lines().count(), 30_000);
    let times: Vec<i64> = text.lines().map(clf_time).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    for needle in ["/.env", "/wp-login.php", "/cgi-bin/", "etc/passwd", "\" 404 ", "\" 200 "] {
        assert!(text.contains(needle), "missing {needle:?}");
    }
}

#[test]
fn cardinality_distinct_addresses() {
    let o = CardinalityOptions {
        addresses: 50_000,
        seed: 4,
        start: parse_start(START).unwrap(),
        days: 1.0,
        ipv6_share: 0.1,
        host: "bastion".into(),
    };
    let mut out = Vec::new();
    let st = generate_cardinality(&o, &mut out).unwrap();
    let mut again = Vec::new();
    generate_cardinality(&o, &mut again).unwrap();
    assert_eq!(out, again);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count() as u64, st.lines);
    let times: Vec<i64> = text.lines().map(syslog_time).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let mut per = std::collections::HashMap::<&str, u32>::new();
    for line in text.lines() {
        let ip = line.split(" from ").nth(1).unwrap().split(' ').next().unwrap();
        *per.entry(ip).or_default() += 1;
    }
    assert_eq!(per.len(), 50_000);
    assert!(per.values().all(|&c| c == 1 || c == 2));
    assert!(per.keys().any(|k| k.contains(':')));
}
