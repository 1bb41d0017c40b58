//! Runs every sample of every shipped rule through the real matcher
//! (`CompiledFilter::compile` + `FilterRunner::process_line`): must-match
//! lines must yield a failure with the expected captures, must-not-match
//! lines must yield none.

use std::sync::Arc;

use stadtwache_core::Timestamp;
use stadtwache_datetime::{TimeContext, TimeZone};
use stadtwache_match::pattern::{Engine, Pattern, PatternKind};
use stadtwache_match::{
    CompileOptions, CompiledFilter, DateStatus, Failure, FieldValue, FilterRunner, RunOptions,
};
use stadtwache_rules::{NativeRule, Sample, SampleKind, load_embedded};

/// 2026-06-01T12:00:00Z: sample lines without a year get completed from it.
fn ctx() -> TimeContext {
    TimeContext {
        now: Timestamp::from_secs(1_780_315_200),
        tz: TimeZone::UTC,
    }
}

fn field_str(f: &FieldValue) -> String {
    match f {
        FieldValue::One(s) => s.clone(),
        FieldValue::Many(v) => v.join(","),
    }
}

fn field_matches(f: &Failure, name: &str, want: &str) -> bool {
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
            || ["ip4", "ip6", "dns"]
                .iter()
                .any(|k| f.fields.get(*k).is_some_and(|v| field_str(v) == want));
    }
    false
}

fn describe(f: &Failure) -> String {
    let fields: Vec<String> = f
        .fields
        .iter()
        .map(|(k, v)| format!("{k}={:?}", field_str(v)))
        .collect();
    format!("fid={:?} ip={:?} {}", f.fid, f.ip, fields.join(" "))
}

/// Run one sample with a fresh runner; Err(reason) when it fails.
fn check(rule: &NativeRule, filter: &Arc<CompiledFilter>, s: &Sample) -> Result<(), String> {
    let mut runner = FilterRunner::new(Arc::clone(filter), RunOptions::default());
    let mut failures = Vec::new();
    for line in s.line.split('\n') {
        let r = runner.process_line(line, &ctx());
        if r.date != DateStatus::Found {
            return Err(format!(
                "{} line {}: no date found (samples carry their real date format)\n      {line}",
                rule.id, s.source.line
            ));
        }
        failures.extend(
            r.failures
                .into_iter()
                .filter(|f| !f.nofail && f.fid.is_some()),
        );
    }
    match s.kind {
        SampleKind::NoMatch if failures.is_empty() => Ok(()),
        SampleKind::NoMatch => Err(format!("matched but must not: {}", describe(&failures[0]))),
        SampleKind::Match if failures.is_empty() => Err("no failure".to_string()),
        SampleKind::Match => {
            let ok = failures
                .iter()
                .any(|f| s.expect.iter().all(|(k, v)| field_matches(f, k, v)));
            if ok {
                Ok(())
            } else {
                let want: Vec<String> =
                    s.expect.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                let got: Vec<String> = failures.iter().map(describe).collect();
                Err(format!(
                    "captures differ: want {} got {}",
                    want.join(" "),
                    got.join(" | ")
                ))
            }
        }
    }
    .map_err(|e| {
        format!(
            "{} {}:{} [{:?}] {e}\n      {}",
            rule.id,
            rule.source
                .file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            s.source.line,
            s.kind,
            s.line
        )
    })
}

#[test]
fn all_rule_samples() {
    let pack = load_embedded();
    let (mut passed, mut failed) = (0usize, Vec::new());
    for rule in &pack.rules {
        let filter = match CompiledFilter::compile(&rule.spec, &CompileOptions::default()) {
            Ok(c) => Arc::new(c.filter),
            Err(ds) => {
                for d in ds {
                    failed.push(format!("{} does not compile: {d}", rule.id));
                }
                continue;
            }
        };
        for s in &rule.samples {
            match check(rule, &filter, s) {
                Ok(()) => passed += 1,
                Err(e) => failed.push(e),
            }
        }
    }
    println!("rule samples: {passed} passed, {} failed", failed.len());
    for f in &failed {
        println!("  FAIL {f}");
    }
    assert!(
        failed.is_empty(),
        "rule samples: {passed} passed, {} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn embedded_pack_compiles_with_patterns() {
    let pack = stadtwache_rules::try_load_embedded().unwrap_or_else(|ds| {
        panic!(
            "{}",
            ds.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert!(!pack.rules.is_empty());
}

#[test]
fn bad_regex_is_reported_with_file_and_line() {
    let text = r#"
[[rule]]
id = "demo-bad"
description = "unbalanced group"
patterns = ['^fail (from <HOST>$']
detect = { kind = "once" }
"#;
    let ds = stadtwache_rules::load_str(std::path::Path::new("demo.toml"), text).unwrap_err();
    assert!(
        ds.iter().any(|d| d.is_error()
            && d.line == 5
            && d.file.as_deref() == Some(std::path::Path::new("demo.toml"))),
        "{ds:#?}"
    );
}

#[test]
fn harness_catches_wrong_expectations() {
    let text = r#"
[[rule]]
id = "demo-fail"
description = "demo"
patterns = ['^\s*\S+ demo\[\d+\]: login failed for <F-USER>\S+</F-USER> from <HOST>$']
detect = { kind = "count", threshold = 3, window = "10m" }

[rule.samples]
match = [
  { line = 'Mar 14 09:12:44 h1 demo[7]: login failed for root from 203.0.113.7', host = "203.0.113.7", user = "root" },
  { line = 'Mar 14 09:12:44 h1 demo[7]: login failed for root from 203.0.113.7', host = "203.0.113.8" },
  { line = 'Mar 14 09:12:44 h1 demo[7]: login failed for root from 203.0.113.7', user = "admin" },
  { line = 'Mar 14 09:12:44 h1 demo[7]: login ok for root from 203.0.113.7' },
]
no_match = [
  'Mar 14 09:12:44 h1 demo[7]: login ok for root from 203.0.113.7',
  'Mar 14 09:12:44 h1 demo[7]: login failed for root from 203.0.113.7',
]
"#;
    let pack = stadtwache_rules::load_str(std::path::Path::new("demo.toml"), text).unwrap();
    let rule = &pack.rules[0];
    let filter = Arc::new(
        CompiledFilter::compile(&rule.spec, &CompileOptions::default())
            .unwrap()
            .filter,
    );
    let results: Vec<bool> = rule
        .samples
        .iter()
        .map(|s| check(rule, &filter, s).is_ok())
        .collect();
    assert_eq!(results, [true, false, false, false, true, false]);
}

/// The shipped rules never need the backtracking engine (no step budget,
/// linear time on any input).
#[test]
fn shipped_patterns_run_on_the_linear_engine() {
    let pack = load_embedded();
    assert!(pack.warnings.is_empty(), "{:?}", pack.warnings);
    let mut slow = Vec::new();
    for r in &pack.rules {
        let kinds = r
            .spec
            .failregex
            .iter()
            .map(|p| (p, PatternKind::Failregex))
            .chain(
                r.spec
                    .ignoreregex
                    .iter()
                    .map(|p| (p, PatternKind::Ignoreregex)),
            )
            .chain(r.spec.prefregex.iter().map(|p| (p, PatternKind::Prefregex)));
        for (p, kind) in kinds {
            let c = Pattern::compile(p, kind, &CompileOptions::default()).expect("compiles");
            if c.engine() != Engine::Linear {
                slow.push(format!("{} line {}: {}", r.id, p.at.line, p.text));
            }
        }
    }
    assert!(
        slow.is_empty(),
        "patterns on the backtracking engine:\n{}",
        slow.join("\n")
    );
}
