//! Conditionals and `(?:(?!LIT).)*` idioms of fail2ban's sshd filter run on
//! the linear engine after `linearize` (match results: all_fail2ban_regexes).

use stadtwache_core::Spanned;
use stadtwache_match::CompileOptions;
use stadtwache_match::pattern::{Engine, Pattern, PatternKind, PatternOptions};

const FAILED: &str = r"^Failed (?:<F-NOFAIL>publickey</F-NOFAIL>|\S+) for (?P<cond_inv>invalid user )?<F-USER>(?P<cond_user>\S+)|(?(cond_inv)(?:(?! from ).)*?|[^:]+)</F-USER> from <HOST>(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?(?(cond_user): |(?:(?:(?! from ).)*)$)";
const FAILED_PUB: &str = r"^Failed publickey for invalid user <F-USER>(?P<cond_user>\S+)|(?:(?! from ).)*?</F-USER> from <HOST>(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?(?(cond_user): |(?:(?:(?! from ).)*)$)";

fn compile(src: &str) -> Pattern {
    let popts = PatternOptions { multiline: false, use_dns: true };
    Pattern::compile_with(&Spanned::new(src), PatternKind::Failregex, &CompileOptions::default(), popts)
        .expect("compiles")
}

fn groups(p: &Pattern, hay: &str) -> Option<Vec<(String, String)>> {
    let c = p.captures(hay).expect("no budget")?;
    let mut out = Vec::new();
    for (i, n) in p.group_names().iter().enumerate() {
        if let (Some(n), Some((a, b))) = (n, c.groups[i]) {
            out.push((n.clone(), hay[a..b].to_string()));
        }
    }
    Some(out)
}

fn get<'a>(g: &'a [(String, String)], k: &str) -> Option<&'a str> {
    g.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn sshd_failed_is_linear() {
    for src in [FAILED, FAILED_PUB] {
        let p = compile(src);
        eprintln!("{}", p.translated());
        assert_eq!(p.engine(), Engine::Linear, "{src}");
    }
    let p = compile(FAILED);
    let g = groups(&p, "Failed password for invalid user admin from 1.2.3.4 port 22 ssh2").expect("match");
    assert_eq!(get(&g, "user"), Some("admin"));
    assert_eq!(get(&g, "ip4"), Some("1.2.3.4"));
    assert_eq!(get(&g, "cond_inv"), Some("invalid user "));
    let g = groups(&p, "Failed password for root from 1.2.3.4 port 22 ssh2: RSA x").expect("match");
    assert_eq!(get(&g, "user"), Some("root"));
    assert_eq!(get(&g, "cond_inv"), None);
    // user with a space: the conditional branches
    let g = groups(&p, "Failed password for invalid user a b from 1.2.3.4 port 22 ssh2").expect("match");
    assert_eq!(get(&g, "user"), Some("a b"));
    assert_eq!(get(&g, "cond_user"), None);
    let g = groups(&p, "Failed password for invalid user from from 1.2.3.4 port 22 ssh2");
    eprintln!("{g:?}");
}

// ---------------------------------------------------------------------------
// Random differential test of the rewrites against Python's `re`.

const PYTHON: &str = "/usr/bin/python3";

fn oracle(req: &serde_json::Value) -> Option<serde_json::Value> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    if !std::path::Path::new(PYTHON).exists() {
        eprintln!("\nSKIPPED: linearized_patterns: {PYTHON} not found\n");
        if std::env::var("STADTWACHE_REQUIRE_FAIL2BAN").as_deref() == Ok("1") {
            panic!("STADTWACHE_REQUIRE_FAIL2BAN=1 but {PYTHON} is missing");
        }
        return None;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py_re_oracle.py");
    let mut child = Command::new(PYTHON)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run py_re_oracle.py");
    let body = serde_json::to_vec(req).expect("json");
    child.stdin.take().expect("stdin").write_all(&body).expect("write");
    let out = child.wait_with_output().expect("oracle output");
    assert!(out.status.success(), "oracle failed");
    Some(serde_json::from_slice(&out.stdout).expect("oracle JSON"))
}

#[test]
fn rewrites_match_python() {
    let pieces = [
        "(a)?",
        "(ab)??",
        "(?:(b)|a)",
        "(x|(y))",
        "(?(1)a|b)",
        "(?(2)x)",
        "(?(1) |:)",
        "(?(2)(?:(?!ab).)*?|[^:]+)",
        "(?(1)(?:(?! a).)*?| )",
        "(?:(?!ab).)*",
        "(?:(?!ab).)*?",
        "(?:(?!aba).)*?",
        "(?:(?!a a).)*",
        "(?:(?!aab).)*?",
        "((?:(?!ab).)*?)",
        "ab",
        "aba",
        "a a",
        "aab",
        "$",
        "\\S+",
        "[^:]+",
        "b",
        " ",
        "(\\S+)|x",
        "(?:(?!ab).)*$",
    ];
    let mut seed: u64 = 0x005E_ED0F_C0DE_5A17;
    let mut rnd = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let alphabet = ['a', 'b', ' ', 'x', 'y', ':', '\n', 'a', 'b'];
    let mut hays: Vec<String> = vec![String::new()];
    for _ in 0..40 {
        let n = rnd(14);
        hays.push((0..n).map(|_| alphabet[rnd(alphabet.len())]).collect());
    }
    let mut cases = Vec::new();
    for _ in 0..3000 {
        let n = 2 + rnd(5);
        let p: String = (0..n).map(|_| pieces[rnd(pieces.len())]).collect();
        cases.push(serde_json::json!({"pattern": p, "multiline": rnd(2) == 0, "hays": hays}));
    }
    let Some(resp) = oracle(&serde_json::json!({ "cases": cases })) else {
        return;
    };
    let results = resp["cases"].as_array().expect("cases");
    let (mut agree, mut differ, mut lin, mut compiled) = (0, 0, 0, 0);
    let mut report = Vec::new();
    for (case, res) in cases.iter().zip(results) {
        let pat = case["pattern"].as_str().unwrap_or_default();
        let ml = case["multiline"].as_bool().unwrap_or(false);
        let ours = Pattern::compile_with(
            &Spanned::new(pat),
            PatternKind::Ignoreregex,
            &CompileOptions::default(),
            PatternOptions { multiline: ml, use_dns: true },
        );
        let p = match (ours, res["error"].is_null()) {
            (Ok(p), true) => p,
            (Err(_), false) => continue,
            (o, _) => {
                differ += 1;
                report.push(format!("{pat:?}: acceptance differs ({})", o.is_ok()));
                continue;
            }
        };
        compiled += 1;
        if p.linearized() {
            lin += 1;
        }
        for (hay, py) in hays.iter().zip(res["results"].as_array().into_iter().flatten()) {
            let py: Option<Vec<Option<String>>> =
                py.as_array().map(|a| a.iter().map(|g| g.as_str().map(str::to_string)).collect());
            let us = p
                .captures(hay)
                .expect("budget")
                .map(|c| c.groups.iter().map(|g| g.map(|(a, b)| hay[a..b].to_string())).collect::<Vec<_>>());
            let nl = p.is_match(hay).expect("budget");
            if us == py && nl == py.is_some() {
                agree += 1;
            } else {
                differ += 1;
                report.push(format!(
                    "{pat:?} (m={ml}, linearized {}) -> {:?} on {hay:?}: python {py:?}, ours {us:?}",
                    p.linearized(),
                    p.translated()
                ));
            }
        }
    }
    for r in report.iter().take(30) {
        eprintln!("{r}");
    }
    println!("rewrites vs python: {agree} agree, {differ} differ; {compiled} patterns, {lin} linearized");
    assert!(lin > 150, "too few linearized patterns: {lin}");
    assert_eq!(differ, 0);
}

/// `STADTWACHE_SSHD_LOG=/tmp/auth1m.log`: the sshd "Failed …" patterns on the
/// distinct contents of a (generated) sshd log, against Python.
#[test]
fn sshd_log_lines_match_python() {
    let Ok(path) = std::env::var("STADTWACHE_SSHD_LOG") else {
        return;
    };
    let text = std::fs::read_to_string(path).expect("log");
    let mut hays: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once("]: ").map(|(_, c)| c.to_string()))
        .filter(|c| c.starts_with("Failed "))
        .collect();
    hays.sort();
    hays.dedup();
    let step = hays.len() / 40000 + 1;
    let hays: Vec<String> = hays.into_iter().step_by(step).collect();
    let cases: Vec<_> = [FAILED, FAILED_PUB]
        .iter()
        .map(|p| {
            let p = compile(p);
            serde_json::json!({"pattern": p.expanded(), "multiline": false, "hays": hays})
        })
        .collect();
    let Some(resp) = oracle(&serde_json::json!({ "cases": cases })) else {
        return;
    };
    let (mut agree, mut differ, mut matched) = (0, 0, 0);
    for (src, res) in [FAILED, FAILED_PUB].iter().zip(resp["cases"].as_array().expect("cases")) {
        let p = compile(src);
        for (hay, py) in hays.iter().zip(res["results"].as_array().into_iter().flatten()) {
            let py: Option<Vec<Option<String>>> =
                py.as_array().map(|a| a.iter().map(|g| g.as_str().map(str::to_string)).collect());
            let us = p
                .captures(hay)
                .expect("budget")
                .map(|c| c.groups.iter().map(|g| g.map(|(a, b)| hay[a..b].to_string())).collect::<Vec<_>>());
            matched += usize::from(py.is_some());
            if us == py {
                agree += 1;
            } else {
                differ += 1;
                if differ < 10 {
                    eprintln!("{hay:?}: python {py:?}, ours {us:?}");
                }
            }
        }
    }
    println!("sshd log lines vs python: {agree} agree ({matched} matches), {differ} differ");
    assert_eq!(differ, 0);
}
