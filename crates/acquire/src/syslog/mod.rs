//! The `acquire` stage for appliances that send syslog over the network
//! (firewalls, VPN concentrators, Windows forwarders): a receiver on UDP and
//! TCP for RFC 3164 and RFC 5424 messages.
//!
//! [`SyslogReceiver::spawn`] binds the configured addresses and runs one
//! thread per UDP socket, one accept thread per TCP listener and one thread
//! per TCP connection (at most [`SyslogConfig::max_connections`]). Parsed
//! messages ([`SyslogMessage`]) go to the caller's bounded
//! `std::sync::mpsc::SyncSender`. When it is full, UDP drops the message and
//! counts it (`dropped_queue_full`); TCP waits (backpressure: the sender's
//! window fills, nothing is lost). [`SyslogHandle::stats`] counts everything;
//! [`SyslogHandle::shutdown`] stops and joins every thread.
//!
//! The framer ([`Framer`]) and the parser ([`parse`]) are pure functions of
//! their input, for tests and fuzzing.
//!
//! # What happens to bad input
//!
//! Nothing stops the receiver and nothing is silent; each case is counted in
//! [`TransportStats`] and the last [`MAX_ISSUES`] are kept with the sender
//! and the reason ([`SyslogIssue`]).
//!
//! | input | outcome |
//! |---|---|
//! | UDP datagram from a sender not in `allowed_senders` | dropped, `dropped_not_allowed` |
//! | TCP connection from such a sender | closed at once, `connections_refused_not_allowed` |
//! | TCP connection over `max_connections` | closed at once, `connections_refused_limit` |
//! | message over `max_message` bytes | cut at the cap and delivered flagged `truncated` (`truncated`), or dropped with `oversize = "drop"` (`dropped_oversize`); TCP resyncs to the next frame either way |
//! | invalid UTF-8 | replaced by U+FFFD, delivered flagged `replaced` (`invalid_utf8`) |
//! | no `<PRI>`, bad `<PRI>`, short 5424 header, bad 5424 time stamp or structured data, TCP frame cut by the close | delivered flagged with a [`Malformed`] reason (`malformed`): see [`Malformed`] for what is kept |
//! | empty or blank datagram or frame | dropped, `empty` |
//! | consumer queue full | UDP: dropped, `dropped_queue_full`; TCP: waits |
//! | a TCP connection idle for `idle_timeout_secs` | closed, `connections_idle_closed` (a partial frame it held is delivered flagged `Incomplete`) |
//!
//! A 3164 message whose text starts with `1 ` right after the `<PRI>` is
//! taken for RFC 5424 (as rsyslog does) and is likely flagged malformed; its
//! text is kept.
//!
//! For each transport, `received == delivered + dropped_not_allowed +
//! dropped_oversize + dropped_queue_full + dropped_shutdown + empty`.
//!
//! # Lines for fail2ban filters
//!
//! [`SyslogMessage::to_line`] renders `Mmm dd HH:MM:SS host app[pid]: message`
//! (host falling back to the sender's IP), which stock fail2ban filters
//! (`sshd`, `openvpn`, …) match like a line of `/var/log/auth.log`;
//! [`SyslogMessage::journal_style_line`] renders `host app[pid]: message`
//! for filters in journal mode, with [`SyslogMessage::effective_time`] as the
//! time.

mod framer;
mod parse;

pub use framer::{Frame, Framer, FramerStats, Framing};
/// The time zone type of [`TimeContext`] and [`SyslogMessage::to_line`].
pub use jiff::tz::TimeZone;
pub use parse::{Format, Malformed, SyslogMessage, TimeContext, Transport, parse};

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use stadtwache_core::Timestamp;

/// Default cap on one message: 8 KiB (RFC 5424 receivers should accept
/// 2048 bytes; 8 KiB covers Windows events forwarded whole).
pub const DEFAULT_MAX_MESSAGE: usize = 8 * 1024;

/// Issues kept in [`SyslogStats::issues`]; older ones are dropped (and still
/// counted in `issues_total`).
pub const MAX_ISSUES: usize = 100;

/// How often blocked threads look at the stop flag.
const TICK: Duration = Duration::from_millis(100);

/// What to do with a message over [`SyslogConfig::max_message`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OversizePolicy {
    /// Keep the first `max_message` bytes, deliver flagged `truncated`.
    #[default]
    Truncate,
    /// Drop the message (counted).
    Drop,
}

/// Configuration of a [`SyslogReceiver`]. Every field has a default; at
/// least one of `udp` and `tcp` must be given.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogConfig {
    /// UDP addresses to listen on, e.g. `["0.0.0.0:514", "[::]:514"]`.
    /// Default: none.
    pub udp: Vec<SocketAddr>,
    /// TCP addresses to listen on. Default: none.
    pub tcp: Vec<SocketAddr>,
    /// Senders allowed, as CIDRs (`192.0.2.0/24`, `2001:db8::/32`) or single
    /// addresses. Anything else is dropped (UDP) or disconnected (TCP), and
    /// counted. Default: loopback only (`127.0.0.0/8`, `::1`): a receiver
    /// that trusts everyone lets anyone forge the lines that ban addresses,
    /// so list your appliances explicitly (`0.0.0.0/0` and `::/0` allow all).
    pub allowed_senders: Vec<String>,
    /// Cap on one message in bytes (without TCP framing). Default 8192.
    pub max_message: usize,
    /// What to do with longer messages. Default `truncate`.
    pub oversize: OversizePolicy,
    /// TCP connections open at once, at most; more are closed at once and
    /// counted. Default 64.
    pub max_connections: usize,
    /// A TCP connection that sends nothing for this many seconds is closed.
    /// Default 300.
    pub idle_timeout_secs: u64,
    /// Time zone of time stamps without an offset (RFC 3164 `Nov 27
    /// 10:01:02`): an IANA name (`Europe/Berlin`) or `UTC`. Default: the
    /// system's zone (UTC when it cannot be found), as fail2ban reads files.
    pub timezone: Option<String>,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            udp: Vec::new(),
            tcp: Vec::new(),
            allowed_senders: vec!["127.0.0.0/8".into(), "::1/128".into()],
            max_message: DEFAULT_MAX_MESSAGE,
            oversize: OversizePolicy::Truncate,
            max_connections: 64,
            idle_timeout_secs: 300,
            timezone: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    #[error("I010: invalid allowed sender {value:?}: expected an address or address/prefix")]
    AllowedSender { value: String },
    #[error("I011: unknown time zone {name:?}: {message}")]
    TimeZone { name: String, message: String },
    #[error("I012: cannot listen on {transport:?} {addr}: {source}")]
    Bind { transport: Transport, addr: SocketAddr, source: io::Error },
    #[error("I013: invalid syslog configuration: {0}")]
    Config(String),
    #[error("I014: cannot start a thread: {0}")]
    Thread(io::Error),
}

/// An address range: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl FromStr for Cidr {
    type Err = SyslogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SyslogError::AllowedSender { value: s.to_owned() };
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(err)?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, normalize_ip(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn normalize(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(normalize_ip(peer.ip()), peer.port())
}

/// Counters of one transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Datagrams (UDP) or frames (TCP) received, whatever became of them.
    pub received: u64,
    /// Bytes read from the sockets (TCP: framing included).
    pub bytes: u64,
    /// Messages handed to the consumer.
    pub delivered: u64,
    /// Delivered flagged malformed (see [`Malformed`]).
    pub malformed: u64,
    /// Delivered with invalid UTF-8 replaced.
    pub invalid_utf8: u64,
    /// Delivered cut at `max_message`.
    pub truncated: u64,
    /// UDP datagrams from senders not allowed.
    pub dropped_not_allowed: u64,
    /// Over `max_message` with `oversize = "drop"`.
    pub dropped_oversize: u64,
    /// UDP: the consumer's queue was full.
    pub dropped_queue_full: u64,
    /// TCP: waiting for queue room when the receiver was shut down.
    pub dropped_shutdown: u64,
    /// Empty or blank datagrams or frames.
    pub empty: u64,
}

/// Something that was dropped or went wrong; never silent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogIssue {
    pub transport: Transport,
    pub peer: Option<SocketAddr>,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyslogStats {
    pub udp: TransportStats,
    pub tcp: TransportStats,
    pub connections_accepted: u64,
    pub connections_refused_not_allowed: u64,
    pub connections_refused_limit: u64,
    pub connections_idle_closed: u64,
    pub connections_active: u64,
    /// Failed socket reads and accepts (the socket is kept, a connection closed).
    pub read_errors: u64,
    pub issues_total: u64,
    /// The last [`MAX_ISSUES`] issues, oldest first.
    pub issues: Vec<SyslogIssue>,
}

#[derive(Default)]
struct TransportCounters {
    received: AtomicU64,
    bytes: AtomicU64,
    delivered: AtomicU64,
    malformed: AtomicU64,
    invalid_utf8: AtomicU64,
    truncated: AtomicU64,
    dropped_not_allowed: AtomicU64,
    dropped_oversize: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_shutdown: AtomicU64,
    empty: AtomicU64,
}

impl TransportCounters {
    fn snapshot(&self) -> TransportStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TransportStats {
            received: g(&self.received),
            bytes: g(&self.bytes),
            delivered: g(&self.delivered),
            malformed: g(&self.malformed),
            invalid_utf8: g(&self.invalid_utf8),
            truncated: g(&self.truncated),
            dropped_not_allowed: g(&self.dropped_not_allowed),
            dropped_oversize: g(&self.dropped_oversize),
            dropped_queue_full: g(&self.dropped_queue_full),
            dropped_shutdown: g(&self.dropped_shutdown),
            empty: g(&self.empty),
        }
    }
}

fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

struct Shared {
    allowed: Vec<Cidr>,
    tz: TimeZone,
    max_message: usize,
    oversize: OversizePolicy,
    max_connections: usize,
    idle_timeout: Duration,
    stop: AtomicBool,
    sender: SyncSender<SyslogMessage>,
    udp: TransportCounters,
    tcp: TransportCounters,
    connections_accepted: AtomicU64,
    connections_refused_not_allowed: AtomicU64,
    connections_refused_limit: AtomicU64,
    connections_idle_closed: AtomicU64,
    connections_active: AtomicU64,
    read_errors: AtomicU64,
    issues_total: AtomicU64,
    issues: Mutex<VecDeque<SyslogIssue>>,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

enum Delivery {
    Sent,
    Dropped,
    /// The consumer is gone: stop.
    Closed,
}

impl Shared {
    fn counters(&self, t: Transport) -> &TransportCounters {
        match t {
            Transport::Udp => &self.udp,
            Transport::Tcp => &self.tcp,
        }
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|c| c.contains(ip))
    }

    fn issue(&self, transport: Transport, peer: Option<SocketAddr>, reason: String) {
        inc(&self.issues_total);
        let mut issues = self.issues.lock().unwrap_or_else(|e| e.into_inner());
        if issues.len() >= MAX_ISSUES {
            issues.pop_front();
        }
        issues.push_back(SyslogIssue { transport, peer, reason });
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Parse one datagram or frame and hand it to the consumer, counting
    /// what became of it (`received` is counted by the caller).
    fn deliver(
        &self,
        transport: Transport,
        peer: SocketAddr,
        raw: &[u8],
        truncated: bool,
        incomplete: bool,
    ) -> Delivery {
        let c = self.counters(transport);
        if raw.iter().all(|b| b.is_ascii_whitespace() || *b == 0) {
            inc(&c.empty);
            return Delivery::Dropped;
        }
        if truncated && self.oversize == OversizePolicy::Drop {
            inc(&c.dropped_oversize);
            self.issue(transport, Some(peer), format!("message over {} bytes dropped", self.max_message));
            return Delivery::Dropped;
        }
        let ctx = TimeContext { now: now(), tz: self.tz.clone() };
        let mut m = parse(raw, peer, transport, &ctx);
        m.truncated = truncated;
        if incomplete && m.malformed.is_none() {
            m.malformed = Some(Malformed::Incomplete);
        }
        if truncated {
            inc(&c.truncated);
            self.issue(transport, Some(peer), format!("message over {} bytes truncated", self.max_message));
        }
        if m.replaced {
            inc(&c.invalid_utf8);
        }
        if let Some(why) = m.malformed {
            inc(&c.malformed);
            self.issue(transport, Some(peer), format!("malformed: {}", why.as_str()));
        }
        match transport {
            Transport::Udp => match self.sender.try_send(m) {
                Ok(()) => {
                    inc(&c.delivered);
                    Delivery::Sent
                }
                Err(TrySendError::Full(_)) => {
                    inc(&c.dropped_queue_full);
                    Delivery::Dropped
                }
                Err(TrySendError::Disconnected(_)) => Delivery::Closed,
            },
            Transport::Tcp => {
                // Backpressure: wait for room, looking at the stop flag.
                let mut m = m;
                let mut wait = Duration::from_micros(100);
                loop {
                    match self.sender.try_send(m) {
                        Ok(()) => {
                            inc(&c.delivered);
                            return Delivery::Sent;
                        }
                        Err(TrySendError::Full(back)) => {
                            if self.stopping() {
                                inc(&c.dropped_shutdown);
                                return Delivery::Dropped;
                            }
                            m = back;
                            std::thread::sleep(wait);
                            wait = (wait * 2).min(Duration::from_millis(20));
                        }
                        Err(TrySendError::Disconnected(_)) => return Delivery::Closed,
                    }
                }
            }
        }
    }
}

fn now() -> Timestamp {
    let d = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp(d.as_micros() as i64)
}

/// Starts the receiver threads; see the module documentation.
pub struct SyslogReceiver;

impl SyslogReceiver {
    /// Bind every configured address and start receiving. Messages go to
    /// `sender` (bounded: its capacity is the queue to the consumer). Errors
    /// only for a bad configuration or an address that cannot be bound.
    pub fn spawn(config: SyslogConfig, sender: SyncSender<SyslogMessage>) -> Result<SyslogHandle, SyslogError> {
        if config.udp.is_empty() && config.tcp.is_empty() {
            return Err(SyslogError::Config("no `udp` or `tcp` address to listen on".into()));
        }
        if config.max_message == 0 {
            return Err(SyslogError::Config("`max_message` must be at least 1".into()));
        }
        let allowed = config.allowed_senders.iter().map(|s| s.parse()).collect::<Result<Vec<Cidr>, _>>()?;
        let tz = match config.timezone.as_deref() {
            None => TimeZone::system(),
            Some("UTC") | Some("utc") => TimeZone::UTC,
            Some(name) => TimeZone::get(name)
                .map_err(|e| SyslogError::TimeZone { name: name.to_owned(), message: e.to_string() })?,
        };
        let mut udp = Vec::new();
        for &addr in &config.udp {
            let s = UdpSocket::bind(addr).map_err(|source| SyslogError::Bind {
                transport: Transport::Udp,
                addr,
                source,
            })?;
            s.set_read_timeout(Some(TICK)).map_err(|source| SyslogError::Bind {
                transport: Transport::Udp,
                addr,
                source,
            })?;
            udp.push(s);
        }
        let mut tcp = Vec::new();
        for &addr in &config.tcp {
            let bind_err = |source| SyslogError::Bind { transport: Transport::Tcp, addr, source };
            let l = TcpListener::bind(addr).map_err(bind_err)?;
            l.set_nonblocking(true).map_err(bind_err)?;
            tcp.push(l);
        }
        let shared = Arc::new(Shared {
            allowed,
            tz,
            max_message: config.max_message,
            oversize: config.oversize,
            max_connections: config.max_connections,
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            stop: AtomicBool::new(false),
            sender,
            udp: TransportCounters::default(),
            tcp: TransportCounters::default(),
            connections_accepted: AtomicU64::new(0),
            connections_refused_not_allowed: AtomicU64::new(0),
            connections_refused_limit: AtomicU64::new(0),
            connections_idle_closed: AtomicU64::new(0),
            connections_active: AtomicU64::new(0),
            read_errors: AtomicU64::new(0),
            issues_total: AtomicU64::new(0),
            issues: Mutex::new(VecDeque::new()),
            connections: Mutex::new(Vec::new()),
        });
        let mut handle = SyslogHandle { shared: shared.clone(), threads: Vec::new(), local: Vec::new() };
        for s in udp {
            let addr = s.local_addr().map_err(SyslogError::Thread)?;
            handle.local.push((Transport::Udp, addr));
            let sh = shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("syslog-udp-{addr}"))
                .spawn(move || udp_loop(&sh, &s))
                .map_err(SyslogError::Thread)?;
            handle.threads.push(t);
        }
        for l in tcp {
            let addr = l.local_addr().map_err(SyslogError::Thread)?;
            handle.local.push((Transport::Tcp, addr));
            let sh = shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("syslog-tcp-{addr}"))
                .spawn(move || accept_loop(&sh, &l))
                .map_err(SyslogError::Thread)?;
            handle.threads.push(t);
        }
        Ok(handle)
    }
}

/// The running receiver. Dropping it shuts it down too.
pub struct SyslogHandle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    local: Vec<(Transport, SocketAddr)>,
}

impl std::fmt::Debug for SyslogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogHandle").field("local", &self.local).finish()
    }
}

impl SyslogHandle {
    /// The bound addresses (the real ports when configured with port 0), in
    /// configuration order, UDP first.
    pub fn local_addrs(&self) -> &[(Transport, SocketAddr)] {
        &self.local
    }

    /// The first bound address of a transport.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.local.iter().find(|(t, _)| *t == transport).map(|(_, a)| *a)
    }

    /// Has the receiver stopped (shut down, or the consumer's queue was dropped)?
    pub fn is_stopped(&self) -> bool {
        self.shared.stopping()
    }

    pub fn stats(&self) -> SyslogStats {
        let s = &self.shared;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SyslogStats {
            udp: s.udp.snapshot(),
            tcp: s.tcp.snapshot(),
            connections_accepted: g(&s.connections_accepted),
            connections_refused_not_allowed: g(&s.connections_refused_not_allowed),
            connections_refused_limit: g(&s.connections_refused_limit),
            connections_idle_closed: g(&s.connections_idle_closed),
            connections_active: g(&s.connections_active),
            read_errors: g(&s.read_errors),
            issues_total: g(&s.issues_total),
            issues: s.issues.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect(),
        }
    }

    /// Stop every thread (within about 100 ms), wait for them, and return the
    /// final counters.
    pub fn shutdown(mut self) -> SyslogStats {
        self.stop_and_join();
        self.stats()
    }

    fn stop_and_join(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let conns = std::mem::take(&mut *self.shared.connections.lock().unwrap_or_else(|e| e.into_inner()));
        for t in conns {
            let _ = t.join();
        }
    }
}

impl Drop for SyslogHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

fn udp_loop(sh: &Shared, sock: &UdpSocket) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let c = &sh.udp;
    while !sh.stopping() {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                inc(&sh.read_errors);
                sh.issue(Transport::Udp, None, format!("receive error: {e}"));
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let peer = normalize(peer);
        inc(&c.received);
        c.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if !sh.allowed(peer.ip()) {
            inc(&c.dropped_not_allowed);
            sh.issue(Transport::Udp, Some(peer), "sender not allowed".into());
            continue;
        }
        let truncated = n > sh.max_message;
        let data = &buf[..n.min(sh.max_message)];
        if let Delivery::Closed = sh.deliver(Transport::Udp, peer, data, truncated, false) {
            sh.stop.store(true, Ordering::Relaxed);
        }
    }
}

fn accept_loop(sh: &Arc<Shared>, listener: &TcpListener) {
    while !sh.stopping() {
        match listener.accept() {
            Ok((stream, peer)) => {
                let peer = normalize(peer);
                if !sh.allowed(peer.ip()) {
                    inc(&sh.connections_refused_not_allowed);
                    sh.issue(Transport::Tcp, Some(peer), "sender not allowed: connection closed".into());
                    drop(stream);
                    continue;
                }
                let mut conns = sh.connections.lock().unwrap_or_else(|e| e.into_inner());
                conns.retain(|t| !t.is_finished());
                // Counted by `connections_active` (incremented under this
                // lock, decremented once a connection is closed), not by the
                // threads not yet finished: a thread that has closed its
                // connection may still be running for a moment, and a client
                // reconnecting at once would be refused for it.
                if sh.connections_active.load(Ordering::SeqCst) as usize >= sh.max_connections {
                    drop(conns);
                    inc(&sh.connections_refused_limit);
                    sh.issue(
                        Transport::Tcp,
                        Some(peer),
                        format!("over max_connections ({}): connection closed", sh.max_connections),
                    );
                    drop(stream);
                    continue;
                }
                inc(&sh.connections_accepted);
                sh.connections_active.fetch_add(1, Ordering::SeqCst);
                let sh2 = sh.clone();
                match std::thread::Builder::new().name(format!("syslog-conn-{peer}")).spawn(move || {
                    connection(&sh2, stream, peer);
                    sh2.connections_active.fetch_sub(1, Ordering::SeqCst);
                }) {
                    Ok(t) => conns.push(t),
                    Err(e) => {
                        sh.connections_active.fetch_sub(1, Ordering::Relaxed);
                        inc(&sh.read_errors);
                        sh.issue(Transport::Tcp, Some(peer), format!("cannot start a connection thread: {e}"));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // EMFILE and the like: count, back off, keep listening.
                inc(&sh.read_errors);
                sh.issue(Transport::Tcp, None, format!("accept error: {e}"));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

const TCP_READ: usize = 16 * 1024;

fn connection(sh: &Shared, mut stream: TcpStream, peer: SocketAddr) {
    let c = &sh.tcp;
    if stream.set_nonblocking(false).and_then(|()| stream.set_read_timeout(Some(TICK))).is_err() {
        inc(&sh.read_errors);
        return;
    }
    let mut framer = Framer::new(sh.max_message);
    let mut buf = vec![0u8; TCP_READ];
    let mut last = Instant::now();
    let mut closed = false;
    let handle = |frame: Frame, closed: &mut bool| {
        inc(&c.received);
        if *closed {
            // The consumer is gone; nothing more can be delivered.
            inc(&c.dropped_shutdown);
            return;
        }
        let incomplete = frame.framing == Framing::Eof;
        if let Delivery::Closed = sh.deliver(Transport::Tcp, peer, &frame.data, frame.truncated, incomplete) {
            sh.stop.store(true, Ordering::Relaxed);
            *closed = true;
        }
    };
    let mut empty_seen = 0;
    loop {
        if sh.stopping() {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                last = Instant::now();
                c.bytes.fetch_add(n as u64, Ordering::Relaxed);
                framer.push(&buf[..n], &mut |f| handle(f, &mut closed));
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                if last.elapsed() >= sh.idle_timeout {
                    inc(&sh.connections_idle_closed);
                    sh.issue(Transport::Tcp, Some(peer), "idle timeout: connection closed".into());
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                inc(&sh.read_errors);
                sh.issue(Transport::Tcp, Some(peer), format!("read error: {e}"));
                break;
            }
        }
        let empty = framer.stats().empty;
        c.empty.fetch_add(empty - empty_seen, Ordering::Relaxed);
        c.received.fetch_add(empty - empty_seen, Ordering::Relaxed);
        empty_seen = empty;
    }
    framer.finish(&mut |f| handle(f, &mut closed));
}
