//! Load every filter of /etc/fail2ban/filter.d in every variant it declares,
//! and compare what we make of it with what fail2ban's own FilterReader
//! makes of it (via tests/f2b_reference.py run with /usr/bin/python3).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use stadtwache_fail2ban::{FilterLoader, format_filter_arg};

const FILTER_DIR: &str = "/etc/fail2ban/filter.d";
const PYTHON: &str = "/usr/bin/python3";

/// Print past libtest's output capture (summary lines must show in CI logs).
fn out(s: &str) {
    let _ = writeln!(std::io::stdout(), "{s}");
}

fn skip(why: &str) {
    let bang = "!".repeat(70);
    let _ = writeln!(std::io::stderr(), "\n{bang}\nSKIPPED: filters_vs_fail2ban: {why}\n{bang}\n");
    if std::env::var("STADTWACHE_REQUIRE_FAIL2BAN").as_deref() == Ok("1") {
        panic!("STADTWACHE_REQUIRE_FAIL2BAN=1 but {why}");
    }
}

fn fail2ban_available() -> Result<(), String> {
    if !Path::new(FILTER_DIR).is_dir() {
        return Err(format!("{FILTER_DIR} does not exist (apt-get install fail2ban)"));
    }
    let ok = Command::new(PYTHON)
        .args(["-c", "import fail2ban.client.filterreader"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        return Err(format!("{PYTHON} cannot import fail2ban (apt-get install fail2ban)"));
    }
    Ok(())
}

/// Run the reference script on the given (name, options) list.
fn reference(filters: &[(String, BTreeMap<String, String>)]) -> Vec<Value> {
    reference_in(Path::new(FILTER_DIR).parent().unwrap(), filters)
}

/// Run the reference script with `basedir` (the directory holding `filter.d/`).
fn reference_in(basedir: &Path, filters: &[(String, BTreeMap<String, String>)]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/f2b_reference.py");
    let basedir = basedir.to_str().unwrap().to_string();
    let req = json!({
        "basedir": basedir,
        "filters": filters.iter().map(|(n, o)| json!({"name": n, "opts": o})).collect::<Vec<_>>(),
    });
    let mut child =
        Command::new(PYTHON).arg(&script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("run python");
    child.stdin.take().unwrap().write_all(req.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "reference script failed");
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("reference JSON")
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(|x| x.as_str().unwrap_or_default().to_string()).collect()).unwrap_or_default()
}

/// Split a journalmatch line into words as Python's `shlex.split` does for
/// the simple quoting journal matches use.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => cur.extend(chars.next()),
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                cur.extend(chars.next());
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Compare our load of `name[opts]` with fail2ban's (`r`). Returns whether
/// we loaded it, and the differences (both failing to load is no difference).
fn compare(
    loader: &FilterLoader,
    name: &str,
    opts: &BTreeMap<String, String>,
    r: &Value,
    need_positions: bool,
) -> (bool, Vec<String>) {
    let display = format_filter_arg(name, opts);
    let mut problems = Vec::new();
    let f = match loader.load(name, opts) {
        Err(diags) => {
            if r["error"].is_null() {
                for d in diags {
                    problems.push(format!("load: {d}"));
                }
            }
            return (false, problems);
        }
        Ok(f) => f,
    };
    if let Some(e) = r["error"].as_str() {
        problems.push(format!("fail2ban fails ({e}) but we load"));
    }
    for w in &f.warnings {
        println!("  {display}: {w}");
    }
    let texts = |v: &[stadtwache_core::Spanned]| v.iter().map(|s| s.text.clone()).collect::<Vec<_>>();
    let ours_pref = f.spec.prefregex.as_ref().map(|s| s.text.clone());
    let theirs_pref = r["prefregex"].as_str().map(str::to_string);
    if ours_pref != theirs_pref {
        problems.push(format!("prefregex: ours {ours_pref:?}\n      fail2ban {theirs_pref:?}"));
    }
    for (what, ours, theirs) in [
        ("failregex", texts(&f.spec.failregex), strs(&r["failregex"])),
        ("ignoreregex", texts(&f.spec.ignoreregex), strs(&r["ignoreregex"])),
    ] {
        if ours != theirs {
            problems.push(format!("{what}: ours {ours:#?}\n      fail2ban {theirs:#?}"));
        }
    }
    let ours_dp = f.spec.datepattern.as_ref().map(|s| s.text.clone());
    let theirs_dp = r["datepattern"].as_str().map(str::to_string);
    if ours_dp != theirs_dp {
        problems.push(format!("datepattern: ours {ours_dp:?}, fail2ban {theirs_dp:?}"));
    }
    let theirs_ml = r["maxlines"].as_u64().unwrap_or(1) as usize;
    if f.spec.maxlines != theirs_ml {
        problems.push(format!("maxlines: ours {}, fail2ban {theirs_ml}", f.spec.maxlines));
    }
    let ours_jm: Vec<Vec<String>> =
        f.journalmatch.as_deref().unwrap_or("").lines().map(tokens).filter(|t| !t.is_empty()).collect();
    let theirs_jm: Vec<Vec<String>> =
        r["journalmatch"].as_array().map(|a| a.iter().map(strs).collect()).unwrap_or_default();
    if ours_jm != theirs_jm {
        problems.push(format!("journalmatch: ours {ours_jm:?}, fail2ban {theirs_jm:?}"));
    }
    // Every pattern must say where it was written.
    for s in f.spec.failregex.iter().chain(&f.spec.ignoreregex).chain(&f.spec.prefregex) {
        if need_positions && (s.at.file.is_none() || s.at.line == 0) {
            problems.push(format!("no source position for {:?}", s.text));
        }
    }
    (true, problems)
}

#[test]
fn every_stock_filter_matches_fail2ban() {
    if let Err(why) = fail2ban_available() {
        skip(&why);
        return;
    }
    let loader = FilterLoader::new(FILTER_DIR);
    let mut todo = Vec::new();
    for name in loader.filter_names() {
        if name.ends_with("common") {
            continue;
        }
        for opts in loader.declared_variants(&name) {
            todo.push((name.clone(), opts));
        }
    }
    let refs = reference(&todo);
    assert_eq!(refs.len(), todo.len());
    let (mut same, mut differ, mut load_errors) = (0, 0, 0);
    for ((name, opts), r) in todo.iter().zip(&refs) {
        let display = format_filter_arg(name, opts);
        let (loaded, problems) = compare(&loader, name, opts, r, true);
        if !loaded {
            load_errors += 1;
        }
        if problems.is_empty() {
            same += 1;
        } else {
            differ += 1;
            out(&format!("DIFFER {display}:"));
            for p in problems {
                out(&format!("    {p}"));
            }
        }
    }
    out(&format!("filters: {same} identical, {differ} differ"));
    assert_eq!(load_errors, 0, "some filters failed to load");
    assert_eq!(differ, 0, "some filters differ from fail2ban");
}

#[test]
fn check_all_on_stock_filters_has_no_errors() {
    if !Path::new(FILTER_DIR).is_dir() {
        skip(&format!("{FILTER_DIR} does not exist"));
        return;
    }
    let all = FilterLoader::new(FILTER_DIR).check_all();
    let errors: Vec<String> =
        all.iter().flat_map(|(n, ds)| ds.iter().filter(|d| d.is_error()).map(move |d| format!("{n}: {d}"))).collect();
    println!("check_all: {} filter variants, {} errors", all.len(), errors.len());
    assert!(errors.is_empty(), "{errors:#?}");
}

/// Every variant of every stock filter compiles with the matcher (also the
/// variants no sample log exercises, e.g. `logtype=rfc5424`).
#[test]
fn every_stock_variant_compiles() {
    use stadtwache_match::{CompileOptions, CompiledFilter};
    if !Path::new(FILTER_DIR).is_dir() {
        skip(&format!("{FILTER_DIR} does not exist"));
        return;
    }
    let loader = FilterLoader::new(FILTER_DIR);
    let mut specs = Vec::new();
    for name in loader.filter_names() {
        if name.ends_with("common") {
            continue;
        }
        for opts in loader.declared_variants(&name) {
            // Load errors are reported by every_stock_filter_matches_fail2ban.
            if let Ok(f) = loader.load(&name, &opts) {
                specs.push((format_filter_arg(&name, &opts), f.spec));
            }
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    let chunk = specs.len().div_ceil(threads).max(1);
    let results: Vec<(String, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = specs
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(display, spec)| {
                            let errs = match CompiledFilter::compile(spec, &CompileOptions::default()) {
                                Ok(_) => Vec::new(),
                                Err(d) => d.iter().filter(|d| d.is_error()).map(|d| d.to_string()).collect(),
                            };
                            (display.clone(), errs)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("compile thread")).collect()
    });
    let (mut ok, mut failed) = (0, 0);
    for (display, errs) in &results {
        if errs.is_empty() {
            ok += 1;
        } else {
            failed += 1;
            for e in errs {
                out(&format!("COMPILE {display}: {e}"));
            }
        }
    }
    out(&format!("compile: {ok} passed, {failed} failed"));
    assert_eq!(failed, 0, "some stock filter variants do not compile");
}

/// Tricky INI and substitution cases written for this test, read by us and
/// by fail2ban: both must agree (also on failing).
#[test]
fn synthetic_filters_match_fail2ban() {
    if let Err(why) = fail2ban_available() {
        skip(&why);
        return;
    }
    let base = std::env::temp_dir().join(format!("stadtwache-f2b-synth-{}", std::process::id()));
    let dir = base.join("filter.d");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(dir.join("t1.d")).unwrap();
    let files: &[(&str, &str)] = &[
        (
            "common-x.conf",
            "[INCLUDES]\nbefore = pre.conf\nafter = post.conf\n\n[DEFAULT]\n_daemon = \\S+\n\
             Mixed_Case = mc\nlogtype = file\n__pfx = <lt_<logtype>/__pfx>\n\n[lt_file]\n__pfx = F:\n\
             [lt_journal]\n__pfx = J:%(lt_file/__pfx)s\n",
        ),
        ("pre.conf", "[DEFAULT]\nfrom_pre = pre\n_daemon = early\n"),
        ("post.conf", "[DEFAULT]\nfrom_post = post\n"),
        (
            "t1.conf",
            "[INCLUDES]\nbefore = common-x.conf\n\n[Definition]\n# comment\n\
             failregex = ^%(__pfx)s <_daemon> %(from_pre)s %(from_post)s <HOST>   ; inline comment\n\
             \t^tab continuation <HOST>;not a comment\n  \n\n  ^after blank # not a comment <HOST>\n\
             \x20   ; full comment line in value\n\
             \x20           ^deep <MIXED_CASE> <Mixed_Case> <mixed_case> 100%% <HOST>\n\
             ignoreregex: ^colon delimiter <HOST>\n\
             datepattern = ^%%Y-%%m-%%d %%H:%%M:%%S\n              {^LN-BEG}\n\
             prefregex = %(__name__)s <F-CONTENT>.+</F-CONTENT>\nmaxlines = 3\n\
             journalmatch = _COMM=x + \"_X=a b\"\n",
        ),
        (
            "t1.local",
            "[Definition]\nfailregex = %(known/failregex)s\n            ^local <HOST>\n\
             [DEFAULT]\n_daemon = localdaemon\n",
        ),
        ("t1.d/a.conf", "[Definition]\nmaxlines = 4\n"),
        (
            "t2.conf",
            "[Definition]\nfailregex = <mdre-<mode>> <HOST>\n            <user_re> <HOST>\n\
             mdre-normal = N\nmdre-extra = E <known/mode>\nuser_re = user=<user>\nmode = normal\n\
             [Init]\nuser = \\S+\nmaxlines = 2\nmode = extra\n",
        ),
        ("t3.conf", "[Definition]\nfailregex = <user> <HOST>\n[Init]\nuser = a\n"),
        ("t3.local", "[Init]\nuser = <known/user>b\n"),
        ("t4.conf", "[Definition]\nfailregex = %(missing)s <HOST>\n"),
        ("t5.conf", "[Definition]\nfailregex = <a> <HOST>\na = base\n[Definition?logtype=journal]\na = journal\n"),
        ("t6.conf", "[DEFAULT]\nx = one\n[Definition]\nfailregex = %(known/x)s <HOST>\n"),
        ("t6.local", "[DEFAULT]\nx = two\n"),
        (
            "t7.conf",
            "[Definition] trailing\nfailregex = <sec/opt> <default/x> <known/failregex> <HOST>\n\
             [sec]\nopt = S\n[DEFAULT]\nx = D\n",
        ),
        ("t8.conf", "[Definition]\nfailregex = %(a)s\na = %(b)s <b>\nb = <c>\nc = C\ndatepattern =\nmaxlines = 0\n"),
        ("t9.conf", "[Definition]\nfailregex = x\nfailregex = y\n"),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let o = |s: &[(&str, &str)]| -> BTreeMap<String, String> {
        s.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let cases: Vec<(String, BTreeMap<String, String>)> = vec![
        ("t1".into(), o(&[])),
        ("t1".into(), o(&[("logtype", "journal")])),
        ("t2".into(), o(&[])),
        ("t2".into(), o(&[("mode", "normal")])),
        ("t2".into(), o(&[("user", "root"), ("maxlines", "5")])),
        ("t2".into(), o(&[("failregex", "^custom <HOST>")])),
        ("t3".into(), o(&[])),
        ("t4".into(), o(&[])),
        ("t5".into(), o(&[])),
        ("t6".into(), o(&[])),
        ("t7".into(), o(&[])),
        ("t8".into(), o(&[])),
        ("t9".into(), o(&[])),
    ];
    let refs = reference_in(&base, &cases);
    let loader = FilterLoader::new(&dir);
    let (mut same, mut differ) = (0, 0);
    for ((name, opts), r) in cases.iter().zip(&refs) {
        let (_, problems) = compare(&loader, name, opts, r, false);
        if problems.is_empty() {
            same += 1;
        } else {
            differ += 1;
            out(&format!("DIFFER synthetic {}:", format_filter_arg(name, opts)));
            for p in problems {
                out(&format!("    {p}"));
            }
            out(&format!("    fail2ban: {r}"));
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    out(&format!("synthetic filters: {same} identical, {differ} differ"));
    assert_eq!(differ, 0, "synthetic filters differ from fail2ban");
}
