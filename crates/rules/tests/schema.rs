//! Schema checks of the shipped rule pack and of broken rule files; these
//! do not compile patterns (see `samples.rs` for that).

use std::collections::HashSet;
use std::path::Path;

use stadtwache_rules::{DetectSpec, KeyField, LoadOptions, RulePack, codes, load_str_with, try_load_embedded_with};

fn schema_only() -> LoadOptions {
    LoadOptions { check_patterns: false }
}

fn embedded() -> RulePack {
    match try_load_embedded_with(&schema_only()) {
        Ok(p) => p,
        Err(ds) => {
            for d in &ds {
                eprintln!("{d}");
            }
            panic!("embedded rule pack has {} problem(s)", ds.len());
        }
    }
}

#[test]
fn embedded_pack_parses() {
    let pack = embedded();
    assert!(pack.rules.len() >= 30, "only {} rules", pack.rules.len());
    for w in &pack.warnings {
        eprintln!("{w}");
    }
}

#[test]
fn every_rule_has_enough_samples_and_unique_id() {
    let pack = embedded();
    let mut ids = HashSet::new();
    let mut problems = Vec::new();
    for r in &pack.rules {
        if !ids.insert(r.id.clone()) {
            problems.push(format!("{}: duplicate id", r.id));
        }
        if !r.id.starts_with(&format!("{}-", r.service)) {
            problems.push(format!("{}: id does not start with service `{}-`", r.id, r.service));
        }
        let m: Vec<_> = r.match_samples().collect();
        let n = r.no_match_samples().count();
        if m.len() < 3 {
            problems.push(format!("{}: {} must-match samples (need ≥ 3)", r.id, m.len()));
        }
        if n < 3 {
            problems.push(format!("{}: {} must-not-match samples (need ≥ 3)", r.id, n));
        }
        for s in &m {
            let line = s.source.line;
            if !s.expect.contains_key("host") {
                problems.push(format!("{}: sample on line {line} has no expected host", r.id));
            }
            if r.key != KeyField::Host && !s.expect.contains_key(r.key.name()) {
                problems.push(format!("{}: sample on line {line} has no expected key `{}`", r.id, r.key.name()));
            }
            if let DetectSpec::Distinct { field, .. } = &r.detect
                && !s.expect.contains_key(field)
            {
                problems.push(format!("{}: sample on line {line} has no expected `{field}`", r.id));
            }
        }
        let captures_user = r.spec.failregex.iter().any(|p| p.text.contains("<F-USER>"));
        if captures_user && !m.iter().any(|s| s.expect.contains_key("user")) {
            problems.push(format!("{}: captures a user but no sample expects one", r.id));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_service_file_is_embedded() {
    let pack = embedded();
    let services: HashSet<&str> = pack.rules.iter().map(|r| r.service.as_str()).collect();
    for s in ["sshd", "http", "nginx", "apache", "postfix", "dovecot", "openvpn", "strongswan", "netfilter"] {
        assert!(services.contains(s), "no rules for {s}");
    }
}

#[test]
fn embedded_matches_files_on_disk() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    for (path, text) in stadtwache_rules::EMBEDDED {
        let name = Path::new(path).file_name().unwrap();
        let on_disk = std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(&on_disk, text, "{path}");
    }
    let n = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "toml"))
        .count();
    assert_eq!(n, stadtwache_rules::EMBEDDED.len(), "a rules/*.toml file is not embedded");
}

// ---------------------------------------------------------------------------
// Diagnostics for broken files.

const GOOD_RULE: &str = r#"
[[rule]]
id = "demo-fail"
description = "demo"
patterns = ['^fail from <HOST>$']
detect = { kind = "count", threshold = 3, window = "10m" }
"#;

fn diags(text: &str) -> Vec<stadtwache_core::Diagnostic> {
    match load_str_with(Path::new("demo.toml"), text, &schema_only()) {
        Ok(p) => panic!("expected errors, got {} rules", p.rules.len()),
        Err(d) => d,
    }
}

fn has(ds: &[stadtwache_core::Diagnostic], code: &str, line: u32) -> bool {
    ds.iter().any(|d| d.code == code && d.line == line && d.file.as_deref() == Some(Path::new("demo.toml")))
}

#[test]
fn good_rule_loads() {
    let pack = load_str_with(Path::new("demo.toml"), GOOD_RULE, &schema_only()).unwrap();
    assert_eq!(pack.rules.len(), 1);
    let r = &pack.rules[0];
    assert_eq!(r.service, "demo");
    assert_eq!(r.key, KeyField::Host);
    assert_eq!(r.detect, DetectSpec::Count { threshold: 3, window: stadtwache_core::Duration::from_secs(600) });
    assert_eq!(r.spec.failregex[0].at.line, 5);
    assert_eq!(r.spec.maxlines, 1);
}

#[test]
fn unknown_key_is_reported_with_line() {
    let text = format!("{GOOD_RULE}colour = \"red\"\n");
    let ds = diags(&text);
    assert!(has(&ds, codes::UNKNOWN_KEY, 7), "{ds:#?}");
}

#[test]
fn unknown_top_level_key() {
    let ds = diags("servcie = \"x\"\n");
    assert!(has(&ds, codes::UNKNOWN_KEY, 1), "{ds:#?}");
}

#[test]
fn bad_duration_is_reported_with_line() {
    let text = GOOD_RULE.replace("\"10m\"", "\"10 parsecs\"");
    let ds = diags(&text);
    assert!(has(&ds, codes::BAD_DURATION, 6), "{ds:#?}");
}

#[test]
fn all_problems_of_all_rules_at_once() {
    let text = format!(
        "{GOOD_RULE}\n[[rule]]\nid = \"Bad Id\"\ndescription = \"x\"\npatterns = []\ndetect = {{ kind = \"sometimes\" }}\nbantime = \"-5m\"\n\n[[rule]]\nid = \"demo-fail\"\ndescription = \"dup\"\npatterns = ['<HOST>']\ndetect = {{ kind = \"once\", threshold = 2 }}\n"
    );
    let ds = diags(&text);
    assert!(has(&ds, codes::BAD_ID, 9), "{ds:#?}");
    assert!(has(&ds, codes::NO_PATTERNS, 11), "{ds:#?}");
    assert!(has(&ds, codes::BAD_DETECT, 12), "{ds:#?}");
    assert!(has(&ds, codes::BAD_DURATION, 13), "{ds:#?}");
    assert!(has(&ds, codes::DUPLICATE_ID, 16), "{ds:#?}");
}

#[test]
fn syntax_error_has_line() {
    let text = format!("{GOOD_RULE}\n[[rule]\nid = 1\n");
    let ds = diags(&text);
    assert!(ds.iter().any(|d| d.code == codes::SYNTAX && d.line == 8), "{ds:#?}");
}

#[test]
fn missing_and_wrong_type() {
    let ds = diags("[[rule]]\nid = \"a-b\"\ndescription = \"x\"\npatterns = ['<HOST>']\n");
    assert!(ds.iter().any(|d| d.code == codes::MISSING_KEY), "{ds:#?}");
    let ds = diags(&GOOD_RULE.replace("threshold = 3", "threshold = \"three\""));
    assert!(has(&ds, codes::BAD_VALUE, 6), "{ds:#?}");
}

#[test]
fn distinct_field_must_be_captured() {
    let text = GOOD_RULE.replace(
        "{ kind = \"count\", threshold = 3, window = \"10m\" }",
        "{ kind = \"distinct\", field = \"user\", threshold = 3, window = \"10m\" }",
    );
    let ds = diags(&text);
    assert!(has(&ds, codes::FIELD_NOT_CAPTURED, 6), "{ds:#?}");
    let text = text.replace("^fail from <HOST>$", "^fail for <F-USER>\\S+</F-USER> from <HOST>$");
    load_str_with(Path::new("demo.toml"), &text, &schema_only()).unwrap();
}

#[test]
fn errors_in_several_files_are_all_reported() {
    let dir = std::env::temp_dir().join(format!("stadtwache-rules-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.toml"), "bogus = 1\n").unwrap();
    std::fs::write(dir.join("b.toml"), "[[rule]]\nid = \"b\"\n").unwrap();
    let ds = stadtwache_rules::load_dir(&dir).unwrap_err();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        ds.iter().any(|d| d.file.as_deref() == Some(&dir.join("a.toml")) && d.code == codes::UNKNOWN_KEY),
        "{ds:#?}"
    );
    assert!(
        ds.iter().any(|d| d.file.as_deref() == Some(&dir.join("b.toml")) && d.code == codes::MISSING_KEY),
        "{ds:#?}"
    );
}

#[test]
fn missing_dir_is_a_diagnostic() {
    let ds = stadtwache_rules::load_dir(Path::new("/nonexistent/stadtwache/rules")).unwrap_err();
    assert_eq!(ds[0].code, codes::IO);
}

#[test]
fn sample_expecting_an_uncaptured_field_is_reported() {
    let text = format!(
        "{GOOD_RULE}\n[rule.samples]\nmatch = [\n  {{ line = 'fail from 203.0.113.7', hots = \"203.0.113.7\" }},\n]\n"
    );
    let ds = diags(&text);
    assert!(has(&ds, codes::BAD_SAMPLE, 10), "{ds:#?}");
}

#[test]
fn broken_variants_of_the_shipped_files_never_panic() {
    // Cut every shipped file at many places and splice in junk: loading must
    // return diagnostics (or a pack), never panic.
    let junk = [
        "",
        "\"",
        "'",
        "[",
        "]]",
        "=",
        "\n[[rule]]\n",
        "{",
        "}",
        "\\",
        "ü",
        "x = 1\n",
        "detect = { kind = \"once\" }\n",
    ];
    for (path, text) in stadtwache_rules::EMBEDDED {
        let cuts: Vec<usize> = (0..text.len()).step_by(173).filter(|&i| text.is_char_boundary(i)).collect();
        for (n, &i) in cuts.iter().enumerate() {
            let j = junk[n % junk.len()];
            let end = (i + n % 7).min(text.len());
            let end = (end..=text.len()).find(|&e| text.is_char_boundary(e)).unwrap_or(text.len());
            let broken = format!("{}{}{}", &text[..i], j, &text[end..]);
            let _ = load_str_with(Path::new(path), &broken, &schema_only());
        }
    }
}

#[test]
fn samples_as_several_tables() {
    let text = format!(
        "{GOOD_RULE}\n[[rule.samples]]\nmatch = [{{ line = 'a', host = \"1.2.3.4\" }}]\n\n[[rule.samples]]\nmatch = ['b']\nno_match = ['c']\n"
    );
    let pack = load_str_with(Path::new("demo.toml"), &text, &schema_only()).unwrap();
    let lines: Vec<&str> = pack.rules[0].samples.iter().map(|s| s.line.as_str()).collect();
    assert_eq!(lines, ["a", "b", "c"]);
    assert_eq!(pack.rules[0].samples[1].source.line, 12);
    let bad = format!("{GOOD_RULE}\n[[rule.samples]]\nmacth = ['a']\n");
    let ds = diags(&bad);
    assert!(has(&ds, codes::UNKNOWN_KEY, 9), "{ds:#?}");
    let bad = format!("{GOOD_RULE}\n[rule.samples]\nmacth = ['a']\n");
    let ds = diags(&bad);
    assert!(has(&ds, codes::UNKNOWN_KEY, 9), "{ds:#?}");
}

#[test]
fn every_rule_is_in_the_documented_catalogue() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/rules.md")).unwrap();
    let mut stale = Vec::new();
    for r in embedded().rules {
        let detect = match &r.detect {
            DetectSpec::Count { threshold, window } => format!("count ≥ {threshold} in {window}"),
            DetectSpec::Distinct { field, threshold, window } => {
                format!("≥ {threshold} distinct `{field}` in {window}")
            }
            DetectSpec::Once => "once".to_string(),
        };
        let bantime = r.bantime.map(|b| b.to_string()).unwrap_or_else(|| "—".into());
        let row = format!("| `{}` | {} | {detect} | {bantime} | {} |", r.id, r.severity, r.description);
        if !doc.lines().any(|l| l == row) {
            stale.push(row);
        }
    }
    assert!(stale.is_empty(), "docs/rules.md catalogue is missing or has stale rows; expected:\n{}", stale.join("\n"));
    // And no row for a rule that is not in the pack (removed or renamed).
    let pack = embedded();
    let section = doc.split("\n## Rule catalogue\n").nth(1).expect("docs/rules.md has a `## Rule catalogue` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let unknown: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .filter(|id| pack.get(id).is_none())
        .collect();
    assert!(unknown.is_empty(), "docs/rules.md catalogue lists rules that are not in the pack: {unknown:?}");
}
