//! Criterion micro-benchmark: `Detector::observe` throughput per window kind,
//! and under a flood of 1,000,000 distinct keys (the key cap at work).
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench -p stadtwache-detect --bench windows
//! ```
//!
//! * `observe/<kind>`: 100,000 events over 2,000 IPv4 keys (Zipf-like: a few
//!   hot keys, a long tail), one event per second of log time, one rule of
//!   that kind (fail2ban 5/10m, count 5/10m, distinct 5/10m over 20 user
//!   names, once). The fail2ban rule also gets `service(now)` before every
//!   event, as a replay does. Throughput in events.
//! * `flood/<kind>`: 1,000,000 events, each from a new address, with the
//!   default key cap (100,000 pairs): after the first 100,000 keys every event
//!   evicts the least recently observed pair. The run asserts the cap holds.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stadtwache_core::{Duration, Event, Key, RuleId, Timestamp};
use stadtwache_detect::{Detector, DetectorOptions, WindowSpec};

const T0: i64 = 1_772_409_600; // 2026-03-02T00:00:00Z

fn specs() -> Vec<(&'static str, WindowSpec)> {
    let w = Duration::from_secs(600);
    vec![
        ("fail2ban", WindowSpec::Fail2ban { maxretry: 5, findtime: w }),
        ("count", WindowSpec::Count { threshold: 5, window: w }),
        ("distinct", WindowSpec::Distinct { threshold: 5, window: w }),
        ("once", WindowSpec::Once),
    ]
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
}

fn ip_key(n: u32) -> Key {
    // 11.0.0.0 + n: public unicast, distinct for every n < 2^24.
    Key::Ip(IpAddr::V4(Ipv4Addr::from(0x0b00_0000u32 + n)))
}

fn events_zipf(n: usize, keys: u32) -> Vec<Event> {
    let users: Vec<Arc<str>> = (0..20).map(|i| Arc::from(format!("user{i}").as_str())).collect();
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|i| {
            // Zipf-ish: square a uniform draw to favour low key numbers.
            let u = (r.next() >> 11) as f64 / (1u64 << 53) as f64;
            let k = ((u * u) * keys as f64) as u32;
            Event {
                rule: RuleId(0),
                key: ip_key(k),
                time: Timestamp::from_secs(T0 + i as i64),
                weight: 1,
                distinct: Some(Arc::clone(&users[(r.next() % 20) as usize])),
                line_no: i as u64,
            }
        })
        .collect()
}

fn events_flood(n: u32) -> Vec<Event> {
    let user: Arc<str> = Arc::from("root");
    (0..n)
        .map(|i| Event {
            rule: RuleId(0),
            key: ip_key(i),
            time: Timestamp::from_secs(T0 + (i / 20) as i64),
            weight: 1,
            distinct: Some(Arc::clone(&user)),
            line_no: i as u64,
        })
        .collect()
}

fn run(spec: WindowSpec, events: &[Event]) -> (usize, Detector) {
    let mut d = Detector::new(vec![spec], DetectorOptions::default());
    let svc = matches!(spec, WindowSpec::Fail2ban { .. });
    let mut triggers = 0;
    for ev in events {
        if svc {
            d.service(ev.time);
        }
        if d.observe(black_box(ev)).is_some() {
            triggers += 1;
        }
    }
    (triggers, d)
}

fn bench_observe(c: &mut Criterion) {
    let events = events_zipf(100_000, 2_000);
    let mut g = c.benchmark_group("observe");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events.len() as u64));
    for (name, spec) in specs() {
        g.bench_function(name, |b| b.iter(|| black_box(run(spec, &events).0)));
    }
    g.finish();
}

fn bench_flood(c: &mut Criterion) {
    let events = events_flood(1_000_000);
    let cap = DetectorOptions::default().max_keys;
    let mut g = c.benchmark_group("flood_1m_keys");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events.len() as u64));
    for (name, spec) in specs() {
        // The cap holds (checked once, outside the timing).
        let (_, d) = run(spec, &events);
        let st = d.stats();
        assert!(st.tracked_keys <= cap, "{name}: {} tracked > cap {cap}", st.tracked_keys);
        eprintln!("flood/{name}: tracked_keys {} (cap {cap}), evicted {}", st.tracked_keys, st.evicted);
        g.bench_function(name, |b| b.iter(|| black_box(run(spec, &events).0)));
    }
    g.finish();
}

criterion_group!(benches, bench_observe, bench_flood);
criterion_main!(benches);
