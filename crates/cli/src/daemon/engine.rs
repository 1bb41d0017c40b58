//! The daemon's detection step: lines from the sources go through each
//! source's pipeline (match → detect → decide, the same code as `replay`,
//! with the wall clock as "now"); alerts, decisions and the sources'
//! positions are gathered into one [`Batch`] per commit.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use stadtwache_acquire::follow;
use stadtwache_core::RuleId;
use stadtwache_core::{Diagnostic, Timestamp};
use stadtwache_decide::Decision;
use stadtwache_decide::RestoredBan;
use stadtwache_detect::{SavedRule, SavedWindow};
use stadtwache_store::{
    Batch, Checkpoint, EvidenceLine, FileIdentity, NewAlert, NewDecision, Origin, RuleStateRow, Store, WindowRow,
};

use super::config::{Config, SourceConfig};
use crate::replay::{DecisionView, HitView, Observer, Pipeline};

/// One line from a source.
#[derive(Clone, Debug)]
pub struct SourceLine {
    pub text: String,
    /// The line's time when the source knows it (journald, `time = "arrival"`).
    pub time: Option<Timestamp>,
    /// Line number within the input (0 when unknown).
    pub line_no: u64,
    /// The input, for evidence (`/var/log/auth.log`, `syslog:10.0.0.1`).
    pub input: Arc<str>,
    /// When the source read it (detection-to-enforcement latency).
    pub read_at: Instant,
}

/// Where a source stands after a chunk of lines.
#[derive(Clone, Debug, PartialEq)]
pub enum Position {
    Files(Vec<follow::Checkpoint>),
    Journal(String),
}

/// Lines of one source, in order, and its position after them.
#[derive(Debug)]
pub struct Chunk {
    pub source: usize,
    pub lines: Vec<SourceLine>,
    pub position: Option<Position>,
}

/// Evidence lines kept for decisions (hit lines only), at most.
const RECENT_HITS: usize = 20_000;

/// Gathers what the pipeline decided, for the next commit.
struct Collector<'a> {
    source: &'a str,
    recent: &'a mut VecDeque<(u64, EvidenceLine)>,
    alerts: &'a mut Vec<NewAlert>,
    decisions: &'a mut Vec<(NewDecision, Instant)>,
    read_at: Instant,
}

impl Collector<'_> {
    fn evidence(&self, seqs: &[u64]) -> Vec<EvidenceLine> {
        seqs.iter()
            .filter_map(|s| {
                let i = self.recent.binary_search_by_key(s, |(q, _)| *q).ok()?;
                Some(self.recent[i].1.clone())
            })
            .collect()
    }
}

impl Observer for Collector<'_> {
    fn hit(&mut self, hit: &HitView<'_>) {
        if self.recent.len() >= RECENT_HITS {
            self.recent.pop_front();
        }
        self.recent.push_back((hit.event.line_no, EvidenceLine::new(hit.input, hit.line_no, hit.line)));
    }

    fn decision(&mut self, d: &DecisionView<'_>) {
        let evidence = self.evidence(&d.trigger.evidence);
        let window = serde_json::to_value(&d.trigger.window).unwrap_or(serde_json::Value::Null);
        self.alerts.push(NewAlert {
            rule: d.rule.name.clone(),
            key: d.trigger.key.clone(),
            time: d.trigger.time,
            count: d.trigger.count,
            window,
            evidence: evidence.clone(),
        });
        let rule = format!("{}/{}", self.source, d.rule.name);
        let new = match d.decision {
            Decision::Ban { .. } => NewDecision::from_decision(d.decision, Some(&rule), evidence).ok().flatten(),
            // A prolonged ban is stored as a new decision with the new end;
            // the stream hands bouncers the longest one.
            Decision::AlreadyBanned { key, prefix, until, prolonged: true, reason } => Some(NewDecision {
                key: key.clone(),
                prefix: *prefix,
                origin: Origin::Rule,
                rule: Some(rule),
                reason: serde_json::to_value(reason).unwrap_or(serde_json::Value::Null),
                evidence,
                created: reason.decided_at,
                until: *until,
                simulated: false,
            }),
            _ => None,
        };
        if let Some(n) = new {
            self.decisions.push((n, self.read_at));
        }
    }
}

/// One source's detection state.
pub struct SourceEngine {
    pub config: SourceConfig,
    pub pipeline: Pipeline,
    recent: VecDeque<(u64, EvidenceLine)>,
    /// Position after the last line processed (not yet committed).
    pending_position: Option<Position>,
    pub lines: u64,
    /// For sources whose lines carry their own time (journald, syslog):
    /// how old the newest line was when detection processed it, seconds.
    pub lag_seconds: Option<f64>,
}

/// Everything since the last commit.
#[derive(Default)]
pub struct Pending {
    pub alerts: Vec<NewAlert>,
    /// With the time the triggering line was read.
    pub decisions: Vec<(NewDecision, Instant)>,
    pub lines: u64,
}

/// All sources' detection.
pub struct Engine {
    pub sources: Vec<SourceEngine>,
    pub pending: Pending,
}

impl Engine {
    /// Compile every source's rules. Errors for every source at once.
    pub fn build(config: &Config, now: Timestamp) -> Result<Engine, Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let mut sources = Vec::new();
        for s in &config.sources {
            match source_engine(config, s, now) {
                Ok(e) => sources.push(e),
                Err(d) => diags.extend(d),
            }
        }
        if diags.iter().any(Diagnostic::is_error) {
            return Err(diags);
        }
        Ok(Engine { sources, pending: Pending::default() })
    }

    /// Keep the detection state of sources whose configuration did not
    /// change (a reload must not forget half-counted windows needlessly).
    pub fn carry_over(&mut self, old: Engine) {
        for o in old.sources {
            if let Some(n) = self.sources.iter_mut().find(|n| n.config == o.config) {
                n.pipeline = o.pipeline;
                n.recent = o.recent;
                n.lines = o.lines;
            }
        }
    }

    /// Continue where the last run stopped: the saved windows of every
    /// source, and the decider's memory of bans (still-active bans are
    /// `AlreadyBanned`; `bantime.increment` counts earlier bans).
    pub fn restore(&mut self, store: &dyn Store, now: Timestamp) -> Vec<String> {
        let mut notes = Vec::new();
        let active = match store.active_decisions(now) {
            Ok(a) => a,
            Err(e) => {
                notes.push(format!("reading active decisions: {e}"));
                Vec::new()
            }
        };
        for s in &mut self.sources {
            let scope = s.config.name.clone();
            let names: Vec<String> = s.pipeline.rules.rules.iter().map(|r| r.name.clone()).collect();
            let rid = |name: &str| names.iter().position(|n| n == name).map(|i| RuleId(i as u32));
            match store.windows(&scope) {
                Ok(saved) => {
                    let mut bad = saved.skipped;
                    let mut windows = Vec::new();
                    for w in saved.windows {
                        let (Some(r), Some(text)) = (rid(&w.rule), w.state.as_deref()) else {
                            bad += 1;
                            continue;
                        };
                        match serde_json::from_str::<SavedWindow>(text) {
                            Ok(sw) => windows.push((r, w.key, sw)),
                            Err(_) => bad += 1,
                        }
                    }
                    let mut rules = Vec::new();
                    for r in saved.rules {
                        if let (Some(id), Some(text)) = (rid(&r.rule), r.state.as_deref()) {
                            if let Ok(st) = serde_json::from_str::<SavedRule>(text) {
                                rules.push((id, st));
                            }
                        }
                    }
                    let det = s.pipeline.detector_mut();
                    let n = windows.len();
                    let st = det.restore(windows);
                    det.restore_rules(rules);
                    if n > 0 || bad > 0 {
                        notes
                            .push(format!("source {scope}: {n} window(s) restored ({st:?}), {bad} unreadable skipped"));
                    }
                }
                Err(e) => notes.push(format!("source {scope}: cannot read saved windows: {e}")),
            }
            // Ban memory: decisions of this source's rules.
            let stored_rules: Vec<String> = names.iter().map(|n| format!("{scope}/{n}")).collect();
            let refs: Vec<&str> = stored_rules.iter().map(String::as_str).collect();
            if let Ok(h) = store.ban_history(&refs) {
                s.pipeline.decider_mut().restore_history(h.into_iter().map(|b| (b.key, b.prefix, b.history)));
            }
            let bans: Vec<RestoredBan> = active
                .iter()
                .filter_map(|d| {
                    let rule = d.decision.rule.as_deref()?.strip_prefix(&format!("{scope}/"))?;
                    let since = d
                        .decision
                        .reason
                        .get("trigger_time")
                        .and_then(|v| v.as_i64())
                        .map_or(d.decision.created, Timestamp);
                    Some(RestoredBan {
                        key: d.decision.key.clone(),
                        prefix: d.decision.prefix,
                        rule: rid(rule)?,
                        since,
                        until: d.decision.until,
                        ban_count: 0,
                        simulated: d.decision.simulated,
                    })
                })
                .collect();
            if !bans.is_empty() {
                let st = s.pipeline.decider_mut().restore_bans(bans, now);
                notes.push(format!("source {scope}: {} active ban(s) restored", st.active));
            }
        }
        notes
    }

    /// Run a chunk of lines.
    pub fn process(&mut self, chunk: Chunk, now: Timestamp) {
        let Some(src) = self.sources.get_mut(chunk.source) else {
            return;
        };
        src.pipeline.set_live_now(now);
        let name = src.config.name.clone();
        for line in &chunk.lines {
            let mut c = Collector {
                source: &name,
                recent: &mut src.recent,
                alerts: &mut self.pending.alerts,
                decisions: &mut self.pending.decisions,
                read_at: line.read_at,
            };
            src.pipeline.line_at(&line.input, line.line_no, &line.text, line.time, &mut c);
        }
        if let Some(t) = chunk.lines.last().and_then(|l| l.time) {
            src.lag_seconds = Some(now.since(t).0 as f64 / 1e6);
        }
        let n = chunk.lines.len() as u64;
        src.lines += n;
        self.pending.lines += n;
        if chunk.position.is_some() {
            src.pending_position = chunk.position;
        }
    }

    /// The batch to commit: everything pending and every source's position.
    pub fn take_batch(&mut self, now: Timestamp) -> (Batch, Vec<Instant>) {
        let pending = std::mem::take(&mut self.pending);
        let mut batch = Batch { alerts: pending.alerts, ..Batch::default() };
        let mut read_at = Vec::new();
        for (d, t) in pending.decisions {
            batch.decisions.push(d);
            read_at.push(t);
        }
        for s in &mut self.sources {
            // The windows changed by the lines of this batch travel with its
            // checkpoint: a restart continues them exactly.
            let scope = s.config.name.clone();
            let names: Vec<String> = s.pipeline.rules.rules.iter().map(|r| r.name.clone()).collect();
            let det = s.pipeline.detector_mut();
            for r in det.take_dirty() {
                let Some(rule) = names.get(r.rule.0 as usize) else { continue };
                let state = match r.state {
                    Some(w) => match serde_json::to_string(&w) {
                        Ok(t) => Some(t),
                        Err(_) => continue,
                    },
                    None => None,
                };
                batch.windows.push(WindowRow { scope: scope.clone(), rule: rule.clone(), key: r.key, state });
            }
            for (rid, st) in det.take_dirty_rules() {
                let Some(rule) = names.get(rid.0 as usize) else { continue };
                if let Ok(t) = serde_json::to_string(&st) {
                    batch.rule_states.push(RuleStateRow { scope: scope.clone(), rule: rule.clone(), state: Some(t) });
                }
            }
            match s.pending_position.take() {
                Some(Position::Files(cps)) => {
                    batch.replace_groups.push(group_of(&s.config.name));
                    batch.checkpoints.extend(cps.iter().map(|c| to_store(&s.config.name, c, now)));
                }
                Some(Position::Journal(cursor)) => {
                    let mut c = Checkpoint::new(group_of(&s.config.name), 0, now);
                    c.journal_cursor = Some(cursor);
                    batch.checkpoints.push(c);
                }
                None => {}
            }
        }
        (batch, read_at)
    }
}

fn source_engine(config: &Config, s: &SourceConfig, now: Timestamp) -> Result<SourceEngine, Vec<Diagnostic>> {
    let policy = config.policy.merged(&s.policy).to_args();
    let set = crate::ruleset::build(&s.rule_args(&config.rules), &policy)?;
    let tz = match &config.daemon.timezone {
        Some(z) => crate::timectx::zone(z).map_err(|e| vec![Diagnostic::error("K005", e.to_string())])?,
        None => stadtwache_datetime::TimeZone::system(),
    };
    let ctx = stadtwache_datetime::TimeContext { now, tz };
    let mut pipeline = Pipeline::new(set, &policy, ctx)?;
    pipeline.set_live_now(now);
    pipeline.track_changes();
    Ok(SourceEngine {
        config: s.clone(),
        pipeline,
        recent: VecDeque::new(),
        pending_position: None,
        lines: 0,
        lag_seconds: None,
    })
}

/// The checkpoint group of a source.
pub fn group_of(source: &str) -> String {
    format!("source:{source}")
}

fn to_store(source: &str, c: &follow::Checkpoint, now: Timestamp) -> Checkpoint {
    Checkpoint {
        source: format!("{}#{}:{}", group_of(source), c.file.dev, c.file.ino),
        group: group_of(source),
        path: Some(c.path.clone()),
        file: Some(FileIdentity { dev: c.file.dev, inode: c.file.ino, fingerprint: c.fingerprint.clone() }),
        after: c.after.map(|a| (a.dev, a.ino)),
        modified_ns: Some(c.modified_ns),
        offset: c.offset,
        line: 0,
        journal_cursor: None,
        updated: now,
    }
}

/// Stored checkpoints of a file source, for the follower to resume from.
pub fn from_store(cps: &[Checkpoint]) -> Vec<follow::Checkpoint> {
    cps.iter()
        .filter_map(|c| {
            let f = c.file.as_ref()?;
            Some(follow::Checkpoint {
                path: c.path.clone().unwrap_or_default(),
                file: follow::FileId { dev: f.dev, ino: f.inode },
                fingerprint: f.fingerprint.clone(),
                offset: c.offset,
                after: c.after.map(|(dev, ino)| follow::FileId { dev, ino }),
                modified_ns: c.modified_ns.unwrap_or(0),
            })
        })
        .collect()
}
