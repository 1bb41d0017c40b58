//! What a replay prints: a human summary, or JSON lines (one object per hit
//! and per decision, then a summary object), and the `--bans-out` file.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration as StdDuration;

use serde_json::json;
use stadtwache_acquire::ReadStats;
use stadtwache_core::{Key, Timestamp};

use crate::replay::{DecisionView, HitView, Observer, Pipeline};
use crate::timectx::fmt_time;

/// Counters of one rule.
#[derive(Clone, Debug, Default)]
pub struct RuleCounters {
    pub name: String,
    pub hits: u64,
    pub alerts: u64,
    pub bans: u64,
    pub allowlisted: u64,
    pub already_banned: u64,
    /// Bans whose end was already before "now".
    pub expired: u64,
    /// Failures whose host is not an address (DNS names are never resolved).
    pub no_address: u64,
    /// Failures without the rule's key field.
    pub no_key: u64,
    pub budget_exhausted: u64,
}

impl RuleCounters {
    pub fn new(name: &str) -> Self {
        RuleCounters { name: name.to_string(), ..Default::default() }
    }
}

/// Counters of a whole run.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    pub read: ReadStats,
    pub matched: u64,
    pub ignored: u64,
    pub missed: u64,
    pub no_date: u64,
    pub unreadable: Vec<String>,
    pub tracked_keys: u64,
    pub evicted: u64,
    pub rules: Vec<RuleCounters>,
}

impl RunStats {
    pub fn total(&self, f: impl Fn(&RuleCounters) -> u64) -> u64 {
        self.rules.iter().map(f).sum()
    }
}

pub fn human_summary(out: &mut impl Write, pipe: &Pipeline, elapsed: StdDuration) -> io::Result<()> {
    let s = &pipe.stats;
    let secs = elapsed.as_secs_f64().max(1e-9);
    writeln!(
        out,
        "Lines: {} lines, {} matched, {} ignored, {} missed, {} without a date ({:.0} lines/s)",
        s.read.lines,
        s.matched,
        s.ignored,
        s.missed,
        s.no_date,
        s.read.lines as f64 / secs
    )?;
    writeln!(
        out,
        "Skipped: {} over-long lines, {} lines with invalid UTF-8 (replaced and processed), {} inputs ended early, {} unreadable inputs",
        s.read.oversize,
        s.read.invalid_utf8,
        s.read.read_errors.len(),
        s.unreadable.len()
    )?;
    writeln!(
        out,
        "Hits: {}   Alerts: {}   Bans: {}{}   Allowlisted: {}   Already banned: {}",
        s.total(|r| r.hits),
        s.total(|r| r.alerts),
        s.total(|r| r.bans),
        if pipe.simulated() { " (simulated)" } else { "" },
        s.total(|r| r.allowlisted),
        s.total(|r| r.already_banned),
    )?;
    writeln!(out, "Keys: {} tracked at end, {} evicted by the key cap", s.tracked_keys, s.evicted)?;
    let name_w = s.rules.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    writeln!(out, "{:<name_w$}  {:>9} {:>8} {:>8} {:>9} {:>8}", "rule", "hits", "alerts", "bans", "no-addr", "budget")?;
    for r in &s.rules {
        if r.hits == 0 && r.alerts == 0 && s.rules.len() > 12 {
            continue;
        }
        writeln!(
            out,
            "{:<name_w$}  {:>9} {:>8} {:>8} {:>9} {:>8}",
            r.name, r.hits, r.alerts, r.bans, r.no_address, r.budget_exhausted
        )?;
    }
    Ok(())
}

pub fn json_summary(out: &mut impl Write, pipe: &Pipeline, elapsed: StdDuration) -> io::Result<()> {
    let s = &pipe.stats;
    let rules: Vec<_> = s
        .rules
        .iter()
        .map(|r| {
            json!({
                "rule": r.name, "hits": r.hits, "alerts": r.alerts, "bans": r.bans,
                "allowlisted": r.allowlisted, "already_banned": r.already_banned,
                "no_address": r.no_address, "no_key": r.no_key, "budget_exhausted": r.budget_exhausted,
            })
        })
        .collect();
    let v = json!({
        "type": "summary",
        "lines": s.read.lines, "bytes": s.read.bytes,
        "matched": s.matched, "ignored": s.ignored, "missed": s.missed, "no_date": s.no_date,
        "skipped": {
            "oversize": s.read.oversize,
            "read_errors": s.read.read_errors.iter().map(|e| json!({"input": e.input, "after_line": e.after_line, "error": e.message})).collect::<Vec<_>>(),
            "unreadable": s.unreadable,
        },
        "invalid_utf8": s.read.invalid_utf8,
        "hits": s.total(|r| r.hits), "alerts": s.total(|r| r.alerts), "bans": s.total(|r| r.bans),
        "tracked_keys": s.tracked_keys, "evicted": s.evicted,
        "seconds": elapsed.as_secs_f64(),
        "rules": rules,
    });
    writeln!(out, "{v}")
}

/// `--json`: one object per hit and per decision.
pub struct JsonLines<'w, W: Write> {
    out: &'w mut W,
    enabled: bool,
}

impl<'w, W: Write> JsonLines<'w, W> {
    pub fn new(out: &'w mut W, enabled: bool) -> Self {
        JsonLines { out, enabled }
    }
}

fn fields_json(f: &stadtwache_match::Failure) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (k, v) in &f.fields {
        let v = match v {
            stadtwache_match::FieldValue::One(s) => json!(s),
            stadtwache_match::FieldValue::Many(l) => json!(l),
        };
        m.insert(k.clone(), v);
    }
    serde_json::Value::Object(m)
}

impl<W: Write> Observer for JsonLines<'_, W> {
    fn wants(&self, _key: &Key) -> bool {
        self.enabled
    }
    fn active(&self) -> bool {
        self.enabled
    }

    fn hit(&mut self, h: &HitView<'_>) {
        let v = json!({
            "type": "hit",
            "input": h.input, "line": h.line_no,
            "time": fmt_time(h.event.time),
            "rule": h.rule.name, "regex": h.failure.regex_index,
            "key": h.event.key.to_string(),
            "weight": h.event.weight,
            "fields": fields_json(h.failure),
        });
        // Output errors (a closed pipe) must not stop the replay's counting.
        let _ = writeln!(self.out, "{v}");
    }

    fn decision(&mut self, d: &DecisionView<'_>) {
        let mut v = crate::engine::decision_json(d);
        if let Some(o) = v.as_object_mut() {
            o.insert("type".into(), json!("decision"));
            o.insert("rule".into(), json!(d.rule.name));
        }
        let _ = writeln!(self.out, "{v}");
    }
}

/// Write bans as `<epoch seconds> <address>`, sorted by time then address.
pub fn write_bans(path: &Path, bans: &[crate::engine::BanRow]) -> io::Result<()> {
    let mut rows: Vec<(Timestamp, String)> =
        bans.iter().map(|(t, k, p)| (*t, stadtwache_decide::target_string(k, *p))).collect();
    rows.sort();
    let mut f = io::BufWriter::new(std::fs::File::create(path)?);
    for (t, k) in rows {
        writeln!(f, "{} {}", fmt_epoch(t), k)?;
    }
    f.flush()
}

/// Epoch seconds: an integer when whole, else with the fraction.
pub fn fmt_epoch(t: Timestamp) -> String {
    if t.0 % Timestamp::MICROS_PER_SEC == 0 {
        t.as_secs().to_string()
    } else {
        format!("{:.6}", t.as_secs_f64()).trim_end_matches('0').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_format_is_integer_when_whole() {
        assert_eq!(fmt_epoch(Timestamp::from_secs(1_700_000_000)), "1700000000");
        assert_eq!(fmt_epoch(Timestamp(1_700_000_000_250_000)), "1700000000.25");
    }
}
