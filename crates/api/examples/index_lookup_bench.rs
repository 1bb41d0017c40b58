//! Cost of a `DecisionIndex` lookup (the `/v1/auth` hot path), on 10,000
//! decisions: one thread, two threads, and two threads while a third
//! refreshes the index in a loop (writer holding the lock to apply changes).
//!
//! `cargo run --release -p stadtwache-api --example index_lookup_bench [DECISIONS]`

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use stadtwache_api::DecisionIndex;
use stadtwache_core::{Key, Timestamp};
use stadtwache_store::{Batch, DecisionRef, NewDecision, Origin, SqliteStore, Store};

const LOOKUPS: u32 = 2_000_000;

fn addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | i.wrapping_mul(2_654_435_761) >> 8))
}

fn lookups(index: &DecisionIndex, now: Timestamp, seed: u32) -> (f64, u32) {
    let t = Instant::now();
    let mut hits = 0;
    for i in 0..LOOKUPS {
        if index.lookup(addr(i.wrapping_add(seed) % 20_000), now).is_some() {
            hits += 1;
        }
    }
    (t.elapsed().as_nanos() as f64 / f64::from(LOOKUPS), hits)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(10_000);
    let mut store = SqliteStore::open_in_memory()?;
    let now = Timestamp::from_secs(1_795_774_500);
    let mut decisions: Vec<NewDecision> =
        (0..n).map(|i| NewDecision::new(Key::Ip(addr(i)), None, Origin::Rule, now, None)).collect();
    for p in [8u8, 16, 24] {
        decisions.push(NewDecision::new(Key::Ip("172.16.0.0".parse()?), Some(p), Origin::Rule, now, None));
    }
    store.commit_batch(&Batch { decisions, ..Batch::default() })?;
    let index = Arc::new(DecisionIndex::new());
    index.refresh(&store, now)?;
    println!("{} targets indexed (v4 singles + 3 ranges); {LOOKUPS} lookups per thread, half hits", index.len());

    let (ns, hits) = lookups(&index, now, 0);
    println!("1 thread:                   {ns:6.1} ns/lookup ({hits} hits)");

    let two = |label: &str| {
        let hs: Vec<_> = (0..2)
            .map(|s| {
                let ix = index.clone();
                std::thread::spawn(move || lookups(&ix, now, s * 7))
            })
            .collect();
        let r: Vec<(f64, u32)> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        println!("{label} {:6.1} / {:6.1} ns/lookup", r[0].0, r[1].0);
    };
    two("2 threads:                 ");

    // A writer adding and deleting a decision and refreshing, as fast as it can.
    let store = Arc::new(Mutex::new(store));
    let stop = Arc::new(AtomicBool::new(false));
    let w = {
        let (ix, st, stop) = (index.clone(), store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut refreshes = 0u32;
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let mut s = st.lock().unwrap();
                let key = Key::Ip(addr(1_000_000 + i));
                s.insert_decision(&NewDecision::new(key.clone(), None, Origin::Rule, now, None)).unwrap();
                s.delete_decisions(&DecisionRef::Target { key, prefix: None }, now).unwrap();
                ix.refresh(&*s, now).unwrap();
                refreshes += 1;
                i += 1;
            }
            refreshes
        })
    };
    let t = Instant::now();
    two("2 threads + refresh loop:  ");
    stop.store(true, Ordering::Relaxed);
    let refreshes = w.join().unwrap();
    println!("(refresh loop: {:.0} refreshes/s meanwhile)", f64::from(refreshes) / t.elapsed().as_secs_f64());
    Ok(())
}
