//! Every regex of every stock fail2ban filter (all modes), fully interpolated
//! by fail2ban's own FilterReader (tests/f2b_regex_dump.py), must compile
//! here, expand to the same text as fail2ban's `Regex`, and search fail2ban's
//! sample log lines with the same result and group values as Python's `re`.
//! The required-literal prefilter must never reject a line Python matches.
//!
//! Needs /usr/bin/python3 with the fail2ban package; otherwise prints
//! `SKIPPED: ...` (fails instead when STADTWACHE_REQUIRE_FAIL2BAN=1).

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use stadtwache_core::Spanned;
use stadtwache_match::CompileOptions;
use stadtwache_match::pattern::{Engine, Pattern, PatternKind, PatternOptions};

const PYTHON: &str = "/usr/bin/python3";

fn skip(why: &str) {
    eprintln!("\n************************************************************");
    eprintln!("SKIPPED: all_fail2ban_regexes: {why}");
    eprintln!("************************************************************\n");
    if std::env::var("STADTWACHE_REQUIRE_FAIL2BAN").as_deref() == Ok("1") {
        panic!("STADTWACHE_REQUIRE_FAIL2BAN=1 but {why}");
    }
}

fn dump() -> Option<Value> {
    if !Path::new(PYTHON).exists() {
        skip(&format!("{PYTHON} not found"));
        return None;
    }
    let ok = Command::new(PYTHON).args(["-c", "import fail2ban.client.filterreader"]).status();
    if !matches!(ok, Ok(s) if s.success()) {
        skip("the fail2ban Python package is not installed");
        return None;
    }
    if !Path::new("/etc/fail2ban/filter.d").is_dir() {
        skip("/etc/fail2ban/filter.d not found");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/f2b_regex_dump.py");
    let out = Command::new(PYTHON).arg(&script).output().expect("run f2b_regex_dump.py");
    assert!(out.status.success(), "f2b_regex_dump.py failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(serde_json::from_slice(&out.stdout).expect("helper JSON"))
}

fn kind_of(s: &str) -> PatternKind {
    match s {
        "prefregex" => PatternKind::Prefregex,
        "failregex" => PatternKind::Failregex,
        _ => PatternKind::Ignoreregex,
    }
}

/// Group values of our match, index order (None = did not participate).
fn our_groups(p: &Pattern, hay: &str) -> Result<Option<Vec<Option<String>>>, String> {
    match p.captures(hay) {
        Err(_) => Err("budget exceeded".into()),
        Ok(None) => Ok(None),
        Ok(Some(c)) => Ok(Some(c.groups.iter().map(|g| g.map(|(a, b)| hay[a..b].to_string())).collect())),
    }
}

fn py_groups(v: &Value) -> Vec<Option<String>> {
    v.as_array().map(|a| a.iter().map(|g| g.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[test]
fn all_fail2ban_regexes() {
    let Some(data) = dump() else { return };
    let entries = data.as_array().expect("list");
    let opts = CompileOptions::default();
    let (mut compiled, mut failed, mut py_failed, mut both_failed) = (0usize, 0usize, 0usize, 0usize);
    let (mut agree, mut differ) = (0usize, 0usize);
    let (mut exp_same, mut exp_diff) = (0usize, 0usize);
    let (mut nl_agree, mut nl_differ) = (0usize, 0usize);
    let (mut linear, mut backtracking, mut with_lits) = (0usize, 0usize, 0usize);
    let mut linearized = 0usize;
    let mut unsound = 0usize;
    let mut problems: Vec<String> = Vec::new();
    let note = |problems: &mut Vec<String>, s: String| {
        if problems.len() < 40 {
            problems.push(s);
        }
    };
    for e in entries {
        if !e["error"].is_null() {
            // include-only files such as *-common.conf cannot be loaded as filters
            continue;
        }
        let filter = format!("{}[{}]", e["filter"].as_str().unwrap_or("?"), e["mode"].as_str().unwrap_or("default"));
        let hays: Vec<&str> =
            e["hays"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        for r in e["regexes"].as_array().into_iter().flatten() {
            let src = r["source"].as_str().unwrap_or_default();
            let kind = kind_of(r["kind"].as_str().unwrap_or_default());
            let popts = PatternOptions { multiline: r["multiline"].as_bool().unwrap_or(false), use_dns: true };
            let ours = Pattern::compile_with(&Spanned::new(src), kind, &opts, popts);
            let py_ok = r["error"].is_null();
            let p = match (ours, py_ok) {
                (Ok(p), true) => p,
                (Err(_), false) => {
                    both_failed += 1;
                    continue;
                }
                (Ok(_), false) => {
                    py_failed += 1;
                    note(&mut problems, format!("{filter}: Python rejects, we accept: {src:?} ({})", r["error"]));
                    continue;
                }
                (Err(d), true) => {
                    failed += 1;
                    note(&mut problems, format!("{filter}: we reject {src:?}: {}", d[0]));
                    continue;
                }
            };
            compiled += 1;
            match p.engine() {
                Engine::Linear => linear += 1,
                Engine::Backtracking => backtracking += 1,
            }
            if p.linearized() {
                linearized += 1;
            }
            if r["expanded"].as_str() == Some(p.expanded()) {
                exp_same += 1;
            } else {
                exp_diff += 1;
                note(
                    &mut problems,
                    format!("{filter}: expanded differs:\n  py: {}\n  us: {}", r["expanded"], p.expanded()),
                );
            }
            let lits = p.required_literals();
            if lits.is_some() {
                with_lits += 1;
            }
            let matches = r["matches"].as_object();
            for (i, hay) in hays.iter().enumerate() {
                let py = matches.and_then(|m| m.get(&i.to_string())).map(py_groups);
                let us = match our_groups(&p, hay) {
                    Ok(g) => g,
                    Err(why) => {
                        differ += 1;
                        note(&mut problems, format!("{filter}: {why} on {hay:?} for {src:?}"));
                        continue;
                    }
                };
                if py == us {
                    agree += 1;
                } else {
                    differ += 1;
                    note(
                        &mut problems,
                        format!(
                            "{filter} {}: {hay:?}\n  regex: {}\n  ours:  {}\n  py: {py:?}\n  us: {us:?}",
                            r["kind"],
                            p.expanded(),
                            p.translated()
                        ),
                    );
                }
                // the runner may pass the line without fail2ban's final "\n"
                let stripped = hay.strip_suffix('\n').unwrap_or(hay);
                let us_nl = p.is_match(stripped).unwrap_or(false);
                if us_nl == py.is_some() {
                    nl_agree += 1;
                } else {
                    nl_differ += 1;
                    note(
                        &mut problems,
                        format!("{filter}: without final newline: ours {us_nl} on {stripped:?} for {src:?}"),
                    );
                }
                if py.is_some()
                    && let Some(l) = &lits
                    && !l.iter().any(|l| hay.contains(l.as_str()))
                {
                    unsound += 1;
                    note(&mut problems, format!("{filter}: literals {l:?} miss matching {hay:?} for {src:?}"));
                }
            }
        }
    }
    for p in &problems {
        eprintln!("{p}");
    }
    println!(
        "patterns: {compiled} compiled, {failed} failed (python also rejects: {both_failed}; python rejects, we accept: {py_failed})"
    );
    println!(
        "engines: {linear} linear ({linearized} of them by rewriting; as written: {} linear, {} backtracking), {backtracking} backtracking; {with_lits} with required literals",
        linear - linearized,
        backtracking + linearized
    );
    println!("expanded text: {exp_same} same as fail2ban, {exp_diff} differ");
    println!("search diff: {agree} agree, {differ} differ");
    println!("without final newline: {nl_agree} agree, {nl_differ} differ");
    println!("required literals: {unsound} unsound");
    assert!(compiled > 300, "too few patterns: {compiled}");
    assert_eq!(failed + py_failed, 0, "compile mismatches");
    assert_eq!(exp_diff, 0, "expanded text differs");
    assert_eq!(differ, 0, "search results differ");
    assert_eq!(unsound, 0, "required literals unsound");
    assert_eq!(nl_differ, 0, "results differ without the final newline");
}
