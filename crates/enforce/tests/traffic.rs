//! Real traffic: a banned address cannot open TCP connections any more,
//! everybody else can, and after the unban (or the timeout) it can again.
//!
//! Three namespaces of our own, linked by veth pairs; `srv` runs the
//! enforcer and routes between the other two:
//!
//! ```text
//!  atk 10.99.1.2 ─── 10.99.1.1 srv 10.99.2.1 ─── 10.99.2.3 cli
//!      fd00:99:1::2     fd00:99:1::1   fd00:99:2::1     fd00:99:2::3
//! ```
//!
//! Listeners and clients are threads of this test moved into a namespace
//! with `setns(2)` (a thread's network namespace is its own).

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Netns, netns_or_skip, run_ok};
use stadtwache_enforce::{Ban, Enforcer, NftEnforcer, Target};

unsafe extern "C" {
    fn setns(fd: i32, nstype: i32) -> i32;
}

const CLONE_NEWNET: i32 = 0x4000_0000;

/// Moves the calling thread into network namespace `ns`.
fn enter(ns: &str) -> std::io::Result<()> {
    let f = File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: setns with a valid namespace fd only changes this thread's namespace.
    if unsafe { setns(f.as_raw_fd(), CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A dual-stack TCP listener on port 8080 in `ns` that greets each connection with "hi".
struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    fn start(ns: &Netns) -> Listener {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let name = ns.name.clone();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let bound = enter(&name).and_then(|()| TcpListener::bind("[::]:8080"));
            let l = match bound {
                Ok(l) => l,
                Err(e) => return tx.send(Err(e.to_string())).unwrap(),
            };
            l.set_nonblocking(true).unwrap();
            tx.send(Ok(())).unwrap();
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(b"hi");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        rx.recv().unwrap().unwrap_or_else(|e| panic!("listener in {}: {e}", ns.name));
        Listener { stop, thread: Some(thread) }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// True when a TCP connection from `ns` to `to` is set up within 1 s and then
/// gets the greeting. (A dropped SYN can only time out, so the connect gets
/// 1 s; a set-up connection is answered by the listener thread, which a
/// loaded machine may not run at once, so the greeting gets 10 s.)
fn connects(ns: &Netns, to: &str) -> bool {
    let to: SocketAddr = to.parse().unwrap();
    let name = ns.name.clone();
    std::thread::spawn(move || {
        enter(&name).unwrap();
        let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(1)) else { return false };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).is_ok() && &buf == b"hi"
    })
    .join()
    .unwrap()
}

fn sysctl(ns: &Netns, kv: &str) {
    run_ok("ip", &["netns", "exec", &ns.name, "sysctl", "-qw", kv]).unwrap();
}

/// The three namespaces, linked and addressed; `None` when skipped.
fn topology() -> Option<(Netns, Netns, Netns)> {
    let srv = netns_or_skip()?;
    let atk = Netns::new().unwrap();
    let cli = Netns::new().unwrap();
    srv.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &atk.name]);
    srv.ip(&["link", "add", "vc", "type", "veth", "peer", "name", "vd", "netns", &cli.name]);
    for (ns, dev, v4, v6) in [
        (&srv, "va", "10.99.1.1/24", "fd00:99:1::1/64"),
        (&atk, "vb", "10.99.1.2/24", "fd00:99:1::2/64"),
        (&srv, "vc", "10.99.2.1/24", "fd00:99:2::1/64"),
        (&cli, "vd", "10.99.2.3/24", "fd00:99:2::3/64"),
    ] {
        ns.ip(&["addr", "add", v4, "dev", dev]);
        ns.ip(&["addr", "add", v6, "dev", dev, "nodad"]);
        ns.ip(&["link", "set", dev, "up"]);
    }
    atk.ip(&["route", "add", "10.99.2.0/24", "via", "10.99.1.1"]);
    cli.ip(&["route", "add", "10.99.1.0/24", "via", "10.99.2.1"]);
    sysctl(&srv, "net.ipv4.ip_forward=1");
    Some((srv, atk, cli))
}

#[test]
fn a_banned_address_cannot_connect_others_can() {
    let Some((srv, atk, cli)) = topology() else { return };
    let _srv_listener = Listener::start(&srv);
    let _cli_listener = Listener::start(&cli);
    let paths = |label: &'static str| {
        [
            (label, "atk→srv v4", connects(&atk, "10.99.1.1:8080")),
            (label, "atk→srv v6", connects(&atk, "[fd00:99:1::1]:8080")),
            (label, "atk→cli v4 (forwarded)", connects(&atk, "10.99.2.3:8080")),
            (label, "cli→srv v4", connects(&cli, "10.99.2.1:8080")),
            (label, "cli→srv v6", connects(&cli, "[fd00:99:2::1]:8080")),
        ]
    };
    // Without bans every path works (else the test below would prove nothing).
    for (label, path, ok) in paths("before") {
        assert!(ok, "{label}: {path} does not connect");
    }

    let mut e = NftEnforcer::new(srv.config()).unwrap();
    e.ensure().unwrap();
    let atk4: Target = "10.99.1.2".parse().unwrap();
    let atk6: Target = "fd00:99:1::/64".parse().unwrap(); // a prefix: the v6net set
    e.apply(&[Ban::new(atk4, Duration::from_secs(600)), Ban::new(atk6, Duration::from_secs(600))], &[]).unwrap();
    let [a4, a6, fwd, c4, c6] = paths("banned");
    assert!(!a4.2 && !a6.2, "the attacker still connects: {a4:?} {a6:?}");
    assert!(!fwd.2, "forwarded traffic of the attacker passes: {fwd:?}");
    assert!(c4.2 && c6.2, "the client is blocked too: {c4:?} {c6:?}");
    let input = srv.nft(&["list", "chain", "inet", "stadtwache", "input"]);
    let dropped = |rule: &str| {
        let line = input.lines().find(|l| l.contains(rule)).unwrap_or_else(|| panic!("{rule}: {input}"));
        let n: u64 = line.split_whitespace().skip_while(|w| *w != "packets").nth(1).unwrap().parse().unwrap();
        n
    };
    assert!(dropped("@v4 ") > 0 && dropped("@v6net ") > 0, "{input}");
    assert_eq!(dropped("@v6 "), 0, "{input}");

    // Unban: connects again.
    e.apply(&[], &[atk4, atk6]).unwrap();
    for (label, path, ok) in paths("unbanned") {
        assert!(ok, "{label}: {path} does not connect");
    }

    // A short ban ends by itself (the kernel's element timeout). Its end is
    // polled for: a single check 3.5 s after the apply would fail whenever
    // the apply (an nft process) was slow enough to insert the element more
    // than 0.5 s late. And the ban is 6 s, not 3: the check that it is in
    // force (a dropped SYN, 1 s) must come before its end, on a slow machine
    // too.
    let ban = Duration::from_secs(6);
    let banned_at = std::time::Instant::now();
    e.apply(&[Ban::new(atk4, ban)], &[]).unwrap();
    assert!(!connects(&atk, "10.99.1.1:8080"), "6 s ban not in force");
    let deadline = banned_at + ban + Duration::from_secs(15);
    while !connects(&atk, "10.99.1.1:8080") {
        assert!(std::time::Instant::now() < deadline, "6 s ban did not expire within 21 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    // ... and not before its time (the element went in after `banned_at`; a
    // jiffy of rounding in the kernel's timeout allowed for).
    let ended = banned_at.elapsed();
    eprintln!("the 6 s ban ended {ended:?} after the apply");
    assert!(ended >= ban - Duration::from_millis(100), "the 6 s ban ended after {ended:?}");
    // (polled as well: the set is now read moments after the end, not 0.5 s)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !e.list().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the ended ban is still listed: {:?}", e.list());
        std::thread::sleep(Duration::from_millis(100));
    }
}
