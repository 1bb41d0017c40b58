//! Throughput figures (not a benchmark suite): run with
//! `cargo test -p stadtwache-store --release --test throughput -- --ignored --nocapture`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use stadtwache_core::{Key, Timestamp};
use stadtwache_store::{
    Batch, ChangeCursor, Checkpoint, EvidenceLine, NewDecision, Origin, SqliteOptions, SqliteStore, Store, Synchronous,
    WindowRow,
};

const TOTAL: u32 = 100_000;
const BATCH: u32 = 1_000;

fn decision(n: u32) -> NewDecision {
    let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
    NewDecision {
        rule: Some("sshd".into()),
        reason: serde_json::json!({"rule": 0, "count": 5, "steps": [{"step": "allowlist", "matched": null}]}),
        evidence: vec![EvidenceLine::new(
            "/var/log/auth.log",
            u64::from(n),
            format!("Failed password for root from {ip} port 22 ssh2"),
        )],
        ..NewDecision::new(
            Key::Ip(ip),
            None,
            Origin::Rule,
            Timestamp::from_secs(1_000),
            Some(Timestamp::from_secs(1_000 + i64::from(n % 3_600))),
        )
    }
}

fn run(sync: Synchronous) {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions { synchronous: sync, ..SqliteOptions::default() };
    let mut s = SqliteStore::open_with(dir.path(), &opts).unwrap();
    let start = Instant::now();
    for b in 0..TOTAL / BATCH {
        let batch = Batch {
            decisions: (b * BATCH..(b + 1) * BATCH).map(decision).collect(),
            alerts: Vec::new(),
            checkpoints: vec![Checkpoint::new("/var/log/auth.log", u64::from(b), Timestamp::from_secs(1_000))],
            replace_groups: Vec::new(),
            ..Batch::default()
        };
        s.commit_batch(&batch).unwrap();
    }
    let insert = start.elapsed();
    let t = Instant::now();
    let active = s.active_decisions(Timestamp::from_secs(1_000)).unwrap().len();
    let active_t = t.elapsed();
    let t = Instant::now();
    let startup = s.changed_since(ChangeCursor::START).unwrap();
    let startup_t = t.elapsed();
    let t = Instant::now();
    let expired = s.expire(Timestamp::from_secs(1_000 + 1_800)).unwrap();
    let expire_t = t.elapsed();
    let t = Instant::now();
    let delta = s.changed_since(startup.cursor).unwrap();
    let delta_t = t.elapsed();
    let t = Instant::now();
    let n = 1_000;
    for i in 0..n {
        let key = Key::Ip(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i * 97)));
        s.decisions_for(&key).unwrap();
    }
    let lookup_t = t.elapsed();
    let t = Instant::now();
    for i in 0..n {
        s.insert_decision(&decision(TOTAL + i)).unwrap();
    }
    let single_t = t.elapsed();
    let t = Instant::now();
    let history = s.ban_history(&["sshd"]).unwrap().len();
    let history_t = t.elapsed();
    // Detector windows: 100 commits of 1,000 upserted ~190-byte rows, then 100
    // commits that each rewrite 500 and delete 500; then the start-up read.
    let state = r#"{"v":1,"lru":2,"now":1772409601234567,"state":{"kind":"fail2ban","first":1772409600000000,"last":1772409601234567,"first_seen":1772409600000000,"retry":2,"failures":2,"lines":[1000000,1000001]}}"#;
    let row = |n: u32, keep: bool| WindowRow {
        scope: "/var/log/auth.log".into(),
        rule: "sshd".into(),
        key: Key::Ip(IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + n))),
        state: keep.then(|| state.to_string()),
    };
    let t = Instant::now();
    for b in 0..100u32 {
        let windows = (b * 1_000..(b + 1) * 1_000).map(|n| row(n, true)).collect();
        s.commit_batch(&Batch { windows, ..Batch::default() }).unwrap();
    }
    for b in 0..100u32 {
        let windows = (b * 1_000..(b + 1) * 1_000).map(|n| row(n, n % 2 == 0)).collect();
        s.commit_batch(&Batch { windows, ..Batch::default() }).unwrap();
    }
    let windows_t = t.elapsed();
    let t = Instant::now();
    let read = s.windows("/var/log/auth.log").unwrap().windows.len();
    let read_t = t.elapsed();
    println!(
        "synchronous={sync:?}: ban_history ({history} targets) {:.0} ms; 200 commits of 1,000 window rows {:.2} ms each; \
         windows() start-up read ({read} rows) {:.0} ms",
        history_t.as_secs_f64() * 1e3,
        windows_t.as_secs_f64() * 1e3 / 200.0,
        read_t.as_secs_f64() * 1e3,
    );
    println!(
        "synchronous={sync:?}: {TOTAL} decisions in batches of {BATCH}: {:.2} s ({:.0} decisions/s); \
         active_decisions ({active}) {:.0} ms; start-up stream ({}) {:.0} ms; \
         expire ({expired}) {:.0} ms; stream delta ({} deleted) {:.0} ms; \
         decisions_for {:.0} µs each; single-decision commits {:.0} µs each",
        insert.as_secs_f64(),
        f64::from(TOTAL) / insert.as_secs_f64(),
        active_t.as_secs_f64() * 1e3,
        startup.new.len(),
        startup_t.as_secs_f64() * 1e3,
        expire_t.as_secs_f64() * 1e3,
        delta.deleted.len(),
        delta_t.as_secs_f64() * 1e3,
        lookup_t.as_secs_f64() * 1e6 / f64::from(n),
        single_t.as_secs_f64() * 1e6 / f64::from(n),
    );
}

#[test]
#[ignore = "throughput figures; run by hand with --release"]
fn throughput_100k_decisions_in_batches_of_1000() {
    run(Synchronous::Normal);
    run(Synchronous::Full);
}
