//! The syslog receiver on real sockets on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use stadtwache_acquire::syslog::{
    Format, Malformed, OversizePolicy, SyslogConfig, SyslogHandle, SyslogMessage, SyslogReceiver, SyslogStats,
    Transport, TransportStats,
};

/// Deadline for what the receiver threads do (generous: a loaded machine may
/// not run them for a while; a pass takes milliseconds).
const WAIT: Duration = Duration::from_secs(30);

fn config() -> SyslogConfig {
    SyslogConfig {
        udp: vec!["127.0.0.1:0".parse().unwrap()],
        tcp: vec!["127.0.0.1:0".parse().unwrap()],
        timezone: Some("UTC".into()),
        ..SyslogConfig::default()
    }
}

fn start(config: SyslogConfig, queue: usize) -> (SyslogHandle, Receiver<SyslogMessage>) {
    let (tx, rx) = sync_channel(queue);
    let h = SyslogReceiver::spawn(config, tx).expect("spawn");
    (h, rx)
}

fn recv_n(rx: &Receiver<SyslogMessage>, n: usize) -> Vec<SyslogMessage> {
    (0..n).map(|i| rx.recv_timeout(WAIT).unwrap_or_else(|e| panic!("message {i} of {n}: {e}"))).collect()
}

/// Wait until the counters satisfy `done` (the receiver threads count
/// asynchronously).
/// Waits for `done` on a settled snapshot: every message counted as
/// received is also counted as what became of it (`received` is counted
/// first, so a snapshot taken in between sees, e.g., a datagram already in
/// the channel but not yet `delivered`).
fn wait_stats(h: &SyslogHandle, done: impl Fn(&SyslogStats) -> bool) -> SyslogStats {
    let settled = |t: &TransportStats| {
        t.received
            == t.delivered
                + t.dropped_not_allowed
                + t.dropped_oversize
                + t.dropped_queue_full
                + t.dropped_shutdown
                + t.empty
    };
    let t0 = Instant::now();
    loop {
        let s = h.stats();
        if settled(&s.udp) && settled(&s.tcp) && done(&s) {
            return s;
        }
        assert!(t0.elapsed() < WAIT, "timed out waiting for counters: {s:#?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn udp_to(h: &SyslogHandle) -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    (s, h.local_addr(Transport::Udp).unwrap())
}

fn tcp_to(h: &SyslogHandle) -> TcpStream {
    let s = TcpStream::connect(h.local_addr(Transport::Tcp).unwrap()).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn oct(m: &str) -> Vec<u8> {
    format!("{} {m}", m.len()).into_bytes()
}

const SAMPLES: &[&str] = &[
    // OpenSSH via a classic BSD forwarder.
    "<38>Nov 27 10:01:02 bastion sshd[4242]: Failed password for invalid user admin from 203.0.113.9 port 52144 ssh2",
    // FortiGate (key=value, no BSD header).
    r#"<189>date=2026-11-27 time=10:01:03 devname="FG100E" devid="FG100E3G000001" logid="0100032002" type="event" subtype="system" level="alert" logdesc="Admin login failed" user="admin" srcip=203.0.113.80 action="login" status="failed""#,
    // Cisco ASA.
    "<166>Nov 27 2026 10:01:04: %ASA-6-605004: Login denied from 203.0.113.44/51234 to outside:192.0.2.1/ssh for user \"root\"",
    // pfSense filterlog (no hostname).
    "<134>Nov 27 10:01:05 filterlog[12345]: 5,,,1000000103,igb0,match,block,in,4,0x0,,64,0,0,DF,6,tcp,60,203.0.113.5,192.0.2.1,51234,22,0,S,1,,64240,,mss",
    // Windows Security log via NXLog (RFC 5424).
    "<14>1 2026-11-27T11:01:06.250000+01:00 WIN-DC01 Microsoft-Windows-Security-Auditing 636 4625 [NXLOG@14506 EventReceivedTime=\"2026-11-27 11:01:06\" SourceModuleName=\"eventlog\"] \u{feff}An account failed to log on. Source Network Address: 203.0.113.50",
    // OpenVPN and strongSwan via BSD syslog.
    "<29>Nov 27 10:01:07 vpn01 openvpn[812]: 203.0.113.9:51820 TLS Error: TLS handshake failed",
    "<30>Nov 27 10:01:08 gw charon: 09[IKE] 203.0.113.77 is initiating a Main Mode IKE_SA",
];

fn check_samples(ms: &[SyslogMessage], transport: Transport) {
    let utc = TimeZone::UTC;
    for m in ms {
        assert_eq!(m.transport, transport);
        assert_eq!(m.peer.ip().to_string(), "127.0.0.1");
        assert_eq!(m.malformed, None, "{m:?}");
    }
    assert_eq!(
        ms[0].to_line(&utc),
        "Nov 27 10:01:02 bastion sshd[4242]: Failed password for invalid user admin from 203.0.113.9 port 52144 ssh2"
    );
    assert_eq!((ms[1].facility, ms[1].severity, ms[1].hostname.as_ref()), (Some(23), Some(5), None));
    assert!(ms[1].journal_style_line().starts_with("127.0.0.1 date=2026-11-27 time=10:01:03 devname="));
    assert_eq!(ms[2].app_name.as_deref(), Some("%ASA-6-605004"));
    assert!(ms[2].to_line(&utc).starts_with("Nov 27 10:01:04 127.0.0.1 %ASA-6-605004: Login denied from 203.0.113.44"));
    assert_eq!(ms[3].to_line(&utc).split(',').nth(18), Some("203.0.113.5"));
    assert!(ms[3].to_line(&utc).starts_with("Nov 27 10:01:05 127.0.0.1 filterlog[12345]: 5,,,"));
    assert_eq!(ms[4].format, Format::Rfc5424);
    assert_eq!(ms[4].msg_id.as_deref(), Some("4625"));
    assert_eq!(
        ms[4].to_line(&utc),
        "Nov 27 10:01:06 WIN-DC01 Microsoft-Windows-Security-Auditing[636]: An account failed to log on. Source Network Address: 203.0.113.50"
    );
    assert_eq!(ms[4].time.unwrap().0 % 1_000_000, 250_000);
    assert_eq!(
        ms[5].to_line(&utc),
        "Nov 27 10:01:07 vpn01 openvpn[812]: 203.0.113.9:51820 TLS Error: TLS handshake failed"
    );
    assert_eq!(ms[6].journal_style_line(), "gw charon: 09[IKE] 203.0.113.77 is initiating a Main Mode IKE_SA");
}

#[test]
fn udp_appliance_samples() {
    let (h, rx) = start(config(), 100);
    let (s, to) = udp_to(&h);
    for m in SAMPLES {
        s.send_to(m.as_bytes(), to).unwrap();
        // UDP on loopback keeps order; receive one by one so the check is exact.
    }
    let ms = recv_n(&rx, SAMPLES.len());
    check_samples(&ms, Transport::Udp);
    let st = h.shutdown();
    assert_eq!((st.udp.received, st.udp.delivered, st.udp.malformed), (7, 7, 0));
    assert_eq!(st.tcp.received, 0);
}

#[test]
fn tcp_appliance_samples_octet_counted_and_lf_framed() {
    let (h, rx) = start(config(), 100);
    let mut c = tcp_to(&h);
    let mut stream = Vec::new();
    for (i, m) in SAMPLES.iter().enumerate() {
        if i % 2 == 0 {
            stream.extend(format!("{} {m}", m.len()).as_bytes());
        } else {
            stream.extend(m.as_bytes());
            stream.extend(if i % 3 == 0 { &b"\r\n"[..] } else { &b"\n"[..] });
        }
    }
    c.write_all(&stream).unwrap();
    let ms = recv_n(&rx, SAMPLES.len());
    check_samples(&ms, Transport::Tcp);
    drop(c);
    let st = wait_stats(&h, |s| s.connections_active == 0);
    assert_eq!((st.tcp.received, st.tcp.delivered, st.tcp.bytes), (7, 7, stream.len() as u64));
    assert_eq!(st.connections_accepted, 1);
}

#[test]
fn garbage_between_valid_frames_loses_no_valid_frame() {
    let mut cfg = config();
    cfg.max_message = 64;
    let (h, rx) = start(cfg, 100);
    let mut c = tcp_to(&h);
    let long = format!("<13>Nov 27 10:00:00 h x: {}", "A".repeat(200));
    let parts: Vec<Vec<u8>> = vec![
        b"<13>Nov 27 10:00:01 h app: one\n".to_vec(),
        b"\xff\xfe\x00garbage <<>> \x01\x02\n".to_vec(), // invalid UTF-8, no PRI, then NUL-delimited
        oct("<13>Nov 27 10:00:02 h app: two"),           // octet counted
        b"\n\n\r\n".to_vec(),                            // empties
        b"<999>bad pri\n".to_vec(),
        format!("300 {long}").into_bytes(), // oversize, octet counted: announced 300, sends 228
        b"<13>Nov 27 10:00:03 h app: three\n".to_vec(), // ...so this is inside the 300 bytes
        b"X".repeat(300 - long.len() - 33),
        format!("{long}\n").into_bytes(), // oversize, LF framed
        b"<13>Nov 27 10:00:04 h app: four\n".to_vec(),
    ];
    for p in &parts {
        c.write_all(p).unwrap();
    }
    drop(c);
    let st =
        wait_stats(&h, |s| s.connections_active == 0 && s.tcp.delivered + s.tcp.empty + s.tcp.dropped_oversize >= 10);
    let ms: Vec<SyslogMessage> = rx.try_iter().collect();
    let texts: Vec<&str> = ms.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts.iter().filter(|t| ["one", "two", "four"].contains(t)).count(), 3, "{texts:#?}");
    // garbage (NUL ends it: "\xff\xfe" then "garbage <<>> \x01\x02"), bad PRI, two truncated.
    assert_eq!(ms.len(), 8, "{texts:#?}");
    assert_eq!(ms[1].message, "\u{fffd}\u{fffd}");
    assert!(ms[1].replaced && ms[1].malformed == Some(Malformed::MissingPri));
    assert_eq!(ms[2].message, "garbage <<>> \u{1}\u{2}");
    assert_eq!(ms[4].malformed, Some(Malformed::BadPri));
    assert!(ms[5].truncated && ms[5].message.len() <= 64);
    assert!(ms[6].truncated && ms[6].message.starts_with("AAAA"));
    assert_eq!(ms[7].message, "four");
    assert_eq!(st.tcp.truncated, 2);
    assert_eq!(st.tcp.invalid_utf8, 1);
    assert_eq!(st.tcp.malformed, 3, "{st:#?}");
    assert_eq!(st.tcp.empty, 3);
    assert_eq!(st.tcp.received, st.tcp.delivered + st.tcp.empty);
    assert!(st.issues.iter().any(|i| i.reason.contains("truncated")));
}

#[test]
fn oversize_drop_policy_on_udp_and_tcp() {
    let mut cfg = config();
    cfg.max_message = 100;
    cfg.oversize = OversizePolicy::Drop;
    let (h, rx) = start(cfg, 100);
    let (s, to) = udp_to(&h);
    s.send_to(&[b'<'; 101], to).unwrap();
    s.send_to(b"<13>ok udp", to).unwrap();
    let mut c = tcp_to(&h);
    c.write_all(format!("200 <{}\n<13>ok tcp\n", "x".repeat(199)).as_bytes()).unwrap();
    let ms = recv_n(&rx, 2);
    let mut texts: Vec<&str> = ms.iter().map(|m| m.message.as_str()).collect();
    texts.sort();
    assert_eq!(texts, ["ok tcp", "ok udp"]);
    let st = wait_stats(&h, |s| s.udp.received == 2 && s.tcp.received == 3); // TCP: and the empty frame after the octet-counted one
    assert_eq!((st.udp.dropped_oversize, st.tcp.dropped_oversize), (1, 1));
    assert!(rx.try_recv().is_err());
}

#[test]
fn disallowed_senders_are_dropped_and_counted() {
    let mut cfg = config();
    cfg.allowed_senders = vec!["127.0.0.2/32".into()];
    let (h, rx) = start(cfg, 100);
    let to = h.local_addr(Transport::Udp).unwrap();
    let outsider = UdpSocket::bind("127.0.0.1:0").unwrap();
    outsider.send_to(b"<13>forged: ban 192.0.2.1", to).unwrap();
    let insider = UdpSocket::bind("127.0.0.2:0").expect("loopback /8 (Linux)");
    insider.send_to(b"<13>allowed: hello", to).unwrap();
    let m = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(m.peer.ip().to_string(), "127.0.0.2");
    assert_eq!(m.message, "hello");
    // TCP from 127.0.0.1: accepted by the kernel, closed by us unread.
    let mut c = tcp_to(&h);
    let _ = c.write_all(b"<13>forged: ban 192.0.2.2\n");
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut b = [0u8; 16];
    assert!(matches!(c.read(&mut b), Ok(0) | Err(_)), "the connection is closed");
    let st = wait_stats(&h, |s| s.udp.received == 2 && s.connections_refused_not_allowed == 1);
    assert_eq!((st.udp.dropped_not_allowed, st.udp.delivered), (1, 1));
    assert_eq!((st.tcp.received, st.connections_accepted), (0, 0));
    assert!(st.issues.iter().any(|i| i.peer.is_some_and(|p| p.ip().to_string() == "127.0.0.1")));
    assert!(rx.try_recv().is_err());
}

#[test]
fn udp_queue_full_is_counted_and_tcp_waits() {
    let (h, rx) = start(config(), 2);
    let (s, to) = udp_to(&h);
    for i in 0..10 {
        s.send_to(format!("<13>u{i}").as_bytes(), to).unwrap();
    }
    let st = wait_stats(&h, |s| s.udp.received == 10);
    assert_eq!((st.udp.delivered, st.udp.dropped_queue_full), (2, 8));
    assert_eq!(recv_n(&rx, 2).iter().map(|m| m.message.as_str()).collect::<Vec<_>>(), ["u0", "u1"]);

    // TCP: a queue of 2 and 500 messages; a slow consumer gets all, in order.
    let mut c = tcp_to(&h);
    let writer = std::thread::spawn(move || {
        for i in 0..500 {
            c.write_all(format!("<13>t{i}\n").as_bytes()).unwrap();
        }
    });
    for i in 0..500 {
        let m = rx.recv_timeout(WAIT).unwrap();
        assert_eq!(m.message, format!("t{i}"));
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    writer.join().unwrap();
    let st = h.shutdown();
    assert_eq!((st.tcp.delivered, st.tcp.dropped_queue_full, st.tcp.dropped_shutdown), (500, 0, 0));
}

/// With one connection allowed, a second one is closed at once; a closed
/// one frees its slot.
#[test]
fn connection_limit() {
    let mut cfg = config();
    cfg.max_connections = 1;
    // Never reached here: the first connection must still be open when the
    // second arrives, however late a loaded machine runs this thread. (With
    // the idle timeout of the test below, 1 s and then 3 s were races.)
    cfg.idle_timeout_secs = 3600;
    let (h, rx) = start(cfg, 100);
    let mut first = tcp_to(&h);
    first.write_all(b"<13>first\n").unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().message, "first");
    let mut second = tcp_to(&h);
    second.set_read_timeout(Some(WAIT)).unwrap();
    let mut b = [0u8; 4];
    assert!(matches!(second.read(&mut b), Ok(0) | Err(_)), "the second connection is closed");
    let st = wait_stats(&h, |s| s.connections_refused_limit == 1);
    assert_eq!((st.connections_accepted, st.connections_active), (1, 1));
    // The first still works; once it is closed, a new connection is accepted.
    first.write_all(b"<13>still\n").unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().message, "still");
    drop(first);
    wait_stats(&h, |s| s.connections_active == 0);
    let mut third = tcp_to(&h);
    third.write_all(b"<13>third\n").unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().message, "third");
    let st = h.shutdown();
    assert_eq!((st.connections_refused_limit, st.connections_idle_closed, st.connections_accepted), (1, 0, 2));
}

/// A connection idle for `idle_timeout_secs` is closed, its partial frame
/// delivered, and its slot freed.
#[test]
fn idle_timeout() {
    let mut cfg = config();
    cfg.max_connections = 1;
    cfg.idle_timeout_secs = 1;
    let (h, rx) = start(cfg, 100);
    let mut first = tcp_to(&h);
    first.write_all(b"<13>first\n<13>partial").unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().message, "first");
    // It goes idle and is closed; its partial frame is delivered.
    let m = rx.recv_timeout(WAIT).unwrap();
    assert_eq!((m.message.as_str(), m.malformed), ("partial", Some(Malformed::Incomplete)));
    first.set_read_timeout(Some(WAIT)).unwrap();
    let mut b = [0u8; 4];
    assert!(matches!(first.read(&mut b), Ok(0) | Err(_)));
    let st = wait_stats(&h, |s| s.connections_active == 0);
    assert_eq!((st.connections_refused_limit, st.connections_idle_closed, st.connections_accepted), (0, 1, 1));
    // A new connection is accepted again.
    let mut again = tcp_to(&h);
    again.write_all(b"<13>again\n").unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().message, "again");
}

/// One short stream with both framings, written in two writes split at every
/// byte boundary (one connection per split), over real TCP.
#[test]
fn tcp_stream_split_at_every_byte_boundary() {
    let (h, rx) = start(config(), 1000);
    let mut stream = oct("<13>a: one");
    stream.extend(b"<13>b: two\r\n");
    stream.extend(oct("<13>c[1]: three"));
    stream.extend(b"\n\n<13>d: four\x00");
    for k in 0..=stream.len() {
        let mut c = tcp_to(&h);
        c.write_all(&stream[..k]).unwrap();
        c.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        c.write_all(&stream[k..]).unwrap();
        drop(c);
        let ms = recv_n(&rx, 4);
        let got: Vec<(Option<&str>, &str)> = ms.iter().map(|m| (m.app_name.as_deref(), m.message.as_str())).collect();
        assert_eq!(
            got,
            [(Some("a"), "one"), (Some("b"), "two"), (Some("c"), "three"), (Some("d"), "four")],
            "split at {k}"
        );
    }
    let st = wait_stats(&h, |s| s.connections_active == 0);
    assert_eq!(st.tcp.delivered, 4 * (stream.len() as u64 + 1));
    assert_eq!(st.tcp.malformed, 0);
}

#[test]
fn config_deserializes_with_defaults_and_rejects_unknown_fields() {
    let cfg: SyslogConfig =
        serde_json::from_str(r#"{"udp": ["0.0.0.0:514"], "allowed_senders": ["192.0.2.0/24"], "oversize": "drop"}"#)
            .unwrap();
    assert_eq!(cfg.udp, vec!["0.0.0.0:514".parse::<SocketAddr>().unwrap()]);
    assert_eq!((cfg.max_message, cfg.oversize, cfg.max_connections), (8192, OversizePolicy::Drop, 64));
    assert!(serde_json::from_str::<SyslogConfig>(r#"{"udp_port": 514}"#).is_err());
    let (tx, _rx) = sync_channel(1);
    let mut bad = config();
    bad.allowed_senders = vec!["192.0.2.0/33".into()];
    assert!(SyslogReceiver::spawn(bad, tx.clone()).unwrap_err().to_string().contains("192.0.2.0/33"));
    let mut bad = config();
    bad.timezone = Some("Mars/Olympus".into());
    assert!(SyslogReceiver::spawn(bad, tx.clone()).is_err());
    assert!(SyslogReceiver::spawn(SyslogConfig::default(), tx).is_err(), "nothing to listen on");
}
