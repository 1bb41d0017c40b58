//! The REAL CrowdSec firewall bouncer (Debian's `crowdsec-firewall-bouncer`)
//! against our LAPI endpoints, inside a network namespace created for the
//! test: it must build its nftables sets from our stream.
//!
//! Needs root, `ip` and the bouncer package. Without them it prints
//! `SKIPPED: <reason>` — and fails when `STADTWACHE_REQUIRE_NETNS=1` (CI).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stadtwache_api::{ApiConfig, ApiServer, ApiState, DecisionIndex, SharedStore, system_now};
use stadtwache_core::{Key, Timestamp};
use stadtwache_metrics::Registry;
use stadtwache_store::{DecisionRef, NewDecision, Origin, SqliteStore, Store};

const BOUNCER: &str = "crowdsec-firewall-bouncer";
const ADMIN: &str = "bouncer-test-admin-token";

/// `Some(reason)` when the test cannot run here.
fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces and nftables need CAP_NET_ADMIN)".into());
    }
    for tool in ["ip", "nft", BOUNCER] {
        let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            return Some(format!("`{tool}` not found in PATH"));
        }
    }
    None
}

fn skip_or_fail(reason: &str) {
    println!("SKIPPED: {reason}");
    if std::env::var("STADTWACHE_REQUIRE_NETNS").as_deref() == Ok("1") {
        panic!("STADTWACHE_REQUIRE_NETNS=1 but the bouncer test cannot run: {reason}");
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace of our own, deleted on drop.
struct NetNs {
    name: String,
}

impl NetNs {
    fn new() -> NetNs {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("swapi-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        // (a leftover of a killed earlier run whose pid was the same: removed first)
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = NetNs { name };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        ns
    }

    /// Runs `f` on a thread that entered the namespace (sockets it creates belong there).
    fn within<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = PathBuf::from("/var/run/netns").join(&self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            // SAFETY: a valid namespace fd; setns affects only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }

    fn nft_set(&self, family: &str, table: &str, set: &str) -> String {
        let out =
            Command::new("ip").args(["netns", "exec", &self.name, "nft", "list", "set", family, table, set]).output();
        match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            _ => String::new(),
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// The bouncer process, killed (by its pid) on drop.
struct Bouncer {
    child: Child,
    log: PathBuf,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_bouncer(ns: &NetNs, dir: &Path, api: SocketAddr, key: &str) -> Bouncer {
    let cfg = format!(
        "mode: nftables
pid_dir: {dir}/
update_frequency: 1s
daemonize: false
log_mode: file
log_dir: {dir}/
log_level: debug
api_url: http://{api}/
api_key: {key}
insecure_skip_verify: false
disable_ipv6: false
deny_action: DROP
deny_log: false
supported_decisions_types:
  - ban
blacklists_ipv4: crowdsec-blacklists
blacklists_ipv6: crowdsec6-blacklists
nftables:
  ipv4:
    enabled: true
    set-only: false
    table: crowdsec
    chain: crowdsec-chain
  ipv6:
    enabled: true
    set-only: false
    table: crowdsec6
    chain: crowdsec6-chain
prometheus:
  enabled: false
  listen_addr: 127.0.0.1
  listen_port: 60601
",
        dir = dir.display()
    );
    let path = dir.join("bouncer.yaml");
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, BOUNCER, "-c"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Bouncer { child, log: dir.join("crowdsec-firewall-bouncer.log") }
}

/// One HTTP request from inside the namespace.
fn http(ns: &NetNs, addr: SocketAddr, req: String) -> String {
    ns.within(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn decision(value: &str, secs: i64) -> NewDecision {
    let now = system_now();
    let mut d = NewDecision::new(
        Key::Ip(value.parse().unwrap()),
        None,
        Origin::Rule,
        now,
        Some(Timestamp(now.0 + secs * 1_000_000)),
    );
    d.rule = Some("sshd".into());
    d
}

#[test]
fn real_crowdsec_firewall_bouncer_follows_our_stream_in_a_netns() {
    if let Some(reason) = missing_prerequisite() {
        skip_or_fail(&reason);
        return;
    }
    let ns = NetNs::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut writer = SqliteStore::open(&data).unwrap();
    let key = writer.add_bouncer("crowdsec-firewall-bouncer", system_now()).unwrap();
    // Decided before the bouncer starts: must arrive with its startup pull.
    writer.insert_decision(&decision("198.51.100.7", 3600)).unwrap();

    let store: SharedStore = Arc::new(Mutex::new(SqliteStore::open(&data).unwrap()));
    let cfg = ApiConfig {
        admin_token: Some(ADMIN.into()),
        refresh_interval: stadtwache_core::Duration(200_000),
        ..ApiConfig::default()
    };
    let state = ApiState::new(cfg, store, Arc::new(DecisionIndex::new()), Arc::new(Registry::new())).unwrap();
    let listener = ns.within(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let server = ApiServer::spawn(state, listener).unwrap();
    let api = server.local_addr();
    println!("API on {api} inside netns {}", ns.name);

    let bouncer = start_bouncer(&ns, dir.path(), api, &key);
    let v4 = || ns.nft_set("ip", "crowdsec", "crowdsec-blacklists");
    let v6 = || ns.nft_set("ip6", "crowdsec6", "crowdsec6-blacklists");
    let log = || std::fs::read_to_string(&bouncer.log).unwrap_or_default();

    // (60 s: this includes the start of the bouncer, a process of its own)
    wait_for("the startup decision in the v4 set", Duration::from_secs(60), || v4().contains("198.51.100.7"));
    println!("--- after startup pull ---\n{}", v4());

    // Added while it runs: v4 through the admin API, v6 through the store.
    let body = r#"{"value": "203.0.113.66", "duration": "2h", "reason": "bouncer test"}"#;
    let resp = http(
        &ns,
        api,
        format!(
            "POST /v1/admin/decisions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    let v6_id = writer.insert_decision(&decision("2001:db8::66", 3600)).unwrap();
    wait_for("the admin v4 decision", Duration::from_secs(20), || v4().contains("203.0.113.66"));
    wait_for("the v6 decision", Duration::from_secs(20), || v6().contains("2001:db8::66"));
    let set4 = v4();
    let set6 = v6();
    println!("--- after adding ---\n{set4}{set6}");
    assert!(set4.contains("198.51.100.7") && set4.contains("203.0.113.66"), "{set4}");
    assert!(set4.contains("timeout 2h") || set4.contains("timeout 1h59m"), "duration carried over: {set4}");

    // Deleted: v4 through the admin API (by value), v6 in the store.
    let resp = http(
        &ns,
        api,
        "DELETE /v1/admin/decisions?value=203.0.113.66 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bouncer-test-admin-token\r\nConnection: close\r\n\r\n".into(),
    );
    assert!(resp.starts_with("HTTP/1.1 200") && resp.ends_with(r#"{"deleted":1}"#), "{resp}");
    writer.delete_decisions(&DecisionRef::Id(v6_id), system_now()).unwrap();
    wait_for("the admin v4 decision to go", Duration::from_secs(20), || !v4().contains("203.0.113.66"));
    wait_for("the v6 decision to go", Duration::from_secs(20), || !v6().contains("2001:db8::66"));
    let set4 = v4();
    let set6 = v6();
    println!("--- after deleting ---\n{set4}{set6}");
    assert!(set4.contains("198.51.100.7"), "the other ban stays: {set4}");

    // A network ban (scope "Range"). This bouncer version's nftables sets have
    // no `interval` flag: it enters the network address only. Shown, not hidden.
    let mut net = decision("192.0.2.0", 600);
    net.prefix = Some(24);
    writer.insert_decision(&net).unwrap();
    wait_for("the range decision", Duration::from_secs(20), || v4().contains("192.0.2.0"));
    let set4 = v4();
    println!("--- after a 192.0.2.0/24 range ban (bouncer 0.0.25 limitation: no /24 in the set) ---\n{set4}");

    // What the bouncer asked for (it has no other start-up call than the stream).
    let log = log();
    let paths: std::collections::BTreeSet<&str> =
        log.lines().filter_map(|l| l.split("req-api: GET ").nth(1)).map(|r| r.split('"').next().unwrap_or(r)).collect();
    println!("--- bouncer requests ---\n{paths:#?}");
    assert!(!log.contains("level=error"), "bouncer logged errors:\n{log}");
    drop(bouncer);
    server.shutdown().unwrap();
}
