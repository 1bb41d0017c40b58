#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use stadtwache_api::{ApiConfig, ApiState, DecisionIndex, SharedStore, router, with_peer};
use stadtwache_core::{Key, Timestamp};
use stadtwache_metrics::Registry;
use stadtwache_store::{NewDecision, Origin, SqliteStore, Store};
use tower::ServiceExt as _;

pub const T0: i64 = 1_795_774_500; // 2026-11-27T10:15:00Z
pub const ADMIN: &str = "s3cret-admin-token";

pub struct Fixture {
    pub store: Arc<Mutex<SqliteStore>>,
    pub index: Arc<DecisionIndex>,
    pub registry: Arc<Registry>,
    pub state: ApiState,
    pub app: Router,
    pub now: Arc<AtomicI64>,
}

pub fn config() -> ApiConfig {
    ApiConfig { admin_token: Some(ADMIN.into()), ..ApiConfig::default() }
}

pub fn fixture(cfg: ApiConfig) -> Fixture {
    let store = Arc::new(Mutex::new(SqliteStore::open_in_memory().unwrap()));
    let shared: SharedStore = store.clone();
    let index = Arc::new(DecisionIndex::new());
    let registry = Arc::new(Registry::new());
    let now = Arc::new(AtomicI64::new(Timestamp::from_secs(T0).0));
    let clock_now = now.clone();
    let state = ApiState::with_clock(
        cfg,
        shared,
        index.clone(),
        registry.clone(),
        Arc::new(move || Timestamp(clock_now.load(Ordering::SeqCst))),
    )
    .unwrap();
    let app = router(state.clone());
    Fixture { store, index, registry, state, app, now }
}

impl Fixture {
    pub fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }

    pub fn advance(&self, secs: i64) {
        self.now.fetch_add(secs * 1_000_000, Ordering::SeqCst);
    }

    /// Inserts a rule decision (`value` may be a CIDR) lasting `secs` (None = permanent).
    pub fn ban(&self, value: &str, rule: &str, secs: Option<i64>) -> i64 {
        let (ip, prefix) = match value.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().unwrap(), Some(p.parse::<u8>().unwrap())),
            None => (value.parse::<IpAddr>().unwrap(), None),
        };
        let now = self.now();
        let mut d =
            NewDecision::new(Key::Ip(ip), prefix, Origin::Rule, now, secs.map(|s| Timestamp(now.0 + s * 1_000_000)));
        d.rule = Some(rule.into());
        self.store.lock().unwrap().insert_decision(&d).unwrap().0
    }

    pub fn refresh(&self) {
        self.state.refresh_index().unwrap();
    }

    pub fn bouncer_key(&self, name: &str) -> String {
        self.store.lock().unwrap().add_bouncer(name, self.now()).unwrap()
    }

    pub async fn call(&self, req: Request<Body>, peer: &str) -> (StatusCode, HeaderMap, String) {
        let peer: SocketAddr = peer.parse().unwrap();
        let resp = self.app.clone().oneshot(with_peer(req, peer)).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 16 << 20).await.unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    pub async fn get(&self, uri: &str, peer: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
        let mut b = Request::get(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.call(b.body(Body::empty()).unwrap(), peer).await
    }
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

/// The `{"message": "..."}` of an error answer (asserts the shape).
pub fn message(body: &str) -> String {
    let v = json(body);
    let obj = v.as_object().unwrap_or_else(|| panic!("not an object: {body}"));
    assert_eq!(obj.len(), 1, "{body}");
    obj["message"].as_str().unwrap_or_else(|| panic!("no message: {body}")).to_string()
}
