//! [`DecisionIndex`]: the live address and network bans, in memory, for the
//! per-request endpoints (`/v1/auth`, `/v1/decisions`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use stadtwache_core::{Key, Timestamp};
use stadtwache_store::{ChangeCursor, Changes, DecisionId, Origin, Store, StoreError, StoredDecision};

/// A live ban as the index keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedDecision {
    pub id: DecisionId,
    /// The banned address, or the network address of a banned range (masked).
    pub network: IpAddr,
    /// Prefix length; 32 (v4) or 128 (v6) for a single address.
    pub prefix: u8,
    pub origin: Origin,
    /// Rule or scenario name, if any.
    pub rule: Option<String>,
    pub created: Timestamp,
    /// `None`: permanent.
    pub until: Option<Timestamp>,
}

impl IndexedDecision {
    fn max_prefix(&self) -> u8 {
        if self.network.is_ipv4() { 32 } else { 128 }
    }

    /// `true` for a network (CrowdSec scope `Range`), `false` for one address (`Ip`).
    pub fn is_range(&self) -> bool {
        self.prefix < self.max_prefix()
    }

    /// `192.0.2.1` or `192.0.2.0/24`.
    pub fn value(&self) -> String {
        if self.is_range() { format!("{}/{}", self.network, self.prefix) } else { self.network.to_string() }
    }

    /// In force at `now`.
    pub fn is_active_at(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|u| now <= u)
    }

    fn from_stored(d: &StoredDecision) -> Option<IndexedDecision> {
        if d.decision.simulated || d.deleted_at.is_some() {
            return None;
        }
        Self::from_stored_any(d)
    }

    /// Any address decision (also ended or simulated ones); `None` for text keys.
    pub(crate) fn from_stored_any(d: &StoredDecision) -> Option<IndexedDecision> {
        let Key::Ip(ip) = d.decision.key else { return None };
        let ip = canonical(ip);
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = d.decision.prefix.unwrap_or(max).min(max);
        Some(IndexedDecision {
            id: d.id,
            network: mask(ip, prefix),
            prefix,
            origin: d.decision.origin.clone(),
            rule: d.decision.rule.clone(),
            created: d.decision.created,
            until: d.decision.until,
        })
    }
}

/// What one [`DecisionIndex::refresh`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefreshOutcome {
    /// Targets added or replaced.
    pub upserted: usize,
    /// Targets removed.
    pub removed: usize,
    /// The store reported a gap (or it was the first refresh): rebuilt from scratch.
    pub rebuilt: bool,
    pub cursor: ChangeCursor,
}

/// IPv4 keys are `u32`, IPv6 `u128`; one map per prefix length.
#[derive(Default)]
struct Inner {
    v4: Vec<HashMap<u32, Arc<IndexedDecision>>>,
    v6: Vec<HashMap<u128, Arc<IndexedDecision>>>,
    /// Prefix lengths with at least one entry, longest first.
    v4_lens: Vec<u8>,
    v6_lens: Vec<u8>,
    cursor: ChangeCursor,
    len: usize,
}

impl Inner {
    fn new() -> Self {
        Inner {
            v4: (0..=32).map(|_| HashMap::new()).collect(),
            v6: (0..=128).map(|_| HashMap::new()).collect(),
            ..Inner::default()
        }
    }

    fn clear(&mut self) {
        *self = Inner { cursor: self.cursor, ..Inner::new() };
    }

    fn upsert(&mut self, d: IndexedDecision) {
        let p = usize::from(d.prefix);
        let old = match d.network {
            IpAddr::V4(a) => self.v4[p].insert(u32::from(a), Arc::new(d)),
            IpAddr::V6(a) => self.v6[p].insert(u128::from(a), Arc::new(d)),
        };
        if old.is_none() {
            self.len += 1;
        }
    }

    fn remove(&mut self, network: IpAddr, prefix: u8) -> bool {
        let p = usize::from(prefix);
        let old = match network {
            IpAddr::V4(a) => self.v4.get_mut(p).and_then(|m| m.remove(&u32::from(a))),
            IpAddr::V6(a) => self.v6.get_mut(p).and_then(|m| m.remove(&u128::from(a))),
        };
        if old.is_some() {
            self.len -= 1;
        }
        old.is_some()
    }

    fn recompute_lens(&mut self) {
        self.v4_lens = (0..=32u8).rev().filter(|&p| !self.v4[usize::from(p)].is_empty()).collect();
        self.v6_lens = (0..=128u8).rev().filter(|&p| !self.v6[usize::from(p)].is_empty()).collect();
    }

    /// Every entry containing `ip`, most specific first (active or not).
    fn containing(&self, ip: IpAddr, mut f: impl FnMut(&Arc<IndexedDecision>) -> bool) {
        match canonical(ip) {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                for &p in &self.v4_lens {
                    if let Some(d) = self.v4[usize::from(p)].get(&(bits & mask_v4(p)))
                        && !f(d)
                    {
                        return;
                    }
                }
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                for &p in &self.v6_lens {
                    if let Some(d) = self.v6[usize::from(p)].get(&(bits & mask_v6(p)))
                        && !f(d)
                    {
                        return;
                    }
                }
            }
        }
    }

    fn for_each(&self, mut f: impl FnMut(&Arc<IndexedDecision>)) {
        for m in &self.v4 {
            m.values().for_each(&mut f);
        }
        for m in &self.v6 {
            m.values().for_each(&mut f);
        }
    }
}

/// The live, non-simulated address and network decisions, in memory,
/// looked up by address (including the networks that contain it).
///
/// Thread-safe: lookups take a read lock (`std::sync::RwLock`; uncontended
/// read locks are one atomic operation each way, and writers hold the lock
/// only to apply an already fetched change set). [`DecisionIndex::refresh`]
/// follows the store's change stream from its own cursor, like a bouncer.
///
/// Text keys (user names, …) are not indexed: the HTTP endpoints ask about
/// addresses only.
pub struct DecisionIndex {
    inner: RwLock<Inner>,
    /// Serialises refreshes (the store call runs outside `inner`'s lock).
    refresh_lock: Mutex<()>,
    /// µs timestamp of the last successful refresh; `i64::MIN` = never.
    last_refresh: AtomicI64,
    refreshes: AtomicU64,
}

impl Default for DecisionIndex {
    fn default() -> Self {
        DecisionIndex::new()
    }
}

impl std::fmt::Debug for DecisionIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionIndex")
            .field("len", &self.len())
            .field("cursor", &self.cursor())
            .field("last_refresh", &self.last_refresh())
            .finish()
    }
}

impl DecisionIndex {
    /// An empty index that has never been refreshed (so it is stale).
    pub fn new() -> Self {
        DecisionIndex {
            inner: RwLock::new(Inner::new()),
            refresh_lock: Mutex::new(()),
            last_refresh: AtomicI64::new(i64::MIN),
            refreshes: AtomicU64::new(0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Pulls `store.changed_since(own cursor)` and applies it: `new` targets
    /// are inserted or replaced, `deleted` targets removed; on a `gap` (and on
    /// the first refresh) the index is rebuilt from [`ChangeCursor::START`].
    /// On success the refresh time becomes `now` (see [`Self::is_stale`]).
    ///
    /// Concurrent refreshes are serialised. A store error leaves the index
    /// and its freshness unchanged.
    pub fn refresh(&self, store: &dyn Store, now: Timestamp) -> Result<RefreshOutcome, StoreError> {
        let _guard = self.refresh_lock.lock().unwrap_or_else(|e| e.into_inner());
        let cursor = self.cursor();
        let first = self.last_refresh.load(Ordering::Acquire) == i64::MIN;
        let mut changes = store.changed_since(cursor)?;
        let rebuild = first || changes.gap || cursor == ChangeCursor::START;
        if changes.gap && cursor != ChangeCursor::START {
            // `new` is already computed as for START; `deleted` may be incomplete.
            changes.deleted.clear();
        }
        let outcome = self.apply(&changes, rebuild);
        self.last_refresh.store(now.0, Ordering::Release);
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        Ok(outcome)
    }

    /// Applies a change set (as [`Store::changed_since`] returns it). With
    /// `rebuild` the index is emptied first. Exposed for callers that already
    /// pulled the changes; [`Self::refresh`] is the usual way.
    pub fn apply(&self, changes: &Changes, rebuild: bool) -> RefreshOutcome {
        let new: Vec<IndexedDecision> = changes.new.iter().filter_map(IndexedDecision::from_stored).collect();
        let gone: Vec<(IpAddr, u8)> = changes
            .deleted
            .iter()
            .filter_map(|d| {
                let Key::Ip(ip) = d.decision.key else { return None };
                let ip = canonical(ip);
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let p = d.decision.prefix.unwrap_or(max).min(max);
                Some((mask(ip, p), p))
            })
            .collect();
        let mut inner = self.write();
        if rebuild {
            inner.clear();
        }
        let mut removed = 0;
        for (net, p) in gone {
            if inner.remove(net, p) {
                removed += 1;
            }
        }
        let upserted = new.len();
        for d in new {
            inner.upsert(d);
        }
        inner.recompute_lens();
        if changes.cursor > inner.cursor || rebuild {
            inner.cursor = changes.cursor;
        }
        RefreshOutcome { upserted, removed, rebuilt: rebuild, cursor: inner.cursor }
    }

    /// The most specific decision in force at `now` on `ip` or a network
    /// containing it. IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr, now: Timestamp) -> Option<Arc<IndexedDecision>> {
        let inner = self.read();
        let mut found = None;
        inner.containing(ip, |d| {
            if d.is_active_at(now) {
                found = Some(d.clone());
                false
            } else {
                true
            }
        });
        found
    }

    /// Every decision in force at `now` on `ip` or a network containing it,
    /// most specific first.
    pub fn lookup_all(&self, ip: IpAddr, now: Timestamp) -> Vec<Arc<IndexedDecision>> {
        let inner = self.read();
        let mut out = Vec::new();
        inner.containing(ip, |d| {
            if d.is_active_at(now) {
                out.push(d.clone());
            }
            true
        });
        out
    }

    /// Decisions in force at `now` related to the network `net/prefix`:
    /// with `contains`, those whose network contains it (as CrowdSec's
    /// `range=…&contains=true`); otherwise those inside it.
    pub fn lookup_range(&self, net: IpAddr, prefix: u8, contains: bool, now: Timestamp) -> Vec<Arc<IndexedDecision>> {
        let net = canonical(net);
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.min(max);
        let net = mask(net, prefix);
        let inner = self.read();
        let mut out = Vec::new();
        if contains {
            inner.containing(net, |d| {
                if d.prefix <= prefix && d.is_active_at(now) {
                    out.push(d.clone());
                }
                true
            });
        } else {
            inner.for_each(|d| {
                if d.network.is_ipv4() == net.is_ipv4()
                    && d.prefix >= prefix
                    && mask(d.network, prefix) == net
                    && d.is_active_at(now)
                {
                    out.push(d.clone());
                }
            });
            out.sort_by_key(|d| d.id);
        }
        out
    }

    /// Every decision in force at `now`, by id.
    pub fn all(&self, now: Timestamp) -> Vec<Arc<IndexedDecision>> {
        let inner = self.read();
        let mut out = Vec::with_capacity(inner.len);
        inner.for_each(|d| {
            if d.is_active_at(now) {
                out.push(d.clone());
            }
        });
        out.sort_by_key(|d| d.id);
        out
    }

    /// Number of indexed targets (some may be past their `until`).
    pub fn len(&self) -> usize {
        self.read().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The change-stream position the index has applied.
    pub fn cursor(&self) -> ChangeCursor {
        self.read().cursor
    }

    /// Time of the last successful refresh (`None`: never).
    pub fn last_refresh(&self) -> Option<Timestamp> {
        match self.last_refresh.load(Ordering::Acquire) {
            i64::MIN => None,
            t => Some(Timestamp(t)),
        }
    }

    /// Successful refreshes so far.
    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// How old the index is at `now` (`None`: never refreshed).
    pub fn age(&self, now: Timestamp) -> Option<stadtwache_core::Duration> {
        self.last_refresh().map(|t| now.since(t))
    }

    /// Never refreshed, or last refreshed more than `stale_after` before `now`.
    pub fn is_stale(&self, now: Timestamp, stale_after: stadtwache_core::Duration) -> bool {
        self.age(now).is_none_or(|age| age > stale_after)
    }
}

pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn mask_v4(p: u8) -> u32 {
    if p == 0 { 0 } else { u32::MAX << (32 - u32::from(p.min(32))) }
}

fn mask_v6(p: u8) -> u128 {
    if p == 0 { 0 } else { u128::MAX << (128 - u32::from(p.min(128))) }
}

pub(crate) fn mask(ip: IpAddr, p: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask_v4(p)).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask_v6(p)).into()),
    }
}
