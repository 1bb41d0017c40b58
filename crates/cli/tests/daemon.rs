//! Integration tests of `stadtwache run` that need no root: the real binary
//! as a child process (nftables in dry-run, the API on a free loopback
//! port), driven through its public surfaces only — log files, syslog
//! sockets, the HTTP API, signals, and the operator commands
//! (`status --json`, `decisions`, `alerts`, `check --config`).
//!
//! The fail2ban `sshd` filter is read from `/etc/fail2ban/filter.d` (or
//! `$STADTWACHE_F2B_FILTERS`); without it the tests say so and return.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Deadline for anything the daemon does asynchronously (debug builds on a
/// loaded 2-core machine are slow; a pass is usually far quicker).
const PATIENCE: Duration = Duration::from_secs(60);

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stadtwache"))
}

fn filter_dir() -> Option<PathBuf> {
    let dir =
        PathBuf::from(std::env::var("STADTWACHE_F2B_FILTERS").unwrap_or_else(|_| "/etc/fail2ban/filter.d".into()));
    if dir.join("sshd.conf").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: no fail2ban sshd filter in {} (set STADTWACHE_F2B_FILTERS)", dir.display());
        None
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("sw-daemon-{tag}-{}", std::process::id()));
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
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A port free for TCP (and, when `udp`, also for UDP) on 127.0.0.1.
///
/// Not one the kernel hands out by itself (`bind(":0")`, or the local port
/// of an outgoing connection): between this check and the daemon's bind,
/// the tests running in parallel open many connections (every HTTP probe),
/// and one of them could take an ephemeral port as its local port — the
/// daemon would then fail to start. So the port is picked below the
/// ephemeral range, by a counter shared by the tests of this process and
/// offset by its pid (another test process on the machine picks elsewhere).
fn free_port(udp: bool) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    // [10000, low): clear of the well-known ports and of the ephemeral range.
    let (base, span) = (10_000, low.saturating_sub(10_000).max(1));
    let start = std::process::id().wrapping_mul(97);
    for _ in 0..1000 {
        let port = (base + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        let tcp_ok = TcpListener::bind(("127.0.0.1", port)).is_ok();
        if tcp_ok && (!udp || UdpSocket::bind(("127.0.0.1", port)).is_ok()) {
            return port;
        }
    }
    panic!("no free port below {low}");
}

/// Poll `f` until it gives `Some`, at most [`PATIENCE`].
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {PATIENCE:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The current time as a dated syslog prefix (`Nov 27 10:00:00`, UTC: the
/// daemon runs with `TZ=UTC` and `timezone = "UTC"`).
fn syslog_now() -> String {
    jiff::Timestamp::now().strftime("%b %e %H:%M:%S").to_string()
}

fn sshd_line(addr: &str, n: usize) -> String {
    format!("{} host sshd[{}]: Invalid user u{n} from {addr} port {}\n", syslog_now(), 1000 + n, 40000 + n)
}

fn append(path: &Path, data: &[u8]) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(data).unwrap();
}

/// Replace a file atomically (the daemon may read it at any moment).
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

// ------------------------------------------------------------------ HTTP

struct Resp {
    status: u16,
    headers: String,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// One HTTP/1.1 request (`Connection: close`); `None` when the connection fails.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Option<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.into() };
    Some(Resp { status, headers: head.to_string(), body })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `/v1/auth` for a client address (behind the loopback proxy, which is trusted).
fn auth(port: u16, addr: &str) -> u16 {
    http(port, "GET", "/v1/auth", &[("X-Real-IP", addr)], b"").expect("API answers").status
}

/// A counter of `/metrics` (the sum over series whose labels contain every `labels` part).
fn metric(port: u16, name: &str, labels: &[&str]) -> f64 {
    let r = http(port, "GET", "/metrics", &[], b"").expect("metrics");
    assert_eq!(r.status, 200);
    r.body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ------------------------------------------------------------------ the daemon

struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    config: PathBuf,
    port: u16,
    /// Operator commands find the store by `--data-dir`, not `--config`
    /// (for a config file that is broken on purpose: they refuse to read it).
    by_data_dir: bool,
}

impl Daemon {
    fn start(dir: &TempDir, config: &Path, port: u16) -> Daemon {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.path("daemon.log")).unwrap();
        let child = bin()
            .args(["run", "--config"])
            .arg(config)
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the daemon");
        let mut d =
            Daemon { child: Some(child), dir: dir.0.clone(), config: config.to_path_buf(), port, by_data_dir: false };
        d.wait_ready();
        d
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// `/health` answers and `status.json` is written by this process.
    fn wait_ready(&mut self) {
        let pid = self.pid();
        wait_for("the daemon to be ready", || {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the daemon exited early ({st}):\n{}", self.log());
            }
            let up = http(self.port, "GET", "/health", &[], b"").is_some_and(|r| r.status == 200);
            let st = self.status_opt()?;
            (up && st["pid"] == pid && st["running"] == true).then_some(())
        });
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.pid().to_string()]).status().expect("kill").success();
        assert!(ok, "kill {sig} failed");
    }

    /// SIGTERM and wait for the exit (at most [`PATIENCE`]).
    fn stop(&mut self) -> (ExitStatus, Duration) {
        self.signal("-TERM");
        let t = Instant::now();
        let mut child = self.child.take().unwrap();
        let st = wait_for("the daemon to exit", || child.try_wait().unwrap());
        (st, t.elapsed())
    }

    fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = bin();
        cmd.args(args).env("TZ", "UTC").env_remove("STADTWACHE_CONFIG");
        if self.by_data_dir {
            cmd.arg("--data-dir").arg(self.dir.join("data"));
        } else {
            cmd.arg("--config").arg(&self.config);
        }
        let out = cmd.output().expect("run cli");
        if !out.status.success() {
            eprintln!(
                "stadtwache {args:?}: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out
    }

    fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(out.status.success(), "stadtwache {args:?} failed");
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    /// `status --json`, when the daemon has written one and it is alive.
    /// By data directory, not config: the config file may be broken on
    /// purpose (`status --config BROKEN` refuses to run).
    fn status_opt(&self) -> Option<Value> {
        let out = bin()
            .args(["status", "--json", "--data-dir"])
            .arg(self.dir.join("data"))
            .env_remove("STADTWACHE_CONFIG")
            .output()
            .expect("run status");
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    fn status(&self) -> Value {
        self.status_opt().expect("status --json")
    }

    /// Addresses of the active decisions (`decisions list --json`).
    fn decisions(&self) -> Vec<String> {
        let v = self.cli_json(&["decisions", "list", "--json"]);
        v.as_array().unwrap().iter().filter_map(|d| d["key"]["Ip"].as_str().map(String::from)).collect()
    }

    fn wait_decision(&self, addr: &str) {
        wait_for(&format!("a decision on {addr}"), || self.decisions().iter().any(|a| a == addr).then_some(()));
    }

    /// Alerts about `addr` (`alerts list --json`).
    fn alerts(&self, addr: &str) -> usize {
        let v = self.cli_json(&["alerts", "list", "--ip", addr, "--limit", "1000", "--json"]);
        v.as_array().unwrap().len()
    }

    /// The source named `name` in a fresh `status --json` once `pred` holds.
    fn wait_source(&self, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        wait_for(&format!("source {name}: {what}"), || {
            let st = self.status_opt()?;
            let s = st["sources"].as_array()?.iter().find(|s| s["name"] == name)?.clone();
            pred(&s).then_some(s)
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- daemon log ({})\n{}", self.dir.display(), self.log());
        }
    }
}

const TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A config: `[daemon]`, `[policy]`, `[rules]`, `[nftables]` (off), `[api]`, then `sources`.
fn config(dir: &TempDir, filters: &Path, port: u16, sources: &str) -> String {
    std::fs::write(dir.path("admin.token"), TOKEN).unwrap();
    format!(
        r#"[daemon]
data_dir = "{data}"
commit_interval = "20ms"
status_interval = "100ms"
timezone = "UTC"

[policy]
maxretry = 3
findtime = "10m"
bantime = "1h"

[rules]
fail2ban_filter_dir = "{filters}"

[nftables]
enabled = false

[api]
listen = "127.0.0.1:{port}"
admin_token_file = "{token}"

{sources}"#,
        data = dir.path("data").display(),
        filters = filters.display(),
        token = dir.path("admin.token").display(),
    )
}

fn file_source(name: &str, path: &Path) -> String {
    format!(
        "[[source]]\nname = \"{name}\"\ntype = \"file\"\npaths = [\"{}\"]\nfilters = [\"sshd\"]\n\n",
        path.display()
    )
}

// ------------------------------------------------------------------ 1. file source end to end

#[test]
fn file_source_bans_and_api_follows_the_store() {
    let Some(filters) = filter_dir() else { return };
    let dir = TempDir::new("file");
    let port = free_port(false);
    let log = dir.path("auth.log");
    std::fs::write(&log, "").unwrap();
    let cfg = dir.path("stadtwache.toml");
    std::fs::write(&cfg, config(&dir, &filters, port, &file_source("auth", &log))).unwrap();
    let d = Daemon::start(&dir, &cfg, port);

    assert_eq!(auth(port, "192.0.2.9"), 204, "nobody is banned yet");
    let lines: String = (0..3).map(|i| sshd_line("192.0.2.9", i)).collect();
    append(&log, lines.as_bytes());
    d.wait_decision("192.0.2.9");
    wait_for("the API to deny 192.0.2.9", || (auth(port, "192.0.2.9") == 403).then_some(()));
    let r = http(port, "GET", "/v1/auth", &[("X-Real-IP", "192.0.2.9")], b"").unwrap();
    assert!(r.json()["message"].as_str().unwrap().contains("denied"), "{}", r.body);
    assert_eq!(auth(port, "192.0.2.10"), 204, "another address is allowed");
    assert_eq!(d.alerts("192.0.2.9"), 1);
    // status.json is rewritten every status_interval: the decision can be in
    // the store before a status that counts its hits is written. Wait for
    // that status (hits and bans are counted together, on the engine's
    // thread), then check it exactly.
    let st = wait_for("a status with the 3 hits", || {
        let st = d.status_opt()?;
        let hits: u64 =
            st["rules"].as_array()?.iter().filter(|r| r["source"] == "auth").filter_map(|r| r["hits"].as_u64()).sum();
        (hits >= 3).then_some(st)
    });
    let rule = st["rules"].as_array().unwrap().iter().find(|r| r["source"] == "auth" && r["hits"] == 3);
    assert!(rule.is_some_and(|r| r["bans"] == 1), "status rules: {}", st["rules"]);

    // Operator commands write the store; the API follows within a second.
    let out = d.cli(&["decisions", "add", "198.51.100.20", "--duration", "1h", "--reason", "test"]);
    assert!(out.status.success());
    let took = api_follows(port, "198.51.100.20", 403);
    assert!(took <= Duration::from_secs(1), "decisions add reached the API after {took:?}");
    assert!(d.decisions().iter().any(|a| a == "198.51.100.20"));

    let out = d.cli(&["decisions", "delete", "198.51.100.20"]);
    assert!(out.status.success());
    let took = api_follows(port, "198.51.100.20", 204);
    assert!(took <= Duration::from_secs(1), "decisions delete reached the API after {took:?}");
    assert!(!d.decisions().iter().any(|a| a == "198.51.100.20"));
    assert_eq!(auth(port, "192.0.2.9"), 403, "the rule's ban is untouched");
}

/// How long after the call the API still gave the old answer for `addr`: polls
/// `/v1/auth` until it answers `want`, and returns when the last probe that
/// got the old answer was sent (0 when the first probe already had `want`).
///
/// Not the time until the new answer was seen: that would also count the
/// probes' own round trips and every stall of this test process (the tests
/// run in parallel with their daemons and CLI calls on a small machine),
/// against the daemon. Up to this point the API was seen answering the old
/// way, so this much the daemon surely took.
fn api_follows(port: u16, addr: &str, want: u16) -> Duration {
    let t = Instant::now();
    let mut old_until = Duration::ZERO;
    wait_for(&format!("the API to answer {want} for {addr}"), || {
        let sent = t.elapsed();
        if auth(port, addr) == want {
            return Some(());
        }
        old_until = sent;
        None
    });
    eprintln!(
        "{addr}: the API answered {want} after {:?}; the old answer was last seen {old_until:?} after",
        t.elapsed()
    );
    old_until
}

// ------------------------------------------------------------------ 2. bad input

fn syslog_msg(addr: &str, n: usize) -> String {
    format!("<38>{} host sshd[{}]: Invalid user u{n} from {addr} port {}", syslog_now(), 2000 + n, 50000 + n)
}

#[test]
fn bad_input_is_counted_and_the_daemon_keeps_running() {
    let Some(filters) = filter_dir() else { return };
    let dir = TempDir::new("bad");
    let port = free_port(false);
    let sp = free_port(true);
    let log = dir.path("f.log");
    std::fs::write(&log, "").unwrap();
    let sources = format!(
        "{}[[source]]\nname = \"net\"\ntype = \"syslog\"\nfilters = [\"sshd\"]\n\n[source.syslog]\n\
         udp = [\"127.0.0.1:{sp}\"]\ntcp = [\"127.0.0.1:{sp}\"]\nmax_message = 2048\noversize = \"drop\"\n\
         timezone = \"UTC\"\n",
        file_source("f", &log)
    );
    let cfg = dir.path("stadtwache.toml");
    std::fs::write(&cfg, config(&dir, &filters, port, &sources)).unwrap();
    let d = Daemon::start(&dir, &cfg, port);

    // --- the HTTP API: every bad request gets a 4xx with a JSON body.
    let bearer = format!("Bearer {TOKEN}");
    let admin = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    let huge = "x".repeat(32 * 1024);
    /// method, path, headers, body, expected status
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a [u8], u16);
    let cases: Vec<Case> = vec![
        ("POST", "/v1/admin/decisions", admin.to_vec(), b"{not json", 400),
        ("POST", "/v1/admin/decisions", admin.to_vec(), b"{\"value\": 12}", 400),
        ("POST", "/v1/admin/decisions", admin.to_vec(), b"\xff\xfe\x00garbage", 400),
        ("POST", "/v1/admin/decisions", vec![("Authorization", "Bearer wrong")], b"{}", 401),
        ("GET", "/no/such/path", vec![], b"", 404),
        ("GET", "/v1/auth", vec![("X-Real-IP", "not-an-address")], b"", 400),
        ("GET", "/v1/decisions", vec![("X-Api-Key", "no-such-key")], b"", 403),
        ("GET", "/v1/decisions", vec![], b"", 403),
        ("GET", "/health", vec![("X-Huge", huge.as_str())], b"", 431),
    ];
    for (method, path, headers, body, want) in &cases {
        let r = http(port, method, path, headers, body).unwrap_or_else(|| panic!("{method} {path}: no answer"));
        assert_eq!(r.status, *want, "{method} {path}: {}\n{}", r.headers, r.body);
        assert!(r.json()["message"].is_string(), "{method} {path}: JSON error body expected: {}", r.body);
    }
    // Raw garbage on the socket: whatever the answer, the daemon keeps serving.
    for garbage in
        [&b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"[..], b"GET\r\n\r\n", b"\x00\xff\r\n"]
    {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(garbage).unwrap();
        let _ = s.shutdown(Shutdown::Write);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    assert_eq!(http(port, "GET", "/health", &[], b"").map(|r| r.status), Some(200), "the API still answers");
    let m = |ep: &str, code: &str| {
        metric(port, "stadtwache_api_requests_total", &[&format!("endpoint=\"{ep}\""), &format!("status=\"{code}\"")])
    };
    assert_eq!(m("admin_decisions", "400"), 3.0);
    assert_eq!(m("admin_decisions", "401"), 1.0);
    assert_eq!(m("other", "404"), 1.0);
    assert_eq!(m("auth", "400"), 1.0);
    assert_eq!(m("decisions", "403"), 2.0);
    assert_eq!(m("health", "431"), 1.0);

    // --- syslog: garbage first, then valid messages over both transports.
    // The source binds its sockets on a thread of its own, after the daemon
    // is up: a datagram sent before would be lost, a connect refused. Its
    // counters are in the status only once it has bound them.
    d.wait_source("net", "its sockets bound", |s| s["dropped"].get("malformed").is_some());
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = ("127.0.0.1", sp);
    udp.send_to(b"garbage without a priority", to).unwrap();
    udp.send_to(b"<999>priority out of range", to).unwrap();
    udp.send_to(&[b'<', b'3', b'8', b'>'].into_iter().chain(std::iter::repeat_n(b'A', 4096)).collect::<Vec<_>>(), to)
        .unwrap();
    let mut bad_utf8 = format!("<38>{} host sshd[9]: Invalid user ", syslog_now()).into_bytes();
    bad_utf8.extend(b"\xff\xfe\xc3\x28 from 192.0.2.52 port 9");
    udp.send_to(&bad_utf8, to).unwrap();
    let mut tcp = TcpStream::connect(to).unwrap();
    tcp.write_all(b"\x00\x01\x02 garbage \xff\xfe\n\x16\x03\x01\x02\x00 tls hello?\n").unwrap();
    tcp.write_all(&[b'B'; 5000]).unwrap();
    tcp.write_all(b"\n").unwrap();
    tcp.shutdown(Shutdown::Both).unwrap();
    drop(tcp);
    for i in 0..3 {
        udp.send_to(syslog_msg("192.0.2.50", i).as_bytes(), to).unwrap();
    }
    let mut tcp = TcpStream::connect(to).unwrap();
    for i in 0..3 {
        tcp.write_all(format!("{}\n", syslog_msg("192.0.2.51", i)).as_bytes()).unwrap();
    }
    tcp.flush().unwrap();
    d.wait_decision("192.0.2.50");
    d.wait_decision("192.0.2.51");
    drop(tcp);
    // Each transport counts on its own thread: wait until every count has
    // reached its value (then check them exactly: none beyond it either).
    let s = d.wait_source("net", "drops counted", |s| {
        let at_least = |k: &str, n: u64| s["dropped"][k].as_u64().is_some_and(|v| v >= n);
        at_least("oversize", 2) && at_least("malformed", 5) && at_least("invalid_utf8_replaced", 2)
    });
    let dropped = &s["dropped"];
    assert_eq!(dropped["oversize"], 2, "one UDP datagram, one TCP frame over max_message: {s}");
    assert_eq!(dropped["malformed"], 5, "2 UDP datagrams, 3 TCP frames without a valid PRI: {s}");
    assert_eq!(dropped["invalid_utf8_replaced"], 2, "{s}");
    assert_eq!(dropped["not_allowed"], 0, "{s}");
    assert!(s["running"] == true, "{s}");
    // The same counts in /metrics.
    let dropped_metric = |source: &str, reason: &str| {
        metric(port, "stadtwache_source_dropped", &[&format!("source=\"{source}\""), &format!("reason=\"{reason}\"")])
    };
    wait_for("the drops in /metrics", || (dropped_metric("net", "malformed") == 5.0).then_some(()));
    assert_eq!(dropped_metric("net", "oversize"), 2.0);
    assert_eq!(dropped_metric("net", "invalid_utf8_replaced"), 2.0);

    // --- a file source: an over-long line and invalid UTF-8 are counted, the rest processed.
    let mut data = Vec::new();
    data.extend(std::iter::repeat_n(b'A', 1 << 20));
    data.push(b'\n');
    data.extend(format!("{} host sshd[7]: Invalid user \u{fffd}", syslog_now()).as_bytes());
    data.extend(b"\xff\xfe from 192.0.2.61 port 7\n");
    data.extend(b"\x00\x01\x02\x03 binary \xc3\x28 junk\n");
    for i in 0..3 {
        data.extend(sshd_line("192.0.2.60", i).as_bytes());
    }
    append(&log, &data);
    d.wait_decision("192.0.2.60");
    let s = d.wait_source("f", "all lines processed", |s| {
        let at_least = |k: &str, n: u64| s["dropped"][k].as_u64().is_some_and(|v| v >= n);
        s["processed"] == 5 && s["lag_bytes"] == 0 && at_least("oversize", 1) && at_least("invalid_utf8_replaced", 2)
    });
    assert_eq!(s["dropped"]["oversize"], 1, "{s}");
    assert_eq!(s["dropped"]["invalid_utf8_replaced"], 2, "{s}");
    assert!(!d.decisions().iter().any(|a| a == "192.0.2.61"), "one failure is no ban");
    wait_for("the file drops in /metrics", || (dropped_metric("f", "oversize") == 1.0).then_some(()));

    // Still alive and answering after all of it.
    assert_eq!(auth(port, "192.0.2.50"), 403);
    assert_eq!(auth(port, "192.0.2.60"), 403);
    assert_eq!(http(port, "GET", "/health", &[], b"").map(|r| r.status), Some(200));
}

// ------------------------------------------------------------------ 3. reload

#[test]
fn sighup_reloads_a_good_config_and_keeps_the_old_one_on_errors() {
    let Some(filters) = filter_dir() else { return };
    let dir = TempDir::new("reload");
    let port = free_port(false);
    let (a, b) = (dir.path("a.log"), dir.path("b.log"));
    std::fs::write(&a, "").unwrap();
    std::fs::write(&b, "").unwrap();
    let cfg = dir.path("stadtwache.toml");
    let one = config(&dir, &filters, port, &file_source("a", &a));
    std::fs::write(&cfg, &one).unwrap();
    let mut d = Daemon::start(&dir, &cfg, port);
    d.by_data_dir = true;
    let names = |st: &Value| -> Vec<String> {
        st["sources"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names(&d.status()), ["a"]);

    // A valid new config: a second source.
    let two = format!("{one}{}", file_source("b", &b));
    write_atomic(&cfg, &two);
    d.signal("-HUP");
    let st = wait_for("the reload", || {
        let st = d.status_opt()?;
        (st["reload"]["attempts"] == 1).then_some(st)
    });
    assert_eq!(st["reload"]["failures"], 0, "{}", st["reload"]);
    assert!(st["reload"]["last_error"].is_null(), "{}", st["reload"]);
    let st = wait_for("source b in status", || {
        let st = d.status_opt()?;
        (names(&st) == ["a", "b"]).then_some(st)
    });
    assert!(st["sources"][1]["running"] == true, "{st}");
    let lines: String = (0..3).map(|i| sshd_line("192.0.2.30", i)).collect();
    append(&b, lines.as_bytes());
    d.wait_decision("192.0.2.30");

    // A syntax error: the old config keeps running.
    let broken = format!("{two}\n[policy\nmaxretry = 1\n");
    let broken_line = two.lines().count() + 2;
    write_atomic(&cfg, &broken);
    d.signal("-HUP");
    let st = wait_for("the failed reload", || {
        let st = d.status_opt()?;
        (st["reload"]["attempts"] == 2).then_some(st)
    });
    assert_eq!(st["reload"]["failures"], 1, "{}", st["reload"]);
    let err = st["reload"]["last_error"].as_str().expect("last_error").to_string();
    assert!(err.contains("K002"), "{err}");
    assert!(err.contains(&format!("{}:{broken_line}:", cfg.display())), "line {broken_line} expected: {err}");
    assert_eq!(names(&st), ["a", "b"]);
    assert_eq!(http(port, "GET", "/health", &[], b"").map(|r| r.status), Some(200));
    assert_eq!(auth(port, "192.0.2.30"), 403);

    // An unknown key: refused too, with its line.
    let unknown = two.replace("maxretry = 3\n", "maxretry = 3\nmaxretries = 1\n");
    let unknown_line = unknown.lines().position(|l| l.starts_with("maxretries")).unwrap() + 1;
    write_atomic(&cfg, &unknown);
    d.signal("-HUP");
    let st = wait_for("the second failed reload", || {
        let st = d.status_opt()?;
        (st["reload"]["attempts"] == 3).then_some(st)
    });
    assert_eq!(st["reload"]["failures"], 2, "{}", st["reload"]);
    let err = st["reload"]["last_error"].as_str().expect("last_error").to_string();
    assert!(err.contains("K003") && err.contains("maxretries"), "{err}");
    assert!(err.contains(&format!("{}:{unknown_line}:", cfg.display())), "line {unknown_line} expected: {err}");

    // The old config (maxretry 3, both sources) still detects: two failures
    // of .31 are no ban. Seeing "2 lines processed" would not show that: the
    // decisions of processed lines are committed up to commit_interval later.
    // So three failures of a sentinel (.32) follow in the same file: the
    // daemon reads a file in order and commits its effects in order, so once
    // the sentinel is banned, a ban of .31 (maxretry 1) would be in the store.
    let mut lines: String = (0..2).map(|i| sshd_line("192.0.2.31", i)).collect();
    lines.extend((0..3).map(|i| sshd_line("192.0.2.32", 10 + i)));
    append(&a, lines.as_bytes());
    d.wait_decision("192.0.2.32");
    assert!(!d.decisions().iter().any(|x| x == "192.0.2.31"), "maxretry 1 must not have been applied");
    assert_eq!(d.alerts("192.0.2.31"), 0, "maxretry 1 must not have been applied");
    append(&a, sshd_line("192.0.2.31", 2).as_bytes());
    d.wait_decision("192.0.2.31");
    assert_eq!(http(port, "GET", "/health", &[], b"").map(|r| r.status), Some(200));
}

// ------------------------------------------------------------------ 4. stop and restart

#[test]
fn sigterm_stops_cleanly_and_a_restart_resumes_at_the_checkpoint() {
    let Some(filters) = filter_dir() else { return };
    let dir = TempDir::new("restart");
    let port = free_port(false);
    let log = dir.path("auth.log");
    std::fs::write(&log, "").unwrap();
    let cfg = dir.path("stadtwache.toml");
    std::fs::write(&cfg, config(&dir, &filters, port, &file_source("auth", &log))).unwrap();
    let mut d = Daemon::start(&dir, &cfg, port);

    let mut n = 0;
    let mut lines = |addr: &str, k: usize| -> String {
        (0..k)
            .map(|_| {
                n += 1;
                sshd_line(addr, n)
            })
            .collect()
    };
    append(&log, lines("192.0.2.70", 3).as_bytes());
    append(&log, lines("192.0.2.72", 2).as_bytes());
    d.wait_decision("192.0.2.70");
    d.wait_source("auth", "5 lines processed", |s| s["processed"] == 5 && s["lag_bytes"] == 0);

    let (exit, took) = d.stop();
    assert!(exit.success(), "exit status {exit}:\n{}", d.log());
    assert!(took < Duration::from_secs(15), "SIGTERM took {took:?}");
    assert!(d.log().contains("stopping"), "{}", d.log());

    // While it is down: a new offender, and the third failure of .72.
    append(&log, lines("192.0.2.71", 3).as_bytes());
    append(&log, lines("192.0.2.72", 1).as_bytes());
    let d = Daemon::start(&dir, &cfg, port);
    d.wait_decision("192.0.2.71");
    d.wait_decision("192.0.2.72");
    let s = d.wait_source("auth", "caught up", |s| s["lag_bytes"] == 0 && s["processed"].as_u64() >= Some(4));
    assert_eq!(s["processed"], 4, "only the lines written while it was down are read again: {s}");
    let st = d.status();
    let hits: u64 = st["rules"].as_array().unwrap().iter().filter_map(|r| r["hits"].as_u64()).sum();
    let alerts: u64 = st["rules"].as_array().unwrap().iter().filter_map(|r| r["alerts"].as_u64()).sum();
    assert_eq!((hits, alerts), (4, 2), "this run's hits and alerts: {}", st["rules"]);
    for addr in ["192.0.2.70", "192.0.2.71", "192.0.2.72"] {
        assert_eq!(d.alerts(addr), 1, "alerts on {addr}");
    }
    assert_eq!(d.decisions().len(), 3, "{:?}", d.decisions());
}

// ------------------------------------------------------------------ 5. check --config

#[test]
fn check_config_lists_every_problem_with_code_and_line() {
    let dir = TempDir::new("check");
    let bad = dir.path("bad.toml");
    std::fs::write(
        &bad,
        "\
[daemon]
data_dir = \"/tmp/x\"
bogus = 1

[policy]
bantime = \"ten minutes please\"

[[source]]
name = \"a\"
type = \"file\"

[[source]]
name = \"b\"
type = \"nonsense\"

[whatever]
x = 1
",
    )
    .unwrap();
    let out = bin().args(["check", "--config"]).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let at = |code: &str, line: u32| format!("[{code}] {}:{line}:", bad.display());
    for (code, line) in [("K003", 3), ("K005", 5), ("K011", 8), ("K003", 14), ("K004", 16)] {
        assert!(err.contains(&at(code, line)), "{code} at line {line} expected in:\n{err}");
    }
    // Every error is printed, and the summary counts them all.
    let n = err.lines().filter(|l| l.starts_with("error[")).count();
    assert!(n >= 5, "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("{n} error(s)")), "{stdout}");

    let good = dir.path("good.toml");
    let port = free_port(false);
    std::fs::write(
        &good,
        format!(
            "[daemon]\ndata_dir = \"{}\"\n\n[api]\nlisten = \"127.0.0.1:{port}\"\n\n\
             [[source]]\nname = \"in\"\ntype = \"stdin\"\nservices = [\"sshd\"]\n",
            dir.path("data").display()
        ),
    )
    .unwrap();
    let out = bin().args(["check", "--config"]).arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 source(s))"));
}
