//! `stadtwache explain ADDR FILE…` and `replay --why ADDR`: the lineage of
//! every decision about one key — the lines, the rule and regex that matched
//! them, the window state that triggered, and the policy steps that made the
//! decision.

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use serde_json::json;
use stadtwache_core::Key;

use crate::replay::{self, DecisionView, HitView, Observer, Pipeline};
use crate::timectx::fmt_time;
use crate::{PolicyArgs, RuleArgs, TimeArgs};

/// Evidence lines kept per key; the count of the rest is reported.
const MAX_EVIDENCE: usize = 500;

pub struct ExplainRequest {
    pub key: String,
    pub files: Vec<PathBuf>,
    pub rules: RuleArgs,
    pub time: TimeArgs,
    pub policy: PolicyArgs,
    pub json: bool,
    pub max_line: usize,
}

struct HitRecord {
    input: String,
    line_no: u64,
    line: String,
    rule: String,
    regex_index: usize,
    regex: String,
    regex_at: String,
    time: String,
}

struct Entry {
    key: Key,
    hits: Vec<HitRecord>,
    hits_dropped: u64,
    decisions: Vec<serde_json::Value>,
    texts: Vec<String>,
}

/// Collects what happened to the keys asked about.
pub struct Collector {
    entries: Vec<Entry>,
}

pub fn parse_key(text: &str) -> Key {
    match text.parse::<IpAddr>() {
        Ok(ip) => Key::Ip(ip),
        Err(_) => Key::Text(Arc::from(text)),
    }
}

impl Collector {
    pub fn new(keys: &[String]) -> Result<Collector> {
        Ok(Collector {
            entries: keys
                .iter()
                .map(|k| Entry {
                    key: parse_key(k),
                    hits: Vec::new(),
                    hits_dropped: 0,
                    decisions: Vec::new(),
                    texts: Vec::new(),
                })
                .collect(),
        })
    }

    fn entry(&mut self, key: &Key) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| &e.key == key)
    }

    pub fn print(&self, out: &mut impl Write, pipe: &Pipeline) -> io::Result<()> {
        for e in &self.entries {
            writeln!(out)?;
            writeln!(out, "== {}", e.key)?;
            if e.hits.is_empty() {
                writeln!(out, "No rule matched a line about {}.", e.key)?;
                let rules: Vec<_> =
                    pipe.rules.rules.iter().map(|r| format!("{} ({})", r.name, r.origin_text())).collect();
                writeln!(out, "Rules that ran: {}", rules.join(", "))?;
                continue;
            }
            writeln!(out, "{} lines matched ({} more not shown):", e.hits.len(), e.hits_dropped)?;
            for h in &e.hits {
                writeln!(out, "  {}:{}  [{}]  {}", h.input, h.line_no, h.time, h.line)?;
                writeln!(out, "      rule {} failregex #{} ({}): {}", h.rule, h.regex_index, h.regex_at, h.regex)?;
            }
            if e.texts.is_empty() {
                writeln!(out, "No decision: the windows never reached their thresholds.")?;
            }
            for t in &e.texts {
                writeln!(out, "{t}")?;
            }
        }
        Ok(())
    }

    pub fn print_json(&self, out: &mut impl Write) -> io::Result<()> {
        for e in &self.entries {
            let hits: Vec<_> = e
                .hits
                .iter()
                .map(|h| {
                    json!({"input": h.input, "line": h.line_no, "text": h.line, "time": h.time,
                       "rule": h.rule, "regex": h.regex_index, "regex_source": h.regex, "regex_at": h.regex_at})
                })
                .collect();
            let v = json!({"key": e.key.to_string(), "hits": hits, "hits_not_shown": e.hits_dropped, "decisions": e.decisions});
            writeln!(out, "{v}")?;
        }
        Ok(())
    }
}

impl Observer for Collector {
    fn wants(&self, key: &Key) -> bool {
        self.entries.iter().any(|e| &e.key == key)
    }
    fn active(&self) -> bool {
        !self.entries.is_empty()
    }

    fn hit(&mut self, h: &HitView<'_>) {
        let src = h.rule.filter.failregex_source(h.failure.regex_index);
        let regex_at = match &src.at.file {
            Some(f) => format!("{}:{}", f.display(), src.at.line),
            None => "embedded".to_string(),
        };
        let rec = HitRecord {
            input: h.input.to_string(),
            line_no: h.line_no,
            line: h.line.to_string(),
            rule: h.rule.name.clone(),
            regex_index: h.failure.regex_index,
            regex: src.text.clone(),
            regex_at,
            time: fmt_time(h.event.time),
        };
        if let Some(e) = self.entry(&h.event.key) {
            if e.hits.len() < MAX_EVIDENCE {
                e.hits.push(rec);
            } else {
                e.hits_dropped += 1;
            }
        }
    }

    fn decision(&mut self, d: &DecisionView<'_>) {
        let v = crate::engine::decision_json(d);
        let t = crate::engine::decision_text(d);
        if let Some(e) = self.entry(&d.trigger.key) {
            e.decisions.push(v);
            e.texts.push(t);
        }
    }
}

pub fn run_cli(req: ExplainRequest) -> Result<ExitCode> {
    let Some(mut pipe) = replay::build_pipeline(&req.rules, &req.policy, &req.time, &req.files)? else {
        return Ok(ExitCode::from(1));
    };
    let mut col = Collector::new(std::slice::from_ref(&req.key))?;
    let all_opened = replay::run_inputs(&mut pipe, &req.files, req.max_line, false, &mut col);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if req.json {
        col.print_json(&mut out)?;
    } else {
        col.print(&mut out, &pipe)?;
    }
    Ok(if all_opened { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
