//! [`ApiConfig`]: the `[api]` section of the daemon's configuration.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;
use stadtwache_core::Duration;

use crate::ApiError;

/// What `/v1/auth` answers while the decision index is stale (not refreshed
/// for longer than [`ApiConfig::stale_after`]).
///
/// The default is [`FailMode::Open`]: the auth endpoint sits in front of
/// every request of a web site, so failing closed turns any hiccup of the
/// daemon or its database (a long write, a full disk, a stuck refresh) into
/// a complete outage for all legitimate users — and anybody able to provoke
/// such a hiccup gets a denial of service for free. While stale the index
/// still answers from what it last knew (bans known then are still
/// enforced); only new bans are missed, which the firewall bouncer (fed
/// from the store, independently) still enforces. Every stale answer is
/// counted in `stadtwache_api_stale_answers_total` and carries the header
/// `X-Stadtwache-Stale: <age in seconds>` so that the condition is visible.
/// Sites that prefer unavailability to a missed ban choose `closed`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Answer from the last known state (allow unless a known ban matches).
    #[default]
    Open,
    /// Deny every request (`403`, reason `stale`) until the index is fresh again.
    Closed,
}

/// Configuration of the HTTP API. Every key is optional.
///
/// ```toml
/// [api]
/// listen = "127.0.0.1:8080"
/// admin_token_file = "/etc/stadtwache/admin.token"
/// trusted_proxies = ["127.0.0.1", "::1", "10.0.0.0/8"]
/// stale_after = "10s"
/// fail_mode = "open"
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address and port to listen on. Default `127.0.0.1:8080` (loopback
    /// only, CrowdSec's LAPI port, so bouncers' default `api_url` works).
    pub listen: SocketAddr,
    /// Bearer token for the admin endpoints (`Authorization: Bearer …`).
    /// Prefer `admin_token_file`. Without either, the admin endpoints answer 403.
    pub admin_token: Option<String>,
    /// File holding the admin token (first line; surrounding whitespace
    /// ignored). Read once at start by [`ApiConfig::resolve_admin_token`].
    pub admin_token_file: Option<PathBuf>,
    /// Peers (addresses or networks `a.b.c.d/n`) whose client-address header
    /// is believed. A request from any other peer is judged by its peer
    /// address, whatever headers it sends. Default: loopback (`127.0.0.0/8`,
    /// `::1`) — nginx on the same host.
    pub trusted_proxies: Vec<String>,
    /// Headers tried, in order, for the client address of a request from a
    /// trusted proxy. `X-Forwarded-For` is read from the right: the last
    /// address that is not itself a trusted proxy. Default
    /// `["X-Real-IP", "X-Forwarded-For"]`.
    pub client_ip_headers: Vec<String>,
    /// The decision index is stale when its last successful refresh is older
    /// than this. Default `10s`.
    #[serde(deserialize_with = "de_duration")]
    pub stale_after: Duration,
    /// How often the server refreshes the decision index from the store.
    /// Default `1s`. (Admin writes refresh it at once.)
    #[serde(deserialize_with = "de_duration")]
    pub refresh_interval: Duration,
    /// What `/v1/auth` answers while the index is stale; see [`FailMode`].
    pub fail_mode: FailMode,
    /// Largest accepted request body in bytes; larger ones get 413. Default 65536.
    pub max_body_bytes: usize,
    /// Largest accepted total size of the request headers (names and values)
    /// in bytes; larger get 431. Default 16384.
    pub max_header_bytes: usize,
    /// Most header fields accepted in one request. Default 64.
    pub max_headers: usize,
    /// Duration sent to bouncers for permanent decisions (CrowdSec has no
    /// permanent decisions; bouncers need a duration). Default `8760h` (a year;
    /// a bouncer restart pulls them again).
    #[serde(deserialize_with = "de_duration")]
    pub permanent_duration: Duration,
    /// Name of the reason header on `/v1/auth` answers. Default `X-Stadtwache-Reason`.
    pub reason_header: String,
    /// Most alerts returned by the admin alert list (also the default `limit`). Default 1000.
    pub max_alerts: usize,
    /// Worker threads of the server's tokio runtime. Default 2.
    pub worker_threads: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            admin_token: None,
            admin_token_file: None,
            trusted_proxies: vec!["127.0.0.0/8".into(), Ipv6Addr::LOCALHOST.to_string()],
            client_ip_headers: vec!["X-Real-IP".into(), "X-Forwarded-For".into()],
            stale_after: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(1),
            fail_mode: FailMode::Open,
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            permanent_duration: Duration::from_secs(8760 * 3600),
            reason_header: "X-Stadtwache-Reason".into(),
            max_alerts: 1000,
            worker_threads: 2,
        }
    }
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) => Ok(Duration::from_secs(i64::try_from(s).unwrap_or(i64::MAX / 1_000_000))),
        Raw::Text(t) => Duration::parse(&t).map_err(serde::de::Error::custom),
    }
}

/// A network `addr/prefix`, masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Net {
    /// `a.b.c.d`, `a.b.c.d/n`, `v6`, `v6/n`.
    pub fn parse(text: &str) -> Option<Net> {
        let text = text.trim();
        let (a, p) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr = crate::index::canonical(a.parse::<IpAddr>().ok()?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        // An IPv4-mapped prefix written on the v6 address counts from the v4 part.
        let mapped_offset = if a.contains(':') && addr.is_ipv4() { 96 } else { 0 };
        let prefix = match p {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                let p: u8 = p.parse().ok()?;
                let p = p.checked_sub(mapped_offset)?;
                if p > max {
                    return None;
                }
                p
            }
            Some(_) => return None,
        };
        Some(Net { addr: crate::index::mask(addr, prefix), prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = crate::index::canonical(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && crate::index::mask(ip, self.prefix) == self.addr
    }
}

impl ApiConfig {
    /// The admin token: `admin_token`, else the first line of
    /// `admin_token_file`. `Ok(None)` when neither is set. An empty token is an error.
    pub fn resolve_admin_token(&self) -> Result<Option<String>, ApiError> {
        if self.admin_token.is_some() && self.admin_token_file.is_some() {
            return Err(ApiError::Config("set admin_token or admin_token_file, not both".into()));
        }
        let token = match (&self.admin_token, &self.admin_token_file) {
            (Some(t), _) => t.trim().to_string(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ApiError::Config(format!("admin_token_file {}: {e}", path.display())))?;
                text.lines().next().unwrap_or("").trim().to_string()
            }
            (None, None) => return Ok(None),
        };
        if token.is_empty() {
            return Err(ApiError::Config("the admin token is empty".into()));
        }
        Ok(Some(token))
    }

    /// The parsed `trusted_proxies`; an entry that is not an address or network is an error.
    pub fn trusted_nets(&self) -> Result<Vec<Net>, ApiError> {
        self.trusted_proxies
            .iter()
            .map(|t| {
                Net::parse(t)
                    .ok_or_else(|| ApiError::Config(format!("trusted_proxies: {t:?} is not an address or network")))
            })
            .collect()
    }

    /// Checks every key (proxies, header names, sizes, durations).
    pub fn validate(&self) -> Result<(), ApiError> {
        self.trusted_nets()?;
        self.resolve_admin_token()?;
        for h in self.client_ip_headers.iter().chain(std::iter::once(&self.reason_header)) {
            if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(ApiError::Config(format!("{h:?} is not a valid header name")));
            }
        }
        if self.stale_after.0 <= 0 || self.refresh_interval.0 <= 0 || self.permanent_duration.0 <= 0 {
            return Err(ApiError::Config("stale_after, refresh_interval and permanent_duration must be > 0".into()));
        }
        if !(1..=64).contains(&self.worker_threads) {
            return Err(ApiError::Config("worker_threads must be 1..=64".into()));
        }
        if self.max_body_bytes == 0 || self.max_header_bytes < 256 || self.max_headers == 0 {
            return Err(ApiError::Config(
                "max_body_bytes must be > 0, max_header_bytes >= 256, max_headers > 0".into(),
            ));
        }
        Ok(())
    }
}
