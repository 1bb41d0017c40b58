//! The HTTP decision API of Stadtwache.
//!
//! - **nginx `auth_request`**: `GET /v1/auth` answers `204` (allow) or `403`
//!   (deny, with a reason header) for the client address, from memory
//!   ([`DecisionIndex`]). The address comes from `X-Real-IP` /
//!   `X-Forwarded-For` only when the TCP peer is a trusted proxy.
//! - **CrowdSec Local API** for bouncers (`X-Api-Key`): `GET /v1/decisions`
//!   and `GET /v1/decisions/stream`, with CrowdSec's JSON shapes, so
//!   existing bouncers (e.g. `crowdsec-firewall-bouncer`) work unmodified.
//! - **Admin** (`Authorization: Bearer <admin token>`): add, delete and list
//!   decisions, list alerts.
//! - **`/metrics`**: the shared [`stadtwache_metrics::Registry`] in the
//!   Prometheus text format.
//!
//! # Wiring in the daemon (which is synchronous: no tokio needed by the caller)
//!
//! ```no_run
//! use std::sync::{Arc, Mutex};
//! use stadtwache_api::{ApiConfig, ApiServer, ApiState, DecisionIndex, SharedStore};
//! use stadtwache_metrics::Registry;
//! use stadtwache_store::SqliteStore;
//!
//! let config = ApiConfig::default();
//! // A second connection on the daemon's database file (WAL: readers and the
//! // daemon's writer do not block each other), or the daemon's own store.
//! let store: SharedStore = Arc::new(Mutex::new(SqliteStore::open("/var/lib/stadtwache".as_ref()).unwrap()));
//! let index = Arc::new(DecisionIndex::new());
//! let registry = Arc::new(Registry::new());
//! let state = ApiState::new(config, store, index.clone(), registry).unwrap();
//! let handle = ApiServer::bind(state).unwrap();   // listens on config.listen
//! // … after a commit_batch the daemon may call index.refresh(&store, now) at
//! // once; otherwise the server refreshes every `refresh_interval`.
//! handle.shutdown().unwrap();                     // graceful
//! ```
//!
//! The store must be kept current by the daemon: `expire(now)` every second
//! (the stream and the index only learn that a decision ended from the
//! store's change log; `/v1/auth` and `/v1/decisions` also ignore decisions
//! past their `until` on their own).

mod config;
mod index;
pub mod lapi;
mod serve;
mod server;

use std::sync::{Arc, Mutex};

pub use config::{ApiConfig, FailMode, Net};
pub use index::{DecisionIndex, IndexedDecision, RefreshOutcome};
pub use serve::{ApiHandle, ApiServer};
pub use server::{AdminDecisionRequest, ApiState, Clock, router, system_now, with_peer};

/// The store as the API shares it with the daemon.
pub type SharedStore = Arc<Mutex<dyn stadtwache_store::Store>>;

/// Errors of the API crate (configuration, start-up, shutdown).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("API configuration: {0}")]
    Config(String),
    #[error("API metrics: {0}")]
    Metrics(#[from] stadtwache_metrics::MetricsError),
    #[error("API I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("API store: {0}")]
    Store(#[from] stadtwache_store::StoreError),
    #[error("API server thread panicked")]
    Panicked,
}

#[doc(hidden)]
pub mod fuzzing {
    //! Entry points for the fuzz target (not a stable API).
    pub use crate::server::parse_query;
    pub fn parse_admin_decision(body: &[u8]) -> Result<(), String> {
        crate::server::parse_admin_decision(body, stadtwache_core::Timestamp(0)).map(|_| ())
    }
}
