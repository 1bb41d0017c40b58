//! Fuzz the HTTP API: arbitrary method, path and query, headers and body
//! through the whole router (auth, LAPI, admin, metrics), with an in-memory
//! store holding a few decisions. Every answer must be a 2xx/4xx (never a
//! 5xx, never a panic), and every 4xx (but to HEAD) must carry a JSON `{"message"}`.
//!
//! Input layout: byte 0 = method and flags, byte 1 = peer, then the
//! request target up to `\n`, then `Name: value` header lines up to an
//! empty line, then the body.
#![no_main]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use libfuzzer_sys::fuzz_target;
use stadtwache_api::{ApiConfig, ApiState, DecisionIndex, SharedStore, router, with_peer};
use stadtwache_core::{Key, Timestamp};
use stadtwache_metrics::Registry;
use stadtwache_store::{NewDecision, Origin, SqliteStore, Store};
use tower::ServiceExt as _;

const ADMIN: &str = "fuzz-admin-token";
const KEY: &str = "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz";
const T0: i64 = 1_795_774_500_000_000;

struct World {
    rt: tokio::runtime::Runtime,
    app: Mutex<Option<(axum::Router, u32)>>,
}

fn fresh_app() -> axum::Router {
    let mut store = SqliteStore::open_in_memory().unwrap();
    store.add_bouncer_with_key("fuzz", KEY, Timestamp(T0)).unwrap();
    for (ip, prefix) in [("198.51.100.7", None), ("192.0.2.0", Some(24)), ("2001:db8::", Some(48))] {
        let d = NewDecision::new(Key::Ip(ip.parse().unwrap()), prefix, Origin::Rule, Timestamp(T0), None);
        store.insert_decision(&d).unwrap();
    }
    let shared: SharedStore = Arc::new(Mutex::new(store));
    let cfg = ApiConfig { admin_token: Some(ADMIN.into()), max_body_bytes: 4096, ..ApiConfig::default() };
    static NOW: AtomicI64 = AtomicI64::new(T0);
    let state = ApiState::with_clock(
        cfg,
        shared,
        Arc::new(DecisionIndex::new()),
        Arc::new(Registry::new()),
        Arc::new(|| Timestamp(NOW.fetch_add(1_000, Ordering::Relaxed))),
    )
    .unwrap();
    state.refresh_index().unwrap();
    router(state)
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| World {
        rt: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        app: Mutex::new(None),
    })
}

/// A fresh store every 500 inputs, so admin writes do not pile up.
fn app() -> axum::Router {
    let mut g = world().app.lock().unwrap();
    match g.as_mut() {
        Some((app, n)) if *n < 500 => {
            *n += 1;
            app.clone()
        }
        _ => {
            let app = fresh_app();
            *g = Some((app.clone(), 0));
            app
        }
    }
}

static RUNS: AtomicU32 = AtomicU32::new(0);

fuzz_target!(|data: &[u8]| {
    RUNS.fetch_add(1, Ordering::Relaxed);
    // The pure parsers on the raw bytes.
    let _ = stadtwache_api::fuzzing::parse_admin_decision(data);
    let _ = stadtwache_api::fuzzing::parse_query(std::str::from_utf8(data).ok());

    if data.len() < 2 {
        return;
    }
    let (flags, peer_sel, rest) = (data[0], data[1], &data[2..]);
    let method = match flags & 7 {
        0 | 1 => Method::GET,
        2 => Method::POST,
        3 => Method::DELETE,
        4 => Method::HEAD,
        5 => Method::PUT,
        6 => Method::OPTIONS,
        _ => Method::PATCH,
    };
    let peer: SocketAddr = match peer_sel & 3 {
        0 => "127.0.0.1:1000".parse().unwrap(),
        1 => "198.51.100.7:1000".parse().unwrap(),
        2 => "[2001:db8::5]:1000".parse().unwrap(),
        _ => "[::1]:1000".parse().unwrap(),
    };
    let (target, rest) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(target) = std::str::from_utf8(target) else { return };
    // Paths are what hyper would accept on the wire; others never reach the router.
    let uri = if target.starts_with('/') { target.to_string() } else { format!("/{target}") };
    let Ok(uri) = uri.parse::<axum::http::Uri>() else { return };
    let mut builder = Request::builder().method(method).uri(uri);
    let mut body = rest;
    let mut rest = rest;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..i];
        rest = &rest[i + 1..];
        if line.is_empty() {
            body = rest;
            break;
        }
        body = rest;
        let Some(c) = line.iter().position(|&b| b == b':') else { continue };
        let (Ok(n), Ok(v)) = (HeaderName::from_bytes(&line[..c]), HeaderValue::from_bytes(trim(&line[c + 1..]))) else {
            continue;
        };
        builder = builder.header(n, v);
    }
    if flags & 8 != 0 {
        builder = builder.header("authorization", format!("Bearer {ADMIN}"));
    }
    if flags & 16 != 0 {
        builder = builder.header("x-api-key", KEY);
    }
    let Ok(req) = builder.body(Body::from(body.to_vec())) else { return };
    let is_head = req.method() == Method::HEAD;
    let req = with_peer(req, peer);
    let w = world();
    let app = app();
    w.rt.block_on(async move {
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let is_json = resp.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
        assert!(status.is_success() || status.is_client_error(), "status {status}: {}", String::from_utf8_lossy(&bytes));
        if is_head {
            // HEAD answers carry no body (hyper/axum strip it), errors included.
            assert!(bytes.is_empty(), "HEAD with a body");
        } else if status.is_client_error() {
            assert!(is_json, "{status} without JSON");
            let v: serde_json::Value = serde_json::from_slice(&bytes).expect("4xx body is JSON");
            assert!(v.get("message").and_then(|m| m.as_str()).is_some(), "{v}");
        }
    });
});

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &b[start..end]
}
