//! The router and its handlers.

// Handlers pass ready `Response`s along their error path; the large `Err`
// is the answer itself, built once per failed request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Deserialize;
use stadtwache_core::{Key, Timestamp};
use stadtwache_metrics::{Counter, CounterVec, Gauge, Histogram, HistogramVec, LATENCY_BUCKETS, Registry};
use stadtwache_store::{
    AlertFilter, ChangeCursor, DecisionId, DecisionRef, NewDecision, Origin, Store, StoreError, StoredDecision,
};

use crate::config::{ApiConfig, FailMode, Net};
use crate::index::DecisionIndex;
use crate::lapi::{LapiDecision, go_duration, rfc3339, scenario};
use crate::{ApiError, SharedStore};

/// The wall clock as a [`Timestamp`].
pub fn system_now() -> Timestamp {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A source of "now" (tests use a fake one).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Endpoint labels of the request metrics (a fixed, small set: never a path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Auth,
    Decisions,
    Stream,
    AdminDecisions,
    AdminAlerts,
    Metrics,
    Health,
    Other,
}

const ENDPOINTS: [Endpoint; 8] = [
    Endpoint::Auth,
    Endpoint::Decisions,
    Endpoint::Stream,
    Endpoint::AdminDecisions,
    Endpoint::AdminAlerts,
    Endpoint::Metrics,
    Endpoint::Health,
    Endpoint::Other,
];

impl Endpoint {
    fn of(path: &str) -> Endpoint {
        match path {
            "/v1/auth" => Endpoint::Auth,
            "/v1/decisions" => Endpoint::Decisions,
            "/v1/decisions/stream" => Endpoint::Stream,
            "/v1/admin/alerts" => Endpoint::AdminAlerts,
            "/metrics" => Endpoint::Metrics,
            "/health" => Endpoint::Health,
            p if p == "/v1/admin/decisions" || p.starts_with("/v1/admin/decisions/") => Endpoint::AdminDecisions,
            _ => Endpoint::Other,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Endpoint::Auth => "auth",
            Endpoint::Decisions => "decisions",
            Endpoint::Stream => "stream",
            Endpoint::AdminDecisions => "admin_decisions",
            Endpoint::AdminAlerts => "admin_alerts",
            Endpoint::Metrics => "metrics",
            Endpoint::Health => "health",
            Endpoint::Other => "other",
        }
    }

    fn idx(self) -> usize {
        self as usize
    }
}

/// Request metrics with the label lookups cached (one `OnceLock` per endpoint and status).
struct ApiMetrics {
    requests: CounterVec,
    request_cells: Vec<Box<[OnceLock<Counter>]>>,
    latency: Vec<Histogram>,
    auth_allow: Counter,
    auth_deny: Counter,
    stale_answers: Counter,
    refresh_errors: Counter,
    index_size: Gauge,
    index_age: Gauge,
}

impl ApiMetrics {
    fn new(reg: &Registry) -> Result<Self, ApiError> {
        let requests = reg.counter_vec(
            "stadtwache_api_requests_total",
            "HTTP API requests by endpoint and status code.",
            &["endpoint", "status"],
        )?;
        let lat: HistogramVec = reg.histogram_vec(
            "stadtwache_api_request_duration_seconds",
            "HTTP API request handling time (seconds) by endpoint.",
            &["endpoint"],
            LATENCY_BUCKETS,
        )?;
        let answers = reg.counter_vec(
            "stadtwache_api_auth_answers_total",
            "Answers of the auth_request endpoint (allow or deny).",
            &["answer"],
        )?;
        Ok(ApiMetrics {
            requests,
            request_cells: ENDPOINTS.iter().map(|_| (100..600).map(|_| OnceLock::new()).collect()).collect(),
            latency: ENDPOINTS.iter().map(|e| lat.with(&[e.as_str()])).collect(),
            auth_allow: answers.with(&["allow"]),
            auth_deny: answers.with(&["deny"]),
            stale_answers: reg.counter(
                "stadtwache_api_stale_answers_total",
                "auth_request answers given while the decision index was stale (see fail_mode).",
            )?,
            refresh_errors: reg.counter(
                "stadtwache_api_index_refresh_errors_total",
                "Failed refreshes of the API's decision index.",
            )?,
            index_size: reg.gauge("stadtwache_api_index_decisions", "Targets in the API's decision index.")?,
            index_age: reg.gauge(
                "stadtwache_api_index_age_seconds",
                "Seconds since the decision index was last refreshed (-1: never).",
            )?,
        })
    }

    fn record(&self, ep: Endpoint, status: u16, started: Instant) {
        let i = usize::from(status.clamp(100, 599)) - 100;
        let cell = self.request_cells[ep.idx()][i]
            .get_or_init(|| self.requests.with(&[ep.as_str(), &status.clamp(100, 599).to_string()]));
        cell.inc();
        self.latency[ep.idx()].observe_duration(started.elapsed());
    }
}

struct Inner {
    config: ApiConfig,
    trusted: Vec<Net>,
    admin_token: Option<String>,
    ip_headers: Vec<HeaderName>,
    reason_header: HeaderName,
    store: SharedStore,
    index: Arc<DecisionIndex>,
    registry: Arc<Registry>,
    clock: Clock,
    metrics: ApiMetrics,
    /// Positive key → bouncer name answers, with the time they were checked.
    key_cache: Mutex<HashMap<String, (String, Instant)>>,
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").field("config", &self.inner.config).field("index", &self.inner.index).finish()
    }
}

/// Cached bouncer keys are re-checked against the store after this long
/// (a deleted bouncer loses access within this time).
const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);
const KEY_CACHE_MAX: usize = 1024;

impl ApiState {
    /// Validates `config` (reads the admin token file), registers the API's
    /// metrics in `registry` (an error if they are already registered there)
    /// and uses the wall clock.
    ///
    /// `store` is shared with whoever else holds it (the daemon may pass its
    /// own store or a second `SqliteStore` opened on the same file); the API
    /// locks it only inside blocking tasks, never on the `/v1/auth` path.
    pub fn new(
        config: ApiConfig,
        store: SharedStore,
        index: Arc<DecisionIndex>,
        registry: Arc<Registry>,
    ) -> Result<ApiState, ApiError> {
        ApiState::with_clock(config, store, index, registry, Arc::new(system_now))
    }

    /// As [`ApiState::new`] with a given clock.
    pub fn with_clock(
        config: ApiConfig,
        store: SharedStore,
        index: Arc<DecisionIndex>,
        registry: Arc<Registry>,
        clock: Clock,
    ) -> Result<ApiState, ApiError> {
        config.validate()?;
        let trusted = config.trusted_nets()?;
        let admin_token = config.resolve_admin_token()?;
        let ip_headers = config
            .client_ip_headers
            .iter()
            .map(|h| HeaderName::from_bytes(h.as_bytes()).map_err(|e| ApiError::Config(format!("{h:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let reason_header = HeaderName::from_bytes(config.reason_header.as_bytes())
            .map_err(|e| ApiError::Config(format!("reason_header: {e}")))?;
        let metrics = ApiMetrics::new(&registry)?;
        Ok(ApiState {
            inner: Arc::new(Inner {
                config,
                trusted,
                admin_token,
                ip_headers,
                reason_header,
                store,
                index,
                registry,
                clock,
                metrics,
                key_cache: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    pub fn index(&self) -> &Arc<DecisionIndex> {
        &self.inner.index
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    fn now(&self) -> Timestamp {
        (self.inner.clock)()
    }

    fn lock_store(&self) -> std::sync::MutexGuard<'_, dyn Store + 'static> {
        self.inner.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refreshes the decision index from the store now (blocking: call it
    /// from a plain thread or `spawn_blocking`). Failures are counted in
    /// `stadtwache_api_index_refresh_errors_total`.
    pub fn refresh_index(&self) -> Result<crate::RefreshOutcome, StoreError> {
        let now = self.now();
        let store = self.lock_store();
        let r = self.inner.index.refresh(&*store, now);
        drop(store);
        if r.is_err() {
            self.inner.metrics.refresh_errors.inc();
        }
        self.inner.metrics.index_size.set(self.inner.index.len() as f64);
        r
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.inner.trusted.iter().any(|n| n.contains(ip))
    }

    /// The client address of a request: the peer, or — only when the peer is
    /// a trusted proxy — the first configured header that is present.
    fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Result<IpAddr, Response> {
        let Some(peer) = peer else {
            return Err(json_error(StatusCode::BAD_REQUEST, "peer address unknown"));
        };
        if !self.is_trusted(peer) {
            return Ok(peer);
        }
        for name in &self.inner.ip_headers {
            let Some(v) = headers.get(name) else { continue };
            let text =
                v.to_str().map_err(|_| json_error(StatusCode::BAD_REQUEST, "client address header is not text"))?;
            let bad = || json_error(StatusCode::BAD_REQUEST, &format!("bad address in {name}: {:.64}", text));
            if name.as_str().eq_ignore_ascii_case("x-forwarded-for") {
                // Right to left: the last hop that is not a trusted proxy.
                let mut hops = Vec::new();
                for part in text.split(',') {
                    hops.push(parse_hop(part).ok_or_else(bad)?);
                }
                let chosen = hops.iter().rev().find(|ip| !self.is_trusted(**ip)).or(hops.first());
                return chosen.copied().ok_or_else(bad);
            }
            return parse_hop(text).ok_or_else(bad);
        }
        Ok(peer)
    }

    /// `Some(name)` for a valid key (cached for [`KEY_CACHE_TTL`]).
    async fn bouncer(&self, headers: &HeaderMap) -> Result<String, Response> {
        let forbidden = || json_error(StatusCode::FORBIDDEN, "access forbidden");
        let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).ok_or_else(forbidden)?;
        if key.is_empty() || key.len() > stadtwache_store::MAX_KEY_LEN {
            return Err(forbidden());
        }
        {
            let cache = self.inner.key_cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((name, at)) = cache.get(key)
                && at.elapsed() < KEY_CACHE_TTL
            {
                return Ok(name.clone());
            }
        }
        let st = self.clone();
        let k = key.to_string();
        let found = blocking(move || st.lock_store().authenticate(&k)).await?;
        match found {
            Some(name) => {
                let mut cache = self.inner.key_cache.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= KEY_CACHE_MAX {
                    cache.clear();
                }
                cache.insert(key.to_string(), (name.clone(), Instant::now()));
                Ok(name)
            }
            None => Err(forbidden()),
        }
    }

    fn check_admin(&self, headers: &HeaderMap) -> Result<(), Response> {
        let Some(token) = &self.inner.admin_token else {
            return Err(json_error(StatusCode::FORBIDDEN, "admin API disabled: no admin token configured"));
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        match given {
            Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(()),
            _ => {
                let mut r = json_error(StatusCode::UNAUTHORIZED, "admin token required (Authorization: Bearer …)");
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                Err(r)
            }
        }
    }
}

fn parse_hop(text: &str) -> Option<IpAddr> {
    let t = text.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(ip);
    }
    // `[v6]:port` or `v4:port`.
    if let Ok(sa) = t.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    t.strip_prefix('[').and_then(|r| r.strip_suffix(']')).and_then(|r| r.parse().ok())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Runs a blocking closure (store access) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(store_error(e)),
        Err(_) => Err(json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
    }
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::Invalid { .. } => json_error(StatusCode::BAD_REQUEST, &e.to_string()),
        e => json_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("store: {e}")),
    }
}

/// `{"message": "..."}` with the given status.
pub(crate) fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "message": message }).to_string();
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn json_ok<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => {
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
        }
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("serialisation: {e}")),
    }
}

/// `application/x-www-form-urlencoded` query pairs, percent-decoded; `None`
/// on invalid UTF-8 after decoding or a bad escape.
pub fn parse_query(q: Option<&str>) -> Option<Vec<(String, String)>> {
    let Some(q) = q else { return Some(Vec::new()) };
    let mut out = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((decode(k)?, decode(v)?));
    }
    Some(out)
}

fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn peer_of(req: &Request) -> Option<IpAddr> {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// The API's routes, with the metrics and size-cap middleware. Serve it with
/// [`crate::ApiServer::spawn`] (or any hyper/axum server that inserts
/// `ConnectInfo<SocketAddr>`; without it `/v1/auth` answers 400).
///
/// | method | path | auth | answer |
/// |---|---|---|---|
/// | GET, HEAD | `/v1/auth` | peer / trusted proxy header | 204 allow, 403 deny + reason header |
/// | GET, HEAD | `/v1/decisions?ip=&range=&scope=&value=&type=&contains=` | `X-Api-Key` | LAPI decision array or `null` |
/// | GET, HEAD | `/v1/decisions/stream?startup=` | `X-Api-Key` | `{"deleted":…,"new":…}` |
/// | GET, POST, DELETE | `/v1/admin/decisions` (`?value=` for DELETE) | Bearer admin token | list / add / delete by target |
/// | DELETE | `/v1/admin/decisions/{id}` | Bearer admin token | delete by id |
/// | GET | `/v1/admin/alerts?rule=&ip=&since=&limit=` | Bearer admin token | alerts, newest first |
/// | GET | `/metrics` | none | Prometheus text format |
/// | GET | `/health` | none | `{"status":"up"}` |
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/auth", get(auth_handler))
        .route("/v1/decisions", get(decisions_handler))
        .route("/v1/decisions/stream", get(stream_handler))
        .route("/v1/admin/decisions", get(admin_list).post(admin_add).delete(admin_delete_by_value))
        .route("/v1/admin/decisions/{id}", any(admin_delete_by_id))
        .route("/v1/admin/alerts", get(admin_alerts))
        .route("/metrics", get(metrics_handler))
        .route("/health", get(health_handler))
        .fallback(fallback_handler)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

async fn fallback_handler() -> Response {
    json_error(StatusCode::NOT_FOUND, "not found")
}

async fn method_not_allowed() -> Response {
    json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

async fn health_handler() -> Response {
    json_ok(StatusCode::OK, &serde_json::json!({"status": "up"}))
}

/// Caps headers, times and counts every request, and turns any error
/// answer without a JSON body (from axum or a layer) into `{"message"}`.
async fn guard(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let ep = Endpoint::of(req.uri().path());
    let cfg = &state.inner.config;
    let headers = req.headers();
    let header_bytes: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    let resp = if headers.len() > cfg.max_headers || header_bytes > cfg.max_header_bytes {
        json_error(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers too large")
    } else if req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > cfg.max_body_bytes as u64)
    {
        json_error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
    } else {
        let mut r = next.run(req).await;
        let status = r.status();
        let is_json =
            r.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if (status.is_client_error() || status.is_server_error()) && !is_json {
            r = json_error(status, status.canonical_reason().unwrap_or("error"));
        }
        r
    };
    state.inner.metrics.record(ep, resp.status().as_u16(), started);
    resp
}

async fn read_body(req: Request, max: usize) -> Result<axum::body::Bytes, Response> {
    axum::body::to_bytes(req.into_body(), max)
        .await
        .map_err(|_| json_error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large or unreadable"))
}

// ---------------------------------------------------------------- /v1/auth

async fn auth_handler(State(state): State<ApiState>, req: Request) -> Response {
    let peer = peer_of(&req);
    let ip = match state.client_ip(peer, req.headers()) {
        Ok(ip) => ip,
        Err(r) => return r,
    };
    let inner = &state.inner;
    let now = state.now();
    let stale = inner.index.is_stale(now, inner.config.stale_after);
    let mut resp = if stale && inner.config.fail_mode == FailMode::Closed {
        inner.metrics.auth_deny.inc();
        let mut r = json_error(StatusCode::FORBIDDEN, "denied: decision index is stale (fail_mode closed)");
        r.headers_mut().insert(inner.reason_header.clone(), HeaderValue::from_static("stale"));
        r
    } else {
        match inner.index.lookup(ip, now) {
            None => {
                inner.metrics.auth_allow.inc();
                StatusCode::NO_CONTENT.into_response()
            }
            Some(d) => {
                inner.metrics.auth_deny.inc();
                let who = match d.origin {
                    Origin::Rule => format!("rule {}", d.rule.as_deref().unwrap_or("?")),
                    ref o => match &d.rule {
                        Some(r) => format!("{o} {r}"),
                        None => o.to_string(),
                    },
                };
                let until = d.until.map_or_else(|| "permanent".to_string(), |u| format!("until {}", rfc3339(u)));
                let reason = format!("{who} {until} on {} (decision {})", d.value(), d.id.0);
                let mut r = json_error(StatusCode::FORBIDDEN, &format!("denied: {reason}"));
                let value = HeaderValue::from_str(&reason)
                    .unwrap_or_else(|_| HeaderValue::from_str(&format!("decision {}", d.id.0)).expect("ascii"));
                r.headers_mut().insert(inner.reason_header.clone(), value);
                r
            }
        }
    };
    if stale {
        inner.metrics.stale_answers.inc();
        let age = inner.index.age(now).map_or_else(|| "never-refreshed".to_string(), |a| a.as_secs().to_string());
        if let Ok(v) = HeaderValue::from_str(&age) {
            resp.headers_mut().insert("x-stadtwache-stale", v);
        }
    }
    resp
}

// ---------------------------------------------------------------- LAPI

async fn decisions_handler(State(state): State<ApiState>, req: Request) -> Response {
    if let Err(r) = state.bouncer(req.headers()).await {
        return r;
    }
    let Some(params) = parse_query(req.uri().query()) else {
        return json_error(StatusCode::BAD_REQUEST, "query string is not valid UTF-8 / percent-encoding");
    };
    let now = state.now();
    let index = &state.inner.index;
    let mut ip = None;
    let mut range = None;
    let mut scope: Option<String> = None;
    let mut value: Option<String> = None;
    let mut kind: Option<String> = None;
    let mut contains = true;
    let mut origins: Option<Vec<String>> = None;
    for (k, v) in params {
        match k.as_str() {
            "ip" => ip = Some(v),
            "range" => range = Some(v),
            "scope" | "scopes" => scope = Some(v.to_ascii_lowercase()),
            "value" => value = Some(v),
            "type" => kind = Some(v.to_ascii_lowercase()),
            "contains" => match v.as_str() {
                "true" => contains = true,
                "false" => contains = false,
                _ => return json_error(StatusCode::BAD_REQUEST, "contains must be true or false"),
            },
            "origins" => origins = Some(v.split(',').map(|s| s.trim().to_ascii_lowercase()).collect()),
            "scenarios_containing" | "scenarios_not_containing" | "limit" => {}
            other => {
                return json_error(StatusCode::BAD_REQUEST, &format!("'{:.64}' doesn't exist: invalid filter", other));
            }
        }
    }
    // `scope=ip&value=X` is `ip=X`; `scope=range&value=N` is `range=N`.
    if let Some(v) = value {
        match scope.as_deref() {
            Some("ip") | None => ip = ip.or(Some(v)),
            Some("range") => range = range.or(Some(v)),
            Some(_) => {}
        }
    }
    let scope_ok = |is_range: bool| match scope.as_deref() {
        None => true,
        Some(s) => s.split(',').any(|s| (s == "ip" && !is_range) || (s == "range" && is_range)),
    };
    if kind.as_deref().is_some_and(|k| k != "ban")
        || scope.as_deref().is_some_and(|s| !s.split(',').any(|s| s == "ip" || s == "range"))
    {
        return null_or_array(&req, &[]);
    }
    let found = if let Some(ip) = ip {
        let Some(ip) = parse_hop(&ip) else {
            return json_error(StatusCode::BAD_REQUEST, "ip: not an IP address");
        };
        index.lookup_all(ip, now)
    } else if let Some(r) = range {
        let Some(net) = Net::parse(&r) else {
            return json_error(StatusCode::BAD_REQUEST, "range: not an address or network (a.b.c.d/n)");
        };
        index.lookup_range(net.addr, net.prefix, contains, now)
    } else {
        index.all(now)
    };
    let permanent = state.inner.config.permanent_duration;
    let out: Vec<LapiDecision> = found
        .iter()
        .filter(|d| scope_ok(d.is_range()))
        .filter(|d| origins.as_ref().is_none_or(|o| o.iter().any(|o| o == d.origin.as_str())))
        .map(|d| LapiDecision::from_indexed(d, now, permanent))
        .collect();
    null_or_array(&req, &out)
}

fn null_or_array(req: &Request, out: &[LapiDecision]) -> Response {
    if req.method() == Method::HEAD {
        return StatusCode::OK.into_response();
    }
    if out.is_empty() {
        return (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], "null")
            .into_response();
    }
    json_ok(StatusCode::OK, &out)
}

#[derive(serde::Serialize)]
struct StreamBody {
    deleted: Option<Vec<LapiDecision>>,
    new: Option<Vec<LapiDecision>>,
}

fn stream_decision(d: &StoredDecision, now: Timestamp, permanent: stadtwache_core::Duration) -> Option<LapiDecision> {
    let idx = crate::index::IndexedDecision::from_stored_any(d)?;
    let mut l = LapiDecision::from_indexed(&idx, now, permanent);
    if let Some(at) = d.deleted_at {
        let end = d.decision.until.map_or(at, |u| u.min(at));
        l.duration = go_duration(end.since(now));
        l.until = Some(rfc3339(end));
    }
    Some(l)
}

async fn stream_handler(State(state): State<ApiState>, req: Request) -> Response {
    let name = match state.bouncer(req.headers()).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    if req.method() == Method::HEAD {
        // As CrowdSec: no body, and the pull is not recorded.
        return StatusCode::OK.into_response();
    }
    let Some(params) = parse_query(req.uri().query()) else {
        return json_error(StatusCode::BAD_REQUEST, "query string is not valid UTF-8 / percent-encoding");
    };
    let mut startup = false;
    let mut scopes = vec!["ip".to_string(), "range".to_string()];
    let mut origins: Option<Vec<String>> = None;
    let mut containing: Option<Vec<String>> = None;
    let mut not_containing: Option<Vec<String>> = None;
    let list = |v: &str| v.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect();
    for (k, v) in params {
        match k.as_str() {
            "startup" => match v.as_str() {
                "true" => startup = true,
                "false" | "" => startup = false,
                _ => return json_error(StatusCode::BAD_REQUEST, "startup must be true or false"),
            },
            "scopes" => scopes = list(&v),
            "origins" => origins = Some(list(&v)),
            "scenarios_containing" => containing = Some(list(&v)),
            "scenarios_not_containing" => not_containing = Some(list(&v)),
            // Newer bouncers send these; we have no community or extra lists.
            _ => {}
        }
    }
    let permanent = state.inner.config.permanent_duration;
    let st = state.clone();
    let result = blocking(move || {
        let now = st.now();
        let mut store = st.lock_store();
        let cursor = if startup {
            ChangeCursor::START
        } else {
            store.list_bouncers()?.into_iter().find(|b| b.name == name).map_or(ChangeCursor::START, |b| b.cursor)
        };
        let changes = store.changed_since(cursor)?;
        store.record_pull(&name, now, changes.cursor)?;
        Ok((changes, now))
    })
    .await;
    let (changes, now) = match result {
        Ok(v) => v,
        Err(r) => return r,
    };
    let keep = |l: &LapiDecision| {
        scopes.iter().any(|s| s == &l.scope.to_ascii_lowercase())
            && origins.as_ref().is_none_or(|o| o.iter().any(|o| o == &l.origin))
            && containing.as_ref().is_none_or(|c| c.iter().any(|c| l.scenario.to_ascii_lowercase().contains(c)))
            && not_containing.as_ref().is_none_or(|c| !c.iter().any(|c| l.scenario.to_ascii_lowercase().contains(c)))
    };
    let new: Vec<LapiDecision> = changes
        .new
        .iter()
        .filter(|d| d.decision.is_active_at(now))
        .filter_map(|d| stream_decision(d, now, permanent))
        .filter(keep)
        .collect();
    // At start-up a bouncer holds nothing: deletions are of no use to it (CrowdSec
    // also sends none to the firewall bouncer there).
    let deleted: Vec<LapiDecision> = if startup {
        Vec::new()
    } else {
        changes.deleted.iter().filter_map(|d| stream_decision(d, now, permanent)).filter(keep).collect()
    };
    let body = StreamBody { deleted: (!deleted.is_empty()).then_some(deleted), new: (!new.is_empty()).then_some(new) };
    json_ok(StatusCode::OK, &body)
}

// ---------------------------------------------------------------- admin

/// Body of `POST /v1/admin/decisions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminDecisionRequest {
    /// An address (`192.0.2.7`, `2001:db8::1`) or a network (`192.0.2.0/24`).
    pub value: String,
    /// `4h`, `30m`, `1d`, `3600` (seconds) or `permanent`.
    pub duration: String,
    /// Free text, stored as the decision's reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// Scenario name sent to bouncers (default `stadtwache/admin`).
    #[serde(default)]
    pub scenario: Option<String>,
}

/// A decision in the admin list.
#[derive(Debug, serde::Serialize)]
struct AdminDecision {
    id: i64,
    scope: &'static str,
    value: String,
    origin: String,
    scenario: String,
    created: String,
    until: Option<String>,
    duration: Option<String>,
    simulated: bool,
    reason: serde_json::Value,
}

fn admin_decision(d: &StoredDecision, now: Timestamp) -> AdminDecision {
    let (scope, value) = match (&d.decision.key, d.decision.prefix) {
        (Key::Ip(ip), Some(p)) if p < if ip.is_ipv4() { 32 } else { 128 } => ("Range", format!("{ip}/{p}")),
        (Key::Ip(ip), _) => ("Ip", ip.to_string()),
        (Key::Text(t), _) => ("Text", t.to_string()),
    };
    AdminDecision {
        id: d.id.0,
        scope,
        value,
        origin: d.decision.origin.to_string(),
        scenario: scenario(d.decision.rule.as_deref(), d.decision.origin.as_str()),
        created: rfc3339(d.decision.created),
        until: d.decision.until.map(rfc3339),
        duration: d.decision.until.map(|u| go_duration(u.since(now))),
        simulated: d.decision.simulated,
        reason: d.decision.reason.clone(),
    }
}

async fn admin_list(State(state): State<ApiState>, req: Request) -> Response {
    if let Err(r) = state.check_admin(req.headers()) {
        return r;
    }
    let st = state.clone();
    match blocking(move || {
        let now = st.now();
        let list = st.lock_store().active_decisions(now)?;
        Ok(list.iter().map(|d| admin_decision(d, now)).collect::<Vec<_>>())
    })
    .await
    {
        Ok(v) => json_ok(StatusCode::OK, &v),
        Err(r) => r,
    }
}

/// Parses an admin decision body into a decision at `now`.
pub(crate) fn parse_admin_decision(body: &[u8], now: Timestamp) -> Result<NewDecision, String> {
    let req: AdminDecisionRequest = serde_json::from_slice(body).map_err(|e| format!("bad JSON body: {e}"))?;
    let net = Net::parse(&req.value).ok_or_else(|| format!("value {:.64?} is not an address or network", req.value))?;
    let until = if req.duration.trim().eq_ignore_ascii_case("permanent") {
        None
    } else {
        let d = stadtwache_core::Duration::parse(&req.duration).map_err(|e| e.to_string())?;
        if d.0 <= 0 {
            return Err("duration must be positive".into());
        }
        Some(now.saturating_add(d))
    };
    let max = if net.addr.is_ipv4() { 32 } else { 128 };
    let mut d =
        NewDecision::new(Key::Ip(net.addr), (net.prefix < max).then_some(net.prefix), Origin::Admin, now, until);
    d.rule = req.scenario.filter(|s| !s.is_empty());
    d.reason = match req.reason {
        Some(r) => serde_json::json!({ "text": r }),
        None => serde_json::Value::Null,
    };
    Ok(d)
}

async fn admin_add(State(state): State<ApiState>, req: Request) -> Response {
    if let Err(r) = state.check_admin(req.headers()) {
        return r;
    }
    let body = match read_body(req, state.inner.config.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = state.now();
    let decision = match parse_admin_decision(&body, now) {
        Ok(d) => d,
        Err(m) => return json_error(StatusCode::BAD_REQUEST, &m),
    };
    let st = state.clone();
    match blocking(move || {
        let id = st.lock_store().insert_decision(&decision)?;
        let _ = st.refresh_index();
        Ok((id, decision))
    })
    .await
    {
        Ok((id, d)) => json_ok(
            StatusCode::CREATED,
            &admin_decision(&StoredDecision { id, decision: d, deleted_at: None, end: None }, now),
        ),
        Err(r) => r,
    }
}

async fn admin_delete(state: ApiState, which: DecisionRef) -> Result<usize, Response> {
    let st = state.clone();
    blocking(move || {
        let now = st.now();
        let n = st.lock_store().delete_decisions(&which, now)?;
        let _ = st.refresh_index();
        Ok(n)
    })
    .await
}

async fn admin_delete_by_id(
    State(state): State<ApiState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    req: Request,
) -> Response {
    if req.method() != Method::DELETE {
        return json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    if let Err(r) = state.check_admin(req.headers()) {
        return r;
    }
    let Ok(id) = id.parse::<i64>() else {
        return json_error(StatusCode::BAD_REQUEST, "decision_id must be valid integer");
    };
    match admin_delete(state, DecisionRef::Id(DecisionId(id))).await {
        Ok(0) => json_error(StatusCode::NOT_FOUND, &format!("no live decision with id {id}")),
        Ok(n) => json_ok(StatusCode::OK, &serde_json::json!({ "deleted": n })),
        Err(r) => r,
    }
}

async fn admin_delete_by_value(State(state): State<ApiState>, req: Request) -> Response {
    if let Err(r) = state.check_admin(req.headers()) {
        return r;
    }
    let Some(params) = parse_query(req.uri().query()) else {
        return json_error(StatusCode::BAD_REQUEST, "query string is not valid UTF-8 / percent-encoding");
    };
    let Some(value) = params.iter().find(|(k, _)| k == "value").map(|(_, v)| v.clone()) else {
        return json_error(StatusCode::BAD_REQUEST, "value=<address or network> required");
    };
    let Some(net) = Net::parse(&value) else {
        return json_error(StatusCode::BAD_REQUEST, "value: not an address or network");
    };
    let max = if net.addr.is_ipv4() { 32 } else { 128 };
    let which = DecisionRef::Target { key: Key::Ip(net.addr), prefix: (net.prefix < max).then_some(net.prefix) };
    match admin_delete(state, which).await {
        Ok(n) => json_ok(StatusCode::OK, &serde_json::json!({ "deleted": n })),
        Err(r) => r,
    }
}

async fn admin_alerts(State(state): State<ApiState>, req: Request) -> Response {
    if let Err(r) = state.check_admin(req.headers()) {
        return r;
    }
    let Some(params) = parse_query(req.uri().query()) else {
        return json_error(StatusCode::BAD_REQUEST, "query string is not valid UTF-8 / percent-encoding");
    };
    let max = state.inner.config.max_alerts;
    let mut filter = AlertFilter::default();
    let mut limit = max;
    for (k, v) in params {
        match k.as_str() {
            "rule" => filter.rule = Some(v),
            "ip" => match parse_hop(&v) {
                Some(ip) => filter.key = Some(Key::Ip(ip)),
                None => return json_error(StatusCode::BAD_REQUEST, "ip: not an IP address"),
            },
            "since" => match v.parse::<i64>() {
                Ok(s) => filter.since = Some(Timestamp::from_secs(s)),
                Err(_) => return json_error(StatusCode::BAD_REQUEST, "since: epoch seconds expected"),
            },
            "limit" => match v.parse::<usize>() {
                Ok(l) => limit = l.min(max),
                Err(_) => return json_error(StatusCode::BAD_REQUEST, "limit: a number expected"),
            },
            other => return json_error(StatusCode::BAD_REQUEST, &format!("unknown parameter '{other:.64}'")),
        }
    }
    let st = state.clone();
    match blocking(move || st.lock_store().alerts(&filter, limit)).await {
        Ok(v) => json_ok(StatusCode::OK, &v),
        Err(r) => r,
    }
}

// ---------------------------------------------------------------- metrics

async fn metrics_handler(State(state): State<ApiState>) -> Response {
    let inner = &state.inner;
    let now = state.now();
    inner.metrics.index_size.set(inner.index.len() as f64);
    inner.metrics.index_age.set(inner.index.age(now).map_or(-1.0, |a| a.as_secs_f64()));
    let body = inner.registry.render();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))],
        body,
    )
        .into_response()
}

/// Convenience for tests and the fuzz target: a request with a peer address set.
pub fn with_peer(mut req: Request<Body>, peer: SocketAddr) -> Request<Body> {
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}
