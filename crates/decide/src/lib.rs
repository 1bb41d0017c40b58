//! Policy: the `decide` stage of `acquire → match → detect → decide`.
//!
//! A [`Decider`] turns a detector [`Trigger`] into a [`Decision`]: ban (for
//! how long, the how-many-th time), already banned, allowlisted, or expired.
//! It is pure: `now` is always an argument. Every decision carries an
//! [`Explanation`] (rule, window summary, the policy steps applied) that
//! serialises to JSON for `stadtwache explain`.
//!
//! # Wiring for fail2ban-identical bans
//!
//! One `Detector` + one `Decider` play the role of one fail2ban jail
//! (`FailManager` + `BanManager` + observer/database). Per event, in log order:
//!
//! ```text
//! // replay: the monotone log clock; daemon: real time
//! let now = detector.clock().map_or(event.time, |c| c.max(event.time));
//! detector.service(now);                // once per line: fail2ban's throttled cleanup
//! for unban in decider.expire(now) { /* unban */ }
//! if let Some(trigger) = detector.observe(&event) {
//!     let decision = decider.decide(&trigger, now);
//!     /* act on Decision::Ban, log the others */
//! }
//! // only with bantime.increment (fail2ban's observer `failureFound`):
//! if let WindowSpec::Fail2ban { maxretry, .. } = spec {
//!     let extra = decider.bad_ip_extra_retries(&event.key, event.time, maxretry);
//!     if extra > 0 {
//!         if let Some(trigger) = detector.add_observed(event.rule, &event.key, event.time, extra) {
//!             let decision = decider.decide(&trigger, now);
//!         }
//!     }
//! }
//! ```
//!
//! `tests/jail_vs_fail2ban.rs` runs exactly this loop against fail2ban's own
//! `FailManager` + `BanManager` (via /usr/bin/python3) on 300 random
//! scenarios and requires identical bans, re-bans (prolongations) and unbans;
//! with `bantime.increment` it also runs fail2ban's `Fail2BanDb` and
//! `ObserverThread.banFound`/`failureFound` and requires identical ban
//! times and ban counts.
//!
//! The detector need **not** be told about bans: like fail2ban's
//! `FailManager.toBan`, it drops a key's window when it triggers, so failures
//! of a banned address start a fresh count. That is what fail2ban does with
//! failures while an address is banned: they are counted again (the filter
//! does not consult the ban list), and reaching `maxretry` again yields
//! [`Decision::AlreadyBanned`] — which *prolongs* the ban to
//! `new trigger time + base bantime` when that is later than the current end
//! (fail2ban's `BanManager.addBanTicket`; the ban count is not incremented and
//! the increment formula is not applied). After an unban nothing is reset:
//! a partial window that built up during the ban continues, and the ban
//! history (for `bantime.increment`) stays until purged.
//! [`Detector::forget`](stadtwache_detect::Detector::forget) exists for manual
//! unbans; it is not needed for fail2ban identity.
//!
//! Event times: fail2ban clamps a failure time in the future to `now`, and in
//! operation (not replay) treats a line whose time is more than 60 s off
//! `now` as happening `now`. That is the CLI's business (it hands the times
//! to `observe`); these crates take the times they are given.
//!
//! Ban times follow fail2ban: a ban runs from the trigger time (the ticket's
//! last failure time), not from `now`: `until = trigger.time + duration`. A
//! ban whose end is already before `now` (old log lines replayed against real
//! time) is [`Decision::Expired`] ("Ignore …, expired bantime"). An unban is
//! due when `now > until`.
//!
//! The allowlist is checked first and nothing overrides it. fail2ban checks
//! `ignoreip` *before* counting; the CLI may call [`Allowlist::matches`] before
//! `observe` to save detector memory — the result is the same.
//!
//! One `Decider` keeps one ban list for all rules it is given (bans are per
//! address, like a firewall set); use one `Decider` per fail2ban jail when
//! jails must be separate.
//!
//! The ban list and the ban history are keyed by attacker-chosen addresses
//! and values, so they hash with detect's keyed [`KeyHasher`] (HashDoS); the
//! caller supplies the seed ([`Decider::with_hash_seed`]; the binary draws a
//! random one, tests use a fixed one). Nothing the decider outputs depends on
//! the seed: [`Decider::bans`] and [`Decider::history`] are sorted.

mod allowlist;
mod increment;
mod restore;

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;

use serde::Serialize;
use stadtwache_core::{Diagnostic, Duration, Key, RuleId, Timestamp};
use stadtwache_detect::{KeyHasher, KeyMap, Trigger, WindowSummary, key_hasher};

pub use allowlist::{AllowEntry, Allowlist, canonical_ip};
pub use increment::{BanIncrement, DEFAULT_FORMULA, IncrementCalc, parse_multipliers};
pub use restore::{RestoredBan, RestoredBans};

/// Configuration errors, with a stable code and the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("C020 invalid address in allowlist: {text:?}")]
    InvalidAddress { text: String },
    #[error("C021 invalid prefix length in allowlist: {text:?}")]
    InvalidPrefix { text: String },
    #[error("C022 invalid netmask in allowlist (must be contiguous): {text:?}")]
    InvalidNetmask { text: String },
    #[error("C023 invalid IPv6 aggregation prefix {text:?} (must be 1..=128)")]
    InvalidIpv6Prefix { text: String },
    #[error("C024 invalid bantime.multipliers (integers separated by spaces): {text:?}")]
    InvalidMultipliers { text: String },
    #[error("C025 invalid bantime.factor (a non-negative number): {text:?}")]
    InvalidFactor { text: String },
    #[error("C026 unsupported bantime.formula (only the default formula; use bantime.multipliers): {text:?}")]
    UnsupportedFormula { text: String },
    #[error("C027 invalid duration: {text:?}")]
    InvalidDuration { text: String },
}

impl PolicyError {
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::InvalidAddress { .. } => "C020",
            PolicyError::InvalidPrefix { .. } => "C021",
            PolicyError::InvalidNetmask { .. } => "C022",
            PolicyError::InvalidIpv6Prefix { .. } => "C023",
            PolicyError::InvalidMultipliers { .. } => "C024",
            PolicyError::InvalidFactor { .. } => "C025",
            PolicyError::UnsupportedFormula { .. } => "C026",
            PolicyError::InvalidDuration { .. } => "C027",
        }
    }

    /// The offending text.
    pub fn text(&self) -> &str {
        match self {
            PolicyError::InvalidAddress { text }
            | PolicyError::InvalidPrefix { text }
            | PolicyError::InvalidNetmask { text }
            | PolicyError::InvalidIpv6Prefix { text }
            | PolicyError::InvalidMultipliers { text }
            | PolicyError::InvalidFactor { text }
            | PolicyError::UnsupportedFormula { text }
            | PolicyError::InvalidDuration { text } => text,
        }
    }

    pub fn to_diagnostic(&self) -> Diagnostic {
        let msg = self.to_string();
        let msg = msg.strip_prefix(self.code()).map(str::trim_start).unwrap_or(&msg).to_string();
        Diagnostic::error(self.code(), msg)
    }
}

/// What to do with triggers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Policy {
    /// fail2ban `bantime`. Negative (fail2ban: `-1`) means permanent.
    pub bantime: Duration,
    /// `bantime.increment`; `None` = off.
    pub increment: Option<BanIncrement>,
    /// `ignoreip`.
    pub allowlist: Allowlist,
    /// Ban IPv6 addresses as their `/prefix` network (e.g. 64). IPv4 and
    /// IPv4-mapped addresses are never aggregated. A prefix network that
    /// overlaps an allowlist entry is not used (the single address is banned).
    pub ipv6_prefix: Option<u8>,
    /// Decide and record bans as usual but mark them simulated (dry run).
    pub simulate: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            bantime: Duration::from_secs(600),
            increment: None,
            allowlist: Allowlist::default(),
            ipv6_prefix: None,
            simulate: false,
        }
    }
}

impl Policy {
    pub fn validate(&self) -> Result<(), PolicyError> {
        if let Some(p) = self.ipv6_prefix {
            if p == 0 || p > 128 {
                return Err(PolicyError::InvalidIpv6Prefix { text: p.to_string() });
            }
        }
        Ok(())
    }
}

/// One step of the policy, in the order applied.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Allowlist checked; `matched` is the entry that covers the key.
    Allowlist { matched: Option<String> },
    /// `::ffff:a.b.c.d` banned as `a.b.c.d`.
    MappedToIpv4 { from: Key, to: Key },
    /// IPv6 address banned as its network.
    Aggregated { prefix: u8, network: Key },
    /// Aggregation skipped because the network overlaps an allowlist entry.
    AggregationSkipped { prefix: u8, allowlist_entry: String },
    /// The ban would already be over at `now` (old lines); nothing is done.
    ExpiredBeforeNow { until: Timestamp, now: Timestamp },
    /// The key is banned already until `until` (`None` = permanent); when
    /// `prolonged`, the ban now ends at `new_until`.
    AlreadyBanned { until: Option<Timestamp>, prolonged: bool, new_until: Option<Timestamp> },
    /// The base ban time (rule's own or the policy's); `None` = permanent.
    BaseBantime { bantime: Option<Duration>, from_rule: bool },
    /// bantime.increment applied.
    Increment(IncrementCalc),
    /// bantime.increment on, but not applied (first ban or permanent).
    IncrementNotApplied { previous_bans: u32 },
    /// Dry run.
    Simulated,
}

/// Why a decision was taken (serialised for `stadtwache explain --json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Explanation {
    pub rule: RuleId,
    /// The detected key.
    pub key: Key,
    pub trigger_time: Timestamp,
    pub first_seen: Timestamp,
    pub count: u64,
    pub evidence: Vec<u64>,
    pub window: WindowSummary,
    /// The `now` of the decision.
    pub decided_at: Timestamp,
    pub steps: Vec<Step>,
}

/// The outcome of [`Decider::decide`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Ban {
        /// The banned key: the address, or the network address with `prefix`.
        key: Key,
        prefix: Option<u8>,
        /// `None` = permanent.
        duration: Option<Duration>,
        /// `None` = permanent; otherwise `trigger.time + duration`.
        until: Option<Timestamp>,
        /// 1 for the first ban of this key, 2 for the second, …
        ban_count: u32,
        simulated: bool,
        reason: Explanation,
    },
    AlreadyBanned {
        key: Key,
        prefix: Option<u8>,
        /// End of the ban after this decision (possibly prolonged).
        until: Option<Timestamp>,
        prolonged: bool,
        reason: Explanation,
    },
    Allowlisted {
        /// The allowlist entry as written.
        entry: String,
        reason: Explanation,
    },
    /// `trigger.time + bantime < now`: the ban would already be over.
    Expired { key: Key, prefix: Option<u8>, until: Timestamp, reason: Explanation },
}

impl Decision {
    pub fn reason(&self) -> &Explanation {
        match self {
            Decision::Ban { reason, .. }
            | Decision::AlreadyBanned { reason, .. }
            | Decision::Allowlisted { reason, .. }
            | Decision::Expired { reason, .. } => reason,
        }
    }

    pub fn is_ban(&self) -> bool {
        matches!(self, Decision::Ban { .. })
    }
}

/// What [`Decider::decide_quiet`] decided: the kind of [`Decision`], for a
/// ban its key and prefix (no explanation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ban { key: Key, prefix: Option<u8> },
    AlreadyBanned,
    Allowlisted,
    Expired,
}

impl Decision {
    /// The [`Outcome`] of this decision.
    pub fn outcome(&self) -> Outcome {
        match self {
            Decision::Ban { key, prefix, .. } => Outcome::Ban { key: key.clone(), prefix: *prefix },
            Decision::AlreadyBanned { .. } => Outcome::AlreadyBanned,
            Decision::Allowlisted { .. } => Outcome::Allowlisted,
            Decision::Expired { .. } => Outcome::Expired,
        }
    }
}

/// `key` or `key/prefix`.
pub fn target_string(key: &Key, prefix: Option<u8>) -> String {
    match prefix {
        Some(p) => format!("{key}/{p}"),
        None => key.to_string(),
    }
}

/// A ban that ended ([`Decider::expire`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Unban {
    pub key: Key,
    pub prefix: Option<u8>,
    pub rule: RuleId,
    /// Start of the ban (trigger time).
    pub since: Timestamp,
    pub until: Timestamp,
    pub ban_count: u32,
    pub simulated: bool,
}

/// An active ban, for status and `explain`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BanInfo {
    pub key: Key,
    pub prefix: Option<u8>,
    pub since: Timestamp,
    /// `None` = permanent.
    pub bantime: Option<Duration>,
    pub until: Option<Timestamp>,
    pub ban_count: u32,
    pub simulated: bool,
    /// The explanation of the ban (`None` when not stored, see
    /// [`Decider::with_stored_reasons`]).
    pub reason: Option<Explanation>,
}

/// Ban history of a key (fail2ban's `bips` table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct History {
    pub ban_count: u32,
    pub last_ban: Timestamp,
    /// `None` = permanent.
    pub last_bantime: Option<Duration>,
}

/// Everything the decider knows about a key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyReport {
    pub key: Key,
    pub ban_key: Key,
    pub prefix: Option<u8>,
    pub allowlisted: Option<String>,
    pub ban: Option<BanInfo>,
    pub history: Option<History>,
}

type Target = (Key, Option<u8>);

/// fail2ban's `BanManager.addBanTicket` for a target banned already: when
/// a ban from `time` with bantime `base` (negative: permanent) would end
/// later than the record, the record is prolonged (its bantime grows by the
/// time since its ban) and its new end queued. Returns whether it was.
fn prolong(
    rec: &mut BanRecord,
    t: &Target,
    time: Timestamp,
    base: Duration,
    generation: &mut u64,
    heap: &mut ExpiryQueue,
) -> bool {
    let permanent = base.0 < 0;
    let new_eob = if permanent { None } else { Some(time.saturating_add(base)) };
    let later = match (new_eob, rec.until) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(n), Some(o)) => n > o,
    };
    if later {
        let bt = if permanent {
            None
        } else {
            let dif = time.since(rec.time);
            Some(if dif.0 > 0 { Duration(base.0.saturating_add(dif.0)) } else { base })
        };
        rec.bantime = bt;
        rec.until = bt.map(|b| rec.time.saturating_add(b));
        if let Some(u) = rec.until {
            *generation += 1;
            rec.generation = *generation;
            heap.push(u.0, *generation, t.clone());
        }
    }
    later
}

#[derive(Clone, Debug)]
struct BanRecord {
    rule: RuleId,
    time: Timestamp,
    bantime: Option<Duration>,
    until: Option<Timestamp>,
    ban_count: u32,
    simulated: bool,
    generation: u64,
    reason: Option<Box<Explanation>>,
}

/// Bans, their durations and their history. See the crate docs.
#[derive(Debug)]
pub struct Decider {
    policy: Policy,
    rule_bantime: Vec<Option<Duration>>,
    store_reasons: bool,
    bans: KeyMap<Target, BanRecord>,
    history: KeyMap<Target, History>,
    heap: ExpiryQueue,
    pending: Vec<Unban>,
    generation: u64,
    next_purge: i64,
}

const PURGE_EVERY: i64 = 3600 * Timestamp::MICROS_PER_SEC;

/// Ban ends `(until, generation, target)` in `(until, generation)` order (a
/// min-heap). Generations grow with every push, so while the ends come in
/// time order (one bantime, triggers in time order: the common case) a
/// push goes to the back of a queue in O(1); an end earlier than the
/// queue's last goes to a heap. Pops take the smaller of the two fronts:
/// the same order as one heap, at a fraction of the cost.
#[derive(Debug)]
struct ExpiryQueue {
    queue: VecDeque<(i64, u64, Target)>,
    heap: BinaryHeap<Reverse<(i64, u64, Target)>>,
    /// The `until` of [`ExpiryQueue::peek`] (`i64::MAX`: empty), kept by
    /// `push` and `pop`: what a failure's `expire_quiet` looks at.
    next_until: i64,
}

impl Default for ExpiryQueue {
    fn default() -> Self {
        ExpiryQueue { queue: VecDeque::new(), heap: BinaryHeap::new(), next_until: i64::MAX }
    }
}

impl ExpiryQueue {
    fn push(&mut self, until: i64, generation: u64, t: Target) {
        match self.queue.back() {
            Some(&(u, _, _)) if u > until => self.heap.push(Reverse((until, generation, t))),
            _ => self.queue.push_back((until, generation, t)),
        }
        self.next_until = self.next_until.min(until);
    }

    /// Whether the next end comes from the queue (else the heap).
    fn queue_first(&self) -> Option<bool> {
        match (self.queue.front(), self.heap.peek()) {
            (None, None) => None,
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (Some(q), Some(Reverse(h))) => Some((q.0, q.1) < (h.0, h.1)),
        }
    }

    /// `(until, generation)` of the next end.
    #[inline]
    fn peek(&self) -> Option<(i64, u64)> {
        if self.heap.is_empty() {
            return self.queue.front().map(|q| (q.0, q.1));
        }
        if self.queue_first()? {
            self.queue.front().map(|q| (q.0, q.1))
        } else {
            self.heap.peek().map(|Reverse(h)| (h.0, h.1))
        }
    }

    /// Removes the next end, returning its target.
    fn pop(&mut self) -> Option<Target> {
        let t = if self.queue_first()? {
            self.queue.pop_front().map(|q| q.2)
        } else {
            self.heap.pop().map(|Reverse(h)| h.2)
        };
        self.next_until = self.peek().map_or(i64::MAX, |p| p.0);
        t
    }
}

/// The per-key input of `bantime.rndtime`'s random part
/// ([`BanIncrement::calc`]): a hash of the ban target keyed by the increment's
/// own `rnd_seed` — not by the maps' hash seed, so that ban times do not
/// depend on it (0 without `rnd_seed`, where it is not used).
fn salt(t: &Target, rnd_seed: Option<u64>) -> u64 {
    rnd_seed.map_or(0, |seed| key_hasher(seed).hash_one(t))
}

fn maps_with(hasher: &KeyHasher) -> (KeyMap<Target, BanRecord>, KeyMap<Target, History>) {
    (KeyMap::with_hasher(hasher.clone()), KeyMap::with_hasher(hasher.clone()))
}

impl Decider {
    /// A decider for `policy`. An invalid `ipv6_prefix` (0 or > 128) disables
    /// aggregation; call [`Policy::validate`] (or use [`Decider::try_new`]) to
    /// report it.
    pub fn new(mut policy: Policy) -> Self {
        if policy.validate().is_err() {
            policy.ipv6_prefix = None;
        }
        let (bans, history) = maps_with(&key_hasher(0));
        Decider {
            policy,
            rule_bantime: Vec::new(),
            store_reasons: true,
            bans,
            history,
            heap: ExpiryQueue::default(),
            pending: Vec::new(),
            generation: 0,
            next_purge: i64::MIN,
        }
    }

    pub fn try_new(policy: Policy) -> Result<Self, PolicyError> {
        policy.validate()?;
        Ok(Decider::new(policy))
    }

    /// Keys the hasher of the ban list and the ban history with `seed` (see
    /// the crate docs; the default is 0). A daemon must pass a secret random
    /// value. Entries already present are kept (rehashed).
    pub fn with_hash_seed(mut self, seed: u64) -> Self {
        let (mut bans, mut history) = maps_with(&key_hasher(seed));
        bans.extend(self.bans.drain());
        history.extend(self.history.drain());
        (self.bans, self.history) = (bans, history);
        self
    }

    /// Per-rule base ban times (indexed by [`RuleId`]; `None` = the policy's).
    /// Whether active bans keep their [`Explanation`] for [`Decider::explain`]
    /// (default: yes). An explanation costs a few hundred bytes per active
    /// ban; under a flood of distinct banned addresses turn it off — the
    /// decisions themselves always carry their explanation.
    pub fn with_stored_reasons(mut self, store: bool) -> Self {
        self.store_reasons = store;
        self
    }

    /// [`Decider::with_stored_reasons`] on a decider in use (bans made from
    /// now on keep their explanation or not).
    pub fn set_stored_reasons(&mut self, store: bool) {
        self.store_reasons = store;
    }

    pub fn with_rule_bantimes(mut self, bantimes: Vec<Option<Duration>>) -> Self {
        self.rule_bantime = bantimes;
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Number of active bans.
    pub fn active_bans(&self) -> usize {
        self.bans.len()
    }

    fn base_bantime(&self, rule: RuleId) -> (Duration, bool) {
        match self.rule_bantime.get(rule.0 as usize).copied().flatten() {
            Some(d) => (d, true),
            None => (self.policy.bantime, false),
        }
    }

    /// The key a ban applies to: mapped IPv4 unwrapped, IPv6 aggregated.
    fn target(&self, key: &Key, steps: &mut Vec<Step>) -> Target {
        self.target_with(key, Some(steps))
    }

    /// [`Decider::target`], its steps only with `steps`.
    #[inline]
    fn target_with(&self, key: &Key, mut steps: Option<&mut Vec<Step>>) -> Target {
        let Key::Ip(ip) = key else {
            return (key.clone(), None);
        };
        let canon = canonical_ip(*ip);
        if canon != *ip
            && let Some(s) = steps.as_deref_mut()
        {
            s.push(Step::MappedToIpv4 { from: key.clone(), to: Key::Ip(canon) });
        }
        match (canon, self.policy.ipv6_prefix) {
            (IpAddr::V6(_), Some(p)) if p < 128 => {
                if let Some(e) = self.policy.allowlist.overlaps(canon, p) {
                    if let Some(s) = steps {
                        s.push(Step::AggregationSkipped { prefix: p, allowlist_entry: e.text.clone() });
                    }
                    return (Key::Ip(canon), None);
                }
                let net = Key::Ip(allowlist::network(canon, p));
                if let Some(s) = steps {
                    s.push(Step::Aggregated { prefix: p, network: net.clone() });
                }
                (net, Some(p))
            }
            _ => (Key::Ip(canon), None),
        }
    }

    fn target_quiet(&self, key: &Key) -> Target {
        self.target_with(key, None)
    }

    /// Moves the ban of `t` to the pending unbans when it is over at `now`.
    fn retire_if_over(&mut self, t: &Target, now: Timestamp) {
        let over = matches!(self.bans.get(t), Some(BanRecord { until: Some(u), .. }) if now > *u);
        if over {
            if let Some(rec) = self.bans.remove(t) {
                self.pending.push(unban_of(t, &rec));
            }
        }
    }

    fn history_of(&self, t: &Target, now: Timestamp) -> Option<History> {
        let h = *self.history.get(t)?;
        (!self.history_purgeable(&h, now)).then_some(h)
    }

    fn purge_age(&self) -> Duration {
        self.policy.increment.as_ref().map_or(Duration::from_secs(86_400), |i| i.purge_age)
    }

    /// fail2ban `_purge_bips`.
    fn history_purgeable(&self, h: &History, now: Timestamp) -> bool {
        purgeable(h, now, self.purge_age())
    }

    /// Decides what to do about `trig` at `now`.
    pub fn decide(&mut self, trig: &Trigger, now: Timestamp) -> Decision {
        self.decide_inner(trig, now, true)
    }

    /// [`Decider::decide`] for a caller that looks only at what was decided
    /// (a replay counting bans): the same decision and the same changes, but
    /// its explanation has no `steps` and no `evidence` (no allocation). With
    /// stored reasons on, a ban still stores the full explanation.
    pub fn decide_unexplained(&mut self, trig: &Trigger, now: Timestamp) -> Decision {
        self.decide_inner(trig, now, false)
    }

    /// [`Decider::decide`] for a caller that looks only at the outcome (a
    /// replay without observers): the same decision and the same changes,
    /// without an explanation, with one lookup of the ban target in each
    /// map. With stored reasons on, this is [`Decider::decide_unexplained`].
    pub fn decide_quiet(&mut self, trig: &Trigger, now: Timestamp) -> Outcome {
        if self.store_reasons {
            return self.decide_unexplained(trig, now).outcome();
        }
        // The steps of `decide_inner`, in its order.
        if self.policy.allowlist.matches(&trig.key).is_some() {
            return Outcome::Allowlisted;
        }
        let mut t = self.target_quiet(&trig.key);
        let (base, _) = self.base_bantime(trig.rule);
        let permanent = base.0 < 0;
        if !permanent && trig.time.saturating_add(base) < now {
            return Outcome::Expired;
        }
        loop {
            match self.bans.entry(t) {
                // `retire_if_over`, then the target is not banned
                Entry::Occupied(o) if matches!(o.get().until, Some(u) if now > u) => {
                    let (k, rec) = o.remove_entry();
                    self.pending.push(unban_of(&k, &rec));
                    t = k;
                }
                Entry::Occupied(mut o) => {
                    let (k, rec) = (o.key().clone(), o.get_mut());
                    prolong(rec, &k, trig.time, base, &mut self.generation, &mut self.heap);
                    return Outcome::AlreadyBanned;
                }
                Entry::Vacant(v) => {
                    let purge_age = self.policy.increment.as_ref().map_or(Duration::from_secs(86_400), |i| i.purge_age);
                    let history = self.history.entry(v.key().clone());
                    let previous = match &history {
                        Entry::Occupied(h) if !purgeable(h.get(), now, purge_age) => h.get().ban_count,
                        _ => 0,
                    };
                    let mut duration = (!permanent).then_some(base);
                    if let Some(inc) = &self.policy.increment
                        && base.0 > 0
                        && previous > 0
                    {
                        duration = Some(inc.calc(base, previous, salt(v.key(), inc.rnd_seed)).result);
                    }
                    let until = duration.map(|d| trig.time.saturating_add(d));
                    if until.is_some_and(|u| u < now) {
                        return Outcome::Expired;
                    }
                    let ban_count = previous.saturating_add(1);
                    self.generation += 1;
                    if let Some(u) = until {
                        self.heap.push(u.0, self.generation, v.key().clone());
                    }
                    let h = History { ban_count, last_ban: trig.time, last_bantime: duration };
                    *history.or_insert(h) = h;
                    let key = v.key().clone();
                    v.insert(BanRecord {
                        rule: trig.rule,
                        time: trig.time,
                        bantime: duration,
                        until,
                        ban_count,
                        simulated: self.policy.simulate,
                        generation: self.generation,
                        reason: None,
                    });
                    return Outcome::Ban { key: key.0, prefix: key.1 };
                }
            }
        }
    }

    fn decide_inner(&mut self, trig: &Trigger, now: Timestamp, explain: bool) -> Decision {
        let explain = explain || self.store_reasons;
        let mut steps = Vec::new();
        let reason = |steps: Vec<Step>| Explanation {
            rule: trig.rule,
            key: trig.key.clone(),
            trigger_time: trig.time,
            first_seen: trig.first_seen,
            count: trig.count,
            evidence: if explain { trig.evidence.clone() } else { Vec::new() },
            window: trig.window.clone(),
            decided_at: now,
            // (steps `target` may have pushed are dropped too)
            steps: if explain { steps } else { Vec::new() },
        };
        // a step, when explaining
        macro_rules! step {
            ($s:expr) => {
                if explain {
                    steps.push($s);
                }
            };
        }

        // 1. The allowlist, always first.
        if let Some(e) = self.policy.allowlist.matches(&trig.key) {
            let entry = e.text.clone();
            step!(Step::Allowlist { matched: Some(entry.clone()) });
            return Decision::Allowlisted { entry, reason: reason(steps) };
        }
        step!(Step::Allowlist { matched: None });

        // 2. What would be banned.
        let t = self.target(&trig.key, &mut steps);
        let (base, from_rule) = self.base_bantime(trig.rule);
        let permanent = base.0 < 0;

        // 3. fail2ban's BanManager.addBanTicket: expired first (with the base
        //    bantime), then already banned (maybe prolong).
        if !permanent {
            let until = trig.time.saturating_add(base);
            if until < now {
                step!(Step::ExpiredBeforeNow { until, now });
                return Decision::Expired { key: t.0, prefix: t.1, until, reason: reason(steps) };
            }
        }
        self.retire_if_over(&t, now);
        if let Some(rec) = self.bans.get_mut(&t) {
            let old = rec.until;
            let prolonged = prolong(rec, &t, trig.time, base, &mut self.generation, &mut self.heap);
            let until = rec.until;
            step!(Step::AlreadyBanned { until: old, prolonged, new_until: until });
            return Decision::AlreadyBanned { key: t.0, prefix: t.1, until, prolonged, reason: reason(steps) };
        }

        // 4. Base bantime and bantime.increment.
        step!(Step::BaseBantime { bantime: (!permanent).then_some(base), from_rule });
        let previous = self.history_of(&t, now).map_or(0, |h| h.ban_count);
        let mut duration = (!permanent).then_some(base);
        if let Some(inc) = &self.policy.increment {
            if base.0 > 0 && previous > 0 {
                let calc = inc.calc(base, previous, salt(&t, inc.rnd_seed));
                duration = Some(calc.result);
                step!(Step::Increment(calc));
            } else {
                step!(Step::IncrementNotApplied { previous_bans: previous });
            }
        }
        let until = duration.map(|d| trig.time.saturating_add(d));
        if let Some(u) = until {
            if u < now {
                step!(Step::ExpiredBeforeNow { until: u, now });
                return Decision::Expired { key: t.0, prefix: t.1, until: u, reason: reason(steps) };
            }
        }
        let simulated = self.policy.simulate;
        if simulated {
            step!(Step::Simulated);
        }
        let ban_count = previous.saturating_add(1);
        let explanation = reason(steps);
        self.generation += 1;
        if let Some(u) = until {
            self.heap.push(u.0, self.generation, t.clone());
        }
        self.history.insert(t.clone(), History { ban_count, last_ban: trig.time, last_bantime: duration });
        self.bans.insert(
            t.clone(),
            BanRecord {
                rule: trig.rule,
                time: trig.time,
                bantime: duration,
                until,
                ban_count,
                simulated,
                generation: self.generation,
                reason: self.store_reasons.then(|| Box::new(explanation.clone())),
            },
        );
        Decision::Ban { key: t.0, prefix: t.1, duration, until, ban_count, simulated, reason: explanation }
    }

    /// Bans that are over at `now` (`now > until`, as fail2ban), oldest end
    /// first; also forgets ban history older than the purge age (at most
    /// once per hour of `now`).
    pub fn expire(&mut self, now: Timestamp) -> Vec<Unban> {
        let mut out = std::mem::take(&mut self.pending);
        self.expire_each(now, |u| out.push(u));
        out
    }

    /// [`Decider::expire`] for a caller that does not look at the unbans
    /// (a replay): the same changes, without building the list.
    #[inline]
    pub fn expire_quiet(&mut self, now: Timestamp) {
        self.pending.clear();
        // (`next_until`: the `until` of `heap.peek()`)
        if self.heap.next_until < now.0 || now.0 >= self.next_purge {
            self.expire_each(now, drop);
        }
    }

    fn expire_each(&mut self, now: Timestamp, mut emit: impl FnMut(Unban)) {
        while let Some((until, generation)) = self.heap.peek() {
            if until >= now.0 {
                break;
            }
            let Some(t) = self.heap.pop() else {
                break;
            };
            let live = matches!(self.bans.get(&t), Some(r) if r.generation == generation);
            if live {
                if let Some(rec) = self.bans.remove(&t) {
                    emit(unban_of(&t, &rec));
                }
            }
        }
        if now.0 >= self.next_purge {
            self.next_purge = now.0.saturating_add(PURGE_EVERY);
            let age = self.purge_age();
            let horizon = now.0.saturating_sub(age.0);
            self.history.retain(|t, h| {
                self.bans.contains_key(t)
                    || h.last_bantime.is_none()
                    || !(h.last_ban.0 < horizon
                        && h.last_ban.0.saturating_add(h.last_bantime.map_or(0, |b| b.0).saturating_mul(3)) < horizon)
            });
        }
        // Stale heap entries of removed bans are dropped as they surface.
    }

    /// Removes a ban by hand (the history stays). Returns it if there was one.
    pub fn unban(&mut self, key: &Key) -> Option<Unban> {
        let t = self.target_quiet(key);
        let rec = self.bans.remove(&t)?;
        Some(unban_of(&t, &rec))
    }

    /// The extra retries fail2ban's `bantime.increment` observer adds for a
    /// failure of a known bad key at `time` (see
    /// [`BanIncrement::bad_ip_extra_retries`]); 0 without increment, without
    /// history, or for a failure not after the last ban.
    pub fn bad_ip_extra_retries(&self, key: &Key, time: Timestamp, maxretry: u32) -> u32 {
        if self.policy.increment.is_none() {
            return 0;
        }
        let t = self.target_quiet(key);
        match self.history_of(&t, time) {
            Some(h) if time > h.last_ban => BanIncrement::bad_ip_extra_retries(h.ban_count, maxretry),
            _ => 0,
        }
    }

    /// Everything known about `key` at `now` (for `stadtwache explain`).
    pub fn explain(&self, key: &Key, now: Timestamp) -> KeyReport {
        let t = self.target_quiet(key);
        let ban = self.bans.get(&t).filter(|r| r.until.is_none_or(|u| now <= u)).map(|r| BanInfo {
            key: t.0.clone(),
            prefix: t.1,
            since: r.time,
            bantime: r.bantime,
            until: r.until,
            ban_count: r.ban_count,
            simulated: r.simulated,
            reason: r.reason.as_deref().cloned(),
        });
        KeyReport {
            key: key.clone(),
            ban_key: t.0.clone(),
            prefix: t.1,
            allowlisted: self.policy.allowlist.matches(key).map(|e| e.text.clone()),
            ban,
            history: self.history_of(&t, now),
        }
    }

    /// Active bans at `now`, in `(key, prefix)` order (not the map's order,
    /// which depends on the hash seed).
    pub fn bans(&self, now: Timestamp) -> Vec<BanInfo> {
        let mut out: Vec<BanInfo> = self
            .bans
            .iter()
            .filter(|(_, r)| r.until.is_none_or(|u| now <= u))
            .map(|(t, r)| BanInfo {
                key: t.0.clone(),
                prefix: t.1,
                since: r.time,
                bantime: r.bantime,
                until: r.until,
                ban_count: r.ban_count,
                simulated: r.simulated,
                reason: r.reason.as_deref().cloned(),
            })
            .collect();
        out.sort_unstable_by(|a, b| (&a.key, a.prefix).cmp(&(&b.key, b.prefix)));
        out
    }
}

/// fail2ban `_purge_bips`: whether `h` is forgotten at `now`.
fn purgeable(h: &History, now: Timestamp, purge_age: Duration) -> bool {
    let Some(bt) = h.last_bantime else {
        return false;
    };
    let horizon = now.0.saturating_sub(purge_age.0);
    h.last_ban.0 < horizon && h.last_ban.0.saturating_add(bt.0.saturating_mul(3)) < horizon
}

fn unban_of(t: &Target, rec: &BanRecord) -> Unban {
    Unban {
        key: t.0.clone(),
        prefix: t.1,
        rule: rec.rule,
        since: rec.time,
        until: rec.until.unwrap_or(Timestamp(i64::MAX)),
        ban_count: rec.ban_count,
        simulated: rec.simulated,
    }
}

#[cfg(test)]
mod tests;
