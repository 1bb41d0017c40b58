//! Restoring the decider's memory at start: active bans and ban history.
//!
//! fail2ban restores the bans of its jails from its database at start
//! (`Fail2BanDb.getCurrentBans`) and, with `bantime.increment`, reads an
//! address's ban count from its `bips` table. The daemon does the same from
//! its store (see `stadtwache-store`: `Store::ban_history` and
//! `Store::active_decisions`):
//!
//! ```text
//! decider.restore_history(store.ban_history(&jail_rule_names)?);   // first: counts for increment
//! decider.restore_bans(rule decisions of store.active_decisions(now)?, now);
//! ```
//!
//! After that, a trigger for an address that is still banned is
//! [`Decision::AlreadyBanned`](crate::Decision::AlreadyBanned) (and may
//! prolong it), a new ban counts the previous ones for `bantime.increment`,
//! and [`Decider::expire`] unbans the restored bans when they end.
//!
//! Not restored: the explanations of restored bans ([`BanInfo::reason`] is
//! `None`) and the hourly purge schedule of the history (the first
//! [`Decider::expire`] purges; a purged entry is one `history_of` would
//! ignore anyway).

use serde::Serialize;
use stadtwache_core::{Key, RuleId, Timestamp};

#[cfg(doc)]
use crate::BanInfo;
use crate::{BanRecord, Decider, History, Target};

/// An active ban to restore (from a stored decision).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RestoredBan {
    /// The banned key: an address, a network address with `prefix`, or a text key.
    pub key: Key,
    pub prefix: Option<u8>,
    /// The rule that banned (for [`Unban::rule`](crate::Unban::rule)).
    pub rule: RuleId,
    /// Start of the ban: the trigger time (the decision's `reason.trigger_time`).
    pub since: Timestamp,
    /// `None` = permanent.
    pub until: Option<Timestamp>,
    /// The ban's number (1 = first ban); 0 = unknown: taken from the restored
    /// history, else 1.
    pub ban_count: u32,
    pub simulated: bool,
}

/// What [`Decider::restore_bans`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RestoredBans {
    /// Bans now active (one per target).
    pub active: usize,
    /// Records merged into a ban of the same target (the longest wins).
    pub merged: usize,
    /// Records already over at `now` (skipped).
    pub expired: usize,
}

impl Decider {
    /// The target a stored key (and prefix) is banned as.
    fn restore_target(&self, key: &Key, prefix: Option<u8>) -> Target {
        match (key, prefix) {
            (Key::Ip(ip), Some(p)) => {
                let ip = crate::canonical_ip(*ip);
                let max = if ip.is_ipv4() { 32 } else { 128 };
                if p >= max { (Key::Ip(ip), None) } else { (Key::Ip(crate::allowlist::network(ip, p)), Some(p)) }
            }
            _ => self.target_quiet(key),
        }
    }

    /// Restores ban history (fail2ban's `bips`: ban count, last ban time and
    /// ban time per target) for `bantime.increment`. A target given twice,
    /// or already known, keeps the higher ban count and the later last ban.
    /// Returns the number of targets with history afterwards.
    pub fn restore_history(&mut self, history: impl IntoIterator<Item = (Key, Option<u8>, History)>) -> usize {
        for (key, prefix, h) in history {
            let t = self.restore_target(&key, prefix);
            self.history
                .entry(t)
                .and_modify(|old| {
                    let count = old.ban_count.max(h.ban_count);
                    if h.last_ban > old.last_ban {
                        *old = h;
                    }
                    old.ban_count = count;
                })
                .or_insert(h);
        }
        self.history.len()
    }

    /// Restores active bans at `now` (call [`Decider::restore_history`]
    /// first). Bans already over at `now` (`until < now`) are skipped; several
    /// records for one target (a ban and its prolongations) merge into one
    /// ban: the latest end (permanent wins), the earliest start, the highest
    /// count. A target without history gets one from its ban.
    pub fn restore_bans(&mut self, bans: impl IntoIterator<Item = RestoredBan>, now: Timestamp) -> RestoredBans {
        let mut st = RestoredBans::default();
        for b in bans {
            if b.until.is_some_and(|u| u < now) {
                st.expired += 1;
                continue;
            }
            let t = self.restore_target(&b.key, b.prefix);
            let known = self.history.get(&t).map_or(0, |h| h.ban_count);
            let ban_count = if b.ban_count > 0 { b.ban_count } else { known.max(1) };
            let (since, until, ban_count, simulated, rule) = match self.bans.get(&t) {
                Some(old) => {
                    st.merged += 1;
                    let until = match (old.until, b.until) {
                        (None, _) | (_, None) => None,
                        (Some(x), Some(y)) => Some(x.max(y)),
                    };
                    (old.time.min(b.since), until, old.ban_count.max(ban_count), old.simulated && b.simulated, old.rule)
                }
                None => (b.since, b.until, ban_count, b.simulated, b.rule),
            };
            let bantime = until.map(|u| u.since(since));
            self.generation += 1;
            if let Some(u) = until {
                self.heap.push(u.0, self.generation, t.clone());
            }
            self.history.entry(t.clone()).or_insert(History { ban_count, last_ban: since, last_bantime: bantime });
            self.bans.insert(
                t,
                BanRecord {
                    rule,
                    time: since,
                    bantime,
                    until,
                    ban_count,
                    simulated,
                    generation: self.generation,
                    reason: None,
                },
            );
        }
        st.active = self.bans.len();
        st
    }

    /// The ban history of every target, in `(key, prefix)` order (what
    /// [`Decider::restore_history`] takes; not the map's order, which depends
    /// on the hash seed).
    pub fn history(&self) -> Vec<(Key, Option<u8>, History)> {
        let mut out: Vec<_> = self.history.iter().map(|(t, h)| (t.0.clone(), t.1, *h)).collect();
        out.sort_unstable_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }
}
