//! `stadtwache check`: load and compile every fail2ban filter and native
//! rule asked for, print every problem at once (code, file, line), exit 1 if
//! any is an error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use stadtwache_core::{Diagnostic, Severity};
use stadtwache_fail2ban::FilterLoader;
use stadtwache_match::{CompileOptions, CompiledFilter, FilterSpec};

use crate::ruleset;

pub struct CheckRequest {
    pub filter_dir: Option<PathBuf>,
    pub filters: Vec<String>,
    pub rules: Option<PathBuf>,
    pub samples: bool,
}

fn compile_into(spec: &FilterSpec, diags: &mut Vec<Diagnostic>) {
    match CompiledFilter::compile(spec, &CompileOptions::default()) {
        Ok(c) => diags.extend(c.warnings),
        Err(e) => diags.extend(e),
    }
}

pub fn run_cli(req: CheckRequest) -> Result<ExitCode> {
    let mut diags: Vec<Diagnostic> = Vec::new();
    let mut checked = 0usize;

    if let Some(dir) = &req.filter_dir {
        let loader = FilterLoader::new(dir.clone());
        for (name, problems) in loader.check_all() {
            checked += 1;
            let had_errors = problems.iter().any(Diagnostic::is_error);
            diags.extend(problems);
            if !had_errors {
                // check_all reports loading problems; compile what loaded.
                if let Ok(l) = loader.load(&name, &Default::default()) {
                    compile_into(&l.spec, &mut diags);
                }
            }
        }
    }
    let dir = req.filter_dir.clone().unwrap_or_else(|| PathBuf::from("/etc/fail2ban/filter.d"));
    for f in &req.filters {
        checked += 1;
        match ruleset::load_fail2ban(f, &dir) {
            Ok((spec, _, warnings)) => {
                diags.extend(warnings);
                compile_into(&spec, &mut diags);
            }
            Err(e) => diags.extend(e),
        }
    }
    let check_native = req.rules.is_some() || (req.filter_dir.is_none() && req.filters.is_empty());
    if check_native {
        match ruleset::native_pack(req.rules.as_deref()) {
            Ok(pack) => {
                for r in &pack.rules {
                    checked += 1;
                    compile_into(&r.spec, &mut diags);
                }
                if req.samples {
                    let (summary, failed) = crate::engine::run_samples(&pack);
                    println!("{summary}");
                    diags.extend(failed);
                }
            }
            Err(e) => diags.extend(e),
        }
    }

    for d in &diags {
        eprintln!("{d}");
    }
    let errors = diags.iter().filter(|d| d.severity == Severity::Error).count();
    let warnings = diags.len() - errors;
    println!("checked {checked} filters/rules: {errors} errors, {warnings} warnings");
    Ok(if errors > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
