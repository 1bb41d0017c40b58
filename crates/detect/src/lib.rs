//! Windows per key: the `detect` stage of `acquire → match → detect → decide`.
//!
//! A [`Detector`] holds one [`WindowSpec`] per rule (indexed by [`RuleId`])
//! and, per `(rule, key)`, the state of that window. [`Detector::observe`]
//! feeds one [`Event`] and returns a [`Trigger`] when the window's threshold
//! is reached. The crate is pure: no I/O, no clock, no randomness — time is
//! always the event's time (or the `now` handed to [`Detector::service`],
//! [`Detector::cleanup`] or [`Detector::purge`]).
//!
//! # Window kinds
//!
//! * [`WindowSpec::Fail2ban`] reproduces fail2ban 1.0.2's `FailManager` and
//!   `FailTicket` (see [`fail2ban`](self#fail2ban-semantics) below).
//! * [`WindowSpec::Count`] is an exact sliding window over event weights.
//! * [`WindowSpec::Distinct`] counts distinct [`Event::distinct`] values.
//! * [`WindowSpec::Once`] triggers on every event and keeps no state.
//!
//! On a trigger the `(rule, key)` state is **dropped** for every kind (like
//! fail2ban's `FailManager.toBan`, which removes the ticket it hands to the
//! jail): failures after a trigger start a new window.
//!
//! # Fail2ban semantics
//!
//! Per key there is at most one ticket `{first, last, retry, failures}`
//! (`last` is what fail2ban's `FailTicket.getTime()` returns: the newest
//! failure time; `first` is `_firstTime`). For a failure at `t` with weight
//! `w` (fail2ban's `count` argument of `FailManager.addFailure`):
//!
//! 1. no ticket: a new one with `first = last = t`, `retry = w`;
//! 2. otherwise, only if `t > last`: when `first < t - findtime` the retry
//!    count is *aged* to `round_half_even(retry / (t - first) * findtime)` and
//!    `first = t - findtime`; then `last = t`. Then `retry += w` — also for a
//!    failure older than `last` (time going backwards still counts, exactly as
//!    in fail2ban, and does not move `last`);
//! 3. `retry >= maxretry` triggers; the trigger's `time` is the ticket's
//!    `last` (fail2ban bans from the ticket time, so `until = last + bantime`).
//!
//! A failure never drops a stale ticket by itself: a ticket whose `last` is
//! older than `findtime` is still *aged* by its next failure (step 2), as in
//! fail2ban. Stale tickets are dropped only by the cleanup, on the caller's
//! schedule:
//!
//! * [`Detector::service`]`(now)` is fail2ban's `Filter.performSvc()`: per
//!   rule, at most once per [`FAIL2BAN_SVC_INTERVAL`] (5 s) of `now`
//!   (`if now >= next_svc { next_svc = now + 5 s; cleanup(now) }`, `next_svc`
//!   starting at minus infinity). fail2ban calls it from the polling thread
//!   (emulated as "before every line" by `bench/fail2ban_replay.py`), every
//!   100 processed lines and after each ban; a replay calls it before each
//!   line with the line clock (`now = max(now, line time)`). The two calls on
//!   the line path need no emulation then: they happen at the same `now` as
//!   the line's own service call, after it, and the throttle makes a second
//!   call at the same `now` a no-op (the first either ran and set
//!   `next_svc = now + 5 s > now`, or found `now < next_svc`).
//! * [`Detector::cleanup`]`(now)` is `FailManager.cleanup(now)` without the
//!   throttle: it drops every fail2ban ticket with `last <= now - findtime`.
//!   Calling it before every failure at the monotone clock gives the
//!   "cleanup always up to date" limit of fail2ban's behaviour.
//!
//! Both cost O(dropped) amortised: per rule, tickets are indexed by `last`
//! in a list that is in time order when failures arrive in time order (O(1)
//! per failure); a failure older than the list's newest ticket time goes to
//! an ordered set instead (O(log n)). `crates/decide/tests/jail_vs_fail2ban.rs`
//! checks the result against fail2ban's own `Filter.performSvc`,
//! `FailManager` and `BanManager` driven the same way.
//!
//! fail2ban's clock never goes backwards; ours may (a replay keeps one clock
//! per input). A `now` earlier than the previous service of the rule restarts
//! the schedule there instead of suspending the cleanup until the clock has
//! caught up again; for a monotone `now` this is exactly fail2ban's throttle.
//!
//! fail2ban keeps times as float seconds; we keep integer microseconds and
//! compute the aging ratio in `f64` seconds with the same operation order, so
//! results are identical for times with whole-second (or exactly
//! representable) fractions.
//!
//! Weights: fail2ban's filter (`processLineAndAdd`) always adds failures with
//! `count = 1`, also for multi-line failures; `count > 1` only comes from
//! `fail2ban-client set <jail> attempt` and from the ban-time-increment
//! observer. For fail2ban-identical results the matcher must therefore hand
//! `weight = 1` for filter matches of a fail2ban jail.
//!
//! The observer of `bantime.increment` adds *extra* retries for known bad
//! addresses ("one try will count than 2, 3, 5, 9 …"); that is
//! [`Detector::add_observed`] (only effective while a ticket exists, like
//! `addFailure(..., observed=True)`).
//!
//! # Keys
//!
//! IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are counted as the IPv4
//! address, as fail2ban's `IPAddr` does; triggers carry the IPv4 key.
//!
//! # Time going backwards
//!
//! Real logs are not strictly ordered. Each tracked key keeps the newest
//! time seen (`now` of that key); windows are evaluated against it, never
//! against an older event time:
//!
//! * `Fail2ban`: as fail2ban (see step 2 above): an old failure is still
//!   added to a live ticket; tickets are cleaned up against the caller's
//!   `now` ([`Detector::service`]), not against event times;
//! * `Count`/`Distinct`: an event older than `now - window` is ignored (it
//!   could never count), a slightly older one is inserted in time order and
//!   counts as long as it is inside `(now - window, now]`.
//!
//! # Bounded memory
//!
//! The number of tracked `(rule, key)` pairs is capped by
//! [`DetectorOptions::max_keys`]; when full, the least recently *observed*
//! pair is evicted (O(1), counted in [`DetectStats::evicted`]). Slots are
//! reused with their buffers, so a flood of distinct addresses allocates
//! nothing per event once the cap is reached. [`Detector::purge`] drops
//! stale pairs from the least-recent end.
//!
//! Memory per pair is a fixed slot plus, for `Count`, up to `threshold`
//! buffered events and, for `Distinct`, up to `threshold` values.
//!
//! # Persistence (restart without losing partial windows)
//!
//! With [`Detector::with_change_tracking`], [`Detector::take_dirty`] returns
//! the `(rule, key)` windows changed since the last call — upserts as a
//! versioned, serde-serialisable [`SavedWindow`], deletes as `None` — and
//! [`Detector::take_dirty_rules`] the fail2ban rules whose service schedule
//! moved ([`SavedRule`]). The daemon writes them in the same store
//! transaction as the read positions; at start [`Detector::restore`] and
//! [`Detector::restore_rules`] rebuild every index (maps, LRU order, the
//! fail2ban time-ordered ticket list), so that the detector continues
//! exactly as an uninterrupted one: an address whose failures straddle a
//! `kill -9` is still banned. The [`persist`] module docs describe the
//! daemon's side step by step, with measured record sizes.
//!
//! # Keyed hashing (HashDoS)
//!
//! Keys are attacker-controlled (an IPv6 attacker picks 64 bits of the
//! address; user names; any captured field), so every map keyed by them
//! hashes with [`KeyHasher`], foldhash keyed by
//! [`DetectorOptions::hash_seed`]: without the seed, colliding keys cannot be
//! crafted offline. The crate draws no randomness itself: the binary passes a
//! random seed (tests a fixed one), and no output depends on it (listings are
//! sorted, never in map order).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use stadtwache_core::{Duration, Event, Key, RuleId, Timestamp};

/// The hasher of every map keyed by observed data (see the crate docs,
/// "Keyed hashing"): foldhash with a caller-supplied seed. Not a MAC — it
/// only keeps an attacker who does not know the seed from choosing keys that
/// share a probe sequence.
pub type KeyHasher = foldhash::fast::FixedState;

/// A map keyed by observed data, hashed with [`KeyHasher`].
pub type KeyMap<K, V> = HashMap<K, V, KeyHasher>;

/// A set of observed data, hashed with [`KeyHasher`].
pub type KeySet<K> = HashSet<K, KeyHasher>;

/// The [`KeyHasher`] for `seed`: the same seed hashes the same, another seed
/// differently.
#[inline]
pub fn key_hasher(seed: u64) -> KeyHasher {
    foldhash::fast::FixedState::with_seed(seed)
}

/// How a rule turns events into triggers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WindowSpec {
    /// fail2ban 1.0.2's `maxretry`/`findtime` ticket semantics (not an exact
    /// sliding window, see the crate docs).
    Fail2ban { maxretry: u32, findtime: Duration },
    /// Exact sliding window: the sum of event weights with
    /// `now - window < time <= now` reaches `threshold`.
    Count { threshold: u32, window: Duration },
    /// At least `threshold` distinct [`Event::distinct`] values were seen per
    /// key within `window`. Events without a distinct value are ignored.
    Distinct { threshold: u32, window: Duration },
    /// Every event triggers (exploit probes). Keeps no state.
    Once,
}

impl WindowSpec {
    /// The window length (`findtime` for fail2ban, zero for `Once`).
    pub fn window(&self) -> Duration {
        match *self {
            WindowSpec::Fail2ban { findtime, .. } => findtime,
            WindowSpec::Count { window, .. } | WindowSpec::Distinct { window, .. } => window,
            WindowSpec::Once => Duration::ZERO,
        }
    }

    /// The threshold (`maxretry` for fail2ban, 1 for `Once`).
    pub fn threshold(&self) -> u32 {
        match *self {
            WindowSpec::Fail2ban { maxretry, .. } => maxretry,
            WindowSpec::Count { threshold, .. } | WindowSpec::Distinct { threshold, .. } => threshold,
            WindowSpec::Once => 1,
        }
    }

    pub fn kind(&self) -> WindowKind {
        match self {
            WindowSpec::Fail2ban { .. } => WindowKind::Fail2ban,
            WindowSpec::Count { .. } => WindowKind::Count,
            WindowSpec::Distinct { .. } => WindowKind::Distinct,
            WindowSpec::Once => WindowKind::Once,
        }
    }

    /// Checks a spec for values that make no sense (they never panic, but
    /// they never or always trigger). The CLI reports these as config errors.
    pub fn validate(&self) -> Result<(), SpecError> {
        let window = self.window();
        if !matches!(self, WindowSpec::Once) && window.0 <= 0 {
            return Err(SpecError::NonPositiveWindow { window });
        }
        if matches!(self, WindowSpec::Count { threshold: 0, .. } | WindowSpec::Distinct { threshold: 0, .. }) {
            return Err(SpecError::ZeroThreshold);
        }
        Ok(())
    }
}

/// A window spec that cannot do anything useful.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("C040 window length must be positive, got {window}")]
    NonPositiveWindow { window: Duration },
    #[error("C041 threshold must be at least 1")]
    ZeroThreshold,
}

impl SpecError {
    pub fn code(&self) -> &'static str {
        match self {
            SpecError::NonPositiveWindow { .. } => "C040",
            SpecError::ZeroThreshold => "C041",
        }
    }
}

/// Which kind of window produced a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    Fail2ban,
    Count,
    Distinct,
    Once,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectorOptions {
    /// Maximum number of tracked `(rule, key)` pairs (at least 1).
    pub max_keys: usize,
    /// Maximum number of line numbers kept as evidence per trigger.
    pub evidence_cap: usize,
    /// The key of the maps' hasher ([`key_hasher`]). A daemon must pass a
    /// secret random value (HashDoS); the default, 0, is for tests and tools.
    /// Nothing the detector outputs depends on it.
    pub hash_seed: u64,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        DetectorOptions { max_keys: 100_000, evidence_cap: 16, hash_seed: 0 }
    }
}

/// Counters for status output and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DetectStats {
    /// `(rule, key)` pairs currently tracked.
    pub tracked_keys: usize,
    /// Pairs dropped because the cap was reached.
    pub evicted: u64,
    /// Pairs dropped by [`Detector::purge`] because their window was over.
    pub purged: u64,
    /// Events observed (including ignored ones).
    pub events: u64,
    /// Triggers returned.
    pub triggers: u64,
    /// Events for a rule id without a spec (ignored).
    pub unknown_rule: u64,
    /// Count/Distinct events older than their key's window (ignored).
    pub too_old: u64,
    /// fail2ban tickets dropped by [`Detector::service`] / [`Detector::cleanup`].
    pub cleaned: u64,
}

/// What the window looked like when it triggered (for explanations).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowSummary {
    pub kind: WindowKind,
    /// `maxretry` / `threshold` (1 for `Once`).
    pub threshold: u32,
    /// `findtime` / `window` (zero for `Once`).
    pub window: Duration,
    /// Start of the window the count refers to. For fail2ban this is the
    /// ticket's `firstTime`, which aging moves forward to `last - findtime`.
    pub window_start: Timestamp,
    /// Number of observations merged into the count (fail2ban's `failures`;
    /// differs from `count` when weights are not 1 or after aging).
    pub observations: u64,
    /// For `Distinct`: the distinct values in the window (capped like evidence).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub distinct_values: Vec<Arc<str>>,
}

/// A window reached its threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trigger {
    pub rule: RuleId,
    pub key: Key,
    /// Time of the trigger: the newest failure time of the window (fail2ban:
    /// the ticket time; the ban runs from here).
    pub time: Timestamp,
    /// fail2ban: retry count; Count: sum of weights; Distinct: distinct values.
    pub count: u64,
    /// Time of the oldest observation still part of the window.
    pub first_seen: Timestamp,
    /// `line_no` of contributing events, oldest first, capped (newest kept).
    pub evidence: Vec<u64>,
    pub window: WindowSummary,
}

/// Partial state of one `(rule, key)`, for `explain` while no trigger happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowSnapshot {
    pub rule: RuleId,
    pub key: Key,
    pub count: u64,
    pub last_seen: Timestamp,
    pub first_seen: Timestamp,
    pub evidence: Vec<u64>,
    pub window: WindowSummary,
}

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct DistinctEntry {
    value: Arc<str>,
    first: i64,
    last: i64,
    line: u64,
}

/// Per `(rule, key)` state. One struct for all kinds so that a reused slot
/// keeps its buffers whatever kind it served before.
#[derive(Debug, Default)]
struct State {
    /// Newest time seen for this key.
    now: i64,
    // fail2ban ticket
    active: bool,
    first: i64,
    last: i64,
    first_seen: i64,
    retry: i64,
    failures: u64,
    lines: VecDeque<u64>,
    // count: (time, weight, line), time ordered
    events: VecDeque<(i64, u32, u64)>,
    sum: u64,
    // distinct
    values: Vec<DistinctEntry>,
}

impl State {
    fn reset(&mut self, now: i64) {
        self.now = now;
        self.active = false;
        self.first = 0;
        self.last = 0;
        self.first_seen = 0;
        self.retry = 0;
        self.failures = 0;
        self.lines.clear();
        self.events.clear();
        self.sum = 0;
        self.values.clear();
    }
}

#[derive(Debug)]
struct Slot {
    rule: u32,
    key: Key,
    /// LRU list (by observation).
    prev: u32,
    next: u32,
    /// Where a fail2ban ticket is indexed by its time (`state.last`).
    timed: Timed,
    /// The rule's time-ordered ticket list, when `timed == Timed::List`.
    tprev: u32,
    tnext: u32,
    /// Recency stamp (larger = observed more recently); saved so that a
    /// restore rebuilds the LRU order.
    lru: u64,
    /// In [`Dirty::slots`] (persistence tracking on).
    dirty: bool,
    state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timed {
    /// Not indexed (not a fail2ban ticket).
    No,
    /// In [`Svc`]'s list, which is ordered by `last`.
    List,
    /// In [`Svc::late`] (its `last` was older than the list's newest).
    Late,
}

/// fail2ban's service state of one rule (`Filter.performSvc` +
/// `FailManager.cleanup`), and its tickets indexed by time.
#[derive(Debug)]
struct Svc {
    /// `now` of the last service that ran (`next_svc - 5 s` in fail2ban's
    /// terms); `i64::MIN` before the first.
    last_run: i64,
    /// Oldest / newest ticket of the time-ordered list.
    oldest: u32,
    newest: u32,
    /// Tickets that did not fit at the newest end of the list: `(last, slot)`.
    late: BTreeSet<(i64, u32)>,
}

impl Default for Svc {
    fn default() -> Self {
        Svc { last_run: i64::MIN, oldest: NIL, newest: NIL, late: BTreeSet::new() }
    }
}

/// fail2ban's `Filter.performSvc` throttle: at most one cleanup per 5 s.
pub const FAIL2BAN_SVC_INTERVAL: Duration = Duration(5_000_000);

const DEAD_KEY: Key = Key::Ip(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));

/// Windows per `(rule, key)`. See the crate docs.
#[derive(Debug)]
pub struct Detector {
    specs: Vec<WindowSpec>,
    maps: Vec<KeyMap<Key, u32>>,
    /// Per rule (used for `Fail2ban` rules only).
    svc: Vec<Svc>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Most recently observed.
    head: u32,
    /// Least recently observed.
    tail: u32,
    opts: DetectorOptions,
    stats: DetectStats,
    /// Newest event time seen.
    clock: i64,
    /// Last recency stamp handed out.
    tick: u64,
    /// Changes since the last `take_dirty*` (`None`: tracking off).
    dirty: Option<Box<Dirty>>,
    /// `[lo, hi)`: the `now`s for which [`Detector::service`] skips every
    /// rule (`last_run <= now < last_run + 5 s` for each fail2ban rule);
    /// kept by [`Detector::service_quiet_update`] whenever a `last_run` changes.
    quiet: (i64, i64),
    /// `Fail2ban` events go through [`Detector::observe_f2b`] (off: the
    /// general path of [`Detector::observe`] for them too; tests compare).
    f2b_fast: bool,
}

/// What changed since the last export (see [`persist`]).
#[derive(Debug, Default)]
struct Dirty {
    /// Slots whose state changed (possibly freed or reused since).
    slots: Vec<u32>,
    /// Pairs removed (trigger, cleanup, purge, forget, eviction).
    removed: Vec<(u32, Key)>,
    /// Per rule: the service state changed.
    rules: Vec<bool>,
}

/// fail2ban `FailTicket.adjustTime`: python `int(round(retry / float(dt) * maxTime))`.
fn f2b_age(retry: i64, dt_us: i64, findtime_us: i64) -> i64 {
    let dt = dt_us as f64 / 1e6;
    let ft = findtime_us as f64 / 1e6;
    let v = (retry as f64 / dt * ft).round_ties_even();
    if v.is_finite() { v as i64 } else { retry }
}

/// `::ffff:a.b.c.d` → `a.b.c.d` (fail2ban's `IPAddr` does the same, so both
/// spellings share one ticket); `None` for every other key.
pub fn canonical_mapped(key: &Key) -> Option<Key> {
    match key {
        Key::Ip(std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| Key::Ip(std::net::IpAddr::V4(v4))),
        _ => None,
    }
}

/// One failure of a fail2ban window (`FailManager.addFailure` with
/// `FailTicket`'s aging): `fresh` starts a new window at the event's time;
/// else the window's start moves to `time - findtime` and the count ages.
/// `ft`: findtime in microseconds; `cap`: evidence lines kept.
#[inline(always)]
fn f2b_step(st: &mut State, fresh: bool, ev: &Event, ft: i64, cap: usize) {
    let t = ev.time.0;
    if fresh {
        st.active = true;
        st.first = t;
        st.last = t;
        st.first_seen = t;
        st.retry = i64::from(ev.weight);
        st.failures = 1;
        st.lines.clear();
    } else {
        if t > st.last {
            let lo = t.saturating_sub(ft);
            if st.first < lo {
                st.retry = f2b_age(st.retry, t.saturating_sub(st.first), ft);
                st.first = lo;
            }
            st.last = t;
        }
        st.first_seen = st.first_seen.min(t);
        st.retry = st.retry.saturating_add(i64::from(ev.weight));
        st.failures += 1;
    }
    st.now = st.now.max(t);
    push_capped(&mut st.lines, cap, ev.line_no);
}

fn push_capped(buf: &mut VecDeque<u64>, cap: usize, line: u64) {
    if cap == 0 {
        return;
    }
    while buf.len() >= cap {
        buf.pop_front();
    }
    buf.push_back(line);
}

impl Detector {
    pub fn new(specs: Vec<WindowSpec>, opts: DetectorOptions) -> Self {
        let opts = DetectorOptions { max_keys: opts.max_keys.clamp(1, (NIL - 1) as usize), ..opts };
        let maps = specs.iter().map(|_| KeyMap::with_hasher(key_hasher(opts.hash_seed))).collect();
        let svc = specs.iter().map(|_| Svc::default()).collect();
        let mut d = Detector {
            specs,
            maps,
            svc,
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            opts,
            stats: DetectStats::default(),
            clock: i64::MIN,
            tick: 0,
            dirty: None,
            quiet: (i64::MIN, i64::MIN),
            f2b_fast: true,
        };
        d.service_quiet_update();
        d
    }

    /// Recomputes [`Detector::quiet`] from the rules' `last_run`.
    fn service_quiet_update(&mut self) {
        let (mut lo, mut hi) = (i64::MIN, i64::MAX);
        for (spec, svc) in self.specs.iter().zip(&self.svc) {
            if matches!(spec, WindowSpec::Fail2ban { .. }) {
                lo = lo.max(svc.last_run);
                hi = hi.min(svc.last_run.saturating_add(FAIL2BAN_SVC_INTERVAL.0));
            }
        }
        self.quiet = (lo, hi);
    }

    /// Sets [`DetectorOptions::evidence_cap`], before the first event (the
    /// line numbers kept per window). 0 for a caller that never looks at a
    /// trigger's `evidence` (a replay without observers): nothing is kept.
    pub fn set_evidence_cap(&mut self, cap: usize) {
        self.opts.evidence_cap = cap;
    }

    pub fn specs(&self) -> &[WindowSpec] {
        &self.specs
    }

    pub fn stats(&self) -> DetectStats {
        self.stats
    }

    /// The newest event time observed so far (a monotone clock; `None`
    /// before the first event). In replay, hand this as `now` to the
    /// decider so that time never goes backwards there either.
    pub fn clock(&self) -> Option<Timestamp> {
        (self.clock != i64::MIN).then_some(Timestamp(self.clock))
    }

    // ---- LRU list -------------------------------------------------------

    #[inline]
    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
        let s = &mut self.slots[i as usize];
        s.prev = NIL;
        s.next = NIL;
    }

    #[inline]
    fn push_front(&mut self, i: u32) {
        let old = self.head;
        {
            let s = &mut self.slots[i as usize];
            s.prev = NIL;
            s.next = old;
        }
        if old != NIL {
            self.slots[old as usize].prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
    }

    #[inline]
    fn touch(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }

    // ---- fail2ban tickets by time ----------------------------------------

    /// Indexes the fail2ban ticket in slot `i` by its `last` (not indexed yet).
    fn time_index(&mut self, i: u32) {
        let (r, last) = {
            let s = &self.slots[i as usize];
            debug_assert_eq!(s.timed, Timed::No);
            (s.rule as usize, s.state.last)
        };
        let svc = &mut self.svc[r];
        let newest = svc.newest;
        if newest == NIL || self.slots[newest as usize].state.last <= last {
            let s = &mut self.slots[i as usize];
            s.timed = Timed::List;
            s.tprev = newest;
            s.tnext = NIL;
            if newest != NIL {
                self.slots[newest as usize].tnext = i;
            } else {
                svc.oldest = i;
            }
            svc.newest = i;
        } else {
            svc.late.insert((last, i));
            self.slots[i as usize].timed = Timed::Late;
        }
    }

    /// Removes slot `i` from the time index (before its `last` changes).
    fn time_unindex(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        let timed = std::mem::replace(&mut s.timed, Timed::No);
        let (r, prev, next, last) = (s.rule as usize, s.tprev, s.tnext, s.state.last);
        s.tprev = NIL;
        s.tnext = NIL;
        match timed {
            Timed::No => {}
            Timed::Late => {
                self.svc[r].late.remove(&(last, i));
            }
            Timed::List => {
                if prev != NIL {
                    self.slots[prev as usize].tnext = next;
                } else {
                    self.svc[r].oldest = next;
                }
                if next != NIL {
                    self.slots[next as usize].tprev = prev;
                } else {
                    self.svc[r].newest = prev;
                }
            }
        }
    }

    /// `FailManager.cleanup(now)` for rule `r`: drops the tickets with
    /// `last <= now - findtime`. O(dropped) (+ log n per late ticket).
    fn cleanup_rule(&mut self, r: usize, now: i64) -> usize {
        let Some(WindowSpec::Fail2ban { findtime, .. }) = self.specs.get(r).copied() else {
            return 0;
        };
        let lim = now.saturating_sub(findtime.0);
        let mut n = 0;
        loop {
            let i = self.svc[r].oldest;
            if i == NIL || self.slots[i as usize].state.last > lim {
                break;
            }
            self.remove_slot(i);
            n += 1;
        }
        while let Some(&(last, i)) = self.svc[r].late.first() {
            if last > lim {
                break;
            }
            self.remove_slot(i);
            n += 1;
        }
        self.stats.cleaned += n as u64;
        n
    }

    /// Removes slot `i` from its map and the lists and frees it.
    fn remove_slot(&mut self, i: u32) {
        self.time_unindex(i);
        self.unlink(i);
        let s = &mut self.slots[i as usize];
        let key = std::mem::replace(&mut s.key, DEAD_KEY);
        let rule = s.rule as usize;
        // Drop Arc<str> references held by the state; keep the buffers.
        s.state.values.clear();
        if let Some(m) = self.maps.get_mut(rule) {
            m.remove(&key);
        }
        if let Some(d) = &mut self.dirty {
            d.removed.push((rule as u32, key));
        }
        self.free.push(i);
        self.stats.tracked_keys -= 1;
    }

    #[inline(never)]
    fn insert(&mut self, rule: u32, key: &Key, now: i64) -> u32 {
        if self.stats.tracked_keys >= self.opts.max_keys && self.tail != NIL {
            let victim = self.tail;
            self.remove_slot(victim);
            self.stats.evicted += 1;
        }
        let i = match self.free.pop() {
            Some(i) => {
                let s = &mut self.slots[i as usize];
                s.rule = rule;
                s.key = key.clone();
                s.state.reset(now);
                i
            }
            None => {
                let i = self.slots.len() as u32;
                let mut state = State::default();
                state.reset(now);
                self.slots.push(Slot {
                    rule,
                    key: key.clone(),
                    prev: NIL,
                    next: NIL,
                    timed: Timed::No,
                    tprev: NIL,
                    tnext: NIL,
                    lru: 0,
                    dirty: false,
                    state,
                });
                i
            }
        };
        self.push_front(i);
        if let Some(m) = self.maps.get_mut(rule as usize) {
            m.insert(key.clone(), i);
        }
        self.stats.tracked_keys += 1;
        i
    }

    /// The slot of `(rule, key)` (inserted if new), made the most recently
    /// observed, and marked changed.
    #[inline(always)]
    fn lookup_or_insert(&mut self, rule: u32, key: &Key, now: i64) -> u32 {
        let i = match self.maps[rule as usize].get(key) {
            Some(&i) => {
                self.touch(i);
                i
            }
            None => self.insert(rule, key, now),
        };
        self.tick += 1;
        self.slots[i as usize].lru = self.tick;
        self.mark_dirty(i);
        i
    }

    /// Records that the state of slot `i` changed (when tracking).
    fn mark_dirty(&mut self, i: u32) {
        if let Some(d) = &mut self.dirty {
            let s = &mut self.slots[i as usize];
            if !s.dirty {
                s.dirty = true;
                d.slots.push(i);
            }
        }
    }

    // ---- public API -----------------------------------------------------

    /// Feeds one event. Returns a trigger when the rule's window fires; the
    /// `(rule, key)` state is then dropped (a new window starts).
    #[inline]
    pub fn observe(&mut self, ev: &Event) -> Option<Trigger> {
        match self.specs.get(ev.rule.0 as usize) {
            Some(&WindowSpec::Fail2ban { maxretry, findtime }) if self.f2b_fast => {
                self.observe_f2b(ev, maxretry, findtime.0)
            }
            _ => self.observe_general(ev),
        }
    }

    /// [`Detector::observe`] for a `Fail2ban` rule: the same steps as the
    /// general path, in one function, and a ticket that is the newest of its
    /// rule's time list stays where it is when its time moves on (it is
    /// still the newest: every other ticket of the list is at most its old
    /// `last`), instead of leaving the list and joining it again at the end.
    fn observe_f2b(&mut self, ev: &Event, maxretry: u32, ft: i64) -> Option<Trigger> {
        self.stats.events += 1;
        let t = ev.time.0;
        self.clock = self.clock.max(t);
        let r = ev.rule.0;
        let mapped = canonical_mapped(&ev.key);
        let i = self.lookup_or_insert(r, mapped.as_ref().unwrap_or(&ev.key), t);
        let newest = self.svc[r as usize].newest == i;
        let s = &mut self.slots[i as usize];
        let fresh = !s.state.active;
        let moves = !fresh && t > s.state.last;
        // (a ticket in the late set is keyed by its `last`: out before it changes)
        let reindex = moves && !(newest && s.timed == Timed::List);
        if reindex {
            self.time_unindex(i);
        }
        let cap = self.opts.evidence_cap;
        let st = &mut self.slots[i as usize].state;
        f2b_step(st, fresh, ev, ft, cap);
        if st.retry >= i64::from(maxretry) {
            let spec = WindowSpec::Fail2ban { maxretry, findtime: Duration(ft) };
            let trig = self.f2b_trigger(i, spec);
            self.remove_slot(i);
            self.stats.triggers += 1;
            Some(trig)
        } else {
            if fresh || reindex {
                self.time_index(i);
            }
            None
        }
    }

    /// [`Detector::observe`] for every kind (`Fail2ban` too when
    /// `f2b_fast` is off).
    #[inline(never)]
    fn observe_general(&mut self, ev: &Event) -> Option<Trigger> {
        self.stats.events += 1;
        self.clock = self.clock.max(ev.time.0);
        let r = ev.rule.0;
        let Some(spec) = self.specs.get(r as usize).copied() else {
            self.stats.unknown_rule += 1;
            return None;
        };
        let t = ev.time.0;
        let cap = self.opts.evidence_cap;
        let mapped;
        let key = match canonical_mapped(&ev.key) {
            Some(k) => {
                mapped = k;
                &mapped
            }
            None => &ev.key,
        };
        let trig = match spec {
            WindowSpec::Once => Some(Trigger {
                rule: ev.rule,
                key: key.clone(),
                time: ev.time,
                count: u64::from(ev.weight),
                first_seen: ev.time,
                evidence: if cap > 0 { vec![ev.line_no] } else { Vec::new() },
                window: WindowSummary {
                    kind: WindowKind::Once,
                    threshold: 1,
                    window: Duration::ZERO,
                    window_start: ev.time,
                    observations: 1,
                    distinct_values: Vec::new(),
                },
            }),
            WindowSpec::Fail2ban { maxretry, findtime } => {
                let i = self.lookup_or_insert(r, key, t);
                let (fresh, moves) = {
                    let st = &self.slots[i as usize].state;
                    (!st.active, st.active && t > st.last)
                };
                if moves {
                    self.time_unindex(i);
                }
                let st = &mut self.slots[i as usize].state;
                f2b_step(st, fresh, ev, findtime.0, cap);
                if st.retry >= i64::from(maxretry) {
                    let trig = self.f2b_trigger(i, spec);
                    self.remove_slot(i);
                    Some(trig)
                } else {
                    if fresh || moves {
                        self.time_index(i);
                    }
                    None
                }
            }
            WindowSpec::Count { threshold, window } => {
                let i = self.lookup_or_insert(r, key, t);
                let st = &mut self.slots[i as usize].state;
                st.now = st.now.max(t);
                let lo = st.now.saturating_sub(window.0);
                while let Some(&(et, w, _)) = st.events.front() {
                    if et > lo {
                        break;
                    }
                    st.sum -= u64::from(w);
                    st.events.pop_front();
                }
                if t <= lo {
                    self.stats.too_old += 1;
                } else if ev.weight > 0 {
                    let pos = st.events.partition_point(|&(et, _, _)| et <= t);
                    st.events.insert(pos, (t, ev.weight, ev.line_no));
                    st.sum += u64::from(ev.weight);
                }
                if st.sum >= u64::from(threshold) {
                    let trig = self.count_trigger(i, spec);
                    self.remove_slot(i);
                    Some(trig)
                } else {
                    None
                }
            }
            WindowSpec::Distinct { threshold, window } => {
                let i = self.lookup_or_insert(r, key, t);
                let st = &mut self.slots[i as usize].state;
                st.now = st.now.max(t);
                let lo = st.now.saturating_sub(window.0);
                st.values.retain(|e| e.last > lo);
                if t <= lo {
                    self.stats.too_old += 1;
                } else if let Some(v) = &ev.distinct {
                    match st.values.iter_mut().find(|e| *e.value == **v) {
                        Some(e) => {
                            e.first = e.first.min(t);
                            if t >= e.last {
                                e.last = t;
                                e.line = ev.line_no;
                            }
                        }
                        None => st.values.push(DistinctEntry { value: v.clone(), first: t, last: t, line: ev.line_no }),
                    }
                }
                if st.values.len() as u64 >= u64::from(threshold) {
                    let trig = self.distinct_trigger(i, spec);
                    self.remove_slot(i);
                    Some(trig)
                } else {
                    None
                }
            }
        };
        if trig.is_some() {
            self.stats.triggers += 1;
        }
        trig
    }

    /// fail2ban's `FailManager.addFailure(ticket, extra, observed=True)`: adds
    /// `extra` retries to an *existing* fail2ban ticket of `(rule, key)` (the
    /// ban-time-increment observer's bonus for known bad addresses). Without a
    /// ticket (e.g. just banned) nothing happens. Returns a trigger when the
    /// ticket now reaches `maxretry`.
    pub fn add_observed(&mut self, rule: RuleId, key: &Key, time: Timestamp, extra: u32) -> Option<Trigger> {
        let mapped = canonical_mapped(key);
        let key = mapped.as_ref().unwrap_or(key);
        let spec = self.specs.get(rule.0 as usize).copied()?;
        let WindowSpec::Fail2ban { maxretry, findtime } = spec else {
            return None;
        };
        let i = *self.maps[rule.0 as usize].get(key)?;
        let t = time.0;
        let moves = {
            let st = &self.slots[i as usize].state;
            if !st.active {
                return None;
            }
            t > st.last
        };
        if moves {
            self.time_unindex(i);
        }
        self.mark_dirty(i);
        let st = &mut self.slots[i as usize].state;
        if t > st.last {
            let lo = t.saturating_sub(findtime.0);
            if st.first < lo {
                st.retry = f2b_age(st.retry, t.saturating_sub(st.first), findtime.0);
                st.first = lo;
            }
            st.last = t;
        }
        st.now = st.now.max(t);
        st.retry = st.retry.saturating_add(i64::from(extra));
        st.failures += 1;
        if st.retry >= i64::from(maxretry) {
            let trig = self.f2b_trigger(i, spec);
            self.remove_slot(i);
            self.stats.triggers += 1;
            Some(trig)
        } else {
            if moves {
                self.time_index(i);
            }
            None
        }
    }

    /// fail2ban's `Filter.performSvc()` at `now`, for every `Fail2ban` rule:
    /// a rule whose last service ran less than [`FAIL2BAN_SVC_INTERVAL`]
    /// before `now` is skipped (fail2ban's throttle, `next_svc = now + 5 s`);
    /// otherwise its tickets with `last <= now - findtime` are dropped
    /// ([`Detector::cleanup`]). A `now` earlier than the rule's last service
    /// restarts the schedule (see the crate docs). Returns how many tickets
    /// were dropped.
    ///
    /// Call it as fail2ban does: before each line, with the line clock
    /// (`max` of the times seen so far), before that line's events.
    #[inline]
    pub fn service(&mut self, now: Timestamp) -> usize {
        // every rule's throttle holds (the common case: once per 5 s of log
        // time there is something to do)
        if self.quiet.0 <= now.0 && now.0 < self.quiet.1 {
            return 0;
        }
        self.service_rules(now)
    }

    fn service_rules(&mut self, now: Timestamp) -> usize {
        let now = now.0;
        let mut n = 0;
        for r in 0..self.specs.len() {
            if !matches!(self.specs[r], WindowSpec::Fail2ban { .. }) {
                continue;
            }
            let last = self.svc[r].last_run;
            if now >= last.saturating_add(FAIL2BAN_SVC_INTERVAL.0) || now < last {
                self.svc[r].last_run = now;
                if let Some(d) = &mut self.dirty {
                    d.rules[r] = true;
                }
                n += self.cleanup_rule(r, now);
            }
        }
        self.service_quiet_update();
        n
    }

    /// fail2ban's `FailManager.cleanup(now)` for every `Fail2ban` rule,
    /// without [`Detector::service`]'s throttle (and without touching its
    /// schedule): drops the tickets whose newest failure time is
    /// `<= now - findtime`. Returns how many were dropped.
    pub fn cleanup(&mut self, now: Timestamp) -> usize {
        (0..self.specs.len()).map(|r| self.cleanup_rule(r, now.0)).sum()
    }

    /// Forgets the window of `(rule, key)` (e.g. after a manual unban).
    /// Returns whether something was tracked.
    pub fn forget(&mut self, rule: RuleId, key: &Key) -> bool {
        let mapped = canonical_mapped(key);
        let key = mapped.as_ref().unwrap_or(key);
        match self.maps.get(rule.0 as usize).and_then(|m| m.get(key)).copied() {
            Some(i) => {
                self.remove_slot(i);
                true
            }
            None => false,
        }
    }

    /// Drops pairs whose window is over at `now`, walking from the least
    /// recently observed end and stopping at the first live pair (amortised
    /// O(dropped)). Returns how many were dropped.
    pub fn purge(&mut self, now: Timestamp) -> usize {
        let mut n = 0;
        while self.tail != NIL {
            let i = self.tail;
            let s = &self.slots[i as usize];
            let window = self.specs.get(s.rule as usize).map(|w| w.window().0).unwrap_or(0);
            if s.state.now > now.0.saturating_sub(window) {
                break;
            }
            self.remove_slot(i);
            n += 1;
        }
        self.stats.purged += n as u64;
        n
    }

    /// Current partial window of `(rule, key)`, if tracked.
    pub fn snapshot(&self, rule: RuleId, key: &Key) -> Option<WindowSnapshot> {
        let mapped = canonical_mapped(key);
        let key = mapped.as_ref().unwrap_or(key);
        let spec = *self.specs.get(rule.0 as usize)?;
        let i = *self.maps[rule.0 as usize].get(key)?;
        let t = match spec {
            WindowSpec::Fail2ban { .. } => self.f2b_trigger(i, spec),
            WindowSpec::Count { .. } => self.count_trigger(i, spec),
            WindowSpec::Distinct { .. } => self.distinct_trigger(i, spec),
            WindowSpec::Once => return None,
        };
        Some(WindowSnapshot {
            rule: t.rule,
            key: t.key,
            count: t.count,
            last_seen: Timestamp(self.slots[i as usize].state.now),
            first_seen: t.first_seen,
            evidence: t.evidence,
            window: t.window,
        })
    }

    fn summary(spec: WindowSpec, window_start: i64, observations: u64) -> WindowSummary {
        WindowSummary {
            kind: spec.kind(),
            threshold: spec.threshold(),
            window: spec.window(),
            window_start: Timestamp(window_start),
            observations,
            distinct_values: Vec::new(),
        }
    }

    fn f2b_trigger(&self, i: u32, spec: WindowSpec) -> Trigger {
        let s = &self.slots[i as usize];
        let st = &s.state;
        Trigger {
            rule: RuleId(s.rule),
            key: s.key.clone(),
            time: Timestamp(st.last),
            count: st.retry.max(0) as u64,
            first_seen: Timestamp(st.first_seen),
            evidence: st.lines.iter().copied().collect(),
            window: Self::summary(spec, st.first, st.failures),
        }
    }

    fn count_trigger(&self, i: u32, spec: WindowSpec) -> Trigger {
        let s = &self.slots[i as usize];
        let st = &s.state;
        let cap = self.opts.evidence_cap;
        let skip = st.events.len().saturating_sub(cap);
        Trigger {
            rule: RuleId(s.rule),
            key: s.key.clone(),
            time: Timestamp(st.now),
            count: st.sum,
            first_seen: Timestamp(st.events.front().map_or(st.now, |e| e.0)),
            evidence: st.events.iter().skip(skip).map(|e| e.2).collect(),
            window: Self::summary(spec, st.now.saturating_sub(spec.window().0), st.events.len() as u64),
        }
    }

    fn distinct_trigger(&self, i: u32, spec: WindowSpec) -> Trigger {
        let s = &self.slots[i as usize];
        let st = &s.state;
        let cap = self.opts.evidence_cap;
        let mut order: Vec<&DistinctEntry> = st.values.iter().collect();
        order.sort_by_key(|e| (e.last, e.line));
        let skip = order.len().saturating_sub(cap);
        let mut window = Self::summary(spec, st.now.saturating_sub(spec.window().0), st.values.len() as u64);
        window.distinct_values = order.iter().skip(skip).map(|e| e.value.clone()).collect();
        Trigger {
            rule: RuleId(s.rule),
            key: s.key.clone(),
            time: Timestamp(st.now),
            count: st.values.len() as u64,
            first_seen: Timestamp(st.values.iter().map(|e| e.first).min().unwrap_or(st.now)),
            evidence: order.iter().skip(skip).map(|e| e.line).collect(),
            window,
        }
    }
}

pub mod persist;

pub use persist::{RestoreStats, SAVED_VERSION, SavedRule, SavedState, SavedValue, SavedWindow, WindowRecord};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod persist_tests;
