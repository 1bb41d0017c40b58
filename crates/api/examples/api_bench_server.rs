//! A small server for `bench/api_bench.sh`: fills a temporary store with
//! decisions, starts the API on it and prints, one per line:
//!
//! ```text
//! LISTEN 127.0.0.1:PORT
//! KEY <bouncer api key>
//! BANNED <an address with a decision>
//! ALLOWED <an address without one>
//! READY
//! ```
//!
//! then serves until stdin is closed (or the process is killed).
//!
//! `api_bench_server [DECISIONS] [LISTEN] [WORKERS]` (defaults: 10000, 127.0.0.1:0, 2).

use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener};
use std::sync::{Arc, Mutex};

use stadtwache_api::{ApiConfig, ApiServer, ApiState, DecisionIndex, SharedStore, system_now};
use stadtwache_core::{Key, Timestamp};
use stadtwache_metrics::Registry;
use stadtwache_store::{Batch, NewDecision, Origin, SqliteStore, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10_000);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let workers: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2);

    let dir = tempfile::tempdir()?;
    let mut store = SqliteStore::open(dir.path())?;
    let now = system_now();
    let until = Some(Timestamp(now.0 + 24 * 3600 * 1_000_000));
    // Deterministic spread: v4 singles in 10.0.0.0/8, every 10th a v6
    // address, every 100th a /24 range in 172.16.0.0/12.
    let mut decisions = Vec::with_capacity(n);
    for i in 0..n as u32 {
        let (ip, prefix) = if i % 100 == 99 {
            (IpAddr::V4(Ipv4Addr::from(0xAC10_0000 | ((i / 100) << 8))), Some(24))
        } else if i % 10 == 9 {
            (IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (i >> 16) as u16, i as u16)), None)
        } else {
            (IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | i.wrapping_mul(2_654_435_761) >> 8)), None)
        };
        let mut d = NewDecision::new(Key::Ip(ip), prefix, Origin::Rule, now, until);
        d.rule = Some("sshd".into());
        decisions.push(d);
    }
    store.commit_batch(&Batch { decisions, ..Batch::default() })?;
    let key = store.add_bouncer("bench", now)?;
    let banned = Ipv4Addr::from(0x0A00_0000 | 5u32.wrapping_mul(2_654_435_761) >> 8);

    let shared: SharedStore = Arc::new(Mutex::new(store));
    let index = Arc::new(DecisionIndex::new());
    let state = ApiState::new(
        ApiConfig { worker_threads: workers, ..ApiConfig::default() },
        shared,
        index.clone(),
        Arc::new(Registry::new()),
    )?;
    state.refresh_index()?;
    let handle = ApiServer::spawn(state, TcpListener::bind(&listen)?)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "LISTEN {}", handle.local_addr())?;
    writeln!(out, "KEY {key}")?;
    writeln!(out, "BANNED {banned}")?;
    writeln!(out, "ALLOWED 192.0.2.1")?;
    writeln!(out, "INDEXED {}", index.len())?;
    writeln!(out, "READY")?;
    out.flush()?;
    drop(out);
    // Serve until stdin closes.
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    handle.shutdown()?;
    Ok(())
}
