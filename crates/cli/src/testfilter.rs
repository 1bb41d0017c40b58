//! `stadtwache test-filter FILTER FILE` — our `fail2ban-regex`: which lines
//! matched which failregex (with the captured fields), which were ignored,
//! which were missed, and the date detection tally.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use stadtwache_acquire::Input;
use stadtwache_core::Diagnostic;
use stadtwache_match::{CompileOptions, CompiledFilter, DateStatus, FieldValue, FilterRunner, FilterSpec, RunOptions};

use crate::replay::print_diagnostics;
use crate::{TimeArgs, ruleset, timectx};

pub struct TestFilterRequest {
    pub filter: String,
    pub file: PathBuf,
    pub filter_dir: PathBuf,
    pub rules: Option<PathBuf>,
    pub time: TimeArgs,
    pub print_missed: bool,
    pub print_all_matched: bool,
    pub all_regex: bool,
    pub max_line: usize,
}

const SHOWN_PER_REGEX: usize = 20;

fn load_spec(req: &TestFilterRequest) -> Result<(FilterSpec, String), Vec<Diagnostic>> {
    if let Some(id) = req.filter.strip_prefix("native:") {
        let pack = ruleset::native_pack(req.rules.as_deref())?;
        let Some(rule) = pack.rules.into_iter().find(|r| r.id == id) else {
            return Err(vec![Diagnostic::error("R101", format!("no native rule with id {id:?}"))]);
        };
        let origin = match &rule.source.file {
            Some(f) => format!("{}:{}", f.display(), rule.source.line),
            None => "embedded rule pack".to_string(),
        };
        Ok((rule.spec, origin))
    } else {
        let (spec, files, warnings) = ruleset::load_fail2ban(&req.filter, &req.filter_dir)?;
        print_diagnostics(&warnings);
        let files: Vec<_> = files.iter().map(|f| f.display().to_string()).collect();
        Ok((spec, files.join(", ")))
    }
}

fn fields_text(f: &stadtwache_match::Failure) -> String {
    f.fields
        .iter()
        .map(|(k, v)| match v {
            FieldValue::One(s) => format!("{k}={s:?}"),
            FieldValue::Many(l) => format!("{k}={l:?}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run_cli(req: TestFilterRequest) -> Result<ExitCode> {
    let (spec, origin) = match load_spec(&req) {
        Ok(x) => x,
        Err(d) => {
            print_diagnostics(&d);
            return Ok(ExitCode::from(1));
        }
    };
    let compiled = match CompiledFilter::compile(&spec, &CompileOptions::default()) {
        Ok(c) => {
            print_diagnostics(&c.warnings);
            Arc::new(c.filter)
        }
        Err(d) => {
            print_diagnostics(&d);
            return Ok(ExitCode::from(1));
        }
    };
    let ctx = timectx::build(&req.time, std::slice::from_ref(&req.file))?;
    let input = match Input::open(&req.file) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("stadtwache: error[{e}]");
            return Ok(ExitCode::from(1));
        }
    };
    let mut runner = FilterRunner::new(Arc::clone(&compiled), RunOptions { check_all_regex: req.all_regex });
    let n_regex = compiled.failregex_count();
    let mut hits = vec![0u64; n_regex];
    let mut shown = vec![0usize; n_regex];
    let (mut matched, mut ignored, mut missed, mut dated, mut undated) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    writeln!(out, "Running tests\n=============\n")?;
    writeln!(out, "Use   failregex filter : {} ({origin})", spec.name)?;
    writeln!(out, "Use         log file : {}\n", req.file.display())?;
    let mut reader = input.lines(req.max_line);
    let mut missed_lines = Vec::new();
    while let Some(line) = reader.next() {
        let res = runner.process_line(&line.text, &ctx);
        match res.date {
            DateStatus::Found | DateStatus::Given => dated += 1,
            DateStatus::NotFound => undated += 1,
        }
        let real: Vec<_> = res.failures.iter().filter(|f| f.fid.is_some() && !f.nofail).collect();
        if !real.is_empty() {
            matched += 1;
            for f in real {
                hits[f.regex_index] += 1;
                if req.print_all_matched || shown[f.regex_index] < SHOWN_PER_REGEX {
                    shown[f.regex_index] += 1;
                    writeln!(
                        out,
                        "matched {}:{} #{} [{}] {}\n    {}",
                        req.file.display(),
                        line.number,
                        f.regex_index + 1,
                        timectx::fmt_time(f.time),
                        fields_text(f),
                        line.text
                    )?;
                }
            }
        } else if res.ignored {
            ignored += 1;
        } else {
            missed += 1;
            if req.print_missed && missed_lines.len() < 10_000 {
                missed_lines.push(format!("{}:{}: {}", req.file.display(), line.number, line.text));
            }
        }
    }
    let st = reader.into_stats();
    writeln!(out, "\nResults\n=======\n")?;
    writeln!(out, "Failregex: {} total", hits.iter().sum::<u64>())?;
    writeln!(out, "|-  #) [# of hits] regular expression")?;
    for (i, h) in hits.iter().enumerate() {
        let src = compiled.failregex_source(i);
        writeln!(out, "|  {:>2}) [{}] {}", i + 1, h, src.text)?;
    }
    writeln!(out, "`-\n")?;
    writeln!(out, "Date template hits: {dated} lines with a date, {undated} without\n")?;
    writeln!(out, "Lines: {} lines, {ignored} ignored, {matched} matched, {missed} missed", st.lines)?;
    if st.oversize + st.invalid_utf8 > 0 || !st.read_errors.is_empty() {
        writeln!(
            out,
            "Skipped: {} over-long lines; {} lines with invalid UTF-8 (replaced); {} read errors",
            st.oversize,
            st.invalid_utf8,
            st.read_errors.len()
        )?;
    }
    if runner.stats().budget_exhausted > 0 {
        writeln!(
            out,
            "Backtracking budget exhausted on {} searches (treated as no match)",
            runner.stats().budget_exhausted
        )?;
    }
    if req.print_missed {
        writeln!(out, "\nMissed lines\n============")?;
        for l in &missed_lines {
            writeln!(out, "{l}")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
