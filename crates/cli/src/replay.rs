//! The offline pipeline: acquire → match → detect → decide, over files.
//!
//! One thread, one pass. Every line goes through every rule's runner; each
//! failure with a key becomes an `Event` for the detector; each trigger goes
//! to the decider. Observers (JSON output, explanations) see hits and
//! decisions as they happen. Time is the log's time throughout.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use stadtwache_acquire::{Input, ReadStats};
use stadtwache_core::{Diagnostic, Event, Key, RuleId};
use stadtwache_datetime::TimeContext;
use stadtwache_decide::{Decider, Decision};
use stadtwache_detect::{Detector, Trigger};
use stadtwache_match::{DateKey, DateMatch, Dater, Failure, FieldValue, FilterRunner, RunOptions};

use crate::report::{self, RuleCounters, RunStats};
use crate::ruleset::{self, KeySel, Rule, RuleSet};
use crate::{PolicyArgs, RuleArgs, TimeArgs, timectx};

pub struct ReplayRequest {
    pub files: Vec<PathBuf>,
    pub rules: RuleArgs,
    pub time: TimeArgs,
    pub policy: PolicyArgs,
    pub json: bool,
    pub bans_out: Option<PathBuf>,
    pub why: Vec<String>,
    pub max_line: usize,
    pub progress: bool,
}

/// One hit as observers see it.
pub struct HitView<'a> {
    pub input: &'a str,
    pub line_no: u64,
    pub line: &'a str,
    pub rule: &'a Rule,
    pub failure: &'a Failure,
    pub event: &'a Event,
}

/// One decision as observers see it.
pub struct DecisionView<'a> {
    pub rule: &'a Rule,
    pub trigger: &'a Trigger,
    pub decision: &'a Decision,
}

/// Something that watches the pipeline (JSON lines, explanations).
pub trait Observer {
    /// Whether this observer wants hits for `key` (to avoid work for the rest).
    fn wants(&self, _key: &Key) -> bool {
        true
    }
    fn hit(&mut self, _hit: &HitView<'_>) {}
    fn decision(&mut self, _d: &DecisionView<'_>) {}
    /// Whether this observer may want anything at all (`false`: `wants`
    /// is `false` for every key).
    fn active(&self) -> bool {
        true
    }
}

/// Several observers at once.
pub struct Fanout<'a>(pub Vec<&'a mut dyn Observer>);

impl<'a> Fanout<'a> {
    /// The observers that may want something (asking the others for every
    /// hit is wasted work).
    pub fn active(observers: Vec<&'a mut dyn Observer>) -> Self {
        Fanout(observers.into_iter().filter(|o| o.active()).collect())
    }
}

impl Observer for Fanout<'_> {
    fn wants(&self, key: &Key) -> bool {
        self.0.iter().any(|o| o.wants(key))
    }
    fn active(&self) -> bool {
        self.0.iter().any(|o| o.active())
    }
    fn hit(&mut self, hit: &HitView<'_>) {
        for o in &mut self.0 {
            if o.wants(&hit.event.key) {
                o.hit(hit);
            }
        }
    }
    fn decision(&mut self, d: &DecisionView<'_>) {
        for o in &mut self.0 {
            if o.wants(&d.trigger.key) {
                o.decision(d);
            }
        }
    }
}

pub struct Pipeline {
    pub rules: RuleSet,
    runners: Vec<FilterRunner>,
    /// One date state per date configuration: a line's date is found once
    /// and handed to every runner of that configuration.
    daters: Vec<Dater>,
    /// Index into `daters` per runner.
    dater_of: Vec<usize>,
    /// The current line's date per dater.
    dates: Vec<Option<DateMatch>>,
    detector: Detector,
    decider: Decider,
    ctx: TimeContext,
    pub stats: RunStats,
    /// Bans as (time, key, prefix) for `--bans-out`, when `keep_bans`
    /// (a daemon has no use for the list, which would only grow).
    pub bans: Vec<crate::engine::BanRow>,
    pub keep_bans: bool,
    line_seq: u64,
    /// bantime.increment is on: known bad addresses count extra.
    increment: bool,
    /// Newest event time of the current input.
    input_clock: Option<stadtwache_core::Timestamp>,
    /// The daemon's clock (real time), set before each line. `None` in
    /// replay, where the log's own time is the clock.
    live_now: Option<stadtwache_core::Timestamp>,
    /// Failures older than `now - window` seen in live mode (fail2ban:
    /// "ignore line since time … < now - findtime"), per rule.
    pub stale: Vec<u64>,
    /// `false`: the observer handed to [`Pipeline::line`] wants nothing
    /// (`Observer::active`), so it is not asked about each hit and decision
    /// ([`run_inputs`] sets it for its loop).
    observed: bool,
}

impl Pipeline {
    pub fn new(rules: RuleSet, policy: &PolicyArgs, ctx: TimeContext) -> Result<Pipeline, Vec<Diagnostic>> {
        let runners =
            rules.rules.iter().map(|r| FilterRunner::new(Arc::clone(&r.filter), RunOptions::default())).collect();
        let mut keys: Vec<&DateKey> = Vec::new();
        let mut daters = Vec::new();
        let mut dater_of = Vec::with_capacity(rules.rules.len());
        for r in &rules.rules {
            let key = r.filter.date_key();
            match keys.iter().position(|k| *k == key) {
                Some(i) => dater_of.push(i),
                None => {
                    dater_of.push(keys.len());
                    keys.push(key);
                    daters.push(r.filter.dater());
                }
            }
        }
        let dates = vec![None; daters.len()];
        let detector = crate::engine::detector(&rules, policy)?;
        let decider = crate::engine::decider(&rules, policy)?;
        let stats =
            RunStats { rules: rules.rules.iter().map(|r| RuleCounters::new(&r.name)).collect(), ..RunStats::default() };
        let increment = decider.policy().increment.is_some();
        let nrules = rules.rules.len();
        Ok(Pipeline {
            rules,
            runners,
            daters,
            dater_of,
            dates,
            detector,
            decider,
            ctx,
            stats,
            bans: Vec::new(),
            keep_bans: false,
            line_seq: 0,
            increment,
            input_clock: None,
            live_now: None,
            stale: vec![0; nrules],
            observed: true,
        })
    }

    /// Live mode: the wall clock `now` (also completes year-less dates).
    pub fn set_live_now(&mut self, now: stadtwache_core::Timestamp) {
        self.live_now = Some(now);
        self.ctx.now = now;
    }

    /// The window length of a rule (for the live stale check).
    fn window_len(rule: &Rule) -> Option<stadtwache_core::Duration> {
        match rule.window {
            ruleset::Window::Fail2ban { findtime, .. } => Some(findtime),
            ruleset::Window::Count { window, .. } | ruleset::Window::Distinct { window, .. } => Some(window),
            ruleset::Window::Once => None,
        }
    }

    /// Run one line through every rule.
    #[inline]
    pub fn line(&mut self, input: &str, line_no: u64, text: &str, obs: &mut dyn Observer) {
        self.line_at(input, line_no, text, None, obs)
    }

    /// Run one line through every rule; `time`: the line's time when the
    /// source knows it (journald, `time = "arrival"`), skipping date detection.
    pub fn line_at(
        &mut self,
        input: &str,
        line_no: u64,
        text: &str,
        time: Option<stadtwache_core::Timestamp>,
        obs: &mut dyn Observer,
    ) {
        self.line_seq += 1;
        let mut matched = false;
        let mut ignored = false;
        let mut dated = false;
        // One date configuration (the common case): its date stays a local
        // that goes to the runners as it is, not a copy through `dates`.
        let one = self.daters.len() == 1;
        let mut date = None;
        if time.is_none() {
            if one {
                date = self.daters[0].find(text, &self.ctx);
            } else {
                for k in 0..self.daters.len().min(self.dates.len()) {
                    self.dates[k] = self.daters[k].find(text, &self.ctx);
                }
            }
        }
        // A line's result borrows its runner while the failures borrow the
        // pipeline's other fields (`Sink`).
        for ri in 0..self.runners.len() {
            let runner = &mut self.runners[ri];
            let res = match time {
                Some(t) => runner.process_line_at_ref(text, t),
                None => {
                    let hit = if one { date } else { self.dates[self.dater_of[ri]] };
                    runner.process_line_dated_ref(text, hit, &self.ctx)
                }
            };
            // The pipeline's clock: the newest log time seen in this input,
            // kept across undated lines (lines are not strictly ordered; a ban
            // never expires backwards). Per input, so that replaying several
            // logs of the same days one after the other still judges each ban
            // against its own log's time. fail2ban runs its service step
            // (failure-list cleanup, throttled to every 5 s) at this clock
            // before it processes the line.
            if let Some(live) = self.live_now {
                self.detector.service(live);
            } else if let Some(t) = res.time {
                let now = self.input_clock.map_or(t, |c| c.max(t));
                self.input_clock = Some(now);
                self.detector.service(now);
            }
            ignored |= res.ignored;
            dated |= res.date == stadtwache_match::DateStatus::Found;
            // (most lines have no failure: their path stays short)
            if !res.failures.is_empty() {
                let mut sink = Sink {
                    rule: &self.rules.rules[ri],
                    counters: &mut self.stats.rules[ri],
                    detector: &mut self.detector,
                    decider: &mut self.decider,
                    bans: self.keep_bans.then_some(&mut self.bans),
                    input_clock: &mut self.input_clock,
                    live_now: self.live_now,
                    stale: &mut self.stale[ri],
                    increment: self.increment,
                    line_seq: self.line_seq,
                    observed: self.observed,
                };
                matched |= sink.failures(ri, res, input, line_no, text, obs);
            }
        }
        if matched {
            self.stats.matched += 1;
        } else if ignored {
            self.stats.ignored += 1;
        } else {
            self.stats.missed += 1;
        }
        if !dated {
            self.stats.no_date += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn decide(
        decider: &mut Decider,
        bans: Option<&mut Vec<crate::engine::BanRow>>,
        counters: &mut RuleCounters,
        rule: &Rule,
        trigger: &Trigger,
        now: stadtwache_core::Timestamp,
        observed: bool,
        obs: &mut dyn Observer,
    ) {
        counters.alerts += 1;
        // the explanation only for an observer that looks at it
        let watch = observed && obs.wants(&trigger.key);
        if watch {
            let decision = decider.decide(trigger, now);
            crate::engine::count_decision(&decision, counters, trigger.time, bans);
            obs.decision(&DecisionView { rule, trigger, decision: &decision });
        } else {
            // nobody reads an explanation: the outcome only
            let outcome = decider.decide_quiet(trigger, now);
            crate::engine::count_outcome(outcome, counters, trigger.time, bans);
        }
    }

    /// The daemon saves windows and restores bans (see `daemon::engine`).
    pub fn detector_mut(&mut self) -> &mut Detector {
        &mut self.detector
    }

    pub fn decider_mut(&mut self) -> &mut Decider {
        &mut self.decider
    }

    /// Track changed windows for `Detector::take_dirty` (the daemon).
    pub fn track_changes(&mut self) {
        let d = std::mem::replace(&mut self.detector, Detector::new(Vec::new(), Default::default()));
        self.detector = d.with_change_tracking();
    }

    pub fn detector_stats(&self) -> stadtwache_detect::DetectStats {
        self.detector.stats()
    }

    pub fn simulated(&self) -> bool {
        self.decider.policy().simulate
    }

    pub fn finish(&mut self) {
        for (ri, r) in self.runners.iter().enumerate() {
            self.stats.rules[ri].budget_exhausted = r.stats().budget_exhausted;
        }
        let ds = self.detector.stats();
        self.stats.tracked_keys = ds.tracked_keys as u64;
        self.stats.evicted = ds.evicted;
    }
}

/// The parts of a [`Pipeline`] that one rule's failures on a line go to
/// (borrowed apart from the runner whose result they are).
struct Sink<'p> {
    rule: &'p Rule,
    counters: &'p mut RuleCounters,
    detector: &'p mut Detector,
    decider: &'p mut Decider,
    bans: Option<&'p mut Vec<crate::engine::BanRow>>,
    input_clock: &'p mut Option<stadtwache_core::Timestamp>,
    live_now: Option<stadtwache_core::Timestamp>,
    /// The rule's count of failures too old for the live window.
    stale: &'p mut u64,
    increment: bool,
    line_seq: u64,
    /// [`Pipeline::observed`]
    observed: bool,
}

impl Sink<'_> {
    /// The failures of rule `ri`'s runner on a line: events for the
    /// detector, triggers for the decider. Whether any counted as a hit.
    #[inline(never)]
    fn failures(
        &mut self,
        ri: usize,
        res: &stadtwache_match::LineResult,
        input: &str,
        line_no: u64,
        text: &str,
        obs: &mut dyn Observer,
    ) -> bool {
        // (one failure, the common case, without the loop: its invariants
        // are not set up for the loop on every line that has one)
        match res.failures.as_slice() {
            [f] => self.failure(ri, f, input, line_no, text, obs),
            fs => {
                let mut matched = false;
                for f in fs {
                    matched |= self.failure(ri, f, input, line_no, text, obs);
                }
                matched
            }
        }
    }

    /// One failure of [`Sink::failures`]: whether it counted as a hit.
    #[inline(always)]
    fn failure(
        &mut self,
        ri: usize,
        f: &Failure,
        input: &str,
        line_no: u64,
        text: &str,
        obs: &mut dyn Observer,
    ) -> bool {
        let rule = self.rule;
        if f.fid.is_none() || f.nofail {
            return false;
        }
        let counters = &mut *self.counters;
        counters.hits += 1;
        let key = match &rule.key {
            KeySel::Host => match f.ip {
                Some(ip) => Key::Ip(ip),
                None => {
                    counters.no_address += 1;
                    return true;
                }
            },
            KeySel::Field(name) => match f.fields.get(name.as_str()) {
                Some(FieldValue::One(v)) => Key::Text(Arc::from(v.as_str())),
                Some(FieldValue::Many(v)) if !v.is_empty() => Key::Text(Arc::from(v[0].as_str())),
                _ => {
                    counters.no_key += 1;
                    return true;
                }
            },
        };
        let distinct = match &rule.window {
            ruleset::Window::Distinct { field, .. } => match f.fields.get(field.as_str()) {
                Some(FieldValue::One(v)) => Some(Arc::from(v.as_str())),
                Some(FieldValue::Many(v)) => v.first().map(|s| Arc::from(s.as_str())),
                None => None,
            },
            _ => None,
        };
        if let (Some(live), Some(len)) = (self.live_now, Pipeline::window_len(rule)) {
            if f.time < live.saturating_sub(len) {
                *self.stale += 1;
                return true;
            }
        }
        let event = Event {
            rule: RuleId(ri as u32),
            key,
            time: f.time,
            weight: crate::engine::weight(f),
            distinct,
            line_no: self.line_seq,
        };
        if self.observed && obs.wants(&event.key) {
            obs.hit(&HitView { input, line_no, line: text, rule, failure: f, event: &event });
        }
        // The line's clock (an event dated later than its line, if
        // any, moves it on).
        let now = match self.live_now {
            Some(live) => live,
            None => {
                let now = self.input_clock.map_or(event.time, |c| c.max(event.time));
                *self.input_clock = Some(now);
                now
            }
        };
        self.decider.expire_quiet(now);
        if let Some(trigger) = self.detector.observe(&event) {
            let observed = self.observed;
            Pipeline::decide(self.decider, self.bans.as_deref_mut(), counters, rule, &trigger, now, observed, obs);
        }
        // bantime.increment: known bad addresses count extra (fail2ban's observer).
        if self.increment {
            if let ruleset::Window::Fail2ban { maxretry, .. } = rule.window {
                let extra = self.decider.bad_ip_extra_retries(&event.key, event.time, maxretry);
                if extra > 0 {
                    if let Some(trigger) = self.detector.add_observed(event.rule, &event.key, event.time, extra) {
                        Pipeline::decide(
                            self.decider,
                            self.bans.as_deref_mut(),
                            counters,
                            rule,
                            &trigger,
                            now,
                            self.observed,
                            obs,
                        );
                    }
                }
            }
        }
        true
    }
}

/// Run every input through the pipeline. Unreadable inputs are reported and
/// skipped; the return value says whether any input could not be opened.
pub fn run_inputs(
    pipe: &mut Pipeline,
    files: &[PathBuf],
    max_line: usize,
    progress: bool,
    obs: &mut dyn Observer,
) -> bool {
    let mut all_opened = true;
    let total_bytes: u64 =
        files.iter().filter(|p| p.as_os_str() != "-").filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let bar = (progress && std::io::stderr().is_terminal() && total_bytes > 16 << 20).then(|| {
        let bar = indicatif::ProgressBar::new(total_bytes);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut done_bytes = 0u64;
    // (asked once, not for every hit and decision)
    pipe.observed = obs.active();
    for path in files {
        let input = match Input::open(path) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("stadtwache: error[{}]", e);
                pipe.stats.unreadable.push(path.display().to_string());
                all_opened = false;
                continue;
            }
        };
        let name = input.name.clone();
        pipe.input_clock = None;
        let compressed = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let mut reader = input.lines(max_line);
        let mut n = 0u64;
        while let Some(line) = reader.next() {
            let (no, text) = (line.number, line.text);
            pipe.line(&name, no, &text, obs);
            n += 1;
            if n % 65_536 == 0 {
                if let Some(b) = &bar {
                    b.set_position(done_bytes + reader.stats().bytes.min(compressed));
                }
            }
        }
        done_bytes += compressed;
        let st: ReadStats = reader.into_stats();
        for e in &st.read_errors {
            eprintln!(
                "stadtwache: warning[I002]: {}: input ended early after line {}: {}",
                e.input, e.after_line, e.message
            );
        }
        pipe.stats.read.merge(&st);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    pipe.observed = true;
    pipe.finish();
    all_opened
}

pub fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}

pub fn build_pipeline(
    rules: &RuleArgs,
    policy: &PolicyArgs,
    time: &TimeArgs,
    files: &[PathBuf],
) -> Result<Option<Pipeline>> {
    let ctx = timectx::build(time, files)?;
    let set = match ruleset::build(rules, policy) {
        Ok(s) => s,
        Err(diags) => {
            print_diagnostics(&diags);
            return Ok(None);
        }
    };
    print_diagnostics(&set.warnings);
    match Pipeline::new(set, policy, ctx) {
        Ok(p) => Ok(Some(p)),
        Err(diags) => {
            print_diagnostics(&diags);
            Ok(None)
        }
    }
}

pub fn run_cli(req: ReplayRequest) -> Result<ExitCode> {
    let Some(mut pipe) = build_pipeline(&req.rules, &req.policy, &req.time, &req.files)? else {
        return Ok(ExitCode::from(1));
    };
    pipe.keep_bans = req.bans_out.is_some();
    // Nothing in a replay asks the decider to explain a ban afterwards
    // (observers get each decision with its explanation as it is made).
    pipe.decider_mut().set_stored_reasons(false);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut json = report::JsonLines::new(&mut out, req.json);
    let mut why = crate::explain::Collector::new(&req.why)?;
    let started = std::time::Instant::now();
    let all_opened = {
        let mut fan = Fanout::active(vec![&mut json, &mut why]);
        if !fan.active() {
            // no one looks at a trigger's evidence (not in the bans file,
            // not in the summary): windows keep no line numbers
            pipe.detector_mut().set_evidence_cap(0);
        }
        run_inputs(&mut pipe, &req.files, req.max_line, req.progress, &mut fan)
    };
    let elapsed = started.elapsed();
    if req.json {
        report::json_summary(&mut out, &pipe, elapsed)?;
    } else {
        report::human_summary(&mut out, &pipe, elapsed)?;
    }
    if !req.why.is_empty() {
        why.print(&mut out, &pipe)?;
    }
    out.flush()?;
    if let Some(path) = &req.bans_out {
        report::write_bans(path, &pipe.bans).with_context(|| format!("writing {}", path.display()))?;
    }
    // The process exits next: freeing the compiled filters' automata and the
    // windows one by one would only cost time (~2 ms of a 60 ms start-up).
    std::mem::forget(pipe);
    Ok(if all_opened { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
