//! Running a rule's samples through the real matcher.
//!
//! One implementation for the test suite and for the CLI (`stadtwache
//! check`): every sample gets a fresh [`FilterRunner`]; its lines (split at
//! `\n`) are fed in order with [`FilterRunner::process_line`], so the real
//! date detection runs too.
//!
//! - a `match` sample must produce a failure (with a failure id, not a
//!   `<F-NOFAIL>` helper) whose captures equal every expected value;
//!   `host` is compared with the failure's address (`ip4`/`ip6`/`dns`
//!   capture, normalised address or failure id);
//! - a `no_match` sample must produce no failure;
//! - every line must carry a date the detector finds (samples are written in
//!   their daemon's real format).

use std::sync::Arc;

use stadtwache_core::{Diagnostic, Timestamp};
use stadtwache_datetime::{TimeContext, TimeZone};
use stadtwache_match::{CompiledFilter, DateStatus, Failure, FieldValue, FilterRunner, RunOptions};

use crate::{NativeRule, RulePack, Sample, SampleKind};

/// Diagnostic codes of sample checks.
pub mod codes {
    /// A `match` sample produced no failure, or other captures.
    pub const MATCH_FAILED: &str = "R200";
    /// A `no_match` sample produced a failure.
    pub const NO_MATCH_MATCHED: &str = "R201";
    /// No date found in a sample line.
    pub const NO_DATE: &str = "R202";
}

/// The context samples are checked in: now = 2026-06-01T12:00:00Z (dates
/// without a year are completed from it), zone UTC.
pub fn sample_context() -> TimeContext {
    TimeContext { now: Timestamp::from_secs(1_780_315_200), tz: TimeZone::UTC }
}

/// Outcome of checking samples.
#[derive(Clone, Debug, Default)]
pub struct SampleReport {
    pub passed: usize,
    /// One error per failed sample, at the sample's file and line.
    pub failed: Vec<Diagnostic>,
}

impl SampleReport {
    /// `rule samples: N passed, N failed`.
    pub fn summary(&self) -> String {
        format!("rule samples: {} passed, {} failed", self.passed, self.failed.len())
    }
}

/// Check every sample of every rule of `pack`. Rules whose patterns do not
/// compile report the compile errors instead.
pub fn check_pack(pack: &RulePack, ctx: &TimeContext) -> SampleReport {
    let mut report = SampleReport::default();
    for rule in &pack.rules {
        match rule.compile() {
            Ok(filter) => {
                for s in &rule.samples {
                    match check_sample(rule, &filter, s, ctx) {
                        Ok(()) => report.passed += 1,
                        Err(d) => report.failed.push(d),
                    }
                }
            }
            Err(ds) => report.failed.extend(ds),
        }
    }
    report
}

/// Check one sample of `rule` against its compiled filter.
pub fn check_sample(
    rule: &NativeRule,
    filter: &Arc<CompiledFilter>,
    sample: &Sample,
    ctx: &TimeContext,
) -> Result<(), Diagnostic> {
    let at = |d: Diagnostic| match &sample.source.file {
        Some(f) => d.at(f.clone(), sample.source.line),
        None => d,
    };
    let mut runner = FilterRunner::new(Arc::clone(filter), RunOptions::default());
    let mut failures: Vec<Failure> = Vec::new();
    for line in sample.line.split('\n') {
        let r = runner.process_line(line, ctx);
        if r.date != DateStatus::Found {
            let msg = format!("rule {}: no date found in sample line: {line}", rule.id);
            return Err(at(Diagnostic::error(codes::NO_DATE, msg)));
        }
        failures.extend(r.failures.into_iter().filter(|f| !f.nofail && f.fid.is_some()));
    }
    match sample.kind {
        SampleKind::NoMatch if failures.is_empty() => Ok(()),
        SampleKind::NoMatch => {
            let msg = format!(
                "rule {}: must-not-match sample matched ({}): {}",
                rule.id,
                describe(&failures[0]),
                sample.line
            );
            Err(at(Diagnostic::error(codes::NO_MATCH_MATCHED, msg)))
        }
        SampleKind::Match if failures.is_empty() => {
            let msg = format!("rule {}: must-match sample did not match: {}", rule.id, sample.line);
            Err(at(Diagnostic::error(codes::MATCH_FAILED, msg)))
        }
        SampleKind::Match => {
            if failures.iter().any(|f| sample.expect.iter().all(|(k, v)| field_matches(f, k, v))) {
                return Ok(());
            }
            let want: Vec<String> = sample.expect.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            let got: Vec<String> = failures.iter().map(describe).collect();
            let msg = format!(
                "rule {}: sample captured {}, expected {}: {}",
                rule.id,
                got.join(" | "),
                want.join(" "),
                sample.line
            );
            Err(at(Diagnostic::error(codes::MATCH_FAILED, msg)))
        }
    }
}

fn field_str(f: &FieldValue) -> String {
    match f {
        FieldValue::One(s) => s.clone(),
        FieldValue::Many(v) => v.join(","),
    }
}

/// Whether failure `f` captured `want` as `name` (`host`: its address).
pub fn field_matches(f: &Failure, name: &str, want: &str) -> bool {
    let by_field = f.fields.get(name).is_some_and(|v| match v {
        FieldValue::One(s) => s == want,
        FieldValue::Many(v) => v.iter().any(|s| s == want),
    });
    if by_field {
        return true;
    }
    if name == "host" {
        return f.ip.is_some_and(|ip| ip.to_string() == want)
            || f.fid.as_deref() == Some(want)
            || ["ip4", "ip6", "dns"].iter().any(|k| f.fields.get(*k).is_some_and(|v| field_str(v) == want));
    }
    false
}

fn describe(f: &Failure) -> String {
    let mut parts = vec![format!(
        "host={:?}",
        f.ip.map(|i| i.to_string()).or_else(|| f.fid.as_deref().map(String::from)).unwrap_or_default()
    )];
    parts.extend(
        f.fields
            .iter()
            .filter(|(k, _)| !["ip4", "ip6", "dns"].contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={:?}", field_str(v))),
    );
    parts.join(" ")
}
