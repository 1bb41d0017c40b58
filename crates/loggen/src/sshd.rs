//! OpenSSH `auth.log` generator (classic syslog format).
//!
//! Message texts follow what OpenSSH 7.x–9.x and pam_unix really print on
//! Debian (`sshd[pid]: ...`). Benign traffic: key/password logins, PAM
//! session open/close, orderly disconnects, periodic automation. Attack
//! shapes: root and valid-user password guessing, invalid-user dictionary
//! runs, keyboard-interactive/PAM failures, key probes that close in
//! `[preauth]`, MaxAuthTries overruns, scanners that never authenticate
//! (no identification string, banner/kex errors, no matching key exchange),
//! older-OpenSSH forms (`Disconnecting: Too many authentication failures`
//! without an address, JSch "Auth fail" disconnects, AllowUsers refusals).
//!
//! Attackers are drawn from a Zipf-like distribution; each attacker has a
//! fixed behaviour (bursty, dictionary, slow "just below maxretry per
//! findtime", scanner, ...).

use std::io::Write;
use std::net::IpAddr;

use crate::addr::{DistinctV4, DistinctV6, distinct_addrs, random_addr};
use crate::engine::{RunStats, Sink, Stamp, World, run};
use crate::rng::{Rng, Zipf, mix64};

/// Options of the `sshd` subcommand.
#[derive(Clone, Debug)]
pub struct SshdOptions {
    pub lines: u64,
    pub seed: u64,
    pub start: i64,
    pub days: f64,
    pub attackers: usize,
    pub ipv6_share: f64,
    pub host: String,
}

/// Invalid user names tried by dictionary attacks (the empty name and odd
/// spellings occur in real logs too).
const INVALID_USERS: &[&str] = &[
    "admin",
    "test",
    "user",
    "ubuntu",
    "guest",
    "oracle",
    "ftpuser",
    "pi",
    "support",
    "deploy",
    "dev",
    "mysql",
    "hadoop",
    "nagios",
    "jenkins",
    "tomcat",
    "www",
    "web",
    "ftp",
    "ansible",
    "steam",
    "minecraft",
    "odoo",
    "es",
    "elastic",
    "debian",
    "centos",
    "user1",
    "test1",
    "administrator",
    "sysadmin",
    "vagrant",
    "docker",
    "sol",
    "solana",
    "validator",
    "node",
    "cisco",
    "ubnt",
    "Admin",
    "alex",
    "john",
    "server",
    "backup1",
    "uucp",
    "gitlab-runner",
    "postgres1",
    "ts3",
    "teamspeak",
    "demo",
    "student",
    "zabbix",
    "kafka",
    "redis",
    "hive",
];

/// Existing accounts that password guessers hit.
const VALID_TARGETS: &[&str] = &["root", "root", "root", "root", "root", "root", "git", "postgres"];

/// Legitimate users (name, uid).
const BENIGN_USERS: &[(&str, u32)] = &[
    ("alice", 1000),
    ("bob", 1001),
    ("carol", 1002),
    ("dave", 1003),
    ("erika", 1004),
    ("frank", 1005),
    ("greta", 1006),
    ("hakan", 1007),
    ("deploy", 1100),
    ("ansible", 1101),
];

const AUTOMATION_USERS: &[(&str, u32)] = &[("backup", 34), ("monitoring", 1102), ("deploy", 1100)];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Burst,
    Dictionary,
    Slow,
    SlowInvalid,
    Scanner,
    PreauthCloser,
    OldSchool,
    KbdInteractive,
}

const STYLES: &[(Style, u32)] = &[
    (Style::Burst, 25),
    (Style::Dictionary, 25),
    (Style::Slow, 8),
    (Style::SlowInvalid, 4),
    (Style::Scanner, 22),
    (Style::PreauthCloser, 6),
    (Style::OldSchool, 4),
    (Style::KbdInteractive, 6),
];

enum Actor {
    Spawner,
    Campaign { attacker: u32, left: u32 },
    Automation { client: u32, period: i64 },
}

struct Client {
    ip: IpAddr,
    user: &'static str,
    uid: u32,
    fingerprint: String,
    password: bool,
}

struct Ssh {
    rng: Rng,
    host: String,
    pid: u32,
    attackers: Vec<IpAddr>,
    styles: Vec<Style>,
    zipf: Zipf,
    clients: Vec<Client>,
    automation: Vec<Client>,
    start: i64,
    rate: f64,
    gap0: f64,
    spawn_clock: f64,
}

/// One sshd connection: pid, source port, its own line offsets.
struct Conn<'a> {
    host: &'a str,
    pid: u32,
    port: u16,
    t: i64,
}

impl Conn<'_> {
    fn say(&mut self, sink: &mut Sink<Actor>, msg: std::fmt::Arguments<'_>) {
        sink.line(self.t, format!("{} sshd[{}]: {}", self.host, self.pid, msg));
    }
    fn wait(&mut self, rng: &mut Rng, lo: u64, hi: u64) {
        self.t += rng.range(lo, hi) as i64;
    }
}

fn fingerprint(rng: &mut Rng) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..43).map(|_| *rng.pick(B64) as char).collect()
}

fn pick_invalid_user(rng: &mut Rng) -> &'static str {
    if rng.chance(0.01) { "" } else { INVALID_USERS[rng.below(INVALID_USERS.len() as u64) as usize] }
}

impl Ssh {
    fn new(o: &SshdOptions) -> Self {
        let mut rng = Rng::new(o.seed);
        let mut arng = rng.fork(1);
        let n = o.attackers.max(1);
        let attackers = distinct_addrs(&mut arng, n, o.ipv6_share);
        // Benign clients never share an address with an attacker.
        let seen: std::collections::HashSet<IpAddr> = attackers.iter().copied().collect();
        let weights: Vec<u32> = STYLES.iter().map(|s| s.1).collect();
        let styles = (0..n)
            .map(|i| {
                let mut r = Rng::new(mix64(o.seed ^ 0x5717_1E00) ^ i as u64);
                STYLES[r.weighted(&weights)].0
            })
            .collect();
        let mut crng = rng.fork(2);
        let mk_client = |crng: &mut Rng, user: &'static str, uid: u32| {
            let ip = loop {
                let a = random_addr(crng, o.ipv6_share);
                if !seen.contains(&a) {
                    break a;
                }
            };
            Client { ip, user, uid, fingerprint: fingerprint(crng), password: crng.chance(0.2) }
        };
        let clients = (0..60)
            .map(|_| {
                let (u, uid) = *crng.pick(BENIGN_USERS);
                mk_client(&mut crng, u, uid)
            })
            .collect();
        let automation = AUTOMATION_USERS
            .iter()
            .map(|&(u, uid)| {
                let mut c = mk_client(&mut crng, u, uid);
                c.password = false;
                c
            })
            .collect();
        let span = (o.days.max(1.0 / 24.0) * 86_400.0).max(1.0);
        let rate = o.lines as f64 / span;
        // Measured mean lines per spawn of the mix below is about 17; the
        // feedback in `spawn_gap` corrects the rest.
        let gap0 = 17.0 / rate.max(1e-9);
        Ssh {
            pid: 1000 + rng.below(30_000) as u32,
            rng,
            host: o.host.clone(),
            attackers,
            styles,
            zipf: Zipf::new(n, 0.9),
            clients,
            automation,
            start: o.start,
            rate,
            gap0,
            spawn_clock: o.start as f64,
        }
    }

    fn conn(&mut self, t: i64) -> Conn<'_> {
        self.pid += 1 + self.rng.below(40) as u32;
        if self.pid > 4_194_000 {
            self.pid = 1000 + self.rng.below(1000) as u32;
        }
        Conn { host: &self.host, pid: self.pid, port: self.rng.range(1024, 65_535) as u16, t }
    }

    /// Mean gap to the next spawn, slowed down or sped up so that the
    /// generated line count tracks `rate` over the requested period.
    fn spawn_gap(&mut self, now: i64, generated: u64) -> f64 {
        let target = self.rate * (now - self.start) as f64;
        let ahead = generated as f64 - target;
        let scale = (self.rate * 3600.0).max(200.0);
        let factor = (ahead / scale).exp2().clamp(0.125, 8.0);
        self.rng.exp(self.gap0 * factor)
    }
}

fn benign_session(w: &mut Ssh, now: i64, client_idx: usize, auto: bool, sink: &mut Sink<Actor>) {
    let rng_dur = if auto { w.rng.range(2, 45) } else { (w.rng.exp(1500.0) as u64).max(3) };
    let typo = !auto && w.rng.chance(0.04);
    let c = if auto { &w.automation[client_idx] } else { &w.clients[client_idx] };
    let (ip, user, uid, password) = (c.ip, c.user, c.uid, c.password || typo);
    let fp = c.fingerprint.clone();
    let mut rng = w.rng.fork(now as u64);
    let mut k = w.conn(now);
    let port = k.port;
    if typo {
        k.say(sink, format_args!("Failed password for {user} from {ip} port {port} ssh2"));
        k.wait(&mut rng, 2, 8);
    }
    if password {
        k.say(sink, format_args!("Accepted password for {user} from {ip} port {port} ssh2"));
    } else {
        k.say(sink, format_args!("Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:{fp}"));
    }
    k.say(sink, format_args!("pam_unix(sshd:session): session opened for user {user}(uid={uid}) by (uid=0)"));
    k.t += rng_dur as i64;
    k.say(sink, format_args!("Received disconnect from {ip} port {port}:11: disconnected by user"));
    k.say(sink, format_args!("Disconnected from user {user} {ip} port {port}"));
    k.say(sink, format_args!("pam_unix(sshd:session): session closed for user {user}"));
}

/// Password guessing against an existing account, `tries` attempts on one
/// connection (MaxAuthTries 6).
fn conn_password(w: &mut Ssh, ip: IpAddr, now: i64, tries: u32, sink: &mut Sink<Actor>) {
    let user = *w.rng.pick(VALID_TARGETS);
    let mut rng = w.rng.fork(now as u64 ^ 0xA);
    let mut k = w.conn(now);
    let p = k.port;
    k.say(
        sink,
        format_args!(
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}"
        ),
    );
    k.wait(&mut rng, 1, 3);
    k.say(sink, format_args!("Failed password for {user} from {ip} port {p} ssh2"));
    for _ in 1..tries {
        k.wait(&mut rng, 1, 4);
        k.say(sink, format_args!("Failed password for {user} from {ip} port {p} ssh2"));
    }
    if tries >= 6 {
        k.say(
            sink,
            format_args!(
                "error: maximum authentication attempts exceeded for {user} from {ip} port {p} ssh2 [preauth]"
            ),
        );
        k.say(
            sink,
            format_args!(
                "Disconnecting authenticating user {user} {ip} port {p}: Too many authentication failures [preauth]"
            ),
        );
    } else {
        match rng.below(3) {
            0 => {
                k.say(sink, format_args!("Received disconnect from {ip} port {p}:11: Bye Bye [preauth]"));
                k.say(sink, format_args!("Disconnected from authenticating user {user} {ip} port {p} [preauth]"));
            }
            1 => k.say(sink, format_args!("Connection closed by authenticating user {user} {ip} port {p} [preauth]")),
            _ => k.say(sink, format_args!("Connection reset by authenticating user {user} {ip} port {p} [preauth]")),
        }
    }
    if tries > 1 {
        k.say(
            sink,
            format_args!(
                "PAM {} more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}",
                tries - 1
            ),
        );
    }
}

/// Password attempts for a non-existent user.
fn conn_invalid(w: &mut Ssh, ip: IpAddr, now: i64, tries: u32, sink: &mut Sink<Actor>) {
    let user = pick_invalid_user(&mut w.rng);
    let mut rng = w.rng.fork(now as u64 ^ 0xB);
    let mut k = w.conn(now);
    let p = k.port;
    k.say(sink, format_args!("Invalid user {user} from {ip} port {p}"));
    k.wait(&mut rng, 0, 2);
    k.say(sink, format_args!("pam_unix(sshd:auth): check pass; user unknown"));
    k.say(
        sink,
        format_args!("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}"),
    );
    k.wait(&mut rng, 1, 3);
    k.say(sink, format_args!("Failed password for invalid user {user} from {ip} port {p} ssh2"));
    for _ in 1..tries {
        k.wait(&mut rng, 1, 4);
        k.say(sink, format_args!("Failed password for invalid user {user} from {ip} port {p} ssh2"));
    }
    if tries >= 6 {
        k.say(sink, format_args!("error: maximum authentication attempts exceeded for invalid user {user} from {ip} port {p} ssh2 [preauth]"));
        k.say(
            sink,
            format_args!("Disconnecting invalid user {user} {ip} port {p}: Too many authentication failures [preauth]"),
        );
    } else if rng.chance(0.6) {
        k.say(sink, format_args!("Received disconnect from {ip} port {p}:11: Bye Bye [preauth]"));
        k.say(sink, format_args!("Disconnected from invalid user {user} {ip} port {p} [preauth]"));
    } else {
        k.say(sink, format_args!("Connection closed by invalid user {user} {ip} port {p} [preauth]"));
    }
    if tries > 1 {
        k.say(
            sink,
            format_args!(
                "PAM {} more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}",
                tries - 1
            ),
        );
    }
}

/// Invalid user that only offers keys (or nothing) and leaves in preauth.
fn conn_keyprobe(w: &mut Ssh, ip: IpAddr, now: i64, sink: &mut Sink<Actor>) {
    let user = pick_invalid_user(&mut w.rng);
    let mode = w.rng.below(3);
    let mut k = w.conn(now);
    let p = k.port;
    k.say(sink, format_args!("Invalid user {user} from {ip} port {p}"));
    match mode {
        0 => k.say(sink, format_args!("Connection closed by invalid user {user} {ip} port {p} [preauth]")),
        1 => {
            k.say(sink, format_args!("Failed none for invalid user {user} from {ip} port {p} ssh2"));
            k.say(sink, format_args!("Received disconnect from {ip} port {p}:11: Bye Bye [preauth]"));
            k.say(sink, format_args!("Disconnected from invalid user {user} {ip} port {p} [preauth]"));
        }
        _ => {
            k.say(
                sink,
                format_args!(
                    "Received disconnect from {ip} port {p}:11: Normal Shutdown, Thank you for playing [preauth]"
                ),
            );
            k.say(sink, format_args!("Disconnected from invalid user {user} {ip} port {p} [preauth]"));
        }
    }
}

/// Keyboard-interactive through PAM (KbdInteractiveAuthentication yes).
fn conn_kbd(w: &mut Ssh, ip: IpAddr, now: i64, tries: u32, sink: &mut Sink<Actor>) {
    let invalid = w.rng.chance(0.4);
    let user = if invalid { pick_invalid_user(&mut w.rng) } else { *w.rng.pick(VALID_TARGETS) };
    let mut rng = w.rng.fork(now as u64 ^ 0xC);
    let mut k = w.conn(now);
    let p = k.port;
    if invalid {
        k.say(sink, format_args!("Invalid user {user} from {ip} port {p}"));
    }
    for _ in 0..tries {
        k.wait(&mut rng, 1, 4);
        if invalid {
            k.say(sink, format_args!("error: PAM: Authentication failure for illegal user {user} from {ip}"));
            k.say(
                sink,
                format_args!("Failed keyboard-interactive/pam for invalid user {user} from {ip} port {p} ssh2"),
            );
        } else {
            k.say(sink, format_args!("error: PAM: Authentication failure for {user} from {ip}"));
            k.say(sink, format_args!("Failed keyboard-interactive/pam for {user} from {ip} port {p} ssh2"));
        }
    }
    let who = if invalid { "invalid" } else { "authenticating" };
    k.say(sink, format_args!("Connection closed by {who} user {user} {ip} port {p} [preauth]"));
}

/// Connections that never get to authentication.
fn conn_scanner(w: &mut Ssh, ip: IpAddr, now: i64, sink: &mut Sink<Actor>) {
    let kind = w.rng.below(9);
    let mut k = w.conn(now);
    let p = k.port;
    match kind {
        0 => k.say(
            sink,
            format_args!("Did not receive identification string from {ip} port {p}"),
        ),
        1 => {
            k.say(
                sink,
                format_args!("error: kex_exchange_identification: Connection closed by remote host"),
            );
            k.say(sink, format_args!("Connection closed by {ip} port {p}"));
        }
        2 => {
            k.say(sink, format_args!("error: kex_exchange_identification: client sent invalid protocol identifier \"GET / HTTP/1.1\""));
            k.say(
                sink,
                format_args!("banner exchange: Connection from {ip} port {p}: invalid format"),
            );
        }
        3 => {
            k.say(
                sink,
                format_args!("error: kex_exchange_identification: read: Connection reset by peer"),
            );
            k.say(sink, format_args!("Connection reset by {ip} port {p}"));
        }
        4 => k.say(sink, format_args!("Unable to negotiate with {ip} port {p}: no matching key exchange method found. Their offer: diffie-hellman-group14-sha1,diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1 [preauth]")),
        5 => k.say(sink, format_args!("Unable to negotiate with {ip} port {p}: no matching host key type found. Their offer: ssh-rsa,ssh-dss [preauth]")),
        6 => {
            k.say(sink, format_args!("error: Protocol major versions differ for {ip} port {p}: SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3 vs. SSH-1.5-Nmap-SSH1-Hostkey"));
            k.say(
                sink,
                format_args!("banner exchange: Connection from {ip} port {p}: could not read protocol version"),
            );
        }
        7 => k.say(
            sink,
            format_args!("Connection closed by {ip} port {p} [preauth]"),
        ),
        _ => {
            k.say(
                sink,
                format_args!("Received disconnect from {ip} port {p}:11: Bye Bye [preauth]"),
            );
            k.say(
                sink,
                format_args!("Disconnected from {ip} port {p} [preauth]"),
            );
        }
    }
}

/// Message forms of older OpenSSH releases still seen in the wild.
fn conn_oldschool(w: &mut Ssh, ip: IpAddr, now: i64, sink: &mut Sink<Actor>) {
    let kind = w.rng.below(4);
    let tries = w.rng.range(3, 6) as u32;
    let user = pick_invalid_user(&mut w.rng);
    let mut rng = w.rng.fork(now as u64 ^ 0xD);
    let mut k = w.conn(now);
    let p = k.port;
    match kind {
        0 => {
            k.say(sink, format_args!("Invalid user {user} from {ip}"));
            k.say(sink, format_args!("input_userauth_request: invalid user {user} [preauth]"));
            k.say(sink, format_args!("pam_unix(sshd:auth): check pass; user unknown"));
            k.say(
                sink,
                format_args!(
                    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}"
                ),
            );
            k.wait(&mut rng, 1, 3);
            k.say(sink, format_args!("Failed password for invalid user {user} from {ip} port {p} ssh2"));
            k.say(sink, format_args!("Received disconnect from {ip}: 11: Bye Bye [preauth]"));
        }
        1 => {
            for _ in 0..tries {
                k.say(sink, format_args!("Failed password for root from {ip} port {p} ssh2"));
                k.wait(&mut rng, 1, 3);
            }
            if tries >= 6 {
                k.say(sink, format_args!("Disconnecting: Too many authentication failures for root [preauth]"));
            } else {
                k.say(sink, format_args!("Received disconnect from {ip}: 11: Bye Bye [preauth]"));
            }
        }
        2 => k.say(
            sink,
            format_args!(
                "error: Received disconnect from {ip} port {p}:3: com.jcraft.jsch.JSchException: Auth fail [preauth]"
            ),
        ),
        _ => {
            k.say(sink, format_args!("User root from {ip} not allowed because not listed in AllowUsers"));
            k.say(sink, format_args!("input_userauth_request: invalid user root [preauth]"));
            k.wait(&mut rng, 1, 3);
            k.say(sink, format_args!("Failed password for invalid user root from {ip} port {p} ssh2"));
            k.say(sink, format_args!("Connection closed by {ip} port {p} [preauth]"));
        }
    }
}

/// Number of connections of a new campaign of the given style.
fn campaign_len(rng: &mut Rng, style: Style) -> u32 {
    let (lo, mean, hi) = match style {
        Style::Burst => (2.0, 5.0, 60.0),
        Style::Dictionary => (3.0, 8.0, 120.0),
        Style::Slow => (8.0, 20.0, 60.0),
        Style::SlowInvalid => (6.0, 12.0, 30.0),
        Style::Scanner => (1.0, 1.5, 4.0),
        Style::PreauthCloser => (3.0, 8.0, 30.0),
        Style::OldSchool => (2.0, 5.0, 15.0),
        Style::KbdInteractive => (2.0, 6.0, 20.0),
    };
    (lo + rng.exp(mean - lo)).min(hi) as u32
}

impl World for Ssh {
    type Actor = Actor;

    fn step(&mut self, actor: &mut Actor, now: i64, sink: &mut Sink<Actor>) -> Option<i64> {
        match actor {
            Actor::Spawner => {
                if self.rng.chance(0.3) {
                    let c = self.rng.below(self.clients.len() as u64) as usize;
                    benign_session(self, now, c, false, sink);
                } else {
                    let a = self.zipf.sample(&mut self.rng) as u32;
                    let left = campaign_len(&mut self.rng, self.styles[a as usize]).max(1);
                    sink.spawn(now, Actor::Campaign { attacker: a, left });
                }
                let gap = self.spawn_gap(now, sink.generated);
                self.spawn_clock = self.spawn_clock.max(now as f64) + gap;
                Some(self.spawn_clock as i64)
            }
            Actor::Automation { client, period } => {
                benign_session(self, now, *client as usize, true, sink);
                let jitter = self.rng.below(30) as i64;
                Some(now + *period + jitter)
            }
            Actor::Campaign { attacker, left } => {
                let a = *attacker as usize;
                let ip = self.attackers[a];
                let style = self.styles[a];
                let gap = match style {
                    Style::Burst => {
                        let tries = if self.rng.chance(0.5) { 6 } else { self.rng.range(1, 5) as u32 };
                        conn_password(self, ip, now, tries, sink);
                        self.rng.range(1, 12)
                    }
                    Style::Dictionary => {
                        if self.rng.chance(0.25) {
                            conn_keyprobe(self, ip, now, sink);
                        } else {
                            let tries = if self.rng.chance(0.8) { 1 } else { self.rng.range(2, 6) as u32 };
                            conn_invalid(self, ip, now, tries, sink);
                        }
                        self.rng.range(0, 6)
                    }
                    Style::Slow => {
                        // One counted failure per connection, at least 151 s
                        // apart: at most 4 in any 600 s window.
                        conn_password(self, ip, now, 1, sink);
                        self.rng.range(151, 260)
                    }
                    Style::SlowInvalid => {
                        // Two counted failures per connection (Invalid user +
                        // Failed password), at least 301 s apart.
                        conn_invalid(self, ip, now, 1, sink);
                        self.rng.range(301, 420)
                    }
                    Style::Scanner => {
                        conn_scanner(self, ip, now, sink);
                        self.rng.range(1, 30)
                    }
                    Style::PreauthCloser => {
                        let mut k = self.conn(now);
                        let p = k.port;
                        k.say(
                            sink,
                            format_args!("Connection closed by authenticating user root {ip} port {p} [preauth]"),
                        );
                        self.rng.range(1, 8)
                    }
                    Style::OldSchool => {
                        conn_oldschool(self, ip, now, sink);
                        self.rng.range(2, 20)
                    }
                    Style::KbdInteractive => {
                        let tries = self.rng.range(1, 3) as u32;
                        conn_kbd(self, ip, now, tries, sink);
                        self.rng.range(2, 12)
                    }
                };
                *left -= 1;
                (*left > 0).then_some(now + gap as i64)
            }
        }
    }
}

/// Writes an sshd auth.log of exactly `o.lines` lines.
pub fn generate_sshd<O: Write + ?Sized>(o: &SshdOptions, out: &mut O) -> std::io::Result<RunStats> {
    let mut w = Ssh::new(o);
    let mut initial = vec![(o.start, Actor::Spawner)];
    for i in 0..w.automation.len() {
        let period = [300, 900, 3600][i % 3];
        let first = o.start + w.rng.below(period as u64) as i64;
        initial.push((first, Actor::Automation { client: i as u32, period }));
    }
    run(&mut w, initial, o.lines, Stamp::Syslog, out)
}

/// Options of the `cardinality` subcommand.
#[derive(Clone, Debug)]
pub struct CardinalityOptions {
    pub addresses: u64,
    pub seed: u64,
    pub start: i64,
    pub days: f64,
    pub ipv6_share: f64,
    pub host: String,
}

struct Card {
    rng: Rng,
    host: String,
    pid: u32,
    v4: DistinctV4,
    v6: DistinctV6,
    left: u64,
    gap: f64,
    clock: f64,
    ipv6_share: f64,
}

impl World for Card {
    type Actor = ();

    fn step(&mut self, _: &mut (), now: i64, sink: &mut Sink<()>) -> Option<i64> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let ip: IpAddr = if self.ipv6_share > 0.0 && self.rng.chance(self.ipv6_share) {
            IpAddr::V6(self.v6.next().expect("IPv6 space exhausted"))
        } else {
            IpAddr::V4(self.v4.next().expect("IPv4 space exhausted"))
        };
        self.pid += 1 + self.rng.below(8) as u32;
        if self.pid > 4_194_000 {
            self.pid = 1000;
        }
        let (h, pid) = (&self.host, self.pid);
        let port = self.rng.range(1024, 65_535);
        let user = *self.rng.pick(INVALID_USERS);
        match self.rng.below(4) {
            // One failure.
            0 => sink.line(now, format!("{h} sshd[{pid}]: Failed password for root from {ip} port {port} ssh2")),
            1 => sink.line(
                now,
                format!("{h} sshd[{pid}]: Failed password for invalid user {user} from {ip} port {port} ssh2"),
            ),
            // Two failures: invalid user + failed password, one connection.
            2 => {
                sink.line(now, format!("{h} sshd[{pid}]: Invalid user {user} from {ip} port {port}"));
                sink.line(
                    now + self.rng.below(3) as i64,
                    format!("{h} sshd[{pid}]: Failed password for invalid user {user} from {ip} port {port} ssh2"),
                );
            }
            // Two failures: a second connection a little later.
            _ => {
                sink.line(now, format!("{h} sshd[{pid}]: Failed password for root from {ip} port {port} ssh2"));
                let later = now + self.rng.range(1, 300) as i64;
                let pid2 = pid + 1 + self.rng.below(50) as u32;
                let port2 = self.rng.range(1024, 65_535);
                sink.line(later, format!("{h} sshd[{pid2}]: Failed password for root from {ip} port {port2} ssh2"));
            }
        }
        if self.left == 0 {
            return None;
        }
        self.clock = self.clock.max(now as f64) + self.rng.exp(self.gap);
        Some(self.clock as i64)
    }
}

/// Writes an sshd log in which `o.addresses` distinct addresses fail once
/// or twice each (about 1.5 lines per address).
pub fn generate_cardinality<O: Write + ?Sized>(o: &CardinalityOptions, out: &mut O) -> std::io::Result<RunStats> {
    let mut rng = Rng::new(o.seed);
    let span = o.days.max(1.0 / 24.0) * 86_400.0;
    let mut w = Card {
        pid: 1000 + rng.below(30_000) as u32,
        rng: rng.fork(9),
        host: o.host.clone(),
        v4: DistinctV4::new(o.seed),
        v6: DistinctV6::new(o.seed),
        left: o.addresses,
        gap: span / o.addresses.max(1) as f64,
        clock: o.start as f64,
        ipv6_share: o.ipv6_share,
    };
    if o.addresses == 0 {
        return Ok(RunStats::default());
    }
    run(&mut w, vec![(o.start, ())], u64::MAX, Stamp::Syslog, out)
}
