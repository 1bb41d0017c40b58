//! Running fail2ban's own DateDetector (via `tests/fail2ban_dates.py`) as the
//! reference for our results.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use stadtwache_core::Timestamp;

pub const PYTHON: &str = "/usr/bin/python3";
pub const F2B_LOGS: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";

/// What fail2ban found for one line.
#[derive(Debug, Clone, PartialEq)]
pub enum Ref {
    None,
    Error,
    Hit(usize, usize, Option<Timestamp>),
}

/// `Err(reason)` when the reference is not available here.
pub fn available() -> Result<(), String> {
    if !Path::new(PYTHON).exists() {
        return Err(format!("{PYTHON} not found"));
    }
    let ok = Command::new(PYTHON)
        .args(["-c", "import fail2ban.server.datedetector"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        return Err("python3 module fail2ban (1.0.x) not importable".into());
    }
    Ok(())
}

/// Print a loud SKIPPED line; fail when `STADTWACHE_REQUIRE_FAIL2BAN=1`.
/// Returns true when the caller should skip.
pub fn skip_unless_available(test: &str) -> bool {
    match available() {
        Ok(()) => false,
        Err(why) => {
            if std::env::var("STADTWACHE_REQUIRE_FAIL2BAN").as_deref() == Ok("1") {
                panic!("{test}: fail2ban reference required but unavailable: {why}");
            }
            eprintln!("SKIPPED: {test}: fail2ban reference unavailable: {why}");
            true
        }
    }
}

/// Run fail2ban over `files` (each a fresh stream).
pub fn run_reference(now: i64, tz: &str, pattern: Option<&str>, files: &[(String, Vec<String>)]) -> Vec<Vec<Ref>> {
    let files: Vec<Value> = files.iter().map(|(n, l)| json!({"name": n, "lines": l, "pattern": pattern})).collect();
    run_reference_files(now, tz, files)
}

/// Like [`run_reference`] with one JSON object per file (`name`, `lines`,
/// `pattern`).
pub fn run_reference_files(now: i64, tz: &str, files: Vec<Value>) -> Vec<Vec<Ref>> {
    run_reference_req(json!({
        "now": now,
        "tz": tz,
        "files": files,
    }))
}

/// Run the reference script on a whole request (see the script's doc).
pub fn run_reference_req(req: Value) -> Vec<Vec<Ref>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fail2ban_dates.py");
    let mut child = Command::new(PYTHON)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn python3");
    let input = serde_json::to_vec(&req).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("python3 output");
    writer.join().unwrap().expect("write to python3");
    assert!(out.status.success(), "reference script failed");
    let v: Value = serde_json::from_slice(&out.stdout).expect("reference JSON");
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f.as_array()
                .unwrap()
                .iter()
                .map(|r| match r {
                    Value::Null => Ref::None,
                    Value::Array(a) if a.len() == 3 => Ref::Hit(
                        a[0].as_u64().unwrap() as usize,
                        a[1].as_u64().unwrap() as usize,
                        a[2].as_f64().map(Timestamp::from_secs_f64),
                    ),
                    _ => Ref::Error,
                })
                .collect()
        })
        .collect()
}
