//! Saving the windows of a [`Detector`] and restoring them after a restart.
//!
//! The daemon commits, in one store transaction, the decisions and alerts of
//! the lines read so far *and* the sources' read positions. For a restart to
//! continue exactly like an uninterrupted run, the partial windows (2 of 3
//! failures of an address, …) and the per-rule service schedule must travel
//! in the same transaction. This module exports what changed since the last
//! export and restores it into a fresh detector.
//!
//! # How the daemon uses it
//!
//! With `stadtwache-store` (`Batch::windows`/`rule_states`, `Store::windows`),
//! per detector; `scope` is the daemon's name for it (its source), rules are
//! stored by *name* (rule ids change with the configuration):
//!
//! ```text
//! start:   detector = Detector::new(specs, opts).with_change_tracking();
//!          stored = store.windows(scope)?          // one snapshot; stored.skipped: unreadable rows
//!          records = for row in stored.windows:
//!              rule = id of the rule named row.rule — unknown name: skip, count
//!              w    = serde_json::from_str::<SavedWindow>(row.state) — error: skip, count
//!              (rule, row.key, w)
//!          stats = detector.restore(records)        // RestoreStats: wrong kind, version, evicted …
//!          detector.restore_rules(the same for stored.rules, SavedRule)
//!          then resume reading at the checkpoints committed with these rows.
//! commit:  (every ~20 ms, with the decisions, alerts and checkpoints)
//!          batch.windows = detector.take_dirty().map(|r| WindowRow {
//!              scope, rule: name of r.rule, key: r.key,
//!              state: r.state.map(|w| serde_json::to_string(&w)) })   // None deletes the row
//!          batch.rule_states = detector.take_dirty_rules().map(|(rule, s)| RuleStateRow {
//!              scope, rule: name of rule, state: Some(serde_json::to_string(&s)) })
//!          store.commit_batch(&batch)               // ONE transaction with the checkpoints
//! config:  a source whose rules (specs) changed: store.delete_windows(scope), start empty
//!          (a window saved under another spec continues nothing meaningful;
//!          `restore` skips records whose kind differs from the rule's spec, but
//!          not a changed threshold or window length).
//! ```
//!
//! Take the dirty records **only when the batch is built** and put all of
//! them in it: a record taken and then not committed is lost (the next take
//! only reports later changes). If a commit fails, the daemon must not
//! commit the checkpoint later without these records: stop, or re-export
//! everything with [`Detector::export_all`] (as upserts) after deleting the
//! scope's rows in the same transaction.
//!
//! Tracking is off by default (replays and benchmarks never call
//! `take_dirty`; the records would pile up). Turn it on with
//! [`Detector::with_change_tracking`] before the first event.
//!
//! # What is saved
//!
//! A [`SavedWindow`] holds everything needed to continue exactly: the key's
//! newest time (`now`), its recency rank (`lru`, so that the key cap evicts
//! the same pair after a restore) and per kind: the fail2ban ticket
//! `{first, last, first_seen, retry, failures, evidence lines}`, the Count
//! events `(time, weight, line)` or the Distinct values `{value, first,
//! last, line}` in their order. A [`SavedRule`] holds the time of a fail2ban
//! rule's last service run (fail2ban's `performSvc` throttle).
//!
//! Sizes in JSON (`serde_json::to_string`), measured by the test
//! `json_sizes_are_small` (which bounds them at 200 / 200 / 40 bytes): a
//! fail2ban ticket with 2 failures at realistic µs times and 7-digit line
//! numbers is 194 bytes, a Count window with 3 events 161 bytes, a rule
//! state 39 bytes. A compact binary form would save about half; at one row
//! per changed pair per commit that is not worth a second format.
//!
//! What is *not* saved: the detector's clock ([`Detector::clock`], raised
//! by a restore to the newest restored time) and its counters
//! ([`DetectStats`], which start from zero except `tracked_keys`).

use serde::Deserialize;

use super::*;

/// Format version of [`SavedWindow`] and [`SavedRule`] (`v`).
pub const SAVED_VERSION: u32 = 1;

/// The saved state of one `(rule, key)` window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedWindow {
    /// [`SAVED_VERSION`].
    pub v: u32,
    /// Recency rank among the pairs of the detector (larger = observed more
    /// recently). Only the order matters.
    pub lru: u64,
    /// The newest event time seen for this key.
    pub now: Timestamp,
    pub state: SavedState,
}

/// The per-kind part of a [`SavedWindow`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SavedState {
    /// A fail2ban ticket (see the crate docs for the fields' meaning).
    Fail2ban {
        first: Timestamp,
        last: Timestamp,
        first_seen: Timestamp,
        retry: i64,
        failures: u64,
        /// Evidence line numbers, oldest first.
        lines: Vec<u64>,
    },
    /// `(time, weight, line)`, time ordered.
    Count { events: Vec<(Timestamp, u32, u64)> },
    /// The distinct values in the order the window keeps them.
    Distinct { values: Vec<SavedValue> },
}

impl SavedState {
    pub fn kind(&self) -> WindowKind {
        match self {
            SavedState::Fail2ban { .. } => WindowKind::Fail2ban,
            SavedState::Count { .. } => WindowKind::Count,
            SavedState::Distinct { .. } => WindowKind::Distinct,
        }
    }
}

/// One distinct value of a saved Distinct window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedValue {
    pub value: Arc<str>,
    pub first: Timestamp,
    pub last: Timestamp,
    pub line: u64,
}

/// A change of one `(rule, key)` since the last [`Detector::take_dirty`]:
/// `Some(state)` = insert or replace the stored window, `None` = the pair no
/// longer exists (triggered, cleaned up, purged, forgotten, evicted): delete
/// it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowRecord {
    pub rule: RuleId,
    pub key: Key,
    pub state: Option<SavedWindow>,
}

/// The saved service state of one fail2ban rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedRule {
    /// [`SAVED_VERSION`].
    pub v: u32,
    /// `now` of the rule's last [`Detector::service`] run (`None`: never ran).
    pub last_service: Option<Timestamp>,
}

/// What [`Detector::restore`] / [`Detector::restore_rules`] did with the records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RestoreStats {
    /// Records restored (including those evicted again by the key cap).
    pub restored: usize,
    /// Records for a rule id without a spec (skipped).
    pub unknown_rule: usize,
    /// Records whose kind differs from the rule's spec (skipped).
    pub wrong_kind: usize,
    /// Records of an unknown format version (skipped).
    pub bad_version: usize,
    /// Records for a pair given earlier in the same call (the later one wins).
    pub duplicate: usize,
    /// Pairs evicted because there were more than `max_keys` (the least
    /// recent ones, as an uninterrupted detector would have).
    pub evicted: usize,
}

impl Detector {
    /// Turns on change tracking for [`Detector::take_dirty`] and
    /// [`Detector::take_dirty_rules`]. Pairs tracked before are not reported
    /// until they change.
    pub fn with_change_tracking(mut self) -> Self {
        self.track_changes();
        self
    }

    /// See [`Detector::with_change_tracking`].
    pub fn track_changes(&mut self) {
        if self.dirty.is_none() {
            self.dirty = Some(Box::new(Dirty { rules: vec![false; self.specs.len()], ..Dirty::default() }));
        }
    }

    pub fn is_tracking_changes(&self) -> bool {
        self.dirty.is_some()
    }

    /// The `(rule, key)` pairs whose window changed since the last call
    /// (observed, [`Detector::add_observed`]) as upserts, and those that
    /// ended (triggered, cleaned up, purged, forgotten, evicted) as deletes.
    /// Each pair appears at most once, so the records may be applied in any
    /// order. Empty when change tracking is off. O(changes).
    pub fn take_dirty(&mut self) -> Vec<WindowRecord> {
        let Some(d) = self.dirty.as_mut() else {
            return Vec::new();
        };
        let mut slots = std::mem::take(&mut d.slots);
        let removed = std::mem::take(&mut d.removed);
        let mut out = Vec::with_capacity(slots.len() + removed.len());
        for &i in &slots {
            self.slots[i as usize].dirty = false;
            if self.live(i) {
                let s = &self.slots[i as usize];
                if let Some(w) = self.save_slot(i) {
                    out.push(WindowRecord { rule: RuleId(s.rule), key: s.key.clone(), state: Some(w) });
                }
            }
        }
        if !removed.is_empty() {
            let mut seen = KeySet::with_hasher(key_hasher(self.opts.hash_seed));
            seen.extend(out.iter().map(|r| (r.rule.0, r.key.clone())));
            for (rule, key) in removed {
                if seen.insert((rule, key.clone())) {
                    out.push(WindowRecord { rule: RuleId(rule), key, state: None });
                }
            }
        }
        // Keep the buffer for the next round (a commit every few ms).
        slots.clear();
        if let Some(d) = self.dirty.as_mut() {
            d.slots = slots;
        }
        out
    }

    /// The fail2ban rules whose service state changed since the last call.
    /// Empty when change tracking is off.
    pub fn take_dirty_rules(&mut self) -> Vec<(RuleId, SavedRule)> {
        let Some(d) = self.dirty.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (r, flag) in d.rules.iter_mut().enumerate() {
            if std::mem::take(flag) {
                out.push((RuleId(r as u32), save_rule(&self.svc[r])));
            }
        }
        out
    }

    /// Every tracked pair's window (e.g. to rewrite a scope from scratch),
    /// in `(rule, key)` order (not the maps' order, which depends on the
    /// hash seed).
    pub fn export_all(&self) -> Vec<(RuleId, Key, SavedWindow)> {
        let mut out = Vec::with_capacity(self.stats.tracked_keys);
        for (r, m) in self.maps.iter().enumerate() {
            for (key, &i) in m {
                if let Some(w) = self.save_slot(i) {
                    out.push((RuleId(r as u32), key.clone(), w));
                }
            }
        }
        out.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        out
    }

    /// The service state of every fail2ban rule.
    pub fn export_rules(&self) -> Vec<(RuleId, SavedRule)> {
        (0..self.specs.len())
            .filter(|&r| matches!(self.specs[r], WindowSpec::Fail2ban { .. }))
            .map(|r| (RuleId(r as u32), save_rule(&self.svc[r])))
            .collect()
    }

    /// Restores saved windows (normally into a fresh detector with the same
    /// specs and options), rebuilding every index, so that the following
    /// `observe`/`service`/`cleanup`/`purge` behave exactly as in the
    /// detector that saved them. Records for unknown rules, of the wrong kind
    /// or of an unknown version are skipped and counted. When there are more
    /// records than `max_keys`, the least recent ones are evicted (and
    /// reported as deletes by the next [`Detector::take_dirty`]). A pair that
    /// is already tracked is replaced. Restored pairs are not reported by
    /// `take_dirty` (they are stored already). Raises [`Detector::clock`] to
    /// the newest restored time.
    pub fn restore(&mut self, records: impl IntoIterator<Item = (RuleId, Key, SavedWindow)>) -> RestoreStats {
        let mut st = RestoreStats::default();
        let mut order: Vec<(u32, Key, SavedWindow)> = Vec::new();
        let mut index: KeyMap<(u32, Key), usize> = KeyMap::with_hasher(key_hasher(self.opts.hash_seed));
        for (rule, key, w) in records {
            let Some(spec) = self.specs.get(rule.0 as usize) else {
                st.unknown_rule += 1;
                continue;
            };
            if w.v != SAVED_VERSION {
                st.bad_version += 1;
                continue;
            }
            if spec.kind() != w.state.kind() {
                st.wrong_kind += 1;
                continue;
            }
            let key = canonical_mapped(&key).unwrap_or(key);
            match index.get(&(rule.0, key.clone())) {
                Some(&at) => {
                    st.duplicate += 1;
                    order[at].2 = w;
                }
                None => {
                    index.insert((rule.0, key.clone()), order.len());
                    order.push((rule.0, key, w));
                }
            }
        }
        drop(index);
        // Oldest first: each insertion becomes the most recent, and the key
        // cap evicts the least recent, as it did in the saving detector.
        order.sort_by_key(|(_, _, w)| w.lru);
        let evicted_before = self.stats.evicted;
        let mut f2b: Vec<(u32, Key, u32)> = Vec::new();
        for (rule, key, w) in order {
            let now = w.now.0;
            let i = match self.maps[rule as usize].get(&key).copied() {
                Some(i) => {
                    self.time_unindex(i);
                    self.touch(i);
                    self.slots[i as usize].state.reset(now);
                    i
                }
                None => self.insert(rule, &key, now),
            };
            self.tick = self.tick.max(w.lru);
            self.clock = self.clock.max(now);
            let cap = self.opts.evidence_cap;
            let s = &mut self.slots[i as usize];
            s.lru = w.lru;
            let state = &mut s.state;
            match w.state {
                SavedState::Fail2ban { first, last, first_seen, retry, failures, lines } => {
                    state.active = true;
                    state.first = first.0;
                    state.last = last.0;
                    state.first_seen = first_seen.0;
                    state.retry = retry;
                    state.failures = failures;
                    state.lines.clear();
                    let skip = lines.len().saturating_sub(cap);
                    state.lines.extend(lines.into_iter().skip(skip));
                    f2b.push((rule, key, i));
                }
                SavedState::Count { mut events } => {
                    events.sort_by_key(|e| e.0);
                    state.events.clear();
                    state.sum = 0;
                    for (t, w, line) in events {
                        state.sum = state.sum.saturating_add(u64::from(w));
                        state.events.push_back((t.0, w, line));
                    }
                }
                SavedState::Distinct { values } => {
                    state.values.clear();
                    state.values.extend(values.into_iter().map(|v| DistinctEntry {
                        value: v.value,
                        first: v.first.0,
                        last: v.last.0,
                        line: v.line,
                    }));
                }
            }
            st.restored += 1;
        }
        st.evicted = (self.stats.evicted - evicted_before) as usize;
        // Index the surviving tickets by time, oldest first: they all go to
        // the rule's time-ordered list.
        f2b.retain(|(rule, key, i)| self.maps[*rule as usize].get(key) == Some(i));
        f2b.sort_by_key(|&(_, _, i)| self.slots[i as usize].state.last);
        for (_, _, i) in f2b {
            self.time_index(i);
        }
        st
    }

    /// Restores the service state of fail2ban rules (records for unknown
    /// rules, rules of another kind or an unknown version are skipped and
    /// counted).
    pub fn restore_rules(&mut self, records: impl IntoIterator<Item = (RuleId, SavedRule)>) -> RestoreStats {
        let mut st = RestoreStats::default();
        for (rule, s) in records {
            let r = rule.0 as usize;
            match self.specs.get(r) {
                None => st.unknown_rule += 1,
                Some(WindowSpec::Fail2ban { .. }) if s.v == SAVED_VERSION => {
                    self.svc[r].last_run = s.last_service.map_or(i64::MIN, |t| t.0);
                    st.restored += 1;
                }
                Some(WindowSpec::Fail2ban { .. }) => st.bad_version += 1,
                Some(_) => st.wrong_kind += 1,
            }
        }
        self.service_quiet_update();
        st
    }

    /// Slot `i` holds a tracked pair (not freed, not reused for another).
    fn live(&self, i: u32) -> bool {
        let s = &self.slots[i as usize];
        self.maps.get(s.rule as usize).and_then(|m| m.get(&s.key)) == Some(&i)
    }

    fn save_slot(&self, i: u32) -> Option<SavedWindow> {
        let s = &self.slots[i as usize];
        let st = &s.state;
        let state = match self.specs.get(s.rule as usize)? {
            WindowSpec::Fail2ban { .. } => SavedState::Fail2ban {
                first: Timestamp(st.first),
                last: Timestamp(st.last),
                first_seen: Timestamp(st.first_seen),
                retry: st.retry,
                failures: st.failures,
                lines: st.lines.iter().copied().collect(),
            },
            WindowSpec::Count { .. } => {
                SavedState::Count { events: st.events.iter().map(|&(t, w, l)| (Timestamp(t), w, l)).collect() }
            }
            WindowSpec::Distinct { .. } => SavedState::Distinct {
                values: st
                    .values
                    .iter()
                    .map(|e| SavedValue {
                        value: e.value.clone(),
                        first: Timestamp(e.first),
                        last: Timestamp(e.last),
                        line: e.line,
                    })
                    .collect(),
            },
            WindowSpec::Once => return None,
        };
        Some(SavedWindow { v: SAVED_VERSION, lru: s.lru, now: Timestamp(st.now), state })
    }
}

fn save_rule(svc: &Svc) -> SavedRule {
    SavedRule { v: SAVED_VERSION, last_service: (svc.last_run != i64::MIN).then_some(Timestamp(svc.last_run)) }
}
