//! The shipped example config and unit file stay valid.

use std::path::Path;
use std::process::Command;

#[test]
fn example_config_checks_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("examples/stadtwache.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The example points at /etc and /var/lib; the token file must exist.
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "example-token\n").unwrap();
    let text = text
        .replace("/etc/stadtwache/admin.token", token.to_str().unwrap())
        .replace("/var/lib/stadtwache", dir.path().join("data").to_str().unwrap());
    let cfg = dir.path().join("stadtwache.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stadtwache")).args(["check", "--config"]).arg(&cfg).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The example uses fail2ban's sshd filter; without the Debian package
    // the check reports F001 for it — and only that.
    if !Path::new("/etc/fail2ban/filter.d/sshd.conf").exists() {
        assert!(stderr.contains("F0"), "{stderr}");
        println!("SKIPPED (partly): fail2ban filters not installed: {stderr}");
        return;
    }
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (3 source(s))"));
}

#[test]
fn broken_config_reports_every_problem_with_code_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[daemon]\nsynchronous = \"sometimes\"\n\n[[source]]\nname = \"a\"\ntype = \"file\"\n\n[nftables]\ntable = \"no spaces allowed\"\n\n[whatever]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stadtwache")).args(["check", "--config"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (code, line) in [("K005", 1), ("K011", 4), ("K006", 8), ("K004", 11)] {
        let needle = format!("error[{code}] {}:{line}:", cfg.display());
        assert!(stderr.contains(&needle), "missing {needle:?} in:\n{stderr}");
    }
}
