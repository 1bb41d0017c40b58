//! Runs every sample of every shipped rule through the real matcher
//! (`CompiledFilter::compile` + `FilterRunner::process_line`, real date
//! detection): must-match lines must yield a failure with the expected
//! captures, must-not-match lines must yield none.

use std::sync::Arc;

use stadtwache_match::pattern::{Engine, Pattern, PatternKind};
use stadtwache_match::{CompileOptions, CompiledFilter};
use stadtwache_rules::load_embedded;
use stadtwache_rules::samples::{check_pack, check_sample, codes, sample_context};

#[test]
fn all_rule_samples() {
    let pack = load_embedded();
    let report = check_pack(&pack, &sample_context());
    println!("{}", report.summary());
    for f in &report.failed {
        println!("  FAIL {f}");
    }
    let text: Vec<String> = report.failed.iter().map(|d| d.to_string()).collect();
    assert!(report.failed.is_empty(), "{}:\n{}", report.summary(), text.join("\n"));
    assert!(report.passed >= 6 * pack.rules.len());
}

#[test]
fn embedded_pack_compiles_with_patterns() {
    let pack = stadtwache_rules::try_load_embedded()
        .unwrap_or_else(|ds| panic!("{}", ds.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
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
        ds.iter().any(|d| d.is_error() && d.line == 5 && d.file.as_deref() == Some(std::path::Path::new("demo.toml"))),
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
  { line = 'h1 demo[7]: login failed for root from 203.0.113.7' },
]
no_match = [
  'Mar 14 09:12:44 h1 demo[7]: login ok for root from 203.0.113.7',
  'Mar 14 09:12:44 h1 demo[7]: login failed for root from 203.0.113.7',
]
"#;
    let pack = stadtwache_rules::load_str(std::path::Path::new("demo.toml"), text).unwrap();
    let rule = &pack.rules[0];
    let filter = Arc::new(CompiledFilter::compile(&rule.spec, &CompileOptions::default()).unwrap().filter);
    let results: Vec<Option<&str>> =
        rule.samples.iter().map(|s| check_sample(rule, &filter, s, &sample_context()).err().map(|d| d.code)).collect();
    assert_eq!(
        results,
        [
            None,
            Some(codes::MATCH_FAILED),
            Some(codes::MATCH_FAILED),
            Some(codes::MATCH_FAILED),
            Some(codes::NO_DATE),
            None,
            Some(codes::NO_MATCH_MATCHED)
        ]
    );
    let d = check_sample(rule, &filter, &rule.samples[1], &sample_context()).unwrap_err();
    assert_eq!(d.file.as_deref(), Some(std::path::Path::new("demo.toml")));
    assert_eq!(d.line, 11);
}

/// The shipped rules never need the backtracking engine (no step budget,
/// linear time on any input).
#[test]
fn shipped_patterns_run_on_the_linear_engine() {
    let pack = stadtwache_rules::try_load_embedded().expect("embedded pack compiles");
    assert!(pack.warnings.is_empty(), "{:?}", pack.warnings);
    assert!(pack.rules.iter().all(|r| r.compiled.is_some()));
    assert!(load_embedded().rules.iter().all(|r| r.compiled.is_none()));
    let mut slow = Vec::new();
    for r in &pack.rules {
        let kinds = r
            .spec
            .failregex
            .iter()
            .map(|p| (p, PatternKind::Failregex))
            .chain(r.spec.ignoreregex.iter().map(|p| (p, PatternKind::Ignoreregex)))
            .chain(r.spec.prefregex.iter().map(|p| (p, PatternKind::Prefregex)));
        for (p, kind) in kinds {
            let c = Pattern::compile(p, kind, &CompileOptions::default()).expect("compiles");
            if c.engine() != Engine::Linear {
                slow.push(format!("{} line {}: {}", r.id, p.at.line, p.text));
            }
        }
    }
    assert!(slow.is_empty(), "patterns on the backtracking engine:\n{}", slow.join("\n"));
}
