//! Rough single-core throughput of the pattern layer on fail2ban's `sshd`
//! filter and its sample log (prefregex captures, then each failregex behind
//! its required-literal prefilter). Ignored by default; run with
//! `cargo test --release -p stadtwache-match --test pattern_throughput -- --ignored --nocapture`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use aho_corasick::AhoCorasick;
use serde_json::Value;
use stadtwache_core::Spanned;
use stadtwache_match::CompileOptions;
use stadtwache_match::pattern::{Pattern, PatternKind, PatternOptions};

#[test]
#[ignore]
fn sshd_throughput() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/f2b_regex_dump.py");
    let Ok(out) = Command::new("/usr/bin/python3").arg(script).output() else {
        eprintln!("SKIPPED: no python");
        return;
    };
    let data: Value = serde_json::from_slice(&out.stdout).expect("json");
    let sshd =
        data.as_array().expect("list").iter().find(|e| e["filter"] == "sshd" && e["mode"].is_null()).expect("sshd");
    let opts = CompileOptions::default();
    let t_compile = Instant::now();
    let mut pref = None;
    let mut fails = Vec::new();
    for r in sshd["regexes"].as_array().expect("regexes") {
        let src = r["source"].as_str().expect("src");
        let kind = match r["kind"].as_str() {
            Some("prefregex") => PatternKind::Prefregex,
            Some("failregex") => PatternKind::Failregex,
            _ => continue,
        };
        let popts = PatternOptions { multiline: false, use_dns: true };
        let p = Pattern::compile_with(&Spanned::new(src), kind, &opts, popts).expect("compile");
        if kind == PatternKind::Prefregex {
            pref = Some(p);
        } else {
            let ac = p.required_literals().map(|l| AhoCorasick::new(l).expect("ac"));
            fails.push((p, ac));
        }
    }
    println!("sshd: compiled {} patterns in {:?}", fails.len() + 1, t_compile.elapsed());
    let pref = pref.expect("prefregex");
    let content = pref.group_index("content").expect("content");
    // the date-cut sample lines, without fail2ban's final newline
    let lines: Vec<String> = sshd["hays"]
        .as_array()
        .expect("hays")
        .iter()
        .filter_map(Value::as_str)
        .map(|h| h.trim_end_matches('\n').to_string())
        .filter(|h| !h.contains('\n'))
        .collect();
    let n = 1_000_000usize;
    let mut scratch = pref.new_scratch();
    let mut fscratch: Vec<_> = fails.iter().map(|(p, _)| p.new_scratch()).collect();
    let (mut pre_hits, mut fail_hits, mut budget) = (0u64, 0u64, 0u64);
    let t = Instant::now();
    for i in 0..n {
        let line = &lines[i % lines.len()];
        if !pref.captures_with(line, &mut scratch).unwrap_or(false) {
            continue;
        }
        pre_hits += 1;
        let Some((a, b)) = scratch.get(content) else {
            continue;
        };
        let c = &line[a..b];
        for ((p, ac), s) in fails.iter().zip(fscratch.iter_mut()) {
            if let Some(ac) = ac
                && !ac.is_match(c)
            {
                continue;
            }
            match p.captures_with(c, s) {
                Ok(true) => {
                    fail_hits += 1;
                    break;
                }
                Ok(false) => {}
                Err(_) => budget += 1,
            }
        }
    }
    let dt = t.elapsed();
    println!(
        "sshd: {n} lines in {dt:?} = {:.0} lines/s (prefregex hits {pre_hits}, failregex hits {fail_hits}, budget {budget}; {} sample lines, {} failregexes)",
        n as f64 / dt.as_secs_f64(),
        lines.len(),
        fails.len()
    );
    // per failregex: cost over all contents (prefilter + captures)
    let contents: Vec<String> = lines
        .iter()
        .filter_map(|l| {
            let mut sc = pref.new_scratch();
            pref.captures_with(l, &mut sc).ok()?.then(|| sc.get(content).map(|(a, b)| l[a..b].to_string()))?
        })
        .collect();
    let mut costs = Vec::new();
    for (i, ((p, ac), s)) in fails.iter().zip(fscratch.iter_mut()).enumerate() {
        let reps = 2000;
        let t = Instant::now();
        let mut hits = 0;
        for _ in 0..reps {
            for c in &contents {
                if let Some(ac) = ac
                    && !ac.is_match(c.as_str())
                {
                    continue;
                }
                if p.captures_with(c, s).unwrap_or(false) {
                    hits += 1;
                }
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / (reps * contents.len()) as f64;
        costs.push((ns, i, p.engine(), hits / reps));
    }
    costs.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (ns, i, e, hits) in costs.iter().take(8) {
        println!("  failregex {i}: {ns:.0} ns/line ({e:?}, {hits} hits/{} lines)", contents.len());
    }
    // pieces
    let t = Instant::now();
    for i in 0..n {
        let _ = pref.captures_with(&lines[i % lines.len()], &mut scratch);
    }
    println!("  prefregex captures only: {:.0} lines/s", n as f64 / t.elapsed().as_secs_f64());
    let t = Instant::now();
    for i in 0..n {
        let _ = pref.is_match(&lines[i % lines.len()]);
    }
    println!("  prefregex is_match only: {:.0} lines/s", n as f64 / t.elapsed().as_secs_f64());
}
