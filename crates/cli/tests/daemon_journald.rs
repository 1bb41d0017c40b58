//! The daemon's journald source end to end: real journal files made by
//! `systemd-journal-remote`, followed by a real `journalctl`, matched by
//! fail2ban's unchanged `sshd` filter; the cursor is committed with the
//! effects, so a restart reads only the entries it has not processed.
//! Without the programs (or fail2ban's filters) the test prints SKIPPED, and
//! fails under `STADTWACHE_REQUIRE_NETNS=1` (CI: every system test mandatory).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BOOT: &str = "0123456789abcdef0123456789abcdef";

fn tools() -> Option<PathBuf> {
    let remote = ["/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let journalctl =
        Command::new("journalctl").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    let filters = Path::new("/etc/fail2ban/filter.d/sshd.conf").exists();
    match (remote, journalctl, filters) {
        (Some(p), true, true) => Some(p),
        _ => {
            assert!(
                std::env::var("STADTWACHE_REQUIRE_NETNS").as_deref() != Ok("1"),
                "journalctl, systemd-journal-remote or fail2ban's filters missing"
            );
            println!("SKIPPED: journalctl, systemd-journal-remote or fail2ban's filters missing");
            None
        }
    }
}

/// Write `entries` (realtime µs, message) as a journal file in `dir`.
fn journal(remote: &Path, dir: &Path, name: &str, first_seq: i64, entries: &[(i64, String)]) {
    let mut export = Vec::new();
    for (i, (t, msg)) in entries.iter().enumerate() {
        let mono = 1_000_000 + (first_seq + i as i64) * 1000;
        for (k, v) in [
            ("__REALTIME_TIMESTAMP", t.to_string()),
            ("__MONOTONIC_TIMESTAMP", mono.to_string()),
            ("_BOOT_ID", BOOT.to_string()),
            ("_HOSTNAME", "bastion".to_string()),
            ("_SYSTEMD_UNIT", "ssh.service".to_string()),
            ("SYSLOG_IDENTIFIER", "sshd".to_string()),
            ("_PID", "4242".to_string()),
            ("MESSAGE", msg.clone()),
        ] {
            writeln!(export, "{k}={v}").unwrap();
        }
        export.push(b'\n');
    }
    let mut child = Command::new(remote)
        .arg("-o")
        .arg(dir.join(name))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&export).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "systemd-journal-remote: {}", String::from_utf8_lossy(&out.stderr));
}

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stadtwache"))
}

fn start(cfg: &Path, log: &Path) -> Daemon {
    let log = std::fs::File::create(log).unwrap();
    Daemon(bin().args(["run", "--config"]).arg(cfg).stdout(Stdio::null()).stderr(log).spawn().unwrap())
}

fn stop(mut d: Daemon) {
    let pid = d.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(st) = d.0.try_wait().unwrap() {
            assert!(st.success(), "daemon exit status {st}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("daemon did not stop on SIGTERM");
}

fn json(args: &[&str], cfg: &Path) -> serde_json::Value {
    let out = bin().args(args).arg("--config").arg(cfg).arg("--json").output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Lines processed by the journald source, per `status --json` — only when
/// that status was written by the daemon `d` (status.json outlives a daemon:
/// right after a restart it may still be the previous run's).
fn processed(cfg: &Path, d: &Daemon) -> Option<u64> {
    let st = json(&["status"], cfg);
    if st["pid"] != d.0.id() {
        return None;
    }
    st["sources"].as_array()?.iter().find(|s| s["name"] == "journal")?["processed"].as_u64()
}

/// A free TCP port on 127.0.0.1 below the ephemeral range: one from
/// `bind(":0")` could be taken, before the daemon binds it, as the local port
/// of an outgoing connection (the status and decision polls below make many).
fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let span = low.saturating_sub(10_000).max(1);
    let start = std::process::id().wrapping_mul(97);
    (0..1000)
        .map(|i| (10_000 + (start + i) % span) as u16)
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port")
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn journald_source_bans_and_resumes_at_its_cursor() {
    let Some(remote) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journal");
    std::fs::create_dir_all(&jdir).unwrap();
    let t = now_us() - 5_000_000;
    let fail = |n: i64, ip: &str| (t + n * 1000, format!("Invalid user u{n} from {ip} port {}", 40000 + n));
    // 3 failures of .50 (banned with maxretry 3) and 2 of .51 (not yet).
    journal(
        &remote,
        &jdir,
        "one.journal",
        0,
        &[
            fail(1, "192.0.2.50"),
            fail(2, "192.0.2.51"),
            fail(3, "192.0.2.50"),
            fail(4, "192.0.2.51"),
            fail(5, "192.0.2.50"),
        ],
    );
    let port = free_port();
    let cfg = dir.path().join("stadtwache.toml");
    std::fs::write(
        &cfg,
        format!(
            "[daemon]\ndata_dir = {data:?}\nstatus_interval = \"200ms\"\n\
             [policy]\nmaxretry = 3\n\
             [[source]]\nname = \"journal\"\ntype = \"journald\"\nfilters = [\"sshd\"]\n\
             [source.journald]\ndirectory = {jdir:?}\nunits = [\"ssh.service\"]\nfrom_start = true\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\n",
            data = dir.path().join("data"),
            jdir = jdir,
        ),
    )
    .unwrap();
    let d = start(&cfg, &dir.path().join("daemon1.log"));
    let banned = |ip: &str| {
        json(&["decisions", "list"], &cfg)
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d["key"]["Ip"] == ip || d["key"] == ip))
    };
    wait_for("the ban of 192.0.2.50", || banned("192.0.2.50"));
    wait_for("5 entries processed", || processed(&cfg, &d) == Some(5));
    assert!(!banned("192.0.2.51"), "2 failures must not ban");
    // The entries were written 5 s before now: the source reports that lag.
    let st = json(&["status"], &cfg);
    let lag = st["sources"][0]["lag_seconds"].as_f64().expect("lag_seconds of the journald source");
    assert!((4.0..600.0).contains(&lag), "lag {lag}");
    stop(d);

    // While the daemon is down, one more failure of .51 arrives: after the
    // restart only it is read (cursor), and it completes .51's window
    // (restored from the store).
    journal(&remote, &jdir, "two.journal", 10, &[fail(6, "192.0.2.51")]);
    let d = start(&cfg, &dir.path().join("daemon2.log"));
    wait_for("the ban of 192.0.2.51 after the restart", || banned("192.0.2.51"));
    // The ban is in the store before a status counting its entry need be
    // written (and a status of the first run, or an early one of this run,
    // says 5 or 0): wait until this run's status counts an entry, then check
    // that it is exactly the one.
    wait_for("status of the second run", || processed(&cfg, &d).is_some_and(|n| n >= 1));
    assert_eq!(processed(&cfg, &d), Some(1), "only the new entry is read after the restart");
    let alerts = json(&["alerts", "list"], &cfg);
    assert_eq!(alerts.as_array().map(Vec::len), Some(2), "one alert per address, none twice: {alerts}");
    stop(d);
}
