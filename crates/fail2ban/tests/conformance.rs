//! fail2ban conformance: every sample log of fail2ban's own test suite
//! (`fail2ban/tests/files/logs`) against the matching stock filter of
//! /etc/fail2ban/filter.d, with the annotations honoured the way
//! fail2ban's `samplestestcase.py` honours them:
//!
//! - `# failJSON: {...}` annotates the next line (match, host, time, user,
//!   users, attempts, dns, …, constraint); a line without one must not match;
//! - `# filterOptions: {...}` / `[{...}, ...]` switches to one or several
//!   filter variants (`test.condition`, `test.filter-name`, `logtype: journal`
//!   with `test.prefix-line` → `FilterRunner::process_line_at`);
//! - `# fileOptions: {...}` options merged into every following variant;
//! - `# addFILE: "name"` runs another sample file in the same test;
//! - now = 1124013600 in CET/CEST (`TimeContext::fail2ban_test()`),
//!   `RunOptions { check_all_regex: true }`, more than one failure on a line
//!   ("Multiple regexs matched") is a failure.
//!
//! One case = one sample line run against one filter variant. The check
//! that every failregex has at least one sample is counted separately.
//! `tests/conformance.ratchet` holds the best passed count so far.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use stadtwache_core::Timestamp;
use stadtwache_datetime::TimeContext;
use stadtwache_fail2ban::FilterLoader;
use stadtwache_match::{CompileOptions, CompiledFilter, Failure, FieldValue, FilterRunner, LineResult, RunOptions};

const FILTER_DIR: &str = "/etc/fail2ban/filter.d";
const LOG_DIR: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";
const TEST_NOW: i64 = 1_124_013_600;
/// How many failure details to print per filter.
const SHOW_FAILURES: usize = 4;

fn out(s: &str) {
    let _ = writeln!(std::io::stdout(), "{s}");
}

fn skip(why: &str) {
    let bang = "!".repeat(70);
    let _ = writeln!(std::io::stderr(), "\n{bang}\nSKIPPED: conformance: {why}\n{bang}\n");
    if std::env::var("STADTWACHE_REQUIRE_FAIL2BAN").as_deref() == Ok("1") {
        panic!("STADTWACHE_REQUIRE_FAIL2BAN=1 but {why}");
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

// ---------------------------------------------------------------------------
// Local time of the test zone (CET-01CEST-02,M3.5.0,M10.5.0), as Python's
// time.mktime computes it for the failJSON "time".

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Day (of month) of the last Sunday of a month.
fn last_sunday(y: i64, m: i64) -> i64 {
    let days_in =
        days_from_civil(if m == 12 { y + 1 } else { y }, if m == 12 { 1 } else { m + 1 }, 1) - days_from_civil(y, m, 1);
    let last = days_from_civil(y, m, days_in);
    // 1970-01-01 was a Thursday (weekday 4, Sunday = 0).
    let wd = (last + 4).rem_euclid(7);
    days_in - wd
}

/// Parse `%Y-%m-%dT%H:%M:%S[.%f]` in the test zone to epoch microseconds.
fn local_to_micros(s: &str) -> Option<i64> {
    let (main, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let (date, time) = main.split_once('T')?;
    let d: Vec<i64> = date.split('-').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let t: Vec<i64> = time.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    let micros = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 6 && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<i64>().ok()? * 10i64.pow(6 - f.len() as u32)
        }
        Some(_) => return None,
    };
    let naive = days_from_civil(d[0], d[1], d[2]) * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    let y = d[0];
    let start = days_from_civil(y, 3, last_sunday(y, 3)) * 86_400 + 3600; // 01:00 UTC
    let end = days_from_civil(y, 10, last_sunday(y, 10)) * 86_400 + 3600;
    let dst = naive - 7200;
    let std = naive - 3600;
    let secs = if (start..end).contains(&dst) { dst } else { std };
    Some(secs * 1_000_000 + micros)
}

// ---------------------------------------------------------------------------
// The tiny subset of Python that the annotations' conditions use:
// `name == 'x'`, `opts.get('k') != 'v'`.

fn eval_condition(expr: &str, name: &str, opts: &BTreeMap<String, Value>) -> Result<bool, String> {
    let (lhs, op, rhs) = if let Some((l, r)) = expr.split_once("==") {
        (l, true, r)
    } else if let Some((l, r)) = expr.split_once("!=") {
        (l, false, r)
    } else {
        return Err(format!("unsupported condition {expr:?}"));
    };
    let lit = |s: &str| -> Result<Option<String>, String> {
        let s = s.trim();
        if s == "None" {
            return Ok(None);
        }
        for q in ['\'', '"'] {
            if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
                return Ok(Some(s[1..s.len() - 1].to_string()));
            }
        }
        Err(format!("unsupported literal {s:?} in {expr:?}"))
    };
    let l = lhs.trim();
    let left: Option<String> = if l == "name" {
        Some(name.to_string())
    } else if let Some(inner) = l.strip_prefix("opts.get(").and_then(|x| x.strip_suffix(')')) {
        let key = lit(inner)?.ok_or_else(|| format!("bad key in {expr:?}"))?;
        opts.get(&key).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
    } else {
        return Err(format!("unsupported condition {expr:?}"));
    };
    let right = lit(rhs)?;
    Ok((left == right) == op)
}

// ---------------------------------------------------------------------------

/// One filter variant of a test, as fail2ban's `_readFilter` caches it.
struct Variant {
    runner: Option<FilterRunner>,
    /// Why the variant could not be built (load or compile error).
    error: Option<String>,
    /// failregex source texts (for the "regex has no samples" check).
    regexes: Vec<String>,
    used: BTreeSet<usize>,
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    details: Vec<String>,
    samples_ok: usize,
    samples_missing: Vec<String>,
}

impl Tally {
    fn fail(&mut self, detail: String) {
        self.failed += 1;
        self.details.push(detail);
    }
}

fn build_variant(loader: &FilterLoader, name: &str, opts: &BTreeMap<String, Value>) -> Variant {
    let str_opts: BTreeMap<String, String> = opts
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
        .collect();
    let fail = |e: String| Variant { runner: None, error: Some(e), regexes: Vec::new(), used: BTreeSet::new() };
    let loaded = match loader.load(name, &str_opts) {
        Ok(f) => f,
        Err(d) => {
            return fail(format!("load: {}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; ")));
        }
    };
    let regexes = loaded.spec.failregex.iter().map(|s| s.text.clone()).collect();
    let compiled = catch_unwind(AssertUnwindSafe(|| CompiledFilter::compile(&loaded.spec, &CompileOptions::default())));
    let compiled = match compiled {
        Ok(Ok(c)) => c,
        Ok(Err(d)) => {
            let mut v = fail(format!("compile: {}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; ")));
            v.regexes = regexes;
            return v;
        }
        Err(p) => {
            let mut v = fail(format!("compile panicked: {}", panic_text(p)));
            v.regexes = regexes;
            return v;
        }
    };
    let runner = FilterRunner::new(Arc::new(compiled.filter), RunOptions { check_all_regex: true });
    Variant { runner: Some(runner), error: None, regexes, used: BTreeSet::new() }
}

/// Python `str(dict)` of the options (only used as a cache key).
fn py_repr(opts: &BTreeMap<String, Value>) -> String {
    if opts.is_empty() {
        return String::new();
    }
    let items: Vec<String> = opts
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(t) => format!("'{k}': '{t}'"),
            None => format!("'{k}': {v}"),
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

fn describe(f: &Failure) -> String {
    let fields: Vec<String> = f
        .fields
        .iter()
        .map(|(k, v)| match v {
            FieldValue::One(s) => format!("{k}={s:?}"),
            FieldValue::Many(m) => format!("{k}={m:?}"),
        })
        .collect();
    format!("regex #{} fid={:?} time={} {}", f.regex_index, f.fid, f.time.0 as f64 / 1e6, fields.join(" "))
}

/// An address with optional prefix length, as fail2ban's `IPAddr` compares them.
fn parse_addr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (a, plen) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let ip: std::net::IpAddr = a.parse().ok()?;
    let full = if ip.is_ipv4() { 32 } else { 128 };
    Some((ip, plen.unwrap_or(full)))
}

/// Compare one found failure with the failJSON data; Err = what differs.
fn check_failure(f: &Failure, faildata: &serde_json::Map<String, Value>) -> Result<(), String> {
    let mut errs = Vec::new();
    for (k, v) in faildata {
        if matches!(k.as_str(), "time" | "match" | "desc" | "constraint") {
            continue;
        }
        let fv: Value = match f.fields.get(k) {
            Some(FieldValue::One(s)) => Value::String(s.clone()),
            Some(FieldValue::Many(m)) => Value::Array(m.iter().cloned().map(Value::String).collect()),
            None if k == "host" => f.fid.as_ref().map(|s| Value::String(s.to_string())).unwrap_or(Value::Null),
            None if k == "attempts" => Value::from(f.matches().len()),
            None => Value::Null,
        };
        // fail2ban's fid for an ip4/ip6 match is an `IPAddr`, which compares
        // by address (`2001:DB8::1` == `2001:db8::1`); other ids compare as text.
        let by_address = k == "host"
            && !f.fields.contains_key("host")
            && (f.fields.contains_key("ip4") || f.fields.contains_key("ip6"));
        let equal = match (&fv, v) {
            // Text that is no valid address compares as text (fail2ban: AF_UNSPEC, raw).
            (Value::String(a), Value::String(b)) if by_address => match (parse_addr(a), parse_addr(b)) {
                (None, None) => a == b,
                (x, y) => x.is_some() && x == y,
            },
            (Value::Array(a), Value::Array(b)) => {
                let mut a: Vec<String> = a.iter().map(Value::to_string).collect();
                let mut b: Vec<String> = b.iter().map(Value::to_string).collect();
                a.sort();
                b.sort();
                a == b
            }
            (a, b) => a == b,
        };
        if !equal {
            errs.push(format!("{k}: expected {v}, got {fv}"));
        }
    }
    if let Some(t) = faildata.get("time").and_then(Value::as_str) {
        match local_to_micros(t) {
            Some(want) if want == f.time.0 => {}
            Some(want) => errs.push(format!(
                "time: expected {t} ({}), got {} (diff {:.3} s)",
                want as f64 / 1e6,
                f.time.0 as f64 / 1e6,
                (f.time.0 - want) as f64 / 1e6
            )),
            None => errs.push(format!("time: cannot parse expected {t:?}")),
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs.join("; ")) }
}

/// fail2ban's `testSampleRegexs<NAME>` for one filter.
fn run_filter_test(loader: &FilterLoader, name: &str, log_dir: &Path, ctx: &TimeContext) -> Tally {
    let mut tally = Tally::default();
    let mut filenames: Vec<String> = vec![name.to_string()];
    let mut variants: BTreeMap<String, Variant> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut used_re: BTreeSet<String> = BTreeSet::new();
    let mut common_opts: BTreeMap<String, Value> = BTreeMap::new();
    // (fltName, options incl. test.*) of the current block; None = not yet chosen.
    let mut filter_tests: Option<Vec<(String, BTreeMap<String, Value>)>> = None;
    let mut i = 0;
    while i < filenames.len() {
        let filename = filenames[i].clone();
        i += 1;
        let path = log_dir.join(&filename);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                tally.fail(format!("{}: cannot read: {e}", path.display()));
                continue;
            }
        };
        let lines: Vec<String> =
            bytes.split(|&b| b == b'\n').map(|l| String::from_utf8_lossy(l).into_owned()).collect();
        // A final newline leaves an empty last element, which is no line.
        let n_lines = if bytes.ends_with(b"\n") { lines.len() - 1 } else { lines.len() };
        let mut ignore_block = false;
        let mut idx = 0;
        let mut faildata: serde_json::Map<String, Value>;
        while idx < n_lines {
            let mut line = lines[idx].clone();
            let mut lnnum = idx + 1;
            idx += 1;
            let annotation = annotation(&line);
            if let Some((kind, json)) = annotation {
                let parsed: Value = match serde_json::from_str(json) {
                    Ok(v) => v,
                    Err(e) => {
                        tally.fail(format!("{}:{lnnum}: bad JSON in annotation: {e}", path.display()));
                        continue;
                    }
                };
                match kind {
                    "fileOptions" => {
                        common_opts = parsed.as_object().map(|m| m.clone().into_iter().collect()).unwrap_or_default();
                        continue;
                    }
                    "filterOptions" => {
                        let mut tests = Vec::new();
                        ignore_block = false;
                        let list = match parsed {
                            Value::Array(a) => a,
                            v => vec![v],
                        };
                        for fd in list {
                            let mut opts = common_opts.clone();
                            for (k, v) in fd.as_object().cloned().unwrap_or_default() {
                                opts.insert(k, v);
                            }
                            if let Some(cond) = opts.get("test.condition").and_then(Value::as_str) {
                                match eval_condition(cond, name, &opts) {
                                    Ok(b) => ignore_block = !b,
                                    Err(e) => {
                                        tally.fail(format!("{}:{lnnum}: {e}", path.display()));
                                        ignore_block = true;
                                    }
                                }
                            }
                            if ignore_block {
                                continue;
                            }
                            let flt_opts: BTreeMap<String, Value> = opts
                                .iter()
                                .filter(|(k, _)| !k.starts_with("test."))
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect();
                            let suffix = match opts.get("test.filter-name").and_then(Value::as_str) {
                                Some(n) if !n.is_empty() => n.to_string(),
                                _ => py_repr(&flt_opts),
                            };
                            let flt_name = format!("{name}{suffix}");
                            if !variants.contains_key(&flt_name) {
                                variants.insert(flt_name.clone(), build_variant(loader, name, &flt_opts));
                                order.push(flt_name.clone());
                            }
                            tests.push((flt_name, opts));
                        }
                        filter_tests = Some(tests);
                        continue;
                    }
                    "addFILE" => {
                        if let Some(f) = parsed.as_str() {
                            filenames.push(f.to_string());
                        }
                        continue;
                    }
                    _ => {
                        // failJSON: the data is for the next line, whatever it is.
                        faildata = parsed.as_object().cloned().unwrap_or_default();
                        if idx >= n_lines {
                            tally.fail(format!("{}:{lnnum}: failJSON at end of file", path.display()));
                            break;
                        }
                        line = lines[idx].clone();
                        idx += 1;
                        lnnum = idx;
                    }
                }
            } else if ignore_block || line.starts_with('#') || line.trim().is_empty() {
                continue;
            } else {
                faildata = serde_json::Map::new();
            }
            if ignore_block {
                continue;
            }
            if filter_tests.as_ref().is_none_or(Vec::is_empty) {
                let flt_name = name.to_string();
                if !variants.contains_key(&flt_name) {
                    variants.insert(flt_name.clone(), build_variant(loader, name, &BTreeMap::new()));
                    order.push(flt_name.clone());
                }
                filter_tests = Some(vec![(flt_name, BTreeMap::new())]);
            }
            let line_trimmed = line.trim_end_matches(['\r', '\n']).to_string();
            let mut line = line_trimmed;
            for (flt_name, opts) in filter_tests.clone().unwrap_or_default() {
                if let Some(c) = faildata.get("constraint").and_then(Value::as_str).filter(|c| !c.is_empty()) {
                    match eval_condition(c, name, &opts) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => {
                            tally.fail(format!("{}:{lnnum}: {flt_name}: {e}", path.display()));
                            continue;
                        }
                    }
                }
                let want_match = faildata.get("match").and_then(Value::as_bool).unwrap_or(false);
                let here = format!("{filename}:{lnnum} [{flt_name}]");
                let variant = variants.get_mut(&flt_name).expect("variant built");
                let Some(runner) = variant.runner.as_mut() else {
                    tally.fail(format!("{here}: {}", variant.error.clone().unwrap_or_default()));
                    continue;
                };
                let journal = opts.get("logtype").and_then(Value::as_str) == Some("journal");
                if journal && let Some(p) = opts.get("test.prefix-line").and_then(Value::as_str) {
                    line = format!("{p}{line}");
                }
                let res: Result<LineResult, _> = catch_unwind(AssertUnwindSafe(|| {
                    if journal {
                        runner.process_line_at(&line, Timestamp::from_secs(TEST_NOW))
                    } else {
                        runner.process_line(&line, ctx)
                    }
                }));
                let res = match res {
                    Ok(r) => r,
                    Err(p) => {
                        tally.fail(format!("{here}: matcher panicked: {}\n      line: {line}", panic_text(p)));
                        continue;
                    }
                };
                let mut found = Vec::new();
                for f in res.failures {
                    if f.fid.is_none() || f.nofail {
                        variant.used.insert(f.regex_index);
                        if let Some(r) = variant.regexes.get(f.regex_index) {
                            used_re.insert(r.clone());
                        }
                        continue;
                    }
                    found.push(f);
                }
                let verdict: Result<(), String> = if found.is_empty() {
                    if want_match { Err("no match, expected one".to_string()) } else { Ok(()) }
                } else if !want_match {
                    Err(format!("matched, expected no match: {}", describe(&found[0])))
                } else if found.len() > 1 {
                    Err(format!(
                        "Multiple regexs matched {:?}",
                        found.iter().map(|f| f.regex_index).collect::<Vec<_>>()
                    ))
                } else {
                    check_failure(&found[0], &faildata).map_err(|e| format!("{e}\n      got: {}", describe(&found[0])))
                };
                match verdict {
                    Ok(()) => {
                        tally.passed += 1;
                        if let Some(f) = found.first() {
                            variant.used.insert(f.regex_index);
                            if let Some(r) = variant.regexes.get(f.regex_index) {
                                used_re.insert(r.clone());
                            }
                        }
                    }
                    Err(e) => {
                        let expected: String = serde_json::to_string(&faildata).unwrap_or_default();
                        tally.fail(format!("{here}: {e}\n      line: {line}\n      expected: {expected}"));
                    }
                }
            }
        }
    }
    // Every failregex of every variant needs a sample.
    for flt_name in &order {
        let v = &variants[flt_name];
        for (idx, r) in v.regexes.iter().enumerate() {
            if v.used.contains(&idx) || used_re.contains(r) {
                tally.samples_ok += 1;
            } else {
                tally.samples_missing.push(format!("{flt_name}: regex has no samples: {idx}: {r}"));
            }
        }
    }
    tally
}

/// `^#+ ?(failJSON|fileOptions|filterOptions|addFILE):(.+)$`
fn annotation(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start_matches('#');
    if rest.len() == line.len() {
        return None;
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    for kind in ["failJSON", "fileOptions", "filterOptions", "addFILE"] {
        if let Some(json) = rest.strip_prefix(kind).and_then(|r| r.strip_prefix(':')) {
            let json = json.trim_end_matches(['\n', '\r']);
            if !json.is_empty() {
                return Some((kind, json));
            }
        }
    }
    None
}

fn ratchet_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance.ratchet")
}

#[test]
fn fail2ban_sample_logs() {
    let log_dir = Path::new(LOG_DIR);
    if !log_dir.is_dir() || !Path::new(FILTER_DIR).is_dir() {
        skip(&format!("{LOG_DIR} or {FILTER_DIR} missing (apt-get install fail2ban)"));
        return;
    }
    let loader = FilterLoader::new(FILTER_DIR);
    let ctx = TimeContext::fail2ban_test();
    // Quiet the matcher's panics (counted as failures with their message).
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));

    let names: Vec<String> = loader.filter_names().into_iter().filter(|n| !n.ends_with("common")).collect();
    let (mut passed, mut failed, mut samples_ok, mut samples_missing) = (0, 0, 0, 0);
    let mut run_logs: BTreeSet<String> = BTreeSet::new();
    for name in &names {
        if !log_dir.join(name).is_file() {
            failed += 1;
            out(&format!("{name}: 0 passed, 1 failed\n    no sample log file {}", log_dir.join(name).display()));
            continue;
        }
        run_logs.insert(name.clone());
        let t = run_filter_test(&loader, name, log_dir, &ctx);
        passed += t.passed;
        failed += t.failed;
        samples_ok += t.samples_ok;
        samples_missing += t.samples_missing.len();
        let mut line = format!("{name}: {} passed, {} failed", t.passed, t.failed);
        if !t.samples_missing.is_empty() {
            line.push_str(&format!(" ({} regexes without samples)", t.samples_missing.len()));
        }
        out(&line);
        for d in t.details.iter().take(SHOW_FAILURES) {
            out(&format!("    {d}"));
        }
        if t.details.len() > SHOW_FAILURES {
            out(&format!("    … {} more", t.details.len() - SHOW_FAILURES));
        }
        for m in t.samples_missing.iter().take(SHOW_FAILURES) {
            out(&format!("    {m}"));
        }
    }
    std::panic::set_hook(hook);
    let not_run: Vec<String> = std::fs::read_dir(log_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !run_logs.contains(n))
                .collect()
        })
        .unwrap_or_default();
    if !not_run.is_empty() {
        let mut not_run = not_run;
        not_run.sort();
        out(&format!(
            "sample logs without a filter of that name in {FILTER_DIR} (run only through addFILE, if at all): {}",
            not_run.join(", ")
        ));
    }
    out(&format!("regex samples: {samples_ok} passed, {samples_missing} failed"));

    let ratchet_file = ratchet_path();
    let ratchet: usize = std::fs::read_to_string(&ratchet_file).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    if passed < ratchet {
        out(&format!("conformance REGRESSED: {passed} passed < ratchet {ratchet}; see the failures above"));
    } else if passed > ratchet {
        if std::env::var("STADTWACHE_UPDATE_RATCHET").as_deref() == Ok("1") {
            std::fs::write(&ratchet_file, format!("{passed}\n")).expect("write ratchet");
            out(&format!("conformance ratchet raised from {ratchet} to {passed}"));
        } else {
            out(&format!(
                "hint: conformance improved ({passed} > ratchet {ratchet}); raise the ratchet with \
                 STADTWACHE_UPDATE_RATCHET=1 cargo test -p stadtwache-fail2ban --test conformance"
            ));
        }
    }
    out(&format!("conformance: {passed} passed, {failed} failed"));
    assert!(
        passed >= ratchet,
        "conformance regressed: {passed} passed < ratchet {ratchet} ({})",
        ratchet_file.display()
    );
}

#[test]
fn helpers() {
    // 2005-08-14T12:00:00 CEST is the test's "now".
    assert_eq!(local_to_micros("2005-08-14T12:00:00"), Some(TEST_NOW * 1_000_000));
    assert_eq!(local_to_micros("2005-01-14T12:00:00.5"), Some((1_105_700_400) * 1_000_000 + 500_000));
    assert_eq!(last_sunday(2005, 3), 27);
    assert_eq!(last_sunday(2005, 10), 30);
    let opts = BTreeMap::from([("mode".to_string(), Value::String("aggressive".into()))]);
    assert_eq!(eval_condition("name=='sshd'", "sshd", &opts), Ok(true));
    assert_eq!(eval_condition("name == 'sshd'", "x", &opts), Ok(false));
    assert_eq!(eval_condition("opts.get('mode') != 'aggressive'", "x", &opts), Ok(false));
    assert_eq!(eval_condition("opts.get('x') != 'aggressive'", "x", &opts), Ok(true));
    assert!(eval_condition("len(x) > 1", "x", &opts).is_err());
    assert_eq!(annotation("# failJSON: {\"a\": 1}"), Some(("failJSON", " {\"a\": 1}")));
    assert_eq!(annotation("## addFILE: \"x\""), Some(("addFILE", " \"x\"")));
    assert_eq!(annotation("# other"), None);
    assert_eq!(parse_addr("2001:DB8::1"), parse_addr("2001:db8::1"));
    assert_ne!(parse_addr("192.0.2.1"), parse_addr("192.0.2.1/24"));
    assert_eq!(parse_addr("host.example"), None);
}
