//! Assemble what a run executes: compiled filters (fail2ban `filter.d` or the
//! native pack), each with the key it counts per and its window, in one
//! immutable list. A reload would build a new `RuleSet` and swap it whole.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use stadtwache_core::{Diagnostic, Duration};
use stadtwache_fail2ban::{FilterLoader, parse_filter_arg};
use stadtwache_match::{CompileOptions, CompiledFilter, FilterSpec};
use stadtwache_rules::{DetectSpec, KeyField, RulePack};

use crate::{PolicyArgs, RuleArgs};

/// What a rule counts per.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySel {
    /// The failure's address (fail2ban's host).
    Host,
    /// Any captured field (`user`, …).
    Field(String),
}

/// The window a rule's events go through.
#[derive(Clone, Debug, PartialEq)]
pub enum Window {
    /// fail2ban's own counting (maxretry/findtime with its FailManager aging).
    Fail2ban { maxretry: u32, findtime: Duration },
    /// Exact sliding window.
    Count { threshold: u32, window: Duration },
    /// Distinct values of a field per key in the window.
    Distinct { field: String, threshold: u32, window: Duration },
    /// Every hit triggers.
    Once,
}

#[derive(Clone, Debug)]
pub enum Origin {
    Fail2ban { files: Vec<std::path::PathBuf> },
    Native { file: Option<std::path::PathBuf>, line: u32 },
}

#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub filter: Arc<CompiledFilter>,
    pub key: KeySel,
    pub window: Window,
    pub bantime: Option<Duration>,
    pub origin: Origin,
}

impl Rule {
    /// Where the rule was written, for explanations.
    pub fn origin_text(&self) -> String {
        match &self.origin {
            Origin::Fail2ban { files } => {
                let f: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                format!("fail2ban filter {}", f.join(" + "))
            }
            Origin::Native { file: Some(f), line } => format!("native rule {}:{line}", f.display()),
            Origin::Native { file: None, .. } => "native rule (embedded)".to_string(),
        }
    }
}

#[derive(Debug)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub warnings: Vec<Diagnostic>,
}

fn compile(spec: &FilterSpec, diags: &mut Vec<Diagnostic>) -> Option<Arc<CompiledFilter>> {
    match CompiledFilter::compile(spec, &CompileOptions::default()) {
        Ok(c) => {
            diags.extend(c.warnings);
            Some(Arc::new(c.filter))
        }
        Err(errs) => {
            diags.extend(errs);
            None
        }
    }
}

/// Load one fail2ban filter argument (`name[opts]` or a path).
pub fn load_fail2ban(
    arg: &str,
    dir: &Path,
) -> Result<(FilterSpec, Vec<std::path::PathBuf>, Vec<Diagnostic>), Vec<Diagnostic>> {
    let (name, opts): (String, BTreeMap<String, String>) = parse_filter_arg(arg).map_err(|d| vec![d])?;
    let loader = FilterLoader::new(dir.to_path_buf());
    let loaded = loader.load(&name, &opts)?;
    let mut spec = loaded.spec;
    spec.name = arg.to_string();
    Ok((spec, loaded.files, loaded.warnings))
}

pub fn native_pack(rules_dir: Option<&Path>) -> Result<RulePack, Vec<Diagnostic>> {
    match rules_dir {
        Some(dir) => stadtwache_rules::load_dir(dir),
        None => Ok(stadtwache_rules::load_embedded()),
    }
}

/// Build the rule set; every problem in every source is returned at once.
pub fn build(args: &RuleArgs, policy: &PolicyArgs) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut rules = Vec::new();
    let findtime =
        Duration::parse(&policy.findtime).map_err(|e| vec![Diagnostic::error("C003", format!("--findtime: {e}"))])?;
    if args.filters.is_empty() {
        let pack = native_pack(args.rules.as_deref())?;
        for r in pack.rules {
            let selected = if !args.only.is_empty() {
                args.only.iter().any(|o| o == &r.id)
            } else {
                r.enabled && (args.service.is_empty() || args.service.iter().any(|s| s == &r.service))
            };
            if !selected {
                continue;
            }
            let Some(filter) = compile(&r.spec, &mut diags) else {
                continue;
            };
            let key = match &r.key {
                KeyField::Host => KeySel::Host,
                other => KeySel::Field(other.name().to_string()),
            };
            let window = match &r.detect {
                DetectSpec::Count { threshold, window } => Window::Count { threshold: *threshold, window: *window },
                DetectSpec::Distinct { field, threshold, window } => {
                    Window::Distinct { field: field.clone(), threshold: *threshold, window: *window }
                }
                DetectSpec::Once => Window::Once,
            };
            rules.push(Rule {
                name: r.id.clone(),
                filter,
                key,
                window,
                bantime: r.bantime,
                origin: Origin::Native { file: r.source.file.clone(), line: r.source.line },
            });
        }
        if rules.is_empty() && diags.iter().all(|d| !d.is_error()) {
            diags.push(Diagnostic::error(
                "R100",
                format!("--only {:?} / --service {:?} select no native rule", args.only, args.service),
            ));
        }
    } else {
        for arg in &args.filters {
            match load_fail2ban(arg, &args.filter_dir) {
                Ok((spec, files, warnings)) => {
                    diags.extend(warnings);
                    if let Some(filter) = compile(&spec, &mut diags) {
                        rules.push(Rule {
                            name: arg.clone(),
                            filter,
                            key: KeySel::Host,
                            window: Window::Fail2ban { maxretry: policy.maxretry, findtime },
                            bantime: None,
                            origin: Origin::Fail2ban { files },
                        });
                    }
                }
                Err(errs) => diags.extend(errs),
            }
        }
    }
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    Ok(RuleSet { rules, warnings: diags })
}
