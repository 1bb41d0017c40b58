//! End-to-end tests of the `stadtwache` binary with the embedded native rule
//! pack (no fail2ban needed): bad input is counted and never fatal, exit
//! codes, JSON output, explanations, test-filter and check.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stadtwache"))
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("sw-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run stadtwache");
    eprintln!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Failed password lines from one address, `n` of them, a second apart.
fn failures(addr: &str, n: usize, start_sec: usize) -> String {
    (0..n)
        .map(|i| {
            let s = start_sec + i;
            format!(
                "Mar  2 10:{:02}:{:02} gw sshd[{}]: Failed password for root from {addr} port {} ssh2\n",
                s / 60,
                s % 60,
                1000 + i,
                40000 + i
            )
        })
        .collect()
}

fn summary(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().expect("a summary line");
    let v: serde_json::Value = serde_json::from_str(last).expect("summary is JSON");
    assert_eq!(v["type"], "summary");
    v
}

const COMMON: &[&str] = &["--tz", "UTC", "--now", "2026-06-01T00:00:00Z", "--service", "sshd"];

#[test]
fn bad_input_is_counted_and_loses_no_good_line() {
    let dir = TempDir::new("bad");
    let mut data: Vec<u8> = Vec::new();
    data.extend(failures("198.51.100.7", 3, 0).as_bytes());
    data.extend(b"\x00\x01\x02\xff\xfe binary garbage \x1b[31m\n"); // invalid UTF-8
    data.extend(std::iter::repeat_n(b'A', 1 << 20)); // a 1 MiB line
    data.push(b'\n');
    data.extend(b"2026-13-45 99:99:99 unknown date format sshd[1]: hello\n");
    data.extend(b"Mar  2 10:00:10 gw sshd[77]: Failed password for r\xc3\x28oot from 198.51.100.7 port 1 ssh2\n");
    data.extend(failures("198.51.100.7", 3, 20).as_bytes());
    std::fs::write(dir.path("auth.log"), &data).unwrap();

    // A truncated gzip file holding more failures.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(failures("203.0.113.9", 2000, 0).as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    std::fs::write(dir.path("old.log.gz"), &gz[..gz.len() * 2 / 3]).unwrap();

    let out = run(bin().arg("replay").arg("--json").args(COMMON).arg(dir.path("auth.log")).arg(dir.path("old.log.gz")));
    assert_eq!(out.status.code(), Some(0), "bad lines never make the run fail");
    let s = summary(&out);
    assert_eq!(s["skipped"]["oversize"], 1);
    assert_eq!(s["invalid_utf8"], 2, "garbage line and the line with a broken user name");
    assert_eq!(s["skipped"]["read_errors"].as_array().unwrap().len(), 1, "the truncated .gz");
    assert!(s["no_date"].as_u64().unwrap() >= 2, "garbage and unknown-date lines have no date");
    // Every good failure line was seen: 7 from auth.log (incl. the one with
    // invalid UTF-8 in the user name) plus what the truncated gzip held.
    let hits: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"type\":\"hit\"") && l.contains("\"rule\":\"sshd-auth-failure\""))
        .filter(|l| l.contains("198.51.100.7"))
        .count() as u64;
    assert_eq!(hits, 7);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("I002"), "the early end of the .gz is reported: {stderr}");
}

#[test]
fn an_unreadable_input_is_exit_1_but_the_others_still_run() {
    let dir = TempDir::new("unreadable");
    std::fs::write(dir.path("auth.log"), failures("198.51.100.8", 6, 0)).unwrap();
    let out =
        run(bin().arg("replay").arg("--json").args(COMMON).arg(dir.path("missing.log")).arg(dir.path("auth.log")));
    assert_eq!(out.status.code(), Some(1));
    let s = summary(&out);
    assert_eq!(s["lines"], 6);
    assert!(s["bans"].as_u64().unwrap() >= 1, "the readable input still produced its ban");
    assert!(String::from_utf8_lossy(&out.stderr).contains("I001"));
}

#[test]
fn stdin_and_bans_out_and_allowlist() {
    let dir = TempDir::new("stdin");
    let mut input = failures("198.51.100.20", 8, 0);
    input.push_str(&failures("198.51.100.21", 8, 100));
    let bans = dir.path("bans.txt");
    let mut child = bin()
        .args(["replay", "-", "--ignoreip", "198.51.100.21/32", "--bans-out"])
        .arg(&bans)
        .args(COMMON)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&bans).unwrap();
    let addrs: Vec<&str> = text.lines().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert!(addrs.contains(&"198.51.100.20"), "{text}");
    assert!(!addrs.contains(&"198.51.100.21"), "allowlisted address must never be banned: {text}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Allowlisted: 1"));
}

/// Without observers a replay keeps no evidence per window and asks no
/// observer about hits (`--json`, `--why` turn both on): the bans are the
/// same either way, with IPv6, a mapped address and lines out of order.
#[test]
fn bans_out_is_the_same_with_and_without_observers() {
    let dir = TempDir::new("observers");
    let mut input = String::new();
    for (k, addr) in ["198.51.100.40", "2001:db8::40", "::ffff:198.51.100.41", "198.51.100.41"].iter().enumerate() {
        input.push_str(&failures(addr, 23, 7 * k));
    }
    input.push_str(&failures("198.51.100.42", 3, 900));
    input.push_str(&failures("198.51.100.42", 3, 30));
    std::fs::write(dir.path("auth.log"), &input).unwrap();
    let bans_of = |extra: &[&str], name: &str| {
        let bans = dir.path(name);
        let out = run(bin()
            .args(["replay", "--maxretry", "3", "--findtime", "1m", "--bantime", "5s"])
            .args(extra)
            .arg("--bans-out")
            .arg(&bans)
            .args(COMMON)
            .arg(dir.path("auth.log")));
        assert!(out.status.success());
        std::fs::read_to_string(&bans).unwrap()
    };
    let plain = bans_of(&[], "plain.txt");
    assert!(plain.lines().count() >= 3, "{plain}");
    assert_eq!(plain, bans_of(&["--json"], "json.txt"));
    assert_eq!(plain, bans_of(&["--why", "198.51.100.40"], "why.txt"));
}

#[test]
fn explain_shows_lines_rule_window_and_policy() {
    let dir = TempDir::new("explain");
    std::fs::write(dir.path("auth.log"), failures("198.51.100.30", 6, 0)).unwrap();
    let out = run(bin().args(["explain", "198.51.100.30"]).arg(dir.path("auth.log")).args(COMMON));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("== 198.51.100.30"), "{text}");
    assert!(text.contains("Failed password for root from 198.51.100.30"), "evidence lines: {text}");
    assert!(text.contains("rule sshd-auth-failure"), "{text}");
    assert!(text.contains("BAN"), "{text}");
    assert!(text.contains("base ban time"), "policy steps: {text}");

    let out = run(bin().args(["explain", "198.51.100.99"]).arg(dir.path("auth.log")).args(COMMON));
    assert!(String::from_utf8_lossy(&out.stdout).contains("No rule matched a line about 198.51.100.99"));
}

#[test]
fn test_filter_reports_matches_and_misses() {
    let dir = TempDir::new("tf");
    let mut log = failures("198.51.100.40", 2, 0);
    log.push_str("Mar  2 10:05:00 gw sshd[9]: Accepted publickey for alice from 198.51.100.41 port 2 ssh2\n");
    std::fs::write(dir.path("auth.log"), log).unwrap();
    let out = run(bin().args(["test-filter", "native:sshd-auth-failure"]).arg(dir.path("auth.log")).args([
        "--tz",
        "UTC",
        "--print-missed",
    ]));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Lines: 3 lines, 0 ignored, 2 matched, 1 missed"), "{text}");
    assert!(text.contains("Accepted publickey for alice"), "missed line printed: {text}");
}

#[test]
fn broken_rules_are_exit_1_with_code_file_and_line() {
    let dir = TempDir::new("broken");
    std::fs::write(
        dir.path("x.toml"),
        "[[rule]]\nid = \"x-rule\"\ndescription = \"d\"\npatterns = ['^oops (unclosed <HOST>$']\ndetect = { kind = \"once\" }\nbogus = 1\n",
    )
    .unwrap();
    let out = run(bin().arg("check").arg("--rules").arg(&dir.0));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error[R002]") && err.contains("x.toml:6"), "unknown key with file and line: {err}");

    let out = run(bin().arg("replay").arg("--rules").arg(&dir.0).arg(dir.path("x.toml")));
    assert_eq!(out.status.code(), Some(1), "broken rules stop a replay before it starts");
}

#[test]
fn shipped_pack_and_samples_check_clean() {
    let out = run(bin().args(["check", "--samples"]));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(", 0 failed"), "{text}");
}

#[test]
fn every_diagnostic_code_in_the_source_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/diagnostics.md")).unwrap();
    let code_re = regex_lite_codes();
    let mut missing = Vec::new();
    for entry in walk(&root.join("crates")) {
        if entry.extension().is_some_and(|e| e == "rs") && entry.components().any(|c| c.as_os_str() == "src") {
            let text = std::fs::read_to_string(&entry).unwrap();
            for code in code_re(&text) {
                if !doc.contains(&format!("| {code} |")) && !missing.contains(&code) {
                    missing.push(code);
                }
            }
        }
    }
    assert!(missing.is_empty(), "codes used in the source but not in docs/diagnostics.md: {missing:?}");
}

/// `"X123"` string literals (X one of F P D R C I K) in Rust source.
fn regex_lite_codes() -> impl Fn(&str) -> Vec<String> {
    |text: &str| {
        let b = text.as_bytes();
        let mut out = Vec::new();
        for i in 0..b.len().saturating_sub(5) {
            if b[i] == b'"'
                && b"FPDRCIK".contains(&b[i + 1])
                && b[i + 2..i + 5].iter().all(u8::is_ascii_digit)
                && (b.get(i + 5) == Some(&b'"') || b.get(i + 5) == Some(&b':'))
            {
                out.push(String::from_utf8_lossy(&b[i + 1..i + 5]).into_owned());
            }
        }
        out
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The hits of one rule as JSON lines (the `rule` field left out).
fn hits_of(out: &Output, rule: &str) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "hit" && v["rule"] == rule)
        .map(|mut v| {
            v.as_object_mut().unwrap().remove("rule");
            v.to_string()
        })
        .collect()
}

/// Two fail2ban filters with different date configurations (two date
/// scanners in one pipeline) find on each line what each finds alone (one
/// scanner, whose date the pipeline hands on without the per-scanner list).
#[test]
fn two_date_configurations_hit_as_each_alone() {
    let dir = TempDir::new("twodates");
    std::fs::write(dir.path("syslog.conf"), "[Definition]\nfailregex = : auth failure from <HOST>$\n").unwrap();
    std::fs::write(
        dir.path("iso.conf"),
        "[Definition]\nfailregex = : (?:auth|login) failure from <HOST>$\n\
         datepattern = {^LN-BEG}%%Y-%%m-%%d %%H:%%M:%%S\n",
    )
    .unwrap();
    let mut log = String::new();
    for i in 0..40 {
        let (m, s) = (i / 60, i % 60);
        let host = format!("198.51.100.{}", i % 7);
        match i % 4 {
            0 => log.push_str(&format!("Mar  2 10:{m:02}:{s:02} gw app: auth failure from {host}\n")),
            1 => log.push_str(&format!("2026-03-02 10:{m:02}:{s:02} gw app: login failure from {host}\n")),
            2 => log.push_str(&format!("2026-03-02 10:{m:02}:{s:02} gw app: auth failure from {host}\n")),
            _ => log.push_str(&format!("no date gw app: auth failure from {host}\n")),
        }
    }
    std::fs::write(dir.path("mixed.log"), log).unwrap();
    let replay = |filters: &[&str]| {
        let mut cmd = bin();
        cmd.args(["replay", "--tz", "UTC", "--now", "2026-06-01T00:00:00Z", "--no-progress", "--json"]);
        for f in filters {
            cmd.arg("--filter").arg(dir.path(f));
        }
        let out = run(cmd.arg(dir.path("mixed.log")));
        assert!(out.status.success());
        out
    };
    let both = replay(&["syslog.conf", "iso.conf"]);
    for f in ["syslog.conf", "iso.conf"] {
        let alone = replay(&[f]);
        let name = dir.path(f).display().to_string();
        let want = hits_of(&alone, &name);
        assert!(want.len() >= 10, "{f}: {} hits", want.len());
        assert_eq!(hits_of(&both, &name), want, "{f}");
    }
}
