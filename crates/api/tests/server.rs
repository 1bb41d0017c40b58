//! The background server on a real socket, driven from a synchronous caller.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stadtwache_api::{ApiConfig, ApiServer, ApiState, DecisionIndex, SharedStore};
use stadtwache_core::{Key, Timestamp};
use stadtwache_metrics::Registry;
use stadtwache_store::{NewDecision, Origin, SqliteStore, Store};

/// One HTTP/1.1 request on a fresh connection; returns the raw response.
pub fn http(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn spawn_serves_without_a_caller_runtime_refreshes_and_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = SqliteStore::open(dir.path()).unwrap();
    // The API gets its own connection on the same file (as the daemon may do).
    let store: SharedStore = Arc::new(Mutex::new(SqliteStore::open(dir.path()).unwrap()));
    let index = Arc::new(DecisionIndex::new());
    let cfg = ApiConfig { refresh_interval: stadtwache_core::Duration(50_000), ..ApiConfig::default() };
    let state = ApiState::new(cfg, store, index.clone(), Arc::new(Registry::new())).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let handle = ApiServer::spawn(state, listener).unwrap();
    let addr = handle.local_addr();

    let get = "GET /v1/auth HTTP/1.1\r\nHost: x\r\nX-Real-IP: 198.51.100.7\r\nConnection: close\r\n\r\n";
    let r = http(addr, get);
    assert!(r.starts_with("HTTP/1.1 204"), "{r}");

    // A ban written by another connection shows up within a few refresh
    // intervals (polled for up to 30 s: a loaded machine may not run the
    // refresh task for a while; a pass takes about 50 ms).
    let now = stadtwache_api::system_now();
    writer
        .insert_decision(&NewDecision::new(
            Key::Ip("198.51.100.7".parse().unwrap()),
            None,
            Origin::Rule,
            now,
            Some(Timestamp(now.0 + 3_600_000_000)),
        ))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = loop {
        let r = http(addr, get);
        if r.starts_with("HTTP/1.1 403") || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.to_ascii_lowercase().contains("x-stadtwache-reason: rule ? until"), "{r}");
    assert!(index.refresh_count() >= 1);

    // Garbage on the wire: a 4xx, and the server lives on.
    let r = http(addr, "\x00\x01garbage\r\n\r\n");
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 4"), "{r:?}");
    let r = http(addr, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200") && r.ends_with(r#"{"status":"up"}"#), "{r}");

    handle.shutdown().unwrap();
    assert!(TcpStream::connect(addr).is_err(), "no longer listening");
}
